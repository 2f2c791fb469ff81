//! A loopback Kubernetes API server (feature `kube-api`): enough of the real wire
//! protocol for a client such as kube-rs to list, watch, create, replace, patch and
//! delete objects of any kind, on 127.0.0.1.
//!
//! * Paths: `/api/v1/…` (core) and `/apis/{group}/{version}/…`, namespaced
//!   (`…/namespaces/{ns}/{plural}[/{name}]`) or across namespaces (`…/{plural}`).
//! * One global `resourceVersion` counter, as etcd has: every write bumps it; objects
//!   carry theirs in `metadata.resourceVersion`, lists in `metadata.resourceVersion`.
//! * List: `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated).
//! * Watch (`?watch=1` or `?watch=true`): a streamed body of newline-delimited JSON
//!   events (`ADDED`, `MODIFIED`, `DELETED`) from the given `resourceVersion` on;
//!   `BOOKMARK` events when the client allows them and [`KubeApi::bookmark`] is
//!   called; a watch from a `resourceVersion` older than the compacted history gets
//!   an `ERROR` event with a `410 Expired` `Status`, as the real server does, so the
//!   client must relist ([`KubeApi::expire`] compacts). `timeoutSeconds` ends the
//!   stream.
//! * Create (`POST`), replace (`PUT`, `409 Conflict` when the body's
//!   `resourceVersion` is not the stored one), patch (`PATCH`, JSON merge patch; the
//!   merge and strategic-merge content types are read as merge patches), server-side
//!   apply (`application/apply-patch+yaml`: `fieldManager` required, creates a
//!   missing object, `409` against another applier unless `force=true`),
//!   get and delete.
//! * The `status` subresource (`…/{name}/status`), as for a custom resource that
//!   enables it: a replace or patch there changes only `status`; a replace or patch
//!   of the object keeps the stored `status`; `metadata.generation` is bumped only
//!   when something other than `metadata` and `status` changes.
//!
//! Errors are `Status` objects with the real codes and reasons (`NotFound`,
//! `AlreadyExists`, `Conflict`, `Expired`, `BadRequest`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use routing_testkit::http::{client, get};
//! use routing_testkit::kubeapi::KubeApi;
//! let api = KubeApi::start().await;
//! api.put("/api/v1/namespaces/web/configmaps", serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}
//! }));
//! let list = get(&client(), api.addr(), "/api/v1/namespaces/web/configmaps", &[]).await;
//! let list: serde_json::Value = serde_json::from_str(&list.body).unwrap();
//! assert_eq!(list["items"][0]["data"]["k"], "v");
//! assert_eq!(list["metadata"]["resourceVersion"], "1");
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::http::Server;

/// A collection: API prefix (`api/v1`, `apis/{group}/{version}`) and plural.
type Collection = (String, String);

/// The loopback API server. Dropping it stops it.
#[derive(Debug)]
pub struct KubeApi {
    server: Server,
    state: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    inner: Mutex<State>,
    counters: Counters,
}

