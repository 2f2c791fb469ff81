//! Rollouts driven by this crate: the `routing_rollout` state machine fed by the
//! layer's stats and ticked on a clock by `rollout::Driver` — over real HTTP on
//! 127.0.0.1 in fast time, in paused tokio time, and with sticky sessions. The state
//! machine's own scenarios (steps, checks, controls, refused splits) are tested in
//! routing-rollout/tests/rollout.rs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use routing_core::{ConfigDuration, Router};
use routing_rollout::{
    ApplySplit, BackendCounts, Checks, ControlError, MetricsSource, RollbackReason, Rollout,
    RolloutPlan, RolloutPlanSpec, RolloutState, RolloutTarget,
};
use routing_tower::clock::{ManualClock, SharedClock, SystemClock, TokioClock};
use routing_tower::rollout::Driver;
use routing_tower::stats::StatsRegistry;

const CONFIG: &str = r#"
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    rules:
      - name: main
        backends: [{name: v1, weight: 1}]
        session_persistence: {cookie: {name: shop-sticky}}
"#;

const HOLD: Duration = Duration::from_secs(30);

fn checks() -> Checks {
    Checks {
        max_error_rate: Some(0.05),
        max_error_ratio_vs_stable: Some(2.0),
        max_p99_ratio_vs_stable: Some(1.5),
        min_requests: 20,
    }
}

fn plan(checks: Checks) -> RolloutPlan {
    RolloutPlan::try_from(RolloutPlanSpec {
        steps: vec![5.0, 10.0, 25.0, 50.0, 100.0],
        hold: ConfigDuration::new(HOLD),
        max_step: None,
        checks,
    })
    .expect("valid plan")
}

fn shop_main() -> RolloutTarget {
    RolloutTarget::http_rule("shop", "main", "v1", "v2")
}

/// The live weights `(v1, v2)` of shop/main.
fn weights(router: &Router) -> (u64, u64) {
    shop_main()
        .weights(router.snapshot().config())
        .expect("rule exists")
}

/// A real layer on 127.0.0.1 with two in-process backends; the candidate starts
/// answering 503 after the first step passed, and the controller rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_over_real_http_rolls_back_when_the_candidate_fails() {
    use axum::routing::get;
    use http_body_util::{BodyExt, Empty};
    use routing_tower::{Backends, RoutingLayer};

    let failing = Arc::new(AtomicBool::new(false));
    let flag = failing.clone();
    let v1 = axum::Router::new().route("/", get(|| async { "v1" }));
    let v2 = axum::Router::new().route(
        "/",
        get(move || {
            let flag = flag.clone();
            async move {
                if flag.load(Ordering::SeqCst) {
                    (StatusCode::SERVICE_UNAVAILABLE, "v2 down")
                } else {
                    (StatusCode::OK, "v2")
                }
            }
        }),
    );
    let router = Router::from_yaml(
        "backends: [{name: v1}, {name: v2}]\nroutes: [{name: shop, rules: [{name: main, backends: [{name: v1}]}]}]",
    )
    .expect("valid config");
    let layer = RoutingLayer::new(
        router.clone(),
        Backends::new().with("v1", v1).with("v2", v2),
    );
    let app = axum::Router::new().layer(layer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let plan = RolloutPlan::try_from(RolloutPlanSpec {
        steps: vec![30.0, 60.0, 100.0],
        hold: ConfigDuration::new(Duration::from_millis(150)),
        max_step: None,
        checks: Checks {
            max_error_rate: Some(0.1),
            min_requests: 5,
            ..Checks::default()
        },
    })
    .expect("valid plan");
    let rollout = Driver::new(
        Rollout::new(plan, shop_main(), router.clone()),
        layer.clone(),
        SystemClock::shared(),
    );

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{addr}/").parse().expect("uri");
    let (mut v2_errors, mut other_errors) = (0u32, 0u32);
    let (mut after_rollback, mut errors_after_rollback) = (0u32, 0u32);
    let mut rolled_back = false;
    rollout.tick();
    // Bounded: at most 5 000 requests or 20 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for _ in 0..5_000 {
        if tokio::time::Instant::now() > deadline {
            break;
        }
        let res = tokio::time::timeout(Duration::from_secs(5), client.get(uri.clone()))
            .await
            .expect("answers in time")
            .expect("a response");
        let status = res.status();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        if status != StatusCode::OK {
            if rolled_back {
                errors_after_rollback += 1;
            }
            if body.as_ref() == b"v2 down" {
                v2_errors += 1;
            } else {
                other_errors += 1;
            }
        }
        rollout.tick();
        let state = rollout.state();
        if matches!(state, RolloutState::Running { step: 1, .. }) {
            failing.store(true, Ordering::SeqCst);
        }
        if matches!(state, RolloutState::RolledBack { .. }) {
            if rolled_back {
                after_rollback += 1;
            }
            rolled_back = true;
            if after_rollback == 100 {
                break;
            }
        }
        assert!(
            !matches!(state, RolloutState::Promoted | RolloutState::Failed { .. }),
            "{state:?}"
        );
    }
    let state = rollout.state();
    assert!(
        matches!(state, RolloutState::RolledBack { reason: RollbackReason::ErrorRate { .. }, ref figures } if figures.step == 1),
        "{state:?}"
    );
    assert_eq!(after_rollback, 100, "100 requests after the rollback");
    assert_eq!(weights(&router), (10_000, 0));
    assert_eq!(
        other_errors, 0,
        "no failures other than the candidate's own"
    );
    assert!(v2_errors > 0, "the candidate failed some requests");
    assert_eq!(
        errors_after_rollback, 0,
        "stable serves everything after the rollback"
    );
    let v1 = layer
        .stats_registry()
        .get("v1")
        .expect("v1 served")
        .snapshot();
    assert_eq!(v1.responses[4], 0, "stable never failed");
    server.abort();
}

