//! PR mode end to end: a real bare remote behind the GitHub stand-in (whose merges are real
//! squash commits on `main`), the octocrab adapter, the engine with the pull request
//! publisher. A canary release goes through one pull request per step, merged by weir; the
//! promotion waits for an approving review; a restart finds and continues the same pull
//! request; a bad release is rolled back through its pull request; every commit on `main`
//! builds as Flux builds it.

use crate::support::github::GitHubStandIn;
use crate::support::repo::{drive, edit, flux_build, git, Fixture};
use std::sync::Arc;
use std::time::Duration;
use weir::adapters::clock::SystemClock;
use weir::adapters::github::{CommitStatus, GitHub, StatusState};
use weir::adapters::publish::pull_request::{PrSettings, PullRequests};
use weir::core::query::MetricError;
use weir::core::spec::Phase;
use weir::engine::Engine;
use weir::test_support::fakes::FakeMetrics;

/// Metrics of a healthy release: success rate 100, error rate 0, latency 100ms.
fn healthy(q: &str) -> Result<f64, MetricError> {
    Ok(if q.contains("histogram_quantile") {
        100.0
    } else if q.trim_start().starts_with("100 -") {
        0.0
    } else {
        100.0
    })
}

fn engine(fixture: &Fixture, hub: &GitHubStandIn, metrics: &FakeMetrics) -> Engine {
    let publisher = PullRequests::new(Arc::new(hub.client()), PrSettings::default());
    fixture.engine_publishing(
        Box::new(fixture.repo()),
        Box::new(publisher),
        Arc::new(metrics.clone()),
        Arc::new(SystemClock),
    )
}

/// The demo layout with the backend releasing in two steps a second apart, its GitHub, and
/// healthy metrics.
fn release() -> (Fixture, GitHubStandIn, FakeMetrics) {
    let fixture = Fixture::with(|work| {
        let canary = work.join("apps/backend/canary.yaml");
        edit(&canary, 0, "spec.analysis.interval", "1s");
        edit(&canary, 0, "spec.analysis.stepWeight", "50");
        edit(&canary, 0, "spec.analysis.threshold", "2");
    });
    let hub = GitHubStandIn::start("acme", "gitops-istio", &fixture.remote);
    let metrics = FakeMetrics::constant(0.0);
    metrics.answer(healthy);
    (fixture, hub, metrics)
}

/// What a PR-mode scenario may take to reach a state; steps are 1s apart.
const DEADLINE: Duration = Duration::from_secs(40);

/// The rows of a body's gate table, without their time: interval, canary weight, gate,
/// value, bound, result.
fn gate_rows(body: &str) -> Vec<[String; 6]> {
    let table = body
        .split_once("Gate results of this release so far:")
        .map(|(_, t)| t)
        .unwrap_or_default();
    table
        .lines()
        .skip_while(|l| !l.starts_with("| ---"))
        .skip(1)
        .take_while(|l| l.starts_with("| "))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            assert_eq!(cells.len(), 7, "{l}");
            [0, 2, 3, 4, 5, 6].map(|i| cells[i].clone())
        })
        .collect()
}

/// Metrics of a bad release: 30% errors.
fn erroring(q: &str) -> Result<f64, MetricError> {
    Ok(if q.trim_start().starts_with("100 -") {
        30.0
    } else {
        100.0
    })
}

/// The backend's Canary names the phases whose steps wait for a review.
fn review_in_canary(fixture: &Fixture, phases: &str) {
    fixture.push_change(&format!("backend: pr-review {phases}"), |work| {
        let canary = work.join("apps/backend/canary.yaml");
        let text = std::fs::read_to_string(&canary).unwrap();
        let text = text.replacen(
            "  namespace: prod\n",
            &format!("  namespace: prod\n  annotations:\n    weir.dev/pr-review: {phases}\n"),
            1,
        );
        std::fs::write(&canary, text).unwrap();
    });
}

/// How many times weir has read the reviews of pull request `number`.
fn review_looks(hub: &GitHubStandIn, number: u64) -> usize {
    let reviews = format!("/pulls/{number}/reviews");
    hub.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&reviews))
        .count()
}

