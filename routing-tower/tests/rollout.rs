//! The rollout controller in virtual time (a `ManualClock` and synthetic stats), plus
//! one rollout over real HTTP on 127.0.0.1 in fast time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use routing_core::{ConfigDuration, Router};
use routing_tower::clock::{ManualClock, SharedClock, SystemClock, TokioClock};
use routing_tower::outcome::Outcome;
use routing_tower::rollout::{
    Checks, ControlError, MetricsSource, RollbackReason, Rollout, RolloutEventKind, RolloutPlan,
    RolloutPlanSpec, RolloutState, RouterRuleTarget, WeightTarget,
};
use routing_tower::stats::{StatsRegistry, StatsSnapshot};

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
        checks,
    })
    .expect("valid plan")
}

struct Harness {
    router: Router,
    target: RouterRuleTarget,
    stats: Arc<StatsRegistry>,
    clock: Arc<ManualClock>,
    rollout: Rollout,
}

fn harness(checks: Checks) -> Harness {
    let router = Router::from_yaml(CONFIG).expect("valid config");
    let target = RouterRuleTarget::new(router.clone(), "shop", "main", "v1", "v2");
    let stats = Arc::new(StatsRegistry::new());
    let clock = Arc::new(ManualClock::new());
    let rollout = Rollout::new(
        plan(checks),
        target.clone(),
        stats.clone(),
        clock.clone() as SharedClock,
    );
    Harness {
        router,
        target,
        stats,
        clock,
        rollout,
    }
}

impl Harness {
    /// Records `ok` 200s and `err` 503s for `backend`, each taking `ms` milliseconds.
    fn traffic(&self, backend: &str, ok: u64, err: u64, ms: u64) {
        let s = self.stats.get_or_insert(backend);
        let latency = Duration::from_millis(ms);
        for _ in 0..ok {
            s.record(Outcome::Status(StatusCode::OK), latency);
        }
        for _ in 0..err {
            s.record(Outcome::Status(StatusCode::SERVICE_UNAVAILABLE), latency);
        }
    }

    /// One healthy window: both backends busy, then the hold elapses.
    fn healthy_window(&self) {
        self.traffic("v1", 200, 1, 10);
        self.traffic("v2", 50, 0, 10);
        self.clock.advance(HOLD);
    }

    /// The live weights `(v1, v2)` read straight from the router's table.
    fn live_weights(&self) -> (u64, u64) {
        let table = self.router.snapshot();
        let rule = &table.config().routes[0].rules[0];
        let w = |n: &str| {
            rule.backends
                .iter()
                .find(|b| b.name == n)
                .map_or(0, |b| b.weight)
        };
        (w("v1"), w("v2"))
    }

    fn kinds(&self) -> Vec<RolloutEventKind> {
        self.rollout.events().into_iter().map(|e| e.kind).collect()
    }
}

fn expected_weights(percent: f64) -> (u64, u64) {
    let cand = (percent * 100.0).round() as u64;
    (10_000 - cand, cand)
}

