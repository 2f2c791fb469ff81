//! The watchers, the debounce loop, the apply step and the Events it posts.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::reflector::{store::Writer, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use routing_core::import::{ImportOptions, ImportWarning, RouteOrigin};
use routing_core::{ConfigError, Router};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::kinds::Kind;
use crate::render::{render, source_name, RenderError};
use crate::status::{self, Verdict};

/// What to watch and how to apply it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Watch one namespace (`None`: all namespaces).
    pub namespace: Option<String>,
    /// Label selector for the routing objects (`app=shop,tier!=db`); EndpointSlices
    /// are found by their Service instead.
    pub label_selector: Option<String>,
    /// The routing kinds to watch (default: all of [`Kind::ALL`]). Nothing is applied
    /// before every watched kind has been listed once, so leave out a kind whose
    /// CRD the cluster does not have (its list fails and is retried with backoff,
    /// counted in [`Status::watch_errors`]).
    pub kinds: Vec<Kind>,
    /// Watch EndpointSlices and expand backends into endpoints (default true).
    pub endpoint_slices: bool,
    /// Quiet time after the last change before applying (default 200 ms).
    pub debounce: Duration,
    /// Passed to the importers (`gateways` selects routes by parentRef).
    pub import: ImportOptions,
    /// `source.component` of the Events posted on a rejected set.
    pub reporter: String,
    /// Route status written by this replica while it is the elected writer
    /// (default: none written). See [`Options::write_status`].
    pub status_writer: Option<StatusWriter>,
}

/// Who writes route status: the Gateway API `controllerName` this source reports
/// as, and the leadership it writes under (a [`watch`] that is `true` while this
/// replica holds the election, e.g. a Kubernetes Lease), so that of many replicas
/// applying the same routes exactly one writes their status.
#[derive(Debug, Clone)]
pub struct StatusWriter {
    /// `status.parents[].controllerName` (`example.com/routing`).
    pub controller_name: String,
    /// `true` while this replica is the elected writer.
    pub leader: watch::Receiver<bool>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: None,
            label_selector: None,
            kinds: Kind::ALL.to_vec(),
            endpoint_slices: true,
            debounce: Duration::from_millis(200),
            import: ImportOptions::default(),
            reporter: "routing-kube".to_owned(),
            status_writer: None,
        }
    }
}

impl Options {
    /// Watch only `ns`.
    #[must_use]
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }
    /// Select routing objects by labels.
    #[must_use]
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }
    /// Watch these routing kinds only.
    #[must_use]
    pub fn kinds(mut self, kinds: &[Kind]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }
    /// Watch EndpointSlices or not.
    #[must_use]
    pub fn endpoint_slices(mut self, yes: bool) -> Self {
        self.endpoint_slices = yes;
        self
    }
    /// The debounce time.
    #[must_use]
    pub fn debounce(mut self, d: Duration) -> Self {
        self.debounce = d;
        self
    }
    /// The importers' options.
    #[must_use]
    pub fn import(mut self, o: ImportOptions) -> Self {
        self.import = o;
        self
    }
    /// Write the `Accepted` and `ResolvedRefs` conditions of each HTTPRoute and
    /// GRPCRoute under `status.parents` as `controller_name`, while `leader` is
    /// `true`: accepted when its set applied (`ResolvedRefs` false with the spec's
    /// reason for an invalid backendRef), `Accepted` false (`UnsupportedValue`) with
    /// the import error for the route that made a set fail. Only the parents this
    /// router stands for get an entry (the importers' `gateways`, or all); other
    /// controllers' entries are kept.
    ///
    /// ```
    /// let (_tx, leader) = tokio::sync::watch::channel(false);
    /// let o = routing_kube::Options::default().write_status("example.com/routing", leader);
    /// assert!(o.status_writer.is_some());
    /// ```
    #[must_use]
    pub fn write_status(
        mut self,
        controller_name: impl Into<String>,
        leader: watch::Receiver<bool>,
    ) -> Self {
        self.status_writer = Some(StatusWriter {
            controller_name: controller_name.into(),
            leader,
        });
        self
    }
}

/// What the source has done, for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The router generation of the last applied set (0: none applied yet).
    pub generation: u64,
    /// Fingerprint of the last applied configuration (equal across replicas that
    /// applied the same objects).
    pub fingerprint: u64,
    /// Sets applied.
    pub applied: u64,
    /// Sets rejected (the old table stayed live).
    pub rejected: u64,
    /// Why the last rejected set was refused.
    pub last_error: Option<String>,
    /// Events posted about rejections.
    pub events_posted: u64,
    /// Watch errors seen (each is retried with backoff).
    pub watch_errors: u64,
    /// Route status writes made (as the elected writer).
    pub status_writes: u64,
    /// Route status writes that failed (retried on the next change or leadership).
    pub status_errors: u64,
}

