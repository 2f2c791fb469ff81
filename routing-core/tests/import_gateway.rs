//! Gateway API `HTTPRoute` import: the routing the spec documents, reproduced by the
//! native table (precedence, match kinds, filters, defaults), plus every warning and
//! error the importer emits, with its path and line.
#![allow(clippy::unwrap_used)]

mod common;

use common::line_of;
use std::time::Duration;

use http::Method;
use rand::SeedableRng;
use routing_core::import::{
    import, BackendMap, BackendTarget, ImportErrorKind, ImportErrors, ImportOptions, Imported,
    Source,
};
use routing_core::{
    Action, Config, PathModifier, RequestInfo, RetryOn, RouteError, RouteTable, SessionPersistence,
    WeightedBackendConfig,
};

fn fixture(name: &str) -> String {
    common::fixture("gateway", name)
}

fn load_with(names: &[&str], opts: &ImportOptions) -> Result<Imported, ImportErrors> {
    let texts: Vec<(String, String)> = names.iter().map(|n| (n.to_string(), fixture(n))).collect();
    let sources: Vec<Source<'_>> = texts.iter().map(|(n, t)| Source::new(n, t)).collect();
    import(&sources, opts)
}

fn load(names: &[&str]) -> Imported {
    load_with(names, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn import_str(text: &str) -> Result<Imported, ImportErrors> {
    import(
        &[Source::new("inline.yaml", text)],
        &ImportOptions::default(),
    )
}

/// The backend a request is forwarded to (panics on any other outcome).
fn backend(table: &RouteTable, req: &RequestInfo) -> String {
    let d = table
        .decide(req, &mut rand::rng())
        .unwrap_or_else(|e| panic!("{req:?}: {e}"));
    d.backend()
        .unwrap_or_else(|| panic!("{req:?} is not forwarded: {:?}", d.rule().action()))
        .name()
        .to_owned()
}

/// `(route name, rule name)` of the winning rule.
fn winner(table: &RouteTable, req: &RequestInfo) -> (String, Option<String>) {
    let d = table.decide(req, &mut rand::rng()).unwrap();
    (
        d.route().name().to_owned(),
        d.rule().name().map(str::to_owned),
    )
}

fn round_trip(imported: &Imported) {
    let yaml = imported.config.to_yaml();
    let back = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(back, imported.config, "{yaml}");
    back.validate().unwrap();
}

fn weights(imported: &Imported, route: &str, rule: &str) -> Vec<WeightedBackendConfig> {
    imported
        .config
        .routes
        .iter()
        .find(|r| r.name == route)
        .unwrap()
        .rules
        .iter()
        .find(|r| r.name.as_deref() == Some(rule))
        .unwrap()
        .backends
        .clone()
}

fn wb(name: &str, weight: u64) -> WeightedBackendConfig {
    WeightedBackendConfig::new(name, weight)
}

#[test]
fn storefront_follows_the_spec_precedence() {
    let imported = load(&["store.yaml"]);
    let table = imported.validate().unwrap();
    let host = "http://store.example.com";
    let get = |path: &str| RequestInfo::get(&format!("{host}{path}"));
    let cases: Vec<(RequestInfo, &str, &str)> = vec![
        // An exact path beats a prefix, across routes.
        (get("/cart/checkout"), "checkout:9000", "exact beats prefix"),
        // More header matches win, whatever the route's age; names are case-insensitive.
        (
            get("/cart").header("x-beta", "yes"),
            "store-v2:8080",
            "header match (lowercase name in the request, `X-Beta` in the route)",
        ),
        (
            get("/cart").header("X-BETA", "yes"),
            "store-v2:8080",
            "header match (uppercase)",
        ),
        // Header values are case-sensitive (Exact).
        (
            get("/cart").header("x-beta", "YES"),
            "store-v1:8080",
            "value is exact",
        ),
        // Exact tie on `/cart` between the two routes: the older (store-main) wins.
        (get("/cart/items"), "store-v1:8080", "tie: older route"),
        // `/foo` is a segment prefix.
        (get("/foo"), "foo:8080", "prefix matches itself"),
        (get("/foo/"), "foo:8080", "prefix with trailing slash"),
        (get("/foo/bar"), "foo:8080", "prefix matches a sub-path"),
        (
            get("/foobar"),
            "store-v1:8080",
            "`/foo` does not match `/foobar`",
        ),
        // Longest prefix, then method, then query parameters.
        (get("/api/v1/orders"), "api:8080", "no method / query: /api"),
        (
            RequestInfo::new(Method::POST, &format!("{host}/api/v1/orders")),
            "api-writer:8080",
            "method match",
        ),
        (
            get("/api/v1/orders?mode=write"),
            "api-writer:8080",
            "query match",
        ),
        (
            get("/api/v1/orders?mode=read"),
            "api:8080",
            "query value differs",
        ),
        (
            get("/api/v1/orders?Mode=write"),
            "api:8080",
            "query names are case-sensitive",
        ),
        (
            get("/apix"),
            "store-v1:8080",
            "`/api` does not match `/apix`",
        ),
        // Regular expressions are anchored.
        (get("/items/42"), "items:8080", "regex"),
        (get("/items/42/x"), "store-v1:8080", "regex is anchored"),
        (
            get("/"),
            "store-v1:8080",
            "rule without matches: every request",
        ),
    ];
    for (req, want, why) in &cases {
        assert_eq!(backend(&table, req), *want, "{why}: {req:?}");
    }
    assert_eq!(
        winner(&table, &get("/cart/items")).0,
        "store/store-main",
        "the older route wins the exact tie"
    );
    // Other hosts reach nothing.
    assert!(matches!(
        table.decide(
            &RequestInfo::get("http://other.example.com/"),
            &mut rand::rng()
        ),
        Err(RouteError::NoRoute)
    ));

    // Routes are emitted oldest first, whatever the document order.
    let names: Vec<&str> = imported
        .config
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["store/store-main", "store/store-canary"]);
    // Weights exactly as written; `port` makes the backend name.
    assert_eq!(
        weights(&imported, "store/store-canary", "split"),
        [wb("store-v1:8080", 90), wb("store-v2:8080", 10)]
    );
    assert_eq!(
        weights(&imported, "store/store-canary", "beta-testers"),
        [wb("store-v2:8080", 1)],
        "weight defaults to 1"
    );

    // Warnings: the Service is skipped, and one `parentRefs` warning per route.
    let text = fixture("store.yaml");
    let w = &imported.warnings;
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w[0].message.contains("Service"), "{}", w[0]);
    assert_eq!(w[0].at.document, 0);
    let parents: Vec<_> = w
        .iter()
        .filter(|w| w.at.path == "spec.parentRefs")
        .collect();
    assert_eq!(parents.len(), 2);
    assert!(parents[0].message.contains("attachment to Gateways"));
    assert_eq!(parents[0].at.document, 1);
    assert_eq!(parents[0].at.line, Some(line_of(&text, "parentRefs", 0)));
    assert_eq!(
        parents[0].at.resource.as_deref(),
        Some("HTTPRoute store/store-canary")
    );
    assert_eq!(parents[1].at.document, 2);
    assert_eq!(parents[1].at.line, Some(line_of(&text, "parentRefs", 1)));
    round_trip(&imported);
}

