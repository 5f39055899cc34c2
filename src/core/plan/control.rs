//! The control file's requests (`weir approve|abort|retry|pause|resume`): whether a request
//! may be made of an app as recorded, and what the file says after it; and what is left of
//! the file once a step has acted on a retry.
//!
//! Decisions only: the CLI reads the record and the file, and writes what this returns; the
//! engine carries the file this returns. Neither may change a request on its own.

use crate::core::control::Control;
use crate::core::located::LocatedError;
use crate::core::record::{Interval, State};
use crate::core::spec::{Phase, Weight};
use crate::core::text::short;

/// What a control command asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Open every confirm-* gate for the revision under analysis.
    Approve,
    /// Roll back the revision under analysis.
    Abort,
    /// Analyse the failed revision again.
    Retry,
    /// Take no step until resumed.
    Pause,
    /// Take steps again.
    Resume,
}

impl Request {
    /// The command that makes the request: `approve`.
    pub fn command(self) -> &'static str {
        match self {
            Request::Approve => "approve",
            Request::Abort => "abort",
            Request::Retry => "retry",
            Request::Pause => "pause",
            Request::Resume => "resume",
        }
    }
}

/// A request that may be made: the control file to write, and what the commit says.
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    /// The control file's requests after this one (an empty one removes the file).
    pub control: Control,
    /// The commit subject's event.
    pub summary: String,
    /// The commit body.
    pub details: Vec<String>,
    /// The phase the app is in (the request moves nothing by itself).
    pub phase: Phase,
    /// The canary weight it is at.
    pub weight: Weight,
    /// The release's readings so far, as recorded.
    pub history: Vec<Interval>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The app has no record yet.
    #[error("{app} is not initialised yet: nothing to control")]
    NotInitialised {
        /// The app as the command named it.
        app: String,
    },
    /// The control file there is cannot be read.
    #[error(transparent)]
    Control(#[from] LocatedError),
    /// The request is about a revision the app does not have.
    #[error("{app} has no revision {what}")]
    NoRevision {
        /// The app as the command named it.
        app: String,
        /// Which revision: `under analysis`, `that failed`.
        what: &'static str,
    },
    /// `--revision` names another revision than the one the request is about.
    #[error("the revision {what} is {is}, not {asked}")]
    OtherRevision {
        /// Which revision: `under analysis`, `that failed`.
        what: &'static str,
        /// The revision it is, shortened.
        is: String,
        /// The revision asked for.
        asked: String,
    },
    /// A retry of an app that has not failed.
    #[error("{app} is {phase}, not Failed: nothing to retry")]
    NotFailed {
        /// The app as the command named it.
        app: String,
        /// Its phase.
        phase: Phase,
    },
}

/// Checks `request` against the app's record and its control file as read, and returns the
/// control file to write. `revision` is the command's `--revision`, a prefix of at least
/// seven characters of the revision the request is about; `app` is the app as named.
pub fn request(
    request: Request,
    app: &str,
    state: Option<&State>,
    control: Result<Control, LocatedError>,
    revision: Option<&str>,
) -> Result<Requested, Refusal> {
    let Some(state) = state else {
        return Err(Refusal::NotInitialised {
            app: app.to_string(),
        });
    };
    let mut c = control?;
    let pick = |rev: Option<&String>, what: &'static str| -> Result<String, Refusal> {
        let Some(rev) = rev else {
            return Err(Refusal::NoRevision {
                app: app.to_string(),
                what,
            });
        };
        if let Some(asked) = revision {
            if !rev.starts_with(asked) || asked.len() < 7 {
                return Err(Refusal::OtherRevision {
                    what,
                    is: short(rev).to_string(),
                    asked: asked.to_string(),
                });
            }
        }
        Ok(rev.clone())
    };
    let summary = match request {
        Request::Approve => {
            let rev = pick(state.canary_revision.as_ref(), "under analysis")?;
            let s = format!("approve revision {} (weir approve)", short(&rev));
            c.approve = Some(rev);
            s
        }
        Request::Abort => {
            let rev = pick(state.canary_revision.as_ref(), "under analysis")?;
            let s = format!("abort revision {} (weir abort)", short(&rev));
            c.abort = Some(rev);
            s
        }
        Request::Retry => {
            if state.phase != Phase::Failed {
                return Err(Refusal::NotFailed {
                    app: app.to_string(),
                    phase: state.phase,
                });
            }
            let rev = pick(state.failed_revision.as_ref(), "that failed")?;
            let s = format!("retry revision {} (weir retry)", short(&rev));
            c.retry = Some(rev);
            s
        }
        Request::Pause => {
            c.paused = true;
            "pause the rollout (weir pause)".to_string()
        }
        Request::Resume => {
            c.paused = false;
            "resume the rollout (weir resume)".to_string()
        }
    };
    Ok(Requested {
        control: c,
        summary,
        details: vec![format!(
            "requested with weir {}; weir acts on it at its next step",
            request.command()
        )],
        phase: state.phase,
        weight: state.canary_weight,
        history: state.history.clone(),
    })
}

