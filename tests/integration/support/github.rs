//! A GitHub REST API stand-in for one repository: a real HTTP/1.1 server on 127.0.0.1 that
//! answers the endpoints weir's GitHub adapter uses as GitHub documents them, with merges
//! carried out for real in a bare Git repository on disk.
//!
//! - Pull requests: list (`state`, `head=owner:branch`, `base`), create (422 `Validation
//!   Failed` with GitHub's errors array when one is already open for the head, or the head
//!   branch does not exist), get, update (`title`, `body`, `state`), merge.
//! - Merges (`PUT .../merge`): 405 `Pull Request is not mergeable` when not open; 409 `Head
//!   branch was modified` when `sha` is not the branch's head; 405 when approvals are missing
//!   or a required status is not green (switches below); 405 for `rebase` (not allowed on this
//!   repository); 409 `Merge conflict` when git2's `merge_trees` finds one; else a squash (one
//!   commit on the base) or a merge commit, the base branch moved with a lease, 200.
//! - A pull request's head sha is read from the bare repository at every request, so pushes
//!   after opening are seen; `mergeable` is computed the same way.
//! - Reviews (added by the test), issue comments (list, create, update), commit statuses
//!   (create: 422 for an unknown commit; list for a ref, `GET .../commits/{ref}/statuses`,
//!   newest first, `[]` for a ref with none), deployments (list filtered by `sha`, `ref`, `task`,
//!   `environment`, newest first; create with the ref resolved by git2) and deployment
//!   statuses.
//! - Listings paginate with `per_page` (default 30, at most 100) and `page`, and a `Link`
//!   header with `next`, `last`, `first` and `prev` as GitHub sends them.
//! - Every answer carries `x-ratelimit-limit`, `-remaining`, `-reset`, `-used`, `-resource`.
//! - Errors are `{"message", "documentation_url", "status"}`; a request without the
//!   expected `Authorization: Bearer TOKEN` is 401 `Bad credentials`.
//!
//! Switches a test can flip: the next N requests answered 429 with `retry-after`, or 403 as a
//! secondary rate limit, or 403 with the primary limit spent; the next N answered 502 (or
//! another server error), or 400 with the `Authorization` header echoed in the message;
//! approvals required before merging; a status context required green; a conflict answered
//! 405 `Pull Request is not mergeable` instead of 409.
//!
//! A test posts statuses as another integration would ([`GitHubStandIn::post_status`]: Flux's
//! notification-controller, with its context and a chosen time).
//!
//! Every request is recorded (method, path, query, JSON body, whether it carried the token).
//! Stops on drop.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State as AppState;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::http::Server;

/// The token the stand-in accepts.
pub const TOKEN: &str = "ghp_standInT0ken0123456789abcdefghijklmn";

const DOCS: &str = "https://docs.github.com/rest";

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's pairs, decoded.
    pub query: BTreeMap<String, String>,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// Whether an `Authorization` header came with it.
    pub authorized: bool,
    /// The status answered.
    pub status: u16,
}

/// A pull request as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub head: String,
    pub base: String,
    pub open: bool,
    pub merged: bool,
    pub merge_commit_sha: Option<String>,
    /// The head's sha: the branch's tip while open (as [`GitHubStandIn::pulls`] returns it),
    /// the last one seen once closed (kept when the branch is deleted).
    pub last_head_sha: String,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// An issue comment.
#[derive(Debug, Clone)]
pub struct StoredComment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub user: String,
}

