//! The GitHub port: what PR mode, commit statuses, deployments and the `weir plan` comment
//! need from GitHub, as one small trait ([`GitHub`]) over plain structs, with no HTTP or
//! octocrab type in it. The octocrab adapter is [`rest::RestGitHub`]; its retry and rate-limit
//! rules are the pure functions of [`retry`]. [`applied::CommitStatusView`] reads the statuses
//! Flux posts as a cluster view.
//!
//! One value of the trait speaks for one repository (the config repository, named by
//! [`RepoName`]). Every operation a publisher repeats after a crash is idempotent here:
//! opening a pull request that already exists returns it, the marked comment is updated in
//! place, a deployment is found before one is created, a merge that already happened is
//! reported as merged.
//!
//! It never decides what a review, a status or a refused merge means for a release: that is
//! the planner's and the publisher's business. It never prints the token.

pub mod applied;
pub mod report;
pub mod rest;
pub mod retry;

use crate::ports::BoxFuture;
use chrono::{DateTime, Utc};

/// A failure talking to GitHub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GitHubError {
    /// What was asked, what GitHub answered (first line, bounded, URLs redacted) and what to
    /// do. Never holds the token.
    pub message: String,
    /// Worth retrying later (rate limit, server trouble, no connection); false for a refused
    /// token, a missing repository or an invalid request, which a retry only repeats.
    pub transient: bool,
    /// The HTTP status GitHub answered, when it answered.
    pub status: Option<u16>,
    /// When a rate limit lifts, when GitHub said so: do not call before.
    pub retry_at: Option<DateTime<Utc>>,
}

impl GitHubError {
    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> GitHubError {
        GitHubError {
            message: message.into(),
            transient: false,
            status: None,
            retry_at: None,
        }
    }

    /// A transient error.
    pub fn transient(message: impl Into<String>) -> GitHubError {
        GitHubError {
            message: message.into(),
            transient: true,
            status: None,
            retry_at: None,
        }
    }
}

/// The owner and name of a GitHub repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoName {
    /// The user or organisation.
    pub owner: String,
    /// The repository, without `.git`.
    pub name: String,
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl RepoName {
    /// Reads the owner and name from a config repository URL: `https://github.com/o/r(.git)`,
    /// `git@github.com:o/r.git` or `ssh://git@github.com/o/r`, on github.com or an Enterprise
    /// host. Credentials in the URL are ignored and never repeated in the error.
    pub fn from_remote_url(url: &str) -> Result<RepoName, GitHubError> {
        let path = remote_path(url.trim()).ok_or_else(|| bad_remote(url))?;
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let mut parts = path.split('/');
        let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad_remote(url));
        };
        if !valid_segment(owner) || !valid_segment(name) {
            return Err(bad_remote(url));
        }
        Ok(RepoName {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }
}

impl RepoName {
    /// Reads `owner/name`, as `GITHUB_REPOSITORY` and `--github-repository` give it.
    pub fn from_full_name(full: &str) -> Result<RepoName, GitHubError> {
        match full.trim().split_once('/') {
            Some((owner, name)) if valid_segment(owner) && valid_segment(name) => Ok(RepoName {
                owner: owner.to_string(),
                name: name.to_string(),
            }),
            _ => Err(GitHubError::permanent(format!(
                "`{}` is not a GitHub repository: write it OWNER/NAME",
                crate::core::text::clean(full, 100)
            ))),
        }
    }
}

/// The path part of a remote URL, or `None` when it is no URL GitHub serves.
fn remote_path(url: &str) -> Option<&str> {
    if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git") {
            return None;
        }
        // The authority ends at the first `/`; user-info and port stay in it.
        let (_authority, path) = rest.split_once('/')?;
        let path = path.split(['?', '#']).next().unwrap_or("");
        return Some(path);
    }
    // scp-like: `[user@]host:owner/name.git`; a path with `/` before the `:` is a local path.
    let (host, path) = url.split_once(':')?;
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some(path)
}

/// A user, organisation or repository name as GitHub allows them.
fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn bad_remote(url: &str) -> GitHubError {
    GitHubError::permanent(format!(
        "cannot tell the GitHub repository from the config repository URL `{}`: expected \
         https://github.com/OWNER/NAME(.git), git@github.com:OWNER/NAME.git or \
         ssh://git@github.com/OWNER/NAME; set the repository explicitly",
        crate::core::text::clean(&crate::core::secret::redact_url(url), 200)
    ))
}

