//! The planner with a cluster view: an interval starts when its step is applied and ready,
//! a step Flux does not apply in time counts as a failed check, a canary or primary that will
//! not get ready rolls back (a promotion holds instead), and an adoption routes to the primary
//! only once it is ready. Pure: every case is one call of `plan`.

use chrono::{DateTime, Duration as TimeDelta, TimeZone, Utc};
use weir::core::cluster::{ClusterState, Readiness};
use weir::core::control::Control;
use weir::core::plan::{plan, CheckResult, Decision, GateReport, Input, Owned};
use weir::core::record::State;
use weir::core::spec::{Analysis, Phase, Weight};

const OLD: &str = "0000000000000000000000000000000000000001";
const REV: &str = "abc1234def5678abc1234def5678abc1234def56";
const HEAD: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap() + TimeDelta::seconds(secs)
}

/// The planner tests' canary analysis (steps of 10 up to 50, a 60 s interval, threshold 2,
/// one success-rate metric), with Flagger's readiness defaults (a 600 s progress deadline).
fn analysis() -> Analysis {
    crate::plan_strategies::canary(10, 50)
}

/// A release at `weight`, its step committed at t(0).
fn progressing(weight: u32) -> State {
    State {
        phase: Phase::Progressing,
        canary_weight: Weight::new(weight).unwrap(),
        iterations: 1,
        canary_revision: Some(REV.into()),
        promoted_revision: OLD.into(),
        promoted_commit: Some(HEAD.into()),
        last_step_at: t(0),
        last_transition_at: t(0),
        ..State::default()
    }
}

fn applied(since: Option<i64>, canary: Readiness, primary: Readiness) -> ClusterState {
    ClusterState::Applied {
        ready_since: since.map(t),
        canary,
        primary,
    }
}

fn ready(since: i64) -> ClusterState {
    applied(Some(since), Readiness::Ready, Readiness::Ready)
}

fn decide(
    state: Option<&State>,
    revision: &str,
    cluster: &ClusterState,
    gates: Option<&GateReport>,
    now: DateTime<Utc>,
) -> Decision {
    let a = analysis();
    plan(&Input {
        analysis: &a,
        skip_analysis: false,
        suspend: false,
        state,
        revision,
        head: HEAD,
        images: &[],
        owned: &Owned::Current,
        control: &Control::default(),
        gates,
        last_look: None,
        revert_on_deletion: false,
        cluster,
        now,
    })
}

/// Passing evidence for the release at `weight`, gathered at `at`.
fn passing(weight: u32, at: DateTime<Utc>) -> GateReport {
    GateReport {
        revision: REV.into(),
        canary_weight: Weight::new(weight).unwrap(),
        at,
        checks: Some(vec![CheckResult {
            name: "request-success-rate".into(),
            value: Ok(100.0),
            min: Some(99.0),
            max: None,
            unreachable: false,
        }]),
        hooks: Default::default(),
    }
}

fn idle_reason(d: &Decision) -> &str {
    match d {
        Decision::Idle { reason, .. } => reason,
        other => panic!("expected to wait, got {other:?}"),
    }
}

fn written(d: Decision) -> weir::core::plan::Step {
    match d {
        Decision::Write(s) => s,
        other => panic!("expected a step, got {other:?}"),
    }
}

#[test]
fn the_interval_starts_when_the_step_is_applied_and_ready() {
    let s = progressing(10);
    // Committed at 0, applied and ready at 45: due at 105, not 60.
    let cluster = ready(45);
    let d = decide(Some(&s), REV, &cluster, None, t(61));
    assert!(idle_reason(&d).contains("next step due at"), "{d:?}");
    let d = decide(Some(&s), REV, &cluster, None, t(105));
    assert!(matches!(d, Decision::NeedGates { .. }), "{d:?}");
    // Evidence gathered before the step was ready judges nothing.
    let early = passing(10, t(100));
    let d = decide(Some(&s), REV, &cluster, Some(&early), t(106));
    assert!(matches!(d, Decision::NeedGates { .. }), "{d:?}");
    let fresh = passing(10, t(106));
    let step = written(decide(Some(&s), REV, &cluster, Some(&fresh), t(106)));
    assert_eq!(step.next.canary_weight, Weight::new(20).unwrap());
    // Without a view, the commit starts the interval, as before.
    let d = decide(Some(&s), REV, &ClusterState::Unknown, None, t(61));
    assert!(matches!(d, Decision::NeedGates { .. }), "{d:?}");
}

#[test]
fn a_step_flux_has_not_applied_waits_then_counts_as_a_failed_check() {
    let s = progressing(10);
    let pending =
        ClusterState::NotApplied("Kustomization flux-system/apps last applied 1234567".into());
    let d = decide(Some(&s), REV, &pending, None, t(300));
    assert!(
        idle_reason(&d)
            .starts_with("waiting for Flux to apply the step: Kustomization flux-system/apps"),
        "{d:?}"
    );
    // Past the progress deadline (600 s after the commit): a halt, the reason in the commit.
    let step = written(decide(Some(&s), REV, &pending, None, t(601)));
    assert_eq!(step.next.phase, Phase::Progressing);
    assert_eq!(step.next.failed_checks, 1);
    assert_eq!(step.next.canary_weight, Weight::new(10).unwrap());
    assert!(
        step.event.contains("halt advancement")
            && step
                .event
                .contains("not applied within the progress deadline of 600s"),
        "{}",
        step.event
    );
    // At the threshold it rolls back.
    let mut twice = s.clone();
    twice.failed_checks = 1;
    let step = written(decide(Some(&twice), REV, &pending, None, t(601)));
    assert_eq!(step.next.phase, Phase::Failed);
    assert_eq!(step.next.canary_weight, Weight::ZERO);
}

