//! A config repository in the gitops-istio layout (from `fixtures/`), pushed to a bare remote
//! on disk, with helpers to bump tags as CI would, read what weir committed, and build any
//! commit the way Flux builds `./apps`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::adapters::alerts::NoNotifier;
use weir::adapters::clock::SystemClock;
use weir::adapters::git::{Git2Repo, GitSettings};
use weir::adapters::publish::DirectCommit;
use weir::core::positions::path;
use weir::core::record::State;
use weir::core::secret::SafeUrl;
use weir::engine::{Engine, Ports, Settings, TickReport};
use weir::ports::{ConfigRepo, MetricSource};
use weir::repo::render::Templates;
use weir::test_support::yaml_editor::set_scalar;

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/gitops-istio");
/// The public gitops-istio layout as its README describes it: the backend with conformance and
/// load-test webhooks, the frontend A/B tested by user-agent and cookie, the load tester, and
/// MetricTemplates naming the in-cluster Prometheus.
pub const UPSTREAM_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/gitops-istio-upstream"
);

/// The backend's analysis made fast for tests: 3s intervals, 25% steps, threshold 2.
pub fn fast_backend(work: &Path) {
    let canary = work.join("apps/backend/canary.yaml");
    edit(&canary, 0, "spec.analysis.interval", "3s");
    edit(&canary, 0, "spec.analysis.stepWeight", "25");
    edit(&canary, 0, "spec.analysis.threshold", "2");
    for i in 0..3 {
        edit(
            &canary,
            0,
            &format!("spec.analysis.metrics[{i}].interval"),
            "10s",
        );
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub remote: PathBuf,
    pub work: PathBuf,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.com"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Edits one scalar of a file in place, checking that nothing else changed.
pub fn edit(file: &Path, doc: usize, at: &str, value: &str) {
    let before = std::fs::read_to_string(file).unwrap();
    let after = set_scalar(&before, doc, &path(at), value).unwrap();
    assert_only_scalar_changed(&before, &after, value);
    std::fs::write(file, after).unwrap();
}

/// Every byte outside the edited scalar is the same.
pub fn assert_only_scalar_changed(before: &str, after: &str, value: &str) {
    let prefix = before
        .bytes()
        .zip(after.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = before
        .bytes()
        .rev()
        .zip(after.bytes().rev())
        .take_while(|(a, b)| a == b)
        .count()
        .min(before.len() - prefix)
        .min(after.len() - prefix);
    let changed_old = &before[prefix..before.len() - suffix];
    let changed_new = &after[prefix..after.len() - suffix];
    assert!(
        !changed_old.contains('\n') && !changed_new.contains('\n'),
        "more than one scalar changed: {changed_old:?} -> {changed_new:?}"
    );
    assert!(
        value.contains(changed_new.trim_matches('"')) || changed_new.is_empty(),
        "unexpected change {changed_old:?} -> {changed_new:?}"
    );
}

impl Fixture {
    /// The fixture, with the backend's analysis made fast for tests.
    pub fn new() -> Fixture {
        Self::with(fast_backend)
    }

    /// [`Fixture::new`] with the backend's grace for an unreachable metrics server set by
    /// its annotation (`0s`: counted as a failed check at once, as in Flagger).
    pub fn with_outage_grace(grace: &str) -> Fixture {
        Self::with(|work| {
            fast_backend(work);
            let canary = work.join("apps/backend/canary.yaml");
            let text = std::fs::read_to_string(&canary).unwrap().replacen(
                "metadata:\n",
                &format!("metadata:\n  annotations:\n    weir.dev/metrics-outage-grace: {grace}\n"),
                1,
            );
            std::fs::write(canary, text).unwrap();
        })
    }

    /// The fixture with a custom change before the first push.
    pub fn with(prepare: impl FnOnce(&Path)) -> Fixture {
        Self::from_dir(Path::new(FIXTURE), prepare)
    }

    /// Another fixture folder (e.g. [`UPSTREAM_FIXTURE`]), with a change before the first push.
    pub fn from_dir(fixture: &Path, prepare: impl FnOnce(&Path)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote.git");
        let work = dir.path().join("work");
        let out = Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&remote)
            .output()
            .unwrap();
        assert!(out.status.success());
        copy_dir(fixture, &work);
        git(&work, &["init", "-q", "-b", "main"]);
        prepare(&work);
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", "gitops-istio layout"]);
        git(
            &work,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
        git(&work, &["push", "-q", "origin", "main"]);
        Fixture { dir, remote, work }
    }

    pub fn url(&self) -> String {
        self.remote.to_str().unwrap().to_string()
    }

    /// Bumps an app's image tag the way CI does, and pushes.
    pub fn bump(&self, app: &str, tag: &str) {
        git(&self.work, &["pull", "-q", "--rebase", "origin", "main"]);
        edit(
            &self.work.join(format!("apps/{app}/kustomization.yaml")),
            0,
            "images[0].newTag",
            tag,
        );
        git(
            &self.work,
            &["commit", "-qam", &format!("{app}: bump to {tag}")],
        );
        git(&self.work, &["push", "-q", "origin", "main"]);
    }

    /// A file of the remote's branch head, or at a commit.
    pub fn show(&self, rev: &str, file: &str) -> Option<String> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remote)
            .args(["show", &format!("{rev}:{file}")])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// The rollout record of an app at a revision of the remote.
    pub fn state_at(&self, rev: &str, app: &str) -> Option<State> {
        let text = self.show(rev, &format!("apps/{app}.weir/state.yaml"))?;
        Some(
            weir::core::record::parse("state.yaml", text.as_bytes())
                .unwrap()
                .status,
        )
    }

    pub fn state(&self, app: &str) -> Option<State> {
        self.state_at("main", app)
    }

    /// The full message of a commit of the remote.
    pub fn message(&self, rev: &str) -> String {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remote)
            .args(["log", "-1", "--format=%B", rev])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The remote's commits, oldest first: (sha, subject).
    pub fn log(&self) -> Vec<(String, String)> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remote)
            .args(["log", "--reverse", "--format=%H %s", "main"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let (sha, subject) = l.split_once(' ').unwrap();
                (sha.to_string(), subject.to_string())
            })
            .collect()
    }

    /// weir's commits for an app, oldest first: (sha, subject), CI's tag bumps left out.
    pub fn steps(&self, app: &str) -> Vec<(String, String)> {
        let prefix = format!("{app}: ");
        self.log()
            .into_iter()
            .filter(|(_, s)| s.starts_with(&prefix) && !s.contains(": bump to "))
            .collect()
    }

    pub fn settings(&self) -> GitSettings {
        GitSettings {
            url: SafeUrl::new(self.url()),
            branch: "main".into(),
            cache_dir: self.dir.path().join("cache"),
            token: None,
            ssh: None,
            author: ("weir".into(), "weir@example.com".into()),
            committer: ("weir".into(), "weir@example.com".into()),
            timeout: Duration::from_secs(30),
        }
    }

    /// The real config repo adapter on this fixture's remote.
    pub fn repo(&self) -> Git2Repo {
        Git2Repo::open(self.settings()).unwrap()
    }

    pub fn engine(&self, prometheus: Option<String>) -> Engine {
        self.engine_with(prometheus, Box::new(self.repo()))
    }

    pub fn engine_with(&self, prometheus: Option<String>, repo: Box<dyn ConfigRepo>) -> Engine {
        let prom = weir::adapters::prometheus::Client::new(weir::adapters::prometheus::Settings {
            default_address: prometheus,
            timeout: Duration::from_secs(5),
            ..Default::default()
        })
        .unwrap();
        self.engine_on(repo, Arc::new(prom), Arc::new(SystemClock))
    }

    /// An engine on any metric source and clock (fakes in executor tests).
    pub fn engine_on(
        &self,
        repo: Box<dyn ConfigRepo>,
        metrics: Arc<dyn MetricSource>,
        clock: Arc<dyn weir::ports::Clock>,
    ) -> Engine {
        self.engine_publishing(repo, Box::new(DirectCommit::default()), metrics, clock)
    }

    /// An engine with any publisher (pull requests in PR-mode tests).
    pub fn engine_publishing(
        &self,
        repo: Box<dyn ConfigRepo>,
        publisher: Box<dyn weir::ports::Publisher>,
        metrics: Arc<dyn MetricSource>,
        clock: Arc<dyn weir::ports::Clock>,
    ) -> Engine {
        self.engine_seeing(repo, publisher, metrics, clock, None)
    }

    /// An engine with a cluster view (`None`: Git only).
    pub fn engine_seeing(
        &self,
        repo: Box<dyn ConfigRepo>,
        publisher: Box<dyn weir::ports::Publisher>,
        metrics: Arc<dyn MetricSource>,
        clock: Arc<dyn weir::ports::Clock>,
        cluster: Option<Arc<dyn weir::ports::ClusterView>>,
    ) -> Engine {
        Engine::new(
            Ports {
                repo,
                publisher,
                metrics,
                clock,
                notifier: Arc::new(NoNotifier),
                hooks: Arc::new(weir::adapters::hooks::NoHooks),
                secrets: None,
                cluster,
            },
            Templates::embedded().unwrap(),
            Settings {
                roots: vec![".".into()],
                min_interval: Duration::from_secs(1),
                ..Settings::default()
            },
        )
    }

    /// An engine with the real webhook client (short retry waits) and `notifier`, on this
    /// fixture's remote and a Prometheus at `prometheus`.
    pub fn engine_with_hooks(
        &self,
        prometheus: Option<String>,
        notifier: Arc<dyn weir::ports::Notifier>,
    ) -> Engine {
        self.engine_with_hooks_on(
            weir::adapters::prometheus::Settings {
                default_address: prometheus,
                timeout: Duration::from_secs(5),
                ..Default::default()
            },
            notifier,
        )
    }

    /// [`Fixture::engine_with_hooks`] with Prometheus settings of the test's choosing.
    pub fn engine_with_hooks_on(
        &self,
        prometheus: weir::adapters::prometheus::Settings,
        notifier: Arc<dyn weir::ports::Notifier>,
    ) -> Engine {
        let prom = weir::adapters::prometheus::Client::new(prometheus).unwrap();
        let hooks = weir::adapters::hooks::HttpHooks::new(weir::adapters::hooks::HookSettings {
            retry_wait_min: Duration::from_millis(10),
            retry_wait_max: Duration::from_millis(100),
        })
        .unwrap();
        Engine::new(
            Ports {
                repo: Box::new(self.repo()),
                publisher: Box::new(DirectCommit::default()),
                metrics: Arc::new(prom),
                clock: Arc::new(SystemClock),
                notifier,
                hooks: Arc::new(hooks),
                secrets: None,
                cluster: None,
            },
            Templates::embedded().unwrap(),
            Settings {
                roots: vec![".".into()],
                min_interval: Duration::from_secs(1),
                ..Settings::default()
            },
        )
    }

    /// Runs a command in the work tree, as a person would, and pushes the result.
    pub fn push_change(&self, message: &str, change: impl FnOnce(&Path)) {
        git(&self.work, &["pull", "-q", "--rebase", "origin", "main"]);
        change(&self.work);
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-qm", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
    }
}

