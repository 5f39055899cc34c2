//! One app's source at one commit: the files its build reads (the kustomize closure of its
//! folder), what counts as its revision, the target Deployment and its pod selector, the
//! ConfigMaps and Secrets its pods use, the images the build gives it, and its metric gates.
//!
//! The revision is a digest of every file Flux would build for the app (the app folder and
//! whatever its kustomizations reference), except the Canary itself: a tag bump, a patch or a
//! ConfigMap change is a new revision; editing the rollout spec is not.
//!
//! Everything here is read statically from Git objects; nothing is built. Reading only.

use crate::core::positions::{PositionIndex, Seg};
use crate::core::spec::{Canary, LocatedError, MetricSource, Severity, TemplateIndex};
use crate::repo::objects::ObjectId;
use crate::repo::replicas::OptIn;
use crate::repo::source::{join, parent, resolve_path, SourceError, SourceTree};
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Labels Flagger accepts as the pod selector, in its order of preference.
pub const SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

/// A file or folder the build of an app reads, with its id at the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureEntry {
    /// Repository path.
    pub path: String,
    /// Folder or file.
    pub is_dir: bool,
    /// Its id.
    pub id: ObjectId,
}

/// Which kind of config object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl ConfigKind {
    /// The Kubernetes kind.
    pub fn kind(self) -> &'static str {
        match self {
            ConfigKind::ConfigMap => "ConfigMap",
            ConfigKind::Secret => "Secret",
        }
    }
}

/// A ConfigMap or Secret of the app's own build that the target's pods use: the primary
/// gets a copy of it, as Flagger copies them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigObject {
    /// ConfigMap or Secret.
    pub kind: ConfigKind,
    /// Its name as written in the repository (generators: the generator's name).
    pub name: String,
    /// Its namespace in the build, as far as the files say.
    pub namespace: Option<String>,
    /// Made by a generator that appends a content hash to the name.
    pub hashed: bool,
}

/// What weir knows of an app's source at one commit.
#[derive(Debug, Clone)]
pub struct AppSource {
    /// The app folder (where the Canary is).
    pub dir: String,
    /// Digest of the source, hex.
    pub revision: String,
    /// Pod selector of the target Deployment.
    pub selector: Selector,
    /// The target Deployment's namespace, as far as the files say.
    pub namespace: Option<String>,
    /// Every file and folder the build reads (none inside another), with ids.
    pub closure: Vec<ClosureEntry>,
    /// The folder the carried source mirrors: every path the build reads, and every folder
    /// a reference passes through, is inside it, so relative references stay valid when the
    /// closure is carried under weir's folder.
    pub mirror_root: String,
    /// ConfigMaps and Secrets of the build that the target's pods use.
    pub config: Vec<ConfigObject>,
    /// The target's container images as the build sets them (init containers first).
    pub images: Vec<String>,
    /// With `service.portDiscovery`: the target's other container ports (name, port),
    /// sorted by name, as Flagger finds them (sidecars and the service's port left out).
    pub extra_ports: Vec<(String, u16)>,
    /// The Canary's file, when it holds nothing but Canaries: it is not part of the
    /// revision, and the primary carries a placeholder in its place.
    pub canary_alone: Option<String>,
    /// The entries of the app folder, to carry it without the Canary.
    pub app_listing: Vec<crate::repo::source::Entry>,
    /// The objects the app's own build makes, as far as the files say (generated ConfigMaps
    /// and Secrets with a content hash are left out: their names are not known).
    pub objects: Vec<ObjectRef>,
    /// The target's `spec.replicas` as its manifest sets it.
    pub replicas: Option<u64>,
    /// `spec.minReplicas` of the Canary's HPA (`autoscalerRef`), when it sets one.
    pub hpa_min_replicas: Option<u64>,
    /// The target's namespace where the app's kustomization applies its components: its own,
    /// or a base's; the app's own `namespace:` is set only after them.
    pub component_namespace: Option<String>,
    /// Whether the app's kustomization lists weir's replicas component.
    pub opt_in: OptIn,
}

/// An object of a build: kind, namespace, name, and the file it is written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `kind`.
    pub kind: String,
    /// The namespace it lands in.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Where it is written.
    pub file: String,
}

/// What the primary carries instead of a file that holds only Canaries.
pub const CANARY_PLACEHOLDER: &str =
    "# The Canary is not part of the primary; weir carries this placeholder in its place.\n";

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

impl Gate {
    /// The gate's query for `canary`, rendered with Flagger's variables.
    pub fn query(&self, canary: &Canary) -> Result<String, crate::core::query::QueryError> {
        crate::core::query::render(
            &self.template,
            &query_vars(canary, &self.interval, &self.variables),
        )
    }
}

/// The values a metric's query is rendered with: the Canary's names, and the metric's
/// interval and `templateVariables`. Built here only, for checking a spec and for running it.
fn query_vars<'a>(
    canary: &'a Canary,
    interval: &'a str,
    variables: &'a BTreeMap<String, String>,
) -> crate::core::query::QueryVars<'a> {
    crate::core::query::QueryVars {
        name: &canary.name,
        namespace: &canary.namespace,
        service: &canary.service.name,
        ingress: canary.ingress.as_deref().unwrap_or(""),
        route: canary.route.as_deref().unwrap_or(""),
        target: &canary.target,
        interval,
        variables,
    }
}

