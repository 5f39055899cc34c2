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

use crate::app::{self, AppSource, Gate, Resolver};
use crate::events::Event;
use crate::plan::{self, CheckResult, Decision, GateReport, Input, Owned};
use crate::ports::{
    AppRef, ChangeSet, Clock, ConfigRepo, MetricSource, Publication, Publisher, RepoError,
};
use crate::render::{Templates, GUARDS_FILE, KUSTOMIZATION_FILE, PRIMARY_DIR, STATE_FILE};
use crate::source::{owned_dir, Scanner, SourceError, SourceTree};
use crate::spec::{Canary, SpecError};
use crate::state::{self, Phase, State};
use crate::tree::{Dir, ObjectId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
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
}

impl Engine {
    /// Wires the engine.
    pub fn new(ports: Ports, templates: Templates, settings: Settings) -> Engine {
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
            let publication = span.in_scope(|| {
                self.ports
                    .publisher
                    .publish(self.ports.repo.as_mut(), head, &planned.changes, now)
            })?;
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
                    self.tell(&[]).await;
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

    /// Delivers alerts; a slow or failing notifier never holds a tick for long.
    async fn tell(&self, alerts: &[crate::ports::Alert]) {
        for a in alerts {
            let delivered =
                tokio::time::timeout(Duration::from_secs(30), self.ports.notifier.notify(a)).await;
            if delivered.is_err() {
                warn!(app = %a.app, "the notifier did not finish within 30s; the event is in the log and the commit");
            }
        }
    }

    /// Every app's state as recorded at the head of the branch, without deciding anything.
    pub fn status(&mut self) -> Result<TickReport, TickError> {
        let head = self.ports.repo.fetch()?;
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
        let resolved = crate::rules::resolve_all(tree, &canaries, &mut self.caches.resolver);
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
                    if let Err(errors) = app::gates(canary, &catalog.templates) {
                        line.errors.extend(errors.iter().map(|e| e.to_string()));
                    }
                    // Checked as `step` checks it, times included: what `step` would
                    // refuse shows here as the app's error.
                    let now = Some(self.ports.clock.now());
                    match read_state(tree, &source.dir, canary, now) {
                        Ok(Some(s)) => {
                            fill(&mut line, canary, &s);
                            line.message = s.message.clone();
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

    async fn plan_head(&mut self, head: ObjectId) -> Result<Planned, TickError> {
        let repo: &dyn ConfigRepo = self.ports.repo.as_ref();
        let caches = &mut self.caches;
        let settings = &self.settings;
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
        let resolved = crate::rules::resolve_all(tree, &canaries, &mut caches.resolver);
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
            let gates = match app::gates(canary, &catalog.templates) {
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
            report.apps.push(line);
            pending.push(Pending {
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
                    (Some(state), Some(primary), None) => {
                        Some((&p.canary, &p.source.selector, state, primary.as_ref()))
                    }
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
            p.decision = plan::plan(&Input {
                analysis: &p.canary.analysis,
                skip_analysis: p.canary.skip_analysis,
                suspend: p.canary.suspend,
                state: p.state.as_ref(),
                revision: &p.source.revision,
                head: &head_hex,
                images: &p.source.images,
                owned: &p.owned,
                gates: None,
                now,
            });
            ready.push(p);
        }
        let mut pending = ready;
        debug!(
            scan_ms = scanned.as_millis() as u64,
            gather_ms = started.elapsed().as_millis() as u64,
            "gathered"
        );

        // Evidence: every due gate at once, bounded, then decide again with it.
        let limit = Arc::new(tokio::sync::Semaphore::new(
            settings.gate_concurrency.max(1),
        ));
        let mut jobs = tokio::task::JoinSet::new();
        for (i, p) in pending.iter().enumerate() {
            if let Decision::NeedGates { canary_weight } = p.decision {
                let metrics = self.ports.metrics.clone();
                let gates = p.gates.clone();
                let canary = p.canary.clone();
                let limit = limit.clone();
                let revision = p
                    .state
                    .as_ref()
                    .and_then(|s| s.canary_revision.clone())
                    .unwrap_or_default();
                let span = info_span!("app", app = %canary.name, namespace = %canary.namespace);
                jobs.spawn(
                    async move {
                        let checks = run_gates(metrics.as_ref(), &limit, &canary, &gates).await;
                        (i, revision, canary_weight, checks)
                    }
                    .instrument(span),
                );
            }
        }
        let mut results = Vec::new();
        while let Some(joined) = jobs.join_next().await {
            if let Ok(r) = joined {
                results.push(r);
            }
        }
        let gathered_at = self.ports.clock.now();
        for (i, revision, canary_weight, checks) in results {
            let p = &mut pending[i];
            let gate_report = GateReport {
                revision,
                canary_weight,
                at: gathered_at,
                checks,
            };
            p.decision = plan::plan(&Input {
                analysis: &p.canary.analysis,
                skip_analysis: p.canary.skip_analysis,
                suspend: p.canary.suspend,
                state: p.state.as_ref(),
                revision: &p.source.revision,
                head: &head_hex,
                images: &p.source.images,
                owned: &p.owned,
                gates: Some(&gate_report),
                now: gathered_at,
            });
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
                        primary.map(|primary| {
                            (&p.canary, &p.source.selector, &step.next, primary.as_ref())
                        })
                    }
                    _ => None,
                })
                .collect(),
        );
        let mut changes = Vec::new();
        let mut memos = Vec::new();
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
                    changes.push(ChangeSet {
                        dir: owned_dir(&p.source.dir),
                        tree: Some(dir),
                        events: vec![Event {
                            app: p.app.clone(),
                            phase: step.next.phase,
                            weight: step.next.canary_weight,
                            summary: step.summary.clone(),
                            details: step.details.clone(),
                        }],
                        app: p.app,
                    });
                }
            }
        }
        report.apps.extend(invalid_lines(&catalog));
        report
            .apps
            .sort_by(|a, b| a.dir.cmp(&b.dir).then(a.app.cmp(&b.app)));
        Ok(Planned {
            changes,
            report,
            quiet,
            memos,
        })
    }
}