fn phase(fixture: &Fixture) -> Option<Phase> {
    fixture.state("backend").map(|s| s.phase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_goes_through_pull_requests_and_the_promotion_waits_for_a_review() {
    let (fixture, hub, metrics) = release();
    let mut weir = engine(&fixture, &hub, &metrics);

    // Initialisation: one pull request per app, each merged at once.
    drive(&mut weir, &fixture, DEADLINE, |f| {
        f.state("backend").is_some() && f.state("frontend").is_some()
    })
    .await;
    let pulls = hub.pulls();
    assert_eq!(pulls.len(), 2, "{pulls:#?}");
    assert!(pulls.iter().all(|p| p.merged && !p.open));
    let mut heads: Vec<&str> = pulls.iter().map(|p| p.head.as_str()).collect();
    heads.sort();
    assert_eq!(heads, ["weir/prod/backend", "weir/prod/frontend"]);

    // A release: each analysed step is a pull request merged by weir, until the promotion,
    // which waits for a person.
    fixture.bump("backend", "6.1.1");
    let waiting = drive(&mut weir, &fixture, DEADLINE, |_| {
        hub.pulls()
            .iter()
            .any(|p| p.open && p.title.contains("promoting revision"))
    })
    .await
    .pop()
    .expect("a tick");
    let promotion = hub
        .pulls()
        .into_iter()
        .find(|p| p.open)
        .expect("the open promotion pull request");
    assert_eq!(promotion.head, "weir/prod/backend");
    let body = promotion.body.clone().unwrap_or_default();
    assert!(body.starts_with("<!-- weir step: "), "{body}");
    assert!(body.contains("request-success-rate 100 >= 99"), "{body}");
    assert!(body.contains("```mermaid\nxychart-beta"), "{body}");
    // The gate results of the release so far: the step at 0 reads nothing (no traffic
    // reaches the canary), the step at 50 read every metric, and each has a chart.
    assert_eq!(
        gate_rows(&body),
        vec![
            ["1", "50", "request-success-rate", "100", ">= 99", "pass"],
            ["1", "50", "error-rate", "0", "<= 1", "pass"],
            ["1", "50", "latency", "100", "<= 500", "pass"],
        ],
        "{body}"
    );
    for metric in ["request-success-rate", "error-rate", "latency"] {
        assert!(
            body.contains(&format!("title \"{metric} per interval\"")),
            "{body}"
        );
    }
    let line = waiting
        .apps
        .iter()
        .find(|a| a.app == "prod/backend")
        .unwrap();
    assert!(
        line.message.contains(&format!(
            "#{} waits for an approving review",
            promotion.number
        )),
        "{line:#?}"
    );
    // `weir status` reads Git only: the branch shows the step waiting, main the last one
    // merged.
    let status = weir.status().await.unwrap();
    let line = status
        .apps
        .iter()
        .find(|a| a.app == "prod/backend")
        .unwrap();
    assert_eq!(line.phase.as_deref(), Some("Progressing"), "{line:#?}");
    let proposed = line.proposed.as_deref().unwrap_or_default();
    assert!(
        proposed.starts_with("waiting in weir/prod/backend: promoting revision")
            && proposed.ends_with("(phase Promoting, canary weight 50%)"),
        "{line:#?}"
    );
    let frontend = status.apps.iter().find(|a| a.app == "prod/frontend");
    assert_eq!(frontend.and_then(|a| a.proposed.as_ref()), None);

    // Unapproved, it stays: three more looks at its reviews merge nothing and do not
    // rebuild the branch.
    let log = fixture.log().len();
    let looks = || review_looks(&hub, promotion.number);
    let before = looks();
    let asked = hub.requests().len();
    drive(&mut weir, &fixture, DEADLINE, |_| looks() >= before + 3).await;
    assert_eq!(fixture.log().len(), log);
    // Waiting costs two reads per look (the app's pull request, its reviews), nothing else.
    let window: Vec<String> = hub.requests()[asked..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        window.iter().all(|r| r.starts_with("GET ")) && window.len() <= 2 * (looks() - before),
        "{window:#?}"
    );
    assert_eq!(phase(&fixture), Some(Phase::Progressing));
    let again = hub
        .pulls()
        .into_iter()
        .find(|p| p.number == promotion.number)
        .unwrap();
    assert_eq!(again.last_head_sha, promotion.last_head_sha, "not rebuilt");

    // weir restarts (a crash between opening and merging): the new process finds the same
    // pull request and does not open another.
    drop(weir);
    let mut weir = engine(&fixture, &hub, &metrics);
    weir.tick().await.unwrap();
    let open: Vec<_> = hub.pulls().into_iter().filter(|p| p.open).collect();
    assert_eq!(open.len(), 1, "{open:#?}");
    assert_eq!(open[0].number, promotion.number);

    // An approval by someone who cannot write to the repository (anyone, on a public
    // repository) counts for nothing, nor does their request for changes.
    hub.set_permission("eve", "read");
    hub.approve(promotion.number, "eve");
    let before = review_looks(&hub, promotion.number);
    drive(&mut weir, &fixture, DEADLINE, |_| {
        review_looks(&hub, promotion.number) >= before + 2
    })
    .await;
    assert_eq!(phase(&fixture), Some(Phase::Progressing));
    hub.request_changes(promotion.number, "eve");

    // A person approves that commit: weir merges it, then finishes the release.
    hub.approve(promotion.number, "alice");
    drive(&mut weir, &fixture, DEADLINE, |f| {
        phase(f) == Some(Phase::Succeeded)
    })
    .await;
    let merged = hub
        .pulls()
        .into_iter()
        .find(|p| p.number == promotion.number)
        .unwrap();
    assert!(merged.merged);

    // Every step on main is one squash commit that builds as Flux builds it, and names its
    // step; no pull request was left open, none was duplicated.
    let steps = fixture.steps("backend");
    let subjects: Vec<&str> = steps.iter().map(|(_, s)| s.as_str()).collect();
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("advance canary weight 0 -> 50")),
        "{subjects:#?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("promoting revision")),
        "{subjects:#?}"
    );
    assert!(
        subjects.last().unwrap().contains("promotion completed"),
        "{subjects:#?}"
    );
    for (sha, _) in &steps {
        flux_build(&fixture, sha);
    }
    assert!(hub.pulls().iter().all(|p| !p.open));
    let per_branch = hub
        .pulls()
        .iter()
        .filter(|p| p.head == "weir/prod/backend")
        .count();
    assert_eq!(per_branch, steps.len(), "one pull request per step");
    let status = weir.status().await.unwrap();
    assert!(
        status.apps.iter().all(|a| a.proposed.is_none()),
        "{:#?}",
        status.apps
    );

    // A bad release: failed checks halt, then roll back, through pull requests that need
    // no review; the primary keeps the promoted version.
    metrics.answer(|q| {
        Ok(if q.trim_start().starts_with("100 -") {
            30.0
        } else if q.contains("histogram_quantile") {
            100.0
        } else {
            70.0
        })
    });
    fixture.bump("backend", "6.2.0");
    drive(&mut weir, &fixture, DEADLINE, |f| {
        phase(f) == Some(Phase::Failed)
    })
    .await;
    let state = fixture.state("backend").unwrap();
    assert_eq!(state.primary_images, vec!["ghcr.io/acme/backend:6.1.1"]);
    assert!(hub.pulls().iter().all(|p| !p.open), "{:#?}", hub.pulls());
    assert!(fixture
        .steps("backend")
        .last()
        .unwrap()
        .1
        .contains("rolling back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_check_holds_the_merge_with_github_s_reason_then_it_merges() {
    let fixture = Fixture::new();
    let hub = GitHubStandIn::start("acme", "gitops-istio", &fixture.remote);
    hub.require_status("ci/build");
    let metrics = FakeMetrics::constant(0.0);
    metrics.answer(healthy);
    let mut weir = engine(&fixture, &hub, &metrics);
    let report = weir.tick().await.unwrap();
    let line = report
        .apps
        .iter()
        .find(|a| a.app == "prod/backend")
        .unwrap();
    assert!(
        line.message.contains("cannot be merged yet") && line.message.contains("ci/build"),
        "{line:#?}"
    );
    assert_eq!(fixture.log().len(), 1, "nothing reached main");
    // Ticks while the check is pending: the same pull requests, nothing duplicated.
    weir.tick().await.unwrap();
    assert_eq!(hub.pulls().len(), 2, "{:#?}", hub.pulls());
    assert!(hub.pulls().iter().all(|p| p.open));
    // Once the check passes, weir merges.
    let ci = hub.client();
    for p in hub.pulls() {
        ci.set_status(&CommitStatus {
            sha: p.last_head_sha.clone(),
            context: "ci/build".into(),
            state: StatusState::Success,
            description: "built".into(),
            target_url: None,
        })
        .await
        .unwrap();
    }
    drive(&mut weir, &fixture, DEADLINE, |f| {
        f.state("backend").is_some() && f.state("frontend").is_some()
    })
    .await;
    assert!(hub.pulls().iter().all(|p| p.merged));
}

/// The promotion waits for a review; meanwhile the metrics turn bad: the pull request is
/// rewritten (a comment says why), never merged as a promotion, and the release rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_promotion_superseded_by_failing_checks_is_never_merged() {
    let (fixture, hub, metrics) = release();
    let mut weir = engine(&fixture, &hub, &metrics);
    drive(&mut weir, &fixture, DEADLINE, |f| {
        f.state("backend").is_some()
    })
    .await;
    fixture.bump("backend", "6.1.1");
    drive(&mut weir, &fixture, DEADLINE, |_| {
        hub.pulls()
            .iter()
            .any(|p| p.open && p.title.contains("promoting revision"))
    })
    .await;
    let promotion = hub.pulls().into_iter().find(|p| p.open).unwrap();

    metrics.answer(erroring);
    drive(&mut weir, &fixture, DEADLINE, |f| {
        phase(f) == Some(Phase::Failed)
    })
    .await;
    let comments = hub.comments(promotion.number);
    assert!(
        comments.iter().any(|c| c
            .body
            .starts_with("Superseded: this pull request now carries")),
        "{comments:#?}"
    );
    let subjects: Vec<String> = fixture
        .steps("backend")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert!(
        !subjects.iter().any(|s| s.contains("promoting revision")),
        "{subjects:#?}"
    );
    let state = fixture.state("backend").unwrap();
    assert_eq!(state.primary_images, vec!["ghcr.io/acme/backend:6.1.0"]);
    assert!(hub.pulls().iter().all(|p| !p.open));
    // The rollback's pull request shows the intervals that failed at 50 (the passing one
    // that planned the promotion is not in the release's history: that step never landed).
    let rollback = hub
        .pulls()
        .into_iter()
        .find(|p| p.title.contains("rolling back"))
        .expect("the rollback pull request");
    let body = rollback.body.unwrap_or_default();
    let errors: Vec<[String; 6]> = gate_rows(&body)
        .into_iter()
        .filter(|r| r[2] == "error-rate")
        .collect();
    let row = |n: &str| [n, "50", "error-rate", "30", "<= 1", "**fail**"].map(String::from);
    assert_eq!(errors, vec![row("1"), row("2")], "threshold 2: {body}");
}

/// An app whose Canary says `weir.dev/pr-review: none` is promoted without a review, though
/// the setting asks one for every promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_can_waive_the_review_in_its_canary() {
    let (fixture, hub, metrics) = release();
    review_in_canary(&fixture, "none");
    let mut weir = engine(&fixture, &hub, &metrics);
    drive(&mut weir, &fixture, DEADLINE, |f| {
        f.state("backend").is_some()
    })
    .await;
    fixture.bump("backend", "6.1.1");
    drive(&mut weir, &fixture, DEADLINE, |f| {
        phase(f) == Some(Phase::Succeeded)
    })
    .await;
    assert!(hub.pulls().iter().all(|p| p.merged), "{:#?}", hub.pulls());
}

