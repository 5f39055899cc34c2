//! The Canary spec as weir understands it: Flagger's defaults applied, rules checked, and the
//! fields weir cannot honour yet turned into errors (or warnings where they change nothing
//! weir does) instead of being ignored.

use super::raw;
use super::{p, Located, LocatedError};
use crate::core::cluster::ReadyRules;
use crate::core::duration::GoDuration;
use crate::core::positions::Seg;
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

/// How a release moves traffic, chosen as Flagger chooses it: `iterations` with `match` is
/// A/B testing, `iterations` alone is Blue/Green, `stepWeight(s)` is the progressive canary.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Progressive traffic shifting, one step each interval, up to `max_weight`.
    Canary {
        /// How the weight grows.
        steps: Steps,
        /// Weight at which the canary is promoted (the last of `stepWeights` when given).
        max_weight: Weight,
    },
    /// Requests matching `match` go to the canary for `iterations` intervals.
    AbTesting {
        /// Intervals of analysis before promotion.
        iterations: u32,
        /// Istio HTTP match conditions (`analysis.match`), merged with `service.match`.
        match_: Vec<Json>,
    },
    /// The canary is analysed for `iterations` intervals without live traffic (unless
    /// mirrored), then all traffic switches to it, then it is promoted.
    BlueGreen {
        /// Intervals of analysis before the switch.
        iterations: u32,
    },
}

impl Strategy {
    /// The name Flagger's alerts use for the routing.
    pub fn describe(&self) -> String {
        match self {
            Strategy::Canary {
                steps: Steps::Linear(w),
                max_weight,
            } => format!("Weight step: {w} max: {max_weight}"),
            Strategy::Canary {
                steps: Steps::List(ws),
                max_weight,
            } => format!(
                "Weight steps: {} max: {max_weight}",
                ws.iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Strategy::AbTesting { .. } => "A/B Testing".to_string(),
            Strategy::BlueGreen { .. } => "Blue/Green".to_string(),
        }
    }
}

/// When a webhook is called, as in Flagger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookType {
    /// Before a new revision is analysed; a failure holds it in `Waiting`.
    ConfirmRollout,
    /// Once, before the first step of the analysis; a failure counts as a failed check.
    PreRollout,
    /// Every step of the analysis, before the metrics; a failure counts as a failed check.
    Rollout,
    /// Before each traffic increase (canary strategy); a failure holds the weight.
    ConfirmTrafficIncrease,
    /// Before promotion; a failure holds the release in `WaitingPromotion`.
    ConfirmPromotion,
    /// After the release succeeded or was rolled back; only logged.
    PostRollout,
    /// Every step while analysing; a pass rolls the release back.
    Rollback,
    /// Every event weir records; only logged.
    Event,
}

impl HookType {
    /// Flagger's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HookType::ConfirmRollout => "confirm-rollout",
            HookType::PreRollout => "pre-rollout",
            HookType::Rollout => "rollout",
            HookType::ConfirmTrafficIncrease => "confirm-traffic-increase",
            HookType::ConfirmPromotion => "confirm-promotion",
            HookType::PostRollout => "post-rollout",
            HookType::Rollback => "rollback",
            HookType::Event => "event",
        }
    }

    /// The types a Canary may name, in Flagger's spelling.
    pub const ALL: [HookType; 8] = [
        HookType::ConfirmRollout,
        HookType::PreRollout,
        HookType::Rollout,
        HookType::ConfirmTrafficIncrease,
        HookType::ConfirmPromotion,
        HookType::PostRollout,
        HookType::Rollback,
        HookType::Event,
    ];

    /// A gate that waits for a person (or a system) without counting failures.
    pub fn is_confirm(self) -> bool {
        matches!(
            self,
            HookType::ConfirmRollout
                | HookType::ConfirmTrafficIncrease
                | HookType::ConfirmPromotion
        )
    }
}

impl std::fmt::Display for HookType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One webhook of the analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// Its name, for events.
    pub name: String,
    /// When it is called.
    pub kind: HookType,
    /// Where (absolute http(s) URL).
    pub url: String,
    /// How long each attempt may take (default 10s).
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// Sent as the payload's `metadata`.
    pub metadata: BTreeMap<String, String>,
    /// No "waiting for approval" alert for this gate.
    pub mute_alert: bool,
    /// Do not verify the server's certificate.
    pub disable_tls: bool,
}

