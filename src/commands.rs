//! What each subcommand does, from parsed arguments to an exit code. Wires the adapters
//! (this is the one place that does) and prints reports.

use crate::cli::{Cli, Command, Output, RepoArgs};
use crate::config;
use crate::git::Cache;
use crate::reconcile::{AppReport, Engine, Mode, TickReport};
use crate::source::{DiskTree, Scanner};
use crate::spec::Severity;
use chrono::Utc;
use std::process::ExitCode;

/// Exit code: the command did what it was asked.
pub const OK: u8 = 0;
/// Exit code: the command ran, but found problems (invalid specs, apps in error).
pub const PROBLEMS: u8 = 1;
/// Exit code: the command could not run (bad flags, unreachable repository).
pub const FAILED: u8 = 2;

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => {
            let (roots, min_interval) = config::spec(&args.spec)?;
            let mut scanner = Scanner::new(&roots, min_interval);
            let tree = DiskTree::new(&args.dir);
            let catalog = scanner.scan(&tree)?;
            // Scan findings first, then what resolving each app found, then the warnings of
            // valid Canaries.
            let mut findings = catalog.errors.clone();
            let mut resolver = crate::app::Resolver::default();
            for (canary, _) in &catalog.canaries {
                if let Err(errors) = resolver.resolve(&tree, canary) {
                    findings.extend(errors);
                }
                if let Err(errors) = crate::app::gates(canary, &catalog.templates) {
                    findings.extend(errors);
                }
            }
            findings.extend(catalog.canaries.iter().flat_map(|(_, w)| w.iter().cloned()));
            let count = |severity| findings.iter().filter(|f| f.severity == severity).count();
            let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
            for finding in &findings {
                println!("{finding}");
            }
            println!(
                "{} Canary, {} MetricTemplate, {errors} error(s), {warnings} warning(s)",
                catalog.canaries.len(),
                catalog.templates.iter().count(),
            );
            Ok(ExitCode::from(if errors > 0 { PROBLEMS } else { OK }))
        }
        Command::Plan(args) => {
            let mut engine = engine(&args)?;
            let report = engine.tick(Mode::DryRun, &Utc::now).await?;
            print_problems(&report);
            match (&report.message, &report.diff) {
                (Some(message), Some(diff)) => {
                    println!("{message}");
                    print!("{diff}");
                }
                _ => println!("nothing to commit"),
            }
            Ok(exit_for(&report))
        }
        Command::Step(args) => {
            let mut engine = engine(&args)?;
            let report = engine.tick(Mode::Push, &Utc::now).await?;
            print_problems(&report);
            match (&report.commit, &report.message) {
                (Some(c), Some(m)) => println!(
                    "pushed {} {}",
                    &c.to_string()[..7],
                    m.lines().next().unwrap_or("")
                ),
                _ => println!("nothing to commit"),
            }
            Ok(exit_for(&report))
        }
        Command::Run(args) => {
            let every = config::duration("every", &args.every)?;
            let mut engine = engine(&args.repo)?;
            crate::serve::run(&mut engine, every).await?;
            Ok(ExitCode::from(OK))
        }
        Command::Status(args) => {
            let mut engine = engine(&args.repo)?;
            let report = engine.status()?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&report.apps)?),
                Output::Table => print_table(&report.apps),
            }
            Ok(exit_for(&report))
        }
    }
}

fn engine(args: &RepoArgs) -> anyhow::Result<Engine> {
    let cache = Cache::open(config::git(args))?;
    let prom = config::prometheus(&args.prometheus)?;
    let templates = config::templates(args)?;
    let settings = config::reconcile(args)?;
    Ok(Engine::new(cache, prom, templates, settings))
}

fn print_problems(report: &TickReport) {
    for e in &report.spec_errors {
        eprintln!("{e}");
    }
    for app in &report.apps {
        for e in &app.errors {
            eprintln!("{}: {e}", app.app);
        }
    }
}

fn exit_for(report: &TickReport) -> ExitCode {
    let bad = report
        .spec_errors
        .iter()
        .any(|e| e.severity == Severity::Error)
        || report.apps.iter().any(|a| !a.errors.is_empty());
    ExitCode::from(if bad { PROBLEMS } else { OK })
}

fn print_table(apps: &[AppReport]) {
    let dash = || "-".to_string();
    let mut rows = vec![[
        "APP".to_string(),
        "PHASE".to_string(),
        "PRIMARY".to_string(),
        "CANARY".to_string(),
        "FAILED".to_string(),
        "REVISION".to_string(),
        "NEXT STEP".to_string(),
        "MESSAGE".to_string(),
    ]];
    for a in apps {
        rows.push([
            a.app.clone(),
            a.phase.clone().unwrap_or_else(|| {
                if a.errors.is_empty() {
                    "-".into()
                } else {
                    "Error".into()
                }
            }),
            a.primary_weight
                .map(|w| format!("{w}%"))
                .unwrap_or_else(dash),
            a.canary_weight
                .map(|w| format!("{w}%"))
                .unwrap_or_else(dash),
            a.failed_checks
                .map(|f| format!("{f}/{}", a.threshold))
                .unwrap_or_else(dash),
            a.canary_revision
                .clone()
                .or_else(|| a.primary_revision.clone())
                .unwrap_or_else(dash),
            a.next_step_at.clone().unwrap_or_else(dash),
            a.errors
                .first()
                .cloned()
                .unwrap_or_else(|| a.message.clone()),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i == 7 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}
