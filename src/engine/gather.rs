//! Gathering, per app: its Canary and gates, the record weir keeps in Git (from history when
//! it is missing at the head), the control file, the source its primary comes from, and how
//! weir's folder compares with what the record implies.
//!
//! It reads the repository only. One app's problem goes to that app's line and leaves the
//! others alone; it must never decide a step (that is the planner's) or write anything.

use super::caches::{Caches, IdleKey};
use super::memo::{MemoApp, Scope};
use super::render::render_all;
use super::report::{base_report, Base, TickReport};
use super::{AppError, Settings, TickError};
use crate::core::app::AppRef;
use crate::core::cluster::ClusterState;
use crate::core::control::{Control, CONTROL_FILE};
use crate::core::names::{owned_dir, STATE_FILE};
use crate::core::plan::{Decision, GateReport, Input, Owned};
use crate::core::record::{self, State};
use crate::core::spec::Canary;
use crate::core::text::short;
use crate::ports::ConfigRepo;
use crate::repo::kustomize::{self, AppSource, Gate, Resolver};
use crate::repo::objects::{Dir, ObjectId};
use crate::repo::render::{Templates, GUARDS_FILE, KUSTOMIZATION_FILE, PRIMARY_DIR};
use crate::repo::rules::claims;
use crate::repo::source::{parent, Catalog, SourceError, SourceTree};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tracing::{debug, info, info_span, warn};

/// One app on its way through a tick: what was gathered, then what was decided.
pub(super) struct Pending {
    pub(super) canary: Canary,
    pub(super) app: AppRef,
    pub(super) source: Arc<AppSource>,
    pub(super) gates: Vec<Gate>,
    pub(super) state: Option<State>,
    pub(super) recovered: Option<ObjectId>,
    pub(super) owned_id: Option<ObjectId>,
    pub(super) primary: Option<Arc<AppSource>>,
    pub(super) idle_key: IdleKey,
    pub(super) decision: Decision,
    pub(super) owned: Owned,
    /// When gates were last looked at for this revision without a step following.
    pub(super) last_look: Option<DateTime<Utc>>,
    /// The control file's requests, and its text as found at the head.
    pub(super) control: Control,
    pub(super) control_text: Option<String>,
    /// Evidence gathered this tick.
    pub(super) report: Option<GateReport>,
    /// What the cluster runs of the app ([`ClusterState::Unknown`] until looked at, and
    /// always without a cluster view).
    pub(super) cluster: ClusterState,
    /// Set when gathering found a reason to leave the app alone.
    pub(super) blocked: bool,
    pub(super) line: usize,
}

impl Pending {
    /// The planner's input for the app, without evidence.
    pub(super) fn input<'a>(&'a self, head: &'a str, now: DateTime<Utc>) -> Input<'a> {
        Input {
            analysis: &self.canary.analysis,
            skip_analysis: self.canary.skip_analysis,
            suspend: self.canary.suspend,
            state: self.state.as_ref(),
            revision: &self.source.revision,
            head,
            images: &self.source.images,
            owned: &self.owned,
            control: &self.control,
            gates: None,
            last_look: self.last_look,
            revert_on_deletion: self.canary.revert_on_deletion,
            cluster: &self.cluster,
            now,
        }
    }
}

/// What gathering found at one head.
pub(super) struct Gathered {
    /// Everything the scan found (a part of the tree when the scope is some apps).
    pub(super) catalog: Catalog,
    /// Every app for the next tick's memo (the carried ones included), and whether a rule
    /// across apps refused any.
    pub(super) memo: Vec<MemoApp>,
    pub(super) across: bool,
    /// The apps to decide on.
    pub(super) pending: Vec<Pending>,
    /// A line for every app, errors filled in.
    pub(super) report: TickReport,
}

