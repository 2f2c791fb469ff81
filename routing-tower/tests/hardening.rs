//! Safe by default: each test reproduces an attack or operator mistake against real
//! servers on 127.0.0.1 (or the importers a `routing check` runs) and asserts the
//! safe outcome. The items are numbered as in the hardening issue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use routing_core::import::{import, ImportErrorKind, ImportOptions, Source};
use routing_core::Router;
use routing_testkit::http::{serve, Server};
use routing_tower::{body, Backends, HttpBackend, Routing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An upstream that answers `NAME PATH-AND-QUERY`: what it was asked for.
async fn echo(name: &'static str) -> Server {
    serve(tower::service_fn(move |req: Request<Incoming>| {
        let pq = req
            .uri()
            .path_and_query()
            .map_or_else(String::new, ToString::to_string);
        async move { Ok::<_, Infallible>(Response::new(body::full(format!("{name} {pq}")))) }
    }))
    .await
}

/// An upstream that answers `NAME h1=v1 h2=v2 …` with the values of `headers` it
/// received (`-` when absent).
async fn echo_headers(name: &'static str, headers: &'static [&'static str]) -> Server {
    serve(tower::service_fn(move |req: Request<Incoming>| {
        let mut text = name.to_owned();
        for h in headers {
            let v = req
                .headers()
                .get(*h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            text.push_str(&format!(" {h}={v}"));
        }
        async move { Ok::<_, Infallible>(Response::new(body::full(text))) }
    }))
    .await
}

/// Sends `head` (a request line and headers, without the final blank line) as raw
/// bytes — no client library in between to tidy the path — and returns the status
/// and the body.
async fn raw(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let msg = format!("{head}\r\nConnection: close\r\n\r\n");
    s.write_all(msg.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("answer within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Item 1 — deny rules cannot be walked around: the path is normalised before matching,
/// and the normalised path is what the backend receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_rules_cannot_be_walked_around() {
    let app = echo("app").await;
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: app, address: "{}"}}]
routes:
  - name: edge
    rules:
      - name: deny-admin
        matches: [{{path: {{prefix: /admin}}}}]
        fixed_response: {{status: 403, body: denied}}
      - name: api
        matches: [{{path: {{prefix: /api}}}}]
        backends: [{{name: app}}]
"#,
        app.addr
    ))
    .unwrap();
    let backends = Backends::new().with("app", HttpBackend::new(app.addr));
    let proxy = serve(Routing::dispatch(router.clone(), backends)).await;

    for path in [
        "/x/../admin/users",
        "/%61dmin/users",
        "//admin/users",
        "/api/../admin/users",
        "/api/%2e%2e/admin/users",
        "/./admin/users",
    ] {
        let (status, body) = raw(proxy.addr, &format!("GET {path} HTTP/1.1\r\nHost: shop")).await;
        assert_eq!((status, body.as_str()), (403, "denied"), "{path}");
    }
    // Encoded slashes and backslashes are refused, not passed on for the backend to
    // decode into other segments.
    for path in ["/api/..%2fadmin/users", "/api%5c..%5cadmin", "/api/%zz"] {
        let (status, _) = raw(proxy.addr, &format!("GET {path} HTTP/1.1\r\nHost: shop")).await;
        assert_eq!(status, 400, "{path}");
    }
    // What is forwarded is the normalised path, with the query untouched.
    let (status, body) = raw(
        proxy.addr,
        "GET /api//v1/./%69tems/../items?q=%2e%2e HTTP/1.1\r\nHost: shop",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, "app /api/v1/items?q=%2e%2e");

    // Turning normalisation off is an explicit, documented choice: the raw path is
    // then matched (and the walk-around works again).
    let mut cfg = router.load().config().clone();
    cfg.path_normalization = Some(routing_core::PathNormalization {
        enabled: false,
        ..Default::default()
    });
    router.update(cfg).unwrap();
    let (status, body) = raw(proxy.addr, "GET /api/../admin/users HTTP/1.1\r\nHost: shop").await;
    assert_eq!(status, 200);
    assert_eq!(body, "app /api/../admin/users");
}

