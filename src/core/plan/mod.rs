//! The planner: every rollout decision weir can make, and nothing else.
//!
//! One pure function, [`plan`], maps (spec, recorded state, current revision, the state of
//! weir's own files, the requests in the control file, evidence gathered so far, now) to the
//! next step: initialise, wait for a gate, advance, halt, roll back, promote, finalise, and
//! repair weir's files from the record. It reads no clock, file, socket or environment.
//!
//! Evidence is asked for, not assumed: when a decision needs metric values or webhook
//! answers, the planner returns [`Decision::NeedGates`] naming them, and the engine calls it
//! again with what it gathered (confirm gates are asked only once the analysis has passed,
//! as Flagger asks them). Strategies follow Flagger's: canary (stepWeight, stepWeights,
//! optionally one mirrored step first, optionally sticky sessions), A/B testing (match and
//! iterations), Blue/Green (iterations, optionally mirrored). Where weir differs it says so
//! next to the rule.
//!
//! The rest of the planner, one decision a file: `gates.rs` (the one loop that asks for
//! evidence, the order webhooks are asked in, the call each gets), `effects.rs` (what a
//! published step triggers: its alert and where it goes, post-rollout and event calls),
//! `orphans.rs` (revertOnDeletion), `control.rs` (the control file's requests and what a
//! step leaves of them) and `rehearse.rs` (the steps a release takes when every gate passes).

pub mod control;
pub mod effects;
pub mod gates;
pub mod orphans;
pub mod rehearse;

use crate::core::cluster::{ClusterState, Readiness};
use crate::core::control::Control;
use crate::core::record::{Interval, Reading, State, MAX_INTERVALS};
use crate::core::spec::{AlertSeverity, Analysis, HookType, Phase, Steps, Strategy, Weight};
use crate::core::text::short;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use std::collections::BTreeMap;

/// The value one metric returned, with its bounds; the planner judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// Metric name, as in the Canary.
    pub name: String,
    /// The value, or why there is none (no data, HTTP error, timeout...).
    pub value: Result<f64, String>,
    /// Inclusive lower bound.
    pub min: Option<f64>,
    /// Inclusive upper bound.
    pub max: Option<f64>,
    /// There is no value because the metrics server could not be reached (not because of
    /// anything the canary did): the step waits, up to the analysis' outage grace.
    pub unreachable: bool,
}

impl CheckResult {
    /// Passes only with a finite value inside every bound. No data, NaN and errors fail.
    pub fn passed(&self) -> bool {
        match self.value {
            Ok(v) if v.is_finite() => {
                self.min.is_none_or(|min| v >= min) && self.max.is_none_or(|max| v <= max)
            }
            _ => false,
        }
    }

    /// `request-success-rate 91.3 < 99`, as in logs and commit messages.
    pub fn describe(&self) -> String {
        let need = bound(self.min, self.max);
        let v = match &self.value {
            Err(why) => return format!("{} {why} (need {need})", self.name),
            Ok(v) if v.is_nan() => return format!("{} NaN (need {need})", self.name),
            Ok(v) if !v.is_finite() => {
                return match (self.min, self.max) {
                    (_, Some(hi)) if *v > 0.0 => format!("{} {v} > {}", self.name, number(hi)),
                    (Some(lo), _) if *v < 0.0 => format!("{} {v} < {}", self.name, number(lo)),
                    _ => format!("{} {v} is not a finite number", self.name),
                }
            }
            Ok(v) => *v,
        };
        let name = &self.name;
        if let Some(lo) = self.min.filter(|lo| v < *lo) {
            let (v, lo) = distinct(v, lo);
            return format!("{name} {v} < {lo}");
        }
        if let Some(hi) = self.max.filter(|hi| v > *hi) {
            let (v, hi) = distinct(v, hi);
            return format!("{name} {v} > {hi}");
        }
        match (self.min, self.max) {
            (Some(lo), _) => format!("{name} {} >= {}", number(v), number(lo)),
            (None, Some(hi)) => format!("{name} {} <= {}", number(v), number(hi)),
            (None, None) => format!("{name} {}", number(v)),
        }
    }
}

/// Prints a value and its bound so that they never look equal when they are not.
fn distinct(v: f64, bound: f64) -> (String, String) {
    let (a, b) = (number(v), number(bound));
    if a == b {
        (format!("{v}"), format!("{bound}"))
    } else {
        (a, b)
    }
}

/// What a value must be: `>= 99`, `<= 500`, `1 <= x <= 5`, or `no bound`.
pub fn bound(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("{} <= x <= {}", number(lo), number(hi)),
        (Some(lo), None) => format!(">= {}", number(lo)),
        (None, Some(hi)) => format!("<= {}", number(hi)),
        (None, None) => "no bound".to_string(),
    }
}

/// Prints a number with at most two decimals and no trailing zeros.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// What one webhook answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookResult {
    /// The hook's name in the Canary.
    pub name: String,
    /// 200-202.
    pub passed: bool,
    /// Why it failed (or `passed`), one bounded line.
    pub message: String,
    /// `muteAlert` of the hook.
    pub mute_alert: bool,
}

/// Evidence gathered for one revision at one weight at one time: metric values and webhook
/// answers, each only if it was asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GateReport {
    /// The revision the evidence is about.
    pub revision: String,
    /// The canary weight while it was gathered.
    pub canary_weight: Weight,
    /// When it was gathered.
    pub at: DateTime<Utc>,
    /// One result per metric of the analysis, when the metrics were run.
    pub checks: Option<Vec<CheckResult>>,
    /// Per webhook type that was called: the answers in order, up to the first failure.
    pub hooks: BTreeMap<HookType, Vec<HookResult>>,
}

impl GateReport {
    /// The first failed hook of a type, if it was called and one failed.
    fn failed_hook(&self, kind: HookType) -> Option<&HookResult> {
        self.hooks.get(&kind)?.iter().find(|h| !h.passed)
    }

