//! A Kubernetes API server stand-in: a real HTTP/1.1 server on 127.0.0.1 that keeps JSON objects
//! and answers as the Kubernetes API documents, so that weir's cluster adapter, built on the
//! `kube` client and a kubeconfig, can be tested without a cluster (none can run here).
//!
//! What it serves:
//! - Any group, version and resource plural, with no discovery: the core group under
//!   `/api/v1/...`, the others under `/apis/{group}/{version}/...`, namespaced
//!   (`.../namespaces/{ns}/{plural}[/{name}[/status]]`) or cluster-wide (`.../{plural}`, a list or
//!   watch across namespaces). A small table ([`KNOWN`]) gives the kinds, scopes and status
//!   subresources of the resources weir reads; any other plural gets a kind guessed from it, the
//!   scope of its URL and a status subresource, as most custom resources have.
//! - One resource version for the whole store, a decimal counter bumped by every write. Every
//!   object carries `metadata.resourceVersion`, `uid`, `creationTimestamp` and `generation` (1 at
//!   creation, bumped when anything but `metadata` and `status` changes, as for custom
//!   resources; for the kinds here that is the `spec`). A write that changes nothing is no write:
//!   no new version, no watch event, as on a real server.
//! - GET of one object; LIST with `labelSelector` (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
//!   `a notin (x)`), `fieldSelector` (`metadata.name`, `metadata.namespace`; others are 400),
//!   `limit` and `continue`, and `resourceVersion` with `resourceVersionMatch=Exact` served from
//!   the history (410 `Expired` once that history is forgotten, as for a stale `continue`).
//!   Built-in groups' list items have no `apiVersion` and `kind`, custom resources' do, as the
//!   real server sends them.
//! - POST (201; 409 `AlreadyExists`; `generateName`), PUT (404 when missing; 409 `Conflict` when
//!   the body's `metadata.resourceVersion` is set and not the current one), PATCH as
//!   `application/merge-patch+json`, `application/strategic-merge-patch+json` (applied as a merge
//!   patch) and `application/apply-patch+yaml` (server-side apply applied as a merge patch, the
//!   object created when missing; `fieldManager` required), DELETE (with `preconditions`; a
//!   `Status` for built-in groups, the deleted object for custom resources), `dryRun=All`.
//! - The `/status` subresource: a write there changes only `status`; a write to the object
//!   leaves `status` as it was, and a create drops it, for resources that have the subresource.
//! - WATCH (`watch=true` or `1`): a chunked stream of one JSON event a line, `ADDED`, `MODIFIED`,
//!   `DELETED` (an object entering or leaving a selector is added or deleted), after the given
//!   `resourceVersion` (`""` or `"0"`: the current objects as `ADDED` first; `sendInitialEvents`
//!   ends those with the `k8s.io/initial-events-end` bookmark). With `allowWatchBookmarks`,
//!   `BOOKMARK` events carry only `apiVersion`, `kind` and `metadata.resourceVersion`: one when
//!   the test calls [`KubeApi::bookmark`] and one as the watch times out (`timeoutSeconds`,
//!   default 1800). A version older than the history kept gets an `ERROR` event with a 410
//!   `Expired` `Status`, then the end of the stream.
//! - Errors as `Status` objects with the real messages, reasons and `details`; a request
//!   without `Authorization: Bearer TOKEN` is 401 `Unauthorized`. `GET /version` answers 1.33.
//!
//! What it does not do: admission, validation of object schemas, defaulting (beyond the metadata
//! above), field managers and `managedFields` (an apply never removes a field), finalizers and
//! graceful deletion, garbage collection, JSON patches (415), `deletecollection`, discovery,
//! metadata-only (`PartialObjectMetadata`) answers, namespaces that must exist, and waiting for a
//! `resourceVersion` newer than the store's (it is served as the current one). It runs no
//! controllers: a Deployment's status changes only when the test writes it.
//!
//! A test can fail the next N requests with any code, forget the history (so that old versions
//! are expired), and read every request (method, path, query, media type, body, the status
//! answered; never the token). Stops on drop, ending open watches first.
#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::State as AppState;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;

use super::http::Server;

/// The bearer token the stand-in requires, as written into [`KubeApi::kubeconfig`].
pub const TOKEN: &str = "kube-stand-in-token-3f9c1a7e5b2d4c68";

/// How many changes an open watch may fall behind before it is ended with 410 `Expired`.
const WATCH_BUFFER: usize = 4096;

/// A watch without `timeoutSeconds` lasts this long (the API server's default minimum).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// A resource the stand-in knows: the kind of its objects, whether it lives in namespaces, and
/// whether it has a `/status` subresource.
struct Known {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
}

/// The resources weir reads and writes, and a few neighbours tests may want.
const KNOWN: &[Known] = &[
    Known {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        status: false,
    },
    Known {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        status: false,
    },
    Known {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        status: true,
    },
    Known {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        status: true,
    },
    Known {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        status: true,
    },
    Known {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        status: false,
    },
    Known {
        group: "kustomize.toolkit.fluxcd.io",
        version: "v1",
        plural: "kustomizations",
        kind: "Kustomization",
        namespaced: true,
        status: true,
    },
    Known {
        group: "source.toolkit.fluxcd.io",
        version: "v1",
        plural: "gitrepositories",
        kind: "GitRepository",
        namespaced: true,
        status: true,
    },
    Known {
        group: "flagger.app",
        version: "v1beta1",
        plural: "canaries",
        kind: "Canary",
        namespaced: true,
        status: true,
    },
    Known {
        group: "networking.istio.io",
        version: "v1",
        plural: "virtualservices",
        kind: "VirtualService",
        namespaced: true,
        status: true,
    },
    Known {
        group: "networking.istio.io",
        version: "v1",
        plural: "destinationrules",
        kind: "DestinationRule",
        namespaced: true,
        status: true,
    },
];

/// A resource as a URL names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Resource {
    group: String,
    version: String,
    plural: String,
}