/// An approval is of one commit, not of a pull request: a team that reviews every step
/// approves a halt, the metrics recover before weir merges it, and the promotion that
/// rewrites the same pull request waits for an approval of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_of_an_earlier_step_never_merges_a_later_one() {
    let (fixture, hub, metrics) = release();
    review_in_canary(&fixture, "Progressing,Promoting");
    let mut weir = engine(&fixture, &hub, &metrics);
    drive(&mut weir, &fixture, DEADLINE, |f| {
        f.state("backend").is_some()
    })
    .await;
    fixture.bump("backend", "6.1.1");
    let open_titled = |words: &str| {
        hub.pulls()
            .into_iter()
            .find(|p| p.open && p.head == "weir/prod/backend" && p.title.contains(words))
    };
    // Each analysis step waits for a person; these are approved as they come.
    for step in ["starting canary analysis", "advance canary weight 0 -> 50"] {
        drive(&mut weir, &fixture, DEADLINE, |_| {
            open_titled(step).is_some()
        })
        .await;
        hub.approve(open_titled(step).unwrap().number, "alice");
    }
    drive(&mut weir, &fixture, DEADLINE, |f| {
        f.state("backend")
            .is_some_and(|s| s.canary_weight.get() == 50)
    })
    .await;

    // Bad metrics at 50: a halt, which alice approves; the metrics recover before weir
    // looks again, so the next tick plans the promotion on the same pull request.
    metrics.answer(erroring);
    drive(&mut weir, &fixture, DEADLINE, |_| {
        open_titled("halt advancement").is_some()
    })
    .await;
    let halt = open_titled("halt advancement").unwrap();
    hub.approve(halt.number, "alice");
    metrics.answer(healthy);
    drive(&mut weir, &fixture, DEADLINE, |_| {
        open_titled("promoting revision").is_some()
    })
    .await;
    let promotion = open_titled("promoting revision").unwrap();
    assert_eq!(
        promotion.number, halt.number,
        "the same pull request, rewritten"
    );
    assert_ne!(promotion.last_head_sha, halt.last_head_sha);

    // alice's approval is of the halt's commit: the promotion waits.
    let looks = || review_looks(&hub, promotion.number);
    let before = looks();
    drive(&mut weir, &fixture, DEADLINE, |_| looks() >= before + 3).await;
    let state = fixture.state("backend").unwrap();
    assert_eq!(state.phase, Phase::Progressing);
    assert_eq!(state.failed_checks, 0, "the halt was never merged either");
    assert!(open_titled("promoting revision").is_some());

    hub.approve(promotion.number, "bob");
    drive(&mut weir, &fixture, DEADLINE, |f| {
        phase(f) == Some(Phase::Succeeded)
    })
    .await;
}