    /// The first passed hook of a type (rollback hooks roll back when one passes).
    fn passed_hook(&self, kind: HookType) -> Option<&HookResult> {
        self.hooks.get(&kind)?.iter().find(|h| h.passed)
    }
}

/// How weir's folder for the app compares with what the record implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// Exactly what the record implies (or no record yet).
    Current,
    /// The record is intact, but other files differ (a hand edit, a deleted file, a changed
    /// Canary or template). `primary` says whether the primary's part differs.
    Stale {
        /// The primary (its kustomization, guards or carried source) differs.
        primary: bool,
    },
    /// The record was missing at the head and was read from this earlier commit instead.
    Recovered {
        /// The commit the record was read from.
        from: String,
    },
}

/// What the planner needs to know about the app.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The analysis settings of the Canary.
    pub analysis: &'a Analysis,
    /// `skipAnalysis`.
    pub skip_analysis: bool,
    /// `suspend`.
    pub suspend: bool,
    /// The record in Git; `None` when the app has never been initialised.
    pub state: Option<&'a State>,
    /// The app's source revision now.
    pub revision: &'a str,
    /// The commit being planned on; a primary derived now is derived from it.
    pub head: &'a str,
    /// The images the app's build gives its target now (for the record of the primary).
    pub images: &'a [String],
    /// weir's folder compared with what the record implies.
    pub owned: &'a Owned,
    /// What people asked in the control file.
    pub control: &'a Control,
    /// Evidence gathered so far in this tick, if any.
    pub gates: Option<&'a GateReport>,
    /// When evidence was last gathered for this revision without a step following (a
    /// closed gate): the next look is an interval later. Kept in memory by the engine.
    pub last_look: Option<DateTime<Utc>>,
    /// `revertOnDeletion`, kept in the record.
    pub revert_on_deletion: bool,
    /// What the cluster runs of the app ([`ClusterState::Unknown`] without a cluster view).
    pub cluster: &'a ClusterState,
    /// The time of the decision.
    pub now: DateTime<Utc>,
}

/// The next step.
// One decision per app per tick, consumed at once: not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Nothing to write.
    Idle {
        /// Why, for logs and `status`.
        reason: String,
        /// When something may be due, if known.
        wake_at: Option<DateTime<Utc>>,
    },
    /// Evidence is needed: run what is named at this weight and call again with the report.
    NeedGates {
        /// The weight the evidence must observe.
        canary_weight: Weight,
        /// Run the metric checks.
        metrics: bool,
        /// Call the webhooks of these types, in this order.
        hooks: Vec<HookType>,
    },
    /// Write this record, and the routing and primary it implies.
    Write(Step),
}

/// A step to commit. The executor renders weir's whole folder from `next`: the routing from
/// its weights, the primary from the source at `next.promoted_commit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The record to write.
    pub next: State,
    /// The event, like Flagger's event log: `advance canary weight 10 -> 20`; also the
    /// record's message.
    pub event: String,
    /// The event short enough for a commit subject (the same text when it already is).
    pub summary: String,
    /// Details for the commit body: each check and its value.
    pub details: Vec<String>,
    /// The alert this step sends, in Flagger's words, if any.
    pub alert: Option<(AlertSeverity, String)>,
    /// The step starts a retry the control file asked for; the request is removed with it.
    pub retried: bool,
}

/// Decides the next step of one app.
pub fn plan(input: &Input) -> Decision {
    // Flagger checks suspend before anything else, initialization included; weir repairs
    // nothing while suspended (or paused) either.
    if input.suspend {
        return idle("suspended by spec.suspend", None);
    }
    if input.control.paused {
        return idle("paused by the control file (weir resume to go on)", None);
    }
    let Some(state) = input.state else {
        if *input.cluster != ClusterState::Unknown {
            return adopt(input);
        }
        let mut next = fresh(Phase::Initialized, input.revision, input.now);
        next.promoted_commit = Some(input.head.to_string());
        next.primary_images = input.images.to_vec();
        next.revert_on_deletion = input.revert_on_deletion;
        let mut step = step(
            next,
            "initialization done, primary serves all traffic".to_string(),
            Vec::new(),
        );
        step.alert = Some((
            AlertSeverity::Info,
            "New Deployment detected, initialization completed.".to_string(),
        ));
        return Decision::Write(step);
    };
    let mut decision = decide(input, state);
    // The record keeps the Canary's revertOnDeletion, for when the Canary is gone.
    if let Decision::Write(s) = &mut decision {
        s.next.revert_on_deletion = input.revert_on_deletion;
    }
    // weir's own files are put back before any evidence is gathered against them, from the
    // record (never from the current tree); a step that writes renders them anyway.
    match (&decision, input.owned) {
        (Decision::Write(_), _) => decision,
        (_, Owned::Recovered { from }) => write(
            stepped_keep_time(state, input),
            format!("rollout record restored from commit {}", short(from)),
            vec![format!(
                "{} was missing; the record weir last wrote is restored, and the rollout goes on from it",
                crate::core::names::STATE_FILE
            )],
        ),
        (_, Owned::Stale { primary: true }) => write(
            stepped_keep_time(state, input),
            format!(
                "primary restored to revision {}",
                short(&state.promoted_revision)
            ),
            vec![
                "weir's files differed from the rollout record; they are rendered again from it"
                    .to_string(),
            ],
        ),
        (_, Owned::Stale { primary: false }) => write(
            stepped_keep_time(state, input),
            "routing rendered again from the Canary spec".to_string(),
            Vec::new(),
        ),
        (_, Owned::Current) if state.revert_on_deletion != input.revert_on_deletion => write(
            stepped_keep_time(state, input),
            format!(
                "rollout record updated: revertOnDeletion is now {}",
                input.revert_on_deletion
            ),
            Vec::new(),
        ),
        (_, Owned::Current) => decision,
    }
}