/// Session affinity: a user who reached the canary keeps reaching it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionAffinity {
    /// The cookie that pins a user to the canary.
    pub cookie_name: String,
    /// The cookie that pins a user to the primary, if any.
    pub primary_cookie_name: Option<String>,
    /// Max-Age of the canary cookie, in seconds (default 86400).
    pub max_age: u32,
    /// Cookie attributes, in Flagger's order: Domain, HttpOnly, Partitioned, Path, SameSite, Secure.
    pub domain: Option<String>,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `Partitioned`.
    pub partitioned: bool,
    /// `Path`.
    pub path: Option<String>,
    /// `SameSite` (Strict, Lax or None).
    pub same_site: Option<String>,
    /// `Secure`.
    pub secure: bool,
}

impl SessionAffinity {
    /// The `Set-Cookie` value for `name=value` living `max_age` seconds, with the attributes.
    pub fn set_cookie(&self, cookie: &str, max_age: i64) -> String {
        let mut out = format!("{cookie}; Max-Age={max_age}");
        if let Some(d) = &self.domain {
            out.push_str(&format!("; Domain={d}"));
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if self.partitioned {
            out.push_str("; Partitioned");
        }
        if let Some(p) = &self.path {
            out.push_str(&format!("; Path={p}"));
        }
        if let Some(s) = &self.same_site {
            out.push_str(&format!("; SameSite={s}"));
        }
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }
}

/// Where a Canary's alerts go: an AlertProvider and the least severity it receives.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRef {
    /// The entry's name.
    pub name: String,
    /// The least severity sent.
    pub severity: crate::core::spec::AlertSeverity,
    /// The AlertProvider's namespace (default: the Canary's).
    pub provider_namespace: String,
    /// The AlertProvider's name.
    pub provider_name: String,
}

/// The analysis settings that drive the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Time between steps.
    pub interval: Duration,
    /// Failed checks that trigger a rollback.
    pub threshold: u32,
    /// How traffic moves.
    pub strategy: Strategy,
    /// When set, traffic returns to the primary in these increments after promotion.
    pub step_weight_promotion: Option<Weight>,
    /// Mirror traffic to the canary (Blue/Green: during the iterations; canary: one step
    /// before the first shift).
    pub mirror: bool,
    /// Percent of requests mirrored (Istio `mirrorPercentage`); all when unset.
    pub mirror_weight: Option<Weight>,
    /// Sticky sessions (canary strategy).
    pub session_affinity: Option<SessionAffinity>,
    /// The metric checks.
    pub metrics: Vec<MetricCheck>,
    /// The webhooks, in the Canary's order.
    pub webhooks: Vec<Webhook>,
    /// Where alerts go.
    pub alerts: Vec<AlertRef>,
    /// How long past the due time a step waits for a metrics server that cannot be
    /// reached before the outage counts as a failed check (Flagger counts it at once: zero).
    /// The annotation [`METRICS_OUTAGE_ANNOTATION`] sets it; [`DEFAULT_METRICS_OUTAGE_GRACE`]
    /// otherwise.
    pub metrics_outage_grace: Duration,
    /// Readiness in the cluster: `progressDeadlineSeconds` and the ready thresholds.
    pub ready: ReadyRules,
}

/// The annotation that sets [`Analysis::metrics_outage_grace`] for one app (a Go duration;
/// `0s` counts an unreachable metrics server as a failed check at once, as Flagger does).
pub const METRICS_OUTAGE_ANNOTATION: &str = "weir.dev/metrics-outage-grace";

/// How long a due step waits for an unreachable metrics server by default: long enough for a
/// Prometheus restart or a rescheduled pod, short enough that a real outage is noticed.
pub const DEFAULT_METRICS_OUTAGE_GRACE: Duration = Duration::from_secs(120);

impl Analysis {
    /// The webhooks of one type, in order.
    pub fn hooks(&self, kind: HookType) -> impl Iterator<Item = &Webhook> {
        self.webhooks.iter().filter(move |h| h.kind == kind)
    }