/// Requests the server answered, by kind, for tests to check what a client did.
#[derive(Debug, Default)]
struct Counters {
    lists: AtomicU64,
    watches: AtomicU64,
    gone: AtomicU64,
    conflicts: AtomicU64,
    writes: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// The last resourceVersion handed out.
    rv: u64,
    /// History before (and at) this resourceVersion is forgotten: watches from older
    /// versions get 410.
    compacted: u64,
    /// Objects: collection → (namespace, name) → object.
    objects: BTreeMap<Collection, BTreeMap<(String, String), Value>>,
    /// Kind of each collection's objects (for list and bookmark `kind`s).
    kinds: BTreeMap<Collection, (String, String)>,
    /// Every change after `compacted`: (rv, collection, event type, object).
    log: Vec<(u64, Collection, &'static str, Value)>,
    watchers: Vec<Watcher>,
    next_id: u64,
}

#[derive(Debug)]
struct Watcher {
    id: u64,
    collection: Collection,
    namespace: Option<String>,
    selector: Selector,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl KubeApi {
    /// Starts a server on 127.0.0.1 (ephemeral port).
    ///
    /// # Panics
    /// When 127.0.0.1 cannot be bound.
    pub async fn start() -> Self {
        let state = Arc::new(Shared::default());
        let svc_state = state.clone();
        let svc = tower::service_fn(move |req: Request<Incoming>| {
            let state = svc_state.clone();
            handle(state, req)
        });
        let server = crate::http::serve(svc).await;
        Self { server, state }
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Its base URL, `http://127.0.0.1:port`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates or replaces an object in the collection at `path` (as a client's
    /// `POST` would, e.g. `/apis/gateway.networking.k8s.io/v1/namespaces/web/httproutes`),
    /// whatever its stored `resourceVersion`. Returns the new resourceVersion. An
    /// object without `status` keeps the stored one, as `kubectl apply` of a
    /// manifest does.
    ///
    /// # Panics
    /// When `path` is not a collection path or the object has no `metadata.name`.
    pub fn put(&self, path: &str, mut object: Value) -> u64 {
        let target = parse_path(path).expect("a collection path");
        let name = object["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_owned();
        let ns = target.namespace.clone().unwrap_or_default();
        let mut st = self.lock();
        if object.get("status").is_none() {
            if let Some(status) = get(&st, &target, &name).and_then(|o| o.get("status")) {
                object["status"] = status.clone();
            }
        }
        st.write(&target.collection, &ns, &name, object)
    }

    /// Deletes an object; returns whether it existed.
    ///
    /// # Panics
    /// When `path` is not a collection path.
    pub fn delete(&self, path: &str, name: &str) -> bool {
        let target = parse_path(path).expect("a collection path");
        let ns = target.namespace.clone().unwrap_or_default();
        self.lock().remove(&target.collection, &ns, name).is_some()
    }

    /// An object, as stored.
    ///
    /// # Panics
    /// When `path` is not a collection path.
    #[must_use]
    pub fn object(&self, path: &str, name: &str) -> Option<Value> {
        let target = parse_path(path).expect("a collection path");
        let ns = target.namespace.unwrap_or_default();
        self.lock()
            .objects
            .get(&target.collection)
            .and_then(|c| c.get(&(ns, name.to_owned())))
            .cloned()
    }

    /// Every object of a collection (all namespaces when `path` names none).
    ///
    /// # Panics
    /// When `path` is not a collection path.
    #[must_use]
    pub fn objects(&self, path: &str) -> Vec<Value> {
        let target = parse_path(path).expect("a collection path");
        let st = self.lock();
        st.objects
            .get(&target.collection)
            .map(|c| {
                c.iter()
                    .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|t| t == ns))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The latest resourceVersion.
    #[must_use]
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Sends a `BOOKMARK` at the latest resourceVersion to every watch that allows them.
    pub fn bookmark(&self) {
        let mut st = self.lock();
        let rv = st.rv;
        let kinds = st.kinds.clone();
        st.watchers.retain(|w| {
            if !w.bookmarks {
                return true;
            }
            let (api_version, kind) = kinds.get(&w.collection).cloned().unwrap_or_default();
            let ev = json!({"type": "BOOKMARK", "object": {
                "apiVersion": api_version, "kind": kind,
                "metadata": {"resourceVersion": rv.to_string()}}});
            w.tx.send(line(&ev)).is_ok()
        });
    }

    /// Ends every open watch (clients reconnect from the last resourceVersion they saw).
    pub fn close_watches(&self) {
        self.lock().watchers.clear();
    }

    /// Loses history the way a compacting etcd does: ends every open watch, applies
    /// `change` (which the closed watches therefore never see), then forgets every
    /// event up to the latest resourceVersion. A client that reconnects from what it
    /// saw gets `410 Gone` and must relist to see `change`.
    pub fn expire(&self, change: impl FnOnce(&Self)) {
        self.close_watches();
        change(self);
        let mut st = self.lock();
        st.compacted = st.rv;
        st.log.clear();
    }

    /// List requests answered so far.
    #[must_use]
    pub fn lists(&self) -> u64 {
        self.state.counters.lists.load(Ordering::Relaxed)
    }

    /// Watch requests answered so far.
    #[must_use]
    pub fn watches(&self) -> u64 {
        self.state.counters.watches.load(Ordering::Relaxed)
    }

    /// Watches refused with `410 Expired` so far.
    #[must_use]
    pub fn gone(&self) -> u64 {
        self.state.counters.gone.load(Ordering::Relaxed)
    }

    /// Writes refused with `409 Conflict` so far.
    #[must_use]
    pub fn conflicts(&self) -> u64 {
        self.state.counters.conflicts.load(Ordering::Relaxed)
    }

    /// Writes (create, replace, patch, delete) accepted through HTTP so far.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.state.counters.writes.load(Ordering::Relaxed)
    }
}

impl State {
    /// Stores `object` (stamping namespace, resourceVersion, uid, creationTimestamp) and
    /// tells the watches. Returns the new resourceVersion.
    fn write(&mut self, collection: &Collection, ns: &str, name: &str, mut object: Value) -> u64 {
        self.rv += 1;
        let rv = self.rv;
        let old = self
            .objects
            .get(collection)
            .and_then(|c| c.get(&(ns.to_owned(), name.to_owned())))
            .cloned();
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        // `metadata.generation` counts changes of the desired state only: not of
        // `metadata` or `status`.
        let desired = |v: &Value| {
            v.as_object().map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "metadata" && *k != "status")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<serde_json::Map<_, _>>()
            })
        };
        let changed = old.as_ref().is_none_or(|o| desired(o) != desired(&object));
        let meta = &mut object["metadata"];
        meta["name"] = json!(name);
        if !ns.is_empty() {
            meta["namespace"] = json!(ns);
        }
        meta["resourceVersion"] = json!(rv.to_string());
        let (uid, created, generation) = match &old {
            Some(o) => (
                o["metadata"]["uid"].clone(),
                o["metadata"]["creationTimestamp"].clone(),
                o["metadata"]["generation"].as_u64().unwrap_or(1) + u64::from(changed),
            ),
            None => (
                json!(format!("00000000-0000-4000-8000-{rv:012x}")),
                json!("2026-01-01T00:00:00Z"),
                1,
            ),
        };
        meta["uid"] = uid;
        meta["creationTimestamp"] = created;
        meta["generation"] = json!(generation);
        if let (Some(v), Some(k)) = (object["apiVersion"].as_str(), object["kind"].as_str()) {
            self.kinds
                .insert(collection.clone(), (v.to_owned(), k.to_owned()));
        }
        self.objects
            .entry(collection.clone())
            .or_default()
            .insert((ns.to_owned(), name.to_owned()), object.clone());
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.event(rv, collection, kind, object);
        rv
    }

    fn remove(&mut self, collection: &Collection, ns: &str, name: &str) -> Option<Value> {
        let mut object = self
            .objects
            .get_mut(collection)?
            .remove(&(ns.to_owned(), name.to_owned()))?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.event(self.rv, collection, "DELETED", object.clone());
        Some(object)
    }

    fn event(&mut self, rv: u64, collection: &Collection, kind: &'static str, object: Value) {
        let ev = line(&json!({"type": kind, "object": &object}));
        let ns = object["metadata"]["namespace"].as_str().unwrap_or("");
        self.watchers.retain(|w| {
            if !w.matches(collection, ns, &object) {
                return true;
            }
            w.tx.send(ev.clone()).is_ok()
        });
        self.log.push((rv, collection.clone(), kind, object));
    }
}

impl Watcher {
    fn matches(&self, collection: &Collection, ns: &str, object: &Value) -> bool {
        &self.collection == collection
            && self.namespace.as_deref().is_none_or(|n| n == ns)
            && self.selector.matches(object)
    }
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// A parsed request path.
#[derive(Debug)]
struct Target {
    collection: Collection,
    namespace: Option<String>,
    name: Option<String>,
    /// `…/{name}/status`: the status subresource.
    status: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (format!("api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some((*name).to_owned()), false),
        [plural, name, "status"] => (*plural, Some((*name).to_owned()), true),
        _ => return None,
    };
    Some(Target {
        collection: (prefix, plural.to_owned()),
        namespace,
        name,
        status,
    })
}

/// An equality-based label selector.
#[derive(Debug, Default, Clone)]
struct Selector(Vec<(String, Op)>);

#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    Ne(String),
    Exists,
    Absent,
}

impl Selector {
    fn parse(s: &str) -> Option<Self> {
        let mut out = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let t = if let Some((k, v)) = term.split_once("!=") {
                (k.trim().to_owned(), Op::Ne(v.trim().to_owned()))
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (k.trim().to_owned(), Op::Eq(v.trim().to_owned()))
            } else if let Some(k) = term.strip_prefix('!') {
                (k.trim().to_owned(), Op::Absent)
            } else if term.contains([' ', '(', ')']) {
                return None; // set-based selectors are not supported
            } else {
                (term.to_owned(), Op::Exists)
            };
            out.push(t);
        }
        Some(Self(out))
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.0.iter().all(|(k, op)| {
            let v = labels.get(k).and_then(Value::as_str);
            match op {
                Op::Eq(want) => v == Some(want),
                Op::Ne(want) => v != Some(want),
                Op::Exists => v.is_some(),
                Op::Absent => v.is_none(),
            }
        })
    }
}

/// The response body: whole, or the events of a watch as they come.
#[derive(Debug)]
enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::UnboundedReceiver<Bytes>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }
}

