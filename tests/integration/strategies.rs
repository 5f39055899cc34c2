//! One end-to-end scenario per Flagger strategy and gate, in the spirit of Flagger's Istio e2e
//! suite (test/istio), against real parts: a bare Git remote, the traffic simulator scraped by
//! a real Prometheus, a flagger-loadtester stand-in answering over HTTP, and
//! `kubectl kustomize` building every commit weir made. Each scenario asserts the exact
//! sequence of phases and VirtualService states that lands in Git, and what weir sent to the
//! load tester. The planner-only versions are in `plan_strategies.rs`.

use crate::support::loadtester::{Call, LoadTester};
use crate::support::prometheus::Prometheus;
use crate::support::repo::{docs, find, flux_build, image, until_next_step, Fixture};
use crate::support::traffic::Traffic;
use serde_json::{json, Value as Json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::core::record::State;
use weir::core::spec::{AlertSeverity, Phase};
use weir::engine::{Engine, TickReport};
use weir::test_support::fakes::RecordingNotifier;

const APP: &str = "backend";
const NS: &str = "prod";
const IMAGE: &str = "ghcr.io/acme/backend";
/// What a scenario may take to reach a phase; steps are 1s apart.
const DEADLINE: Duration = Duration::from_secs(45);

/// The Canary of the scenarios: the fixture's service, and the analysis given (indented by
/// four spaces, `{lt}` standing for the load tester's URL).
fn canary(spec_extra: &str, service_extra: &str, analysis: &str) -> String {
    format!(
        r#"apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: backend
  namespace: prod
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: backend
  autoscalerRef:
    apiVersion: autoscaling/v2
    kind: HorizontalPodAutoscaler
    name: backend
{spec_extra}  service:
    port: 9898
    gateways:
      - istio-system/public-gateway
      - mesh
    hosts:
      - backend.example.com
{service_extra}  analysis:
{analysis}"#
    )
}

/// A custom MetricTemplate that has data whatever the routing: the error percentage of all
/// the app's live traffic (primary and canary). Blue/Green, A/B and mirroring send the canary
/// no live traffic in the simulator (Flagger's e2e tests make it with the load tester, which
/// the stand-in does not run), so a canary-only query would have no data there.
const APP_METRICS: &str = r#"apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: app-error-rate
  namespace: istio-system
spec:
  provider:
    type: prometheus
  query: |
    100 - sum(
        rate(
            istio_requests_total{
                reporter="{{ variables.reporter }}",
                destination_workload_namespace="{{ namespace }}",
                destination_workload=~"{{ target }}|{{ target }}-primary",
                response_code!~"5.*"
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            istio_requests_total{
                reporter="{{ variables.reporter }}",
                destination_workload_namespace="{{ namespace }}",
                destination_workload=~"{{ target }}|{{ target }}-primary"
            }[{{ interval }}]
        )
    )
    * 100
"#;

/// The app-wide metric as a Canary lists it.
const APP_METRIC: &str = r#"    metrics:
      - name: app-error-rate
        templateRef:
          name: app-error-rate
          namespace: istio-system
        templateVariables:
          reporter: destination
        thresholdRange:
          max: 1
        interval: 30s
"#;

/// The same query, rendered as weir renders it for the backend.
fn app_error_rate() -> String {
    let sum = |extra: &str| {
        format!(
            "sum(rate(istio_requests_total{{reporter=\"destination\",destination_workload_namespace=\"{NS}\",destination_workload=~\"{APP}|{APP}-primary\"{extra}}}[30s]))"
        )
    };
    format!(
        "100 - {} / {} * 100",
        sum(",response_code!~\"5.*\""),
        sum("")
    )
}

/// Flagger's built-in request-success-rate of the canary, over 30s.
fn canary_success_rate() -> String {
    let sum = |extra: &str| {
        format!(
            "sum(rate(istio_requests_total{{reporter=\"destination\",destination_workload_namespace=\"{NS}\",destination_workload=~\"{APP}\"{extra}}}[30s]))"
        )
    };
    format!("{} / {} * 100", sum(",response_code!~\"5.*\""), sum(""))
}

/// One scenario's world.
struct Env {
    fixture: Fixture,
    lt: LoadTester,
    prometheus: Prometheus,
    _traffic: Traffic,
    engine: Engine,
    notifier: RecordingNotifier,
    /// The analysis queries the canary's own traffic: before a due step at a weight above
    /// 0, wait until Prometheus has seen the canary serve at that weight.
    canary_metrics: bool,
    last: Option<TickReport>,
}

impl Env {
    /// The fixture with only the backend, its Canary replaced by `canary` (with `{lt}`
    /// pointing at a fresh load tester), the simulator, Prometheus, and an initialised app.
    async fn start(canary: &str) -> Env {
        let lt = LoadTester::start();
        let spec = canary.replace("{lt}", &lt.url());
        let fixture = Fixture::with(|work| {
            std::fs::remove_dir_all(work.join("apps/frontend")).unwrap();
            std::fs::write(work.join("apps/backend/canary.yaml"), &spec).unwrap();
            std::fs::write(work.join("istio/gateway/app-metrics.yaml"), APP_METRICS).unwrap();
        });
        let traffic = Traffic::start(
            env!("CARGO_BIN_EXE_weir-traffic"),
            &fixture.remote,
            "main",
            APP,
            NS,
            "apps/backend",
            "apps/backend.weir",
            &[],
            &[],
        );
        let prometheus = Prometheus::start(&[traffic.target()]);
        let notifier = RecordingNotifier::default();
        let engine = fixture.engine_with_hooks(Some(prometheus.url()), Arc::new(notifier.clone()));
        let mut env = Env {
            fixture,
            lt,
            prometheus,
            _traffic: traffic,
            engine,
            notifier,
            canary_metrics: false,
            last: None,
        };
        env.until("initialised", |s| s.phase == Phase::Initialized)
            .await;
        // The first analysis needs data: the app's traffic seen twice by Prometheus.
        env.prometheus
            .wait_for(&app_error_rate(), Duration::from_secs(30), f64::is_finite);
        env
    }

    /// Ticks until the app's record satisfies `done`, or panics at the deadline.
    async fn until(&mut self, what: &str, done: impl Fn(&State) -> bool) {
        let start = Instant::now();
        loop {
            self.before_tick();
            let report = self.engine.tick().await.expect("tick runs");
            let errors: Vec<&String> = report.apps.iter().flat_map(|a| &a.errors).collect();
            assert!(errors.is_empty(), "{errors:#?}");
            self.last = Some(report);
            if self.fixture.state(APP).is_some_and(|s| done(&s)) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "not {what} after {DEADLINE:?}; steps:\n{:#?}\nlast report: {:#?}",
                self.fixture.steps(APP),
                self.last
            );
            let left = DEADLINE.saturating_sub(start.elapsed());
            until_next_step(self.last.as_ref().expect("a tick"), left).await;
        }
    }

    /// Ticks until `done` holds for the load tester's calls, or panics at the deadline.
    async fn until_calls(&mut self, what: &str, done: impl Fn(&[Call]) -> bool) {
        let start = Instant::now();
        loop {
            self.before_tick();
            let report = self.engine.tick().await.expect("tick runs");
            self.last = Some(report);
            if done(&self.lt.calls()) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "not {what} after {DEADLINE:?}; calls:\n{:#?}\nlast report: {:#?}",
                self.lt.calls(),
                self.last
            );
            let left = DEADLINE.saturating_sub(start.elapsed());
            until_next_step(self.last.as_ref().expect("a tick"), left).await;
        }
    }

    fn before_tick(&self) {
        if !self.canary_metrics {
            return;
        }
        let Some(s) = self.fixture.state(APP) else {
            return;
        };
        if matches!(s.phase, Phase::Progressing | Phase::WaitingPromotion)
            && s.canary_weight.get() > 0
        {
            self.prometheus.wait_for(
                &canary_success_rate(),
                Duration::from_secs(20),
                f64::is_finite,
            );
        }
    }

    /// Every step weir committed for the app, built as Flux builds it.
    fn observe(&self) -> Vec<Seen> {
        let mut tag = "6.1.0".to_string();
        let mut seen = Vec::new();
        for (sha, subject) in self.fixture.log().into_iter().skip(1) {
            if let Some(t) = subject.strip_prefix("backend: bump to ") {
                tag = t.to_string();
                continue;
            }
            let subject = subject
                .strip_prefix("backend: ")
                .unwrap_or_else(|| panic!("a commit not about the backend: {subject}"))
                .to_string();
            let state = self.fixture.state_at(&sha, APP).unwrap();
            let built = docs(&flux_build(&self.fixture, &sha));
            let vs = find(&built, "VirtualService", APP).expect("VirtualService");
            let vs: Json = serde_json::to_value(vs).unwrap();
            let primary = image(find(&built, "Deployment", "backend-primary").unwrap());
            let canary = image(find(&built, "Deployment", APP).unwrap());
            assert_eq!(canary, format!("{IMAGE}:{tag}"), "canary at {subject}");
            assert_eq!(
                vec![primary.clone()],
                state.primary_images,
                "the primary runs what the record says at {subject}"
            );
            assert_eq!(
                vs["spec"]["hosts"],
                json!(["backend.example.com", "backend"]),
                "{subject}"
            );
            assert_eq!(
                vs["spec"]["gateways"],
                json!(["istio-system/public-gateway", "mesh"]),
                "{subject}"
            );
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
            seen.push(Seen {
                message: self.fixture.message(&sha),
                subject,
                state,
                vs,
                primary,
            });
        }
        seen
    }

    /// The alerts sent so far: (severity, message).
    fn alerts(&self) -> Vec<(AlertSeverity, String)> {
        self.notifier
            .alerts
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.severity, a.message.clone()))
            .collect()
    }
}

