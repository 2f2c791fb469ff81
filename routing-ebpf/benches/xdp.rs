//! ns/packet of the XDP program by `BPF_PROG_TEST_RUN`, against the trivial
//! `xdp_pass` program of the same object measured in the same run (the floor).
//!
//! `cargo bench -p routing-ebpf --bench xdp` (root; prints a loud skip otherwise).
//! Run by `cargo test --all-targets` (no `--bench` argument) it is a smoke test:
//! 10 000 runs, one round, the same path checks.
//! Environment: `XDP_BENCH_REPEAT` (default 1 000 000 runs per measurement),
//! `XDP_BENCH_ROUNDS` (default 7; the median is reported).
//!
//! The kernel repeats the program on one buffer, which the balancer rewrites in
//! place. So the benchmark service's single target *is the VIP address itself*:
//! the program does the whole lookup, DNAT rewrite with incremental checksums and
//! MAC rewrite, but the bytes it writes equal the bytes it read, and the next run
//! sees the same packet to the VIP. Then:
//! * new-flow SYN: a balancer loaded with [`BenchMode::NewFlow`] — the flow's
//!   source address is varied per run (per-CPU sequence + CPU id) *before* it is
//!   hashed, so every run misses the flow table, hashes a distinct flow, picks from
//!   the Maglev table and inserts (at capacity: LRU eviction);
//! * established, 1 flow: a normal balancer — the warm-up run creates the entry,
//!   every counted run hits it;
//! * established, 10000 / 262144 flows: [`BenchMode::Flows`] cycles the source
//!   over that many addresses; a warm-up of that many runs creates them all, then
//!   every counted run hits one of them (the flow table is sized to hold them);
//! * pass (VIP port): a TCP SYN to a non-VIP address on a VIP's port (port
//!   prefilter hit, VIP lookup miss, reply filter miss, XDP_PASS);
//! * pass (port 22): a TCP SYN to a port no VIP uses (port prefilters miss,
//!   XDP_PASS without any lookup);
//! * probe, 1 / 262144 flows (no goal): not the balancer — [`BenchMode::Probe`],
//!   the trivial program plus one read of the flow-cache set of one of n cycled
//!   flows, in a cache sized as the established case's: what the one memory
//!   access an established packet cannot avoid costs at that many flows.
//!
//! The thread is pinned to one CPU (per-CPU sequence numbers and LRU lists).
//! After each measurement the program's own counters are checked: exactly
//! `repeat` new flows (new-flow case), `repeat` forwarded packets and no new flow
//! (established, after the warm-up made exactly n), `repeat` non-VIP passes (pass-through) — so every counted run
//! took the path it claims.

use std::net::SocketAddr;
use std::time::Duration;

use routing_core::RouteTable;
use routing_ebpf::{BenchMode, Options, Program, Verdict, XdpBalancer};
use routing_testkit::netns::Netns;
use routing_testkit::packet::{flags, TcpPacket};

const CONFIG: &str = r#"
backends:
  - {name: self, address: '192.0.2.1:80'}
tcp_services:
  - {name: web, vip: '192.0.2.1:80', backends: [{name: self}]}
"#;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ns_per_run(d: Duration) -> f64 {
    // The kernel reports the mean duration of one run.
    d.as_nanos() as f64
}

#[derive(Clone, Copy)]
enum Kind {
    NewFlow,
    Established(u32),
    Pass,
    /// [`BenchMode::Probe`]: not the balancer, the cost of its one unavoidable
    /// memory access at n flows (no goal; printed for comparison).
    Probe,
}

struct Case {
    name: &'static str,
    goal: f64,
    kind: Kind,
    lb: XdpBalancer,
    frame: Vec<u8>,
    floor: Vec<f64>,
    prog: Vec<f64>,
    /// Established runs that missed the flow cache (re-created from Maglev).
    missed: u64,
}

impl Case {
    fn new(name: &'static str, goal: f64, kind: Kind, lb: XdpBalancer, frame: &[u8]) -> Self {
        Self {
            name,
            goal,
            kind,
            lb,
            frame: frame.to_vec(),
            floor: vec![],
            prog: vec![],
            missed: 0,
        }
    }
}

fn new_flows(s: &routing_ebpf::Stats) -> u64 {
    s.vips[0].targets.iter().map(|t| t.new_flows).sum()
}

