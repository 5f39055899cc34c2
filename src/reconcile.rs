//! One tick: gather every app's inputs through the adapters, ask the planner, carry out its
//! decisions as one commit, push it, and re-plan on the new head if someone pushed first.
//!
//! Decisions are made only in `plan.rs`; this module reads, queries, renders and writes.

use crate::app::{self, AppSource, Gate, Resolver};
use crate::git::{Cache, GitError, PushOutcome};
use crate::plan::{self, CheckResult, Decision, GateReport, Input};
use crate::prometheus;
use crate::render::{primary, Templates, PRIMARY_FILE, STATE_FILE};
use crate::source::{owned_dir, GitTree, Scanner, SourceError, SourceTree};
use crate::spec::{Canary, SpecError};
use crate::state::{self, State};
use chrono::{DateTime, Utc};
use git2::Oid;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, info_span, warn, Instrument};

/// What the tick needs besides the adapters.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Folders scanned for specs.
    pub roots: Vec<String>,
    /// Smallest analysis interval accepted.
    pub min_interval: Duration,
    /// The kustomize command (e.g. `kubectl kustomize`).
    pub kustomize: String,
    /// Push attempts before giving up on a tick.
    pub max_push_attempts: u32,
    /// Prepended to every commit subject.
    pub message_prefix: String,
}

/// Whether the tick pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Commit and push.
    Push,
    /// Build the commit and show it; push nothing.
    DryRun,
}

/// A tick that could not run at all (one app's problems never end up here).
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// Git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The tree could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Every push attempt was rejected.
    #[error("gave up after {attempts} push attempts: the branch kept moving under weir ({last}); nothing was overwritten, the next tick re-plans")]
    PushRace { attempts: u32, last: String },
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
    pub head: Option<Oid>,
    /// The commit made, if any.
    pub commit: Option<Oid>,
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
}

struct AppEvent {
    line: String,
    details: Vec<String>,
}

/// The wired engine: adapters plus the caches that make idle ticks cheap.
pub struct Engine {
    cache: Cache,
    prom: prometheus::Client,
    templates: Templates,
    scanner: Scanner,
    resolver: Resolver,
    settings: Settings,
    /// Apps seen idle, by Canary file: the ids that must change before weir looks again.
    idle: HashMap<String, (Option<Oid>, String, Option<Oid>)>,
    /// A head at which every app was idle with nothing due: the next tick at the same head
    /// has nothing to do, however many apps there are.
    quiet_head: Option<Oid>,
}

struct Pending {
    canary: Canary,
    source: Arc<AppSource>,
    gates: Vec<Gate>,
    state: Option<State>,
    decision: Decision,
    /// Index of the app's line in the report.
    line: usize,
}

impl Engine {
    /// Wires the adapters.
    pub fn new(
        cache: Cache,
        prom: prometheus::Client,
        templates: Templates,
        settings: Settings,
    ) -> Engine {
        let scanner = Scanner::new(&settings.roots, settings.min_interval);
        Engine {
            cache,
            prom,
            templates,
            scanner,
            resolver: Resolver::default(),
            settings,
            idle: HashMap::new(),
            quiet_head: None,
        }
    }

