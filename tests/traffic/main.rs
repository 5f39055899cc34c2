//! weir-traffic: a stand-in for Istio and the app, for tests and the demo.
//!
//! With no cluster, something has to play the mesh: this program follows the routing that weir
//! commits to the config repository (the canary tag from the app's `kustomization.yaml`, the
//! primary tag from the app source weir carries under `primary/`, the weights from weir's
//! VirtualService), generates
//! synthetic requests split by those weights, and serves them as Istio's destination proxies
//! would report them, so a real Prometheus can scrape `istio_requests_total` and
//! `istio_request_duration_milliseconds`. Tags listed as bad answer part of their requests with
//! HTTP 500; tags listed as slow answer in about a second.
//!
//! It only reads the repository (through git2) and never writes to it. It is built only with
//! the `test-support` feature, for the demo and the tests; `cargo install weir` leaves it out. Output is
//! deterministic: a fixed-seed xorshift, fractional request accounting, fixed series order.
//!
//! Endpoints: `GET /metrics` (Prometheus text format 0.0.4) and `GET /state` (one line of JSON),
//! served by axum; the simulation runs on two plain threads beside it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::extract::State as AppState;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::Router;
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

/// How often the branch head is read.
const GIT_POLL: Duration = Duration::from_millis(500);
/// How often simulated requests are accounted.
const TICK: Duration = Duration::from_millis(100);
/// Upper bounds of the latency histogram, as Istio's default buckets (the `+Inf` bucket is implied).
const BUCKETS_MS: [f64; 11] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];
const GOOD_LATENCY_MS: (f64, f64) = (20.0, 60.0);
const SLOW_LATENCY_MS: (f64, f64) = (700.0, 1200.0);

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
    let mut follower = Follower {
        repo: Repo::open(&cli.git_dir, &cli.branch),
        target,
        last_commit: None,
        reported: HashSet::new(),
    };
    // Read the routing once before serving, so the first scrape already reflects the repository.
    let mut routing = Routing::default();
    follower.refresh(&mut routing);

    let shared = Arc::new(Shared {
        namespace: cli.namespace.clone(),
        workloads: [format!("{}-primary", cli.app), cli.app.clone()],
        state: Mutex::new(State {
            routing,
            sim: Sim::new(&cli),
        }),
    });

    let listener = std::net::TcpListener::bind(&cli.listen)
        .with_context(|| format!("binding {}", cli.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("listening on {addr}");
    if let Some(path) = &cli.port_file {
        write_atomically(path, &addr.port().to_string())
            .with_context(|| format!("writing the port file {}", path.display()))?;
    }

    let poller = Arc::clone(&shared);
    thread::spawn(move || loop {
        thread::sleep(GIT_POLL);
        let mut routing = poller.lock().routing.clone();
        if follower.refresh(&mut routing) {
            poller.lock().routing = routing;
        }
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

// ---------------------------------------------------------------------------------------------
// Routing: what the repository says, reduced to tags and weights.
// ---------------------------------------------------------------------------------------------

/// The files to read for one app.
struct Target {
    app: String,
    app_dir: String,
    weir_dir: String,
}

/// The routing committed at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
struct Routing {
    /// Tag of the app's own Deployment (the canary target, named `<app>`).
    canary_tag: Option<String>,
    /// Tag of weir's `<app>-primary` Deployment.
    primary_tag: Option<String>,
    /// `(primary, canary)` weights from weir's VirtualService; `None` until weir wrote one.
    weights: Option<(u32, u32)>,
    /// The same for the first route with `match` conditions, when there is one.
    matched: Option<(u32, u32)>,
}

/// Index of each workload in the per-workload arrays.
const PRIMARY: usize = 0;
const CANARY: usize = 1;

impl Routing {
    /// Fraction of the traffic each workload receives, `[primary, canary]`, when
    /// `matched_share` of the requests match the first `match` route.
    fn shares(&self, matched_share: f64) -> [f64; 2] {
        let split = |weights: (u32, u32)| match weights {
            (0, 0) => [1.0, 0.0],
            (p, c) => {
                let total = f64::from(p + c);
                [f64::from(p) / total, f64::from(c) / total]
            }
        };
        match (self.weights, self.matched) {
            // Before weir, the mesh sends everything to the app's own Deployment.
            (None, _) => [0.0, 1.0],
            (Some(default), None) => split(default),
            (Some(default), Some(matched)) => {
                let (d, m) = (split(default), split(matched));
                let mix = |i: usize| (1.0 - matched_share) * d[i] + matched_share * m[i];
                [mix(PRIMARY), mix(CANARY)]
            }
        }
    }

    /// The tag each workload runs, `[primary, canary]`.
    fn workload_tags(&self) -> [Option<String>; 2] {
        [self.primary_tag.clone(), self.canary_tag.clone()]
    }

    /// The `/state` view. An uninitialised app is shown as its only workload being the primary.
    fn view(&self) -> StateView<'_> {
        match self.weights {
            None => StateView {
                primary_tag: self.canary_tag.as_deref(),
                canary_tag: self.canary_tag.as_deref(),
                primary_weight: 100,
                canary_weight: 0,
                initialised: false,
            },
            Some((primary_weight, canary_weight)) => StateView {
                primary_tag: self.primary_tag.as_deref(),
                canary_tag: self.canary_tag.as_deref(),
                primary_weight,
                canary_weight,
                initialised: true,
            },
        }
    }

    fn describe(&self) -> String {
        let tag = |t: &Option<String>| t.clone().unwrap_or_else(|| "?".to_owned());
        match self.weights {
            None => format!(
                "not initialised by weir: all traffic to canary workload, tag {}",
                tag(&self.canary_tag)
            ),
            Some((p, c)) => format!(
                "primary {} weight {p}, canary {} weight {c}",
                tag(&self.primary_tag),
                tag(&self.canary_tag)
            ),
        }
    }
}

#[derive(Serialize)]
struct StateView<'a> {
    primary_tag: Option<&'a str>,
    canary_tag: Option<&'a str>,
    primary_weight: u32,
    canary_weight: u32,
    initialised: bool,
}

/// Reads the routing from the branch head, only when the head moved.
struct Follower {
    repo: Repo,
    target: Target,
    last_commit: Option<String>,
    /// Error messages already printed, so a persistent problem is logged once.
    reported: HashSet<String>,
}

impl Follower {
    /// Updates `routing` from the branch head; returns whether it changed.
    fn refresh(&mut self, routing: &mut Routing) -> bool {
        let next = match self.read() {
            Ok(Some(next)) => next,
            Ok(None) => return false,
            Err(err) => {
                let msg = format!("{err:#}");
                if self.reported.insert(msg.clone()) {
                    eprintln!("weir-traffic: {msg}");
                }
                return false;
            }
        };
        if next == *routing {
            return false;
        }
        eprintln!("weir-traffic: {}", next.describe());
        *routing = next;
        true
    }

    /// The routing at the head, or `None` when the head did not move since the last read.
    fn read(&mut self) -> Result<Option<Routing>> {
        let Some(commit) = self.repo.head()? else {
            self.last_commit = None;
            bail!(
                "branch {} not found in {} (treating the app as not initialised)",
                self.repo.branch,
                self.repo.git_dir.display()
            );
        };
        if self.last_commit.as_ref() == Some(&commit) {
            return Ok(None);
        }
        let routing = read_routing(&self.repo, &commit, &self.target)
            .with_context(|| format!("reading commit {commit}"))?;
        self.last_commit = Some(commit);
        Ok(Some(routing))
    }
}

fn read_routing(repo: &Repo, commit: &str, target: &Target) -> Result<Routing> {
    let kustomization = format!("{}/kustomization.yaml", target.app_dir);
    let primary = format!("{}/primary/kustomization.yaml", target.weir_dir);
    let virtualservice = format!("{}/virtualservice.yaml", target.weir_dir);
    let mut canary_tag = match repo.read(commit, &kustomization)? {
        Some(src) => kustomization_tag(&src).with_context(|| kustomization.clone())?,
        None => None,
    };
    if canary_tag.is_none() {
        canary_tag = find_deployment_tag(repo, commit, &target.app_dir, &target.app)?;
    }
    // The primary is the app's source carried under primary/: its first resource.
    let primary_tag = match repo.read(commit, &primary)? {
        Some(src) => match first_resource(&src).with_context(|| primary.clone())? {
            Some(source) => {
                let dir = format!("{}/primary/{}", target.weir_dir, normalise_dir(&source));
                let tag = match repo.read(commit, &format!("{dir}/kustomization.yaml"))? {
                    Some(k) => kustomization_tag(&k)?,
                    None => None,
                };
                match tag {
                    Some(t) => Some(t),
                    None => find_deployment_tag(repo, commit, &dir, &target.app)?,
                }
            }
            None => None,
        },
        None => None,
    };
    let (weights, matched) = match repo.read(commit, &virtualservice)? {
        Some(src) => {
            let w = virtualservice_weights(&src, &target.app).with_context(|| virtualservice)?;
            (Some(w.default), w.matched)
        }
        None => (None, None),
    };
    Ok(Routing {
        canary_tag,
        primary_tag,
        weights,
        matched,
    })
}

/// The tag of the Deployment `app` in any YAML file of the app folder, for apps whose
/// `kustomization.yaml` sets no `images:` tag.
fn find_deployment_tag(repo: &Repo, commit: &str, dir: &str, app: &str) -> Result<Option<String>> {
    for path in repo.list_dir(commit, dir)? {
        if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
            continue;
        }
        if let Some(src) = repo.read(commit, &path)? {
            // Files that are not Kubernetes YAML are not ours to judge; skip them.
            if let Ok(Some(tag)) = deployment_tag(&src, app) {
                return Ok(Some(tag));
            }
        }
    }
    Ok(None)
}

/// The first entry of `resources:` of a kustomization.
fn first_resource(src: &str) -> Result<Option<String>> {
    let docs = documents(src)?;
    Ok(docs
        .first()
        .and_then(|d| d.get("resources"))
        .and_then(Value::as_sequence)
        .and_then(|r| r.first())
        .and_then(Value::as_str)
        .map(str::to_string))
}

// ---------------------------------------------------------------------------------------------
// Parsers of the repository's YAML. Pure; they read only the fields they need.
// ---------------------------------------------------------------------------------------------

fn documents(src: &str) -> Result<Vec<Value>> {
    serde_yaml::Deserializer::from_str(src)
        .map(|doc| Value::deserialize(doc).context("invalid YAML"))
        .collect()
}

fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// A scalar as written: tags such as `1.10` must not become numbers.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `newTag` of the first entry of `images:`.
fn kustomization_tag(src: &str) -> Result<Option<String>> {
    let docs = documents(src)?;
    let Some(doc) = docs.first() else {
        return Ok(None);
    };
    let first = match doc.get("images") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Sequence(images)) => images.first(),
        Some(_) => bail!("images: expected a list"),
    };
    Ok(first.and_then(|image| image.get("newTag")).and_then(scalar))
}

