//! One `weir run` serving several repositories (`--repos FILE`): each repository has its own
//! loop and its own Lease, so two processes split them (one leads a repository and stands by
//! for the other), killing one hands over only what it led, a repository whose remote hangs
//! holds up none of the others, and a file that cannot be used stops the start with one
//! error naming its file, line and field.

use crate::support::kube_api::{KubeApi, TOKEN};
use crate::support::replica::{elected_args, Replica};
use crate::support::repo::Fixture;
use crate::support::wait::until;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir::core::lease::default_name;

const NAMESPACE: &str = "weir";

/// The subjects written by replica `who` (its prefix), in order.
fn by(fixture: &Fixture, who: &str) -> Vec<String> {
    let prefix = format!("[{who}] ");
    fixture
        .log()
        .into_iter()
        .filter_map(|(_, s)| s.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// Waits until replica `who` started a release of the backend in `fixture`'s repository.
fn until_new_revision_by(fixture: &Fixture, who: &str, what: &str) {
    until(what, Duration::from_secs(30), || {
        by(fixture, who)
            .iter()
            .any(|s| s.starts_with("backend: new revision"))
    });
}

/// Every subject weir wrote (prefixed by its replica), in order.
fn weirs(fixture: &Fixture) -> Vec<String> {
    fixture
        .log()
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| s.starts_with('['))
        .collect()
}

fn lease(api: &KubeApi, name: &str) -> Value {
    api.get("coordination.k8s.io/v1", "Lease", NAMESPACE, name)
        .unwrap_or_else(|| panic!("no Lease {name}"))
}

/// A Lease held by `holder` now, as a replica that just renewed it leaves it.
fn held_by(name: &str, holder: &str) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "holderIdentity": holder,
            "renewTime": now,
            "acquireTime": now,
            "leaseDurationSeconds": 15,
            "leaseTransitions": 0,
        },
    })
}

/// A `weir run --repos FILE --leader-elect` replica, serving its HTTP on `port`.
fn replica(name: &str, dir: &Path, repos: &Path, kubeconfig: &Path, port: u16) -> Replica {
    let mut args = elected_args(name, dir, kubeconfig, "3s");
    args.extend(["--listen".into(), format!("127.0.0.1:{port}").into()]);
    args.extend([OsString::from("--repos"), repos.into()]);
    Replica::run(name, dir, args)
}

/// GET `path` of a replica's HTTP server: status and text (`None` while it does not answer).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    weir::adapters::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let answer = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let status = answer.status().as_u16();
        Some((status, answer.text().await.ok()?))
    })
}

/// `weir_leader` of repository `url` on branch main, as a replica exports it.
fn leads(port: u16, url: &str) -> Option<bool> {
    let (_, text) = get(port, "/metrics")?;
    let series = format!("weir_leader{{repo=\"{url}\",branch=\"main\"}} ");
    let line = text.lines().find(|l| l.starts_with(&series))?;
    Some(line.ends_with(" 1"))
}

#[test]
fn two_processes_split_two_repositories_and_a_killed_one_hands_over_only_what_it_led() {
    let (one, two) = (Fixture::new(), Fixture::new());
    let dir = one.dir.path();
    let api = KubeApi::start();
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, NAMESPACE, Some(TOKEN));
    // The first repository names its Lease; the second takes the default, from its URL.
    let repos = dir.join("repos.yaml");
    std::fs::write(
        &repos,
        format!(
            "# two repositories, each with its own Lease\n- repo: {}\n  lease-name: weir-one\n- repo: {}\n  roots: [apps, istio]\n",
            one.url(),
            two.url()
        ),
    )
    .unwrap();
    let (lease_one, lease_two) = ("weir-one".to_string(), default_name(&two.url(), "main"));
    // Which replica wins a free Lease is a race; held Leases make the split certain: a
    // renews the first (it is its holder), b the second, and neither may take the other's.
    api.put(held_by(&lease_one, "a"));
    api.put(held_by(&lease_two, "b"));
    let (port_a, port_b) = (
        crate::support::free_port("127.0.0.1"),
        crate::support::free_port("127.0.0.1"),
    );
    let mut a = replica("a", dir, &repos, &kubeconfig, port_a);
    let b = replica("b", dir, &repos, &kubeconfig, port_b);

    let initialised = crate::support::wait::poll(Duration::from_secs(60), || {
        (one.state("backend").is_some() && two.state("backend").is_some()).then_some(())
    });
    assert!(
        initialised.is_some(),
        "not initialised:\na:\n{}\nb:\n{}",
        a.log(),
        b.log()
    );
    // Each repository stepped by its leader only; each process leads one and stands by for
    // the other, and says so per repository; both are ready.
    two.bump("backend", "6.1.1");
    until_new_revision_by(&two, "b", "b steps the second repository");
    let logs = || format!("a:\n{}\nb:\n{}", a.log(), b.log());
    assert_eq!(weirs(&one).len(), by(&one, "a").len(), "{}", logs());
    assert_eq!(weirs(&two).len(), by(&two, "b").len(), "{}", logs());
    until(
        "each replica's leader series",
        Duration::from_secs(10),
        || {
            leads(port_a, &one.url()) == Some(true)
                && leads(port_a, &two.url()) == Some(false)
                && leads(port_b, &one.url()) == Some(false)
                && leads(port_b, &two.url()) == Some(true)
        },
    );
    for port in [port_a, port_b] {
        assert_eq!(get(port, "/readyz").map(|r| r.0), Some(200));
    }
    let (one_before, two_before) = (lease(&api, &lease_one), lease(&api, &lease_two));
    assert_eq!(one_before["spec"]["holderIdentity"], "a");
    assert_eq!(two_before["spec"]["holderIdentity"], "b");

    // a dies without giving anything up: b takes the first repository once its Lease
    // expires, and keeps the second as it was.
    let written_by_a = by(&one, "a").len();
    a.kill();
    one.bump("backend", "6.1.1");
    until_new_revision_by(&one, "b", "b steps the first repository");
    let one_after = lease(&api, &lease_one);
    assert_eq!(one_after["spec"]["holderIdentity"], "b", "{one_after:#}");
    assert_eq!(
        one_after["spec"]["leaseTransitions"].as_i64(),
        one_before["spec"]["leaseTransitions"]
            .as_i64()
            .map(|t| t + 1),
        "{one_after:#}"
    );
    let two_after = lease(&api, &lease_two);
    assert_eq!(two_after["spec"]["holderIdentity"], "b");
    for field in ["acquireTime", "leaseTransitions"] {
        assert_eq!(
            two_after["spec"][field], two_before["spec"][field],
            "the second repository changed hands: {two_after:#}"
        );
    }
    // After the kill, only b wrote the first repository; a wrote nothing more.
    assert_eq!(by(&one, "a").len(), written_by_a, "{}", b.log());
    until("b leads both", Duration::from_secs(10), || {
        leads(port_b, &one.url()) == Some(true) && leads(port_b, &two.url()) == Some(true)
    });
    // Logs and Lease names never carry more than the URL without credentials.
    assert!(b.log().contains(&format!("Lease {NAMESPACE}/{lease_one}")));
}

