//! One tick, through the ports only:
//!
//! 1. **snapshot**: fetch the branch (the config repo port);
//! 2. **gather** per app: its Canary, source revision, the record weir keeps in Git (from
//!    history when it is missing at the head), the source its primary comes from, and how
//!    weir's folder compares with what the record implies;
//! 3. **plan**: ask the planner (`plan.rs`);
//! 4. **evidence**: run the gates it asks for, every app's at once with a bound, and ask again;
//! 5. **execute**: render each decided step as the app's change set (its whole folder, the
//!    primary carried by id);
//! 6. **publish**: hand the change sets to the publisher with the head they were planned on;
//!    if the branch moved, plan again on the new head;
//! 7. **tell**: events go to the log and the notifier; idle memos are kept only now.
//!
//! Decisions are made only in `plan.rs`; this module reads, queries, renders and hands over.
//! One app's problem (a broken spec, record or render) stops that app only.

pub mod serve;

use crate::core::alert::Alert;
use crate::core::app::AppRef;
use crate::core::control::{Control, CONTROL_FILE};
use crate::core::events::Event;
use crate::core::hook::{HookCall, HookOutcome, HookPayload};
use crate::core::names::{owned_dir, STATE_FILE};
use crate::core::plan::{self, CheckResult, Decision, GateReport, HookResult, Input, Owned, Step};
use crate::core::record::{self, State};
use crate::core::spec::{AlertTarget, Canary, HookType, Phase, SpecError, Weight};
use crate::core::text::short;
use crate::ports::{Clock, ConfigRepo, Hooks, MetricSource, Publisher};
use crate::repo::change::{ChangeSet, Publication, RepoError, Waiting};
use crate::repo::kustomize::{self, AppSource, Gate, Resolver};
use crate::repo::objects::{Dir, ObjectId};
use crate::repo::render::{Templates, GUARDS_FILE, KUSTOMIZATION_FILE, PRIMARY_DIR};
use crate::repo::source::{Scanner, SourceError, SourceTree};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
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

/// The adapters the engine runs on, wired in one place (`commands.rs`, or a test).
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
}

impl TickError {
    /// Worth retrying soon (network trouble, a busy branch); false when something must be
    /// fixed first (credentials, a missing branch, a refused push).
    pub fn is_transient(&self) -> bool {
        match self {
            TickError::Repo(e) => e.transient,
            TickError::Source(_) => false,
            TickError::PushRace { .. } | TickError::Deadline(_) => true,
        }
    }
}

/// Why weir did not act on one app this tick.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// The app's files are invalid (spec, kustomization, references, a rule across apps).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Spec(Vec<SpecError>),
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

/// One app's line in a report.
#[derive(Debug, Clone, Serialize)]
pub struct AppReport {
    /// `namespace/name`.
    pub app: String,
    /// The app folder.
    pub dir: String,
    /// Current (or newly written) phase.
    pub phase: Option<String>,
    /// Canary weight.
    pub canary_weight: Option<u8>,
    /// Primary weight.
    pub primary_weight: Option<u8>,
    /// Failed checks so far.
    pub failed_checks: Option<u32>,
    /// The Canary's threshold.
    pub threshold: u32,
    /// Revision under analysis.
    pub canary_revision: Option<String>,
    /// Revision of the primary.
    pub primary_revision: Option<String>,
    /// Images of the primary.
    pub primary_images: Vec<String>,
    /// When the next step is due.
    pub next_step_at: Option<String>,
    /// What this tick did or why it did nothing.
    pub message: String,
    /// Errors that kept weir from acting on this app.
    pub errors: Vec<String>,
    /// PR mode: the step waiting in the app's pull request branch, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed: Option<String>,
}

/// What a tick did.
#[derive(Debug, Clone, Default)]
pub struct TickReport {
    /// The head the final plan was made on.
    pub head: Option<ObjectId>,
    /// The commit made, if any.
    pub commit: Option<ObjectId>,
    /// The commit message.
    pub message: Option<String>,
    /// Unified diff of the commit (dry runs).
    pub diff: Option<String>,
    /// Push attempts used.
    pub attempts: u32,
    /// Per-app lines, sorted by folder.
    pub apps: Vec<AppReport>,
    /// Spec errors and warnings found in the repository.
    pub spec_errors: Vec<SpecError>,
    /// What moved.
    pub events: Vec<Event>,
}

/// The inputs an idle decision read: while they stay the same, the app stays idle.
type IdleKey = (Option<ObjectId>, String, Option<ObjectId>);

/// What the engine remembers between ticks to make idle ones cheap.
#[derive(Default)]
struct Caches {
    scanner: Option<Scanner>,
    resolver: Resolver,
    /// Apps seen idle, by Canary file.
    idle: HashMap<String, IdleKey>,
    /// A head at which every app was idle with nothing due.
    quiet_head: Option<ObjectId>,
    /// When gates were last looked at without a step following (a closed gate), by Canary
    /// file, with the revision they were about: the next look is an interval later.
    looks: HashMap<String, (String, DateTime<Utc>)>,
}

/// The wired engine: ports plus the caches that make idle ticks cheap.
pub struct Engine {
    ports: Ports,
    templates: Templates,
    settings: Settings,
    caches: Caches,
}

struct Pending {
    canary: Canary,
    app: AppRef,
    source: Arc<AppSource>,
    gates: Vec<Gate>,
    state: Option<State>,
    recovered: Option<ObjectId>,
    owned_id: Option<ObjectId>,
    primary: Option<Arc<AppSource>>,
    idle_key: IdleKey,
    decision: Decision,
    owned: Owned,
    /// The control file's requests, and its text as found at the head.
    control: Control,
    control_text: Option<String>,
    /// Evidence gathered this tick.
    report: Option<GateReport>,
    /// Set when gathering found a reason to leave the app alone.
    blocked: bool,
    line: usize,
}

