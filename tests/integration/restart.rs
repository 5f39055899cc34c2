//! `weir run` killed in the middle of a rollout and started again: the rollout completes
//! from the state recorded in Git, and no step is repeated or taken early.

use crate::support::repo::{assert_steps, git, Fixture};
use crate::support::wait::until;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use weir::core::spec::Phase;

const CANARY: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: backend
  namespace: prod
  annotations:
    weir.dev/allow-no-evidence: \"true\"
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: backend
  service:
    port: 9898
  analysis:
    interval: 2s
    threshold: 2
    maxWeight: 50
    stepWeight: 25
";

fn start(fixture: &Fixture) -> Child {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "run",
            "--every",
            "300ms",
            "--min-interval",
            "1s",
            "--log",
            "warn",
        ])
        .args(["--repo", &fixture.url()])
        .arg("--cache")
        .arg(fixture.dir.path().join("cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir starts")
}

#[test]
fn killed_mid_rollout_weir_resumes_without_repeating_a_step() {
    let fixture = Fixture::with(|work| {
        std::fs::write(work.join("apps/backend/canary.yaml"), CANARY).unwrap();
    });
    let mut weir = start(&fixture);
    until("initialization", Duration::from_secs(30), || {
        fixture.state("backend").is_some()
    });
    fixture.bump("backend", "6.1.1");
    until("the first advance", Duration::from_secs(30), || {
        fixture
            .log()
            .iter()
            .any(|(_, s)| s == "backend: advance canary weight 0 -> 25")
    });
    weir.kill().unwrap(); // SIGKILL: no chance to clean up
    weir.wait().unwrap();

    let mut weir = start(&fixture);
    until("promotion", Duration::from_secs(60), || {
        fixture
            .state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    });
    // SIGTERM ends the loop after the tick in flight, with success.
    Command::new("kill")
        .args(["-TERM", &weir.id().to_string()])
        .status()
        .unwrap();
    let status = weir.wait().unwrap();
    assert!(status.success(), "{status:?}");

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
        ],
    );
    // Each step came at least one interval after the previous one.
    let times: Vec<_> = steps
        .iter()
        .map(|(sha, _)| fixture.state_at(sha, "backend").unwrap().last_step_at)
        .collect();
    for pair in times.windows(2).skip(1) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::seconds(2),
            "{times:?}"
        );
    }
    // The user's branch history is intact (fast-forward only).
    let ci_head = git(&fixture.work, &["rev-parse", "HEAD"]);
    let merge_base = git(
        &fixture.remote,
        &["merge-base", "--is-ancestor", ci_head.trim(), "main"],
    );
    assert!(merge_base.is_empty());
}
