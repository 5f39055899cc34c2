//! The config repo adapter, on git2: a cached bare clone per remote, fetch, reading trees,
//! commits built in memory (no work tree) and pushes with a lease.
//!
//! A push moves the branch only from exactly the head weir planned on. libgit2 tells, before
//! it sends anything, what the remote's branch points at (push negotiation); if that is not
//! the planned head (someone pushed, or reset the branch backwards to drop a commit), weir
//! sends nothing and re-plans on the new head, so nothing anyone dropped comes back. Over the
//! network the update names that old value, so a writer in between makes the server refuse
//! it. A remote on this machine (a path or file://) has no server: libgit2's local transport
//! would move the ref whatever it points at, so weir copies the objects itself and moves the
//! ref with a compare-and-swap under the ref's lock, the way `git receive-pack` does. Nothing
//! is ever forced, on any transport.
//!
//! Credentials never appear in logs or errors: URLs are [`SafeUrl`]s and libgit2's messages
//! pass through [`redact_url`]. A refused credential is a permanent error with a hint, never a
//! race to retry.
//!
//! The cache heals itself. When an operation on it fails, weir looks at the cache: a stale
//! lock file left by a process that stopped mid-write, an object that cannot be read (damaged
//! pack bytes, a damaged pack index, a missing object), a tracking ref that points at nothing.
//! What it finds is logged as what it is, and the cache is cloned again; so is a cache that
//! fails the same way twice in a row for a reason that is not the network's. A cache is never
//! cloned twice in a row for the same reason: then the fault is not in the cache.

use crate::adapters::ssh::{HostKeyCheck, SshSettings};
use crate::core::secret::{redact_url, SafeUrl, Secret};
use crate::ports::ConfigRepo;
use crate::repo::change::{ChangeSet, PushOutcome, RepoError};
use crate::repo::objects::{Dir, Node, ObjectId};
use crate::repo::source::{Entry, SourceError, SourceTree};
use chrono::{DateTime, Utc};
use git2::{
    Cred, CredentialType, Direction, ErrorClass, ErrorCode, FetchOptions, ObjectType, Oid,
    PushOptions, RemoteCallbacks, Repository, Signature, Tree,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Key and trusted host keys for SSH remotes (`ssh://` and `user@host:path`).
    pub ssh: Option<SshSettings>,
    /// Author name and email.
    pub author: (String, String),
    /// Committer name and email.
    pub committer: (String, String),
    /// Longest wait for a remote to connect or to answer, per network operation.
    pub timeout: std::time::Duration,
}

/// libgit2 has no timeout of its own: a remote that accepts and never answers would hold a
/// fetch or a push forever. These set how long its sockets wait to connect and to read or
/// write. They are process-wide, so the last repository opened sets them.
#[allow(unsafe_code)]
fn set_socket_timeouts(timeout: std::time::Duration) {
    let ms = i32::try_from(timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    // SAFETY: these write two integers in libgit2's global options, read by libgit2 when it
    // opens a socket; git2 marks them unsafe because they are process-wide, not because of
    // memory safety.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
    }
}

pub(crate) fn oid(id: ObjectId) -> Oid {
    Oid::from_bytes(&id.0).expect("20 bytes are an oid")
}

pub(crate) fn id(oid: Oid) -> ObjectId {
    let mut out = [0u8; 20];
    out.copy_from_slice(oid.as_bytes());
    ObjectId(out)
}

fn local_err(e: git2::Error) -> RepoError {
    RepoError::local(format!("git: {}", redact_url(e.message())))
}

/// The file in the local copy that keeps the engine's memo of the last tick.
const MEMO_FILE: &str = "weir-memo.json";

/// The cached bare clone of one remote.
pub struct Git2Repo {
    repo: Repository,
    settings: GitSettings,
    /// Why the cache was last cloned again, until an operation succeeds.
    last_heal: Option<String>,
    /// The message of the last failed fetch, to see the same failure twice.
    last_failure: Option<String>,
    /// A tree handed out since the last fetch named an object that could not be read.
    read_failed: AtomicBool,
    scrubber: crate::core::secret::Scrubber,
    #[cfg(feature = "test-support")]
    during_push: DuringPush,
}

/// A test's writer, run inside a push after the lease was checked and before the remote's
/// ref moves: the narrowest window a concurrent writer can hit.
#[cfg(feature = "test-support")]
type DuringPush = Arc<Mutex<Option<Box<dyn FnMut() + Send>>>>;

/// The repository of a remote on this machine: a path or a file:// URL (libgit2's local
/// transport); `None` for a network remote.
fn local_remote(url: &str) -> Option<PathBuf> {
    if url.starts_with("file://") {
        return url::Url::parse(url).ok()?.to_file_path().ok();
    }
    (!url.contains("://") && ssh_host(url).is_none()).then(|| PathBuf::from(url))
}

/// The host and port of an SSH remote: `ssh://[user@]host[:port]/path`, or the scp-like
/// `[user@]host:path` (a colon before any slash); `None` for any other remote.
pub fn ssh_host(url: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = url.strip_prefix("ssh://") {
        let parsed = url::Url::parse(&format!("ssh://{rest}")).ok()?;
        let host = parsed
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        return Some((host.to_string(), parsed.port()));
    }
    if url.contains("://") {
        return None;
    }
    let (before, _) = url.split_once(':')?;
    if before.contains('/') || before.is_empty() {
        return None;
    }
    let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
    Some((host.to_string(), None))
}

/// Where a failed fetch went wrong, as far as libgit2's error tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The network, the server, the credentials or the remote branch.
    Remote,
    /// The cache: its objects, refs or files.
    Cache,
    /// Could be either (a file that could not be written, a lock).
    Unknown,
}

fn cause_of(e: &git2::Error, auth: &Auth) -> Cause {
    if auth.refused.load(Ordering::SeqCst)
        || auth.missing.load(Ordering::SeqCst)
        || e.code() == ErrorCode::Auth
    {
        return Cause::Remote;
    }
    match e.class() {
        ErrorClass::Net | ErrorClass::Http | ErrorClass::Ssh | ErrorClass::Ssl => Cause::Remote,
        ErrorClass::Odb
        | ErrorClass::Object
        | ErrorClass::Reference
        | ErrorClass::Repository
        | ErrorClass::Zlib
        | ErrorClass::Index
        | ErrorClass::Tree => Cause::Cache,
        _ => Cause::Unknown,
    }
}

