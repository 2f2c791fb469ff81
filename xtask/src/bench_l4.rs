//! `cargo xtask bench-l4`: the kernel baseline for the XDP program.
//!
//! On one veth topology (`routing_testkit::netns::Topology`, the one the crate's
//! end-to-end tests use: a client, a one-arm load balancer and [`TARGETS`] targets
//! running real TCP servers, on one bridge), the same load is sent to the VIP through
//! each of:
//!
//! * **nft numgen** — nftables DNAT the way kube-proxy's nftables mode programs a
//!   service: a verdict map on `daddr . l4proto . dport` jumps to the service chain,
//!   which picks an endpoint chain with `numgen random mod N vmap { … }` (the weights
//!   become ranges of the `mod N` space), and the endpoint chain does `dnat to`;
//! * **nft jhash** — the same with `jhash ip saddr . tcp sport . ip daddr . tcp dport
//!   mod N` instead of `numgen random` (a deterministic per-flow choice);
//! * **xdp drv** / **xdp skb** — the `routing-ebpf` XDP program attached to the load
//!   balancer's veth in native mode (with the trivial pass program on the veth's
//!   peer, which native XDP_TX on veth needs) or in generic mode, programmed from
//!   the same weights (`xdp.rs`).
//!
//! Each side is measured `repeats` times for `secs` seconds each, the sides taking
//! turns within each repeat (after a short warm-up each turn):
//!
//! * connections/s: [`RATE_CONCURRENCY`] loops that connect, read the target's
//!   greeting and close (with a reset, so the client's ports do not pile up);
//! * throughput: [`BULK_STREAMS`] connections sending zeros; the bytes count once the
//!   servers have read them all;
//! * split accuracy: the largest gap, in percentage points, between each target's
//!   share of the connections of the rate runs and its configured share.
//!
//! The medians are printed per side, with the ratio of the XDP program's figure to
//! each nftables figure. Every run is bounded in time; the namespaces (and with them
//! the nftables table, the XDP attachment and the servers' sockets) are deleted at
//! the end, on failure and on Ctrl-C.

#![cfg_attr(not(feature = "ebpf"), allow(dead_code, unused_imports))]

use std::collections::BTreeMap;
use std::time::Instant;

use std::net::SocketAddr;

use anyhow::{ensure, Result};

#[cfg(feature = "ebpf")]
use crate::l4::{max_share_error, nft, targets};
use crate::l4::{median, Worker};
#[cfg(feature = "ebpf")]
use crate::topo::Topology;

/// Number of target namespaces.
pub(crate) const TARGETS: usize = 3;
/// Their weights (50/30/20).
pub(crate) const WEIGHTS: [u32; TARGETS] = [5, 3, 2];
/// Connections in flight during a rate run.
const RATE_CONCURRENCY: usize = 32;
/// Connections of a throughput run.
const BULK_STREAMS: usize = 4;
/// Seconds of warm-up (not counted) each time a side takes its turn.
const WARMUP_SECS: f64 = 0.5;

/// `bench-l4` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// Seconds per measured run.
    pub(crate) secs: u64,
    /// Runs per side and metric.
    pub(crate) repeats: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            secs: 5,
            repeats: 3,
        }
    }
}

/// A way of steering connections to the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// nftables DNAT, `numgen random`.
    NftNumgen,
    /// nftables DNAT, `jhash` of the 4-tuple.
    NftJhash,
    /// The XDP program, native mode (with `xdp_pass` on the veth peer).
    Xdp,
    /// The XDP program, generic (`skb`) mode.
    XdpSkb,
}

impl Side {
    /// Its name in the tables.
    fn label(self) -> &'static str {
        match self {
            Side::NftNumgen => "nft numgen",
            Side::NftJhash => "nft jhash",
            Side::Xdp => "xdp drv",
            Side::XdpSkb => "xdp skb",
        }
    }

    /// Whether it is the XDP program.
    fn is_xdp(self) -> bool {
        matches!(self, Side::Xdp | Side::XdpSkb)
    }
}

/// The medians of one side.
#[derive(Debug, Clone, Default)]
struct Figures {
    /// Connections per second, per run.
    cps: Vec<f64>,
    /// Gbit/s, per run.
    gbps: Vec<f64>,
    /// Largest split error (percentage points), per rate run.
    split_pp: Vec<f64>,
    /// Connections counted over all rate runs, per target.
    counts: BTreeMap<String, u64>,
    /// Connections or streams that failed.
    failed: u64,
}

/// Without the `ebpf` feature: never reached (`main` runs the task again in a build
/// with it first).
#[cfg(not(feature = "ebpf"))]
pub(crate) fn run(_opts: &Options) -> Result<()> {
    anyhow::bail!("this xtask was built without the `ebpf` feature")
}