/// What planning on one head produced.
struct Planned {
    changes: Vec<ChangeSet>,
    report: TickReport,
    quiet: bool,
    memos: Vec<(String, IdleKey)>,
    /// Alerts and post-rollout and event hooks, for once the steps are published.
    after: Vec<After>,
}

/// What follows a published step of one app: its alert and the webhooks that only hear
/// about it (post-rollout, event).
struct After {
    alert: Option<Alert>,
    calls: Vec<HookCall>,
    /// The step, for notifiers that follow every step (its commit is filled in on push).
    step: crate::core::alert::StepReport,
}

impl Engine {
    /// Wires the engine.
    pub fn new(ports: Ports, templates: Templates, mut settings: Settings) -> Engine {
        settings.rehearse_remaining = ports.publisher.shows_remaining_steps();
        let caches = Caches {
            scanner: Some(Scanner::new(&settings.roots, settings.min_interval)),
            ..Caches::default()
        };
        Engine {
            ports,
            templates,
            settings,
            caches,
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
        match self.tick_once().await {
            Err(TickError::Source(e @ SourceError::Read { .. })) => {
                if self.ports.repo.start_over()? {
                    warn!("{e}; the local copy of the repository was cloned again");
                    self.caches.quiet_head = None;
                    self.tick_once().await
                } else {
                    Err(TickError::Source(e))
                }
            }
            other => other,
        }
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
                    self.keep_memos(planned.memos);
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
                    self.keep_memos(planned.memos);
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
                    self.keep_memos(planned.memos);
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
                    let backoff = Duration::from_millis(100u64 << attempt.min(5));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        Err(TickError::PushRace { attempts })
    }

    fn keep_memos(&mut self, memos: Vec<(String, IdleKey)>) {
        for (file, key) in memos {
            self.caches.idle.insert(file, key);
        }
    }

    /// Delivers the alerts and calls the post-rollout and event hooks of published steps,
    /// all at once; a slow or failing receiver never holds a tick for more than 30s, and
    /// what they answer is only logged (the step is already in Git).
    async fn tell(&self, after: Vec<After>, commit: &str) {
        let notifier = self.ports.notifier.clone();
        let hooks = self.ports.hooks.clone();
        let mut jobs = Vec::new();
        for a in after {
            let mut step = a.step;
            step.commit = commit.to_string();
            let stepper = notifier.clone();
            jobs.push(tokio::spawn(async move { stepper.step(&step).await }));
            if let Some(mut alert) = a.alert {
                alert.commit = Some(commit.to_string());
                let notifier = notifier.clone();
                jobs.push(tokio::spawn(async move { notifier.notify(&alert).await }));
            }
            for call in a.calls {
                let hooks = hooks.clone();
                jobs.push(tokio::spawn(async move {
                    let kind = call
                        .payload
                        .metadata
                        .get("eventType")
                        .map_or("post-rollout", |_| "event");
                    match hooks.call(&call).await {
                        HookOutcome::Passed => info!(hook = %call.name, kind, "webhook passed"),
                        HookOutcome::Failed(why) => {
                            warn!(hook = %call.name, kind, "webhook failed: {why}")
                        }
                    }
                }));
            }
        }
        let all = crate::core::join::join_all(jobs);
        if tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .is_err()
        {
            warn!("alerts and webhooks did not all finish within 30s; the step is in the log and the commit");
        }
    }

    /// Every app's state as recorded at the head of the branch, without deciding anything.
    pub fn status(&mut self) -> Result<TickReport, TickError> {
        let head = self.ports.repo.fetch()?;
        // Steps the publisher keeps off the branch (PR mode: each app's branch).
        let waiting: BTreeMap<(String, String), Waiting> = self
            .ports
            .publisher
            .pending(self.ports.repo.as_mut())?
            .into_iter()
            .map(|w| ((w.namespace.clone(), w.name.clone()), w))
            .collect();
        let tree = self.ports.repo.tree(head)?;
        let tree = tree.as_ref();
        let scanner = self.caches.scanner.as_mut().expect("made in new");
        let catalog = scanner.scan(tree)?;
        let mut report = TickReport {
            head: Some(head),
            spec_errors: catalog.errors.clone(),
            ..TickReport::default()
        };
        let canaries: Vec<&Canary> = catalog.canaries.iter().map(|(c, _)| c).collect();
        let resolved = crate::repo::rules::resolve_all(tree, &canaries, &mut self.caches.resolver);
        for (canary, _) in &catalog.canaries {
            let mut line = base_report(canary);
            match resolved.sources.get(&canary.file).ok_or_else(|| {
                resolved
                    .errors
                    .get(&canary.file)
                    .cloned()
                    .unwrap_or_default()
            }) {
                Ok(source) => {
                    line.dir = source.dir.clone();
                    if let Err(errors) = kustomize::gates(canary, &catalog.templates) {
                        line.errors.extend(errors.iter().map(|e| e.to_string()));
                    }
                    // Checked as `step` checks it, times included: what `step` would
                    // refuse shows here as the app's error.
                    let now = Some(self.ports.clock.now());
                    match read_state(tree, &source.dir, canary, now) {
                        Ok(Some(s)) => {
                            fill(&mut line, canary, &s);
                            line.message = s.message.clone();
                            let key = (canary.namespace.clone(), canary.name.clone());
                            if let Some(w) = waiting.get(&key) {
                                line.proposed =
                                    self.proposed(w.tip, &w.place, &source.dir, canary, &s);
                            }
                        }
                        Ok(None) => line.message = "not initialized yet".into(),
                        Err(e) => line.errors.extend(e.lines()),
                    }
                }
                Err(errors) => line.errors.extend(errors.iter().map(|e| e.to_string())),
            }
            report.apps.push(line);
        }
        report.apps.extend(invalid_lines(&catalog));
        report
            .apps
            .sort_by(|a, b| a.dir.cmp(&b.dir).then(a.app.cmp(&b.app)));
        Ok(report)
    }

    /// The step a pull request branch carries for an app, when it is newer than the record
    /// on the branch (a step waiting to be merged).
    fn proposed(
        &self,
        tip: ObjectId,
        branch: &str,
        dir: &str,
        canary: &Canary,
        merged: &State,
    ) -> Option<String> {
        let tree = self.ports.repo.tree(tip).ok()?;
        let s = read_state(tree.as_ref(), dir, canary, None).ok()??;
        (s.last_step_at > merged.last_step_at).then(|| {
            format!(
                "waiting in {branch}: {} (phase {}, canary weight {}%)",
                crate::core::text::clean(&s.message, 300),
                s.phase,
                s.canary_weight
            )
        })
    }

    async fn plan_head(&mut self, head: ObjectId) -> Result<Planned, TickError> {
        let repo: &dyn ConfigRepo = self.ports.repo.as_ref();
        let caches = &mut self.caches;
        let settings = &self.settings;
        let secrets = self.ports.secrets.as_deref();
        let templates = &self.templates;
        let tree_box = repo.tree(head)?;
        let tree = tree_box.as_ref();
        let started = std::time::Instant::now();
        let scanner = caches.scanner.as_mut().expect("made in new");
        let catalog = scanner.scan(tree)?;
        let scanned = started.elapsed();
        let mut report = TickReport {
            spec_errors: catalog.errors.clone(),
            ..TickReport::default()
        };
        for e in &catalog.errors {
            warn!(file = %e.file, line = e.line, field = %e.field, "{}", e.message);
        }
        let canaries: Vec<&Canary> = catalog.canaries.iter().map(|(c, _)| c).collect();
        let resolved = crate::repo::rules::resolve_all(tree, &canaries, &mut caches.resolver);
        let now = self.ports.clock.now();
        let head_hex = head.to_string();

        // Gather.
        let mut pending: Vec<Pending> = Vec::new();
        for (canary, _warnings) in &catalog.canaries {
            let mut line = base_report(canary);
            let Some(source) = resolved.sources.get(&canary.file).cloned() else {
                let errors = resolved
                    .errors
                    .get(&canary.file)
                    .cloned()
                    .unwrap_or_default();
                for e in &errors {
                    warn!(file = %e.file, line = e.line, field = %e.field, "{}", e.message);
                }
                line.errors.extend(errors.iter().map(|e| e.to_string()));
                report.apps.push(line);
                continue;
            };
            let dir = owned_dir(&source.dir);
            let owned_id = tree.id(&dir);
            // The app folder's id covers the Canary; the revision, the rest of the build.
            let idle_key = (tree.id(&source.dir), source.revision.clone(), owned_id);
            if caches.idle.get(&canary.file) == Some(&idle_key) {
                line.message = "unchanged since the last tick".into();
                report.apps.push(line);
                continue;
            }
            let span = info_span!("app", app = %canary.name, namespace = %canary.namespace);
            let _enter = span.enter();
            let gates = match kustomize::gates(canary, &catalog.templates) {
                Ok(g) => g,
                Err(errors) => {
                    line.errors.extend(errors.iter().map(|e| e.to_string()));
                    report.apps.push(line);
                    continue;
                }
            };
            let state = match read_state(tree, &source.dir, canary, Some(now)) {
                Ok(s) => s,
                Err(e) => {
                    warn!("{e}");
                    line.errors.extend(e.lines());
                    report.apps.push(line);
                    continue;
                }
            };
            let control_path = format!("{dir}/{CONTROL_FILE}");
            let (control, control_text) = match tree.read(&control_path) {
                Ok(bytes) => {
                    match crate::core::control::parse(
                        &control_path,
                        &bytes,
                        &canary.namespace,
                        &canary.name,
                    ) {
                        Ok(c) => (c, Some(String::from_utf8_lossy(&bytes).into_owned())),
                        Err(e) => {
                            warn!("{e}");
                            line.errors.push(format!("{e}; weir leaves the app alone until the control file is fixed or removed"));
                            report.apps.push(line);
                            continue;
                        }
                    }
                }
                Err(SourceError::Missing(_)) => (Control::default(), None),
                Err(e) => {
                    line.errors.push(e.to_string());
                    report.apps.push(line);
                    continue;
                }
            };
            report.apps.push(line);
            pending.push(Pending {
                control,
                control_text,
                report: None,
                app: AppRef {
                    namespace: canary.namespace.clone(),
                    name: canary.name.clone(),
                    dir: source.dir.clone(),
                },
                canary: canary.clone(),
                source,
                gates,
                state,
                recovered: None,
                owned_id,
                primary: None,
                idle_key,
                decision: Decision::Idle {
                    reason: String::new(),
                    wake_at: None,
                },
                owned: Owned::Current,
                blocked: false,
                line: report.apps.len() - 1,
            });
        }

        // Records missing at the head are read from history: deleting weir's files does not
        // make an app new again.
        recover_records(
            repo,
            head,
            settings.history_depth,
            &mut pending,
            &mut report,
        )?;

        // The source each primary comes from.
        let mut sourced = Vec::new();
        for mut p in pending {
            if p.blocked {
                continue;
            }
            if let Some(state) = p.state.as_mut() {
                let found = primary_source(
                    repo,
                    &mut caches.resolver,
                    head,
                    &p.canary,
                    &p.source,
                    state,
                    settings.history_depth,
                );
                match found {
                    Ok(s) => p.primary = Some(s),
                    Err(e) => {
                        warn!(app = %p.app, "{e}");
                        report.apps[p.line].errors.extend(e.lines());
                        continue;
                    }
                }
            }
            sourced.push(p);
        }
        // How weir's folder compares with what each record implies (rendered on every core).
        let expected = render_all(
            templates,
            sourced
                .iter()
                .map(|p| match (&p.state, &p.primary, p.recovered) {
                    (Some(state), Some(primary), None) => Some((
                        &p.canary,
                        &p.source.selector,
                        state,
                        primary.as_ref(),
                        p.control_text.clone(),
                    )),
                    _ => None,
                })
                .collect(),
        );
        let mut ready = Vec::new();
        for (mut p, expected) in sourced.into_iter().zip(expected) {
            p.owned = match (p.recovered, expected) {
                (Some(from), _) => Owned::Recovered {
                    from: from.to_string(),
                },
                (None, None) => Owned::Current,
                (None, Some(Ok((dir, id)))) => {
                    compare(tree, &owned_dir(&p.source.dir), &dir, id, p.owned_id)
                }
                (None, Some(Err(e))) => {
                    report.apps[p.line]
                        .errors
                        .push(AppError::Render(e.to_string()).to_string());
                    continue;
                }
            };
            let last_look = caches
                .looks
                .get(&p.canary.file)
                .filter(|(rev, _)| *rev == p.source.revision)
                .map(|(_, at)| *at);
            p.decision = plan::plan(&input(&p, &head_hex, None, last_look, now));
            ready.push(p);
        }
        let mut pending = ready;
        debug!(
            scan_ms = scanned.as_millis() as u64,
            gather_ms = started.elapsed().as_millis() as u64,
            "gathered"
        );

        // Evidence: every gate the planner asks for, every app's at once with a bound, then
        // decide again with it; a decision may ask for more (a confirm gate once the analysis
        // passed), so in a few rounds.
        let limit = Arc::new(tokio::sync::Semaphore::new(
            settings.gate_concurrency.max(1),
        ));
        let first_look = self.ports.clock.now();
        for _round in 0..4 {
            let mut jobs = tokio::task::JoinSet::new();
            for (i, p) in pending.iter_mut().enumerate() {
                let Decision::NeedGates {
                    canary_weight,
                    metrics: want_metrics,
                    hooks: kinds,
                } = p.decision.clone()
                else {
                    continue;
                };
                let report = match p.report.take() {
                    Some(r) if r.canary_weight == canary_weight => r,
                    _ => GateReport {
                        revision: p.source.revision.clone(),
                        canary_weight,
                        at: first_look,
                        checks: None,
                        hooks: Default::default(),
                    },
                };
                let job = Gathering {
                    metrics: self.ports.metrics.clone(),
                    hooks: self.ports.hooks.clone(),
                    limit: limit.clone(),
                    canary: p.canary.clone(),
                    gates: p.gates.clone(),
                    phase: p
                        .state
                        .as_ref()
                        .map(|s| s.phase.to_string())
                        .unwrap_or_else(|| "Initializing".into()),
                };
                let span = info_span!("app", app = %p.canary.name, namespace = %p.canary.namespace);
                jobs.spawn(
                    async move {
                        let report = job.gather(report, want_metrics, &kinds).await;
                        (i, report)
                    }
                    .instrument(span),
                );
            }
            if jobs.is_empty() {
                break;
            }
            while let Some(joined) = jobs.join_next().await {
                if let Ok((i, report)) = joined {
                    pending[i].report = Some(report);
                }
            }
            let gathered_at = self.ports.clock.now();
            for p in pending.iter_mut() {
                if !matches!(p.decision, Decision::NeedGates { .. }) {
                    continue;
                }
                let Some(report) = p.report.as_ref() else {
                    continue;
                };
                let mut report = report.clone();
                report.at = report.at.min(gathered_at);
                p.decision = plan::plan(&input(p, &head_hex, Some(&report), None, gathered_at));
                p.report = Some(report);
            }
        }
        // A closed gate is looked at again an interval later; a step starts afresh.
        for p in &pending {
            match (&p.decision, &p.report) {
                (Decision::Write(_), _) => {
                    caches.looks.remove(&p.canary.file);
                }
                (Decision::Idle { .. }, Some(r)) => {
                    caches
                        .looks
                        .insert(p.canary.file.clone(), (r.revision.clone(), r.at));
                }
                _ => {}
            }
        }

        // Execute: each decided step becomes the app's change set (rendered on every core).
        let quiet = pending
            .iter()
            .all(|p| matches!(p.decision, Decision::Idle { wake_at: None, .. }));
        let rendered = render_all(
            templates,
            pending
                .iter()
                .map(|p| match &p.decision {
                    Decision::Write(step) => {
                        let primary = if step.next.promoted_revision == p.source.revision {
                            Some(&p.source)
                        } else {
                            p.primary.as_ref()
                        };
                        let control = plan::control::carried(
                            &p.control,
                            p.control_text.as_deref(),
                            step.retried,
                            &p.canary.name,
                            &p.canary.namespace,
                        );
                        primary.map(|primary| {
                            (
                                &p.canary,
                                &p.source.selector,
                                &step.next,
                                primary.as_ref(),
                                control,
                            )
                        })
                    }
                    _ => None,
                })
                .collect(),
        );
        let mut changes = Vec::new();
        let mut memos = Vec::new();
        let mut after = Vec::new();
        for (p, rendered) in pending.into_iter().zip(rendered) {
            let line = &mut report.apps[p.line];
            match &p.decision {
                Decision::Idle { reason, wake_at } => {
                    line.message = reason.clone();
                    if let Some(s) = &p.state {
                        fill(line, &p.canary, s);
                    }
                    line.next_step_at = wake_at.map(fmt_time);
                    if wake_at.is_none() && p.owned == Owned::Current && p.state.is_some() {
                        memos.push((p.canary.file.clone(), p.idle_key.clone()));
                    }
                }
                Decision::NeedGates { .. } => {
                    line.message = "checks could not be run".into();
                    if let Some(s) = &p.state {
                        fill(line, &p.canary, s);
                    }
                }
                Decision::Write(step) => {
                    let span =
                        info_span!("app", app = %p.canary.name, namespace = %p.canary.namespace);
                    let _enter = span.enter();
                    let (dir, written) = match rendered {
                        Some(Ok(r)) => r,
                        Some(Err(e)) => {
                            let e = AppError::Render(e.to_string());
                            warn!("{e}");
                            line.errors.push(e.to_string());
                            continue;
                        }
                        None => {
                            line.errors.push("no source for the primary".into());
                            continue;
                        }
                    };
                    fill(line, &p.canary, &step.next);
                    line.message = step.event.clone();
                    if Some(written) == p.owned_id {
                        continue;
                    }
                    // At rest, the next tick on this folder decides nothing: remember that
                    // (kept only once the commit is on the branch).
                    if matches!(
                        step.next.phase,
                        Phase::Initialized | Phase::Succeeded | Phase::Failed
                    ) {
                        memos.push((
                            p.canary.file.clone(),
                            (p.idle_key.0, p.source.revision.clone(), Some(written)),
                        ));
                    }
                    info!(
                        phase = %step.next.phase,
                        weight = step.next.canary_weight.get(),
                        failed_checks = step.next.failed_checks,
                        "{}",
                        step.event
                    );
                    let details = with_hook_results(&step.details, p.report.as_ref());
                    let history = step.next.history.clone();
                    after.push(aftermath(&p, step, &catalog.providers, settings, secrets));
                    let remaining = if settings.rehearse_remaining && step.next.phase.in_flight() {
                        plan::rehearse::rehearse(
                            &p.canary.analysis,
                            p.canary.skip_analysis,
                            &step.next,
                            &p.source.revision,
                            &p.source.images,
                        )
                    } else {
                        Vec::new()
                    };
                    changes.push(ChangeSet {
                        remaining,
                        history,
                        review: p.canary.pr_review.clone(),
                        dir: owned_dir(&p.source.dir),
                        tree: Some(dir),
                        events: vec![Event {
                            app: p.app.clone(),
                            phase: step.next.phase,
                            weight: step.next.canary_weight,
                            summary: step.summary.clone(),
                            details,
                        }],
                        app: p.app,
                    });
                }
            }
        }
        changes.extend(orphans(tree, &catalog, &resolved));
        report.apps.extend(invalid_lines(&catalog));
        report
            .apps
            .sort_by(|a, b| a.dir.cmp(&b.dir).then(a.app.cmp(&b.app)));
        Ok(Planned {
            changes,
            report,
            quiet,
            memos,
            after,
        })
    }
}

/// One folder to render: the Canary, its selector, the record and the primary's source.
type RenderJob<'a> = Option<(
    &'a Canary,
    &'a crate::repo::kustomize::Selector,
    &'a State,
    &'a AppSource,
    Option<String>,
)>;

