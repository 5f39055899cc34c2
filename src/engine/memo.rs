//! What the last tick found, so that the next one reads only what changed: every app's
//! Canary file, the paths its build reads (its dependencies), a digest of what the rules
//! across apps compare of it (its claims), and whether it was settled (idle with nothing
//! due: on the same inputs, a tick decides nothing for it). A long-running weir keeps it in
//! memory; a fresh process (`weir step`, one per CI job) finds it beside the local copy of
//! the repository.
//!
//! The next tick compares the memo's head with the new one by tree ids (an unchanged folder
//! costs one comparison), and gathers only the apps whose dependencies changed and the apps
//! that were not settled. Anything it cannot place makes it gather every app, as without a
//! memo: a change in a file holding MetricTemplates, AlertProviders or errors (or in its
//! folder), a new file that may hold a spec, one of weir's folders of no known app, a folder
//! added or removed outside any app, a rule across apps refusing an app, and, found while
//! gathering, a Canary gone or renamed or claiming something new.
//!
//! A memo only skips reading what it knows is unchanged; it never decides anything.

use super::report::Base;
use super::Settings;
use crate::core::names::OWNED_SUFFIX;
use crate::core::spec::may_hold_spec;
use crate::repo::kustomize::KUSTOMIZATION_FILES;
use crate::repo::objects::ObjectId;
use crate::repo::render::Templates;
use crate::repo::source::{changed, parent, SourceTree};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Bumped when the memo's meaning changes.
const FORMAT: u32 = 1;

/// What the last tick found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Memo {
    /// Everything besides the tree that changes what a tick reads (format, version,
    /// settings, templates): a memo of another key is not used.
    key: String,
    /// The head the memo was made at.
    head: String,
    /// A rule across apps refused some app: the next tick looks at every app.
    across: bool,
    /// The files holding anything but valid Canaries, read again by every tick.
    spec_files: Vec<String>,
    /// Every valid Canary found.
    apps: Vec<MemoApp>,
}

/// One app in the memo.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MemoApp {
    /// Its Canary's file.
    pub(super) file: String,
    /// Digest of what the rules across apps compare of it ([`crate::repo::rules::claims`]).
    pub(super) claims: u64,
    /// The paths whose change can change anything about it: its folder, weir's folder, and
    /// every file and folder its build reads.
    pub(super) deps: Vec<String>,
    /// Its line before anything is looked at.
    pub(super) base: Base,
    /// Idle with nothing due on these inputs.
    pub(super) settled: bool,
}

/// Which apps a tick gathers.
pub(super) enum Scope {
    /// Every app the scan finds.
    All,
    /// Only these.
    Some {
        /// The Canary files to gather (each app's claims as the memo has them) and the spec
        /// files to read.
        files: Vec<String>,
        claims: HashMap<String, u64>,
        spec_files: Vec<String>,
        /// The settled apps whose dependencies did not change: their lines are carried.
        carried: Vec<MemoApp>,
    },
}

/// What a memo is valid for besides the tree.
pub(super) fn key(settings: &Settings, templates: &Templates, cluster: Option<String>) -> String {
    format!(
        "{FORMAT} {} {:?} {:?} {} {}",
        env!("CARGO_PKG_VERSION"),
        settings.roots,
        settings.min_interval,
        templates.digest(),
        cluster.unwrap_or_default()
    )
}

impl Memo {
    /// A memo of what a tick at `head` gathered.
    pub(super) fn new(
        key: String,
        head: ObjectId,
        across: bool,
        spec_files: Vec<String>,
        apps: Vec<MemoApp>,
    ) -> Memo {
        Memo {
            key,
            head: head.to_string(),
            across,
            spec_files,
            apps,
        }
    }

    /// The memo at `commit`, which weir made on the memo's head changing only weir's folders
    /// (and removing orphans): the apps it brought to rest are settled there.
    pub(super) fn published(mut self, commit: ObjectId, at_rest: &[String]) -> Memo {
        let at_rest: HashSet<&str> = at_rest.iter().map(String::as_str).collect();
        for app in &mut self.apps {
            app.settled |= at_rest.contains(app.file.as_str());
        }
        self.head = commit.to_string();
        self
    }