#[test]
fn weights_split_traffic_in_proportion() {
    let imported = load(&["store.yaml"]);
    let table = imported.validate().unwrap();
    let req = RequestInfo::get("http://store.example.com/cart");
    // `/cart` goes to store-main (older); the canary split is only reachable through
    // its own rule, so check the split through the rule's forward table directly.
    let rule = table
        .rules()
        .iter()
        .find(|r| r.name() == Some("split"))
        .unwrap();
    let fwd = rule.forward().unwrap();
    let mut rng = rand::rng();
    let mut v2 = 0;
    for _ in 0..20_000 {
        let i = fwd.pick(&mut rng, None).unwrap();
        if table.backend(fwd.backends()[i].id()).name() == "store-v2:8080" {
            v2 += 1;
        }
    }
    assert!((1_600..2_400).contains(&v2), "{v2} of 20000 ≈ 10 %");
    assert_eq!(backend(&table, &req), "store-v1:8080");
}

#[test]
fn ties_across_files_go_to_the_oldest_then_alphabetical() {
    for files in [
        ["ties-a.yaml", "ties-b.yaml"],
        ["ties-b.yaml", "ties-a.yaml"],
    ] {
        let imported = load(&files);
        let names: Vec<&str> = imported
            .config
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["shop/zeta", "shop/alpha", "shop/bravo", "shop/mike"],
            "{files:?}"
        );
        let table = imported.validate().unwrap();
        let get = |p: &str| RequestInfo::get(&format!("http://ties.example.com{p}"));
        // Identical matches: the oldest route wins although `alpha` sorts first.
        assert_eq!(backend(&table, &get("/same")), "zeta-old");
        // A more specific match wins whatever the age.
        assert_eq!(backend(&table, &get("/same/deeper/x")), "alpha-new");
        // A timestamped route beats one without.
        assert_eq!(backend(&table, &get("/named")), "zeta-old");
        // Neither has a timestamp: alphabetical `namespace/name`.
        assert_eq!(backend(&table, &get("/untimed")), "bravo");
        round_trip(&imported);
    }
}

#[test]
fn timestamps_are_compared_as_instants() {
    // 01:00+02:00 is 23:00 the day before in UTC: older than midnight UTC, although
    // it sorts after it as a string.
    let route = |name: &str, ts: &str, backend: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}, namespace: ns, creationTimestamp: \"{ts}\"}}\nspec:\n  rules:\n    - backendRefs: [{{name: {backend}}}]\n"
        )
    };
    let text = format!(
        "{}---\n{}",
        route("a", "2024-01-01T00:00:00Z", "utc-midnight"),
        route("b", "2024-01-01T01:00:00+02:00", "east")
    );
    let imported = import_str(&text).unwrap();
    assert_eq!(imported.config.routes[0].name, "ns/b");
    let table = imported.validate().unwrap();
    assert_eq!(backend(&table, &RequestInfo::get("/")), "east");
}

#[test]
fn hostnames_exact_beats_wildcard() {
    let imported = load(&["hosts.yaml"]);
    let table = imported.validate().unwrap();
    let cases = [
        ("http://foo.example.com/app", "foo"),
        // The exact-host route has no rule for /login: the wildcard's rules apply.
        ("http://foo.example.com/login", "wild"),
        ("http://bar.example.com/app", "wild"),
        ("http://a.b.example.com/app", "wild"),
        ("http://FOO.example.com:8080/app", "foo"),
    ];
    for (uri, want) in cases {
        assert_eq!(backend(&table, &RequestInfo::get(uri)), want, "{uri}");
    }
    // `*.example.com` does not match `example.com`.
    assert!(table
        .decide(
            &RequestInfo::get("http://example.com/app"),
            &mut rand::rng()
        )
        .is_err());
    assert_eq!(imported.config.routes[0].hostnames, ["*.example.com"]);
    round_trip(&imported);
}