/// The tag of the first container of the Deployment `name`, in a file of one or more documents.
fn deployment_tag(src: &str, name: &str) -> Result<Option<String>> {
    for doc in documents(src)? {
        let kind = get(&doc, &["kind"]).and_then(Value::as_str);
        let doc_name = get(&doc, &["metadata", "name"]).and_then(Value::as_str);
        if kind != Some("Deployment") || doc_name != Some(name) {
            continue;
        }
        let image = get(&doc, &["spec", "template", "spec", "containers"])
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("image"))
            .and_then(Value::as_str)
            .with_context(|| {
                format!("Deployment {name}: spec.template.spec.containers[0].image is missing")
            })?;
        return Ok(image_tag(image));
    }
    Ok(None)
}

/// `registry:5000/repo:tag@sha256:…` -> `tag`; an image without a tag has none.
fn image_tag(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_segment = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last_segment
        .rsplit_once(':')
        .map(|(_, tag)| tag.to_owned())
        .filter(|tag| !tag.is_empty())
}

/// `(primary, canary)` weights of a VirtualService's HTTP routes.
#[derive(Debug, PartialEq)]
struct VsWeights {
    /// The default route: the first `http` entry without `match` conditions, else the first.
    default: (u32, u32),
    /// The first entry with `match` conditions, when there is one.
    matched: Option<(u32, u32)>,
}

