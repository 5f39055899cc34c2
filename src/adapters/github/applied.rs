//! The cluster view for places without cluster access (the GitHub Action, a laptop): what
//! Flux applied, read from the commit statuses Flux's notification-controller posts on
//! GitHub (a `Provider` of type `github` and an `Alert` on the Kustomization).
//!
//! notification-controller names each status `kustomization/<name>/<first part of the
//! Provider's UID>` and posts it on the commit of the event's revision: `success` when the
//! Kustomization applied it (info events), `failure` when it could not (error events). So the
//! newest of the branch's recent commits with a `success` status under
//! `kustomization/<name>/` is what the Kustomization last applied, and the time of that status
//! is when. It sees Flux only: no Deployment, no pod readiness.
//!
//! Cost: one status list per commit looked at, newest first, stopping at the first commit
//! with a success; a commit is asked about once per look, whatever the number of apps. A
//! failed request is that look's answer for every app that needed the commit: the planner
//! holds, it never moves on missing evidence. It reads; it never posts a status.

use super::{GitHub, ListedStatus, StatusState};
use crate::core::cluster::{ClusterTarget, Observation};
use crate::ports::{BoxFuture, ClusterView};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// The cluster view on Flux's GitHub commit statuses.
pub struct CommitStatusView {
    github: Arc<dyn GitHub>,
    /// The Kustomization of apps whose Canary names none (`--flux-kustomization`).
    kustomization: String,
}

impl CommitStatusView {
    /// A view for the repository of `github`, reading the statuses of the Kustomization
    /// `kustomization` (its name, as in `metadata.name`) unless a Canary names another.
    pub fn new(github: Arc<dyn GitHub>, kustomization: &str) -> Result<CommitStatusView, String> {
        let name = kustomization.trim();
        if !valid_name(name) {
            return Err(format!(
                "`{}` is not a Kustomization name: give its metadata.name, such as `apps` \
                 (lowercase letters, digits, `-` and `.`)",
                crate::core::text::clean(kustomization, 100)
            ));
        }
        Ok(CommitStatusView {
            github,
            kustomization: name.to_string(),
        })
    }

    /// The Kustomization of `target`: the name part of its Canary's annotation, else the
    /// default; and how to show it.
    fn kustomization_of<'a>(&'a self, target: &'a ClusterTarget) -> (&'a str, &'a str) {
        match target.kustomization.as_deref() {
            Some(named) => {
                let name = named.rsplit_once('/').map_or(named, |(_, n)| n).trim();
                (name, named)
            }
            None => (&self.kustomization, &self.kustomization),
        }
    }
}

/// A Kubernetes object name as notification-controller would put it in a context.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
}

/// The context prefix of a Kustomization's statuses.
fn prefix(name: &str) -> String {
    format!("kustomization/{}/", name.to_ascii_lowercase())
}

/// What one commit's statuses say of the Kustomization.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Said {
    /// No status of the Kustomization on the commit.
    Nothing,
    /// The Kustomization's newest status on the commit is a failure (or error), and why.
    Failing(String),
    /// It applied the commit (a success among its statuses): when (the newest success), and
    /// why it fails now if its newest status is a failure.
    Applied {
        at: Option<DateTime<Utc>>,
        failing: Option<String>,
    },
}

/// Reads one commit's statuses (newest first, as GitHub lists them) for the Kustomization
/// whose contexts start with `prefix`.
fn said(prefix: &str, sha: &str, statuses: &[ListedStatus]) -> Said {
    let mut flux = statuses
        .iter()
        .filter(|s| s.context.to_ascii_lowercase().starts_with(prefix));
    let Some(newest) = flux.clone().next() else {
        return Said::Nothing;
    };
    let failing = matches!(newest.state, StatusState::Failure | StatusState::Error).then(|| {
        let short: String = sha.chars().take(7).collect();
        let description = crate::core::text::clean(&newest.description, 200);
        let description = match description.is_empty() {
            true => "no description".to_string(),
            false => description,
        };
        format!(
            "failing: {} says {} on {short} ({description})",
            crate::core::text::clean(&newest.context, 100),
            newest.state.as_str()
        )
    });
    match flux.find(|s| s.state == StatusState::Success) {
        Some(success) => Said::Applied {
            at: success.created_at,
            failing,
        },
        None => match failing {
            Some(why) => Said::Failing(why),
            // Only pending statuses (not Flux's own kind): nothing to go on.
            None => Said::Nothing,
        },
    }
}

