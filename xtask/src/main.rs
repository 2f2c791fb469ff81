//! `cargo xtask`: the project's developer and user tasks, in Rust.
//!
//! `cargo xtask …` is an alias (see `.cargo/config.toml`) for
//! `cargo run --quiet --package xtask -- …`, so the tasks need nothing installed
//! beyond a Rust toolchain. The user-facing commands (`check`, `explain`,
//! `simulate`, `convert`, `run`) are the `routing` binary of the `routing-cli` crate.
//!
//! * `cargo xtask setup` — installs what building and testing the eBPF program
//!   needs (nightly with `rust-src`, the pinned `bpf-linker`, `iproute2` and
//!   `nftables`); idempotent and quick when done. See [`setup`].
//! * `cargo xtask build-ebpf` — compiles the XDP program and prints the object's path.
//! * `cargo xtask run --iface IF --config FILE [--mode skb|drv]` — an alias: runs
//!   setup, then `cargo run -p routing-cli --features xdp -- run …` (`routing run`).
//! * `cargo xtask demo` — sends seeded shop traffic over real HTTP on 127.0.0.1
//!   through routing-tower's proxy and `examples/demo.yaml`, and checks the canary
//!   split, the header A/B rule and sticky sessions; then two progressive rollouts
//!   (one promoted, one rolled back on its own, see [`demo_rollout`]); then the
//!   fleet part: three replicas scraped by a real Prometheus, a rollout judged on
//!   the whole fleet by a Lease-elected controller (see [`demo_fleet`]); then, as
//!   root, the L4 part: real TCP connections through the XDP program in network
//!   namespaces (see [`demo_l4`]), and DSR behind two balancers with a nexthop
//!   removed live (see `demo_ecmp.rs`, built with the `ebpf` feature).
//! * `cargo xtask test [ARGS…]` — runs every test of the workspace (unit,
//!   integration, bench smoke tests and doctests); as root, the root-only ones
//!   (`#[ignore = "needs root"]`) too. See [`testing`].
//! * `cargo xtask bench-l4` — the kernel baseline: connections/s, throughput and
//!   split accuracy through the XDP program against nftables DNAT (see [`bench_l4`]).
//! * `cargo xtask fuzz [--secs S] [TARGET…]` — every cargo-fuzz target for a bounded
//!   time (see [`fuzz`]).
//!
//! `test`, `demo` and `fuzz` run `setup` first, so the README's two commands work on a fresh
//! machine.

mod bench_l4;
mod build_ebpf;
mod demo;
#[cfg(feature = "ebpf")]
mod demo_ecmp;
mod demo_fleet;
mod demo_l4;
mod demo_rollout;
mod fuzz;
mod http_harness;
mod l4;
mod setup;
mod testing;
#[cfg(feature = "ebpf")]
mod topo;
#[cfg(feature = "ebpf")]
mod xdp;

use std::path::PathBuf;
use std::process::ExitCode;

/// The usage text, printed by `help` and after every usage error.
const USAGE: &str = "\
Usage: cargo xtask <TASK> [ARGS...]

