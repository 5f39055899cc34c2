//! weir's `canary-replicas` component as an app's own kustomization sees it: whether the
//! kustomization lists it, the text the primary carries in its place (the same bytes without
//! that entry), and, when it is not listed, the one line to add and where.
//!
//! The app opts in with `components: [../<app>.weir/canary-replicas]`; weir never edits the
//! user's file in a commit. The primary is built from a carried copy of the app's source,
//! where the entry must not be: there the component would put the primary at zero, or fail
//! the build (the relative path does not exist under `primary/source/`). Removing the entry
//! gives back the bytes the file had before it was added, so opting in is not a new revision
//! of the app.
//!
//! Text in, text out: every edit is checked by reading both texts back and comparing them as
//! YAML; an edit that would change anything else is refused, never written.

use crate::core::names::{replicas_component_dir, replicas_component_ref};
use crate::core::positions::{Kind, PositionIndex, Seg, Style};
use crate::repo::source::resolve;
use serde_yaml::Value;

/// Whether an app's kustomization opts in to the replicas component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptIn {
    /// The app's kustomization lists the component.
    Listed {
        /// The kustomization's repository path.
        file: String,
        /// What the primary carries in its place: the same text without the entry.
        carried: String,
    },
    /// The app's kustomization does not list it.
    Missing {
        /// The kustomization's repository path.
        file: String,
        /// Its text, for the edit that would list it ([`OptIn::edit`]), worked out only
        /// when someone asks (validate, plan), not on every tick.
        text: String,
    },
    /// The app folder has no kustomization: Flux builds its files as they are.
    NoKustomization {
        /// The app folder.
        dir: String,
    },
}

/// One line of a kustomization, added or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEdit {
    /// 1-based line number of the changed line, or of the added line once it is added.
    pub line: usize,
    /// The line it replaces; `None` when the line is added.
    pub old: Option<String>,
    /// The line as it reads afterwards.
    pub new: String,
}

/// Whether `reference`, written in the kustomization of `app_dir`, names the app's
/// replicas component (`./`, `..` and a trailing `/` resolved as kustomize resolves them).
pub fn names_component(app_dir: &str, reference: &str) -> bool {
    resolve(app_dir, reference.trim_end_matches('/')).as_deref()
        == Some(replicas_component_dir(app_dir).as_str())
}

/// Whether the kustomization `text` of `app_dir` lists the replicas component.
pub fn lists_component(app_dir: &str, text: &str) -> bool {
    crate::core::yaml::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("components").and_then(Value::as_sequence).cloned())
        .into_iter()
        .flatten()
        .any(|c| c.as_str().is_some_and(|r| names_component(app_dir, r)))
}

/// The kustomization `text` of `app_dir` without its entries of the replicas component,
/// byte for byte otherwise; with the key too when nothing else was listed under it. An
/// error says why it cannot be done (the entry is written in a way weir does not edit).
pub fn without_component(app_dir: &str, text: &str) -> Result<String, String> {
    let refuse = || {
        format!(
            "weir cannot take `{r}` out of this kustomization for the primary, which must not include it; write it on a line of its own, as `components: [{r}]` or as an item `- {r}` of a block list",
            r = replicas_component_ref(app_dir)
        )
    };
    let mut out = text.to_string();
    // One entry at a time; a kustomization lists it once, twice at most by mistake.
    for _ in 0..8 {
        let index = PositionIndex::parse(&out).map_err(|_| refuse())?;
        let Some(range) = removal(app_dir, &out, &index).map_err(|()| refuse())? else {
            break;
        };
        out.replace_range(range, "");
    }
    let expected = semantic(text, |components| {
        components.retain(|c| !c.as_str().is_some_and(|r| names_component(app_dir, r)));
    });
    match (expected, read(&out)) {
        (Some(expected), Some(got)) if expected == got && !lists_component(app_dir, &out) => {
            Ok(out)
        }
        _ => Err(refuse()),
    }
}

