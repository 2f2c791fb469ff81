//! Istio `VirtualService` + `DestinationRule` import, checked against Istio's
//! documented semantics (first match wins, plain `uri.prefix`, weights over subsets,
//! `withoutHeaders`, `queryParams`, redirects, rewrites, DestinationRule policies).

#![allow(clippy::unwrap_used)]

use routing_core::import::{
    import, BackendMap, ImportErrorKind, ImportErrors, ImportOptions, Imported, Source,
};
use routing_core::{
    Action, Config, ConfigDuration, HashOnConfig, LoadBalancerConfig, RequestInfo, RetryOn,
    RouteTable, SimpleLoadBalancer,
};

const BOOKINFO: &str = include_str!("fixtures/import/istio/bookinfo.yaml");
const CANARY: &str = include_str!("fixtures/import/istio/canary.yaml");
const WARNINGS: &str = include_str!("fixtures/import/istio/warnings.yaml");
const ERRORS: &str = include_str!("fixtures/import/istio/errors.yaml");

fn ok(name: &str, text: &str) -> Imported {
    match import(&[Source::new(name, text)], &ImportOptions::default()) {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    }
}

/// Imports standing for the in-process mesh and the bookinfo ingress gateway (the
/// `ratings` VirtualService is bound to that gateway only).
fn ok_at_gateway(name: &str, text: &str) -> Imported {
    let opts = ImportOptions::default().with_gateways(["mesh", "bookinfo/bookinfo-gateway"]);
    match import(&[Source::new(name, text)], &opts) {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    }
}

fn err(name: &str, text: &str) -> ImportErrors {
    import(&[Source::new(name, text)], &ImportOptions::default()).expect_err("should fail")
}

