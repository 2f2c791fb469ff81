//! `cargo xtask setup`: installs what building and testing the eBPF program needs.
//!
//! Every step first checks whether its work is already done and skips it then, so a
//! second run takes well under a second (it only runs a few `--version`-style
//! commands). The steps, in order:
//!
//! 1. a nightly toolchain (`rustup toolchain install nightly --profile minimal`), done
//!    when `rustup toolchain list` names one;
//! 2. its `rust-src` component (`-Z build-std=core` compiles `core` from it), done
//!    when `rustup component list --toolchain nightly --installed` names it;
//! 3. `bpf-linker` [`BPF_LINKER_VERSION`], built from crates.io against the LLVM that
//!    ships inside the nightly toolchain (there is no matching system LLVM), done when
//!    `bpf-linker --version` runs and reports that version — a nightly update that
//!    removes the LLVM it was linked against makes it fail to start, so it is rebuilt;
//! 4. the Debian packages the root-only tests, the L4 demo, the nftables baseline and
//!    the packet-rate comparison (`benches/l4/pps.sh`) use ([`DEBIAN_PACKAGES`]),
//!    done when `dpkg-query` reports them installed. As root: one `apt-get update`, then `apt-get install -y`; otherwise it prints the
//!    command to run and goes on (those tests skip loudly without root anyway).
//!
//! Each step prints what it did and how long it took; a step that cannot finish stops
//! the task with a message that says what is missing and what to run by hand.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The bpf-linker release that is built (verified with nightly 1.97 / LLVM 22).
pub(crate) const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages and the command each provides (the command is what is checked
/// first; `dpkg-query` decides when the command is missing).
/// The last three are for the packet-rate comparison `benches/l4/pps.sh` (the
/// generator, GRO switches and the XDP program's run-time statistics).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip"),
    ("nftables", "nft"),
    ("netsniff-ng", "trafgen"),
    ("ethtool", "ethtool"),
    ("bpftool", "bpftool"),
    // The fleet tests and `cargo xtask demo`'s fleet part (issue 16): a real
    // Prometheus scraping the replicas.
    ("prometheus", "prometheus"),
    // routing-etcd: etcd-client compiles etcd's .proto files with protoc, and its
    // tests start a real etcd.
    ("protobuf-compiler", "protoc"),
    ("etcd-server", "etcd"),
    // routing-ebpf/tests/bgp.rs runs the VIP announcement of examples/bgp/.
    ("bird2", "bird"),
];
/// Set (to `1`) for tasks started after a successful setup, which then skip it.
pub(crate) const DONE_ENV: &str = "XTASK_SETUP_DONE";
/// The toolchain the eBPF crate is built with.
const NIGHTLY: &str = "nightly";

/// What a step found or did, for the summary line.
type StepOutcome = Result<String>;

