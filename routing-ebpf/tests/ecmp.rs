//! Consistency across the load balancers of a fleet behind ECMP (root only;
//! `#[ignore = "needs root"]` otherwise): two balancers loaded side by side in one
//! namespace the test creates, given the same services and backends listed in
//! different orders, export the same fingerprint and steer every flow to the same
//! target — also a mid-flow packet (ACK, no SYN) reaching the balancer that never
//! saw the flow's SYN, as after the router moved the flow (`BPF_PROG_TEST_RUN`
//! with crafted frames; bounded to 300 flows). And a real fleet: a router
//! namespace with a multipath route over two or three balancer namespaces
//! (DSR, IP-in-IP), targets that answer the client directly, 1 000 open
//! connections that survive removing a nexthop and restarting a balancer
//! (bounded: 2–3 s timeouts on every socket, 1 000 connections).

use std::net::SocketAddr;
use std::time::Instant;

use routing_core::RouteTable;
use routing_ebpf::{Options, Verdict, XdpBalancer};
use routing_testkit::netns::Netns;
use routing_testkit::packet::{flags, parse, TcpPacket};

#[path = "fleet/mod.rs"]
mod fleet;
use fleet::{echo_all, open_connections, per_target, Fleet, FLEET_CONNECTIONS};

const ORDER_A: &str = r#"
backends:
  - {name: a, address: '203.0.113.10:8080'}
  - {name: b, address: '203.0.113.11:8080'}
  - {name: c, address: '203.0.113.12:8080'}
  - {name: a6, address: '[2001:db8:d::a]:8080'}
  - {name: b6, address: '[2001:db8:d::b]:8080'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: a, weight: 3}, {name: b, weight: 2}, {name: c, weight: 1}]}
  - {name: web6, vip: '[2001:db8:f::1]:80', backends: [{name: a6}, {name: b6}]}
"#;

/// The same fleet configuration, every list in another order.
const ORDER_B: &str = r#"
backends:
  - {name: b6, address: '[2001:db8:d::b]:8080'}
  - {name: c, address: '203.0.113.12:8080'}
  - {name: a6, address: '[2001:db8:d::a]:8080'}
  - {name: b, address: '203.0.113.11:8080'}
  - {name: a, address: '203.0.113.10:8080'}
tcp_services:
  - {name: web6, vip: '[2001:db8:f::1]:80', backends: [{name: b6}, {name: a6}]}
  - {name: web, vip: '192.0.2.1:80', backends: [{name: c, weight: 1}, {name: a, weight: 3}, {name: b, weight: 2}]}
"#;

/// One namespace with a veth `d0` on the targets' subnets and permanent
/// neighbour entries, so the program's FIB lookups resolve; returns it and the
/// ifindex of `d0`.
fn env(test: &str) -> (Netns, u32) {
    Netns::test_run_bed("ecmp").unwrap_or_else(|e| panic!("{test}: netns (needs root): {e}"))
}

/// Sends `frame` through `lb` and returns the destination of the rewritten
/// packet (the target).
fn target_of(lb: &mut XdpBalancer, frame: &[u8], ifindex: u32) -> SocketAddr {
    let out = lb.test_run(frame, Some(ifindex)).expect("test_run");
    assert_eq!(out.verdict, Verdict::Tx, "forwarded");
    parse(&out.packet).expect("parse").dst
}

