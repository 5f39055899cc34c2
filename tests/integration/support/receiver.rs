//! A webhook receiver for alert tests: a real HTTP/1.1 server on 127.0.0.1 that records
//! every request (method, target, headers, body) and answers a status the test sets. It can
//! fail the next N requests with 500, echo each request back in its answer (as some proxies
//! do in their error pages), hold requests until several have arrived, which proves they
//! were sent at once without timing anything, and hold the next request at one path until the
//! test releases it (to stop its sender while it waits for the answer). Used as a proxy, it records the absolute URL
//! the client asked it for. Stops on drop.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{Request as HttpRequest, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

use super::http::Server;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target: a path (`/hook`), or an absolute URL when sent to a proxy.
    pub target: String,
    /// Header names (lowercased) and values, in the order received (repeats of a name together).
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: String,
    /// Answer 500 to this many more requests first.
    fail_next: usize,
    /// Put the request line and headers in the answer's body.
    echo: bool,
    /// Answer only once this many requests have arrived (or after 5 s).
    hold_until: usize,
    /// Hold the answer to the next request at this target until released.
    hold_at: Option<String>,
}

/// What held requests wait on.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    arrived: usize,
    stopping: bool,
    released: bool,
}

struct Shared {
    answer: Mutex<Answer>,
    requests: Mutex<Vec<Request>>,
    progress: watch::Sender<Progress>,
}

/// A running receiver; stops on drop.
pub struct Receiver {
    shared: Arc<Shared>,
    server: Server,
}

impl Receiver {
    /// A receiver that answers `200 ok`.
    pub fn start() -> Receiver {
        Receiver::answering(200)
    }

    /// A receiver that answers `status`.
    pub fn answering(status: u16) -> Receiver {
        let shared = Arc::new(Shared {
            answer: Mutex::new(Answer {
                status,
                body: "ok".into(),
                fail_next: 0,
                echo: false,
                hold_until: 0,
                hold_at: None,
            }),
            requests: Mutex::new(Vec::new()),
            progress: watch::Sender::new(Progress::default()),
        });
        let router = Router::new().fallback(serve).with_state(shared.clone());
        let server = Server::start("receiver", router);
        Receiver { shared, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Answers `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.shared.answer.lock().unwrap().status = status;
    }

    /// Answers with this body from now on.
    pub fn set_body(&self, body: &str) {
        self.shared.answer.lock().unwrap().body = body.to_string();
    }

    /// Answers the next `n` requests with 500, then as set.
    pub fn fail_next(&self, n: usize) {
        self.shared.answer.lock().unwrap().fail_next = n;
    }

    /// Echoes each request's line and headers (credentials included) in the answer.
    pub fn echo(&self) {
        self.shared.answer.lock().unwrap().echo = true;
    }

    /// Holds every answer until `n` requests have arrived (at most 5 s).
    pub fn hold_until(&self, n: usize) {
        self.shared.answer.lock().unwrap().hold_until = n;
    }

    /// Holds the answer to the next request whose target is `target` (say `/hook`) until
    /// [`Receiver::release`]; the request is recorded when it arrives.
    pub fn hold_next_at(&self, target: &str) {
        self.shared.answer.lock().unwrap().hold_at = Some(target.to_string());
        self.shared.progress.send_modify(|p| p.released = false);
    }

    /// Answers the request [`Receiver::hold_next_at`] holds.
    pub fn release(&self) {
        self.shared.progress.send_modify(|p| p.released = true);
    }

    /// The requests received at `target`, in order of arrival.
    pub fn requests_at(&self, target: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.target == target)
            .collect()
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Held requests answer now; the server then stops with them answered.
        self.shared.progress.send_modify(|p| p.stopping = true);
    }
}

/// Records any request, to any path with any method, and answers it as set.
async fn serve(State(s): State<Arc<Shared>>, request: HttpRequest) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body.to_vec(),
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")).into_response()
        }
    };
    // The request target as sent: a path, or an absolute URL when asked as a proxy.
    let target = parts.uri.to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let echoed = format!(
        "{} {target} {:?}\n{}",
        parts.method,
        parts.version,
        headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (status, text, hold, held) = {
        let mut answer = s.answer.lock().unwrap();
        let held = answer.hold_at.as_deref() == Some(target.as_str());
        if held {
            answer.hold_at = None;
        }
        let status = if answer.fail_next > 0 {
            answer.fail_next -= 1;
            500
        } else {
            answer.status
        };
        let text = if answer.echo {
            format!("your request was:\n{echoed}\n")
        } else {
            answer.body.clone()
        };
        (status, text, answer.hold_until, held)
    };
    // Recorded before answering: once the client has its answer, the test sees the request.
    s.requests.lock().unwrap().push(Request {
        method: parts.method.to_string(),
        target,
        headers,
        body,
    });
    s.progress.send_modify(|p| p.arrived += 1);
    if hold > 0 {
        let mut progress = s.progress.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            progress.wait_for(|p| p.arrived >= hold || p.stopping),
        )
        .await;
    }
    if held {
        let mut progress = s.progress.subscribe();
        let _ = progress.wait_for(|p| p.released || p.stopping).await;
    }
    let status = StatusCode::from_u16(status).expect("a test sets a valid status");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from(text),
    )
        .into_response()
}
