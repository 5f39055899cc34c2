//! Rollout specs read from the config repo: Flagger `Canary` and `MetricTemplate` files.
//!
//! Owns turning YAML bytes into validated domain values, and every error a user sees about
//! them (file, line, column, field, what is wrong, what would be accepted). It never reads
//! files itself: callers hand it bytes, so the same code serves Git trees and checkouts.

pub mod alert_provider;
pub mod canary;
#[cfg(test)]
mod hostile_tests;
pub mod phase;
mod raw;
pub mod template;

pub use alert_provider::{AlertSeverity, AlertTarget, ProviderKind};
pub use canary::{
    AlertRef, Analysis, Canary, HookType, Metadata, MetricCheck, MetricSource, Service,
    SessionAffinity, Steps, Strategy, Webhook, Weight,
};
pub use phase::Phase;
pub use template::{MetricTemplate, TemplateIndex};

pub use crate::core::located::{Located, LocatedError, Severity};
use crate::core::positions::{display_path, PositionIndex, Seg};
use raw::TypeMeta;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The API group and version weir reads, as Flagger writes it.
pub const FLAGGER_API_VERSION: &str = "flagger.app/v1beta1";

/// Builds a path from string keys and indexes: `p(&["spec", "analysis"])`.
pub fn p(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::Key((*k).to_string())).collect()
}

/// A Canary document that could not be validated: who it seems to be, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidCanary {
    /// Repository-relative path of its file.
    pub file: String,
    /// `metadata.name`, when readable.
    pub name: Option<String>,
    /// `metadata.namespace`, when readable.
    pub namespace: Option<String>,
    /// Every error found in it.
    pub errors: Vec<LocatedError>,
}

impl InvalidCanary {
    /// `namespace/name` as far as known, for reports.
    pub fn display_name(&self) -> String {
        format!(
            "{}/{}",
            self.namespace.as_deref().unwrap_or("?"),
            self.name.as_deref().unwrap_or("?")
        )
    }
}

/// A validated Canary with its warnings, or every error found in it.
pub type CanaryResult = Result<(Canary, Vec<LocatedError>), InvalidCanary>;

/// What a YAML file holds that weir cares about.
#[derive(Debug, Default)]
pub struct FileScan {
    /// Canary documents, each validated on its own.
    pub canaries: Vec<CanaryResult>,
    /// MetricTemplate documents.
    pub templates: Vec<Result<MetricTemplate, Vec<LocatedError>>>,
    /// AlertProvider documents.
    pub providers: Vec<Result<alert_provider::AlertProviderSpec, Vec<LocatedError>>>,
    /// Problems that concern the whole file (syntax) or documents of the wrong version.
    pub errors: Vec<LocatedError>,
}

impl FileScan {
    /// Whether the file holds any spec or error.
    pub fn holds_anything(&self) -> bool {
        !self.canaries.is_empty() || self.holds_more_than_canaries()
    }

    /// Whether the file holds anything but valid Canaries.
    pub fn holds_more_than_canaries(&self) -> bool {
        !self.templates.is_empty()
            || !self.providers.is_empty()
            || !self.errors.is_empty()
            || self.canaries.iter().any(|c| c.is_err())
    }

    /// A file weir will not read (a link, a file too large), as one error.
    pub fn refused(file: &str, reason: &str) -> FileScan {
        FileScan {
            errors: vec![LocatedError {
                file: file.to_string(),
                line: 1,
                col: 1,
                severity: Severity::Error,
                field: "(file)".into(),
                message: reason.to_string(),
            }],
            ..FileScan::default()
        }
    }
}

