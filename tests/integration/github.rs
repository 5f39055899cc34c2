//! The GitHub adapter (octocrab) against the GitHub stand-in: pull requests opened once even
//! after a crash, one marked comment across pages, merges carried out in a real bare
//! repository or refused with GitHub's reasons, rate limits and server errors waited out or
//! reported with when to come back, statuses and deployments, and the token kept out of
//! every message. Tests assert on the requests the stand-in recorded; waits go through a
//! sleeper that records them and returns at once.

use crate::support::github::{branch_sha, GitHubStandIn, TOKEN};
use crate::support::repo::git;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir::adapters::github::rest::{RestGitHub, RestSettings, Sleeper};
use weir::adapters::github::retry::RetrySettings;
use weir::adapters::github::{
    CommitStatus, DeploymentPayload, DeploymentRequest, DeploymentState, DeploymentStatusUpdate,
    GitHub, MergeMethod, MergeOutcome, MergeRequest, NewPullRequest, PullState, RepoName,
    ReviewVerdict, StatusState, Upserted,
};
use weir::core::secret::Secret;
use weir::ports::BoxFuture;

/// Records each wait and returns at once.
#[derive(Default)]
struct Waits(Mutex<Vec<Duration>>);

impl Sleeper for Waits {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        self.0.lock().unwrap().push(duration);
        Box::pin(async {})
    }
}

impl Waits {
    fn taken(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A bare repository with `main`, a work tree to push branches from, the stand-in serving
/// it as `acme/config`, and the adapter pointed at the stand-in.
struct Bed {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
    hub: GitHubStandIn,
    gh: RestGitHub,
    waits: Arc<Waits>,
}

fn repo_name() -> RepoName {
    RepoName::from_remote_url("git@github.com:acme/config.git").unwrap()
}

fn client(hub: &GitHubStandIn, token: &str, waits: &Arc<Waits>) -> RestGitHub {
    let settings = RestSettings {
        base_url: hub.url(),
        timeout: Duration::from_secs(20),
        retry: RetrySettings::default(),
    };
    RestGitHub::new(repo_name(), &Secret::new(token), settings)
        .unwrap()
        .with_sleeper(waits.clone())
}

impl Bed {
    fn new() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("config.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "config.git"],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("weight.txt"), "0\n").unwrap();
        std::fs::write(work.join("README"), "config\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", "start"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        git(&work, &["push", "-q", "origin", "main"]);
        let hub = GitHubStandIn::start("acme", "config", &bare);
        let waits = Arc::new(Waits::default());
        let gh = client(&hub, TOKEN, &waits);
        Bed {
            _dir: dir,
            bare,
            work,
            hub,
            gh,
            waits,
        }
    }

    /// Commits `content` to `file` on `branch` (made from `from` when new) and pushes it;
    /// returns the new head.
    fn commit(&self, branch: &str, from: &str, file: &str, content: &str) -> String {
        git(&self.work, &["fetch", "-q", "origin"]);
        let start = if branch_sha(&self.bare, branch).is_some() {
            format!("origin/{branch}")
        } else {
            format!("origin/{from}")
        };
        git(&self.work, &["checkout", "-q", "-B", branch, &start]);
        std::fs::write(self.work.join(file), content).unwrap();
        git(
            &self.work,
            &["commit", "-qam", &format!("{file} = {content}")],
        );
        git(&self.work, &["push", "-q", "origin", branch]);
        branch_sha(&self.bare, branch).unwrap()
    }

    fn new_pull(&self, branch: &str) -> NewPullRequest {
        NewPullRequest {
            head: branch.to_string(),
            base: "main".to_string(),
            title: format!("podinfo: next step on {branch}"),
            body: "weir moves the canary to 20%".to_string(),
        }
    }

    /// How many requests the stand-in got for `method path`.
    fn count(&self, method: &str, path_end: &str) -> usize {
        self.hub
            .requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(path_end))
            .count()
    }
}

fn file_at(bare: &Path, rev: &str, file: &str) -> String {
    git(bare, &["show", &format!("{rev}:{file}")])
}

#[tokio::test]
async fn a_pull_request_is_opened_once_even_when_weir_crashed_after_opening_it() {
    let bed = Bed::new();
    let head = bed.commit("weir/podinfo", "main", "weight.txt", "10\n");
    assert_eq!(
        bed.gh.find_pull_request("weir/podinfo").await.unwrap(),
        None
    );

    let first = bed
        .gh
        .open_pull_request(&bed.new_pull("weir/podinfo"))
        .await
        .unwrap();
    assert_eq!(first.state, PullState::Open);
    assert_eq!(first.head_branch, "weir/podinfo");
    assert_eq!(first.head_sha, head);
    assert_eq!(first.base_branch, "main");
    assert_eq!(first.title, "podinfo: next step on weir/podinfo");
    assert!(first.html_url.unwrap().ends_with("/acme/config/pull/1"));

    // weir crashed before recording the number: the next tick opens again.
    bed.hub.clear_requests();
    let again = bed
        .gh
        .open_pull_request(&bed.new_pull("weir/podinfo"))
        .await
        .unwrap();
    assert_eq!(again.number, first.number);
    assert_eq!(bed.hub.pulls().len(), 1);
    let requests = bed.hub.requests();
    let shape: Vec<(String, u16)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(shape, [("POST".to_string(), 422), ("GET".to_string(), 200)]);
    assert_eq!(
        requests[1].query.get("head").map(String::as_str),
        Some("acme:weir/podinfo")
    );
    assert_eq!(
        requests[1].query.get("state").map(String::as_str),
        Some("open")
    );
    assert!(requests.iter().all(|r| r.authorized));

    // Found by branch; a push after opening is seen.
    let pushed = bed.commit("weir/podinfo", "main", "weight.txt", "20\n");
    let found = bed
        .gh
        .find_pull_request("weir/podinfo")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.number, found.head_sha.as_str()),
        (first.number, pushed.as_str())
    );
    assert_eq!(bed.gh.find_pull_request("weir/other").await.unwrap(), None);