/// A review.
#[derive(Debug, Clone)]
pub struct StoredReview {
    pub id: u64,
    pub pull: u64,
    pub user: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED`.
    pub state: String,
    pub commit_id: String,
}

/// A commit status.
#[derive(Debug, Clone)]
pub struct StoredStatus {
    pub id: u64,
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A deployment.
#[derive(Debug, Clone)]
pub struct StoredDeployment {
    pub id: u64,
    pub git_ref: String,
    pub sha: String,
    pub task: String,
    pub environment: String,
    pub description: Option<String>,
    pub payload: Value,
    /// The whole body weir sent.
    pub request: Value,
}

/// A deployment status.
#[derive(Debug, Clone)]
pub struct StoredDeploymentStatus {
    pub id: u64,
    pub deployment: u64,
    pub state: String,
    pub description: Option<String>,
    pub environment: Option<String>,
}

/// What the switches say for the next requests.
#[derive(Debug, Default)]
struct Switches {
    /// Answer 429 with this `retry-after` to this many more requests.
    throttle: (usize, u64),
    /// Answer 403 "secondary rate limit" (with `retry-after` when set) to this many more.
    secondary: (usize, Option<u64>),
    /// Answer 403 with `x-ratelimit-remaining: 0`, resetting this many seconds from now.
    exhausted: (usize, i64),
    /// Answer this server error (502 unless set) to this many more requests.
    fail: (usize, u16),
    /// Answer 400 echoing the request's `Authorization` header (as a misbehaving proxy
    /// might) to this many more requests.
    echo: usize,
    /// Approvals needed to merge.
    approvals: usize,
    /// Status contexts that must be `success` on the head to merge.
    required_contexts: Vec<String>,
    /// Refuse a conflicting merge with 405 `Pull Request is not mergeable` (what GitHub
    /// answers once it has marked the PR unmergeable) instead of 409 `Merge conflict`.
    conflict_as_405: bool,
}

#[derive(Default)]
struct State {
    pulls: Vec<Pull>,
    comments: Vec<StoredComment>,
    reviews: Vec<StoredReview>,
    statuses: Vec<StoredStatus>,
    deployments: Vec<StoredDeployment>,
    deployment_statuses: Vec<StoredDeploymentStatus>,
    requests: Vec<Recorded>,
    switches: Switches,
    next_id: u64,
    used: u64,
    /// Repository permission by login; anyone not listed may write (a collaborator).
    permissions: BTreeMap<String, String>,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

struct Shared {
    owner: String,
    name: String,
    bare: PathBuf,
    state: Mutex<State>,
    port: u16,
}

/// A running stand-in; stops on drop.
pub struct GitHubStandIn {
    shared: Arc<Shared>,
    server: Server,
}

/// A request, parsed.
struct Incoming {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// An answer.
struct Out {
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

impl Out {
    fn json(status: u16, body: Value) -> Out {
        Out {
            status,
            body,
            headers: Vec::new(),
        }
    }

    fn error(status: u16, message: &str) -> Out {
        Out::json(
            status,
            json!({ "message": message, "documentation_url": DOCS, "status": status.to_string() }),
        )
    }

    fn not_found() -> Out {
        Out::error(404, "Not Found")
    }

    fn header(mut self, name: &str, value: impl ToString) -> Out {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

impl GitHubStandIn {
    /// Serves repository `owner/name`, whose branches live in the bare repository `bare`.
    pub fn start(owner: &str, name: &str, bare: &Path) -> GitHubStandIn {
        let mut shared = None;
        let server = Server::start_with("github", |port| {
            let s = Arc::new(Shared {
                owner: owner.to_string(),
                name: name.to_string(),
                bare: bare.to_path_buf(),
                state: Mutex::new(State {
                    next_id: 1000,
                    ..State::default()
                }),
                port,
            });
            shared = Some(s.clone());
            // One handler routes every request: switches and credentials come first, as on
            // GitHub, whatever the path.
            Router::new().fallback(serve).with_state(s)
        });
        let shared = shared.expect("the router was built");
        GitHubStandIn { shared, server }
    }

    /// weir's GitHub adapter (octocrab) pointed at this stand-in, with [`TOKEN`]. Needs a
    /// tokio runtime context, as the adapter does.
    pub fn client(&self) -> weir::adapters::github::rest::RestGitHub {
        weir::adapters::github::rest::RestGitHub::new(
            weir::adapters::github::RepoName {
                owner: self.shared.owner.clone(),
                name: self.shared.name.clone(),
            },
            &weir::core::secret::Secret::new(TOKEN),
            weir::adapters::github::rest::RestSettings {
                base_url: self.url(),
                ..Default::default()
            },
        )
        .expect("the adapter builds")
    }

    /// `http://127.0.0.1:PORT`: the API's base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Opens a pull request as a person does on GitHub; returns its number.
    pub fn open_pull(&self, head: &str, base: &str, title: &str) -> u64 {
        let body = json!({"head": head, "base": base, "title": title, "body": ""});
        let mut st = self.state();
        let out = create_pull(&self.shared, &mut st, &body);
        assert_eq!(out.status, 201, "opening the pull request");
        st.pulls
            .last()
            .expect("the pull request just opened")
            .number
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Answers the next `n` requests 429 with `retry-after: secs`.
    pub fn throttle_next(&self, n: usize, secs: u64) {
        self.state().switches.throttle = (n, secs);
    }

    /// Answers the next `n` requests 403 as a secondary rate limit.
    pub fn secondary_limit_next(&self, n: usize, retry_after: Option<u64>) {
        self.state().switches.secondary = (n, retry_after);
    }

    /// Answers the next `n` requests 403 with the primary limit spent until `reset_in` s.
    pub fn exhaust_next(&self, n: usize, reset_in: i64) {
        self.state().switches.exhausted = (n, reset_in);
    }

    /// Answers the next `n` requests 502.
    pub fn fail_next(&self, n: usize) {
        self.state().switches.fail = (n, 502);
    }

    /// Answers the next `n` requests with the server error `status` (500, 503, ...).
    pub fn server_error_next(&self, n: usize, status: u16) {
        assert!((500..600).contains(&status), "{status} is no server error");
        self.state().switches.fail = (n, status);
    }

    /// Posts a commit status as another integration does (Flux's notification-controller:
    /// context `kustomization/<name>/<uid>`, `success` or `failure`), created at `at`.
    pub fn post_status(
        &self,
        sha: &str,
        context: &str,
        state: &str,
        description: &str,
        at: DateTime<Utc>,
    ) {
        let body = json!({ "state": state, "context": context, "description": description });
        let mut st = self.state();
        let out = create_status(&self.shared, &mut st, sha, &body);
        assert_eq!(out.status, 201, "posting a status: {}", out.body);
        st.statuses
            .last_mut()
            .expect("the status just posted")
            .created_at = at;
    }

    /// Answers the next `n` requests 400 with a message that echoes the `Authorization`
    /// header, as a misbehaving proxy in front of GitHub Enterprise might.
    pub fn echo_next(&self, n: usize) {
        self.state().switches.echo = n;
    }

    /// Answers a conflicting merge 405 `Pull Request is not mergeable` instead of 409.
    pub fn conflict_as_405(&self) {
        self.state().switches.conflict_as_405 = true;
    }

    /// Refuses merges (405) until `n` reviewers approve.
    pub fn require_approvals(&self, n: usize) {
        self.state().switches.approvals = n;
    }

    /// Refuses merges (405) until the head has a `success` status for `context`.
    pub fn require_status(&self, context: &str) {
        self.state()
            .switches
            .required_contexts
            .push(context.to_string());
    }

    /// `user` approves pull request `number` at its current head.
    pub fn approve(&self, number: u64, user: &str) {
        self.review(number, user, "APPROVED");
    }

    /// `user` requests changes on pull request `number` at its current head.
    pub fn request_changes(&self, number: u64, user: &str) {
        self.review(number, user, "CHANGES_REQUESTED");
    }

    /// `user`'s permission on the repository (`read` for anyone on a public repository who
    /// is not a collaborator); users not set may write.
    pub fn set_permission(&self, user: &str, permission: &str) {
        self.state()
            .permissions
            .insert(user.to_string(), permission.to_string());
    }

    /// `user` comments (a review without a verdict) on pull request `number`.
    pub fn review_comment(&self, number: u64, user: &str) {
        self.review(number, user, "COMMENTED");
    }

    fn review(&self, number: u64, user: &str, state: &str) {
        let head = {
            let st = self.state();
            let pull = st.pulls.iter().find(|p| p.number == number).expect("pull");
            pull.head.clone()
        };
        let sha = branch_sha(&self.shared.bare, &head).expect("head branch exists");
        let mut st = self.state();
        let id = st.id();
        st.reviews.push(StoredReview {
            id,
            pull: number,
            user: user.to_string(),
            state: state.to_string(),
            commit_id: sha,
        });
    }

    /// Adds a comment by someone else (to fill pages).
    pub fn add_comment(&self, issue: u64, user: &str, body: &str) -> u64 {
        let mut st = self.state();
        let id = st.id();
        st.comments.push(StoredComment {
            id,
            issue,
            body: body.to_string(),
            user: user.to_string(),
        });
        id
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Every pull request as GitHub shows it now: an open one's head is its branch's tip.
    pub fn pulls(&self) -> Vec<Pull> {
        let mut pulls = self.state().pulls.clone();
        for p in pulls.iter_mut().filter(|p| p.open) {
            if let Some(sha) = branch_sha(&self.shared.bare, &p.head) {
                p.last_head_sha = sha;
            }
        }
        pulls
    }

    /// The comments on issue `number`, oldest first.
    pub fn comments(&self, number: u64) -> Vec<StoredComment> {
        self.state()
            .comments
            .iter()
            .filter(|c| c.issue == number)
            .cloned()
            .collect()
    }

    /// The commit statuses, oldest first.
    pub fn statuses(&self) -> Vec<StoredStatus> {
        self.state().statuses.clone()
    }

    /// The deployments, oldest first.
    pub fn deployments(&self) -> Vec<StoredDeployment> {
        self.state().deployments.clone()
    }

    /// The deployment statuses, oldest first.
    pub fn deployment_statuses(&self) -> Vec<StoredDeploymentStatus> {
        self.state().deployment_statuses.clone()
    }
}

/// Any request: parsed by hyper, answered by [`answer`] on a blocking thread, since merges
/// run git2 on the bare repository.
async fn serve(
    AppState(s): AppState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let incoming = Incoming {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: body.to_vec(),
    };
    let answered = tokio::task::spawn_blocking(move || {
        let out = answer(&s, &incoming);
        respond(&s, out)
    })
    .await;
    answered.unwrap_or_else(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the GitHub stand-in failed: {e}"),
        )
            .into_response()
    })
}

