//! WebSocket upgrades through the layer and the proxy, against real servers on
//! 127.0.0.1: echo, a config swap under an open socket, no request timeout on an
//! upgraded connection, and other upgrades stripped.
#![allow(clippy::unwrap_used, missing_docs)]

mod proto_support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use proto_support::{h1_client, proxy, router, upstream};
use routing_tower::client::HttpBackend;
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

async fn echo(ws: &mut Ws, text: &str) -> String {
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
