//! The real config repo with a concurrent writer: before each of weir's first `races` pushes,
//! `write` changes the remote (a push, a reset), as another person or CI would between
//! weir's fetch and its push.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use weir::adapters::git::Git2Repo;
use weir::ports::ConfigRepo;
use weir::repo::change::{ChangeSet, PushOutcome, RepoError};
use weir::repo::objects::ObjectId;
use weir::repo::source::SourceTree;

/// A writer run before a push; gets the 1-based number of the push.
pub type Writer = Box<dyn FnMut(u32) + Send>;

/// [`Git2Repo`] with a writer that moves the remote right before weir pushes.
pub struct Racing {
    inner: Git2Repo,
    races: u32,
    pushes: Arc<AtomicU32>,
    write: Writer,
}

impl Racing {
    /// Races the first `races` pushes; returns the wrapper and a counter of weir's pushes.
    pub fn new(inner: Git2Repo, races: u32, write: Writer) -> (Racing, Arc<AtomicU32>) {
        let pushes = Arc::new(AtomicU32::new(0));
        let racing = Racing {
            inner,
            races,
            pushes: pushes.clone(),
            write,
        };
        (racing, pushes)
    }
}

impl ConfigRepo for Racing {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn fetch(&mut self) -> Result<ObjectId, RepoError> {
        self.inner.fetch()
    }
    fn tree(&self, commit: ObjectId) -> Result<Box<dyn SourceTree + '_>, RepoError> {
        self.inner.tree(commit)
    }
    fn first_parents(&self, from: ObjectId, limit: usize) -> Result<Vec<ObjectId>, RepoError> {
        self.inner.first_parents(from, limit)
    }
    fn commit(
        &self,
        parent: ObjectId,
        changes: &[ChangeSet],
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ObjectId>, RepoError> {
        self.inner.commit(parent, changes, message, at)
    }
    fn diff(&self, old: ObjectId, new: ObjectId) -> Result<String, RepoError> {
        self.inner.diff(old, new)
    }
    fn start_over(&mut self) -> Result<bool, RepoError> {
        self.inner.start_over()
    }
    fn damaged(&self) -> bool {
        self.inner.damaged()
    }
    fn push(&mut self, expected: ObjectId, new: ObjectId) -> Result<PushOutcome, RepoError> {
        let n = self.pushes.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.races {
            (self.write)(n);
        }
        self.inner.push(expected, new)
    }
}