/// File names kustomize accepts for a kustomization.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct KustomizeRefs {
    #[serde(default)]
    namespace: Option<String>,
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
    #[serde(default)]
    generator_options: Option<GeneratorOptions>,
    #[serde(default)]
    images: Vec<ImageRef>,
    #[serde(default)]
    crds: Vec<String>,
    #[serde(default)]
    configurations: Vec<String>,
    #[serde(default)]
    transformers: Vec<String>,
    #[serde(default)]
    generators: Vec<String>,
    #[serde(default)]
    replacements: Vec<PatchRef>,
}

#[derive(Debug, Deserialize, Default)]
struct PatchRef {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    patch: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GeneratorRef {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    behavior: Option<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    envs: Vec<String>,
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    options: Option<GeneratorOptions>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct GeneratorOptions {
    #[serde(default)]
    disable_name_suffix_hash: Option<bool>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct ImageRef {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    new_name: Option<String>,
    #[serde(default)]
    new_tag: Option<Value>,
    #[serde(default)]
    digest: Option<String>,
}

fn error(file: &str, line: usize, col: usize, field: String, message: String) -> LocatedError {
    LocatedError {
        file: file.to_string(),
        line,
        col,
        severity: Severity::Error,
        field,
        message,
    }
}

/// The ids of every path an app's resolution read.
type Inputs = Vec<(String, Option<ObjectId>)>;

/// Remembers resolved apps by the ids of everything they read, at the head and at the
/// commits their primaries come from.
#[derive(Default)]
pub struct Resolver {
    memo: HashMap<String, (Inputs, Arc<AppSource>)>,
    at_commit: HashMap<(String, ObjectId), Arc<AppSource>>,
}

/// Keeps the per-commit memo from growing without bound in a long-running weir.
const AT_COMMIT_MEMO: usize = 20_000;

impl Resolver {
    /// Resolves the source of the app whose Canary is `canary` in `tree`.
    pub fn resolve(
        &mut self,
        tree: &dyn SourceTree,
        canary: &Canary,
    ) -> Result<Arc<AppSource>, Vec<LocatedError>> {
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
        // The app folder's id covers the Canary's file and everything else in it.
        let mut inputs: Inputs = vec![(dir.clone(), tree.id(&dir))];
        for e in &source.closure {
            inputs.push((e.path.clone(), Some(e.id)));
        }
        self.memo
            .insert(canary.file.clone(), (inputs, source.clone()));
        Ok(source)
    }

    /// Resolves the app at an earlier commit (where its primary comes from); remembered by
    /// commit, since a commit never changes.
    pub fn resolve_at(
        &mut self,
        commit: ObjectId,
        tree: &dyn SourceTree,
        canary: &Canary,
    ) -> Result<Arc<AppSource>, Vec<LocatedError>> {
        let key = (canary.file.clone(), commit);
        if let Some(hit) = self.at_commit.get(&key) {
            return Ok(hit.clone());
        }
        let source = Arc::new(build(tree, canary, parent(&canary.file))?);
        if self.at_commit.len() >= AT_COMMIT_MEMO {
            self.at_commit.clear();
        }
        self.at_commit.insert(key, source.clone());
        Ok(source)
    }
}

/// What walking the kustomizations of an app found.
#[derive(Default)]
struct Walk {
    /// Paths read (files and folders), possibly nested.
    closure: BTreeSet<String>,
    /// Folders references passed through.
    climbs: Vec<String>,
    /// Resource files, with the kustomization folders from the one listing it up to the app's.
    resource_files: Vec<(String, Vec<String>)>,
    /// Patch files and inline patches.
    patch_texts: Vec<String>,
    /// Config objects generators make.
    generated: Vec<ConfigObject>,
    /// `images:` of each kustomization folder.
    images: HashMap<String, Vec<ImageRef>>,
    /// `namespace:` of each kustomization folder.
    namespaces: HashMap<String, String>,
    /// The app's own kustomization: its path and text.
    app_kustomization: Option<(String, String)>,
    /// The app's kustomization lists weir's replicas component.
    component_listed: bool,
}

fn build(
    tree: &dyn SourceTree,
    canary: &Canary,
    dir: &str,
) -> Result<AppSource, Vec<LocatedError>> {
    let mut errors = Vec::new();
    let mut walk = Walk::default();
    walk.closure.insert(dir.to_string());
    // (folder, chain of kustomization folders from it up to the app's)
    let mut queue: Vec<(String, Vec<String>)> = vec![(dir.to_string(), Vec::new())];
    let mut seen = BTreeSet::new();
    while let Some((kdir, chain)) = queue.pop() {
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
            // A folder without a kustomization: kustomize reads its YAML files.
            for e in entries.iter().filter(|e| !e.is_dir && is_yaml(&e.name)) {
                let mut c = vec![kdir.clone()];
                c.extend(chain.iter().cloned());
                walk.resource_files.push((join(&kdir, &e.name), c));
            }
            continue;
        };
        let mut chain_here = vec![kdir.clone()];
        chain_here.extend(chain.iter().cloned());
        let bytes = tree.read(&kfile).map_err(|e| vec![read_error(&kfile, e)])?;
        let text = String::from_utf8_lossy(&bytes).to_string();
        let refs: KustomizeRefs = match crate::core::yaml::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                errors.push(error(
                    &kfile,
                    e.line,
                    e.col,
                    "(kustomization)".into(),
                    format!("cannot read the kustomization: {}", e.message),
                ));
                continue;
            }
        };
        if let Some(ns) = &refs.namespace {
            walk.namespaces.insert(kdir.clone(), ns.clone());
        }
        if kdir == dir {
            walk.app_kustomization = Some((kfile.clone(), text.clone()));
        }
        walk.images.insert(kdir.clone(), refs.images.clone());
        // Positions are worked out only when there is an error to place.
        let index = std::cell::OnceCell::new();
        let at = |field: &[Seg]| -> (usize, usize) {
            index
                .get_or_init(|| PositionIndex::parse(&text).ok())
                .as_ref()
                .map(|ix| ix.locate(0, field))
                .map(|l| (l.line, l.col))
                .unwrap_or((1, 1))
        };
        let default_hash = !refs
            .generator_options
            .as_ref()
            .and_then(|o| o.disable_name_suffix_hash)
            .unwrap_or(false);
        // (field, reference, kind of reference)
        let mut listed: Vec<(Vec<Seg>, String, Ref)> = Vec::new();
        for (field, list) in [
            ("resources", &refs.resources),
            ("components", &refs.components),
            ("bases", &refs.bases),
        ] {
            for (i, r) in list.iter().enumerate() {
                listed.push((
                    vec![Seg::Key(field.into()), Seg::Index(i)],
                    r.clone(),
                    Ref::Resource,
                ));
            }
        }
        for (field, list) in [
            ("crds", &refs.crds),
            ("configurations", &refs.configurations),
            ("transformers", &refs.transformers),
            ("generators", &refs.generators),
        ] {
            for (i, r) in list.iter().enumerate() {
                // Inline plugin configurations are YAML text, not paths.
                if !r.contains('\n') {
                    listed.push((
                        vec![Seg::Key(field.into()), Seg::Index(i)],
                        r.clone(),
                        Ref::File,
                    ));
                }
            }
        }
        for (i, r) in refs.patches_strategic_merge.iter().enumerate() {
            // Inline patches are YAML text, not paths.
            if r.contains('\n') || r.contains(':') {
                walk.patch_texts.push(r.clone());
            } else {
                listed.push((
                    vec![Seg::Key("patchesStrategicMerge".into()), Seg::Index(i)],
                    r.clone(),
                    Ref::Patch,
                ));
            }
        }
        for (field, list) in [
            ("patches", &refs.patches),
            ("patchesJson6902", &refs.patches_json6902),
            ("replacements", &refs.replacements),
        ] {
            for (i, pr) in list.iter().enumerate() {
                if let Some(inline) = &pr.patch {
                    walk.patch_texts.push(inline.clone());
                }
                if let Some(path) = &pr.path {
                    listed.push((
                        vec![
                            Seg::Key(field.into()),
                            Seg::Index(i),
                            Seg::Key("path".into()),
                        ],
                        path.clone(),
                        if field == "replacements" {
                            Ref::File
                        } else {
                            Ref::Patch
                        },
                    ));
                }
            }
        }
        for (field, list, kind) in [
            (
                "configMapGenerator",
                &refs.config_map_generator,
                ConfigKind::ConfigMap,
            ),
            (
                "secretGenerator",
                &refs.secret_generator,
                ConfigKind::Secret,
            ),
        ] {
            for (i, g) in list.iter().enumerate() {
                if let Some(name) = &g.name {
                    let creates = g.behavior.as_deref().unwrap_or("create") == "create";
                    if creates {
                        let hashed = g
                            .options
                            .as_ref()
                            .and_then(|o| o.disable_name_suffix_hash)
                            .map(|d| !d)
                            .unwrap_or(default_hash);
                        walk.generated.push(ConfigObject {
                            kind,
                            name: name.clone(),
                            namespace: g.namespace.clone().or_else(|| refs.namespace.clone()),
                            hashed,
                        });
                    }
                }
                let files = g
                    .files
                    .iter()
                    .map(|f| f.rsplit_once('=').map(|(_, p)| p).unwrap_or(f).to_string());
                for f in files
                    .chain(g.envs.iter().cloned())
                    .chain(g.env.iter().cloned())
                {
                    listed.push((vec![Seg::Key(field.into()), Seg::Index(i)], f, Ref::File));
                }
            }
        }
        for (field, reference, kind) in listed {
            let (line, col) = at(&field);
            let shown = crate::core::positions::display_path(&field);
            if reference.contains("://")
                || reference.starts_with("github.com/")
                || reference.starts_with("git@")
            {
                errors.push(error(&kfile, line, col, shown, format!("remote reference `{reference}` is not supported: weir builds the app from the repository alone; vendor it into the repository")));
                continue;
            }
            if reference.starts_with('/') {
                errors.push(error(
                    &kfile,
                    line,
                    col,
                    shown,
                    format!("`{reference}` is an absolute path; write it relative to {kdir}"),
                ));
                continue;
            }
            let Some((path, climb)) = resolve_path(&kdir, &reference) else {
                errors.push(error(
                    &kfile,
                    line,
                    col,
                    shown,
                    format!("`{reference}` points outside the repository"),
                ));
                continue;
            };
            if path == crate::core::names::replicas_component_dir(dir) {
                // weir's replicas component is not part of the app's source: it changes with
                // every phase, and the primary never includes it.
                if kdir == dir && field.first() == Some(&Seg::Key("components".into())) {
                    walk.component_listed = true;
                } else {
                    errors.push(error(
                        &kfile,
                        line,
                        col,
                        shown,
                        format!("`{reference}` is weir's canary-replicas component of {dir}: list it only in the app's own kustomization, under `components:`"),
                    ));
                }
                continue;
            }
            if path
                .split('/')
                .any(|part| part.ends_with(crate::core::names::OWNED_SUFFIX))
            {
                errors.push(error(
                    &kfile,
                    line,
                    col,
                    shown,
                    format!("`{reference}` points into a folder weir owns; reference the app's own folder instead"),
                ));
                continue;
            }
            if tree.link(&path) {
                errors.push(error(
                    &kfile,
                    line,
                    col,
                    shown,
                    format!("`{reference}` is a symbolic link; weir reads no links (Flux would follow it, maybe out of the repository): put the file or folder itself there"),
                ));
                continue;
            }
            if kind == Ref::Resource && chain_here.contains(&path) {
                errors.push(error(
                    &kfile,
                    line,
                    col,
                    shown,
                    format!("`{reference}` makes a cycle: {path} includes itself through {kdir}; kustomize (and Flux) refuse to build it"),
                ));
                continue;
            }
            walk.climbs.push(climb);
            match tree.list(&path) {
                Ok(_) => {
                    walk.closure.insert(path.clone());
                    if kind == Ref::Resource {
                        queue.push((path, chain_here.clone()));
                    }
                }
                Err(_) => match tree.id(&path) {
                    Some(_) => {
                        walk.closure.insert(path.clone());
                        match kind {
                            Ref::Resource => walk.resource_files.push((path, chain_here.clone())),
                            Ref::Patch => {
                                if let Ok(bytes) = tree.read(&path) {
                                    walk.patch_texts
                                        .push(String::from_utf8_lossy(&bytes).to_string());
                                }
                            }
                            Ref::File => {}
                        }
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
    let paths: Vec<String> = walk
        .closure
        .iter()
        .filter(|p| {
            !walk
                .closure
                .iter()
                .any(|q| q != *p && (q.is_empty() || p.starts_with(&format!("{q}/"))))
        })
        .cloned()
        .collect();
    // A link anywhere in what the build reads would be followed by Flux.
    for p in &paths {
        let mut found = Vec::new();
        links_under(tree, p, &mut found);
        for link in found {
            errors.push(error(
                &link,
                1,
                1,
                "(file)".into(),
                "is a symbolic link in the app's build; weir reads no links (Flux would follow it, maybe out of the repository): put the file itself there".into(),
            ));
        }
    }
    let mut closure = Vec::new();
    for p in &paths {
        let is_dir = tree.list(p).is_ok();
        if let Some(id) = tree.id(p) {
            closure.push(ClosureEntry {
                path: p.clone(),
                is_dir,
                id,
            });
        }
    }

    // The documents the build reads, and the target among them.
    let mut docs: Vec<(String, Vec<String>, Value)> = Vec::new();
    for (file, chain) in &walk.resource_files {
        // A file of Canaries alone holds nothing the primary needs.
        if canary.file_alone && file == &canary.file {
            continue;
        }
        let bytes = match tree.read(file) {
            Ok(bytes) => bytes,
            Err(e @ SourceError::Refused { .. }) => {
                errors.push(read_error(file, e));
                continue;
            }
            Err(_) => continue,
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(values) = crate::core::yaml::documents(&text) {
            for v in values {
                docs.push((file.clone(), chain.clone(), v));
            }
        }
    }
    let is = |v: &Value, kind: &str, name: &str| {
        v.get("kind").and_then(Value::as_str) == Some(kind)
            && v.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                == Some(name)
    };
    let target = docs
        .iter()
        .find(|(_, _, v)| is(v, "Deployment", &canary.target));
    let (line, col) = canary.target_at;
    let dir_shown = if dir.is_empty() {
        "the repository root"
    } else {
        dir
    };
    let mut selector = None;
    let mut namespace = None;
    let mut replicas = None;
    let mut component_namespace = None;
    let mut images = Vec::new();
    let mut extra_ports = Vec::new();
    let mut referenced = BTreeSet::new();
    match target {
        None => errors.push(error(
            &canary.file,
            line,
            col,
            "spec.targetRef.name".into(),
            format!(
                "Deployment `{}` is not among the manifests of {dir_shown} (looked in {} files)",
                canary.target,
                walk.resource_files.len()
            ),
        )),
        Some((_, chain, d)) => {
            selector = selector_of(d);
            if let Some(s) = &selector {
                if s.value.len() + "-primary".len() > 63 {
                    errors.push(error(
                        &canary.file,
                        line,
                        col,
                        "spec.targetRef.name".into(),
                        format!("the Deployment's selector label {}={} would become {}-primary for the primary, longer than a label value may be (63 characters)", s.label, s.value, s.value),
                    ));
                }
            }
            if selector.is_none() {
                errors.push(error(
                    &canary.file,
                    line,
                    col,
                    "spec.targetRef.name".into(),
                    format!("Deployment `{}` has none of the selector labels {} in spec.selector.matchLabels", canary.target, SELECTOR_LABELS.join(", ")),
                ));
            }
            namespace = doc_namespace(d, chain, &walk.namespaces);
            replicas = d["spec"].get("replicas").and_then(Value::as_u64);
            let before_app: Vec<String> = chain.iter().filter(|k| *k != dir).cloned().collect();
            component_namespace = doc_namespace(d, &before_app, &walk.namespaces);
            images = built_images(d, chain, &walk.images);
            if canary.service.port_discovery {
                extra_ports = discovered_ports(d, canary);
            }
            config_refs(d, &mut referenced);
        }
    }
    let mut hpa_min_replicas = None;
    if let Some(hpa) = &canary.autoscaler {
        let found = docs
            .iter()
            .find(|(_, _, v)| is(v, "HorizontalPodAutoscaler", hpa));
        hpa_min_replicas = found.and_then(|(_, _, v)| v["spec"].get("minReplicas")?.as_u64());
        if found.is_none() {
            let (line, col) = canary.autoscaler_at;
            errors.push(error(
                &canary.file,
                line,
                col,
                "spec.autoscalerRef.name".into(),
                format!(
                    "HorizontalPodAutoscaler `{hpa}` is not among the manifests of {dir_shown}"
                ),
            ));
        }
    }
    let opt_in = match walk.app_kustomization.take() {
        None => OptIn::NoKustomization {
            dir: dir.to_string(),
        },
        Some((file, text)) if walk.component_listed => {
            match crate::repo::replicas::without_component(dir, &text) {
                Ok(carried) => OptIn::Listed { file, carried },
                Err(message) => {
                    let (line, col) = PositionIndex::parse(&text)
                        .ok()
                        .map(|ix| ix.locate(0, &[Seg::Key("components".into())]))
                        .map_or((1, 1), |l| (l.line, l.col));
                    errors.push(error(&file, line, col, "components".into(), message));
                    OptIn::NoKustomization {
                        dir: dir.to_string(),
                    }
                }
            }
        }
        Some((file, text)) => OptIn::Missing { file, text },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    for text in &walk.patch_texts {
        if let Ok(values) = crate::core::yaml::documents(text) {
            for v in values {
                config_refs(&v, &mut referenced);
            }
        }
    }
    let mut config = BTreeSet::new();
    for (_, chain, v) in &docs {
        let kind = match v.get("kind").and_then(Value::as_str) {
            Some("ConfigMap") => ConfigKind::ConfigMap,
            Some("Secret") => ConfigKind::Secret,
            _ => continue,
        };
        let Some(name) = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let tracking_off = v
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get("flagger.app/config-tracking"))
            .and_then(Value::as_str)
            == Some("disabled");
        if tracking_off || !referenced.contains(&(kind, name.to_string())) {
            continue;
        }
        config.insert(ConfigObject {
            kind,
            name: name.to_string(),
            namespace: doc_namespace(v, chain, &walk.namespaces),
            hashed: false,
        });
    }
    for g in walk.generated {
        if referenced.contains(&(g.kind, g.name.clone())) {
            config.insert(g);
        }
    }
    let mut objects = Vec::new();
    for (file, chain, v) in &docs {
        let (Some(kind), Some(name)) = (
            v.get("kind").and_then(Value::as_str),
            v.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str),
        ) else {
            continue;
        };
        objects.push(ObjectRef {
            kind: kind.to_string(),
            namespace: doc_namespace(v, chain, &walk.namespaces)
                .unwrap_or_else(|| canary.namespace.clone()),
            name: name.to_string(),
            file: file.clone(),
        });
    }
    let mirror_root = mirror_root(dir, &closure, &walk.climbs);
    let canary_alone = canary.file_alone.then(|| canary.file.clone());
    // Listing the replicas component is not a new revision: the kustomization counts as the
    // primary carries it, without the entry.
    let carried = match &opt_in {
        OptIn::Listed { file, carried } => {
            Some((file.as_str(), ObjectId::for_blob(carried.as_bytes())))
        }
        _ => None,
    };
    let revision = digest(tree, &closure, canary_alone.as_deref(), carried);
    let app_listing = tree.list(dir).unwrap_or_default();
    Ok(AppSource {
        dir: dir.to_string(),
        revision,
        selector: selector.expect("checked above"),
        namespace,
        closure,
        mirror_root,
        config: config.into_iter().collect(),
        images,
        extra_ports,
        canary_alone,
        app_listing,
        objects,
        replicas,
        hpa_min_replicas,
        component_namespace,
        opt_in,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ref {
    /// A resource: a folder is walked as a kustomization, a file read as manifests.
    Resource,
    /// A patch file: read for config references.
    Patch,
    /// Any other file the build reads.
    File,
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json")
}

/// The deepest folder holding the app folder's parent, every closure path and every folder
/// a reference passed through.
fn mirror_root(dir: &str, closure: &[ClosureEntry], climbs: &[String]) -> String {
    let split = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut common = split(parent(dir));
    let mut narrow = |parts: Vec<String>| {
        let n = common
            .iter()
            .zip(parts.iter())
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(n);
    };
    for e in closure {
        let mut parts = split(&e.path);
        if !e.is_dir {
            parts.pop();
        }
        narrow(parts);
    }
    for c in climbs {
        narrow(split(c));
    }
    common.join("/")
}

/// The namespace of a document: its own, else the nearest kustomization's.
fn doc_namespace(
    v: &Value,
    chain: &[String],
    namespaces: &HashMap<String, String>,
) -> Option<String> {
    // A kustomization's `namespace:` overrides what the file says.
    for k in chain.iter().rev() {
        if let Some(ns) = namespaces.get(k) {
            return Some(ns.clone());
        }
    }
    v.get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

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

/// The container ports of a Deployment that `portDiscovery` adds to the Services, as Flagger
/// finds them: every container but the mesh's sidecars (`istio-proxy`, `envoy`), every port
/// but the one the service routes to, named by its name or `tcp-<container>-<index>`.
fn discovered_ports(d: &Value, canary: &Canary) -> Vec<(String, u16)> {
    let svc = &canary.service;
    let mut out = std::collections::BTreeMap::new();
    let containers = d["spec"]["template"]["spec"]
        .get("containers")
        .and_then(Value::as_sequence);
    for c in containers.into_iter().flatten() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
        if cname == "istio-proxy" || cname == "envoy" {
            continue;
        }
        let ports = c.get("ports").and_then(Value::as_sequence);
        for (i, p) in ports.into_iter().flatten().enumerate() {
            let Some(number) = p
                .get("containerPort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
            else {
                continue;
            };
            let pname = p.get("name").and_then(Value::as_str).unwrap_or("");
            let routed = match &svc.target_port {
                serde_json::Value::Number(n) => n.as_u64() == Some(u64::from(number)),
                serde_json::Value::String(s) => s == pname,
                _ => number == svc.port,
            };
            if routed {
                continue;
            }
            let name = if pname.is_empty() {
                format!("tcp-{cname}-{i}")
            } else {
                pname.to_string()
            };
            out.insert(name, number);
        }
    }
    out.into_iter().collect()
}

/// The container images of a Deployment after the `images:` of every kustomization from the
/// one listing its file up to the app's (innermost first, as kustomize applies them).
fn built_images(
    d: &Value,
    chain: &[String],
    images: &HashMap<String, Vec<ImageRef>>,
) -> Vec<String> {
    let spec = &d["spec"]["template"]["spec"];
    let mut out: Vec<String> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_sequence))
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
        .collect();
    for k in chain {
        for rule in images.get(k).into_iter().flatten() {
            for image in out.iter_mut() {
                *image = apply_image_rule(image, rule);
            }
        }
    }
    out
}

fn apply_image_rule(image: &str, rule: &ImageRef) -> String {
    let (name, tag, digest) = split_image(image);
    if rule.name.as_deref() != Some(name.as_str()) {
        return image.to_string();
    }
    let name = rule.new_name.clone().unwrap_or(name);
    if let Some(d) = &rule.digest {
        return format!("{name}@{d}");
    }
    let tag = match &rule.new_tag {
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => tag,
    };
    match (tag, digest) {
        (Some(t), _) => format!("{name}:{t}"),
        (None, Some(d)) => format!("{name}@{d}"),
        (None, None) => name,
    }
}

/// `registry:5000/app:1.0@sha256:...` -> (name, tag, digest).
fn split_image(image: &str) -> (String, Option<String>, Option<String>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest[last_slash..].rfind(':') {
        Some(i) => (
            rest[..last_slash + i].to_string(),
            Some(rest[last_slash + i + 1..].to_string()),
            digest,
        ),
        None => (rest.to_string(), None, digest),
    }
}

/// Collects the ConfigMaps and Secrets a manifest or patch refers to: volumes, projected
/// sources, envFrom and env valueFrom, wherever they sit.
fn config_refs(v: &Value, out: &mut BTreeSet<(ConfigKind, String)>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let name_of =
                    |field: &str| child.get(field).and_then(Value::as_str).map(str::to_string);
                match k.as_str() {
                    Some("configMap") | Some("configMapRef") | Some("configMapKeyRef") => {
                        if let Some(n) = name_of("name") {
                            out.insert((ConfigKind::ConfigMap, n));
                        }
                    }
                    Some("secret") => {
                        if let Some(n) = name_of("secretName").or_else(|| name_of("name")) {
                            out.insert((ConfigKind::Secret, n));
                        }
                    }
                    Some("secretRef") | Some("secretKeyRef") => {
                        if let Some(n) = name_of("name") {
                            out.insert((ConfigKind::Secret, n));
                        }
                    }
                    _ => {}
                }
                config_refs(child, out);
            }
        }
        Value::Sequence(s) => {
            for child in s {
                config_refs(child, out);
            }
        }
        _ => {}
    }
}

/// Every link at or under `path`.
fn links_under(tree: &dyn SourceTree, path: &str, out: &mut Vec<String>) {
    if tree.link(path) {
        out.push(path.to_string());
        return;
    }
    if let Ok(entries) = tree.list(path) {
        for e in entries {
            let p = join(path, &e.name);
            if e.link {
                out.push(p);
            } else if e.is_dir {
                links_under(tree, &p, out);
            }
        }
    }
}

fn read_error(path: &str, e: SourceError) -> LocatedError {
    error(path, 1, 1, "(file)".into(), e.to_string())
}

/// Digest of the app's source: every file of the closure by content id, except the file of
/// the Canary when it holds nothing else (`skip`), and one file counted by another id
/// (`replace`: the app's kustomization as the primary carries it).
pub fn digest(
    tree: &dyn SourceTree,
    closure: &[ClosureEntry],
    skip: Option<&str>,
    replace: Option<(&str, ObjectId)>,
) -> String {
    let canary_file = skip.unwrap_or("");
    let mut lines = Vec::new();
    fn walk(
        tree: &dyn SourceTree,
        path: &str,
        skip: &str,
        replace: Option<(&str, ObjectId)>,
        lines: &mut Vec<String>,
    ) {
        let inside = |p: &str, file: &str| file.starts_with(&format!("{p}/"));
        match tree.list(path) {
            Ok(entries) => {
                for e in entries {
                    let p = join(path, &e.name);
                    if p == skip {
                        continue;
                    }
                    let holds_replaced = replace.is_some_and(|(file, _)| inside(&p, file));
                    // A folder that holds neither the Canary nor the replaced file counts by
                    // its tree id.
                    if e.is_dir && !inside(&p, skip) && !holds_replaced && !e.id.is_zero() {
                        lines.push(format!("{p} {}", e.id));
                    } else if e.is_dir {
                        walk(tree, &p, skip, replace, lines);
                    } else {
                        let id = match replace {
                            Some((file, id)) if file == p => id,
                            _ => e.id,
                        };
                        lines.push(format!("{p} {id}"));
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
    for e in closure {
        walk(tree, &e.path, canary_file, replace, &mut lines);
    }
    lines.sort();
    ObjectId::for_blob(lines.join("\n").as_bytes()).to_string()
}

/// The gates of a Canary, with their queries resolved against the MetricTemplates.
pub fn gates(canary: &Canary, templates: &TemplateIndex) -> Result<Vec<Gate>, Vec<LocatedError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, m) in canary.analysis.metrics.iter().enumerate() {
        let (template, address) = match &m.source {
            MetricSource::RequestSuccessRate => (
                crate::core::query::REQUEST_SUCCESS_RATE.to_string(),
                canary.metrics_server.clone(),
            ),
            MetricSource::RequestDuration => (
                crate::core::query::REQUEST_DURATION.to_string(),
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
                        let message = if templates.is_ambiguous(ns, name) {
                            format!("MetricTemplate {ns}/{name} is defined more than once; weir uses neither until one is removed")
                        } else {
                            format!(
                                "MetricTemplate {ns}/{name} is not in the repository; known templates: {}",
                                if known.is_empty() { "none".to_string() } else { known.join(", ") }
                            )
                        };
                        errors.push(error(
                            &canary.file,
                            m.at.0,
                            m.at.1,
                            format!("spec.analysis.metrics[{i}].templateRef"),
                            message,
                        ));
                        continue;
                    }
                }
            }
        };
        // Render once with the real values so a missing variable is a spec error now,
        // not a failed check later.
        let interval = m.interval.to_string();
        if let Err(e) =
            crate::core::query::render(&template, &query_vars(canary, &interval, &m.variables))
        {
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

/// The label that tells primary pods from canary pods, read from the target's selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// `app`, `name` or `app.kubernetes.io/name` (Flagger's order).
    pub label: String,
    /// Its value on the canary's pods; the primary's pods carry `<value>-primary`.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::source::resolve;

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
        assert_eq!(
            resolve_path("apps/backend", "../../apps/base"),
            Some(("apps/base".to_string(), String::new()))
        );
        assert_eq!(
            resolve_path("apps/backend", "../base"),
            Some(("apps/base".to_string(), "apps".to_string()))
        );
    }

    #[test]
    fn the_mirror_root_holds_every_path_and_climb() {
        let e = |p: &str, d: bool| ClosureEntry {
            path: p.into(),
            is_dir: d,
            id: ObjectId::ZERO,
        };
        assert_eq!(
            mirror_root("apps/backend", &[e("apps/backend", true)], &[]),
            "apps"
        );
        assert_eq!(
            mirror_root(
                "apps/backend",
                &[e("apps/backend", true), e("apps/base", true)],
                &["apps".into()]
            ),
            "apps"
        );
        assert_eq!(
            mirror_root(
                "clusters/prod/backend",
                &[
                    e("clusters/prod/backend", true),
                    e("base/patch.yaml", false)
                ],
                &[String::new()]
            ),
            ""
        );
    }

    #[test]
    fn images_follow_the_kustomize_rules() {
        let rule = |name: &str, new_name: Option<&str>, tag: Option<&str>, digest: Option<&str>| {
            ImageRef {
                name: Some(name.into()),
                new_name: new_name.map(str::to_string),
                new_tag: tag.map(|t| Value::String(t.into())),
                digest: digest.map(str::to_string),
            }
        };
        assert_eq!(
            apply_image_rule(
                "ghcr.io/acme/backend:6.0.0",
                &rule("ghcr.io/acme/backend", None, Some("6.1.0"), None)
            ),
            "ghcr.io/acme/backend:6.1.0"
        );
        assert_eq!(
            apply_image_rule(
                "localhost:5000/app",
                &rule("localhost:5000/app", Some("r/app"), Some("2"), None)
            ),
            "r/app:2"
        );
        assert_eq!(
            apply_image_rule("app:1", &rule("app", None, None, Some("sha256:ab"))),
            "app@sha256:ab"
        );
        assert_eq!(
            apply_image_rule("other:1", &rule("app", None, Some("2"), None)),
            "other:1"
        );
    }

    #[test]
    fn config_references_are_found_wherever_they_sit() {
        let v: Value = serde_yaml::from_str(
            "spec:\n  template:\n    spec:\n      volumes:\n        - configMap: {name: a}\n        - secret: {secretName: b}\n        - projected: {sources: [{configMap: {name: c}}, {secret: {name: d}}]}\n      containers:\n        - envFrom: [{configMapRef: {name: e}}, {secretRef: {name: f}}]\n          env: [{valueFrom: {configMapKeyRef: {name: g}}}, {valueFrom: {secretKeyRef: {name: h}}}]\n",
        )
        .unwrap();
        let mut out = BTreeSet::new();
        config_refs(&v, &mut out);
        let names: Vec<String> = out
            .iter()
            .map(|(k, n)| format!("{}/{n}", k.kind()))
            .collect();
        assert_eq!(
            names,
            [
                "ConfigMap/a",
                "ConfigMap/c",
                "ConfigMap/e",
                "ConfigMap/g",
                "Secret/b",
                "Secret/d",
                "Secret/f",
                "Secret/h"
            ]
        );
    }

    mod replicas_component {
        use super::*;
        use crate::repo::mem_tree::MemTree;

        const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: backend\n  namespace: prod\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: backend\n  service:\n    port: 9898\n  analysis:\n    interval: 15s\n    stepWeight: 10\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n        interval: 30s\n";
        const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\n  namespace: prod\nspec:\n  selector:\n    matchLabels:\n      app: backend\n  template:\n    metadata:\n      labels:\n        app: backend\n    spec:\n      containers:\n        - name: backend\n          image: ghcr.io/acme/backend:6.1.0\n";
        const KUSTOMIZATION: &str = "resources:\n  - canary.yaml\n  - deployment.yaml\n";
        const LINE: &str = "components: [../backend.weir/canary-replicas]\n";

        fn canary() -> Canary {
            let scan = crate::core::spec::scan_file(
                "apps/backend/canary.yaml",
                CANARY.as_bytes(),
                std::time::Duration::from_secs(10),
            );
            scan.canaries.into_iter().next().unwrap().unwrap().0
        }

        fn source(kustomization: &str) -> Result<AppSource, Vec<LocatedError>> {
            let tree = MemTree::new([
                ("apps/backend/canary.yaml", CANARY),
                ("apps/backend/deployment.yaml", DEPLOYMENT),
                ("apps/backend/kustomization.yaml", kustomization),
                ("apps/base/kustomization.yaml", "resources: []\n"),
            ]);
            build(&tree, &canary(), "apps/backend")
        }

        #[test]
        fn listing_it_is_not_a_new_revision_and_it_is_not_part_of_the_source() {
            let without = source(KUSTOMIZATION).unwrap();
            let with = source(&format!("{KUSTOMIZATION}{LINE}")).unwrap();
            assert_eq!(with.revision, without.revision);
            assert_eq!(with.closure.len(), without.closure.len());
            assert!(with
                .closure
                .iter()
                .all(|e| !e.path.contains(crate::core::names::OWNED_SUFFIX)));
            assert_eq!(
                with.opt_in,
                OptIn::Listed {
                    file: "apps/backend/kustomization.yaml".into(),
                    carried: KUSTOMIZATION.into(),
                }
            );
            assert!(matches!(without.opt_in, OptIn::Missing { .. }));
            assert!(without.opt_in.edit().is_some());
            // Any other change to the kustomization still is one.
            let other = source(&format!("{KUSTOMIZATION}{LINE}namePrefix: x-\n")).unwrap();
            assert_ne!(other.revision, without.revision);
        }

        #[test]
        fn it_is_refused_anywhere_but_the_apps_own_components() {
            let errors =
                source("resources:\n  - canary.yaml\n  - deployment.yaml\n  - ../backend.weir/canary-replicas\n")
                    .unwrap_err();
            assert!(
                errors[0]
                    .message
                    .contains("list it only in the app's own kustomization, under `components:`"),
                "{errors:?}"
            );
            let errors = source(&format!(
                "{KUSTOMIZATION}components:\n  - >-\n    ../backend.weir/canary-replicas\n"
            ))
            .unwrap_err();
            assert_eq!(errors[0].field, "components", "{errors:?}");
            assert!(errors[0].message.contains("weir cannot take"), "{errors:?}");
        }
    }
}