/// Ticks until `done` holds for the remote, or panics at the deadline.
pub async fn drive(
    engine: &mut Engine,
    fixture: &Fixture,
    deadline: Duration,
    done: impl Fn(&Fixture) -> bool,
) -> Vec<TickReport> {
    let start = Instant::now();
    let mut reports = Vec::new();
    loop {
        let report = engine.tick().await.expect("tick runs");
        reports.push(report);
        if done(fixture) {
            return reports;
        }
        assert!(
            start.elapsed() < deadline,
            "not done after {deadline:?}; remote log:\n{:#?}\nlast report: {:#?}",
            fixture.log(),
            reports.last()
        );
        until_next_step(
            reports.last().expect("a tick"),
            deadline.saturating_sub(start.elapsed()),
        )
        .await;
    }
}

/// Waits, at most `deadline`, until the soonest step `report` names is due on the wall clock
/// (and one probe at least, so that an app that waits for something else is looked at
/// again, not spun on).
pub async fn until_next_step(report: &TickReport, deadline: Duration) {
    let due = report
        .apps
        .iter()
        .filter_map(|a| a.next_step_at.as_deref())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .min();
    let ticked = Instant::now();
    crate::support::wait::until_async(deadline, || {
        ticked.elapsed() >= crate::support::wait::POLL
            && due.is_none_or(|d| chrono::Utc::now() >= d)
    })
    .await;
}