#[test]
fn healthy_candidate_is_promoted_through_every_step() {
    let h = harness(checks());
    assert_eq!(h.rollout.state(), RolloutState::Pending);
    assert_eq!(
        h.live_weights(),
        (1, 0),
        "nothing changes before the first tick"
    );
    h.rollout.tick();
    for (step, &percent) in [5.0, 10.0, 25.0, 50.0, 100.0].iter().enumerate() {
        assert_eq!(
            h.rollout.state(),
            RolloutState::Running { step, percent },
            "step {step} must be running"
        );
        assert_eq!(
            h.live_weights(),
            expected_weights(percent),
            "router weights at step {step}"
        );
        // Half a hold is not enough, even with good figures.
        h.traffic("v1", 200, 1, 10);
        h.traffic("v2", 50, 0, 10);
        h.clock.advance(HOLD / 2);
        assert!(h.rollout.tick().is_empty(), "no verdict before the hold");
        h.clock.advance(HOLD / 2);
        let events = h.rollout.tick();
        assert!(
            matches!(&events[0].kind, RolloutEventKind::StepPassed { figures }
                if figures.step == step && figures.candidate.completed == 50 && figures.elapsed == HOLD),
            "step {step} passes on its own window: {events:?}"
        );
    }
    assert_eq!(h.rollout.state(), RolloutState::Promoted);
    assert_eq!(h.live_weights(), (0, 10_000));
    let kinds = h.kinds();
    let started = kinds
        .iter()
        .filter(|k| matches!(k, RolloutEventKind::StepStarted { .. }))
        .count();
    let passed = kinds
        .iter()
        .filter(|k| matches!(k, RolloutEventKind::StepPassed { .. }))
        .count();
    assert_eq!((started, passed), (5, 5));
    assert_eq!(
        kinds.last(),
        Some(&RolloutEventKind::Promoted { manual: false })
    );
    // Over: later ticks change nothing.
    h.healthy_window();
    assert!(h.rollout.tick().is_empty());
}

#[test]
fn candidate_degrading_at_step_3_is_rolled_back_within_one_window() {
    let h = harness(checks());
    h.rollout.tick();
    h.healthy_window();
    h.rollout.tick();
    h.healthy_window();
    h.rollout.tick();
    assert_eq!(
        h.rollout.state(),
        RolloutState::Running {
            step: 2,
            percent: 25.0
        }
    );
    let before = h.router.generation();
    // A third of a window in, the candidate fails 30 of 60 requests.
    h.traffic("v1", 200, 0, 10);
    h.traffic("v2", 30, 30, 10);
    h.clock.advance(HOLD / 3);
    let events = h.rollout.tick();
    assert_eq!(events.len(), 1, "one rollback event: {events:?}");
    let RolloutState::RolledBack { reason, figures } = h.rollout.state() else {
        panic!("must be rolled back, is {:?}", h.rollout.state());
    };
    assert!(
        matches!(reason, RollbackReason::ErrorRate { candidate, max } if candidate == 0.5 && max == 0.05),
        "{reason:?}"
    );
    assert_eq!((figures.step, figures.percent), (2, 25.0));
    assert_eq!(
        (figures.candidate.completed, figures.candidate.errors),
        (60, 30)
    );
    assert_eq!(figures.elapsed, HOLD / 3, "judged before the hold elapsed");
    assert!(reason.to_string().contains("0.5000 > max 0.05"));
    // Stable gets 100 % right away, in the live table.
    assert_eq!(h.router.generation(), before + 1);
    assert_eq!(h.live_weights(), (10_000, 0));
    assert_eq!(h.target.weights().expect("rule exists"), (10_000, 0));
    // Requests without a cookie now all go to v1.
    let table = h.router.snapshot();
    let mut rng = rand::rng();
    for _ in 0..200 {
        let req = routing_core::RequestInfo::get("http://shop/");
        let d = table.decide(&req, &mut rng).expect("a rule matches");
        assert_eq!(d.backend().map(|b| b.name()), Some("v1"));
    }
    // Over: ticks do nothing, controls are refused.
    h.healthy_window();
    assert!(h.rollout.tick().is_empty());
    assert!(matches!(
        h.rollout.resume(),
        Err(ControlError::InvalidState {
            action: "resume",
            ..
        })
    ));
}

#[test]
fn slow_candidate_is_rolled_back_on_p99() {
    let h = harness(checks());
    h.rollout.tick();
    h.traffic("v1", 200, 0, 10);
    h.traffic("v2", 50, 0, 100);
    h.clock.advance(HOLD);
    h.rollout.tick();
    assert!(
        matches!(
            h.rollout.state(),
            RolloutState::RolledBack {
                reason: RollbackReason::P99Ratio { max_ratio, .. },
                ..
            } if max_ratio == 1.5
        ),
        "{:?}",
        h.rollout.state()
    );
    assert_eq!(h.live_weights(), (10_000, 0));
}

