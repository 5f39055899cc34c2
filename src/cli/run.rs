//! `weir run`: ticks until SIGTERM or SIGINT (the loop is `engine::serve`), as the elected
//! leader when `--leader-elect`.

use super::args::RunArgs;
use super::wire::{engine, leader, publisher};
use super::{config, OK};
use std::process::ExitCode;

/// Runs `weir run`.
pub(crate) async fn command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let every = config::duration("every", &args.every)?;
    let publisher = publisher(&args.repo)?;
    let engine = engine(&args.repo, publisher).await?;
    let elector = match args.leader.leader_elect {
        true => Some(leader(&args.leader, &args.repo).await?),
        false => None,
    };
    let mut engine = match &elector {
        Some(elector) => engine.with_leader(elector.clone()),
        None => engine,
    };
    let renewing = elector.as_ref().map(|e| e.clone().spawn());
    let served = crate::engine::serve::run(&mut engine, every).await;
    // Give the Lease up on the way out, so that a standby takes over at once rather than
    // after the lease expires.
    if let (Some(elector), Some(renewing)) = (elector, renewing) {
        renewing.abort();
        elector.release().await;
    }
    served?;
    Ok(ExitCode::from(OK))
}