/// The control file's requests once a step that started a retry is written: the retry is
/// consumed, and an abort of the same revision with it (the retry asks to analyse it
/// again). Other steps leave the requests as they are.
pub fn after_step(control: &Control, retried: bool) -> Control {
    let mut c = control.clone();
    if retried {
        if c.abort == c.retry {
            c.abort = None;
        }
        c.retry = None;
    }
    c
}

/// The control file weir writes with a step: the file as found (people's, carried byte for
/// byte) unless the step consumed a retry, then the requests left, rendered, or no file
/// when none are.
pub fn carried(
    control: &Control,
    text: Option<&str>,
    retried: bool,
    name: &str,
    namespace: &str,
) -> Option<String> {
    if !retried {
        return text.map(str::to_string);
    }
    let left = after_step(control, retried);
    (!left.is_empty()).then(|| crate::core::control::render(name, namespace, &left))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn asks(
        paused: bool,
        approve: Option<&str>,
        abort: Option<&str>,
        retry: Option<&str>,
    ) -> Control {
        Control {
            paused,
            approve: approve.map(String::from),
            abort: abort.map(String::from),
            retry: retry.map(String::from),
        }
    }

    #[test]
    fn a_retry_is_consumed_by_the_step_that_starts_it() {
        // (case, requests before, the step retried, requests after)
        let cases = [
            (
                "no retry step: all stays",
                asks(true, Some(A), Some(A), Some(A)),
                false,
                asks(true, Some(A), Some(A), Some(A)),
            ),
            (
                "the retry goes",
                asks(false, None, None, Some(A)),
                true,
                asks(false, None, None, None),
            ),
            (
                "an abort of the same revision goes with it",
                asks(false, None, Some(A), Some(A)),
                true,
                asks(false, None, None, None),
            ),
            (
                "an abort of another revision stays",
                asks(false, None, Some(B), Some(A)),
                true,
                asks(false, None, Some(B), None),
            ),
            (
                "approve and pause stay",
                asks(true, Some(A), None, Some(A)),
                true,
                asks(true, Some(A), None, None),
            ),
        ];
        for (name, before, retried, want) in cases {
            assert_eq!(after_step(&before, retried), want, "{name}");
        }
    }

    #[test]
    fn the_file_is_carried_as_found_unless_a_retry_was_consumed() {
        let text = "# people's bytes\n";
        // (case, requests, the file as found, the step retried, the file written)
        let rendered =
            crate::core::control::render("backend", "prod", &asks(true, None, None, None));
        let cases = [
            (
                "no retry: carried byte for byte",
                asks(true, None, None, Some(A)),
                Some(text),
                false,
                Some(text.to_string()),
            ),
            (
                "no file, no retry: none",
                Control::default(),
                None,
                false,
                None,
            ),
            (
                "the retry was all: the file goes",
                asks(false, None, Some(A), Some(A)),
                Some(text),
                true,
                None,
            ),
            (
                "requests left: rendered",
                asks(true, None, None, Some(A)),
                Some(text),
                true,
                Some(rendered),
            ),
        ];
        for (name, control, found, retried, want) in cases {
            assert_eq!(
                carried(&control, found, retried, "backend", "prod"),
                want,
                "{name}"
            );
        }
    }

    fn state(phase: Phase, canary: Option<&str>, failed: Option<&str>) -> State {
        State {
            phase,
            canary_revision: canary.map(String::from),
            failed_revision: failed.map(String::from),
            ..State::default()
        }
    }

    #[test]
    fn requests_are_checked_against_the_record() {
        use Request::*;
        let progressing = state(Phase::Progressing, Some(A), None);
        let failed = state(Phase::Failed, None, Some(B));
        let at_rest = state(Phase::Succeeded, None, None);
        let failed_without = state(Phase::Failed, None, None);
        // (case, request, record, --revision, the control written or the refusal's text)
        type Row<'a> = (
            &'a str,
            Request,
            Option<&'a State>,
            Option<&'a str>,
            Result<Control, String>,
        );
        let cases: Vec<Row> = vec![
            (
                "approve the revision under analysis",
                Approve,
                Some(&progressing),
                None,
                Ok(asks(false, Some(A), None, None)),
            ),
            (
                "approve names it by a prefix",
                Approve,
                Some(&progressing),
                Some("aaaaaaa"),
                Ok(asks(false, Some(A), None, None)),
            ),
            (
                "a prefix shorter than seven",
                Approve,
                Some(&progressing),
                Some("aaaaaa"),
                Err("the revision under analysis is aaaaaaa, not aaaaaa".into()),
            ),
            (
                "another revision",
                Abort,
                Some(&progressing),
                Some("bbbbbbb"),
                Err("the revision under analysis is aaaaaaa, not bbbbbbb".into()),
            ),
            (
                "abort the revision under analysis",
                Abort,
                Some(&progressing),
                None,
                Ok(asks(false, None, Some(A), None)),
            ),
            (
                "nothing under analysis",
                Approve,
                Some(&at_rest),
                None,
                Err("prod/backend has no revision under analysis".into()),
            ),
            (
                "retry the failed revision",
                Retry,
                Some(&failed),
                None,
                Ok(asks(false, None, None, Some(B))),
            ),
            (
                "retry what has not failed",
                Retry,
                Some(&progressing),
                None,
                Err("prod/backend is Progressing, not Failed: nothing to retry".into()),
            ),
            (
                "retry without a failed revision",
                Retry,
                Some(&failed_without),
                None,
                Err("prod/backend has no revision that failed".into()),
            ),
            (
                "pause at rest",
                Pause,
                Some(&at_rest),
                None,
                Ok(asks(true, None, None, None)),
            ),
            (
                "resume",
                Resume,
                Some(&at_rest),
                None,
                Ok(Control::default()),
            ),
            (
                "no record",
                Pause,
                None,
                None,
                Err("prod/backend is not initialised yet: nothing to control".into()),
            ),
        ];
        for (name, req, record, revision, want) in cases {
            let got = request(
                req,
                "prod/backend",
                record,
                Ok(Control::default()),
                revision,
            )
            .map(|r| r.control)
            .map_err(|e| e.to_string());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_request_keeps_the_other_requests_and_says_what_it_asks() {
        let before = asks(true, None, Some(B), None);
        let s = state(Phase::Progressing, Some(A), None);
        let got = request(Request::Approve, "backend", Some(&s), Ok(before), None).unwrap();
        assert_eq!(got.control, asks(true, Some(A), Some(B), None));
        assert_eq!(got.summary, "approve revision aaaaaaa (weir approve)");
        assert_eq!(
            got.details,
            vec!["requested with weir approve; weir acts on it at its next step"]
        );
        let broken = LocatedError {
            file: "apps/backend.weir/control.yaml".into(),
            line: 1,
            col: 1,
            severity: crate::core::located::Severity::Error,
            field: "apiVersion".into(),
            message: "a control file is weir.dev/v1alpha1 RolloutControl".into(),
        };
        let got = request(
            Request::Pause,
            "backend",
            Some(&s),
            Err(broken.clone()),
            None,
        );
        assert_eq!(got, Err(Refusal::Control(broken.clone())));
        let got = request(Request::Pause, "backend", None, Err(broken), None);
        assert!(
            matches!(got, Err(Refusal::NotInitialised { .. })),
            "the record is looked at before the control file"
        );
    }
}
