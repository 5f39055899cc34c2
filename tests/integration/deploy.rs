//! `deploy/`: the kustomize base that runs `weir run` next to Flux, Flagger's structural CRDs
//! and the Dockerfile. The manifests build with `kubectl kustomize` as Flux builds them, every
//! flag and `WEIR_*` variable they set is one the binary accepts, and the image is pinned and
//! runs as a non-root user. No image can be built here (no registry), so the Dockerfile is
//! checked by reading it.

use clap::{CommandFactory, Parser};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn build(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{ROOT}/{dir}")])
        .output()
        .expect("kubectl on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::support::repo::docs(&String::from_utf8_lossy(&out.stdout))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_base_builds_into_two_locked_down_replicas_with_read_only_rights() {
    let docs = build("deploy");
    let mut kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    for d in &docs {
        if d["kind"] != "Namespace"
            && d["kind"] != "ClusterRole"
            && d["kind"] != "ClusterRoleBinding"
        {
            assert_eq!(d["metadata"]["namespace"], "weir-system", "{d:?}");
        }
    }

    let deployment = find(&docs, "Deployment", "weir");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "weir");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_ne!(pod["securityContext"]["runAsUser"], 0);
    let container = &pod["containers"][0];
    assert!(strs(&container["args"]).contains(&"--leader-elect".to_string()));
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    // Probes on the HTTP server's port.
    let port = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a port named http");
    assert_eq!(port["containerPort"], 9797);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http");
    }

    // The cache on an emptyDir, where WEIR_CACHE points.
    let env: BTreeMap<String, &Value> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e))
        .collect();
    let cache = env["WEIR_CACHE"]["value"].as_str().unwrap();
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(cache))
        .expect("a volume mounted at WEIR_CACHE");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert!(volume["emptyDir"].is_mapping(), "{volume:?}");
    // Every secret is optional, so the base runs before any Secret exists.
    for (name, e) in &env {
        if let Some(r) = e["valueFrom"]["secretKeyRef"].as_mapping() {
            assert_eq!(r.get("optional"), Some(&Value::Bool(true)), "{name}");
        }
    }
    for key in [
        "WEIR_GIT_TOKEN",
        "WEIR_GITHUB_TOKEN",
        "WEIR_PROMETHEUS_TOKEN",
        "WEIR_PROMETHEUS_PASSWORD",
        "WEIR_ALERT_URL",
        "WEIR_GITHUB_WEBHOOK_SECRET",
        "WEIR_FLUX_WEBHOOK_SECRET",
    ] {
        assert!(
            env[key]["valueFrom"]["secretKeyRef"].is_mapping(),
            "{key} comes from a Secret"
        );
    }
    let ssh = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "git-ssh")
        .unwrap();
    assert_eq!(ssh["secret"]["optional"], true);
    let config = find(&docs, "ConfigMap", "weir");
    let ssh_dir = config["data"]["WEIR_GIT_SSH_DIR"].as_str().unwrap();
    assert!(container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "git-ssh" && m["mountPath"].as_str() == Some(ssh_dir)));

    // Rights: read what Flux applied, and the Leases of its own namespace; nothing else.
    let cluster_role = find(&docs, "ClusterRole", "weir-cluster-view");
    let rules = cluster_role["rules"].as_sequence().unwrap();
    let rule = |group: &str, resource: &str| {
        rules
            .iter()
            .find(|r| strs(&r["apiGroups"]) == [group] && strs(&r["resources"]) == [resource])
            .map(|r| strs(&r["verbs"]))
    };
    let read = ["get", "list", "watch"].map(String::from).to_vec();
    assert_eq!(
        rule("kustomize.toolkit.fluxcd.io", "kustomizations"),
        Some(read.clone())
    );
    assert_eq!(rule("apps", "deployments"), Some(read));
    assert_eq!(rules.len(), 2);
    let role = find(&docs, "Role", "weir-leader-election");
    let rules = role["rules"].as_sequence().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(strs(&rules[0]["apiGroups"]), ["coordination.k8s.io"]);
    assert_eq!(strs(&rules[0]["resources"]), ["leases"]);
    assert_eq!(strs(&rules[0]["verbs"]), ["get", "create", "update"]);
    for binding in ["ClusterRoleBinding", "RoleBinding"] {
        let b = docs.iter().find(|d| d["kind"] == binding).unwrap();
        assert_eq!(b["subjects"][0]["name"], "weir");
        assert_eq!(b["subjects"][0]["namespace"], "weir-system");
    }
    let service = find(&docs, "Service", "weir");
    assert_eq!(service["spec"]["ports"][0]["port"], 9797);
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/name"],
        "weir"
    );
}

