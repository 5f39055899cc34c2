//! Source positions for the nodes of YAML files that users own.
//!
//! A [`PositionIndex`] maps every addressable node of every document in a YAML stream to its
//! line, column and byte offset, so a bad field can be blamed precisely (file, line, column,
//! field). Paths address nodes by mapping key (the key's scalar value, whatever its quoting)
//! and by sequence index; [`path`] parses `spec.analysis.metrics[0]` and [`display_path`]
//! writes it back. Nodes under non-scalar keys cannot be addressed, and values pulled in
//! through merge keys (`<<`) or aliases are addressed only where they are written. It does no
//! I/O. The test-only editor that changes one scalar byte-exactly is built on it
//! (`test_support::yaml_editor`).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// The value of the mapping key with this scalar value.
    Key(String),
    /// The item of a sequence at this 0-based index.
    Index(usize),
}

/// Where a node starts in the source. line and col are 1-based (col counts characters), byte is
/// the byte offset of the node's first byte (for a quoted scalar: the opening quote).
///
/// A byte-order mark at the start of the file is not counted as a column but is counted in
/// `byte`, which is always an offset into the string that was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// Byte offset of the node's first byte in the source.
    pub byte: usize,
}

/// A syntax error with its position.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("line {line}, column {col}: {message}")]
pub struct SyntaxError {
    /// 1-based line of the error.
    pub line: usize,
    /// 1-based column (in characters) of the error.
    pub col: usize,
    /// What the YAML parser found wrong.
    pub message: String,
}

/// How a scalar is written in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    Single,
    Double,
    Literal,
    Folded,
}

impl From<TScalarStyle> for Style {
    fn from(style: TScalarStyle) -> Style {
        match style {
            TScalarStyle::Plain => Style::Plain,
            TScalarStyle::SingleQuoted => Style::Single,
            TScalarStyle::DoubleQuoted => Style::Double,
            TScalarStyle::Literal => Style::Literal,
            TScalarStyle::Folded => Style::Folded,
        }
    }
}

/// What sits at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Scalar {
        value: String,
        style: Style,
        tagged: bool,
    },
    Mapping,
    Sequence,
    Alias,
}

#[derive(Debug, Clone)]
#[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
pub(crate) struct Node {
    pub(crate) loc: Location,
    pub(crate) key: Option<Location>,
    pub(crate) kind: Kind,
    /// yaml-rust2's anchor id, 0 when the node has no anchor.
    pub(crate) anchor: usize,
    /// Whether the node is written inside a flow collection (`{...}` or `[...]`).
    pub(crate) in_flow: bool,
    /// Whether its key appears more than once in its mapping (this is the last occurrence).
    pub(crate) duplicated: bool,
    /// Addressable children, by scalar key or by index, as ids into [`Document::nodes`].
    pub(crate) children: HashMap<Seg, usize>,
}

#[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
impl Node {
    /// The parts of a node that an edit elsewhere must not change (positions may shift).
    pub(crate) fn same_shape(&self, other: &Node) -> bool {
        self.kind == other.kind
            && self.anchor == other.anchor
            && self.in_flow == other.in_flow
            && self.key.is_some() == other.key.is_some()
            && self.duplicated == other.duplicated
            && self.children.len() == other.children.len()
    }
}

#[derive(Debug, Clone)]
#[cfg_attr(not(any(test, feature = "test-support")), allow(dead_code))]
pub(crate) struct Document {
    pub(crate) start: Location,
    /// Every addressable node; the root is at 0. A tree of ids rather than a map from full
    /// paths, so memory stays linear in the size of the input however deep it nests.
    pub(crate) nodes: Vec<Node>,
    /// Anchor ids that some alias refers to.
    pub(crate) aliased: HashSet<usize>,
}

impl Document {
    /// Ids of the nodes along `path`, the root first, as far as they exist.
    pub(crate) fn trail(&self, path: &[Seg]) -> Vec<usize> {
        let mut ids = Vec::with_capacity(path.len() + 1);
        if self.nodes.is_empty() {
            return ids;
        }
        ids.push(0);
        let mut id = 0;
        for seg in path {
            match self.nodes[id].children.get(seg) {
                Some(&next) => id = next,
                None => break,
            }
            ids.push(id);
        }
        ids
    }

    pub(crate) fn find(&self, path: &[Seg]) -> Option<&Node> {
        let trail = self.trail(path);
        (trail.len() == path.len() + 1).then(|| &self.nodes[trail[path.len()]])
    }
}

/// Position of every node (and every mapping key) of every document in a YAML stream.
#[derive(Debug, Clone)]
pub struct PositionIndex {
    pub(crate) docs: Vec<Document>,
}

