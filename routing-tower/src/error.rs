//! What the layer answers by itself, as small downcastable types.
//!
//! The layer never fails a request with a service error of its own: it answers with
//! an HTTP status (400 or 408 for a client-side body failure, 404, 502, 503, 504) and puts a [`RoutingError`] into the
//! response's extensions, so callers that want the reason can read it:
//!
//! ```
//! use routing_tower::RoutingError;
//! # let response = http::Response::new(());
//! if let Some(err) = response.extensions().get::<RoutingError>() {
//!     eprintln!("answered by the routing layer: {err}");
//! }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// Why the layer answered a request itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RoutingError {
    /// No route matched (404).
    NoRoute(NoRoute),
    /// The rule's backends are all unavailable, or unknown to the layer (503).
    NoHealthyBackend(NoHealthyBackend),
    /// The backend's concurrency limit and queue are full (503).
    Overloaded(crate::limit::Overloaded),
    /// The request or a try took too long (504).
    Timeout(Timeout),
    /// The backend failed without a response: connection refused or reset (502).
    Upstream(Upstream),
    /// The client's request body failed (aborted or malformed: 400) or was too slow
    /// for the try's timeout (408). Never counted against the backend.
    ClientBody(ClientBody),
}

impl RoutingError {
    /// The status the layer answers with.
    ///
    /// ```
    /// use routing_tower::{RoutingError, error::NoRoute};
    /// assert_eq!(RoutingError::NoRoute(NoRoute).status(), http::StatusCode::NOT_FOUND);
    /// ```
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            RoutingError::NoRoute(_) => StatusCode::NOT_FOUND,
            RoutingError::NoHealthyBackend(_) | RoutingError::Overloaded(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            RoutingError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            RoutingError::Upstream(_) => StatusCode::BAD_GATEWAY,
            RoutingError::ClientBody(ClientBody { timed_out: true }) => StatusCode::REQUEST_TIMEOUT,
            RoutingError::ClientBody(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for RoutingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingError::NoRoute(e) => e.fmt(f),
            RoutingError::NoHealthyBackend(e) => e.fmt(f),
            RoutingError::Overloaded(e) => e.fmt(f),
            RoutingError::Timeout(e) => e.fmt(f),
            RoutingError::Upstream(e) => e.fmt(f),
            RoutingError::ClientBody(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RoutingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RoutingError::NoRoute(e) => Some(e),
            RoutingError::NoHealthyBackend(e) => Some(e),
            RoutingError::Overloaded(e) => Some(e),
            RoutingError::Timeout(e) => Some(e),
            RoutingError::Upstream(e) => Some(e),
            RoutingError::ClientBody(e) => Some(e),
        }
    }
}

/// No route matched the request.
///
/// ```
/// assert_eq!(routing_tower::error::NoRoute.to_string(), "no route matches the request");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoRoute;

impl fmt::Display for NoRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no route matches the request")
    }
}

impl std::error::Error for NoRoute {}

/// The matched rule has no backend that can take the request.
///
/// ```
/// let e = routing_tower::error::NoHealthyBackend { route: "shop".into(), backend: None };
/// assert_eq!(e.to_string(), "route `shop`: no healthy backend");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoHealthyBackend {
    /// The route whose rule matched.
    pub route: Arc<str>,
    /// A backend the table chose but the layer has no service for, if that is why.
    pub backend: Option<Arc<str>>,
}

impl fmt::Display for NoHealthyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            None => write!(f, "route `{}`: no healthy backend", self.route),
            Some(b) => write!(
                f,
                "route `{}`: backend `{b}` has no service in this layer",
                self.route
            ),
        }
    }
}

impl std::error::Error for NoHealthyBackend {}

/// A timeout fired.
///
/// ```
/// let e = routing_tower::error::Timeout { per_try: true, after: std::time::Duration::from_millis(250) };
/// assert_eq!(e.to_string(), "per-try timeout after 250ms");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    /// Whether it was the per-try timeout (else the whole request's).
    pub per_try: bool,
    /// The timeout.
    pub after: Duration,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.per_try { "per-try" } else { "request" };
        write!(f, "{what} timeout after {:?}", self.after)
    }
}

impl std::error::Error for Timeout {}

/// The backend failed without answering.
///
/// ```
/// let e = routing_tower::error::Upstream { backend: "v1".into(), message: "connection refused".into() };
/// assert_eq!(e.to_string(), "backend `v1` failed: connection refused");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The backend.
    pub backend: Arc<str>,
    /// The error's message (its chain of sources, joined by `: `).
    pub message: String,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backend `{}` failed: {}", self.backend, self.message)
    }
}

impl std::error::Error for Upstream {}

/// The message of `err` and its sources, joined by `: `.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    let mut depth = 0;
    while let Some(e) = cur {
        if depth == 8 {
            break;
        }
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
        depth += 1;
    }
    s
}

/// The client's side of a failed try ([`RoutingError::ClientBody`]).
///
/// ```
/// use routing_tower::{RoutingError, error::ClientBody};
/// let e = RoutingError::ClientBody(ClientBody { timed_out: true });
/// assert_eq!(e.status(), http::StatusCode::REQUEST_TIMEOUT);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientBody {
    /// The client was still sending the body when the try timed out (else its body
    /// failed: aborted or malformed).
    pub timed_out: bool,
}

impl fmt::Display for ClientBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.timed_out {
            f.write_str("the request body was still arriving when the try timed out")
        } else {
            f.write_str("the request body failed (aborted or malformed)")
        }
    }
}

impl std::error::Error for ClientBody {}
