//! The ports: one small trait per I/O boundary of a tick, with no Git, HTTP or Kubernetes
//! library type in them. The engine (`reconcile.rs`) talks only to these; `commands.rs` wires
//! the real adapters (`git.rs`, `prometheus.rs`) and tests wire fakes (`fakes.rs`).
//!
//! | port | what it does | adapters today |
//! | --- | --- | --- |
//! | [`ConfigRepo`] | fetch the branch, read trees, build commits, push with a lease | git2 cache |
//! | [`Publisher`] | turn per-app change sets into a published change | direct commit, dry run |
//! | [`MetricSource`] | run one query, return one number or why not | Prometheus |
//! | [`Clock`] | the time of decisions | wall clock, fake clock |
//! | [`Notifier`] | tell people what moved | log only (alert providers come later) |
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
}

/// Publishes change sets planned on a head: one commit pushed with a lease, or (later) one
/// pull request per app.
pub trait Publisher: Send {
    /// Publishes `changes`, planned on `head`, through `repo`.
    fn publish(
        &mut self,
        repo: &mut dyn ConfigRepo,
        head: ObjectId,
        changes: &[ChangeSet],
        at: DateTime<Utc>,
    ) -> Result<Publication, RepoError>;
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

/// Tells people what moved. A failed delivery never blocks a step.
pub trait Notifier: Send + Sync {
    /// Delivers one event.
    fn notify<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()>;
}

/// The notifier when no alert provider is configured: the log already has every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn notify<'a>(&'a self, _event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A webhook call: where, what, how long to wait.
#[derive(Debug, Clone)]
pub struct HookCall {
    /// The hook's URL.
    pub url: String,
    /// The JSON payload.
    pub payload: serde_json::Value,
    /// How long to wait for an answer.
    pub timeout: std::time::Duration,
}

/// What a webhook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// 2xx up to 202.
    Passed,
    /// Anything else, or no answer: why, in one line.
    Failed(String),
}

/// Calls webhook gates.
pub trait Hooks: Send + Sync {
    /// Calls one hook.
    fn call<'a>(&'a self, call: &'a HookCall) -> BoxFuture<'a, HookOutcome>;
}

/// The hooks adapter while no Canary may declare webhooks: every call fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn call<'a>(&'a self, _call: &'a HookCall) -> BoxFuture<'a, HookOutcome> {
        Box::pin(async { HookOutcome::Failed("webhooks are not supported yet".into()) })
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
