//! What a step costs against repository size, weir against the scripts it replaces, in one
//! run on one machine:
//!
//! ```sh
//! cargo bench --all-features --bench scale -- --apps 100,10000 [--rounds 3] [--json FILE]
//! ```
//!
//! For each size, a config repository in the gitops-istio layout (see `fixture.rs`) behind
//! `git daemon`, and:
//! - the warm service (weir's engine in this process, as `weir run` holds it): initialising
//!   every app, an idle tick, the tick from one app's pushed bump to weir's push, and one
//!   tick over many apps bumped in one commit (1,000, or every app when fewer);
//! - a fresh `weir step` process with a warm cache folder, as each CI job runs it: idle, and
//!   one app advanced; its peak memory (max RSS, from GNU time);
//! - the baselines: a warm clone's pull, sed, commit, push; the same from a fresh shallow
//!   clone; git plumbing into the bare repository (the floor for one commit).
//!
//! Gates answer from a fake metric source and the service's clock is fake, so the in-process
//! figures are weir's own cost. Medians over `--rounds` (idle service ticks: ten). The ratio
//! bars of issue 17 are checked at the largest size and a missed bar makes the run exit 1;
//! run without `--bench` (as `cargo test --all-targets` does) it is a quick smoke run on tiny
//! repositories that checks nothing.

mod baseline;
#[path = "../support/daemon.rs"]
mod daemon;
mod fixture;

use chrono::{TimeZone, Utc};
use daemon::Daemon;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::adapters::alerts::NoNotifier;
use weir::adapters::git::{Git2Repo, GitSettings};
use weir::adapters::publish::DirectCommit;
use weir::core::secret::SafeUrl;
use weir::engine::{Engine, Ports, Settings, TickReport};
use weir::ports::ConfigRepo;
use weir::repo::render::Templates;
use weir::test_support::fakes::{FakeClock, FakeMetrics};

/// GNU time, for a child's peak memory.
const TIME: &str = "/usr/bin/time";
/// Apps bumped in one commit for the many-apps tick.
const MANY: usize = 1000;

