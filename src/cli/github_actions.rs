//! GitHub Actions: when weir runs in a workflow job, it leaves its results where the runner
//! reads them — step outputs in the file `$GITHUB_OUTPUT`, Markdown in the job summary file
//! `$GITHUB_STEP_SUMMARY` — as the runner documents them. Outside a job both are unset and
//! nothing is written.

use crate::core::text::cell;
use crate::engine::TickReport;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

/// The files of the job weir runs in, when it runs in one.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// `$GITHUB_OUTPUT`.
    pub output: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`.
    pub summary: Option<PathBuf>,
}

impl Job {
    /// The job of this process's environment.
    pub fn from_env() -> Job {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Job {
            output: path("GITHUB_OUTPUT"),
            summary: path("GITHUB_STEP_SUMMARY"),
        }
    }

    /// Sets step outputs (`name=value`, one line each; values are single-line).
    pub fn outputs(&self, values: &[(&str, String)]) -> std::io::Result<()> {
        let Some(path) = &self.output else {
            return Ok(());
        };
        let mut text = String::new();
        for (name, value) in values {
            let value = value.replace(['\n', '\r'], " ");
            let _ = writeln!(text, "{name}={value}");
        }
        append(path, &text)
    }

    /// Adds Markdown to the job summary.
    pub fn summary(&self, markdown: &str) -> std::io::Result<()> {
        match &self.summary {
            Some(path) => append(path, markdown),
            None => Ok(()),
        }
    }
}

fn append(path: &PathBuf, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        file.write_all(b"\n")?;
    }
    Ok(())
}

/// The outputs of a `weir step`: `apps-moved` (how many), `phases` (a JSON object of every
/// app's phase), `commit` (the sha pushed, or empty), `errors` (apps in error).
pub fn step_outputs(report: &TickReport) -> Vec<(&'static str, String)> {
    let moved: std::collections::BTreeSet<String> =
        report.events.iter().map(|e| e.app.to_string()).collect();
    let phases: BTreeMap<&str, &str> = report
        .apps
        .iter()
        .map(|a| (a.app.as_str(), a.phase.as_deref().unwrap_or("")))
        .collect();
    let errors = report.apps.iter().filter(|a| !a.errors.is_empty()).count();
    vec![
        ("apps-moved", moved.len().to_string()),
        (
            "phases",
            serde_json::to_string(&phases).unwrap_or_else(|_| "{}".into()),
        ),
        (
            "commit",
            report.commit.map(|c| c.to_string()).unwrap_or_default(),
        ),
        ("errors", errors.to_string()),
    ]
}

/// The job summary of a `weir step`: what moved, and every app's phase.
pub fn step_summary(report: &TickReport) -> String {
    let mut md = String::from("### weir step\n\n");
    match (&report.commit, &report.message) {
        (Some(c), Some(m)) => {
            let subject = m.lines().next().unwrap_or("");
            let _ = writeln!(md, "Pushed `{}`: {}\n", c.short(7), cell(subject));
        }
        _ => md.push_str("Nothing to commit.\n\n"),
    }
    if report.apps.is_empty() {
        return md;
    }
    md.push_str("| app | phase | canary weight | failed checks | what happened |\n");
    md.push_str("| --- | --- | --- | --- | --- |\n");
    for a in &report.apps {
        let what = if a.errors.is_empty() {
            a.message.clone()
        } else {
            a.errors.join("; ")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(&a.app),
            cell(a.phase.as_deref().unwrap_or("-")),
            a.canary_weight.map_or("-".into(), |w| w.to_string()),
            a.failed_checks
                .map_or("-".into(), |f| format!("{f}/{}", a.threshold)),
            cell(&what)
        );
    }
    md
}