/// Pushes a commit made by `change` onto `branch` of the remote, built as weir builds its
/// own (the branch's tree changed, with `main` and the branch's tip as parents, so it
/// fast-forwards and compares with `main` as weir's do), as anyone with write access to
/// the repository can; returns its sha.
fn push_to_branch(
    fixture: &Fixture,
    branch: &str,
    change: impl FnOnce(&std::path::Path),
) -> String {
    let work = &fixture.work;
    git(work, &["fetch", "-q", "origin", "main", branch]);
    git(
        work,
        &[
            "checkout",
            "-q",
            "-B",
            "tamper",
            &format!("origin/{branch}"),
        ],
    );
    change(work);
    git(work, &["add", "-A"]);
    let tree = git(work, &["write-tree"]).trim().to_string();
    let commit = git(
        work,
        &[
            "commit-tree",
            &tree,
            "-p",
            "origin/main",
            "-p",
            "HEAD",
            "-m",
            "a change weir did not make",
        ],
    )
    .trim()
    .to_string();
    git(
        work,
        &[
            "push",
            "-q",
            "origin",
            &format!("{commit}:refs/heads/{branch}"),
        ],
    );
    git(work, &["checkout", "-qf", "main"]);
    commit
}

/// A change to a work tree.
type Edit = Box<dyn Fn(&std::path::Path)>;