impl Resource {
    fn known(&self) -> Option<&'static Known> {
        KNOWN
            .iter()
            .find(|k| k.group == self.group && k.version == self.version && k.plural == self.plural)
    }

    /// The resource of objects of `api_version` and `kind` (the plural from [`KNOWN`], else
    /// made as kube makes it).
    fn of(api_version: &str, kind: &str) -> Resource {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let plural = KNOWN
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
            .map(|k| k.plural.to_string())
            .unwrap_or_else(|| plural_of(kind));
        Resource {
            group: group.to_string(),
            version: version.to_string(),
            plural,
        }
    }

    fn kind(&self) -> String {
        match self.known() {
            Some(k) => k.kind.to_string(),
            None => kind_of(&self.plural),
        }
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether writes to the object leave `status` alone (unknown resources: yes, as most
    /// custom resources declare the subresource).
    fn has_status(&self) -> bool {
        self.known().is_none_or(|k| k.status)
    }

    /// Whether the resource comes with Kubernetes rather than from a CustomResourceDefinition.
    fn built_in(&self) -> bool {
        self.group.is_empty() || !self.group.contains('.') || self.group.ends_with(".k8s.io")
    }

    /// `deployments.apps`, `configmaps`: how the API's messages name the resource.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// `Widget` from `widgets`, `Policy` from `policies`: a guess for resources not in [`KNOWN`].
fn kind_of(plural: &str) -> String {
    let singular = if let Some(stem) = plural.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = plural.strip_suffix("sses") {
        format!("{stem}ss")
    } else {
        plural.strip_suffix('s').unwrap_or(plural).to_string()
    };
    let mut chars = singular.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => singular,
    }
}

/// The plural of a kind not in [`KNOWN`], made as kube makes it.
fn plural_of(kind: &str) -> String {
    let word = kind.to_ascii_lowercase();
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|e| word.ends_with(e))
    {
        return format!("{word}es");
    }
    let before_y = word.strip_suffix('y');
    if let Some(stem) = before_y.filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u'])) {
        return format!("{stem}ies");
    }
    format!("{word}s")
}

/// Where an object lives: its resource, namespace (empty when cluster-scoped) and name.
type Key = (Resource, String, String);

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One write, as the history keeps it.
#[derive(Debug)]
struct Change {
    rv: u64,
    key: Key,
    kind: ChangeKind,
    /// The object after the write; for a deletion, the last state at the deletion's version.
    object: Value,
    /// The object before the write (none for a creation): what undoes it.
    previous: Option<Value>,
}

/// What open watches are told.
#[derive(Debug, Clone)]
enum Note {
    Change(Arc<Change>),
    /// Send a bookmark at this version, to the watches that allowed them.
    Bookmark(u64),
    /// The stand-in is stopping: end the stream.
    Close,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query's pairs, decoded (the last of a repeated name).
    pub query: BTreeMap<String, String>,
    /// The `Content-Type` header, when sent.
    pub content_type: Option<String>,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// The status answered (200 for a watch that started).
    pub status: u16,
}

struct State {
    /// The store's resource version: the last write's.
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// Every change after `oldest`, in order.
    history: Vec<Arc<Change>>,
    /// The oldest version the history can go back to; older ones are expired.
    oldest: u64,
    notes: broadcast::Sender<Note>,
    requests: Vec<Recorded>,
    /// Answer this many more requests with this code.
    fail: (usize, u16),
    uid_seed: u64,
    uids: u64,
}

struct Shared {
    state: Mutex<State>,
}

/// A running Kubernetes API stand-in; stops on drop.
pub struct KubeApi {
    shared: Arc<Shared>,
    server: Server,
}

impl KubeApi {
    /// Serves an empty store on a free port of 127.0.0.1.
    pub fn start() -> KubeApi {
        let (notes, _) = broadcast::channel(WATCH_BUFFER);
        let uid_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1,
                objects: BTreeMap::new(),
                history: Vec::new(),
                oldest: 1,
                notes,
                requests: Vec::new(),
                fail: (0, 0),
                uid_seed,
                uids: 0,
            }),
        });
        // One handler for every request: failures and credentials come first, whatever the path.
        let router = Router::new().fallback(serve).with_state(shared.clone());
        let server = Server::start("kube-api", router);
        KubeApi { shared, server }
    }

    /// `http://127.0.0.1:PORT`: the API server's URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Writes `dir/kubeconfig`: this server, namespace `default`, and [`TOKEN`]. Returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        self.write_kubeconfig(&path, "default", Some(TOKEN));
        path
    }

    /// Writes a kubeconfig at `path` whose current context uses this server, `namespace` as the
    /// default namespace, and a user with `token` (none: a user without credentials).
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str, token: Option<&str>) {
        let user = match token {
            Some(token) => json!({ "token": token }),
            None => json!({}),
        };
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "stand-in", "cluster": { "server": self.url() } }],
            "contexts": [{
                "name": "stand-in",
                "context": { "cluster": "stand-in", "user": "weir", "namespace": namespace },
            }],
            "current-context": "stand-in",
            "users": [{ "name": "weir", "user": user }],
        });
        let text = serde_yaml::to_string(&config).expect("a kubeconfig as YAML");
        std::fs::write(path, text)
            .unwrap_or_else(|e| panic!("writing the kubeconfig {}: {e}", path.display()));
    }

    /// Creates or replaces `object` (found by its `apiVersion`, `kind`, `metadata.namespace` and
    /// `metadata.name`) as the cluster then holds it, `status` included; returns it as stored.
    /// A namespaced kind without a namespace goes to `default`.
    pub fn put(&self, object: Value) -> Value {
        let api_version = object["apiVersion"]
            .as_str()
            .expect("the object's apiVersion");
        let kind = object["kind"].as_str().expect("the object's kind");
        let resource = Resource::of(api_version, kind);
        let name = meta_str(&object, "name").expect("the object's metadata.name");
        let namespace = match (meta_str(&object, "namespace"), resource.known()) {
            (Some(ns), _) => ns.to_string(),
            (None, Some(k)) if k.namespaced => "default".to_string(),
            (None, _) => String::new(),
        };
        let key = (resource, namespace, name.to_string());
        self.state().store(&key, object)
    }

    /// Merge-patches the `status` of an object that exists (as a controller writes it: no new
    /// generation); returns the object as stored.
    pub fn patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Value {
        let key = (
            Resource::of(api_version, kind),
            namespace.to_string(),
            name.to_string(),
        );
        let mut st = self.state();
        let mut object = st.objects.get(&key).cloned().unwrap_or_else(|| {
            panic!("patching the status of {kind} {namespace}/{name}, which does not exist")
        });
        merge_patch(&mut object["status"], &status);
        st.store(&key, object)
    }

    /// The object as stored now, if it exists (`namespace` empty for cluster-scoped kinds).
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (
            Resource::of(api_version, kind),
            namespace.to_string(),
            name.to_string(),
        );
        self.state().objects.get(&key).cloned()
    }

    /// Deletes the object at once (no finalizers); returns it as it was, if it existed.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let key = (
            Resource::of(api_version, kind),
            namespace.to_string(),
            name.to_string(),
        );
        let mut st = self.state();
        st.objects.contains_key(&key).then(|| st.commit(&key, None))
    }

    /// The store's current resource version.
    pub fn resource_version(&self) -> String {
        self.state().rv.to_string()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Answers the next `n` requests with `code` and a `Status` body whose reason fits the code
    /// (a 429 also says `Retry-After: 1`). kube 5's client itself retries 429, 503 and 504.
    pub fn fail_next(&self, n: usize, code: u16) {
        self.state().fail = (n, code);
    }

    /// Forgets the history up to now: a watch, an exact list or a `continue` at any older
    /// version is then answered 410 `Expired`, as after the API server's compaction. Open
    /// watches go on.
    pub fn expire_history(&self) {
        let mut st = self.state();
        st.oldest = st.rv;
        st.history.clear();
    }

    /// Sends a `BOOKMARK` at the current version to every open watch that allowed bookmarks.
    pub fn bookmark(&self) {
        let st = self.state();
        let _ = st.notes.send(Note::Bookmark(st.rv));
    }

    /// How many watches are open now (one whose client went away counts until the server
    /// notices the closed connection).
    pub fn open_watches(&self) -> usize {
        self.state().notes.receiver_count()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        // Open watches end now, so that the server's shutdown does not wait for them.
        let st = self
            .shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = st.notes.send(Note::Close);
    }
}

