//! WebSocket upgrades through the layer and the proxy, against real servers on
//! 127.0.0.1: echo, a config swap under an open socket, no request timeout on an
//! upgraded connection, other upgrades stripped, HTTP/2 extended CONNECT (RFC 8441)
//! on either side, and upgrades kept out of latency histograms.
#![allow(clippy::unwrap_used, missing_docs)]

mod proto_support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use proto_support::{h1_client, h2_client, proxy, proxy_layer, router, upstream};
use routing_tower::client::{HttpBackend, UpstreamProtocol};
use routing_tower::Backends;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server echoing every text message prefixed with `name`.
async fn ws_echo(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        if ws.send(Message::text(format!("{name}:{t}"))).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(px: SocketAddr) -> Ws {
    let tcp = tokio::net::TcpStream::connect(px).await.unwrap();
    let (ws, res) = tokio_tungstenite::client_async("ws://shop.test/chat", tcp)
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    ws
}

async fn echo<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, text: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(text)).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .unwrap()
        .unwrap();
    msg.into_text().unwrap().to_string()
}

fn two(v1: SocketAddr, v2: SocketAddr, to: &str, extra: &str) -> (String, Backends) {
    let yaml = format!(
        "backends: [{{name: v1}}, {{name: v2}}]\nroutes:\n  - name: all\n    rules:\n      - backends: [{{name: {to}}}]\n{extra}"
    );
    let b = HttpBackend::builder();
    (
        yaml,
        Backends::new()
            .with("v1", b.build(v1))
            .with("v2", b.build(v2)),
    )
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let (yaml, backends) = two(ws_echo("v1").await, ws_echo("v2").await, "v1", "");
    let px = proxy(router(&yaml), backends).await;
    let mut ws = connect(px).await;
    for i in 0..3 {
        assert_eq!(echo(&mut ws, &format!("m{i}")).await, format!("v1:m{i}"));
    }
    assert!(routing_tower::upgrade::open_upgrades() >= 1);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_survives_a_config_swap() {
    let (yaml, backends) = two(ws_echo("v1").await, ws_echo("v2").await, "v1", "");
    let r = router(&yaml);
    let px = proxy(r.clone(), backends).await;
    let mut old = connect(px).await;
    assert_eq!(echo(&mut old, "before").await, "v1:before");
    let (swapped, _) = two(ws_echo("x").await, ws_echo("y").await, "v2", "");
    r.update_yaml(&swapped).unwrap();
    // The open socket stays on v1; a new one goes where the new config says.
    assert_eq!(echo(&mut old, "after").await, "v1:after");
    let mut new = connect(px).await;
    assert_eq!(echo(&mut new, "hello").await, "v2:hello");
    assert_eq!(echo(&mut old, "still").await, "v1:still");
}

#[tokio::test]
async fn websocket_is_exempt_from_the_request_timeout() {
    let extra = "        timeouts: {request: 200ms}\n";
    let (yaml, backends) = two(ws_echo("v1").await, ws_echo("v2").await, "v1", extra);
    let px = proxy(router(&yaml), backends).await;
    let mut ws = connect(px).await;
    assert_eq!(echo(&mut ws, "a").await, "v1:a");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        echo(&mut ws, "b").await,
        "v1:b",
        "three timeouts later, still open"
    );
}

#[tokio::test]
async fn websocket_only_other_upgrades_are_stripped() {
    // An upstream reporting the upgrade headers it received.
    let up = upstream(|req: http::Request<hyper::body::Incoming>| async move {
        let h = |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
        http::Response::new(routing_tower::body::full(format!(
            "{:?} {:?}",
            h("upgrade"),
            h("connection")
        )))
    })
    .await;
    let (yaml, _) = two(up, up, "v1", "");
    let px = proxy(
        router(&yaml),
        Backends::new().with("v1", HttpBackend::new(up)),
    )
    .await;
    let mut c = h1_client(px).await;
    let req = http::Request::get("/")
        .header("host", "shop")
        .header("connection", "upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA")
        .body(routing_tower::body::empty())
        .unwrap();
    let res = c.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        body, "None None",
        "an h2c upgrade must not reach the upstream"
    );
}

