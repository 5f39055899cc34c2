//! The public gitops-istio layout (`fixtures/gitops-istio-upstream`) run end to end, both apps
//! at once, as its README walks through it: the backend (canary, stepWeight 5 up to 50) with
//! its conformance and load-test webhooks, the frontend A/B tested by user-agent and cookie
//! over 10 iterations, MetricTemplates that name the in-cluster Prometheus. Only what a test
//! must change is changed, the way a person would: the interval (15s -> 1s) and the load
//! tester's address. Real parts: a bare Git remote, one traffic simulator per app scraped by a
//! real Prometheus (the frontend's simulator sends a fifth of its requests with the A/B
//! cookie), the flagger-loadtester stand-in, `kubectl kustomize` building every commit.

use crate::support::loadtester::LoadTester;
use crate::support::prometheus::Prometheus;
use crate::support::repo::{
    docs, edit, find, flux_build, until_next_step, Fixture, UPSTREAM_FIXTURE,
};
use crate::support::traffic::Traffic;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::core::record::State;
use weir::core::spec::Phase;
use weir::engine::{Engine, TickReport};

const NS: &str = "prod";
const APPS: [&str; 2] = ["backend", "frontend"];
const IMAGE: &str = "ghcr.io/stefanprodan/podinfo";
/// The address the fixture's MetricTemplates name, unreachable from here as from a CI runner.
const IN_CLUSTER_PROMETHEUS: &str = "http://flagger-prometheus.istio-system:9090";
/// What the run may take to reach a state; steps are 1s apart.
const DEADLINE: Duration = Duration::from_secs(120);

struct World {
    fixture: Fixture,
    lt: LoadTester,
    prometheus: Prometheus,
    _traffic: Vec<Traffic>,
    engine: Engine,
    last: Option<TickReport>,
}

impl World {
    async fn start() -> World {
        let lt = LoadTester::start();
        let fixture = Fixture::from_dir(Path::new(UPSTREAM_FIXTURE), |work| {
            for app in APPS {
                let canary = work.join(format!("apps/{app}/canary.yaml"));
                edit(&canary, 0, "spec.analysis.interval", "1s");
                for hook in 0..2 {
                    let at = format!("spec.analysis.webhooks[{hook}].url");
                    edit(&canary, 0, &at, &format!("{}/", lt.url()));
                }
            }
        });
        let traffic: Vec<Traffic> = APPS
            .iter()
            .map(|app| {
                Traffic::start(
                    env!("CARGO_BIN_EXE_weir-traffic"),
                    &fixture.remote,
                    "main",
                    app,
                    NS,
                    &format!("apps/{app}"),
                    &format!("apps/{app}.weir"),
                    &["6.2.0"],
                    &["--matched-share", "0.2"],
                )
            })
            .collect();
        let targets: Vec<String> = traffic.iter().map(Traffic::target).collect();
        let prometheus = Prometheus::start(&targets);
        let engine = fixture.engine_with_hooks_on(
            weir::adapters::prometheus::Settings {
                default_address: Some(prometheus.url()),
                aliases: vec![IN_CLUSTER_PROMETHEUS.to_string()],
                timeout: Duration::from_secs(5),
                ..Default::default()
            },
            Arc::new(weir::adapters::alerts::NoNotifier),
        );
        World {
            fixture,
            lt,
            prometheus,
            _traffic: traffic,
            engine,
            last: None,
        }
    }

    /// Ticks until both apps' records satisfy `done`, or panics at the deadline.
    async fn until(&mut self, what: &str, done: impl Fn(&State, &State) -> bool) {
        let start = Instant::now();
        loop {
            self.wait_for_canary_traffic();
            let report = self.engine.tick().await.expect("tick runs");
            let errors: Vec<&String> = report.apps.iter().flat_map(|a| &a.errors).collect();
            assert!(errors.is_empty(), "{errors:#?}");
            self.last = Some(report);
            let states = APPS.map(|app| self.fixture.state(app));
            if let [Some(b), Some(f)] = &states {
                if done(b, f) {
                    return;
                }
            }
            assert!(
                start.elapsed() < DEADLINE,
                "not {what} after {DEADLINE:?}; states: {states:#?}\nlog:\n{:#?}\nlast report: {:#?}",
                self.fixture.log(),
                self.last
            );
            let left = DEADLINE.saturating_sub(start.elapsed());
            until_next_step(self.last.as_ref().expect("a tick"), left).await;
        }
    }