/// How old a lock file in the cache must be to count as left by a process that stopped: weir
/// holds its cache's locks for the length of one write.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(60);

/// Lock files (`*.lock`) under `dir`, outside the object store, older than [`STALE_LOCK`].
fn stale_locks(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if entry.file_name() != "objects" {
                stale_locks(&path, root, out);
            }
        } else if path.extension().is_some_and(|e| e == "lock")
            && meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= STALE_LOCK)
        {
            let shown = path.strip_prefix(root).unwrap_or(&path);
            out.push(shown.display().to_string());
        }
    }
}

/// What the credential callback saw.
#[derive(Default)]
struct Auth {
    /// The remote asked for credentials and weir had none.
    missing: AtomicBool,
    /// The remote refused the credentials weir sent.
    refused: AtomicBool,
    /// Why the SSH server's host key was refused.
    host_key: Mutex<Option<String>>,
}

fn callbacks(settings: &GitSettings, auth: Arc<Auth>) -> RemoteCallbacks<'static> {
    let mut cb = RemoteCallbacks::new();
    let token = settings.token.clone();
    let ssh = settings.ssh.clone();
    let server = ssh_host(settings.url.expose());
    if let (Some((host, port)), Some(ssh)) = (server.clone(), ssh.clone()) {
        let auth = auth.clone();
        // Mandatory: a server whose key is not in known_hosts gets no credential.
        cb.certificate_check(move |cert, _| {
            let Some(key) = cert.as_hostkey().and_then(|k| k.hostkey()) else {
                return Ok(git2::CertificateCheckStatus::CertificatePassthrough);
            };
            let why = match ssh.known_hosts.check(&host, port, key) {
                HostKeyCheck::Trusted => return Ok(git2::CertificateCheckStatus::CertificateOk),
                HostKeyCheck::Unknown => format!(
                    "the SSH host key of {host} is not in known_hosts; add the server's key (`ssh-keyscan{} {host}`) to the known_hosts of the Git Secret",
                    port.map(|p| format!(" -p {p}")).unwrap_or_default()
                ),
                HostKeyCheck::Mismatch => format!(
                    "the SSH host key of {host} does not match known_hosts (which lists {} for it): the server's key changed, or something is in between; weir refused to connect",
                    ssh.known_hosts.types_for(&host, port).join(", ")
                ),
                HostKeyCheck::Revoked => format!(
                    "the SSH host key of {host} is marked @revoked in known_hosts; weir refused to connect"
                ),
            };
            *auth.host_key.lock().expect("not poisoned") = Some(why.clone());
            Err(git2::Error::from_str(&why))
        });
    }
    let mut attempts = 0u32;
    cb.credentials(move |_url, username, allowed| {
        attempts += 1;
        // libgit2 asks again after a refusal: one refused token will not pass the next time.
        if attempts > 1 {
            auth.refused.store(true, Ordering::SeqCst);
            return Err(git2::Error::from_str("the remote refused the credentials"));
        }
        match (&token, &ssh) {
            (_, Some(ssh)) if allowed.contains(CredentialType::SSH_KEY) => {
                Cred::ssh_key_from_memory(
                    username.unwrap_or("git"),
                    None,
                    ssh.identity.expose(),
                    ssh.passphrase.as_ref().map(|p| p.expose()),
                )
            }
            (Some(t), _) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext(username.unwrap_or("x-access-token"), t.expose())
            }
            _ => {
                auth.missing.store(true, Ordering::SeqCst);
                Err(git2::Error::from_str("the remote asks for credentials"))
            }
        }
    });
    cb
}