/// The answer as GitHub sends it: JSON, with the rate-limit headers unless a switch set its
/// own.
fn respond(s: &Shared, out: Out) -> Response {
    let body = if out.body.is_null() {
        String::new()
    } else {
        out.body.to_string()
    };
    let used = s.state.lock().unwrap().used;
    let reset = Utc::now().timestamp() + 3600;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    let mut add = |name: &str, value: String| {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
            HeaderValue::from_str(&value).expect("a valid header value"),
        );
    };
    if !out
        .headers
        .iter()
        .any(|(n, _)| n == "x-ratelimit-remaining")
    {
        add("x-ratelimit-limit", "5000".into());
        add(
            "x-ratelimit-remaining",
            5000u64.saturating_sub(used).to_string(),
        );
        add("x-ratelimit-reset", reset.to_string());
        add("x-ratelimit-used", used.to_string());
        add("x-ratelimit-resource", "core".into());
    }
    for (name, value) in out.headers {
        add(&name, value);
    }
    let status = StatusCode::from_u16(out.status).expect("the stand-in's statuses are valid");
    (status, headers, body).into_response()
}

/// Records the request and answers it.
fn answer(s: &Shared, req: &Incoming) -> Out {
    let body: Option<Value> = serde_json::from_slice(&req.body).ok();
    let authorized = req.authorization.is_some();
    let out = {
        let mut st = s.state.lock().unwrap();
        st.used += 1;
        switched(&mut st, req).unwrap_or_else(|| {
            if req.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
                Out::error(401, "Bad credentials")
            } else {
                route(s, &mut st, req, body.as_ref().unwrap_or(&Value::Null))
            }
        })
    };
    s.state.lock().unwrap().requests.push(Recorded {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        body,
        authorized,
        status: out.status,
    });
    out
}

/// The answer the switches impose on this request, if any.
fn switched(st: &mut State, req: &Incoming) -> Option<Out> {
    let sw = &mut st.switches;
    if sw.throttle.0 > 0 {
        sw.throttle.0 -= 1;
        return Some(
            Out::error(
                429,
                "API rate limit exceeded. Please retry your request again later.",
            )
            .header("retry-after", sw.throttle.1),
        );
    }
    if sw.secondary.0 > 0 {
        sw.secondary.0 -= 1;
        let out = Out::error(
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
        );
        return Some(match sw.secondary.1 {
            Some(secs) => out.header("retry-after", secs),
            None => out,
        });
    }
    if sw.exhausted.0 > 0 {
        sw.exhausted.0 -= 1;
        let reset = Utc::now().timestamp() + sw.exhausted.1;
        return Some(
            Out::error(403, "API rate limit exceeded for user ID 1.")
                .header("x-ratelimit-limit", 5000)
                .header("x-ratelimit-remaining", 0)
                .header("x-ratelimit-reset", reset)
                .header("x-ratelimit-used", 5000)
                .header("x-ratelimit-resource", "core"),
        );
    }
    if sw.fail.0 > 0 {
        sw.fail.0 -= 1;
        return Some(Out::error(sw.fail.1, "Server Error"));
    }
    if sw.echo > 0 {
        sw.echo -= 1;
        let auth = req.authorization.as_deref().unwrap_or("");
        return Some(Out::error(
            400,
            &format!(
                "Problems parsing request {} {} with {auth}",
                req.method, req.path
            ),
        ));
    }
    None
}