/// Synthetic metrics driven by a clock: each backend completes `per_sec` requests a
/// second, `error_permille` of them 5xx, at `ms` milliseconds.
#[derive(Debug)]
struct Steady {
    clock: SharedClock,
    per_sec: u64,
    candidate_error_permille: u64,
}

impl MetricsSource for Steady {
    fn backend_counts(&self, backend: &str) -> BackendCounts {
        let secs = (self.clock.now() - routing_tower::clock::Timestamp::ZERO).as_secs();
        let total = secs * self.per_sec;
        let errors = if backend == "v2" {
            total * self.candidate_error_permille / 1000
        } else {
            0
        };
        BackendCounts {
            completed: total,
            errors,
            ..BackendCounts::default()
        }
    }
}

fn steady_rollout(error_permille: u64) -> (Router, Driver<Steady>) {
    let router = Router::from_yaml(CONFIG).expect("valid config");
    let clock: SharedClock = Arc::new(TokioClock::new());
    let metrics = Steady {
        clock: clock.clone(),
        per_sec: 10,
        candidate_error_permille: error_permille,
    };
    let checks = Checks {
        max_p99_ratio_vs_stable: None,
        ..checks()
    };
    let rollout = Rollout::new(plan(checks), shop_main(), router.clone());
    (router, Driver::new(rollout, metrics, clock))
}

#[tokio::test(start_paused = true)]
async fn run_loop_promotes_a_healthy_candidate_in_paused_tokio_time() {
    let (router, rollout) = steady_rollout(0);
    let t0 = tokio::time::Instant::now();
    let end = tokio::time::timeout(
        Duration::from_secs(3600),
        rollout.run(Duration::from_secs(1)),
    )
    .await
    .expect("the rollout ends within an hour of virtual time");
    assert_eq!(end, RolloutState::Promoted);
    let took = t0.elapsed();
    assert!(
        took >= HOLD * 5 && took <= HOLD * 5 + Duration::from_secs(5),
        "five holds of 30 s (plus tick granularity), took {took:?}"
    );
    let table = router.snapshot();
    let w: Vec<u64> = table.config().routes[0].rules[0]
        .backends
        .iter()
        .map(|b| b.weight)
        .collect();
    assert_eq!(w, [0, 10_000]);
}

#[tokio::test(start_paused = true)]
async fn run_loop_rolls_back_a_failing_candidate_in_paused_tokio_time() {
    let (_router, rollout) = steady_rollout(100); // 10 % errors
    let end = tokio::time::timeout(
        Duration::from_secs(3600),
        rollout.run(Duration::from_secs(1)),
    )
    .await
    .expect("the rollout ends");
    assert!(
        matches!(end, RolloutState::RolledBack { figures, .. } if figures.step == 0 && figures.elapsed < HOLD),
        "rolled back at the first step, before its hold: {end:?}"
    );
}

#[test]
fn rollout_is_send_sync() {
    fn assert_bounds<T: Send + Sync + 'static>() {}
    assert_bounds::<Driver<Arc<StatsRegistry>>>();
    assert_bounds::<Driver<routing_tower::RoutingLayer>>();
    assert_bounds::<ControlError>();
}