/// Runs every step; the first that fails stops the task.
///
/// Runs once per task: a later call in the same process, or in a task this one
/// started (they inherit [`DONE_ENV`]), returns at once.
pub(crate) fn run() -> Result<()> {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.load(std::sync::atomic::Ordering::Relaxed) || std::env::var_os(DONE_ENV).is_some() {
        return Ok(());
    }
    let started = Instant::now();
    eprintln!("xtask: setup: checking what the eBPF build and tests need");
    step("1/4 nightly toolchain", nightly_toolchain)?;
    step("2/4 rust-src for nightly", rust_src)?;
    step(&format!("3/4 bpf-linker {BPF_LINKER_VERSION}"), bpf_linker)?;
    step("4/4 Debian packages", debian_packages)?;
    eprintln!(
        "xtask: setup: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    DONE.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Runs one step, timing it and printing its outcome.
fn step(name: &str, f: fn() -> StepOutcome) -> Result<()> {
    let t = Instant::now();
    match f() {
        Ok(what) => {
            eprintln!(
                "xtask: setup: {name}: {what} ({:.1} s)",
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!(
                "xtask: setup: {name}: FAILED after {:.1} s",
                t.elapsed().as_secs_f64()
            );
            Err(e.context(format!("`cargo xtask setup` step `{name}` failed")))
        }
    }
}

/// Step 1: a nightly toolchain.
fn nightly_toolchain() -> StepOutcome {
    let list = capture("rustup", ["toolchain", "list"]).context(
        "`rustup` is needed to manage the nightly toolchain the eBPF crate is built with; \
         install rustup, then run `cargo xtask setup` again",
    )?;
    if has_nightly(&list) {
        return Ok(format!("present ({})", nightly_version()?));
    }
    run_visible(
        "rustup",
        ["toolchain", "install", NIGHTLY, "--profile", "minimal"],
        &[],
    )
    .context("could not install the nightly toolchain")?;
    Ok(format!("installed ({})", nightly_version()?))
}

/// Whether `rustup toolchain list` output names a nightly toolchain.
fn has_nightly(list: &str) -> bool {
    // `nightly-<host>` is what `+nightly` resolves to; a dated
    // `nightly-2026-05-19-<host>` is not.
    list.lines().any(|l| {
        let name = l.split_whitespace().next().unwrap_or_default();
        name == NIGHTLY
            || name
                .strip_prefix("nightly-")
                .is_some_and(|host| !host.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// `rustc +nightly --version`.
fn nightly_version() -> Result<String> {
    Ok(capture("rustc", ["+nightly", "--version"])?
        .trim()
        .to_owned())
}

/// Step 2: `rust-src` for nightly.
fn rust_src() -> StepOutcome {
    let installed = capture(
        "rustup",
        ["component", "list", "--toolchain", NIGHTLY, "--installed"],
    )?;
    if has_rust_src(&installed) {
        return Ok("present".to_owned());
    }
    run_visible(
        "rustup",
        ["component", "add", "rust-src", "--toolchain", NIGHTLY],
        &[],
    )
    .context("could not add the `rust-src` component to the nightly toolchain")?;
    Ok("installed".to_owned())
}

/// Whether `rustup component list --installed` output names `rust-src`.
fn has_rust_src(installed: &str) -> bool {
    installed
        .lines()
        .any(|l| l.trim() == "rust-src" || l.trim().starts_with("rust-src-"))
}

/// Step 3: bpf-linker, built against the nightly toolchain's LLVM.
fn bpf_linker() -> StepOutcome {
    if let Some(found) = bpf_linker_version() {
        if found == BPF_LINKER_VERSION {
            return Ok("present".to_owned());
        }
        eprintln!(
            "xtask: setup: bpf-linker reports {found}, want {BPF_LINKER_VERSION}: rebuilding"
        );
    }
    let sysroot = PathBuf::from(capture("rustc", ["+nightly", "--print", "sysroot"])?.trim());
    let lib = sysroot.join("lib");
    let (llvm_lib, major) = nightly_llvm(&lib)?;
    let rustflags = format!(
        "-L {dir} -l dylib={llvm_lib} -C link-arg=-Wl,-rpath,{dir}",
        dir = lib.display()
    );
    let features = format!("llvm-{major},no-llvm-linking");
    eprintln!(
        "xtask: setup: building bpf-linker {BPF_LINKER_VERSION} against {llvm_lib} \
         (about a minute on 2 cores)"
    );
    run_visible(
        "cargo",
        [
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
            "--force",
            "--no-default-features",
            "--features",
            &features,
        ],
        &[("RUSTFLAGS", rustflags.as_str())],
    )
    .with_context(|| {
        format!(
            "could not build bpf-linker {BPF_LINKER_VERSION} from crates.io with features \
             `{features}` against {}/lib{llvm_lib}.so (it needs a C/C++ toolchain and \
             crates.io; bpf-linker {BPF_LINKER_VERSION} must support LLVM {major})",
            lib.display()
        )
    })?;
    match bpf_linker_version() {
        Some(v) if v == BPF_LINKER_VERSION => Ok("built and installed".to_owned()),
        Some(v) => bail!(
            "bpf-linker was installed but `bpf-linker --version` reports {v}, not \
             {BPF_LINKER_VERSION}: another bpf-linker earlier in PATH?"
        ),
        None => bail!(
            "bpf-linker was installed but does not run: is cargo's bin directory \
             ({}) in PATH?",
            cargo_bin().display()
        ),
    }
}

/// The version `bpf-linker --version` reports, or `None` when it is missing or does
/// not start (for instance because the LLVM it was linked against is gone). Cargo's
/// bin directory is tried when `bpf-linker` is not in PATH.
fn bpf_linker_version() -> Option<String> {
    let try_one = |program: &OsStr| -> Option<String> {
        let out = Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| parse_bpf_linker_version(&String::from_utf8_lossy(&out.stdout)))
            .flatten()
    };
    try_one(OsStr::new("bpf-linker"))
        .or_else(|| try_one(cargo_bin().join("bpf-linker").as_os_str()))
}

/// The version in `bpf-linker --version` output (`bpf-linker 0.13.0`).
fn parse_bpf_linker_version(out: &str) -> Option<String> {
    out.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
}

/// Cargo's bin directory (`$CARGO_HOME/bin`, by default `~/.cargo/bin`).
fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
        .join("bin")
}

/// The LLVM shared library inside the nightly sysroot's `lib/`, as the name to pass
/// to `-l dylib=` (`LLVM-22-rust-1.97.0-nightly`), and its major version (`22`).
fn nightly_llvm(lib: &Path) -> Result<(String, u32)> {
    let names: Vec<String> = std::fs::read_dir(lib)
        .with_context(|| format!("cannot list {}", lib.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.iter().find_map(|n| llvm_dylib(n)).with_context(|| {
        format!(
            "the nightly toolchain has no libLLVM-<major>-rust-*.so in {}; \
                 bpf-linker is built against it",
            lib.display()
        )
    })
}

/// `libLLVM-22-rust-1.97.0-nightly.so` → `("LLVM-22-rust-1.97.0-nightly", 22)`.
fn llvm_dylib(file: &str) -> Option<(String, u32)> {
    let stem = file.strip_prefix("lib")?.strip_suffix(".so")?;
    let rest = stem.strip_prefix("LLVM-")?;
    let (major, tail) = rest.split_once('-')?;
    if !tail.starts_with("rust-") {
        return None;
    }
    Some((stem.to_owned(), major.parse().ok()?))
}

/// Step 4: the Debian packages.
fn debian_packages() -> StepOutcome {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(pkg, cmd)| !command_exists(cmd) && !dpkg_installed(pkg))
        .map(|&(pkg, _)| pkg)
        .collect();
    if missing.is_empty() {
        let names: Vec<&str> = DEBIAN_PACKAGES.iter().map(|&(p, _)| p).collect();
        return Ok(format!("present ({})", names.join(", ")));
    }
    let list = missing.join(" ");
    if !is_root() {
        eprintln!(
            "xtask: setup: WARNING: missing Debian packages: {list}. The root-only tests, \
             the L4 demo and the nftables baseline need them; as root run \
             `apt-get update && apt-get install -y {list}`"
        );
        return Ok(format!("missing ({list}), not root: not installed"));
    }
    if !command_exists("apt-get") {
        bail!(
            "missing packages {list} and no `apt-get` to install them with: install them by hand"
        );
    }
    let noninteractive = [("DEBIAN_FRONTEND", "noninteractive")];
    run_visible("apt-get", ["update"], &noninteractive)
        .context("`apt-get update` failed (are Debian's package servers reachable?)")?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    run_visible("apt-get", args, &noninteractive)
        .with_context(|| format!("`apt-get install -y {list}` failed"))?;
    Ok(format!("installed {list}"))
}

/// Whether `dpkg-query` reports `pkg` as installed.
fn dpkg_installed(pkg: &str) -> bool {
    capture("dpkg-query", ["-W", "-f=${Status}", pkg])
        .is_ok_and(|s| s.trim_end().ends_with(" installed"))
}

/// Whether `cmd` is an executable file in one of PATH's directories (or the sbin
/// directories, which a non-root PATH may lack).
pub(crate) fn command_exists(cmd: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|dir| dir.join(cmd).is_file())
}

/// Whether the task runs with effective user id 0 (read from `/proc/self/status`, so
/// no `unsafe` call is needed).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command and returns its standard output; fails on a non-zero exit, with
/// its standard error in the message.
fn capture<I, S>(program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out: Output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run `{program}`: is it installed and in PATH?"))?;
    if !out.status.success() {
        bail!(
            "`{program}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command with its output shown (downloads and builds take a while, so the
/// user sees progress), with extra environment variables.
fn run_visible<I, S>(program: &str, args: I, env: &[(&str, &str)]) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let shown = std::iter::once(program.to_owned())
        .chain(
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("xtask: setup: running `{shown}`");
    let status = Command::new(program)
        .args(&args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("could not run `{program}`: is it installed and in PATH?"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nightly_in_rustup_toolchain_list() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n1.95.0-x86_64-unknown-linux-gnu\n";
        assert!(has_nightly(list), "a nightly-<host> line must count");
        assert!(!has_nightly("stable-x86_64-unknown-linux-gnu (default)\n"));
        assert!(
            !has_nightly("nightly-2026-05-19-x86_64-unknown-linux-gnu\n"),
            "a dated nightly is not what `+nightly` names"
        );
    }

    #[test]
    fn finds_rust_src_in_component_list() {
        assert!(has_rust_src("cargo-x86_64-unknown-linux-gnu\nrust-src\n"));
        assert!(!has_rust_src("rust-std-x86_64-unknown-linux-gnu\n"));
    }

    #[test]
    fn reads_bpf_linker_version() {
        assert_eq!(
            parse_bpf_linker_version("bpf-linker 0.13.0\n").as_deref(),
            Some("0.13.0")
        );
        assert_eq!(parse_bpf_linker_version("garbage"), None);
    }

    #[test]
    fn names_the_llvm_dylib() {
        assert_eq!(
            llvm_dylib("libLLVM-22-rust-1.97.0-nightly.so"),
            Some(("LLVM-22-rust-1.97.0-nightly".to_owned(), 22))
        );
        assert_eq!(llvm_dylib("libLLVM.so.22.1-rust-1.97.0-nightly"), None);
        assert_eq!(llvm_dylib("librustc_driver-b5a965480ee51f9a.so"), None);
    }
}