/// Item 10 — importers fail closed: conditions that gate access and cannot be applied are
/// errors (unless `allow_lossy`), and an input with nothing routable is an error.
#[test]
fn imports_that_would_drop_access_conditions_fail() {
    let alb = r#"{"Rules": [{"RuleArn": "arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app/a/1/2/3",
      "Priority": "1", "IsDefault": false,
      "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/account/*"]}}],
      "Actions": [
        {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": {"Issuer": "https://idp"}},
        {"Type": "forward", "Order": 2, "TargetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/account/0"}]},
     {"RuleArn": "arn:aws:elasticloadbalancing:eu-west-1:1:listener-rule/app/a/1/2/4", "Priority": "default", "IsDefault": true,
      "Conditions": [],
      "Actions": [{"Type": "forward", "Order": 1, "TargetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/www/0"}]}]}"#;
    let err = import(&[Source::new("alb.json", alb)], &ImportOptions::default()).unwrap_err();
    assert!(
        err.errors().iter().any(
            |e| matches!(&e.kind, ImportErrorKind::Lossy(m) if m.contains("authenticate-oidc"))
        ),
        "{err}"
    );
    let lossy = ImportOptions::default().with_allow_lossy(true);
    assert!(import(&[Source::new("alb.json", alb)], &lossy).is_ok());

    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: internal, namespace: shop}\nspec:\n  hosts: [payments]\n  http:\n  - match: [{sourceLabels: {app: checkout}}]\n    route: [{destination: {host: payments}}]\n";
    let err = import(&[Source::new("vs.yaml", vs)], &ImportOptions::default()).unwrap_err();
    assert_eq!(
        err.errors()[0].at.path,
        "spec.http[0].match[0].sourceLabels"
    );
    assert!(matches!(err.errors()[0].kind, ImportErrorKind::Lossy(_)));

    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let err = import(
        &[Source::new("cm.yaml", unknown)],
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.errors()[0].kind, ImportErrorKind::NothingRoutable);
}

/// A server that reads each request head and closes the connection without an
/// answer (the backend died mid-request); counts the requests it saw.
async fn dropper() -> (
    SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
    tokio::task::JoinHandle<()>,
) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::Relaxed);
                drop(s);
            });
        }
    });
    (addr, seen, task)
}

/// Item 4 — a request that may have reached the backend is retried only when its
/// method is idempotent, unless the rule opts in; a POST is never delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_are_not_retried_once_sent() {
    use std::sync::atomic::Ordering;
    let (addr, seen, task) = dropper().await;
    let yaml = |opt_in: bool| {
        format!(
            r#"
backends: [{{name: flaky, address: "{addr}"}}]
routes:
  - name: r
    rules:
      - backends: [{{name: flaky}}]
        retry: {{attempts: 2, on: [reset, connect-failure, 5xx], backoff: 1ms, non_idempotent: {opt_in}}}
"#
        )
    };
    let router = Router::from_yaml(&yaml(false)).unwrap();
    let backends = Backends::new().with("flaky", HttpBackend::new(addr));
    let proxy = serve(Routing::dispatch(router.clone(), backends)).await;
    let send = |method: &'static str| {
        let a = proxy.addr;
        async move {
            raw(
                a,
                &format!("{method} /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: 0"),
            )
            .await
        }
    };
    let before = seen.load(Ordering::Relaxed);
    let (status, _) = send("GET").await;
    assert_eq!(status, 502);
    assert_eq!(
        seen.load(Ordering::Relaxed) - before,
        3,
        "GET: 1 try + 2 retries"
    );

    let before = seen.load(Ordering::Relaxed);
    let (status, _) = send("POST").await;
    assert_eq!(status, 502);
    assert_eq!(
        seen.load(Ordering::Relaxed) - before,
        1,
        "POST: delivered once"
    );

    // The rule opts in: the POST is retried like the GET.
    router
        .update(routing_core::Config::from_yaml(&yaml(true)).unwrap())
        .unwrap();
    let before = seen.load(Ordering::Relaxed);
    let (status, _) = send("POST").await;
    assert_eq!(status, 502);
    assert_eq!(seen.load(Ordering::Relaxed) - before, 3, "opted in");
    task.abort();
}

/// Item 3 — a client's `Connection` list cannot delete headers: hop-by-hop headers go
/// before routing and filters, so a header a rule sets always arrives, and `Host`
/// (like the other protected headers) cannot be named away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_delete_headers_the_proxy_sets() {
    let app = echo_headers("app", &["x-internal-auth", "host", "x-client-secret"]).await;
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: app, address: "{}"}}]
routes:
  - name: r
    rules:
      - backends: [{{name: app}}]
        filters: {{request_headers: {{set: [{{name: x-internal-auth, value: proxy-secret}}]}}}}
