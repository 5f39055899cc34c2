//! Bad input: every error names file, line, column and field and says what is accepted;
//! `weir validate` lists them all; a tick commits nothing for a broken app while the others
//! go on.

use crate::support::repo::{edit, Fixture, FIXTURE};
use std::path::Path;
use std::process::Command;

fn canary(name: &str, target: &str, threshold: &str, step: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: {name}
  namespace: prod
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {target}
  service:
    port: 9898
  analysis:
    interval: 30s
    threshold: {threshold}
    stepWeight: {step}
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 99
"
    )
}

fn app(root: &Path, name: &str, canary_text: String) {
    let dir = root.join("apps").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let deployment = std::fs::read_to_string(format!("{FIXTURE}/apps/backend/deployment.yaml"))
        .unwrap()
        .replace("backend", name);
    std::fs::write(dir.join("deployment.yaml"), deployment).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n  - deployment.yaml\n",
    )
    .unwrap();
    std::fs::write(dir.join("canary.yaml"), canary_text).unwrap();
}

#[test]
fn validate_names_file_line_column_and_field_of_every_error() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    app(r, "a", canary("a", "a", "5", "150"));
    app(r, "b", canary("b", "b", "five", "10"));
    app(
        r,
        "c",
        canary("c", "c", "5", "10").replace("    port: 9898", "    port: [9898"),
    );
    app(
        r,
        "d",
        canary("d", "d", "5", "10")
            + "      - name: error-rate\n        templateRef:\n          name: error-rate\n          namespace: istio-system\n        thresholdRange:\n          max: 1\n",
    );
    app(r, "e", canary("e", "missing", "5", "10"));
    app(r, "f", canary("f", "f", "5", "10"));
    std::fs::write(
        r.join("apps/f/kustomization.yaml"),
        "resources:\n  - deployment.yaml\n  - ../../../outside\n",
    )
    .unwrap();
    app(
        r,
        "g",
        canary("g", "g", "5", "10").replace("stepWeight", "stepWieght"),
    );
    app(
        r,
        "h",
        canary("h", "h", "5", "10").replace("interval: 30s", "interval: 5s"),
    );
    app(r, "ok", canary("ok", "ok", "5", "10"));

    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--dir"])
        .arg(r)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let expected = "\
apps/a/canary.yaml:16:17: error: spec.analysis.stepWeight: 150 is not a weight; use a percentage from 1 to 100
apps/b/canary.yaml:15:16: error: spec.analysis.threshold: invalid type: string \"five\", expected a whole number
apps/c/canary.yaml:13:11: error: (syntax): broken YAML: illegal placement of ':' indicator
apps/g/canary.yaml:16:5: error: spec.analysis.stepWieght: unknown field `stepWieght`, expected one of `interval`, `iterations`, `mirror`, `mirrorWeight`, `maxWeight`, `stepWeight`, `stepWeights`, `stepWeightPromotion`, `threshold`, `primaryReadyThreshold`, `canaryReadyThreshold`, `alerts`, `metrics`, `webhooks`, `match`, `sessionAffinity`
apps/h/canary.yaml:14:15: error: spec.analysis.interval: 5s is below the minimum of 10s; use at least that
apps/d/canary.yaml:21:9: error: spec.analysis.metrics[1].templateRef: MetricTemplate istio-system/error-rate is not in the repository; known templates: none
apps/e/canary.yaml:10:11: error: spec.targetRef.name: Deployment `missing` is not among the manifests of apps/e (looked in 1 files)
apps/f/kustomization.yaml:3:5: error: resources[1]: `../../../outside` points outside the repository
apps/d/kustomization.yaml:3:1: warning: components: without weir's canary-replicas component, the canary Deployment keeps running between releases, a rolled-back build included (Flagger scales it to zero); add this line at the end of the file: `components: [../d.weir/canary-replicas]`
apps/ok/kustomization.yaml:3:1: warning: components: without weir's canary-replicas component, the canary Deployment keeps running between releases, a rolled-back build included (Flagger scales it to zero); add this line at the end of the file: `components: [../ok.weir/canary-replicas]`
8 Canary, 0 MetricTemplate, 8 error(s), 2 warning(s)
";
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    // The fixture itself is valid; its apps do not list weir's canary-replicas component,
    // which is worth a warning each, not an error.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--dir", FIXTURE])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\
apps/backend/kustomization.yaml:18:1: warning: components: without weir's canary-replicas component, the canary Deployment keeps running between releases, a rolled-back build included (Flagger scales it to zero); add this line at the end of the file: `components: [../backend.weir/canary-replicas]`
apps/frontend/kustomization.yaml:18:1: warning: components: without weir's canary-replicas component, the canary Deployment keeps running between releases, a rolled-back build included (Flagger scales it to zero); add this line at the end of the file: `components: [../frontend.weir/canary-replicas]`
2 Canary, 2 MetricTemplate, 0 error(s), 2 warning(s)
"
    );
    assert!(out.status.success());
}

