//! The series `weir run` exposes, derived from what each tick reports, and whether the loop
//! is ready.
//!
//! Flagger's series keep Flagger's names, types, labels and values (its `pkg/metrics`), so
//! a Grafana dashboard made for Flagger keeps working: apps are labelled by the Canary's
//! `targetRef.name`, and `flagger_canary_weight` has one series for `<target>-primary` and
//! one for `<target>`. weir's own series start with `weir_`.
//!
//! It only records what a tick reports; it must never decide anything or read anything but
//! the report.

use super::report::{AppReport, TickReport};
use super::TickError;
use crate::core::spec::Phase;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

/// Ticks failed in a row after which `/readyz` answers 503.
pub const UNREADY_AFTER_FAILURES: u32 = 3;

/// A gauge holding any float (a metric's value, a bound).
type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    workload: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    name: String,
    namespace: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    name: String,
    namespace: String,
    deployment_strategy: String,
    analysis_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabels {
    name: String,
    namespace: String,
    metric: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppPhaseLabels {
    name: String,
    namespace: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// Prometheus's default buckets, which Flagger's analysis duration uses.
fn default_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// From 10 ms to about 5 minutes: a tick, or a gate query.
fn long_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

/// What is remembered of an app between ticks: idle ticks report an app without its phase.
#[derive(Debug, Clone, Default)]
struct Known {
    namespace: String,
    target: String,
    phase: Option<String>,
    metrics: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Memory {
    apps: BTreeMap<String, Known>,
    namespaces: BTreeSet<String>,
    ticks: u64,
    failures_in_a_row: u32,
    /// Another replica holds the Lease; this one waits.
    standby: bool,
}

/// Every series of `weir run`, and the readiness of its loop.
pub struct Metrics {
    registry: Registry,
    status: Family<AppLabels, Gauge>,
    weight: Family<WorkloadLabels, Gauge>,
    total: Family<NamespaceLabels, Gauge>,
    duration: Histograms<AppLabels>,
    analysis: Family<MetricLabels, FloatGauge>,
    successes: Family<ResultLabels, Counter>,
    failures: Family<ResultLabels, Counter>,
    phase: Family<AppPhaseLabels, Gauge>,
    gate_min: Family<MetricLabels, FloatGauge>,
    gate_max: Family<MetricLabels, FloatGauge>,
    gate_duration: Histograms<MetricLabels>,
    gate_checks: Family<GateLabels, Counter>,
    apps: Family<PhaseLabels, Gauge>,
    ticks: Family<OutcomeLabels, Counter>,
    tick_duration: Histogram,
    pushes: Counter,
    races: Counter,
    leader: Gauge,
    memory: Mutex<Memory>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every series, all empty.
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            status: Family::default(),
            weight: Family::default(),
            total: Family::default(),
            duration: Family::new_with_constructor(default_buckets),
            analysis: Family::default(),
            successes: Family::default(),
            failures: Family::default(),
            phase: Family::default(),
            gate_min: Family::default(),
            gate_max: Family::default(),
            gate_duration: Family::new_with_constructor(long_buckets),
            gate_checks: Family::default(),
            apps: Family::default(),
            ticks: Family::default(),
            tick_duration: long_buckets(),
            pushes: Counter::default(),
            races: Counter::default(),
            leader: Gauge::default(),
            memory: Mutex::new(Memory::default()),
            registry: Registry::default(),
        };
        // Flagger's series, as its recorder names them (counters get `_total` on encoding).
        r.register(
            "flagger_canary_status",
            "Last canary analysis result (0 progressing, 1 successful or idle, 2 failed)",
            m.status.clone(),
        );
        r.register(
            "flagger_canary_weight",
            "The virtual service destination weight current value",
            m.weight.clone(),
        );
        r.register(
            "flagger_canary_total",
            "Total number of canary object",
            m.total.clone(),
        );
        r.register(
            "flagger_canary_duration_seconds",
            "Seconds spent performing canary analysis.",
            m.duration.clone(),
        );
        r.register(
            "flagger_canary_metric_analysis",
            "Last canary analysis result per metric",
            m.analysis.clone(),
        );
        r.register(
            "flagger_canary_successes",
            "Total number of canary successes",
            m.successes.clone(),
        );
        r.register(
            "flagger_canary_failures",
            "Total number of canary failures",
            m.failures.clone(),
        );
        // weir's own.
        r.register(
            "weir_canary_phase",
            "1 for the phase each app is in (labelled like Flagger's series, by target)",
            m.phase.clone(),
        );
        r.register(
            "weir_gate_min",
            "Inclusive lower bound of a metric gate",
            m.gate_min.clone(),
        );
        r.register(
            "weir_gate_max",
            "Inclusive upper bound of a metric gate",
            m.gate_max.clone(),
        );
        r.register(
            "weir_gate_duration_seconds",
            "Seconds a metric gate's query took, its wait for a slot included",
            m.gate_duration.clone(),
        );
        r.register(
            "weir_gate_checks",
            "Metric gate answers by outcome: passed, failed, no_data, unreachable",
            m.gate_checks.clone(),
        );
        r.register(
            "weir_apps",
            "Apps by their last known phase",
            m.apps.clone(),
        );
        r.register(
            "weir_ticks",
            "Ticks by outcome: ok, transient (retried with backoff), error",
            m.ticks.clone(),
        );
        r.register(
            "weir_tick_duration_seconds",
            "Seconds a tick took",
            m.tick_duration.clone(),
        );
        r.register(
            "weir_pushes",
            "Steps published (commits pushed, or pull requests merged)",
            m.pushes.clone(),
        );
        r.register(
            "weir_push_races",
            "Pushes refused because the branch moved; each was planned again",
            m.races.clone(),
        );
        r.register(
            "weir_leader",
            "1 while this process holds the lease and writes",
            m.leader.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// Sets whether this process is the leader (the one that writes). A standby is ready: it
    /// does what it should, waiting, and a Deployment of replicas must not count it unavailable.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.standby = !leader;
    }

    /// True once a tick has finished (or while standing by), unless the last
    /// [`UNREADY_AFTER_FAILURES`] ticks failed.
    pub fn ready(&self) -> bool {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        (memory.ticks > 0 || memory.standby) && memory.failures_in_a_row < UNREADY_AFTER_FAILURES
    }

    /// The series in Prometheus's text format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records what a tick did and how long it took.
    pub fn observe(&self, outcome: Result<&TickReport, &TickError>, took: Duration) {
        self.tick_duration.observe(took.as_secs_f64());
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory.ticks += 1;
        let report = match outcome {
            Ok(report) => report,
            Err(e) => {
                memory.failures_in_a_row = memory.failures_in_a_row.saturating_add(1);
                let kind = if e.is_transient() {
                    "transient"
                } else {
                    "error"
                };
                self.tick(kind);
                if let TickError::PushRace { attempts } = e {
                    self.races.inc_by(u64::from(*attempts));
                }
                return;
            }
        };
        memory.failures_in_a_row = 0;
        self.tick("ok");
        self.races
            .inc_by(u64::from(report.attempts.saturating_sub(1)));
        if report.commit.is_some() && report.diff.is_none() {
            self.pushes.inc();
        }
        self.results(report, &memory);
        for line in &report.apps {
            self.app(line, &mut memory);
        }
        // A tick on an unchanged head reports no app at all; a full one reports every app.
        if !report.apps.is_empty() {
            self.forget_gone(report, &mut memory);
        }
        self.counts(&mut memory);
    }

    fn tick(&self, outcome: &str) {
        self.ticks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Flagger counts a success when a release is promoted and a failure when one is rolled
    /// back: here, a published event that moves an app into Succeeded or Failed.
    fn results(&self, report: &TickReport, memory: &Memory) {
        for event in &report.events {
            let key = format!("{}/{}", event.app.namespace, event.app.name);
            let Some(line) = report.apps.iter().find(|a| a.app == key) else {
                continue;
            };
            let before = memory.apps.get(&key).and_then(|k| k.phase.clone());
            let now = event.phase.to_string();
            if before.as_deref() == Some(now.as_str()) {
                continue;
            }
            let family = match event.phase {
                Phase::Succeeded => &self.successes,
                Phase::Failed => &self.failures,
                _ => continue,
            };
            let skipped = line.skip_analysis && event.phase == Phase::Succeeded;
            family
                .get_or_create(&ResultLabels {
                    name: line.target.clone(),
                    namespace: line.namespace.clone(),
                    deployment_strategy: line.strategy.into(),
                    analysis_status: if skipped { "skipped" } else { "completed" }.into(),
                })
                .inc();
        }
    }

    fn app(&self, line: &AppReport, memory: &mut Memory) {
        if line.target.is_empty() {
            // A Canary that could not be read: nothing to label its series with.
            return;
        }
        let known = memory.apps.entry(line.app.clone()).or_default();
        known.namespace = line.namespace.clone();
        known.target = line.target.clone();
        let app = AppLabels {
            name: line.target.clone(),
            namespace: line.namespace.clone(),
        };
        if let Some(phase) = &line.phase {
            let status = match phase.as_str() {
                "Progressing" => 0,
                "Failed" => 2,
                _ => 1,
            };
            self.status.get_or_create(&app).set(status);
            if known.phase.as_ref() != Some(phase) {
                if let Some(old) = &known.phase {
                    self.phase.remove(&phase_labels(line, old));
                }
                known.phase = Some(phase.clone());
            }
            self.phase.get_or_create(&phase_labels(line, phase)).set(1);
        }
        if let (Some(primary), Some(canary)) = (line.primary_weight, line.canary_weight) {
            self.weight
                .get_or_create(&WorkloadLabels {
                    workload: format!("{}-primary", line.target),
                    namespace: line.namespace.clone(),
                })
                .set(i64::from(primary));
            self.weight
                .get_or_create(&WorkloadLabels {
                    workload: line.target.clone(),
                    namespace: line.namespace.clone(),
                })
                .set(i64::from(canary));
        }
        if let Some(seconds) = line.analysis_seconds {
            self.duration.get_or_create(&app).observe(seconds);
        }
        for gate in &line.gates {
            let labels = MetricLabels {
                name: line.target.clone(),
                namespace: line.namespace.clone(),
                metric: gate.metric.clone(),
            };
            known.metrics.insert(gate.metric.clone());
            if let Some(v) = gate.value {
                self.analysis.get_or_create(&labels).set(v);
            }
            if let Some(min) = gate.min {
                self.gate_min.get_or_create(&labels).set(min);
            }
            if let Some(max) = gate.max {
                self.gate_max.get_or_create(&labels).set(max);
            }
            self.gate_duration
                .get_or_create(&labels)
                .observe(gate.seconds);
            self.gate_checks
                .get_or_create(&GateLabels {
                    name: labels.name,
                    namespace: labels.namespace,
                    metric: labels.metric,
                    outcome: gate.outcome.into(),
                })
                .inc();
        }
    }

    /// Drops the gauges of apps no longer in the repository.
    fn forget_gone(&self, report: &TickReport, memory: &mut Memory) {
        let present: BTreeSet<&str> = report.apps.iter().map(|a| a.app.as_str()).collect();
        let gone: Vec<String> = memory
            .apps
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        for key in gone {
            let Some(known) = memory.apps.remove(&key) else {
                continue;
            };
            let app = AppLabels {
                name: known.target.clone(),
                namespace: known.namespace.clone(),
            };
            self.status.remove(&app);
            for workload in [format!("{}-primary", known.target), known.target.clone()] {
                self.weight.remove(&WorkloadLabels {
                    workload,
                    namespace: known.namespace.clone(),
                });
            }
            if let Some(phase) = &known.phase {
                self.phase.remove(&AppPhaseLabels {
                    name: known.target.clone(),
                    namespace: known.namespace.clone(),
                    phase: phase.clone(),
                });
            }
            for metric in known.metrics {
                let labels = MetricLabels {
                    name: known.target.clone(),
                    namespace: known.namespace.clone(),
                    metric,
                };
                self.analysis.remove(&labels);
                self.gate_min.remove(&labels);
                self.gate_max.remove(&labels);
            }
        }
    }

    /// `flagger_canary_total` per namespace and `weir_apps` per phase, from what is known.
    fn counts(&self, memory: &mut Memory) {
        let mut per_namespace: BTreeMap<String, i64> = BTreeMap::new();
        let mut per_phase: BTreeMap<String, i64> = BTreeMap::new();
        for known in memory.apps.values() {
            *per_namespace.entry(known.namespace.clone()).or_default() += 1;
            let phase = known.phase.clone().unwrap_or_else(|| "Unknown".into());
            *per_phase.entry(phase).or_default() += 1;
        }
        for namespace in &memory.namespaces {
            if !per_namespace.contains_key(namespace) {
                per_namespace.insert(namespace.clone(), 0);
            }
        }
        for (namespace, n) in &per_namespace {
            self.total
                .get_or_create(&NamespaceLabels {
                    namespace: namespace.clone(),
                })
                .set(*n);
        }
        memory.namespaces = per_namespace.keys().cloned().collect();
        self.apps.clear();
        for (phase, n) in per_phase {
            self.apps.get_or_create(&PhaseLabels { phase }).set(n);
        }
    }
}

fn phase_labels(line: &AppReport, phase: &str) -> AppPhaseLabels {
    AppPhaseLabels {
        name: line.target.clone(),
        namespace: line.namespace.clone(),
        phase: phase.into(),
    }
}

impl crate::ports::Exposition for Metrics {
    fn metrics_text(&self) -> String {
        self.encode()
    }

    fn ready(&self) -> bool {
        Metrics::ready(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::app::AppRef;
    use crate::core::events::Event;
    use crate::core::spec::Weight;
    use crate::engine::report::GateReading;

    fn line(phase: Option<&str>, canary: Option<u8>) -> AppReport {
        AppReport {
            app: "prod/backend".into(),
            dir: "apps/backend".into(),
            phase: phase.map(String::from),
            canary_weight: canary,
            primary_weight: canary.map(|c| 100 - c),
            failed_checks: None,
            threshold: 2,
            canary_revision: None,
            primary_revision: None,
            primary_images: Vec::new(),
            next_step_at: None,
            message: String::new(),
            errors: Vec::new(),
            proposed: None,
            applied: None,
            pods: None,
            namespace: "prod".into(),
            target: "backend-app".into(),
            strategy: "canary",
            skip_analysis: false,
            gates: Vec::new(),
            analysis_seconds: None,
        }
    }

    fn event(phase: Phase) -> Event {
        Event {
            app: AppRef {
                namespace: "prod".into(),
                name: "backend".into(),
                dir: "apps/backend".into(),
            },
            phase,
            weight: Weight::new(0).unwrap(),
            summary: String::new(),
            details: Vec::new(),
        }
    }

    fn report(apps: Vec<AppReport>, events: Vec<Event>) -> TickReport {
        TickReport {
            attempts: 1,
            apps,
            events,
            ..TickReport::default()
        }
    }

    fn has(text: &str, sample: &str) -> bool {
        text.lines().any(|l| l == sample)
    }

    #[test]
    fn flagger_series_follow_the_reports() {
        let m = Metrics::new();
        let mut progressing = line(Some("Progressing"), Some(25));
        progressing.analysis_seconds = Some(0.2);
        progressing.gates = vec![GateReading {
            metric: "request-success-rate".into(),
            value: Some(99.5),
            min: Some(99.0),
            max: None,
            outcome: "passed",
            seconds: 0.01,
        }];
        m.observe(
            Ok(&report(vec![progressing], vec![])),
            Duration::from_millis(5),
        );
        let text = m.encode();
        for sample in [
            r#"flagger_canary_weight{workload="backend-app",namespace="prod"} 25"#,
            r#"flagger_canary_weight{workload="backend-app-primary",namespace="prod"} 75"#,
            r#"flagger_canary_status{name="backend-app",namespace="prod"} 0"#,
            r#"flagger_canary_total{namespace="prod"} 1"#,
            r#"flagger_canary_metric_analysis{name="backend-app",namespace="prod",metric="request-success-rate"} 99.5"#,
            r#"flagger_canary_duration_seconds_count{name="backend-app",namespace="prod"} 1"#,
            r#"weir_gate_min{name="backend-app",namespace="prod",metric="request-success-rate"} 99.0"#,
            r#"weir_gate_checks_total{name="backend-app",namespace="prod",metric="request-success-rate",outcome="passed"} 1"#,
            r#"weir_canary_phase{name="backend-app",namespace="prod",phase="Progressing"} 1"#,
            r#"weir_apps{phase="Progressing"} 1"#,
        ] {
            assert!(has(&text, sample), "no {sample} in\n{text}");
        }

        // An idle line (no phase) keeps what was known; a promotion counts one success.
        m.observe(Ok(&report(vec![line(None, None)], vec![])), Duration::ZERO);
        assert!(has(
            &m.encode(),
            r#"flagger_canary_weight{workload="backend-app",namespace="prod"} 25"#
        ));
        let done = report(
            vec![line(Some("Succeeded"), Some(0))],
            vec![event(Phase::Succeeded)],
        );
        m.observe(Ok(&done), Duration::ZERO);
        // The same phase again (a repair) is not a second success.
        m.observe(Ok(&done), Duration::ZERO);
        let text = m.encode();
        for sample in [
            r#"flagger_canary_weight{workload="backend-app",namespace="prod"} 0"#,
            r#"flagger_canary_status{name="backend-app",namespace="prod"} 1"#,
            r#"flagger_canary_successes_total{name="backend-app",namespace="prod",deployment_strategy="canary",analysis_status="completed"} 1"#,
            r#"weir_canary_phase{name="backend-app",namespace="prod",phase="Succeeded"} 1"#,
        ] {
            assert!(has(&text, sample), "no {sample} in\n{text}");
        }
        assert!(!text.contains(r#"phase="Progressing""#), "{text}");

        // A full tick without the app forgets its gauges.
        let mut other = line(Some("Initialized"), Some(0));
        other.app = "prod/other".into();
        other.target = "other".into();
        m.observe(Ok(&report(vec![other], vec![])), Duration::ZERO);
        let text = m.encode();
        assert!(!text.contains(r#"workload="backend-app""#), "{text}");
        assert!(
            has(&text, r#"flagger_canary_total{namespace="prod"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn ready_after_a_tick_until_three_fail_in_a_row() {
        let m = Metrics::new();
        assert!(!m.ready());
        m.observe(Ok(&report(vec![], vec![])), Duration::ZERO);
        assert!(m.ready());
        let failed = TickError::Deadline(Duration::from_secs(1));
        for _ in 0..2 {
            m.observe(Err(&failed), Duration::ZERO);
            assert!(m.ready());
        }
        m.observe(Err(&failed), Duration::ZERO);
        assert!(!m.ready());
        m.observe(Ok(&report(vec![], vec![])), Duration::ZERO);
        assert!(m.ready());
        assert!(has(
            &m.encode(),
            r#"weir_ticks_total{outcome="transient"} 3"#
        ));
    }

    #[test]
    fn leader_is_set_from_outside() {
        let m = Metrics::new();
        assert!(has(&m.encode(), "weir_leader 0"));
        m.set_leader(true);
        assert!(has(&m.encode(), "weir_leader 1"));
    }
}
