//! Executing: each decided step becomes its app's change set (weir's whole folder rendered
//! from the record, the primary carried by id, the control file as the planner says), and
//! each orphan the planner names, its removal; every app's line says what was decided.
//!
//! Deterministic: it carries out decisions and must never make one (which step, which
//! alert, which folder goes, what the control file keeps are all the planner's).

use super::caches::IdleKey;
use super::gather::Pending;
use super::render::render_all;
use super::report::{fill, fmt_time, TickReport};
use super::tell::{resolve_routes, After};
use super::{AppError, Settings};
use crate::core::events::Event;
use crate::core::names::{owned_dir, REPLICAS_COMPONENT};
use crate::core::plan::effects::{self, Published};
use crate::core::plan::{self, Decision, Owned};
use crate::core::spec::Phase;
use crate::ports::Secrets;
use crate::repo::change::ChangeSet;
use crate::repo::kustomize::KUSTOMIZATION_FILES;
use crate::repo::objects::Dir;
use crate::repo::render::{Templates, KUSTOMIZATION_FILE};
use crate::repo::source::{parent, Catalog, SourceTree};
use tracing::{info, info_span, warn};

/// What executing the decisions on one head produced.
pub(super) struct Executed {
    /// One change set per app that moves, in the apps' order, then the orphans.
    pub(super) changes: Vec<ChangeSet>,
    /// Idle apps to remember once the change sets are published.
    pub(super) memos: Vec<(String, IdleKey)>,
    /// Alerts and post-rollout and event hooks, for once the steps are published.
    pub(super) after: Vec<After>,
    /// Every app is idle with nothing due.
    pub(super) quiet: bool,
    /// The Canary files of the apps whose step brings them to rest: idle with nothing due
    /// once it is on the branch.
    pub(super) at_rest: Vec<String>,
}

/// Renders every decided step into its change set and fills each app's line.
pub(super) fn execute(
    pending: Vec<Pending>,
    tree: &dyn SourceTree,
    catalog: &Catalog,
    templates: &Templates,
    settings: &Settings,
    secrets: Option<&dyn Secrets>,
    report: &mut TickReport,
) -> Executed {
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
                            p.source.as_ref(),
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
    let mut at_rest = Vec::new();
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
                let span = info_span!("app", app = %p.canary.name, namespace = %p.canary.namespace);
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
                    at_rest.push(p.canary.file.clone());
                }
                info!(
                    phase = %step.next.phase,
                    weight = step.next.canary_weight.get(),
                    failed_checks = step.next.failed_checks,
                    "{}",
                    step.event
                );
                let details = effects::commit_details(&step.details, p.report.as_ref());
                let history = step.next.history.clone();
                let published = Published {
                    app: &p.app,
                    canary: &p.canary,
                    before: p.state.as_ref(),
                    step,
                    revision: &p.source.revision,
                    report: p.report.as_ref(),
                };
                after.push(resolve_routes(
                    effects::effects(published, &catalog.providers, &settings.default_alerts),
                    secrets,
                ));
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
    // A scan of some apps finds no orphans: one appears only where every app is gathered.
    if !catalog.partial {
        changes.extend(orphans(tree, catalog));
    }
    Executed {
        changes,
        memos,
        after,
        quiet,
        at_rest,
    }
}

/// The removals of weir's folders whose Canary is gone, as the planner names them.
fn orphans(tree: &dyn SourceTree, catalog: &Catalog) -> Vec<ChangeSet> {
    let claims = catalog
        .canaries
        .iter()
        .map(|(c, _)| c.file.as_str())
        .chain(catalog.invalid.iter().map(|bad| bad.file.as_str()))
        .chain(catalog.errors.iter().map(|e| e.file.as_str()));
    let found = plan::orphans::orphans(
        claims,
        &catalog.owned,
        |path| tree.read(path).ok(),
        |folder| listed(tree, folder),
        |app_dir| lists_component(tree, app_dir),
    );
    found
        .into_iter()
        .map(|o| {
            info!(app = %o.app, "Canary deleted with revertOnDeletion: weir's folder removed");
            ChangeSet {
                remaining: Vec::new(),
                history: Vec::new(),
                review: None,
                dir: o.folder,
                events: vec![o.event],
                tree: (o.placeholder.is_some() || o.component.is_some()).then(|| {
                    let mut d = Dir::default();
                    if let Some(text) = o.placeholder {
                        d.file(KUSTOMIZATION_FILE, text);
                    }
                    if let Some(text) = o.component {
                        d.file(&format!("{REPLICAS_COMPONENT}/{KUSTOMIZATION_FILE}"), text);
                    }
                    d
                }),
                app: o.app,
            }
        })
        .collect()
}

/// Whether the kustomization of `app_dir` lists its replicas component.
fn lists_component(tree: &dyn SourceTree, app_dir: &str) -> bool {
    KUSTOMIZATION_FILES.iter().any(|k| {
        tree.read(&crate::repo::source::join(app_dir, k))
            .is_ok_and(|text| {
                crate::repo::replicas::lists_component(app_dir, &String::from_utf8_lossy(&text))
            })
    })
}

/// Whether a kustomization in the folder above weir's `folder` names it.
fn listed(tree: &dyn SourceTree, folder: &str) -> bool {
    let above = parent(folder);
    let name = folder.rsplit('/').next().unwrap_or(folder);
    KUSTOMIZATION_FILES
        .iter()
        .filter_map(|k| {
            let p = if above.is_empty() {
                k.to_string()
            } else {
                format!("{above}/{k}")
            };
            tree.read(&p).ok()
        })
        .any(|text| String::from_utf8_lossy(&text).contains(name))
}
