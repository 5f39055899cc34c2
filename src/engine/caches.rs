//! What the engine remembers between ticks to make idle ones cheap: the scanner's and the
//! resolver's memos, the apps seen idle and the inputs they were idle on, a head at which
//! nothing was due, and when a closed gate was last looked at.
//!
//! Memory only: a memo may skip work whose outcome it already knows, and must never stand in
//! for a decision the planner has not made on the same inputs.

use crate::core::plan::{Decision, GateReport};
use crate::repo::kustomize::Resolver;
use crate::repo::objects::ObjectId;
use crate::repo::source::Scanner;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// The inputs an idle decision read: while they stay the same, the app stays idle.
pub(super) type IdleKey = (Option<ObjectId>, String, Option<ObjectId>);

/// What the engine remembers between ticks.
#[derive(Default)]
pub(super) struct Caches {
    pub(super) scanner: Option<Scanner>,
    pub(super) resolver: Resolver,
    /// Apps seen idle, by Canary file.
    pub(super) idle: HashMap<String, IdleKey>,
    /// A head at which every app was idle with nothing due.
    pub(super) quiet_head: Option<ObjectId>,
    /// What the last published tick found, and whether the one kept beside the local copy
    /// was read.
    pub(super) memo: Option<super::memo::Memo>,
    pub(super) memo_read: bool,
    /// When gates were last looked at without a step following (a closed gate), by Canary
    /// file, with the revision they were about: the next look is an interval later.
    looks: HashMap<String, (String, DateTime<Utc>)>,
    /// When weir first saw an app's last step applied with its Deployments ready, by Canary
    /// file, with the id of weir's folder then: the step's interval starts there.
    ready: HashMap<String, (ObjectId, DateTime<Utc>)>,
}

impl Caches {
    /// Empty memos around a scanner.
    pub(super) fn new(scanner: Scanner) -> Caches {
        Caches {
            scanner: Some(scanner),
            ..Caches::default()
        }
    }

    /// Keeps what planning found idle (only once what it planned is published).
    pub(super) fn keep_memos(&mut self, memos: Vec<(String, IdleKey)>) {
        for (file, key) in memos {
            self.idle.insert(file, key);
        }
    }

    /// When the step whose folder is `owned` was first seen applied and ready (now, the
    /// first time).
    pub(super) fn ready_since(
        &mut self,
        file: &str,
        owned: ObjectId,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let entry = self.ready.entry(file.to_string()).or_insert((owned, now));
        if entry.0 != owned {
            *entry = (owned, now);
        }
        entry.1
    }

    /// The app's step is not (or no longer) applied and ready.
    pub(super) fn not_ready(&mut self, file: &str) {
        self.ready.remove(file);
    }

    /// When gates were last looked at for this Canary file and revision without a step
    /// following.
    pub(super) fn last_look(&self, file: &str, revision: &str) -> Option<DateTime<Utc>> {
        self.looks
            .get(file)
            .filter(|(rev, _)| rev == revision)
            .map(|(_, at)| *at)
    }

    /// A closed gate is looked at again an interval later; a step starts afresh.
    pub(super) fn remember_look(
        &mut self,
        file: &str,
        decision: &Decision,
        report: Option<&GateReport>,
    ) {
        match (decision, report) {
            (Decision::Write(_), _) => {
                self.looks.remove(file);
            }
            (Decision::Idle { .. }, Some(r)) => {
                self.looks
                    .insert(file.to_string(), (r.revision.clone(), r.at));
            }
            _ => {}
        }
    }
}
