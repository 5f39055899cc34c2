//! A rehearsal: the steps a release takes when every gate passes at once, decided by the
//! planner itself, so that a pull request shows them before they happen (`weir plan`, PR
//! mode). It answers gates with passing values and never judges anything itself.

use super::gates::{ask_at_once, Answers};
use super::{CheckResult, Decision, Input, Owned};
use crate::core::control::Control;
use crate::core::hook::HookOutcome;
use crate::core::record::State;
use crate::core::spec::{Analysis, HookType, MetricCheck, Phase, Webhook, Weight};
use chrono::{DateTime, Utc};
use std::future::Future;

/// One step of a rehearsal: what the record says after it, and what the commit says.
#[derive(Debug, Clone, PartialEq)]
pub struct Rehearsed {
    /// The phase after the step.
    pub phase: Phase,
    /// The canary's weight after the step.
    pub canary_weight: Weight,
    /// Analysed iterations after the step.
    pub iterations: u32,
    /// The commit subject's event.
    pub event: String,
    /// Time from the start of the release to this step, when every step is taken as soon
    /// as it is due.
    pub after: std::time::Duration,
}

/// The most steps a rehearsal takes; a release needs at most ~110 (stepWeight 1).
const REHEARSAL_LIMIT: usize = 500;

/// Every gate passing at once, at one time.
struct Passing<'a> {
    analysis: &'a Analysis,
    now: DateTime<Utc>,
}

impl Answers for Passing<'_> {
    fn metrics(&self) -> impl Future<Output = Vec<CheckResult>> + Send {
        std::future::ready(self.analysis.metrics.iter().map(passing).collect())
    }

    fn hook(&self, hook: &Webhook, _revision: &str) -> impl Future<Output = HookOutcome> + Send {
        // A rollback hook that passes rolls back: in a rehearsal, nobody asks for it.
        std::future::ready(match hook.kind {
            HookType::Rollback => HookOutcome::Failed("rehearsed".to_string()),
            _ => HookOutcome::Passed,
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

/// The steps a release of `revision` takes from `state` when every gate passes at once:
/// metrics inside their bounds, every webhook answering 2xx, each step taken as soon as it
/// is due. The planner itself decides each step, so the rehearsal is the sequence `step`
/// would commit.
pub fn rehearse(
    analysis: &Analysis,
    skip_analysis: bool,
    state: &State,
    revision: &str,
    images: &[String],
) -> Vec<Rehearsed> {
    let start = state.last_step_at;
    let mut state = state.clone();
    let mut now = start;
    let mut steps = Vec::new();
    let control = Control::default();
    for _ in 0..REHEARSAL_LIMIT {
        let input = Input {
            analysis,
            skip_analysis,
            suspend: false,
            state: Some(&state),
            revision,
            head: revision,
            images,
            owned: &Owned::Current,
            control: &control,
            gates: None,
            last_look: None,
            revert_on_deletion: state.revert_on_deletion,
            cluster: &crate::core::cluster::ClusterState::Unknown,
            now,
        };
        let decision = ask_at_once(input, now, &Passing { analysis, now }).decision;
        match decision {
            Decision::Write(step) => {
                state = step.next;
                steps.push(Rehearsed {
                    phase: state.phase,
                    canary_weight: state.canary_weight,
                    iterations: state.iterations,
                    event: step.event,
                    after: (now - start).to_std().unwrap_or_default(),
                });
                if matches!(state.phase, Phase::Succeeded | Phase::Failed) {
                    break;
                }
            }
            // Not due yet (or nothing to do): the next look is when it is due.
            Decision::Idle { wake_at, .. } => match wake_at {
                Some(at) if at > now => now = at,
                _ => break,
            },
            Decision::NeedGates { .. } => break,
        }
    }
    steps
}

/// A metric result inside the bounds of `check`.
fn passing(check: &MetricCheck) -> CheckResult {
    CheckResult {
        name: check.name.clone(),
        value: Ok(check.min.or(check.max).unwrap_or(0.0)),
        min: check.min,
        max: check.max,
        unreachable: false,
    }
}