#[test]
fn error_ratio_against_stable_fails_a_candidate_under_the_absolute_limit() {
    let h = harness(checks());
    h.rollout.tick();
    // Stable 1 %, candidate 4 %: under the 5 % limit but above 2 x stable.
    h.traffic("v1", 990, 10, 10);
    h.traffic("v2", 96, 4, 10);
    h.clock.advance(HOLD);
    h.rollout.tick();
    assert!(
        matches!(
            h.rollout.state(),
            RolloutState::RolledBack {
                reason: RollbackReason::ErrorRatio { .. },
                ..
            }
        ),
        "{:?}",
        h.rollout.state()
    );
}

#[test]
fn too_little_traffic_holds_the_step() {
    let h = harness(checks());
    h.rollout.tick();
    h.traffic("v1", 180, 20, 10); // stable at 10 % errors
    h.traffic("v2", 5, 5, 10); // 50 % errors, but only 10 requests: no verdict
    h.clock.advance(HOLD);
    let events = h.rollout.tick();
    assert!(
        matches!(&events[..], [e] if matches!(&e.kind,
            RolloutEventKind::Waiting { figures, min_requests: 20 } if figures.candidate.completed == 10)),
        "{events:?}"
    );
    h.clock.advance(HOLD * 4);
    assert!(h.rollout.tick().is_empty(), "waiting is reported once");
    assert_eq!(
        h.rollout.state(),
        RolloutState::Running {
            step: 0,
            percent: 5.0
        },
        "the hold extends until there is enough traffic"
    );
    assert_eq!(h.live_weights(), expected_weights(5.0));
    // Enough traffic arrives; the window (since the step began) is judged as a whole:
    // 5 errors in 100 is within both limits.
    h.traffic("v2", 90, 0, 10);
    h.rollout.tick();
    assert_eq!(
        h.rollout.state(),
        RolloutState::Running {
            step: 1,
            percent: 10.0
        }
    );
}

#[test]
fn pause_freezes_and_resume_restarts_the_step() {
    let h = harness(checks());
    assert!(matches!(
        h.rollout.pause(),
        Err(ControlError::InvalidState {
            action: "pause",
            state
        }) if *state == RolloutState::Pending
    ));
    h.rollout.tick();
    let events = h.rollout.pause().expect("running rollouts pause");
    assert_eq!(events[0].kind, RolloutEventKind::Paused { step: 0 });
    h.healthy_window();
    h.healthy_window();
    assert!(h.rollout.tick().is_empty(), "paused: no verdict");
    assert_eq!(
        h.rollout.state(),
        RolloutState::Paused {
            step: 0,
            percent: 5.0
        }
    );
    assert_eq!(h.live_weights(), expected_weights(5.0));
    assert!(h.rollout.pause().is_err(), "already paused");

    let events = h.rollout.resume().expect("paused rollouts resume");
    assert_eq!(events[0].kind, RolloutEventKind::Resumed { step: 0 });
    assert!(
        h.rollout.tick().is_empty(),
        "fresh window: the hold restarts"
    );
    let fig = h.rollout.current_figures().expect("running");
    assert_eq!(
        fig.candidate.completed, 0,
        "traffic of the paused time is not judged"
    );
    h.healthy_window();
    h.rollout.tick();
    assert_eq!(
        h.rollout.state(),
        RolloutState::Running {
            step: 1,
            percent: 10.0
        }
    );
}

#[test]
fn abort_returns_to_stable() {
    let h = harness(checks());
    h.rollout.tick();
    h.healthy_window();
    h.rollout.tick();
    assert_eq!(h.live_weights(), expected_weights(10.0));
    let events = h.rollout.abort().expect("abort");
    assert_eq!(events[0].kind, RolloutEventKind::Aborted);
    assert_eq!(h.rollout.state(), RolloutState::Aborted);
    assert_eq!(h.live_weights(), (10_000, 0));
    h.healthy_window();
    assert!(h.rollout.tick().is_empty());
    assert!(h.rollout.abort().is_err(), "over");
    assert!(h.rollout.promote().is_err(), "over");
}

