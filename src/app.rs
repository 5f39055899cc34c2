//! One app's source: the files its Canary points at, what counts as its revision, the
//! target Deployment and its pod selector, and the metric gates with their queries.
//!
//! The revision is a digest of every file Flux would build for the app (the app folder and
//! whatever its kustomizations reference), except the Canary itself: a tag bump, a patch or a
//! ConfigMap change is a new revision; editing the rollout spec is not.

use crate::render::primary::selector_of;
use crate::render::Selector;
use crate::source::{join, parent, SourceError, SourceTree};
use crate::spec::{Canary, MetricSource, Severity, SpecError, TemplateIndex};
use crate::yaml_edit::{PositionIndex, Seg};
use git2::{ObjectType, Oid};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What weir knows of an app's source at one revision.
#[derive(Debug, Clone)]
pub struct AppSource {
    /// The app folder (where the Canary is).
    pub dir: String,
    /// Digest of the source, hex.
    pub revision: String,
    /// Pod selector of the target Deployment.
    pub selector: Selector,
    /// Every path (file or folder) a build of the app reads, for materialising it.
    pub closure: Vec<String>,
}

/// A metric gate ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Metric name.
    pub name: String,
    /// The query template.
    pub template: String,
    /// Prometheus address from the MetricTemplate, if it names one.
    pub address: Option<String>,
    /// `{{ interval }}`.
    pub interval: String,
    /// `templateVariables`.
    pub variables: BTreeMap<String, String>,
    /// Bounds.
    pub min: Option<f64>,
    /// Bounds.
    pub max: Option<f64>,
}

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct KustomizeRefs {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    bases: Vec<String>,
    #[serde(default)]
    patches_strategic_merge: Vec<String>,
    #[serde(default)]
    patches: Vec<PatchRef>,
    #[serde(default, rename = "patchesJson6902")]
    patches_json6902: Vec<PatchRef>,
    #[serde(default)]
    config_map_generator: Vec<GeneratorRef>,
    #[serde(default)]
    secret_generator: Vec<GeneratorRef>,
}

