//! What the cluster runs, per app, before anything is decided: the cluster view is asked
//! about every app whose next move depends on it (a release in flight, an adoption, a new
//! revision at rest), all at once, and each answer becomes the app's [`ClusterState`].
//!
//! A step counts as applied when the commit the Kustomization last applied holds weir's folder
//! for the app exactly as the head does: then Flux runs weir's last step for it (and, since
//! weir's steps are made on top of the source they analyse, that source too). It must never
//! decide anything: readiness verdicts are `core::cluster`'s, holds and rollbacks the
//! planner's.

use super::caches::Caches;
use super::gather::Pending;
use crate::core::cluster::{
    applied_commit, readiness, ClusterState, ClusterTarget, Observation, Readiness, RECENT_COMMITS,
};
use crate::core::names::owned_dir;
use crate::ports::{ClusterView, ConfigRepo};
use crate::repo::objects::ObjectId;
use crate::repo::source::SourceTree;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tracing::debug;

/// Whether the app's next move depends on what the cluster runs.
fn needs_view(p: &Pending) -> bool {
    let Some(state) = &p.state else {
        return false;
    };
    let rev = p.source.revision.as_str();
    let new_revision = rev != state.promoted_revision
        && Some(rev) != state.failed_revision.as_deref()
        && Some(rev) != state.canary_revision.as_deref();
    state.phase.in_flight() || state.phase == crate::core::spec::Phase::Initializing || new_revision
}

/// Fills every pending app's `cluster`: [`ClusterState::Unknown`] without a view; otherwise
/// what the view says, for the apps that need it.
pub(super) async fn observe_all(
    view: Option<&Arc<dyn ClusterView>>,
    repo: &dyn ConfigRepo,
    head_id: ObjectId,
    head: &dyn SourceTree,
    pending: &mut [Pending],
    caches: &mut Caches,
    now: DateTime<Utc>,
) {
    let Some(view) = view else {
        return;
    };
    let asked: Vec<usize> = (0..pending.len())
        .filter(|i| needs_view(&pending[*i]))
        .collect();
    for p in pending.iter_mut() {
        // Not looked at: the view exists (an adoption then takes two steps), but nothing the
        // app does next depends on what it would say.
        p.cluster = ClusterState::Unseen("not looked at: nothing in flight".to_string());
    }
    if asked.is_empty() {
        return;
    }
    // One walk of the branch per tick, shared by every target, for a view that needs it.
    let walked = match view.reads_commits() {
        true => repo.first_parents(head_id, RECENT_COMMITS),
        false => Ok(Vec::new()),
    };
    let recent: Arc<[String]> = match walked {
        Ok(commits) => commits.iter().map(ObjectId::to_string).collect(),
        Err(e) => {
            let why = format!("cannot read the branch's recent commits: {e}");
            for i in asked {
                pending[i].cluster = ClusterState::Unseen(why.clone());
            }
            return;
        }
    };
    let targets: Vec<ClusterTarget> = asked
        .iter()
        .map(|i| {
            let p = &pending[*i];
            ClusterTarget {
                dir: p.source.dir.clone(),
                namespace: p.canary.namespace.clone(),
                target: p.canary.target.clone(),
                kustomization: p.canary.kustomization.clone(),
                recent: recent.clone(),
            }
        })
        .collect();
    let seen = view.observe(&targets).await;
    for (i, seen) in asked.into_iter().zip(seen) {
        let p = &mut pending[i];
        let dir = owned_dir(&p.source.dir);
        let state = match seen {
            Err(why) => ClusterState::Unseen(why),
            Ok(obs) => judge(repo, head, &dir, &p.canary.analysis.ready, &obs, now),
        };
        let state = match state {
            ClusterState::Applied {
                ready_since: said,
                canary,
                primary,
            } => {
                let ready = canary.is_ready() && primary.is_ready();
                // The first time the step was seen applied and ready stays its start while the
                // step stays: the time the view gives (a commit status's), else now. A later
                // commit Flux applies on top (another app's step) does not start it over.
                let since = match (ready, p.owned_id) {
                    (true, Some(id)) => {
                        Some(caches.ready_since(&p.canary.file, id, said.unwrap_or(now)))
                    }
                    (true, None) => said,
                    _ => {
                        caches.not_ready(&p.canary.file);
                        None
                    }
                };
                ClusterState::Applied {
                    ready_since: since,
                    canary,
                    primary,
                }
            }
            other => {
                caches.not_ready(&p.canary.file);
                other
            }
        };
        debug!(app = %p.app, "cluster: {}", state.describe());
        p.cluster = state;
    }
}

