//! Asking for evidence: the one loop that plans, asks for what the planner lacks, and plans
//! again with the answers; the order webhooks are asked in; the call each webhook gets.
//!
//! The loop is generic over how a gate is answered ([`Answers`]): the engine answers through
//! its ports, a rehearsal and the tests answer at once. It must never answer a gate itself,
//! do I/O, or read a clock: the time after the answers is the answerer's to say.

use super::{plan, CheckResult, Decision, GateReport, HookResult, Input};
use crate::core::hook::{HookCall, HookOutcome, HookPayload};
use crate::core::spec::{Analysis, Canary, HookType, Webhook};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;

/// The most rounds of asking for one decision. The planner needs at most three (the hooks,
/// then the metrics, then a confirm gate once the analysis passed); a decision that still
/// asks after these is left undecided.
pub const MAX_ROUNDS: usize = 4;

/// How the planner's questions are answered.
pub trait Answers {
    /// The values of every metric of the analysis, in its order.
    fn metrics(&self) -> impl Future<Output = Vec<CheckResult>> + Send;
    /// What one webhook answers to its call about `revision`.
    fn hook(&self, hook: &Webhook, revision: &str) -> impl Future<Output = HookOutcome> + Send;
    /// The time once answers are in: the `now` of the decision made with them.
    fn now(&self) -> DateTime<Utc>;
}

/// A decision made with all the evidence it asked for, and that evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    /// The decision; still [`Decision::NeedGates`] after [`MAX_ROUNDS`] rounds of asking.
    pub decision: Decision,
    /// The evidence gathered, if any was asked for.
    pub report: Option<GateReport>,
}

/// Decides with `input` (whose `gates` should be `None`), and while the decision asks for
/// evidence, asks `answers` for what the report lacks and decides again: the hooks of each
/// type asked, in order, then the metrics. A report about another weight starts afresh;
/// a new report is dated `first_look`. Decisions made with answers take `answers.now()` and
/// no last look (the look is this one).
pub async fn ask<A: Answers>(input: Input<'_>, first_look: DateTime<Utc>, answers: &A) -> Asked {
    let mut decision = plan(&input);
    let mut report: Option<GateReport> = None;
    for _round in 0..MAX_ROUNDS {
        let Decision::NeedGates {
            canary_weight,
            metrics,
            hooks,
        } = &decision
        else {
            break;
        };
        let mut gathered = match report.take() {
            Some(r) if r.canary_weight == *canary_weight => r,
            _ => GateReport {
                revision: input.revision.to_string(),
                canary_weight: *canary_weight,
                at: first_look,
                checks: None,
                hooks: BTreeMap::new(),
            },
        };
        for kind in hooks {
            if gathered.hooks.contains_key(kind) {
                continue;
            }
            let answered = ask_hooks(input.analysis, *kind, &gathered.revision, answers).await;
            gathered.hooks.insert(*kind, answered);
        }
        if *metrics && gathered.checks.is_none() {
            gathered.checks = Some(answers.metrics().await);
        }
        let now = answers.now();
        gathered.at = gathered.at.min(now);
        decision = plan(&Input {
            gates: Some(&gathered),
            last_look: None,
            now,
            ..input.clone()
        });
        report = Some(gathered);
    }
    Asked { decision, report }
}

/// [`ask`] for answerers whose answers are ready at once (a rehearsal, a test).
///
/// # Panics
/// When an answer is not ready when first polled: such an answerer needs a runtime, and
/// [`ask`] awaited on it.
pub fn ask_at_once<A: Answers>(input: Input<'_>, first_look: DateTime<Utc>, answers: &A) -> Asked {
    let asking = std::pin::pin!(ask(input, first_look, answers));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match asking.poll(&mut cx) {
        std::task::Poll::Ready(asked) => asked,
        std::task::Poll::Pending => {
            panic!("ask_at_once: an answer was not ready at once; await `ask` instead")
        }
    }
}

/// The webhooks of one type, asked in their order until one settles the type: the first
/// that fails (the gate is closed), or for rollback hooks the first that passes (it asks
/// for a rollback), as Flagger calls them.
async fn ask_hooks<A: Answers>(
    analysis: &Analysis,
    kind: HookType,
    revision: &str,
    answers: &A,
) -> Vec<HookResult> {
    let mut out = Vec::new();
    for hook in analysis.hooks(kind) {
        let (passed, message) = match answers.hook(hook, revision).await {
            HookOutcome::Passed => (true, "passed".to_string()),
            HookOutcome::Failed(why) => (false, why),
        };
        out.push(HookResult {
            name: hook.name.clone(),
            passed,
            message,
            mute_alert: hook.mute_alert,
        });
        if settles(kind, passed) {
            break;
        }
    }
    out
}

