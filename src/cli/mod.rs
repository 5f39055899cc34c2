//! What each subcommand does, from parsed arguments to an exit code. This is the one place
//! that wires the real adapters into the engine, and the one that prints reports.

pub mod actions;
pub mod args;
pub mod config;
pub mod plan;
pub mod validate;

use crate::adapters::clock::SystemClock;
use crate::adapters::disk::DiskTree;
use crate::adapters::git::Git2Repo;
use crate::adapters::publish::{DirectCommit, DryRun};
use crate::cli::actions::Job;
use crate::cli::args::{Cli, Command, Mode, Output, RepoArgs, StepArgs};
use crate::core::plan::control::Request;
use crate::core::spec::Severity;
use crate::engine::{AppReport, Engine, Ports, TickReport};
use crate::ports::{Publisher, Secrets};
use crate::repo::source::Scanner;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code: the command did what it was asked.
pub const OK: u8 = 0;
/// Exit code: the command ran, but found problems (invalid specs, apps in error).
pub const PROBLEMS: u8 = 1;
/// Exit code: the command could not run (bad flags, unreachable repository).
pub const FAILED: u8 = 2;

/// Standard output that a closed pipe (`weir validate | head -1`) silences instead of
/// crashing the command.
struct Out {
    closed: bool,
}

impl Out {
    fn line(&mut self, text: &str) {
        self.raw(&format!("{text}\n"));
    }

    fn raw(&mut self, text: &str) {
        if self.closed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(text.as_bytes())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            self.closed = true;
        }
    }
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = Out { closed: false };
    match cli.command {
        Command::Validate(args) => {
            let (roots, min_interval) = config::spec(&args.spec)?;
            let tree = DiskTree::new(&args.dir);
            let v = crate::cli::validate::validate(&tree, &roots, min_interval)?;
            for finding in &v.findings {
                out.line(&finding.to_string());
            }
            for e in &v.record_errors {
                out.line(e);
            }
            out.line(&v.summary());
            Job::from_env().outputs(&[("errors", v.errors().to_string())])?;
            Ok(ExitCode::from(if v.errors() > 0 { PROBLEMS } else { OK }))
        }
        Command::Plan(args) => {
            let (roots, min_interval) = config::spec(&args.spec)?;
            let base = match &args.base {
                Some(base) => base.clone(),
                None => config::pull_request_base()?,
            };
            let preview =
                crate::adapters::git::with_commit_trees(&args.dir, &base, &args.head, |b, h| {
                    crate::cli::plan::preview(b, h, &roots, min_interval)
                })??;
            let markdown = preview.markdown();
            out.raw(&markdown);
            let job = Job::from_env();
            job.summary(&markdown)?;
            let apps: Vec<&str> = preview.apps.iter().map(|a| a.app.as_str()).collect();
            job.outputs(&[
                ("errors", preview.errors().to_string()),
                ("apps", serde_json::to_string(&apps)?),
            ])?;
            if args.comment {
                let said = comment(&args, &markdown).await?;
                eprintln!("{said}");
            }
            Ok(ExitCode::from(if preview.errors() > 0 {
                PROBLEMS
            } else {
                OK
            }))
        }
        Command::Step(StepArgs {
            dry_run: true,
            repo: args,
        }) => {
            let publisher = DryRun {
                prefix: args.message_prefix.clone(),
                pull_requests: false,
            };
            let mut engine = engine(&args, Box::new(publisher))?;
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
            Ok(exit_for(&report))
        }
        Command::Step(StepArgs { repo: args, .. }) => {
            let publisher = publisher(&args)?;
            let mut engine = engine(&args, publisher)?;
            let report = engine.tick().await?;
            print_problems(&report);
            let job = Job::from_env();
            job.outputs(&crate::cli::actions::step_outputs(&report))?;
            job.summary(&crate::cli::actions::step_summary(&report))?;
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
        Command::Run(args) => {
            let every = config::duration("every", &args.every)?;
            let publisher = publisher(&args.repo)?;
            let mut engine = engine(&args.repo, publisher)?;
            crate::engine::serve::run(&mut engine, every).await?;
            Ok(ExitCode::from(OK))
        }
        Command::Approve(args) => control(Request::Approve, &args, &mut out),
        Command::Abort(args) => control(Request::Abort, &args, &mut out),
        Command::Retry(args) => control(Request::Retry, &args, &mut out),
        Command::Pause(args) => control(Request::Pause, &args, &mut out),
        Command::Resume(args) => control(Request::Resume, &args, &mut out),
        Command::Status(args) => {
            let publisher = DryRun {
                pull_requests: args.repo.mode == Mode::Pr,
                ..DryRun::default()
            };
            let mut engine = engine(&args.repo, Box::new(publisher))?;
            let report = engine.status()?;
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
                Output::Table => print_table(&mut out, &report.apps),
            }
            Ok(exit_for(&report))
        }
    }
}

