//! What the commands print: standard output that a closed pipe silences, the problems of a
//! tick on standard error, the status table, and the exit code a report earns.

use super::{OK, PROBLEMS};
use crate::core::spec::Severity;
use crate::engine::{AppReport, TickReport};
use std::io::Write;
use std::process::ExitCode;

/// Standard output that a closed pipe (`weir validate | head -1`) silences instead of
/// crashing the command.
pub(crate) struct Out {
    pub(crate) closed: bool,
}

impl Out {
    pub(crate) fn line(&mut self, text: &str) {
        self.raw(&format!("{text}\n"));
    }

    pub(crate) fn raw(&mut self, text: &str) {
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

pub(crate) fn print_problems(report: &TickReport) {
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

pub(crate) fn exit_for(report: &TickReport) -> ExitCode {
    let bad = report
        .spec_errors
        .iter()
        .any(|e| e.severity == Severity::Error)
        || report.apps.iter().any(|a| !a.errors.is_empty());
    ExitCode::from(if bad { PROBLEMS } else { OK })
}

pub(crate) fn print_table(out: &mut Out, apps: &[AppReport]) {
    let dash = || "-".to_string();
    let mut rows = vec![[
        "APP".to_string(),
        "PHASE".to_string(),
        "PRIMARY".to_string(),
        "CANARY".to_string(),
        "FAILED".to_string(),
        "REVISION".to_string(),
        "NEXT STEP".to_string(),
        "APPLIED".to_string(),
        "PODS".to_string(),
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
            a.applied.clone().unwrap_or_else(dash),
            a.pods.clone().unwrap_or_else(dash),
            a.errors
                .first()
                .or(a.proposed.as_ref())
                .cloned()
                .unwrap_or_else(|| a.message.clone()),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i == 9 {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.line(line.trim_end());
    }
}
