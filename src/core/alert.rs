//! What an alert says and what a published step reports: the values the notifier port carries.

use crate::core::app::AppRef;
use crate::core::spec::{AlertSeverity, AlertTarget};

/// What an alert says: Flagger's message and fields, and the commit that made the step.
#[derive(Debug, Clone)]
pub struct Alert {
    /// The app.
    pub app: AppRef,
    /// How much it matters.
    pub severity: AlertSeverity,
    /// Flagger's wording: `Canary analysis completed successfully, promotion finished.`
    pub message: String,
    /// The phase after the step.
    pub phase: crate::core::spec::Phase,
    /// The canary weight after the step.
    pub canary_weight: crate::core::spec::Weight,
    /// Failed checks so far, and the threshold.
    pub failed_checks: u32,
    /// The failed-checks threshold.
    pub threshold: u32,
    /// The checks that failed, with their values: `request-success-rate 91.3 < 99`.
    pub failing: Vec<String>,
    /// The commit (or pull request) that made the step, when published.
    pub commit: Option<String>,
    /// Extra fields, in order (`Target`, `Traffic routing`, ...), as Flagger adds them.
    pub fields: Vec<(String, String)>,
    /// Where it goes; each target filters by its severity.
    pub targets: Vec<AlertTarget>,
}

/// One published step of one app, for whoever follows every step (GitHub commit statuses
/// and Deployments), not only the alerting ones.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The app.
    pub app: AppRef,
    /// The phase after the step.
    pub phase: crate::core::spec::Phase,
    /// The canary weight after the step.
    pub canary_weight: crate::core::spec::Weight,
    /// What the step did, one line (the commit subject's event).
    pub event: String,
    /// The revision the release is about: the one under analysis, else the app's source.
    pub revision: String,
    /// The commit that carries the step.
    pub commit: String,
}
