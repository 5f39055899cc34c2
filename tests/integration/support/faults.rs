//! A Prometheus that misbehaves on purpose, for tests: it echoes the request's headers in an
//! error body (as some proxies do), answers slowly, or sends an endless body. It counts what
//! it was sent and how many queries were in flight at once, so tests assert on behaviour
//! (bytes read, concurrency) rather than on timings.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 500, with every request header (credentials included) in the body.
    EchoHeaders,
    /// A good answer of this value, after this delay.
    Slow(Duration, f64),
    /// 200 with an endless body.
    Endless,
    /// A good answer of this value.
    Value(f64),
}

struct Shared {
    mode: Mutex<Mode>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    bytes_sent: AtomicUsize,
    stop: AtomicBool,
    headers: Mutex<Vec<String>>,
}

/// A running fault server on 127.0.0.1; stops on drop.
pub struct FaultyPrometheus {
    port: u16,
    shared: Arc<Shared>,
}

impl FaultyPrometheus {
    /// Starts answering in `mode`.
    pub fn start(mode: Mode) -> FaultyPrometheus {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            bytes_sent: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            headers: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        FaultyPrometheus { port, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Changes how it answers from now on.
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// The most queries it had in flight at once.
    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    /// Every request header line it received, in order.
    pub fn headers_seen(&self) -> Vec<String> {
        self.shared.headers.lock().unwrap().clone()
    }

    /// Body bytes it managed to send in all.
    pub fn bytes_sent(&self) -> usize {
        self.shared.bytes_sent.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyPrometheus {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, s: &Shared) {
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let _ = answer(stream, s);
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
}

fn answer(stream: TcpStream, s: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        headers.push(line);
    }
    s.headers.lock().unwrap().extend(headers.iter().cloned());
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let mode = *s.mode.lock().unwrap();
    let mut out = stream;
    let value = |v: f64| {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{v}"]}}]}}}}"#
        )
    };
    match mode {
        Mode::EchoHeaders => {
            let text = format!(
                "upstream error; your request was:\n{}\n",
                headers.join("\n")
            );
            write!(
                out,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )?;
        }
        Mode::Slow(delay, v) => {
            std::thread::sleep(delay);
            let text = value(v);
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )?;
        }
        Mode::Value(v) => {
            let text = value(v);
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )?;
        }
        Mode::Endless => {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                100 * 1024 * 1024
            )?;
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..1600 {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                out.write_all(&chunk)?;
                s.bytes_sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
    }
    out.flush()
}
