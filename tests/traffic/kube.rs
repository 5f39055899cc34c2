//! The cluster, as weir's `--cluster kube` reads it: a Kubernetes API server and the two
//! controllers whose writes weir reads.
//!
//! The server is the integration tests' stand-in (`tests/integration/support/kube_api.rs`,
//! included by `main.rs`), so that the tests and the demo talk to one server that answers as
//! the API documents: resource versions, generations, `Status` errors, a bearer token. This
//! file plays the controllers:
//! - Flux's kustomize-controller: one Kustomization, `flux-system/apps` of `./apps`, whose
//!   `status.lastAppliedRevision` names the applied commit; applying a commit writes the app's
//!   Deployments as it builds them (`workloads.rs`) and prunes one the build no longer has. A
//!   commit the simulator cannot read is a failed build: `Ready` turns `False`.
//! - the Deployment controller: a Deployment whose spec changed gets a new generation, which
//!   the controller observes at once, with its new pods not yet updated or available; all of
//!   them are `--rollout-delay` later.
//!
//! The simulator only plays what weir reads; weir never writes here.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::support::kube_api::{self, KubeApi, TOKEN};
use crate::workloads::{Built, Workloads};

/// The Kustomization that applies `./apps`, as `flux bootstrap` names it in gitops-istio.
pub const KUSTOMIZATION: (&str, &str) = ("flux-system", "apps");
const KUSTOMIZATION_API: &str = "kustomize.toolkit.fluxcd.io/v1";
const DEPLOYMENT_API: &str = "apps/v1";

/// An API server compacts its history every 5 minutes; the simulator forgets its own as often.
const COMPACTION: Duration = Duration::from_secs(300);

/// The controllers, writing to the API server they started.
pub struct Cluster {
    api: Arc<KubeApi>,
    namespace: String,
    app: String,
    branch: String,
    rollout: Duration,
    /// Deployments rolling out, and when they will have.
    rolling: BTreeMap<String, Instant>,
    compacted: Instant,
}

impl Cluster {
    /// Starts the API server with Flux's Kustomization in it, which has applied nothing yet.
    pub fn start(namespace: &str, app: &str, branch: &str, rollout: Duration) -> Cluster {
        let api = Arc::new(KubeApi::start());
        let (ns, name) = KUSTOMIZATION;
        api.put(kube_api::kustomization(
            ns,
            name,
            "./apps",
            "flux-system",
            None,
            true,
        ));
        Cluster {
            api,
            namespace: namespace.to_string(),
            app: app.to_string(),
            branch: branch.to_string(),
            rollout,
            rolling: BTreeMap::new(),
            compacted: Instant::now(),
        }
    }

    /// The API server, for `/state`.
    pub fn api(&self) -> Arc<KubeApi> {
        Arc::clone(&self.api)
    }

