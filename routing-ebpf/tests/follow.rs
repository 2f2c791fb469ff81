//! The loader follows a Router (root only, skips loudly otherwise): a progressive
//! rollout on a tcp service and a file reload both change the router, and each
//! `sync` flips the XDP tables to the router's live table; a refused split leaves the
//! previous one live.

use std::time::Duration;

use routing_core::Router;
use routing_ebpf::follow::RouterFollower;
use routing_ebpf::{Options, XdpBalancer};
use routing_rollout::{
    ApplySplit, BackendCounts, Checks, Rollout, RolloutPlan, RolloutPlanSpec, RolloutState,
    RolloutTarget, TargetError,
};

const CONFIG: &str = r#"
backends:
  - {name: v1, address: '203.0.113.10:8080'}
  - {name: v2, address: '203.0.113.11:8080'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: v1}]}
"#;

/// The file after a reload: a second service.
const RELOADED: &str = r#"
backends:
  - {name: v1, address: '203.0.113.10:8080'}
  - {name: v2, address: '203.0.113.11:8080'}
  # Each target address:port serves one VIP (stateless reply translation).
  - {name: pg, address: '203.0.113.10:5432'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: v1, weight: 7500}, {name: v2, weight: 2500}]}
  - {name: db, vip: '192.0.2.2:5432', backends: [{name: pg}]}
"#;

/// The `(name, weight)` of each target of the VIP named `service`, sorted.
fn weights(lb: &XdpBalancer, service: &str) -> Vec<(String, u32)> {
    let stats = lb.stats().expect("stats");
    let vip = stats
        .vips
        .iter()
        .find(|v| v.name == service)
        .unwrap_or_else(|| panic!("VIP {service} is programmed"));
    let mut w: Vec<(String, u32)> = vip
        .targets
        .iter()
        .map(|t| (t.name.clone(), t.weight))
        .collect();
    w.sort();
    w
}

fn vip_count(lb: &XdpBalancer) -> usize {
    lb.stats().expect("stats").vips.len()
}

#[test]
#[ignore = "needs root"]
fn rollout_and_reload_both_reach_the_xdp_tables_through_the_router() {
    let router = Router::from_yaml(CONFIG).expect("config");
    let mut lb = XdpBalancer::load(&Options::default()).expect("load");
    let mut follower = RouterFollower::new(router.clone());
    assert_eq!(follower.sync(&mut lb).expect("apply"), Some(1));
    assert_eq!(follower.sync(&mut lb).expect("nothing new"), None);
    assert_eq!(weights(&lb, "web"), [("v1".into(), 1)]);

    let plan = RolloutPlan::try_from(RolloutPlanSpec {
        steps: vec![25.0, 100.0],
        hold: "10s".parse().expect("duration"),
        max_step: None,
        checks: Checks::default(),
    })
    .expect("plan");
    let target = RolloutTarget::tcp_service("web", "v1", "v2");
    let mut rollout = Rollout::new(plan, target.clone(), router.clone());
    let mut metrics = std::collections::HashMap::<String, BackendCounts>::new();

    // Step 1: 25 %, one table flip.
    rollout.tick(Duration::ZERO, &metrics);
    assert_eq!(follower.sync(&mut lb).expect("apply"), Some(2));
    assert_eq!(
        weights(&lb, "web"),
        [("v1".into(), 7_500), ("v2".into(), 2_500)]
    );

    // Refused splits (a bad percentage, a service that is not there) change neither
    // the router nor the tables.
    assert!(matches!(
        router.apply_split(&target, 150.0),
        Err(TargetError::InvalidPercent(_))
    ));
    let nope = RolloutTarget::tcp_service("nope", "v1", "v2");
    assert!(matches!(
        router.apply_split(&nope, 10.0),
        Err(TargetError::ServiceNotFound { .. })
    ));
    assert_eq!(follower.sync(&mut lb).expect("nothing new"), None);
    assert_eq!(
        weights(&lb, "web"),
        [("v1".into(), 7_500), ("v2".into(), 2_500)]
    );

    // The file is reloaded (a new service); the next step keeps it: one owner.
    router.update_yaml(RELOADED).expect("valid reload");
    assert_eq!(follower.sync(&mut lb).expect("apply"), Some(3));
    assert_eq!(vip_count(&lb), 2);
    metrics.insert(
        "v2".into(),
        BackendCounts {
            completed: 5,
            ..BackendCounts::default()
        },
    );
    rollout.tick(Duration::from_secs(10), &metrics);
    assert_eq!(
        rollout.state(),
        &RolloutState::Running {
            step: 1,
            percent: 100.0
        }
    );
    assert_eq!(follower.sync(&mut lb).expect("apply"), Some(4));
    assert_eq!(
        weights(&lb, "web"),
        [("v1".into(), 0), ("v2".into(), 10_000)]
    );
    assert_eq!(vip_count(&lb), 2, "the reloaded service survived the step");

    // Rollback by hand.
    rollout.abort(Duration::from_secs(11)).expect("abort");
    follower.sync(&mut lb).expect("apply");
    assert_eq!(
        weights(&lb, "web"),
        [("v1".into(), 10_000), ("v2".into(), 0)]
    );
}
