//! The data plane's defaults for what a configuration does not set: one
//! definition that the HTTP layer applies and tools (the `routing` CLI's
//! `explain`) report. Each is changed per layer (routing-tower's
//! `RoutingLayerBuilder`) or per rule / backend in the configuration.

use std::time::Duration;

use crate::ConnectionPool;

/// The request timeout of a rule without `timeouts.request` (Envoy's default
/// route timeout): the whole response within 15 s. `timeouts.request: 0s` turns
/// it off for a rule (streams, long polls).
///
/// ```
/// assert_eq!(routing_core::defaults::REQUEST_TIMEOUT.as_secs(), 15);
/// ```
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest a response body may wait for its backend between two frames
/// (nginx's default `proxy_read_timeout`).
///
/// ```
/// assert_eq!(routing_core::defaults::RESPONSE_IDLE_TIMEOUT.as_secs(), 60);
/// ```
pub const RESPONSE_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The concurrency limit of a backend without `connection_pool` (Envoy's circuit
/// breaker defaults): 1024 requests in flight, 1024 more waiting.
///
/// ```
/// assert_eq!(routing_core::defaults::BACKEND_CONNECTION_POOL.max_concurrent_requests, 1024);
/// ```
pub const BACKEND_CONNECTION_POOL: ConnectionPool = ConnectionPool {
    max_concurrent_requests: 1024,
    max_pending_requests: 1024,
};