#[derive(Debug, Deserialize, Default)]
struct PatchRef {
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct GeneratorRef {
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    envs: Vec<String>,
    #[serde(default)]
    env: Option<String>,
}

fn error(file: &str, line: usize, col: usize, field: String, message: String) -> SpecError {
    SpecError {
        file: file.to_string(),
        line,
        col,
        severity: Severity::Error,
        field,
        message,
    }
}

/// Resolves a relative reference against a folder, refusing anything outside the repository.
fn resolve(dir: &str, reference: &str) -> Option<String> {
    let mut parts: Vec<&str> = if dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for part in reference.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The ids of every path an app's resolution read.
type Inputs = Vec<(String, Option<Oid>)>;

/// Remembers resolved apps by the ids of everything they read.
#[derive(Default)]
pub struct Resolver {
    memo: HashMap<String, (Inputs, Arc<AppSource>)>,
}

impl Resolver {
    /// Resolves the source of the app whose Canary is `canary`.
    pub fn resolve(
        &mut self,
        tree: &dyn SourceTree,
        canary: &Canary,
    ) -> Result<Arc<AppSource>, Vec<SpecError>> {
        let dir = parent(&canary.file).to_string();
        if let Some((inputs, hit)) = self.memo.get(&canary.file) {
            let still = inputs.iter().all(|(p, id)| tree.id(p) == *id)
                && inputs
                    .iter()
                    .all(|(_, id)| id.is_some_and(|i| !i.is_zero()));
            if still {
                return Ok(hit.clone());
            }
        }
        let source = Arc::new(build(tree, canary, &dir)?);
        let mut inputs: Inputs = vec![(dir.clone(), tree.id(&dir))];
        inputs.push((canary.file.clone(), tree.id(&canary.file)));
        for p in &source.closure {
            inputs.push((p.clone(), tree.id(p)));
        }
        self.memo
            .insert(canary.file.clone(), (inputs, source.clone()));
        Ok(source)
    }
}

fn build(tree: &dyn SourceTree, canary: &Canary, dir: &str) -> Result<AppSource, Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut closure: BTreeSet<String> = BTreeSet::new();
    closure.insert(dir.to_string());
    let mut queue = vec![dir.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(kdir) = queue.pop() {
        if !seen.insert(kdir.clone()) {
            continue;
        }
        let Ok(entries) = tree.list(&kdir) else {
            continue;
        };
        let Some(kfile) = entries
            .iter()
            .find(|e| !e.is_dir && KUSTOMIZATION_FILES.contains(&e.name.as_str()))
            .map(|e| join(&kdir, &e.name))
        else {
            continue;
        };
        let bytes = tree.read(&kfile).map_err(|e| vec![read_error(&kfile, e)])?;
        let text = String::from_utf8_lossy(&bytes).to_string();
        let refs: KustomizeRefs = match serde_yaml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                let (line, col) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                errors.push(error(
                    &kfile,
                    line,
                    col,
                    "(kustomization)".into(),
                    format!("cannot read the kustomization: {e}"),
                ));
                continue;
            }
        };
        let index = PositionIndex::parse(&text).ok();
        let mut refs_with_field: Vec<(Vec<Seg>, String)> = Vec::new();
        for (field, list) in [
            ("resources", &refs.resources),
            ("components", &refs.components),
            ("bases", &refs.bases),
        ] {
            for (i, r) in list.iter().enumerate() {
                refs_with_field.push((vec![Seg::Key(field.into()), Seg::Index(i)], r.clone()));
            }
        }
        for (i, r) in refs.patches_strategic_merge.iter().enumerate() {
            // Inline patches are YAML text, not paths.
            if !r.contains('\n') && !r.contains(':') {
                refs_with_field.push((
                    vec![Seg::Key("patchesStrategicMerge".into()), Seg::Index(i)],
                    r.clone(),
                ));
            }
        }
        for (field, list) in [
            ("patches", &refs.patches),
            ("patchesJson6902", &refs.patches_json6902),
        ] {
            for (i, pr) in list.iter().enumerate() {
                if let Some(path) = &pr.path {
                    refs_with_field.push((
                        vec![
                            Seg::Key(field.into()),
                            Seg::Index(i),
                            Seg::Key("path".into()),
                        ],
                        path.clone(),
                    ));
                }
            }
        }
        for (field, list) in [
            ("configMapGenerator", &refs.config_map_generator),
            ("secretGenerator", &refs.secret_generator),
        ] {
            for (i, g) in list.iter().enumerate() {
                let files = g
                    .files
                    .iter()
                    .map(|f| f.rsplit_once('=').map(|(_, p)| p).unwrap_or(f).to_string());
                for f in files
                    .chain(g.envs.iter().cloned())
                    .chain(g.env.iter().cloned())
                {
                    refs_with_field.push((vec![Seg::Key(field.into()), Seg::Index(i)], f));
                }
            }
        }
        for (field, reference) in refs_with_field {
            let at = index.as_ref().map(|ix| ix.locate(0, &field));
            let (line, col) = at.map(|l| (l.line, l.col)).unwrap_or((1, 1));
            let shown = crate::yaml_edit::display_path(&field);
            if reference.contains("://")
                || reference.starts_with("github.com/")
                || reference.starts_with("git@")
            {
                errors.push(error(&kfile, line, col, shown, format!("remote reference `{reference}` is not supported: weir builds the app from the repository alone; vendor it into the repository")));
                continue;
            }
            let Some(path) = resolve(&kdir, &reference) else {
                errors.push(error(
                    &kfile,
                    line,
                    col,
                    shown,
                    format!("`{reference}` points outside the repository"),
                ));
                continue;
            };
            match tree.list(&path) {
                Ok(_) => {
                    closure.insert(path.clone());
                    queue.push(path);
                }
                Err(_) => match tree.id(&path) {
                    Some(_) => {
                        closure.insert(path);
                    }
                    None => errors.push(error(
                        &kfile,
                        line,
                        col,
                        shown,
                        format!("`{reference}` does not exist (looked for {path})"),
                    )),
                },
            }
        }
    }
    // Folders inside other folders of the closure are already covered.
    let closure: Vec<String> = closure
        .iter()
        .filter(|p| {
            !closure
                .iter()
                .any(|q| q != *p && (q.is_empty() || p.starts_with(&format!("{q}/"))))
        })
        .cloned()
        .collect();

