//! The stickiness cookie: opaque, tamper-evident, never the backend name in clear.
//!
//! A cookie value is `base64url(version ‖ backend tag ‖ issued-at ‖ mac)`:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `1` |
//! | 8 | backend tag: `stable_hash(backend name, TAG_SEED)`, little-endian |
//! | 8 | issued at, seconds since the Unix epoch, little-endian |
//! | 16 | MAC: SipHash-2-4 with 128-bit output over the cookie name, a `0` byte and the 17 bytes above |
//!
//! The MAC binds the value to the cookie name and to the key, so a value cannot be
//! forged, edited or moved to another cookie without the key. SipHash-2-4 is a
//! keyed PRF designed for short inputs (Aumasson and Bernstein, 2012); its 128-bit
//! variant costs about 27 ns here for a cookie, against about 90 ns for keyed
//! BLAKE3, and this check runs on every sticky request. Its 128-bit key is derived
//! from the 32-byte [`CookieKey`] with BLAKE3's key derivation. The tag is a keyless
//! hash of the name (so the same backend gets the same tag in every process sharing
//! the key), which hides the name from casual reading but not from someone who can
//! guess names: it is a pointer, not a secret. Expiry is checked on the server from
//! the issue time, so a copied old cookie stops working when its TTL ends even if a
//! client ignores `Max-Age`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use routing_core::{stable_hash, CookiePolicy, SameSite};

const VERSION: u8 = 1;
const PAYLOAD: usize = 1 + 8 + 8;
const MAC: usize = 16;
/// Seed of the backend tag hash (any fixed value; distinct from the routing hashes).
const TAG_SEED: u64 = 0x7374_6963_6b79_0001;

