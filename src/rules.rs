//! Rules across apps, checked on the whole catalog before anything is committed, by every
//! command alike (`validate`, `plan`, `step`, `status`): what one Canary can be valid alone
//! but wrong next to another. A Canary that breaks one is refused with both places named; the
//! other apps go on.
//!
//! Each rule exists because breaking it would make weir commit objects that collide, and a
//! collision fails Flux's whole build, every app included.

use crate::app::{AppSource, ObjectRef};
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

/// The objects weir writes for an app (hashed config copies aside: their names are not known).
pub fn weir_objects(canary: &Canary, source: &AppSource) -> Vec<ObjectRef> {
    let ns = &canary.namespace;
    let svc = &canary.service.name;
    let file = crate::source::owned_dir(&source.dir);
    let mut out = Vec::new();
    let mut add = |kind: &str, namespace: &str, name: String| {
        out.push(ObjectRef {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name,
            file: file.clone(),
        })
    };
    for name in [
        svc.clone(),
        format!("{svc}-primary"),
        format!("{svc}-canary"),
    ] {
        add("Service", ns, name);
    }
    for name in [format!("{svc}-primary"), format!("{svc}-canary")] {
        add("DestinationRule", ns, name);
    }
    add("VirtualService", ns, svc.clone());
    let target_ns = source.namespace.as_deref().unwrap_or(ns);
    add(
        "Deployment",
        target_ns,
        format!("{}-primary", canary.target),
    );
    if let Some(hpa) = &canary.autoscaler {
        add(
            "HorizontalPodAutoscaler",
            target_ns,
            format!("{hpa}-primary"),
        );
    }
    for c in source.config.iter().filter(|c| !c.hashed) {
        add(
            c.kind.kind(),
            c.namespace.as_deref().unwrap_or(ns),
            format!("{}-primary", c.name),
        );
    }
    out
}

/// Who has an object: the app (its index), the object, and whether weir writes it.
type Owner = (usize, ObjectRef, bool);

/// Objects weir would write that collide with another object of Flux's build (the app's own,
/// or another app's, or what weir writes for another app): a duplicate fails Flux's whole
/// build, so both apps are refused, each error naming the other place.
pub fn collisions(apps: &[(&Canary, &AppSource)]) -> BTreeMap<String, Vec<SpecError>> {
    // (kind, namespace, name) -> [(app index, object, written by weir)]
    let mut seen: HashMap<(String, String, String), Vec<Owner>> = HashMap::new();
    for (i, (canary, source)) in apps.iter().enumerate() {
        for o in weir_objects(canary, source) {
            seen.entry((o.kind.clone(), o.namespace.clone(), o.name.clone()))
                .or_default()
                .push((i, o, true));
        }
        for o in &source.objects {
            seen.entry((o.kind.clone(), o.namespace.clone(), o.name.clone()))
                .or_default()
                .push((i, o.clone(), false));
        }
    }
    let mut out: BTreeMap<String, Vec<SpecError>> = BTreeMap::new();
    for ((kind, namespace, name), owners) in seen {
        if owners.len() < 2 || !owners.iter().any(|(_, _, weir)| *weir) {
            continue;
        }
        for (i, o, weir) in &owners {
            if !weir {
                continue;
            }
            let (canary, _) = apps[*i];
            let others: Vec<String> = owners
                .iter()
                .filter(|(j, p, w)| !(j == i && p == o && w == weir))
                .map(|(j, p, w)| {
                    if *w {
                        format!(
                            "weir's folder for {}/{} ({})",
                            apps[*j].0.namespace, apps[*j].0.name, p.file
                        )
                    } else {
                        p.file.clone()
                    }
                })
                .collect();
            out.entry(canary.file.clone()).or_default().push(err(
                canary,
                canary.name_at,
                "metadata.name",
                format!(
                    "weir would write {kind} {namespace}/{name}, which is also in {}: one object twice fails Flux's whole build. Rename one of them (spec.service.name names weir's Services)",
                    others.join(", ")
                ),
            ));
        }
    }
    for errors in out.values_mut() {
        errors.sort();
        errors.dedup();
    }
    out
}

/// Every valid Canary's source, and the errors of the others: the rules across apps, each
/// app's own build, and the collisions between what weir would write and everything else.
/// `validate`, `plan`, `step` and `status` all decide which apps are sound with this.
pub struct Resolved {
    /// Sources of the sound apps, by Canary file.
    pub sources: HashMap<String, std::sync::Arc<AppSource>>,
    /// Errors of the others, by Canary file.
    pub errors: BTreeMap<String, Vec<SpecError>>,
}

/// Resolves every Canary of a catalog and applies the rules across apps.
pub fn resolve_all(
    tree: &dyn crate::source::SourceTree,
    canaries: &[&Canary],
    resolver: &mut crate::app::Resolver,
) -> Resolved {
    let mut errors = check(canaries);
    let mut sources = HashMap::new();
    for canary in canaries {
        if errors.contains_key(&canary.file) {
            continue;
        }
        match resolver.resolve(tree, canary) {
            Ok(s) => {
                sources.insert(canary.file.clone(), s);
            }
            Err(e) => {
                errors.insert(canary.file.clone(), e);
            }
        }
    }
    let pairs: Vec<(&Canary, &AppSource)> = canaries
        .iter()
        .filter_map(|c| sources.get(&c.file).map(|s| (*c, s.as_ref())))
        .collect();
    for (file, e) in collisions(&pairs) {
        sources.remove(&file);
        errors.entry(file).or_default().extend(e);
    }
    Resolved { sources, errors }
}