    /// The metrics look at the canary only: before a step of an app under analysis, wait
    /// until Prometheus has seen its canary serve, as Flagger's load tester makes sure of.
    fn wait_for_canary_traffic(&self) {
        for app in APPS {
            let analysed = self
                .fixture
                .state(app)
                .is_some_and(|s| s.phase == Phase::Progressing && s.canary_weight.get() > 0);
            if analysed {
                self.prometheus.wait_for(
                    &format!(
                        "sum(rate(istio_requests_total{{reporter=\"destination\",destination_workload_namespace=\"{NS}\",destination_workload=\"{app}\"}}[30s]))"
                    ),
                    Duration::from_secs(20),
                    |v| v > 0.0,
                );
            }
        }
    }

    /// Every commit weir made since `from` (a sha of the log), each built as Flux builds
    /// `./apps`, with each app's record where that commit changed it:
    /// (app, phase, canary weight, iterations).
    fn steps_since(&self, from: Option<&str>) -> Vec<(String, Phase, u8, u32)> {
        let log = self.fixture.log();
        let start = from.map_or(1, |sha| {
            log.iter().position(|(s, _)| s == sha).expect("sha in log") + 1
        });
        let mut last: [Option<String>; 2] = Default::default();
        let mut steps = Vec::new();
        for (sha, _) in &log[..start] {
            for (i, app) in APPS.iter().enumerate() {
                last[i] = self
                    .fixture
                    .show(sha, &format!("apps/{app}.weir/state.yaml"));
            }
        }
        for (sha, subject) in &log[start..] {
            if subject.contains(": bump to ") {
                continue;
            }
            // What weir commits builds as Flux builds it.
            let built = docs(&flux_build(&self.fixture, sha));
            for app in APPS {
                assert!(
                    find(&built, "VirtualService", app).is_some(),
                    "{app} at {subject}"
                );
            }
            for (i, app) in APPS.iter().enumerate() {
                let now = self
                    .fixture
                    .show(sha, &format!("apps/{app}.weir/state.yaml"));
                if now != last[i] {
                    let s = self.fixture.state_at(sha, app).unwrap();
                    steps.push((
                        app.to_string(),
                        s.phase,
                        s.canary_weight.get(),
                        s.iterations,
                    ));
                    last[i] = now;
                }
            }
        }
        steps
    }
}

