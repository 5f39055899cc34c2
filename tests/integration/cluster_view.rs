//! weir with its cluster view on the Kubernetes API (the stand-in), Flux played by the test:
//! an adoption routes to the primary only once it is ready, a step is judged only once Flux
//! applied it, a step Flux never applies halts and rolls back, and a canary whose pods never
//! get ready rolls back at `progressDeadlineSeconds`. Every commit is built as Flux builds it.

use crate::primary::fake_engine_seeing;
use crate::support::flux::FluxSim;
use crate::support::repo::{docs, find, flux_build, weights, Fixture};
use std::time::Duration;
use weir::core::spec::Phase;

const NS: &str = "prod";

/// The fixture with the backend's progressDeadlineSeconds set (the fake clock moves in
/// seconds, so the deadline is short).
pub fn fixture(deadline_secs: u32) -> Fixture {
    Fixture::with(|work| {
        crate::support::repo::fast_backend(work);
        let canary = work.join("apps/backend/canary.yaml");
        let text = std::fs::read_to_string(&canary).unwrap().replacen(
            "spec:\n",
            &format!("spec:\n  progressDeadlineSeconds: {deadline_secs}\n"),
            1,
        );
        std::fs::write(&canary, text).unwrap();
        // The frontend stays out of the way: suspended.
        let frontend = work.join("apps/frontend/canary.yaml");
        let text = std::fs::read_to_string(&frontend).unwrap().replacen(
            "spec:\n",
            "spec:\n  suspend: true\n",
            1,
        );
        std::fs::write(&frontend, text).unwrap();
    })
}

pub fn head(fixture: &Fixture) -> String {
    fixture.log().last().unwrap().0.clone()
}

/// The apex Service's selector value in a build.
fn apex_selector(fixture: &Fixture, rev: &str) -> String {
    let built = docs(&flux_build(fixture, rev));
    let svc = find(&built, "Service", "backend").expect("the apex Service");
    svc["spec"]["selector"]["app"].as_str().unwrap().to_string()
}

/// Adopts the backend: the target runs, then weir's two steps with Flux in between.
async fn adopted(
    fixture: &Fixture,
    flux: &FluxSim,
) -> (weir::engine::Engine, weir::test_support::fakes::FakeClock) {
    let first = head(fixture);
    flux.apply(fixture, &first);
    flux.settle(NS, "backend");
    let (mut engine, clock, _) = fake_engine_seeing(fixture, Some(flux.view().await));
    engine.tick().await.unwrap();
    let init = fixture.state("backend").unwrap();
    assert_eq!(init.phase, Phase::Initializing);
    let init_commit = head(fixture);
    // The target's pods keep every request until the primary is ready.
    assert_eq!(apex_selector(fixture, &init_commit), "backend");
    let built = docs(&flux_build(fixture, &init_commit));
    let vs = find(&built, "VirtualService", "backend").unwrap();
    assert_eq!(weights(vs, "backend"), (0, 100));
    assert!(find(&built, "Deployment", "backend-primary").is_some());

    // Flux has not applied it: nothing moves, however long.
    clock.advance(Duration::from_secs(30));
    assert_eq!(engine.tick().await.unwrap().commit, None);
    // Applied, the primary's pods not ready yet: still nothing.
    flux.apply(fixture, &init_commit);
    clock.advance(Duration::from_secs(3));
    assert_eq!(engine.tick().await.unwrap().commit, None);
    assert_eq!(head(fixture), init_commit);
    // Ready: now the routing moves to the primary.
    flux.settle(NS, "backend-primary");
    engine.tick().await.unwrap();
    let done = fixture.state("backend").unwrap();
    assert_eq!(done.phase, Phase::Initialized);
    let initialized = head(fixture);
    assert_eq!(apex_selector(fixture, &initialized), "backend-primary");
    let built = docs(&flux_build(fixture, &initialized));
    assert_eq!(
        weights(
            find(&built, "VirtualService", "backend").unwrap(),
            "backend"
        ),
        (100, 0)
    );
    flux.apply(fixture, &initialized);
    (engine, clock)
}

#[tokio::test]
async fn an_adoption_routes_to_the_primary_only_once_it_is_ready() {
    let fixture = fixture(600);
    let flux = FluxSim::start();
    let (mut engine, _clock) = adopted(&fixture, &flux).await;
    // `status` shows what the cluster runs: the applied commit and the ready pods.
    flux.settle(NS, "backend-primary");
    let status = engine.status().await.unwrap();
    let line = status
        .apps
        .iter()
        .find(|a| a.app == "prod/backend")
        .unwrap();
    let applied = head(&fixture)[..7].to_string();
    assert_eq!(line.applied.as_deref(), Some(applied.as_str()));
    assert_eq!(line.pods.as_deref(), Some("primary 1/1, canary 1/1"));
    fixture.bump("backend", "6.1.1");
    let status = engine.status().await.unwrap();
    let line = status
        .apps
        .iter()
        .find(|a| a.app == "prod/backend")
        .unwrap();
    assert_eq!(
        line.applied.as_deref(),
        Some(applied.as_str()),
        "a tag bump is not weir's step"
    );
    flux.api.fail_next(1, 500);
    let status = engine.status().await.unwrap();
    let line = status
        .apps
        .iter()
        .find(|a| a.app == "prod/backend")
        .unwrap();
    assert!(
        line.applied
            .as_deref()
            .unwrap()
            .starts_with("cannot tell: listing Flux Kustomizations"),
        "{line:?}"
    );
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
}

