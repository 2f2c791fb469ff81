//! `cargo xtask test`: every test of the workspace, tests only (after `setup`, which
//! `main` runs first: `routing-ebpf` needs nightly and bpf-linker to build).
//!
//! Formatting and lints are separate CI steps (`.ci/run`), so that a failing test and
//! a style nit are reported as different failures.

use std::ffi::OsString;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The `cargo` argument lists run in order. `--all-targets` does not include
/// doctests and cannot be combined with `--doc`, hence two runs; the last one runs
/// the tests of code behind features no workspace-wide run enables: xtask's `ebpf`
/// feature (the L4 demo and bench helpers) and routing-cli's `xdp` feature (`routing
/// run`). (routing-rollout is a workspace member: the first two runs cover it.)
/// routing-kube has a run of its own, never with `--include-ignored`: its only
/// ignored test needs a real cluster (KUBECONFIG at build time un-ignores it), so
/// without one it is reported as ignored, not run to pass without testing anything.
///
/// First, routing-tower's examples are built as programs: `--all-targets` builds
/// examples only as test harnesses, and `tests/reverse_proxy_example.rs` spawns the
/// `reverse_proxy` program as a user runs it.
const RUNS: &[&[&str]] = &[
    &["build", "--package", "routing-tower", "--examples"],
    &[
        "test",
        "--workspace",
        "--all-targets",
        "--exclude",
        "routing-kube",
    ],
    &["test", "--package", "routing-kube", "--all-targets"],
    &["test", "--workspace", "--doc"],
    &["test", "--package", "xtask", "--features", "ebpf"],
    &["test", "--package", "routing-cli", "--features", "xdp"],
];

/// The arguments a run gets after `extra`: as root, `--include-ignored` (with a `--`
/// first unless `extra` has one), so the root-only tests (`#[ignore = "needs root"]`)
/// run too; nothing for doctest runs, whose ignored examples are `ignore` code blocks
/// that are not meant to compile. The test binaries with their own harness accept the
/// flag: criterion ignores it, routing-ebpf's `xdp` bench runs only with it.
fn root_args(args: &[&str], extra: &[String], root: bool) -> Vec<String> {
    let kube_run = args.windows(2).any(|w| w == ["--package", "routing-kube"]);
    if !root || args[0] != "test" || args.contains(&"--doc") || kube_run {
        return Vec::new();
    }
    let mut v = Vec::new();
    if !extra.iter().any(|a| a == "--") {
        v.push("--".to_owned());
    }
    v.push("--include-ignored".to_owned());
    v
}

/// Runs each of [`RUNS`] with `extra` appended, streaming its output, and stops at
/// the first failure, naming the command that failed. As root, the root-only tests
/// run too (see [`root_args`]); otherwise they stay ignored and are reported as such.
pub(crate) fn run(extra: &[String]) -> Result<()> {
    let as_root = crate::setup::is_root();
    if !as_root {
        eprintln!(
            "xtask: not root: the root-only tests (XDP programs, network namespaces; \
             `#[ignore = \"needs root\"]`) stay ignored and are counted as ignored, not \
             passed; run `cargo xtask test` as root (CI does) to include them"
        );
    }
    // `cargo run` (behind the `cargo xtask` alias) says which cargo it is, so the
    // tests use the same toolchain as the task itself.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let root = crate::workspace_root();
    let started = Instant::now();
    for args in RUNS {
        // The test arguments are for test runs; a build takes none.
        let mut extra = if args[0] == "test" {
            extra.to_vec()
        } else {
            Vec::new()
        };
        extra.extend(root_args(args, &extra, as_root));
        let extra = &extra[..];
        let shown = shell_words(args, extra);
        eprintln!("xtask: running `{shown}`");
        let t = Instant::now();
        let status = Command::new(&cargo)
            .args(*args)
            .args(extra)
            .current_dir(&root)
            .status()
            .with_context(|| format!("could not start `{shown}`"))?;
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        eprintln!(
            "xtask: `{shown}` passed in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "xtask: all tests passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The command as a user would type it (arguments with spaces quoted), for messages.
fn shell_words(args: &[&str], extra: &[String]) -> String {
    std::iter::once("cargo")
        .chain(args.iter().copied())
        .chain(extra.iter().map(String::as_str))
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_runs_include_the_ignored_tests_except_doctests() {
        let none: &[String] = &[];
        assert_eq!(
            super::root_args(&["test", "--workspace"], none, true),
            ["--", "--include-ignored"]
        );
        // The workspace run that leaves routing-kube out still runs the root tests.
        assert_eq!(
            super::root_args(super::RUNS[1], none, true),
            ["--", "--include-ignored"]
        );
        assert_eq!(
            super::root_args(&["test"], &["--".into(), "--nocapture".into()], true),
            ["--include-ignored"],
            "one `--` only"
        );
        assert!(
            super::root_args(&["test", "--package", "routing-kube"], none, true).is_empty(),
            "the real-cluster test stays ignored without a cluster"
        );
        assert!(super::root_args(&["test", "--workspace", "--doc"], none, true).is_empty());
        assert!(
            super::root_args(&["build", "--examples"], none, true).is_empty(),
            "a build takes no test arguments"
        );
        assert!(super::root_args(&["test", "--workspace"], none, false).is_empty());
    }

    #[test]
    fn commands_are_shown_as_typed() {
        assert_eq!(
            super::shell_words(&["test", "--doc"], &["--".into(), "a b".into()]),
            "cargo test --doc -- 'a b'"
        );
    }
}
