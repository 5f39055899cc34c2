//! weir against services that misbehave: a Prometheus that echoes the credentials it was sent,
//! one that never stops sending, one that answers slowly, and a Git host that accepts the
//! connection and then says nothing. Each is a failed check or a bounded error, never a
//! promotion, a secret in the output or a process that hangs.

use crate::support::faults::{FaultyPrometheus, Mode};
use crate::support::git_http::GitHttp;
use crate::support::repo::{git, Fixture};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use weir::core::spec::Phase;

const TOKEN: &str = "prom-bearer-s3cr3t";
const PASSWORD: &str = "prom-basic-s3cr3t";
const HEADER: &str = "prom-header-s3cr3t";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// `weir <args> --repo <fixture>` with a cache of its own and nothing from the environment.
fn weir(fixture: &Fixture, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .args(["--repo", &fixture.url(), "--min-interval", "1s"])
        .arg("--cache")
        .arg(fixture.dir.path().join("cli-cache"))
        .env_remove("WEIR_PROMETHEUS")
        .env_remove("WEIR_GIT_TOKEN")
        .output()
        .unwrap()
}

/// Runs `weir step` with these extra arguments until the backend's record says `done`, and
/// returns everything it printed.
fn step_until(fixture: &Fixture, extra: &[&str], done: impl Fn(&Fixture) -> bool) -> String {
    let mut printed = String::new();
    let start = Instant::now();
    let mut args = vec!["step", "--log", "info"];
    args.extend_from_slice(extra);
    loop {
        let out = weir(fixture, &args);
        printed.push_str(&text(&out.stdout));
        printed.push_str(&text(&out.stderr));
        assert!(out.status.success(), "{printed}");
        if done(fixture) {
            return printed;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not done; log:\n{:#?}\n{printed}",
            fixture.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every commit of the remote, with its patch: what Git keeps forever.
fn history(fixture: &Fixture) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(&fixture.remote)
        .args(["log", "-p", "--format=%H%n%B", "main"])
        .output()
        .unwrap();
    text(&out.stdout)
}

#[test]
fn a_prometheus_that_echoes_credentials_fails_the_release_and_the_secrets_go_nowhere() {
    // A 500 is an unreachable server: counted at once here (Flagger's rule), so the
    // release fails within the test.
    let fixture = Fixture::with_outage_grace("0s");
    let prometheus = FaultyPrometheus::start(Mode::EchoHeaders);
    let url = prometheus.url();
    let auth: [&[&str]; 2] = [
        &["--prometheus-token", TOKEN],
        &[
            "--prometheus-user",
            "weir",
            "--prometheus-password",
            PASSWORD,
        ],
    ];
    let mut printed = String::new();
    for (round, auth) in auth.iter().enumerate() {
        let mut extra = vec![
            "--prometheus",
            url.as_str(),
            "--prometheus-header",
            "X-Scope-OrgID: prom-header-s3cr3t",
        ];
        extra.extend_from_slice(auth);
        printed.push_str(&step_until(&fixture, &extra, |f| {
            f.state("backend").is_some()
        }));
        fixture.bump("backend", &format!("6.2.{round}"));
        printed.push_str(&step_until(&fixture, &extra, |f| {
            f.state("backend").is_some_and(|s| s.phase == Phase::Failed)
        }));
        let status = weir(&fixture, &["status", "--output", "json"]);
        printed.push_str(&text(&status.stdout));
        printed.push_str(&text(&status.stderr));
    }

    // The echo was read (the check failed on the server's 500) ...
    assert!(printed.contains("HTTP 500"), "{printed}");
    let failed = fixture.state("backend").unwrap();
    assert_eq!(failed.canary_weight.get(), 0);
    // ... and nothing weir wrote anywhere holds a credential, in any form.
    let basic = weir::core::secret::basic_credential("weir", PASSWORD);
    let all = format!("{printed}\n{}", history(&fixture));
    for secret in [TOKEN, PASSWORD, HEADER, basic.as_str()] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
    // Never promoted.
    assert!(!fixture.log().iter().any(|(_, s)| s.contains("promot")));
}

/// A Canary that names its own metrics server gets weir's queries, never its credentials, and
/// what that server answers is not copied into Git.
#[test]
fn a_metrics_server_named_in_the_repository_gets_no_credentials() {
    let prometheus = FaultyPrometheus::start(Mode::Value(100.0));
    let theirs = FaultyPrometheus::start(Mode::EchoHeaders);
    let fixture = Fixture::new();
    let extra = [
        "--prometheus",
        &prometheus.url(),
        "--prometheus-token",
        TOKEN,
        "--prometheus-header",
        "X-Scope-OrgID: prom-header-s3cr3t",
    ]
    .map(str::to_string);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    step_until(&fixture, &extra, |f| f.state("backend").is_some());
    let server = theirs.url();
    fixture.push_change("backend: our own metrics server", |w| {
        let file = w.join("apps/backend/canary.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let text = text.replacen("spec:\n", &format!("spec:\n  metricsServer: {server}\n"), 1);
        std::fs::write(file, text).unwrap();
    });
    fixture.bump("backend", "6.2.0");
    let printed = step_until(&fixture, &extra, |f| {
        f.state("backend").is_some_and(|s| s.phase == Phase::Failed)
    });
    // Queried, and refused: the built-in metric went to their server.
    let seen = theirs.headers_seen().join("\n");
    assert!(seen.contains("POST /api/v1/query"), "{seen}");
    for secret in [TOKEN, HEADER, "authorization", "x-scope-orgid"] {
        assert!(
            !seen
                .to_ascii_lowercase()
                .contains(&secret.to_ascii_lowercase()),
            "{secret} was sent:\n{seen}"
        );
    }
    // The configured Prometheus still got them.
    let ours = prometheus.headers_seen().join("\n").to_ascii_lowercase();
    assert!(
        ours.contains(&format!("authorization: bearer {TOKEN}")),
        "{ours}"
    );
    // Their page is not copied anywhere.
    let all = format!("{printed}\n{}", history(&fixture));
    assert!(all.contains("is not the configured Prometheus"), "{all}");
    assert!(!all.contains("your request was"), "{all}");
}

#[test]
fn an_endless_answer_is_a_failed_check_after_a_bounded_read() {
    let fixture = Fixture::new();
    let prometheus = FaultyPrometheus::start(Mode::Value(100.0));
    let url = prometheus.url();
    let extra = ["--prometheus", url.as_str()];
    step_until(&fixture, &extra, |f| f.state("backend").is_some());
    prometheus.set(Mode::Endless);
    fixture.bump("backend", "6.2.0");
    let printed = step_until(&fixture, &extra, |f| {
        f.state("backend").is_some_and(|s| s.phase == Phase::Failed)
    });
    assert!(printed.contains("larger than"), "{printed}");
    // Three gates per check, two checks to fail: a read that stopped at the limit sends
    // little more than the limit (plus socket buffers) each time, far from the 100 MiB
    // the server offers.
    let sent = prometheus.bytes_sent();
    assert!(sent < 6 * 8 * 1024 * 1024, "{sent} bytes were sent");
    assert!(!fixture.log().iter().any(|(_, s)| s.contains("promot")));
}

#[test]
fn a_slow_prometheus_is_a_timeout_and_the_gates_wait_together() {
    // A timeout is an unreachable server: counted at once here (Flagger's rule).
    let fixture = Fixture::with_outage_grace("0s");
    let prometheus = FaultyPrometheus::start(Mode::Value(100.0));
    let url = prometheus.url();
    let extra = ["--prometheus", url.as_str(), "--prometheus-timeout", "1s"];
    step_until(&fixture, &extra, |f| f.state("backend").is_some());
    prometheus.set(Mode::Slow(Duration::from_secs(3), 100.0));
    fixture.bump("backend", "6.2.0");
    let printed = step_until(&fixture, &extra, |f| {
        f.state("backend").is_some_and(|s| s.phase == Phase::Failed)
    });
    assert!(printed.contains("did not answer within 1s"), "{printed}");
    // The backend's three gates were asked at once, not one after the other.
    assert!(
        prometheus.most_in_flight() >= 2,
        "{}",
        prometheus.most_in_flight()
    );
    assert!(!fixture.log().iter().any(|(_, s)| s.contains("promot")));
}

#[test]
fn a_git_host_that_hangs_is_an_error_within_the_git_timeout() {
    let server = GitHttp::start_hanging();
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["step", "--repo", &server.url("remote.git")])
        .args(["--git-timeout", "2s", "--log", "warn"])
        .arg("--cache")
        .arg(cache.path())
        .env_remove("WEIR_GIT_TOKEN")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot fetch"), "{stderr}");
    // A liveness bound, not a timing assertion: without the timeout this never ends.
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn run_stops_on_sigterm_while_the_git_host_hangs() {
    let server = GitHttp::start_hanging();
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--repo", &server.url("remote.git")])
        .args(["--git-timeout", "10m", "--every", "1s", "--log", "info"])
        .arg("--cache")
        .arg(cache.path())
        .env_remove("WEIR_GIT_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the fetch is under way (the server saw the request), then ask it to stop.
    let started = Instant::now();
    while server.requests().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "weir never connected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "weir run did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
}

/// A record edited by hand in weir's folder is reported by `validate` in the checkout, with
/// file, line and field, before weir ever reads it from the branch.
#[test]
fn validate_reads_the_records_in_the_checkout() {
    let fixture = Fixture::new();
    let out = weir(&fixture, &["step"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    git(&fixture.work, &["pull", "-q", "origin", "main"]);
    let record = fixture.work.join("apps/backend.weir/state.yaml");
    let body = std::fs::read_to_string(&record).unwrap();
    std::fs::write(
        &record,
        body.replace("canaryWeight: 0", "canaryWeight: 250"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--min-interval", "1s", "--dir"])
        .arg(&fixture.work)
        .output()
        .unwrap();
    let printed = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("apps/backend.weir/state.yaml:10:17: error: status.canaryWeight:"),
        "{printed}"
    );
}

/// A team that adds a Canary claiming names an app weir already runs (its Service name, its
/// Deployment, its Canary name) is refused; the running app's release goes on in the same
/// tick. Before anything runs, both are refused (the corpus covers that).
#[test]
fn a_newcomer_cannot_stop_a_running_app_by_taking_its_names() {
    let claims = crate::corpus::cross_app_cases();
    let cases: Vec<_> = claims
        .iter()
        .filter(|c| {
            matches!(
                c.name,
                "a Service name of another app"
                    | "the same Canary twice"
                    | "two Canaries on one Deployment"
            )
        })
        .collect();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let fixture = Fixture::new();
        let out = weir(&fixture, &["step"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        fixture.bump("frontend", "6.1.1");
        fixture.push_change(case.name, |w| (case.apply)(w));

        let out = weir(&fixture, &["step"]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {stdout}{stderr}",
            case.name
        );
        let state = fixture.state("frontend").unwrap();
        assert_eq!(state.phase, Phase::Progressing, "{}: {stderr}", case.name);
        // No error is the running app's own (its file before `error:`).
        let its_own = |l: &&str| {
            matches!(
                (l.find("apps/frontend/canary.yaml:"), l.find(": error:")),
                (Some(file), Some(error)) if file < error
            )
        };
        assert!(
            !stderr.lines().any(|l| its_own(&l)),
            "{}: the running app was refused:\n{stderr}",
            case.name
        );
        assert!(
            stderr.contains("also at apps/frontend/canary.yaml"),
            "{}: the newcomer's error names the running app:\n{stderr}",
            case.name
        );
        // Nothing was written for the newcomer.
        let newcomer = ["apps/other.weir/state.yaml", "apps/mirror.weir/state.yaml"];
        assert!(newcomer.iter().all(|f| fixture.show("main", f).is_none()));
    }
}

/// The same for an object added to another app's build with the name of what weir already
/// writes for a running app: the app whose build adds it is refused, not the running one.
#[test]
fn an_object_added_under_a_running_apps_name_refuses_the_app_that_adds_it() {
    let claims = crate::corpus::cross_app_cases();
    let case = claims
        .iter()
        .find(|c| c.name == "a primary named as another app's object")
        .unwrap();
    let fixture = Fixture::new();
    let out = weir(&fixture, &["step"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    fixture.bump("frontend", "6.1.1");
    fixture.push_change(case.name, |w| (case.apply)(w));
    let before = fixture.state("backend");

    let out = weir(&fixture, &["step"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(fixture.state("frontend").unwrap().phase, Phase::Progressing);
    assert_eq!(fixture.state("backend"), before, "{stderr}");
    assert!(
        stderr.contains("apps/backend/canary.yaml:4:9: error: metadata.name: apps/backend/extra.yaml adds Deployment prod/frontend-primary, which weir already writes in weir's folder for prod/frontend"),
        "{stderr}"
    );
}
