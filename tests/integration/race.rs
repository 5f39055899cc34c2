//! A concurrent writer pushes between weir's fetch and its push: weir's push is refused,
//! weir re-plans on the new head, and both changes are in the history. Nothing is forced.

use crate::support::repo::{edit, git, Fixture};
use chrono::Utc;
use git2::{Oid, Repository};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weir::git::{Git2Transport, GitError, GitSettings, PushOutcome, Transport};
use weir::reconcile::Mode;

/// The real transport, with CI bumping a tag right before weir's first push.
struct Racing {
    inner: Git2Transport,
    work: PathBuf,
    raced: Arc<AtomicBool>,
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
        if !self.raced.swap(true, Ordering::SeqCst) {
            edit(
                &self.work.join("apps/frontend/kustomization.yaml"),
                0,
                "images[0].newTag",
                "6.1.5",
            );
            git(&self.work, &["commit", "-qam", "frontend: bump to 6.1.5"]);
            git(&self.work, &["push", "-q", "origin", "main"]);
        }
        self.inner.push(repo, s, old, new)
    }
}

#[tokio::test]
async fn a_push_race_is_replanned_on_the_new_head_and_both_changes_survive() {
    let fixture = Fixture::new();
    let raced = Arc::new(AtomicBool::new(false));
    let mut engine = fixture.engine_with(
        None,
        Box::new(Racing {
            inner: Git2Transport,
            work: fixture.work.clone(),
            raced: raced.clone(),
        }),
    );
    let report = engine.tick(Mode::Push, &Utc::now).await.unwrap();
    assert!(raced.load(Ordering::SeqCst));
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
    /// A writer that pushes before every one of weir's pushes.
    struct Always {
        inner: Git2Transport,
        work: PathBuf,
        n: u32,
    }
    impl Transport for Always {
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
            self.n += 1;
            std::fs::write(self.work.join(format!("note-{}.txt", self.n)), "x").unwrap();
            git(&self.work, &["add", "-A"]);
            git(
                &self.work,
                &["commit", "-qm", &format!("writer {}", self.n)],
            );
            git(&self.work, &["push", "-q", "origin", "main"]);
            self.inner.push(repo, s, old, new)
        }
    }
    let fixture = Fixture::new();
    let mut engine = fixture.engine_with(
        None,
        Box::new(Always {
            inner: Git2Transport,
            work: fixture.work.clone(),
            n: 0,
        }),
    );
    let err = engine.tick(Mode::Push, &Utc::now).await.unwrap_err();
    assert!(
        err.to_string().starts_with("gave up after 5 push attempts"),
        "{err}"
    );
    let log = fixture.log();
    assert_eq!(log.len(), 6, "every writer commit survives: {log:?}");
    assert!(log.iter().all(|(_, s)| !s.contains("rollouts moved")));
}