/// The byte range to remove for the first entry of the component, if any.
fn removal(
    app_dir: &str,
    text: &str,
    index: &PositionIndex,
) -> Result<Option<std::ops::Range<usize>>, ()> {
    let key = [Seg::Key("components".into())];
    let Some(list) = index.node(0, &key) else {
        return Ok(None);
    };
    let items: Vec<(Location, String, Style, bool)> = (0..list.children.len())
        .filter_map(|i| {
            let n = index.node(0, &[key[0].clone(), Seg::Index(i)])?;
            match &n.kind {
                Kind::Scalar { value, style, .. } => {
                    Some((Location(n.loc.byte), value.clone(), *style, n.in_flow))
                }
                _ => Some((
                    Location(n.loc.byte),
                    String::new(),
                    Style::Literal,
                    n.in_flow,
                )),
            }
        })
        .collect();
    let Some(i) = items
        .iter()
        .position(|(_, value, _, _)| names_component(app_dir, value))
    else {
        return Ok(None);
    };
    let (at, value, style, in_flow) = &items[i];
    let start = at.0;
    let end = start + raw_len(text, start, value, *style)?;
    let key_at = index.key(0, &key).ok_or(())?.byte;
    let only = items.len() == 1;
    if !in_flow {
        // `  - ../backend.weir/canary-replicas  # comment`
        let line = line_start(text, start);
        let before = &text[line..start];
        if before.trim_start().trim_end() != "-"
            || !rest_is_comment(&text[end..line_end(text, end)])
        {
            return Err(());
        }
        if !only {
            return Ok(Some(line..line_end_with_break(text, end)));
        }
        // The only item: the key goes with it.
        let key_line = line_start(text, key_at);
        if !text[key_line..key_at].trim().is_empty()
            || !key_alone(&text[key_at..line_end(text, key_at)])
        {
            return Err(());
        }
        return Ok(Some(key_line..line_end_with_break(text, end)));
    }
    if only {
        // `components: [../backend.weir/canary-replicas]  # comment`, all on one line.
        let key_line = line_start(text, key_at);
        let after = text[end..line_end(text, end)].trim_start();
        let closes = after.strip_prefix(']').is_some_and(rest_is_comment);
        if !text[key_line..key_at].trim().is_empty()
            || line_start(text, start) != key_line
            || !closes
        {
            return Err(());
        }
        return Ok(Some(key_line..line_end_with_break(text, end)));
    }
    if i + 1 < items.len() {
        // The item, its comma and the space up to the next item.
        let next = items[i + 1].0 .0;
        if !text[end..next].trim().eq(",") {
            return Err(());
        }
        return Ok(Some(start..next));
    }
    // The last of several: the comma before it, and the item.
    let before = text[..start].trim_end();
    if !before.ends_with(',') {
        return Err(());
    }
    Ok(Some(before.len() - 1..end))
}

/// A byte offset of the text.
struct Location(usize);

/// The length of a scalar as written at `start`; the component's path is plain text, so a
/// quoted form is the value between its quotes.
fn raw_len(text: &str, start: usize, value: &str, style: Style) -> Result<usize, ()> {
    let written = match style {
        Style::Plain => value.to_string(),
        Style::Double => format!("\"{value}\""),
        Style::Single => format!("'{value}'"),
        Style::Literal | Style::Folded => return Err(()),
    };
    text[start..]
        .starts_with(&written)
        .then_some(written.len())
        .ok_or(())
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i)
}

fn line_end_with_break(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

/// Nothing but spaces and a comment.
fn rest_is_comment(rest: &str) -> bool {
    let rest = rest.trim();
    rest.is_empty() || rest.starts_with('#')
}

/// `components:` with nothing but a comment after it.
fn key_alone(line: &str) -> bool {
    line.strip_prefix("components")
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix(':'))
        .is_some_and(rest_is_comment)
}

/// The kustomization as a value, with `components` edited by `change` (the key dropped when
/// nothing is left under it).
fn semantic(text: &str, change: impl FnOnce(&mut Vec<Value>)) -> Option<Value> {
    let mut v = read(text)?;
    let map = v.as_mapping_mut()?;
    let mut components: Vec<Value> = match map.get("components") {
        Some(Value::Sequence(s)) => s.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return None,
    };
    change(&mut components);
    if components.is_empty() {
        map.remove("components");
    } else {
        map.insert("components".into(), Value::Sequence(components));
    }
    Some(v)
}

fn read(text: &str) -> Option<Value> {
    crate::core::yaml::from_str::<Value>(text).ok()
}

