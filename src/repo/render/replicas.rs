//! The `canary-replicas` component in weir's folder: a kustomize Component that keeps the
//! canary Deployment (the user's own, the Canary's target) at zero replicas while no release
//! runs, and gives it its replicas back while one does, as Flagger's ScaleToZero and
//! ScaleFromZero do in the cluster. The user's Deployment stays the user's file: the app's
//! kustomization opts in with one line, `components: [../<app>.weir/canary-replicas]`.
//!
//! Which phases run the canary is the domain's rule ([`Phase::canary_runs`]); how many
//! replicas it runs with is read from the app's build (its Deployment and HPA). Pure: same
//! inputs, same bytes.

use crate::core::names::replicas_component_ref;
use crate::core::spec::{Canary, Phase};
use crate::repo::kustomize::AppSource;

/// A scalar for YAML: JSON's quoting is valid YAML and cannot be broken out of.
fn q(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

/// What the component does to the canary Deployment in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    /// No release runs: zero.
    Zero,
    /// A release runs and the Deployment sets its own replicas: they apply, untouched.
    Own(u64),
    /// A release runs and the Deployment sets none (an HPA scales it): this many, the HPA's
    /// minimum (1 without an HPA), so that the Deployment leaves zero and the HPA takes over.
    Set(u64),
}

/// The replicas of the canary in `phase`, given the app's build (`current`: the source the
/// canary Deployment is built from). As Flagger, a Deployment at `replicas: 0` counts as one
/// that sets none.
pub fn replicas(canary: &Canary, phase: Phase, current: &AppSource) -> Replicas {
    if !phase.canary_runs() {
        return Replicas::Zero;
    }
    match current.replicas {
        Some(n) if n > 0 => Replicas::Own(n),
        _ => Replicas::Set(match &canary.autoscaler {
            Some(_) => current.hpa_min_replicas.unwrap_or(1).max(1),
            None => 1,
        }),
    }
}

/// `canary-replicas/kustomization.yaml` for the app in `phase`.
pub fn component(canary: &Canary, phase: Phase, current: &AppSource) -> String {
    let owner = format!("{}/{}", canary.namespace, canary.name);
    let target = &canary.target;
    let mut k = format!(
        "# Canary replicas of {owner}. Written by weir; do not edit.\n\
         # A kustomize Component: it keeps your Deployment {target} (the canary) at zero replicas\n\
         # while no release runs, as Flagger does, and gives it its replicas back during a release.\n\
         # It acts only once {file} lists it, with this line:\n\
         #   components: [{reference}]\n\
         # The primary never includes it.\n",
        file = current.opt_in.file(),
        reference = replicas_component_ref(&current.dir),
    );
    let value = match replicas(canary, phase, current) {
        Replicas::Zero => {
            k.push_str(&format!(
                "# {phase}: no release runs, so the canary runs no pods.\n"
            ));
            0
        }
        Replicas::Own(n) => {
            k.push_str(&format!(
                "# {phase}: a release runs; your Deployment's own spec.replicas ({n}) applies.\n"
            ));
            k.push_str(HEAD);
            k.push_str("patches: []\n");
            return k;
        }
        Replicas::Set(n) => {
            let (who, what) = match (&canary.autoscaler, current.hpa_min_replicas) {
                (Some(hpa), Some(_)) => (
                    format!("the HPA {hpa} scales it"),
                    "the HPA's minReplicas, and the HPA takes over from there",
                ),
                (Some(hpa), None) => (
                    format!("the HPA {hpa} scales it"),
                    "the HPA's default minReplicas, and the HPA takes over from there",
                ),
                (None, _) => (
                    "and the Canary names no HPA".to_string(),
                    "one, as Flagger scales such a canary",
                ),
            };
            k.push_str(&format!(
                "# {phase}: a release runs. Your Deployment sets no spec.replicas ({who}),\n\
                 # so this sets {n}: {what}.\n\
                 # A value rather than no patch: Flux applies server-side, and a field it stops\n\
                 # setting may keep its last value, 0; an HPA never scales a Deployment at zero.\n"
            ));
            n
        }
    };
    k.push_str(HEAD);
    k.push_str(
        "patches:\n  - target:\n      group: apps\n      version: v1\n      kind: Deployment\n",
    );
    k.push_str(&format!(
        "      name: {}\n",
        q(&crate::repo::render::primary::regex_escape(target))
    ));
    if let Some(ns) = &current.component_namespace {
        k.push_str(&format!("      namespace: {}\n", q(ns)));
    }
    k.push_str(&format!(
        "    patch: |-\n      - op: add\n        path: /spec/replicas\n        value: {value}\n"
    ));
    k
}

