//! Serving a service over HTTP/1.1 and HTTP/2 on a TCP listener ([`serve`]: h2c with
//! prior knowledge or HTTP/1.1, told apart by the connection preface) or a TLS one
//! ([`serve_tls`]: ALPN `h2` or `http/1.1`), with the limits a proxy in front of real
//! traffic needs: a deadline for the request head, a cap on connections held at
//! once, the peer's address on every request. WebSocket upgrades are served, over
//! HTTP/1.1 `Upgrade` and over HTTP/2 extended CONNECT (RFC 8441, enabled on every
//! HTTP/2 connection): see [`upgrade`](crate::upgrade).
//!
//! [`serve`] is what the `reverse_proxy` example runs; use it to put a [`Routing`]
//! service (or any tower service) on a socket without repeating the accept loop.
//!
//! | limit | default | what it stops |
//! |---|---|---|
//! | [`header_read_timeout`](ServerLimits::header_read_timeout) | 10 s (nginx's `client_header_timeout` is 60 s) | half-sent request heads holding connections forever (slowloris) |
//! | [`max_connections`](ServerLimits::max_connections) | 10 000 | running out of memory and descriptors: beyond it accepting waits and the kernel's backlog queues |
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use routing_tower::server::{serve, ServerLimits};
//! let router = routing_core::Router::from_yaml("{}").unwrap();
//! let svc = routing_tower::Routing::dispatch(router, routing_tower::Backends::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, svc, ServerLimits::default(), std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! [`Routing`]: crate::Routing

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryFutureExt as _;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use routing_core::ClientAddr;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt as _};

use crate::body::{self, BoxError};
use crate::client::Transport;

/// The limits [`serve`] holds clients to.
///
/// ```
/// let limits = routing_tower::server::ServerLimits::default();
/// assert_eq!(limits.header_read_timeout, Some(std::time::Duration::from_secs(10)));
/// assert_eq!(limits.max_connections, 10_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a client may take to send a request head, on a new connection and
    /// between keep-alive requests (hyper's timer); `None` for no limit. Past it the
    /// connection is closed.
    pub header_read_timeout: Option<Duration>,
    /// Client connections held at once; beyond it `serve` stops accepting until one
    /// closes (the kernel's listen backlog holds the newcomers).
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(10)),
            max_connections: 10_000,
        }
    }
}

/// Serves `service` on `listener` over HTTP/1.1 or h2c until `shutdown` resolves; each request
/// carries its peer's address ([`ClientAddr`], for `X-Forwarded-For` and source-IP
/// stickiness). Connections already accepted keep running after `shutdown`; accept
/// errors (out of descriptors) back off for 50 ms instead of spinning.
///
/// A service error closes that connection (a [`Routing`](crate::Routing) service
/// never fails: it answers errors as responses).
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    serve_with(listener, None, service, limits, shutdown).await;
}

/// [`serve`] over TLS: each connection's handshake (bounded by the header read
/// timeout) picks HTTP/2 or HTTP/1.1 by ALPN; requests carry
/// [`Transport::Tls`], so upstreams see
/// `X-Forwarded-Proto: https`. A failed handshake closes that connection only.
pub async fn serve_tls<S, B>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    service: S,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    serve_with(listener, Some(acceptor), service, limits, shutdown).await;
}

async fn serve_with<S, B>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: S,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let accept = async {
        // Bounded by the listener: it ends when the semaphore is closed (never) or
        // with the `shutdown` future below.
        loop {
            let Ok(slot) = Arc::clone(&connections).acquire_owned().await else {
                break;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let svc = service.clone();
            let transport = if tls.is_some() {
                Transport::Tls
            } else {
                Transport::Plain
            };
            let per_request = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                crate::upgrade::normalize_extended_connect(&mut req);
                if transport == Transport::Tls {
                    req.extensions_mut().insert(transport);
                }
                svc.clone()
                    .oneshot(req)
                    .map_ok(|res| res.map(body::boxed))
                    .map_err(into_box_error::<S::Error>)
            });
            let conn = Conn {
                stream,
                tls: tls.clone(),
                limits,
                peer,
            };
            tokio::spawn(async move {
                let _slot = slot;
                conn.run(per_request).await;
            });
        }
    };
    tokio::select! {
        () = accept => {}
        () = shutdown => {}
    }
}

/// One accepted connection, before its handshake.
struct Conn {
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ServerLimits,
    peer: std::net::SocketAddr,
}

impl Conn {
    /// The TLS handshake (if any), then HTTP/1.1 or HTTP/2 until the connection ends.
    async fn run<Svc>(self, svc: Svc)
    where
        Svc: hyper::service::Service<
                Request<Incoming>,
                Response = Response<body::Body>,
                Error = BoxError,
            > + Send
            + 'static,
        Svc::Future: Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        {
            let mut h1 = builder.http1();
            h1.timer(TokioTimer::new());
            if let Some(t) = self.limits.header_read_timeout {
                h1.header_read_timeout(t);
            }
        }
        // RFC 8441: WebSocket over HTTP/2 (`upgrade` module).
        builder
            .http2()
            .timer(TokioTimer::new())
            .enable_connect_protocol();
        let peer = self.peer;
        let result = match self.tls {
            None => {
                builder
                    .serve_connection_with_upgrades(TokioIo::new(self.stream), svc)
                    .await
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(self.stream);
                let tls = match self.limits.header_read_timeout {
                    Some(t) => match tokio::time::timeout(t, handshake).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    },
                    None => handshake.await,
                };
                let tls = match tls {
                    Ok(s) => s,
                    Err(err) => {
                        tracing::debug!(%peer, %err, "TLS handshake failed");
                        return;
                    }
                };
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    builder = builder.http2_only();
                }
                builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await
            }
        };
        if let Err(err) = result {
            tracing::debug!(%peer, %err, "connection ended with an error");
        }
    }
}

/// `e` as a [`BoxError`] (a named function: a closure here trips rustc's
/// higher-ranked inference inside the spawned future).
fn into_box_error<E: Into<BoxError>>(e: E) -> BoxError {
    e.into()
}
