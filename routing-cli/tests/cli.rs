//! The `routing` binary as a user runs it: exit statuses and output.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn routing(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routing"))
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const BOOKINFO: &str = "routing-core/tests/fixtures/import/istio/bookinfo.yaml";

#[test]
fn help_lists_every_command() {
    let o = routing(&["--help"]);
    assert!(o.status.success());
    for c in ["check", "explain", "simulate", "convert", "run"] {
        assert!(stdout(&o).contains(c), "`{c}` in the help:\n{}", stdout(&o));
    }
    let o = routing(&["check", "--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("--backend-map"), "{}", stdout(&o));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["check"],
        &["run", "--iface", "x"],
    ] {
        let o = routing(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("Usage: routing"));
    }
}

#[test]
fn check_and_explain_a_fixture() {
    let o = routing(&["check", BOOKINFO]);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = routing(&[
        "explain",
        BOOKINFO,
        "--request",
        "GET http://reviews/reviews/1 -H end-user:jason",
    ]);
    assert!(o.status.success(), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("matched  bookinfo/reviews rule 0 (jason)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("from     {BOOKINFO}:11:")),
        "the winner's source line: {out}"
    );
}

#[test]
fn check_fails_with_exit_1_on_an_invalid_file() {
    let dir = std::env::temp_dir().join(format!("routing-cli-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "routes: [{name: r, rules: [{backends: [{name: nowhere}]}]}]\n",
    )
    .unwrap();
    let o = routing(&["check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("nowhere"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(not(feature = "xdp"))]
#[test]
fn run_without_the_xdp_feature_says_how_to_get_it() {
    let o = routing(&["run", "--iface", "lo", "--config", "l4.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--features xdp"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
