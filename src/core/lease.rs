//! Leader election on a Lease, as decisions: given the Lease as last read, who this process
//! is and the time, what to write (create, take over, renew) or to follow the holder; and
//! whether a leader still stands, or may start a push. Pure: the Lease is read and written
//! by an adapter (`adapters/lease.rs`), the loop that applies these decisions is
//! `engine/lease.rs`, and time is an input.
//!
//! The semantics are those of Kubernetes' client-go leader election: a Lease is free when it
//! has no holder, or when `renewTime + leaseDurationSeconds` is past; a holder renews by
//! writing it again at the version it read (a conflict means another process wrote first);
//! a leader that has not renewed for `renew_deadline` stops leading. On top of that, a push
//! starts only with at least [`Timings::margin`] of the lease left, so that a push finishes
//! before another process can take the Lease, as long as clocks agree within that margin.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// The fields of a `coordination.k8s.io/v1` Lease that election reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// The holder's identity; `None` (or empty) when released.
    pub holder: Option<String>,
    /// When the holder last renewed it.
    pub renew_time: Option<DateTime<Utc>>,
    /// When the holder acquired it.
    pub acquire_time: Option<DateTime<Utc>>,
    /// How long it holds after a renewal, in seconds.
    pub duration_seconds: Option<i32>,
    /// How many times it changed hands.
    pub transitions: i32,
    /// The object's `resourceVersion`, so that a write fails when someone wrote in between.
    pub version: Option<String>,
}

impl LeaseRecord {
    /// The holder, when there is one.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }

    /// When it stops holding: its renewal plus its duration; `None` when it was never renewed.
    pub fn expires(&self) -> Option<DateTime<Utc>> {
        let renewed = self.renew_time.or(self.acquire_time)?;
        let secs = i64::from(self.duration_seconds.unwrap_or(0).max(0));
        Some(renewed + chrono::Duration::seconds(secs))
    }
}

/// Why a Lease could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Another process wrote the Lease since it was read (409): it won this round.
    #[error("another process wrote the Lease first")]
    Conflict,
    /// The API could not be asked or refused (network, permissions): why, never a credential.
    #[error("{0}")]
    Unavailable(String),
}

/// The durations of election (client-go's defaults: 15s, 10s, 2s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a Lease holds after a renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long stops leading.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timings {
    /// Checks retry-period < renew-deadline < lease-duration, as client-go does, and that the
    /// lease is a whole number of seconds (a Lease stores seconds).
    pub fn validate(self) -> Result<Timings, String> {
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration.as_secs() == 0 {
            return Err(format!(
                "--lease-duration {:?}: must be a whole number of seconds, at least 1",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--renew-deadline {:?} must be shorter than --lease-duration {:?}",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(format!(
                "--retry-period {:?} must be above zero and shorter than --renew-deadline {:?}",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(self)
    }

    /// The least lease a push may start with: `lease_duration - renew_deadline`. It covers
    /// the push itself and the difference between the clocks of the replicas.
    pub fn margin(self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_deadline)
    }
}

/// What to do with the Lease as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No Lease exists: create it, held by this process.
    Create(LeaseRecord),
    /// The Lease is free or expired: take it (a new holder, one more transition).
    Take(LeaseRecord),
    /// This process holds it: write a new renewal time.
    Renew(LeaseRecord),
    /// Another process holds it until `until`: wait and try again.
    Follow {
        /// Who holds it.
        holder: String,
        /// When it expires unless renewed.
        until: DateTime<Utc>,
    },
}

/// What to do given the Lease as read (`None`: it does not exist), this process's identity,
/// the time and the timings; each write carries the version read.
pub fn decide(lease: Option<&LeaseRecord>, me: &str, now: DateTime<Utc>, t: Timings) -> Action {
    let secs = i32::try_from(t.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let held = |prev: &LeaseRecord, acquired: DateTime<Utc>, transitions: i32| LeaseRecord {
        holder: Some(me.to_string()),
        renew_time: Some(now),
        acquire_time: Some(acquired),
        duration_seconds: Some(secs),
        transitions,
        version: prev.version.clone(),
    };
    let Some(lease) = lease else {
        return Action::Create(held(&LeaseRecord::default(), now, 0));
    };
    match lease.holder() {
        Some(holder) if holder == me => Action::Renew(held(
            lease,
            lease.acquire_time.unwrap_or(now),
            lease.transitions,
        )),
        Some(holder) => match lease.expires() {
            Some(until) if until > now => Action::Follow {
                holder: holder.to_string(),
                until,
            },
            _ => Action::Take(held(lease, now, lease.transitions.saturating_add(1))),
        },
        None => Action::Take(held(lease, now, lease.transitions.saturating_add(1))),
    }
}

/// The Lease this process writes when it stops: no holder, so that a standby takes it at
/// once instead of waiting for it to expire. `None` when it is not the holder.
pub fn release(lease: &LeaseRecord, me: &str, now: DateTime<Utc>) -> Option<LeaseRecord> {
    (lease.holder() == Some(me)).then(|| LeaseRecord {
        holder: None,
        renew_time: Some(now),
        acquire_time: lease.acquire_time,
        duration_seconds: Some(1),
        transitions: lease.transitions,
        version: lease.version.clone(),
    })
}

/// Where a process stands, from the last renewal it wrote and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It leads; `left` is how long its Lease holds unless renewed.
    Leading {
        /// The lease left.
        left: Duration,
    },
    /// It does not lead (never did, lost the Lease, or could not renew within the deadline).
    Following,
}