/// One commit weir made for the app.
#[derive(Debug)]
struct Seen {
    /// Without the `backend: ` prefix.
    subject: String,
    message: String,
    state: State,
    /// The built VirtualService, as JSON.
    vs: Json,
    /// The primary Deployment's image.
    primary: String,
}

impl Seen {
    /// The VirtualService's HTTP routes.
    fn routes(&self) -> &Vec<Json> {
        self.vs["spec"]["http"].as_array().expect("spec.http")
    }

    /// The route of that name.
    fn route(&self, name: &str) -> &Json {
        self.routes()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no route {name} at {}: {:#}", self.subject, self.vs))
    }
}

/// A route in one line: `name primary/canary`, `-` for a missing destination, then
/// ` mirror host pct%` when it mirrors.
fn route_line(r: &Json) -> String {
    let (mut p, mut c) = ("-".to_string(), "-".to_string());
    for d in r["route"].as_array().into_iter().flatten() {
        let w = d["weight"].to_string();
        match d["destination"]["host"].as_str() {
            Some("backend-primary") => p = w,
            Some("backend-canary") => c = w,
            other => panic!("unexpected destination {other:?}"),
        }
    }
    let mut line = format!("{} {p}/{c}", r["name"].as_str().unwrap_or("?"));
    if let Some(host) = r["mirror"]["host"].as_str() {
        line.push_str(&format!(" mirror {host}"));
        if let Some(v) = r["mirrorPercentage"]["value"].as_u64() {
            line.push_str(&format!(" {v}%"));
        }
    }
    line
}

/// One expected step: the subject's start, the recorded phase and canary weight, and the
/// VirtualService's routes as [`route_line`] prints them.
type Want<'a> = (&'a str, Phase, u32, &'a [&'a str]);

