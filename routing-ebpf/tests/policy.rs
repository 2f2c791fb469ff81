//! The flow-state policy of the XDP program, by `BPF_PROG_TEST_RUN` in a network
//! namespace each test creates (root only; `#[ignore = "needs root"]` otherwise):
//! replies are translated without per-connection state (so an evicted flow entry
//! never lets a reply leave un-NATed), a SYN always picks from the Maglev table
//! (a reused 5-tuple never reaches a removed target), a SYN flood above the
//! new-connection rate limit cannot evict established flows, and a flow-cache set
//! keeps its eight newest flows (a repeated SYN reuses its own way).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use routing_core::{FiveTuple, RouteTable};
use routing_ebpf::{Options, Verdict, XdpBalancer};
use routing_testkit::netns::Netns;
use routing_testkit::packet::{checksum, flags, parse, TcpPacket};

const CONFIG: &str = r#"
backends:
  - {name: a, address: '203.0.113.10:8080'}
  - {name: b, address: '203.0.113.11:8080'}
  - {name: c, address: '203.0.113.12:8080'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: a}, {name: b}, {name: c}]}
"#;
const VIP: &str = "192.0.2.1:80";

/// A namespace with `d0` (targets and clients on it, permanent neighbours), and a
/// balancer loaded with `opts` and programmed with `CONFIG`.
fn with_lb<T: Send>(opts: Options, f: impl FnOnce(&mut XdpBalancer, u32) -> T + Send) -> T {
    let ns = Netns::new("pol").expect("netns (needs root)");
    ns.sysctl("net/ipv4/ip_forward", "1").expect("sysctl");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        .expect("veth");
    ns.ip(&["link", "set", "d1", "up"]).expect("up");
    ns.ip(&["addr", "add", "203.0.113.1/24", "dev", "d0"])
        .expect("addr");
    ns.ip(&["link", "set", "d0", "up"]).expect("up");
    ns.ip(&["route", "add", "198.51.0.0/16", "dev", "d0"])
        .expect("route");
    for (a, mac) in [
        ("203.0.113.10", "02:aa:00:00:00:0a"),
        ("203.0.113.11", "02:aa:00:00:00:0b"),
        ("203.0.113.12", "02:aa:00:00:00:0c"),
        ("198.51.100.2", "02:cc:00:00:00:01"),
    ] {
        ns.ip(&[
            "neigh",
            "replace",
            a,
            "lladdr",
            mac,
            "dev",
            "d0",
            "nud",
            "permanent",
        ])
        .expect("neigh");
    }
    let ifindex = ns.ifindex("d0").expect("ifindex");
    ns.run(move || {
        let mut lb = XdpBalancer::load(&opts).expect("load");
        lb.apply(&RouteTable::from_yaml(CONFIG).expect("config"))
            .expect("apply");
        f(&mut lb, ifindex)
    })
    .expect("enter netns")
}

fn client(port: u16) -> SocketAddr {
    SocketAddr::new([198, 51, 100, 2].into(), port)
}

fn route(table: &RouteTable, src: SocketAddr) -> SocketAddr {
    let vip: SocketAddr = VIP.parse().unwrap();
    let d = table.route_flow(&FiveTuple::tcp(src, vip)).unwrap();
    d.backend.address().unwrap()
}

/// Sends `pkt` and returns where it went (destination after the rewrite).
fn send(lb: &mut XdpBalancer, ifx: u32, pkt: &TcpPacket) -> SocketAddr {
    let out = lb.test_run(&pkt.build(), Some(ifx)).expect("test_run");
    assert_eq!(out.verdict, Verdict::Tx, "{pkt:?}");
    let p = parse(&out.packet).expect("parse");
    assert!(p.checksums_ok);
    p.dst
}