/// Cheap test on raw bytes: can this file hold a document weir reads? Lets a scan of a large
/// repository skip parsing every manifest.
pub fn may_hold_spec(bytes: &[u8]) -> bool {
    let needle_canary = b"Canary";
    let needle_template = b"MetricTemplate";
    contains(bytes, needle_canary)
        || contains(bytes, needle_template)
        || contains(bytes, b"AlertProvider")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Parses every document of a YAML file and validates the Canary and MetricTemplate ones.
/// `min_interval` is the smallest analysis interval accepted.
pub fn scan_file(file: &str, bytes: &[u8], min_interval: std::time::Duration) -> FileScan {
    scan_file_in(file, bytes, min_interval, None)
}

/// [`scan_file`] for a file whose folder's kustomization sets `namespace:`, which kustomize
/// applies to every object it builds: it wins over the documents' own.
pub fn scan_file_in(
    file: &str,
    bytes: &[u8],
    min_interval: std::time::Duration,
    namespace: Option<&str>,
) -> FileScan {
    let mut scan = FileScan::default();
    let src = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            scan.errors.push(LocatedError {
                file: file.to_string(),
                line: 1,
                col: 1,
                severity: Severity::Error,
                field: "(file)".into(),
                message: format!("not UTF-8 text ({e})"),
            });
            return scan;
        }
    };
    // The position index (yaml-rust2) is stricter than libyaml in a few corners that
    // kubectl and Flux accept, such as continuation lines of a quoted scalar indented like
    // its key (Flagger's own CRD file has them). Such a file is read without positions;
    // only a file that libyaml refuses too is broken.
    let index = match PositionIndex::parse(src) {
        Ok(index) => Some(index),
        Err(_) if crate::core::yaml::documents(src).is_ok() => None,
        Err(e) => {
            scan.errors.push(LocatedError {
                file: file.to_string(),
                line: e.line,
                col: e.col,
                severity: Severity::Error,
                field: "(syntax)".into(),
                message: format!("broken YAML: {}", e.message),
            });
            return scan;
        }
    };
    let docs = match crate::core::yaml::deserializer(src) {
        Ok(d) => d,
        Err(e) => {
            scan.errors.push(LocatedError {
                file: file.to_string(),
                line: e.line,
                col: e.col,
                severity: Severity::Error,
                field: "(file)".into(),
                message: e.message,
            });
            return scan;
        }
    };
    let mut only_canaries = true;
    let mut previous: Option<String> = None;
    for (doc, de) in docs.enumerate() {
        let meta = match serde_yaml::Value::deserialize(de) {
            Ok(value) => {
                previous = None;
                // Not a mapping (a list, a scalar, an empty document): not ours.
                match serde_yaml::from_value::<TypeMeta>(value) {
                    Ok(meta) => meta,
                    Err(_) => continue,
                }
            }
            Err(e) => {
                let shown = e.to_string();
                if previous.as_deref() == Some(shown.as_str()) {
                    // After an error in the stream itself (libyaml is stricter than the
                    // position index: control characters, some indentation), serde_yaml's
                    // iterator yields that same error for ever. The file is broken as a
                    // whole, as when the index refuses it.
                    let e = crate::core::yaml::YamlError::from_serde(
                        crate::core::yaml::strip_bom(src),
                        &e,
                    );
                    return FileScan {
                        errors: vec![LocatedError {
                            file: file.to_string(),
                            line: e.line,
                            col: e.col,
                            severity: Severity::Error,
                            field: "(syntax)".into(),
                            message: format!("broken YAML: {}", e.message),
                        }],
                        ..FileScan::default()
                    };
                }
                previous = Some(shown);
                // An error within this document (a duplicate key): read its type leniently,
                // and let the strict parse below name the field at fault. When even its type
                // cannot be read (the duplicate is `kind` or `apiVersion`), it may be one of
                // ours: say so rather than skip it, which would drop the app silently.
                let again =
                    crate::core::yaml::Deserializer::from_str(crate::core::yaml::strip_bom(src))
                        .nth(doc)
                        .map(TypeMeta::deserialize);
                match again {
                    Some(Ok(meta)) => meta,
                    _ => {
                        let at = Located {
                            file,
                            doc,
                            index: index.as_ref(),
                        };
                        scan.errors.push(serde_error(&at, &e));
                        continue;
                    }
                }
            }
        };
        let kind = meta.kind_str();
        if kind.is_some() && kind != Some("Canary") {
            only_canaries = false;
        }
        if !matches!(kind, Some("Canary" | "MetricTemplate" | "AlertProvider")) {
            continue;
        }
        let at = Located {
            file,
            doc,
            index: index.as_ref(),
        };
        let api = meta.api_version_str().unwrap_or("");
        if !api.starts_with("flagger.app/") {
            continue;
        }
        if api != FLAGGER_API_VERSION {
            scan.errors.push(at.error(
                &p(&["apiVersion"]),
                format!("`{api}` is not supported; weir reads {FLAGGER_API_VERSION}"),
            ));
            continue;
        }
        match kind {
            Some("Canary") => {
                let text = |field: &str| {
                    meta.metadata
                        .as_ref()
                        .and_then(|m| m.get(field))
                        .and_then(|v| v.as_str())
                        .map(|s| crate::core::text::clean(s, 253))
                };
                let parsed = strict::<raw::Canary>(src, doc, &at)
                    .and_then(|raw| canary::validate(raw, &at, min_interval, namespace))
                    .map_err(|errors| InvalidCanary {
                        file: file.to_string(),
                        name: text("name"),
                        namespace: text("namespace"),
                        errors,
                    });
                scan.canaries.push(parsed);
            }
            Some("AlertProvider") => {
                let parsed = alert_provider::read(src, doc, &at).map(|mut provider| {
                    if let Some(ns) = namespace {
                        provider.namespace = Some(ns.to_string());
                    }
                    provider
                });
                scan.providers.push(parsed);
            }
            _ => {
                let parsed = strict::<raw::MetricTemplate>(src, doc, &at)
                    .and_then(|raw| template::validate(raw, &at, namespace));
                scan.templates.push(parsed);
            }
        }
    }
    for (canary, _) in scan.canaries.iter_mut().flatten() {
        canary.file_alone = only_canaries;
    }
    scan
}

