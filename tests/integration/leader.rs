//! Leader election among `weir run` replicas on one repository, through a Lease on the
//! Kubernetes API stand-in: one writer at a time through a whole release, a standby that
//! finishes the release once a killed leader's Lease expires, a leader that stops writing as
//! soon as its Lease is taken, and a Lease given up on SIGTERM. Each replica prefixes its
//! commit subjects with its name, so the remote's log says who wrote what.

use crate::support::kube_api::KubeApi;
use crate::support::prometheus::Prometheus;
use crate::support::receiver::Receiver;
use crate::support::replica::{elected_args, Replica};
use crate::support::repo::Fixture;
use crate::support::traffic::Traffic;
use crate::support::wait::until;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weir::core::lease::{LeaseError, LeaseRecord, Timings};
use weir::core::spec::Phase;
use weir::engine::lease::Elector;
use weir::ports::{BoxFuture, Clock, LeaseStore};

const LEASE: &str = "weir-fleet";
const NAMESPACE: &str = "weir";

/// One `weir run --leader-elect` replica on the fixture's remote, prefixing its commit
/// subjects with its name, with `extra` flags.
fn replica(
    name: &str,
    fixture: &Fixture,
    kubeconfig: &Path,
    prometheus: Option<&str>,
    lease_duration: &str,
    extra: &[String],
) -> Replica {
    let mut args = elected_args(name, fixture.dir.path(), kubeconfig, lease_duration);
    args.extend(["--repo", &fixture.url(), "--lease-name", LEASE].map(OsString::from));
    if let Some(url) = prometheus {
        args.extend(["--prometheus", url].map(OsString::from));
    }
    args.extend(extra.iter().map(OsString::from));
    Replica::run(name, fixture.dir.path(), args)
}

/// Replicas `a` and `b` on one Lease, once both apps are initialised and the primary serves.
fn two_replicas(
    fixture: &Fixture,
    config: &Path,
    prometheus: &Prometheus,
    extra: &[String],
) -> [Option<Replica>; 2] {
    let url = prometheus.url();
    let a = replica("a", fixture, config, Some(&url), "3s", extra);
    let b = replica("b", fixture, config, Some(&url), "3s", extra);
    until("both apps initialised", Duration::from_secs(60), || {
        fixture.state("backend").is_some() && fixture.state("frontend").is_some()
    });
    prometheus.wait_for(
        "sum(istio_requests_total{destination_workload=\"backend-primary\"})",
        Duration::from_secs(20),
        |v| v > 0.0,
    );
    [Some(a), Some(b)]
}

/// The backend's steps of one whole release, each once and in order, among `all` (writer,
/// subject).
fn assert_one_release(all: &[(String, String)]) {
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
    let mut replicas = two_replicas(&fixture, &config, &prometheus, &[]);

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
    replicas[slot].take().unwrap().kill();

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
    assert_one_release(&all);
    drop(traffic);
}

/// The backend's webhooks, all at `receiver`, one path each so that the calls can be told
/// apart (Flagger's payload does not name the hook).
fn with_hooks(work: &Path, receiver: &str) {
    crate::support::repo::fast_backend(work);
    let canary = work.join("apps/backend/canary.yaml");
    let mut text = std::fs::read_to_string(&canary).unwrap();
    text.push_str(&format!(
        "    webhooks:
      - name: acceptance
        type: pre-rollout
        url: {receiver}/acceptance
      - name: load-test
        url: {receiver}/load-test
        timeout: 30s
      - name: smoke
        type: post-rollout
        url: {receiver}/smoke
      - name: events
        type: event
        url: {receiver}/events
"
    ));
    std::fs::write(canary, text).unwrap();
}

/// Flags sending every Canary's alerts to `receiver` as generic JSON.
fn alerts_to(receiver: &Receiver) -> Vec<String> {
    [
        "--alert-url",
        &format!("{}/alerts", receiver.url()),
        "--alert-type",
        "generic",
    ]
    .map(String::from)
    .to_vec()
}

/// (app, message) of every alert `receiver` got, in order.
fn alerts(receiver: &Receiver) -> Vec<(String, String)> {
    receiver
        .requests_at("/alerts")
        .iter()
        .map(|r| {
            let body = r.json();
            let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
            (field("app"), field("message"))
        })
        .collect()
}