    let updated = bed
        .gh
        .update_pull_request(first.number, "podinfo: 20%", "now at 20%")
        .await
        .unwrap();
    assert_eq!(
        (updated.title.as_str(), updated.body.as_str()),
        ("podinfo: 20%", "now at 20%")
    );

    let closed = bed
        .gh
        .close_pull_request(first.number, "superseded by a new revision")
        .await
        .unwrap();
    assert_eq!(closed.state, PullState::Closed);
    let closed_again = bed
        .gh
        .close_pull_request(first.number, "again")
        .await
        .unwrap();
    assert_eq!(closed_again.state, PullState::Closed);
    let comments = bed.hub.comments(first.number);
    assert_eq!(comments.len(), 1, "closing twice comments once");
    assert_eq!(comments[0].body, "superseded by a new revision");
    assert_eq!(
        bed.gh.find_pull_request("weir/podinfo").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn the_marked_comment_is_kept_single_across_pages_of_other_comments() {
    let bed = Bed::new();
    bed.commit("plan", "main", "weight.txt", "5\n");
    let pr = bed
        .gh
        .open_pull_request(&bed.new_pull("plan"))
        .await
        .unwrap();
    for i in 0..150 {
        bed.hub
            .add_comment(pr.number, "someone", &format!("looks good {i}"));
    }
    let marker = "<!-- weir:plan -->";
    let plan = |weights: &str| format!("{marker}\n### weir plan\nweights {weights}");

    let made = [
        bed.gh
            .upsert_comment(pr.number, marker, &plan("10 20"))
            .await
            .unwrap(),
        bed.gh
            .upsert_comment(pr.number, marker, &plan("10 20"))
            .await
            .unwrap(),
        bed.gh
            .upsert_comment(pr.number, marker, &plan("10 20 30"))
            .await
            .unwrap(),
    ];
    assert_eq!(
        made,
        [Upserted::Created, Upserted::Unchanged, Upserted::Updated]
    );
    let marked: Vec<_> = bed
        .hub
        .comments(pr.number)
        .into_iter()
        .filter(|c| c.body.contains(marker))
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].body, plan("10 20 30"));
    // The marked comment sat on page 2 after the first call: every call read both pages.
    let second_pages = bed
        .hub
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/comments") && r.method == "GET")
        .filter(|r| r.query.get("page").map(String::as_str) == Some("2"))
        .count();
    assert_eq!(second_pages, 3);
    assert_eq!(bed.count("POST", "/comments"), 1);
    assert_eq!(
        bed.count("PATCH", &format!("/comments/{}", marked[0].id)),
        1
    );

    let refused = bed
        .gh
        .upsert_comment(pr.number, marker, "no marker here")
        .await
        .unwrap_err();
    assert!(
        !refused.transient && refused.message.contains(marker),
        "{refused}"
    );
}