/// The secret that authenticates stickiness cookies.
///
/// Every replica that should honour another's cookies must use the same key
/// ([`CookieKey::from_bytes`]); [`CookieKey::random`] suits a single process.
///
/// ```
/// let key = routing_tower::CookieKey::from_bytes([7; 32]);
/// assert_eq!(format!("{key:?}"), "CookieKey(..)");
/// ```
#[derive(Clone)]
pub struct CookieKey {
    /// The SipHash key, derived from the 32 secret bytes.
    sip: [u8; 16],
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    /// A key from 32 secret bytes.
    ///
    /// ```
    /// let key = routing_tower::CookieKey::from_bytes(*b"0123456789abcdef0123456789abcdef");
    /// # let _ = key;
    /// ```
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let derived = blake3::derive_key("routing-tower 2026 stickiness cookie MAC key", &bytes);
        let mut sip = [0u8; 16];
        sip.copy_from_slice(&derived[..16]);
        Self { sip }
    }

    /// A key derived from a passphrase or a longer secret (BLAKE3 key derivation).
    ///
    /// ```
    /// let a = routing_tower::CookieKey::derive(b"correct horse battery staple");
    /// let b = routing_tower::CookieKey::derive(b"correct horse battery staple");
    /// assert_eq!(a.issue("c", "v1", 0), b.issue("c", "v1", 0));
    /// ```
    #[must_use]
    pub fn derive(secret: &[u8]) -> Self {
        Self::from_bytes(blake3::derive_key(
            "routing-tower 2026 stickiness cookie key",
            secret,
        ))
    }

    /// A random key (from the thread's CSPRNG, seeded by the OS).
    ///
    /// ```
    /// let a = routing_tower::CookieKey::random();
    /// let b = routing_tower::CookieKey::random();
    /// assert_ne!(a.issue("c", "v1", 0), b.issue("c", "v1", 0));
    /// ```
    #[must_use]
    pub fn random() -> Self {
        use rand::RngCore as _;
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Self::from_bytes(k)
    }

    fn mac(&self, cookie_name: &str, payload: &[u8; PAYLOAD]) -> [u8; MAC] {
        use std::hash::Hasher as _;
        let mut h = siphasher::sip128::SipHasher24::new_with_key(&self.sip);
        h.write(cookie_name.as_bytes());
        h.write(&[0]);
        h.write(payload);
        siphasher::sip128::Hasher128::finish128(&h).as_bytes()
    }

    /// The cookie value naming `backend`, issued at `issued_at` (Unix seconds).
    ///
    /// ```
    /// let key = routing_tower::CookieKey::from_bytes([1; 32]);
    /// let v = key.issue("route", "checkout-v2", 1_700_000_000);
    /// assert!(!v.contains("checkout"));
    /// assert_eq!(v.len(), 44);
    /// ```
    #[must_use]
    pub fn issue(&self, cookie_name: &str, backend: &str, issued_at: u64) -> String {
        let mut payload = [0u8; PAYLOAD];
        payload[0] = VERSION;
        payload[1..9].copy_from_slice(&backend_tag(backend).to_le_bytes());
        payload[9..17].copy_from_slice(&issued_at.to_le_bytes());
        let mut raw = [0u8; PAYLOAD + MAC];
        raw[..PAYLOAD].copy_from_slice(&payload);
        raw[PAYLOAD..].copy_from_slice(&self.mac(cookie_name, &payload));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a cookie value: `Some((backend tag, issued at))` when it is well formed
    /// and its MAC is right, `None` otherwise. Never panics.
    ///
    /// ```
    /// use routing_tower::{CookieKey, cookie::backend_tag};
    /// let key = CookieKey::from_bytes([1; 32]);
    /// let v = key.issue("route", "v2", 42);
    /// assert_eq!(key.verify("route", &v), Some((backend_tag("v2"), 42)));
    /// assert_eq!(key.verify("other-cookie", &v), None, "bound to the cookie name");
    /// let mut forged = v.clone().into_bytes();
    /// forged[3] ^= 1;
    /// assert_eq!(key.verify("route", std::str::from_utf8(&forged).unwrap()), None);
    /// assert_eq!(key.verify("route", "garbage"), None);
    /// ```
    #[must_use]
    pub fn verify(&self, cookie_name: &str, value: &str) -> Option<(u64, u64)> {
        // 33 bytes encode to exactly 44 characters without padding.
        if value.len() != 44 {
            return None;
        }
        let mut raw = [0u8; PAYLOAD + MAC];
        let n = URL_SAFE_NO_PAD.decode_slice(value, &mut raw).ok()?;
        if n != raw.len() || raw[0] != VERSION {
            return None;
        }
        let mut payload = [0u8; PAYLOAD];
        payload.copy_from_slice(&raw[..PAYLOAD]);
        let expected = self.mac(cookie_name, &payload);
        // Constant-time comparison, so the MAC cannot be guessed byte by byte.
        let diff = expected
            .iter()
            .zip(&raw[PAYLOAD..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return None;
        }
        let tag = u64::from_le_bytes(payload[1..9].try_into().ok()?);
        let issued = u64::from_le_bytes(payload[9..17].try_into().ok()?);
        Some((tag, issued))
    }
}

/// The tag a cookie carries for `backend`.
///
/// ```
/// use routing_tower::cookie::backend_tag;
/// assert_eq!(backend_tag("v1"), backend_tag("v1"));
/// assert_ne!(backend_tag("v1"), backend_tag("v2"));
/// ```
#[must_use]
pub fn backend_tag(backend: &str) -> u64 {
    stable_hash(backend.as_bytes(), TAG_SEED)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a cookie issued at `issued` is past `ttl` at `now` (session cookies,
/// without a TTL, never expire here). A cookie from the future by more than a
/// minute of clock skew is treated as expired too.
pub(crate) fn expired(issued: u64, ttl: Option<Duration>, now: u64) -> bool {
    if issued > now.saturating_add(60) {
        return true;
    }
    ttl.is_some_and(|t| now.saturating_sub(issued) >= t.as_secs().max(1))
}

/// The `Set-Cookie` header for `value` under `policy`.
///
/// ```
/// # let t = routing_core::RouteTable::from_yaml(r#"
/// # backends: [{name: a}]
/// # routes: [{name: r, rules: [{backends: [{name: a}], session_persistence: {cookie: {name: sticky, ttl: 1h, secure: true, http_only: true, same_site: Lax}}}]}]"#).unwrap();
/// # let routing_core::SessionPersistence::Cookie(policy) = t.rules()[0].policy().session_persistence.as_ref().unwrap() else { panic!() };
/// let h = routing_tower::cookie::set_cookie(policy, "VALUE").unwrap();
/// assert_eq!(h, "sticky=VALUE; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax");
/// ```
#[must_use]
pub fn set_cookie(policy: &CookiePolicy, value: &str) -> Option<HeaderValue> {
    let mut s = String::with_capacity(96);
    let _ = write!(s, "{}={}; Path={}", policy.name, value, policy.path);
    if let Some(d) = &policy.domain {
        let _ = write!(s, "; Domain={d}");
    }
    if let Some(ttl) = policy.ttl {
        let _ = write!(s, "; Max-Age={}", ttl.as_secs().max(1));
    }
    if policy.secure {
        s.push_str("; Secure");
    }
    if policy.http_only {
        s.push_str("; HttpOnly");
    }
    match policy.same_site {
        Some(SameSite::Strict) => s.push_str("; SameSite=Strict"),
        Some(SameSite::Lax) => s.push_str("; SameSite=Lax"),
        Some(SameSite::None) => s.push_str("; SameSite=None"),
        None => {}
    }
    HeaderValue::from_str(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let key = CookieKey::from_bytes([9; 32]);
        let v = key.issue("c", "backend-1", 1_800_000_000);
        let mut raw = URL_SAFE_NO_PAD.decode(&v).expect("decodes");
        for byte in 0..raw.len() {
            for bit in 0..8 {
                raw[byte] ^= 1 << bit;
                let forged = URL_SAFE_NO_PAD.encode(&raw);
                assert_eq!(
                    key.verify("c", &forged),
                    None,
                    "flip {byte}.{bit} must be caught"
                );
                raw[byte] ^= 1 << bit;
            }
        }
        assert!(key.verify("c", &v).is_some());
    }

    #[test]
    fn long_cookie_names_are_bound_too() {
        let key = CookieKey::from_bytes([5; 32]);
        let long = "n".repeat(100);
        let v = key.issue(&long, "b", 1);
        assert_eq!(key.verify(&long, &v), Some((backend_tag("b"), 1)));
        assert_eq!(key.verify(&"n".repeat(99), &v), None);
    }

    #[test]
    fn another_key_rejects() {
        let v = CookieKey::from_bytes([1; 32]).issue("c", "b", 5);
        assert_eq!(CookieKey::from_bytes([2; 32]).verify("c", &v), None);
    }

    #[test]
    fn expiry_follows_ttl_and_rejects_the_future() {
        let ttl = Some(Duration::from_secs(60));
        assert!(!expired(1000, ttl, 1059));
        assert!(expired(1000, ttl, 1060));
        assert!(!expired(1000, None, u64::MAX));
        assert!(expired(2000, None, 1000), "issued in the future");
    }

    #[test]
    fn arbitrary_strings_never_panic() {
        let key = CookieKey::from_bytes([3; 32]);
        for s in [
            "",
            "=",
            "é",
            &"A".repeat(44),
            &"/".repeat(44),
            &"\u{1F600}".repeat(11),
        ] {
            assert_eq!(key.verify("c", s), None, "{s:?}");
        }
    }
}
