//! weir-traffic: a stand-in for Istio and the app, for tests and the demo.
//!
//! With no cluster, something has to play the mesh: this program follows the routing that weir
//! commits to the config repository (the canary tag from the app's `kustomization.yaml`, the
//! primary tag from the app source weir carries under `primary/`, the weights from weir's
//! VirtualService) as Flux applies it, `--apply-lag` after it lands on the branch, generates
//! synthetic requests split by those weights, and serves them as Istio's destination proxies
//! would report them, so a real Prometheus can scrape `istio_requests_total` and
//! `istio_request_duration_milliseconds`. Tags listed as bad answer part of their requests with
//! HTTP 500; tags listed as slow answer in about a second.
//!
//! It also plays the cluster for weir's `--cluster kube`: a Kubernetes API server (on a port of
//! its own, named by the kubeconfig it writes to `--kubeconfig-file`) holding Flux's
//! Kustomization, which reports the applied commit, and the app's Deployments `<app>` and
//! `<app>-primary` as that commit builds them, rolling out `--rollout-delay` after each change.
//!
//! It only reads the repository (through git2) and never writes to it. It is built only with
//! the `test-support` feature, for the demo and the tests; `cargo install weir` leaves it out. Output is
//! deterministic: a fixed-seed xorshift, fractional request accounting, fixed series order.
//!
//! Endpoints: `GET /metrics` (Prometheus text format 0.0.4) and `GET /state` (one line of JSON:
//! the routing, the applied commit, the Deployments), served by axum; the simulation runs on
//! two plain threads beside it. One file per concern: `git.rs` reads the repository, `yaml.rs`
//! parses its files, `routing.rs` reduces a revision to tags and weights, `workloads.rs` to the
//! Deployments it builds, `flux.rs` follows the branch and says when a commit is applied,
//! `kube.rs` plays the controllers on the Kubernetes API, `metrics.rs` simulates the requests
//! and renders them, `serve.rs` answers HTTP.

mod flux;
mod git;
mod kube;
mod metrics;
mod routing;
mod serve;
mod workloads;
mod yaml;

/// The integration tests' Kubernetes API stand-in, and the HTTP server it runs on: one
/// stand-in for the tests and the demo. The simulator uses part of what the tests use.
#[path = "../integration/support"]
#[allow(dead_code)]
mod support {
    pub mod http;
    pub mod kube_api;
}

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Parser;

use flux::Flux;
use git::{normalise_dir, Repo};
use kube::Cluster;
use metrics::Sim;
use routing::{read_routing, Routing, Target};
use serve::{serve, Shared, State};
use weir::core::duration::GoDuration;
use workloads::read_workloads;

/// How often Flux looks at the branch and the Deployment controller at its rollouts.
const FLUX_POLL: Duration = Duration::from_millis(100);
/// How often simulated requests are accounted.
const TICK: Duration = Duration::from_millis(100);

/// Simulates Istio traffic for one app, following the routing committed to a config repository.
#[derive(Parser, Debug)]
#[command(name = "weir-traffic", version)]
struct Cli {
    /// Git repository to follow, bare or not.
    #[arg(long)]
    git_dir: PathBuf,
    /// Branch whose head is followed.
    #[arg(long, default_value = "main")]
    branch: String,
    /// How long after the branch head moves Flux applies it (e.g. `2s`): the routing and the
    /// cluster follow the applied commit, not the head.
    #[arg(long, default_value = "0s", value_parser = duration)]
    apply_lag: Duration,
    /// How long a Deployment whose spec changed takes to roll out: all its pods are updated
    /// and available this long after Flux applied it.
    #[arg(long, default_value = "1s", value_parser = duration)]
    rollout_delay: Duration,
    /// App name: the canary workload is `<app>`, the primary `<app>-primary`.
    #[arg(long)]
    app: String,
    /// Namespace reported as `destination_workload_namespace`.
    #[arg(long)]
    namespace: String,
    /// The app's folder in the repository (holds `kustomization.yaml`).
    #[arg(long)]
    app_dir: String,
    /// weir's folder for the app (holds `primary.yaml` and `virtualservice.yaml`).
    #[arg(long)]
    weir_dir: String,
    /// Address to serve on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Requests per second, over both workloads.
    #[arg(long, default_value_t = 100.0)]
    rps: f64,
    /// Image tags that answer part of their requests with HTTP 500.
    #[arg(long, value_delimiter = ',')]
    bad_tags: Vec<String>,
    /// Image tags that answer in 700-1200 ms instead of 20-60 ms.
    #[arg(long, value_delimiter = ',')]
    slow_tags: Vec<String>,
    /// Fraction of requests that carry the headers and cookies of the VirtualService's first
    /// `match` route (users opted in to an A/B test); the others follow the default route.
    #[arg(long, default_value_t = 0.0)]
    matched_share: f64,
    /// Fraction of a bad tag's requests that fail.
    #[arg(long, default_value_t = 0.3)]
    error_ratio: f64,
    /// File to write the listening port to (written atomically).
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// File to write a kubeconfig to (atomically, once the server answers) for the simulated
    /// Kubernetes API: weir's `--kubeconfig`. It carries the bearer token the server requires.
    #[arg(long)]
    kubeconfig_file: Option<PathBuf>,
}

