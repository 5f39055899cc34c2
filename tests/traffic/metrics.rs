//! Simulation: requests, outcomes and latencies per workload, and their exposition in
//! Prometheus' text format as Istio's destination proxies report them.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::routing::{CANARY, PRIMARY};
use crate::Cli;

/// Upper bounds of the latency histogram, as Istio's default buckets (the `+Inf` bucket is implied).
const BUCKETS_MS: [f64; 11] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];
const GOOD_LATENCY_MS: (f64, f64) = (20.0, 60.0);
const SLOW_LATENCY_MS: (f64, f64) = (700.0, 1200.0);

/// A tiny deterministic generator; statistical quality does not matter here.
struct XorShift(u64);

impl XorShift {
    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one workload has served so far, as Istio's counters and histogram.
#[derive(Default, Clone)]
pub struct WorkloadMetrics {
    ok: u64,
    errors: u64,
    /// Cumulative counts per entry of `BUCKETS_MS`.
    buckets: [u64; BUCKETS_MS.len()],
    sum_ms: f64,
    /// Fractions of a request (and of an error) carried to the next tick, so low rates and
    /// small weights still add up exactly.
    pending: f64,
    pending_errors: f64,
}

impl WorkloadMetrics {
    fn count(&self) -> u64 {
        self.ok + self.errors
    }
}

/// The requests of both workloads, accounted tick by tick.
pub struct Sim {
    rps: f64,
    error_ratio: f64,
    bad_tags: HashSet<String>,
    slow_tags: HashSet<String>,
    rng: XorShift,
    /// What each workload served so far, `[primary, canary]`.
    pub metrics: [WorkloadMetrics; 2],
}

impl Sim {
    pub fn new(cli: &Cli) -> Sim {
        let set = |tags: &[String]| {
            tags.iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect()
        };
        Sim {
            rps: cli.rps,
            error_ratio: cli.error_ratio,
            bad_tags: set(&cli.bad_tags),
            slow_tags: set(&cli.slow_tags),
            rng: XorShift(0x9E37_79B9_7F4A_7C15),
            metrics: Default::default(),
        }
    }

    /// Accounts the requests of `dt` seconds, split by `shares`, served by workloads running `tags`.
    pub fn advance(&mut self, dt: f64, shares: [f64; 2], tags: [Option<String>; 2]) {
        for (w, tag) in tags.iter().enumerate() {
            let is = |set: &HashSet<String>| tag.as_ref().is_some_and(|t| set.contains(t));
            let (bad, slow) = (is(&self.bad_tags), is(&self.slow_tags));
            let m = &mut self.metrics[w];
            m.pending += self.rps * dt * shares[w];
            let n = whole(m.pending);
            m.pending -= n;
            let errors = if bad {
                m.pending_errors += n * self.error_ratio;
                let e = whole(m.pending_errors).min(n);
                m.pending_errors -= e;
                e
            } else {
                0.0
            };
            // Whole numbers by construction.
            let (n, errors) = (n as u64, errors as u64);
            m.errors += errors;
            m.ok += n - errors;
            let (lo, hi) = if slow {
                SLOW_LATENCY_MS
            } else {
                GOOD_LATENCY_MS
            };
            for _ in 0..n {
                let ms = lo + self.rng.next_f64() * (hi - lo);
                m.sum_ms += ms;
                for (bucket, le) in m.buckets.iter_mut().zip(BUCKETS_MS) {
                    if ms <= le {
                        *bucket += 1;
                    }
                }
            }
        }
    }
}

/// The whole requests in an accumulated amount. The epsilon keeps float drift (0.3 added ten
/// times is 2.9999999999999996) from delaying a request by a tick and skewing exact ratios.
fn whole(amount: f64) -> f64 {
    (amount + 1e-9).floor()
}

/// The Prometheus text exposition of both workloads, primary first, in a fixed order.
pub fn render_metrics(
    namespace: &str,
    workloads: &[String; 2],
    metrics: &[WorkloadMetrics; 2],
) -> String {
    let labels = |w: usize| {
        format!(
            "reporter=\"destination\",destination_workload=\"{}\",destination_workload_namespace=\"{}\"",
            escape_label(&workloads[w]),
            escape_label(namespace)
        )
    };
    let mut out = String::new();
    out.push_str("# HELP istio_requests_total Requests received, as reported by the destination proxy (simulated).\n");
    out.push_str("# TYPE istio_requests_total counter\n");
    for w in [PRIMARY, CANARY] {
        let m = &metrics[w];
        for (code, n) in [("200", m.ok), ("500", m.errors)] {
            let _ = writeln!(
                out,
                "istio_requests_total{{{},response_code=\"{code}\"}} {n}",
                labels(w)
            );
        }
    }
    out.push_str("# HELP istio_request_duration_milliseconds Request duration, as reported by the destination proxy (simulated).\n");
    out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
    for w in [PRIMARY, CANARY] {
        let m = &metrics[w];
        let l = labels(w);
        for (le, n) in BUCKETS_MS.iter().zip(m.buckets) {
            let _ = writeln!(
                out,
                "istio_request_duration_milliseconds_bucket{{{l},le=\"{le}\"}} {n}"
            );
        }
        let count = m.count();
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_bucket{{{l},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_sum{{{l}}} {}",
            m.sum_ms
        );
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_count{{{l}}} {count}"
        );
    }
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(bad: &[&str], slow: &[&str]) -> Sim {
        Sim {
            rps: 100.0,
            error_ratio: 0.3,
            bad_tags: bad.iter().map(|t| t.to_string()).collect(),
            slow_tags: slow.iter().map(|t| t.to_string()).collect(),
            rng: XorShift(1),
            metrics: Default::default(),
        }
    }

    #[test]
    fn requests_split_by_weight_with_errors_only_on_bad_tags() {
        let mut sim = sim(&["6.1.0"], &[]);
        let tags = [Some("6.0.0".to_owned()), Some("6.1.0".to_owned())];
        for _ in 0..100 {
            sim.advance(0.1, [0.8, 0.2], tags.clone());
        }
        let [p, c] = &sim.metrics;
        assert_eq!((p.ok, p.errors), (800, 0));
        assert_eq!((c.ok, c.errors), (140, 60));
        assert_eq!(c.buckets[2], 0, "no request under 10 ms");
        assert_eq!(c.buckets[5], 200, "all under 100 ms");
        assert!((20.0..=60.0).contains(&(c.sum_ms / 200.0)));
    }

    #[test]
    fn slow_tags_answer_in_about_a_second() {
        let mut sim = sim(&[], &["6.1.0"]);
        sim.advance(1.0, [0.0, 1.0], [None, Some("6.1.0".to_owned())]);
        let c = &sim.metrics[CANARY];
        assert_eq!(c.count(), 100);
        assert_eq!(c.buckets[7], 0, "none under 500 ms");
        assert_eq!(c.buckets[9], 100, "all under 2500 ms");
    }

    #[test]
    fn metrics_text_lists_both_workloads_from_the_start() {
        let text = render_metrics(
            "prod",
            &["backend-primary".into(), "backend".into()],
            &Default::default(),
        );
        assert!(text.contains("istio_requests_total{reporter=\"destination\",destination_workload=\"backend-primary\",destination_workload_namespace=\"prod\",response_code=\"200\"} 0\n"));
        assert!(text.contains("istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_workload=\"backend\",destination_workload_namespace=\"prod\",le=\"+Inf\"} 0\n"));
        assert_eq!(text.matches("_bucket{").count(), 24);
    }
}
