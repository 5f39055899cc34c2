//! A full promotion and a full rollback against a real bare remote, a real Prometheus
//! scraping the traffic simulator, and `kubectl kustomize` on every commit weir made.

use crate::support::prometheus::Prometheus;
use crate::support::repo::{assert_steps, docs, drive, find, flux_build, image, weights, Fixture};
use crate::support::traffic::Traffic;
use std::time::Duration;
use weir::core::spec::Phase;

const IMAGE: &str = "ghcr.io/acme/backend";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_release_is_promoted_and_bad_release_is_rolled_back() {
    let fixture = Fixture::new();
    let traffic = Traffic::backend(&fixture.remote, &["6.2.0"], &[]);
    let prometheus = Prometheus::start(&[traffic.target()]);
    let mut engine = fixture.engine(Some(prometheus.url()));

    // First tick: both apps initialised in one commit; the primary serves everything.
    drive(&mut engine, &fixture, Duration::from_secs(30), |f| {
        f.state("backend").is_some() && f.state("frontend").is_some()
    })
    .await;
    let init = fixture.log();
    assert_eq!(init.len(), 2, "{init:?}");
    assert_eq!(init[1].1, "weir: 2 rollouts moved");
    let s = fixture.state("backend").unwrap();
    assert_eq!((s.phase, s.canary_weight.get()), (Phase::Initialized, 0));
    assert_eq!(s.primary_images, vec![format!("{IMAGE}:6.1.0")]);

    // Wait for Prometheus to see the simulator, so the first check has data.
    prometheus.wait_for(
        "sum(istio_requests_total{destination_workload=\"backend-primary\"})",
        Duration::from_secs(20),
        |v| v > 0.0,
    );

    // A good release: promoted.
    fixture.bump("backend", "6.1.1");
    drive(&mut engine, &fixture, Duration::from_secs(90), |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;
    let s = fixture.state("backend").unwrap();
    assert_eq!(s.primary_images, vec![format!("{IMAGE}:6.1.1")]);
    assert_eq!(s.canary_weight.get(), 0);

    // A bad release (30% 5xx): rolled back.
    fixture.bump("backend", "6.2.0");
    drive(&mut engine, &fixture, Duration::from_secs(90), |f| {
        f.state("backend").is_some_and(|s| s.phase == Phase::Failed)
    })
    .await;
    let s = fixture.state("backend").unwrap();
    assert_eq!(s.canary_weight.get(), 0);
    assert_eq!(s.failed_checks, 2);
    assert!(s.failed_revision.is_some());
    assert_eq!(s.primary_images, vec![format!("{IMAGE}:6.1.1")]);

    // The failed revision is not retried.
    let before = fixture.log().len();
    for _ in 0..3 {
        let r = engine.tick().await.unwrap();
        assert!(r.commit.is_none(), "{r:?}");
    }
    assert_eq!(fixture.log().len(), before);

    let steps = fixture.steps("backend");
    assert_steps(
        &steps,
        &[
            "backend: new revision ",
            "backend: advance canary weight 0 -> 25",
            "backend: advance canary weight 25 -> 50",
            "backend: promoting revision ",
            "backend: routing all traffic to primary",
            "backend: promotion completed, primary now ghcr.io/acme/backend:6.1.1",
            "backend: new revision ",
            "backend: advance canary weight 0 -> 25",
            "backend: halt advancement (failed checks 1/2)",
            "backend: rolling back (failed checks 2/2)",
        ],
    );
    let weir_subjects: Vec<&str> = steps.iter().map(|(_, s)| s.as_str()).collect();
    // The gate value and bound are in the message: real 5xx, not missing data.
    let halt = weir_subjects[8];
    assert!(halt.ends_with("(failed checks 1/2)"), "{halt}");
    let body = fixture.message(&steps[8].0);
    let value: f64 = body
        .split("request-success-rate ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {body}"));
    assert!((50.0..95.0).contains(&value), "{body}");
    assert!(
        weir_subjects[9].ends_with("(failed checks 2/2)"),
        "{}",
        weir_subjects[9]
    );

    // Every commit weir made builds like Flux builds it, with the primary on the promoted
    // tag, the canary on the newest tag, and the VirtualService on the recorded weights.
    let mut expected_primary = format!("{IMAGE}:6.1.0");
    let log = fixture.log();
    for (sha, subject) in log.iter().skip(1) {
        let state = fixture.state_at(sha, "backend").unwrap();
        let tag_line = fixture
            .show(sha, "apps/backend/kustomization.yaml")
            .unwrap()
            .lines()
            .find(|l| l.contains("newTag"))
            .unwrap()
            .to_string();
        let tag = tag_line
            .split(':')
            .nth(1)
            .unwrap()
            .split('#')
            .next()
            .unwrap()
            .trim()
            .to_string();
        if subject.contains("promoting revision") {
            expected_primary = format!("{IMAGE}:{tag}");
        }
        let built = docs(&flux_build(&fixture, sha));
        let primary = find(&built, "Deployment", "backend-primary").expect("primary Deployment");
        let canary = find(&built, "Deployment", "backend").expect("canary Deployment");
        assert_eq!(image(primary), expected_primary, "primary at {subject}");
        assert_eq!(
            image(canary),
            format!("{IMAGE}:{tag}"),
            "canary at {subject}"
        );
        let vs = find(&built, "VirtualService", "backend").expect("VirtualService");
        let w = state.canary_weight.get() as u64;
        assert_eq!(weights(vs, "backend"), (100 - w, w), "weights at {subject}");
        for (svc, selects) in [
            ("backend", "backend-primary"),
            ("backend-primary", "backend-primary"),
            ("backend-canary", "backend"),
        ] {
            let s = find(&built, "Service", svc).expect("service");
            assert_eq!(
                s["spec"]["selector"]["app"].as_str(),
                Some(selects),
                "{svc}"
            );
        }
        let hpa = find(&built, "HorizontalPodAutoscaler", "backend").unwrap();
        assert_eq!(
            hpa["spec"]["scaleTargetRef"]["name"].as_str(),
            Some("backend")
        );
        let hpa = find(&built, "HorizontalPodAutoscaler", "backend-primary").unwrap();
        assert_eq!(
            hpa["spec"]["scaleTargetRef"]["name"].as_str(),
            Some("backend-primary")
        );
    }

    // weir never wrote a byte of the user's folder: it is what CI pushed.
    let ci = crate::support::repo::git(&fixture.work, &["rev-parse", "HEAD"]);
    for file in [
        "kustomization.yaml",
        "deployment.yaml",
        "hpa.yaml",
        "canary.yaml",
        "deployment.patch.yaml",
    ] {
        assert_eq!(
            fixture.show("main", &format!("apps/backend/{file}")),
            fixture.show(ci.trim(), &format!("apps/backend/{file}")),
            "{file}"
        );
    }
    drop(traffic);
}
