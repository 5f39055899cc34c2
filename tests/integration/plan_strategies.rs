//! Every Flagger strategy and gate through the planner alone: a release driven tick by tick
//! (the planner's record fed back, evidence gathered when it asks), and the exact sequence of
//! records it writes. The end-to-end versions, against Git, Prometheus and a loadtester,
//! are in `strategies.rs`.

use chrono::{DateTime, Duration as TimeDelta, TimeZone, Utc};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use weir::core::control::Control;
use weir::core::duration::GoDuration;
use weir::core::hook::HookOutcome;
use weir::core::plan::gates::{ask_at_once, Answers};
use weir::core::plan::{plan, CheckResult, Decision, Input, Owned};
use weir::core::record::State;
use weir::core::spec::{AlertSeverity, Phase};
use weir::core::spec::{
    Analysis, HookType, MetricCheck, MetricSource, SessionAffinity, Steps, Strategy, Webhook,
    Weight,
};

const REV: &str = "abc1234def5678abc1234def5678abc1234def56";
const HEAD: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
}

fn w(p: u32) -> Weight {
    Weight::new(p).unwrap()
}

fn analysis(strategy: Strategy) -> Analysis {
    Analysis {
        interval: Duration::from_secs(60),
        threshold: 2,
        strategy,
        step_weight_promotion: None,
        mirror: false,
        mirror_weight: None,
        session_affinity: None,
        metrics: vec![MetricCheck {
            name: "request-success-rate".into(),
            source: MetricSource::RequestSuccessRate,
            interval: GoDuration(Duration::from_secs(60)),
            min: Some(99.0),
            max: None,
            variables: Default::default(),
            at: (1, 1),
        }],
        webhooks: Vec::new(),
        alerts: Vec::new(),
        metrics_outage_grace: weir::core::spec::canary::DEFAULT_METRICS_OUTAGE_GRACE,
        ready: Default::default(),
    }
}

pub fn canary(step: u32, max: u32) -> Analysis {
    analysis(Strategy::Canary {
        steps: Steps::Linear(w(step)),
        max_weight: w(max),
    })
}

fn hook(name: &str, kind: HookType) -> Webhook {
    Webhook {
        name: name.into(),
        kind,
        url: format!("http://loadtester/{name}"),
        timeout: Duration::from_secs(10),
        retries: 0,
        metadata: BTreeMap::new(),
        mute_alert: false,
        disable_tls: false,
    }
}

/// What one recorded step looked like: phase, canary weight, iterations, mirrored.
type Seen = (Phase, u32, u32, bool);

/// The control file's requests at a tick, given the record.
type Requests = Box<dyn Fn(usize, &State) -> Control>;

/// A release driven through the planner: one tick per interval, evidence gathered on ask
/// (metrics answering `success`, each hook answering `answer(kind, tick)`), control file
/// requests set by `control(tick)`.
struct Drive {
    analysis: Analysis,
    skip: bool,
    success: f64,
    answer: Box<dyn Fn(HookType, usize) -> bool>,
    control: Requests,
    ticks: usize,
}

struct Run {
    seen: Vec<Seen>,
    events: Vec<String>,
    alerts: Vec<(AlertSeverity, String)>,
    asked: Vec<(usize, HookType)>,
    last: State,
}

impl Drive {
    fn new(analysis: Analysis) -> Drive {
        Drive {
            analysis,
            skip: false,
            success: 100.0,
            answer: Box::new(|_, _| true),
            control: Box::new(|_, _| Control::default()),
            ticks: 30,
        }
    }

    fn run(&self) -> Run {
        let images = vec!["app:2".to_string()];
        let mut state = State {
            phase: Phase::Succeeded,
            promoted_revision: "0ld".into(),
            promoted_commit: Some(HEAD.into()),
            last_step_at: t0(),
            last_transition_at: t0(),
            ..State::default()
        };
        let mut run = Run {
            seen: Vec::new(),
            events: Vec::new(),
            alerts: Vec::new(),
            asked: Vec::new(),
            last: state.clone(),
        };
        for tick in 0..self.ticks {
            let now = t0() + TimeDelta::seconds(60 * (tick as i64 + 1));
            let control = (self.control)(tick, &state);
            let input = Input {
                analysis: &self.analysis,
                skip_analysis: self.skip,
                suspend: false,
                state: Some(&state),
                revision: REV,
                head: HEAD,
                images: &images,
                owned: &Owned::Current,
                control: &control,
                gates: None,
                last_look: None,
                revert_on_deletion: false,
                cluster: &weir::core::cluster::ClusterState::Unknown,
                now,
            };
            let answers = Answering {
                drive: self,
                tick,
                now,
                asked: RefCell::new(Vec::new()),
            };
            let decision = ask_at_once(input, now, &answers).decision;
            run.asked.extend(answers.asked.into_inner());
            if let Decision::Write(step) = decision {
                state = step.next.clone();
                run.seen.push((
                    state.phase,
                    u32::from(state.canary_weight.get()),
                    state.iterations,
                    state.mirrored,
                ));
                run.events.push(step.event.clone());
                if let Some(a) = step.alert {
                    run.alerts.push(a);
                }
            }
            if matches!(state.phase, Phase::Succeeded | Phase::Failed) && tick > 0 {
                break;
            }
        }
        run.last = state;
        run
    }
}

