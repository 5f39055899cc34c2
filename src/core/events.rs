//! Typed events (what moved, why, the evidence) and the commit messages built from them.
//!
//! Every text that reaches a commit passes through [`clean`]: one line, no control
//! characters, bounded, so a value from the repository or from an answer can neither forge a
//! trailer (`Signed-off-by:`) nor flood a log. Subjects stay within 72 characters; the
//! details go to the body.

use crate::core::app::AppRef;
use crate::core::spec::{Phase, Weight};
use crate::core::text::clean;

/// Longest commit subject, as Git's conventions ask.
pub const SUBJECT_MAX: usize = 72;
/// Longest single field (a detail line, a reason) kept in a message.
pub const FIELD_MAX: usize = 300;

/// Something that happened to one app's rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The app.
    pub app: AppRef,
    /// Its phase after the step.
    pub phase: Phase,
    /// The canary weight after the step.
    pub weight: Weight,
    /// One short line, like Flagger's event log: `advance canary weight 10 -> 20`.
    pub summary: String,
    /// Details for the body: each check and its value, why a step waits.
    pub details: Vec<String>,
}

/// Cuts a subject to [`SUBJECT_MAX`] characters.
fn subject(text: &str) -> String {
    if text.chars().count() <= SUBJECT_MAX {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(SUBJECT_MAX - 3).collect();
    cut.push_str("...");
    cut
}

/// The commit message for the events of one tick.
///
/// One event: `name: summary`, then its details. Several: `weir: N rollouts moved`, then a
/// `* name: summary` line per app with its details indented below it, so that no paragraph
/// reads as Git trailers.
pub fn commit_message(prefix: &str, events: &[Event]) -> String {
    let prefix = clean(prefix, 40);
    let prefix = if prefix.is_empty() {
        prefix
    } else {
        format!("{prefix} ")
    };
    let mut msg = String::new();
    match events {
        [] => msg.push_str(&format!("{prefix}weir: nothing moved\n")),
        [one] => {
            let name = clean(&one.app.name, 63);
            let summary = clean(&one.summary, FIELD_MAX);
            let full = format!("{prefix}{name}: {summary}");
            let head = subject(&full);
            msg.push_str(&head);
            msg.push('\n');
            let mut body = Vec::new();
            if head != full {
                body.push(summary);
            }
            body.extend(one.details.iter().map(|d| clean(d, FIELD_MAX)));
            if !body.is_empty() {
                msg.push('\n');
                for line in body {
                    msg.push_str(&format!("  {line}\n"));
                }
            }
        }
        many => {
            msg.push_str(&subject(&format!(
                "{prefix}weir: {} rollouts moved",
                many.len()
            )));
            msg.push_str("\n\n");
            for e in many {
                msg.push_str(&format!(
                    "* {}: {}\n",
                    clean(&e.app.name, 63),
                    clean(&e.summary, FIELD_MAX)
                ));
                for d in &e.details {
                    msg.push_str(&format!("    {}\n", clean(d, FIELD_MAX)));
                }
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, summary: &str, details: &[&str]) -> Event {
        Event {
            app: AppRef {
                namespace: "prod".into(),
                name: name.into(),
                dir: format!("apps/{name}"),
            },
            phase: Phase::Progressing,
            weight: Weight::new(10).unwrap(),
            summary: summary.into(),
            details: details.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn values_cannot_forge_lines() {
        assert_eq!(
            clean("ok\nSigned-off-by: mallory <m@x>", 100),
            "ok Signed-off-by: mallory <m@x>"
        );
        assert_eq!(clean("a\u{7}\r\n\tb", 100), "a b");
        assert_eq!(clean("abcdef", 3), "abc...");
        let msg = commit_message("", &[event("backend", "halt", &["x\nTrailer: y"])]);
        assert!(!msg.lines().any(|l| l.starts_with("Trailer:")), "{msg}");
    }

    #[test]
    fn subjects_stay_within_72_characters() {
        let long =
            "promoting revision abc1234 to the primary, canary weight stays 50 while it rolls out";
        let msg = commit_message("[weir]", &[event("backend", long, &["d"])]);
        let first = msg.lines().next().unwrap();
        assert!(first.chars().count() <= SUBJECT_MAX, "{first}");
        assert!(msg.contains(&format!("  {long}\n")), "{msg}");
        let two = commit_message("", &[event("a", "x", &["why"]), event("b", "y", &[])]);
        assert_eq!(two, "weir: 2 rollouts moved\n\n* a: x\n    why\n* b: y\n");
    }
}
