//! The rollout state machine in virtual time: the caller's `now`, synthetic
//! cumulative counts, splits applied to a real `routing_core::Router` (or recorded,
//! with no router at all). Real HTTP traffic is tested in routing-tower.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use routing_core::{ConfigDuration, Router};
use routing_rollout::{
    ApplySplit, BackendCounts, Checks, ControlError, RollbackReason, Rollout, RolloutEventKind,
    RolloutPlan, RolloutPlanSpec, RolloutState, RolloutTarget, TargetError,
};

type Counts = HashMap<String, BackendCounts>;

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

struct Harness {
    router: Router,
    target: RolloutTarget,
    metrics: Counts,
    now: Duration,
    rollout: Rollout,
}

fn harness(checks: Checks) -> Harness {
    let router = Router::from_yaml(CONFIG).expect("valid config");
    let target = RolloutTarget::http_rule("shop", "main", "v1", "v2");
    let rollout = Rollout::new(plan(checks), target.clone(), router.clone());
    Harness {
        router,
        target,
        metrics: Counts::new(),
        now: Duration::ZERO,
        rollout,
    }
}

/// Adds `ok` successes and `err` failures of `ms` milliseconds to `backend`'s totals.
fn record(metrics: &mut Counts, backend: &str, ok: u64, err: u64, ms: u64) {
    let c = metrics.entry(backend.to_owned()).or_default();
    c.completed += ok + err;
    c.errors += err;
    c.latency.record(Duration::from_millis(ms), ok + err);
}

