//! The canary Deployment at zero replicas while no release runs, as Flagger scales it, through
//! Git: weir's `canary-replicas` component, which the app's kustomization lists with one line.
//! Every commit is built as Flux builds `./apps`, with `kubectl kustomize`; gates answer from
//! a fake metric source and time moves on a fake clock, so these run in seconds.

use crate::primary::{drive_fake, fake_engine};
use crate::support::repo::{docs, find, flux_build, git, Fixture};
use serde_yaml::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use weir::core::spec::Phase;

const LINE: &str = "components: [../backend.weir/canary-replicas]\n";
/// The fixture's HPA `backend` sets minReplicas: 2; its Deployment sets no replicas.
const HPA_MIN: u64 = 2;

/// Lists weir's component in the backend's kustomization, as a person would.
fn list_component(work: &Path) {
    let k = work.join("apps/backend/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap() + LINE;
    std::fs::write(k, text).unwrap();
}

/// `spec.replicas` of a Deployment of a build (`None`: not set).
fn replicas(built: &[Value], name: &str) -> Option<u64> {
    let d = find(built, "Deployment", name).unwrap_or_else(|| panic!("no Deployment {name}"));
    d["spec"].get("replicas").and_then(Value::as_u64)
}

/// Every commit from `from` (an index into the log) on builds; the canary's replicas follow
/// the phase recorded in that commit, and the primary is never at zero.
fn check_every_commit(fixture: &Fixture, from: usize, running: Option<u64>) -> Vec<Phase> {
    let mut phases = Vec::new();
    for (sha, subject) in &fixture.log()[from..] {
        let built = docs(&flux_build(fixture, sha));
        let phase = fixture.state_at(sha, "backend").unwrap().phase;
        // Flagger's rule, written out here rather than read from weir.
        let release = matches!(
            phase,
            Phase::Progressing | Phase::WaitingPromotion | Phase::Promoting | Phase::Finalising
        );
        let expected = if release { running } else { Some(0) };
        assert_eq!(replicas(&built, "backend"), expected, "{subject} ({phase})");
        assert_ne!(replicas(&built, "backend-primary"), Some(0), "{subject}");
        assert!(
            find(&built, "HorizontalPodAutoscaler", "backend-primary").is_some(),
            "{subject}"
        );
        if phases.last() != Some(&phase) {
            phases.push(phase);
        }
    }
    phases
}

/// Initialised, listed, a release promoted, a bad release rolled back: the canary runs the
/// HPA's minimum replicas during each release and none before, between and after them.
#[tokio::test]
async fn the_canary_is_at_zero_between_releases_and_at_the_hpas_minimum_during_one() {
    let fixture = Fixture::new();
    let (mut engine, clock, metrics) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Initialized);

    // The line, added once weir's folder is there: not a release, and the canary goes to zero.
    fixture.push_change("backend: canary at zero between releases", list_component);
    let listed_at = fixture.log().len() - 1;
    clock.advance(Duration::from_secs(3));
    let report = engine.tick().await.unwrap();
    assert_eq!(report.commit, None, "{report:#?}");
    let s = fixture.state("backend").unwrap();
    assert_eq!((s.phase, s.canary_revision), (Phase::Initialized, None));
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(replicas(&built, "backend"), Some(0));
    assert_eq!(replicas(&built, "backend-primary"), None);
    // The primary's copy of the kustomization does not list the component.
    let carried = fixture
        .show(
            "main",
            "apps/backend.weir/primary/source/backend/kustomization.yaml",
        )
        .unwrap();
    assert!(!carried.contains("canary-replicas"), "{carried}");
    assert!(
        carried.contains("newTag: 6.1.0 # bumped by CI"),
        "{carried}"
    );

    // A new tag: the step into the analysis scales the canary to the HPA's minimum.
    fixture.bump("backend", "6.1.1");
    clock.advance(Duration::from_secs(3));
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Progressing);
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(replicas(&built, "backend"), Some(HPA_MIN));
    // Promoted: back to zero.
    drive_fake(&mut engine, &clock, &fixture, |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(replicas(&built, "backend"), Some(0));
    assert_eq!(
        crate::support::repo::image(find(&built, "Deployment", "backend-primary").unwrap()),
        "ghcr.io/acme/backend:6.1.1"
    );

    // A bad release: scaled up for its analysis, rolled back, at zero again.
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
    drive_fake(&mut engine, &clock, &fixture, |f| {
        f.state("backend").is_some_and(|s| s.phase == Phase::Failed)
    })
    .await;
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(replicas(&built, "backend"), Some(0));
    assert_eq!(
        crate::support::repo::image(find(&built, "Deployment", "backend").unwrap()),
        "ghcr.io/acme/backend:6.2.0",
        "the rolled-back build is still the user's Deployment, at zero"
    );

    let phases = check_every_commit(&fixture, listed_at, Some(HPA_MIN));
    assert_eq!(
        phases,
        [
            Phase::Initialized,
            Phase::Progressing,
            Phase::Promoting,
            Phase::Finalising,
            Phase::Succeeded,
            Phase::Progressing,
            Phase::Failed,
        ]
    );
}

