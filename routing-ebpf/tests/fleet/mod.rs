//! A fleet of XDP balancers behind a real ECMP router, in namespaces the test
//! creates and deletes (shared by `ecmp.rs` and `health.rs`).
#![allow(dead_code)] // each test file uses its part

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use routing_core::RouteTable;
use routing_ebpf::{AttachMode, Options, XdpBalancer};
use routing_testkit::netns::{read_name, NameServer, Netns};

// ---------------------------------------------------------------------------------
// A fleet behind a real ECMP router (namespaces the test creates and deletes).
// ---------------------------------------------------------------------------------

/// The VIP of the fleet tests; DSR keeps the port, so targets listen on it too.
pub(crate) const FLEET_VIP: &str = "192.0.2.1:8080";
/// Connections each fleet test holds open.
pub(crate) const FLEET_CONNECTIONS: usize = 1000;

/// client ── router ══ECMP══ lb0 … lbN (XDP, DSR) ── router ── target0 … targetM
///
/// * client `198.51.100.2/24` behind the router (`198.51.100.1`);
/// * LB `i` on `10.10.i.2/24` (router `10.10.i.1`), forwarding on, the balancer
///   attached to its only interface: it encapsulates and sends the packet back
///   out of it (XDP_TX) to the router, which routes it to the target;
/// * target `j` on `10.20.j.2/24` (router `10.20.j.1`), `xdp_decap` on its
///   interface, the VIP on its loopback, replies straight to the router
///   (never through a balancer);
/// * the router: `ip route add 192.0.2.1/32 nexthop via 10.10.0.2 nexthop via …`,
///   `fib_multipath_hash_policy = 1` (source and destination address and port),
///   `rp_filter` off (the targets' replies come from the VIP, which the router
///   routes towards the balancers).
pub(crate) struct Fleet {
    pub(crate) client: Netns,
    pub(crate) router: Netns,
    pub(crate) lbs: Vec<Netns>,
    pub(crate) targets: Vec<Netns>,
    /// The balancer of each LB namespace (`None` while restarted).
    pub(crate) balancers: Vec<Option<XdpBalancer>>,
    _decap: Vec<XdpBalancer>,
    pub(crate) servers: Vec<Option<NameServer>>,
    pub(crate) table: RouteTable,
}

pub(crate) fn fleet_config(targets: usize, extra: &str) -> String {
    let mut s = String::from("backends:\n");
    for j in 0..targets {
        s += &format!("  - {{name: target-{j}, address: '10.20.{j}.2:8080'}}\n");
    }
    s += "tcp_services:\n  - name: web\n    vip: '192.0.2.1:8080'\n    forwarding: dsr_ipip\n    dsr_source: 10.10.0.2\n    maglev_seed: 17\n    backends: [";
    s += &(0..targets)
        .map(|j| format!("{{name: target-{j}}}"))
        .collect::<Vec<_>>()
        .join(", ");
    s += "]\n";
    s += extra;
    s
}

/// Links `a`'s `a_if` and `b`'s `b_if` with a veth pair, up.
fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> std::io::Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