impl Harness {
    /// Records `ok` 200s and `err` 503s for `backend`, each taking `ms` milliseconds.
    fn traffic(&mut self, backend: &str, ok: u64, err: u64, ms: u64) {
        record(&mut self.metrics, backend, ok, err, ms);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn tick(&mut self) -> Vec<routing_rollout::RolloutEvent> {
        self.rollout.tick(self.now, &self.metrics)
    }

    fn resume(&mut self) -> Result<Vec<routing_rollout::RolloutEvent>, ControlError> {
        self.rollout.resume(self.now, &self.metrics)
    }

    /// One healthy window: both backends busy, then the hold elapses.
    fn healthy_window(&mut self) {
        self.traffic("v1", 200, 1, 10);
        self.traffic("v2", 50, 0, 10);
        self.advance(HOLD);
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
        self.rollout
            .events()
            .iter()
            .map(|e| e.kind.clone())
            .collect()
    }
}

fn expected_weights(percent: f64) -> (u64, u64) {
    let cand = (percent * 100.0).round() as u64;
    (10_000 - cand, cand)
}

#[test]
fn healthy_candidate_is_promoted_through_every_step() {
    let mut h = harness(checks());
    assert_eq!(h.rollout.state().clone(), RolloutState::Pending);
    assert_eq!(
        h.live_weights(),
        (1, 0),
        "nothing changes before the first tick"
    );
    h.tick();
    for (step, &percent) in [5.0, 10.0, 25.0, 50.0, 100.0].iter().enumerate() {
        assert_eq!(
            h.rollout.state().clone(),
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
        h.advance(HOLD / 2);
        assert!(h.tick().is_empty(), "no verdict before the hold");
        h.advance(HOLD / 2);
        let events = h.tick();
        assert!(
            matches!(&events[0].kind, RolloutEventKind::StepPassed { figures }
                if figures.step == step && figures.candidate.completed == 50 && figures.elapsed == HOLD),
            "step {step} passes on its own window: {events:?}"
        );
    }
    assert_eq!(h.rollout.state().clone(), RolloutState::Promoted);
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
    assert!(h.tick().is_empty());
}

#[test]
fn candidate_degrading_at_step_3_is_rolled_back_within_one_window() {
    let mut h = harness(checks());
    h.tick();
    h.healthy_window();
    h.tick();
    h.healthy_window();
    h.tick();
    assert_eq!(
        h.rollout.state().clone(),
        RolloutState::Running {
            step: 2,
            percent: 25.0
        }
    );
    let before = h.router.generation();
    // A third of a window in, the candidate fails 30 of 60 requests.
    h.traffic("v1", 200, 0, 10);
    h.traffic("v2", 30, 30, 10);
    h.advance(HOLD / 3);
    let events = h.tick();
    assert_eq!(events.len(), 1, "one rollback event: {events:?}");
    let RolloutState::RolledBack { reason, figures } = h.rollout.state().clone() else {
        panic!("must be rolled back, is {:?}", h.rollout.state().clone());
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
    assert_eq!(
        h.target
            .weights(h.router.snapshot().config())
            .expect("rule exists"),
        (10_000, 0)
    );
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
    assert!(h.tick().is_empty());
    assert!(matches!(
        h.resume(),
        Err(ControlError::InvalidState {
            action: "resume",
            ..
        })
    ));
}

#[test]
fn slow_candidate_is_rolled_back_on_p99() {
    let mut h = harness(checks());
    h.tick();
    h.traffic("v1", 200, 0, 10);
    h.traffic("v2", 50, 0, 100);
    h.advance(HOLD);
    h.tick();
    assert!(
        matches!(
            h.rollout.state().clone(),
            RolloutState::RolledBack {
                reason: RollbackReason::P99Ratio { max_ratio, .. },
                ..
            } if max_ratio == 1.5
        ),
        "{:?}",
        h.rollout.state().clone()
    );
    assert_eq!(h.live_weights(), (10_000, 0));
}

#[test]
fn error_ratio_against_stable_fails_a_candidate_under_the_absolute_limit() {
    let mut h = harness(checks());
    h.tick();
    // Stable 1 %, candidate 4 %: under the 5 % limit but above 2 x stable.
    h.traffic("v1", 990, 10, 10);
    h.traffic("v2", 96, 4, 10);
    h.advance(HOLD);
    h.tick();
    assert!(
        matches!(
            h.rollout.state().clone(),
            RolloutState::RolledBack {
                reason: RollbackReason::ErrorRatio { .. },
                ..
            }
        ),
        "{:?}",
        h.rollout.state().clone()
    );
}

#[test]
fn too_little_traffic_holds_the_step() {
    let mut h = harness(checks());
    h.tick();
    h.traffic("v1", 180, 20, 10); // stable at 10 % errors
    h.traffic("v2", 5, 5, 10); // 50 % errors, but only 10 requests: no verdict
    h.advance(HOLD);
    let events = h.tick();
    assert!(
        matches!(&events[..], [e] if matches!(&e.kind,
            RolloutEventKind::Waiting { figures, min_requests: 20 } if figures.candidate.completed == 10)),
        "{events:?}"
    );
    h.advance(HOLD * 4);
    assert!(h.tick().is_empty(), "waiting is reported once");
    assert_eq!(
        h.rollout.state().clone(),
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
    h.tick();
    assert_eq!(
        h.rollout.state().clone(),
        RolloutState::Running {
            step: 1,
            percent: 10.0
        }
    );
}

#[test]
fn a_candidate_that_never_gets_traffic_ends_inconclusive_at_max_step() {
    // Default max_step: ten holds (30 s here), at least an hour.
    let mut h = harness(checks());
    assert_eq!(h.rollout.plan().max_step(), Duration::from_secs(3600));
    h.tick();
    h.traffic("v1", 500, 0, 10);
    h.traffic("v2", 3, 0, 10); // never enough to judge
    h.advance(Duration::from_secs(3599));
    h.tick();
    assert!(matches!(
        h.rollout.state(),
        RolloutState::Running { step: 0, .. }
    ));
    h.advance(Duration::from_secs(1));
    let events = h.tick();
    assert!(
        matches!(&events[..], [e] if matches!(&e.kind,
            RolloutEventKind::Inconclusive { figures } if figures.candidate.completed == 3)),
        "{events:?}"
    );
    assert!(matches!(
        h.rollout.state(),
        RolloutState::Inconclusive { .. }
    ));
    assert!(h.rollout.state().is_terminal());
    assert_eq!(
        h.live_weights(),
        expected_weights(0.0),
        "stable back at 100 %"
    );
    assert!(h.tick().is_empty(), "terminal: later ticks do nothing");

    // An explicit max_step, checked against the hold.
    let spec = |max: &str| RolloutPlanSpec {
        steps: vec![50.0, 100.0],
        hold: ConfigDuration::new(HOLD),
        max_step: Some(max.parse().expect("duration")),
        checks: checks(),
    };
    let plan = RolloutPlan::try_from(spec("2m")).expect("valid");
    assert_eq!(plan.max_step(), Duration::from_secs(120));
    let err = RolloutPlan::try_from(spec("10s")).expect_err("below the hold");
    assert_eq!(err.problems[0].field, "max_step");
}

#[test]
fn pause_freezes_and_resume_restarts_the_step() {
    let mut h = harness(checks());
    assert!(matches!(
        h.rollout.pause(h.now),
        Err(ControlError::InvalidState {
            action: "pause",
            state
        }) if *state == RolloutState::Pending
    ));
    h.tick();
    let events = h.rollout.pause(h.now).expect("running rollouts pause");
    assert_eq!(events[0].kind, RolloutEventKind::Paused { step: 0 });
    h.healthy_window();
    h.healthy_window();
    assert!(h.tick().is_empty(), "paused: no verdict");
    assert_eq!(
        h.rollout.state().clone(),
        RolloutState::Paused {
            step: 0,
            percent: 5.0
        }
    );
    assert_eq!(h.live_weights(), expected_weights(5.0));
    assert!(h.rollout.pause(h.now).is_err(), "already paused");

    let events = h.resume().expect("paused rollouts resume");
    assert_eq!(events[0].kind, RolloutEventKind::Resumed { step: 0 });
    assert!(h.tick().is_empty(), "fresh window: the hold restarts");
    let fig = h
        .rollout
        .current_figures(h.now, &h.metrics)
        .expect("running");
    assert_eq!(
        fig.candidate.completed, 0,
        "traffic of the paused time is not judged"
    );
    h.healthy_window();
    h.tick();
    assert_eq!(
        h.rollout.state().clone(),
        RolloutState::Running {
            step: 1,
            percent: 10.0
        }
    );
}

#[test]
fn abort_returns_to_stable() {
    let mut h = harness(checks());
    h.tick();
    h.healthy_window();
    h.tick();
    assert_eq!(h.live_weights(), expected_weights(10.0));
    let events = h.rollout.abort(h.now).expect("abort");
    assert_eq!(events[0].kind, RolloutEventKind::Aborted);
    assert_eq!(h.rollout.state().clone(), RolloutState::Aborted);
    assert_eq!(h.live_weights(), (10_000, 0));
    h.healthy_window();
    assert!(h.tick().is_empty());
    assert!(h.rollout.abort(h.now).is_err(), "over");
    assert!(h.rollout.promote(h.now).is_err(), "over");
}

#[test]
fn abort_while_paused_and_before_start() {
    let mut h = harness(checks());
    h.rollout
        .abort(h.now)
        .expect("a pending rollout can be aborted");
    assert_eq!(h.live_weights(), (10_000, 0));
    let mut h = harness(checks());
    h.tick();
    h.rollout.pause(h.now).expect("pause");
    h.rollout
        .abort(h.now)
        .expect("a paused rollout can be aborted");
    assert_eq!(h.rollout.state().clone(), RolloutState::Aborted);
}

#[test]
fn promote_skips_to_the_candidate() {
    let mut h = harness(checks());
    h.tick();
    let events = h.rollout.promote(h.now).expect("promote");
    assert_eq!(events[0].kind, RolloutEventKind::Promoted { manual: true });
    assert_eq!(h.rollout.state().clone(), RolloutState::Promoted);
    assert_eq!(h.live_weights(), (0, 10_000));
}

#[test]
fn invalid_plan_is_a_typed_error_naming_the_field() {
    let spec = RolloutPlanSpec {
        steps: vec![5.0, 50.0],
        hold: ConfigDuration::new(Duration::ZERO),
        max_step: None,
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
    let mut h = harness(checks());
    h.tick();
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
    let events = h.tick();
    assert!(
        matches!(&events[..], [passed, failed]
            if matches!(passed.kind, RolloutEventKind::StepPassed { .. })
            && matches!(&failed.kind, RolloutEventKind::TargetFailed { percent, error }
                if *percent == 10.0 && error.contains("rule `main` not found"))),
        "{events:?}"
    );
    assert!(matches!(
        h.rollout.state().clone(),
        RolloutState::Failed { percent, .. } if percent == 10.0
    ));
    assert_eq!(
        h.router.generation(),
        generation,
        "the live table is untouched"
    );
    h.healthy_window();
    assert!(h.tick().is_empty(), "a failed rollout does nothing");
    assert!(h.rollout.abort(h.now).is_err(), "a failed rollout is over");
}

#[test]
fn rejected_config_keeps_the_old_table() {
    // The candidate is not a declared backend: the router refuses the config.
    let router = Router::from_yaml(CONFIG).expect("valid config");
    let target = RolloutTarget::http_rule("shop", "main", "v1", "v3");
    let mut rollout = Rollout::new(plan(checks()), target, router.clone());
    rollout.tick(Duration::ZERO, &Counts::new());
    assert!(
        matches!(rollout.state(), RolloutState::Failed { error, .. } if error.contains("config rejected")),
        "{:?}",
        rollout.state()
    );
    assert_eq!(router.generation(), 1);
}

#[test]
fn failing_rollback_is_reported() {
    let mut h = harness(checks());
    h.tick();
    h.router
        .update_yaml("backends: [{name: v1}, {name: v2}]\nroutes: []")
        .expect("valid config");
    h.traffic("v2", 10, 40, 10);
    h.tick();
    assert!(
        matches!(h.rollout.state().clone(), RolloutState::Failed { percent, ref error }
            if percent == 0.0 && error.contains("route `shop` not found")),
        "{:?}",
        h.rollout.state().clone()
    );
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

#[test]
fn rollout_is_send_sync() {
    fn assert_bounds<T: Send + Sync + 'static>() {}
    assert_bounds::<Rollout>();
    assert_bounds::<ControlError>();
}

#[test]
fn events_carry_the_callers_time() {
    let mut h = harness(checks());
    h.advance(Duration::from_secs(7));
    let events = h.tick();
    assert_eq!(events[0].at, Duration::from_secs(7));
    h.healthy_window();
    let events = h.tick();
    assert!(
        events.iter().all(|e| e.at == Duration::from_secs(37)),
        "{events:?}"
    );
}

/// A split applier that records splits and refuses once told to: the state machine
/// needs no router.
#[derive(Debug, Default)]
struct Recorder {
    splits: Mutex<Vec<f64>>,
    refuse: Mutex<bool>,
}

impl ApplySplit for Recorder {
    fn apply_split(&self, _target: &RolloutTarget, percent: f64) -> Result<(), TargetError> {
        if *self.refuse.lock().unwrap() {
            return Err(TargetError::Other("refused by the test".into()));
        }
        self.splits.lock().unwrap().push(percent);
        Ok(())
    }
}

#[test]
fn the_state_machine_runs_without_a_router() {
    let target = RolloutTarget::http_rule("any", "rule", "v1", "v2");
    let mut r = Rollout::new(plan(checks()), target, Recorder::default());
    let mut m = Counts::new();
    let mut now = Duration::ZERO;
    r.tick(now, &m);
    for _ in 0..3 {
        record(&mut m, "v1", 200, 0, 10);
        record(&mut m, "v2", 50, 0, 10);
        now += HOLD;
        r.tick(now, &m);
    }
    assert_eq!(*r.applier().splits.lock().unwrap(), [5.0, 10.0, 25.0, 50.0]);
    assert_eq!(r.candidate_percent(), 50.0);
    *r.applier().refuse.lock().unwrap() = true;
    record(&mut m, "v2", 50, 0, 10);
    now += HOLD;
    let events = r.tick(now, &m);
    assert!(
        matches!(&events[..], [passed, failed]
            if matches!(passed.kind, RolloutEventKind::StepPassed { .. })
            && matches!(&failed.kind, RolloutEventKind::TargetFailed { percent, error }
                if *percent == 100.0 && error == "refused by the test")),
        "{events:?}"
    );
    assert_eq!(
        r.candidate_percent(),
        50.0,
        "a refused split changes nothing"
    );
}

const L4: &str = r#"
backends:
  - {name: v1, address: '203.0.113.10:8080'}
  - {name: v2, address: '203.0.113.11:8080'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: v1}]}
"#;

#[test]
fn a_tcp_service_rollout_edits_the_router() {
    let router = Router::from_yaml(L4).unwrap();
    let target = RolloutTarget::tcp_service("web", "v1", "v2");
    let mut r = Rollout::new(plan(checks()), target.clone(), router.clone());
    let mut m = Counts::new();
    r.tick(Duration::ZERO, &m);
    let w = || target.weights(router.snapshot().config()).unwrap();
    assert_eq!(w(), (9_500, 500));
    record(&mut m, "v1", 20, 0, 1);
    record(&mut m, "v2", 20, 15, 1);
    r.tick(Duration::from_secs(1), &m);
    assert!(
        matches!(r.state(), RolloutState::RolledBack { .. }),
        "{:?}",
        r.state()
    );
    assert_eq!(w(), (10_000, 0));
    // A service that is not there is refused, and nothing changes.
    let other = RolloutTarget::tcp_service("nope", "v1", "v2");
    let generation = router.generation();
    assert!(matches!(
        router.apply_split(&other, 10.0),
        Err(TargetError::ServiceNotFound { .. })
    ));
    assert!(matches!(
        router.apply_split(&target, 150.0),
        Err(TargetError::InvalidPercent(_))
    ));
    assert_eq!(router.generation(), generation);
}

#[test]
fn a_file_reload_between_ticks_is_kept_by_the_next_split() {
    let mut h = harness(checks());
    h.tick();
    // The user's file gains a route; the rollout's next split is an edit of the live
    // config, so the new route survives it (one owner of the config).
    h.router
        .update_yaml(
            r#"
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    rules:
      - name: main
        backends: [{name: v1, weight: 9500}, {name: v2, weight: 500}]
  - name: admin
    rules: [{backends: [{name: v1}]}]
"#,
        )
        .unwrap();
    h.healthy_window();
    h.tick();
    let table = h.router.snapshot();
    assert_eq!(table.config().routes.len(), 2, "the reloaded route is live");
    assert_eq!(h.live_weights(), expected_weights(10.0));
}
