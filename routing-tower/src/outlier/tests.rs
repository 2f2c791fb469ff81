//! Unit tests of the outlier detector.

use super::*;
use crate::clock::ManualClock;
use crate::outcome::Failure;
use http::StatusCode;
use routing_core::{RequestInfo, Router};

const E500: Outcome = Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR);
const E503: Outcome = Outcome::Status(StatusCode::SERVICE_UNAVAILABLE);
const OK: Outcome = Outcome::Status(StatusCode::OK);

fn setup(
    config: OutlierDetection,
    names: &[&str],
) -> (Arc<ManualClock>, OutlierDetector, HealthRegistry) {
    let clock = Arc::new(ManualClock::new());
    let d = OutlierDetector::new(config, clock.clone());
    let health = HealthRegistry::default();
    d.sync(names.iter().copied(), &health);
    (clock, d, health)
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("b{i}")).collect()
}

#[test]
fn consecutive_5xx_ejects_exactly_at_threshold() {
    let (_c, d, health) = setup(OutlierDetection::default(), &["a", "b"]);
    for i in 1..5 {
        assert!(
            d.record("a", E500).is_none(),
            "failure {i} of 5 must not eject"
        );
        assert!(!d.is_ejected("a"));
    }
    let e = d
        .record("a", E500)
        .expect("the 5th consecutive 5xx must eject");
    assert_eq!(e.reason, EjectionReason::Consecutive5xx);
    assert_eq!(e.duration, Duration::from_secs(30));
    assert_eq!(&*e.backend, "a");
    assert!(d.is_ejected("a"));
    assert_eq!(health.is_available("a"), Some(false));
    assert_eq!(health.is_available("b"), Some(true));
    assert_eq!(d.ejected_count(), 1);
    assert_eq!(d.ejections_total("a"), Some(1));
}

#[test]
fn success_in_between_resets_the_run() {
    let (_c, d, _h) = setup(OutlierDetection::default(), &["a", "b"]);
    for round in 0..10 {
        for _ in 0..4 {
            d.record("a", E500);
        }
        d.record("a", OK);
        assert!(
            !d.is_ejected("a"),
            "round {round}: a success must reset the run"
        );
    }
    // 4xx is a success for outlier detection.
    for _ in 0..4 {
        d.record("a", E500);
    }
    d.record("a", Outcome::Status(StatusCode::NOT_FOUND));
    d.record("a", E500);
    assert!(!d.is_ejected("a"));
}

#[test]
fn gateway_errors_counted_separately() {
    let config = OutlierDetection {
        consecutive_5xx: None,
        consecutive_gateway_errors: Some(3),
        ..Default::default()
    };
    let (_c, d, _h) = setup(config, &["a", "b"]);
    d.record("a", E503);
    d.record("a", Outcome::Failure(Failure::Connect));
    // A non-gateway 5xx breaks the gateway run.
    d.record("a", E500);
    d.record("a", Outcome::Status(StatusCode::BAD_GATEWAY));
    d.record("a", Outcome::Failure(Failure::Timeout));
    assert!(!d.is_ejected("a"));
    let e = d
        .record("a", Outcome::Status(StatusCode::GATEWAY_TIMEOUT))
        .expect("third gateway error in a row ejects");
    assert_eq!(e.reason, EjectionReason::ConsecutiveGatewayErrors);
}

#[test]
fn local_failures_count_as_5xx_and_gateway_wins_ties() {
    let config = OutlierDetection {
        consecutive_5xx: Some(2),
        consecutive_gateway_errors: Some(2),
        ..Default::default()
    };
    let (_c, d, _h) = setup(config, &["a", "b"]);
    d.record("a", Outcome::Failure(Failure::Reset));
    let e = d
        .record("a", Outcome::Failure(Failure::Reset))
        .expect("ejects");
    assert_eq!(e.reason, EjectionReason::ConsecutiveGatewayErrors);
}

#[test]
fn zero_threshold_disables() {
    let config = OutlierDetection {
        consecutive_5xx: Some(0),
        ..Default::default()
    };
    let (_c, d, _h) = setup(config, &["a"]);
    for _ in 0..100 {
        assert!(d.record("a", E500).is_none());
    }
}

#[test]
fn max_ejection_percent_respected() {
    let n = names(10);
    let config = OutlierDetection {
        consecutive_5xx: Some(1),
        max_ejection_percent: 30,
        ..Default::default()
    };
    let (_c, d, health) = setup(config, &n.iter().map(String::as_str).collect::<Vec<_>>());
    let mut ejected = 0;
    for name in &n {
        if d.record(name, E500).is_some() {
            ejected += 1;
        }
    }
    assert_eq!(ejected, 3, "30 % of 10 backends");
    assert_eq!(d.ejected_count(), 3);
    let unavailable = n
        .iter()
        .filter(|b| health.is_available(b) == Some(false))
        .count();
    assert_eq!(unavailable, 3);
    // Refused detections consumed their runs: one more failure is a new run of 1,
    // still refused while 3 are out.
    assert!(d.record("b9", E500).is_none());
}