#[test]
fn a_view_that_cannot_tell_holds_without_a_deadline() {
    let s = progressing(10);
    let unseen = ClusterState::Unseen("listing Flux Kustomizations: connection refused".into());
    let d = decide(Some(&s), REV, &unseen, None, t(100_000));
    assert!(
        idle_reason(&d).contains("cannot tell what the cluster runs"),
        "{d:?}"
    );
}

#[test]
fn a_canary_that_will_not_get_ready_rolls_back_at_once() {
    let s = progressing(20);
    let waiting = applied(
        None,
        Readiness::Waiting("backend.prod: waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available".into()),
        Readiness::Ready,
    );
    let d = decide(Some(&s), REV, &waiting, None, t(120));
    assert!(
        idle_reason(&d).starts_with("waiting for the canary: backend.prod"),
        "{d:?}"
    );
    let stuck = applied(
        None,
        Readiness::Stuck("backend.prod: deployment exceeded its progress deadline".into()),
        Readiness::Ready,
    );
    // Not even due yet: a stuck canary does not wait for the interval.
    let step = written(decide(Some(&s), REV, &stuck, None, t(10)));
    assert_eq!(step.next.phase, Phase::Failed);
    assert_eq!(step.next.canary_weight, Weight::ZERO);
    assert_eq!(step.next.failed_revision.as_deref(), Some(REV));
    assert!(
        step.event
            .contains("canary not ready: backend.prod: deployment exceeded its progress deadline"),
        "{}",
        step.event
    );
    assert!(step.alert.is_some());
}

#[test]
fn a_promotion_holds_when_the_primary_is_not_ready() {
    let mut s = progressing(50);
    s.phase = Phase::Promoting;
    s.promoted_revision = REV.into();
    let stuck = applied(
        None,
        Readiness::Ready,
        Readiness::Stuck("backend-primary.prod: deployment exceeded its progress deadline".into()),
    );
    let d = decide(Some(&s), REV, &stuck, None, t(10_000));
    assert!(
        idle_reason(&d).starts_with("waiting for the primary: backend-primary.prod"),
        "{d:?}"
    );
    // Not applied past the deadline: still holds, never rolls a promotion back.
    let pending = ClusterState::NotApplied("not yet".into());
    let d = decide(Some(&s), REV, &pending, None, t(10_000));
    assert!(
        idle_reason(&d).starts_with("waiting for Flux to apply the step"),
        "{d:?}"
    );
    // Ready: the promotion goes on once an interval has passed since it was ready.
    let d = decide(Some(&s), REV, &ready(100), None, t(150));
    assert!(idle_reason(&d).contains("next step due"), "{d:?}");
    let step = written(decide(Some(&s), REV, &ready(100), None, t(160)));
    assert_eq!(step.next.phase, Phase::Finalising);
}

#[test]
fn an_adoption_routes_to_the_primary_only_once_it_is_ready() {
    let unseen = ClusterState::Unseen("not looked at: nothing in flight".into());
    let first = written(decide(None, REV, &unseen, None, t(0)));
    assert_eq!(first.next.phase, Phase::Initializing);
    assert_eq!(
        first.next.canary_weight,
        Weight::FULL,
        "traffic stays on the target's pods"
    );
    assert_eq!(first.next.promoted_revision, REV);
    assert!(first.alert.is_none());

    let init = first.next;
    let not_yet = applied(
        Some(5),
        Readiness::Ready,
        Readiness::Waiting("backend-primary.prod: waiting for rollout to finish: 0 out of 2 new replicas have been updated".into()),
    );
    let d = decide(Some(&init), REV, &not_yet, None, t(30));
    assert!(idle_reason(&d).contains("waiting for the primary"), "{d:?}");
    let d = decide(
        Some(&init),
        REV,
        &ClusterState::NotApplied("Kustomization flux-system/apps has applied nothing yet".into()),
        None,
        t(30),
    );
    assert!(
        idle_reason(&d).starts_with("initializing: not applied yet"),
        "{d:?}"
    );

    let second = written(decide(Some(&init), REV, &ready(40), None, t(41)));
    assert_eq!(second.next.phase, Phase::Initialized);
    assert_eq!(second.next.canary_weight, Weight::ZERO);
    assert_eq!(
        second.event,
        "initialization done, primary serves all traffic"
    );
    assert!(second.alert.is_some());

    // Without a view: one step, as before.
    let only = written(decide(None, REV, &ClusterState::Unknown, None, t(0)));
    assert_eq!(only.next.phase, Phase::Initialized);
    assert_eq!(only.next.canary_weight, Weight::ZERO);
}

#[test]
fn no_analysis_starts_while_the_primary_is_not_ready() {
    let at_rest = State {
        phase: Phase::Succeeded,
        promoted_revision: OLD.into(),
        promoted_commit: Some(HEAD.into()),
        ..State::default()
    };
    let not_ready = applied(
        None,
        Readiness::Ready,
        Readiness::Waiting("backend-primary.prod: waiting for rollout to finish: 1 old replicas are pending termination".into()),
    );
    let d = decide(Some(&at_rest), REV, &not_ready, None, t(0));
    assert!(
        idle_reason(&d).contains("waiting for the primary before starting"),
        "{d:?}"
    );
    let step = written(decide(Some(&at_rest), REV, &ready(0), None, t(0)));
    assert_eq!(step.next.phase, Phase::Progressing);
    assert_eq!(step.next.canary_revision.as_deref(), Some(REV));
}
