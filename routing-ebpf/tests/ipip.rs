//! Direct server return with IP-in-IP (root only; `#[ignore = "needs root"]` otherwise), real TCP
//! through the XDP program in namespaces the test creates and deletes
//! (`routing_testkit::netns::Topology`): the balancer encapsulates client → VIP
//! packets (IPv4-in-IPv4, IPv6-in-IPv6) to a target, which decapsulates them on an
//! `ipip` / `ip6tnl` device (VIP on its loopback) and answers the client directly
//! over the shared bridge. The balancer sees only the forward direction: its
//! `not_vip` counter (every TCP packet that is neither for a VIP nor a translated
//! reply) stays 0, its `replies` counter stays 0.
//!
//! Bounded: at most 200 connections per test, 2 s timeouts on every socket.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use routing_core::RouteTable;
use routing_ebpf::{AttachMode, Options, XdpBalancer};
use routing_testkit::netns::{read_name, Topology, IFACE, VIP_V4, VIP_V6};

/// The VIP port, which is also the port the targets listen on: DSR leaves the
/// packet unchanged.
const PORT: u16 = 8080;
/// A second IPv4 VIP, served by DNAT in the mixed test.
const VIP2_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// Makes target `i` a DSR target: the crate's `xdp_decap` program on its `eth0`
/// (this kernel has no `ipip` / `ip6tnl` devices: `CONFIG_NET_IPIP` and
/// `CONFIG_IPV6_TUNNEL` are off), both VIPs on its loopback, and on-link routes to
/// the client (and its MAC as a permanent neighbour) so replies go to it directly
/// instead of via the balancer. The
/// returned value holds the attachment.
fn dsr_target(topo: &Topology, i: usize) -> XdpBalancer {
    let t = &topo.targets()[i];
    t.ip(&["addr", "add", &format!("{VIP_V4}/32"), "dev", "lo"])
        .expect("VIP on lo");
    t.ip(&["-6", "addr", "add", &format!("{VIP_V6}/128"), "dev", "lo"])
        .expect("VIP6 on lo");
    t.ip(&["route", "add", "198.51.100.0/24", "dev", IFACE])
        .expect("client route");
    t.ip(&["-6", "route", "add", "2001:db8:c::/64", "dev", IFACE])
        .expect("client route v6");
    // Permanent neighbour entries for the client (as the topology gives the
    // balancer for the targets): no wait for IPv6 DAD of link-local addresses
    // before the first reply can be sent.
    let mac = topo.client().mac(IFACE).expect("client MAC");
    for addr in ["198.51.100.2", "2001:db8:c::2"] {
        t.ip(&[
            "neigh",
            "replace",
            addr,
            "lladdr",
            &mac,
            "dev",
            IFACE,
            "nud",
            "permanent",
        ])
        .expect("client neighbour");
    }
    t.run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
        let mut d = XdpBalancer::load(&Options::default())?;
        d.attach_decap(IFACE, AttachMode::Skb)?;
        Ok(d)
    })
    .expect("target netns")
    .expect("decap program")
}

fn load(topo: &Topology, yaml: &str) -> XdpBalancer {
    let table = RouteTable::from_yaml(yaml).expect("config");
    topo.lb()
        .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
            let mut lb = XdpBalancer::load(&Options::default())?;
            lb.apply(&table)?;
            lb.attach(IFACE, AttachMode::Skb)?;
            Ok(lb)
        })
        .expect("lb netns")
        .expect("load + attach")
}

/// `n` connections to `vip`: each reads the target's name, sends a line and
/// reads the echo (data in both directions). Returns the names' counts.
fn talk(topo: &Topology, vip: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let s = topo
            .connect(vip)
            .unwrap_or_else(|e| panic!("connection {i} to {vip}: {e}"));
        let name = read_name(&s).unwrap_or_else(|e| panic!("greeting {i} from {vip}: {e}"));
        let mut s = &s;
        let msg = format!("ping {i} {}\n", "x".repeat(i % 700));
        s.write_all(msg.as_bytes())
            .unwrap_or_else(|e| panic!("write {i}: {e}"));
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("echo {i} from {vip}: {e}"));
        assert_eq!(buf, msg.as_bytes(), "echo {i}");
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

