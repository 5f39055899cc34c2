//! The ports: one small trait per I/O boundary of a tick, with no Git, HTTP or Kubernetes
//! library type in them. The engine (`reconcile.rs`) talks only to these; `commands.rs` wires
//! the real adapters (`git.rs`, `prometheus.rs`) and tests wire fakes (`fakes.rs`).
//!
//! | port | what it does | adapters today |
//! | --- | --- | --- |
//! | [`ConfigRepo`] | fetch the branch, read trees, build commits, push with a lease | git2 cache |
//! | [`Publisher`] | turn per-app change sets into a published change | direct commit, dry run, pull requests |
//! | [`MetricSource`] | run one query, return one number or why not | Prometheus |
//! | [`Clock`] | the time of decisions | wall clock, fake clock |
//! | [`Notifier`] | tell people what moved | alert providers, GitHub statuses and Deployments |
//! | [`Hooks`] | call a webhook gate | none yet (Flagger webhooks come later) |
//! | [`ClusterView`] | what the cluster applied | Git only (Flux and Kubernetes come later) |

use crate::events::Event;
use crate::source::SourceTree;
use crate::tree::{Dir, ObjectId};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that the async ports can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure of the config repository.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RepoError {
    /// What went wrong and what to do (credentials already redacted).
    pub message: String,
    /// Worth retrying later (network, server trouble); false for bad credentials, a missing
    /// branch or a refused push.
    pub transient: bool,
}

impl RepoError {
    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> RepoError {
        RepoError {
            message: message.into(),
            transient: false,
        }
    }

    /// A transient error.
    pub fn transient(message: impl Into<String>) -> RepoError {
        RepoError {
            message: message.into(),
            transient: true,
        }
    }
}

/// What happened to a push with a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The branch moved from the expected head to the new commit.
    Pushed,
    /// The branch was not at the expected head (someone pushed, or reset it): nothing was
    /// written; re-plan on the new head.
    Raced {
        /// What the remote's branch pointed at, when known.
        remote: Option<ObjectId>,
    },
}