/// Gathers the apps of `scope` in the tree at `head`; `None` when gathering found that the
/// scope cannot be trusted (a Canary gone, renamed or claiming something new): then gather
/// every app.
#[allow(clippy::too_many_arguments)]
pub(super) fn gather(
    repo: &dyn ConfigRepo,
    tree: &dyn SourceTree,
    head: ObjectId,
    caches: &mut Caches,
    settings: &Settings,
    templates: &Templates,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<Option<Gathered>, TickError> {
    let started = std::time::Instant::now();
    let scanner = caches.scanner.as_mut().expect("made in new");
    let catalog = match scope {
        Scope::All => scanner.scan(tree)?,
        Scope::Some {
            files, spec_files, ..
        } => scanner.scan_files(tree, &[files.as_slice(), spec_files].concat())?,
    };
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
    let claims: Vec<u64> = canaries
        .iter()
        .map(|c| claims(c, resolved.sources.get(&c.file).map(|s| s.as_ref())))
        .collect();
    if let Scope::Some {
        files, claims: was, ..
    } = scope
    {
        if !fits(&catalog, &claims, &resolved, files, was) {
            debug!("a Canary is gone, renamed or claims something new: gathering every app");
            return Ok(None);
        }
    }
    let mut memo: Vec<MemoApp> = catalog
        .canaries
        .iter()
        .zip(&claims)
        .map(|((c, _), claims)| memo_app(c, *claims, resolved.sources.get(&c.file)))
        .collect();

    let mut pending: Vec<Pending> = Vec::new();
    for (i, (canary, _warnings)) in catalog.canaries.iter().enumerate() {
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
            line.message = UNCHANGED.into();
            report.apps.push(line);
            memo[i].settled = true;
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
            last_look: None,
            cluster: ClusterState::Unknown,
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
                    p.source.as_ref(),
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
        p.last_look = caches.last_look(&p.canary.file, &p.source.revision);
        ready.push(p);
    }
    if let Scope::Some { carried, .. } = scope {
        for app in carried {
            let mut line = app.base.line();
            line.message = UNCHANGED.into();
            report.apps.push(line);
        }
        memo.extend(carried.iter().cloned());
    }
    debug!(
        scan_ms = scanned.as_millis() as u64,
        gather_ms = started.elapsed().as_millis() as u64,
        gathered = ready.len(),
        partial = matches!(scope, Scope::Some { .. }),
        "gathered"
    );
    Ok(Some(Gathered {
        catalog,
        memo,
        across: resolved.across,
        pending: ready,
        report,
    }))
}

/// The line of an app whose inputs did not change since it was idle.
const UNCHANGED: &str = "unchanged since the last tick";

/// Whether what a scan of some apps found is what the memo knew: every Canary file still
/// holds a Canary (or an invalid one), each valid one claims what it claimed, and no rule
/// across apps refused any.
fn fits(
    catalog: &Catalog,
    claims: &[u64],
    resolved: &crate::repo::rules::Resolved,
    files: &[String],
    was: &HashMap<String, u64>,
) -> bool {
    let found: HashSet<&str> = catalog
        .canaries
        .iter()
        .map(|(c, _)| c.file.as_str())
        .chain(catalog.invalid.iter().map(|bad| bad.file.as_str()))
        .chain(catalog.errors.iter().map(|e| e.file.as_str()))
        .collect();
    !resolved.across
        && files.iter().all(|f| found.contains(f.as_str()))
        && catalog
            .canaries
            .iter()
            .zip(claims)
            .all(|((c, _), claims)| was.get(&c.file) == Some(claims))
}

/// An app as the memo keeps it (not settled until found idle).
fn memo_app(canary: &Canary, claims: u64, source: Option<&Arc<AppSource>>) -> MemoApp {
    let dir = parent(&canary.file).to_string();
    let mut deps = vec![owned_dir(&dir), dir];
    if let Some(source) = source {
        deps.extend(source.closure.iter().map(|e| e.path.clone()));
    }
    deps.sort();
    deps.dedup();
    MemoApp {
        file: canary.file.clone(),
        claims,
        deps,
        base: Base::of(canary),
        settled: false,
    }
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
            let leave = |e: crate::core::located::LocatedError| {
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