/// Runs the benchmark.
#[cfg(feature = "ebpf")]
pub(crate) fn run(opts: &Options) -> Result<()> {
    use anyhow::{bail, Context};
    if !crate::setup::is_root() {
        bail!(
            "bench-l4 needs root (it creates network namespaces, nftables rules and \
             attaches XDP): run it as root"
        );
    }
    crate::setup::run()?;
    crate::l4::use_release_workers()?;
    let started = Instant::now();
    let topo = Topology::new(TARGETS)?;
    let _servers = (0..TARGETS)
        .map(|i| Worker::server(&topo.target_ns(i), &target_name(i), topo.target_addr(i)))
        .collect::<Result<Vec<_>>>()?;
    let mut client = Worker::client(&topo.client_ns())?;
    let expected = expected_shares();

    println!(
        "bench-l4: {TARGETS} targets weighted {}, {} s per run, {} runs per side and metric",
        WEIGHTS.map(|w| w.to_string()).join("/"),
        opts.secs,
        opts.repeats
    );
    // Sides take turns within each repeat, so a change in the machine's load
    // (2 shared cores) spreads over all of them instead of biasing one.
    let sides = [Side::NftNumgen, Side::NftJhash, Side::Xdp, Side::XdpSkb];
    let mut results: Vec<(Side, Figures)> =
        sides.iter().map(|&s| (s, Figures::default())).collect();
    let mut xdp_skipped = None;
    for r in 0..opts.repeats {
        for (side, f) in &mut results {
            let side = *side;
            let attached = match side {
                Side::NftNumgen | Side::NftJhash => {
                    let rules = nft_ruleset(side, Topology::vip(), &topo.target_addrs());
                    nft(topo.lb().name(), &rules)?;
                    None
                }
                Side::Xdp | Side::XdpSkb if xdp_skipped.is_some() => continue,
                Side::Xdp | Side::XdpSkb => {
                    match crate::xdp::attach(&topo, &WEIGHTS, side == Side::Xdp) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            println!("  xdp: SKIPPED: {e:#}");
                            xdp_skipped = Some(format!("{e:#}"));
                            continue;
                        }
                    }
                }
            };
            let measured = measure_once(&mut client, side, opts.secs, &expected, f, r)
                .with_context(|| format!("measuring {}", side.label()));
            drop(attached);
            if matches!(side, Side::NftNumgen | Side::NftJhash) {
                nft(topo.lb().name(), "delete table ip xtask_l4\n")?;
            }
            measured?;
        }
    }
    results.retain(|(_, f)| !f.cps.is_empty());
    print_results(&results, &expected);
    eprintln!(
        "xtask: bench-l4 ran in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Target `i`'s name (what its server greets with).
pub(crate) fn target_name(i: usize) -> String {
    format!("t{i}")
}

/// Each target's configured share.
fn expected_shares() -> Vec<(String, f64)> {
    let total: u32 = WEIGHTS.iter().sum();
    WEIGHTS
        .iter()
        .enumerate()
        .map(|(i, &w)| (target_name(i), f64::from(w) / f64::from(total)))
        .collect()
}

/// Measures one side once: a short warm-up, a rate run and a bulk run, added to `f`.
#[cfg(feature = "ebpf")]
fn measure_once(
    client: &mut Worker,
    side: Side,
    secs: u64,
    expected: &[(String, f64)],
    f: &mut Figures,
    run: u64,
) -> Result<()> {
    let vip = Topology::vip();
    let warm = client.command(&format!("rate {vip} {WARMUP_SECS} {RATE_CONCURRENCY}"))?;
    ensure!(
        warm["conns"].as_u64().unwrap_or(0) > 0,
        "{}: no connection got through the VIP during the warm-up: {warm}",
        side.label()
    );
    let v = client.command(&format!("rate {vip} {secs} {RATE_CONCURRENCY}"))?;
    let took = v["secs"].as_f64().unwrap_or(f64::NAN);
    let conns = v["conns"].as_u64().unwrap_or(0);
    let counts = targets(&v);
    let err = max_share_error(&counts, expected);
    for (k, n) in &counts {
        *f.counts.entry(k.clone()).or_default() += n;
    }
    f.failed += v["failed"].as_u64().unwrap_or(0);
    f.cps.push(conns as f64 / took);
    f.split_pp.push(err);
    let b = client.command(&format!("bulk {vip} {secs} {BULK_STREAMS}"))?;
    let gbps = b["bytes"].as_u64().unwrap_or(0) as f64 * 8.0
        / b["secs"].as_f64().unwrap_or(f64::NAN)
        / 1e9;
    f.failed += b["failed"].as_u64().unwrap_or(0);
    f.gbps.push(gbps);
    eprintln!(
        "xtask: bench-l4: run {} {:<10}: {:>8.0} conn/s, split error {:.2} pp, {:.2} Gbit/s",
        run + 1,
        side.label(),
        conns as f64 / took,
        err,
        gbps
    );
    Ok(())
}

/// The nftables ruleset of a side, in the shape kube-proxy's nftables mode uses.
fn nft_ruleset(side: Side, vip: SocketAddr, targets: &[SocketAddr]) -> String {
    let total: u32 = WEIGHTS.iter().sum();
    let pick = match side {
        Side::NftJhash => {
            format!("jhash ip saddr . tcp sport . ip daddr . tcp dport mod {total} seed 0x5eed")
        }
        _ => format!("numgen random mod {total}"),
    };
    let mut ranges = Vec::new();
    let mut endpoints = String::new();
    let mut from = 0;
    for (i, &w) in WEIGHTS.iter().enumerate() {
        if w == 0 {
            continue;
        }
        let to = from + w - 1;
        let range = if from == to {
            from.to_string()
        } else {
            format!("{from}-{to}")
        };
        ranges.push(format!("{range} : goto endpoint-{i}"));
        endpoints.push_str(&format!(
            "  chain endpoint-{i} {{\n    meta l4proto tcp dnat to {}\n  }}\n",
            targets[i]
        ));
        from = to + 1;
    }
    format!(
        "table ip xtask_l4 {{
  map service-ips {{
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = {{ {ip} . tcp . {port} : goto service-bench }}
  }}
  chain nat-prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr . meta l4proto . th dport vmap @service-ips
  }}
  chain service-bench {{
    {pick} vmap {{ {ranges} }}
  }}
{endpoints}}}
",
        ip = vip.ip(),
        port = vip.port(),
        ranges = ranges.join(", ")
    )
}