fn route(s: &Shared, st: &mut State, req: &Incoming, body: &Value) -> Out {
    let prefix = format!("/repos/{}/{}/", s.owner, s.name);
    let Some(rest) = req.path.strip_prefix(&prefix) else {
        return Out::not_found();
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let number = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["pulls"]) => list_pulls(s, st, req),
        ("POST", ["pulls"]) => create_pull(s, st, body),
        ("GET", ["pulls", _]) => with_pull(st, number(1), |st, i| {
            Out::json(200, pull_json(s, &st.pulls[i]))
        }),
        ("PATCH", ["pulls", _]) => with_pull(st, number(1), |st, i| update_pull(s, st, i, body)),
        ("PUT", ["pulls", _, "merge"]) => with_pull(st, number(1), |st, i| merge(s, st, i, body)),
        ("GET", ["pulls", _, "reviews"]) => with_pull(st, number(1), |st, i| {
            let n = st.pulls[i].number;
            let items: Vec<Value> = st
                .reviews
                .iter()
                .filter(|r| r.pull == n)
                .map(|r| review_json(s, r))
                .collect();
            paginate(s, req, items)
        }),
        // GET /repos/{owner}/{repo}/collaborators/{username}/permission
        ("GET", ["collaborators", user, "permission"]) => {
            let permission = st
                .permissions
                .get(*user)
                .cloned()
                .unwrap_or_else(|| "write".to_string());
            Out::json(
                200,
                json!({
                    "permission": permission,
                    "role_name": permission,
                    "user": user_json(s, user),
                }),
            )
        }
        ("GET", ["issues", _, "comments"]) => match number(1) {
            Some(n) if st.pulls.iter().any(|p| p.number == n) => {
                let items: Vec<Value> = st
                    .comments
                    .iter()
                    .filter(|c| c.issue == n)
                    .map(|c| comment_json(s, c))
                    .collect();
                paginate(s, req, items)
            }
            _ => Out::not_found(),
        },
        ("POST", ["issues", _, "comments"]) => match (number(1), body["body"].as_str()) {
            (Some(n), Some(text)) if st.pulls.iter().any(|p| p.number == n) => {
                let id = st.id();
                let comment = StoredComment {
                    id,
                    issue: n,
                    body: text.to_string(),
                    user: "weir-bot".into(),
                };
                let out = Out::json(201, comment_json(s, &comment));
                st.comments.push(comment);
                out
            }
            (Some(_), None) => invalid("IssueComment", "body", "missing_field"),
            _ => Out::not_found(),
        },
        ("PATCH", ["issues", "comments", _]) => {
            let id = number(2);
            match (
                st.comments.iter_mut().find(|c| Some(c.id) == id),
                body["body"].as_str(),
            ) {
                (Some(c), Some(text)) => {
                    c.body = text.to_string();
                    let c = c.clone();
                    Out::json(200, comment_json(s, &c))
                }
                (Some(_), None) => invalid("IssueComment", "body", "missing_field"),
                (None, _) => Out::not_found(),
            }
        }
        ("POST", ["statuses", sha]) => create_status(s, st, sha, body),
        // GET /repos/{owner}/{repo}/commits/{ref}/statuses: the ref is a sha, a branch or a
        // tag; newest first. GitHub documents 200 only (and 301 for a moved repository), so a
        // ref with no status, known or not, lists none.
        ("GET", ["commits", git_ref, "statuses"]) => {
            let sha = resolve(&s.bare, git_ref).unwrap_or_else(|| git_ref.to_string());
            let mut mine: Vec<&StoredStatus> =
                st.statuses.iter().filter(|x| x.sha == sha).collect();
            mine.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
            let items: Vec<Value> = mine.into_iter().map(|x| status_json(s, x)).collect();
            paginate(s, req, items)
        }
        ("GET", ["deployments"]) => {
            let q = &req.query;
            let items: Vec<Value> = st
                .deployments
                .iter()
                .rev()
                .filter(|d| q.get("sha").is_none_or(|v| *v == d.sha))
                .filter(|d| q.get("ref").is_none_or(|v| *v == d.git_ref))
                .filter(|d| q.get("task").is_none_or(|v| *v == d.task))
                .filter(|d| q.get("environment").is_none_or(|v| *v == d.environment))
                .map(|d| deployment_json(s, d))
                .collect();
            paginate(s, req, items)
        }
        ("POST", ["deployments"]) => create_deployment(s, st, body),
        ("POST", ["deployments", _, "statuses"]) => {
            let id = number(1);
            let Some(d) = st.deployments.iter().find(|d| Some(d.id) == id).cloned() else {
                return Out::not_found();
            };
            let Some(state) = body["state"].as_str().filter(|v| {
                [
                    "error",
                    "failure",
                    "inactive",
                    "in_progress",
                    "queued",
                    "pending",
                    "success",
                ]
                .contains(v)
            }) else {
                return invalid("DeploymentStatus", "state", "invalid");
            };
            let status = StoredDeploymentStatus {
                id: st.id(),
                deployment: d.id,
                state: state.to_string(),
                description: body["description"].as_str().map(str::to_string),
                environment: body["environment"].as_str().map(str::to_string),
            };
            let out = Out::json(201, deployment_status_json(s, &d, &status));
            st.deployment_statuses.push(status);
            out
        }
        _ => Out::not_found(),
    }
}

