//! weir with its cluster view on the commit statuses Flux posts on GitHub (`--cluster
//! github`), against the GitHub stand-in, with Flux's notification-controller played by the
//! test: it posts `kustomization/apps/<uid>` statuses, `success` for a commit the
//! Kustomization applied and `failure` for one it could not, at times the test chooses.
//!
//! An adoption waits for the success on weir's commit; a step waits while the statuses cover
//! only older commits, and goes on once one lands on weir's commit or a later one; its
//! interval starts at the status's time; a failure holds the step, and past
//! `progressDeadlineSeconds` halts it; GitHub failing holds without a commit. Gates answer
//! from a fake metric source on a fake clock; Git is real.

use crate::cluster_view::{fixture, head};
use crate::primary::fake_engine_seeing;
use crate::support::github::{GitHubStandIn, TOKEN};
use crate::support::repo::Fixture;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use weir::adapters::github::applied::CommitStatusView;
use weir::adapters::github::rest::Sleeper;
use weir::core::cluster::ClusterTarget;
use weir::core::spec::Phase;
use weir::engine::{AppReport, Engine, TickReport};
use weir::ports::{BoxFuture, ClusterView};
use weir::test_support::fakes::FakeClock;

/// The context notification-controller gives the statuses of Kustomization `apps` (its
/// Provider's UID starts `0c9c2e41-`).
const APPS: &str = "kustomization/apps/0c9c2e41";

/// Retries without waiting: the retry rules are tested elsewhere, and tests never sleep.
struct NoWait;

impl Sleeper for NoWait {
    fn sleep(&self, _: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// weir's view on the stand-in's statuses, Kustomization `apps` by default.
fn view(hub: &GitHubStandIn) -> CommitStatusView {
    let github = hub.client().with_sleeper(Arc::new(NoWait));
    CommitStatusView::new(Arc::new(github), "apps").unwrap()
}

/// notification-controller: the Kustomization applied `sha` (an info event).
fn flux_applied(hub: &GitHubStandIn, sha: &str, at: DateTime<Utc>) {
    hub.post_status(sha, APPS, "success", "reconciliation succeeded", at);
}

/// notification-controller: the Kustomization failed on `sha` (an error event).
fn flux_failed(hub: &GitHubStandIn, sha: &str, why: &str, at: DateTime<Utc>) {
    hub.post_status(sha, APPS, "failure", why, at);
}

fn now(clock: &FakeClock) -> DateTime<Utc> {
    weir::ports::Clock::now(clock)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn backend(report: &TickReport) -> &AppReport {
    report
        .apps
        .iter()
        .find(|a| a.app.ends_with("backend"))
        .expect("the backend's line")
}

/// A tick that must not commit; the backend's line.
async fn holds(engine: &mut Engine) -> AppReport {
    let report = engine.tick().await.unwrap();
    assert_eq!(report.commit, None, "{:#?}", backend(&report));
    backend(&report).clone()
}

/// Adopts the backend in weir's two steps, the second once Flux's success is on the first.
async fn adopted(fixture: &Fixture, hub: &GitHubStandIn) -> (Engine, FakeClock) {
    let layout = head(fixture);
    let (mut engine, clock, _) = fake_engine_seeing(fixture, Some(Arc::new(view(hub))));
    flux_applied(hub, &layout, now(&clock));
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Initializing);
    let init = head(fixture);

    // Flux's statuses cover only the layout: however long, the routing stays on the target.
    clock.advance(secs(30));
    let line = holds(&mut engine).await;
    let short: String = layout.chars().take(7).collect();
    assert!(
        line.message.contains(&format!(
            "Kustomization apps (GitHub commit statuses) last applied {short}, which does not hold weir's last step"
        )),
        "{}",
        line.message
    );
    assert_eq!(head(fixture), init);

    flux_applied(hub, &init, now(&clock));
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Initialized);
    let initialized = head(fixture);
    assert_ne!(initialized, init);
    flux_applied(hub, &initialized, now(&clock));
    (engine, clock)
}

/// Adopted, then a new tag: weir's first step of the release is the head, committed at the
/// returned time.
async fn releasing(fixture: &Fixture, hub: &GitHubStandIn) -> (Engine, FakeClock, String) {
    let (mut engine, clock) = adopted(fixture, hub).await;
    clock.advance(secs(10));
    fixture.bump("backend", "6.1.1");
    engine.tick().await.unwrap();
    let s = fixture.state("backend").unwrap();
    assert_eq!(s.phase, Phase::Progressing);
    assert_eq!(s.canary_weight.get(), 0);
    (engine, clock, head(fixture))
}

fn start(hub_fixture: &Fixture) -> GitHubStandIn {
    GitHubStandIn::start("acme", "gitops-istio", &hub_fixture.remote)
}

#[tokio::test]
async fn an_adoption_waits_for_fluxs_success_on_weirs_commit() {
    let fixture = fixture(600);
    let hub = start(&fixture);
    adopted(&fixture, &hub).await;
    let steps: Vec<String> = fixture
        .steps("backend")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        steps,
        [
            "backend: initializing the primary, traffic stays on the target",
            "backend: initialization done, primary serves all traffic",
        ]
    );
    // weir read statuses and posted none.
    assert!(hub
        .requests()
        .iter()
        .all(|r| r.method == "GET" && r.path.ends_with("/statuses")));
}