/// Whether an answer of a webhook of `kind` ends the asking of that type: a failure closes
/// the gate, except for rollback hooks, where a pass asks for the rollback.
pub fn settles(kind: HookType, passed: bool) -> bool {
    if kind == HookType::Rollback {
        passed
    } else {
        !passed
    }
}

/// The call of one webhook: Flagger's payload, in which confirm-rollout, rollback,
/// post-rollout and event hooks get `phase` (the recorded phase, or the phase the step
/// reached), and the analysis hooks get `Progressing`, as Flagger sends them.
pub fn hook_call(
    canary: &Canary,
    hook: &Webhook,
    phase: &str,
    checksum: &str,
    metadata: BTreeMap<String, String>,
) -> HookCall {
    HookCall {
        name: hook.name.clone(),
        url: hook.url.clone(),
        payload: HookPayload {
            name: canary.name.clone(),
            namespace: canary.namespace.clone(),
            phase: payload_phase(hook.kind, phase).to_string(),
            checksum: checksum.to_string(),
            metadata,
        },
        timeout: hook.timeout,
        retries: hook.retries,
        insecure_tls: hook.disable_tls,
    }
}

/// The phase a webhook of `kind` is sent, given the phase of the app.
fn payload_phase(kind: HookType, phase: &str) -> &str {
    match kind {
        HookType::ConfirmRollout | HookType::Rollback | HookType::PostRollout | HookType::Event => {
            phase
        }
        _ => "Progressing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::control::Control;
    use crate::core::plan::Owned;
    use crate::core::record::State;
    use crate::core::spec::{MetricCheck, MetricSource, Phase, Steps, Strategy, Weight};
    use chrono::TimeZone;
    use std::cell::RefCell;
    use std::time::Duration;

    const REV: &str = "abc1234def5678";

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() + chrono::TimeDelta::seconds(secs)
    }

    fn webhook(name: &str, kind: HookType) -> Webhook {
        Webhook {
            name: name.into(),
            kind,
            url: format!("http://hooks.test/{name}"),
            timeout: Duration::from_secs(10),
            retries: 0,
            metadata: BTreeMap::new(),
            mute_alert: false,
            disable_tls: false,
        }
    }

    fn analysis(webhooks: Vec<Webhook>) -> Analysis {
        Analysis {
            interval: Duration::from_secs(60),
            threshold: 2,
            strategy: Strategy::Canary {
                steps: Steps::Linear(Weight::new(20).unwrap()),
                max_weight: Weight::new(40).unwrap(),
            },
            step_weight_promotion: None,
            mirror: false,
            mirror_weight: None,
            session_affinity: None,
            metrics: vec![MetricCheck {
                name: "request-success-rate".into(),
                source: MetricSource::RequestSuccessRate,
                interval: crate::core::duration::GoDuration(Duration::from_secs(60)),
                min: Some(99.0),
                max: None,
                variables: Default::default(),
                at: (1, 1),
            }],
            webhooks,
            alerts: Vec::new(),
            metrics_outage_grace: crate::core::spec::canary::DEFAULT_METRICS_OUTAGE_GRACE,
            ready: Default::default(),
        }
    }

    /// Answers every metric with `value`, each hook as `fails` says, and writes down what
    /// was asked, in order.
    struct Script {
        value: f64,
        fails: &'static [&'static str],
        asked: RefCell<Vec<String>>,
    }

    impl Answers for Script {
        fn metrics(&self) -> impl Future<Output = Vec<CheckResult>> + Send {
            self.asked.borrow_mut().push("metrics".into());
            std::future::ready(vec![CheckResult {
                name: "request-success-rate".into(),
                value: Ok(self.value),
                min: Some(99.0),
                max: None,
                unreachable: false,
            }])
        }
        fn hook(&self, hook: &Webhook, _: &str) -> impl Future<Output = HookOutcome> + Send {
            self.asked.borrow_mut().push(hook.name.clone());
            std::future::ready(if self.fails.contains(&hook.name.as_str()) {
                HookOutcome::Failed("HTTP 403".into())
            } else {
                HookOutcome::Passed
            })
        }
        fn now(&self) -> DateTime<Utc> {
            t(61)
        }
    }

    fn progressing(weight: u32) -> State {
        State {
            phase: Phase::Progressing,
            canary_weight: Weight::new(weight).unwrap(),
            iterations: u32::from(weight > 0),
            canary_revision: Some(REV.into()),
            promoted_revision: "0ld".into(),
            last_step_at: t(0),
            last_transition_at: t(0),
            ..State::default()
        }
    }

    #[test]
    fn hooks_are_asked_in_flaggers_order() {
        use HookType::*;
        // (case, webhooks, hooks that fail, the recorded weight, what is asked in order,
        // the phase decided)
        type Row = (
            &'static str,
            Vec<Webhook>,
            &'static [&'static str],
            u32,
            &'static [&'static str],
            Phase,
        );
        let cases: Vec<Row> = vec![
            (
                "first step: rollback and pre-rollout hooks, no metrics",
                vec![webhook("pre", PreRollout), webhook("rb", Rollback)],
                &["rb"],
                0,
                &["rb", "pre"],
                Phase::Progressing,
            ),
            (
                "later steps: rollback and rollout hooks, then the metrics",
                vec![webhook("load", Rollout), webhook("rb", Rollback)],
                &["rb"],
                20,
                &["rb", "load", "metrics"],
                Phase::Progressing,
            ),
            (
                "a failed rollout hook stops its type and counts without metrics",
                vec![webhook("a", Rollout), webhook("b", Rollout)],
                &["a"],
                20,
                &["a"],
                Phase::Progressing,
            ),
            (
                "rollback hooks are asked until one passes, which rolls back",
                vec![
                    webhook("r1", Rollback),
                    webhook("r2", Rollback),
                    webhook("r3", Rollback),
                ],
                &["r1"],
                20,
                &["r1", "r2"],
                Phase::Failed,
            ),
            (
                "a confirm gate is asked once the analysis passed",
                vec![webhook("gate", ConfirmTrafficIncrease)],
                &[],
                20,
                &["metrics", "gate"],
                Phase::Progressing,
            ),
            (
                "post-rollout and event hooks are never asked for evidence",
                vec![webhook("post", PostRollout), webhook("ev", Event)],
                &[],
                20,
                &["metrics"],
                Phase::Progressing,
            ),
        ];
        for (name, webhooks, fails, weight, want, phase) in cases {
            let a = analysis(webhooks);
            let state = progressing(weight);
            let script = Script {
                value: 99.5,
                fails,
                asked: RefCell::new(Vec::new()),
            };
            let control = Control::default();
            let input = Input {
                analysis: &a,
                skip_analysis: false,
                suspend: false,
                state: Some(&state),
                revision: REV,
                head: REV,
                images: &[],
                owned: &Owned::Current,
                control: &control,
                gates: None,
                last_look: None,
                revert_on_deletion: false,
                cluster: &crate::core::cluster::ClusterState::Unknown,
                now: t(61),
            };
            let asked = ask_at_once(input, t(60), &script);
            assert_eq!(script.asked.borrow().as_slice(), want, "{name}");
            let Decision::Write(step) = &asked.decision else {
                panic!("{name}: {:?}", asked.decision);
            };
            assert_eq!(step.next.phase, phase, "{name}: {}", step.event);
            let report = asked.report.expect("evidence was asked for");
            assert_eq!(report.at, t(60), "{name}: dated at the first look");
        }
    }

    #[test]
    fn a_type_is_settled_by_its_first_failure_or_its_first_rollback_pass() {
        use HookType::*;
        let cases = [
            (ConfirmRollout, true, false),
            (ConfirmRollout, false, true),
            (PreRollout, false, true),
            (Rollout, true, false),
            (ConfirmTrafficIncrease, false, true),
            (ConfirmPromotion, false, true),
            (Rollback, true, true),
            (Rollback, false, false),
        ];
        for (kind, passed, want) in cases {
            assert_eq!(settles(kind, passed), want, "{kind} passed={passed}");
        }
    }

    #[test]
    fn each_hook_type_is_sent_flaggers_phase() {
        use HookType::*;
        let cases = [
            (ConfirmRollout, "Waiting"),
            (PreRollout, "Progressing"),
            (Rollout, "Progressing"),
            (ConfirmTrafficIncrease, "Progressing"),
            (ConfirmPromotion, "Progressing"),
            (PostRollout, "Waiting"),
            (Rollback, "Waiting"),
            (Event, "Waiting"),
        ];
        for (kind, want) in cases {
            assert_eq!(payload_phase(kind, "Waiting"), want, "{kind}");
        }
    }
}
