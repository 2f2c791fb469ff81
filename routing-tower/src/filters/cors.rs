//! CORS in the layer: a preflight is answered here (never forwarded), and the
//! answer to a request from an allowed origin carries the `Access-Control-*`
//! headers. The policy itself (which origins, which headers) is
//! [`routing_core::Cors`].

use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use routing_core::Cors;

use crate::body::{self, Body};

/// The layer's `204` answer when `req` is a preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`): with the allow headers when the origin is
/// allowed, without them (the browser then refuses the real request) otherwise.
pub(crate) fn preflight<B>(req: &Request<B>, cors: &Cors) -> Option<Response<Body>> {
    let method = req.headers().get(ACCESS_CONTROL_REQUEST_METHOD)?;
    if req.method() != Method::OPTIONS {
        return None;
    }
    let origin = req.headers().get(ORIGIN)?;
    let asked = req.headers().get(ACCESS_CONTROL_REQUEST_HEADERS);
    let mut res = Response::new(body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    *res.headers_mut() = cors.preflight(origin, Some(method), asked);
    Some(res)
}

/// The headers to add to the answer to `req`; `None` when it has no `Origin` or
/// the origin is not allowed.
pub(crate) fn response_headers<B>(req: &Request<B>, cors: &Cors) -> Option<HeaderMap> {
    let origin = req.headers().get(ORIGIN)?;
    let h = cors.response_headers(origin);
    (!h.is_empty()).then_some(h)
}

/// Adds `extra` to `headers`, replacing any value the backend set for those names.
pub(crate) fn apply(extra: &HeaderMap, headers: &mut HeaderMap) {
    for (k, v) in extra {
        headers.insert(k, v.clone());
    }
}