const START: Location = Location {
    line: 1,
    col: 1,
    byte: 0,
};

impl PositionIndex {
    /// Parse a YAML stream and record where each node starts.
    ///
    /// # Errors
    /// A [`SyntaxError`] with the parser's message and position when the stream is not valid
    /// YAML.
    pub fn parse(src: &str) -> Result<PositionIndex, SyntaxError> {
        // yaml-rust2 keeps a leading byte-order mark as part of the first key, so parse after it.
        let (base, body) = match src.strip_prefix('\u{feff}') {
            Some(rest) => ('\u{feff}'.len_utf8(), rest),
            None => (0, src),
        };
        let mut lines = Lines::new(body, base);
        let mut parser = Parser::new_from_str(body);
        let mut docs = Vec::new();
        let mut current: Option<DocBuilder> = None;
        loop {
            let (event, mark) = parser.next_token().map_err(|e| syntax_error(&e))?;
            let loc = lines.location(mark);
            match event {
                Event::StreamEnd => break,
                Event::StreamStart | Event::Nothing => {}
                Event::DocumentStart => {
                    if let Some(done) = current.take() {
                        docs.push(done.finish());
                    }
                    let explicit = lines.text_at(loc).starts_with("---");
                    current = Some(DocBuilder::new(loc, explicit));
                }
                Event::DocumentEnd => {
                    if let Some(done) = current.take() {
                        docs.push(done.finish());
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    if let Some(doc) = current.as_mut() {
                        doc.stack.pop();
                    }
                }
                Event::Scalar(value, style, anchor, tag) => {
                    let kind = Kind::Scalar {
                        value,
                        style: style.into(),
                        tagged: tag.is_some(),
                    };
                    doc_for(&mut current, loc).node(kind, anchor, loc, &lines);
                }
                Event::Alias(id) => {
                    let doc = doc_for(&mut current, loc);
                    doc.aliased.insert(id);
                    doc.node(Kind::Alias, 0, loc, &lines);
                }
                Event::MappingStart(anchor, _) => {
                    doc_for(&mut current, loc).node(Kind::Mapping, anchor, loc, &lines);
                }
                Event::SequenceStart(anchor, _) => {
                    doc_for(&mut current, loc).node(Kind::Sequence, anchor, loc, &lines);
                }
            }
        }
        if let Some(done) = current.take() {
            docs.push(done.finish());
        }
        Ok(PositionIndex { docs })
    }

    /// Number of documents in the stream (a stream of only comments/whitespace has 0).
    pub fn documents(&self) -> usize {
        self.docs.len()
    }

    /// Location of the value node at `path` in document `doc` (0-based).
    ///
    /// For an empty value (`key:` with nothing after it) this is the key's location, for an
    /// empty sequence item the sequence's, because an absent node has no text of its own.
    pub fn value(&self, doc: usize, path: &[Seg]) -> Option<Location> {
        self.node(doc, path).map(|n| n.loc)
    }

    /// Location of the mapping key whose value is at `path` (None for sequence items / root).
    pub fn key(&self, doc: usize, path: &[Seg]) -> Option<Location> {
        self.node(doc, path).and_then(|n| n.key)
    }

    /// Best location to blame for `path`: the value if present, else the nearest existing
    /// ancestor's value (falls back to the document start, then line 1 col 1).
    pub fn locate(&self, doc: usize, path: &[Seg]) -> Location {
        let Some(d) = self.docs.get(doc) else {
            return START;
        };
        d.trail(path).last().map_or(d.start, |&id| d.nodes[id].loc)
    }

    pub(crate) fn node(&self, doc: usize, path: &[Seg]) -> Option<&Node> {
        self.docs.get(doc)?.find(path)
    }
}

fn syntax_error(e: &ScanError) -> SyntaxError {
    SyntaxError {
        line: e.marker().line().max(1),
        col: e.marker().col() + 1,
        message: e.info().to_owned(),
    }
}

fn doc_for(current: &mut Option<DocBuilder>, loc: Location) -> &mut DocBuilder {
    // The parser always starts a document before its first node; this only guards that.
    current.get_or_insert_with(|| DocBuilder::new(loc, false))
}

/// Line starts of the parsed text, to turn yaml-rust2's (line, character column) markers into
/// byte offsets. Its `Marker::index` counts characters and drifts, so it is not used.
pub(crate) struct Lines<'a> {
    pub(crate) body: &'a str,
    /// Bytes skipped before `body` (a byte-order mark).
    pub(crate) base: usize,
    pub(crate) starts: Vec<usize>,
    /// The last position found, as (line, 0-based character column, byte in `body`): markers
    /// mostly arrive in source order, so stepping on from it keeps long lines linear.
    pub(crate) cursor: (usize, usize, usize),
}

