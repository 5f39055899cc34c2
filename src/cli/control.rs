//! `weir approve|abort|retry|pause|resume`: one commit to an app's control file. Whether
//! the request may be made, and what the file says after it, is the planner's
//! (`core::plan::control`); this reads, asks and writes.

use super::config;
use super::output::Out;
use super::OK;
use crate::adapters::git::Git2Repo;
use crate::adapters::publish::DirectCommit;
use crate::core::plan::control::Request;
use crate::repo::source::Scanner;
use std::process::ExitCode;

/// Writes one request into the app's control file (`<app>.weir/control.yaml`) and pushes it
/// with a lease; weir acts on it at its next step. The rest of weir's folder is carried as
/// it is. Whether the request may be made, and what the file says after it, is the
/// planner's (`core::plan::control`); this reads, asks and writes.
pub(crate) fn command(
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