/// Renders weir's folder for each job on every core, with its id; `None` for no job.
fn render_all(
    templates: &Templates,
    jobs: Vec<RenderJob>,
) -> Vec<Option<Result<(Dir, ObjectId), crate::repo::render::RenderError>>> {
    let render = |job: &RenderJob| {
        job.as_ref()
            .map(|(canary, selector, state, primary, control)| {
                templates
                    .render_owned(canary, selector, state, primary)
                    .map(|mut dir| {
                        // The control file is people's, carried as it is.
                        if let Some(text) = control {
                            dir.file(CONTROL_FILE, text.clone());
                        }
                        let id = dir.id();
                        (dir, id)
                    })
            })
    };
    let work = jobs.iter().filter(|j| j.is_some()).count();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if work < 64 || threads < 2 {
        return jobs.iter().map(render).collect();
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(render).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("rendering does not panic"))
            .collect()
    })
}

/// How weir's folder at the head compares with the one the record implies.
fn compare(
    tree: &dyn SourceTree,
    dir: &str,
    expected: &Dir,
    expected_id: ObjectId,
    actual: Option<ObjectId>,
) -> Owned {
    if Some(expected_id) == actual {
        return Owned::Current;
    }
    let part = |name: &str| {
        expected
            .get(name)
            .map(|n| n.id())
            .filter(|id| Some(*id) == tree.id(&format!("{dir}/{name}")))
            .is_none()
    };
    Owned::Stale {
        primary: part(PRIMARY_DIR) || part(GUARDS_FILE) || part(KUSTOMIZATION_FILE),
    }
}

