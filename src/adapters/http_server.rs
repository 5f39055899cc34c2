//! The HTTP server of `weir run --listen`: `/metrics`, `/healthz`, `/readyz`, and the
//! inbound webhooks of GitHub (`push`) and Flux (notification-controller's `generic-hmac`
//! provider).
//!
//! A webhook only wakes a loop early; it never decides anything, and what it carries is not
//! read beyond its signature, its kind, its delivery id and which repository and branch it is
//! about: the next tick reads Git, as every tick does. With several repositories (`weir run
//! --repos`), a GitHub push wakes the loops of the repository and branch it names (by its
//! clone, SSH, git or HTML URL, or its `owner/name`), and a push that names none of them wakes
//! nothing; a push without a `repository` wakes every loop on its branch. A Flux event wakes
//! the loops on the branch of its revision (`main@sha1:...`), or every loop when its
//! revision names no branch any loop serves. A webhook is served only when its secret is
//! configured. Neither the secret nor a signature is ever logged.

use crate::core::secret::Secret;
use crate::ports::Exposition;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

/// The largest webhook body accepted; larger ones are answered 413.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// GitHub delivery ids remembered, to answer a redelivery without waking twice.
pub const DELIVERIES_KEPT: usize = 4096;
/// How long an identical Flux body and signature counts as a replay.
pub const FLUX_REPLAY_WINDOW: Duration = Duration::from_secs(600);

/// The loop of one repository, for webhooks to wake.
#[derive(Clone)]
pub struct Loop {
    /// The repository's URL (credentials are never read from it).
    pub repo: String,
    /// The branch the loop reads and writes.
    pub branch: String,
    /// Notified when a webhook asks for a tick of it.
    pub wake: Arc<Notify>,
}

/// What the server is given.
pub struct Config {
    /// The loops' series and readiness.
    pub exposition: Arc<dyn Exposition>,
    /// The loops webhooks wake.
    pub loops: Vec<Loop>,
    /// The GitHub webhook's secret; `None` leaves /hooks/github unserved.
    pub github_secret: Option<Secret>,
    /// The Flux provider's secret; `None` leaves /hooks/flux unserved.
    pub flux_secret: Option<Secret>,
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}; pass --listen HOST:PORT with a free port")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds `addr` (`HOST:PORT`), so that a taken port fails `weir run` at once.
pub async fn bind(addr: &str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: Config) -> std::io::Result<()> {
    axum::serve(listener, router(config)).await
}

/// The routes; a webhook without a secret has none (404).
pub fn router(config: Config) -> Router {
    let state = Arc::new(Served {
        exposition: config.exposition,
        loops: config.loops,
        github: config.github_secret.map(|s| hmac_key(&s)),
        flux: config.flux_secret.map(|s| hmac_key(&s)),
        deliveries: Mutex::new(Recent::default()),
        flux_seen: Mutex::new(Recent::default()),
    });
    let mut app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    if state.github.is_some() {
        app = app.route("/hooks/github", post(github));
    }
    if state.flux.is_some() {
        app = app.route("/hooks/flux", post(flux));
    }
    app.layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

struct Served {
    exposition: Arc<dyn Exposition>,
    loops: Vec<Loop>,
    github: Option<ring::hmac::Key>,
    flux: Option<ring::hmac::Key>,
    deliveries: Mutex<Recent>,
    flux_seen: Mutex<Recent>,
}

fn hmac_key(secret: &Secret) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes())
}