#[tokio::test]
async fn a_merge_waits_for_an_approval_then_lands_a_real_commit_on_the_base_branch() {
    let bed = Bed::new();
    bed.hub.require_approvals(1);
    let old_main = branch_sha(&bed.bare, "main").unwrap();
    let head = bed.commit("weir/podinfo", "main", "weight.txt", "20\n");
    let pr = bed
        .gh
        .open_pull_request(&bed.new_pull("weir/podinfo"))
        .await
        .unwrap();
    let request = MergeRequest {
        number: pr.number,
        expected_head: head.clone(),
        method: MergeMethod::default(),
        title: Some("podinfo: advance canary weight 10 -> 20".into()),
        message: None,
    };

    let refused = bed.gh.merge(&request).await.unwrap();
    let MergeOutcome::NotMergeable { reason } = refused else {
        panic!("expected a refusal, got {refused:?}")
    };
    assert!(reason.contains("approving review"), "{reason}");
    assert_eq!(branch_sha(&bed.bare, "main").unwrap(), old_main);

    bed.hub.request_changes(pr.number, "bob");
    bed.hub.approve(pr.number, "alice");
    bed.hub.review_comment(pr.number, "alice");
    let reviews = bed.gh.reviews(pr.number).await.unwrap();
    let verdicts: Vec<(&str, ReviewVerdict, Option<&str>)> = reviews
        .iter()
        .map(|r| (r.reviewer.as_str(), r.verdict, r.commit.as_deref()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("alice", ReviewVerdict::Approved, Some(head.as_str())),
            ("bob", ReviewVerdict::ChangesRequested, Some(head.as_str())),
        ]
    );
    let blocked = bed.gh.merge(&request).await.unwrap();
    assert!(
        matches!(&blocked, MergeOutcome::NotMergeable { reason } if reason.contains("Changes must be made")),
        "{blocked:?}"
    );
    bed.hub.approve(pr.number, "bob");

    let merged = bed.gh.merge(&request).await.unwrap();
    let MergeOutcome::Merged { sha } = merged else {
        panic!("expected a merge, got {merged:?}")
    };
    assert_eq!(branch_sha(&bed.bare, "main").unwrap(), sha);
    // A squash: one commit whose parent is the old base, with the branch's change.
    assert_eq!(
        git(&bed.bare, &["rev-parse", &format!("{sha}^@")]).trim(),
        old_main
    );
    assert_eq!(file_at(&bed.bare, &sha, "weight.txt"), "20\n");
    assert_eq!(
        git(&bed.bare, &["log", "-1", "--format=%s", &sha]).trim(),
        "podinfo: advance canary weight 10 -> 20"
    );
    let put = bed
        .hub
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap();
    let body = put.body.unwrap();
    assert_eq!(
        (body["sha"].as_str(), body["merge_method"].as_str()),
        (Some(head.as_str()), Some("squash"))
    );

    // weir crashed before recording the merge: asking again reports the same merge.
    let again = bed.gh.merge(&request).await.unwrap();
    assert_eq!(again, MergeOutcome::Merged { sha: sha.clone() });
    assert_eq!(
        bed.gh.pull_request(pr.number).await.unwrap().state,
        PullState::Merged
    );
    assert_eq!(branch_sha(&bed.bare, "main").unwrap(), sha);
}

