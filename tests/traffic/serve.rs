//! HTTP: `GET /metrics` and `GET /state`, served by axum. (The Kubernetes API is served on a
//! port of its own, see `kube.rs`.)

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use axum::extract::State as AppState;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::Router;
use serde::Serialize;

use crate::kube::{self, ClusterView};
use crate::metrics::{render_metrics, Sim};
use crate::routing::{Routing, StateView, CANARY};
use crate::support::kube_api::KubeApi;

/// What the threads and the HTTP handlers share.
pub struct Shared {
    pub namespace: String,
    /// Workload names, `[primary, canary]`.
    pub workloads: [String; 2],
    pub state: Mutex<State>,
    /// The Kubernetes API server the simulator serves.
    pub kube: Arc<KubeApi>,
}

/// The routing followed and the requests simulated so far.
pub struct State {
    pub routing: Routing,
    pub sim: Sim,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panicked thread leaves consistent counters behind; keep serving them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves `/metrics` and `/state` on `listener` until the process is killed.
pub fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) -> Result<()> {
    // The counters are kept by the threads `main.rs` starts; serving is all this runtime does.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    runtime.block_on(async move {
        listener
            .set_nonblocking(true)
            .context("making the listener non-blocking")?;
        let listener =
            tokio::net::TcpListener::from_std(listener).context("registering the listener")?;
        // `get` answers HEAD too, without the body.
        let app = Router::new()
            .route("/metrics", routing::get(metrics).fallback(only_get))
            .route("/state", routing::get(state).fallback(only_get))
            .fallback(not_found)
            .with_state(shared);
        axum::serve(listener, app).await.context("serving HTTP")
    })
}

async fn metrics(AppState(shared): AppState<Arc<Shared>>) -> Response {
    let metrics = shared.lock().sim.metrics.clone();
    let body = render_metrics(&shared.namespace, &shared.workloads, &metrics);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The body of `GET /state`: the routing followed and what the cluster holds.
#[derive(Serialize)]
struct StateBody<'a> {
    #[serde(flatten)]
    routing: StateView<'a>,
    #[serde(flatten)]
    cluster: ClusterView,
}

async fn state(AppState(shared): AppState<Arc<Shared>>) -> Response {
    let routing = shared.lock().routing.clone();
    let body = StateBody {
        routing: routing.view(),
        cluster: kube::view(&shared.kube, &shared.namespace, &shared.workloads[CANARY]),
    };
    match serde_json::to_string(&body) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body + "\n").into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering the state: {err}\n"),
        )
            .into_response(),
    }
}

async fn not_found(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        (StatusCode::NOT_FOUND, "try /metrics or /state\n").into_response()
    } else {
        only_get().await
    }
}

async fn only_get() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, "only GET\n").into_response()
}
