//! The primary snapshot: the app as Flux would apply it at the promoted revision, with the
//! target Deployment, its HPA and the ConfigMaps and Secrets its pods use copied under
//! `-primary` names, as Flagger copies them inside the cluster.
//!
//! The input is the already built manifests of the app (`kustomize build` output), so the
//! user's `images:` tags and patches are baked in and cannot leak into a later primary.

use super::{RenderError, Selector};
use crate::spec::Canary;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;

/// A rendered primary snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The `primary.yaml` file.
    pub text: String,
    /// Container images of the primary Deployment, in order.
    pub images: Vec<String>,
}

/// Labels Flagger accepts as the pod selector, in its order of preference.
pub const SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

/// Finds the selector label of a Deployment manifest.
pub fn selector_of(deployment: &Value) -> Option<Selector> {
    let labels = deployment
        .get("spec")?
        .get("selector")?
        .get("matchLabels")?
        .as_mapping()?;
    SELECTOR_LABELS.iter().find_map(|label| {
        let value = labels.get(*label)?.as_str()?;
        Some(Selector {
            label: (*label).to_string(),
            value: value.to_string(),
        })
    })
}

/// Builds the primary snapshot from the built manifests of the app at `revision`.
pub fn snapshot(
    built: &str,
    canary: &Canary,
    app_dir: &str,
    revision: &str,
) -> Result<Snapshot, RenderError> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(built) {
        let v = Value::deserialize(de).map_err(|e| {
            RenderError::Snapshot(format!("cannot read the build of {app_dir}: {e}"))
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    let is = |v: &Value, kind: &str, name: &str| {
        v.get("kind").and_then(Value::as_str) == Some(kind)
            && v.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                == Some(name)
    };
    let target = &canary.target;
    let mut deployment = docs
        .iter()
        .find(|v| is(v, "Deployment", target))
        .cloned()
        .ok_or_else(|| {
            RenderError::Snapshot(format!(
                "{}: targetRef Deployment `{target}` is not in the build of {app_dir}",
                canary.file
            ))
        })?;
    let selector = selector_of(&deployment).ok_or_else(|| {
        RenderError::Snapshot(format!(
            "Deployment `{target}` in {app_dir} has none of the selector labels {} in spec.selector.matchLabels",
            SELECTOR_LABELS.join(", ")
        ))
    })?;
    let primary_name = format!("{target}-primary");
    let primary_value = format!("{}-primary", selector.value);

    // Config the pods use is copied too, so a config change is promoted with the revision.
    let (config_maps, secrets) = referenced_config(&deployment);
    let mut out = Vec::new();
    for doc in &docs {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let copy = match kind {
            "ConfigMap" => config_maps.contains(name),
            "Secret" => secrets.contains(name),
            _ => false,
        };
        if copy {
            let mut c = doc.clone();
            set_path(&mut c, &["metadata", "name"], format!("{name}-primary"));
            strip_server_fields(&mut c);
            out.push(c);
        }
    }
    rename_config_refs(&mut deployment, &config_maps, &secrets);
    set_path(&mut deployment, &["metadata", "name"], primary_name.clone());
    set_path(
        &mut deployment,
        &["spec", "selector", "matchLabels", &selector.label],
        primary_value.clone(),
    );
    set_path(
        &mut deployment,
        &["spec", "template", "metadata", "labels", &selector.label],
        primary_value.clone(),
    );
    if deployment
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get(selector.label.as_str()))
        .is_some()
    {
        set_path(
            &mut deployment,
            &["metadata", "labels", &selector.label],
            primary_value,
        );
    }
    strip_server_fields(&mut deployment);
    let images = images_of(&deployment);
    out.insert(0, deployment);

    let hpa = docs.iter().find(|v| {
        v.get("kind").and_then(Value::as_str) == Some("HorizontalPodAutoscaler")
            && match &canary.autoscaler {
                Some(name) => is(v, "HorizontalPodAutoscaler", name),
                None => {
                    v.get("spec")
                        .and_then(|s| s.get("scaleTargetRef"))
                        .and_then(|r| r.get("name"))
                        .and_then(Value::as_str)
                        == Some(target.as_str())
                }
            }
    });
    match (hpa, &canary.autoscaler) {
        (Some(hpa), _) => {
            let mut h = hpa.clone();
            let name = h["metadata"]["name"].as_str().unwrap_or(target).to_string();
            set_path(&mut h, &["metadata", "name"], format!("{name}-primary"));
            set_path(
                &mut h,
                &["spec", "scaleTargetRef", "name"],
                primary_name.clone(),
            );
            strip_server_fields(&mut h);
            out.insert(1, h);
        }
        (None, Some(name)) => {
            return Err(RenderError::Snapshot(format!(
            "{}: autoscalerRef HorizontalPodAutoscaler `{name}` is not in the build of {app_dir}",
            canary.file
        )))
        }
        (None, None) => {}
    }

    let mut text = format!(
        "# Primary of {}/{}: a snapshot of {app_dir} at revision {revision}, written by weir.\n# Do not edit; weir replaces it when a canary is promoted.\n",
        canary.namespace, canary.name
    );
    for doc in &out {
        text.push_str("---\n");
        text.push_str(
            &serde_yaml::to_string(doc).map_err(|e| RenderError::Snapshot(e.to_string()))?,
        );
    }
    Ok(Snapshot { text, images })
}

/// Images of every container of a Deployment manifest (init containers first).
pub fn images_of(deployment: &Value) -> Vec<String> {
    let spec = &deployment["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_sequence))
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn referenced_config(deployment: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let pod = &deployment["spec"]["template"]["spec"];
    let add = |set: &mut BTreeSet<String>, v: &Value| {
        if let Some(name) = v.as_str() {
            set.insert(name.to_string());
        }
    };
    for vol in pod
        .get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        add(&mut cms, &vol["configMap"]["name"]);
        add(&mut secrets, &vol["secret"]["secretName"]);
        for src in vol["projected"]["sources"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            add(&mut cms, &src["configMap"]["name"]);
            add(&mut secrets, &src["secret"]["name"]);
        }
    }
    for key in ["initContainers", "containers"] {
        for c in pod
            .get(key)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            for from in c
                .get("envFrom")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                add(&mut cms, &from["configMapRef"]["name"]);
                add(&mut secrets, &from["secretRef"]["name"]);
            }
            for env in c
                .get("env")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                add(&mut cms, &env["valueFrom"]["configMapKeyRef"]["name"]);
                add(&mut secrets, &env["valueFrom"]["secretKeyRef"]["name"]);
            }
        }
    }
    (cms, secrets)
}