fn table(i: &Imported) -> RouteTable {
    match i.validate() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// The backend `req` reaches, or the rule name for non-forwarding answers.
fn backend(t: &RouteTable, req: &RequestInfo) -> String {
    let d = t.decide(req, &mut rand::rng()).expect("routed");
    match d.backend() {
        Some(b) => b.name().to_owned(),
        None => format!("<{}>", d.rule().name().unwrap_or("?")),
    }
}

fn dur(s: &str) -> ConfigDuration {
    s.parse().unwrap()
}

fn round_trip(i: &Imported) {
    let yaml = i.config.to_yaml();
    let back = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(back, i.config);
    back.validate().unwrap();
}

#[test]
fn bookinfo_reviews_by_end_user() {
    let i = ok("bookinfo.yaml", BOOKINFO);
    let t = table(&i);
    let r = &i.config.routes[0];
    assert_eq!(r.name, "bookinfo/reviews");
    assert_eq!(
        r.hostnames,
        [
            "reviews",
            "reviews.bookinfo",
            "reviews.bookinfo.svc",
            "reviews.bookinfo.svc.cluster.local"
        ],
        "a short name covers the names Kubernetes DNS serves for it, in the resource's namespace"
    );
    for host in [
        "reviews",
        "reviews:9080",
        "reviews.bookinfo",
        "reviews.bookinfo:9080",
        "reviews.bookinfo.svc",
        "reviews.bookinfo.svc.cluster.local",
        "reviews.bookinfo.svc.cluster.local:9080",
    ] {
        let req = RequestInfo::get(&format!("http://{host}/reviews/1")).header("end-user", "jason");
        assert_eq!(backend(&t, &req), "reviews/v2", "{host}");
    }
    assert!(
        t.decide(
            &RequestInfo::get("http://reviews.other/x"),
            &mut rand::rng()
        )
        .is_err(),
        "another namespace's `reviews` is another service"
    );
    assert_eq!(r.precedence, Some(routing_core::RulePrecedence::FirstMatch));
    let jason = RequestInfo::get("http://reviews/reviews/1").header("end-user", "jason");
    assert_eq!(backend(&t, &jason), "reviews/v2");
    let other = RequestInfo::get("http://reviews/reviews/1").header("end-user", "Jason");
    assert_eq!(
        backend(&t, &other),
        "reviews/v1",
        "header values are case-sensitive"
    );
    assert_eq!(
        backend(&t, &RequestInfo::get("http://reviews/")),
        "reviews/v1"
    );
    // Subset policy overrides the host's: v2 RANDOM, v1 inherits ROUND_ROBIN.
    let simple = |k: usize| r.rules[k].load_balancer.as_ref().and_then(|l| l.simple);
    assert_eq!(simple(0), Some(SimpleLoadBalancer::Random));
    assert_eq!(simple(1), Some(SimpleLoadBalancer::RoundRobin));
    round_trip(&i);
}

#[test]
fn ratings_rewrite_fault_retries_and_pools() {
    let i = ok_at_gateway("bookinfo.yaml", BOOKINFO);
    let t = table(&i);
    let r = &i.config.routes[1];
    assert_eq!(
        r.hostnames,
        [
            "ratings",
            "ratings.bookinfo",
            "ratings.bookinfo.svc",
            "ratings.bookinfo.svc.cluster.local"
        ],
        "a service's full name covers its short forms too"
    );
    let legacy = &r.rules[0];
    assert_eq!(legacy.name.as_deref(), Some("legacy"));
    // Istio's `uri.prefix` is a plain string prefix.
    let m = legacy.matches[0].path.as_ref().unwrap();
    assert_eq!(m.starts_with.as_deref(), Some("/ratings"));

    let req = RequestInfo::get("http://ratings.bookinfo.svc.cluster.local/ratings/1");
    let d = t.decide(&req, &mut rand::rng()).unwrap();
    assert_eq!(d.rule().name(), Some("legacy"));
    assert_eq!(d.backend().unwrap().name(), "ratings/v1");
    let rw = d.rule().policy().url_rewrite.as_ref().unwrap();
    let matched = d.rule().matches()[d.match_index()].path();
    let new_path = rw.path.as_ref().unwrap().rewrite_for("/ratings/1", matched);
    assert_eq!(new_path, "/v1/ratings/1", "the matched prefix is replaced");
    // `/ratingsx` matches the plain prefix too, and keeps its tail.
    let d = t
        .decide(
            &RequestInfo::get("http://ratings.bookinfo.svc.cluster.local/ratingsx"),
            &mut rand::rng(),
        )
        .unwrap();
    assert_eq!(d.rule().name(), Some("legacy"));

    let to = legacy.timeouts.as_ref().unwrap();
    assert_eq!(to.request, Some(dur("10s")));
    assert_eq!(to.per_try, Some(dur("2s")));
    let retry = legacy.retry.as_ref().unwrap();
    assert_eq!(retry.attempts, 3);
    assert_eq!(
        retry.on,
        [
            RetryOn::GatewayError,
            RetryOn::ConnectFailure,
            RetryOn::RetriableStatusCodes
        ]
    );
    assert_eq!(retry.status_codes, [409]);
    let fault = legacy.fault.as_ref().unwrap();
    let delay = fault.delay.as_ref().unwrap();
    assert_eq!((delay.fixed, delay.percent), (dur("7s"), Some(10.0)));
    let abort = fault.abort.as_ref().unwrap();
    assert_eq!((abort.status, abort.percent), (503, Some(0.5)));

    // DestinationRule policies.
    let pool = i
        .config
        .backends
        .iter()
        .find(|b| b.name == "ratings/v1")
        .and_then(|b| b.connection_pool)
        .unwrap();
    assert_eq!(pool.max_concurrent_requests, 100);
    assert_eq!(pool.max_pending_requests, Some(10));
    let od = i.config.outlier_detection.as_ref().unwrap();
    assert_eq!(od.consecutive_5xx, Some(7));
    assert_eq!(od.consecutive_gateway_errors, Some(3));
    assert_eq!(od.interval, Some(dur("5s")));
    assert_eq!(od.base_ejection_time, Some(dur("1m")));
    assert_eq!(od.max_ejection_percent, Some(50));

    // Warnings: gateways, the unused pool field, the retry condition not applied.
    let w = |path: &str| {
        i.warnings
            .iter()
            .find(|w| w.at.path == path)
            .unwrap_or_else(|| panic!("no warning at {path}: {:#?}", i.warnings))
    };
    assert!(
        i.warnings.iter().all(|w| w.at.path != "spec.gateways"),
        "bound to a gateway the import stands for: no warning"
    );
    assert!(w("spec.http[0].retries.retryOn")
        .message
        .contains("refused-stream"));
    assert_eq!(
        w("spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection")
            .at
            .line,
        Some(98)
    );
    round_trip(&i);
}

#[test]
fn gateway_binding_is_a_selection() {
    // By default an import stands for `mesh` (in-process traffic): `ratings`, bound
    // to `bookinfo-gateway` only, is left out with a warning, `reviews` stays.
    let i = ok("bookinfo.yaml", BOOKINFO);
    let names: Vec<_> = i.config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["bookinfo/reviews"]);
    let g = i
        .warnings
        .iter()
        .find(|w| w.at.path == "spec.gateways")
        .expect("a warning for the left-out VirtualService");
    assert_eq!(g.at.document, 1);
    assert_eq!(g.at.line, Some(34), "lines count from the top of the file");
    assert!(g.message.contains("left out"), "{}", g.message);
    // Standing for that gateway only: `ratings` is in, `reviews` (mesh) is out.
    let opts = ImportOptions::default().with_gateways(["bookinfo/bookinfo-gateway"]);
    let i = import(&[Source::new("bookinfo.yaml", BOOKINFO)], &opts).unwrap();
    let names: Vec<_> = i.config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["bookinfo/ratings"]);
    // A match bound to another gateway is left out; a rule whose every match is
    // left out is dropped, never turned into a catch-all.
    let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: split, namespace: web}