/// The walk over one target's candidates, newest first: the first failure seen is why the
/// Kustomization is unhealthy; the first commit it applied ends the walk.
#[derive(Debug, Default)]
struct Walk {
    /// The first thing said about the Kustomization, newest commit first, was a failure.
    unhealthy: Option<String>,
    /// Something was said already (only the newest commit that has a status decides health).
    heard: bool,
}

impl Walk {
    /// Takes one commit's statuses; `Some(at)` when the walk ends at it (the Kustomization
    /// applied it, at the time of its newest success when GitHub gave one).
    fn take(
        &mut self,
        prefix: &str,
        sha: &str,
        statuses: &[ListedStatus],
    ) -> Option<Option<DateTime<Utc>>> {
        let said = said(prefix, sha, statuses);
        let first = !self.heard;
        match said {
            Said::Nothing => None,
            Said::Failing(why) => {
                if first {
                    self.unhealthy = Some(why);
                }
                self.heard = true;
                None
            }
            Said::Applied { at, failing } => {
                if first {
                    self.unhealthy = failing;
                }
                self.heard = true;
                Some(at)
            }
        }
    }
}

impl ClusterView for CommitStatusView {
    fn reads_commits(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "GitHub commit statuses of {} posted by Flux (what the Kustomization applied; \
             no pod readiness)",
            self.github.repo()
        )
    }

    fn observe<'a>(
        &'a self,
        targets: &'a [ClusterTarget],
    ) -> BoxFuture<'a, Vec<Result<Observation, String>>> {
        Box::pin(async move {
            // Each commit is asked about once per look, whatever the number of targets.
            let mut asked: HashMap<String, Result<Vec<ListedStatus>, String>> = HashMap::new();
            let mut answers = Vec::with_capacity(targets.len());
            for target in targets {
                answers.push(self.observe_one(target, &mut asked).await);
            }
            answers
        })
    }
}