/// A request, parsed.
struct Incoming {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<String>,
    body: Bytes,
}

/// What a request is answered.
enum Reply {
    Object(u16, Value),
    Watch(Box<Watch>),
}

async fn serve(
    AppState(s): AppState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let expected = format!("Bearer {TOKEN}");
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    let req = Incoming {
        method,
        path: uri.path().to_string(),
        query,
        content_type,
        body,
    };
    let mut st = s.state.lock().unwrap();
    let outcome = if st.fail.0 > 0 {
        st.fail.0 -= 1;
        Err(Failure::switched(st.fail.1))
    } else if !authorized {
        Err(Failure::new(401, "Unauthorized", "Unauthorized"))
    } else {
        route(&mut st, &req)
    };
    let status = match &outcome {
        Ok(Reply::Object(code, _)) => *code,
        Ok(Reply::Watch(_)) => 200,
        Err(f) => f.code,
    };
    st.requests.push(Recorded {
        method: req.method.to_string(),
        path: req.path.clone(),
        query: req.query.clone(),
        content_type: req.content_type.clone(),
        body: serde_json::from_slice(&req.body).ok(),
        status,
    });
    drop(st);
    match outcome {
        Ok(Reply::Object(code, body)) => json_response(code, &body, None),
        Ok(Reply::Watch(watch)) => stream(*watch),
        Err(f) => json_response(f.code, &f.status(), f.retry_after),
    }
}

fn json_response(code: u16, body: &Value, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(code).expect("the stand-in's codes are valid");
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A watch's events as a chunked body, one JSON line each, sent as they happen.
fn stream(watch: Watch) -> Response {
    let lines = futures::stream::unfold(watch, |mut w| async move {
        let line = w.next_line().await?;
        Some((Ok::<Bytes, Infallible>(line), w))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(lines))
        .expect("a valid watch response")
}

/// What a URL names.
struct Target {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    /// The `/status` subresource.
    status: bool,
}

impl Target {
    fn key(&self) -> Key {
        (
            self.resource.clone(),
            self.namespace.clone().unwrap_or_default(),
            self.name.clone().unwrap_or_default(),
        )
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// Parses a resource URL; `None` for anything else (404).
fn target(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    // `/api/v1/namespaces[/{name}[/status]]` is the Namespace resource itself.
    let namespace_itself = group.is_empty()
        && rest[0] == "namespaces"
        && (rest.len() <= 2 || (rest.len() == 3 && rest[2] == "status"));
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !namespace_itself && !tail.is_empty() => {
            (Some(ns.to_string()), tail)
        }
        _ => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(name.to_string()), false),
        [plural, name, "status"] => (*plural, Some(name.to_string()), true),
        _ => return None,
    };
    let resource = Resource {
        group: group.to_string(),
        version: version.to_string(),
        plural: plural.to_string(),
    };
    // A known resource is found only in its own scope (a namespaced one is also listed and
    // watched across namespaces).
    if let Some(known) = resource.known() {
        let fits = match (known.namespaced, &namespace) {
            (true, Some(_)) | (false, None) => true,
            (true, None) => name.is_none(),
            (false, Some(_)) => false,
        };
        if !fits {
            return None;
        }
    }
    Some(Target {
        resource,
        namespace,
        name,
        status,
    })
}

fn route(st: &mut State, req: &Incoming) -> Result<Reply, Failure> {
    if req.path == "/version" && req.method == Method::GET {
        return Ok(Reply::Object(200, version()));
    }
    let t = target(&req.path).ok_or_else(Failure::no_route)?;
    let dry_run = req.query.get("dryRun").is_some_and(|v| v == "All");
    let watching = req
        .query
        .get("watch")
        .is_some_and(|v| v == "true" || v == "1");
    match (&req.method, t.name.is_some()) {
        (&Method::GET, false) if watching => st.watch(&t, &req.query).map(Reply::Watch),
        (&Method::GET, false) => st.list(&t, &req.query),
        (&Method::GET, true) => st.get(&t),
        (&Method::POST, false) => st.create(&t, object_body(&req.body, &t.resource)?, dry_run),
        (&Method::PUT, true) => st.update(&t, object_body(&req.body, &t.resource)?, dry_run),
        (&Method::PATCH, true) => st.patch(&t, req, dry_run),
        (&Method::DELETE, true) if !t.status => st.delete(&t, &req.body, dry_run),
        _ => Err(Failure::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// A request body that must be a JSON object.
fn object_body(body: &[u8], resource: &Resource) -> Result<Value, Failure> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(Failure::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): the body is not a JSON object",
            resource.kind()
        ))),
        Err(e) => Err(Failure::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}",
            resource.kind()
        ))),
    }
}