/// Sticky sessions: a step moves only new sessions; after a rollback a session pinned
/// to the candidate is re-pinned to stable on its next request.
#[tokio::test]
async fn rollback_repins_sticky_candidate_sessions_to_stable() {
    use http_body_util::BodyExt;
    use routing_tower::{body, Backends, Body, RoutingLayer};
    use tower::{Layer, ServiceExt};

    fn named(
        name: &'static str,
    ) -> impl tower::Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = std::convert::Infallible,
        Future = impl Send + 'static,
    > + Clone
           + Send
           + Sync
           + 'static {
        tower::service_fn(move |_req: http::Request<Body>| async move {
            Ok::<_, std::convert::Infallible>(http::Response::new(body::full(name)))
        })
    }
    async fn call(
        svc: &routing_tower::Routing<routing_tower::NotFound>,
        cookie: Option<&str>,
    ) -> (String, Option<String>) {
        let mut req = http::Request::get("http://shop/");
        if let Some(c) = cookie {
            req = req.header("cookie", format!("shop-sticky={c}"));
        }
        let res = svc
            .clone()
            .oneshot(req.body(body::empty()).expect("request"))
            .await
            .expect("infallible");
        let set = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("shop-sticky="))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let b = res.into_body().collect().await.expect("body").to_bytes();
        (String::from_utf8_lossy(&b).into_owned(), set)
    }

    let router = Router::from_yaml(CONFIG).expect("valid config");
    let rollout = Driver::new(
        Rollout::new(plan(checks()), shop_main(), router.clone()),
        Arc::new(StatsRegistry::new()),
        Arc::new(ManualClock::new()) as SharedClock,
    );
    let layer = RoutingLayer::new(
        router.clone(),
        Backends::new()
            .with("v1", named("v1"))
            .with("v2", named("v2")),
    );
    let svc = layer.layer(routing_tower::NotFound);
    // Pin a session to the candidate (100 % for a moment).
    router.apply_split(&shop_main(), 100.0).expect("split");
    let (who, cookie) = call(&svc, None).await;
    assert_eq!(who, "v2");
    let cookie = cookie.expect("a new session gets a cookie");
    // A step does not move the pinned session.
    router.apply_split(&shop_main(), 1.0).expect("split");
    for _ in 0..20 {
        assert_eq!(call(&svc, Some(&cookie)).await, ("v2".to_owned(), None));
    }
    // Rollback (abort: same split) drains the candidate: the session moves to stable
    // with a new cookie, and stays there.
    rollout.abort().expect("abort");
    let (who, new_cookie) = call(&svc, Some(&cookie)).await;
    assert_eq!(who, "v1", "re-pinned to stable on its next request");
    let new_cookie = new_cookie.expect("re-pinning issues a new cookie");
    for _ in 0..20 {
        assert_eq!(call(&svc, Some(&new_cookie)).await, ("v1".to_owned(), None));
    }
}

/// The driver reads the layer's stats registry and its clock: a step passes on the
/// window of recorded traffic, controls act at the clock's time.
#[test]
fn driver_ticks_on_its_clock_and_the_stats_registry() {
    use routing_tower::outcome::Outcome;
    let router = Router::from_yaml(CONFIG).expect("valid config");
    let stats = Arc::new(StatsRegistry::new());
    let clock = Arc::new(ManualClock::new());
    let driver = Driver::new(
        Rollout::new(plan(checks()), shop_main(), router.clone()),
        Arc::clone(&stats),
        clock.clone() as SharedClock,
    );
    // Rule shop/main's requests, as the layer records them for the rollout.
    let traffic = |backend: &str, ok: u64, err: u64, ms: u64| {
        let s = stats.rule_backend("shop", "main", backend);
        for _ in 0..ok {
            s.record(Outcome::Status(StatusCode::OK), Duration::from_millis(ms));
        }
        for _ in 0..err {
            s.record(
                Outcome::Status(StatusCode::SERVICE_UNAVAILABLE),
                Duration::from_millis(ms),
            );
        }
    };
    clock.advance(Duration::from_secs(5));
    let events = driver.tick();
    assert_eq!(
        events[0].at,
        Duration::from_secs(5),
        "events carry the clock's time"
    );
    assert_eq!(weights(&router), (9_500, 500));
    traffic("v1", 200, 1, 10);
    traffic("v2", 50, 0, 10);
    clock.advance(HOLD);
    driver.tick();
    assert_eq!(
        driver.state(),
        RolloutState::Running {
            step: 1,
            percent: 10.0
        }
    );
    driver.pause().expect("pause");
    assert!(matches!(
        driver.pause(),
        Err(ControlError::InvalidState {
            action: "pause",
            ..
        })
    ));
    driver.resume().expect("resume");
    assert_eq!(
        driver
            .current_figures()
            .expect("running")
            .candidate
            .completed,
        0
    );
    // Slow candidate: p99 100 ms against stable's 10 ms (from the layer's histogram).
    traffic("v1", 200, 0, 10);
    traffic("v2", 50, 0, 100);
    clock.advance(HOLD);
    driver.tick();
    assert!(
        matches!(
            driver.state(),
            RolloutState::RolledBack {
                reason: RollbackReason::P99Ratio { .. },
                ..
            }
        ),
        "{:?}",
        driver.state()
    );
    assert_eq!(weights(&router), (10_000, 0));
    assert_eq!(driver.candidate_percent(), 0.0);
}