/// Writes one request into the app's control file (`<app>.weir/control.yaml`) and pushes it
/// with a lease; weir acts on it at its next step. The rest of weir's folder is carried as
/// it is. Whether the request may be made, and what the file says after it, is the
/// planner's (`core::plan::control`); this reads, asks and writes.
fn control(
    request: Request,
    args: &crate::cli::args::ControlArgs,
    out: &mut Out,
) -> anyhow::Result<ExitCode> {
    use crate::core::app::AppRef;
    use crate::core::control::{Control, CONTROL_FILE};
    use crate::core::names::owned_dir;
    use crate::ports::ConfigRepo;
    use crate::repo::change::ChangeSet;
    use crate::repo::change::Publication;
    use crate::repo::objects::{Dir, Node};
    use crate::repo::source::{parent, SourceTree};
    let (roots, min_interval) = config::spec(&args.repo.spec)?;
    let mut repo = Git2Repo::open(config::git(&args.repo)?)?;
    let publisher = DirectCommit {
        prefix: args.repo.message_prefix.clone(),
    };
    for _attempt in 0..args.repo.push_attempts.max(1) {
        let head = repo.fetch()?;
        let tree_box = repo.tree(head)?;
        let tree: &dyn SourceTree = tree_box.as_ref();
        let catalog = Scanner::new(&roots, min_interval).scan(tree)?;
        let (want_ns, want_name) = match args.app.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, args.app.as_str()),
        };
        let found: Vec<_> = catalog
            .canaries
            .iter()
            .map(|(c, _)| c)
            .filter(|c| c.name == want_name && want_ns.is_none_or(|ns| c.namespace == ns))
            .collect();
        let canary = match found.as_slice() {
            [one] => *one,
            [] => anyhow::bail!("no Canary named `{}` in the repository", args.app),
            _ => anyhow::bail!(
                "more than one Canary is named `{}`; say which as namespace/name",
                args.app
            ),
        };
        let app_dir = parent(&canary.file).to_string();
        let owned = owned_dir(&app_dir);
        let state = crate::engine::read_state(tree, &app_dir, canary, None)?;
        let path = format!("{owned}/{CONTROL_FILE}");
        let found = match tree.read(&path) {
            Ok(bytes) => {
                crate::core::control::parse(&path, &bytes, &canary.namespace, &canary.name)
            }
            Err(_) => Ok(Control::default()),
        };
        let wanted = crate::core::plan::control::request(
            request,
            &args.app,
            state.as_ref(),
            found,
            args.revision.as_deref(),
        )?;
        // weir's folder as it is, with the control file written (or removed when empty).
        let mut dir = Dir::default();
        for entry in tree.list(&owned)? {
            if entry.name != CONTROL_FILE {
                dir.insert(
                    &entry.name,
                    Node::Carried {
                        id: entry.id,
                        is_dir: entry.is_dir,
                    },
                );
            }
        }
        if !wanted.control.is_empty() {
            dir.file(
                CONTROL_FILE,
                crate::core::control::render(&canary.name, &canary.namespace, &wanted.control),
            );
        }
        let app = AppRef {
            namespace: canary.namespace.clone(),
            name: canary.name.clone(),
            dir: app_dir.clone(),
        };
        let change = ChangeSet {
            remaining: Vec::new(),
            history: wanted.history,
            review: None,
            app: app.clone(),
            dir: owned,
            tree: Some(dir),
            events: vec![crate::core::events::Event {
                app,
                phase: wanted.phase,
                weight: wanted.weight,
                summary: wanted.summary,
                details: wanted.details,
            }],
        };
        drop(tree_box);
        match publisher.commit(&mut repo, head, &[change], chrono::Utc::now())? {
            Publication::Committed { commit, message } => {
                out.line(&format!(
                    "pushed {} {}",
                    commit.short(7),
                    message.lines().next().unwrap_or("")
                ));
                return Ok(ExitCode::from(OK));
            }
            Publication::Nothing => {
                out.line("nothing to commit: the control file already says so");
                return Ok(ExitCode::from(OK));
            }
            Publication::Raced { .. } => continue,
            Publication::DryRun { .. } | Publication::Proposed { .. } => {
                unreachable!("a direct commit is neither a dry run nor a pull request")
            }
        }
    }
    anyhow::bail!("the branch kept moving; nothing was overwritten, try again")
}

/// Wires the real adapters.
fn engine(args: &RepoArgs, publisher: Box<dyn Publisher>) -> anyhow::Result<Engine> {
    let repo = Git2Repo::open(config::git(args)?)?;
    let metrics = config::prometheus(&args.prometheus)?;
    let templates = config::templates(args)?;
    let settings = config::engine(args)?;
    let ports = Ports {
        repo: Box::new(repo),
        publisher,
        metrics: Arc::new(metrics),
        clock: Arc::new(SystemClock),
        notifier: notifier(args)?,
        hooks: Arc::new(
            crate::adapters::hooks::HttpHooks::new(crate::adapters::hooks::HookSettings::default())
                .map_err(anyhow::Error::msg)?,
        ),
        secrets: args.secrets_dir.as_ref().map(|dir| {
            Arc::new(crate::adapters::secrets::MountedSecrets::new(dir)) as Arc<dyn Secrets>
        }),
    };
    Ok(Engine::new(ports, templates, settings))
}

