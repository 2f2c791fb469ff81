//! The layer end to end: real HTTP servers on 127.0.0.1 (ephemeral ports) in front
//! of and behind it (the workspace's test kit, `routing_testkit::http`), plus
//! in-process backends where the network adds nothing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use routing_core::Router;
use routing_testkit::http::{client, get, serve, set_cookie, upstream, upstream_with};
use routing_tower::clock::ManualClock;
use routing_tower::{
    body, Backends, Body, CookieKey, HttpBackend, RouteDecision, Routing, RoutingError,
    RoutingLayer,
};
use tower::{Layer, Service, ServiceExt};

/// Five standard deviations of a binomial count: the bound of every split check
/// (a false failure about once in 3.5 million runs).
fn five_sigma(n: u64, p: f64) -> f64 {
    5.0 * (n as f64 * p * (1.0 - p)).sqrt()
}

fn shop_yaml(v1: u32, v2: u32, a1: std::net::SocketAddr, a2: std::net::SocketAddr) -> String {
    format!(
        r#"
backends:
  - {{name: v1, address: "{a1}"}}
  - {{name: v2, address: "{a2}"}}
routes:
  - name: shop
    rules:
      - name: canary-header
        matches: [{{headers: [{{name: x-canary, exact: "true"}}]}}]
        backends: [{{name: v2}}]
      - name: split
        backends: [{{name: v1, weight: {v1}}}, {{name: v2, weight: {v2}}}]
        session_persistence: {{cookie: {{name: shop-sticky, ttl: 1h, http_only: true}}}}
"#
    )
}

/// An in-process backend answering with its name.
fn named(
    name: &'static str,
) -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(move |_req: Request<Body>| async move {
        Ok::<_, Infallible>(Response::new(body::full(name)))
    })
}

