//! A source tree in memory, with Git's ids: for the unit tests of this layer, which read an
//! app's build from a tree without a repository on disk. Compiled only for tests.

use crate::repo::objects::{Dir, Node, ObjectId};
use crate::repo::source::{Entry, SourceError, SourceTree};

/// Files by path; folders are the paths' prefixes, with the tree ids Git would give them.
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    root: Dir,
}

impl MemTree {
    /// A tree of `(path, text)` files.
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> MemTree {
        let mut root = Dir::default();
        for (path, text) in files {
            root.file(path, text);
        }
        MemTree { root }
    }

    fn node(&self, path: &str) -> Option<&Node> {
        if path.is_empty() {
            return None;
        }
        self.root.get(path)
    }

    fn folder(&self, path: &str) -> Option<&Dir> {
        if path.is_empty() {
            return Some(&self.root);
        }
        match self.node(path)? {
            Node::Dir(d) => Some(d),
            _ => None,
        }
    }
}

impl SourceTree for MemTree {
    fn list(&self, dir: &str) -> Result<Vec<Entry>, SourceError> {
        let folder = self
            .folder(dir)
            .ok_or_else(|| SourceError::Missing(dir.to_string()))?;
        Ok(folder
            .entries
            .iter()
            .map(|(name, node)| Entry {
                name: name.clone(),
                is_dir: node.is_dir(),
                link: false,
                id: node.id(),
            })
            .collect())
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        match self.node(path) {
            Some(Node::File(bytes)) => Ok(bytes.to_vec()),
            _ => Err(SourceError::Missing(path.to_string())),
        }
    }

    fn dir_id(&self, dir: &str) -> Option<ObjectId> {
        self.folder(dir).map(Dir::id)
    }

    fn id(&self, path: &str) -> Option<ObjectId> {
        match path {
            "" => Some(self.root.id()),
            _ => self.node(path).map(Node::id),
        }
    }

    fn link(&self, _path: &str) -> bool {
        false
    }
}
