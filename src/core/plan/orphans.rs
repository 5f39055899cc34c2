//! The revertOnDeletion rule: which of weir's folders lost their Canary and go, and what
//! stays in place of one that a kustomization still lists.
//!
//! A folder is an orphan only when nothing in its app folder is a Canary or could be one (a
//! file with errors), so that a broken Canary never removes weir's folder; it goes only when
//! its record asks for it. Decisions only: the engine reads the tree for it and writes the
//! change, and must never remove a folder this does not name.

use crate::core::app::AppRef;
use crate::core::events::Event;
use crate::core::names::{OWNED_SUFFIX, STATE_FILE};
use crate::core::record::{self, State};
use crate::core::spec::{Phase, Weight};
use std::collections::BTreeSet;

/// One of weir's folders whose Canary is gone, with `revertOnDeletion` in its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    /// The app the folder was for, as its record names it.
    pub app: AppRef,
    /// weir's folder.
    pub folder: String,
    /// What the commit says.
    pub event: Event,
    /// The kustomization left in the folder's place when a kustomization lists the folder
    /// (it would not build without it); `None`: the folder goes entirely.
    pub placeholder: Option<String>,
    /// The replicas component left in its place when the app's kustomization still lists it
    /// (it would not build without it): one that changes nothing, so the Deployment runs the
    /// replicas its own file gives it.
    pub component: Option<String>,
}

/// The Canary of a record is gone: with `revertOnDeletion`, weir's folder goes too (the
/// commit's subject and details); without, the folder stays, as Flagger leaves its objects.
pub fn canary_deleted(record: &State) -> Option<(String, Vec<String>)> {
    record.revert_on_deletion.then(|| {
        (
            "Canary deleted (revertOnDeletion), weir's objects removed".to_string(),
            vec!["the routing goes back to your own objects; the primary Deployment and weir's Services, DestinationRules and VirtualService are removed".to_string()],
        )
    })
}

/// weir's folders (`owned`) to remove. `claims` are the files that hold a Canary or could
/// (files with errors among them): their folders keep weir's. `read` gives a file of the
/// tree; `listed` says whether a kustomization lists a folder of weir's; `lists_component`,
/// whether an app folder's kustomization lists its replicas component.
pub fn orphans<'a>(
    claims: impl IntoIterator<Item = &'a str>,
    owned: &[String],
    read: impl Fn(&str) -> Option<Vec<u8>>,
    listed: impl Fn(&str) -> bool,
    lists_component: impl Fn(&str) -> bool,
) -> Vec<Orphan> {
    let claimed: BTreeSet<&str> = claims.into_iter().map(parent).collect();
    let mut out = Vec::new();
    for folder in owned {
        let Some(app_dir) = folder.strip_suffix(OWNED_SUFFIX) else {
            continue;
        };
        if claimed.contains(app_dir) {
            continue;
        }
        let path = format!("{folder}/{STATE_FILE}");
        let Some(bytes) = read(&path) else {
            continue;
        };
        let Ok(record) = record::parse(&path, &bytes) else {
            continue;
        };
        let Some((summary, details)) = canary_deleted(&record.status) else {
            continue;
        };
        let app = AppRef {
            namespace: record.metadata.namespace.clone(),
            name: record.metadata.name.clone(),
            dir: app_dir.to_string(),
        };
        let placeholder = listed(folder).then(|| {
            format!("# The Canary of {}/{} was deleted (revertOnDeletion): weir's objects are gone.\n# Remove this folder from the kustomization that lists it, then this folder.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n", app.namespace, app.name)
        });
        let component = lists_component(app_dir).then(|| {
            format!("# The Canary of {}/{} was deleted (revertOnDeletion): this component changes nothing now,\n# and your Deployment runs the replicas its own file gives it. Remove\n# `components: [{}]` from the kustomization of {app_dir}, then this folder.\napiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches: []\n", app.namespace, app.name, crate::core::names::replicas_component_ref(app_dir))
        });
        out.push(Orphan {
            component,
            folder: folder.clone(),
            event: Event {
                app: app.clone(),
                phase: Phase::Succeeded,
                weight: Weight::ZERO,
                summary,
                details,
            },
            placeholder,
            app,
        });
    }
    out
}

