//! Reading YAML into values and typed structs: the one module that names the YAML library
//! (serde_yaml, archived upstream; a fork is a change here), with the guards every read of
//! repository text needs. A UTF-8 byte-order mark is stripped, as Flux does (serde_yaml would
//! otherwise spin forever on it); text over [`MAX_TEXT`] bytes is refused.
//!
//! Byte-exact edits and positions live in `yaml_edit.rs` (yaml-rust2).

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use serde_yaml::{Deserializer, Error, Mapping, Value};

/// Largest YAML text weir parses.
pub const MAX_TEXT: usize = 4 * 1024 * 1024;

/// A YAML text that cannot be read, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl YamlError {
    fn from_serde(e: &serde_yaml::Error) -> YamlError {
        let (line, col) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let text = e.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        YamlError { line, col, message }
    }
}

/// The text without a leading byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn check_size(text: &str) -> Result<(), YamlError> {
    if text.len() > MAX_TEXT {
        return Err(YamlError {
            line: 1,
            col: 1,
            message: format!(
                "{} bytes is more YAML than weir reads (at most {MAX_TEXT})",
                text.len()
            ),
        });
    }
    Ok(())
}

/// Every non-empty document of a YAML text.
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    check_size(text)?;
    let mut out = Vec::new();
    for de in Deserializer::from_str(strip_bom(text)) {
        let v = Value::deserialize(de).map_err(|e| YamlError::from_serde(&e))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// The first document of a YAML text as `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    check_size(text)?;
    serde_yaml::from_str(strip_bom(text)).map_err(|e| YamlError::from_serde(&e))
}

/// Serializes a value; weir only serializes its own types, which always serialize.
pub fn to_string<T: serde::Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).expect("weir's own values always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let docs = documents("\u{feff}a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        let v: Value = from_str("\u{feff}x: y").unwrap();
        assert_eq!(v["x"].as_str(), Some("y"));
    }

    #[test]
    fn errors_have_positions() {
        let e = documents("a: [1,\n").unwrap_err();
        assert!(e.line >= 1, "{e}");
        assert!(!e.message.contains(" at line "), "{e}");
    }
}
