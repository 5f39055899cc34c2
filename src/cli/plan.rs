//! What a change to the config repository will do, before it lands: `weir plan` on a pull
//! request. The change's head is validated as `step` validates it, and every app whose source
//! or Canary the change touches gets the rollout that will follow, rehearsed by the planner
//! with every gate passing: strategy, steps and weights, gates and bounds, duration.

use super::args::PlanArgs;
use super::config;
use super::github_actions::Job;
use super::output::Out;
use super::{OK, PROBLEMS};
use crate::cli::validate::{validate, Validation};
use crate::core::duration::GoDuration;
use crate::core::plan::rehearse::{rehearse, Rehearsed};
use crate::core::record::State;
use crate::core::spec::{Canary, HookType, Phase, Severity, Steps, Strategy};
use crate::core::text::cell;
use crate::repo::kustomize::AppSource;
use crate::repo::replicas::OptIn;
use crate::repo::source::{SourceError, SourceTree};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// The first line of weir's comment on a pull request, by which it finds it again.
pub const MARKER: &str = "<!-- weir plan -->";

/// What a change does to one app.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A Canary weir has not run: the next step initialises it, without analysis.
    New,
    /// The app's source changed (an image tag, a manifest): a release is analysed.
    Release {
        /// The target's images before.
        from: Vec<String>,
        /// And after.
        to: Vec<String>,
    },
    /// Only the Canary changed: no release now; the next one follows the new analysis.
    Spec,
    /// The Canary was removed.
    Removed,
}

/// One app the change touches.
#[derive(Debug, Clone)]
pub struct AppPreview {
    /// `namespace/name`.
    pub app: String,
    /// The Canary's file.
    pub file: String,
    /// What the change does.
    pub change: Change,
    /// The head's errors in this app's Canary (nothing moves until they are fixed).
    pub errors: Vec<String>,
    /// The strategy in words.
    pub strategy: String,
    /// The rollout that follows, when every gate passes at once.
    pub steps: Vec<Rehearsed>,
    /// Metric gates: (name, bound, query interval).
    pub gates: Vec<(String, String, String)>,
    /// Webhooks: (type, name).
    pub hooks: Vec<(HookType, String)>,
    /// `skipAnalysis` or `suspend`, when set.
    pub notes: Vec<String>,
    /// What validation says about weir's canary-replicas component for the app (its
    /// kustomization does not list it, or lists it too early), and the change that lists it
    /// as a diff when weir can write one.
    pub replicas: Option<(String, Option<String>)>,
}

/// What a change does.
pub struct Preview {
    /// The head's validation.
    pub validation: Validation,
    /// The apps the change touches, by Canary file.
    pub apps: Vec<AppPreview>,
}

/// Compares `base` and `head` (the trees of a pull request's base and head).
pub fn preview(
    base: &dyn SourceTree,
    head: &dyn SourceTree,
    roots: &[String],
    min_interval: Duration,
) -> Result<Preview, SourceError> {
    let before = validate(base, roots, min_interval)?;
    let after = validate(head, roots, min_interval)?;
    let mut apps = Vec::new();
    for (canary, _) in &after.catalog.canaries {
        let old = before
            .catalog
            .canaries
            .iter()
            .map(|(c, _)| c)
            .find(|c| c.namespace == canary.namespace && c.name == canary.name);
        let new_source = after.sources.get(&canary.file);
        let old_source = old.and_then(|c| before.sources.get(&c.file));
        let change = match (old, old_source, new_source) {
            (None, _, _) => Change::New,
            (Some(_), Some(o), Some(n)) if o.revision != n.revision => Change::Release {
                from: o.images.clone(),
                to: n.images.clone(),
            },
            (Some(o), _, _) if base.id(&o.file) != head.id(&canary.file) => Change::Spec,
            (Some(_), None, Some(_)) => Change::Spec,
            _ => continue,
        };
        apps.push(app_preview(
            canary,
            change,
            &after,
            new_source.map(|s| &**s),
        ));
    }
    // An invalid Canary the change touches: its errors, nothing else.
    for invalid in &after.catalog.invalid {
        if base.id(&invalid.file) != head.id(&invalid.file) {
            apps.push(AppPreview {
                app: invalid.display_name(),
                file: invalid.file.clone(),
                change: Change::Spec,
                errors: errors_in(&after, &invalid.file),
                strategy: String::new(),
                steps: Vec::new(),
                gates: Vec::new(),
                hooks: Vec::new(),
                notes: Vec::new(),
                replicas: None,
            });
        }
    }
    for (canary, _) in &before.catalog.canaries {
        let kept = after
            .catalog
            .canaries
            .iter()
            .any(|(c, _)| c.namespace == canary.namespace && c.name == canary.name)
            || after.catalog.invalid.iter().any(|i| i.file == canary.file);
        if !kept {
            let mut gone = app_preview(canary, Change::Removed, &before, None);
            gone.errors.clear();
            gone.replicas = None;
            apps.push(gone);
        }
    }
    apps.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(Preview {
        validation: after,
        apps,
    })
}

