//! The primary as Flux builds it from what weir commits, with no kustomize run by weir: the
//! ConfigMaps and Secrets of the app's build are copied and renamed with it, objects outside
//! the build keep their names, the user's own objects keep pointing at the user's objects, and
//! a config change reaches the primary only when it is promoted.
//!
//! Gates answer from a fake metric source and time moves on a fake clock, so these run in
//! seconds; Git is real and every commit is built with `kubectl kustomize`.

use crate::support::repo::{docs, find, flux_build, Fixture};
use chrono::{TimeZone, Utc};
use serde_yaml::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weir::core::spec::Phase;
use weir::engine::Engine;
use weir::test_support::fakes::{FakeClock, FakeMetrics};

pub fn fake_engine(fixture: &Fixture) -> (Engine, FakeClock, FakeMetrics) {
    let clock = FakeClock::at(Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap());
    let metrics = FakeMetrics::constant(0.1);
    // Success rate 100 passes; the error rate and latency templates read 0.1.
    metrics.answer(|q| {
        Ok(
            if q.contains("response_code!~") && !q.starts_with("100 -") {
                100.0
            } else {
                0.1
            },
        )
    });
    let engine = fixture.engine_on(
        Box::new(fixture.repo()),
        Arc::new(metrics.clone()),
        Arc::new(clock.clone()),
    );
    (engine, clock, metrics)
}

/// [`fake_engine`] with a cluster view.
pub fn fake_engine_seeing(
    fixture: &Fixture,
    cluster: Option<Arc<dyn weir::ports::ClusterView>>,
) -> (Engine, FakeClock, FakeMetrics) {
    let (_, clock, metrics) = fake_engine(fixture);
    let engine = fixture.engine_seeing(
        Box::new(fixture.repo()),
        Box::new(weir::adapters::publish::DirectCommit::default()),
        Arc::new(metrics.clone()),
        Arc::new(clock.clone()),
        cluster,
    );
    (engine, clock, metrics)
}

/// Ticks, moving the fake clock one interval (3s) before each, until `done`.
pub async fn drive_fake(
    engine: &mut Engine,
    clock: &FakeClock,
    fixture: &Fixture,
    done: impl Fn(&Fixture) -> bool,
) {
    for _ in 0..40 {
        clock.advance(Duration::from_secs(3));
        engine.tick().await.expect("tick runs");
        if done(fixture) {
            return;
        }
    }
    panic!("not done after 40 steps: {:#?}", fixture.log());
}

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - canary.yaml
  - deployment.yaml
  - hpa.yaml
  - settings.yaml
  - token.yaml
  - headless.yaml
images:
  - name: ghcr.io/acme/backend
    newName: ghcr.io/acme/backend
    newTag: 6.1.0 # bumped by CI
configMapGenerator:
  - name: backend-env
    namespace: prod
    literals:
      - LEVEL=info
patches:
  - path: deployment.patch.yaml
    target:
      kind: Deployment
      name: backend
";

const PATCH: &str = "- op: add
  path: /spec/template/spec/volumes
  value:
    - name: settings
      configMap: {name: backend-settings}
    - name: token
      secret: {secretName: backend-token}
    - name: istio-ca
      configMap: {name: istio-ca-root-cert}
    - name: operator
      secret: {secretName: operator-made-secret}
- op: add
  path: /spec/template/spec/containers/0/envFrom
  value:
    - configMapRef: {name: backend-env}
";

fn settings(color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: backend-settings\n  namespace: prod\ndata:\n  color: {color}\n")
}

const TOKEN: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: backend-token\n  namespace: prod\nstringData:\n  token: not-a-real-one\n";
const HEADLESS: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: backend-headless\n  namespace: prod\nspec:\n  clusterIP: None\n  selector:\n    app: backend\n  ports:\n    - port: 9898\n";

fn with_config(work: &Path) {
    let app = work.join("apps/backend");
    std::fs::write(app.join("kustomization.yaml"), KUSTOMIZATION).unwrap();
    std::fs::write(app.join("deployment.patch.yaml"), PATCH).unwrap();
    std::fs::write(app.join("settings.yaml"), settings("blue")).unwrap();
    std::fs::write(app.join("token.yaml"), TOKEN).unwrap();
    std::fs::write(app.join("headless.yaml"), HEADLESS).unwrap();
}