/// The weights of the VirtualService of `app` in `src`.
fn virtualservice_weights(src: &str, app: &str) -> Result<VsWeights> {
    let docs = documents(src)?;
    let vs = docs
        .iter()
        .find(|d| get(d, &["kind"]).and_then(Value::as_str) == Some("VirtualService"))
        .context("no VirtualService document")?;
    let http = get(vs, &["spec", "http"])
        .and_then(Value::as_sequence)
        .filter(|h| !h.is_empty())
        .context("spec.http: expected a non-empty list")?;
    let rule = http
        .iter()
        .find(|r| r.get("match").is_none())
        .unwrap_or(&http[0]);
    let matched = match http.iter().find(|r| r.get("match").is_some()) {
        Some(rule) => Some(rule_weights(rule, app)?),
        None => None,
    };
    Ok(VsWeights {
        default: rule_weights(rule, app)?,
        matched,
    })
}

/// `(primary, canary)` weights of one HTTP route.
fn rule_weights(rule: &Value, app: &str) -> Result<(u32, u32)> {
    let routes = rule
        .get("route")
        .and_then(Value::as_sequence)
        .context("spec.http[].route: expected a list")?;

    let primary_host = format!("{app}-primary");
    let canary_host = format!("{app}-canary");
    let is_host = |host: &str, name: &str| {
        host == name || host.strip_prefix(name).is_some_and(|r| r.starts_with('.'))
    };
    let mut weights = (None, None);
    for route in routes {
        let host = get(route, &["destination", "host"])
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Istio gives a lone route without a weight all the traffic.
        let weight = match route.get("weight") {
            Some(w) => w
                .as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .filter(|w| *w <= 100)
                .with_context(|| format!("route to {host}: weight must be 0-100"))?,
            None if routes.len() == 1 => 100,
            None => 0,
        };
        if is_host(host, &primary_host) {
            weights.0 = Some(weight);
        } else if is_host(host, &canary_host) {
            weights.1 = Some(weight);
        }
    }
    match weights {
        (None, None) => bail!("no route to {primary_host} or {canary_host}"),
        (p, c) => Ok((p.unwrap_or(0), c.unwrap_or(0))),
    }
}

