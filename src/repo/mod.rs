//! Config-repo trees without I/O: Git objects and the folders weir writes, finding specs,
//! the kustomize-lite build of an app's closure, whether an app's kustomization lists weir's
//! replicas component, rules across apps, and rendering weir's folder and the primary. Reads
//! trees through [`source::SourceTree`]; never touches a disk, a socket or a clock.

pub mod change;
pub mod kustomize;
#[cfg(test)]
pub(crate) mod mem_tree;
pub mod objects;
pub mod render;
pub mod replicas;
pub mod rules;
pub mod source;
