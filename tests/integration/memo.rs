//! One `weir step` per CI job, each a fresh process on the same cache folder: the memo the
//! last step kept beside the local copy makes the next read only the apps whose inputs
//! changed, and nothing it could miss is missed: a change outside an app's folder that its
//! build reads, a new Canary, a deleted one, one that starts to claim another's Service.

use crate::support::repo::{files_under, flux_build, Fixture};
use std::path::Path;
use std::process::{Command, Output};

fn step(fixture: &Fixture) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["step", "--repo", &fixture.url(), "--min-interval", "1s"])
        .arg("--cache")
        .arg(fixture.dir.path().join("memo-cache"))
        .env_remove("WEIR_PROMETHEUS")
        .env("WEIR_LOG", "weir=debug")
        .output()
        .unwrap()
}

/// Runs a step that must succeed: its stdout, and how many apps it gathered and whether
/// from a memo (`(gathered, partial)` of its last "gathered" line).
fn run(fixture: &Fixture) -> (String, (usize, bool)) {
    let out = step(fixture);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .rfind(|l| l.contains(" gathered"))
        .unwrap_or_else(|| panic!("no gathered line:\n{stderr}"));
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {line}"))
            .to_string()
    };
    let gathered = field("gathered").parse().unwrap();
    let partial = field("partial") == "true";
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        (gathered, partial),
    )
}

/// Replaces `from` with `to` in a file of the work tree.
fn replace(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{}: no {from:?}", file.display());
    std::fs::write(file, text.replace(from, to)).unwrap();
}

/// The frontend's Deployment and HPA moved to `bases/frontend`, outside its app folder.
fn frontend_on_a_base(work: &Path) {
    let (app, base) = (work.join("apps/frontend"), work.join("bases/frontend"));
    std::fs::create_dir_all(&base).unwrap();
    for f in ["deployment.yaml", "hpa.yaml"] {
        std::fs::rename(app.join(f), base.join(f)).unwrap();
    }
    std::fs::write(
        base.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n  - hpa.yaml\n",
    )
    .unwrap();
    replace(
        &app.join("kustomization.yaml"),
        "  - deployment.yaml\n  - hpa.yaml\n",
        "  - ../../bases/frontend\n",
    );
}

/// Both apps initialised, and one more step that finds nothing to do and reads nothing:
/// the apps weir's own commit brought to rest are settled at it.
fn settled(fixture: &Fixture) {
    let (out, scope) = run(fixture);
    assert!(out.starts_with("pushed"), "{out}");
    assert_eq!(scope, (2, false), "no memo yet");
    let (out, scope) = run(fixture);
    assert_eq!(out, "nothing to commit\n");
    assert_eq!(scope, (0, true));
}

#[test]
fn a_fresh_step_reads_only_the_apps_whose_inputs_changed() {
    let fixture = Fixture::with(frontend_on_a_base);
    settled(&fixture);
    // Nothing changed: nothing is read.
    let (out, scope) = run(&fixture);
    assert_eq!(out, "nothing to commit\n");
    assert_eq!(scope, (0, true));

    // A change no app reads: still nothing.
    fixture.push_change("docs", |w| {
        std::fs::write(w.join("README.md"), "hi\n").unwrap()
    });
    let (out, scope) = run(&fixture);
    assert_eq!(out, "nothing to commit\n");
    assert_eq!(scope, (0, true));

    // The backend's tag: only the backend is read, and its release starts.
    fixture.bump("backend", "6.1.1");
    let (out, scope) = run(&fixture);
    assert!(out.starts_with("pushed"), "{out}");
    assert_eq!(scope, (1, true));
    assert_eq!(
        fixture.state("backend").unwrap().phase.to_string(),
        "Progressing"
    );
    assert_eq!(
        fixture.state("frontend").unwrap().phase.to_string(),
        "Initialized"
    );

    // The frontend's base, outside its folder: the frontend's release starts too.
    fixture.push_change("frontend: pod annotation in the base", |w| {
        replace(
            &w.join("bases/frontend/deployment.yaml"),
            "        prometheus.io/scrape: \"true\"\n",
            "        prometheus.io/scrape: \"true\"\n        example.com/build: \"2\"\n",
        );
    });
    let (out, (gathered, partial)) = run(&fixture);
    assert!(out.starts_with("pushed"), "{out}");
    assert!(partial);
    assert_eq!(gathered, 2, "the frontend, and the backend in flight");
    assert_eq!(
        fixture.state("frontend").unwrap().phase.to_string(),
        "Progressing"
    );
    let built = flux_build(&fixture, "main");
    assert!(built.contains("example.com/build"), "{built}");
}

