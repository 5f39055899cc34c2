//! Snapshots (insta) of what people read: weir's rendered folder for an app, the commit
//! messages of a release and a rollback, `status` and `validate`. Revisions, commit ids and
//! times are redacted; everything else must stay byte for byte, or the change is reviewed.

use crate::primary::fake_engine;
use crate::support::repo::{Fixture, FIXTURE};
use chrono::{TimeZone, Utc};
use std::process::Command;
use std::time::Duration;
use weir::adapters::disk::DiskTree;
use weir::core::record::State;
use weir::core::spec::{Phase, Weight};
use weir::repo::kustomize::Resolver;
use weir::repo::render::Templates;
use weir::repo::source::Scanner;

fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7
            && run.chars().all(|c| c.is_ascii_hexdigit())
            && run.chars().any(|c| c.is_ascii_digit())
        {
            out.push_str("[hash]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[test]
fn weirs_folder_for_an_app() {
    let tree = DiskTree::new(FIXTURE);
    let catalog = Scanner::new(&[".".into()], Duration::from_secs(10))
        .scan(&tree)
        .unwrap();
    let (canary, _) = catalog
        .canaries
        .iter()
        .find(|(c, _)| c.name == "backend")
        .unwrap();
    let source = Resolver::default().resolve(&tree, canary).unwrap();
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
    let state = State {
        phase: Phase::Progressing,
        canary_weight: Weight::new(20).unwrap(),
        iterations: 2,
        failed_checks: 1,
        canary_revision: Some("1111111111111111111111111111111111111111".into()),
        promoted_revision: source.revision.clone(),
        promoted_commit: Some("2222222222222222222222222222222222222222".into()),
        failed_revision: None,
        primary_images: source.images.clone(),
        last_step_at: t,
        last_transition_at: t,
        message: "advance canary weight 10 -> 20".into(),
        ..State::default()
    };
    let dir = Templates::embedded()
        .unwrap()
        .render_owned(canary, &source.selector, &state, &source, &source)
        .unwrap();
    let mut all = String::new();
    for (path, bytes) in dir.files() {
        all.push_str(&format!(
            "==> {path}\n{}\n",
            String::from_utf8_lossy(&bytes)
        ));
    }
    insta::assert_snapshot!(redact(&all));
}

#[tokio::test]
async fn commit_messages_of_a_release_and_a_rollback() {
    let fixture = Fixture::new();
    let (mut engine, clock, metrics) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    fixture.bump("backend", "6.1.1");
    for _ in 0..8 {
        engine.tick().await.unwrap();
        clock.advance(Duration::from_secs(3));
    }
    fixture.bump("backend", "6.2.0");
    metrics.answer(|q| {
        Ok(
            if q.contains("response_code!~") && !q.starts_with("100 -") {
                71.09
            } else {
                28.91
            },
        )
    });
    for _ in 0..6 {
        engine.tick().await.unwrap();
        clock.advance(Duration::from_secs(3));
    }
    let mut all = String::new();
    for (sha, _) in fixture.log().iter().skip(1) {
        all.push_str(&format!("---\n{}", fixture.message(sha)));
    }
    insta::assert_snapshot!(redact(&all));
}

#[test]
fn status_and_validate_output() {
    let fixture = Fixture::new();
    let weir = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .args([
                "--repo",
                &fixture.url(),
                "--min-interval",
                "1s",
                "--log",
                "warn",
            ])
            .arg("--cache")
            .arg(fixture.dir.path().join("cli-cache"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    weir(&["step"]);
    insta::assert_snapshot!("status_table", redact(&weir(&["status"])));
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--dir", FIXTURE])
        .output()
        .unwrap();
    insta::assert_snapshot!("validate_fixture", String::from_utf8_lossy(&out.stdout));
}

/// The JSON each webhook type receives: Flagger's fields in Flagger's order, the phase
/// Flagger sends for that type (the recorded phase to confirm-rollout and rollback, the
/// reached phase to post-rollout and event, Progressing to the rest), metadata as strings.
#[test]
fn webhook_payloads_per_type() {
    let kinds = [
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-traffic-increase",
        "confirm-promotion",
        "post-rollout",
        "rollback",
        "event",
    ];
    let hooks: String = kinds
        .iter()
        .map(|k| {
            format!(
                "      - name: {k}-hook\n        type: {k}\n        url: http://flagger-loadtester.test/\n        metadata:\n          type: cmd\n          cmd: \"hey -z 1m http://podinfo-canary.test:9898/\"\n"
            )
        })
        .collect();
    let text = format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: podinfo\n  namespace: test\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: podinfo\n  service:\n    port: 9898\n  analysis:\n    interval: 1m\n    stepWeight: 10\n    maxWeight: 50\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n    webhooks:\n{hooks}"
    );
    let scan = weir::core::spec::scan_file("canary.yaml", text.as_bytes(), Duration::from_secs(10));
    let (canary, _) = scan.canaries.into_iter().next().unwrap().unwrap();
    let mut out = String::new();
    for hook in &canary.analysis.webhooks {
        let call = weir::core::plan::gates::hook_call(
            &canary,
            hook,
            "Waiting",
            "9f2c1e0d3b4a59687766554433221100ffeeddcc",
            hook.metadata.clone(),
        );
        out.push_str(&format!(
            "{}: {}\n",
            hook.kind,
            serde_json::to_string(&call.payload).unwrap()
        ));
    }
    insta::assert_snapshot!(out);
}