/// What "once" means when the leader dies mid-release and a standby finishes it:
///
/// - every step is committed once, by whoever held the Lease then;
/// - what follows a committed step (its alert, its `event` and `post-rollout` hooks) is sent
///   by the process whose push landed, once: the new leader reads the step from Git and never
///   sends it again;
/// - a gating hook (`pre-rollout`, `rollout`, `confirm-*`, `rollback`) is asked while its
///   step is decided, before the step is committed. The leader is killed here while it waits
///   for the `rollout` hook of the step 25 -> 50: that step was never committed, so the new
///   leader decides it again and asks that hook once more. That is the one call a takeover
///   may repeat, and the test allows exactly it.
#[test]
fn a_takeover_mid_release_sends_each_alert_and_hook_of_a_committed_step_once() {
    let receiver = Receiver::start();
    let url = receiver.url();
    let fixture = Fixture::with(|work| with_hooks(work, &url));
    let traffic = Traffic::backend(&fixture.remote, &[], &[]);
    let prometheus = Prometheus::start(&[traffic.target()]);
    let api = KubeApi::start();
    let config = kubeconfig(&api, &fixture);
    let extra = alerts_to(&receiver);
    let mut replicas = two_replicas(&fixture, &config, &prometheus, &extra);

    // The first rollout hook gates the step 25 -> 50: hold its answer, and kill the leader
    // while it waits.
    receiver.hold_next_at("/load-test");
    fixture.bump("backend", "6.1.1");
    until(
        "the leader asks the rollout hook",
        Duration::from_secs(60),
        || !receiver.requests_at("/load-test").is_empty(),
    );
    let leader = holder(&api).expect("a holder");
    let (dead, standby) = if leader == "a" { (0, 1) } else { (1, 0) };
    let standby_name = replicas[standby].as_ref().unwrap().name.clone();
    let before_kill = written(&fixture);
    replicas[dead].take().unwrap().kill();
    receiver.release();
    let at_kill = fixture.state("backend").unwrap();
    assert_eq!(
        (at_kill.phase, at_kill.canary_weight.get()),
        (Phase::Progressing, 25),
        "{before_kill:#?}"
    );
    assert!(
        !before_kill
            .iter()
            .any(|(_, s)| s.starts_with("backend: advance canary weight 25 -> 50")),
        "the step the held hook gates was committed: {before_kill:#?}"
    );

    until("the standby promotes", Duration::from_secs(90), || {
        fixture
            .state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    });
    // What follows the last step is sent right after its push: wait for it, then for nothing
    // more (the standby goes on ticking, idle).
    until("the post-rollout hook", Duration::from_secs(20), || {
        !receiver.requests_at("/smoke").is_empty()
    });
    let all = written(&fixture);
    assert!(
        all[before_kill.len()..]
            .iter()
            .all(|(who, _)| *who == standby_name),
        "{all:#?}"
    );
    assert_one_release(&all);

    // The gating hooks: pre-rollout once (its step was committed before the kill); the
    // rollout hook once per analysed step (25 -> 50 and 50 -> promotion) plus the one
    // repeat, for the step that was not committed when its first asker died. The repeat
    // asks about the same revision in the same phase.
    assert_eq!(receiver.requests_at("/acceptance").len(), 1);
    let load = receiver.requests_at("/load-test");
    assert_eq!(load.len(), 3, "{load:#?}");
    assert_eq!(load[0].body, load[1].body);
    // What follows committed steps: once each.
    assert_eq!(receiver.requests_at("/smoke").len(), 1);
    let mut events: Vec<String> = receiver
        .requests_at("/events")
        .iter()
        .map(|r| {
            r.json()["metadata"]["eventMessage"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut backend_steps: Vec<String> = all
        .iter()
        .filter_map(|(_, s)| s.strip_prefix("backend: ").map(str::to_string))
        .collect();
    // The initialisation was one commit for both apps.
    assert_eq!(
        events.len(),
        backend_steps.len() + 1,
        "{events:#?}\n{all:#?}"
    );
    let initialised = events.remove(0);
    assert!(initialised.contains("initialization"), "{initialised}");
    events.sort();
    backend_steps.sort();
    // A commit's subject is its event, or the event's start.
    for (event, step) in events.iter().zip(&backend_steps) {
        assert!(event.starts_with(step.as_str()), "{event} vs {step}");
    }
    let prod = |app: &str, m: &str| (format!("prod/{app}"), m.to_string());
    let mut sent = alerts(&receiver);
    sent.sort();
    let mut want = vec![
        prod(
            "backend",
            "New Deployment detected, initialization completed.",
        ),
        prod(
            "frontend",
            "New Deployment detected, initialization completed.",
        ),
        prod(
            "backend",
            "New revision detected, progressing canary analysis.",
        ),
        prod(
            "backend",
            "Canary analysis completed successfully, promotion finished.",
        ),
    ];
    want.sort();
    assert_eq!(sent, want);
    drop(traffic);
}

/// A leader stopped (SIGTERM, as in a rolling update) while it sends the alert of a step it
/// has just pushed sends it before it exits, retries included: a takeover then loses nothing
/// either.
#[test]
fn a_leader_stopped_while_it_sends_a_steps_alert_sends_it_before_it_exits() {
    let receiver = Receiver::start();
    let fixture = Fixture::new();
    let api = KubeApi::start();
    let config = kubeconfig(&api, &fixture);
    let mut a = replica("a", &fixture, &config, None, "15s", &alerts_to(&receiver));
    until("the initialisation alerts", Duration::from_secs(60), || {
        alerts(&receiver).len() == 2
    });
    // The next alert's first attempt fails; weir retries it a second later.
    receiver.fail_next(1);
    fixture.bump("backend", "6.1.1");
    until("the first attempt", Duration::from_secs(30), || {
        alerts(&receiver).len() == 3
    });
    a.signal("-TERM");
    assert!(a.wait(Duration::from_secs(20)).success(), "{}", a.log());
    let sent = alerts(&receiver);
    assert_eq!(
        sent.len(),
        4,
        "the retry was not sent: {sent:#?}\n{}",
        a.log()
    );
    assert_eq!(sent[2], sent[3]);
    assert_eq!(
        sent[3].1,
        "New revision detected, progressing canary analysis."
    );
    // And the Lease was given up after it.
    let lease = lease(&api).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"].as_str().unwrap_or(""), "");
}

#[test]
fn a_leader_whose_lease_is_taken_stops_writing_and_a_stopped_leader_gives_it_up() {
    let fixture = Fixture::new();
    let api = KubeApi::start();
    let config = kubeconfig(&api, &fixture);
    let mut a = replica("a", &fixture, &config, None, "15s", &[]);
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