spec:
  hosts: [web]
  http:
    - name: ingress-only
      match: [{gateways: [public], uri: {prefix: /admin}}]
      route: [{destination: {host: admin}}]
    - name: mixed
      match:
        - {gateways: [public], uri: {prefix: /a}}
        - {uri: {prefix: /b}}
      route: [{destination: {host: ab}}]
    - name: rest
      route: [{destination: {host: web}}]
"#;
    let i = ok("split.yaml", text);
    let r = &i.config.routes[0];
    let rules: Vec<_> = r.rules.iter().map(|r| r.name.as_deref().unwrap()).collect();
    assert_eq!(rules, ["mixed", "rest"]);
    assert_eq!(r.rules[0].matches.len(), 1);
    let t = table(&i);
    assert_eq!(backend(&t, &RequestInfo::get("http://web/admin")), "web");
    assert_eq!(backend(&t, &RequestInfo::get("http://web/a")), "web");
    assert_eq!(backend(&t, &RequestInfo::get("http://web/b")), "ab");
    let at_public = ImportOptions::default().with_gateways(["web/public"]);
    let i = import(&[Source::new("split.yaml", text)], &at_public).unwrap();
    let t = table(&i);
    assert_eq!(backend(&t, &RequestInfo::get("http://web/admin")), "admin");
    assert_eq!(backend(&t, &RequestInfo::get("http://web/a")), "ab");
    assert_eq!(backend(&t, &RequestInfo::get("http://web/b")), "web");
}

#[test]
fn caller_and_port_conditions_fail_closed_unless_lossy() {
    let e = err("warnings.yaml", WARNINGS);
    let got: Vec<_> = e
        .errors()
        .iter()
        .map(|x| {
            (
                x.at.path.as_str(),
                x.at.line,
                matches!(x.kind, ImportErrorKind::Lossy(_)),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("spec.http[0].match[0].sourceLabels", Some(12), true),
            ("spec.http[0].match[0].port", Some(14), true),
        ]
    );
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ns, namespace: a}\nspec:\n  hosts: [r]\n  http:\n  - match: [{sourceNamespace: b}]\n    route: [{destination: {host: r}}]\n";
    let e = err("ns.yaml", text);
    assert!(
        matches!(&e.errors()[0].kind, ImportErrorKind::Lossy(m) if m.contains("sourceNamespace"))
    );
    assert_eq!(
        e.errors()[0].at.path,
        "spec.http[0].match[0].sourceNamespace"
    );
}

#[test]
fn first_match_wins_and_plain_prefix() {
    let i = ok("canary.yaml", CANARY);
    let t = table(&i);
    let host = "http://shop.example.com";
    // `/api/cart` is matched by the earlier, less specific prefix rule.
    assert_eq!(
        backend(&t, &RequestInfo::get(&format!("{host}/api/cart"))),
        "api"
    );
    // A plain prefix: `/api` matches `/apix`.
    assert_eq!(
        backend(&t, &RequestInfo::get(&format!("{host}/apix"))),
        "api"
    );
    let d = t
        .decide(
            &RequestInfo::get(&format!("{host}/api/cart")),
            &mut rand::rng(),
        )
        .unwrap();
    assert_eq!(d.rule().name(), Some("api-prefix"));
    // The exact rule exists but never wins.
    let all = t.candidates(&RequestInfo::get(&format!("{host}/api/cart")));
    assert_eq!(all.len(), 3, "prefix, exact and the catch-all canary");
    assert_eq!(t.rules()[all[0].rule].name(), Some("api-prefix"));
    // Other hosts are not served.
    assert!(t
        .decide(
            &RequestInfo::get("http://other.example.com/api"),
            &mut rand::rng()
        )
        .is_err());
}

