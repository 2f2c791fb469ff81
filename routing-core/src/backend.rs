//! The declared backends of a table: their ids, names, addresses, health and
//! per-backend settings. A leaf of the model: selection, policies and rules refer to
//! backends by [`BackendId`].

use std::net::SocketAddr;
use std::sync::Arc;

use crate::health::BackendHealth;

/// Largest relative weight (Gateway API).
pub const MAX_WEIGHT: u32 = 1_000_000;

/// A backend's index in [`RouteTable::backends`](crate::RouteTable::backends) (valid for that table only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId(pub(crate) u32);

impl BackendId {
    /// The index.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}, {name: b}]").unwrap();
    /// assert_eq!(t.backend_id("b").unwrap().index(), 1);
    /// ```
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A declared backend.
#[derive(Debug)]
pub struct Backend {
    pub(crate) name: Arc<str>,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) health: Arc<BackendHealth>,
    pub(crate) connection_pool: Option<ConnectionPool>,
    pub(crate) protocol: Option<crate::BackendProtocol>,
    pub(crate) endpoints: Option<Arc<crate::EndpointPool>>,
}

impl Backend {
    /// Its unique name.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// assert_eq!(t.backends()[0].name(), "a");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a shared string (cheap to clone into stats or spans).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// let n: std::sync::Arc<str> = t.backends()[0].name_arc();
    /// assert_eq!(&*n, "a");
    /// ```
    #[must_use]
    pub fn name_arc(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// Its address, if configured.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '127.0.0.1:8080'}]").unwrap();
    /// assert_eq!(t.backends()[0].address().unwrap().port(), 8080);
    /// ```
    #[must_use]
    pub fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    /// Its concurrency limit in the HTTP layer, if configured.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml(
    /// #     "backends: [{name: a, connection_pool: {max_concurrent_requests: 8}}]").unwrap();
    /// let cp = t.backends()[0].connection_pool().unwrap();
    /// assert_eq!((cp.max_concurrent_requests, cp.max_pending_requests), (8, 0));
    /// ```
    #[must_use]
    pub fn connection_pool(&self) -> Option<ConnectionPool> {
        self.connection_pool
    }

    /// The protocol an HTTP client speaks to it, if configured (absent: HTTP/1.1).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, protocol: h2c}]").unwrap();
    /// assert_eq!(t.backends()[0].protocol(), Some(routing_core::BackendProtocol::H2c));
    /// ```
    #[must_use]
    pub fn protocol(&self) -> Option<crate::BackendProtocol> {
        self.protocol
    }

    /// Its pool of endpoints, when configured (`endpoints:`): the rule's choice picks
    /// this backend, then [`EndpointPool::pick`](crate::EndpointPool::pick) one of
    /// its endpoints.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}, {name: b, endpoints: [{address: '10.0.0.1:80'}]}]").unwrap();
    /// assert!(t.backends()[0].endpoints().is_none());
    /// assert_eq!(t.backends()[1].endpoints().unwrap().endpoints().len(), 1);
    /// ```
    #[must_use]
    pub fn endpoints(&self) -> Option<&Arc<crate::EndpointPool>> {
        self.endpoints.as_ref()
    }

    /// Whether it takes new traffic (see [`HealthRegistry`](crate::HealthRegistry)).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// assert!(t.backends()[0].is_available());
    /// ```
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.health.is_available()
    }
}

/// A backend's concurrency limit in the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPool {
    /// Requests in flight at once (≥ 1).
    pub max_concurrent_requests: u32,
    /// Requests allowed to wait for a slot; more get 503.
    pub max_pending_requests: u32,
}