impl TypeMeta {
    fn kind_str(&self) -> Option<&str> {
        self.kind.as_ref().and_then(|k| k.as_str())
    }
    fn api_version_str(&self) -> Option<&str> {
        self.api_version.as_ref().and_then(|k| k.as_str())
    }
}

/// Deserializes document `doc` of `src` strictly, turning serde's message into a pinned error.
fn strict<T: DeserializeOwned>(
    src: &str,
    doc: usize,
    at: &Located,
) -> Result<T, Vec<LocatedError>> {
    let de = crate::core::yaml::Deserializer::from_str(crate::core::yaml::strip_bom(src))
        .nth(doc)
        .expect("document counted by the first pass");
    T::deserialize(de).map_err(|e| vec![serde_error(at, &e)])
}

/// serde_yaml says `spec.analysis.stepWeight: invalid type: ... at line 3 column 5`; split
/// that into field, message and position.
fn serde_error(at: &Located, e: &serde_yaml::Error) -> LocatedError {
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let (field, message) = match text.split_once(": ") {
        Some((field, message)) if !field.contains(' ') => (field.to_string(), message.to_string()),
        _ => ("(document)".to_string(), text.clone()),
    };
    let message = explain_serde(&message);
    let (line, col) = match e.location() {
        Some(loc) => (loc.line(), loc.column()),
        None => (1, 1),
    };
    let duplicate = duplicate_key_name(&message);
    let message = match &duplicate {
        Some(key) => format!(
            "`{key}` is written twice in this mapping; kustomize refuses such a file, so Flux would fail the whole Kustomization"
        ),
        None => message,
    };
    let (field, line, col) = if let Some(unknown) = unknown_field_name(&message).or(duplicate) {
        // serde names the parent; point at the offending key itself.
        let mut path: Vec<Seg> = if field == "(document)" {
            Vec::new()
        } else {
            crate::core::positions::path(&field)
        };
        path.push(Seg::Key(unknown.clone()));
        let (line, col) = match at.index.and_then(|i| i.key(at.doc, &path)) {
            Some(loc) => (loc.line, loc.col),
            None => (line, col),
        };
        (display_path(&path), line, col)
    } else {
        (field, line, col)
    };
    LocatedError {
        file: at.file.to_string(),
        line,
        col,
        severity: Severity::Error,
        field,
        message,
    }
}

