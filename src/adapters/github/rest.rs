//! The [`GitHub`] port over GitHub's REST API, with octocrab.
//!
//! octocrab carries the requests (base URL, token, TLS with ring, GitHub's headers) and its
//! models read the answers. weir sends through octocrab's raw methods (`_get`, `_post`, ...)
//! rather than its typed builders because those drop the answer's headers, and the headers
//! say how long a rate limit lasts and where the next page is. octocrab's own retry layer is
//! not compiled in (it would re-send a 429 at once): [`super::retry`] decides and this module
//! waits, through a [`Sleeper`] that tests replace.
//!
//! Safety rules: the token goes only into octocrab's `Authorization` header, which octocrab
//! sends only to the base URL's host; a next-page link to any other host is refused. What
//! GitHub answers is shown as its first line, at most [`SHOWN_MAX`] characters, with URLs
//! redacted and the token scrubbed.

use super::retry::{self, Answer, RetrySettings, Verdict};
use super::{
    Comment, CommitStatus, Deployment, DeploymentRequest, DeploymentStatusUpdate, GitHub,
    GitHubError, ListedStatus, MergeOutcome, MergeRequest, NewPullRequest, PullRequest, PullState,
    RepoName, Review, ReviewVerdict, StatusState, Upserted,
};
use crate::core::secret::{redact_url, Scrubber, Secret};
use crate::ports::BoxFuture;
use octocrab::models;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The most of GitHub's message shown in an error.
pub const SHOWN_MAX: usize = 200;

/// Pages read before a listing counts as runaway (100 a page: 10,000 items).
pub const MAX_PAGES: usize = 100;

/// Items asked for per page (GitHub's maximum).
const PER_PAGE: u32 = 100;

/// GitHub's public API.
pub const GITHUB_API: &str = "https://api.github.com";

/// Waits between attempts; tests pass one that records the wait and returns at once.
pub trait Sleeper: Send + Sync {
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()>;
}

/// Waits on tokio's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Where GitHub is and how hard to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestSettings {
    /// The API's base URL: [`GITHUB_API`], `https://HOST/api/v3` for GitHub Enterprise
    /// Server, or a local stand-in.
    pub base_url: String,
    /// The bound on one attempt, from connecting to the end of the answer.
    pub timeout: Duration,
    /// Retries and waits.
    pub retry: RetrySettings,
}

impl Default for RestSettings {
    fn default() -> RestSettings {
        RestSettings {
            base_url: GITHUB_API.to_string(),
            timeout: Duration::from_secs(30),
            retry: RetrySettings::default(),
        }
    }
}

/// GitHub over REST for one repository. Cheap to clone.
#[derive(Clone)]
pub struct RestGitHub {
    client: octocrab::Octocrab,
    repo: RepoName,
    base: url::Url,
    settings: RestSettings,
    sleeper: Arc<dyn Sleeper>,
    scrubber: Scrubber,
}

impl std::fmt::Debug for RestGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestGitHub")
            .field("repo", &self.repo)
            .field("base", &redact_url(self.base.as_str()))
            .field("settings", &self.settings.retry)
            .finish_non_exhaustive()
    }
}

/// One answer, read whole.
struct Reply {
    status: u16,
    retry_after: Option<String>,
    remaining: Option<String>,
    reset: Option<String>,
    link: Option<String>,
    body: String,
}

impl Reply {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// What the retry rules look at, with GitHub's `message` already extracted.
    fn answer<'a>(&'a self, message: &'a str) -> Answer<'a> {
        Answer {
            status: self.status,
            retry_after: self.retry_after.as_deref(),
            remaining: self.remaining.as_deref(),
            reset: self.reset.as_deref(),
            message,
        }
    }
}

/// GitHub's error body.
#[derive(Debug, Default, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<Value>,
}

impl ErrorBody {
    fn parse(body: &str) -> ErrorBody {
        serde_json::from_str(body).unwrap_or_default()
    }

    /// The message and each error's own message, joined: `Validation Failed: A pull request
    /// already exists for acme:weir/podinfo.`
    fn text(&self, raw: &str) -> String {
        let mut text = self
            .message
            .clone()
            .unwrap_or_else(|| raw.lines().next().unwrap_or("").to_string());
        for e in &self.errors {
            let detail = match e {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => {
                    let field = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("");
                    if !field("message").is_empty() {
                        Some(field("message").to_string())
                    } else {
                        // `PullRequest.head invalid`
                        let at = [field("resource"), field("field")]
                            .into_iter()
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(".");
                        Some(format!("{at} {}", field("code")).trim().to_string())
                    }
                }
                _ => None,
            };
            if let Some(d) = detail {
                text.push_str(": ");
                text.push_str(&d);
            }
        }
        text
    }
}

