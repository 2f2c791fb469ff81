//! `routing run --iface IF --config FILE [--mode skb|drv]` (feature `xdp`): the XDP program on a
//! real interface, programmed from a configuration file.
//!
//! 1. Reads FILE (YAML, JSON or TOML by extension, as `routing_core::Config` reads
//!    it) and validates it into a `RouteTable`; its `tcp_services` are what the
//!    program serves (HTTP routes in the same file are ignored here).
//! 2. Loads the embedded program (`routing_ebpf::XdpBalancer`), programs the
//!    services, attaches to IF in the given mode (`drv`: native, the default;
//!    `skb`: generic).
//! 3. Every second prints an aligned table: per service and target, the weight, state and
//!    configured share, the share of new flows, and packets/s, Mbit/s and new
//!    flows/s over the last second, with totals since the start.
//! 4. Checks FILE once a second (modification time, size and content); when it
//!    changed, reads and validates it again. A file that does not parse or validate,
//!    or that the loader refuses, is reported and the previous configuration stays
//!    live; a valid one is applied atomically (`XdpBalancer::apply`: established
//!    connections keep their target).
//! 5. Keeps the program's next hops current: a netlink listener
//!    (`routing_ebpf::next_hops::NextHopWatch`) is polled once a second; after any
//!    neighbour, route or link change, and at least every 30 s
//!    (`routing_ebpf::next_hops::REFRESH_INTERVAL`), the program resolves every
//!    target's next hop again (a target whose MAC changed keeps its flows).
//! 6. Runs the services' active health checks (`tcp_services[].health_check`,
//!    `routing_ebpf::HealthChecker`, restarted on every reload) and hands their
//!    verdicts to the program once a second: a target found down gets no new
//!    flows and its established ones are re-picked; the table shows each target's
//!    state (active, draining, down) and the status line the last change.
//! 7. On Ctrl-C (SIGINT) or SIGTERM detaches the program and exits 0.
//!
//! Signals are taken with `tokio::signal`, not the `ctrlc` crate: the task already
//! runs a tokio runtime for its one-second ticks, so the signal is one more branch of
//! the same `select!` — the detach then runs in ordinary code on the main thread (no
//! handler thread has to reach into the loader), and SIGTERM is handled the same way.
//!
//! Needs root (or `CAP_BPF` + `CAP_NET_ADMIN`).
//!
//! On a veth, native mode (`drv`) only works when the veth's peer has an XDP
//! program too (the program sends packets back out with XDP_TX, which a veth peer
//! without one drops; `routing_testkit::netns::Topology::prepare_native` does that for
//! its topology); use `--mode skb` there. Physical NICs with XDP drivers need nothing.

use std::path::PathBuf;

/// The attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Native XDP in the driver (`drv`).
    Driver,
    /// Generic XDP (`skb`).
    Skb,
}

/// `run`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// The interface to attach to.
    pub(crate) iface: String,
    /// The configuration file.
    pub(crate) config: PathBuf,
    /// The attach mode.
    pub(crate) mode: Mode,
}

#[cfg(feature = "xdp")]
pub(crate) use imp::run;