async fn text(res: Response<Body>) -> String {
    let b = res.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

fn req(uri: &str) -> Request<Body> {
    Request::get(uri).body(body::empty()).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_real_requests_split_90_10_within_bounds() {
    let (u1, u2) = (upstream("v1").await, upstream("v2").await);
    let router = Router::from_yaml(&shop_yaml(90, 10, u1.addr(), u2.addr())).expect("config");
    let backends = Backends::new()
        .with("v1", HttpBackend::new(u1.addr()))
        .with("v2", HttpBackend::new(u2.addr()));
    let layer = RoutingLayer::new(router, backends);
    let proxy = serve(layer.layer(routing_tower::NotFound)).await;
    let c = client();
    let n = 10_000u64;
    let workers = 32u64;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let c = c.clone();
        let addr = proxy.addr;
        tasks.spawn(async move {
            let mut v2 = 0u64;
            for _ in 0..n / workers {
                let a = get(&c, addr, "/", &[]).await;
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
    let total = n / workers * workers;
    let expected = total as f64 * 0.1;
    assert!(
        (v2 as f64 - expected).abs() <= five_sigma(total, 0.1),
        "v2 got {v2} of {total}, expected {expected} ± {:.0}",
        five_sigma(total, 0.1)
    );
    assert_eq!(
        u1.hits() + u2.hits(),
        total,
        "every request reached one upstream once"
    );
    let stats: HashMap<_, _> = layer.stats().into_iter().collect();
    assert_eq!(stats["v2"].requests, u2.hits());
    assert_eq!(stats["v1"].responses[1], u1.hits(), "2xx of v1");
    assert!(
        stats["v1"].quantile(0.99).is_some(),
        "latency histogram filled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_header_always_goes_to_v2() {
    let (u1, u2) = (upstream("v1").await, upstream("v2").await);
    let router = Router::from_yaml(&shop_yaml(100, 0, u1.addr(), u2.addr())).expect("config");
    let backends = Backends::new()
        .with("v1", HttpBackend::new(u1.addr()))
        .with("v2", HttpBackend::new(u2.addr()));
    let proxy = serve(Routing::dispatch(router, backends)).await;
    let c = client();
    for _ in 0..200 {
        let a = get(&c, proxy.addr, "/", &[("x-canary", "true")]).await;
        assert_eq!(a.body, "v2");
        assert!(
            set_cookie(&a.headers, "shop-sticky").is_none(),
            "the canary rule has no stickiness"
        );
        let a = get(&c, proxy.addr, "/", &[]).await;
        assert_eq!(a.body, "v1", "weight 0 never gets traffic");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_clients_stay_across_a_weight_change() {
    let (u1, u2) = (upstream("v1").await, upstream("v2").await);
    let router = Router::from_yaml(&shop_yaml(90, 10, u1.addr(), u2.addr())).expect("config");
    let backends = Backends::new()
        .with("v1", HttpBackend::new(u1.addr()))
        .with("v2", HttpBackend::new(u2.addr()));
    let proxy = serve(Routing::dispatch(router.clone(), backends)).await;
    let c = client();
    let clients = 200;
    let mut sessions = Vec::new();
    for _ in 0..clients {
        let a = get(&c, proxy.addr, "/", &[]).await;
        let cookie = set_cookie(&a.headers, "shop-sticky").expect("first response sets the cookie");
        // Opaque: the backend's name is not in the cookie, even once decoded (a
        // substring test on the base64 text would trip on chance letters).
        let value = cookie.split_once('=').map_or("", |(_, v)| v);
        let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, value)
            .expect("base64url");
        assert!(
            !raw.windows(2).any(|w| w == b"v1" || w == b"v2"),
            "opaque: {cookie}"
        );
        sessions.push((cookie, a.body));
    }
    let (mut same, mut total) = (0u64, 0u64);
    for round in 0..20 {
        if round == 10 {
            router
                .update_yaml(&shop_yaml(50, 50, u1.addr(), u2.addr()))
                .expect("new weights");
        }
        for (cookie, first) in &sessions {
            let a = get(&c, proxy.addr, "/", &[("cookie", cookie)]).await;
            assert_eq!(a.status, StatusCode::OK);
            assert!(
                set_cookie(&a.headers, "shop-sticky").is_none(),
                "a valid cookie is not re-issued"
            );
            same += u64::from(&a.body == first);
            total += 1;
        }
    }
    let share = same as f64 / total as f64;
    assert!(share >= 0.999, "sticky share {share} ({same} of {total})");
    // New clients follow the new weights.
    let mut v2 = 0u64;
    for _ in 0..2_000 {
        v2 += u64::from(get(&c, proxy.addr, "/", &[]).await.body == "v2");
    }
    assert!(
        (v2 as f64 - 1_000.0).abs() <= five_sigma(2_000, 0.5),
        "new sessions split 50/50 after the change: {v2}"
    );
}

#[tokio::test]
async fn tampered_foreign_and_stale_cookies_get_a_fresh_choice_and_a_new_cookie() {
    let yaml = |with_v2: bool| {
        format!(
            r#"
backends: [{{name: v1}}, {{name: v2}}]
routes: [{{name: shop, rules: [{{backends: [{{name: v1}}{}], session_persistence: {{cookie: {{name: s}}}}}}]}}]
"#,
            if with_v2 { ", {name: v2}" } else { "" }
        )
    };
    let router = Router::from_yaml(&yaml(true)).expect("config");
    let layer = RoutingLayer::builder(router.clone())
        .backends(
            Backends::new()
                .with("v1", named("v1"))
                .with("v2", named("v2")),
        )
        .cookie_key(CookieKey::from_bytes([42; 32]))
        .build();
    let svc = layer.layer(routing_tower::NotFound);
    let with_cookie = |v: &str| {
        Request::get("http://shop/")
            .header("cookie", format!("other=1; s={v}"))
            .body(body::empty())
            .expect("request")
    };
    // A genuine cookie for v2 pins to v2.
    let good = CookieKey::from_bytes([42; 32]).issue("s", "shop", "v2", routing_tower_now());
    for _ in 0..20 {
        let res = svc
            .clone()
            .oneshot(with_cookie(&good))
            .await
            .expect("infallible");
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(text(res).await, "v2");
    }
    // Every single-character change is a fresh choice with a new cookie, never an error.
    let mut bytes = good.clone().into_bytes();
    for i in 0..bytes.len() {
        let orig = bytes[i];
        bytes[i] = if orig == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes.clone()).expect("ascii");
        let res = svc
            .clone()
            .oneshot(with_cookie(&forged))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK, "forged cookie at {i}");
        let reissued = res
            .headers()
            .get("set-cookie")
            .expect("re-issued")
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            reissued.starts_with("s=") && !reissued.contains(&forged),
            "{reissued}"
        );
        bytes[i] = orig;
    }
    // A cookie from another key (another deployment) is foreign.
    let foreign = CookieKey::from_bytes([7; 32]).issue("s", "shop", "v2", routing_tower_now());
    let res = svc
        .clone()
        .oneshot(with_cookie(&foreign))
        .await
        .expect("infallible");
    assert!(res.headers().get("set-cookie").is_some());
    // Stale: v2 leaves the rule; its cookie falls back to v1 and is re-issued.
    router.update_yaml(&yaml(false)).expect("v2 removed");
    let res = svc
        .clone()
        .oneshot(with_cookie(&good))
        .await
        .expect("infallible");
    assert!(
        res.headers().get("set-cookie").is_some(),
        "stale cookie re-issued"
    );
    assert_eq!(text(res).await, "v1");
    // Ejected/unavailable: back with v2 marked down.
    router.update_yaml(&yaml(true)).expect("v2 back");
    router.health().set_available("v2", false);
    let res = svc
        .clone()
        .oneshot(with_cookie(&good))
        .await
        .expect("infallible");
    assert!(
        res.headers().get("set-cookie").is_some(),
        "cookie for a down backend re-issued"
    );
    assert_eq!(text(res).await, "v1");
}

fn routing_tower_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_turn_a_flapping_backend_into_full_success_within_budget() {
    // v1 fails every other request; v2 is healthy. A retry prefers another backend.
    let flappy = upstream_with(
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
    let healthy = upstream("v2").await;
    let yaml = format!(
        r#"
backends: [{{name: v1, address: "{}"}}, {{name: v2, address: "{}"}}]
routes:
  - name: api
    rules:
      - backends: [{{name: v1}}, {{name: v2}}]
        retry: {{attempts: 2, on: [5xx], backoff: 1ms, budget_percent: 40, budget_min_per_second: 1}}
"#,
        flappy.addr(),
        healthy.addr()
    );
    let router = Router::from_yaml(&yaml).expect("config");
    let layer = RoutingLayer::new(
        router,
        Backends::new()
            .with("v1", HttpBackend::new(flappy.addr()))
            .with("v2", HttpBackend::new(healthy.addr())),
    );
    let proxy = serve(layer.layer(routing_tower::NotFound)).await;
    let c = client();
    let n = 2_000u64;
    for _ in 0..n {
        let a = get(&c, proxy.addr, "/", &[]).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "client must never see the flap: {}",
            a.body
        );
    }
    let retries: u64 = layer.stats().iter().map(|(_, s)| s.retries).sum();
    let tries = flappy.hits() + healthy.hits();
    assert_eq!(tries, n + retries, "every extra try is a counted retry");
    // About a quarter of first tries fail (half go to v1, half of those fail).
    assert!(retries > n / 8, "retries happened: {retries}");
    // Budget: 40 % of requests plus 1/s over the 10 s window.
    assert!(
        retries as f64 <= 0.4 * n as f64 + 10.0,
        "{retries} retries exceed the budget"
    );
}

#[tokio::test]
async fn the_retry_budget_caps_retries_in_an_outage() {
    let failing = tower::service_fn(|_r: Request<Body>| async {
        let mut res = Response::new(body::full("down"));
        *res.status_mut() = StatusCode::BAD_GATEWAY;
        Ok::<_, Infallible>(res)
    });
    let router = Router::from_yaml(
        r#"
backends: [{name: a}]
routes: [{name: r, rules: [{backends: [{name: a}],
  retry: {attempts: 3, on: [gateway-error], backoff: 1ms, budget_percent: 10, budget_min_per_second: 1}}]}]
"#,
    )
    .expect("config");
    let layer = RoutingLayer::new(router, Backends::new().with("a", failing));
    let svc = layer.layer(routing_tower::NotFound);
    let n = 1_000u64;
    for _ in 0..n {
        let res = svc
            .clone()
            .oneshot(req("http://x/"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    }
    let s = &layer.stats()[0].1;
    // Without a budget this would be 3 000 retries.
    assert!(
        s.retries as f64 <= 0.1 * n as f64 + 10.0,
        "{} retries",
        s.retries
    );
    assert_eq!(s.requests, n + s.retries);
}

#[tokio::test(start_paused = true)]
async fn fault_percentages_are_within_bounds_and_gated_by_header() {
    let router = Router::from_yaml(
        r#"
backends: [{name: a}]
routes: [{name: r, rules: [{backends: [{name: a}],
  fault: {delay: {fixed: 5s, percent: 30}, abort: {status: 503, percent: 20},
          headers: [{name: fault-injection, exact: "on"}]}}]}]
"#,
    )
    .expect("config");
    let svc = Routing::dispatch(router, Backends::new().with("a", named("a")));
    let n = 4_000u64;
    let (mut delayed, mut aborted) = (0u64, 0u64);
    for _ in 0..n {
        let r = Request::get("http://x/")
            .header("fault-injection", "on")
            .body(body::empty())
            .expect("request");
        let t = tokio::time::Instant::now();
        let res = svc.clone().oneshot(r).await.expect("infallible");
        delayed += u64::from(t.elapsed() >= Duration::from_secs(5));
        aborted += u64::from(res.status() == StatusCode::SERVICE_UNAVAILABLE);
    }
    for (what, got, p) in [("delayed", delayed, 0.3), ("aborted", aborted, 0.2)] {
        let exp = n as f64 * p;
        assert!(
            (got as f64 - exp).abs() <= five_sigma(n, p),
            "{what}: {got} of {n}, expected {exp}"
        );
    }
    // Without the header: no fault at all.
    for _ in 0..500 {
        let t = tokio::time::Instant::now();
        let res = svc
            .clone()
            .oneshot(req("http://x/"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn an_always_failing_backend_is_ejected_at_its_threshold_and_returns() {
    let bad_hits = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&bad_hits);
    let bad = tower::service_fn(move |_r: Request<Body>| {
        h.fetch_add(1, Ordering::Relaxed);
        async {
            let mut res = Response::new(body::full("bad"));
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok::<_, Infallible>(res)
        }
    });
    let router = Router::from_yaml(
        r#"
outlier_detection: {consecutive_5xx: 5, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 50}
backends: [{name: bad}, {name: good}]
routes: [{name: r, rules: [{backends: [{name: bad}, {name: good}]}]}]
"#,
    )
    .expect("config");
    let clock = Arc::new(ManualClock::new());
    let layer = RoutingLayer::builder(router.clone())
        .backends(Backends::new().with("bad", bad).with("good", named("good")))
        .clock(clock.clone())
        .build();
    let svc = layer.layer(routing_tower::NotFound);
    // Until ejection, `bad` gets about half the requests; it is ejected on its 5th 5xx.
    let mut sent = 0;
    while bad_hits.load(Ordering::Relaxed) < 5 {
        svc.clone()
            .oneshot(req("http://x/"))
            .await
            .expect("infallible");
        sent += 1;
        assert!(sent < 1_000, "bad never reached 5 failures");
    }
    assert_eq!(
        router.health().is_available("bad"),
        Some(false),
        "ejected at exactly 5"
    );
    let ejected = &layer.stats()[0];
    assert_eq!(
        (&*ejected.0, ejected.1.ejected, ejected.1.ejections),
        ("bad", true, 1)
    );
    for _ in 0..200 {
        let res = svc
            .clone()
            .oneshot(req("http://x/"))
            .await
            .expect("infallible");
        assert_eq!(text(res).await, "good", "no traffic to an ejected backend");
    }
    assert_eq!(bad_hits.load(Ordering::Relaxed), 5);
    // The ejection ends on its own after base_ejection_time.
    clock.advance(Duration::from_secs(31));
    let mut back = false;
    for _ in 0..200 {
        let res = svc
            .clone()
            .oneshot(req("http://x/"))
            .await
            .expect("infallible");
        back |= text(res).await == "bad";
    }
    assert!(back, "bad gets traffic again after its ejection");
    assert_eq!(
        router.health().is_available("bad"),
        Some(false),
        "and is ejected again"
    );
    assert_eq!(layer.stats()[0].1.ejections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_config_swaps_under_load_fail_no_request() {
    let router = Router::from_yaml(&swap_yaml(0)).expect("config");
    let backends = Backends::new()
        .with("a", named("a"))
        .with("b", named("b"))
        .with("c", named("c"));
    let proxy = serve(Routing::dispatch(router.clone(), backends)).await;
    let c = client();
    let done = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (c, done, addr) = (c.clone(), Arc::clone(&done), proxy.addr);
        load.spawn(async move {
            let mut n = 0u64;
            // Bounded: stops when the swaps are done, or after 200 000 requests.
            while !done.load(Ordering::Relaxed) && n < 200_000 {
                let a = get(&c, addr, "/", &[]).await;
                assert_eq!(a.status, StatusCode::OK, "failed during swaps: {}", a.body);
                n += 1;
            }
            n
        });
    }
    let start = router.generation();
    for i in 1..=1_000 {
        router.update_yaml(&swap_yaml(i)).expect("valid swap");
        if i % 10 == 0 {
            assert!(router.update_yaml("routes: [{name: broken}]").is_err());
        }
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::Relaxed);
    let mut requests = 0;
    while let Some(n) = load.join_next().await {
        requests += n.expect("no failed request");
    }
    assert_eq!(router.generation(), start + 1_000);
    assert!(requests > 0);
}

fn swap_yaml(i: u32) -> String {
    let third = if i % 3 == 0 {
        ", {name: c, weight: 5}"
    } else {
        ""
    };
    format!(
        "backends: [{{name: a}}, {{name: b}}, {{name: c}}]\nroutes: [{{name: r, rules: [{{backends: [{{name: a, weight: {}}}, {{name: b, weight: {}}}{third}]}}]}}]",
        1 + i % 7,
        1 + i % 5
    )
}

#[tokio::test]
async fn poll_ready_of_the_backend_is_respected() {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let router = Router::from_yaml(
        "backends: [{name: m}]\nroutes: [{name: r, rules: [{backends: [{name: m}]}]}]",
    )
    .expect("config");
    let mut svc = Routing::dispatch(router, Backends::new().with("m", mock));
    handle.allow(0);
    // The routing service is ready (the backend is chosen in `call`)…
    tower::ServiceExt::<Request<Body>>::ready(&mut svc)
        .await
        .expect("ready");
    let fut = tokio::spawn(svc.call(req("http://x/hello")));
    // …but the backend is not called before it is ready.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(20), handle.next_request())
            .await
            .is_err(),
        "a not-ready backend must not be called"
    );
    handle.allow(1);
    let (r, send) = handle.next_request().await.expect("called once ready");
    assert_eq!(r.uri().path(), "/hello");
    assert!(
        r.extensions().get::<RouteDecision>().is_none(),
        "dispatch mode does not annotate (annotate mode does)"
    );
    send.send_response(Response::new(body::full("ok")));
    let res = fut.await.expect("task").expect("infallible");
    assert_eq!(text(res).await, "ok");
}

#[tokio::test]
async fn unmatched_requests_get_404_and_unserved_backends_503_with_typed_reasons() {
    let router = Router::from_yaml(
        r#"
backends: [{name: a}, {name: ghost}]
routes:
  - name: r
    hostnames: [shop.example.com]
    rules:
      - matches: [{path: {prefix: /ghost}}]
        backends: [{name: ghost}]
      - backends: [{name: a}]
"#,
    )
    .expect("config");
    let svc = Routing::dispatch(router.clone(), Backends::new().with("a", named("a")));
    let res = svc
        .clone()
        .oneshot(req("http://other.example.com/"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(matches!(
        res.extensions().get::<RoutingError>(),
        Some(RoutingError::NoRoute(_))
    ));
    let res = svc
        .clone()
        .oneshot(req("http://shop.example.com/ghost"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    match res.extensions().get::<RoutingError>() {
        Some(RoutingError::NoHealthyBackend(e)) => assert_eq!(e.backend.as_deref(), Some("ghost")),
        other => panic!("{other:?}"),
    }
    router.health().set_available("a", false);
    let res = svc
        .clone()
        .oneshot(req("http://shop.example.com/"))
        .await
        .expect("infallible");
    // One backend of one, down: the panic threshold (50 %) sends traffic anyway.
    assert_eq!(res.status(), StatusCode::OK);
    // Fall-through hands unmatched requests to the wrapped service.
    let app = tower::service_fn(|_r: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(body::full("app")))
    });
    let svc = RoutingLayer::builder(router)
        .backends(Backends::new().with("a", named("a")))
        .fall_through(true)
        .build()
        .layer(app);
    let res = svc
        .oneshot(req("http://other.example.com/"))
        .await
        .expect("infallible");
    assert_eq!(text(res).await, "app");
}

#[tokio::test(start_paused = true)]
async fn per_try_and_request_timeouts_answer_504() {
    let slow = tower::service_fn(|_r: Request<Body>| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, Infallible>(Response::new(body::full("late")))
    });
    let router = Router::from_yaml(
        r#"
backends: [{name: slow}]
routes:
  - name: r
    rules:
      - matches: [{path: {prefix: /try}}]
        backends: [{name: slow}]
        timeouts: {per_try: 100ms}
      - backends: [{name: slow}]
        timeouts: {request: 2s}
"#,
    )
    .expect("config");
    let svc = Routing::dispatch(router, Backends::new().with("slow", slow));
    let t = tokio::time::Instant::now();
    let res = svc
        .clone()
        .oneshot(req("http://x/try"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        matches!(res.extensions().get::<RoutingError>(), Some(RoutingError::Timeout(t)) if t.per_try)
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    let res = svc
        .clone()
        .oneshot(req("http://x/"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        matches!(res.extensions().get::<RoutingError>(), Some(RoutingError::Timeout(t)) if !t.per_try)
    );
}

#[tokio::test]
async fn redirects_rewrites_and_header_filters() {
    let echo = tower::service_fn(|r: Request<Body>| async move {
        let host = r
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let env = r
            .headers()
            .get("x-env")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let gone = r.headers().contains_key("x-debug");
        let text = format!(
            "{} {} host={host} env={env} debug={gone}",
            r.method(),
            r.uri()
        );
        Ok::<_, Infallible>(Response::new(body::full(text)))
    });
    let router = Router::from_yaml(
        r#"
backends: [{name: echo}]
routes:
  - name: r
    rules:
      - matches: [{path: {prefix: /old}}]
        redirect: {scheme: https, hostname: new.example.com, path: {prefix: /new}, status: 301}
      - matches: [{path: {prefix: /api/v1}}]
        backends: [{name: echo}]
        filters:
          url_rewrite: {hostname: internal.local, path: {prefix: /v1}}
          request_headers: {set: [{name: x-env, value: canary}], remove: [x-debug]}
          response_headers: {add: [{name: x-served-by, value: routing-tower}]}
"#,
    )
    .expect("config");
    let svc = Routing::dispatch(router, Backends::new().with("echo", echo));
    let r = Request::get("/old/page?x=1")
        .header("host", "shop.example.com:8080")
        .body(body::empty())
        .expect("request");
    let res = svc.clone().oneshot(r).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        res.headers()["location"],
        "https://new.example.com/new/page?x=1"
    );
    let r = Request::get("/api/v1/users?id=7")
        .header("host", "shop.example.com")
        .header("x-debug", "1")
        .body(body::empty())
        .expect("request");
    let res = svc.clone().oneshot(r).await.expect("infallible");
    assert_eq!(res.headers()["x-served-by"], "routing-tower");
    assert_eq!(
        text(res).await,
        "GET /v1/users?id=7 host=internal.local env=canary debug=false"
    );
}

/// Backend filters go with the backend of each try: a first try to `a` (which
/// fails) carries `a`'s header and rewrite, the retry to `b` carries `b`'s only,
/// and the answer gets `b`'s response header after the rule's. A backend whose
/// filter answers (a redirect) is never called.
#[tokio::test]
async fn backend_filters_apply_to_the_try_of_their_backend() {
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let echo = |name: &'static str, status: u16| {
        let seen = Arc::clone(&seen);
        tower::service_fn(move |r: Request<Body>| {
            let seen = Arc::clone(&seen);
            async move {
                let who = r
                    .headers()
                    .get_all("x-picked")
                    .iter()
                    .map(|v| v.to_str().unwrap_or("?").to_owned())
                    .collect::<Vec<_>>()
                    .join(",");
                seen.lock()
                    .expect("lock")
                    .push(format!("{name} {} picked={who}", r.uri()));
                let mut res = Response::new(body::full(name));
                *res.status_mut() = StatusCode::from_u16(status).expect("status");
                Ok::<_, Infallible>(res)
            }
        })
    };
    let router = Router::from_yaml(
        r#"
backends: [{name: a}, {name: b}, {name: moved}]
routes:
  - name: r
    rules:
      - matches: [{path: {prefix: /api}}]
        backends:
          - {name: a, weight: 1000000, filters: {request_headers: {set: [{name: x-picked, value: a}]}, url_rewrite: {path: {prefix: /a-api}}}}
          - {name: b, weight: 1, filters: {request_headers: {add: [{name: x-picked, value: b}]}, response_headers: {set: [{name: x-layer, value: from-b}]}}}
        retry: {attempts: 1, on: [5xx], backoff: 1ms}
        filters: {response_headers: {add: [{name: x-rule, value: r}]}}
      - matches: [{path: {prefix: /old}}]
        backends: [{name: moved, filters: {redirect: {hostname: new.test, status: 308}}}]
"#,
    )
    .expect("config");
    let svc = Routing::dispatch(
        router,
        Backends::new()
            .with("a", echo("a", 503))
            .with("b", echo("b", 200))
            .with("moved", echo("moved", 200)),
    );
    let res = svc
        .clone()
        .oneshot(req("http://shop.test/api/x"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-layer"], "from-b");
    assert_eq!(res.headers()["x-rule"], "r");
    assert_eq!(text(res).await, "b");
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            "a http://shop.test/a-api/x picked=a",
            "b http://shop.test/api/x picked=b"
        ]
    );

    let res = svc
        .clone()
        .oneshot(req("http://shop.test/old/page"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(res.headers()["location"], "http://new.test/old/page");
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "the redirecting backend is never called"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_copies_follow_the_percentage_and_never_delay_the_client() {
    let copies = Arc::new(AtomicU64::new(0));
    let c2 = Arc::clone(&copies);
    let shadow = tower::service_fn(move |r: Request<Body>| {
        let c2 = Arc::clone(&c2);
        async move {
            let body = r
                .into_body()
                .collect()
                .await
                .expect("mirrored body")
                .to_bytes();
            assert_eq!(&body[..], b"payload", "the copy carries the body");
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(Response::new(body::full("shadow")))
        }
    });
    let router = Router::from_yaml(
        r#"
backends: [{name: main}, {name: shadow}]
routes: [{name: r, rules: [{backends: [{name: main}], mirror: {backend: shadow, percent: 25}}]}]
"#,
    )
    .expect("config");
    // The percentage is what is tested here, so the mirror concurrency cap (64 by
    // default, tested in hardening.rs) is set above the ~100 copies in flight.
    let svc = RoutingLayer::builder(router)
        .backends(
            Backends::new()
                .with("main", named("main"))
                .with("shadow", shadow),
        )
        .mirror_limits(1_000, Duration::from_secs(5))
        .build()
        .layer(routing_tower::NotFound);
    let n = 2_000u64;
    let t = tokio::time::Instant::now();
    for _ in 0..n {
        let r = Request::post("http://x/")
            .body(body::full("payload"))
            .expect("request");
        let res = svc.clone().oneshot(r).await.expect("infallible");
        assert_eq!(text(res).await, "main");
    }
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the 200 ms mirror never delayed a client"
    );
    // Let the copies finish (bounded wait).
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = copies.load(Ordering::Relaxed);
    assert!(
        (got as f64 - 500.0).abs() <= five_sigma(n, 0.25),
        "{got} copies of {n} at 25 %"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backend_queue_answers_503_at_once() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = Arc::clone(&gate);
    let blocked = tower::service_fn(move |_r: Request<Body>| {
        let g = Arc::clone(&g);
        async move {
            let _p = g.acquire().await.expect("gate");
            Ok::<_, Infallible>(Response::new(body::full("done")))
        }
    });
    let router = Router::from_yaml(
        r#"
backends: [{name: b, connection_pool: {max_concurrent_requests: 2, max_pending_requests: 3}}]
routes: [{name: r, rules: [{backends: [{name: b}]}]}]
"#,
    )
    .expect("config");
    let svc = Routing::dispatch(router, Backends::new().with("b", blocked));
    // Each client reads its answer to the end: a backend's slot is held until the
    // response body is done, not only its head.
    let mut held = Vec::new();
    for _ in 0..5 {
        let call = tokio::spawn(svc.clone().oneshot(req("http://x/")));
        held.push(tokio::spawn(read_to_end(call)));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..10 {
        let res = svc
            .clone()
            .oneshot(req("http://x/"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(
            res.extensions().get::<RoutingError>(),
            Some(RoutingError::Overloaded(_))
        ));
    }
    gate.add_permits(5);
    for h in held {
        let (status, body) = h.await.expect("task");
        assert_eq!(status, StatusCode::OK, "queued requests are served");
        assert_eq!(&body[..], b"done");
    }
}

/// The status and whole body of the answer `call` gives.
async fn read_to_end(
    call: tokio::task::JoinHandle<Result<Response<Body>, Infallible>>,
) -> (StatusCode, bytes::Bytes) {
    let res = call.await.expect("task").expect("infallible");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

#[tokio::test]
async fn annotate_mode_applies_the_policy_and_records_the_decision() {
    let router = Router::from_yaml(
        r#"
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    rules:
      - matches: [{headers: [{name: x-canary, exact: "true"}]}]
        backends: [{name: v2}]
        filters: {request_headers: {set: [{name: x-version, value: v2}]}}
      - backends: [{name: v1}]
"#,
    )
    .expect("config");
    let app = tower::service_fn(|r: Request<Body>| async move {
        let d = r
            .extensions()
            .get::<RouteDecision>()
            .expect("decision recorded")
            .clone();
        let v = r
            .headers()
            .get("x-version")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let text = format!(
            "{}:{}:{:?}",
            d.route().name(),
            d.backend().expect("backend").name(),
            v
        );
        Ok::<_, Infallible>(Response::new(body::full(text)))
    });
    let svc = RoutingLayer::annotate(router).layer(app);
    let r = Request::get("http://shop/")
        .header("x-canary", "true")
        .body(body::empty())
        .expect("r");
    assert_eq!(
        text(svc.clone().oneshot(r).await.expect("ok")).await,
        "shop:v2:Some(\"v2\")"
    );
    assert_eq!(
        text(svc.oneshot(req("http://shop/")).await.expect("ok")).await,
        "shop:v1:None"
    );
}

#[tokio::test]
async fn bodies_over_the_replay_limit_are_sent_once_and_whole() {
    let seen = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&seen);
    let sink = tower::service_fn(move |r: Request<Body>| {
        let s = Arc::clone(&s);
        async move {
            let n = r
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes()
                .len();
            s.fetch_add(1, Ordering::Relaxed);
            let mut res = Response::new(body::full(n.to_string()));
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, Infallible>(res)
        }
    });
    let router = Router::from_yaml(
        r#"
backends: [{name: s}]
routes: [{name: r, rules: [{backends: [{name: s}], retry: {attempts: 3, on: [5xx], max_body_bytes: 1024, backoff: 1ms}}]}]
"#,
    )
    .expect("config");
    let svc = Routing::dispatch(router, Backends::new().with("s", sink));
    let big = "x".repeat(10_000);
    // PUT: idempotent, so the replay limit alone decides whether a retry happens.
    let res = svc
        .clone()
        .oneshot(Request::put("http://x/").body(body::full(big)).expect("r"))
        .await
        .expect("ok");
    assert_eq!(text(res).await, "10000", "the whole body arrived");
    assert_eq!(seen.load(Ordering::Relaxed), 1, "not replayable: no retry");
    let res = svc
        .oneshot(
            Request::put("http://x/")
                .body(body::full("small"))
                .expect("r"),
        )
        .await
        .expect("ok");
    assert_eq!(text(res).await, "5");
    assert_eq!(
        seen.load(Ordering::Relaxed),
        1 + 4,
        "small bodies are retried"
    );
}

#[tokio::test]
async fn header_and_source_ip_stickiness_go_through_the_consistent_hash_table() {
    let router = Router::from_yaml(
        r#"
backends: [{name: a}, {name: b}, {name: c}]
routes:
  - name: r
    rules:
      - matches: [{path: {prefix: /by-user}}]
        backends: [{name: a}, {name: b}, {name: c}]
        session_persistence: {header: x-user}
      - backends: [{name: a}, {name: b}, {name: c}]
        load_balancer: {consistent_hash: {source_ip: true}}
"#,
    )
    .expect("config");
    let svc = Routing::dispatch(
        router,
        Backends::new()
            .with("a", named("a"))
            .with("b", named("b"))
            .with("c", named("c")),
    );
    let mut spread = std::collections::HashSet::new();
    for user in 0..50 {
        let mut first = None;
        for _ in 0..20 {
            let r = Request::get("http://x/by-user/profile")
                .header("x-user", format!("user-{user}"))
                .body(body::empty())
                .expect("request");
            let got = text(svc.clone().oneshot(r).await.expect("infallible")).await;
            assert_eq!(
                first.get_or_insert_with(|| got.clone()),
                &got,
                "user-{user} moved"
            );
        }
        spread.extend(first);
    }
    assert_eq!(spread.len(), 3, "50 users use all three backends");
    let mut spread = std::collections::HashSet::new();
    for host in 1..=50u8 {
        let peer: std::net::SocketAddr = format!("192.0.2.{host}:40000").parse().expect("addr");
        let mut first = None;
        for port in 0..20u16 {
            let mut r = req("http://x/");
            // The accept loop records the peer; the port changes per connection.
            r.extensions_mut()
                .insert(routing_core::ClientAddr(std::net::SocketAddr::new(
                    peer.ip(),
                    40_000 + port,
                )));
            let got = text(svc.clone().oneshot(r).await.expect("infallible")).await;
            assert_eq!(
                first.get_or_insert_with(|| got.clone()),
                &got,
                "client {peer} moved"
            );
        }
        spread.extend(first);
    }
    assert_eq!(spread.len(), 3, "50 clients use all three backends");
}

#[tokio::test]
async fn only_connection_level_failures_are_retried_on_reset() {
    let tries = Arc::new(AtomicU64::new(0));
    let make = |kind: std::io::ErrorKind| {
        let tries = Arc::clone(&tries);
        tower::service_fn(move |_r: Request<Body>| {
            tries.fetch_add(1, Ordering::Relaxed);
            async move {
                Err::<Response<Body>, _>(routing_tower::BoxError::from(std::io::Error::new(
                    kind, "boom",
                )))
            }
        })
    };
    let yaml = r#"
backends: [{name: a}]
routes: [{name: r, rules: [{backends: [{name: a}], retry: {attempts: 2, on: [reset, connect-failure], backoff: 1ms}}]}]
"#;
    for (kind, expected_tries) in [
        (std::io::ErrorKind::ConnectionReset, 3),
        (std::io::ErrorKind::ConnectionRefused, 3),
        (std::io::ErrorKind::InvalidData, 1),
    ] {
        tries.store(0, Ordering::Relaxed);
        let router = Router::from_yaml(yaml).expect("config");
        let svc = Routing::dispatch(router, Backends::new().with("a", make(kind)));
        let res = svc.oneshot(req("http://x/")).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "{kind:?}");
        assert_eq!(tries.load(Ordering::Relaxed), expected_tries, "{kind:?}");
    }
}

#[tokio::test]
async fn per_route_stats_count_forwarded_and_answered_requests() {
    let router = Router::from_yaml(
        r#"
backends: [{name: a}]
routes:
  - name: shop
    hostnames: [shop.example.com]
    rules:
      - matches: [{path: {prefix: /old}}]
        redirect: {path: {full: /new}, status: 302}
      - backends: [{name: a}]
  - name: api
    hostnames: [api.example.com]
    rules: [{backends: [{name: a}]}]
"#,
    )
    .expect("config");
    let layer = RoutingLayer::new(router, Backends::new().with("a", named("a")));
    let svc = layer.layer(routing_tower::NotFound);
    for _ in 0..7 {
        svc.clone()
            .oneshot(req("http://shop.example.com/"))
            .await
            .expect("ok");
    }
    for _ in 0..3 {
        let res = svc
            .clone()
            .oneshot(req("http://shop.example.com/old"))
            .await
            .expect("ok");
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    svc.clone()
        .oneshot(req("http://api.example.com/"))
        .await
        .expect("ok");
    svc.clone()
        .oneshot(req("http://nowhere.example.com/"))
        .await
        .expect("ok");
    let routes: HashMap<_, _> = layer.route_stats().into_iter().collect();
    let shop = &routes["shop"];
    assert_eq!(
        (shop.requests, shop.responses[1], shop.responses[2]),
        (10, 7, 3)
    );
    assert_eq!((shop.in_flight, shop.latency.count()), (0, 10));
    assert_eq!(routes["api"].requests, 1);
    assert_eq!(routes.len(), 2, "unmatched requests belong to no route");
    let text = routing_tower::metrics::encode_layer(&layer);
    assert!(
        text.contains("routing_route_requests_total{route=\"shop\"} 10"),
        "{text}"
    );
    assert!(
        text.contains("routing_route_responses_total{route=\"shop\",class=\"3xx\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("routing_backend_requests_total{backend=\"a\"} 8"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rule_with_no_backend_left_answers_503_naming_its_route() {
    let router = Router::from_yaml(
        "backends: [{name: a}]\nroutes: [{name: drained, rules: [{backends: [{name: a, weight: 0}]}]}]",
    )
    .expect("config");
    let svc = Routing::dispatch(router, Backends::new().with("a", named("a")));
    let res = svc.oneshot(req("http://x/")).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    match res.extensions().get::<RoutingError>() {
        Some(RoutingError::NoHealthyBackend(e)) => assert_eq!(&*e.route, "drained"),
        other => panic!("{other:?}"),
    }
}

/// An Istio manifest, imported as it is, served by the layer: first-match order, a
/// plain-string `uri.prefix` (not segment-aligned) and its prefix rewrite, a
/// `withoutHeaders` condition, and subsets resolved through a backend map.
#[tokio::test]
async fn an_imported_istio_virtual_service_routes_and_rewrites_as_istio_documents() {
    use routing_core::import::{import, BackendMap, ImportOptions, Source};
    let manifest = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.example.com]
  http:
    - name: legacy
      match: [{uri: {prefix: /ratings}}]
      rewrite: {uri: /v1/ratings}
      route: [{destination: {host: ratings, subset: v1}}]
    - name: beta
      match: [{withoutHeaders: {x-stable: {exact: "1"}}, uri: {exact: /beta}}]
      route: [{destination: {host: ratings, subset: v2}}]
    - name: rest
      route: [{destination: {host: ratings, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;
    let map =
        BackendMap::from_yaml("ratings/v1: ratings-v1\nratings/v2: ratings-v2\n").expect("map");
    let imported = import(
        &[Source::new("ratings.yaml", manifest)],
        &ImportOptions::default().with_backend_map(map),
    )
    .expect("import");
    let router = Router::new(imported.config).expect("valid");
    let echo = |name: &'static str| {
        tower::service_fn(move |r: Request<Body>| async move {
            Ok::<_, Infallible>(Response::new(body::full(format!("{name} {}", r.uri()))))
        })
    };
    let svc = Routing::dispatch(
        router,
        Backends::new()
            .with("ratings-v1", echo("v1"))
            .with("ratings-v2", echo("v2")),
    );
    let call = |path: &'static str, stable: bool| {
        let svc = svc.clone();
        async move {
            let mut r = Request::get(path).header("host", "ratings.example.com");
            if stable {
                r = r.header("x-stable", "1");
            }
            text(
                svc.oneshot(r.body(body::empty()).expect("request"))
                    .await
                    .expect("infallible"),
            )
            .await
        }
    };
    // Istio's `prefix: /ratings` is a plain string prefix: `/ratingsX` matches too,
    // and the matched prefix is replaced as a string.
    assert_eq!(call("/ratings/7", false).await, "v1 /v1/ratings/7");
    assert_eq!(call("/ratingsX", false).await, "v1 /v1/ratingsX");
    // withoutHeaders: without `x-stable: 1` the beta rule applies.
    assert_eq!(call("/beta", false).await, "v2 /beta");
    assert_eq!(call("/beta", true).await, "v1 /beta");
    assert_eq!(call("/other", false).await, "v1 /other");
}