/// A WebSocket server over HTTP/2 only (h2c), accepting RFC 8441 extended CONNECT and
/// echoing every text message prefixed with `name`.
async fn ws_echo_h2(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let svc = hyper::service::service_fn(
                move |mut req: http::Request<hyper::body::Incoming>| async move {
                    let ws = req.method() == http::Method::CONNECT
                        && req
                            .extensions()
                            .get::<hyper::ext::Protocol>()
                            .is_some_and(|p| p.as_str() == "websocket");
                    let mut res = http::Response::new(routing_tower::body::empty());
                    if !ws {
                        *res.status_mut() = http::StatusCode::BAD_REQUEST;
                        return Ok::<_, std::convert::Infallible>(res);
                    }
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let Ok(up) = on.await else { return };
                        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                            hyper_util::rt::TokioIo::new(up),
                            tokio_tungstenite::tungstenite::protocol::Role::Server,
                            None,
                        )
                        .await;
                        while let Some(Ok(msg)) = ws.next().await {
                            if let Message::Text(t) = msg {
                                if ws.send(Message::text(format!("{name}:{t}"))).await.is_err() {
                                    return;
                                }
                            }
                        }
                    });
                    Ok(res)
                },
            );
            tokio::spawn(async move {
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .enable_connect_protocol()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
            });
        }
    });
    addr
}

type H2Ws = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// A WebSocket over HTTP/2 to the proxy: an extended CONNECT with
/// `:protocol websocket`, answered 200. The connection's sender is returned too, to
/// keep the connection up.
async fn connect_h2(px: SocketAddr) -> (H2Ws, impl Sized) {
    let mut h2 = h2_client(px).await;
    let mut req = http::Request::connect(format!("http://{px}/chat"))
        .version(http::Version::HTTP_2)
        .header("sec-websocket-version", "13")
        .body(routing_tower::body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let mut res = h2.send_request(req).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "RFC 8441: a WebSocket over h2 is answered 200"
    );
    let up = hyper::upgrade::on(&mut res).await.unwrap();
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(up),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    (ws, h2)
}

fn h2c_backends(v1: SocketAddr) -> Backends {
    Backends::new().with(
        "v1",
        HttpBackend::builder()
            .protocol(UpstreamProtocol::H2c)
            .build(v1),
    )
}

const ONE: &str = "backends: [{name: v1}]
routes:
  - name: all
    rules:
      - matches: [{path: {exact: /chat}, method: GET}]
        backends: [{name: v1}]
";

#[tokio::test]
async fn websocket_over_h2_extended_connect_to_an_http1_upstream() {
    let v1 = ws_echo("v1").await;
    // The rule matches GET: an extended CONNECT is routed like the GET upgrade.
    let px = proxy(
        router(ONE),
        Backends::new().with("v1", HttpBackend::new(v1)),
    )
    .await;
    let (mut ws, _conn) = connect_h2(px).await;
    for i in 0..3 {
        assert_eq!(echo(&mut ws, &format!("m{i}")).await, format!("v1:m{i}"));
    }
    // Several WebSockets multiplexed on one HTTP/2 connection each reach the upstream.
    let (mut other, _c2) = connect_h2(px).await;
    assert_eq!(echo(&mut other, "x").await, "v1:x");
    assert_eq!(echo(&mut ws, "y").await, "v1:y");
}

