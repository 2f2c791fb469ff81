//! An HTTP client backend: a [`tower::Service`] that forwards each request to one
//! upstream [`SocketAddr`] over pooled connections, in HTTP/1.1, HTTP/2 with prior
//! knowledge (h2c), or over TLS with HTTP/2 or HTTP/1.1 chosen by ALPN
//! ([`UpstreamProtocol`], [`UpstreamTls`]).
//!
//! [`HttpBackend`] is what a reverse proxy puts behind the routing layer: one per
//! upstream, all sharing one connection pool when built from one
//! [`HttpBackendBuilder`]. [`HttpBackend::for_config`] builds the whole
//! [`Backends`] set from the `address` fields of a [`routing_core::Config`].
//!
//! # What it does to a request
//!
//! * The URI becomes `http://{addr}{path_and_query}`; the client's `Host` header is
//!   kept (reverse-proxy convention). A request without `Host` but with an
//!   absolute URI gets `Host` from that URI's authority, so the upstream still sees
//!   the name the client asked for.
//! * It is sent in the backend's [`UpstreamProtocol`], whatever version it arrived
//!   in; request and response bodies stream in both directions, trailers included
//!   (gRPC's `grpc-status` travels in them).
//! * Hop-by-hop headers (RFC 9110 §7.6.1) are removed: `Connection` and every
//!   header it lists, `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`,
//!   `Upgrade` and `Trailer`. The same is done to the response. Two exceptions:
//!   `TE: trailers` is kept (gRPC needs it), and a WebSocket upgrade
//!   (`Connection: upgrade` with `Upgrade: websocket`) keeps those two headers: the
//!   upstream's `101 Switching Protocols` is passed back, and once both sides have
//!   switched the two connections are spliced, byte for byte, by a task of their
//!   own (outside any request timeout). For an `h2c`/`h2` upstream the handshake
//!   is sent as an HTTP/2 extended CONNECT, and a client that came over HTTP/2 is
//!   answered `200` ([`upgrade`](crate::upgrade), RFC 8441). Other upgrades (`h2c`,
//!   …) are stripped, so a client cannot smuggle a protocol switch past the routing
//!   rules.
//! * Forwarding headers are the proxy's: `x-forwarded-for` keeps the last
//!   [`trusted_hops`](HttpBackendBuilder::trusted_hops) entries the request came with
//!   (none by default: a client cannot claim another source) and appends the peer's
//!   IP from the [`routing_core::ClientAddr`] extension; `x-forwarded-proto` is the
//!   listener's [`Transport`] (`http` unless the server marks the request TLS), never
//!   the request's own claim; a client's `Forwarded` is dropped unless a hop is
//!   trusted. Without a `ClientAddr`, both `x-forwarded-*` headers are removed.
//!
//! # Connections
//!
//! hyper-util's pooled client: keep-alive connections with `TCP_NODELAY`
//! (HTTP/2 connections multiplex every request to one upstream),
//! kept idle for [30 s](HttpBackendBuilder::DEFAULT_POOL_IDLE_TIMEOUT), at most
//! [256](HttpBackendBuilder::DEFAULT_POOL_MAX_IDLE_PER_HOST) idle per upstream,
//! connects bounded by [5 s](HttpBackendBuilder::DEFAULT_CONNECT_TIMEOUT). A request
//! that meets a pooled connection the upstream closed before anything was written
//! is resent once on another connection by the pool itself (nothing reached the
//! upstream); every other failure is returned, for the layer's retry policy to
//! decide. `poll_ready` is always ready: connections are checked out per request.
//!
//! # Errors
//!
//! Failures are [`UpstreamError`]s whose [`kind`](UpstreamError::kind) is the
//! crate's one [`Failure`](crate::outcome::Failure) classification ([`outcome::classify`](crate::outcome::classify)),
//! which the retry and outlier logic read:
//!
//! | [`Failure`](crate::outcome::Failure) | when | safe to retry? |
//! |---|---|---|
//! | [`Connect`](crate::outcome::Failure::Connect) | no connection could be made (refused, unreachable, connect timeout) | yes: the upstream saw nothing |
//! | [`Reset`](crate::outcome::Failure::Reset) | the connection closed or was reset before a complete response head arrived | only for replayable requests: the upstream may have acted on it |
//! | [`Other`](crate::outcome::Failure::Other) | anything else: a malformed response, a request the client refuses to send, a failing request body | no |
//!
//! The response body is hyper's [`Incoming`]: an upstream that closes in the middle
//! of a body fails the *body*, after the response future has resolved. Such a
//! [`hyper::Error`] converts into an [`UpstreamError`] with the same classification
//! (`UpstreamError::from(err).kind()` is `Reset` for a truncated body).
//!
//! # Example
//!
//! ```no_run
//! use routing_tower::client::HttpBackend;
//! use tower::{Service, ServiceExt};
//!
//! # async fn run() -> Result<(), routing_tower::BoxError> {
//! let mut v1 = HttpBackend::new("127.0.0.1:9001".parse()?);
//! let req = http::Request::get("/hello")
//!     .header(http::header::HOST, "shop.example.com")
//!     .body(routing_tower::body::empty())?;
//! let resp = v1.ready().await?.call(req).await?;
//! println!("{}", resp.status());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::connect::{tls_connector, Connector};
use crate::tls::{TlsError, UpstreamTls};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::backends::Backends;
use crate::body::Body;
use crate::outcome::classify;
pub use crate::outcome::UpstreamError;

