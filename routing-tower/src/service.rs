//! The routing service and its layer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HOST, LOCATION, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use rand::Rng as _;
use routing_core::{
    Action, BackendId, Decision, FaultPolicy, PathMatch, RetryOn, RetryPolicy, RouteError,
    RouteTable, Router, SessionPersistence,
};
use tower::{Layer, Service, ServiceExt as _};
use tracing::Instrument as _;

use crate::backends::{self, BackendService, Backends};
use crate::body::{self, Body, BoxError};
use crate::budget::RetryBudget;
use crate::client::{UpstreamError, UpstreamErrorKind};
use crate::clock::{SharedClock, SystemClock};
use crate::cookie::{self, backend_tag, CookieKey};
use crate::decision::RouteDecision;
use crate::error::{self, RoutingError};
use crate::limit::ConcurrencyLimit;
use crate::outlier::{LocalFailure, Outcome, OutlierConfig, OutlierDetector};
use crate::replay::{self, Buffered};
use crate::stats::{BackendStats, StatsRegistry, StatsSnapshot};

/// Largest request body buffered to copy it to a mirror when the rule has no retry
/// policy (a longer body is not mirrored).
const MIRROR_MAX_BODY: u64 = 64 * 1024;
/// Window of the retry budget.
const BUDGET_TTL: Duration = Duration::from_secs(10);

/// A [`Layer`] that routes every request by a [`routing_core::Router`].
///
/// Two modes:
///
/// * **Dispatch** ([`RoutingLayer::new`]): the layer owns named [`Backends`] and
///   sends each request to the one the route table picks. The wrapped service only
///   sees requests no route matches, and only with
///   [`fall_through`](RoutingLayerBuilder::fall_through); otherwise they get 404.
/// * **Annotate** ([`RoutingLayer::annotate`]): the layer records the decision as a
///   [`RouteDecision`] in the request's extensions and calls the wrapped service,
///   for applications that forward by themselves. Requests no route matches reach
///   the wrapped service without a `RouteDecision`.
///
/// In both modes the layer applies the matched rule's policy: sticky cookies,
/// header filters, redirects, URL rewrites, mirroring, timeouts, retries, fault
/// injection, outlier detection and concurrency limits, and it keeps per-backend
/// [stats](RoutingLayer::stats). Config swaps through the `Router` are seen by the
/// next request.
///
/// ```
/// use routing_tower::{Backends, Body, RoutingLayer};
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let router = routing_core::Router::from_yaml(r#"
/// backends: [{name: v1}, {name: v2}]
/// routes:
///   - name: shop
///     rules:
///       - matches: [{headers: [{name: x-canary, exact: "true"}]}]
///         backends: [{name: v2}]
///       - backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
/// "#).unwrap();
/// let version = |v: &'static str| tower::service_fn(move |_req: http::Request<Body>| async move {
///     Ok::<_, std::convert::Infallible>(http::Response::new(routing_tower::body::full(v)))
/// });
/// let backends = Backends::new().with("v1", version("v1")).with("v2", version("v2"));
/// let svc = RoutingLayer::new(router, backends).layer(routing_tower::NotFound);
///
/// let req = http::Request::get("http://shop/").header("x-canary", "true").body(Body::default()).unwrap();
/// let res = svc.oneshot(req).await.unwrap();
/// let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
/// assert_eq!(body, "v2");
/// # }
/// ```
#[derive(Clone)]
pub struct RoutingLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for RoutingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutingLayer")
            .field("annotate", &self.shared.annotate)
            .field("backends", &self.shared.backends)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RoutingLayer`] with settings other than the defaults.
///
/// ```
/// use routing_tower::{Backends, CookieKey, RoutingLayer};
/// let router = routing_core::Router::from_yaml("{}").unwrap();
/// let layer = RoutingLayer::builder(router)
///     .backends(Backends::new())
///     .cookie_key(CookieKey::derive(b"shared by every replica"))
///     .fall_through(true)
///     .build();
/// # let _ = layer;
/// ```
#[must_use]
pub struct RoutingLayerBuilder {
    router: Router,
    backends: Backends,
    annotate: bool,
    fall_through: bool,
    cookie_key: Option<CookieKey>,
    clock: Option<SharedClock>,
}

impl fmt::Debug for RoutingLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutingLayerBuilder")
            .field("annotate", &self.annotate)
            .field("fall_through", &self.fall_through)
            .finish_non_exhaustive()
    }
}

impl RoutingLayerBuilder {
    /// The backends to dispatch to (dispatch mode).
    pub fn backends(mut self, backends: Backends) -> Self {
        self.backends = backends;
        self.annotate = false;
        self
    }

    /// Annotate mode: call the wrapped service with a [`RouteDecision`] extension.
    pub fn annotate(mut self) -> Self {
        self.annotate = true;
        self
    }

    /// Dispatch mode: send requests no route matches to the wrapped service
    /// instead of answering 404.
    pub fn fall_through(mut self, yes: bool) -> Self {
        self.fall_through = yes;
        self
    }

    /// The key of the stickiness cookies (default: random per layer, so cookies are
    /// honoured only by the process that issued them).
    pub fn cookie_key(mut self, key: CookieKey) -> Self {
        self.cookie_key = Some(key);
        self
    }

    /// The clock of outlier detection and retry budgets (tests use a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The layer.
    #[must_use]
    pub fn build(self) -> RoutingLayer {
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let stats = Arc::new(StatsRegistry::new());
        let outlier = OutlierDetector::new(OutlierConfig::default(), Arc::clone(&clock))
            .with_stats(Arc::clone(&stats));
        RoutingLayer {
            shared: Arc::new(Shared {
                router: self.router,
                backends: self.backends,
                annotate: self.annotate,
                fall_through: self.fall_through,
                cookie_key: self.cookie_key.unwrap_or_else(CookieKey::random),
                clock,
                stats,
                route_stats: StatsRegistry::new(),
                outlier,
                state: ArcSwap::from_pointee(GenState::empty()),
                sync: Mutex::new(()),
            }),
        }
    }
}

