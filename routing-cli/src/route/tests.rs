//! Unit tests of the route commands.
#![allow(clippy::unwrap_used)]

use super::*;
use routing_core::RouteRequest;

const CANARY: &str = "\
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    hostnames: [shop.example.com]
    rules:
      - name: testers
        matches: [{headers: [{name: x-canary, exact: \"true\"}]}]
        backends: [{name: v2}]
      - name: users
        matches: [{path: {prefix: /api}}]
        backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
        load_balancer: {consistent_hash: {header: x-user}}
      - backends: [{name: v1, weight: 50}, {name: v2, weight: 50}]
";

/// Writes `files` into a fresh directory; returns their paths.
fn write(tag: &str, files: &[(&str, &str)]) -> Vec<PathBuf> {
    let dir = std::env::temp_dir().join(format!("routing-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    files
        .iter()
        .map(|(n, t)| {
            let p = dir.join(n);
            std::fs::write(&p, t).unwrap();
            p
        })
        .collect()
}

fn opts(args: &[&str], files: &[PathBuf]) -> Options {
    let mut a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    a.extend(files.iter().map(|f| f.display().to_string()));
    parse(&a).unwrap()
}

#[test]
fn parses_arguments() {
    let o = parse(&[
        "simulate".into(),
        "a.yaml".into(),
        "--requests=10".into(),
        "--sticky-keys".into(),
        "5".into(),
        "--weights-change".into(),
        "b.yaml".into(),
        "--json".into(),
    ])
    .unwrap();
    assert_eq!((o.count, o.sticky_keys, o.json), (10, 5, true));
    assert_eq!(o.weights_change, [PathBuf::from("b.yaml")]);
    assert!(parse(&["explain".into(), "a.yaml".into()])
        .unwrap_err()
        .contains("--request"));
    assert!(parse(&["convert".into(), "a.yaml".into()])
        .unwrap_err()
        .contains("--to native"));
    assert!(parse(&["convert".into(), "a".into(), "--to".into(), "istio".into()]).is_err());
    assert!(parse(&["check".into()]).unwrap_err().contains("FILE"));
    assert!(parse(&[
        "simulate".into(),
        "a".into(),
        "--requests".into(),
        "0".into()
    ])
    .is_err());
    assert!(parse(&["frobnicate".into(), "a".into()]).is_err());
}

#[test]
fn parses_requests() {
    let r = parse_request(
        "POST https://a.test/x?y=1 -H x-a:1 -H user-agent: Mozilla 5.0",
        None,
    )
    .unwrap();
    assert_eq!(r.method(), &http::Method::POST);
    assert_eq!(r.headers()["user-agent"], "Mozilla 5.0");
    assert_eq!(r.headers()["x-a"], "1");
    let r = parse_request("http://a.test/", Some("192.0.2.1".parse().unwrap())).unwrap();
    assert_eq!(r.method(), &http::Method::GET);
    assert!(parse_request("GET http://a/ x-a:1", None).is_err());
    assert!(parse_request("GET http://a/ -H nocolon", None).is_err());
    assert!(parse_request("", None).is_err());
}

#[test]
fn check_reports_errors_with_lines_and_fails() {
    let bad = "backends: [{name: a}]\nroutes:\n  - name: r\n    rules:\n      - backends: [{name: a, weight: 2000000}]\n";
    let files = write("check", &[("bad.yaml", bad), ("good.yaml", CANARY)]);
    let (out, ok) = run(&opts(&["check"], &files[..1])).unwrap();
    assert!(!ok);
    assert!(out.contains("bad.yaml:5"), "{out}");
    assert!(
        out.contains("routes[0].rules[0].backends[0].weight"),
        "{out}"
    );
    let (out, ok) = run(&opts(&["check", "--json"], &files[..1])).unwrap();
    assert!(!ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["at"]["line"], 5);
    let (out, ok) = run(&opts(&["check"], &files[1..])).unwrap();
    assert!(ok, "{out}");
    assert!(
        out.starts_with("ok: 1 route, 3 rules, 2 backends (read: native)"),
        "{out}"
    );
}

#[test]
fn explain_names_the_winner_the_losers_and_the_sticky_backend() {
    let files = write("explain", &[("c.yaml", CANARY)]);
    let mut o = opts(
        &[
            "explain",
            "--json",
            "--request",
            "GET https://shop.example.com/api/cart -H x-user:alice -H x-canary:true",
        ],
        &files,
    );
    let (out, ok) = run(&o).unwrap();
    assert!(ok);
    let v: Value = serde_json::from_str(&out).unwrap();
    // More header conditions do not beat a longer path prefix: /api wins.
    assert_eq!(v["rule_name"], "users", "{out}");
    assert_eq!(v["lost"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(v["lost"][0]["lost_on"], "a more specific path won");
    assert_eq!(v["split"][0]["weight"], 90);
    let sticky = v["sticky_backend"].as_str().unwrap().to_owned();
    // The same key always lands on the same backend.
    for _ in 0..5 {
        let (out, _) = run(&o).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["sticky_backend"], sticky.as_str());
    }
    o.json = false;
    let (text, _) = run(&o).unwrap();
    assert!(text.contains("matched  shop rule 1 (users)"), "{text}");
    assert!(text.contains(&format!("→ {sticky}")), "{text}");
    o.requests = vec!["GET https://other.example.com/".into()];
    let (text, ok) = run(&o).unwrap();
    assert!(ok && text.starts_with("no rule matches"), "{text}");
}

#[test]
fn explain_shows_each_versions_endpoint_pool_and_the_keys_pod() {
    let yaml = "\
backends:
  - name: v1
    endpoints: [{address: '10.0.0.1:80', zone: z1}, {address: '10.0.0.2:80', state: draining}]
  - name: v2
routes:
  - name: shop
    rules:
      - backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
        load_balancer: {consistent_hash: {header: x-user}}
";
    let files = write("explain-pool", &[("c.yaml", yaml)]);
    let mut o = opts(
        &[
            "explain",
            "--json",
            "--request",
            "GET http://shop/ -H x-user:alice",
        ],
        &files,
    );
    let (out, ok) = run(&o).unwrap();
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let pools = v["endpoints"].as_array().unwrap();
    assert_eq!(pools.len(), 1, "only v1 has a pool: {out}");
    assert_eq!(pools[0]["backend"], "v1");
    assert_eq!(pools[0]["by"], "maglev on the rule's hash key");
    assert_eq!(pools[0]["endpoints"][1]["state"], "draining");
    assert_eq!(pools[0]["endpoints"][1]["takes_new"], false);
    // The only endpoint taking new requests is the one the key picks.
    assert_eq!(pools[0]["key_picks"], "10.0.0.1:80");
    o.json = false;
    let (text, _) = run(&o).unwrap();
    assert!(
        text.contains("pool     v1: 2 endpoints, by maglev on the rule's hash key; this request's key picks 10.0.0.1:80"),
        "{text}"
    );
    assert!(text.contains("10.0.0.2:80 draining weight 1"), "{text}");
}

/// `simulate --json` of `before` (20 000 picks) with `--weights-change after`
/// (20 000 sticky keys).
fn simulate_change(tag: &str, before: (&str, &str), after: (&str, &str)) -> Value {
    let files = write(tag, &[before, after]);
    let mut o = opts(
        &[
            "simulate",
            "--json",
            "--requests",
            "20000",
            "--sticky-keys",
            "20000",
        ],
        &files[..1],
    );
    o.weights_change = vec![files[1].clone()];
    let (out, ok) = run(&o).unwrap();
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn simulate_splits_and_measures_sticky_churn_against_the_minimum() {
    let after = CANARY
        .replace("weight: 90", "weight: 50")
        .replace("weight: 10}", "weight: 50}");
    let v = simulate_change("simulate", ("a.yaml", CANARY), ("b.yaml", &after));
    let users = &v["runs"][1];
    assert!(users["rule"].as_str().unwrap().contains("users"));
    for b in users["backends"].as_array().unwrap() {
        assert!(b["sigma"].as_f64().unwrap().abs() < 5.0, "{b}");
    }
    let churn = &users["sticky_churn"];
    let (moved, min) = (
        churn["moved"].as_f64().unwrap(),
        churn["minimum"].as_f64().unwrap(),
    );
    assert!((min - 0.40).abs() < 1e-9, "{churn}");
    // Maglev moves close to the minimum: 90/10 → 50/50 must move 40 %.
    assert!(moved >= min - 0.02 && moved <= min + 0.03, "{churn}");
    // An unchanged rule moves nothing.
    assert_eq!(v["runs"][2]["sticky_churn"]["moved"], 0.0);
}

#[test]
fn convert_prints_native_yaml_that_reads_back() {
    let files = write("convert", &[("c.yaml", CANARY)]);
    let (out, ok) = run(&opts(&["convert", "--to", "native"], &files)).unwrap();
    assert!(ok);
    let cfg = routing_core::Config::from_yaml(&out).unwrap();
    assert_eq!(cfg, routing_core::Config::from_yaml(CANARY).unwrap());
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../routing-core/tests/fixtures/import")
        .join(rel)
}

#[test]
fn fail_closed_imports_and_normalised_explain() {
    // An ALB rule that authenticates: refused (exit 1) unless --allow-lossy;
    // --deny-warnings turns its warning into an error again.
    let files = [fixture("alb/authenticated.json")];
    let (out, ok) = run(&opts(&["check"], &files)).unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("authenticate-oidc"), "{out}");
    let (out, ok) = run(&opts(&["check", "--allow-lossy"], &files)).unwrap();
    assert!(ok, "{out}");
    let (out, ok) = run(&opts(
        &["check", "--allow-lossy", "--deny-warnings"],
        &files,
    ))
    .unwrap();
    assert!(!ok, "{out}");
    // Istio: `ratings` is bound to bookinfo-gateway; standing for it brings it in.
    let files = [fixture("istio/bookinfo.yaml")];
    let req = "GET http://ratings.bookinfo.svc.cluster.local/ratings/1";
    let (out, _) = run(&opts(&["explain", "--json", "--request", req], &files)).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["matched"], false, "{v}");
    let o = opts(
        &[
            "explain",
            "--json",
            "--gateway",
            "bookinfo/bookinfo-gateway",
            "--request",
            req,
        ],
        &files,
    );
    let v: Value = serde_json::from_str(&run(&o).unwrap().0).unwrap();
    assert_eq!(v["rule_name"], "legacy", "{v}");
    // explain matches the normalised path, as the layer does.
    let files = write("norm", &[("canary.yaml", CANARY)]);
    let o = opts(
        &[
            "explain",
            "--json",
            "--request",
            "GET http://shop.example.com/x/../%61pi/cart",
        ],
        &files,
    );
    let v: Value = serde_json::from_str(&run(&o).unwrap().0).unwrap();
    assert_eq!(v["rule_name"], "users", "{v}");
    let o = opts(
        &[
            "explain",
            "--request",
            "GET http://shop.example.com/api%2fcart",
        ],
        &files,
    );
    assert!(run(&o).unwrap().0.contains("400"));
}

#[test]
fn istio_manifests_are_checked_and_explained_with_their_source_lines() {
    let files = [fixture("istio/bookinfo.yaml")];
    let (out, ok) = run(&opts(&["check", "--json"], &files)).unwrap();
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kinds"], json!(["VirtualService", "DestinationRule"]));
    let gateways = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["at"]["path"] == "spec.gateways")
        .expect("a warning for `gateways`");
    assert!(gateways["at"]["line"].as_u64().is_some());
    // Istio: the first matching http route wins; `end-user: jason` goes to v2.
    let o = opts(
        &[
            "explain",
            "--json",
            "--request",
            "GET http://reviews/x -H end-user:jason",
        ],
        &files,
    );
    let v: Value = serde_json::from_str(&run(&o).unwrap().0).unwrap();
    assert_eq!(v["rule_name"], "jason");
    assert_eq!(v["split"][0]["backend"], "reviews/v2");
    assert!(
        v["from"].as_str().unwrap().contains("bookinfo.yaml:"),
        "{v}"
    );
    let o = opts(
        &["explain", "--json", "--request", "GET http://reviews/x"],
        &files,
    );
    let v: Value = serde_json::from_str(&run(&o).unwrap().0).unwrap();
    assert_eq!(v["split"][0]["backend"], "reviews/v1");
    // convert: the native YAML validates and routes the same way.
    let (yaml, ok) = run(&opts(&["convert", "--to", "native"], &files)).unwrap();
    assert!(ok);
    let t = RouteTable::new(routing_core::Config::from_yaml(&yaml).unwrap()).unwrap();
    let d = t
        .decide(
            &RequestInfo::get("http://reviews/x").header("end-user", "jason"),
            &mut StdRng::seed_from_u64(1),
        )
        .unwrap();
    assert_eq!(d.backend().unwrap().name(), "reviews/v2");
}

#[test]
fn mixed_kinds_check_together_and_errors_fail_with_their_source_line() {
    let files = [
        fixture("gateway/store.yaml"),
        fixture("istio/canary.yaml"),
        fixture("alb/path-host.json"),
    ];
    let (out, ok) = run(&opts(&["check", "--json"], &files)).unwrap();
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for k in ["HTTPRoute", "VirtualService", "ALB rules"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let files = [fixture("gateway/unknown-field.yaml")];
    let (out, ok) = run(&opts(&["check"], &files)).unwrap();
    assert!(!ok);
    assert!(out.contains("unknown-field.yaml:"), "{out}");
    assert!(out.contains("spec.rules[0].matchez"), "{out}");
}

#[test]
fn alb_blue_green_shift_moves_the_minimum_of_sticky_keys() {
    let before = std::fs::read_to_string(fixture("alb/blue-green.json")).unwrap();
    assert!(before.contains("\"Weight\": 80") && before.contains("\"Weight\": 20"));
    let after = before
        .replace("\"Weight\": 80", "\"Weight\": 50")
        .replace("\"Weight\": 20", "\"Weight\": 50");
    let v = simulate_change("alb", ("before.json", &before), ("after.json", &after));
    let run0 = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["backends"].as_array().unwrap().len() == 3)
        .expect("the weighted rule");
    let blue = run0["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "payments-blue")
        .unwrap();
    assert!((blue["expected"].as_f64().unwrap() - 0.8).abs() < 1e-9);
    assert!(blue["sigma"].as_f64().unwrap().abs() < 5.0, "{blue}");
    let churn = &run0["sticky_churn"];
    let (moved, min) = (
        churn["moved"].as_f64().unwrap(),
        churn["minimum"].as_f64().unwrap(),
    );
    assert!((min - 0.30).abs() < 1e-9, "{churn}");
    assert!(moved >= min - 0.02 && moved <= min + 0.03, "{churn}");
}

#[test]
fn simulate_pairs_rules_by_name_or_matches_not_position() {
    // The new configuration adds a rule in front: no other rule moves.
    let after = CANARY.replace(
        "    rules:\n",
        "    rules:\n      - matches: [{path: {exact: /health}}]\n        backends: [{name: v1}]\n",
    );
    let v = simulate_change("pairs", ("a.yaml", CANARY), ("b.yaml", &after));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{v}");
    for r in runs {
        assert_eq!(r["sticky_churn"]["moved"], 0.0, "{r}");
        assert_eq!(r["sticky_churn"]["kind"], "hash", "{r}");
    }
    // Renaming a rule unpairs it.
    let renamed = CANARY.replace("name: users", "name: customers");
    let v = simulate_change("renamed", ("a.yaml", CANARY), ("b.yaml", &renamed));
    assert!(v["runs"][1]["sticky_churn"].is_null(), "{v}");
    assert_eq!(v["runs"][2]["sticky_churn"]["moved"], 0.0);
}

#[test]
fn simulate_reports_cookie_sessions_as_kept() {
    let sticky = CANARY.replace(
        "      - backends: [{name: v1, weight: 50}, {name: v2, weight: 50}]",
        "      - backends: [{name: v1, weight: 50}, {name: v2, weight: 50}]\n        session_persistence: {cookie: {name: s}}",
    );
    // 50/50 → 90/10: a cookie keeps every session.
    let shifted = sticky.replace(
        "[{name: v1, weight: 50}, {name: v2, weight: 50}]",
        "[{name: v1, weight: 90}, {name: v2, weight: 10}]",
    );
    let v = simulate_change("cookie", ("a.yaml", &sticky), ("b.yaml", &shifted));
    let churn = &v["runs"][2]["sticky_churn"];
    assert_eq!(churn["kind"], "cookie", "{v}");
    assert_eq!(churn["moved"], 0.0);
    assert_eq!(churn["kept"], 1.0);
    assert!(
        (churn["minimum"].as_f64().unwrap() - 0.4).abs() < 1e-9,
        "{churn}"
    );
    // v2 drained to 0: its half of the sessions is re-pinned…
    let drained = sticky.replace(
        "[{name: v1, weight: 50}, {name: v2, weight: 50}]",
        "[{name: v1, weight: 50}, {name: v2, weight: 0}]",
    );
    let v = simulate_change("drained", ("a.yaml", &sticky), ("b.yaml", &drained));
    assert_eq!(v["runs"][2]["sticky_churn"]["moved"], 0.5, "{v}");
    // …unless the cookie keeps sessions at weight 0 (ALB semantics).
    let kept = drained.replace(
        "{cookie: {name: s}}",
        "{cookie: {name: s, keep_at_zero_weight: true}}",
    );
    let v = simulate_change("kept", ("a.yaml", &sticky), ("b.yaml", &kept));
    assert_eq!(v["runs"][2]["sticky_churn"]["moved"], 0.0, "{v}");
}
