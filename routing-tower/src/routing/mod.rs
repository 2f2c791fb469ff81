//! The routing service, its layer, builder and response future.
//!
//! [`RoutingLayer`] wraps a service into a [`Routing`], whose `call` decides
//! (routing-core's match and selection, the stickiness cookie as a preference) and
//! hands the rest to the response future: the per-concern steps live in their own
//! modules ([`filters`](crate::filters), [`fault`](crate::fault),
//! [`mirror`](crate::mirror), [`retry`](crate::retry), [`sticky`](crate::sticky)),
//! and every try to a backend goes through one function, whose outcome is classified
//! once ([`crate::outcome`]) and recorded once, into the stats and the outlier
//! detector.

mod builder;
pub(crate) mod forward;
mod future;
mod layer;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use routing_core::{
    Action, BackendId, RouteError, Router, RuleMatch, Selection, SessionPersistence,
};
use tower::{Layer, Service, ServiceExt as _};

use crate::backends::{self, BackendService, Backends};
use crate::body::{self, Body, BoxError};
use crate::error::{self, RoutingError};
use crate::outcome::Outcome;

pub use builder::RoutingLayerBuilder;
pub use future::ResponseFuture;
pub use layer::RoutingLayer;

use crate::state::Shared;
use forward::{error_response, forward, no_healthy};
use future::Kind;

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
    pub(crate) shared: Arc<Shared>,
    /// Annotate mode: `inner` type-erased once, on the first call (each call of a
    /// `BackendService` clones the service it holds, so one erased copy serves all).
    erased_inner: std::sync::OnceLock<BackendService>,
    /// The last stickiness cookie this service (one connection's) verified.
    sticky_memo: crate::sticky::Memo,
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
        let mut req = req.map(body::boxed);
        let shared = Arc::clone(&self.shared);
        let table = shared.router.snapshot();
        // Rules match the normalised path, which is also what is rewritten and
        // forwarded (`/x/../admin` is `/admin` for the rules and the backend alike).
        if let Err(why) = crate::filters::normalize_path(&mut req, table.path_normalization()) {
            return ready(crate::filters::bad_request(&why));
        }
        // Hop-by-hop headers and those the client's `Connection` names go before
        // routing and filters, so a client cannot delete a header a rule sets.
        crate::client::remove_hop_by_hop(req.headers_mut());
        // One authority: the host routed on is the host forwarded.
        if let Err(why) = crate::filters::one_authority(&mut req) {
            return ready(crate::filters::bad_request(why));
        }
        // A request body is watched, so a failure or a stall on the client's side is
        // answered 400/408 and never counted against the backend.
        let body_watch = if http_body::Body::is_end_stream(req.body()) {
            None
        } else {
            let watch = Arc::new(body::BodyWatch::default());
            let w = Arc::clone(&watch);
            req = req.map(move |b| body::boxed(body::Watched::new(b, w)));
            Some(watch)
        };
        let state = shared.state_for(&table);
        let Some(found) = table.find(&req) else {
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
            return ready(grpc_aware(
                &req,
                error_response(RoutingError::NoRoute(error::NoRoute)),
            ));
        };
        let rule = &table.rules()[found.rule];
        // CORS: a preflight is answered here; other answers get the headers.
        let cors = rule.policy().cors.as_ref();
        let cors_headers = cors.and_then(|c| crate::filters::cors::response_headers(&req, c));
        let answered = match cors.and_then(|c| crate::filters::cors::preflight(&req, c)) {
            Some(res) => Some(res),
            None => match rule.action() {
                Action::Redirect(r) => Some(crate::filters::redirect(
                    &req,
                    r,
                    rule.matches()[found.r#match].path(),
                )),
                Action::FixedResponse(f) => {
                    let mut res = crate::filters::fixed_response(f);
                    rule.policy().response_headers.apply(res.headers_mut());
                    Some(res)
                }
                _ => None,
            },
        };
        if let Some(mut res) = answered {
            if let Some(h) = &cors_headers {
                crate::filters::cors::apply(h, res.headers_mut());
            }
            if let Some(route) = state.routes.get(rule.route_index()) {
                drop(route.begin());
                route.record(Outcome::Status(res.status()), Duration::ZERO);
            }
            return ready(res);
        }
        // Session persistence: the backend a valid cookie names is the selection's
        // preference, taken without a draw when the rule can still use it.
        let cookie = match &rule.policy().session_persistence {
            Some(SessionPersistence::Cookie(policy)) => Some(policy),
            _ => None,
        };
        let route_name = table.routes()[rule.route_index()].name();
        // The request's one clock read at its start: the first try's latency starts
        // here, and a memoised cookie's expiry is judged by it.
        let started = shared.now();
        let memo = &mut self.sticky_memo;
        let pinned = cookie.and_then(|c| {
            crate::sticky::pinned(&shared, &state, rule, route_name, &req, c, (memo, started))
        });
        let selection = match pinned {
            Some((id, _)) => Selection::new().prefer(id),
            None => Selection::new(),
        };
        let decision = match table.select(found, &req, &mut shared.rng.draw(), selection) {
            Ok(d) => d,
            Err(RouteError::NoBackend { rule }) => {
                return ready(grpc_aware(&req, no_healthy(&table, Some(rule), None)))
            }
            Err(_) => return ready(grpc_aware(&req, no_healthy(&table, None, None))),
        };
        let Some(first) = decision.backend_id() else {
            return ready(grpc_aware(&req, no_healthy(&table, Some(found.rule), None)));
        };
        // A new session, a cookie the selection could not honour, or one a previous
        // key made (rotation): a new cookie.
        let stale_key = pinned.is_some_and(|(_, stale)| stale);
        let issue_cookie = cookie.is_some() && (!decision.preferred() || stale_key);
        let plan = Plan {
            found,
            first,
            sticky_key: decision.sticky_key(),
            issue_cookie,
            body_watch,
            deadline: None,
            cors_headers,
            started,
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

/// The layer's own answer `res` as a gRPC answer when `req` is gRPC
/// ([`crate::grpc::answer`]).
fn grpc_aware<B>(req: &Request<B>, res: Response<Body>) -> Response<Body> {
    if crate::grpc::is_grpc(req.headers()) {
        crate::grpc::answer(res)
    } else {
        res
    }
}

fn ready<F, E>(res: Response<Body>) -> ResponseFuture<F, E> {
    ResponseFuture::ready(res)
}

/// What `call` decided, carried into the response future.
pub(crate) struct Plan {
    /// The rule match: the rule, its winning match, and what a retry selects from.
    pub(crate) found: RuleMatch,
    /// The backend of the first try.
    pub(crate) first: BackendId,
    /// The rule's sticky hash key for this request, if it hashes.
    pub(crate) sticky_key: Option<u64>,
    /// Whether the response sets a new stickiness cookie.
    pub(crate) issue_cookie: bool,
    /// What the client's request body did (absent for requests without a body), so
    /// a client-side failure is not blamed on the backend.
    pub(crate) body_watch: Option<Arc<body::BodyWatch>>,
    /// When the request must be done (tokio time) and the timeout that set it;
    /// set when forwarding starts.
    pub(crate) deadline: Option<(tokio::time::Instant, std::time::Duration)>,
    /// CORS headers for the answer (the rule's CORS policy, an allowed `Origin`).
    pub(crate) cors_headers: Option<http::HeaderMap>,
    /// When the request started, on the layer's clock (the route's latency and the
    /// first try's start from here).
    pub(crate) started: crate::clock::Timestamp,
}