/// Asserts the exact sequence of steps.
fn assert_sequence(seen: &[Seen], want: &[Want]) {
    let got: Vec<(String, Phase, u32, Vec<String>)> = seen
        .iter()
        .map(|s| {
            (
                s.subject.clone(),
                s.state.phase,
                u32::from(s.state.canary_weight.get()),
                s.routes().iter().map(route_line).collect(),
            )
        })
        .collect();
    let table = || {
        got.iter()
            .map(|(s, p, w, r)| format!("{p:?} {w} {r:?} {s}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(got.len(), want.len(), "steps:\n{}", table());
    for ((subject, phase, weight, routes), (start, p, w, r)) in got.iter().zip(want) {
        assert!(
            subject.starts_with(start)
                && phase == p
                && weight == w
                && routes.iter().map(String::as_str).eq(r.iter().copied()),
            "expected {p:?} {w} {r:?} {start}...\nsteps:\n{}",
            table()
        );
    }
}

/// Flagger's payload keys, in Flagger's order (`metadata` only when the hook has some).
fn assert_flagger_payload(call: &Call, phase: &str, checksum: &str) {
    let p = call.payload();
    assert_eq!(
        (p.name.as_str(), p.namespace.as_str(), p.phase.as_str()),
        (APP, NS, phase),
        "{}",
        call.text()
    );
    assert_eq!(p.checksum, checksum, "{}", call.text());
    let mut keys = vec!["name", "namespace", "phase", "checksum"];
    if p.metadata.is_some() {
        keys.push("metadata");
    }
    assert_eq!(call.keys, keys, "field order of {}", call.text());
    assert_eq!(call.method, "POST");
}

/// The revision under analysis, as the record of a Progressing step names it.
fn revision(seen: &[Seen]) -> String {
    seen.iter()
        .find_map(|s| s.state.canary_revision.clone())
        .expect("a step with a canary revision")
}

/// a. Progressive canary: stepWeights [10, 50], the built-in request-success-rate and a
/// custom latency MetricTemplate, a pre-rollout acceptance test (bash), a load test (cmd)
/// and a post-rollout hook: promoted at 0 -> 10 -> 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progressive_canary_is_promoted_through_its_weights() {
    let mut env = Env::start(&canary(
        "",
        "",
        r#"    interval: 1s
    threshold: 2
    stepWeights: [10, 50]
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
        interval: 30s
      - name: latency
        templateRef:
          name: latency
          namespace: istio-system
        thresholdRange:
          max: 500
        interval: 30s
    webhooks:
      - name: acceptance-test
        type: pre-rollout
        url: {lt}/
        timeout: 5s
        metadata:
          type: bash
          cmd: "curl -sd 'test' http://backend-canary.prod:9898/token | grep token"
      - name: load-test
        url: {lt}/
        timeout: 5s
        metadata:
          cmd: "hey -z 1m -q 10 -c 2 http://backend-canary.prod:9898/"
      - name: smoke
        type: post-rollout
        url: {lt}/
        metadata:
          type: cmd
          cmd: "curl -s http://backend.prod:9898/"
"#,
    ))
    .await;
    env.canary_metrics = true;
    env.fixture.bump(APP, "6.1.1");
    env.until("promoted", |s| s.phase == Phase::Succeeded).await;

    let seen = env.observe();
    assert_sequence(
        &seen,
        &[
            (
                "initialization done",
                Phase::Initialized,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "new revision ",
                Phase::Progressing,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "advance canary weight 0 -> 10",
                Phase::Progressing,
                10,
                &["weir-canary 90/10"],
            ),
            (
                "advance canary weight 10 -> 50",
                Phase::Progressing,
                50,
                &["weir-canary 50/50"],
            ),
            (
                "promoting revision ",
                Phase::Promoting,
                50,
                &["weir-canary 50/50"],
            ),
            (
                "routing all traffic to primary",
                Phase::Finalising,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "promotion completed, primary now ghcr.io/acme/backend:6.1.1",
                Phase::Succeeded,
                0,
                &["weir-canary 100/0"],
            ),
        ],
    );
    // The primary takes the new image with the promotion, not before.
    let primaries: Vec<&str> = seen.iter().map(|s| s.primary.as_str()).collect();
    let old = format!("{IMAGE}:6.1.0");
    let new = format!("{IMAGE}:6.1.1");
    assert_eq!(
        primaries,
        [&old, &old, &old, &old, &new, &new, &new].map(String::as_str)
    );
    // Each analysed step says what the metrics read.
    for s in &seen[3..5] {
        assert!(
            s.message.contains("request-success-rate 100 >= 99")
                && s.message.contains("latency ")
                && s.message.contains("rollout webhook load-test passed"),
            "{}",
            s.message
        );
    }
    assert!(
        seen[2]
            .message
            .contains("pre-rollout webhook acceptance-test passed"),
        "{}",
        seen[2].message
    );

    // The load tester heard: the acceptance test before the first step, the load test at
    // each later analysed step, the post-rollout hook once promoted; Flagger's payloads.
    let rev = revision(&seen);
    let calls = env.lt.calls();
    let tasks: Vec<(String, String, u16)> = calls
        .iter()
        .map(|c| {
            (
                c.meta("type").unwrap_or("cmd").to_string(),
                c.meta("cmd").unwrap_or("").to_string(),
                c.status,
            )
        })
        .collect();
    let bash = "curl -sd 'test' http://backend-canary.prod:9898/token | grep token";
    let hey = "hey -z 1m -q 10 -c 2 http://backend-canary.prod:9898/";
    let smoke = "curl -s http://backend.prod:9898/";
    assert_eq!(
        tasks,
        vec![
            ("bash".to_string(), bash.to_string(), 200),
            ("cmd".to_string(), hey.to_string(), 202),
            ("cmd".to_string(), hey.to_string(), 202),
            ("cmd".to_string(), smoke.to_string(), 202),
        ]
    );
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.path, "/");
        let phase = if i == 3 { "Succeeded" } else { "Progressing" };
        assert_flagger_payload(c, phase, &rev);
    }
    assert_eq!(
        env.alerts(),
        vec![
            (
                AlertSeverity::Info,
                "New Deployment detected, initialization completed.".to_string()
            ),
            (
                AlertSeverity::Info,
                "New revision detected, progressing canary analysis.".to_string()
            ),
            (
                AlertSeverity::Info,
                "Canary analysis completed successfully, promotion finished.".to_string()
            ),
        ]
    );
}

