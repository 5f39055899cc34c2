//! The planner: every rollout decision weir can make, and nothing else.
//!
//! One pure function, [`plan`], maps (spec, recorded state, current revision, the state of
//! weir's own files, gate results, now) to the next step: initialise, advance, halt, roll
//! back, promote, finalise, and repair weir's files from the record. It reads no clock, file,
//! socket or environment. Semantics follow Flagger's canary strategy; where weir differs it
//! says so next to the rule.

use crate::spec::{Analysis, Steps, Weight};
use crate::state::{Phase, State};
use chrono::{DateTime, Duration as ChronoDuration, Utc};

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
        let need = match (self.min, self.max) {
            (Some(lo), Some(hi)) => format!("{} <= x <= {}", num(lo), num(hi)),
            (Some(lo), None) => format!(">= {}", num(lo)),
            (None, Some(hi)) => format!("<= {}", num(hi)),
            (None, None) => "no bound".to_string(),
        };
        let v = match &self.value {
            Err(why) => return format!("{} {why} (need {need})", self.name),
            Ok(v) if v.is_nan() => return format!("{} NaN (need {need})", self.name),
            Ok(v) if !v.is_finite() => {
                return match (self.min, self.max) {
                    (_, Some(hi)) if *v > 0.0 => format!("{} {v} > {}", self.name, num(hi)),
                    (Some(lo), _) if *v < 0.0 => format!("{} {v} < {}", self.name, num(lo)),
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
            (Some(lo), _) => format!("{name} {} >= {}", num(v), num(lo)),
            (None, Some(hi)) => format!("{name} {} <= {}", num(v), num(hi)),
            (None, None) => format!("{name} {}", num(v)),
        }
    }
}

/// Prints a value and its bound so that they never look equal when they are not.
fn distinct(v: f64, bound: f64) -> (String, String) {
    let (a, b) = (num(v), num(bound));
    if a == b {
        (format!("{v}"), format!("{bound}"))
    } else {
        (a, b)
    }
}

/// Prints a number with at most two decimals and no trailing zeros.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Gate results gathered for one revision at one weight at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReport {
    /// The revision the checks were run for.
    pub revision: String,
    /// The canary weight while they ran.
    pub canary_weight: Weight,
    /// When they ran.
    pub at: DateTime<Utc>,
    /// One result per metric of the analysis.
    pub checks: Vec<CheckResult>,
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
    /// Gate results, when the caller has gathered them.
    pub gates: Option<&'a GateReport>,
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
    /// A check is due: run the gates at this weight and call again with the report.
    NeedGates {
        /// The weight the checks must observe.
        canary_weight: Weight,
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
}

/// Decides the next step of one app.
pub fn plan(input: &Input) -> Decision {
    // Flagger checks suspend before anything else, initialization included; weir repairs
    // nothing while suspended either.
    if input.suspend {
        return idle("suspended by spec.suspend", None);
    }
    let Some(state) = input.state else {
        let mut next = fresh(Phase::Initialized, input.revision, input.now);
        next.promoted_commit = Some(input.head.to_string());
        next.primary_images = input.images.to_vec();
        return write(
            next,
            "initialization done, primary serves all traffic".to_string(),
            Vec::new(),
        );
    };
    let decision = decide(input, state);
    // weir's own files are put back before any evidence is gathered against them, from the
    // record (never from the current tree); a step that writes renders them anyway.
    match (&decision, input.owned) {
        (Decision::Write(_), _) | (_, Owned::Current) => decision,
        (_, Owned::Recovered { from }) => {
            let next = stepped_keep_time(state);
            write(
                next,
                format!("rollout record restored from commit {}", short(from)),
                vec![format!(
                    "{} was missing; the record weir last wrote is restored, and the rollout goes on from it",
                    crate::render::STATE_FILE
                )],
            )
        }
        (_, Owned::Stale { primary: true }) => write(
            stepped_keep_time(state),
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
            stepped_keep_time(state),
            "routing rendered again from the Canary spec".to_string(),
            Vec::new(),
        ),
    }
}