/// Whether a pull request is open, closed or merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    /// Open.
    Open,
    /// Closed without merging.
    Closed,
    /// Merged (and therefore closed).
    Merged,
}

/// A pull request, as much of it as weir uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number.
    pub number: u64,
    /// Open, closed or merged.
    pub state: PullState,
    /// The branch it merges (in this repository).
    pub head_branch: String,
    /// The commit at the head of that branch, as GitHub last saw it.
    pub head_sha: String,
    /// The branch it merges into.
    pub base_branch: String,
    /// Its title.
    pub title: String,
    /// Its body (empty when none).
    pub body: String,
    /// Its page, for links in statuses and messages.
    pub html_url: Option<String>,
    /// The commit that merged it, once merged.
    pub merge_commit_sha: Option<String>,
    /// GitHub's view of whether it can merge cleanly: `None` while GitHub computes it.
    pub mergeable: Option<bool>,
}

/// A pull request to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPullRequest {
    /// The branch with the changes (in this repository).
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    /// The title.
    pub title: String,
    /// The body (Markdown).
    pub body: String,
}

/// A reviewer's standing verdict on a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewVerdict {
    /// Approved.
    Approved,
    /// Asked for changes.
    ChangesRequested,
    /// Their last verdict was dismissed.
    Dismissed,
    /// Only commented.
    Commented,
}

/// The latest verdict of one reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The reviewer's login.
    pub reviewer: String,
    /// The verdict that stands: a later comment does not undo an approval, as on GitHub.
    pub verdict: ReviewVerdict,
    /// The commit the verdict was given on: an approval of an older commit approves that one.
    pub commit: Option<String>,
    /// When it was submitted.
    pub submitted_at: Option<DateTime<Utc>>,
}

/// How a pull request is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeMethod {
    /// One new commit on the base with the pull request's changes (weir's default: the
    /// branch's history reads one step a commit).
    #[default]
    Squash,
    /// A merge commit.
    Merge,
    /// The head's commits replayed on the base.
    Rebase,
}

impl MergeMethod {
    /// GitHub's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMethod::Squash => "squash",
            MergeMethod::Merge => "merge",
            MergeMethod::Rebase => "rebase",
        }
    }
}

/// A merge to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequest {
    /// The pull request.
    pub number: u64,
    /// The head commit weir checked: GitHub refuses the merge when the branch moved since.
    pub expected_head: String,
    /// How to merge.
    pub method: MergeMethod,
    /// The commit title (GitHub's default when `None`).
    pub title: Option<String>,
    /// The commit message (GitHub's default when `None`).
    pub message: Option<String>,
}

/// What came of a merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Merged (now or before): the commit on the base branch.
    Merged {
        /// The merge (or squash) commit.
        sha: String,
    },
    /// Refused for now (405): required reviews, required checks pending or failing, branch
    /// protection. GitHub's message says which.
    NotMergeable {
        /// GitHub's message.
        reason: String,
    },
    /// The changes conflict with the base branch.
    Conflict {
        /// GitHub's message.
        reason: String,
    },
    /// The head branch is no longer at the expected commit: look again before merging.
    StaleHead {
        /// GitHub's message.
        reason: String,
    },
}

/// An issue or pull request comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// Its id.
    pub id: u64,
    /// Its body.
    pub body: String,
    /// Who wrote it.
    pub author: String,
}

/// What [`GitHub::upsert_comment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// No comment had the marker: one was created.
    Created,
    /// The marked comment was rewritten.
    Updated,
    /// The marked comment already said exactly this: nothing was sent.
    Unchanged,
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    /// Waiting.
    Pending,
    /// Passed.
    Success,
    /// Failed.
    Failure,
    /// Could not be decided.
    Error,
}