    /// Writes a kubeconfig for the API server at `path`, atomically: once the file is there,
    /// it is whole and the server answers.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = Path::new(&tmp);
        self.api.write_kubeconfig(tmp, "default", Some(TOKEN));
        std::fs::rename(tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Flux applied `commit`, which builds `workloads`.
    pub fn apply(&mut self, commit: &str, workloads: &Workloads, now: Instant) {
        let pairs = [
            (self.app.clone(), &workloads.canary),
            (format!("{}-primary", self.app), &workloads.primary),
        ];
        for (name, built) in pairs {
            match built {
                Some(built) => self.apply_deployment(built, now),
                None => {
                    // Flux prunes what the build no longer has (`prune: true`).
                    self.api
                        .delete(DEPLOYMENT_API, "Deployment", &self.namespace, &name);
                    self.rolling.remove(&name);
                }
            }
        }
        let revision = self.revision(commit);
        self.set_kustomization(json!({
            "lastAppliedRevision": revision,
            "lastAttemptedRevision": revision,
            "conditions": [ready_condition(
                "True",
                "ReconciliationSucceeded",
                &format!("Applied revision: {revision}"),
            )],
        }));
    }

    /// Flux could not build `commit`: the Kustomization is not ready, and still reports the
    /// revision it applied before.
    pub fn failed(&mut self, commit: &str, why: &str) {
        let revision = self.revision(commit);
        self.set_kustomization(json!({
            "lastAttemptedRevision": revision,
            "conditions": [ready_condition("False", "BuildFailed", why)],
        }));
    }

    /// The Deployment controller at `now`: rollouts that are due are done.
    pub fn tick(&mut self, now: Instant) {
        let done: Vec<String> = self
            .rolling
            .iter()
            .filter(|(_, due)| **due <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in done {
            self.rolling.remove(&name);
            let Some(d) = self
                .api
                .get(DEPLOYMENT_API, "Deployment", &self.namespace, &name)
            else {
                continue;
            };
            let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
            let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
            let mut status = kube_api::ready_deployment_status(generation, replicas as i32);
            // None unavailable: the field goes, as the controller omits a zero.
            status["unavailableReplicas"] = Value::Null;
            self.api
                .patch_status(DEPLOYMENT_API, "Deployment", &self.namespace, &name, status);
        }
        // Nothing reads the stand-in's request log here, and it would grow for as long as
        // the simulator runs.
        self.api.clear_requests();
        if now.saturating_duration_since(self.compacted) >= COMPACTION {
            self.api.expire_history();
            self.compacted = now;
        }
    }

    /// Writes the Deployment `built` as Flux applies it: a new spec is a new generation, and
    /// the controller starts rolling it out.
    fn apply_deployment(&mut self, built: &Built, now: Instant) {
        let ns = &self.namespace;
        let old = self.api.get(DEPLOYMENT_API, "Deployment", ns, &built.name);
        let mut object = deployment(ns, built);
        if let Some(old) = &old {
            if old["spec"] == object["spec"] {
                // Applying what the cluster has is no write.
                return;
            }
            // The controller's last report stays until it observes the new generation.
            object["status"] = old["status"].clone();
        }
        let stored = self.api.put(object);
        let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1);
        let template_changed = old
            .as_ref()
            .is_none_or(|o| o["spec"]["template"] != stored["spec"]["template"]);
        let status = rolling_status(
            old.as_ref().map(|o| &o["status"]),
            generation,
            built.replicas,
            template_changed,
        );
        self.api
            .patch_status(DEPLOYMENT_API, "Deployment", ns, &built.name, status);
        self.rolling.insert(built.name.clone(), now + self.rollout);
    }

    fn set_kustomization(&self, status: Value) {
        let (ns, name) = KUSTOMIZATION;
        self.api
            .patch_status(KUSTOMIZATION_API, "Kustomization", ns, name, status);
    }

    /// Flux's revision of `commit`: `main@sha1:<id>`.
    fn revision(&self, commit: &str) -> String {
        format!("{}@sha1:{commit}", self.branch)
    }
}

/// The Kustomization's `Ready` condition.
fn ready_condition(status: &str, reason: &str, message: &str) -> Value {
    json!({
        "type": "Ready",
        "status": status,
        "observedGeneration": 1,
        "lastTransitionTime": now(),
        "reason": reason,
        "message": message,
    })
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The Deployment `built` in `namespace`, as applied: one container, pods labelled
/// `app: <name>`, no status.
fn deployment(namespace: &str, built: &Built) -> Value {
    let name = &built.name;
    json!({
        "apiVersion": DEPLOYMENT_API,
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": namespace, "labels": { "app": name } },
        "spec": {
            "replicas": built.replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": name, "image": built.image }] },
            },
        },
    })
}

/// The status the Deployment controller reports as soon as it observes `generation`, before
/// any new pod is ready: a new template has no updated pod yet and the old pods still serve;
/// a new count keeps the pods it has (a scale-down's are terminating).
fn rolling_status(
    old: Option<&Value>,
    generation: i64,
    desired: i64,
    template_changed: bool,
) -> Value {
    let count = |field: &str| old.and_then(|s| s[field].as_i64()).unwrap_or(0);
    let replicas = count("replicas");
    let available = count("availableReplicas").min(replicas);
    let updated = match template_changed {
        true => 0,
        false => count("updatedReplicas").min(desired),
    };
    let now = now();
    let (status, reason, message) = match available >= desired {
        true => (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        ),
        false => (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        ),
    };
    json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": available,
        "availableReplicas": available,
        "unavailableReplicas": (desired - available).max(0),
        "conditions": [
            {
                "type": "Available",
                "status": status,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": "ReplicaSetUpdated",
                "message": "ReplicaSet is progressing.",
            },
        ],
    })
}