/// An adopted backend with its progress deadline at `deadline_secs`, 6.1.1 pushed and weir's
/// step into the analysis made (not applied yet): the fixture, Flux, weir, its clock, and that
/// step's commit.
async fn releasing(
    deadline_secs: u32,
) -> (
    Fixture,
    FluxSim,
    weir::engine::Engine,
    weir::test_support::fakes::FakeClock,
    String,
) {
    let fixture = fixture(deadline_secs);
    let flux = FluxSim::start();
    let (mut engine, clock) = adopted(&fixture, &flux).await;
    fixture.bump("backend", "6.1.1");
    engine.tick().await.unwrap();
    let start = head(&fixture);
    (fixture, flux, engine, clock, start)
}

#[tokio::test]
async fn a_step_is_judged_only_once_flux_applied_it_and_its_pods_are_ready() {
    let (fixture, flux, mut engine, clock, start) = releasing(600).await;
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Progressing);

    // The Kustomization still reports the commit before: intervals pass, nothing is judged.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(3));
        assert_eq!(engine.tick().await.unwrap().commit, None);
    }
    let report = engine.tick().await.unwrap();
    let line = report
        .apps
        .iter()
        .find(|a| a.app.ends_with("backend"))
        .unwrap();
    assert!(
        line.message.contains("waiting for Flux to apply the step"),
        "{}",
        line.message
    );

    // Applied; the canary's new pods are still rolling out.
    flux.apply(&fixture, &start);
    clock.advance(Duration::from_secs(3));
    assert_eq!(engine.tick().await.unwrap().commit, None);
    // Ready now: the interval starts here, not at the commit.
    flux.settle(NS, "backend");
    assert_eq!(engine.tick().await.unwrap().commit, None);
    clock.advance(Duration::from_millis(2_999));
    assert_eq!(engine.tick().await.unwrap().commit, None);
    clock.advance(Duration::from_millis(1));
    engine.tick().await.unwrap();
    let s = fixture.state("backend").unwrap();
    assert_eq!(s.canary_weight.get(), 25, "{s:?}");
}

#[tokio::test]
async fn a_step_flux_never_applies_halts_then_rolls_back() {
    let (fixture, _flux, mut engine, clock, _) = releasing(20).await;
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Progressing);
    // Flux is stuck on the adoption's commit from here on.
    clock.advance(Duration::from_secs(19));
    assert_eq!(engine.tick().await.unwrap().commit, None);
    clock.advance(Duration::from_secs(1));
    engine.tick().await.unwrap();
    let halted = fixture.state("backend").unwrap();
    assert_eq!(halted.phase, Phase::Progressing);
    assert_eq!(halted.failed_checks, 1);
    let subject = fixture.log().last().unwrap().1.clone();
    assert_eq!(subject, "backend: halt advancement (failed checks 1/2)");
    let body = fixture.message("main");
    assert!(
        body.contains("not applied within the progress deadline of 20s")
            && body.contains("Kustomization flux-system/apps"),
        "{body}"
    );
    clock.advance(Duration::from_secs(20));
    engine.tick().await.unwrap();
    let failed = fixture.state("backend").unwrap();
    assert_eq!(failed.phase, Phase::Failed);
    assert_eq!(failed.canary_weight.get(), 0);
    assert_eq!(
        fixture.log().last().unwrap().1,
        "backend: rolling back (failed checks 2/2)"
    );
}

#[tokio::test]
async fn a_canary_whose_pods_never_get_ready_rolls_back_at_the_progress_deadline() {
    let (fixture, flux, mut engine, clock, start) = releasing(30).await;
    flux.apply(&fixture, &start);
    let since = weir::ports::Clock::now(&clock);
    flux.stall(NS, "backend", since);
    clock.advance(Duration::from_secs(30));
    let report = engine.tick().await.unwrap();
    assert_eq!(report.commit, None, "at the deadline, not past it");
    let line = report
        .apps
        .iter()
        .find(|a| a.app.ends_with("backend"))
        .unwrap();
    assert!(
        line.message
            .contains("waiting for the canary: backend.prod"),
        "{}",
        line.message
    );
    clock.advance(Duration::from_secs(1));
    engine.tick().await.unwrap();
    let failed = fixture.state("backend").unwrap();
    assert_eq!(failed.phase, Phase::Failed);
    let subject = fixture.log().last().unwrap().1.clone();
    assert_eq!(subject, "backend: rolling back, canary not ready");
    let body = fixture.message("main");
    assert!(
        body.contains("for longer than the progress deadline of 30s"),
        "{body}"
    );
    // The rollback builds, with all traffic on the primary.
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(
        weights(
            find(&built, "VirtualService", "backend").unwrap(),
            "backend"
        ),
        (100, 0)
    );
}
