//! `weir status`: every app's state as recorded at the head of the branch (and, in PR mode,
//! the step waiting in its branch), as a table or JSON. Decides nothing, writes nothing.

use super::args::{Mode, Output, StatusArgs};
use super::output::{exit_for, print_table, Out};
use super::wire::engine;
use crate::adapters::publish::DryRun;
use std::process::ExitCode;

/// Runs `weir status`.
pub(crate) async fn command(args: StatusArgs, out: &mut Out) -> anyhow::Result<ExitCode> {
    let publisher = DryRun {
        pull_requests: args.repo.mode == Mode::Pr,
        ..DryRun::default()
    };
    let mut engine = engine(&args.repo, Box::new(publisher)).await?;
    let report = engine.status().await?;
    // Errors of files that belong to no app (a broken MetricTemplate, a link where
    // a spec could be) have no row: they go to stderr, as `step` prints them.
    for e in &report.spec_errors {
        let shown = e.to_string();
        if !report.apps.iter().any(|a| a.errors.contains(&shown)) {
            eprintln!("{shown}");
        }
    }
    match args.output {
        Output::Json => out.line(&serde_json::to_string_pretty(&report.apps)?),
        Output::Table => print_table(out, &report.apps),
    }
    Ok(exit_for(&report))
}
