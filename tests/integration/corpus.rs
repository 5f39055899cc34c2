//! A corpus of broken and hostile inputs, each run the way a user runs weir: `weir validate`
//! on a checkout, then `weir step` on the remote, with secrets in the environment. For every
//! case: no panic; the documented exit code (1: ran, found problems); one error naming file,
//! line, column and field, the same from `validate` and from `step`; nothing committed for
//! the broken app (the frontend); the healthy app (the backend) moving in the same tick; and
//! no secret in any output or anywhere in the remote's history.

use crate::support::repo::{git, Fixture};
use crate::support::wait::poll;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Secrets weir is given in every run; none may come out.
const SECRETS: [(&str, &str); 3] = [
    ("WEIR_GIT_TOKEN", "corpus-git-t0ken"),
    ("WEIR_PROMETHEUS_TOKEN", "corpus-prom-t0ken"),
    ("WEIR_PROMETHEUS_PASSWORD", "corpus-prom-passw0rd"),
];

/// One hostile or broken input.
pub struct Case {
    /// What it is.
    pub name: &'static str,
    /// Changes the work tree (the frontend is the app it breaks).
    pub apply: fn(&Path),
    /// The error line, from its start: `file:line:col: error: field: ` and the message start.
    pub error: &'static str,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Runs weir with the secrets in its environment; kills it if it has not ended in a minute
/// (a hang is a failure, reported as such).
fn weir(args: &[&str], cwd: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args)
        .current_dir(cwd)
        .env("WEIR_PROMETHEUS_USER", "corpus")
        .env_remove("WEIR_PROMETHEUS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in SECRETS {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let ended = poll(Duration::from_secs(60), || child.try_wait().unwrap());
    if ended.is_none() {
        let _ = child.kill();
        panic!("weir {args:?} did not end within a minute");
    }
    child.wait_with_output().unwrap()
}

fn assert_no_secret(what: &str, text: &str) {
    for (_, secret) in SECRETS {
        assert!(!text.contains(secret), "{what} shows a secret:\n{text}");
    }
}

/// Runs one case on a fresh fixture whose frontend is broken by `apply`.
pub fn run(case: &Case, record: bool) {
    run_broken(case, record, "frontend", "backend");
}

/// Runs one case that breaks `broken` while `healthy` must move.
pub fn run_broken(case: &Case, record: bool, broken: &str, healthy: &str) {
    let fixture = Fixture::new();
    let cache = fixture.dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let url = fixture.url();
    let base = [
        "--repo",
        url.as_str(),
        "--cache",
        cache,
        "--min-interval",
        "1s",
    ];
    if record {
        // The frontend's record is what breaks: initialise first, then break it, and give the
        // backend something to do in the same tick.
        let out = weir(&[&["step"][..], &base[..]].concat(), fixture.dir.path());
        assert!(
            out.status.success(),
            "{}: init: {}",
            case.name,
            text(&out.stderr)
        );
        git(&fixture.work, &["pull", "-q", "origin", "main"]);
        crate::support::repo::edit(
            &fixture
                .work
                .join(format!("apps/{healthy}/kustomization.yaml")),
            0,
            "images[0].newTag",
            "6.1.1",
        );
    }
    (case.apply)(&fixture.work);
    git(&fixture.work, &["add", "-A"]);
    git(&fixture.work, &["commit", "-qm", case.name]);
    git(&fixture.work, &["push", "-q", "origin", "main"]);
    let before = fixture.show("main", &format!("apps/{broken}.weir/state.yaml"));

    let validate = weir(
        &[
            "validate",
            "--dir",
            fixture.work.to_str().unwrap(),
            "--min-interval",
            "1s",
        ],
        fixture.dir.path(),
    );
    let step = weir(&[&["step"][..], &base[..]].concat(), fixture.dir.path());
    let status = weir(
        &[&["status", "--output", "json"][..], &base[..]].concat(),
        fixture.dir.path(),
    );
    // Rows on stdout; errors of files that belong to no app on stderr.
    let st_out = format!("{}{}", text(&status.stdout), text(&status.stderr));
    let (v_out, s_out, s_err) = (
        text(&validate.stdout),
        text(&step.stdout),
        text(&step.stderr),
    );
    if std::env::var_os("CORPUS_REPORT").is_some() {
        eprintln!(
            "CASE {}\n  validate {:?}: {}\n  step {:?}: {}",
            case.name,
            validate.status.code(),
            v_out.lines().next().unwrap_or(""),
            step.status.code(),
            s_err.lines().next().unwrap_or("")
        );
        return;
    }
    for (what, t) in [
        ("validate", &v_out),
        ("step stdout", &s_out),
        ("step stderr", &s_err),
        ("status", &st_out),
    ] {
        assert!(
            !t.contains("panicked"),
            "{}: {what} panicked:\n{t}",
            case.name
        );
        assert_no_secret(&format!("{}: {what}", case.name), t);
    }
    assert_eq!(
        validate.status.code(),
        Some(1),
        "{}: validate exit code\n{v_out}",
        case.name
    );
    assert_eq!(
        step.status.code(),
        Some(1),
        "{}: step exit code\n{s_out}{s_err}",
        case.name
    );
    assert!(
        v_out.lines().any(|l| l.starts_with(case.error)),
        "{}: validate does not say `{}`:\n{v_out}",
        case.name,
        case.error
    );
    assert!(
        s_err.lines().any(|l| l.contains(case.error)),
        "{}: step does not say `{}`:\n{s_err}",
        case.name,
        case.error
    );
    // `status` lists the broken app with the same error, and says something is wrong.
    assert_eq!(
        status.status.code(),
        Some(1),
        "{}: status exit code\n{st_out}",
        case.name
    );
    assert!(
        st_out.contains(&case.error.replace('"', "\\\"")),
        "{}: status does not say `{}`:\n{st_out}",
        case.name,
        case.error
    );
    // The healthy app moved in this tick; the broken one got nothing.
    assert!(
        s_out.starts_with("pushed "),
        "{}: nothing pushed:\n{s_out}{s_err}",
        case.name
    );
    let subject = fixture.log().last().unwrap().1.clone();
    assert!(
        subject.starts_with(&format!("{healthy}: ")),
        "{}: {subject}",
        case.name
    );
    assert_eq!(
        fixture.show("main", &format!("apps/{broken}.weir/state.yaml")),
        before,
        "{}: the broken app's record changed",
        case.name
    );
    let history = Command::new("git")
        .arg("--git-dir")
        .arg(&fixture.remote)
        .args(["log", "-p", "--all"])
        .output()
        .unwrap();
    assert_no_secret(
        &format!("{}: the remote's history", case.name),
        &text(&history.stdout),
    );
}

/// Writes a file of the work tree.
pub fn write(work: &Path, path: &str, text: &str) {
    let p = work.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Replaces text in a file of the work tree (the text must be there).
pub fn replace(work: &Path, path: &str, from: &str, to: &str) {
    let p = work.join(path);
    let old = std::fs::read_to_string(&p).unwrap();
    assert!(old.contains(from), "{path} has no `{from}`");
    std::fs::write(p, old.replacen(from, to, 1)).unwrap();
}

const CANARY: &str = "apps/frontend/canary.yaml";
const KUST: &str = "apps/frontend/kustomization.yaml";
const RECORD: &str = "apps/frontend.weir/state.yaml";

macro_rules! cases {
    ($($name:literal, $error:literal, |$w:ident| $body:block;)*) => {
        vec![$(Case { name: $name, apply: |$w: &Path| $body, error: $error }),*]
    };
}

/// Broken Canary files: wrong types, values out of range, unknown fields, broken YAML.
pub fn spec_cases() -> Vec<Case> {
    cases![
        "a PR review phase that is no phase", "apps/frontend/canary.yaml:7:25: error: metadata.annotations.weir.dev/pr-review: `Promoted` is not a phase", |w| { replace(w, CANARY, "  namespace: prod\n", "  namespace: prod\n  annotations:\n    weir.dev/pr-review: Progressing,Promoted\n"); };
        "threshold is a word", "apps/frontend/canary.yaml:23:16: error: spec.analysis.threshold: invalid type", |w| { replace(w, CANARY, "threshold: 5", "threshold: five"); };
        "stepWeights is a map", "apps/frontend/canary.yaml:24:18: error: spec.analysis.stepWeights: invalid type: map, expected a se", |w| { replace(w, CANARY, "stepWeights: [5, 10, 25, 50]", "stepWeights: {a: 1}"); };
        "port is a name", "apps/frontend/canary.yaml:16:11: error: spec.service.port: invalid type: string \"http\", exp", |w| { replace(w, CANARY, "port: 9899", "port: http"); };
        "port out of range", "apps/frontend/canary.yaml:16:11: error: spec.service.port: 70000 is not a port; use 1..=655", |w| { replace(w, CANARY, "port: 9899", "port: 70000"); };
        "stepWeights not increasing", "apps/frontend/canary.yaml:24:30: error: spec.analysis.stepWeights[3]: 20 does not increase; stepWeight", |w| { replace(w, CANARY, "[5, 10, 25, 50]", "[5, 10, 25, 20]"); };
        "a step weight over 100", "apps/frontend/canary.yaml:24:30: error: spec.analysis.stepWeights[3]: 150 is not a weight", |w| { replace(w, CANARY, "[5, 10, 25, 50]", "[5, 10, 25, 150]"); };
        "unknown field", "apps/frontend/canary.yaml:24:5: error: spec.analysis.stepWieghts: unknown field `stepWieghts`, exp", |w| { replace(w, CANARY, "stepWeights:", "stepWieghts:"); };
        "unknown top field", "apps/frontend/canary.yaml:15:3: error: spec.serviec: unknown field `serviec`, expecte", |w| { replace(w, CANARY, "  service:\n", "  serviec:\n"); };
        "a duplicate key", "apps/frontend/canary.yaml:24:5: error: spec.analysis.threshold: `threshold` is written twice in this mapping", |w| { replace(w, CANARY, "    stepWeights:", "    threshold: 3\n    stepWeights:"); };
        "unclosed bracket", "apps/frontend/canary.yaml:25:12: error: (syntax): broken YAML: illegal placement o", |w| { replace(w, CANARY, "[5, 10, 25, 50]", "[5, 10, 25, 50"); };
        "a tab for indentation", "apps/frontend/canary.yaml:22:2: error: (syntax): broken YAML: tabs disallowed wit", |w| { replace(w, CANARY, "    interval: 15s", "\tinterval: 15s"); };
        "not UTF-8", "apps/frontend/canary.yaml:1:1: error: (file): not UTF-8 text (invalid utf-8 se", |w| { let mut b = std::fs::read(w.join(CANARY)).unwrap(); b.extend_from_slice(b"\n# \xff\xfe\n"); std::fs::write(w.join(CANARY), b).unwrap(); };
        "an old apiVersion", "apps/frontend/canary.yaml:1:13: error: apiVersion: `flagger.app/v1alpha3` is not su", |w| { replace(w, CANARY, "flagger.app/v1beta1", "flagger.app/v1alpha3"); };
        "no targetRef", "apps/frontend/canary.yaml:7:3: error: spec: missing field `targetRef`", |w| { replace(w, CANARY, "  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: frontend\n", ""); };
        "a bad namespace", "apps/frontend/canary.yaml:5:14: error: metadata.namespace: `Prod_1` is not a valid namespac", |w| { replace(w, CANARY, "namespace: prod", "namespace: Prod_1"); };
        "a bad name", "apps/frontend/canary.yaml:4:9: error: metadata.name: `Front End` is not a valid Kuber", |w| { replace(w, CANARY, "name: frontend\n  namespace", "name: Front End\n  namespace"); };
        "a Service name too long", "apps/frontend/canary.yaml:16:11: error: spec.service.name: `a-very-long-service-name-that-d", |w| { replace(w, CANARY, "    port: 9899", "    name: a-very-long-service-name-that-does-not-fit-with-its-suffixes\n    port: 9899"); };
        "a Service name with dots", "apps/frontend/canary.yaml:16:11: error: spec.service.name: `front.end` cannot name weir's S", |w| { replace(w, CANARY, "    port: 9899", "    name: front.end\n    port: 9899"); };
        "metricsServer without a scheme", "apps/frontend/canary.yaml:7:18: error: spec.metricsServer: must be an absolute http(s) URL ", |w| { replace(w, CANARY, "spec:\n", "spec:\n  metricsServer: prometheus.istio-system:9090\n"); };
        "a metric with no template", "apps/frontend/canary.yaml:26:15: error: spec.analysis.metrics[0].name: `error-ratio` is not a built-in ", |w| { replace(w, CANARY, "name: request-success-rate", "name: error-ratio"); };
        "a missing template", "apps/frontend/canary.yaml:26:9: error: spec.analysis.metrics[0].templateRef: MetricTemplate prod/nope is not ", |w| { replace(w, CANARY, "      - name: request-success-rate\n", "      - name: request-success-rate\n        templateRef:\n          name: nope\n"); };
        "an interval below the minimum", "apps/frontend/canary.yaml:22:15: error: spec.analysis.interval: 100ms is below the minimum of 1s", |w| { replace(w, CANARY, "interval: 15s", "interval: 100ms"); };
        "an interval that would wrap", "apps/frontend/canary.yaml:22:15: error: spec.analysis.interval: `99999999999999999999999h` is no", |w| { replace(w, CANARY, "interval: 15s", "interval: 99999999999999999999999h"); };
        "no metrics", "apps/frontend/canary.yaml:22:5: error: spec.analysis.metrics: the analysis checks nothing (no ", |w| { let t = std::fs::read_to_string(w.join(CANARY)).unwrap(); let cut = t.find("    metrics:").unwrap(); std::fs::write(w.join(CANARY), &t[..cut]).unwrap(); };
        "an empty metrics list", "apps/frontend/canary.yaml:25:14: error: spec.analysis.metrics: the analysis checks nothing (no ", |w| { let t = std::fs::read_to_string(w.join(CANARY)).unwrap(); let cut = t.find("    metrics:").unwrap(); std::fs::write(w.join(CANARY), format!("{}    metrics: []\n", &t[..cut])).unwrap(); };
        "another mesh", "apps/frontend/canary.yaml:7:13: error: spec.provider: provider `linkerd` is not suppor", |w| { replace(w, CANARY, "spec:\n", "spec:\n  provider: linkerd\n"); };
        "a byte-order mark then a broken field", "apps/frontend/canary.yaml:23:16: error: spec.analysis.threshold: invalid type: sequence, expected", |w| { let t = std::fs::read_to_string(w.join(CANARY)).unwrap(); std::fs::write(w.join(CANARY), format!("\u{feff}{}", t.replace("threshold: 5", "threshold: []"))).unwrap(); };
        "an alias bomb", "apps/frontend/canary.yaml:42:20: error: (file): its aliases expand past 16777216", |w| { let mut t = std::fs::read_to_string(w.join(CANARY)).unwrap(); t.push_str("---\nkind: Canary\na: &a [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]\n"); for l in 1..12 { t.push_str(&format!("l{l}: &l{l} [{}]\n", vec![if l == 1 { "*a".to_string() } else { format!("*l{}", l - 1) }; 10].join(", "))); } std::fs::write(w.join(CANARY), t).unwrap(); };
        "nesting too deep", "apps/frontend/canary.yaml:34:266: error: (syntax): broken YAML: recursion limit exc", |w| { let mut t = std::fs::read_to_string(w.join(CANARY)).unwrap(); t.push_str(&format!("    x: &x {}1{}\n", "[".repeat(300), "]".repeat(300))); std::fs::write(w.join(CANARY), t).unwrap(); };
        "a huge file", "apps/frontend/canary.yaml:1:1: error: (file): is 5243544 bytes; weir reads fil", |w| { let mut t = std::fs::read_to_string(w.join(CANARY)).unwrap(); t.push_str(&format!("# {}\n", "x".repeat(5 * 1024 * 1024))); std::fs::write(w.join(CANARY), t).unwrap(); };
        "a control character only libyaml refuses", "apps/frontend/canary.yaml:23:17: error: (syntax): broken YAML: control characters are not allowed", |w| { replace(w, CANARY, "threshold: 5", "threshold: 5\u{8b}"); };
        "a metric name that forges a trailer", "apps/frontend/canary.yaml:26:15: error: spec.analysis.metrics[0].name: a metric name is one line of at ", |w| { replace(w, CANARY, "name: request-success-rate", "name: \"ok\\nSigned-off-by: mallory <m@example.com>\""); };
    ]
}

/// What the app's kustomization reads: paths out of the repository, links, remote bases,
/// missing files, cycles, and files too large.
pub fn reference_cases() -> Vec<Case> {
    cases![
        "a path out of the repository", "apps/frontend/kustomization.yaml:7:5: error: resources[3]: `../../../../etc` points outside the repository", |w| { replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - ../../../../etc\n"); };
        "an absolute path", "apps/frontend/kustomization.yaml:7:5: error: resources[3]: `/etc/passwd` is an absolute pat", |w| { replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - /etc/passwd\n"); };
        "a generator reading the process environment", "apps/frontend/kustomization.yaml:19:5: error: secretGenerator[0]: `/proc/self/environ` is an absol", |w| { write(w, "apps/frontend/proc/self/environ", "DECOY=1\n"); let t = std::fs::read_to_string(w.join(KUST)).unwrap(); std::fs::write(w.join(KUST), format!("{t}secretGenerator:\n  - name: env\n    files:\n      - env=/proc/self/environ\n")).unwrap(); };
        "a generator reading a host file", "apps/frontend/kustomization.yaml:19:5: error: configMapGenerator[0]: `../../../../../etc/hostname` po", |w| { let t = std::fs::read_to_string(w.join(KUST)).unwrap(); std::fs::write(w.join(KUST), format!("{t}configMapGenerator:\n  - name: host\n    envs:\n      - ../../../../../etc/hostname\n")).unwrap(); };
        "a link to /dev/zero", "apps/frontend/zero.yaml:1:1: error: (file): is a symbolic link; weir reads n", |w| { std::os::unix::fs::symlink("/dev/zero", w.join("apps/frontend/zero.yaml")).unwrap(); replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - zero.yaml\n"); };
        "a link in the app folder", "apps/frontend/secret.yaml:1:1: error: (file): is a symbolic link; weir reads n", |w| { std::os::unix::fs::symlink("/etc/passwd", w.join("apps/frontend/secret.yaml")).unwrap(); };
        "a linked folder", "apps/frontend/kustomization.yaml:7:5: error: resources[3]: `base` is a symbolic link; weir ", |w| { std::os::unix::fs::symlink("/etc", w.join("apps/frontend/base")).unwrap(); replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - base\n"); };
        "a remote base", "apps/frontend/kustomization.yaml:7:5: error: resources[3]: remote reference `github.com/acm", |w| { replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - github.com/acme/base?ref=v1\n"); };
        "a missing file", "apps/frontend/kustomization.yaml:7:5: error: resources[3]: `svc.yaml` does not exist (looke", |w| { replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - svc.yaml\n"); };
        "a broken kustomization", "apps/frontend/kustomization.yaml:4:3: error: (kustomization): cannot read the kustomization: d", |w| { replace(w, KUST, "resources:\n", "resources: [\n"); };
        "a kustomization cycle", "apps/frontend/base/kustomization.yaml:2:5: error: resources[0]: `..` makes a cycle: apps/fronten", |w| { write(w, "apps/frontend/base/kustomization.yaml", "resources:\n  - ..\n"); replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - base\n"); };
        "a file too large", "apps/frontend/big.yaml:1:1: error: (file): is 5242883 bytes; weir reads fil", |w| { write(w, "apps/frontend/big.yaml", &format!("# {}\n", "x".repeat(5 * 1024 * 1024))); replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - big.yaml\n"); };
        "no Deployment", "apps/frontend/canary.yaml:10:11: error: spec.targetRef.name: Deployment `frontend` is not amo", |w| { replace(w, KUST, "  - deployment.yaml\n", ""); replace(w, KUST, "patchesJson6902:", "x-patches:"); };
        "no HPA", "apps/frontend/canary.yaml:14:11: error: spec.autoscalerRef.name: HorizontalPodAutoscaler `fronten", |w| { replace(w, KUST, "  - hpa.yaml\n", ""); };
        "no selector label", "apps/frontend/canary.yaml:10:11: error: spec.targetRef.name: Deployment `frontend` has none o", |w| { replace(w, "apps/frontend/deployment.yaml", "    matchLabels:\n      app: frontend", "    matchLabels:\n      tier: frontend"); };
        "a selector label too long", "apps/frontend/canary.yaml:10:11: error: spec.targetRef.name: the Deployment's selector label ", |w| { let long = "f".repeat(60); replace(w, "apps/frontend/deployment.yaml", "    matchLabels:\n      app: frontend", &format!("    matchLabels:\n      app: {long}")); };
    ]
}

/// A rollout record edited by hand, or copied, or crafted.
pub fn record_cases() -> Vec<Case> {
    cases![
        "a broken record", "apps/frontend.weir/state.yaml:1:9: error: status: invalid type: sequence", |w| { write(w, RECORD, "status: [\n"); };
        "a weight over 100", "apps/frontend.weir/state.yaml:10:17: error: status.canaryWeight: weight 120 is not a percentage", |w| { replace(w, RECORD, "canaryWeight: 0", "canaryWeight: 120"); };
        "failed checks that would wrap", "apps/frontend.weir/state.yaml:12:17: error: status.failedChecks: 4294967295 is more than weir eve", |w| { replace(w, RECORD, "failedChecks: 0", "failedChecks: 4294967295"); };
        "a negative count", "apps/frontend.weir/state.yaml:11:15: error: status.iterations: invalid type: integer `-3`, expe", |w| { replace(w, RECORD, "iterations: 0", "iterations: -3"); };
        "a time in the future", "apps/frontend.weir/state.yaml:17:15: error: status.lastStepAt: 2099-01-01T00:00:00Z is in the f", |w| { let t = std::fs::read_to_string(w.join(RECORD)).unwrap(); let at = t.find("lastStepAt: ").unwrap() + "lastStepAt: ".len(); let end = at + t[at..].find('\n').unwrap(); std::fs::write(w.join(RECORD), format!("{}2099-01-01T00:00:00.000Z{}", &t[..at], &t[end..])).unwrap(); };
        "a revision that is not one", "apps/frontend.weir/state.yaml:13:21: error: status.promotedRevision: `é1` is not a revision (40 hex d", |w| { let t = std::fs::read_to_string(w.join(RECORD)).unwrap(); let at = t.find("promotedRevision: ").unwrap() + "promotedRevision: ".len(); std::fs::write(w.join(RECORD), format!("{}é1{}", &t[..at], &t[at + 40..])).unwrap(); };
        "a record of another app", "apps/frontend.weir/state.yaml:6:9: error: metadata.name: the rollout record belongs to pr", |w| { let t = std::fs::read_to_string(w.join("apps/backend.weir/state.yaml")).unwrap(); write(w, RECORD, &t); };
        "a record of a newer weir", "apps/frontend.weir/state.yaml:3:13: error: apiVersion: rollout record version `weir.dev", |w| { replace(w, RECORD, "weir.dev/v1alpha1", "weir.dev/v9"); };
        "an alias bomb in the record", "apps/frontend.weir/state.yaml:26:15: error: (record): its aliases expand past 16777216", |w| { let mut t = std::fs::read_to_string(w.join(RECORD)).unwrap(); t.push_str("x: &a [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]\n"); for l in 1..12 { t.push_str(&format!("l{l}: &l{l} [{}]\n", vec![if l == 1 { "*a".to_string() } else { format!("*l{}", l - 1) }; 10].join(", "))); } std::fs::write(w.join(RECORD), t).unwrap(); };
        "an unknown field in the record", "apps/frontend.weir/state.yaml:12:3: error: status: unknown field `promoteNow`, expe", |w| { replace(w, RECORD, "  iterations: 0", "  iterations: 0\n  promoteNow: true"); };
    ]
}

/// Apps that are valid alone but collide with each other.
pub fn cross_app_cases() -> Vec<Case> {
    cases![
        "two Canaries in one folder", "apps/frontend/canary.yaml:4:9: error: metadata.name: more than one Canary in apps/frontend", |w| { let t = std::fs::read_to_string(w.join(CANARY)).unwrap(); write(w, "apps/frontend/canary-b.yaml", &t.replace("name: frontend\n  namespace", "name: frontend-b\n  namespace")); };
        "the same Canary twice", "apps/frontend/canary.yaml:4:9: error: metadata.name: Canary prod/frontend is defined ", |w| { let t = std::fs::read_to_string(w.join(CANARY)).unwrap(); write(w, "apps/other/canary.yaml", &t); write(w, "apps/other/kustomization.yaml", "resources:\n  - ../frontend\n"); };
        "two Canaries on one Deployment", "apps/frontend/canary.yaml:10:11: error: spec.targetRef.name: Deployment prod/frontend is the ", |w| { let t = std::fs::read_to_string(w.join(CANARY)).unwrap(); write(w, "apps/mirror/canary.yaml", &t.replace("name: frontend\n  namespace", "name: mirror\n  namespace").replace("port: 9899", "name: mirror\n    port: 9899")); write(w, "apps/mirror/kustomization.yaml", "resources:\n  - ../frontend/deployment.yaml\n"); };
        "a Service name of another app", "apps/other/canary.yaml:16:11: error: spec.service.name: Service prod/frontend would be written for more than one Canary", |w| { let c = std::fs::read_to_string(w.join(CANARY)).unwrap(); write(w, "apps/other/canary.yaml", &c.replace("name: frontend\n  namespace", "name: other\n  namespace").replace("    name: frontend\n  autoscalerRef", "    name: other\n  autoscalerRef").replace("    port: 9899", "    name: frontend\n    port: 9899")); let d = std::fs::read_to_string(w.join("apps/frontend/deployment.yaml")).unwrap(); write(w, "apps/other/deployment.yaml", &d.replace("frontend", "other")); let h = std::fs::read_to_string(w.join("apps/frontend/hpa.yaml")).unwrap(); write(w, "apps/other/hpa.yaml", &h.replace("frontend", "other")); write(w, "apps/other/kustomization.yaml", "resources:\n  - canary.yaml\n  - deployment.yaml\n  - hpa.yaml\n"); };
        "a Service of the user's named as weir's", "apps/frontend/canary.yaml:4:9: error: metadata.name: weir would write Service prod/frontend, which apps/frontend/service.yaml already defines: Flagger takes such an object over", |w| { write(w, "apps/frontend/service.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: frontend\n  namespace: prod\nspec:\n  ports: [{port: 80}]\n"); replace(w, KUST, "  - hpa.yaml\n", "  - hpa.yaml\n  - service.yaml\n"); };
        "a primary named as another app's object", "apps/frontend/canary.yaml:4:9: error: metadata.name: weir would write Deployment prod", |w| { write(w, "apps/backend/extra.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: frontend-primary\n  namespace: prod\nspec:\n  selector: {matchLabels: {app: x}}\n  template: {metadata: {labels: {app: x}}, spec: {containers: [{name: x, image: x}]}}\n"); replace(w, "apps/backend/kustomization.yaml", "  - hpa.yaml\n", "  - hpa.yaml\n  - extra.yaml\n"); };
    ]
}

/// MetricTemplates that would let a value rewrite a query, or name what weir cannot use.
pub fn template_cases() -> Vec<Case> {
    const T: &str = "istio/gateway/flagger-metrics.yaml";
    cases![
        "an unknown placeholder", "istio/gateway/flagger-metrics.yaml:9:10: error: spec.query: unknown placeholder", |w| { replace(w, T, "100 - sum(", "100 - {{ ingress_host }} - sum("); };
        "an unclosed placeholder", "istio/gateway/flagger-metrics.yaml:9:10: error: spec.query: `{{` at byte 6 is never closed", |w| { replace(w, T, "100 - sum(", "100 - {{ target - sum("); };
        "a value placed bare", "apps/backend/canary.yaml:43:9: error: metric error-rate: value `5.*\"}) * 0 + 100 #` of va", |w| { replace(w, T, "100 - sum(", "100 - {{ variables.code }} - sum("); replace(w, "apps/backend/canary.yaml", "          namespace: istio-system\n        thresholdRange:\n          max: 1\n", "          namespace: istio-system\n        templateVariables:\n          code: \"5.*\\\"}) * 0 + 100 #\"\n        thresholdRange:\n          max: 1\n"); };
        "a template provider weir cannot query", "istio/gateway/flagger-metrics.yaml:8:11: error: spec.provider.type: provider `datadog` is not suppor", |w| { replace(w, T, "type: prometheus", "type: datadog"); };
        "a template address without a scheme", "istio/gateway/flagger-metrics.yaml:9:14: error: spec.provider.address: `prometheus:9090` is not an http", |w| { replace(w, T, "type: prometheus\n", "type: prometheus\n    address: prometheus:9090\n"); };
        "a template with a secret", "istio/gateway/flagger-metrics.yaml:10:7: error: spec.provider.secretRef: weir does not read Kubernetes se", |w| { replace(w, T, "type: prometheus\n", "type: prometheus\n    secretRef:\n      name: prom-auth\n"); };
        "an empty query", "istio/gateway/flagger-metrics.yaml:9:10: error: spec.query: the query is empty", |w| { let t = std::fs::read_to_string(w.join(T)).unwrap(); let start = t.find("  query: |").unwrap(); let end = t.find("---").unwrap(); write(w, T, &format!("{}  query: \"\"\n{}", &t[..start], &t[end..])); };
        "a template defined twice", "istio/gateway/flagger-metrics.yaml:1:1: error: metadata.name: MetricTemplate istio-system/erro", |w| { let t = std::fs::read_to_string(w.join(T)).unwrap(); write(w, "istio/gateway/copy.yaml", &t); };
    ]
}

#[test]
fn broken_canaries() {
    let cases = spec_cases();
    assert!(cases.len() >= 25);
    for case in &cases {
        run(case, false);
    }
}

#[test]
fn hostile_references() {
    for case in &reference_cases() {
        run(case, false);
    }
}

#[test]
fn records_that_lie() {
    for case in &record_cases() {
        run(case, true);
    }
}

#[test]
fn apps_that_collide() {
    for case in &cross_app_cases() {
        run(case, false);
    }
}

#[test]
fn templates_that_would_rewrite_evidence() {
    // The backend uses the gitops-istio templates; the frontend only built-in metrics.
    for case in &template_cases() {
        run_broken(case, false, "backend", "frontend");
    }
}

#[test]
fn the_corpus_is_large_enough() {
    let n = spec_cases().len()
        + reference_cases().len()
        + record_cases().len()
        + cross_app_cases().len()
        + template_cases().len();
    assert!(n >= 60, "{n} cases");
}
