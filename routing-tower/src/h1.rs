//! An HTTP/1.1 upstream client that runs in the request's own task:
//! [`H1Backend`], the plain-TCP HTTP/1.1 counterpart of
//! [`HttpBackend`](crate::client::HttpBackend) without hyper-util's pool.
//!
//! # Model
//!
//! pingora's: the request owns its connection for the whole exchange. The request
//! head is written from a buffer the connection keeps and reuses; the response head
//! is parsed with `httparse` straight out of the connection's read buffer, and the
//! response body is read by the [`H1Body`] the caller polls, in the caller's task.
//! There is no connection task, no channel, no spawned task when a connection is
//! released.
//!
//! When the body has been read to its end (and the exchange allows keep-alive) the
//! connection goes back to a **per-worker LIFO pool**: a thread-local stack per
//! upstream, indexed by the upstream's numeric id. Checking a connection out or in
//! takes no lock and hashes nothing. Liveness is checked at checkout: a pooled
//! connection the upstream closed (or that has bytes nobody asked for) is readable,
//! and one non-blocking read finds that out; there is no watcher task per idle
//! connection. Idle connections live on the worker thread that released them.
//!
//! # Limits
//!
//! | limit | default | setter |
//! |---|---|---|
//! | requests per connection | 10 000 | [`max_requests_per_connection`](H1BackendBuilder::max_requests_per_connection) |
//! | age of a connection (reused only while younger) | 5 min | [`max_connection_age`](H1BackendBuilder::max_connection_age) |
//! | idle time of a pooled connection | 30 s | [`idle_timeout`](H1BackendBuilder::idle_timeout) |
//! | open connections per upstream (idle + busy) | unlimited | [`max_connections_per_upstream`](H1BackendBuilder::max_connections_per_upstream) |
//! | idle connections per upstream, per worker | 256 | [`max_idle_per_upstream`](H1BackendBuilder::max_idle_per_upstream) |
//! | idle connections in total, per worker | 4 096 | [`max_idle_total`](H1BackendBuilder::max_idle_total) |
//! | connect time | 5 s | [`connect_timeout`](H1BackendBuilder::connect_timeout) |
//!
//! A request over the per-upstream cap fails at once as
//! [`Failure::Connect`](crate::outcome::Failure::Connect) (the upstream saw nothing:
//! the layer's retry policy may send it elsewhere).
//!
//! # What it does to requests and responses
//!
//! The same as [`HttpBackend`](crate::client::HttpBackend): Host kept (or taken from
//! an absolute URI), hop-by-hop headers stripped both ways, `x-forwarded-*` set from
//! the [`ClientAddr`](routing_core::ClientAddr) and
//! [`Transport`](crate::client::Transport) extensions with the same trusted-hops rule,
//! errors classified the same way ([`UpstreamError`]). A request body of known length
//! is sent with `Content-Length`, one of unknown length chunked. A WebSocket upgrade
//! is handed to an [`HttpBackend`](crate::client::HttpBackend) (hyper does the switch
//! and the splice); its response body is [`H1Body`]'s hyper variant.
//!
//! A request that meets a pooled connection which fails before any byte of a
//! response arrived is sent once more on a new connection when its body was empty
//! (hyper-util's pool does the same).
//!
//! # Example
//!
//! ```no_run
//! use routing_tower::h1::H1Backend;
//! use tower::{Service, ServiceExt};
//!
//! # async fn run() -> Result<(), routing_tower::BoxError> {
//! let mut v1 = H1Backend::new("127.0.0.1:9001".parse()?);
//! let req = http::Request::get("/hello")
//!     .header(http::header::HOST, "shop.example.com")
//!     .body(routing_tower::body::empty())?;
//! let resp = v1.ready().await?.call(req).await?;
//! println!("{}", resp.status());
//! # Ok(())
//! # }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::body::Body;
use crate::client::{HttpBackend, HttpBackendBuilder};
use crate::outcome::{Failure, UpstreamError};

