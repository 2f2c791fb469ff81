//! A target's MAC address changes under open connections: with the
//! [`NextHopWatch`] polled, the program resolves the target's next hop again and
//! the connections recover (root only; `#[ignore = "needs root"]` otherwise).
//!
//! Real TCP through the XDP program in generic mode on the netns topology of
//! `routing_testkit::netns::Topology` (client, load balancer, two targets on one
//! bridge). Bounded: 16 + 40 connections, every read with a timeout; everything is
//! torn down by `Drop`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use routing_core::RouteTable;
use routing_ebpf::next_hops::NextHopWatch;
use routing_ebpf::{AttachMode, Options, XdpBalancer};
use routing_testkit::netns::{read_name, Topology, IFACE, VIP_V4};

const CONFIG: &str = r#"
backends:
  - {name: target-0, address: '203.0.113.10:8080'}
  - {name: target-1, address: '203.0.113.11:8080'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: target-0}, {name: target-1}]}
"#;
const NEW_MAC: &str = "02:00:00:00:7e:01";

/// Writes `msg` and reads it back (the name server echoes), `timeout` per read.
fn echo(s: &mut TcpStream, msg: &[u8], timeout: Duration) -> std::io::Result<()> {
    s.set_read_timeout(Some(timeout))?;
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    assert_eq!(back, msg, "echo");
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn flows_recover_when_a_targets_mac_changes() {
    let topo = Topology::new(2).expect("topology (needs root)");
    let _servers = topo.start_servers(8080).expect("servers");
    let table = RouteTable::from_yaml(CONFIG).expect("config");
    let (mut lb, mut watch) = topo
        .lb()
        .run(|| -> Result<_, routing_ebpf::Error> {
            let mut lb = XdpBalancer::load(&Options::default())?;
            lb.apply(&table)?;
            lb.attach(IFACE, AttachMode::Skb)?;
            // No periodic refresh during the test: only the events count.
            let watch = NextHopWatch::with_interval(Duration::from_secs(3600))?;
            Ok((lb, watch))
        })
        .expect("lb netns")
        .expect("load, apply, attach, watch");
    let vip = SocketAddr::from((VIP_V4, 80));
    let mut on_target0 = Vec::new();
    for i in 0..16 {
        let s = topo
            .connect(vip)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let name = read_name(&s).unwrap_or_else(|e| panic!("greeting {i}: {e}"));
        if name == "target-0" {
            on_target0.push(s);
        }
    }
    assert!(
        on_target0.len() >= 2,
        "{} of 16 on target-0",
        on_target0.len()
    );
    // Nothing changed yet: whatever the setup raised is drained here (a refresh,
    // if it raised any) …
    watch.poll(&mut lb).expect("poll");
    let events = watch.events();
    // … and the next hop of target-0 is resolved again, to its current MAC.
    for s in &mut on_target0 {
        echo(s, b"before\n", Duration::from_secs(2)).expect("echo before the change");
    }

    // target-0 gets a new MAC; the load balancer's neighbour entry follows (what
    // an ARP update or an operator does).
    topo.targets()[0]
        .ip(&["link", "set", IFACE, "address", NEW_MAC])
        .expect("new MAC");
    topo.lb()
        .ip(&[
            "neigh",
            "replace",
            "203.0.113.10",
            "lladdr",
            NEW_MAC,
            "dev",
            IFACE,
            "nud",
            "permanent",
        ])
        .expect("neighbour");

    // Without a refresh the program still sends to the old MAC: stranded.
    let stranded = &mut on_target0[0];
    let lost = echo(stranded, b"x", Duration::from_secs(1));
    assert!(
        lost.is_err(),
        "the flow is stranded until the next hop is refreshed"
    );

    assert!(watch.poll(&mut lb).expect("poll"), "the change was seen");
    assert!(watch.events() > events, "by a netlink event");

    // The stranded byte arrives by retransmission; every flow echoes again.
    let mut x = [0u8; 1];
    stranded
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stranded
        .read_exact(&mut x)
        .expect("retransmitted byte echoed");
    assert_eq!(&x, b"x");
    for (i, s) in on_target0.iter_mut().enumerate() {
        echo(s, b"after\n", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("flow {i} on target-0 after the change: {e}"));
    }
    // New connections reach target-0 at its new MAC.
    let mut names = Vec::new();
    for i in 0..40 {
        let s = topo
            .connect(vip)
            .unwrap_or_else(|e| panic!("new connection {i}: {e}"));
        names.push(read_name(&s).unwrap_or_else(|e| panic!("new greeting {i}: {e}")));
    }
    assert!(names.iter().any(|n| n == "target-0"), "{names:?}");
    drop(lb);
}