impl State {
    fn get(&self, t: &Target) -> Result<Reply, Failure> {
        self.objects
            .get(&t.key())
            .map(|o| Reply::Object(200, o.clone()))
            .ok_or_else(|| Failure::not_found(&t.resource, t.name()))
    }

    fn list(&self, t: &Target, query: &BTreeMap<String, String>) -> Result<Reply, Failure> {
        let selection = Selection::parse(query)?;
        let limit = match query.get("limit").filter(|l| !l.is_empty()) {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| Failure::bad_request(format!("invalid limit: {l:?}")))?,
            None => 0,
        };
        let (at, after) = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let (rv, after) = decode_continue(token)?;
                if rv < self.oldest {
                    return Err(Failure::new(410, "Expired", EXPIRED_CONTINUE));
                }
                (rv, Some(after))
            }
            None => match (
                query.get("resourceVersion").filter(|v| !v.is_empty()),
                query.get("resourceVersionMatch").map(String::as_str),
            ) {
                (Some(rv), Some("Exact")) => {
                    let rv = parse_rv(rv)?;
                    if rv < self.oldest {
                        return Err(Failure::new(
                            410,
                            "Expired",
                            "The resourceVersion for the provided list is too old.",
                        ));
                    }
                    (rv.min(self.rv), None)
                }
                (None, Some(m)) if !m.is_empty() => {
                    return Err(Failure::bad_request(
                        "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ))
                }
                (_, None | Some("NotOlderThan") | Some("")) => (self.rv, None),
                (_, Some(other)) => {
                    return Err(Failure::bad_request(format!(
                        "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                    )))
                }
            },
        };
        let mut items: Vec<((String, String), Value)> = self
            .snapshot(&t.resource, t.namespace.as_deref(), at)
            .into_iter()
            .filter(|(place, _)| after.as_ref().is_none_or(|a| place > a))
            .filter(|(_, object)| selection.matches(object))
            .collect();
        let mut metadata = json!({ "resourceVersion": at.to_string() });
        if limit > 0 && items.len() > limit {
            let remaining = items.len() - limit;
            items.truncate(limit);
            let last = &items.last().expect("a page of at least one").0;
            metadata["continue"] = json!(encode_continue(at, last));
            if selection.is_empty() {
                metadata["remainingItemCount"] = json!(remaining);
            }
        }
        let built_in = t.resource.built_in();
        let items: Vec<Value> = items
            .into_iter()
            .map(|(_, mut object)| {
                if built_in {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("apiVersion");
                        map.remove("kind");
                    }
                }
                object
            })
            .collect();
        Ok(Reply::Object(
            200,
            json!({
                "kind": format!("{}List", t.resource.kind()),
                "apiVersion": t.resource.api_version(),
                "metadata": metadata,
                "items": items,
            }),
        ))
    }

    /// The objects of `resource` (in `namespace`, or all) as they were at version `at`, which
    /// the history must reach, sorted by namespace and name.
    fn snapshot(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        at: u64,
    ) -> BTreeMap<(String, String), Value> {
        let wanted = |key: &Key| &key.0 == resource && namespace.is_none_or(|ns| key.1 == ns);
        let mut view: BTreeMap<(String, String), Value> = self
            .objects
            .iter()
            .filter(|(key, _)| wanted(key))
            .map(|(key, object)| ((key.1.clone(), key.2.clone()), object.clone()))
            .collect();
        for change in self.history.iter().rev().take_while(|c| c.rv > at) {
            if !wanted(&change.key) {
                continue;
            }
            let place = (change.key.1.clone(), change.key.2.clone());
            match &change.previous {
                Some(previous) => view.insert(place, previous.clone()),
                None => view.remove(&place),
            };
        }
        view
    }

    fn watch(
        &mut self,
        t: &Target,
        query: &BTreeMap<String, String>,
    ) -> Result<Box<Watch>, Failure> {
        let selection = Selection::parse(query)?;
        let timeout = match query.get("timeoutSeconds").filter(|v| !v.is_empty()) {
            Some(v) => Duration::from_secs(
                v.parse()
                    .map_err(|_| Failure::bad_request(format!("invalid timeoutSeconds: {v:?}")))?,
            ),
            None => DEFAULT_WATCH_TIMEOUT,
        };
        let flag = |name: &str| query.get(name).is_some_and(|v| v == "true" || v == "1");
        let bookmarks = flag("allowWatchBookmarks");
        let initial_events = flag("sendInitialEvents");
        let from = query
            .get("resourceVersion")
            .map(String::as_str)
            .unwrap_or("");
        let mut watch = Watch {
            resource: t.resource.clone(),
            namespace: t.namespace.clone(),
            selection,
            bookmarks,
            notes: self.notes.subscribe(),
            pending: VecDeque::new(),
            seen: self.rv,
            deadline: tokio::time::Instant::now() + timeout,
            done: false,
        };
        if from.is_empty() || from == "0" || initial_events {
            let current = self.snapshot(&t.resource, t.namespace.as_deref(), self.rv);
            for object in current.into_values() {
                if watch.selection.matches(&object) {
                    watch.pending.push_back(event_line("ADDED", &object));
                }
            }
            if initial_events && bookmarks {
                let mut mark = watch.bookmark_object(self.rv);
                mark["metadata"]["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
                watch.pending.push_back(event_line("BOOKMARK", &mark));
            }
        } else {
            let from = parse_rv(from)?;
            if from < self.oldest {
                let expired = Failure::new(
                    410,
                    "Expired",
                    format!("too old resource version: {from} ({})", self.oldest),
                );
                watch
                    .pending
                    .push_back(event_line("ERROR", &expired.status()));
                watch.done = true;
            } else {
                let start = self.history.partition_point(|c| c.rv <= from);
                for change in &self.history[start..] {
                    if let Some((kind, object)) = watch.event(change) {
                        watch.pending.push_back(event_line(kind, object));
                    }
                }
                watch.seen = self.rv.max(from);
            }
        }
        Ok(Box::new(watch))
    }

    fn create(&mut self, t: &Target, body: Value, dry_run: bool) -> Result<Reply, Failure> {
        let namespace = t.namespace.clone().unwrap_or_default();
        check_namespace(&body, &namespace)?;
        let name = match meta_str(&body, "name").filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            None => match meta_str(&body, "generateName").filter(|n| !n.is_empty()) {
                Some(prefix) => format!("{prefix}{}", self.suffix()),
                None => {
                    return Err(Failure::new(
                        422,
                        "Invalid",
                        format!(
                            "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                            t.resource.kind()
                        ),
                    ))
                }
            },
        };
        let key = (t.resource.clone(), namespace, name);
        self.insert_new(&key, body, dry_run)
            .map(|o| Reply::Object(201, o))
    }

    /// Creates the object at `key`, which must not exist yet.
    fn insert_new(&mut self, key: &Key, mut body: Value, dry_run: bool) -> Result<Value, Failure> {
        if self.objects.contains_key(key) {
            return Err(Failure::already_exists(&key.0, &key.2));
        }
        if key.0.has_status() {
            if let Some(map) = body.as_object_mut() {
                map.remove("status");
            }
        }
        let object = self.admit(key, body, None);
        Ok(if dry_run {
            object
        } else {
            self.commit(key, Some(object))
        })
    }

    /// Replaces the object (or, for `/status`, its status) with `proposed`.
    fn update(&mut self, t: &Target, proposed: Value, dry_run: bool) -> Result<Reply, Failure> {
        let key = t.key();
        let existing = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Failure::not_found(&t.resource, &key.2))?;
        if let Some(name) = meta_str(&proposed, "name").filter(|n| !n.is_empty()) {
            if name != key.2 {
                return Err(Failure::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({})",
                    key.2
                )));
            }
        }
        check_namespace(&proposed, &key.1)?;
        if let Some(rv) = meta_str(&proposed, "resourceVersion").filter(|v| !v.is_empty()) {
            if Some(rv) != meta_str(&existing, "resourceVersion") {
                return Err(Failure::conflict(&t.resource, &key.2, CONFLICT_MODIFIED));
            }
        }
        let next = if t.status {
            let mut next = existing.clone();
            set_or_remove(&mut next, "status", proposed.get("status"));
            next
        } else if t.resource.has_status() {
            let mut next = proposed;
            set_or_remove(&mut next, "status", existing.get("status"));
            next
        } else {
            proposed
        };
        let next = self.admit(&key, next, Some(&existing));
        if without_rv(&existing) == next {
            return Ok(Reply::Object(200, existing));
        }
        let stored = if dry_run {
            next
        } else {
            self.commit(&key, Some(next))
        };
        Ok(Reply::Object(200, stored))
    }

    fn patch(&mut self, t: &Target, req: &Incoming, dry_run: bool) -> Result<Reply, Failure> {
        let media = req
            .content_type
            .as_deref()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let apply = match media {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => false,
            "application/apply-patch+yaml" => true,
            "application/json-patch+json" => {
                return Err(Failure::new(
                    415,
                    "UnsupportedMediaType",
                    "the Kubernetes API stand-in does not apply JSON patches (application/json-patch+json)",
                ))
            }
            other => {
                return Err(Failure::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format ({other:?}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    ),
                ))
            }
        };
        if apply && req.query.get("fieldManager").is_none_or(|m| m.is_empty()) {
            return Err(Failure::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let parsed: Result<Value, String> = if apply {
            serde_json::from_slice(&req.body)
                .or_else(|_| serde_yaml::from_slice(&req.body))
                .map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&req.body).map_err(|e| e.to_string())
        };
        let patch = match parsed {
            Ok(v) if v.is_object() => v,
            Ok(_) => return Err(Failure::bad_request("the patch is not a JSON object")),
            Err(e) => return Err(Failure::bad_request(format!("error decoding patch: {e}"))),
        };
        let key = t.key();
        match self.objects.get(&key) {
            None if apply && !t.status => {
                check_namespace(&patch, &key.1)?;
                if let Some(name) = meta_str(&patch, "name").filter(|n| *n != key.2) {
                    return Err(Failure::bad_request(format!(
                        "the name of the object ({name}) does not match the name on the URL ({})",
                        key.2
                    )));
                }
                self.insert_new(&key, patch, dry_run)
                    .map(|o| Reply::Object(201, o))
            }
            None => Err(Failure::not_found(&t.resource, &key.2)),
            Some(existing) => {
                let mut merged = existing.clone();
                merge_patch(&mut merged, &patch);
                self.update(t, merged, dry_run)
            }
        }
    }

    fn delete(&mut self, t: &Target, body: &[u8], dry_run: bool) -> Result<Reply, Failure> {
        let key = t.key();
        let existing = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Failure::not_found(&t.resource, &key.2))?;
        let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| Failure::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        let uid = meta_str(&existing, "uid").unwrap_or("").to_string();
        let preconditions = &options["preconditions"];
        if let Some(wanted) = preconditions["uid"].as_str() {
            if wanted != uid {
                return Err(Failure::conflict(
                    &t.resource,
                    &key.2,
                    &format!("Precondition failed: UID in precondition: {wanted}, UID in object meta: {uid}"),
                ));
            }
        }
        if let Some(wanted) = preconditions["resourceVersion"].as_str() {
            let current = meta_str(&existing, "resourceVersion").unwrap_or("");
            if wanted != current {
                return Err(Failure::conflict(
                    &t.resource,
                    &key.2,
                    &format!("Precondition failed: ResourceVersion in precondition: {wanted}, ResourceVersion in object meta: {current}"),
                ));
            }
        }
        let gone = if dry_run {
            existing
        } else {
            self.commit(&key, None)
        };
        if !t.resource.built_in() {
            return Ok(Reply::Object(200, gone));
        }
        let mut details = details(&t.resource, &key.2);
        details["uid"] = json!(uid);
        Ok(Reply::Object(
            200,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }),
        ))
    }

    /// Writes `object` at `key` as the test gives it (status included), unless nothing changes.
    fn store(&mut self, key: &Key, object: Value) -> Value {
        let existing = self.objects.get(key).cloned();
        let next = self.admit(key, object, existing.as_ref());
        match existing {
            Some(existing) if without_rv(&existing) == next => existing,
            _ => self.commit(key, Some(next)),
        }
    }

    /// `object` as the server keeps it at `key`: type, name and namespace from the URL, and the
    /// server's metadata (uid, creation time, generation) kept from `existing` or made new.
    /// The resource version is set by [`State::commit`].
    fn admit(&mut self, key: &Key, object: Value, existing: Option<&Value>) -> Value {
        let (resource, namespace, name) = key;
        let generation = match existing {
            Some(old) => generation(old) + i64::from(content(old) != content(&object)),
            None => 1,
        };
        let (uid, created) = match existing {
            Some(old) => (
                meta_str(old, "uid").unwrap_or("").to_string(),
                meta_str(old, "creationTimestamp").unwrap_or("").to_string(),
            ),
            None => (self.uid(), timestamp(Utc::now())),
        };
        let mut object = match object {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut metadata = match object.remove("metadata") {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        metadata.insert("name".into(), json!(name));
        if namespace.is_empty() {
            metadata.remove("namespace");
        } else {
            metadata.insert("namespace".into(), json!(namespace));
        }
        metadata.remove("resourceVersion");
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("generation".into(), json!(generation));
        metadata.insert("creationTimestamp".into(), json!(created));
        object.remove("apiVersion");
        object.remove("kind");
        let mut ordered = Map::new();
        ordered.insert("apiVersion".into(), json!(resource.api_version()));
        ordered.insert("kind".into(), json!(resource.kind()));
        ordered.insert("metadata".into(), Value::Object(metadata));
        ordered.extend(object);
        Value::Object(ordered)
    }

    /// Writes (or, with `None`, deletes) the object at `key` at a new resource version, keeps
    /// the change and tells the open watches. Returns the object written or deleted.
    fn commit(&mut self, key: &Key, object: Option<Value>) -> Value {
        self.rv += 1;
        let rv = self.rv;
        let previous = self.objects.get(key).cloned();
        let (kind, object) = match object {
            Some(mut object) => {
                object["metadata"]["resourceVersion"] = json!(rv.to_string());
                self.objects.insert(key.clone(), object.clone());
                let kind = if previous.is_some() {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                };
                (kind, object)
            }
            None => {
                let mut object = self.objects.remove(key).expect("deleting what exists");
                object["metadata"]["resourceVersion"] = json!(rv.to_string());
                (ChangeKind::Deleted, object)
            }
        };
        let change = Arc::new(Change {
            rv,
            key: key.clone(),
            kind,
            object: object.clone(),
            previous,
        });
        self.history.push(change.clone());
        // No open watch is no error.
        let _ = self.notes.send(Note::Change(change));
        object
    }

    /// A new uid, shaped as the API server's (a random UUID).
    fn uid(&mut self) -> String {
        self.uids += 1;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.uid_seed, self.uids).hash(&mut hasher);
        let h = hasher.finish();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            h >> 32,
            (h >> 16) & 0xffff,
            (h >> 4) & 0xfff,
            h & 0xfff,
            self.uids
        )
    }

    /// Five characters for a `generateName`, as the API server adds.
    fn suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut n = self
            .uid_seed
            .wrapping_add(self.rv)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (0..5)
            .map(|_| {
                let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                n /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }
}