/// What the API server holds for the app, for `/state`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClusterView {
    /// The commit the Kustomization last applied.
    pub applied: Option<String>,
    /// `<app>`, when it exists.
    pub canary_deployment: Option<DeploymentView>,
    /// `<app>-primary`, when it exists.
    pub primary_deployment: Option<DeploymentView>,
}

/// One Deployment's spec and status, in a few numbers.
#[derive(Debug, Serialize, PartialEq)]
pub struct DeploymentView {
    /// The first container's image.
    pub image: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// `spec.replicas`.
    pub replicas: i64,
    /// `status.updatedReplicas`.
    pub updated: i64,
    /// `status.availableReplicas`.
    pub available: i64,
}

/// What `api` holds for `app` in `namespace`.
pub fn view(api: &KubeApi, namespace: &str, app: &str) -> ClusterView {
    let (ns, name) = KUSTOMIZATION;
    let applied = api
        .get(KUSTOMIZATION_API, "Kustomization", ns, name)
        .and_then(|k| {
            k["status"]["lastAppliedRevision"]
                .as_str()
                .map(str::to_string)
        })
        .map(|rev| match rev.rsplit_once(':') {
            Some((_, commit)) => commit.to_string(),
            None => rev,
        });
    let deployment = |name: &str| {
        api.get(DEPLOYMENT_API, "Deployment", namespace, name)
            .map(|d| {
                let int = |v: &Value| v.as_i64().unwrap_or(0);
                DeploymentView {
                    image: d["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    generation: int(&d["metadata"]["generation"]),
                    replicas: int(&d["spec"]["replicas"]),
                    updated: int(&d["status"]["updatedReplicas"]),
                    available: int(&d["status"]["availableReplicas"]),
                }
            })
    };
    ClusterView {
        applied,
        canary_deployment: deployment(app),
        primary_deployment: deployment(&format!("{app}-primary")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolled_out(replicas: i64) -> Value {
        json!({"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas})
    }

    fn counts(status: &Value) -> [i64; 4] {
        [
            "observedGeneration",
            "replicas",
            "updatedReplicas",
            "availableReplicas",
        ]
        .map(|f| status[f].as_i64().unwrap())
    }

    #[test]
    fn a_new_image_has_no_updated_pod_until_the_rollout_is_done() {
        let status = rolling_status(Some(&rolled_out(2)), 2, 2, true);
        assert_eq!(counts(&status), [2, 2, 0, 2]);
        assert_eq!(status["conditions"][0]["status"], "True");
    }

    #[test]
    fn scaling_keeps_the_pods_it_has_until_the_rollout_is_done() {
        let up = rolling_status(Some(&rolled_out(0)), 2, 2, false);
        assert_eq!(counts(&up), [2, 0, 0, 0]);
        assert_eq!(up["conditions"][0]["reason"], "MinimumReplicasUnavailable");
        let down = rolling_status(Some(&rolled_out(2)), 2, 0, false);
        assert_eq!(counts(&down), [2, 2, 0, 2]);
        let new = rolling_status(None, 1, 2, true);
        assert_eq!(counts(&new), [1, 0, 0, 0]);
    }
}