impl RoutingLayer {
    /// A dispatching layer over `backends`.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::new(router, routing_tower::Backends::new());
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn new(router: Router, backends: Backends) -> Self {
        Self::builder(router).backends(backends).build()
    }

    /// An annotating layer (see [`RouteDecision`]).
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::annotate(router);
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn annotate(router: Router) -> Self {
        Self::builder(router).annotate().build()
    }

    /// A builder for other settings.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::builder(router).annotate().build();
    /// # let _ = layer;
    /// ```
    pub fn builder(router: Router) -> RoutingLayerBuilder {
        RoutingLayerBuilder {
            router,
            backends: Backends::new(),
            annotate: false,
            fall_through: false,
            cookie_key: None,
            clock: None,
        }
    }

    /// The router this layer reads.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::annotate(router.clone());
    /// assert_eq!(layer.router().generation(), router.generation());
    /// ```
    #[must_use]
    pub fn router(&self) -> &Router {
        &self.shared.router
    }

    /// Per-backend statistics, sorted by backend name.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::annotate(router);
    /// assert!(layer.stats().is_empty());
    /// ```
    #[must_use]
    pub fn stats(&self) -> Vec<(Arc<str>, StatsSnapshot)> {
        self.shared.outlier.sweep();
        let mut v = self.shared.stats.snapshot();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Per-route statistics, sorted by route name: requests the layer routed or
    /// answered for each route (forwarded, redirected, fixed responses), their status
    /// classes and latency (from the start of the forwarding to the response head,
    /// retries included). Requests no route matches are not counted here.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::annotate(router);
    /// assert!(layer.route_stats().is_empty());
    /// ```
    #[must_use]
    pub fn route_stats(&self) -> Vec<(Arc<str>, StatsSnapshot)> {
        let mut v = self.shared.route_stats.snapshot();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The statistics registry (shared with the outlier detector).
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::annotate(router);
    /// assert!(layer.stats_registry().get("v1").is_none());
    /// ```
    #[must_use]
    pub fn stats_registry(&self) -> &StatsRegistry {
        &self.shared.stats
    }

    /// The outlier detector (ejections in force, per-backend state).
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::annotate(router);
    /// assert_eq!(layer.outlier_detector().ejected_count(), 0);
    /// ```
    #[must_use]
    pub fn outlier_detector(&self) -> &OutlierDetector {
        &self.shared.outlier
    }
}

impl<S> Layer<S> for RoutingLayer {
    type Service = Routing<S>;

    fn layer(&self, inner: S) -> Routing<S> {
        Routing {
            inner,
            shared: Arc::clone(&self.shared),
            erased_inner: std::sync::OnceLock::new(),
        }
    }
}

/// The routing service; see [`RoutingLayer`].
///
/// `poll_ready` is always ready: which backend a request needs is known only in
/// `call`, so the chosen backend's readiness is awaited inside the response future,
/// and a backend that is not ready delays only its own requests (no head-of-line
/// blocking across backends, unlike `tower::steer`). Per-backend
/// [`connection_pool`](routing_core::ConnectionPool) limits bound the wait.
#[derive(Clone)]
pub struct Routing<S> {
    inner: S,
    shared: Arc<Shared>,
    /// Annotate mode: `inner` type-erased once, on the first call (each call of a
    /// `BackendService` clones the service it holds, so one erased copy serves all).
    erased_inner: std::sync::OnceLock<BackendService>,
}

impl<S: fmt::Debug> fmt::Debug for Routing<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routing")
            .field("inner", &self.inner)
            .field("annotate", &self.shared.annotate)
            .finish_non_exhaustive()
    }
}

impl Routing<NotFound> {
    /// A dispatching service without a wrapped service: requests no route matches
    /// get 404.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let svc = routing_tower::Routing::dispatch(router, routing_tower::Backends::new());
    /// # let _ = svc;
    /// ```
    #[must_use]
    pub fn dispatch(router: Router, backends: Backends) -> Self {
        RoutingLayer::new(router, backends).layer(NotFound)
    }
}