/// Response heads larger than this fail as [`Failure::Other`].
const MAX_HEAD: usize = 64 * 1024;
/// Most response headers parsed; more fail as [`Failure::Other`].
const MAX_HEADERS: usize = 100;
/// Size of a new connection's read buffer (and of each refill).
const READ_CHUNK: usize = 8 * 1024;

/// The limits of one [`H1BackendBuilder`].
#[derive(Debug, Clone)]
struct Settings {
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_age: Duration,
    max_requests: u32,
    max_open: usize,
    max_idle_per_upstream: usize,
    max_idle_total: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            connect_timeout: HttpBackendBuilder::DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: HttpBackendBuilder::DEFAULT_POOL_IDLE_TIMEOUT,
            max_age: H1BackendBuilder::DEFAULT_MAX_CONNECTION_AGE,
            max_requests: H1BackendBuilder::DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            max_open: usize::MAX,
            max_idle_per_upstream: HttpBackendBuilder::DEFAULT_POOL_MAX_IDLE_PER_HOST,
            max_idle_total: H1BackendBuilder::DEFAULT_MAX_IDLE_TOTAL,
        }
    }
}

/// Ids of upstreams, process-wide: the index of their stack in each worker's pool.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// One upstream address as one builder sees it: shared by every backend the builder
/// makes for that address.
#[derive(Debug)]
struct Upstream {
    id: usize,
    addr: SocketAddr,
    settings: Settings,
    /// Open connections (busy and idle, all workers).
    open: AtomicUsize,
}

/// Settings for [`H1Backend`]s; backends built by one builder for one address share
/// that upstream's connections (and its connection cap).
///
/// ```
/// use std::time::Duration;
/// use routing_tower::h1::H1Backend;
///
/// let builder = H1Backend::builder()
///     .max_requests_per_connection(1000)
///     .max_connection_age(Duration::from_secs(60))
///     .max_connections_per_upstream(512)
///     .max_idle_total(1024);
/// let v1 = builder.build("127.0.0.1:9001".parse().unwrap());
/// assert_eq!(v1.addr().port(), 9001);
/// ```
#[derive(Clone, Default)]
pub struct H1BackendBuilder {
    settings: Settings,
    trusted_hops: usize,
    upstreams: Arc<Mutex<HashMap<SocketAddr, Arc<Upstream>>>>,
}

impl fmt::Debug for H1BackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H1BackendBuilder")
            .field("settings", &self.settings)
            .field("trusted_hops", &self.trusted_hops)
            .finish_non_exhaustive()
    }
}

impl H1BackendBuilder {
    /// Requests one connection carries before it is closed: 10 000.
    pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u32 = 10_000;
    /// Age after which a connection is not reused: 5 minutes (DNS and load
    /// balancers in front of the upstream get a chance to rebalance).
    pub const DEFAULT_MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
    /// Idle connections a worker keeps over all upstreams: 4 096.
    pub const DEFAULT_MAX_IDLE_TOTAL: usize = 4096;

    /// A builder with the defaults of the [module](self) table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Settings changed after a backend was built apply to backends built later,
    /// which get connections of their own.
    fn changed(mut self) -> Self {
        self.upstreams = Default::default();
        self
    }