/// The first step with a cluster view: the primary is created while the target's pods keep
/// all traffic (the canary's routes at 100, the apex Service on the target's pods), so that
/// nothing routes to the primary before it is ready (Flagger's Initializing phase).
fn adopt(input: &Input) -> Decision {
    let mut next = fresh(Phase::Initializing, input.revision, input.now);
    next.promoted_commit = Some(input.head.to_string());
    next.primary_images = input.images.to_vec();
    next.revert_on_deletion = input.revert_on_deletion;
    next.canary_weight = Weight::FULL;
    write_short(
        next,
        "initializing: primary created, traffic stays on the target until the primary is ready"
            .to_string(),
        "initializing the primary, traffic stays on the target".to_string(),
        vec![
            "the routing moves to the primary in the next step, once the cluster runs it ready"
                .to_string(),
        ],
    )
}

/// Initializing: traffic moves to the primary once Flux applied it and it is ready.
fn initializing(input: &Input, state: &State) -> Decision {
    let wake = next_look(input);
    match input.cluster {
        ClusterState::Applied {
            primary: Readiness::Ready,
            ..
        }
        | ClusterState::Unknown => {
            let mut next = at_rest(state, Phase::Initialized, input.now);
            next.canary_revision = None;
            let s = step(
                next,
                "initialization done, primary serves all traffic".to_string(),
                vec!["the primary is ready; the routing moves to it".to_string()],
            );
            alerting(
                s,
                AlertSeverity::Info,
                "New Deployment detected, initialization completed.",
            )
        }
        ClusterState::Applied { primary, .. } => idle(
            &format!(
                "initializing: waiting for the primary: {}",
                primary.describe()
            ),
            wake,
        ),
        other => idle(&format!("initializing: {}", other.describe()), wake),
    }
}