"#,
        app.addr
    ))
    .unwrap();
    let backends = Backends::new().with("app", HttpBackend::new(app.addr));
    let proxy = serve(Routing::dispatch(router, backends)).await;
    let (status, body) = raw(
        proxy.addr,
        "GET / HTTP/1.1\r\nHost: shop\r\nX-Client-Secret: 1\r\nConnection: x-internal-auth, host, x-client-secret",
    )
    .await;
    assert_eq!(status, 200);
    // The rule's header arrives, Host is kept, and a header the client itself marked
    // hop-by-hop is removed.
    assert_eq!(
        body,
        "app x-internal-auth=proxy-secret host=shop x-client-secret=-"
    );
}

/// Serves `svc` on 127.0.0.1 the way a real server must: each request carries its
/// peer's address (`ClientAddr`), for `X-Forwarded-For`.
async fn serve_with_peer(
    svc: Routing<routing_tower::NotFound>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let svc = svc.clone();
            let hyper_svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut req = req.map(body::boxed);
                req.extensions_mut().insert(routing_core::ClientAddr(peer));
                let fut: std::pin::Pin<
                    Box<
                        dyn std::future::Future<
                                Output = Result<Response<routing_tower::Body>, Infallible>,
                            > + Send,
                    >,
                > = Box::pin(svc.clone().oneshot(req));
                fut
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_svc)
                    .await;
            });
        }
    });
    (addr, task)
}

/// Item 2 — routing and forwarding agree on the host; a request with several or an
/// invalid Host is refused; forwarding headers are the proxy's, not the client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routed_host_is_the_forwarded_host() {
    let seen = &["host", "x-forwarded-for", "x-forwarded-proto"];
    let (shop, admin) = (
        echo_headers("shop", seen).await,
        echo_headers("admin", seen).await,
    );
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: shop, address: "{}"}}, {{name: admin, address: "{}"}}]
routes:
  - {{name: shop, hostnames: [shop.example.com], rules: [{{backends: [{{name: shop}}]}}]}}
  - {{name: admin, hostnames: [admin.internal], rules: [{{backends: [{{name: admin}}]}}]}}
"#,
        shop.addr, admin.addr
    ))
    .unwrap();
    let backends = Backends::new()
        .with("shop", HttpBackend::new(shop.addr))
        .with("admin", HttpBackend::new(admin.addr));
    let (proxy, task) = serve_with_peer(Routing::dispatch(router, backends)).await;

    // Absolute form with another Host: routed and forwarded by the URI's authority.
    let (status, body) = raw(
        proxy,
        "GET http://shop.example.com/x HTTP/1.1\r\nHost: admin.internal",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.starts_with("shop host=shop.example.com "), "{body}");
    // Two Host lines, or a Host that is not an authority: refused.
    for head in [
        "GET /x HTTP/1.1\r\nHost: shop.example.com\r\nHost: admin.internal",
        "GET /x HTTP/1.1\r\nHost: user@admin.internal",
    ] {
        let (status, _) = raw(proxy, head).await;
        assert_eq!(status, 400, "{head}");
    }
    // Forwarding headers: the client's claims are replaced (no trusted hop by
    // default), and the protocol is the listener's (plain TCP here).
    let (status, body) = raw(
        proxy,
        "GET https://shop.example.com/x HTTP/1.1\r\nHost: shop.example.com\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Proto: https",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "shop host=shop.example.com x-forwarded-for=127.0.0.1 x-forwarded-proto=http"
    );
    task.abort();
}

/// Item 8 — an empty or half-written config file is not applied by a reload: the live
/// table keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_truncated_reload_keeps_the_live_table() {
    let app = echo("app").await;
    let full = format!(
        "backends: [{{name: app, address: \"{}\"}}]\nroutes:\n  - name: r\n    rules:\n      - backends: [{{name: app}}]\n",
        app.addr
    );
    let router = Router::from_yaml(&full).unwrap();
    let backends = Backends::new().with("app", HttpBackend::new(app.addr));
    let proxy = serve(Routing::dispatch(router.clone(), backends)).await;
    for text in [
        "",
        "# being written\n",
        &full[..full.find("routes").unwrap()],
    ] {
        let err = routing_core::Config::from_yaml(text)
            .and_then(|c| router.reload(c))
            .unwrap_err();
        assert!(
            matches!(
                err,
                routing_core::ConfigError::DropsEverything { routes: 1, .. }
            ),
            "{text:?}: {err}"
        );
        let (status, body) = raw(proxy.addr, "GET /x HTTP/1.1\r\nHost: shop").await;
        assert_eq!((status, body.as_str()), (200, "app /x"));
    }
    assert_eq!(router.generation(), 1);
}