/// Builds a commit the way Flux builds `./apps` when it has no kustomization.yaml: every YAML
/// file, and every sub-folder with a kustomization, as resources.
pub fn flux_build(fixture: &Fixture, rev: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let archive = Command::new("git")
        .arg("--git-dir")
        .arg(&fixture.remote)
        .args(["archive", "--format=tar", rev])
        .output()
        .unwrap();
    assert!(archive.status.success());
    let tar = dir.path().join("tree.tar");
    std::fs::write(&tar, archive.stdout).unwrap();
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let apps = dir.path().join("apps");
    let mut resources = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&apps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for name in names {
        let p = apps.join(&name);
        if (p.is_dir() && p.join("kustomization.yaml").exists()) || name.ends_with(".yaml") {
            resources.push(name);
        }
    }
    let mut k = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for r in resources {
        k.push_str(&format!("  - {r}\n"));
    }
    std::fs::write(apps.join("kustomization.yaml"), k).unwrap();
    let out = Command::new("kubectl")
        .args(["kustomize", "--load-restrictor=LoadRestrictionsNone"])
        .arg(&apps)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize failed at {rev}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The documents of a build.
pub fn docs(built: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(built)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The object of a kind and name in a build.
pub fn find<'a>(
    docs: &'a [serde_yaml::Value],
    kind: &str,
    name: &str,
) -> Option<&'a serde_yaml::Value> {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
}

/// The first container image of a Deployment.
pub fn image(d: &serde_yaml::Value) -> String {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// (primary, canary) weights of the VirtualService route.
pub fn weights(vs: &serde_yaml::Value, app: &str) -> (u64, u64) {
    let mut p = None;
    let mut c = None;
    for r in vs["spec"]["http"][0]["route"].as_sequence().unwrap() {
        let host = r["destination"]["host"].as_str().unwrap();
        let w = r["weight"].as_u64().unwrap();
        if host == format!("{app}-primary") {
            p = Some(w);
        } else if host == format!("{app}-canary") {
            c = Some(w);
        }
    }
    (p.unwrap(), c.unwrap())
}

/// Asserts that each step's subject starts with the expected text, in order.
pub fn assert_steps(steps: &[(String, String)], expected: &[&str]) {
    let subjects: Vec<&str> = steps.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(subjects.len(), expected.len(), "{subjects:#?}");
    for (got, want) in subjects.iter().zip(expected) {
        assert!(
            got.starts_with(want),
            "{got:?} should start with {want:?}\n{subjects:#?}"
        );
    }
}

/// Every file below a folder (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}