impl<S> Routing<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The layer this service came from (stats, router, outlier detector).
    pub fn layer(&self) -> RoutingLayer {
        RoutingLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A service that answers 404 to everything: the wrapped service of
/// [`Routing::dispatch`].
///
/// ```
/// use tower::ServiceExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let res = routing_tower::NotFound.oneshot(http::Request::new(routing_tower::Body::default())).await.unwrap();
/// assert_eq!(res.status(), 404);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl<B> Service<Request<B>> for NotFound {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        std::future::ready(Ok(error_response(RoutingError::NoRoute(error::NoRoute))))
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Routing`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        /// Answered by the layer itself (404, 503, redirect, fixed response).
        Ready { response: Option<Response<Body>>, _e: std::marker::PhantomData<fn() -> E> },
        /// Fall-through to the wrapped service.
        Inner { #[pin] future: F },
        /// Routed to a backend.
        Routed { #[pin] future: tracing::instrument::Instrumented<Pin<Box<dyn Future<Output = Response<Body>> + Send>>> },
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E> ResponseFuture<F, E> {
    fn ready(response: Response<Body>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
                _e: std::marker::PhantomData,
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { response, .. } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled after completion: answer again rather than panic.
                None => Poll::Ready(Ok(error_response(RoutingError::NoRoute(error::NoRoute)))),
            },
            KindProj::Inner { future } => future.poll(cx).map_ok(|r| r.map(body::boxed)),
            KindProj::Routed { future } => future.poll(cx).map(Ok),
        }
    }
}

impl<S, B, ResB> Service<Request<B>> for Routing<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<tower::util::Oneshot<S, Request<Body>>, S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let req = req.map(body::boxed);
        let shared = Arc::clone(&self.shared);
        let table = shared.router.snapshot();
        let state = shared.state_for(&table);
        let mut rng = rand::rng();
        let decision = match table.decide(&req, &mut rng) {
            Ok(d) => d,
            Err(RouteError::NoRoute) => {
                if shared.fall_through || shared.annotate {
                    // Clone-and-swap: the clone takes over the readiness of `inner`.
                    let clone = self.inner.clone();
                    let inner = std::mem::replace(&mut self.inner, clone);
                    return ResponseFuture {
                        kind: Kind::Inner {
                            future: inner.oneshot(req),
                        },
                    };
                }
                return ready(error_response(RoutingError::NoRoute(error::NoRoute)));
            }
            Err(err) => {
                // Every backend of the matched rule is out: the error names the rule.
                let rule = match err {
                    RouteError::NoBackend { rule } => Some(rule),
                    _ => None,
                };
                return ready(no_healthy(&table, rule, None));
            }
        };
        let rule = decision.rule();
        let answered = match rule.action() {
            Action::Redirect(r) => Some(redirect(&req, r, decision.request_match().path())),
            Action::FixedResponse(f) => {
                let mut res = Response::new(body::full(f.body.clone()));
                *res.status_mut() = f.status;
                *res.headers_mut() = f.headers.clone();
                rule.policy().response_headers.apply(res.headers_mut());
                Some(res)
            }
            _ => None,
        };
        if let Some(res) = answered {
            if let Some(route) = state.routes.get(rule.route_index()) {
                drop(route.begin());
                route.record(Outcome::Status(res.status()), Duration::ZERO);
            }
            return ready(res);
        }
        let Some(first) = decision.backend_id() else {
            return ready(no_healthy(&table, Some(decision.rule_index()), None));
        };
        // Session persistence: a valid cookie for an available backend of this rule
        // wins over the fresh pick.
        let mut issue_cookie = false;
        let mut chosen = first;
        if let Some(SessionPersistence::Cookie(policy)) = &rule.policy().session_persistence {
            match sticky_backend(&shared, &state, &table, &decision, &req, &policy.name) {
                Some(id) => chosen = id,
                None => issue_cookie = true,
            }
        }
        let plan = Plan {
            rule: decision.rule_index(),
            match_index: decision.match_index(),
            first: chosen,
            sticky_key: decision.sticky_key(),
            issue_cookie,
        };
        let annotate_inner = shared.annotate.then(|| {
            self.erased_inner
                .get_or_init(|| backends::boxed(self.inner.clone()))
                .clone()
        });
        let span = tracing::debug_span!(
            "routing",
            route = table.routes()[rule.route_index()].name(),
            rule = rule.name().unwrap_or(""),
            backend = tracing::field::Empty,
        );
        ResponseFuture {
            kind: Kind::Routed {
                future: forward(shared, table, state, plan, annotate_inner, req, span),
            },
        }
    }
}

fn ready<F, E>(res: Response<Body>) -> ResponseFuture<F, E> {
    ResponseFuture::ready(res)
}

/// What `call` decided, carried into the response future.
struct Plan {
    rule: usize,
    match_index: usize,
    first: BackendId,
    sticky_key: Option<u64>,
    /// Whether the response sets a new stickiness cookie.
    issue_cookie: bool,
}

/// Layer-wide state.
struct Shared {
    router: Router,
    backends: Backends,
    annotate: bool,
    fall_through: bool,
    cookie_key: CookieKey,
    clock: SharedClock,
    stats: Arc<StatsRegistry>,
    /// Per-route counters (the same shape as the backends', keyed by route name).
    route_stats: StatsRegistry,
    outlier: OutlierDetector,
    state: ArcSwap<GenState>,
    sync: Mutex<()>,
}

/// What the layer derives from one table generation.
struct GenState {
    generation: Option<u64>,
    /// By `BackendId::index()`.
    backends: Vec<Slot>,
    /// By route index: the route's counters.
    routes: Vec<Arc<BackendStats>>,
    /// By rule index: the rule's retry budget.
    budgets: Vec<Option<BudgetEntry>>,
    outlier_enabled: bool,
}

impl GenState {
    fn empty() -> Self {
        Self {
            generation: None,
            backends: Vec::new(),
            routes: Vec::new(),
            budgets: Vec::new(),
            outlier_enabled: false,
        }
    }
}

/// A rule's retry budget, kept across generations while the rule keeps its route
/// name, position and budget settings.
struct BudgetEntry {
    key: (Arc<str>, usize),
    params: (u64, u32),
    budget: Arc<RetryBudget>,
}

struct Slot {
    name: Arc<str>,
    tag: u64,
    service: Option<BackendService>,
    stats: Arc<BackendStats>,
    limit: Option<(routing_core::ConnectionPool, Arc<ConcurrencyLimit>)>,
}

impl Shared {
    /// The derived state for `table`, rebuilt once per generation.
    fn state_for(&self, table: &RouteTable) -> Arc<GenState> {
        let cur = self.state.load_full();
        if cur.generation == Some(table.generation()) {
            return cur;
        }
        let _guard = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.state.load_full();
        if cur.generation == Some(table.generation()) {
            return cur;
        }
        // A request still holding an older table than the synced one gets a state
        // for its table, but neither stores it nor touches the outlier detector.
        if cur.generation.is_some_and(|g| g > table.generation()) {
            return Arc::new(self.build_state(table, &cur));
        }
        let next = Arc::new(self.build_state(table, &cur));
        self.sync_outlier_detection(table);
        self.state.store(Arc::clone(&next));
        next
    }

    /// Gives the outlier detector the settings and backends of `table`. Backends
    /// that leave (or all, when detection is turned off) are returned to service.
    fn sync_outlier_detection(&self, table: &RouteTable) {
        let names: Vec<Arc<str>> = match table.outlier_detection() {
            Some(od) => {
                self.outlier.set_config(OutlierConfig::from(*od));
                table.backends().iter().map(|b| b.name_arc()).collect()
            }
            None => Vec::new(),
        };
        self.outlier
            .sync(names.iter().map(|n| &**n), self.router.health());
    }

    fn build_state(&self, table: &RouteTable, prev: &GenState) -> GenState {
        let old: HashMap<&str, &Slot> = prev.backends.iter().map(|s| (&*s.name, s)).collect();
        let backends = table
            .backends()
            .iter()
            .map(|b| {
                let name = b.name_arc();
                let limit = b.connection_pool().map(|cp| {
                    match old.get(&*name).and_then(|s| s.limit.as_ref()) {
                        Some((p, l)) if *p == cp => (cp, Arc::clone(l)),
                        _ => (
                            cp,
                            Arc::new(ConcurrencyLimit::new(
                                cp.max_concurrent_requests as usize,
                                cp.max_pending_requests as usize,
                            )),
                        ),
                    }
                });
                Slot {
                    tag: backend_tag(&name),
                    service: self.backends.get(&name).cloned(),
                    stats: self.stats.get_or_insert(&name),
                    limit,
                    name,
                }
            })
            .collect();
        // Budgets are kept for rules with the same route name, position and settings.
        let mut old_budgets: HashMap<(Arc<str>, usize), &BudgetEntry> = prev
            .budgets
            .iter()
            .flatten()
            .map(|e| (e.key.clone(), e))
            .collect();
        let budgets = table
            .rules()
            .iter()
            .map(|r| {
                let retry = r.policy().retry.as_ref()?;
                let key: (Arc<str>, usize) = (
                    table.routes()[r.route_index()].name().into(),
                    r.index_in_route(),
                );
                let params = (retry.budget_ratio.to_bits(), retry.budget_min_per_second);
                let budget = match old_budgets.remove(&key) {
                    Some(e) if e.params == params => Arc::clone(&e.budget),
                    _ => Arc::new(RetryBudget::new(
                        retry.budget_ratio,
                        retry.budget_min_per_second,
                        BUDGET_TTL,
                        Arc::clone(&self.clock),
                    )),
                };
                Some(BudgetEntry {
                    key,
                    params,
                    budget,
                })
            })
            .collect();
        GenState {
            generation: Some(table.generation()),
            backends,
            routes: table
                .routes()
                .iter()
                .map(|r| self.route_stats.get_or_insert(r.name()))
                .collect(),
            budgets,
            outlier_enabled: table.outlier_detection().is_some(),
        }
    }

    fn record(&self, state: &GenState, slot: &Slot, outcome: Outcome, latency: Duration) {
        slot.stats.record(outcome, latency);
        if state.outlier_enabled {
            if let Some(ej) = self.outlier.record(&slot.name, outcome) {
                tracing::debug!(backend = &*slot.name, ?ej, "ejected");
            }
        }
    }
}

/// The backend a valid stickiness cookie names, if it is one of the rule's backends,
/// available, and served by this layer.
fn sticky_backend<B>(
    shared: &Shared,
    state: &GenState,
    table: &RouteTable,
    decision: &Decision<'_>,
    req: &Request<B>,
    name: &str,
) -> Option<BackendId> {
    let value = routing_core::cookie(req.headers(), name)?;
    let (tag, issued) = shared.cookie_key.verify(name, value)?;
    let ttl = match &decision.rule().policy().session_persistence {
        Some(SessionPersistence::Cookie(p)) => p.ttl,
        _ => None,
    };
    // Session cookies (no TTL) never expire here, so the clock is read only for
    // cookies with a TTL.
    if ttl.is_some() && cookie::expired(issued, ttl, cookie::unix_now()) {
        return None;
    }
    let forward = decision.rule().forward()?;
    forward.backends().iter().find_map(|wb| {
        let id = wb.id();
        let slot = state.backends.get(id.index())?;
        (slot.tag == tag
            && wb.weight() > 0
            && table.backend(id).is_available()
            && (shared.annotate || slot.service.is_some()))
        .then_some(id)
    })
}

fn error_response(err: RoutingError) -> Response<Body> {
    let mut res = Response::new(body::full(err.to_string()));
    *res.status_mut() = err.status();
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.extensions_mut().insert(err);
    res
}

/// The 503 for rule `rule` (its route named in the error), optionally naming a
/// backend the layer has no service for.
fn no_healthy(
    table: &RouteTable,
    rule: Option<usize>,
    backend: Option<Arc<str>>,
) -> Response<Body> {
    let route: Arc<str> = rule.and_then(|r| table.rules().get(r)).map_or_else(
        || Arc::from(""),
        |r| table.routes()[r.route_index()].name().into(),
    );
    error_response(RoutingError::NoHealthyBackend(error::NoHealthyBackend {
        route,
        backend,
    }))
}

/// The redirect answer for `req` (Gateway API `RequestRedirect` semantics).
fn redirect<B>(
    req: &Request<B>,
    r: &routing_core::Redirect,
    matched: &PathMatch,
) -> Response<Body> {
    let req_scheme = req.uri().scheme_str().unwrap_or("http");
    let host_header = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    let (req_host, req_port) = split_host_port(host_header);
    let scheme = r.scheme.as_deref().unwrap_or(req_scheme);
    let host = r.hostname.as_deref().unwrap_or(req_host);
    // The port: the configured one; else the request's when the scheme is kept;
    // else none (the new scheme's well-known port). Well-known ports are omitted.
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => Some(p),
        (None, None) => req_port,
        (None, Some(_)) => None,
    };
    let port = port.filter(|&p| !matches!((scheme, p), ("http", 80) | ("https", 443)));
    let path = match &r.path {
        Some(m) => m.rewrite_for(req.uri().path(), matched),
        None => req.uri().path().to_owned(),
    };
    let mut location = format!("{scheme}://{host}");
    if let Some(p) = port {
        location.push(':');
        location.push_str(&p.to_string());
    }
    location.push_str(&path);
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q);
    }
    let mut res = Response::new(body::empty());
    *res.status_mut() = r.status;
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            res.headers_mut().insert(LOCATION, v);
        }
        Err(_) => *res.status_mut() = StatusCode::BAD_REQUEST,
    }
    let _ = r;
    res
}

fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    // `[v6]:port`, `host:port`, `host`.
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..]
                .strip_prefix(':')
                .and_then(|p| p.parse().ok());
            return (&authority[..end + 2], port);
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

/// Applies the rule's request header filters and URL rewrite to `parts`.
fn request_filters(
    rule: &routing_core::Rule,
    match_index: usize,
    parts: &mut http::request::Parts,
) {
    let policy = rule.policy();
    policy.request_headers.apply(&mut parts.headers);
    if let Some(rw) = &policy.url_rewrite {
        rewrite_url(parts, rw, rule.matches()[match_index].path());
    }
}

/// Applies the rule's URL rewrite to `parts`.
fn rewrite_url(
    parts: &mut http::request::Parts,
    rw: &routing_core::UrlRewrite,
    matched: &PathMatch,
) {
    if let Some(host) = &rw.hostname {
        if let Ok(v) = HeaderValue::from_str(host) {
            parts.headers.insert(HOST, v);
        }
    }
    if rw.hostname.is_none() && rw.path.is_none() {
        return;
    }
    let mut uri = parts.uri.clone().into_parts();
    if let Some(m) = &rw.path {
        let path = m.rewrite_for(parts.uri.path(), matched);
        let pq = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(pq) = pq.parse() {
            uri.path_and_query = Some(pq);
        }
    }
    if let (Some(host), Some(_)) = (&rw.hostname, &uri.authority) {
        if let Ok(a) = host.parse() {
            uri.authority = Some(a);
        }
    }
    if let Ok(u) = Uri::from_parts(uri) {
        parts.uri = u;
    }
}

/// A fresh request for one try.
fn request_for_try(parts: &http::request::Parts, body: Body) -> Request<Body> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    *req.extensions_mut() = parts.extensions.clone();
    req
}

/// The backend call as a boxed future. Boxing in this non-async function hides the
/// `Oneshot` type, whose boxed-error trait objects otherwise trip rustc's
/// higher-ranked `Send` check in the async functions that await it.
fn call_backend(
    svc: &BackendService,
    req: Request<Body>,
) -> Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>> {
    svc.call(req)
}

/// What a try ended with.
enum TryResult {
    Response(Response<Body>),
    /// The failure, whether it may be retried, and the answer if it is not.
    Failed(LocalFailure, bool, RoutingError),
    /// Refused before reaching the backend (its queue is full): never retried.
    Refused(RoutingError),
}

/// How a backend error counts: its failure kind (stats, outlier detection) and
/// whether `reset` / `connect-failure` retries may retry it. Only failures known to
/// be connection-level are retryable: an [`UpstreamError`] of kind `Connect` or
/// `Reset`, or an I/O error saying the connection was refused, reset or broken.
/// Anything else (a malformed upstream answer, a failing request body, an error of
/// an in-process service) counts as a reset but is not retried.
fn classify(err: &BoxError) -> (LocalFailure, bool) {
    use std::io::ErrorKind as Io;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&**err);
    let mut depth = 0;
    while let Some(e) = cur {
        if let Some(u) = e.downcast_ref::<UpstreamError>() {
            return match u.kind() {
                UpstreamErrorKind::Connect => (LocalFailure::Connect, true),
                UpstreamErrorKind::Reset => (LocalFailure::Reset, true),
                _ => (LocalFailure::Reset, false),
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                Io::ConnectionRefused => return (LocalFailure::Connect, true),
                Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe => {
                    return (LocalFailure::Reset, true)
                }
                _ => {}
            }
        }
        if depth == 8 {
            break;
        }
        cur = e.source();
        depth += 1;
    }
    (LocalFailure::Reset, false)
}

fn should_retry(policy: &RetryPolicy, outcome: &Outcome) -> bool {
    policy.on.iter().any(|on| match (on, outcome) {
        (RetryOn::ServerError, o) => o.is_5xx(),
        (RetryOn::GatewayError, o) => o.is_gateway_error(),
        (RetryOn::Reset, Outcome::LocalFailure(LocalFailure::Reset | LocalFailure::Timeout)) => {
            true
        }
        (RetryOn::ConnectFailure, Outcome::LocalFailure(LocalFailure::Connect)) => true,
        (RetryOn::RetriableStatusCodes, Outcome::Status(s)) => policy.status_codes.contains(s),
        _ => false,
    })
}

/// Another backend of the rule for a retry, if one is available; else `current`.
fn retry_backend(
    table: &RouteTable,
    rule: usize,
    tried: &[BackendId],
    current: BackendId,
) -> BackendId {
    let Some(fwd) = table.rules()[rule].forward() else {
        return current;
    };
    let mut rng = rand::rng();
    // A few weighted draws that avoid tried backends; no sticky key, so that
    // consistent hashing does not return the same backend every time.
    for _ in 0..4 {
        if let Some(pos) = fwd.pick(&mut rng, None) {
            let id = fwd.backends()[pos].id();
            if !tried.contains(&id) {
                return id;
            }
        }
    }
    current
}

/// Full-jitter exponential backoff: uniform in `0 ..= base × 2^(attempt-1)`, capped
/// at ten times the base (Envoy's default cap).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let cap = base.saturating_mul(10);
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let nanos = u64::try_from(exp.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// Applies a fault (delay, then abort) if the policy says so for this request.
/// Returns the abort response, if any.
async fn inject_fault(fault: &FaultPolicy, headers: &http::HeaderMap) -> Option<Response<Body>> {
    if !fault.applies(headers) {
        return None;
    }
    let (delay, abort) = {
        let mut rng = rand::rng();
        let delay = fault
            .delay
            .and_then(|(d, f)| rng.random_bool(f.clamp(0.0, 1.0)).then_some(d));
        let abort = fault
            .abort
            .and_then(|(s, f)| rng.random_bool(f.clamp(0.0, 1.0)).then_some(s));
        (delay, abort)
    };
    if let Some(d) = delay {
        tracing::debug!(delay = ?d, "fault: delaying");
        tokio::time::sleep(d).await;
    }
    abort.map(|status| {
        tracing::debug!(%status, "fault: aborting");
        let mut res = Response::new(body::full("fault filter abort"));
        *res.status_mut() = status;
        res
    })
}

/// Everything after the decision: fault, filters, mirror, tries, response filters.
///
/// Boxed here, where every type is concrete, so that the future is proven `Send`
/// once (an `async fn` called from the generic `call` trips a known rustc
/// limitation with higher-ranked lifetimes).
fn forward(
    shared: Arc<Shared>,
    table: Arc<RouteTable>,
    state: Arc<GenState>,
    plan: Plan,
    annotate_inner: Option<BackendService>,
    req: Request<Body>,
    span: tracing::Span,
) -> tracing::instrument::Instrumented<Pin<Box<dyn Future<Output = Response<Body>> + Send>>> {
    // The common case (one try, nothing to buffer or wait for) has its own, much
    // smaller future: a future's size is memory written and moved on every request.
    let policy = table.rules()[plan.rule].policy();
    let simple = policy.fault.is_none()
        && policy.retry.is_none()
        && policy.mirror.is_none()
        && policy.timeouts.request.is_none_or(|t| t.is_zero());
    // Instrumented after boxing, so the future is moved only once.
    let future: Pin<Box<dyn Future<Output = Response<Body>> + Send>> = if simple {
        forward_simple(shared, table, state, plan, annotate_inner, req)
    } else {
        Box::pin(forward_inner(
            shared,
            table,
            state,
            plan,
            annotate_inner,
            req,
        ))
    };
    future.instrument(span)
}

async fn forward_inner(
    shared: Arc<Shared>,
    table: Arc<RouteTable>,
    state: Arc<GenState>,
    plan: Plan,
    annotate_inner: Option<BackendService>,
    req: Request<Body>,
) -> Response<Body> {
    let rule = &table.rules()[plan.rule];
    let policy = rule.policy();
    let (mut parts, body) = req.into_parts();
    let route = &state.routes[rule.route_index()];
    let _route_in_flight = route.begin();
    let started = tokio::time::Instant::now();

    if let Some(fault) = &policy.fault {
        // Boxed: rare branches should not grow every request's future.
        if let Some(res) = Box::pin(inject_fault(fault, &parts.headers)).await {
            route.record(Outcome::Status(res.status()), started.elapsed());
            return res;
        }
    }
    request_filters(rule, plan.match_index, &mut parts);

    // Buffer the body when a retry or a mirror needs it again.
    let limit = match (&policy.retry, &policy.mirror) {
        (Some(r), _) => Some(r.max_body_bytes),
        (None, Some(_)) => Some(MIRROR_MAX_BODY),
        (None, None) => None,
    };
    let mut buffered = match limit {
        Some(limit) => Box::pin(replay::buffer(body, limit)).await,
        None => Buffered::Streaming(body),
    };

    if let Some(m) = &policy.mirror {
        if rand::rng().random_bool(m.fraction.clamp(0.0, 1.0)) {
            mirror(
                &shared,
                &state,
                &table,
                m.backend,
                &parts,
                &buffered,
                &annotate_inner,
            );
        }
    }

    let run = tries(
        &shared,
        &table,
        &state,
        &plan,
        annotate_inner.as_ref(),
        parts,
        &mut buffered,
    );
    let (res, served_by) = match policy.timeouts.request {
        Some(t) if !t.is_zero() => match Box::pin(tokio::time::timeout(t, run)).await {
            Ok(r) => r,
            Err(_) => (
                error_response(RoutingError::Timeout(error::Timeout {
                    per_try: false,
                    after: t,
                })),
                None,
            ),
        },
        _ => run.await,
    };
    let latency = started.elapsed();
    finish(
        &shared,
        &state,
        &plan,
        policy,
        res,
        served_by,
        (route, latency),
    )
}

/// Response filters and the stickiness cookie.
fn finish(
    shared: &Shared,
    state: &GenState,
    plan: &Plan,
    policy: &routing_core::Policy,
    mut res: Response<Body>,
    served_by: Option<BackendId>,
    route: (&BackendStats, Duration),
) -> Response<Body> {
    route.0.record(Outcome::Status(res.status()), route.1);
    policy.response_headers.apply(res.headers_mut());
    if let (Some(id), Some(SessionPersistence::Cookie(cp))) =
        (served_by, &policy.session_persistence)
    {
        // A new session, or a retry that moved the session to another backend.
        if plan.issue_cookie || id != plan.first {
            issue(shared, state, cp, id, &mut res);
        }
    }
    res
}

/// One try, no fault, retry, mirror or request timeout: the lean path. The work
/// before the backend call is done here, synchronously, so that the boxed future
/// holds only what the call and the bookkeeping after it need.
fn forward_simple(
    shared: Arc<Shared>,
    table: Arc<RouteTable>,
    state: Arc<GenState>,
    plan: Plan,
    annotate_inner: Option<BackendService>,
    req: Request<Body>,
) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
    let (mut parts, body) = req.into_parts();
    let rule = &table.rules()[plan.rule];
    let policy = rule.policy();
    request_filters(rule, plan.match_index, &mut parts);
    let backend = plan.first;
    let Some(slot) = state.backends.get(backend.index()) else {
        return Box::pin(std::future::ready(no_healthy(
            &table,
            Some(plan.rule),
            None,
        )));
    };
    let Some(svc) = slot.service.as_ref().or(annotate_inner.as_ref()) else {
        let res = no_healthy(&table, Some(plan.rule), Some(Arc::clone(&slot.name)));
        return Box::pin(std::future::ready(res));
    };
    let mut req = Request::from_parts(parts, body);
    if shared.annotate {
        req.extensions_mut().insert(RouteDecision::new(
            Arc::clone(&table),
            plan.rule,
            Some(backend),
            plan.sticky_key,
            0,
        ));
    }
    tracing::Span::current().record("backend", &*slot.name);
    let per_try = policy.timeouts.per_try.filter(|d| !d.is_zero());
    // Not polled until the permit (if any) is held.
    let call = call_backend(svc, req);
    Box::pin(async move {
        let slot = &state.backends[backend.index()];
        let route = &state.routes[table.rules()[plan.rule].route_index()];
        let _route_in_flight = route.begin();
        let mut started = tokio::time::Instant::now();
        let mut latency = Duration::ZERO;
        let (res, served_by) = 'done: {
            let _permit = match &slot.limit {
                Some((_, limit)) => match Box::pin(limit.acquire()).await {
                    Ok(p) => Some(p),
                    Err(e) => break 'done (error_response(RoutingError::Overloaded(e)), None),
                },
                None => None,
            };
            let _in_flight = slot.stats.begin();
            if slot.limit.is_some() {
                // The backend's latency starts once the permit is held.
                started = tokio::time::Instant::now();
            }
            let result = match per_try {
                Some(t) => match Box::pin(tokio::time::timeout(t, call)).await {
                    Ok(r) => r,
                    Err(_) => {
                        let failure = Outcome::LocalFailure(LocalFailure::Timeout);
                        shared.record(&state, slot, failure, started.elapsed());
                        let e = RoutingError::Timeout(error::Timeout {
                            per_try: true,
                            after: t,
                        });
                        break 'done (error_response(e), None);
                    }
                },
                None => call.await,
            };
            latency = started.elapsed();
            match settle(&shared, &state, slot, result, latency) {
                TryResult::Response(r) => (r, Some(backend)),
                TryResult::Failed(_, _, e) | TryResult::Refused(e) => (error_response(e), None),
            }
        };
        // One clock read for the backend's and the route's latency (the early exits
        // above — queue full, per-try timeout — record the time until then).
        if latency.is_zero() {
            latency = started.elapsed();
        }
        let policy = table.rules()[plan.rule].policy();
        finish(
            &shared,
            &state,
            &plan,
            policy,
            res,
            served_by,
            (route, latency),
        )
    })
}

fn issue(
    shared: &Shared,
    state: &GenState,
    policy: &routing_core::CookiePolicy,
    id: BackendId,
    res: &mut Response<Body>,
) {
    let Some(slot) = state.backends.get(id.index()) else {
        return;
    };
    let value = shared
        .cookie_key
        .issue(&policy.name, &slot.name, cookie::unix_now());
    if let Some(h) = cookie::set_cookie(policy, &value) {
        res.headers_mut().append(SET_COOKIE, h);
    }
}

/// Sends a copy of the request to `backend` in the background; its response is
/// dropped. Only replayable (buffered) requests are mirrored.
fn mirror(
    shared: &Arc<Shared>,
    state: &GenState,
    table: &Arc<RouteTable>,
    backend: BackendId,
    parts: &http::request::Parts,
    buffered: &Buffered,
    annotate_inner: &Option<BackendService>,
) {
    let Some(body) = buffered.replay() else {
        tracing::debug!("mirror skipped: body not buffered");
        return;
    };
    let Some(slot) = state.backends.get(backend.index()) else {
        return;
    };
    let Some(svc) = slot.service.clone().or_else(|| annotate_inner.clone()) else {
        return;
    };
    let mut req = request_for_try(parts, body);
    if shared.annotate {
        req.extensions_mut()
            .insert(RouteDecision::mirror(table, backend));
    }
    let name = Arc::clone(&slot.name);
    let call = call_backend(&svc, req);
    tokio::spawn(async move {
        match call.await {
            Ok(res) => {
                // Drain the body so the connection can be reused, then drop it.
                let _ = http_body_util::BodyExt::collect(res.into_body()).await;
            }
            Err(e) => tracing::debug!(backend = &*name, error = %e, "mirror failed"),
        }
    });
}

/// The tries: the first backend, then retries while the policy, the budget and the
/// body allow. Returns the response and the backend that produced it.
async fn tries(
    shared: &Shared,
    table: &Arc<RouteTable>,
    state: &GenState,
    plan: &Plan,
    annotate_inner: Option<&BackendService>,
    parts: http::request::Parts,
    buffered: &mut Buffered,
) -> (Response<Body>, Option<BackendId>) {
    let mut parts = Some(parts);
    let policy = table.rules()[plan.rule].policy();
    let retry = policy.retry.as_ref();
    let budget = state
        .budgets
        .get(plan.rule)
        .and_then(|b| b.as_ref())
        .map(|e| &e.budget);
    if let Some(b) = budget {
        b.deposit();
    }
    let max_tries = 1 + retry.map_or(0, |r| r.attempts);
    let mut tried: Vec<BackendId> = Vec::new();
    let mut backend = plan.first;
    let mut attempt = 0u32;
    loop {
        let Some(slot) = state.backends.get(backend.index()) else {
            return (no_healthy(table, Some(plan.rule), None), None);
        };
        let Some(svc) = slot.service.as_ref().or(annotate_inner) else {
            return (
                no_healthy(table, Some(plan.rule), Some(Arc::clone(&slot.name))),
                None,
            );
        };
        // The body for this try: a replay, or the original stream (only once).
        let body = match buffered.replay() {
            Some(b) => b,
            None => match std::mem::replace(buffered, Buffered::Streaming(body::empty())) {
                Buffered::Streaming(b) if attempt == 0 => b,
                _ => break,
            },
        };
        // The last possible try takes the request head; earlier ones copy it.
        let last = attempt + 1 >= max_tries || !buffered.is_replayable();
        let mut req = match (last, parts.as_ref()) {
            (false, Some(p)) => request_for_try(p, body),
            _ => match parts.take() {
                Some(p) => Request::from_parts(p, body),
                None => break,
            },
        };
        if shared.annotate {
            req.extensions_mut().insert(RouteDecision::new(
                Arc::clone(table),
                plan.rule,
                Some(backend),
                plan.sticky_key,
                attempt,
            ));
        }
        tracing::Span::current().record("backend", &*slot.name);
        let result = one_try(shared, state, slot, svc, req, policy.timeouts.per_try).await;
        attempt += 1;
        let (outcome, may_retry) = match &result {
            TryResult::Response(r) => (Outcome::Status(r.status()), true),
            TryResult::Failed(f, ok, _) => (Outcome::LocalFailure(*f), *ok),
            TryResult::Refused(e) => return (error_response(e.clone()), None),
        };
        let retryable = may_retry
            && retry.is_some_and(|r| should_retry(r, &outcome))
            && attempt < max_tries
            && parts.is_some()
            && buffered.is_replayable();
        if !retryable || !budget.is_some_and(|b| b.try_withdraw()) {
            if retryable {
                tracing::debug!(backend = &*slot.name, "retry budget exhausted");
            }
            return match result {
                TryResult::Response(r) => (r, Some(backend)),
                TryResult::Failed(_, _, e) | TryResult::Refused(e) => (error_response(e), None),
            };
        }
        tried.push(backend);
        let next = retry_backend(table, plan.rule, &tried, backend);
        tracing::debug!(from = &*slot.name, attempt, ?outcome, "retrying");
        if let Some(s) = state.backends.get(next.index()) {
            s.stats.record_retry();
        }
        if let Some(r) = retry {
            Box::pin(tokio::time::sleep(backoff(r.backoff, attempt))).await;
        }
        backend = next;
    }
    (no_healthy(table, Some(plan.rule), None), None)
}

/// One try: concurrency limit, the call under the per-try timeout, stats and
/// outlier detection.
async fn one_try(
    shared: &Shared,
    state: &GenState,
    slot: &Slot,
    svc: &BackendService,
    req: Request<Body>,
    per_try: Option<Duration>,
) -> TryResult {
    let _permit = match &slot.limit {
        Some((_, limit)) => match Box::pin(limit.acquire()).await {
            Ok(p) => Some(p),
            Err(e) => return TryResult::Refused(RoutingError::Overloaded(e)),
        },
        None => None,
    };
    let _in_flight = slot.stats.begin();
    let started = tokio::time::Instant::now();
    let call = call_backend(svc, req);
    let result = match per_try.filter(|d| !d.is_zero()) {
        Some(t) => match Box::pin(tokio::time::timeout(t, call)).await {
            Ok(r) => r,
            Err(_) => {
                let latency = started.elapsed();
                shared.record(
                    state,
                    slot,
                    Outcome::LocalFailure(LocalFailure::Timeout),
                    latency,
                );
                return TryResult::Failed(
                    LocalFailure::Timeout,
                    true,
                    RoutingError::Timeout(error::Timeout {
                        per_try: true,
                        after: t,
                    }),
                );
            }
        },
        None => call.await,
    };
    settle(shared, state, slot, result, started.elapsed())
}

/// Records how a backend call ended (stats, outlier detection) and classifies it.
fn settle(
    shared: &Shared,
    state: &GenState,
    slot: &Slot,
    result: Result<Response<Body>, BoxError>,
    latency: Duration,
) -> TryResult {
    match result {
        Ok(res) => {
            shared.record(state, slot, Outcome::Status(res.status()), latency);
            TryResult::Response(res)
        }
        Err(e) => {
            let (kind, retryable) = classify(&e);
            shared.record(state, slot, Outcome::LocalFailure(kind), latency);
            TryResult::Failed(
                kind,
                retryable,
                RoutingError::Upstream(error::Upstream {
                    backend: Arc::clone(&slot.name),
                    message: error::chain(&*e),
                }),
            )
        }
    }
}