/// b. Blue/Green: two iterations on the canary without live traffic, a pre-rollout check
/// that fails once (one failed check, under the threshold), then all traffic to the canary,
/// then the promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_all_traffic_after_its_iterations() {
    let conformance = "curl -sf http://backend-canary.prod:9898/readyz";
    let mut env = Env::start(&canary(
        "",
        "",
        &format!(
            r#"    interval: 1s
    threshold: 2
    iterations: 2
{APP_METRIC}    webhooks:
      - name: conformance
        type: pre-rollout
        url: {{lt}}/
        timeout: 5s
        metadata:
          type: bash
          cmd: "{conformance}"
      - name: load-test
        url: {{lt}}/
        timeout: 5s
        metadata:
          type: cmd
          cmd: "hey -z 1m -q 10 -c 2 http://backend-canary.prod:9898/"
      - name: rollout-gate
        type: confirm-rollout
        url: {{lt}}/gate/approve
      - name: promotion-gate
        type: confirm-promotion
        url: {{lt}}/gate/approve
"#
        ),
    ))
    .await;
    env.lt.fail_bash(conformance, 1);
    env.fixture.bump(APP, "6.1.1");
    env.until("promoted", |s| s.phase == Phase::Succeeded).await;

    let seen = env.observe();
    assert_sequence(
        &seen,
        &[
            (
                "initialization done",
                Phase::Initialized,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "new revision ",
                Phase::Progressing,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "halt advancement (failed checks 1/2)",
                Phase::Progressing,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "advance canary iteration 1/2",
                Phase::Progressing,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "advance canary iteration 2/2",
                Phase::Progressing,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "routing all traffic to canary",
                Phase::Progressing,
                100,
                &["weir-canary 0/100"],
            ),
            (
                "promoting revision ",
                Phase::Promoting,
                100,
                &["weir-canary 0/100"],
            ),
            (
                "routing all traffic to primary",
                Phase::Finalising,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "promotion completed",
                Phase::Succeeded,
                0,
                &["weir-canary 100/0"],
            ),
        ],
    );
    // The failed pre-rollout check is counted and explained; iterations start after it.
    let halt = &seen[2];
    assert_eq!(
        (halt.state.failed_checks, halt.state.iterations),
        (1, 0),
        "{:?}",
        halt.state
    );
    assert!(
        halt.message
            .contains("pre-rollout check conformance failed")
            && halt.message.contains("500")
            && halt
                .message
                .contains(&format!("command {conformance} failed")),
        "{}",
        halt.message
    );
    assert_eq!(
        seen[3..6]
            .iter()
            .map(|s| (s.state.iterations, s.state.failed_checks))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 1), (3, 1)]
    );

    // The load tester heard, in order: confirm-rollout (with the phase at the time), the
    // conformance test twice (failed, passed), the load test at each later analysed step,
    // and confirm-promotion both before the switch and before the promotion, as Flagger
    // asks it.
    let rev = revision(&seen);
    let calls = env.lt.calls();
    let got: Vec<(&str, &str, u16, &str)> = calls
        .iter()
        .map(|c| {
            (
                c.path.as_str(),
                c.meta("type").unwrap_or(""),
                c.status,
                c.payload().phase.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("/gate/approve", "", 200, "Initialized"),
            ("/", "bash", 500, "Progressing"),
            ("/", "bash", 200, "Progressing"),
            ("/", "cmd", 202, "Progressing"),
            ("/", "cmd", 202, "Progressing"),
            ("/gate/approve", "", 200, "Progressing"),
            ("/", "cmd", 202, "Progressing"),
            ("/gate/approve", "", 200, "Progressing"),
        ],
        "{calls:#?}"
    );
    assert_eq!(
        calls[1].answer,
        format!("command {conformance} failed: : exit status 1")
    );
    for c in &calls {
        let phase = c.payload().phase.clone();
        assert_flagger_payload(c, &phase, &rev);
    }
}