/// The gates of one tick of a [`Drive`]: metrics answering `success`, each hook answering
/// `answer(kind, tick)`; the hook types asked are written down.
struct Answering<'a> {
    drive: &'a Drive,
    tick: usize,
    now: DateTime<Utc>,
    asked: RefCell<Vec<(usize, HookType)>>,
}

impl Answers for Answering<'_> {
    fn metrics(&self) -> impl Future<Output = Vec<CheckResult>> + Send {
        std::future::ready(vec![CheckResult {
            name: "request-success-rate".into(),
            value: Ok(self.drive.success),
            min: Some(99.0),
            max: None,
            unreachable: false,
        }])
    }

    fn hook(&self, hook: &Webhook, _revision: &str) -> impl Future<Output = HookOutcome> + Send {
        let asked = (self.tick, hook.kind);
        if !self.asked.borrow().contains(&asked) {
            self.asked.borrow_mut().push(asked);
        }
        std::future::ready(if (self.drive.answer)(hook.kind, self.tick) {
            HookOutcome::Passed
        } else {
            HookOutcome::Failed("HTTP 403: Forbidden".into())
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.now
    }
}

use Phase::{Failed, Finalising, Progressing, Promoting, Succeeded, Waiting, WaitingPromotion};

#[test]
fn canary_steps_promote_in_flaggers_order() {
    let run = Drive::new(canary(20, 40)).run();
    assert_eq!(
        run.seen,
        vec![
            (Progressing, 0, 0, false),
            (Progressing, 20, 0, false),
            (Progressing, 40, 1, false),
            (Promoting, 40, 2, false),
            (Finalising, 0, 2, false),
            (Succeeded, 0, 0, false),
        ]
    );
    assert_eq!(
        run.alerts.first().map(|a| a.1.as_str()),
        Some("New revision detected, progressing canary analysis.")
    );
    assert_eq!(
        run.alerts.last().map(|a| a.1.as_str()),
        Some("Canary analysis completed successfully, promotion finished.")
    );
}

#[test]
fn ab_testing_sends_matched_traffic_for_the_iterations_then_promotes() {
    let a = analysis(Strategy::AbTesting {
        iterations: 3,
        match_: vec![serde_json::json!({"headers": {"x-canary": {"exact": "insider"}}})],
    });
    let run = Drive::new(a).run();
    assert_eq!(
        run.seen,
        vec![
            (Progressing, 0, 0, false),
            (Progressing, 100, 1, false),
            (Progressing, 100, 2, false),
            (Progressing, 100, 3, false),
            (Promoting, 100, 4, false),
            (Finalising, 0, 4, false),
            (Succeeded, 0, 0, false),
        ]
    );
}

#[test]
fn blue_green_keeps_live_traffic_on_the_primary_then_switches_then_promotes() {
    let run = Drive::new(analysis(Strategy::BlueGreen { iterations: 2 })).run();
    assert_eq!(
        run.seen,
        vec![
            (Progressing, 0, 0, false),
            (Progressing, 0, 1, false),
            (Progressing, 0, 2, false),
            (Progressing, 100, 3, false),
            (Promoting, 100, 4, false),
            (Finalising, 0, 4, false),
            (Succeeded, 0, 0, false),
        ]
    );
    assert!(run
        .events
        .contains(&"routing all traffic to canary".to_string()));
}

#[test]
fn blue_green_with_mirroring_mirrors_during_the_iterations() {
    let a = Analysis {
        mirror: true,
        ..analysis(Strategy::BlueGreen { iterations: 2 })
    };
    let run = Drive::new(a).run();
    assert_eq!(
        run.seen,
        vec![
            (Progressing, 0, 0, false),
            (Progressing, 0, 1, true),
            (Progressing, 0, 2, true),
            (Progressing, 100, 3, false),
            (Promoting, 100, 4, false),
            (Finalising, 0, 4, false),
            (Succeeded, 0, 0, false),
        ]
    );
}

#[test]
fn canary_mirroring_is_one_mirrored_step_before_the_weights() {
    let a = Analysis {
        mirror: true,
        mirror_weight: Some(w(50)),
        ..canary(50, 50)
    };
    let run = Drive::new(a).run();
    assert_eq!(
        run.seen,
        vec![
            (Progressing, 0, 0, false),
            (Progressing, 0, 0, true),
            (Progressing, 50, 1, false),
            (Promoting, 50, 2, false),
            (Finalising, 0, 2, false),
            (Succeeded, 0, 0, false),
        ]
    );
}

#[test]
fn session_affinity_keeps_a_cookie_per_revision_and_retires_it() {
    let a = Analysis {
        session_affinity: Some(SessionAffinity {
            cookie_name: "flagger-cookie".into(),
            primary_cookie_name: Some("primary-cookie".into()),
            max_age: 3600,
            domain: None,
            http_only: false,
            partitioned: false,
            path: None,
            same_site: None,
            secure: false,
        }),
        ..canary(50, 50)
    };
    let run = Drive::new(a.clone()).run();
    let last = &run.last;
    assert_eq!(last.phase, Succeeded);
    assert_eq!(last.session_affinity_cookie, None);
    let previous = last.previous_session_affinity_cookie.clone().unwrap();
    assert!(previous.starts_with("flagger-cookie="), "{previous}");
    assert!(last
        .primary_session_affinity_cookie
        .as_deref()
        .unwrap()
        .starts_with("primary-cookie="));
    // The same revision gives the same cookie: a replay writes the same bytes.
    assert_eq!(Drive::new(a).run().last, run.last);
}

#[test]
fn a_closed_confirm_promotion_gate_waits_without_failing_until_approved() {
    let mut a = canary(50, 50);
    a.webhooks = vec![hook("gate", HookType::ConfirmPromotion)];
    let mut drive = Drive::new(a.clone());
    drive.ticks = 8;
    drive.answer = Box::new(|kind, tick| kind != HookType::ConfirmPromotion || tick >= 5);
    let run = drive.run();
    assert_eq!(
        run.seen,
        vec![
            (Progressing, 0, 0, false),
            (Progressing, 50, 0, false),
            (WaitingPromotion, 50, 0, false),
            (Promoting, 50, 1, false),
            (Finalising, 0, 1, false),
            (Succeeded, 0, 0, false),
        ]
    );
    assert!(run
        .alerts
        .iter()
        .any(|a| a.1 == "Canary promotion is waiting for approval."));
    // Approval through the control file opens it without asking the hook.
    let mut drive = Drive::new(a);
    drive.answer = Box::new(|kind, _| kind != HookType::ConfirmPromotion);
    drive.control = Box::new(|tick, s| Control {
        approve: (tick >= 4).then(|| s.canary_revision.clone()).flatten(),
        ..Control::default()
    });
    let run = drive.run();
    assert_eq!(run.last.phase, Succeeded);
    assert_eq!(run.last.failed_checks, 0);
}

#[test]
fn a_closed_confirm_rollout_gate_holds_the_revision_in_waiting() {
    let mut a = canary(50, 50);
    a.webhooks = vec![hook("gate", HookType::ConfirmRollout)];
    let mut drive = Drive::new(a);
    drive.answer = Box::new(|_, tick| tick >= 3);
    let run = drive.run();
    assert_eq!(run.seen[0], (Waiting, 0, 0, false));
    assert_eq!(run.seen[1], (Progressing, 0, 0, false));
    assert_eq!(run.last.phase, Succeeded);
    assert_eq!(run.last.failed_checks, 0);
}

#[test]
fn a_failing_pre_rollout_check_counts_and_keeps_the_first_step() {
    let mut a = canary(50, 50);
    a.webhooks = vec![hook("conformance", HookType::PreRollout)];
    let mut drive = Drive::new(a);
    drive.answer = Box::new(|_, tick| tick >= 2);
    let run = drive.run();
    assert_eq!(run.seen[1], (Progressing, 0, 0, false));
    assert!(run.events[1].starts_with("halt advancement, pre-rollout check conformance failed"));
    assert_eq!(run.last.phase, Succeeded);
    // Every failing tick: the threshold (2) rolls it back.
    let mut a = canary(50, 50);
    a.webhooks = vec![hook("conformance", HookType::PreRollout)];
    let mut drive = Drive::new(a);
    drive.answer = Box::new(|_, _| false);
    let run = drive.run();
    assert_eq!(run.last.phase, Failed);
    assert_eq!(run.last.failed_checks, 2);
}

#[test]
fn a_passing_rollback_hook_rolls_back() {
    let mut a = canary(20, 60);
    a.webhooks = vec![hook("rollback", HookType::Rollback)];
    let mut drive = Drive::new(a);
    drive.answer = Box::new(|_, tick| tick >= 2);
    let run = drive.run();
    assert_eq!(run.last.phase, Failed);
    assert_eq!(run.last.canary_weight, Weight::ZERO);
    assert!(run
        .events
        .last()
        .unwrap()
        .starts_with("rolling back, rollback hook rollback passed"));
    assert!(run
        .alerts
        .iter()
        .any(|a| a.1 == "Rolling back manual webhook invoked"));
}

#[test]
fn failing_metrics_roll_back_at_the_threshold_with_an_error_alert() {
    let mut drive = Drive::new(canary(20, 60));
    drive.success = 90.0;
    let run = drive.run();
    assert_eq!(run.last.phase, Failed);
    assert_eq!(run.last.failed_checks, 2);
    assert_eq!(
        run.alerts.last().cloned(),
        Some((
            AlertSeverity::Error,
            "Failed checks threshold reached 2".into()
        ))
    );
}

#[test]
fn abort_pause_and_retry_through_the_control_file() {
    // Abort mid-analysis.
    let mut drive = Drive::new(canary(20, 60));
    drive.control = Box::new(|tick, s| Control {
        abort: (tick == 2).then(|| s.canary_revision.clone()).flatten(),
        ..Control::default()
    });
    let run = drive.run();
    assert_eq!(run.last.phase, Failed);
    assert!(run
        .events
        .last()
        .unwrap()
        .contains("aborted by the control file"));

    // Paused: nothing moves.
    let mut drive = Drive::new(canary(20, 60));
    drive.ticks = 5;
    drive.control = Box::new(|_, _| Control {
        paused: true,
        ..Control::default()
    });
    assert!(drive.run().seen.is_empty());

    // Retry the failed revision: the analysis starts again.
    let mut drive = Drive::new(canary(50, 50));
    drive.success = 90.0;
    let failed = drive.run().last;
    assert_eq!(failed.phase, Failed);
    let analysis = canary(50, 50);
    let retry = Control {
        retry: Some(REV.into()),
        ..Control::default()
    };
    let d = plan(&Input {
        analysis: &analysis,
        skip_analysis: false,
        suspend: false,
        state: Some(&failed),
        revision: REV,
        head: HEAD,
        images: &[],
        owned: &Owned::Current,
        control: &retry,
        gates: None,
        last_look: None,
        revert_on_deletion: false,
        cluster: &weir::core::cluster::ClusterState::Unknown,
        now: failed.last_step_at + TimeDelta::seconds(60),
    });
    let Decision::Write(step) = d else {
        panic!("retry did not start: {d:?}")
    };
    assert!(step.retried);
    assert_eq!(step.next.phase, Progressing);
    assert_eq!(step.next.failed_checks, 0);
}

#[test]
fn skip_analysis_promotes_without_checks() {
    let mut drive = Drive::new(canary(20, 60));
    drive.skip = true;
    drive.success = 0.0;
    let run = drive.run();
    assert_eq!(
        run.seen,
        vec![
            (Promoting, 0, 0, false),
            (Finalising, 0, 0, false),
            (Succeeded, 0, 0, false),
        ]
    );
    assert!(run.asked.is_empty());
    let alerts: Vec<&str> = run.alerts.iter().map(|a| a.1.as_str()).collect();
    assert_eq!(
        alerts,
        [
            "New revision detected, progressing canary analysis.",
            "Canary analysis was skipped, promotion finished."
        ]
    );
}

/// One reading as the record keeps it: gate, value, note, passed.
type Read<'a> = (&'a str, Option<f64>, Option<&'a str>, bool);

/// The record keeps what every judged interval of the release read, for pull request bodies
/// and `weir status`: hooks on the first step (no traffic reaches the canary yet, so no
/// metric is judged there), metrics after it, nothing for steps taken without evidence.
#[test]
fn the_record_keeps_every_judged_interval_of_the_release() {
    let mut a = canary(20, 40);
    a.webhooks = vec![hook("conformance", HookType::PreRollout)];
    let mut drive = Drive::new(a);
    drive.answer = Box::new(|_, tick| tick >= 2);
    drive.success = 99.25;
    let run = drive.run();
    assert_eq!(run.last.phase, Succeeded);
    let rows: Vec<(u8, Vec<Read>)> = run
        .last
        .history
        .iter()
        .map(|i| {
            let gates = i
                .gates
                .iter()
                .map(|g| (g.gate.as_str(), g.value, g.note.as_deref(), g.passed));
            (i.canary_weight.get(), gates.collect())
        })
        .collect();
    let hook =
        |passed: bool, note| vec![("pre-rollout hook conformance", None, Some(note), passed)];
    let metric = vec![("request-success-rate", Some(99.25), None, true)];
    assert_eq!(
        rows,
        vec![
            (0, hook(false, "HTTP 403: Forbidden")),
            (0, hook(true, "passed")),
            (20, metric.clone()),
            (40, metric.clone()),
        ]
    );
    assert_eq!(run.last.history[2].gates[0].min, Some(99.0));
    assert!(run.last.history.windows(2).all(|p| p[0].at < p[1].at));
}
