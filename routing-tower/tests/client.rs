//! `HttpBackend` against real servers on 127.0.0.1 ephemeral ports.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use routing_tower::client::{HttpBackend, UpstreamError};
use routing_tower::outcome::Failure;
use routing_tower::{body, BoxError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};

/// Every test is bounded: a hung upstream fails the test instead of hanging CI.
const LIMIT: Duration = Duration::from_secs(10);

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
/// with a few hop-by-hop headers the proxy must strip.
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
                    let _ = tx.send(Seen {
                        method: parts.method,
                        uri: parts.uri,
                        version: parts.version,
                        headers: parts.headers,
                        body,
                    });
                    let resp = Response::builder()
                        .header("connection", "x-resp-hop")
                        .header("x-resp-hop", "1")
                        .header("keep-alive", "timeout=5")
                        .header("trailer", "x-checksum")
                        .header("x-resp-kept", "1")
                        .body(Full::new(Bytes::from_static(b"upstream")))
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

/// A raw TCP upstream that reads one request head, writes `reply` and closes.
async fn broken_upstream(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
        }
    });
    addr
}

async fn send(
    backend: &mut HttpBackend,
    req: Request<routing_tower::Body>,
) -> Result<Response<Incoming>, UpstreamError> {
    tokio::time::timeout(LIMIT, backend.ready().await?.call(req))
        .await
        .expect("the upstream answers within the limit")
}

#[test]
fn backend_is_clone_send_sync_static() {
    fn assert_bounds<T: Clone + Send + Sync + 'static>() {}
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_bounds::<HttpBackend>();
    assert_error::<UpstreamError>();
}

#[tokio::test]
async fn forwards_method_path_query_body_and_headers_keeping_host() {
    let mut up = upstream().await;
    let mut backend = HttpBackend::new(up.addr);
    let req = Request::post("/api/items?id=7&x=a%20b")
        .header(header::HOST, "shop.example.com")
        .header("x-custom", "one")
        .header("x-custom", "two")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body::full("hello upstream"))
        .expect("request");
    let resp = send(&mut backend, req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&text[..], b"upstream");

    let seen = up.seen.recv().await.expect("the upstream saw the request");
    assert_eq!(seen.method, Method::POST);
    assert_eq!(
        seen.uri, "/api/items?id=7&x=a%20b",
        "origin-form path and query must be forwarded verbatim"
    );
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(
        seen.headers[header::HOST],
        "shop.example.com",
        "the client's Host must be kept"
    );
    let custom: Vec<_> = seen.headers.get_all("x-custom").iter().collect();
    assert_eq!(custom, ["one", "two"], "repeated headers must all arrive");
    assert_eq!(seen.headers[header::CONTENT_TYPE], "text/plain");
    assert_eq!(&seen.body[..], b"hello upstream");
    assert!(
        seen.headers.get("x-forwarded-for").is_none(),
        "no x-forwarded-for without a ClientAddr"
    );
}

#[tokio::test]
async fn absolute_uri_without_host_gives_host_from_the_uri() {
    let mut up = upstream().await;
    let mut backend = HttpBackend::new(up.addr);
    let req = Request::get("http://user:secret@api.example.com:8080/v1")
        .body(body::empty())
        .expect("request");
    let resp = send(&mut backend, req).await.expect("response");
    let _ = resp.into_body().collect().await;
    let seen = up.seen.recv().await.expect("seen");
    assert_eq!(seen.uri, "/v1");
    assert_eq!(
        seen.headers[header::HOST],
        "api.example.com:8080",
        "Host must come from the URI's host and port, without user info"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let mut up = upstream().await;
    let mut backend = HttpBackend::new(up.addr);
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
    let resp = send(&mut backend, req).await.expect("response");
    for name in ["connection", "x-resp-hop", "keep-alive", "trailer"] {
        assert!(
            resp.headers().get(name).is_none(),
            "response header {name} must be stripped"
        );
    }
    assert_eq!(resp.headers()["x-resp-kept"], "1");
    let _ = resp.into_body().collect().await;

    let seen = up.seen.recv().await.expect("seen");
    for name in [
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "trailer",
    ] {
        assert!(
            seen.headers.get(name).is_none(),
            "request header {name} must be stripped, got {:?}",
            seen.headers.get(name)
        );
    }
    // `TE` is cut down to `trailers`, the one value gRPC and HTTP/2 allow.
    assert_eq!(seen.headers["te"], "trailers");
    // hyper's client may add `connection: keep-alive` itself; nothing the client sent
    // in `Connection` may survive.
    if let Some(conn) = seen.headers.get("connection") {
        assert!(
            !conn.to_str().unwrap_or("").contains("x-hop"),
            "the client's Connection header must not be forwarded: {conn:?}"
        );
    }
    assert_eq!(seen.headers["x-end-to-end"], "kept");
}

#[tokio::test]
async fn forwarded_for_and_proto_with_a_client_addr() {
    let mut up = upstream().await;
    // No hop trusted (the default): the client's claim is replaced by its address.
    // One trusted hop (a load balancer in front): its entry is kept.
    for (hops, want) in [(0, "198.51.100.7"), (1, "192.0.2.1, 198.51.100.7")] {
        let mut backend = HttpBackend::builder().trusted_hops(hops).build(up.addr);
        let mut req = Request::get("/")
            .header(header::HOST, "h")
            .header("x-forwarded-for", "192.0.2.1")
            .body(body::empty())
            .expect("request");
        req.extensions_mut().insert(routing_core::ClientAddr(
            "198.51.100.7:50000".parse().expect("addr"),
        ));
        let resp = send(&mut backend, req).await.expect("response");
        let _ = resp.into_body().collect().await;
        let seen = up.seen.recv().await.expect("seen");
        assert_eq!(seen.headers["x-forwarded-for"], want, "{hops} hops");
        assert_eq!(seen.headers["x-forwarded-proto"], "http");
    }
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut backend = HttpBackend::new(addr);
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&mut backend, req).await.expect_err("nothing listens");
    assert_eq!(err.kind(), Failure::Connect, "{err}");
    assert_eq!(err.addr(), Some(addr));
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    // The layer sees it as a BoxError and downcasts.
    let boxed: BoxError = err.into();
    let down = boxed
        .downcast_ref::<UpstreamError>()
        .expect("UpstreamError must be downcastable from a BoxError");
    assert_eq!(down.kind().retry_on(), Some("connect-failure"));
}

