//! Parsers of the repository's YAML. Pure; they read only the fields they need.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_yaml::Value;

/// The first entry of `resources:` of a kustomization.
pub fn first_resource(src: &str) -> Result<Option<String>> {
    let docs = documents(src)?;
    Ok(docs
        .first()
        .and_then(|d| d.get("resources"))
        .and_then(Value::as_sequence)
        .and_then(|r| r.first())
        .and_then(Value::as_str)
        .map(str::to_string))
}

pub fn documents(src: &str) -> Result<Vec<Value>> {
    serde_yaml::Deserializer::from_str(src)
        .map(|doc| Value::deserialize(doc).context("invalid YAML"))
        .collect()
}

pub fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// A scalar as written: tags such as `1.10` must not become numbers.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `newTag` of the first entry of `images:`.
pub fn kustomization_tag(src: &str) -> Result<Option<String>> {
    let docs = documents(src)?;
    let Some(doc) = docs.first() else {
        return Ok(None);
    };
    let first = match doc.get("images") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Sequence(images)) => images.first(),
        Some(_) => bail!("images: expected a list"),
    };
    Ok(first.and_then(|image| image.get("newTag")).and_then(scalar))
}

/// The tag of the first container of the Deployment `name`, in a file of one or more documents.
pub fn deployment_tag(src: &str, name: &str) -> Result<Option<String>> {
    for doc in documents(src)? {
        let kind = get(&doc, &["kind"]).and_then(Value::as_str);
        let doc_name = get(&doc, &["metadata", "name"]).and_then(Value::as_str);
        if kind != Some("Deployment") || doc_name != Some(name) {
            continue;
        }
        let image = get(&doc, &["spec", "template", "spec", "containers"])
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("image"))
            .and_then(Value::as_str)
            .with_context(|| {
                format!("Deployment {name}: spec.template.spec.containers[0].image is missing")
            })?;
        return Ok(image_tag(image));
    }
    Ok(None)
}

/// `registry:5000/repo:tag@sha256:…` -> `tag`; an image without a tag has none.
pub fn image_tag(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last_segment
        .rsplit_once(':')
        .map(|(_, tag)| tag.to_owned())
        .filter(|tag| !tag.is_empty())
}

/// `(primary, canary)` weights of a VirtualService's HTTP routes.
#[derive(Debug, PartialEq)]
pub struct VsWeights {
    /// The default route: the first `http` entry without `match` conditions, else the first.
    pub default: (u32, u32),
    /// The first entry with `match` conditions, when there is one.
    pub matched: Option<(u32, u32)>,
}

/// The weights of the VirtualService of `app` in `src`.
pub fn virtualservice_weights(src: &str, app: &str) -> Result<VsWeights> {
    let docs = documents(src)?;
    let vs = docs
        .iter()
        .find(|d| get(d, &["kind"]).and_then(Value::as_str) == Some("VirtualService"))
        .context("no VirtualService document")?;
    let http = get(vs, &["spec", "http"])
        .and_then(Value::as_sequence)
        .filter(|h| !h.is_empty())
        .context("spec.http: expected a non-empty list")?;
    let rule = http
        .iter()
        .find(|r| r.get("match").is_none())
        .unwrap_or(&http[0]);
    let matched = match http.iter().find(|r| r.get("match").is_some()) {
        Some(rule) => Some(rule_weights(rule, app)?),
        None => None,
    };
    Ok(VsWeights {
        default: rule_weights(rule, app)?,
        matched,
    })
}

