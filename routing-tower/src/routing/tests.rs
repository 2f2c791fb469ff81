//! Unit tests of the routing service: seeded choices, one clock.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use routing_core::Router;
use tower::{Layer as _, ServiceExt as _};

use crate::body::{self, Body};
use crate::clock::ManualClock;
use crate::{Backends, NotFound, RoutingLayer};

const SPLIT: &str = r#"
backends: [{name: a}, {name: b}, {name: c}]
routes: [{name: r, rules: [{backends: [{name: a}, {name: b}, {name: c}]}]}]
"#;

/// A backend that names itself in an `x-backend` header.
macro_rules! named {
    ($name:literal) => {
        tower::service_fn(|_r: Request<Body>| async {
            let mut res = Response::new(body::empty());
            res.headers_mut()
                .insert("x-backend", http::HeaderValue::from_static($name));
            Ok::<_, std::convert::Infallible>(res)
        })
    };
}

fn backends() -> Backends {
    Backends::new()
        .with("a", named!("a"))
        .with("b", named!("b"))
        .with("c", named!("c"))
}

/// The backends `n` sequential requests reach through a layer seeded with `seed`.
async fn picks(seed: u64, n: usize) -> Vec<String> {
    let router = Router::from_yaml(SPLIT).unwrap();
    let layer = RoutingLayer::builder(router)
        .backends(backends())
        .rng_seed(seed)
        .build();
    let svc = layer.layer(NotFound);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let req = Request::get("http://x/").body(Body::default()).unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        out.push(res.headers()["x-backend"].to_str().unwrap().to_owned());
    }
    out
}

#[tokio::test]
async fn same_seed_same_picks() {
    let first = picks(7, 64).await;
    assert_eq!(
        first,
        picks(7, 64).await,
        "two layers with the same seed must make the same sequence of picks"
    );
    assert_ne!(
        first,
        picks(8, 64).await,
        "another seed must give another sequence"
    );
    for b in ["a", "b", "c"] {
        assert!(
            first.iter().any(|p| p == b),
            "{b} must be picked at least once in 64 tries: {first:?}"
        );
    }
}