/// c. A/B testing: matched requests (a header, a cookie) go to the canary for two
/// iterations; then the promotion waits, without counting failures, until the load tester's
/// gate is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_testing_routes_matched_requests_and_waits_for_the_gate() {
    let mut env = Env::start(&canary(
        "",
        "    timeout: 30s\n",
        &format!(
            r#"    interval: 1s
    threshold: 2
    iterations: 2
    match:
      - headers:
          x-canary:
            exact: "insider"
      - headers:
          cookie:
            regex: "^(.*?;)?(canary=always)(;.*)?$"
{APP_METRIC}    webhooks:
      - name: promotion-gate
        type: confirm-promotion
        url: {{lt}}/gate/check
"#
        ),
    ))
    .await;
    env.fixture.bump(APP, "6.1.1");
    env.until("waiting for promotion", |s| {
        s.phase == Phase::WaitingPromotion
    })
    .await;

    // The gate is closed: weir asks it each interval, writes nothing, counts nothing.
    let commits = env.fixture.log().len();
    env.until_calls("three closed gate checks", |calls| {
        calls.iter().filter(|c| c.path == "/gate/check").count() >= 3
    })
    .await;
    assert_eq!(env.fixture.log().len(), commits, "{:#?}", env.fixture.log());
    let waiting = env.fixture.state(APP).unwrap();
    assert_eq!(
        (waiting.phase, waiting.failed_checks),
        (Phase::WaitingPromotion, 0)
    );
    let checks = env.lt.calls_to("/gate/check");
    assert!(checks
        .iter()
        .all(|c| c.status == 403 && c.answer == "Forbidden"));

    // Someone opens the gate, as with `curl -d '{"name": ..}' loadtester/gate/open`.
    assert_eq!(
        env.lt
            .post("/gate/open", r#"{"name": "backend", "namespace": "prod"}"#),
        (202, String::new())
    );
    assert!(env.lt.gate_is_open(APP, NS));
    env.until("promoted", |s| s.phase == Phase::Succeeded).await;

    let seen = env.observe();
    let ab = |p: u32, c: u32| format!("weir-ab-testing {p}/{c}");
    let at_rest = [ab(100, 0), "weir-primary 100/-".to_string()];
    let testing = [ab(0, 100), "weir-primary 100/-".to_string()];
    let at_rest: Vec<&str> = at_rest.iter().map(String::as_str).collect();
    let testing: Vec<&str> = testing.iter().map(String::as_str).collect();
    assert_sequence(
        &seen,
        &[
            ("initialization done", Phase::Initialized, 0, &at_rest),
            ("new revision ", Phase::Progressing, 0, &at_rest),
            (
                "advance canary iteration 1/2, matched requests go to the canary",
                Phase::Progressing,
                100,
                &testing,
            ),
            (
                "advance canary iteration 2/2",
                Phase::Progressing,
                100,
                &testing,
            ),
            (
                "waiting for promotion approval (confirm-promotion",
                Phase::WaitingPromotion,
                100,
                &testing,
            ),
            ("promoting revision ", Phase::Promoting, 100, &testing),
            (
                "routing all traffic to primary",
                Phase::Finalising,
                0,
                &at_rest,
            ),
            ("promotion completed", Phase::Succeeded, 0, &at_rest),
        ],
    );
    // The matched route, exactly: both matches, all to the canary, the service's timeout.
    let matched = seen[2].route("weir-ab-testing");
    assert_eq!(
        matched["match"],
        json!([
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
        ])
    );
    assert_eq!(
        matched["route"],
        json!([
            {"destination": {"host": "backend-primary"}, "weight": 0},
            {"destination": {"host": "backend-canary"}, "weight": 100},
        ])
    );
    assert_eq!(matched["timeout"], "30s");
    let default = seen[2].route("weir-primary");
    assert!(default.get("match").is_none(), "{default:#}");
    assert_eq!(
        default["route"],
        json!([{"destination": {"host": "backend-primary"}, "weight": 100}])
    );
    assert_eq!(default["timeout"], "30s");
    // The matched route comes first: Istio takes the first route that matches.
    assert_eq!(seen[2].routes()[0]["name"], "weir-ab-testing");
    assert!(
        seen[4]
            .message
            .contains("confirm-promotion check promotion-gate failed")
            && seen[4]
                .message
                .contains("waiting for promotion approval (confirm-promotion promotion-gate)")
            && seen[4].message.contains("403"),
        "{}",
        seen[4].message
    );
    assert_eq!(seen[4].state.failed_checks, 0);

    // What the gate heard: Flagger's payload, phase Progressing, no metadata; the last
    // check (after the gate opened) approved.
    let rev = revision(&seen);
    let checks = env.lt.calls_to("/gate/check");
    for c in &checks {
        assert_flagger_payload(c, "Progressing", &rev);
    }
    let last = checks.last().unwrap();
    assert_eq!((last.status, last.answer.as_str()), (200, "Approved"));
    assert!(checks[..checks.len() - 1].iter().all(|c| c.status == 403));
    // One approval alert, not one per look.
    let waiting_alerts = env
        .alerts()
        .into_iter()
        .filter(|(_, m)| m == "Canary promotion is waiting for approval.")
        .count();
    assert_eq!(waiting_alerts, 1, "{:#?}", env.alerts());
}

