//! A flagger-loadtester stand-in: a real HTTP server on 127.0.0.1 that answers Flagger's
//! load tester API (pkg/loadtester/server.go) as the real one does, without running anything.
//!
//! - The method is never checked; unknown paths are new tasks, as Go's mux sends them to `/`.
//! - `/healthz`: 200 `OK`. `/gate/approve`: 200 `OK`. `/gate/halt`: 403 `Forbidden`.
//! - `/gate/check`: 200 `Approved` when gate `<name>.<namespace>` is open, else 403
//!   `Forbidden` (gates start closed); `/gate/open`, `/gate/close`: 202, empty body.
//! - `/rollback/check`, `/rollback/open`, `/rollback/close`: the same, on the key
//!   `rollback.<name>.<namespace>`.
//! - `/` (new task): no or empty `metadata` is 400 `metadata not found in payload`; type `cmd`
//!   (the default) needs `metadata.cmd` (else 400 `cmd not found in metadata`) and is
//!   accepted at once with 202; type `bash` answers 200, or 500 with Flagger's error text when
//!   the test told it that command fails.
//! - A body that is not a JSON payload is 400 with an empty body.
//!
//! Gates persist until closed, as in the real load tester. Every request is recorded (path,
//! raw body, parsed payload, answer) so tests can assert what weir sent. Stops on drop.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::Server;

/// Flagger's `CanaryWebhookPayload`, as the load tester decodes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Payload {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub checksum: String,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// One request as received, with the answer it got.
#[derive(Debug, Clone)]
pub struct Call {
    /// Never checked by the load tester, recorded anyway.
    pub method: String,
    /// The path, without a query string.
    pub path: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The body decoded as the load tester decodes it; `None` when it is not a payload.
    pub payload: Option<Payload>,
    /// The top-level keys of the body's JSON object, in the order they were sent.
    pub keys: Vec<String>,
    /// The status answered.
    pub status: u16,
    /// The body answered.
    pub answer: String,
}