/// The running source: drop it (or call [`abort`](KubeSource::abort)) to stop
/// every watcher.
#[derive(Debug)]
pub struct KubeSource {
    status: watch::Receiver<Status>,
    task: JoinHandle<()>,
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeSource {
    /// Starts watching through `client` and applying to `router`. Must be called
    /// inside a tokio runtime.
    #[must_use]
    pub fn spawn(client: Client, router: Router, options: Options) -> Self {
        let (tx, status) = watch::channel(Status::default());
        let task = tokio::spawn(run(client, router, options, tx));
        Self { status, task }
    }

    /// The current status.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Waits (at most `timeout`) until `pred` holds for the status; returns the
    /// status that satisfied it, or `None` on timeout.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&Status) -> bool,
    ) -> Option<Status> {
        tokio::time::timeout(timeout, self.status.wait_for(pred))
            .await
            .ok()?
            .ok()
            .map(|s| s.clone())
    }

    /// Stops every watcher now.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// Aborts the watcher tasks when the run loop ends or is aborted.
struct Tasks(Vec<JoinHandle<()>>);
impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn drive<K>(
    api: Api<K>,
    cfg: watcher::Config,
    writer: Writer<K>,
    notify: Arc<Notify>,
    status: Arc<watch::Sender<Status>>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    let mut stream = Box::pin(watcher(api, cfg).default_backoff().reflect(writer));
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Ok(_) => notify.notify_one(),
            Err(_) => status.send_modify(|s| s.watch_errors += 1),
        }
    }
}

async fn drive_dynamic(
    api: Api<DynamicObject>,
    cfg: watcher::Config,
    writer: Writer<DynamicObject>,
    notify: Arc<Notify>,
    status: Arc<watch::Sender<Status>>,
) {
    let mut stream = Box::pin(watcher(api, cfg).default_backoff().reflect(writer));
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Ok(_) => notify.notify_one(),
            Err(_) => status.send_modify(|s| s.watch_errors += 1),
        }
    }
}

async fn run(client: Client, router: Router, options: Options, tx: watch::Sender<Status>) {
    let status = Arc::new(tx);
    let notify = Arc::new(Notify::new());
    let mut tasks = Tasks(Vec::new());
    let mut stores: Vec<Store<DynamicObject>> = Vec::new();
    let mut cfg = watcher::Config::default();
    if let Some(l) = &options.label_selector {
        cfg = cfg.labels(l);
    }
    for kind in &options.kinds {
        let ar: ApiResource = kind.api_resource();
        let api = match &options.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let writer = Writer::new(ar);
        stores.push(writer.as_reader());
        tasks.0.push(tokio::spawn(drive_dynamic(
            api,
            cfg.clone(),
            writer,
            notify.clone(),
            status.clone(),
        )));
    }
    let slices: Option<Store<EndpointSlice>> = options.endpoint_slices.then(|| {
        let api: Api<EndpointSlice> = match &options.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let writer = Writer::default();
        let store = writer.as_reader();
        tasks.0.push(tokio::spawn(drive(
            api,
            watcher::Config::default(),
            writer,
            notify.clone(),
            status.clone(),
        )));
        store
    });
    // Apply nothing before every kind has been listed once: a half-listed set
    // (routes without their endpoints) is not what the cluster holds.
    for s in &stores {
        if s.wait_until_ready().await.is_err() {
            return;
        }
    }
    if let Some(s) = &slices {
        if s.wait_until_ready().await.is_err() {
            return;
        }
    }
    let mut last_fingerprint = None;
    let mut last_error: Option<String> = None;
    let mut writer = options.status_writer.clone();
    // What was last written per route (name, generation), so unchanged routes cost
    // no request; cleared when leadership is (re)gained.
    let mut written: HashMap<(String, Option<i64>), Verdict> = HashMap::new();
    let mut warnings = Vec::new();
    loop {
        let objects: Vec<DynamicObject> = stores
            .iter()
            .flat_map(|s| s.state())
            .map(|o| (*o).clone())
            .collect();
        let endpoint_slices: Vec<EndpointSlice> = slices
            .as_ref()
            .map(|s| s.state().into_iter().map(|o| (*o).clone()).collect())
            .unwrap_or_default();
        // The routes an import error names, with the errors about each.
        let mut refused: HashMap<String, String> = HashMap::new();
        let outcome = match render(&objects, &endpoint_slices, &options.import) {
            Ok(r) if Some(r.fingerprint) == last_fingerprint => {
                warnings = r.warnings;
                Ok(None)
            }
            Ok(r) => match router.update(r.config) {
                Ok(g) => {
                    warnings = r.warnings;
                    Ok(Some((g, r.fingerprint)))
                }
                Err(e) => {
                    // Native errors name `routes[N]…`: trace each to its object.
                    let mut first = None;
                    if let ConfigError::Invalid(v) = &e {
                        for x in v.errors() {
                            if let Some(o) = origin_source(&r.origins, &x.path) {
                                let text = refused.entry(o.to_owned()).or_default();
                                if !text.is_empty() {
                                    text.push('\n');
                                }
                                text.push_str(&x.to_string());
                                first.get_or_insert_with(|| o.to_owned());
                            }
                        }
                    }
                    Err((e.to_string(), first))
                }
            },
            Err(RenderError::Import(e)) => {
                for x in e.errors() {
                    let text = refused.entry(x.at.source.clone()).or_default();
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&x.to_string());
                }
                let first = e.errors().first().map(|x| x.at.source.clone());
                Err((e.to_string(), first))
            }
            Err(e) => Err((e.to_string(), None)),
        };
        match outcome {
            Ok(None) => {}
            Ok(Some((generation, fingerprint))) => {
                last_fingerprint = Some(fingerprint);
                last_error = None;
                status.send_modify(|s| {
                    s.generation = generation;
                    s.fingerprint = fingerprint;
                    s.applied += 1;
                });
            }
            Err((message, source)) => {
                if last_error.as_deref() != Some(&message) {
                    let involved = source
                        .and_then(|n| objects.iter().find(|o| source_name(o) == n))
                        .or_else(|| objects.first());
                    let posted = match involved {
                        Some(o) => post_event(&client, o, &message, &options.reporter).await,
                        None => false,
                    };
                    status.send_modify(|s| {
                        s.rejected += 1;
                        s.last_error = Some(message.clone());
                        s.events_posted += u64::from(posted);
                    });
                    last_error = Some(message);
                }
            }
        }
        if let Some(w) = &writer {
            if *w.leader.borrow() {
                let (writes, errors) = write_statuses(
                    &client,
                    &objects,
                    &options,
                    &w.controller_name,
                    last_fingerprint.is_some().then_some(warnings.as_slice()),
                    &refused,
                    &mut written,
                )
                .await;
                if writes + errors > 0 {
                    status.send_modify(|s| {
                        s.status_writes += writes;
                        s.status_errors += errors;
                    });
                }
            }
        }
        // Wait for a change, or for leadership to be gained (then write status).
        let gained = match writer.as_mut() {
            Some(w) => {
                tokio::select! {
                    () = notify.notified() => false,
                    changed = w.leader.changed() => {
                        if changed.is_err() {
                            // The election is gone: write no more status.
                            writer = None;
                            false
                        } else {
                            *w.leader.borrow_and_update()
                        }
                    }
                }
            }
            None => {
                notify.notified().await;
                false
            }
        };
        if gained {
            // Another replica may have written in between: check every route again.
            written.clear();
            continue;
        }
        // Debounce: apply once nothing changed for `debounce`, or after 10 of them.
        for _ in 0..10 {
            tokio::select! {
                () = tokio::time::sleep(options.debounce) => break,
                () = notify.notified() => {}
            }
        }
    }
}

