//! WebSocket upgrades through the proxy: which requests are upgrades, and the
//! splice of the two upgraded connections.
//!
//! A request with `Connection: upgrade` and `Upgrade: websocket` keeps those two
//! headers through the layer and [`HttpBackend`](crate::HttpBackend). When the
//! upstream answers `101 Switching Protocols`, the 101 goes back to the client, and
//! a task of its own copies bytes both ways between the client's and the upstream's
//! upgraded connections until either side closes. The request's timeouts end with
//! the 101 (an upgraded connection may live for hours); the splice is counted in
//! [`open_upgrades`] while it runs.
//!
//! Only `websocket` is passed: an `Upgrade: h2c` (or anything else) is stripped like
//! any hop-by-hop header, so a client cannot switch protocols behind the rules.
//!
//! # WebSocket over HTTP/2 (RFC 8441)
//!
//! The [`server`](crate::server) enables HTTP/2's extended CONNECT
//! (`SETTINGS_ENABLE_CONNECT_PROTOCOL`). A `CONNECT` with `:protocol websocket`
//! ([`hyper::ext::Protocol`]) is turned into the HTTP/1.1 form of the same request
//! ([`normalize_extended_connect`]): a `GET` with `Connection: upgrade` and
//! `Upgrade: websocket`, so rules match and route it like any WebSocket upgrade.
//! [`HttpBackend`](crate::HttpBackend) then speaks to the upstream in the upstream's
//! own protocol and answers the client in the client's:
//!
//! | client | upstream (`http1` / `h2c`, `h2`) | upstream sees | client gets |
//! |---|---|---|---|
//! | HTTP/1.1 `Upgrade` | HTTP/1.1 | the same `Upgrade` request | the upstream's `101` |
//! | HTTP/1.1 `Upgrade` | HTTP/2 | extended `CONNECT` (the client's key dropped) | `101` with `Sec-WebSocket-Accept` computed from its key |
//! | HTTP/2 extended `CONNECT` | HTTP/1.1 | `Upgrade` with a fresh `Sec-WebSocket-Key` | `200` |
//! | HTTP/2 extended `CONNECT` | HTTP/2 | extended `CONNECT` | `200` |
//!
//! hyper's HTTP/2 client sends extended CONNECT (the `Protocol` extension goes into
//! the `:protocol` pseudo-header) and hands the stream over as an upgrade on a
//! `200`, which is what the HTTP/2 upstream column relies on. An `auto` upstream is
//! treated as HTTP/1.1 here: which protocol ALPN picks is known only once the pooled
//! connection exists, after the request has been shaped.

use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Upgraded connections being spliced now, process-wide.
static OPEN: AtomicU64 = AtomicU64::new(0);
/// Upgraded connections spliced since start, process-wide.
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// Upgraded (WebSocket) connections open now, spliced by this process.
///
/// ```
/// let _open: u64 = routing_tower::upgrade::open_upgrades();
/// ```
pub fn open_upgrades() -> u64 {
    OPEN.load(Ordering::Relaxed)
}

/// Upgraded (WebSocket) connections spliced since the process started.
///
/// ```
/// let _all: u64 = routing_tower::upgrade::total_upgrades();
/// ```
pub fn total_upgrades() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// Whether `headers` ask for (or, on a 101, confirm) a WebSocket upgrade:
/// `Connection` lists `upgrade` and `Upgrade` is `websocket`.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
/// h.insert("upgrade", "websocket".parse().unwrap());
/// assert!(routing_tower::upgrade::is_websocket(&h));
/// h.insert("upgrade", "h2c".parse().unwrap());
/// assert!(!routing_tower::upgrade::is_websocket(&h));
/// ```
pub fn is_websocket(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        && headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Marks a response whose connection is being spliced by [`HttpBackend`](crate::HttpBackend)
/// (a 101 to an HTTP/1.1 upgrade, or a 200 to an HTTP/2 extended CONNECT).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spliced;

/// Whether `res` switches its connection to another protocol: a `101`, or a
/// response [`HttpBackend`](crate::HttpBackend) splices. The layer keeps it out of
/// latency histograms and of response-body timeouts.
pub(crate) fn is_upgrade_response<B>(res: &http::Response<B>) -> bool {
    res.status() == http::StatusCode::SWITCHING_PROTOCOLS
        || res.extensions().get::<Spliced>().is_some()
}

/// Marks a request that arrived as an HTTP/2 extended CONNECT and was rewritten by
/// [`normalize_extended_connect`]: its answer must be a `200`, not a `101`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedConnect;

/// Rewrites an HTTP/2 extended CONNECT for a WebSocket (RFC 8441: `CONNECT` with
/// `:protocol websocket`) into the HTTP/1.1 form of the same request (`GET`,
/// `Connection: upgrade`, `Upgrade: websocket`), marked [`ExtendedConnect`], so it is
/// matched and routed like any WebSocket upgrade. Returns whether it did. The
/// [`server`](crate::server) calls it on every request; call it yourself in front of
/// the layer when serving with something else.
///
/// ```
/// let mut req = http::Request::connect("http://shop.test/chat")
///     .version(http::Version::HTTP_2)
///     .body(())
///     .unwrap();
/// req.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
/// assert!(routing_tower::upgrade::normalize_extended_connect(&mut req));
/// assert_eq!(req.method(), http::Method::GET);
/// assert!(routing_tower::upgrade::is_websocket(req.headers()));
/// ```
pub fn normalize_extended_connect<B>(req: &mut Request<B>) -> bool {
    let websocket = req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_ref().eq_ignore_ascii_case(b"websocket"));
    if !websocket {
        return false;
    }
    req.extensions_mut().remove::<hyper::ext::Protocol>();
    req.extensions_mut().insert(ExtendedConnect);
    *req.method_mut() = Method::GET;
    let headers = req.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    true
}