fn errors_in(validation: &Validation, file: &str) -> Vec<String> {
    validation
        .findings
        .iter()
        .filter(|f| f.file == file && f.severity == Severity::Error)
        .map(ToString::to_string)
        .collect()
}

fn app_preview(
    canary: &Canary,
    change: Change,
    v: &Validation,
    source: Option<&AppSource>,
) -> AppPreview {
    let analysis = &canary.analysis;
    let errors = errors_in(v, &canary.file);
    // A release shows its own steps; a Canary edit, those of the next release.
    let steps = match source {
        Some(source)
            if errors.is_empty() && matches!(change, Change::Release { .. } | Change::Spec) =>
        {
            let start = State {
                phase: Phase::Succeeded,
                promoted_revision: String::new(),
                ..State::default()
            };
            rehearse(
                analysis,
                canary.skip_analysis,
                &start,
                &source.revision,
                &source.images,
            )
        }
        _ => Vec::new(),
    };
    let mut notes = Vec::new();
    if canary.skip_analysis {
        notes.push("`skipAnalysis: true`: promoted without checks".to_string());
    }
    if canary.suspend {
        notes.push("`suspend: true`: nothing moves until it is unset".to_string());
    }
    let replicas = v
        .replicas
        .iter()
        .find(|(file, _)| *file == canary.file)
        .map(|(_, warning)| match source.map(|s| (&s.opt_in, s.opt_in.edit())) {
            Some((OptIn::Missing { file, text }, Some(edit))) => (
                format!("`{file}` does not list weir's canary-replicas component, so the canary keeps running between releases (after a rollback, the rolled-back build keeps running). This change lists it, and the canary runs no pods while no release runs:"),
                Some(edit.diff(file, text)),
            ),
            _ => (format!("`{}`: {}.", warning.file, warning.message), None),
        });
    AppPreview {
        replicas,
        app: format!("{}/{}", canary.namespace, canary.name),
        file: canary.file.clone(),
        change,
        errors,
        strategy: strategy(canary),
        steps,
        gates: analysis
            .metrics
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    crate::core::plan::bound(m.min, m.max),
                    m.interval.to_string(),
                )
            })
            .collect(),
        hooks: analysis
            .webhooks
            .iter()
            .map(|h| (h.kind, h.name.clone()))
            .collect(),
        notes,
    }
}

/// The strategy in one sentence.
fn strategy(canary: &Canary) -> String {
    let a = &canary.analysis;
    let every = GoDuration(a.interval);
    let how = match &a.strategy {
        Strategy::Canary {
            steps: Steps::Linear(w),
            max_weight,
        } => format!("canary: the weight grows by {w} up to {max_weight}"),
        Strategy::Canary {
            steps: Steps::List(list),
            ..
        } => {
            let list: Vec<String> = list.iter().map(ToString::to_string).collect();
            format!("canary: the weight goes through {}", list.join(", "))
        }
        Strategy::AbTesting { iterations, .. } => format!(
            "A/B testing: matched requests go to the canary for {iterations} iterations"
        ),
        Strategy::BlueGreen { iterations } if a.mirror => format!(
            "Blue/Green: {iterations} iterations with traffic mirrored to the canary, then all traffic switches"
        ),
        Strategy::BlueGreen { iterations } => format!(
            "Blue/Green: {iterations} iterations without live traffic, then all traffic switches"
        ),
    };
    format!(
        "{how}; one step every {every}; rolled back after {} failed checks",
        a.threshold
    )
}

impl Preview {
    /// Errors in the head.
    pub fn errors(&self) -> usize {
        self.validation.errors()
    }

