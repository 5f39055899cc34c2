//! One tick, through the ports only, split by job:
//!
//! 1. **snapshot**: fetch the branch (the config repo port), here;
//! 2. **gather** (`gather.rs`) per app: its Canary, source revision, the record weir keeps in
//!    Git (from history when it is missing at the head), the control file, the source its
//!    primary comes from, and how weir's folder compares with what the record implies;
//! 3. **evidence** (`evidence.rs`): ask the planner, through its one gate-asking loop, every
//!    app at once, the ports answering the gates it asks for within a bound;
//! 4. **execute** (`execute.rs`): render each decided step as the app's change set (its whole
//!    folder, the primary carried by id; `render.rs` renders on every core), and each orphan
//!    the planner names as its removal;
//! 5. **publish**, here: hand the change sets to the publisher with the head they were
//!    planned on; if the branch moved, plan again on the new head;
//! 6. **tell** (`tell.rs`): alerts, webhooks and notifiers hear about published steps; idle
//!    memos (`caches.rs`) are kept only now; `report.rs` holds the lines a tick returns, and
//!    `status.rs` reads every app's record without deciding anything.
//!
//! Decisions are made only in `core::plan`; the engine reads, asks, renders and hands over,
//! and must never decide anything itself. One app's problem (a broken spec, record or
//! render) stops that app only.

mod caches;
mod evidence;
mod execute;
mod gather;
pub mod lease;
mod memo;
pub mod metrics;
mod observe;
mod render;
mod report;
pub mod serve;
mod status;
mod tell;

pub use gather::read_state;
pub use report::{AppReport, TickReport};

use crate::core::app::AppRef;
use crate::core::spec::{AlertTarget, LocatedError};
use crate::ports::{Clock, ConfigRepo, Hooks, MetricSource, Publisher};
use crate::repo::change::{ChangeSet, Publication, RepoError};
use crate::repo::objects::ObjectId;
use crate::repo::render::Templates;
use crate::repo::source::{Scanner, SourceError};
use caches::{Caches, IdleKey};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tell::After;
use tracing::{debug, info, info_span, warn, Instrument};

/// What the tick needs besides the ports.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Folders scanned for specs.
    pub roots: Vec<String>,
    /// Smallest analysis interval accepted.
    pub min_interval: Duration,
    /// Push attempts before giving up on a tick.
    pub max_push_attempts: u32,
    /// Commits searched for a record that is missing at the head.
    pub history_depth: usize,
    /// Gate queries run at once, over all apps.
    pub gate_concurrency: usize,
    /// Longest a tick may take: past it the tick is abandoned at its next wait, before it
    /// publishes anything more.
    pub tick_deadline: Duration,
    /// Where alerts go for Canaries that name no AlertProvider (Flagger's global provider).
    pub default_alerts: Vec<AlertTarget>,
    /// Rehearse the steps that follow each step into its change set; set by [`Engine::new`]
    /// from the publisher, which alone knows whether it shows them.
    pub rehearse_remaining: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            roots: vec![".".into()],
            min_interval: Duration::from_secs(10),
            max_push_attempts: 5,
            history_depth: 200,
            gate_concurrency: 16,
            tick_deadline: Duration::from_secs(300),
            default_alerts: Vec::new(),
            rehearse_remaining: false,
        }
    }
}

/// The adapters the engine runs on, wired in one place (`cli`, or a test).
pub struct Ports {
    /// The config repository.
    pub repo: Box<dyn ConfigRepo>,
    /// How change sets are published.
    pub publisher: Box<dyn Publisher>,
    /// Where metric gates are queried.
    pub metrics: Arc<dyn MetricSource>,
    /// The time of decisions.
    pub clock: Arc<dyn Clock>,
    /// Who hears about what moved.
    pub notifier: Arc<dyn crate::ports::Notifier>,
    /// Calls the Canaries' webhooks.
    pub hooks: Arc<dyn Hooks>,
    /// Reads the Secrets that AlertProviders name; `None` when no secret store is configured.
    pub secrets: Option<Arc<dyn crate::ports::Secrets>>,
    /// What the cluster runs; `None` decides from Git alone (a step counts as applied once
    /// committed).
    pub cluster: Option<Arc<dyn crate::ports::ClusterView>>,
}

