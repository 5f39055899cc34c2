//! A real Git smart-HTTP server with basic auth for integration tests.
//!
//! Serves the bare repositories under a folder at `http://127.0.0.1:PORT/<repo>` by running the
//! real `git http-backend` as a CGI program for each request, so clones, fetches and pushes
//! behave as against a Git host. A request without the configured user and password (HTTP
//! basic auth) is answered `401`, and every request is logged, so tests can assert what a client
//! tried. A hanging mode reads requests and never answers, to test timeouts. Dropping the server
//! stops it and closes every connection, hung ones included. hyper (through the shared server
//! of `http.rs`) reads the requests, chunked and gzip-compressed pushes included; this module
//! checks the credentials and speaks CGI. Needs `git` on PATH.

// Each test uses the helpers it needs; the others are not dead, just unused there.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{ConnectInfo, Request as HttpRequest, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use axum::Router;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::http::Server;

/// The realm of the `WWW-Authenticate` challenge sent with every 401.
pub const REALM: &str = "weir-test";

/// Status logged by `requests` for a request the hanging server never answered.
pub const HUNG: &str = "hang";

/// A running smart-HTTP Git server on 127.0.0.1, stopped on drop.
pub struct GitHttp {
    shared: Arc<Shared>,
    server: Server,
    /// The empty root of a `start_hanging` server, kept until the server goes.
    _root: Option<tempfile::TempDir>,
}

/// What the handlers share.
struct Shared {
    root: PathBuf,
    user: String,
    password: String,
    backend: PathBuf,
    port: u16,
    hang: AtomicBool,
    /// Requests hanging now (their clients still connected).
    hung: AtomicUsize,
    log: Mutex<Vec<String>>,
}

impl GitHttp {
    /// Serves the bare repositories under `root` (`root/remote.git` is at
    /// `url("remote.git")`) to clients that authenticate as `user` with `password`. Pushes are
    /// allowed. Panics if `git http-backend` cannot be found or no port can be bound.
    pub fn start(root: &Path, user: &str, password: &str) -> GitHttp {
        GitHttp::start_with(root.to_path_buf(), user, password, None)
    }

    /// A server that accepts every connection, reads the request and never answers, until
    /// dropped. It serves an empty root; its credentials are `user`/`password`, though it
    /// checks none.
    pub fn start_hanging() -> GitHttp {
        let dir = tempfile::tempdir().expect("creating a temp dir for the Git HTTP root");
        let server = GitHttp::start_with(dir.path().to_path_buf(), "user", "password", Some(dir));
        server.set_hang(true);
        server
    }

