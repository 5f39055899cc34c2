//! The series `weir run` exposes, derived from what each tick reports, and whether the loop
//! is ready.
//!
//! Flagger's series keep Flagger's names, types, labels and values (its `pkg/metrics`), so
//! a Grafana dashboard made for Flagger keeps working: apps are labelled by the Canary's
//! `targetRef.name`, and `flagger_canary_weight` has one series for `<target>-primary` and
//! one for `<target>`. weir's own series start with `weir_`; those about a repository's loop
//! (ticks, pushes, races, leader, apps by phase) carry its `repo` (the URL without
//! credentials) and `branch`, since one process may serve several.
//!
//! Only a repository's leader exports the series of its apps: a process that stops leading
//! one drops them, so that the replica writing it is the one Flagger's dashboard reads.
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
use std::sync::{Arc, Mutex};
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

/// The repository a loop serves: its URL without credentials, and its branch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct RepoLabels {
    repo: String,
    branch: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    repo: String,
    branch: String,
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
    repo: String,
    branch: String,
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

/// What is remembered of one repository's loop.
#[derive(Debug, Default)]
struct RepoMemory {
    apps: BTreeMap<String, Known>,
    ticks: u64,
    failures_in_a_row: u32,
    /// Another replica holds the repository's Lease; this one waits.
    standby: bool,
}

impl RepoMemory {
    /// True once a tick has finished (or while standing by), unless the last
    /// [`UNREADY_AFTER_FAILURES`] ticks failed.
    fn ready(&self) -> bool {
        (self.ticks > 0 || self.standby) && self.failures_in_a_row < UNREADY_AFTER_FAILURES
    }
}

