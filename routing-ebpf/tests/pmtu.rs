//! Path MTU discovery through the XDP load balancer, end to end over veth (root
//! only; `#[ignore = "needs root"]` otherwise).
//!
//! Five namespaces the test creates: a switch (bridge) joining the load balancer,
//! one target and a router; the client sits behind the router on its own veth
//! link whose router end has MTU 1400 (the client's end keeps 1500, so the client
//! advertises an MSS of 1460 and the target sends full 1500-byte segments, DF
//! set). The router cannot forward them: it answers the VIP (the segments' source)
//! with ICMP "fragmentation needed" / ICMPv6 "packet too big"; the router's route
//! to the VIP leads to the load balancer, whose XDP program sends the message on
//! to the flow's target. The test passes when a 1 MiB download completes and the
//! target's route cache towards the client shows MTU 1400 — without the
//! translation the target never learns the path MTU and the transfer stalls
//! (TCP's own black-hole probing is off by default).
//!
//! Bounded: one connection per test, 20 s socket timeouts; the namespaces (and
//! with them every veth) are deleted by `Drop`, also when an assertion fails.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use routing_core::RouteTable;
use routing_ebpf::{AttachMode, Options, XdpBalancer};
use routing_testkit::netns::{Netns, Offload};

const CONFIG: &str = r#"
backends:
  - {name: t4, address: '203.0.113.10:8080'}
  - {name: t6, address: '[2001:db8:d::a]:8080'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: t4}]}
  - {name: web6, vip: '[2001:db8:f::1]:80', backends: [{name: t6}]}
"#;

/// Bytes the target sends.
const DOWNLOAD: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(20);

/// The namespaces; field order = drop order (the switch, holding the bridge, last).
struct Lab {
    client: Netns,
    router: Netns,
    target: Netns,
    lb: Netns,
    switch: Netns,
}

fn permanent(ns: &Netns, addr: &str, mac: &str) {
    ns.ip(&[
        "neigh",
        "replace",
        addr,
        "lladdr",
        mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])
    .expect("neigh");
}

impl Lab {
    fn new() -> Self {
        let lab = Self {
            switch: Netns::new("psw").expect("netns (needs root)"),
            client: Netns::new("pcl").expect("netns"),
            router: Netns::new("prt").expect("netns"),
            target: Netns::new("ptg").expect("netns"),
            lb: Netns::new("plb").expect("netns"),
        };
        let sw = &lab.switch;
        sw.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
        sw.ip(&["link", "set", "br0", "up"]).unwrap();
        for (ns, peer) in [(&lab.lb, "plb"), (&lab.target, "ptg"), (&lab.router, "prt")] {
            sw.ip(&[
                "link",
                "add",
                peer,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ])
            .unwrap();
            sw.ip(&["link", "set", peer, "master", "br0"]).unwrap();
            sw.ip(&["link", "set", peer, "up"]).unwrap();
        }
        // The client's link: router end `c0` MTU 1400, client end 1500.
        lab.router
            .ip(&[
                "link",
                "add",
                "c0",
                "mtu",
                "1400",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                lab.client.name(),
            ])
            .unwrap();

        let addr = |ns: &Netns, dev: &str, v4: &str, v6: &str| {
            ns.ip(&["addr", "add", v4, "dev", dev]).unwrap();
            ns.ip(&["-6", "addr", "add", v6, "dev", dev, "nodad"])
                .unwrap();
            ns.ip(&["link", "set", dev, "up"]).unwrap();
        };
        addr(&lab.lb, "eth0", "203.0.113.1/24", "2001:db8:d::1/64");
        addr(&lab.target, "eth0", "203.0.113.10/24", "2001:db8:d::a/64");
        addr(&lab.router, "eth0", "203.0.113.254/24", "2001:db8:d::fe/64");
        addr(&lab.router, "c0", "198.51.100.1/24", "2001:db8:c::1/64");
        addr(&lab.client, "eth0", "198.51.100.2/24", "2001:db8:c::2/64");

        let c = &lab.client;
        c.ip(&["route", "add", "default", "via", "198.51.100.1"])
            .unwrap();
        c.ip(&["-6", "route", "add", "default", "via", "2001:db8:c::1"])
            .unwrap();
        // Replies go through the load balancer.
        let t = &lab.target;
        t.ip(&["route", "add", "default", "via", "203.0.113.1"])
            .unwrap();
        t.ip(&["-6", "route", "add", "default", "via", "2001:db8:d::1"])
            .unwrap();
        // XDP rewrites the target's segments: full checksums (this also turns TSO
        // off, so the target sends MSS-sized frames).
        t.set_offload("eth0", Offload::TxChecksum, false).unwrap();
        c.set_offload("eth0", Offload::TxChecksum, false).unwrap();

        let r = &lab.router;
        r.sysctl("net/ipv4/ip_forward", "1").unwrap();
        r.sysctl("net/ipv6/conf/all/forwarding", "1").unwrap();
        r.ip(&["route", "add", "192.0.2.0/24", "via", "203.0.113.1"])
            .unwrap();
        r.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:f::/64",
            "via",
            "2001:db8:d::1",
        ])
        .unwrap();

        let lb = &lab.lb;
        lb.sysctl("net/ipv4/ip_forward", "1").unwrap();
        lb.sysctl("net/ipv6/conf/all/forwarding", "1").unwrap();
        lb.sysctl("net/ipv4/conf/all/send_redirects", "0").unwrap();
        lb.sysctl("net/ipv4/conf/eth0/send_redirects", "0").unwrap();
        lb.ip(&["route", "add", "198.51.100.0/24", "via", "203.0.113.254"])
            .unwrap();
        lb.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:c::/64",
            "via",
            "2001:db8:d::fe",
        ])
        .unwrap();
        let tmac = t.mac("eth0").unwrap();
        let rmac = r.mac("eth0").unwrap();
        permanent(lb, "203.0.113.10", &tmac);
        permanent(lb, "2001:db8:d::a", &tmac);
        permanent(lb, "203.0.113.254", &rmac);
        permanent(lb, "2001:db8:d::fe", &rmac);
        lab
    }
}