#[tokio::test]
async fn conflicts_stale_heads_and_pending_checks_are_told_apart() {
    let bed = Bed::new();
    let stale = bed.commit("weir/a", "main", "README", "a\n");
    let head = bed.commit("weir/a", "main", "README", "a2\n");
    let pr = bed
        .gh
        .open_pull_request(&bed.new_pull("weir/a"))
        .await
        .unwrap();
    let mut request = MergeRequest {
        number: pr.number,
        expected_head: stale,
        method: MergeMethod::Squash,
        title: None,
        message: None,
    };
    let outcome = bed.gh.merge(&request).await.unwrap();
    assert!(
        matches!(&outcome, MergeOutcome::StaleHead { reason } if reason.contains("Head branch was modified")),
        "{outcome:?}"
    );

    bed.hub.require_status("weir/podinfo");
    request.expected_head = head.clone();
    let outcome = bed.gh.merge(&request).await.unwrap();
    assert!(
        matches!(&outcome, MergeOutcome::NotMergeable { reason } if reason.contains("\"weir/podinfo\" is expected")),
        "{outcome:?}"
    );
    bed.gh
        .set_status(&CommitStatus {
            sha: head.clone(),
            context: "weir/podinfo".into(),
            state: StatusState::Success,
            description: "canary analysis passed".into(),
            target_url: None,
        })
        .await
        .unwrap();

    // Meanwhile main changed the same line: a conflict.
    bed.commit("main", "main", "README", "main moved\n");
    let outcome = bed.gh.merge(&request).await.unwrap();
    assert!(
        matches!(&outcome, MergeOutcome::Conflict { reason } if reason == "Merge conflict"),
        "{outcome:?}"
    );
    // GitHub may refuse it as unmergeable instead: still a conflict, read from the PR.
    bed.hub.conflict_as_405();
    let outcome = bed.gh.merge(&request).await.unwrap();
    assert!(
        matches!(&outcome, MergeOutcome::Conflict { reason } if reason.contains("not mergeable")),
        "{outcome:?}"
    );
    assert_eq!(
        bed.gh.pull_request(pr.number).await.unwrap().mergeable,
        Some(false)
    );
    assert_eq!(file_at(&bed.bare, "main", "README"), "main moved\n");

    // A merge commit, when asked for one, has both parents.
    let other = bed.commit("weir/b", "main", "weight.txt", "30\n");
    let pr_b = bed
        .gh
        .open_pull_request(&bed.new_pull("weir/b"))
        .await
        .unwrap();
    bed.gh
        .set_status(&CommitStatus {
            sha: other.clone(),
            context: "weir/podinfo".into(),
            state: StatusState::Success,
            description: "ok".into(),
            target_url: None,
        })
        .await
        .unwrap();
    let outcome = bed
        .gh
        .merge(&MergeRequest {
            number: pr_b.number,
            expected_head: other.clone(),
            method: MergeMethod::Merge,
            title: None,
            message: None,
        })
        .await
        .unwrap();
    let MergeOutcome::Merged { sha } = outcome else {
        panic!("{outcome:?}")
    };
    let parents = git(&bed.bare, &["rev-parse", &format!("{sha}^@")]);
    assert_eq!(parents.lines().count(), 2, "{parents}");
    assert!(parents.contains(&other));
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_github_asks_within_a_bound() {
    let bed = Bed::new();
    bed.hub.throttle_next(2, 1);
    assert_eq!(bed.gh.find_pull_request("x").await.unwrap(), None);
    let statuses: Vec<u16> = bed.hub.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    assert_eq!(bed.waits.taken(), [Duration::from_secs(1); 2]);

    // Still limited after every attempt: a transient error saying when to come back.
    bed.hub.clear_requests();
    bed.hub.throttle_next(10, 7);
    let err = bed.gh.find_pull_request("x").await.unwrap_err();
    assert!(err.transient, "{err}");
    assert_eq!(err.status, Some(429));
    assert!(err.retry_at.is_some());
    assert!(
        err.message.contains("rate limited") && err.message.contains("retry after"),
        "{err}"
    );
    assert_eq!(bed.hub.requests().len(), 4);
    assert_eq!(bed.waits.taken(), [Duration::from_secs(7); 3]);

    // The primary limit is spent for an hour: no waiting inside the tick at all.
    bed.hub.throttle_next(0, 0);
    bed.hub.clear_requests();
    bed.hub.exhaust_next(1, 3600);
    let before = chrono::Utc::now();
    let err = bed.gh.find_pull_request("x").await.unwrap_err();
    assert!(err.transient);
    let at = err.retry_at.expect("when the limit lifts");
    assert!(at > before + chrono::Duration::minutes(59), "{at}");
    assert_eq!(bed.hub.requests().len(), 1);
    assert!(bed.waits.taken().is_empty());
}

#[tokio::test]
async fn secondary_rate_limits_are_waited_out_and_other_refusals_are_not_retried() {
    let bed = Bed::new();
    bed.hub.secondary_limit_next(1, Some(1));
    assert_eq!(bed.gh.find_pull_request("x").await.unwrap(), None);
    assert_eq!(bed.waits.taken(), [Duration::from_secs(1)]);
    // Without retry-after, GitHub asks for at least a minute.
    bed.hub.secondary_limit_next(1, None);
    assert_eq!(bed.gh.find_pull_request("x").await.unwrap(), None);
    assert_eq!(bed.waits.taken(), [Duration::from_secs(60)]);
    let statuses: Vec<u16> = bed.hub.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 200, 403, 200]);

    // A refused token is a refusal, not a limit: one request, a permanent error.
    bed.hub.clear_requests();
    let wrong = client(&bed.hub, "ghp_wrongToken123", &bed.waits);
    let err = wrong.find_pull_request("x").await.unwrap_err();
    assert!(!err.transient && err.status == Some(401), "{err:?}");
    assert!(err.message.contains("Bad credentials"), "{err}");
    assert_eq!(bed.hub.requests().len(), 1);
    assert!(bed.waits.taken().is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_except_where_a_retry_could_post_twice() {
    let bed = Bed::new();
    bed.commit("weir/podinfo", "main", "weight.txt", "10\n");
    let pr = bed
        .gh
        .open_pull_request(&bed.new_pull("weir/podinfo"))
        .await
        .unwrap();
    bed.hub.clear_requests();
    bed.hub.fail_next(1);
    assert_eq!(
        bed.gh.pull_request(pr.number).await.unwrap().number,
        pr.number
    );
    let statuses: Vec<u16> = bed.hub.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 200]);
    assert_eq!(bed.waits.taken(), [Duration::from_secs(1)]);

    // A comment is not posted again after a 502: GitHub may have stored the first.
    bed.hub.clear_requests();
    bed.hub.fail_next(1);
    let err = bed.gh.comment(pr.number, "hello").await.unwrap_err();
    assert!(err.transient && err.status == Some(502), "{err:?}");
    assert!(err.message.contains("502"), "{err}");
    assert_eq!(bed.hub.requests().len(), 1);

    // GitHub failing every time: bounded attempts, then a transient error.
    bed.hub.clear_requests();
    bed.hub.fail_next(100);
    let err = bed.gh.reviews(pr.number).await.unwrap_err();
    assert!(err.transient, "{err}");
    assert_eq!(bed.hub.requests().len(), 4);
    assert_eq!(
        bed.waits.taken(),
        [1, 2, 4].map(Duration::from_secs),
        "backoff doubles"
    );
    bed.hub.fail_next(0);
}