#[test]
fn query_params_and_without_headers() {
    let i = ok("canary.yaml", CANARY);
    let t = table(&i);
    let host = "http://shop.example.com";
    let d = |req: RequestInfo| {
        let d = t.decide(&req, &mut rand::rng()).unwrap();
        d.rule().name().unwrap().to_owned()
    };
    assert_eq!(
        d(RequestInfo::get(&format!("{host}/p?beta=1"))),
        "beta-query"
    );
    assert_eq!(d(RequestInfo::get(&format!("{host}/p?beta=2"))), "canary");
    // withoutHeaders {} = the header must be absent.
    assert_eq!(
        d(RequestInfo::get(&format!("{host}/p?beta=1")).header("x-internal", "1")),
        "canary"
    );
    // queryParams {} = present, any value.
    assert_eq!(
        d(RequestInfo::get(&format!("{host}/p?preview"))),
        "beta-query"
    );
    assert_eq!(
        d(RequestInfo::get(&format!("{host}/p?preview=x"))),
        "beta-query"
    );
    // withoutHeaders prefix: a missing header counts as not matching.
    assert_eq!(d(RequestInfo::get(&format!("{host}/special"))), "not-bot");
    assert_eq!(
        d(RequestInfo::get(&format!("{host}/special")).header("user-agent", "curl/8")),
        "not-bot"
    );
    assert_eq!(
        d(RequestInfo::get(&format!("{host}/special")).header("user-agent", "botnet/1")),
        "canary"
    );
}

#[test]
fn redirect_direct_response_and_canary_weights() {
    let i = ok("canary.yaml", CANARY);
    let t = table(&i);
    let host = "http://shop.example.com";
    let d = t
        .decide(&RequestInfo::get(&format!("{host}/old")), &mut rand::rng())
        .unwrap();
    match d.rule().action() {
        Action::Redirect(r) => {
            assert_eq!(r.status.as_u16(), 301, "Istio's default redirect code");
            assert_eq!(r.hostname.as_deref(), Some("new.example.com"));
        }
        other => panic!("{other:?}"),
    }
    let d = t
        .decide(
            &RequestInfo::get(&format!("{host}/gone/x")),
            &mut rand::rng(),
        )
        .unwrap();
    match d.rule().action() {
        Action::FixedResponse(f) => {
            assert_eq!(f.status.as_u16(), 410);
            assert_eq!(f.body, "gone for good");
        }
        other => panic!("{other:?}"),
    }
    // The method condition: a POST is not answered by `gone`.
    let post = RequestInfo::new(http::Method::POST, &format!("{host}/gone/x"));
    assert_eq!(
        t.decide(&post, &mut rand::rng()).unwrap().rule().name(),
        Some("canary")
    );

    let canary = i.config.routes[0].rules.last().unwrap();
    let weights: Vec<(&str, u64)> = canary
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.weight))
        .collect();
    assert_eq!(weights, [("shop/v1", 90), ("shop/v2", 10)]);
    let mirror = canary.mirror.as_ref().unwrap();
    assert_eq!(
        (mirror.backend.as_str(), mirror.percent),
        ("shop-shadow", Some(5.0))
    );
    let f = canary.filters.as_ref().unwrap();
    let req = f.request_headers.as_ref().unwrap();
    assert_eq!(req.set[0].name, "x-canary");
    assert_eq!(req.remove, ["x-debug"]);
    assert_eq!(
        f.response_headers.as_ref().unwrap().add[0].value,
        "istio-import"
    );
    round_trip(&i);
}

#[test]
fn weights_through_a_backend_map() {
    let map = BackendMap::from_yaml(
        "shop/v1: shop-stable\nshop/v2: shop-canary\nshop-shadow: shadow\napi: api\ncart: cart\n",
    )
    .unwrap();
    let i = import(
        &[Source::new("canary.yaml", CANARY)],
        &ImportOptions::default().with_backend_map(map),
    )
    .unwrap();
    let t = table(&i);
    let canary = i.config.routes[0].rules.last().unwrap();
    assert_eq!(canary.backends[0].name, "shop-stable");
    assert_eq!(canary.backends[0].weight, 90);
    assert_eq!(canary.backends[1].name, "shop-canary");
    assert_eq!(canary.backends[1].weight, 10);
    // Requests without the hash key fall back to weighted random: ~90/10.
    let mut canary_hits = 0;
    let mut rng = rand::rng();
    for _ in 0..4000 {
        let d = t
            .decide(&RequestInfo::get("http://shop.example.com/"), &mut rng)
            .unwrap();
        if d.backend().unwrap().name() == "shop-canary" {
            canary_hits += 1;
        }
    }
    assert!((250..=550).contains(&canary_hits), "{canary_hits}");
    // A reference missing from the map is an error.
    let err = import(
        &[Source::new("canary.yaml", CANARY)],
        &ImportOptions::default().with_backend_map(BackendMap::from_yaml("api: api").unwrap()),
    )
    .unwrap_err();
    assert!(err
        .errors()
        .iter()
        .any(|e| matches!(&e.kind, ImportErrorKind::UnknownBackend(m) if m.contains("`shop/v2` or `shop`"))));
}

