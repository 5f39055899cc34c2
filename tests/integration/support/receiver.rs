//! A webhook receiver for alert tests: a real HTTP/1.1 server on 127.0.0.1 that records
//! every request (method, target, headers, body) and answers a status the test sets. It can
//! fail the next N requests with 500, echo each request back in its answer (as some proxies
//! do in their error pages), and hold requests until several have arrived, which proves they
//! were sent at once without timing anything. Used as a proxy, it records the absolute URL
//! the client asked it for. Stops on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The request target: a path (`/hook`), or an absolute URL when sent to a proxy.
    pub target: String,
    /// Header names (lowercased) and values, in order.
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
}

struct Shared {
    answer: Mutex<Answer>,
    requests: Mutex<Vec<Request>>,
    arrived: Condvar,
    stop: AtomicBool,
}

/// A running receiver; stops on drop.
pub struct Receiver {
    port: u16,
    shared: Arc<Shared>,
}

impl Receiver {
    /// A receiver that answers `200 ok`.
    pub fn start() -> Receiver {
        Receiver::answering(200)
    }

    /// A receiver that answers `status`.
    pub fn answering(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            answer: Mutex::new(Answer {
                status,
                body: "ok".into(),
                fail_next: 0,
                echo: false,
                hold_until: 0,
            }),
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        super::http::accept(listener, s, |s| s.stop.load(Ordering::SeqCst), serve);
        Receiver { port, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
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
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.arrived.notify_all();
        // Wakes the accept loop so that it sees the flag.
        super::http::wake(self.port);
    }
}

fn serve(stream: TcpStream, s: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let request_line = line.trim_end().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(&mut reader)?
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        body
    };
    let echoed = format!(
        "{request_line}\n{}",
        headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Recorded before answering: once the client has its answer, the test sees the request.
    let (status, text) = {
        let mut answer = s.answer.lock().unwrap();
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
        let hold = answer.hold_until;
        drop(answer);
        let mut requests = s.requests.lock().unwrap();
        requests.push(Request {
            method,
            target,
            headers,
            body,
        });
        s.arrived.notify_all();
        if hold > 0 {
            let _ = s
                .arrived
                .wait_timeout_while(requests, Duration::from_secs(5), |r| {
                    r.len() < hold && !s.stop.load(Ordering::SeqCst)
                })
                .unwrap();
        }
        (status, text)
    };
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

/// Reads a chunked body (RFC 9112, section 7.1), trailers skipped.
pub fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let mut chunk = vec![0u8; size];
        reader.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk);
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}