#[test]
fn a_new_canary_a_deleted_one_and_a_new_claim_are_never_missed() {
    let fixture = Fixture::with(|w| {
        replace(
            &w.join("apps/frontend/canary.yaml"),
            "spec:\n",
            "spec:\n  revertOnDeletion: true\n",
        );
    });
    settled(&fixture);

    // A new app, a copy of the backend under another name: initialised.
    fixture.push_change("api: new app", |w| {
        let (from, to) = (w.join("apps/backend"), w.join("apps/api"));
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            let text = std::fs::read_to_string(entry.path())
                .unwrap()
                .replace("backend", "api");
            std::fs::write(to.join(entry.file_name()), text).unwrap();
        }
    });
    let (out, (_, partial)) = run(&fixture);
    assert!(out.starts_with("pushed"), "{out}");
    assert!(!partial, "a new Canary is found by a whole scan");
    assert_eq!(
        fixture.state("api").unwrap().phase.to_string(),
        "Initialized"
    );
    run(&fixture);

    // The frontend's Canary deleted (revertOnDeletion): weir's folder goes.
    fixture.push_change("frontend: no more canary", |w| {
        replace(
            &w.join("apps/frontend/kustomization.yaml"),
            "  - canary.yaml\n",
            "",
        );
        std::fs::remove_file(w.join("apps/frontend/canary.yaml")).unwrap();
    });
    let (out, _) = run(&fixture);
    assert!(out.starts_with("pushed"), "{out}");
    assert!(
        fixture
            .show("main", "apps/frontend.weir/state.yaml")
            .is_none(),
        "weir's folder of the deleted Canary is gone"
    );

    // The api's Service renamed to the backend's: refused, nothing written for it.
    let before = fixture.log().len();
    fixture.push_change("api: the backend's service name", |w| {
        replace(
            &w.join("apps/api/canary.yaml"),
            "  service:\n",
            "  service:\n    name: backend\n",
        );
    });
    let out = step(&fixture);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Service prod/backend would be written for more than one Canary"),
        "{stderr}"
    );
    assert_eq!(fixture.log().len(), before + 1, "only the person's commit");
}

#[test]
fn a_memo_that_cannot_be_read_costs_a_whole_scan_only() {
    let fixture = Fixture::new();
    settled(&fixture);
    let cache = fixture.dir.path().join("memo-cache");
    let mut memos = Vec::new();
    for entry in files_under(&cache) {
        if entry.file_name().is_some_and(|n| n == "weir-memo.json") {
            memos.push(entry);
        }
    }
    assert_eq!(memos.len(), 1, "one memo beside the local copy");
    std::fs::write(&memos[0], b"{ not json").unwrap();
    fixture.bump("backend", "6.1.1");
    let (out, (gathered, partial)) = run(&fixture);
    assert!(out.starts_with("pushed"), "{out}");
    assert_eq!((gathered, partial), (2, false));
    assert_eq!(
        fixture.state("backend").unwrap().phase.to_string(),
        "Progressing"
    );
    let (_, scope) = run(&fixture);
    assert!(scope.1, "the next step has a memo again");
}
