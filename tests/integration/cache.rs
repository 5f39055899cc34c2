//! weir's git cache heals itself. Each kind of damage a crash or a bad disk leaves behind is
//! found when an operation on the cache fails, reported as what it is, and repaired by
//! cloning again; the step that was due lands in the same tick (or, for a failure weir cannot
//! place, in the tick after it failed the same way twice).

use crate::support::racing::Racing;
use crate::support::repo::{git, Fixture};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

fn cache_of(fixture: &Fixture) -> PathBuf {
    weir::adapters::git::cache_path(&fixture.settings())
}

/// Files under `dir/objects/pack` whose name ends with `ext`.
fn packs(cache: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(cache.join("objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect()
}

/// Overwrites the middle of a file with zeros, keeping its size.
fn zero_middle(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let (from, to) = (bytes.len() / 4, bytes.len() * 3 / 4);
    assert!(to > from, "{} is too small to damage", file.display());
    bytes[from..to].fill(0);
    std::fs::write(file, bytes).unwrap();
}

/// A file an hour old, as one left by a process that crashed long ago.
fn stale_file(path: &Path) {
    std::fs::write(path, "").unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

/// Initialises the fixture through one engine, bumps the backend, damages the cache, and
/// returns the fixture, the engine and the commit of the bump.
async fn damaged(damage: impl FnOnce(&Path)) -> (Fixture, weir::engine::Engine, String) {
    let fixture = Fixture::new();
    let mut engine = fixture.engine(None);
    engine.tick().await.expect("initialised");
    fixture.bump("backend", "6.1.1");
    let bump = git(&fixture.remote, &["rev-parse", "main"])
        .trim()
        .to_string();
    damage(&cache_of(&fixture));
    (fixture, engine, bump)
}

/// The step the bump made due is on the remote, right after the bump.
fn step_landed(fixture: &Fixture, bump: &str) {
    let parent = git(&fixture.remote, &["rev-parse", "main^"]);
    assert_eq!(
        parent.trim(),
        bump,
        "weir's step sits on the bump: {:?}",
        fixture.log()
    );
    let (_, subject) = fixture.log().pop().unwrap();
    assert!(subject.starts_with("backend: "), "{subject}");
}

#[tokio::test]
async fn a_stale_lock_left_by_a_crash_mid_fetch_is_cleared_by_cloning_again() {
    let (fixture, mut engine, bump) = damaged(|cache| {
        stale_file(&cache.join("refs/remotes/origin/main.lock"));
    })
    .await;
    let report = engine.tick().await.expect("the cache heals");
    assert!(report.commit.is_some());
    step_landed(&fixture, &bump);
    assert!(!cache_of(&fixture)
        .join("refs/remotes/origin/main.lock")
        .exists());
}

#[tokio::test]
async fn damaged_pack_bytes_are_cloned_again() {
    let (fixture, mut engine, bump) = damaged(|cache| {
        for pack in packs(cache, ".pack") {
            zero_middle(&pack);
        }
    })
    .await;
    engine.tick().await.expect("the cache heals");
    step_landed(&fixture, &bump);
}

#[tokio::test]
async fn a_damaged_pack_index_is_cloned_again() {
    let (fixture, mut engine, bump) = damaged(|cache| {
        for idx in packs(cache, ".idx") {
            zero_middle(&idx);
        }
    })
    .await;
    engine.tick().await.expect("the cache heals");
    step_landed(&fixture, &bump);
}

#[tokio::test]
async fn missing_objects_are_cloned_again() {
    let (fixture, mut engine, bump) = damaged(|cache| {
        for file in packs(cache, ".pack")
            .into_iter()
            .chain(packs(cache, ".idx"))
        {
            std::fs::remove_file(file).unwrap();
        }
    })
    .await;
    engine.tick().await.expect("the cache heals");
    step_landed(&fixture, &bump);
}

/// The commit weir built is damaged on disk between building and pushing it. Before, the
/// push failed on weir's side and was reported as the remote refusing the update ("not a
/// race; weir will not retry it"); now the cache is cloned again and the step is planned
/// again in the same tick, on every transport.
#[tokio::test]
async fn a_commit_damaged_before_its_push_is_planned_again_on_a_fresh_clone() {
    let fixture = Fixture::new();
    fixture.engine(None).tick().await.expect("initialised");
    fixture.bump("backend", "6.1.1");
    let bump = git(&fixture.remote, &["rev-parse", "main"])
        .trim()
        .to_string();
    let cache = cache_of(&fixture);
    let (racing, pushes) = Racing::new(
        fixture.repo(),
        1,
        Box::new(move |_| {
            // The newest pack holds the commit weir just built.
            let newest = packs(&cache, ".pack")
                .into_iter()
                .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
                .unwrap();
            zero_middle(&newest);
        }),
    );
    let mut engine = fixture.engine_with(None, Box::new(racing));
    let report = engine.tick().await.expect("repaired and planned again");
    assert!(report.commit.is_some());
    assert_eq!(pushes.load(std::sync::atomic::Ordering::SeqCst), 2);
    step_landed(&fixture, &bump);
}

/// A fault weir cannot place (here `FETCH_HEAD` turned into a folder, so every fetch fails to
/// write it) fails the tick once with what it is; the second time it fails the same way, the
/// cache is cloned again and the tick goes on.
#[tokio::test]
async fn a_cache_that_fails_the_same_way_twice_is_cloned_again() {
    let (fixture, mut engine, bump) = damaged(|cache| {
        let _ = std::fs::remove_file(cache.join("FETCH_HEAD"));
        std::fs::create_dir_all(cache.join("FETCH_HEAD/x")).unwrap();
    })
    .await;
    let first = engine
        .tick()
        .await
        .expect_err("the first failure is reported");
    assert!(first.to_string().contains("FETCH_HEAD"), "{first}");
    engine.tick().await.expect("the second, same failure heals");
    step_landed(&fixture, &bump);
}

/// `weir step` as CI runs it, a fresh process each time, after a crash left a lock file: the
/// step lands and the output says what was wrong.
#[test]
fn a_fresh_process_heals_a_stale_lock_and_says_so() {
    let fixture = Fixture::new();
    let cache_dir = fixture.dir.path().join("cli-cache");
    let step = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "step",
                "--min-interval",
                "1s",
                "--repo",
                &fixture.url(),
                "--cache",
            ])
            .arg(&cache_dir)
            .env_remove("WEIR_PROMETHEUS")
            .env_remove("WEIR_GIT_TOKEN")
            .output()
            .unwrap()
    };
    let first = step();
    assert!(
        first.status.success(),
        "initialised: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    fixture.bump("backend", "6.1.1");
    let bump = git(&fixture.remote, &["rev-parse", "main"])
        .trim()
        .to_string();
    let cache = weir::adapters::git::cache_path(&weir::adapters::git::GitSettings {
        cache_dir: cache_dir.clone(),
        ..fixture.settings()
    });
    stale_file(&cache.join("refs/remotes/origin/main.lock"));
    let out = step();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("stale lock file") && stderr.contains("cloning it again"),
        "{stderr}"
    );
    step_landed(&fixture, &bump);
}