// ---------------------------------------------------------------------------------------------
// Git: the branch head and file contents, through git2.
// ---------------------------------------------------------------------------------------------

struct Repo {
    git_dir: PathBuf,
    branch: String,
}

impl Repo {
    fn open(path: &Path, branch: &str) -> Repo {
        Repo {
            git_dir: path.to_owned(),
            branch: branch.to_owned(),
        }
    }

    /// Opened anew on each read, so that objects pushed meanwhile are seen.
    fn repository(&self) -> Result<git2::Repository> {
        git2::Repository::open(&self.git_dir)
            .with_context(|| format!("opening {}", self.git_dir.display()))
    }

    /// The commit at the branch head, or `None` when the branch does not exist.
    fn head(&self) -> Result<Option<String>> {
        let repo = self.repository()?;
        let found = repo.refname_to_id(&format!("refs/heads/{}", self.branch));
        Ok(found.ok().map(|oid| oid.to_string()))
    }

    fn tree<'r>(&self, repo: &'r git2::Repository, commit: &str) -> Result<git2::Tree<'r>> {
        let oid = git2::Oid::from_str(commit).context("reading a commit id")?;
        Ok(repo.find_commit(oid)?.tree()?)
    }

    /// The file at `commit`, `None` when it does not exist (or is a folder).
    fn read(&self, commit: &str, path: &str) -> Result<Option<String>> {
        let repo = self.repository()?;
        let tree = self.tree(&repo, commit)?;
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Ok(None);
        };
        if entry.kind() != Some(git2::ObjectType::Blob) {
            return Ok(None);
        }
        let blob = repo.find_blob(entry.id())?;
        Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
    }

    /// Paths of the files directly inside `dir` at `commit` (none if it does not exist).
    fn list_dir(&self, commit: &str, dir: &str) -> Result<Vec<String>> {
        let repo = self.repository()?;
        let tree = self.tree(&repo, commit)?;
        let Ok(entry) = tree.get_path(Path::new(dir)) else {
            return Ok(Vec::new());
        };
        let Ok(sub) = repo.find_tree(entry.id()) else {
            return Ok(Vec::new());
        };
        Ok(sub
            .iter()
            .filter(|e| e.kind() == Some(git2::ObjectType::Blob))
            .filter_map(|e| e.name().ok().map(|n| format!("{dir}/{n}")))
            .collect())
    }
}