fn rename_config_refs(deployment: &mut Value, cms: &BTreeSet<String>, secrets: &BTreeSet<String>) {
    fn rename(v: &mut Value, set: &BTreeSet<String>) {
        if let Some(name) = v.as_str() {
            if set.contains(name) {
                *v = Value::String(format!("{name}-primary"));
            }
        }
    }
    fn walk(v: &mut Value, path: &[&str], set: &BTreeSet<String>) {
        match path.split_first() {
            None => rename(v, set),
            Some((first, rest)) => {
                if let Some(child) = v.get_mut(*first) {
                    walk(child, rest, set);
                }
            }
        }
    }
    let Some(pod) = deployment
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
    else {
        return;
    };
    if let Some(vols) = pod.get_mut("volumes").and_then(Value::as_sequence_mut) {
        for vol in vols {
            walk(vol, &["configMap", "name"], cms);
            walk(vol, &["secret", "secretName"], secrets);
            if let Some(srcs) = vol
                .get_mut("projected")
                .and_then(|p| p.get_mut("sources"))
                .and_then(Value::as_sequence_mut)
            {
                for src in srcs {
                    walk(src, &["configMap", "name"], cms);
                    walk(src, &["secret", "name"], secrets);
                }
            }
        }
    }
    for key in ["initContainers", "containers"] {
        let Some(containers) = pod.get_mut(key).and_then(Value::as_sequence_mut) else {
            continue;
        };
        for c in containers {
            if let Some(froms) = c.get_mut("envFrom").and_then(Value::as_sequence_mut) {
                for from in froms {
                    walk(from, &["configMapRef", "name"], cms);
                    walk(from, &["secretRef", "name"], secrets);
                }
            }
            if let Some(envs) = c.get_mut("env").and_then(Value::as_sequence_mut) {
                for env in envs {
                    walk(env, &["valueFrom", "configMapKeyRef", "name"], cms);
                    walk(env, &["valueFrom", "secretKeyRef", "name"], secrets);
                }
            }
        }
    }
}

fn strip_server_fields(v: &mut Value) {
    if let Some(map) = v.as_mapping_mut() {
        map.remove("status");
    }
}

/// Sets a string at a mapping path, creating mappings on the way.
fn set_path(v: &mut Value, path: &[&str], value: String) {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_mapping() {
            *cur = Value::Mapping(Mapping::new());
        }
        let map = cur.as_mapping_mut().expect("just made a mapping");
        if i == path.len() - 1 {
            map.insert(Value::String((*key).to_string()), Value::String(value));
            return;
        }
        cur = map
            .entry(Value::String((*key).to_string()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
}
