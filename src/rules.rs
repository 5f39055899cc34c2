//! Rules across apps, checked on the whole catalog before anything is committed, by every
//! command alike (`validate`, `plan`, `step`, `status`): what one Canary can be valid alone
//! but wrong next to another. A Canary that breaks one is refused with both places named; the
//! other apps go on.
//!
//! Each rule exists because breaking it would make weir commit objects that collide, and a
//! collision fails Flux's whole build, every app included.

use crate::source::{parent, OWNED_SUFFIX};
use crate::spec::{Canary, Severity, SpecError};
use std::collections::{BTreeMap, HashMap};

fn err(c: &Canary, at: (usize, usize), field: &str, message: String) -> SpecError {
    SpecError {
        file: c.file.clone(),
        line: at.0,
        col: at.1,
        severity: Severity::Error,
        field: field.to_string(),
        message,
    }
}

/// The errors of each Canary (by file) that break a rule across apps.
pub fn check(canaries: &[&Canary]) -> BTreeMap<String, Vec<SpecError>> {
    let mut out: BTreeMap<String, Vec<SpecError>> = BTreeMap::new();
    let mut group = |key_of: &dyn Fn(&Canary) -> Option<String>,
                     field: &str,
                     at: &dyn Fn(&Canary) -> (usize, usize),
                     what: &dyn Fn(&str) -> String| {
        let mut by: HashMap<String, Vec<&Canary>> = HashMap::new();
        for c in canaries {
            if let Some(k) = key_of(c) {
                by.entry(k).or_default().push(c);
            }
        }
        for (key, list) in by {
            if list.len() < 2 {
                continue;
            }
            for c in &list {
                let others: Vec<String> = list
                    .iter()
                    .filter(|o| !std::ptr::eq(**o, *c))
                    .map(|o| {
                        let (l, col) = at(o);
                        format!("{}:{l}:{col}", o.file)
                    })
                    .collect();
                out.entry(c.file.clone()).or_default().push(err(
                    c,
                    at(c),
                    field,
                    format!("{} (also at {})", what(&key), others.join(", ")),
                ));
            }
        }
    };
    group(
        &|c| Some(parent(&c.file).to_string()),
        "metadata.name",
        &|c| c.name_at,
        &|dir| {
            format!(
                "more than one Canary in {}; weir keeps one folder per app ({}{OWNED_SUFFIX})",
                if dir.is_empty() {
                    "the repository root"
                } else {
                    dir
                },
                if dir.is_empty() { "" } else { dir }
            )
        },
    );
    group(
        &|c| Some(format!("{}/{}", c.namespace, c.name)),
        "metadata.name",
        &|c| c.name_at,
        &|k| format!("Canary {k} is defined twice"),
    );
    group(
        &|c| Some(format!("{}/{}", c.namespace, c.target)),
        "spec.targetRef.name",
        &|c| c.target_at,
        &|k| format!("Deployment {k} is the target of more than one Canary"),
    );
    group(
        &|c| Some(format!("{}/{}", c.namespace, c.service.name)),
        "spec.service.name",
        &|c| c.service_at,
        &|k| format!("Service {k} would be written for more than one Canary"),
    );
    for errors in out.values_mut() {
        errors.sort();
        errors.dedup();
    }
    out
}