    /// Whether any webhook has this type.
    pub fn has_hooks(&self, kind: HookType) -> bool {
        self.hooks(kind).next().is_some()
    }
}

/// Labels and annotations for one of the objects weir writes.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Metadata {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
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
    /// Optional `trafficDistribution` of the Services.
    pub traffic_distribution: Option<String>,
    /// Headless Services (`clusterIP: None`).
    pub headless: bool,
    /// Add the target's other container ports to the Services, and ports to destinations.
    pub port_discovery: bool,
    /// A VirtualService without hosts or gateways, for a root VirtualService to delegate to.
    pub delegation: bool,
    /// VirtualService gateways.
    pub gateways: Vec<String>,
    /// VirtualService hosts besides the apex name.
    pub hosts: Vec<String>,
    /// DestinationRule traffic policy.
    pub traffic_policy: Option<Json>,
    /// HTTP match conditions of every route.
    pub match_: Vec<Json>,
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
    /// Metadata of the apex Service and the VirtualService.
    pub apex: Metadata,
    /// Metadata of `<name>-primary`.
    pub primary: Metadata,
    /// Metadata of `<name>-canary`.
    pub canary: Metadata,
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
    /// The namespace: the folder's kustomization `namespace:` when it sets one (it wins, as
    /// kustomize applies it), else `metadata.namespace`.
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
    /// `ingressRef.name`, for `{{ ingress }}` in templates.
    pub ingress: Option<String>,
    /// `routeRef.name`, for `{{ route }}` in templates.
    pub route: Option<String>,
    /// Routing settings.
    pub service: Service,
    /// Analysis settings.
    pub analysis: Analysis,
    /// Promote without analysis.
    pub skip_analysis: bool,
    /// Do nothing while true.
    pub suspend: bool,
    /// Remove weir's folder when the Canary is deleted.
    pub revert_on_deletion: bool,
    /// Prometheus address for built-in metrics (`metricsServer`).
    pub metrics_server: Option<String>,
    /// PR mode: the phases whose steps wait for an approving review, when the annotation
    /// [`PR_REVIEW_ANNOTATION`] sets them for this app.
    pub pr_review: Option<Vec<crate::core::spec::Phase>>,
    /// The Flux Kustomization that applies the app (`namespace/name`), when the annotation
    /// [`KUSTOMIZATION_ANNOTATION`] names it; the cluster view finds it by path otherwise.
    pub kustomization: Option<String>,
}