/// The rollout decision proper, given a record.
fn decide(input: &Input, state: &State) -> Decision {
    let rev = input.revision;
    let analysing = state.canary_revision.as_deref();

    // A revision nobody has seen: start (or restart) the analysis, as Flagger does.
    // A failed revision is skipped only until something newer is promoted.
    let failed = Some(rev) == state.failed_revision.as_deref()
        && (state.phase == Phase::Failed || state.phase.in_flight());
    let known = rev == state.promoted_revision || failed || Some(rev) == analysing;
    if !known {
        return new_revision(input, state);
    }

    // The source went back to the primary's revision, or to a failed one, mid-analysis.
    if state.phase == Phase::Progressing && analysing != Some(rev) {
        let mut next = moved(state, Phase::Succeeded, input.now);
        next.canary_weight = Weight::ZERO;
        next.canary_revision = None;
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

    match state.phase {
        Phase::Initialized | Phase::Succeeded => idle(
            &format!("primary is at the current revision {}", short(rev)),
            None,
        ),
        Phase::Failed if rev == state.promoted_revision => idle(
            &format!("primary is at the current revision {}", short(rev)),
            None,
        ),
        Phase::Failed => idle(
            &format!("revision {} failed; waiting for a new revision", short(rev)),
            None,
        ),
        // Manual gates come with webhooks; until then these phases only advance by time.
        Phase::Waiting | Phase::WaitingPromotion | Phase::Progressing => progress(input, state),
        Phase::Promoting => promoting(input, state),
        Phase::Finalising => match not_due(input, state) {
            Some(wait) => wait,
            None => {
                let mut next = moved(state, Phase::Succeeded, input.now);
                next.canary_revision = None;
                next.iterations = 0;
                let event = match state.primary_images.as_slice() {
                    [] => format!(
                        "promotion completed, primary now at revision {}",
                        short(rev)
                    ),
                    images => format!("promotion completed, primary now {}", images.join(", ")),
                };
                write(next, event, Vec::new())
            }
        },
    }
}

fn new_revision(input: &Input, state: &State) -> Decision {
    let rev = input.revision;
    let restarting = state.phase == Phase::Progressing;
    if input.skip_analysis {
        let mut next = moved(state, Phase::Promoting, input.now);
        next.canary_revision = Some(rev.to_string());
        next.promoted_revision = rev.to_string();
        next.promoted_commit = Some(input.head.to_string());
        next.primary_images = input.images.to_vec();
        next.failed_revision = None;
        next.failed_checks = 0;
        next.iterations = 0;
        return write_short(
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
    }
    let mut next = moved(state, Phase::Progressing, input.now);
    next.canary_revision = Some(rev.to_string());
    next.canary_weight = Weight::ZERO;
    next.failed_checks = 0;
    next.iterations = 0;
    let event = if restarting {
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
    write(next, event, Vec::new())
}

fn progress(input: &Input, state: &State) -> Decision {
    if let Some(wait) = not_due(input, state) {
        return wait;
    }
    let analysis = input.analysis;
    let weight = state.canary_weight;
    // No traffic reaches the canary yet, so there is nothing to measure (Flagger's rule):
    // the first step only opens the route.
    if weight == Weight::ZERO && state.iterations == 0 && state.failed_checks == 0 {
        let to = next_weight(analysis, weight);
        let mut next = stepped(state, input.now);
        next.canary_weight = to;
        next.phase = Phase::Progressing;
        return write(
            next,
            format!("advance canary weight {weight} -> {to}"),
            Vec::new(),
        );
    }
    let report = match input.gates {
        Some(r) if fresh_report(r, input, state) => r,
        _ => {
            return Decision::NeedGates {
                canary_weight: weight,
            }
        }
    };
    let details: Vec<String> = report.checks.iter().map(|c| c.describe()).collect();
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| c.describe())
        .collect();
    if !failed.is_empty() {
        let count = state.failed_checks.saturating_add(1);
        let threshold = analysis.threshold;
        let counted = format!("(failed checks {count}/{threshold})");
        if count >= threshold {
            // weir rolls back in the same step that reaches the threshold; Flagger waits
            // one more interval to notice.
            let mut next = moved(state, Phase::Failed, input.now);
            next.canary_weight = Weight::ZERO;
            next.failed_checks = count;
            next.failed_revision = Some(input.revision.to_string());
            next.canary_revision = None;
            return write_short(
                next,
                format!("rolling back, {} {counted}", failed.join(", ")),
                format!("rolling back {counted}"),
                details,
            );
        }
        let mut next = stepped(state, input.now);
        next.failed_checks = count;
        return write_short(
            next,
            format!("halt advancement, {} {counted}", failed.join(", ")),
            format!("halt advancement {counted}"),
            details,
        );
    }
    let mut next = stepped(state, input.now);
    next.iterations = state.iterations.saturating_add(1);
    next.phase = Phase::Progressing;
    if weight < analysis.max_weight {
        let to = next_weight(analysis, weight);
        next.canary_weight = to;
        return write(
            next,
            format!("advance canary weight {weight} -> {to}"),
            details,
        );
    }
    // Max weight reached and the last check passed: the primary becomes the canary's
    // revision. Traffic stays where it is until the primary has had an interval to roll out.
    let mut next = moved(&next, Phase::Promoting, input.now);
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
    let mut next = moved(state, Phase::Finalising, input.now);
    next.canary_weight = Weight::ZERO;
    write(
        next,
        "routing all traffic to primary".to_string(),
        Vec::new(),
    )
}

/// The weight after `from`: one stepWeight more (capped at 100, which allows Flagger's
/// overshoot past maxWeight), or the next of stepWeights.
pub fn next_weight(analysis: &Analysis, from: Weight) -> Weight {
    match &analysis.steps {
        Steps::Linear(step) => from.saturating_add(*step),
        Steps::List(list) => list
            .iter()
            .copied()
            .find(|w| *w > from)
            .unwrap_or(analysis.max_weight),
    }
}

/// When the next step of `state` is due.
pub fn due_at(analysis: &Analysis, state: &State) -> DateTime<Utc> {
    ChronoDuration::from_std(analysis.interval)
        .ok()
        .and_then(|d| state.last_step_at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `Some(Idle)` until the next step is due.
fn not_due(input: &Input, state: &State) -> Option<Decision> {
    let at = due_at(input.analysis, state);
    (input.now < at).then(|| {
        idle(
            &format!("next step due at {}", at.format("%H:%M:%S")),
            Some(at),
        )
    })
}

/// Evidence counts only if it was gathered for this revision, at this weight, after the
/// step became due, and not in the future.
fn fresh_report(report: &GateReport, input: &Input, state: &State) -> bool {
    state.canary_revision.as_deref() == Some(report.revision.as_str())
        && report.canary_weight == state.canary_weight
        && report.at >= due_at(input.analysis, state)
        && report.at <= input.now
        && report.checks.len() == input.analysis.metrics.len()
}

fn fresh(phase: Phase, revision: &str, now: DateTime<Utc>) -> State {
    State {
        phase,
        canary_weight: Weight::ZERO,
        iterations: 0,
        failed_checks: 0,
        canary_revision: None,
        promoted_revision: revision.to_string(),
        promoted_commit: None,
        failed_revision: None,
        primary_images: Vec::new(),
        last_step_at: now,
        last_transition_at: now,
        message: String::new(),
    }
}

/// The state with a new phase, stamped now.
fn moved(state: &State, phase: Phase, now: DateTime<Utc>) -> State {
    let mut next = stepped(state, now);
    if next.phase != phase {
        next.phase = phase;
        next.last_transition_at = now;
    }
    next
}

/// The state with the step time set to now.
fn stepped(state: &State, now: DateTime<Utc>) -> State {
    let mut next = state.clone();
    next.last_step_at = now;
    next
}

fn write(next: State, event: String, details: Vec<String>) -> Decision {
    let summary = event.clone();
    write_short(next, event, summary, details)
}

fn write_short(mut next: State, event: String, summary: String, details: Vec<String>) -> Decision {
    next.message = event.clone();
    Decision::Write(Step {
        next,
        event,
        summary,
        details,
    })
}

/// The record unchanged but for its message: a repair is not a step, so the next step
/// stays due when it was.
fn stepped_keep_time(state: &State) -> State {
    state.clone()
}

fn idle(reason: &str, wake_at: Option<DateTime<Utc>>) -> Decision {
    Decision::Idle {
        reason: reason.to_string(),
        wake_at,
    }
}

/// The first 7 characters of a revision, as git shows commits (by character, so a
/// hand-edited value cannot split one).
pub fn short(rev: &str) -> &str {
    match rev.char_indices().nth(7) {
        Some((i, _)) => &rev[..i],
        None => rev,
    }
}