#[test]
fn consistent_hash_is_sticky_with_maglev_size() {
    let i = ok("canary.yaml", CANARY);
    assert_eq!(i.config.maglev_table_size, Some(251));
    let canary = i.config.routes[0].rules.last().unwrap();
    assert_eq!(
        canary.load_balancer,
        Some(LoadBalancerConfig {
            simple: None,
            consistent_hash: Some(HashOnConfig {
                header: Some("x-user".into()),
                ..HashOnConfig::default()
            }),
        })
    );
    let t = table(&i);
    let mut rng = rand::rng();
    let mut seen = std::collections::BTreeSet::new();
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        let req = RequestInfo::get("http://shop.example.com/").header("x-user", user);
        let first = backend(&t, &req);
        for _ in 0..1000 {
            let d = t.decide(&req, &mut rng).unwrap();
            assert_eq!(d.backend().unwrap().name(), first, "{user} moved");
        }
        seen.insert(first);
    }
    assert!(!seen.is_empty());
}

#[test]
fn cookie_with_ttl_is_session_persistence() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: cart, namespace: shop }
spec:
  hosts: [cart.shop.svc.cluster.local]
  http:
    - route:
        - destination: { host: cart.shop.svc.cluster.local }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: cart, namespace: shop }
spec:
  host: cart
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: { name: session, path: /, ttl: 1h }
        ringHash: { minimumRingSize: 1024 }
    connectionPool:
      tcp: { maxConnections: 50 }
"#;
    let i = ok("cart.yaml", text);
    let rule = &i.config.routes[0].rules[0];
    assert_eq!(
        rule.backends[0].weight, 100,
        "a single destination gets 100"
    );
    let cookie = rule
        .session_persistence
        .as_ref()
        .and_then(|s| s.cookie.as_ref())
        .unwrap();
    assert_eq!(cookie.name, "session");
    assert_eq!(cookie.ttl, Some(dur("1h")));
    assert_eq!(cookie.path.as_deref(), Some("/"));
    let pool = i.config.backends[0].connection_pool.unwrap();
    assert_eq!(pool.max_concurrent_requests, 50);
    assert_eq!(pool.max_pending_requests, Some(u32::MAX));
    let msgs: Vec<&str> = i.warnings.iter().map(|w| w.at.path.as_str()).collect();
    assert!(msgs.contains(&"spec.trafficPolicy.loadBalancer.consistentHash.ringHash"));
    assert!(msgs.contains(&"spec.trafficPolicy.connectionPool.tcp.maxConnections"));
    round_trip(&i);
}

#[test]
fn warnings_name_paths_and_lines() {
    let lossy = ImportOptions::default().with_allow_lossy(true);
    let i = import(&[Source::new("warnings.yaml", WARNINGS)], &lossy).unwrap();
    let r = &i.config.routes[0];
    assert!(r.hostnames.is_empty(), "`*` serves every host");
    let find = |path: &str| {
        i.warnings
            .iter()
            .find(|w| w.at.path == path)
            .unwrap_or_else(|| panic!("no warning at {path}: {:#?}", i.warnings))
    };
    for (path, line, word) in [
        ("spec.exportTo", 9, "exportTo"),
        ("spec.http[0].match[0].sourceLabels", 12, "sourceLabels"),
        ("spec.http[0].match[0].port", 14, "port"),
        ("spec.http[0].corsPolicy", 16, "corsPolicy"),
        (
            "spec.http[0].route[0].destination.subset",
            19,
            "cannot be checked",
        ),
        ("spec.tcp", 20, "not imported"),
    ] {
        let w = find(path);
        assert_eq!(w.at.line, Some(line), "{path}");
        assert_eq!(w.at.resource.as_deref(), Some("VirtualService prod/edge"));
        assert!(w.message.contains(word), "{path}: {}", w.message);
    }
    // `gateways: [mesh, …]` includes the mesh this import stands for: no warning.
    assert!(i.warnings.iter().all(|w| w.at.path != "spec.gateways"));
    assert_eq!(i.warnings.len(), 6, "{:#?}", i.warnings);
    let t = table(&i);
    assert_eq!(
        backend(&t, &RequestInfo::get("http://anything/x")),
        "backend/blue"
    );
}

