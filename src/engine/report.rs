//! What a tick tells its caller: one line per app (phase, weights, what happened or why
//! not), the commit it made, and the events.
//!
//! It fills lines from what it is given; it must never decide a step or read anything.

use crate::core::events::Event;
use crate::core::plan;
use crate::core::record::State;
use crate::core::spec::{Canary, LocatedError, Strategy};
use crate::core::text::short;
use crate::repo::objects::ObjectId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One app's line in a report.
#[derive(Debug, Clone, Serialize)]
pub struct AppReport {
    /// `namespace/name`.
    pub app: String,
    /// The app folder.
    pub dir: String,
    /// Current (or newly written) phase.
    pub phase: Option<String>,
    /// Canary weight.
    pub canary_weight: Option<u8>,
    /// Primary weight.
    pub primary_weight: Option<u8>,
    /// Failed checks so far.
    pub failed_checks: Option<u32>,
    /// The Canary's threshold.
    pub threshold: u32,
    /// Revision under analysis.
    pub canary_revision: Option<String>,
    /// Revision of the primary.
    pub primary_revision: Option<String>,
    /// Images of the primary.
    pub primary_images: Vec<String>,
    /// When the next step is due.
    pub next_step_at: Option<String>,
    /// What this tick did or why it did nothing.
    pub message: String,
    /// Errors that kept weir from acting on this app.
    pub errors: Vec<String>,
    /// PR mode: the step waiting in the app's pull request branch, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposed: Option<String>,
    /// `weir status`: what Flux applied of the app: `abc1234` (the commit, holding weir's last
    /// step), `behind: abc1234`, `unknown` without a cluster view, or why the view cannot say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// `weir status`: ready pods of the primary and the canary, `primary 2/2, canary 0/0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<String>,
    /// The Canary's namespace (for metrics' labels).
    #[serde(skip)]
    pub namespace: String,
    /// The Canary's `targetRef.name`: Flagger labels its series with it, not the Canary's name.
    #[serde(skip)]
    pub target: String,
    /// Flagger's name of the strategy: `canary`, `blue-green` or `ab-testing`.
    #[serde(skip)]
    pub strategy: &'static str,
    /// The Canary skips its analysis (`skipAnalysis: true`).
    #[serde(skip)]
    pub skip_analysis: bool,
    /// The metric gates run this tick, as the planner was given them.
    #[serde(skip)]
    pub gates: Vec<GateReading>,
    /// How long this tick's evidence took for the app, when gates or webhooks were asked.
    #[serde(skip)]
    pub analysis_seconds: Option<f64>,
}

/// One metric gate's answer in a tick, with its bounds and how long the query took.
#[derive(Debug, Clone, PartialEq)]
pub struct GateReading {
    /// The metric's name in the Canary.
    pub metric: String,
    /// The value, when there was one.
    pub value: Option<f64>,
    /// Inclusive lower bound.
    pub min: Option<f64>,
    /// Inclusive upper bound.
    pub max: Option<f64>,
    /// `passed`, `failed`, `no_data` or `unreachable`, as the check itself says.
    pub outcome: &'static str,
    /// Seconds the query took.
    pub seconds: f64,
}

/// What a tick did.
#[derive(Debug, Clone, Default)]
pub struct TickReport {
    /// The head the final plan was made on.
    pub head: Option<ObjectId>,
    /// The commit made, if any.
    pub commit: Option<ObjectId>,
    /// The commit message.
    pub message: Option<String>,
    /// Unified diff of the commit (dry runs).
    pub diff: Option<String>,
    /// Push attempts used.
    pub attempts: u32,
    /// Per-app lines, sorted by folder.
    pub apps: Vec<AppReport>,
    /// Spec errors and warnings found in the repository.
    pub spec_errors: Vec<LocatedError>,
    /// What moved.
    pub events: Vec<Event>,
}

pub(super) fn base_report(canary: &Canary) -> AppReport {
    Base::of(canary).line()
}

/// What an app's line says before anything is looked at: all from its Canary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Base {
    app: String,
    dir: String,
    namespace: String,
    target: String,
    strategy: String,
    skip_analysis: bool,
    threshold: u32,
}

impl Base {
    pub(super) fn of(canary: &Canary) -> Base {
        Base {
            app: format!("{}/{}", canary.namespace, canary.name),
            dir: crate::repo::source::parent(&canary.file).to_string(),
            namespace: canary.namespace.clone(),
            target: canary.target.clone(),
            strategy: strategy_name(&canary.analysis.strategy).to_string(),
            skip_analysis: canary.skip_analysis,
            threshold: canary.analysis.threshold,
        }
    }

    pub(super) fn line(&self) -> AppReport {
        let strategy = match self.strategy.as_str() {
            "blue-green" => "blue-green",
            "ab-testing" => "ab-testing",
            "" => "",
            _ => "canary",
        };
        AppReport {
            namespace: self.namespace.clone(),
            target: self.target.clone(),
            strategy,
            skip_analysis: self.skip_analysis,
            gates: Vec::new(),
            analysis_seconds: None,
            app: self.app.clone(),
            dir: self.dir.clone(),
            phase: None,
            canary_weight: None,
            primary_weight: None,
            failed_checks: None,
            threshold: self.threshold,
            canary_revision: None,
            primary_revision: None,
            primary_images: Vec::new(),
            next_step_at: None,
            message: String::new(),
            errors: Vec::new(),
            proposed: None,
            applied: None,
            pods: None,
        }
    }
}

/// Flagger's name of a strategy.
fn strategy_name(strategy: &Strategy) -> &'static str {
    match strategy {
        Strategy::Canary { .. } => "canary",
        Strategy::BlueGreen { .. } => "blue-green",
        Strategy::AbTesting { .. } => "ab-testing",
    }
}

/// Lines for Canary documents that could not be read: every app found is reported.
pub(super) fn invalid_lines(catalog: &crate::repo::source::Catalog) -> Vec<AppReport> {
    catalog
        .invalid
        .iter()
        .map(|bad| AppReport {
            errors: bad.errors.iter().map(|e| e.to_string()).collect(),
            ..Base {
                app: bad.display_name(),
                dir: crate::repo::source::parent(&bad.file).to_string(),
                namespace: String::new(),
                target: String::new(),
                strategy: String::new(),
                skip_analysis: false,
                threshold: 0,
            }
            .line()
        })
        .collect()
}

pub(super) fn fill(line: &mut AppReport, canary: &Canary, s: &State) {
    line.phase = Some(s.phase.to_string());
    line.canary_weight = Some(s.canary_weight.get());
    line.primary_weight = Some(s.canary_weight.complement().get());
    line.failed_checks = Some(s.failed_checks);
    line.canary_revision = s.canary_revision.as_deref().map(|r| short(r).to_string());
    line.primary_revision = Some(short(&s.promoted_revision).to_string());
    line.primary_images = s.primary_images.clone();
    if s.phase.in_flight() {
        line.next_step_at = Some(fmt_time(plan::due_at(&canary.analysis, s)));
    }
}

pub(super) fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