fn normalise_dir(dir: &str) -> String {
    dir.trim_start_matches("./")
        .trim_end_matches('/')
        .to_owned()
}

fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

// ---------------------------------------------------------------------------------------------
// Simulation: requests, outcomes and latencies per workload.
// ---------------------------------------------------------------------------------------------

/// A tiny deterministic generator; statistical quality does not matter here.
struct XorShift(u64);

impl XorShift {
    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one workload has served so far, as Istio's counters and histogram.
#[derive(Default, Clone)]
struct WorkloadMetrics {
    ok: u64,
    errors: u64,
    /// Cumulative counts per entry of `BUCKETS_MS`.
    buckets: [u64; BUCKETS_MS.len()],
    sum_ms: f64,
    /// Fractions of a request (and of an error) carried to the next tick, so low rates and
    /// small weights still add up exactly.
    pending: f64,
    pending_errors: f64,
}

impl WorkloadMetrics {
    fn count(&self) -> u64 {
        self.ok + self.errors
    }
}

struct Sim {
    rps: f64,
    error_ratio: f64,
    bad_tags: HashSet<String>,
    slow_tags: HashSet<String>,
    rng: XorShift,
    metrics: [WorkloadMetrics; 2],
}

impl Sim {
    fn new(cli: &Cli) -> Sim {
        let set = |tags: &[String]| {
            tags.iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect()
        };
        Sim {
            rps: cli.rps,
            error_ratio: cli.error_ratio,
            bad_tags: set(&cli.bad_tags),
            slow_tags: set(&cli.slow_tags),
            rng: XorShift(0x9E37_79B9_7F4A_7C15),
            metrics: Default::default(),
        }
    }