/// An open watch: the events still to send, and the notes of writes to come.
struct Watch {
    resource: Resource,
    namespace: Option<String>,
    selection: Selection,
    bookmarks: bool,
    notes: broadcast::Receiver<Note>,
    pending: VecDeque<Bytes>,
    /// The newest version this watch has seen (of any resource: bookmarks carry it).
    seen: u64,
    deadline: tokio::time::Instant,
    /// Nothing more after `pending`.
    done: bool,
}

/// What woke a watch up.
enum Wake {
    Note(Result<Note, broadcast::error::RecvError>),
    TimedOut,
}

impl Watch {
    /// The next line to send; `None` ends the stream.
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            if self.done {
                return None;
            }
            let wake = tokio::select! {
                note = self.notes.recv() => Wake::Note(note),
                _ = tokio::time::sleep_until(self.deadline) => Wake::TimedOut,
            };
            match wake {
                Wake::Note(Ok(Note::Change(change))) => {
                    self.seen = self.seen.max(change.rv);
                    if let Some((kind, object)) = self.event(&change) {
                        let line = event_line(kind, object);
                        self.pending.push_back(line);
                    }
                }
                Wake::Note(Ok(Note::Bookmark(rv))) => {
                    self.seen = self.seen.max(rv);
                    if self.bookmarks {
                        let mark = self.bookmark_object(self.seen);
                        self.pending.push_back(event_line("BOOKMARK", &mark));
                    }
                }
                Wake::Note(Ok(Note::Close))
                | Wake::Note(Err(broadcast::error::RecvError::Closed)) => {
                    self.done = true;
                }
                Wake::Note(Err(broadcast::error::RecvError::Lagged(_))) => {
                    // Fell behind: the changes it missed are gone, as when a real watcher is
                    // slower than the server's window.
                    let expired = Failure::new(
                        410,
                        "Expired",
                        format!(
                            "too old resource version: {} ({})",
                            self.seen,
                            self.seen + 1
                        ),
                    );
                    self.pending
                        .push_back(event_line("ERROR", &expired.status()));
                    self.done = true;
                }
                Wake::TimedOut => {
                    if self.bookmarks {
                        let mark = self.bookmark_object(self.seen);
                        self.pending.push_back(event_line("BOOKMARK", &mark));
                    }
                    self.done = true;
                }
            }
        }
    }

    /// The event this watch sends for `change`, if any: an object that enters the selection is
    /// `ADDED`, one that leaves it `DELETED`.
    fn event<'c>(&self, change: &'c Change) -> Option<(&'static str, &'c Value)> {
        let (resource, namespace, _) = &change.key;
        if *resource != self.resource || self.namespace.as_ref().is_some_and(|ns| ns != namespace) {
            return None;
        }
        let was = change
            .previous
            .as_ref()
            .is_some_and(|p| self.selection.matches(p));
        let is = self.selection.matches(&change.object);
        let kind = match (change.kind, was, is) {
            (ChangeKind::Added, _, true) => "ADDED",
            (ChangeKind::Modified, true, true) => "MODIFIED",
            (ChangeKind::Modified, false, true) => "ADDED",
            (ChangeKind::Modified, true, false) => "DELETED",
            (ChangeKind::Deleted, _, true) => "DELETED",
            _ => return None,
        };
        Some((kind, &change.object))
    }

    fn bookmark_object(&self, rv: u64) -> Value {
        json!({
            "kind": self.resource.kind(),
            "apiVersion": self.resource.api_version(),
            "metadata": { "resourceVersion": rv.to_string() },
        })
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({ "type": kind, "object": object }))
        .expect("an event serialises");
    line.push(b'\n');
    Bytes::from(line)
}