fn respond(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(v.to_string()))));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn status(code: StatusCode, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code.as_u16()})
}

fn fail(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    respond(code, &status(code, reason, message))
}

/// The query parameters, decoded.
fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(state: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let Some(target) = parse_path(req.uri().path()) else {
        return Ok(fail(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let q = query(&req);
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(fail(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string())),
    };
    let body: Option<Value> = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return Ok(fail(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("body ({content_type}): {e}"),
                ))
            }
        }
    };
    Ok(match (method, target.name.clone()) {
        (Method::GET, None) if matches!(q.get("watch").map(String::as_str), Some("1" | "true")) => {
            watch(&state, target, &q)
        }
        (Method::GET, None) => list(&state, &target, &q),
        (Method::GET, Some(name)) => {
            let st = state.inner.lock().unwrap_or_else(|p| p.into_inner());
            match get(&st, &target, &name) {
                Some(o) => respond(StatusCode::OK, o),
                None => not_found(&target, &name),
            }
        }
        (Method::POST, None) => write(&state, &target, None, body, Write::Create),
        (Method::PUT, Some(name)) => write(&state, &target, Some(name), body, Write::Replace),
        (Method::PATCH, Some(name)) if content_type.starts_with("application/apply-patch") => {
            apply(&state, &target, name, body, &q)
        }
        (Method::PATCH, Some(name)) => write(&state, &target, Some(name), body, Write::Patch),
        (Method::DELETE, Some(name)) => {
            let mut st = state.inner.lock().unwrap_or_else(|p| p.into_inner());
            let ns = target.namespace.clone().unwrap_or_default();
            match st.remove(&target.collection, &ns, &name) {
                Some(o) => {
                    state.counters.writes.fetch_add(1, Ordering::Relaxed);
                    respond(StatusCode::OK, &o)
                }
                None => not_found(&target, &name),
            }
        }
        (m, _) => fail(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{m} is not supported here"),
        ),
    })
}

