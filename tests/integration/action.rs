//! The GitHub Action (`action.yml`) run as a runner runs it: the `Run weir` step's script and
//! environment taken from the file, its `${{ }}` expressions evaluated over the inputs and the
//! job's contexts, `GITHUB_EVENT_PATH` naming a real `pull_request` event, and the outputs and
//! job summary read back from `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY`.

use crate::support::github::{GitHubStandIn, TOKEN};
use crate::support::repo::{edit, git, Fixture, UPSTREAM_FIXTURE};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ACTION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml");

/// The contexts an expression may read: `inputs.*` (defaults from action.yml, then the
/// workflow's `with:`), `github.*` and `runner.*`.
struct Contexts(BTreeMap<String, String>);

impl Contexts {
    fn new(action: &Value, with: &[(&str, &str)], job: &[(&str, &str)]) -> Contexts {
        let mut values = BTreeMap::new();
        for (name, input) in action["inputs"].as_mapping().unwrap() {
            let default = input["default"].as_str().unwrap_or("").to_string();
            values.insert(format!("inputs.{}", name.as_str().unwrap()), default);
        }
        for (k, v) in with {
            let key = format!("inputs.{k}");
            assert!(values.contains_key(&key), "action.yml has no input {k}");
            values.insert(key, v.to_string());
        }
        for (k, v) in job {
            values.insert(k.to_string(), v.to_string());
        }
        let mut contexts = Contexts(values);
        // Defaults may themselves be expressions (`${{ github.token }}`).
        let inputs: Vec<(String, String)> = contexts
            .0
            .iter()
            .filter(|(k, _)| k.starts_with("inputs."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in inputs {
            let evaluated = contexts.render(&v);
            contexts.0.insert(k, evaluated);
        }
        contexts
    }

    /// A string with `${{ expr }}` parts, as Actions renders it: `a || b`, `format(...)`,
    /// string literals and context lookups (missing ones are empty).
    fn render(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("closed expression") + start;
            out.push_str(&self.eval(rest[start + 3..end].trim()));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    fn eval(&self, expr: &str) -> String {
        if let Some((a, b)) = split_top(expr, "||") {
            let a = self.eval(a.trim());
            return if a.is_empty() { self.eval(b.trim()) } else { a };
        }
        if let Some(args) = expr
            .strip_prefix("format(")
            .and_then(|e| e.strip_suffix(')'))
        {
            let mut parts = Vec::new();
            let mut rest = args;
            while let Some((a, b)) = split_top(rest, ",") {
                parts.push(self.eval(a.trim()));
                rest = b;
            }
            parts.push(self.eval(rest.trim()));
            let mut s = parts[0].clone();
            for (i, p) in parts[1..].iter().enumerate() {
                s = s.replace(&format!("{{{i}}}"), p);
            }
            return s;
        }
        if let Some(lit) = expr.strip_prefix('\'').and_then(|e| e.strip_suffix('\'')) {
            return lit.to_string();
        }
        self.0.get(expr).cloned().unwrap_or_default()
    }
}

/// Splits at the first `sep` outside quotes and parentheses.
fn split_top<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let (mut depth, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            _ if !quoted && depth == 0 && s[i..].starts_with(sep) => {
                return Some((&s[..i], &s[i + sep.len()..]));
            }
            _ => {}
        }
    }
    None
}

/// What a run of the action left: exit code, step outputs, job summary, stdout, stderr.
struct Ran {
    code: Option<i32>,
    outputs: BTreeMap<String, String>,
    summary: String,
    stdout: String,
    stderr: String,
}

/// Runs the action's `Run weir` step with `with:` inputs in `workspace`, with the event.
fn run_action(workspace: &Path, with: &[(&str, &str)], event: &serde_json::Value) -> Ran {
    run_action_on(workspace, with, event, "https://api.github.invalid")
}

/// [`run_action`] with the runner's `GITHUB_API_URL` pointing at `api` (a GitHub stand-in).
fn run_action_on(
    workspace: &Path,
    with: &[(&str, &str)],
    event: &serde_json::Value,
    api: &str,
) -> Ran {
    run_action_in(workspace, with, event, api, &[])
}

/// [`run_action_on`] with more of the workflow's contexts (`secrets.*`).
fn run_action_in(
    workspace: &Path,
    with: &[(&str, &str)],
    event: &serde_json::Value,
    api: &str,
    contexts: &[(&str, &str)],
) -> Ran {
    let action: Value = serde_yaml::from_str(&std::fs::read_to_string(ACTION).unwrap()).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let event_path = temp.path().join("event.json");
    std::fs::write(&event_path, serde_json::to_vec(event).unwrap()).unwrap();
    let output = temp.path().join("output");
    let summary = temp.path().join("summary");
    let runner_temp = temp.path().join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let mut with: Vec<(&str, &str)> = with.to_vec();
    let weir = env!("CARGO_BIN_EXE_weir");
    with.push(("weir-path", weir));
    let job = [
        ("github.token", TOKEN),
        ("github.repository", "acme/gitops-istio"),
        ("github.server_url", "https://github.invalid"),
        ("github.action_ref", "v0"),
        ("github.event.repository.default_branch", "main"),
        ("runner.temp", runner_temp.to_str().unwrap()),
        ("runner.tool_cache", runner_temp.to_str().unwrap()),
    ];
    let ctx = Contexts::new(&action, &with, &[&job[..], contexts].concat());
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    let step = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("weir"))
        .expect("a step with id weir");
    assert_eq!(step["shell"].as_str(), Some("bash"));
    let mut cmd = Command::new("bash");
    cmd.arg("-e")
        .arg("-c")
        .arg(step["run"].as_str().unwrap())
        .current_dir(workspace)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", temp.path())
        .env("GITHUB_EVENT_PATH", &event_path)
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        // What every runner sets for every step.
        .env("GITHUB_REPOSITORY", "acme/gitops-istio")
        .env("GITHUB_API_URL", api);
    for (k, v) in step["env"].as_mapping().unwrap() {
        cmd.env(k.as_str().unwrap(), ctx.render(v.as_str().unwrap()));
    }
    let out = cmd.output().unwrap();
    let outputs = std::fs::read_to_string(&output)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ran {
        code: out.status.code(),
        outputs,
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

#[test]
fn plan_on_a_pull_request_writes_the_summary_and_outputs() {
    let fixture = Fixture::from_dir(Path::new(UPSTREAM_FIXTURE), |_| {});
    let base = git(&fixture.work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    edit(
        &fixture.work.join("apps/backend/kustomization.yaml"),
        0,
        "images[0].newTag",
        "6.1.1",
    );
    git(&fixture.work, &["commit", "-qam", "backend: 6.1.1"]);
    let head = git(&fixture.work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    let event = serde_json::json!({
        "action": "opened",
        "number": 3,
        "pull_request": {"number": 3, "head": {"sha": head}, "base": {"sha": base, "ref": "main"}},
        "repository": {"full_name": "acme/gitops-istio", "default_branch": "main"},
    });
    let ran = run_action(
        &fixture.work,
        &[("command", "plan"), ("comment", "false")],
        &event,
    );
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.summary.starts_with("<!-- weir plan -->"),
        "{}",
        ran.summary
    );
    assert!(
        ran.summary.contains("#### `prod/backend`: release"),
        "{}",
        ran.summary
    );
    assert_eq!(ran.outputs["errors"], "0");
    assert_eq!(ran.outputs["apps"], r#"["prod/backend"]"#);

    // An invalid spec fails the job with its line in the summary.
    edit(
        &fixture.work.join("apps/backend/canary.yaml"),
        0,
        "spec.analysis.stepWeight",
        "101",
    );
    git(&fixture.work, &["commit", "-qam", "too far"]);
    let ran = run_action(
        &fixture.work,
        &[("command", "plan"), ("comment", "false")],
        &event,
    );
    assert_eq!(ran.code, Some(1), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.summary
            .contains("apps/backend/canary.yaml:32:17: error: spec.analysis.stepWeight"),
        "{}",
        ran.summary
    );
    assert_eq!(ran.outputs["errors"], "1");
}

#[test]
fn step_pushes_with_the_token_and_reports_what_moved() {
    let fixture = Fixture::from_dir(Path::new(UPSTREAM_FIXTURE), |_| {});
    let event =
        serde_json::json!({"schedule": "*/5 * * * *", "repository": {"default_branch": "main"}});
    let ran = run_action(
        &fixture.work,
        &[("command", "step"), ("repo", &fixture.url())],
        &event,
    );
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(ran.outputs["apps-moved"], "2", "{:?}", ran.outputs);
    let phases: BTreeMap<String, String> = serde_json::from_str(&ran.outputs["phases"]).unwrap();
    assert_eq!(
        phases,
        BTreeMap::from([
            ("prod/backend".to_string(), "Initialized".to_string()),
            ("prod/frontend".to_string(), "Initialized".to_string()),
        ])
    );
    let (sha, subject) = fixture.log().last().unwrap().clone();
    assert_eq!(ran.outputs["commit"], sha);
    assert!(
        ran.summary
            .contains(&format!("Pushed `{}`: {subject}", &sha[..7])),
        "{}",
        ran.summary
    );
    assert!(
        ran.summary.contains("| prod/frontend | Initialized | 0 |"),
        "{}",
        ran.summary
    );
    // The token the action was given never shows.
    for text in [&ran.stdout, &ran.stderr, &ran.summary] {
        assert!(!text.contains(TOKEN), "{text}");
    }

    // An unknown command is refused with a workflow error annotation.
    let ran = run_action(&fixture.work, &[("command", "deploy")], &event);
    assert_eq!(ran.code, Some(2));
    assert!(ran
        .stdout
        .contains("::error::weir action: command must be step, plan or validate"));
}

#[test]
fn plan_comments_on_the_pull_request_with_the_job_token() {
    let fixture = Fixture::from_dir(Path::new(UPSTREAM_FIXTURE), |_| {});
    let hub = GitHubStandIn::start("acme", "gitops-istio", &fixture.remote);
    let base = git(&fixture.work, &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    git(&fixture.work, &["checkout", "-q", "-b", "release"]);
    edit(
        &fixture.work.join("apps/frontend/kustomization.yaml"),
        0,
        "images[0].newTag",
        "6.1.1",
    );
    git(&fixture.work, &["commit", "-qam", "frontend: 6.1.1"]);
    git(&fixture.work, &["push", "-q", "origin", "release"]);
    // The pull request, as GitHub holds it, and the event GitHub writes for the job.
    let number = hub.open_pull("release", "main", "frontend 6.1.1");
    let event = serde_json::json!({
        "action": "opened",
        "number": number,
        "pull_request": {"number": number, "base": {"sha": base, "ref": "main"}},
    });
    for _push in 0..2 {
        let ran = run_action_on(&fixture.work, &[("command", "plan")], &event, &hub.url());
        assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
        for text in [&ran.stdout, &ran.stderr, &ran.summary] {
            assert!(!text.contains(TOKEN), "{text}");
        }
    }
    let comments = hub.comments(number);
    assert_eq!(
        comments.len(),
        1,
        "one comment, however many runs: {comments:#?}"
    );
    assert!(comments[0].body.contains("#### `prod/frontend`: release"));
    assert!(
        hub.requests().iter().all(|r| r.authorized),
        "every call carried the job's token"
    );
}

/// The workflows in the README, as YAML, each with the `with:` of its step that uses weir's
/// action and the permissions it grants.
fn readme_workflows() -> Vec<(Value, BTreeMap<String, String>)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut found = Vec::new();
    for block in readme.split("```yaml\n").skip(1) {
        let text = block.split("```").next().unwrap();
        if !text.contains("uses: acme/weir@") {
            continue;
        }
        let workflow: Value = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for job in workflow["jobs"].as_mapping().unwrap().values() {
            for step in job["steps"].as_sequence().unwrap() {
                let uses = step["uses"].as_str().unwrap_or_default();
                if !uses.starts_with("acme/weir@") {
                    continue;
                }
                let with = step["with"]
                    .as_mapping()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s.clone(),
                            other => serde_yaml::to_string(other).unwrap().trim().to_string(),
                        };
                        (k.as_str().unwrap().to_string(), v)
                    })
                    .collect();
                found.push((workflow.clone(), with));
            }
        }
    }
    found
}

/// Every workflow the README prints uses only inputs the action declares, with values it
/// accepts, and grants the permissions what it asks needs.
#[test]
fn the_readme_workflows_ask_only_what_the_action_declares() {
    let action: Value = serde_yaml::from_str(&std::fs::read_to_string(ACTION).unwrap()).unwrap();
    let inputs = action["inputs"].as_mapping().unwrap();
    let workflows = readme_workflows();
    let commands: Vec<&str> = workflows
        .iter()
        .map(|(_, with)| with.get("command").map(String::as_str).unwrap_or("step"))
        .collect();
    assert_eq!(
        commands,
        ["step", "step", "plan"],
        "the README's three workflows"
    );
    for (workflow, with) in &workflows {
        for key in with.keys() {
            assert!(
                inputs.contains_key(key.as_str()),
                "README uses input {key}, which action.yml does not declare"
            );
        }
        let permission = |scope: &str| workflow["permissions"][scope].as_str().unwrap_or("none");
        let input = |k: &str| {
            with.get(k)
                .cloned()
                .or_else(|| inputs[k]["default"].as_str().map(str::to_string))
                .unwrap_or_default()
        };
        match input("command").as_str() {
            "step" => assert_eq!(permission("contents"), "write"),
            "plan" => {
                if input("comment") == "true" {
                    assert_eq!(permission("pull-requests"), "write");
                }
                // plan compares the pull request's base with its head: both must be there.
                let steps = workflow["jobs"]["plan"]["steps"].as_sequence().unwrap();
                assert!(steps.iter().any(|s| {
                    s["uses"]
                        .as_str()
                        .is_some_and(|u| u.starts_with("actions/checkout@"))
                        && s["with"]["fetch-depth"].as_u64() == Some(0)
                }));
            }
            other => panic!("command {other}"),
        }
        if input("mode") == "pr" {
            assert_eq!(permission("pull-requests"), "write");
            let review = input("pr-review");
            let parsed: Result<Vec<weir::core::spec::Phase>, _> = review
                .split(',')
                .map(|p| serde_yaml::from_str(p.trim()))
                .collect();
            assert!(review == "none" || parsed.is_ok(), "pr-review {review}");
        }
        if input("github-statuses") == "true" {
            assert_eq!(permission("statuses"), "write");
            assert_eq!(permission("deployments"), "write");
        }
    }
}

/// The README's PR-mode workflow, as printed, given its secrets and this repository: the first
/// run initialises every app through one pull request each, which weir merges.
#[test]
fn the_readme_pr_mode_workflow_runs_as_printed() {
    let (_, with) = readme_workflows()
        .into_iter()
        .find(|(_, with)| with.get("mode").map(String::as_str) == Some("pr"))
        .expect("a PR-mode workflow in the README");
    let fixture = Fixture::from_dir(Path::new(UPSTREAM_FIXTURE), |_| {});
    let hub = GitHubStandIn::start("acme", "gitops-istio", &fixture.remote);
    let url = fixture.url();
    // The runner's default (this repository on github.com) cannot be reached here.
    let mut inputs: Vec<(&str, &str)> =
        with.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    inputs.push(("repo", &url));
    let event =
        serde_json::json!({"schedule": "*/5 * * * *", "repository": {"default_branch": "main"}});
    let ran = run_action_in(
        &fixture.work,
        &inputs,
        &event,
        &hub.url(),
        &[
            ("secrets.WEIR_TOKEN", TOKEN),
            ("secrets.PROMETHEUS_TOKEN", "prom-secret"),
        ],
    );
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    let pulls = hub.pulls();
    let mut heads: Vec<&str> = pulls
        .iter()
        .filter(|p| p.merged)
        .map(|p| p.head.as_str())
        .collect();
    heads.sort();
    assert_eq!(
        heads,
        ["weir/prod/backend", "weir/prod/frontend"],
        "{pulls:#?}"
    );
    assert!(fixture.state("backend").is_some() && fixture.state("frontend").is_some());
    let phases: BTreeMap<String, String> = serde_json::from_str(&ran.outputs["phases"]).unwrap();
    assert_eq!(
        phases.get("prod/backend").map(String::as_str),
        Some("Initialized")
    );
    for text in [&ran.stdout, &ran.stderr, &ran.summary] {
        assert!(
            !text.contains(TOKEN) && !text.contains("prom-secret"),
            "{text}"
        );
    }
}
