//! `weir run`: ticks until SIGTERM or SIGINT (the loop is `engine::serve`), as the elected
//! leader when `--leader-elect`, and with `--listen`, serves its metrics, health and the
//! inbound webhooks (`adapters::http_server`).

use super::args::RunArgs;
use super::wire::{engine, leader, publisher};
use super::{config, OK};
use crate::adapters::http_server;
use crate::core::secret::Secret;
use crate::engine::metrics::Metrics;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::{error, info};

/// Runs `weir run`.
pub(crate) async fn command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let RunArgs {
        repo,
        every,
        listen,
        github_webhook_secret,
        flux_webhook_secret,
        leader: leader_args,
    } = args;
    let every = config::duration("every", &every)?;
    let metrics = Arc::new(Metrics::new());
    let wake = Arc::new(Notify::new());
    let secret = |s: Option<String>| s.filter(|s| !s.is_empty()).map(Secret::new);
    let (github_secret, flux_secret) = (secret(github_webhook_secret), secret(flux_webhook_secret));
    match &listen {
        Some(addr) => {
            // Bound before the first tick, so a taken port fails at once.
            let listener = http_server::bind(addr).await?;
            info!(
                addr = %listener.local_addr()?,
                github_hook = github_secret.is_some(),
                flux_hook = flux_secret.is_some(),
                "serving /metrics, /healthz, /readyz"
            );
            let served = http_server::Config {
                exposition: metrics.clone(),
                wake: wake.clone(),
                github_secret,
                flux_secret,
            };
            tokio::spawn(async move {
                if let Err(e) = http_server::serve(listener, served).await {
                    error!("the HTTP server stopped: {e}");
                }
            });
        }
        None if github_secret.is_some() || flux_secret.is_some() => {
            anyhow::bail!("a webhook secret is set but --listen (WEIR_LISTEN) is not: weir would serve no webhook; set --listen, e.g. 0.0.0.0:9797")
        }
        None => {}
    }
    let publisher = publisher(&repo)?;
    let engine = engine(&repo, publisher).await?;
    let elector = match leader_args.leader_elect {
        true => Some(leader(&leader_args, &repo).await?),
        false => None,
    };
    let mut engine = match &elector {
        Some(elector) => engine.with_leader(elector.clone()),
        None => engine,
    };
    let renewing = elector.as_ref().map(|e| e.clone().spawn());
    let served = crate::engine::serve::run(&mut engine, every, &wake, &metrics).await;
    // Give the Lease up on the way out, so that a standby takes over at once rather than
    // after the lease expires.
    if let (Some(elector), Some(renewing)) = (elector, renewing) {
        renewing.abort();
        elector.release().await;
    }
    served?;
    Ok(ExitCode::from(OK))
}