#[test]
#[ignore = "needs root"]
fn replies_stay_translated_after_the_flow_table_evicts() {
    let opts = Options {
        conntrack_capacity: 64,
        ..Options::default()
    };
    with_lb(opts, |lb, ifx| {
        let vip: SocketAddr = VIP.parse().unwrap();
        let mut targets = Vec::new();
        for port in 10_000..11_000 {
            targets.push(send(lb, ifx, &TcpPacket::syn(client(port), vip)));
        }
        let tracked = lb.conntrack_len().unwrap();
        assert!(
            tracked <= 128,
            "the flow table must have evicted ({tracked} entries of 1000 flows)"
        );
        // Every connection, evicted or not: the reply leaves as the VIP, and the
        // client's next packet reaches the same target.
        for (i, port) in (10_000..11_000).enumerate() {
            let reply =
                TcpPacket::syn(targets[i], client(port)).with_flags(flags::SYN | flags::ACK);
            let out = lb.test_run(&reply.build(), Some(ifx)).expect("run");
            assert_eq!(out.verdict, Verdict::Tx);
            let p = parse(&out.packet).expect("parse");
            assert_eq!(p.src, vip, "reply of flow {port} must leave as the VIP");
            assert_eq!(p.dst, client(port));
            assert!(p.checksums_ok);
            assert_eq!(p.dst_mac, [0x02, 0xcc, 0, 0, 0, 1], "to the client's MAC");
            let ack = TcpPacket::syn(client(port), vip).with_flags(flags::ACK);
            assert_eq!(
                send(lb, ifx, &ack),
                targets[i],
                "flow {port} keeps its target"
            );
        }
        let s = lb.stats().unwrap();
        assert_eq!(s.vips[0].replies, 1000);
    });
}

#[test]
#[ignore = "needs root"]
fn a_reused_port_after_its_target_is_removed_reaches_a_live_target() {
    with_lb(Options::default(), |lb, ifx| {
        let vip: SocketAddr = VIP.parse().unwrap();
        let old = RouteTable::from_yaml(CONFIG).unwrap();
        let removed: SocketAddr = "203.0.113.10:8080".parse().unwrap();
        // Connections on target `a`.
        let ports: Vec<u16> = (30_000..31_000)
            .filter(|&p| route(&old, client(p)) == removed)
            .take(50)
            .collect();
        assert_eq!(ports.len(), 50);
        for &p in &ports {
            assert_eq!(send(lb, ifx, &TcpPacket::syn(client(p), vip)), removed);
        }
        let new = RouteTable::from_yaml(&CONFIG.replace("{name: a}, ", "")).unwrap();
        lb.apply(&new).unwrap();
        for &p in &ports {
            // The open connection drains on its target…
            let ack = TcpPacket::syn(client(p), vip).with_flags(flags::ACK);
            assert_eq!(send(lb, ifx, &ack), removed, "open connections drain");
            // …a new connection on the same 5-tuple goes to a live target.
            let got = send(lb, ifx, &TcpPacket::syn(client(p), vip));
            assert_ne!(
                got, removed,
                "port {p} reused: must not reach the removed target"
            );
            assert_eq!(got, route(&new, client(p)));
            // And its later packets follow the new entry.
            assert_eq!(send(lb, ifx, &ack), got);
        }
    });
}