/// Which requests are sent again after a server error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnServerError {
    /// Reads, updates in place, and creations that are harmless or detected when repeated.
    Retry,
    /// Creations GitHub may have carried out before failing (a comment, a deployment).
    Stop,
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Get,
    Post,
    Patch,
    Put,
}

/// Why one attempt got no answer from GitHub.
#[derive(Debug, thiserror::Error)]
enum NoAnswer {
    /// The connection failed or broke (the error chain, one line).
    #[error("{0}")]
    Transport(String),
    /// Nothing came within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

impl RestGitHub {
    /// A client for `repo`, authenticated with `token` (surrounding whitespace ignored).
    pub fn new(
        repo: RepoName,
        token: &Secret,
        settings: RestSettings,
    ) -> Result<RestGitHub, GitHubError> {
        crate::adapters::tls::install_crypto_provider();
        let token_value = token.expose().trim();
        // octocrab puts the token in a header and panics when it cannot.
        if token_value.is_empty() || !token_value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(GitHubError::permanent(
                "the GitHub token is empty or holds characters a token never has (spaces, \
                 control characters, non-ASCII): check the file or variable it comes from",
            ));
        }
        let base = url::Url::parse(settings.base_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                GitHubError::permanent(format!(
                    "the GitHub API URL `{}` is not an http(s) URL",
                    redact_url(&settings.base_url)
                ))
            })?;
        let client = octocrab::Octocrab::builder()
            .base_uri(base.as_str())
            .map_err(|e| GitHubError::permanent(format!("bad GitHub API URL: {e}")))?
            .personal_token(token_value.to_string())
            .build()
            .map_err(|e| GitHubError::permanent(format!("cannot build the GitHub client: {e}")))?;
        Ok(RestGitHub {
            client,
            repo,
            base,
            settings,
            sleeper: Arc::new(TokioSleeper),
            scrubber: Scrubber::new([token_value.to_string()]),
        })
    }

    /// Waits with `sleeper` instead of tokio's timer.
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> RestGitHub {
        self.sleeper = sleeper;
        self
    }

    /// `/repos/OWNER/NAME` followed by `rest`.
    fn path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.repo.owner, self.repo.name)
    }

    /// Sends one request, retrying rate limits and (when allowed) server errors and lost
    /// connections. Returns the last answer, whatever its status, unless retrying gave up.
    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
        on_server_error: OnServerError,
        what: &str,
    ) -> Result<Reply, GitHubError> {
        let retry_5xx = on_server_error == OnServerError::Retry;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let reply = match self.attempt(method, uri, body).await {
                Ok(reply) => reply,
                Err(reason) => {
                    if retry_5xx && attempts < self.settings.retry.max_attempts {
                        let wait = retry::backoff(&self.settings.retry, attempts);
                        tracing::debug!(%what, attempts, %reason, "GitHub unreachable; retrying");
                        self.sleeper.sleep(wait).await;
                        continue;
                    }
                    return Err(GitHubError::transient(self.shown(&format!(
                        "cannot {what}: no answer from GitHub at {} after {attempts} \
                         attempt(s): {reason}",
                        self.base
                    ))));
                }
            };
            let message = ErrorBody::parse(&reply.body).text(&reply.body);
            let verdict = retry::decide(
                &self.settings.retry,
                &reply.answer(&message),
                attempts,
                retry_5xx,
                chrono::Utc::now(),
            );
            match verdict {
                Verdict::Done => return Ok(reply),
                Verdict::RetryAfter(wait) => {
                    tracing::debug!(
                        %what,
                        status = reply.status,
                        attempts,
                        wait_ms = wait.as_millis() as u64,
                        "GitHub asked to wait; retrying"
                    );
                    self.sleeper.sleep(wait).await;
                }
                Verdict::GiveUp { retry_at } => {
                    return Err(self.gave_up(&reply, &message, attempts, retry_at, what))
                }
            }
        }
    }

    /// The error after retries stopped on a rate limit or a server error.
    fn gave_up(
        &self,
        reply: &Reply,
        message: &str,
        attempts: u32,
        retry_at: Option<chrono::DateTime<chrono::Utc>>,
        what: &str,
    ) -> GitHubError {
        let when = match retry_at {
            Some(at) => format!("; retry after {}", at.to_rfc3339()),
            None => "; retry later".to_string(),
        };
        let kind = if retry::is_rate_limited(&reply.answer(message)) {
            "rate limited by GitHub"
        } else {
            "GitHub failed"
        };
        GitHubError {
            message: self.shown(&format!(
                "cannot {what}: {kind} ({} {}) after {attempts} attempt(s){when}",
                reply.status,
                first_line(message)
            )),
            transient: true,
            status: Some(reply.status),
            retry_at,
        }
    }

    /// One attempt, bounded by the timeout; `Err` when no answer came.
    async fn attempt(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Reply, NoAnswer> {
        let call = async {
            let response = match method {
                Method::Get => self.client._get(uri).await,
                Method::Post => self.client._post(uri, body).await,
                Method::Patch => self.client._patch(uri, body).await,
                Method::Put => self.client._put(uri, body).await,
            }
            .map_err(|e| NoAnswer::Transport(error_chain(&e)))?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let status = response.status().as_u16();
            let retry_after = header("retry-after");
            let remaining = header("x-ratelimit-remaining");
            let reset = header("x-ratelimit-reset");
            let link = header("link");
            let body = self
                .client
                .body_to_string(response)
                .await
                .map_err(|e| NoAnswer::Transport(error_chain(&e)))?;
            Ok(Reply {
                status,
                retry_after,
                remaining,
                reset,
                link,
                body,
            })
        };
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(NoAnswer::Timeout(self.settings.timeout)),
        }
    }

    /// Redacts and scrubs text that may hold what GitHub or the transport echoed.
    fn shown(&self, text: &str) -> String {
        self.scrubber.scrub(&redact_url(text))
    }

    /// The error for an answer that is not a success and was not retried.
    fn refused(&self, reply: &Reply, what: &str) -> GitHubError {
        let message = ErrorBody::parse(&reply.body).text(&reply.body);
        let hint = match reply.status {
            401 => "; the token was refused: check that it is valid and not expired",
            403 => {
                "; the token lacks a permission: it needs contents, pull requests, statuses \
                 and deployments (read and write) on this repository"
            }
            301 | 302 | 307 | 308 => {
                "; the repository was renamed or transferred: update the config repository URL"
            }
            404 => {
                "; the repository or object does not exist, or the token cannot see the \
                 repository"
            }
            _ => "",
        };
        GitHubError {
            message: self.shown(&format!(
                "cannot {what} in {}: GitHub answered {} {}{hint}",
                self.repo,
                reply.status,
                first_line(&message)
            )),
            transient: reply.status >= 500,
            status: Some(reply.status),
            retry_at: None,
        }
    }

    /// The answer's body as `T`, or why not.
    fn parse<T: DeserializeOwned>(&self, reply: &Reply, what: &str) -> Result<T, GitHubError> {
        if !reply.is_success() {
            return Err(self.refused(reply, what));
        }
        serde_json::from_str(&reply.body).map_err(|e| GitHubError {
            message: self.shown(&format!(
                "cannot {what}: GitHub's answer ({}) is not what its API documents: {e}",
                reply.status
            )),
            transient: false,
            status: Some(reply.status),
            retry_at: None,
        })
    }

    /// Every item of a listing, following `rel="next"` links on the same host.
    async fn list<T: DeserializeOwned>(
        &self,
        first: String,
        what: &str,
    ) -> Result<Vec<T>, GitHubError> {
        let sep = if first.contains('?') { '&' } else { '?' };
        let mut uri = format!("{first}{sep}per_page={PER_PAGE}");
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let reply = self
                .send(Method::Get, &uri, None, OnServerError::Retry, what)
                .await?;
            let page: Vec<T> = self.parse(&reply, what)?;
            items.extend(page);
            match reply.link.as_deref().and_then(next_link) {
                None => return Ok(items),
                Some(next) => uri = self.same_host(&next, what)?,
            }
        }
        Err(GitHubError::permanent(format!(
            "cannot {what}: more than {MAX_PAGES} pages of {PER_PAGE}"
        )))
    }

    /// A next-page link, if it points at the API's own host (octocrab would send it there
    /// without the token anyway; weir does not follow it at all).
    fn same_host(&self, link: &str, what: &str) -> Result<String, GitHubError> {
        let next = url::Url::parse(link).ok().filter(|u| {
            u.scheme() == self.base.scheme()
                && u.host_str() == self.base.host_str()
                && u.port_or_known_default() == self.base.port_or_known_default()
        });
        next.map(String::from).ok_or_else(|| {
            GitHubError::permanent(self.shown(&format!(
                "cannot {what}: GitHub's next-page link `{link}` leaves {}",
                self.base
            )))
        })
    }

    async fn find_pull(&self, branch: &str) -> Result<Option<PullRequest>, GitHubError> {
        let what = format!("find the open pull request of branch {branch}");
        let head = format!("{}:{branch}", self.repo.owner);
        let uri = self.path(&format!("/pulls?state=open&head={}", query_value(&head)));
        let pulls: Vec<models::pulls::PullRequest> = self.list(uri, &what).await?;
        Ok(pulls
            .iter()
            .map(pull_request)
            .find(|p| p.head_branch == branch && p.state == PullState::Open))
    }

    async fn open_pull(&self, new: &NewPullRequest) -> Result<PullRequest, GitHubError> {
        let what = format!("open a pull request from {} into {}", new.head, new.base);
        let body = json!({
            "title": new.title,
            "head": new.head,
            "base": new.base,
            "body": new.body,
        });
        let reply = self
            .send(
                Method::Post,
                &self.path("/pulls"),
                Some(&body),
                OnServerError::Retry,
                &what,
            )
            .await?;
        if reply.status == 422 && already_exists(&reply.body) {
            tracing::info!(branch = %new.head, "a pull request is already open; using it");
            return self.find_pull(&new.head).await?.ok_or_else(|| {
                GitHubError::transient(format!(
                    "cannot {what}: GitHub says one already exists, but no open pull request \
                     has that head; retry later"
                ))
            });
        }
        let pull: models::pulls::PullRequest = self.parse(&reply, &what)?;
        Ok(pull_request(&pull))
    }

    async fn get_pull(&self, number: u64) -> Result<PullRequest, GitHubError> {
        let what = format!("read pull request #{number}");
        let reply = self
            .send(
                Method::Get,
                &self.path(&format!("/pulls/{number}")),
                None,
                OnServerError::Retry,
                &what,
            )
            .await?;
        let pull: models::pulls::PullRequest = self.parse(&reply, &what)?;
        Ok(pull_request(&pull))
    }

    async fn patch_pull(
        &self,
        number: u64,
        body: &Value,
        what: &str,
    ) -> Result<PullRequest, GitHubError> {
        let reply = self
            .send(
                Method::Patch,
                &self.path(&format!("/pulls/{number}")),
                Some(body),
                OnServerError::Retry,
                what,
            )
            .await?;
        let pull: models::pulls::PullRequest = self.parse(&reply, what)?;
        Ok(pull_request(&pull))
    }

    async fn close_pull(&self, number: u64, comment: &str) -> Result<PullRequest, GitHubError> {
        let current = self.get_pull(number).await?;
        if current.state != PullState::Open {
            return Ok(current);
        }
        self.add_comment(number, comment).await?;
        let what = format!("close pull request #{number}");
        self.patch_pull(number, &json!({ "state": "closed" }), &what)
            .await
    }

    async fn add_comment(&self, number: u64, body: &str) -> Result<Comment, GitHubError> {
        let what = format!("comment on #{number}");
        let reply = self
            .send(
                Method::Post,
                &self.path(&format!("/issues/{number}/comments")),
                Some(&json!({ "body": body })),
                OnServerError::Stop,
                &what,
            )
            .await?;
        let comment: models::issues::Comment = self.parse(&reply, &what)?;
        Ok(comment_of(&comment))
    }

    async fn upsert(&self, number: u64, marker: &str, body: &str) -> Result<Upserted, GitHubError> {
        if marker.trim().is_empty() || !body.contains(marker) {
            return Err(GitHubError::permanent(format!(
                "cannot update the marked comment on #{number}: the body must contain the \
                 marker `{marker}`, or the next update would not find it"
            )));
        }
        let what = format!("list the comments of #{number}");
        let comments: Vec<models::issues::Comment> = self
            .list(self.path(&format!("/issues/{number}/comments")), &what)
            .await?;
        let marked: Vec<Comment> = comments
            .iter()
            .map(comment_of)
            .filter(|c| c.body.contains(marker))
            .collect();
        let Some(existing) = marked.first() else {
            self.add_comment(number, body).await?;
            return Ok(Upserted::Created);
        };
        if marked.len() > 1 {
            tracing::warn!(
                number,
                count = marked.len(),
                "several comments carry weir's marker; updating the oldest"
            );
        }
        if existing.body == body {
            return Ok(Upserted::Unchanged);
        }
        let what = format!("update comment {} on #{number}", existing.id);
        let reply = self
            .send(
                Method::Patch,
                &self.path(&format!("/issues/comments/{}", existing.id)),
                Some(&json!({ "body": body })),
                OnServerError::Retry,
                &what,
            )
            .await?;
        let _: models::issues::Comment = self.parse(&reply, &what)?;
        Ok(Upserted::Updated)
    }

    async fn list_reviews(&self, number: u64) -> Result<Vec<Review>, GitHubError> {
        let what = format!("list the reviews of #{number}");
        let reviews: Vec<models::pulls::Review> = self
            .list(self.path(&format!("/pulls/{number}/reviews")), &what)
            .await?;
        Ok(standing_verdicts(reviews.iter().filter_map(review_of)))
    }

    async fn collaborator_can_write(&self, login: &str) -> Result<bool, GitHubError> {
        let what = format!("read the permission of {login}");
        let reply = self
            .send(
                Method::Get,
                &self.path(&format!("/collaborators/{login}/permission")),
                None,
                OnServerError::Retry,
                &what,
            )
            .await?;
        // Someone GitHub does not know as a user of the repository has no permission.
        if reply.status == 404 {
            return Ok(false);
        }
        #[derive(serde::Deserialize)]
        struct Permission {
            permission: String,
        }
        let answer: Permission = self.parse(&reply, &what)?;
        Ok(matches!(
            answer.permission.as_str(),
            "admin" | "maintain" | "write"
        ))
    }

    async fn merge_pull(&self, request: &MergeRequest) -> Result<MergeOutcome, GitHubError> {
        let number = request.number;
        let what = format!("merge pull request #{number}");
        let mut body = json!({
            "sha": request.expected_head,
            "merge_method": request.method.as_str(),
        });
        if let Some(title) = &request.title {
            body["commit_title"] = json!(title);
        }
        if let Some(message) = &request.message {
            body["commit_message"] = json!(message);
        }
        let sent = self
            .send(
                Method::Put,
                &self.path(&format!("/pulls/{number}/merge")),
                Some(&body),
                OnServerError::Stop,
                &what,
            )
            .await;
        let reply = match sent {
            Ok(reply) => reply,
            // A merge that failed on GitHub's side may still have happened.
            Err(e) if e.transient && e.status.is_some_and(|s| s >= 500) => {
                let pull = self.get_pull(number).await?;
                return merged_already(&pull, request).ok_or(e);
            }
            Err(e) => return Err(e),
        };
        let reason = first_line(&ErrorBody::parse(&reply.body).text(&reply.body));
        match reply.status {
            200 => {
                let merged: models::pulls::Merge = self.parse(&reply, &what)?;
                match merged.sha {
                    Some(sha) if merged.merged => Ok(MergeOutcome::Merged { sha }),
                    _ => Err(GitHubError::permanent(format!(
                        "cannot {what}: GitHub answered 200 without a merge commit"
                    ))),
                }
            }
            405 => {
                // Merged before (weir did not hear back), or refused for a reason to show.
                let pull = self.get_pull(number).await?;
                if let Some(outcome) = merged_already(&pull, request) {
                    return Ok(outcome);
                }
                Ok(if pull.mergeable == Some(false) {
                    MergeOutcome::Conflict { reason }
                } else {
                    MergeOutcome::NotMergeable { reason }
                })
            }
            409 if reason
                .to_ascii_lowercase()
                .contains("head branch was modified") =>
            {
                Ok(MergeOutcome::StaleHead { reason })
            }
            409 => Ok(MergeOutcome::Conflict { reason }),
            _ => Err(self.refused(&reply, &what)),
        }
    }

    async fn create_status(&self, status: &CommitStatus) -> Result<(), GitHubError> {
        let what = format!("set status {} on {}", status.context, short(&status.sha));
        if !is_sha(&status.sha) {
            return Err(GitHubError::permanent(format!(
                "cannot {what}: `{}` is not a commit id",
                crate::core::text::clean(&status.sha, 80)
            )));
        }
        let mut body = json!({
            "state": status.state.as_str(),
            "context": status.context,
            "description": super::status_description(&status.description),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        let reply = self
            .send(
                Method::Post,
                &self.path(&format!("/statuses/{}", status.sha)),
                Some(&body),
                OnServerError::Retry,
                &what,
            )
            .await?;
        let _: models::Status = self.parse(&reply, &what)?;
        Ok(())
    }

    async fn list_statuses(&self, sha: &str) -> Result<Vec<ListedStatus>, GitHubError> {
        let what = format!("list the statuses of {}", short(sha));
        if !is_sha(sha) {
            return Err(GitHubError::permanent(format!(
                "cannot {what}: `{}` is not a commit id",
                crate::core::text::clean(sha, 80)
            )));
        }
        // One page on purpose: GitHub lists the newest first, and the newest are what a
        // reader of statuses needs; following every page would cost a request per page.
        let uri = self.path(&format!(
            "/commits/{sha}/statuses?per_page={}",
            super::STATUSES_PAGE
        ));
        let reply = self
            .send(Method::Get, &uri, None, OnServerError::Retry, &what)
            .await?;
        let statuses: Vec<models::Status> = self.parse(&reply, &what)?;
        Ok(statuses.iter().filter_map(listed_status).collect())
    }

    async fn find_or_create_deployment(
        &self,
        request: &DeploymentRequest,
    ) -> Result<Deployment, GitHubError> {
        let mut last_error = None;
        // Twice at most: a creation that failed on GitHub's side may have happened, so look
        // again before creating again.
        for _ in 0..2 {
            if let Some(found) = self.find_deployment(request).await? {
                return Ok(found);
            }
            match self.create_deployment(request).await {
                Ok(created) => return Ok(created),
                Err(e) if e.transient && e.status.is_some_and(|s| s >= 500) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| GitHubError::transient("cannot create the deployment")))
    }

    async fn find_deployment(
        &self,
        request: &DeploymentRequest,
    ) -> Result<Option<Deployment>, GitHubError> {
        let what = format!(
            "list the deployments of {} to {}",
            short(&request.git_ref),
            request.environment
        );
        let by = if is_sha(&request.git_ref) {
            "sha"
        } else {
            "ref"
        };
        let uri = self.path(&format!(
            "/deployments?{by}={}&environment={}&task={}",
            query_value(&request.git_ref),
            query_value(&request.environment),
            query_value(&request.task)
        ));
        let deployments: Vec<models::repos::Deployment> = self.list(uri, &what).await?;
        // The filters are checked again here: the newest exact match wins.
        Ok(deployments
            .iter()
            .filter(|d| deployment_matches(d, request))
            .max_by_key(|d| d.id.into_inner())
            .map(|d| Deployment {
                id: d.id.into_inner(),
                sha: d.sha.clone(),
                created: false,
            }))
    }

    async fn create_deployment(
        &self,
        request: &DeploymentRequest,
    ) -> Result<Deployment, GitHubError> {
        let what = format!(
            "create a deployment of {} to {}",
            short(&request.git_ref),
            request.environment
        );
        let body = json!({
            "ref": request.git_ref,
            "task": request.task,
            "auto_merge": false,
            "required_contexts": [],
            "payload": request.payload,
            "environment": request.environment,
            "description": super::status_description(&request.description),
        });
        let reply = self
            .send(
                Method::Post,
                &self.path("/deployments"),
                Some(&body),
                OnServerError::Stop,
                &what,
            )
            .await?;
        if reply.status != 201 {
            // 202 (GitHub merged the default branch in) cannot happen with auto_merge off.
            return Err(self.refused(&reply, &what));
        }
        let created: models::repos::Deployment = self.parse(&reply, &what)?;
        Ok(Deployment {
            id: created.id.into_inner(),
            sha: created.sha,
            created: true,
        })
    }

    async fn create_deployment_status(
        &self,
        update: &DeploymentStatusUpdate,
    ) -> Result<(), GitHubError> {
        let what = format!(
            "set deployment {} to {}",
            update.deployment,
            update.state.as_str()
        );
        let mut body = json!({
            "state": update.state.as_str(),
            "description": super::status_description(&update.description),
        });
        if let Some(environment) = &update.environment {
            body["environment"] = json!(environment);
        }
        if let Some(url) = &update.log_url {
            body["log_url"] = json!(url);
        }
        let reply = self
            .send(
                Method::Post,
                &self.path(&format!("/deployments/{}/statuses", update.deployment)),
                Some(&body),
                OnServerError::Retry,
                &what,
            )
            .await?;
        let _: models::repos::DeploymentStatus = self.parse(&reply, &what)?;
        Ok(())
    }
}

impl GitHub for RestGitHub {
    fn repo(&self) -> &RepoName {
        &self.repo
    }

    fn find_pull_request<'a>(
        &'a self,
        branch: &'a str,
    ) -> BoxFuture<'a, Result<Option<PullRequest>, GitHubError>> {
        Box::pin(self.find_pull(branch))
    }

    fn open_pull_request<'a>(
        &'a self,
        new: &'a NewPullRequest,
    ) -> BoxFuture<'a, Result<PullRequest, GitHubError>> {
        Box::pin(self.open_pull(new))
    }

    fn pull_request(&self, number: u64) -> BoxFuture<'_, Result<PullRequest, GitHubError>> {
        Box::pin(self.get_pull(number))
    }

    fn update_pull_request<'a>(
        &'a self,
        number: u64,
        title: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<PullRequest, GitHubError>> {
        Box::pin(async move {
            let what = format!("update pull request #{number}");
            self.patch_pull(number, &json!({ "title": title, "body": body }), &what)
                .await
        })
    }

    fn close_pull_request<'a>(
        &'a self,
        number: u64,
        comment: &'a str,
    ) -> BoxFuture<'a, Result<PullRequest, GitHubError>> {
        Box::pin(self.close_pull(number, comment))
    }

    fn comment<'a>(
        &'a self,
        number: u64,
        body: &'a str,
    ) -> BoxFuture<'a, Result<Comment, GitHubError>> {
        Box::pin(self.add_comment(number, body))
    }

    fn upsert_comment<'a>(
        &'a self,
        number: u64,
        marker: &'a str,
        body: &'a str,
    ) -> BoxFuture<'a, Result<Upserted, GitHubError>> {
        Box::pin(self.upsert(number, marker, body))
    }

    fn reviews(&self, number: u64) -> BoxFuture<'_, Result<Vec<Review>, GitHubError>> {
        Box::pin(self.list_reviews(number))
    }

    fn can_write<'a>(&'a self, login: &'a str) -> BoxFuture<'a, Result<bool, GitHubError>> {
        Box::pin(self.collaborator_can_write(login))
    }

    fn merge<'a>(
        &'a self,
        request: &'a MergeRequest,
    ) -> BoxFuture<'a, Result<MergeOutcome, GitHubError>> {
        Box::pin(self.merge_pull(request))
    }

    fn set_status<'a>(
        &'a self,
        status: &'a CommitStatus,
    ) -> BoxFuture<'a, Result<(), GitHubError>> {
        Box::pin(self.create_status(status))
    }

    fn commit_statuses<'a>(
        &'a self,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ListedStatus>, GitHubError>> {
        Box::pin(self.list_statuses(sha))
    }

    fn deployment<'a>(
        &'a self,
        request: &'a DeploymentRequest,
    ) -> BoxFuture<'a, Result<Deployment, GitHubError>> {
        Box::pin(self.find_or_create_deployment(request))
    }

    fn deployment_status<'a>(
        &'a self,
        update: &'a DeploymentStatusUpdate,
    ) -> BoxFuture<'a, Result<(), GitHubError>> {
        Box::pin(self.create_deployment_status(update))
    }
}