/// `median (min-max)` of some runs, with `decimals` decimals.
fn spread(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.decimals$} ({min:.decimals$}-{max:.decimals$})",
        median(values)
    )
}

/// Prints the medians (with the range of the runs), the ratios and the split
/// accuracy.
fn print_results(results: &[(Side, Figures)], expected: &[(String, f64)]) {
    println!();
    println!("== Medians over the runs (min-max in parentheses)");
    let mut rows = vec![[
        "side".to_owned(),
        "conn/s".to_owned(),
        "Gbit/s".to_owned(),
        "max split error (pp)".to_owned(),
        "failed".to_owned(),
        format!(
            "share per target (expected {})",
            expected
                .iter()
                .map(|(n, s)| format!("{n} {:.0} %", s * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ]];
    for (side, f) in results {
        let total: u64 = f.counts.values().sum();
        let shares = f
            .counts
            .iter()
            .map(|(n, c)| format!("{n} {:.2} %", *c as f64 * 100.0 / total.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push([
            side.label().to_owned(),
            spread(&f.cps, 0),
            spread(&f.gbps, 2),
            spread(&f.split_pp, 2),
            f.failed.to_string(),
            shares,
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in &rows {
        println!(
            "  {:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        );
    }
    if !results.iter().any(|(s, _)| s.is_xdp()) {
        println!("  (no XDP figures: no ratio)");
        return;
    }
    for (x, xdp) in results.iter().filter(|(s, _)| s.is_xdp()) {
        for (side, f) in results.iter().filter(|(s, _)| !s.is_xdp()) {
            println!(
                "  {} / {:<10}  conn/s x{:.2}   Gbit/s x{:.2}",
                x.label(),
                side.label(),
                median(&xdp.cps) / median(&f.cps),
                median(&xdp.gbps) / median(&f.gbps)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nft_ruleset_maps_weights_to_ranges() {
        let vip = "192.0.2.1:8080".parse().expect("vip");
        let targets = [
            "203.0.113.10:8080",
            "203.0.113.11:8080",
            "203.0.113.12:8080",
        ]
        .map(|a| a.parse().expect("address"));
        let r = nft_ruleset(Side::NftNumgen, vip, &targets);
        assert!(
            r.contains("numgen random mod 10 vmap { 0-4 : goto endpoint-0, 5-7 : goto endpoint-1, 8-9 : goto endpoint-2 }"),
            "{r}"
        );
        assert!(r.contains("dnat to 203.0.113.12:8080"), "{r}");
        assert!(
            r.contains("192.0.2.1 . tcp . 8080 : goto service-bench"),
            "{r}"
        );
        let j = nft_ruleset(Side::NftJhash, vip, &targets);
        assert!(
            j.contains("jhash ip saddr . tcp sport . ip daddr . tcp dport mod 10"),
            "{j}"
        );
    }

    #[test]
    fn spreads_show_median_and_range() {
        assert_eq!(spread(&[3.0, 1.0, 2.0], 0), "2 (1-3)");
    }

    #[test]
    fn shares_add_up() {
        let total: f64 = expected_shares().iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