const HEAD: &str = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::kustomize::Resolver;
    use crate::repo::mem_tree::MemTree;

    const PHASES: [Phase; 8] = [
        Phase::Initialized,
        Phase::Waiting,
        Phase::Progressing,
        Phase::WaitingPromotion,
        Phase::Promoting,
        Phase::Finalising,
        Phase::Succeeded,
        Phase::Failed,
    ];

    const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: backend\n  namespace: prod\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: backend\n  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: backend\n  service:\n    port: 9898\n  analysis:\n    interval: 15s\n    stepWeight: 10\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n        interval: 30s\n";
    const HPA: &str = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: backend\n  namespace: prod\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: backend\n  minReplicas: 2\n  maxReplicas: 4\n";
    const KUSTOMIZATION: &str = "resources:\n  - canary.yaml\n  - deployment.yaml\n  - hpa.yaml\ncomponents: [../backend.weir/canary-replicas]\n";

    fn deployment(replicas: Option<u64>, namespace: Option<&str>) -> String {
        let ns = namespace.map_or(String::new(), |n| format!("  namespace: {n}\n"));
        let r = replicas.map_or(String::new(), |r| format!("  replicas: {r}\n"));
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\n{ns}spec:\n{r}  selector:\n    matchLabels:\n      app: backend\n  template:\n    metadata:\n      labels:\n        app: backend\n    spec:\n      containers:\n        - name: backend\n          image: ghcr.io/acme/backend:6.1.0\n")
    }

    /// The Canary and the app's source, read from `files` as weir reads a commit.
    fn app(files: &[(&str, &str)]) -> (Canary, AppSource) {
        let tree = MemTree::new(files.iter().copied());
        let canary_text = files
            .iter()
            .find(|(p, _)| *p == "apps/backend/canary.yaml")
            .map_or(CANARY, |(_, t)| t);
        let scan = crate::core::spec::scan_file(
            "apps/backend/canary.yaml",
            canary_text.as_bytes(),
            std::time::Duration::from_secs(10),
        );
        let (canary, _) = scan.canaries.into_iter().next().unwrap().unwrap();
        let source = Resolver::default().resolve(&tree, &canary).unwrap();
        (canary, (*source).clone())
    }

    fn gitops_istio(deployment: &str) -> (Canary, AppSource) {
        app(&[
            ("apps/backend/canary.yaml", CANARY),
            ("apps/backend/deployment.yaml", deployment),
            ("apps/backend/hpa.yaml", HPA),
            ("apps/backend/kustomization.yaml", KUSTOMIZATION),
        ])
    }

    #[test]
    fn zero_at_rest_and_the_hpas_minimum_during_a_release() {
        let (canary, source) = gitops_istio(&deployment(None, Some("prod")));
        for phase in PHASES {
            let expected = match phase {
                Phase::Initialized | Phase::Waiting | Phase::Succeeded | Phase::Failed => {
                    Replicas::Zero
                }
                _ => Replicas::Set(2),
            };
            assert_eq!(replicas(&canary, phase, &source), expected, "{phase}");
            let text = component(&canary, phase, &source);
            // Same input, same bytes.
            assert_eq!(text, component(&canary, phase, &source));
            let value = match expected {
                Replicas::Zero => 0,
                _ => 2,
            };
            assert!(
                text.ends_with(&format!(
                    "        path: /spec/replicas\n        value: {value}\n"
                )),
                "{phase}:\n{text}"
            );
            crate::core::yaml::from_str::<serde_yaml::Value>(&text).unwrap();
        }
        insta::assert_snapshot!("at_rest", component(&canary, Phase::Succeeded, &source));
        insta::assert_snapshot!(
            "release_with_an_hpa",
            component(&canary, Phase::Progressing, &source)
        );
    }

    #[test]
    fn a_deployment_that_sets_its_replicas_keeps_them_during_a_release() {
        let (canary, source) = gitops_istio(&deployment(Some(3), Some("prod")));
        assert_eq!(replicas(&canary, Phase::Failed, &source), Replicas::Zero);
        for phase in PHASES.into_iter().filter(|p| p.canary_runs()) {
            assert_eq!(
                replicas(&canary, phase, &source),
                Replicas::Own(3),
                "{phase}"
            );
            let text = component(&canary, phase, &source);
            assert!(text.ends_with("kind: Component\npatches: []\n"), "{text}");
            assert!(!text.contains("op: add"), "{text}");
        }
        insta::assert_snapshot!(
            "release_with_own_replicas",
            component(&canary, Phase::Promoting, &source)
        );
        // As Flagger, `replicas: 0` is not a number of replicas to run the canary with.
        let (canary, source) = gitops_istio(&deployment(Some(0), Some("prod")));
        assert_eq!(
            replicas(&canary, Phase::Progressing, &source),
            Replicas::Set(2)
        );
    }

    #[test]
    fn without_an_hpa_the_canary_runs_one_replica() {
        let canary_text = CANARY.replace(
            "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: backend\n",
            "",
        );
        let d = deployment(None, Some("prod"));
        let (canary, source) = app(&[
            ("apps/backend/canary.yaml", &canary_text),
            ("apps/backend/deployment.yaml", &d),
            ("apps/backend/hpa.yaml", HPA),
            ("apps/backend/kustomization.yaml", KUSTOMIZATION),
        ]);
        assert_eq!(
            replicas(&canary, Phase::Progressing, &source),
            Replicas::Set(1)
        );
        assert!(component(&canary, Phase::Progressing, &source)
            .contains("so this sets 1: one, as Flagger"));
        // An HPA without minReplicas: Kubernetes' default, 1.
        let hpa = HPA.replace("  minReplicas: 2\n", "");
        let (canary, source) = app(&[
            ("apps/backend/canary.yaml", CANARY),
            ("apps/backend/deployment.yaml", &d),
            ("apps/backend/hpa.yaml", &hpa),
            ("apps/backend/kustomization.yaml", KUSTOMIZATION),
        ]);
        assert_eq!(
            replicas(&canary, Phase::Finalising, &source),
            Replicas::Set(1)
        );
    }

    #[test]
    fn the_target_namespace_is_the_one_it_has_when_components_apply() {
        // kustomize applies the app's components before its own `namespace:`: the patch must
        // not name a namespace the Deployment does not have yet.
        let d = deployment(None, None);
        let with_ns = format!("namespace: prod\n{KUSTOMIZATION}");
        let (canary, source) = app(&[
            ("apps/backend/canary.yaml", CANARY),
            ("apps/backend/deployment.yaml", &d),
            ("apps/backend/hpa.yaml", HPA),
            ("apps/backend/kustomization.yaml", &with_ns),
        ]);
        assert_eq!(source.component_namespace, None);
        assert!(!component(&canary, Phase::Initialized, &source).contains("namespace:"));
        // A base's `namespace:` is applied before: the patch names it.
        let (canary, source) = app(&[
            ("apps/backend/canary.yaml", CANARY),
            ("apps/base/deployment.yaml", &d),
            ("apps/base/kustomization.yaml", "namespace: team\nresources: [deployment.yaml]\n"),
            ("apps/backend/hpa.yaml", HPA),
            (
                "apps/backend/kustomization.yaml",
                "namespace: prod\nresources: [canary.yaml, ../base, hpa.yaml]\ncomponents: [../backend.weir/canary-replicas]\n",
            ),
        ]);
        assert_eq!(source.component_namespace.as_deref(), Some("team"));
        assert!(
            component(&canary, Phase::Initialized, &source).contains("      namespace: \"team\"\n")
        );
    }
}