#[test]
fn filters_redirects_rewrites_and_policy() {
    let opts = ImportOptions::default().with_default_namespace("edge-ns");
    let imported = load_with(&["filters.yaml"], &opts).unwrap();
    let table = imported.validate().unwrap();
    let get = |p: &str| RequestInfo::get(&format!("http://edge.example.com{p}"));
    let mut rng = rand::rng();
    assert_eq!(imported.config.routes[0].name, "edge-ns/edge");

    // http → https, 301.
    let d = table.decide(&get("/secure/x"), &mut rng).unwrap();
    assert_eq!(d.rule().name(), Some("to-https"));
    let Action::Redirect(r) = d.rule().action() else {
        panic!("{:?}", d.rule().action())
    };
    assert_eq!(r.scheme.as_deref(), Some("https"));
    assert_eq!(r.status.as_u16(), 301);
    assert_eq!(
        (r.port, r.hostname.as_deref(), &r.path),
        (None, None, &None)
    );

    // Redirect with a prefix replacement; status defaults to 302; backendRefs unused.
    let d = table.decide(&get("/old/page"), &mut rng).unwrap();
    let Action::Redirect(r) = d.rule().action() else {
        panic!("{:?}", d.rule().action())
    };
    assert_eq!(r.status.as_u16(), 302);
    assert_eq!(r.hostname.as_deref(), Some("new.example.com"));
    let path = r.path.as_ref().unwrap();
    let matched = d.rule().matches()[d.match_index()].path();
    assert_eq!(path.rewrite_for("/old/page", matched), "/new/page");
    assert_eq!(path.rewrite_for("/old", matched), "/new");
    assert!(
        table.backend_id("legacy").is_none(),
        "unused backendRefs declare nothing"
    );

    // URL rewrite, header modifiers, mirror, timeouts, retry.
    let d = table.decide(&get("/api/v1/users"), &mut rng).unwrap();
    assert_eq!(d.backend().unwrap().name(), "api:8080");
    let p = d.rule().policy();
    let rw = p.url_rewrite.as_ref().unwrap();
    assert_eq!(rw.hostname.as_deref(), Some("api.internal"));
    let matched = d.rule().matches()[d.match_index()].path();
    let rp = rw.path.as_ref().unwrap();
    assert_eq!(rp, &PathModifier::Prefix("/v2".into()));
    assert_eq!(rp.rewrite_for("/api/v1/users", matched), "/v2/users");
    let mut h = http::HeaderMap::new();
    h.insert("x-debug", "1".parse().unwrap());
    h.insert("x-env", "dev".parse().unwrap());
    p.request_headers.apply(&mut h);
    assert_eq!(h["x-env"], "prod");
    assert_eq!(h["x-trace"], "edge");
    assert!(!h.contains_key("x-debug"));
    let mut h = http::HeaderMap::new();
    p.response_headers.apply(&mut h);
    assert_eq!(h["cache-control"], "no-store");
    let m = p.mirror.unwrap();
    assert_eq!(table.backend(m.backend).name(), "api-shadow:8080");
    assert!((m.fraction - 0.25).abs() < 1e-9, "1/4 → 25 %");
    assert_eq!(p.timeouts.request, Some(Duration::from_secs(10)));
    assert_eq!(p.timeouts.per_try, Some(Duration::from_secs(2)));
    let retry = p.retry.as_ref().unwrap();
    assert_eq!(retry.attempts, 3);
    assert_eq!(
        retry.on,
        [
            RetryOn::ConnectFailure,
            RetryOn::Reset,
            RetryOn::RetriableStatusCodes
        ]
    );
    let codes: Vec<u16> = retry.status_codes.iter().map(|c| c.as_u16()).collect();
    assert_eq!(codes, [502, 503]);
    assert_eq!(retry.backoff, Duration::from_millis(100));

    // Session persistence: a permanent cookie lives `absoluteTimeout`; `0s` = no timeout.
    let d = table.decide(&get("/session"), &mut rng).unwrap();
    let p = d.rule().policy();
    let Some(SessionPersistence::Cookie(c)) = &p.session_persistence else {
        panic!("{:?}", p.session_persistence)
    };
    assert_eq!(c.name, "route-id");
    assert_eq!(c.ttl, Some(Duration::from_secs(3600)));
    assert_eq!(p.timeouts.request, None);
    assert_eq!(
        weights(&imported, "edge-ns/edge", "sticky"),
        [wb("app:8080", 1), wb("app-remote:8080", 1)]
    );

    // No backendRefs and no redirect: 500.
    let d = table.decide(&get("/gone"), &mut rng).unwrap();
    let Action::FixedResponse(f) = d.rule().action() else {
        panic!("{:?}", d.rule().action())
    };
    assert_eq!(f.status.as_u16(), 500);
    // Not `/gone/x`: the match is exact, and no other rule takes it.
    assert!(table.decide(&get("/gone/x"), &mut rng).is_err());

    // Every warning, with its path and line.
    let text = fixture("filters.yaml");
    let got: Vec<(&str, Option<usize>)> = imported
        .warnings
        .iter()
        .map(|w| (w.at.path.as_str(), w.at.line))
        .collect();
    assert_eq!(
        got,
        [
            (
                "spec.rules[1].backendRefs",
                Some(line_of(&text, "backendRefs:", 0))
            ),
            (
                "spec.rules[3].backendRefs[1]",
                Some(line_of(&text, "ServiceImport", 0))
            ),
            (
                "spec.rules[3].sessionPersistence.idleTimeout",
                Some(line_of(&text, "idleTimeout", 0))
            ),
        ],
        "{:#?}",
        imported.warnings
    );
    let msgs: Vec<&str> = imported
        .warnings
        .iter()
        .map(|w| w.message.as_str())
        .collect();
    assert!(msgs[0].contains("RequestRedirect"), "{}", msgs[0]);
    assert!(msgs[1].contains("ServiceImport"), "{}", msgs[1]);
    assert!(msgs[2].contains("idleTimeout"), "{}", msgs[2]);
    // The CORS filter is applied (no warning): its lists as written.
    let edge = imported
        .config
        .routes
        .iter()
        .find(|r| r.name == "edge-ns/edge")
        .unwrap();
    let cors = edge.rules[2]
        .filters
        .as_ref()
        .and_then(|f| f.cors.as_ref())
        .unwrap();
    assert_eq!(cors.allow_origins, ["https://app.example.com"]);
    assert_eq!(cors.allow_methods, ["GET", "POST"]);
    assert!(!cors.allow_credentials);
    assert!(imported
        .warnings
        .iter()
        .all(|w| w.at.resource.as_deref() == Some("HTTPRoute edge-ns/edge")));
    round_trip(&imported);
}

#[test]
fn invalid_regex_is_reported_at_its_rule() {
    let imported = load(&["bad-regex.yaml"]);
    let err = imported.validate().unwrap_err();
    let e = &err.errors()[0];
    assert!(
        matches!(&e.kind, ImportErrorKind::Native(m) if m.contains("regex") || m.contains("regular")),
        "{e}"
    );
    assert_eq!(e.at.source, "bad-regex.yaml");
    assert_eq!(e.at.path, "spec.rules[1]");
    assert_eq!(
        e.at.line,
        Some(line_of(&fixture("bad-regex.yaml"), "- matches:", 1))
    );
    assert_eq!(e.at.resource.as_deref(), Some("HTTPRoute shop/items"));
}

#[test]
fn unknown_field_is_a_parse_error_with_path_and_line() {
    let err = load_with(&["unknown-field.yaml"], &ImportOptions::default()).unwrap_err();
    assert_eq!(err.errors().len(), 1, "{err}");
    let e = &err.errors()[0];
    assert!(
        matches!(&e.kind, ImportErrorKind::Parse(m) if m.contains("matchez")),
        "{e}"
    );
    assert_eq!(e.at.path, "spec.rules[0].matchez");
    assert_eq!(
        e.at.line,
        Some(line_of(&fixture("unknown-field.yaml"), "matchez", 0))
    );
}

#[test]
fn extension_ref_is_unsupported() {
    let err = load_with(&["extension-ref.yaml"], &ImportOptions::default()).unwrap_err();
    let e = &err.errors()[0];
    assert!(
        matches!(&e.kind, ImportErrorKind::Unsupported(m) if m.contains("ExtensionRef") && m.contains("RateLimit")),
        "{e}"
    );
    assert_eq!(e.at.path, "spec.rules[0].filters[0].extensionRef");
    assert_eq!(
        e.at.line,
        Some(line_of(&fixture("extension-ref.yaml"), "extensionRef:", 0))
    );
}

