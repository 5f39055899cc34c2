//! The Canary spec as weir understands it: Flagger's defaults applied, rules checked, and the
//! fields weir cannot honour yet turned into errors (or warnings where they change nothing
//! weir does) instead of being ignored.

use super::raw;
use super::{p, Located, SpecError};
use crate::duration::GoDuration;
use crate::yaml_edit::Seg;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// A traffic weight in percent; cannot exceed 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Weight(u8);

impl Weight {
    /// All traffic.
    pub const FULL: Weight = Weight(100);
    /// No traffic.
    pub const ZERO: Weight = Weight(0);

    /// `None` above 100.
    pub fn new(percent: u32) -> Option<Weight> {
        (percent <= 100).then_some(Weight(percent as u8))
    }

    /// Percent, 0..=100.
    pub fn get(self) -> u8 {
        self.0
    }

    /// 100 minus this weight: the other side of the split.
    pub fn complement(self) -> Weight {
        Weight(100 - self.0)
    }

    /// Adds, saturating at 100.
    pub fn saturating_add(self, other: Weight) -> Weight {
        Weight((self.0 + other.0).min(100))
    }

    /// Subtracts, saturating at 0.
    pub fn saturating_sub(self, other: Weight) -> Weight {
        Weight(self.0.saturating_sub(other.0))
    }
}

impl std::fmt::Display for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How the canary weight grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steps {
    /// `stepWeight`: add this much each interval.
    Linear(Weight),
    /// `stepWeights`: go through these, strictly increasing.
    List(Vec<Weight>),
}

/// Where a metric's query comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricSource {
    /// Flagger's built-in Istio `request-success-rate`.
    RequestSuccessRate,
    /// Flagger's built-in Istio `request-duration` (p99, milliseconds).
    RequestDuration,
    /// A `MetricTemplate` by (namespace, name).
    Template { namespace: String, name: String },
    /// A query written inline in the Canary (Flagger's older form).
    Inline(String),
}

/// One metric check of the analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricCheck {
    /// The name shown in logs and commit messages.
    pub name: String,
    /// Where the query comes from.
    pub source: MetricSource,
    /// The `{{ interval }}` of the query (default 1m).
    pub interval: GoDuration,
    /// Lower bound, inclusive.
    pub min: Option<f64>,
    /// Upper bound, inclusive.
    pub max: Option<f64>,
    /// `templateVariables`.
    pub variables: BTreeMap<String, String>,
    /// Line and column of the metric in the Canary file, for errors found later.
    pub at: (usize, usize),
}

/// The analysis settings that drive the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Time between steps.
    pub interval: Duration,
    /// Failed checks that trigger a rollback.
    pub threshold: u32,
    /// How the weight grows.
    pub steps: Steps,
    /// Weight at which the canary is promoted (the last of `stepWeights` when given).
    pub max_weight: Weight,
    /// When set, traffic returns to the primary in these increments after promotion.
    pub step_weight_promotion: Option<Weight>,
    /// The metric checks.
    pub metrics: Vec<MetricCheck>,
}

/// Istio routing settings copied into the VirtualService and Services weir writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Apex service name (defaults to the target's name).
    pub name: String,
    /// Service port.
    pub port: u16,
    /// Port name (default `http`).
    pub port_name: String,
    /// Container port (number or name; default: `port`).
    pub target_port: Json,
    /// Optional `appProtocol`.
    pub app_protocol: Option<String>,
    /// VirtualService gateways.
    pub gateways: Vec<String>,
    /// VirtualService hosts besides the apex name.
    pub hosts: Vec<String>,
    /// DestinationRule traffic policy.
    pub traffic_policy: Option<Json>,
    /// HTTP match conditions.
    pub match_: Option<Json>,
    /// HTTP retries.
    pub retries: Option<Json>,
    /// HTTP timeout.
    pub timeout: Option<String>,
    /// Header operations.
    pub headers: Option<Json>,
    /// CORS policy.
    pub cors_policy: Option<Json>,
    /// URI rewrite.
    pub rewrite: Option<Json>,
}