/// True when `header` is `sha256=<hex>` and the hex is the HMAC-SHA256 of `body`; the
/// comparison takes the same time wherever the bytes differ.
pub fn signed(key: &ring::hmac::Key, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(tag) = unhex(hex) else {
        return false;
    };
    ring::hmac::verify(key, body, &tag).is_ok()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Keys seen lately: at most [`DELIVERIES_KEPT`], the oldest forgotten first, each for at
/// most a window.
#[derive(Default)]
struct Recent {
    order: VecDeque<(Vec<u8>, Instant)>,
    keys: HashSet<Vec<u8>>,
}

impl Recent {
    /// Remembers `key`; false when it was already seen within `window`.
    fn first_time(&mut self, key: Vec<u8>, window: Option<Duration>) -> bool {
        let now = Instant::now();
        while let Some((old, at)) = self.order.front() {
            let expired = window.is_some_and(|w| now.duration_since(*at) > w);
            if !(expired || self.order.len() >= DELIVERIES_KEPT) {
                break;
            }
            self.keys.remove(old);
            self.order.pop_front();
        }
        if self.keys.contains(&key) {
            return false;
        }
        self.keys.insert(key.clone());
        self.order.push_back((key, now));
        true
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(status: StatusCode, text: &str) -> Response {
    (status, format!("{text}\n")).into_response()
}

async fn metrics(State(s): State<Arc<Served>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.exposition.metrics_text(),
    )
        .into_response()
}

async fn readyz(State(s): State<Arc<Served>>) -> Response {
    if s.exposition.ready() {
        answer(StatusCode::OK, "ready")
    } else {
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no tick finished yet, or the last ticks failed",
        )
    }
}

/// GitHub: `X-Hub-Signature-256` over the raw body, `X-GitHub-Event`, `X-GitHub-Delivery`.
async fn github(State(s): State<Arc<Served>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = &s.github else {
        return answer(StatusCode::NOT_FOUND, "not served");
    };
    if !signed(key, &body, header(&headers, "x-hub-signature-256")) {
        warn!(
            hook = "github",
            "webhook refused: missing or wrong signature"
        );
        return answer(StatusCode::UNAUTHORIZED, "missing or wrong signature");
    }
    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return answer(StatusCode::BAD_REQUEST, "the body is not JSON");
    }
    let event = header(&headers, "x-github-event").unwrap_or("");
    let delivery = header(&headers, "x-github-delivery").unwrap_or("");
    match event {
        "ping" => answer(StatusCode::OK, "pong"),
        "push" => {
            let fresh = delivery.is_empty()
                || s.deliveries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .first_time(delivery.as_bytes().to_vec(), None);
            if !fresh {
                debug!(hook = "github", delivery, "redelivery ignored");
                return answer(StatusCode::OK, "already seen");
            }
            let push = serde_json::from_slice(&body).unwrap_or_default();
            let woken = wake(&s.loops, |l| pushed_to(l, &push));
            if woken == 0 {
                info!(
                    hook = "github",
                    delivery, "push to a repository or branch weir does not serve: nothing woken"
                );
                return answer(StatusCode::OK, "no repository served here matches the push");
            }
            info!(hook = "github", delivery, loops = woken, "push: waking");
            answer(StatusCode::ACCEPTED, "a tick is on its way")
        }
        _ => answer(StatusCode::OK, "event ignored"),
    }
}

/// Flux notification-controller, `generic-hmac`: `X-Signature: sha256=<hex>` over the body
/// (an event: `involvedObject`, `reason`, `message`...), `gotk-component` naming the sender.
async fn flux(State(s): State<Arc<Served>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = &s.flux else {
        return answer(StatusCode::NOT_FOUND, "not served");
    };
    let signature = header(&headers, "x-signature");
    if !signed(key, &body, signature) {
        warn!(hook = "flux", "webhook refused: missing or wrong signature");
        return answer(StatusCode::UNAUTHORIZED, "missing or wrong signature");
    }
    let event: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => return answer(StatusCode::BAD_REQUEST, "the body is not a JSON event"),
    };
    // The body and its signature, hashed: an identical request within the window is a
    // replay (notification-controller retries a failed post with the same bytes).
    let mut seen = ring::digest::Context::new(&ring::digest::SHA256);
    seen.update(signature.unwrap_or("").as_bytes());
    seen.update(&body);
    let fresh = s
        .flux_seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .first_time(seen.finish().as_ref().to_vec(), Some(FLUX_REPLAY_WINDOW));
    let object = &event["involvedObject"];
    let kind = object["kind"].as_str().unwrap_or("");
    let name = object["name"].as_str().unwrap_or("");
    if !fresh {
        debug!(hook = "flux", kind, name, "replay ignored");
        return answer(StatusCode::ACCEPTED, "already seen");
    }
    let branch = event["metadata"]["revision"]
        .as_str()
        .and_then(revision_branch)
        .filter(|b| s.loops.iter().any(|l| l.branch == *b));
    let woken = wake(&s.loops, |l| branch.is_none_or(|b| l.branch == b));
    info!(
        hook = "flux",
        kind,
        name,
        reason = event["reason"].as_str().unwrap_or(""),
        loops = woken,
        "Flux event: waking"
    );
    answer(StatusCode::ACCEPTED, "a tick is on its way")
}

/// Wakes the loops `concerned` picks; returns how many.
fn wake(loops: &[Loop], concerned: impl Fn(&Loop) -> bool) -> usize {
    loops
        .iter()
        .filter(|l| concerned(l))
        .map(|l| l.wake.notify_one())
        .count()
}

/// Whether a GitHub push event is about `l`'s repository and branch. A push that names no
/// repository (a hand-made one) concerns every repository; one without a `ref` every branch.
fn pushed_to(l: &Loop, push: &serde_json::Value) -> bool {
    let branch = push["ref"].as_str().map(|r| r.strip_prefix("refs/heads/"));
    let on_branch = match branch {
        None => true,
        Some(b) => b == Some(l.branch.as_str()),
    };
    let repository = &push["repository"];
    if !repository.is_object() {
        return on_branch;
    }
    let addresses = [
        "clone_url",
        "ssh_url",
        "git_url",
        "html_url",
        "url",
        "svn_url",
    ];
    let same = addresses
        .iter()
        .filter_map(|k| repository[*k].as_str())
        .any(|a| crate::core::remote::same(&l.repo, a))
        || repository["full_name"]
            .as_str()
            .is_some_and(|n| crate::core::remote::named(&l.repo, n));
    on_branch && same
}

