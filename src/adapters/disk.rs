//! The local disk: a checkout read as a source tree (`weir validate`, `weir plan`) and a
//! folder of routing templates (`--templates`).

use crate::repo::objects::ObjectId;
use crate::repo::render::{RenderError, Templates, TEMPLATE_FILES};
use crate::repo::source::{join, Entry, SourceError, SourceTree, MAX_FILE};
use std::path::PathBuf;

/// A folder on disk (a checkout, for `weir validate`).
pub struct DiskTree {
    root: PathBuf,
}

impl DiskTree {
    /// Reads below `root`.
    pub fn new(root: impl Into<PathBuf>) -> DiskTree {
        DiskTree { root: root.into() }
    }

    fn full(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }
}

impl SourceTree for DiskTree {
    fn list(&self, dir: &str) -> Result<Vec<Entry>, SourceError> {
        let full = self.full(dir);
        let rd = std::fs::read_dir(&full).map_err(|_| SourceError::Missing(dir.to_string()))?;
        let mut out = Vec::new();
        for item in rd.flatten() {
            let name = item.file_name().to_string_lossy().to_string();
            if name == ".git" {
                continue;
            }
            // Never followed: a link is reported as a link.
            let Ok(kind) = item.file_type() else { continue };
            let id = if kind.is_file() {
                self.read(&join(dir, &name))
                    .map(|bytes| ObjectId::for_blob(&bytes))
                    .unwrap_or(ObjectId::ZERO)
            } else {
                ObjectId::ZERO
            };
            out.push(Entry {
                name,
                is_dir: kind.is_dir(),
                link: kind.is_symlink(),
                id,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        use std::io::Read;
        let full = self.full(path);
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::Missing(path.to_string()),
            _ => SourceError::Read {
                path: path.to_string(),
                message: e.to_string(),
            },
        };
        let meta = std::fs::symlink_metadata(&full).map_err(io)?;
        if meta.file_type().is_symlink() {
            return Err(SourceError::link(path));
        }
        if !meta.is_file() {
            return Err(SourceError::Missing(path.to_string()));
        }
        if meta.len() > MAX_FILE {
            return Err(SourceError::too_large(path, meta.len()));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&full)
            .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(SourceError::too_large(path, bytes.len() as u64));
        }
        Ok(bytes)
    }

    fn dir_id(&self, _dir: &str) -> Option<ObjectId> {
        None
    }

    fn id(&self, path: &str) -> Option<ObjectId> {
        let full = self.full(path);
        let meta = std::fs::symlink_metadata(&full).ok()?;
        if meta.is_dir() || meta.file_type().is_symlink() {
            return Some(ObjectId::ZERO);
        }
        self.read(path).ok().map(|bytes| ObjectId::for_blob(&bytes))
    }

    fn link(&self, path: &str) -> bool {
        std::fs::symlink_metadata(self.full(path)).is_ok_and(|m| m.file_type().is_symlink())
    }
}

/// Routing templates from a folder (`--templates`): every file of
/// [`TEMPLATE_FILES`](crate::repo::render::TEMPLATE_FILES) must be there.
pub fn templates(dir: &std::path::Path) -> Result<Templates, RenderError> {
    let mut sources = Vec::new();
    for file in TEMPLATE_FILES {
        let text = std::fs::read_to_string(dir.join(file)).map_err(|e| RenderError::Load {
            dir: dir.display().to_string(),
            file: file.to_string(),
            message: e.to_string(),
        })?;
        sources.push((file.to_string(), text));
    }
    Templates::from_sources(sources)
}
