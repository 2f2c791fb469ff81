//! `cargo xtask`: the project's developer and user tasks, in Rust.
//!
//! `cargo xtask …` is an alias (see `.cargo/config.toml`) for
//! `cargo run --quiet --package xtask -- …`, so the tasks need nothing installed
//! beyond a Rust toolchain.
//!
//! * `cargo xtask demo` — routes simulated shop traffic through `examples/demo.yaml`
//!   and checks the canary split, the header A/B rule and sticky sessions.
//! * `cargo xtask test [ARGS…]` — runs every test of the workspace (unit,
//!   integration, bench smoke tests and doctests).

mod demo;
mod testing;

use std::path::PathBuf;
use std::process::ExitCode;

/// The usage text, printed by `help` and after every usage error.
const USAGE: &str = "\
Usage: cargo xtask <TASK> [ARGS...]

Tasks:
  demo [--seed N]   Route 10 000 simulated shop requests through examples/demo.yaml,
                    print where they went and check the canary split, the header
                    A/B rule and sticky sessions (exits 1 if a check fails).
  test [ARGS...]    Run every test: `cargo test --workspace --all-targets`, then
                    `cargo test --workspace --doc`. ARGS are passed to both, e.g.
                    `cargo xtask test -- --nocapture`.
  help              Print this message.

Planned, not implemented yet (eBPF data path): setup, build-ebpf, run.";

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
    /// `help`, `--help`, `-h`.
    Help,
}

/// Tasks that are planned (they belong to the eBPF data path) but do not exist yet.
/// Naming one is a usage error with a specific message, never a silent success.
const PLANNED: &[&str] = &["setup", "build-ebpf", "run"];

/// Why the command line could not be understood (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
enum UsageError {
    /// No task given.
    Missing,
    /// A task that is planned but not implemented.
    Planned(String),
    /// A task that does not exist.
    Unknown(String),
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
        Task::Demo { seed } => demo::run(seed),
        Task::Test { cargo_args } => testing::run(&cargo_args),
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
    }

    #[test]
    fn rejects_unknown_planned_and_bad_arguments() {
        assert_eq!(parse(&[]), Err(UsageError::Missing));
        assert_eq!(
            parse(&args(&["build-ebpf"])),
            Err(UsageError::Planned("build-ebpf".into()))
        );
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