/// A one-route manifest with `rule` as its only rule (indented as a list item).
fn one_rule(rule: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: ns}}\nspec:\n  rules:\n{rule}"
    )
}

/// The single error of importing `text`: (kind, path, line).
fn only_error(text: &str) -> (ImportErrorKind, String, Option<usize>) {
    let err = import_str(text).unwrap_err();
    assert_eq!(err.errors().len(), 1, "{err}");
    let e = &err.errors()[0];
    (e.kind.clone(), e.at.path.clone(), e.at.line)
}

#[test]
fn errors_name_their_field() {
    type Check = fn(&ImportErrorKind) -> bool;
    let unsupported: Check = |k| matches!(k, ImportErrorKind::Unsupported(_));
    let invalid: Check = |k| matches!(k, ImportErrorKind::Invalid(_));
    let parse: Check = |k| matches!(k, ImportErrorKind::Parse(_));
    let cases: Vec<(String, Check, &str, usize)> = vec![
        (
            one_rule("    - backendRefs:\n        - name: a\n          filters:\n            - type: RequestMirror\n              requestMirror: {backendRef: {name: m}}\n"),
            unsupported,
            "spec.rules[0].backendRefs[0].filters[0].requestMirror",
            10,
        ),
        (
            one_rule("    - filters:\n        - type: ExternalAuth\n          externalAuth: {protocol: HTTP, backendRef: {name: auth}}\n      backendRefs: [{name: a}]\n"),
            unsupported,
            "spec.rules[0].filters[0].externalAuth",
            8,
        ),
        (
            // A second mirror is read (several are allowed), and checked as the first.
            one_rule("    - filters:\n        - type: RequestMirror\n          requestMirror: {backendRef: {name: m1}}\n        - type: RequestMirror\n          requestMirror: {backendRef: {name: m2}, percent: 101}\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].filters[1].requestMirror.percent",
            10,
        ),
        (
            one_rule("    - retry: {attempts: 11}\n      backendRefs: [{name: a}]\n"),
            unsupported,
            "spec.rules[0].retry.attempts",
            6,
        ),
        (
            one_rule("    - retry: {codes: [200]}\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].retry.codes[0]",
            6,
        ),
        (
            one_rule("    - timeouts: {request: 1s, backendRequest: 2s}\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].timeouts.backendRequest",
            6,
        ),
        (
            one_rule("    - timeouts: {request: 1.5s}\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].timeouts.request",
            6,
        ),
        (
            one_rule("    - filters:\n        - type: RequestRedirect\n          requestRedirect: {scheme: https}\n        - type: URLRewrite\n          urlRewrite: {hostname: x.example.com}\n"),
            invalid,
            "spec.rules[0].filters",
            6,
        ),
        (
            one_rule("    - matches: [{path: {type: Exact, value: /a}}]\n      filters:\n        - type: URLRewrite\n          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch",
            9,
        ),
        (
            one_rule("    - filters:\n        - type: RequestHeaderModifier\n          requestHeaderModifier: {set: [{name: X-A, value: '1'}], remove: [x-a]}\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].filters[0].requestHeaderModifier.remove[0]",
            8,
        ),
        (
            one_rule("    - filters:\n        - type: RequestHeaderModifier\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].filters[0].requestHeaderModifier",
            7,
        ),
        (
            one_rule("    - matches: [{path: {type: PathPrefix, value: /a//b}}]\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].matches[0].path.value",
            6,
        ),
        (
            one_rule("    - backendRefs: [{name: a, weight: 1000001}]\n"),
            invalid,
            "spec.rules[0].backendRefs[0].weight",
            6,
        ),
        (
            one_rule("    - backendRefs: [{name: a, port: 70000}]\n"),
            invalid,
            "spec.rules[0].backendRefs[0].port",
            6,
        ),
        (
            one_rule("    - name: same\n      backendRefs: [{name: a}]\n    - name: same\n      backendRefs: [{name: b}]\n"),
            invalid,
            "spec.rules[1].name",
            8,
        ),
        (
            one_rule("    - filters:\n        - type: RequestMirror\n          requestMirror: {backendRef: {name: m}, fraction: {numerator: 5, denominator: 4}}\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].filters[0].requestMirror.fraction",
            8,
        ),
        (
            one_rule("    - sessionPersistence: {cookieConfig: {lifetimeType: Permanent}}\n      backendRefs: [{name: a}]\n"),
            invalid,
            "spec.rules[0].sessionPersistence.absoluteTimeout",
            6,
        ),
        (
            one_rule("    - matches: [{path: {type: Glob, value: /a}}]\n      backendRefs: [{name: a}]\n"),
            parse,
            "spec.rules[0].matches[0].path.type",
            6,
        ),
        (
            one_rule("    - filters: [{type: RateLimit}]\n      backendRefs: [{name: a}]\n"),
            parse,
            "spec.rules[0].filters[0].type",
            6,
        ),
        (
            one_rule("    - matches: [{method: get}]\n      backendRefs: [{name: a}]\n"),
            parse,
            "spec.rules[0].matches[0].method",
            6,
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  hostnames: [ok.example.com, \"foo.*.example.com\"]\n".to_owned(),
            invalid,
            "spec.hostnames[1]",
            5,
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  hostnames: [10.0.0.1]\n".to_owned(),
            invalid,
            "spec.hostnames[0]",
            5,
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\n  creationTimestamp: yesterday\nspec: {}\n".to_owned(),
            invalid,
            "metadata.creationTimestamp",
            5,
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec: {}\n".to_owned(),
            invalid,
            "metadata.name",
            9,
        ),
    ];
    for (text, check, path, line) in cases {
        let (kind, at, l) = only_error(&text);
        assert!(check(&kind), "{path}: {kind}");
        assert_eq!((at.as_str(), l), (path, Some(line)), "{kind}\n{text}");
    }
}

#[test]
fn warnings_name_their_field() {
    let text = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: web}
spec:
  useDefaultGateways: All
  rules:
    - matches:
        - headers:
            - {name: X-Team, value: a}
            - {name: x-team, value: b}
          queryParams:
            - {name: v, value: '1'}
            - {name: v, value: '2'}
      backendRefs:
        - {name: api, namespace: shared, port: 80, weight: 0}
    - filters:
        - type: RequestRedirect
          requestRedirect: {hostname: x.example.com}
      retry: {attempts: 2}
    - matches: [{path: {value: /h}}]
      sessionPersistence: {type: Header, sessionName: x-session}
      backendRefs: [{name: api}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: web-to-shared, namespace: shared}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]
  to: [{group: '', kind: Service}]
";
    let imported = import_str(text).unwrap();
    let got: Vec<(&str, Option<usize>)> = imported
        .warnings
        .iter()
        .map(|w| (w.at.path.as_str(), w.at.line))
        .collect();
    assert_eq!(
        got,
        [
            ("spec.useDefaultGateways", Some(5)),
            ("spec.rules[0].matches[0].headers[1].name", Some(10)),
            ("spec.rules[0].matches[0].queryParams[1].name", Some(13)),
            ("spec.rules[0].backendRefs", Some(14)),
            ("spec.rules[1].retry", Some(19)),
            ("spec.rules[2].sessionPersistence", Some(21)),
        ],
        "{:#?}",
        imported.warnings
    );
    let table = imported.validate().unwrap();
    // The first `X-Team` entry counts, the repeated name is ignored.
    let req = RequestInfo::get("/?v=1").header("x-team", "a");
    assert_eq!(
        table.decide(&req, &mut rand::rng()).err(),
        Some(RouteError::NoBackend { rule: 0 }),
        "weight 0 everywhere: no backend"
    );
    let cfg = &imported.config.routes[0];
    assert_eq!(cfg.rules[0].matches[0].headers.len(), 1);
    assert_eq!(cfg.rules[0].matches[0].query.len(), 1);
    assert_eq!(cfg.rules[0].backends, [wb("shared/api:80", 0)]);
    assert!(cfg.rules[1].retry.is_none());
    assert_eq!(
        cfg.rules[2]
            .session_persistence
            .as_ref()
            .unwrap()
            .header
            .as_deref(),
        Some("x-session")
    );
    round_trip(&imported);
}

#[test]
fn backend_map_keys_most_specific_first() {
    let text = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: web}
spec:
  rules:
    - matches: [{path: {value: /a}}]
      backendRefs: [{name: api, port: 8080}]
    - matches: [{path: {value: /b}}]
      backendRefs: [{name: api}]
    - matches: [{path: {value: /c}}]
      backendRefs: [{name: api, namespace: other}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-web, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]
  to: [{group: '', kind: Service, name: api}]
";
    let mut map = BackendMap::default();
    map.insert("web/api:8080", BackendTarget::Name("api-8080".into()));
    map.insert("api", BackendTarget::Name("api-any".into()));
    map.insert("other/api", BackendTarget::Name("other-api".into()));
    let opts = ImportOptions::default().with_backend_map(map.clone());
    let imported = import(&[Source::new("m.yaml", text)], &opts).unwrap();
    let table = imported.validate().unwrap();
    assert_eq!(backend(&table, &RequestInfo::get("/a")), "api-8080");
    assert_eq!(backend(&table, &RequestInfo::get("/b")), "api-any");
    assert_eq!(backend(&table, &RequestInfo::get("/c")), "other-api");

    // A reference into another namespace is not resolved by a bare `name` key (the
    // same-namespace ones are).
    let mut map = BackendMap::default();
    map.insert("api", BackendTarget::Name("api-any".into()));
    let opts = ImportOptions::default().with_backend_map(map);
    let err = import(&[Source::new("m.yaml", text)], &opts).unwrap_err();
    assert_eq!(err.errors().len(), 1, "{err}");
    let e = &err.errors()[0];
    assert_eq!(e.at.path, "spec.rules[2].backendRefs[0]");
    assert_eq!(e.at.line, Some(11));
    assert!(
        matches!(&e.kind, ImportErrorKind::UnknownBackend(m) if m == "`other/api`"),
        "{e}"
    );

    // Every key tried is named, most specific first.
    let opts = ImportOptions::default().with_backend_map(BackendMap::default());
    let err = import(&[Source::new("m.yaml", text)], &opts).unwrap_err();
    assert_eq!(err.errors().len(), 3, "{err}");
    let e = &err.errors()[0];
    assert_eq!(
        (e.at.path.as_str(), e.at.line),
        ("spec.rules[0].backendRefs[0]", Some(7))
    );
    assert!(
        matches!(&e.kind, ImportErrorKind::UnknownBackend(m) if m == "`web/api:8080` or `web/api` or `api:8080` or `api`"),
        "{e}"
    );
}

#[test]
fn defaults_without_rules_or_matches() {
    // No rules at all: the CRD default, one rule matching everything without
    // backends, which answers 500.
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: empty}\nspec:\n  hostnames: [e.example.com]\n";
    let imported = import_str(text).unwrap();
    assert_eq!(imported.config.routes[0].name, "default/empty");
    let table = imported.validate().unwrap();
    let d = table
        .decide(
            &RequestInfo::get("http://e.example.com/any/path"),
            &mut rand::rng(),
        )
        .unwrap();
    assert!(matches!(d.rule().action(), Action::FixedResponse(f) if f.status == 500));
    round_trip(&imported);
}

// ---------------------------------------------------------------------------------
// Gateways, parentRefs, ReferenceGrants, invalid references.
// ---------------------------------------------------------------------------------

const GATEWAY: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: x
  listeners:
    - {name: web, port: 80, protocol: HTTP, hostname: '*.example.com'}
    - {name: api, port: 80, protocol: HTTP, hostname: api.example.com}
    - name: shared
      port: 80
      protocol: HTTP
      hostname: shared.example.com
      allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: shop}}}}
    - {name: alt, port: 8080, protocol: HTTP}
    - {name: tcp, port: 9000, protocol: TCP}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
";

fn route(name: &str, ns: &str, parents: &str, hostnames: &str, backend: &str) -> String {
    format!(
        "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {ns}}}
spec:
  parentRefs: {parents}
  hostnames: {hostnames}
  rules: [{{backendRefs: [{{name: {backend}, port: 80}}]}}]
"
    )
}

fn hosts_of(imported: &Imported, route: &str) -> Vec<String> {
    imported
        .config
        .routes
        .iter()
        .find(|r| r.name == route)
        .unwrap_or_else(|| panic!("no route {route}"))
        .hostnames
        .clone()
}

#[test]
fn listeners_decide_which_routes_attach_and_their_hostnames() {
    let text = [
        GATEWAY.to_owned(),
        // Listener hostname ∩ route hostnames.
        route(
            "a",
            "infra",
            "[{name: gw, sectionName: web}]",
            "[a.example.com, b.other.com]",
            "a",
        ),
        // No route hostname: the listener's.
        route("b", "infra", "[{name: gw, sectionName: api}]", "[]", "b"),
        // No intersection: left out.
        route(
            "c",
            "infra",
            "[{name: gw, sectionName: web}]",
            "[x.other.com]",
            "c",
        ),
        // `from: Same` refuses another namespace.
        route(
            "d",
            "shop",
            "[{name: gw, namespace: infra, sectionName: api}]",
            "[]",
            "d",
        ),
        // `from: Selector` admits a namespace with the label.
        route(
            "e",
            "shop",
            "[{name: gw, namespace: infra, sectionName: shared}]",
            "[]",
            "e",
        ),
        // A TCP listener takes no HTTPRoute; a wildcard route narrows to the listener.
        route(
            "f",
            "infra",
            "[{name: gw, sectionName: tcp}, {name: gw, sectionName: api}]",
            "['*.example.com']",
            "f",
        ),
        // A Gateway not in the input.
        route("g", "infra", "[{name: elsewhere}]", "[]", "g"),
    ]
    .concat();
    let imported = import(&[Source::new("gw.yaml", &text)], &ImportOptions::default()).unwrap();
    let names: Vec<&str> = imported
        .config
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["infra/a", "infra/b", "infra/f", "shop/e"]);
    assert_eq!(hosts_of(&imported, "infra/a"), ["a.example.com"]);
    assert_eq!(hosts_of(&imported, "infra/b"), ["api.example.com"]);
    assert_eq!(hosts_of(&imported, "infra/f"), ["api.example.com"]);
    assert_eq!(hosts_of(&imported, "shop/e"), ["shared.example.com"]);
    let left: Vec<(&str, &str)> = imported
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("left out"))
        .map(|w| (w.at.resource.as_deref().unwrap_or(""), w.at.path.as_str()))
        .collect();
    assert_eq!(
        left,
        [
            ("HTTPRoute infra/c", "spec.parentRefs"),
            ("HTTPRoute shop/d", "spec.parentRefs"),
            ("HTTPRoute infra/g", "spec.parentRefs"),
        ],
        "{:#?}",
        imported.warnings
    );
    let table = imported.validate().unwrap();
    let host = |h: &str| RequestInfo::get(&format!("http://{h}/"));
    assert_eq!(backend(&table, &host("a.example.com")), "a:80");
    assert!(
        table
            .decide(&host("b.other.com"), &mut rand::rng())
            .is_err(),
        "outside the listener"
    );
    assert_eq!(backend(&table, &host("shared.example.com")), "e:80");
}

