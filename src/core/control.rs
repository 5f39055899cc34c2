//! Manual control of a rollout through Git: `apps/<app>.weir/control.yaml`.
//!
//! The one file in weir's folder that people write (by hand or with `weir approve`, `abort`,
//! `retry`, `pause`, `resume`, which make the commit). weir reads it on every step and never
//! renders it from anything else: it carries the file as it is, except that it removes a
//! `retry` it has acted on, so a retried revision is not retried for ever. Requests name the
//! revision they are about, so a request never leaks onto a newer revision:
//!
//! ```yaml
//! apiVersion: weir.dev/v1alpha1
//! kind: RolloutControl
//! metadata:
//!   name: backend
//!   namespace: prod
//! spec:
//!   paused: false          # true: weir takes no step for the app (like spec.suspend)
//!   approve: <revision>    # opens every confirm-* gate for this revision
//!   abort: <revision>      # rolls this revision back while it is analysed
//!   retry: <revision>      # analyses this failed revision again (removed once started)
//! ```

use crate::core::located::{error_at, LocatedError};
use serde::{Deserialize, Serialize};

/// The file name in weir's folder.
pub const CONTROL_FILE: &str = "control.yaml";
/// `apiVersion` of the file.
pub const API_VERSION: &str = "weir.dev/v1alpha1";
/// `kind` of the file.
pub const KIND: &str = "RolloutControl";

/// What people asked of one app's rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Control {
    /// No step is taken while true.
    #[serde(default, skip_serializing_if = "crate::core::record::is_false")]
    pub paused: bool,
    /// The revision whose confirm-* gates are open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<String>,
    /// The revision to roll back while it is analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<String>,
    /// The failed revision to analyse again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
}

impl Control {
    /// True when nothing is asked.
    pub fn is_empty(&self) -> bool {
        *self == Control::default()
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControlFile {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The app it is about.
    pub metadata: crate::core::record::RecordMeta,
    /// The requests.
    #[serde(default)]
    pub spec: Control,
}

/// Parses a control file and checks that it is about `namespace/name` and that each
/// revision it names is one (40 hex digits).
pub fn parse(
    file: &str,
    bytes: &[u8],
    namespace: &str,
    name: &str,
) -> Result<Control, LocatedError> {
    let text = String::from_utf8_lossy(bytes);
    let at = |field: &str, message: String| error_at(file, &text, field, message);
    let parsed: ControlFile = crate::core::yaml::from_str(&text)
        .map_err(|e| crate::core::located::from_yaml(file, e, "(control)"))?;

    if parsed.api_version != API_VERSION || parsed.kind != KIND {
        return Err(at(
            "apiVersion",
            format!("a control file is {API_VERSION} {KIND}"),
        ));
    }
    if parsed.metadata.name != name || parsed.metadata.namespace != namespace {
        return Err(at(
            "metadata.name",
            format!(
                "the control file is about {}/{}, not {namespace}/{name}",
                crate::core::text::clean(&parsed.metadata.namespace, 63),
                crate::core::text::clean(&parsed.metadata.name, 253)
            ),
        ));
    }
    let spec = parsed.spec;
    for (field, value) in [
        ("spec.approve", &spec.approve),
        ("spec.abort", &spec.abort),
        ("spec.retry", &spec.retry),
    ] {
        if let Some(v) = value {
            if v.len() != 40 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(at(
                    field,
                    format!(
                        "`{}` is not a revision (40 hex digits, as `weir status` shows in full with --output json)",
                        crate::core::text::clean(v, 60)
                    ),
                ));
            }
        }
    }
    Ok(spec)
}

/// Writes a control file; deterministic.
pub fn render(name: &str, namespace: &str, control: &Control) -> String {
    let file = ControlFile {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        metadata: crate::core::record::RecordMeta {
            name: name.to_string(),
            namespace: namespace.to_string(),
        },
        spec: control.clone(),
    };
    format!(
        "# Requests to weir for {namespace}/{name}: `weir approve|abort|retry|pause|resume` write this file.\n# weir acts on them in its next step, and removes a retry once it has started it.\n{}",
        crate::core::yaml::to_string(&file)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const REV: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn round_trips_and_refuses_what_is_not_a_request() {
        let c = Control {
            paused: true,
            approve: Some(REV.into()),
            abort: None,
            retry: Some(REV.into()),
        };
        let text = render("backend", "prod", &c);
        assert_eq!(
            parse("c.yaml", text.as_bytes(), "prod", "backend").unwrap(),
            c
        );
        let err = parse("c.yaml", text.as_bytes(), "prod", "frontend").unwrap_err();
        assert_eq!(
            (err.line, err.field.as_str()),
            (6, "metadata.name"),
            "{err}"
        );
        let bad = text.replace(&format!("approve: {REV}"), "approve: latest");
        let err = parse("c.yaml", bad.as_bytes(), "prod", "backend").unwrap_err();
        assert_eq!(
            (err.line, err.col, err.field.as_str()),
            (10, 12, "spec.approve"),
            "{err}"
        );
        let unknown = text.replace("paused: true", "promote: true");
        let err = parse("c.yaml", unknown.as_bytes(), "prod", "backend").unwrap_err();
        assert!(err.message.contains("unknown field `promote`"), "{err}");
    }
}