/// Item 11 — stickiness keys rotate without reshuffling sessions, cookies are bound
/// to their route, and a session cookie (no TTL) does not live forever.
#[tokio::test]
async fn cookie_keys_rotate_bind_to_the_route_and_age_out() {
    use routing_tower::{CookieKey, RoutingLayer};
    use tower::{Layer as _, ServiceExt as _};
    let router = Router::from_yaml(
        r#"
backends: [{name: v1}, {name: v2}]
routes:
  - {name: shop, hostnames: [shop], rules: [{backends: [{name: v1}, {name: v2}], session_persistence: {cookie: {name: s}}}]}
  - {name: admin, hostnames: [admin], rules: [{backends: [{name: v1}, {name: v2}], session_persistence: {cookie: {name: s}}}]}
"#,
    )
    .unwrap();
    let named = |n: &'static str| {
        tower::service_fn(move |_r: Request<routing_tower::Body>| async move {
            Ok::<_, Infallible>(Response::new(body::full(n)))
        })
    };
    let (old, new) = (
        CookieKey::from_bytes([1; 32]),
        CookieKey::from_bytes([2; 32]),
    );
    let layer = |key: CookieKey, max_age: Option<Duration>| {
        RoutingLayer::builder(router.clone())
            .backends(
                Backends::new()
                    .with("v1", named("v1"))
                    .with("v2", named("v2")),
            )
            .cookie_key(key)
            .cookie_max_age(max_age)
            .build()
            .layer(routing_tower::NotFound)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let get = |svc: routing_tower::Routing<routing_tower::NotFound>, host: &str, cookie: String| {
        let req = Request::get(format!("http://{host}/"))
            .header("cookie", format!("s={cookie}"))
            .body(body::empty())
            .unwrap();
        async move {
            let res = svc.oneshot(req).await.unwrap();
            let set = res
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().to_owned());
            let b = http_body_util::BodyExt::collect(res.into_body())
                .await
                .unwrap()
                .to_bytes();
            (String::from_utf8_lossy(&b).into_owned(), set)
        }
    };
    let day = Some(Duration::from_secs(24 * 3600));
    // Rotation: the new key is current, the old one previous. An old cookie keeps its
    // session (v2) and is re-issued with the new key, which then pins without a new
    // cookie.
    let ring = || new.clone().with_previous(old.clone());
    let (body, set) = get(
        layer(ring(), day),
        "shop",
        old.issue("s", "shop", "v2", now),
    )
    .await;
    assert_eq!(body, "v2");
    let set = set.expect("re-issued with the current key");
    let value = set
        .trim_start_matches("s=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(new.verify("s", "shop", &value).unwrap().current_key);
    let (body, set) = get(layer(ring(), day), "shop", value).await;
    assert_eq!((body.as_str(), set), ("v2", None));
    // Without the previous key, the old cookie is foreign: a fresh choice and cookie.
    let (_, set) = get(
        layer(new.clone(), day),
        "shop",
        old.issue("s", "shop", "v2", now),
    )
    .await;
    assert!(set.is_some());
    // Bound to the route: a shop cookie presented to admin is not honoured.
    let shop_cookie = new.issue("s", "shop", "v2", now);
    let (_, set) = get(layer(new.clone(), day), "admin", shop_cookie).await;
    assert!(set.is_some(), "a cookie of another route is re-issued");
    // Maximum age: a session cookie two days old is replaced by default; with no
    // limit it pins.
    let old_cookie = new.issue("s", "shop", "v2", now - 2 * 24 * 3600);
    let (_, set) = get(layer(new.clone(), day), "shop", old_cookie.clone()).await;
    assert!(set.is_some(), "past the maximum age");
    let (body, set) = get(layer(new.clone(), None), "shop", old_cookie).await;
    assert_eq!((body.as_str(), set), ("v2", None));
}

/// Sends `head` and the first `part` bytes of a body, waits `stall`, and returns the
/// status of whatever answer came (0 when the connection closed without one).
async fn stalled_upload(addr: SocketAddr, head: &str, part: &[u8], stall: Duration) -> u16 {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    s.write_all(part).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(stall + Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Item 7 — failures on the client's side are the client's: slow uploads that hit the
/// per-try timeout get 408 and malformed bodies 400, and neither counts against the
/// backend (no failure in its stats, never ejected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_body_failures_do_not_count_against_the_backend() {
    use http_body_util::BodyExt as _;
    let app = serve(tower::service_fn(|req: Request<Incoming>| async move {
        let n = req.into_body().collect().await.map(|b| b.to_bytes().len());
        Ok::<_, Infallible>(Response::new(body::full(format!("{n:?}"))))
    }))
    .await;
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: app, address: "{}"}}]
outlier_detection: {{consecutive_5xx: 3, consecutive_gateway_errors: 3, interval: 10s, base_ejection_time: 60s, max_ejection_percent: 100}}
routes:
  - name: r
    rules:
      - backends: [{{name: app}}]
        timeouts: {{per_try: 200ms}}