/// Every `WEIR_*` variable the base sets (in the Deployment or its ConfigMap) and every
/// argument is one `weir run` defines, and their values parse: a renamed or misspelt flag
/// fails here, not in a crash-looping pod. Variables are turned into the flags they stand for.
#[test]
fn every_flag_and_variable_the_base_sets_is_one_weir_accepts() {
    let docs = build("deploy");
    let deployment = find(&docs, "Deployment", "weir");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut variables: Vec<(String, String)> = Vec::new();
    for e in container["env"].as_sequence().unwrap() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = e["value"].as_str().unwrap_or("from-a-secret").to_string();
        variables.push((name, value));
    }
    for (k, v) in find(&docs, "ConfigMap", "weir")["data"]
        .as_mapping()
        .unwrap()
    {
        variables.push((k.as_str().unwrap().into(), v.as_str().unwrap().into()));
    }

    // The flags that stand for each variable, in the whole command and in `run`.
    let cli = weir::cli::args::Cli::command();
    let run = cli
        .get_subcommands()
        .find(|c| c.get_name() == "run")
        .expect("weir run");
    let mut flags: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for arg in cli.get_arguments().chain(run.get_arguments()) {
        if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
            let takes_value = arg.get_num_args().is_none_or(|n| n.takes_values())
                && !matches!(arg.get_action(), clap::ArgAction::SetTrue);
            flags.insert(
                env.to_string_lossy().to_string(),
                (long.to_string(), takes_value),
            );
        }
    }
    let unknown: Vec<&str> = variables
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("WEIR_") && !flags.contains_key(*n))
        .collect();
    assert!(
        unknown.is_empty(),
        "the base sets variables weir does not define: {unknown:?}"
    );
    assert!(variables.iter().any(|(n, _)| n == "WEIR_REPO"));

    let mut argv = vec!["weir".to_string()];
    argv.extend(strs(&container["args"]));
    for (name, value) in &variables {
        if let Some((long, takes_value)) = flags.get(name) {
            argv.push(format!("--{long}"));
            if *takes_value {
                argv.push(value.clone());
            }
        }
    }
    match weir::cli::args::Cli::try_parse_from(&argv) {
        Ok(parsed) => assert!(
            matches!(parsed.command, weir::cli::args::Command::Run(_)),
            "{parsed:?}"
        ),
        Err(e) => panic!("{argv:?}: {e}"),
    }
}

/// The `--repos` file commented in the ConfigMap is one `weir run` accepts.
#[test]
fn the_repos_file_the_config_map_shows_is_one_weir_accepts() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/config.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "#   repos.yaml: |")
        .expect("a commented repos.yaml");
    let file: String = lines[start + 1..]
        .iter()
        .map_while(|l| l.trim_start().strip_prefix("#     "))
        .map(|l| format!("{l}\n"))
        .collect();
    let parsed = weir::cli::args::Cli::try_parse_from([
        "weir",
        "run",
        "--repos",
        "repos.yaml",
        "--cache",
        "/var/cache/weir",
    ])
    .unwrap();
    let weir::cli::args::Command::Run(run) = parsed.command else {
        panic!("not run")
    };
    let served = weir::cli::repos::parse("repos.yaml", &file, &run.repo)
        .unwrap_or_else(|e| panic!("{e}\n{file}"));
    assert_eq!(served.len(), 2, "{file}");
    assert_eq!(served[1].args.branch, "production");
    assert_eq!(served[1].lease_name, "weir-payments");
}