#[tokio::test]
async fn the_token_never_appears_in_errors_or_debug_output() {
    let bed = Bed::new();
    let mut shown = vec![format!("{:?}", bed.gh)];
    bed.hub.throttle_next(10, 1);
    shown.push(bed.gh.find_pull_request("x").await.unwrap_err().to_string());
    bed.hub.throttle_next(0, 0);
    bed.hub.fail_next(1);
    let err = bed.gh.comment(1, "x").await.unwrap_err();
    shown.push(format!("{err} {err:?}"));
    // Whatever GitHub (or a proxy in front of it) echoes is scrubbed.
    bed.hub.echo_next(1);
    let err = bed.gh.pull_request(1).await.unwrap_err();
    assert_eq!((err.status, err.transient), (Some(400), false));
    assert!(err.message.contains("Problems parsing request"), "{err}");
    shown.push(format!("{err} {err:?}"));
    let err = bed.gh.pull_request(999).await.unwrap_err();
    assert_eq!((err.status, err.transient), (Some(404), false));
    shown.push(format!("{err} {err:?}"));
    let err = bed
        .gh
        .set_status(&CommitStatus {
            sha: "0".repeat(40),
            context: "weir".into(),
            state: StatusState::Pending,
            description: "x".into(),
            target_url: None,
        })
        .await
        .unwrap_err();
    assert!(err.message.contains("No commit found"), "{err}");
    shown.push(format!("{err:?}"));
    let bad = RestGitHub::new(
        repo_name(),
        &Secret::new(format!("{TOKEN}\nx")),
        RestSettings::default(),
    )
    .unwrap_err();
    shown.push(format!("{bad} {bad:?}"));
    let nowhere = RestGitHub::new(
        repo_name(),
        &Secret::new(TOKEN),
        RestSettings {
            base_url: "http://127.0.0.1:1".into(),
            timeout: Duration::from_secs(5),
            retry: RetrySettings {
                max_attempts: 1,
                ..RetrySettings::default()
            },
        },
    )
    .unwrap();
    let err = nowhere.find_pull_request("x").await.unwrap_err();
    assert!(err.transient && err.status.is_none(), "{err:?}");
    shown.push(format!("{err} {err:?}"));
    for text in &shown {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
        assert!(
            !text.contains("standInT0ken"),
            "part of the token leaked: {text}"
        );
    }
    assert!(bed.hub.requests().iter().all(|r| r.authorized));
}

