//! The stickiness cookie: opaque, tamper-evident, never the backend name in clear,
//! bound to its route and to a key that can be rotated.
//!
//! A cookie value is `base64url(version ‖ key id ‖ backend tag ‖ issued-at ‖ mac)`:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `2` |
//! | 1 | key id: which key of the [`CookieKey`] ring made it |
//! | 8 | backend tag: `stable_hash(backend name, TAG_SEED)`, little-endian |
//! | 8 | issued at, seconds since the Unix epoch, little-endian |
//! | 16 | MAC: SipHash-2-4 with 128-bit output over the cookie name, a `0` byte, the route name, a `0` byte and the 18 bytes above |
//!
//! The MAC binds the value to the cookie name, the route and the key, so a value
//! cannot be forged, edited, or moved to another cookie or route without the key.
//! SipHash-2-4 is a keyed PRF designed for short inputs (Aumasson and Bernstein,
//! 2012); its 128-bit variant costs about 27 ns here for a cookie, against about 90 ns
//! for keyed BLAKE3, and this check runs on every sticky request. Its 128-bit key is
//! derived from 32 secret bytes with BLAKE3's key derivation.
//!
//! **Rotation.** A [`CookieKey`] is a ring: the current key issues, the previous ones
//! ([`CookieKey::with_previous`]) still verify, each found by its key id. A cookie
//! made with a previous key pins its session and is re-issued with the current key,
//! so a rotation moves no session and, after one visit, every client holds a current
//! cookie.
//!
//! **Secrets.** [`CookieKey::from_bytes`] takes 32 random bytes;
//! [`CookieKey::from_passphrase`] stretches a passphrase with Argon2id (19 MiB, 2
//! passes: the OWASP minimum), so a guessed passphrase costs an attacker that much per
//! guess; [`CookieKey::derive`] is for secrets that are already high-entropy.
//!
//! The tag is a keyless hash of the name (so the same backend gets the same tag in
//! every process sharing the key), which hides the name from casual reading but not
//! from someone who can guess names: it is a pointer, not a secret. Expiry is checked
//! on the server from the issue time, so a copied old cookie stops working when its
//! TTL (or the layer's maximum age) ends even if a client ignores `Max-Age`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use routing_core::{stable_hash, CookiePolicy, SameSite};

const VERSION: u8 = 2;
const PAYLOAD: usize = 1 + 1 + 8 + 8;
const MAC: usize = 16;
/// Characters of an encoded cookie value (34 bytes, base64url without padding).
const ENCODED: usize = 46;
/// Seed of the backend tag hash (any fixed value; distinct from the routing hashes).
const TAG_SEED: u64 = 0x7374_6963_6b79_0001;

/// One key of the ring.
#[derive(Clone)]
struct Material {
    id: u8,
    /// The SipHash key, derived from the 32 secret bytes.
    sip: [u8; 16],
}

impl Material {
    fn new(bytes: &[u8; 32]) -> Self {
        let derived = blake3::derive_key("routing-tower 2026 stickiness cookie MAC key", bytes);
        let mut sip = [0u8; 16];
        sip.copy_from_slice(&derived[..16]);
        let id = blake3::derive_key("routing-tower 2026 stickiness cookie key id", bytes)[0];
        Self { id, sip }
    }

    fn mac(&self, cookie_name: &str, route: &str, payload: &[u8; PAYLOAD]) -> [u8; MAC] {
        use std::hash::Hasher as _;
        let mut h = siphasher::sip128::SipHasher24::new_with_key(&self.sip);
        h.write(cookie_name.as_bytes());
        h.write(&[0]);
        h.write(route.as_bytes());
        h.write(&[0]);
        h.write(payload);
        siphasher::sip128::Hasher128::finish128(&h).as_bytes()
    }
}

