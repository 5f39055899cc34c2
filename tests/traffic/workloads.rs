//! The app's two Deployments as Flux's build of one commit makes them: the image each runs and
//! its replicas, the two fields a rollout changes.
//!
//! No kustomize here (the simulator runs no binary either): it reads the files that decide
//! those two fields and ignores everything else a build does. The canary `<app>` is the app's
//! own Deployment, with the `images:` tag of its kustomization and the replicas the
//! Components it lists patch in (weir's `canary-replicas`, once the app opts in), else its own
//! `spec.replicas`, else its HPA's `minReplicas` (an HPA scales a Deployment that sets none),
//! else Kubernetes' default, 1. The primary `<app>-primary` is the same, read from the source
//! weir carries under `primary/`; it does not exist before weir wrote that folder.

use anyhow::{Context, Result};

use crate::git::{join_dir, Repo};
use crate::routing::{primary_source, Target};
use crate::yaml::{
    components, container_image, deployment_patches, find_document, hpa_min_replicas,
    kustomization_image, patch_replicas, retag, spec_replicas, Patch,
};

/// One Deployment as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// `metadata.name`.
    pub name: String,
    /// The first container's image.
    pub image: String,
    /// `spec.replicas` as the cluster ends up with it.
    pub replicas: i64,
}

/// The app's Deployments at one commit; `None` where the build has no such Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workloads {
    /// `<app>`, the Canary's target.
    pub canary: Option<Built>,
    /// `<app>-primary`, weir's.
    pub primary: Option<Built>,
}

/// The app's Deployments as `commit` builds them.
pub fn read_workloads(repo: &Repo, commit: &str, target: &Target) -> Result<Workloads> {
    let app = &target.app;
    let canary = build(repo, commit, &target.app_dir, app, app)
        .with_context(|| format!("building Deployment {app} from {}", target.app_dir))?;
    let primary = match primary_source(repo, commit, &target.weir_dir)? {
        Some(dir) => {
            let name = format!("{app}-primary");
            build(repo, commit, &dir, app, &name)
                .with_context(|| format!("building Deployment {name} from {dir}"))?
        }
        None => None,
    };
    Ok(Workloads { canary, primary })
}

/// The Deployment `app` of the kustomization in `dir`, named `name` in the build; `None` when
/// no YAML file of `dir` holds it.
fn build(repo: &Repo, commit: &str, dir: &str, app: &str, name: &str) -> Result<Option<Built>> {
    let mut deployment = None;
    let mut hpa_min = None;
    for path in repo.list_dir(commit, dir)? {
        if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
            continue;
        }
        let Some(src) = repo.read(commit, &path)? else {
            continue;
        };
        // Files that are not Kubernetes YAML are not ours to judge; skip them.
        if deployment.is_none() {
            deployment = find_document(&src, "Deployment", app).ok().flatten();
        }
        if hpa_min.is_none() {
            hpa_min = hpa_min_replicas(&src, app).ok().flatten();
        }
    }
    let Some(deployment) = deployment else {
        return Ok(None);
    };
    let image = container_image(&deployment).with_context(|| {
        format!("Deployment {app}: spec.template.spec.containers[0].image is missing")
    })?;
    let file = format!("{dir}/kustomization.yaml");
    let kustomization = repo.read(commit, &file)?;
    let (new_name, new_tag) = match &kustomization {
        Some(src) => kustomization_image(src).with_context(|| file.clone())?,
        None => (None, None),
    };
    let patched = match &kustomization {
        Some(src) => {
            component_replicas(repo, commit, dir, src, app).with_context(|| file.clone())?
        }
        None => None,
    };
    Ok(Some(Built {
        name: name.to_string(),
        image: retag(image, new_name.as_deref(), new_tag.as_deref()),
        replicas: patched
            .or_else(|| spec_replicas(&deployment))
            .or(hpa_min)
            .unwrap_or(1),
    }))
}