#[test]
fn errors_with_kinds_paths_and_lines() {
    let e = err("errors.yaml", ERRORS);
    let find = |path: &str| {
        e.errors()
            .iter()
            .find(|x| x.at.path == path)
            .unwrap_or_else(|| panic!("no error at {path}: {e}"))
    };
    let pass = find("spec.trafficPolicy.loadBalancer.simple");
    assert!(matches!(pass.kind, ImportErrorKind::Unsupported(_)));
    assert_eq!(pass.at.line, Some(29));
    assert_eq!(pass.at.document, 1);
    let sub = find("spec.http[0].route[0].destination.subset");
    assert!(matches!(&sub.kind, ImportErrorKind::Invalid(m) if m.contains("v9")));
    assert_eq!(sub.at.line, Some(11));
    let rw = find("spec.http[1].rewrite.uriRegexRewrite");
    assert!(matches!(rw.kind, ImportErrorKind::Unsupported(_)));
    assert_eq!(rw.at.line, Some(16));
    assert_eq!(e.errors().len(), 3, "{e}");
}

#[test]
fn unknown_fields_are_parse_errors_with_lines() {
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, labels: {a: b}, resourceVersion: '1'}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      wieght: 5\n";
    let e = err("typo.yaml", text);
    assert_eq!(e.errors().len(), 1);
    let x = &e.errors()[0];
    assert!(
        matches!(&x.kind, ImportErrorKind::Parse(m) if m.contains("wieght")),
        "{x}"
    );
    assert_eq!(x.at.path, "spec.http[0].route[0].wieght");
    assert_eq!(x.at.line, Some(9));
    // Unknown fields in `status` are fine.
    let with_status = format!(
        "{}status: {{whatever: 1}}\n",
        text.replace("      wieght: 5\n", "")
    );
    ok("status.yaml", &with_status);
}

#[test]
fn all_api_versions_are_read() {
    for version in ["v1alpha3", "v1beta1", "v1"] {
        let text = format!(
            "apiVersion: networking.istio.io/{version}\nkind: VirtualService\nmetadata: {{name: r, namespace: n}}\nspec:\n  hosts: [r.example.com]\n  http:\n  - route:\n    - destination: {{host: r, subset: a}}\n---\napiVersion: networking.istio.io/{version}\nkind: DestinationRule\nmetadata: {{name: r, namespace: n}}\nspec:\n  host: r.n.svc.cluster.local\n  subsets: [{{name: a, labels: {{v: a}}}}]\n"
        );
        let i = ok("v.yaml", &text);
        assert_eq!(
            i.config.routes[0].rules[0].backends[0].name, "r/a",
            "{version}"
        );
        assert!(i.warnings.is_empty(), "{version}: {:?}", i.warnings);
    }
    let e = err(
        "v.yaml",
        "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: r}\nspec: {hosts: [r]}\n",
    );
    assert!(matches!(
        e.errors()[0].kind,
        ImportErrorKind::Unsupported(_)
    ));
}

/// A one-rule VirtualService around `rule` (indented under `http:`).
fn vs(rule: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: t, namespace: n}}\nspec:\n  hosts: [t.example.com]\n  http:\n{rule}"
    )
}