impl Git2Repo {
    /// Opens (or creates) the cache for `settings.url`.
    pub fn open(settings: GitSettings) -> Result<Git2Repo, RepoError> {
        if ssh_host(settings.url.expose()).is_some() && settings.ssh.is_none() {
            return Err(RepoError::permanent(format!(
                "{} is an SSH remote: weir needs its key and the server's host key. Hint: set --git-ssh-dir (WEIR_GIT_SSH_DIR) to a folder laid out as Flux's Git Secret (identity, known_hosts), or --git-ssh-key and --git-known-hosts",
                settings.url.redacted()
            )));
        }
        set_socket_timeouts(settings.timeout);
        let path = cache_path(&settings);
        let repo = match Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(_) => init_cache(&path)?,
        };
        no_delta_search(&repo)?;
        let scrubber = crate::core::secret::Scrubber::new(
            settings.token.iter().map(|t| t.expose().to_string()),
        );
        Ok(Git2Repo {
            repo,
            settings,
            last_heal: None,
            last_failure: None,
            read_failed: AtomicBool::new(false),
            scrubber,
            #[cfg(feature = "test-support")]
            during_push: DuringPush::default(),
        })
    }

    /// Runs `write` inside each later push, after the lease was checked and before the
    /// remote's ref moves, as a concurrent writer would (tests of the race).
    #[cfg(feature = "test-support")]
    pub fn during_push(&mut self, write: Box<dyn FnMut() + Send>) {
        *self.during_push.lock().expect("not poisoned") = Some(write);
    }

    /// Calls the test's writer, if any.
    fn in_push_window(&self) {
        #[cfg(feature = "test-support")]
        if let Some(write) = self.during_push.lock().expect("not poisoned").as_mut() {
            write();
        }
    }

    /// What is wrong with the cache, if anything: looked for after an operation failed.
    /// Reads every object, so it is only called on a failure.
    fn inspect(&self) -> Option<String> {
        self.stale_lock().or_else(|| self.damaged_objects())
    }

    /// A lock file left by a process that stopped while writing: cheap to look for.
    fn stale_lock(&self) -> Option<String> {
        let path = cache_path(&self.settings);
        let mut locks = Vec::new();
        stale_locks(&path, &path, &mut locks);
        locks.first().map(|lock| {
            format!("a stale lock file {lock}, left by a process that stopped while writing")
        })
    }

    /// An object that cannot be read, or a tracking ref that points at nothing. Reads every
    /// object: only when the failure may be the cache's.
    fn damaged_objects(&self) -> Option<String> {
        let odb = match self.repo.odb() {
            Ok(odb) => odb,
            Err(e) => {
                return Some(format!(
                    "its object store cannot be opened: {}",
                    e.message()
                ))
            }
        };
        let mut unreadable = None;
        let listed = odb.foreach(|object| match odb.read(*object) {
            Ok(_) => true,
            Err(e) => {
                unreadable = Some(format!("object {object} cannot be read: {}", e.message()));
                false
            }
        });
        if let Some(why) = unreadable {
            return Some(why);
        }
        if let Err(e) = listed {
            return Some(format!(
                "its object store cannot be listed: {}",
                e.message()
            ));
        }
        let tracking = format!("refs/remotes/origin/{}", self.settings.branch);
        if let Ok(target) = self.repo.refname_to_id(&tracking) {
            if let Err(e) = self.repo.find_commit(target).and_then(|c| c.tree()) {
                return Some(format!(
                    "{tracking} points at a commit that cannot be read: {}",
                    e.message()
                ));
            }
        }
        None
    }

    /// Clones the cache again because of `why`, unless the last clone was for the same reason
    /// with no success since (then the fault is not in the cache). True when it did.
    fn heal(&mut self, why: &str) -> Result<bool, RepoError> {
        if self.last_heal.as_deref() == Some(why) {
            return Ok(false);
        }
        let path = cache_path(&self.settings);
        tracing::warn!(cache = %path.display(), "the git cache is damaged: {why}; cloning it again");
        self.last_heal = Some(why.to_string());
        self.repo = init_cache(&path)?;
        no_delta_search(&self.repo)?;
        Ok(true)
    }

    /// After a push failed on this side: when the cache is damaged, clone it again and say
    /// so, so that the engine plans again on a fresh fetch; `None` when the cache is sound.
    fn repair_after_push(&mut self) -> Result<Option<RepoError>, RepoError> {
        let Some(why) = self.inspect() else {
            return Ok(None);
        };
        if !self.heal(&why)? {
            return Ok(None);
        }
        Ok(Some(RepoError::repaired(format!(
            "the git cache at {} was damaged ({why}) and was cloned again; nothing was pushed",
            cache_path(&self.settings).display()
        ))))
    }

    /// The settings.
    pub fn settings(&self) -> &GitSettings {
        &self.settings
    }

    /// The cached repository.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    fn url(&self) -> String {
        self.settings.url.redacted()
    }

    /// Text from libgit2 or the remote, as weir shows it: credentials scrubbed, one bounded line.
    fn shown(&self, text: &str) -> String {
        crate::core::text::clean(&self.scrubber.scrub(text), 300)
    }

    /// Turns a transport error into a message a user can act on.
    fn classify(&self, what: &str, e: &git2::Error, auth: &Auth) -> RepoError {
        let url = self.url();
        let message = self.shown(e.message());
        if let Some(why) = auth.host_key.lock().expect("not poisoned").take() {
            return RepoError::permanent(format!("cannot {what} {url}: {why}"));
        }
        let ssh = ssh_host(self.settings.url.expose()).is_some();
        if ssh && (auth.refused.load(Ordering::SeqCst) || e.code() == ErrorCode::Auth) {
            return RepoError::permanent(format!(
                "cannot {what} {url}: the server refused the SSH key. Hint: check that the `identity` of --git-ssh-dir (or --git-ssh-key) is a deploy key of this repository with write access"
            ));
        }
        if auth.refused.load(Ordering::SeqCst) || e.code() == ErrorCode::Auth {
            return RepoError::permanent(format!(
                "cannot {what} {url}: the remote refused the credentials. Hint: check that WEIR_GIT_TOKEN (--git-token) is set, has not expired, and may read and push to this repository"
            ));
        }
        if auth.missing.load(Ordering::SeqCst) {
            return RepoError::permanent(format!(
                "cannot {what} {url}: the remote asks for credentials. Hint: set WEIR_GIT_TOKEN (--git-token) to a token that may read and push to this repository"
            ));
        }
        if e.class() == ErrorClass::Http && (message.contains("403") || message.contains("401")) {
            return RepoError::permanent(format!(
                "cannot {what} {url}: permission denied ({message}). Hint: the token needs read and write access to the repository"
            ));
        }
        RepoError::transient(format!("cannot {what} {url}: {message}"))
    }

    fn fetch_once(&mut self) -> Result<ObjectId, (RepoError, Cause)> {
        let auth = Arc::new(Auth::default());
        let mut remote = self
            .repo
            .remote_anonymous(self.settings.url.expose())
            .map_err(|e| (local_err(e), Cause::Cache))?;
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks(&self.settings, auth.clone()));
        let refspec = format!(
            "+refs/heads/{b}:refs/remotes/origin/{b}",
            b = self.settings.branch
        );
        if let Err(e) = remote.fetch(&[refspec.as_str()], Some(&mut opts), None) {
            let cause = cause_of(&e, &auth);
            return Err((self.classify("fetch", &e, &auth), cause));
        }
        let head = self
            .repo
            .refname_to_id(&format!("refs/remotes/origin/{}", self.settings.branch))
            .map_err(|_| {
                (
                    RepoError::permanent(format!(
                        "branch `{}` does not exist on {}",
                        self.settings.branch,
                        self.url()
                    )),
                    Cause::Remote,
                )
            })?;
        // A cache whose objects are damaged fails here rather than mid-tick.
        self.repo
            .find_commit(head)
            .and_then(|c| c.tree())
            .map_err(|e| (local_err(e), Cause::Cache))?;
        Ok(id(head))
    }

    /// What the remote's branch points at now (`None` when it does not exist).
    /// What the remote's `branch` points at now.
    fn remote_ref(&self, branch: &str) -> Result<Option<ObjectId>, RepoError> {
        let want = format!("refs/heads/{branch}");
        let heads = self.remote_heads()?;
        Ok(heads.into_iter().find(|h| h.0 == want).map(|h| h.1))
    }

    /// Fetches one refspec from the remote (another branch than the config branch).
    fn fetch_refspec(&self, refspec: &str) -> Result<(), RepoError> {
        let auth = Arc::new(Auth::default());
        let mut remote = self
            .repo
            .remote_anonymous(self.settings.url.expose())
            .map_err(local_err)?;
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks(&self.settings, auth.clone()));
        remote
            .fetch(&[refspec], Some(&mut opts), None)
            .map_err(|e| self.classify("fetch", &e, &auth))
    }

    /// Every ref the remote advertises, with its commit: one connection.
    fn remote_heads(&self) -> Result<Vec<(String, ObjectId)>, RepoError> {
        let auth = Arc::new(Auth::default());
        let mut remote = self
            .repo
            .remote_anonymous(self.settings.url.expose())
            .map_err(local_err)?;
        let conn = remote
            .connect_auth(
                Direction::Push,
                Some(callbacks(&self.settings, auth.clone())),
                None,
            )
            .map_err(|e| self.classify("read", &e, &auth))?;
        let heads = conn.list().map_err(local_err)?;
        Ok(heads
            .iter()
            .map(|h| (h.name().to_string(), id(h.oid())))
            .collect())
    }
}