/// A tick that could not run at all (one app's problems never end up here).
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The repository could not be fetched, read or written.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The tree could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Every push attempt found the branch moved.
    #[error("gave up after {attempts} push attempts: the branch kept moving under weir; nothing was overwritten, the next tick re-plans")]
    PushRace {
        /// Attempts made.
        attempts: u32,
    },
    /// The tick took longer than its deadline and was abandoned.
    #[error("the tick took longer than {0:?} and was abandoned at its next wait; what it had not published yet was not published")]
    Deadline(Duration),
    /// The Lease was lost, or too little of it was left, before the push: nothing was pushed.
    #[error("not publishing: {0}; the leader plans this step again")]
    NotLeader(String),
}

impl TickError {
    /// Worth retrying soon (network trouble, a busy branch); false when something must be
    /// fixed first (credentials, a missing branch, a refused push).
    pub fn is_transient(&self) -> bool {
        match self {
            TickError::Repo(e) => e.transient,
            TickError::Source(_) | TickError::NotLeader(_) => false,
            TickError::PushRace { .. } | TickError::Deadline(_) => true,
        }
    }
}

/// Why weir did not act on one app this tick.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// The app's files are invalid (spec, kustomization, references, a rule across apps).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Spec(Vec<LocatedError>),
    /// weir's record of the app cannot be used.
    #[error("{0}")]
    Record(String),
    /// The source of the primary cannot be found, or does not match the record.
    #[error("{0}")]
    Source(String),
    /// A template failed.
    #[error("{0}")]
    Render(String),
    /// Reading the repository failed.
    #[error(transparent)]
    Repo(RepoError),
}

impl AppError {
    /// Worth retrying without any change to the repository.
    pub fn is_transient(&self) -> bool {
        matches!(self, AppError::Repo(e) if e.transient)
    }