Tasks:
  setup             Install what the eBPF build and tests need, skipping what is
                    there: nightly + rust-src, bpf-linker 0.13.0 (built against
                    nightly's LLVM), and as root the Debian packages iproute2 and
                    nftables. Quick when already done.
  build-ebpf        Build the XDP program (cargo +nightly, bpfel-unknown-none) and
                    print the object's path. Runs setup first.
  run ARGS...       Run setup, then `routing run ARGS...` (`cargo run -p
                    routing-cli --features xdp -- run ARGS...`): attach the XDP
                    program to an interface and serve a config file's tcp_services.
                    See `cargo run -p routing-cli -- --help`.
  demo [--seed N]   Send 10 000 seeded shop requests over real HTTP on 127.0.0.1
                    through routing-tower's proxy and examples/demo.yaml, print
                    where they went and check the canary split, the header A/B
                    rule and sticky sessions; then run two progressive rollouts,
                    one promoted and one rolled back on its own (exits 1 if a
                    check fails); then the fleet part: three replicas following
                    a loopback Kubernetes API, a real Prometheus, a rollout
                    judged fleet-wide. Then, as root, the L4 part: 1 000 real TCP connections through the
                    XDP program in network namespaces, split per weights, and a live
                    weight change that keeps open connections. Runs setup first.
  test [ARGS...]    Run setup, then every test: `cargo test --workspace
                    --all-targets`, `cargo test --workspace --doc`, and the tests
                    behind features (xtask `ebpf`, routing-cli `xdp`, routing-ebpf
                    `rollout`). ARGS are passed to each, e.g. `cargo xtask test --
                    --nocapture`. As root, `--include-ignored` is added (except to
                    doctests) so the root-only tests (`#[ignore = \"needs root\"]`)
                    run; otherwise they are reported as ignored.
  bench-l4 [--secs S] [--repeats N]
                    As root: connections/s, throughput and split accuracy through
                    the XDP program (native and generic) vs nftables DNAT (numgen
                    and jhash weighted maps) on one veth topology; S seconds per
                    run (default 5), N runs per side (default 3); prints medians,
                    ranges and ratios.
  fuzz [--secs S] [TARGET...]
                    Run every cargo-fuzz target (or those named) for S seconds each
                    (default 30), seeded from fuzz/seeds and the importer test
                    fixtures; fails on any crash or any input slower than 10 s.
                    Runs setup first and installs cargo-fuzz if missing.
  help              Print this message.";

/// A task to run, parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    /// `demo`: the simulated shop.
    Demo {
        /// Seed of the traffic generator (the output is reproducible for a seed).
        seed: u64,
    },
    /// `test`: every test in the workspace.
    Test {
        /// Extra arguments appended to each `cargo test` command.
        cargo_args: Vec<String>,
    },
    /// `setup`: install the eBPF toolchain pieces and Debian packages.
    Setup,
    /// `build-ebpf`: compile the XDP program.
    BuildEbpf,
    /// `run ARGS…`: `routing run ARGS…` in a build with the `xdp` feature.
    Run(Vec<String>),
    /// `bench-l4`: the XDP program against nftables DNAT.
    BenchL4(bench_l4::Options),
    /// `__demo-l4`: the L4 part of the demo alone (hidden: `demo` runs it, in a
    /// build with the `ebpf` feature).
    DemoL4,
    /// `__demo-fleet`: the demo's fleet part alone (issue 16).
    DemoFleet,
    /// `__l4-serve NAME ADDR`, `__l4-client`: hidden helpers that the L4 demo and
    /// `bench-l4` start inside network namespaces.
    Worker(l4::WorkerTask),
    /// `fuzz`: every fuzz target for a bounded time.
    Fuzz(fuzz::Options),
    /// `help`, `--help`, `-h`.
    Help,
}

/// Tasks that are planned but do not exist yet. Naming one is a usage error with a
/// specific message, never a silent success. (Empty since the eBPF tasks landed.)
const PLANNED: &[&str] = &[];

/// Why the command line could not be understood (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
enum UsageError {
    /// No task given.
    Missing,
    /// A task that is planned but not implemented.
    Planned(String),
    /// A task that does not exist.
    Unknown(String),
    /// A task that moved to the `routing` command.
    Moved(String),
    /// A task's arguments are wrong.
    BadArgs(String),
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::Missing => f.write_str("no task given"),
            UsageError::Planned(t) => write!(
                f,
                "`cargo xtask {t}` is planned for the eBPF data path but not implemented yet"
            ),
            UsageError::Unknown(t) => write!(f, "unknown task `{t}`"),
            UsageError::Moved(t) => write!(
                f,
                "`cargo xtask {t}` is now the `routing` command: `routing check|explain|simulate|convert …` \
                 (`cargo run -p routing-cli -- check …`, or `cargo install --path routing-cli`)"
            ),
            UsageError::BadArgs(m) => f.write_str(m),
        }
    }
}

