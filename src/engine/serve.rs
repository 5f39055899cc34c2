//! The long-running loop of `weir run`, one per repository: tick, wait, repeat until SIGTERM
//! or SIGINT. A signal that arrives during a tick stops it at its next wait (a gate query, a
//! pause after a race): what it had not published yet is not published, and the next weir
//! plans it again from Git. A tick that has started to publish is not stopped: the step is
//! pushed (or refused) and its alerts, post-rollout and event hooks are sent, so that a
//! SIGTERM (a rolling update) loses none of them; [`SHUTDOWN_GRACE`] bounds the wait.
//!
//! A tick that fails for a transient reason (the remote unreachable, the branch busy) is
//! retried with a growing pause, up to five minutes, so an outage is not hammered; a
//! permanent failure (refused credentials) is reported every tick at the normal pace, since
//! only a person can fix it.
//!
//! `wake` cuts the wait short (an inbound webhook saw a push or a Flux event): a wake that
//! comes during a tick starts the next one as soon as it ends. After each tick, `metrics`
//! records what it reported.

use crate::engine::metrics::RepoMetrics;
use crate::engine::{Engine, TickError, TickReport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Notify};
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

/// How long a signal waits for the loops (a tick stuck in a network call, bounded anyway by
/// the Git socket timeout, or a step's alerts being sent) before the process ends without
/// them. Nothing is half-written then: a commit not yet pushed is only in weir's cache, and a
/// push is all or nothing on the remote.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// True once the process was asked to stop.
pub type Stop = watch::Receiver<bool>;

/// Listens for SIGTERM and SIGINT; every loop watches the answer. Once a signal arrived,
/// the process ends within [`SHUTDOWN_GRACE`] even if a loop does not.
pub fn on_signals() -> std::io::Result<Stop> {
    // Registered before the first tick, so a signal during a tick is held until it ends.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (stopping, stop) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        stopping.send_replace(true);
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        warn!("shutting down without the loops still running: they did not stop within {SHUTDOWN_GRACE:?} of the signal (a network call?); nothing half-written");
        std::process::exit(0);
    });
    Ok(stop)
}

/// Returns once `stop` says so (never when its sender is gone without saying it).
pub async fn stopped(stop: &mut Stop) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Ticks every `every`, or sooner when `wake` is notified, until `stop`.
pub async fn run(
    engine: &mut Engine,
    every: Duration,
    wake: &Notify,
    metrics: &RepoMetrics,
    mut stop: Stop,
) {
    let publishing = engine.publishing();
    let mut failures = 0u32;
    while !*stop.borrow() {
        let started = std::time::Instant::now();
        // Only the process holding the Lease ticks (`--leader-elect`); a standby waits.
        let leads = tokio::select! {
            leads = engine.leads() => leads,
            _ = stopped(&mut stop) => break,
        };
        metrics.set_leader(leads.is_ok());
        if let Err(why) = leads {
            debug!("standing by, not ticking: {why}");
            tokio::select! {
                _ = stopped(&mut stop) => break,
                _ = tokio::time::sleep(every) => continue,
            }
        }
        let Some(outcome) = tick_until_stopped(engine, &publishing, &mut stop).await else {
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
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => debug!("woken early by a webhook"),
        }
    }
    info!("shutting down after the last tick");
}

/// One tick; `None` when `stop` came before it started to publish.
async fn tick_until_stopped(
    engine: &mut Engine,
    publishing: &AtomicBool,
    stop: &mut Stop,
) -> Option<Result<TickReport, TickError>> {
    let tick = engine.tick();
    tokio::pin!(tick);
    tokio::select! {
        result = &mut tick => return Some(result),
        _ = stopped(stop) => {}
    }
    if !publishing.load(Ordering::SeqCst) {
        return None;
    }
    info!("a signal arrived while a step was being published: finishing it and sending what follows it");
    Some(tick.await)
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