fn with_pull(st: &mut State, number: Option<u64>, f: impl FnOnce(&mut State, usize) -> Out) -> Out {
    match number.and_then(|n| st.pulls.iter().position(|p| p.number == n)) {
        Some(i) => f(st, i),
        None => Out::not_found(),
    }
}

/// GitHub's 422 for a bad field.
fn invalid(resource: &str, field: &str, code: &str) -> Out {
    Out::json(
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{ "resource": resource, "field": field, "code": code }],
            "documentation_url": DOCS,
            "status": "422"
        }),
    )
}

fn list_pulls(s: &Shared, st: &mut State, req: &Incoming) -> Out {
    let state = req.query.get("state").map_or("open", String::as_str);
    let head = req.query.get("head");
    let base = req.query.get("base");
    let items: Vec<Value> = st
        .pulls
        .iter()
        .rev()
        .filter(|p| match state {
            "all" => true,
            "closed" => !p.open,
            _ => p.open,
        })
        .filter(|p| head.is_none_or(|h| *h == format!("{}:{}", s.owner, p.head)))
        .filter(|p| base.is_none_or(|b| *b == p.base))
        .map(|p| pull_json(s, p))
        .collect();
    paginate(s, req, items)
}

fn create_pull(s: &Shared, st: &mut State, body: &Value) -> Out {
    let (Some(title), Some(head), Some(base)) = (
        body["title"].as_str(),
        body["head"].as_str(),
        body["base"].as_str(),
    ) else {
        return invalid("PullRequest", "head", "missing_field");
    };
    // `owner:branch` is accepted for the same repository.
    let head = head.strip_prefix(&format!("{}:", s.owner)).unwrap_or(head);
    let Some(head_sha) = branch_sha(&s.bare, head) else {
        return invalid("PullRequest", "head", "invalid");
    };
    if branch_sha(&s.bare, base).is_none() {
        return invalid("PullRequest", "base", "invalid");
    }
    if st
        .pulls
        .iter()
        .any(|p| p.open && p.head == head && p.base == base)
    {
        return Out::json(
            422,
            json!({
                "message": "Validation Failed",
                "errors": [{
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": format!("A pull request already exists for {}:{head}.", s.owner)
                }],
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                "status": "422"
            }),
        );
    }
    let number = st.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    let pull = Pull {
        number,
        title: title.to_string(),
        body: body["body"].as_str().map(str::to_string),
        head: head.to_string(),
        base: base.to_string(),
        open: true,
        merged: false,
        merge_commit_sha: None,
        last_head_sha: head_sha,
        created_at: Utc::now(),
        closed_at: None,
    };
    let out = Out::json(201, pull_json(s, &pull));
    st.pulls.push(pull);
    out
}

fn update_pull(s: &Shared, st: &mut State, i: usize, body: &Value) -> Out {
    let pull = &mut st.pulls[i];
    if let Some(title) = body["title"].as_str() {
        pull.title = title.to_string();
    }
    if let Some(text) = body["body"].as_str() {
        pull.body = Some(text.to_string());
    }
    match body["state"].as_str() {
        Some("closed") if pull.open => {
            pull.open = false;
            pull.closed_at = Some(Utc::now());
        }
        Some("open") if !pull.open && !pull.merged => {
            pull.open = true;
            pull.closed_at = None;
        }
        Some("open" | "closed") | None => {}
        Some(_) => return invalid("PullRequest", "state", "invalid"),
    }
    Out::json(200, pull_json(s, &st.pulls[i]))
}

/// Each reviewer's standing verdict, as GitHub counts it: the last review that is not a plain
/// comment.
fn standing(st: &State, number: u64) -> BTreeMap<String, String> {
    let mut by_user = BTreeMap::new();
    for r in st.reviews.iter().filter(|r| r.pull == number) {
        if r.state != "COMMENTED" || !by_user.contains_key(&r.user) {
            by_user.insert(r.user.clone(), r.state.clone());
        }
    }
    by_user
}

