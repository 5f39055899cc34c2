//! The one way tests wait: poll a condition until it holds or a deadline passes. Never a
//! fixed sleep; the short pause between probes is only there to not spin a core.

use std::time::{Duration, Instant};

/// Pause between probes.
pub const POLL: Duration = Duration::from_millis(50);

/// Calls `probe` until it returns `Some`, or returns `None` once `deadline` has passed.
pub fn poll<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if start.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for `cond`, panicking with `what` at the deadline.
pub fn until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    if poll(deadline, || cond().then_some(())).is_none() {
        panic!("timed out after {deadline:?} waiting for {what}");
    }
}

/// [`poll`] for async tests: probes `cond` without blocking a runtime worker, until it holds
/// (true) or `deadline` has passed (false).
pub async fn until_async(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`poll`] for async probes (a look through an async client): calls `probe` until it returns
/// `Some`, or returns `None` once `deadline` has passed, without blocking a runtime worker.
pub async fn poll_async<T, F, Fut>(deadline: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if start.elapsed() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}