struct Options {
    sizes: Vec<usize>,
    rounds: usize,
    idle_ticks: usize,
    json: Option<PathBuf>,
    /// A benchmark run (cargo passes `--bench`), not a smoke run.
    bench: bool,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        sizes: vec![100, 10_000],
        rounds: 3,
        idle_ticks: 10,
        json: None,
        bench: false,
    };
    let mut sizes_given = false;
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--bench" => o.bench = true,
            "--apps" => {
                o.sizes = value()
                    .split(',')
                    .map(|s| s.trim().parse().expect("--apps: sizes like 100,10000"))
                    .collect();
                sizes_given = true;
            }
            "--rounds" => o.rounds = value().parse().expect("--rounds: a number"),
            "--json" => o.json = Some(value().into()),
            // libtest's own flags, which cargo may pass on.
            s if s.starts_with('-') => {}
            // A name filter from `cargo bench -- NAME`: this bench has one.
            _ => {}
        }
    }
    if !o.bench && !sizes_given {
        o.sizes = vec![4, 8];
        o.rounds = 1;
        o.idle_ticks = 2;
    }
    assert!(!o.sizes.is_empty() && o.rounds >= 1);
    o.sizes.sort_unstable();
    o.sizes.dedup();
    o
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rev(bare: &Path) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["rev-parse", "refs/heads/main"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn commits_between(bare: &Path, old: &str, new: &str) -> usize {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["rev-list", "--count", &format!("{old}..{new}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A CI bump through a checkout, untimed: pull, set the tags, one commit, push.
fn push_bump(checkout: &Path, apps: &[usize], tag: &str) {
    git(checkout, &["pull", "-q", "--ff-only", "origin", "main"]);
    for &i in apps {
        fixture::bump(checkout, i, tag);
    }
    git(
        checkout,
        &["commit", "-qam", &format!("bump {} apps", apps.len())],
    );
    git(checkout, &["push", "-q", "origin", "main"]);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One size's figures, in the table's order.
struct Figures {
    apps: usize,
    many: usize,
    rows: Vec<(&'static str, &'static str, f64)>,
}

impl Figures {
    fn get(&self, key: &str) -> f64 {
        self.rows.iter().find(|r| r.0 == key).unwrap().2
    }
}

/// The engine as `weir run` holds it, on a fake clock and a fake metric source.
fn service_engine(url: String, cache: PathBuf, clock: FakeClock) -> Engine {
    let settings = GitSettings {
        url: SafeUrl::new(url),
        branch: "main".into(),
        cache_dir: cache,
        token: None,
        ssh: None,
        author: ("weir".into(), "weir@localhost".into()),
        committer: ("weir".into(), "weir@localhost".into()),
        timeout: Duration::from_secs(60),
    };
    // The first clone into the cache is a cost of its own, left out of the first tick.
    Git2Repo::open(settings.clone()).unwrap().fetch().unwrap();
    let repo = Git2Repo::open(settings).unwrap();
    Engine::new(
        Ports {
            repo: Box::new(repo),
            publisher: Box::new(DirectCommit::default()),
            metrics: Arc::new(FakeMetrics::constant(100.0)),
            clock: Arc::new(clock),
            notifier: Arc::new(NoNotifier),
            hooks: Arc::new(weir::adapters::hooks::NoHooks),
            secrets: None,
            cluster: None,
        },
        Templates::embedded().unwrap(),
        Settings::default(),
    )
}

/// A finished `weir step`: how long it took, its peak memory and what it printed.
struct Step {
    took: Duration,
    rss_mb: f64,
    stdout: String,
}

fn weir_step(url: &str, cache: &Path, scratch: &Path) -> Step {
    let rss_file = scratch.join("rss");
    let started = Instant::now();
    let out = Command::new(TIME)
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_weir"))
        .args(["step", "--repo", url, "--cache"])
        .arg(cache)
        // Never asked: every gate of the measured steps is in the future.
        .args(["--prometheus", "http://127.0.0.1:9"])
        // Nothing from the caller's environment (WEIR_*, GITHUB_*) changes the run.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch)
        .env("WEIR_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{TIME}: {e} (install GNU time: apt-get install time)"));
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "weir step failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rss_kb: f64 = std::fs::read_to_string(&rss_file)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Step {
        took,
        rss_mb: rss_kb / 1024.0,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn measure(apps: usize, o: &Options) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let remotes = dir.path().join("remotes");
    let (service_git, process_git) = (remotes.join("service.git"), remotes.join("process.git"));
    let work = dir.path().join("work");
    for bare in [&service_git, &process_git] {
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
    }
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    fixture::write(&work, apps);
    git(&work, &["add", "-A"]);
    git(
        &work,
        &[
            "commit",
            "-qm",
            &format!("{apps} apps, gitops-istio layout"),
        ],
    );
    git(
        &work,
        &["remote", "add", "origin", service_git.to_str().unwrap()],
    );
    git(&work, &["push", "-q", "origin", "main"]);
    git(
        &work,
        &["push", "-q", process_git.to_str().unwrap(), "main"],
    );
    let daemon = Daemon::start(&remotes);
    let mut rows = Vec::new();
    let round_apps: Vec<usize> = (0..o.rounds).map(|r| (1 + r) % apps).collect();

    // The warm service.
    eprintln!("scale: {apps} apps: warm service");
    // The clock moves by `weir run`'s default interval before each idle tick, as it does
    // between the ticks of a service.
    let clock = FakeClock::at(Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap());
    let mut engine = service_engine(
        daemon.url("service.git"),
        dir.path().join("service-cache"),
        clock.clone(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut tick = |expect_commit: bool| -> (Duration, TickReport) {
        let t = Instant::now();
        let r = rt.block_on(engine.tick()).unwrap();
        let took = t.elapsed();
        if let Some(bad) = r.apps.iter().find(|a| !a.errors.is_empty()) {
            panic!("{bad:?}");
        }
        assert_eq!(r.commit.is_some(), expect_commit, "{:?}", r.message);
        (took, r)
    };
    let (init, _) = tick(true);
    tick(false); // learns its own push
    let idle = median(
        (0..o.idle_ticks)
            .map(|_| {
                clock.advance(Duration::from_secs(10));
                tick(false).0
            })
            .collect(),
    );
    let mut one = Vec::new();
    for (r, &i) in round_apps.iter().enumerate() {
        push_bump(&work, &[i], &format!("6.2.{r}"));
        one.push(tick(true).0);
        tick(false);
    }
    let many = MANY.min(apps);
    let bumped: Vec<usize> = (apps - many..apps).collect();
    push_bump(&work, &bumped, "7.0.0");
    let before = rev(&service_git);
    let (bulk, report) = tick(true);
    assert_eq!(
        commits_between(&service_git, &before, &rev(&service_git)),
        1
    );
    assert!(report.apps.len() >= many);
    drop(engine);
    rows.push((
        "service_init_ms",
        "warm service: initialise every app (first tick, warm cache)",
        ms(init),
    ));
    rows.push(("service_idle_ms", "warm service: idle tick", ms(idle)));
    rows.push((
        "service_one_app_ms",
        "warm service: one app advanced, bump to push",
        ms(median(one)),
    ));
    rows.push((
        "service_many_ms",
        "warm service: many apps bumped, one tick, one commit",
        ms(bulk),
    ));

    // A fresh process per step, as CI runs it.
    eprintln!("scale: {apps} apps: fresh weir step processes");
    let url = daemon.url("process.git");
    let cache = dir.path().join("process-cache");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let init = weir_step(&url, &cache, &scratch);
    assert!(init.stdout.starts_with("pushed"), "{}", init.stdout);
    let mut idle = Vec::new();
    for _ in 0..o.rounds {
        let s = weir_step(&url, &cache, &scratch);
        assert!(s.stdout.contains("nothing to commit"), "{}", s.stdout);
        idle.push(s);
    }
    // The warm-clone script is CI's bump; weir's step then carries it out.
    let checkout = dir.path().join("checkout");
    git(
        dir.path(),
        &["clone", "-q", &url, checkout.to_str().unwrap()],
    );
    let mut script = Vec::new();
    let mut one = Vec::new();
    for (r, &i) in round_apps.iter().enumerate() {
        script.push(baseline::warm_clone(
            &checkout,
            &fixture::app_name(i),
            &format!("6.2.{r}"),
        ));
        let s = weir_step(&url, &cache, &scratch);
        assert!(s.stdout.starts_with("pushed"), "{}", s.stdout);
        one.push(s);
    }
    let peak = |v: &[Step]| v.iter().map(|s| s.rss_mb).fold(0.0, f64::max);
    rows.push((
        "process_init_ms",
        "weir step: initialise every app (cold cache, clone included)",
        ms(init.took),
    ));
    rows.push((
        "process_idle_ms",
        "weir step, warm cache: idle",
        ms(median(idle.iter().map(|s| s.took).collect())),
    ));
    rows.push((
        "process_one_app_ms",
        "weir step, warm cache: one app advanced",
        ms(median(one.iter().map(|s| s.took).collect())),
    ));
    rows.push((
        "process_init_rss_mb",
        "weir step: peak memory, initialising (MB)",
        init.rss_mb,
    ));
    rows.push((
        "process_idle_rss_mb",
        "weir step: peak memory, idle (MB)",
        peak(&idle),
    ));
    rows.push((
        "process_one_app_rss_mb",
        "weir step: peak memory, one app (MB)",
        peak(&one),
    ));

    // The baselines on the same remote, apps weir has not touched.
    eprintln!("scale: {apps} apps: baselines");
    let others: Vec<usize> = (0..o.rounds).map(|r| (1 + o.rounds + r) % apps).collect();
    let shallow: Vec<Duration> = others
        .iter()
        .enumerate()
        .map(|(r, &i)| {
            let into = dir.path().join(format!("shallow{r}"));
            baseline::shallow_clone(&url, &into, &fixture::app_name(i), &format!("6.3.{r}"))
        })
        .collect();
    let floor: Vec<Duration> = others
        .iter()
        .enumerate()
        .map(|(r, &i)| baseline::plumbing(&process_git, &fixture::app_name(i), &format!("6.4.{r}")))
        .collect();
    rows.push((
        "script_warm_clone_ms",
        "script: warm clone, pull + sed + commit + push",
        ms(median(script)),
    ));
    rows.push((
        "script_shallow_clone_ms",
        "script: fresh shallow clone + sed + commit + push",
        ms(median(shallow)),
    ));
    rows.push((
        "plumbing_floor_ms",
        "floor: git plumbing into the bare repository",
        ms(median(floor)),
    ));
    Figures { apps, many, rows }
}

/// A ratio bar of issue 17.
struct Bar {
    name: &'static str,
    value: f64,
    want: &'static str,
    pass: bool,
    margin: String,
}

fn at_least(name: &'static str, value: f64, bar: f64, want: &'static str) -> Bar {
    Bar {
        name,
        value,
        want,
        pass: value >= bar,
        margin: if value >= bar {
            format!("{:.1}x above the bar", value / bar)
        } else {
            format!("{:.1}x short of the bar", bar / value)
        },
    }
}

fn main() -> ExitCode {
    if std::env::var_os("WEIR_BENCH_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("weir=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    let o = options();
    let figures: Vec<Figures> = o.sizes.iter().map(|&n| measure(n, &o)).collect();

    let label_width = 66;
    print!("\n{:<label_width$}", "figure (medians; ms unless MB)");
    for f in &figures {
        print!("{:>12}", format!("{} apps", f.apps));
    }
    println!();
    for (row, (key, label, _)) in figures[0].rows.iter().enumerate() {
        let label = if *key == "service_many_ms" {
            format!(
                "{label} ({})",
                figures
                    .iter()
                    .map(|f| f.many.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            )
        } else {
            label.to_string()
        };
        print!("{label:<label_width$}");
        for f in &figures {
            print!("{:>12.1}", f.rows[row].2);
        }
        println!();
    }
    let ratios = |f: &Figures| {
        json!({
            "warm_clone_script_over_service_one_app": f.get("script_warm_clone_ms") / f.get("service_one_app_ms"),
            "warm_clone_script_over_process_one_app": f.get("script_warm_clone_ms") / f.get("process_one_app_ms"),
            "shallow_clone_script_over_process_one_app": f.get("script_shallow_clone_ms") / f.get("process_one_app_ms"),
            "process_one_app_over_plumbing_floor": f.get("process_one_app_ms") / f.get("plumbing_floor_ms"),
        })
    };
    println!();
    for (key, label) in [
        (
            "warm_clone_script_over_service_one_app",
            "warm-clone script / warm service, one app",
        ),
        (
            "warm_clone_script_over_process_one_app",
            "warm-clone script / weir step, one app",
        ),
        (
            "shallow_clone_script_over_process_one_app",
            "shallow-clone script / weir step, one app",
        ),
        (
            "process_one_app_over_plumbing_floor",
            "weir step, one app / plumbing floor",
        ),
    ] {
        print!("{label:<label_width$}");
        for f in &figures {
            print!("{:>11.2}x", ratios(f)[key].as_f64().unwrap());
        }
        println!();
    }

    let (small, large) = (&figures[0], &figures[figures.len() - 1]);
    let mut bars = vec![
        at_least(
            "warm service one app at least 30x faster than the warm-clone script",
            large.get("script_warm_clone_ms") / large.get("service_one_app_ms"),
            30.0,
            ">= 30x",
        ),
        at_least(
            "fresh weir step one app at least 2x faster than the warm-clone script",
            large.get("script_warm_clone_ms") / large.get("process_one_app_ms"),
            2.0,
            ">= 2x",
        ),
    ];
    if figures.len() > 1 {
        let growth = large.get("service_idle_ms") / small.get("service_idle_ms");
        bars.push(Bar {
            name: "idle tick at the largest size at most 2x the smallest",
            value: growth,
            want: "<= 2x",
            pass: growth <= 2.0,
            margin: if growth <= 2.0 {
                format!("{:.1}x under the bar", 2.0 / growth)
            } else {
                format!("{:.1}x over the bar", growth / 2.0)
            },
        });
    }
    println!(
        "\nratio bars (issue 17), at {} apps against {} apps:",
        large.apps, small.apps
    );
    for b in &bars {
        println!(
            "  {} {:<72} {:>8.2}x (want {}; {})",
            if b.pass { "pass" } else { "FAIL" },
            b.name,
            b.value,
            b.want,
            b.margin
        );
    }

    let report = json!({
        "sizes": figures.iter().map(|f| {
            let mut m = serde_json::Map::new();
            m.insert("apps".into(), json!(f.apps));
            m.insert("many_apps_bumped".into(), json!(f.many));
            for (key, _, value) in &f.rows {
                m.insert((*key).into(), json!((value * 10.0).round() / 10.0));
            }
            m.insert("ratios".into(), ratios(f));
            serde_json::Value::Object(m)
        }).collect::<Vec<_>>(),
        "bars": bars.iter().map(|b| json!({"bar": b.name, "value": b.value, "want": b.want, "pass": b.pass})).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&report).unwrap();
    println!("\n{text}");
    if let Some(path) = &o.json {
        std::fs::write(path, &text).unwrap();
    }
    if o.bench && bars.iter().any(|b| !b.pass) {
        eprintln!("scale: a ratio bar was missed (see FAIL above)");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
