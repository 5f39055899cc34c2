//! The long-running loop of `weir run`: tick, wait, repeat until SIGTERM or SIGINT. A signal
//! that arrives during a tick ends the loop after that tick, never in the middle of it.

use crate::reconcile::{Engine, Mode};
use chrono::Utc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};

/// Ticks every `every` until a shutdown signal.
pub async fn run(engine: &mut Engine, every: Duration) -> std::io::Result<()> {
    // Registered before the first tick, so a signal during a tick is held until it ends.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        let started = std::time::Instant::now();
        match engine.tick(Mode::Push, &Utc::now).await {
            Ok(report) => {
                if let Some(c) = report.commit {
                    info!(commit = %c, "tick done");
                }
            }
            Err(e) => error!("tick failed: {e}"),
        }
        let wait = every.saturating_sub(started.elapsed());
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    info!("shutting down after the last tick");
    Ok(())
}
