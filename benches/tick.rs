//! Tick cost against repository size, as ratios to a one-app baseline measured in the same
//! run: `cargo bench --bench tick` (WEIR_BENCH_APPS sets the large size, default 10000).
//!
//! For each size: the first clone of the repository into weir's cache, the cold tick
//! (initialises every app: renders each folder, carries each app's source into its primary
//! by id, commits and pushes), an idle tick (nothing changed), the tick after one
//! app's tag bump, the next step of that app (the route opens), and its promotion (the
//! primary takes the new revision). Gates answer from a fake metric source and time moves on
//! a fake clock, so the numbers are weir's own cost. The Git remote is a real bare repository
//! served by `git daemon` over git://, as a Git host would serve it: with a plain path, libgit2
//! would index every pushed pack inside weir's process, work a server does in production.

use chrono::{TimeZone, Utc};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::adapters::alerts::NoNotifier;
use weir::adapters::git::{Git2Repo, GitSettings};
use weir::adapters::publish::DirectCommit;
use weir::core::secret::SafeUrl;
use weir::engine::{Engine, Ports, Settings};
use weir::ports::ConfigRepo;
use weir::repo::render::Templates;
use weir::test_support::fakes::{FakeClock, FakeMetrics};

#[path = "support/daemon.rs"]
mod daemon;
use daemon::Daemon;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=b", "-c", "user.email=b@b"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

fn app_files(name: &str) -> [(String, String); 4] {
    [
        ("kustomization.yaml".into(), format!("resources:\n  - canary.yaml\n  - deployment.yaml\n  - hpa.yaml\nimages:\n  - name: ghcr.io/acme/{name}\n    newTag: 1.0.0\n")),
        ("deployment.yaml".into(), format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: prod\nspec:\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: app\n          image: ghcr.io/acme/{name}:1.0.0\n")),
        ("hpa.yaml".into(), format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: {name}\n  namespace: prod\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: {name}\n  minReplicas: 1\n  maxReplicas: 2\n")),
        ("canary.yaml".into(), format!("apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n  name: {name}\n  namespace: prod\nspec:\n  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: {name}\n  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: {name}\n  service:\n    port: 80\n  analysis:\n    interval: 1m\n    maxWeight: 10\n    stepWeight: 10\n    metrics:\n      - name: request-success-rate\n        thresholdRange:\n          min: 99\n")),
    ]
}

struct Timings {
    clone: Duration,
    cold: Duration,
    idle: Duration,
    change: Duration,
    advance: Duration,
    promotion: Duration,
}

fn measure(apps: usize) -> Timings {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("remote.git");
    let work = dir.path().join("work");
    assert!(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&remote)
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    for i in 0..apps {
        let name = format!("app{i:05}");
        let d = work.join("apps").join(&name);
        std::fs::create_dir_all(&d).unwrap();
        for (file, text) in app_files(&name) {
            std::fs::write(d.join(file), text).unwrap();
        }
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "apps"]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&work, &["push", "-q", "origin", "main"]);

    let daemon = Daemon::start(dir.path());
    let settings = GitSettings {
        url: SafeUrl::new(daemon.url("remote.git")),
        branch: "main".into(),
        cache_dir: dir.path().join("cache"),
        token: None,
        ssh: None,
        author: ("b".into(), "b@b".into()),
        committer: ("b".into(), "b@b".into()),
        timeout: Duration::from_secs(30),
    };
    // The first clone is a cost of its own, measured apart from the first tick.
    let t = Instant::now();
    Git2Repo::open(settings.clone()).unwrap().fetch().unwrap();
    let clone = t.elapsed();
    let repo = Git2Repo::open(settings).unwrap();
    let clock = FakeClock::at(Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap());
    let mut engine = Engine::new(
        Ports {
            repo: Box::new(repo),
            publisher: Box::new(DirectCommit::default()),
            metrics: Arc::new(FakeMetrics::constant(100.0)),
            clock: Arc::new(clock.clone()),
            notifier: Arc::new(NoNotifier),
            hooks: Arc::new(weir::adapters::hooks::NoHooks),
            secrets: None,
            cluster: None,
        },
        Templates::embedded().unwrap(),
        Settings {
            roots: vec!["apps".into()],
            ..Settings::default()
        },
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut tick = |expect: &str| {
        let t = Instant::now();
        let r = rt.block_on(engine.tick()).unwrap();
        let took = t.elapsed();
        assert!(
            r.apps.iter().all(|a| a.errors.is_empty()),
            "{:?}",
            r.apps.iter().find(|a| !a.errors.is_empty())
        );
        let subject = r
            .message
            .as_deref()
            .and_then(|m| m.lines().next())
            .unwrap_or("")
            .to_string();
        assert!(
            subject.contains(expect),
            "expected {expect:?}, got {subject:?}"
        );
        took
    };
    let cold = tick(if apps == 1 {
        "initialization done"
    } else {
        "rollouts moved"
    });
    // The first tick after our own push learns the new head once; then it is quiet.
    tick("");
    let idle = (0..20).map(|_| tick("")).min().unwrap();

    git(&work, &["pull", "-q", "origin", "main"]);
    let k = work.join("apps/app00000/kustomization.yaml");
    let text = std::fs::read_to_string(&k)
        .unwrap()
        .replace("1.0.0", "1.0.1");
    std::fs::write(&k, text).unwrap();
    git(&work, &["commit", "-qam", "bump"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let change = tick("new revision");
    clock.advance(Duration::from_secs(60));
    let advance = tick("advance canary weight 0 -> 10");
    clock.advance(Duration::from_secs(60));
    let promotion = tick("promoting revision");
    Timings {
        clone,
        cold,
        idle,
        change,
        advance,
        promotion,
    }
}

fn main() {
    if std::env::var_os("WEIR_BENCH_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("weir=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    // `cargo test --all-targets` runs this too, unoptimised: a small size keeps it a smoke test.
    let default = if cfg!(debug_assertions) { 20 } else { 10_000 };
    let large: usize = std::env::var("WEIR_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let base = measure(1);
    let big = measure(large);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("tick cost, 1 app (baseline) vs {large} apps, same run:");
    println!(
        "{:<34}{:>12}{:>14}{:>10}",
        "",
        "1 app",
        format!("{large} apps"),
        "ratio"
    );
    for (what, a, b) in [
        ("first clone of the repository", base.clone, big.clone),
        ("cold (initialise every app)", base.cold, big.cold),
        ("idle (nothing changed)", base.idle, big.idle),
        ("one app's tag bumped", base.change, big.change),
        ("that app's next step (advance)", base.advance, big.advance),
        ("that app's promotion", base.promotion, big.promotion),
    ] {
        println!(
            "{what:<34}{:>10.2}ms{:>12.2}ms{:>9.1}x",
            ms(a),
            ms(b),
            ms(b) / ms(a)
        );
    }
    println!(
        "promotion / advance at {large} apps: {:.2}",
        ms(big.promotion) / ms(big.advance)
    );
}