/// The client type every [`HttpBackend`] built by one builder with one protocol and
/// TLS identity shares.
type SharedClient = Client<Connector, Body>;

/// What the pools of one builder are keyed by: the protocol and the TLS identity
/// (inside one client, hyper-util keys connections by upstream address).
type PoolKey = (UpstreamProtocol, Option<[u8; 32]>);

/// A TLS identity and its rustls configuration (without ALPN).
type TlsSetting = ([u8; 32], Arc<rustls::ClientConfig>);

/// How a backend speaks to its upstream.
///
/// ```
/// use routing_tower::client::UpstreamProtocol;
/// assert_eq!("h2c".parse::<UpstreamProtocol>().unwrap(), UpstreamProtocol::H2c);
/// assert!("spdy".parse::<UpstreamProtocol>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (over TLS too, when the backend has [`UpstreamTls`]).
    #[default]
    Http1,
    /// HTTP/2 over plain TCP with prior knowledge (gRPC's usual in-cluster hop).
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`); without an [`UpstreamTls`] the public web roots
    /// verify the upstream.
    H2,
    /// Over TLS, what ALPN picks (`h2` preferred, `http/1.1`); over plain TCP, HTTP/1.1.
    Auto,
}

impl std::str::FromStr for UpstreamProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http1" | "http/1.1" => Ok(Self::Http1),
            "h2c" => Ok(Self::H2c),
            "h2" => Ok(Self::H2),
            "auto" => Ok(Self::Auto),
            other => Err(format!(
                "unknown upstream protocol {other:?} (expected http1, h2c, h2 or auto)"
            )),
        }
    }
}

/// The configuration's `backends[].protocol`, as the client speaks it.
///
/// ```
/// use routing_tower::client::UpstreamProtocol;
/// let t = routing_core::RouteTable::from_yaml("backends: [{name: g, protocol: h2c}]").unwrap();
/// let p = t.backends()[0].protocol().map(UpstreamProtocol::from);
/// assert_eq!(p, Some(UpstreamProtocol::H2c));
/// ```
impl From<routing_core::BackendProtocol> for UpstreamProtocol {
    fn from(p: routing_core::BackendProtocol) -> Self {
        match p {
            routing_core::BackendProtocol::Http1 => Self::Http1,
            routing_core::BackendProtocol::H2c => Self::H2c,
            routing_core::BackendProtocol::H2 => Self::H2,
            routing_core::BackendProtocol::Auto => Self::Auto,
        }
    }
}

