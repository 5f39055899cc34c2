//! Reading the config repo: a tree of folders and files (from a Git commit, through the
//! config repo port, or a checkout on disk), and the scan that finds every Canary and
//! MetricTemplate in it.
//!
//! Scans are remembered by object id (a folder by its tree id, a file by its blob id), so a
//! tick on a repository of thousands of apps re-reads only what changed since the last one.
//! Owns no decisions and writes nothing.

use crate::core::names::OWNED_SUFFIX;
use crate::core::spec::{self, Canary, LocatedError, TemplateIndex};
use crate::repo::objects::ObjectId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A file or folder in a source tree.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Name within its folder.
    pub name: String,
    /// Folder or file.
    pub is_dir: bool,
    /// A symbolic link (never followed, never read).
    pub link: bool,
    /// Object id (for files on disk: the blob id their content would have; folders on disk:
    /// zero).
    pub id: ObjectId,
}

/// A failure to read the source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No such path.
    #[error("{0}: no such file or folder")]
    Missing(String),
    /// Reading failed.
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    /// weir does not read it: a symbolic link, or a file too large.
    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
}

/// The largest file weir reads from a repository.
pub const MAX_FILE: u64 = 4 * 1024 * 1024;

impl SourceError {
    /// The refusal of a link.
    pub fn link(path: &str) -> SourceError {
        SourceError::Refused {
            path: path.to_string(),
            reason: "is a symbolic link; weir reads no links (Flux would follow it, maybe out of the repository): put the file itself there".into(),
        }
    }

    /// The refusal of a file over [`MAX_FILE`].
    pub fn too_large(path: &str, size: u64) -> SourceError {
        SourceError::Refused {
            path: path.to_string(),
            reason: format!("is {size} bytes; weir reads files of at most {MAX_FILE} bytes"),
        }
    }
}

/// Read access to a tree of files; paths are `/`-separated and relative to the root (the
/// root itself is "").
pub trait SourceTree {
    /// The entries of a folder, sorted by name.
    fn list(&self, dir: &str) -> Result<Vec<Entry>, SourceError>;
    /// The bytes of a file.
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError>;
    /// The id of a folder when the tree has stable ids (Git); `None` on disk.
    fn dir_id(&self, dir: &str) -> Option<ObjectId>;
    /// The id of a file or folder at `path`, if it exists.
    fn id(&self, path: &str) -> Option<ObjectId>;
    /// True when `path` is a symbolic link.
    fn link(&self, path: &str) -> bool;
}

/// Joins a folder and a name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The folder part of a path ("" at the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Resolves a relative reference against a folder, refusing anything outside the repository.
/// Also returns the shallowest folder the resolution passes through.
pub fn resolve_path(dir: &str, reference: &str) -> Option<(String, String)> {
    let mut parts: Vec<&str> = if dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    let mut lowest = parts.len();
    for part in reference.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
                lowest = lowest.min(parts.len());
            }
            p => parts.push(p),
        }
    }
    // `parts[..lowest]` is a prefix of `dir` only while nothing was pushed below it.
    let shallowest = dir
        .split('/')
        .filter(|s| !s.is_empty())
        .take(lowest)
        .collect::<Vec<_>>()
        .join("/");
    Some((parts.join("/"), shallowest))
}

/// Resolves a relative reference against a folder, refusing anything outside the repository.
pub fn resolve(dir: &str, reference: &str) -> Option<String> {
    resolve_path(dir, reference).map(|(p, _)| p)
}

/// What a scan found.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Valid Canaries with their warnings, sorted by file.
    pub canaries: Vec<(Canary, Vec<LocatedError>)>,
    /// Canary documents that are not valid (their errors are in `errors` too).
    pub invalid: Vec<spec::InvalidCanary>,
    /// All MetricTemplates.
    pub templates: TemplateIndex,
    /// weir's folders (`*.weir`) found under the roots, sorted.
    pub owned: Vec<String>,
    /// All AlertProviders, by namespace and name (the namespace `?` when none is known).
    pub providers:
        std::collections::BTreeMap<(String, String), spec::alert_provider::AlertProviderSpec>,
    /// Every error (and the warnings of invalid specs), sorted by file and line.
    pub errors: Vec<LocatedError>,
    /// Only some files were scanned ([`Scanner::scan_files`]): weir's folders and the
    /// Canaries of other files were not looked for.
    pub partial: bool,
    /// The files holding anything besides valid Canaries (MetricTemplates, AlertProviders,
    /// invalid documents, errors), sorted: what every app may depend on.
    pub spec_files: Vec<String>,
}

