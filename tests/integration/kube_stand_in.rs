//! The Kubernetes API stand-in answers the real kube client as an API server does: typed and
//! dynamic reads, selectors and pages, errors as kube maps them, optimistic concurrency, the
//! status subresource, watches with bookmarks and expiry, and the bearer token. These tests pin
//! the stand-in to the client weir's cluster adapter is built on, so that a failing test of the
//! adapter points at the adapter.

use crate::support::kube_api::{self, KubeApi, Stuck, TOKEN};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, VersionMatch, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tempfile::TempDir;

/// Long enough for any answer on loopback; waiting this long for an event is a failure.
const DEADLINE: Duration = Duration::from_secs(10);

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// A kube client built from the kubeconfig at `path`, as weir builds its own.
async fn client(path: &Path) -> kube::Client {
    // The process's one crypto provider (kube's rustls needs one even for plain http).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(path).expect("reading the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration from the kubeconfig");
    kube::Client::try_from(config).expect("a kube client")
}

/// A stand-in and a client of it whose default namespace is `namespace`.
async fn cluster(namespace: &str) -> (KubeApi, kube::Client, TempDir) {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path, namespace, Some(TOKEN));
    let client = client(&path).await;
    (api, client, dir)
}

/// The `Status` kube made of a refusal; panics on success or on any other error.
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected a refusal from the API, got {other:?}"),
    }
}

/// The next event of a watch, within [`DEADLINE`]; `None` when the stream ended.
async fn next_event<K>(
    events: &mut (impl Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> Option<WatchEvent<K>> {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("an event or the end of the stream within the deadline")
        .map(|e| e.expect("a watch event kube can read"))
}

fn kustomizations() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
    ))
}

#[tokio::test]
async fn a_typed_get_reads_a_deployment_from_the_kubeconfigs_namespace() {
    let (api, client, _dir) = cluster("shop").await;
    api.put(kube_api::deployment("shop", "web", 3));
    api.patch_status(
        "apps/v1",
        "Deployment",
        "shop",
        "web",
        kube_api::ready_deployment_status(1, 3),
    );

    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let web = deployments.get("web").await.expect("the Deployment");

    assert_eq!(web.metadata.name.as_deref(), Some("web"));
    assert_eq!(web.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(web.metadata.generation, Some(1));
    assert_eq!(
        web.metadata.resource_version,
        Some(api.resource_version()),
        "the last write's version"
    );
    assert!(web.metadata.uid.is_some_and(|u| u.len() == 36));
    assert!(web.metadata.creation_timestamp.is_some());
    assert_eq!(web.spec.and_then(|s| s.replicas), Some(3));
    let status = web.status.expect("the status written");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.available_replicas, Some(3));
    let progressing = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .expect("a Progressing condition");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    let requests = api.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].path,
        "/apis/apps/v1/namespaces/shop/deployments/web"
    );
    assert_eq!(requests[0].status, 200);
    assert!(
        !format!("{requests:?}").contains(TOKEN),
        "the token is never recorded"
    );
}