/// One observation as the planner's [`ClusterState`]: whether the applied commit holds weir's
/// folder as the head does, whether the Kustomization is healthy, and each Deployment's
/// readiness. `ready_since` is when the view says the commit was applied, if it says; the
/// caller keeps the first one seen for the step (it needs memory).
fn judge(
    repo: &dyn ConfigRepo,
    head: &dyn SourceTree,
    dir: &str,
    rules: &crate::core::cluster::ReadyRules,
    obs: &Observation,
    now: DateTime<Utc>,
) -> ClusterState {
    let applier = &obs.applier;
    let (commit, holds) = match step_in(repo, head, dir, obs) {
        StepIn::Nothing => {
            return ClusterState::NotApplied(format!("{applier} has applied nothing yet"))
        }
        StepIn::NoCommit(revision) => {
            return ClusterState::Unseen(format!(
                "{applier} reports revision {revision:?}, which names no Git commit"
            ))
        }
        StepIn::NotFetched(commit) => {
            return ClusterState::NotApplied(format!(
                "{applier} applied {}, a commit weir has not fetched yet",
                commit.short(7)
            ))
        }
        StepIn::Commit { commit, holds } => (commit, holds),
    };
    let short = commit.short(7);
    if !holds {
        // Why it applies nothing newer, when the applier says (a failed build, a failed
        // health check): what a person needs to unblock the step.
        let failing = obs
            .unhealthy
            .as_deref()
            .map(|why| format!("; {why}"))
            .unwrap_or_default();
        return ClusterState::NotApplied(format!(
            "{applier} last applied {short}, which does not hold weir's last step for the app{failing}"
        ));
    }
    if let Some(why) = &obs.unhealthy {
        return ClusterState::NotApplied(format!("{applier} applied {short} but is {why}"));
    }
    let judged = |w: &Option<crate::core::cluster::Workload>, threshold: u32| match w {
        _ if !obs.reads_workloads => Readiness::Ready,
        Some(w) => readiness(w, threshold, rules.progress_deadline, now),
        None => Readiness::Missing,
    };
    ClusterState::Applied {
        ready_since: obs.applied_at,
        canary: judged(&obs.canary, rules.canary_threshold),
        primary: judged(&obs.primary, rules.primary_threshold),
    }
}

/// Where the commit a view reports applied stands against weir's last step for an app.
pub(super) enum StepIn<'a> {
    /// The view reports nothing applied.
    Nothing,
    /// The reported revision names no Git commit.
    NoCommit(&'a str),
    /// A commit weir has not fetched (newer than its head, or another branch).
    NotFetched(ObjectId),
    /// A commit, and whether it holds weir's folder `dir` exactly as the head does (then
    /// Flux runs weir's last step for the app).
    Commit { commit: ObjectId, holds: bool },
}

/// Reads where `obs`'s applied commit stands: the one place that compares it with the head.
pub(super) fn step_in<'a>(
    repo: &dyn ConfigRepo,
    head: &dyn SourceTree,
    dir: &str,
    obs: &'a Observation,
) -> StepIn<'a> {
    let Some(revision) = obs.applied_revision.as_deref() else {
        return StepIn::Nothing;
    };
    let Some(commit) = applied_commit(revision).and_then(ObjectId::from_hex) else {
        return StepIn::NoCommit(revision);
    };
    match repo.tree(commit) {
        Ok(tree) => StepIn::Commit {
            commit,
            holds: tree.id(dir) == head.id(dir),
        },
        Err(_) => StepIn::NotFetched(commit),
    }
}
