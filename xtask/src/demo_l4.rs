//! The L4 part of `cargo xtask demo`: real TCP connections through the XDP program.
//!
//! In network namespaces (`routing_testkit::netns::Topology`: a client, a one-arm load
//! balancer, two targets on one bridge) it
//!
//! 1. starts a TCP server in each target namespace that greets with its name;
//! 2. loads the `routing-ebpf` XDP program, programs the VIP with weights 75/25 and
//!    attaches it (native mode) to the load balancer's interface;
//! 3. opens [`CONNECTIONS`] real connections to the VIP from the client namespace and
//!    keeps them open; each learns its target from the greeting; prints the split
//!    next to the weights and the program's own new-flow counters;
//! 4. changes the weights live to 25/75 (one `XdpBalancer::apply`);
//! 5. asks every open connection to answer again (it must, and from the same target:
//!    established connections keep their target), then opens [`CONNECTIONS`] new
//!    ones and prints their split under the new weights.
//!
//! 6. then DSR behind ECMP (`demo_ecmp.rs`): two balancers behind a router's
//!    multipath route, 1 000 open connections, a nexthop removed live.
//!
//! Checks: both splits within ±[`TOLERANCE_PP`] percentage points of the weights, and
//! all open connections survived the change. Everything it created is deleted at the
//! end, on failure, and on Ctrl-C.
//!
//! Needs root; otherwise `cargo xtask demo` prints a loud `L4 demo SKIPPED` line and
//! the HTTP part alone decides the exit status.

#![cfg_attr(not(feature = "ebpf"), allow(dead_code, unused_imports))]

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Result};

/// Connections opened before and after the weight change.
const CONNECTIONS: usize = 1_000;
/// Weights before the change.
const WEIGHTS_BEFORE: [u32; 2] = [75, 25];
/// Weights after the change.
const WEIGHTS_AFTER: [u32; 2] = [25, 75];
/// How far a split may be from the weights, in percentage points (1 000 connections
/// at 75/25: one standard deviation is 1.4 points).
const TOLERANCE_PP: f64 = 5.0;

/// Called by `demo` after the HTTP part: skips loudly without root, otherwise runs
/// [`run`] (in a build with the `ebpf` feature).
pub(crate) fn run_from_demo(args: &[String]) -> Result<()> {
    println!();
    if skip_unless_root() {
        return Ok(());
    }
    crate::with_ebpf(args, run)
}

/// Prints the loud skip banner and returns `true` when not root.
fn skip_unless_root() -> bool {
    if crate::setup::is_root() {
        return false;
    }
    println!("==================================================================");
    println!("L4 demo SKIPPED (needs root): it creates network namespaces and");
    println!("attaches the XDP program. Run `sudo cargo xtask demo` to see it.");
    println!("==================================================================");
    true
}

/// Raises the soft open-files limit to the hard one (the client worker, a child
/// process, inherits it and holds thousands of sockets); fails if even the hard
/// limit is below `need`.
#[cfg(feature = "ebpf")]
fn raise_fd_limit(need: u64) -> Result<()> {
    use anyhow::Context as _;
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(RLIMIT_NOFILE)")?;
    }
    if hard < need {
        bail!("the open-files limit is {hard}; the L4 demo needs {need} (raise `ulimit -Hn`)");
    }
    Ok(())
}

/// Without the `ebpf` feature: never reached (`run_from_demo` runs it in a build
/// with it).
#[cfg(not(feature = "ebpf"))]
pub(crate) fn run() -> Result<()> {
    bail!("this xtask was built without the `ebpf` feature")
}

