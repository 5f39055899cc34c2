//! The house keeps its shape: code imports only downwards (`cli -> engine -> ports -> repo ->
//! core`, adapters beside the engine), `core/` and `repo/` reach for no I/O crate, file,
//! environment or clock, and no two files of `src/` import each other through any path.
//!
//! Imports are read from the source text: every `crate::` path (in `use` lines and inline)
//! and top-level `use super::` lines, resolved to the file that defines the module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, and which layers each may import.
fn allowed(from: &str) -> &'static [&'static str] {
    match from {
        "core" => &["core"],
        "repo" => &["repo", "core"],
        "ports" => &["ports", "repo", "core"],
        "adapters" => &["adapters", "ports", "repo", "core"],
        "engine" => &["engine", "ports", "repo", "core"],
        "cli" => &["cli", "engine", "adapters", "ports", "repo", "core"],
        // Test doubles and the test-only editor may use anything; nothing else may use them.
        "test_support" => &[
            "test_support",
            "cli",
            "engine",
            "adapters",
            "ports",
            "repo",
            "core",
        ],
        // lib.rs only declares the rooms.
        _ => &[
            "core",
            "repo",
            "ports",
            "adapters",
            "engine",
            "cli",
            "test_support",
        ],
    }
}

/// What `core/` and `repo/` must never name: I/O crates, files, the environment, the clock.
const FORBIDDEN_IN_PURE: [&str; 16] = [
    "tokio::",
    "reqwest::",
    "git2::",
    "octocrab::",
    "kube::",
    "hyper::",
    "axum::",
    "std::fs",
    "std::env",
    "std::net",
    "std::process",
    "std::io::stdin",
    "Utc::now",
    "Local::now",
    "SystemTime::now",
    "Instant::now",
];

/// One source file: its module path (`core::plan`) and text.
struct File {
    module: Vec<String>,
    text: String,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files of the library (the binaries only call it).
fn library(src: &Path) -> BTreeMap<String, File> {
    let mut paths = Vec::new();
    walk(src, &mut paths);
    let mut files = BTreeMap::new();
    for path in paths {
        let rel = path
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "main.rs" || rel.starts_with("bin/") {
            continue;
        }
        let module: Vec<String> = rel
            .trim_end_matches(".rs")
            .split('/')
            .filter(|s| *s != "mod" && *s != "lib")
            .map(str::to_string)
            .collect();
        let text = std::fs::read_to_string(&path).unwrap();
        files.insert(module.join("::"), File { module, text });
    }
    files
}

/// Text without comments (so a doc line naming `std::fs` is not an import).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path a file imports: `crate::a::b::{c, d}` gives `a::b::c` and `a::b::d`.
fn imports(file: &File) -> Vec<Vec<String>> {
    let text = code(&file.text);
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let path = path_at(rest);
        if path.last().is_some_and(|s| s == "{") {
            let base = &path[..path.len() - 1];
            let close = rest.find('}').unwrap_or(rest.len());
            let open = rest.find('{').unwrap_or(0);
            for item in rest[open + 1..close].split(',') {
                let item = item.trim();
                let mut full = base.to_vec();
                full.extend(
                    item.split("::")
                        .map(|s| s.split(' ').next().unwrap().to_string()),
                );
                if !item.is_empty() {
                    out.push(full);
                }
            }
        } else {
            out.push(path);
        }
    }
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("use super::") {
            let mut full = file.module[..file.module.len().saturating_sub(1)].to_vec();
            let path = path_at(rest);
            full.extend(path.into_iter().filter(|s| s != "{"));
            out.push(full);
        }
    }
    out
}

/// The `::`-separated identifiers at the start of `text`, ending at `{` (kept as a marker).
fn path_at(text: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut rest = text;
    loop {
        if rest.starts_with('{') {
            path.push("{".to_string());
            return path;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            return path;
        }
        path.push(rest[..end].to_string());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return path,
        }
    }
}

/// The file a path lands in: the longest prefix that is a module of the library.
fn resolve<'a>(files: &'a BTreeMap<String, File>, path: &[String]) -> Option<&'a str> {
    (1..=path.len()).rev().find_map(|n| {
        files
            .get_key_value(&path[..n].join("::"))
            .map(|(k, _)| k.as_str())
    })
}