#[test]
fn abort_while_paused_and_before_start() {
    let h = harness(checks());
    h.rollout.abort().expect("a pending rollout can be aborted");
    assert_eq!(h.live_weights(), (10_000, 0));
    let h = harness(checks());
    h.rollout.tick();
    h.rollout.pause().expect("pause");
    h.rollout.abort().expect("a paused rollout can be aborted");
    assert_eq!(h.rollout.state(), RolloutState::Aborted);
}

#[test]
fn promote_skips_to_the_candidate() {
    let h = harness(checks());
    h.rollout.tick();
    let events = h.rollout.promote().expect("promote");
    assert_eq!(events[0].kind, RolloutEventKind::Promoted { manual: true });
    assert_eq!(h.rollout.state(), RolloutState::Promoted);
    assert_eq!(h.live_weights(), (0, 10_000));
}

#[test]
fn invalid_plan_is_a_typed_error_naming_the_field() {
    let spec = RolloutPlanSpec {
        steps: vec![5.0, 50.0],
        hold: ConfigDuration::new(Duration::ZERO),
        checks: Checks {
            min_requests: 0,
            ..checks()
        },
    };
    let err = RolloutPlan::try_from(spec).expect_err("invalid");
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["steps[1]", "hold", "checks.min_requests"]);
    assert!(
        err.to_string()
            .contains("`steps[1]`: the last step must be 100"),
        "{err}"
    );
}

#[test]
fn failing_router_update_is_reported_and_the_rollout_stops() {
    let h = harness(checks());
    h.rollout.tick();
    // Someone removes the rule from the config mid-rollout.
    h.router
        .update_yaml(
            r#"
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    rules:
      - name: renamed
        backends: [{name: v1}]
"#,
        )
        .expect("valid config");
    let generation = h.router.generation();
    h.healthy_window();
    let events = h.rollout.tick();
    assert!(
        matches!(&events[..], [passed, failed]
            if matches!(passed.kind, RolloutEventKind::StepPassed { .. })
            && matches!(&failed.kind, RolloutEventKind::TargetFailed { percent, error }
                if *percent == 10.0 && error.contains("rule `main` not found"))),
        "{events:?}"
    );
    assert!(matches!(
        h.rollout.state(),
        RolloutState::Failed { percent, .. } if percent == 10.0
    ));
    assert_eq!(
        h.router.generation(),
        generation,
        "the live table is untouched"
    );
    h.healthy_window();
    assert!(h.rollout.tick().is_empty(), "a failed rollout does nothing");
    assert!(h.rollout.abort().is_err(), "a failed rollout is over");
}

#[test]
fn rejected_config_keeps_the_old_table() {
    // The candidate is not a declared backend: the router refuses the config.
    let router = Router::from_yaml(CONFIG).expect("valid config");
    let target = RouterRuleTarget::new(router.clone(), "shop", "main", "v1", "v3");
    let clock = Arc::new(ManualClock::new());
    let rollout = Rollout::new(
        plan(checks()),
        target,
        StatsRegistry::new(),
        clock as SharedClock,
    );
    rollout.tick();
    assert!(
        matches!(rollout.state(), RolloutState::Failed { ref error, .. } if error.contains("config rejected")),
        "{:?}",
        rollout.state()
    );
    assert_eq!(router.generation(), 1);
}