/// Parses the arguments that follow `cargo xtask`.
fn parse(args: &[String]) -> Result<Task, UsageError> {
    let Some((task, rest)) = args.split_first() else {
        return Err(UsageError::Missing);
    };
    match task.as_str() {
        "demo" => parse_demo(rest),
        "test" => Ok(Task::Test {
            cargo_args: rest.to_vec(),
        }),
        "setup" => no_args("setup", rest, Task::Setup),
        "build-ebpf" => no_args("build-ebpf", rest, Task::BuildEbpf),
        "run" => Ok(Task::Run(rest.to_vec())),
        "bench-l4" => parse_bench_l4(rest),
        "fuzz" => parse_fuzz(rest),
        "route" => Err(UsageError::Moved("route".to_owned())),
        "__l4-serve" => match rest {
            [name, addr] => addr
                .parse()
                .map(|listen| {
                    Task::Worker(l4::WorkerTask::Serve {
                        name: name.clone(),
                        listen,
                    })
                })
                .map_err(|_| UsageError::BadArgs(format!("bad address `{addr}`"))),
            _ => Err(UsageError::BadArgs("`__l4-serve NAME ADDR`".into())),
        },
        "__l4-client" => no_args("__l4-client", rest, Task::Worker(l4::WorkerTask::Client)),
        "__demo-l4" => no_args("__demo-l4", rest, Task::DemoL4),
        "__demo-fleet" => no_args("__demo-fleet", rest, Task::DemoFleet),
        "help" | "--help" | "-h" => Ok(Task::Help),
        t if PLANNED.contains(&t) => Err(UsageError::Planned(t.to_owned())),
        t => Err(UsageError::Unknown(t.to_owned())),
    }
}

/// Parses `demo`'s arguments: an optional `--seed N` (or `--seed=N`).
fn parse_demo(args: &[String]) -> Result<Task, UsageError> {
    let mut seed = demo::DEFAULT_SEED;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = match arg.as_str() {
            "--help" | "-h" => return Ok(Task::Help),
            "--seed" => it.next().map(String::as_str),
            a => match a.strip_prefix("--seed=") {
                Some(v) => Some(v),
                None => {
                    return Err(UsageError::BadArgs(format!(
                        "unexpected argument `{a}` for `demo`"
                    )))
                }
            },
        };
        seed = value.and_then(|v| v.parse().ok()).ok_or_else(|| {
            UsageError::BadArgs("`--seed` needs a non-negative integer".to_owned())
        })?;
    }
    Ok(Task::Demo { seed })
}

/// A task that takes no arguments (other than `--help`).
fn no_args(name: &str, args: &[String], task: Task) -> Result<Task, UsageError> {
    match args.first().map(String::as_str) {
        None => Ok(task),
        Some("--help" | "-h") => Ok(Task::Help),
        Some(a) => Err(UsageError::BadArgs(format!(
            "unexpected argument `{a}` for `{name}`"
        ))),
    }
}

/// Splits `--flag=value` into `("--flag", Some("value"))`, anything else into
/// `(arg, None)`.
fn split_flag(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
        _ => (arg, None),
    }
}

/// The value of a flag: the part after `=`, or the next argument.
fn flag_value<'a>(
    task: &str,
    flag: &str,
    inline: Option<&'a str>,
    it: &mut std::slice::Iter<'a, String>,
) -> Result<&'a str, UsageError> {
    inline
        .or_else(|| it.next().map(String::as_str))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| UsageError::BadArgs(format!("`{flag}` of `{task}` needs a value")))
}

/// Parses `fuzz [--secs S] [TARGET…]`.
fn parse_fuzz(args: &[String]) -> Result<Task, UsageError> {
    let mut opts = fuzz::Options {
        secs: 30,
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = split_flag(arg);
        match flag {
            "--help" | "-h" => return Ok(Task::Help),
            "--secs" => {
                opts.secs = flag_value("fuzz", flag, inline, &mut it)?
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=86_400).contains(n))
                    .ok_or_else(|| {
                        UsageError::BadArgs("`--secs` needs an integer from 1 to 86400".into())
                    })?;
            }
            t if !t.starts_with('-') && fuzz::TARGETS.iter().any(|(n, _)| *n == t) => {
                opts.targets.push(t.to_owned());
            }
            a => {
                return Err(UsageError::BadArgs(format!(
                    "unexpected argument `{a}` for `fuzz`"
                )))
            }
        }
    }
    Ok(Task::Fuzz(opts))
}

