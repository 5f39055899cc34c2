//! What a published step triggers: its alert (the message, the fields, the failing checks,
//! and which AlertProviders it goes to at which severity), the calls of the webhooks that
//! only hear about it (post-rollout, event), the report for whoever follows every step, and
//! the lines its commit body adds from the webhooks' answers.
//!
//! Decisions only: reading an AlertProvider's Secret and sending belong to the engine, which
//! must not add, drop or reword anything decided here.

use super::gates::hook_call;
use super::{GateReport, Step};
use crate::core::alert::{Alert, StepReport};
use crate::core::app::AppRef;
use crate::core::hook::HookCall;
use crate::core::record::State;
use crate::core::spec::alert_provider::AlertProviderSpec;
use crate::core::spec::{AlertSeverity, AlertTarget, Canary, HookType, Phase};
use std::collections::BTreeMap;

/// The AlertProviders of the repository, by namespace and name (the namespace `?` when the
/// file names none and no kustomization gives it one).
pub type Providers = BTreeMap<(String, String), AlertProviderSpec>;

/// A step about to be published, with what it was decided on.
#[derive(Debug, Clone, Copy)]
pub struct Published<'a> {
    /// The app.
    pub app: &'a AppRef,
    /// Its Canary.
    pub canary: &'a Canary,
    /// The record before the step, if there was one.
    pub before: Option<&'a State>,
    /// The step.
    pub step: &'a Step,
    /// The app's source revision now.
    pub revision: &'a str,
    /// The evidence the step was decided on, if any.
    pub report: Option<&'a GateReport>,
}

/// What follows a published step of one app.
#[derive(Debug, Clone)]
pub struct Effects {
    /// The alert, if the step sends one.
    pub alert: Option<Routed>,
    /// Post-rollout and event webhook calls, in order.
    pub calls: Vec<HookCall>,
    /// The step, for notifiers that follow every step (its commit is filled in on push).
    pub step: StepReport,
}

/// An alert and where it goes.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The alert, its targets the global default ones when the Canary names no
    /// AlertProvider; the engine adds the resolved [`Route`]s after them, in order.
    pub alert: Alert,
    /// The AlertProviders the Canary names, in its order.
    pub routes: Vec<Route>,
}

/// One `spec.analysis.alerts` entry of the Canary.
#[derive(Debug, Clone)]
pub enum Route {
    /// The AlertProvider it names: resolved (its Secret read) by the engine, which then
    /// sends at `min_severity` and above.
    Provider {
        /// The entry's name.
        alert: String,
        /// The AlertProvider, with the namespace it was looked up in when it names none.
        spec: AlertProviderSpec,
        /// The least severity this entry sends.
        min_severity: AlertSeverity,
    },
    /// The AlertProvider it names is not in the repository: nothing is sent.
    Missing {
        /// The entry's name.
        alert: String,
        /// The AlertProvider's namespace.
        namespace: String,
        /// The AlertProvider's name.
        name: String,
    },
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Provider { alert, spec, .. } => {
                write!(f, "alert {alert} goes to AlertProvider {}", spec.display_name())
            }
            Route::Missing {
                alert,
                namespace,
                name,
            } => write!(
                f,
                "AlertProvider {namespace}/{name} is not in the repository; alert {alert} is not sent"
            ),
        }
    }
}

/// Whether a step ends a release (Succeeded or Failed reached from an analysis or a
/// promotion): post-rollout hooks hear about it.
pub fn ends_release(before: Option<&State>, next: &State) -> bool {
    matches!(next.phase, Phase::Succeeded | Phase::Failed)
        && before.is_some_and(|b| b.phase != next.phase && b.phase.in_flight())
}