#[test]
fn routes_on_two_gateways_or_ports_are_lossy_until_one_is_chosen() {
    let second = GATEWAY.replace("name: gw,", "name: gw2,");
    let text = [
        GATEWAY.to_owned(),
        "---\n".to_owned(),
        second,
        route("a", "infra", "[{name: gw, sectionName: api}]", "[]", "a"),
        route("b", "infra", "[{name: gw2, sectionName: api}]", "[]", "b"),
        route("c", "infra", "[{name: gw, sectionName: alt}]", "[]", "c"),
    ]
    .concat();
    let err = import(&[Source::new("gw.yaml", &text)], &ImportOptions::default()).unwrap_err();
    let lossy: Vec<&str> = err
        .errors()
        .iter()
        .filter_map(|e| match &e.kind {
            ImportErrorKind::Lossy(m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lossy.len(), 2, "{err}");
    assert!(
        lossy[0].contains("several Gateways") && lossy[0].contains("infra/gw2"),
        "{err}"
    );
    assert!(lossy[1].contains("ports 80, 8080"), "{err}");
    // One Gateway, one port: only its routes.
    let opts = ImportOptions::default().with_gateways(["infra/gw/api"]);
    let imported = import(&[Source::new("gw.yaml", &text)], &opts).unwrap();
    let names: Vec<&str> = imported
        .config
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["infra/a"]);
    // allow_lossy imports both, with the warnings.
    let opts = ImportOptions::default().with_allow_lossy(true);
    let imported = import(&[Source::new("gw.yaml", &text)], &opts).unwrap();
    assert_eq!(imported.config.routes.len(), 3);
}

#[test]
fn a_service_parent_binds_the_route_to_the_service_hosts() {
    let text = route(
        "mesh",
        "shop",
        "[{group: '', kind: Service, name: reviews, port: 9080}]",
        "[]",
        "reviews-v2",
    );
    let imported = import(
        &[Source::new("gamma.yaml", &text)],
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(
        hosts_of(&imported, "shop/mesh"),
        [
            "reviews",
            "reviews.shop",
            "reviews.shop.svc",
            "reviews.shop.svc.cluster.local"
        ]
    );
    let table = imported.validate().unwrap();
    for h in ["reviews", "reviews.shop.svc.cluster.local:9080"] {
        let req = RequestInfo::get(&format!("http://{h}/"));
        assert_eq!(backend(&table, &req), "reviews-v2:80", "{h}");
    }
    let other = RequestInfo::get("http://ratings.shop/");
    assert!(
        table.decide(&other, &mut rand::rng()).is_err(),
        "not every host"
    );
}

const INVALID: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: web}
spec:
  rules:
    - matches: [{path: {value: /same}}]
      backendRefs: [{name: api, port: 80}]
    - matches: [{path: {value: /cross}}]
      backendRefs: [{name: api, namespace: shared, port: 80}]
    - matches: [{path: {value: /kind}}]
      backendRefs: [{group: example.com, kind: Bucket, name: b}]
";

fn status_of(table: &RouteTable, path: &str) -> Option<u16> {
    let d = table
        .decide(&RequestInfo::get(path), &mut rand::rng())
        .unwrap();
    match d.rule().action() {
        Action::FixedResponse(f) => Some(f.status.as_u16()),
        _ => None,
    }
}

#[test]
fn invalid_backend_refs_answer_500_and_the_rest_stays_live() {
    let imported = import(&[Source::new("r.yaml", INVALID)], &ImportOptions::default()).unwrap();
    let table = imported.validate().unwrap();
    assert_eq!(backend(&table, &RequestInfo::get("/same")), "api:80");
    assert_eq!(status_of(&table, "/cross"), Some(500), "no ReferenceGrant");
    assert_eq!(status_of(&table, "/kind"), Some(500), "unknown kind");
    let paths: Vec<(&str, Option<&str>)> = imported
        .warnings
        .iter()
        .filter(|w| w.message.contains("answered 500"))
        .map(|w| (w.at.path.as_str(), w.reason))
        .collect();
    // Each carries the spec's `ResolvedRefs` reason, for a controller's status.
    assert_eq!(
        paths,
        [
            ("spec.rules[1].backendRefs[0]", Some("RefNotPermitted")),
            ("spec.rules[2].backendRefs[0]", Some("InvalidKind"))
        ]
    );

    // A grant in the target namespace for HTTPRoutes of `web` allows it.
    let grant = "---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: shared}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]
  to: [{group: '', kind: Service, name: api}]
";
    let text = format!("{INVALID}{grant}");
    let imported = import(&[Source::new("r.yaml", &text)], &ImportOptions::default()).unwrap();
    let table = imported.validate().unwrap();
    assert_eq!(
        backend(&table, &RequestInfo::get("/cross")),
        "shared/api:80"
    );
    // A grant for another namespace or another Service does not.
    for wrong in [
        grant.replace("namespace: web", "namespace: shop"),
        grant.replace("name: api", "name: other"),
    ] {
        let text = format!("{INVALID}{wrong}");
        let imported = import(&[Source::new("r.yaml", &text)], &ImportOptions::default()).unwrap();
        assert_eq!(
            status_of(&imported.validate().unwrap(), "/cross"),
            Some(500),
            "{wrong}"
        );
    }

    // With Gateways and Services in the input, a Service not among them is invalid.
    let cluster = "---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: web}
spec: {gatewayClassName: x, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: web}
";
    let text = INVALID
        .replace(
            "spec:\n  rules:",
            "spec:\n  parentRefs: [{name: gw}]\n  rules:",
        )
        .replace(
            "/same}}]\n      backendRefs: [{name: api,",
            "/same}}]\n      backendRefs: [{name: ghost,",
        )
        + cluster;
    let imported = import(&[Source::new("r.yaml", &text)], &ImportOptions::default()).unwrap();
    assert_eq!(
        status_of(&imported.validate().unwrap(), "/same"),
        Some(500),
        "no such Service"
    );
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.reason == Some("BackendNotFound") && w.message.contains("`web/ghost`")),
        "{:?}",
        imported.warnings
    );

    // Invalid references next to valid ones: exactly their share answers 500, from
    // one backend slot of their summed weight whose filter answers.
    let mixed = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: web}
