//! `weir run --repos FILE`: the repositories one process serves, each with its own engine,
//! tick loop and Lease. The file is a YAML list, one entry per repository; what an entry does
//! not set comes from the flags and variables, as for `--repo`:
//!
//! ```yaml
//! - repo: ssh://git@github.com/acme/fleet.git   # required
//!   branch: main                                # default: --branch
//!   roots: [apps]                               # default: --roots
//!   cache: /var/cache/weir/fleet                # default: --cache
//!   lease-name: weir-fleet                      # default: weir-<hash of repo and branch>
//! ```
//!
//! A file that cannot be used is one error naming the file, line and field, and `weir run`
//! does not start. Two entries may not share a branch of one repository, a Lease or a clone
//! folder: two loops would then fight over one of them. URLs are shown without credentials.

use crate::cli::args::RepoArgs;
use crate::core::located::{from_yaml, Located, LocatedError};
use crate::core::positions::{path, PositionIndex};
use crate::core::remote;
use crate::core::secret::SafeUrl;
use crate::core::spec::canary::is_dns_subdomain;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One repository `weir run` serves: its settings (the flags, with what its entry sets) and
/// the name of its Lease.
#[derive(Debug, Clone)]
pub struct Served {
    /// The flags of this repository.
    pub args: RepoArgs,
    /// Its Lease, when elected: the entry's `lease-name`, `--lease-name`, or the default.
    pub lease_name: String,
}

impl Served {
    /// The one repository of `--repo`, with `--lease-name` or the default Lease.
    pub fn single(args: RepoArgs, lease_name: Option<String>) -> Served {
        let lease_name = lease_name
            .unwrap_or_else(|| crate::core::lease::default_name(&args.repo, &args.branch));
        Served { args, lease_name }
    }

    /// The repository URL without credentials, and the branch: what logs and metrics name.
    pub fn label(&self) -> (String, String) {
        (remote::bare(&self.args.repo), self.args.branch.clone())
    }
}

/// One entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Entry {
    repo: Option<String>,
    branch: Option<String>,
    roots: Option<Vec<String>>,
    cache: Option<PathBuf>,
    lease_name: Option<String>,
}

/// Reads `file` and returns its repositories, the flags in `defaults` filling what an entry
/// does not set.
pub fn load(file: &Path, defaults: &RepoArgs) -> Result<Vec<Served>, anyhow::Error> {
    let text = std::fs::read(file)
        .map_err(|e| anyhow::anyhow!("--repos {}: cannot read it: {e}", file.display()))?;
    let text = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("--repos {}: not UTF-8 text", file.display()))?;
    Ok(parse(&file.display().to_string(), &text, defaults)?)
}

/// The repositories of a `--repos` file's text (`file` names it in errors).
pub fn parse(file: &str, text: &str, defaults: &RepoArgs) -> Result<Vec<Served>, LocatedError> {
    let entries: Option<Vec<Entry>> = crate::core::yaml::from_str(text)
        .map_err(|e| with_unknown_field(from_yaml(file, e, ".")))?;
    let index = PositionIndex::parse(crate::core::yaml::strip_bom(text)).ok();
    let at = Located {
        file,
        doc: 0,
        index: index.as_ref(),
    };
    let entries = entries.unwrap_or_default();
    if entries.is_empty() {
        return Err(at.error(
            &path("."),
            "no repository: list one entry per repository, each with at least `repo`",
        ));
    }
    let mut served: Vec<Served> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let one = resolve(&at, i, entry, defaults)?;
        clash(&at, i, &one, &served)?;
        served.push(one);
    }
    Ok(served)
}

/// serde writes an entry's path `.[1]`, and names the entry of an unknown field, not the
/// field: make it `[1].branh`, as the other errors write it.
fn with_unknown_field(mut e: LocatedError) -> LocatedError {
    if e.field.starts_with(".[") {
        e.field.remove(0);
    }
    if let Some(name) = e
        .message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
    {
        e.field = format!("{}.{name}", e.field.trim_end_matches('.'));
    }
    e
}