    /// How long a TCP connect may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self.changed()
    }

    /// How long a pooled connection may stay idle before it is closed (at its next
    /// checkout, or when the pool is pruned on a release).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = timeout;
        self.changed()
    }

    /// A connection older than this is closed instead of being reused.
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.settings.max_age = age;
        self.changed()
    }

    /// Requests a connection carries before it is closed (at least 1).
    pub fn max_requests_per_connection(mut self, n: u32) -> Self {
        self.settings.max_requests = n.max(1);
        self.changed()
    }

    /// Open connections (busy and idle) to one upstream; a request that would open
    /// one more fails as [`Failure::Connect`].
    pub fn max_connections_per_upstream(mut self, n: usize) -> Self {
        self.settings.max_open = n;
        self.changed()
    }

    /// Idle connections each worker thread keeps per upstream.
    pub fn max_idle_per_upstream(mut self, n: usize) -> Self {
        self.settings.max_idle_per_upstream = n;
        self.changed()
    }

    /// Idle connections each worker thread keeps over all upstreams.
    pub fn max_idle_total(mut self, n: usize) -> Self {
        self.settings.max_idle_total = n;
        self.changed()
    }

    /// Proxies in front trusted to have appended to `X-Forwarded-For`; see
    /// [`HttpBackendBuilder::trusted_hops`].
    pub fn trusted_hops(mut self, hops: usize) -> Self {
        self.trusted_hops = hops;
        self
    }

    /// A backend forwarding to `addr`, sharing this builder's connections to it.
    pub fn build(&self, addr: SocketAddr) -> H1Backend {
        let up = {
            let mut ups = self.upstreams.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(ups.entry(addr).or_insert_with(|| {
                Arc::new(Upstream {
                    id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                    addr,
                    settings: self.settings.clone(),
                    open: AtomicUsize::new(0),
                })
            }))
        };
        let fallback = HttpBackend::builder()
            .trusted_hops(self.trusted_hops)
            .connect_timeout(self.settings.connect_timeout)
            .build(addr);
        H1Backend { up, fallback }
    }
}

/// A [`tower::Service`] forwarding requests to one HTTP/1.1 upstream over plain TCP,
/// in the request's task, with a per-worker connection pool (see the
/// [module documentation](self)). Cloning is cheap: clones share the connections.
#[derive(Clone)]
pub struct H1Backend {
    up: Arc<Upstream>,
    /// Rewrites requests (Host, hop-by-hop, forwarding headers) and carries
    /// WebSocket upgrades.
    fallback: HttpBackend,
}

impl fmt::Debug for H1Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H1Backend")
            .field("addr", &self.up.addr)
            .field("id", &self.up.id)
            .finish_non_exhaustive()
    }
}

impl H1Backend {
    /// A backend for `addr` with the default limits and connections of its own.
    ///
    /// ```
    /// let v1 = routing_tower::h1::H1Backend::new("127.0.0.1:9001".parse().unwrap());
    /// assert_eq!(v1.addr().to_string(), "127.0.0.1:9001");
    /// ```
    pub fn new(addr: SocketAddr) -> Self {
        H1BackendBuilder::new().build(addr)
    }

    /// A builder for backends sharing connections.
    pub fn builder() -> H1BackendBuilder {
        H1BackendBuilder::new()
    }

    /// The upstream address.
    pub fn addr(&self) -> SocketAddr {
        self.up.addr
    }

    /// Connections open to this upstream now (busy and idle, every worker).
    ///
    /// ```
    /// let v1 = routing_tower::h1::H1Backend::new("127.0.0.1:9001".parse().unwrap());
    /// assert_eq!(v1.open_connections(), 0);
    /// ```
    pub fn open_connections(&self) -> usize {
        self.up.open.load(Ordering::Relaxed)
    }
}

/// The future of one [`H1Backend`] call.
pub type H1Future = Pin<Box<dyn Future<Output = Result<Response<H1Body>, UpstreamError>> + Send>>;

impl tower::Service<Request<Body>> for H1Backend {
    type Response = Response<H1Body>;
    type Error = UpstreamError;
    type Future = H1Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), UpstreamError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> H1Future {
        if crate::upgrade::is_websocket(req.headers()) {
            let fut = tower::Service::call(&mut self.fallback, req);
            return Box::pin(async move {
                let resp = fut.await?;
                Ok(resp.map(|b| H1Body {
                    inner: Inner::Hyper(b),
                }))
            });
        }
        self.fallback.prepare(&mut req);
        let up = Arc::clone(&self.up);
        Box::pin(send(up, req))
    }
}

// ---------------------------------------------------------------------------
// Connections and the per-worker pool.