fn get<'s>(st: &'s State, target: &Target, name: &str) -> Option<&'s Value> {
    let ns = target.namespace.clone().unwrap_or_default();
    st.objects
        .get(&target.collection)?
        .get(&(ns, name.to_owned()))
}

fn not_found(target: &Target, name: &str) -> Response<Body> {
    fail(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", target.collection.1),
    )
}

fn selector(q: &BTreeMap<String, String>) -> Result<Selector, Box<Response<Body>>> {
    Selector::parse(q.get("labelSelector").map_or("", String::as_str)).ok_or_else(|| {
        Box::new(fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "only equality-based label selectors are supported",
        ))
    })
}

fn list(state: &Shared, target: &Target, q: &BTreeMap<String, String>) -> Response<Body> {
    let sel = match selector(q) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    state.counters.lists.fetch_add(1, Ordering::Relaxed);
    let st = state.inner.lock().unwrap_or_else(|p| p.into_inner());
    let items: Vec<&Value> = st
        .objects
        .get(&target.collection)
        .map(|c| {
            c.iter()
                .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|t| t == ns))
                .map(|(_, v)| v)
                .filter(|v| sel.matches(v))
                .collect()
        })
        .unwrap_or_default();
    let (api_version, kind) = st
        .kinds
        .get(&target.collection)
        .cloned()
        .unwrap_or_default();
    respond(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
    )
}