impl Fleet {
    pub(crate) fn new(lbs: usize, targets: usize, extra: &str) -> std::io::Result<Self> {
        let client = Netns::new("fc")?;
        let router = Netns::new("fr")?;
        router.sysctl("net/ipv4/ip_forward", "1")?;
        router.sysctl("net/ipv4/fib_multipath_hash_policy", "1")?;
        for k in ["all", "default"] {
            router.sysctl(&format!("net/ipv4/conf/{k}/rp_filter"), "0")?;
        }
        link(&router, "rc", &client, "eth0")?;
        router.ip(&["addr", "add", "198.51.100.1/24", "dev", "rc"])?;
        client.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"])?;
        client.ip(&["route", "add", "default", "via", "198.51.100.1"])?;
        let mut lb_ns = Vec::new();
        for i in 0..lbs {
            let ns = Netns::new(&format!("fl{i}"))?;
            ns.sysctl("net/ipv4/ip_forward", "1")?;
            link(&router, &format!("rl{i}"), &ns, "eth0")?;
            router.ip(&[
                "addr",
                "add",
                &format!("10.10.{i}.1/24"),
                "dev",
                &format!("rl{i}"),
            ])?;
            ns.ip(&["addr", "add", &format!("10.10.{i}.2/24"), "dev", "eth0"])?;
            ns.ip(&["route", "add", "default", "via", &format!("10.10.{i}.1")])?;
            // The balancer's FIB lookups must find the router's MAC at once.
            let mac = router.mac(&format!("rl{i}"))?;
            ns.ip(&[
                "neigh",
                "replace",
                &format!("10.10.{i}.1"),
                "lladdr",
                &mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])?;
            lb_ns.push(ns);
        }
        let mut t_ns = Vec::new();
        let mut decap = Vec::new();
        let mut servers = Vec::new();
        for j in 0..targets {
            let ns = Netns::new(&format!("ft{j}"))?;
            link(&router, &format!("rt{j}"), &ns, "eth0")?;
            router.ip(&[
                "addr",
                "add",
                &format!("10.20.{j}.1/24"),
                "dev",
                &format!("rt{j}"),
            ])?;
            ns.ip(&["addr", "add", &format!("10.20.{j}.2/24"), "dev", "eth0"])?;
            ns.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"])?;
            ns.ip(&["route", "add", "default", "via", &format!("10.20.{j}.1")])?;
            let d = ns
                .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
                    let mut d = XdpBalancer::load(&Options::default())?;
                    d.attach_decap("eth0", AttachMode::Skb)?;
                    Ok(d)
                })?
                .map_err(std::io::Error::other)?;
            decap.push(d);
            servers.push(Some(NameServer::start(&ns, &format!("target-{j}"), 8080)?));
            t_ns.push(ns);
        }
        let hops: Vec<String> = (0..lbs).map(|i| format!("10.10.{i}.2")).collect();
        let mut args = vec!["route", "add", "192.0.2.1/32"];
        for h in &hops {
            args.extend(["nexthop", "via", h.as_str()]);
        }
        router.ip(&args)?;
        let table =
            RouteTable::from_yaml(&fleet_config(targets, extra)).map_err(std::io::Error::other)?;
        let mut fleet = Self {
            client,
            router,
            lbs: lb_ns,
            targets: t_ns,
            balancers: Vec::new(),
            _decap: decap,
            servers,
            table,
        };
        for i in 0..lbs {
            let b = fleet.start_lb(i)?;
            fleet.balancers.push(Some(b));
        }
        Ok(fleet)
    }

    /// Loads, programs and attaches a balancer in LB namespace `i`.
    pub(crate) fn start_lb(&self, i: usize) -> std::io::Result<XdpBalancer> {
        let table = &self.table;
        self.lbs[i]
            .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
                let mut lb = XdpBalancer::load(&Options::default())?;
                lb.apply(table)?;
                lb.attach("eth0", AttachMode::Skb)?;
                Ok(lb)
            })?
            .map_err(std::io::Error::other)
    }

    /// Removes LB `i` from the router's multipath route (the others stay).
    pub(crate) fn remove_nexthop(&self, i: usize) -> std::io::Result<()> {
        let hops: Vec<String> = (0..self.lbs.len())
            .filter(|&k| k != i)
            .map(|k| format!("10.10.{k}.2"))
            .collect();
        let mut args = vec!["route", "replace", "192.0.2.1/32"];
        for h in &hops {
            args.extend(["nexthop", "via", h.as_str()]);
        }
        self.router.ip(&args).map(drop)
    }

    /// Packets each balancer forwarded, and the flows it picked from its table
    /// (SYNs and mid-flow packets it had no state for).
    pub(crate) fn lb_counts(&self) -> Vec<(u64, u64)> {
        self.balancers
            .iter()
            .map(|b| {
                b.as_ref().map_or((0, 0), |b| {
                    let s = b.stats().expect("stats");
                    let v = &s.vips[0];
                    (v.forwarded, v.targets.iter().map(|t| t.new_flows).sum())
                })
            })
            .collect()
    }
}

/// `n` connections from the client to the VIP, each with its greeting read
/// (the target's name). Bounded: 2 s timeouts on every socket.
pub(crate) fn open_connections(f: &Fleet, n: usize) -> Vec<(TcpStream, String)> {
    let vip: SocketAddr = FLEET_VIP.parse().expect("vip");
    f.client
        .run(move || {
            (0..n)
                .map(|i| {
                    let s = TcpStream::connect_timeout(&vip, Duration::from_secs(2))
                        .unwrap_or_else(|e| panic!("connection {i}: {e}"));
                    let name = read_name(&s).unwrap_or_else(|e| panic!("greeting {i}: {e}"));
                    (s, name)
                })
                .collect()
        })
        .expect("client netns")
}

/// Sends a line on every connection and checks its echo: the connection still
/// reaches the target that greeted it. Returns how many failed.
pub(crate) fn echo_all(conns: &mut [(TcpStream, String)], round: &str) -> usize {
    let mut failed = 0;
    for (i, (s, name)) in conns.iter_mut().enumerate() {
        let msg = format!("{round} {i} {name}\n");
        let ok = s.set_read_timeout(Some(Duration::from_secs(3))).is_ok()
            && s.write_all(msg.as_bytes()).is_ok()
            && {
                let mut buf = vec![0u8; msg.len()];
                s.read_exact(&mut buf).is_ok() && buf == msg.as_bytes()
            };
        if !ok {
            failed += 1;
            if failed <= 5 {
                eprintln!("{round}: connection {i} (target {name}) broke");
            }
        }
    }
    failed
}

pub(crate) fn per_target(conns: &[(TcpStream, String)]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (_, name) in conns {
        *m.entry(name.clone()).or_insert(0) += 1;
    }
    m
}