/// Settings for [`HttpBackend`]s; every backend built by one builder shares one
/// connection pool (the pool is keyed by upstream address).
///
/// ```
/// use std::time::Duration;
/// use routing_tower::client::HttpBackend;
///
/// let builder = HttpBackend::builder()
///     .pool_idle_timeout(Duration::from_secs(30))
///     .pool_max_idle_per_host(64)
///     .connect_timeout(Duration::from_secs(1));
/// let v1 = builder.build("127.0.0.1:9001".parse().unwrap());
/// let v2 = builder.build("127.0.0.1:9002".parse().unwrap());
/// assert_eq!(v2.addr().port(), 9002);
/// # let _ = v1;
/// ```
#[derive(Clone)]
pub struct HttpBackendBuilder {
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    connect_timeout: Duration,
    trusted_hops: usize,
    protocol: UpstreamProtocol,
    /// The TLS settings, their identity, and the rustls configuration (no ALPN yet).
    tls: Option<(UpstreamTls, [u8; 32], Arc<rustls::ClientConfig>)>,
    clients: Arc<Mutex<HashMap<PoolKey, SharedClient>>>,
}

impl fmt::Debug for HttpBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBackendBuilder")
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("connect_timeout", &self.connect_timeout)
            .field("trusted_hops", &self.trusted_hops)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.as_ref().map(|t| &t.0))
            .finish_non_exhaustive()
    }
}

impl Default for HttpBackendBuilder {
    fn default() -> Self {
        Self {
            pool_idle_timeout: HttpBackendBuilder::DEFAULT_POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: HttpBackendBuilder::DEFAULT_POOL_MAX_IDLE_PER_HOST,
            connect_timeout: HttpBackendBuilder::DEFAULT_CONNECT_TIMEOUT,
            trusted_hops: 0,
            protocol: UpstreamProtocol::Http1,
            tls: None,
            clients: Default::default(),
        }
    }
}