impl CommitStatusView {
    /// One target, with the statuses read so far in this look.
    async fn observe_one(
        &self,
        target: &ClusterTarget,
        asked: &mut HashMap<String, Result<Vec<ListedStatus>, String>>,
    ) -> Result<Observation, String> {
        let (name, shown) = self.kustomization_of(target);
        if !valid_name(name) {
            return Err(format!(
                "the Canary's weir.dev/kustomization `{}` names no Kustomization",
                crate::core::text::clean(shown, 100)
            ));
        }
        let prefix = prefix(name);
        let mut observation = Observation {
            applier: format!("Kustomization {shown} (GitHub commit statuses)"),
            reads_workloads: false,
            ..Observation::default()
        };
        let mut walk = Walk::default();
        for sha in target.recent.iter() {
            if !asked.contains_key(sha) {
                let answer = self
                    .github
                    .commit_statuses(sha)
                    .await
                    .map_err(|e| e.message);
                asked.insert(sha.clone(), answer);
            }
            let statuses = match &asked[sha] {
                Ok(statuses) => statuses,
                Err(why) => return Err(why.clone()),
            };
            if let Some(at) = walk.take(&prefix, sha, statuses) {
                observation.applied_revision = Some(sha.clone());
                observation.applied_at = at;
                break;
            }
        }
        observation.unhealthy = walk.unhealthy;
        Ok(observation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    fn status(context: &str, state: StatusState, description: &str, secs: i64) -> ListedStatus {
        ListedStatus {
            context: context.into(),
            state,
            description: description.into(),
            created_at: Some(at(secs)),
        }
    }

    const APPS: &str = "kustomization/apps/0c9c2e41";

    #[test]
    fn only_the_kustomizations_own_statuses_count() {
        let p = prefix("apps");
        let others = [
            status("weir/prod/backend", StatusState::Success, "promoted", 9),
            status(
                "kustomization/apps-extra/0c9c2e41",
                StatusState::Success,
                "reconciliation succeeded",
                8,
            ),
            status("kustomization/app/0c9c2e41", StatusState::Success, "", 7),
            status("ci", StatusState::Success, "", 6),
        ];
        assert_eq!(said(&p, A, &others), Said::Nothing);
        let mut with_flux = others.to_vec();
        with_flux.push(status(
            APPS,
            StatusState::Success,
            "reconciliation succeeded",
            5,
        ));
        assert_eq!(
            said(&p, A, &with_flux),
            Said::Applied {
                at: Some(at(5)),
                failing: None
            }
        );
        // notification-controller lowercases the context; a Kustomization name is lowercase.
        let upper = [status(
            "Kustomization/Apps/0C9C2E41",
            StatusState::Success,
            "",
            3,
        )];
        assert!(matches!(said(&p, A, &upper), Said::Applied { .. }));
    }

    #[test]
    fn the_newest_status_says_whether_it_fails_and_the_newest_success_when_it_applied() {
        let p = prefix("apps");
        // Newest first, as GitHub lists them.
        let failed_after = [
            status(APPS, StatusState::Failure, "health check failed", 30),
            status(APPS, StatusState::Success, "reconciliation succeeded", 20),
            status(APPS, StatusState::Success, "reconciliation succeeded", 10),
        ];
        assert_eq!(
            said(&p, A, &failed_after),
            Said::Applied {
                at: Some(at(20)),
                failing: Some(format!(
                    "failing: {APPS} says failure on aaaaaaa (health check failed)"
                )),
            }
        );
        let recovered = [
            status(APPS, StatusState::Success, "reconciliation succeeded", 30),
            status(APPS, StatusState::Failure, "health check failed", 20),
        ];
        assert_eq!(
            said(&p, A, &recovered),
            Said::Applied {
                at: Some(at(30)),
                failing: None
            }
        );
        let never = [status(APPS, StatusState::Error, "", 30)];
        assert_eq!(
            said(&p, A, &never),
            Said::Failing(format!(
                "failing: {APPS} says error on aaaaaaa (no description)"
            ))
        );
        let pending = [status(APPS, StatusState::Pending, "", 30)];
        assert_eq!(said(&p, A, &pending), Said::Nothing);
    }

    #[test]
    fn a_walk_ends_at_the_first_applied_commit_and_takes_health_from_the_newest_heard() {
        let p = prefix("apps");
        let failure = [status(APPS, StatusState::Failure, "build failed", 40)];
        let success = [status(APPS, StatusState::Success, "", 10)];
        let mut walk = Walk::default();
        assert_eq!(walk.take(&p, "c3", &[]), None);
        assert_eq!(walk.take(&p, "c2", &failure), None);
        assert_eq!(walk.take(&p, "c1", &success), Some(Some(at(10))));
        assert!(walk.unhealthy.as_deref().unwrap().contains("build failed"));

        // A failure on an older commit than the newest one heard is history.
        let mut walk = Walk::default();
        assert_eq!(walk.take(&p, "c2", &success), Some(Some(at(10))));
        assert_eq!(walk.unhealthy, None);
    }

    #[test]
    fn kustomization_names_are_checked() {
        assert!(valid_name("apps"));
        assert!(valid_name("flux-system"));
        for bad in ["", "Apps", "flux-system/apps", "a b", "apps/"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