/// The config repository: the branch weir reads and writes.
pub trait ConfigRepo: Send {
    /// `url (branch)`, with credentials redacted, for messages.
    fn describe(&self) -> String;
    /// Fetches the branch and returns its head commit.
    fn fetch(&mut self) -> Result<ObjectId, RepoError>;
    /// Read access to the tree of a commit.
    fn tree(&self, commit: ObjectId) -> Result<Box<dyn SourceTree + '_>, RepoError>;
    /// Up to `limit` commits following first parents from `from` (itself first).
    fn first_parents(&self, from: ObjectId, limit: usize) -> Result<Vec<ObjectId>, RepoError>;
    /// Builds a commit on `parent` that replaces each change set's folder; `None` when the
    /// tree would not change.
    fn commit(
        &self,
        parent: ObjectId,
        changes: &[ChangeSet],
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ObjectId>, RepoError>;
    /// The unified diff between two commits.
    fn diff(&self, old: ObjectId, new: ObjectId) -> Result<String, RepoError>;
    /// Moves the branch from exactly `expected` to `new`; never forces.
    fn push(&mut self, expected: ObjectId, new: ObjectId) -> Result<PushOutcome, RepoError>;
    /// The local copy could not be read: start it over. Returns false when that was already
    /// done once (then the problem is not the copy).
    fn start_over(&mut self) -> Result<bool, RepoError> {
        Ok(false)
    }
    /// The tip of another branch of the remote (a pull request branch), fetched so that
    /// commits can be built on it; `None` when the remote has no such branch.
    fn branch_tip(&mut self, branch: &str) -> Result<Option<ObjectId>, RepoError> {
        Err(RepoError::permanent(format!(
            "{}: cannot read branch {branch}: this repository adapter has no other branches",
            self.describe()
        )))
    }
    /// True when `commit` changes nothing outside the folder `dir` against its first parent,
    /// and that parent is `head` or an ancestor of it: merged, it can bring nothing else.
    fn changes_only(&self, commit: ObjectId, dir: &str, head: ObjectId) -> Result<bool, RepoError> {
        let _ = (commit, dir, head);
        Ok(false)
    }
    /// The branches of the remote whose names start with `prefix`, with their tips,
    /// fetched so that their trees can be read. Adapters without other branches have none.
    fn branches(&mut self, prefix: &str) -> Result<Vec<(String, ObjectId)>, RepoError> {
        let _ = prefix;
        Ok(Vec::new())
    }
    /// Builds a commit with `base`'s tree and each change set's folder replaced, whose
    /// parents are `parents` (the first one first); `None` when the tree would be `base`'s.
    fn commit_onto(
        &self,
        base: ObjectId,
        parents: &[ObjectId],
        changes: &[ChangeSet],
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ObjectId>, RepoError> {
        let _ = (base, parents, changes, message, at);
        Err(RepoError::permanent(format!(
            "{}: this repository adapter cannot build merge commits",
            self.describe()
        )))
    }
    /// Moves another branch from exactly `expected` (`None`: it must not exist) to `new`;
    /// never forces.
    fn push_branch(
        &mut self,
        branch: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<PushOutcome, RepoError> {
        let _ = (expected, new);
        Err(RepoError::permanent(format!(
            "{}: cannot push branch {branch}: this repository adapter has no other branches",
            self.describe()
        )))
    }
}

/// The app a change set or event is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppRef {
    /// The Canary's namespace.
    pub namespace: String,
    /// The Canary's name.
    pub name: String,
    /// The app folder.
    pub dir: String,
}

impl std::fmt::Display for AppRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One app's step as files: weir's folder for the app replaced by `tree` (or removed).
#[derive(Debug, Clone)]
pub struct ChangeSet {
    /// The app.
    pub app: AppRef,
    /// weir's folder for the app.
    pub dir: String,
    /// Its new content; `None` removes it.
    pub tree: Option<Dir>,
    /// What moved and why.
    pub events: Vec<Event>,
    /// The steps that follow this one when every gate passes, for publishers that show
    /// them (pull request bodies); empty at rest and for the others.
    pub remaining: Vec<crate::plan::Rehearsed>,
    /// The gate readings of the release so far, as the new record keeps them.
    pub history: Vec<crate::state::Interval>,
    /// PR mode: the app's own list of phases whose steps wait for a review, if it has one.
    pub review: Option<Vec<crate::state::Phase>>,
}

/// The result of publishing.
#[derive(Debug, Clone, PartialEq)]
pub enum Publication {
    /// Nothing to publish.
    Nothing,
    /// A commit is on the branch.
    Committed {
        /// The commit.
        commit: ObjectId,
        /// Its message.
        message: String,
    },
    /// A commit was built and shown, not pushed.
    DryRun {
        /// The commit.
        commit: ObjectId,
        /// Its message.
        message: String,
        /// What it changes.
        diff: String,
    },
    /// The branch moved under weir: nothing was written; re-plan on the new head.
    Raced {
        /// The remote's branch, when known.
        remote: Option<ObjectId>,
    },
    /// Pull requests, one per app (PR mode): the steps merged into the branch now, and the
    /// apps whose step waits in its pull request (for a review, a check, a retry).
    Proposed {
        /// Each merged step: the app, the commit on the branch, its message.
        merged: Vec<(AppRef, ObjectId, String)>,
        /// Each waiting step: the app and why it waits.
        waiting: Vec<(AppRef, String)>,
    },
}

/// Publishes change sets planned on a head: one commit pushed with a lease, or one pull
/// request per app.
pub trait Publisher: Send {
    /// Publishes `changes`, planned on `head`, through `repo`.
    fn publish<'a>(
        &'a mut self,
        repo: &'a mut dyn ConfigRepo,
        head: ObjectId,
        changes: &'a [ChangeSet],
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Publication, RepoError>>;

    /// Whether what it publishes shows the steps that follow each one (then the engine
    /// rehearses them into [`ChangeSet::remaining`]; otherwise that work is skipped).
    fn shows_remaining_steps(&self) -> bool {
        false
    }
}

/// Why a metric query gave no number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct MetricError {
    /// One line, bounded, free of credentials.
    pub message: String,
    /// The query returned no series.
    pub no_data: bool,
}

/// Runs metric queries.
pub trait MetricSource: Send + Sync {
    /// Runs `query` against `address` (the MetricTemplate's), or the default when `None`.
    fn query<'a>(
        &'a self,
        address: Option<&'a str>,
        query: &'a str,
    ) -> BoxFuture<'a, Result<f64, MetricError>>;
}