/// The alert providers, and GitHub when asked to report steps there.
fn notifier(args: &RepoArgs) -> anyhow::Result<Arc<dyn crate::ports::Notifier>> {
    let alerts = Arc::new(
        crate::adapters::alerts::HttpNotifier::new(
            crate::adapters::alerts::NotifierSettings::default(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    if !args.github_statuses {
        return Ok(alerts);
    }
    let github = github(args, "--github-statuses")?;
    let reporter = crate::adapters::github::report::GitHubReporter::new(github, &args.branch);
    Ok(Arc::new(crate::adapters::alerts::Fanout(vec![
        alerts,
        Arc::new(reporter),
    ])))
}

/// The GitHub API client for the config repository (`why` names the flag that needs it).
fn github(args: &RepoArgs, why: &str) -> anyhow::Result<Arc<dyn crate::adapters::github::GitHub>> {
    let token = args
        .github_token
        .as_deref()
        .or(args.git_token.as_deref())
        .ok_or_else(|| {
            anyhow::anyhow!("{why} needs --github-token (WEIR_GITHUB_TOKEN) or --git-token")
        })?;
    let repo = match args.github_repository.as_deref() {
        Some(full) => crate::adapters::github::RepoName::from_full_name(full)?,
        None => crate::adapters::github::RepoName::from_remote_url(&args.repo)?,
    };
    let github = crate::adapters::github::rest::RestGitHub::new(
        repo,
        &crate::core::secret::Secret::new(token),
        crate::adapters::github::rest::RestSettings {
            base_url: args.github_api.clone(),
            ..Default::default()
        },
    )?;
    Ok(Arc::new(github))
}

/// The publisher of `--mode`.
fn publisher(args: &RepoArgs) -> anyhow::Result<Box<dyn Publisher>> {
    match args.mode {
        crate::cli::args::Mode::Commit => Ok(Box::new(DirectCommit {
            prefix: args.message_prefix.clone(),
        })),
        crate::cli::args::Mode::Pr => {
            let review = crate::core::spec::canary::review_phases(&args.pr_review.join(",")).map_err(|bad| {
                anyhow::anyhow!("--pr-review `{}`: not a phase (Progressing, WaitingPromotion, Promoting, Finalising, Succeeded, Failed), or `none`", bad.0)
            })?;
            Ok(Box::new(
                crate::adapters::publish::pull_request::PullRequests::new(
                    github(args, "--mode pr")?,
                    crate::adapters::publish::pull_request::PrSettings {
                        base: args.branch.clone(),
                        prefix: args.message_prefix.clone(),
                        review,
                        ..Default::default()
                    },
                ),
            ))
        }
    }
}

fn print_problems(report: &TickReport) {
    for e in &report.spec_errors {
        eprintln!("{e}");
    }
    for app in &report.apps {
        for e in &app.errors {
            // Spec errors are printed above, once.
            if !report.spec_errors.iter().any(|s| s.to_string() == *e) {
                eprintln!("{}: {e}", app.app);
            }
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

fn print_table(out: &mut Out, apps: &[AppReport]) {
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
                .or(a.proposed.as_ref())
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
        out.line(line.trim_end());
    }
}

/// Posts (or updates) weir's plan comment on the job's pull request; says what it did.
async fn comment(args: &crate::cli::args::PlanArgs, markdown: &str) -> anyhow::Result<String> {
    use crate::adapters::github::{rest::RestGitHub, rest::RestSettings, GitHub, Upserted};
    let token = args.github_token.as_deref().ok_or_else(|| {
        anyhow::anyhow!("--comment needs --github-token (WEIR_GITHUB_TOKEN), e.g. the job's token")
    })?;
    let full = args.github_repository.as_deref().ok_or_else(|| {
        anyhow::anyhow!("--comment needs --github-repository (GITHUB_REPOSITORY), owner/name")
    })?;
    let repo = crate::adapters::github::RepoName::from_full_name(full)?;
    let number = config::pull_request_number()?;
    let github = RestGitHub::new(
        repo,
        &crate::core::secret::Secret::new(token),
        RestSettings {
            base_url: args.github_api.clone(),
            ..RestSettings::default()
        },
    )?;
    let done = github
        .upsert_comment(number, crate::cli::plan::MARKER, markdown)
        .await?;
    Ok(match done {
        Upserted::Created => format!("commented on pull request #{number}"),
        Upserted::Updated => format!("updated weir's comment on pull request #{number}"),
        Upserted::Unchanged => {
            format!("weir's comment on pull request #{number} says this already")
        }
    })
}
