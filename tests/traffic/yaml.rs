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
    Ok(kustomization_image(src)?.1)
}

/// The tag of the first container of the Deployment `name`, in a file of one or more documents.
pub fn deployment_tag(src: &str, name: &str) -> Result<Option<String>> {
    let Some(doc) = find_document(src, "Deployment", name)? else {
        return Ok(None);
    };
    let image = container_image(&doc).with_context(|| {
        format!("Deployment {name}: spec.template.spec.containers[0].image is missing")
    })?;
    Ok(image_tag(image))
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

/// The first document of `kind` named `name` in a file of one or more documents.
pub fn find_document(src: &str, kind: &str, name: &str) -> Result<Option<Value>> {
    Ok(documents(src)?.into_iter().find(|doc| {
        get(doc, &["kind"]).and_then(Value::as_str) == Some(kind)
            && get(doc, &["metadata", "name"]).and_then(Value::as_str) == Some(name)
    }))
}

/// `newName` and `newTag` of the first entry of `images:`, the one the routing follows too.
pub fn kustomization_image(src: &str) -> Result<(Option<String>, Option<String>)> {
    let docs = documents(src)?;
    let first = match docs.first().and_then(|d| d.get("images")) {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Sequence(images)) => images.first(),
        Some(_) => bail!("images: expected a list"),
    };
    let field = |key: &str| first.and_then(|image| image.get(key)).and_then(scalar);
    Ok((field("newName"), field("newTag")))
}

/// `image` with the name and tag an `images:` entry sets, as kustomize's transformer writes it.
pub fn retag(image: &str, new_name: Option<&str>, new_tag: Option<&str>) -> String {
    let (name, suffix) = split_image(image);
    let name = new_name.unwrap_or(name);
    match new_tag {
        Some(tag) => format!("{name}:{tag}"),
        None => format!("{name}{suffix}"),
    }
}

/// `registry:5000/repo:tag@sha256:…` -> (`registry:5000/repo`, `:tag@sha256:…`).
fn split_image(image: &str) -> (&str, &str) {
    let name_end = image.find('@').unwrap_or(image.len());
    let last_slash = image[..name_end].rfind('/').map_or(0, |i| i + 1);
    let end = image[last_slash..name_end]
        .find(':')
        .map_or(name_end, |i| last_slash + i);
    image.split_at(end)
}

/// The first container's image of a Deployment document.
pub fn container_image(deployment: &Value) -> Option<&str> {
    get(deployment, &["spec", "template", "spec", "containers"])
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("image"))
        .and_then(Value::as_str)
}

/// `spec.replicas` of a Deployment document, when it sets it.
pub fn spec_replicas(deployment: &Value) -> Option<i64> {
    get(deployment, &["spec", "replicas"]).and_then(Value::as_i64)
}

/// `spec.minReplicas` (Kubernetes' default, 1, when unset) of the HorizontalPodAutoscaler that
/// scales the Deployment `name`, in a file of one or more documents.
pub fn hpa_min_replicas(src: &str, name: &str) -> Result<Option<i64>> {
    Ok(documents(src)?
        .iter()
        .find(|doc| {
            get(doc, &["kind"]).and_then(Value::as_str) == Some("HorizontalPodAutoscaler")
                && get(doc, &["spec", "scaleTargetRef", "kind"]).and_then(Value::as_str)
                    == Some("Deployment")
                && get(doc, &["spec", "scaleTargetRef", "name"]).and_then(Value::as_str)
                    == Some(name)
        })
        .map(|hpa| {
            get(hpa, &["spec", "minReplicas"])
                .and_then(Value::as_i64)
                .unwrap_or(1)
        }))
}

/// The entries of `components:` of a kustomization.
pub fn components(src: &str) -> Result<Vec<String>> {
    let docs = documents(src)?;
    match docs.first().and_then(|d| d.get("components")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(list)) => list
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_string)
                    .context("components: expected a list of paths")
            })
            .collect(),
        Some(_) => bail!("components: expected a list"),
    }
}

/// Where a patch of `patches:` is written.
#[derive(Debug, PartialEq)]
pub enum Patch {
    /// `patch:`, the patch itself.
    Inline(String),
    /// `path:`, a file relative to the kustomization.
    File(String),
}

/// The `patches:` of a kustomization (or Component) that may change the Deployment `name`:
/// those whose `target` selects it by kind and name (a target without a name selects every
/// Deployment), and those without a target, which name their object themselves. kustomize
/// reads a target's name as an anchored regular expression; the names here are matched
/// literally, once `\` escapes are dropped.
pub fn deployment_patches(src: &str, name: &str) -> Result<Vec<(Patch, bool)>> {
    let docs = documents(src)?;
    let patches = match docs.first().and_then(|d| d.get("patches")) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(list)) => list,
        Some(_) => bail!("patches: expected a list"),
    };
    let mut found = Vec::new();
    for entry in patches {
        let target = entry.get("target");
        let selected = match target {
            None => true,
            Some(t) => {
                let field = |key: &str| t.get(key).and_then(Value::as_str);
                field("kind").is_none_or(|k| k == "Deployment")
                    && field("group").is_none_or(|g| g == "apps")
                    && field("name").is_none_or(|n| n == name || n.replace('\\', "") == name)
            }
        };
        if !selected {
            continue;
        }
        let patch = match (
            entry.get("patch").and_then(Value::as_str),
            entry.get("path").and_then(Value::as_str),
        ) {
            (Some(text), _) => Patch::Inline(text.to_string()),
            (None, Some(path)) => Patch::File(path.to_string()),
            (None, None) => bail!("patches: an entry has neither patch nor path"),
        };
        found.push((patch, target.is_some()));
    }
    Ok(found)
}