/// The annotation that names the Flux Kustomization applying an app, `namespace/name`.
pub const KUSTOMIZATION_ANNOTATION: &str = "weir.dev/kustomization";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Where Kubernetes puts a namespaced object that names no namespace.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Applies Flagger's defaults and rules to a parsed Canary. `namespace` is the folder's
/// kustomization `namespace:`, which wins over the file's as kustomize applies it. Returns the
/// Canary with any warnings, or every error found (not just the first).
pub(super) fn validate(
    raw: raw::Canary,
    at: &Located,
    min_interval: Duration,
    namespace: Option<&str>,
) -> Result<(Canary, Vec<LocatedError>), Vec<LocatedError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let spec = raw.spec;

    let namespace = match namespace.map(str::to_string).or(raw.metadata.namespace) {
        Some(ns) if is_dns_label(&ns) => ns,
        Some(ns) => {
            errors.push(at.error(
                &p(&["metadata", "namespace"]),
                format!("`{ns}` is not a valid namespace (lowercase letters, digits and '-')"),
            ));
            String::new()
        }
        // Flux applies a namespaced object that names no namespace (and no
        // `targetNamespace`) to `default`, as kubectl does; weir renders for the same one.
        None => {
            warnings.push(at.warning(
                &p(&["metadata"]),
                "no namespace: Flux applies this Canary and its Deployment to `default`, so weir renders for `default`; set metadata.namespace, or `namespace:` in the kustomization.yaml of this folder, to say so",
            ));
            DEFAULT_NAMESPACE.to_string()
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
    let position = |path: &[&str]| {
        at.index
            .map(|i| i.locate(at.doc, &p(path)))
            .map(|l| (l.line, l.col))
            .unwrap_or((1, 1))
    };
    let target_at = position(&["spec", "targetRef", "name"]);
    let name_at = position(&["metadata", "name"]);
    let service_at = position(&["spec", "service", "name"]);
    let autoscaler_at = position(&["spec", "autoscalerRef", "name"]);
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

    let unsupported: [(&str, bool, &str); 3] = [
        (
            "upstreamRef",
            spec.upstream_ref.is_some(),
            "Gloo upstreams are not supported; weir renders Istio routing: remove it",
        ),
        (
            "canaryAnalysis",
            spec.canary_analysis.is_some(),
            "the old name is not read; rename it to `analysis`",
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
    let progress_deadline = spec.progress_deadline_seconds;

    let service = service(
        spec.service,
        &spec.target_ref.name,
        at,
        &mut errors,
        &mut warnings,
    );
    let skip_analysis = spec.skip_analysis.unwrap_or(false);
    let analysis = match spec.analysis {
        Some(a) => analysis(a, at, min_interval, &namespace, &mut errors, &mut warnings),
        // Flagger treats a Canary without analysis as skipAnalysis; weir asks for it said.
        None if skip_analysis => Some(Analysis {
            interval: DEFAULT_INTERVAL,
            threshold: 1,
            strategy: Strategy::Canary {
                steps: Steps::Linear(Weight::FULL),
                max_weight: Weight::FULL,
            },
            step_weight_promotion: None,
            mirror: false,
            mirror_weight: None,
            session_affinity: None,
            metrics: Vec::new(),
            webhooks: Vec::new(),
            alerts: Vec::new(),
            metrics_outage_grace: DEFAULT_METRICS_OUTAGE_GRACE,
            ready: ReadyRules::default(),
        }),
        None => {
            errors.push(at.error(
                &p(&["spec"]),
                "analysis is required: give it stepWeight, stepWeights or iterations (and metrics), or set skipAnalysis: true",
            ));
            None
        }
    };

    let analysis = analysis.map(|mut a| {
        let grace = raw
            .metadata
            .annotations
            .as_ref()
            .and_then(|m| m.get(METRICS_OUTAGE_ANNOTATION));
        if let Some(text) = grace {
            match GoDuration::parse(text) {
                Ok(d) => a.metrics_outage_grace = d.get(),
                Err(e) => errors.push(at.error(
                    &p(&["metadata", "annotations", METRICS_OUTAGE_ANNOTATION]),
                    format!("{e}: how long a due step waits for an unreachable metrics server, e.g. `2m`, or `0s` to count it as a failed check at once"),
                )),
            }
        }
        if let Some(secs) = progress_deadline {
            a.ready.progress_deadline = Duration::from_secs(u64::from(secs));
        }
        a
    });

    // No evidence, no advance: an analysis that checks nothing is an explicit choice.
    if let Some(a) = &analysis {
        let opted_in = raw
            .metadata
            .annotations
            .as_ref()
            .and_then(|m| m.get(NO_EVIDENCE_ANNOTATION))
            .is_some_and(|v| v == "true");
        let checks = !a.metrics.is_empty()
            || a.webhooks.iter().any(|h| {
                matches!(
                    h.kind,
                    HookType::PreRollout | HookType::Rollout | HookType::ConfirmPromotion
                )
            });
        if !checks && !opted_in && !skip_analysis {
            errors.push(at.error(
                &p(&["spec", "analysis", "metrics"]),
                format!("the analysis checks nothing (no metrics, no pre-rollout, rollout or confirm-promotion webhook): weir would promote every revision without evidence. Add metrics, or opt in with the annotation {NO_EVIDENCE_ANNOTATION}: \"true\""),
            ));
        }
    }

    let pr_review = match raw
        .metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(PR_REVIEW_ANNOTATION))
    {
        None => None,
        Some(text) => match review_phases(text) {
            Ok(phases) => Some(phases),
            Err(bad) => {
                errors.push(at.error(
                    &p(&["metadata", "annotations", PR_REVIEW_ANNOTATION]),
                    format!("{bad}: list Flagger phases (Progressing, WaitingPromotion, Promoting, Finalising, Succeeded, Failed), or `none`"),
                ));
                None
            }
        },
    };

    let kustomization = raw
        .metadata
        .annotations
        .as_ref()
        .and_then(|m| m.get(KUSTOMIZATION_ANNOTATION))
        .cloned();
    if let Some(named) = &kustomization {
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 253
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !named
            .split_once('/')
            .is_some_and(|(ns, n)| valid(ns) && valid(n))
        {
            errors.push(at.error(
                &p(&["metadata", "annotations", KUSTOMIZATION_ANNOTATION]),
                format!("{named:?} is not namespace/name of a Flux Kustomization, e.g. flux-system/apps"),
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
            ingress: spec.ingress_ref.map(|r| r.name),
            route: spec.route_ref.map(|r| r.name),
            service: service.expect("no errors means the service was built"),
            analysis: analysis.expect("no errors means the analysis was built"),
            skip_analysis,
            suspend: spec.suspend.unwrap_or(false),
            revert_on_deletion: spec.revert_on_deletion.unwrap_or(false),
            metrics_server: spec.metrics_server,
            pr_review,
            kustomization,
        },
        warnings,
    ))
}

fn to_json(v: Option<serde_yaml::Value>) -> Option<Json> {
    v.map(|v| serde_json::to_value(v).unwrap_or(Json::Null))
}

fn metadata(raw: Option<raw::CustomMetadata>) -> Metadata {
    raw.map(|m| Metadata {
        labels: m.labels.unwrap_or_default(),
        annotations: m.annotations.unwrap_or_default(),
    })
    .unwrap_or_default()
}

fn service(
    raw: raw::Service,
    target: &str,
    at: &Located,
    errors: &mut Vec<LocatedError>,
    warnings: &mut Vec<LocatedError>,
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
    for (name, present, why) in [
        ("gatewayRefs", raw.gateway_refs.is_some(), "Gateway API routing is not supported; weir renders an Istio VirtualService: use gateways"),
        ("mirror", raw.mirror.is_some(), "Gateway API mirror filters are not supported; for Istio, set analysis.mirror (and mirrorWeight)"),
        ("meshName", raw.mesh_name.is_some(), "App Mesh is not supported; weir renders Istio routing: remove it"),
        ("backends", raw.backends.is_some(), "App Mesh backends are not supported; weir renders Istio routing: remove them"),
        ("backendTimeout", raw.backend_timeout.is_some(), "a Gateway API field; for Istio, use timeout"),
        ("appProtocol", raw.app_protocol.as_deref() == Some("tcp"), "TCP routing (appProtocol: tcp) is not supported yet: weir renders HTTP routes; use http, http2 or grpc, or leave it out"),
    ] {
        if present {
            errors.push(at.error(&field(name), why));
        }
    }
    if raw.unmanaged_metadata.is_some() {
        warnings.push(at.warning(
            &field("unmanagedMetadata"),
            "has no effect with weir: Flux applies only the labels and annotations weir writes, and keeps what others add",
        ));
    }
    let delegation = raw.delegation.unwrap_or(false);
    let gateways = raw.gateways.unwrap_or_default();
    let hosts = raw.hosts.unwrap_or_default();
    if delegation && (!gateways.is_empty() || !hosts.is_empty()) {
        errors.push(at.error(
            &field("delegation"),
            "a delegate VirtualService cannot have hosts or gateways (the root VirtualService has them): remove spec.service.hosts and spec.service.gateways",
        ));
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
        traffic_distribution: raw.traffic_distribution,
        headless: raw.headless.unwrap_or(false),
        port_discovery: raw.port_discovery.unwrap_or(false),
        delegation,
        gateways,
        hosts,
        traffic_policy: to_json(raw.traffic_policy),
        match_: raw
            .match_
            .unwrap_or_default()
            .into_iter()
            .map(|m| to_json(Some(m)).unwrap_or(Json::Null))
            .collect(),
        retries: to_json(raw.retries),
        timeout: raw.timeout,
        headers: to_json(raw.headers),
        cors_policy: to_json(raw.cors_policy),
        rewrite: to_json(raw.rewrite),
        apex: metadata(raw.apex),
        primary: metadata(raw.primary),
        canary: metadata(raw.canary),
    })
}

fn analysis(
    raw: raw::Analysis,
    at: &Located,
    min_interval: Duration,
    namespace: &str,
    errors: &mut Vec<LocatedError>,
    warnings: &mut Vec<LocatedError>,
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
    let mut ready = ReadyRules::default();
    for (name, value, slot) in [
        (
            "primaryReadyThreshold",
            raw.primary_ready_threshold,
            &mut ready.primary_threshold,
        ),
        (
            "canaryReadyThreshold",
            raw.canary_ready_threshold,
            &mut ready.canary_threshold,
        ),
    ] {
        match value {
            Some(v) if v > 100 => errors.push(at.error(
                &field(name),
                format!("{v} is not a percentage; use 0 to 100 (the share of updated replicas that must be available)"),
            )),
            Some(v) => *slot = v,
            None => {}
        }
    }

    let weight = |name: &str, value: u32, errors: &mut Vec<LocatedError>| -> Weight {
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
    let iterations = raw.iterations.filter(|i| *i > 0);
    let match_: Vec<Json> = raw
        .match_
        .unwrap_or_default()
        .into_iter()
        .map(|m| to_json(Some(m)).unwrap_or(Json::Null))
        .collect();
    if iterations.is_some() && (raw.step_weight.is_some() || raw.step_weights.is_some()) {
        let which = if raw.step_weight.is_some() {
            "stepWeight"
        } else {
            "stepWeights"
        };
        errors.push(at.error(
            &field(which),
            format!(
                "give either iterations (A/B testing, Blue/Green) or {which} (canary), not both"
            ),
        ));
    }
    if iterations.is_none() && !match_.is_empty() {
        errors.push(at.error(
            &field("match"),
            "A/B testing needs iterations as well: without them Flagger ignores match and runs a canary",
        ));
    }
    let strategy = match iterations {
        Some(n) if !match_.is_empty() => Some(Strategy::AbTesting {
            iterations: n,
            match_,
        }),
        Some(n) => Some(Strategy::BlueGreen { iterations: n }),
        None => {
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
            steps.map(|steps| Strategy::Canary { steps, max_weight })
        }
    };
    if iterations.is_some() {
        for (name, present) in [("maxWeight", raw.max_weight.is_some())] {
            if present {
                warnings.push(at.warning(
                    &field(name),
                    "ignored with iterations (A/B testing, Blue/Green), as in Flagger",
                ));
            }
        }
    }
    let mirror = raw.mirror.unwrap_or(false);
    // Zero means unset, as in Flagger (its router mirrors all requests unless mirrorWeight > 0).
    let mirror_weight = raw
        .mirror_weight
        .filter(|w| *w != 0)
        .map(|w| weight("mirrorWeight", w, errors));
    if mirror_weight.is_some() && !mirror {
        warnings.push(at.warning(&field("mirrorWeight"), "ignored without mirror: true"));
    }
    if mirror && matches!(strategy, Some(Strategy::AbTesting { .. })) {
        errors.push(at.error(
            &field("mirror"),
            "mirroring does not combine with A/B testing (Flagger drops it): use it with Blue/Green (iterations) or the canary strategy",
        ));
    }
    let session_affinity = raw
        .session_affinity
        .and_then(|sa| session_affinity(sa, at, errors));
    if session_affinity.is_some() {
        if !matches!(strategy, Some(Strategy::Canary { .. }) | None) {
            errors.push(at.error(
                &field("sessionAffinity"),
                "session affinity works with the canary strategy (stepWeight or stepWeights), as in Flagger",
            ));
        }
        if mirror {
            errors.push(at.error(
                &field("sessionAffinity"),
                "session affinity does not combine with mirroring: choose one",
            ));
        }
    }
    // Zero means unset, as in Flagger: the promotion moves all traffic at once.
    let step_weight_promotion = raw
        .step_weight_promotion
        .filter(|w| *w != 0)
        .map(|w| weight("stepWeightPromotion", w, errors));
    // Zero means unset, as in Flagger: the first failed check rolls back.
    let threshold = raw.threshold.filter(|t| *t > 0).unwrap_or(1);
    let mut metrics = Vec::new();
    for (i, m) in raw.metrics.unwrap_or_default().into_iter().enumerate() {
        let mut path = field("metrics");
        path.push(Seg::Index(i));
        if let Some(check) = metric(m, &path, at, errors) {
            metrics.push(check);
        }
    }
    let mut webhooks = Vec::new();
    for (i, h) in raw.webhooks.unwrap_or_default().into_iter().enumerate() {
        let mut path = field("webhooks");
        path.push(Seg::Index(i));
        if let Some(hook) = webhook(h, &path, at, errors) {
            webhooks.push(hook);
        }
    }
    let mut alerts = Vec::new();
    for (i, a) in raw.alerts.unwrap_or_default().into_iter().enumerate() {
        let mut path = field("alerts");
        path.push(Seg::Index(i));
        if let Some(alert) = alert(a, &path, namespace, at, errors) {
            alerts.push(alert);
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Analysis {
        interval,
        threshold,
        strategy: strategy.expect("no errors means the strategy was read"),
        step_weight_promotion,
        mirror,
        mirror_weight,
        session_affinity,
        metrics,
        webhooks,
        alerts,
        metrics_outage_grace: DEFAULT_METRICS_OUTAGE_GRACE,
        ready,
    })
}

/// A cookie name: an RFC 6265 token (no separators, spaces or controls).
fn is_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn session_affinity(
    raw: raw::SessionAffinity,
    at: &Located,
    errors: &mut Vec<LocatedError>,
) -> Option<SessionAffinity> {
    let field = |name: &str| p(&["spec", "analysis", "sessionAffinity", name]);
    let before = errors.len();
    if !is_cookie_name(&raw.cookie_name) {
        errors.push(at.error(
            &field("cookieName"),
            format!(
                "`{}` is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
                raw.cookie_name
            ),
        ));
    }
    if let Some(primary) = &raw.primary_cookie_name {
        if !is_cookie_name(primary) {
            errors.push(at.error(
                &field("primaryCookieName"),
                format!("`{primary}` is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"),
            ));
        } else if *primary == raw.cookie_name {
            errors.push(at.error(
                &field("primaryCookieName"),
                "must differ from cookieName: one cookie cannot pin users to both sides",
            ));
        }
    }
    if let Some(s) = &raw.same_site {
        if !matches!(s.as_str(), "Strict" | "Lax" | "None") {
            errors.push(at.error(
                &field("sameSite"),
                format!("`{s}` is not one of Strict, Lax, None"),
            ));
        }
    }
    for (name, value) in [("domain", &raw.domain), ("path", &raw.path)] {
        if value.as_deref().is_some_and(|v| {
            v.is_empty() || v.contains([';', ',']) || v.chars().any(|c| c.is_control() || c == ' ')
        }) {
            errors.push(at.error(
                &field(name),
                "a cookie attribute is one word without ';', ',' or spaces",
            ));
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(SessionAffinity {
        cookie_name: raw.cookie_name,
        primary_cookie_name: raw.primary_cookie_name,
        max_age: raw.max_age.filter(|m| *m > 0).unwrap_or(86_400),
        domain: raw.domain,
        http_only: raw.http_only.unwrap_or(false),
        partitioned: raw.partitioned.unwrap_or(false),
        path: raw.path,
        same_site: raw.same_site,
        secure: raw.secure.unwrap_or(false),
    })
}

/// The most attempts weir makes of one webhook call (Flagger has no bound; a tick has).
const MAX_HOOK_RETRIES: u32 = 10;

fn webhook(
    raw: raw::Webhook,
    base: &[Seg],
    at: &Located,
    errors: &mut Vec<LocatedError>,
) -> Option<Webhook> {
    let field = |name: &str| {
        let mut path = base.to_vec();
        path.push(Seg::Key(name.to_string()));
        path
    };
    let before = errors.len();
    let kind = match raw.type_.as_deref().unwrap_or("") {
        "" => Some(HookType::Rollout),
        t => match HookType::ALL.iter().find(|k| k.as_str() == t) {
            Some(k) => Some(*k),
            None => {
                errors.push(at.error(
                    &field("type"),
                    format!(
                        "`{t}` is not a webhook type; use one of {}",
                        HookType::ALL.map(|k| k.as_str()).join(", ")
                    ),
                ));
                None
            }
        },
    };
    if raw.name.is_empty() || raw.name.len() > 253 || raw.name.chars().any(char::is_control) {
        errors.push(at.error(
            &field("name"),
            "a webhook name is one line of at most 253 printable characters",
        ));
    }
    if !is_http_url(&raw.url) {
        errors.push(at.error(
            &field("url"),
            format!(
                "`{}` is not an absolute http(s) URL",
                crate::core::secret::redact_url(&raw.url)
            ),
        ));
    }
    // Flagger: a timeout shorter than two characters (empty) is 10s.
    let timeout = match raw.timeout.as_deref() {
        None => Duration::from_secs(10),
        Some(t) if t.len() < 2 => Duration::from_secs(10),
        Some(t) => match GoDuration::parse(t) {
            Ok(d)
                if d.get() >= Duration::from_millis(100)
                    && d.get() <= Duration::from_secs(3600) =>
            {
                d.get()
            }
            Ok(_) => {
                errors.push(at.error(&field("timeout"), "must be between 100ms and 1h"));
                Duration::from_secs(10)
            }
            Err(e) => {
                errors.push(at.error(&field("timeout"), e.to_string()));
                Duration::from_secs(10)
            }
        },
    };
    let retries = raw.retries.unwrap_or(0);
    if retries > MAX_HOOK_RETRIES {
        errors.push(at.error(
            &field("retries"),
            format!(
                "{retries} is more than weir makes ({MAX_HOOK_RETRIES}): a tick has a deadline"
            ),
        ));
    }
    if errors.len() > before {
        return None;
    }
    Some(Webhook {
        name: raw.name,
        kind: kind?,
        url: raw.url,
        timeout,
        retries,
        metadata: raw.metadata.unwrap_or_default(),
        mute_alert: raw.mute_alert.unwrap_or(false),
        disable_tls: raw.disable_tls.unwrap_or(false),
    })
}

fn alert(
    raw: raw::Alert,
    base: &[Seg],
    namespace: &str,
    at: &Located,
    errors: &mut Vec<LocatedError>,
) -> Option<AlertRef> {
    use crate::core::spec::AlertSeverity;
    let field = |name: &str| {
        let mut path = base.to_vec();
        path.push(Seg::Key(name.to_string()));
        path
    };
    // Flagger's CRD and docs: no severity means info.
    let severity = match raw.severity.as_deref().unwrap_or("") {
        "" | "info" => AlertSeverity::Info,
        "warn" => AlertSeverity::Warn,
        "error" => AlertSeverity::Error,
        other => {
            errors.push(at.error(
                &field("severity"),
                format!("`{other}` is not a severity; use info, warn or error"),
            ));
            return None;
        }
    };
    Some(AlertRef {
        name: raw.name,
        severity,
        provider_namespace: raw
            .provider_ref
            .namespace
            .unwrap_or_else(|| namespace.to_string()),
        provider_name: raw.provider_ref.name,
    })
}

fn metric(
    raw: raw::Metric,
    base: &[Seg],
    at: &Located,
    errors: &mut Vec<LocatedError>,
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

/// The annotation that sets, for one app, the phases whose steps wait for an approving
/// review in PR mode: comma-separated phases, or `none`.
pub const PR_REVIEW_ANNOTATION: &str = "weir.dev/pr-review";

/// An item of a list of phases that is not a phase (cleaned, at most 40 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a phase")]
pub struct NotAPhase(pub String);

/// Parses a list of phases (`Promoting,Progressing`, or `none`); the bad item on error.
pub fn review_phases(text: &str) -> Result<Vec<crate::core::spec::Phase>, NotAPhase> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if item == "none" {
            continue;
        }
        let phase = serde_yaml::from_str::<crate::core::spec::Phase>(item)
            .map_err(|_| NotAPhase(crate::core::text::clean(item, 40)))?;
        out.push(phase);
    }
    Ok(out)
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
