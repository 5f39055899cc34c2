//! The command-line contract: `plan` shows the commit and pushes nothing, `step` pushes one,
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

#[test]
fn plan_shows_the_diff_and_pushes_nothing_then_step_pushes_it() {
    let fixture = Fixture::new();
    let out = weir(&fixture, &["plan"]);
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

    let out = weir(&fixture, &["plan"]);
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
            "APP            PHASE        PRIMARY  CANARY  FAILED  REVISION  NEXT STEP  MESSAGE\n"
        ),
        "{table}"
    );
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