/// A list's or watch's `labelSelector` and `fieldSelector`.
#[derive(Debug, Default)]
struct Selection {
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

#[derive(Debug)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

#[derive(Debug)]
struct FieldRequirement {
    /// `metadata.name` or `metadata.namespace`, as `name` or `namespace`.
    field: &'static str,
    value: String,
    equal: bool,
}

impl Selection {
    fn parse(query: &BTreeMap<String, String>) -> Result<Selection, Failure> {
        let labels = match query.get("labelSelector") {
            Some(s) => parse_labels(s)
                .map_err(|e| Failure::bad_request(format!("unable to parse requirement: {e}")))?,
            None => Vec::new(),
        };
        let fields = match query.get("fieldSelector") {
            Some(s) => parse_fields(s).map_err(Failure::bad_request)?,
            None => Vec::new(),
        };
        Ok(Selection { labels, fields })
    }

    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = object["metadata"]["labels"].as_object();
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_match = self.labels.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => label(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::Absent(k) => label(k).is_none(),
        });
        labels_match
            && self.fields.iter().all(|r| {
                let actual = meta_str(object, r.field).unwrap_or("");
                (actual == r.value) == r.equal
            })
    }
}

/// Parses a label selector: comma-joined requirements, the commas inside `( )` excepted.
fn parse_labels(selector: &str) -> Result<Vec<LabelRequirement>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(parse_label_term)
        .collect()
}

