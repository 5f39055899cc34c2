//! Publishers: how a tick's per-app change sets reach the repository.
//!
//! [`DirectCommit`] makes one commit for every app that moved and pushes it with a lease;
//! [`DryRun`] builds the same commit and shows it without pushing. A pull-request publisher
//! (one branch and PR per app) plugs in behind the same port.

pub mod pull_request;

use crate::core::events::{commit_message, Event};
use crate::ports::{BoxFuture, ConfigRepo, Publisher};
use crate::repo::change::{ChangeSet, Publication, PushOutcome, RepoError, Waiting};
use crate::repo::objects::ObjectId;
use chrono::{DateTime, Utc};

fn message(prefix: &str, changes: &[ChangeSet]) -> String {
    let events: Vec<Event> = changes.iter().flat_map(|c| c.events.clone()).collect();
    commit_message(prefix, &events)
}

/// One commit per tick on the branch itself, pushed only over the planned head.
#[derive(Debug, Clone, Default)]
pub struct DirectCommit {
    /// Prepended to every commit subject.
    pub prefix: String,
}

impl Publisher for DirectCommit {
    fn publish<'a>(
        &'a mut self,
        repo: &'a mut dyn ConfigRepo,
        head: ObjectId,
        changes: &'a [ChangeSet],
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Publication, RepoError>> {
        Box::pin(async move { self.commit(repo, head, changes, at) })
    }
}

impl DirectCommit {
    /// Builds the commit of `changes` on `head` and pushes it with a lease, at once.
    pub fn commit(
        &self,
        repo: &mut dyn ConfigRepo,
        head: ObjectId,
        changes: &[ChangeSet],
        at: DateTime<Utc>,
    ) -> Result<Publication, RepoError> {
        let started = std::time::Instant::now();
        let Some((commit, message)) = build(&*repo, head, changes, &self.prefix, at)? else {
            return Ok(Publication::Nothing);
        };
        let committed = started.elapsed();
        let pushed = repo.push(head, commit)?;
        tracing::debug!(
            apps = changes.len(),
            commit_ms = committed.as_millis() as u64,
            push_ms = (started.elapsed() - committed).as_millis() as u64,
            "published"
        );
        match pushed {
            PushOutcome::Pushed => Ok(Publication::Committed { commit, message }),
            PushOutcome::Raced { remote } => Ok(Publication::Raced { remote }),
        }
    }
}

/// The commit of `changes` on `head` with its message; `None` when there is nothing to
/// commit (no change, or changes that leave the tree as it is).
fn build(
    repo: &dyn ConfigRepo,
    head: ObjectId,
    changes: &[ChangeSet],
    prefix: &str,
    at: DateTime<Utc>,
) -> Result<Option<(ObjectId, String)>, RepoError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let message = message(prefix, changes);
    Ok(repo
        .commit(head, changes, &message, at)?
        .map(|commit| (commit, message)))
}

/// Builds the commit and shows its diff; pushes nothing.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    /// Prepended to every commit subject.
    pub prefix: String,
    /// Shows the steps that wait in pull requests, as PR mode keeps them.
    pub pull_requests: bool,
}

impl Publisher for DryRun {
    fn publish<'a>(
        &'a mut self,
        repo: &'a mut dyn ConfigRepo,
        head: ObjectId,
        changes: &'a [ChangeSet],
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Publication, RepoError>> {
        Box::pin(async move {
            let Some((commit, message)) = build(&*repo, head, changes, &self.prefix, at)? else {
                return Ok(Publication::Nothing);
            };
            let diff = repo.diff(head, commit)?;
            Ok(Publication::DryRun {
                commit,
                message,
                diff,
            })
        })
    }

    fn pending(&self, repo: &mut dyn ConfigRepo) -> Result<Vec<Waiting>, RepoError> {
        match self.pull_requests {
            true => pull_request::waiting(repo),
            false => Ok(Vec::new()),
        }
    }
}