#[derive(Debug, Default)]
struct Memory {
    repos: BTreeMap<RepoLabels, RepoMemory>,
    /// Namespaces `flagger_canary_total` has a series for.
    namespaces: BTreeSet<String>,
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
    tick_duration: Histograms<RepoLabels>,
    pushes: Family<RepoLabels, Counter>,
    races: Family<RepoLabels, Counter>,
    leader: Family<RepoLabels, Gauge>,
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
            tick_duration: Family::new_with_constructor(long_buckets),
            pushes: Family::default(),
            races: Family::default(),
            leader: Family::default(),
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
            "1 while this process holds the repository's Lease and writes it",
            m.leader.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// The series of one repository's loop; its readiness counts from now on.
    pub fn repository(self: &Arc<Self>, repo: &str, branch: &str) -> RepoMetrics {
        let labels = RepoLabels {
            repo: crate::core::remote::bare(repo),
            branch: branch.to_string(),
        };
        self.leader.get_or_create(&labels).set(0);
        self.lock().repos.entry(labels.clone()).or_default();
        RepoMetrics {
            metrics: self.clone(),
            labels,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when every repository's loop is ready (none failed its last
    /// [`UNREADY_AFTER_FAILURES`] ticks, each finished one or stands by); false before any.
    pub fn ready(&self) -> bool {
        let memory = self.lock();
        !memory.repos.is_empty() && memory.repos.values().all(RepoMemory::ready)
    }

    /// The series in Prometheus's text format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Whether this process leads `repo`. A standby is ready: it does what it should,
    /// waiting, and a Deployment of replicas must not count it unavailable. A process that
    /// stops leading drops the series of the repository's apps: the new leader exports them.
    fn set_leader(&self, repo: &RepoLabels, leader: bool) {
        self.leader.get_or_create(repo).set(i64::from(leader));
        let mut memory = self.lock();
        let mine = memory.repos.entry(repo.clone()).or_default();
        let was_standby = std::mem::replace(&mut mine.standby, !leader);
        if leader || was_standby {
            return;
        }
        let apps = std::mem::take(&mut mine.apps);
        for known in apps.into_values() {
            self.forget(known);
        }
        self.counts(&mut memory);
    }

    /// Records what a tick of `repo` did and how long it took.
    fn observe(&self, repo: &RepoLabels, outcome: Result<&TickReport, &TickError>, took: Duration) {
        self.tick_duration
            .get_or_create(repo)
            .observe(took.as_secs_f64());
        let mut guard = self.lock();
        let memory = &mut *guard;
        let mine = memory.repos.entry(repo.clone()).or_default();
        mine.ticks += 1;
        let report = match outcome {
            Ok(report) => report,
            Err(e) => {
                mine.failures_in_a_row = mine.failures_in_a_row.saturating_add(1);
                let kind = if e.is_transient() {
                    "transient"
                } else {
                    "error"
                };
                self.tick(repo, kind);
                if let TickError::PushRace { attempts } = e {
                    self.races.get_or_create(repo).inc_by(u64::from(*attempts));
                }
                return;
            }
        };
        mine.failures_in_a_row = 0;
        self.tick(repo, "ok");
        self.races
            .get_or_create(repo)
            .inc_by(u64::from(report.attempts.saturating_sub(1)));
        if report.commit.is_some() && report.diff.is_none() {
            self.pushes.get_or_create(repo).inc();
        }
        self.results(report, mine);
        for line in &report.apps {
            self.app(line, mine);
        }
        // A tick on an unchanged head reports no app at all; a full one reports every app.
        if !report.apps.is_empty() {
            self.forget_gone(report, mine);
        }
        self.counts(memory);
    }

    fn tick(&self, repo: &RepoLabels, outcome: &str) {
        self.ticks
            .get_or_create(&OutcomeLabels {
                repo: repo.repo.clone(),
                branch: repo.branch.clone(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Flagger counts a success when a release is promoted and a failure when one is rolled
    /// back: here, a published event that moves an app into Succeeded or Failed.
    fn results(&self, report: &TickReport, memory: &RepoMemory) {
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

    fn app(&self, line: &AppReport, memory: &mut RepoMemory) {
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
    fn forget_gone(&self, report: &TickReport, memory: &mut RepoMemory) {
        let present: BTreeSet<&str> = report.apps.iter().map(|a| a.app.as_str()).collect();
        let gone: Vec<String> = memory
            .apps
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        for key in gone {
            if let Some(known) = memory.apps.remove(&key) {
                self.forget(known);
            }
        }
    }

    /// Drops the gauges of one app (its counters stay: they only ever grow).
    fn forget(&self, known: Known) {
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

    /// `flagger_canary_total` per namespace (over every repository) and `weir_apps` per
    /// repository and phase, from what is known.
    fn counts(&self, memory: &mut Memory) {
        let mut per_namespace: BTreeMap<String, i64> = BTreeMap::new();
        let mut per_phase: BTreeMap<PhaseKey, i64> = BTreeMap::new();
        for (repo, mine) in &memory.repos {
            for known in mine.apps.values() {
                *per_namespace.entry(known.namespace.clone()).or_default() += 1;
                let phase = known.phase.clone().unwrap_or_else(|| "Unknown".into());
                *per_phase.entry((repo.clone(), phase)).or_default() += 1;
            }
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
        for ((repo, phase), n) in per_phase {
            self.apps
                .get_or_create(&PhaseLabels {
                    repo: repo.repo,
                    branch: repo.branch,
                    phase,
                })
                .set(n);
        }
    }
}

/// A repository and a phase.
type PhaseKey = (RepoLabels, String);

/// The series of one repository's loop.
#[derive(Clone)]
pub struct RepoMetrics {
    metrics: Arc<Metrics>,
    labels: RepoLabels,
}

impl RepoMetrics {
    /// Sets whether this process leads the repository (the one that writes it).
    pub fn set_leader(&self, leader: bool) {
        self.metrics.set_leader(&self.labels, leader);
    }

    /// Records what a tick did and how long it took.
    pub fn observe(&self, outcome: Result<&TickReport, &TickError>, took: Duration) {
        self.metrics.observe(&self.labels, outcome, took);
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

    fn repo(m: &Arc<Metrics>) -> RepoMetrics {
        m.repository("https://token@github.com/acme/fleet.git", "main")
    }

    #[test]
    fn flagger_series_follow_the_reports() {
        let all = Arc::new(Metrics::new());
        let m = repo(&all);
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
        let text = all.encode();
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
            r#"weir_apps{repo="https://github.com/acme/fleet.git",branch="main",phase="Progressing"} 1"#,
        ] {
            assert!(has(&text, sample), "no {sample} in\n{text}");
        }

        // An idle line (no phase) keeps what was known; a promotion counts one success.
        m.observe(Ok(&report(vec![line(None, None)], vec![])), Duration::ZERO);
        assert!(has(
            &all.encode(),
            r#"flagger_canary_weight{workload="backend-app",namespace="prod"} 25"#
        ));
        let done = report(
            vec![line(Some("Succeeded"), Some(0))],
            vec![event(Phase::Succeeded)],
        );
        m.observe(Ok(&done), Duration::ZERO);
        // The same phase again (a repair) is not a second success.
        m.observe(Ok(&done), Duration::ZERO);
        let text = all.encode();
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
        let text = all.encode();
        assert!(!text.contains(r#"workload="backend-app""#), "{text}");
        assert!(
            has(&text, r#"flagger_canary_total{namespace="prod"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn ready_after_a_tick_until_three_fail_in_a_row() {
        let all = Arc::new(Metrics::new());
        assert!(!all.ready(), "no repository yet");
        let m = repo(&all);
        assert!(!all.ready());
        m.observe(Ok(&report(vec![], vec![])), Duration::ZERO);
        assert!(all.ready());
        let failed = TickError::Deadline(Duration::from_secs(1));
        for _ in 0..2 {
            m.observe(Err(&failed), Duration::ZERO);
            assert!(all.ready());
        }
        m.observe(Err(&failed), Duration::ZERO);
        assert!(!all.ready());
        m.observe(Ok(&report(vec![], vec![])), Duration::ZERO);
        assert!(all.ready());
        assert!(has(
            &all.encode(),
            r#"weir_ticks_total{repo="https://github.com/acme/fleet.git",branch="main",outcome="transient"} 3"#
        ));
        // A second repository that has not ticked yet holds readiness back; standing by is
        // ready.
        let other = all.repository("/srv/git/other.git", "main");
        assert!(!all.ready());
        other.set_leader(false);
        assert!(all.ready());
    }

    #[test]
    fn each_repository_has_its_own_leader_and_apps_and_a_standby_drops_its_apps() {
        let all = Arc::new(Metrics::new());
        let (fleet, other) = (repo(&all), all.repository("/srv/git/other.git", "prod"));
        fleet.set_leader(true);
        other.set_leader(true);
        let mut second = line(Some("Succeeded"), Some(0));
        second.app = "prod/other".into();
        second.target = "other".into();
        fleet.observe(
            Ok(&report(vec![line(Some("Progressing"), Some(25))], vec![])),
            Duration::ZERO,
        );
        other.observe(Ok(&report(vec![second], vec![])), Duration::ZERO);
        let text = all.encode();
        for sample in [
            r#"weir_leader{repo="https://github.com/acme/fleet.git",branch="main"} 1"#,
            r#"weir_leader{repo="/srv/git/other.git",branch="prod"} 1"#,
            r#"weir_apps{repo="/srv/git/other.git",branch="prod",phase="Succeeded"} 1"#,
            r#"flagger_canary_total{namespace="prod"} 2"#,
            r#"flagger_canary_weight{workload="backend-app",namespace="prod"} 25"#,
            r#"flagger_canary_weight{workload="other",namespace="prod"} 0"#,
        ] {
            assert!(has(&text, sample), "no {sample} in\n{text}");
        }
        // A full tick of one repository forgets nothing of the other's.
        fleet.observe(
            Ok(&report(vec![line(Some("Progressing"), Some(50))], vec![])),
            Duration::ZERO,
        );
        assert!(has(
            &all.encode(),
            r#"flagger_canary_weight{workload="other",namespace="prod"} 0"#
        ));

        // The fleet's Lease goes to another replica: its apps' series go with it.
        fleet.set_leader(false);
        let text = all.encode();
        assert!(!text.contains(r#"workload="backend-app""#), "{text}");
        assert!(!text.contains(r#"name="backend-app""#), "{text}");
        for sample in [
            r#"weir_leader{repo="https://github.com/acme/fleet.git",branch="main"} 0"#,
            r#"flagger_canary_total{namespace="prod"} 1"#,
            r#"flagger_canary_weight{workload="other",namespace="prod"} 0"#,
        ] {
            assert!(has(&text, sample), "no {sample} in\n{text}");
        }
        assert!(all.ready(), "a standby is ready");
    }
}
