//! A real Git smart-HTTP server with basic auth for integration tests.
//!
//! Serves the bare repositories under a folder at `http://127.0.0.1:PORT/<repo>` by running the
//! real `git http-backend` as a CGI program for each request, so clones, fetches and pushes
//! behave as against a Git host. A request without the configured user and password (HTTP
//! basic auth) is answered `401`, and every request is logged, so tests can assert what a client
//! tried. A hanging mode reads requests and never answers, to test timeouts. Dropping the server
//! stops it and closes every connection, hung ones included. Needs `git` on PATH.

// Each test uses the helpers it needs; the others are not dead, just unused there.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The realm of the `WWW-Authenticate` challenge sent with every 401.
pub const REALM: &str = "weir-test";

/// Status logged by `requests` for a request the hanging server never answered.
pub const HUNG: &str = "hang";

/// Longest request head (request line and headers) the server reads.
const MAX_HEAD: usize = 64 * 1024;

/// How long dropping the server waits for its connection threads to end.
const DROP_DEADLINE: Duration = Duration::from_secs(10);

/// A running smart-HTTP Git server on 127.0.0.1, stopped on drop.
pub struct GitHttp {
    port: u16,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
    /// The empty root of a `start_hanging` server, kept until the server goes.
    _root: Option<tempfile::TempDir>,
}

/// What the listener and the connection threads share.
struct Shared {
    root: PathBuf,
    user: String,
    password: String,
    backend: PathBuf,
    port: u16,
    hang: AtomicBool,
    log: Mutex<Vec<String>>,
    conns: Mutex<Conns>,
    /// Signalled whenever a connection thread ends.
    conn_ended: Condvar,
}

/// The open connections, so that dropping the server can shut them down.
#[derive(Default)]
struct Conns {
    stopping: bool,
    next_id: u64,
    open: HashMap<u64, TcpStream>,
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
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("binding a loopback port for Git HTTP");
        let port = listener
            .local_addr()
            .expect("reading the Git HTTP server's address")
            .port();
        let shared = Arc::new(Shared {
            root,
            user: user.to_owned(),
            password: password.to_owned(),
            backend,
            port,
            hang: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
            conns: Mutex::new(Conns::default()),
            conn_ended: Condvar::new(),
        });
        let accepting = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("git-http-{port}"))
            .spawn(move || accept_loop(listener, accepting))
            .expect("starting the Git HTTP listener thread");
        GitHttp {
            port,
            shared,
            listener: Some(handle),
            _root: root_dir,
        }
    }

    /// `http://127.0.0.1:PORT/<repo>`, without credentials.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            repo.trim_start_matches('/')
        )
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
        // Under the lock, so that the listener registers no connection after this.
        {
            let mut conns = lock(&self.shared.conns);
            conns.stopping = true;
            for stream in conns.open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        // Wake the listener out of `accept`; it sees `stopping` and returns. Should the
        // connection fail, the thread is left blocked rather than joined forever.
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
            if let Some(handle) = self.listener.take() {
                let _ = handle.join();
            }
        }
        // Connection threads end once their socket is shut down; wait for them, bounded.
        let conns = lock(&self.shared.conns);
        let _ = self
            .shared
            .conn_ended
            .wait_timeout_while(conns, DROP_DEADLINE, |c| !c.open.is_empty());
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

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(_) => {
                if lock(&shared.conns).stopping {
                    return;
                }
                // Out of file descriptors, say: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = {
            let mut conns = lock(&shared.conns);
            if conns.stopping {
                return;
            }
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            let id = conns.next_id;
            conns.next_id += 1;
            conns.open.insert(id, clone);
            id
        };
        let serving = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("git-http-{}-conn-{id}", shared.port))
            .spawn(move || {
                let _registered = Registered {
                    shared: &serving,
                    id,
                };
                serve(&serving, stream);
            });
        if spawned.is_err() {
            lock(&shared.conns).open.remove(&id);
        }
    }
}

/// Unregisters a connection when its thread ends, panics included.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.shared.conns).open.remove(&self.id);
        self.shared.conn_ended.notify_all();
    }
}

/// One parsed request head.
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

    fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

