//! Git: the branch head and file contents, through git2. Read only.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A repository and the branch followed in it.
pub struct Repo {
    pub git_dir: PathBuf,
    pub branch: String,
}

impl Repo {
    pub fn open(path: &Path, branch: &str) -> Repo {
        Repo {
            git_dir: path.to_owned(),
            branch: branch.to_owned(),
        }
    }

    /// Opened anew on each read, so that objects pushed meanwhile are seen.
    fn repository(&self) -> Result<git2::Repository> {
        git2::Repository::open(&self.git_dir)
            .with_context(|| format!("opening {}", self.git_dir.display()))
    }

    /// The commit at the branch head, or `None` when the branch does not exist.
    pub fn head(&self) -> Result<Option<String>> {
        let repo = self.repository()?;
        let found = repo.refname_to_id(&format!("refs/heads/{}", self.branch));
        Ok(found.ok().map(|oid| oid.to_string()))
    }

    fn tree<'r>(&self, repo: &'r git2::Repository, commit: &str) -> Result<git2::Tree<'r>> {
        let oid = git2::Oid::from_str(commit).context("reading a commit id")?;
        Ok(repo.find_commit(oid)?.tree()?)
    }

    /// The file at `commit`, `None` when it does not exist (or is a folder).
    pub fn read(&self, commit: &str, path: &str) -> Result<Option<String>> {
        let repo = self.repository()?;
        let tree = self.tree(&repo, commit)?;
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Ok(None);
        };
        if entry.kind() != Some(git2::ObjectType::Blob) {
            return Ok(None);
        }
        let blob = repo.find_blob(entry.id())?;
        Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
    }

    /// Paths of the files directly inside `dir` at `commit` (none if it does not exist).
    pub fn list_dir(&self, commit: &str, dir: &str) -> Result<Vec<String>> {
        let repo = self.repository()?;
        let tree = self.tree(&repo, commit)?;
        let Ok(entry) = tree.get_path(Path::new(dir)) else {
            return Ok(Vec::new());
        };
        let Ok(sub) = repo.find_tree(entry.id()) else {
            return Ok(Vec::new());
        };
        Ok(sub
            .iter()
            .filter(|e| e.kind() == Some(git2::ObjectType::Blob))
            .filter_map(|e| e.name().ok().map(|n| format!("{dir}/{n}")))
            .collect())
    }
}

pub fn normalise_dir(dir: &str) -> String {
    dir.trim_start_matches("./")
        .trim_end_matches('/')
        .to_owned()
}

/// `rel` (a kustomization's relative path) from the folder `dir`: `apps/backend` and
/// `../backend.weir/canary-replicas` make `apps/backend.weir/canary-replicas`.
pub fn join_dir(dir: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = dir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_as_kustomize_resolves_them() {
        assert_eq!(
            join_dir("apps/backend", "../backend.weir/canary-replicas"),
            "apps/backend.weir/canary-replicas"
        );
        assert_eq!(
            join_dir("./apps/backend/", "./patch.yaml"),
            "apps/backend/patch.yaml"
        );
        assert_eq!(join_dir("apps", "../../x"), "x");
    }
}
