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

/// The kustomize Component in the owned folder that keeps the canary Deployment at zero
/// replicas between releases; the app's own kustomization opts in by listing it.
pub const REPLICAS_COMPONENT: &str = "canary-replicas";

/// The repository path of an app's replicas component: `apps/backend.weir/canary-replicas`.
pub fn replicas_component_dir(app_dir: &str) -> String {
    format!("{}/{REPLICAS_COMPONENT}", owned_dir(app_dir))
}

/// How the app's kustomization names its replicas component, relative to the app folder:
/// `../backend.weir/canary-replicas` (the owned folder is a sibling of the app folder).
pub fn replicas_component_ref(app_dir: &str) -> String {
    match app_dir.rsplit_once('/').map_or(app_dir, |(_, name)| name) {
        "" => format!("{OWNED_SUFFIX}/{REPLICAS_COMPONENT}"),
        name => format!("../{name}{OWNED_SUFFIX}/{REPLICAS_COMPONENT}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_is_named_from_the_app_folder_as_a_sibling() {
        assert_eq!(
            replicas_component_dir("apps/backend"),
            "apps/backend.weir/canary-replicas"
        );
        assert_eq!(
            replicas_component_ref("apps/backend"),
            "../backend.weir/canary-replicas"
        );
        assert_eq!(
            replicas_component_ref("backend"),
            "../backend.weir/canary-replicas"
        );
        // An app at the repository root: its owned folder is `.weir`, inside it.
        assert_eq!(replicas_component_ref(""), ".weir/canary-replicas");
        assert_eq!(replicas_component_dir(""), ".weir/canary-replicas");
    }
}