"#,
        app.addr
    ))
    .unwrap();
    let svc = Routing::dispatch(
        router,
        Backends::new().with("app", HttpBackend::new(app.addr)),
    );
    let layer = svc.layer();
    let proxy = serve(svc).await;
    // Eight slow uploads: 10 of 100 bytes, then silence past the per-try timeout.
    for _ in 0..8 {
        let status = stalled_upload(
            proxy.addr,
            "POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 100\r\nConnection: close",
            b"0123456789",
            Duration::from_millis(400),
        )
        .await;
        assert_eq!(status, 408);
    }
    // Malformed chunked bodies.
    for _ in 0..4 {
        let status = stalled_upload(
            proxy.addr,
            "POST /upload HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nConnection: close",
            b"zz\r\nnot a chunk\r\n",
            Duration::from_millis(50),
        )
        .await;
        assert!(matches!(status, 400 | 0), "{status}");
    }
    // The backend is healthy and its stats hold no failure.
    let (status, body) = raw(proxy.addr, "GET /x HTTP/1.1\r\nHost: shop").await;
    assert_eq!((status, body.as_str()), (200, "Ok(0)"));
    let stats = layer.stats();
    let (_, app_stats) = stats
        .iter()
        .find(|(n, _)| &**n == "app")
        .expect("app stats");
    assert!(!app_stats.ejected);
    assert_eq!(app_stats.ejections, 0);
    assert_eq!(
        (
            app_stats.failures_timeout,
            app_stats.failures_reset,
            app_stats.failures_other
        ),
        (0, 0, 0),
        "{app_stats:?}"
    );
}

/// Item 6 (mirrors) — a mirror that never answers cannot pile up: at most the mirror
/// concurrency is in flight, each mirrored request gives up at the mirror timeout,
/// and the client's own requests are never held by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_are_bounded_in_number_and_time() {
    use routing_tower::RoutingLayer;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tower::Layer as _;
    let app = echo("app").await;
    let seen = std::sync::Arc::new(AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&seen);
    let shadow = serve(tower::service_fn(move |_req: Request<Incoming>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, Infallible>(Response::new(body::full("late")))
        }
    }))
    .await;
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: app, address: "{}"}}, {{name: shadow, address: "{}"}}]
routes:
  - name: r
    rules:
      - backends: [{{name: app}}]
        mirror: {{backend: shadow, percent: 100}}
"#,
        app.addr, shadow.addr
    ))
    .unwrap();
    let svc = RoutingLayer::builder(router)
        .backends(
            Backends::new()
                .with("app", HttpBackend::new(app.addr))
                .with("shadow", HttpBackend::new(shadow.addr)),
        )
        .mirror_limits(2, Duration::from_millis(300))
        .build()
        .layer(routing_tower::NotFound);
    let proxy = serve(svc).await;
    for _ in 0..20 {
        let (status, body) = raw(proxy.addr, "GET /x HTTP/1.1\r\nHost: shop").await;
        assert_eq!((status, body.as_str()), (200, "app /x"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "two mirrors in flight at most"
    );
    // After the mirror timeout the two slots are free again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        let (status, _) = raw(proxy.addr, "GET /x HTTP/1.1\r\nHost: shop").await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 4);
}

/// Item 5 (request timeout) — the request timeout covers a body recorded for a
/// retry: a client that stalls mid-upload to an upstream reading the whole body is
/// answered at the timeout (408, its fault), not when it finally finishes or gives
/// up. (The body streams to the upstream while it is recorded: an upstream that
/// answers without reading it answers at once, as on a rule without retries.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_timeout_covers_body_buffering() {
    use http_body_util::BodyExt as _;
    let app = serve(tower::service_fn(|req: Request<Incoming>| async move {
        let n = req.into_body().collect().await.map(|b| b.to_bytes().len());
        Ok::<_, Infallible>(Response::new(body::full(format!("{n:?}"))))
    }))
    .await;
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: app, address: "{}"}}]
routes:
  - name: r
    rules:
      - backends: [{{name: app}}]
        retry: {{attempts: 2, on: [5xx]}}
        timeouts: {{request: 300ms}}