/// The replicas that the Components of the kustomization `src` (in `dir`) set on the
/// Deployment `app`, the last one's winning; `None` when none sets them.
fn component_replicas(
    repo: &Repo,
    commit: &str,
    dir: &str,
    src: &str,
    app: &str,
) -> Result<Option<i64>> {
    let mut replicas = None;
    for component in components(src)? {
        let component_dir = join_dir(dir, &component);
        let file = format!("{component_dir}/kustomization.yaml");
        // Flux's build fails the same way on a listed Component that is not there.
        let text = repo.read(commit, &file)?.with_context(|| {
            format!("components: {component} is listed, but {file} does not exist")
        })?;
        for (patch, targeted) in deployment_patches(&text, app).with_context(|| file.clone())? {
            let patch = match patch {
                Patch::Inline(text) => text,
                Patch::File(path) => {
                    let path = join_dir(&component_dir, &path);
                    repo.read(commit, &path)?
                        .with_context(|| format!("{file}: patch {path} does not exist"))?
                }
            };
            if let Some(n) = patch_replicas(&patch, app, targeted).with_context(|| file.clone())? {
                replicas = Some(n);
            }
        }
    }
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: backend, namespace: prod}\nspec:\n  template:\n    spec:\n      containers:\n        - name: backend\n          image: ghcr.io/acme/backend:6.0.0\n";
    const HPA: &str = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: backend, namespace: prod}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: backend}\n  minReplicas: 2\n  maxReplicas: 4\n";
    const COMPONENT: &str = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n  - target: {group: apps, version: v1, kind: Deployment, name: \"backend\", namespace: \"prod\"}\n    patch: |-\n      - op: add\n        path: /spec/replicas\n        value: 0\n";

    fn kustomization(tag: &str, extra: &str) -> String {
        format!("resources: [deployment.yaml, hpa.yaml]\nimages:\n  - name: ghcr.io/acme/backend\n    newTag: \"{tag}\"\n{extra}")
    }

    /// A bare-bones repository with `files` in one commit: the repository and the commit.
    fn commit(dir: &Path, files: &[(&str, String)]) -> (Repo, String) {
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(dir)
                .output()
                .expect("running git");
            assert!(out.status.success(), "git {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        git(&["init", "-q", "-b", "main"]);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        git(&["add", "-A"]);
        git(&["commit", "-qm", "files"]);
        (Repo::open(dir, "main"), git(&["rev-parse", "HEAD"]))
    }

    fn target() -> Target {
        Target {
            app: "backend".into(),
            app_dir: "apps/backend".into(),
            weir_dir: "apps/backend.weir".into(),
        }
    }

    fn built(name: &str, tag: &str, replicas: i64) -> Option<Built> {
        Some(Built {
            name: name.into(),
            image: format!("ghcr.io/acme/backend:{tag}"),
            replicas,
        })
    }

    #[test]
    fn before_weir_only_the_apps_deployment_exists_scaled_by_its_hpa() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, sha) = commit(
            dir.path(),
            &[
                ("apps/backend/deployment.yaml", DEPLOYMENT.into()),
                ("apps/backend/hpa.yaml", HPA.into()),
                (
                    "apps/backend/kustomization.yaml",
                    kustomization("6.1.0", ""),
                ),
            ],
        );
        let w = read_workloads(&repo, &sha, &target()).unwrap();
        assert_eq!(w.canary, built("backend", "6.1.0", 2));
        assert_eq!(w.primary, None);
    }

    #[test]
    fn the_canary_replicas_component_scales_the_canary_and_never_the_primary() {
        let dir = tempfile::tempdir().unwrap();
        let opt_in = "components: [../backend.weir/canary-replicas]\n";
        let (repo, sha) = commit(
            dir.path(),
            &[
                ("apps/backend/deployment.yaml", DEPLOYMENT.into()),
                ("apps/backend/hpa.yaml", HPA.into()),
                (
                    "apps/backend/kustomization.yaml",
                    kustomization("6.1.1", opt_in),
                ),
                (
                    "apps/backend.weir/canary-replicas/kustomization.yaml",
                    COMPONENT.into(),
                ),
                (
                    "apps/backend.weir/primary/kustomization.yaml",
                    "resources:\n  - \"source/backend\"\nnameSuffix: -primary\n".into(),
                ),
                (
                    "apps/backend.weir/primary/source/backend/deployment.yaml",
                    DEPLOYMENT.into(),
                ),
                (
                    "apps/backend.weir/primary/source/backend/hpa.yaml",
                    HPA.into(),
                ),
                (
                    "apps/backend.weir/primary/source/backend/kustomization.yaml",
                    kustomization("6.1.0", ""),
                ),
            ],
        );
        let w = read_workloads(&repo, &sha, &target()).unwrap();
        assert_eq!(w.canary, built("backend", "6.1.1", 0));
        assert_eq!(w.primary, built("backend-primary", "6.1.0", 2));
    }

    #[test]
    fn a_deployments_own_replicas_apply_and_a_missing_component_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let own = DEPLOYMENT.replace("spec:\n  template:", "spec:\n  replicas: 3\n  template:");
        let (repo, sha) = commit(
            dir.path(),
            &[
                ("apps/backend/deployment.yaml", own),
                ("apps/backend/hpa.yaml", HPA.into()),
                (
                    "apps/backend/kustomization.yaml",
                    kustomization("6.1.0", ""),
                ),
                (
                    "apps/other/kustomization.yaml",
                    kustomization("1", "components: [../missing]\n"),
                ),
                ("apps/other/deployment.yaml", DEPLOYMENT.into()),
            ],
        );
        let w = read_workloads(&repo, &sha, &target()).unwrap();
        assert_eq!(w.canary, built("backend", "6.1.0", 3));
        let other = Target {
            app_dir: "apps/other".into(),
            ..target()
        };
        let err = format!("{:#}", read_workloads(&repo, &sha, &other).unwrap_err());
        assert!(
            err.contains("apps/missing/kustomization.yaml does not exist"),
            "{err}"
        );
    }
}