/// Parses `bench-l4 [--secs S] [--repeats N]`.
fn parse_bench_l4(args: &[String]) -> Result<Task, UsageError> {
    let mut opts = bench_l4::Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = split_flag(arg);
        let number = |v: &str, max: u64| {
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    UsageError::BadArgs(format!("`{flag}` needs an integer from 1 to {max}"))
                })
        };
        match flag {
            "--help" | "-h" => return Ok(Task::Help),
            "--secs" => opts.secs = number(flag_value("bench-l4", flag, inline, &mut it)?, 60)?,
            "--repeats" => {
                opts.repeats = number(flag_value("bench-l4", flag, inline, &mut it)?, 15)?;
            }
            a => {
                return Err(UsageError::BadArgs(format!(
                    "unexpected argument `{a}` for `bench-l4`"
                )))
            }
        }
    }
    Ok(Task::BenchL4(opts))
}

/// Runs `f`, a task that loads the XDP program: directly in a build with the `ebpf`
/// feature; otherwise runs `setup` (the feature's build needs nightly and
/// bpf-linker), then this task again as `cargo run -p xtask --features ebpf -- ARGS`,
/// and exits with its status.
#[cfg(feature = "ebpf")]
fn with_ebpf(_args: &[String], f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    f()
}

/// See the `ebpf` build's version: this one re-runs the task in that build.
#[cfg(not(feature = "ebpf"))]
fn with_ebpf(args: &[String], _f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    use anyhow::Context;
    setup::run()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "xtask: this part loads the XDP program: running `cargo run -p xtask --features ebpf -- {}`",
        args.join(" ")
    );
    let status = std::process::Command::new(cargo)
        .env(setup::DONE_ENV, "1")
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--features",
            "ebpf",
            "--",
        ])
        .args(args)
        .current_dir(workspace_root())
        .status()
        .context("could not run `cargo run -p xtask --features ebpf`")?;
    if status.success() {
        Ok(())
    } else {
        // The inner task printed its own error; pass its status on.
        std::process::exit(status.code().unwrap_or(1));
    }
}

/// `routing run ARGS…`: runs `cargo run -p routing-cli --features xdp -- run ARGS…`
/// (after `setup`: the feature's build needs nightly and bpf-linker) and exits with
/// its status.
fn routing_run(args: &[String]) -> anyhow::Result<()> {
    use anyhow::Context;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "--package",
            "routing-cli",
            "--features",
            "xdp",
            "--",
            "run",
        ])
        .args(args)
        .current_dir(workspace_root())
        .status()
        .context("could not run `cargo run -p routing-cli --features xdp`")?;
    if status.success() {
        Ok(())
    } else {
        // `routing` printed its own error; pass its status on.
        std::process::exit(status.code().unwrap_or(1));
    }
}

