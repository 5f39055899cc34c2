//! Rules across apps, checked on the whole catalog before anything is committed, by every
//! command alike (`validate`, `plan`, `step`, `status`): what one Canary can be valid alone
//! but wrong next to another. A Canary that breaks one is refused with both places named; the
//! other apps go on.
//!
//! When a Canary claims what an app weir already runs uses (its record is in Git and names
//! it), only the newcomer is refused: a team cannot stop another team's rollout by copying
//! its names. When neither or both are running, both are refused.
//!
//! Each rule exists because breaking it would make weir commit objects that collide, and a
//! collision fails Flux's whole build, every app included.

use crate::core::names::OWNED_SUFFIX;
use crate::core::spec::{Canary, LocatedError, Severity};
use crate::repo::kustomize::{AppSource, ObjectRef};
use crate::repo::source::parent;
use std::collections::{BTreeMap, HashMap};

fn err(c: &Canary, at: (usize, usize), field: &str, message: String) -> LocatedError {
    LocatedError {
        file: c.file.clone(),
        line: at.0,
        col: at.1,
        severity: Severity::Error,
        field: field.to_string(),
        message,
    }
}

/// Which of the Canaries sharing something are refused: the newcomers when some of them are
/// running already, otherwise all.
fn refused<T>(list: &[T], running: impl Fn(&T) -> bool) -> Vec<bool> {
    let running: Vec<bool> = list.iter().map(running).collect();
    let some = running.iter().any(|r| *r);
    let all = running.iter().all(|r| *r);
    running.iter().map(|r| !(some && !all && *r)).collect()
}

/// One rule across apps: Canaries with the same key collide.
struct Rule {
    key: fn(&Canary) -> String,
    field: &'static str,
    at: fn(&Canary) -> (usize, usize),
    what: fn(&str) -> String,
}

fn one_folder(dir: &str) -> String {
    format!(
        "more than one Canary in {}; weir keeps one folder per app ({}{OWNED_SUFFIX})",
        if dir.is_empty() {
            "the repository root"
        } else {
            dir
        },
        if dir.is_empty() { "" } else { dir }
    )
}

const RULES: [Rule; 4] = [
    Rule {
        key: |c| parent(&c.file).to_string(),
        field: "metadata.name",
        at: |c| c.name_at,
        what: one_folder,
    },
    Rule {
        key: |c| format!("{}/{}", c.namespace, c.name),
        field: "metadata.name",
        at: |c| c.name_at,
        what: |k| format!("Canary {k} is defined twice"),
    },
    Rule {
        key: |c| format!("{}/{}", c.namespace, c.target),
        field: "spec.targetRef.name",
        at: |c| c.target_at,
        what: |k| format!("Deployment {k} is the target of more than one Canary"),
    },
    Rule {
        key: |c| format!("{}/{}", c.namespace, c.service.name),
        field: "spec.service.name",
        at: |c| c.service_at,
        what: |k| format!("Service {k} would be written for more than one Canary"),
    },
];

/// The errors of each Canary (by file) that break a rule across apps. `running` says whether
/// weir already runs a Canary (asked only of Canaries that share something).
pub fn check(
    canaries: &[&Canary],
    running: &dyn Fn(&Canary) -> bool,
) -> BTreeMap<String, Vec<LocatedError>> {
    let mut out: BTreeMap<String, Vec<LocatedError>> = BTreeMap::new();
    for rule in &RULES {
        let mut by: HashMap<String, Vec<&Canary>> = HashMap::new();
        for c in canaries {
            by.entry((rule.key)(c)).or_default().push(c);
        }
        for (key, list) in by {
            if list.len() < 2 {
                continue;
            }
            let refused = refused(&list, |c| running(c));
            for (c, _) in list.iter().zip(&refused).filter(|(_, r)| **r) {
                let others: Vec<String> = list
                    .iter()
                    .filter(|o| !std::ptr::eq(**o, *c))
                    .map(|o| {
                        let (l, col) = (rule.at)(o);
                        format!("{}:{l}:{col}", o.file)
                    })
                    .collect();
                out.entry(c.file.clone()).or_default().push(err(
                    c,
                    (rule.at)(c),
                    rule.field,
                    format!("{} (also at {})", (rule.what)(&key), others.join(", ")),
                ));
            }
        }
    }
    for errors in out.values_mut() {
        errors.sort();
        errors.dedup();
    }
    out
}

/// Everything the rules across apps compare of one app (its keys, and the objects its build
/// makes and weir writes for it), as a digest: while no app's claims change, no rule across
/// apps can come out differently.
pub fn claims(canary: &Canary, source: Option<&AppSource>) -> u64 {
    let mut text = String::new();
    for rule in &RULES {
        text.push_str(&(rule.key)(canary));
        text.push('\n');
    }
    if let Some(source) = source {
        let weir = weir_objects(canary, source);
        for (o, mark) in weir
            .iter()
            .map(|o| (o, 'w'))
            .chain(source.objects.iter().map(|o| (o, 'o')))
        {
            text.push_str(&format!(
                "{mark} {} {} {} {}\n",
                o.kind, o.namespace, o.name, o.file
            ));
        }
    }
    let id = crate::repo::objects::ObjectId::for_blob(text.as_bytes());
    u64::from_be_bytes(id.0[..8].try_into().expect("20 bytes"))
}

