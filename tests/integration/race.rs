//! A concurrent writer pushes between weir's fetch and its push: weir's push is refused,
//! weir re-plans on the new head, and both changes are in the history. Nothing is forced.

use crate::support::repo::{edit, git, Fixture};
use chrono::Utc;
use git2::{Oid, Repository};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use weir::git::{Git2Transport, GitError, GitSettings, PushOutcome, Transport};
use weir::reconcile::Mode;

/// The real transport, with another writer pushing right before the first `races` of
/// weir's pushes. `pushes` counts weir's push attempts.
struct Racing {
    inner: Git2Transport,
    work: PathBuf,
    races: u32,
    pushes: Arc<AtomicU32>,
    write: fn(&Path, u32),
}

impl Racing {
    fn new(fixture: &Fixture, races: u32, write: fn(&Path, u32)) -> (Racing, Arc<AtomicU32>) {
        let pushes = Arc::new(AtomicU32::new(0));
        let racing = Racing {
            inner: Git2Transport,
            work: fixture.work.clone(),
            races,
            pushes: pushes.clone(),
            write,
        };
        (racing, pushes)
    }
}

impl Transport for Racing {
    fn fetch(&mut self, repo: &Repository, s: &GitSettings) -> Result<Oid, GitError> {
        self.inner.fetch(repo, s)
    }

    fn push(
        &mut self,
        repo: &Repository,
        s: &GitSettings,
        old: Oid,
        new: Oid,
    ) -> Result<PushOutcome, GitError> {
        let n = self.pushes.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.races {
            (self.write)(&self.work, n);
            git(&self.work, &["push", "-q", "origin", "main"]);
        }
        self.inner.push(repo, s, old, new)
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
}

/// Someone adds a note.
fn add_note(work: &Path, n: u32) {
    std::fs::write(work.join(format!("note-{n}.txt")), "x").unwrap();
    git(work, &["add", "-A"]);
    git(work, &["commit", "-qm", &format!("writer {n}")]);
}

#[tokio::test]
async fn a_push_race_is_replanned_on_the_new_head_and_both_changes_survive() {
    let fixture = Fixture::new();
    let (racing, pushes) = Racing::new(&fixture, 1, bump_frontend);
    let mut engine = fixture.engine_with(None, Box::new(racing));
    let report = engine.tick(Mode::Push, &Utc::now).await.unwrap();
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
    let err = engine.tick(Mode::Push, &Utc::now).await.unwrap_err();
    assert!(
        err.to_string().starts_with("gave up after 5 push attempts"),
        "{err}"
    );
    let log = fixture.log();
    assert_eq!(log.len(), 6, "every writer commit survives: {log:?}");
    assert!(log.iter().all(|(_, s)| !s.contains("rollouts moved")));
}