#[tokio::test]
async fn statuses_and_deployments_are_recorded_once_per_release() {
    let bed = Bed::new();
    let head = bed.commit("weir/podinfo", "main", "weight.txt", "10\n");
    bed.gh
        .set_status(&CommitStatus {
            sha: head.clone(),
            context: "weir/podinfo".into(),
            state: StatusState::Pending,
            description: format!("canary at 10%\n{}", "and more ".repeat(40)),
            target_url: Some("https://grafana.example.com/d/podinfo".into()),
        })
        .await
        .unwrap();
    let statuses = bed.hub.statuses();
    assert_eq!(statuses.len(), 1);
    let status = &statuses[0];
    assert_eq!(
        (status.sha.as_str(), status.state.as_str()),
        (head.as_str(), "pending")
    );
    assert_eq!(status.context, "weir/podinfo");
    let description = status.description.clone().unwrap();
    assert!(
        description.chars().count() <= 140 && description.starts_with("canary at 10% and"),
        "{description}"
    );
    assert_eq!(
        status.target_url.as_deref(),
        Some("https://grafana.example.com/d/podinfo")
    );
    let err = bed
        .gh
        .set_status(&CommitStatus {
            sha: "main".into(),
            context: "weir".into(),
            state: StatusState::Success,
            description: String::new(),
            target_url: None,
        })
        .await
        .unwrap_err();
    assert!(
        !err.transient && err.message.contains("not a commit id"),
        "{err}"
    );
    assert_eq!(bed.count("POST", "/statuses/main"), 0);

    let release = DeploymentRequest {
        git_ref: head.clone(),
        environment: "production".into(),
        task: "deploy:podinfo".into(),
        description: "podinfo 6.0.1".into(),
        payload: DeploymentPayload {
            app: "podinfo".into(),
            namespace: "test".into(),
            revision: "6.0.1".into(),
        },
    };
    let first = bed.gh.deployment(&release).await.unwrap();
    assert!(first.created);
    assert_eq!(first.sha, head);
    let again = bed.gh.deployment(&release).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
    let other_app = DeploymentRequest {
        payload: DeploymentPayload {
            app: "backend".into(),
            ..release.payload.clone()
        },
        ..release.clone()
    };
    let backend = bed.gh.deployment(&other_app).await.unwrap();
    assert!(backend.created && backend.id != first.id);
    assert_eq!(bed.hub.deployments().len(), 2);
    let sent = &bed.hub.deployments()[0].request;
    assert_eq!(sent["auto_merge"], serde_json::json!(false));
    assert_eq!(sent["required_contexts"], serde_json::json!([]));
    assert_eq!(
        sent["payload"],
        serde_json::json!({"app": "podinfo", "namespace": "test", "revision": "6.0.1"})
    );
    let listed = bed
        .hub
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path.ends_with("/deployments"))
        .unwrap();
    assert_eq!(listed.query.get("sha"), Some(&head));
    assert_eq!(
        listed.query.get("environment").map(String::as_str),
        Some("production")
    );
    assert_eq!(
        listed.query.get("task").map(String::as_str),
        Some("deploy:podinfo")
    );

    for state in [DeploymentState::InProgress, DeploymentState::Success] {
        bed.gh
            .deployment_status(&DeploymentStatusUpdate {
                deployment: first.id,
                state,
                description: format!("podinfo {}", state.as_str()),
                environment: None,
                log_url: Some("https://github.com/acme/config/pull/1".into()),
            })
            .await
            .unwrap();
    }
    let states: Vec<(u64, String)> = bed
        .hub
        .deployment_statuses()
        .into_iter()
        .map(|s| (s.deployment, s.state))
        .collect();
    assert_eq!(
        states,
        [
            (first.id, "in_progress".to_string()),
            (first.id, "success".to_string())
        ]
    );
}

/// Only people who may write to the repository count as reviewers: the adapter reads each
/// one's permission from GitHub's collaborator permission endpoint.
#[tokio::test]
async fn reviewers_count_only_with_write_access() {
    let bed = Bed::new();
    for (login, permission, counts) in [
        ("ada", "admin", true),
        ("max", "maintain", true),
        ("wes", "write", true),
        ("tri", "triage", false),
        ("rea", "read", false),
        ("non", "none", false),
    ] {
        bed.hub.set_permission(login, permission);
        assert_eq!(bed.gh.can_write(login).await.unwrap(), counts, "{login}");
    }
    assert!(bed
        .hub
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == "/repos/acme/config/collaborators/rea/permission"));
}
