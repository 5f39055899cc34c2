//! Flagger's canary phases: the `status.phase` of a Canary.

use serde::{Deserialize, Serialize};

/// Flagger's canary phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Adopting an app with a cluster view: the primary is created while traffic stays on
    /// the target's pods; it moves to the primary once the primary is ready.
    Initializing,
    /// The owned objects exist; the primary serves all traffic.
    Initialized,
    /// Waiting for a manual gate (reserved for confirm-rollout gates).
    Waiting,
    /// A revision is under analysis.
    Progressing,
    /// Waiting for a promotion gate (reserved for confirm-promotion gates).
    WaitingPromotion,
    /// The primary was updated to the canary's revision; traffic is returning to it.
    Promoting,
    /// All traffic is on the updated primary.
    Finalising,
    /// The last revision was promoted.
    Succeeded,
    /// The last revision was rolled back.
    Failed,
}

impl Phase {
    /// True while a release is being analysed or promoted.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            Phase::Waiting
                | Phase::Progressing
                | Phase::WaitingPromotion
                | Phase::Promoting
                | Phase::Finalising
        )
    }

    /// True while the canary Deployment runs pods: from the step that starts an analysis
    /// to the one that ends the release. As in Flagger, the canary is at zero replicas at
    /// initialisation, after a promotion and after a rollback, and while a new revision
    /// waits for its confirm-rollout gate; it is scaled up only once that gate is open. While
    /// weir adopts an app (`Initializing`) the target keeps its pods: they serve all traffic.
    pub fn canary_runs(self) -> bool {
        match self {
            Phase::Initialized | Phase::Waiting | Phase::Succeeded | Phase::Failed => false,
            // Adopting: the target's pods serve every request until the primary is ready.
            Phase::Initializing
            | Phase::Progressing
            | Phase::WaitingPromotion
            | Phase::Promoting
            | Phase::Finalising => true,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