/// Whether a process whose last successful renewal (written as `renewed`) leads at `now`:
/// it does until `renew_deadline` after that renewal.
pub fn standing(renewed: Option<DateTime<Utc>>, now: DateTime<Utc>, t: Timings) -> Standing {
    let Some(renewed) = renewed else {
        return Standing::Following;
    };
    // A renewal in the future means the clock went back: trust nothing.
    let Ok(since) = (now - renewed).to_std() else {
        return Standing::Following;
    };
    if since > t.renew_deadline {
        return Standing::Following;
    }
    Standing::Leading {
        left: t.lease_duration.saturating_sub(since),
    }
}

/// Whether a push may start now: the process leads and at least [`Timings::margin`] of its
/// lease is left. `Err` says why not.
pub fn may_publish(
    renewed: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    t: Timings,
) -> Result<Duration, String> {
    match standing(renewed, now, t) {
        Standing::Following => Err("this process does not hold the Lease".to_string()),
        Standing::Leading { left } if left < t.margin() => Err(format!(
            "only {left:?} of the Lease is left, less than the {:?} a push needs",
            t.margin()
        )),
        Standing::Leading { left } => Ok(left),
    }
}

/// The default Lease name of a repository: `weir-` and ten hex digits of a hash of its URL
/// without credentials (user-info, query, fragment) and of the branch, so that replicas on
/// one repository and branch meet on one Lease whatever token each was given.
pub fn default_name(url: &str, branch: &str) -> String {
    use sha1::Digest;
    let bare = crate::core::remote::bare(url);
    let digest = sha1::Sha1::digest(format!("{bare}\n{branch}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("weir-{}", &hex[..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn lease(holder: Option<&str>, renewed: i64, transitions: i32) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_string),
            renew_time: Some(at(renewed)),
            acquire_time: Some(at(-100)),
            duration_seconds: Some(15),
            transitions,
            version: Some("7".into()),
        }
    }

    /// What `decide` does, as (case, lease, now, expected kind, holder written, transitions).
    #[test]
    fn decide_table() {
        let t = Timings::default();
        let cases: Vec<(&str, Option<LeaseRecord>, i64, &str, i32)> = vec![
            ("no lease: create it", None, 0, "create", 0),
            ("released: take it", Some(lease(None, 0, 3)), 1, "take", 4),
            (
                "empty holder: take it",
                Some(lease(Some(""), 0, 3)),
                1,
                "take",
                4,
            ),
            ("mine: renew", Some(lease(Some("me"), 0, 3)), 5, "renew", 3),
            (
                "mine though expired: renew",
                Some(lease(Some("me"), 0, 3)),
                60,
                "renew",
                3,
            ),
            (
                "theirs, fresh: follow",
                Some(lease(Some("them"), 0, 3)),
                14,
                "follow",
                3,
            ),
            (
                "theirs, expires now: take",
                Some(lease(Some("them"), 0, 3)),
                15,
                "take",
                4,
            ),
            (
                "theirs, expired: take",
                Some(lease(Some("them"), 0, 3)),
                16,
                "take",
                4,
            ),
            (
                "theirs, never renewed, acquired long ago: take",
                Some(LeaseRecord {
                    renew_time: None,
                    ..lease(Some("them"), 0, 3)
                }),
                0,
                "take",
                4,
            ),
            (
                "theirs, no time at all: take",
                Some(LeaseRecord {
                    renew_time: None,
                    acquire_time: None,
                    ..lease(Some("them"), 0, 3)
                }),
                0,
                "take",
                4,
            ),
        ];
        for (case, lease, now, kind, transitions) in cases {
            let action = decide(lease.as_ref(), "me", at(now), t);
            let (got, written) = match &action {
                Action::Create(r) => ("create", Some(r)),
                Action::Take(r) => ("take", Some(r)),
                Action::Renew(r) => ("renew", Some(r)),
                Action::Follow { .. } => ("follow", None),
            };
            assert_eq!(got, kind, "{case}: {action:?}");
            if let Some(r) = written {
                assert_eq!(r.holder.as_deref(), Some("me"), "{case}");
                assert_eq!(r.renew_time, Some(at(now)), "{case}");
                assert_eq!(r.duration_seconds, Some(15), "{case}");
                assert_eq!(r.transitions, transitions, "{case}");
                // The write carries the version read, so a concurrent writer makes it fail.
                assert_eq!(
                    r.version,
                    lease.as_ref().and_then(|l| l.version.clone()),
                    "{case}"
                );
                let acquired = if kind == "renew" { at(-100) } else { at(now) };
                assert_eq!(r.acquire_time, Some(acquired), "{case}");
            }
        }
    }

    #[test]
    fn follow_says_until_when() {
        let action = decide(
            Some(&lease(Some("them"), 0, 0)),
            "me",
            at(3),
            Timings::default(),
        );
        assert_eq!(
            action,
            Action::Follow {
                holder: "them".into(),
                until: at(15)
            }
        );
    }

    /// (case, last renewal written, now, standing, may publish)
    #[test]
    fn standing_and_publishing_table() {
        let t = Timings::default();
        let s = Duration::from_secs;
        let cases: Vec<(&str, Option<i64>, i64, Standing, bool)> = vec![
            ("never renewed", None, 0, Standing::Following, false),
            (
                "just renewed",
                Some(0),
                0,
                Standing::Leading { left: s(15) },
                true,
            ),
            (
                "one retry later",
                Some(0),
                2,
                Standing::Leading { left: s(13) },
                true,
            ),
            (
                "margin exactly left",
                Some(0),
                10,
                Standing::Leading { left: s(5) },
                true,
            ),
            (
                "past the renew deadline: steps down",
                Some(0),
                11,
                Standing::Following,
                false,
            ),
            ("long past", Some(0), 100, Standing::Following, false),
            ("clock went back", Some(10), 0, Standing::Following, false),
        ];
        for (case, renewed, now, want, publish) in cases {
            let renewed = renewed.map(at);
            assert_eq!(standing(renewed, at(now), t), want, "{case}");
            assert_eq!(may_publish(renewed, at(now), t).is_ok(), publish, "{case}");
        }
    }

    #[test]
    fn publishing_needs_the_margin_when_the_deadline_is_late() {
        // A renew deadline close to the lease leaves the margin as the stricter rule.
        let t = Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(14),
            retry_period: Duration::from_secs(2),
        };
        assert_eq!(t.margin(), Duration::from_secs(1));
        assert!(may_publish(Some(at(0)), at(14), t).is_ok());
        let strict = Timings {
            renew_deadline: Duration::from_secs(10),
            ..t
        };
        assert!(may_publish(Some(at(0)), at(11), strict).is_err());
    }

    #[test]
    fn release_clears_the_holder_only_when_mine() {
        let mine = lease(Some("me"), 0, 2);
        let released = release(&mine, "me", at(5)).unwrap();
        assert_eq!(released.holder(), None);
        assert_eq!(released.version, mine.version);
        assert_eq!(released.transitions, 2);
        assert!(release(&lease(Some("them"), 0, 2), "me", at(5)).is_none());
        // A released Lease is taken at once by the next process.
        assert!(matches!(
            decide(Some(&released), "other", at(5), Timings::default()),
            Action::Take(_)
        ));
    }

    #[test]
    fn default_name_ignores_credentials_only() {
        let name = default_name("https://github.com/acme/fleet.git", "main");
        assert!(name.starts_with("weir-") && name.len() == 15, "{name}");
        assert_eq!(
            default_name(
                "https://x-access-token:ghp_abc@github.com/acme/fleet.git",
                "main"
            ),
            name
        );
        assert_eq!(
            default_name("https://github.com/acme/fleet.git?token=1", "main"),
            name
        );
        assert_ne!(
            default_name("https://github.com/acme/fleet.git", "prod"),
            name
        );
        assert_ne!(
            default_name("https://github.com/acme/other.git", "main"),
            name
        );
        assert_eq!(
            default_name("git@github.com:acme/fleet.git", "main"),
            default_name("git@github.com:acme/fleet.git", "main")
        );
    }

    #[test]
    fn timings_are_checked() {
        let s = Duration::from_secs;
        assert!(Timings::default().validate().is_ok());
        let bad = [
            (s(10), s(10), s(2)),
            (s(15), s(10), s(10)),
            (s(15), s(10), s(0)),
            (Duration::from_millis(15_500), s(10), s(2)),
        ];
        for (lease_duration, renew_deadline, retry_period) in bad {
            let t = Timings {
                lease_duration,
                renew_deadline,
                retry_period,
            };
            assert!(t.validate().is_err(), "{t:?}");
        }
    }
}