/// The replicas a patch of the Deployment `name` sets: a JSON 6902 `add` or `replace` of
/// `/spec/replicas`, or a strategic merge patch's `spec.replicas`. An untargeted strategic
/// merge patch applies only when it names the Deployment itself (`targeted` false).
pub fn patch_replicas(text: &str, name: &str, targeted: bool) -> Result<Option<i64>> {
    let mut replicas = None;
    for doc in documents(text)? {
        match &doc {
            Value::Sequence(ops) => {
                for op in ops {
                    let field = |key: &str| op.get(key).and_then(Value::as_str);
                    if matches!(field("op"), Some("add" | "replace"))
                        && field("path") == Some("/spec/replicas")
                    {
                        replicas = Some(
                            op.get("value")
                                .and_then(Value::as_i64)
                                .context("a patch of /spec/replicas: value must be a number")?,
                        );
                    }
                }
            }
            Value::Mapping(_) => {
                let names_it = get(&doc, &["kind"])
                    .and_then(Value::as_str)
                    .is_none_or(|k| k == "Deployment")
                    && get(&doc, &["metadata", "name"]).and_then(Value::as_str) == Some(name);
                if targeted || names_it {
                    if let Some(n) = spec_replicas(&doc) {
                        replicas = Some(n);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(replicas)
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

    /// weir's canary-replicas Component at rest, as weir renders it.
    const AT_REST: &str = "\
# Canary replicas of prod/backend. Written by weir; do not edit.
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
patches:
  - target:
      group: apps
      version: v1
      kind: Deployment
      name: \"backend\"
      namespace: \"prod\"
    patch: |-
      - op: add
        path: /spec/replicas
        value: 0
";

    #[test]
    fn a_components_json_patch_sets_the_replicas_of_its_target() {
        let patches = deployment_patches(AT_REST, "backend").unwrap();
        assert_eq!(patches.len(), 1);
        let (Patch::Inline(text), targeted) = &patches[0] else {
            panic!("an inline patch: {patches:?}");
        };
        assert_eq!(patch_replicas(text, "backend", *targeted).unwrap(), Some(0));
        assert_eq!(
            deployment_patches(AT_REST, "frontend").unwrap(),
            Vec::new(),
            "another Deployment is not patched"
        );
        let escaped = AT_REST.replace("\"backend\"", "\"back\\\\.end\"");
        assert_eq!(deployment_patches(&escaped, "back.end").unwrap().len(), 1);
    }

    #[test]
    fn a_component_that_leaves_replicas_alone_sets_none() {
        let src = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches: []\n";
        assert_eq!(deployment_patches(src, "backend").unwrap(), Vec::new());
        let other = "- op: add\n  path: /spec/template/metadata/annotations/a\n  value: b\n";
        assert_eq!(patch_replicas(other, "backend", true).unwrap(), None);
    }

    #[test]
    fn strategic_merge_patches_set_replicas_of_the_deployment_they_name() {
        let smp = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: backend}\nspec: {replicas: 3}\n";
        assert_eq!(patch_replicas(smp, "backend", false).unwrap(), Some(3));
        assert_eq!(patch_replicas(smp, "frontend", false).unwrap(), None);
        // A target chose the object; the patch's own name does not matter then.
        assert_eq!(patch_replicas(smp, "frontend", true).unwrap(), Some(3));
        let file = "patches:\n  - path: replicas.yaml\n";
        assert_eq!(
            deployment_patches(file, "backend").unwrap(),
            vec![(Patch::File("replicas.yaml".into()), false)]
        );
    }

    #[test]
    fn the_hpa_of_a_deployment_gives_its_minimum() {
        let hpa = "kind: HorizontalPodAutoscaler\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: backend}\n  minReplicas: 2\n  maxReplicas: 4\n";
        assert_eq!(hpa_min_replicas(hpa, "backend").unwrap(), Some(2));
        assert_eq!(hpa_min_replicas(hpa, "frontend").unwrap(), None);
        let no_min = hpa.replace("  minReplicas: 2\n", "");
        assert_eq!(hpa_min_replicas(&no_min, "backend").unwrap(), Some(1));
    }

    #[test]
    fn images_are_retagged_as_kustomize_does() {
        let k = "images:\n  - name: ghcr.io/acme/backend\n    newName: registry.local:5000/backend\n    newTag: \"6.1.1\"\n";
        let (name, tag) = kustomization_image(k).unwrap();
        assert_eq!(
            retag(
                "ghcr.io/acme/backend:6.0.0",
                name.as_deref(),
                tag.as_deref()
            ),
            "registry.local:5000/backend:6.1.1"
        );
        assert_eq!(
            retag("localhost:5000/backend:1@sha256:ab", None, Some("2")),
            "localhost:5000/backend:2"
        );
        assert_eq!(
            retag("localhost:5000/backend", None, None),
            "localhost:5000/backend"
        );
        assert_eq!(
            retag("backend@sha256:ab", Some("x/backend"), None),
            "x/backend@sha256:ab"
        );
        assert_eq!(
            components("components: [../backend.weir/canary-replicas]\n").unwrap(),
            ["../backend.weir/canary-replicas"]
        );
        assert_eq!(components("resources: []\n").unwrap(), Vec::<String>::new());
    }
}