/// The files the scenario below tampers with, and whether a text shows a tampering.
const TAMPERED_FILES: [&str; 3] = [
    "apps/frontend/kustomization.yaml",
    "apps/backend.weir/virtualservice.yaml",
    "apps/backend.weir/state.yaml",
];

fn tampered(text: &str) -> bool {
    ["6.6.6", "edited by hand", "failedChecks: 7"]
        .iter()
        .any(|mark| text.contains(mark))
}

/// weir merges only commits it built: a waiting promotion's branch stays as it is while
/// `main` moves, but a commit someone pushes onto it (outside weir's folder, or inside it)
/// is never merged, even approved; weir writes its step again on top and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_someone_pushes_onto_weir_s_branch_is_never_merged() {
    let (fixture, hub, metrics) = release();
    let mut weir = engine(&fixture, &hub, &metrics);
    drive(&mut weir, &fixture, DEADLINE, |f| {
        f.state("backend").is_some() && f.state("frontend").is_some()
    })
    .await;
    fixture.bump("backend", "6.1.1");
    let promotion = |hub: &GitHubStandIn| {
        hub.pulls()
            .into_iter()
            .find(|p| p.open && p.title.contains("promoting revision"))
    };
    drive(&mut weir, &fixture, DEADLINE, |_| promotion(&hub).is_some()).await;
    let waiting = promotion(&hub).unwrap();

    // main moves under the waiting promotion: its commit is still weir's, and is kept.
    fixture.push_change("docs: a note", |work| {
        std::fs::write(work.join("NOTES.md"), "release notes\n").unwrap();
    });
    let before = review_looks(&hub, waiting.number);
    drive(&mut weir, &fixture, DEADLINE, |_| {
        review_looks(&hub, waiting.number) >= before + 2
    })
    .await;
    assert_eq!(
        promotion(&hub).unwrap().last_head_sha,
        waiting.last_head_sha,
        "{:#?}\n{:#?}",
        hub.comments(waiting.number),
        hub.pulls()
    );

    let tamperings: [(&str, Edit); 3] = [
        (
            "another app's release",
            Box::new(|work: &std::path::Path| {
                edit(
                    &work.join(TAMPERED_FILES[0]),
                    0,
                    "images[0].newTag",
                    "6.6.6",
                )
            }),
        ),
        (
            "weir's own folder",
            Box::new(|work: &std::path::Path| {
                let vs = work.join("apps/backend.weir/virtualservice.yaml");
                let text = std::fs::read_to_string(&vs).unwrap();
                std::fs::write(&vs, format!("{text}# edited by hand\n")).unwrap();
            }),
        ),
        (
            "the rollout record",
            Box::new(|work: &std::path::Path| {
                let record = work.join("apps/backend.weir/state.yaml");
                let text = std::fs::read_to_string(&record).unwrap();
                let text = text.replacen("  failedChecks: 0\n", "  failedChecks: 7\n", 1);
                assert!(text.contains("failedChecks: 7"));
                std::fs::write(&record, text).unwrap();
            }),
        ),
    ];
    for (what, change) in tamperings {
        let sha = push_to_branch(&fixture, "weir/prod/backend", change);
        // Someone approves the pull request at that head without reading it.
        hub.approve(waiting.number, "mallory");
        drive(&mut weir, &fixture, DEADLINE, |_| {
            promotion(&hub).is_some_and(|p| p.last_head_sha != sha)
        })
        .await;
        let now = promotion(&hub).unwrap();
        assert_eq!(now.number, waiting.number, "{what}: the same pull request");
        assert_eq!(
            phase(&fixture),
            Some(Phase::Progressing),
            "{what}: not merged"
        );
        let comments = hub.comments(waiting.number);
        assert!(
            comments.last().is_some_and(|c| c
                .body
                .starts_with("Rewritten: the branch held changes weir did not make")),
            "{what}: {comments:#?}"
        );
        // weir's commit carries only its step: the tampered files are main's again.
        for file in TAMPERED_FILES {
            let shown = fixture.show(&now.last_head_sha, file).unwrap();
            assert!(!tampered(&shown), "{what}: {file}");
        }
    }

    // Approved as weir built it, the promotion merges; main never held the tampered files.
    hub.approve(waiting.number, "alice");
    drive(&mut weir, &fixture, DEADLINE, |f| {
        phase(f) == Some(Phase::Succeeded)
    })
    .await;
    for (sha, _) in fixture.log() {
        for file in TAMPERED_FILES {
            let shown = fixture.show(&sha, file).unwrap_or_default();
            assert!(!tampered(&shown), "{sha} {file}");
        }
    }
}