/// The branch of a Flux revision: `main@sha1:<hex>` (Flux 2.1 and later) or `main/<hex>`.
fn revision_branch(revision: &str) -> Option<&str> {
    let (branch, _) = revision
        .rsplit_once("@sha1:")
        .or_else(|| revision.rsplit_once("@sha256:"))
        .or_else(|| revision.rsplit_once('/'))?;
    let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    (!branch.is_empty()).then_some(branch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &[u8], body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        let tag = ring::hmac::sign(&key, body);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    #[test]
    fn signatures_are_checked() {
        let key = hmac_key(&Secret::new("s3cret"));
        let body = br#"{"zen":"ok"}"#;
        let good = sign(b"s3cret", body);
        assert!(signed(&key, body, Some(&good)));
        assert!(signed(
            &key,
            body,
            Some(&good.to_uppercase().replace("SHA256=", "sha256="))
        ));
        assert!(!signed(&key, body, Some(&sign(b"other", body))));
        assert!(!signed(&key, b"{}", Some(&good)));
        assert!(!signed(
            &key,
            body,
            Some(good.trim_start_matches("sha256="))
        ));
        assert!(!signed(&key, body, Some("sha256=zz")));
        assert!(!signed(&key, body, Some(&good[..good.len() - 2])));
        assert!(!signed(&key, body, None));
    }

    #[test]
    fn recent_keys_are_bounded_and_expire() {
        let mut r = Recent::default();
        assert!(r.first_time(b"a".to_vec(), None));
        assert!(!r.first_time(b"a".to_vec(), None));
        for i in 0..DELIVERIES_KEPT {
            r.first_time(i.to_string().into_bytes(), None);
        }
        assert!(r.order.len() <= DELIVERIES_KEPT);
        // "a" was the oldest, so it was forgotten.
        assert!(r.first_time(b"a".to_vec(), None));
        assert!(r.first_time(b"b".to_vec(), Some(Duration::ZERO)));
    }

    fn a_loop(repo: &str, branch: &str) -> Loop {
        Loop {
            repo: repo.into(),
            branch: branch.into(),
            wake: Arc::new(Notify::new()),
        }
    }

    #[test]
    fn a_push_concerns_its_repository_and_branch() {
        let fleet = a_loop("https://x:token@github.com/acme/fleet.git", "main");
        let push = |r: &str, repository: serde_json::Value| serde_json::json!({"ref": r, "repository": repository});
        let by_url = serde_json::json!({"clone_url": "https://github.com/acme/fleet.git"});
        let by_ssh = serde_json::json!({"ssh_url": "git@github.com:acme/fleet.git"});
        let by_name = serde_json::json!({"full_name": "acme/fleet"});
        let other = serde_json::json!({"clone_url": "https://github.com/acme/other.git", "full_name": "acme/other"});
        assert!(pushed_to(&fleet, &push("refs/heads/main", by_url.clone())));
        assert!(pushed_to(&fleet, &push("refs/heads/main", by_ssh)));
        assert!(pushed_to(&fleet, &push("refs/heads/main", by_name)));
        assert!(!pushed_to(&fleet, &push("refs/heads/prod", by_url.clone())));
        assert!(!pushed_to(&fleet, &push("refs/tags/main", by_url)));
        assert!(!pushed_to(&fleet, &push("refs/heads/main", other)));
        // Nothing said: every loop on the branch, or every loop.
        assert!(pushed_to(
            &fleet,
            &serde_json::json!({"ref": "refs/heads/main"})
        ));
        assert!(!pushed_to(
            &fleet,
            &serde_json::json!({"ref": "refs/heads/x"})
        ));
        assert!(pushed_to(&fleet, &serde_json::json!({})));
    }

    #[test]
    fn a_flux_revision_names_its_branch() {
        assert_eq!(revision_branch("main@sha1:0123abc"), Some("main"));
        assert_eq!(
            revision_branch("release/v2@sha1:0123abc"),
            Some("release/v2")
        );
        assert_eq!(
            revision_branch("refs/heads/prod@sha1:0123abc"),
            Some("prod")
        );
        assert_eq!(revision_branch("main/0123abc"), Some("main"));
        assert_eq!(revision_branch("sha1:0123abc"), None);
        assert_eq!(revision_branch("@sha1:0123abc"), None);
    }
}