#[tokio::test]
async fn latency_is_read_from_the_layer_clock() {
    let clock = Arc::new(ManualClock::new());
    let slow_clock = Arc::clone(&clock);
    // A backend that moves the layer's clock by 250 ms while it "works".
    let slow = tower::service_fn(move |_r: Request<Body>| {
        let c = Arc::clone(&slow_clock);
        async move {
            c.advance(Duration::from_millis(250));
            Ok::<_, std::convert::Infallible>(Response::new(body::empty()))
        }
    });
    let router = Router::from_yaml(
        "backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]",
    )
    .unwrap();
    let layer = RoutingLayer::builder(router)
        .backends(Backends::new().with("a", slow))
        .clock(clock)
        .build();
    let svc = layer.clone().layer(NotFound);
    let res = svc
        .oneshot(Request::get("http://x/").body(Body::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let stats = layer.stats();
    let a = &stats[0].1;
    assert_eq!(a.latency.count(), 1);
    assert_eq!(
        a.latency.sum_nanos, 250_000_000,
        "the backend latency must be the layer clock's 250 ms, exactly"
    );
    let route = &layer.route_stats()[0].1;
    assert_eq!(route.latency.sum_nanos, 250_000_000, "and the route's too");
}

const ROUND_ROBIN_STICKY: &str = r#"
backends: [{name: a}, {name: b}, {name: c}]
routes:
  - name: r
    rules:
      - backends: [{name: a}, {name: b}, {name: c}]
        load_balancer: {simple: round_robin}
        session_persistence: {cookie: {name: s}}
"#;

/// Sends one request (with `cookie`, if any) and returns the backend that served it
/// and the cookie the response sets, if any.
async fn send(svc: &crate::Routing<NotFound>, cookie: Option<&str>) -> (String, Option<String>) {
    let mut req = Request::get("http://x/");
    if let Some(c) = cookie {
        req = req.header(http::header::COOKIE, c);
    }
    let res = svc
        .clone()
        .oneshot(req.body(Body::default()).unwrap())
        .await
        .unwrap();
    let backend = res.headers()["x-backend"].to_str().unwrap().to_owned();
    let set = res
        .headers()
        .get(http::header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    (backend, set)
}

#[tokio::test]
async fn requests_with_a_valid_cookie_do_not_advance_round_robin() {
    let layer = |yaml: &str| {
        RoutingLayer::builder(Router::from_yaml(yaml).unwrap())
            .backends(backends())
            .rng_seed(1)
            .build()
            .layer(NotFound)
    };
    // Without cookies: the rule's round-robin sequence.
    let control = layer(ROUND_ROBIN_STICKY);
    let mut expected = Vec::new();
    for _ in 0..4 {
        expected.push(send(&control, None).await.0);
    }
    assert_eq!(
        expected
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3,
        "round robin visits every backend: {expected:?}"
    );

    // The same sequence, with ten cookie-carrying requests after the first.
    let svc = layer(ROUND_ROBIN_STICKY);
    let (first, cookie) = send(&svc, None).await;
    let cookie = cookie.expect("a new session gets a cookie");
    for i in 0..10 {
        let (b, set) = send(&svc, Some(&cookie)).await;
        assert_eq!(b, first, "request {i} with the cookie stays on {first}");
        assert_eq!(set, None, "an honoured cookie is not issued again");
    }
    let mut seen = vec![first];
    for _ in 0..3 {
        seen.push(send(&svc, None).await.0);
    }
    assert_eq!(
        seen, expected,
        "requests that carry a valid cookie must not take round-robin turns"
    );
}

/// Every backend without a `connection_pool` gets the default cap (Envoy's
/// 1024 + 1024), one with its own keeps it, and `backend_limit(None)` lifts it.
#[test]
fn backends_get_the_default_concurrency_cap() {
    let router = Router::from_yaml(
        r#"
backends: [{name: a}, {name: b, connection_pool: {max_concurrent_requests: 8}}]
routes: [{name: r, rules: [{backends: [{name: a}, {name: b}]}]}]
"#,
    )
    .unwrap();
    let limits = |layer: &RoutingLayer| -> Vec<Option<(u32, u32)>> {
        let table = router.load();
        layer
            .shared
            .state_for(&table)
            .backends
            .iter()
            .map(|s| {
                s.limit
                    .as_ref()
                    .map(|(cp, _)| (cp.max_concurrent_requests, cp.max_pending_requests))
            })
            .collect()
    };
    let layer = RoutingLayer::builder(router.clone()).build();
    assert_eq!(limits(&layer), vec![Some((1024, 1024)), Some((8, 0))]);
    let layer = RoutingLayer::builder(router.clone())
        .backend_limit(None)
        .build();
    assert_eq!(limits(&layer), vec![None, Some((8, 0))]);
}

/// The default timeouts arm a timer only when a backend is not ready at once: an
/// in-process backend that answers at once works on a runtime without tokio's time
/// driver (as before the defaults), its body read to the end.
#[test]
fn default_timeouts_need_no_timer_for_an_immediate_answer() {
    use http_body_util::BodyExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let router = Router::from_yaml(SPLIT).unwrap();
    let backends = Backends::new()
        .with(
            "a",
            tower::service_fn(|_r: Request<Body>| async {
                Ok::<_, std::convert::Infallible>(Response::new(body::full("hello")))
            }),
        )
        .with("b", named!("b"))
        .with("c", named!("c"));
    let svc = RoutingLayer::new(router, backends).layer(NotFound);
    rt.block_on(async {
        for _ in 0..20 {
            let res = svc
                .clone()
                .oneshot(Request::get("http://x/").body(body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let _ = res.into_body().collect().await.unwrap();
        }
    });
}

const STICKY: &str = r#"
backends: [{name: a}, {name: b}]
routes:
  - name: r
    rules:
      - backends: [{name: a}, {name: b}]
        session_persistence: {cookie: {name: s, ttl: 1h}}
"#;

/// A cookie repeated on one connection is verified once (the connection's memo),
/// yet its expiry is still checked on every request, on the layer's clock; another
/// value (forged) on the same connection is verified, not taken from the memo.
#[tokio::test]
async fn repeated_cookie_memo_keeps_expiry_and_forgery_checks() {
    let clock = Arc::new(ManualClock::new());
    let key = crate::CookieKey::from_bytes([3; 32]);
    let layer = RoutingLayer::builder(Router::from_yaml(STICKY).unwrap())
        .backends(
            Backends::new()
                .with("a", named!("a"))
                .with("b", named!("b")),
        )
        .cookie_key(key.clone())
        .clock(clock.clone())
        .build();
    // One service: one connection's.
    let mut svc = layer.layer(NotFound);
    let cookie = format!("s={}", key.issue("s", "r", "b", crate::cookie::unix_now()));
    let call = |svc: &mut crate::Routing<NotFound>, cookie: String| {
        let req = Request::get("http://x/")
            .header("cookie", cookie)
            .body(Body::default())
            .unwrap();
        tower::Service::call(svc, req)
    };
    for _ in 0..3 {
        let res = call(&mut svc, cookie.clone()).await.unwrap();
        assert_eq!(res.headers()["x-backend"], "b");
        assert!(res.headers().get("set-cookie").is_none(), "valid: kept");
    }
    // A forged value (last MAC character changed) is not the memo's: re-issued.
    let mut forged = cookie.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let res = call(&mut svc, forged).await.unwrap();
    assert!(
        res.headers().get("set-cookie").is_some(),
        "forged: new cookie"
    );
    // The valid one again, then two hours later on the layer's clock: expired.
    let res = call(&mut svc, cookie.clone()).await.unwrap();
    assert!(res.headers().get("set-cookie").is_none());
    clock.advance(Duration::from_secs(2 * 3600));
    let res = call(&mut svc, cookie).await.unwrap();
    assert!(
        res.headers().get("set-cookie").is_some(),
        "expired on the memo path: re-issued"
    );
}