/// What the cluster says of a step in flight: `Some` holds it (waiting for Flux to apply it or
/// for its Deployments to be ready) or ends it (rolls back a canary or primary that will not
/// get ready, or a step Flux did not apply within the progress deadline, as failed checks).
/// `None` lets the step go on. During a promotion nothing rolls back: the canary may be the
/// only healthy copy, so the promotion holds (Flagger's rule).
fn cluster_gate(input: &Input, state: &State) -> Option<Decision> {
    let promoting = matches!(state.phase, Phase::Promoting | Phase::Finalising);
    if !promoting && !matches!(state.phase, Phase::Progressing | Phase::WaitingPromotion) {
        return None;
    }
    let wake = next_look(input);
    let rules = &input.analysis.ready;
    let deadline = ChronoDuration::from_std(rules.progress_deadline)
        .ok()
        .and_then(|d| state.last_step_at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let late = input.now >= deadline;
    match input.cluster {
        ClusterState::Unknown => None,
        ClusterState::Unseen(why) => Some(idle(
            &format!("holding: cannot tell what the cluster runs ({why})"),
            wake,
        )),
        ClusterState::NotApplied(why) if !late || promoting => Some(idle(
            &format!("waiting for Flux to apply the step: {why}"),
            Some(deadline.min(next_look(input).unwrap_or(deadline))),
        )),
        ClusterState::NotApplied(why) => Some(failed_check(
            input,
            state,
            vec![format!(
                "the step was not applied within the progress deadline of {}s: {why}",
                rules.progress_deadline.as_secs()
            )],
            Vec::new(),
        )),
        ClusterState::Applied {
            canary, primary, ..
        } => {
            let workloads: &[(&str, &Readiness)] = if promoting {
                &[("primary", primary)]
            } else {
                &[("primary", primary), ("canary", canary)]
            };
            for (role, readiness) in workloads {
                match readiness {
                    Readiness::Ready => continue,
                    Readiness::Stuck(why) if !promoting => {
                        return Some(not_ready(input, state, role, why));
                    }
                    Readiness::Missing if late && !promoting => {
                        return Some(not_ready(
                            input,
                            state,
                            role,
                            &format!(
                                "the {role} Deployment was not found within the progress deadline of {}s",
                                rules.progress_deadline.as_secs()
                            ),
                        ));
                    }
                    other => {
                        return Some(idle(
                            &format!("waiting for the {role}: {}", other.describe()),
                            wake,
                        ))
                    }
                }
            }
            None
        }
    }
}

/// A release whose canary or primary will not get ready: rolled back at once (Flagger's rule
/// for a Deployment past its progress deadline).
fn not_ready(input: &Input, state: &State, role: &str, why: &str) -> Decision {
    let mut next = at_rest(state, Phase::Failed, input.now);
    next.failed_revision = Some(input.revision.to_string());
    next.failed_checks = state.failed_checks;
    let s = step_short(
        next,
        format!("rolling back, {role} not ready: {why}"),
        format!("rolling back, {role} not ready"),
        vec![format!("{role} not ready: {why}")],
    );
    alerting(
        s,
        AlertSeverity::Error,
        &format!("Canary failed, {role} not ready: {why}"),
    )
}

/// When the step of `state` started: when it was committed, or, with a cluster view, when
/// weir first saw it applied with its Deployments ready.
fn step_start(input: &Input, state: &State) -> DateTime<Utc> {
    match input.cluster {
        ClusterState::Applied {
            ready_since: Some(at),
            ..
        } => state.last_step_at.max(*at),
        _ => state.last_step_at,
    }
}

/// When the next step of `state` is due: an interval after it started.
fn due(input: &Input, state: &State) -> DateTime<Utc> {
    interval_after(input.analysis, step_start(input, state))
}

/// The rollout decision proper, given a record.
fn decide(input: &Input, state: &State) -> Decision {
    if state.phase == Phase::Initializing {
        return initializing(input, state);
    }
    let rev = input.revision;
    let analysing = state.canary_revision.as_deref();

    // A retry the control file asks for: the failed revision, still the current one.
    let retry = input.control.retry.as_deref() == Some(rev)
        && state.failed_revision.as_deref() == Some(rev)
        && state.phase == Phase::Failed;
    // A revision nobody has seen: start (or restart) the analysis, as Flagger does.
    // A failed revision is skipped only until something newer is promoted.
    let failed = Some(rev) == state.failed_revision.as_deref()
        && (state.phase == Phase::Failed || state.phase.in_flight());
    let known = rev == state.promoted_revision || failed || Some(rev) == analysing;
    if !known || retry {
        return new_revision(input, state, retry);
    }

    let analysis_phase = matches!(
        state.phase,
        Phase::Waiting | Phase::Progressing | Phase::WaitingPromotion
    );
    // The source went back to the primary's revision, or to a failed one, mid-analysis.
    if analysis_phase && analysing != Some(rev) {
        let mut next = at_rest(state, Phase::Succeeded, input.now);
        let event = if rev == state.promoted_revision {
            format!(
                "canary reverted to the primary's revision {}, analysis stopped",
                short(rev)
            )
        } else {
            next.phase = Phase::Failed;
            format!(
                "canary reverted to failed revision {}, analysis stopped",
                short(rev)
            )
        };
        return write(next, event, Vec::new());
    }

    // `weir abort`: roll back the revision it names while that revision is analysed.
    if analysis_phase && input.control.abort.as_deref() == Some(rev) {
        let mut next = at_rest(state, Phase::Failed, input.now);
        next.failed_revision = Some(rev.to_string());
        next.failed_checks = state.failed_checks;
        let s = step(
            next,
            format!(
                "rolling back revision {}, aborted by the control file",
                short(rev)
            ),
            vec!["the control file asks to abort this revision (weir abort)".to_string()],
        );
        return alerting(
            s,
            AlertSeverity::Warn,
            "Rolling back: the rollout was aborted (weir abort)",
        );
    }

    if let Some(hold) = cluster_gate(input, state) {
        return hold;
    }

    match state.phase {
        Phase::Initializing => initializing(input, state),
        Phase::Initialized | Phase::Succeeded => idle(
            &format!("primary is at the current revision {}", short(rev)),
            None,
        ),
        Phase::Failed if rev == state.promoted_revision => idle(
            &format!("primary is at the current revision {}", short(rev)),
            None,
        ),
        Phase::Failed => idle(
            &format!(
                "revision {} failed; waiting for a new revision (or weir retry)",
                short(rev)
            ),
            None,
        ),
        Phase::Waiting => waiting(input, state),
        Phase::Progressing | Phase::WaitingPromotion => progress(input, state),
        Phase::Promoting => promoting(input, state),
        Phase::Finalising => match not_due(input, state) {
            Some(wait) => wait,
            None => {
                let mut next = at_rest(state, Phase::Succeeded, input.now);
                next.iterations = 0;
                let event = match state.primary_images.as_slice() {
                    [] => format!(
                        "promotion completed, primary now at revision {}",
                        short(rev)
                    ),
                    images => format!("promotion completed, primary now {}", images.join(", ")),
                };
                let s = step(next, event, Vec::new());
                // A promotion after an analysis has counted at least one iteration; only
                // skipAnalysis promotes with none.
                let message = if state.iterations == 0 {
                    "Canary analysis was skipped, promotion finished."
                } else {
                    "Canary analysis completed successfully, promotion finished."
                };
                alerting(s, AlertSeverity::Info, message)
            }
        },
    }
}

/// A revision to analyse: through the confirm-rollout gate (weir asks it on a restart too,
/// where Flagger does not), then straight to promotion with skipAnalysis, or to the analysis.
fn new_revision(input: &Input, state: &State, retry: bool) -> Decision {
    let rev = input.revision;
    // Flagger starts no analysis while the primary is not ready.
    if let ClusterState::Applied { primary, .. } = input.cluster {
        if !primary.is_ready() {
            return idle(
                &format!(
                    "new revision {}: waiting for the primary before starting: {}",
                    short(rev),
                    primary.describe()
                ),
                next_look(input),
            );
        }
    }
    if let Some(wait) = confirm_rollout(input, state, true) {
        return wait;
    }
    if input.skip_analysis {
        // Traffic stays where it is while the primary rolls out, as after an analysis.
        let mut next = stepped(state, input.now);
        if next.phase != Phase::Promoting {
            next.phase = Phase::Promoting;
            next.last_transition_at = input.now;
        }
        next.canary_revision = Some(rev.to_string());
        next.promoted_revision = rev.to_string();
        next.promoted_commit = Some(input.head.to_string());
        next.primary_images = input.images.to_vec();
        next.failed_revision = None;
        next.failed_checks = 0;
        next.iterations = 0;
        next.history.clear();
        let s = step_short(
            next,
            format!(
                "new revision {} detected, skipping analysis (spec.skipAnalysis), promoting",
                short(rev)
            ),
            format!(
                "new revision {} detected, skipping analysis, promoting",
                short(rev)
            ),
            vec!["spec.skipAnalysis is true: the revision is promoted without checks".to_string()],
        );
        return alerting(
            s,
            AlertSeverity::Info,
            "New revision detected, progressing canary analysis.",
        );
    }
    let restarting = matches!(state.phase, Phase::Progressing | Phase::WaitingPromotion);
    let event = if retry {
        format!(
            "retrying failed revision {} (weir retry), starting canary analysis",
            short(rev)
        )
    } else if restarting {
        format!(
            "new revision {} detected during analysis, restarting analysis",
            short(rev)
        )
    } else {
        format!(
            "new revision {} detected, starting canary analysis",
            short(rev)
        )
    };
    let mut s = start(input, state, event);
    s.retried = retry;
    if !restarting {
        s.alert = Some((
            AlertSeverity::Info,
            "New revision detected, progressing canary analysis.".to_string(),
        ));
    }
    Decision::Write(s)
}

/// The step that begins the analysis of `input.revision`: Progressing at weight 0.
fn start(input: &Input, state: &State, event: String) -> Step {
    let rev = input.revision;
    let mut next = at_rest(state, Phase::Progressing, input.now);
    next.canary_revision = Some(rev.to_string());
    next.failed_checks = 0;
    next.iterations = 0;
    next.history.clear();
    step(next, event, Vec::new())
}

/// The confirm-rollout gate for `input.revision`: `None` when it is open (approved, no hooks,
/// or every hook passed), else the decision that waits. `entering` says whether the
/// revision is new (a failed gate then writes the Waiting phase).
fn confirm_rollout(input: &Input, state: &State, entering: bool) -> Option<Decision> {
    let rev = input.revision;
    if !input.analysis.has_hooks(HookType::ConfirmRollout) || approved(input) {
        return None;
    }
    let report = match input.gates {
        Some(r)
            if r.revision == rev
                && r.at <= input.now
                && r.hooks.contains_key(&HookType::ConfirmRollout) =>
        {
            r
        }
        _ => {
            return Some(Decision::NeedGates {
                canary_weight: Weight::ZERO,
                metrics: false,
                hooks: vec![HookType::ConfirmRollout],
            })
        }
    };
    let failed = report.failed_hook(HookType::ConfirmRollout)?;
    let why = format!(
        "confirm-rollout check {} failed: {}",
        failed.name, failed.message
    );
    if !entering {
        return Some(idle(
            &format!("waiting for approval of revision {}: {why}", short(rev)),
            next_look(input),
        ));
    }
    let mut next = at_rest(state, Phase::Waiting, input.now);
    next.canary_revision = Some(rev.to_string());
    next.iterations = 0;
    next.failed_checks = 0;
    next.history.clear();
    let mut s = step(
        next,
        format!(
            "new revision {} waiting for approval (confirm-rollout {})",
            short(rev),
            failed.name
        ),
        vec![why],
    );
    if !failed.mute_alert {
        s.alert = Some((
            AlertSeverity::Warn,
            "Canary is waiting for approval.".to_string(),
        ));
    }
    Some(Decision::Write(s))
}

/// Waiting for confirm-rollout: look again each interval.
fn waiting(input: &Input, state: &State) -> Decision {
    if let Some(wait) = not_due(input, state) {
        return wait;
    }
    if let Some(wait) = confirm_rollout(input, state, false) {
        return wait;
    }
    let s = start(
        input,
        state,
        format!(
            "revision {} approved, starting canary analysis",
            short(input.revision)
        ),
    );
    alerting(
        s,
        AlertSeverity::Info,
        "New revision detected, progressing canary analysis.",
    )
}

/// The control file approves the revision under analysis.
fn approved(input: &Input) -> bool {
    input.control.approve.as_deref() == Some(input.revision)
}

/// Evidence when nothing had to be gathered.
static NOTHING: GateReport = GateReport {
    revision: String::new(),
    canary_weight: Weight::ZERO,
    at: DateTime::<Utc>::UNIX_EPOCH,
    checks: None,
    hooks: BTreeMap::new(),
};

/// Evidence for the analysed revision at the recorded weight, fresh for this step: gathered
/// after the step became due and not in the future. `Err` asks for all that is needed; the
/// engine gathers what the report lacks.
// The Err is a decision, used at once: not worth a box.
#[allow(clippy::result_large_err)]
fn evidence<'a>(
    input: &'a Input,
    state: &State,
    metrics: bool,
    kinds: &[HookType],
) -> Result<&'a GateReport, Decision> {
    let kinds: Vec<HookType> = kinds
        .iter()
        .copied()
        .filter(|k| input.analysis.has_hooks(*k))
        .collect();
    // An analysis without metrics still asks, so that every judged step has evidence
    // gathered after it became due (an empty set of values).
    let fresh = fresh_evidence(input, state);
    if !metrics && kinds.is_empty() {
        return Ok(fresh.unwrap_or(&NOTHING));
    }
    let complete = fresh.filter(|r| {
        (!metrics
            || r.checks
                .as_ref()
                .is_some_and(|c| c.len() == input.analysis.metrics.len()))
            && kinds.iter().all(|k| r.hooks.contains_key(k))
    });
    complete.ok_or(Decision::NeedGates {
        canary_weight: state.canary_weight,
        metrics,
        hooks: kinds,
    })
}