/// Writes a folder's objects (carried ones are only referenced), noting each written id.
fn write_dir(repo: &Repository, dir: &Dir, written: &mut Vec<Oid>) -> Result<Oid, RepoError> {
    let mut builder = repo.treebuilder(None).map_err(local_err)?;
    for (name, node) in &dir.entries {
        let (oid, mode) = match node {
            Node::File(bytes) => {
                let blob = repo.blob(bytes).map_err(local_err)?;
                written.push(blob);
                (blob, 0o100644)
            }
            Node::Dir(d) => (write_dir(repo, d, written)?, 0o040000),
            Node::Carried { id, is_dir } => (oid(*id), if *is_dir { 0o040000 } else { 0o100644 }),
        };
        builder.insert(name, oid, mode).map_err(|e| {
            RepoError::local(format!(
                "git: cannot write {name}: {}",
                redact_url(e.message())
            ))
        })?;
    }
    let tree = builder.write().map_err(local_err)?;
    written.push(tree);
    Ok(tree)
}

fn init_cache(path: &Path) -> Result<Repository, RepoError> {
    // Missing or broken: start over, as cargo does with its git checkouts.
    if path.exists() {
        let _ = std::fs::remove_dir_all(path);
    }
    std::fs::create_dir_all(path).map_err(|e| {
        RepoError::permanent(format!(
            "cannot create the git cache at {}: {e}",
            path.display()
        ))
    })?;
    let repo = Repository::init_bare(path).map_err(|e| {
        RepoError::permanent(format!(
            "cannot create the git cache at {}: {}",
            path.display(),
            e.message()
        ))
    })?;
    Ok(repo)
}

/// weir's objects are small YAML files, many alike. A full delta search between them (a window
/// of ten) dominated a step of thousands of apps; with the search window held to almost no
/// memory, a step of 10,000 apps packs in two thirds of the time, measured with the tick
/// bench. Only weir's private cache is configured.
fn no_delta_search(repo: &Repository) -> Result<(), RepoError> {
    repo.config()
        .and_then(|mut c| c.set_i64("pack.windowMemory", 1))
        .map_err(local_err)
}

impl ConfigRepo for Git2Repo {
    fn describe(&self) -> String {
        format!("{} ({})", self.url(), self.settings.branch)
    }

    fn fetch(&mut self) -> Result<ObjectId, RepoError> {
        self.read_failed.store(false, Ordering::SeqCst);
        let e = match self.fetch_once() {
            Ok(head) => {
                self.last_failure = None;
                self.last_heal = None;
                return Ok(head);
            }
            Err(failed) => failed,
        };
        let (e, cause) = e;
        let twice = self.last_failure.as_deref() == Some(e.message.as_str());
        self.last_failure = Some(e.message.clone());
        let why = match cause {
            // The network's or the server's: reading every object would only slow an
            // outage down; a stale lock can still be in the way of the next fetch.
            Cause::Remote => self.stale_lock(),
            Cause::Cache => Some(self.inspect().unwrap_or_else(|| e.message.clone())),
            Cause::Unknown => self
                .inspect()
                .or_else(|| twice.then(|| format!("the same failure twice: {}", e.message))),
        };
        match why {
            Some(why) if self.heal(&why)? => self.fetch_once().map_err(|(e, _)| e).inspect(|_| {
                self.last_failure = None;
            }),
            _ => Err(e),
        }
    }

    fn damaged(&self) -> bool {
        self.read_failed.load(Ordering::SeqCst)
    }

    fn start_over(&mut self) -> Result<bool, RepoError> {
        self.read_failed.store(false, Ordering::SeqCst);
        let why = self
            .inspect()
            .unwrap_or_else(|| "a tree of the fetched commit could not be read".to_string());
        self.heal(&why)
    }

    fn read_memo(&self) -> Option<Vec<u8>> {
        std::fs::read(self.repo.path().join(MEMO_FILE)).ok()
    }

    fn write_memo(&self, memo: &[u8]) {
        let path = self.repo.path().join(MEMO_FILE);
        let part = path.with_extension("part");
        let written = std::fs::write(&part, memo).and_then(|_| std::fs::rename(&part, &path));
        if let Err(e) = written {
            tracing::debug!("the memo of the last tick could not be kept: {e}");
        }
    }

