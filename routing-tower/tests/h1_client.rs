//! The client tests run against both upstream clients, hyper-util's pooled
//! [`HttpBackend`] and the in-task [`H1Backend`], over real servers on 127.0.0.1
//! ephemeral ports; then the `H1Backend`'s own limits (requests and age per
//! connection, per-upstream cap, stale pooled connections, chunked bodies).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use routing_tower::client::{HttpBackend, UpstreamError};
use routing_tower::h1::H1Backend;
use routing_tower::outcome::{classify, Failure};
use routing_tower::{body, Body, BoxError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// Every exchange is bounded: a hung upstream fails the test instead of hanging CI.
const LIMIT: Duration = Duration::from_secs(10);

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, UpstreamError>> + Send>>;

/// The two clients under one interface: the response body boxed.
trait Client: Clone + Send + Sync + 'static {
    fn build(addr: SocketAddr, trusted_hops: usize) -> Self;
    fn send(&self, req: Request<Body>) -> Answer;
}

impl Client for HttpBackend {
    fn build(addr: SocketAddr, trusted_hops: usize) -> Self {
        HttpBackend::builder()
            .trusted_hops(trusted_hops)
            .build(addr)
    }
    fn send(&self, req: Request<Body>) -> Answer {
        // Both clients are always ready (connections are checked out per call).
        let fut = tower::Service::call(&mut self.clone(), req);
        Box::pin(async move { Ok(fut.await?.map(body::boxed)) })
    }
}

impl Client for H1Backend {
    fn build(addr: SocketAddr, trusted_hops: usize) -> Self {
        H1Backend::builder().trusted_hops(trusted_hops).build(addr)
    }
    fn send(&self, req: Request<Body>) -> Answer {
        // Both clients are always ready (connections are checked out per call).
        let fut = tower::Service::call(&mut self.clone(), req);
        Box::pin(async move { Ok(fut.await?.map(body::boxed)) })
    }
}

async fn send<C: Client>(c: &C, req: Request<Body>) -> Result<Response<Body>, UpstreamError> {
    tokio::time::timeout(LIMIT, c.send(req))
        .await
        .expect("the upstream answers within the limit")
}

async fn read_body(resp: Response<Body>) -> Result<(Bytes, Option<HeaderMap>), BoxError> {
    let collected = tokio::time::timeout(LIMIT, resp.into_body().collect())
        .await
        .expect("the body ends within the limit")?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

/// What the upstream saw of one request.
#[derive(Debug)]
struct Seen {
    method: Method,
    uri: http::Uri,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
}

struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: mpsc::UnboundedReceiver<Seen>,
}

/// A hyper HTTP/1.1 server that records each request and answers `200 upstream`
/// (16 KiB of `x` for `/big`, nothing for `HEAD` and `/empty`) with a few hop-by-hop
/// headers the proxy must strip.
async fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, seen) = mpsc::unbounded_channel();
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let content = match parts.uri.path() {
                        "/big" => Bytes::from(vec![b'x'; 16 * 1024]),
                        "/empty" => Bytes::new(),
                        _ => Bytes::from_static(b"upstream"),
                    };
                    let status = if parts.uri.path() == "/empty" {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::OK
                    };
                    let _ = tx.send(Seen {
                        method: parts.method,
                        uri: parts.uri,
                        version: parts.version,
                        headers: parts.headers,
                        body,
                    });
                    let resp = Response::builder()
                        .status(status)
                        .header("connection", "x-resp-hop")
                        .header("x-resp-hop", "1")
                        .header("keep-alive", "timeout=5")
                        .header("trailer", "x-checksum")
                        .header("x-resp-kept", "1")
                        .body(Full::new(content))
                        .expect("response");
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        accepted,
        seen,
    }
}

/// A raw TCP upstream: for each request head it reads it writes `reply`; after
/// `per_conn` requests it closes the connection (without saying so in the reply).
async fn raw_upstream(reply: &'static [u8], per_conn: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                for _ in 0..per_conn {
                    // One head per request (these tests send no bodies).
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(0, |p| p + 4);
                    buf.drain(..end);
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

// ---------------------------------------------------------------------------
// The shared client tests, generic over the client.

async fn forwards_method_path_query_body_and_headers<C: Client>() {
    let mut up = upstream().await;
    let c = C::build(up.addr, 0);
    let req = Request::post("/api/items?id=7&x=a%20b")
        .header(header::HOST, "shop.example.com")
        .header("x-custom", "one")
        .header("x-custom", "two")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body::full("hello upstream"))
        .expect("request");
    let resp = send(&c, req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let (text, _) = read_body(resp).await.expect("body");
    assert_eq!(&text[..], b"upstream");
    let seen = up.seen.recv().await.expect("the upstream saw the request");
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.uri, "/api/items?id=7&x=a%20b");
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.headers[header::HOST], "shop.example.com");
    let custom: Vec<_> = seen.headers.get_all("x-custom").iter().collect();
    assert_eq!(custom, ["one", "two"]);
    assert_eq!(seen.headers[header::CONTENT_TYPE], "text/plain");
    assert_eq!(&seen.body[..], b"hello upstream");
    assert!(seen.headers.get("x-forwarded-for").is_none());
}

