//! The long-running loop of `weir run`: tick, wait, repeat until SIGTERM or SIGINT. A signal
//! that arrives during a tick stops it at its next wait (a gate query, a pause after a race):
//! what it had not published yet is not published, and the next weir plans it again from
//! Git. A publish in progress is never cut in half; the Git socket timeouts bound it.
//!
//! A tick that fails for a transient reason (the remote unreachable, the branch busy) is
//! retried with a growing pause, up to five minutes, so an outage is not hammered; a
//! permanent failure (refused credentials) is reported every tick at the normal pace, since
//! only a person can fix it.
//!
//! `wake` cuts the wait short (an inbound webhook saw a push or a Flux event): a wake that
//! comes during a tick starts the next one as soon as it ends. After each tick, `metrics`
//! records what it reported.

use crate::engine::metrics::Metrics;
use crate::engine::Engine;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

/// The longest pause after transient failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The pause after `failures` transient failures in a row.
pub fn backoff(every: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return every;
    }
    let factor = 1u32 << failures.min(10);
    every.saturating_mul(factor).min(MAX_BACKOFF).max(every)
}

/// How long a signal waits for a tick stuck in a network call (bounded anyway by the Git
/// socket timeout) before the process ends without it. Nothing is half-written then: a commit
/// not yet pushed is only in weir's cache, and a push is all or nothing on the remote.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Ticks every `every`, or sooner when `wake` is notified, until a shutdown signal.
pub async fn run(
    engine: &mut Engine,
    every: Duration,
    wake: &Notify,
    metrics: &Metrics,
) -> std::io::Result<()> {
    // Registered before the first tick, so a signal during a tick is held until it ends.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // A watcher on another thread: if a signal arrives while the tick is inside a blocking
    // call, the process still ends within the grace.
    let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
    {
        let stopping = stopping.clone();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            stopping.notify_waiters();
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            warn!("the tick in flight did not stop within {SHUTDOWN_GRACE:?} of the signal (a network call?); exiting without it, nothing half-written");
            std::process::exit(0);
        });
    }
    let mut failures = 0u32;
    loop {
        let started = std::time::Instant::now();
        // Only the process holding the Lease ticks (`--leader-elect`); a standby waits.
        let leads = engine.leads().await;
        metrics.set_leader(leads.is_ok());
        if let Err(why) = leads {
            debug!("standing by, not ticking: {why}");
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tokio::time::sleep(every) => continue,
            }
        }
        let outcome = tokio::select! {
            result = engine.tick() => Some(result),
            _ = term.recv() => None,
            _ = int.recv() => None,
        };
        let Some(outcome) = outcome else {
            info!("a signal arrived mid-tick: stopping; nothing more is published");
            break;
        };
        metrics.observe(outcome.as_ref(), started.elapsed());
        match outcome {
            Ok(report) => {
                failures = 0;
                if let Some(c) = report.commit {
                    info!(commit = %c.short(7), "tick done");
                }
            }
            Err(e) if e.is_transient() => {
                failures = failures.saturating_add(1);
                warn!(
                    failures,
                    retry_in = ?backoff(every, failures),
                    "tick failed, will retry: {e}"
                );
            }
            Err(e) => {
                failures = 0;
                error!("tick failed: {e}");
            }
        }
        let wait = backoff(every, failures).saturating_sub(started.elapsed());
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => debug!("woken early by a webhook"),
        }
    }
    info!("shutting down after the last tick");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_stops() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(10), 0), s(10));
        assert_eq!(backoff(s(10), 1), s(20));
        assert_eq!(backoff(s(10), 3), s(80));
        assert_eq!(backoff(s(10), 30), s(300));
        // Never shorter than the tick interval itself.
        assert_eq!(backoff(s(600), 2), s(600));
    }
}