/// One connection to an upstream, owned by one request at a time.
struct Conn {
    io: TcpStream,
    /// Response bytes read and not yet consumed.
    rbuf: BytesMut,
    /// The request head being written (reused: cleared per request).
    wbuf: Vec<u8>,
    /// Requests sent on it so far.
    requests: u32,
    born: Instant,
    /// When it was last put into the pool.
    idle_since: Instant,
    up: Arc<Upstream>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.up.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Conn {
    /// Whether it may carry another request at `now`.
    fn reusable(&self, now: Instant) -> bool {
        self.requests < self.up.settings.max_requests
            && now.saturating_duration_since(self.born) < self.up.settings.max_age
    }

    /// Whether a pooled connection is still usable: not idle too long, and nothing
    /// to read (a closed or reset connection is readable; a response nobody asked
    /// for is a protocol error).
    fn alive_at_checkout(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.idle_since) >= self.up.settings.idle_timeout
            || !self.reusable(now)
        {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// A worker's idle connections: one LIFO stack per upstream id.
#[derive(Default)]
struct WorkerPool {
    stacks: Vec<Vec<Conn>>,
    total: usize,
}

thread_local! {
    static POOL: RefCell<WorkerPool> = RefCell::new(WorkerPool::default());
}

/// The most recently released live connection to `up` on this worker, if any.
fn checkout(up: &Upstream) -> Option<Conn> {
    let now = Instant::now();
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let mut found = None;
        // Bounded by the stack's length; dead ones are dropped on the way.
        while let Some(mut conn) = pool.stacks.get_mut(up.id).and_then(Vec::pop) {
            pool.total -= 1;
            if conn.alive_at_checkout(now) {
                found = Some(conn);
                break;
            }
        }
        found
    })
}

/// Puts a connection whose exchange ended cleanly back into this worker's pool, or
/// closes it when a limit says so.
fn release(mut conn: Conn) {
    let now = Instant::now();
    if !conn.reusable(now) || !conn.rbuf.is_empty() {
        return;
    }
    conn.idle_since = now;
    let settings = &conn.up.settings;
    let (id, per_up, total_cap, idle) = (
        conn.up.id,
        settings.max_idle_per_upstream,
        settings.max_idle_total,
        settings.idle_timeout,
    );
    // A connection dropped here closes outside the borrow (its Drop is cheap but
    // keep the pool borrow short anyway).
    let _closed: Option<Conn> = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.stacks.len() <= id {
            pool.stacks.resize_with(id + 1, Vec::new);
        }
        let WorkerPool { stacks, total } = &mut *pool;
        let stack = &mut stacks[id];
        // The oldest idle connection (bottom of the stack) is pruned once expired.
        let expired = stack
            .first()
            .is_some_and(|c| now.saturating_duration_since(c.idle_since) >= idle);
        let pruned = if expired {
            *total -= 1;
            Some(stack.remove(0))
        } else {
            None
        };
        if stack.len() >= per_up || *total >= total_cap {
            return Some(conn);
        }
        stack.push(conn);
        *total += 1;
        pruned
    });
}