/// How a WebSocket handshake is translated between the client's protocol and the
/// upstream's.
#[derive(Debug, Default)]
pub(crate) struct Handshake {
    /// The client came over HTTP/2 (extended CONNECT): it is answered `200`.
    down_h2: bool,
    /// The upstream speaks HTTP/2: it is sent an extended CONNECT, and switches with
    /// a `200`.
    up_h2: bool,
    /// The HTTP/1.1 client's `Sec-WebSocket-Key`, to answer it when the upstream is
    /// HTTP/2 (which has no key).
    key: Option<HeaderValue>,
}

/// Shapes a WebSocket request (already [`is_websocket`]) for an upstream speaking
/// HTTP/2 (`up_h2`) or HTTP/1.1.
pub(crate) fn to_upstream<B>(req: &mut Request<B>, up_h2: bool) -> Handshake {
    let down_h2 = req.extensions_mut().remove::<ExtendedConnect>().is_some();
    let headers = req.headers_mut();
    let mut key = None;
    if up_h2 {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
        key = headers.remove(header::SEC_WEBSOCKET_KEY);
        *req.method_mut() = Method::CONNECT;
        *req.version_mut() = Version::HTTP_2;
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
    } else if down_h2 {
        use base64::Engine as _;
        use rand::RngCore as _;
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let fresh = base64::engine::general_purpose::STANDARD.encode(nonce);
        if let Ok(v) = HeaderValue::from_str(&fresh) {
            headers.insert(header::SEC_WEBSOCKET_KEY, v);
        }
        headers
            .entry(header::SEC_WEBSOCKET_VERSION)
            .or_insert(HeaderValue::from_static("13"));
    }
    Handshake {
        down_h2,
        up_h2,
        key,
    }
}

impl Handshake {
    /// Whether the upstream's answer switched the connection.
    pub(crate) fn switched<B>(&self, res: &Response<B>) -> bool {
        if self.up_h2 {
            res.status().is_success()
        } else {
            res.status() == StatusCode::SWITCHING_PROTOCOLS
        }
    }

    /// Turns the upstream's switching answer into the client's: `200` for an
    /// HTTP/2 client, `101` (with `Sec-WebSocket-Accept`) for an HTTP/1.1 one.
    pub(crate) fn to_downstream<B>(&self, res: &mut Response<B>) {
        if self.down_h2 {
            *res.status_mut() = StatusCode::OK;
            let headers = res.headers_mut();
            headers.remove(header::CONNECTION);
            headers.remove(header::UPGRADE);
            headers.remove(header::SEC_WEBSOCKET_ACCEPT);
        } else if self.up_h2 {
            *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let headers = res.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            if let Some(accept) = self.key.as_ref().and_then(|k| accept_for(k.as_bytes())) {
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
        }
        res.extensions_mut().insert(Spliced);
    }
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2: base64 of the
/// SHA-1 of the key and the protocol's GUID).
fn accept_for(key: &[u8]) -> Option<HeaderValue> {
    use base64::Engine as _;
    use sha1::Digest as _;
    let mut sha = sha1::Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(sha.finalize())).ok()
}

/// Counts one splice while alive.
struct Open;

impl Open {
    fn new() -> Self {
        OPEN.fetch_add(1, Ordering::Relaxed);
        TOTAL.fetch_add(1, Ordering::Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Splices the client's and the upstream's upgraded connections in a task of its
/// own, once both have switched.
pub(crate) fn splice(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(run_splice(downstream, upstream));
}

async fn run_splice(downstream: OnUpgrade, upstream: OnUpgrade) {
    let (down, up) = match tokio::try_join!(downstream, upstream) {
        Ok(both) => both,
        Err(err) => {
            tracing::debug!(%err, "upgrade did not complete");
            return;
        }
    };
    let _open = Open::new();
    let mut down = TokioIo::new(down);
    let mut up = TokioIo::new(up);
    if let Err(err) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        tracing::debug!(%err, "upgraded connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_matches_rfc_6455_example() {
        // RFC 6455 §1.3: this key is answered with this accept value.
        let a = super::accept_for(b"dGhlIHNhbXBsZSBub25jZQ==").expect("valid");
        assert_eq!(a, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