/// `(primary, canary)` weights of one HTTP route.
fn rule_weights(rule: &Value, app: &str) -> Result<(u32, u32)> {
    let routes = rule
        .get("route")
        .and_then(Value::as_sequence)
        .context("spec.http[].route: expected a list")?;

    let primary_host = format!("{app}-primary");
    let canary_host = format!("{app}-canary");
    let is_host = |host: &str, name: &str| {
        host == name || host.strip_prefix(name).is_some_and(|r| r.starts_with('.'))
    };
    let mut weights = (None, None);
    for route in routes {
        let host = get(route, &["destination", "host"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Istio gives a lone route without a weight all the traffic.
        let weight = match route.get("weight") {
            Some(w) => w
                .as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .filter(|w| *w <= 100)
                .with_context(|| format!("route to {host}: weight must be 0-100"))?,
            None if routes.len() == 1 => 100,
            None => 0,
        };
        if is_host(host, &primary_host) {
            weights.0 = Some(weight);
        } else if is_host(host, &canary_host) {
            weights.1 = Some(weight);
        }
    }
    match weights {
        (None, None) => bail!("no route to {primary_host} or {canary_host}"),
        (p, c) => Ok((p.unwrap_or(0), c.unwrap_or(0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY_YAML: &str = "\
apiVersion: v1
kind: Service
metadata: {name: backend-primary}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: backend-primary
spec:
  template:
    spec:
      containers:
        - name: backend
          image: registry.local:5000/acme/backend:6.0.0
        - name: sidecar
          image: busybox:1.36
";

    fn vs(routes: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {{name: backend}}\nspec:\n  hosts: [backend]\n  http:\n    - route:\n{routes}"
        )
    }

    #[test]
    fn kustomization_tag_is_the_first_images_new_tag() {
        let src = "resources: [deployment.yaml]\nimages:\n  - name: ghcr.io/acme/backend\n    newTag: \"6.1.0\"\n  - name: other\n    newTag: x\n";
        assert_eq!(kustomization_tag(src).unwrap().as_deref(), Some("6.1.0"));
        assert_eq!(kustomization_tag("resources: []\n").unwrap(), None);
        assert_eq!(
            kustomization_tag("images:\n  - newTag: 7\n")
                .unwrap()
                .as_deref(),
            Some("7")
        );
        assert!(kustomization_tag("images: {a: b}\n").is_err());
    }

    #[test]
    fn deployment_tag_finds_the_named_deployment_in_any_document() {
        assert_eq!(
            deployment_tag(PRIMARY_YAML, "backend-primary")
                .unwrap()
                .as_deref(),
            Some("6.0.0")
        );
        assert_eq!(deployment_tag(PRIMARY_YAML, "backend").unwrap(), None);
    }

    #[test]
    fn image_tags() {
        assert_eq!(
            image_tag("ghcr.io/acme/backend:6.0.0").as_deref(),
            Some("6.0.0")
        );
        assert_eq!(image_tag("localhost:5000/backend").as_deref(), None);
        assert_eq!(image_tag("backend:1.2@sha256:abc").as_deref(), Some("1.2"));
        assert_eq!(image_tag("backend").as_deref(), None);
    }

    #[test]
    fn virtualservice_weights_by_host() {
        let src = vs("        - destination: {host: backend-primary}\n          weight: 80\n        - destination: {host: backend-canary.prod.svc.cluster.local}\n          weight: 20\n");
        let default = |src: &str| virtualservice_weights(src, "backend").unwrap().default;
        assert_eq!(default(&src), (80, 20));
        let lone = vs("        - destination: {host: backend-primary}\n");
        assert_eq!(default(&lone), (100, 0));
        let other = vs("        - destination: {host: backend-primaryx}\n");
        assert!(virtualservice_weights(&other, "backend").is_err());
    }

    #[test]
    fn virtualservice_weights_skip_header_matches() {
        let src = "kind: VirtualService\nspec:\n  http:\n    - match: [{headers: {x-canary: {exact: insider}}}]\n      route:\n        - destination: {host: backend-canary}\n    - route:\n        - destination: {host: backend-primary}\n          weight: 100\n        - destination: {host: backend-canary}\n          weight: 0\n";
        assert_eq!(
            virtualservice_weights(src, "backend").unwrap(),
            VsWeights {
                default: (100, 0),
                matched: Some((0, 100)),
            }
        );
    }

    #[test]
    fn the_primary_source_is_the_first_resource() {
        let src = "resources:\n  - \"source/backend\"\nnameSuffix: -primary\n";
        assert_eq!(
            first_resource(src).unwrap().as_deref(),
            Some("source/backend")
        );
        assert_eq!(first_resource("kind: Kustomization\n").unwrap(), None);
    }
}
