//! routing-tower's rollout controller driving an XDP service (feature `rollout`;
//! root only, skips loudly otherwise): splits are applied as whole table flips, and
//! a refused split leaves the previous one live.
#![cfg(feature = "rollout")]

use std::sync::{Arc, Mutex};

use routing_core::{Config, RouteTable};
use routing_ebpf::rollout::XdpServiceTarget;
use routing_ebpf::{Options, XdpBalancer};
use routing_tower::rollout::{TargetError, WeightTarget};

const CONFIG: &str = r#"
backends:
  - {name: v1, address: '203.0.113.10:8080'}
  - {name: v2, address: '203.0.113.11:8080'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: v1}]}
"#;

fn weights(lb: &Mutex<XdpBalancer>) -> Vec<(String, u32)> {
    let stats = lb.lock().expect("lock").stats().expect("stats");
    let mut w: Vec<(String, u32)> = stats.vips[0]
        .targets
        .iter()
        .map(|t| (t.name.clone(), t.weight))
        .collect();
    w.sort();
    w
}

#[test]
#[ignore = "needs root"]
fn splits_flip_the_xdp_table_and_a_refused_split_keeps_the_last_one() {
    let config = Config::from_yaml(CONFIG).expect("config");
    let mut lb = XdpBalancer::load(&Options::default()).expect("load");
    lb.apply(&RouteTable::new(config.clone()).expect("valid"))
        .expect("apply");
    let lb = Arc::new(Mutex::new(lb));
    let target = XdpServiceTarget::new(Arc::clone(&lb), config, "web", "v1", "v2");

    target.set_split(25.0).expect("25 %");
    assert_eq!(weights(&lb), [("v1".into(), 7_500), ("v2".into(), 2_500)]);
    target.set_split(100.0).expect("100 %");
    assert_eq!(weights(&lb), [("v1".into(), 0), ("v2".into(), 10_000)]);

    // Refused: the percentage, and a service that is not there.
    assert!(matches!(
        target.set_split(150.0),
        Err(TargetError::InvalidPercent(_))
    ));
    let other = XdpServiceTarget::new(Arc::clone(&lb), target.config(), "nope", "v1", "v2");
    assert!(matches!(other.set_split(10.0), Err(TargetError::Other(_))));
    assert_eq!(
        weights(&lb),
        [("v1".into(), 0), ("v2".into(), 10_000)],
        "still live"
    );

    // Rollback.
    target.set_split(0.0).expect("0 %");
    assert_eq!(weights(&lb), [("v1".into(), 10_000), ("v2".into(), 0)]);
}
