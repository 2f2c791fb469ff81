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
    // Nothing routable (only a DestinationRule): an error, not an empty success.
    let dr = dir.join("dr.yaml");
    std::fs::write(
        &dr,
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec: {host: reviews}\n",
    )
    .unwrap();
    let o = routing(&["check", dr.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("nothing routable"), "{}", stdout(&o));
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

const EFFECTS: &str = "routing-cli/tests/fixtures/effects.yaml";
const ALB_STICKY: &str = "routing-cli/tests/fixtures/alb-sticky.json";

/// `routing explain --json …`'s `effect`.
fn effect(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["explain", "--json"];
    a.extend_from_slice(args);
    let o = routing(&a);
    assert!(o.status.success(), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["effect"].clone()
}

#[test]
fn explain_shows_a_redirect_location_computed_from_the_request() {
    let e = effect(&[
        EFFECTS,
        "--request",
        "GET http://shop.example.com:8080/old/a?q=1",
    ]);
    // The scheme changes, so the request's port goes; the prefix is replaced; the
    // query is kept.
    assert_eq!(
        e["redirect"],
        serde_json::json!({"status": 301, "location": "https://shop.example.com/new/a?q=1"})
    );
    assert!(e["forwarded"].is_null(), "{e}");
    let o = routing(&[
        "explain",
        EFFECTS,
        "--request",
        "GET http://shop.example.com/old",
    ]);
    assert!(
        stdout(&o).contains("redirect 301 Location: https://shop.example.com/new\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn explain_shows_everything_a_forwarding_rule_does() {
    let e = effect(&[
        EFFECTS,
        "--request",
        "POST http://shop.example.com/api/cart?q=1 -H x-debug:1 -H cookie:sticky=abc",
    ]);
    assert_eq!(
        e["forwarded"]["request_line"], "POST /v2/cart?q=1 HTTP/1.1",
        "{e}"
    );
    assert_eq!(e["forwarded"]["host"], "api.internal");
    assert_eq!(
        e["forwarded"]["headers"],
        serde_json::json!([
            ["host", "api.internal"],
            ["cookie", "sticky=abc"],
            ["x-env", "prod"],
            ["x-picked", "v1"]
        ]),
        "x-debug removed, x-env set, then v1's own filter"
    );
    assert_eq!(
        e["backend_filters"]["response_headers"],
        serde_json::json!({"set": [["x-version", "v1"]], "add": [], "remove": []})
    );
    assert_eq!(
        e["request_headers"],
        serde_json::json!({"set": [["x-env", "prod"]], "add": [], "remove": ["x-debug"]})
    );
    assert_eq!(
        e["response_headers"],
        serde_json::json!({"set": [], "add": [["x-served-by", "shop"]], "remove": []})
    );
    assert_eq!(
        e["mirrors"],
        serde_json::json!([{"backend": "shadow", "percent": 25.0}, {"backend": "shadow2", "percent": 5.0}])
    );
    assert_eq!(
        e["fault"],
        serde_json::json!({"delay": {"ms": 50, "percent": 10.0}, "abort": {"status": 503, "percent": 1.0}, "applies": true})
    );
    assert_eq!(
        e["timeouts"],
        serde_json::json!({"request_ms": 3000, "request_is_default": false, "per_try_ms": 1000, "response_idle_ms": 60000})
    );
    assert_eq!(
        e["cors"]["origin"],
        serde_json::Value::Null,
        "no Origin sent"
    );
    assert_eq!(e["retry"]["attempts"], 2);
    assert_eq!(
        e["retry"]["on"],
        serde_json::json!(["5xx", "connect-failure"])
    );
    assert_eq!(
        e["retry"]["method_retried_after_send"], false,
        "POST is retried only after a connect failure"
    );
    // The cookie's backend is unknown without the layer's key; v2 has weight 0.
    assert_eq!(e["stickiness"]["kind"], "cookie");
    assert_eq!(e["stickiness"]["request_has_cookie"], true);
    assert_eq!(e["stickiness"]["pins"], serde_json::Value::Null);
    assert_eq!(e["backend"]["name"], "v1");
    let e = effect(&[
        EFFECTS,
        "--cookie-backend",
        "v2",
        "--request",
        "GET http://shop.example.com/api/x",
    ]);
    assert_eq!(e["stickiness"]["pins"], false, "v2 is drained: {e}");
    assert_eq!(e["backend"]["name"], "v1");
    // A consistent hash: the same key, the same backend; a fault limited by headers.
    let e = effect(&[
        EFFECTS,
        "--request",
        "GET http://shop.example.com/users/1 -H x-user:alice",
    ]);
    assert_eq!(e["stickiness"]["key_present"], true);
    let again = effect(&[
        EFFECTS,
        "--request",
        "GET http://shop.example.com/users/2 -H x-user:alice",
    ]);
    assert_eq!(e["backend"]["name"], again["backend"]["name"]);
    assert_eq!(e["fault"]["applies"], false);
    let e = effect(&[
        EFFECTS,
        "--request",
        "GET http://shop.example.com/users/1 -H x-chaos:on",
    ]);
    assert_eq!(e["fault"]["applies"], true);
    assert_eq!(e["stickiness"]["key_present"], false);
    // A rule without timeouts gets the layer's defaults, reported as such.
    assert_eq!(
        e["timeouts"],
        serde_json::json!({"request_ms": 15000, "request_is_default": true, "per_try_ms": null, "response_idle_ms": 60000})
    );
}

#[test]
fn explain_shows_cors_and_a_backend_that_answers_for_itself() {
    let e = effect(&[
        EFFECTS,
        "--request",
        "OPTIONS http://shop.example.com/api/x -H origin:https://app.example.com -H access-control-request-method:POST",
    ]);
    assert_eq!(e["cors"]["preflight"], true, "{e}");
    // The layer answers a preflight itself: nothing is forwarded.
    assert_eq!(e["preflight_answer"]["status"], 204, "{e}");
    assert!(e["forwarded"].is_null(), "{e}");
    assert_eq!(e["cors"]["allowed"], true);
    let headers = e["cors"]["headers"].as_array().unwrap();
    assert!(
        headers.contains(&serde_json::json!([
            "access-control-allow-origin",
            "https://app.example.com"
        ])),
        "{headers:?}"
    );
    assert!(
        headers.contains(&serde_json::json!(["access-control-max-age", "600"])),
        "{headers:?}"
    );
    let e = effect(&[
        EFFECTS,
        "--request",
        "GET http://shop.example.com/api/x -H origin:http://app.example.com",
    ]);
    assert_eq!(e["cors"]["allowed"], false, "http is not https: {e}");
    assert_eq!(e["cors"]["headers"], serde_json::json!([]));

    // v1's filter in the `legacy` rule redirects: nothing is forwarded.
    let e = effect(&[
        EFFECTS,
        "--request",
        "GET http://shop.example.com/legacy/a?b=1",
    ]);
    assert_eq!(
        e["redirect"],
        serde_json::json!({"status": 308, "location": "http://legacy.example.com/legacy/a?b=1", "by_backend": "v1"})
    );
    assert!(e["forwarded"].is_null(), "{e}");
    let o = routing(&[
        "explain",
        EFFECTS,
        "--request",
        "GET http://shop.example.com/legacy/a",
    ]);
    assert!(
        stdout(&o)
            .contains("308 Location: http://legacy.example.com/legacy/a (backend v1's filter)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn alb_stickiness_semantics_are_an_option() {
    let o = routing(&["check", ALB_STICKY]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("cookies beat weights"),
        "{}",
        stdout(&o)
    );
    let o = routing(&["check", "--alb-stickiness", "alb", ALB_STICKY]);
    assert!(!stdout(&o).contains("warning"), "{}", stdout(&o));
    let req = "GET http://pay.example.com/x";
    let e = effect(&[
        ALB_STICKY,
        "--cookie-backend",
        "pay-green",
        "--request",
        req,
    ]);
    assert_eq!(e["stickiness"]["pins"], false, "{e}");
    assert_eq!(e["backend"]["name"], "pay-blue");
    let e = effect(&[
        ALB_STICKY,
        "--alb-stickiness=alb",
        "--cookie-backend",
        "pay-green",
        "--request",
        req,
    ]);
    assert_eq!(e["stickiness"]["pins"], true, "{e}");
    assert_eq!(e["stickiness"]["keeps_sessions_at_zero_weight"], true);
    assert_eq!(e["backend"]["name"], "pay-green");
    assert_eq!(e["backend"]["by"], "the stickiness cookie");
}

#[test]
fn check_warns_on_unreachable_rules() {
    let file = "routing-cli/tests/fixtures/alb-shadowed.json";
    let o = routing(&["check", "--json", file]);
    assert!(o.status.success(), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{v}");
    assert_eq!(
        w[0]["message"],
        "rule 1 (`priority-2`) of route `web/b2c3d4e5f6071829` is unreachable: every request it matches is taken first by rule 0 (`priority-1`)"
    );
    assert_eq!(w[0]["at"]["path"], "Rules[1]");
    assert_eq!(w[0]["at"]["line"], 10);
    // --deny-warnings: an error, exit 1.
    let o = routing(&["check", "--deny-warnings", file]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("error: "), "{}", stdout(&o));
    // The fixtures without shadowing stay clean.
    let o = routing(&["check", "--json", BOOKINFO]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!v["warnings"].to_string().contains("unreachable"), "{v}");
}

/// Splits a README command line into words: single quotes group, `#` starts a
/// comment, `$F` is the fixtures directory.
fn words(line: &str, fixtures: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            '#' if !quoted => break,
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur).replace("$F", fixtures));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur.replace("$F", fixtures));
    }
    out
}

/// The README's CLI section runs from a clean clone: every `routing …` line of its
/// `sh` block succeeds, and the `text` block under it is what `explain` prints.
#[test]
fn the_readme_cli_examples_run() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split_once("**See what the library will do before you ship**")
        .expect("the README's CLI section")
        .1;
    let sh = section
        .split_once("```sh\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let text = section
        .split_once("```text\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let fixtures = "routing-core/tests/fixtures/import";
    let dir = std::env::temp_dir().join(format!("routing-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let next = dir.join("next.json");
    // The `sed` line: the blue/green shift to 50/50.
    assert!(sh.contains("sed 's/\"Weight\": 80/\"Weight\": 50/; s/\"Weight\": 20/\"Weight\": 50/'"));
    let before = std::fs::read_to_string(root.join(fixtures).join("alb/blue-green.json")).unwrap();
    std::fs::write(
        &next,
        before
            .replace("\"Weight\": 80", "\"Weight\": 50")
            .replace("\"Weight\": 20", "\"Weight\": 50"),
    )
    .unwrap();
    let mut ran = 0;
    let mut explained = None;
    for line in sh.lines().filter(|l| l.starts_with("routing ")) {
        let w: Vec<String> = words(line, fixtures)
            .into_iter()
            .map(|w| w.replace("/tmp/next.json", next.to_str().unwrap()))
            .collect();
        let args: Vec<&str> = w[1..].iter().map(String::as_str).collect();
        let o = routing(&args);
        assert!(o.status.success(), "{line}: {}", stdout(&o));
        if args[0] == "explain" {
            explained = Some(stdout(&o));
        }
        ran += 1;
    }
    assert_eq!(ran, 4, "check, explain, simulate, convert");
    assert_eq!(
        explained.as_deref(),
        Some(text),
        "the README's explain output"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
