//! Errors located in a file: file, line, column, field and what is wrong. Specs, the rollout
//! record and the control file all report through [`LocatedError`].

use crate::core::positions::{display_path, path, PositionIndex, Seg};
use std::fmt;

/// Whether a problem stops the app or is only worth knowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Nothing is committed for the app until it is fixed.
    Error,
    /// Accepted, but weir does not act on it yet; said so instead of ignoring it silently.
    Warning,
}

/// One problem in one file, pinned to the field it is about: the one error type for every
/// file weir reads (specs, the rollout record, the control file).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocatedError {
    /// Repository-relative path of the file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Error or warning.
    pub severity: Severity,
    /// Dotted path of the field, e.g. `spec.analysis.stepWeight`.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {kind}: {}: {}",
            self.file, self.line, self.col, self.field, self.message
        )
    }
}

impl std::error::Error for LocatedError {}

/// Positions of one file, to pin semantic errors on the right line.
pub struct Located<'a> {
    pub(crate) file: &'a str,
    pub(crate) doc: usize,
    pub(crate) index: Option<&'a PositionIndex>,
}

impl<'a> Located<'a> {
    /// Builds an error for `field` (a dotted path such as `spec.analysis.stepWeight`).
    pub fn error(&self, field: &[Seg], message: impl Into<String>) -> LocatedError {
        self.make(Severity::Error, field, message.into())
    }

    /// Builds a warning for `field`.
    pub fn warning(&self, field: &[Seg], message: impl Into<String>) -> LocatedError {
        self.make(Severity::Warning, field, message.into())
    }

    fn make(&self, severity: Severity, field: &[Seg], message: String) -> LocatedError {
        let (line, col) = match self.index {
            Some(index) => {
                let at = index.locate(self.doc, field);
                (at.line, at.col)
            }
            None => (1, 1),
        };
        LocatedError {
            file: self.file.to_string(),
            line,
            col,
            severity,
            field: display_path(field),
            message,
        }
    }

    /// Repository-relative path of the file.
    pub fn file(&self) -> &str {
        self.file
    }

    /// Index of the document in the file.
    pub fn doc(&self) -> usize {
        self.doc
    }
}

/// An error at `field` (a dotted path) of the first document of `text`, located when the
/// text parses as YAML and at 1:1 otherwise.
pub fn error_at(file: &str, text: &str, field: &str, message: String) -> LocatedError {
    let index = PositionIndex::parse(text).ok();
    let at = Located {
        file,
        doc: 0,
        index: index.as_ref(),
    };
    LocatedError {
        field: field.to_string(),
        ..at.error(&path(field), message)
    }
}

/// A YAML error of a whole file, pinned to the field serde named at the start of its message
/// (`status.phase: unknown variant ...`), or to `fallback` when it named none.
pub fn from_yaml(file: &str, e: crate::core::yaml::YamlError, fallback: &str) -> LocatedError {
    let (field, message) = match e.message.split_once(": ") {
        Some((field, message)) if !field.contains(' ') => (field.to_string(), message.to_string()),
        _ => (fallback.to_string(), e.message.clone()),
    };
    LocatedError {
        file: file.to_string(),
        line: e.line,
        col: e.col,
        severity: Severity::Error,
        field,
        message,
    }
}