/// The outcome for a pull request that is already merged: merged at the expected head (weir
/// merged it and did not hear back), or at another one (someone merged a later head).
fn merged_already(pull: &PullRequest, request: &MergeRequest) -> Option<MergeOutcome> {
    if pull.state != PullState::Merged {
        return None;
    }
    Some(match &pull.merge_commit_sha {
        Some(sha) if pull.head_sha == request.expected_head => {
            MergeOutcome::Merged { sha: sha.clone() }
        }
        _ => MergeOutcome::StaleHead {
            reason: format!(
                "pull request #{} was merged at {}, not at {}",
                request.number,
                short(&pull.head_sha),
                short(&request.expected_head)
            ),
        },
    })
}

/// octocrab's pull request, as the port's.
fn pull_request(pull: &models::pulls::PullRequest) -> PullRequest {
    let merged = pull.merged_at.is_some() || pull.merged == Some(true);
    let state = if merged {
        PullState::Merged
    } else if matches!(pull.state, Some(models::IssueState::Closed)) {
        PullState::Closed
    } else {
        PullState::Open
    };
    PullRequest {
        number: pull.number,
        state,
        head_branch: pull.head.ref_field.clone(),
        head_sha: pull.head.sha.clone(),
        base_branch: pull.base.ref_field.clone(),
        title: pull.title.clone().unwrap_or_default(),
        body: pull.body.clone().unwrap_or_default(),
        html_url: pull.html_url.as_ref().map(|u| u.to_string()),
        merge_commit_sha: if merged {
            pull.merge_commit_sha.clone()
        } else {
            None
        },
        mergeable: pull.mergeable,
    }
}