#[test]
fn flaggers_crds_are_structural_and_keep_every_field() {
    let docs = build("deploy/crds");
    let mut names: Vec<&str> = docs
        .iter()
        .map(|d| {
            assert_eq!(d["kind"], "CustomResourceDefinition");
            assert_eq!(d["apiVersion"], "apiextensions.k8s.io/v1");
            d["metadata"]["name"].as_str().unwrap()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alertproviders.flagger.app",
            "canaries.flagger.app",
            "metrictemplates.flagger.app"
        ]
    );
    for d in &docs {
        let spec = &d["spec"];
        assert_eq!(spec["group"], "flagger.app");
        assert_eq!(spec["scope"], "Namespaced");
        let version = &spec["versions"][0];
        assert_eq!(version["name"], "v1beta1");
        assert_eq!(
            (version["served"].as_bool(), version["storage"].as_bool()),
            (Some(true), Some(true))
        );
        let schema = &version["schema"]["openAPIV3Schema"];
        assert_eq!(schema["type"], "object");
        for field in ["spec", "status"] {
            assert_eq!(schema["properties"][field]["type"], "object");
            assert_eq!(
                schema["properties"][field]["x-kubernetes-preserve-unknown-fields"],
                true
            );
        }
    }
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (op, rest) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_uppercase(), rest.trim().to_string()));
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "a continuation at the end of the file");
    out
}

#[test]
fn the_dockerfile_pins_its_images_and_runs_only_weir_as_a_non_root_user() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/Dockerfile")).unwrap();
    let all = instructions(&text);
    const KNOWN: [&str; 18] = [
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
        "MAINTAINER",
    ];
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    let mut names = Vec::new();
    for (op, rest) in &all {
        assert!(KNOWN.contains(&op.as_str()), "unknown instruction {op}");
        assert!(op != "MAINTAINER", "MAINTAINER is deprecated");
        if op == "ADD" {
            assert!(!rest.contains("://"), "ADD of a URL: {rest}");
        }
        if op == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let image = words[0];
            let pinned = image.contains("@sha256:")
                || image
                    .rsplit_once(':')
                    .is_some_and(|(_, tag)| tag.starts_with(|c: char| c.is_ascii_digit()));
            assert!(pinned, "{image}: pin a digest or a version tag");
            assert!(!image.ends_with(":latest"), "{image}");
            if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
                names.push(words[i + 1].to_string());
            }
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("FROM first")
            .push((op.clone(), rest.clone()));
    }
    assert!(stages.len() >= 2, "a builder and a runtime stage");
    let runtime = stages.last().unwrap();
    let user = runtime
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, u)| u.split(':').next().unwrap().to_string())
        .expect("the runtime stage sets USER");
    assert!(user != "root" && user != "0", "USER {user}");
    let copies: Vec<&String> = runtime
        .iter()
        .filter(|(op, _)| op == "COPY" || op == "ADD")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "the runtime image carries only weir: {copies:?}"
    );
    let copy = copies[0];
    let from = copy
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--from="))
        .expect("copied from the builder");
    assert!(names.iter().any(|n| n == from), "{from} is not a stage");
    assert!(
        copy.split_whitespace().nth(1).unwrap().ends_with("/weir"),
        "{copy}"
    );
    let installs = runtime
        .iter()
        .find(|(op, r)| op == "RUN" && r.contains("apt-get install"))
        .map(|(_, r)| r.clone())
        .unwrap_or_default();
    assert!(installs.contains("ca-certificates"), "{installs}");
    let entry = runtime
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    assert!(entry.1.contains("weir"), "{entry:?}");
}
