//! A concurrent writer pushes between weir's fetch and its push: weir's push is refused,
//! weir re-plans on the new head, and both changes are in the history. Nothing is forced.

use crate::support::repo::{edit, git, Fixture};
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use weir::git::Git2Repo;
use weir::ports::{ChangeSet, ConfigRepo, PushOutcome, RepoError};
use weir::source::SourceTree;
use weir::tree::ObjectId;

/// The real config repo, with another writer changing the remote right before the first
/// `races` of weir's pushes. `pushes` counts weir's push attempts.
pub struct Racing {
    pub inner: Git2Repo,
    pub work: std::path::PathBuf,
    pub races: u32,
    pub pushes: Arc<AtomicU32>,
    pub write: fn(&Path, u32),
}

impl Racing {
    pub fn new(fixture: &Fixture, races: u32, write: fn(&Path, u32)) -> (Racing, Arc<AtomicU32>) {
        let pushes = Arc::new(AtomicU32::new(0));
        let racing = Racing {
            inner: fixture.repo(),
            work: fixture.work.clone(),
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
    fn push(&mut self, expected: ObjectId, new: ObjectId) -> Result<PushOutcome, RepoError> {
        let n = self.pushes.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.races {
            (self.write)(&self.work, n);
        }
        self.inner.push(expected, new)
    }
}

/// CI bumps the frontend's tag.
fn bump_frontend(work: &Path, _: u32) {
    edit(
        &work.join("apps/frontend/kustomization.yaml"),
        0,
        "images[0].newTag",
        "6.1.5",
    );
    git(work, &["commit", "-qam", "frontend: bump to 6.1.5"]);
    git(work, &["push", "-q", "origin", "main"]);
}

/// Someone adds a note.
fn add_note(work: &Path, n: u32) {
    std::fs::write(work.join(format!("note-{n}.txt")), "x").unwrap();
    git(work, &["add", "-A"]);
    git(work, &["commit", "-qm", &format!("writer {n}")]);
    git(work, &["push", "-q", "origin", "main"]);
}

#[tokio::test]
async fn a_push_race_is_replanned_on_the_new_head_and_both_changes_survive() {
    let fixture = Fixture::new();
    let (racing, pushes) = Racing::new(&fixture, 1, bump_frontend);
    let mut engine = fixture.engine_with(None, Box::new(racing));
    let report = engine.tick().await.unwrap();
    assert_eq!(pushes.load(Ordering::SeqCst), 2);
    assert_eq!(report.attempts, 2, "first push refused, second one lands");

    let log = fixture.log();
    let subjects: Vec<&str> = log.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "gitops-istio layout",
            "frontend: bump to 6.1.5",
            "weir: 2 rollouts moved"
        ]
    );
    // weir's commit sits on the writer's commit: fast-forward, nothing overwritten.
    let parent = crate::support::repo::git(&fixture.remote, &["rev-parse", "main^"]);
    assert_eq!(parent.trim(), log[1].0);
    // And the re-plan saw the new head: the frontend primary starts at the bumped tag.
    let frontend = fixture.state("frontend").unwrap();
    assert_eq!(frontend.primary_images, vec!["ghcr.io/acme/frontend:6.1.5"]);
    assert_eq!(
        fixture
            .show("main", "apps/frontend/kustomization.yaml")
            .unwrap()
            .matches("6.1.5")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_remote_that_keeps_moving_is_never_forced() {
    let fixture = Fixture::new();
    let (racing, _) = Racing::new(&fixture, u32::MAX, add_note);
    let mut engine = fixture.engine_with(None, Box::new(racing));
    let err = engine.tick().await.unwrap_err();
    assert!(
        err.to_string().starts_with("gave up after 5 push attempts"),
        "{err}"
    );
    let log = fixture.log();
    assert_eq!(log.len(), 6, "every writer commit survives: {log:?}");
    assert!(log.iter().all(|(_, s)| !s.contains("rollouts moved")));
}