#[test]
#[ignore = "needs root"]
fn ecmp_two_loaders_same_config_in_different_orders_same_fingerprint_and_targets() {
    let test = "ecmp_two_loaders_same_config_in_different_orders_same_fingerprint_and_targets";
    let (ns, ifindex) = env(test);
    let table_a = RouteTable::from_yaml(ORDER_A).expect("config A");
    let table_b = RouteTable::from_yaml(ORDER_B).expect("config B");
    ns.run(move || {
        let mut lb_a = XdpBalancer::load(&Options::default()).expect("load A");
        let mut lb_b = XdpBalancer::load(&Options::default()).expect("load B");
        assert_eq!(lb_a.fingerprint(), None);
        lb_a.apply(&table_a).expect("apply A");
        lb_b.apply(&table_b).expect("apply B");
        let (fa, fb) = (lb_a.fingerprint(), lb_b.fingerprint());
        eprintln!("{test}: fingerprints {fa:x?} {fb:x?}");
        assert!(fa.is_some());
        assert_eq!(fa, fb, "same config in another order, same tables");

        // A changed weight is a different fleet state.
        let changed = RouteTable::from_yaml(&ORDER_B.replace("weight: 1}", "weight: 2}"))
            .expect("changed config");
        assert_ne!(changed.tcp_fingerprint(), table_b.tcp_fingerprint());

        // Every flow's SYN goes to one target on A; the same flow's later packet
        // (ACK, no SYN) reaching B — which never saw the flow — goes to the same
        // target, picked from B's table. And the other way round.
        let mut moved = 0;
        for i in 0..300u16 {
            let (vip, client): (SocketAddr, SocketAddr) = if i % 3 == 0 {
                (
                    "[2001:db8:f::1]:80".parse().expect("vip6"),
                    SocketAddr::new(
                        format!("2001:db8:c::{:x}", 2 + i).parse().expect("client6"),
                        10_000 + i,
                    ),
                )
            } else {
                (
                    "192.0.2.1:80".parse().expect("vip"),
                    SocketAddr::new(
                        format!("198.51.{}.{}", 100 + i / 200, 2 + i % 200)
                            .parse()
                            .expect("client"),
                        20_000 + i,
                    ),
                )
            };
            let syn = TcpPacket::syn(client, vip).build();
            let ack = TcpPacket::syn(client, vip).with_flags(flags::ACK).build();
            let (first, second) = if i % 2 == 0 {
                (&mut lb_a, &mut lb_b)
            } else {
                (&mut lb_b, &mut lb_a)
            };
            let t1 = target_of(first, &syn, ifindex);
            let t2 = target_of(first, &ack, ifindex);
            assert_eq!(t1, t2, "flow {i} stays on its target on one node");
            let t3 = target_of(second, &ack, ifindex);
            assert_eq!(
                t1, t3,
                "flow {i} ({client} → {vip}) moved to the other node mid-flow"
            );
            moved += 1;
        }
        assert_eq!(moved, 300);
        // Both nodes saw flows of every target of the IPv4 VIP (the weights are
        // not all on one target), so the comparison covered the whole table.
        let stats = lb_a.stats().expect("stats");
        let web = stats.vips.iter().find(|v| v.name == "web").expect("web");
        assert!(
            web.targets.iter().all(|t| t.packets > 0),
            "every target was exercised: {web:?}"
        );
    })
    .expect("enter netns");
}

#[test]
#[ignore = "needs root"]
fn ecmp_open_connections_survive_removing_a_nexthop() {
    let test = "ecmp_open_connections_survive_removing_a_nexthop";
    let started = Instant::now();
    let f = Fleet::new(3, 3, "").unwrap_or_else(|e| panic!("{test}: fleet (needs root): {e}"));
    let mut conns = open_connections(&f, FLEET_CONNECTIONS);
    let spread = per_target(&conns);
    eprintln!("{test}: {FLEET_CONNECTIONS} connections: {spread:?}");
    assert_eq!(spread.len(), 3, "every target got connections: {spread:?}");
    assert_eq!(echo_all(&mut conns, "before"), 0, "all echo before");
    let before = f.lb_counts();
    eprintln!("{test}: per LB (forwarded, picked) before: {before:?}");
    assert!(
        before.iter().all(|&(fwd, _)| fwd > 0),
        "the router spread the connections over every balancer: {before:?}"
    );

    // LB 2 leaves the multipath route: its flows are rehashed onto LBs 0 and 1,
    // which never saw their SYNs and route them by the (identical) table.
    f.remove_nexthop(2).expect("remove nexthop");
    let lb2_before = f.lb_counts()[2].0;
    assert_eq!(
        echo_all(&mut conns, "after"),
        0,
        "all echo after the nexthop went"
    );
    let after = f.lb_counts();
    eprintln!("{test}: per LB (forwarded, picked) after: {after:?}");
    assert_eq!(
        after[2].0, lb2_before,
        "nothing reaches the removed balancer"
    );
    let picked_mid_flow: u64 = (0..2).map(|i| after[i].1 - before[i].1).sum();
    assert!(
        picked_mid_flow >= before[2].1 / 2,
        "flows of the removed balancer were picked mid-flow by the others \
         ({picked_mid_flow} of its {} flows)",
        before[2].1
    );
    // Every greeting target is still the one answering (checked by the echo
    // above, which carries its name) and no connection moved target.
    assert_eq!(per_target(&conns), spread);
    drop(conns);
    eprintln!("{test}: {:?}", started.elapsed());
}