/// A response ready to send.
struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, reason: &str, body: &str) -> Response {
        Response {
            status,
            reason: reason.to_owned(),
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Serves one connection: one request, one response, then close.
fn serve(shared: &Shared, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into());
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let request = match read_head(&mut reader) {
        Ok(Some(request)) => request,
        // The client closed before sending a request (the drop's wake-up connection, say).
        Ok(None) => return,
        Err(e) => {
            let _ = send(
                &stream,
                &Response::text(400, "Bad Request", &format!("{e}\n")),
            );
            log(shared, "?", "?", 400);
            return;
        }
    };

    if shared.hang.load(Ordering::SeqCst) {
        lock(&shared.log).push(format!("{} {} {HUNG}", request.method, request.target));
        // Read whatever comes, body included, until the client or the drop closes the socket.
        let _ = io::copy(&mut reader, &mut io::sink());
        return;
    }

    if !authorized(&request, &shared.user, &shared.password) {
        // With `Expect: 100-continue` the client waits for a go-ahead it will not get;
        // otherwise read the body, so that closing does not reset the connection under it.
        if !request.expects_continue() {
            let _ = read_body(&mut reader, &request);
        }
        let mut response = Response::text(401, "Unauthorized", "authentication required\n");
        response.headers.push((
            "WWW-Authenticate".into(),
            format!("Basic realm=\"{REALM}\""),
        ));
        let _ = send(&stream, &response);
        log(shared, &request.method, &request.target, 401);
        close_gracefully(&stream, &mut reader);
        return;
    }

    if request.expects_continue() {
        let mut writer = &stream;
        if writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return;
        }
    }
    let response = match read_body(&mut reader, &request) {
        Ok(body) => run_backend(shared, &request, &body, &peer).unwrap_or_else(|e| {
            Response::text(
                500,
                "Internal Server Error",
                &format!("running git http-backend: {e}\n"),
            )
        }),
        Err(e) => Response::text(400, "Bad Request", &format!("reading the body: {e}\n")),
    };
    let _ = send(&stream, &response);
    log(shared, &request.method, &request.target, response.status);
    close_gracefully(&stream, &mut reader);
}

fn log(shared: &Shared, method: &str, target: &str, status: u16) {
    lock(&shared.log).push(format!("{method} {target} {status}"));
}

/// Signals the end of the response, then drains what the client still sends (briefly), so
/// that the kernel does not answer unread data with a reset that could eat the response.
fn close_gracefully(stream: &TcpStream, reader: &mut BufReader<TcpStream>) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = io::copy(reader, &mut io::sink());
}

/// Reads the request line and headers; `None` if the connection closes before any byte.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut lines = Vec::new();
    let mut size = 0;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            if size == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the request head",
            ));
        }
        size += n;
        if size > MAX_HEAD {
            return Err(io::Error::other("request head too long"));
        }
        let line = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_owned();
        if line.is_empty() {
            // Tolerate blank lines before the request line (RFC 9112, 2.2).
            if lines.is_empty() {
                continue;
            }
            break;
        }
        lines.push(line);
    }

    let mut request_line = lines[0].split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Err(io::Error::other(format!("bad request line {:?}", lines[0])));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in &lines[1..] {
        let Some((name, value)) = line.split_once(':') else {
            return Err(io::Error::other(format!("bad header line {line:?}")));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            None => headers.push((name, value.to_owned())),
        }
    }
    Ok(Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
    }))
}

/// Reads the body as framed by `Transfer-Encoding: chunked` or `Content-Length`, de-chunked;
/// empty when neither is present.
fn read_body(reader: &mut BufReader<TcpStream>, request: &Request) -> io::Result<Vec<u8>> {
    let chunked = request.header("transfer-encoding").is_some_and(|te| {
        te.rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked {
        return read_chunked(reader);
    }
    let Some(length) = request.header("content-length") else {
        return Ok(Vec::new());
    };
    let length: u64 = length
        .parse()
        .map_err(|_| io::Error::other(format!("bad Content-Length {length:?}")))?;
    let mut body = Vec::new();
    reader.take(length).read_to_end(&mut body)?;
    if body.len() as u64 != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("body ended after {} of {length} bytes", body.len()),
        ));
    }
    Ok(body)
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| io::Error::other(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            // Trailers, if any, up to the blank line.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        let before = body.len();
        reader.take(size).read_to_end(&mut body)?;
        if (body.len() - before) as u64 != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunk",
            ));
        }
        if !read_line(reader)?.is_empty() {
            return Err(io::Error::other("chunk not followed by CRLF"));
        }
    }
}

/// One CRLF- (or LF-) terminated line, without its terminator.
fn read_line(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed inside the chunked body",
        ));
    }
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_owned())
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
            let (code, reason) = value.split_once(' ').unwrap_or((value, ""));
            let code: u16 = code
                .parse()
                .map_err(|_| io::Error::other(format!("bad CGI Status {value:?}")))?;
            status = Some((code, reason.trim().to_owned()));
        } else {
            location |= name.eq_ignore_ascii_case("location");
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let (status, reason) = status.unwrap_or_else(|| {
        if location {
            (302, "Found".to_owned())
        } else {
            (200, "OK".to_owned())
        }
    });
    Ok(Response {
        status,
        reason,
        headers,
        body: rest.to_vec(),
    })
}

/// Writes the whole response, with a Content-Length and `Connection: close`.
fn send(mut stream: &TcpStream, response: &Response) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, response.reason);
    for (name, value) in &response.headers {
        // The framing is ours.
        if ["content-length", "transfer-encoding", "connection"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}