#[tokio::test]
async fn a_list_filters_by_labels_and_fields_in_one_namespace_or_all() {
    let (api, client, _dir) = cluster("default").await;
    for (ns, name, tier) in [
        ("shop", "web", Some("front")),
        ("shop", "cart", Some("back")),
        ("shop", "batch", None),
        ("admin", "panel", Some("front")),
    ] {
        let mut d = kube_api::deployment(ns, name, 1);
        if let Some(tier) = tier {
            d["metadata"]["labels"]["tier"] = json!(tier);
        }
        api.put(d);
    }
    let names = |list: kube::api::ObjectList<Deployment>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d.metadata.namespace.unwrap(),
                    d.metadata.name.unwrap()
                )
            })
            .collect()
    };
    let shop: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let all: Api<Deployment> = Api::all(client);

    let front = shop
        .list(&ListParams::default().labels("tier=front"))
        .await
        .unwrap();
    assert_eq!(
        front.metadata.resource_version,
        Some(api.resource_version()),
        "a list carries the store's version"
    );
    assert_eq!(names(front), ["shop/web"]);
    let not_front = shop
        .list(&ListParams::default().labels("tier!=front"))
        .await
        .unwrap();
    assert_eq!(
        names(not_front),
        ["shop/batch", "shop/cart"],
        "!= matches the unlabelled too"
    );
    let tiered = all
        .list(&ListParams::default().labels("tier,app"))
        .await
        .unwrap();
    assert_eq!(names(tiered), ["admin/panel", "shop/cart", "shop/web"]);
    let set = all
        .list(&ListParams::default().labels("tier in (front, back),app!=web"))
        .await
        .unwrap();
    assert_eq!(names(set), ["admin/panel", "shop/cart"]);
    let by_name = all
        .list(&ListParams::default().fields("metadata.name=cart"))
        .await
        .unwrap();
    assert_eq!(names(by_name), ["shop/cart"]);
    let by_namespace = all
        .list(&ListParams::default().fields("metadata.namespace!=shop"))
        .await
        .unwrap();
    assert_eq!(names(by_namespace), ["admin/panel"]);

    let unsupported = refusal(
        all.list(&ListParams::default().fields("spec.replicas=1"))
            .await,
    );
    assert_eq!(
        (unsupported.code, unsupported.reason.as_str()),
        (400, "BadRequest")
    );
    assert!(unsupported
        .message
        .contains("field label not supported: spec.replicas"));
    let listed = api.requests().last().cloned().unwrap();
    assert_eq!(listed.path, "/apis/apps/v1/deployments");
    assert_eq!(
        listed.query.get("fieldSelector").map(String::as_str),
        Some("spec.replicas=1")
    );
}

#[tokio::test]
async fn a_dynamic_object_reads_a_flux_kustomization() {
    let (api, client, _dir) = cluster("default").await;
    let revision = kube_api::revision(SHA);
    api.put(kube_api::kustomization(
        "flux-system",
        "apps",
        "./apps/production",
        "flux-system",
        Some(&revision),
        true,
    ));
    api.put(kube_api::kustomization(
        "flux-system",
        "infra",
        "./infrastructure",
        "flux-system",
        None,
        false,
    ));
    let kustomizations: Api<DynamicObject> =
        Api::namespaced_with(client, "flux-system", &kustomizations());

    let apps = kustomizations.get("apps").await.expect("the Kustomization");
    let types = apps.types.expect("a custom resource carries its type");
    assert_eq!(types.api_version, "kustomize.toolkit.fluxcd.io/v1");
    assert_eq!(types.kind, "Kustomization");
    assert_eq!(apps.data["spec"]["path"], "./apps/production");
    assert_eq!(apps.data["spec"]["sourceRef"]["kind"], "GitRepository");
    assert_eq!(
        apps.data["status"]["lastAppliedRevision"],
        revision.as_str()
    );
    let ready = &apps.data["status"]["conditions"][0];
    assert_eq!(
        (&ready["type"], &ready["status"], &ready["reason"]),
        (
            &json!("Ready"),
            &json!("True"),
            &json!("ReconciliationSucceeded")
        )
    );
    assert_eq!(ready["message"], format!("Applied revision: {revision}"));

    let list = kustomizations.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.types.kind, "KustomizationList");
    let states: Vec<(String, serde_json::Value)> = list
        .items
        .iter()
        .map(|k| {
            (
                k.metadata.name.clone().unwrap(),
                k.data["status"]["conditions"][0]["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("apps".to_string(), json!("True")),
            ("infra".to_string(), json!("False"))
        ]
    );
    assert!(
        list.items.iter().all(|k| k.types.is_some()),
        "custom resources keep apiVersion and kind in lists"
    );
    assert_eq!(
        api.requests()[0].path,
        "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps"
    );
}

#[tokio::test]
async fn a_missing_object_is_kubes_not_found() {
    let (_api, client, _dir) = cluster("shop").await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);

    let status = refusal(deployments.get("absent").await);
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "deployments.apps \"absent\" not found");
    assert!(status.is_not_found());
    let details = status.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("absent", "apps", "deployments")
    );
    assert!(deployments.get_opt("absent").await.unwrap().is_none());
}