/// Runs the L4 demo (as root).
#[cfg(feature = "ebpf")]
pub(crate) fn run() -> Result<()> {
    use crate::l4::Worker;
    use crate::topo::Topology;
    if skip_unless_root() {
        return Ok(());
    }

    let started = Instant::now();
    raise_fd_limit(4 * CONNECTIONS as u64)?;
    println!("routing-ebpf L4 demo: real TCP connections through the XDP program");
    let topo = Topology::new(WEIGHTS_BEFORE.len())?;
    let _servers = (0..WEIGHTS_BEFORE.len())
        .map(|i| Worker::server(&topo.target_ns(i), &format!("t{i}"), topo.target_addr(i)))
        .collect::<Result<Vec<_>>>()?;
    let mut xdp = crate::xdp::attach(&topo, &WEIGHTS_BEFORE, true)?;
    println!(
        "  topology  client {} -> VIP {} -> XDP on {} (native, one-arm DNAT) -> {}",
        Topology::client_addr(),
        Topology::vip(),
        topo.lb_iface(),
        (0..WEIGHTS_BEFORE.len())
            .map(|i| format!("t{i} {}", topo.target_addr(i)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut client = Worker::client(&topo.client_ns())?;
    let vip = Topology::vip();

    let flows0 = xdp.new_flows()?;
    let before = client.command(&format!("open {vip} {CONNECTIONS}"))?;
    let flows1 = xdp.new_flows()?;
    let split1 = crate::l4::targets(&before);
    section(&format!(
        "{CONNECTIONS} connections, weights {}",
        weights_label(&WEIGHTS_BEFORE)
    ));
    let ok1 = print_split(&split1, &WEIGHTS_BEFORE, &delta(&flows1, &flows0));
    let failed1 = before["failed"].as_u64().unwrap_or(0);

    xdp.set_weights(&WEIGHTS_AFTER)?;
    section(&format!(
        "weights changed live: {} -> {} (one table flip)",
        weights_label(&WEIGHTS_BEFORE),
        weights_label(&WEIGHTS_AFTER)
    ));
    let check = client.command("check")?;
    let (held, alive, same) = (
        check["held"].as_u64().unwrap_or(0),
        check["alive"].as_u64().unwrap_or(0),
        check["same"].as_u64().unwrap_or(0),
    );
    println!(
        "  open connections after the change: {alive} of {held} still answer, {same} from the target they started on"
    );

    let after = client.command(&format!("open {vip} {CONNECTIONS}"))?;
    let flows2 = xdp.new_flows()?;
    let split2 = crate::l4::targets(&after);
    section(&format!(
        "{CONNECTIONS} new connections, weights {}",
        weights_label(&WEIGHTS_AFTER)
    ));
    let ok2 = print_split(&split2, &WEIGHTS_AFTER, &delta(&flows2, &flows1));
    let failed2 = after["failed"].as_u64().unwrap_or(0);
    let closed = client.command("close")?;
    drop(client);
    drop(xdp);
    drop(topo);

    let survived = held == CONNECTIONS as u64 && alive == held && same == held;
    let checks = [
        (
            ok1 && failed1 == 0,
            format!(
                "split 1 within +/-{TOLERANCE_PP} points of {} ({failed1} failed)",
                weights_label(&WEIGHTS_BEFORE)
            ),
        ),
        (
            survived,
            format!("all {held} open connections survived the weight change on their target"),
        ),
        (
            ok2 && failed2 == 0,
            format!(
                "split 2 within +/-{TOLERANCE_PP} points of {} ({failed2} failed)",
                weights_label(&WEIGHTS_AFTER)
            ),
        ),
    ];
    section("L4 checks");
    for (ok, what) in &checks {
        println!("  {}  {what}", if *ok { "PASS" } else { "FAIL" });
    }
    let failed = checks.iter().filter(|(ok, _)| !ok).count();
    println!();
    println!(
        "{} of {} L4 checks passed ({} connections closed, namespaces deleted)",
        checks.len() - failed,
        checks.len(),
        closed["closed"]
    );
    eprintln!(
        "xtask: L4 demo (DNAT) ran in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let failed_ecmp = crate::demo_ecmp::run()?;
    if failed + failed_ecmp > 0 {
        bail!("{} L4 demo check(s) failed", failed + failed_ecmp);
    }
    Ok(())
}

/// `75/25`.
fn weights_label(w: &[u32]) -> String {
    w.iter().map(u32::to_string).collect::<Vec<_>>().join("/")
}

/// Prints a section header.
fn section(title: &str) {
    println!();
    println!("== {title}");
}

/// Per-target differences of two counter snapshots.
fn delta(now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(then.get(k).copied().unwrap_or(0)),
            )
        })
        .collect()
}

/// Prints the split of connections per target against the weights, and whether
/// every share is within [`TOLERANCE_PP`].
fn print_split(
    counts: &BTreeMap<String, u64>,
    weights: &[u32],
    flows: &BTreeMap<String, u64>,
) -> bool {
    let total: u64 = counts.values().sum();
    let wsum: u32 = weights.iter().sum();
    println!(
        "  {:<6}  {:>6}  {:>8}  {:>11}  {:>6}  {:>16}",
        "target", "weight", "expected", "connections", "share", "XDP new flows"
    );
    let mut ok = total > 0;
    for (i, &w) in weights.iter().enumerate() {
        let name = format!("t{i}");
        let n = counts.get(&name).copied().unwrap_or(0);
        let expected = f64::from(w) * 100.0 / f64::from(wsum.max(1));
        let share = if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        };
        ok &= (share - expected).abs() <= TOLERANCE_PP;
        println!(
            "  {name:<6}  {w:>6}  {expected:>6.1} %  {n:>11}  {share:>4.1} %  {:>16}",
            flows.get(&name).copied().unwrap_or(0)
        );
    }
    ok
}