async fn absolute_uri_without_host_gives_host<C: Client>() {
    let mut up = upstream().await;
    let c = C::build(up.addr, 0);
    let req = Request::get("http://user:secret@api.example.com:8080/v1")
        .body(body::empty())
        .expect("request");
    let resp = send(&c, req).await.expect("response");
    read_body(resp).await.expect("body");
    let seen = up.seen.recv().await.expect("seen");
    assert_eq!(seen.uri, "/v1");
    assert_eq!(seen.headers[header::HOST], "api.example.com:8080");
}

async fn hop_by_hop_headers_are_stripped_both_ways<C: Client>() {
    let mut up = upstream().await;
    let c = C::build(up.addr, 0);
    let req = Request::get("/")
        .header(header::HOST, "h")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers, deflate")
        .header("upgrade", "h2c")
        .header("trailer", "x-checksum")
        .header("x-end-to-end", "kept")
        .body(body::empty())
        .expect("request");
    let resp = send(&c, req).await.expect("response");
    for name in ["connection", "x-resp-hop", "keep-alive", "trailer"] {
        assert!(resp.headers().get(name).is_none(), "response {name}");
    }
    assert_eq!(resp.headers()["x-resp-kept"], "1");
    read_body(resp).await.expect("body");
    let seen = up.seen.recv().await.expect("seen");
    for name in [
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "trailer",
    ] {
        assert!(seen.headers.get(name).is_none(), "request {name}");
    }
    assert_eq!(seen.headers["te"], "trailers");
    if let Some(conn) = seen.headers.get("connection") {
        assert!(!conn.to_str().unwrap_or("").contains("x-hop"), "{conn:?}");
    }
    assert_eq!(seen.headers["x-end-to-end"], "kept");
}

async fn forwarded_for_and_proto<C: Client>() {
    let mut up = upstream().await;
    for (hops, want) in [(0, "198.51.100.7"), (1, "192.0.2.1, 198.51.100.7")] {
        let c = C::build(up.addr, hops);
        let mut req = Request::get("/")
            .header(header::HOST, "h")
            .header("x-forwarded-for", "192.0.2.1")
            .body(body::empty())
            .expect("request");
        req.extensions_mut().insert(routing_core::ClientAddr(
            "198.51.100.7:50000".parse().expect("addr"),
        ));
        let resp = send(&c, req).await.expect("response");
        read_body(resp).await.expect("body");
        let seen = up.seen.recv().await.expect("seen");
        assert_eq!(seen.headers["x-forwarded-for"], want, "{hops} hops");
        assert_eq!(seen.headers["x-forwarded-proto"], "http");
    }
}

async fn connection_refused_is_a_connect_error<C: Client>() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let c = C::build(addr, 0);
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&c, req).await.expect_err("nothing listens");
    assert_eq!(err.kind(), Failure::Connect, "{err}");
    assert_eq!(err.addr(), Some(addr));
}

async fn closing_before_a_response_is_a_reset<C: Client>() {
    let (addr, _) = raw_upstream(b"", 1).await;
    let c = C::build(addr, 0);
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&c, req).await.expect_err("no response");
    assert_eq!(err.kind(), Failure::Reset, "{err:?}");
}

async fn closing_mid_head_is_a_reset<C: Client>() {
    let (addr, _) = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Par", 1).await;
    let c = C::build(addr, 0);
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&c, req).await.expect_err("truncated head");
    assert_eq!(err.kind(), Failure::Reset, "{err:?}");
}

async fn closing_mid_body_fails_the_body_as_a_reset<C: Client>() {
    let (addr, _) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..",
        1,
    )
    .await;
    let c = C::build(addr, 0);
    let req = Request::get("/").body(body::empty()).expect("request");
    let resp = send(&c, req).await.expect("the head is complete");
    let err = read_body(resp).await.expect_err("the body is truncated");
    assert_eq!(classify(&*err), Failure::Reset, "{err:?}");
}