/// The time of decisions.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How much an alert matters. A Canary's alert entry receives its own severity and above
/// (`info` everything, `warn` warnings and errors, `error` errors only), as in Flagger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Progress: a release started, finished.
    Info,
    /// Needs a look: a gate waits for approval, a manual rollback.
    Warn,
    /// Went wrong: a rollback on failed checks.
    Error,
}

/// The kinds of alert provider weir delivers to: Flagger's five, and a plain JSON webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Slack incoming webhook.
    Slack,
    /// Microsoft Teams incoming webhook (MessageCard).
    Msteams,
    /// Discord, through its Slack-compatible endpoint (`<address>/slack`).
    Discord,
    /// Rocket.Chat incoming webhook (Slack-shaped).
    Rocket,
    /// Google Chat webhook (cards).
    Gchat,
    /// weir's own JSON document, for any receiver.
    Generic,
}

/// One place alerts go: a resolved AlertProvider, or the global default.
#[derive(Debug, Clone)]
pub struct AlertTarget {
    /// `namespace/name` of the AlertProvider, or `default` for the global one; for logs.
    pub provider: String,
    /// What the receiver speaks.
    pub kind: ProviderKind,
    /// The webhook URL: a secret (Slack's holds its token); never logged.
    pub address: crate::secret::Secret,
    /// Sent as `Authorization: Bearer` (Slack only, as in Flagger).
    pub token: Option<crate::secret::Secret>,
    /// Slack/Discord/Rocket channel.
    pub channel: Option<String>,
    /// Slack/Discord/Rocket user name shown.
    pub username: Option<String>,
    /// An HTTP(S) proxy for this provider; may hold credentials.
    pub proxy: Option<crate::secret::Secret>,
    /// The least severity this target receives.
    pub min_severity: AlertSeverity,
}

/// What an alert says: Flagger's message and fields, and the commit that made the step.
#[derive(Debug, Clone)]
pub struct Alert {
    /// The app.
    pub app: AppRef,
    /// How much it matters.
    pub severity: AlertSeverity,
    /// Flagger's wording: `Canary analysis completed successfully, promotion finished.`
    pub message: String,
    /// The phase after the step.
    pub phase: crate::state::Phase,
    /// The canary weight after the step.
    pub canary_weight: crate::spec::Weight,
    /// Failed checks so far, and the threshold.
    pub failed_checks: u32,
    /// The failed-checks threshold.
    pub threshold: u32,
    /// The checks that failed, with their values: `request-success-rate 91.3 < 99`.
    pub failing: Vec<String>,
    /// The commit (or pull request) that made the step, when published.
    pub commit: Option<String>,
    /// Extra fields, in order (`Target`, `Traffic routing`, ...), as Flagger adds them.
    pub fields: Vec<(String, String)>,
    /// Where it goes; each target filters by its severity.
    pub targets: Vec<AlertTarget>,
}

/// One published step of one app, for whoever follows every step (GitHub commit statuses
/// and Deployments), not only the alerting ones.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The app.
    pub app: AppRef,
    /// The phase after the step.
    pub phase: crate::state::Phase,
    /// The canary weight after the step.
    pub canary_weight: crate::spec::Weight,
    /// What the step did, one line (the commit subject's event).
    pub event: String,
    /// The revision the release is about: the one under analysis, else the app's source.
    pub revision: String,
    /// The commit that carries the step.
    pub commit: String,
}