fn error(
    kind: Failure,
    addr: SocketAddr,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> UpstreamError {
    UpstreamError {
        kind,
        addr: Some(addr),
        source: source.into(),
    }
}

fn io_error(addr: SocketAddr, err: io::Error) -> UpstreamError {
    let kind = crate::outcome::classify(&err);
    error(kind, addr, err)
}

/// A new connection to `up`, within the per-upstream cap and the connect timeout.
async fn connect(up: &Arc<Upstream>) -> Result<Conn, UpstreamError> {
    let addr = up.addr;
    if up.open.fetch_add(1, Ordering::Relaxed) >= up.settings.max_open {
        up.open.fetch_sub(1, Ordering::Relaxed);
        return Err(error(
            Failure::Connect,
            addr,
            format!(
                "{} connections open to the upstream (max_connections_per_upstream)",
                up.settings.max_open
            ),
        ));
    }
    let now = Instant::now();
    // From here the connection's Drop gives the slot back, also on failure.
    let slot = OpenSlot(Arc::clone(up));
    let io = match tokio::time::timeout(up.settings.connect_timeout, TcpStream::connect(addr)).await
    {
        Ok(Ok(io)) => io,
        // Whatever failed the connect, the upstream saw nothing.
        Ok(Err(e)) => return Err(error(Failure::Connect, addr, e)),
        Err(_) => {
            return Err(error(
                Failure::Connect,
                addr,
                io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
            ))
        }
    };
    io.set_nodelay(true).map_err(|e| io_error(addr, e))?;
    std::mem::forget(slot);
    Ok(Conn {
        io,
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        wbuf: Vec::with_capacity(1024),
        requests: 0,
        born: now,
        idle_since: now,
        up: Arc::clone(up),
    })
}

/// A counted open-connection slot not yet owned by a [`Conn`].
struct OpenSlot(Arc<Upstream>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// One exchange.

/// How the request body is sent.
enum ReqBody {
    /// None at all.
    Empty,
    /// All of it, already in hand (sent with the head in one write).
    Whole(Bytes),
    /// Streamed: the first data frame if already read, the rest, and the length
    /// (`Some`: sent with `Content-Length`; `None`: chunked).
    Stream(Option<Bytes>, Body, Option<u64>),
}

/// Writes the request head for `req` into `buf`.
fn write_head(buf: &mut Vec<u8>, req: &http::request::Parts, addr: SocketAddr, body: &ReqBody) {
    buf.clear();
    buf.extend_from_slice(req.method.as_str().as_bytes());
    buf.push(b' ');
    let pq = req
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    buf.extend_from_slice(if pq.is_empty() { b"/" } else { pq.as_bytes() });
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    if !req.headers.contains_key(header::HOST) {
        buf.extend_from_slice(b"host: ");
        buf.extend_from_slice(addr.to_string().as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    for (name, value) in &req.headers {
        if *name == header::CONTENT_LENGTH {
            continue; // written from the body's framing below
        }
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    let length = match body {
        ReqBody::Empty => {
            // A method that usually carries a body says it has none.
            let needs = !matches!(
                req.method,
                Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::CONNECT
            );
            needs.then_some(0)
        }
        ReqBody::Whole(b) => Some(b.len() as u64),
        ReqBody::Stream(_, _, n) => *n,
    };
    match (length, body) {
        (Some(n), _) => {
            buf.extend_from_slice(b"content-length: ");
            buf.extend_from_slice(n.to_string().as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        (None, ReqBody::Stream(..)) => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (None, _) => {}
    }
    buf.extend_from_slice(b"\r\n");
}

/// Sends `req` upstream and reads the response head.
async fn send(up: Arc<Upstream>, req: Request<Body>) -> Result<Response<H1Body>, UpstreamError> {
    let addr = up.addr;
    let (parts, mut body) = req.into_parts();
    let head_only = parts.method == Method::HEAD;

    // The body: none, whole (the common case: already buffered), or streamed.
    let req_body = if http_body::Body::is_end_stream(&body) {
        ReqBody::Empty
    } else {
        let hint = http_body::Body::size_hint(&body).exact();
        match body.frame().now_or_never() {
            None => ReqBody::Stream(None, body, hint),
            Some(None) => ReqBody::Empty,
            Some(Some(Err(e))) => return Err(error(Failure::Other, addr, e)),
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if http_body::Body::is_end_stream(&body) => ReqBody::Whole(data),
                Ok(data) => ReqBody::Stream(Some(data), body, hint),
                // Trailers only: nothing to send in HTTP/1.1 without chunking.
                Err(_) => ReqBody::Empty,
            },
        }
    };
    let retryable = !matches!(req_body, ReqBody::Stream(..));

    let (mut conn, mut reused) = match checkout(&up) {
        Some(c) => (c, true),
        None => (connect(&up).await?, false),
    };
    let mut req_body = req_body;
    // At most two attempts: the second only on a fresh connection.
    let (status, version, headers, framing, keep_alive) = loop {
        write_head(&mut conn.wbuf, &parts, addr, &req_body);
        conn.requests += 1;
        let result = exchange(&mut conn, &mut req_body, head_only).await;
        match result {
            Ok(head) => break head,
            Err(Attempt::Stale(err)) if reused && retryable => {
                tracing::debug!(%addr, error = %err, "pooled connection was closed; resending on a new one");
                conn = connect(&up).await?;
                reused = false;
            }
            Err(Attempt::Stale(err) | Attempt::Failed(err)) => return Err(err),
        }
    };
    let conn = if framing.is_done() {
        if keep_alive {
            release(conn);
        }
        None
    } else {
        Some(conn)
    };
    let mut resp = Response::new(H1Body {
        inner: Inner::Native(Native {
            conn,
            framing,
            keep_alive,
            addr,
        }),
    });
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    crate::client::remove_hop_by_hop(resp.headers_mut());
    Ok(resp)
}

/// Why an attempt failed.
enum Attempt {
    /// Nothing of a response arrived (the connection may have been stale).
    Stale(UpstreamError),
    /// Anything else.
    Failed(UpstreamError),
}

type Head = (StatusCode, Version, HeaderMap, Framing, bool);

/// Writes the head and body, then reads the response head.
async fn exchange(conn: &mut Conn, body: &mut ReqBody, head_only: bool) -> Result<Head, Attempt> {
    let addr = conn.up.addr;
    let stale = |e: io::Error| Attempt::Stale(io_error(addr, e));
    match body {
        ReqBody::Empty => conn.io.write_all(&conn.wbuf).await.map_err(stale)?,
        ReqBody::Whole(data) => {
            conn.wbuf.extend_from_slice(data);
            conn.io.write_all(&conn.wbuf).await.map_err(stale)?;
        }
        ReqBody::Stream(first, b, length) => {
            conn.io.write_all(&conn.wbuf).await.map_err(stale)?;
            let chunked = length.is_none();
            let failed = |e: io::Error| Attempt::Failed(io_error(addr, e));
            let mut first = first.take().map(|d| Ok(Frame::data(d)));
            // Bounded by the body's frames.
            loop {
                let frame = match first.take() {
                    Some(f) => f,
                    None => match b.frame().await {
                        Some(f) => f,
                        None => break,
                    },
                };
                let frame = frame.map_err(|e| Attempt::Failed(error(Failure::Other, addr, e)))?;
                match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) if chunked => {
                        let size = format!("{:x}\r\n", data.len());
                        conn.io.write_all(size.as_bytes()).await.map_err(failed)?;
                        conn.io.write_all(&data).await.map_err(failed)?;
                        conn.io.write_all(b"\r\n").await.map_err(failed)?;
                    }
                    Ok(data) => conn.io.write_all(&data).await.map_err(failed)?,
                    Err(_trailers) => {}
                }
            }
            if chunked {
                conn.io.write_all(b"0\r\n\r\n").await.map_err(failed)?;
            }
        }
    }
    // The response head; 1xx informational heads are skipped (bounded: each one
    // consumes bytes of a head no larger than MAX_HEAD).
    let mut got_any = false;
    loop {
        if !conn.rbuf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&conn.rbuf) {
                Ok(httparse::Status::Complete(n)) => {
                    let head = build_head(&parsed, head_only)
                        .map_err(|e| Attempt::Failed(error(Failure::Other, addr, e)))?;
                    conn.rbuf.advance(n);
                    match head {
                        Some(head) => return Ok(head),
                        None => continue, // 1xx
                    }
                }
                Ok(httparse::Status::Partial) if conn.rbuf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(Attempt::Failed(error(
                        Failure::Other,
                        addr,
                        "response head too large",
                    )))
                }
                Err(e) => return Err(Attempt::Failed(error(Failure::Other, addr, e))),
            }
        }
        if conn.rbuf.capacity() - conn.rbuf.len() < READ_CHUNK / 2 {
            conn.rbuf.reserve(READ_CHUNK);
        }
        match conn.io.read_buf(&mut conn.rbuf).await {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a complete response head",
                );
                return Err(if got_any {
                    Attempt::Failed(io_error(addr, e))
                } else {
                    Attempt::Stale(io_error(addr, e))
                });
            }
            Ok(_) => got_any = true,
            Err(e) if got_any => return Err(Attempt::Failed(io_error(addr, e))),
            Err(e) => return Err(Attempt::Stale(io_error(addr, e))),
        }
    }
}

