//! The ports: one small trait per I/O boundary of a tick, with no Git, HTTP or Kubernetes
//! library type in them, and nothing but traits: the values they carry live in `core` and
//! `repo`. The engine talks only to these; `cli` wires the adapters (`adapters/`) and tests
//! wire fakes (`test_support::fakes`).
//!
//! | port | what it does | adapters today |
//! | --- | --- | --- |
//! | [`ConfigRepo`] | fetch the branch, read trees, build commits, push with a lease | git2 cache |
//! | [`Publisher`] | turn per-app change sets into a published change | direct commit, dry run, pull requests |
//! | [`MetricSource`] | run one query, return one number or why not | Prometheus |
//! | [`Clock`] | the time of decisions | wall clock, fake clock |
//! | [`Notifier`] | tell people what moved | alert providers, GitHub statuses and Deployments |
//! | [`Hooks`] | call a webhook gate | HTTP(S), with `--webhook-alias` |
//! | [`ClusterView`] | what Flux applied and whether the Deployments are ready | Kubernetes API (read-only), Flux's GitHub commit statuses; none means Git only |
//! | [`Secrets`] | read a Secret an AlertProvider names | a mounted Secret volume |
//! | [`LeaseStore`] | read and write the one Lease that elects the writer of a repository | Kubernetes API |
//! | [`Exposition`] | what `weir run` serves about itself: its series and its readiness | the engine's metrics |

use crate::core::alert::{Alert, StepReport};
use crate::core::cluster::{ClusterTarget, Observation};
use crate::core::hook::{HookCall, HookOutcome};
use crate::core::lease::{LeaseError, LeaseRecord};
use crate::core::query::MetricError;
use crate::core::spec::alert_provider::{SecretError, SecretKeys};
use crate::repo::change::{ChangeSet, Publication, PushOutcome, RepoError, Waiting};
use crate::repo::objects::ObjectId;
use crate::repo::source::SourceTree;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that the async ports can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
    /// The local copy could not be read: start it over. Returns false when it was just
    /// started over for the same reason (then the problem is not the copy).
    fn start_over(&mut self) -> Result<bool, RepoError> {
        Ok(false)
    }
    /// weir's memo of what it derived from this copy's trees (`engine`'s, opaque here), kept
    /// beside the copy so that a fresh process reads only what changed since; `None` when
    /// there is none or it cannot be read. Starting the copy over forgets it.
    fn read_memo(&self) -> Option<Vec<u8>> {
        None
    }
    /// Keeps the memo for [`ConfigRepo::read_memo`]; a memo that cannot be kept only costs
    /// the next fresh process time.
    fn write_memo(&self, memo: &[u8]) {
        let _ = memo;
    }
    /// Whether a tree handed out since the last fetch named an object that could not be
    /// read (a damaged local copy), even where that was reported as one app's error.
    fn damaged(&self) -> bool {
        false
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

    /// The steps it keeps off the branch until they merge, one per app at most (PR mode:
    /// each app's branch); direct commits keep none.
    fn pending(&self, _repo: &mut dyn ConfigRepo) -> Result<Vec<Waiting>, RepoError> {
        Ok(Vec::new())
    }
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

/// Calls webhooks.
pub trait Hooks: Send + Sync {
    /// Calls one hook.
    fn call<'a>(&'a self, call: &'a HookCall) -> BoxFuture<'a, HookOutcome>;
}

/// A read-only view of the cluster: what Flux applied of an app's folder, and its Deployments.
pub trait ClusterView: Send + Sync {
    /// What it is, for `status`: `Kubernetes API`, `GitHub commit statuses`.
    fn describe(&self) -> String;

    /// Whether it reads what was applied per commit, and so needs the branch's recent
    /// commits in [`ClusterTarget::recent`] (a view that asks the cluster does not).
    fn reads_commits(&self) -> bool {
        false
    }

    /// Looks at every app of one tick at once, one answer per target in order; `Err` says why
    /// the view cannot tell now (never a secret).
    fn observe<'a>(
        &'a self,
        targets: &'a [ClusterTarget],
    ) -> BoxFuture<'a, Vec<Result<Observation, String>>>;
}

/// Reads the Kubernetes Secrets that AlertProviders name, by namespace and name.
pub trait Secrets: Send + Sync {
    /// The Secret's keys, or why they cannot be read (naming where, never what it holds).
    fn read(&self, namespace: &str, name: &str) -> Result<SecretKeys, SecretError>;
}

/// What `weir run` serves about itself over HTTP: its series and whether its loop is ready.
pub trait Exposition: Send + Sync {
    /// The series in Prometheus's text format (OpenMetrics).
    fn metrics_text(&self) -> String;
    /// True once the loop has finished a tick, and the last few did not all fail.
    fn ready(&self) -> bool;
}

/// The one Lease that elects which replica writes a repository (`coordination.k8s.io/v1`).
/// Reads and writes only; what to write is decided in `core::lease`.
pub trait LeaseStore: Send + Sync {
    /// `namespace/name at server`, for messages (never a credential).
    fn describe(&self) -> String;
    /// The Lease, or `None` when it does not exist.
    fn get(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>, LeaseError>>;
    /// Creates it; [`LeaseError::Conflict`] when another process created it first.
    fn create<'a>(
        &'a self,
        lease: &'a LeaseRecord,
    ) -> BoxFuture<'a, Result<LeaseRecord, LeaseError>>;
    /// Replaces it at `lease.version`; [`LeaseError::Conflict`] when it changed since.
    fn update<'a>(
        &'a self,
        lease: &'a LeaseRecord,
    ) -> BoxFuture<'a, Result<LeaseRecord, LeaseError>>;
}