/// The alert and the webhook calls a step triggers once it is published. `default_alerts`
/// are Flagger's global provider: they take the alerts of Canaries that name no provider.
pub fn effects(p: Published, providers: &Providers, default_alerts: &[AlertTarget]) -> Effects {
    let canary = p.canary;
    let step = p.step;
    let next = &step.next;
    let checksum = next
        .canary_revision
        .clone()
        .unwrap_or_else(|| p.revision.to_string());
    let phase = next.phase.to_string();
    let call = |hook: &crate::core::spec::Webhook, metadata| {
        hook_call(canary, hook, &phase, &checksum, metadata)
    };
    let mut calls = Vec::new();
    // post-rollout: after the release succeeded or was rolled back.
    if ends_release(p.before, next) {
        for hook in canary.analysis.hooks(HookType::PostRollout) {
            calls.push(call(hook, hook.metadata.clone()));
        }
    }
    // event: every step, with Flagger's three keys, which the hook's metadata cannot change.
    let warning = step
        .alert
        .as_ref()
        .is_some_and(|(s, _)| *s != AlertSeverity::Info);
    for hook in canary.analysis.hooks(HookType::Event) {
        let mut metadata = hook.metadata.clone();
        metadata.insert("eventMessage".into(), step.event.clone());
        metadata.insert(
            "eventType".into(),
            if warning { "Warning" } else { "Normal" }.into(),
        );
        metadata.insert(
            "timestamp".into(),
            next.last_step_at.timestamp_millis().to_string(),
        );
        calls.push(call(hook, metadata));
    }
    let alert = step.alert.as_ref().map(|(severity, message)| Routed {
        alert: Alert {
            app: p.app.clone(),
            severity: *severity,
            message: message.clone(),
            phase: next.phase,
            canary_weight: next.canary_weight,
            failed_checks: next.failed_checks,
            threshold: canary.analysis.threshold,
            failing: p.report.map(failing).unwrap_or_default(),
            commit: None,
            fields: vec![
                (
                    "Target".into(),
                    format!("Deployment/{}.{}", canary.target, canary.namespace),
                ),
                (
                    "Traffic routing".into(),
                    canary.analysis.strategy.describe(),
                ),
                ("Event".into(), step.event.clone()),
            ],
            targets: if canary.analysis.alerts.is_empty() {
                default_alerts.to_vec()
            } else {
                Vec::new()
            },
        },
        routes: routes(canary, providers),
    });
    Effects {
        alert,
        calls,
        step: StepReport {
            app: p.app.clone(),
            phase: next.phase,
            canary_weight: next.canary_weight,
            event: step.event.clone(),
            revision: checksum,
            commit: String::new(),
        },
    }
}

/// Where each alert entry of the Canary goes: the AlertProvider in its namespace, or one
/// whose namespace is unknown by name alone.
fn routes(canary: &Canary, providers: &Providers) -> Vec<Route> {
    canary
        .analysis
        .alerts
        .iter()
        .map(|a| {
            let found = providers
                .get(&(a.provider_namespace.clone(), a.provider_name.clone()))
                .or_else(|| providers.get(&("?".to_string(), a.provider_name.clone())));
            match found {
                Some(spec) => {
                    let mut spec = spec.clone();
                    if spec.namespace.is_none() {
                        spec.namespace = Some(a.provider_namespace.clone());
                    }
                    Route::Provider {
                        alert: a.name.clone(),
                        spec,
                        min_severity: a.severity,
                    }
                }
                None => Route::Missing {
                    alert: a.name.clone(),
                    namespace: a.provider_namespace.clone(),
                    name: a.provider_name.clone(),
                },
            }
        })
        .collect()
}

/// What failed in the evidence, for the alert: webhooks that failed (a rollback hook that
/// fails asks for nothing), then checks out of bounds.
fn failing(report: &GateReport) -> Vec<String> {
    let hooks = report.hooks.iter().flat_map(|(kind, answers)| {
        answers
            .iter()
            .filter(|h| !h.passed && *kind != HookType::Rollback)
            .map(move |h| format!("{kind} {}: {}", h.name, h.message))
    });
    let checks = report
        .checks
        .iter()
        .flatten()
        .filter(|c| !c.passed())
        .map(|c| c.describe());
    hooks.chain(checks).collect()
}