spec:
  rules:
    - backendRefs:
        - {name: api, port: 80, weight: 8}
        - {name: api, namespace: shared, port: 80, weight: 1}
        - {name: db, kind: Database, port: 80, weight: 1}
";
    let imported = import(&[Source::new("m.yaml", mixed)], &ImportOptions::default()).unwrap();
    let warned: Vec<&str> = imported
        .warnings
        .iter()
        .filter(|w| w.message.contains("share of the requests is answered 500"))
        .map(|w| w.at.path.as_str())
        .collect();
    assert_eq!(
        warned,
        [
            "spec.rules[0].backendRefs[1]",
            "spec.rules[0].backendRefs[2]"
        ]
    );
    let table = imported.validate().unwrap();
    let fwd = table.rules()[0].forward().unwrap();
    let unresolved = table
        .backend_id(routing_core::import::UNRESOLVED_BACKEND)
        .unwrap();
    let shares: Vec<(String, u32)> = fwd
        .backends()
        .iter()
        .map(|b| (table.backend(b.id()).name().to_owned(), b.weight()))
        .collect();
    assert_eq!(
        shares,
        [
            ("api:80".to_owned(), 8),
            (routing_core::import::UNRESOLVED_BACKEND.to_owned(), 2)
        ]
    );
    let answer = fwd.filters_for(unresolved).unwrap();
    assert_eq!(answer.fixed_response.as_ref().unwrap().status, 500);
    assert!(table.backend(unresolved).address().is_none());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let failed = (0..10_000)
        .filter(|_| {
            table
                .decide(&RequestInfo::get("/"), &mut rng)
                .unwrap()
                .backend_id()
                == Some(unresolved)
        })
        .count();
    assert!((1_700..2_300).contains(&failed), "{failed} of 10 000");
}

