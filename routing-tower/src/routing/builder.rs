//! [`RoutingLayerBuilder`]: the settings of a [`RoutingLayer`].

use std::fmt;
use std::sync::Arc;

use routing_core::Router;

use super::layer::RoutingLayer;
use crate::backends::Backends;
use crate::clock::{SharedClock, SystemClock};
use crate::cookie::CookieKey;
use crate::rng::LayerRng;
use crate::state::Shared;
#[allow(unused_imports)] // doc links
use crate::RouteDecision;

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
    cookie_max_age: Option<Option<std::time::Duration>>,
    mirror_limits: Option<(usize, std::time::Duration)>,
    buffer_budget: Option<u64>,
    defaults: crate::deadline::Defaults,
    backend_limit: Option<Option<routing_core::ConnectionPool>>,
    clock: Option<SharedClock>,
    rng_seed: Option<u64>,
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
    pub(super) fn new(router: Router) -> Self {
        Self {
            router,
            backends: Backends::new(),
            annotate: false,
            fall_through: false,
            cookie_key: None,
            cookie_max_age: None,
            mirror_limits: None,
            buffer_budget: None,
            defaults: crate::deadline::Defaults::default(),
            backend_limit: None,
            clock: None,
            rng_seed: None,
        }
    }

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

    /// The layer's one clock: backend and route latencies, outlier ejections and
    /// retry budgets all read it (default: a [`SystemClock`]; tests use a
    /// [`ManualClock`](crate::clock::ManualClock) or a
    /// [`TokioClock`](crate::clock::TokioClock)). Tokio timers still do the sleeping
    /// and the timeouts.
    ///
    /// ```
    /// use routing_tower::{clock::ManualClock, RoutingLayer};
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = RoutingLayer::builder(router).clock(std::sync::Arc::new(ManualClock::new())).build();
    /// # let _ = layer;
    /// ```
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The oldest a stickiness cookie is honoured when its rule's policy sets no
    /// `ttl` (a session cookie): default one day, `None` for no limit. A cookie past
    /// it gets a fresh choice and a new cookie; with a `ttl`, the `ttl` decides.
    ///
    /// ```
    /// use std::time::Duration;
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::builder(router)
    ///     .cookie_max_age(Some(Duration::from_secs(3600)))
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn cookie_max_age(mut self, max_age: Option<std::time::Duration>) -> Self {
        self.cookie_max_age = Some(max_age);
        self
    }

    /// Bounds on request mirroring: at most `concurrency` mirrored requests in
    /// flight (a mirror is skipped, never queued, when all are busy) and `timeout`
    /// for each, response included (its body is drained and dropped, never kept).
    /// Default: 64 and 5 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::builder(router)
    ///     .mirror_limits(16, Duration::from_secs(1))
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn mirror_limits(mut self, concurrency: usize, timeout: std::time::Duration) -> Self {
        self.mirror_limits = Some((concurrency, timeout));
        self
    }

    /// The request-body bytes the layer holds for replay (retries, mirrors) at once,
    /// across all requests (default 256 MiB). A body that would go over it is not
    /// buffered: it is sent once, streaming, and that request is not retried.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::builder(router).buffer_budget(64 << 20).build();
    /// # let _ = layer;
    /// ```
    pub fn buffer_budget(mut self, bytes: u64) -> Self {
        self.buffer_budget = Some(bytes);
        self
    }

    /// The request timeout of rules that set no `timeouts.request` (default 15 s,
    /// Envoy's route timeout; `None` for none). It covers the whole exchange: body
    /// buffering, every try and backoff, and the response body to its end — a hung
    /// backend is answered 504, a response still streaming when it fires is cut
    /// short. A rule's own `timeouts.request` wins; `0s` there turns it off for a
    /// rule that streams for long (downloads, server-sent events).
    ///
    /// ```
    /// use std::time::Duration;
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::builder(router)
    ///     .request_timeout(Some(Duration::from_secs(30)))
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn request_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.defaults.request_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// The longest a response body may wait for its backend between two frames
    /// (default 60 s, nginx's `proxy_read_timeout`; `None` for no limit). When it
    /// fires the body ends in an error, so the client sees a cut response, never a
    /// clean short one. A client that reads slowly does not trip it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::builder(router)
    ///     .response_idle_timeout(Some(Duration::from_secs(300)))
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn response_idle_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.defaults.response_idle = timeout.filter(|t| !t.is_zero());
        self
    }

    /// The concurrency limit of backends whose config sets no `connection_pool`
    /// (default: 1024 requests in flight and 1024 waiting, Envoy's circuit-breaker
    /// defaults; `None` for no limit). A request over it is answered 503 at once,
    /// not counted against the backend. A slot is held until the response body
    /// ends.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::builder(router)
    ///     .backend_limit(Some(routing_core::ConnectionPool {
    ///         max_concurrent_requests: 256,
    ///         max_pending_requests: 0,
    ///     }))
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn backend_limit(mut self, limit: Option<routing_core::ConnectionPool>) -> Self {
        self.backend_limit = Some(limit);
        self
    }

    /// Seeds every random choice the layer makes: backend selection, retry backoff
    /// jitter, fault injection and mirror percentages (default: a seed from the
    /// operating system's entropy). Two layers with the same seed over equal
    /// configs make the same choices for the same sequence of requests.
    ///
    /// ```
    /// use routing_tower::RoutingLayer;
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = RoutingLayer::builder(router).rng_seed(42).build();
    /// assert_eq!(layer.rng_seed(), 42);
    /// ```
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// The layer.
    ///
    /// ```
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let layer = routing_tower::RoutingLayer::builder(router).build();
    /// assert!(layer.stats().is_empty());
    /// ```
    #[must_use]
    pub fn build(self) -> RoutingLayer {
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let rng = LayerRng::new(self.rng_seed.unwrap_or_else(rand::random));
        let mut shared = Shared::new(
            self.router,
            self.backends,
            self.annotate,
            self.fall_through,
            self.cookie_key.unwrap_or_else(CookieKey::random),
            clock,
            rng,
        );
        if let Some(max_age) = self.cookie_max_age {
            shared.cookie_max_age = max_age;
        }
        if let Some(bytes) = self.buffer_budget {
            shared.buffer_budget = Arc::new(crate::replay::BufferBudget::new(bytes));
        }
        shared.defaults = self.defaults;
        if let Some(limit) = self.backend_limit {
            shared.default_backend_limit = limit;
        }
        if let Some((concurrency, timeout)) = self.mirror_limits {
            shared.mirror_slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
            shared.mirror_timeout = timeout;
        }
        RoutingLayer {
            shared: Arc::new(shared),
        }
    }
}