/// The settings of entry `i`.
fn resolve(
    at: &Located,
    i: usize,
    entry: Entry,
    defaults: &RepoArgs,
) -> Result<Served, LocatedError> {
    let field = |name: &str| path(&format!("[{i}].{name}"));
    let repo = entry.repo.unwrap_or_default();
    if repo.trim().is_empty() {
        return Err(at.error(
            &field("repo"),
            "required: the repository's URL (a path, file://, git://, https:// or ssh://)",
        ));
    }
    if repo.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(at.error(&field("repo"), "a URL has no spaces or control characters"));
    }
    let mut args = defaults.clone();
    args.repo = repo;
    if let Some(branch) = entry.branch {
        if !valid_branch(&branch) {
            return Err(at.error(
                &field("branch"),
                "not a branch name (empty, a space, `..`, or a leading `-`)",
            ));
        }
        args.branch = branch;
    }
    if let Some(roots) = entry.roots {
        if roots.is_empty() || roots.iter().any(|r| r.trim().is_empty()) {
            return Err(at.error(
                &field("roots"),
                "list at least one folder, none empty (`.` is the whole repository)",
            ));
        }
        args.spec.roots = roots;
    }
    if let Some(cache) = entry.cache {
        if cache.as_os_str().is_empty() {
            return Err(at.error(&field("cache"), "an empty folder name"));
        }
        args.cache = Some(cache);
    }
    let lease_name = match entry.lease_name {
        Some(name) if !is_dns_subdomain(&name) => {
            return Err(at.error(
                &field("lease-name"),
                "not a Kubernetes object name: lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253",
            ))
        }
        Some(name) => name,
        None => crate::core::lease::default_name(&args.repo, &args.branch),
    };
    Ok(Served { args, lease_name })
}

/// Refuses entry `i` when it shares a branch, a Lease or a clone folder with an earlier one.
fn clash(at: &Located, i: usize, one: &Served, earlier: &[Served]) -> Result<(), LocatedError> {
    let field = |name: &str| path(&format!("[{i}].{name}"));
    let line_of = |j: usize| at.error(&path(&format!("[{j}]")), "").line;
    let same_repo = |other: &Served| match (
        remote::identity(&one.args.repo),
        remote::identity(&other.args.repo),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => remote::bare(&one.args.repo) == remote::bare(&other.args.repo),
    };
    for (j, other) in earlier.iter().enumerate() {
        if same_repo(other) && one.args.branch == other.args.branch {
            return Err(at.error(
                &field("repo"),
                format!(
                    "{} branch {} is already entry [{j}] (line {}): two loops would write one branch; list it once",
                    remote::bare(&one.args.repo),
                    one.args.branch,
                    line_of(j)
                ),
            ));
        }
        if one.lease_name == other.lease_name {
            return Err(at.error(
                &field("lease-name"),
                format!(
                    "Lease {} is already entry [{j}]'s (line {}): each repository needs its own; give this entry another lease-name",
                    one.lease_name,
                    line_of(j)
                ),
            ));
        }
        if clone_folder(one) == clone_folder(other) {
            return Err(at.error(
                &field("cache"),
                format!(
                    "the clone folder {} is already entry [{j}]'s (line {}): the same repository on two branches needs a cache folder per entry",
                    clone_folder(one).display(),
                    line_of(j)
                ),
            ));
        }
    }
    Ok(())
}

/// Where a repository's clone lives, as the Git adapter places it.
fn clone_folder(served: &Served) -> PathBuf {
    let cache = served
        .args
        .cache
        .clone()
        .unwrap_or_else(crate::adapters::git::default_cache_dir);
    crate::adapters::git::clone_folder(&SafeUrl::new(served.args.repo.clone()), &cache)
}