#[test]
fn match_details() {
    // ignoreUriCase, method alternatives, authority, scheme, header present.
    let i = ok(
        "m.yaml",
        &vs(r#"  - name: ci
    match:
      - uri: { prefix: /Docs }
        ignoreUriCase: true
        method: { regex: "GET|HEAD" }
        headers: { x-any: {} }
    route: [{ destination: { host: a } }]
  - name: secure
    match:
      - scheme: { exact: https }
        authority: { prefix: api. }
    route: [{ destination: { host: b } }]
  - route: [{ destination: { host: c } }]
"#),
    );
    let t = table(&i);
    let ci = RequestInfo::get("http://t.example.com/docs/x").header("x-any", "");
    assert_eq!(backend(&t, &ci), "a");
    let head =
        RequestInfo::new(http::Method::HEAD, "http://t.example.com/DOCS").header("x-any", "1");
    assert_eq!(backend(&t, &head), "a");
    let post =
        RequestInfo::new(http::Method::POST, "http://t.example.com/docs").header("x-any", "1");
    assert_eq!(backend(&t, &post), "c");
    assert_eq!(
        backend(&t, &RequestInfo::get("http://t.example.com/docs")),
        "c",
        "x-any must be present"
    );
    assert_eq!(
        i.config.routes[0].rules[0].matches.len(),
        2,
        "one per method"
    );
    assert_eq!(
        backend(
            &t,
            &RequestInfo::get("https://t.example.com/x").header("host", "t.example.com")
        ),
        "c",
        "authority does not start with api."
    );
    // Multiple destinations with a missing weight: it is 0.
    let i = ok(
        "w.yaml",
        &vs("  - route:\n    - destination: { host: a }\n      weight: 3\n    - destination: { host: b }\n"),
    );
    let w: Vec<u64> = i.config.routes[0].rules[0]
        .backends
        .iter()
        .map(|b| b.weight)
        .collect();
    assert_eq!(w, [3, 0]);
    let t = table(&i);
    for _ in 0..200 {
        assert_eq!(backend(&t, &RequestInfo::get("http://t.example.com/")), "a");
    }
}

#[test]
fn more_unsupported_and_invalid() {
    let cases: &[(&str, &str, bool)] = &[
        (
            "  - match: [{ method: { prefix: GE } }]\n    route: [{ destination: { host: a } }]\n",
            "spec.http[0].match[0].method",
            true,
        ),
        (
            "  - match: [{ queryParams: { q: { prefix: x } } }]\n    route: [{ destination: { host: a } }]\n",
            "spec.http[0].match[0].queryParams.q",
            true,
        ),
        (
            "  - delegate: { name: other }\n",
            "spec.http[0].delegate",
            true,
        ),
        (
            "  - redirect: { uri: /x, redirectCode: 300 }\n",
            "spec.http[0].redirect.redirectCode",
            true,
        ),
        (
            "  - route: [{ destination: { host: a } }]\n    fault: { abort: { grpcStatus: UNAVAILABLE } }\n",
            "spec.http[0].fault.abort.grpcStatus",
            true,
        ),
        (
            "  - match: [{ uri: { prefix: /a }, ignoreUriCase: true }]\n    rewrite: { uri: /b }\n    route: [{ destination: { host: a } }]\n",
            "spec.http[0].rewrite.uri",
            true,
        ),
        (
            "  - route:\n    - destination: { host: a }\n      headers: { request: { set: { x: y } } }\n    - destination: { host: b }\n",
            "spec.http[0].route[0].headers",
            true,
        ),
        (
            "  - route:\n    - destination: { host: a }\n    - destination: { host: b }\n",
            "spec.http[0].route",
            false,
        ),
        (
            "  - match: [{ uri: { exact: /a, prefix: /a } }]\n    route: [{ destination: { host: a } }]\n",
            "spec.http[0].match[0].uri",
            false,
        ),
        (
            "  - route: [{ destination: { host: a } }]\n    retries: { attempts: 2, retryOn: bogus }\n",
            "spec.http[0].retries.retryOn",
            false,
        ),
        (
            "  - route: [{ destination: { host: a } }]\n    timeout: 10 seconds\n",
            "spec.http[0].timeout",
            false,
        ),
    ];
    for (rule, path, unsupported) in cases {
        let e = err("x.yaml", &vs(rule));
        let x = &e.errors()[0];
        assert_eq!(x.at.path, *path, "{e}");
        assert!(x.at.line.is_some());
        if *unsupported {
            assert!(matches!(x.kind, ImportErrorKind::Unsupported(_)), "{e}");
        } else {
            assert!(matches!(x.kind, ImportErrorKind::Invalid(_)), "{e}");
        }
    }
    // Maglev table size must be prime.
    let e = err(
        "dr.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: d\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}\n",
    );
    let x = &e.errors()[0];
    assert_eq!(
        x.at.path,
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize"
    );
    assert!(matches!(x.kind, ImportErrorKind::Invalid(_)));
}

#[test]
fn rewrite_after_exact_and_without_match() {
    let i = ok(
        "r.yaml",
        &vs("  - match: [{ uri: { exact: /login } }]\n    rewrite: { uri: /auth/login, authority: auth.internal }\n    route: [{ destination: { host: auth } }]\n  - rewrite: { uri: /v2 }\n    route: [{ destination: { host: app } }]\n"),
    );
    let t = table(&i);
    let d = t
        .decide(
            &RequestInfo::get("http://t.example.com/login"),
            &mut rand::rng(),
        )
        .unwrap();
    let rw = d.rule().policy().url_rewrite.as_ref().unwrap();
    assert_eq!(rw.hostname.as_deref(), Some("auth.internal"));
    let m = d.rule().matches()[d.match_index()].path();
    assert_eq!(
        rw.path.as_ref().unwrap().rewrite_for("/login", m),
        "/auth/login"
    );
    // No uri match: Envoy's default prefix `/` is what gets replaced.
    let d = t
        .decide(
            &RequestInfo::get("http://t.example.com/foo"),
            &mut rand::rng(),
        )
        .unwrap();
    let rw = d.rule().policy().url_rewrite.as_ref().unwrap();
    let m = d.rule().matches()[d.match_index()].path();
    assert_eq!(rw.path.as_ref().unwrap().rewrite_for("/foo", m), "/v2foo");
    round_trip(&i);
}

/// A VirtualService `name` in `web` for `hosts`, sending everything to `dest`.
fn vs_to(name: &str, hosts: &str, dest: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: web}}\nspec:\n  hosts: {hosts}\n  http:\n  - name: all\n    route:\n    - destination: {{host: {dest}}}\n"
    )
}