#[test]
fn one_ejection_allowed_even_when_percent_allows_none() {
    let names = ["a", "b", "c"];
    let config = OutlierDetection {
        consecutive_5xx: Some(1),
        max_ejection_percent: 10, // ⌊0.3⌋ = 0 hosts
        ..Default::default()
    };
    let (_c, d, _h) = setup(config, &names);
    assert!(
        d.record("a", E500).is_some(),
        "Envoy ejects at least one host"
    );
    assert!(d.record("b", E500).is_none(), "but only one");
    assert_eq!(d.ejected_count(), 1);

    let d = OutlierDetector::new(config, Arc::new(ManualClock::new())).always_eject_one(false);
    d.sync(names, &HealthRegistry::default());
    assert!(
        d.record("a", E500).is_none(),
        "strict percent allows none of 3 at 10 %"
    );
    let zero = OutlierDetection {
        max_ejection_percent: 0,
        ..config
    };
    let (_c, d, _h) = setup(zero, &names);
    assert!(d.record("a", E500).is_some());
    let all = OutlierDetection {
        max_ejection_percent: 255,
        ..config
    };
    let (_c, d, _h) = setup(all, &names);
    for n in names {
        assert!(d.record(n, E500).is_some(), "percent > 100 reads as 100");
    }
}

#[test]
fn returns_after_base_time_and_repeat_ejection_doubles() {
    let (clock, d, health) = setup(OutlierDetection::default(), &["a", "b"]);
    for _ in 0..5 {
        d.record("a", E500);
    }
    clock.advance(Duration::from_secs(30) - Duration::from_nanos(1));
    assert!(d.is_ejected("a"), "still ejected 1 ns before the end");
    assert_eq!(health.is_available("a"), Some(false));
    clock.advance(Duration::from_nanos(1));
    // Any call returns it: here a success recorded for another backend.
    d.record("b", OK);
    assert_eq!(health.is_available("a"), Some(true));
    assert!(!d.is_ejected("a"));
    assert_eq!(d.ejected_count(), 0);
    // Fails again at once: 2 × base.
    let mut e = None;
    for _ in 0..5 {
        e = d.record("a", E500);
    }
    let e = e.expect("ejected again");
    assert_eq!(e.duration, Duration::from_secs(60));
    assert_eq!(e.ejections_total, 2);
    clock.advance(Duration::from_secs(59));
    assert_eq!(d.sweep(), 0);
    assert!(d.is_ejected("a"));
    clock.advance(Duration::from_secs(1));
    assert_eq!(d.sweep(), 1);
    assert_eq!(health.is_available("a"), Some(true));
}

#[test]
fn ejection_time_capped_by_max() {
    let config = OutlierDetection {
        consecutive_5xx: Some(1),
        max_ejection_time: Duration::from_secs(100),
        ..Default::default()
    };
    let (clock, d, _h) = setup(config, &["a"]);
    let mut durations = Vec::new();
    for _ in 0..6 {
        let e = d.record("a", E500).expect("ejects");
        durations.push(e.duration.as_secs());
        clock.advance(e.duration);
        d.sweep();
    }
    assert_eq!(durations, [30, 60, 90, 100, 100, 100]);
    assert_eq!(d.snapshot()[0].multiplier, 4, "multiplier stops at the cap");
}

#[test]
fn multiplier_decays_one_per_interval_in_service() {
    let config = OutlierDetection {
        consecutive_5xx: Some(1),
        ..Default::default()
    };
    let (clock, d, _h) = setup(config, &["a"]);
    for _ in 0..3 {
        let e = d.record("a", E500).expect("ejects");
        clock.advance(e.duration);
    }
    d.sweep();
    assert_eq!(d.snapshot()[0].multiplier, 3);
    clock.advance(Duration::from_secs(19)); // 1 full interval
    assert_eq!(d.snapshot()[0].multiplier, 2);
    let e = d.record("a", E500).expect("ejects");
    assert_eq!(
        e.duration,
        Duration::from_secs(90),
        "decayed 3 → 2, then +1"
    );
    clock.advance(e.duration + Duration::from_secs(1000));
    d.sweep();
    assert_eq!(
        d.snapshot()[0].multiplier,
        0,
        "fully decayed after long health"
    );
    let e = d.record("a", E500).expect("ejects");
    assert_eq!(e.duration, Duration::from_secs(30));
}

#[test]
fn sync_keeps_state_for_names_that_stay() {
    let (clock, d, health) = setup(OutlierDetection::default(), &["a", "b", "c"]);
    for _ in 0..5 {
        d.record("a", E500);
    }
    for _ in 0..3 {
        d.record("b", E500);
    }
    for _ in 0..5 {
        d.record("c", E500);
    }
    // 10 % of 3 backends is 0, but one is always allowed: only `a` is out.
    assert!(d.is_ejected("a") && !d.is_ejected("c"));
    d.sync(["a", "b", "d"], &health);
    assert!(d.is_ejected("a"), "ejection survives the swap");
    let snap = d.snapshot();
    let b = snap.iter().find(|s| &*s.name == "b").expect("b stays");
    assert_eq!(b.consecutive_5xx, 3, "counters survive the swap");
    assert!(snap.iter().all(|s| &*s.name != "c"));
    // Removing an ejected backend hands it back to selection.
    d.sync(["b", "d"], &health);
    assert_eq!(health.is_available("a"), Some(true));
    assert_eq!(d.ejected_count(), 0);
    // Duplicates are ignored.
    d.sync(["b", "b", "d"], &health);
    assert_eq!(d.snapshot().len(), 2);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(d.sweep(), 0);
}