    /// Runs one tick: fetch, plan every app, commit, push; on a rejected push, fetch and
    /// plan again on the new head, up to the configured number of attempts.
    pub async fn tick(
        &mut self,
        mode: Mode,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> Result<TickReport, TickError> {
        let mut last_rejection = String::new();
        for attempt in 1..=self.settings.max_push_attempts.max(1) {
            let head = self.cache.fetch()?;
            let span = info_span!("tick", head = %short_oid(head), attempt);
            let _enter = span.enter();
            if self.quiet_head == Some(head) {
                debug!("head unchanged and nothing in flight");
                return Ok(TickReport {
                    head: Some(head),
                    attempts: attempt,
                    ..TickReport::default()
                });
            }
            let (changes, events, mut report, quiet) = self.plan_head(head, clock).await?;
            report.head = Some(head);
            report.attempts = attempt;
            if changes.is_empty() {
                debug!("nothing to commit");
                self.quiet_head = quiet.then_some(head);
                return Ok(report);
            }
            self.quiet_head = None;
            let message = self.message(&events);
            let now = clock();
            let Some(commit) = self.cache.commit(head, &changes, &message, now)? else {
                return Ok(report);
            };
            report.commit = Some(commit);
            report.message = Some(message.clone());
            if mode == Mode::DryRun {
                report.diff = Some(self.cache.diff(head, commit)?);
                return Ok(report);
            }
            match self.cache.push(head, commit)? {
                PushOutcome::Pushed => {
                    info!(commit = %short_oid(commit), subject = message.lines().next().unwrap_or(""), "pushed");
                    return Ok(report);
                }
                PushOutcome::Rejected(why) => {
                    warn!(attempt, reason = %why, "push rejected: the branch moved; fetching and re-planning on the new head");
                    last_rejection = why;
                    // Gate results and idle memos were for the old head: forget them.
                    self.idle.clear();
                    let backoff = Duration::from_millis(200u64 << attempt.min(5));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        Err(TickError::PushRace {
            attempts: self.settings.max_push_attempts,
            last: last_rejection,
        })
    }

    /// Every app's state as recorded at the head of the branch, without deciding anything.
    pub fn status(&mut self) -> Result<TickReport, TickError> {
        let head = self.cache.fetch()?;
        let repo = self.cache.repo();
        let tree = GitTree::new(repo, self.cache.tree_of(head)?);
        let catalog = self.scanner.scan(&tree)?;
        let mut report = TickReport {
            head: Some(head),
            spec_errors: catalog.errors.clone(),
            ..TickReport::default()
        };
        for (canary, _) in &catalog.canaries {
            let mut line = base_report(canary);
            match self.resolver.resolve(&tree, canary) {
                Ok(source) => {
                    line.dir = source.dir.clone();
                    match read_state(&tree, &source.dir) {
                        Ok(Some(s)) => {
                            fill(&mut line, canary, &s);
                            line.message = s.message.clone();
                        }
                        Ok(None) => line.message = "not initialized yet".into(),
                        Err(e) => line.errors.push(e),
                    }
                }
                Err(errors) => line.errors.extend(errors.iter().map(|e| e.to_string())),
            }
            report.apps.push(line);
        }
        report.apps.sort_by(|a, b| a.dir.cmp(&b.dir));
        Ok(report)
    }

    async fn plan_head(
        &mut self,
        head: Oid,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> Result<
        (
            BTreeMap<String, Option<Vec<u8>>>,
            Vec<AppEvent>,
            TickReport,
            bool,
        ),
        TickError,
    > {
        let repo = self.cache.repo();
        let tree = GitTree::new(repo, self.cache.tree_of(head)?);
        let catalog = self.scanner.scan(&tree)?;
        let mut report = TickReport {
            spec_errors: catalog.errors.clone(),
            ..TickReport::default()
        };
        for e in &catalog.errors {
            warn!(file = %e.file, line = e.line, field = %e.field, "{}", e.message);
        }

        // Two Canaries in one folder would fight over one owned folder.
        let mut per_dir: HashMap<String, usize> = HashMap::new();
        for (c, _) in &catalog.canaries {
            *per_dir
                .entry(crate::source::parent(&c.file).to_string())
                .or_default() += 1;
        }

        let now = clock();
        let mut pending = Vec::new();
        for (canary, _warnings) in &catalog.canaries {
            let span = info_span!("app", app = %canary.name, namespace = %canary.namespace);
            let _enter = span.enter();
            let mut line = base_report(canary);
            let dir = crate::source::parent(&canary.file).to_string();
            line.dir = dir.clone();
            if per_dir.get(&dir).copied().unwrap_or(0) > 1 {
                line.errors.push(format!(
                    "{}: more than one Canary in {dir}; weir needs one folder per app",
                    canary.file
                ));
                report.apps.push(line);
                continue;
            }
            let source = match self.resolver.resolve(&tree, canary) {
                Ok(s) => s,
                Err(errors) => {
                    for e in &errors {
                        warn!(file = %e.file, line = e.line, field = %e.field, "{}", e.message);
                    }
                    line.errors.extend(errors.iter().map(|e| e.to_string()));
                    report.apps.push(line);
                    continue;
                }
            };
            let owned = owned_dir(&source.dir);
            let idle_key = (
                tree.id(&canary.file),
                source.revision.clone(),
                tree.id(&owned),
            );
            if self.idle.get(&canary.file) == Some(&idle_key) {
                line.message = "unchanged since the last tick".into();
                report.apps.push(line);
                continue;
            }
            let gates = match app::gates(canary, &catalog.templates) {
                Ok(g) => g,
                Err(errors) => {
                    line.errors.extend(errors.iter().map(|e| e.to_string()));
                    report.apps.push(line);
                    continue;
                }
            };
            let state = match read_state(&tree, &source.dir) {
                Ok(s) => s,
                Err(e) => {
                    warn!("{e}");
                    line.errors.push(e);
                    report.apps.push(line);
                    continue;
                }
            };
            let decision = plan::plan(&Input {
                analysis: &canary.analysis,
                skip_analysis: canary.skip_analysis,
                suspend: canary.suspend,
                state: state.as_ref(),
                revision: &source.revision,
                gates: None,
                now,
            });
            if let Decision::Idle { wake_at: None, .. } = &decision {
                self.idle.insert(canary.file.clone(), idle_key);
            } else {
                self.idle.remove(&canary.file);
            }
            report.apps.push(line);
            pending.push(Pending {
                canary: canary.clone(),
                source,
                gates,
                state,
                decision,
                line: report.apps.len() - 1,
            });
        }

        // Run every due check at once, then decide again with the evidence.
        let mut jobs = tokio::task::JoinSet::new();
        for (i, p) in pending.iter().enumerate() {
            if let Decision::NeedGates { canary_weight } = p.decision {
                let client = self.prom.clone();
                let gates = p.gates.clone();
                let canary = p.canary.clone();
                let revision = p
                    .state
                    .as_ref()
                    .and_then(|s| s.canary_revision.clone())
                    .unwrap_or_default();
                let span = info_span!("app", app = %canary.name, namespace = %canary.namespace);
                jobs.spawn(
                    async move {
                        let checks = run_gates(&client, &canary, &gates).await;
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
        let gathered_at = clock();
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
                gates: Some(&gate_report),
                now: gathered_at,
            });
        }

        let quiet = pending
            .iter()
            .all(|p| matches!(p.decision, Decision::Idle { wake_at: None, .. }));
        let mut changes = BTreeMap::new();
        let mut events = Vec::new();
        for p in pending {
            let span = info_span!("app", app = %p.canary.name, namespace = %p.canary.namespace);
            let _enter = span.enter();
            let line = &mut report.apps[p.line];
            match self.carry_out(&tree, &p, line) {
                Ok(Some((files, event))) => {
                    changes.extend(files);
                    events.push(event);
                }
                Ok(None) => {}
                Err(e) => {
                    warn!("{e}");
                    line.errors.push(e);
                }
            }
        }
        report.apps.sort_by(|a, b| a.dir.cmp(&b.dir));
        Ok((changes, events, report, quiet))
    }

    /// Renders the files of one decision; returns the changed files and the event.
    #[allow(clippy::type_complexity)]
    fn carry_out(
        &self,
        tree: &GitTree,
        p: &Pending,
        line: &mut AppReport,
    ) -> Result<Option<(BTreeMap<String, Option<Vec<u8>>>, AppEvent)>, String> {
        let owned = owned_dir(&p.source.dir);
        let existing_primary = tree
            .read(&format!("{owned}/{PRIMARY_FILE}"))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).to_string());
        let (next, event, details, snapshot) = match &p.decision {
            Decision::Write(step) => (
                step.next.clone(),
                Some(step.event.clone()),
                step.details.clone(),
                step.snapshot,
            ),
            Decision::Idle { reason, wake_at } => {
                line.message = reason.clone();
                if let Some(s) = &p.state {
                    fill(line, &p.canary, s);
                }
                line.next_step_at = wake_at.map(fmt_time);
                match &p.state {
                    // Re-render in place: a changed Canary (hosts, retries...) or template
                    // shows up as a routing update without moving the rollout.
                    Some(s) => (s.clone(), None, Vec::new(), existing_primary.is_none()),
                    None => return Ok(None),
                }
            }
            Decision::NeedGates { .. } => {
                line.message = "checks could not be run".into();
                return Ok(None);
            }
        };
        let mut next = next;
        let primary_text = if snapshot {
            let snap = self.snapshot(tree, &p.canary, &p.source, &next)?;
            next.primary_images = snap.images.clone();
            snap.text
        } else {
            existing_primary.unwrap_or_default()
        };
        let files = self
            .templates
            .render_app(&p.canary, &p.source.selector, &next, &primary_text)
            .map_err(|e| e.to_string())?;
        let mut changes = BTreeMap::new();
        for (name, text) in files {
            let path = format!("{owned}/{name}");
            let current = tree.read(&path).ok();
            if current.as_deref() != Some(text.as_bytes()) {
                changes.insert(path, Some(text.into_bytes()));
            }
        }
        fill(line, &p.canary, &next);
        if changes.is_empty() {
            return Ok(None);
        }
        let event = match event {
            Some(e) => e,
            None => {
                // Only the rendering changed; the record stays as it was.
                changes.remove(&format!("{owned}/{STATE_FILE}"));
                if changes.is_empty() {
                    return Ok(None);
                }
                "routing updated to match the Canary spec".to_string()
            }
        };
        line.message = event.clone();
        info!(
            phase = %next.phase,
            weight = next.canary_weight.get(),
            failed_checks = next.failed_checks,
            "{event}"
        );
        Ok(Some((
            changes,
            AppEvent {
                line: format!("{}: {event}", p.canary.name),
                details,
            },
        )))
    }

    fn snapshot(
        &self,
        tree: &GitTree,
        canary: &Canary,
        source: &AppSource,
        next: &State,
    ) -> Result<primary::Snapshot, String> {
        let dir =
            tempfile::tempdir().map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        app::materialize(tree, &source.closure, dir.path()).map_err(|e| e.to_string())?;
        let built = crate::kustomize::build(&self.settings.kustomize, dir.path(), &source.dir)
            .map_err(|e| e.to_string())?;
        primary::snapshot(&built, canary, &source.dir, &next.promoted_revision)
            .map_err(|e| e.to_string())
    }

    fn message(&self, events: &[AppEvent]) -> String {
        let prefix = &self.settings.message_prefix;
        let mut msg = String::new();
        match events {
            [one] => {
                msg.push_str(&format!("{prefix}{}\n", one.line));
                if !one.details.is_empty() {
                    msg.push('\n');
                    for d in &one.details {
                        msg.push_str(&format!("  {d}\n"));
                    }
                }
            }
            many => {
                msg.push_str(&format!("{prefix}weir: {} rollouts moved\n\n", many.len()));
                for e in many {
                    msg.push_str(&format!("{}\n", e.line));
                    for d in &e.details {
                        msg.push_str(&format!("  {d}\n"));
                    }
                }
            }
        }
        msg
    }
}

async fn run_gates(
    client: &prometheus::Client,
    canary: &Canary,
    gates: &[Gate],
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for gate in gates {
        let vars = prometheus::QueryVars {
            namespace: &canary.namespace,
            target: &canary.target,
            interval: &gate.interval,
            variables: &gate.variables,
        };
        let value = match prometheus::render(&gate.template, &vars) {
            Err(e) => Err(e.to_string()),
            Ok(query) => {
                let address = gate
                    .address
                    .clone()
                    .or_else(|| client.settings().default_address.clone());
                match address {
                    None => Err("no Prometheus address: set --prometheus (WEIR_PROMETHEUS) or the MetricTemplate's provider.address".to_string()),
                    Some(address) => match client.query(&address, &query).await {
                        Ok(v) => Ok(v),
                        Err(e) => {
                            warn!(metric = %gate.name, query = %query, "{e}");
                            Err(match e {
                                prometheus::PromError::NoData => "no data".to_string(),
                                other => format!("error: {other}"),
                            })
                        }
                    },
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
        out.push(check);
    }
    out
}

fn read_state(tree: &dyn SourceTree, app_dir: &str) -> Result<Option<State>, String> {
    let path = format!("{}/{STATE_FILE}", owned_dir(app_dir));
    match tree.read(&path) {
        Ok(bytes) => state::parse(&path, &bytes)
            .map(|r| Some(r.status))
            .map_err(|e| {
                format!("{e}; weir leaves the app alone until the record is fixed or removed")
            }),
        Err(SourceError::Missing(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
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

fn short_oid(oid: Oid) -> String {
    oid.to_string()[..7].to_string()
}