fn watch(state: &Arc<Shared>, target: Target, q: &BTreeMap<String, String>) -> Response<Body> {
    let sel = match selector(q) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    state.counters.watches.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut st = state.inner.lock().unwrap_or_else(|p| p.into_inner());
    let from: u64 = match q.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => st.rv,
        Some(v) => match v.parse() {
            Ok(v) => v,
            Err(_) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "resourceVersion: not a number",
                )
            }
        },
    };
    let mut response = Response::new(Body::Stream(rx));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if from < st.compacted {
        state.counters.gone.fetch_add(1, Ordering::Relaxed);
        let msg = format!("too old resource version: {from} ({})", st.compacted);
        let ev = json!({"type": "ERROR", "object": status(StatusCode::GONE, "Expired", &msg)});
        let _ = tx.send(line(&ev));
        return response; // tx dropped: the stream ends after the error
    }
    st.next_id += 1;
    let w = Watcher {
        id: st.next_id,
        collection: target.collection,
        namespace: target.namespace,
        selector: sel,
        bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
        tx,
    };
    for (rv, collection, kind, object) in &st.log {
        let ns = object["metadata"]["namespace"].as_str().unwrap_or("");
        if *rv > from && w.matches(collection, ns, object) {
            let _ = w.tx.send(line(&json!({"type": kind, "object": object})));
        }
    }
    if let Some(secs) = q.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()) {
        // The stream ends when its timeout passes, as the real server's does.
        let (shared, id) = (state.clone(), w.id);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let mut st = shared.inner.lock().unwrap_or_else(|p| p.into_inner());
            st.watchers.retain(|w| w.id != id);
        });
    }
    st.watchers.push(w);
    response
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Write {
    Create,
    Replace,
    Patch,
}

fn write(
    state: &Shared,
    target: &Target,
    name: Option<String>,
    body: Option<Value>,
    how: Write,
) -> Response<Body> {
    let Some(body) = body else {
        return fail(StatusCode::BAD_REQUEST, "BadRequest", "a body is required");
    };
    let mut st = state.inner.lock().unwrap_or_else(|p| p.into_inner());
    let Some(name) = name.or_else(|| body["metadata"]["name"].as_str().map(str::to_owned)) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "metadata.name is required",
        );
    };
    let ns = target.namespace.clone().unwrap_or_default();
    let stored = get(&st, target, &name).cloned();
    let object = match (how, stored) {
        (Write::Create, Some(_)) => {
            state.counters.conflicts.fetch_add(1, Ordering::Relaxed);
            return fail(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", target.collection.1),
            );
        }
        (Write::Create, None) if target.status => return not_found(target, &name),
        (Write::Create, None) => body,
        (Write::Replace | Write::Patch, None) => return not_found(target, &name),
        (Write::Replace, Some(old)) => {
            let want = body["metadata"]["resourceVersion"].as_str();
            if want.is_some_and(|w| Some(w) != old["metadata"]["resourceVersion"].as_str()) {
                state.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                return fail(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been \
                         modified; please apply your changes to the latest version and try again",
                        target.collection.1
                    ),
                );
            }
            // As the real server does for a resource with a status subresource: a
            // write to `/status` changes only `status`, a write to the resource keeps
            // the stored `status`.
            let mut body = body;
            if target.status {
                let mut kept = old;
                kept["status"] = body["status"].take();
                kept
            } else {
                if !old["status"].is_null() {
                    body["status"] = old["status"].clone();
                }
                body
            }
        }
        (Write::Patch, Some(mut old)) => {
            let want = body["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_owned);
            if want.is_some_and(|w| Some(w.as_str()) != old["metadata"]["resourceVersion"].as_str())
            {
                state.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                return fail(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified",
                );
            }
            let before = old["status"].clone();
            if target.status {
                let status = old["status"].take();
                let mut patched = json!({ "status": status });
                merge(&mut patched, &json!({ "status": body["status"].clone() }));
                old["status"] = patched["status"].take();
            } else {
                merge(&mut old, &body);
                old["status"] = before;
            }
            old
        }
    };
    st.write(&target.collection, &ns, &name, object);
    state.counters.writes.fetch_add(1, Ordering::Relaxed);
    let code = if how == Write::Create {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    match get(&st, target, &name) {
        Some(o) => respond(code, o),
        None => not_found(target, &name),
    }
}

