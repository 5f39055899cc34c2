//! The test-only YAML editor: [`set_scalar`] replaces the text of one existing single-line
//! scalar of a user's file and leaves every other byte as it was, so tests change files as a
//! person would (a tag bump, an interval). weir itself never rewrites a user's file; the
//! position index it is built on lives in `core::positions`.

use crate::core::positions::*;
use std::fmt::Write as _;
use yaml_rust2::Yaml;

/// Why [`set_scalar`] did not edit the source. The source is never partially edited.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum EditError {
    /// The source is not valid YAML, so no position in it can be trusted.
    #[error("the YAML does not parse, so it cannot be edited: {0}")]
    Syntax(#[from] SyntaxError),
    /// The stream has fewer documents than the requested (0-based) document index.
    #[error(
        "document {doc} (counting from 0) does not exist: the stream has {documents} document(s)"
    )]
    NoSuchDocument {
        /// The requested document index.
        doc: usize,
        /// How many documents the stream has.
        documents: usize,
    },
    /// Nothing exists at the path; weir only edits values that are already in the file.
    #[error(
        "`{path}` does not exist in the document; weir only replaces values that are already \
         written in the file"
    )]
    NotFound {
        /// The path, as rendered by [`display_path`].
        path: String,
    },
    /// The path names a mapping or a sequence, not a single value.
    #[error(
        "line {line}, column {col}: `{path}` is a mapping or a sequence, not a single value; \
         point the path at a scalar inside it"
    )]
    NotAScalar {
        /// The path, as rendered by [`display_path`].
        path: String,
        /// 1-based line of the node.
        line: usize,
        /// 1-based column of the node.
        col: usize,
    },
    /// The scalar exists but cannot be replaced byte-exactly: a block scalar (`|`, `>`), a
    /// plain or quoted scalar spanning several lines, an alias, a node carrying an anchor or
    /// inside an anchored node that an alias refers to, an empty value, or a path through a
    /// duplicated key.
    #[error("line {line}, column {col}: cannot edit `{path}`: {reason}")]
    Unsupported {
        /// The path, as rendered by [`display_path`].
        path: String,
        /// 1-based line of the node.
        line: usize,
        /// 1-based column of the node.
        col: usize,
        /// Why, and what to do instead.
        reason: String,
    },
    /// Safety net: the edited text did not parse back to the original document with only this
    /// value changed. The edit is discarded. This indicates a bug in this module.
    #[error(
        "line {line}, column {col}: editing `{path}` would have changed more than that value \
         ({detail}); the edit was discarded, please report this with the file"
    )]
    Unverified {
        /// The path, as rendered by [`display_path`].
        path: String,
        /// 1-based line of the node.
        line: usize,
        /// 1-based column of the node.
        col: usize,
        /// What the check found.
        detail: String,
    },
}

/// Replace the scalar at `path` in document `doc` with `new_value`, changing only the bytes of
/// that scalar: every other byte (comments, key order, indentation, other quoting, trailing
/// newline or its absence, CRLF line endings) stays identical. Keep the original quoting style:
/// plain stays plain if the new value is safe as a plain scalar (otherwise switch to double
/// quotes), single-quoted stays single-quoted (escape ' as ''), double-quoted stays
/// double-quoted (escape \ and " and control chars). Returns the new source.
///
/// "Safe as a plain scalar" also means keeping the value's type: when the old plain value read
/// as a string (`tag: v1.2`), a new value that a YAML 1.1 or 1.2 loader could read as a number,
/// boolean, null or date (`1.3`, `on`, `2024-01-02`) is double-quoted so it stays a string. A
/// plain number or boolean stays plain (`weight: 10` becomes `weight: 20`). A single-quoted
/// value whose new text has a line break or control character switches to double quotes, since
/// single quotes cannot carry it on one line.
///
/// # Errors
/// See [`EditError`]; on any error the source is left as it was.
pub fn set_scalar(
    src: &str,
    doc: usize,
    path: &[Seg],
    new_value: &str,
) -> Result<String, EditError> {
    let index = PositionIndex::parse(src)?;
    let Some(d) = index.docs.get(doc) else {
        return Err(EditError::NoSuchDocument {
            doc,
            documents: index.documents(),
        });
    };
    let Some(node) = d.find(path) else {
        return Err(EditError::NotFound {
            path: display_path(path),
        });
    };
    let unsupported = |reason: String| EditError::Unsupported {
        path: display_path(path),
        line: node.loc.line,
        col: node.loc.col,
        reason,
    };
    let (old, style, tagged) = match editable_scalar(d, path) {
        Ok(scalar) => scalar,
        Err(Refusal::NotAScalar) => {
            return Err(EditError::NotAScalar {
                path: display_path(path),
                line: node.loc.line,
                col: node.loc.col,
            })
        }
        Err(Refusal::Unsupported(reason)) => return Err(unsupported(reason)),
    };
    let (start, end) =
        scalar_span(src, node.loc.byte, style, node.in_flow, old).map_err(unsupported)?;

    let first = match style {
        Style::Plain
            if plain_safe(new_value, node.in_flow)
                && (tagged || !reads_as_string(old) || !may_read_as_non_string(new_value)) =>
        {
            Style::Plain
        }
        Style::Single if new_value.chars().all(inline_printable) => Style::Single,
        _ => Style::Double,
    };
    let mut detail = String::new();
    for choice in [first, Style::Double] {
        let text = render(new_value, choice);
        let mut out = String::with_capacity(src.len() + text.len());
        out.push_str(&src[..start]);
        out.push_str(&text);
        out.push_str(&src[end..]);
        match verify(&index, &out, doc, path, new_value, choice) {
            Ok(()) => return Ok(out),
            Err(why) => detail = why,
        }
        if choice == Style::Double {
            break;
        }
    }
    Err(EditError::Unverified {
        path: display_path(path),
        line: node.loc.line,
        col: node.loc.col,
        detail,
    })
}

pub(super) enum Refusal {
    NotAScalar,
    Unsupported(String),
}

