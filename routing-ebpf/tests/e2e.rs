//! End to end with real TCP through the XDP program (root only; skips loudly
//! otherwise): a client namespace, a load-balancer namespace with the program
//! attached to its `eth0`, and two target namespaces running servers that answer
//! with their name — all on one bridge (see `routing_testkit::netns::Topology`).
//!
//! Bounded: 2 × 1 000 + 200 + 400 connections per traffic test, 2 s timeouts on
//! every socket. Everything is torn down by `Drop` (also when an assertion fails):
//! the balancer first (detach), then the namespaces — checked by
//! `teardown_happens_when_a_test_panics`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};

use routing_core::RouteTable;
use routing_ebpf::{AttachMode, Options, XdpBalancer};
use routing_testkit::netns::{read_name, Topology, IFACE, VIP_V4, VIP_V6};

const PORT: u16 = 8080;

fn config(w0: u32, w1: u32) -> String {
    format!(
        r#"
backends:
  - {{name: target-0, address: '203.0.113.10:{PORT}'}}
  - {{name: target-1, address: '203.0.113.11:{PORT}'}}
  - {{name: target-0-v6, address: '[2001:db8:d::a]:{PORT}'}}
  - {{name: target-1-v6, address: '[2001:db8:d::b]:{PORT}'}}
tcp_services:
  - name: web
    vip: '192.0.2.1:80'
    backends: [{{name: target-0, weight: {w0}}}, {{name: target-1, weight: {w1}}}]
  - name: web6
    vip: '[2001:db8:f::1]:80'
    backends: [{{name: target-0-v6, weight: {w0}}}, {{name: target-1-v6, weight: {w1}}}]
"#
    )
}

fn split(topo: &Topology, vip: SocketAddr, n: usize) -> HashMap<String, usize> {
    let names = topo
        .client()
        .run(move || {
            (0..n)
                .map(|i| {
                    let s = std::net::TcpStream::connect_timeout(
                        &vip,
                        std::time::Duration::from_secs(2),
                    )
                    .unwrap_or_else(|e| panic!("connection {i} to {vip}: {e}"));
                    read_name(&s).unwrap_or_else(|e| panic!("greeting {i} from {vip}: {e}"))
                })
                .collect::<Vec<_>>()
        })
        .expect("client netns");
    let mut counts = HashMap::new();
    for n in names {
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

fn share(counts: &HashMap<String, usize>, name: &str) -> f64 {
    let total: usize = counts.values().sum();
    counts.get(name).copied().unwrap_or(0) as f64 / total as f64
}

/// Needs root: the tests that call it are `#[ignore = "needs root"]`.
fn run_e2e(test: &str, mode: AttachMode) {
    let topo = Topology::new(2).unwrap_or_else(|e| panic!("{test}: topology (needs root): {e}"));
    let _servers = topo.start_servers(PORT).expect("servers");
    let table = RouteTable::from_yaml(&config(3, 1)).expect("config");
    let mut lb = topo
        .lb()
        .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
            let mut lb = XdpBalancer::load(&Options::default())?;
            lb.apply(&table)?;
            lb.attach(IFACE, mode)?;
            Ok(lb)
        })
        .expect("lb netns")
        .expect("load + attach");
    if mode == AttachMode::Driver {
        topo.prepare_native(&mut lb)
            .expect("xdp_pass on the veth peer");
    }
    assert!(topo
        .lb()
        .ip(&["link", "show", IFACE])
        .expect("ip")
        .contains("xdp"));

    // 1 000 connections per VIP, 75/25 within ±5 %.
    for (vip, suffix) in [
        (SocketAddr::new(IpAddr::V4(VIP_V4), 80), ""),
        (SocketAddr::new(IpAddr::V6(VIP_V6), 80), ""),
    ] {
        let counts = split(&topo, vip, 1_000);
        let _ = suffix;
        eprintln!("{test}: {vip}: {counts:?}");
        let s0 = share(&counts, "target-0");
        assert!(
            (s0 - 0.75).abs() <= 0.05,
            "{vip}: target-0 got {s0}, want 0.75 ± 0.05 ({counts:?})"
        );
    }
    let stats = lb.stats().expect("stats");
    for v in &stats.vips {
        let new_flows: u64 = v.targets.iter().map(|t| t.new_flows).sum();
        assert_eq!(
            new_flows, 1_000,
            "{}: every connection is one new flow",
            v.name
        );
        assert!(v.forwarded > 0 && v.replies > 0, "{v:?}");
        assert_eq!(v.dropped, 0, "{v:?}");
    }

    // 200 open connections, then a weight change (3:1 -> 1:3), then all of them
    // must still work: none reset, each still talks to the target it started on.
    let vip = SocketAddr::new(IpAddr::V4(VIP_V4), 80);
    let open: Vec<(std::net::TcpStream, String)> = (0..200)
        .map(|_| {
            let s = topo.connect(vip).expect("connect");
            let name = read_name(&s).expect("greeting");
            (s, name)
        })
        .collect();
    lb.apply(&RouteTable::from_yaml(&config(1, 3)).expect("config"))
        .expect("live weight change");
    for (i, (s, _name)) in open.iter().enumerate() {
        let mut s = s;
        let msg = format!("ping {i}\n");
        s.write_all(msg.as_bytes())
            .unwrap_or_else(|e| panic!("open connection {i} after the change: {e}"));
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).unwrap_or_else(|e| {
            panic!("open connection {i} reset or stalled after the change: {e}")
        });
        assert_eq!(buf, msg.as_bytes(), "connection {i} echo");
    }
    drop(open);
    // New connections follow the new weights.
    let counts = split(&topo, vip, 400);
    eprintln!("{test}: after 1:3: {counts:?}");
    let s1 = share(&counts, "target-1");
    assert!(
        (s1 - 0.75).abs() <= 0.075,
        "after the change target-1 got {s1} ({counts:?})"
    );

    lb.detach().expect("detach");
    assert!(
        !topo
            .lb()
            .ip(&["link", "show", IFACE])
            .expect("ip")
            .contains("xdp"),
        "detached"
    );
}

#[test]
#[ignore = "needs root"]
fn e2e_real_tcp_generic_mode() {
    run_e2e("e2e_real_tcp_generic_mode", AttachMode::Skb);
}

#[test]
#[ignore = "needs root"]
fn e2e_real_tcp_native_mode() {
    run_e2e("e2e_real_tcp_native_mode", AttachMode::Driver);
}

#[test]
#[ignore = "needs root"]
fn teardown_happens_when_a_test_panics() {
    let names = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let topo = Topology::new(1).expect("topology");
        let mut lb = topo
            .lb()
            .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
                let mut lb = XdpBalancer::load(&Options::default())?;
                lb.attach(IFACE, AttachMode::Skb)?;
                Ok(lb)
            })
            .expect("lb netns")
            .expect("load + attach");
        lb.apply(&RouteTable::from_yaml(&config(1, 1)).expect("config"))
            .expect("apply");
        let mut n = names.lock().expect("lock");
        n.extend(
            [topo.client(), topo.lb(), topo.switch()]
                .into_iter()
                .chain(topo.targets())
                .map(|ns| ns.name().to_owned()),
        );
        drop(n);
        panic!("deliberate failure inside the test");
    });
    assert!(result.is_err(), "the closure must have panicked");
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    let names = names.lock().expect("lock");
    assert_eq!(names.len(), 4);
    for n in names.iter() {
        assert!(
            !listed.contains(n.as_str()),
            "{n} must be deleted after the panic"
        );
    }
}