#[tokio::test]
async fn a_lease_replaced_with_a_stale_version_is_a_conflict() {
    let (api, client, _dir) = cluster("weir").await;
    let leases: Api<Lease> = Api::default_namespaced(client);
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": "weir-leader" },
        "spec": { "holderIdentity": "pod-a", "leaseDurationSeconds": 15 },
    }))
    .unwrap();

    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    assert_eq!(
        created.metadata.namespace.as_deref(),
        Some("weir"),
        "from the URL"
    );
    let again = refusal(leases.create(&PostParams::default(), &lease).await);
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(
        again.message,
        "leases.coordination.k8s.io \"weir-leader\" already exists"
    );

    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let renewed = leases
        .replace("weir-leader", &PostParams::default(), &renewed)
        .await
        .expect("a replace at the current version");
    assert_ne!(
        renewed.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(
        renewed.metadata.uid, created.metadata.uid,
        "the same object"
    );
    assert_eq!(renewed.metadata.generation, Some(2), "the spec changed");

    let stale = refusal(
        leases
            .replace("weir-leader", &PostParams::default(), &created)
            .await,
    );
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        stale.message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"weir-leader\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert!(stale.is_conflict());
    let held = api
        .get("coordination.k8s.io/v1", "Lease", "weir", "weir-leader")
        .unwrap();
    assert_eq!(
        held["spec"]["holderIdentity"], "pod-b",
        "the stale write changed nothing"
    );

    let stale_patch = refusal(
        leases
            .patch(
                "weir-leader",
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": { "resourceVersion": created.metadata.resource_version },
                    "spec": { "holderIdentity": "pod-c" },
                })),
            )
            .await,
    );
    assert_eq!(
        stale_patch.code, 409,
        "a merge patch with a version is conditional too"
    );
    let missing = refusal(
        leases
            .replace("other", &PostParams::default(), &{
                let mut l = created.clone();
                l.metadata.name = Some("other".into());
                l
            })
            .await,
    );
    assert_eq!(missing.code, 404);
}

#[tokio::test]
async fn writes_to_the_object_keep_its_status_and_writes_to_status_keep_the_rest() {
    let (api, client, _dir) = cluster("shop").await;
    api.put(kube_api::deployment("shop", "web", 2));
    api.patch_status(
        "apps/v1",
        "Deployment",
        "shop",
        "web",
        kube_api::ready_deployment_status(1, 2),
    );
    let deployments: Api<Deployment> = Api::default_namespaced(client);

    let scaled = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": { "replicas": 4 },
                "status": { "readyReplicas": 0 },
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        scaled.metadata.generation,
        Some(2),
        "a spec change is a new generation"
    );
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    assert_eq!(
        scaled.status.unwrap().ready_replicas,
        Some(2),
        "status is written only through /status"
    );

    let observed = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": { "replicas": 9 },
                "status": { "observedGeneration": 2, "readyReplicas": 4 },
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        observed.metadata.generation,
        Some(2),
        "no new generation for status"
    );
    assert_eq!(
        observed.spec.unwrap().replicas,
        Some(4),
        "/status writes only status"
    );
    let status = observed.status.unwrap();
    assert_eq!(
        (status.observed_generation, status.ready_replicas),
        (Some(2), Some(4))
    );

    let before = api.resource_version();
    let same = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 4 } })),
        )
        .await
        .unwrap();
    assert_eq!(
        (same.metadata.resource_version, api.resource_version()),
        (Some(before.clone()), before),
        "a write that changes nothing is no write"
    );

    let applied = deployments
        .patch(
            "api",
            &PatchParams::apply("weir"),
            &Patch::Apply(kube_api::deployment("shop", "api", 1)),
        )
        .await
        .expect("server-side apply creates a missing object");
    assert_eq!(applied.metadata.generation, Some(1));
    let apply = api.requests().last().cloned().unwrap();
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        apply.query.get("fieldManager").map(String::as_str),
        Some("weir")
    );
    assert_eq!(apply.status, 201);

    let gone = deployments
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    let status = gone
        .right()
        .expect("a built-in resource's delete answers a Status");
    assert_eq!(status.details.unwrap().name, "api");
    assert!(api.get("apps/v1", "Deployment", "shop", "api").is_none());
}

