//! The rollout record weir keeps in Git, one file per app beside the manifests it owns.
//!
//! It holds everything a decision needs, so a restarted weir (or a fresh machine) picks up a
//! release in flight exactly where the last commit left it. Reading and writing only: what
//! the next state is, is the planner's call.

use crate::spec::Weight;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The `apiVersion` of the record file.
pub const API_VERSION: &str = "weir.dev/v1alpha1";
/// The `kind` of the record file.
pub const KIND: &str = "RolloutState";

/// Flagger's canary phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// The owned objects exist; the primary serves all traffic.
    Initialized,
    /// Waiting for a manual gate (reserved for confirm-rollout gates).
    Waiting,
    /// A revision is under analysis.
    Progressing,
    /// Waiting for a promotion gate (reserved for confirm-promotion gates).
    WaitingPromotion,
    /// The primary was updated to the canary's revision; traffic is returning to it.
    Promoting,
    /// All traffic is on the updated primary.
    Finalising,
    /// The last revision was promoted.
    Succeeded,
    /// The last revision was rolled back.
    Failed,
}

impl Phase {
    /// True while a release is being analysed or promoted.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            Phase::Waiting
                | Phase::Progressing
                | Phase::WaitingPromotion
                | Phase::Promoting
                | Phase::Finalising
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Everything the planner needs to decide the next step of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct State {
    /// Current phase.
    pub phase: Phase,
    /// Percent of traffic on the canary; the primary has the rest.
    #[serde(with = "weight_serde")]
    pub canary_weight: Weight,
    /// Passed analysis runs of the revision under analysis.
    pub iterations: u32,
    /// Failed analysis runs of the revision under analysis.
    pub failed_checks: u32,
    /// The source revision under analysis or promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// The source revision the primary is a snapshot of.
    pub promoted_revision: String,
    /// The commit whose tree the primary is derived from (its source at
    /// `promoted_revision`). Older records lack it; weir then finds that commit in history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_commit: Option<String>,
    /// The last revision that was rolled back; it is not analysed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// Images of the primary snapshot, for messages and status.
    #[serde(default)]
    pub primary_images: Vec<String>,
    /// When the last step was committed; the next one is due an interval later.
    #[serde(with = "time_serde")]
    pub last_step_at: DateTime<Utc>,
    /// When the phase last changed.
    #[serde(with = "time_serde")]
    pub last_transition_at: DateTime<Utc>,
    /// The last event, as in the commit message.
    #[serde(default)]
    pub message: String,
}

/// The whole record file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The app it belongs to.
    pub metadata: RecordMeta,
    /// The state.
    pub status: State,
}

/// Which app a record belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordMeta {
    /// The Canary's name.
    pub name: String,
    /// The Canary's namespace.
    pub namespace: String,
}

/// A record file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not YAML of the expected shape.
    #[error("{file}: cannot read the rollout record: {message}")]
    Malformed { file: String, message: String },
    /// Written by a newer weir.
    #[error("{file}: rollout record version `{version}` is not known to this weir; upgrade weir")]
    UnknownVersion { file: String, version: String },
}

/// Parses a record file.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Record, StateError> {
    let record: Record = serde_yaml::from_slice(bytes).map_err(|e| StateError::Malformed {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    if record.api_version != API_VERSION || record.kind != KIND {
        return Err(StateError::UnknownVersion {
            file: file.to_string(),
            version: format!("{}/{}", record.api_version, record.kind),
        });
    }
    Ok(record)
}

/// Serializes a record with a header saying who owns it. Deterministic.
pub fn render(name: &str, namespace: &str, state: &State) -> String {
    let record = Record {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        metadata: RecordMeta {
            name: name.to_string(),
            namespace: namespace.to_string(),
        },
        status: state.clone(),
    };
    let body = serde_yaml::to_string(&record).expect("a record always serializes");
    format!("# Rollout record of {namespace}/{name}, written by weir on every step.\n# Do not edit: weir reads it to decide the next step.\n{body}")
}

mod weight_serde {
    use crate::spec::Weight;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(w: &Weight, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(w.get())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weight, D::Error> {
        let n = u32::deserialize(d)?;
        Weight::new(n).ok_or_else(|| serde::de::Error::custom(format!("weight {n} is above 100")))
    }
}

mod time_serde {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let state = State {
            phase: Phase::Progressing,
            canary_weight: Weight::new(20).unwrap(),
            iterations: 1,
            failed_checks: 0,
            canary_revision: Some("abc".into()),
            promoted_revision: "def".into(),
            promoted_commit: Some("0123456789012345678901234567890123456789".into()),
            failed_revision: None,
            primary_images: vec!["ghcr.io/acme/backend:6.0.0".into()],
            last_step_at: t,
            last_transition_at: t,
            message: "advance canary weight 10 -> 20".into(),
        };
        let text = render("backend", "prod", &state);
        assert_eq!(parse("s.yaml", text.as_bytes()).unwrap().status, state);
    }

    #[test]
    fn refuses_weights_over_100() {
        let text = "apiVersion: weir.dev/v1alpha1\nkind: RolloutState\nmetadata: {name: a, namespace: b}\nstatus:\n  phase: Progressing\n  canaryWeight: 120\n  iterations: 0\n  failedChecks: 0\n  promotedRevision: x\n  lastStepAt: 2026-11-24T10:00:00Z\n  lastTransitionAt: 2026-11-24T10:00:00Z\n";
        let err = parse("s.yaml", text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("weight 120 is above 100"), "{err}");
    }
}