fn parse_label_term(term: &str) -> Result<LabelRequirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelRequirement::Absent(label_key(key)?));
    }
    if let Some(open) = term.find('(') {
        let inner = term[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("{term:?}: expected a closing ')'"))?;
        let mut words = term[..open].split_whitespace();
        let (key, op) = (words.next(), words.next());
        if words.next().is_some() {
            return Err(format!(
                "{term:?}: expected `key in (...)` or `key notin (...)`"
            ));
        }
        let key = label_key(key.unwrap_or(""))?;
        let values: Vec<String> = inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        return match op {
            Some("in") => Ok(LabelRequirement::In(key, values)),
            Some("notin") => Ok(LabelRequirement::NotIn(key, values)),
            _ => Err(format!("{term:?}: expected `in` or `notin`")),
        };
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(
            label_key(k)?,
            v.trim().to_string(),
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelRequirement::Equals(
            label_key(k)?,
            v.trim().to_string(),
        ));
    }
    Ok(LabelRequirement::Exists(label_key(term)?))
}

fn label_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "=!(),".contains(c)) {
        return Err(format!("{key:?}: not a label key"));
    }
    Ok(key.to_string())
}

fn parse_fields(selector: &str) -> Result<Vec<FieldRequirement>, String> {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|term| {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, v, true)
            } else {
                return Err(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                ));
            };
            let field = match field.trim() {
                "metadata.name" => "name",
                "metadata.namespace" => "namespace",
                other => return Err(format!("field label not supported: {other}")),
            };
            Ok(FieldRequirement {
                field,
                value: value.trim().to_string(),
                equal,
            })
        })
        .collect()
}

/// The real server's message for a `continue` older than its history.
const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// The end of the API server's message for a stale write.
const CONFLICT_MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// A `continue` token: the version the list was read at and the last (namespace, name) sent.
fn encode_continue(rv: u64, last: &(String, String)) -> String {
    use base64::Engine as _;
    let token = json!({ "rv": rv, "namespace": last.0, "name": last.1 });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), Failure> {
    use base64::Engine as _;
    let invalid = || Failure::bad_request(format!("continue key is not valid: {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    match (
        v["rv"].as_u64(),
        v["namespace"].as_str(),
        v["name"].as_str(),
    ) {
        (Some(rv), Some(ns), Some(name)) => Ok((rv, (ns.to_string(), name.to_string()))),
        _ => Err(invalid()),
    }
}

fn parse_rv(rv: &str) -> Result<u64, Failure> {
    rv.parse().map_err(|_| {
        Failure::bad_request(format!(
            "resourceVersion: Invalid value: {rv:?}: must be a decimal number"
        ))
    })
}

/// A refusal, answered as a `Status` object.
#[derive(Debug)]
struct Failure {
    code: u16,
    reason: &'static str,
    message: String,
    /// Boxed: a `Failure` is the error of every handler, and a `Value` is large.
    details: Option<Box<Value>>,
    retry_after: Option<u64>,
}

impl Failure {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(400, "BadRequest", message)
    }

    fn no_route() -> Failure {
        Failure::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    fn not_found(resource: &Resource, name: &str) -> Failure {
        Failure {
            details: Some(Box::new(details(resource, name))),
            ..Failure::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", resource.qualified()),
            )
        }
    }

    fn already_exists(resource: &Resource, name: &str) -> Failure {
        Failure {
            details: Some(Box::new(details(resource, name))),
            ..Failure::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", resource.qualified()),
            )
        }
    }

    fn conflict(resource: &Resource, name: &str, why: &str) -> Failure {
        Failure {
            details: Some(Box::new(details(resource, name))),
            ..Failure::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    resource.qualified()
                ),
            )
        }
    }

    /// What [`KubeApi::fail_next`] answers.
    fn switched(code: u16) -> Failure {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Gone",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        let mut failure = Failure::new(
            code,
            reason,
            format!("the Kubernetes API stand-in was told to answer {code}"),
        );
        if code == 429 {
            failure.retry_after = Some(1);
            failure.details = Some(Box::new(json!({ "retryAfterSeconds": 1 })));
        }
        failure
    }

    fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(details) = &self.details {
            status["details"] = (**details).clone();
        }
        status["code"] = json!(self.code);
        status
    }
}

