//! The command line: arguments (`args`), configuration (`config`), the wiring of adapters
//! (`wire`), what is printed (`output`, `github_actions`), and one file per command.

pub mod args;
pub mod config;
mod control;
pub mod github_actions;
mod output;
pub mod plan;
pub mod repos;
mod run;
mod status;
mod step;
pub mod validate;
mod wire;

use crate::cli::args::{Cli, Command};
use crate::core::plan::control::Request;
use output::Out;
use std::process::ExitCode;

/// Exit code: the command did what it was asked.
pub const OK: u8 = 0;
/// Exit code: the command ran, but found problems (invalid specs, apps in error).
pub const PROBLEMS: u8 = 1;
/// Exit code: the command could not run (bad flags, unreachable repository).
pub const FAILED: u8 = 2;

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = Out { closed: false };
    match cli.command {
        Command::Validate(args) => validate::command(args, &mut out),
        Command::Plan(args) => plan::command(args, &mut out).await,
        Command::Step(args) => step::command(args, &mut out).await,
        Command::Run(args) => run::command(*args).await,
        Command::Approve(args) => control::command(Request::Approve, &args, &mut out),
        Command::Abort(args) => control::command(Request::Abort, &args, &mut out),
        Command::Retry(args) => control::command(Request::Retry, &args, &mut out),
        Command::Pause(args) => control::command(Request::Pause, &args, &mut out),
        Command::Resume(args) => control::command(Request::Resume, &args, &mut out),
        Command::Status(args) => status::command(args, &mut out).await,
    }
}
