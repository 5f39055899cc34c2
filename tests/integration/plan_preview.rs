//! `weir plan` on a pull request: the head validated as `step` validates it, and for each app
//! the change touches, the rollout that follows (rehearsed by the planner), as the Markdown
//! the pull request comment and the job summary carry. Run as a GitHub Actions job runs it:
//! a real checkout, and the base commit read from a real `pull_request` event file.

use crate::support::github::{GitHubStandIn, TOKEN};
use crate::support::repo::{edit, git, Fixture, UPSTREAM_FIXTURE};
use std::path::Path;
use std::process::{Command, Output};
use weir::adapters::github::{GitHub, NewPullRequest};

fn plan(work: &Path, args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("plan")
        .arg("--dir")
        .arg(work)
        .args(args)
        .env_remove("GITHUB_EVENT_PATH")
        .env_remove("WEIR_BASE");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The upstream layout with a pull request on top: returns the fixture and the base sha.
fn pull_request(change: impl FnOnce(&Path)) -> (Fixture, String) {
    let fixture = Fixture::from_dir(Path::new(UPSTREAM_FIXTURE), |_| {});
    let base = git(&fixture.work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    git(&fixture.work, &["checkout", "-q", "-b", "release"]);
    change(&fixture.work);
    git(&fixture.work, &["commit", "-qam", "a pull request"]);
    (fixture, base)
}

/// The rows of the steps table that follows `heading` (up to the next heading).
fn steps_after<'a>(md: &'a str, heading: &str) -> Vec<&'a str> {
    let start = md
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in:\n{md}"));
    let section = &md[start..];
    let end = section[heading.len()..]
        .find("\n#### ")
        .map_or(section.len(), |i| i + heading.len());
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

#[test]
fn a_tag_bump_shows_the_release_steps_and_a_canary_edit_the_next_release() {
    let (fixture, base) = pull_request(|work| {
        edit(
            &work.join("apps/backend/kustomization.yaml"),
            0,
            "images[0].newTag",
            "6.1.1",
        );
        edit(
            &work.join("apps/frontend/canary.yaml"),
            0,
            "spec.analysis.iterations",
            "3",
        );
    });
    let out = plan(&fixture.work, &["--base", &base], &[]);
    let md = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{md}\n{}", text(&out.stderr));
    assert!(md.starts_with("<!-- weir plan -->\n"), "{md}");
    assert!(
        md.contains("Validation passes: 2 Canary, 2 MetricTemplate, 0 error(s), 2 warning(s)."),
        "{md}"
    );

    let backend = "#### `prod/backend`: release `ghcr.io/stefanprodan/podinfo:6.1.0` -> `ghcr.io/stefanprodan/podinfo:6.1.1`";
    let rows = steps_after(&md, backend);
    // new revision, 10 weights (5..50), promoting, finalising, succeeded; 15s apart.
    assert_eq!(rows.len(), 14, "{md}");
    assert!(rows[1].starts_with("| 2 | 15s | Progressing | 5 | advance canary weight 0 -> 5 |"));
    assert!(
        rows[10].starts_with("| 11 | 2m30s | Progressing | 50 |"),
        "{}",
        rows[10]
    );
    assert!(
        rows[11].starts_with("| 12 | 2m45s | Promoting | 50 |"),
        "{}",
        rows[11]
    );
    assert!(rows[13].starts_with("| 14 | 3m15s | Succeeded | 0 | promotion completed, primary now ghcr.io/stefanprodan/podinfo:6.1.1 |"), "{}", rows[13]);
    assert!(md.contains("| error-rate | <= 1 | 30s |"), "{md}");
    assert!(
        md.contains("Webhooks: pre-rollout `conformance-test`, rollout `load-test`."),
        "{md}"
    );
    assert!(md.contains("Expected duration: 3m15s"), "{md}");
    assert!(md.contains("applied: unknown"), "{md}");

    let frontend =
        "#### `prod/frontend`: Canary changed: no release now; the next release follows it";
    let rows = steps_after(&md, frontend);
    assert!(md.contains("A/B testing: matched requests go to the canary for 3 iterations; one step every 15s; rolled back after 10 failed checks."), "{md}");
    assert_eq!(rows.len(), 7, "{md}");
    assert!(
        rows[3].contains("| Progressing | 100 | advance canary iteration 3/3 |"),
        "{}",
        rows[3]
    );
}

#[test]
fn an_untouched_app_is_left_out_and_a_bad_spec_fails_with_its_line() {
    let (fixture, base) = pull_request(|work| {
        edit(
            &work.join("apps/backend/canary.yaml"),
            0,
            "spec.analysis.maxWeight",
            "150",
        );
    });
    let out = plan(&fixture.work, &["--base", &base], &[]);
    let md = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{md}\n{}", text(&out.stderr));
    assert!(md.contains("Validation fails:"), "{md}");
    let line = md
        .lines()
        .find(|l| l.contains("error: spec.analysis.maxWeight"))
        .unwrap_or_else(|| panic!("no maxWeight error in:\n{md}"));
    assert!(
        line.starts_with("apps/backend/canary.yaml:30:16: "),
        "{line}"
    );
    assert!(
        md.contains("Nothing moves for this app until `apps/backend/canary.yaml` is fixed"),
        "{md}"
    );
    assert!(!md.contains("prod/frontend"), "{md}");
}

#[test]
fn the_base_comes_from_the_pull_request_event_and_a_missing_one_is_named() {
    let (fixture, base) = pull_request(|work| {
        edit(
            &work.join("apps/frontend/kustomization.yaml"),
            0,
            "images[0].newTag",
            "6.2.0",
        );
    });
    // The event GitHub writes for a pull_request job (the fields weir reads, and more).
    let head = git(&fixture.work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    let event = serde_json::json!({
        "action": "synchronize",
        "number": 7,
        "pull_request": {
            "number": 7,
            "state": "open",
            "head": {"ref": "release", "sha": head},
            "base": {"ref": "main", "sha": base},
        },
        "repository": {"full_name": "acme/gitops-istio"},
    });
    let path = fixture.dir.path().join("event.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&event).unwrap()).unwrap();
    let out = plan(&fixture.work, &[], &[("GITHUB_EVENT_PATH", &path)]);
    let md = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{md}\n{}", text(&out.stderr));
    assert!(md.contains("#### `prod/frontend`: release `ghcr.io/stefanprodan/podinfo:6.1.0` -> `ghcr.io/stefanprodan/podinfo:6.2.0`"), "{md}");
    assert!(!md.contains("prod/backend"), "{md}");

    // Outside a pull_request job, without --base: one line saying what to give.
    let out = plan(&fixture.work, &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--base: give the commit to compare with"),
        "{}",
        text(&out.stderr)
    );
    // A base the checkout does not have (a shallow clone): named, with the way out.
    let out = plan(&fixture.work, &["--base", &"1".repeat(40)], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("fetch-depth: 0"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_comment_is_posted_once_and_updated_on_each_push() {
    let (fixture, base) = pull_request(|work| {
        edit(
            &work.join("apps/backend/kustomization.yaml"),
            0,
            "images[0].newTag",
            "6.1.1",
        );
    });
    let hub = GitHubStandIn::start("acme", "gitops-istio", &fixture.remote);
    // The pull request, opened as a person opens it.
    git(&fixture.work, &["push", "-q", "origin", "release"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in_runtime = runtime.enter();
    let github = hub.client();
    let pr = runtime
        .block_on(github.open_pull_request(&NewPullRequest {
            head: "release".into(),
            base: "main".into(),
            title: "backend 6.1.1".into(),
            body: String::new(),
        }))
        .unwrap();
    // Someone else's comment on the pull request stays as it is.
    hub.add_comment(pr.number, "octocat", "looks good");
    let event = serde_json::json!({
        "action": "synchronize",
        "number": pr.number,
        "pull_request": {"number": pr.number, "base": {"sha": base}},
    });
    let path = fixture.dir.path().join("event.json");
    std::fs::write(&path, serde_json::to_vec(&event).unwrap()).unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["plan", "--comment", "--dir"])
            .arg(&fixture.work)
            .env("GITHUB_EVENT_PATH", &path)
            .env("GITHUB_REPOSITORY", "acme/gitops-istio")
            .env("GITHUB_API_URL", hub.url())
            .env("WEIR_GITHUB_TOKEN", TOKEN)
            .env_remove("WEIR_BASE")
            .output()
            .unwrap()
    };
    let ours = |hub: &GitHubStandIn| -> Vec<String> {
        hub.comments(pr.number)
            .into_iter()
            .filter(|c| c.body.starts_with("<!-- weir plan -->"))
            .map(|c| c.body)
            .collect()
    };

    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = format!("commented on pull request #{}", pr.number);
    assert!(text(&out.stderr).contains(&said), "{}", text(&out.stderr));
    assert_eq!(ours(&hub), vec![text(&out.stdout)]);

    // A push to the pull request: the same comment now says the new plan.
    edit(
        &fixture.work.join("apps/frontend/kustomization.yaml"),
        0,
        "images[0].newTag",
        "6.1.1",
    );
    git(&fixture.work, &["commit", "-qam", "frontend too"]);
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("updated weir's comment on pull request #"));
    let comments = ours(&hub);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(comments[0].contains("#### `prod/frontend`: release"));
    assert_eq!(hub.comments(pr.number).len(), 2, "the other comment stays");

    // Run again with nothing new: nothing is sent.
    let out = run();
    assert!(
        text(&out.stderr).contains("says this already"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(ours(&hub).len(), 1);
    for o in [&out.stdout, &out.stderr] {
        assert!(!text(o).contains(TOKEN));
    }
}