/// A hanging Git remote: accepts connections and never answers.
struct Hanging {
    port: u16,
    _listener: std::thread::JoinHandle<()>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        Hanging {
            port,
            _listener: thread,
        }
    }
}

#[test]
fn a_repository_whose_remote_hangs_holds_up_no_other() {
    let good = Fixture::new();
    let dir = good.dir.path();
    let hanging: Vec<Hanging> = (0..3).map(|_| Hanging::start()).collect();
    let mut file = String::new();
    for h in &hanging {
        file.push_str(&format!("- repo: git://127.0.0.1:{}/fleet.git\n", h.port));
    }
    file.push_str(&format!("- repo: {}\n", good.url()));
    let repos = dir.join("repos.yaml");
    std::fs::write(&repos, file).unwrap();
    let port = crate::support::free_port("127.0.0.1");
    let args: Vec<OsString> = vec![
        "--repos".into(),
        repos.into(),
        "--every".into(),
        "300ms".into(),
        "--min-interval".into(),
        "1s".into(),
        "--git-timeout".into(),
        "60s".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}").into(),
        "--cache".into(),
        Replica::cache(dir, "a").into(),
    ];
    let weir = Replica::run("a", dir, args);
    // The three hanging fetches would fill two runtime workers for a minute.
    let initialised = crate::support::wait::poll(Duration::from_secs(30), || {
        good.state("backend").is_some().then_some(())
    });
    assert!(initialised.is_some(), "not initialised:\n{}", weir.log());
    assert_eq!(
        get(port, "/healthz").map(|r| r.0),
        Some(200),
        "{}",
        weir.log()
    );
}

/// A `--repos` file that cannot be used: `weir run` exits 2 at once with one error naming
/// the file, the line and the field, before touching any repository, and shows no token.
#[test]
fn a_bad_repos_file_stops_the_start_with_its_line_and_field() {
    let fixture = Fixture::new();
    let dir = fixture.dir.path();
    let write = |name: &str, text: String| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let token = "ghp_s3cr3t_t0ken";
    let cases = [
        (
            write(
                "typo.yaml",
                format!("- repo: {}\n- repo: /srv/two.git\n  branh: prod\n", fixture.url()),
            ),
            "typo.yaml:3:3: error: [1].branh: unknown field `branh`",
        ),
        (
            write(
                "twice.yaml",
                format!(
                    "- repo: {}\n- repo: https://github.com/acme/fleet.git\n- repo: https://x-access-token:{token}@github.com/acme/fleet\n  # the same repository and branch, with a token\n",
                    fixture.url()
                ),
            ),
            "twice.yaml:3:9: error: [2].repo: https://github.com/acme/fleet branch main is already entry [1] (line 2)",
        ),
        (
            write("empty.yaml", "# no repository yet\n".into()),
            "empty.yaml:1:1: error: .: no repository",
        ),
    ];
    for (file, want) in cases {
        let mut weir = Replica::run("bad", dir, [OsString::from("--repos"), file.clone().into()]);
        let status = weir.wait(Duration::from_secs(20));
        assert_eq!(status.code(), Some(2), "{}", weir.log());
        let log = weir.log();
        assert!(log.contains(want), "{want}\nnot in\n{log}");
        assert!(log.contains(&file.display().to_string()), "{log}");
        assert!(!log.contains(token), "{log}");
    }
    assert_eq!(fixture.log().len(), 1, "weir wrote: {:#?}", fixture.log());
}