impl Call {
    /// The payload; panics when the body was not one.
    pub fn payload(&self) -> &Payload {
        self.payload.as_ref().unwrap_or_else(|| {
            panic!(
                "{} got no payload: {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A metadata value of the payload.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.payload
            .as_ref()?
            .metadata
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// A task the load tester accepted (`cmd` queued, `bash` run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// `cmd` or `bash`.
    pub kind: String,
    /// The command.
    pub cmd: String,
    /// `<name>.<namespace>` of the payload.
    pub canary: String,
    /// Whether it "ran" successfully (always for `cmd`, whose outcome is never reported).
    pub ok: bool,
}

#[derive(Default)]
struct Shared {
    /// Gate keys and whether they are open; absent is closed.
    gates: Mutex<BTreeMap<String, bool>>,
    /// `bash` commands that fail, and how many more times (`usize::MAX`: always).
    failing: Mutex<BTreeMap<String, usize>>,
    calls: Mutex<Vec<Call>>,
    tasks: Mutex<Vec<Task>>,
}

/// A running load tester; stops on drop.
pub struct LoadTester {
    shared: Arc<Shared>,
    server: Server,
}

impl LoadTester {
    /// Starts on a free 127.0.0.1 port.
    pub fn start() -> LoadTester {
        let shared = Arc::new(Shared::default());
        // Go's mux sends every path it does not know to `/`, whatever the method.
        let router = Router::new().fallback(serve).with_state(shared.clone());
        let server = Server::start("loadtester", router);
        LoadTester { shared, server }
    }

    /// `http://127.0.0.1:PORT`, as a Canary's webhook URLs name it.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Opens gate `<name>.<namespace>` (as `/gate/open` does).
    pub fn open_gate(&self, name: &str, namespace: &str) {
        self.set(format!("{name}.{namespace}"), true);
    }

    /// Closes gate `<name>.<namespace>` (as `/gate/close` does).
    pub fn close_gate(&self, name: &str, namespace: &str) {
        self.set(format!("{name}.{namespace}"), false);
    }

    /// Opens the rollback gate of a canary (as `/rollback/open` does).
    pub fn open_rollback(&self, name: &str, namespace: &str) {
        self.set(format!("rollback.{name}.{namespace}"), true);
    }

    /// Closes the rollback gate of a canary (as `/rollback/close` does).
    pub fn close_rollback(&self, name: &str, namespace: &str) {
        self.set(format!("rollback.{name}.{namespace}"), false);
    }

    fn set(&self, key: String, open: bool) {
        self.shared.gates.lock().unwrap().insert(key, open);
    }

    /// Whether gate `<name>.<namespace>` is open.
    pub fn gate_is_open(&self, name: &str, namespace: &str) -> bool {
        is_open(&self.shared, &format!("{name}.{namespace}"))
    }

    /// The `bash` command `cmd` fails the next `times` runs, then succeeds.
    pub fn fail_bash(&self, cmd: &str, times: usize) {
        self.shared
            .failing
            .lock()
            .unwrap()
            .insert(cmd.to_string(), times);
    }

    /// The `bash` command `cmd` fails every time.
    pub fn always_fail_bash(&self, cmd: &str) {
        self.fail_bash(cmd, usize::MAX);
    }

    /// Every request so far, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The requests to one path, in order.
    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == path)
            .collect()
    }

    /// The tasks accepted on `/`, in order.
    pub fn tasks(&self) -> Vec<Task> {
        self.shared.tasks.lock().unwrap().clone()
    }

    /// Sends `body` to `path` over HTTP, as `curl -d` would: (status, body).
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        http_post(self.server.port(), path, body).unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }
}

fn is_open(s: &Shared, key: &str) -> bool {
    s.gates.lock().unwrap().get(key).copied().unwrap_or(false)
}

/// The answer to one request: (status, body).
fn answer(s: &Shared, path: &str, payload: Result<&Payload, ()>) -> (u16, String) {
    let forbidden = || (403, "Forbidden".to_string());
    match path {
        "/healthz" | "/gate/approve" => return (200, "OK".into()),
        "/gate/halt" => return forbidden(),
        _ => {}
    }
    // Every other route reads the payload; a body that is not one is 400, empty.
    let Ok(p) = payload else {
        return (400, String::new());
    };
    let gate = format!("{}.{}", p.name, p.namespace);
    let rollback = format!("rollback.{gate}");
    let check = |key: &str| {
        if is_open(s, key) {
            (200, "Approved".to_string())
        } else {
            forbidden()
        }
    };
    let set = |key: String, open: bool| {
        s.gates.lock().unwrap().insert(key, open);
        (202, String::new())
    };
    match path {
        "/gate/check" => check(&gate),
        "/gate/open" => set(gate, true),
        "/gate/close" => set(gate, false),
        "/rollback/check" => check(&rollback),
        "/rollback/open" => set(rollback, true),
        "/rollback/close" => set(rollback, false),
        _ => new_task(s, p, gate),
    }
}

/// `HandleNewTask`: queue a `cmd`, run a `bash` (here: look up whether it fails).
fn new_task(s: &Shared, p: &Payload, canary: String) -> (u16, String) {
    let Some(meta) = p.metadata.as_ref().filter(|m| !m.is_empty()) else {
        return (400, "metadata not found in payload".into());
    };
    let kind = meta.get("type").map(String::as_str).unwrap_or("cmd");
    let cmd = meta.get("cmd").cloned();
    match kind {
        "bash" => {
            let cmd = cmd.unwrap_or_default();
            let fails = {
                let mut failing = s.failing.lock().unwrap();
                match failing.get_mut(&cmd) {
                    Some(n) if *n > 0 => {
                        if *n != usize::MAX {
                            *n -= 1;
                        }
                        true
                    }
                    _ => false,
                }
            };
            s.tasks.lock().unwrap().push(Task {
                kind: "bash".into(),
                cmd: cmd.clone(),
                canary,
                ok: !fails,
            });
            if fails {
                // Flagger's BashTask error: `command <cmd> failed: <output>: <exec error>`.
                (500, format!("command {cmd} failed: : exit status 1"))
            } else {
                (200, String::new())
            }
        }
        "cmd" => match cmd {
            None => (400, "cmd not found in metadata".into()),
            Some(cmd) => {
                s.tasks.lock().unwrap().push(Task {
                    kind: "cmd".into(),
                    cmd,
                    canary,
                    ok: true,
                });
                (202, String::new())
            }
        },
        // The real load tester has more task types (helm, kubectl, concord, ngrinder);
        // the scenarios use none of them.
        other => (400, format!("unknown task type {other}")),
    }
}

/// Any request: the path picks the route, the body is the payload.
async fn serve(State(s): State<Arc<Shared>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let parsed: Result<Payload, ()> = serde_json::from_slice(&body).map_err(|_| ());
    let keys = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    let (status, text) = answer(&s, &path, parsed.as_ref().map_err(|_| ()));
    // Recorded before answering: once weir has its answer, the test sees the request.
    s.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path,
        body: body.to_vec(),
        payload: parsed.ok(),
        keys,
        status,
        answer: text.clone(),
    });
    let status = StatusCode::from_u16(status).expect("the load tester's statuses are valid");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A minimal HTTP/1.0 POST to 127.0.0.1: the status code and the body.
pub fn http_post(port: u16, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let bad = || std::io::Error::other(format!("malformed HTTP response: {response:?}"));
    let (head, text) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, text.to_owned()))
}
