//! SSH remotes, as Flux users have them: a deploy key and known_hosts in a Secret laid out as
//! Flux's (`identity`, `identity.pub`, `known_hosts`), against a real OpenSSH server. Host
//! keys are always checked: an unknown or changed server key is refused before any credential
//! is sent, and a key the server does not accept is one clear, permanent error.

use crate::support::repo::{git, Fixture};
use crate::support::sshd::Sshd;
use std::path::Path;
use std::process::Command;
use weir::adapters::git::{Git2Repo, GitSettings};
use weir::adapters::ssh::SshSettings;
use weir::core::secret::SafeUrl;

fn ssh_settings(fixture: &Fixture, url: String, secret: &Path) -> GitSettings {
    GitSettings {
        url: SafeUrl::new(url),
        ssh: Some(SshSettings::from_secret_dir(secret).unwrap()),
        cache_dir: fixture.dir.path().join("ssh-cache"),
        ..fixture.settings()
    }
}

/// Another key pair's public half, as a known_hosts line would hold it.
fn other_key(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    let mut f = public.split_whitespace();
    format!("{} {}", f.next().unwrap(), f.next().unwrap())
}

#[test]
fn weir_step_fetches_and_pushes_over_ssh_with_fluxs_secret_layout() {
    let fixture = Fixture::new();
    let sshd = Sshd::start(fixture.dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["step", "--min-interval", "1s", "--repo"])
        .arg(sshd.url(&fixture.remote))
        .arg("--git-ssh-dir")
        .arg(&sshd.secret)
        .arg("--cache")
        .arg(fixture.dir.path().join("cli-cache"))
        .env_remove("WEIR_PROMETHEUS")
        .env_remove("WEIR_GIT_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\nsshd: {}", sshd.log());
    assert_eq!(fixture.log().len(), 2, "initialised over SSH");
    assert!(sshd.log().contains("Accepted publickey"), "{}", sshd.log());
    let key = std::fs::read_to_string(sshd.secret.join("identity")).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(!stderr.contains(key_line), "the key reached the output");
}

#[tokio::test]
async fn an_scp_like_remote_works_too() {
    let fixture = Fixture::new();
    // scp-like URLs name no port: the server listens on port 22 of a loopback address of
    // its own, so that nothing else on the machine is in the way.
    let sshd = (2..250u8)
        .find_map(|n| {
            let host = format!("127.0.{n}.22");
            std::net::TcpListener::bind((host.as_str(), 22))
                .ok()
                .map(|probe| (host, probe))
        })
        .map(|(host, probe)| {
            drop(probe);
            Sshd::start_at(fixture.dir.path(), &host, 22)
        })
        .expect("a free loopback address for port 22");
    let url = format!("{}@{}:{}", sshd.user, sshd.host, fixture.remote.display());
    let repo = Git2Repo::open(ssh_settings(&fixture, url, &sshd.secret)).unwrap();
    let report = fixture
        .engine_with(None, Box::new(repo))
        .tick()
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd: {}", sshd.log()));
    assert!(report.commit.is_some());
    assert_eq!(fixture.log().len(), 2);
}

#[tokio::test]
async fn a_server_whose_key_is_not_in_known_hosts_is_refused_before_any_credential() {
    let fixture = Fixture::new();
    let sshd = Sshd::start(fixture.dir.path());
    let known = sshd.secret.join("known_hosts");
    let url = sshd.url(&fixture.remote);
    let listed = format!("[{}]:{}", sshd.host, sshd.port);
    let cases = [
        // Another key for this server: changed, or something in between.
        (
            format!("{listed} {}\n", other_key(fixture.dir.path(), "changed")),
            "does not match known_hosts",
        ),
        // The server is not listed at all.
        (
            format!(
                "[127.0.0.1]:1 {}\n",
                other_key(fixture.dir.path(), "unlisted")
            ),
            "is not in known_hosts",
        ),
    ];
    for (hosts, says) in cases {
        std::fs::write(&known, hosts).unwrap();
        let repo = Git2Repo::open(ssh_settings(&fixture, url.clone(), &sshd.secret)).unwrap();
        let err = fixture
            .engine_with(None, Box::new(repo))
            .tick()
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
        assert_eq!(fixture.log().len(), 1, "nothing was written");
    }
    assert!(
        !sshd.log().contains("Accepted publickey"),
        "a credential was sent to an untrusted server: {}",
        sshd.log()
    );
}

#[tokio::test]
async fn a_key_the_server_does_not_accept_is_one_permanent_error_with_a_hint() {
    let fixture = Fixture::new();
    let sshd = Sshd::start(fixture.dir.path());
    // A fresh key pair the server never saw.
    let identity = sshd.secret.join("identity");
    std::fs::remove_file(&identity).unwrap();
    std::fs::remove_file(identity.with_extension("pub")).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&identity)
        .output()
        .unwrap();
    assert!(out.status.success());
    let repo = Git2Repo::open(ssh_settings(
        &fixture,
        sshd.url(&fixture.remote),
        &sshd.secret,
    ))
    .unwrap();
    let err = fixture
        .engine_with(None, Box::new(repo))
        .tick()
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err}");
    assert!(err.to_string().contains("refused the SSH key"), "{err}");
    assert!(err.to_string().contains("--git-ssh-dir"), "{err}");
    assert_eq!(
        git(&fixture.remote, &["rev-list", "--count", "main"]).trim(),
        "1"
    );
}

#[test]
fn an_ssh_remote_without_a_key_or_known_hosts_is_refused_with_what_to_set() {
    let fixture = Fixture::new();
    let err = Git2Repo::open(GitSettings {
        url: SafeUrl::new("git@github.com:acme/config.git"),
        ..fixture.settings()
    })
    .err()
    .expect("refused");
    assert!(err.message.contains("--git-ssh-dir"), "{err}");
    let empty = fixture.dir.path().join("empty-secret");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("identity"), "key").unwrap();
    std::fs::write(empty.join("known_hosts"), "# nothing\n").unwrap();
    let err = SshSettings::from_secret_dir(&empty).unwrap_err();
    assert!(err.to_string().contains("no host key"), "{err}");
}