#[tokio::test]
async fn a_watch_sees_a_later_write_and_a_bookmark() {
    let (api, client, _dir) = cluster("shop").await;
    api.put(kube_api::deployment("shop", "web", 3));
    let from = api.resource_version();
    let deployments: Api<Deployment> = Api::default_namespaced(client);

    let mut events = deployments
        .watch(&WatchParams::default(), &from)
        .await
        .expect("the watch starts")
        .boxed();
    assert_eq!(api.open_watches(), 1);
    let watched = api.requests().last().cloned().unwrap();
    assert_eq!(watched.query.get("watch").map(String::as_str), Some("true"));
    assert_eq!(
        watched.query.get("allowWatchBookmarks").map(String::as_str),
        Some("true"),
        "kube asks for bookmarks by default"
    );
    assert_eq!(watched.query.get("resourceVersion"), Some(&from));

    let written = api.patch_status(
        "apps/v1",
        "Deployment",
        "shop",
        "web",
        kube_api::stuck_deployment_status(1, 3, 1, Stuck::Unavailable, chrono::Utc::now()),
    );
    match next_event(&mut events).await {
        Some(WatchEvent::Modified(d)) => {
            assert_eq!(d.metadata.name.as_deref(), Some("web"));
            assert_eq!(
                d.metadata.resource_version.as_deref(),
                written["metadata"]["resourceVersion"].as_str()
            );
            assert_eq!(d.status.unwrap().ready_replicas, Some(1));
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    api.bookmark();
    match next_event(&mut events).await {
        Some(WatchEvent::Bookmark(mark)) => {
            assert_eq!(mark.metadata.resource_version, api.resource_version());
            assert_eq!(mark.types.kind, "Deployment");
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    }

    api.delete("apps/v1", "Deployment", "shop", "web");
    assert!(matches!(
        next_event(&mut events).await,
        Some(WatchEvent::Deleted(_))
    ));
}

#[tokio::test]
async fn a_watch_from_zero_starts_with_the_objects_and_follows_its_selector() {
    let (api, client, _dir) = cluster("shop").await;
    let mut canary = kube_api::deployment("shop", "web", 1);
    canary["metadata"]["labels"]["track"] = json!("canary");
    api.put(canary.clone());
    api.put(kube_api::deployment("shop", "cart", 1));
    let deployments: Api<Deployment> = Api::default_namespaced(client);

    let mut events = deployments
        .watch(&WatchParams::default().labels("track=canary"), "0")
        .await
        .unwrap()
        .boxed();
    match next_event(&mut events).await {
        Some(WatchEvent::Added(d)) => assert_eq!(d.metadata.name.as_deref(), Some("web")),
        other => panic!("expected the current object as ADDED, got {other:?}"),
    }

    canary["metadata"]["labels"]["track"] = json!("primary");
    api.put(canary);
    match next_event(&mut events).await {
        Some(WatchEvent::Deleted(d)) => assert_eq!(d.metadata.name.as_deref(), Some("web")),
        other => panic!("an object leaving the selector is DELETED, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watch_ends_with_a_bookmark_at_its_timeout() {
    let (api, client, _dir) = cluster("shop").await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    let mut events = deployments
        .watch(&WatchParams::default().timeout(1), &api.resource_version())
        .await
        .unwrap()
        .boxed();

    assert!(matches!(
        next_event(&mut events).await,
        Some(WatchEvent::Bookmark(_))
    ));
    assert!(next_event(&mut events).await.is_none(), "the stream ends");
}

#[tokio::test]
async fn a_version_older_than_the_history_is_expired() {
    let (api, client, _dir) = cluster("shop").await;
    api.put(kube_api::deployment("shop", "web", 1));
    let old = api.resource_version();
    api.put(kube_api::deployment("shop", "web", 2));
    let deployments: Api<Deployment> = Api::default_namespaced(client);

    let exact = deployments
        .list(&ListParams::default().at(&old).matching(VersionMatch::Exact))
        .await
        .expect("a list at a version the history still has");
    assert_eq!(
        exact.items[0].spec.as_ref().unwrap().replicas,
        Some(1),
        "as it was then"
    );
    assert_eq!(exact.metadata.resource_version, Some(old.clone()));

    api.expire_history();
    let mut events = deployments
        .watch(&WatchParams::default(), &old)
        .await
        .expect("the watch starts, then reports the expiry")
        .boxed();
    match next_event(&mut events).await {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(status.message.starts_with("too old resource version"));
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(next_event(&mut events).await.is_none(), "the stream ends");

    let gone = refusal(
        deployments
            .list(&ListParams::default().at(&old).matching(VersionMatch::Exact))
            .await,
    );
    assert_eq!((gone.code, gone.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn a_list_pages_with_continue_until_the_history_is_forgotten() {
    let (api, client, _dir) = cluster("shop").await;
    for name in ["a", "b", "c"] {
        api.put(kube_api::deployment("shop", name, 1));
    }
    let deployments: Api<Deployment> = Api::default_namespaced(client);

    let first = deployments
        .list(&ListParams::default().limit(2))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    let token = first.metadata.continue_.clone().expect("a continue token");
    api.put(kube_api::deployment("shop", "d", 1));
    let rest = deployments
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let names: Vec<_> = rest
        .items
        .iter()
        .map(|d| d.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["c"], "the rest as of the first page's version");
    assert_eq!(rest.metadata.continue_, None);

    api.expire_history();
    let expired = refusal(
        deployments
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await,
    );
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn a_request_without_the_token_is_unauthorized() {
    let api = KubeApi::start();
    api.put(kube_api::deployment("default", "web", 1));
    let dir = tempfile::tempdir().unwrap();
    let anonymous = dir.path().join("anonymous");
    api.write_kubeconfig(&anonymous, "default", None);
    let wrong = dir.path().join("wrong");
    api.write_kubeconfig(&wrong, "default", Some("not-the-token"));

    for path in [&anonymous, &wrong] {
        let deployments: Api<Deployment> = Api::default_namespaced(client(path).await);
        let status = refusal(deployments.get("web").await);
        assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
    }
    let right: Api<Deployment> = Api::default_namespaced(client(&api.kubeconfig(dir.path())).await);
    assert!(right.get("web").await.is_ok());
}

#[tokio::test]
async fn failed_requests_answer_a_status_and_kube_retries_503_itself() {
    let (api, client, _dir) = cluster("default").await;
    api.put(kube_api::deployment("default", "web", 1));
    let deployments: Api<Deployment> = Api::default_namespaced(client);

    api.fail_next(1, 500);
    let status = refusal(deployments.get("web").await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );

    api.clear_requests();
    api.fail_next(2, 503);
    deployments
        .get("web")
        .await
        .expect("kube's default client retries 503 without telling");
    let answered: Vec<u16> = api.requests().iter().map(|r| r.status).collect();
    assert_eq!(answered, [503, 503, 200]);
}