/// The parts of a complete response head, or `None` for a 1xx to skip.
fn build_head(
    parsed: &httparse::Response<'_, '_>,
    head_only: bool,
) -> Result<Option<Head>, String> {
    let code = parsed.code.ok_or("no status code")?;
    let status = StatusCode::from_u16(code).map_err(|e| e.to_string())?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err("101 Switching Protocols to a request that asked for no upgrade".into());
        }
        return Ok(None);
    }
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = version == Version::HTTP_10;
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_bytes(h.value).map_err(|e| e.to_string())?;
        if name == header::CONTENT_LENGTH {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("invalid content-length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length headers".into());
            }
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                return Err("a transfer-encoding other than chunked".into());
            }
        } else if name == header::CONNECTION {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Version::HTTP_10 {
                    close = false;
                }
            }
        }
        headers.append(name, value);
    }
    let framing =
        if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Done
        } else if chunked {
            // A length beside chunked is ignored (and removed: the body is re-framed).
            headers.remove(header::CONTENT_LENGTH);
            Framing::Chunked(Chunk::Size)
        } else if let Some(n) = length {
            if n == 0 {
                Framing::Done
            } else {
                Framing::Length(n)
            }
        } else {
            close = true;
            Framing::ToClose
        };
    Ok(Some((status, version, headers, framing, !close)))
}

