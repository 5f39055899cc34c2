//! A monitoring outage is not evidence against the canary. With the real Prometheus stopped
//! in the middle of a healthy release, weir holds the release (no failed check, no commit)
//! for the Canary's grace, and goes on when Prometheus is back; with a grace of zero it counts
//! each due interval as a failed check and rolls back, as Flagger does.

use crate::support::prometheus::Prometheus;
use crate::support::repo::{drive, until_next_step, Fixture};
use crate::support::traffic::Traffic;
use std::time::{Duration, Instant};
use weir::core::spec::Phase;

/// A release of 6.1.1 that has taken its first analysed step, with Prometheus scraping the
/// traffic simulator.
async fn in_flight(grace: &str) -> (Fixture, Traffic, Prometheus, weir::engine::Engine) {
    let fixture = Fixture::with_outage_grace(grace);
    let traffic = Traffic::backend(&fixture.remote, &[], &[]);
    let prometheus = Prometheus::start(&[traffic.target()]);
    let mut engine = fixture.engine(Some(prometheus.url()));
    drive(&mut engine, &fixture, Duration::from_secs(30), |f| {
        f.state("backend").is_some()
    })
    .await;
    prometheus.wait_for(
        "sum(istio_requests_total{destination_workload=\"backend-primary\"})",
        Duration::from_secs(20),
        |v| v > 0.0,
    );
    fixture.bump("backend", "6.1.1");
    drive(&mut engine, &fixture, Duration::from_secs(60), |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Progressing && s.canary_weight.get() > 0)
    })
    .await;
    (fixture, traffic, prometheus, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitoring_outage_holds_a_healthy_release_and_it_goes_on_after() {
    let (fixture, _traffic, mut prometheus, mut engine) = in_flight("60s").await;
    let before = fixture.state("backend").unwrap();
    let commits = fixture.log().len();

    // Prometheus down for more than three 3s intervals: every due step is held.
    prometheus.stop();
    let outage = Instant::now();
    let mut held = 0;
    while outage.elapsed() < Duration::from_secs(10) {
        let report = engine.tick().await.expect("tick runs");
        let backend = report
            .apps
            .iter()
            .find(|a| a.app == "prod/backend")
            .unwrap();
        if backend
            .message
            .starts_with("holding: the metrics server could not be reached")
        {
            held += 1;
        }
        until_next_step(&report, Duration::from_secs(4)).await;
    }
    assert!(held >= 2, "the due steps were held: {held}");
    assert_eq!(fixture.log().len(), commits, "nothing was written");
    let during = fixture.state("backend").unwrap();
    assert_eq!(during.failed_checks, 0);
    assert_eq!(during.canary_weight, before.canary_weight);

    // Back: the release goes on and is promoted, never having counted a failed check. The
    // test waits until the canary's rate has data again, since a query that answers "no
    // data" is an answer and fails at once.
    prometheus.restart();
    prometheus.wait_for(
        "sum(rate(istio_requests_total{destination_workload=\"backend\"}[10s]))",
        Duration::from_secs(30),
        |v| v > 0.0,
    );
    drive(&mut engine, &fixture, Duration::from_secs(90), |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;
    for (sha, _) in &fixture.log()[commits..] {
        if let Some(s) = fixture.state_at(sha, "backend") {
            assert_eq!(s.failed_checks, 0, "commit {sha} counted a failed check");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_grace_an_outage_counts_as_failed_checks_as_in_flagger() {
    let (fixture, _traffic, mut prometheus, mut engine) = in_flight("0s").await;
    prometheus.stop();
    drive(&mut engine, &fixture, Duration::from_secs(30), |f| {
        f.state("backend").is_some_and(|s| s.phase == Phase::Failed)
    })
    .await;
    let message = fixture.message("main");
    assert!(message.contains("cannot reach Prometheus"), "{message}");
}