#[test]
fn several_request_mirrors_each_get_a_copy() {
    let text = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: web}
spec:
  rules:
    - filters:
        - {type: RequestMirror, requestMirror: {backendRef: {name: m1, port: 80}}}
        - {type: RequestMirror, requestMirror: {backendRef: {name: m2, port: 80}, percent: 10}}
        - {type: RequestMirror, requestMirror: {backendRef: {name: m3, port: 80}}}
      backendRefs: [{name: api, port: 80}]
";
    let imported = import_str(text).unwrap();
    let rule = &imported.config.routes[0].rules[0];
    assert_eq!(rule.mirror.as_ref().unwrap().backend, "m1:80");
    let rest: Vec<(&str, Option<f64>)> = rule
        .mirrors
        .iter()
        .map(|m| (m.backend.as_str(), m.percent))
        .collect();
    assert_eq!(rest, [("m2:80", Some(10.0)), ("m3:80", None)]);
    let table = imported.validate().unwrap();
    let policy = table.rules()[0].policy();
    let names: Vec<&str> = policy
        .mirror
        .iter()
        .chain(&policy.mirrors)
        .map(|m| table.backend(m.backend).name())
        .collect();
    assert_eq!(names, ["m1:80", "m2:80", "m3:80"]);
    assert!((policy.mirrors[0].fraction - 0.1).abs() < 1e-9);
    round_trip(&imported);
}

/// Gateway API `GRPCRoute`: method matches become path matches on
/// `/service/method`, headers, weights and filters as in `HTTPRoute`.
#[test]
fn grpc_routes_match_services_and_methods() {
    let text = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: web}
spec:
  hostnames: [grpc.example.com]
  rules:
    - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
      backendRefs: [{name: hello, port: 50051}]
    - matches: [{method: {service: helloworld.Greeter}}]
      backendRefs: [{name: greeter, port: 50051}]
    - matches: [{method: {method: Check}}]
      backendRefs: [{name: health, port: 50051}]
    - matches: [{method: {type: RegularExpression, service: 'admin\\..*'}, headers: [{name: x-role, value: ops}]}]
      filters:
        - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-via, value: grpcroute}]}}
      backendRefs:
        - {name: admin-v1, port: 50051, weight: 9}
        - {name: admin-v2, port: 50051, weight: 1}