#[tokio::test]
async fn a_step_waits_while_flux_covers_older_commits_and_goes_on_with_a_later_one() {
    let fixture = fixture(600);
    let hub = start(&fixture);
    let (mut engine, clock, step) = releasing(&fixture, &hub).await;
    // Flux applied the tag bump, the commit before weir's step.
    let log = fixture.log();
    let bump = &log[log.len() - 2];
    assert_eq!(bump.1, "backend: bump to 6.1.1");
    flux_applied(&hub, &bump.0, now(&clock));
    let short: String = bump.0.chars().take(7).collect();
    for _ in 0..4 {
        clock.advance(secs(3));
        let line = holds(&mut engine).await;
        assert!(
            line.message
                .starts_with("waiting for Flux to apply the step")
                && line.message.contains(&format!("last applied {short}")),
            "{}",
            line.message
        );
    }
    // Someone pushes on top of weir's step before Flux comes round: Flux applies that commit
    // and posts on it, never on weir's.
    fixture.push_change("docs: a note", |work| {
        std::fs::write(work.join("NOTES.md"), "a note\n").unwrap();
    });
    let later = head(&fixture);
    assert_ne!(later, step);
    flux_applied(&hub, &later, now(&clock));
    // Applied now: the interval starts here.
    holds(&mut engine).await;
    clock.advance(secs(3));
    engine.tick().await.unwrap();
    let s = fixture.state("backend").unwrap();
    assert_eq!(s.canary_weight.get(), 25, "{s:?}");
    assert!(hub.statuses().iter().all(|x| x.sha != step));
}

#[tokio::test]
async fn the_interval_starts_at_the_time_of_fluxs_status() {
    let fixture = fixture(600);
    let hub = start(&fixture);
    let (mut engine, clock, step) = releasing(&fixture, &hub).await;
    let committed = now(&clock);
    // Flux applied the step 4s after it was committed; weir hears of it a second later.
    clock.advance(secs(5));
    flux_applied(&hub, &step, committed + chrono::Duration::seconds(4));
    let line = holds(&mut engine).await;
    // Due an interval (3s) after Flux applied it: not after the commit, not after weir heard.
    let next = line
        .next_step_at
        .as_deref()
        .map(DateTime::parse_from_rfc3339);
    assert_eq!(
        next,
        Some(Ok((committed + chrono::Duration::seconds(7)).fixed_offset())),
        "{line:#?}"
    );
    clock.advance(Duration::from_millis(1_999));
    holds(&mut engine).await;
    clock.advance(Duration::from_millis(1));
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().canary_weight.get(), 25);
}

#[tokio::test]
async fn a_later_commit_flux_applies_does_not_start_the_interval_over() {
    let fixture = fixture(600);
    let hub = start(&fixture);
    let (mut engine, clock, step) = releasing(&fixture, &hub).await;
    let committed = now(&clock);
    clock.advance(secs(1));
    flux_applied(&hub, &step, now(&clock));
    holds(&mut engine).await;
    // Two seconds on, another commit lands and Flux applies it too.
    clock.advance(secs(2));
    fixture.push_change("docs: a note", |work| {
        std::fs::write(work.join("NOTES.md"), "a note\n").unwrap();
    });
    flux_applied(&hub, &head(&fixture), now(&clock));
    holds(&mut engine).await;
    // Due 3s after the step was applied (at committed + 1s), not after the later commit.
    clock.advance(secs(1));
    assert_eq!(now(&clock), committed + chrono::Duration::seconds(4));
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().canary_weight.get(), 25);
}

