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