/// A validated Canary.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// Repository-relative path of the file that holds it.
    pub file: String,
    /// The file holds nothing but Canaries: it is the rollout spec alone, not part of the
    /// app's revision.
    pub file_alone: bool,
    /// `metadata.name`.
    pub name: String,
    /// Line and column of `metadata.name`.
    pub name_at: (usize, usize),
    /// `metadata.namespace`.
    pub namespace: String,
    /// Line and column of `spec.service.name` (or `spec.service` when it has no name).
    pub service_at: (usize, usize),
    /// The Deployment under test (`targetRef.name`).
    pub target: String,
    /// Line and column of `targetRef.name`.
    pub target_at: (usize, usize),
    /// The HPA of the target, if any (`autoscalerRef.name`).
    pub autoscaler: Option<String>,
    /// Line and column of `autoscalerRef.name`.
    pub autoscaler_at: (usize, usize),
    /// Routing settings.
    pub service: Service,
    /// Analysis settings.
    pub analysis: Analysis,
    /// Promote without analysis.
    pub skip_analysis: bool,
    /// Do nothing while true.
    pub suspend: bool,
    /// Prometheus address for built-in metrics (`metricsServer`).
    pub metrics_server: Option<String>,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Applies Flagger's defaults and rules to a parsed Canary. Returns the Canary with any