    /// The pull request comment (and the job summary), in GitHub's Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let v = &self.validation;
        let _ = writeln!(md, "{MARKER}");
        let _ = writeln!(md, "### weir plan\n");
        let verdict = if self.errors() > 0 { "fails" } else { "passes" };
        let _ = writeln!(md, "Validation {verdict}: {}.\n", v.summary());
        let problems: Vec<String> = v
            .findings
            .iter()
            .map(ToString::to_string)
            .chain(v.record_errors.iter().cloned())
            .collect();
        if !problems.is_empty() {
            md.push_str("```text\n");
            for p in &problems {
                let _ = writeln!(md, "{}", fence_safe(p));
            }
            md.push_str("```\n\n");
        }
        if self.apps.is_empty() {
            md.push_str("No app's source or Canary changes: nothing will roll out.\n");
        }
        for app in &self.apps {
            app.markdown(&mut md);
        }
        let others = v
            .replicas
            .iter()
            .filter(|(file, _)| !self.apps.iter().any(|a| &a.file == file))
            .count();
        if others > 0 {
            let _ = writeln!(
                md,
                "{others} other app(s) have a warning about weir's canary-replicas component (without it, the canary keeps running between releases); `weir validate` lists them.\n"
            );
        }
        md
    }
}

impl AppPreview {
    fn markdown(&self, md: &mut String) {
        let what = match &self.change {
            Change::New => "new app: the next step initialises it (the primary takes this version, without analysis)".to_string(),
            Change::Release { from, to } => format!(
                "release {} -> {}",
                code_list(from),
                code_list(to)
            ),
            Change::Spec => "Canary changed: no release now; the next release follows it".to_string(),
            Change::Removed => "Canary removed: weir stops moving it (with `revertOnDeletion`, its folder goes too)".to_string(),
        };
        let _ = writeln!(md, "#### `{}`: {what}\n", self.app);
        if !self.errors.is_empty() {
            let _ = writeln!(
                md,
                "Nothing moves for this app until `{}` is fixed (errors above).\n",
                self.file
            );
            return;
        }
        if self.strategy.is_empty() || self.change == Change::Removed {
            return;
        }
        let _ = writeln!(md, "{}.\n", capitalise(&self.strategy));
        for note in &self.notes {
            let _ = writeln!(md, "- {note}");
        }
        if !self.notes.is_empty() {
            md.push('\n');
        }
        if let Some((why, diff)) = &self.replicas {
            let _ = writeln!(md, "{why}\n");
            if let Some(diff) = diff {
                md.push_str("```diff\n");
                for line in diff.lines() {
                    let _ = writeln!(md, "{}", fence_safe(line));
                }
                md.push_str("```\n\n");
            }
        }
        if !self.gates.is_empty() {
            md.push_str("| metric | must be | over |\n| --- | --- | --- |\n");
            for (name, bound, interval) in &self.gates {
                let _ = writeln!(md, "| {} | {} | {interval} |", cell(name), cell(bound));
            }
            md.push('\n');
        }
        if !self.hooks.is_empty() {
            let hooks: Vec<String> = self
                .hooks
                .iter()
                .map(|(kind, name)| format!("{} `{}`", kind.as_str(), cell(name)))
                .collect();
            let _ = writeln!(md, "Webhooks: {}.\n", hooks.join(", "));
        }
        if self.steps.is_empty() {
            return;
        }
        if self.change == Change::Spec {
            md.push_str("The next release:\n\n");
        }
        md.push_str(
            "| step | after | phase | canary weight | commit |\n| --- | --- | --- | --- | --- |\n",
        );
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                i + 1,
                GoDuration(s.after),
                s.phase,
                s.canary_weight,
                cell(&s.event)
            );
        }
        if let Some(last) = self.steps.last() {
            let _ = writeln!(
                md,
                "\nExpected duration: {} when every gate passes at once (a closed gate or a failed check adds an interval each), and each step is applied when committed (applied: unknown: `plan` reads no cluster; with a cluster view each interval starts once Flux applied the step and its pods are ready).\n",
                GoDuration(last.after)
            );
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn code_list(images: &[String]) -> String {
    if images.is_empty() {
        return "(no image)".to_string();
    }
    images
        .iter()
        .map(|i| format!("`{}`", cell(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A line inside a fenced block that cannot close the fence.
fn fence_safe(s: &str) -> String {
    s.replace("```", "'''")
}

/// Runs `weir plan`.
pub(crate) async fn command(args: PlanArgs, out: &mut Out) -> anyhow::Result<ExitCode> {
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

/// Posts (or updates) weir's plan comment on the job's pull request; says what it did.
pub(crate) async fn comment(
    args: &crate::cli::args::PlanArgs,
    markdown: &str,
) -> anyhow::Result<String> {
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