#[test]
fn a_later_resource_of_the_same_name_replaces_the_earlier() {
    // The state after `kubectl apply -f old.yaml -f new.yaml`: new.yaml's `shop` wins.
    let old = vs_to("shop", "[shop]", "shop-v1");
    let new = vs_to("shop", "[shop]", "shop-v2");
    let i = import(
        &[Source::new("old.yaml", &old), Source::new("new.yaml", &new)],
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(i.config.routes.len(), 1, "{:#?}", i.config.routes);
    assert_eq!(i.config.routes[0].name, "web/shop", "no `~2` copy");
    let t = table(&i);
    assert_eq!(backend(&t, &RequestInfo::get("http://shop/x")), "shop-v2");
    assert_eq!(i.warnings.len(), 1, "{:?}", i.warnings);
    let w = &i.warnings[0];
    assert_eq!(
        (w.at.source.as_str(), w.at.path.as_str(), w.at.line),
        ("old.yaml", "metadata.name", Some(3))
    );
    assert_eq!(w.at.resource.as_deref(), Some("VirtualService web/shop"));
    assert!(
        w.message.starts_with(
            "replaced by the VirtualService of the same namespace and name at new.yaml:3"
        ),
        "{}",
        w.message
    );
    // Another namespace is another resource; DestinationRules are replaced the same way.
    let other = new.replace("namespace: web", "namespace: shop-ns");
    let i = import(
        &[Source::new("a.yaml", &old), Source::new("b.yaml", &other)],
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(i.config.routes.len(), 2);
    let dr = |lb: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: shop, namespace: web}}\nspec:\n  host: shop-v1\n  trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}\n")
    };
    let i = import(
        &[
            Source::new("vs.yaml", &old),
            Source::new("dr1.yaml", &dr("RANDOM")),
            Source::new("dr2.yaml", &dr("ROUND_ROBIN")),
        ],
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(
        i.config.routes[0].rules[0]
            .load_balancer
            .as_ref()
            .and_then(|l| l.simple),
        Some(SimpleLoadBalancer::RoundRobin),
        "the later DestinationRule applies"
    );
    assert!(
        i.warnings.iter().any(|w| w.at.source == "dr1.yaml"
            && w.message.starts_with("replaced by the DestinationRule")),
        "{:?}",
        i.warnings
    );
}

#[test]
fn virtual_services_sharing_a_host_are_warned_about() {
    let a = vs_to("a", "[shop]", "shop-a");
    let b = vs_to("b", "[shop.web.svc.cluster.local]", "shop-b");
    let c = vs_to("c", "[cart]", "cart");
    let i = import(
        &[
            Source::new("a.yaml", &a),
            Source::new("b.yaml", &b),
            Source::new("c.yaml", &c),
        ],
        &ImportOptions::default(),
    )
    .unwrap();
    let w: Vec<_> = i
        .warnings
        .iter()
        .filter(|w| w.message.contains("also written by"))
        .collect();
    assert_eq!(w.len(), 1, "{:?}", i.warnings);
    assert_eq!(
        (w[0].at.source.as_str(), w[0].at.path.as_str()),
        ("b.yaml", "spec.hosts")
    );
    assert!(
        w[0].message.starts_with(
            "host `shop.web.svc.cluster.local` is also written by VirtualService web/a: their rules are tried in input order (web/a first)"
        ),
        "{}",
        w[0].message
    );
    // Input order decides: `a` (first) takes `shop`.
    assert_eq!(
        backend(&table(&i), &RequestInfo::get("http://shop.web/x")),
        "shop-a"
    );
}

#[test]
fn deprecated_consecutive_errors_is_warned_about_and_ignored_as_istio_does() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: shop, namespace: web}\nspec:\n  host: shop-v1\n  trafficPolicy:\n    outlierDetection:\n      consecutiveErrors: 3\n      interval: 5s\n";
    let i = import(
        &[
            Source::new("vs.yaml", &vs_to("shop", "[shop]", "shop-v1")),
            Source::new("dr.yaml", dr),
        ],
        &ImportOptions::default(),
    )
    .unwrap();
    let od = i.config.outlier_detection.as_ref().unwrap();
    assert_eq!(
        (od.consecutive_5xx, od.consecutive_gateway_errors),
        (None, None),
        "not applied: Istio's defaults stand"
    );
    let w = i
        .warnings
        .iter()
        .find(|w| w.at.path == "spec.trafficPolicy.outlierDetection.consecutiveErrors")
        .expect("a deprecation warning");
    assert_eq!(w.at.line, Some(8));
    assert!(
        w.message.contains("deprecated and ignored by Istio"),
        "{}",
        w.message
    );
}
