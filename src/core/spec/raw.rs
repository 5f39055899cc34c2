//! Wire types: serde mirrors of Flagger's `Canary` and `MetricTemplate` files.
//!
//! Field names, nesting and types follow `flagger.app/v1beta1` exactly. Every struct denies
//! unknown fields so a typo is an error with a position instead of a silently ignored knob.
//! Nothing here applies defaults or checks meaning: that is `canary.rs` and `template.rs`.
//! Some fields are read only so that their presence is accepted (they are the file's, not
//! weir's), hence the dead-code allowance.
#![allow(dead_code)]

use serde::Deserialize;
use serde_yaml::Value;
use std::collections::BTreeMap;

/// Only `apiVersion` and `kind`, to decide what a document is before parsing it strictly.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    #[serde(default)]
    pub api_version: Option<Value>,
    #[serde(default)]
    pub kind: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Canary {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: CanarySpec,
    #[serde(default)]
    pub status: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CrossRef {
    #[serde(default)]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalRef {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanarySpec {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub metrics_server: Option<String>,
    pub target_ref: CrossRef,
    #[serde(default)]
    pub autoscaler_ref: Option<CrossRef>,
    #[serde(default)]
    pub ingress_ref: Option<LocalRef>,
    #[serde(default)]
    pub route_ref: Option<LocalRef>,
    #[serde(default)]
    pub upstream_ref: Option<Value>,
    pub service: Service,
    #[serde(default)]
    pub analysis: Option<Analysis>,
    #[serde(default)]
    pub canary_analysis: Option<Value>,
    #[serde(default)]
    pub progress_deadline_seconds: Option<u32>,
    #[serde(default)]
    pub skip_analysis: Option<bool>,
    #[serde(default)]
    pub revert_on_deletion: Option<bool>,
    #[serde(default)]
    pub suspend: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Service {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u32,
    #[serde(default)]
    pub port_name: Option<String>,
    #[serde(default)]
    pub target_port: Option<Value>,
    #[serde(default)]
    pub app_protocol: Option<String>,
    #[serde(default)]
    pub traffic_distribution: Option<String>,
    #[serde(default)]
    pub port_discovery: Option<bool>,
    #[serde(default)]
    pub headless: Option<bool>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub backend_timeout: Option<Value>,
    #[serde(default)]
    pub gateways: Option<Vec<String>>,
    #[serde(default)]
    pub gateway_refs: Option<Value>,
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    #[serde(default)]
    pub delegation: Option<bool>,
    #[serde(default)]
    pub traffic_policy: Option<Value>,
    #[serde(default, rename = "match")]
    pub match_: Option<Vec<Value>>,
    #[serde(default)]
    pub rewrite: Option<Value>,
    #[serde(default)]
    pub retries: Option<Value>,
    #[serde(default)]
    pub headers: Option<Value>,
    #[serde(default)]
    pub mirror: Option<Value>,
    #[serde(default)]
    pub cors_policy: Option<Value>,
    #[serde(default)]
    pub mesh_name: Option<Value>,
    #[serde(default)]
    pub backends: Option<Value>,
    #[serde(default)]
    pub apex: Option<CustomMetadata>,
    #[serde(default)]
    pub primary: Option<CustomMetadata>,
    #[serde(default)]
    pub canary: Option<CustomMetadata>,
    #[serde(default)]
    pub unmanaged_metadata: Option<Value>,
}

/// Labels and annotations for the objects weir writes (`service.apex`, `.primary`, `.canary`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomMetadata {
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Analysis {
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub iterations: Option<u32>,
    #[serde(default)]
    pub mirror: Option<bool>,
    #[serde(default)]
    pub mirror_weight: Option<u32>,
    #[serde(default)]
    pub max_weight: Option<u32>,
    #[serde(default)]
    pub step_weight: Option<u32>,
    #[serde(default)]
    pub step_weights: Option<Vec<u32>>,
    #[serde(default)]
    pub step_weight_promotion: Option<u32>,
    #[serde(default)]
    pub threshold: Option<u32>,
    #[serde(default)]
    pub primary_ready_threshold: Option<u32>,
    #[serde(default)]
    pub canary_ready_threshold: Option<u32>,
    #[serde(default)]
    pub alerts: Option<Vec<Alert>>,
    #[serde(default)]
    pub metrics: Option<Vec<Metric>>,
    #[serde(default)]
    pub webhooks: Option<Vec<Webhook>>,
    #[serde(default, rename = "match")]
    pub match_: Option<Vec<Value>>,
    #[serde(default)]
    pub session_affinity: Option<SessionAffinity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Webhook {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub mute_alert: Option<bool>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default, rename = "disableTLS")]
    pub disable_tls: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Alert {
    pub name: String,
    #[serde(default)]
    pub severity: Option<String>,
    pub provider_ref: TemplateRef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionAffinity {
    pub cookie_name: String,
    #[serde(default)]
    pub primary_cookie_name: Option<String>,
    #[serde(default)]
    pub max_age: Option<u32>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub http_only: Option<bool>,
    #[serde(default)]
    pub partitioned: Option<bool>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub same_site: Option<String>,
    #[serde(default)]
    pub secure: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metric {
    pub name: String,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub threshold_range: Option<ThresholdRange>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub template_ref: Option<TemplateRef>,
    #[serde(default)]
    pub template_variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRange {
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricTemplate {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: MetricTemplateSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricTemplateSpec {
    pub provider: Provider,
    pub query: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Provider {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub secret_ref: Option<Value>,
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
    #[serde(default)]
    pub region: Option<String>,
}