impl<'a> Lines<'a> {
    pub(crate) fn new(body: &'a str, base: usize) -> Lines<'a> {
        // Same line breaks as yaml-rust2's scanner: "\r\n", "\r" and "\n".
        let bytes = body.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 1;
                }
                b'\r' | b'\n' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        Lines {
            body,
            base,
            starts,
            cursor: (1, 0, 0),
        }
    }

    pub(crate) fn location(&mut self, mark: Marker) -> Location {
        let line = mark.line().max(1);
        let col0 = mark.col();
        let (mut from_col, mut from) = (0, self.starts[(line - 1).min(self.starts.len() - 1)]);
        let (cursor_line, cursor_col, cursor_byte) = self.cursor;
        if cursor_line == line && cursor_col <= col0 {
            (from_col, from) = (cursor_col, cursor_byte);
        }
        let mut byte = self.body.len();
        for (n, (off, c)) in self.body[from..].char_indices().enumerate() {
            if from_col + n == col0 || c == '\n' || c == '\r' {
                byte = from + off;
                break;
            }
        }
        // Only an exact hit is a safe place to resume from.
        if self.body[byte..]
            .chars()
            .next()
            .is_some_and(|c| c != '\n' && c != '\r')
        {
            self.cursor = (line, col0, byte);
        }
        Location {
            line,
            col: col0 + 1,
            byte: self.base + byte,
        }
    }

    /// yaml-rust2 marks a block scalar at its first content line; find its `|` or `>` header,
    /// the first indicator on the nearest non-blank line above that only a chomping or
    /// indentation indicator and a comment follow.
    pub(crate) fn block_scalar_header(&self, content: Location) -> Option<Location> {
        let mut line = content.line.min(self.starts.len());
        loop {
            line = line.checked_sub(1).filter(|&l| l > 0)?;
            let start = self.starts[line - 1];
            let end = self.starts.get(line).copied().unwrap_or(self.body.len());
            let text = self.body[start..end].trim_end_matches(['\r', '\n']);
            if text.trim().is_empty() {
                continue;
            }
            let mut prev = ' ';
            for (col0, (off, c)) in text.char_indices().enumerate() {
                if matches!(c, '|' | '>')
                    && matches!(prev, ' ' | '\t')
                    && header_rest(&text[off + 1..])
                {
                    return Some(Location {
                        line,
                        col: col0 + 1,
                        byte: self.base + start + off,
                    });
                }
                prev = c;
            }
            return None;
        }
    }

    pub(crate) fn text_at(&self, loc: Location) -> &str {
        self.body.get(loc.byte - self.base..).unwrap_or("")
    }
}

/// Whether `rest` can follow a block scalar indicator on its header line.
fn header_rest(rest: &str) -> bool {
    let flags = rest
        .find(|c: char| !matches!(c, '-' | '+' | '1'..='9'))
        .unwrap_or(rest.len());
    let after = &rest[flags..];
    let trimmed = after.trim_start_matches([' ', '\t']);
    flags <= 2 && (trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < after.len()))
}

enum Pending {
    Key,
    /// The key just read: its scalar value (None when it cannot be addressed) and location.
    Value(Option<String>, Location),
}

enum Frame {
    Map {
        /// The mapping's node id, None when it cannot be addressed.
        node: Option<usize>,
        in_flow: bool,
        pending: Pending,
        keys: HashSet<String>,
        /// A block mapping's start marker sits on its first `:`; move it to the first key.
        move_to_first_key: bool,
    },
    Seq {
        node: Option<usize>,
        in_flow: bool,
        next: usize,
    },
}

/// Where a node event belongs.
enum Slot {
    Root,
    Child {
        parent: usize,
        seg: Seg,
        duplicated: bool,
    },
    /// A mapping key, or a node under something that cannot be addressed.
    Nowhere,
}

struct DocBuilder {
    start: Location,
    explicit: bool,
    stack: Vec<Frame>,
    nodes: Vec<Node>,
    aliased: HashSet<usize>,
}

impl DocBuilder {
    fn new(start: Location, explicit: bool) -> DocBuilder {
        DocBuilder {
            start,
            explicit,
            stack: Vec::new(),
            nodes: Vec::new(),
            aliased: HashSet::new(),
        }
    }

