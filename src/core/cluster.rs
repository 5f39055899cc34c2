//! What the cluster runs of an app, as the planner sees it, and the readiness rules that turn
//! a Deployment's status into a verdict (Flagger's, `pkg/canary/deployment_ready.go`).
//!
//! weir reads the cluster and never writes it. The cluster-view port reports what Flux last
//! applied and the Deployments' status; the engine asks [`readiness`] about each Deployment
//! and hands the planner one [`ClusterState`]. Pure: the time is an argument.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// Readiness settings of one Canary: `progressDeadlineSeconds` and the analysis' ready
/// thresholds, with Flagger's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyRules {
    /// How long a Deployment may stay short of available replicas, and how long Flux may take
    /// to apply a step, before weir gives up on it (`progressDeadlineSeconds`, default 600).
    pub progress_deadline: Duration,
    /// Percent of the canary's updated replicas that must be available
    /// (`analysis.canaryReadyThreshold`, default 100).
    pub canary_threshold: u32,
    /// Percent of the primary's updated replicas that must be available
    /// (`analysis.primaryReadyThreshold`, default 100).
    pub primary_threshold: u32,
}

/// Flagger's default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);

impl Default for ReadyRules {
    fn default() -> ReadyRules {
        ReadyRules {
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
            canary_threshold: 100,
            primary_threshold: 100,
        }
    }
}

/// One Deployment as the cluster reports it: what readiness is judged on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workload {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// `spec.replicas` (Kubernetes defaults it to 1).
    pub desired: Option<i32>,
    /// `status.replicas`: pods of every ReplicaSet.
    pub replicas: i32,
    /// `status.updatedReplicas`: pods of the current template.
    pub updated: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// The `Progressing` condition says `ProgressDeadlineExceeded`.
    pub deadline_exceeded: bool,
    /// Since when the `Available` condition has said `False` for `MinimumReplicasUnavailable`
    /// (its `lastUpdateTime`), when it says so.
    pub unavailable_since: Option<DateTime<Utc>>,
}

/// Whether a Deployment runs what it should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every updated replica the threshold asks for is available.
    Ready,
    /// Not yet, and why; worth waiting for.
    Waiting(String),
    /// It will not get there by itself: past its progress deadline, and why.
    Stuck(String),
    /// The Deployment does not exist (yet).
    Missing,
}

impl Readiness {
    /// Ready (a Deployment scaled to zero on purpose is ready).
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }

    /// One line for logs, status and commit bodies.
    pub fn describe(&self) -> String {
        match self {
            Readiness::Ready => "ready".to_string(),
            Readiness::Waiting(why) | Readiness::Stuck(why) => why.clone(),
            Readiness::Missing => "not found in the cluster".to_string(),
        }
    }
}

/// Flagger's readiness rule for one Deployment: the controller has seen its generation, no
/// progress deadline is exceeded, every desired replica is updated, no old replica is left,
/// and `threshold` percent of the updated replicas are available. Short of available replicas
/// for longer than `deadline`, it is stuck.
pub fn readiness(
    w: &Workload,
    threshold: u32,
    deadline: Duration,
    now: DateTime<Utc>,
) -> Readiness {
    let name = format!("{}.{}", w.name, w.namespace);
    if w.observed_generation < w.generation {
        return Readiness::Waiting(format!(
            "{name}: waiting for rollout to finish: observed deployment generation less than desired generation"
        ));
    }
    if w.deadline_exceeded {
        return Readiness::Stuck(format!("{name}: deployment exceeded its progress deadline"));
    }
    let past_deadline = w.unavailable_since.is_some_and(|since| {
        chrono::Duration::from_std(deadline)
            .ok()
            .and_then(|d| since.checked_add_signed(d))
            .is_some_and(|end| end < now)
    });
    let verdict = |why: String| match past_deadline {
        true => Readiness::Stuck(format!(
            "{why}, for longer than the progress deadline of {}s",
            deadline.as_secs()
        )),
        false => Readiness::Waiting(why),
    };
    let desired = w.desired.unwrap_or(1);
    if w.updated < desired {
        return verdict(format!(
            "{name}: waiting for rollout to finish: {} out of {desired} new replicas have been updated",
            w.updated
        ));
    }
    if w.replicas > w.updated {
        return verdict(format!(
            "{name}: waiting for rollout to finish: {} old replicas are pending termination",
            w.replicas - w.updated
        ));
    }
    // Flagger's arithmetic: the threshold's share of the updated replicas, rounded down.
    let needed = (i64::from(w.updated) * i64::from(threshold.min(100)) / 100) as i32;
    if w.available < needed {
        return verdict(format!(
            "{name}: waiting for rollout to finish: {} of {needed} (readyThreshold {threshold}%) updated replicas are available",
            w.available
        ));
    }
    Readiness::Ready
}

