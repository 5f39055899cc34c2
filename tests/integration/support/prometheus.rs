//! A real Prometheus server for integration tests.
//!
//! Starts the `prometheus` binary on a free loopback port with a temporary config and storage,
//! scraping the given targets every second, and answers instant queries. It waits on
//! conditions with deadlines, never on fixed sleeps, and kills the server when dropped.
//! Needs `prometheus` on PATH (Debian package `prometheus`).

// Each test uses the helpers it needs; the others are not dead, just unused there.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const READY_DEADLINE: Duration = Duration::from_secs(15);

/// A running Prometheus, killed on drop.
pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Prometheus {
    /// Starts `prometheus` on a free 127.0.0.1 port, scraping the `host:port` targets every
    /// second. Panics, with the end of its log, if it is not ready within 15 s.
    pub fn start(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().expect("creating a temp dir for Prometheus");
        // JSON is YAML, and serde_json quotes the targets correctly.
        let config = serde_json::json!({
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [{
                "job_name": "weir-test",
                "static_configs": [{ "targets": targets }],
            }],
        });
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config.to_string()).expect("writing prometheus.yml");

        // The free port is found by binding and releasing it, so another process may take it
        // before Prometheus does: retry on that.
        for _ in 0..3 {
            let port = super::free_port("127.0.0.1");
            let mut child = spawn(dir.path(), &config_path, port);
            match wait_ready(&mut child, port) {
                Ok(()) => return Prometheus { child, dir, port },
                Err(exited) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = log_tail(dir.path());
                    if exited && log.contains("address already in use") {
                        continue;
                    }
                    panic!(
                        "Prometheus on port {port} did not get ready within {READY_DEADLINE:?} \
                         (exited: {exited}); log tail:\n{log}"
                    );
                }
            }
        }
        panic!("Prometheus could not bind a free port in 3 attempts");
    }

    /// Stops the server, as an outage would; its data stays for [`Prometheus::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and data, after [`Prometheus::stop`].
    pub fn restart(&mut self) {
        let config = self.dir.path().join("prometheus.yml");
        self.child = spawn(self.dir.path(), &config, self.port);
        if let Err(exited) = wait_ready(&mut self.child, self.port) {
            panic!(
                "Prometheus did not come back on port {} (exited: {exited}); log tail:\n{}",
                self.port,
                log_tail(self.dir.path())
            );
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs an instant query: `Some` value of the first sample (or of a scalar), `None` when
    /// the result is empty. Panics if Prometheus rejects the query.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = http_get(self.port, &path)
            .unwrap_or_else(|e| panic!("querying Prometheus for {promql}: {e}"));
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("Prometheus answered {promql} with HTTP {status} and non-JSON ({e}): {body}")
        });
        if status != 200 || answer["status"] != "success" {
            panic!("Prometheus rejected {promql}: HTTP {status}: {body}");
        }
        let data = &answer["data"];
        let value = match data["resultType"].as_str() {
            Some("vector") => &data["result"][0]["value"][1],
            Some("scalar") => &data["result"][1],
            _ => panic!("query {promql}: expected a vector or scalar, got {body}"),
        };
        // Prometheus sends sample values as strings ("1.5", "NaN", "+Inf").
        value.as_str().map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("query {promql}: bad sample value {v:?}"))
        })
    }

    /// Polls `query` until it returns a value satisfying `pred`, and returns that
    /// value. Panics after `deadline` with the last value and the scrape targets' health.
    pub fn wait_for(&self, promql: &str, deadline: Duration, pred: impl Fn(f64) -> bool) -> f64 {
        let mut last = None;
        let found = super::wait::poll(deadline, || {
            last = self.query(promql);
            last.filter(|v| pred(*v))
        });
        found.unwrap_or_else(|| {
            panic!(
                "waited {deadline:?} for {promql}; last value: {last:?}; targets: {}; \
                 log tail:\n{}",
                self.targets_health(),
                self.log_tail()
            )
        })
    }

    /// One line per target: its URL, health and last scrape error.
    fn targets_health(&self) -> String {
        let Ok((_, body)) = http_get(self.port, "/api/v1/targets") else {
            return "unavailable".into();
        };
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let targets = answer["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if targets.is_empty() {
            return "none active yet".into();
        }
        targets
            .iter()
            .map(|t| format!("{} {} {}", t["scrapeUrl"], t["health"], t["lastError"]))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, config: &Path, port: u16) -> Child {
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("creating prometheus.log");
    Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .arg("--storage.tsdb.retention.time=1h")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cloning the log file handle"))
        .stderr(log)
        .spawn()
        .expect("starting `prometheus` (install it: apt-get install prometheus)")
}

/// Polls `/-/ready`; `Err(exited)` when the deadline passes or the process exits.
fn wait_ready(child: &mut Child, port: u16) -> Result<(), bool> {
    super::wait::poll(READY_DEADLINE, || {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(Err(true));
        }
        matches!(http_get(port, "/-/ready"), Ok((200, _))).then_some(Ok(()))
    })
    .unwrap_or(Err(false))
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("prometheus.log"))
        .unwrap_or_else(|e| format!("(no log: {e})"));
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A minimal HTTP/1.0 GET to 127.0.0.1: the status code and the body. HTTP/1.0 makes the
/// server close the connection after one response, without chunked encoding.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let bad = || std::io::Error::other(format!("malformed HTTP response: {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
