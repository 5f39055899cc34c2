//! Git: a cached bare clone per remote, fetch, commits built in memory (no work tree), and
//! pushes that never force.
//!
//! A push is a plain fast-forward update of the branch from the head weir planned on; if
//! anyone else pushed in between, the remote refuses it and the caller re-plans on the new
//! head. Tokens never appear in logs or errors: URLs are [`SafeUrl`]s and messages from
//! libgit2 are passed through [`redact_url`].

use crate::secret::{redact_url, SafeUrl, Secret};
use git2::{
    Cred, CredentialType, ErrorCode, FetchOptions, ObjectType, Oid, PushOptions, RemoteCallbacks,
    Repository, Signature, Tree,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A Git failure, with what was tried.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The cache could not be created or opened.
    #[error("cannot open the git cache at {path}: {message}")]
    Cache { path: String, message: String },
    /// Fetching failed (network, auth, missing repository).
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    /// The branch does not exist on the remote.
    #[error("branch `{branch}` does not exist on {url}")]
    NoBranch { url: String, branch: String },
    /// Pushing failed for another reason than a concurrent update.
    #[error("cannot push to {url} (ref refs/heads/{branch}): {message}")]
    Push {
        url: String,
        branch: String,
        message: String,
    },
    /// Reading or writing objects failed.
    #[error("git: {0}")]
    Object(String),
}

impl GitError {
    /// Network and server trouble is worth a retry; a missing branch or bad cache is not.
    pub fn is_transient(&self) -> bool {
        matches!(self, GitError::Fetch { .. } | GitError::Push { .. })
    }
}

fn object_err(e: git2::Error) -> GitError {
    GitError::Object(redact_url(e.message()))
}

/// What happened to a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The branch now points at the new commit.
    Pushed,
    /// Someone else moved the branch first; nothing was overwritten.
    Rejected(String),
}

/// Where and as whom weir writes.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// The remote: a local path, file://, http(s):// or git://.
    pub url: SafeUrl,
    /// The branch weir reads and writes.
    pub branch: String,
    /// Folder of cached clones.
    pub cache_dir: PathBuf,
    /// Token for https remotes (sent as the password of basic auth).
    pub token: Option<Secret>,
    /// Author name and email.
    pub author: (String, String),
    /// Committer name and email.
    pub committer: (String, String),
}

/// Fetch and push, behind a trait so tests can put a concurrent writer between the two.
pub trait Transport: Send {
    /// Fetches the branch; returns its head.
    fn fetch(&mut self, repo: &Repository, settings: &GitSettings) -> Result<Oid, GitError>;
    /// Pushes `new` to the branch, which must still be at `expected_old` (fast-forward only).
    fn push(
        &mut self,
        repo: &Repository,
        settings: &GitSettings,
        expected_old: Oid,
        new: Oid,
    ) -> Result<PushOutcome, GitError>;
}

/// The real transport, through libgit2.
#[derive(Debug, Default)]
pub struct Git2Transport;

fn callbacks(settings: &GitSettings) -> RemoteCallbacks<'static> {
    let mut cb = RemoteCallbacks::new();
    let token = settings.token.clone();
    let mut attempts = 0u32;
    cb.credentials(move |_url, username, allowed| {
        attempts += 1;
        // libgit2 asks again after a refusal; one refused token will not pass the next time.
        if attempts > 1 {
            return Err(git2::Error::from_str(
                "the remote refused the credentials (tried WEIR_GIT_TOKEN once)",
            ));
        }
        match &token {
            Some(t) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext(username.unwrap_or("x-access-token"), t.expose())
            }
            _ => Err(git2::Error::from_str(
                "the remote asks for credentials; set WEIR_GIT_TOKEN",
            )),
        }
    });
    cb
}