/// A scanned file: its path, blob id, and the namespace its folder's kustomization gives it
/// (the same blob reads differently under another namespace).
type FileKey = (String, ObjectId, Option<String>);

#[derive(Default)]
struct DirScan {
    files: Vec<Arc<(String, spec::FileScan)>>,
    /// Memo keys of the folders and files directly inside, to keep them when this hits.
    child_dirs: Vec<(String, ObjectId)>,
    child_files: Vec<FileKey>,
    /// weir's folders (`*.weir`) in this folder and below.
    owned: Vec<String>,
}

/// Finds specs under the configured roots, remembering what it read by object id.
pub struct Scanner {
    roots: Vec<String>,
    min_interval: Duration,
    dirs: HashMap<(String, ObjectId), Arc<DirScan>>,
    files: HashMap<FileKey, Arc<(String, spec::FileScan)>>,
    /// Keys used by the scan in progress; the rest is dropped afterwards so a long-running
    /// weir keeps only what the current head needs.
    used_dirs: std::collections::HashSet<(String, ObjectId)>,
    used_files: std::collections::HashSet<FileKey>,
}

impl Scanner {
    /// A scanner of `roots` ("" or "." for the whole repository).
    pub fn new(roots: &[String], min_interval: Duration) -> Scanner {
        let roots = roots
            .iter()
            .map(|r| r.trim_matches('/').trim_start_matches("./").to_string())
            .map(|r| if r == "." { String::new() } else { r })
            .collect();
        Scanner {
            roots,
            min_interval,
            dirs: HashMap::new(),
            files: HashMap::new(),
            used_dirs: Default::default(),
            used_files: Default::default(),
        }
    }

