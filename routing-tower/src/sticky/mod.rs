//! Session persistence: the stickiness cookie a response sets
//! ([`cookie`] issues and verifies it), and the backend a request's cookie pins.
//!
//! A valid cookie for an available backend of the matched rule wins over the
//! fresh choice; a forged, expired or stale cookie gets a fresh choice and a new
//! cookie, never an error.

use http::header::SET_COOKIE;
use http::{Request, Response};
use routing_core::{BackendId, CookiePolicy, Rule};

use crate::body::Body;
use crate::cookie;
use crate::state::{GenState, Shared};

/// The backend a valid, unexpired stickiness cookie of `policy` pins the request
/// to: one of `rule`'s backends that this layer serves. Whether it is taken (weight
/// above zero, available) is the selection's call
/// ([`Selection::prefer`](routing_core::Selection::prefer)).
pub(crate) fn pinned<B>(
    shared: &Shared,
    state: &GenState,
    rule: &Rule,
    req: &Request<B>,
    policy: &CookiePolicy,
) -> Option<BackendId> {
    let name = &*policy.name;
    let value = routing_core::cookie(req.headers(), name)?;
    let (tag, issued) = shared.cookie_key.verify(name, value)?;
    // Session cookies (no TTL) never expire here, so the clock is read only for
    // cookies with a TTL.
    if policy.ttl.is_some() && cookie::expired(issued, policy.ttl, cookie::unix_now()) {
        return None;
    }
    rule.forward()?.backends().iter().find_map(|wb| {
        let id = wb.id();
        let slot = state.backends.get(id.index())?;
        (slot.tag == tag && (shared.annotate || slot.service.is_some())).then_some(id)
    })
}

/// Sets a stickiness cookie naming `id` on `res`.
pub(crate) fn issue(
    shared: &Shared,
    state: &GenState,
    policy: &CookiePolicy,
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
