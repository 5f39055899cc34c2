//! `weir run --listen`: health and readiness, the inbound webhooks (signed, unsigned, wrongly
//! signed, replayed, oversized, malformed), a push that wakes a `weir run` ticking once an
//! hour, and a real Prometheus scraping /metrics through a release, with every query of the
//! Grafana dashboard answered.

use crate::support::http::Server;
use crate::support::prometheus::Prometheus;
use crate::support::repo::{until_next_step, Fixture};
use crate::support::traffic::Traffic;
use crate::support::wait::until;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use weir::adapters::http_server::{self, BODY_LIMIT};
use weir::core::secret::Secret;
use weir::core::spec::Phase;
use weir::engine::metrics::{Metrics, RepoMetrics};
use weir::engine::TickReport;

const GITHUB_SECRET: &str = "gh-hook-secret";
const FLUX_SECRET: &str = "flux-hook-secret";

fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// weir's server in this process, on its own thread and a free port, for one repository on
/// `main`: the server (stopped on drop), its address, its wake and the repository's series.
fn server(github: bool, flux: bool) -> (Server, String, Arc<Notify>, RepoMetrics) {
    let (server, addr, mut wakes, metrics) = server_of(
        github,
        flux,
        &[("https://github.com/acme/fleet.git", "main")],
    );
    (server, addr, wakes.remove(0), metrics)
}

/// weir's server for several repositories (URL, branch): their wakes, in that order, and the
/// series of the first.
fn server_of(
    github: bool,
    flux: bool,
    repos: &[(&str, &str)],
) -> (Server, String, Vec<Arc<Notify>>, RepoMetrics) {
    let metrics = Arc::new(Metrics::new());
    let loops: Vec<http_server::Loop> = repos
        .iter()
        .map(|(repo, branch)| http_server::Loop {
            repo: repo.to_string(),
            branch: branch.to_string(),
            wake: Arc::new(Notify::new()),
        })
        .collect();
    let wakes = loops.iter().map(|l| l.wake.clone()).collect();
    let first = metrics.repository(repos[0].0, repos[0].1);
    let config = http_server::Config {
        exposition: metrics,
        loops,
        github_secret: github.then(|| Secret::new(GITHUB_SECRET)),
        flux_secret: flux.then(|| Secret::new(FLUX_SECRET)),
    };
    let server = Server::start("weir-http", http_server::router(config));
    let addr = format!("127.0.0.1:{}", server.port());
    (server, addr, wakes, first)
}

/// True when `wake` is notified within `within`.
async fn woken(wake: &Notify, within: Duration) -> bool {
    tokio::time::timeout(within, wake.notified()).await.is_ok()
}

/// An HTTP client (reqwest here has no TLS provider of its own: weir installs ring's).
fn client() -> reqwest::Client {
    weir::adapters::tls::install_crypto_provider();
    reqwest::Client::new()
}

async fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
    let mut req = client().post(format!("http://{addr}{path}")).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn get(addr: &str, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn github_push(addr: &str, delivery: &str, body: &[u8], signature: Option<&str>) -> u16 {
    let mut headers = vec![("x-github-event", "push"), ("x-github-delivery", delivery)];
    if let Some(s) = signature {
        headers.push(("x-hub-signature-256", s));
    }
    post(addr, "/hooks/github", &headers, body.to_vec()).await
}

#[tokio::test]
async fn github_push_wakes_once_and_only_when_signed() {
    let (_server, addr, wake, _) = server(true, false);
    let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
    let good = sign(GITHUB_SECRET, body);
    let short = Duration::from_millis(300);

    assert_eq!(github_push(&addr, "d-1", body, None).await, 401);
    let wrong = sign("not-the-secret", body);
    assert_eq!(github_push(&addr, "d-1", body, Some(&wrong)).await, 401);
    let other_body = br#"{"ref":"refs/heads/other"}"#;
    assert_eq!(
        github_push(&addr, "d-1", other_body, Some(&good)).await,
        401
    );
    assert!(!woken(&wake, short).await, "a refused hook woke the loop");

    assert_eq!(github_push(&addr, "d-1", body, Some(&good)).await, 202);
    assert!(
        woken(&wake, Duration::from_secs(2)).await,
        "a signed push did not wake"
    );
    // GitHub's redelivery carries the same id: answered, but no second wake.
    assert_eq!(github_push(&addr, "d-1", body, Some(&good)).await, 200);
    assert!(
        !woken(&wake, short).await,
        "a redelivery woke the loop again"
    );
    assert_eq!(github_push(&addr, "d-2", body, Some(&good)).await, 202);
    assert!(woken(&wake, Duration::from_secs(2)).await);

    // Ping is answered and wakes nothing; so is an event weir does not use.
    let ping = br#"{"zen":"Keep it logically awesome."}"#;
    let signed_ping = sign(GITHUB_SECRET, ping);
    for event in ["ping", "issues"] {
        let headers = [
            ("x-github-event", event),
            ("x-github-delivery", "p-1"),
            ("x-hub-signature-256", signed_ping.as_str()),
        ];
        assert_eq!(
            post(&addr, "/hooks/github", &headers, ping.to_vec()).await,
            200
        );
    }
    assert!(!woken(&wake, short).await);

    // Signed but not JSON.
    let junk = b"ref=main".to_vec();
    let signed_junk = sign(GITHUB_SECRET, &junk);
    assert_eq!(
        github_push(&addr, "d-3", &junk, Some(&signed_junk)).await,
        400
    );

    // Over the limit, signed or not.
    let big = vec![b' '; BODY_LIMIT + 1];
    let signed_big = sign(GITHUB_SECRET, &big);
    assert_eq!(
        github_push(&addr, "d-4", &big, Some(&signed_big)).await,
        413
    );
    assert!(!woken(&wake, short).await);

    // The Flux hook has no secret here: not served.
    assert_eq!(post(&addr, "/hooks/flux", &[], b"{}".to_vec()).await, 404);
}

#[tokio::test]
async fn flux_event_wakes_once_and_only_when_signed() {
    let (_server, addr, wake, _) = server(false, true);
    // What notification-controller's generic-hmac provider posts: the event as JSON,
    // `X-Signature: sha256=<hex>` over exactly those bytes.
    let body = serde_json::to_vec(&serde_json::json!({
        "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
        "severity": "info",
        "timestamp": "2026-11-24T10:00:00Z",
        "message": "Reconciliation finished",
        "reason": "ReconciliationSucceeded",
        "metadata": {"revision": "main@sha1:abc"},
        "reportingController": "kustomize-controller",
    }))
    .unwrap();
    let good = sign(FLUX_SECRET, &body);
    let short = Duration::from_millis(300);
    let flux = |sig: Option<String>, body: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let mut headers = vec![("gotk-component", "kustomize-controller".to_string())];
            if let Some(s) = sig {
                headers.push(("x-signature", s));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(&addr, "/hooks/flux", &headers, body).await
        }
    };

    assert_eq!(flux(None, body.clone()).await, 401);
    assert_eq!(flux(Some(sign("nope", &body)), body.clone()).await, 401);
    assert!(!woken(&wake, short).await);
    assert_eq!(flux(Some(good.clone()), body.clone()).await, 202);
    assert!(
        woken(&wake, Duration::from_secs(2)).await,
        "a signed event did not wake"
    );
    // The same bytes and signature again (a retry): answered, no second wake.
    assert_eq!(flux(Some(good.clone()), body.clone()).await, 202);
    assert!(!woken(&wake, short).await, "a replay woke the loop again");

    let junk = b"[not json".to_vec();
    assert_eq!(flux(Some(sign(FLUX_SECRET, &junk)), junk).await, 400);
    let big = vec![b' '; BODY_LIMIT + 1];
    assert_eq!(flux(Some(sign(FLUX_SECRET, &big)), big).await, 413);
    assert_eq!(post(&addr, "/hooks/github", &[], b"{}".to_vec()).await, 404);
}