/// warnings, or every error found (not just the first).
pub(super) fn validate(
    raw: raw::Canary,
    at: &Located,
    min_interval: Duration,
) -> Result<(Canary, Vec<SpecError>), Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let spec = raw.spec;

    let namespace = match raw.metadata.namespace {
        Some(ns) if is_dns_label(&ns) => ns,
        Some(ns) => {
            errors.push(at.error(
                &p(&["metadata", "namespace"]),
                format!("`{ns}` is not a valid namespace (lowercase letters, digits and '-')"),
            ));
            String::new()
        }
        None => {
            errors.push(at.error(
                &p(&["metadata"]),
                "namespace is required: weir renders namespaced Services and PromQL from it",
            ));
            String::new()
        }
    };
    if !is_dns_subdomain(&raw.metadata.name) {
        errors.push(at.error(
            &p(&["metadata", "name"]),
            format!("`{}` is not a valid Kubernetes name", raw.metadata.name),
        ));
    }
    if let Some(provider) = &spec.provider {
        if provider != "istio" {
            errors.push(at.error(
                &p(&["spec", "provider"]),
                format!("provider `{provider}` is not supported; weir renders Istio routing (use `istio` or leave it out)"),
            ));
        }
    }
    if spec.target_ref.kind != "Deployment" {
        errors.push(at.error(
            &p(&["spec", "targetRef", "kind"]),
            format!(
                "`{}` is not supported; the target must be a Deployment",
                spec.target_ref.kind
            ),
        ));
    }
    if !is_dns_subdomain(&spec.target_ref.name) {
        errors.push(at.error(
            &p(&["spec", "targetRef", "name"]),
            format!("`{}` is not a valid Kubernetes name", spec.target_ref.name),
        ));
    }
    let target_at = {
        let l = at
            .index
            .map(|i| i.locate(at.doc, &p(&["spec", "targetRef", "name"])));
        l.map(|l| (l.line, l.col)).unwrap_or((1, 1))
    };
    let position = |path: &[&str]| {
        at.index
            .map(|i| i.locate(at.doc, &p(path)))
            .map(|l| (l.line, l.col))
            .unwrap_or((1, 1))
    };
    let name_at = position(&["metadata", "name"]);
    let service_at = position(&["spec", "service", "name"]);
    let autoscaler_at = {
        let l = at
            .index
            .map(|i| i.locate(at.doc, &p(&["spec", "autoscalerRef", "name"])));
        l.map(|l| (l.line, l.col)).unwrap_or((1, 1))
    };
    let autoscaler = match spec.autoscaler_ref {
        Some(r) if r.kind == "HorizontalPodAutoscaler" => Some(r.name),
        Some(r) => {
            errors.push(at.error(
                &p(&["spec", "autoscalerRef", "kind"]),
                format!("`{}` is not supported; use HorizontalPodAutoscaler", r.kind),
            ));
            None
        }
        None => None,
    };

    let unsupported: [(&str, bool, &str); 5] = [
        (
            "ingressRef",
            spec.ingress_ref.is_some(),
            "ingress controllers are not supported; weir renders Istio routing",
        ),
        (
            "upstreamRefs",
            spec.upstream_refs.is_some(),
            "upstream references are not supported",
        ),
        (
            "canaryAnalysis",
            spec.canary_analysis.is_some(),
            "the old name is not read; rename it to `analysis`",
        ),
        (
            "revertOnDeletion",
            spec.revert_on_deletion.unwrap_or(false),
            "not supported yet: delete weir's folder in the same commit instead",
        ),
        (
            "metricsServer",
            spec.metrics_server
                .as_deref()
                .is_some_and(|s| !is_http_url(s)),
            "must be an absolute http(s) URL such as http://prometheus.istio-system:9090",
        ),
    ];
    for (field, present, why) in unsupported {
        if present {
            errors.push(at.error(&p(&["spec", field]), why));
        }
    }
    if spec.progress_deadline_seconds.is_some() {
        warnings.push(at.warning(
            &p(&["spec", "progressDeadlineSeconds"]),
            "not enforced yet: weir does not watch rollouts in the cluster",
        ));
    }

    let service = service(spec.service, &spec.target_ref.name, at, &mut errors);
    let analysis = match spec.analysis {
        Some(a) => analysis(a, at, min_interval, &mut errors, &mut warnings),
        None => {
            errors.push(at.error(
                &p(&["spec"]),
                "analysis is required: give it stepWeight or stepWeights (and metrics)",
            ));
            None
        }
    };

    // No evidence, no advance: an analysis that checks nothing is an explicit choice.
    if let Some(a) = &analysis {
        let opted_in = raw
            .metadata
            .annotations
            .as_ref()
            .and_then(|m| m.get(NO_EVIDENCE_ANNOTATION))
            .is_some_and(|v| v == "true");
        if a.metrics.is_empty() && !opted_in && !spec.skip_analysis.unwrap_or(false) {
            errors.push(at.error(
                &p(&["spec", "analysis", "metrics"]),
                format!("the analysis checks nothing (no metrics): weir would promote every revision without evidence. Add metrics, or opt in with the annotation {NO_EVIDENCE_ANNOTATION}: \"true\""),
            ));
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok((
        Canary {
            file: at.file().to_string(),
            file_alone: false,
            name: raw.metadata.name,
            name_at,
            namespace,
            service_at,
            target: spec.target_ref.name,
            target_at,
            autoscaler,
            autoscaler_at,
            service: service.expect("no errors means the service was built"),
            analysis: analysis.expect("no errors means the analysis was built"),
            skip_analysis: spec.skip_analysis.unwrap_or(false),
            suspend: spec.suspend.unwrap_or(false),
            metrics_server: spec.metrics_server,
        },
        warnings,
    ))
}

fn to_json(v: Option<serde_yaml::Value>) -> Option<Json> {
    v.map(|v| serde_json::to_value(v).unwrap_or(Json::Null))
}

fn service(
    raw: raw::Service,
    target: &str,
    at: &Located,
    errors: &mut Vec<SpecError>,
) -> Option<Service> {
    let base = p(&["spec", "service"]);
    let field = |name: &str| {
        let mut path = base.clone();
        path.push(Seg::Key(name.to_string()));
        path
    };
    let before = errors.len();
    let port = match u16::try_from(raw.port) {
        Ok(port) if port > 0 => port,
        _ => {
            errors.push(at.error(
                &field("port"),
                format!("{} is not a port; use 1..=65535", raw.port),
            ));
            0
        }
    };
    for (name, present) in [
        ("delegation", raw.delegation.is_some()),
        ("apex", raw.apex.is_some()),
        ("primary", raw.primary.is_some()),
        ("canary", raw.canary.is_some()),
        ("mirror", raw.mirror.is_some()),
        ("portDiscovery", raw.port_discovery.unwrap_or(false)),
    ] {
        if present {
            errors.push(at.error(&field(name), "not supported yet by weir"));
        }
    }
    // weir writes Services `<name>`, `<name>-primary` and `<name>-canary`: each must be a
    // DNS-1035 label of at most 63 characters.
    let (service_name, service_field) = match &raw.name {
        Some(name) => (name.as_str(), field("name")),
        None => (target, p(&["spec", "targetRef", "name"])),
    };
    if !is_dns_1035(service_name) || service_name.len() + "-primary".len() > 63 {
        errors.push(at.error(
            &service_field,
            format!("`{service_name}` cannot name weir's Services ({service_name}, {service_name}-primary, {service_name}-canary): use lowercase letters, digits and '-', starting with a letter, at most 55 characters{}", if raw.name.is_none() { " (or set spec.service.name)" } else { "" }),
        ));
    }
    let target_port = match raw.target_port {
        None => Json::from(port),
        Some(serde_yaml::Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0 && n < 65536) => {
            Json::from(n.as_u64().unwrap_or_default())
        }
        Some(serde_yaml::Value::String(s)) if !s.is_empty() => Json::from(s),
        Some(_) => {
            errors.push(at.error(
                &field("targetPort"),
                "must be a port number (1..=65535) or a container port name",
            ));
            Json::Null
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(Service {
        name: raw.name.unwrap_or_else(|| target.to_string()),
        port,
        port_name: raw.port_name.unwrap_or_else(|| "http".to_string()),
        target_port,
        app_protocol: raw.app_protocol,
        gateways: raw.gateways.unwrap_or_default(),
        hosts: raw.hosts.unwrap_or_default(),
        traffic_policy: to_json(raw.traffic_policy),
        match_: to_json(raw.match_),
        retries: to_json(raw.retries),
        timeout: raw.timeout,
        headers: to_json(raw.headers),
        cors_policy: to_json(raw.cors_policy),
        rewrite: to_json(raw.rewrite),
    })
}

fn analysis(
    raw: raw::Analysis,
    at: &Located,
    min_interval: Duration,
    errors: &mut Vec<SpecError>,
    warnings: &mut Vec<SpecError>,
) -> Option<Analysis> {
    let before = errors.len();
    let field = |name: &str| p(&["spec", "analysis", name]);
    let interval = match raw.interval.as_deref() {
        None => DEFAULT_INTERVAL,
        Some(text) => match GoDuration::parse(text) {
            Ok(d) if d.get() >= min_interval => d.get(),
            Ok(_) => {
                errors.push(at.error(
                    &field("interval"),
                    format!(
                        "{text} is below the minimum of {}; use at least that",
                        GoDuration(min_interval)
                    ),
                ));
                DEFAULT_INTERVAL
            }
            Err(e) => {
                errors.push(at.error(&field("interval"), e.to_string()));
                DEFAULT_INTERVAL
            }
        },
    };
    let not_yet: [(&str, bool, &str); 7] = [
        ("iterations", raw.iterations.is_some_and(|i| i > 0), "A/B and Blue/Green strategies (iterations) are not supported yet; use stepWeight or stepWeights"),
        ("match", raw.match_.is_some(), "A/B testing (analysis.match) is not supported yet"),
        ("mirror", raw.mirror.unwrap_or(false), "traffic mirroring is not supported yet"),
        ("mirrorWeight", raw.mirror_weight.is_some(), "traffic mirroring is not supported yet"),
        ("sessionAffinity", raw.session_affinity.is_some(), "session affinity is not supported yet"),
        ("webhooks", raw.webhooks.is_some(), "webhooks are not supported yet; remove them or keep Flagger for this app"),
        ("alerts", raw.alerts.is_some(), "alerts are not supported yet"),
    ];
    for (name, present, why) in not_yet {
        if present {
            errors.push(at.error(&field(name), why));
        }
    }
    for (name, present) in [
        (
            "primaryReadyThreshold",
            raw.primary_ready_threshold.is_some(),
        ),
        ("canaryReadyThreshold", raw.canary_ready_threshold.is_some()),
    ] {
        if present {
            warnings.push(at.warning(
                &field(name),
                "not enforced yet: weir does not watch pod readiness in the cluster",
            ));
        }
    }

    let weight = |name: &str, value: u32, errors: &mut Vec<SpecError>| -> Weight {
        match Weight::new(value) {
            Some(w) if value > 0 => w,
            _ => {
                errors.push(at.error(
                    &field(name),
                    format!("{value} is not a weight; use a percentage from 1 to 100"),
                ));
                Weight::ZERO
            }
        }
    };
    let steps = match (raw.step_weight, raw.step_weights) {
        (Some(_), Some(_)) => {
            errors.push(at.error(
                &field("stepWeights"),
                "give either stepWeight or stepWeights, not both",
            ));
            None
        }
        (Some(w), None) => Some(Steps::Linear(weight("stepWeight", w, errors))),
        (None, Some(list)) if list.is_empty() => {
            errors.push(at.error(&field("stepWeights"), "must list at least one weight"));
            None
        }
        (None, Some(list)) => {
            let mut ws = Vec::new();
            for (i, w) in list.iter().enumerate() {
                let mut path = field("stepWeights");
                path.push(Seg::Index(i));
                match Weight::new(*w) {
                    Some(weight) if *w > 0 => {
                        if ws.last().is_some_and(|prev| *prev >= weight) {
                            errors.push(at.error(
                                &path,
                                format!("{w} does not increase; stepWeights must be strictly increasing"),
                            ));
                        }
                        ws.push(weight);
                    }
                    _ => errors.push(at.error(
                        &path,
                        format!("{w} is not a weight; use a percentage from 1 to 100"),
                    )),
                }
            }
            Some(Steps::List(ws))
        }
        (None, None) => {
            errors.push(at.error(
                &p(&["spec", "analysis"]),
                "one of stepWeight, stepWeights or iterations is required",
            ));
            None
        }
    };
    let max_weight = match (&steps, raw.max_weight) {
        (Some(Steps::List(ws)), Some(_)) if !ws.is_empty() => {
            warnings.push(at.warning(
                &field("maxWeight"),
                "ignored by Flagger's rules when stepWeights is set: the last step is the maximum",
            ));
            *ws.last().unwrap_or(&Weight::FULL)
        }
        (Some(Steps::List(ws)), None) => *ws.last().unwrap_or(&Weight::FULL),
        (_, Some(m)) => weight("maxWeight", m, errors),
        (_, None) => Weight::FULL,
    };
    let step_weight_promotion = raw
        .step_weight_promotion
        .map(|w| weight("stepWeightPromotion", w, errors));
    let threshold = match raw.threshold {
        Some(0) => {
            errors.push(at.error(
                &field("threshold"),
                "must be at least 1 (failed checks before rollback)",
            ));
            1
        }
        Some(t) => t,
        None => 1,
    };
    let mut metrics = Vec::new();
    for (i, m) in raw.metrics.unwrap_or_default().into_iter().enumerate() {
        let mut path = field("metrics");
        path.push(Seg::Index(i));
        if let Some(check) = metric(m, &path, at, errors) {
            metrics.push(check);
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Analysis {
        interval,
        threshold,
        steps: steps.expect("no errors means steps were read"),
        max_weight,
        step_weight_promotion,
        metrics,
    })
}

fn metric(
    raw: raw::Metric,
    base: &[Seg],
    at: &Located,
    errors: &mut Vec<SpecError>,
) -> Option<MetricCheck> {
    let field = |name: &str| {
        let mut path = base.to_vec();
        path.push(Seg::Key(name.to_string()));
        path
    };
    let before = errors.len();
    let position = at
        .index
        .map(|i| i.locate(at.doc, base))
        .map(|l| (l.line, l.col))
        .unwrap_or((1, 1));
    // The name reaches logs and commit messages: one printable line.
    if raw.name.is_empty() || raw.name.len() > 253 || raw.name.chars().any(char::is_control) {
        errors.push(at.error(
            &field("name"),
            "a metric name is one line of at most 253 printable characters",
        ));
        return None;
    }
    let interval = match raw.interval.as_deref() {
        None => GoDuration(Duration::from_secs(60)),
        Some(text) => match GoDuration::parse(text) {
            Ok(d) if d.get() >= Duration::from_secs(1) => d,
            Ok(_) => {
                errors.push(at.error(&field("interval"), "must be at least 1s"));
                GoDuration(Duration::from_secs(60))
            }
            Err(e) => {
                errors.push(at.error(&field("interval"), e.to_string()));
                GoDuration(Duration::from_secs(60))
            }
        },
    };
    let source = match (&raw.template_ref, &raw.query) {
        (Some(_), Some(_)) => {
            errors.push(at.error(
                &field("query"),
                "give either templateRef or query, not both",
            ));
            None
        }
        (Some(r), None) => Some(MetricSource::Template {
            namespace: r.namespace.clone().unwrap_or_default(),
            name: r.name.clone(),
        }),
        (None, Some(q)) => Some(MetricSource::Inline(q.clone())),
        (None, None) => match raw.name.as_str() {
            "request-success-rate" => Some(MetricSource::RequestSuccessRate),
            "request-duration" => Some(MetricSource::RequestDuration),
            other => {
                errors.push(at.error(
                    &field("name"),
                    format!("`{other}` is not a built-in metric; the built-ins are request-success-rate and request-duration, any other needs templateRef"),
                ));
                None
            }
        },
    };
    let (mut min, mut max) = match raw.threshold_range {
        Some(r) => (r.min, r.max),
        None => (None, None),
    };
    if let Some(t) = raw.threshold {
        // Flagger's legacy single threshold: a floor for success rate, a ceiling otherwise.
        if min.is_some() || max.is_some() {
            errors.push(at.error(
                &field("threshold"),
                "give either threshold or thresholdRange, not both",
            ));
        } else if source == Some(MetricSource::RequestSuccessRate) {
            min = Some(t);
        } else {
            max = Some(t);
        }
    }
    if min.is_none() && max.is_none() {
        errors.push(at.error(
            &field("thresholdRange"),
            "thresholdRange needs min, max or both: without a bound the check proves nothing",
        ));
    }
    for (name, bound) in [("min", min), ("max", max)] {
        if bound.is_some_and(|b| !b.is_finite()) {
            let mut path = field("thresholdRange");
            path.push(Seg::Key(name.to_string()));
            errors.push(at.error(&path, "must be a finite number"));
        }
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            errors.push(at.error(
                &field("thresholdRange"),
                format!("min {lo} is above max {hi}: no value could pass"),
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(MetricCheck {
        name: raw.name,
        source: source?,
        interval,
        min,
        max,
        variables: raw.template_variables.unwrap_or_default(),
        at: position,
    })
}

/// An absolute `http://` or `https://` URL with a host.
pub fn is_http_url(s: &str) -> bool {
    url::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// The annotation by which a Canary opts in to an analysis without evidence.
pub const NO_EVIDENCE_ANNOTATION: &str = "weir.dev/allow-no-evidence";

/// RFC 1123 label: what namespaces and Service names must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1035 label: what Service names must be (a letter first).
pub fn is_dns_1035(s: &str) -> bool {
    is_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// RFC 1123 subdomain: what most object names must be.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_is_bounded() {
        assert_eq!(Weight::new(100), Some(Weight::FULL));
        assert_eq!(Weight::new(101), None);
        assert_eq!(
            Weight::new(60)
                .unwrap()
                .saturating_add(Weight::new(50).unwrap()),
            Weight::FULL
        );
    }
}