/// The secrets that authenticate stickiness cookies: the current key, which issues,
/// and previous keys, which still verify (see the [module docs](self) on rotation).
///
/// Every replica that should honour another's cookies must use the same keys
/// ([`CookieKey::from_bytes`], [`CookieKey::from_passphrase`]); [`CookieKey::random`]
/// suits a single process.
///
/// ```
/// let key = routing_tower::CookieKey::from_bytes([7; 32]);
/// assert_eq!(format!("{key:?}"), "CookieKey(..)");
/// ```
#[derive(Clone)]
pub struct CookieKey {
    /// The current key first, then the previous ones.
    ring: Vec<Material>,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

/// A passphrase that cannot make a key ([`CookieKey::from_passphrase`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cookie key from a passphrase: {0}")]
pub struct CookieKeyError(String);

/// A verified cookie ([`CookieKey::verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The backend tag ([`backend_tag`]).
    pub backend_tag: u64,
    /// When it was issued (Unix seconds).
    pub issued_at: u64,
    /// Whether the current key made it (`false`: a previous key did, and the cookie
    /// should be re-issued).
    pub current_key: bool,
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
        Self {
            ring: vec![Material::new(&bytes)],
        }
    }

    /// A key derived from a secret that is already high-entropy (a random token, a
    /// key from a secret store), by BLAKE3 key derivation. For a passphrase a person
    /// chose, use [`from_passphrase`](Self::from_passphrase).
    ///
    /// ```
    /// let a = routing_tower::CookieKey::derive(b"4f1c0b6e2a9d8f7e6d5c4b3a29181706");
    /// let b = routing_tower::CookieKey::derive(b"4f1c0b6e2a9d8f7e6d5c4b3a29181706");
    /// assert_eq!(a.issue("c", "r", "v1", 0), b.issue("c", "r", "v1", 0));
    /// ```
    #[must_use]
    pub fn derive(secret: &[u8]) -> Self {
        Self::from_bytes(blake3::derive_key(
            "routing-tower 2026 stickiness cookie key",
            secret,
        ))
    }

    /// A key stretched from a passphrase with Argon2id (19 MiB of memory, 2 passes,
    /// one lane — the OWASP minimum), salted with `salt` (at least 8 bytes; the same
    /// on every replica). Takes tens of milliseconds: call it once, at start.
    ///
    /// # Errors
    ///
    /// When the salt is shorter than 8 bytes or the passphrase is empty.
    ///
    /// ```
    /// use routing_tower::CookieKey;
    /// let a = CookieKey::from_passphrase(b"correct horse battery staple", b"shop-cookies").unwrap();
    /// let b = CookieKey::from_passphrase(b"correct horse battery staple", b"shop-cookies").unwrap();
    /// assert_eq!(a.issue("c", "r", "v1", 0), b.issue("c", "r", "v1", 0));
    /// assert!(CookieKey::from_passphrase(b"x", b"short").is_err());
    /// ```
    pub fn from_passphrase(passphrase: &[u8], salt: &[u8]) -> Result<Self, CookieKeyError> {
        if passphrase.is_empty() {
            return Err(CookieKeyError("the passphrase is empty".into()));
        }
        let params = argon2::Params::new(19 * 1024, 2, 1, Some(32))
            .map_err(|e| CookieKeyError(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon
            .hash_password_into(passphrase, salt, &mut out)
            .map_err(|e| CookieKeyError(e.to_string()))?;
        Ok(Self::from_bytes(out))
    }

    /// A random key (from the thread's CSPRNG, seeded by the OS).
    ///
    /// ```
    /// let a = routing_tower::CookieKey::random();
    /// let b = routing_tower::CookieKey::random();
    /// assert_ne!(a.issue("c", "r", "v1", 0), b.issue("c", "r", "v1", 0));
    /// ```
    #[must_use]
    pub fn random() -> Self {
        use rand::RngCore as _;
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Self::from_bytes(k)
    }

    /// This key ring with `previous`'s keys appended: they still verify (a rotation:
    /// the new key issues, the old one is honoured until its cookies age out).
    ///
    /// ```
    /// use routing_tower::CookieKey;
    /// let (old, new) = (CookieKey::from_bytes([1; 32]), CookieKey::from_bytes([2; 32]));
    /// let cookie = old.issue("c", "r", "v1", 0);
    /// let ring = new.with_previous(old);
    /// let v = ring.verify("c", "r", &cookie).unwrap();
    /// assert!(!v.current_key, "honoured, to be re-issued");
    /// assert!(ring.verify("c", "r", &ring.issue("c", "r", "v1", 0)).unwrap().current_key);
    /// ```
    #[must_use]
    pub fn with_previous(mut self, previous: CookieKey) -> Self {
        self.ring.extend(previous.ring);
        self
    }

    /// A key ring from text, as kept in a file or a Kubernetes Secret shared by every
    /// replica: one key per line, the current key (which issues) first, previous
    /// keys (which still verify) after it; blank lines and `#` comments are skipped.
    /// A key is 64 hex digits (32 bytes), or any other secret of at least 32
    /// characters, already high-entropy ([`derive`](Self::derive)).
    ///
    /// # Errors
    /// No key, or a line that is neither (the error names the line).
    ///
    /// ```
    /// use routing_tower::CookieKey;
    /// let old = "1111111111111111111111111111111111111111111111111111111111111111";
    /// let new = "2222222222222222222222222222222222222222222222222222222222222222";
    /// let before = CookieKey::from_ring_text(old).unwrap();
    /// let after = CookieKey::from_ring_text(&format!("# rotated\n{new}\n{old}\n")).unwrap();
    /// let cookie = before.issue("c", "r", "v1", 0);
    /// assert!(!after.verify("c", "r", &cookie).unwrap().current_key, "old keys still verify");
    /// assert_eq!(after.issue("c", "r", "v1", 0), CookieKey::from_bytes([0x22; 32]).issue("c", "r", "v1", 0));
    /// assert!(CookieKey::from_ring_text("# nothing\n").is_err());
    /// assert!(CookieKey::from_ring_text("short").unwrap_err().to_string().contains("line 1"));
    /// ```
    pub fn from_ring_text(text: &str) -> Result<Self, CookieKeyError> {
        let mut ring: Vec<Material> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = match hex32(line) {
                Some(bytes) => Self::from_bytes(bytes),
                None if line.len() >= 32 => Self::derive(line.as_bytes()),
                None => {
                    return Err(CookieKeyError(format!(
                        "line {}: a key is 64 hex digits or a secret of at least 32 characters",
                        n + 1
                    )))
                }
            };
            ring.extend(key.ring);
        }
        if ring.is_empty() {
            return Err(CookieKeyError("the key ring holds no key".into()));
        }
        Ok(Self { ring })
    }

    /// [`from_ring_text`](Self::from_ring_text) of a file.
    ///
    /// # Errors
    /// The file cannot be read, or its text is not a key ring.
    ///
    /// ```
    /// let err = routing_tower::CookieKey::from_ring_file("/nonexistent/keys").unwrap_err();
    /// assert!(err.to_string().contains("/nonexistent/keys"));
    /// ```
    pub fn from_ring_file(path: impl AsRef<std::path::Path>) -> Result<Self, CookieKeyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CookieKeyError(format!("{}: {e}", path.display())))?;
        Self::from_ring_text(&text)
            .map_err(|e| CookieKeyError(format!("{}: {}", path.display(), e.0)))
    }

    /// Whether two rings hold the same keys in the same order.
    fn same_as(&self, other: &CookieKey) -> bool {
        self.ring.len() == other.ring.len()
            && self
                .ring
                .iter()
                .zip(&other.ring)
                .all(|(a, b)| a.id == b.id && a.sip == b.sip)
    }

    /// The cookie value naming `backend` for `route`, issued at `issued_at` (Unix
    /// seconds), made with the current key.
    ///
    /// ```
    /// let key = routing_tower::CookieKey::from_bytes([1; 32]);
    /// let v = key.issue("sticky", "shop", "checkout-v2", 1_700_000_000);
    /// assert!(!v.contains("checkout"));
    /// assert_eq!(v.len(), 46);
    /// ```
    #[must_use]
    pub fn issue(&self, cookie_name: &str, route: &str, backend: &str, issued_at: u64) -> String {
        let key = &self.ring[0];
        let mut payload = [0u8; PAYLOAD];
        payload[0] = VERSION;
        payload[1] = key.id;
        payload[2..10].copy_from_slice(&backend_tag(backend).to_le_bytes());
        payload[10..18].copy_from_slice(&issued_at.to_le_bytes());
        let mut raw = [0u8; PAYLOAD + MAC];
        raw[..PAYLOAD].copy_from_slice(&payload);
        raw[PAYLOAD..].copy_from_slice(&key.mac(cookie_name, route, &payload));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a cookie value: `Some` when it is well formed and a key of the ring
    /// with its key id made it for this cookie name and route, `None` otherwise.
    /// Never panics.
    ///
    /// ```
    /// use routing_tower::{CookieKey, cookie::backend_tag};
    /// let key = CookieKey::from_bytes([1; 32]);
    /// let v = key.issue("sticky", "shop", "v2", 42);
    /// let ok = key.verify("sticky", "shop", &v).unwrap();
    /// assert_eq!((ok.backend_tag, ok.issued_at, ok.current_key), (backend_tag("v2"), 42, true));
    /// assert_eq!(key.verify("other-cookie", "shop", &v), None, "bound to the cookie name");
    /// assert_eq!(key.verify("sticky", "admin", &v), None, "bound to the route");
    /// let mut forged = v.clone().into_bytes();
    /// forged[5] ^= 1;
    /// assert_eq!(key.verify("sticky", "shop", std::str::from_utf8(&forged).unwrap()), None);
    /// assert_eq!(key.verify("sticky", "shop", "garbage"), None);
    /// ```
    #[must_use]
    pub fn verify(&self, cookie_name: &str, route: &str, value: &str) -> Option<Verified> {
        if value.len() != ENCODED {
            return None;
        }
        let mut raw = [0u8; PAYLOAD + MAC];
        let n = URL_SAFE_NO_PAD.decode_slice(value, &mut raw).ok()?;
        if n != raw.len() || raw[0] != VERSION {
            return None;
        }
        let mut payload = [0u8; PAYLOAD];
        payload.copy_from_slice(&raw[..PAYLOAD]);
        // Every key with this id is tried (ids are one byte: two keys may share one).
        let (i, _) = self.ring.iter().enumerate().find(|(_, k)| {
            k.id == payload[1] && {
                let expected = k.mac(cookie_name, route, &payload);
                // Constant-time comparison, so the MAC cannot be guessed byte by byte.
                expected
                    .iter()
                    .zip(&raw[PAYLOAD..])
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
        })?;
        Some(Verified {
            backend_tag: u64::from_le_bytes(payload[2..10].try_into().ok()?),
            issued_at: u64::from_le_bytes(payload[10..18].try_into().ok()?),
            current_key: i == 0,
        })
    }
}

/// 64 hex digits as 32 bytes.
fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Keeps a layer's cookie key ring in step with a file shared by every replica
/// (a mounted Kubernetes Secret, a config-management file): reads it every
/// `interval` and, when its keys changed, installs them
/// ([`RoutingLayer::set_cookie_key`](crate::RoutingLayer::set_cookie_key)) — a
/// rotation is writing the new key first and keeping the old one after it. A file
/// that cannot be read or parsed leaves the live ring as it is (logged). The task
/// runs until the returned handle is aborted.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = std::env::temp_dir().join(format!("ring-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = dir.join("keys");
/// std::fs::write(&file, "3333333333333333333333333333333333333333333333333333333333333333\n").unwrap();
/// let layer = routing_tower::RoutingLayer::annotate(routing_core::Router::from_yaml("{}").unwrap());
/// let task = routing_tower::cookie::watch_ring_file(layer, file, std::time::Duration::from_millis(50));
/// task.abort();
/// std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
pub fn watch_ring_file(
    layer: crate::RoutingLayer,
    path: impl Into<std::path::PathBuf>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let path = path.into();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match CookieKey::from_ring_file(&path) {
                Ok(ring) if !ring.same_as(&layer.cookie_key()) => {
                    tracing::info!(path = %path.display(), keys = ring.ring.len(), "cookie key ring reloaded");
                    layer.set_cookie_key(ring);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%e, "cookie key ring not reloaded; the live one stays"),
            }
        }
    })
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