"#,
        app.addr
    ))
    .unwrap();
    let proxy = serve(Routing::dispatch(
        router,
        Backends::new().with("app", HttpBackend::new(app.addr)),
    ))
    .await;
    let started = std::time::Instant::now();
    let status = stalled_upload(
        proxy.addr,
        "PUT /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 100\r\nConnection: close",
        b"0123456789",
        Duration::from_secs(3),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 408);
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
}

/// An upstream that answers 200 with `Content-Length: 100`, then sends one byte every
/// `every` for `bytes` bytes and stalls (the rest never comes). A `bytes` of 100 is a
/// complete, slow answer.
async fn trickler(every: Duration, bytes: usize) -> Server {
    use http_body_util::StreamBody;
    serve(tower::service_fn(
        move |_req: Request<Incoming>| async move {
            let stream = futures_util::stream::unfold(0usize, move |sent| async move {
                if sent == bytes {
                    // Stalled: hold the response open past every test's patience.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return None;
                }
                tokio::time::sleep(every).await;
                Some((
                    Ok::<_, Infallible>(hyper::body::Frame::data(bytes::Bytes::from_static(b"x"))),
                    sent + 1,
                ))
            });
            let mut res = Response::new(body::boxed(StreamBody::new(stream)));
            res.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static("100"),
            );
            Ok::<_, Infallible>(res)
        },
    ))
    .await
}

/// Sends a GET and reads until the connection closes (at most 10 s): the status
/// (0 without one), the body bytes received, and how long the exchange took.
async fn timed_get(addr: SocketAddr, path: &str) -> (u16, usize, Duration) {
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let msg = format!("GET {path} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n");
    s.write_all(msg.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    (status, body, started.elapsed())
}

/// A dispatching service with one rule sending everything to backend `app` at
/// `addr`, over HTTP.
fn one_backend(addr: SocketAddr) -> Routing<routing_tower::NotFound> {
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: app, address: "{addr}"}}]
routes: [{{name: r, rules: [{{backends: [{{name: app}}]}}]}}]
"#
    ))
    .unwrap();
    Routing::dispatch(router, Backends::new().with("app", HttpBackend::new(addr)))
}

/// Item 5 (defaults) — a rule without a timeout still has one: a hung backend is
/// answered 504 at the layer's default request timeout (15 s, Envoy's), and the
/// hung try counts against the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_backend_is_answered_504_by_default() {
    let hung = serve(tower::service_fn(|_req: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, Infallible>(Response::new(body::full("late")))
    }))
    .await;
    let svc = one_backend(hung.addr);
    let layer = svc.layer();
    let proxy = serve(svc).await;
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    s.write_all(b"GET /x HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("answered within 30 s")
        .expect("read");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("request timeout after 15s"), "{text}");
    assert!(
        (Duration::from_secs(15)..Duration::from_secs(20)).contains(&took),
        "answered after {took:?}"
    );
    let stats = layer.stats();
    let app = &stats.iter().find(|(n, _)| &**n == "app").expect("app").1;
    assert_eq!(app.failures_timeout, 1, "{app:?}");
}

/// Item 5 (response bodies) — a response body is held to the request's deadline and
/// to an idle timeout between frames: a backend that stalls mid-body, or trickles
/// past the deadline, gets its response cut (the client sees it short, never a clean
/// end); `timeouts.request: 0s` lets a rule stream for as long as it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_are_time_limited() {
    use routing_tower::RoutingLayer;
    use tower::Layer as _;
    // 10 bytes of 100, then silence.
    let stall = trickler(Duration::from_millis(10), 10).await;
    // A byte every 50 ms, all 100: never idle, done after 5 s.
    let slow = trickler(Duration::from_millis(50), 100).await;
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: stall, address: "{}"}}, {{name: slow, address: "{}"}}]
routes:
  - name: r
    rules:
      - matches: [{{path: {{prefix: /stall}}}}]
        backends: [{{name: stall}}]
      - matches: [{{path: {{prefix: /slow}}}}]
        backends: [{{name: slow}}]
        timeouts: {{request: 1s}}
      - matches: [{{path: {{prefix: /stream}}}}]
        backends: [{{name: slow}}]
        timeouts: {{request: 0s}}
