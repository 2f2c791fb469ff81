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

/// The backend a valid, unexpired stickiness cookie of `policy` for `route` pins the
/// request to: one of `rule`'s backends that this layer serves, and whether the
/// cookie must be re-issued (a previous key of the ring made it). Whether the backend
/// is taken (weight above zero, available) is the selection's call
/// ([`Selection::prefer`](routing_core::Selection::prefer)).
pub(crate) fn pinned<B>(
    shared: &Shared,
    state: &GenState,
    rule: &Rule,
    route: &str,
    req: &Request<B>,
    policy: &CookiePolicy,
    (memo, now): (&mut Memo, crate::clock::Timestamp),
) -> Option<(BackendId, bool)> {
    let name = &*policy.name;
    let value = routing_core::cookie(req.headers(), name)?;
    let (v, now) = memo.verify(shared, name, route, value, now)?;
    // The rule's TTL, else the layer's maximum age for session cookies.
    let max_age = policy.ttl.or(shared.cookie_max_age);
    if max_age.is_some() && cookie::expired(v.issued_at, max_age, now) {
        return None;
    }
    rule.forward()?.backends().iter().find_map(|wb| {
        let id = wb.id();
        let slot = state.backends.get(id.index())?;
        (slot.tag == v.backend_tag && (shared.annotate || slot.service.is_some()))
            .then_some((id, !v.current_key))
    })
}

/// The last stickiness cookie a connection's [`Routing`](crate::Routing) verified,
/// so that a client repeating its cookie on a connection (every request of a
/// session) costs a byte comparison, not a base64 decode and a MAC.
///
/// Only a cookie that verified is kept, with the exact value, cookie name and route
/// it verified for (the key ring is the layer's and never changes). Its expiry is
/// still checked on every request, against the Unix time of the verification plus
/// the time elapsed since on the layer's clock (the request's start, read once by
/// the layer anyway), so a hit reads no clock of its own.
#[derive(Default)]
pub(crate) struct Memo {
    last: Option<Box<MemoEntry>>,
}

/// A clone (the service of another connection) starts empty.
impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

struct MemoEntry {
    value: Box<str>,
    name: Box<str>,
    route: Box<str>,
    verified: cookie::Verified,
    /// Unix seconds and the layer's clock at the verification.
    unix: u64,
    at: crate::clock::Timestamp,
}

impl Memo {
    /// `value` verified for cookie `name` of `route`, and the Unix time now (seconds).
    fn verify(
        &mut self,
        shared: &Shared,
        name: &str,
        route: &str,
        value: &str,
        now: crate::clock::Timestamp,
    ) -> Option<(cookie::Verified, u64)> {
        if let Some(e) = self.last.as_deref() {
            if *e.value == *value && *e.name == *name && *e.route == *route {
                let elapsed = now - e.at;
                return Some((e.verified, e.unix.saturating_add(elapsed.as_secs())));
            }
        }
        let verified = shared.cookie_key.load().verify(name, route, value)?;
        let unix = cookie::unix_now();
        self.last = Some(Box::new(MemoEntry {
            value: value.into(),
            name: name.into(),
            route: route.into(),
            verified,
            unix,
            at: now,
        }));
        Some((verified, unix))
    }
}

/// Sets a stickiness cookie for `route` naming `id` on `res`.
pub(crate) fn issue(
    shared: &Shared,
    state: &GenState,
    policy: &CookiePolicy,
    route: &str,
    id: BackendId,
    res: &mut Response<Body>,
) {
    let Some(slot) = state.backends.get(id.index()) else {
        return;
    };
    let value = shared
        .cookie_key
        .load()
        .issue(&policy.name, route, &slot.name, cookie::unix_now());
    if let Some(h) = cookie::set_cookie(policy, &value) {
        res.headers_mut().append(SET_COOKIE, h);
    }
}