/// The layer of a module: its first segment (`lib.rs` is the root).
fn layer(module: &str) -> &str {
    module.split("::").next().unwrap_or("")
}

/// Each problem found in the library at `src`, one line each.
fn problems(src: &Path) -> Vec<String> {
    let files = library(src);
    let mut problems = Vec::new();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, file) in &files {
        let from = layer(name);
        for path in imports(file) {
            let Some(to) = resolve(&files, &path) else {
                continue;
            };
            if to == name || to.is_empty() {
                continue;
            }
            if !allowed(from).contains(&layer(to)) {
                problems.push(format!(
                    "{name} imports {} ({} may not import {})",
                    path.join("::"),
                    from,
                    layer(to)
                ));
            }
            if layer(to) == "test_support" && from != "test_support" {
                problems.push(format!("{name} imports test support {}", path.join("::")));
            }
            edges.entry(name).or_default().insert(to);
        }
        if matches!(from, "core" | "repo") {
            let text = code(&file.text);
            for word in FORBIDDEN_IN_PURE {
                if text.contains(word) {
                    problems.push(format!("{name} is pure but names {word}"));
                }
            }
        }
    }
    for cycle in cycles(&edges) {
        problems.push(format!("import cycle among: {}", cycle.join(", ")));
    }
    problems
}

/// The strongly connected groups of more than one file (Tarjan's algorithm).
fn cycles<'a>(edges: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct Walk<'a, 'e> {
        edges: &'e BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(w: &mut Walk<'a, '_>, v: &'a str) {
        let i = w.index.len();
        w.index.insert(v, i);
        w.low.insert(v, i);
        w.stack.push(v);
        w.on_stack.insert(v);
        for &next in w.edges.get(v).into_iter().flatten() {
            if !w.index.contains_key(next) {
                visit(w, next);
                let l = w.low[v].min(w.low[next]);
                w.low.insert(v, l);
            } else if w.on_stack.contains(next) {
                let l = w.low[v].min(w.index[next]);
                w.low.insert(v, l);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = Vec::new();
            while let Some(top) = w.stack.pop() {
                w.on_stack.remove(top);
                group.push(top);
                if top == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                w.found.push(group);
            }
        }
    }
    let mut w = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for &v in edges.keys() {
        if !w.index.contains_key(v) {
            visit(&mut w, v);
        }
    }
    w.found
}

#[test]
fn code_imports_only_downwards_and_core_and_repo_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = problems(&src);
    assert!(
        found.is_empty(),
        "the house is out of shape:\n{}",
        found.join("\n")
    );
}

/// A copy of `src/` with one file changed, for the guard's own tests.
fn broken(file: &str, line: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    for path in paths {
        let to = dir.path().join(path.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&path, &to).unwrap();
    }
    let target = dir.path().join(file);
    let text = std::fs::read_to_string(&target).unwrap();
    std::fs::write(&target, format!("{line}\n{text}")).unwrap();
    problems(dir.path())
}

#[test]
fn the_guard_fails_on_an_upward_import_an_io_import_and_a_cycle() {
    let up = broken("core/plan/mod.rs", "use crate::ports::Clock;");
    assert!(
        up.iter().any(|p| p.contains("core may not import ports")),
        "{up:?}"
    );
    let io = broken("repo/rules.rs", "use std::fs::read;");
    assert!(io.iter().any(|p| p.contains("names std::fs")), "{io:?}");
    let clock = broken("core/record.rs", "fn f() { let _ = chrono::Utc::now(); }");
    assert!(
        clock.iter().any(|p| p.contains("names Utc::now")),
        "{clock:?}"
    );
    let cycle = broken("core/text.rs", "use crate::core::events::Event;");
    assert!(
        cycle.iter().any(|p| p.starts_with("import cycle among:")
            && p.contains("core::events")
            && p.contains("core::text")),
        "{cycle:?}"
    );
    let tests = broken(
        "engine/mod.rs",
        "use crate::test_support::fakes::FakeClock;",
    );
    assert!(
        tests
            .iter()
            .any(|p| p.contains("engine may not import test_support")),
        "{tests:?}"
    );
}