#[tokio::test]
async fn a_broken_app_gets_nothing_committed_while_the_others_go_on() {
    let fixture = Fixture::with(|work| {
        edit(
            &work.join("apps/frontend/canary.yaml"),
            0,
            "spec.analysis.threshold",
            "-1",
        );
    });
    let mut engine = fixture.engine(None);
    let report = engine.tick().await.unwrap();
    assert_eq!(
        report.message.as_deref(),
        Some("backend: initialization done, primary serves all traffic\n")
    );
    assert!(fixture
        .show("main", "apps/backend.weir/state.yaml")
        .is_some());
    assert!(fixture
        .show("main", "apps/frontend.weir/state.yaml")
        .is_none());
    assert_eq!(
        report.spec_errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        ["apps/frontend/canary.yaml:23:16: error: spec.analysis.threshold: invalid type: integer `-1`, expected a whole number"]
    );

    // A broken rollout record is left alone, with an error that names it.
    crate::support::repo::git(&fixture.work, &["pull", "-q", "origin", "main"]);
    std::fs::write(
        fixture.work.join("apps/backend.weir/state.yaml"),
        "status: [",
    )
    .unwrap();
    edit(
        &fixture.work.join("apps/frontend/canary.yaml"),
        0,
        "spec.analysis.threshold",
        "5",
    );
    crate::support::repo::git(
        &fixture.work,
        &["commit", "-qam", "fix frontend, break backend record"],
    );
    crate::support::repo::git(&fixture.work, &["push", "-q", "origin", "main"]);
    let report = engine.tick().await.unwrap();
    assert_eq!(
        report.message.as_deref(),
        Some("frontend: initialization done, primary serves all traffic\n")
    );
    let backend = report
        .apps
        .iter()
        .find(|a| a.app == "prod/backend")
        .unwrap();
    assert!(
        backend.errors[0].starts_with("apps/backend.weir/state.yaml:1:9: error: status: ")
            && backend.errors[0]
                .ends_with("weir leaves the app alone until the record is fixed or removed"),
        "{:?}",
        backend.errors
    );
    assert_eq!(
        fixture
            .show("main", "apps/backend.weir/state.yaml")
            .unwrap(),
        "status: ["
    );
}

/// kustomize (and so Flux) refuses a file with a key written twice. weir used to skip such a
/// Canary without a word, so the app dropped out of weir's view while Flux failed; with
/// `revertOnDeletion`, a skipped Canary even looked deleted. Now the key is a located error,
/// nothing is committed for the app, its folder stays, and the other app goes on.
#[tokio::test]
async fn a_key_written_twice_is_an_error_and_the_app_keeps_its_folder() {
    let fixture = Fixture::with(|work| {
        let canary = work.join("apps/backend/canary.yaml");
        let text = std::fs::read_to_string(&canary).unwrap().replacen(
            "spec:\n",
            "spec:\n  revertOnDeletion: true\n",
            1,
        );
        std::fs::write(canary, text).unwrap();
    });
    let mut engine = fixture.engine(None);
    engine.tick().await.unwrap();
    let folder = |f: &Fixture| f.show("main", "apps/backend.weir/state.yaml");
    assert!(folder(&fixture).is_some(), "initialised");

    crate::support::repo::git(&fixture.work, &["pull", "-q", "origin", "main"]);
    let canary = fixture.work.join("apps/backend/canary.yaml");
    let text = std::fs::read_to_string(&canary).unwrap().replacen(
        "kind: Canary\n",
        "kind: Canary\nkind: Canary\n",
        1,
    );
    std::fs::write(&canary, text).unwrap();
    edit(
        &fixture.work.join("apps/frontend/kustomization.yaml"),
        0,
        "images[0].newTag",
        "6.1.5",
    );
    crate::support::repo::git(
        &fixture.work,
        &["commit", "-qam", "kind twice, bump frontend"],
    );
    crate::support::repo::git(&fixture.work, &["push", "-q", "origin", "main"]);
    let before = fixture.log().len();
    let report = engine.tick().await.unwrap();
    let errors: Vec<String> = report.spec_errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        ["apps/backend/canary.yaml:3:1: error: kind: `kind` is written twice in this mapping; kustomize refuses such a file, so Flux would fail the whole Kustomization"]
    );
    let new: Vec<String> = fixture.log()[before..]
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(
        new[0].starts_with("frontend: "),
        "only the frontend moved: {new:?}"
    );
    assert!(folder(&fixture).is_some(), "the backend's folder stays");

    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--min-interval", "1s", "--dir"])
        .arg(&fixture.work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("apps/backend/canary.yaml:3:1: error: kind: `kind` is written twice"),
        "{stdout}"
    );
}