/// What to look at in the cluster for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    /// The app's folder in the repository (the Kustomization that builds it is the one whose
    /// `spec.path` is the longest prefix of it).
    pub dir: String,
    /// The Canary's namespace, where its Deployments run.
    pub namespace: String,
    /// The target Deployment (the canary); the primary is `<target>-primary`.
    pub target: String,
    /// The Kustomization named by the Canary's `weir.dev/kustomization` annotation
    /// (`namespace/name`), when it names one.
    pub kustomization: Option<String>,
    /// The branch head's first-parent commits (full ids), newest first, a bounded few: the
    /// candidates a view that reads per-commit evidence (commit statuses) looks at. One list
    /// per tick, shared by every target of it, hence the `Arc`.
    pub recent: Arc<[String]>,
}

/// How many of the branch's first-parent commits a tick hands the cluster view as
/// [`ClusterTarget::recent`].
pub const RECENT_COMMITS: usize = 20;

/// What a cluster view saw for one app.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// What applies the app's folder, for messages: `Kustomization flux-system/apps`.
    pub applier: String,
    /// The revision it last applied (`main@sha1:<id>`), if any.
    pub applied_revision: Option<String>,
    /// When it applied it, when the view knows (a commit status's time).
    pub applied_at: Option<DateTime<Utc>>,
    /// Why the applier is not ready now (failed build, generation not observed), if it is not.
    pub unhealthy: Option<String>,
    /// The canary Deployment, when the view reads Deployments and it exists.
    pub canary: Option<Workload>,
    /// The primary Deployment, likewise.
    pub primary: Option<Workload>,
    /// The view reads Deployments (a commit-status view does not: it sees Flux only).
    pub reads_workloads: bool,
}

/// What the cluster runs of an app, for the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// No cluster view (Git only, a visible choice): a step counts as applied once it is on
    /// the branch, and its interval starts at its commit.
    Unknown,
    /// The cluster view cannot say now (the API unreachable, the status not posted yet):
    /// nothing that needs it moves, and no deadline runs out on it.
    Unseen(String),
    /// Flux has not applied weir's last step for the app yet, and why (what it applied).
    NotApplied(String),
    /// Flux applied weir's last step; the Deployments' readiness now (both [`Readiness::Ready`]
    /// when the view cannot read Deployments).
    Applied {
        /// When weir first saw the step applied with both Deployments ready; `None` while
        /// they are not. The step's interval starts here.
        ready_since: Option<DateTime<Utc>>,
        /// The canary Deployment (the Canary's target).
        canary: Readiness,
        /// `<target>-primary`.
        primary: Readiness,
    },
}

impl ClusterState {
    /// For `status` and `plan`: what the cluster runs, in a few words.
    pub fn describe(&self) -> String {
        match self {
            ClusterState::Unknown => "applied: unknown (no cluster view)".to_string(),
            ClusterState::Unseen(why) => format!("applied: cannot tell ({why})"),
            ClusterState::NotApplied(why) => format!("not applied yet: {why}"),
            ClusterState::Applied {
                canary, primary, ..
            } => format!(
                "applied; primary {}, canary {}",
                primary.describe(),
                canary.describe()
            ),
        }
    }
}

