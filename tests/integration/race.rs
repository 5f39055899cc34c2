//! A concurrent writer pushes between weir's fetch and its push: weir's push is refused,
//! weir re-plans on the new head, and both changes are in the history. Nothing is forced.

use crate::support::racing::Racing;
use crate::support::repo::{edit, git, Fixture};
use std::path::Path;
use std::sync::atomic::Ordering;
use weir::adapters::ssh::SshSettings;

/// CI bumps the frontend's tag.
fn bump_frontend(work: &Path) {
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
    let work = fixture.work.clone();
    let (racing, pushes) = Racing::new(fixture.repo(), 1, Box::new(move |_| bump_frontend(&work)));
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
    let work = fixture.work.clone();
    let (racing, _) = Racing::new(
        fixture.repo(),
        u32::MAX,
        Box::new(move |n| add_note(&work, n)),
    );
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

/// A person drops a bad commit by resetting the branch to the commit before it, right
/// between weir's fetch and its push. weir's push must not fast-forward over the reset (that
/// would bring the dropped commit back): the lease sees the branch is not where weir planned,
/// weir plans again on the reset branch, and the dropped commit stays dropped.
#[tokio::test]
async fn a_branch_reset_backwards_is_a_race_and_the_dropped_commit_never_comes_back() {
    let fixture = Fixture::new();
    fixture.engine(None).tick().await.unwrap();
    let good = git(&fixture.remote, &["rev-parse", "main"])
        .trim()
        .to_string();
    fixture.bump("backend", "6.6.6");
    let dropped = git(&fixture.remote, &["rev-parse", "main"])
        .trim()
        .to_string();

    let remote = fixture.remote.clone();
    let reset_to = good.clone();
    let (racing, pushes) = Racing::new(
        fixture.repo(),
        1,
        Box::new(move |_| {
            git(&remote, &["update-ref", "refs/heads/main", &reset_to]);
        }),
    );
    let mut engine = fixture.engine_with(None, Box::new(racing));
    let report = engine.tick().await.unwrap();
    assert_eq!(
        pushes.load(Ordering::SeqCst),
        1,
        "one push, refused by the lease"
    );
    assert_eq!(report.attempts, 2, "planned again on the reset branch");
    assert_eq!(report.commit, None, "nothing to do at the reset head");
    assert_eq!(
        git(&fixture.remote, &["rev-parse", "main"]).trim(),
        good,
        "the branch stays where the person put it"
    );
    let is_ancestor = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&fixture.remote)
        .args(["merge-base", "--is-ancestor", &dropped, "main"])
        .status()
        .unwrap();
    assert!(!is_ancestor.success(), "the dropped commit came back");
    assert!(!fixture
        .show("main", "apps/backend/kustomization.yaml")
        .unwrap()
        .contains("6.6.6"));
    assert!(fixture.log().iter().all(|(_, s)| !s.contains("6.6.6")));
}

/// Someone pushes a commit in the narrowest window: after weir checked the lease and before
/// the remote's branch moves. On every transport weir accepts, weir's push must fail and be
/// planned again on the new head; the other commit is never overwritten.
fn a_commit_pushed_during_weirs_push_survives(
    remote: impl FnOnce(&Fixture) -> (String, Option<&'static str>, Option<SshSettings>),
) {
    let fixture = Fixture::new();
    let (url, token, ssh) = remote(&fixture);
    let mut repo = weir::adapters::git::Git2Repo::open(weir::adapters::git::GitSettings {
        url: weir::core::secret::SafeUrl::new(url),
        token: token.map(weir::core::secret::Secret::new),
        ssh,
        ..fixture.settings()
    })
    .unwrap();
    let work = fixture.work.clone();
    let mut writes = 0;
    repo.during_push(Box::new(move || {
        writes += 1;
        if writes == 1 {
            add_note(&work, 1);
        }
    }));
    let mut engine = fixture.engine_with(None, Box::new(repo));
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(engine.tick())
        .unwrap();
    assert_eq!(
        report.attempts, 2,
        "the first push failed, the second landed"
    );
    let log = fixture.log();
    let subjects: Vec<&str> = log.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        subjects,
        ["gitops-istio layout", "writer 1", "weir: 2 rollouts moved"],
        "the writer's commit was overwritten"
    );
    assert_eq!(
        git(&fixture.remote, &["rev-parse", "main^"]).trim(),
        log[1].0,
        "weir's commit sits on the writer's"
    );
}

#[test]
fn a_commit_pushed_during_weirs_push_to_a_path_survives() {
    a_commit_pushed_during_weirs_push_survives(|f| (f.url(), None, None));
}

#[test]
fn a_commit_pushed_during_weirs_push_to_a_file_url_survives() {
    a_commit_pushed_during_weirs_push_survives(|f| (format!("file://{}", f.url()), None, None));
}

#[test]
fn a_commit_pushed_during_weirs_push_over_git_protocol_survives() {
    let mut daemon = None;
    a_commit_pushed_during_weirs_push_survives(|f| {
        let d = crate::support::git_daemon::GitDaemon::start(f.dir.path());
        let url = d.url("remote.git");
        daemon = Some(d);
        (url, None, None)
    });
}

#[test]
fn a_commit_pushed_during_weirs_push_over_http_survives() {
    let mut server = None;
    a_commit_pushed_during_weirs_push_survives(|f| {
        let s = crate::support::git_http::GitHttp::start(f.dir.path(), "x-access-token", "t");
        let url = s.url("remote.git");
        server = Some(s);
        (url, Some("t"), None)
    });
}

#[test]
fn a_commit_pushed_during_weirs_push_over_ssh_survives() {
    let mut server = None;
    a_commit_pushed_during_weirs_push_survives(|f| {
        let s = crate::support::sshd::Sshd::start(f.dir.path());
        let url = s.url(&f.remote);
        let ssh = SshSettings::from_secret_dir(&s.secret).unwrap();
        server = Some(s);
        (url, None, Some(ssh))
    });
}