/// The folder of a path (`""` at the root).
fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(name: &str, revert: bool) -> Vec<u8> {
        use chrono::TimeZone;
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 24, 10, 0, 0)
            .unwrap();
        let state = State {
            phase: Phase::Succeeded,
            promoted_revision: "0123456789abcdef0123456789abcdef01234567".into(),
            last_step_at: at,
            last_transition_at: at,
            revert_on_deletion: revert,
            ..State::default()
        };
        record::render(name, "prod", &state).into_bytes()
    }

    #[test]
    fn a_folder_goes_only_when_its_canary_is_gone_and_its_record_asks() {
        // (case, files that claim a folder, records by weir's folder, folders a
        // kustomization lists, what goes: folder and whether a placeholder stays)
        type Row = (
            &'static str,
            Vec<&'static str>,
            Vec<(&'static str, Vec<u8>)>,
            Vec<&'static str>,
            Vec<(&'static str, bool)>,
        );
        let cases: Vec<Row> = vec![
            (
                "the Canary is gone, the record asks: the folder goes",
                vec![],
                vec![("apps/a.weir", record("a", true))],
                vec![],
                vec![("apps/a.weir", false)],
            ),
            (
                "a kustomization lists the folder: an empty one stays",
                vec![],
                vec![("apps/a.weir", record("a", true))],
                vec!["apps/a.weir"],
                vec![("apps/a.weir", true)],
            ),
            (
                "the record does not ask: the folder stays, as Flagger leaves its objects",
                vec![],
                vec![("apps/a.weir", record("a", false))],
                vec![],
                vec![],
            ),
            (
                "a Canary (or a file that could be one) is still there",
                vec!["apps/a/canary.yaml"],
                vec![("apps/a.weir", record("a", true))],
                vec![],
                vec![],
            ),
            (
                "a Canary of another folder claims nothing here",
                vec!["apps/b/canary.yaml"],
                vec![("apps/a.weir", record("a", true))],
                vec![],
                vec![("apps/a.weir", false)],
            ),
            (
                "no record, or one that cannot be read: the folder stays",
                vec![],
                vec![("apps/c.weir", b"not: a record".to_vec())],
                vec![],
                vec![],
            ),
            (
                "at the root of the repository",
                vec!["canary.yaml"],
                vec![("top.weir", record("top", true))],
                vec![],
                vec![("top.weir", false)],
            ),
        ];
        for (name, claims, records, listed, want) in cases {
            let owned: Vec<String> = records.iter().map(|(f, _)| f.to_string()).collect();
            let files: BTreeMap<String, Vec<u8>> = records
                .into_iter()
                .map(|(f, r)| (format!("{f}/{STATE_FILE}"), r))
                .collect();
            let got = orphans(
                claims,
                &owned,
                |path| files.get(path).cloned(),
                |folder| listed.contains(&folder),
                |_| false,
            );
            let got: Vec<(&str, bool)> = got
                .iter()
                .map(|o| (o.folder.as_str(), o.placeholder.is_some()))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_commit_says_the_canary_was_deleted() {
        let owned = vec!["apps/a.weir".to_string()];
        let got = orphans([], &owned, |_| Some(record("a", true)), |_| true, |_| false);
        let o = &got[0];
        assert_eq!(o.component, None);
        assert_eq!(o.app.to_string(), "prod/a");
        assert_eq!(o.app.dir, "apps/a");
        assert_eq!(
            (o.event.phase, o.event.weight),
            (Phase::Succeeded, Weight::ZERO)
        );
        assert_eq!(
            o.event.summary,
            "Canary deleted (revertOnDeletion), weir's objects removed"
        );
        assert!(o
            .placeholder
            .as_deref()
            .unwrap()
            .starts_with("# The Canary of prod/a was deleted"));
    }

    #[test]
    fn a_listed_replicas_component_stays_as_one_that_changes_nothing() {
        let owned = vec!["apps/a.weir".to_string()];
        let got = orphans(
            [],
            &owned,
            |_| Some(record("a", true)),
            |_| false,
            |app| app == "apps/a",
        );
        let text = got[0].component.as_deref().expect("a component stays");
        assert!(
            text.contains("`components: [../a.weir/canary-replicas]`"),
            "{text}"
        );
        assert!(text.ends_with("kind: Component\npatches: []\n"), "{text}");
        assert_eq!(got[0].placeholder, None);
    }
}