/// The scalar at `path` as (value, style, tagged), unless replacing its text would change
/// more than that one value, or the path is ambiguous.
pub(super) fn editable_scalar<'d>(
    d: &'d Document,
    path: &[Seg],
) -> Result<(&'d str, Style, bool), Refusal> {
    let refuse = |reason: String| Err(Refusal::Unsupported(reason));
    let trail = d.trail(path);
    for (depth, &id) in trail.iter().enumerate().skip(1) {
        if d.nodes[id].duplicated {
            return refuse(format!(
                "`{}` appears more than once in its mapping, so which value to edit is \
             ambiguous; remove the duplicate key",
                display_path(&path[..depth])
            ));
        }
    }
    let Some((&last, ancestors)) = trail.split_last() else {
        return Err(Refusal::NotAScalar);
    };
    for (depth, &id) in ancestors.iter().enumerate() {
        let anchor = d.nodes[id].anchor;
        if anchor != 0 && d.aliased.contains(&anchor) {
            return refuse(format!(
                "it is inside `{}`, which has an anchor (`&name`) that an alias refers to, so \
             the edit would change the alias too",
                display_path(&path[..depth])
            ));
        }
    }
    let node = &d.nodes[last];
    let (value, style, tagged) = match &node.kind {
        Kind::Mapping | Kind::Sequence => return Err(Refusal::NotAScalar),
        Kind::Alias => {
            return refuse(
                "it is an alias (`*name`) of a value written elsewhere; weir does not edit \
             through aliases"
                    .into(),
            )
        }
        Kind::Scalar {
            value,
            style,
            tagged,
        } => (value.as_str(), *style, *tagged),
    };
    if node.anchor != 0 {
        return refuse(
            "it carries an anchor (`&name`), so other nodes may share it; write the value \
         without the anchor"
                .into(),
        );
    }
    match style {
        Style::Literal | Style::Folded => refuse(
            "it is a block scalar (`|` or `>`); weir only replaces single-line values".into(),
        ),
        Style::Plain if value.is_empty() => refuse(
            "the value is empty; weir only replaces text that is already there, so write a \
         placeholder value first"
                .into(),
        ),
        _ => Ok((value, style, tagged)),
    }
}

/// The byte range of a single-line scalar's text (quotes included) starting at `start`.
pub(super) fn scalar_span(
    src: &str,
    start: usize,
    style: Style,
    in_flow: bool,
    value: &str,
) -> Result<(usize, usize), String> {
    const MULTI_LINE: &str = "the value spans several lines; weir only replaces single-line \
                          values, so put it on one line first";
    let rest = src.get(start..).unwrap_or("");
    let mut chars = rest.char_indices().peekable();
    match style {
        Style::Plain => {
            let mut end = 0;
            let mut prev = ' ';
            while let Some((i, c)) = chars.next() {
                let next = chars.peek().map(|&(_, n)| n);
                let stop = match c {
                    '\n' | '\r' | '\0' => true,
                    '#' => prev == ' ' || prev == '\t',
                    ',' | '[' | ']' | '{' | '}' => in_flow,
                    ':' => match next {
                        None | Some(' ' | '\t' | '\n' | '\r') => true,
                        Some(',' | '[' | ']' | '{' | '}') => in_flow,
                        Some(_) => false,
                    },
                    _ => false,
                };
                if stop {
                    break;
                }
                if c != ' ' && c != '\t' {
                    end = i + c.len_utf8();
                }
                prev = c;
            }
            let text = &rest[..end];
            if text == value {
                Ok((start, start + end))
            } else if value.starts_with(text) {
                Err(MULTI_LINE.into())
            } else {
                Err(format!(
                    "its text in the file does not match the parsed value {value:?}"
                ))
            }
        }
        Style::Single | Style::Double => {
            let quote = if style == Style::Single { '\'' } else { '"' };
            if chars.next().map(|(_, c)| c) != Some(quote) {
                return Err(format!("no opening {quote} where the value starts"));
            }
            while let Some((i, c)) = chars.next() {
                match c {
                    '\n' | '\r' | '\0' => return Err(MULTI_LINE.into()),
                    '\\' if style == Style::Double => {
                        if let None | Some((_, '\n' | '\r' | '\0')) = chars.next() {
                            return Err(MULTI_LINE.into());
                        }
                    }
                    '\'' if style == Style::Single
                        && chars.peek().map(|&(_, n)| n) == Some('\'') =>
                    {
                        chars.next();
                    }
                    c if c == quote => return Ok((start, start + i + 1)),
                    _ => {}
                }
            }
            Err(MULTI_LINE.into())
        }
        Style::Literal | Style::Folded => Err("it is a block scalar".into()),
    }
}

/// Characters that can be written literally inside a one-line plain or single-quoted scalar.
pub(super) fn inline_printable(c: char) -> bool {
    !(c < ' '
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        ))
}

/// Whether `v` written plain reads back as exactly `v` (conservatively: some safe values are
/// quoted anyway).
pub(super) fn plain_safe(v: &str, in_flow: bool) -> bool {
    let mut chars = v.chars();
    let (Some(first), second) = (chars.next(), chars.next()) else {
        return false;
    };
    if !v.chars().all(inline_printable)
        || v.starts_with(' ')
        || v.ends_with(' ')
        || v.ends_with(':')
        || v.contains(": ")
        || v.contains(" #")
        || v.starts_with("---")
        || v.starts_with("...")
    {
        return false;
    }
    if in_flow && v.contains([',', '[', ']', '{', '}', ':']) {
        return false;
    }
    match first {
        '-' | '?' | ':' => !matches!(second, None | Some(' ')),
        ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' => false,
        _ => true,
    }
}

/// Whether yaml-rust2 reads this plain text as a string.
pub(super) fn reads_as_string(plain: &str) -> bool {
    matches!(Yaml::from_str(plain), Yaml::String(_))
}