#[tokio::test]
async fn websocket_over_h2_extended_connect_to_an_h2_upstream() {
    let v1 = ws_echo_h2("h2").await;
    let px = proxy(router(ONE), h2c_backends(v1)).await;
    let (mut ws, _conn) = connect_h2(px).await;
    for i in 0..3 {
        assert_eq!(echo(&mut ws, &format!("m{i}")).await, format!("h2:m{i}"));
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn websocket_http1_client_to_an_h2_only_upstream() {
    // tungstenite checks Sec-WebSocket-Accept against its key: the proxy computes it,
    // since the HTTP/2 upstream answers an extended CONNECT without one.
    let v1 = ws_echo_h2("h2").await;
    let px = proxy(router(ONE), h2c_backends(v1)).await;
    let mut ws = connect(px).await;
    assert_eq!(echo(&mut ws, "hello").await, "h2:hello");
}

#[tokio::test]
async fn websocket_handshake_and_life_stay_out_of_latency_histograms() {
    let v1 = ws_echo("v1").await;
    let plain = upstream(|_req: http::Request<hyper::body::Incoming>| async {
        http::Response::new(routing_tower::body::full("plain"))
    })
    .await;
    let yaml = format!(
        "{ONE}      - matches: [{{path: {{exact: /plain}}}}]\n        backends: [{{name: v2}}]\n"
    )
    // The top-level list only (the first line), not the /chat rule's.
    .replacen(
        "backends: [{name: v1}]\n",
        "backends: [{name: v1}, {name: v2}]\n",
        1,
    );
    let layer = routing_tower::RoutingLayer::new(
        router(&yaml),
        Backends::new()
            .with("v1", HttpBackend::new(v1))
            .with("v2", HttpBackend::new(plain)),
    );
    let px = proxy_layer(&layer).await;
    let before = routing_tower::upgrade::total_upgrades();
    let mut ws = connect(px).await;
    let (mut ws2, _conn) = connect_h2(px).await;
    assert_eq!(echo(&mut ws, "a").await, "v1:a");
    assert_eq!(echo(&mut ws2, "b").await, "v1:b");
    tokio::time::sleep(Duration::from_millis(100)).await;
    ws.close(None).await.unwrap();
    // Counted as connections (process-wide: other tests may add theirs), and
    // exposed as such.
    let total = routing_tower::upgrade::total_upgrades();
    assert!(total >= before + 2);
    let text = routing_tower::metrics::encode_layer(&layer);
    let exposed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("routing_upgrades_total "))
        .expect("routing_upgrades_total in the scrape")
        .parse()
        .unwrap();
    assert!(exposed >= before + 2, "{text}");
    assert!(text.contains("# TYPE routing_upgrades_open gauge"));
    let s = &layer.stats()[0].1;
    assert_eq!(s.requests, 2, "{s:?}");
    // Counted by the status the client got: 101 over HTTP/1.1, 200 over HTTP/2.
    assert_eq!(
        (s.responses[0], s.responses[1]),
        (1, 1),
        "both handshakes counted: {s:?}"
    );
    assert_eq!(
        s.latency_count(),
        0,
        "no latency sample for an upgrade: {s:?}"
    );
    let r = &layer.route_stats()[0].1;
    assert_eq!(r.latency_count(), 0, "nor in the route's histogram: {r:?}");
    // A plain request on the same layer does feed the histogram.
    let mut c = h1_client(px).await;
    let res = c
        .send_request(
            http::Request::get("/plain")
                .header("host", "shop")
                .body(routing_tower::body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "plain");
    let all = layer.stats();
    assert_eq!(all[1].0.as_ref(), "v2");
    assert_eq!(all[1].1.latency_count(), 1, "a plain request is timed");
    assert_eq!(all[0].1.latency_count(), 0);
}

#[tokio::test]
async fn websocket_on_a_rule_with_retries_over_both_protocols() {
    // A retry policy makes the layer copy the request head for the first try: the
    // client's side of the switch must still reach the splice.
    let extra = "        retry: {attempts: 2, on: [5xx, connect-failure], backoff: 1ms}\n";
    let (yaml, backends) = two(ws_echo("v1").await, ws_echo("v2").await, "v1", extra);
    let px = proxy(router(&yaml), backends).await;
    let mut ws = connect(px).await;
    assert_eq!(echo(&mut ws, "h1").await, "v1:h1");
    let (mut ws2, _conn) = connect_h2(px).await;
    assert_eq!(echo(&mut ws2, "h2").await, "v1:h2");
}