    /// Record one node event: a scalar, an alias, or the start of a collection.
    fn node(&mut self, kind: Kind, anchor: usize, mut loc: Location, lines: &Lines<'_>) {
        let empty =
            matches!(&kind, Kind::Scalar { value, style: Style::Plain, .. } if value.is_empty());
        let mut key_loc = None;
        let mut parent_in_flow = false;
        let mut retarget = None;
        let slot = match self.stack.last_mut() {
            None => Slot::Root,
            Some(Frame::Seq {
                node,
                in_flow,
                next,
            }) => {
                parent_in_flow = *in_flow;
                let index = *next;
                *next += 1;
                match *node {
                    Some(parent) => Slot::Child {
                        parent,
                        seg: Seg::Index(index),
                        duplicated: false,
                    },
                    None => Slot::Nowhere,
                }
            }
            Some(Frame::Map {
                node,
                in_flow,
                pending,
                keys,
                move_to_first_key,
            }) => {
                parent_in_flow = *in_flow;
                match std::mem::replace(pending, Pending::Key) {
                    Pending::Key => {
                        let name = match &kind {
                            Kind::Scalar { value, .. } if !empty => Some(value.clone()),
                            _ => None,
                        };
                        *pending = Pending::Value(name, loc);
                        if std::mem::take(move_to_first_key) {
                            retarget = *node;
                        }
                        Slot::Nowhere
                    }
                    Pending::Value(name, at) => {
                        key_loc = Some(at);
                        match (*node, name) {
                            (Some(parent), Some(name)) => Slot::Child {
                                parent,
                                duplicated: !keys.insert(name.clone()),
                                seg: Seg::Key(name),
                            },
                            _ => Slot::Nowhere,
                        }
                    }
                }
            }
        };
        if let Some(map) = retarget {
            self.nodes[map].loc = loc;
        }
        if empty {
            // An absent value has no text; its marker points at whatever follows.
            let parent = match &slot {
                Slot::Child { parent, .. } => Some(self.nodes[*parent].loc),
                _ => None,
            };
            let root = self.explicit && self.stack.is_empty();
            if let Some(at) = key_loc.or(parent).or(root.then_some(self.start)) {
                loc = at;
            }
        }
        if matches!(
            &kind,
            Kind::Scalar {
                style: Style::Literal | Style::Folded,
                ..
            }
        ) {
            loc = lines.block_scalar_header(loc).unwrap_or(loc);
        }
        let opens_flow = matches!(lines.text_at(loc).chars().next(), Some('{' | '['));
        let id = self.nodes.len();
        let (addressable, duplicated) = match slot {
            Slot::Root => (true, false),
            Slot::Child {
                parent,
                seg,
                duplicated,
            } => {
                // A repeated key points at its last occurrence, as YAML loaders read it.
                self.nodes[parent].children.insert(seg, id);
                (true, duplicated)
            }
            Slot::Nowhere => (false, false),
        };
        let frame_node = addressable.then_some(id);
        match kind {
            Kind::Mapping => self.stack.push(Frame::Map {
                node: frame_node,
                in_flow: parent_in_flow || opens_flow,
                pending: Pending::Key,
                keys: HashSet::new(),
                move_to_first_key: !opens_flow,
            }),
            Kind::Sequence => self.stack.push(Frame::Seq {
                node: frame_node,
                in_flow: parent_in_flow || opens_flow,
                next: 0,
            }),
            Kind::Scalar { .. } | Kind::Alias => {}
        }
        if addressable {
            self.nodes.push(Node {
                loc,
                key: key_loc,
                kind,
                anchor,
                in_flow: parent_in_flow,
                duplicated,
                children: HashMap::new(),
            });
        }
    }

    fn finish(self) -> Document {
        let start = match self.nodes.first() {
            Some(root) if !self.explicit => root.loc,
            _ => self.start,
        };
        Document {
            start,
            nodes: self.nodes,
            aliased: self.aliased,
        }
    }
}

/// Convenience: parse a dotted path like `spec.analysis.stepWeights[2]` or `images[0].newTag`
/// into segments. Keys containing dots are not supported by this helper.
///
/// Empty keys are skipped (so `""` and `"."` are the root), and a bracket that does not hold a
/// decimal index (`a[x]`) is kept as part of the key.
pub fn path(s: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut key = String::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '.' => {
                if !key.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut key)));
                }
            }
            '[' => {
                let index = rest
                    .split_once(']')
                    .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|(n, after)| Some((n.parse::<usize>().ok()?, after)));
                match index {
                    Some((n, after)) => {
                        if !key.is_empty() {
                            segs.push(Seg::Key(std::mem::take(&mut key)));
                        }
                        segs.push(Seg::Index(n));
                        rest = after;
                    }
                    None => key.push('['),
                }
            }
            c => key.push(c),
        }
    }
    if !key.is_empty() {
        segs.push(Seg::Key(key));
    }
    segs
}

/// Render a path for error messages, e.g. `spec.analysis.metrics[0].thresholdRange.min`.
/// The document root renders as `.`.
pub fn display_path(path: &[Seg]) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}