/// Volume name -> the ConfigMap or Secret it mounts, and the envFrom ConfigMaps.
fn config_refs(d: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let pod = &d["spec"]["template"]["spec"];
    let volumes = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| {
            let target = v["configMap"]["name"]
                .as_str()
                .or(v["secret"]["secretName"].as_str())
                .unwrap();
            (v["name"].as_str().unwrap().to_string(), target.to_string())
        })
        .collect();
    let env = pod["containers"][0]["envFrom"]
        .as_sequence()
        .map(|s| {
            s.iter()
                .map(|e| e["configMapRef"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (volumes, env)
}

fn named<'a>(built: &'a [Value], kind: &str, prefix: &str) -> Vec<&'a Value> {
    built
        .iter()
        .filter(|d| {
            d["kind"].as_str() == Some(kind)
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

#[tokio::test]
async fn the_primary_copies_the_apps_config_and_leaves_outside_objects_alone() {
    let fixture = Fixture::with(|work| {
        // The fixture's fast analysis, plus config of the app's own and from outside it.
        crate::support::repo::edit(
            &work.join("apps/backend/canary.yaml"),
            0,
            "spec.analysis.interval",
            "3s",
        );
        crate::support::repo::edit(
            &work.join("apps/backend/canary.yaml"),
            0,
            "spec.analysis.stepWeight",
            "25",
        );
        with_config(work);
    });
    let (mut engine, clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    let built = docs(&flux_build(&fixture, "main"));

    let primary = find(&built, "Deployment", "backend-primary").expect("primary Deployment");
    let (volumes, env) = config_refs(primary);
    assert_eq!(
        volumes,
        [
            ("settings".into(), "backend-settings-primary".into()),
            ("token".into(), "backend-token-primary".into()),
            // Not part of the app's build: they keep their names (Istio and an operator make them).
            ("istio-ca".into(), "istio-ca-root-cert".into()),
            ("operator".into(), "operator-made-secret".into()),
        ]
    );
    assert!(env[0].starts_with("backend-env-primary-"), "{env:?}");
    // The user's Deployment still uses the user's objects.
    let canary = find(&built, "Deployment", "backend").unwrap();
    let (volumes, env) = config_refs(canary);
    assert_eq!(volumes[0].1, "backend-settings");
    assert_eq!(volumes[1].1, "backend-token");
    assert!(
        env[0].starts_with("backend-env-") && !env[0].contains("primary"),
        "{env:?}"
    );
    // Every ConfigMap and Secret the primary uses exists in the build, or is one of the
    // outside objects that were there before.
    for name in config_refs(primary)
        .0
        .iter()
        .map(|(_, t)| t)
        .chain(config_refs(primary).1.iter())
    {
        let found = built
            .iter()
            .any(|d| d["metadata"]["name"].as_str() == Some(name));
        assert!(
            found || name == "istio-ca-root-cert" || name == "operator-made-secret",
            "{name}"
        );
    }
    assert_eq!(
        find(&built, "ConfigMap", "backend-settings-primary").unwrap()["data"]["color"],
        "blue"
    );
    // HPAs point at their own Deployments.
    let target = |hpa: &str| {
        find(&built, "HorizontalPodAutoscaler", hpa).unwrap()["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(target("backend"), "backend");
    assert_eq!(target("backend-primary"), "backend-primary");
    // Nothing else of the app is copied: not its Service, not its Canary; the guards are gone.
    assert!(find(&built, "Service", "backend-headless-primary").is_none());
    assert_eq!(named(&built, "Service", "backend-headless").len(), 1);
    assert!(find(&built, "Canary", "backend-primary").is_none());
    assert!(built
        .iter()
        .all(|d| !d["kind"].as_str().unwrap().starts_with("WeirGuard")));

    // A config change is a new revision: the canary gets it at once, the primary only when
    // it is promoted.
    fixture.push_change("backend: green", |work| {
        std::fs::write(work.join("apps/backend/settings.yaml"), settings("green")).unwrap();
    });
    engine.tick().await.unwrap();
    let built = docs(&flux_build(&fixture, "main"));
    let color = |built: &[Value], name: &str| {
        find(built, "ConfigMap", name).unwrap()["data"]["color"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(color(&built, "backend-settings"), "green");
    assert_eq!(color(&built, "backend-settings-primary"), "blue");
    drive_fake(&mut engine, &clock, &fixture, |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(color(&built, "backend-settings-primary"), "green");
    // Every commit on the way built.
    for (sha, _) in fixture.log() {
        flux_build(&fixture, &sha);
    }
}

/// An app whose kustomization reads a base and a patch outside its folder: the primary
/// carries them at the same places relative to the app, so the references still resolve,
/// and the promoted revision's base is what the primary runs.
#[tokio::test]
async fn bases_outside_the_app_folder_are_carried_with_their_references() {
    let fixture = Fixture::with(|work| {
        crate::support::repo::edit(
            &work.join("apps/backend/canary.yaml"),
            0,
            "spec.analysis.interval",
            "3s",
        );
        let base = work.join("bases/podinfo");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::rename(
            work.join("apps/backend/deployment.yaml"),
            base.join("deployment.yaml"),
        )
        .unwrap();
        std::fs::write(
            base.join("kustomization.yaml"),
            "resources:\n  - deployment.yaml\n",
        )
        .unwrap();
        std::fs::create_dir_all(work.join("shared")).unwrap();
        std::fs::write(
            work.join("shared/labels.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\n  namespace: prod\n  labels:\n    team: payments\n",
        )
        .unwrap();
        let k = work.join("apps/backend/kustomization.yaml");
        let text = std::fs::read_to_string(&k)
            .unwrap()
            .replace("  - deployment.yaml\n", "  - ../../bases/podinfo\n")
            + "patchesStrategicMerge:\n  - ../../shared/labels.yaml\n";
        std::fs::write(&k, text).unwrap();
    });
    let (mut engine, clock, _) = fake_engine(&fixture);
    let report = engine.tick().await.unwrap();
    assert!(
        report.apps.iter().all(|a| a.errors.is_empty()),
        "{:#?}",
        report.apps
    );
    // The closure is carried under one root that holds every path it reads.
    for file in [
        "apps/backend.weir/primary/source/apps/backend/kustomization.yaml",
        "apps/backend.weir/primary/source/bases/podinfo/deployment.yaml",
        "apps/backend.weir/primary/source/shared/labels.yaml",
    ] {
        assert!(
            fixture.show("main", file).is_some(),
            "{file} is not carried"
        );
    }
    let built = docs(&flux_build(&fixture, "main"));
    let primary = find(&built, "Deployment", "backend-primary").expect("primary");
    assert_eq!(primary["metadata"]["labels"]["team"], "payments");
    assert_eq!(
        crate::support::repo::image(primary),
        "ghcr.io/acme/backend:6.1.0"
    );

    // A change to the base outside the folder is a new revision of the app, and reaches the
    // primary when it is promoted.
    fixture.push_change("base: more memory", |work| {
        let d = work.join("bases/podinfo/deployment.yaml");
        let text = std::fs::read_to_string(&d)
            .unwrap()
            .replace("memory: 512Mi", "memory: 1Gi");
        std::fs::write(&d, text).unwrap();
    });
    engine.tick().await.unwrap();
    assert!(fixture
        .log()
        .last()
        .unwrap()
        .1
        .starts_with("backend: new revision "));
    let memory = |built: &[Value], name: &str| {
        find(built, "Deployment", name).unwrap()["spec"]["template"]["spec"]["containers"][0]
            ["resources"]["limits"]["memory"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(memory(&built, "backend"), "1Gi");
    assert_eq!(memory(&built, "backend-primary"), "512Mi");
    drive_fake(&mut engine, &clock, &fixture, |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(memory(&built, "backend-primary"), "1Gi");
}

/// An app folder without a kustomization (plain manifests, as Flagger's tutorials lay them
/// out; Flux generates the kustomization): the primary lists its files one by one, and
/// weir's folder builds.
#[tokio::test]
async fn an_app_folder_of_plain_manifests_gets_a_primary_that_builds() {
    let fixture = Fixture::with(|work| {
        let app = work.join("apps/plain");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join("deployment.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: plain\n  namespace: prod\nspec:\n  selector:\n    matchLabels:\n      app: plain\n  template:\n    metadata:\n      labels:\n        app: plain\n    spec:\n      containers:\n        - name: app\n          image: ghcr.io/acme/plain:1.0.0\n          ports:\n            - name: http\n              containerPort: 9898\n            - name: grpc\n              containerPort: 9999\n",
        )
        .unwrap();
        std::fs::write(
            app.join("canary.yaml"),
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: plain\n  namespace: prod\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: plain\n  service:\n    port: 9898\n    portDiscovery: true\n  analysis:\n    interval: 3s\n    threshold: 2\n    iterations: 2\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n        interval: 1m\n",
        )
        .unwrap();
    });
    let (mut engine, _clock, _) = fake_engine(&fixture);
    let report = engine.tick().await.unwrap();
    let plain = report
        .apps
        .iter()
        .find(|a| a.app == "prod/plain")
        .expect("the app is found");
    assert!(plain.errors.is_empty(), "{:#?}", plain.errors);
    let checkout = fixture.dir.path().join("plain-check");
    crate::support::repo::git(
        fixture.dir.path(),
        &[
            "clone",
            "-q",
            fixture.remote.to_str().unwrap(),
            checkout.to_str().unwrap(),
        ],
    );
    let out = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(checkout.join("apps/plain.weir"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built: Vec<Value> = docs(&String::from_utf8_lossy(&out.stdout));
    let primary = find(&built, "Deployment", "plain-primary").expect("primary");
    assert_eq!(
        primary["spec"]["selector"]["matchLabels"]["app"],
        "plain-primary"
    );
    assert!(find(&built, "Canary", "plain-primary").is_none());
    // portDiscovery: the other container port is on every Service, by its name.
    let apex = find(&built, "Service", "plain").expect("apex Service");
    let ports: Vec<&str> = apex["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["http", "grpc"]);
}