/// The revision Flux reports as applied (`main@sha1:<hex>`, the older `main/<hex>`, or a bare
/// id): the commit id, when it is one.
pub fn applied_commit(revision: &str) -> Option<&str> {
    let hex = revision
        .rsplit_once(':')
        .map(|(_, h)| h)
        .or_else(|| revision.rsplit_once('/').map(|(_, h)| h))
        .unwrap_or(revision);
    (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn running(desired: i32) -> Workload {
        Workload {
            name: "backend".into(),
            namespace: "prod".into(),
            generation: 3,
            observed_generation: 3,
            desired: Some(desired),
            replicas: desired,
            updated: desired,
            available: desired,
            ..Workload::default()
        }
    }

    const DEADLINE: Duration = Duration::from_secs(600);

    #[test]
    fn ready_when_every_updated_replica_is_available() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(readiness(&running(2), 100, DEADLINE, now), Readiness::Ready);
        // Scaled to zero on purpose: nothing to wait for.
        assert_eq!(readiness(&running(0), 100, DEADLINE, now), Readiness::Ready);
    }

    #[test]
    fn waits_for_the_controller_the_update_and_the_old_pods() {
        let now = at("2026-01-01T00:00:00Z");
        let mut w = running(2);
        w.generation = 4;
        assert!(
            matches!(readiness(&w, 100, DEADLINE, now), Readiness::Waiting(m) if m.contains("generation"))
        );
        let mut w = running(3);
        w.updated = 1;
        assert!(
            matches!(readiness(&w, 100, DEADLINE, now), Readiness::Waiting(m) if m.contains("1 out of 3 new replicas"))
        );
        let mut w = running(2);
        w.replicas = 3;
        assert!(
            matches!(readiness(&w, 100, DEADLINE, now), Readiness::Waiting(m) if m.contains("1 old replicas"))
        );
    }

    #[test]
    fn the_threshold_counts_a_share_of_the_updated_replicas() {
        let now = at("2026-01-01T00:00:00Z");
        let mut w = running(4);
        w.available = 2;
        assert!(
            matches!(readiness(&w, 100, DEADLINE, now), Readiness::Waiting(m) if m.contains("2 of 4 (readyThreshold 100%)"))
        );
        assert_eq!(readiness(&w, 50, DEADLINE, now), Readiness::Ready);
        // 3 * 90% = 2.7, rounded down as Flagger does.
        let mut w = running(3);
        w.available = 2;
        assert_eq!(readiness(&w, 90, DEADLINE, now), Readiness::Ready);
    }

    #[test]
    fn stuck_past_the_progress_deadline() {
        let now = at("2026-01-01T00:20:00Z");
        let mut w = running(2);
        w.available = 0;
        w.unavailable_since = Some(at("2026-01-01T00:15:00Z"));
        assert!(matches!(
            readiness(&w, 100, DEADLINE, now),
            Readiness::Waiting(_)
        ));
        w.unavailable_since = Some(at("2026-01-01T00:09:59Z"));
        assert!(
            matches!(readiness(&w, 100, DEADLINE, now), Readiness::Stuck(m) if m.contains("progress deadline of 600s"))
        );
        let mut w = running(2);
        w.deadline_exceeded = true;
        assert!(
            matches!(readiness(&w, 100, DEADLINE, now), Readiness::Stuck(m) if m.contains("exceeded its progress deadline"))
        );
    }

    #[test]
    fn flux_revisions_name_their_commit() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(applied_commit(&format!("main@sha1:{id}")), Some(id));
        assert_eq!(applied_commit(&format!("main/{id}")), Some(id));
        assert_eq!(applied_commit(id), Some(id));
        assert_eq!(applied_commit("main@sha1:abc"), None);
        assert_eq!(applied_commit("v1.2.3@sha256:ffff"), None);
    }
}