#[test]
#[ignore = "needs root"]
fn ecmp_open_connections_survive_a_balancer_restart() {
    let test = "ecmp_open_connections_survive_a_balancer_restart";
    let started = Instant::now();
    let mut f = Fleet::new(2, 3, "").unwrap_or_else(|e| panic!("{test}: fleet (needs root): {e}"));
    let mut conns = open_connections(&f, FLEET_CONNECTIONS);
    let spread = per_target(&conns);
    eprintln!("{test}: {FLEET_CONNECTIONS} connections: {spread:?}");
    assert_eq!(echo_all(&mut conns, "before"), 0, "all echo before");
    let before = f.lb_counts();
    assert!(before.iter().all(|&(fwd, _)| fwd > 0), "{before:?}");
    let fingerprint = f.balancers[0].as_ref().and_then(XdpBalancer::fingerprint);

    // Restart LB 0: detach and drop it (its flow cache is gone), load a new one.
    let mut old = f.balancers[0].take().expect("lb 0");
    old.detach().expect("detach");
    drop(old);
    let new = f.start_lb(0).expect("restart lb 0");
    assert_eq!(new.fingerprint(), fingerprint, "same config, same tables");
    assert_eq!(
        new.stats().expect("stats").vips[0].forwarded,
        0,
        "a fresh balancer"
    );
    f.balancers[0] = Some(new);

    assert_eq!(
        echo_all(&mut conns, "after"),
        0,
        "all echo after the restart"
    );
    let after = f.lb_counts();
    eprintln!("{test}: per LB (forwarded, picked) before {before:?} after {after:?}");
    // The restarted balancer had no state for the flows it carries now: each was
    // picked from its table at its first packet (no SYN) and reached its target.
    assert!(
        after[0].1 >= before[0].1 * 9 / 10,
        "the restarted balancer re-picked its flows mid-flow: {after:?}"
    );
    assert_eq!(per_target(&conns), spread);
    drop(conns);
    eprintln!("{test}: {:?}", started.elapsed());
}

/// `maglev_seed`: loaders with the same seed agree (fingerprint and every
/// flow's target); a fleet with another seed spreads the same flows differently.
#[test]
#[ignore = "needs root"]
fn ecmp_maglev_seed_same_seed_same_targets_other_seed_other_spread() {
    let test = "ecmp_maglev_seed_same_seed_same_targets_other_seed_other_spread";
    let (ns, ifindex) = env(test);
    let seeded = |seed: u64| {
        RouteTable::from_yaml(&ORDER_A.replace(
            "{name: web, vip: '192.0.2.1:80',",
            &format!("{{name: web, vip: '192.0.2.1:80', maglev_seed: {seed},"),
        ))
        .expect("seeded config")
    };
    let (a, b, other) = (seeded(7), seeded(7), seeded(8));
    assert_ne!(a.tcp_fingerprint(), other.tcp_fingerprint());
    ns.run(move || {
        let mut lbs: Vec<XdpBalancer> = [&a, &b, &other]
            .iter()
            .map(|t| {
                let mut lb = XdpBalancer::load(&Options::default()).expect("load");
                lb.apply(t).expect("apply");
                lb
            })
            .collect();
        assert_eq!(lbs[0].fingerprint(), lbs[1].fingerprint());
        assert_ne!(lbs[0].fingerprint(), lbs[2].fingerprint());
        let vip: SocketAddr = "192.0.2.1:80".parse().expect("vip");
        let mut differ = 0;
        for i in 0..200u16 {
            let client = SocketAddr::new(
                format!("198.51.100.{}", 2 + i % 200)
                    .parse()
                    .expect("client"),
                30_000 + i,
            );
            let syn = TcpPacket::syn(client, vip).build();
            let t: Vec<SocketAddr> = lbs
                .iter_mut()
                .map(|lb| target_of(lb, &syn, ifindex))
                .collect();
            assert_eq!(t[0], t[1], "flow {i}: same seed, same target");
            differ += usize::from(t[0] != t[2]);
        }
        eprintln!("{test}: {differ} of 200 flows on another target with another seed");
        // Independent spreads over weights 3:2:1 agree for about 1/3.9 of flows.
        assert!(differ > 80, "{differ}");
    })
    .expect("enter netns");
}