/// The workspace root (the parent of this crate's directory). Tasks run from there,
/// wherever `cargo xtask` was invoked.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = match parse(&args) {
        Ok(task) => task,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match task {
        Task::Demo { seed } => setup::run()
            .and_then(|()| demo::run(seed))
            .and_then(|()| demo_fleet::run())
            .and_then(|()| demo_l4::run_from_demo(&["__demo-l4".to_owned()])),
        Task::DemoL4 => with_ebpf(&args, demo_l4::run),
        Task::DemoFleet => demo_fleet::run(),
        Task::Test { cargo_args } => setup::run().and_then(|()| testing::run(&cargo_args)),
        Task::Setup => setup::run(),
        Task::BuildEbpf => build_ebpf::run().map(drop),
        Task::Run(args) => setup::run().and_then(|()| routing_run(&args)),
        Task::BenchL4(opts) => with_ebpf(&args, || bench_l4::run(&opts)),
        Task::Worker(w) => l4::run_worker(&w),
        Task::Fuzz(opts) => setup::run().and_then(|()| fuzz::run(&opts, &workspace_root())),
        Task::Help => {
            println!("{USAGE}");
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|&a| a.to_owned()).collect()
    }

    #[test]
    fn parses_tasks() {
        assert_eq!(
            parse(&args(&["demo"])),
            Ok(Task::Demo {
                seed: demo::DEFAULT_SEED
            })
        );
        assert_eq!(
            parse(&args(&["demo", "--seed", "7"])),
            Ok(Task::Demo { seed: 7 })
        );
        assert_eq!(
            parse(&args(&["demo", "--seed=8"])),
            Ok(Task::Demo { seed: 8 })
        );
        assert_eq!(
            parse(&args(&["test", "--", "--nocapture"])),
            Ok(Task::Test {
                cargo_args: args(&["--", "--nocapture"])
            })
        );
        assert_eq!(parse(&args(&["--help"])), Ok(Task::Help));
        assert_eq!(parse(&args(&["setup"])), Ok(Task::Setup));
        assert_eq!(parse(&args(&["build-ebpf"])), Ok(Task::BuildEbpf));
        assert_eq!(parse(&args(&["setup", "--help"])), Ok(Task::Help));
        assert_eq!(parse(&args(&["__demo-l4"])), Ok(Task::DemoL4));
        assert_eq!(
            parse(&args(&["__l4-serve", "t0", "127.0.0.1:8080"])),
            Ok(Task::Worker(l4::WorkerTask::Serve {
                name: "t0".into(),
                listen: "127.0.0.1:8080".parse().expect("address"),
            }))
        );
        assert_eq!(
            parse(&args(&["__l4-client"])),
            Ok(Task::Worker(l4::WorkerTask::Client))
        );
        assert!(matches!(
            parse(&args(&["__l4-serve", "t0", "nowhere"])),
            Err(UsageError::BadArgs(_))
        ));
    }

    #[test]
    fn run_and_route_moved_to_the_routing_command() {
        assert_eq!(
            parse(&args(&["run", "--iface", "veth0", "--config", "l4.yaml"])),
            Ok(Task::Run(args(&[
                "--iface", "veth0", "--config", "l4.yaml"
            ]))),
            "`run` passes its arguments on to `routing run`, which parses them"
        );
        assert_eq!(
            parse(&args(&["route", "check", "a.yaml"])),
            Err(UsageError::Moved("route".into()))
        );
    }

    #[test]
    fn parses_bench_l4() {
        assert_eq!(
            parse(&args(&["bench-l4"])),
            Ok(Task::BenchL4(bench_l4::Options::default()))
        );
        assert_eq!(
            parse(&args(&["bench-l4", "--secs", "2", "--repeats=5"])),
            Ok(Task::BenchL4(bench_l4::Options {
                secs: 2,
                repeats: 5
            }))
        );
        for bad in [
            &["bench-l4", "--secs", "0"][..],
            &["bench-l4", "--secs", "61"],
            &["bench-l4", "--repeats", "x"],
            &["bench-l4", "--fast"],
        ] {
            assert!(
                matches!(parse(&args(bad)), Err(UsageError::BadArgs(_))),
                "{bad:?} must be a usage error"
            );
        }
    }

    #[test]
    fn rejects_unknown_planned_and_bad_arguments() {
        assert_eq!(parse(&[]), Err(UsageError::Missing));
        assert!(matches!(
            parse(&args(&["build-ebpf", "--release"])),
            Err(UsageError::BadArgs(_))
        ));
        assert_eq!(
            parse(&args(&["deploy"])),
            Err(UsageError::Unknown("deploy".into()))
        );
        assert!(matches!(
            parse(&args(&["demo", "--seed"])),
            Err(UsageError::BadArgs(_))
        ));
        assert!(matches!(
            parse(&args(&["demo", "extra"])),
            Err(UsageError::BadArgs(_))
        ));
    }
}