#[test]
fn failures_while_ejected_are_not_counted() {
    let config = OutlierDetection {
        consecutive_5xx: Some(2),
        ..Default::default()
    };
    let (clock, d, _h) = setup(config, &["a"]);
    d.record("a", E500);
    d.record("a", E500);
    for _ in 0..10 {
        assert!(d.record("a", E500).is_none());
    }
    clock.advance(Duration::from_secs(30));
    d.sweep();
    assert_eq!(
        d.snapshot()[0].consecutive_5xx,
        0,
        "returned with a clean run"
    );
    assert!(d.record("a", E500).is_none(), "needs a full new run");
}

#[test]
fn unknown_backend_ignored_and_drop_restores_health() {
    let (_c, d, health) = setup(OutlierDetection::default(), &["a", "b"]);
    assert!(d.record("ghost", E500).is_none());
    for _ in 0..5 {
        d.record("a", E500);
    }
    assert_eq!(health.is_available("a"), Some(false));
    drop(d);
    assert_eq!(health.is_available("a"), Some(true));
}

#[test]
fn concurrent_failures_eject_once() {
    let clock = Arc::new(ManualClock::new());
    let d = Arc::new(OutlierDetector::new(
        OutlierDetection {
            consecutive_5xx: Some(3),
            ..Default::default()
        },
        clock,
    ));
    let health = HealthRegistry::default();
    d.sync(names(4), &health);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let d = Arc::clone(&d);
            std::thread::spawn(move || (0..1000).filter(|_| d.record("b0", E500).is_some()).count())
        })
        .collect();
    let ejections: usize = handles
        .into_iter()
        .map(|h| h.join().unwrap_or(usize::MAX))
        .sum();
    assert_eq!(ejections, 1, "one ejection for one run of failures");
    assert_eq!(d.ejections_total("b0"), Some(1));
}

#[test]
fn router_skips_ejected_backend_and_takes_it_back() {
    let router = Router::from_yaml(
        r#"
backends: [{name: a}, {name: b}, {name: c}]
routes: [{name: r, rules: [{backends: [{name: a}, {name: b}, {name: c}]}]}]
"#,
    )
    .expect("valid config");
    let clock = Arc::new(ManualClock::new());
    let d = OutlierDetector::new(OutlierDetection::default(), clock.clone());
    let names: Vec<String> = router
        .load()
        .backends()
        .iter()
        .map(|b| b.name().to_owned())
        .collect();
    d.sync(&names, router.health());
    let picks = |n: usize| -> HashMap<String, usize> {
        let table = router.load();
        let mut rng = rand::rng();
        let mut counts = HashMap::new();
        for _ in 0..n {
            let dec = table
                .decide(&RequestInfo::get("http://x/"), &mut rng)
                .expect("a route matches");
            let name = dec
                .backend()
                .map(|b| b.name().to_owned())
                .unwrap_or_default();
            *counts.entry(name).or_insert(0) += 1;
        }
        counts
    };
    for _ in 0..5 {
        d.record("a", Outcome::Status(StatusCode::BAD_GATEWAY));
    }
    let during = picks(600);
    assert_eq!(
        during.get("a"),
        None,
        "ejected backend must not be chosen: {during:?}"
    );
    assert!(during.get("b").is_some_and(|&n| n > 0) && during.get("c").is_some_and(|&n| n > 0));
    clock.advance(Duration::from_secs(30));
    d.sweep();
    let after = picks(600);
    assert!(
        after.get("a").is_some_and(|&n| n > 100),
        "a is back: {after:?}"
    );
}

#[test]
fn zero_durations_do_not_panic() {
    let config = OutlierDetection {
        consecutive_5xx: Some(1),
        interval: Duration::ZERO,
        base_ejection_time: Duration::ZERO,
        max_ejection_time: Duration::ZERO,
        ..Default::default()
    };
    let (clock, d, _h) = setup(config, &["a"]);
    clock.advance(Duration::from_secs(1));
    let e = d.record("a", E500).expect("ejects");
    assert_eq!(e.duration, Duration::ZERO);
    d.sweep();
    assert!(!d.is_ejected("a"));
    let huge = OutlierDetection {
        consecutive_5xx: Some(1),
        base_ejection_time: Duration::MAX,
        max_ejection_time: Duration::MAX,
        ..Default::default()
    };
    let (clock, d, _h) = setup(huge, &["a"]);
    clock.advance(Duration::from_secs(1));
    let e = d.record("a", E500).expect("ejects");
    assert_eq!(e.until, Timestamp::MAX);
    assert!(d.is_ejected("a"));
}