/// The objects weir writes for an app (hashed config copies aside: their names are not known).
pub fn weir_objects(canary: &Canary, source: &AppSource) -> Vec<ObjectRef> {
    let ns = &canary.namespace;
    let svc = &canary.service.name;
    let file = crate::core::names::owned_dir(&source.dir);
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
/// build. The newcomer is refused, each error naming the other place; what weir writes is
/// refused when no running app had the name first.
pub fn collisions(
    apps: &[(&Canary, &AppSource)],
    running: &dyn Fn(&Canary) -> bool,
) -> BTreeMap<String, Vec<LocatedError>> {
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
    let mut out: BTreeMap<String, Vec<LocatedError>> = BTreeMap::new();
    for ((kind, namespace, name), owners) in seen {
        if owners.len() < 2 || !owners.iter().any(|(_, _, weir)| *weir) {
            continue;
        }
        // What a running app already has in Git stays; whoever claims it since (a new
        // Canary, an object added to a build) is refused. Without a running owner, or
        // between two running ones, what weir would write is refused: weir never renames
        // anyone's objects.
        let is_running = |(i, _, weir): &Owner| *weir && running(apps[*i].0);
        let running_count = owners.iter().filter(|o| is_running(o)).count();
        let keep_running = running_count > 0 && running_count < owners.len();
        let describe = |(j, p, w): &Owner| {
            if *w {
                format!(
                    "weir's folder for {}/{} ({})",
                    apps[*j].0.namespace, apps[*j].0.name, p.file
                )
            } else {
                p.file.clone()
            }
        };
        for owner in &owners {
            let refuse = if keep_running {
                !is_running(owner)
            } else {
                owner.2
            };
            if !refuse {
                continue;
            }
            let (i, o, weir) = owner;
            let (canary, _) = apps[*i];
            let others: Vec<String> = owners
                .iter()
                .filter(|(j, p, w)| !(j == i && p == o && w == weir))
                .map(describe)
                .collect();
            // The app's own Service or VirtualService of weir's name: Flagger takes it
            // over in the cluster; in Git, weir cannot edit the team's file, so it says how.
            let own = owners
                .iter()
                .find(|(j, _, w)| j == i && !*w)
                .filter(|_| *weir && matches!(kind.as_str(), "Service" | "VirtualService"));
            let message = if let Some((_, theirs, _)) = own {
                format!(
                    "weir would write {kind} {namespace}/{name}, which {} already defines: Flagger takes such an object over in the cluster, weir writes its own from spec.service. Remove it from {} (move its hosts, gateways, retries or timeout to spec.service), or give weir's another name with spec.service.name",
                    theirs.file, theirs.file
                )
            } else if *weir {
                format!(
                    "weir would write {kind} {namespace}/{name}, which is also in {}: one object twice fails Flux's whole build. Rename one of them (spec.service.name names weir's Services)",
                    others.join(", ")
                )
            } else {
                format!(
                    "{} adds {kind} {namespace}/{name}, which weir already writes in {} for an app it runs: one object twice fails Flux's whole build. Rename it",
                    o.file,
                    others.join(", ")
                )
            };
            out.entry(canary.file.clone()).or_default().push(err(
                canary,
                canary.name_at,
                "metadata.name",
                message,
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
    pub errors: BTreeMap<String, Vec<LocatedError>>,
    /// Whether a rule across apps refused any Canary.
    pub across: bool,
}

/// Resolves every Canary of a catalog and applies the rules across apps.
pub fn resolve_all(
    tree: &dyn crate::repo::source::SourceTree,
    canaries: &[&Canary],
    resolver: &mut crate::repo::kustomize::Resolver,
) -> Resolved {
    // Running: weir's record for the app is in the tree and names it. Read only for
    // Canaries that share something, which is rare.
    let running = |c: &Canary| {
        let path = format!(
            "{}/{}",
            crate::core::names::owned_dir(parent(&c.file)),
            crate::core::names::STATE_FILE
        );
        tree.read(&path).ok().is_some_and(|bytes| {
            crate::core::record::parse(&path, &bytes).is_ok_and(|record| {
                crate::core::record::check_owner(&path, &bytes, &record, &c.namespace, &c.name)
                    .is_ok()
            })
        })
    };
    let mut errors = check(canaries, &running);
    let mut across = !errors.is_empty();
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
    for (file, e) in collisions(&pairs, &running) {
        across = true;
        sources.remove(&file);
        errors.entry(file).or_default().extend(e);
    }
    Resolved {
        sources,
        errors,
        across,
    }
}
