//! Object ids and the in-memory folder trees weir writes, independent of any Git library.
//!
//! weir describes what it wants in its own folder as a [`Dir`]: files it renders, and objects
//! it carries unchanged from an earlier commit (the app's source at the promoted revision) by
//! id, so a snapshot of any size costs one entry. [`Dir::id`] computes the id Git would give
//! the folder, so an unchanged folder is recognised without writing a single object. The
//! config repo adapter writes a `Dir` when it is published. Nothing here reads or writes Git.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A Git object id (SHA-1), as hex in text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 20]);

impl ObjectId {
    /// The all-zero id, used by trees on disk that have no object ids.
    pub const ZERO: ObjectId = ObjectId([0; 20]);

    /// Parses 40 hex digits.
    pub fn from_hex(text: &str) -> Option<ObjectId> {
        if text.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(ObjectId(out))
    }

    /// True for [`ObjectId::ZERO`].
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 20]
    }

    /// The id Git gives a blob with these bytes.
    pub fn for_blob(bytes: &[u8]) -> ObjectId {
        hash("blob", bytes)
    }

    /// The first `n` hex digits.
    pub fn short(&self, n: usize) -> String {
        let mut s = self.to_string();
        s.truncate(n);
        s
    }
}

/// Git's object id: the SHA-1 of `<kind> <length>\0` and the bytes.
fn hash(kind: &str, bytes: &[u8]) -> ObjectId {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    hasher.update(format!("{kind} {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    ObjectId(hasher.finalize().into())
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

/// One entry of a [`Dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A file weir renders.
    File(Arc<Vec<u8>>),
    /// A folder weir builds.
    Dir(Dir),
    /// An existing file or folder, carried by id from a commit the repository has.
    Carried {
        /// Its id.
        id: ObjectId,
        /// Folder (tree) or file (blob).
        is_dir: bool,
    },
}

impl Node {
    /// The id Git gives this entry.
    pub fn id(&self) -> ObjectId {
        match self {
            Node::File(bytes) => ObjectId::for_blob(bytes),
            Node::Dir(d) => d.id(),
            Node::Carried { id, .. } => *id,
        }
    }

    /// A folder (built or carried).
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::Dir(_) | Node::Carried { is_dir: true, .. })
    }
}

/// A folder: names to entries. Paths inside are built with [`Dir::insert`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dir {
    /// Entries by name.
    pub entries: BTreeMap<String, Node>,
}

impl Dir {
    /// Puts `node` at a `/`-separated path, creating folders on the way (a carried folder on
    /// the way is replaced).
    pub fn insert(&mut self, path: &str, node: Node) {
        match path.split_once('/') {
            None => {
                self.entries.insert(path.to_string(), node);
            }
            Some((first, rest)) => {
                let entry = self
                    .entries
                    .entry(first.to_string())
                    .or_insert_with(|| Node::Dir(Dir::default()));
                if !matches!(entry, Node::Dir(_)) {
                    *entry = Node::Dir(Dir::default());
                }
                if let Node::Dir(d) = entry {
                    d.insert(rest, node);
                }
            }
        }
    }

    /// A file at `path`, as text.
    pub fn file(&mut self, path: &str, text: impl Into<String>) {
        self.insert(path, Node::File(Arc::new(text.into().into_bytes())));
    }

    /// The entry at a path.
    pub fn get(&self, path: &str) -> Option<&Node> {
        match path.split_once('/') {
            None => self.entries.get(path),
            Some((first, rest)) => match self.entries.get(first)? {
                Node::Dir(d) => d.get(rest),
                _ => None,
            },
        }
    }

    /// The id Git gives this folder: entries sorted as Git sorts them (a folder's name
    /// compares as if it ended in `/`), each written `mode name\0id`.
    pub fn id(&self) -> ObjectId {
        let mut items: Vec<(Vec<u8>, &str, &Node)> = self
            .entries
            .iter()
            .map(|(name, node)| {
                let mut key = name.as_bytes().to_vec();
                if node.is_dir() {
                    key.push(b'/');
                }
                (key, name.as_str(), node)
            })
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut bytes = Vec::new();
        for (_, name, node) in items {
            bytes.extend_from_slice(if node.is_dir() { b"40000 " } else { b"100644 " });
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(&node.id().0);
        }
        hash("tree", &bytes)
    }

    /// Every file path with its bytes (rendered files only, carried objects excluded), for
    /// snapshots and reports.
    pub fn files(&self) -> Vec<(String, Arc<Vec<u8>>)> {
        let mut out = Vec::new();
        self.walk("", &mut out);
        out
    }

    fn walk(&self, prefix: &str, out: &mut Vec<(String, Arc<Vec<u8>>)>) {
        for (name, node) in &self.entries {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            match node {
                Node::File(bytes) => out.push((path, bytes.clone())),
                Node::Dir(d) => d.walk(&path, out),
                Node::Carried { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_git() {
        assert_eq!(
            ObjectId::for_blob(b"").to_string(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        // The empty tree.
        assert_eq!(
            Dir::default().id().to_string(),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        let hex = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
        assert_eq!(ObjectId::from_hex(hex).unwrap().to_string(), hex);
        assert_eq!(ObjectId::from_hex("zz"), None);
    }
}
