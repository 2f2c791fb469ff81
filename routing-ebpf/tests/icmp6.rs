//! ICMPv6 "packet too big" about a VIP flow is sent on to the flow's target, by
//! `BPF_PROG_TEST_RUN` in a network namespace the test creates (root only;
//! `#[ignore = "needs root"]` otherwise). The end-to-end check (path MTU discovery
//! over veth) is `tests/pmtu.rs`.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use routing_core::{FiveTuple, RouteTable};
use routing_ebpf::{Options, Verdict, XdpBalancer};
use routing_testkit::netns::Netns;
use routing_testkit::packet::{checksum, parse, TcpPacket};

const CONFIG: &str = r#"
backends:
  - {name: a, address: '[2001:db8:d::a]:8080'}
  - {name: b, address: '[2001:db8:d::b]:8080'}
  - {name: c, address: '[2001:db8:d::c]:8080'}
tcp_services:
  - {name: web, vip: '[2001:db8:f::1]:80', backends: [{name: a}, {name: b}, {name: c}]}
"#;
const VIP: &str = "[2001:db8:f::1]:80";
const ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0xfe);

fn vip() -> SocketAddr {
    VIP.parse().unwrap()
}

fn client(port: u16) -> SocketAddr {
    SocketAddr::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2).into(),
        port,
    )
}

fn v6(a: SocketAddr) -> [u8; 16] {
    match a.ip() {
        IpAddr::V6(v) => v.octets(),
        IpAddr::V4(_) => unreachable!("IPv6 only"),
    }
}

/// A namespace with `d0` (targets and clients on it, permanent neighbours), and a
/// balancer programmed with `CONFIG`.
fn with_lb<T: Send>(f: impl FnOnce(&mut XdpBalancer, u32) -> T + Send) -> T {
    let (ns, ifindex) = Netns::test_run_bed("ic6").expect("netns (needs root)");
    ns.run(move || {
        let mut lb = XdpBalancer::load(&Options::default()).expect("load");
        lb.apply(&RouteTable::from_yaml(CONFIG).expect("config"))
            .expect("apply");
        f(&mut lb, ifindex)
    })
    .expect("enter netns")
}

/// The ICMPv6 checksum of `icmp` carried from `src` to `dst` (0 when it verifies).
fn icmp6_checksum(src: &[u8], dst: &[u8], icmp: &[u8]) -> u16 {
    let len = u32::try_from(icmp.len()).unwrap().to_be_bytes();
    checksum(&[src, dst, &len, &[0, 0, 0, 58], icmp])
}

/// An ICMPv6 message of `kind` (type, code) with MTU 1400 from a router to `to_outer`,
/// quoting the first 48 bytes of a segment `from` → `to` (IPv6 + 8 bytes of TCP),
/// as an Ethernet frame.
fn icmp6(kind: (u8, u8), to_outer: SocketAddr, from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let mut quoted = vec![0x60, 0, 0, 0, 0x05, 0xb4, 6, 64];
    quoted.extend(v6(from));
    quoted.extend(v6(to));
    quoted.extend(from.port().to_be_bytes());
    quoted.extend(to.port().to_be_bytes());
    quoted.extend([0, 0, 0, 1]);
    let mut icmp = vec![kind.0, kind.1, 0, 0, 0, 0, 0x05, 0x78];
    icmp.extend(&quoted);
    let c = icmp6_checksum(&ROUTER.octets(), &v6(to_outer), &icmp).to_be_bytes();
    icmp[2..4].copy_from_slice(&c);
    let len = u16::try_from(icmp.len()).unwrap().to_be_bytes();
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
    f.extend([0x60, 0, 0, 0, len[0], len[1], 58, 64]);
    f.extend(ROUTER.octets());
    f.extend(v6(to_outer));
    f.extend(icmp);
    f
}

fn route(table: &RouteTable, src: SocketAddr) -> SocketAddr {
    let d = table.route_flow(&FiveTuple::tcp(src, vip())).unwrap();
    d.backend.address().unwrap()
}

