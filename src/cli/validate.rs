//! Every check `step` applies before it moves an app, run on one tree without moving
//! anything: what `weir validate` prints and what `weir plan` puts on a pull request.

use super::args::ValidateArgs;
use super::config;
use super::github_actions::Job;
use super::output::Out;
use super::{OK, PROBLEMS};
use crate::adapters::disk::DiskTree;
use crate::core::positions::{PositionIndex, Seg};
use crate::core::spec::{LocatedError, Severity};
use crate::repo::kustomize::{AppSource, Resolver};
use crate::repo::replicas::OptIn;
use crate::repo::source::{Catalog, Scanner, SourceError, SourceTree};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What the checks found in a tree.
pub struct Validation {
    /// The specs found.
    pub catalog: Catalog,
    /// The sources of the sound apps, by Canary file.
    pub sources: HashMap<String, Arc<AppSource>>,
    /// Scan findings, then the rules across apps, then what resolving each app found, then
    /// the warnings of valid Canaries.
    pub findings: Vec<LocatedError>,
    /// weir's records that `step` would refuse.
    pub record_errors: Vec<String>,
    /// One warning per app about weir's canary-replicas component, by Canary file: its
    /// kustomization does not list it (the canary keeps running between releases), or lists
    /// it before weir has written it (the folder does not build until then).
    pub replicas: Vec<(String, LocatedError)>,
}

impl Validation {
    /// Errors, records included.
    pub fn errors(&self) -> usize {
        self.count(Severity::Error) + self.record_errors.len()
    }

    /// Warnings, the apps whose canary keeps running between releases included.
    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning) + self.replicas.len()
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// `2 Canary, 1 MetricTemplate, 0 error(s), 1 warning(s)`.
    pub fn summary(&self) -> String {
        format!(
            "{} Canary, {} MetricTemplate, {} error(s), {} warning(s)",
            self.catalog.canaries.len() + self.catalog.invalid.len(),
            self.catalog.templates.iter().count(),
            self.errors(),
            self.warnings()
        )
    }
}

/// Checks every Canary and MetricTemplate under `roots` of `tree`, with the rules `step`
/// applies.
pub fn validate(
    tree: &dyn SourceTree,
    roots: &[String],
    min_interval: Duration,
) -> Result<Validation, SourceError> {
    let mut scanner = Scanner::new(roots, min_interval);
    let catalog = scanner.scan(tree)?;
    let mut findings = catalog.errors.clone();
    let canaries: Vec<_> = catalog.canaries.iter().map(|(c, _)| c).collect();
    let mut resolver = Resolver::default();
    let resolved = crate::repo::rules::resolve_all(tree, &canaries, &mut resolver);
    let mut record_errors = Vec::new();
    for (canary, _) in &catalog.canaries {
        if let Some(errors) = resolved.errors.get(&canary.file) {
            findings.extend(errors.iter().cloned());
            continue;
        }
        if let Err(errors) = crate::repo::kustomize::gates(canary, &catalog.templates) {
            findings.extend(errors);
        }
        // The record weir keeps beside the app, when the tree has one: a record `step`
        // would refuse is refused here first.
        if let Some(source) = resolved.sources.get(&canary.file) {
            let now = chrono::Utc::now();
            if let Err(e) = crate::engine::read_state(tree, &source.dir, canary, Some(now)) {
                record_errors.push(e.to_string());
            }
        }
    }
    findings.extend(catalog.canaries.iter().flat_map(|(_, w)| w.iter().cloned()));
    let replicas = catalog
        .canaries
        .iter()
        .filter_map(|(canary, _)| {
            let source = resolved.sources.get(&canary.file)?;
            let warning = match &source.opt_in {
                OptIn::Listed { file, .. } => not_written_yet(tree, &source.dir, file)?,
                other => replicas_warning(other)?,
            };
            Some((canary.file.clone(), warning))
        })
        .collect();
    Ok(Validation {
        catalog,
        sources: resolved.sources,
        findings,
        record_errors,
        replicas,
    })
}

/// The warning for an app whose kustomization does not list weir's canary-replicas
/// component, placed where the line goes.
pub fn replicas_warning(opt_in: &OptIn) -> Option<LocatedError> {
    Some(LocatedError {
        file: opt_in.file(),
        line: opt_in.line(),
        col: 1,
        severity: Severity::Warning,
        field: "components".into(),
        message: opt_in.advice()?,
    })
}

/// The warning for an app whose kustomization lists weir's canary-replicas component
/// before weir has written it: until weir's first step for the app, the folder does not build.
fn not_written_yet(tree: &dyn SourceTree, app_dir: &str, file: &str) -> Option<LocatedError> {
    let component = crate::core::names::replicas_component_dir(app_dir);
    if tree.id(&component).is_some() {
        return None;
    }
    let at = tree
        .read(file)
        .ok()
        .and_then(|b| PositionIndex::parse(&String::from_utf8_lossy(&b)).ok())
        .map(|ix| ix.locate(0, &[Seg::Key("components".into())]));
    Some(LocatedError {
        file: file.to_string(),
        line: at.map_or(1, |l| l.line),
        col: at.map_or(1, |l| l.col),
        severity: Severity::Warning,
        field: "components".into(),
        message: format!(
            "lists weir's canary-replicas component, which weir writes in its first step for this app: until then {app_dir} does not build, and Flux applies nothing of the Kustomization that holds it; add the line once {component} exists"
        ),
    })
}

/// Runs `weir validate`.
pub(crate) fn command(args: ValidateArgs, out: &mut Out) -> anyhow::Result<ExitCode> {
    let (roots, min_interval) = config::spec(&args.spec)?;
    let tree = DiskTree::new(&args.dir);
    let v = crate::cli::validate::validate(&tree, &roots, min_interval)?;
    for finding in &v.findings {
        out.line(&finding.to_string());
    }
    for e in &v.record_errors {
        out.line(e);
    }
    for (_, w) in &v.replicas {
        out.line(&w.to_string());
    }
    out.line(&v.summary());
    Job::from_env().outputs(&[("errors", v.errors().to_string())])?;
    Ok(ExitCode::from(if v.errors() > 0 { PROBLEMS } else { OK }))
}
