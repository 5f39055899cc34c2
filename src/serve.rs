//! The long-running loop of `weir run`: tick, wait, repeat until SIGTERM or SIGINT. A signal
//! that arrives during a tick ends the loop after that tick, never in the middle of it.
//!
//! A tick that fails for a transient reason (the remote unreachable, the branch busy) is
//! retried with a growing pause, up to five minutes, so an outage is not hammered; a
//! permanent failure (refused credentials) is reported every tick at the normal pace, since
//! only a person can fix it.

use crate::reconcile::Engine;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

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

/// Ticks every `every` until a shutdown signal.
pub async fn run(engine: &mut Engine, every: Duration) -> std::io::Result<()> {
    // Registered before the first tick, so a signal during a tick is held until it ends.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut failures = 0u32;
    loop {
        let started = std::time::Instant::now();
        match engine.tick().await {
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