#[test]
#[ignore = "needs root"]
fn icmp6_packet_too_big_for_a_vip_flow_reaches_its_target() {
    with_lb(|lb, ifx| {
        let table = RouteTable::from_yaml(CONFIG).unwrap();
        // A tracked flow, and one the balancer never saw (picked from the table).
        let syn = lb
            .test_run(&TcpPacket::syn(client(40_001), vip()).build(), Some(ifx))
            .expect("run");
        assert_eq!(syn.verdict, Verdict::Tx);
        let tracked = parse(&syn.packet).unwrap().dst;
        assert_eq!(tracked, route(&table, client(40_001)));
        let before = lb.stats().unwrap().vips[0].forwarded;
        for (port, target) in [(40_001, tracked), (40_002, route(&table, client(40_002)))] {
            let out = lb
                .test_run(&icmp6((2, 0), vip(), vip(), client(port)), Some(ifx))
                .expect("run");
            assert_eq!(out.verdict, Verdict::Tx, "packet too big is sent on");
            let f = &out.packet;
            let (ip, icmp) = (&f[14..54], &f[54..]);
            let t = v6(target);
            assert_eq!(ip[24..40], t, "outer destination = the target");
            assert_eq!(ip[8..24], ROUTER.octets(), "outer source untouched");
            assert_eq!(
                icmp6_checksum(&ip[8..24], &ip[24..40], icmp),
                0,
                "ICMPv6 checksum"
            );
            assert_eq!(icmp[0..2], [2, 0]);
            assert_eq!(icmp[4..8], 1400u32.to_be_bytes(), "MTU untouched");
            let quoted = &icmp[8..48];
            assert_eq!(quoted[8..24], t, "quoted source = the target");
            assert_eq!(quoted[24..40], v6(client(port)), "quoted client untouched");
            assert_eq!(icmp[48..50], target.port().to_be_bytes(), "quoted port");
            assert_eq!(icmp[50..52], port.to_be_bytes(), "client port untouched");
            let last = t[15];
            assert_eq!(f[0..6], [0x02, 0xaa, 0, 0, 0, last], "to the target's MAC");
        }
        assert_eq!(lb.stats().unwrap().vips[0].forwarded, before + 2);
    });
}

#[test]
#[ignore = "needs root"]
fn other_icmp6_passes_untouched() {
    with_lb(|lb, ifx| {
        let other_vip: SocketAddr = "[2001:db8:f::99]:80".parse().unwrap();
        let other_port: SocketAddr = "[2001:db8:f::1]:81".parse().unwrap();
        for (what, frame) in [
            (
                "about an address that is not a VIP",
                icmp6((2, 0), other_vip, other_vip, client(1)),
            ),
            (
                "about a port that is not the VIP's",
                icmp6((2, 0), other_port, other_port, client(1)),
            ),
            (
                "outer destination is not the quoted source",
                icmp6((2, 0), other_vip, vip(), client(1)),
            ),
            (
                "destination unreachable, not packet too big",
                icmp6((1, 4), vip(), vip(), client(1)),
            ),
            ("echo request", icmp6((128, 0), vip(), vip(), client(1))),
        ] {
            let out = lb.test_run(&frame, Some(ifx)).expect("run");
            assert_eq!(out.verdict, Verdict::Pass, "{what}");
            assert_eq!(out.packet, frame, "{what}: untouched");
        }
        // Cut short of the quoted ports: passed untouched.
        let mut short = icmp6((2, 0), vip(), vip(), client(1));
        short.truncate(14 + 40 + 8 + 40 + 2);
        let len = u16::try_from(short.len() - 54).unwrap().to_be_bytes();
        short[18..20].copy_from_slice(&len);
        let out = lb.test_run(&short, Some(ifx)).expect("run");
        assert_eq!(out.verdict, Verdict::Pass, "truncated quote");
        assert_eq!(out.packet, short);
    });
}