/// With several repositories, a GitHub push wakes the loop of the repository and branch it
/// names (by any of its URLs, or its `owner/name`) and no other; a Flux event wakes the loops
/// on its revision's branch, or all when it names no branch one serves.
#[tokio::test]
async fn webhooks_wake_the_loops_of_their_repository_and_branch() {
    let (_server, addr, wakes, _) = server_of(
        true,
        true,
        &[
            ("ssh://git@github.com/acme/fleet.git", "main"),
            ("https://x-access-token:t@github.com/acme/fleet.git", "prod"),
            ("https://github.com/acme/payments.git", "main"),
        ],
    );
    let short = Duration::from_millis(300);
    // Which loops a request woke, each waited on at once.
    let woken_set = || async {
        let mut out = Vec::new();
        for (i, w) in wakes.iter().enumerate() {
            if woken(w, short).await {
                out.push(i);
            }
        }
        out
    };
    let push = |delivery: &'static str, body: serde_json::Value| {
        let addr = addr.clone();
        async move {
            let body = serde_json::to_vec(&body).unwrap();
            let signature = sign(GITHUB_SECRET, &body);
            github_push(&addr, delivery, &body, Some(&signature)).await
        }
    };
    let repository = |name: &str| {
        serde_json::json!({
            "full_name": format!("acme/{name}"),
            "clone_url": format!("https://github.com/acme/{name}.git"),
            "ssh_url": format!("git@github.com:acme/{name}.git"),
            "html_url": format!("https://github.com/acme/{name}"),
        })
    };
    let body = |r: &str, name: &str| serde_json::json!({"ref": r, "repository": repository(name)});
    assert_eq!(push("p-1", body("refs/heads/main", "fleet")).await, 202);
    assert_eq!(woken_set().await, [0]);
    assert_eq!(push("p-2", body("refs/heads/prod", "fleet")).await, 202);
    assert_eq!(woken_set().await, [1]);
    assert_eq!(push("p-3", body("refs/heads/main", "payments")).await, 202);
    assert_eq!(woken_set().await, [2]);
    // Only the name: GitHub Enterprise, or a hand-made payload.
    let by_name =
        serde_json::json!({"ref": "refs/heads/main", "repository": {"full_name": "acme/payments"}});
    assert_eq!(push("p-4", by_name).await, 202);
    assert_eq!(woken_set().await, [2]);
    // A repository or branch served nowhere here: answered, nothing woken.
    assert_eq!(push("p-5", body("refs/heads/main", "other")).await, 200);
    assert_eq!(push("p-6", body("refs/heads/dev", "fleet")).await, 200);
    assert!(woken_set().await.is_empty());

    let flux = |revision: &str| {
        let addr = addr.clone();
        let body = serde_json::to_vec(&serde_json::json!({
            "involvedObject": {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
            "reason": "ReconciliationSucceeded",
            "metadata": {"revision": revision},
        }))
        .unwrap();
        async move {
            let signature = sign(FLUX_SECRET, &body);
            post(
                &addr,
                "/hooks/flux",
                &[("x-signature", signature.as_str())],
                body,
            )
            .await
        }
    };
    assert_eq!(flux("prod@sha1:0123abcd").await, 202);
    assert_eq!(woken_set().await, [1]);
    assert_eq!(flux("main@sha1:0123abcd").await, 202);
    assert_eq!(woken_set().await, [0, 2]);
    assert_eq!(flux("sha256:0123abcd").await, 202);
    assert_eq!(woken_set().await, [0, 1, 2]);
}

#[tokio::test]
async fn healthz_always_readyz_after_a_tick_until_three_fail() {
    let (_server, addr, _, metrics) = server(false, false);
    assert_eq!(get(&addr, "/healthz").await.0, 200);
    assert_eq!(get(&addr, "/readyz").await.0, 503);
    metrics.observe(Ok(&TickReport::default()), Duration::ZERO);
    assert_eq!(get(&addr, "/readyz").await.0, 200);
    let failed = weir::engine::TickError::Deadline(Duration::from_secs(1));
    for _ in 0..3 {
        metrics.observe(Err(&failed), Duration::ZERO);
    }
    assert_eq!(get(&addr, "/readyz").await.0, 503);
    assert_eq!(get(&addr, "/healthz").await.0, 200);
    let (status, text) = get(&addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(
            "weir_ticks_total{repo=\"https://github.com/acme/fleet.git\",branch=\"main\",outcome=\"transient\"} 3"
        ),
        "{text}"
    );
    // Neither webhook is served without its secret.
    assert_eq!(post(&addr, "/hooks/github", &[], b"{}".to_vec()).await, 404);
    assert_eq!(post(&addr, "/hooks/flux", &[], b"{}".to_vec()).await, 404);
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_status(rt: &tokio::runtime::Runtime, addr: &str, path: &str) -> Option<u16> {
    let answer = rt
        .block_on(client().get(format!("http://{addr}{path}")).send())
        .ok()?;
    Some(answer.status().as_u16())
}

#[test]
fn a_signed_push_makes_weir_run_step_at_once() {
    let fixture = Fixture::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = crate::support::free_port("127.0.0.1");
    let addr = format!("127.0.0.1:{port}");
    let _weir = Killed(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "run",
                "--every",
                "1h",
                "--min-interval",
                "1s",
                "--log",
                "warn",
            ])
            .args(["--listen", &addr, "--repo", &fixture.url()])
            .arg("--cache")
            .arg(fixture.dir.path().join("cache"))
            .env("WEIR_GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("weir starts"),
    );
    until("/healthz", Duration::from_secs(20), || {
        http_status(&rt, &addr, "/healthz") == Some(200)
    });
    until(
        "initialization and /readyz",
        Duration::from_secs(30),
        || fixture.state("backend").is_some() && http_status(&rt, &addr, "/readyz") == Some(200),
    );
    fixture.bump("backend", "6.1.1");
    let before = fixture.log().len();
    let body = br#"{"ref":"refs/heads/main"}"#;
    // A wrong signature wakes nothing: with --every 1h, nothing moves.
    let wrong = sign("wrong", body);
    assert_eq!(
        rt.block_on(github_push(&addr, "x-1", body, Some(&wrong))),
        401
    );
    let quiet = Instant::now();
    crate::support::wait::poll(Duration::from_secs(2), || {
        (fixture.log().len() > before).then_some(())
    });
    assert_eq!(
        fixture.log().len(),
        before,
        "weir moved without a valid webhook"
    );
    assert!(quiet.elapsed() >= Duration::from_secs(2));

    let good = sign(GITHUB_SECRET, body);
    assert_eq!(
        rt.block_on(github_push(&addr, "x-2", body, Some(&good))),
        202
    );
    until(
        "the step of the bumped app",
        Duration::from_secs(20),
        || {
            fixture
                .steps("backend")
                .iter()
                .any(|(_, s)| s.starts_with("backend: new revision"))
        },
    );
}