fn valid_branch(branch: &str) -> bool {
    !branch.is_empty()
        && !branch.starts_with('-')
        && !branch.contains("..")
        && !branch.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '~' | '^' | ':' | '?' | '*' | '[' | '\\')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn defaults() -> RepoArgs {
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            repo: RepoArgs,
        }
        Flags::parse_from([
            "weir",
            "--repo",
            "https://github.com/acme/default.git",
            "--cache",
            "/cache",
            "--roots",
            "apps",
        ])
        .repo
    }

    fn refused(text: &str) -> String {
        parse("repos.yaml", text, &defaults())
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn entries_take_the_flags_for_what_they_do_not_set() {
        let text = "# the fleet\n- repo: https://x-access-token:ghp_secret@github.com/acme/fleet.git\n  branch: prod\n  roots: [apps, infra]\n  cache: /cache/fleet\n  lease-name: weir-fleet\n- repo: https://github.com/acme/payments.git\n";
        let served = parse("repos.yaml", text, &defaults()).unwrap();
        assert_eq!(served.len(), 2);
        let (fleet, payments) = (&served[0], &served[1]);
        assert_eq!(fleet.args.branch, "prod");
        assert_eq!(fleet.args.spec.roots, ["apps", "infra"]);
        assert_eq!(fleet.args.cache.as_deref(), Some(Path::new("/cache/fleet")));
        assert_eq!(fleet.lease_name, "weir-fleet");
        assert_eq!(
            fleet.label(),
            ("https://github.com/acme/fleet.git".into(), "prod".into())
        );
        assert_eq!(payments.args.branch, "main");
        assert_eq!(payments.args.spec.roots, ["apps"]);
        assert_eq!(payments.args.cache.as_deref(), Some(Path::new("/cache")));
        assert_eq!(
            payments.lease_name,
            crate::core::lease::default_name("https://github.com/acme/payments.git", "main")
        );
    }

    #[test]
    fn a_bad_file_is_one_error_at_its_line_and_field() {
        let cases = [
            (
                "- repo: a\n  branh: main\n",
                "repos.yaml:2:3: error: [0].branh: unknown field `branh`",
            ),
            (
                "- repo: a\n- branch: main\n",
                "repos.yaml:2:3: error: [1].repo: required",
            ),
            (
                "- repo: a\n  roots: apps\n",
                "repos.yaml:2:10: error: [0].roots: invalid type",
            ),
            (
                "- repo: a\n  roots: []\n",
                "repos.yaml:2:10: error: [0].roots: list at least one",
            ),
            (
                "- repo: a\n  branch: 'a b'\n",
                "repos.yaml:2:11: error: [0].branch: not a branch name",
            ),
            (
                "- repo: a\n  lease-name: Weir_A\n",
                "repos.yaml:2:15: error: [0].lease-name: not a Kubernetes object name",
            ),
            (
                "repo: a\n",
                "repos.yaml:1:1: error: .: invalid type: map, expected a sequence",
            ),
            ("# nothing yet\n", "repos.yaml:1:1: error: .: no repository"),
            (
                "- repo: a\n  branch: b\n   roots: c\n",
                "repos.yaml:3:9: error: .:",
            ),
        ];
        for (text, want) in cases {
            let got = refused(text);
            assert!(got.starts_with(want), "{text:?}\n got {got}\nwant {want}");
        }
    }

    #[test]
    fn two_entries_never_share_a_branch_a_lease_or_a_clone() {
        let token = "ghp_secret";
        let got = refused(&format!(
            "- repo: https://github.com/acme/fleet.git\n- repo: git@github.com:acme/fleet.git\n  cache: /other\n- repo: https://x:{token}@github.com/acme/fleet\n"
        ));
        assert!(
            got.starts_with("repos.yaml:2:9: error: [1].repo: git@github.com:acme/fleet.git branch main is already entry [0] (line 1)"),
            "{got}"
        );
        let got = refused(&format!(
            "- repo: https://github.com/acme/fleet.git\n  cache: /a\n- repo: https://x:{token}@github.com/acme/fleet\n  cache: /b\n"
        ));
        assert!(got.starts_with("repos.yaml:3:9: error: [1].repo: https://github.com/acme/fleet branch main is already entry [0] (line 1)"), "{got}");
        assert!(!got.contains(token), "{got}");
        let got = refused(
            "- repo: https://github.com/acme/a.git\n  lease-name: weir\n- repo: https://github.com/acme/b.git\n  lease-name: weir\n",
        );
        assert!(got.starts_with("repos.yaml:4:15: error: [1].lease-name: Lease weir is already entry [0]'s (line 1)"), "{got}");
        let got = refused(
            "- repo: https://github.com/acme/a.git\n- repo: https://github.com/acme/a.git\n  branch: prod\n",
        );
        assert!(
            got.starts_with("repos.yaml:2:3: error: [1].cache: the clone folder /cache/a.git-"),
            "{got}"
        );
        // Each on its own folder, one repository on two branches is fine.
        let ok = "- repo: https://github.com/acme/a.git\n- repo: https://github.com/acme/a.git\n  branch: prod\n  cache: /cache/prod\n";
        assert_eq!(parse("repos.yaml", ok, &defaults()).unwrap().len(), 2);
    }
}
