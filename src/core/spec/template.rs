//! `MetricTemplate`: a named PromQL query and the Prometheus that answers it.

use super::raw;
use super::{p, Located, LocatedError};
use std::collections::BTreeMap;

/// A validated MetricTemplate.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricTemplate {
    /// Repository-relative path of its file.
    pub file: String,
    /// The folder's kustomization `namespace:`, else `metadata.namespace` (empty when
    /// neither says).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.provider.address`; the global default applies when absent.
    pub address: Option<String>,
    /// The query, with `{{ ... }}` placeholders.
    pub query: String,
    /// Line and column of `spec.query`.
    pub query_at: (usize, usize),
}

pub(super) fn validate(
    raw: raw::MetricTemplate,
    at: &Located,
    namespace: Option<&str>,
) -> Result<MetricTemplate, Vec<LocatedError>> {
    let mut errors = Vec::new();
    let provider = &raw.spec.provider;
    if provider.type_ != "prometheus" {
        errors.push(at.error(
            &p(&["spec", "provider", "type"]),
            format!(
                "provider `{}` is not supported; weir queries Prometheus (type: prometheus)",
                provider.type_
            ),
        ));
    }
    if provider.secret_ref.is_some() {
        errors.push(at.error(
            &p(&["spec", "provider", "secretRef"]),
            "weir does not read Kubernetes secrets; set the credentials with WEIR_PROMETHEUS_TOKEN or WEIR_PROMETHEUS_USER/WEIR_PROMETHEUS_PASSWORD",
        ));
    }
    if provider.insecure_skip_verify.unwrap_or(false) {
        errors.push(at.error(
            &p(&["spec", "provider", "insecureSkipVerify"]),
            "not supported: weir always verifies TLS certificates",
        ));
    }
    if let Some(address) = &provider.address {
        match url::Url::parse(address) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => errors.push(at.error(
                &p(&["spec", "provider", "address"]),
                format!(
                    "`{address}` is not an http(s) URL such as http://prometheus.istio-system:9090"
                ),
            )),
        }
    }
    if raw.spec.query.trim().is_empty() {
        errors.push(at.error(&p(&["spec", "query"]), "the query is empty"));
    }
    if let Err(e) = crate::core::query::placeholders(&raw.spec.query) {
        errors.push(at.error(&p(&["spec", "query"]), e.to_string()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let query_at = at
        .index
        .map(|i| i.locate(at.doc, &p(&["spec", "query"])))
        .map(|l| (l.line, l.col))
        .unwrap_or((1, 1));
    Ok(MetricTemplate {
        file: at.file().to_string(),
        namespace: namespace
            .map(str::to_string)
            .or(raw.metadata.namespace)
            .unwrap_or_default(),
        name: raw.metadata.name,
        address: provider.address.clone(),
        query: raw.spec.query,
        query_at,
    })
}

/// Every MetricTemplate of the repository, by namespace and name.
#[derive(Debug, Clone, Default)]
pub struct TemplateIndex {
    by_key: BTreeMap<(String, String), MetricTemplate>,
    duplicates: Vec<LocatedError>,
    ambiguous: std::collections::BTreeSet<(String, String)>,
}

impl TemplateIndex {
    /// Adds a template; a second one with the same namespace and name is an error.
    pub fn insert(&mut self, t: MetricTemplate) {
        let key = (t.namespace.clone(), t.name.clone());
        if let Some(first) = self.by_key.get(&key) {
            // Neither copy is used: which one a Canary meant is not weir's guess to make.
            self.ambiguous.insert(key.clone());
            self.duplicates.push(LocatedError {
                file: t.file.clone(),
                line: 1,
                col: 1,
                severity: super::Severity::Error,
                field: "metadata.name".into(),
                message: format!(
                    "MetricTemplate {}/{} is also defined in {}; names must be unique per namespace",
                    t.namespace, t.name, first.file
                ),
            });
            return;
        }
        self.by_key.insert(key, t);
    }

    /// Looks a template up; an empty namespace in the reference means the Canary's own.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&MetricTemplate> {
        let key = (namespace.to_string(), name.to_string());
        if self.ambiguous.contains(&key) {
            return None;
        }
        self.by_key.get(&key)
    }

    /// True when the name is defined more than once (and so not used at all).
    pub fn is_ambiguous(&self, namespace: &str, name: &str) -> bool {
        self.ambiguous
            .contains(&(namespace.to_string(), name.to_string()))
    }

    /// Errors about templates defined twice.
    pub fn duplicates(&self) -> &[LocatedError] {
        &self.duplicates
    }

    /// All templates, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &MetricTemplate> {
        self.by_key.values()
    }
}