impl StatusState {
    /// GitHub's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

/// The longest description GitHub takes on a commit status.
pub const STATUS_DESCRIPTION_MAX: usize = 140;

/// A commit status to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// The commit.
    pub sha: String,
    /// Which check this is (`weir/podinfo`); a new status with the same context replaces the
    /// old one on GitHub.
    pub context: String,
    /// Its state.
    pub state: StatusState,
    /// One line; cut to [`STATUS_DESCRIPTION_MAX`] characters.
    pub description: String,
    /// Where details are.
    pub target_url: Option<String>,
}

/// A commit status as GitHub lists it: what a reader of statuses (the commit-status cluster
/// view) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedStatus {
    /// Which check it is (`kustomization/apps/0c9c2e41` for Flux).
    pub context: String,
    /// Its state.
    pub state: StatusState,
    /// Its description (empty when none).
    pub description: String,
    /// When it was posted, when GitHub says.
    pub created_at: Option<DateTime<Utc>>,
}

/// The most statuses [`GitHub::commit_statuses`] returns: one page, GitHub's largest.
pub const STATUSES_PAGE: usize = 100;

/// What weir records in a deployment's payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentPayload {
    /// The Canary's name.
    pub app: String,
    /// The Canary's namespace.
    pub namespace: String,
    /// The revision being released.
    pub revision: String,
}

/// A deployment to find or create: one per release of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRequest {
    /// The commit (or branch, or tag) deployed.
    pub git_ref: String,
    /// The environment (`production`).
    pub environment: String,
    /// The task (`deploy:podinfo`).
    pub task: String,
    /// A short description.
    pub description: String,
    /// The app and revision.
    pub payload: DeploymentPayload,
}

/// A deployment on GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Its id.
    pub id: u64,
    /// The commit GitHub resolved the ref to.
    pub sha: String,
    /// Whether this call created it (false: it existed).
    pub created: bool,
}

/// The state of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentState {
    /// Waiting to start.
    Queued,
    /// Not started.
    Pending,
    /// Rolling out.
    InProgress,
    /// Released.
    Success,
    /// Rolled back.
    Failure,
    /// Could not be carried out.
    Error,
    /// Superseded by a later release.
    Inactive,
}

impl DeploymentState {
    /// GitHub's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Queued => "queued",
            DeploymentState::Pending => "pending",
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Error => "error",
            DeploymentState::Inactive => "inactive",
        }
    }
}

/// A deployment status to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatusUpdate {
    /// The deployment.
    pub deployment: u64,
    /// Its new state.
    pub state: DeploymentState,
    /// One line; cut to [`STATUS_DESCRIPTION_MAX`] characters.
    pub description: String,
    /// The environment, when it changes with this status.
    pub environment: Option<String>,
    /// Where the log of the release is.
    pub log_url: Option<String>,
}

/// GitHub, for one repository.
pub trait GitHub: Send + Sync {
    /// `owner/name`, for messages.
    fn repo(&self) -> &RepoName;

    /// The open pull request whose head is `branch` of this repository, if any.
    fn find_pull_request<'a>(
        &'a self,
        branch: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>, GitHubError>>;

