//! The decision the layer records in each request's extensions.

use std::fmt;
use std::sync::Arc;

use routing_core::{Backend, BackendId, Route, RouteTable, Rule};

/// Where the routing layer sent a request, in the request's extensions.
///
/// Every request the layer passes on carries one: in annotate mode the wrapped
/// service reads it to forward by itself, in dispatch mode backends may read it
/// (e.g. for logs). Cheap to clone: it holds the table snapshot the decision was
/// made on, so names stay valid even if the configuration is swapped meanwhile.
///
/// ```
/// use routing_tower::{RouteDecision, RoutingLayer, Body};
/// use tower::{Layer, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let router = routing_core::Router::from_yaml(r#"
/// backends: [{name: v1}]
/// routes: [{name: shop, rules: [{backends: [{name: v1}]}]}]"#).unwrap();
/// let app = tower::service_fn(|req: http::Request<Body>| async move {
///     let d = req.extensions().get::<RouteDecision>().expect("set by the layer");
///     let text = format!("{} -> {}", d.route().name(), d.backend().unwrap().name());
///     Ok::<_, std::convert::Infallible>(http::Response::new(routing_tower::body::full(text)))
/// });
/// let svc = RoutingLayer::annotate(router).layer(app);
/// let res = svc.oneshot(http::Request::new(Body::default())).await.unwrap();
/// let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
/// assert_eq!(body, "shop -> v1");
/// # }
/// ```
#[derive(Clone)]
pub struct RouteDecision {
    table: Arc<RouteTable>,
    rule: usize,
    backend: Option<BackendId>,
    sticky_key: Option<u64>,
    attempt: u32,
    mirror: bool,
}

impl fmt::Debug for RouteDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteDecision")
            .field("route", &self.route().name())
            .field("rule", &self.rule)
            .field("backend", &self.backend().map(Backend::name))
            .field("sticky_key", &self.sticky_key)
            .field("attempt", &self.attempt)
            .field("mirror", &self.mirror)
            .finish()
    }
}

impl RouteDecision {
    pub(crate) fn new(
        table: Arc<RouteTable>,
        rule: usize,
        backend: Option<BackendId>,
        sticky_key: Option<u64>,
        attempt: u32,
    ) -> Self {
        Self {
            table,
            rule,
            backend,
            sticky_key,
            attempt,
            mirror: false,
        }
    }

    pub(crate) fn mirror(table: &Arc<RouteTable>, backend: BackendId) -> Self {
        Self {
            table: Arc::clone(table),
            rule: usize::MAX,
            backend: Some(backend),
            sticky_key: None,
            attempt: 0,
            mirror: true,
        }
    }

    /// The table generation the decision was made on.
    #[must_use]
    pub fn table(&self) -> &Arc<RouteTable> {
        &self.table
    }

    /// The matched rule (`None` for a mirrored copy).
    #[must_use]
    pub fn rule(&self) -> Option<&Rule> {
        self.table.rules().get(self.rule)
    }

    /// The matched route. For a mirrored copy, the table's first route.
    ///
    /// # Panics
    ///
    /// Never: a decision exists only for tables with at least one route.
    #[must_use]
    pub fn route(&self) -> &Route {
        let i = self.rule().map_or(0, Rule::route_index);
        &self.table.routes()[i]
    }

    /// The backend this try goes to.
    #[must_use]
    pub fn backend(&self) -> Option<&Backend> {
        self.backend.map(|id| self.table.backend(id))
    }

    /// The sticky key's hash, when the rule hashes on one.
    #[must_use]
    pub fn sticky_key(&self) -> Option<u64> {
        self.sticky_key
    }

    /// 0 for the first try, then 1, 2, … for retries.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether this request is a mirrored copy (its response is dropped).
    #[must_use]
    pub fn is_mirror(&self) -> bool {
        self.mirror
    }
}
