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
//! * new-flow SYN: a balancer loaded with [`BenchMode::NewFlow`] — the conntrack
//!   key's source is varied per run (per-CPU sequence + CPU id), so every run
//!   misses the connection table, hashes the 5-tuple, picks from the Maglev table,
//!   does the FIB lookup and inserts two LRU entries (at capacity: LRU eviction);
//! * established: a normal balancer — the warm-up run creates the entry, every
//!   counted run hits it;
//! * pass (VIP port): a TCP SYN to a non-VIP address on a VIP's port (port
//!   prefilter hit, VIP hash lookup miss, reply filter miss, XDP_PASS);
//! * pass (port 22): a TCP SYN to a port no VIP uses (port prefilters miss,
//!   XDP_PASS without any hash lookup).
//!
//! After each measurement the program's own counters are checked: exactly
//! `repeat` new flows (new-flow case), `repeat` forwarded packets and no new flow
//! (established), `repeat` non-VIP passes (pass-through) — so every counted run
//! took the path it claims.

use std::net::SocketAddr;
use std::time::Duration;

use routing_core::RouteTable;
use routing_ebpf::{BenchMode, Options, Program, Verdict, XdpBalancer};
use routing_testkit::netns::Netns;
use routing_testkit::packet::TcpPacket;

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

struct Case {
    name: &'static str,
    goal: f64,
    floor: Vec<f64>,
    prog: Vec<f64>,
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
    let syn = syn.build();
    let other = TcpPacket::syn(client, "192.0.2.99:80".parse().expect("addr")).build();
    let other_port = TcpPacket::syn(client, "192.0.2.1:22".parse().expect("addr")).build();

    let cases = ns
        .run(move || {
            let load = |mode| {
                let mut lb = XdpBalancer::load(&Options {
                    bench: mode,
                    conntrack_capacity: ct,
                    ..Options::default()
                })
                .expect("load");
                lb.apply(&table).expect("apply");
                lb
            };
            let mut new_lb = load(BenchMode::NewFlow);
            let mut est_lb = load(BenchMode::Off);
            let mut cases = [
                Case {
                    name: "new-flow SYN",
                    goal: 3.0,
                    floor: vec![],
                    prog: vec![],
                },
                Case {
                    name: "established",
                    goal: 2.0,
                    floor: vec![],
                    prog: vec![],
                },
                Case {
                    name: "pass (VIP port)",
                    goal: 1.3,
                    floor: vec![],
                    prog: vec![],
                },
                Case {
                    name: "pass (port 22)",
                    goal: 1.3,
                    floor: vec![],
                    prog: vec![],
                },
            ];
            // Warm up: create the established entry, fault in everything.
            let out = est_lb.test_run(&syn, Some(ifx)).expect("run");
            assert_eq!(out.verdict, Verdict::Tx);
            assert_eq!(
                out.packet, syn,
                "the benchmark's rewrite must leave the frame unchanged"
            );
            for _ in 0..rounds {
                for (i, case) in cases.iter_mut().enumerate() {
                    let lb = if i == 0 { &mut new_lb } else { &mut est_lb };
                    let frame = match i {
                        2 => &other,
                        3 => &other_port,
                        _ => &syn,
                    };
                    let (fv, fd) = lb
                        .bench_run(Program::Pass, frame, repeat, Some(ifx))
                        .expect("floor");
                    assert_eq!(fv, Verdict::Pass);
                    let before = lb.stats().expect("stats");
                    let (v, d) = lb
                        .bench_run(Program::Balancer, frame, repeat, Some(ifx))
                        .expect("run");
                    let after = lb.stats().expect("stats");
                    let nf = |s: &routing_ebpf::Stats| {
                        s.vips[0].targets.iter().map(|t| t.new_flows).sum::<u64>()
                    };
                    let r = u64::from(repeat);
                    match i {
                        0 => {
                            assert_eq!(v, Verdict::Tx);
                            assert_eq!(nf(&after) - nf(&before), r, "every run must be a new flow");
                        }
                        1 => {
                            assert_eq!(v, Verdict::Tx);
                            assert_eq!(nf(&after), nf(&before), "no run may create a flow");
                            assert_eq!(after.vips[0].forwarded - before.vips[0].forwarded, r);
                        }
                        _ => {
                            assert_eq!(v, Verdict::Pass);
                            assert_eq!(after.global.not_vip - before.global.not_vip, r);
                        }
                    }
                    case.floor.push(ns_per_run(fd));
                    case.prog.push(ns_per_run(d));
                }
            }
            cases
        })
        .expect("enter netns");

    println!("XDP BPF_PROG_TEST_RUN, repeat = {repeat}, median of {rounds} rounds (ns/packet)");
    println!(
        "{:<16} {:>8} {:>8} {:>7} {:>6}",
        "case", "program", "floor", "ratio", "goal"
    );
    for c in cases {
        let p = median(c.prog);
        let f = median(c.floor);
        println!(
            "{:<16} {:>8.1} {:>8.1} {:>6.2}x {:>5.1}x",
            c.name,
            p,
            f,
            p / f,
            c.goal
        );
    }
}
