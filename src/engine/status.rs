//! `weir status`: every app's state as recorded at the head of the branch, and the step
//! waiting in its pull request, if any.
//!
//! It reads only: it must never decide a step, ask a gate, or write anything.

use super::gather::read_state;
use super::observe::{step_in, StepIn};
use super::report::{base_report, fill, invalid_lines, TickReport};
use super::{Engine, TickError};
use crate::core::cluster::{ClusterTarget, Observation, Workload, RECENT_COMMITS};
use crate::core::names::owned_dir;
use crate::core::record::State;
use crate::core::spec::Canary;
use crate::repo::change::Waiting;
use crate::repo::kustomize;
use crate::repo::objects::ObjectId;
use crate::repo::source::SourceTree;
use std::collections::BTreeMap;

impl Engine {
    /// Every app's state as recorded at the head of the branch, and what the cluster runs of
    /// it when there is a cluster view, without deciding anything.
    pub async fn status(&mut self) -> Result<TickReport, TickError> {
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
        let mut targets = Vec::new();
        // The branch's recent commits, for a view that reads what Flux applied per commit.
        let recent: std::sync::Arc<[String]> = match &self.ports.cluster {
            Some(view) if view.reads_commits() => self
                .ports
                .repo
                .first_parents(head, RECENT_COMMITS)?
                .iter()
                .map(ObjectId::to_string)
                .collect(),
            _ => std::sync::Arc::from(Vec::new()),
        };
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
                    line.applied = Some("unknown (no cluster view)".to_string());
                    targets.push((
                        report.apps.len(),
                        ClusterTarget {
                            dir: source.dir.clone(),
                            namespace: canary.namespace.clone(),
                            target: canary.target.clone(),
                            kustomization: canary.kustomization.clone(),
                            recent: recent.clone(),
                        },
                    ));
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
        if let Some(view) = &self.ports.cluster {
            let (lines, targets): (Vec<usize>, Vec<ClusterTarget>) = targets.into_iter().unzip();
            let seen = view.observe(&targets).await;
            for ((line, target), seen) in lines.into_iter().zip(&targets).zip(seen) {
                let (applied, pods) = self.shown(tree, target, seen);
                report.apps[line].applied = Some(applied);
                report.apps[line].pods = pods;
            }
        }
        report.apps.extend(invalid_lines(&catalog));
        report
            .apps
            .sort_by(|a, b| a.dir.cmp(&b.dir).then(a.app.cmp(&b.app)));
        Ok(report)
    }

    /// What the cluster view says of one app, for people: the applied commit (and whether it
    /// holds weir's last step for the app) and the ready pods of the primary and the canary.
    fn shown(
        &self,
        head: &dyn SourceTree,
        target: &ClusterTarget,
        seen: Result<Observation, String>,
    ) -> (String, Option<String>) {
        let obs = match seen {
            Ok(obs) => obs,
            Err(why) => return (format!("cannot tell: {why}"), None),
        };
        let dir = owned_dir(&target.dir);
        let applied = match step_in(self.ports.repo.as_ref(), head, &dir, &obs) {
            StepIn::Nothing => format!("nothing yet ({})", obs.applier),
            StepIn::NoCommit(rev) => format!("{rev} ({})", obs.applier),
            StepIn::NotFetched(commit) => format!("behind: {}", commit.short(7)),
            StepIn::Commit { commit, holds } => {
                let short = commit.short(7);
                match (holds, &obs.unhealthy) {
                    (_, Some(why)) => format!("{short}, {} {why}", obs.applier),
                    (true, None) => short,
                    (false, None) => format!("behind: {short}"),
                }
            }
        };
        let pods = obs.reads_workloads.then(|| {
            let count = |w: &Option<Workload>| match w {
                Some(w) => format!("{}/{}", w.available, w.desired.unwrap_or(1)),
                None => "none".to_string(),
            };
            format!(
                "primary {}, canary {}",
                count(&obs.primary),
                count(&obs.canary)
            )
        });
        (applied, pods)
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