    fn start_with(
        root: PathBuf,
        user: &str,
        password: &str,
        root_dir: Option<tempfile::TempDir>,
    ) -> GitHttp {
        let backend = http_backend();
        let mut shared = None;
        let server = Server::start_with("git-http", |port| {
            let s = Arc::new(Shared {
                root,
                user: user.to_owned(),
                password: password.to_owned(),
                backend,
                port,
                hang: AtomicBool::new(false),
                hung: AtomicUsize::new(0),
                log: Mutex::new(Vec::new()),
            });
            shared = Some(Arc::clone(&s));
            // Every path and method goes to http-backend, which knows the protocol.
            Router::new().fallback(serve).with_state(s)
        });
        GitHttp {
            shared: shared.expect("the router was built"),
            server,
            _root: root_dir,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:PORT/<repo>`, without credentials.
    pub fn url(&self, repo: &str) -> String {
        format!("{}/{}", self.server.url(), repo.trim_start_matches('/'))
    }

    /// Every request so far, oldest first, as `METHOD TARGET STATUS`, where `TARGET` is the
    /// path with its query (`GET /remote.git/info/refs?service=git-receive-pack 401`) and
    /// `STATUS` is the code answered, or `hang` (`HUNG`) for a request left unanswered.
    /// Clients with credentials in the URL first ask without them, so a command usually starts
    /// with one 401; with a wrong password git logs two 401s (without, then with credentials).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.log).clone()
    }

    /// Turns the hanging mode on or off for requests arriving from now on: when on, every
    /// request is read and never answered, and its connection stays open until the client
    /// closes it or the server is dropped. Requests already hung stay hung.
    pub fn set_hang(&self, hang: bool) {
        self.shared.hang.store(hang, Ordering::SeqCst);
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        // A hung request would never finish: close its connection at once rather than wait
        // out the grace meant for requests that do.
        if self.shared.hung.load(Ordering::SeqCst) > 0 {
            self.server.shutdown(Duration::ZERO);
        }
    }
}

/// `<git --exec-path>/git-http-backend`, for the `git` first on PATH.
fn http_backend() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("running `git --exec-path`");
    assert!(
        out.status.success(),
        "`git --exec-path` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backend =
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("git-http-backend");
    assert!(
        backend.is_file(),
        "no git-http-backend at {}",
        backend.display()
    );
    backend
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the whole server down with it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request, as http-backend is told of it.
struct Request {
    method: String,
    /// The request target as sent: path and query.
    target: String,
    path: String,
    query: String,
    /// Lower-cased names; repeated headers joined with ", ".
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response of `git http-backend`, or of this server.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Counts a hung request until its client goes away or the server stops.
struct Hung(Arc<Shared>);

impl Drop for Hung {
    fn drop(&mut self) {
        self.0.hung.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Any request: hung, refused (401) or handed to `git http-backend`.
async fn serve(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: HttpRequest,
) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let mut headers: Vec<(String, String)> = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.push((name.as_str().to_owned(), values.join(", ")));
    }
    let request = Request {
        method: parts.method.to_string(),
        target,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
    };

    if shared.hang.load(Ordering::SeqCst) {
        lock(&shared.log).push(format!("{} {} {HUNG}", request.method, request.target));
        shared.hung.fetch_add(1, Ordering::SeqCst);
        let _hung = Hung(Arc::clone(&shared));
        // Read whatever comes, body included; then never answer. hyper drops this future
        // when the client closes, and dropping the server closes the connection.
        let _ = axum::body::to_bytes(body, usize::MAX).await;
        return std::future::pending().await;
    }

    let (method, target) = (request.method.clone(), request.target.clone());
    let response = if !authorized(&request, &shared.user, &shared.password) {
        // The body is left unread: with `Expect: 100-continue` the client is not asked for
        // it, and hyper drains or closes as the framing allows.
        let mut response = Response::text(401, "authentication required\n");
        response.headers.push((
            "WWW-Authenticate".into(),
            format!("Basic realm=\"{REALM}\""),
        ));
        response
    } else {
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => {
                let peer = peer.ip().to_string();
                let backend = Arc::clone(&shared);
                // http-backend is a process to wait for: off the server's one thread.
                tokio::task::spawn_blocking(move || run_backend(&backend, &request, &body, &peer))
                    .await
                    .map_err(io::Error::other)
                    .and_then(|ran| ran)
                    .unwrap_or_else(|e| {
                        Response::text(500, &format!("running git http-backend: {e}\n"))
                    })
            }
            Err(e) => Response::text(400, &format!("reading the body: {e}\n")),
        }
    };
    // Logged before the client has the answer, so a test that got it sees the entry.
    log(&shared, &method, &target, response.status);
    into_http(response)
}

fn log(shared: &Shared, method: &str, target: &str, status: u16) {
    lock(&shared.log).push(format!("{method} {target} {status}"));
}

/// The response for hyper, which does the framing: the CGI's own framing headers are dropped.
fn into_http(response: Response) -> HttpResponse {
    let mut out = HttpResponse::new(Body::from(response.body));
    // http-backend's statuses are all valid; a broken one is a server error.
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &response.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        if [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ]
        .contains(&name)
        {
            continue;
        }
        out.headers_mut().append(name, value);
    }
    out
}

/// Whether the request carries `Authorization: Basic` with exactly `user:password`.
fn authorized(request: &Request, user: &str, password: &str) -> bool {
    let Some(value) = request.header("authorization") else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("basic")
        && base64_decode(token.trim()).is_some_and(|c| c == format!("{user}:{password}").as_bytes())
}

/// Decodes standard base64 (RFC 4648, padding optional); `None` if malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let digits = text.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in group.iter().enumerate() {
            bits |= value(c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

/// Decodes `%XX` escapes, as CGI wants `PATH_INFO` decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `git http-backend` for an authorized request and turns its CGI output into a response.
fn run_backend(
    shared: &Shared,
    request: &Request,
    body: &[u8],
    peer: &str,
) -> io::Result<Response> {
    let mut command = Command::new(&shared.backend);
    // A clean environment: a GIT_DIR or the like leaking from the test would redirect git.
    command.env_clear();
    for var in ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"] {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    command
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_SOFTWARE", "weir-test-git-http")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SERVER_NAME", "127.0.0.1")
        .env("SERVER_PORT", shared.port.to_string())
        .env("REQUEST_METHOD", &request.method)
        .env("REQUEST_URI", &request.target)
        .env("PATH_INFO", percent_decode(&request.path))
        .env("QUERY_STRING", &request.query)
        .env("REMOTE_ADDR", peer)
        .env("AUTH_TYPE", "Basic")
        // http-backend refuses receive-pack (pushes) to anonymous users.
        .env("REMOTE_USER", &shared.user);
    if !body.is_empty() || request.method == "POST" {
        command.env("CONTENT_LENGTH", body.len().to_string());
    }
    if let Some(content_type) = request.header("content-type") {
        command.env("CONTENT_TYPE", content_type);
    }
    // The other headers as HTTP_*, as CGI does: http-backend reads HTTP_CONTENT_ENCODING (and
    // inflates a gzip body itself) and HTTP_GIT_PROTOCOL (protocol v2).
    for (name, value) in &request.headers {
        if matches!(
            name.as_str(),
            "authorization"
                | "content-type"
                | "content-length"
                | "transfer-encoding"
                | "expect"
                | "connection"
        ) {
            continue;
        }
        command.env(
            format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
            value,
        );
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;

    // Feed stdin and drain stderr on their own threads while reading stdout here, so that
    // no pipe fills up and blocks the others.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = body.to_vec();
    let feeder = std::thread::spawn(move || {
        // http-backend may answer without reading everything (an error, say).
        let _ = stdin.write_all(&input);
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let mut output = Vec::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut output)?;
    let status = child.wait()?;
    let _ = feeder.join();
    let errors = errors.join().unwrap_or_default();

    let errors = String::from_utf8_lossy(&errors);
    let response = parse_cgi(&output).map_err(|e| {
        io::Error::other(format!(
            "{e} (exit {status}; stderr: {})",
            errors.trim_end()
        ))
    })?;
    // Its stderr also carries upload-pack's progress; show it only when something failed
    // (printed with the output of a failing test).
    if (!status.success() || response.status >= 400) && !errors.trim().is_empty() {
        eprintln!(
            "git http-backend ({} {}) answered {}: {}",
            request.method,
            request.target,
            response.status,
            errors.trim_end()
        );
    }
    Ok(response)
}

/// Splits CGI output into a response: headers up to a blank line, `Status:` giving the code.
fn parse_cgi(output: &[u8]) -> io::Result<Response> {
    let mut headers = Vec::new();
    let mut status = None;
    let mut location = false;
    let mut rest = output;
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(io::Error::other(format!(
                "CGI output without the blank line after its headers: {:?}",
                String::from_utf8_lossy(&output[..output.len().min(200)])
            )));
        };
        let line = String::from_utf8_lossy(&rest[..end]);
        let line = line.trim_end_matches('\r');
        rest = &rest[end + 1..];
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(io::Error::other(format!("bad CGI header line {line:?}")));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_once(' ').map_or(value, |(code, _)| code);
            let code: u16 = code
                .parse()
                .map_err(|_| io::Error::other(format!("bad CGI Status {value:?}")))?;
            status = Some(code);
        } else {
            location |= name.eq_ignore_ascii_case("location");
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let status = status.unwrap_or(if location { 302 } else { 200 });
    Ok(Response {
        status,
        headers,
        body: rest.to_vec(),
    })
}