/// The steps of one app from [`World::steps_since`]: (phase, weight, iterations).
fn of(steps: &[(String, Phase, u8, u32)], app: &str) -> Vec<(Phase, u8, u32)> {
    steps
        .iter()
        .filter(|s| s.0 == app)
        .map(|s| (s.1, s.2, s.3))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apps_promote_and_a_bad_frontend_rolls_back() {
    let mut world = World::start().await;
    world
        .until("initialised", |b, f| {
            b.phase == Phase::Initialized && f.phase == Phase::Initialized
        })
        .await;
    world.fixture.bump("backend", "6.1.1");
    world.fixture.bump("frontend", "6.1.1");
    world
        .until("both promoted", |b, f| {
            b.phase == Phase::Succeeded && f.phase == Phase::Succeeded
        })
        .await;

    let steps = world.steps_since(None);
    // The backend: Flagger's canary steps, 5% at a time up to 50%, then the promotion.
    let mut backend = vec![(Phase::Initialized, 0), (Phase::Progressing, 0)];
    backend.extend((1..=10).map(|i| (Phase::Progressing, 5 * i)));
    backend.extend([
        (Phase::Promoting, 50),
        (Phase::Finalising, 0),
        (Phase::Succeeded, 0),
    ]);
    let weights: Vec<(Phase, u8)> = of(&steps, "backend")
        .into_iter()
        .map(|(p, w, _)| (p, w))
        .collect();
    assert_eq!(weights, backend, "{steps:?}");
    // The frontend: ten A/B iterations with the matched users on the canary.
    let mut frontend = vec![(Phase::Initialized, 0, 0), (Phase::Progressing, 0, 0)];
    frontend.extend((1..=10).map(|i| (Phase::Progressing, 100, i)));
    // The promotion follows an eleventh passing analysis, which the record counts.
    frontend.extend([
        (Phase::Promoting, 100, 11),
        (Phase::Finalising, 0, 11),
        (Phase::Succeeded, 0, 0),
    ]);
    assert_eq!(of(&steps, "frontend"), frontend, "{steps:?}");

    // During the A/B test, Firefox users and insiders (the cookie) reach the canary.
    let mid = world
        .fixture
        .log()
        .into_iter()
        .find(|(sha, _)| {
            world
                .fixture
                .state_at(sha, "frontend")
                .is_some_and(|s| s.iterations == 5)
        })
        .expect("a commit at the fifth iteration");
    let built = docs(&flux_build(&world.fixture, &mid.0));
    let vs = serde_json::to_value(find(&built, "VirtualService", "frontend").unwrap()).unwrap();
    assert_eq!(
        vs["spec"]["gateways"],
        json!(["istio-system/public-gateway"])
    );
    let matched = &vs["spec"]["http"][0];
    assert_eq!(
        matched["match"],
        json!([
            {"headers": {"user-agent": {"regex": ".*Firefox.*"}}},
            {"headers": {"cookie": {"regex": "^(.*?;)?(type=insider)(;.*)?$"}}},
        ]),
        "{vs:#}"
    );
    assert_eq!(
        matched["route"],
        json!([
            {"destination": {"host": "frontend-primary"}, "weight": 0},
            {"destination": {"host": "frontend-canary"}, "weight": 100},
        ])
    );
    // Both primaries now run the new tag.
    for app in APPS {
        let s = world.fixture.state(app).unwrap();
        assert_eq!(s.primary_images, vec![format!("{IMAGE}:6.1.1")], "{app}");
    }

    // The load tester ran each app's conformance test once, before its first step, then
    // the load test at each analysed step; every call answered 2xx.
    for app in APPS {
        let calls: Vec<_> = world
            .lt
            .calls_to("/")
            .into_iter()
            .filter(|c| c.payload().name == app)
            .collect();
        let kinds: Vec<(String, String)> = calls
            .iter()
            .map(|c| {
                (
                    c.meta("type").unwrap_or("cmd").to_string(),
                    c.meta("cmd").unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert!(kinds.len() >= 2, "{app}: {kinds:#?}");
        assert_eq!(kinds[0].0, "bash", "{app}: {kinds:#?}");
        assert!(
            kinds[0]
                .1
                .contains(&format!("http://{app}-canary.prod:9898/token")),
            "{kinds:#?}"
        );
        assert!(
            kinds[1..]
                .iter()
                .all(|(t, c)| t == "cmd" && c.starts_with("hey ")),
            "{app}: {kinds:#?}"
        );
        assert!(
            calls.iter().all(|c| (200..=202).contains(&c.status)),
            "{calls:#?}"
        );
        assert!(
            calls.iter().all(|c| c.payload().namespace == NS),
            "{calls:#?}"
        );
    }

    // A bad frontend release: errors on the canary, rolled back; the backend is left alone.
    let before = world.fixture.log().last().unwrap().0.clone();
    world.fixture.bump("frontend", "6.2.0");
    world
        .until("the bad frontend rolled back", |_, f| {
            f.phase == Phase::Failed
        })
        .await;
    let steps = world.steps_since(Some(&before));
    assert!(of(&steps, "backend").is_empty(), "{steps:#?}");
    let frontend = of(&steps, "frontend");
    assert_eq!(frontend.first(), Some(&(Phase::Progressing, 0, 0)));
    assert_eq!(
        frontend.last().map(|s| (s.0, s.1)),
        Some((Phase::Failed, 0)),
        "{frontend:?}"
    );
    assert!(
        !frontend.iter().any(|s| s.0 == Phase::Promoting),
        "{frontend:#?}"
    );
    let failed = world.fixture.state("frontend").unwrap();
    assert_eq!(failed.primary_images, vec![format!("{IMAGE}:6.1.1")]);
    assert!(failed.failed_revision.is_some(), "{failed:#?}");
    // Rolled back when the failed checks reached the threshold, not before.
    assert_eq!(failed.failed_checks, 10, "{failed:#?}");
    let (rollback, _) = world.fixture.log().last().unwrap().clone();
    let message = world.fixture.message(&rollback);
    assert!(
        message.contains("error-rate") && message.contains("> 1"),
        "{message}"
    );
    let built = docs(&flux_build(&world.fixture, &rollback));
    let vs = serde_json::to_value(find(&built, "VirtualService", "frontend").unwrap()).unwrap();
    // Everyone is back on the primary, the matched users too.
    for route in vs["spec"]["http"].as_array().unwrap() {
        assert_eq!(
            route["route"][0],
            json!({"destination": {"host": "frontend-primary"}, "weight": 100}),
            "{vs:#}"
        );
    }
}