/// Downloads `DOWNLOAD` bytes from the target through `vip` (generic-mode XDP on
/// the load balancer) and returns the target's `ip route get <client>` output.
fn download(vip: &str, client: &str, family: &str) -> String {
    let lab = Lab::new();
    let table = RouteTable::from_yaml(CONFIG).expect("config");
    let lb = lab
        .lb
        .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
            let mut lb = XdpBalancer::load(&Options::default())?;
            lb.apply(&table)?;
            lb.attach("eth0", AttachMode::Skb)?;
            Ok(lb)
        })
        .expect("lb netns")
        .expect("load, apply, attach");
    let bind = if family == "-4" {
        "0.0.0.0:8080"
    } else {
        "[::]:8080"
    };
    let listener = lab
        .target
        .run(|| TcpListener::bind(bind))
        .expect("target netns")
        .expect("bind");
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let start = Instant::now();
        let (mut s, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if start.elapsed() > TIMEOUT {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        };
        s.set_nonblocking(false)?;
        s.set_write_timeout(Some(TIMEOUT))?;
        let data: Vec<u8> = (0..DOWNLOAD).map(|i| (i % 251) as u8).collect();
        s.write_all(&data)?;
        s.shutdown(std::net::Shutdown::Write)
    });
    let vip: SocketAddr = vip.parse().unwrap();
    let got = lab
        .client
        .run(move || -> std::io::Result<Vec<u8>> {
            let mut s = TcpStream::connect_timeout(&vip, TIMEOUT)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            let mut buf = Vec::with_capacity(DOWNLOAD);
            s.read_to_end(&mut buf)?;
            Ok(buf)
        })
        .expect("client netns");
    let got =
        got.unwrap_or_else(|e| panic!("download through {vip}: {e} (PMTU discovery stalled?)"));
    server.join().unwrap().expect("server");
    assert_eq!(got.len(), DOWNLOAD, "whole download");
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
        "content intact"
    );
    let stats = lb.stats().expect("stats");
    let v = stats
        .vips
        .iter()
        .find(|v| v.vip == vip)
        .expect("the VIP's stats");
    assert!(
        v.replies > 700,
        "the download went through the balancer ({} replies)",
        v.replies
    );
    drop(lb);
    lab.target
        .ip(&[family, "route", "get", client])
        .expect("route get")
}

#[test]
#[ignore = "needs root"]
fn pmtu_discovery_completes_through_the_balancer_v4() {
    let route = download("192.0.2.1:80", "198.51.100.2", "-4");
    assert!(
        route.contains("mtu 1400"),
        "the target learnt the path MTU: {route}"
    );
}

#[test]
#[ignore = "needs root"]
fn pmtu_discovery_completes_through_the_balancer_v6() {
    let route = download("[2001:db8:f::1]:80", "2001:db8:c::2", "-6");
    assert!(
        route.contains("mtu 1400"),
        "the target learnt the path MTU: {route}"
    );
}