    /// Reads a kept memo; `None` when it is unreadable or of another key.
    pub(super) fn decode(bytes: &[u8], key: &str) -> Option<Memo> {
        serde_json::from_slice::<Memo>(bytes)
            .ok()
            .filter(|m| m.key == key)
    }

    /// The memo as kept.
    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The head it was made at.
    pub(super) fn head(&self) -> Option<ObjectId> {
        ObjectId::from_hex(&self.head)
    }

    /// Which apps to gather at `new`, the memo having been made at `old`.
    pub(super) fn scope(&self, old: &dyn SourceTree, new: &dyn SourceTree) -> Scope {
        if self.across {
            return Scope::All;
        }
        let Some(affected) = self.affected(old, new) else {
            return Scope::All;
        };
        let spec_files: HashSet<&str> = self.spec_files.iter().map(String::as_str).collect();
        let mut files = Vec::new();
        let mut claims = HashMap::new();
        let mut carried = Vec::new();
        for (app, hit) in self.apps.iter().zip(affected) {
            if app.settled && !hit && !spec_files.contains(app.file.as_str()) {
                carried.push(app.clone());
            } else {
                files.push(app.file.clone());
                claims.insert(app.file.clone(), app.claims);
            }
        }
        Scope::Some {
            files,
            claims,
            spec_files: self.spec_files.clone(),
            carried,
        }
    }

    /// For each app, whether a path it depends on changed; `None` when some change cannot
    /// be placed.
    fn affected(&self, old: &dyn SourceTree, new: &dyn SourceTree) -> Option<Vec<bool>> {
        let changes = changed(old, new).ok()?;
        let mut affected = vec![false; self.apps.len()];
        if changes.is_empty() {
            return Some(affected);
        }
        // A spec file is read with its folder's kustomization (its `namespace:`).
        let spec_files: HashSet<&str> = self.spec_files.iter().map(String::as_str).collect();
        let spec_dirs: HashSet<&str> = self.spec_files.iter().map(|f| parent(f)).collect();
        let kustomization = |p: &str| {
            let name = p.rsplit('/').next().unwrap_or(p);
            KUSTOMIZATION_FILES.contains(&name)
        };
        let mut by_dep: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, app) in self.apps.iter().enumerate() {
            for dep in &app.deps {
                by_dep.entry(dep.as_str()).or_default().push(i);
            }
        }
        for change in changes {
            let path = change.path.as_str();
            if spec_files.contains(path)
                || (kustomization(path) && spec_dirs.contains(parent(path)))
                || (change.is_dir && self.spec_files.iter().any(|f| below(f, path)))
            {
                return None;
            }
            let mut hit = false;
            let mut mark = |apps: &Vec<usize>| {
                for i in apps {
                    affected[*i] = true;
                }
                hit = true;
            };
            for a in ancestors(path) {
                if let Some(apps) = by_dep.get(a) {
                    mark(apps);
                }
            }
            if change.is_dir {
                let inside = format!("{path}/");
                for (_, apps) in by_dep
                    .range(inside.as_str()..)
                    .take_while(|(d, _)| d.starts_with(&inside))
                {
                    mark(apps);
                }
            }
            if hit {
                continue;
            }
            let owned = path.split('/').any(|part| part.ends_with(OWNED_SUFFIX));
            let yaml = path.ends_with(".yaml") || path.ends_with(".yml");
            if owned
                || change.is_dir
                || (yaml && new.read(path).is_ok_and(|bytes| may_hold_spec(&bytes)))
            {
                return None;
            }
        }
        Some(affected)
    }
}

/// `path`, its folder, that folder's folder, up to the root ("").
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| (!p.is_empty()).then(|| parent(p)))
}

/// Whether `path` is inside the folder `dir` (or is it).
fn below(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(&format!("{dir}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_end_at_the_root() {
        let all: Vec<&str> = ancestors("apps/a/x.yaml").collect();
        assert_eq!(all, ["apps/a/x.yaml", "apps/a", "apps", ""]);
        assert!(below("apps/a/b", "apps/a"));
        assert!(!below("apps/ab", "apps/a"));
    }
}
