//! The primary, derived in Git and built by Flux: weir never runs kustomize.
//!
//! The app's source at the promoted commit (its folder and everything its kustomizations
//! read) is carried under `primary/source/` as the same Git objects, at the same relative
//! places, so every relative reference still resolves; only the Canary's own file (a
//! placeholder) and the app's kustomization when it lists weir's replicas component (the same
//! text without that entry) are written anew. `primary/kustomization.yaml` builds it
//! as Flux would and then, with kustomize's own transformers: keeps the target Deployment (with
//! the primary's selector label), its HPA (pointed at the primary) and the ConfigMaps and
//! Secrets of the build that its pods use; drops everything else (the Canary, Services, any
//! other object); and renames what is kept with `nameSuffix: -primary`, so kustomize's name
//! references follow (the HPA target, the pods' ConfigMaps and Secrets). References to
//! objects outside the app's build (Istio's `istio-ca-root-cert`, an operator's Secret) keep
//! their names.
//!
//! kustomize fixes name references once, over the whole of Flux's build, and remembers every
//! earlier name of a renamed object. Without help it would point the user's own HPA, or the
//! user's own pods, at the primary's copies whenever the user's objects were never renamed.
//! `guards.yaml` holds one local-config object per renamed name, which weir's kustomization
//! turns into a guard kind: kustomize drops them from the output, but while it fixes
//! references they stand for the user's objects under their own names, so references from
//! outside the primary resolve to the user's objects. The README ("How the primary is
//! derived") explains it.
//!
//! Pure: same inputs, same bytes.

use crate::core::spec::Canary;
use crate::repo::kustomize::{AppSource, Selector};
use crate::repo::objects::{Dir, Node};
use crate::repo::replicas::OptIn;

/// The annotation on every object of the primary, naming the Canary it belongs to.
pub const PRIMARY_ANNOTATION: &str = "weir.dev/primary-of";