/// A `Status`'s `details` for an object: its name, group (none for the core group) and, as
/// the API server fills it, the resource plural as `kind`.
fn details(resource: &Resource, name: &str) -> Value {
    let mut details = Map::new();
    details.insert("name".into(), json!(name));
    if !resource.group.is_empty() {
        details.insert("group".into(), json!(resource.group));
    }
    details.insert("kind".into(), json!(resource.plural));
    Value::Object(details)
}

/// A body's `metadata.namespace`, when set, must be the URL's.
fn check_namespace(body: &Value, namespace: &str) -> Result<(), Failure> {
    match meta_str(body, "namespace").filter(|ns| !ns.is_empty()) {
        Some(ns) if ns != namespace => Err(Failure::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => Ok(()),
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn set_or_remove(object: &mut Value, field: &str, value: Option<&Value>) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    match value {
        Some(value) => {
            map.insert(field.to_string(), value.clone());
        }
        None => {
            map.remove(field);
        }
    }
}

fn meta_str<'v>(object: &'v Value, field: &str) -> Option<&'v str> {
    object.get("metadata")?.get(field)?.as_str()
}

fn generation(object: &Value) -> i64 {
    object["metadata"]["generation"].as_i64().unwrap_or(0)
}

/// What a new generation is counted on: everything but the type, metadata and status.
fn content(object: &Value) -> Map<String, Value> {
    let mut map = object.as_object().cloned().unwrap_or_default();
    for field in ["apiVersion", "kind", "metadata", "status"] {
        map.remove(field);
    }
    map
}

fn without_rv(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object["metadata"].as_object_mut() {
        metadata.remove("resourceVersion");
    }
    object
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An `apps/v1` Deployment of `replicas` pods labelled `app: NAME`, with one container, without
/// status.
pub fn deployment(namespace: &str, name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": namespace, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "containers": [{
                        "name": name,
                        "image": format!("ghcr.io/example/{name}:1.0.0"),
                        "ports": [{ "name": "http", "containerPort": 8080, "protocol": "TCP" }],
                    }],
                },
            },
        },
    })
}

/// The status of a Deployment rolled out at `generation` (its `metadata.generation`, which the
/// status must have observed): every replica updated, ready and available.
pub fn ready_deployment_status(generation: i64, replicas: i32) -> Value {
    let now = timestamp(Utc::now());
    json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": "NewReplicaSetAvailable",
                "message": "ReplicaSet has successfully progressed.",
            },
        ],
    })
}

/// How a Deployment is stuck.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stuck {
    /// `Available=False`, reason `MinimumReplicasUnavailable`: too few pods ready, still
    /// progressing.
    Unavailable,
    /// `Progressing=False`, reason `ProgressDeadlineExceeded`: the rollout gave up.
    DeadlineExceeded,
}

/// The status of a Deployment at `generation` with only `ready` of `replicas` pods ready, stuck
/// as `how` since `since` (the conditions' `lastUpdateTime` and `lastTransitionTime`).
pub fn stuck_deployment_status(
    generation: i64,
    replicas: i32,
    ready: i32,
    how: Stuck,
    since: DateTime<Utc>,
) -> Value {
    let since = timestamp(since);
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": kind,
            "status": status,
            "lastUpdateTime": since,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        })
    };
    let conditions = match how {
        Stuck::Unavailable => vec![
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            ),
            condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                "ReplicaSet is progressing.",
            ),
        ],
        Stuck::DeadlineExceeded => vec![
            if ready > 0 {
                condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            } else {
                condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            },
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet has timed out progressing.",
            ),
        ],
    };
    json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": replicas - ready,
        "conditions": conditions,
    })
}

/// A Flux `kustomize.toolkit.fluxcd.io/v1` Kustomization of `path` in the GitRepository
/// `source_name` (same namespace), as kustomize-controller leaves it after reconciling a new
/// object (generation 1): `last_applied_revision` (`main@sha1:<40 hex>`, see [`revision`]) and
/// `Ready` true (`ReconciliationSucceeded`) or false (`BuildFailed`).
pub fn kustomization(
    namespace: &str,
    name: &str,
    path: &str,
    source_name: &str,
    last_applied_revision: Option<&str>,
    ready: bool,
) -> Value {
    let now = timestamp(Utc::now());
    let revision = last_applied_revision.unwrap_or("");
    let (condition_status, reason, message) = if ready {
        (
            "True",
            "ReconciliationSucceeded",
            format!("Applied revision: {revision}"),
        )
    } else {
        (
            "False",
            "BuildFailed",
            format!("kustomize build failed: {path}: the stand-in's Kustomization is not ready"),
        )
    };
    let mut status = json!({
        "observedGeneration": 1,
        "conditions": [{
            "type": "Ready",
            "status": condition_status,
            "observedGeneration": 1,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }],
    });
    if let Some(revision) = last_applied_revision {
        status["lastAppliedRevision"] = json!(revision);
        status["lastAttemptedRevision"] = json!(revision);
    }
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "interval": "10m0s",
            "path": path,
            "prune": true,
            "sourceRef": { "kind": "GitRepository", "name": source_name, "namespace": namespace },
        },
        "status": status,
    })
}

/// A Flux revision of commit `sha` on `main`: `main@sha1:<sha>`.
pub fn revision(sha: &str) -> String {
    format!("main@sha1:{sha}")
}