/// Whether some YAML 1.1 or 1.2 loader (yaml-rust2, serde_yaml, Kubernetes' go-yaml) could read
/// this plain text as something other than a string. Errs on the side of yes.
pub(super) fn may_read_as_non_string(v: &str) -> bool {
    if !reads_as_string(v) {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "yes" | "n" | "no" | "on" | "off" | "true" | "false" | "null" | "~" | "=" | "<<"
    ) {
        return true;
    }
    let plain: String = v.chars().filter(|&c| c != '_').collect();
    let t = plain.strip_prefix(['+', '-']).unwrap_or(&plain);
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let radix = |prefix: [&str; 2], radix: u32| {
        prefix
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .is_some_and(|r| digits(r, radix))
    };
    if digits(t, 10)
        || radix(["0x", "0X"], 16)
        || radix(["0o", "0O"], 8)
        || radix(["0b", "0B"], 2)
        || t.parse::<f64>().is_ok()
        || t.to_ascii_lowercase().starts_with(".inf")
        || t.to_ascii_lowercase().starts_with(".nan")
    {
        return true;
    }
    // Sexagesimal numbers (YAML 1.1): 1:30, 1:30.5
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() > 1
        && parts.iter().enumerate().all(|(i, p)| {
            if i + 1 == parts.len() {
                p.parse::<f64>().is_ok() && p.starts_with(|c: char| c.is_ascii_digit())
            } else {
                digits(p, 10)
            }
        })
    {
        return true;
    }
    // Dates and timestamps: 2024-01-02, 2024-1-2T10:00:00Z
    let b = v.as_bytes();
    b.len() >= 6 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

pub(super) fn render(v: &str, style: Style) -> String {
    match style {
        Style::Plain => v.to_owned(),
        Style::Single => format!("'{}'", v.replace('\'', "''")),
        _ => double_quoted(v),
    }
}

pub(super) fn double_quoted(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x100 && !inline_printable(c) => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if !inline_printable(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parse the edited text and compare it with the original, node by node: the same documents and
/// paths, the same kinds, values, styles and anchors, except the edited value.
pub(super) fn verify(
    before: &PositionIndex,
    out: &str,
    doc: usize,
    path: &[Seg],
    new_value: &str,
    style: Style,
) -> Result<(), String> {
    let after = PositionIndex::parse(out).map_err(|e| format!("the result does not parse: {e}"))?;
    if after.docs.len() != before.docs.len() {
        return Err(format!(
            "the result has {} documents instead of {}",
            after.docs.len(),
            before.docs.len()
        ));
    }
    for (i, (old, new)) in before.docs.iter().zip(&after.docs).enumerate() {
        if old.nodes.len() != new.nodes.len() || old.aliased != new.aliased {
            return Err(format!("document {i} changed shape"));
        }
        if old.nodes.is_empty() {
            continue;
        }
        let edit = Edit {
            path: if i == doc { Some(path) } else { None },
            value: new_value,
            style,
        };
        compare(old, new, 0, 0, &mut Vec::new(), &edit)?;
    }
    Ok(())
}

pub(super) struct Edit<'a> {
    /// The edited path, when comparing the edited document.
    path: Option<&'a [Seg]>,
    value: &'a str,
    style: Style,
}

/// Compare the subtrees at `a` (before) and `b` (after). Recursion depth is bounded by
/// yaml-rust2's own nesting limit.
pub(super) fn compare(
    old: &Document,
    new: &Document,
    a: usize,
    b: usize,
    at: &mut Vec<Seg>,
    edit: &Edit<'_>,
) -> Result<(), String> {
    let (x, y) = (&old.nodes[a], &new.nodes[b]);
    let same = if edit.path == Some(at.as_slice()) {
        let tagged = matches!(x.kind, Kind::Scalar { tagged: true, .. });
        let expected = Kind::Scalar {
            value: edit.value.to_owned(),
            style: edit.style,
            tagged,
        };
        y.kind == expected && y.anchor == x.anchor && y.in_flow == x.in_flow
    } else {
        x.same_shape(y)
    };
    if !same {
        return Err(format!("`{}` changed", display_path(at)));
    }
    for (seg, &ca) in &x.children {
        let Some(&cb) = y.children.get(seg) else {
            at.push(seg.clone());
            return Err(format!("`{}` disappeared", display_path(at)));
        };
        at.push(seg.clone());
        compare(old, new, ca, cb, at, edit)?;
        at.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use yaml_rust2::YamlLoader;

    fn p(s: &str) -> Vec<Seg> {
        path(s)
    }

    fn child(parent: &[Seg], seg: Seg) -> Vec<Seg> {
        let mut path = parent.to_vec();
        path.push(seg);
        path
    }

    fn loc(line: usize, col: usize, byte: usize) -> Location {
        Location { line, col, byte }
    }

    fn edit(src: &str, at: &str, value: &str) -> String {
        set_scalar(src, 0, &p(at), value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refusal(src: &str, at: &str) -> String {
        match set_scalar(src, 0, &p(at), "x") {
            Err(EditError::Unsupported { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    // ---- paths ----

    #[test]
    fn paths_parse_and_render() {
        use Seg::{Index, Key};
        let k = |s: &str| Key(s.to_owned());
        assert_eq!(
            p("spec.analysis.stepWeights[2]"),
            vec![k("spec"), k("analysis"), k("stepWeights"), Index(2)]
        );
        assert_eq!(
            p("images[0].newTag"),
            vec![k("images"), Index(0), k("newTag")]
        );
        assert_eq!(p("[1][2]"), vec![Index(1), Index(2)]);
        assert_eq!(p(""), vec![]);
        assert_eq!(p("."), vec![]);
        assert_eq!(p("a[x].b"), vec![k("a[x]"), k("b")]);
        assert_eq!(p("größe.🚀"), vec![k("größe"), k("🚀")]);
        assert_eq!(
            display_path(&p("spec.analysis.metrics[0].thresholdRange.min")),
            "spec.analysis.metrics[0].thresholdRange.min"
        );
        assert_eq!(display_path(&[]), ".");
        assert_eq!(display_path(&[Index(3), k("a")]), "[3].a");
    }

    // ---- positions ----

    #[test]
    fn positions_count_characters_after_non_ascii_comments() {
        let src =
            "# größe 🚀\nspec:  # ünïcode 🚀 here\n  image: 'nginx:1.2'\n  tags: [a, \"b\"]\n";
        let idx = PositionIndex::parse(src).unwrap();
        assert_eq!(idx.documents(), 1);
        let byte = src.find("'nginx").unwrap();
        assert_eq!(idx.value(0, &p("spec.image")), Some(loc(3, 10, byte)));
        assert_eq!(idx.key(0, &p("spec.image")), Some(loc(3, 3, byte - 7)));
        assert_eq!(
            idx.value(0, &p("spec.tags[1]")).unwrap().byte,
            src.find("\"b\"").unwrap()
        );
        assert_eq!(idx.key(0, &p("spec.tags[1]")), None);
        // A block mapping is located at its first key, not at yaml-rust2's marker on the colon.
        assert_eq!(
            idx.value(0, &p("spec")),
            Some(loc(3, 3, src.find("image").unwrap()))
        );
        assert_eq!(idx.value(0, &p("spec.nope")), None);
    }

    #[test]
    fn positions_in_flow_collections_and_quoted_keys() {
        let src = "{a: 1, b: [x, y], \"c d\": 'e'}";
        let idx = PositionIndex::parse(src).unwrap();
        assert_eq!(idx.value(0, &[]), Some(loc(1, 1, 0)));
        assert_eq!(idx.value(0, &p("a")), Some(loc(1, 5, 4)));
        assert_eq!(idx.value(0, &p("b")), Some(loc(1, 11, 10)));
        assert_eq!(idx.value(0, &p("b[1]")), Some(loc(1, 15, 14)));
        assert_eq!(idx.key(0, &p("c d")), Some(loc(1, 19, 18)));
        assert_eq!(idx.value(0, &p("c d")), Some(loc(1, 26, 25)));
    }

    #[test]
    fn positions_with_crlf_and_bom() {
        let src = "\u{feff}a: 1\r\nb:\r\n  - x\r\n";
        let idx = PositionIndex::parse(src).unwrap();
        assert_eq!(idx.value(0, &p("a")), Some(loc(1, 4, 6)));
        assert_eq!(idx.key(0, &p("a")), Some(loc(1, 1, 3)));
        assert_eq!(
            idx.value(0, &p("b[0]")),
            Some(loc(3, 5, src.find('x').unwrap()))
        );
    }

    #[test]
    fn documents_are_counted() {
        assert_eq!(PositionIndex::parse("").unwrap().documents(), 0);
        assert_eq!(
            PositionIndex::parse("# only\n\n# comments\n")
                .unwrap()
                .documents(),
            0
        );
        assert_eq!(PositionIndex::parse("a: 1").unwrap().documents(), 1);
        let multi = "a: 1\n---\nb: 2\n--- 3\n...\n---\n- c\n";
        let idx = PositionIndex::parse(multi).unwrap();
        assert_eq!(idx.documents(), 4);
        assert_eq!(idx.value(1, &p("b")), Some(loc(3, 4, 12)));
        assert_eq!(idx.value(2, &[]), Some(loc(4, 5, 18)));
        assert_eq!(idx.value(3, &p("[0]")).unwrap().line, 7);
        assert_eq!(idx.value(4, &[]), None);
    }

    #[test]
    fn locate_falls_back_to_ancestors_then_document_start() {
        let src = "x: 0\n---\n# c\nspec:\n  a: 1\n";
        let idx = PositionIndex::parse(src).unwrap();
        assert_eq!(
            idx.locate(1, &p("spec.a")),
            loc(5, 6, src.rfind('1').unwrap())
        );
        assert_eq!(
            idx.locate(1, &p("spec.b.c")),
            loc(5, 3, src.find("a:").unwrap())
        );
        assert_eq!(
            idx.locate(1, &p("other")),
            loc(4, 1, src.find("spec").unwrap())
        );
        assert_eq!(idx.locate(7, &p("spec")), loc(1, 1, 0));
        let empty_doc = PositionIndex::parse("a: 1\n--- # nothing\n").unwrap();
        assert_eq!(empty_doc.locate(1, &p("a")).line, 2);
    }

    #[test]
    fn empty_values_are_located_at_their_key() {
        let src = "a:\nb: 1\nc:\n  -\n  - 2\n";
        let idx = PositionIndex::parse(src).unwrap();
        assert_eq!(idx.value(0, &p("a")), Some(loc(1, 1, 0)));
        assert_eq!(idx.value(0, &p("c[0]")), idx.value(0, &p("c")));
    }

    #[test]
    fn block_scalars_are_located_at_their_indicator() {
        let src = "a: |\n  hi\n\"b|>\": >-2 # c | d\n\n    x\n  y\nc: |\nd: 1\ne:\n- |+\n  z\n";
        let idx = PositionIndex::parse(src).unwrap();
        assert_eq!(idx.value(0, &p("a")), Some(loc(1, 4, 3)));
        assert_eq!(
            idx.value(0, &p("b|>")),
            Some(loc(3, 8, src.find(">-2").unwrap()))
        );
        assert_eq!(
            idx.value(0, &p("c")).unwrap().byte,
            src.find("c: |").unwrap() + 3
        );
        assert_eq!(
            idx.value(0, &p("e[0]")).unwrap().byte,
            src.find("|+").unwrap()
        );
    }

    #[test]
    fn duplicate_keys_keep_the_last_occurrence() {
        let src = "a:\n  x: 1\na:\n  y: 2\n";
        let idx = PositionIndex::parse(src).unwrap();
        assert_eq!(idx.value(0, &p("a.x")), None);
        assert_eq!(idx.value(0, &p("a.y")).unwrap().line, 4);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = PositionIndex::parse("a: 1\nb: [x, y\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.to_string().starts_with("line 3, column "), "{err}");
        let err = PositionIndex::parse("a:\n\t- b\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let edit = set_scalar("a: 'x\n", 0, &p("a"), "y").unwrap_err();
        assert!(matches!(edit, EditError::Syntax(_)), "{edit}");
    }

    // ---- edits ----

    #[test]
    fn plain_edit_keeps_everything_else() {
        let src = "# größe 🚀\nspec:\n  weight: 10   # canary ünïcode\n  other: 5\n";
        assert_eq!(
            edit(src, "spec.weight", "20"),
            "# größe 🚀\nspec:\n  weight: 20   # canary ünïcode\n  other: 5\n"
        );
    }

    #[test]
    fn crlf_and_missing_final_newline_survive() {
        let src = "a: 1\r\nb:\r\n  - x # c\r\n  - y";
        assert_eq!(edit(src, "b[1]", "zz"), "a: 1\r\nb:\r\n  - x # c\r\n  - zz");
        assert_eq!(edit(src, "b[0]", "w"), "a: 1\r\nb:\r\n  - w # c\r\n  - y");
        assert_eq!(edit(src, "a", "ö"), "a: ö\r\nb:\r\n  - x # c\r\n  - y");
    }

    #[test]
    fn flow_collections() {
        let src = "m: {a: 1, b: [x, y]}\n";
        assert_eq!(edit(src, "m.a", "2"), "m: {a: 2, b: [x, y]}\n");
        assert_eq!(edit(src, "m.b[1]", "zed"), "m: {a: 1, b: [x, zed]}\n");
        // Flow indicators in a new plain value inside flow collections need quotes.
        assert_eq!(edit(src, "m.b[0]", "p,q"), "m: {a: 1, b: [\"p,q\", y]}\n");
        assert_eq!(edit(src, "m.b[0]", "a:b"), "m: {a: 1, b: [\"a:b\", y]}\n");
        assert_eq!(edit("[a,b]", "[0]", "c"), "[c,b]");
    }

    #[test]
    fn quoted_keys_and_values_keep_their_quotes() {
        let src = "\"spec\":\n  'image': 'nginx:1.2' # pinned\n  tag: \"v1\"\n";
        assert_eq!(
            edit(src, "spec.image", "it's"),
            "\"spec\":\n  'image': 'it''s' # pinned\n  tag: \"v1\"\n"
        );
        assert_eq!(
            edit(src, "spec.tag", "say \"hi\" \\ \t"),
            "\"spec\":\n  'image': 'nginx:1.2' # pinned\n  tag: \"say \\\"hi\\\" \\\\ \\t\"\n"
        );
        let escaped = "a: \"x\\\"y\\\\\" # c\nb: 'it''s'\n";
        assert_eq!(edit(escaped, "a", "z"), "a: \"z\" # c\nb: 'it''s'\n");
        assert_eq!(edit(escaped, "b", "q"), "a: \"x\\\"y\\\\\" # c\nb: 'q'\n");
    }

    #[test]
    fn single_quotes_switch_to_double_for_control_characters() {
        assert_eq!(edit("a: 'x'\n", "a", "l1\nl2"), "a: \"l1\\nl2\"\n");
        assert_eq!(
            edit("a: 'x'\n", "a", "\u{7f}\u{85}\u{2028}\u{feff}"),
            "a: \"\\x7F\\N\\L\\uFEFF\"\n"
        );
    }

    #[test]
    fn plain_values_get_double_quotes_when_unsafe() {
        let cases = [
            ("", "\"\""),
            ("a: b", "\"a: b\""),
            ("x #y", "\"x #y\""),
            ("- x", "\"- x\""),
            ("-", "\"-\""),
            ("*ref", "\"*ref\""),
            ("&a", "\"&a\""),
            ("!t", "\"!t\""),
            ("'q", "\"'q\""),
            ("\"q", "\"\\\"q\""),
            ("{x}", "\"{x}\""),
            ("[x]", "\"[x]\""),
            ("|", "\"|\""),
            (" pad", "\" pad\""),
            ("pad ", "\"pad \""),
            ("end:", "\"end:\""),
            ("--- x", "\"--- x\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("tab\there", "\"tab\\there\""),
            ("%x", "\"%x\""),
            ("@x", "\"@x\""),
        ];
        for (value, written) in cases {
            assert_eq!(
                edit("k: old # c\n", "k", value),
                format!("k: {written} # c\n"),
                "{value:?}"
            );
        }
        // These are fine plain.
        for value in ["-x", "a:b", "http://x/y#z", "größe 🚀", "a, b", "x-1.2"] {
            assert_eq!(
                edit("k: old # c\n", "k", value),
                format!("k: {value} # c\n"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn plain_strings_stay_strings_and_numbers_stay_numbers() {
        // The old value read as a string: keep it a string.
        for value in [
            "1.3",
            "30",
            "true",
            "on",
            "no",
            "null",
            "~",
            "0x1F",
            "1e3",
            "2024-01-02",
            "1:30",
            ".inf",
        ] {
            assert_eq!(
                edit("tag: v1.2\n", "tag", value),
                format!("tag: \"{value}\"\n"),
                "{value:?}"
            );
        }
        assert_eq!(edit("tag: v1.2\n", "tag", "1.2.4"), "tag: 1.2.4\n");
        assert_eq!(edit("tag: v1.2\n", "tag", "v1.3"), "tag: v1.3\n");
        // The old value read as a number or boolean: the caller decides.
        assert_eq!(edit("weight: 10\n", "weight", "20"), "weight: 20\n");
        assert_eq!(edit("weight: 10\n", "weight", "2.5"), "weight: 2.5\n");
        assert_eq!(edit("on: false\n", "on", "true"), "on: true\n");
        assert_eq!(edit("weight: 10\n", "weight", "ten"), "weight: ten\n");
        // A tag decides the type, so the text can stay plain.
        assert_eq!(edit("tag: !!str v1\n", "tag", "2"), "tag: !!str 2\n");
    }

    #[test]
    fn multi_document_streams() {
        let src = "a: 1\n---\na: 1 # second\n---\n- a: 1\n";
        assert_eq!(
            set_scalar(src, 1, &p("a"), "2").unwrap(),
            "a: 1\n---\na: 2 # second\n---\n- a: 1\n"
        );
        assert_eq!(
            set_scalar(src, 2, &p("[0].a"), "3").unwrap(),
            "a: 1\n---\na: 1 # second\n---\n- a: 3\n"
        );
        assert_eq!(
            set_scalar(src, 3, &p("a"), "2"),
            Err(EditError::NoSuchDocument {
                doc: 3,
                documents: 3
            })
        );
        assert_eq!(set_scalar("--- old\n", 0, &[], "new").unwrap(), "--- new\n");
        assert_eq!(set_scalar("'old'", 0, &[], "new").unwrap(), "'new'");
    }

    #[test]
    fn realistic_manifests() {
        let canary = "\
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo   # the app
spec:
  analysis:
    interval: 1m
    stepWeights: [10, 20, 30]
    metrics:
    - name: request-success-rate
      thresholdRange:
        min: 99
      interval: 1m
";
        let out = edit(canary, "spec.analysis.stepWeights[2]", "50");
        assert_eq!(out, canary.replace("[10, 20, 30]", "[10, 20, 50]"));
        let out = edit(
            canary,
            "spec.analysis.metrics[0].thresholdRange.min",
            "98.5",
        );
        assert_eq!(out, canary.replace("min: 99", "min: 98.5"));
        let out = edit(canary, "metadata.name", "podinfo-v2");
        assert_eq!(out, canary.replace("name: podinfo ", "name: podinfo-v2 "));

        let kustomization =
            "resources:\r\n  - deploy.yaml\r\nimages:\r\n  - name: ghcr.io/x/app\r\n    \
                             newTag: v1.4.0 # pinned\r\n";
        let out = edit(kustomization, "images[0].newTag", "1.5.0");
        assert_eq!(out, kustomization.replace("v1.4.0", "1.5.0"));
        let out = edit(kustomization, "images[0].newTag", "1.5");
        assert_eq!(out, kustomization.replace("v1.4.0", "\"1.5\""));
    }

    #[test]
    fn other_layouts() {
        // Indentless sequence, tab before a comment, a document end marker.
        let src = "a:\n- x\t# c\n- y\n...\n---\nb: 1\n";
        assert_eq!(
            edit(src, "a[0]", "z"),
            "a:\n- z\t# c\n- y\n...\n---\nb: 1\n"
        );
        // A flow mapping over several lines.
        let src = "m: {\n  a: 1,\n  b: two\n}\n";
        assert_eq!(edit(src, "m.b", "three"), "m: {\n  a: 1,\n  b: three\n}\n");
        assert_eq!(edit(src, "m.a", "x y"), "m: {\n  a: x y,\n  b: two\n}\n");
        // A complex key is skipped; its neighbours stay addressable.
        let src = "? [a, b]\n: v\nc: 1\n";
        assert_eq!(edit(src, "c", "2"), "? [a, b]\n: v\nc: 2\n");
        assert_eq!(PositionIndex::parse(src).unwrap().value(0, &p("a")), None);
        // Values inside a sequence item's compact mapping.
        let src = "- name: a\n  image: 'x:1'\n";
        assert_eq!(edit(src, "[0].image", "x:2"), "- name: a\n  image: 'x:2'\n");
    }

    #[test]
    fn the_check_rejects_results_that_change_other_values() {
        let src = "a: 1\nb: [x, y]\n";
        let idx = PositionIndex::parse(src).unwrap();
        let a = p("a");
        assert_eq!(
            verify(&idx, "a: 2\nb: [x, y]\n", 0, &a, "2", Style::Plain),
            Ok(())
        );
        assert!(verify(&idx, "a: 2\nb: [x, z]\n", 0, &a, "2", Style::Plain).is_err());
        assert!(verify(&idx, "a: '2'\nb: [x, y]\n", 0, &a, "2", Style::Plain).is_err());
        assert!(verify(&idx, "a: 2\nb: [x, y, z]\n", 0, &a, "2", Style::Plain).is_err());
        assert!(verify(&idx, "a: 2\nb: [x, y]\n---\n", 0, &a, "2", Style::Plain).is_err());
        assert!(verify(&idx, "a: [2\n", 0, &a, "2", Style::Plain).is_err());
    }

    #[test]
    fn wide_and_deep_input_is_indexed() {
        let depth = 100;
        let src = format!(
            "{}{}{}",
            "[".repeat(depth),
            vec!["a"; 20_000].join(","),
            "]".repeat(depth)
        );
        let idx = PositionIndex::parse(&src).unwrap();
        let mut at = vec![Seg::Index(0); depth - 1];
        at.push(Seg::Index(19_999));
        assert_eq!(idx.value(0, &at).unwrap().byte, src.len() - depth - 1);
        assert!(PositionIndex::parse(&"[".repeat(100_000)).is_err());
    }

    #[test]
    fn bom_is_kept() {
        assert_eq!(edit("\u{feff}a: 1\n", "a", "2"), "\u{feff}a: 2\n");
    }

    #[test]
    fn anchors_elsewhere_do_not_block_edits() {
        let src = "base: &b {x: 1}\nuse: *b\nother: 5\nfree: &f {y: 1}\n";
        assert_eq!(
            edit(src, "other", "6"),
            "base: &b {x: 1}\nuse: *b\nother: 6\nfree: &f {y: 1}\n"
        );
        // An anchor nothing refers to does not matter for values inside it.
        assert_eq!(
            edit(src, "free.y", "2"),
            "base: &b {x: 1}\nuse: *b\nother: 5\nfree: &f {y: 2}\n"
        );
    }

    #[test]
    fn refusals_name_the_reason() {
        assert!(refusal("a: |\n  x\n", "a").contains("block scalar"));
        assert!(refusal("a: >-\n  x\n", "a").contains("block scalar"));
        assert!(refusal("a: x\n  y\n", "a").contains("several lines"));
        assert!(refusal("a: 'x\n  y'\n", "a").contains("several lines"));
        assert!(refusal("a: \"x\\\n  y\"\n", "a").contains("several lines"));
        assert!(refusal("a: \"x\n  y\"\n", "a").contains("several lines"));
        assert!(refusal("a: &x 1\nb: *x\n", "a").contains("anchor"));
        assert!(refusal("a: &x 1\n", "a").contains("anchor"));
        assert!(refusal("a: &x 1\nb: *x\n", "b").contains("alias"));
        assert!(refusal("a: &x {c: 1}\nb: *x\n", "a.c").contains("alias refers to"));
        assert!(refusal("a:\nb: 1\n", "a").contains("empty"));
        assert!(refusal("a: 1\na: 2\n", "a").contains("more than once"));
        assert!(refusal("a: {x: 1}\na: {y: 1}\n", "a.y").contains("more than once"));
    }

    #[test]
    fn errors_name_path_line_and_column() {
        let src = "# größe 🚀\nspec:\n  steps: [1, 2]\n  note: |\n    hi\n";
        let e = set_scalar(src, 0, &p("spec.steps"), "3").unwrap_err();
        assert_eq!(
            e,
            EditError::NotAScalar {
                path: "spec.steps".into(),
                line: 3,
                col: 10
            }
        );
        assert!(
            e.to_string()
                .starts_with("line 3, column 10: `spec.steps` is a mapping or a sequence"),
            "{e}"
        );
        let e = set_scalar(src, 0, &p("spec.note"), "x").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 4, column 9: cannot edit `spec.note`: it is a block scalar"),
            "{e}"
        );
        let e = set_scalar(src, 0, &p("spec.steps[5]"), "x").unwrap_err();
        assert_eq!(
            e,
            EditError::NotFound {
                path: "spec.steps[5]".into()
            }
        );
        assert!(
            e.to_string().contains("`spec.steps[5]` does not exist"),
            "{e}"
        );
        let e = set_scalar("a: [\n", 0, &p("a"), "x").unwrap_err();
        assert!(e.to_string().contains("line 2, column 1"), "{e}");
    }

    #[test]
    fn may_read_as_non_string_examples() {
        for v in [
            "1",
            "-1",
            "+1",
            "1_000",
            "0b101",
            "0o17",
            "0x1f",
            "1.5",
            ".5",
            "1e3",
            "Yes",
            "OFF",
            "NULL",
            "1:2:3",
            "2001-12-14t21:59:43.10-05:00",
            "-.INF",
            ".NaN",
        ] {
            assert!(may_read_as_non_string(v), "{v}");
        }
        for v in ["1.2.3", "v1", "abc", "1-2", "x:1", "0xZZ", "inf-x", "-"] {
            assert!(!may_read_as_non_string(v), "{v}");
        }
    }

    // ---- property tests ----

    /// A generated scalar: its text and how to write it (0 plain, 1 single, 2 double), and
    /// whether a comment goes next to it.
    #[derive(Debug, Clone)]
    struct GScalar {
        text: String,
        style: u8,
        note: bool,
    }

    #[derive(Debug, Clone)]
    enum G {
        Scalar(GScalar),
        Map(Vec<(GScalar, G)>, bool),
        Seq(Vec<G>, bool),
    }

    fn plain_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9._/-]{0,8}",
            "-?[0-9]{1,4}",
            "(true|false|null|~)",
            "v[0-9]\\.[0-9]",
            "[a-zäöü][a-zäöü🚀 ]{0,6}[a-z]",
        ]
    }

    fn quoted_text() -> impl Strategy<Value = String> {
        "[a-z 'äöü\"\\\\#:,{}\\[\\]🚀-]{0,10}"
    }

    fn scalar() -> impl Strategy<Value = GScalar> {
        prop_oneof![
            (plain_text(), any::<bool>()).prop_map(|(text, note)| GScalar {
                text,
                style: 0,
                note
            }),
            (quoted_text(), 1u8..=2, any::<bool>()).prop_map(|(text, style, note)| GScalar {
                text,
                style,
                note
            }),
        ]
    }

    fn key() -> impl Strategy<Value = GScalar> {
        ("[a-z]{1,6}", 0u8..=2, any::<bool>()).prop_map(|(text, style, note)| GScalar {
            text,
            style,
            note,
        })
    }

    fn tree() -> impl Strategy<Value = G> {
        scalar()
            .prop_map(G::Scalar)
            .prop_recursive(4, 40, 5, |inner| {
                prop_oneof![
                    (
                        prop::collection::vec((key(), inner.clone()), 0..5),
                        any::<bool>()
                    )
                        .prop_map(|(entries, flow)| {
                            let mut seen = HashSet::new();
                            let entries = entries
                                .into_iter()
                                .filter(|(k, _)| seen.insert(k.text.clone()))
                                .collect();
                            G::Map(entries, flow)
                        }),
                    (prop::collection::vec(inner, 0..5), any::<bool>())
                        .prop_map(|(items, flow)| G::Seq(items, flow)),
                ]
            })
    }

    fn root() -> impl Strategy<Value = G> {
        tree().prop_filter("collection at the root", |g| !matches!(g, G::Scalar(_)))
    }

    /// Renders generated trees as YAML and records where each value scalar was written.
    struct Writer {
        out: String,
        nl: &'static str,
        doc: usize,
        spans: Vec<(usize, Vec<Seg>, usize, usize, u8)>,
    }

    impl Writer {
        fn scalar(&mut self, s: &GScalar, at: Option<&[Seg]>) {
            let start = self.out.len();
            match s.style {
                0 => self.out.push_str(&s.text),
                1 => self
                    .out
                    .push_str(&format!("'{}'", s.text.replace('\'', "''"))),
                _ => self.out.push_str(&format!(
                    "\"{}\"",
                    s.text.replace('\\', "\\\\").replace('"', "\\\"")
                )),
            }
            if let Some(at) = at {
                self.spans
                    .push((self.doc, at.to_vec(), start, self.out.len(), s.style));
            }
        }

        fn flow(&mut self, g: &G, at: &[Seg]) {
            match g {
                G::Scalar(s) => self.scalar(s, Some(at)),
                G::Map(entries, _) => {
                    self.out.push('{');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        self.scalar(k, None);
                        self.out.push_str(": ");
                        self.flow(v, &child(at, Seg::Key(k.text.clone())));
                    }
                    self.out.push('}');
                }
                G::Seq(items, _) => {
                    self.out.push('[');
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        self.flow(v, &child(at, Seg::Index(i)));
                    }
                    self.out.push(']');
                }
            }
        }

        /// Writes a value after `key:` or `-`.
        fn value(&mut self, g: &G, at: &[Seg], indent: usize) {
            let nl = self.nl;
            match g {
                G::Scalar(s) => {
                    self.out.push(' ');
                    self.scalar(s, Some(at));
                    if s.note {
                        self.out.push_str("   # größe 🚀 ünïcode");
                    }
                    self.out.push_str(nl);
                }
                G::Map(e, flow) if *flow || e.is_empty() => {
                    self.out.push(' ');
                    self.flow(g, at);
                    self.out.push_str(nl);
                }
                G::Seq(e, flow) if *flow || e.is_empty() => {
                    self.out.push(' ');
                    self.flow(g, at);
                    self.out.push_str(nl);
                }
                _ => {
                    self.out.push_str(nl);
                    self.block(g, at, indent + 2);
                }
            }
        }

        fn block(&mut self, g: &G, at: &[Seg], indent: usize) {
            let pad = " ".repeat(indent);
            let nl = self.nl;
            match g {
                G::Map(entries, _) => {
                    for (k, v) in entries {
                        if k.note {
                            self.out.push_str(&format!("{pad}# größe 🚀 notiz{nl}"));
                        }
                        self.out.push_str(&pad);
                        self.scalar(k, None);
                        self.out.push(':');
                        self.value(v, &child(at, Seg::Key(k.text.clone())), indent);
                    }
                }
                G::Seq(items, _) => {
                    for (i, v) in items.iter().enumerate() {
                        self.out.push_str(&pad);
                        self.out.push('-');
                        self.value(v, &child(at, Seg::Index(i)), indent);
                    }
                }
                G::Scalar(s) => self.value(&G::Scalar(s.clone()), at, indent),
            }
        }
    }

    fn render_stream(docs: &[G], crlf: bool, explicit_first: bool, final_newline: bool) -> Writer {
        let mut w = Writer {
            out: String::new(),
            nl: if crlf { "\r\n" } else { "\n" },
            doc: 0,
            spans: Vec::new(),
        };
        for (i, d) in docs.iter().enumerate() {
            w.doc = i;
            if i > 0 || explicit_first {
                w.out.push_str("---");
                w.out.push_str(w.nl);
            }
            match d {
                G::Map(e, flow) if *flow || e.is_empty() => {
                    w.flow(d, &[]);
                    w.out.push_str(w.nl);
                }
                G::Seq(e, flow) if *flow || e.is_empty() => {
                    w.flow(d, &[]);
                    w.out.push_str(w.nl);
                }
                _ => w.block(d, &[], 0),
            }
        }
        if !final_newline {
            while w.out.ends_with(['\r', '\n']) {
                w.out.pop();
            }
        }
        w
    }

    fn new_value() -> impl Strategy<Value = String> {
        prop_oneof![
            plain_text(),
            "[0-9]{1,3}",
            "[0-9]\\.[0-9]",
            "(yes|no|on|off|~|null|true|1e3|0x1F|2024-01-02)",
            "[ a-z:#'\"\\\\\n\t,\\[\\]{}&*!|>%@`?-]{0,8}",
            "\\PC{0,8}",
            any::<String>(),
        ]
    }

    fn get_mut<'a>(mut y: &'a mut Yaml, at: &[Seg]) -> &'a mut Yaml {
        for seg in at {
            y = match (y, seg) {
                (Yaml::Hash(h), Seg::Key(k)) => h
                    .iter_mut()
                    .find(|(key, _)| **key == Yaml::String(k.clone()) || **key == Yaml::from_str(k))
                    .map(|(_, v)| v)
                    .expect("key in tree"),
                (Yaml::Array(a), Seg::Index(i)) => &mut a[*i],
                (other, seg) => panic!("{seg:?} does not apply to {other:?}"),
            };
        }
        y
    }

    /// (line, col) of a byte offset, counted the way Location does.
    fn line_col(src: &str, byte: usize) -> (usize, usize) {
        let before = &src[..byte];
        let line_start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + before.matches('\r').count()
            - before.matches("\r\n").count()
            + 1;
        (line, src[line_start..byte].chars().count() + 1)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn edits_change_only_the_scalar(
            docs in prop::collection::vec(root(), 1..4),
            crlf in any::<bool>(),
            explicit_first in any::<bool>(),
            final_newline in any::<bool>(),
            pick in any::<prop::sample::Index>(),
            value in new_value(),
        ) {
            let w = render_stream(&docs, crlf, explicit_first, final_newline);
            let src = &w.out;
            let idx = PositionIndex::parse(src).unwrap();
            prop_assert_eq!(idx.documents(), docs.len());
            // Every recorded scalar is found where it was written.
            for (doc, at, start, _, _) in &w.spans {
                let (line, col) = line_col(src, *start);
                let expected = Some(Location { line, col, byte: *start });
                prop_assert_eq!(idx.value(*doc, at), expected, "{}", display_path(at));
            }
            if w.spans.is_empty() {
                return Ok(());
            }
            let (doc, at, start, end, style) = pick.get(&w.spans).clone();
            let out = set_scalar(src, doc, &at, &value).unwrap_or_else(|e| panic!("{e}\n{src}"));

            // Every byte outside the scalar is unchanged, and the new text is on one line.
            prop_assert!(out.len() >= src.len() - (end - start));
            prop_assert_eq!(&out[..start], &src[..start]);
            let new_end = out.len() - (src.len() - end);
            prop_assert_eq!(&out[new_end..], &src[end..]);
            let written = &out[start..new_end];
            prop_assert!(!written.contains(['\n', '\r']), "{:?}", written);

            // Quoted stays quoted; a plain string stays a string.
            let quoted = written.starts_with(['\'', '"']);
            if style != 0 {
                prop_assert!(quoted, "{:?}", written);
            }
            let mut expected = YamlLoader::load_from_str(src).unwrap();
            let slot = get_mut(&mut expected[doc], &at);
            if style == 0 && matches!(slot, Yaml::String(_)) && !quoted {
                prop_assert!(matches!(Yaml::from_str(&value), Yaml::String(_)), "{:?}", written);
            }
            *slot = if quoted { Yaml::String(value.clone()) } else { Yaml::from_str(&value) };
            let after = YamlLoader::load_from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
            prop_assert_eq!(after, expected, "{}", out);
        }

        #[test]
        fn parse_never_panics(src in any::<String>()) {
            let _ = PositionIndex::parse(&src);
        }

        #[test]
        fn parse_never_panics_on_yaml_like_text(
            src in "[-:{}\\[\\],#&*!|>'\"%@ \n\r\ta-c0-9?.~\u{feff}é]{0,80}",
        ) {
            if let Ok(idx) = PositionIndex::parse(&src) {
                for doc in 0..=idx.documents() {
                    let _ = idx.locate(doc, &path("a.b[0]"));
                }
            }
            let _ = set_scalar(&src, 0, &path("a"), "x: y");
            let _ = set_scalar(&src, 0, &[], "z");
        }

        #[test]
        fn set_scalar_never_panics(
            src in any::<String>(),
            at in any::<String>(),
            value in any::<String>(),
        ) {
            let _ = set_scalar(&src, 0, &path(&at), &value);
        }

        #[test]
        fn paths_round_trip(segs in prop::collection::vec(prop_oneof![
            "[a-zA-Z0-9_/ü-]{1,6}".prop_map(Seg::Key),
            (0usize..1000).prop_map(Seg::Index),
        ], 0..6)) {
            prop_assert_eq!(path(&display_path(&segs)), segs);
        }
    }
}
