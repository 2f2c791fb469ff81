//! Shared pieces of the protocol tests: a proxy on 127.0.0.1 and upstream servers.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use routing_tower::server::{serve, ServerLimits};
use routing_tower::{Backends, Routing};
use tokio::net::TcpListener;

/// The layer dispatching to `backends`, served over HTTP/1.1 + h2c on 127.0.0.1.
pub async fn proxy(router: routing_core::Router, backends: Backends) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = Routing::dispatch(router, backends);
    tokio::spawn(serve(
        listener,
        svc,
        ServerLimits::default(),
        std::future::pending(),
    ));
    addr
}

/// `layer` dispatching to its backends, served over HTTP/1.1 + h2c on 127.0.0.1
/// (the caller keeps `layer` to read its stats).
pub async fn proxy_layer(layer: &routing_tower::RoutingLayer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = tower::Layer::layer(layer, routing_tower::NotFound);
    tokio::spawn(serve(
        listener,
        svc,
        ServerLimits::default(),
        std::future::pending(),
    ));
    addr
}

/// Serves `f` on 127.0.0.1 with hyper's auto builder (HTTP/1.1 and h2c), upgrades on.
pub async fn upstream<F, Fut, B>(f: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let f = f.clone();
            tokio::spawn(serve_one(stream, f));
        }
    });
    addr
}

async fn serve_one<F, Fut, B>(stream: tokio::net::TcpStream, f: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let svc = hyper::service::service_fn(move |req| {
        let f = f.clone();
        async move { Ok::<_, Infallible>(f(req).await) }
    });
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let _ = builder
        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc)
        .await;
}

/// An HTTP/2 (prior knowledge) client connection to `addr`.
pub async fn h2_client(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<routing_tower::Body> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

/// An HTTP/1.1 client connection to `addr`.
pub async fn h1_client(
    addr: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<routing_tower::Body> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// A router from YAML.
pub fn router(yaml: &str) -> routing_core::Router {
    routing_core::Router::from_yaml(yaml).unwrap()
}