    // The target Deployment among the manifests the build reads.
    let mut selector = None;
    let mut found = false;
    let mut files = Vec::new();
    for p in &closure {
        collect_yaml(tree, p, &mut files);
    }
    'files: for f in &files {
        if f == &canary.file {
            continue;
        }
        let Ok(bytes) = tree.read(f) else { continue };
        if !bytes.windows(10).any(|w| w == b"Deployment") {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        for de in serde_yaml::Deserializer::from_str(&text) {
            let Ok(v) = serde_yaml::Value::deserialize(de) else {
                continue;
            };
            if v.get("kind").and_then(|k| k.as_str()) == Some("Deployment")
                && v.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    == Some(canary.target.as_str())
            {
                found = true;
                selector = selector_of(&v);
                break 'files;
            }
        }
    }
    let (line, col) = canary.target_at;
    if !found {
        errors.push(error(
            &canary.file,
            line,
            col,
            "spec.targetRef.name".into(),
            format!(
                "Deployment `{}` is not among the manifests of {} (looked in {} YAML files)",
                canary.target,
                if dir.is_empty() {
                    "the repository root"
                } else {
                    dir
                },
                files.len()
            ),
        ));
    } else if selector.is_none() {
        errors.push(error(
            &canary.file,
            line,
            col,
            "spec.targetRef.name".into(),
            format!("Deployment `{}` has none of the selector labels app, name or app.kubernetes.io/name in spec.selector.matchLabels", canary.target),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let revision = digest(tree, &closure, &canary.file);
    Ok(AppSource {
        dir: dir.to_string(),
        revision,
        selector: selector.expect("checked above"),
        closure,
    })
}

fn read_error(path: &str, e: SourceError) -> SpecError {
    error(path, 1, 1, "(file)".into(), e.to_string())
}

fn collect_yaml(tree: &dyn SourceTree, path: &str, out: &mut Vec<String>) {
    match tree.list(path) {
        Ok(entries) => {
            for e in entries {
                let p = join(path, &e.name);
                if e.is_dir {
                    collect_yaml(tree, &p, out);
                } else if e.name.ends_with(".yaml") || e.name.ends_with(".yml") {
                    out.push(p);
                }
            }
        }
        Err(_) => {
            if path.ends_with(".yaml") || path.ends_with(".yml") {
                out.push(path.to_string());
            }
        }
    }
}

/// Digest of the app's source: every file of the closure by content id, except the Canary.
fn digest(tree: &dyn SourceTree, closure: &[String], canary_file: &str) -> String {
    let mut lines = Vec::new();
    fn walk(tree: &dyn SourceTree, path: &str, skip: &str, lines: &mut Vec<String>) {
        match tree.list(path) {
            Ok(entries) => {
                for e in entries {
                    let p = join(path, &e.name);
                    if p == skip {
                        continue;
                    }
                    // A folder that does not hold the Canary counts by its tree id.
                    if e.is_dir && !skip.starts_with(&format!("{p}/")) && !e.id.is_zero() {
                        lines.push(format!("{p} {}", e.id));
                    } else if e.is_dir {
                        walk(tree, &p, skip, lines);
                    } else {
                        lines.push(format!("{p} {}", e.id));
                    }
                }
            }
            Err(_) => {
                if let Some(id) = tree.id(path) {
                    lines.push(format!("{path} {id}"));
                }
            }
        }
    }
    for p in closure {
        walk(tree, p, canary_file, &mut lines);
    }
    lines.sort();
    Oid::hash_object(ObjectType::Blob, lines.join("\n").as_bytes())
        .map(|o| o.to_string())
        .unwrap_or_default()
}

/// The gates of a Canary, with their queries resolved against the MetricTemplates.
pub fn gates(canary: &Canary, templates: &TemplateIndex) -> Result<Vec<Gate>, Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, m) in canary.analysis.metrics.iter().enumerate() {
        let (template, address) = match &m.source {
            MetricSource::RequestSuccessRate => (
                crate::prometheus::REQUEST_SUCCESS_RATE.to_string(),
                canary.metrics_server.clone(),
            ),
            MetricSource::RequestDuration => (
                crate::prometheus::REQUEST_DURATION.to_string(),
                canary.metrics_server.clone(),
            ),
            MetricSource::Inline(q) => (q.clone(), canary.metrics_server.clone()),
            MetricSource::Template { namespace, name } => {
                let ns = if namespace.is_empty() {
                    &canary.namespace
                } else {
                    namespace
                };
                match templates.get(ns, name) {
                    Some(t) => (t.query.clone(), t.address.clone()),
                    None => {
                        let known: Vec<String> = templates
                            .iter()
                            .map(|t| format!("{}/{}", t.namespace, t.name))
                            .collect();
                        errors.push(error(
                            &canary.file,
                            m.at.0,
                            m.at.1,
                            format!("spec.analysis.metrics[{i}].templateRef"),
                            format!(
                                "MetricTemplate {ns}/{name} is not in the repository; known templates: {}",
                                if known.is_empty() { "none".to_string() } else { known.join(", ") }
                            ),
                        ));
                        continue;
                    }
                }
            }
        };
        // Render once with the real values so a missing variable is a spec error now,
        // not a failed check later.
        let interval = m.interval.to_string();
        let vars = crate::prometheus::QueryVars {
            namespace: &canary.namespace,
            target: &canary.target,
            interval: &interval,
            variables: &m.variables,
        };
        if let Err(e) = crate::prometheus::render(&template, &vars) {
            errors.push(error(
                &canary.file,
                m.at.0,
                m.at.1,
                format!("metric {}", m.name),
                e.to_string(),
            ));
            continue;
        }
        out.push(Gate {
            name: m.name.clone(),
            template,
            address,
            interval,
            variables: m.variables.clone(),
            min: m.min,
            max: m.max,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Writes the closure of an app from `tree` into `dest`, keeping repository paths, so a
/// kustomize build sees exactly what Flux would.
pub fn materialize(
    tree: &dyn SourceTree,
    closure: &[String],
    dest: &std::path::Path,
) -> Result<(), SourceError> {
    fn write(tree: &dyn SourceTree, path: &str, dest: &std::path::Path) -> Result<(), SourceError> {
        match tree.list(path) {
            Ok(entries) => {
                std::fs::create_dir_all(dest.join(path)).map_err(|e| SourceError::Read {
                    path: path.into(),
                    message: e.to_string(),
                })?;
                for e in entries {
                    write(tree, &join(path, &e.name), dest)?;
                }
                Ok(())
            }
            Err(_) => {
                let bytes = tree.read(path)?;
                let full = dest.join(path);
                if let Some(p) = full.parent() {
                    std::fs::create_dir_all(p).map_err(|e| SourceError::Read {
                        path: path.into(),
                        message: e.to_string(),
                    })?;
                }
                std::fs::write(&full, bytes).map_err(|e| SourceError::Read {
                    path: path.into(),
                    message: e.to_string(),
                })
            }
        }
    }
    for p in closure {
        write(tree, p, dest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_cannot_leave_the_repository() {
        assert_eq!(
            resolve("apps/backend", "../base").as_deref(),
            Some("apps/base")
        );
        assert_eq!(
            resolve("apps/backend", "./patch.yaml").as_deref(),
            Some("apps/backend/patch.yaml")
        );
        assert_eq!(resolve("apps/backend", "../../../etc"), None);
        assert_eq!(resolve("", ".."), None);
    }
}