#[test]
#[ignore = "needs root"]
fn a_syn_flood_above_the_rate_limit_leaves_established_flows_working() {
    let opts = Options {
        // 512 sets of 8 ways: the 5 000 flood SYNs, tracked, would overwrite
        // most established flows; the ≤ 100 a second tracked leave them alone.
        conntrack_capacity: 4096,
        new_flow_limit: 100,
        ..Options::default()
    };
    with_lb(opts, |lb, ifx| {
        let vip: SocketAddr = VIP.parse().unwrap();
        let old = RouteTable::from_yaml(CONFIG).unwrap();
        let mut established = Vec::new();
        for port in 20_000..20_050 {
            established.push(send(lb, ifx, &TcpPacket::syn(client(port), vip)));
        }
        // Spoofed SYNs from 5 000 sources, as fast as test_run goes.
        let before = lb.stats().unwrap().global.untracked;
        for i in 0..5_000u32 {
            let src = SocketAddr::new([198, 51, 101 + (i / 250) as u8, (i % 250) as u8].into(), 7);
            let out = lb
                .test_run(&TcpPacket::syn(src, vip).build(), Some(ifx))
                .expect("run");
            assert_eq!(out.verdict, Verdict::Tx, "flood SYNs are still forwarded");
        }
        let untracked = lb.stats().unwrap().global.untracked - before;
        // At most 100 per CPU per second are tracked (two windows, every CPU).
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        assert!(
            untracked >= 5_000 - 2 * 100 * cpus,
            "only {untracked} of 5000 flood SYNs were left untracked"
        );
        assert!(lb.conntrack_len().unwrap() <= 50 + 2 * 100 * cpus as usize);
        // Move the table: an established flow still on its target proves its
        // entry survived the flood.
        let moved =
            RouteTable::from_yaml(&CONFIG.replace("{name: c}", "{name: c, weight: 5}")).unwrap();
        lb.apply(&moved).unwrap();
        let mut would_move = 0;
        for (i, port) in (20_000..20_050).enumerate() {
            let ack = TcpPacket::syn(client(port), vip).with_flags(flags::ACK);
            assert_eq!(
                send(lb, ifx, &ack),
                established[i],
                "flow {port} kept its target"
            );
            would_move += usize::from(route(&moved, client(port)) != route(&old, client(port)));
        }
        assert!(
            would_move > 0,
            "the new table must move some of these flows"
        );
    });
}

#[test]
#[ignore = "needs root"]
fn a_flow_cache_set_keeps_its_eight_newest_flows_and_a_repeated_syn_its_own_way() {
    // Capacity 8: one set of 8 ways, which every flow shares.
    let opts = Options {
        conntrack_capacity: 8,
        ..Options::default()
    };
    with_lb(opts, |lb, ifx| {
        let vip: SocketAddr = VIP.parse().unwrap();
        let old = RouteTable::from_yaml(CONFIG).unwrap();
        for port in 30_000..30_004 {
            send(lb, ifx, &TcpPacket::syn(client(port), vip));
        }
        assert_eq!(lb.conntrack_len().unwrap(), 4);
        // A SYN of a cached flow re-picks into its own way: no second way.
        send(lb, ifx, &TcpPacket::syn(client(30_000), vip));
        assert_eq!(lb.conntrack_len().unwrap(), 4, "a repeated SYN added a way");
        // Eight new flows push the four older ones out of the set.
        let mut targets = Vec::new();
        for port in 30_004..30_012 {
            targets.push(send(lb, ifx, &TcpPacket::syn(client(port), vip)));
        }
        assert_eq!(lb.conntrack_len().unwrap(), 8);
        let moved =
            RouteTable::from_yaml(&CONFIG.replace("{name: c}", "{name: c, weight: 5}")).unwrap();
        lb.apply(&moved).unwrap();
        let ack = |port| TcpPacket::syn(client(port), vip).with_flags(flags::ACK);
        // The eight cached flows stay where they are, although the new table
        // would move some of them.
        let mut would_move = 0;
        for (i, port) in (30_004..30_012).enumerate() {
            assert_eq!(send(lb, ifx, &ack(port)), targets[i], "cached flow {port}");
            would_move += usize::from(route(&moved, client(port)) != targets[i]);
        }
        assert!(would_move > 0, "the new table must move a cached flow");
        // The four evicted ones are routed by the new table.
        let mut moved_evicted = 0;
        for port in 30_000..30_004 {
            let now = route(&moved, client(port));
            assert_eq!(send(lb, ifx, &ack(port)), now, "evicted flow {port}");
            moved_evicted += usize::from(now != route(&old, client(port)));
        }
        assert!(moved_evicted > 0, "the new table must move an evicted flow");
    });
}

