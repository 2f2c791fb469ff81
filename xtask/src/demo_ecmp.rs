//! The DSR-behind-ECMP part of the L4 demo (`cargo xtask demo`, as root): two
//! XDP load balancers behind a router's multipath route, one nexthop removed live.
//!
//! In namespaces (`routing_testkit::ecmp::EcmpTopology`: client, router, two
//! balancer namespaces, two targets) it
//!
//! 1. starts a server in each target (it greets with its name) and the
//!    `xdp_decap` program on its interface (the VIP is on its loopback);
//! 2. loads the balancer in both LB namespaces with the same configuration
//!    (`forwarding: dsr_ipip`, one `maglev_seed`) and prints both fingerprints;
//! 3. opens [`CONNECTIONS`] connections to the VIP and keeps them open: the router
//!    spreads them over both balancers (L4 multipath hash), each balancer
//!    encapsulates to a target, the target answers the client directly;
//! 4. removes balancer 1 from the multipath route (`ip route replace`), live;
//! 5. asks every open connection to answer again: the flows balancer 1 carried
//!    now reach balancer 0, which never saw their SYN and routes them by its
//!    (identical) table to the same target.
//!
//! Checks: same fingerprint on both; every connection opened; both balancers
//! carried flows; all survived the removal on their target; balancer 0 picked
//! the moved flows mid-flow. Everything is deleted at the end.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result};
use routing_core::RouteTable;
use routing_ebpf::{AttachMode, Options, XdpBalancer};
use routing_testkit::ecmp::{EcmpTopology, IFACE, VIP};

use crate::l4::Worker;

/// Connections held through the nexthop removal.
const CONNECTIONS: usize = 1_000;
/// The VIP's (and every target server's) port.
const PORT: u16 = 8080;

/// Runs it; returns how many of its checks failed.
pub(crate) fn run() -> Result<usize> {
    let started = Instant::now();
    let topo = EcmpTopology::new(2, 2).context("building the ECMP topology")?;
    let names: Vec<String> = std::iter::once(topo.client())
        .chain(std::iter::once(topo.router()))
        .chain(topo.lbs())
        .chain(topo.targets())
        .map(|n| n.name().to_owned())
        .collect();
    for n in &names {
        crate::l4::on_interrupt_delete(n);
    }
    let result = demo(&topo);
    drop(topo);
    for n in &names {
        crate::l4::forget_on_interrupt(n);
    }
    eprintln!(
        "xtask: L4 DSR/ECMP demo ran in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    result
}

fn demo(topo: &EcmpTopology) -> Result<usize> {
    let vip = SocketAddr::from((VIP, PORT));
    let mut yaml = String::from("backends:\n");
    for j in 0..topo.targets().len() {
        yaml += &format!(
            "  - {{name: t{j}, address: '{}:{PORT}'}}\n",
            EcmpTopology::target_addr(j)
        );
    }
    yaml += &format!(
        "tcp_services:\n  - {{name: web, vip: '{vip}', forwarding: dsr_ipip, dsr_source: {}, maglev_seed: 42, backends: [{{name: t0}}, {{name: t1}}]}}\n",
        EcmpTopology::lb_addr(0)
    );
    let table = RouteTable::from_yaml(&yaml).context("the demo's configuration")?;

    let mut servers = Vec::new();
    let mut decap = Vec::new();
    for (j, ns) in topo.targets().iter().enumerate() {
        servers.push(Worker::server(
            ns.name(),
            &format!("t{j}"),
            SocketAddr::from(([0, 0, 0, 0], PORT)),
        )?);
        decap.push(
            ns.run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
                let mut d = XdpBalancer::load(&Options::default())?;
                d.attach_decap(IFACE, AttachMode::Skb)?;
                Ok(d)
            })?
            .context("xdp_decap on a target")?,
        );
    }
    let mut lbs = Vec::new();
    for ns in topo.lbs() {
        lbs.push(
            ns.run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
                let mut lb = XdpBalancer::load(&Options::default())?;
                lb.apply(&table)?;
                lb.attach(IFACE, AttachMode::Skb)?;
                Ok(lb)
            })?
            .context("a balancer")?,
        );
    }
    let counts = |lbs: &[XdpBalancer]| -> Result<Vec<(u64, u64)>> {
        lbs.iter()
            .map(|lb| {
                let s = lb.stats()?;
                let v = &s.vips[0];
                Ok((v.forwarded, v.targets.iter().map(|t| t.new_flows).sum()))
            })
            .collect()
    };
    let fps: Vec<Option<u64>> = lbs.iter().map(XdpBalancer::fingerprint).collect();

    println!();
    println!("== DSR behind ECMP: two balancers, one multipath route, a nexthop removed live");
    println!(
        "  topology  client {} -> router (multipath {VIP}/32 via {} and {}, L4 hash) -> XDP on lb0/lb1 (DSR, IPIP) -> t0 {}, t1 {} -> client directly",
        routing_testkit::ecmp::CLIENT,
        EcmpTopology::lb_addr(0),
        EcmpTopology::lb_addr(1),
        EcmpTopology::target_addr(0),
        EcmpTopology::target_addr(1),
    );
    println!(
        "  fingerprints  lb0 {:016x}  lb1 {:016x}",
        fps[0].unwrap_or(0),
        fps[1].unwrap_or(0)
    );
    let mut client = Worker::client(topo.client().name())?;
    let opened = client.command(&format!("open {vip} {CONNECTIONS}"))?;
    let split = crate::l4::targets(&opened);
    let failed_open = opened["failed"].as_u64().unwrap_or(0);
    let before = counts(&lbs)?;
    println!("  {CONNECTIONS} connections open: per target {split:?}");
    for (i, (fwd, picked)) in before.iter().enumerate() {
        println!("    lb{i}: {picked} flows picked, {fwd} packets forwarded");
    }

    topo.set_nexthops(&[0])
        .context("removing lb1 from the route")?;
    println!(
        "  nexthop {} removed from the route (live)",
        EcmpTopology::lb_addr(1)
    );
    let check = client.command("check")?;
    let (held, alive, same) = (
        check["held"].as_u64().unwrap_or(0),
        check["alive"].as_u64().unwrap_or(0),
        check["same"].as_u64().unwrap_or(0),
    );
    let after = counts(&lbs)?;
    let moved = after[0].1.saturating_sub(before[0].1);
    println!(
        "  open connections after the removal: {alive} of {held} answer, {same} from the target they started on"
    );
    println!(
        "    lb0 picked {moved} flows mid-flow (no SYN, no state: by its table); lb1 carried {} before",
        before[1].1
    );
    let closed = client.command("close")?;
    drop(client);

    let checks = [
        (
            fps[0].is_some() && fps[0] == fps[1],
            "both balancers export the same fingerprint".to_owned(),
        ),
        (
            failed_open == 0 && held == CONNECTIONS as u64,
            format!("{CONNECTIONS} connections opened ({failed_open} failed)"),
        ),
        (
            before.iter().all(|&(fwd, _)| fwd > 0),
            "the router spread them over both balancers".to_owned(),
        ),
        (
            alive == held && same == held,
            format!("all {held} open connections survived the nexthop removal on their target"),
        ),
        (
            before[1].1 > 0 && moved >= before[1].1,
            format!("lb0 picked lb1's {} flows mid-flow", before[1].1),
        ),
    ];
    println!();
    println!("== DSR/ECMP checks");
    for (ok, what) in &checks {
        println!("  {}  {what}", if *ok { "PASS" } else { "FAIL" });
    }
    println!("  ({} connections closed)", closed["closed"]);
    Ok(checks.iter().filter(|(ok, _)| !ok).count())
}