/// The evidence of this tick if it is about the analysed revision at the recorded weight and
/// was gathered after the step became due, not in the future.
fn fresh_evidence<'a>(input: &'a Input, state: &State) -> Option<&'a GateReport> {
    input.gates.filter(|r| {
        state.canary_revision.as_deref() == Some(r.revision.as_str())
            && r.canary_weight == state.canary_weight
            && r.at >= due(input, state)
            && r.at <= input.now
    })
}

/// One interval from now: when a hold is looked at again (`None` past the calendar's end).
fn next_look(input: &Input) -> Option<DateTime<Utc>> {
    input.now.checked_add_signed(interval(input))
}

/// One interval, as a chrono duration.
fn interval(input: &Input) -> ChronoDuration {
    ChronoDuration::from_std(input.analysis.interval).unwrap_or(ChronoDuration::MAX)
}

fn progress(input: &Input, state: &State) -> Decision {
    if let Some(wait) = not_due(input, state) {
        return wait;
    }
    // The first step of a run (Flagger's test: weight 0, no iteration, not mirrored); a
    // failed pre-rollout check keeps it the first step.
    let first = state.phase == Phase::Progressing
        && state.canary_weight == Weight::ZERO
        && state.iterations == 0
        && !state.mirrored;
    let mut decision = judge(input, state, first);
    // The readings this step was decided on join the release's history in the record.
    if let (Decision::Write(s), Some(report)) = (&mut decision, fresh_evidence(input, state)) {
        let judged = interval_of(report, first);
        if !judged.gates.is_empty() {
            s.next.history.push(judged);
            let over = s.next.history.len().saturating_sub(MAX_INTERVALS);
            s.next.history.drain(..over);
        }
    }
    decision
}