/// The dashboard's expressions, with its variables set.
fn dashboard_queries(namespace: &str, app: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/weir.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    // Variables: `label_values(SELECTOR, label)`; the selector must find series.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    for var in variables.iter().filter(|v| v["type"] == "query") {
        let q = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .expect("variable query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _)| sel.to_string())
            .unwrap_or_else(|| panic!("variable query {q} is not label_values(selector, label)"));
        exprs.push(format!("count({inner})"));
    }
    assert!(exprs.len() >= 8, "{exprs:?}");
    exprs
        .into_iter()
        .map(|e| {
            e.replace("$__rate_interval", "1m")
                .replace("$__range", "5m")
                .replace("$namespace", namespace)
                .replace("$app", app)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_follows_the_weights_and_the_dashboard_has_data() {
    let fixture = Fixture::new();
    let traffic = Traffic::backend(&fixture.remote, &[], &[]);
    let (_server, addr, _, metrics) = server(false, false);
    let prometheus = Prometheus::start(&[traffic.target(), addr.clone()]);
    let mut engine = fixture.engine(Some(prometheus.url()));

    // Ticks as `weir run` does, recording each report, until `done`.
    async fn drive(
        engine: &mut weir::engine::Engine,
        metrics: &RepoMetrics,
        deadline: Duration,
        done: impl Fn(&TickReport) -> bool,
    ) {
        let start = Instant::now();
        loop {
            let ticked = Instant::now();
            let report = engine.tick().await;
            metrics.observe(report.as_ref(), ticked.elapsed());
            let report = report.expect("tick runs");
            if done(&report) {
                return;
            }
            assert!(start.elapsed() < deadline, "not done: {report:#?}");
            until_next_step(&report, deadline.saturating_sub(start.elapsed())).await;
        }
    }
    let phase_of = |r: &TickReport| {
        r.apps
            .iter()
            .find(|a| a.app == "prod/backend")
            .and_then(|a| a.phase.clone())
    };
    drive(&mut engine, &metrics, Duration::from_secs(30), |r| {
        phase_of(r).is_some()
    })
    .await;
    prometheus.wait_for(
        "sum(istio_requests_total{destination_workload=\"backend-primary\"})",
        Duration::from_secs(20),
        |v| v > 0.0,
    );
    let canary = "flagger_canary_weight{namespace=\"prod\",workload=\"backend\"}";
    let primary = "flagger_canary_weight{namespace=\"prod\",workload=\"backend-primary\"}";
    prometheus.wait_for(primary, Duration::from_secs(20), |v| v == 100.0);

    fixture.bump("backend", "6.1.1");
    // Until the canary has traffic; then Prometheus sees it.
    drive(&mut engine, &metrics, Duration::from_secs(60), |r| {
        r.apps
            .iter()
            .any(|a| a.app == "prod/backend" && a.canary_weight.unwrap_or(0) > 0)
    })
    .await;
    let during = prometheus.wait_for(canary, Duration::from_secs(20), |v| v > 0.0);
    assert!(during <= 50.0, "{during}");
    prometheus.wait_for(primary, Duration::from_secs(20), |v| v + during == 100.0);
    prometheus.wait_for(
        "flagger_canary_status{namespace=\"prod\",name=\"backend\"}",
        Duration::from_secs(20),
        |v| v == 0.0,
    );

    drive(&mut engine, &metrics, Duration::from_secs(90), |_| {
        fixture
            .state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;
    prometheus.wait_for(canary, Duration::from_secs(20), |v| v == 0.0);
    prometheus.wait_for(primary, Duration::from_secs(20), |v| v == 100.0);
    prometheus.wait_for(
        "flagger_canary_successes_total{namespace=\"prod\",name=\"backend\",deployment_strategy=\"canary\",analysis_status=\"completed\"}",
        Duration::from_secs(20),
        |v| v == 1.0,
    );
    // The weight went above 0 and back, as Prometheus recorded it.
    let peak = prometheus
        .query(&format!("max_over_time({canary}[5m])"))
        .unwrap();
    assert!(peak >= during, "{peak}");

    // Every expression of the dashboard parses and has data after the release.
    for expr in dashboard_queries("prod", "backend") {
        assert!(
            prometheus.query(&expr).is_some(),
            "the dashboard's {expr} returned nothing"
        );
    }
}
