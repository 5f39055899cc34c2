//! The names of the files and folders weir owns beside each app.

/// Suffix of the folder weir owns beside each app folder.
pub const OWNED_SUFFIX: &str = ".weir";

/// The folder weir owns for an app folder: a sibling named `<folder>.weir`, so the app's own
/// kustomization (and its `images:` tags) never applies to what weir writes.
pub fn owned_dir(app_dir: &str) -> String {
    format!("{app_dir}{OWNED_SUFFIX}")
}

/// The record file name in the owned folder.
pub const STATE_FILE: &str = "state.yaml";