/// d. A manual rollback through the load tester: mid-analysis the rollback gate opens and
/// the next step rolls back; the gate stays open, so the next revision is rolled back at
/// its first step, as with Flagger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_gate_rolls_back_mid_analysis() {
    let mut env = Env::start(&canary(
        "",
        "",
        &format!(
            r#"    interval: 1s
    threshold: 2
    stepWeight: 10
    maxWeight: 50
{APP_METRIC}    webhooks:
      - name: rollback-gate
        type: rollback
        url: {{lt}}/rollback/check
      - name: cleanup
        type: post-rollout
        url: {{lt}}/
        metadata:
          cmd: "kubectl -n prod delete job backend-smoke"
"#
        ),
    ))
    .await;
    env.fixture.bump(APP, "6.1.1");
    env.until("at weight 10", |s| s.canary_weight.get() == 10)
        .await;
    let before = env.lt.calls_to("/rollback/check");
    assert!(!before.is_empty());
    assert!(before.iter().all(|c| c.status == 403));
    assert_eq!(
        env.lt
            .post("/rollback/open", r#"{"name":"backend","namespace":"prod"}"#),
        (202, String::new())
    );
    env.until("rolled back", |s| s.phase == Phase::Failed).await;

    let seen = env.observe();
    assert_sequence(
        &seen,
        &[
            (
                "initialization done",
                Phase::Initialized,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "new revision ",
                Phase::Progressing,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "advance canary weight 0 -> 10",
                Phase::Progressing,
                10,
                &["weir-canary 90/10"],
            ),
            (
                "rolling back, rollback hook rollback-gate passed",
                Phase::Failed,
                0,
                &["weir-canary 100/0"],
            ),
        ],
    );
    let rev = revision(&seen);
    let failed = &seen[3].state;
    assert_eq!(failed.failed_revision.as_deref(), Some(rev.as_str()));
    assert_eq!(seen[3].primary, format!("{IMAGE}:6.1.0"));
    // Failing rollback checks are "no rollback", never failed checks.
    assert!(seen.iter().all(|s| s.state.failed_checks == 0));
    let checks = env.lt.calls_to("/rollback/check");
    let last = checks.last().unwrap();
    assert_eq!((last.status, last.answer.as_str()), (200, "Approved"));
    for c in &checks {
        // Flagger sends rollback hooks the canary's phase at the time.
        assert_flagger_payload(c, "Progressing", &rev);
    }
    let post: Vec<Call> = env.lt.calls_to("/");
    assert_eq!(post.len(), 1, "{post:#?}");
    assert_flagger_payload(&post[0], "Failed", &rev);
    assert_eq!(post[0].status, 202);
    assert!(
        env.alerts().contains(&(
            AlertSeverity::Warn,
            "Rolling back manual webhook invoked".to_string()
        )),
        "{:#?}",
        env.alerts()
    );

    // The gate persists (the load tester never closes it): the next revision is rolled
    // back at its first step.
    env.fixture.bump(APP, "6.1.2");
    env.until("the next revision rolled back", |s| {
        s.phase == Phase::Failed && s.failed_revision.as_deref() != Some(rev.as_str())
    })
    .await;
    let seen = env.observe();
    let tail: Vec<(&str, Phase, u32)> = seen[4..]
        .iter()
        .map(|s| {
            (
                s.subject.as_str(),
                s.state.phase,
                u32::from(s.state.canary_weight.get()),
            )
        })
        .collect();
    assert_eq!(tail.len(), 2, "{tail:#?}");
    assert!(tail[0].0.starts_with("new revision ") && tail[0].1 == Phase::Progressing);
    assert_eq!(
        (tail[1].0, tail[1].1, tail[1].2),
        (
            "rolling back, rollback hook rollback-gate passed",
            Phase::Failed,
            0
        )
    );
}

/// e. Mirroring: one step at weight 0 with half the traffic mirrored to the canary, then
/// the weighted steps without mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_canary_mirrors_once_then_shifts_traffic() {
    let mut env = Env::start(&canary(
        "",
        "",
        &format!(
            r#"    interval: 1s
    threshold: 2
    stepWeight: 25
    maxWeight: 50
    mirror: true
    mirrorWeight: 50
{APP_METRIC}"#
        ),
    ))
    .await;
    env.fixture.bump(APP, "6.1.1");
    env.until("promoted", |s| s.phase == Phase::Succeeded).await;

    let seen = env.observe();
    assert_sequence(
        &seen,
        &[
            (
                "initialization done",
                Phase::Initialized,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "new revision ",
                Phase::Progressing,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "mirroring traffic to the canary, canary weight 0",
                Phase::Progressing,
                0,
                &["weir-canary 100/0 mirror backend-canary 50%"],
            ),
            (
                "traffic mirroring stopped, advance canary weight 0 -> 25",
                Phase::Progressing,
                25,
                &["weir-canary 75/25"],
            ),
            (
                "advance canary weight 25 -> 50",
                Phase::Progressing,
                50,
                &["weir-canary 50/50"],
            ),
            (
                "promoting revision ",
                Phase::Promoting,
                50,
                &["weir-canary 50/50"],
            ),
            (
                "routing all traffic to primary",
                Phase::Finalising,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "promotion completed",
                Phase::Succeeded,
                0,
                &["weir-canary 100/0"],
            ),
        ],
    );
    let mirrored = seen[2].route("weir-canary");
    assert_eq!(mirrored["mirror"], json!({"host": "backend-canary"}));
    assert_eq!(mirrored["mirrorPercentage"], json!({"value": 50}));
    assert!(seen[2].state.mirrored);
    for s in seen.iter().filter(|s| s.subject != seen[2].subject) {
        let r = s.route("weir-canary");
        assert!(
            r.get("mirror").is_none() && r.get("mirrorPercentage").is_none(),
            "{}: {r:#}",
            s.subject
        );
        assert!(!s.state.mirrored, "{}", s.subject);
    }
    // The mirrored step was analysed before the weight moved.
    assert!(
        seen[3].message.contains("app-error-rate "),
        "{}",
        seen[3].message
    );
}