/// octocrab's status as the port's; a state octocrab does not know (it is non-exhaustive)
/// leaves the status out, as if it were another check's.
fn listed_status(status: &models::Status) -> Option<ListedStatus> {
    let state = match status.state {
        models::StatusState::Success => StatusState::Success,
        models::StatusState::Failure => StatusState::Failure,
        models::StatusState::Error => StatusState::Error,
        models::StatusState::Pending => StatusState::Pending,
        _ => return None,
    };
    Some(ListedStatus {
        context: status
            .context
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        state,
        description: status.description.clone().unwrap_or_default(),
        created_at: status.created_at,
    })
}

fn comment_of(comment: &models::issues::Comment) -> Comment {
    Comment {
        id: comment.id.into_inner(),
        body: comment.body.clone().unwrap_or_default(),
        author: comment.user.login.clone(),
    }
}

/// A submitted review as the port's; drafts (pending) and reviews by deleted users count
/// for nothing.
fn review_of(review: &models::pulls::Review) -> Option<Review> {
    use models::pulls::ReviewState as S;
    let verdict = match review.state? {
        S::Approved => ReviewVerdict::Approved,
        S::ChangesRequested => ReviewVerdict::ChangesRequested,
        S::Dismissed => ReviewVerdict::Dismissed,
        S::Commented => ReviewVerdict::Commented,
        _ => return None,
    };
    Some(Review {
        reviewer: review.user.as_ref()?.login.clone(),
        verdict,
        commit: review.commit_id.clone(),
        submitted_at: review.submitted_at,
    })
}