/// Whether a cookie issued at `issued` is past `ttl` at `now` (`None`: no limit). A
/// cookie from the future by more than a minute of clock skew is treated as expired
/// too.
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
        let v = key.issue("c", "r", "backend-1", 1_800_000_000);
        let mut raw = URL_SAFE_NO_PAD.decode(&v).expect("decodes");
        for byte in 0..raw.len() {
            for bit in 0..8 {
                raw[byte] ^= 1 << bit;
                let forged = URL_SAFE_NO_PAD.encode(&raw);
                assert_eq!(
                    key.verify("c", "r", &forged),
                    None,
                    "flip {byte}.{bit} must be caught"
                );
                raw[byte] ^= 1 << bit;
            }
        }
        assert!(key.verify("c", "r", &v).is_some());
    }

    #[test]
    fn long_cookie_and_route_names_are_bound_too() {
        let key = CookieKey::from_bytes([5; 32]);
        let long = "n".repeat(100);
        let v = key.issue(&long, &long, "b", 1);
        let ok = key.verify(&long, &long, &v).expect("valid");
        assert_eq!((ok.backend_tag, ok.issued_at), (backend_tag("b"), 1));
        assert_eq!(key.verify(&"n".repeat(99), &long, &v), None);
        assert_eq!(key.verify(&long, &"n".repeat(99), &v), None);
        // The separator keeps (cookie, route) pairs apart: "ab"+"c" is not "a"+"bc".
        let v = key.issue("ab", "c", "b", 1);
        assert_eq!(key.verify("a", "bc", &v), None);
    }

    #[test]
    fn another_key_rejects_and_a_ring_rotates() {
        let (old, new) = (
            CookieKey::from_bytes([1; 32]),
            CookieKey::from_bytes([2; 32]),
        );
        let v = old.issue("c", "r", "b", 5);
        assert_eq!(new.verify("c", "r", &v), None);
        let ring = new.clone().with_previous(old.clone());
        let ok = ring.verify("c", "r", &v).expect("a previous key verifies");
        assert!(!ok.current_key);
        let fresh = ring.issue("c", "r", "b", 6);
        assert!(ring.verify("c", "r", &fresh).expect("current").current_key);
        // The old key alone does not accept what the new one issues.
        assert_eq!(old.verify("c", "r", &fresh), None);
        // Once the previous key is dropped, its cookies stop working.
        assert_eq!(new.verify("c", "r", &v), None);
    }

    #[test]
    fn passphrases_are_stretched_and_salted() {
        let a = CookieKey::from_passphrase(b"hunter2hunter2", b"salt-one").expect("key");
        let b = CookieKey::from_passphrase(b"hunter2hunter2", b"salt-two").expect("key");
        let v = a.issue("c", "r", "b", 1);
        assert!(a.verify("c", "r", &v).is_some());
        assert_eq!(b.verify("c", "r", &v), None, "another salt is another key");
        assert_ne!(
            a.issue("c", "r", "b", 1),
            CookieKey::derive(b"hunter2hunter2").issue("c", "r", "b", 1),
            "not the fast derivation"
        );
        assert!(CookieKey::from_passphrase(b"", b"long enough salt").is_err());
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
            &"A".repeat(46),
            &"/".repeat(46),
            &"\u{1F600}".repeat(11),
            &"A".repeat(44),
        ] {
            assert_eq!(key.verify("c", "r", s), None, "{s:?}");
        }
    }
}
