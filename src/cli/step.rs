//! `weir step`: one tick, pushed (or proposed, in PR mode), with GitHub Actions outputs and a
//! job summary; `--dry-run` shows the commit it would make as a diff.

use super::args::StepArgs;
use super::github_actions::Job;
use super::output::{exit_for, print_problems, Out};
use super::wire::{engine, publisher};
use crate::adapters::publish::DryRun;
use std::process::ExitCode;

/// Runs `weir step`.
pub(crate) async fn command(step: StepArgs, out: &mut Out) -> anyhow::Result<ExitCode> {
    let args = step.repo;
    if step.dry_run {
        let publisher = DryRun {
            prefix: args.message_prefix.clone(),
            pull_requests: false,
        };
        let mut engine = engine(&args, Box::new(publisher)).await?;
        let report = engine.tick().await?;
        print_problems(&report);
        match (&report.message, &report.diff) {
            (Some(message), Some(diff)) => {
                out.line(message.trim_end());
                out.line("");
                out.raw(diff);
            }
            _ => out.line("nothing to commit"),
        }
        return Ok(exit_for(&report));
    }
    let publisher = publisher(&args)?;
    let mut engine = engine(&args, publisher).await?;
    let report = engine.tick().await?;
    print_problems(&report);
    let job = Job::from_env();
    job.outputs(&crate::cli::github_actions::step_outputs(&report))?;
    job.summary(&crate::cli::github_actions::step_summary(&report))?;
    match (&report.commit, &report.message) {
        (Some(c), Some(m)) => out.line(&format!(
            "pushed {} {}",
            c.short(7),
            m.lines().next().unwrap_or("")
        )),
        _ => out.line("nothing to commit"),
    }
    Ok(exit_for(&report))
}