    /// Opens a pull request; when one is already open for the branch (weir opened it and
    /// crashed before recording it), returns that one instead.
    fn open_pull_request<'a>(
        &'a self,
        new: &'a NewPullRequest,
    ) -> BoxFuture<'a, Result<PullRequest, GitHubError>>;

    /// Reads a pull request by number.
    fn pull_request(&self, number: u64) -> BoxFuture<'_, Result<PullRequest, GitHubError>>;

    /// Rewrites the title and body.
    fn update_pull_request<'a>(
        &'a self,
        number: u64,
        title: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<PullRequest, GitHubError>>;

    /// Comments why, then closes the pull request.
    fn close_pull_request<'a>(
        &'a self,
        number: u64,
        comment: &'a str,
    ) -> BoxFuture<'a, Result<PullRequest, GitHubError>>;

    /// Adds a comment to an issue or pull request. Not retried after a server error, which
    /// could post it twice.
    fn comment<'a>(
        &'a self,
        number: u64,
        body: &'a str,
    ) -> BoxFuture<'a, Result<Comment, GitHubError>>;

    /// Creates or rewrites the one comment containing `marker` (a hidden HTML comment such
    /// as `<!-- weir:plan -->`); `body` must contain the marker. Never makes a second one.
    fn upsert_comment<'a>(
        &'a self,
        number: u64,
        marker: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<Upserted, GitHubError>>;

    /// The standing verdict of each reviewer, sorted by login.
    fn reviews(&self, number: u64) -> BoxFuture<'_, Result<Vec<Review>, GitHubError>>;

    /// Whether `login` may write to this repository (permission admin, maintain or write):
    /// only such reviews count, as GitHub's branch protection counts them.
    fn can_write<'a>(&'a self, login: &'a str) -> BoxFuture<'a, Result<bool, GitHubError>>;

    /// Merges the pull request if its head is still the expected commit.
    fn merge<'a>(
        &'a self,
        request: &'a MergeRequest,
    ) -> BoxFuture<'a, Result<MergeOutcome, GitHubError>>;

    /// Sets a commit status.
    fn set_status<'a>(&'a self, status: &'a CommitStatus)
        -> BoxFuture<'a, Result<(), GitHubError>>;

    /// The newest statuses of commit `sha` (a full commit id), newest first as GitHub lists
    /// them (`GET /repos/{owner}/{repo}/commits/{ref}/statuses`): one request, one page of
    /// at most [`STATUSES_PAGE`]; older statuses past it are not read.
    fn commit_statuses<'a>(
        &'a self,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ListedStatus>, GitHubError>>;

    /// Finds the deployment of `(git_ref, environment, task)` for this app, or creates it.
    fn deployment<'a>(
        &'a self,
        request: &'a DeploymentRequest,
    ) -> BoxFuture<'a, Result<Deployment, GitHubError>>;

    /// Adds a status to a deployment.
    fn deployment_status<'a>(
        &'a self,
        update: &'a DeploymentStatusUpdate,
    ) -> BoxFuture<'a, Result<(), GitHubError>>;
}

/// Cuts a description to [`STATUS_DESCRIPTION_MAX`] characters on one line.
pub fn status_description(text: &str) -> String {
    crate::core::text::clean(text, STATUS_DESCRIPTION_MAX - 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(url: &str) -> Result<String, GitHubError> {
        RepoName::from_remote_url(url).map(|r| r.to_string())
    }

    #[test]
    fn a_full_name_is_owner_slash_name() {
        let full = |s: &str| RepoName::from_full_name(s).map(|r| r.to_string());
        assert_eq!(full("acme/gitops-istio").unwrap(), "acme/gitops-istio");
        for bad in ["acme", "/x", "acme/", "a/b/c", "acme/../x", "ac me/x"] {
            assert!(full(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_owner_and_name_from_the_remote_urls_github_gives() {
        for url in [
            "https://github.com/acme/config",
            "https://github.com/acme/config.git",
            "https://github.com/acme/config/",
            "https://x-access-token:ghp_secret@github.com/acme/config.git",
            "git@github.com:acme/config.git",
            "git@github.com:acme/config",
            "ssh://git@github.com/acme/config",
            "ssh://git@github.com:22/acme/config.git",
            "https://ghe.example.com/acme/config.git",
        ] {
            assert_eq!(name(url).as_deref(), Ok("acme/config"), "{url}");
        }
        assert_eq!(
            name("git@github.com:my-org/my.repo_1.git").unwrap(),
            "my-org/my.repo_1"
        );
    }

    #[test]
    fn refuses_what_is_not_a_github_repository_and_never_repeats_credentials() {
        for url in [
            "",
            "/srv/git/config.git",
            "file:///srv/git/config.git",
            "https://github.com/acme",
            "https://github.com/acme/config/tree/main",
            "https://github.com/",
            "git@github.com:config.git",
            "https://github.com/acme/../x",
            "https://github.com/acme/con fig",
        ] {
            let err = RepoName::from_remote_url(url).unwrap_err();
            assert!(!err.transient, "{url}");
            assert!(err.message.contains("OWNER/NAME"), "{}", err.message);
        }
        let err = RepoName::from_remote_url("https://u:ghp_secret@github.com/acme").unwrap_err();
        assert!(!err.message.contains("ghp_secret"), "{}", err.message);
    }

    #[test]
    fn descriptions_fit_a_status() {
        let long = "x".repeat(500);
        assert!(status_description(&long).chars().count() <= STATUS_DESCRIPTION_MAX);
        assert_eq!(status_description("a\nb"), "a b");
    }
}
