//! The rollout record weir keeps in Git, one file per app beside the manifests it owns.
//!
//! It holds everything a decision needs, so a restarted weir (or a fresh machine) picks up a
//! release in flight exactly where the last commit left it. Reading and writing only: what
//! the next state is, is the planner's call.

use crate::core::located::LocatedError;
use crate::core::spec::{Phase, Weight};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The `apiVersion` of the record file.
pub const API_VERSION: &str = "weir.dev/v1alpha1";
/// The `kind` of the record file.
pub const KIND: &str = "RolloutState";

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
    /// Traffic is mirrored to the canary (Blue/Green with mirror, or the first step of a
    /// mirrored canary).
    #[serde(default, skip_serializing_if = "is_false")]
    pub mirrored: bool,
    /// Session affinity: `name=value` of the cookie that pins users to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,
    /// Session affinity: `name=value` of the cookie that pins users to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_session_affinity_cookie: Option<String>,
    /// Session affinity: the canary cookie of the last run, expired by a clean-up route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,
    /// The Canary asked for weir's folder to go when the Canary goes (`revertOnDeletion`);
    /// kept here because the Canary is gone when it matters.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revert_on_deletion: bool,
    /// The gate readings of the release so far, one entry per judged interval, oldest first
    /// and at most [`MAX_INTERVALS`]: for people (pull request bodies, reviews of the record
    /// in Git). No decision reads it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Interval>,
}

/// The most analysis intervals a record keeps; older ones are dropped first.
pub const MAX_INTERVALS: usize = 60;

/// One judged analysis interval: when, at which canary weight, and what each gate read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interval {
    /// When the evidence was gathered.
    #[serde(with = "time_serde")]
    pub at: DateTime<Utc>,
    /// The canary weight it was gathered at.
    #[serde(with = "weight_serde")]
    pub canary_weight: Weight,
    /// One reading per gate judged (metrics, then webhooks).
    pub gates: Vec<Reading>,
}

/// What one gate read in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reading {
    /// The metric's name, or `<type> hook <name>` for a webhook.
    pub gate: String,
    /// The metric's value, when it was a finite number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What it read otherwise: why there was no value, or the webhook's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The metric's inclusive lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The metric's inclusive upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Whether the gate passed.
    pub passed: bool,
}

impl State {
    /// True when both records lead to the same decisions: they differ at most in their
    /// times, their message and their history, which no decision reads, and in which commit
    /// holds the promoted revision (any commit that holds it serves; weir checks that it
    /// does before deriving the primary from it).
    pub fn decides_as(&self, other: &State) -> bool {
        let bare = |s: &State| State {
            last_step_at: DateTime::<Utc>::UNIX_EPOCH,
            last_transition_at: DateTime::<Utc>::UNIX_EPOCH,
            message: String::new(),
            history: Vec::new(),
            promoted_commit: None,
            ..s.clone()
        };
        bare(self) == bare(other)
    }
}

/// For `skip_serializing_if`: a flag written only when set.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for State {
    /// A record at rest on nothing, at the epoch; callers set what they mean.
    fn default() -> State {
        State {
            phase: Phase::Initialized,
            canary_weight: Weight::ZERO,
            iterations: 0,
            failed_checks: 0,
            canary_revision: None,
            promoted_revision: String::new(),
            promoted_commit: None,
            failed_revision: None,
            primary_images: Vec::new(),
            last_step_at: DateTime::<Utc>::UNIX_EPOCH,
            last_transition_at: DateTime::<Utc>::UNIX_EPOCH,
            message: String::new(),
            mirrored: false,
            session_affinity_cookie: None,
            primary_session_affinity_cookie: None,
            previous_session_affinity_cookie: None,
            revert_on_deletion: false,
            history: Vec::new(),
        }
    }
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

/// The largest count a record may hold for iterations and failed checks.
pub const MAX_COUNT: u32 = 1_000_000;
/// How far in the future a recorded time may be, for clocks that disagree a little.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(5);

fn malformed(file: &str, text: &str, field: &str, message: String) -> LocatedError {
    crate::core::located::error_at(file, text, field, message)
}

/// Only the weight, read loosely first: serde reports a custom error without its field.
#[derive(Deserialize)]
struct WeightProbe {
    #[serde(default)]
    status: Option<WeightProbeStatus>,
}

#[derive(Deserialize)]
struct WeightProbeStatus {
    #[serde(default, rename = "canaryWeight")]
    canary_weight: Option<crate::core::yaml::Value>,
}