/// One folder to render: the Canary, its selector, the record and the primary's source.
type RenderJob<'a> = Option<(
    &'a Canary,
    &'a crate::render::Selector,
    &'a State,
    &'a AppSource,
)>;

/// Renders weir's folder for each job on every core, with its id; `None` for no job.
fn render_all(
    templates: &Templates,
    jobs: Vec<RenderJob>,
) -> Vec<Option<Result<(Dir, ObjectId), crate::render::RenderError>>> {
    let render = |job: &RenderJob| {
        job.map(|(canary, selector, state, primary)| {
            templates
                .render_owned(canary, selector, state, primary)
                .map(|dir| {
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
            match state::parse(&path, &bytes) {
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
                plan::short(&state.promoted_revision),
                commit.short(7),
                plan::short(&source.revision),
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
        plan::short(&state.promoted_revision),
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
        let vars = crate::prometheus::QueryVars {
            namespace: &canary.namespace,
            target: &canary.target,
            interval: &gate.interval,
            variables: &gate.variables,
        };
        let value = match crate::prometheus::render(&gate.template, &vars) {
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
    futures_join_all(queries).await
}

/// Runs futures concurrently and keeps their order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut handles: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..handles.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, h) in handles.iter_mut().enumerate() {
            if out[i].is_none() {
                match h.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
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
            let leave = |e: state::StateError| {
                AppError::Record(format!(
                    "{e}; weir leaves the app alone until the record is fixed or removed"
                ))
            };
            let record = state::parse(&path, &bytes).map_err(leave)?;
            state::check_owner(&path, &bytes, &record, &canary.namespace, &canary.name)
                .map_err(leave)?;
            if let Some(now) = now {
                state::check_times(&path, &bytes, &record, now).map_err(leave)?;
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
        dir: crate::source::parent(&canary.file).to_string(),
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
    }
}

/// Lines for Canary documents that could not be read: every app found is reported.
fn invalid_lines(catalog: &crate::source::Catalog) -> Vec<AppReport> {
    catalog
        .invalid
        .iter()
        .map(|bad| AppReport {
            app: bad.display_name(),
            dir: crate::source::parent(&bad.file).to_string(),
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
        })
        .collect()
}

fn fill(line: &mut AppReport, canary: &Canary, s: &State) {
    line.phase = Some(s.phase.to_string());
    line.canary_weight = Some(s.canary_weight.get());
    line.primary_weight = Some(s.canary_weight.complement().get());
    line.failed_checks = Some(s.failed_checks);
    line.canary_revision = s
        .canary_revision
        .as_deref()
        .map(|r| plan::short(r).to_string());
    line.primary_revision = Some(plan::short(&s.promoted_revision).to_string());
    line.primary_images = s.primary_images.clone();
    if s.phase.in_flight() {
        line.next_step_at = Some(fmt_time(plan::due_at(&canary.analysis, s)));
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