#[cfg(feature = "xdp")]
mod imp {
    use std::collections::HashMap;
    use std::io::IsTerminal;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant, SystemTime};

    use anyhow::{bail, Context, Result};
    use routing_core::{Config, RouteTable};
    use routing_ebpf::{AttachMode, Stats, XdpBalancer};

    use super::{Mode, Options};

    /// How often the stats are printed and the file is checked.
    const TICK: Duration = Duration::from_secs(1);

    impl From<Mode> for AttachMode {
        fn from(m: Mode) -> Self {
            match m {
                Mode::Driver => AttachMode::Driver,
                Mode::Skb => AttachMode::Skb,
            }
        }
    }

    /// What identifies a version of the file cheaply: modification time, size and a
    /// hash of the content (an editor may keep the time and size).
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Stamp {
        modified: Option<SystemTime>,
        len: u64,
        hash: u64,
    }

    /// Whether the process runs as root (effective uid 0), read from `/proc`.
    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
            })
            .unwrap_or(false)
    }

    /// Reads the file and its stamp.
    fn read(path: &Path) -> Result<(String, Stamp)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let meta = std::fs::metadata(path)?;
        Ok((
            text.clone(),
            Stamp {
                modified: meta.modified().ok(),
                len: meta.len(),
                hash: routing_core::stable_hash(text.as_bytes(), 0),
            },
        ))
    }

    /// Parses and validates a configuration; it must have at least one TCP service.
    fn validate(path: &Path, text: &str) -> Result<RouteTable> {
        let config = Config::from_path_and_text(path, text)
            .with_context(|| format!("{} does not parse", path.display()))?;
        let table =
            RouteTable::new(config).with_context(|| format!("{} is not valid", path.display()))?;
        if table.tcp_services().is_empty() {
            bail!(
                "{} has no `tcp_services`: nothing for the XDP program to serve",
                path.display()
            );
        }
        Ok(table)
    }

    /// Runs the task until Ctrl-C or SIGTERM.
    pub(crate) fn run(opts: &Options) -> Result<()> {
        run_until(opts, &AtomicBool::new(false))
    }

    /// [`run`], which also stops (and detaches) when `stop` is set, checked once a
    /// tick (how the test ends it).
    fn run_until(opts: &Options, stop: &AtomicBool) -> Result<()> {
        if !is_root() {
            bail!("`run` loads and attaches an XDP program: run it as root (or with CAP_BPF and CAP_NET_ADMIN)");
        }
        let (text, mut stamp) = read(&opts.config)?;
        let table = validate(&opts.config, &text)?;
        let mut lb = XdpBalancer::load(&routing_ebpf::Options::default())
            .context("loading the XDP program")?;
        lb.apply(&table).context("programming the services")?;
        lb.attach(&opts.iface, opts.mode.into()).with_context(|| {
            format!(
                "attaching to `{}` in {:?} mode (`--mode skb` works on every interface)",
                opts.iface, opts.mode
            )
        })?;
        eprintln!(
            "routing: run: attached to {} ({:?} mode), serving {} from {}; Ctrl-C detaches",
            opts.iface,
            opts.mode,
            services_summary(&table),
            opts.config.display()
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut watch = routing_ebpf::next_hops::NextHopWatch::new()
            .context("opening the netlink socket for next-hop changes")?;
        let mut checker = routing_ebpf::HealthChecker::start(&table);
        let result = rt.block_on(serve(
            &mut lb,
            &mut watch,
            &mut checker,
            opts,
            &mut stamp,
            stop,
        ));
        lb.detach().context("detaching")?;
        eprintln!("routing: run: detached from {}", opts.iface);
        result
    }

    /// `name vip (n targets)`, comma-separated.
    fn services_summary(table: &RouteTable) -> String {
        table
            .tcp_services()
            .iter()
            .map(|s| {
                format!(
                    "{} {} ({} targets)",
                    s.name(),
                    s.vip(),
                    s.forward().backends().len()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The loop: one tick a second until a signal.
    async fn serve(
        lb: &mut XdpBalancer,
        watch: &mut routing_ebpf::next_hops::NextHopWatch,
        checker: &mut routing_ebpf::HealthChecker,
        opts: &Options,
        stamp: &mut Stamp,
        stop: &AtomicBool,
    ) -> Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last: Option<(Instant, Stats)> = None;
        let started = Instant::now();
        let mut status = "configuration loaded".to_owned();
        let tty = std::io::stdout().is_terminal();
        loop {
            tokio::select! {
                _ = int.recv() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = tick.tick() => {}
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if let Err(e) = watch.poll(lb) {
                eprintln!("routing: run: refreshing next hops: {e}");
            }
            if let Some(msg) = reload(lb, checker, &opts.config, stamp) {
                eprintln!("routing: run: {msg}");
                status = msg;
            }
            match checker.apply(lb) {
                Ok(changes) => {
                    for (name, state) in changes {
                        let msg = format!("[{}] health: {name} is {state}", humantime_now());
                        eprintln!("routing: run: {msg}");
                        status = msg;
                    }
                }
                Err(e) => eprintln!("routing: run: applying health: {e}"),
            }
            let now = Instant::now();
            let stats = lb.stats().context("reading the counters")?;
            let lines = render(&stats, last.as_ref(), now, started, &status);
            if tty {
                print!("\x1b[2J\x1b[H");
            }
            for l in lines {
                println!("{l}");
            }
            last = Some((now, stats));
        }
    }

    /// Reloads the file if it changed; returns what happened, if anything.
    fn reload(
        lb: &mut XdpBalancer,
        checker: &mut routing_ebpf::HealthChecker,
        path: &Path,
        stamp: &mut Stamp,
    ) -> Option<String> {
        let (text, new) = match read(path) {
            Ok(r) => r,
            Err(e) => return Some(format!("{e:#}; the previous configuration stays live")),
        };
        if new == *stamp {
            return None;
        }
        *stamp = new;
        let when = humantime_now();
        match validate(path, &text) {
            Err(e) => Some(format!(
                "[{when}] {e:#}; the previous configuration stays live"
            )),
            Ok(table) => match lb.apply(&table) {
                Ok(()) => Some({
                    *checker = routing_ebpf::HealthChecker::start(&table);
                    format!(
                        "[{when}] reloaded {}: {}",
                        path.display(),
                        services_summary(&table)
                    )
                }),
                Err(e) => Some(format!(
                    "[{when}] the loader refused {}: {e}; the previous configuration stays live",
                    path.display()
                )),
            },
        }
    }

    /// The wall-clock time of day, UTC, `HH:MM:SS`.
    fn humantime_now() -> String {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!(
            "{:02}:{:02}:{:02}",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60
        )
    }

    /// The stats screen: per service, one row per target.
    fn render(
        stats: &Stats,
        last: Option<&(Instant, Stats)>,
        now: Instant,
        started: Instant,
        status: &str,
    ) -> Vec<String> {
        let secs = last.map_or(0.0, |(t, _)| now.duration_since(*t).as_secs_f64());
        let before: HashMap<(String, String), (u64, u64, u64)> = last
            .map(|(_, s)| {
                s.vips
                    .iter()
                    .flat_map(|v| {
                        v.targets.iter().map(move |t| {
                            (
                                (v.name.clone(), t.name.clone()),
                                (t.packets, t.bytes, t.new_flows),
                            )
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let rate = |now: u64, then: Option<u64>| -> String {
            match then {
                Some(then) if secs > 0.0 => {
                    format!("{:.0}", now.saturating_sub(then) as f64 / secs)
                }
                _ => "-".to_owned(),
            }
        };
        let header = [
            "service",
            "vip",
            "target",
            "address",
            "weight",
            "state",
            "share",
            "new flows",
            "flow share",
            "pkts/s",
            "Mbit/s",
            "new/s",
        ];
        let mut rows: Vec<Vec<String>> = Vec::new();
        for v in &stats.vips {
            let weights: u64 = v.targets.iter().map(|t| u64::from(t.weight)).sum();
            let flows: u64 = v.targets.iter().map(|t| t.new_flows).sum();
            for (i, t) in v.targets.iter().enumerate() {
                let prev = before.get(&(v.name.clone(), t.name.clone()));
                let mbit = match prev {
                    Some(p) if secs > 0.0 => format!(
                        "{:.2}",
                        t.bytes.saturating_sub(p.1) as f64 * 8.0 / secs / 1e6
                    ),
                    _ => "-".to_owned(),
                };
                rows.push(vec![
                    if i == 0 {
                        v.name.clone()
                    } else {
                        String::new()
                    },
                    if i == 0 {
                        v.vip.to_string()
                    } else {
                        String::new()
                    },
                    t.name.clone(),
                    t.address.to_string(),
                    t.weight.to_string(),
                    t.state.to_string(),
                    pct(u64::from(t.weight), weights),
                    t.new_flows.to_string(),
                    pct(t.new_flows, flows),
                    rate(t.packets, prev.map(|p| p.0)),
                    mbit,
                    rate(t.new_flows, prev.map(|p| p.2)),
                ]);
            }
        }
        let mut out = vec![format!(
            "routing-ebpf: up {:.0} s — {status}",
            now.duration_since(started).as_secs_f64()
        )];
        out.extend(table(&header, &rows));
        for v in &stats.vips {
            out.push(format!(
                "  {}: forwarded {}, replies {}, passed {}, dropped {}, parse failures {}",
                v.name, v.forwarded, v.replies, v.passed, v.dropped, v.parse_failures
            ));
        }
        let g = &stats.global;
        out.push(format!(
            "  not for a VIP: {} (not IP {}, not TCP {}, fragments {}, parse failures {}, too deep {})",
            g.not_vip, g.not_ip, g.not_tcp, g.fragments, g.parse_failures, g.too_deep
        ));
        out
    }

    /// `part / whole` as a percentage with one decimal, `-` for an empty whole.
    fn pct(part: u64, whole: u64) -> String {
        if whole == 0 {
            "-".to_owned()
        } else {
            format!("{:.1} %", part as f64 * 100.0 / whole as f64)
        }
    }

    /// An aligned table: text left, numbers right.
    fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let numeric = |i: usize| i >= 4;
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, &w))| {
                    if numeric(i) {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
        out.push(line(widths.iter().map(|&w| "-".repeat(w)).collect()));
        for r in rows {
            out.push(line(r.clone()));
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn an_invalid_file_is_reported_not_applied() {
            let err = validate(Path::new("x.yaml"), "tcp_services: [{name: web}]")
                .expect_err("a service without vip is invalid");
            assert!(format!("{err:#}").contains("x.yaml"), "{err:#}");
            let err = validate(Path::new("x.yaml"), "backends: []").expect_err("no services");
            assert!(format!("{err:#}").contains("tcp_services"), "{err:#}");
        }

        /// As root: `run` in the load-balancer namespace of the shared topology (generic
        /// mode), real connections split by the file's weights, a rewritten file
        /// reloaded live, an invalid one reported and ignored, held connections alive
        /// throughout, and the program detached at the end.
        #[test]
        #[ignore = "needs root"]
        fn run_end_to_end_as_root() {
            use std::io::{Read, Write};
            use std::net::{SocketAddr, TcpStream};
            use std::sync::atomic::{AtomicBool, Ordering};
            use std::time::Duration;

            use routing_testkit::netns::{read_name, Topology, IFACE, VIP_V4};

            let topo = Topology::new(2).expect("topology");
            let _servers = topo.start_servers(8080).expect("servers");
            let dir = std::env::temp_dir().join(format!("routing-run-e2e-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("l4.yaml");
            let config = |w0: u32, w1: u32| {
                format!(
                    "backends: [{{name: target-0, address: '203.0.113.10:8080'}}, \
                     {{name: target-1, address: '203.0.113.11:8080'}}]\n\
                     tcp_services: [{{name: web, vip: '192.0.2.1:8080', backends: \
                     [{{name: target-0, weight: {w0}}}, {{name: target-1, weight: {w1}}}]}}]\n"
                )
            };
            std::fs::write(&path, config(3, 1)).expect("write config");
            let opts = Options {
                iface: IFACE.to_owned(),
                config: path.clone(),
                mode: Mode::Skb,
            };
            let stop = AtomicBool::new(false);
            let vip = SocketAddr::from((VIP_V4, 8080));
            let share0 = |n: usize| -> (f64, Vec<(TcpStream, String)>) {
                let conns: Vec<(TcpStream, String)> = (0..n)
                    .map(|i| {
                        let s = topo
                            .connect(vip)
                            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
                        let name = read_name(&s).unwrap_or_else(|e| panic!("greeting {i}: {e}"));
                        (s, name)
                    })
                    .collect();
                let k = conns.iter().filter(|(_, n)| n == "target-0").count();
                (k as f64 / n as f64, conns)
            };
            let attached = || {
                topo.lb()
                    .ip(&["link", "show", IFACE])
                    .is_ok_and(|l| l.contains("xdp"))
            };
            std::thread::scope(|s| {
                let task = s.spawn(|| topo.lb().run(|| run_until(&opts, &stop)));
                for _ in 0..100 {
                    if attached() || task.is_finished() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                assert!(attached(), "`run` attached the program within 10 s");
                let (s1, held) = share0(200);
                assert!((s1 - 0.75).abs() <= 0.1, "3:1 -> target-0 share {s1}");

                std::fs::write(&path, config(1, 3)).expect("rewrite config");
                std::thread::sleep(Duration::from_millis(2500));
                let (s2, _fresh) = share0(400);
                assert!(
                    (s2 - 0.25).abs() <= 0.08,
                    "1:3 after reload -> target-0 share {s2}"
                );

                std::fs::write(&path, "tcp_services: [{name: broken}]\n").expect("break config");
                std::thread::sleep(Duration::from_millis(2500));
                let (s3, _more) = share0(200);
                assert!(
                    (s3 - 0.25).abs() <= 0.1,
                    "an invalid file keeps 1:3 live: {s3}"
                );
                for (i, (stream, _)) in held.iter().enumerate() {
                    let mut stream = stream;
                    stream
                        .write_all(b"ping\n")
                        .unwrap_or_else(|e| panic!("held connection {i} after the reloads: {e}"));
                    let mut echo = [0u8; 5];
                    stream
                        .read_exact(&mut echo)
                        .unwrap_or_else(|e| panic!("held connection {i} reset: {e}"));
                }

                stop.store(true, Ordering::Relaxed);
                let result = task.join().expect("run thread").expect("lb netns");
                assert!(result.is_ok(), "run ended with {result:?}");
            });
            assert!(!attached(), "the program is detached when `run` returns");
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn the_screen_shows_each_targets_state() {
            use routing_ebpf::{TargetState, TargetStats, VipStats};
            let target = |name: &str, state| TargetStats {
                name: name.into(),
                address: "10.0.0.1:80".parse().expect("address"),
                weight: 1,
                packets: 0,
                bytes: 0,
                new_flows: 0,
                state,
            };
            let stats = Stats {
                vips: vec![VipStats {
                    name: "web".into(),
                    vip: "192.0.2.1:80".parse().expect("vip"),
                    forwarded: 0,
                    replies: 0,
                    passed: 0,
                    dropped: 0,
                    parse_failures: 0,
                    targets: vec![
                        target("a", TargetState::Active),
                        target("b", TargetState::Draining),
                        target("c", TargetState::Down),
                    ],
                }],
                global: Default::default(),
            };
            let now = Instant::now();
            let lines = render(&stats, None, now, now, "ok");
            assert!(lines[1].contains("state"), "{lines:?}");
            for (name, state) in [("a", "active"), ("b", "draining"), ("c", "down")] {
                assert!(
                    lines
                        .iter()
                        .any(|l| l.contains(&format!(" {name} "))
                            && l.contains(&format!(" {state} "))),
                    "{name} {state}: {lines:#?}"
                );
            }
        }

        #[test]
        fn tables_align_numbers_right() {
            let t = table(
                &["service", "vip", "target", "address", "weight"],
                &[vec![
                    "web".into(),
                    "1.2.3.4:80".into(),
                    "a".into(),
                    "x".into(),
                    "3".into(),
                ]],
            );
            assert_eq!(t[0], "service  vip         target  address  weight");
            assert_eq!(t[2], "web      1.2.3.4:80  a       x             3");
        }
    }
}

/// Without the `xdp` feature there is no loader: `run` says how to get one.
#[cfg(not(feature = "xdp"))]
pub(crate) fn run(_opts: &Options) -> anyhow::Result<()> {
    anyhow::bail!(
        "this `routing` was built without the `xdp` feature: `run` needs it \
         (`cargo install --path routing-cli --features xdp`, or \
         `cargo run -p routing-cli --features xdp -- run …`; `cargo xtask setup` installs \
         the nightly toolchain and bpf-linker that building the XDP program needs)"
    )
}
