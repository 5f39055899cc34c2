//! Evidence: every app's decision, asked of the planner through its one gate-asking loop
//! (`core::plan::gates::ask`), every app at once, with the metric source and the webhooks
//! behind a bound on how many run at a time.
//!
//! It answers what the planner asks, as asked: it must never choose which gate to run, judge
//! an answer, or skip a question.

use super::gather::Pending;
use super::report::{GateReading, TickReport};
use super::Ports;
use crate::core::hook::HookOutcome;
use crate::core::plan::gates::{ask, hook_call, Answers};
use crate::core::plan::CheckResult;
use crate::core::spec::{Canary, Webhook};
use crate::ports::{Clock, Hooks, MetricSource};
use crate::repo::kustomize::Gate;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tracing::{info, info_span, warn, Instrument};

/// Decides every pending app, each on its own task: the planner asks, the ports answer.
/// `now` is the time of the first decision; `first_look`, the date of new evidence.
pub(super) async fn decide_all(
    ports: &Ports,
    gate_concurrency: usize,
    pending: Vec<Pending>,
    head: &str,
    now: DateTime<Utc>,
    first_look: DateTime<Utc>,
    report: &mut TickReport,
) -> Vec<Pending> {
    let limit = Arc::new(Semaphore::new(gate_concurrency.max(1)));
    let head: Arc<str> = Arc::from(head);
    let mut jobs = tokio::task::JoinSet::new();
    let mut lines = std::collections::HashMap::new();
    let count = pending.len();
    for (i, mut p) in pending.into_iter().enumerate() {
        let line = p.line;
        let metrics = ports.metrics.clone();
        let hooks = ports.hooks.clone();
        let clock = ports.clock.clone();
        let limit = limit.clone();
        let head = head.clone();
        let span = info_span!("app", app = %p.canary.name, namespace = %p.canary.namespace);
        let job = jobs.spawn(
            async move {
                let started = std::time::Instant::now();
                let timings = std::sync::Mutex::new(Vec::new());
                let asked = {
                    let answers = PortAnswers {
                        timings: &timings,
                        metrics: metrics.as_ref(),
                        hooks: hooks.as_ref(),
                        clock: clock.as_ref(),
                        limit: &limit,
                        canary: &p.canary,
                        gates: &p.gates,
                        phase: p
                            .state
                            .as_ref()
                            .map(|s| s.phase.to_string())
                            .unwrap_or_else(|| "Initializing".into()),
                    };
                    ask(p.input(&head, now), first_look, &answers).await
                };
                p.decision = asked.decision;
                p.report = asked.report;
                let took = started.elapsed().as_secs_f64();
                let timings = timings.into_inner().unwrap_or_default();
                (i, p, took, timings)
            }
            .instrument(span),
        );
        lines.insert(job.id(), line);
    }
    let mut decided: Vec<Option<Pending>> = (0..count).map(|_| None).collect();
    while let Some(joined) = jobs.join_next_with_id().await {
        match joined {
            Ok((_, (i, p, took, timings))) => {
                if let Some(gates) = &p.report {
                    let line = &mut report.apps[p.line];
                    line.analysis_seconds = Some(took);
                    line.gates = readings(gates.checks.as_deref().unwrap_or(&[]), &timings);
                }
                decided[i] = Some(p)
            }
            Err(e) => {
                // A panic in an adapter loses that app's decision only.
                if let Some(&line) = lines.get(&e.id()) {
                    warn!(app = %report.apps[line].app, "deciding stopped: {e}");
                    report.apps[line].message = "checks could not be run".into();
                }
            }
        }
    }
    decided.into_iter().flatten().collect()
}

/// What the report shows of the checks the planner was given: each value, its bounds, its
/// outcome as the check itself says, and how long its query took.
fn readings(checks: &[CheckResult], timings: &[(String, f64)]) -> Vec<GateReading> {
    checks
        .iter()
        .map(|c| GateReading {
            metric: c.name.clone(),
            value: c.value.as_ref().ok().copied(),
            min: c.min,
            max: c.max,
            outcome: match &c.value {
                _ if c.passed() => "passed",
                _ if c.unreachable => "unreachable",
                Err(why) if why == "no data" => "no_data",
                _ => "failed",
            },
            seconds: timings
                .iter()
                .rev()
                .find(|(name, _)| *name == c.name)
                .map_or(0.0, |(_, s)| *s),
        })
        .collect()
}

/// The planner's questions, answered through the ports.
struct PortAnswers<'a> {
    /// How long each metric query took, for the report.
    timings: &'a std::sync::Mutex<Vec<(String, f64)>>,
    metrics: &'a dyn MetricSource,
    hooks: &'a dyn Hooks,
    clock: &'a dyn Clock,
    limit: &'a Semaphore,
    canary: &'a Canary,
    gates: &'a [Gate],
    /// The app's phase as recorded, sent to confirm-rollout and rollback hooks.
    phase: String,
}

impl Answers for PortAnswers<'_> {
    fn metrics(&self) -> impl Future<Output = Vec<CheckResult>> + Send {
        run_gates(
            self.metrics,
            self.limit,
            self.canary,
            self.gates,
            self.timings,
        )
    }

    fn hook(&self, hook: &Webhook, revision: &str) -> impl Future<Output = HookOutcome> + Send {
        let call = hook_call(
            self.canary,
            hook,
            &self.phase,
            revision,
            hook.metadata.clone(),
        );
        let kind = hook.kind;
        async move {
            let outcome = {
                let _permit = self.limit.acquire().await;
                self.hooks.call(&call).await
            };
            let (passed, message) = match &outcome {
                HookOutcome::Passed => (true, "passed"),
                HookOutcome::Failed(why) => (false, why.as_str()),
            };
            info!(hook = %call.name, kind = %kind, passed, "{kind} webhook {}: {message}", call.name);
            outcome
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// Every metric gate's value, all at once within the bound.
async fn run_gates(
    metrics: &dyn MetricSource,
    limit: &Semaphore,
    canary: &Canary,
    gates: &[Gate],
    timings: &std::sync::Mutex<Vec<(String, f64)>>,
) -> Vec<CheckResult> {
    let queries = gates.iter().map(|gate| async move {
        let started = std::time::Instant::now();
        let (value, unreachable) = match gate.query(canary) {
            Err(e) => (Err(e.to_string()), false),
            Ok(query) => {
                let _permit = limit.acquire().await;
                match metrics.query(gate.address.as_deref(), &query).await {
                    Ok(v) => (Ok(v), false),
                    Err(e) if e.no_data => (Err("no data".to_string()), false),
                    Err(e) => {
                        warn!(metric = %gate.name, "{e}");
                        (Err(format!("error: {e}")), e.unreachable)
                    }
                }
            }
        };
        let check = CheckResult {
            name: gate.name.clone(),
            value,
            min: gate.min,
            max: gate.max,
            unreachable,
        };
        info!(metric = %gate.name, passed = check.passed(), "{}", check.describe());
        if let Ok(mut t) = timings.lock() {
            t.push((gate.name.clone(), started.elapsed().as_secs_f64()));
        }
        check
    });
    crate::core::join::join_all(queries).await
}
