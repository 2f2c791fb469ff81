//! Builds the XDP program (`ebpf/`, its own workspace) with nightly for
//! `bpfel-unknown-none` through `aya-build`; `src/lib.rs` embeds the object.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const SETUP: &str = "run `cargo xtask setup` (installs the nightly toolchain's rust-src and the pinned bpf-linker 0.13.0)";

fn fail(what: &str) -> ExitCode {
    eprintln!("error: routing-ebpf cannot build its XDP program: {what}; {SETUP}.");
    ExitCode::FAILURE
}

fn nightly_sysroot() -> Option<PathBuf> {
    let out = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
}

fn main() -> ExitCode {
    println!("cargo:rerun-if-env-changed=PATH");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let ebpf_dir = Path::new(&manifest).join("ebpf");

    let Some(sysroot) = nightly_sysroot() else {
        return fail("`rustup run nightly rustc` failed (no nightly toolchain)");
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return fail("the nightly toolchain has no `rust-src` component");
    }
    match Command::new("bpf-linker").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return fail("`bpf-linker` is not on PATH"),
    }

    // aya-build runs `cargo build --package routing-ebpf-xdp` in the current
    // directory: run it inside the program's own workspace.
    if let Err(e) = std::env::set_current_dir(&ebpf_dir) {
        return fail(&format!("cannot enter {}: {e}", ebpf_dir.display()));
    }
    for sub in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "../common/src",
        "../common/Cargo.toml",
        "../../routing-hash/src",
        "../../routing-hash/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", ebpf_dir.join(sub).display());
    }
    // Keep the nested cargo's progress lines out of this build's warnings.
    std::env::set_var("CARGO_TERM_QUIET", "true");
    let root = ebpf_dir.join("src");
    let package = aya_build::Package {
        name: "routing-ebpf-xdp",
        root_dir: root.to_str().unwrap_or("ebpf/src"),
        ..Default::default()
    };
    match aya_build::build_ebpf([package], aya_build::Toolchain::Nightly) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: building the XDP program failed: {e:#}");
            eprintln!("(if the toolchain is the problem: {SETUP})");
            ExitCode::FAILURE
        }
    }
}
