//! `weir status`: every app's state as recorded at the head of the branch, and the step
//! waiting in its pull request, if any.
//!
//! It reads only: it must never decide a step, ask a gate, or write anything.

use super::gather::read_state;
use super::report::{base_report, fill, invalid_lines, TickReport};
use super::{Engine, TickError};
use crate::core::record::State;
use crate::core::spec::Canary;
use crate::repo::change::Waiting;
use crate::repo::kustomize;
use crate::repo::objects::ObjectId;
use std::collections::BTreeMap;

impl Engine {
    /// Every app's state as recorded at the head of the branch, without deciding anything.
    pub fn status(&mut self) -> Result<TickReport, TickError> {
        let head = self.ports.repo.fetch()?;
        // Steps the publisher keeps off the branch (PR mode: each app's branch).
        let waiting: BTreeMap<(String, String), Waiting> = self
            .ports
            .publisher
            .pending(self.ports.repo.as_mut())?
            .into_iter()
            .map(|w| ((w.namespace.clone(), w.name.clone()), w))
            .collect();
        let tree = self.ports.repo.tree(head)?;
        let tree = tree.as_ref();
        let scanner = self.caches.scanner.as_mut().expect("made in new");
        let catalog = scanner.scan(tree)?;
        let mut report = TickReport {
            head: Some(head),
            spec_errors: catalog.errors.clone(),
            ..TickReport::default()
        };
        let canaries: Vec<&Canary> = catalog.canaries.iter().map(|(c, _)| c).collect();
        let resolved = crate::repo::rules::resolve_all(tree, &canaries, &mut self.caches.resolver);
        for (canary, _) in &catalog.canaries {
            let mut line = base_report(canary);
            match resolved.sources.get(&canary.file).ok_or_else(|| {
                resolved
                    .errors
                    .get(&canary.file)
                    .cloned()
                    .unwrap_or_default()
            }) {
                Ok(source) => {
                    line.dir = source.dir.clone();
                    if let Err(errors) = kustomize::gates(canary, &catalog.templates) {
                        line.errors.extend(errors.iter().map(|e| e.to_string()));
                    }
                    // Checked as `step` checks it, times included: what `step` would
                    // refuse shows here as the app's error.
                    let now = Some(self.ports.clock.now());
                    match read_state(tree, &source.dir, canary, now) {
                        Ok(Some(s)) => {
                            fill(&mut line, canary, &s);
                            line.message = s.message.clone();
                            let key = (canary.namespace.clone(), canary.name.clone());
                            if let Some(w) = waiting.get(&key) {
                                line.proposed =
                                    self.proposed(w.tip, &w.place, &source.dir, canary, &s);
                            }
                        }
                        Ok(None) => line.message = "not initialized yet".into(),
                        Err(e) => line.errors.extend(e.lines()),
                    }
                }
                Err(errors) => line.errors.extend(errors.iter().map(|e| e.to_string())),
            }
            report.apps.push(line);
        }
        report.apps.extend(invalid_lines(&catalog));
        report
            .apps
            .sort_by(|a, b| a.dir.cmp(&b.dir).then(a.app.cmp(&b.app)));
        Ok(report)
    }

    /// The step a pull request branch carries for an app, when it is newer than the record
    /// on the branch (a step waiting to be merged).
    fn proposed(
        &self,
        tip: ObjectId,
        branch: &str,
        dir: &str,
        canary: &Canary,
        merged: &State,
    ) -> Option<String> {
        let tree = self.ports.repo.tree(tip).ok()?;
        let s = read_state(tree.as_ref(), dir, canary, None).ok()??;
        (s.last_step_at > merged.last_step_at).then(|| {
            format!(
                "waiting in {branch}: {} (phase {}, canary weight {}%)",
                crate::core::text::clean(&s.message, 300),
                s.phase,
                s.canary_weight
            )
        })
    }
}