/// The readings of `report` that a step is judged on, as the record keeps them: the metrics
/// (not on the first step, where nothing reaches the canary yet), then the webhooks.
fn interval_of(report: &GateReport, first: bool) -> Interval {
    let metrics = match (first, &report.checks) {
        (false, Some(checks)) => checks.as_slice(),
        _ => &[],
    };
    let checks = metrics.iter().map(|c| {
        let (value, note) = match &c.value {
            Ok(v) if v.is_finite() => (Some(*v), None),
            Ok(v) => (None, Some(v.to_string())),
            Err(why) => (None, Some(crate::core::text::clean(why, 200))),
        };
        Reading {
            gate: c.name.clone(),
            value,
            note,
            min: c.min,
            max: c.max,
            passed: c.passed(),
        }
    });
    let hooks = report.hooks.iter().flat_map(|(kind, answers)| {
        answers.iter().map(move |h| Reading {
            gate: format!("{kind} hook {}", h.name),
            value: None,
            note: Some(crate::core::text::clean(&h.message, 200)),
            min: None,
            max: None,
            passed: h.passed,
        })
    });
    Interval {
        at: report.at,
        canary_weight: report.canary_weight,
        gates: checks.chain(hooks).collect(),
    }
}

/// The analysis of a due step of a release in flight, given whether it is the first.
fn judge(input: &Input, state: &State, first: bool) -> Decision {
    let analysis = input.analysis;
    let weight = state.canary_weight;
    // Round one: rollback hooks, and the pre-rollout hooks on the first step or the rollout
    // hooks and metrics on the others. No traffic reaches the canary before the first step,
    // so there is nothing to measure then (Flagger's rule).
    let round_one: &[HookType] = if first {
        &[HookType::Rollback, HookType::PreRollout]
    } else {
        &[HookType::Rollback, HookType::Rollout]
    };
    // The hooks first: a rollback hook decides alone, and a failed pre-rollout or rollout
    // check counts without the metrics being run (Flagger's order).
    let report = match evidence(input, state, false, round_one) {
        Ok(r) => r,
        Err(need) => return need,
    };
    if let Some(hook) = report.passed_hook(HookType::Rollback) {
        let mut next = at_rest(state, Phase::Failed, input.now);
        next.failed_revision = Some(input.revision.to_string());
        next.failed_checks = state.failed_checks;
        let s = step(
            next,
            format!("rolling back, rollback hook {} passed", hook.name),
            vec![format!(
                "rollback check {} passed: the hook asks for a rollback",
                hook.name
            )],
        );
        return alerting(
            s,
            AlertSeverity::Warn,
            "Rolling back manual webhook invoked",
        );
    }
    let hook_failures: Vec<String> = [HookType::PreRollout, HookType::Rollout]
        .into_iter()
        .filter_map(|kind| {
            let h = report.failed_hook(kind)?;
            Some(format!("{kind} check {} failed: {}", h.name, h.message))
        })
        .collect();
    if !hook_failures.is_empty() {
        return failed_check(input, state, hook_failures, Vec::new());
    }
    // Then the metrics, where traffic reaches the canary.
    let report = match evidence(input, state, !first, round_one) {
        Ok(r) => r,
        Err(need) => return need,
    };
    // Values the planner did not ask for (the first step) judge nothing.
    let checks = match first {
        true => &[][..],
        false => report.checks.as_deref().unwrap_or(&[]),
    };
    let details: Vec<String> = checks.iter().map(|c| c.describe()).collect();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.describe())
        .collect();
    if let Some(wait) = outage(input, state, checks) {
        return wait;
    }
    if !failed.is_empty() {
        return failed_check(input, state, failed, details);
    }

    // The analysis passed: the strategy's next move, through its confirm gate.
    match &analysis.strategy {
        Strategy::Canary { max_weight, .. } => {
            if first && analysis.mirror {
                let mut next = stepped(state, input.now);
                next.mirrored = true;
                return write(
                    next,
                    "mirroring traffic to the canary, canary weight 0".to_string(),
                    details,
                );
            }
            if weight < *max_weight || state.mirrored {
                if let Some(wait) = held(input, state, HookType::ConfirmTrafficIncrease, report) {
                    return wait;
                }
                let to = next_weight(analysis, weight);
                let mut next = stepped(state, input.now);
                next.canary_weight = to;
                next.phase = Phase::Progressing;
                if !first {
                    next.iterations = state.iterations.saturating_add(1);
                }
                let event = if state.mirrored {
                    next.mirrored = false;
                    format!("traffic mirroring stopped, advance canary weight {weight} -> {to}")
                } else {
                    format!("advance canary weight {weight} -> {to}")
                };
                start_cookies(input, &mut next);
                return write(next, event, details);
            }
            promote_through_gate(input, state, details, report)
        }
        Strategy::AbTesting { iterations, .. } => {
            if first {
                let mut next = stepped(state, input.now);
                next.canary_weight = Weight::FULL;
                next.iterations = 1;
                return write(
                    next,
                    format!("advance canary iteration 1/{iterations}, matched requests go to the canary"),
                    details,
                );
            }
            if state.iterations < *iterations {
                let mut next = stepped(state, input.now);
                next.iterations = state.iterations + 1;
                next.phase = Phase::Progressing;
                let event = format!("advance canary iteration {}/{iterations}", next.iterations);
                return write(next, event, details);
            }
            promote_through_gate(input, state, details, report)
        }
        Strategy::BlueGreen { iterations } => {
            if first {
                let mut next = stepped(state, input.now);
                next.iterations = 1;
                next.mirrored = analysis.mirror;
                let event = if analysis.mirror {
                    format!(
                        "advance canary iteration 1/{iterations}, mirroring traffic to the canary"
                    )
                } else {
                    format!("advance canary iteration 1/{iterations}")
                };
                return write(next, event, details);
            }
            if state.iterations < *iterations {
                let mut next = stepped(state, input.now);
                next.iterations = state.iterations + 1;
                next.phase = Phase::Progressing;
                let event = format!("advance canary iteration {}/{iterations}", next.iterations);
                return write(next, event, details);
            }
            if state.iterations == *iterations {
                // The switch comes before the promotion, so that traffic is on the canary
                // while the primary rolls out (Flagger's order); both wait for approval.
                if let Some(wait) = held(input, state, HookType::ConfirmPromotion, report) {
                    return wait;
                }
                let mut next = stepped(state, input.now);
                next.canary_weight = Weight::FULL;
                next.iterations = state.iterations + 1;
                next.phase = Phase::Progressing;
                let event = if state.mirrored {
                    next.mirrored = false;
                    "traffic mirroring stopped, routing all traffic to canary".to_string()
                } else {
                    "routing all traffic to canary".to_string()
                };
                return write(next, event, details);
            }
            promote_through_gate(input, state, details, report)
        }
    }
}