    /// One line per problem.
    pub fn lines(&self) -> Vec<String> {
        match self {
            AppError::Spec(errors) => errors.iter().map(|e| e.to_string()).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// The wired engine: ports plus the caches that make idle ticks cheap.
pub struct Engine {
    ports: Ports,
    templates: Templates,
    settings: Settings,
    caches: Caches,
    /// The Lease that makes this process the one writer, when elected (`weir run
    /// --leader-elect`); `None` writes without asking.
    leader: Option<Arc<lease::Elector>>,
    /// True from the start of a publication until what follows it is sent: a tick then is
    /// not abandoned on a signal, or its alerts and hooks would be lost.
    publishing: Arc<AtomicBool>,
}

/// Marks a publication in progress until dropped.
struct Publishing(Arc<AtomicBool>);

impl Publishing {
    fn start(flag: &Arc<AtomicBool>) -> Publishing {
        flag.store(true, Ordering::SeqCst);
        Publishing(flag.clone())
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// What planning on one head produced.
struct Planned {
    changes: Vec<ChangeSet>,
    report: TickReport,
    quiet: bool,
    memos: Vec<(String, IdleKey)>,
    /// What the next tick needs to read only what changed, and the apps the change sets
    /// bring to rest.
    memo: memo::Memo,
    at_rest: Vec<String>,
    /// Alerts and post-rollout and event hooks, for once the steps are published.
    after: Vec<After>,
}

impl Engine {
    /// Wires the engine.
    pub fn new(ports: Ports, templates: Templates, mut settings: Settings) -> Engine {
        settings.rehearse_remaining = ports.publisher.shows_remaining_steps();
        let caches = Caches::new(Scanner::new(&settings.roots, settings.min_interval));
        Engine {
            ports,
            templates,
            settings,
            caches,
            leader: None,
            publishing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True while a tick publishes a step or sends what follows it (alerts, post-rollout
    /// and event hooks): abandoning the tick then would lose them.
    pub fn publishing(&self) -> Arc<AtomicBool> {
        self.publishing.clone()
    }

    /// Publishes only while `leader` holds the Lease with the margin left.
    pub fn with_leader(mut self, leader: Arc<lease::Elector>) -> Engine {
        self.leader = Some(leader);
        self
    }

    /// Whether this process may tick: it leads, or is not elected at all. `Err` says who
    /// leads instead.
    pub async fn leads(&self) -> Result<(), String> {
        match &self.leader {
            Some(leader) => leader.lead().await,
            None => Ok(()),
        }
    }

    /// Runs one tick; on a push race, plans again on the new head, up to the configured
    /// number of attempts. A local copy of the repository that cannot be read is started
    /// over once.
    pub async fn tick(&mut self) -> Result<TickReport, TickError> {
        let deadline = self.settings.tick_deadline;
        match tokio::time::timeout(deadline, self.tick_recovering()).await {
            Ok(result) => result,
            Err(_) => Err(TickError::Deadline(deadline)),
        }
    }

    async fn tick_recovering(&mut self) -> Result<TickReport, TickError> {
        let result = self.tick_once().await;
        // A damaged local copy is never the tick's answer: the adapter cloned it again
        // already (`repaired`), or starting it over may (a read or a write of the copy
        // failed, or an app's files could not be read from it, which was reported as that
        // app's error). Then plan once more on a fresh fetch.
        let repaired = matches!(&result, Err(TickError::Repo(e)) if e.repaired);
        let damaged = match &result {
            Ok(_) => self.ports.repo.damaged(),
            Err(TickError::Source(SourceError::Read { .. })) => true,
            Err(TickError::Repo(e)) => e.local,
            Err(_) => false,
        };
        if !(repaired || (damaged && self.ports.repo.start_over()?)) {
            return result;
        }
        match &result {
            Ok(_) => warn!("an object of the local copy of the repository could not be read; it was cloned again"),
            Err(e) => warn!("{e}; the local copy of the repository was cloned again"),
        }
        self.caches.quiet_head = None;
        self.tick_once().await
    }

    async fn tick_once(&mut self) -> Result<TickReport, TickError> {
        let attempts = self.settings.max_push_attempts.max(1);
        for attempt in 1..=attempts {
            let head = self.ports.repo.fetch()?;
            let span = info_span!("tick", head = %head.short(7), attempt);
            if self.caches.quiet_head == Some(head) {
                debug!(parent: &span, "head unchanged and nothing in flight");
                return Ok(TickReport {
                    head: Some(head),
                    attempts: attempt,
                    ..TickReport::default()
                });
            }
            let started = std::time::Instant::now();
            let planned = self.plan_head(head).instrument(span.clone()).await?;
            debug!(parent: &span, apps = planned.report.apps.len(), plan_ms = started.elapsed().as_millis() as u64, "planned");
            let mut report = planned.report;
            report.head = Some(head);
            report.attempts = attempt;
            // Publishers may write even with no change set (PR mode merges), so always ask.
            if let Some(leader) = &self.leader {
                leader.may_publish().await.map_err(TickError::NotLeader)?;
            }
            let publishing = Publishing::start(&self.publishing);
            let now = self.ports.clock.now();
            let publication = self
                .ports
                .publisher
                .publish(self.ports.repo.as_mut(), head, &planned.changes, now)
                .instrument(span.clone())
                .await?;
            match publication {
                Publication::Nothing => {
                    debug!(parent: &span, "nothing to commit");
                    self.keep_memo(planned.memo);
                    self.caches.keep_memos(planned.memos);
                    self.caches.quiet_head = planned.quiet.then_some(head);
                    return Ok(report);
                }
                Publication::DryRun {
                    commit,
                    message,
                    diff,
                } => {
                    report.commit = Some(commit);
                    report.message = Some(message);
                    report.diff = Some(diff);
                    report.events = planned
                        .changes
                        .iter()
                        .flat_map(|c| c.events.clone())
                        .collect();
                    return Ok(report);
                }
                Publication::Committed { commit, message } => {
                    info!(parent: &span, commit = %commit.short(7), subject = message.lines().next().unwrap_or(""), "pushed");
                    // The commit changed weir's folders only: the memo holds at it.
                    self.keep_memo(planned.memo.published(commit, &planned.at_rest));
                    self.caches.keep_memos(planned.memos);
                    self.caches.quiet_head = None;
                    report.commit = Some(commit);
                    report.message = Some(message);
                    report.events = planned
                        .changes
                        .iter()
                        .flat_map(|c| c.events.clone())
                        .collect();
                    let commit_hex = commit.to_string();
                    self.tell(planned.after, &commit_hex).await;
                    return Ok(report);
                }
                Publication::Proposed { merged, waiting } => {
                    for (app, why) in &waiting {
                        info!(parent: &span, app = %app, "the step waits in its pull request: {why}");
                        if let Some(line) =
                            report.apps.iter_mut().find(|a| a.app == app.to_string())
                        {
                            line.message = format!("pull request: {why}");
                        }
                    }
                    // Apps waiting in a pull request are looked at again next tick.
                    self.caches.quiet_head = None;
                    self.keep_memo(planned.memo);
                    self.caches.keep_memos(planned.memos);
                    let merged_apps: Vec<&AppRef> = merged.iter().map(|(a, _, _)| a).collect();
                    report.events = planned
                        .changes
                        .iter()
                        .filter(|c| merged_apps.contains(&&c.app))
                        .flat_map(|c| c.events.clone())
                        .collect();
                    if let Some((_, commit, message)) = merged.last() {
                        report.commit = Some(*commit);
                        report.message = Some(message.clone());
                    }
                    let mut after = planned.after;
                    for (app, commit, message) in &merged {
                        info!(parent: &span, app = %app, commit = %commit.short(7), subject = message.lines().next().unwrap_or(""), "merged");
                        let (mine, rest): (Vec<After>, Vec<After>) =
                            after.into_iter().partition(|a| a.step.app == *app);
                        after = rest;
                        self.tell(mine, &commit.to_string()).await;
                    }
                    return Ok(report);
                }
                Publication::Raced { remote } => {
                    warn!(
                        parent: &span,
                        attempt,
                        remote = remote.map(|r| r.short(7)).unwrap_or_else(|| "none".into()),
                        "the branch moved (a push, or a reset); nothing was written; planning again on the new head"
                    );
                    self.caches.quiet_head = None;
                    // Nothing was published: a signal may stop the tick from here on.
                    drop(publishing);
                    let backoff = Duration::from_millis(100u64 << attempt.min(5));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        Err(TickError::PushRace { attempts })
    }

    /// The memo of the last tick this process published on, read from beside the local
    /// copy the first time.
    fn read_memo(&mut self) {
        if !self.caches.memo_read {
            self.caches.memo_read = true;
            let key = self.memo_key();
            self.caches.memo = self
                .ports
                .repo
                .read_memo()
                .and_then(|bytes| memo::Memo::decode(&bytes, &key));
        }
    }

    fn memo_key(&self) -> String {
        memo::key(
            &self.settings,
            &self.templates,
            self.ports.cluster.as_ref().map(|c| c.describe()),
        )
    }

    /// Keeps the memo of a published tick, in memory and beside the local copy (when its
    /// head moved: an unchanged one is there already).
    fn keep_memo(&mut self, memo: memo::Memo) {
        let moved = self.caches.memo.as_ref().map(|m| m.head()) != Some(memo.head());
        if moved {
            self.ports.repo.write_memo(&memo.encode());
        }
        self.caches.memo = Some(memo);
    }

    /// Which apps to gather at `head`: with a memo whose head is still in the local copy,
    /// the apps whose inputs changed since and those not settled; otherwise every app.
    fn scope(&self, tree: &dyn crate::repo::source::SourceTree) -> memo::Scope {
        let Some((memo, old)) = self.caches.memo.as_ref().and_then(|m| Some((m, m.head()?))) else {
            return memo::Scope::All;
        };
        match self.ports.repo.tree(old) {
            Ok(old_tree) => memo.scope(old_tree.as_ref(), tree),
            Err(_) => memo::Scope::All,
        }
    }

    /// Sends what follows published steps (`tell.rs`).
    async fn tell(&self, after: Vec<After>, commit: &str) {
        tell::tell(
            self.ports.notifier.clone(),
            self.ports.hooks.clone(),
            after,
            commit,
        )
        .await;
    }

    /// Gathers, decides and executes every app at `head`: the change sets to publish.
    async fn plan_head(&mut self, head: ObjectId) -> Result<Planned, TickError> {
        self.read_memo();
        let repo: &dyn ConfigRepo = self.ports.repo.as_ref();
        let tree_box = repo.tree(head)?;
        let tree = tree_box.as_ref();
        let scope = self.scope(tree);
        let now = self.ports.clock.now();
        let head_hex = head.to_string();
        let mut gathered = None;
        for scope in [scope, memo::Scope::All] {
            gathered = gather::gather(
                repo,
                tree,
                head,
                &mut self.caches,
                &self.settings,
                &self.templates,
                &scope,
                now,
            )?;
            if gathered.is_some() {
                break;
            }
        }
        let gather::Gathered {
            catalog,
            memo: memo_apps,
            across,
            pending,
            mut report,
        } = gathered.expect("a scope of every app always fits");
        let mut pending = pending;
        observe::observe_all(
            self.ports.cluster.as_ref(),
            repo,
            head,
            tree,
            &mut pending,
            &mut self.caches,
            now,
        )
        .await;
        let first_look = self.ports.clock.now();
        let pending = evidence::decide_all(
            &self.ports,
            self.settings.gate_concurrency,
            pending,
            &head_hex,
            now,
            first_look,
            &mut report,
        )
        .await;
        for p in &pending {
            self.caches
                .remember_look(&p.canary.file, &p.decision, p.report.as_ref());
        }
        let executed = execute::execute(
            pending,
            tree,
            &catalog,
            &self.templates,
            &self.settings,
            self.ports.secrets.as_deref(),
            &mut report,
        );
        report.apps.extend(report::invalid_lines(&catalog));
        // Settled at the head: the idle memos, less the apps a step brings to rest, which
        // are settled only once it is published.
        let at_rest: std::collections::HashSet<&str> =
            executed.at_rest.iter().map(String::as_str).collect();
        let settled: std::collections::HashSet<&str> = executed
            .memos
            .iter()
            .map(|(file, _)| file.as_str())
            .filter(|file| !at_rest.contains(file))
            .collect();
        let memo_apps = memo_apps
            .into_iter()
            .map(|mut app| {
                app.settled |= settled.contains(app.file.as_str());
                app
            })
            .collect();
        let memo = memo::Memo::new(
            self.memo_key(),
            head,
            across,
            catalog.spec_files.clone(),
            memo_apps,
        );
        report
            .apps
            .sort_by(|a, b| a.dir.cmp(&b.dir).then(a.app.cmp(&b.app)));
        Ok(Planned {
            changes: executed.changes,
            report,
            quiet: executed.quiet,
            memos: executed.memos,
            memo,
            at_rest: executed.at_rest,
            after: executed.after,
        })
    }
}
