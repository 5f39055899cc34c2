//! The benchmark's config repository: the gitops-istio layout of `fixtures/gitops-istio` at any
//! size. Every app is the fixture's `backend` under its own name (Deployment, HPA, a kustomize
//! patch, the `images:` tag CI bumps, and a Canary with the built-in and two templated metrics);
//! the shared MetricTemplates and the gateway stay in `istio/` as in the fixture.
//!
//! One change from the fixture: the analysis interval is 5m, so an app that a run has put in
//! flight never falls due during the run and every measured step is the one that sees a bump.

use std::fs;
use std::path::Path;

/// The app's folder name and Kubernetes name.
pub fn app_name(i: usize) -> String {
    format!("app{i:05}")
}

/// Writes `apps` apps, the namespace and the shared `istio/` folder under `dir`.
pub fn write(dir: &Path, apps: usize) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gitops-istio");
    let backend = fixture.join("apps/backend");
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in fs::read_dir(&backend).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let mut text = fs::read_to_string(entry.path()).unwrap();
        if name == "canary.yaml" {
            assert!(
                text.contains("    interval: 15s\n"),
                "the fixture's Canary changed"
            );
            text = text.replace("    interval: 15s\n", "    interval: 5m\n");
        }
        files.push((name, text));
    }
    files.sort();
    for i in 0..apps {
        let app = app_name(i);
        let d = dir.join("apps").join(&app);
        fs::create_dir_all(&d).unwrap();
        for (name, text) in &files {
            fs::write(d.join(name), text.replace("backend", &app)).unwrap();
        }
    }
    fs::copy(
        fixture.join("apps/namespace.yaml"),
        dir.join("apps/namespace.yaml"),
    )
    .unwrap();
    let gateway = dir.join("istio/gateway");
    fs::create_dir_all(&gateway).unwrap();
    for entry in fs::read_dir(fixture.join("istio/gateway")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), gateway.join(entry.file_name())).unwrap();
    }
}

/// Sets the `newTag:` of app `i` in a checkout, as CI does; the rest of the line (the
/// fixture's comment) is kept.
pub fn bump(dir: &Path, i: usize, tag: &str) {
    let file = dir
        .join("apps")
        .join(app_name(i))
        .join("kustomization.yaml");
    let text = fs::read_to_string(&file).unwrap();
    let mut out = String::with_capacity(text.len());
    let mut found = false;
    for line in text.split_inclusive('\n') {
        match line.find("newTag: ") {
            Some(at) => {
                let value_start = at + "newTag: ".len();
                let value_end = line[value_start..]
                    .find([' ', '\n'])
                    .map_or(line.len(), |e| value_start + e);
                out.push_str(&line[..value_start]);
                out.push_str(tag);
                out.push_str(&line[value_end..]);
                found = true;
            }
            None => out.push_str(line),
        }
    }
    assert!(found, "no newTag in {}", file.display());
    fs::write(&file, out).unwrap();
}