/// Each reviewer's standing verdict from their reviews in submission order: the latest
/// approval, change request or dismissal stands, and a later plain comment does not undo it.
pub fn standing_verdicts(reviews: impl IntoIterator<Item = Review>) -> Vec<Review> {
    let mut by_reviewer = std::collections::BTreeMap::<String, Review>::new();
    for review in reviews {
        let keeps = by_reviewer.get(&review.reviewer).is_some_and(|standing| {
            review.verdict == ReviewVerdict::Commented
                && standing.verdict != ReviewVerdict::Commented
        });
        if !keeps {
            by_reviewer.insert(review.reviewer.clone(), review);
        }
    }
    by_reviewer.into_values().collect()
}

/// Whether a listed deployment is the one asked for.
fn deployment_matches(d: &models::repos::Deployment, request: &DeploymentRequest) -> bool {
    let payload = match &d.payload {
        // GitHub keeps a payload sent as a string as a string.
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    };
    (d.sha == request.git_ref || d.ref_field == request.git_ref)
        && d.environment == request.environment
        && d.task == request.task
        && payload.get("app").and_then(Value::as_str) == Some(request.payload.app.as_str())
        && payload.get("namespace").and_then(Value::as_str)
            == Some(request.payload.namespace.as_str())
}

/// Whether a 422 says that a pull request for the head already exists.
fn already_exists(body: &str) -> bool {
    ErrorBody::parse(body)
        .text(body)
        .to_ascii_lowercase()
        .contains("a pull request already exists")
}