/// f. Session affinity: weighted steps carry a sticky route for the canary's cookie and a
/// Set-Cookie on the canary destination; after the promotion a clean-up route expires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_affinity_pins_users_then_expires_the_cookie() {
    let mut env = Env::start(&canary(
        "",
        "",
        &format!(
            r#"    interval: 1s
    threshold: 2
    stepWeight: 25
    maxWeight: 50
    sessionAffinity:
      cookieName: flagger-cookie
      maxAge: 3600
{APP_METRIC}"#
        ),
    ))
    .await;
    env.fixture.bump(APP, "6.1.1");
    env.until("promoted", |s| s.phase == Phase::Succeeded).await;

    let seen = env.observe();
    let sticky = ["weir-sticky-canary 0/100"];
    assert_sequence(
        &seen,
        &[
            (
                "initialization done",
                Phase::Initialized,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "new revision ",
                Phase::Progressing,
                0,
                &["weir-canary 100/0"],
            ),
            (
                "advance canary weight 0 -> 25",
                Phase::Progressing,
                25,
                &[sticky[0], "weir-canary 75/25"],
            ),
            (
                "advance canary weight 25 -> 50",
                Phase::Progressing,
                50,
                &[sticky[0], "weir-canary 50/50"],
            ),
            (
                "promoting revision ",
                Phase::Promoting,
                50,
                &[sticky[0], "weir-canary 50/50"],
            ),
            (
                "routing all traffic to primary",
                Phase::Finalising,
                0,
                &["weir-cookie-cleanup 100/0", "weir-canary 100/0"],
            ),
            (
                "promotion completed",
                Phase::Succeeded,
                0,
                &["weir-cookie-cleanup 100/0", "weir-canary 100/0"],
            ),
        ],
    );
    // One cookie for the whole run, `flagger-cookie=<10 letters>`, kept in the record.
    let cookie = seen[2]
        .state
        .session_affinity_cookie
        .clone()
        .expect("a cookie once the canary has traffic");
    let value = cookie.strip_prefix("flagger-cookie=").expect(&cookie);
    assert!(
        value.len() == 10 && value.chars().all(|c| c.is_ascii_alphabetic()),
        "{cookie}"
    );
    for s in &seen[2..5] {
        assert_eq!(
            s.state.session_affinity_cookie.as_deref(),
            Some(cookie.as_str())
        );
        assert_eq!(s.state.previous_session_affinity_cookie, None);
        // The sticky route matches the cookie (weir escapes the name's `-`, same regex).
        let r = s.route("weir-sticky-canary");
        let regex = r["match"][0]["headers"]["Cookie"]["regex"]
            .as_str()
            .unwrap_or_else(|| panic!("{r:#}"));
        assert_eq!(
            regex.replace("\\-", "-"),
            format!(".*flagger-cookie.*{value}.*"),
            "{r:#}"
        );
        assert_eq!(r["match"].as_array().map(Vec::len), Some(1), "{r:#}");
        assert_eq!(
            r["route"],
            json!([
                {"destination": {"host": "backend-primary"}, "weight": 0},
                {"destination": {"host": "backend-canary"}, "weight": 100},
            ])
        );
        // The weighted route sets the cookie on the canary's answers only.
        let w = s.state.canary_weight.get();
        assert_eq!(
            s.route("weir-canary")["route"],
            json!([
                {"destination": {"host": "backend-primary"}, "weight": 100 - w},
                {
                    "destination": {"host": "backend-canary"},
                    "weight": w,
                    "headers": {"response": {"add": {
                        "Set-Cookie": format!("{cookie}; Max-Age=3600")
                    }}},
                },
            ])
        );
        // The sticky route comes first.
        assert_eq!(s.routes()[0]["name"], "weir-sticky-canary");
    }
    // Back on the primary: the cookie is retired, and users still holding it get it expired.
    for s in &seen[5..] {
        assert_eq!(s.state.session_affinity_cookie, None);
        assert_eq!(
            s.state.previous_session_affinity_cookie.as_deref(),
            Some(cookie.as_str())
        );
        let r = s.route("weir-cookie-cleanup");
        let regex = r["match"][0]["headers"]["Cookie"]["regex"]
            .as_str()
            .unwrap();
        assert_eq!(
            regex.replace("\\-", "-"),
            format!(".*flagger-cookie.*{value}.*")
        );
        assert_eq!(
            r["headers"],
            json!({"response": {"add": {"Set-Cookie": format!("{cookie}; Max-Age=-1")}}})
        );
        assert_eq!(
            r["route"],
            json!([
                {"destination": {"host": "backend-primary"}, "weight": 100},
                {"destination": {"host": "backend-canary"}, "weight": 0},
            ])
        );
        assert!(s.route("weir-canary").get("headers").is_none());
    }
}

/// g. skipAnalysis: the new revision is promoted without checks (no metric, no analysis
/// webhook), and Flagger's "analysis was skipped" alert says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_analysis_promotes_without_checks() {
    let mut env = Env::start(&canary(
        "  skipAnalysis: true\n",
        "",
        &format!(
            r#"    interval: 1s
    threshold: 2
    stepWeight: 25
    maxWeight: 50
{APP_METRIC}    webhooks:
      - name: never-called
        type: pre-rollout
        url: {{lt}}/
        metadata:
          type: bash
          cmd: "exit 1"
      - name: load-test
        url: {{lt}}/
        metadata:
          cmd: "hey -z 1m http://backend-canary.prod:9898/"
      - name: done
        type: post-rollout
        url: {{lt}}/
        metadata:
          cmd: "echo done"
"#
        ),
    ))
    .await;
    env.lt.always_fail_bash("exit 1");
    env.fixture.bump(APP, "6.1.1");
    env.until("promoted", |s| s.phase == Phase::Succeeded).await;

    let seen = env.observe();
    let subjects: Vec<(&str, Phase, u32)> = seen
        .iter()
        .map(|s| {
            (
                s.subject.as_str(),
                s.state.phase,
                u32::from(s.state.canary_weight.get()),
            )
        })
        .collect();
    // Never any traffic on the canary, no analysis step, and the primary promoted.
    for s in &seen {
        assert_eq!(
            s.routes().iter().map(route_line).collect::<Vec<_>>(),
            vec!["weir-canary 100/0"],
            "{subjects:#?}"
        );
        assert!(
            !s.subject.starts_with("advance") && !s.subject.starts_with("halt"),
            "{subjects:#?}"
        );
        assert!(!s.message.contains("app-error-rate"), "{}", s.message);
        assert_eq!(s.state.failed_checks, 0);
    }
    let last = seen.last().unwrap();
    assert_eq!(last.primary, format!("{IMAGE}:6.1.1"));
    assert_eq!(last.state.phase, Phase::Succeeded);
    assert!(
        seen[1].subject.starts_with("new revision ")
            && seen[1].subject.contains("skipping analysis"),
        "{subjects:#?}"
    );
    // Only the post-rollout hook was called: no pre-rollout, no load test.
    let calls = env.lt.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].meta("cmd"), Some("echo done"));
    assert_flagger_payload(&calls[0], "Succeeded", &revision_of_promotion(&seen));
    // Flagger's alerts (scheduler.go `checkCanaryStatus`, `shouldSkipAnalysis`): the new
    // revision detected, then "analysis was skipped" once the promotion finished (with phase
    // Succeeded); never "completed successfully", since nothing was analysed.
    let alerts: Vec<(AlertSeverity, String, Phase)> = env
        .notifier
        .alerts
        .lock()
        .unwrap()
        .iter()
        .map(|a| (a.severity, a.message.clone(), a.phase))
        .collect();
    let messages: Vec<&str> = alerts.iter().map(|(_, m, _)| m.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "New Deployment detected, initialization completed.",
            "New revision detected, progressing canary analysis.",
            "Canary analysis was skipped, promotion finished.",
        ],
        "alerts: {alerts:#?}\nsteps: {subjects:#?}"
    );
    assert_eq!(
        alerts[2].2,
        Phase::Succeeded,
        "alerts: {alerts:#?}\nsteps: {subjects:#?}"
    );
}