// ---------------------------------------------------------------------------
// The response body.

/// How the rest of a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    ToClose,
    Done,
}

impl Framing {
    fn is_done(self) -> bool {
        self == Framing::Done
    }
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// The response body of an [`H1Backend`]: read from the upstream connection in the
/// task that polls it; the connection returns to the pool when the body ends.
/// Dropping it early closes the connection.
pub struct H1Body {
    inner: Inner,
}

enum Inner {
    Native(Native),
    Hyper(hyper::body::Incoming),
}

struct Native {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    addr: SocketAddr,
}

impl fmt::Debug for H1Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Native(n) => f
                .debug_struct("H1Body")
                .field("framing", &n.framing)
                .finish_non_exhaustive(),
            Inner::Hyper(_) => f.write_str("H1Body(hyper)"),
        }
    }
}

fn truncated(addr: SocketAddr) -> UpstreamError {
    io_error(
        addr,
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of the body",
        ),
    )
}

impl Native {
    /// The body ended: the connection goes back to the pool if it may.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                release(conn);
            }
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, UpstreamError>> {
        let addr = self.addr;
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        if conn.rbuf.capacity() - conn.rbuf.len() < READ_CHUNK / 2 {
            conn.rbuf.reserve(READ_CHUNK);
        }
        // Bounded: a WouldBlock clears the readiness, so the next poll_read_ready
        // returns Pending unless new bytes arrived.
        for _ in 0..64 {
            ready!(conn.io.poll_read_ready(cx)).map_err(|e| io_error(addr, e))?;
            match conn.io.try_read_buf(&mut conn.rbuf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(io_error(addr, e))),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let addr = self.addr;
        // Each pass either returns or consumes buffered bytes / reads more; bounded.
        for _ in 0..1024 {
            let buffered = self.conn.as_ref().map_or(0, |c| c.rbuf.len());
            match self.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(rem) if buffered > 0 => {
                    let conn = self.conn.as_mut().ok_or_else(|| truncated(addr));
                    let conn = match conn {
                        Ok(c) => c,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    };
                    let take = (buffered as u64).min(rem) as usize;
                    let data = conn.rbuf.split_to(take).freeze();
                    if rem == take as u64 {
                        self.finish();
                    } else {
                        self.framing = Framing::Length(rem - take as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::ToClose if buffered > 0 => {
                    let Some(conn) = self.conn.as_mut() else {
                        return Poll::Ready(None);
                    };
                    let data = conn.rbuf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::Chunked(state) => match self.step_chunked(state) {
                    Ok(Step::Frame(f)) => return Poll::Ready(Some(Ok(f))),
                    Ok(Step::Again) => continue,
                    Ok(Step::End) => {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => {}
                    Err(e) => {
                        self.conn = None;
                        return Poll::Ready(Some(Err(error(Failure::Other, addr, e))));
                    }
                },
                Framing::Length(_) | Framing::ToClose => {}
            }
            // More bytes are needed.
            match ready!(self.poll_fill(cx)) {
                Ok(0) if self.framing == Framing::ToClose => {
                    self.framing = Framing::Done;
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.framing = Framing::Done;
                    self.conn = None;
                    return Poll::Ready(Some(Err(truncated(addr))));
                }
                Ok(_) => {}
                Err(e) => {
                    self.framing = Framing::Done;
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One step of the chunked decoder over the buffered bytes.
    fn step_chunked(&mut self, state: Chunk) -> Result<Step, &'static str> {
        let Some(conn) = self.conn.as_mut() else {
            return Err("connection gone");
        };
        let buf = &mut conn.rbuf;
        match state {
            Chunk::Size => {
                let Some(eol) = find_crlf(buf) else {
                    return if buf.len() > 1024 {
                        Err("chunk size line too long")
                    } else {
                        Ok(Step::NeedMore)
                    };
                };
                let line = &buf[..eol];
                let hex = line
                    .split(|b| *b == b';')
                    .next()
                    .unwrap_or(&[])
                    .trim_ascii();
                if hex.is_empty() || hex.len() > 15 {
                    return Err("invalid chunk size");
                }
                let mut size: u64 = 0;
                for &b in hex {
                    let d = (b as char).to_digit(16).ok_or("invalid chunk size")?;
                    size = size * 16 + u64::from(d);
                }
                buf.advance(eol + 2);
                self.framing = Framing::Chunked(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                });
                Ok(Step::Again)
            }
            Chunk::Data(rem) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let take = (buf.len() as u64).min(rem) as usize;
                let data = buf.split_to(take).freeze();
                let left = rem - take as u64;
                self.framing = Framing::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                Ok(Step::Frame(Frame::data(data)))
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("chunk not followed by CRLF");
                }
                buf.advance(2);
                self.framing = Framing::Chunked(Chunk::Size);
                Ok(Step::Again)
            }
            Chunk::Trailers => {
                if buf.len() >= 2 && &buf[..2] == b"\r\n" {
                    buf.advance(2);
                    return Ok(Step::End);
                }
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                match httparse::parse_headers(buf, &mut headers) {
                    Ok(httparse::Status::Complete((n, parsed))) => {
                        let mut trailers = HeaderMap::with_capacity(parsed.len());
                        for h in parsed {
                            let name = HeaderName::from_bytes(h.name.as_bytes())
                                .map_err(|_| "invalid trailer name")?;
                            let value = HeaderValue::from_bytes(h.value)
                                .map_err(|_| "invalid trailer value")?;
                            trailers.append(name, value);
                        }
                        buf.advance(n);
                        self.finish();
                        Ok(Step::Frame(Frame::trailers(trailers)))
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(Step::NeedMore),
                    Ok(httparse::Status::Partial) => Err("trailers too large"),
                    Err(_) => Err("invalid trailers"),
                }
            }
        }
    }
}

enum Step {
    Frame(Frame<Bytes>),
    Again,
    NeedMore,
    End,
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

impl http_body::Body for H1Body {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match &mut self.inner {
            Inner::Native(n) => n.poll_frame(cx),
            Inner::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(UpstreamError::from))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Native(n) => n.framing.is_done(),
            Inner::Hyper(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Native(n) => match n.framing {
                Framing::Done => SizeHint::with_exact(0),
                Framing::Length(rem) => SizeHint::with_exact(rem),
                _ => SizeHint::default(),
            },
            Inner::Hyper(b) => b.size_hint(),
        }
    }
}