async fn malformed_response_is_other<C: Client>() {
    let (addr, _) = raw_upstream(b"this is not http\r\n\r\n", 1).await;
    let c = C::build(addr, 0);
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&c, req).await.expect_err("garbage");
    assert_eq!(err.kind(), Failure::Other, "{err:?}");
}

async fn keep_alive_connections_are_reused<C: Client>() {
    let mut up = upstream().await;
    let c = C::build(up.addr, 0);
    for i in 0..200 {
        let req = Request::get(format!("/n/{i}"))
            .header(header::HOST, "h")
            .body(body::empty())
            .expect("request");
        let resp = send(&c, req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        read_body(resp).await.expect("body");
    }
    let mut n = 0;
    while up.seen.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 200);
    let accepted = up.accepted.load(Ordering::SeqCst);
    assert!(accepted <= 2, "{accepted} connections for 200 requests");
}

async fn concurrent_requests_all_succeed<C: Client>() {
    let up = upstream().await;
    let c = C::build(up.addr, 0);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let c = c.clone();
        tasks.spawn(async move {
            let path = if i % 2 == 0 {
                "/big".to_owned()
            } else {
                format!("/c/{i}")
            };
            let req = Request::get(path).body(body::empty()).expect("request");
            let resp = send(&c, req).await.expect("response");
            (i, read_body(resp).await.expect("body").0)
        });
    }
    let mut ok = 0;
    while let Some(res) = tasks.join_next().await {
        let (i, text) = res.expect("task");
        if i % 2 == 0 {
            assert_eq!(text.len(), 16 * 1024);
            assert!(text.iter().all(|b| *b == b'x'));
        } else {
            assert_eq!(&text[..], b"upstream");
        }
        ok += 1;
    }
    assert_eq!(ok, 64);
}

async fn head_and_no_content_have_no_body_and_keep_the_connection<C: Client>() {
    let up = upstream().await;
    let c = C::build(up.addr, 0);
    for _ in 0..3 {
        let req = Request::head("/big").body(body::empty()).expect("request");
        let resp = send(&c, req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(read_body(resp).await.expect("body").0.len(), 0);
        let req = Request::get("/empty").body(body::empty()).expect("request");
        let resp = send(&c, req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(read_body(resp).await.expect("body").0.len(), 0);
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

async fn streamed_request_body_arrives_whole<C: Client>() {
    let mut up = upstream().await;
    let c = C::build(up.addr, 0);
    let frames = futures_util::stream::iter(
        ["abc", "", "def", "ghi"]
            .into_iter()
            .map(|s| Ok::<_, BoxError>(Frame::data(Bytes::from_static(s.as_bytes())))),
    );
    let req = Request::put("/upload")
        .body(body::boxed(StreamBody::new(frames)))
        .expect("request");
    let resp = send(&c, req).await.expect("response");
    read_body(resp).await.expect("body");
    let seen = up.seen.recv().await.expect("seen");
    assert_eq!(&seen.body[..], b"abcdefghi");
}

async fn chunked_response_with_trailers<C: Client>() {
    let (addr, accepted) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-checksum: 42\r\n\r\n",
        10,
    )
    .await;
    let c = C::build(addr, 0);
    for _ in 0..3 {
        let req = Request::get("/").body(body::empty()).expect("request");
        let resp = send(&c, req).await.expect("response");
        assert!(resp.headers().get("transfer-encoding").is_none());
        let (text, trailers) = read_body(resp).await.expect("body");
        assert_eq!(&text[..], b"hello world");
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers["x-checksum"], "42");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection is reused"
    );
}

async fn a_pooled_connection_the_upstream_closed_is_not_a_failure<C: Client>() {
    // Each connection answers one request and closes without `Connection: close`.
    let (addr, accepted) = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1).await;
    let c = C::build(addr, 0);
    for i in 0..10 {
        let req = Request::get("/").body(body::empty()).expect("request");
        let resp = send(&c, req)
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
        assert_eq!(&read_body(resp).await.expect("body").0[..], b"ok");
        // Sometimes give the close time to arrive, sometimes not.
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10);
}

async fn through_the_routing_layer<C: Client>() {
    let up1 = upstream().await;
    let up2 = upstream().await;
    let config = routing_core::Config::from_yaml(
        "backends: [{name: v1}, {name: v2}]\nroutes:\n  - name: all\n    rules: [{ backends: [{ name: v1, weight: 50 }, { name: v2, weight: 50 }] }]\n",
    )
    .expect("config");
    let backends = routing_tower::Backends::new()
        .with("v1", SvcOf(C::build(up1.addr, 0)))
        .with("v2", SvcOf(C::build(up2.addr, 0)));
    let svc = routing_tower::Routing::dispatch(
        routing_core::Router::new(config).expect("router"),
        backends,
    );
    for i in 0..40 {
        let req = Request::get(format!("/r/{i}"))
            .header(header::HOST, "shop.example.com")
            .body(body::empty())
            .expect("request");
        let resp = tokio::time::timeout(LIMIT, svc.clone().oneshot(req))
            .await
            .expect("in time")
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&text[..], b"upstream");
    }
    let (a, b) = (
        up1.accepted.load(Ordering::SeqCst),
        up2.accepted.load(Ordering::SeqCst),
    );
    assert!(a >= 1 && b >= 1, "both upstreams get traffic: {a} {b}");
    assert!(a <= 2 && b <= 2, "connections are reused: {a} {b}");
}