/// The key serde_yaml names in `duplicate entry with key "kind"` or `duplicate field `kind``.
fn duplicate_key_name(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("duplicate entry with key \"") {
        return Some(rest[..rest.find('"')?].to_string());
    }
    let rest = message.strip_prefix("duplicate field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Rephrases serde's type names into what a YAML author would write.
fn explain_serde(message: &str) -> String {
    message
        .replace("expected u32", "expected a whole number")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_positions_are_absolute_in_multi_document_files() {
        let src = "kind: Other\n---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: x\nspec:\n  provider:\n    type: prometheus\n  query: up\n  extra: 1\n";
        let scan = scan_file("t.yaml", src.as_bytes(), std::time::Duration::from_secs(10));
        let err = &scan.templates[0].as_ref().unwrap_err()[0];
        assert_eq!((err.line, err.col), (11, 3), "{err}");
        assert_eq!(err.field, "spec.extra");
    }

    /// `threshold: 0`, `stepWeightPromotion: 0` and `mirrorWeight: 0` mean unset, as in
    /// Flagger (threshold 1, a promotion at once, all requests mirrored).
    #[test]
    fn zero_means_unset_where_flagger_says_so() {
        let text = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: podinfo\n  namespace: test\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: podinfo\n  service:\n    port: 9898\n  analysis:\n    interval: 1m\n    threshold: 0\n    stepWeight: 10\n    stepWeightPromotion: 0\n    mirror: true\n    mirrorWeight: 0\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n";
        let scan = scan_file(
            "c.yaml",
            text.as_bytes(),
            std::time::Duration::from_secs(10),
        );
        let (canary, warnings) = scan.canaries.into_iter().next().unwrap().unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let a = &canary.analysis;
        assert_eq!(
            (a.threshold, a.step_weight_promotion, a.mirror_weight),
            (1, None, None)
        );
    }

    /// The Flagger fields weir cannot honour are one error each, naming the field and the
    /// way forward; the ones it honours are accepted.
    #[test]
    fn fields_weir_cannot_honour_are_named_and_the_others_accepted() {
        let canary = |service_extra: &str| {
            format!(
                "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: podinfo\n  namespace: test\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: podinfo\n  service:\n    port: 9898\n{service_extra}  analysis:\n    interval: 1m\n    iterations: 3\n    match:\n      - headers:\n          x-canary:\n            exact: insider\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n"
            )
        };
        let scan_one = |extra: &str| {
            let text = canary(extra);
            let scan = scan_file(
                "c.yaml",
                text.as_bytes(),
                std::time::Duration::from_secs(10),
            );
            scan.canaries.into_iter().next().unwrap()
        };
        for (extra, field, says) in [
            (
                "    appProtocol: tcp\n",
                "spec.service.appProtocol",
                "TCP routing",
            ),
            (
                "    meshName: global\n",
                "spec.service.meshName",
                "App Mesh",
            ),
            (
                "    gatewayRefs:\n      - name: public\n",
                "spec.service.gatewayRefs",
                "Gateway API",
            ),
        ] {
            let errors = scan_one(extra).unwrap_err().errors;
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, field, "{}", errors[0]);
            assert!(errors[0].message.contains(says), "{}", errors[0]);
        }
        let accepted = "    portDiscovery: true\n    delegation: false\n    apex:\n      labels:\n        team: a\n    primary:\n      annotations:\n        a: b\n    canary:\n      labels:\n        c: d\n    appProtocol: http\n";
        let (c, _) = scan_one(accepted).unwrap();
        assert!(c.service.port_discovery);
        assert_eq!(c.service.apex.labels["team"], "a");
        assert!(matches!(
            c.analysis.strategy,
            Strategy::AbTesting { iterations: 3, .. }
        ));
    }
}