/// The URL of the `rel="next"` link of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

/// A query value, percent-encoded.
fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A full commit id (SHA-1 or SHA-256), lowercase or not.
fn is_sha(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first 7 characters of a commit id, for messages.
fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

/// The first line of `text`, at most [`SHOWN_MAX`] characters.
fn first_line(text: &str) -> String {
    crate::core::text::clean(text.lines().next().unwrap_or(""), SHOWN_MAX)
}

/// An error and its causes on one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    first_line(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_githubs_link_header() {
        let header = "<https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=2>; rel=\"next\", <https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=3>; rel=\"last\"";
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.github.com/repositories/1/issues/7/comments?per_page=100&page=2")
        );
        let last_page = "<https://api.github.com/x?page=1>; rel=\"first\", <https://api.github.com/x?page=2>; rel=\"prev\"";
        assert_eq!(next_link(last_page), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("garbage; rel=\"next\""), None);
    }

    #[test]
    fn githubs_error_bodies_read_as_one_line() {
        let duplicate = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:weir/podinfo."}],"documentation_url":"https://docs.github.com/rest/pulls/pulls#create-a-pull-request","status":"422"}"#;
        assert_eq!(
            ErrorBody::parse(duplicate).text(duplicate),
            "Validation Failed: A pull request already exists for acme:weir/podinfo."
        );
        assert!(already_exists(duplicate));
        let missing = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"head","code":"invalid"}]}"#;
        assert_eq!(
            ErrorBody::parse(missing).text(missing),
            "Validation Failed: PullRequest.head invalid"
        );
        assert!(!already_exists(missing));
        assert_eq!(
            ErrorBody::parse("<html>\nbad gateway").text("<html>\nbad gateway"),
            "<html>"
        );
    }

    fn review(who: &str, verdict: ReviewVerdict, commit: &str) -> Review {
        Review {
            reviewer: who.into(),
            verdict,
            commit: Some(commit.into()),
            submitted_at: None,
        }
    }

    #[test]
    fn a_later_comment_does_not_undo_a_verdict_but_a_later_verdict_does() {
        use ReviewVerdict::*;
        let standing = standing_verdicts([
            review("bob", ChangesRequested, "a"),
            review("alice", Commented, "a"),
            review("alice", Approved, "a"),
            review("alice", Commented, "b"),
            review("bob", Approved, "b"),
            review("carol", Commented, "b"),
        ]);
        assert_eq!(
            standing,
            [
                review("alice", Approved, "a"),
                review("bob", Approved, "b"),
                review("carol", Commented, "b"),
            ]
        );
        let dismissed = standing_verdicts([
            review("alice", Approved, "a"),
            review("alice", Dismissed, "a"),
        ]);
        assert_eq!(dismissed, [review("alice", Dismissed, "a")]);
    }

    #[test]
    fn only_full_commit_ids_are_shas() {
        assert!(is_sha(&"a".repeat(40)));
        assert!(is_sha(&"0".repeat(64)));
        assert!(!is_sha("main"));
        assert!(!is_sha(&"g".repeat(40)));
        assert!(!is_sha(&"a".repeat(39)));
    }

    #[test]
    fn tokens_octocrab_could_not_send_are_refused_without_being_shown() {
        for token in ["", "  ", "ghp_a\nb", "ghp_ä"] {
            let err = RestGitHub::new(
                RepoName {
                    owner: "o".into(),
                    name: "r".into(),
                },
                &Secret::new(token),
                RestSettings::default(),
            )
            .unwrap_err();
            assert!(!err.transient);
            if !token.trim().is_empty() {
                assert!(!err.message.contains(token), "{err}");
            }
        }
        let err = RestGitHub::new(
            RepoName {
                owner: "o".into(),
                name: "r".into(),
            },
            &Secret::new("ghp_x"),
            RestSettings {
                base_url: "file:///etc".into(),
                ..RestSettings::default()
            },
        )
        .unwrap_err();
        assert!(err.message.contains("not an http(s) URL"), "{err}");
    }
}