#[tokio::test]
async fn a_failure_on_weirs_step_holds_and_past_the_deadline_halts() {
    let fixture = fixture(20);
    let hub = start(&fixture);
    let (mut engine, clock, step) = releasing(&fixture, &hub).await;
    clock.advance(secs(1));
    flux_failed(&hub, &step, "health check failed", now(&clock));
    clock.advance(secs(2));
    let line = holds(&mut engine).await;
    assert!(
        line.message
            .starts_with("waiting for Flux to apply the step")
            && line
                .message
                .contains(&format!("failing: {APPS} says failure on"))
            && line.message.contains("(health check failed)"),
        "{}",
        line.message
    );
    clock.advance(secs(16));
    holds(&mut engine).await;
    clock.advance(secs(1));
    engine.tick().await.unwrap();
    let halted = fixture.state("backend").unwrap();
    assert_eq!(halted.phase, Phase::Progressing);
    assert_eq!(halted.failed_checks, 1);
    assert_eq!(
        fixture.log().last().unwrap().1,
        "backend: halt advancement (failed checks 1/2)"
    );
    let body = fixture.message("main");
    assert!(
        body.contains("not applied within the progress deadline of 20s")
            && body.contains("health check failed"),
        "{body}"
    );
}

#[tokio::test]
async fn a_failure_after_flux_applied_the_step_holds_until_it_recovers() {
    let fixture = fixture(600);
    let hub = start(&fixture);
    let (mut engine, clock, step) = releasing(&fixture, &hub).await;
    clock.advance(secs(1));
    flux_applied(&hub, &step, now(&clock));
    clock.advance(secs(1));
    flux_failed(&hub, &step, "health check failed", now(&clock));
    // Long past the interval: the step is applied, but the Kustomization fails now.
    for _ in 0..3 {
        clock.advance(secs(5));
        let line = holds(&mut engine).await;
        assert!(
            line.message.contains("but is failing") && line.message.contains("health check failed"),
            "{}",
            line.message
        );
    }
    flux_applied(&hub, &step, now(&clock));
    holds(&mut engine).await;
    clock.advance(secs(3));
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().canary_weight.get(), 25);
}

#[tokio::test]
async fn github_failing_holds_without_a_commit_past_the_deadline() {
    let fixture = fixture(20);
    let hub = start(&fixture);
    let (mut engine, clock, step) = releasing(&fixture, &hub).await;
    let before = fixture.log().len();
    // Flux did apply the step; weir cannot read that now.
    flux_applied(&hub, &step, now(&clock));
    hub.server_error_next(10_000, 500);
    for _ in 0..3 {
        clock.advance(secs(30));
        let line = holds(&mut engine).await;
        assert!(
            line.message
                .starts_with("holding: cannot tell what the cluster runs")
                && line.message.contains("500"),
            "{}",
            line.message
        );
        assert!(!line.message.contains(TOKEN));
    }
    assert_eq!(fixture.log().len(), before);
    hub.server_error_next(0, 500);
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().canary_weight.get(), 25);
}