// The layer's end-to-end tests that run over real upstreams (tests/layer.rs uses
// HttpBackend), generic over the client: a real proxy server in front, the
// routing layer, the client under test behind it.

fn five_sigma(n: u64, p: f64) -> f64 {
    5.0 * (n as f64 * p * (1.0 - p)).sqrt()
}

async fn layer_split_90_10_through_a_real_proxy<C: Client>() {
    use routing_testkit::http as kit;
    let (u1, u2) = (kit::upstream("v1").await, kit::upstream("v2").await);
    let yaml = "backends: [{name: v1}, {name: v2}]\nroutes:\n  - name: shop\n    rules:\n      - backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]\n";
    let router = routing_core::Router::from_yaml(yaml).expect("config");
    let backends = routing_tower::Backends::new()
        .with("v1", SvcOf(C::build(u1.addr(), 0)))
        .with("v2", SvcOf(C::build(u2.addr(), 0)));
    let proxy = kit::serve(routing_tower::Routing::dispatch(router, backends)).await;
    let c = kit::client();
    let (n, workers) = (4_000u64, 16u64);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (c, addr) = (c.clone(), proxy.addr);
        tasks.spawn(async move {
            let mut v2 = 0u64;
            for _ in 0..n / workers {
                let a = kit::get(&c, addr, "/", &[]).await;
                assert_eq!(a.status, StatusCode::OK, "{}", a.body);
                v2 += u64::from(a.body == "v2");
            }
            v2
        });
    }
    let mut v2 = 0;
    while let Some(r) = tasks.join_next().await {
        v2 += r.expect("worker");
    }
    let expected = n as f64 * 0.1;
    assert!(
        (v2 as f64 - expected).abs() <= five_sigma(n, 0.1),
        "v2 got {v2} of {n}"
    );
    assert_eq!(
        u1.hits() + u2.hits(),
        n,
        "every request reached one upstream once"
    );
}

async fn layer_retries_hide_a_flapping_upstream<C: Client>() {
    use routing_testkit::http as kit;
    let flappy = kit::upstream_with(
        "v1",
        Arc::new(|n, _| {
            if n % 2 == 1 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }),
    )
    .await;
    let healthy = kit::upstream("v2").await;
    let yaml = "backends: [{name: v1}, {name: v2}]\nroutes:\n  - name: api\n    rules:\n      - backends: [{name: v1}, {name: v2}]\n        retry: {attempts: 2, on: [5xx], backoff: 1ms, budget_percent: 40, budget_min_per_second: 1}\n";
    let layer = routing_tower::RoutingLayer::new(
        routing_core::Router::from_yaml(yaml).expect("config"),
        routing_tower::Backends::new()
            .with("v1", SvcOf(C::build(flappy.addr(), 0)))
            .with("v2", SvcOf(C::build(healthy.addr(), 0))),
    );
    let proxy = kit::serve(tower::Layer::layer(&layer, routing_tower::NotFound)).await;
    let c = kit::client();
    let n = 1_000u64;
    for _ in 0..n {
        let a = kit::get(&c, proxy.addr, "/", &[]).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "the client never sees the flap: {}",
            a.body
        );
    }
    let retries: u64 = layer.stats().iter().map(|(_, s)| s.retries).sum();
    assert_eq!(flappy.hits() + healthy.hits(), n + retries);
    assert!(retries > n / 8, "retries happened: {retries}");
}

/// A [`Client`] as a tower service (for the layer's `Backends`).
#[derive(Clone)]
struct SvcOf<C>(C);

impl<C: Client> tower::Service<Request<Body>> for SvcOf<C> {
    type Response = Response<Body>;
    type Error = UpstreamError;
    type Future = Answer;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), UpstreamError>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: Request<Body>) -> Answer {
        self.0.send(req)
    }
}