impl HttpBackendBuilder {
    /// How long an idle pooled connection is kept: 30 s, below the 60–75 s idle
    /// timeouts common in upstream servers, so the proxy closes first.
    pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Idle connections kept per upstream: 256.
    pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 256;
    /// How long a TCP connect may take before it fails as
    /// [`Failure::Connect`](crate::outcome::Failure::Connect): 5 s (Envoy's default).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A builder with the defaults above.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long an idle pooled connection is kept before it is closed.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self.clients = Default::default();
        self
    }

    /// How many idle connections are kept per upstream; more are closed when
    /// they become idle.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self.clients = Default::default();
        self
    }

    /// How long a TCP connect may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.clients = Default::default();
        self
    }

    /// How many proxies in front of this one are trusted to have appended to
    /// `X-Forwarded-For` (default 0). With 0 the client's value is replaced by the
    /// peer's address, and a client's `Forwarded` header is dropped: a client cannot
    /// claim another source. With `n`, the last `n` entries the request arrived with
    /// are kept and the peer's address is appended.
    ///
    /// ```
    /// let b = routing_tower::client::HttpBackend::builder().trusted_hops(1);
    /// assert!(format!("{b:?}").contains("trusted_hops: 1"));
    /// ```
    pub fn trusted_hops(mut self, hops: usize) -> Self {
        self.trusted_hops = hops;
        self
    }

    /// The protocol of the backends built from now on (default
    /// [`Http1`](UpstreamProtocol::Http1)). Backends of different protocols never
    /// share connections.
    ///
    /// ```
    /// use routing_tower::client::{HttpBackend, UpstreamProtocol};
    /// let grpc = HttpBackend::builder().protocol(UpstreamProtocol::H2c).build("127.0.0.1:50051".parse().unwrap());
    /// assert_eq!(grpc.protocol(), UpstreamProtocol::H2c);
    /// ```
    pub fn protocol(mut self, protocol: UpstreamProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Speak TLS to the backends built from now on (`None`: plain TCP, unless the
    /// protocol is [`H2`](UpstreamProtocol::H2)). Backends share connections only with
    /// backends of the same TLS [identity](UpstreamTls::identity).
    pub fn tls(mut self, tls: Option<UpstreamTls>) -> Result<Self, TlsError> {
        self.tls = match tls {
            Some(t) => {
                let config = t.client_config(&[])?;
                let id = t.identity();
                Some((t, id, Arc::new(config)))
            }
            None => None,
        };
        Ok(self)
    }

    /// The TLS configuration in effect (with the web roots for a bare `H2`).
    fn effective_tls(&self) -> Result<Option<TlsSetting>, TlsError> {
        match (&self.tls, self.protocol) {
            (Some((_, id, config)), _) => Ok(Some((*id, Arc::clone(config)))),
            (None, UpstreamProtocol::H2) => {
                let t = UpstreamTls::new();
                Ok(Some((t.identity(), Arc::new(t.client_config(&[])?))))
            }
            (None, _) => Ok(None),
        }
    }

    fn client(&self) -> SharedClient {
        let tls = self.effective_tls().ok().flatten();
        let key = (self.protocol, tls.as_ref().map(|t| t.0));
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(key)
            .or_insert_with(|| {
                let mut tcp = HttpConnector::new();
                tcp.set_nodelay(true);
                tcp.set_connect_timeout(Some(self.connect_timeout));
                let tls = tls.map(|(_, config)| {
                    let mut config = (*config).clone();
                    config.alpn_protocols = match self.protocol {
                        UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
                        UpstreamProtocol::H2 | UpstreamProtocol::H2c => vec![b"h2".to_vec()],
                        UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                    };
                    let name = self.tls.as_ref().and_then(|(t, _, _)| {
                        t.server_name().and_then(|n| {
                            rustls::pki_types::ServerName::try_from(n.to_owned()).ok()
                        })
                    });
                    (tls_connector(config), name)
                });
                let mut builder = Client::builder(TokioExecutor::new());
                builder
                    .pool_idle_timeout(self.pool_idle_timeout)
                    .pool_max_idle_per_host(self.pool_max_idle_per_host)
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new());
                if matches!(self.protocol, UpstreamProtocol::H2c | UpstreamProtocol::H2) {
                    builder.http2_only(true);
                }
                builder.build(Connector { tcp, tls })
            })
            .clone()
    }

    /// A backend forwarding to `addr`, sharing this builder's connection pool.
    ///
    /// Needs no runtime to be built; requests must be sent from a Tokio runtime.
    pub fn build(&self, addr: SocketAddr) -> HttpBackend {
        let tls = self.tls.is_some() || self.protocol == UpstreamProtocol::H2;
        HttpBackend {
            client: self.client(),
            addr,
            authority: authority_of(addr),
            trusted_hops: self.trusted_hops,
            protocol: self.protocol,
            scheme: if tls { Scheme::HTTPS } else { Scheme::HTTP },
        }
    }

    /// One backend for every entry of `config.backends` that has an `address`, by
    /// name, in declaration order, all sharing this builder's pool. Backends without
    /// an address are left out (they may be served in-process).
    ///
    /// ```
    /// use routing_tower::client::HttpBackend;
    ///
    /// let config = routing_core::Config::from_yaml(r#"
    /// backends:
    ///   - { name: v1, address: "127.0.0.1:9001" }
    ///   - { name: v2, address: "127.0.0.1:9002" }
    ///   - { name: in-process }
    /// "#).unwrap();
    /// let backends = HttpBackend::builder().build_for_config(&config);
    /// let names: Vec<&str> = backends.iter().map(|(name, _)| name.as_str()).collect();
    /// assert_eq!(names, ["v1", "v2"]);
    /// ```
    pub fn build_for_config(&self, config: &routing_core::Config) -> Vec<(String, HttpBackend)> {
        config
            .backends
            .iter()
            .filter_map(|b| b.address.map(|addr| (b.name.clone(), self.build(addr))))
            .collect()
    }

    /// [`build_for_config`](Self::build_for_config) as a [`Backends`] set, ready
    /// for [`RoutingLayer::new`](crate::RoutingLayer::new) or
    /// [`Routing::dispatch`](crate::Routing::dispatch).
    ///
    /// ```
    /// use routing_tower::client::HttpBackend;
    ///
    /// let yaml = r#"
    /// backends:
    ///   - { name: v1, address: "127.0.0.1:9001" }
    ///   - { name: v2, address: "127.0.0.1:9002" }
    /// routes:
    ///   - name: all
    ///     rules: [{ backends: [{ name: v1, weight: 90 }, { name: v2, weight: 10 }] }]
    /// "#;
    /// let config = routing_core::Config::from_yaml(yaml).unwrap();
    /// let backends = HttpBackend::builder().backends_for_config(&config);
    /// assert!(backends.contains("v1") && backends.contains("v2"));
    /// let proxy = routing_tower::Routing::dispatch(routing_core::Router::new(config).unwrap(), backends);
    /// # let _ = proxy;
    /// ```
    ///
    /// A backend with `endpoints` gets an
    /// [`EndpointBalancer`](crate::endpoints::EndpointBalancer) over this builder
    /// (its protocol set from the backend's `protocol`).
    pub fn backends_for_config(&self, config: &routing_core::Config) -> Backends {
        let mut backends = Backends::new();
        for (name, backend) in self.build_for_config(config) {
            backends.insert(name, backend);
        }
        for b in config.backends.iter().filter(|b| !b.endpoints.is_empty()) {
            let mut builder = self.clone();
            if let Some(p) = b.protocol {
                builder = builder.protocol(p.into());
            }
            backends.insert(
                b.name.as_str(),
                crate::endpoints::EndpointBalancer::new(builder),
            );
        }
        backends
    }
}