/// The revision a skipAnalysis run promoted, as its record names it.
fn revision_of_promotion(seen: &[Seen]) -> String {
    seen.last().unwrap().state.promoted_revision.clone()
}

/// The stand-in answers as flagger-loadtester does (pkg/loadtester/server.go), so that the
/// scenarios above test weir against the load tester's real contract.
#[test]
fn loadtester_stand_in_answers_as_flagger_loadtester() {
    let lt = LoadTester::start();
    let payload = |metadata: &str| {
        format!(
            r#"{{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc"{metadata}}}"#
        )
    };
    let plain = payload("");
    // Fixed answers, whatever the method or body.
    assert_eq!(lt.post("/healthz", ""), (200, "OK".into()));
    assert_eq!(lt.post("/gate/approve", "not json"), (200, "OK".into()));
    assert_eq!(lt.post("/gate/halt", &plain), (403, "Forbidden".into()));
    // Gates: closed by default, opened and closed by payload, per name and namespace.
    assert_eq!(lt.post("/gate/check", &plain), (403, "Forbidden".into()));
    assert_eq!(lt.post("/gate/open", &plain), (202, String::new()));
    assert_eq!(lt.post("/gate/check", &plain), (200, "Approved".into()));
    let other = plain.replace("\"test\"", "\"other\"");
    assert_eq!(lt.post("/gate/check", &other), (403, "Forbidden".into()));
    assert_eq!(lt.post("/gate/close", &plain), (202, String::new()));
    assert_eq!(lt.post("/gate/check", &plain), (403, "Forbidden".into()));
    // Rollback gates are separate keys.
    assert_eq!(
        lt.post("/rollback/check", &plain),
        (403, "Forbidden".into())
    );
    assert_eq!(lt.post("/rollback/open", &plain), (202, String::new()));
    assert_eq!(lt.post("/rollback/check", &plain), (200, "Approved".into()));
    assert_eq!(lt.post("/gate/check", &plain), (403, "Forbidden".into()));
    assert_eq!(lt.post("/rollback/close", &plain), (202, String::new()));
    assert_eq!(
        lt.post("/rollback/check", &plain),
        (403, "Forbidden".into())
    );
    // Not a payload: 400, empty.
    assert_eq!(lt.post("/gate/check", "{"), (400, String::new()));
    assert_eq!(lt.post("/", "[1]"), (400, String::new()));
    // Tasks.
    assert_eq!(
        lt.post("/", &plain),
        (400, "metadata not found in payload".into())
    );
    assert_eq!(
        lt.post("/", &payload(r#","metadata":{}"#)),
        (400, "metadata not found in payload".into())
    );
    assert_eq!(
        lt.post("/", &payload(r#","metadata":{"type":"cmd"}"#)),
        (400, "cmd not found in metadata".into())
    );
    assert_eq!(
        lt.post("/", &payload(r#","metadata":{"cmd":"hey http://podinfo"}"#)),
        (202, String::new())
    );
    assert_eq!(
        lt.post(
            "/any/path",
            &payload(r#","metadata":{"type":"bash","cmd":"true"}"#)
        ),
        (200, String::new())
    );
    lt.fail_bash("false", 1);
    let bash_false = payload(r#","metadata":{"type":"bash","cmd":"false"}"#);
    assert_eq!(
        lt.post("/", &bash_false),
        (500, "command false failed: : exit status 1".into())
    );
    assert_eq!(lt.post("/", &bash_false), (200, String::new()));
    let tasks: Vec<(String, String, bool)> = lt
        .tasks()
        .into_iter()
        .map(|t| (t.kind, t.cmd, t.ok))
        .collect();
    assert_eq!(
        tasks,
        vec![
            ("cmd".into(), "hey http://podinfo".into(), true),
            ("bash".into(), "true".into(), true),
            ("bash".into(), "false".into(), false),
            ("bash".into(), "false".into(), true),
        ]
    );
    // Every request recorded, with its keys in the order sent.
    let calls = lt.calls();
    assert_eq!(calls.len(), 24);
    assert_eq!(
        calls[3].keys,
        vec!["name", "namespace", "phase", "checksum"]
    );
    assert_eq!(calls[3].payload().name, "podinfo");
}
