//! The Lease of leader election on the Kubernetes API: one `coordination.k8s.io/v1` Lease,
//! read, created and replaced at the version read (so a concurrent writer gets 409). It decides
//! nothing: what to write comes from `core::lease`, when from `engine::lease`. It never
//! touches any other object.

use crate::core::lease::{LeaseError, LeaseRecord};
use crate::ports::{BoxFuture, LeaseStore};
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use std::path::Path;

/// One Lease through the Kubernetes API.
pub struct KubeLease {
    api: Api<Lease>,
    namespace: String,
    name: String,
    server: String,
}

impl KubeLease {
    /// The Lease `name` in `namespace` (default: the kubeconfig's or service account's
    /// namespace), with a client found as the cluster view finds one.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<KubeLease, String> {
        let (client, config) = crate::adapters::cluster::client(kubeconfig).await?;
        let namespace = namespace
            .map(str::to_string)
            .unwrap_or_else(|| config.default_namespace.clone());
        Ok(KubeLease {
            api: Api::namespaced(client, &namespace),
            namespace,
            name: name.to_string(),
            server: config.cluster_url.to_string(),
        })
    }

    /// The Lease object for `record`.
    fn object(&self, record: &LeaseRecord) -> Result<Lease, LeaseError> {
        let time =
            |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true));
        let value = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": record.version,
                "labels": { "app.kubernetes.io/managed-by": "weir" },
            },
            "spec": {
                "holderIdentity": record.holder(),
                "renewTime": time(record.renew_time),
                "acquireTime": time(record.acquire_time),
                "leaseDurationSeconds": record.duration_seconds,
                "leaseTransitions": record.transitions,
            },
        });
        serde_json::from_value(value)
            .map_err(|e| LeaseError::Unavailable(format!("building the Lease: {e}")))
    }

    fn error(&self, doing: &str, e: kube::Error) -> LeaseError {
        match &e {
            kube::Error::Api(status) if status.code == 409 => LeaseError::Conflict,
            _ => LeaseError::Unavailable(format!(
                "{doing} Lease {}/{}: {}",
                self.namespace,
                self.name,
                crate::adapters::cluster::describe(&e)
            )),
        }
    }
}

/// The election fields of a Lease object.
fn record(lease: &Lease) -> LeaseRecord {
    let spec = serde_json::to_value(&lease.spec).unwrap_or(Value::Null);
    let time = |field: &str| {
        spec.get(field)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let spec_ = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec_.holder_identity,
        renew_time: time("renewTime"),
        acquire_time: time("acquireTime"),
        duration_seconds: spec_.lease_duration_seconds,
        transitions: spec_.lease_transitions.unwrap_or(0),
        version: lease.metadata.resource_version.clone(),
    }
}

impl LeaseStore for KubeLease {
    fn describe(&self) -> String {
        format!("Lease {}/{} at {}", self.namespace, self.name, self.server)
    }

    fn get(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>, LeaseError>> {
        Box::pin(async move {
            match self.api.get_opt(&self.name).await {
                Ok(lease) => Ok(lease.as_ref().map(record)),
                Err(e) => Err(self.error("reading", e)),
            }
        })
    }

    fn create<'a>(
        &'a self,
        lease: &'a LeaseRecord,
    ) -> BoxFuture<'a, Result<LeaseRecord, LeaseError>> {
        Box::pin(async move {
            let mut object = self.object(lease)?;
            object.metadata.resource_version = None;
            self.api
                .create(&PostParams::default(), &object)
                .await
                .map(|l| record(&l))
                .map_err(|e| self.error("creating", e))
        })
    }

    fn update<'a>(
        &'a self,
        lease: &'a LeaseRecord,
    ) -> BoxFuture<'a, Result<LeaseRecord, LeaseError>> {
        Box::pin(async move {
            let object = self.object(lease)?;
            self.api
                .replace(&self.name, &PostParams::default(), &object)
                .await
                .map(|l| record(&l))
                .map_err(|e| self.error("renewing", e))
        })
    }
}
