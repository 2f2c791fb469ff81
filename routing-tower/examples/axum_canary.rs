//! One axum app, two in-process versions: 90/10 canary split, `x-canary: true`
//! always to v2, and a sticky cookie so a user stays on the version they got.
//!
//! ```text
//! cargo run -p routing-tower --example axum_canary
//! ```
//!
//! It serves on 127.0.0.1:3000 and, with `--self-test`, sends itself 1 000
//! requests and prints the split, then exits. By hand:
//!
//! ```text
//! curl -i http://127.0.0.1:3000/                      # v1 (90 %) or v2 (10 %), with Set-Cookie
//! curl -H 'x-canary: true' http://127.0.0.1:3000/     # always v2
//! curl -b 'shop-sticky=<value from Set-Cookie>' http://127.0.0.1:3000/   # same version every time
//! curl http://127.0.0.1:3000/stats                    # per-version counters (served by the app itself)
//! curl http://127.0.0.1:3000/metrics                  # the same, and more, for Prometheus (OpenMetrics text)
//! ```

use std::net::SocketAddr;

use axum::routing::get;
use routing_core::Router;
use routing_tower::{Backends, RoutingLayer};

const ROUTES: &str = r#"
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    rules:
      # Internal traffic and testers opt in to the canary.
      - name: canary-header
        matches: [{headers: [{name: x-canary, exact: "true"}]}]
        backends: [{name: v2}]
      - name: split
        backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
        session_persistence:
          cookie: {name: shop-sticky, ttl: 24h, http_only: true, same_site: Lax}
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let self_test = std::env::args().any(|a| a == "--self-test");
    let router = Router::from_yaml(ROUTES)?;

    // The two versions: ordinary axum routers, in this process.
    let v1 = axum::Router::new().route("/", get(|| async { "hello from v1\n" }));
    let v2 = axum::Router::new().route("/", get(|| async { "hello from v2 (canary)\n" }));
    let layer = RoutingLayer::new(router, Backends::new().with("v1", v1).with("v2", v2));

    // `layer` wraps what exists when it is called (here the fallback, i.e. every
    // path); `/stats` and `/metrics`, added after it, are served by the app itself.
    let stats_layer = layer.clone();
    let metrics_layer = layer.clone();
    let app = axum::Router::new()
        .layer(layer)
        .route(
            "/stats",
            get(move || {
                let stats = stats_layer.stats();
                async move {
                    stats
                        .iter()
                        .map(|(name, s)| format!("{name}: {} requests\n", s.requests))
                        .collect::<String>()
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = routing_tower::metrics::encode_layer(&metrics_layer);
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            routing_tower::metrics::CONTENT_TYPE,
                        )],
                        text,
                    )
                }
            }),
        );

    let addr: SocketAddr = if self_test {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    }
    .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("axum_canary on http://{addr}/ (90/10, x-canary: true -> v2, sticky cookie)");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if !self_test {
        server.await??;
        return Ok(());
    }

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let (mut v1, mut v2, mut sticky_same) = (0, 0, 0);
    let mut cookie: Option<String> = None;
    let mut first: Option<String> = None;
    for i in 0..1_000 {
        let mut req = http::Request::get(format!("http://{addr}/"));
        // Every 10th request is a returning user who kept the cookie of the first.
        if i % 10 == 9 {
            if let Some(c) = &cookie {
                req = req.header("cookie", c.as_str());
            }
        }
        let res = client
            .request(req.body(http_body_util::Empty::new())?)
            .await?;
        if cookie.is_none() {
            cookie = res
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::to_owned);
        }
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if i % 10 == 9 {
            sticky_same += usize::from(first.as_deref() == Some(&text));
        } else if first.is_none() {
            first = Some(text.clone());
        }
        if text.contains("v2") {
            v2 += 1;
        } else {
            v1 += 1;
        }
    }
    let canary = client
        .request(
            http::Request::get(format!("http://{addr}/"))
                .header("x-canary", "true")
                .body(http_body_util::Empty::new())?,
        )
        .await?;
    let canary = http_body_util::BodyExt::collect(canary.into_body())
        .await?
        .to_bytes();
    println!("1000 requests: v1 {v1}, v2 {v2}");
    println!("returning user with the cookie: {sticky_same}/100 on the first version");
    println!(
        "x-canary: true -> {}",
        String::from_utf8_lossy(&canary).trim()
    );

    // Every request above went through the layer: 1 000 + the x-canary one.
    let res = client
        .request(
            http::Request::get(format!("http://{addr}/metrics"))
                .body(http_body_util::Empty::new())?,
        )
        .await?;
    let content_type = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let metrics = http_body_util::BodyExt::collect(res.into_body())
        .await?
        .to_bytes();
    let metrics = String::from_utf8_lossy(&metrics);
    let requests = |backend: &str| -> Option<u64> {
        let series = format!("routing_backend_requests_total{{backend=\"{backend}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.parse().ok())
    };
    println!(
        "/metrics: routing_backend_requests_total v1 {:?}, v2 {:?}",
        requests("v1"),
        requests("v2")
    );
    server.abort();
    anyhow::ensure!(
        content_type.as_deref() == Some(routing_tower::metrics::CONTENT_TYPE),
        "/metrics must be served as OpenMetrics text, got {content_type:?}"
    );
    anyhow::ensure!(
        requests("v1") == Some(v1) && requests("v2") == Some(v2 + 1),
        "/metrics must count every request: v1 {v1}, v2 {v2} + 1 canary"
    );
    anyhow::ensure!(metrics.ends_with("# EOF\n"), "/metrics must end with # EOF");
    anyhow::ensure!(
        sticky_same == 100,
        "sticky cookie must pin the returning user"
    );
    anyhow::ensure!(
        String::from_utf8_lossy(&canary).contains("v2"),
        "canary header must reach v2"
    );
    Ok(())
}