/// Each shared test once per client.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod hyper_util_client {
            use super::*;
            $(#[tokio::test] async fn $name() { super::$name::<HttpBackend>().await })*
        }
        mod in_task_h1_client {
            use super::*;
            $(#[tokio::test] async fn $name() { super::$name::<H1Backend>().await })*
        }
    };
}

both!(
    forwards_method_path_query_body_and_headers,
    absolute_uri_without_host_gives_host,
    hop_by_hop_headers_are_stripped_both_ways,
    forwarded_for_and_proto,
    connection_refused_is_a_connect_error,
    closing_before_a_response_is_a_reset,
    closing_mid_head_is_a_reset,
    closing_mid_body_fails_the_body_as_a_reset,
    malformed_response_is_other,
    keep_alive_connections_are_reused,
    concurrent_requests_all_succeed,
    head_and_no_content_have_no_body_and_keep_the_connection,
    streamed_request_body_arrives_whole,
    chunked_response_with_trailers,
    a_pooled_connection_the_upstream_closed_is_not_a_failure,
    through_the_routing_layer,
);

/// The layer tests on a multi-thread runtime, once per client.
macro_rules! both_multi_thread {
    ($($name:ident),* $(,)?) => {
        mod layer_over_hyper_util_client {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name::<HttpBackend>().await })*
        }
        mod layer_over_in_task_h1_client {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name::<H1Backend>().await })*
        }
    };
}

both_multi_thread!(
    layer_split_90_10_through_a_real_proxy,
    layer_retries_hide_a_flapping_upstream,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_concurrent_on_a_multi_thread_runtime() {
    concurrent_requests_all_succeed::<H1Backend>().await;
}

// ---------------------------------------------------------------------------
// H1Backend's own limits.

async fn get_ok(c: &H1Backend, path: &str) {
    let req = Request::get(path).body(body::empty()).expect("request");
    let resp = send(c, req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    read_body(resp).await.expect("body");
}

#[tokio::test]
async fn h1_max_requests_per_connection_closes_after_n() {
    let up = upstream().await;
    let c = H1Backend::builder()
        .max_requests_per_connection(10)
        .build(up.addr);
    for i in 0..30 {
        get_ok(&c, &format!("/{i}")).await;
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn h1_max_connection_age_stops_reuse() {
    let up = upstream().await;
    let c = H1Backend::builder()
        .max_connection_age(Duration::from_millis(50))
        .build(up.addr);
    get_ok(&c, "/a").await;
    get_ok(&c, "/b").await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1, "young: reused");
    tokio::time::sleep(Duration::from_millis(80)).await;
    get_ok(&c, "/c").await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2, "old: replaced");
}

#[tokio::test]
async fn h1_idle_timeout_closes_pooled_connections() {
    let up = upstream().await;
    let c = H1Backend::builder()
        .idle_timeout(Duration::from_millis(50))
        .build(up.addr);
    get_ok(&c, "/a").await;
    assert_eq!(c.open_connections(), 1, "pooled");
    tokio::time::sleep(Duration::from_millis(80)).await;
    get_ok(&c, "/b").await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(c.open_connections(), 1, "the expired one was closed");
}

#[tokio::test]
async fn h1_connection_cap_per_upstream() {
    let up = upstream().await;
    let c = H1Backend::builder()
        .max_connections_per_upstream(1)
        .build(up.addr);
    // A response whose body is not read holds its connection.
    let req = Request::get("/big").body(body::empty()).expect("request");
    let held = send(&c, req).await.expect("response");
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&c, req).await.expect_err("over the cap");
    assert_eq!(err.kind(), Failure::Connect, "{err:?}");
    assert_eq!(c.open_connections(), 1);
    // Reading the body to its end frees the connection for the next request.
    read_body(held).await.expect("body");
    get_ok(&c, "/").await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    // Dropping a body early closes its connection and frees the slot.
    let req = Request::get("/big").body(body::empty()).expect("request");
    drop(send(&c, req).await.expect("response"));
    assert_eq!(c.open_connections(), 0);
    get_ok(&c, "/").await;
}

#[tokio::test]
async fn h1_idle_caps_bound_the_pool() {
    let up = upstream().await;
    let c = H1Backend::builder().max_idle_per_upstream(2).build(up.addr);
    // Five responses open at once: five connections; only two stay idle after.
    let mut held = Vec::new();
    for _ in 0..5 {
        let req = Request::get("/big").body(body::empty()).expect("request");
        held.push(send(&c, req).await.expect("response"));
    }
    assert_eq!(c.open_connections(), 5);
    for resp in held {
        read_body(resp).await.expect("body");
    }
    assert_eq!(c.open_connections(), 2);
}