/// Tells people what moved. A failed delivery is logged and retried within a bound, and
/// never blocks a step.
pub trait Notifier: Send + Sync {
    /// Delivers one alert to each of its targets that takes its severity.
    fn notify<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, ()>;

    /// Hears about every published step; most notifiers only care about alerts.
    fn step<'a>(&'a self, _step: &'a StepReport) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Several notifiers, each told everything.
#[derive(Clone, Default)]
pub struct Fanout(pub Vec<std::sync::Arc<dyn Notifier>>);

impl Notifier for Fanout {
    fn notify<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            join_all(self.0.iter().map(|n| n.notify(alert))).await;
        })
    }

    fn step<'a>(&'a self, step: &'a StepReport) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            join_all(self.0.iter().map(|n| n.step(step))).await;
        })
    }
}

/// The notifier when no alert provider is configured: the log already has every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn notify<'a>(&'a self, _alert: &'a Alert) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Flagger's webhook payload, fields in Flagger's order. `metadata` is left out when empty,
/// and its keys are sorted, as Go encodes a map.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HookPayload {
    /// The Canary's name.
    pub name: String,
    /// The Canary's namespace.
    pub namespace: String,
    /// The phase Flagger would send for this hook type.
    pub phase: String,
    /// A stable id of the revision under analysis.
    pub checksum: String,
    /// The hook's metadata (for `event` hooks, with eventMessage, eventType, timestamp).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// A webhook call: where, what, how long to wait, how often to try.
#[derive(Debug, Clone)]
pub struct HookCall {
    /// The hook's name in the Canary, for messages.
    pub name: String,
    /// The hook's URL.
    pub url: String,
    /// The JSON payload.
    pub payload: HookPayload,
    /// How long to wait for each attempt.
    pub timeout: std::time::Duration,
    /// Attempts after the first, on a transport error, 429 or a 5xx other than 501.
    pub retries: u32,
    /// `disableTLS`: do not verify the server's certificate.
    pub insecure_tls: bool,
}

/// What a webhook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// HTTP 200, 201 or 202 (Flagger's rule: anything above 202 fails).
    Passed,
    /// Anything else, or no answer: why, in one bounded line free of credentials.
    Failed(String),
}

/// Calls webhooks.
pub trait Hooks: Send + Sync {
    /// Calls one hook.
    fn call<'a>(&'a self, call: &'a HookCall) -> BoxFuture<'a, HookOutcome>;
}

/// The hooks adapter when none is wired: every call fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn call<'a>(&'a self, _call: &'a HookCall) -> BoxFuture<'a, HookOutcome> {
        Box::pin(async { HookOutcome::Failed("no webhook client is configured".into()) })
    }
}

/// Whether the cluster runs what a commit says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The commit is applied and the workloads are ready.
    Yes,
    /// Not yet, and why.
    NotYet(String),
}

/// A view of what the cluster applied.
pub trait ClusterView: Send + Sync {
    /// Whether `commit` is applied for `app`.
    fn applied<'a>(&'a self, app: &'a AppRef, commit: ObjectId) -> BoxFuture<'a, Applied>;
}

/// The cluster view without a cluster: a commit counts as applied once it is on the branch,
/// and a step becomes due when its interval has passed since the commit that made the
/// previous one.
#[derive(Debug, Default, Clone, Copy)]
pub struct GitOnly;

impl ClusterView for GitOnly {
    fn applied<'a>(&'a self, _app: &'a AppRef, _commit: ObjectId) -> BoxFuture<'a, Applied> {
        Box::pin(async { Applied::Yes })
    }
}

/// Runs futures concurrently and keeps their order.
pub async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut handles: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..handles.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, h) in handles.iter_mut().enumerate() {
            if out[i].is_none() {
                match h.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}