/// A scalar for YAML: JSON's quoting is valid YAML and cannot be broken out of.
fn q(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

/// The path of a repository path under `source/`, relative to the mirror root.
pub fn carried_path(root: &str, path: &str) -> String {
    let rel = if root.is_empty() {
        path
    } else {
        path.strip_prefix(root)
            .map(|p| p.trim_start_matches('/'))
            .unwrap_or(path)
    };
    format!("source/{rel}")
}

/// The `primary/` folder: the carried source and the kustomization over it.
pub fn primary_dir(
    canary: &Canary,
    selector: &Selector,
    source: &AppSource,
    promoted_commit: &str,
) -> Dir {
    let mut dir = Dir::default();
    // The app's kustomization without weir's replicas component, when it lists it.
    let carried_kustomization = match &source.opt_in {
        OptIn::Listed { file, carried } => Some((file.as_str(), carried.as_str())),
        _ => None,
    };
    let rewritten = source.canary_alone.is_some() || carried_kustomization.is_some();
    for e in &source.closure {
        let at = carried_path(&source.mirror_root, &e.path);
        if !(rewritten && e.is_dir && e.path == source.dir) {
            dir.insert(
                &at,
                Node::Carried {
                    id: e.id,
                    is_dir: e.is_dir,
                },
            );
            continue;
        }
        // The app folder without its Canary, so that the primary does not change when only
        // the rollout spec does, and without the replicas component, which would put the
        // primary at zero (or not build: its path does not exist under `source/`).
        let mut app = Dir::default();
        for entry in &source.app_listing {
            let path = crate::repo::source::join(&source.dir, &entry.name);
            if source.canary_alone.as_deref() == Some(path.as_str()) {
                app.file(&entry.name, crate::repo::kustomize::CANARY_PLACEHOLDER);
            } else if let Some((_, text)) = carried_kustomization.filter(|(f, _)| *f == path) {
                app.file(&entry.name, text);
            } else {
                app.insert(
                    &entry.name,
                    Node::Carried {
                        id: entry.id,
                        is_dir: entry.is_dir,
                    },
                );
            }
        }
        dir.insert(&at, Node::Dir(app));
    }
    dir.file(
        "kustomization.yaml",
        kustomization(canary, selector, source, promoted_commit),
    );
    dir
}

/// How the primary's kustomization names the commit it comes from: `(commit 1a2b3c4)`. Any
/// commit holding the promoted revision gives the same primary but for this note.
pub fn commit_note(promoted_commit: &str) -> String {
    format!("(commit {})", crate::core::text::short(promoted_commit))
}

fn kustomization(
    canary: &Canary,
    selector: &Selector,
    source: &AppSource,
    promoted_commit: &str,
) -> String {
    let owner = format!("{}/{}", canary.namespace, canary.name);
    let label = q(&selector.label);
    let value = q(&format!("{}-primary", selector.value));
    let marker = format!("          {}: {}\n", q(PRIMARY_ANNOTATION), q(&owner));
    // An app folder without a kustomization is built from its YAML files (Flux generates
    // the kustomization); carried, it is listed file by file, the Canary's own file left out.
    let has_kustomization = source.app_listing.iter().any(|e| {
        !e.is_dir && crate::repo::kustomize::KUSTOMIZATION_FILES.contains(&e.name.as_str())
    });
    let resources: Vec<String> = if has_kustomization {
        vec![carried_path(&source.mirror_root, &source.dir)]
    } else {
        let mut files: Vec<String> = source
            .app_listing
            .iter()
            .filter(|e| !e.is_dir && (e.name.ends_with(".yaml") || e.name.ends_with(".yml")))
            .map(|e| crate::repo::source::join(&source.dir, &e.name))
            .filter(|path| source.canary_alone.as_deref() != Some(path.as_str()))
            .map(|path| carried_path(&source.mirror_root, &path))
            .collect();
        files.sort();
        files
    };
    let resources: String = resources
        .iter()
        .map(|r| format!("  - {}\n", q(r)))
        .collect();
    let mut k = format!(
        "# Primary of {owner}: the app's source at revision {rev} {commit},\n\
         # carried from Git under source/ and built by Flux. Written by weir; do not edit.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n{resources}\
         nameSuffix: -primary\n\
         patches:\n",
        rev = crate::core::text::short(&source.revision),
        commit = commit_note(promoted_commit),
    );
    // The target Deployment, with the primary's selector label.
    k.push_str(&format!(
        "  - target:\n      group: apps\n      kind: Deployment\n      name: {pattern}\n    patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata:\n        name: {name}\n        annotations:\n{marker}        labels:\n          {label}: {value}\n      spec:\n        selector:\n          matchLabels:\n            {label}: {value}\n        template:\n          metadata:\n            labels:\n              {label}: {value}\n",
        pattern = q(&regex_escape(&canary.target)),
        name = q(&canary.target),
    ));
    // Its HPA, pointed at the target; kustomize renames both.
    if let Some(hpa) = &canary.autoscaler {
        k.push_str(&format!(
            "  - target:\n      group: autoscaling\n      kind: HorizontalPodAutoscaler\n      name: {pattern}\n    patch: |-\n      apiVersion: autoscaling/v2\n      kind: HorizontalPodAutoscaler\n      metadata:\n        name: {name}\n        annotations:\n{marker}      spec:\n        scaleTargetRef:\n          name: {target}\n",
            pattern = q(&regex_escape(hpa)),
            name = q(hpa),
            target = q(&canary.target),
        ));
    }
    // The ConfigMaps and Secrets of the build that its pods use.
    for c in &source.config {
        k.push_str(&format!(
            "  - target:\n      version: v1\n      kind: {kind}\n      name: {pattern}\n    patch: |-\n      apiVersion: v1\n      kind: {kind}\n      metadata:\n        name: {name}\n        annotations:\n{marker}",
            kind = c.kind.kind(),
            pattern = q(&regex_escape(&c.name)),
            name = q(&c.name),
        ));
    }
    // Everything else of the app's build is not part of the primary.
    k.push_str(&format!(
        "  - target:\n      annotationSelector: {sel}\n    patch: |-\n      $patch: delete\n      apiVersion: v1\n      kind: Drop\n      metadata:\n        name: drop\n",
        sel = q(&format!("!{PRIMARY_ANNOTATION}")),
    ));
    k
}

/// kustomize matches patch target names as anchored regular expressions.
pub(crate) fn regex_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The annotation that marks weir's name guards.
pub const GUARD_ANNOTATION: &str = "weir.dev/guard";

/// A kind of object the primary renames, and the kind its guard takes.
struct GuardKind {
    api_version: &'static str,
    kind: &'static str,
    guard: &'static str,
}

const GUARD_KINDS: [GuardKind; 3] = [
    GuardKind {
        api_version: "apps/v1",
        kind: "Deployment",
        guard: "WeirGuardDeployment",
    },
    GuardKind {
        api_version: "v1",
        kind: "ConfigMap",
        guard: "WeirGuardConfigMap",
    },
    GuardKind {
        api_version: "v1",
        kind: "Secret",
        guard: "WeirGuardSecret",
    },
];

/// `guards.yaml`: one local-config object per name the primary renames, standing for the
/// user's object while kustomize fixes name references (see the module documentation).
pub fn guards_file(canary: &Canary, source: &AppSource) -> String {
    let ns = |n: &Option<String>| n.clone().unwrap_or_else(|| canary.namespace.clone());
    let mut guards = vec![("Deployment", canary.target.clone(), ns(&source.namespace))];
    for c in source.config.iter().filter(|c| !c.hashed) {
        guards.push((c.kind.kind(), c.name.clone(), ns(&c.namespace)));
    }
    let mut text = format!(
        "# Name guards of {}/{}: never applied. kustomize fixes name references once over Flux's\n\
         # whole build; while it does, these stand for your objects that the primary copies, so\n\
         # that your HPA and your pods keep pointing at yours. Then they are dropped (local-config).\n\
         # Written by weir; do not edit.\n",
        canary.namespace, canary.name
    );
    for (kind, name, namespace) in guards {
        let api = GUARD_KINDS
            .iter()
            .find(|g| g.kind == kind)
            .map(|g| g.api_version)
            .unwrap_or("v1");
        text.push_str(&format!(
            "---\napiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {}\n  namespace: {}\n  annotations:\n    config.kubernetes.io/local-config: \"true\"\n    {GUARD_ANNOTATION}: \"true\"\n",
            q(&name),
            q(&namespace)
        ));
    }
    text
}

/// weir's `kustomization.yaml` for an app: the primary, the guards (with the patches that
/// give them their guard kinds) and the routing files. The same bytes for every app.
pub fn owned_kustomization(source: &AppSource, routing: &[&str]) -> String {
    let mut k = String::from(
        "# Written by weir: the objects Flagger would have created in the cluster, kept in Git.\n\
         # Do not edit; weir rewrites this folder on every step.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n  - primary\n  - guards.yaml\n",
    );
    for file in routing {
        k.push_str(&format!("  - {file}\n"));
    }
    k.push_str("patches:\n");
    let present = |kind: &str| {
        kind == "Deployment"
            || source
                .config
                .iter()
                .any(|c| !c.hashed && c.kind.kind() == kind)
    };
    for g in GUARD_KINDS.iter().filter(|g| present(g.kind)) {
        k.push_str(&format!(
            "  - target:\n      kind: {kind}\n      annotationSelector: {GUARD_ANNOTATION}\n    options:\n      allowKindChange: true\n    patch: |-\n      apiVersion: {api}\n      kind: {guard}\n      metadata:\n        name: guard\n",
            kind = g.kind,
            api = g.api_version,
            guard = g.guard,
        ));
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_kustomization_is_carried_without_the_replicas_component() {
        use crate::repo::kustomize::Resolver;
        use crate::repo::mem_tree::MemTree;
        let canary_text = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: backend\n  namespace: prod\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: backend\n  service:\n    port: 9898\n  analysis:\n    interval: 15s\n    stepWeight: 10\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n        interval: 30s\n";
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\nspec:\n  selector:\n    matchLabels:\n      app: backend\n  template:\n    metadata:\n      labels:\n        app: backend\n    spec:\n      containers:\n        - name: backend\n          image: ghcr.io/acme/backend:6.1.0\n";
        let kustomization = "resources:\n  - canary.yaml\n  - deployment.yaml\n";
        let canary = crate::core::spec::scan_file(
            "apps/backend/canary.yaml",
            canary_text.as_bytes(),
            std::time::Duration::from_secs(10),
        )
        .canaries
        .remove(0)
        .unwrap()
        .0;
        let primary = |k: &str| {
            let tree = MemTree::new([
                ("apps/backend/canary.yaml", canary_text),
                ("apps/backend/deployment.yaml", deployment),
                ("apps/backend/kustomization.yaml", k),
            ]);
            let source = Resolver::default().resolve(&tree, &canary).unwrap();
            primary_dir(&canary, &source.selector, &source, "abc1234")
        };
        let with = primary(&format!(
            "{kustomization}components: [../backend.weir/canary-replicas]\n"
        ));
        match with.get("source/backend/kustomization.yaml") {
            Some(Node::File(bytes)) => assert_eq!(String::from_utf8_lossy(bytes), kustomization),
            other => panic!("{other:?}"),
        }
        // The other files are carried by id, as they are.
        assert!(matches!(
            with.get("source/backend/deployment.yaml"),
            Some(Node::Carried { .. })
        ));
        // Without the line, the kustomization is carried by id too, and the primary is the
        // same as with it.
        let without = primary(kustomization);
        assert!(matches!(
            without.get("source/backend/kustomization.yaml"),
            Some(Node::Carried { .. })
        ));
        assert_eq!(
            with.get("source/backend/kustomization.yaml").unwrap().id(),
            without
                .get("source/backend/kustomization.yaml")
                .unwrap()
                .id()
        );
    }

    #[test]
    fn carried_paths_keep_their_place_under_the_root() {
        assert_eq!(carried_path("apps", "apps/backend"), "source/backend");
        assert_eq!(
            carried_path("", "apps/base/p.yaml"),
            "source/apps/base/p.yaml"
        );
        assert_eq!(regex_escape("a.b-c"), "a\\.b-c");
    }
}
