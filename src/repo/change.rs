//! What the config-repo and publisher ports carry: a step as files, its publication, the
//! outcome of a push with a lease, and the repository's errors.

use crate::core::app::AppRef;
use crate::core::events::Event;
use crate::repo::objects::{Dir, ObjectId};

/// A failure of the config repository.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct RepoError {
    /// What went wrong and what to do (credentials already redacted).
    pub message: String,
    /// Worth retrying later (network, server trouble); false for bad credentials, a missing
    /// branch or a refused push.
    pub transient: bool,
    /// The local copy of the repository was damaged and has been cloned again: nothing was
    /// written to the remote, and planning again on a fresh fetch is safe.
    pub repaired: bool,
    /// It failed on the local copy (reading or writing objects), not on the remote: starting
    /// the copy over may repair it.
    pub local: bool,
}

impl RepoError {
    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> RepoError {
        RepoError {
            message: message.into(),
            transient: false,
            repaired: false,
            local: false,
        }
    }

    /// A transient error.
    pub fn transient(message: impl Into<String>) -> RepoError {
        RepoError {
            message: message.into(),
            transient: true,
            repaired: false,
            local: false,
        }
    }

    /// A failure of the local copy (see [`RepoError::local`]).
    pub fn local(message: impl Into<String>) -> RepoError {
        RepoError {
            local: true,
            ..RepoError::permanent(message)
        }
    }

    /// The local copy was damaged and cloned again (see [`RepoError::repaired`]).
    pub fn repaired(message: impl Into<String>) -> RepoError {
        RepoError {
            message: message.into(),
            transient: true,
            repaired: true,
            local: false,
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
    pub remaining: Vec<crate::core::plan::rehearse::Rehearsed>,
    /// The gate readings of the release so far, as the new record keeps them.
    pub history: Vec<crate::core::record::Interval>,
    /// PR mode: the app's own list of phases whose steps wait for a review, if it has one.
    pub review: Option<Vec<crate::core::spec::Phase>>,
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

/// A step a publisher keeps off the branch until it merges (PR mode: an app's branch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The Canary's namespace.
    pub namespace: String,
    /// The Canary's name.
    pub name: String,
    /// Where it waits, for people: the branch.
    pub place: String,
    /// The commit that carries it.
    pub tip: ObjectId,
}
