//! `cargo xtask fuzz [--secs S] [TARGET…]`: runs every cargo-fuzz target (or the
//! ones named) for a bounded time each, seeded from the committed seeds and the
//! importer test fixtures. Installs `cargo-fuzz` ([`CARGO_FUZZ_VERSION`]) when it is
//! missing; needs the nightly toolchain that `setup` installs.
//!
//! A target fails the task when libFuzzer reports a crash, a panic, a leak, or an
//! input that runs longer than 10 s (`-timeout=10`: "never hangs"). The failing
//! input is left in `fuzz/artifacts/<target>/`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The cargo-fuzz release installed when none is present.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Each target and the read-only seed directories (relative to `fuzz/`) it starts
/// from, besides its own working corpus `corpus/<target>`.
pub(crate) const TARGETS: &[(&str, &[&str])] = &[
    ("config_yaml", &["seeds/config_yaml"]),
    ("config_json", &["seeds/config_json"]),
    ("config_toml", &["seeds/config_toml"]),
    ("route_request", &[]),
    ("maglev_build", &[]),
    (
        "import_gateway",
        &["../routing-core/tests/fixtures/import/gateway"],
    ),
    (
        "import_istio",
        &["../routing-core/tests/fixtures/import/istio"],
    ),
    ("import_alb", &["../routing-core/tests/fixtures/import/alb"]),
];

/// `fuzz`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// Seconds per target.
    pub(crate) secs: u64,
    /// Targets to run (all when empty).
    pub(crate) targets: Vec<String>,
}

/// Runs the targets one after the other.
pub(crate) fn run(opts: &Options, root: &Path) -> Result<()> {
    let fuzz_dir = root.join("fuzz");
    ensure_cargo_fuzz()?;
    let chosen: Vec<&(&str, &[&str])> = TARGETS
        .iter()
        .filter(|(t, _)| opts.targets.is_empty() || opts.targets.iter().any(|o| o == t))
        .collect();
    for o in &opts.targets {
        if !TARGETS.iter().any(|(t, _)| t == o) {
            bail!("unknown fuzz target `{o}`");
        }
    }
    let mut summary = Vec::new();
    for (target, seeds) in chosen {
        let corpus = format!("corpus/{target}");
        std::fs::create_dir_all(fuzz_dir.join(&corpus))?;
        let mut args: Vec<String> = vec![
            "+nightly".into(),
            "fuzz".into(),
            "run".into(),
            (*target).into(),
            corpus,
        ];
        args.extend(seeds.iter().map(|s| (*s).to_owned()));
        args.push("--".into());
        args.push(format!("-max_total_time={}", opts.secs));
        args.push("-timeout=10".into());
        if target.starts_with("config_") {
            args.push("-dict=dicts/config.dict".into());
        }
        eprintln!("xtask: fuzz: {target} for {} s", opts.secs);
        let started = Instant::now();
        let out = Command::new("cargo")
            .args(&args)
            .current_dir(&fuzz_dir)
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .context("could not run `cargo +nightly fuzz`")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        if !out.status.success() {
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            bail!("fuzz target `{target}` failed ({}):\n{tail}", out.status);
        }
        let done = lines
            .iter()
            .rev()
            .find(|l| l.starts_with("Done "))
            .map_or("(no summary line)", |l| l.trim());
        eprintln!(
            "xtask: fuzz: {target}: {done} ({:.0} s with the build)",
            started.elapsed().as_secs_f64()
        );
        summary.push(format!("{target}: {done}"));
    }
    println!("fuzz: {} target(s) ran clean", summary.len());
    for s in summary {
        println!("  {s}");
    }
    Ok(())
}

/// Installs cargo-fuzz unless `cargo fuzz --version` works.
fn ensure_cargo_fuzz() -> Result<()> {
    let ok = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Ok(());
    }
    eprintln!("xtask: fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    let status = Command::new("cargo")
        .args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ])
        .status()
        .context("could not run `cargo install cargo-fuzz`")?;
    if !status.success() {
        bail!("`cargo install cargo-fuzz --locked --version {CARGO_FUZZ_VERSION}` failed");
    }
    Ok(())
}
