//! The command-line contract: `step --dry-run` shows the commit and pushes nothing, `step` pushes one,
//! `status` reports every app, and secrets never reach the output.

use crate::support::repo::Fixture;
use std::process::{Command, Output};

fn weir(fixture: &Fixture, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .args(["--repo", &fixture.url(), "--min-interval", "1s"])
        .arg("--cache")
        .arg(fixture.dir.path().join("cli-cache"))
        .env_remove("WEIR_PROMETHEUS")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Waits until the backend's next step is due on the wall clock (`interval` after the step
/// its record names), so that a `weir step` that writes nothing does so for its own reason.
fn until_due(fixture: &Fixture, interval: std::time::Duration) {
    let due = fixture
        .state("backend")
        .map(|s| s.last_step_at + chrono::Duration::from_std(interval).unwrap());
    crate::support::wait::until(
        "the next step to be due",
        interval + std::time::Duration::from_secs(5),
        || due.is_none_or(|d| chrono::Utc::now() >= d),
    );
}

#[test]
fn a_dry_run_shows_the_diff_and_pushes_nothing_then_step_pushes_it() {
    let fixture = Fixture::new();
    let out = weir(&fixture, &["step", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("weir: 2 rollouts moved\n"), "{stdout}");
    for file in [
        "primary/kustomization.yaml",
        "primary/source/backend/deployment.yaml",
        "guards.yaml",
        "services.yaml",
        "destinationrules.yaml",
        "virtualservice.yaml",
        "state.yaml",
        "kustomization.yaml",
    ] {
        assert!(
            stdout.contains(&format!("+++ b/apps/backend.weir/{file}")),
            "{file}\n{stdout}"
        );
    }
    assert!(stdout.contains("+          weight: 100\n"), "{stdout}");
    assert_eq!(fixture.log().len(), 1, "plan pushed nothing");

    let out = weir(&fixture, &["step"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("pushed "),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(fixture.log().len(), 2);

    let out = weir(&fixture, &["step", "--dry-run"]);
    assert_eq!(text(&out.stdout), "nothing to commit\n");

    let out = weir(&fixture, &["status", "--output", "json"]);
    assert!(out.status.success());
    let apps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prod/backend", "prod/frontend"]);
    assert_eq!(apps[0]["phase"], "Initialized");
    assert_eq!(apps[0]["primary_weight"], 100);
    assert_eq!(apps[0]["primary_images"][0], "ghcr.io/acme/backend:6.1.0");

    let out = weir(&fixture, &["status"]);
    let table = text(&out.stdout);
    assert!(
        table.starts_with(
            "APP            PHASE        PRIMARY  CANARY  FAILED  REVISION  NEXT STEP  APPLIED                    PODS  MESSAGE\n"
        ),
        "{table}"
    );
    // Without a cluster view, Git alone: a visible choice.
    assert!(table.contains("unknown (no cluster view)"), "{table}");
    assert_eq!(apps[0]["applied"], "unknown (no cluster view)");
    assert!(
        table.contains("prod/backend   Initialized  100%     0%      0/2"),
        "{table}"
    );
}

#[test]
fn tokens_never_reach_the_output() {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "step",
            "--repo",
            "https://x-access-token:s3cr3t-url@127.0.0.1:9/acme/config.git",
        ])
        .args([
            "--git-token",
            "s3cr3t-flag",
            "--prometheus-token",
            "s3cr3t-prom",
        ])
        .arg("--cache")
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        all.contains("cannot fetch https://***@127.0.0.1:9/acme/config.git"),
        "{all}"
    );
    assert!(!all.contains("s3cr3t"), "{all}");
}

/// `weir validate | head -1`: a reader that goes away ends the output quietly, with the
/// command's own exit code, never a panic.
#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--dir", crate::support::repo::FIXTURE])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// `weir approve|abort|retry|pause|resume` each make one commit to the app's control file,
/// which weir carries, acts on, and (for retry) clears once acted on; every commit builds.
#[test]
fn control_commands_commit_requests_that_the_next_step_acts_on() {
    use crate::support::repo::flux_build;
    use weir::core::spec::Phase;
    let fixture = Fixture::new();
    let control = || fixture.show("main", "apps/backend.weir/control.yaml");
    let ok = |args: &[&str]| {
        let out = weir(&fixture, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    // Nothing to control before weir has initialised the app.
    let out = weir(&fixture, &["pause", "backend"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not initialised yet"),
        "{}",
        text(&out.stderr)
    );
    ok(&["step"]);
    fixture.bump("backend", "6.1.1");
    ok(&["step"]);
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Progressing);

    // Pause: a commit, and then no step while paused.
    let pushed = ok(&["pause", "backend"]);
    assert!(
        pushed.contains("pause the rollout (weir pause)"),
        "{pushed}"
    );
    assert!(control().unwrap().contains("paused: true"));
    until_due(&fixture, std::time::Duration::from_secs(3));
    assert_eq!(ok(&["step"]).trim(), "nothing to commit");
    ok(&["resume", "prod/backend"]);
    assert_eq!(control(), None, "an empty control file is removed");

    // Abort: the next step rolls the revision back.
    ok(&["abort", "backend"]);
    let abort = control().unwrap();
    let revision = fixture.state("backend").unwrap().canary_revision.unwrap();
    assert!(abort.contains(&format!("abort: {revision}")), "{abort}");
    ok(&["step"]);
    let failed = fixture.state("backend").unwrap();
    assert_eq!(failed.phase, Phase::Failed);
    assert!(
        control().is_some(),
        "weir carries the control file it did not consume"
    );

    // Retry: the analysis starts again, and the request is removed with that step.
    let out = weir(&fixture, &["retry", "backend", "--revision", "0000000"]);
    assert!(
        !out.status.success(),
        "a retry of another revision is refused"
    );
    ok(&["retry", "backend"]);
    assert!(control().unwrap().contains("retry: "));
    ok(&["step"]);
    let retried = fixture.state("backend").unwrap();
    assert_eq!(retried.phase, Phase::Progressing);
    // The retry is consumed, and the abort of the same revision with it.
    assert_eq!(control(), None);
    for (rev, _) in fixture.log().iter().take(8) {
        flux_build(&fixture, rev);
    }
}

/// A confirm-promotion gate on a flagger-loadtester that stays closed holds the release in
/// WaitingPromotion without counting a failed check, step after step; `weir approve` opens it
/// with a reviewed commit, and the next step promotes.
#[test]
fn a_closed_gate_waits_until_weir_approve() {
    use crate::support::loadtester::LoadTester;
    use weir::core::spec::Phase;
    let loadtester = LoadTester::start();
    let url = loadtester.url();
    let fixture = Fixture::with(|work| {
        let path = work.join("apps/backend/canary.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let head = &text[..text.find("  analysis:").unwrap()];
        let analysis = format!(
            "  analysis:\n    interval: 1s\n    threshold: 2\n    stepWeight: 50\n    maxWeight: 50\n    webhooks:\n      - name: approval\n        type: confirm-promotion\n        url: {url}/gate/check\n"
        );
        std::fs::write(&path, format!("{head}{analysis}")).unwrap();
    });
    let step = || {
        until_due(&fixture, std::time::Duration::from_secs(1));
        let out = weir(&fixture, &["step"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    step();
    fixture.bump("backend", "6.1.1");
    let mut phases = Vec::new();
    for _ in 0..4 {
        step();
        phases.push(fixture.state("backend").unwrap().phase);
    }
    assert_eq!(
        phases,
        [
            Phase::Progressing,
            Phase::Progressing,
            Phase::WaitingPromotion,
            Phase::WaitingPromotion
        ]
    );
    let waiting = fixture.state("backend").unwrap();
    assert_eq!(waiting.failed_checks, 0);
    assert_eq!(waiting.canary_weight.get(), 50);
    assert!(loadtester.calls_to("/gate/check").len() >= 2);
    let out = weir(&fixture, &["approve", "backend"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(weir approve)"));
    step();
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Promoting);
}

/// `--github-statuses`: every commit weir makes gets a status per app it moves, and each
/// release a Deployment whose statuses follow the phases, on a GitHub stand-in.
#[test]
fn steps_are_reported_on_github_as_statuses_and_deployments() {
    use crate::support::github::{GitHubStandIn, TOKEN};
    let fixture = Fixture::with(|work| {
        let canary = work.join("apps/backend/canary.yaml");
        crate::support::repo::edit(&canary, 0, "spec.analysis.interval", "1s");
        let text = std::fs::read_to_string(&canary).unwrap();
        std::fs::write(
            &canary,
            text.replace("  analysis:\n", "  skipAnalysis: true\n  analysis:\n"),
        )
        .unwrap();
    });
    let hub = GitHubStandIn::start("acme", "gitops-istio", &fixture.remote);
    let step = || {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["step", "--repo", &fixture.url(), "--min-interval", "1s"])
            .arg("--cache")
            .arg(fixture.dir.path().join("cli-cache"))
            .args([
                "--github-statuses",
                "--github-repository",
                "acme/gitops-istio",
            ])
            .args(["--github-api", &hub.url()])
            .env("WEIR_GITHUB_TOKEN", TOKEN)
            .env_remove("WEIR_PROMETHEUS")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        for o in [&out.stdout, &out.stderr] {
            assert!(!text(o).contains(TOKEN));
        }
    };
    step();
    fixture.bump("backend", "6.1.1");
    for _ in 0..10 {
        until_due(&fixture, std::time::Duration::from_secs(1));
        step();
        if fixture
            .state("backend")
            .is_some_and(|s| s.phase == weir::core::spec::Phase::Succeeded)
        {
            break;
        }
    }
    let backend = fixture.steps("backend");
    assert_eq!(
        fixture.state("backend").unwrap().phase,
        weir::core::spec::Phase::Succeeded,
        "{backend:#?}"
    );

    // A status on each commit that moved the backend: pending while the release is under
    // way, success once promoted.
    let statuses = hub.statuses();
    let on = |sha: &str| -> Vec<String> {
        statuses
            .iter()
            .filter(|s| s.sha == sha && s.context == "weir/prod/backend")
            .map(|s| s.state.clone())
            .collect()
    };
    let release: Vec<&(String, String)> = backend
        .iter()
        .filter(|(_, subject)| !subject.contains("initialization"))
        .collect();
    assert!(release.len() >= 3, "{backend:#?}");
    for (sha, subject) in &release[..release.len() - 1] {
        assert_eq!(on(sha), vec!["pending"], "{subject}");
    }
    let (last, _) = release.last().unwrap();
    assert_eq!(on(last), vec!["success"]);
    let init = &fixture.log()[1].0;
    assert_eq!(on(init), vec!["success"], "the initialisation");
    assert!(statuses
        .iter()
        .any(|s| &s.sha == init && s.context == "weir/prod/frontend" && s.state == "success"));

    // One Deployment per release: the backend's initialisation and its release; the
    // release's statuses follow its steps and end in success.
    let deployments = hub.deployments();
    let backend_deployments: Vec<_> = deployments
        .iter()
        .filter(|d| d.environment == "prod/backend")
        .collect();
    assert_eq!(backend_deployments.len(), 2, "{deployments:#?}");
    assert_eq!(
        deployments
            .iter()
            .filter(|d| d.environment == "prod/frontend")
            .count(),
        1
    );
    let release_deployment = backend_deployments[1];
    assert_eq!(release_deployment.git_ref, "main");
    assert_eq!(release_deployment.payload["app"], "backend");
    let states: Vec<String> = hub
        .deployment_statuses()
        .into_iter()
        .filter(|s| s.deployment == release_deployment.id)
        .map(|s| s.state)
        .collect();
    assert_eq!(states.len(), release.len(), "{states:?}");
    assert!(
        states[..states.len() - 1]
            .iter()
            .all(|s| s == "in_progress"),
        "{states:?}"
    );
    assert_eq!(states.last().map(String::as_str), Some("success"));
}

/// `weir status --mode pr` shows the step an app's pull request branch carries while it
/// waits, read from Git alone; in commit mode, and once the branch is no newer than `main`,
/// nothing is shown.
#[test]
fn status_in_pr_mode_shows_the_step_waiting_in_its_branch() {
    use crate::support::repo::git;
    let fixture = Fixture::new();
    let out = weir(&fixture, &["step"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let proposed = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = weir(&fixture, &[&["status", "--output", "json"], args].concat());
        assert!(out.status.success(), "{}", text(&out.stderr));
        let apps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let apps = apps.as_array().unwrap().clone();
        apps.iter().map(|a| a["proposed"].clone()).collect()
    };
    assert_eq!(
        proposed(&["--mode", "pr"]),
        [const { serde_json::Value::Null }; 2]
    );

    // A step waiting in the backend's branch: a record newer than main's.
    git(&fixture.work, &["pull", "-q", "--rebase", "origin", "main"]);
    git(&fixture.work, &["checkout", "-qb", "weir/prod/backend"]);
    let file = fixture.work.join("apps/backend.weir/state.yaml");
    let record = std::fs::read_to_string(&file).unwrap();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let record: String = record
        .lines()
        .map(|l| match l.trim_start().split_once(':') {
            Some(("lastStepAt", _)) => format!("  lastStepAt: '{now}'\n"),
            Some(("message", _)) => "  message: advance canary weight 0 -> 10\n".to_string(),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&file, record).unwrap();
    git(
        &fixture.work,
        &["commit", "-qam", "a step waiting for review"],
    );
    git(
        &fixture.work,
        &["push", "-q", "origin", "weir/prod/backend"],
    );
    git(&fixture.work, &["checkout", "-q", "main"]);

    assert_eq!(
        proposed(&["--mode", "pr"]),
        [
            serde_json::json!(
                "waiting in weir/prod/backend: advance canary weight 0 -> 10 (phase Initialized, canary weight 0%)"
            ),
            serde_json::Value::Null
        ]
    );
    assert_eq!(proposed(&[]), [const { serde_json::Value::Null }; 2]);
    let out = weir(&fixture, &["status", "--mode", "pr"]);
    let table = text(&out.stdout);
    assert!(
        table.contains("waiting in weir/prod/backend: advance canary weight 0 -> 10"),
        "{table}"
    );
}

#[test]
fn a_webhook_alias_calls_an_in_cluster_address_at_its_stand_in() {
    let tester = crate::support::loadtester::LoadTester::start();
    let fixture = Fixture::with(|work| {
        crate::support::repo::fast_backend(work);
        let canary = work.join("apps/backend/canary.yaml");
        let text = std::fs::read_to_string(&canary).unwrap().replacen(
            "  analysis:\n",
            "  analysis:\n    webhooks:\n      - name: acceptance\n        type: pre-rollout\n        url: http://flagger-loadtester.prod/gate/approve\n",
            1,
        );
        std::fs::write(&canary, text).unwrap();
    });
    let alias = format!("http://flagger-loadtester.prod/={}/", tester.url());
    let step = |fixture: &Fixture| weir(fixture, &["step", "--webhook-alias", &alias]);
    assert!(step(&fixture).status.success());
    fixture.bump("backend", "6.1.1");
    assert!(step(&fixture).status.success());
    until_due(&fixture, std::time::Duration::from_secs(3));
    let out = step(&fixture);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The pre-rollout hook reached the stand-in, under the path the Canary names.
    let calls = tester.calls_to("/gate/approve");
    assert_eq!(
        calls.len(),
        1,
        "{:?}",
        tester.calls().iter().map(|c| &c.path).collect::<Vec<_>>()
    );
    assert_eq!(calls[0].payload().name, "backend");
    assert_eq!(
        fixture.steps("backend").last().unwrap().1,
        "backend: advance canary weight 0 -> 25"
    );
    // A malformed alias is refused before anything runs.
    let bad = weir(
        &fixture,
        &["step", "--webhook-alias", "flagger-loadtester.prod"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("is not FROM=TO"),
        "{}",
        text(&bad.stderr)
    );
}
