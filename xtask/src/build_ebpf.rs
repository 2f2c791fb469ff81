//! `cargo xtask build-ebpf`: compiles the XDP program to a BPF object.
//!
//! The program is the `#![no_std]` crate under `routing-ebpf/` whose manifest depends
//! on `aya-ebpf` (found by looking, so the task follows the crate if it moves; today
//! `routing-ebpf/ebpf`, package `routing-ebpf-xdp`, its own workspace). `routing-ebpf`'s
//! `build.rs` builds and embeds it through `aya-build`; this task runs the same
//! command `aya-build` 0.2.0 runs, inside that crate:
//!
//! ```text
//! rustup run nightly cargo build --package routing-ebpf-xdp --bins --release \
//!     --target bpfel-unknown-none -Z build-std=core
//! # with CARGO_ENCODED_RUSTFLAGS: --cfg=bpf_target_arch="x86_64" -Cdebuginfo=2 -Clink-arg=--btf
//! ```
//!
//! after [`crate::setup`] made sure nightly, `rust-src` and `bpf-linker` are there.
//! It writes to the crate's own `target/` (not `build.rs`'s `OUT_DIR`), shows the
//! compiler's messages as they come (`aya-build` turns them into build-script
//! warnings), and prints the object's path, taken from cargo's JSON messages. Use it
//! to iterate on the program or to inspect the object (`llvm-objdump`, `bpftool`);
//! `cargo build -p routing-ebpf` is what embeds it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The target triple of the eBPF program.
pub(crate) const BPF_TARGET: &str = "bpfel-unknown-none";

/// Builds the eBPF program and returns the paths of the objects cargo produced.
pub(crate) fn run() -> Result<Vec<PathBuf>> {
    crate::setup::run()?;
    let root = crate::workspace_root();
    let krate = find_ebpf_crate(&root)?;
    let started = Instant::now();
    let package = package_name(&krate)?;
    let args = [
        "run",
        "nightly",
        "cargo",
        "build",
        "--package",
        &package,
        "--bins",
        "--release",
        "--target",
        BPF_TARGET,
        "-Z",
        "build-std=core",
        "--message-format=json-render-diagnostics",
    ];
    // aya-build's flags: the architecture aya-ebpf compiles its helpers for, BTF.
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
    ]
    .join("\x1f");
    eprintln!(
        "xtask: build-ebpf: running `rustup {}` in {}",
        args[..args.len() - 1].join(" "),
        krate.display()
    );
    let out = Command::new("rustup")
        .args(args)
        .current_dir(&krate)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        // The stable cargo behind `cargo xtask` exports variables that would pin the
        // nested build to the stable toolchain or its rustc.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("could not run `rustup run nightly cargo build`")?;
    if !out.status.success() {
        bail!(
            "building the eBPF program in {} failed ({}); `cargo xtask setup` installs \
             what it needs",
            krate.display(),
            out.status
        );
    }
    let objects = artifacts(&String::from_utf8_lossy(&out.stdout));
    if objects.is_empty() {
        bail!("cargo built {} but named no object file", krate.display());
    }
    for o in &objects {
        let size = std::fs::metadata(o).map(|m| m.len()).unwrap_or(0);
        println!("{} ({size} bytes)", o.display());
    }
    eprintln!(
        "xtask: build-ebpf: built in {:.1} s (the same build `routing-ebpf`'s build.rs runs into its OUT_DIR and embeds)",
        started.elapsed().as_secs_f64()
    );
    Ok(objects)
}

/// The eBPF crate: a directory under `routing-ebpf/` (one level or two deep) whose
/// `Cargo.toml` depends on `aya-ebpf`.
fn find_ebpf_crate(root: &Path) -> Result<PathBuf> {
    let base = root.join("routing-ebpf");
    let mut dirs = vec![base.clone()];
    for _depth in 0..2 {
        let parents = dirs.clone();
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                let path = e.path();
                let name = e.file_name();
                let skip =
                    name == "target" || name == "src" || name.to_string_lossy().starts_with('.');
                if path.is_dir() && !skip && !dirs.contains(&path) {
                    dirs.push(path);
                }
            }
        }
    }
    let mut found: Vec<PathBuf> = dirs
        .into_iter()
        .filter(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|m| is_ebpf_manifest(&m))
        })
        .collect();
    found.sort();
    match found.len() {
        0 => bail!(
            "no eBPF crate under {} (a Cargo.toml that depends on `aya-ebpf`)",
            base.display()
        ),
        1 => Ok(found.remove(0)),
        _ => bail!(
            "several eBPF crates under {}: {found:?}; build-ebpf builds exactly one",
            base.display()
        ),
    }
}

/// The `name` of the `[package]` in `krate`'s manifest.
fn package_name(krate: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(krate.join("Cargo.toml"))?;
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if let Some(v) = line.strip_prefix("name").map(str::trim_start) {
            if let (true, Some(v)) = (in_package, v.strip_prefix('=')) {
                return Ok(v.trim().trim_matches('"').to_owned());
            }
        }
    }
    bail!(
        "{} has no [package] name",
        krate.join("Cargo.toml").display()
    )
}

/// Whether a manifest is the eBPF program's: it depends on `aya-ebpf` (and is not the
/// userspace crate, which depends on `aya`).
fn is_ebpf_manifest(manifest: &str) -> bool {
    manifest.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("aya-ebpf ") || l.starts_with("aya-ebpf=") || l.starts_with("aya-ebpf.")
    })
}

/// The object files named by cargo's `compiler-artifact` JSON messages for the BPF
/// target (binaries and, for a `cdylib`-style layout, libraries).
fn artifacts(json_lines: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in json_lines.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(exe) = v["executable"].as_str() {
            out.push(PathBuf::from(exe));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_ebpf_manifest() {
        assert!(is_ebpf_manifest(
            "[dependencies]\naya-ebpf = \"0.2\"\naya-log-ebpf = \"0.2\"\n"
        ));
        assert!(is_ebpf_manifest(
            "[dependencies]\naya-ebpf.workspace = true\n"
        ));
        assert!(!is_ebpf_manifest("[dependencies]\naya = \"0.14\"\n"));
    }

    #[test]
    fn reads_the_package_name() {
        let dir = std::env::temp_dir().join(format!("xtask-pkg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("Cargo.toml"),
            "[package]\nname = \"prog\"\n[[bin]]\nname = \"other\"\n",
        )
        .expect("write");
        assert_eq!(package_name(&dir).ok().as_deref(), Some("prog"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_the_executable_from_cargo_json() {
        let json = r#"{"reason":"compiler-artifact","executable":"/t/bpfel-unknown-none/release/prog"}
{"reason":"compiler-artifact","executable":null}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            artifacts(json),
            vec![PathBuf::from("/t/bpfel-unknown-none/release/prog")]
        );
    }
}