fn main() -> Result<()> {
    run(Cli::parse())
}

fn run(cli: Cli) -> Result<()> {
    ensure!(
        cli.rps.is_finite() && cli.rps >= 0.0,
        "--rps must be a non-negative number, got {}",
        cli.rps
    );
    ensure!(
        (0.0..=1.0).contains(&cli.matched_share),
        "--matched-share must be between 0 and 1, got {}",
        cli.matched_share
    );
    ensure!(
        (0.0..=1.0).contains(&cli.error_ratio),
        "--error-ratio must be between 0 and 1, got {}",
        cli.error_ratio
    );
    let target = Target {
        app: cli.app.clone(),
        app_dir: normalise_dir(&cli.app_dir),
        weir_dir: normalise_dir(&cli.weir_dir),
    };
    let mut flux = Flux::new(Repo::open(&cli.git_dir, &cli.branch), cli.apply_lag);
    let mut cluster = Cluster::start(&cli.namespace, &cli.app, &cli.branch, cli.rollout_delay);
    let shared = Arc::new(Shared {
        namespace: cli.namespace.clone(),
        workloads: [format!("{}-primary", cli.app), cli.app.clone()],
        state: Mutex::new(State {
            routing: Routing::default(),
            sim: Sim::new(&cli),
        }),
        kube: cluster.api(),
    });
    // The cluster ran the head before the simulator started: applied and rolled out before
    // serving, so the first scrape and the first look at the cluster reflect the repository.
    if let Some(commit) = flux.initial() {
        let now = Instant::now();
        apply(&mut flux, &mut cluster, &target, &commit, &shared, now);
        cluster.tick(now + cli.rollout_delay);
    }
    if let Some(path) = &cli.kubeconfig_file {
        cluster
            .write_kubeconfig(path)
            .with_context(|| format!("writing the kubeconfig {}", path.display()))?;
    }

    let listener = std::net::TcpListener::bind(&cli.listen)
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("listening on {addr}");
    if let Some(path) = &cli.port_file {
        write_atomically(path, &addr.port().to_string())
            .with_context(|| format!("writing the port file {}", path.display()))?;
    }

    let applier = Arc::clone(&shared);
    thread::spawn(move || loop {
        thread::sleep(FLUX_POLL);
        let now = Instant::now();
        if let Some(commit) = flux.due(now) {
            apply(&mut flux, &mut cluster, &target, &commit, &applier, now);
        }
        cluster.tick(now);
    });

    let ticker = Arc::clone(&shared);
    let matched_share = cli.matched_share;
    thread::spawn(move || {
        let mut last = Instant::now();
        loop {
            thread::sleep(TICK);
            let now = Instant::now();
            let dt = now.duration_since(last).as_secs_f64();
            last = now;
            let mut state = ticker.lock();
            let shares = state.routing.shares(matched_share);
            let tags = state.routing.workload_tags();
            state.sim.advance(dt, shares, tags);
        }
    });

    serve(listener, shared)
}

/// Flux applies `commit`: the cluster runs the Deployments it builds, and the mesh routes as
/// it says. A commit the simulator cannot read is a build that failed: nothing changes but
/// the Kustomization's `Ready` condition.
fn apply(
    flux: &mut Flux,
    cluster: &mut Cluster,
    target: &Target,
    commit: &str,
    shared: &Shared,
    now: Instant,
) {
    let read = read_routing(flux.repo(), commit, target).and_then(|routing| {
        read_workloads(flux.repo(), commit, target).map(|workloads| (routing, workloads))
    });
    let (routing, workloads) = match read.with_context(|| format!("reading commit {commit}")) {
        Ok(read) => read,
        Err(err) => {
            let msg = format!("{err:#}");
            cluster.failed(commit, &msg);
            return flux.report(&msg);
        }
    };
    cluster.apply(commit, &workloads, now);
    let mut state = shared.lock();
    if state.routing != routing {
        eprintln!("weir-traffic: {}", routing.describe());
        state.routing = routing;
    }
}

/// A duration flag as Go and Flux write durations: `2s`, `1500ms`.
fn duration(text: &str) -> Result<Duration, String> {
    GoDuration::parse(text)
        .map(GoDuration::get)
        .map_err(|e| e.to_string())
}

fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}
