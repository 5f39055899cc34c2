//! weir against a Git host that asks for credentials (smart HTTP with basic auth, served by
//! the real `git http-backend`): the right token fetches and pushes with the lease; a wrong
//! one is one permanent error that names the remote and says what to check, and is not
//! retried as if it were a race. The token never reaches the output.

use crate::support::git_http::GitHttp;
use crate::support::repo::Fixture;
use std::process::Command;
use weir::adapters::git::{Git2Repo, GitSettings};
use weir::core::secret::{SafeUrl, Secret};
use weir::engine::TickError;

const TOKEN: &str = "s3cr3t-t0ken";

fn settings(fixture: &Fixture, url: String, token: &str) -> GitSettings {
    GitSettings {
        url: SafeUrl::new(url),
        token: Some(Secret::new(token)),
        cache_dir: fixture.dir.path().join(format!("cache-{token}")),
        ..fixture.settings()
    }
}

#[tokio::test]
async fn the_right_token_pushes_and_a_wrong_one_is_a_permanent_error_with_a_hint() {
    let fixture = Fixture::new();
    let server = GitHttp::start(fixture.dir.path(), "x-access-token", TOKEN);
    let url = server.url("remote.git");

    let repo = Git2Repo::open(settings(&fixture, url.clone(), TOKEN)).unwrap();
    let mut engine = fixture.engine_with(None, Box::new(repo));
    let report = engine.tick().await.expect("the right token works");
    assert!(report.commit.is_some());
    assert_eq!(fixture.log().len(), 2, "initialised over HTTP");
    assert!(server
        .requests()
        .iter()
        .any(|r| r.starts_with("POST /remote.git/git-receive-pack 200")));

    let before = server.requests().len();
    let repo = Git2Repo::open(settings(&fixture, url.clone(), "wrong")).unwrap();
    let mut engine = fixture.engine_with(None, Box::new(repo));
    let err = engine.tick().await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let TickError::Repo(e) = &err else {
        panic!("{err:?}")
    };
    assert!(e.message.contains(&url), "{e}");
    assert!(e.message.contains("refused the credentials"), "{e}");
    assert!(e.message.contains("WEIR_GIT_TOKEN"), "{e}");
    // One attempt: the refused token is not sent again and again.
    let tried: Vec<String> = server.requests()[before..].to_vec();
    assert!(tried.iter().all(|r| r.ends_with(" 401")), "{tried:?}");
    assert!(tried.len() <= 3, "{tried:?}");
    assert_eq!(fixture.log().len(), 2);

    // The same from the command line: exit code 2, one error, no secret.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "step",
            "--repo",
            &url,
            "--git-token",
            "wrong-one",
            "--log",
            "warn",
        ])
        .arg("--cache")
        .arg(fixture.dir.path().join("cli-cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(!stderr.contains("wrong-one"), "{stderr}");
    // No credentials at all: the hint says to set one.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["step", "--repo", &url, "--log", "warn"])
        .env_remove("WEIR_GIT_TOKEN")
        .arg("--cache")
        .arg(fixture.dir.path().join("cli-cache-2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("asks for credentials"), "{stderr}");
}