    fn tree(&self, commit: ObjectId) -> Result<Box<dyn SourceTree + '_>, RepoError> {
        let tree = self
            .repo
            .find_commit(oid(commit))
            .and_then(|c| c.tree())
            .map_err(local_err)?;
        let mut tree = GitTree::new(&self.repo, tree);
        tree.damaged = Some(&self.read_failed);
        Ok(Box::new(tree))
    }

    fn first_parents(&self, from: ObjectId, limit: usize) -> Result<Vec<ObjectId>, RepoError> {
        let mut out = Vec::new();
        let mut next = Some(oid(from));
        while let Some(c) = next {
            if out.len() >= limit {
                break;
            }
            out.push(id(c));
            next = self
                .repo
                .find_commit(c)
                .ok()
                .and_then(|c| c.parent_id(0).ok());
        }
        Ok(out)
    }

    fn commit(
        &self,
        parent: ObjectId,
        changes: &[ChangeSet],
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ObjectId>, RepoError> {
        self.commit_onto(parent, &[parent], changes, message, at)
    }

    fn commit_onto(
        &self,
        base: ObjectId,
        parents: &[ObjectId],
        changes: &[ChangeSet],
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<ObjectId>, RepoError> {
        // New objects are written to memory, then to the repository as one pack: a step of
        // thousands of apps writes one file, not one loose object per file.
        let repo = Repository::open_bare(self.repo.path()).map_err(local_err)?;
        let odb = repo.odb().map_err(local_err)?;
        let mempack = odb.add_new_mempack_backend(1000).map_err(local_err)?;
        let mut written = Vec::new();
        let base = repo
            .find_commit(oid(base))
            .and_then(|c| c.tree())
            .map_err(local_err)?;
        let parents = parents
            .iter()
            .map(|p| repo.find_commit(oid(*p)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(local_err)?;
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        let mut updates: BTreeMap<String, Option<(Oid, i32)>> = BTreeMap::new();
        for c in changes {
            let value = match &c.tree {
                Some(dir) => Some((write_dir(&repo, dir, &mut written)?, 0o040000)),
                None => None,
            };
            updates.insert(c.dir.clone(), value);
        }
        let refs: Updates = updates.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let tree_id = update_tree(&repo, Some(&base), &refs, &mut written)?
            .unwrap_or_else(|| empty_tree(&repo));
        if tree_id == base.id() {
            return Ok(None);
        }
        let tree = repo.find_tree(tree_id).map_err(local_err)?;
        let time = git2::Time::new(at.timestamp(), 0);
        let s = &self.settings;
        let author = Signature::new(&s.author.0, &s.author.1, &time).map_err(local_err)?;
        let committer = Signature::new(&s.committer.0, &s.committer.1, &time).map_err(local_err)?;
        let commit = repo
            .commit(None, &author, &committer, message, &tree, &parents)
            .map_err(local_err)?;
        written.push(commit);
        // The new objects, and nothing else, go into the pack (objects the repository had
        // already were not written again, and are at most repeated in it).
        written.sort();
        written.dedup();
        let mut builder = repo.packbuilder().map_err(local_err)?;
        for o in written {
            builder.insert_object(o, None).map_err(local_err)?;
        }
        let mut pack = git2::Buf::new();
        builder.write_buf(&mut pack).map_err(local_err)?;
        let mut writer = odb.packwriter().map_err(local_err)?;
        std::io::Write::write_all(&mut writer, &pack)
            .map_err(|e| RepoError::local(format!("git: cannot write a pack: {e}")))?;
        writer.commit().map_err(local_err)?;
        mempack.reset().map_err(local_err)?;
        Ok(Some(id(commit)))
    }

    fn diff(&self, old: ObjectId, new: ObjectId) -> Result<String, RepoError> {
        let tree_of = |c: ObjectId| {
            self.repo
                .find_commit(oid(c))
                .and_then(|c| c.tree())
                .map_err(local_err)
        };
        let (a, b) = (tree_of(old)?, tree_of(new)?);
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&a), Some(&b), None)
            .map_err(local_err)?;
        let mut out = String::new();
        diff.print(git2::DiffFormat::Patch, |_delta, _hunk, line| {
            let origin = line.origin();
            if matches!(origin, '+' | '-' | ' ') {
                out.push(origin);
            }
            out.push_str(&String::from_utf8_lossy(line.content()));
            true
        })
        .map_err(local_err)?;
        Ok(out)
    }

    fn push(&mut self, expected: ObjectId, new: ObjectId) -> Result<PushOutcome, RepoError> {
        // The new commit must sit on the head we planned on.
        let parent = self
            .repo
            .find_commit(oid(new))
            .and_then(|c| c.parent_id(0))
            .map_err(local_err)?;
        if id(parent) != expected {
            return Err(RepoError::permanent(format!(
                "commit {new} is not based on the planned head {expected}"
            )));
        }
        let branch = self.settings.branch.clone();
        self.push_ref(&branch, Some(expected), new)
    }

    fn branch_tip(&mut self, branch: &str) -> Result<Option<ObjectId>, RepoError> {
        let tracking = format!("refs/remotes/origin/{branch}");
        let Some(tip) = self.remote_ref(branch)? else {
            if let Ok(mut r) = self.repo.find_reference(&tracking) {
                r.delete().map_err(local_err)?;
            }
            return Ok(None);
        };
        if self.repo.find_commit(oid(tip)).is_err() {
            self.fetch_refspec(&format!("+refs/heads/{branch}:{tracking}"))?;
        }
        Ok(Some(tip))
    }

    fn changes_only(&self, commit: ObjectId, dir: &str, head: ObjectId) -> Result<bool, RepoError> {
        let commit = self.repo.find_commit(oid(commit)).map_err(local_err)?;
        let Ok(parent) = commit.parent(0) else {
            return Ok(false);
        };
        let on_branch = parent.id() == oid(head)
            || self
                .repo
                .graph_descendant_of(oid(head), parent.id())
                .map_err(local_err)?;
        if !on_branch {
            return Ok(false);
        }
        let (old, new) = (
            parent.tree().map_err(local_err)?,
            commit.tree().map_err(local_err)?,
        );
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(local_err)?;
        let inside = |path: Option<&std::path::Path>| {
            path.and_then(|p| p.to_str())
                .and_then(|p| p.strip_prefix(dir))
                .is_some_and(|rest| rest.starts_with('/'))
        };
        Ok(diff
            .deltas()
            .all(|d| inside(d.old_file().path()) && inside(d.new_file().path())))
    }

    fn branches(&mut self, prefix: &str) -> Result<Vec<(String, ObjectId)>, RepoError> {
        let found: Vec<(String, ObjectId)> = self
            .remote_heads()?
            .into_iter()
            .filter_map(|(name, tip)| {
                let branch = name.strip_prefix("refs/heads/")?;
                branch
                    .starts_with(prefix)
                    .then(|| (branch.to_string(), tip))
            })
            .collect();
        if found
            .iter()
            .any(|(_, tip)| self.repo.find_commit(oid(*tip)).is_err())
        {
            self.fetch_refspec(&format!(
                "+refs/heads/{prefix}*:refs/remotes/origin/{prefix}*"
            ))?;
        }
        Ok(found)
    }

    fn push_branch(
        &mut self,
        branch: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<PushOutcome, RepoError> {
        self.push_ref(branch, expected, new)
    }
}

impl Git2Repo {
    /// Moves `branch` of the remote from exactly `expected` (`None`: absent) to `new`, with
    /// the lease checked in push negotiation; never forces.
    fn push_ref(
        &mut self,
        branch: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<PushOutcome, RepoError> {
        let pushed = match local_remote(self.settings.url.expose()) {
            Some(path) => self.push_local(&path, branch, expected, new),
            None => self.push_network(branch, expected, new),
        };
        // A push that fails on this side (damaged pack bytes) must not read as a refusal.
        let outcome = match pushed {
            Ok(outcome) => outcome,
            Err(e) => return Err(self.repair_after_push()?.unwrap_or(e)),
        };
        if outcome == PushOutcome::Pushed {
            self.last_heal = None;
            self.repo
                .reference(
                    &format!("refs/remotes/origin/{branch}"),
                    oid(new),
                    true,
                    "weir push",
                )
                .map_err(local_err)?;
        }
        Ok(outcome)
    }

    /// [`Git2Repo::push_ref`] to a repository on this machine: the objects `new` needs are
    /// written into the remote's object database as one pack, then the ref is moved from
    /// `expected` with a compare-and-swap under its lock file (the lock `git` takes too), so a
    /// writer that got in first makes it fail instead of being overwritten.
    fn push_local(
        &self,
        path: &Path,
        branch: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<PushOutcome, RepoError> {
        let target_ref = format!("refs/heads/{branch}");
        let url = self.url();
        let remote = Repository::open(path).map_err(|e| {
            RepoError::transient(format!("cannot open {url}: {}", self.shown(e.message())))
        })?;
        let current = |remote: &Repository| remote.refname_to_id(&target_ref).ok().map(id);
        let now = current(&remote);
        if now != expected {
            return Ok(PushOutcome::Raced { remote: now });
        }
        // The objects the remote lacks: everything reachable from `new` but not from the
        // parents it already holds.
        let remote_odb = remote.odb().map_err(local_err)?;
        let mut walk = self.repo.revwalk().map_err(local_err)?;
        walk.push(oid(new)).map_err(local_err)?;
        let commit = self.repo.find_commit(oid(new)).map_err(local_err)?;
        for parent in commit.parent_ids() {
            if remote_odb.exists(parent) {
                walk.hide(parent).map_err(local_err)?;
            }
        }
        let mut pack = self.repo.packbuilder().map_err(local_err)?;
        pack.set_threads(1);
        pack.insert_walk(&mut walk).map_err(local_err)?;
        if pack.object_count() > 0 {
            let mut writer = remote_odb.packwriter().map_err(local_err)?;
            let mut failed = None;
            pack.foreach(
                |chunk| match std::io::Write::write_all(&mut writer, chunk) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                },
            )
            .map_err(|e| {
                let why = failed
                    .take()
                    .map_or_else(|| e.message().to_string(), |f| f.to_string());
                RepoError::transient(format!("cannot write objects into {url}: {why}"))
            })?;
            writer.commit().map_err(local_err)?;
        }
        self.in_push_window();
        let moved = match expected {
            Some(old) => {
                remote.reference_matching(&target_ref, oid(new), true, oid(old), "weir push")
            }
            None => remote.reference(&target_ref, oid(new), false, "weir push"),
        };
        match moved {
            Ok(_) => Ok(PushOutcome::Pushed),
            Err(e) => match current(&remote) {
                now if now != expected => Ok(PushOutcome::Raced { remote: now }),
                _ => Err(RepoError::transient(format!(
                    "cannot update {target_ref} on {url}: {}",
                    self.shown(e.message())
                ))),
            },
        }
    }

    /// [`Git2Repo::push_ref`] over the network: the lease is checked in push negotiation and
    /// the server moves the ref only from the old value the update names.
    fn push_network(
        &mut self,
        branch: &str,
        expected: Option<ObjectId>,
        new: ObjectId,
    ) -> Result<PushOutcome, RepoError> {
        let url = self.url();
        let target_ref = format!("refs/heads/{branch}");
        self.repo
            .reference("refs/weir/push", oid(new), true, "weir push")
            .map_err(local_err)?;
        let mut remote = self
            .repo
            .remote_anonymous(self.settings.url.expose())
            .map_err(local_err)?;
        let auth = Arc::new(Auth::default());
        let mut cb = callbacks(&self.settings, auth.clone());
        // The lease: what the remote advertises for the branch must be the planned head.
        let lease: Arc<Mutex<Option<Option<ObjectId>>>> = Arc::new(Mutex::new(None));
        let lease_sink = lease.clone();
        let want_ref = target_ref.clone();
        #[cfg(feature = "test-support")]
        let during_push = self.during_push.clone();
        cb.push_negotiation(move |updates| {
            for u in updates {
                if u.dst_refname() == Ok(want_ref.as_str()) {
                    let remote = (!u.src().is_zero()).then(|| id(u.src()));
                    if remote != expected {
                        *lease_sink.lock().expect("not poisoned") = Some(remote);
                        return Err(git2::Error::from_str(
                            "the branch is not at the planned head",
                        ));
                    }
                }
            }
            #[cfg(feature = "test-support")]
            if let Some(write) = during_push.lock().expect("not poisoned").as_mut() {
                write();
            }
            Ok(())
        });
        let refused = Arc::new(Mutex::new(None::<String>));
        let sink = refused.clone();
        cb.push_update_reference(move |_refname, status| {
            if let Some(msg) = status {
                *sink.lock().expect("not poisoned") = Some(msg.to_string());
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        opts.packbuilder_parallelism(0);
        // No leading '+': never forced.
        let refspec = format!("refs/weir/push:{target_ref}");
        let pushed = remote.push(&[refspec.as_str()], Some(&mut opts));
        drop(remote);
        if let Some(remote) = lease.lock().expect("not poisoned").take() {
            return Ok(PushOutcome::Raced { remote });
        }
        let rejection = match pushed {
            Ok(()) => refused.lock().expect("not poisoned").take(),
            Err(e) => {
                let classified = self.classify("push to", &e, &auth);
                if !classified.transient {
                    return Err(classified);
                }
                Some(redact_url(e.message()))
            }
        };
        if let Some(message) = rejection {
            // Decide from what the remote holds now, not from the wording of the refusal.
            return match self.remote_ref(branch)? {
                now if now == expected => Err(RepoError::permanent(format!(
                    "the remote refused the update of {target_ref} on {url}: {}. The branch did not move, so this is not a race; weir will not retry it until something changes (branch protection, a hook or permissions?)",
                    self.shown(&message)
                ))),
                remote => Ok(PushOutcome::Raced { remote }),
            };
        }
        Ok(PushOutcome::Pushed)
    }
}

fn empty_tree(repo: &Repository) -> Oid {
    repo.treebuilder(None)
        .and_then(|b| b.write())
        .expect("the empty tree can always be written")
}

/// Objects (with their modes) to put at paths, or `None` to remove what is there.
type Updates<'a> = BTreeMap<&'a str, Option<(Oid, i32)>>;

/// Writes `base` with objects put at paths (or removed, for `None`), recursively; `None`
/// when the result is empty.
fn update_tree(
    repo: &Repository,
    base: Option<&Tree>,
    changes: &Updates,
    written: &mut Vec<Oid>,
) -> Result<Option<Oid>, RepoError> {
    let mut builder = repo.treebuilder(base).map_err(local_err)?;
    let mut sub: BTreeMap<&str, Updates> = BTreeMap::new();
    for (path, content) in changes {
        match path.split_once('/') {
            None => match content {
                Some((oid, mode)) => {
                    builder.insert(path, *oid, *mode).map_err(local_err)?;
                }
                None => {
                    if builder.get(path).map_err(local_err)?.is_some() {
                        builder.remove(path).map_err(local_err)?;
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
            .map_err(local_err)?
            .filter(|e| e.kind() == Some(ObjectType::Tree))
            .map(|e| e.id());
        let existing = match existing {
            Some(id) => Some(repo.find_tree(id).map_err(local_err)?),
            None => None,
        };
        match update_tree(repo, existing.as_ref(), &changes, written)? {
            Some(id) => {
                builder.insert(dir, id, 0o040000).map_err(local_err)?;
            }
            None => {
                if builder.get(dir).map_err(local_err)?.is_some() {
                    builder.remove(dir).map_err(local_err)?;
                }
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    let tree = builder.write().map_err(local_err)?;
    written.push(tree);
    Ok(Some(tree))
}

/// Where the cache of a remote lives: one folder per URL (credentials excluded from the key).
pub fn cache_path(settings: &GitSettings) -> PathBuf {
    clone_folder(&settings.url, &settings.cache_dir)
}

/// The folder of `url`'s clone under the cache folder `cache_dir`.
pub fn clone_folder(url: &SafeUrl, cache_dir: &Path) -> PathBuf {
    let key = ObjectId::for_blob(url.redacted().as_bytes()).to_string();
    let tail: String = url
        .redacted()
        .rsplit(['/', '\\', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    cache_dir.join(format!("{tail}-{}", &key[..12]))
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

/// Runs `f` on the trees of two commits of the local repository at or above `dir` (a
/// checkout), named as `git rev-parse` names them.
pub fn with_commit_trees<T>(
    dir: &Path,
    base: &str,
    head: &str,
    f: impl FnOnce(&dyn SourceTree, &dyn SourceTree) -> T,
) -> Result<T, RepoError> {
    let repo = Repository::discover(dir).map_err(|e| {
        RepoError::permanent(format!(
            "{} is not in a Git repository: {}",
            dir.display(),
            e.message()
        ))
    })?;
    fn tree<'r>(repo: &'r Repository, dir: &Path, rev: &str) -> Result<Tree<'r>, RepoError> {
        repo.revparse_single(rev)
            .and_then(|o| o.peel_to_tree())
            .map_err(|e| {
                RepoError::permanent(format!(
                    "commit `{rev}` is not in {}: {} (a shallow checkout needs `fetch-depth: 0`)",
                    dir.display(),
                    e.message()
                ))
            })
    }
    let (b, h) = (tree(&repo, dir, base)?, tree(&repo, dir, head)?);
    let (b, h) = (GitTree::new(&repo, b), GitTree::new(&repo, h));
    let out = f(&b, &h);
    Ok(out)
}

/// A Git tree. Folder listings are remembered for the life of the value (one tick), because
/// libgit2 does not cache large tree objects: without this, every lookup under a folder of
/// thousands of apps would inflate and parse that folder again.
pub struct GitTree<'r> {
    repo: &'r Repository,
    root: Tree<'r>,
    listings: RefCell<HashMap<String, Rc<Vec<Entry>>>>,
    /// Set when an object the tree names cannot be read: the cache is damaged.
    damaged: Option<&'r AtomicBool>,
}

impl<'r> GitTree<'r> {
    /// Wraps the tree of a commit.
    pub fn new(repo: &'r Repository, root: Tree<'r>) -> GitTree<'r> {
        GitTree {
            repo,
            root,
            listings: RefCell::new(HashMap::new()),
            damaged: None,
        }
    }

    /// An object the tree names could not be read: a damaged or incomplete cache.
    fn unreadable(&self, path: &str, e: git2::Error) -> SourceError {
        if let Some(flag) = self.damaged {
            flag.store(true, Ordering::SeqCst);
        }
        SourceError::Read {
            path: path.to_string(),
            message: e.message().to_string(),
        }
    }

    fn listing(&self, dir: &str) -> Result<Rc<Vec<Entry>>, SourceError> {
        if let Some(hit) = self.listings.borrow().get(dir) {
            return Ok(hit.clone());
        }
        let tree = if dir.is_empty() {
            self.root.clone()
        } else {
            let entry = self
                .entry(dir)
                .filter(|e| e.is_dir)
                .ok_or_else(|| SourceError::Missing(dir.to_string()))?;
            self.repo
                .find_tree(oid(entry.id))
                .map_err(|e| self.unreadable(dir, e))?
        };
        let mut entries: Vec<Entry> = tree
            .iter()
            .filter_map(|e| {
                let is_dir = match e.kind() {
                    Some(ObjectType::Tree) => true,
                    Some(ObjectType::Blob) => false,
                    _ => return None,
                };
                Some(Entry {
                    name: e.name().ok()?.to_string(),
                    is_dir,
                    link: e.filemode() == 0o120000,
                    id: id(e.id()),
                })
            })
            .collect();
        // Git orders a folder "a/" after "a.b"; by name, lookups are a binary search.
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let entries = Rc::new(entries);
        self.listings
            .borrow_mut()
            .insert(dir.to_string(), entries.clone());
        Ok(entries)
    }

    fn entry(&self, path: &str) -> Option<Entry> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", path),
        };
        let listing = self.listing(dir).ok()?;
        listing
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| listing[i].clone())
    }
}

impl SourceTree for GitTree<'_> {
    fn list(&self, dir: &str) -> Result<Vec<Entry>, SourceError> {
        Ok(self.listing(dir)?.as_ref().clone())
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let entry = self
            .entry(path)
            .filter(|e| !e.is_dir)
            .ok_or_else(|| SourceError::Missing(path.to_string()))?;
        if entry.link {
            return Err(SourceError::link(path));
        }
        let read_err = |e: git2::Error| self.unreadable(path, e);
        // Not read_header: git2 0.21 unwraps the type it returns, which panics on a damaged
        // object; a damaged object must be a read error, so that the cache is cloned again.
        let blob = self.repo.find_blob(oid(entry.id)).map_err(read_err)?;
        let size = blob.content().len();
        if size as u64 > crate::repo::source::MAX_FILE {
            return Err(SourceError::too_large(path, size as u64));
        }
        Ok(blob.content().to_vec())
    }

    fn link(&self, path: &str) -> bool {
        self.entry(path).is_some_and(|e| e.link)
    }

    fn dir_id(&self, dir: &str) -> Option<ObjectId> {
        if dir.is_empty() {
            return Some(id(self.root.id()));
        }
        self.entry(dir).filter(|e| e.is_dir).map(|e| e.id)
    }

    fn id(&self, path: &str) -> Option<ObjectId> {
        if path.is_empty() {
            return Some(id(self.root.id()));
        }
        self.entry(path).map(|e| e.id)
    }
}

#[cfg(test)]
mod tests {
    use super::{local_remote, ssh_host};

    #[test]
    fn tells_local_ssh_and_network_remotes_apart() {
        type Case = (
            &'static str,
            Option<&'static str>,
            Option<(&'static str, Option<u16>)>,
        );
        let cases: [Case; 8] = [
            ("/srv/git/config.git", Some("/srv/git/config.git"), None),
            ("relative/config.git", Some("relative/config.git"), None),
            (
                "file:///srv/git/config.git",
                Some("/srv/git/config.git"),
                None,
            ),
            (
                "git@github.com:acme/config.git",
                None,
                Some(("github.com", None)),
            ),
            (
                "github.com:acme/config.git",
                None,
                Some(("github.com", None)),
            ),
            (
                "ssh://git@github.com/acme/config.git",
                None,
                Some(("github.com", None)),
            ),
            (
                "ssh://git@[::1]:2222/config.git",
                None,
                Some(("::1", Some(2222))),
            ),
            ("https://github.com/acme/config.git", None, None),
        ];
        for (url, local, ssh) in cases {
            assert_eq!(
                local_remote(url)
                    .map(|p| p.display().to_string())
                    .as_deref(),
                local,
                "{url}"
            );
            assert_eq!(
                ssh_host(url).as_ref().map(|(h, p)| (h.as_str(), *p)),
                ssh,
                "{url}"
            );
        }
    }

    use crate::repo::objects::{Dir, Node, ObjectId};

    /// The ids weir computes without Git are the ones libgit2 writes.
    #[test]
    fn folder_ids_follow_gits_order_and_match_libgit2() {
        let repo_dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(repo_dir.path()).unwrap();
        let mut d = Dir::default();
        d.file("a.yaml", "x\n");
        d.file("a/b.yaml", "y\n");
        d.file("a-b", "z\n");
        d.file("a0", "w\n");
        // The same folder written by libgit2.
        let blob = |t: &str| repo.blob(t.as_bytes()).unwrap();
        let mut inner = repo.treebuilder(None).unwrap();
        inner.insert("b.yaml", blob("y\n"), 0o100644).unwrap();
        let inner = inner.write().unwrap();
        let mut outer = repo.treebuilder(None).unwrap();
        outer.insert("a.yaml", blob("x\n"), 0o100644).unwrap();
        outer.insert("a", inner, 0o040000).unwrap();
        outer.insert("a-b", blob("z\n"), 0o100644).unwrap();
        outer.insert("a0", blob("w\n"), 0o100644).unwrap();
        let outer = outer.write().unwrap();
        assert_eq!(d.id().to_string(), outer.to_string());
        // A carried folder counts by its id.
        let mut c = Dir::default();
        c.insert(
            "a",
            Node::Carried {
                id: ObjectId(inner.as_bytes().try_into().unwrap()),
                is_dir: true,
            },
        );
        c.file("a.yaml", "x\n");
        c.file("a-b", "z\n");
        c.file("a0", "w\n");
        assert_eq!(c.id(), d.id());
    }
}
