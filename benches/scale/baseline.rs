//! What weir replaces, measured on the same remote in the same run: the scripts CI jobs run
//! to bump one app's tag, and git plumbing straight into the bare repository, the floor for
//! any process that makes one commit.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs a bash script with `$1..` set, timed; panics when it fails.
fn script(text: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", text, "bench"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "ci")
        .env("GIT_AUTHOR_EMAIL", "ci@example.com")
        .env("GIT_COMMITTER_NAME", "ci")
        .env("GIT_COMMITTER_EMAIL", "ci@example.com")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "baseline script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// The sed a CI job runs on the app's kustomization.
const SED: &str = r#"sed -i "s/newTag: [^ ]*/newTag: $TAG/" "apps/$APP/kustomization.yaml""#;

/// A long-lived checkout: pull, edit the tag, commit, push.
pub fn warm_clone(checkout: &Path, app: &str, tag: &str) -> Duration {
    let text = format!(
        r#"cd "$1"; APP=$2; TAG=$3
git pull -q --ff-only origin main
{SED}
git commit -qam "$APP: bump to $TAG"
git push -q origin main"#
    );
    script(&text, &[checkout.to_str().unwrap(), app, tag])
}

/// A CI job's fresh shallow clone, then the same edit, commit and push.
pub fn shallow_clone(url: &str, into: &Path, app: &str, tag: &str) -> Duration {
    let text = format!(
        r#"URL=$1; APP=$3; TAG=$4
git clone -q --depth 1 --branch main "$URL" "$2"
cd "$2"
{SED}
git commit -qam "$APP: bump to $TAG"
git push -q origin main"#
    );
    script(&text, &[url, into.to_str().unwrap(), app, tag])
}

/// The floor: the new blob, the three trees on its path and the commit written into the bare
/// repository, and the branch moved with the expected old value. No network, no checkout.
pub fn plumbing(bare: &Path, app: &str, tag: &str) -> Duration {
    let text = r#"export GIT_DIR=$1; APP=$2; TAG=$3
old=$(git rev-parse refs/heads/main)
blob=$(git cat-file blob "$old:apps/$APP/kustomization.yaml" | sed "s/newTag: [^ ]*/newTag: $TAG/" | git hash-object -w --stdin)
app=$(git ls-tree "$old:apps/$APP" | sed "s/[0-9a-f]\{40\}\tkustomization.yaml$/$blob\tkustomization.yaml/" | git mktree)
apps=$(git ls-tree "$old:apps" | sed "s/[0-9a-f]\{40\}\t$APP$/$app\t$APP/" | git mktree)
root=$(git ls-tree "$old" | sed "s/[0-9a-f]\{40\}\tapps$/$apps\tapps/" | git mktree)
new=$(git commit-tree "$root" -p "$old" -m "$APP: bump to $TAG")
git update-ref refs/heads/main "$new" "$old""#;
    script(text, &[bare.to_str().unwrap(), app, tag])
}