/// Pins the calling thread to the last CPU: the program's per-CPU flow sequence
/// and per-CPU LRU lists then stay on one CPU for the whole run.
fn pin_to_one_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut set = nix::sched::CpuSet::new();
    set.set(cpus - 1).expect("cpu set");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("sched_setaffinity");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Needs root (BPF_PROG_TEST_RUN in a network namespace). Like a libtest
    // `#[ignore = "needs root"]` test: skipped, and said so, unless
    // `--include-ignored` is given (`cargo xtask test` as root passes it), in which
    // case a non-root run fails instead of passing silently.
    if !routing_testkit::netns::is_root() {
        assert!(
            !std::env::args().any(|a| a == "--include-ignored"),
            "bench xdp needs root (BPF_PROG_TEST_RUN), and --include-ignored asked for it"
        );
        println!("bench xdp (BPF_PROG_TEST_RUN): ignored, needs root");
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: then a
    // quick smoke run (same checks, tiny counts).
    let full = std::env::args().any(|a| a == "--bench");
    let repeat = env_u32("XDP_BENCH_REPEAT", if full { 1_000_000 } else { 10_000 });
    let rounds = env_u32("XDP_BENCH_ROUNDS", if full { 7 } else { 1 }).max(1);
    let ct = env_u32("XDP_BENCH_CONNTRACK", Options::default().conntrack_capacity);

    let ns = Netns::new("bench").expect("netns");
    ns.sysctl("net/ipv4/ip_forward", "1").expect("sysctl");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        .expect("veth");
    ns.ip(&["addr", "add", "203.0.113.1/24", "dev", "d0"])
        .expect("addr");
    ns.ip(&["link", "set", "d0", "up"]).expect("up");
    ns.ip(&["link", "set", "d1", "up"]).expect("up");
    // The target (= the VIP) is on d0 with the MAC the test frame already has as
    // destination, and d0's MAC becomes the source: set the frame's MACs to match.
    ns.ip(&["route", "add", "192.0.2.0/24", "dev", "d0"])
        .expect("route");
    ns.ip(&[
        "neigh",
        "replace",
        "192.0.2.1",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        "d0",
        "nud",
        "permanent",
    ])
    .expect("neigh");
    let d0_mac = ns.mac("d0").expect("mac");
    let ifx = ns.ifindex("d0").expect("ifindex");
    let table = RouteTable::from_yaml(CONFIG).expect("config");
    let vip: SocketAddr = "192.0.2.1:80".parse().expect("vip");
    let client: SocketAddr = "198.51.100.2:40000".parse().expect("client");
    let mut syn = TcpPacket::syn(client, vip);
    for (i, p) in d0_mac.split(':').enumerate().take(6) {
        syn.src_mac[i] = u8::from_str_radix(p, 16).expect("hex");
    }
    // Established traffic is ACKs (a SYN always picks from the Maglev table anew).
    let ack = syn.clone().with_flags(flags::ACK).build();
    let syn = syn.build();
    let other = TcpPacket::syn(client, "192.0.2.99:80".parse().expect("addr")).build();
    let other_port = TcpPacket::syn(client, "192.0.2.1:22".parse().expect("addr")).build();

    let cases = ns
        .run(move || {
            pin_to_one_cpu();
            let load = |mode, ct: u32| {
                let mut lb = XdpBalancer::load(&Options {
                    bench: mode,
                    conntrack_capacity: ct,
                    // Measures the insert itself: no rate limit.
                    new_flow_limit: 0,
                    ..Options::default()
                })
                .expect("load");
                lb.apply(&table).expect("apply");
                lb
            };
            // The flow cache has capacity / 8 sets of 8 ways: an n-flow case
            // gets n / 2 sets (2 flows per set on average, 32 bytes of cache per
            // flow). A set that draws more than 8 of the n flows thrashes: those
            // runs miss and re-pick from the Maglev table (counted and printed
            // as "miss").
            let room = |n: u32| ct.max(n.saturating_mul(4));
            let mut cases: Vec<Case> = vec![
                Case::new(
                    "new-flow SYN",
                    3.0,
                    Kind::NewFlow,
                    load(BenchMode::NewFlow, ct),
                    &syn,
                ),
                Case::new(
                    "established, 1 flow",
                    2.0,
                    Kind::Established(1),
                    load(BenchMode::Off, ct),
                    &ack,
                ),
            ];
            for n in [10_000u32, 262_144] {
                cases.push(Case::new(
                    if n == 10_000 {
                        "established, 10000 flows"
                    } else {
                        "established, 262144 flows"
                    },
                    if n == 10_000 { 2.0 } else { 3.0 },
                    Kind::Established(n),
                    load(BenchMode::Flows(n), room(n)),
                    &ack,
                ));
            }
            for n in [1u32, 262_144] {
                cases.push(Case::new(
                    if n == 1 {
                        "probe: 1 set, 1 flow"
                    } else {
                        "probe: 1 set, 262144 flows"
                    },
                    0.0,
                    Kind::Probe,
                    load(BenchMode::Probe(n), room(n)),
                    &ack,
                ));
            }
            cases.push(Case::new(
                "pass (VIP port)",
                1.5,
                Kind::Pass,
                load(BenchMode::Off, ct),
                &other,
            ));
            cases.push(Case::new(
                "pass (port 22)",
                1.5,
                Kind::Pass,
                load(BenchMode::Off, ct),
                &other_port,
            ));
            for case in &mut cases {
                // Warm up: create the established entries (n runs make n flows),
                // fault in everything.
                let warm = match case.kind {
                    Kind::Established(n) => n,
                    _ => 1,
                };
                let before = case.lb.stats().expect("stats");
                let (v, _) = case
                    .lb
                    .bench_run(Program::Balancer, &case.frame, warm, Some(ifx))
                    .expect("warm-up");
                let after = case.lb.stats().expect("stats");
                if let Kind::Established(n) = case.kind {
                    assert_eq!(v, Verdict::Tx);
                    assert_eq!(
                        new_flows(&after) - new_flows(&before),
                        u64::from(n),
                        "{}: warm-up",
                        case.name
                    );
                }
                let out = case.lb.test_run(&case.frame, Some(ifx)).expect("run");
                if let Kind::Probe = case.kind {
                    assert_eq!(out.verdict, Verdict::Pass);
                    continue;
                }
                assert_eq!(
                    out.packet, case.frame,
                    "the benchmark's rewrite must leave the frame unchanged"
                );
            }
            for _ in 0..rounds {
                for case in &mut cases {
                    let (fv, fd) = case
                        .lb
                        .bench_run(Program::Pass, &case.frame, repeat, Some(ifx))
                        .expect("floor");
                    assert_eq!(fv, Verdict::Pass);
                    let before = case.lb.stats().expect("stats");
                    let (v, d) = case
                        .lb
                        .bench_run(Program::Balancer, &case.frame, repeat, Some(ifx))
                        .expect("run");
                    let after = case.lb.stats().expect("stats");
                    let r = u64::from(repeat);
                    match case.kind {
                        Kind::NewFlow => {
                            assert_eq!(v, Verdict::Tx);
                            assert_eq!(
                                new_flows(&after) - new_flows(&before),
                                r,
                                "every run must be a new flow"
                            );
                        }
                        Kind::Established(_) => {
                            assert_eq!(v, Verdict::Tx);
                            let missed = new_flows(&after) - new_flows(&before);
                            assert!(
                                missed * 100 <= r,
                                "{}: {missed} of {r} runs missed the flow cache",
                                case.name
                            );
                            case.missed += missed;
                            assert_eq!(after.vips[0].forwarded - before.vips[0].forwarded, r);
                        }
                        Kind::Pass => {
                            assert_eq!(v, Verdict::Pass);
                            assert_eq!(after.global.not_vip - before.global.not_vip, r);
                        }
                        Kind::Probe => {
                            assert_eq!(v, Verdict::Pass);
                            assert_eq!(after, before, "the probe touches no counter");
                        }
                    }
                    case.floor.push(ns_per_run(fd));
                    case.prog.push(ns_per_run(d));
                }
            }
            cases
                .into_iter()
                .map(|c| (c.name, c.goal, c.floor, c.prog, c.missed))
                .collect::<Vec<_>>()
        })
        .expect("enter netns");

    println!("XDP BPF_PROG_TEST_RUN, repeat = {repeat}, median of {rounds} rounds (ns/packet)");
    println!(
        "{:<26} {:>8} {:>8} {:>7} {:>6}",
        "case", "program", "floor", "ratio", "goal"
    );
    let runs = f64::from(repeat) * f64::from(rounds);
    for (name, goal, floor, prog, missed) in cases {
        let p = median(prog);
        let f = median(floor);
        let miss = if missed > 0 {
            format!("  (miss {:.3} %)", missed as f64 * 100.0 / runs)
        } else {
            String::new()
        };
        let goal = if goal > 0.0 {
            format!("{goal:>5.1}x")
        } else {
            format!("{:>6}", "-")
        };
        println!("{name:<26} {p:>8.1} {f:>8.1} {:>6.2}x {goal}{miss}", p / f);
    }
}