/// The edit that lists the component in the kustomization `text` of `app_dir`: a line added
/// at the end, an item added to a block list, or the line of a one-line list changed. `None`
/// when the list is written in a way weir does not edit line by line.
pub fn addition(app_dir: &str, text: &str) -> Option<LineEdit> {
    let r = replicas_component_ref(app_dir);
    let index = PositionIndex::parse(text).ok()?;
    let key = [Seg::Key("components".into())];
    let lines: Vec<&str> = text.lines().collect();
    let edit = match index.node(0, &key) {
        None => LineEdit {
            line: lines.len() + 1,
            old: None,
            new: format!("components: [{r}]"),
        },
        Some(list) => {
            let key_loc = index.key(0, &key)?;
            let key_line = *lines.get(key_loc.line - 1)?;
            match &list.kind {
                Kind::Scalar { value, .. }
                    if matches!(value.as_str(), "" | "~" | "null") && key_loc.col == 1 =>
                {
                    let comment = key_line.find(" #").map_or("", |i| &key_line[i..]);
                    LineEdit {
                        line: key_loc.line,
                        old: Some(key_line.to_string()),
                        new: format!("components: [{r}]{comment}"),
                    }
                }
                Kind::Sequence if list.children.is_empty() => {
                    let old = key_line.to_string();
                    if old.matches("[]").count() != 1 {
                        return None;
                    }
                    LineEdit {
                        line: key_loc.line,
                        new: old.replacen("[]", &format!("[{r}]"), 1),
                        old: Some(old),
                    }
                }
                Kind::Sequence => {
                    let last =
                        index.node(0, &[key[0].clone(), Seg::Index(list.children.len() - 1)])?;
                    let Kind::Scalar { value, style, .. } = &last.kind else {
                        return None;
                    };
                    let end = last.loc.byte + raw_len(text, last.loc.byte, value, *style).ok()?;
                    let line = *lines.get(last.loc.line - 1)?;
                    let start = line_start(text, last.loc.byte);
                    if last.in_flow {
                        // `components: [a, b]` on one line: `, <ref>` after the last item.
                        if last.loc.line != key_loc.line {
                            return None;
                        }
                        let at = end - start;
                        let new = format!("{}, {r}{}", &line[..at], &line[at..]);
                        LineEdit {
                            line: key_loc.line,
                            old: Some(line.to_string()),
                            new,
                        }
                    } else {
                        let indent = &text[start..last.loc.byte];
                        let dash = indent.find('-')?;
                        LineEdit {
                            line: last.loc.line + 1,
                            old: None,
                            new: format!("{}- {r}", &indent[..dash]),
                        }
                    }
                }
                _ => return None,
            }
        }
    };
    // The edit must list the component and change nothing else.
    let edited = apply(text, &edit);
    let expected = semantic(text, |c| c.push(Value::String(r.clone())));
    (expected.is_some() && expected == read(&edited)).then_some(edit)
}

