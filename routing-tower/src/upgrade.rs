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

use std::sync::atomic::{AtomicU64, Ordering};

use http::header::{self, HeaderMap};
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