/// A monitoring outage: when the only checks without a passing value are those whose metrics
/// server could not be reached, the step waits (writing nothing) until the analysis' outage
/// grace has passed since it became due; then the outage counts as a failed check, as
/// Flagger counts it at once. A check that got an answer (a bad value, no data, NaN, a
/// refused query) is never held: it fails now.
fn outage(input: &Input, state: &State, checks: &[CheckResult]) -> Option<Decision> {
    let failing: Vec<&CheckResult> = checks.iter().filter(|c| !c.passed()).collect();
    if failing.is_empty() || failing.iter().any(|c| !c.unreachable) {
        return None;
    }
    let grace = ChronoDuration::from_std(input.analysis.metrics_outage_grace).ok()?;
    let deadline = due(input, state).checked_add_signed(grace)?;
    if input.now >= deadline {
        return None;
    }
    let why: Vec<String> = failing.iter().map(|c| c.describe()).collect();
    Some(idle(
        &format!(
            "holding: the metrics server could not be reached ({}); this interval counts as a failed check if it still cannot be reached at {}",
            why.join(", "),
            deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        Some(deadline.min(next_look(input).unwrap_or(deadline))),
    ))
}

/// A confirm gate of the strategy (traffic increase, promotion): `None` when open, else the
/// decision that holds the rollout. A closed promotion gate writes WaitingPromotion once;
/// otherwise a closed gate writes nothing and is looked at again an interval later.
fn held(input: &Input, state: &State, kind: HookType, report: &GateReport) -> Option<Decision> {
    if !input.analysis.has_hooks(kind) || approved(input) {
        return None;
    }
    if !report.hooks.contains_key(&kind) {
        return Some(Decision::NeedGates {
            canary_weight: state.canary_weight,
            metrics: report.checks.is_some(),
            hooks: report
                .hooks
                .keys()
                .copied()
                .chain(std::iter::once(kind))
                .collect(),
        });
    }
    let failed = report.failed_hook(kind)?;
    let why = format!("{kind} check {} failed: {}", failed.name, failed.message);
    let what = match kind {
        HookType::ConfirmPromotion => "promotion",
        _ => "traffic increase",
    };
    if kind == HookType::ConfirmPromotion && state.phase != Phase::WaitingPromotion {
        let mut next = stepped(state, input.now);
        next.phase = Phase::WaitingPromotion;
        next.last_transition_at = input.now;
        let mut s = step(
            next,
            format!("waiting for {what} approval ({kind} {})", failed.name),
            vec![why],
        );
        if !failed.mute_alert {
            s.alert = Some((
                AlertSeverity::Warn,
                "Canary promotion is waiting for approval.".to_string(),
            ));
        }
        return Some(Decision::Write(s));
    }
    Some(idle(
        &format!("waiting for {what} approval: {why}"),
        Some(report.at + interval(input)),
    ))
}

/// The end of the analysis: through confirm-promotion, the primary takes the canary's
/// revision. Traffic stays where it is until the primary has had an interval to roll out.
fn promote_through_gate(
    input: &Input,
    state: &State,
    details: Vec<String>,
    report: &GateReport,
) -> Decision {
    if let Some(wait) = held(input, state, HookType::ConfirmPromotion, report) {
        return wait;
    }
    let weight = state.canary_weight;
    let mut next = stepped(state, input.now);
    next.iterations = state.iterations.saturating_add(1);
    next.phase = Phase::Promoting;
    next.last_transition_at = input.now;
    next.promoted_revision = input.revision.to_string();
    next.promoted_commit = Some(input.head.to_string());
    next.primary_images = input.images.to_vec();
    // Once something newer is promoted, going back to the failed revision is a change like
    // any other and gets analysed.
    next.failed_revision = None;
    let details = std::iter::once(format!(
        "canary weight stays {weight} while the primary rolls out"
    ))
    .chain(details)
    .collect();
    write_short(
        next,
        format!(
            "promoting revision {} to the primary, canary weight stays {weight} while it rolls out",
            short(input.revision)
        ),
        format!(
            "promoting revision {} to the primary",
            short(input.revision)
        ),
        details,
    )
}

/// A failed analysis step: halt, or roll back at the threshold. weir rolls back in the step
/// that reaches the threshold; Flagger waits one more interval to notice.
fn failed_check(
    input: &Input,
    state: &State,
    failed: Vec<String>,
    details: Vec<String>,
) -> Decision {
    let count = state.failed_checks.saturating_add(1);
    let threshold = input.analysis.threshold;
    let counted = format!("(failed checks {count}/{threshold})");
    let details = if details.is_empty() {
        failed.clone()
    } else {
        details
    };
    if count >= threshold {
        let mut next = at_rest(state, Phase::Failed, input.now);
        next.failed_checks = count;
        next.failed_revision = Some(input.revision.to_string());
        let s = step_short(
            next,
            format!("rolling back, {} {counted}", failed.join(", ")),
            format!("rolling back {counted}"),
            details,
        );
        return alerting(
            s,
            AlertSeverity::Error,
            &format!("Failed checks threshold reached {count}"),
        );
    }
    let mut next = stepped(state, input.now);
    next.failed_checks = count;
    write_short(
        next,
        format!("halt advancement, {} {counted}", failed.join(", ")),
        format!("halt advancement {counted}"),
        details,
    )
}

fn promoting(input: &Input, state: &State) -> Decision {
    if let Some(wait) = not_due(input, state) {
        return wait;
    }
    let weight = state.canary_weight;
    if let Some(step) = input.analysis.step_weight_promotion {
        let to = weight.saturating_sub(step);
        if to > Weight::ZERO {
            let mut next = stepped(state, input.now);
            next.canary_weight = to;
            return write(
                next,
                format!(
                    "advance primary weight {} -> {}",
                    weight.complement(),
                    to.complement()
                ),
                Vec::new(),
            );
        }
    }
    let mut next = stepped(state, input.now);
    next.phase = Phase::Finalising;
    next.last_transition_at = input.now;
    next.canary_weight = Weight::ZERO;
    next.mirrored = false;
    retire_cookies(&mut next);
    write(
        next,
        "routing all traffic to primary".to_string(),
        Vec::new(),
    )
}

/// The weight after `from`: one stepWeight more (capped at 100, which allows Flagger's
/// overshoot past maxWeight), or the next of stepWeights.
pub fn next_weight(analysis: &Analysis, from: Weight) -> Weight {
    match &analysis.strategy {
        Strategy::Canary {
            steps: Steps::Linear(step),
            ..
        } => from.saturating_add(*step),
        Strategy::Canary {
            steps: Steps::List(list),
            max_weight,
        } => list
            .iter()
            .copied()
            .find(|w| *w > from)
            .unwrap_or(*max_weight),
        _ => Weight::FULL,
    }
}

/// When the next step of `state` is due, counted from its commit (a cluster view may start
/// the interval later, when the step is applied and ready).
pub fn due_at(analysis: &Analysis, state: &State) -> DateTime<Utc> {
    interval_after(analysis, state.last_step_at)
}

/// One interval after `at`.
fn interval_after(analysis: &Analysis, at: DateTime<Utc>) -> DateTime<Utc> {
    ChronoDuration::from_std(analysis.interval)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `Some(Idle)` until the next step is due: an interval after the last step, and an interval
/// after the last look at a closed gate.
fn not_due(input: &Input, state: &State) -> Option<Decision> {
    let mut at = due(input, state);
    if let Some(look) = input.last_look {
        at = at.max(look.checked_add_signed(interval(input)).unwrap_or(at));
    }
    (input.now < at).then(|| {
        idle(
            &format!("next step due at {}", at.format("%H:%M:%S")),
            Some(at),
        )
    })
}

/// Session cookies for a run that starts sending traffic to the canary: made once per
/// revision (the primary's once for good, as in Flagger), from the revision, so the same
/// input gives the same bytes.
fn start_cookies(input: &Input, next: &mut State) {
    let Some(sa) = &input.analysis.session_affinity else {
        return;
    };
    if next.canary_weight == Weight::ZERO {
        return;
    }
    if next.session_affinity_cookie.is_none() {
        next.session_affinity_cookie = Some(format!(
            "{}={}",
            sa.cookie_name,
            cookie_value(input.revision, &sa.cookie_name)
        ));
    }
    if let Some(primary) = &sa.primary_cookie_name {
        if next.primary_session_affinity_cookie.is_none() {
            next.primary_session_affinity_cookie = Some(format!(
                "{primary}={}",
                cookie_value(&next.promoted_revision, primary)
            ));
        }
    }
}

/// When traffic returns to the primary, the canary cookie is expired by a clean-up route.
fn retire_cookies(next: &mut State) {
    if let Some(c) = next.session_affinity_cookie.take() {
        next.previous_session_affinity_cookie = Some(c);
    }
}

/// Ten letters derived from a revision and a cookie name (FNV-1a, then base 52).
fn cookie_value(revision: &str, name: &str) -> String {
    const LETTERS: &[u8; 52] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in revision.bytes().chain([0]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (0..10)
        .map(|i| {
            let x = h.rotate_left(i * 7) ^ u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            LETTERS[(x % 52) as usize] as char
        })
        .collect()
}

fn fresh(phase: Phase, revision: &str, now: DateTime<Utc>) -> State {
    State {
        phase,
        promoted_revision: revision.to_string(),
        last_step_at: now,
        last_transition_at: now,
        ..State::default()
    }
}

/// The record with all traffic back on the primary in `phase`: no canary revision, no mirror,
/// the session cookie retired.
fn at_rest(state: &State, phase: Phase, now: DateTime<Utc>) -> State {
    let mut next = stepped(state, now);
    if next.phase != phase {
        next.phase = phase;
        next.last_transition_at = now;
    }
    next.canary_weight = Weight::ZERO;
    next.canary_revision = None;
    next.mirrored = false;
    retire_cookies(&mut next);
    next
}

/// The state with the step time set to now.
fn stepped(state: &State, now: DateTime<Utc>) -> State {
    let mut next = state.clone();
    next.last_step_at = now;
    next
}

fn step(next: State, event: String, details: Vec<String>) -> Step {
    let summary = event.clone();
    step_short(next, event, summary, details)
}

fn step_short(mut next: State, event: String, summary: String, details: Vec<String>) -> Step {
    next.message = event.clone();
    Step {
        next,
        event,
        summary,
        details,
        alert: None,
        retried: false,
    }
}

/// The step, sending an alert in Flagger's words.
fn alerting(mut s: Step, severity: AlertSeverity, message: &str) -> Decision {
    s.alert = Some((severity, message.to_string()));
    Decision::Write(s)
}

fn write(next: State, event: String, details: Vec<String>) -> Decision {
    Decision::Write(step(next, event, details))
}

fn write_short(next: State, event: String, summary: String, details: Vec<String>) -> Decision {
    Decision::Write(step_short(next, event, summary, details))
}

/// The record unchanged but for the Canary's settings it keeps: a repair is not a step, so
/// the next step stays due when it was.
fn stepped_keep_time(state: &State, input: &Input) -> State {
    let mut next = state.clone();
    next.revert_on_deletion = input.revert_on_deletion;
    next
}

fn idle(reason: &str, wake_at: Option<DateTime<Utc>>) -> Decision {
    Decision::Idle {
        reason: reason.to_string(),
        wake_at,
    }
}
