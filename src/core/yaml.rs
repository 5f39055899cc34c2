//! Reading YAML into values and typed structs: the one module that names the YAML library
//! (serde_yaml, archived upstream; a fork is a change here), with the guards every read of
//! repository text needs, whoever wrote it:
//!
//! - a UTF-8 byte-order mark is stripped, as Flux does (serde_yaml would otherwise spin
//!   forever on it);
//! - text over [`MAX_TEXT`] bytes is refused;
//! - nesting deeper than [`MAX_DEPTH`] is refused;
//! - aliases may not expand a document past [`MAX_EXPANDED`] (an alias bomb of a few lines
//!   would otherwise expand to gigabytes).
//!
//! Byte-exact edits and positions live in `yaml_edit.rs` (yaml-rust2).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};

pub use serde_yaml::{Deserializer, Error, Mapping, Value};

/// Largest YAML text weir parses.
pub const MAX_TEXT: usize = 4 * 1024 * 1024;
/// Deepest nesting of mappings and sequences weir parses.
pub const MAX_DEPTH: usize = 64;
/// The most a document may weigh once its aliases are expanded (bytes of scalars plus one per
/// node): a generous multiple of any real manifest.
pub const MAX_EXPANDED: u64 = 16 * 1024 * 1024;

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
    /// From a serde_yaml error on `text`, with its position. libyaml's reader errors (a
    /// control character, bad UTF-8) carry a byte offset instead of a line; it is turned
    /// into one here.
    pub fn from_serde(text: &str, e: &serde_yaml::Error) -> YamlError {
        let shown = e.to_string();
        if let Some((message, offset)) = shown.rsplit_once(" at position ") {
            if let Ok(offset) = offset.trim().parse::<usize>() {
                let before = text.get(..offset.min(text.len())).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                return YamlError::at(line, col, message.to_string());
            }
        }
        if let Some(l) = e.location() {
            let message = match shown.rfind(" at line ") {
                Some(i) => shown[..i].to_string(),
                None => shown,
            };
            return YamlError::at(l.line(), l.column(), message);
        }
        YamlError::at(1, 1, shown)
    }

    fn at(line: usize, col: usize, message: String) -> YamlError {
        YamlError { line, col, message }
    }
}

/// The text without a leading byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Checks that a text is safe to hand to serde_yaml: its size, its nesting and how far its
/// aliases expand. Returns the text without a byte-order mark.
pub fn guard(text: &str) -> Result<&str, YamlError> {
    if text.len() > MAX_TEXT {
        return Err(YamlError::at(
            1,
            1,
            format!(
                "{} bytes is more YAML than weir reads (at most {MAX_TEXT})",
                text.len()
            ),
        ));
    }
    let text = strip_bom(text);
    // Only texts with anchors can expand; others need no second parse.
    if !text.contains('&') {
        return Ok(text);
    }
    check_expansion(text)?;
    Ok(text)
}

/// Walks the events of every document, weighing what each anchor expands to.
fn check_expansion(text: &str) -> Result<(), YamlError> {
    let mut parser = Parser::new_from_str(text);
    // Per document: what each anchor weighs, and the open containers (anchor, weight).
    let mut anchors: HashMap<usize, u64> = HashMap::new();
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(x) => x,
            // yaml-rust2 refuses a few layouts that serde_yaml reads (a multi-line quoted
            // scalar indented at its key's column); with anchors in the text, weir cannot
            // tell how far it expands, so it refuses it rather than guess.
            Err(e) => {
                return Err(YamlError::at(
                    e.marker().line().max(1),
                    e.marker().col() + 1,
                    format!(
                        "this YAML uses anchors and could not be checked for how far its aliases expand ({}); write it without anchors",
                        e.info()
                    ),
                ))
            }
        };
        let position = || (mark.line().max(1), mark.col() + 1);
        let mut weigh = |w: u64, open: &mut Vec<(usize, u64)>| -> Result<(), YamlError> {
            total = total.saturating_add(w);
            if let Some(top) = open.last_mut() {
                top.1 = top.1.saturating_add(w);
            }
            if total > MAX_EXPANDED {
                let (line, col) = position();
                return Err(YamlError::at(
                    line,
                    col,
                    format!("its aliases expand past {MAX_EXPANDED} bytes; weir refuses it (an alias bomb?)"),
                ));
            }
            Ok(())
        };
        match event {
            Event::StreamEnd => return Ok(()),
            Event::DocumentStart => {
                anchors.clear();
                open.clear();
                total = 0;
            }
            Event::Scalar(value, _, anchor, _) => {
                let w = 1 + value.len() as u64;
                weigh(w, &mut open)?;
                if anchor > 0 {
                    anchors.insert(anchor, w);
                }
            }
            Event::Alias(id) => {
                let w = anchors.get(&id).copied().unwrap_or(1);
                weigh(w, &mut open)?;
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                weigh(1, &mut open)?;
                if open.len() >= MAX_DEPTH {
                    let (line, col) = position();
                    return Err(YamlError::at(
                        line,
                        col,
                        format!("nested deeper than {MAX_DEPTH} levels; weir refuses it"),
                    ));
                }
                open.push((anchor, 1));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some((anchor, w)) = open.pop() {
                    if anchor > 0 {
                        anchors.insert(anchor, w);
                    }
                    if let Some(top) = open.last_mut() {
                        top.1 = top.1.saturating_add(w);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A deserializer over every document of a guarded text.
pub fn deserializer(text: &str) -> Result<Deserializer<'_>, YamlError> {
    Ok(Deserializer::from_str(guard(text)?))
}

/// Every non-empty document of a YAML text.
pub fn documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut out = Vec::new();
    let text = guard(text)?;
    for de in Deserializer::from_str(text) {
        let v = Value::deserialize(de).map_err(|e| YamlError::from_serde(text, &e))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// The first document of a YAML text as `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let text = guard(text)?;
    serde_yaml::from_str(text).map_err(|e| YamlError::from_serde(text, &e))
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

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb =
            String::from("a: &a [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]\n");
        for level in 1..12 {
            bomb.push_str(&format!(
                "l{level}: &l{level} [{}]\n",
                vec![
                    format!(
                        "*{}",
                        if level == 1 {
                            "a".to_string()
                        } else {
                            format!("l{}", level - 1)
                        }
                    );
                    10
                ]
                .join(", ")
            ));
        }
        let e = documents(&bomb).unwrap_err();
        assert!(e.message.contains("aliases expand past"), "{e}");
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let e = documents(&format!("a: &x 1\nb: {deep}\n")).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        // Without anchors, serde_yaml's own limit answers, quickly.
        assert!(documents(&format!("b: {deep}\n")).is_err());
        // Ordinary anchors and aliases are fine.
        let ok = documents("base: &b {cpu: 1}\nother: *b\nmerged:\n  <<: *b\n  mem: 2\n").unwrap();
        assert_eq!(ok[0]["other"]["cpu"].as_u64(), Some(1));
    }

    #[test]
    fn too_much_text_is_refused() {
        let big = "a: ".to_string() + &"x".repeat(MAX_TEXT);
        assert!(documents(&big)
            .unwrap_err()
            .message
            .contains("more YAML than weir reads"));
    }
}
