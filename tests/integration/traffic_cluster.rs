//! The traffic simulator's Kubernetes API, read by weir's own cluster view (the kube client,
//! through the kubeconfig the simulator writes): what the demo shows of the cluster is what
//! weir reads of it. Flux applies a commit only after the simulator's lag, a new Deployment
//! spec is read as not rolled out until the simulator's rollout delay has passed, the primary
//! is missing until weir's first step is applied, and the replicas are the build's (weir's
//! canary-replicas Component included).

use crate::support::repo::Fixture;
use crate::support::traffic::Traffic;
use crate::support::wait::poll_async;
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::adapters::cluster::KubeView;
use weir::core::cluster::{readiness, ClusterTarget, Observation, Readiness, Workload};
use weir::ports::ClusterView;

/// How long after a push the simulated Flux applies it.
const LAG: Duration = Duration::from_secs(2);
/// How long a changed Deployment takes to roll out. The first look at an applied commit comes
/// within a poll of the apply, far inside this.
const ROLLOUT: Duration = Duration::from_secs(3);
/// Longer than any apply and rollout takes here.
const DEADLINE: Duration = Duration::from_secs(20);

fn target() -> ClusterTarget {
    ClusterTarget {
        dir: "apps/backend".into(),
        namespace: "prod".into(),
        target: "backend".into(),
        kustomization: None,
        recent: Arc::from(Vec::new()),
    }
}

/// One look at the backend, found through the Kustomization's path.
async fn look(view: &KubeView) -> Observation {
    let mut seen = view.observe(&[target()]).await;
    seen.pop().unwrap().unwrap()
}

/// Looks until the Kustomization reports `commit` applied; the first look that does.
async fn applied(view: &KubeView, commit: &str) -> Observation {
    let want = format!("main@sha1:{commit}");
    let seen = poll_async(DEADLINE, || async {
        let seen = look(view).await;
        (seen.applied_revision.as_deref() == Some(want.as_str())).then_some(seen)
    })
    .await;
    seen.unwrap_or_else(|| panic!("{commit} not applied within {DEADLINE:?}"))
}

/// Looks until the primary (`primary`) or the canary is rolled out; the workload then.
async fn rolled_out(view: &KubeView, primary: bool) -> Workload {
    let seen = poll_async(DEADLINE, || async {
        let seen = look(view).await;
        let w = if primary { seen.primary } else { seen.canary };
        w.filter(|w| ready(w).is_ready())
    })
    .await;
    seen.unwrap_or_else(|| panic!("not rolled out within {DEADLINE:?}"))
}

fn ready(w: &Workload) -> Readiness {
    readiness(w, 100, Duration::from_secs(600), Utc::now())
}

fn head(fixture: &Fixture) -> String {
    fixture.log().last().unwrap().0.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weirs_cluster_view_reads_what_the_simulator_applies() {
    let fixture = Fixture::new();
    let traffic = Traffic::backend(
        &fixture.remote,
        &[],
        &[
            "--apply-lag",
            &format!("{}s", LAG.as_secs()),
            "--rollout-delay",
            &format!("{}s", ROLLOUT.as_secs()),
        ],
    );
    let view = KubeView::connect(Some(&traffic.kubeconfig()))
        .await
        .unwrap();

    // The cluster ran the head before: applied, the app's Deployment rolled out at its HPA's
    // minimum, no primary yet (a 404, read as missing, not as an error).
    let first = head(&fixture);
    let seen = look(&view).await;
    assert_eq!(seen.applier, "Kustomization flux-system/apps");
    assert_eq!(seen.applied_revision, Some(format!("main@sha1:{first}")));
    assert_eq!(seen.unhealthy, None);
    assert_eq!(seen.primary, None);
    let canary = seen.canary.expect("the app's Deployment");
    assert_eq!(
        (
            canary.name.as_str(),
            canary.namespace.as_str(),
            canary.desired
        ),
        ("backend", "prod", Some(2))
    );
    assert_eq!(ready(&canary), Readiness::Ready);

    // Named by the Canary's annotation, the Kustomization is got by name; a wrong name is the
    // API's 404 Status, read by the client.
    let named = ClusterTarget {
        kustomization: Some("flux-system/apps".into()),
        ..target()
    };
    let wrong = ClusterTarget {
        kustomization: Some("flux-system/nope".into()),
        ..target()
    };
    let mut both = view.observe(&[named, wrong]).await;
    let err = both.pop().unwrap().unwrap_err();
    assert!(
        err.contains("Kustomization flux-system/nope") && err.contains("(404)"),
        "{err}"
    );
    assert_eq!(
        both.pop().unwrap().unwrap().applied_revision,
        seen.applied_revision
    );

    // weir adopts the app (Git only here): its folder brings the primary, which Flux applies
    // only after the lag, and which rolls out only after the rollout delay.
    let mut engine = fixture.engine(None);
    engine.tick().await.unwrap();
    let adopted = head(&fixture);
    assert_ne!(adopted, first);
    let pushed = Instant::now();
    let seen = look(&view).await;
    if pushed.elapsed() < LAG {
        assert_eq!(seen.applied_revision, Some(format!("main@sha1:{first}")));
    }
    let seen = applied(&view, &adopted).await;
    let primary = seen
        .primary
        .expect("the primary, once weir's step is applied");
    assert_eq!(
        (primary.name.as_str(), primary.desired),
        ("backend-primary", Some(2))
    );
    assert!(
        matches!(ready(&primary), Readiness::Waiting(ref m) if m.contains("0 out of 2 new replicas")),
        "{primary:?}"
    );
    // The canary's spec did not change: same generation, still rolled out.
    assert_eq!(
        seen.canary.as_ref().map(|c| c.generation),
        Some(canary.generation)
    );
    let primary = rolled_out(&view, true).await;
    assert_eq!((primary.available, primary.updated), (2, 2));

    // The app opts in to weir's canary-replicas Component, which holds the canary at zero
    // while no release runs: the Deployment the client reads has the build's replicas, a new
    // generation, and its pods go.
    fixture.push_change("backend: canary at zero between releases", |work| {
        let kustomization = work.join("apps/backend/kustomization.yaml");
        let mut text = std::fs::read_to_string(&kustomization).unwrap();
        text.push_str("components: [../backend.weir/canary-replicas]\n");
        std::fs::write(kustomization, text).unwrap();
    });
    let scaled = head(&fixture);
    let seen = applied(&view, &scaled).await;
    let canary_now = seen.canary.expect("the canary");
    assert_eq!(canary_now.desired, Some(0));
    assert_eq!(canary_now.generation, canary.generation + 1);
    assert!(
        matches!(ready(&canary_now), Readiness::Waiting(ref m) if m.contains("pending termination")),
        "{canary_now:?}"
    );
    let canary_now = rolled_out(&view, false).await;
    assert_eq!((canary_now.replicas, canary_now.available), (0, 0));
}
