//! Leader election among `weir run` replicas on one repository, through a Lease on the
//! Kubernetes API stand-in: one writer at a time through a whole release, a standby that
//! finishes the release once a killed leader's Lease expires, a leader that stops writing as
//! soon as its Lease is taken, and a Lease given up on SIGTERM. Each replica prefixes its
//! commit subjects with its name, so the remote's log says who wrote what.

use crate::support::kube_api::KubeApi;
use crate::support::prometheus::Prometheus;
use crate::support::repo::Fixture;
use crate::support::traffic::Traffic;
use crate::support::wait::until;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use weir::core::lease::{LeaseError, LeaseRecord, Timings};
use weir::core::spec::Phase;
use weir::engine::lease::Elector;
use weir::ports::{BoxFuture, Clock, LeaseStore};

const LEASE: &str = "weir-fleet";
const NAMESPACE: &str = "weir";

/// One `weir run --leader-elect` process, killed when dropped; its log goes to a file.
struct Replica {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn start(
        name: &str,
        fixture: &Fixture,
        kubeconfig: &Path,
        prometheus: Option<&str>,
        lease_duration: &str,
    ) -> Replica {
        let dir = fixture.dir.path().join(format!("replica-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("stderr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
        command
            .args(["run", "--repo", &fixture.url(), "--min-interval", "1s"])
            .args(["--every", "300ms", "--log", "weir=debug"])
            .args(["--leader-elect", "--identity", name, "--lease-name", LEASE])
            .args(["--lease-duration", lease_duration])
            .args(["--renew-deadline", "2s", "--retry-period", "500ms"])
            .args(["--message-prefix", &format!("[{name}] ")])
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache")
            .arg(dir.join("cache"))
            .env_remove("WEIR_GIT_TOKEN")
            .env_remove("WEIR_PROMETHEUS")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(url) = prometheus {
            command.args(["--prometheus", url]);
        }
        Replica {
            name: name.to_string(),
            child: command.spawn().unwrap(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }

    fn wait(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        crate::support::wait::poll(deadline, || child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("{} did not stop", self.name))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lease(api: &KubeApi) -> Option<Value> {
    api.get("coordination.k8s.io/v1", "Lease", NAMESPACE, LEASE)
}

fn holder(api: &KubeApi) -> Option<String> {
    lease(api).and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

/// The subjects weir wrote (the test's own commits left out), without the replica prefix,
/// with the replica that wrote each.
fn written(fixture: &Fixture) -> Vec<(String, String)> {
    fixture
        .log()
        .into_iter()
        .filter_map(|(_, subject)| {
            let rest = subject.strip_prefix('[')?;
            let (who, subject) = rest.split_once("] ")?;
            Some((who.to_string(), subject.to_string()))
        })
        .collect()
}

fn kubeconfig(api: &KubeApi, fixture: &Fixture) -> PathBuf {
    let path = fixture.dir.path().join("kubeconfig");
    api.write_kubeconfig(&path, NAMESPACE, Some(crate::support::kube_api::TOKEN));
    path
}

#[test]
fn two_replicas_write_each_step_once_and_the_standby_finishes_after_the_leader_is_killed() {
    let fixture = Fixture::new();
    let traffic = Traffic::backend(&fixture.remote, &[], &[]);
    let prometheus = Prometheus::start(&[traffic.target()]);
    let api = KubeApi::start();
    let config = kubeconfig(&api, &fixture);
    let a = Replica::start("a", &fixture, &config, Some(&prometheus.url()), "3s");
    let b = Replica::start("b", &fixture, &config, Some(&prometheus.url()), "3s");
    let mut replicas = [Some(a), Some(b)];

    until("both apps initialised", Duration::from_secs(60), || {
        fixture.state("backend").is_some() && fixture.state("frontend").is_some()
    });
    prometheus.wait_for(
        "sum(istio_requests_total{destination_workload=\"backend-primary\"})",
        Duration::from_secs(20),
        |v| v > 0.0,
    );

    // Mid-release, kill the leader without a chance to give the Lease up.
    fixture.bump("backend", "6.1.1");
    until("the canary at 25%", Duration::from_secs(60), || {
        fixture
            .state("backend")
            .is_some_and(|s| s.phase == Phase::Progressing && s.canary_weight.get() >= 25)
    });
    let leader = holder(&api).expect("a holder");
    let (dead, standby) = match leader.as_str() {
        "a" => ("a", "b"),
        "b" => ("b", "a"),
        other => panic!("unexpected holder {other}"),
    };
    let before_kill = written(&fixture);
    let killed_at = chrono::Utc::now();
    let slot = if dead == "a" { 0 } else { 1 };
    let mut killed = replicas[slot].take().unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();

    until("the standby promotes", Duration::from_secs(90), || {
        fixture
            .state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    });
    let logs: Vec<String> = replicas.iter().flatten().map(Replica::log).collect();
    let lease = lease(&api).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], standby, "{lease:#}");
    // The standby took the Lease only after it expired: acquired no earlier than the kill.
    let acquired =
        chrono::DateTime::parse_from_rfc3339(lease["spec"]["acquireTime"].as_str().unwrap())
            .unwrap();
    assert!(
        acquired >= killed_at - chrono::Duration::milliseconds(10),
        "{lease:#}"
    );
    assert!(
        lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 1,
        "{lease:#}"
    );

    // One writer at a time: the killed leader wrote everything before the kill (the standby
    // nothing), and the standby everything after.
    let all = written(&fixture);
    assert!(
        before_kill.iter().all(|(who, _)| who == dead),
        "{before_kill:#?}\n{logs:#?}"
    );
    assert!(
        all[before_kill.len()..]
            .iter()
            .all(|(who, _)| who == standby),
        "{all:#?}"
    );
    // Each step once: no subject twice in the remote's log.
    let mut subjects: Vec<&str> = all.iter().map(|(_, s)| s.as_str()).collect();
    let count = subjects.len();
    subjects.sort();
    subjects.dedup();
    assert_eq!(
        subjects.len(),
        count,
        "a step was committed twice: {all:#?}"
    );
    let steps: Vec<&str> = all
        .iter()
        .map(|(_, s)| s.as_str())
        .filter(|s| s.starts_with("backend: "))
        .collect();
    let expected = [
        "backend: new revision ",
        "backend: advance canary weight 0 -> 25",
        "backend: advance canary weight 25 -> 50",
        "backend: promoting revision ",
        "backend: routing all traffic to primary",
        "backend: promotion completed",
    ];
    assert_eq!(steps.len(), expected.len(), "{all:#?}");
    for (got, want) in steps.iter().zip(expected) {
        assert!(got.starts_with(want), "{got} is not {want}: {all:#?}");
    }
    drop(traffic);
}

#[test]
fn a_leader_whose_lease_is_taken_stops_writing_and_a_stopped_leader_gives_it_up() {
    let fixture = Fixture::new();
    let api = KubeApi::start();
    let config = kubeconfig(&api, &fixture);
    let mut a = Replica::start("a", &fixture, &config, None, "15s");
    until("a leads and initialises", Duration::from_secs(60), || {
        holder(&api).as_deref() == Some("a") && fixture.state("backend").is_some()
    });

    // Another process takes the Lease (as if a's clock had run slow and it expired).
    let mut taken = lease(&api).unwrap();
    taken["spec"]["holderIdentity"] = json!("intruder");
    taken["spec"]["renewTime"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    taken["spec"]["leaseDurationSeconds"] = json!(3600);
    api.put(taken);
    until("a stands by", Duration::from_secs(10), || {
        a.log().contains("not leading")
    });
    let standing_by = a.log().matches("standing by").count();
    // A change weir would commit at once: a new revision.
    let before = fixture.log().len();
    fixture.bump("backend", "6.1.1");
    until(
        "a skipped three more ticks",
        Duration::from_secs(20),
        || a.log().matches("standing by").count() >= standing_by + 3,
    );
    assert_eq!(
        fixture.log().len(),
        before + 1,
        "a wrote while another held the Lease: {:#?}",
        fixture.log()
    );

    // The Lease given up: a takes it and writes the step it held back.
    let mut freed = lease(&api).unwrap();
    freed["spec"]["holderIdentity"] = json!("");
    api.put(freed);
    until("a writes the new revision", Duration::from_secs(30), || {
        written(&fixture)
            .iter()
            .any(|(who, s)| who == "a" && s.starts_with("backend: new revision"))
    });

    // SIGTERM: a gives the Lease up, so a standby need not wait for it to expire.
    a.signal("-TERM");
    assert!(a.wait(Duration::from_secs(20)).success(), "{}", a.log());
    let lease = lease(&api).unwrap();
    assert_eq!(
        lease["spec"]["holderIdentity"].as_str().unwrap_or(""),
        "",
        "{lease:#}\n{}",
        a.log()
    );
}

/// A Lease that another process takes between the check before the tick and the push.
struct TakenMidTick {
    reads: std::sync::Mutex<u32>,
    me: &'static str,
    taken_after: u32,
}

impl LeaseStore for TakenMidTick {
    fn describe(&self) -> String {
        "Lease test/lease".into()
    }

    fn get(&self) -> BoxFuture<'_, Result<Option<LeaseRecord>, LeaseError>> {
        let mut reads = self.reads.lock().unwrap();
        *reads += 1;
        let holder = match *reads > self.taken_after {
            true => "intruder",
            false => self.me,
        };
        let now = chrono::Utc::now();
        Box::pin(async move {
            Ok(Some(LeaseRecord {
                holder: Some(holder.into()),
                renew_time: Some(now),
                acquire_time: Some(now),
                duration_seconds: Some(15),
                transitions: 0,
                version: Some("1".into()),
            }))
        })
    }

    fn create<'a>(
        &'a self,
        lease: &'a LeaseRecord,
    ) -> BoxFuture<'a, Result<LeaseRecord, LeaseError>> {
        Box::pin(async move { Ok(lease.clone()) })
    }

    fn update<'a>(
        &'a self,
        lease: &'a LeaseRecord,
    ) -> BoxFuture<'a, Result<LeaseRecord, LeaseError>> {
        Box::pin(async move { Ok(lease.clone()) })
    }
}

struct Wall;

impl Clock for Wall {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

fn elector(taken_after: u32) -> Arc<Elector> {
    let store = TakenMidTick {
        reads: std::sync::Mutex::new(0),
        me: "me",
        taken_after,
    };
    Arc::new(Elector::new(
        Arc::new(store),
        "me",
        Timings::default(),
        Arc::new(Wall),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_during_a_tick_stops_its_push() {
    let fixture = Fixture::new();
    // Taken after the check before the tick: the tick plans, and publishes nothing.
    let mut engine = fixture.engine(None).with_leader(elector(1));
    engine.leads().await.expect("leads before the tick");
    let refused = engine.tick().await.expect_err("the push is refused");
    assert!(
        refused.to_string().contains("intruder holds it"),
        "{refused}"
    );
    assert_eq!(fixture.log().len(), 1, "{:#?}", fixture.log());

    // Kept: the same tick pushes.
    let mut engine = fixture.engine(None).with_leader(elector(u32::MAX));
    engine.leads().await.expect("leads");
    let report = engine.tick().await.expect("a tick");
    assert!(report.commit.is_some(), "{report:?}");
    assert_eq!(fixture.log().len(), 2);
}