/// `text` with `edit` applied.
pub fn apply(text: &str, edit: &LineEdit) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    match &edit.old {
        Some(_) => lines[edit.line - 1] = &edit.new,
        None => lines.insert(edit.line - 1, &edit.new),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

impl LineEdit {
    /// The edit as a unified diff of `file` (whose text is `text`), with a line of context
    /// or two on each side.
    pub fn diff(&self, file: &str, text: &str) -> String {
        let lines: Vec<&str> = text.lines().collect();
        let at = self.line - 1;
        let from = at.saturating_sub(2);
        let after_old = if self.old.is_some() { at + 1 } else { at };
        let to = (after_old + 2).min(lines.len());
        let mut hunk = Vec::new();
        for l in &lines[from..at] {
            hunk.push(format!(" {l}"));
        }
        if let Some(old) = &self.old {
            hunk.push(format!("-{old}"));
        }
        hunk.push(format!("+{}", self.new));
        for l in &lines[after_old..to] {
            hunk.push(format!(" {l}"));
        }
        let old_len = to - from;
        let new_len = old_len + usize::from(self.old.is_none());
        // An empty range starts one line earlier, as diff writes it.
        let old_start = if old_len == 0 { from } else { from + 1 };
        format!(
            "--- a/{file}\n+++ b/{file}\n@@ -{old_start},{old_len} +{},{new_len} @@\n{}\n",
            from + 1,
            hunk.join("\n")
        )
    }
}

impl OptIn {
    /// What to tell a person whose app does not opt in: where, and the line to add or the
    /// line to change. `None` when it does.
    pub fn advice(&self) -> Option<String> {
        let why = "without weir's canary-replicas component, the canary Deployment keeps running between releases, a rolled-back build included (Flagger scales it to zero)";
        let reference = self.reference();
        match (self, self.edit()) {
            (OptIn::Listed { .. }, _) => None,
            (OptIn::Missing { text, .. }, Some(e)) => Some(match &e.old {
                None if e.line > text.lines().count() => format!(
                    "{why}; add this line at the end of the file: `{}`",
                    e.new
                ),
                None => format!(
                    "{why}; add this line as line {} (under `components:`): `{}`",
                    e.line,
                    e.new.trim_start()
                ),
                Some(_) => format!("{why}; change line {} to: `{}`", e.line, e.new),
            }),
            (OptIn::Missing { .. }, None) => Some(format!(
                "{why}; add `{reference}` to the list under `components:`"
            )),
            (OptIn::NoKustomization { .. }, _) => Some(format!(
                "{why}; the app folder has no kustomization (Flux builds its files as they are): add a kustomization.yaml that lists the app's files and the line `components: [{reference}]`"
            )),
        }
    }

    /// The kustomization's path (the one to create, for a folder without one).
    pub fn file(&self) -> String {
        match self {
            OptIn::Listed { file, .. } | OptIn::Missing { file, .. } => file.clone(),
            OptIn::NoKustomization { dir } => crate::repo::source::join(dir, "kustomization.yaml"),
        }
    }

    /// The edit of the app's kustomization that lists the component, when it does not and
    /// weir can say it line by line.
    pub fn edit(&self) -> Option<LineEdit> {
        match self {
            OptIn::Missing { file, text } => addition(crate::repo::source::parent(file), text),
            _ => None,
        }
    }

    /// The line weir's advice is about (1 when there is no better one).
    pub fn line(&self) -> usize {
        self.edit().map_or(1, |e| e.line)
    }

    fn reference(&self) -> String {
        let file = self.file();
        replicas_component_ref(crate::repo::source::parent(&file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "apps/backend";
    const BASE: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml # the app\n";

    #[test]
    fn references_to_the_component_are_recognised_however_written() {
        for r in [
            "../backend.weir/canary-replicas",
            "../backend.weir/canary-replicas/",
            "./../backend.weir/./canary-replicas",
            "../../apps/backend.weir/canary-replicas",
        ] {
            assert!(names_component(APP, r), "{r}");
        }
        for r in [
            "../backend.weir",
            "../frontend.weir/canary-replicas",
            "backend.weir/canary-replicas",
            "../backend.weir/canary-replicas-x",
        ] {
            assert!(!names_component(APP, r), "{r}");
        }
    }

    #[test]
    fn the_primary_gets_back_the_bytes_from_before_the_line_was_added() {
        let r = "../backend.weir/canary-replicas";
        let other = "../../components/labels";
        // (case, the kustomization with the component, what the primary carries)
        let cases = [
            (
                "one line, flow style",
                format!("{BASE}components: [{r}]\n"),
                BASE.to_string(),
            ),
            (
                "one line with a comment, in the middle of the file",
                format!("apiVersion: v1beta1\ncomponents: [\"{r}/\"]  # canary at zero\nresources: [a.yaml]\n"),
                "apiVersion: v1beta1\nresources: [a.yaml]\n".to_string(),
            ),
            (
                "the only item of a block list",
                format!("{BASE}components:\n  - {r}\n"),
                BASE.to_string(),
            ),
            (
                "one item of a block list",
                format!("{BASE}components:\n  - {other}\n  - '{r}' # weir\n  - ./more\n"),
                format!("{BASE}components:\n  - {other}\n  - ./more\n"),
            ),
            (
                "first of a flow list",
                format!("{BASE}components: [{r}, {other}]\n"),
                format!("{BASE}components: [{other}]\n"),
            ),
            (
                "last of a flow list",
                format!("{BASE}components: [{other},  {r}]\n"),
                format!("{BASE}components: [{other}]\n"),
            ),
            (
                "listed twice",
                format!("{BASE}components:\n  - {r}\n  - ./{r}\n"),
                BASE.to_string(),
            ),
            (
                "a file without a final line break",
                format!("{BASE}components: [{r}]"),
                BASE.to_string(),
            ),
        ];
        for (case, with, carried) in cases {
            assert!(lists_component(APP, &with), "{case}");
            assert_eq!(
                without_component(APP, &with).as_deref(),
                Ok(carried.as_str()),
                "{case}"
            );
        }
    }

    #[test]
    fn an_entry_weir_cannot_take_out_exactly_is_refused() {
        let r = "../backend.weir/canary-replicas";
        for (case, with) in [
            (
                "a flow list over several lines",
                format!("{BASE}components: [\n  {r}\n]\n"),
            ),
            (
                "a block scalar",
                format!("{BASE}components:\n  - >-\n    {r}\n"),
            ),
        ] {
            let e = without_component(APP, &with).unwrap_err();
            assert!(e.contains(&format!("`components: [{r}]`")), "{case}: {e}");
        }
        // Not listed: nothing to take out.
        assert_eq!(without_component(APP, BASE).as_deref(), Ok(BASE));
    }

    #[test]
    fn the_line_to_add_lists_the_component_and_changes_nothing_else() {
        let r = "../backend.weir/canary-replicas";
        // (case, kustomization, edit)
        let cases = [
            (
                "no components: a line at the end",
                BASE.to_string(),
                LineEdit {
                    line: 5,
                    old: None,
                    new: format!("components: [{r}]"),
                },
            ),
            (
                "a block list: an item after the last",
                "components:\n    - ../x\nresources: [a.yaml]\n".to_string(),
                LineEdit {
                    line: 3,
                    old: None,
                    new: format!("    - {r}"),
                },
            ),
            (
                "a one-line list: the line changed",
                format!("{BASE}components: [../x] # shared\n"),
                LineEdit {
                    line: 5,
                    old: Some("components: [../x] # shared".into()),
                    new: format!("components: [../x, {r}] # shared"),
                },
            ),
            (
                "an empty list",
                format!("{BASE}components: []\n"),
                LineEdit {
                    line: 5,
                    old: Some("components: []".into()),
                    new: format!("components: [{r}]"),
                },
            ),
            (
                "a key with no value",
                format!("{BASE}components:\n"),
                LineEdit {
                    line: 5,
                    old: Some("components:".into()),
                    new: format!("components: [{r}]"),
                },
            ),
        ];
        for (case, text, expected) in cases {
            let edit = addition(APP, &text).unwrap_or_else(|| panic!("{case}"));
            assert_eq!(edit, expected, "{case}");
            let edited = apply(&text, &edit);
            assert!(lists_component(APP, &edited), "{case}");
            // Taking it out again for the primary gives back what the person wrote.
            if edit.old.is_none() {
                assert_eq!(
                    without_component(APP, &edited).as_deref(),
                    Ok(text.as_str()),
                    "{case}"
                );
            }
        }
        // A list over several lines: no line to show, only advice.
        assert_eq!(addition(APP, "components: [\n  ../x\n]\n"), None);
    }

    #[test]
    fn the_diff_shows_the_line_in_its_place() {
        let text = "a: 1\nb: 2\nc: 3\n";
        let added = LineEdit {
            line: 4,
            old: None,
            new: "components: [../x.weir/canary-replicas]".into(),
        };
        assert_eq!(
            added.diff("apps/x/kustomization.yaml", text),
            "--- a/apps/x/kustomization.yaml\n+++ b/apps/x/kustomization.yaml\n@@ -2,2 +2,3 @@\n b: 2\n c: 3\n+components: [../x.weir/canary-replicas]\n"
        );
        let changed = LineEdit {
            line: 2,
            old: Some("b: 2".into()),
            new: "b: [2]".into(),
        };
        assert_eq!(
            changed.diff("k.yaml", text),
            "--- a/k.yaml\n+++ b/k.yaml\n@@ -1,3 +1,3 @@\n a: 1\n-b: 2\n+b: [2]\n c: 3\n"
        );
    }
}
