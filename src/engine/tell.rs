//! Telling: once a step is published, its alert goes to the targets the planner routed it
//! to (an AlertProvider's Secret read through the secrets port), the post-rollout and event
//! webhooks are called, and every notifier hears about the step.
//!
//! It sends what the planner decided (`core::plan::effects`) and only logs what receivers
//! answer: it must never add, drop or reword an alert or a call.

use crate::core::alert::{Alert, StepReport};
use crate::core::hook::{HookCall, HookOutcome};
use crate::core::plan::effects::{Effects, Route};
use crate::core::spec::alert_provider::resolve;
use crate::ports::{Hooks, Notifier, Secrets};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// What follows a published step of one app, ready to send.
pub(super) struct After {
    alert: Option<Alert>,
    calls: Vec<HookCall>,
    /// The step, for notifiers that follow every step (its commit is filled in on push).
    pub(super) step: StepReport,
}

/// The planner's effects of a step with the alert's targets resolved: each AlertProvider
/// it is routed to, its Secret read through `secrets`. A provider that cannot be resolved
/// is left out, with a warning.
pub(super) fn resolve_routes(effects: Effects, secrets: Option<&dyn Secrets>) -> After {
    let app = effects.step.app.clone();
    let alert = effects.alert.map(|routed| {
        let mut alert = routed.alert;
        for route in routed.routes {
            match route {
                Route::Missing { ref alert, .. } => {
                    warn!(app = %app, alert = %alert, "{route}");
                }
                Route::Provider {
                    alert: name,
                    spec,
                    min_severity,
                } => {
                    let read = secrets.map(|s| move |ns: &str, name: &str| s.read(ns, name));
                    let read = read.as_ref().map(|f| f as _);
                    match resolve(&spec, read) {
                        Ok(mut target) => {
                            target.min_severity = min_severity;
                            alert.targets.push(target);
                        }
                        Err(why) => warn!(app = %app, alert = %name, "{why}; alert not sent"),
                    }
                }
            }
        }
        alert
    });
    After {
        alert,
        calls: effects.calls,
        step: effects.step,
    }
}

/// Delivers the alerts and calls the post-rollout and event hooks of published steps, all
/// at once; a slow or failing receiver never holds a tick for more than 30s, and what they
/// answer is only logged (the step is already in Git).
pub(super) async fn tell(
    notifier: Arc<dyn Notifier>,
    hooks: Arc<dyn Hooks>,
    after: Vec<After>,
    commit: &str,
) {
    let mut jobs = Vec::new();
    for a in after {
        let mut step = a.step;
        step.commit = commit.to_string();
        let stepper = notifier.clone();
        jobs.push(tokio::spawn(async move { stepper.step(&step).await }));
        if let Some(mut alert) = a.alert {
            alert.commit = Some(commit.to_string());
            let notifier = notifier.clone();
            jobs.push(tokio::spawn(async move { notifier.notify(&alert).await }));
        }
        for call in a.calls {
            let hooks = hooks.clone();
            jobs.push(tokio::spawn(async move {
                let kind = call
                    .payload
                    .metadata
                    .get("eventType")
                    .map_or("post-rollout", |_| "event");
                match hooks.call(&call).await {
                    HookOutcome::Passed => info!(hook = %call.name, kind, "webhook passed"),
                    HookOutcome::Failed(why) => {
                        warn!(hook = %call.name, kind, "webhook failed: {why}")
                    }
                }
            }));
        }
    }
    let all = crate::core::join::join_all(jobs);
    if tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .is_err()
    {
        warn!("alerts and webhooks did not all finish within 30s; the step is in the log and the commit");
    }
}