/// A Deployment that sets its own replicas runs them during a release; the component does
/// not touch them then, and puts the canary at zero between releases.
#[tokio::test]
async fn a_deployment_with_its_own_replicas_runs_them_during_a_release() {
    let fixture = Fixture::new();
    fixture.push_change(
        "backend: three replicas, canary at zero between releases",
        |work| {
            let d = work.join("apps/backend/deployment.yaml");
            let text = std::fs::read_to_string(&d).unwrap().replacen(
                "spec:\n",
                "spec:\n  replicas: 3\n",
                1,
            );
            std::fs::write(d, text).unwrap();
        },
    );
    let (mut engine, clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    fixture.push_change("backend: canary at zero between releases", list_component);
    let listed_at = fixture.log().len() - 1;
    fixture.bump("backend", "6.1.1");
    clock.advance(Duration::from_secs(3));
    engine.tick().await.unwrap();
    assert_eq!(fixture.state("backend").unwrap().phase, Phase::Progressing);
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(replicas(&built, "backend"), Some(3));
    drive_fake(&mut engine, &clock, &fixture, |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;
    let phases = check_every_commit(&fixture, listed_at, Some(3));
    assert_eq!(
        phases,
        [
            Phase::Initialized,
            Phase::Progressing,
            Phase::Promoting,
            Phase::Finalising,
            Phase::Succeeded
        ]
    );
    let component = fixture
        .show(
            "main",
            "apps/backend.weir/canary-replicas/kustomization.yaml",
        )
        .unwrap();
    assert!(component.contains("value: 0"), "{component}");
}

/// Without the line, weir's component is written but nothing uses it: the user's
/// Deployment builds as the user wrote it at every step, and `weir validate` says what to add.
#[tokio::test]
async fn without_the_line_the_deployment_is_left_alone_and_validate_warns() {
    let fixture = Fixture::new();
    let (mut engine, clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    fixture.bump("backend", "6.1.1");
    drive_fake(&mut engine, &clock, &fixture, |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;
    // From weir's first commit on (the fixture's own has no primary yet).
    for (sha, subject) in fixture.log().into_iter().skip(1) {
        let built = docs(&flux_build(&fixture, &sha));
        assert_eq!(replicas(&built, "backend"), None, "{subject}");
        assert_ne!(replicas(&built, "backend-primary"), Some(0), "{subject}");
    }
    assert!(fixture
        .show(
            "main",
            "apps/backend.weir/canary-replicas/kustomization.yaml"
        )
        .is_some());

    git(&fixture.work, &["pull", "-q", "origin", "main"]);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--min-interval", "1s", "--dir"])
        .arg(&fixture.work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let warning = stdout
        .lines()
        .find(|l| l.starts_with("apps/backend/kustomization.yaml:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(warning.contains(": warning: "), "{warning}");
    assert!(
        warning.contains("keeps running between releases"),
        "{warning}"
    );
    assert!(
        warning.ends_with("`components: [../backend.weir/canary-replicas]`"),
        "{warning}"
    );

    // Once the line is there, the warning is gone.
    fixture.push_change("backend: canary at zero between releases", list_component);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--min-interval", "1s", "--dir"])
        .arg(&fixture.work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("apps/backend/"), "{stdout}");
}

/// A Canary deleted with `revertOnDeletion` while its app's kustomization still lists the
/// component: a component that changes nothing stays, so the app still builds, with the
/// replicas the user's own Deployment gives it.
#[tokio::test]
async fn a_deleted_canary_leaves_a_component_that_changes_nothing() {
    let fixture = Fixture::with(|work| {
        let canary = work.join("apps/backend/canary.yaml");
        let text = std::fs::read_to_string(&canary)
            .unwrap()
            .replace("spec:\n", "spec:\n  revertOnDeletion: true\n");
        std::fs::write(&canary, text).unwrap();
    });
    let (mut engine, clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    fixture.push_change("backend: canary at zero between releases", list_component);
    let built = docs(&flux_build(&fixture, "main"));
    assert_eq!(replicas(&built, "backend"), Some(0));
    fixture.push_change("remove the backend Canary", |work| {
        std::fs::remove_file(work.join("apps/backend/canary.yaml")).unwrap();
        let k = work.join("apps/backend/kustomization.yaml");
        let text = std::fs::read_to_string(&k)
            .unwrap()
            .replace("  - canary.yaml\n", "");
        std::fs::write(&k, text).unwrap();
    });
    clock.advance(Duration::from_secs(5));
    let report = engine.tick().await.unwrap();
    assert!(report.commit.is_some(), "{report:#?}");
    assert!(fixture
        .show("main", "apps/backend.weir/state.yaml")
        .is_none());
    let left = fixture
        .show(
            "main",
            "apps/backend.weir/canary-replicas/kustomization.yaml",
        )
        .expect("the component stays");
    assert!(left.ends_with("patches: []\n"), "{left}");
    let built = docs(&flux_build(&fixture, "main"));
    assert!(find(&built, "Deployment", "backend-primary").is_none());
    assert_eq!(replicas(&built, "backend"), None);
}

/// `weir plan` on a pull request: an app the change touches that does not list the
/// component gets the line as a diff of its kustomization; the others are counted. Listing
/// it is not a release.
#[test]
fn plan_shows_the_line_to_add_and_listing_it_is_not_a_release() {
    let fixture = Fixture::from_dir(Path::new(crate::support::repo::UPSTREAM_FIXTURE), |_| {});
    let plan = |base: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["plan", "--dir"])
            .arg(&fixture.work)
            .args(["--base", base])
            .env_remove("GITHUB_EVENT_PATH")
            .env_remove("WEIR_BASE")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let base = git(&fixture.work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    crate::support::repo::edit(
        &fixture.work.join("apps/backend/kustomization.yaml"),
        0,
        "images[0].newTag",
        "6.1.1",
    );
    git(&fixture.work, &["commit", "-qam", "backend 6.1.1"]);
    let md = plan(&base);
    let section = &md[md.find("#### `prod/backend`: release").expect(&md)..];
    let diff = "```diff
--- a/apps/backend/kustomization.yaml
+++ b/apps/backend/kustomization.yaml
@@ -16,2 +16,3 @@
       name: backend
       version: v1
+components: [../backend.weir/canary-replicas]
```
";
    assert!(section.contains(diff), "{md}");
    assert!(
        section.contains("`apps/backend/kustomization.yaml` does not list weir's canary-replicas component, so the canary keeps running between releases"),
        "{md}"
    );
    assert!(
        md.contains("\n1 other app(s) have a warning about weir's canary-replicas component"),
        "{md}"
    );

    // The line itself: no release, nothing to roll out, no diff for the backend.
    let base = git(&fixture.work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    list_component(&fixture.work);
    git(
        &fixture.work,
        &["commit", "-qam", "backend: canary at zero between releases"],
    );
    let md = plan(&base);
    assert!(
        md.contains("No app's source or Canary changes: nothing will roll out."),
        "{md}"
    );
    assert!(!md.contains("```diff"), "{md}");
}

/// Listed before weir has written the component (a new app's pull request with the line):
/// the folder does not build until weir's first step for the app, and validate says so.
#[test]
fn listing_it_before_weir_wrote_it_is_a_warning() {
    let fixture = Fixture::new();
    list_component(&fixture.work);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["validate", "--min-interval", "1s", "--dir"])
        .arg(&fixture.work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let warning = stdout
        .lines()
        .find(|l| l.starts_with("apps/backend/kustomization.yaml:18:13: warning: components: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        warning.contains("until then apps/backend does not build"),
        "{warning}"
    );
    assert!(
        warning.ends_with("add the line once apps/backend.weir/canary-replicas exists"),
        "{warning}"
    );
}