fn merge(s: &Shared, st: &mut State, i: usize, body: &Value) -> Out {
    let pull = st.pulls[i].clone();
    if !pull.open {
        return Out::error(405, "Pull Request is not mergeable");
    }
    let Some(head_sha) = branch_sha(&s.bare, &pull.head) else {
        return Out::error(405, "Pull Request is not mergeable");
    };
    if let Some(expected) = body["sha"].as_str() {
        if expected != head_sha {
            return Out::error(
                409,
                "Head branch was modified. Review and try the merge again.",
            );
        }
    }
    // Protection counts the reviews of people with write access only.
    let mut verdicts = standing(st, pull.number);
    verdicts.retain(|user, _| {
        st.permissions
            .get(user)
            .is_none_or(|p| matches!(p.as_str(), "admin" | "maintain" | "write"))
    });
    if verdicts.values().any(|v| v == "CHANGES_REQUESTED") && st.switches.approvals > 0 {
        return Out::error(405, "Changes must be made before merging.");
    }
    let approvals = verdicts.values().filter(|v| *v == "APPROVED").count();
    let needed = st.switches.approvals;
    if approvals < needed {
        let message = if needed == 1 {
            "At least 1 approving review is required by reviewers with write access.".to_string()
        } else {
            format!(
                "At least {needed} approving reviews are required by reviewers with write access."
            )
        };
        return Out::error(405, &message);
    }
    for context in &st.switches.required_contexts {
        let latest = st
            .statuses
            .iter()
            .rev()
            .find(|x| x.sha == head_sha && &x.context == context);
        match latest.map(|x| x.state.as_str()) {
            Some("success") => {}
            Some("failure" | "error") => {
                return Out::error(
                    405,
                    &format!("Required status check \"{context}\" is failing."),
                )
            }
            _ => {
                return Out::error(
                    405,
                    &format!("Required status check \"{context}\" is expected."),
                )
            }
        }
    }
    let method = body["merge_method"].as_str().unwrap_or("merge");
    if !matches!(method, "merge" | "squash") {
        if method == "rebase" {
            return Out::error(405, "Rebase merges are not allowed on this repository.");
        }
        return invalid("PullRequest", "merge_method", "invalid");
    }
    if st.switches.conflict_as_405 && mergeable(&s.bare, &pull) == Some(false) {
        return Out::error(405, "Pull Request is not mergeable");
    }
    match git_merge(&s.bare, &pull, method, body) {
        Ok(sha) => {
            let p = &mut st.pulls[i];
            p.open = false;
            p.merged = true;
            p.merge_commit_sha = Some(sha.clone());
            p.last_head_sha = head_sha;
            p.closed_at = Some(Utc::now());
            Out::json(
                200,
                json!({ "sha": sha, "merged": true, "message": "Pull Request successfully merged" }),
            )
        }
        Err(out) => out,
    }
}

/// Merges the head into the base in the bare repository; the new base commit, or GitHub's
/// answer why not.
fn git_merge(bare: &Path, pull: &Pull, method: &str, body: &Value) -> Result<String, Out> {
    let repo = git2::Repository::open_bare(bare).expect("bare repository");
    let base_ref = format!("refs/heads/{}", pull.base);
    let base = repo
        .find_reference(&base_ref)
        .and_then(|r| r.peel_to_commit())
        .map_err(|_| Out::error(405, "Base branch was deleted."))?;
    let head = repo
        .find_reference(&format!("refs/heads/{}", pull.head))
        .and_then(|r| r.peel_to_commit())
        .map_err(|_| Out::error(405, "Pull Request is not mergeable"))?;
    let Some(tree) = merged_tree(&repo, &base, &head) else {
        return Err(Out::error(409, "Merge conflict"));
    };
    let sig = git2::Signature::now("GitHub", "noreply@github.com").unwrap();
    let title = body["commit_title"].as_str().map_or_else(
        || match method {
            "squash" => format!("{} (#{})", pull.title, pull.number),
            _ => format!("Merge pull request #{} from {}", pull.number, pull.head),
        },
        str::to_string,
    );
    let message = match body["commit_message"].as_str() {
        Some(m) if !m.is_empty() => format!("{title}\n\n{m}"),
        _ => title,
    };
    let tree = repo.find_tree(tree).unwrap();
    let parents: Vec<&git2::Commit> = if method == "squash" {
        vec![&base]
    } else {
        vec![&base, &head]
    };
    let new = repo
        .commit(None, &sig, &sig, &message, &tree, &parents)
        .unwrap();
    // A lease on the base: a push that landed meanwhile makes the merge fail, as on GitHub.
    repo.reference_matching(&base_ref, new, true, base.id(), "merge")
        .map_err(|_| {
            Out::error(
                409,
                "Base branch was modified. Review and try the merge again.",
            )
        })?;
    Ok(new.to_string())
}

/// The tree of merging `head` into `base`, or `None` on a conflict.
fn merged_tree(
    repo: &git2::Repository,
    base: &git2::Commit,
    head: &git2::Commit,
) -> Option<git2::Oid> {
    let ancestor = repo
        .merge_base(base.id(), head.id())
        .ok()
        .and_then(|id| repo.find_commit(id).ok())
        .and_then(|c| c.tree().ok());
    let empty;
    let ancestor = match ancestor {
        Some(t) => t,
        None => {
            empty = repo
                .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                .unwrap();
            empty
        }
    };
    let mut index = repo
        .merge_trees(&ancestor, &base.tree().ok()?, &head.tree().ok()?, None)
        .ok()?;
    if index.has_conflicts() {
        return None;
    }
    index.write_tree_to(repo).ok()
}

/// Whether the pull request merges cleanly now; `None` when a branch is gone.
fn mergeable(bare: &Path, pull: &Pull) -> Option<bool> {
    let repo = git2::Repository::open_bare(bare).ok()?;
    let commit = |b: &str| {
        repo.find_reference(&format!("refs/heads/{b}"))
            .and_then(|r| r.peel_to_commit())
            .ok()
    };
    let (base, head) = (commit(&pull.base)?, commit(&pull.head)?);
    Some(merged_tree(&repo, &base, &head).is_some())
}

/// The commit a sha, branch or tag names in the bare repository.
fn resolve(bare: &Path, git_ref: &str) -> Option<String> {
    let repo = git2::Repository::open_bare(bare).ok()?;
    let object = repo
        .revparse_single(&format!("refs/heads/{git_ref}"))
        .or_else(|_| repo.revparse_single(&format!("refs/tags/{git_ref}")))
        .or_else(|_| repo.revparse_single(git_ref))
        .ok()?;
    let id = object.peel_to_commit().ok()?.id();
    Some(id.to_string())
}

/// The commit a branch of the bare repository points at.
pub fn branch_sha(bare: &Path, branch: &str) -> Option<String> {
    let repo = git2::Repository::open_bare(bare).ok()?;
    let r = repo.find_reference(&format!("refs/heads/{branch}")).ok()?;
    let id = r.peel_to_commit().ok()?.id();
    Some(id.to_string())
}