/// The step's details with every webhook answer of the tick, for the commit body.
pub fn commit_details(details: &[String], report: Option<&GateReport>) -> Vec<String> {
    let mut out = details.to_vec();
    for (kind, answers) in report.map(|r| &r.hooks).into_iter().flatten() {
        for h in answers {
            let line = if h.passed {
                format!("{kind} webhook {} passed", h.name)
            } else {
                format!("{kind} webhook {} failed: {}", h.name, h.message)
            };
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::plan::{CheckResult, HookResult};
    use crate::core::spec::Weight;
    use chrono::{TimeZone, Utc};

    const REV: &str = "abc1234def5678";

    fn canary(extra: &str) -> Canary {
        let text = format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: podinfo\n  namespace: test\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: podinfo\n  service:\n    port: 9898\n  analysis:\n    interval: 1m\n    stepWeight: 10\n    maxWeight: 50\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n{extra}"
        );
        let scan = crate::core::spec::scan_file(
            "apps/podinfo/canary.yaml",
            text.as_bytes(),
            std::time::Duration::from_secs(10),
        );
        let (canary, _) = scan.canaries.into_iter().next().unwrap().unwrap();
        canary
    }

    fn state(phase: Phase) -> State {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        State {
            phase,
            canary_revision: phase.in_flight().then(|| REV.to_string()),
            promoted_revision: "0ld".into(),
            last_step_at: at,
            last_transition_at: at,
            ..State::default()
        }
    }

    fn step(next: State, alert: Option<(AlertSeverity, &str)>) -> Step {
        Step {
            event: "the event".into(),
            summary: "the event".into(),
            details: Vec::new(),
            alert: alert.map(|(s, m)| (s, m.to_string())),
            retried: false,
            next,
        }
    }

    fn app() -> AppRef {
        AppRef {
            namespace: "test".into(),
            name: "podinfo".into(),
            dir: "apps/podinfo".into(),
        }
    }

    fn provider(namespace: Option<&str>, name: &str) -> AlertProviderSpec {
        let text = format!(
            "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata:\n  name: {name}\n{}spec:\n  type: slack\n  address: https://hooks.slack.test/x\n",
            namespace.map(|n| format!("  namespace: {n}\n")).unwrap_or_default()
        );
        let scan = crate::core::spec::scan_file(
            "platform/alerts.yaml",
            text.as_bytes(),
            std::time::Duration::from_secs(10),
        );
        scan.providers.into_iter().next().unwrap().unwrap()
    }

    const HOOKS: &str = "    webhooks:\n      - name: post\n        type: post-rollout\n        url: http://hooks.test/post\n      - name: ev\n        type: event\n        url: http://hooks.test/ev\n";

    #[test]
    fn which_webhooks_hear_about_a_step() {
        use Phase::*;
        // (case, phase before, phase after, alert severity, the calls as name:phase:eventType)
        let cases = [
            (
                "a promotion that finishes: post-rollout, then the event",
                Some(Finalising),
                Succeeded,
                Some(AlertSeverity::Info),
                vec!["post:Succeeded:", "ev:Succeeded:Normal"],
            ),
            (
                "a rollback: post-rollout, and a warning event",
                Some(Progressing),
                Failed,
                Some(AlertSeverity::Error),
                vec!["post:Failed:", "ev:Failed:Warning"],
            ),
            (
                "a step in flight: the event only",
                Some(Progressing),
                Progressing,
                None,
                vec!["ev:Progressing:Normal"],
            ),
            (
                "initialisation ends no release",
                None,
                Initialized,
                Some(AlertSeverity::Info),
                vec!["ev:Initialized:Normal"],
            ),
            (
                "a repair at rest ends no release",
                Some(Succeeded),
                Succeeded,
                None,
                vec!["ev:Succeeded:Normal"],
            ),
        ];
        let c = canary(HOOKS);
        for (name, before, after, severity, want) in cases {
            let before = before.map(state);
            let s = step(state(after), severity.map(|s| (s, "message")));
            let e = effects(
                Published {
                    app: &app(),
                    canary: &c,
                    before: before.as_ref(),
                    step: &s,
                    revision: REV,
                    report: None,
                },
                &Providers::new(),
                &[],
            );
            let got: Vec<String> = e
                .calls
                .iter()
                .map(|call| {
                    let kind = call
                        .payload
                        .metadata
                        .get("eventType")
                        .cloned()
                        .unwrap_or_default();
                    format!("{}:{}:{kind}", call.name, call.payload.phase)
                })
                .collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(e.alert.is_some(), severity.is_some(), "{name}");
            assert_eq!(e.step.event, "the event", "{name}");
        }
    }

    #[test]
    fn an_alert_goes_to_the_providers_the_canary_names() {
        let alerts = "    alerts:\n      - name: on-call\n        severity: error\n        providerRef:\n          name: slack\n      - name: team\n        providerRef:\n          name: team-chat\n          namespace: team\n      - name: gone\n        providerRef:\n          name: nowhere\n";
        // (case, the Canary's alerts, providers in the repository, default targets,
        // routes as alert:provider-namespace:severity or `missing`)
        let cases: Vec<(&str, &str, Providers, usize, Vec<&str>)> = vec![
            (
                "no alerts named: the global provider",
                "",
                Providers::new(),
                1,
                vec![],
            ),
            (
                "named: each entry in order; a provider without namespace takes the entry's",
                alerts,
                [
                    (
                        ("test".to_string(), "slack".to_string()),
                        provider(Some("test"), "slack"),
                    ),
                    (
                        ("?".to_string(), "team-chat".to_string()),
                        provider(None, "team-chat"),
                    ),
                ]
                .into_iter()
                .collect(),
                0,
                vec!["on-call:test:Error", "team:team:Info", "missing"],
            ),
        ];
        let default = crate::core::spec::alert_provider::AlertTarget {
            provider: "default".into(),
            kind: provider(None, "x").kind,
            address: crate::core::secret::Secret::new("https://hooks.slack.test/default"),
            token: None,
            channel: None,
            username: None,
            proxy: None,
            min_severity: AlertSeverity::Info,
        };
        for (name, extra, providers, defaults, want) in cases {
            let c = canary(extra);
            let before = state(Phase::Progressing);
            let s = step(
                state(Phase::Failed),
                Some((AlertSeverity::Error, "Failed checks threshold reached 2")),
            );
            let report = GateReport {
                revision: REV.into(),
                canary_weight: Weight::ZERO,
                at: before.last_step_at,
                checks: Some(vec![CheckResult {
                    name: "request-success-rate".into(),
                    value: Ok(91.3),
                    min: Some(99.0),
                    max: None,
                    unreachable: false,
                }]),
                hooks: [(
                    HookType::Rollout,
                    vec![HookResult {
                        name: "load".into(),
                        passed: false,
                        message: "HTTP 500".into(),
                        mute_alert: false,
                    }],
                )]
                .into_iter()
                .collect(),
            };
            let e = effects(
                Published {
                    app: &app(),
                    canary: &c,
                    before: Some(&before),
                    step: &s,
                    revision: REV,
                    report: Some(&report),
                },
                &providers,
                std::slice::from_ref(&default),
            );
            let routed = e.alert.expect("the step alerts");
            assert_eq!(routed.alert.targets.len(), defaults, "{name}");
            let got: Vec<String> = routed
                .routes
                .iter()
                .map(|r| match r {
                    Route::Provider {
                        alert,
                        spec,
                        min_severity,
                    } => format!(
                        "{alert}:{}:{min_severity:?}",
                        spec.namespace.as_deref().unwrap_or("")
                    ),
                    Route::Missing { .. } => "missing".into(),
                })
                .collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(
                routed.alert.failing,
                vec!["rollout load: HTTP 500", "request-success-rate 91.3 < 99"],
                "{name}"
            );
            assert_eq!(
                routed.alert.fields,
                vec![
                    ("Target".to_string(), "Deployment/podinfo.test".to_string()),
                    (
                        "Traffic routing".to_string(),
                        c.analysis.strategy.describe()
                    ),
                    ("Event".to_string(), "the event".to_string()),
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn the_commit_body_adds_each_webhook_answer_once() {
        let answer = |name: &str, passed: bool| HookResult {
            name: name.into(),
            passed,
            message: "HTTP 403: Forbidden".into(),
            mute_alert: false,
        };
        let cases = [
            ("no evidence", vec!["a"], None, vec!["a"]),
            (
                "passed and failed",
                vec!["a"],
                Some(vec![answer("x", true), answer("y", false)]),
                vec![
                    "a",
                    "rollout webhook x passed",
                    "rollout webhook y failed: HTTP 403: Forbidden",
                ],
            ),
            (
                "a line the step has already",
                vec!["rollout webhook x passed"],
                Some(vec![answer("x", true)]),
                vec!["rollout webhook x passed"],
            ),
        ];
        for (name, details, answers, want) in cases {
            let details: Vec<String> = details.into_iter().map(String::from).collect();
            let report = answers.map(|a| GateReport {
                hooks: [(HookType::Rollout, a)].into_iter().collect(),
                ..GateReport::default()
            });
            assert_eq!(commit_details(&details, report.as_ref()), want, "{name}");
        }
    }
}