fn dsr_config() -> String {
    format!(
        r#"
backends:
  - {{name: target-0, address: '203.0.113.10:{PORT}'}}
  - {{name: target-1, address: '203.0.113.11:{PORT}'}}
  - {{name: target-0-v6, address: '[2001:db8:d::a]:{PORT}'}}
  - {{name: target-1-v6, address: '[2001:db8:d::b]:{PORT}'}}
tcp_services:
  - name: dsr4
    vip: '{VIP_V4}:{PORT}'
    forwarding: dsr_ipip
    dsr_source: 203.0.113.1
    backends: [{{name: target-0}}, {{name: target-1}}]
  - name: dsr6
    vip: '[{VIP_V6}]:{PORT}'
    forwarding: dsr_ipip
    dsr_source: '2001:db8:d::1'
    backends: [{{name: target-0-v6}}, {{name: target-1-v6}}]
"#
    )
}

fn dsr_family(test: &str, vip: SocketAddr) {
    let topo = Topology::new(2).unwrap_or_else(|e| panic!("{test}: topology: {e}"));
    let _decap: Vec<XdpBalancer> = (0..2).map(|i| dsr_target(&topo, i)).collect();
    let _servers = topo.start_servers(PORT).expect("servers");
    let lb = load(&topo, &dsr_config());
    let counts = talk(&topo, vip, 100);
    eprintln!("{test}: {vip}: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 100);
    assert_eq!(counts.len(), 2, "both targets got connections: {counts:?}");
    let stats = lb.stats().expect("stats");
    let v = stats.vips.iter().find(|v| v.vip == vip).expect("VIP stats");
    let new_flows: u64 = v.targets.iter().map(|t| t.new_flows).sum();
    assert_eq!(new_flows, 100, "one new flow per connection: {v:?}");
    // SYN, ACK, data, ACKs, FIN, ... at least 4 forward packets per connection.
    assert!(v.forwarded >= 400, "forward direction encapsulated: {v:?}");
    assert_eq!(v.dropped, 0, "{v:?}");
    assert_eq!(v.replies, 0, "no reply passed the balancer: {v:?}");
    assert_eq!(
        stats.global.not_vip, 0,
        "no other TCP packet (a reply) reached the balancer: {:?}",
        stats.global
    );
}

#[test]
#[ignore = "needs root"]
fn ipip_dsr_v4_real_tcp_target_answers_directly() {
    dsr_family(
        "ipip_dsr_v4_real_tcp_target_answers_directly",
        SocketAddr::new(IpAddr::V4(VIP_V4), PORT),
    );
}

#[test]
#[ignore = "needs root"]
fn ipip_dsr_v6_real_tcp_target_answers_directly() {
    dsr_family(
        "ipip_dsr_v6_real_tcp_target_answers_directly",
        SocketAddr::new(IpAddr::V6(VIP_V6), PORT),
    );
}

/// One balancer, a DSR VIP (targets 0 and 1 answer directly) and a DNAT VIP
/// (target 2, whose replies come back through the balancer and are translated).
#[test]
#[ignore = "needs root"]
fn ipip_mixed_dnat_and_dsr_vips_on_one_balancer() {
    let test = "ipip_mixed_dnat_and_dsr_vips_on_one_balancer";
    let topo = Topology::new(3).unwrap_or_else(|e| panic!("{test}: topology: {e}"));
    let _decap: Vec<XdpBalancer> = (0..2).map(|i| dsr_target(&topo, i)).collect();
    let _servers = topo.start_servers(PORT).expect("servers");
    let yaml = format!(
        r#"
backends:
  - {{name: target-0, address: '203.0.113.10:{PORT}'}}
  - {{name: target-1, address: '203.0.113.11:{PORT}'}}
  - {{name: target-2, address: '203.0.113.12:{PORT}'}}
tcp_services:
  - name: dsr
    vip: '{VIP_V4}:{PORT}'
    forwarding: dsr_ipip
    dsr_source: 203.0.113.1
    backends: [{{name: target-0}}, {{name: target-1}}]
  - name: nat
    vip: '{VIP2_V4}:{PORT}'
    forwarding: dnat
    backends: [{{name: target-2}}]
"#
    );
    let lb = load(&topo, &yaml);
    let dsr = SocketAddr::new(IpAddr::V4(VIP_V4), PORT);
    let nat = SocketAddr::new(IpAddr::V4(VIP2_V4), PORT);
    // Interleaved, so both modes are live at the same time.
    let mut dsr_counts = HashMap::new();
    let mut nat_counts = HashMap::new();
    for _ in 0..20 {
        for (name, n) in talk(&topo, dsr, 3) {
            *dsr_counts.entry(name).or_insert(0) += n;
        }
        for (name, n) in talk(&topo, nat, 2) {
            *nat_counts.entry(name).or_insert(0) += n;
        }
    }
    eprintln!("{test}: dsr {dsr_counts:?}, dnat {nat_counts:?}");
    assert_eq!(dsr_counts.values().sum::<usize>(), 60);
    assert!(!dsr_counts.contains_key("target-2"), "{dsr_counts:?}");
    assert_eq!(nat_counts.get("target-2"), Some(&40), "{nat_counts:?}");
    let stats = lb.stats().expect("stats");
    let by_name = |n: &str| {
        stats
            .vips
            .iter()
            .find(|v| v.name == n)
            .unwrap_or_else(|| panic!("stats of {n}"))
    };
    let (d, n) = (by_name("dsr"), by_name("nat"));
    assert_eq!(d.replies, 0, "DSR replies bypass the balancer: {d:?}");
    assert!(n.replies >= 40 * 3, "DNAT replies translated: {n:?}");
    assert_eq!(d.dropped + n.dropped, 0, "{d:?} {n:?}");
    assert_eq!(stats.global.not_vip, 0, "{:?}", stats.global);
}

/// An IPv4 packet too big for the DSR path once encapsulated (1500 + 20 > the
/// default `dsr_mtu` 1500): the balancer answers with ICMP "fragmentation
/// needed" (next-hop MTU 1480) instead of encapsulating it, the client's kernel
/// lowers the path MTU to 1480 and resends smaller segments, and the exchange of
/// 6 000 bytes each way completes.
#[test]
#[ignore = "needs root"]
fn ipip_oversize_packet_gets_icmp_frag_needed_and_pmtu_completes() {
    let test = "ipip_oversize_packet_gets_icmp_frag_needed_and_pmtu_completes";
    let topo = Topology::new(2).unwrap_or_else(|e| panic!("{test}: topology: {e}"));
    let _decap: Vec<XdpBalancer> = (0..2).map(|i| dsr_target(&topo, i)).collect();
    let _servers = topo.start_servers(PORT).expect("servers");
    let lb = load(&topo, &dsr_config());
    let vip = SocketAddr::new(IpAddr::V4(VIP_V4), PORT);
    let before = topo
        .client()
        .ip(&["route", "get", &VIP_V4.to_string()])
        .expect("route get");
    assert!(!before.contains("mtu 1480"), "{before}");
    let s = topo.connect(vip).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("read timeout");
    read_name(&s).expect("greeting");
    let msg: Vec<u8> = (0..6000u32)
        .map(|i| {
            if i % 100 == 99 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    let mut w = &s;
    w.write_all(&msg).expect("write");
    let mut buf = vec![0u8; msg.len()];
    w.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("{test}: echo after PMTU discovery: {e}"));
    assert_eq!(buf, msg, "echo");
    let after = topo
        .client()
        .ip(&["route", "get", &VIP_V4.to_string()])
        .expect("route get");
    eprintln!("{test}: {after}");
    assert!(
        after.contains("mtu 1480"),
        "the client learnt the DSR path MTU from the ICMP error: {after}"
    );
    let stats = lb.stats().expect("stats");
    let v = stats.vips.iter().find(|v| v.vip == vip).expect("stats");
    assert!(
        v.dropped >= 1,
        "the oversize packet was not forwarded: {v:?}"
    );
}
