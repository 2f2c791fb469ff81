//! The tower layer's own cost: `Service::call` through `Routing` over a no-op
//! backend, polled to completion (the backend answers at once, so one poll with a
//! no-op waker finishes the future and no executor is measured).
//!
//! Each iteration builds a request (5 headers), calls, and drops the response, so
//! every case includes that work; `layer/baseline_inner_only` does the same with the
//! no-op backend called directly. **The layer's cost is a case's time minus the
//! baseline's**, both from the same run. (Building requests in criterion's batched
//! setup instead leaves them cold in cache and measures cache misses, not the layer.)
//!
//! * `layer/sticky_cookie_hit` — goal < 300 ns over the baseline: a request that
//!   evaluates a header rule (x-canary: miss), then the 90/10 rule with a valid
//!   stickiness cookie (MAC checked, backend pinned).
//! * `layer/no_cookie_issue` — the same without a cookie: the layer picks and issues
//!   a `Set-Cookie` (a MAC and a header value more).
//! * `layer/baseline_inner_only` — the no-op backend called directly.
//!
//! Run: `cargo bench -p routing-benches --bench layer`.

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::FutureExt as _;
use http::header::{HeaderName, ACCEPT, COOKIE, HOST, USER_AGENT};
use http::{HeaderValue, Request, Response, Uri};
use routing_core::Router;
use routing_tower::{body, Backends, Body, CookieKey, RoutingLayer};
use tower::{Layer as _, Service as _};

mod configs;

const CONFIG: &str = r#"
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    hostnames: [shop.example.com]
    rules:
      - matches: [{headers: [{name: x-canary, exact: "true"}]}]
        backends: [{name: v2}]
      - backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
        session_persistence: {cookie: {name: shop-sticky, ttl: 1h, http_only: true}}
"#;

fn noop() -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Body>, Infallible>>,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_r: Request<Body>| std::future::ready(Ok(Response::new(body::empty()))))
}

fn request(cookie: Option<&HeaderValue>) -> Request<Body> {
    let mut r = Request::new(body::empty());
    *r.uri_mut() = Uri::from_static("/api/cart?id=7");
    let h = r.headers_mut();
    h.insert(HOST, HeaderValue::from_static("shop.example.com"));
    h.insert(X_CANARY, HeaderValue::from_static("false"));
    h.insert(USER_AGENT, HeaderValue::from_static("bench/1.0"));
    h.insert(ACCEPT, HeaderValue::from_static("*/*"));
    if let Some(c) = cookie {
        h.insert(COOKIE, c.clone());
    }
    r
}

const X_CANARY: HeaderName = HeaderName::from_static("x-canary");

fn layer(c: &mut Criterion) {
    let router = Router::from_yaml(CONFIG).expect("bench config is valid");
    let key = CookieKey::from_bytes([9; 32]);
    let mut svc = RoutingLayer::builder(router)
        .backends(Backends::new().with("v1", noop()).with("v2", noop()))
        .cookie_key(key.clone())
        .build()
        .layer(routing_tower::NotFound);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cookie = HeaderValue::from_str(&format!(
        "theme=dark; shop-sticky={}",
        key.issue("shop-sticky", "shop", "v2", now)
    ))
    .expect("valid header");
    // Sanity: the cookie pins to v2 and is not re-issued.
    let res = svc
        .call(request(Some(&cookie)))
        .now_or_never()
        .expect("completes in one poll")
        .expect("infallible");
    assert!(res.headers().get("set-cookie").is_none());

    let mut g = c.benchmark_group("layer");
    g.bench_function("sticky_cookie_hit", |b| {
        b.iter(|| black_box(svc.call(request(Some(&cookie))).now_or_never()));
    });
    g.bench_function("no_cookie_issue", |b| {
        b.iter(|| black_box(svc.call(request(None)).now_or_never()));
    });
    let mut inner = noop();
    g.bench_function("baseline_inner_only", |b| {
        b.iter(|| black_box(inner.call(request(Some(&cookie))).now_or_never()));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = configs::fast_criterion();
    targets = layer
}
criterion_main!(benches);
