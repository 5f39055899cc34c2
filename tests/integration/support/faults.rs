//! A Prometheus that misbehaves on purpose, for tests: it echoes the request's headers in an
//! error body (as some proxies do), answers slowly, or sends an endless body. It counts what
//! it was sent and how many queries were in flight at once, so tests assert on behaviour
//! (bytes read, concurrency) rather than on timings.
#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use super::http::Server;

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

/// What the endless answer announces, and sends in pieces of [`PIECE`] bytes.
const ENDLESS: usize = 100 * 1024 * 1024;
const PIECE: usize = 64 * 1024;

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
    shared: Arc<Shared>,
    server: Server,
}

impl FaultyPrometheus {
    /// Starts answering in `mode`.
    pub fn start(mode: Mode) -> FaultyPrometheus {
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            bytes_sent: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            headers: Mutex::new(Vec::new()),
        });
        let router = Router::new().fallback(serve).with_state(shared.clone());
        let server = Server::start("faulty-prometheus", router);
        FaultyPrometheus { shared, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Changes how it answers from now on.
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// The most queries it had in flight at once.
    pub fn most_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    /// The request line and every header line of each request, in order (header names as
    /// hyper gives them: lower case).
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
        // An endless answer ends, so that the server can stop.
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// Counts a request in flight until it is answered or its client goes away.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(s: &Arc<Shared>) -> InFlight {
        let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.most_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(s.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(State(s): State<Arc<Shared>>, request: Request) -> Response {
    let _counted = InFlight::new(&s);
    let (parts, body) = request.into_parts();
    let mut seen = vec![format!(
        "{} {} {:?}",
        parts.method, parts.uri, parts.version
    )];
    seen.extend(
        parts
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes()))),
    );
    s.headers.lock().unwrap().extend(seen.iter().cloned());
    // Read the query, as Prometheus does, before answering.
    if axum::body::to_bytes(body, usize::MAX).await.is_err() {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let mode = *s.mode.lock().unwrap();
    let value = |v: f64| {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000,"{v}"]}}]}}}}"#
        )
    };
    let json = |text: String| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response()
    };
    match mode {
        Mode::EchoHeaders => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("upstream error; your request was:\n{}\n", seen.join("\n")),
        )
            .into_response(),
        Mode::Slow(delay, v) => {
            tokio::time::sleep(delay).await;
            json(value(v))
        }
        Mode::Value(v) => json(value(v)),
        Mode::Endless => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::new(Endless {
                shared: s.clone(),
                left: ENDLESS,
            }),
        )
            .into_response(),
    }
}

/// A body of spaces, produced piece by piece as hyper asks for them (so as the client reads),
/// counting what it produced; it ends early when the server stops.
struct Endless {
    shared: Arc<Shared>,
    left: usize,
}

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 || self.shared.stop.load(Ordering::SeqCst) {
            return Poll::Ready(None);
        }
        let n = self.left.min(PIECE);
        self.left -= n;
        self.shared.bytes_sent.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; n])))))
    }

    /// What is left, so that hyper announces all of it as the `Content-Length`.
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left as u64)
    }
}
