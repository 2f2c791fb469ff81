//! [`RoutingLayer`]: the layer-wide state shared by every [`Routing`] it makes.

use std::fmt;
use std::sync::Arc;

use routing_core::Router;
use tower::Layer;

use super::builder::RoutingLayerBuilder;
use super::Routing;
use crate::backends::Backends;
use crate::outlier::OutlierDetector;
use crate::state::Shared;
use crate::stats::{StatsRegistry, StatsSnapshot};
#[allow(unused_imports)] // doc links
use crate::RouteDecision;

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
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for RoutingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutingLayer")
            .field("annotate", &self.shared.annotate)
            .field("backends", &self.shared.backends)
            .finish_non_exhaustive()
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
        RoutingLayerBuilder::new(router)
    }

    /// Replaces the cookie key ring while serving: the next cookie is issued with
    /// `key`'s current key and verified against its ring (keep the previous key in
    /// it during a rotation; see [`CookieKey::from_ring_text`](crate::CookieKey::from_ring_text)
    /// and [`cookie::watch_ring_file`](crate::cookie::watch_ring_file)).
    ///
    /// ```
    /// use routing_tower::{CookieKey, RoutingLayer};
    /// let layer = RoutingLayer::annotate(routing_core::Router::from_yaml("{}").unwrap());
    /// layer.set_cookie_key(CookieKey::from_bytes([9; 32]));
    /// let v = layer.cookie_key().issue("c", "r", "v1", 0);
    /// assert_eq!(v, CookieKey::from_bytes([9; 32]).issue("c", "r", "v1", 0));
    /// ```
    pub fn set_cookie_key(&self, key: crate::CookieKey) {
        self.shared.cookie_key.store(std::sync::Arc::new(key));
    }

    /// The live cookie key ring.
    ///
    /// ```
    /// let layer = routing_tower::RoutingLayer::annotate(routing_core::Router::from_yaml("{}").unwrap());
    /// let _ = layer.cookie_key().issue("c", "r", "v1", 0);
    /// ```
    #[must_use]
    pub fn cookie_key(&self) -> std::sync::Arc<crate::CookieKey> {
        self.shared.cookie_key.load_full()
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

    /// The statistics registry (the layer records every try's outcome in it, and
    /// marks the backends its outlier detector ejects).
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

    /// The seed of the layer's random choices (see
    /// [`RoutingLayerBuilder::rng_seed`]).
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let a = routing_tower::RoutingLayer::builder(router.clone()).rng_seed(7).build();
    /// assert_eq!(a.rng_seed(), 7);
    /// ```
    #[must_use]
    pub fn rng_seed(&self) -> u64 {
        self.shared.rng.seed()
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
            sticky_memo: crate::sticky::Memo::default(),
        }
    }
}
