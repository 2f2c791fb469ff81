//! A fleet of XDP balancers behind a real ECMP router, in namespaces the test
//! creates and deletes (shared by `ecmp.rs` and `health.rs`).
#![allow(dead_code)] // each test file uses its part

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use routing_core::RouteTable;
use routing_ebpf::{AttachMode, Options, XdpBalancer};
use routing_testkit::ecmp::{EcmpTopology, IFACE};
use routing_testkit::netns::{read_name, NameServer};

// ---------------------------------------------------------------------------------
// A fleet behind a real ECMP router (namespaces the test creates and deletes).
// ---------------------------------------------------------------------------------

/// The VIP of the fleet tests; DSR keeps the port, so targets listen on it too.
pub(crate) const FLEET_VIP: &str = "192.0.2.1:8080";
/// Connections each fleet test holds open.
pub(crate) const FLEET_CONNECTIONS: usize = 1000;

/// The fleet: [`EcmpTopology`] (client, router with a multipath route over the
/// balancer namespaces, targets the router reaches directly) with a balancer
/// (DSR, IP-in-IP) attached in generic mode in every LB namespace, and in every
/// target `xdp_decap` plus a server that greets with the target's name.
pub(crate) struct Fleet {
    pub(crate) topo: EcmpTopology,
    /// The balancer of each LB namespace (`None` while restarted).
    pub(crate) balancers: Vec<Option<XdpBalancer>>,
    pub(crate) servers: Vec<Option<NameServer>>,
    _decap: Vec<XdpBalancer>,
    pub(crate) table: RouteTable,
}

/// The fleet's configuration for `targets` targets; `extra` is appended to the
/// service (YAML lines indented by four spaces).
pub(crate) fn fleet_config(targets: usize, extra: &str) -> String {
    let mut s = String::from("backends:\n");
    for j in 0..targets {
        s += &format!(
            "  - {{name: target-{j}, address: '{}:8080'}}\n",
            EcmpTopology::target_addr(j)
        );
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

impl Fleet {
    pub(crate) fn new(lbs: usize, targets: usize, extra: &str) -> std::io::Result<Self> {
        let topo = EcmpTopology::new(lbs, targets)?;
        let mut decap = Vec::new();
        let mut servers = Vec::new();
        for (j, ns) in topo.targets().iter().enumerate() {
            let d = ns
                .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
                    let mut d = XdpBalancer::load(&Options::default())?;
                    d.attach_decap(IFACE, AttachMode::Skb)?;
                    Ok(d)
                })?
                .map_err(std::io::Error::other)?;
            decap.push(d);
            servers.push(Some(NameServer::start(ns, &format!("target-{j}"), 8080)?));
        }
        let table =
            RouteTable::from_yaml(&fleet_config(targets, extra)).map_err(std::io::Error::other)?;
        let mut fleet = Self {
            topo,
            balancers: Vec::new(),
            servers,
            _decap: decap,
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
        self.topo.lbs()[i]
            .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
                let mut lb = XdpBalancer::load(&Options::default())?;
                lb.apply(table)?;
                lb.attach(IFACE, AttachMode::Skb)?;
                Ok(lb)
            })?
            .map_err(std::io::Error::other)
    }

    /// Removes LB `i` from the router's multipath route (the others stay).
    pub(crate) fn remove_nexthop(&self, i: usize) -> std::io::Result<()> {
        let keep: Vec<usize> = (0..self.balancers.len()).filter(|&k| k != i).collect();
        self.topo.set_nexthops(&keep)
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
    f.topo
        .client()
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