/// Server-side apply (`PATCH` with `application/apply-patch+yaml`), as the real
/// server answers it: `fieldManager` is required (400 without); a missing object is
/// created; a stale `resourceVersion` in the body is a 409; and an object last
/// applied by another manager is a `409 Conflict` unless `force=true`, which takes
/// the fields over. The body is merged like a merge patch (lists replaced whole,
/// which is what the real server does for atomic lists such as a CRD's
/// `spec.rules`). Managers are recorded in `metadata.managedFields`
/// (`operation: Apply`), without the field sets: ownership here is per object, not
/// per field, a simplification of the real server's per-field tracking.
fn apply(
    state: &Shared,
    target: &Target,
    name: String,
    body: Option<Value>,
    q: &BTreeMap<String, String>,
) -> Response<Body> {
    let Some(manager) = q.get("fieldManager").filter(|m| !m.is_empty()).cloned() else {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is \
             required for apply patch",
        );
    };
    let force = q.get("force").is_some_and(|f| f == "true");
    let Some(mut body) = body else {
        return fail(StatusCode::BAD_REQUEST, "BadRequest", "a body is required");
    };
    let mut st = state.inner.lock().unwrap_or_else(|p| p.into_inner());
    let ns = target.namespace.clone().unwrap_or_default();
    let stored = get(&st, target, &name).cloned();
    let entry = json!({"manager": manager, "operation": "Apply",
                       "apiVersion": body["apiVersion"].clone(), "fieldsType": "FieldsV1"});
    let object = match stored {
        None => {
            body["metadata"]["name"] = json!(name);
            body["metadata"]["managedFields"] = json!([entry]);
            body
        }
        Some(mut old) => {
            let want = body["metadata"]["resourceVersion"].as_str();
            if want.is_some_and(|w| Some(w) != old["metadata"]["resourceVersion"].as_str()) {
                state.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                return fail(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified",
                );
            }
            let managers: Vec<Value> = old["metadata"]["managedFields"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let others: Vec<&str> = managers
                .iter()
                .filter(|m| m["operation"] == "Apply" && m["manager"] != json!(manager))
                .filter_map(|m| m["manager"].as_str())
                .collect();
            if !others.is_empty() && !force {
                state.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                return fail(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Apply failed with 1 conflict: conflict with \"{}\"",
                        others.join("\", \"")
                    ),
                );
            }
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("managedFields");
                m.remove("resourceVersion");
            }
            merge(&mut old, &body);
            // Forcing takes the fields over: the other appliers lose them.
            let mut kept: Vec<Value> = managers
                .into_iter()
                .filter(|m| m["manager"] != json!(manager) && !(force && m["operation"] == "Apply"))
                .collect();
            kept.push(entry);
            old["metadata"]["managedFields"] = Value::Array(kept);
            old
        }
    };
    st.write(&target.collection, &ns, &name, object);
    state.counters.writes.fetch_add(1, Ordering::Relaxed);
    match get(&st, target, &name) {
        Some(o) => respond(StatusCode::OK, o),
        None => not_found(target, &name),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        let t = parse_path("/apis/gateway.networking.k8s.io/v1/namespaces/web/httproutes/shop")
            .expect("parses");
        assert_eq!(t.collection.0, "apis/gateway.networking.k8s.io/v1");
        assert_eq!(t.collection.1, "httproutes");
        assert_eq!(t.namespace.as_deref(), Some("web"));
        assert_eq!(t.name.as_deref(), Some("shop"));
        let t = parse_path("/api/v1/events").expect("parses");
        assert_eq!((t.namespace, t.name), (None, None));
        assert!(parse_path("/version").is_none());
    }

    #[test]
    fn selectors_match_labels() {
        let o = json!({"metadata": {"labels": {"app": "shop", "tier": "web"}}});
        let ok = |s: &str| Selector::parse(s).expect("parses").matches(&o);
        assert!(ok("app=shop"));
        assert!(ok("app==shop,tier"));
        assert!(!ok("app!=shop"));
        assert!(ok("!missing"));
        assert!(!ok("tier=db"));
        assert!(Selector::parse("app in (a,b)").is_none());
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut t, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(t, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }
}