    /// Scans a tree. Unchanged folders and files cost a hash lookup.
    pub fn scan(&mut self, tree: &dyn SourceTree) -> Result<Catalog, SourceError> {
        let mut files = Vec::new();
        let mut owned: Vec<String> = Vec::new();
        for root in self.roots.clone() {
            match self.scan_dir(tree, &root, tree.dir_id(&root)) {
                Ok(scan) => {
                    files.extend(scan.files.iter().cloned());
                    owned.extend(scan.owned.iter().cloned());
                }
                Err(SourceError::Missing(_)) => {
                    return Err(SourceError::Missing(format!(
                        "root folder `{root}` (from --roots)"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        let (used_dirs, used_files) = (
            std::mem::take(&mut self.used_dirs),
            std::mem::take(&mut self.used_files),
        );
        // An idle tick (every root a hit) has nothing to forget and stays O(roots).
        if !used_files.is_empty() || used_dirs.len() > self.roots.len() {
            let mut keep_dirs = used_dirs;
            let mut stack: Vec<(String, ObjectId)> = keep_dirs.iter().cloned().collect();
            let mut keep_files = used_files;
            while let Some(key) = stack.pop() {
                if let Some(d) = self.dirs.get(&key) {
                    keep_files.extend(d.child_files.iter().cloned());
                    for c in &d.child_dirs {
                        if keep_dirs.insert(c.clone()) {
                            stack.push(c.clone());
                        }
                    }
                }
            }
            self.dirs.retain(|k, _| keep_dirs.contains(k));
            self.files.retain(|k, _| keep_files.contains(k));
        }
        owned.sort();
        owned.dedup();
        Ok(catalog_of(files, owned))
    }

    /// Scans only the given files (Canary and spec files a memo of the last tick names),
    /// as [`Scanner::scan`] would find them; a file that is gone is left out. weir's folders
    /// are not looked for: the catalog's `owned` stays empty.
    pub fn scan_files(
        &mut self,
        tree: &dyn SourceTree,
        paths: &[String],
    ) -> Result<Catalog, SourceError> {
        let mut files = Vec::new();
        for path in paths {
            let Some(id) = tree.id(path) else { continue };
            let ns = kustomization_namespace(tree, parent(path));
            let (_, file) = self.scan_file(tree, path.clone(), id, ns)?;
            if file.1.holds_anything() {
                files.push(file);
            }
        }
        // What the full scans hold is kept: this scan saw only part of the tree.
        self.used_dirs.clear();
        self.used_files.clear();
        Ok(Catalog {
            partial: true,
            ..catalog_of(files, Vec::new())
        })
    }

    /// Scans one file by its blob id (zero on disk: read every time).
    fn scan_file(
        &mut self,
        tree: &dyn SourceTree,
        path: String,
        id: ObjectId,
        ns: Option<String>,
    ) -> Result<(FileKey, Arc<(String, spec::FileScan)>), SourceError> {
        let key = (path, id, ns);
        if let Some(hit) = self.files.get(&key).filter(|_| !id.is_zero()) {
            self.used_files.insert(key.clone());
            return Ok((key, hit.clone()));
        }
        let (path, ns) = (&key.0, key.2.as_deref());
        let result = match tree.read(path) {
            Ok(bytes) if spec::may_hold_spec(&bytes) => {
                spec::scan_file_in(path, &bytes, self.min_interval, ns)
            }
            Ok(_) => spec::FileScan::default(),
            // One file weir will not read does not stop the others.
            Err(SourceError::Refused { reason, .. }) => spec::FileScan::refused(path, &reason),
            Err(e) => return Err(e),
        };
        let file = Arc::new((path.clone(), result));
        if !id.is_zero() {
            self.files.insert(key.clone(), file.clone());
        }
        self.used_files.insert(key.clone());
        Ok((key, file))
    }

    /// Scans a folder whose id (when the tree has ids) the caller already knows.
    fn scan_dir(
        &mut self,
        tree: &dyn SourceTree,
        dir: &str,
        id: Option<ObjectId>,
    ) -> Result<Arc<DirScan>, SourceError> {
        if let Some(id) = id {
            let key = (dir.to_string(), id);
            if let Some(hit) = self.dirs.get(&key) {
                let hit = hit.clone();
                self.used_dirs.insert(key);
                return Ok(hit);
            }
        }
        let mut scan = DirScan::default();
        let entries = tree.list(dir)?;
        // The folder's kustomization `namespace:` applies to every spec in it, as kustomize
        // applies it; read only when the folder has a file that may hold a spec.
        let mut namespace: Option<Option<String>> = None;
        for entry in entries {
            let path = join(dir, &entry.name);
            if entry.is_dir {
                if entry.name.ends_with(OWNED_SUFFIX) {
                    scan.owned.push(path.clone());
                    continue;
                }
                if entry.name.starts_with('.') {
                    continue;
                }
                let known = (!entry.id.is_zero()).then_some(entry.id);
                let sub = self.scan_dir(tree, &path, known)?;
                scan.files.extend(sub.files.iter().cloned());
                scan.owned.extend(sub.owned.iter().cloned());
                scan.child_dirs.push((path.clone(), entry.id));
            } else if is_yaml(&entry.name) {
                let ns = namespace
                    .get_or_insert_with(|| kustomization_namespace(tree, dir))
                    .clone();
                let (key, file) = self.scan_file(tree, path, entry.id, ns)?;
                scan.child_files.push(key);
                if file.1.holds_anything() {
                    scan.files.push(file);
                }
            }
        }
        let scan = Arc::new(scan);
        if let Some(id) = id {
            self.dirs.insert((dir.to_string(), id), scan.clone());
            self.used_dirs.insert((dir.to_string(), id));
        }
        Ok(scan)
    }
}

/// A path that differs between two trees: a file, or a folder added or removed whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The path.
    pub path: String,
    /// A folder (on either side).
    pub is_dir: bool,
}

/// Every path that differs between two trees, not descending into folders whose ids are the
/// same on both sides: what changed costs what it touches.
pub fn changed(old: &dyn SourceTree, new: &dyn SourceTree) -> Result<Vec<Changed>, SourceError> {
    let mut out = Vec::new();
    changed_in(old, new, "", &mut out)?;
    Ok(out)
}

fn changed_in(
    old: &dyn SourceTree,
    new: &dyn SourceTree,
    dir: &str,
    out: &mut Vec<Changed>,
) -> Result<(), SourceError> {
    let list = |tree: &dyn SourceTree| match tree.list(dir) {
        Err(SourceError::Missing(_)) => Ok(Vec::new()),
        other => other,
    };
    let (a, b) = (list(old)?, list(new)?);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (x, y) = match order {
            std::cmp::Ordering::Less => (a.get(i), None),
            std::cmp::Ordering::Greater => (None, b.get(j)),
            std::cmp::Ordering::Equal => (a.get(i), b.get(j)),
        };
        i += usize::from(x.is_some());
        j += usize::from(y.is_some());
        let name = &x.or(y).expect("one side").name;
        let path = join(dir, name);
        match (x, y) {
            (Some(x), Some(y)) if x.is_dir && y.is_dir => {
                if x.id != y.id || x.id.is_zero() {
                    changed_in(old, new, &path, out)?;
                }
            }
            (Some(x), Some(y)) if x.is_dir == y.is_dir && x.link == y.link && x.id == y.id => {}
            _ => out.push(Changed {
                path,
                is_dir: x.is_some_and(|e| e.is_dir) || y.is_some_and(|e| e.is_dir),
            }),
        }
    }
    Ok(())
}

/// Whether a file name is one weir scans for specs.
fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// The catalog of scanned files (each once, by path) and weir's folders found with them.
fn catalog_of(mut files: Vec<Arc<(String, spec::FileScan)>>, owned: Vec<String>) -> Catalog {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|a, b| a.0 == b.0);
    let mut catalog = Catalog {
        owned,
        ..Catalog::default()
    };
    for file in &files {
        let scan = &file.1;
        if scan.holds_more_than_canaries() {
            catalog.spec_files.push(file.0.clone());
        }
        catalog.errors.extend(scan.errors.iter().cloned());
        for c in &scan.canaries {
            match c {
                Ok((canary, warnings)) => catalog.canaries.push((canary.clone(), warnings.clone())),
                Err(bad) => {
                    catalog.errors.extend(bad.errors.iter().cloned());
                    catalog.invalid.push(bad.clone());
                }
            }
        }
        for t in &scan.templates {
            match t {
                Ok(t) => catalog.templates.insert(t.clone()),
                Err(errors) => catalog.errors.extend(errors.iter().cloned()),
            }
        }
        for provider in &scan.providers {
            match provider {
                Ok(p) => {
                    let ns = p.namespace.clone().unwrap_or_else(|| "?".into());
                    catalog.providers.insert((ns, p.name.clone()), p.clone());
                }
                Err(errors) => catalog.errors.extend(errors.iter().cloned()),
            }
        }
    }
    catalog
        .errors
        .extend(catalog.templates.duplicates().iter().cloned());
    catalog.errors.sort();
    catalog
}

/// The `namespace:` of a folder's kustomization, if it has one that sets it. A kustomization
/// weir cannot read sets nothing here; resolving the app reports it.
fn kustomization_namespace(tree: &dyn SourceTree, dir: &str) -> Option<String> {
    for name in ["kustomization.yaml", "kustomization.yml", "Kustomization"] {
        match tree.read(&join(dir, name)) {
            Ok(bytes) => {
                if !bytes.windows(10).any(|w| w == b"namespace:") {
                    return None;
                }
                let text = std::str::from_utf8(&bytes).ok()?;
                let doc: serde_yaml::Value = crate::core::yaml::from_str(text).ok()?;
                return doc
                    .get("namespace")
                    .and_then(|v| v.as_str())
                    .filter(|ns| !ns.is_empty())
                    .map(str::to_string);
            }
            Err(_) => continue,
        }
    }
    None
}