fn create_status(s: &Shared, st: &mut State, sha: &str, body: &Value) -> Out {
    let known = git2::Repository::open_bare(&s.bare)
        .ok()
        .is_some_and(|r| git2::Oid::from_str(sha).is_ok_and(|o| r.find_commit(o).is_ok()));
    if !known {
        return Out::json(
            422,
            json!({ "message": format!("No commit found for SHA: {sha}"), "documentation_url": DOCS, "status": "422" }),
        );
    }
    let Some(state) = body["state"]
        .as_str()
        .filter(|v| ["error", "failure", "pending", "success"].contains(v))
    else {
        return invalid("Status", "state", "custom");
    };
    if body["description"]
        .as_str()
        .is_some_and(|d| d.chars().count() > 140)
    {
        return invalid("Status", "description", "custom");
    }
    let status = StoredStatus {
        id: st.id(),
        sha: sha.to_string(),
        state: state.to_string(),
        context: body["context"].as_str().unwrap_or("default").to_string(),
        description: body["description"].as_str().map(str::to_string),
        target_url: body["target_url"].as_str().map(str::to_string),
        created_at: Utc::now(),
    };
    let out = Out::json(201, status_json(s, &status));
    st.statuses.push(status);
    out
}

fn create_deployment(s: &Shared, st: &mut State, body: &Value) -> Out {
    let Some(git_ref) = body["ref"].as_str() else {
        return invalid("Deployment", "ref", "missing_field");
    };
    let sha = git2::Repository::open_bare(&s.bare).ok().and_then(|r| {
        let obj = r
            .revparse_single(&format!("refs/heads/{git_ref}"))
            .or_else(|_| r.revparse_single(git_ref))
            .ok()?;
        Some(obj.peel_to_commit().ok()?.id().to_string())
    });
    let Some(sha) = sha else {
        return Out::json(
            422,
            json!({ "message": format!("No ref found for: {git_ref}"), "documentation_url": DOCS, "status": "422" }),
        );
    };
    let d = StoredDeployment {
        id: st.id(),
        git_ref: git_ref.to_string(),
        sha,
        task: body["task"].as_str().unwrap_or("deploy").to_string(),
        environment: body["environment"]
            .as_str()
            .unwrap_or("production")
            .to_string(),
        description: body["description"].as_str().map(str::to_string),
        payload: match &body["payload"] {
            Value::Null => json!({}),
            p => p.clone(),
        },
        request: body.clone(),
    };
    let out = Out::json(201, deployment_json(s, &d));
    st.deployments.push(d);
    out
}

/// A page of `items` with GitHub's `Link` header.
fn paginate(s: &Shared, req: &Incoming, items: Vec<Value>) -> Out {
    let per_page = req
        .query
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = req
        .query
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let shown: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link_to = |n: usize| {
        let mut q = req.query.clone();
        q.insert("page".into(), n.to_string());
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q.iter())
            .finish();
        format!("http://127.0.0.1:{}{}?{query}", s.port, req.path)
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", link_to(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", link_to(1)));
        links.push(format!("<{}>; rel=\"prev\"", link_to(page - 1)));
    }
    let out = Out::json(200, Value::Array(shown));
    if links.is_empty() {
        out
    } else {
        out.header("link", links.join(", "))
    }
}

fn base(s: &Shared) -> String {
    format!("http://127.0.0.1:{}", s.port)
}

fn repo_api(s: &Shared) -> String {
    format!("{}/repos/{}/{}", base(s), s.owner, s.name)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A user as GitHub embeds one (octocrab's `Author`).
fn user_json(s: &Shared, login: &str) -> Value {
    let id = login
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64))
        % 1_000_000;
    let api = format!("{}/users/{login}", base(s));
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_kgDO{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": "User",
        "user_view_type": "public",
        "site_admin": false
    })
}

fn repo_json(s: &Shared) -> Value {
    let api = repo_api(s);
    json!({
        "id": 4242,
        "node_id": "R_kgDOstand",
        "name": s.name,
        "full_name": format!("{}/{}", s.owner, s.name),
        "private": true,
        "owner": user_json(s, &s.owner),
        "html_url": format!("https://github.com/{}/{}", s.owner, s.name),
        "description": null,
        "fork": false,
        "url": api,
        "pulls_url": format!("{api}/pulls{{/number}}"),
        "statuses_url": format!("{api}/statuses/{{sha}}"),
        "deployments_url": format!("{api}/deployments"),
        "default_branch": "main",
        "visibility": "private"
    })
}