/// An ICMP "fragmentation needed" (MTU 1400) from router `198.51.100.254` about a
/// segment VIP:80 → `to` (what the client saw the target send).
fn frag_needed(to: SocketAddr) -> Vec<u8> {
    let ip4 = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v) => v.octets(),
        std::net::IpAddr::V6(_) => unreachable!(),
    };
    let vip: SocketAddr = VIP.parse().unwrap();
    let mut quoted = vec![0x45, 0, 0x05, 0xdc, 0, 1, 0x40, 0, 64, 6, 0, 0];
    quoted.extend(ip4(vip));
    quoted.extend(ip4(to));
    let c = checksum(&[&quoted]).to_be_bytes();
    quoted[10..12].copy_from_slice(&c);
    quoted.extend(vip.port().to_be_bytes());
    quoted.extend(to.port().to_be_bytes());
    quoted.extend([0, 0, 0, 1]);
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    icmp.extend(&quoted);
    let c = checksum(&[&icmp]).to_be_bytes();
    icmp[2..4].copy_from_slice(&c);
    let mut ip = vec![0x45, 0, 0, (20 + icmp.len()) as u8, 0, 2, 0, 0, 64, 1, 0, 0];
    ip.extend([198, 51, 100, 254]);
    ip.extend(ip4(vip));
    let c = checksum(&[&ip]).to_be_bytes();
    ip[10..12].copy_from_slice(&c);
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
    f.extend(ip);
    f.extend(icmp);
    f
}

#[test]
#[ignore = "needs root"]
fn icmp_frag_needed_for_a_vip_flow_reaches_its_target() {
    with_lb(Options::default(), |lb, ifx| {
        let vip: SocketAddr = VIP.parse().unwrap();
        let table = RouteTable::from_yaml(CONFIG).unwrap();
        // A tracked flow, and one the balancer never saw (picked from the table).
        let tracked = send(lb, ifx, &TcpPacket::syn(client(40_001), vip));
        for (port, target) in [(40_001, tracked), (40_002, route(&table, client(40_002)))] {
            let out = lb
                .test_run(&frag_needed(client(port)), Some(ifx))
                .expect("run");
            assert_eq!(out.verdict, Verdict::Tx, "frag-needed is sent on");
            let f = &out.packet;
            let (ip, icmp) = (&f[14..34], &f[34..]);
            let std::net::IpAddr::V4(t) = target.ip() else {
                unreachable!()
            };
            assert_eq!(ip[16..20], t.octets(), "outer destination = the target");
            assert_eq!(checksum(&[ip]), 0, "outer IPv4 checksum");
            assert_eq!(checksum(&[icmp]), 0, "ICMP checksum");
            assert_eq!(icmp[0..2], [3, 4]);
            assert_eq!(icmp[6..8], 1400u16.to_be_bytes(), "MTU untouched");
            let quoted = &icmp[8..28];
            assert_eq!(checksum(&[quoted]), 0, "quoted IPv4 checksum");
            assert_eq!(quoted[12..16], t.octets(), "quoted source = the target");
            assert_eq!(icmp[28..30], target.port().to_be_bytes(), "quoted port");
            assert_eq!(icmp[30..32], port.to_be_bytes(), "client port untouched");
            let mac = [0x02, 0xaa, 0, 0, 0, t.octets()[3]];
            assert_eq!(f[0..6], mac, "to the target's MAC");
        }
        // Not about a VIP flow: passed untouched.
        let mut other = frag_needed(client(40_003));
        other[30..34].copy_from_slice(&[192, 0, 2, 99]);
        let out = lb.test_run(&other, Some(ifx)).expect("run");
        assert_eq!(out.verdict, Verdict::Pass);
        assert_eq!(out.packet, other);
    });
}