/// A [`tower::Service`] forwarding requests to one upstream (HTTP/1.1, h2c, or TLS
/// with HTTP/2 or HTTP/1.1) with hyper-util's pooled client. Cloning is cheap: clones share the pool.
///
/// See the [module documentation](self) for what it changes in requests and
/// responses, and how errors are classified.
#[derive(Clone)]
pub struct HttpBackend {
    client: SharedClient,
    addr: SocketAddr,
    authority: Authority,
    trusted_hops: usize,
    protocol: UpstreamProtocol,
    scheme: Scheme,
}

impl fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBackend")
            .field("addr", &self.addr)
            .field("protocol", &self.protocol)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl HttpBackend {
    /// A backend forwarding to `addr` with a connection pool of its own and the
    /// [`HttpBackendBuilder`] defaults. Use [`HttpBackend::builder`] to share one
    /// pool between several backends.
    ///
    /// ```
    /// let v1 = routing_tower::client::HttpBackend::new("127.0.0.1:9001".parse().unwrap());
    /// assert_eq!(v1.addr().to_string(), "127.0.0.1:9001");
    /// ```
    pub fn new(addr: SocketAddr) -> Self {
        HttpBackendBuilder::new().build(addr)
    }

    /// A builder for backends sharing one pool.
    pub fn builder() -> HttpBackendBuilder {
        HttpBackendBuilder::new()
    }

    /// A [`Backends`] set with one backend per entry of `config.backends` that has
    /// an `address`, sharing one pool with the default settings (see
    /// [`HttpBackendBuilder::backends_for_config`]).
    pub fn for_config(config: &routing_core::Config) -> Backends {
        HttpBackendBuilder::new().backends_for_config(config)
    }

    /// The upstream address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The protocol it speaks to the upstream.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.protocol
    }

    /// Rewrites `req` the way [`call`](tower::Service::call) does before sending it.
    pub(crate) fn prepare(&self, req: &mut Request<Body>) {
        let uri = req.uri().clone();
        if !req.headers().contains_key(header::HOST) {
            // The authority without any `user:password@`.
            let host = uri.authority().map(|a| match a.port() {
                Some(port) => format!("{}:{port}", a.host()),
                None => a.host().to_owned(),
            });
            if let Some(value) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
                req.headers_mut().insert(header::HOST, value);
            }
        }

        let path_and_query = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        // Scheme, authority and path-and-query are all set and valid.
        if let Ok(new_uri) = Uri::from_parts(parts) {
            *req.uri_mut() = new_uri;
        }
        // HTTP/1.1 for the pool's HTTP/1 connections; an HTTP/2 connection sends
        // any request as HTTP/2.
        *req.version_mut() = Version::HTTP_11;

        remove_hop_by_hop(req.headers_mut());

        // Forwarding headers: what the peer sent is trusted only for the configured
        // number of hops; the protocol is the listener's, never the request's claim.
        let peer = req
            .extensions()
            .get::<routing_core::ClientAddr>()
            .map(|c| c.0.ip());
        let proto = match req.extensions().get::<Transport>() {
            Some(Transport::Tls) => "https",
            _ => "http",
        };
        let headers = req.headers_mut();
        let prior: Vec<String> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        headers.remove(X_FORWARDED_FOR);
        headers.remove(X_FORWARDED_PROTO);
        if self.trusted_hops == 0 {
            headers.remove(header::FORWARDED);
        }
        if let Some(ip) = peer {
            let keep = &prior[prior.len().saturating_sub(self.trusted_hops)..];
            let mut xff = keep.join(", ");
            if !xff.is_empty() {
                xff.push_str(", ");
            }
            xff.push_str(&ip.to_string());
            if let Ok(value) = HeaderValue::from_str(&xff) {
                headers.insert(X_FORWARDED_FOR, value);
            }
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
    }
}

