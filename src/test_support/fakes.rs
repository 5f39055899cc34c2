//! Fake adapters for the ports that reach outside the process (metrics, time, notifications),
//! so that executor paths run in milliseconds with a clock the test moves. The config repo
//! needs no fake: a bare repository in a temporary folder is real and just as fast.

use crate::core::alert::Alert;
use crate::core::query::MetricError;
use crate::ports::{BoxFuture, Clock, MetricSource, Notifier};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct FakeClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl FakeClock {
    /// A clock stopped at `at`.
    pub fn at(at: DateTime<Utc>) -> FakeClock {
        FakeClock {
            now: Arc::new(Mutex::new(at)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.now.lock().expect("not poisoned");
        *now += chrono::Duration::from_std(by).expect("a test duration fits");
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("not poisoned")
    }
}

type Answer = dyn Fn(&str) -> Result<f64, MetricError> + Send + Sync;

/// Metrics that answer what the test says, and count the queries.
#[derive(Clone)]
pub struct FakeMetrics {
    answer: Arc<Mutex<Arc<Answer>>>,
    queries: Arc<AtomicUsize>,
}

impl FakeMetrics {
    /// Every query answers `value`.
    pub fn constant(value: f64) -> FakeMetrics {
        FakeMetrics {
            answer: Arc::new(Mutex::new(Arc::new(move |_| Ok(value)))),
            queries: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// From now on, queries are answered by `f`.
    pub fn answer(&self, f: impl Fn(&str) -> Result<f64, MetricError> + Send + Sync + 'static) {
        *self.answer.lock().expect("not poisoned") = Arc::new(f);
    }

    /// Queries run so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl MetricSource for FakeMetrics {
    fn query<'a>(
        &'a self,
        _address: Option<&'a str>,
        query: &'a str,
    ) -> BoxFuture<'a, Result<f64, MetricError>> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let answer = self.answer.lock().expect("not poisoned").clone();
        let result = answer(query);
        Box::pin(async move { result })
    }
}

/// A notifier that keeps what it was told.
#[derive(Debug, Clone, Default)]
pub struct RecordingNotifier {
    /// Alerts delivered so far.
    pub alerts: Arc<Mutex<Vec<Alert>>>,
}

impl Notifier for RecordingNotifier {
    fn notify<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, ()> {
        self.alerts
            .lock()
            .expect("not poisoned")
            .push(alert.clone());
        Box::pin(async {})
    }
}