"#,
        stall.addr, slow.addr
    ))
    .unwrap();
    let svc = RoutingLayer::builder(router)
        .backends(
            Backends::new()
                .with("stall", HttpBackend::new(stall.addr))
                .with("slow", HttpBackend::new(slow.addr)),
        )
        .request_timeout(Some(Duration::from_millis(800)))
        .response_idle_timeout(Some(Duration::from_millis(300)))
        .build()
        .layer(routing_tower::NotFound);
    let proxy = serve(svc).await;

    // Stalled mid-body: cut at the idle timeout (300 ms), well before the deadline.
    let (status, got, took) = timed_get(proxy.addr, "/stall").await;
    assert_eq!((status, got), (200, 10), "headers and 10 bytes, then cut");
    assert!(took < Duration::from_millis(750), "cut after {took:?}");

    // Trickling: never idle, cut at the rule's 1 s request timeout.
    let (status, got, took) = timed_get(proxy.addr, "/slow").await;
    assert_eq!(status, 200);
    assert!(got < 100, "cut short: {got} bytes");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(3)).contains(&took),
        "cut after {took:?}"
    );

    // `0s` turns the request timeout off: the whole 5 s answer arrives.
    let (status, got, took) = timed_get(proxy.addr, "/stream").await;
    assert_eq!((status, got), (200, 100), "complete after {took:?}");
}

/// Item 6 (per-backend caps) — every backend has a concurrency cap, by default
/// (Envoy's 1024 + 1024 pending) or set: a request over it is answered 503 at once
/// and not counted against the backend, and a slot is held until the response body
/// has been sent, not only its head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_have_concurrency_caps() {
    use routing_tower::RoutingLayer;
    use tower::Layer as _;
    // A complete answer that takes 1 s to send (100 bytes, one every 10 ms).
    let slow = trickler(Duration::from_millis(10), 100).await;
    let router = Router::from_yaml(&format!(
        r#"
backends: [{{name: app, address: "{}"}}]
routes: [{{name: r, rules: [{{backends: [{{name: app}}]}}]}}]
"#,
        slow.addr
    ))
    .unwrap();
    let layer = RoutingLayer::builder(router)
        .backends(Backends::new().with("app", HttpBackend::new(slow.addr)))
        .backend_limit(Some(routing_core::ConnectionPool {
            max_concurrent_requests: 2,
            max_pending_requests: 0,
        }))
        .build();
    let proxy = serve(layer.clone().layer(routing_tower::NotFound)).await;
    let addr = proxy.addr;
    let first = tokio::spawn(async move { timed_get(addr, "/a").await });
    let second = tokio::spawn(async move { timed_get(addr, "/b").await });
    // Both bodies are streaming (heads long sent): the slots are still held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, took) = timed_get(addr, "/c").await;
    assert_eq!(status, 503, "over the cap");
    assert!(
        took < Duration::from_millis(300),
        "refused at once: {took:?}"
    );
    for h in [first, second] {
        let (status, got, _) = h.await.unwrap();
        assert_eq!((status, got), (200, 100));
    }
    // Slots given back when the bodies ended.
    let (status, got, _) = timed_get(addr, "/d").await;
    assert_eq!((status, got), (200, 100));
    let stats = layer.stats();
    let app = &stats.iter().find(|(n, _)| &**n == "app").expect("app").1;
    assert_eq!(
        app.local_failures(),
        0,
        "the refusal is not the backend's: {app:?}"
    );
    assert_eq!(app.completed(), 3, "{app:?}");
}