/// The transport a request arrived on, as a request extension set by the server
/// that accepted it (absent means plain TCP). [`HttpBackend`] derives
/// `X-Forwarded-Proto` from it, never from the request's own URI or headers.
///
/// ```
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(routing_tower::client::Transport::Tls);
/// assert_eq!(req.extensions().get(), Some(&routing_tower::client::Transport::Tls));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// Plain TCP: `X-Forwarded-Proto: http`.
    #[default]
    Plain,
    /// TLS: `X-Forwarded-Proto: https`.
    Tls,
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

fn authority_of(addr: SocketAddr) -> Authority {
    // `SocketAddr`'s display form (`1.2.3.4:80`, `[::1]:80`) is a valid authority.
    addr.to_string()
        .parse()
        .unwrap_or_else(|_| Authority::from_static("127.0.0.1"))
}

/// The hop-by-hop headers of RFC 9110 §7.6.1 (plus the legacy `Keep-Alive` and
/// `Proxy-Connection`), which a proxy must not forward.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
];

/// Headers a `Connection` list can never remove: the ones that say where the request
/// goes, how long its body is, and who sent it (class of CVE-2022-31813, where a client
/// deleted the proxy's `X-Forwarded-For` this way).
const PROTECTED: [&str; 9] = [
    "host",
    "content-length",
    "content-type",
    "cookie",
    "authorization",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Whether `name` is one of [`HOP_BY_HOP`] (compared as the lowercase names they are).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TE
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == header::TRAILER
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

/// Removes `Connection`, every header it names (but the [`PROTECTED`] ones), and the
/// fixed hop-by-hop headers. The routing layer calls it on the way in, before routing
/// and filters, so a client's `Connection` list cannot delete a header a rule sets;
/// the client calls it again on the way out and on responses.
///
/// Kept: `TE: trailers` (the only `TE` HTTP/2 allows; gRPC requires it), and for a
/// WebSocket upgrade ([`crate::upgrade::is_websocket`]) `Upgrade: websocket` with
/// `Connection: upgrade`.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // The common case, none present, is one pass over the names with no hashing.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    let upgrade = crate::upgrade::is_websocket(headers)
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .filter(|name| !PROTECTED.contains(&name.as_str()))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(value) = upgrade {
        headers.insert(header::UPGRADE, value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

impl tower::Service<Request<Body>> for HttpBackend {
    type Response = Response<Incoming>;
    type Error = UpstreamError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pooled client takes any number of requests; a connection is
        // checked out (or made) when the request is sent.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        self.prepare(&mut req);
        // A WebSocket upgrade: the client's side of the switch, for the splice, and
        // the handshake in the upstream's protocol (`upgrade` module).
        let (downstream, handshake) = if crate::upgrade::is_websocket(req.headers()) {
            let up_h2 = matches!(self.protocol, UpstreamProtocol::H2c | UpstreamProtocol::H2);
            let handshake = crate::upgrade::to_upstream(&mut req, up_h2);
            (
                req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>(),
                handshake,
            )
        } else {
            (None, crate::upgrade::Handshake::default())
        };
        ResponseFuture {
            inner: self.client.request(req),
            addr: self.addr,
            downstream,
            handshake,
        }
    }
}

/// The future [`HttpBackend`] returns: the upstream's response head, with
/// hop-by-hop headers removed.
pub struct ResponseFuture {
    inner: hyper_util::client::legacy::ResponseFuture,
    addr: SocketAddr,
    downstream: Option<hyper::upgrade::OnUpgrade>,
    handshake: crate::upgrade::Handshake,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Incoming>, UpstreamError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let addr = self.addr;
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(mut resp)) => {
                remove_hop_by_hop(resp.headers_mut());
                if self.handshake.switched(&resp) {
                    if let Some(down) = self.downstream.take() {
                        crate::upgrade::splice(down, hyper::upgrade::on(&mut resp));
                        self.handshake.to_downstream(&mut resp);
                    }
                }
                Poll::Ready(Ok(resp))
            }
            Poll::Ready(Err(err)) => {
                let kind = classify(&err);
                Poll::Ready(Err(UpstreamError {
                    kind,
                    addr: Some(addr),
                    source: Box::new(err),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_lists_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.append("connection", HeaderValue::from_static("X-Other"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        for name in HOP_BY_HOP.into_iter().filter(|n| *n != "connection") {
            h.insert(name, HeaderValue::from_static("1"));
        }
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"], "only end-to-end headers must remain");
    }

    #[test]
    fn uri_is_rewritten_and_host_kept() {
        let backend = HttpBackend::new("127.0.0.1:9001".parse().expect("addr"));
        let mut req = Request::get("http://shop.example.com/a/b?x=1")
            .body(crate::body::empty())
            .expect("request");
        backend.prepare(&mut req);
        assert_eq!(req.uri(), "http://127.0.0.1:9001/a/b?x=1");
        assert_eq!(req.headers()[header::HOST], "shop.example.com");
        assert_eq!(req.version(), Version::HTTP_11);
        assert!(req.headers().get(X_FORWARDED_FOR).is_none());
    }

    #[test]
    fn forwarded_headers_appear_with_a_client_addr() {
        let req = || {
            let mut req = Request::get("https://claimed.example/")
                .header(X_FORWARDED_FOR, "192.0.2.66, 192.0.2.1")
                .header(X_FORWARDED_PROTO, "https")
                .header(header::FORWARDED, "for=192.0.2.99")
                .body(crate::body::empty())
                .expect("request");
            req.extensions_mut().insert(routing_core::ClientAddr(
                "198.51.100.7:5000".parse().expect("addr"),
            ));
            req
        };
        let addr = "[::1]:9001".parse().expect("addr");
        // Default: no hop trusted. The client's claims are replaced, the protocol is
        // the listener's (plain), not the absolute URI's.
        let mut r = req();
        HttpBackend::new(addr).prepare(&mut r);
        assert_eq!(r.uri(), "http://[::1]:9001/");
        assert_eq!(r.headers()[X_FORWARDED_FOR], "198.51.100.7");
        assert_eq!(r.headers()[X_FORWARDED_PROTO], "http");
        assert!(r.headers().get(header::FORWARDED).is_none());
        // One trusted hop: its entry is kept, the peer appended.
        let mut r = req();
        r.extensions_mut().insert(Transport::Tls);
        HttpBackend::builder()
            .trusted_hops(1)
            .build(addr)
            .prepare(&mut r);
        assert_eq!(r.headers()[X_FORWARDED_FOR], "192.0.2.1, 198.51.100.7");
        assert_eq!(r.headers()[X_FORWARDED_PROTO], "https");
        assert_eq!(r.headers()[header::FORWARDED], "for=192.0.2.99");
    }
}