/// Reads the records missing at the head from the newest earlier commit that has them.
fn recover_records(
    repo: &dyn ConfigRepo,
    head: ObjectId,
    depth: usize,
    pending: &mut [Pending],
    report: &mut TickReport,
) -> Result<(), TickError> {
    let mut missing: Vec<usize> = (0..pending.len())
        .filter(|i| pending[*i].state.is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let commits = repo.first_parents(head, depth.saturating_add(1))?;
    for commit in commits.into_iter().skip(1) {
        if missing.is_empty() {
            break;
        }
        let tree = repo.tree(commit)?;
        missing.retain(|&i| {
            let p = &mut pending[i];
            let path = format!("{}/{STATE_FILE}", owned_dir(&p.source.dir));
            let Ok(bytes) = tree.read(&path) else {
                return true;
            };
            match record::parse(&path, &bytes) {
                Ok(record) if record.metadata.name == p.canary.name
                    && record.metadata.namespace == p.canary.namespace =>
                {
                    info!(app = %p.app, commit = %commit.short(7), "the rollout record is missing at the head; using the one weir wrote last");
                    p.state = Some(record.status);
                    p.recovered = Some(commit);
                }
                Ok(_) => {}
                Err(e) => {
                    p.blocked = true;
                    report.apps[p.line].errors.push(format!(
                        "{e} (in commit {}, where weir looked for the record missing at the head); weir leaves the app alone",
                        commit.short(7)
                    ));
                }
            }
            false
        });
    }
    // An app whose record could not be read from history is left alone.
    Ok(())
}

/// The app's source at the commit its primary comes from, checked against the record.
fn primary_source(
    repo: &dyn ConfigRepo,
    resolver: &mut Resolver,
    head: ObjectId,
    canary: &Canary,
    current: &Arc<AppSource>,
    state: &mut State,
    depth: usize,
) -> Result<Arc<AppSource>, AppError> {
    // The same revision has the same files: the head's source serves.
    if state.promoted_revision == current.revision {
        if state.promoted_commit.is_none() {
            state.promoted_commit = Some(head.to_string());
        }
        return Ok(current.clone());
    }
    let at = |resolver: &mut Resolver, commit: ObjectId| -> Option<Arc<AppSource>> {
        let tree = repo.tree(commit).ok()?;
        resolver.resolve_at(commit, tree.as_ref(), canary).ok()
    };
    if let Some(commit) = state
        .promoted_commit
        .as_deref()
        .and_then(ObjectId::from_hex)
    {
        if let Some(source) = at(resolver, commit) {
            if source.revision == state.promoted_revision {
                return Ok(source);
            }
            return Err(AppError::Source(format!(
                "the rollout record says the primary is revision {} from commit {}, but that commit holds revision {} of {}; weir leaves the app alone until the record is fixed",
                short(&state.promoted_revision),
                commit.short(7),
                short(&source.revision),
                current.dir
            )));
        }
    }
    // An older record, or a commit that is gone: find the revision in the history.
    let commits = repo.first_parents(head, depth).map_err(AppError::Repo)?;
    for commit in commits {
        if let Some(source) = at(resolver, commit) {
            if source.revision == state.promoted_revision {
                state.promoted_commit = Some(commit.to_string());
                return Ok(source);
            }
        }
    }
    Err(AppError::Source(format!(
        "the primary's revision {} is not in the last {depth} commits of the branch, so weir cannot derive the primary of {}; weir leaves the app alone",
        short(&state.promoted_revision),
        current.dir
    )))
}

async fn run_gates(
    metrics: &dyn MetricSource,
    limit: &tokio::sync::Semaphore,
    canary: &Canary,
    gates: &[Gate],
) -> Vec<CheckResult> {
    let queries = gates.iter().map(|gate| async move {
        let value = match gate.query(canary) {
            Err(e) => Err(e.to_string()),
            Ok(query) => {
                let _permit = limit.acquire().await;
                match metrics.query(gate.address.as_deref(), &query).await {
                    Ok(v) => Ok(v),
                    Err(e) if e.no_data => Err("no data".to_string()),
                    Err(e) => {
                        warn!(metric = %gate.name, "{e}");
                        Err(format!("error: {e}"))
                    }
                }
            }
        };
        let check = CheckResult {
            name: gate.name.clone(),
            value,
            min: gate.min,
            max: gate.max,
        };
        info!(metric = %gate.name, passed = check.passed(), "{}", check.describe());
        check
    });
    crate::core::join::join_all(queries).await
}

/// Reads an app's record at the head, checked against its app (and the clock, when given).
pub fn read_state(
    tree: &dyn SourceTree,
    app_dir: &str,
    canary: &Canary,
    now: Option<DateTime<Utc>>,
) -> Result<Option<State>, AppError> {
    let path = format!("{}/{STATE_FILE}", owned_dir(app_dir));
    match tree.read(&path) {
        Ok(bytes) => {
            let leave = |e: record::StateError| {
                AppError::Record(format!(
                    "{e}; weir leaves the app alone until the record is fixed or removed"
                ))
            };
            let record = record::parse(&path, &bytes).map_err(leave)?;
            record::check_owner(&path, &bytes, &record, &canary.namespace, &canary.name)
                .map_err(leave)?;
            if let Some(now) = now {
                record::check_times(&path, &bytes, &record, now).map_err(leave)?;
            }
            Ok(Some(record.status))
        }
        Err(SourceError::Missing(_)) => Ok(None),
        Err(e) => Err(AppError::Record(e.to_string())),
    }
}

fn base_report(canary: &Canary) -> AppReport {
    AppReport {
        app: format!("{}/{}", canary.namespace, canary.name),
        dir: crate::repo::source::parent(&canary.file).to_string(),
        phase: None,
        canary_weight: None,
        primary_weight: None,
        failed_checks: None,
        threshold: canary.analysis.threshold,
        canary_revision: None,
        primary_revision: None,
        primary_images: Vec::new(),
        next_step_at: None,
        message: String::new(),
        errors: Vec::new(),
        proposed: None,
    }
}

/// Lines for Canary documents that could not be read: every app found is reported.
fn invalid_lines(catalog: &crate::repo::source::Catalog) -> Vec<AppReport> {
    catalog
        .invalid
        .iter()
        .map(|bad| AppReport {
            app: bad.display_name(),
            dir: crate::repo::source::parent(&bad.file).to_string(),
            phase: None,
            canary_weight: None,
            primary_weight: None,
            failed_checks: None,
            threshold: 0,
            canary_revision: None,
            primary_revision: None,
            primary_images: Vec::new(),
            next_step_at: None,
            message: String::new(),
            errors: bad.errors.iter().map(|e| e.to_string()).collect(),
            proposed: None,
        })
        .collect()
}

fn fill(line: &mut AppReport, canary: &Canary, s: &State) {
    line.phase = Some(s.phase.to_string());
    line.canary_weight = Some(s.canary_weight.get());
    line.primary_weight = Some(s.canary_weight.complement().get());
    line.failed_checks = Some(s.failed_checks);
    line.canary_revision = s.canary_revision.as_deref().map(|r| short(r).to_string());
    line.primary_revision = Some(short(&s.promoted_revision).to_string());
    line.primary_images = s.primary_images.clone();
    if s.phase.in_flight() {
        line.next_step_at = Some(fmt_time(plan::due_at(&canary.analysis, s)));
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The planner's input for a pending app.
fn input<'a>(
    p: &'a Pending,
    head: &'a str,
    gates: Option<&'a GateReport>,
    last_look: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Input<'a> {
    Input {
        analysis: &p.canary.analysis,
        skip_analysis: p.canary.skip_analysis,
        suspend: p.canary.suspend,
        state: p.state.as_ref(),
        revision: &p.source.revision,
        head,
        images: &p.source.images,
        owned: &p.owned,
        control: &p.control,
        gates,
        last_look,
        revert_on_deletion: p.canary.revert_on_deletion,
        now,
    }
}

/// What one app's gathering needs, owned so that it runs on its own task.
struct Gathering {
    metrics: Arc<dyn MetricSource>,
    hooks: Arc<dyn Hooks>,
    limit: Arc<tokio::sync::Semaphore>,
    canary: Canary,
    gates: Vec<Gate>,
    /// The app's phase as recorded, sent to confirm-rollout and rollback hooks.
    phase: String,
}

impl Gathering {
    /// Adds to `report` what the planner asked for and it lacks: the metric values, and the
    /// answers of each hook type (in order, up to the first failure; rollback hooks up to the
    /// first that asks for a rollback, as Flagger calls them).
    async fn gather(
        &self,
        mut report: GateReport,
        metrics: bool,
        kinds: &[HookType],
    ) -> GateReport {
        for kind in kinds {
            if report.hooks.contains_key(kind) {
                continue;
            }
            let mut answers = Vec::new();
            for hook in self.canary.analysis.hooks(*kind) {
                let call = hook_call(
                    &self.canary,
                    hook,
                    &self.phase,
                    &report.revision,
                    hook.metadata.clone(),
                );
                let outcome = {
                    let _permit = self.limit.acquire().await;
                    self.hooks.call(&call).await
                };
                let (passed, message) = match outcome {
                    HookOutcome::Passed => (true, "passed".to_string()),
                    HookOutcome::Failed(why) => (false, why),
                };
                info!(hook = %hook.name, kind = %kind, passed, "{kind} webhook {}: {message}", hook.name);
                answers.push(HookResult {
                    name: hook.name.clone(),
                    passed,
                    message,
                    mute_alert: hook.mute_alert,
                });
                let decided = if *kind == HookType::Rollback {
                    passed
                } else {
                    !passed
                };
                if decided {
                    break;
                }
            }
            report.hooks.insert(*kind, answers);
        }
        if metrics && report.checks.is_none() {
            report.checks = Some(
                run_gates(
                    self.metrics.as_ref(),
                    &self.limit,
                    &self.canary,
                    &self.gates,
                )
                .await,
            );
        }
        report
    }
}

/// The step's details with every webhook answer of the tick, for the commit body.
fn with_hook_results(details: &[String], report: Option<&GateReport>) -> Vec<String> {
    let mut out = details.to_vec();
    for (kind, answers) in report.map(|r| &r.hooks).into_iter().flatten() {
        for h in answers {
            let line = if h.passed {
                format!("{kind} webhook {} passed", h.name)
            } else {
                format!("{kind} webhook {} failed: {}", h.name, h.message)
            };
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

/// The alert and the hooks that hear about a step once it is published.
fn aftermath(
    p: &Pending,
    step: &Step,
    providers: &std::collections::BTreeMap<
        (String, String),
        crate::core::spec::alert_provider::AlertProviderSpec,
    >,
    settings: &Settings,
    secrets: Option<&dyn crate::ports::Secrets>,
) -> After {
    let canary = &p.canary;
    let next = &step.next;
    let checksum = next
        .canary_revision
        .clone()
        .unwrap_or_else(|| p.source.revision.clone());
    let phase = next.phase.to_string();
    let call = |hook: &crate::core::spec::Webhook, metadata| {
        hook_call(canary, hook, &phase, &checksum, metadata)
    };
    let mut calls = Vec::new();
    // post-rollout: after the release succeeded or was rolled back.
    if plan::effects::ends_release(p.state.as_ref(), next) {
        for hook in canary.analysis.hooks(HookType::PostRollout) {
            calls.push(call(hook, hook.metadata.clone()));
        }
    }
    // event: every step, with Flagger's three keys, which the hook's metadata cannot change.
    let warning = step
        .alert
        .as_ref()
        .is_some_and(|(s, _)| *s != crate::core::spec::AlertSeverity::Info);
    for hook in canary.analysis.hooks(HookType::Event) {
        let mut metadata = hook.metadata.clone();
        metadata.insert("eventMessage".into(), step.event.clone());
        metadata.insert(
            "eventType".into(),
            if warning { "Warning" } else { "Normal" }.into(),
        );
        metadata.insert(
            "timestamp".into(),
            next.last_step_at.timestamp_millis().to_string(),
        );
        calls.push(call(hook, metadata));
    }
    let alert = step.alert.as_ref().map(|(severity, message)| {
        let mut targets = Vec::new();
        if canary.analysis.alerts.is_empty() {
            targets.extend(settings.default_alerts.iter().cloned());
        }
        for a in &canary.analysis.alerts {
            let found = providers
                .get(&(a.provider_namespace.clone(), a.provider_name.clone()))
                .or_else(|| providers.get(&("?".to_string(), a.provider_name.clone())));
            let Some(spec) = found else {
                warn!(app = %p.app, alert = %a.name, "AlertProvider {}/{} is not in the repository; alert {} is not sent", a.provider_namespace, a.provider_name, a.name);
                continue;
            };
            let mut spec = spec.clone();
            if spec.namespace.is_none() {
                spec.namespace = Some(a.provider_namespace.clone());
            }
            let read = secrets.map(|s| move |ns: &str, name: &str| s.read(ns, name));
            let read = read.as_ref().map(|f| f as _);
            match crate::core::spec::alert_provider::resolve(&spec, read) {
                Ok(mut target) => {
                    target.min_severity = a.severity;
                    targets.push(target);
                }
                Err(why) => warn!(app = %p.app, alert = %a.name, "{why}; alert not sent"),
            }
        }
        let failing = p
            .report
            .as_ref()
            .map(|r| {
                let hooks = r.hooks.iter().flat_map(|(kind, answers)| {
                    answers
                        .iter()
                        .filter(|h| !h.passed && *kind != HookType::Rollback)
                        .map(move |h| format!("{kind} {}: {}", h.name, h.message))
                });
                let checks = r
                    .checks
                    .iter()
                    .flatten()
                    .filter(|c| !c.passed())
                    .map(|c| c.describe());
                hooks.chain(checks).collect()
            })
            .unwrap_or_default();
        Alert {
            app: p.app.clone(),
            severity: *severity,
            message: message.clone(),
            phase: next.phase,
            canary_weight: next.canary_weight,
            failed_checks: next.failed_checks,
            threshold: canary.analysis.threshold,
            failing,
            commit: None,
            fields: vec![
                (
                    "Target".into(),
                    format!("Deployment/{}.{}", canary.target, canary.namespace),
                ),
                ("Traffic routing".into(), canary.analysis.strategy.describe()),
                ("Event".into(), step.event.clone()),
            ],
            targets,
        }
    });
    After {
        alert,
        calls,
        step: crate::core::alert::StepReport {
            app: p.app.clone(),
            phase: next.phase,
            canary_weight: next.canary_weight,
            event: step.event.clone(),
            revision: checksum,
            commit: String::new(),
        },
    }
}

/// weir's folders whose Canary is gone, when the record asks for it (`revertOnDeletion`):
/// the folder is removed, handing the routing back to the user's own objects. A folder is
/// an orphan only when nothing in its app folder is a Canary or could be one (a file with
/// errors), so that a broken Canary never removes weir's folder.
fn orphans(
    tree: &dyn SourceTree,
    catalog: &crate::repo::source::Catalog,
    resolved: &crate::repo::rules::Resolved,
) -> Vec<ChangeSet> {
    let _ = resolved;
    let mut claimed: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (c, _) in &catalog.canaries {
        claimed.insert(crate::repo::source::parent(&c.file).to_string());
    }
    for bad in &catalog.invalid {
        claimed.insert(crate::repo::source::parent(&bad.file).to_string());
    }
    for e in &catalog.errors {
        claimed.insert(crate::repo::source::parent(&e.file).to_string());
    }
    let mut out = Vec::new();
    for owned in &catalog.owned {
        let Some(app_dir) = owned.strip_suffix(crate::core::names::OWNED_SUFFIX) else {
            continue;
        };
        if claimed.contains(app_dir) {
            continue;
        }
        let path = format!("{owned}/{STATE_FILE}");
        let Ok(bytes) = tree.read(&path) else {
            continue;
        };
        let Ok(record) = record::parse(&path, &bytes) else {
            continue;
        };
        let Some((summary, details)) = plan::orphans::canary_deleted(&record.status) else {
            continue;
        };
        let app = AppRef {
            namespace: record.metadata.namespace.clone(),
            name: record.metadata.name.clone(),
            dir: app_dir.to_string(),
        };
        // A parent kustomization that lists the folder would fail to build without it: an
        // empty kustomization stays in its place.
        let parent = crate::repo::source::parent(owned);
        let folder = owned.rsplit('/').next().unwrap_or(owned);
        let listed = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
            .iter()
            .filter_map(|k| {
                let p = if parent.is_empty() {
                    k.to_string()
                } else {
                    format!("{parent}/{k}")
                };
                tree.read(&p).ok()
            })
            .any(|text| String::from_utf8_lossy(&text).contains(folder));
        let tree = listed.then(|| {
            let mut d = Dir::default();
            d.file(
                KUSTOMIZATION_FILE,
                format!("# The Canary of {}/{} was deleted (revertOnDeletion): weir's objects are gone.\n# Remove this folder from the kustomization that lists it, then this folder.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n", app.namespace, app.name),
            );
            d
        });
        info!(app = %app, "Canary deleted with revertOnDeletion: weir's folder removed");
        out.push(ChangeSet {
            remaining: Vec::new(),
            history: Vec::new(),
            review: None,
            dir: owned.clone(),
            events: vec![Event {
                app: app.clone(),
                phase: Phase::Succeeded,
                weight: Weight::ZERO,
                summary,
                details,
            }],
            tree,
            app,
        });
    }
    out
}

/// The call of one webhook: Flagger's payload, in which confirm-rollout, rollback,
/// post-rollout and event hooks get `phase` (the recorded phase, or the phase the step
/// reached), and the analysis hooks get `Progressing`, as Flagger sends them.
pub fn hook_call(
    canary: &Canary,
    hook: &crate::core::spec::Webhook,
    phase: &str,
    checksum: &str,
    metadata: std::collections::BTreeMap<String, String>,
) -> HookCall {
    let phase = match hook.kind {
        HookType::ConfirmRollout | HookType::Rollback | HookType::PostRollout | HookType::Event => {
            phase.to_string()
        }
        _ => "Progressing".to_string(),
    };
    HookCall {
        name: hook.name.clone(),
        url: hook.url.clone(),
        payload: HookPayload {
            name: canary.name.clone(),
            namespace: canary.namespace.clone(),
            phase,
            checksum: checksum.to_string(),
            metadata,
        },
        timeout: hook.timeout,
        retries: hook.retries,
        insecure_tls: hook.disable_tls,
    }
}