/// Parses a record file, refusing values out of range with the place they are at.
pub fn parse(file: &str, bytes: &[u8]) -> Result<Record, LocatedError> {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(WeightProbe {
        status:
            Some(WeightProbeStatus {
                canary_weight: Some(crate::core::yaml::Value::Number(n)),
            }),
    }) = crate::core::yaml::from_str::<WeightProbe>(&text)
    {
        if n.as_u64().is_none_or(|w| w > 100) {
            return Err(malformed(
                file,
                &text,
                "status.canaryWeight",
                format!("weight {n} is not a percentage from 0 to 100"),
            ));
        }
    }
    let record: Record = crate::core::yaml::from_str(&text)
        .map_err(|e| crate::core::located::from_yaml(file, e, "(record)"))?;

    if record.api_version != API_VERSION || record.kind != KIND {
        return Err(malformed(
            file,
            &text,
            "apiVersion",
            format!(
                "rollout record version `{}/{}` is not known to this weir (it writes {API_VERSION}/{KIND}); upgrade weir",
                crate::core::text::clean(&record.api_version, 60),
                crate::core::text::clean(&record.kind, 60)
            ),
        ));
    }
    let s = &record.status;
    for (field, value) in [
        ("status.iterations", s.iterations),
        ("status.failedChecks", s.failed_checks),
    ] {
        if value > MAX_COUNT {
            return Err(malformed(
                file,
                &text,
                field,
                format!("{value} is more than weir ever records (at most {MAX_COUNT}); fix or remove the record"),
            ));
        }
    }
    for (field, value) in [
        ("status.promotedRevision", Some(&s.promoted_revision)),
        ("status.canaryRevision", s.canary_revision.as_ref()),
        ("status.failedRevision", s.failed_revision.as_ref()),
        ("status.promotedCommit", s.promoted_commit.as_ref()),
    ] {
        if let Some(v) = value {
            if v.len() != 40 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(malformed(
                    file,
                    &text,
                    field,
                    format!(
                        "`{}` is not a revision (40 hex digits); fix or remove the record",
                        crate::core::text::clean(v, 60)
                    ),
                ));
            }
        }
    }
    for (field, value) in [
        ("status.sessionAffinityCookie", &s.session_affinity_cookie),
        (
            "status.primarySessionAffinityCookie",
            &s.primary_session_affinity_cookie,
        ),
        (
            "status.previousSessionAffinityCookie",
            &s.previous_session_affinity_cookie,
        ),
    ] {
        if let Some(v) = value {
            if !is_cookie(v) {
                return Err(malformed(
                    file,
                    &text,
                    field,
                    format!(
                        "`{}` is not a cookie weir writes (name=letters); fix or remove the record",
                        crate::core::text::clean(v, 60)
                    ),
                ));
            }
        }
    }
    Ok(record)
}

/// `name=value` as weir makes session cookies: a token name and 1 to 64 ASCII letters. The
/// value lands in a VirtualService regex and a `Set-Cookie` header, so nothing else passes.
pub fn is_cookie(v: &str) -> bool {
    match v.split_once('=') {
        Some((name, value)) => {
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                && (1..=64).contains(&value.len())
                && value.bytes().all(|b| b.is_ascii_alphabetic())
        }
        None => false,
    }
}

/// Checks that a record belongs to the app it sits beside: a record copied from another app
/// would make weir act on someone else's history.
pub fn check_owner(
    file: &str,
    bytes: &[u8],
    record: &Record,
    namespace: &str,
    name: &str,
) -> Result<(), LocatedError> {
    if record.metadata.name != name || record.metadata.namespace != namespace {
        return Err(malformed(
            file,
            &String::from_utf8_lossy(bytes),
            "metadata.name",
            format!(
                "the rollout record belongs to {}/{}, not to {namespace}/{name}",
                crate::core::text::clean(&record.metadata.namespace, 63),
                crate::core::text::clean(&record.metadata.name, 253)
            ),
        ));
    }
    Ok(())
}

