//! The cluster view on the Kubernetes API, read-only: the Flux Kustomization that builds an
//! app's folder (what it last applied, whether it is ready) and the app's two Deployments.
//!
//! It gets and lists; it never creates, patches or deletes anything. The Kustomization of an
//! app is the one its Canary names (annotation `weir.dev/kustomization: namespace/name`), or
//! else the one whose `spec.path` is the longest prefix of the app's folder. One look at many
//! apps lists the Kustomizations once, not once per app.

use crate::core::cluster::{ClusterTarget, Observation, Workload};
use crate::core::join::join_all;
use crate::ports::{BoxFuture, ClusterView};
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The longest wait for the API server to connect or answer one request.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// Flux's Kustomization, `kustomize.toolkit.fluxcd.io/v1`.
fn kustomization_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    )
}

/// A client from `kubeconfig`, or else as kube finds one (the in-cluster service account,
/// then `KUBECONFIG` and `~/.kube/config`), with the configuration it was built from (its
/// server and default namespace).
pub async fn client(kubeconfig: Option<&Path>) -> Result<(kube::Client, kube::Config), String> {
    crate::adapters::tls::install_crypto_provider();
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
    };
    let mut config = config;
    // weir's own holds cover a cluster that cannot answer now; kube's retries (up to 15,
    // minutes of back-off) would only stall the tick, and without a read timeout a server
    // that accepts and never answers would stall it for good.
    config.default_retry = false;
    config.connect_timeout = Some(TIMEOUT);
    config.read_timeout = Some(TIMEOUT);
    config.write_timeout = Some(TIMEOUT);
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config.clone())
        .map_err(|e| format!("Kubernetes client for {server}: {e}"))?;
    Ok((client, config))
}

/// The cluster view on the Kubernetes API.
pub struct KubeView {
    client: kube::Client,
    /// Where the client points, for `status` (never a credential).
    server: String,
}

impl KubeView {
    /// A client from `kubeconfig`, or else as kube finds one (the in-cluster service account,
    /// then `KUBECONFIG` and `~/.kube/config`).
    pub async fn connect(kubeconfig: Option<&Path>) -> Result<KubeView, String> {
        let (client, config) = client(kubeconfig).await?;
        Ok(KubeView {
            client,
            server: config.cluster_url.to_string(),
        })
    }

    /// Every Kustomization in the cluster.
    async fn kustomizations(&self) -> Result<Vec<DynamicObject>, String> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kustomization_resource());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing Flux Kustomizations: {}", describe(&e)))?;
        Ok(list.items)
    }

    /// The Kustomization that builds `target`'s folder, from `all` unless the Canary names one.
    async fn kustomization(
        &self,
        target: &ClusterTarget,
        all: &Result<Vec<DynamicObject>, String>,
    ) -> Result<DynamicObject, String> {
        if let Some(named) = &target.kustomization {
            let (ns, name) = named.split_once('/').unwrap_or(("flux-system", named));
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &kustomization_resource());
            return api
                .get(name)
                .await
                .map_err(|e| format!("Kustomization {ns}/{name}: {}", describe(&e)));
        }
        let mut best: Option<(usize, &DynamicObject)> = None;
        for k in all.as_ref().map_err(Clone::clone)? {
            let Some(path) = k.data.pointer("/spec/path").and_then(Value::as_str) else {
                continue;
            };
            let path = normalise(path);
            let covers = path.is_empty()
                || target.dir == path
                || target.dir.starts_with(&format!("{path}/"));
            if covers && best.as_ref().is_none_or(|(len, _)| path.len() > *len) {
                best = Some((path.len(), k));
            }
        }
        best.map(|(_, k)| k.clone()).ok_or_else(|| {
            format!(
                "no Flux Kustomization has a spec.path that holds {}; name one with the Canary annotation weir.dev/kustomization: <namespace>/<name>",
                target.dir
            )
        })
    }

    /// A Deployment, or `None` when it does not exist.
    async fn deployment(&self, ns: &str, name: &str) -> Result<Option<Workload>, String> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        match api.get_opt(name).await {
            Ok(d) => Ok(d.map(|d| workload(&d))),
            Err(e) => Err(format!("Deployment {ns}/{name}: {}", describe(&e))),
        }
    }
}

impl ClusterView for KubeView {
    fn describe(&self) -> String {
        format!("Kubernetes API at {}", self.server)
    }

    fn observe<'a>(
        &'a self,
        targets: &'a [ClusterTarget],
    ) -> BoxFuture<'a, Vec<Result<Observation, String>>> {
        Box::pin(async move {
            let all = match targets.iter().any(|t| t.kustomization.is_none()) {
                true => self.kustomizations().await,
                false => Ok(Vec::new()),
            };
            let all = &all;
            join_all(targets.iter().map(|t| self.observe_one(t, all))).await
        })
    }
}

impl KubeView {
    /// One app, given the list of Kustomizations.
    async fn observe_one(
        &self,
        target: &ClusterTarget,
        all: &Result<Vec<DynamicObject>, String>,
    ) -> Result<Observation, String> {
        {
            let k = self.kustomization(target, all).await?;
            let ns = k.metadata.namespace.clone().unwrap_or_default();
            let name = k.metadata.name.clone().unwrap_or_default();
            let primary = format!("{}-primary", target.target);
            let canary = self.deployment(&target.namespace, &target.target).await?;
            let primary = self.deployment(&target.namespace, &primary).await?;
            Ok(Observation {
                applier: format!("Kustomization {ns}/{name}"),
                applied_revision: k
                    .data
                    .pointer("/status/lastAppliedRevision")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                applied_at: None,
                unhealthy: unhealthy(&k),
                canary,
                primary,
                reads_workloads: true,
            })
        }
    }
}

/// `./apps/` and `apps` are the same folder; `./` and `` the root.
fn normalise(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .trim_start_matches('.')
        .to_string()
}

/// Why a Kustomization is not ready now: its `Ready` condition is not `True`, or the
/// controller has not seen its latest generation.
fn unhealthy(k: &DynamicObject) -> Option<String> {
    let generation = k.metadata.generation.unwrap_or(0);
    let observed = k
        .data
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if observed < generation {
        return Some(format!(
            "kustomize-controller has not reconciled generation {generation} yet"
        ));
    }
    let ready = k
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        });
    match ready {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => None,
        Some(c) => Some(format!(
            "not ready ({}): {}",
            c.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason"),
            crate::core::text::clean(c.get("message").and_then(Value::as_str).unwrap_or(""), 300)
        )),
        None => Some("no Ready condition yet".to_string()),
    }
}

/// The fields of a Deployment that readiness is judged on.
fn workload(d: &Deployment) -> Workload {
    let status = d.status.clone().unwrap_or_default();
    let condition = |kind: &str| {
        status
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == kind))
    };
    let unavailable_since = condition("Available")
        .filter(|c| {
            c.status == "False" && c.reason.as_deref() == Some("MinimumReplicasUnavailable")
        })
        .and_then(|c| c.last_update_time.as_ref())
        .map(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0).unwrap_or_default());
    Workload {
        name: d.metadata.name.clone().unwrap_or_default(),
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: status.observed_generation.unwrap_or(0),
        desired: d.spec.as_ref().and_then(|s| s.replicas),
        replicas: status.replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        deadline_exceeded: condition("Progressing")
            .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")),
        unavailable_since,
    }
}

/// A kube error in one line, without the request's credentials (kube never prints them).
pub(crate) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => crate::core::text::clean(&other.to_string(), 300),
    }
}