#[test]
fn failing_rollback_is_reported() {
    let h = harness(checks());
    h.rollout.tick();
    h.router
        .update_yaml("backends: [{name: v1}, {name: v2}]\nroutes: []")
        .expect("valid config");
    h.traffic("v2", 10, 40, 10);
    h.rollout.tick();
    assert!(
        matches!(h.rollout.state(), RolloutState::Failed { percent, ref error }
            if percent == 0.0 && error.contains("route `shop` not found")),
        "{:?}",
        h.rollout.state()
    );
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
        checks: Checks {
            max_error_rate: Some(0.1),
            min_requests: 5,
            ..Checks::default()
        },
    })
    .expect("valid plan");
    let target = RouterRuleTarget::new(router.clone(), "shop", "main", "v1", "v2");
    let rollout = Rollout::new(plan, target.clone(), layer.clone(), SystemClock::shared());

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
    assert_eq!(target.weights().expect("rule"), (10_000, 0));
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
    fn backend_stats(&self, backend: &str) -> StatsSnapshot {
        let secs = (self.clock.now() - routing_tower::clock::Timestamp::ZERO).as_secs();
        let total = secs * self.per_sec;
        let errors = if backend == "v2" {
            total * self.candidate_error_permille / 1000
        } else {
            0
        };
        StatsSnapshot {
            requests: total,
            responses: [0, total - errors, 0, 0, errors],
            ..StatsSnapshot::default()
        }
    }
}

fn steady_rollout(error_permille: u64) -> (Router, Rollout) {
    let router = Router::from_yaml(CONFIG).expect("valid config");
    let target = RouterRuleTarget::new(router.clone(), "shop", "main", "v1", "v2");
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
    (router, Rollout::new(plan(checks), target, metrics, clock))
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
    assert_bounds::<Rollout>();
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

    let h = harness(checks());
    let layer = RoutingLayer::new(
        h.router.clone(),
        Backends::new()
            .with("v1", named("v1"))
            .with("v2", named("v2")),
    );
    let svc = layer.layer(routing_tower::NotFound);
    // Pin a session to the candidate (100 % for a moment).
    h.target.set_split(100.0).expect("split");
    let (who, cookie) = call(&svc, None).await;
    assert_eq!(who, "v2");
    let cookie = cookie.expect("a new session gets a cookie");
    // A step does not move the pinned session.
    h.target.set_split(1.0).expect("split");
    for _ in 0..20 {
        assert_eq!(call(&svc, Some(&cookie)).await, ("v2".to_owned(), None));
    }
    // Rollback (abort: same split) drains the candidate: the session moves to stable
    // with a new cookie, and stays there.
    h.rollout.abort().expect("abort");
    let (who, new_cookie) = call(&svc, Some(&cookie)).await;
    assert_eq!(who, "v1", "re-pinned to stable on its next request");
    let new_cookie = new_cookie.expect("re-pinning issues a new cookie");
    for _ in 0..20 {
        assert_eq!(call(&svc, Some(&new_cookie)).await, ("v1".to_owned(), None));
    }
}

#[test]
fn a_plan_reads_from_yaml_and_refuses_unknown_fields() {
    let spec: RolloutPlanSpec = serde_yaml_ng::from_str(
        "steps: [5, 10, 25, 50, 100]\nhold: 5m\nchecks: {max_error_rate: 0.01, max_error_ratio_vs_stable: 2, max_p99_ratio_vs_stable: 1.5, min_requests: 200}\n",
    )
    .expect("a valid plan");
    let plan = RolloutPlan::try_from(spec).expect("valid");
    assert_eq!(plan.steps(), &[5.0, 10.0, 25.0, 50.0, 100.0]);
    let spec: RolloutPlanSpec =
        serde_yaml_ng::from_str("steps: [50, 100]\nhold: 1s\n").expect("checks default");
    assert!(RolloutPlan::try_from(spec).is_ok());
    let err = serde_yaml_ng::from_str::<RolloutPlanSpec>("steps: [100]\nhold: 1s\nholdd: 2s\n")
        .expect_err("unknown field");
    assert!(err.to_string().contains("holdd"), "{err}");
}
