//! `weir run`: ticks until SIGTERM or SIGINT (the loop is `engine::serve`).

use super::args::RunArgs;
use super::wire::{engine, publisher};
use super::{config, OK};
use std::process::ExitCode;

/// Runs `weir run`.
pub(crate) async fn command(args: RunArgs) -> anyhow::Result<ExitCode> {
    let every = config::duration("every", &args.every)?;
    let publisher = publisher(&args.repo)?;
    let mut engine = engine(&args.repo, publisher).await?;
    crate::engine::serve::run(&mut engine, every).await?;
    Ok(ExitCode::from(OK))
}