fn pull_json(s: &Shared, p: &Pull) -> Value {
    let api = repo_api(s);
    let head_sha = if p.open {
        branch_sha(&s.bare, &p.head).unwrap_or_else(|| p.last_head_sha.clone())
    } else {
        p.last_head_sha.clone()
    };
    let base_sha = branch_sha(&s.bare, &p.base).unwrap_or_default();
    let mergeable = if p.open { mergeable(&s.bare, p) } else { None };
    let html = format!(
        "https://github.com/{}/{}/pull/{}",
        s.owner, s.name, p.number
    );
    let url = format!("{api}/pulls/{}", p.number);
    let issue = format!("{api}/issues/{}", p.number);
    let branch = |name: &str, sha: &str| {
        json!({
            "label": format!("{}:{name}", s.owner),
            "ref": name,
            "sha": sha,
            "user": user_json(s, &s.owner),
            "repo": repo_json(s),
        })
    };
    let links = json!({
        "self": { "href": url },
        "html": { "href": html },
        "issue": { "href": issue },
        "comments": { "href": format!("{issue}/comments") },
        "review_comments": { "href": format!("{url}/comments") },
        "review_comment": { "href": format!("{api}/pulls/comments{{/number}}") },
        "commits": { "href": format!("{url}/commits") },
        "statuses": { "href": format!("{api}/statuses/{head_sha}") }
    });
    let mut out = json!({
        "url": url,
        "id": 100_000 + p.number,
        "node_id": format!("PR_kwDO{}", p.number),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": issue,
        "commits_url": format!("{url}/commits"),
        "review_comments_url": format!("{url}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{issue}/comments"),
        "statuses_url": format!("{api}/statuses/{head_sha}"),
        "number": p.number,
        "state": if p.open { "open" } else { "closed" },
        "locked": false,
        "title": p.title,
        "user": user_json(s, "weir-bot"),
        "body": p.body,
        "labels": [],
        "milestone": null,
        "active_lock_reason": null,
        "created_at": time(p.created_at),
        "updated_at": time(p.closed_at.unwrap_or(p.created_at)),
        "closed_at": p.closed_at.map(time),
        "merged_at": if p.merged { p.closed_at.map(time) } else { None },
        "merge_commit_sha": p.merge_commit_sha,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": branch(&p.head, &head_sha),
        "base": branch(&p.base, &base_sha),
    });
    let more = json!({
        "_links": links,
        "author_association": "CONTRIBUTOR",
        "auto_merge": null,
        "draft": false,
        "merged": p.merged,
        "mergeable": mergeable,
        "rebaseable": mergeable,
        "mergeable_state": match mergeable { Some(true) => "clean", Some(false) => "dirty", None => "unknown" },
        "merged_by": if p.merged { user_json(s, "weir-bot") } else { Value::Null },
        "comments": 0,
        "review_comments": 0,
        "maintainer_can_modify": false,
        "commits": 1,
        "additions": 1,
        "deletions": 1,
        "changed_files": 1
    });
    if let (Some(out), Value::Object(more)) = (out.as_object_mut(), more) {
        out.extend(more);
    }
    out
}

fn review_json(s: &Shared, r: &StoredReview) -> Value {
    let html = format!(
        "https://github.com/{}/{}/pull/{}#pullrequestreview-{}",
        s.owner, s.name, r.pull, r.id
    );
    let pull = format!("{}/pulls/{}", repo_api(s), r.pull);
    json!({
        "id": r.id,
        "node_id": format!("PRR_kwDO{}", r.id),
        "user": user_json(s, &r.user),
        "body": "",
        "state": r.state,
        "html_url": html,
        "pull_request_url": pull,
        "_links": { "html": { "href": html }, "pull_request": { "href": pull } },
        "submitted_at": time(Utc::now()),
        "commit_id": r.commit_id,
        "author_association": "MEMBER"
    })
}

fn comment_json(s: &Shared, c: &StoredComment) -> Value {
    json!({
        "id": c.id,
        "node_id": format!("IC_kwDO{}", c.id),
        "url": format!("{}/issues/comments/{}", repo_api(s), c.id),
        "html_url": format!("https://github.com/{}/{}/pull/{}#issuecomment-{}", s.owner, s.name, c.issue, c.id),
        "body": c.body,
        "user": user_json(s, &c.user),
        "created_at": time(Utc::now()),
        "updated_at": time(Utc::now()),
        "issue_url": format!("{}/issues/{}", repo_api(s), c.issue),
        "author_association": "CONTRIBUTOR",
        "performed_via_github_app": null
    })
}

fn status_json(s: &Shared, x: &StoredStatus) -> Value {
    json!({
        "url": format!("{}/statuses/{}", repo_api(s), x.sha),
        "avatar_url": "https://avatars.githubusercontent.com/u/1?v=4",
        "id": x.id,
        "node_id": format!("SC_kwDO{}", x.id),
        "state": x.state,
        "description": x.description,
        "target_url": x.target_url,
        "context": x.context,
        "created_at": time(x.created_at),
        "updated_at": time(x.created_at),
        "creator": user_json(s, "weir-bot")
    })
}

fn deployment_json(s: &Shared, d: &StoredDeployment) -> Value {
    let url = format!("{}/deployments/{}", repo_api(s), d.id);
    json!({
        "url": url,
        "id": d.id,
        "node_id": format!("DE_kwDO{}", d.id),
        "sha": d.sha,
        "ref": d.git_ref,
        "task": d.task,
        "payload": d.payload,
        "original_environment": d.environment,
        "environment": d.environment,
        "description": d.description,
        "creator": user_json(s, "weir-bot"),
        "created_at": time(Utc::now()),
        "updated_at": time(Utc::now()),
        "statuses_url": format!("{url}/statuses"),
        "repository_url": repo_api(s),
        "transient_environment": false,
        "production_environment": true
    })
}

fn deployment_status_json(s: &Shared, d: &StoredDeployment, x: &StoredDeploymentStatus) -> Value {
    let deployment = format!("{}/deployments/{}", repo_api(s), d.id);
    json!({
        "url": format!("{deployment}/statuses/{}", x.id),
        "id": x.id,
        "node_id": format!("DES_kwDO{}", x.id),
        "state": x.state,
        "creator": user_json(s, "weir-bot"),
        "description": x.description.clone().unwrap_or_default(),
        "environment": x.environment.clone().unwrap_or_else(|| d.environment.clone()),
        "target_url": "",
        "created_at": time(Utc::now()),
        "updated_at": time(Utc::now()),
        "deployment_url": deployment,
        "repository_url": repo_api(s),
        "environment_url": "",
        "log_url": ""
    })
}
