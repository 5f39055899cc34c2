//! The planner: table cases and property tests, no I/O.
//!
//! Every case states the whole decision it expects; the properties drive the planner alone
//! through many ticks (its output fed back as the next state) and check Flagger's rules on
//! every step.

use chrono::{DateTime, Duration as TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use std::time::Duration;
use weir::core::control::Control;
use weir::core::duration::GoDuration;
use weir::core::plan::{
    due_at, next_weight, plan, CheckResult, Decision, GateReport, Input, Owned, Step,
};
use weir::core::record::{Interval, Reading, State, MAX_INTERVALS};
use weir::core::spec::{
    Analysis, MetricCheck, MetricSource, Phase, Steps, Strategy as Rollout, Weight,
};
use weir::core::text::short;
use Phase::{Failed, Finalising, Initialized, Progressing, Promoting, Succeeded};

/// The revision under analysis in most cases (`abc1234` when shortened).
const REV: &str = "abc1234def5678";
/// The revision the primary runs.
const PRIMARY: &str = "0ff1ce0cafe";
/// A revision pushed after [`REV`].
const NEWER: &str = "fedcba9876543";
const IMAGE: &str = "ghcr.io/acme/backend:6.0.0";
/// The commit every case is planned on; a primary taken now comes from it.
const HEAD: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

/// The images the app's build gives its target at `HEAD`.
fn images_now() -> Vec<String> {
    vec!["ghcr.io/acme/backend:6.1.0".to_string()]
}

/// Weir's folder as the record implies it, the usual case.
const CURRENT: Owned = Owned::Current;

/// No request in the control file.
const NO_CONTROL: Control = Control {
    paused: false,
    approve: None,
    abort: None,
    retry: None,
};

/// The canary strategy's steps and maximum weight of an analysis.
fn canary_steps(a: &Analysis) -> (&Steps, Weight) {
    match &a.strategy {
        Rollout::Canary { steps, max_weight } => (steps, *max_weight),
        other => panic!("not the canary strategy: {other:?}"),
    }
}

/// 10:00:00, when the recorded state's last step was committed.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

/// `t0` plus some seconds; the default interval is 60 s, so `t(60)` is due.
fn t(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn w(percent: u32) -> Weight {
    Weight::new(percent).unwrap()
}

fn metric(name: &str, source: MetricSource, min: Option<f64>, max: Option<f64>) -> MetricCheck {
    MetricCheck {
        name: name.to_string(),
        source,
        interval: GoDuration(Duration::from_secs(60)),
        min,
        max,
        variables: Default::default(),
        at: (1, 1),
    }
}

fn success_rate() -> MetricCheck {
    let source = MetricSource::RequestSuccessRate;
    metric("request-success-rate", source, Some(99.0), None)
}

fn duration() -> MetricCheck {
    let source = MetricSource::RequestDuration;
    metric("request-duration", source, None, Some(500.0))
}

/// Interval 1m, threshold 5, success rate >= 99 and p99 duration <= 500.
fn linear(step: u32, max: u32) -> Analysis {
    Analysis {
        interval: Duration::from_secs(60),
        threshold: 5,
        strategy: Rollout::Canary {
            steps: Steps::Linear(w(step)),
            max_weight: w(max),
        },
        step_weight_promotion: None,
        mirror: false,
        mirror_weight: None,
        session_affinity: None,
        metrics: vec![success_rate(), duration()],
        webhooks: Vec::new(),
        alerts: Vec::new(),
        metrics_outage_grace: weir::core::spec::canary::DEFAULT_METRICS_OUTAGE_GRACE,
        ready: Default::default(),
    }
}

/// stepWeight 10, maxWeight 50.
fn default_analysis() -> Analysis {
    linear(10, 50)
}

/// stepWeights as written; maxWeight is the last one, as the spec validation sets it.
fn listed(weights: &[u32]) -> Analysis {
    Analysis {
        strategy: Rollout::Canary {
            steps: Steps::List(weights.iter().map(|p| w(*p)).collect()),
            max_weight: w(*weights.last().unwrap()),
        },
        ..default_analysis()
    }
}

fn threshold(n: u32) -> Analysis {
    Analysis {
        threshold: n,
        ..default_analysis()
    }
}

/// A record of `REV` in `phase` at `weight`, last step at `t0`; the primary runs `PRIMARY`.
fn state(phase: Phase, weight: u32) -> State {
    State {
        phase,
        canary_weight: w(weight),
        iterations: 0,
        failed_checks: 0,
        canary_revision: Some(REV.to_string()),
        promoted_revision: PRIMARY.to_string(),
        promoted_commit: None,
        failed_revision: None,
        primary_images: vec![IMAGE.to_string()],
        last_step_at: t0(),
        last_transition_at: t(-600),
        message: "previous step".to_string(),
        ..State::default()
    }
}

/// Under analysis, with one passed iteration per 10 percent.
fn progressing(weight: u32) -> State {
    State {
        iterations: weight / 10,
        ..state(Progressing, weight)
    }
}

/// `REV` promoted, traffic returning to the primary.
fn promoting(weight: u32) -> State {
    state(Promoting, weight).promoted(REV)
}

/// A record at rest: the primary runs `promoted`, nothing under analysis.
fn at_rest(phase: Phase, promoted: &str) -> State {
    State {
        canary_revision: None,
        ..state(phase, 0).promoted(promoted)
    }
}

/// Small edits of a record, so a case fits on a line.
trait Edit {
    fn failed(self, checks: u32) -> State;
    fn canary(self, revision: &str) -> State;
    fn promoted(self, revision: &str) -> State;
    fn failed_rev(self, revision: &str) -> State;
    fn images(self, images: &[&str]) -> State;
}

impl Edit for State {
    fn failed(self, checks: u32) -> State {
        State {
            failed_checks: checks,
            ..self
        }
    }
    fn canary(self, revision: &str) -> State {
        State {
            canary_revision: Some(revision.to_string()),
            ..self
        }
    }
    fn promoted(self, revision: &str) -> State {
        State {
            promoted_revision: revision.to_string(),
            ..self
        }
    }
    fn failed_rev(self, revision: &str) -> State {
        State {
            failed_revision: Some(revision.to_string()),
            ..self
        }
    }
    fn images(self, images: &[&str]) -> State {
        State {
            primary_images: images.iter().map(|i| i.to_string()).collect(),
            ..self
        }
    }
}

/// Gates of `REV` at `weight`, gathered at 10:01:00 (the moment the step became due), with
/// these values for success rate and duration.
fn gates(weight: u32, success: Result<f64, &str>, duration: Result<f64, &str>) -> GateReport {
    let check = |m: &MetricCheck, value: Result<f64, &str>| CheckResult {
        name: m.name.clone(),
        value: value.map_err(str::to_string),
        min: m.min,
        max: m.max,
        unreachable: false,
    };
    let metrics = default_analysis().metrics;
    GateReport {
        revision: REV.to_string(),
        canary_weight: w(weight),
        at: t(60),
        checks: Some(vec![
            check(&metrics[0], success),
            check(&metrics[1], duration),
        ]),
        hooks: Default::default(),
    }
}

/// The record's entry for a report of metric values.
fn interval_of(report: &GateReport) -> Interval {
    let gates = report.checks.iter().flatten().map(|c| Reading {
        gate: c.name.clone(),
        value: c.value.clone().ok().filter(|v| v.is_finite()),
        note: match &c.value {
            Ok(v) if v.is_finite() => None,
            Ok(v) => Some(v.to_string()),
            Err(why) => Some(why.clone()),
        },
        min: c.min,
        max: c.max,
        passed: c.passed(),
    });
    Interval {
        at: report.at,
        canary_weight: report.canary_weight,
        gates: gates.collect(),
    }
}

fn passing(weight: u32) -> GateReport {
    gates(weight, Ok(99.5), Ok(120.0))
}

fn failing(weight: u32) -> GateReport {
    gates(weight, Ok(91.3), Ok(120.0))
}

/// A change the expected record has over the input record.
type Patch = Box<dyn Fn(&mut State)>;

/// What a case expects.
enum Want {
    Idle(&'static str, Option<DateTime<Utc>>),
    NeedGates(u32),
    /// The expected record is the input record with `patch` applied, stamped now, with the
    /// event as its message (and a new transition time when the phase changed). A step
    /// judged on gates lists every check of the case's report in its details.
    Write {
        snapshot: bool,
        event: String,
        patch: Patch,
        judged: bool,
    },
}

struct Case {
    name: &'static str,
    analysis: Analysis,
    skip: bool,
    suspend: bool,
    state: Option<State>,
    revision: &'static str,
    gates: Option<GateReport>,
    now: DateTime<Utc>,
    want: Option<Want>,
}

/// A case on the default analysis for `REV`, at 10:01:00 (due), without gates.
fn case(name: &'static str, state: State) -> Case {
    Case {
        name,
        analysis: default_analysis(),
        skip: false,
        suspend: false,
        state: Some(state),
        revision: REV,
        gates: None,
        now: t(60),
        want: None,
    }
}

impl Case {
    fn analysis(mut self, analysis: Analysis) -> Case {
        self.analysis = analysis;
        self
    }
    fn rev(mut self, revision: &'static str) -> Case {
        self.revision = revision;
        self
    }
    fn gates(mut self, report: GateReport) -> Case {
        self.gates = Some(report);
        self
    }
    fn now(mut self, now: DateTime<Utc>) -> Case {
        self.now = now;
        self
    }
    fn skip_analysis(mut self) -> Case {
        self.skip = true;
        self
    }
    fn suspended(mut self) -> Case {
        self.suspend = true;
        self
    }
    fn idle(mut self, reason: &'static str, wake_at: Option<DateTime<Utc>>) -> Case {
        self.want = Some(Want::Idle(reason, wake_at));
        self
    }
    fn needs_gates(mut self, weight: u32) -> Case {
        self.want = Some(Want::NeedGates(weight));
        self
    }
    fn want(mut self, snapshot: bool, judged: bool, event: &str, patch: Patch) -> Case {
        let event = event.to_string();
        self.want = Some(Want::Write {
            snapshot,
            event,
            patch,
            judged,
        });
        self
    }
    /// A step taken without gates.
    fn writes(self, snapshot: bool, event: &str, patch: impl Fn(&mut State) + 'static) -> Case {
        self.want(snapshot, false, event, Box::new(patch))
    }
    /// A passed run that moves the canary weight.
    fn advances(self, from: u32, to: u32) -> Case {
        let event = format!("advance canary weight {from} -> {to}");
        self.want(
            false,
            true,
            &event,
            Box::new(move |s| {
                s.canary_weight = w(to);
                s.iterations += 1;
            }),
        )
    }
    /// A passed run at maxWeight: the primary takes the canary's revision.
    fn promotes(self, weight: u32) -> Case {
        let event = format!(
            "promoting revision abc1234 to the primary, canary weight stays {weight} while it rolls out"
        );
        self.want(
            true,
            true,
            &event,
            Box::new(|s| {
                s.phase = Promoting;
                s.promoted_revision = REV.to_string();
                s.iterations += 1;
            }),
        )
    }
    /// A failed run below the threshold: the weight stays, the count grows.
    fn halts(self, event: &str, failed_checks: u32) -> Case {
        let patch = move |s: &mut State| s.failed_checks = failed_checks;
        self.want(false, true, event, Box::new(patch))
    }
    /// A failed run that reaches the threshold.
    fn rolls_back(self, event: &str, failed_checks: u32) -> Case {
        let patch = move |s: &mut State| {
            s.phase = Failed;
            s.canary_weight = Weight::ZERO;
            s.failed_checks = failed_checks;
            s.failed_revision = Some(REV.to_string());
            s.canary_revision = None;
        };
        self.want(false, true, event, Box::new(patch))
    }

    fn check(&self) {
        let images = images_now();
        let input = Input {
            analysis: &self.analysis,
            skip_analysis: self.skip,
            suspend: self.suspend,
            state: self.state.as_ref(),
            revision: self.revision,
            head: HEAD,
            images: &images,
            owned: &CURRENT,
            control: &NO_CONTROL,
            gates: self.gates.as_ref(),
            last_look: None,
            revert_on_deletion: false,
            cluster: &weir::core::cluster::ClusterState::Unknown,
            now: self.now,
        };
        // Alerts have their own cases; these compare the rest of the decision.
        let mut got = plan(&input);
        if let Decision::Write(step) = &mut got {
            step.alert = None;
        }
        let want = match self.want.as_ref().expect("every case states what it wants") {
            Want::Idle(reason, wake_at) => Decision::Idle {
                reason: reason.to_string(),
                wake_at: *wake_at,
            },
            Want::NeedGates(weight) => Decision::NeedGates {
                canary_weight: w(*weight),
                metrics: true,
                hooks: Vec::new(),
            },
            Want::Write {
                snapshot,
                event,
                patch,
                judged,
            } => {
                let before = self.state.clone().unwrap_or_else(|| State {
                    phase: Initialized,
                    canary_weight: Weight::ZERO,
                    iterations: 0,
                    failed_checks: 0,
                    canary_revision: None,
                    promoted_revision: self.revision.to_string(),
                    promoted_commit: None,
                    failed_revision: None,
                    primary_images: Vec::new(),
                    last_step_at: self.now,
                    last_transition_at: self.now,
                    message: String::new(),
                    ..State::default()
                });
                let mut next = before.clone();
                patch(&mut next);
                next.last_step_at = self.now;
                next.message = event.clone();
                if next.phase != before.phase {
                    next.last_transition_at = self.now;
                }
                let mut details: Vec<String> = match (judged, &self.gates) {
                    (false, _) => Vec::new(),
                    (true, Some(report)) => report
                        .checks
                        .iter()
                        .flatten()
                        .map(|c| c.describe())
                        .collect(),
                    (true, None) => panic!("case {}: a judged step needs gates", self.name),
                };
                // The body says what the subject leaves out.
                if let Some(w) = event
                    .strip_suffix(" while it rolls out")
                    .and_then(|e| e.rsplit_once("canary weight stays "))
                    .map(|(_, w)| w.to_string())
                {
                    details.insert(
                        0,
                        format!("canary weight stays {w} while the primary rolls out"),
                    );
                }
                if event.contains("(spec.skipAnalysis)") {
                    details.insert(
                        0,
                        "spec.skipAnalysis is true: the revision is promoted without checks"
                            .to_string(),
                    );
                }
                // A judged step keeps the readings it was judged on in the record.
                // (An interval with nothing to read is not kept.)
                if let (true, Some(report)) = (judged, &self.gates) {
                    let judged = interval_of(report);
                    if !judged.gates.is_empty() {
                        next.history.push(judged);
                    }
                }
                if *snapshot {
                    next.promoted_commit = Some(HEAD.to_string());
                    next.primary_images = images_now();
                }
                Decision::Write(Step {
                    next,
                    event: event.clone(),
                    summary: summary_of(event),
                    details,
                    alert: None,
                    retried: false,
                })
            }
        };
        assert_eq!(got, want, "case: {}", self.name);
    }
}

/// The event as a commit subject shows it: the failing checks and the promotion's wait go
/// to the body.
fn summary_of(event: &str) -> String {
    if let Some(at) = event.find(" (failed checks") {
        if let Some((head, _)) = event.split_once(", ") {
            return format!("{head}{}", &event[at..]);
        }
    }
    if let Some(head) = event.strip_suffix(" while it rolls out") {
        if let Some((head, _)) = head.split_once(", canary weight stays") {
            return head.to_string();
        }
    }
    event.replace(" (spec.skipAnalysis)", "")
}

fn check_all(cases: impl IntoIterator<Item = Case>) {
    for case in cases {
        case.check();
    }
}

#[test]
fn starts_and_idles() {
    let start = |s: &mut State| {
        s.phase = Progressing;
        s.canary_revision = Some(REV.to_string());
    };
    let no_state = Case {
        state: None,
        ..case("no state: initialize, snapshot the primary", progressing(0))
    };
    let initialized = "initialization done, primary serves all traffic";
    let current = "primary is at the current revision abc1234";
    let starting = "new revision abc1234 detected, starting canary analysis";
    check_all([
        no_state.now(t(5)).writes(true, initialized, |_| {}),
        case("initialized, same revision", at_rest(Initialized, REV)).idle(current, None),
        case("succeeded, same revision", at_rest(Succeeded, REV)).idle(current, None),
        // A new revision is picked up at once, not an interval after the last step.
        case("initialized, new revision", at_rest(Initialized, PRIMARY))
            .now(t(1))
            .writes(false, starting, start),
        case("succeeded, new revision", at_rest(Succeeded, PRIMARY)).writes(false, starting, start),
        case("suspended, new revision", at_rest(Succeeded, PRIMARY))
            .suspended()
            .idle("suspended by spec.suspend", None),
        case("suspended mid-analysis and due", progressing(20))
            .suspended()
            .gates(passing(20))
            .idle("suspended by spec.suspend", None),
        case("skipAnalysis, new revision", at_rest(Succeeded, PRIMARY))
            .skip_analysis()
            .writes(
                true,
                "new revision abc1234 detected, skipping analysis (spec.skipAnalysis), promoting",
                |s| {
                    s.phase = Promoting;
                    s.canary_revision = Some(REV.to_string());
                    s.promoted_revision = REV.to_string();
                },
            ),
        case("skipAnalysis, same revision", at_rest(Succeeded, REV))
            .skip_analysis()
            .idle(current, None),
    ]);
}

/// Flagger checks `suspend` before anything else, initialization included.
#[test]
fn suspend_blocks_initialization() {
    Case {
        state: None,
        ..case("no state, suspended", progressing(0))
    }
    .suspended()
    .idle("suspended by spec.suspend", None)
    .check();
}

/// An old rollback must not make a later revision with the same content invisible: here
/// `REV` failed long ago, `NEWER` was promoted since, and the source is back at `REV`
/// (a revert of `NEWER`). The primary runs `NEWER`, so this is a new revision for it.
#[test]
fn an_old_failure_does_not_hide_a_revert() {
    let promoted_since = at_rest(Succeeded, NEWER).failed_rev(REV);
    case(
        "source back at a revision that failed before the last promotion",
        promoted_since,
    )
    .writes(
        false,
        "new revision abc1234 detected, starting canary analysis",
        |s| {
            s.phase = Progressing;
            s.canary_revision = Some(REV.to_string());
        },
    )
    .check();
}

/// After a rollback the source is reverted to the primary's revision: nothing failed there.
#[test]
fn a_revert_after_a_rollback_reports_the_primary() {
    let failed = at_rest(Failed, PRIMARY).failed(5).failed_rev(REV);
    case("failed, source back at the primary's revision", failed)
        .rev(PRIMARY)
        .idle("primary is at the current revision 0ff1ce0", None)
        .check();
}

#[test]
fn waits_for_the_interval_and_fresh_gates() {
    let due_at_10_01 = "next step due at 10:01:00";
    let with = |edit: fn(&mut GateReport)| {
        let mut report = passing(10);
        edit(&mut report);
        report
    };
    check_all([
        case("weight 0, not yet due", progressing(0))
            .now(t(59))
            .idle(due_at_10_01, Some(t(60))),
        case("weight 20, not yet due, gates ignored", progressing(20))
            .now(t(59))
            .gates(GateReport {
                at: t(59),
                ..passing(20)
            })
            .idle(due_at_10_01, Some(t(60))),
        // No traffic reaches the canary yet: the first step only opens the route.
        case("weight 0, due: first step without gates", progressing(0)).writes(
            false,
            "advance canary weight 0 -> 10",
            |s| s.canary_weight = w(10),
        ),
        case("weight 0, due, gates given are not used", progressing(0))
            .gates(failing(0))
            .writes(false, "advance canary weight 0 -> 10", |s| {
                s.canary_weight = w(10)
            }),
        case("stepWeights, first step", progressing(0))
            .analysis(listed(&[1, 5, 20, 50]))
            .writes(false, "advance canary weight 0 -> 1", |s| {
                s.canary_weight = w(1)
            }),
        case("weight 10, due, no gates", progressing(10)).needs_gates(10),
        case("gates of another revision", progressing(10))
            .gates(with(|r| r.revision = NEWER.to_string()))
            .needs_gates(10),
        case("gates at another weight", progressing(10))
            .gates(passing(20))
            .needs_gates(10),
        case("gates gathered before due", progressing(10))
            .gates(with(|r| r.at = t(59)))
            .needs_gates(10),
        case("gates gathered in the future", progressing(10))
            .now(t(90))
            .gates(with(|r| r.at = t(91)))
            .needs_gates(10),
        case("fewer checks than metrics", progressing(10))
            .gates(with(|r| r.checks.as_mut().unwrap().truncate(1)))
            .needs_gates(10),
        case("more checks than metrics", progressing(10))
            .gates(with(|r| {
                let checks = r.checks.as_mut().unwrap();
                checks.push(checks[0].clone())
            }))
            .needs_gates(10),
        case("gates gathered at now, later than due", progressing(10))
            .now(t(75))
            .gates(with(|r| r.at = t(75)))
            .advances(10, 20),
    ]);
}

#[test]
fn advances_on_passing_gates() {
    let steps = listed(&[1, 5, 20, 50]);
    let no_metrics = Analysis {
        metrics: Vec::new(),
        ..default_analysis()
    };
    let empty = GateReport {
        checks: Some(Vec::new()),
        ..passing(10)
    };
    check_all([
        case("stepWeight 10: 10 -> 20", progressing(10))
            .gates(passing(10))
            .advances(10, 20),
        case("a value on the bound passes", progressing(10))
            .gates(gates(10, Ok(99.0), Ok(500.0)))
            .advances(10, 20),
        // Flagger keeps the failed-check count of a revision until a new one comes.
        case("earlier failures are kept", progressing(10).failed(2))
            .gates(passing(10))
            .advances(10, 20),
        case("stepWeights: 1 -> 5", progressing(1))
            .analysis(steps.clone())
            .gates(passing(1))
            .advances(1, 5),
        case("stepWeights: 5 -> 20", progressing(5))
            .analysis(steps.clone())
            .gates(passing(5))
            .advances(5, 20),
        case("stepWeights: 20 -> 50", progressing(20))
            .analysis(steps.clone())
            .gates(passing(20))
            .advances(20, 50),
        case("stepWeights: the last one is maxWeight", progressing(50))
            .analysis(steps)
            .gates(passing(50))
            .promotes(50),
        // Flagger's overshoot: below maxWeight, one more full step is taken.
        case("stepWeight 20, maxWeight 50: 20 -> 40", progressing(20))
            .analysis(linear(20, 50))
            .gates(passing(20))
            .advances(20, 40),
        case("stepWeight 20, maxWeight 50: 40 -> 60", progressing(40))
            .analysis(linear(20, 50))
            .gates(passing(40))
            .advances(40, 60),
        case(
            "stepWeight 20, maxWeight 50: promote at 60",
            progressing(60),
        )
        .analysis(linear(20, 50))
        .gates(passing(60))
        .promotes(60),
        case("stepWeight 30: capped at 100", progressing(90))
            .analysis(linear(30, 100))
            .gates(passing(90))
            .advances(90, 100),
        case(
            "stepWeight 60, maxWeight 80: capped at 100",
            progressing(60),
        )
        .analysis(linear(60, 80))
        .gates(passing(60))
        .advances(60, 100),
        case("at maxWeight: promote", progressing(50))
            .gates(passing(50))
            .promotes(50),
        case("no metrics: an empty report passes", progressing(10))
            .analysis(no_metrics)
            .gates(empty)
            .advances(10, 20),
    ]);
}

#[test]
fn promotes_and_finalises() {
    let by = |step: u32| Analysis {
        step_weight_promotion: Some(w(step)),
        ..linear(20, 60)
    };
    let finalise = |s: &mut State| {
        s.phase = Finalising;
        s.canary_weight = Weight::ZERO;
    };
    let succeed = |s: &mut State| {
        s.phase = Succeeded;
        s.canary_revision = None;
        s.iterations = 0;
    };
    let routing = "routing all traffic to primary";
    let finalising = state(Finalising, 0).promoted(REV);
    let due_at_10_01 = "next step due at 10:01:00";
    check_all([
        case("promoting, not yet due", promoting(50))
            .now(t(30))
            .idle(due_at_10_01, Some(t(60))),
        case("promoting: all traffic back", promoting(50)).writes(false, routing, finalise),
        case("stepWeightPromotion 20: canary 60 -> 40", promoting(60))
            .analysis(by(20))
            .writes(false, "advance primary weight 40 -> 60", |s| {
                s.canary_weight = w(40)
            }),
        case("stepWeightPromotion 20: canary 40 -> 20", promoting(40))
            .analysis(by(20))
            .writes(false, "advance primary weight 60 -> 80", |s| {
                s.canary_weight = w(20)
            }),
        case("stepWeightPromotion 20: canary 20 -> 0", promoting(20))
            .analysis(by(20))
            .writes(false, routing, finalise),
        case("stepWeightPromotion above the canary weight", promoting(30))
            .analysis(by(50))
            .writes(false, routing, finalise),
        case("finalising, not yet due", finalising.clone())
            .now(t(59))
            .idle(due_at_10_01, Some(t(60))),
        case("finalising: succeeded", finalising.clone()).writes(
            false,
            "promotion completed, primary now ghcr.io/acme/backend:6.0.0",
            succeed,
        ),
        case("finalising, images unknown", finalising.clone().images(&[])).writes(
            false,
            "promotion completed, primary now at revision abc1234",
            succeed,
        ),
        case(
            "finalising, two images",
            finalising.images(&[IMAGE, "envoy:1.30"]),
        )
        .writes(
            false,
            "promotion completed, primary now ghcr.io/acme/backend:6.0.0, envoy:1.30",
            succeed,
        ),
    ]);
}

#[test]
fn halts_and_rolls_back_on_failed_checks() {
    check_all([
        case("success rate below min", progressing(10))
            .gates(failing(10))
            .halts(
                "halt advancement, request-success-rate 91.3 < 99 (failed checks 1/5)",
                1,
            ),
        case("duration above max", progressing(10))
            .gates(gates(10, Ok(99.9), Ok(612.5)))
            .halts(
                "halt advancement, request-duration 612.5 > 500 (failed checks 1/5)",
                1,
            ),
        case("no data", progressing(10))
            .gates(gates(10, Err("no data"), Ok(120.0)))
            .halts(
                "halt advancement, request-success-rate no data (need >= 99) (failed checks 1/5)",
                1,
            ),
        case("NaN", progressing(10))
            .gates(gates(10, Ok(f64::NAN), Ok(120.0)))
            .halts(
                "halt advancement, request-success-rate NaN (need >= 99) (failed checks 1/5)",
                1,
            ),
        case("HTTP error", progressing(10))
            .gates(gates(10, Ok(99.9), Err("HTTP 503 Service Unavailable")))
            .halts(
                "halt advancement, request-duration HTTP 503 Service Unavailable (need <= 500) \
                 (failed checks 1/5)",
                1,
            ),
        case(
            "two failures in one run count once",
            progressing(30).failed(1),
        )
        .gates(gates(30, Ok(91.3), Ok(612.5)))
        .halts(
            "halt advancement, request-success-rate 91.3 < 99, request-duration 612.5 > 500 \
                 (failed checks 2/5)",
            2,
        ),
        case("a failure at maxWeight does not promote", progressing(50))
            .gates(failing(50))
            .halts(
                "halt advancement, request-success-rate 91.3 < 99 (failed checks 1/5)",
                1,
            ),
        case("threshold reached: roll back", progressing(30).failed(4))
            .gates(failing(30))
            .rolls_back(
                "rolling back, request-success-rate 91.3 < 99 (failed checks 5/5)",
                5,
            ),
        case("threshold 1: the first failure rolls back", progressing(10))
            .analysis(threshold(1))
            .gates(gates(10, Err("no data"), Ok(120.0)))
            .rolls_back(
                "rolling back, request-success-rate no data (need >= 99) (failed checks 1/1)",
                1,
            ),
    ]);
}

/// A report whose duration check could not reach its metrics server.
fn unreachable(weight: u32, success: Result<f64, &str>) -> GateReport {
    let mut report = gates(weight, success, Err("error: cannot reach Prometheus"));
    report.checks.as_mut().unwrap()[1].unreachable = true;
    report
}

#[test]
fn holds_through_a_metrics_outage_then_counts_it() {
    let flagger = Analysis {
        metrics_outage_grace: Duration::ZERO,
        ready: Default::default(),
        ..default_analysis()
    };
    check_all([
        // Due at 10:01:00, grace 2m: held until 10:03:00, looked at again an interval later.
        case("an unreachable server holds the step", progressing(10))
            .gates(unreachable(10, Ok(99.5)))
            .idle(
                "holding: the metrics server could not be reached (request-duration error: \
                 cannot reach Prometheus (need <= 500)); this interval counts as a failed check \
                 if it still cannot be reached at 2026-11-24T10:03:00Z",
                Some(t(120)),
            ),
        case("the wake never passes the deadline", progressing(10))
            .gates(unreachable(10, Ok(99.5)))
            .now(t(150))
            .idle(
                "holding: the metrics server could not be reached (request-duration error: \
                 cannot reach Prometheus (need <= 500)); this interval counts as a failed check \
                 if it still cannot be reached at 2026-11-24T10:03:00Z",
                Some(t(180)),
            ),
        case(
            "past the grace it counts, as Flagger counts it",
            progressing(10),
        )
        .gates(unreachable(10, Ok(99.5)))
        .now(t(180))
        .halts(
            "halt advancement, request-duration error: cannot reach Prometheus (need <= 500) \
                 (failed checks 1/5)",
            1,
        ),
        case("an answer about the canary fails at once", progressing(10))
            .gates(unreachable(10, Err("no data")))
            .halts(
                "halt advancement, request-success-rate no data (need >= 99), request-duration \
                 error: cannot reach Prometheus (need <= 500) (failed checks 1/5)",
                1,
            ),
        case("a bad value fails at once", progressing(10))
            .gates(unreachable(10, Ok(91.3)))
            .halts(
                "halt advancement, request-success-rate 91.3 < 99, request-duration error: \
                 cannot reach Prometheus (need <= 500) (failed checks 1/5)",
                1,
            ),
        case("a grace of zero counts at once", progressing(10))
            .analysis(flagger)
            .gates(unreachable(10, Ok(99.5)))
            .halts(
                "halt advancement, request-duration error: cannot reach Prometheus (need <= 500) \
                 (failed checks 1/5)",
                1,
            ),
    ]);
}

#[test]
fn follows_the_source_revision() {
    let failed = at_rest(Failed, PRIMARY).failed(5).failed_rev(REV);
    let start_newer = |s: &mut State| {
        s.phase = Progressing;
        s.canary_revision = Some(NEWER.to_string());
        s.canary_weight = Weight::ZERO;
        s.failed_checks = 0;
        s.iterations = 0;
    };
    let stop = |s: &mut State| {
        s.phase = Succeeded;
        s.canary_weight = Weight::ZERO;
        s.canary_revision = None;
    };
    let stop_failed = |s: &mut State| {
        s.phase = Failed;
        s.canary_weight = Weight::ZERO;
        s.canary_revision = None;
    };
    let starting = "new revision fedcba9 detected, starting canary analysis";
    check_all([
        case("a failed revision is not retried", failed.clone()).idle(
            "revision abc1234 failed; waiting for a new revision (or weir retry)",
            None,
        ),
        case("a newer revision after a failure", failed)
            .rev(NEWER)
            .writes(false, starting, start_newer),
        case(
            "a new revision mid-analysis restarts at 0",
            progressing(30).failed(2),
        )
        .rev(NEWER)
        .now(t(10))
        .gates(failing(30))
        .writes(
            false,
            "new revision fedcba9 detected during analysis, restarting analysis",
            start_newer,
        ),
        case("a new revision while promoting", promoting(50))
            .rev(NEWER)
            .writes(false, starting, start_newer),
        case("source reverted to the primary's revision", progressing(30))
            .rev(PRIMARY)
            .now(t(10))
            .writes(
                false,
                "canary reverted to the primary's revision 0ff1ce0, analysis stopped",
                stop,
            ),
        case(
            "source reverted to a failed revision",
            progressing(30).canary(NEWER).failed_rev(REV),
        )
        .writes(
            false,
            "canary reverted to failed revision abc1234, analysis stopped",
            stop_failed,
        ),
        case("skipAnalysis, new revision mid-analysis", progressing(30))
            .rev(NEWER)
            .skip_analysis()
            .writes(
                true,
                "new revision fedcba9 detected, skipping analysis (spec.skipAnalysis), promoting",
                |s| {
                    s.phase = Promoting;
                    s.canary_revision = Some(NEWER.to_string());
                    s.promoted_revision = NEWER.to_string();
                    s.iterations = 0;
                },
            ),
    ]);
}

fn result(value: Result<f64, &str>, min: Option<f64>, max: Option<f64>) -> CheckResult {
    CheckResult {
        name: "m".to_string(),
        value: value.map_err(str::to_string),
        min,
        max,
        unreachable: false,
    }
}

#[test]
fn check_results_pass_and_describe() {
    let cases: [(CheckResult, bool, &str); 15] = [
        (result(Ok(99.5), Some(99.0), None), true, "m 99.5 >= 99"),
        (result(Ok(99.0), Some(99.0), None), true, "m 99 >= 99"),
        (result(Ok(91.333), Some(99.0), None), false, "m 91.33 < 99"),
        (result(Ok(120.0), None, Some(500.0)), true, "m 120 <= 500"),
        (result(Ok(500.0), None, Some(500.0)), true, "m 500 <= 500"),
        (
            result(Ok(500.25), None, Some(500.0)),
            false,
            "m 500.25 > 500",
        ),
        (result(Ok(5.0), Some(1.0), Some(10.0)), true, "m 5 >= 1"),
        (result(Ok(0.5), Some(1.0), Some(10.0)), false, "m 0.5 < 1"),
        (result(Ok(12.0), Some(1.0), Some(10.0)), false, "m 12 > 10"),
        (result(Ok(-3.0), Some(-5.0), None), true, "m -3 >= -5"),
        (
            result(Ok(f64::NAN), Some(1.0), Some(10.0)),
            false,
            "m NaN (need 1 <= x <= 10)",
        ),
        (
            result(Ok(f64::NAN), None, Some(10.0)),
            false,
            "m NaN (need <= 10)",
        ),
        (
            result(Err("no data"), Some(99.0), None),
            false,
            "m no data (need >= 99)",
        ),
        (
            result(Err("HTTP 500: bad query"), None, Some(0.5)),
            false,
            "m HTTP 500: bad query (need <= 0.5)",
        ),
        (
            result(Ok(f64::INFINITY), None, Some(500.0)),
            false,
            "m inf > 500",
        ),
    ];
    for (check, passed, text) in cases {
        assert_eq!(check.passed(), passed, "{check:?}");
        assert_eq!(check.describe(), text, "{check:?}");
    }
}

/// A value the planner refuses must never be described as if it passed.
#[test]
fn infinite_values_are_described_as_failures() {
    for check in [
        result(Ok(f64::INFINITY), Some(99.0), None),
        result(Ok(f64::NEG_INFINITY), None, Some(500.0)),
    ] {
        assert!(!check.passed());
        let text = check.describe();
        assert!(!text.contains(">=") && !text.contains("<="), "{text}");
    }
}

/// A failing value must not be rounded onto its bound: `98.996 < 99` reads `99 < 99`.
#[test]
fn failing_values_are_not_rounded_onto_the_bound() {
    let text = result(Ok(98.996), Some(99.0), None).describe();
    assert_ne!(text, "m 99 < 99");
}

/// A validated spec may carry an interval too long for chrono; the planner must not panic.
#[test]
fn huge_intervals_do_not_panic() {
    let analysis = Analysis {
        // Longer than any duration weir parses, as a value could be built otherwise.
        interval: Duration::from_secs(u64::MAX / 4),
        ..default_analysis()
    };
    let state = progressing(10);
    let got = plan(&Input {
        analysis: &analysis,
        skip_analysis: false,
        suspend: false,
        state: Some(&state),
        revision: REV,
        head: HEAD,
        images: &[],
        owned: &CURRENT,
        control: &NO_CONTROL,
        gates: None,
        last_look: None,
        revert_on_deletion: false,
        cluster: &weir::core::cluster::ClusterState::Unknown,
        now: t(60),
    });
    assert!(matches!(got, Decision::Idle { .. }), "{got:?}");
}

#[test]
fn helpers() {
    assert_eq!(short(REV), "abc1234");
    assert_eq!(short("abc"), "abc");
    assert_eq!(due_at(&default_analysis(), &progressing(10)), t(60));
    let a = default_analysis();
    assert_eq!(next_weight(&a, w(0)), w(10));
    assert_eq!(next_weight(&a, w(95)), Weight::FULL);
    let l = listed(&[1, 5, 20, 50]);
    assert_eq!(next_weight(&l, w(0)), w(1));
    assert_eq!(next_weight(&l, w(3)), w(5));
    assert_eq!(next_weight(&l, w(50)), w(50));
}

// ---- Properties: the planner alone, driven through whole releases. ----

/// What the gate runner answers for one metric.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Pass,
    /// On the bound itself: still a pass.
    Edge,
    Fail,
    NoData,
    Nan,
}

/// A report the planner must refuse before it gets a fresh one.
#[derive(Debug, Clone, Copy)]
enum Stale {
    Missing,
    WrongRevision,
    WrongWeight,
    BeforeDue,
    InTheFuture,
    WrongCount,
}

#[derive(Debug, Clone)]
struct Tick {
    /// How far the clock moves, in intervals.
    advance: f64,
    /// A new revision is pushed before this tick (at most a few per run).
    new_revision: bool,
    stale: Option<Stale>,
    answers: Vec<Answer>,
    /// Where in [due, now] the fresh report was gathered.
    gathered: f64,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        25 => Just(Answer::Pass),
        5 => Just(Answer::Edge),
        1 => Just(Answer::Fail),
        1 => Just(Answer::NoData),
        1 => Just(Answer::Nan),
    ]
}

fn stale() -> impl Strategy<Value = Stale> {
    prop_oneof![
        Just(Stale::Missing),
        Just(Stale::WrongRevision),
        Just(Stale::WrongWeight),
        Just(Stale::BeforeDue),
        Just(Stale::InTheFuture),
        Just(Stale::WrongCount),
    ]
}

fn tick() -> impl Strategy<Value = Tick> {
    (
        0.05f64..2.5,
        prop::bool::weighted(0.02),
        prop::option::weighted(0.3, stale()),
        prop::collection::vec(answer(), 1..4),
        0.0f64..=1.0,
    )
        .prop_map(|(advance, new_revision, stale, answers, gathered)| Tick {
            advance,
            new_revision,
            stale,
            answers,
            gathered,
        })
}

fn metric_check() -> impl Strategy<Value = MetricCheck> {
    prop_oneof![
        Just(metric(
            "request-success-rate",
            MetricSource::RequestSuccessRate,
            Some(99.0),
            None
        )),
        Just(metric(
            "request-duration",
            MetricSource::RequestDuration,
            None,
            Some(500.0)
        )),
        Just(metric(
            "queue-depth",
            MetricSource::Inline("sum(queue_depth)".to_string()),
            Some(1.0),
            Some(10.0)
        )),
    ]
}

fn analysis() -> impl Strategy<Value = Analysis> {
    let steps = prop_oneof![
        (prop_oneof![1u32..=10, 1u32..=100], 1u32..=100)
            .prop_map(|(step, max)| (Steps::Linear(w(step)), w(max))),
        prop::collection::btree_set(1u32..=100, 1..6).prop_map(|set| {
            let list: Vec<Weight> = set.into_iter().map(w).collect();
            let max = *list.last().unwrap();
            (Steps::List(list), max)
        }),
    ];
    (
        1_000u64..=900_000,
        1u32..=6,
        steps,
        prop::option::of(1u32..=100),
        prop::collection::vec(metric_check(), 0..=3),
    )
        .prop_map(
            |(interval_ms, threshold, (steps, max_weight), promotion, metrics)| Analysis {
                interval: Duration::from_millis(interval_ms),
                threshold,
                strategy: Rollout::Canary { steps, max_weight },
                step_weight_promotion: promotion.map(w),
                metrics,
                ..default_analysis()
            },
        )
}

/// A value for `m` as the answer says; `Pass` and `Edge` are inside the bounds.
fn value(m: &MetricCheck, a: Answer) -> Result<f64, String> {
    match a {
        Answer::Pass => Ok(match (m.min, m.max) {
            (Some(lo), Some(hi)) => (lo + hi) / 2.0,
            (Some(lo), None) => lo + 0.5,
            (None, Some(hi)) => hi - 1.0,
            (None, None) => 0.0,
        }),
        Answer::Edge => Ok(m.min.or(m.max).unwrap_or(0.0)),
        Answer::Fail => Ok(match m.min {
            Some(lo) => lo - 1.0,
            None => m.max.unwrap_or(0.0) + 1.0,
        }),
        Answer::NoData => Err("no data".to_string()),
        Answer::Nan => Ok(f64::NAN),
    }
}

/// True when the step derives the primary from the head being planned on.
fn takes_primary(step: &Step, head: &str) -> bool {
    step.next.promoted_commit.as_deref() == Some(head)
}

/// Calls the planner twice and insists on the same answer.
fn decide(input: &Input) -> Decision {
    let first = plan(input);
    let again = plan(&input.clone());
    assert_eq!(first, again, "the planner must be deterministic");
    first
}

/// How a simulated release ended.
#[derive(Debug)]
struct Run {
    last: State,
    /// Due ticks since the revision under analysis was detected.
    due_ticks: u32,
    /// Failed gate runs of that revision.
    failures: u32,
    /// Gated steps that advanced or promoted.
    passes: u32,
    /// The revision of the last analysis.
    revision: String,
}

/// The highest weight a rollout may reach: maxWeight plus Flagger's overshoot (less than
/// one stepWeight past it, and never past 100), or the last of stepWeights.
fn weight_ceiling(a: &Analysis) -> u32 {
    let (steps, max_weight) = canary_steps(a);
    match steps {
        Steps::Linear(step) => (u32::from(max_weight.get()) + u32::from(step.get()) - 1).min(100),
        Steps::List(list) => u32::from(list.last().unwrap().get()),
    }
}

/// Steps from weight 0 to the promotion weight, and that weight.
fn climb(a: &Analysis) -> (u32, u32) {
    let mut weight = Weight::ZERO;
    let mut steps = 0;
    while weight < canary_steps(a).1 {
        weight = next_weight(a, weight);
        steps += 1;
    }
    (steps, u32::from(weight.get()))
}

fn simulate(a: &Analysis, script: &[Tick]) -> Result<Run, TestCaseError> {
    let interval_ms = a.interval.as_millis() as i64;
    let mut now = t0();
    let mut revision = "rev-0".to_string();
    let mut revisions = 0;
    let images = images_now();
    let mut head = "head-0".to_string();
    let init = decide(&Input {
        analysis: a,
        skip_analysis: false,
        suspend: false,
        state: None,
        revision: &revision,
        head: &head,
        images: &images,
        owned: &CURRENT,
        control: &NO_CONTROL,
        gates: None,
        last_look: None,
        revert_on_deletion: false,
        cluster: &weir::core::cluster::ClusterState::Unknown,
        now,
    });
    let Decision::Write(step) = init else {
        return Err(TestCaseError::fail(format!("no initialization: {init:?}")));
    };
    prop_assert!(takes_primary(&step, &head));
    let mut state = step.next;
    prop_assert_eq!(state.phase, Phase::Initialized);

    let mut run = Run {
        last: state.clone(),
        due_ticks: 0,
        failures: 0,
        passes: 0,
        revision: String::new(),
    };
    let mut pending_revision = true;
    for i in 0..20_000 {
        head = format!("head-{}", i + 1);
        let tick = &script[i % script.len()];
        now += TimeDelta::milliseconds((tick.advance * interval_ms as f64) as i64);
        if pending_revision || (tick.new_revision && revisions < 3 && state.phase.in_flight()) {
            pending_revision = false;
            revisions += 1;
            revision = format!("rev-{revisions}");
            let d = decide(&Input {
                analysis: a,
                skip_analysis: false,
                suspend: false,
                state: Some(&state),
                revision: &revision,
                head: &head,
                images: &images,
                owned: &CURRENT,
                control: &NO_CONTROL,
                gates: None,
                last_look: None,
                revert_on_deletion: false,
                cluster: &weir::core::cluster::ClusterState::Unknown,
                now,
            });
            let Decision::Write(step) = d else {
                return Err(TestCaseError::fail(format!("new revision ignored: {d:?}")));
            };
            prop_assert!(!takes_primary(&step, &head));
            prop_assert_eq!(step.next.phase, Phase::Progressing);
            prop_assert_eq!(step.next.canary_weight, Weight::ZERO);
            prop_assert_eq!(step.next.failed_checks, 0);
            prop_assert_eq!(step.next.iterations, 0);
            prop_assert_eq!(
                step.next.canary_revision.as_deref(),
                Some(revision.as_str())
            );
            prop_assert_eq!(step.next.last_step_at, now);
            state = step.next;
            run.due_ticks = 0;
            run.failures = 0;
            run.passes = 0;
            continue;
        }
        if matches!(state.phase, Phase::Succeeded | Phase::Failed) {
            run.last = state;
            run.revision = revision;
            return Ok(run);
        }
        let due = due_at(a, &state);
        let is_due = now >= due;
        let input = Input {
            analysis: a,
            skip_analysis: false,
            suspend: false,
            state: Some(&state),
            revision: &revision,
            head: &head,
            images: &images,
            owned: &CURRENT,
            control: &NO_CONTROL,
            gates: None,
            last_look: None,
            revert_on_deletion: false,
            cluster: &weir::core::cluster::ClusterState::Unknown,
            now,
        };
        let fresh = GateReport {
            revision: revision.clone(),
            canary_weight: state.canary_weight,
            at: due
                + TimeDelta::milliseconds(
                    ((now - due).num_milliseconds() as f64 * tick.gathered) as i64,
                ),
            checks: Some(
                a.metrics
                    .iter()
                    .zip(tick.answers.iter().cycle())
                    .map(|(m, ans)| CheckResult {
                        name: m.name.clone(),
                        value: value(m, *ans),
                        min: m.min,
                        max: m.max,
                        unreachable: false,
                    })
                    .collect(),
            ),
            hooks: Default::default(),
        };
        if !is_due {
            // Nothing is written before it is due, whatever the gates say.
            let report = GateReport { at: now, ..fresh };
            for gates in [None, Some(&report)] {
                let d = decide(&Input {
                    gates,
                    ..input.clone()
                });
                prop_assert_eq!(
                    &d,
                    &Decision::Idle {
                        reason: format!("next step due at {}", due.format("%H:%M:%S")),
                        wake_at: Some(due),
                    }
                );
            }
            continue;
        }
        run.due_ticks += 1;
        let (step, judged) = match decide(&input) {
            Decision::Write(step) => (step, None),
            Decision::NeedGates { canary_weight, .. } => {
                prop_assert_eq!(state.phase, Phase::Progressing);
                prop_assert_eq!(canary_weight, state.canary_weight);
                if let Some(kind) = tick.stale {
                    let mut report = fresh.clone();
                    match kind {
                        Stale::Missing => {}
                        Stale::WrongRevision => report.revision = "some-other-rev".to_string(),
                        Stale::WrongWeight => {
                            report.canary_weight =
                                w((u32::from(state.canary_weight.get()) + 1) % 101)
                        }
                        Stale::BeforeDue => report.at = due - TimeDelta::milliseconds(1),
                        Stale::InTheFuture => report.at = now + TimeDelta::milliseconds(1),
                        Stale::WrongCount => {
                            let checks = report.checks.as_mut().unwrap();
                            if checks.pop().is_none() {
                                checks.push(result(Ok(1.0), Some(0.0), None));
                            }
                        }
                    }
                    let gates = match kind {
                        Stale::Missing => None,
                        _ => Some(&report),
                    };
                    let d = decide(&Input {
                        gates,
                        ..input.clone()
                    });
                    prop_assert_eq!(
                        d,
                        Decision::NeedGates {
                            canary_weight,
                            metrics: true,
                            hooks: Vec::new()
                        },
                        "stale report {:?} was used",
                        kind
                    );
                }
                let d = decide(&Input {
                    gates: Some(&fresh),
                    ..input.clone()
                });
                let Decision::Write(step) = d else {
                    return Err(TestCaseError::fail(format!("fresh gates not used: {d:?}")));
                };
                let failed = a
                    .metrics
                    .iter()
                    .zip(tick.answers.iter().cycle())
                    .any(|(_, ans)| matches!(ans, Answer::Fail | Answer::NoData | Answer::Nan));
                (step, Some(failed))
            }
            d @ Decision::Idle { .. } => {
                return Err(TestCaseError::fail(format!("idle while due: {d:?}")));
            }
        };

        let (before, next) = (&state, &step.next);
        let (from, to) = (before.canary_weight, next.canary_weight);
        prop_assert_eq!(next.last_step_at, now);
        prop_assert_eq!(&next.message, &step.event);
        prop_assert!(
            u32::from(to.get()) <= weight_ceiling(a),
            "weight {} above the ceiling",
            to
        );
        match judged {
            Some(true) => {
                run.failures += 1;
                prop_assert!(
                    to <= from,
                    "weight rose after a failed check: {} -> {}",
                    from,
                    to
                );
                prop_assert_eq!(next.failed_checks, before.failed_checks + 1);
                prop_assert!(!takes_primary(&step, &head));
                if next.failed_checks >= a.threshold {
                    prop_assert_eq!(next.phase, Phase::Failed);
                    prop_assert_eq!(to, Weight::ZERO);
                    prop_assert_eq!(next.failed_revision.as_deref(), Some(revision.as_str()));
                    prop_assert_eq!(next.canary_revision.as_deref(), None);
                    prop_assert!(step.event.starts_with("rolling back, "), "{}", step.event);
                } else {
                    prop_assert_eq!(next.phase, Phase::Progressing);
                    prop_assert_eq!(to, from);
                    prop_assert!(
                        step.event.starts_with("halt advancement, "),
                        "{}",
                        step.event
                    );
                }
            }
            Some(false) => {
                run.passes += 1;
                prop_assert_eq!(next.failed_checks, before.failed_checks);
                prop_assert_eq!(next.iterations, before.iterations + 1);
                if from < canary_steps(a).1 {
                    prop_assert_eq!(next.phase, Phase::Progressing);
                    prop_assert_eq!(to, next_weight(a, from));
                    prop_assert!(to > from);
                    prop_assert!(!takes_primary(&step, &head));
                } else {
                    prop_assert_eq!(next.phase, Phase::Promoting);
                    prop_assert_eq!(to, from);
                    prop_assert!(takes_primary(&step, &head));
                    prop_assert_eq!(&next.promoted_revision, &revision);
                }
            }
            None => {
                prop_assert!(!takes_primary(&step, &head));
                match before.phase {
                    // The only ungated step of an analysis opens the route.
                    Phase::Progressing => {
                        prop_assert_eq!(from, Weight::ZERO);
                        prop_assert_eq!(to, next_weight(a, from));
                        prop_assert_eq!(next.phase, Phase::Progressing);
                    }
                    Phase::Promoting => {
                        prop_assert!(to < from || to == Weight::ZERO);
                        prop_assert!(matches!(next.phase, Phase::Promoting | Phase::Finalising));
                        prop_assert_eq!(next.phase == Phase::Finalising, to == Weight::ZERO);
                    }
                    Phase::Finalising => {
                        prop_assert_eq!(next.phase, Phase::Succeeded);
                        prop_assert_eq!(to, Weight::ZERO);
                        prop_assert_eq!(&next.promoted_revision, &revision);
                        prop_assert_eq!(next.canary_revision.as_deref(), None);
                    }
                    other => {
                        return Err(TestCaseError::fail(format!("step from {other}: {step:?}")));
                    }
                }
            }
        }
        state = step.next;
    }
    Err(TestCaseError::fail(format!(
        "no end after 20000 ticks: {state:?}"
    )))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Weight bounds, no advance on failed or stale gates, nothing before it is due, the
    /// same answer twice: checked on every step of `simulate`. Here: every run ends, in a
    /// bounded number of due ticks, and records how.
    #[test]
    fn releases_end_within_bounds(
        a in analysis(),
        script in prop::collection::vec(tick(), 1..40),
    ) {
        let run = simulate(&a, &script)?;
        let (climb_steps, top) = climb(&a);
        let promotion_steps = match a.step_weight_promotion {
            Some(p) => top.div_ceil(u32::from(p.get())),
            None => 1,
        };
        let last = &run.last;
        prop_assert_eq!(last.canary_weight, Weight::ZERO);
        prop_assert_eq!(last.canary_revision.as_deref(), None);
        match last.phase {
            Phase::Succeeded => {
                prop_assert!(run.failures < a.threshold);
                // Open the route, climb, promote, return traffic, finalise; plus halts.
                prop_assert_eq!(run.passes, climb_steps);
                prop_assert_eq!(run.due_ticks, climb_steps + 2 + promotion_steps + run.failures);
            }
            Phase::Failed => {
                prop_assert_eq!(run.failures, a.threshold);
                prop_assert_eq!(last.failed_revision.as_deref(), Some(run.revision.as_str()));
                prop_assert!(run.due_ticks <= climb_steps + a.threshold);
            }
            other => return Err(TestCaseError::fail(format!("ended in {other}"))),
        }
        prop_assert!(run.due_ticks <= a.threshold + climb_steps + promotion_steps + 2);
    }
}

/// The record keeps the readings of the release, at most `MAX_INTERVALS` of them, and a new
/// release starts with none.
#[test]
fn the_history_is_bounded_and_starts_again_with_each_release() {
    let old = Interval {
        at: t(-30),
        canary_weight: w(10),
        gates: Vec::new(),
    };
    let full = State {
        history: vec![old.clone(); MAX_INTERVALS],
        ..progressing(10)
    };
    let keep_last = |s: &mut State| {
        s.history.remove(0);
    };
    check_all([
        case("a full history drops its oldest reading", full.clone())
            .gates(passing(10))
            .want(
                false,
                true,
                "advance canary weight 10 -> 20",
                Box::new(move |s| {
                    keep_last(s);
                    s.canary_weight = w(20);
                    s.iterations += 1;
                }),
            ),
        case(
            "a reading without a value keeps why",
            progressing(10).failed(0),
        )
        .gates(gates(10, Err("no values found"), Ok(120.0)))
        .halts(
            "halt advancement, request-success-rate no values found (need >= 99) (failed checks 1/5)",
            1,
        ),
        case("a new release starts with no history", {
            let mut s = at_rest(Succeeded, PRIMARY);
            s.history = vec![old; 3];
            s
        })
        .writes(false, "new revision abc1234 detected, starting canary analysis", |s| {
            s.phase = Progressing;
            s.canary_revision = Some(REV.to_string());
            s.history.clear();
        }),
    ]);
}
