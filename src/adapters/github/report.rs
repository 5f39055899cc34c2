//! Each app's progress on GitHub, for a config repository on GitHub: a commit status on every
//! commit weir makes (context `weir/<namespace>/<name>`), and a Deployment per release to the
//! environment `<namespace>/<name>` whose statuses follow the phases, so the repository's
//! Deployments page shows where every app is. What GitHub answers is only logged: the step
//! is already in Git.

use super::{
    CommitStatus, DeploymentPayload, DeploymentRequest, DeploymentState, DeploymentStatusUpdate,
    GitHub, StatusState,
};
use crate::core::alert::{Alert, StepReport};
use crate::core::spec::Phase;
use crate::ports::{BoxFuture, Notifier};
use std::sync::Arc;
use tracing::warn;

/// Reports steps to GitHub.
pub struct GitHubReporter {
    github: Arc<dyn GitHub>,
    /// The branch weir writes: the ref each Deployment names.
    branch: String,
}

impl GitHubReporter {
    /// Reports through `github`, naming `branch` as the deployed ref.
    pub fn new(github: Arc<dyn GitHub>, branch: impl Into<String>) -> GitHubReporter {
        GitHubReporter {
            github,
            branch: branch.into(),
        }
    }

    async fn report(&self, step: &StepReport) {
        let context = format!("weir/{}", step.app);
        let (state, deployment_state) = states(step.phase);
        let description = format!("{}: {}", step.phase, step.event);
        let status = CommitStatus {
            sha: step.commit.clone(),
            context,
            state,
            description: description.clone(),
            target_url: None,
        };
        if let Err(e) = self.github.set_status(&status).await {
            warn!(app = %step.app, "commit status not set: {e}");
        }
        // One Deployment per release: found again at each of its steps by its task.
        let request = DeploymentRequest {
            git_ref: self.branch.clone(),
            environment: step.app.to_string(),
            task: format!("weir:release:{}", crate::core::text::short(&step.revision)),
            description: format!(
                "weir releases revision {}",
                crate::core::text::short(&step.revision)
            ),
            payload: DeploymentPayload {
                app: step.app.name.clone(),
                namespace: step.app.namespace.clone(),
                revision: step.revision.clone(),
            },
        };
        let deployment = match self.github.deployment(&request).await {
            Ok(d) => d,
            Err(e) => {
                warn!(app = %step.app, "deployment not recorded: {e}");
                return;
            }
        };
        let update = DeploymentStatusUpdate {
            deployment: deployment.id,
            state: deployment_state,
            description,
            environment: None,
            log_url: None,
        };
        if let Err(e) = self.github.deployment_status(&update).await {
            warn!(app = %step.app, "deployment status not set: {e}");
        }
    }
}

/// The commit status and the deployment state of a phase: a release under way is pending
/// (in progress), a promotion or an initialisation succeeded, a rollback failed.
pub fn states(phase: Phase) -> (StatusState, DeploymentState) {
    match phase {
        Phase::Initialized | Phase::Succeeded => (StatusState::Success, DeploymentState::Success),
        Phase::Failed => (StatusState::Failure, DeploymentState::Failure),
        Phase::Waiting | Phase::Initializing => (StatusState::Pending, DeploymentState::Queued),
        Phase::Progressing | Phase::WaitingPromotion | Phase::Promoting | Phase::Finalising => {
            (StatusState::Pending, DeploymentState::InProgress)
        }
    }
}

impl Notifier for GitHubReporter {
    fn notify<'a>(&'a self, _alert: &'a Alert) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn step<'a>(&'a self, step: &'a StepReport) -> BoxFuture<'a, ()> {
        Box::pin(self.report(step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_map_to_github_states() {
        assert_eq!(
            states(Phase::Succeeded),
            (StatusState::Success, DeploymentState::Success)
        );
        assert_eq!(
            states(Phase::Failed),
            (StatusState::Failure, DeploymentState::Failure)
        );
        assert_eq!(
            states(Phase::WaitingPromotion),
            (StatusState::Pending, DeploymentState::InProgress)
        );
        assert_eq!(
            states(Phase::Waiting),
            (StatusState::Pending, DeploymentState::Queued)
        );
    }
}