#[tokio::test]
async fn one_look_asks_each_commit_once_and_stops_at_the_first_applied() {
    let fixture = Fixture::new();
    for n in 0..3 {
        fixture.push_change(&format!("note {n}"), |work| {
            std::fs::write(work.join("NOTES.md"), format!("note {n}\n")).unwrap();
        });
    }
    let hub = start(&fixture);
    let recent: Vec<String> = fixture
        .log()
        .into_iter()
        .rev()
        .map(|(sha, _)| sha)
        .collect();
    assert_eq!(recent.len(), 4);
    let at = |s: i64| chrono::TimeZone::timestamp_opt(&Utc, 1_800_000_000 + s, 0).unwrap();
    // Newest first: [0] nothing of Flux; [1] applied by `apps` and by `infra` of another
    // cluster; [2] applied by `infra`; [3] applied by `apps` long ago.
    hub.post_status(&recent[0], "weir/prod/backend", "pending", "", at(9));
    flux_applied(&hub, &recent[1], at(5));
    hub.post_status(
        &recent[1],
        "kustomization/infra/aaaa1111",
        "failure",
        "build failed",
        at(6),
    );
    hub.post_status(
        &recent[2],
        "kustomization/infra/aaaa1111",
        "success",
        "",
        at(3),
    );
    flux_applied(&hub, &recent[3], at(1));
    let target = |kustomization: Option<&str>| ClusterTarget {
        dir: "apps/backend".into(),
        namespace: "prod".into(),
        target: "backend".into(),
        kustomization: kustomization.map(str::to_string),
        recent: recent.clone().into(),
    };
    let targets = [
        target(None),
        target(Some("flux-system/apps")),
        target(Some("flux-system/infra")),
    ];
    let view = view(&hub);
    hub.clear_requests();
    let seen = view.observe(&targets).await;
    let asked: Vec<String> = hub.requests().into_iter().map(|r| r.path).collect();
    let path = |i: usize| format!("/repos/acme/gitops-istio/commits/{}/statuses", recent[i]);
    assert_eq!(asked, [path(0), path(1), path(2)], "[3] is never asked");

    let apps = seen[0].as_ref().unwrap();
    assert_eq!(apps.applied_revision.as_deref(), Some(recent[1].as_str()));
    assert_eq!(apps.applied_at, Some(at(5)));
    assert_eq!(apps.unhealthy, None);
    assert!(!apps.reads_workloads);
    assert_eq!(apps.applier, "Kustomization apps (GitHub commit statuses)");
    assert_eq!(
        seen[1].as_ref().unwrap().applied_revision,
        apps.applied_revision
    );
    assert_eq!(
        seen[1].as_ref().unwrap().applier,
        "Kustomization flux-system/apps (GitHub commit statuses)"
    );
    let infra = seen[2].as_ref().unwrap();
    assert_eq!(infra.applied_revision.as_deref(), Some(recent[2].as_str()));
    assert!(
        infra
            .unhealthy
            .as_deref()
            .is_some_and(|why| why.contains("build failed")),
        "{infra:?}"
    );

    // Nothing of a Kustomization among the candidates: nothing applied, and no error.
    let none = view.observe(&[target(Some("flux-system/other"))]).await;
    assert_eq!(none[0].as_ref().unwrap().applied_revision, None);

    // A refused request is every target's answer, and never shows the token, even when the
    // answer echoes it.
    hub.echo_next(1);
    let refused = view.observe(&targets[..2]).await;
    for answer in &refused {
        let why = answer.as_ref().unwrap_err();
        assert!(why.contains("400") && !why.contains(TOKEN), "{why}");
    }
    assert!(view.describe().contains("no pod readiness"));
}

#[test]
fn weir_step_with_cluster_github_reads_the_named_kustomizations_statuses() {
    let fixture = fixture(600);
    let hub = start(&fixture);
    let step = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["step", "--repo", &fixture.url(), "--min-interval", "1s"])
            .arg("--cache")
            .arg(fixture.dir.path().join("cli-cache"))
            .args([
                "--cluster",
                "github",
                "--github-repository",
                "acme/gitops-istio",
            ])
            .args(["--github-api", &hub.url()])
            .args(extra)
            .env("WEIR_GITHUB_TOKEN", TOKEN)
            .env_remove("WEIR_PROMETHEUS")
            .env_remove("WEIR_FLUX_KUSTOMIZATION")
            .output()
            .unwrap();
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!shown.contains(TOKEN));
        (out.status.code(), shown)
    };
    let (code, shown) = step(&["--flux-kustomization", "flux-system/apps"]);
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("--flux-kustomization"), "{shown}");

    let (code, shown) = step(&[]);
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Initializing);
    let init = head(&fixture);
    let (code, shown) = step(&[]);
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(head(&fixture), init, "no status yet: {shown}");
    // Another Kustomization's success says nothing of `apps`.
    hub.post_status(
        &init,
        "kustomization/infra/0c9c2e41",
        "success",
        "reconciliation succeeded",
        Utc::now(),
    );
    step(&[]);
    assert_eq!(head(&fixture), init);
    // Read for `infra`, it moves: the flag picks the statuses.
    step(&["--flux-kustomization", "infra"]);
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Initialized);
}
