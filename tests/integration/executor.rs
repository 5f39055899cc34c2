//! Executor paths with fake metrics and a fake clock: each runs in a fraction of a second
//! against a real bare repository, with time moved by the test.

use crate::primary::fake_engine;
use crate::support::racing::Racing;
use crate::support::repo::{edit, git, Fixture};
use std::sync::Arc;
use std::time::Duration;
use weir::adapters::alerts::NoNotifier;
use weir::adapters::publish::DirectCommit;
use weir::engine::{Engine, Ports, Settings};
use weir::repo::render::Templates;
use weir::test_support::fakes::{FakeClock, FakeMetrics};

fn changed_files(fixture: &Fixture) -> Vec<String> {
    git(&fixture.remote, &["diff", "--name-only", "main~1", "main"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn last_subject(fixture: &Fixture) -> String {
    fixture.log().last().unwrap().1.clone()
}

#[tokio::test]
async fn steps_come_when_due_on_the_clock_and_not_before() {
    let fixture = Fixture::new();
    let (mut engine, clock, metrics) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    fixture.bump("backend", "6.1.1");
    engine.tick().await.unwrap();
    let commits = fixture.log().len();
    // The interval is 3s: at 2.999s nothing moves.
    clock.advance(Duration::from_millis(2999));
    assert_eq!(engine.tick().await.unwrap().commit, None);
    assert_eq!(fixture.log().len(), commits);
    clock.advance(Duration::from_millis(1));
    engine.tick().await.unwrap();
    assert_eq!(
        last_subject(&fixture),
        "backend: advance canary weight 0 -> 25"
    );
    // The first step opened the route without checks; the next one needs them.
    assert_eq!(metrics.queries(), 0);
    clock.advance(Duration::from_secs(3));
    engine.tick().await.unwrap();
    assert_eq!(
        last_subject(&fixture),
        "backend: advance canary weight 25 -> 50"
    );
    assert_eq!(metrics.queries(), 3, "one query per metric of the backend");
}

#[tokio::test]
async fn a_changed_canary_rerenders_the_routing_without_moving_the_rollout() {
    let fixture = Fixture::new();
    let (mut engine, _clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    let before = fixture.state("backend").unwrap();
    fixture.push_change("backend: new host", |work| {
        edit(
            &work.join("apps/backend/canary.yaml"),
            0,
            "spec.service.hosts[0]",
            "api.example.com",
        );
    });
    engine.tick().await.unwrap();
    assert_eq!(
        last_subject(&fixture),
        "backend: routing rendered again from the Canary spec"
    );
    assert_eq!(
        changed_files(&fixture),
        [
            "apps/backend.weir/state.yaml",
            "apps/backend.weir/virtualservice.yaml"
        ]
    );
    let after = fixture.state("backend").unwrap();
    assert_eq!(
        (after.phase, after.canary_weight, &after.promoted_revision),
        (
            before.phase,
            before.canary_weight,
            &before.promoted_revision
        )
    );
    assert!(fixture
        .show("main", "apps/backend.weir/virtualservice.yaml")
        .unwrap()
        .contains("\"api.example.com\""));
}

#[tokio::test]
async fn an_idle_app_is_looked_at_again_when_weirs_files_change() {
    let fixture = Fixture::new();
    let (mut engine, _clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    // Idle twice: the second tick is answered from the memo.
    engine.tick().await.unwrap();
    let report = engine.tick().await.unwrap();
    assert_eq!(report.commit, None);
    fixture.push_change("hand edit", |work| {
        let k = work.join("apps/frontend.weir/primary/kustomization.yaml");
        let text = std::fs::read_to_string(&k).unwrap();
        std::fs::write(
            &k,
            text.replace("nameSuffix: -primary", "nameSuffix: -copy"),
        )
        .unwrap();
    });
    engine.tick().await.unwrap();
    assert!(
        last_subject(&fixture).starts_with("frontend: primary restored to revision "),
        "{}",
        last_subject(&fixture)
    );
    assert!(fixture
        .show("main", "apps/frontend.weir/primary/kustomization.yaml")
        .unwrap()
        .contains("nameSuffix: -primary"));
}

/// A tick that could not publish remembers nothing: the repair it planned happens on the
/// next tick.
#[tokio::test]
async fn nothing_is_remembered_from_a_tick_that_did_not_publish() {
    let fixture = Fixture::new();
    let (mut engine, _clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    fixture.push_change("oops", |work| {
        std::fs::remove_file(work.join("apps/backend.weir/guards.yaml")).unwrap();
    });
    let work = fixture.work.clone();
    let (racing, _) = Racing::new(
        fixture.repo(),
        u32::MAX,
        Box::new(move |n| {
            std::fs::write(work.join(format!("note-{n}")), "x").unwrap();
            git(&work, &["add", "-A"]);
            git(&work, &["commit", "-qm", &format!("writer {n}")]);
            git(&work, &["push", "-q", "origin", "main"]);
        }),
    );
    let clock = FakeClock::at(chrono::Utc::now());
    let mut racing_engine = fixture.engine_on(
        Box::new(racing),
        Arc::new(FakeMetrics::constant(100.0)),
        Arc::new(clock),
    );
    assert!(racing_engine.tick().await.is_err(), "every push raced");
    // The same engine, the remote quiet again: the repair is still due.
    let report = racing_engine.tick().await;
    assert!(report.is_err(), "still racing: the writer never stops");
    engine.tick().await.unwrap();
    assert!(
        last_subject(&fixture).starts_with("backend: primary restored to revision "),
        "{}",
        last_subject(&fixture)
    );
    assert!(fixture
        .show("main", "apps/backend.weir/guards.yaml")
        .is_some());
}

#[tokio::test]
async fn a_template_that_fails_for_one_app_stops_only_that_app() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    for file in weir::repo::render::TEMPLATE_FILES {
        let text =
            std::fs::read_to_string(format!("{}/templates/{file}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        let text = if file == "virtualservice.yaml" {
            format!("{{% if name == \"frontend\" %}}{{{{ no_such_value.x }}}}{{% endif %}}\n{text}")
        } else {
            text
        };
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let mut engine = Engine::new(
        Ports {
            repo: Box::new(fixture.repo()),
            publisher: Box::new(DirectCommit::default()),
            metrics: Arc::new(FakeMetrics::constant(100.0)),
            clock: Arc::new(FakeClock::at(chrono::Utc::now())),
            notifier: Arc::new(NoNotifier),
            hooks: Arc::new(weir::adapters::hooks::NoHooks),
            secrets: None,
            cluster: None,
        },
        weir::adapters::disk::templates(dir.path()).unwrap(),
        Settings {
            min_interval: Duration::from_secs(1),
            ..Settings::default()
        },
    );
    let report = engine.tick().await.unwrap();
    assert_eq!(
        report.message.as_deref(),
        Some("backend: initialization done, primary serves all traffic\n")
    );
    let frontend = report
        .apps
        .iter()
        .find(|a| a.app == "prod/frontend")
        .unwrap();
    assert!(
        frontend.errors[0].starts_with("template virtualservice.yaml:"),
        "{:?}",
        frontend.errors
    );
    assert!(fixture
        .show("main", "apps/frontend.weir/state.yaml")
        .is_none());
}

#[tokio::test]
async fn a_broken_cache_is_cloned_again() {
    let fixture = Fixture::new();
    let (mut engine, _clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    drop(engine);
    // Damage every object of the cache.
    let cache = weir::adapters::git::cache_path(&fixture.settings());
    let objects = cache.join("objects");
    for entry in crate::support::repo::files_under(&objects) {
        std::fs::write(&entry, b"garbage").unwrap();
    }
    let (mut engine, _clock, _) = fake_engine(&fixture);
    fixture.bump("backend", "6.1.1");
    engine.tick().await.expect("the cache is cloned again");
    assert!(
        last_subject(&fixture).starts_with("backend: new revision "),
        "{}",
        last_subject(&fixture)
    );
}

/// Alerts go out after the push, with Flagger's message, the commit that made the step, and
/// the targets of the global provider; a failing analysis sends the error alert naming the
/// failing check.
#[tokio::test]
async fn alerts_follow_the_pushed_step_with_its_commit() {
    use weir::core::spec::AlertSeverity;
    use weir::core::spec::AlertTarget;
    use weir::core::spec::ProviderKind;
    let fixture = Fixture::new();
    let notifier = weir::test_support::fakes::RecordingNotifier::default();
    let clock = FakeClock::at(chrono::Utc::now());
    let metrics = FakeMetrics::constant(50.0);
    let target = AlertTarget {
        provider: "default".into(),
        kind: ProviderKind::Generic,
        address: weir::core::secret::Secret::new("http://127.0.0.1:9/alerts"),
        token: None,
        channel: None,
        username: None,
        proxy: None,
        min_severity: AlertSeverity::Info,
    };
    let mut engine = Engine::new(
        Ports {
            repo: Box::new(fixture.repo()),
            publisher: Box::new(DirectCommit::default()),
            metrics: Arc::new(metrics.clone()),
            clock: Arc::new(clock.clone()),
            notifier: Arc::new(notifier.clone()),
            hooks: Arc::new(weir::adapters::hooks::NoHooks),
            secrets: None,
            cluster: None,
        },
        Templates::embedded().unwrap(),
        Settings {
            min_interval: Duration::from_secs(1),
            default_alerts: vec![target],
            ..Settings::default()
        },
    );
    let report = engine.tick().await.unwrap();
    let commit = report.commit.unwrap().to_string();
    {
        let alerts = notifier.alerts.lock().unwrap();
        assert_eq!(alerts.len(), 2, "one per initialised app: {alerts:#?}");
        for a in alerts.iter() {
            assert_eq!(
                a.message,
                "New Deployment detected, initialization completed."
            );
            assert_eq!(a.commit.as_deref(), Some(commit.as_str()));
            assert_eq!(a.targets.len(), 1);
        }
    }
    // A bad release: success rate 50 fails every check until the rollback.
    fixture.bump("backend", "6.1.1");
    for _ in 0..8 {
        clock.advance(Duration::from_secs(5));
        engine.tick().await.unwrap();
        if fixture.state("backend").unwrap().phase == weir::core::spec::Phase::Failed {
            break;
        }
    }
    assert_eq!(
        fixture.state("backend").unwrap().phase,
        weir::core::spec::Phase::Failed
    );
    let alerts = notifier.alerts.lock().unwrap();
    let last = alerts.last().unwrap();
    assert_eq!(last.severity, AlertSeverity::Error);
    assert_eq!(last.message, "Failed checks threshold reached 2");
    assert!(
        last.failing
            .iter()
            .any(|f| f.starts_with("request-success-rate 50 < 99")),
        "{:?}",
        last.failing
    );
    assert_eq!(
        last.commit.as_deref(),
        Some(fixture.log().last().unwrap().0.as_str())
    );
}

/// Deleting a Canary with `revertOnDeletion: true` removes weir's folder in the next commit
/// (the routing goes back to the user's objects) and the repository still builds; without it,
/// weir's folder stays as Flagger leaves its objects.
#[tokio::test]
async fn a_deleted_canary_with_revert_on_deletion_takes_weirs_folder_with_it() {
    let fixture = Fixture::with(|work| {
        let canary = work.join("apps/backend/canary.yaml");
        let text = std::fs::read_to_string(&canary)
            .unwrap()
            .replace("spec:\n", "spec:\n  revertOnDeletion: true\n");
        std::fs::write(&canary, text).unwrap();
    });
    let (mut engine, clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    assert!(fixture.state("backend").unwrap().revert_on_deletion);
    assert!(!fixture.state("frontend").unwrap().revert_on_deletion);
    fixture.push_change("remove the backend and frontend Canaries", |work| {
        for app in ["backend", "frontend"] {
            std::fs::remove_file(work.join(format!("apps/{app}/canary.yaml"))).unwrap();
            let k = work.join(format!("apps/{app}/kustomization.yaml"));
            let text = std::fs::read_to_string(&k)
                .unwrap()
                .replace("  - canary.yaml\n", "");
            std::fs::write(&k, text).unwrap();
        }
    });
    clock.advance(Duration::from_secs(5));
    let report = engine.tick().await.unwrap();
    assert!(report.commit.is_some(), "{report:#?}");
    let (_, subject) = fixture.log().last().cloned().unwrap();
    assert_eq!(
        subject,
        "backend: Canary deleted (revertOnDeletion), weir's objects removed"
    );
    assert!(fixture
        .show("main", "apps/backend.weir/state.yaml")
        .is_none());
    assert!(fixture
        .show("main", "apps/frontend.weir/state.yaml")
        .is_some());
    let built = crate::support::repo::docs(&crate::support::repo::flux_build(&fixture, "main"));
    assert!(crate::support::repo::find(&built, "Deployment", "backend-primary").is_none());
    assert!(crate::support::repo::find(&built, "Deployment", "backend").is_some());
    // Nothing more to do.
    clock.advance(Duration::from_secs(5));
    assert!(engine.tick().await.unwrap().commit.is_none());
}