/// Item 9 — a rollout is judged on the driven rule's own requests: a flood of
/// `x-canary: true` requests that another rule forces onto the (healthy-looking)
/// candidate cannot dilute the candidate's errors on the rule being rolled out.
/// (The other half of item 9, a step that never gets traffic, ends `Inconclusive`:
/// routing-rollout's `max_step` tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_verdicts_cannot_be_steered_by_forced_traffic() {
    use routing_rollout::{
        Checks, RollbackReason, Rollout, RolloutPlan, RolloutPlanSpec, RolloutState, RolloutTarget,
    };
    use routing_tower::clock::{ManualClock, SharedClock};
    use routing_tower::rollout::Driver;
    use routing_tower::RoutingLayer;
    use tower::Layer as _;

    let v1 = tower::service_fn(|_req: Request<body::Body>| async {
        Ok::<_, Infallible>(Response::new(body::full("v1")))
    });
    // The candidate is broken, except on what a prober forcing it would ask.
    let v2 = tower::service_fn(|req: Request<body::Body>| async move {
        let mut res = Response::new(body::full("v2"));
        if !req.headers().contains_key("x-canary") {
            *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        }
        Ok::<_, Infallible>(res)
    });
    let router = Router::from_yaml(
        r#"
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    rules:
      - name: forced
        matches: [{headers: [{name: x-canary, exact: "true"}]}]
        backends: [{name: v2}]
      - name: main
        backends: [{name: v1}]
"#,
    )
    .unwrap();
    let layer = RoutingLayer::builder(router.clone())
        .backends(Backends::new().with("v1", v1).with("v2", v2))
        .rng_seed(7)
        .build();
    let proxy = serve(layer.clone().layer(routing_tower::NotFound)).await;
    let plan = RolloutPlan::try_from(RolloutPlanSpec {
        steps: vec![50.0, 100.0],
        hold: "30s".parse().unwrap(),
        max_step: None,
        checks: Checks {
            max_error_rate: Some(0.1),
            min_requests: 5,
            ..Checks::default()
        },
    })
    .unwrap();
    let clock = Arc::new(ManualClock::new());
    let driver = Driver::new(
        Rollout::new(
            plan,
            RolloutTarget::http_rule("shop", "main", "v1", "v2"),
            router.clone(),
        ),
        layer.clone(),
        Arc::clone(&clock) as SharedClock,
    );
    driver.tick();
    assert!(matches!(
        driver.state(),
        RolloutState::Running { step: 0, .. }
    ));

    // 300 forced requests, all answered 200 by the candidate...
    for _ in 0..300 {
        let (status, body) =
            raw(proxy.addr, "GET / HTTP/1.1\r\nHost: shop\r\nx-canary: true").await;
        assert_eq!((status, body.as_str()), (200, "v2"));
    }
    // ...and 40 of the rule's own, about half of them to the failing candidate.
    let mut candidate_errors = 0u64;
    for _ in 0..40 {
        let (status, body) = raw(proxy.addr, "GET / HTTP/1.1\r\nHost: shop").await;
        match (status, body.as_str()) {
            (200, "v1") => {}
            (500, "v2") => candidate_errors += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        candidate_errors >= 5,
        "{candidate_errors} requests reached v2"
    );
    // On the backend's totals the candidate would look healthy (under 10 % errors)...
    let totals = layer.stats_registry().get("v2").unwrap().snapshot();
    assert_eq!(totals.completed(), 300 + candidate_errors);
    assert!(totals.error_rate().unwrap() < 0.1, "{totals:?}");
    // ...but the verdict reads rule main's own requests: every one of them failed.
    let figures = driver.current_figures().unwrap();
    assert_eq!(figures.candidate.completed, candidate_errors, "{figures:?}");
    clock.advance(std::time::Duration::from_secs(30));
    driver.tick();
    assert!(
        matches!(
            driver.state(),
            RolloutState::RolledBack {
                reason: RollbackReason::ErrorRate { .. },
                ..
            }
        ),
        "{:?}",
        driver.state()
    );
}

/// Item 5 (the server) — `routing_tower::server::serve`, which the `reverse_proxy`
/// example runs: a client that never finishes its request head is disconnected at the
/// header-read timeout (10 s by default), and connections beyond the cap wait to be
/// accepted instead of being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_bounds_request_heads_and_connections() {
    use routing_tower::server::{serve as serve_limited, ServerLimits};
    assert_eq!(
        ServerLimits::default(),
        ServerLimits {
            header_read_timeout: Some(Duration::from_secs(10)),
            max_connections: 10_000
        }
    );
    let app = echo("app").await;
    let svc = one_backend(app.addr);
    // Two servers: one with a short head deadline, one with the default and a cap
    // of two connections.
    let start = |limits: ServerLimits| {
        let svc = svc.clone();
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve_limited(listener, svc, limits, async {
                let _ = stopped.await;
            }));
            (addr, stop, server)
        }
    };
    let (addr, stop, server) = start(ServerLimits {
        header_read_timeout: Some(Duration::from_millis(300)),
        ..ServerLimits::default()
    })
    .await;

    // A half-sent head: closed at the header-read timeout, not held open.
    let started = std::time::Instant::now();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /x HTTP/1.1\r\nHost: sh")
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf))
        .await
        .expect("closed within 5 s")
        .ok();
    let took = started.elapsed();
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(2)).contains(&took),
        "closed after {took:?}"
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns on shutdown")
        .unwrap();

    // Two idle keep-alive connections fill the cap: a third is not served while they
    // are open, and is as soon as one closes.
    let (addr, stop, server) = start(ServerLimits {
        max_connections: 2,
        ..ServerLimits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /held HTTP/1.1\r\nHost: shop\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        c.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        held.push(c);
    }
    let third = tokio::spawn(async move { raw(addr, "GET /third HTTP/1.1\r\nHost: shop").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!third.is_finished(), "served beyond the connection cap");
    drop(held.pop());
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "app /third"));
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns on shutdown")
        .unwrap();
}
