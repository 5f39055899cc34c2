//! Flux and the kubelet, played by the test against the Kubernetes API stand-in: `apply`
//! builds a commit as Flux builds `./apps` (`kubectl kustomize`), writes its Deployments to
//! the API (a changed spec gets a new generation, not observed yet) and moves the
//! Kustomization's `lastAppliedRevision`; `settle` and `stall` write what the Deployment
//! controller would report. weir's real cluster view reads all of it through a kubeconfig.

use super::kube_api::{self, KubeApi, Stuck};
use super::repo::{docs, flux_build, Fixture};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use weir::adapters::cluster::KubeView;
use weir::ports::ClusterView;

/// The Kustomization that applies `./apps` in the tests.
pub const KUSTOMIZATION: (&str, &str) = ("flux-system", "apps");

/// A cluster with Flux in it.
pub struct FluxSim {
    pub api: KubeApi,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl FluxSim {
    /// A cluster whose Kustomization `flux-system/apps` (path `./apps`) has applied nothing.
    pub fn start() -> FluxSim {
        let api = KubeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.kubeconfig(dir.path());
        let (ns, name) = KUSTOMIZATION;
        api.put(kube_api::kustomization(
            ns,
            name,
            "./apps",
            "flux-system",
            None,
            true,
        ));
        FluxSim {
            api,
            kubeconfig,
            _dir: dir,
        }
    }

    /// weir's cluster view on this cluster.
    pub async fn view(&self) -> Arc<dyn ClusterView> {
        Arc::new(KubeView::connect(Some(&self.kubeconfig)).await.unwrap())
    }

    /// Flux applies commit `sha`: its Deployments as built, then the Kustomization's status.
    pub fn apply(&self, fixture: &Fixture, sha: &str) {
        for d in docs(&flux_build(fixture, sha)) {
            if d["kind"].as_str() != Some("Deployment") {
                continue;
            }
            let mut object: Value = serde_json::to_value(&d).unwrap();
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap()
                .to_string();
            let name = object["metadata"]["name"].as_str().unwrap().to_string();
            let old = self.api.get("apps/v1", "Deployment", &ns, &name);
            if let Some(old) = &old {
                object["metadata"]["generation"] = old["metadata"]["generation"].clone();
            }
            object.as_object_mut().unwrap().remove("status");
            let stored = self.api.put(object);
            let generation = stored["metadata"]["generation"].as_i64().unwrap();
            // The controller's last report stays until it observes the new generation.
            if let Some(status) = old.and_then(|o| o.get("status").cloned()) {
                self.api
                    .patch_status("apps/v1", "Deployment", &ns, &name, status);
            } else {
                self.api.patch_status(
                    "apps/v1",
                    "Deployment",
                    &ns,
                    &name,
                    json!({"observedGeneration": generation - 1}),
                );
            }
        }
        let (ns, name) = KUSTOMIZATION;
        self.api.patch_status(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            ns,
            name,
            json!({
                "lastAppliedRevision": kube_api::revision(sha),
                "lastAttemptedRevision": kube_api::revision(sha),
            }),
        );
    }

    /// The Deployment controller reports `name` rolled out: every desired replica ready.
    pub fn settle(&self, ns: &str, name: &str) {
        let d = self
            .api
            .get("apps/v1", "Deployment", ns, name)
            .unwrap_or_else(|| panic!("Deployment {ns}/{name} was never applied"));
        let generation = d["metadata"]["generation"].as_i64().unwrap();
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
        self.api.patch_status(
            "apps/v1",
            "Deployment",
            ns,
            name,
            kube_api::ready_deployment_status(generation, replicas),
        );
    }

    /// The Deployment controller reports `name` short of available pods since `since`.
    pub fn stall(&self, ns: &str, name: &str, since: DateTime<Utc>) {
        let d = self.api.get("apps/v1", "Deployment", ns, name).unwrap();
        let generation = d["metadata"]["generation"].as_i64().unwrap();
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1) as i32;
        let mut status =
            kube_api::stuck_deployment_status(generation, replicas, 0, Stuck::Unavailable, since);
        // Rolled out, but none of the new pods ever became available.
        status["updatedReplicas"] = json!(replicas);
        status["replicas"] = json!(replicas);
        status["availableReplicas"] = json!(0);
        self.api
            .patch_status("apps/v1", "Deployment", ns, name, status);
    }
}