impl Transport for Git2Transport {
    fn fetch(&mut self, repo: &Repository, settings: &GitSettings) -> Result<Oid, GitError> {
        let url = settings.url.redacted();
        let mut remote = repo
            .remote_anonymous(settings.url.expose())
            .map_err(object_err)?;
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks(settings));
        let refspec = format!(
            "+refs/heads/{b}:refs/remotes/origin/{b}",
            b = settings.branch
        );
        remote
            .fetch(&[refspec.as_str()], Some(&mut opts), None)
            .map_err(|e| GitError::Fetch {
                url: url.clone(),
                message: redact_url(e.message()),
            })?;
        let head = repo
            .refname_to_id(&format!("refs/remotes/origin/{}", settings.branch))
            .map_err(|_| GitError::NoBranch {
                url,
                branch: settings.branch.clone(),
            })?;
        Ok(head)
    }

    fn push(
        &mut self,
        repo: &Repository,
        settings: &GitSettings,
        expected_old: Oid,
        new: Oid,
    ) -> Result<PushOutcome, GitError> {
        let url = settings.url.redacted();
        let push_err = |message: String| GitError::Push {
            url: url.clone(),
            branch: settings.branch.clone(),
            message,
        };
        // The new commit must sit on the head we planned on: that is the expected old value.
        let parent = repo
            .find_commit(new)
            .and_then(|c| c.parent_id(0))
            .map_err(object_err)?;
        if parent != expected_old {
            return Err(push_err(format!(
                "commit {new} is not based on the expected head {expected_old}"
            )));
        }
        repo.reference("refs/weir/push", new, true, "weir push")
            .map_err(object_err)?;
        let mut remote = repo
            .remote_anonymous(settings.url.expose())
            .map_err(object_err)?;
        let mut cb = callbacks(settings);
        let refused = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
        let sink = refused.clone();
        cb.push_update_reference(move |_refname, status| {
            if let Some(msg) = status {
                *sink.lock().expect("not poisoned") = Some(msg.to_string());
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        // No leading '+': the remote only accepts a fast-forward from its current head.
        let refspec = format!("refs/weir/push:refs/heads/{}", settings.branch);
        match remote.push(&[refspec.as_str()], Some(&mut opts)) {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::NotFastForward => {
                return Ok(PushOutcome::Rejected(redact_url(e.message())))
            }
            Err(e) => {
                let message = redact_url(e.message());
                if looks_like_race(&message) {
                    return Ok(PushOutcome::Rejected(message));
                }
                return Err(push_err(message));
            }
        }
        if let Some(msg) = refused.lock().expect("not poisoned").take() {
            if looks_like_race(&msg) {
                return Ok(PushOutcome::Rejected(msg));
            }
            return Err(push_err(redact_url(&msg)));
        }
        repo.reference(
            &format!("refs/remotes/origin/{}", settings.branch),
            new,
            true,
            "weir push",
        )
        .map_err(object_err)?;
        Ok(PushOutcome::Pushed)
    }
}

fn looks_like_race(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("non-fast-forward")
        || m.contains("fast-forward")
        || m.contains("fetch first")
        || m.contains("failed to update ref")
        || m.contains("cannot lock ref")
        || m.contains("stale info")
}

/// The cached bare clone of one remote.
pub struct Cache {
    repo: Repository,
    settings: GitSettings,
    transport: Box<dyn Transport>,
}

impl Cache {
    /// Opens (or creates) the cache for `settings.url`, with the real transport.
    pub fn open(settings: GitSettings) -> Result<Cache, GitError> {
        Self::with_transport(settings, Box::new(Git2Transport))
    }

    /// Opens the cache with a given transport.
    pub fn with_transport(
        settings: GitSettings,
        transport: Box<dyn Transport>,
    ) -> Result<Cache, GitError> {
        let path = cache_path(&settings);
        let repo = match Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(_) => {
                // Missing or broken: start over, as cargo does with its git checkouts.
                if path.exists() {
                    let _ = std::fs::remove_dir_all(&path);
                }
                std::fs::create_dir_all(&path).map_err(|e| GitError::Cache {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                Repository::init_bare(&path).map_err(|e| GitError::Cache {
                    path: path.display().to_string(),
                    message: e.message().to_string(),
                })?
            }
        };
        Ok(Cache {
            repo,
            settings,
            transport,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &GitSettings {
        &self.settings
    }

    /// The cached repository, to read trees from.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// Fetches the branch and returns its head.
    pub fn fetch(&mut self) -> Result<Oid, GitError> {
        self.transport.fetch(&self.repo, &self.settings)
    }

    /// The tree of a commit.
    pub fn tree_of(&self, commit: Oid) -> Result<Tree<'_>, GitError> {
        self.repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(object_err)
    }

    /// Builds a commit on `parent` with `changes` (path -> new bytes, or `None` to delete),
    /// without a work tree. Returns `None` when the changes leave the tree as it was.
    pub fn commit(
        &self,
        parent: Oid,
        changes: &BTreeMap<String, Option<Vec<u8>>>,
        message: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Oid>, GitError> {
        let parent_commit = self.repo.find_commit(parent).map_err(object_err)?;
        let base = parent_commit.tree().map_err(object_err)?;
        let refs: BTreeMap<&str, Option<&[u8]>> = changes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let tree_id =
            write_tree(&self.repo, Some(&base), &refs)?.unwrap_or_else(|| empty_tree(&self.repo));
        if tree_id == base.id() {
            return Ok(None);
        }
        let tree = self.repo.find_tree(tree_id).map_err(object_err)?;
        let time = git2::Time::new(now.timestamp(), 0);
        let author = Signature::new(&self.settings.author.0, &self.settings.author.1, &time)
            .map_err(object_err)?;
        let committer = Signature::new(
            &self.settings.committer.0,
            &self.settings.committer.1,
            &time,
        )
        .map_err(object_err)?;
        let oid = self
            .repo
            .commit(None, &author, &committer, message, &tree, &[&parent_commit])
            .map_err(object_err)?;
        Ok(Some(oid))
    }

    /// Pushes `new` over `expected_old`.
    pub fn push(&mut self, expected_old: Oid, new: Oid) -> Result<PushOutcome, GitError> {
        self.transport
            .push(&self.repo, &self.settings, expected_old, new)
    }

    /// The unified diff between two commits, as `git diff` prints it.
    pub fn diff(&self, old: Oid, new: Oid) -> Result<String, GitError> {
        let a = self.tree_of(old)?;
        let b = self.tree_of(new)?;
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&a), Some(&b), None)
            .map_err(object_err)?;
        let mut out = String::new();
        diff.print(git2::DiffFormat::Patch, |_delta, _hunk, line| {
            let origin = line.origin();
            if matches!(origin, '+' | '-' | ' ') {
                out.push(origin);
            }
            out.push_str(&String::from_utf8_lossy(line.content()));
            true
        })
        .map_err(object_err)?;
        Ok(out)
    }
}

fn empty_tree(repo: &Repository) -> Oid {
    repo.treebuilder(None)
        .and_then(|b| b.write())
        .expect("the empty tree can always be written")
}

/// Writes `base` with `changes` applied, recursively; `None` when the result is empty.
fn write_tree(
    repo: &Repository,
    base: Option<&Tree>,
    changes: &BTreeMap<&str, Option<&[u8]>>,
) -> Result<Option<Oid>, GitError> {
    let mut builder = repo.treebuilder(base).map_err(object_err)?;
    let mut sub: BTreeMap<&str, BTreeMap<&str, Option<&[u8]>>> = BTreeMap::new();
    for (path, content) in changes {
        match path.split_once('/') {
            None => match content {
                Some(bytes) => {
                    let blob = repo.blob(bytes).map_err(object_err)?;
                    builder.insert(path, blob, 0o100644).map_err(object_err)?;
                }
                None => {
                    if builder.get(path).map_err(object_err)?.is_some() {
                        builder.remove(path).map_err(object_err)?;
                    }
                }
            },
            Some((dir, rest)) => {
                sub.entry(dir).or_default().insert(rest, *content);
            }
        }
    }
    for (dir, changes) in sub {
        let existing = builder
            .get(dir)
            .map_err(object_err)?
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .map(|e| e.id());
        let existing = match existing {
            Some(id) => Some(repo.find_tree(id).map_err(object_err)?),
            None => None,
        };
        match write_tree(repo, existing.as_ref(), &changes)? {
            Some(id) => {
                builder.insert(dir, id, 0o040000).map_err(object_err)?;
            }
            None => {
                if builder.get(dir).map_err(object_err)?.is_some() {
                    builder.remove(dir).map_err(object_err)?;
                }
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    builder.write().map(Some).map_err(object_err)
}

/// Where the cache of a remote lives: one folder per URL (credentials excluded from the key).
pub fn cache_path(settings: &GitSettings) -> PathBuf {
    let key = Oid::hash_object(ObjectType::Blob, settings.url.redacted().as_bytes())
        .map(|o| o.to_string())
        .unwrap_or_default();
    let tail: String = settings
        .url
        .redacted()
        .rsplit(['/', '\\', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    settings.cache_dir.join(format!("{tail}-{}", &key[..12]))
}

/// The default cache folder: `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Path::new(&dir).join("weir");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return Path::new(&home).join(".cache").join("weir");
    }
    std::env::temp_dir().join("weir-cache")
}