";
    let imported = import_str(text).unwrap();
    let table = imported.validate().unwrap();
    let call =
        |path: &str| RequestInfo::new(Method::POST, &format!("http://grpc.example.com{path}"));
    assert_eq!(
        backend(&table, &call("/helloworld.Greeter/SayHello")),
        "hello:50051"
    );
    assert_eq!(
        backend(&table, &call("/helloworld.Greeter/SayGoodbye")),
        "greeter:50051"
    );
    assert_eq!(
        backend(&table, &call("/grpc.health.v1.Health/Check")),
        "health:50051"
    );
    let admin = call("/admin.Users/Delete").header("x-role", "ops");
    assert!(backend(&table, &admin).starts_with("admin-v"));
    assert!(
        table
            .decide(&call("/admin.Users/Delete"), &mut rand::rng())
            .is_err(),
        "x-role needed"
    );
    assert!(table
        .decide(&call("/other.Svc/Call"), &mut rand::rng())
        .is_err());
    let d = table.decide(&admin, &mut rand::rng()).unwrap();
    assert_eq!(d.rule().policy().request_headers.set[0].0, "x-via");
    let weights: Vec<u32> = d
        .rule()
        .forward()
        .unwrap()
        .backends()
        .iter()
        .map(|b| b.weight())
        .collect();
    assert_eq!(weights, [9, 1]);
    // The route keeps its source: the resource names the GRPCRoute.
    assert_eq!(
        imported
            .origin_of("routes[0]")
            .and_then(|l| l.resource.as_deref()),
        Some("GRPCRoute web/greeter")
    );
}

#[test]
fn grpc_route_errors_name_their_field() {
    let route = |rule: &str| {
        format!("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{name: g, namespace: ns}}\nspec:\n  rules:\n{rule}")
    };
    for (rule, path) in [
        ("    - matches: [{method: {service: 'bad service'}}]\n      backendRefs: [{name: a}]\n", "spec.rules[0].matches[0].method.service"),
        ("    - matches: [{method: {type: Exact}}]\n      backendRefs: [{name: a}]\n", "spec.rules[0].matches[0].method"),
        ("    - matches: [{method: {service: a.B, method: 'x/y'}}]\n      backendRefs: [{name: a}]\n", "spec.rules[0].matches[0].method.method"),
        ("    - matches: [{method: {type: RegularExpression, service: 'a.(b', method: Get}}]\n      backendRefs: [{name: a}]\n", "spec.rules[0].matches[0].method.service"),
        ("    - matches: [{method: {type: RegularExpression, method: '[x'}}]\n      backendRefs: [{name: a}]\n", "spec.rules[0].matches[0].method.method"),
        ("    - filters: [{type: URLRewrite, urlRewrite: {hostname: x.test}}]\n      backendRefs: [{name: a}]\n", "spec.rules[0].filters[0].type"),
    ] {
        let err = import_str(&route(rule)).unwrap_err();
        let e = &err.errors()[0];
        assert_eq!(e.at.path, path, "{err}");
        assert!(matches!(e.kind, ImportErrorKind::Invalid(_)), "{err}");
        assert_eq!(e.at.resource.as_deref(), Some("GRPCRoute ns/g"));
    }
    // Unknown fields are parse errors (timeouts and retry are not GRPCRoute fields).
    let err = import_str(&route(
        "    - backendRefs: [{name: a}]\n      timeouts: {request: 1s}\n",
    ))
    .unwrap_err();
    assert!(
        matches!(err.errors()[0].kind, ImportErrorKind::Parse(_)),
        "{err}"
    );
}

/// A Service port's `appProtocol` sets the backend's protocol (`kubernetes.io/h2c`
/// → `h2c`, `kubernetes.io/ws` → `http1`; others warned about), and a
/// `ReferenceGrant` applies to the route kind it names: one `from` `HTTPRoute`
/// does not let a `GRPCRoute` refer across namespaces.
#[test]
fn app_protocol_and_grants_per_route_kind() {
    let text = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: web}
spec: {gatewayClassName: x, listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {kinds: [{kind: HTTPRoute}, {kind: GRPCRoute}]}}]}
---
apiVersion: v1
kind: Service
metadata: {name: grpc, namespace: web}
spec: {ports: [{port: 50051, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: v1
kind: Service
metadata: {name: chat, namespace: web}
spec: {ports: [{port: 80, appProtocol: kubernetes.io/ws}, {port: 443, appProtocol: example.com/custom}]}
---
apiVersion: v1
kind: Service
metadata: {name: shared, namespace: other}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: http-only, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]
  to: [{group: '', kind: Service}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: web}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches: [{method: {service: a.A}}]
      backendRefs: [{name: grpc, port: 50051}]
    - matches: [{method: {service: b.B}}]
      backendRefs: [{name: shared, namespace: other, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h, namespace: web}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches: [{path: {value: /chat}}]
      backendRefs: [{name: chat, port: 80}]
    - matches: [{path: {value: /custom}}]
      backendRefs: [{name: chat, port: 443}]
    - matches: [{path: {value: /shared}}]
      backendRefs: [{name: shared, namespace: other, port: 80}]
";
    let imported = import_str(text).unwrap();
    let protocol = |name: &str| {
        imported
            .config
            .backends
            .iter()
            .find(|b| b.name == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", imported.config.backends))
            .protocol
    };
    assert_eq!(
        protocol("grpc:50051"),
        Some(routing_core::BackendProtocol::H2c)
    );
    assert_eq!(
        protocol("chat:80"),
        Some(routing_core::BackendProtocol::Http1)
    );
    assert_eq!(protocol("chat:443"), None);
    assert!(imported
        .warnings
        .iter()
        .any(|w| w.message.contains("appProtocol `example.com/custom`")));
    let table = imported.validate().unwrap();
    assert_eq!(
        table
            .backend(table.backend_id("grpc:50051").unwrap())
            .protocol(),
        Some(routing_core::BackendProtocol::H2c)
    );
    // The grant names HTTPRoute: the HTTPRoute may refer to `other/shared`, the
    // GRPCRoute may not (its rule answers 500).
    assert_eq!(
        backend(&table, &RequestInfo::get("/shared")),
        "other/shared:80"
    );
    assert_eq!(status_of(&table, "/b.B/Call"), Some(500));
    // A listener that admits only HTTPRoutes leaves the GRPCRoute out.
    let http_only = text.replace(
        "kinds: [{kind: HTTPRoute}, {kind: GRPCRoute}]",
        "kinds: [{kind: HTTPRoute}]",
    );
    let imported = import_str(&http_only).unwrap();
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.at.resource.as_deref() == Some("GRPCRoute web/g")
                && w.message.starts_with("left out")),
        "{:?}",
        imported.warnings
    );
    assert!(imported
        .config
        .routes
        .iter()
        .all(|r| !r.name.ends_with("/g")));
}