    /// Accounts the requests of `dt` seconds, split by `shares`, served by workloads running `tags`.
    fn advance(&mut self, dt: f64, shares: [f64; 2], tags: [Option<String>; 2]) {
        for (w, tag) in tags.iter().enumerate() {
            let is = |set: &HashSet<String>| tag.as_ref().is_some_and(|t| set.contains(t));
            let (bad, slow) = (is(&self.bad_tags), is(&self.slow_tags));
            let m = &mut self.metrics[w];
            m.pending += self.rps * dt * shares[w];
            let n = whole(m.pending);
            m.pending -= n;
            let errors = if bad {
                m.pending_errors += n * self.error_ratio;
                let e = whole(m.pending_errors).min(n);
                m.pending_errors -= e;
                e
            } else {
                0.0
            };
            // Whole numbers by construction.
            let (n, errors) = (n as u64, errors as u64);
            m.errors += errors;
            m.ok += n - errors;
            let (lo, hi) = if slow {
                SLOW_LATENCY_MS
            } else {
                GOOD_LATENCY_MS
            };
            for _ in 0..n {
                let ms = lo + self.rng.next_f64() * (hi - lo);
                m.sum_ms += ms;
                for (bucket, le) in m.buckets.iter_mut().zip(BUCKETS_MS) {
                    if ms <= le {
                        *bucket += 1;
                    }
                }
            }
        }
    }
}

/// The whole requests in an accumulated amount. The epsilon keeps float drift (0.3 added ten
/// times is 2.9999999999999996) from delaying a request by a tick and skewing exact ratios.
fn whole(amount: f64) -> f64 {
    (amount + 1e-9).floor()
}

// ---------------------------------------------------------------------------------------------
// HTTP: /metrics and /state.
// ---------------------------------------------------------------------------------------------

struct Shared {
    namespace: String,
    /// Workload names, `[primary, canary]`.
    workloads: [String; 2],
    state: Mutex<State>,
}

struct State {
    routing: Routing,
    sim: Sim,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicked thread leaves consistent counters behind; keep serving them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves `/metrics` and `/state` on `listener` until the process is killed.
fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) -> Result<()> {
    // The counters are kept by the threads above; serving is all this runtime does.
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

async fn state(AppState(shared): AppState<Arc<Shared>>) -> Response {
    let routing = shared.lock().routing.clone();
    match serde_json::to_string(&routing.view()) {
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

/// The Prometheus text exposition of both workloads, primary first, in a fixed order.
fn render_metrics(
    namespace: &str,
    workloads: &[String; 2],
    metrics: &[WorkloadMetrics; 2],
) -> String {
    let labels = |w: usize| {
        format!(
            "reporter=\"destination\",destination_workload=\"{}\",destination_workload_namespace=\"{}\"",
            escape_label(&workloads[w]),
            escape_label(namespace)
        )
    };
    let mut out = String::new();
    out.push_str("# HELP istio_requests_total Requests received, as reported by the destination proxy (simulated).\n");
    out.push_str("# TYPE istio_requests_total counter\n");
    for w in [PRIMARY, CANARY] {
        let m = &metrics[w];
        for (code, n) in [("200", m.ok), ("500", m.errors)] {
            let _ = writeln!(
                out,
                "istio_requests_total{{{},response_code=\"{code}\"}} {n}",
                labels(w)
            );
        }
    }
    out.push_str("# HELP istio_request_duration_milliseconds Request duration, as reported by the destination proxy (simulated).\n");
    out.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
    for w in [PRIMARY, CANARY] {
        let m = &metrics[w];
        let l = labels(w);
        for (le, n) in BUCKETS_MS.iter().zip(m.buckets) {
            let _ = writeln!(
                out,
                "istio_request_duration_milliseconds_bucket{{{l},le=\"{le}\"}} {n}"
            );
        }
        let count = m.count();
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_bucket{{{l},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_sum{{{l}}} {}",
            m.sum_ms
        );
        let _ = writeln!(
            out,
            "istio_request_duration_milliseconds_count{{{l}}} {count}"
        );
    }
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY_YAML: &str = "\
apiVersion: v1
kind: Service
metadata: {name: backend-primary}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: backend-primary
spec:
  template:
    spec:
      containers:
        - name: backend
          image: registry.local:5000/acme/backend:6.0.0
        - name: sidecar
          image: busybox:1.36
";

    fn vs(routes: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {{name: backend}}\nspec:\n  hosts: [backend]\n  http:\n    - route:\n{routes}"
        )
    }

    #[test]
    fn kustomization_tag_is_the_first_images_new_tag() {
        let src = "resources: [deployment.yaml]\nimages:\n  - name: ghcr.io/acme/backend\n    newTag: \"6.1.0\"\n  - name: other\n    newTag: x\n";
        assert_eq!(kustomization_tag(src).unwrap().as_deref(), Some("6.1.0"));
        assert_eq!(kustomization_tag("resources: []\n").unwrap(), None);
        assert_eq!(
            kustomization_tag("images:\n  - newTag: 7\n")
                .unwrap()
                .as_deref(),
            Some("7")
        );
        assert!(kustomization_tag("images: {a: b}\n").is_err());
    }

    #[test]
    fn deployment_tag_finds_the_named_deployment_in_any_document() {
        assert_eq!(
            deployment_tag(PRIMARY_YAML, "backend-primary")
                .unwrap()
                .as_deref(),
            Some("6.0.0")
        );
        assert_eq!(deployment_tag(PRIMARY_YAML, "backend").unwrap(), None);
    }

    #[test]
    fn image_tags() {
        assert_eq!(
            image_tag("ghcr.io/acme/backend:6.0.0").as_deref(),
            Some("6.0.0")
        );
        assert_eq!(image_tag("localhost:5000/backend").as_deref(), None);
        assert_eq!(image_tag("backend:1.2@sha256:abc").as_deref(), Some("1.2"));
        assert_eq!(image_tag("backend").as_deref(), None);
    }

    #[test]
    fn virtualservice_weights_by_host() {
        let src = vs("        - destination: {host: backend-primary}\n          weight: 80\n        - destination: {host: backend-canary.prod.svc.cluster.local}\n          weight: 20\n");
        let default = |src: &str| virtualservice_weights(src, "backend").unwrap().default;
        assert_eq!(default(&src), (80, 20));
        let lone = vs("        - destination: {host: backend-primary}\n");
        assert_eq!(default(&lone), (100, 0));
        let other = vs("        - destination: {host: backend-primaryx}\n");
        assert!(virtualservice_weights(&other, "backend").is_err());
    }

    #[test]
    fn virtualservice_weights_skip_header_matches() {
        let src = "kind: VirtualService\nspec:\n  http:\n    - match: [{headers: {x-canary: {exact: insider}}}]\n      route:\n        - destination: {host: backend-canary}\n    - route:\n        - destination: {host: backend-primary}\n          weight: 100\n        - destination: {host: backend-canary}\n          weight: 0\n";
        assert_eq!(
            virtualservice_weights(src, "backend").unwrap(),
            VsWeights {
                default: (100, 0),
                matched: Some((0, 100)),
            }
        );
    }

    #[test]
    fn matched_requests_follow_the_match_route() {
        let routing = Routing {
            weights: Some((100, 0)),
            matched: Some((0, 100)),
            ..Routing::default()
        };
        assert_eq!(routing.shares(0.0), [1.0, 0.0]);
        assert_eq!(routing.shares(0.25), [0.75, 0.25]);
        let plain = Routing {
            weights: Some((90, 10)),
            ..Routing::default()
        };
        assert_eq!(plain.shares(0.5), [0.9, 0.1]);
    }

    #[test]
    fn the_primary_source_is_the_first_resource() {
        let src = "resources:\n  - \"source/backend\"\nnameSuffix: -primary\n";
        assert_eq!(
            first_resource(src).unwrap().as_deref(),
            Some("source/backend")
        );
        assert_eq!(first_resource("kind: Kustomization\n").unwrap(), None);
    }

    #[test]
    fn uninitialised_app_sends_everything_to_the_app_workload() {
        let routing = Routing {
            canary_tag: Some("6.1.0".into()),
            ..Routing::default()
        };
        assert_eq!(routing.shares(0.5), [0.0, 1.0]);
        let json = serde_json::to_string(&routing.view()).unwrap();
        assert_eq!(
            json,
            r#"{"primary_tag":"6.1.0","canary_tag":"6.1.0","primary_weight":100,"canary_weight":0,"initialised":false}"#
        );
    }

    fn sim(bad: &[&str], slow: &[&str]) -> Sim {
        Sim {
            rps: 100.0,
            error_ratio: 0.3,
            bad_tags: bad.iter().map(|t| t.to_string()).collect(),
            slow_tags: slow.iter().map(|t| t.to_string()).collect(),
            rng: XorShift(1),
            metrics: Default::default(),
        }
    }

    #[test]
    fn requests_split_by_weight_with_errors_only_on_bad_tags() {
        let mut sim = sim(&["6.1.0"], &[]);
        let tags = [Some("6.0.0".to_owned()), Some("6.1.0".to_owned())];
        for _ in 0..100 {
            sim.advance(0.1, [0.8, 0.2], tags.clone());
        }
        let [p, c] = &sim.metrics;
        assert_eq!((p.ok, p.errors), (800, 0));
        assert_eq!((c.ok, c.errors), (140, 60));
        assert_eq!(c.buckets[2], 0, "no request under 10 ms");
        assert_eq!(c.buckets[5], 200, "all under 100 ms");
        assert!((20.0..=60.0).contains(&(c.sum_ms / 200.0)));
    }

    #[test]
    fn slow_tags_answer_in_about_a_second() {
        let mut sim = sim(&[], &["6.1.0"]);
        sim.advance(1.0, [0.0, 1.0], [None, Some("6.1.0".to_owned())]);
        let c = &sim.metrics[CANARY];
        assert_eq!(c.count(), 100);
        assert_eq!(c.buckets[7], 0, "none under 500 ms");
        assert_eq!(c.buckets[9], 100, "all under 2500 ms");
    }

    #[test]
    fn metrics_text_lists_both_workloads_from_the_start() {
        let text = render_metrics(
            "prod",
            &["backend-primary".into(), "backend".into()],
            &Default::default(),
        );
        assert!(text.contains("istio_requests_total{reporter=\"destination\",destination_workload=\"backend-primary\",destination_workload_namespace=\"prod\",response_code=\"200\"} 0\n"));
        assert!(text.contains("istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_workload=\"backend\",destination_workload_namespace=\"prod\",le=\"+Inf\"} 0\n"));
        assert_eq!(text.matches("_bucket{").count(), 24);
    }
}