/// The object (`Kind namespace/name`) the native field at `path` (`routes[N]…`)
/// came from.
fn origin_source<'o>(origins: &'o [RouteOrigin], path: &str) -> Option<&'o str> {
    let (n, _) = path.strip_prefix("routes[")?.split_once(']')?;
    origins
        .get(n.parse::<usize>().ok()?)
        .map(|o| o.at.source.as_str())
}

/// Writes the status of every Gateway API route whose verdict changed: a route an
/// import error names is refused; the others, when a set has been applied
/// (`warnings` of the applied set), are accepted. Returns (writes, failures).
async fn write_statuses(
    client: &Client,
    objects: &[DynamicObject],
    options: &Options,
    controller: &str,
    warnings: Option<&[ImportWarning]>,
    refused: &HashMap<String, String>,
    written: &mut HashMap<(String, Option<i64>), Verdict>,
) -> (u64, u64) {
    let (mut writes, mut errors) = (0, 0);
    for route in objects.iter().filter(|o| status::is_gateway_route(o)) {
        let name = source_name(route);
        let verdict = match (refused.get(&name), warnings) {
            (Some(why), _) => Verdict::refused(why),
            // A refused set: the other routes keep what they had.
            (None, _) if !refused.is_empty() => continue,
            (None, Some(w)) => Verdict::applied(route, w),
            (None, None) => continue,
        };
        let key = (name, route.metadata.generation);
        if written.get(&key) == Some(&verdict) {
            continue;
        }
        match status::write(
            client,
            route,
            controller,
            &options.import.gateways,
            &verdict,
        )
        .await
        {
            Ok(made) => {
                writes += u64::from(made);
                written.insert(key, verdict);
            }
            Err(_) => errors += 1,
        }
    }
    (writes, errors)
}

/// Posts a core/v1 `Warning` Event about `object`; returns whether the API accepted it.
async fn post_event(
    client: &Client,
    object: &DynamicObject,
    message: &str,
    reporter: &str,
) -> bool {
    let ns = object
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let types = object.types.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut text: String = message.chars().take(1024).collect();
    if text.len() < message.len() {
        text.push('…');
    }
    let event = Event {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(types.api_version),
            kind: Some(types.kind),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: object.metadata.uid.clone(),
            resource_version: object.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some("RoutingRejected".to_owned()),
        message: Some(text),
        type_: Some("Warning".to_owned()),
        count: Some(1),
        first_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        last_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
        source: Some(EventSource {
            component: Some(reporter.to_owned()),
            host: None,
        }),
        reporting_component: Some(reporter.to_owned()),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &event).await.is_ok()
}