#[tokio::test]
async fn server_closing_before_a_response_is_a_reset() {
    let addr = broken_upstream(b"").await;
    let mut backend = HttpBackend::new(addr);
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&mut backend, req).await.expect_err("no response");
    assert_eq!(err.kind(), Failure::Reset, "{err:?}");
}

#[tokio::test]
async fn server_closing_mid_response_head_is_a_reset() {
    let addr = broken_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Par").await;
    let mut backend = HttpBackend::new(addr);
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&mut backend, req).await.expect_err("truncated head");
    assert_eq!(err.kind(), Failure::Reset, "{err:?}");
    assert_eq!(err.kind().retry_on(), Some("reset"));
}

#[tokio::test]
async fn server_closing_mid_body_fails_the_body_as_a_reset() {
    let addr = broken_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..").await;
    let mut backend = HttpBackend::new(addr);
    let req = Request::get("/").body(body::empty()).expect("request");
    let resp = send(&mut backend, req).await.expect("the head is complete");
    let err = resp
        .into_body()
        .collect()
        .await
        .expect_err("the body is truncated");
    let err = UpstreamError::from(err);
    assert_eq!(err.kind(), Failure::Reset, "{err:?}");
    assert_eq!(err.addr(), None);
}

#[tokio::test]
async fn malformed_response_is_other() {
    let addr = broken_upstream(b"this is not http\r\n\r\n").await;
    let mut backend = HttpBackend::new(addr);
    let req = Request::get("/").body(body::empty()).expect("request");
    let err = send(&mut backend, req).await.expect_err("garbage");
    assert_eq!(err.kind(), Failure::Other, "{err:?}");
    assert_eq!(err.kind().retry_on(), None);
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let mut up = upstream().await;
    let backend = HttpBackend::new(up.addr);
    for i in 0..200 {
        // A clone per request, as the layer makes them: clones share the pool.
        let mut b = backend.clone();
        let req = Request::get(format!("/n/{i}"))
            .header(header::HOST, "h")
            .body(body::empty())
            .expect("request");
        let resp = send(&mut b, req).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.into_body().collect().await.expect("body");
    }
    let mut n = 0;
    while up.seen.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 200, "every request must reach the upstream");
    let accepted = up.accepted.load(Ordering::SeqCst);
    assert!(
        accepted <= 2,
        "200 sequential requests must reuse pooled connections, but {accepted} were opened"
    );
}

#[tokio::test]
async fn backends_from_one_builder_share_a_pool_per_upstream() {
    let up1 = upstream().await;
    let up2 = upstream().await;
    let config = routing_core::Config::from_yaml(&format!(
        "backends:\n  - {{ name: v1, address: \"{}\" }}\n  - {{ name: v2, address: \"{}\" }}\n  - {{ name: local }}\n",
        up1.addr, up2.addr
    ))
    .expect("config");
    let backends = HttpBackend::builder()
        .pool_max_idle_per_host(4)
        .build_for_config(&config);
    assert_eq!(
        backends.len(),
        2,
        "the backend without an address is left out"
    );
    for round in 0..20 {
        for (name, backend) in &backends {
            let mut b = backend.clone();
            let req = Request::get(format!("/{name}/{round}"))
                .body(body::empty())
                .expect("request");
            let resp = send(&mut b, req).await.expect("response");
            resp.into_body().collect().await.expect("body");
        }
    }
    assert!(up1.accepted.load(Ordering::SeqCst) <= 2);
    assert!(up2.accepted.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn concurrent_requests_all_succeed() {
    let up = upstream().await;
    let backend = HttpBackend::new(up.addr);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let mut b = backend.clone();
        tasks.spawn(async move {
            let req = Request::get(format!("/c/{i}"))
                .body(body::empty())
                .expect("request");
            let resp = send(&mut b, req).await.expect("response");
            resp.into_body().collect().await.expect("body").to_bytes()
        });
    }
    let mut ok = 0;
    while let Some(res) = tasks.join_next().await {
        assert_eq!(&res.expect("task")[..], b"upstream");
        ok += 1;
    }
    assert_eq!(ok, 64);
}
