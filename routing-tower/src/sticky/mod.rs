//! Session persistence: the stickiness cookie a response sets
//! ([`cookie`] issues and verifies it), and the backend a request's cookie pins.
//!
//! A valid cookie for an available backend of the matched rule wins over the
//! fresh choice; a forged, expired or stale cookie gets a fresh choice and a new
//! cookie, never an error.

pub mod cookie;

use http::header::SET_COOKIE;
use http::{Request, Response};
use routing_core::{BackendId, Decision, RouteTable, SessionPersistence};

use crate::body::Body;
use crate::routing::state::{GenState, Shared};

/// The backend a valid stickiness cookie names, if it is one of the rule's backends,
/// available, and served by this layer.
pub(crate) fn sticky_backend<B>(
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

/// Sets a stickiness cookie naming `id` on `res`.
pub(crate) fn issue(
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