/// Checks a record's times against the clock: a time in the future beyond [`MAX_SKEW`] would
/// park the rollout until then, so it is refused with a hint.
pub fn check_times(
    file: &str,
    bytes: &[u8],
    record: &Record,
    now: DateTime<Utc>,
) -> Result<(), LocatedError> {
    for (field, t) in [
        ("status.lastStepAt", record.status.last_step_at),
        ("status.lastTransitionAt", record.status.last_transition_at),
    ] {
        if t > now + MAX_SKEW {
            return Err(malformed(
                file,
                &String::from_utf8_lossy(bytes),
                field,
                format!(
                    "{} is in the future (now {}); weir does not wait for it. Hint: fix the record, or the clock of the machine weir runs on",
                    t.to_rfc3339_opts(SecondsFormat::Secs, true),
                    now.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            ));
        }
    }
    Ok(())
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
    let body = crate::core::yaml::to_string(&record);
    format!("# Rollout record of {namespace}/{name}, written by weir on every step.\n# Do not edit: weir reads it to decide the next step.\n{body}")
}

mod weight_serde {
    use crate::core::spec::Weight;
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
            canary_revision: Some("abcabcabcabcabcabcabcabcabcabcabcabcabca".into()),
            promoted_revision: "defdefdefdefdefdefdefdefdefdefdefdefdefd".into(),
            promoted_commit: Some("0123456789012345678901234567890123456789".into()),
            failed_revision: None,
            primary_images: vec!["ghcr.io/acme/backend:6.0.0".into()],
            last_step_at: t,
            last_transition_at: t,
            message: "advance canary weight 10 -> 20".into(),
            mirrored: true,
            session_affinity_cookie: Some("flagger-cookie=abcdefghij".into()),
            revert_on_deletion: true,
            history: vec![Interval {
                at: t,
                canary_weight: Weight::new(10).unwrap(),
                gates: vec![
                    Reading {
                        gate: "request-success-rate".into(),
                        value: Some(99.123456789),
                        note: None,
                        min: Some(99.0),
                        max: None,
                        passed: true,
                    },
                    Reading {
                        gate: "rollout hook load-test".into(),
                        value: None,
                        note: Some("HTTP 500: boom".into()),
                        min: None,
                        max: None,
                        passed: false,
                    },
                ],
            }],
            ..State::default()
        };
        let text = render("backend", "prod", &state);
        assert_eq!(parse("s.yaml", text.as_bytes()).unwrap().status, state);
        assert_eq!(
            render(
                "backend",
                "prod",
                &parse("s.yaml", text.as_bytes()).unwrap().status
            ),
            text
        );
    }

    #[test]
    fn a_malformed_history_is_an_error_at_its_place() {
        let ok = format!("  phase: Progressing\n  canaryWeight: 20\n  iterations: 0\n  failedChecks: 0\n  promotedRevision: {REV}\n  lastStepAt: 2026-11-24T10:00:00Z\n  lastTransitionAt: 2026-11-24T10:00:00Z\n");
        let bad = format!("{ok}  history:\n  - at: 2026-11-24T10:00:00Z\n    canaryWeight: 10\n    gates:\n    - gate: error-rate\n      value: lots\n      passed: false\n");
        let err = parse("s.yaml", record(&bad).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("s.yaml:17:14: error: "), "{err}");
        assert!(err.contains("value"), "{err}");
    }

    fn record(status: &str) -> String {
        format!("apiVersion: weir.dev/v1alpha1\nkind: RolloutState\nmetadata: {{name: a, namespace: b}}\nstatus:\n{status}")
    }

    const REV: &str = "0123456789012345678901234567890123456789";

    #[test]
    fn refuses_values_out_of_range_with_their_place() {
        let ok = format!("  phase: Progressing\n  canaryWeight: 20\n  iterations: 0\n  failedChecks: 0\n  promotedRevision: {REV}\n  lastStepAt: 2026-11-24T10:00:00Z\n  lastTransitionAt: 2026-11-24T10:00:00Z\n");
        assert!(parse("s.yaml", record(&ok).as_bytes()).is_ok());
        let err = parse(
            "s.yaml",
            record(&ok.replace("canaryWeight: 20", "canaryWeight: 120")).as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "s.yaml:6:17: error: status.canaryWeight: weight 120 is not a percentage from 0 to 100"
        );
        let err = parse(
            "s.yaml",
            record(&ok.replace("failedChecks: 0", "failedChecks: 4294967295")).as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("s.yaml:8:17: error: status.failedChecks: 4294967295 is more than"),
            "{err}"
        );
        let err = parse(
            "s.yaml",
            record(&ok.replace("failedChecks: 0", "failedChecks: -1")).as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("s.yaml:8:17: error: status.failedChecks: "),
            "{err}"
        );
        let err = parse("s.yaml", record(&ok.replace(REV, "abcé")).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "s.yaml:9:21: error: status.promotedRevision: `abcé` is not a revision"
            ),
            "{err}"
        );
        let future = record(&ok.replace(
            "lastStepAt: 2026-11-24T10:00:00Z",
            "lastStepAt: 2099-01-01T00:00:00Z",
        ));
        let r = parse("s.yaml", future.as_bytes()).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let err = check_times("s.yaml", future.as_bytes(), &r, now)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "s.yaml:10:15: error: status.lastStepAt: 2099-01-01T00:00:00Z is in the future"
            ),
            "{err}"
        );
    }
}
