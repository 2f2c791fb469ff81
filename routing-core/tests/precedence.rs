//! The indexed lookup must pick exactly the rule a naive reference picks.
//!
//! The reference works from the `Config` alone: it scans every route, rule and match,
//! evaluates the conditions with plain string code, ranks candidates by the Gateway API
//! order (written out again here, not borrowed from the crate) and keeps the best.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::strategy::Strategy;
use routing_core::*;

const HOSTS: &[&str] = &[
    "a.test",
    "b.test",
    "x.a.test",
    "*.a.test",
    "*.test",
    "*.x.a.test",
];
const REQ_HOSTS: &[Option<&str>] = &[
    Some("a.test"),
    Some("b.test"),
    Some("x.a.test"),
    Some("y.x.a.test"),
    Some("c.test"),
    Some("A.TEST:8080"),
    Some("other.example"),
    None,
];
const EXACT: &[&str] = &["/", "/api", "/api/v1", "/api/v1/users", "/apix"];
const PREFIX: &[&str] = &["/", "/api", "/api/", "/api/v1", "/ap", "/api/v1/users"];
const REGEX: &[&str] = &["/api/.*", "/api/v[0-9]+", ".*", "/a.*x"];
const REQ_PATHS: &[&str] = &[
    "/",
    "/api",
    "/api/",
    "/api/v1",
    "/api/v1/users",
    "/apix",
    "/api/v2/x",
    "/other",
    "/api/v1/users/7",
];
const HEADERS: &[&str] = &["x-a", "x-b", "x-c"];
const VALUES: &[&str] = &["1", "2"];

fn path_strategy() -> impl Strategy<Value = Option<PathMatchConfig>> {
    prop_oneof![
        Just(None),
        prop::sample::select(EXACT).prop_map(|p| Some(PathMatchConfig {
            exact: Some(p.into()),
            ..Default::default()
        })),
        prop::sample::select(PREFIX).prop_map(|p| Some(PathMatchConfig {
            prefix: Some(p.into()),
            ..Default::default()
        })),
        prop::sample::select(REGEX).prop_map(|p| Some(PathMatchConfig {
            regex: Some(p.into()),
            ..Default::default()
        })),
        prop::sample::select(PREFIX).prop_map(|p| Some(PathMatchConfig {
            starts_with: Some(p.into()),
            ..Default::default()
        })),
    ]
}

fn header_strategy() -> impl Strategy<Value = HeaderMatchConfig> {
    (
        prop::sample::select(HEADERS),
        0..4usize,
        prop::sample::select(VALUES),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(name, kind, v, invert)| {
            let mut h = HeaderMatchConfig {
                name: name.into(),
                invert,
                ..Default::default()
            };
            match kind {
                0 | 1 => h.exact = Some(v.into()),
                2 => h.present = true,
                _ => h.absent = true,
            }
            h
        })
}

fn match_strategy() -> impl Strategy<Value = MatchConfig> {
    (
        path_strategy(),
        prop::option::of(prop::sample::select(&["GET", "POST"][..])),
        prop::collection::vec(header_strategy(), 0..3),
        prop::collection::vec(
            (
                prop::sample::select(&["q", "r"][..]),
                prop::sample::select(VALUES),
            ),
            0..2,
        ),
    )
        .prop_map(|(path, method, headers, query)| MatchConfig {
            path,
            method: method.map(Into::into),
            headers,
            query: query
                .into_iter()
                .map(|(n, v)| QueryMatchConfig {
                    name: n.into(),
                    exact: Some(v.into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
}

fn config_strategy() -> impl Strategy<Value = Config> {
    let rule = prop::collection::vec(match_strategy(), 0..3).prop_map(|matches| RuleConfig {
        matches,
        backends: vec![WeightedBackendConfig::new("b", 1)],
        ..Default::default()
    });
    let route = (
        prop::sample::subsequence(HOSTS, 0..3),
        prop::collection::vec(rule, 1..5),
        prop::option::of(prop::sample::select(vec![
            RulePrecedence::Specificity,
            RulePrecedence::FirstMatch,
        ])),
    );
    prop::collection::vec(route, 1..6).prop_map(|routes| Config {
        backends: vec![BackendConfig {
            name: "b".into(),
            address: None,
            connection_pool: None,
            protocol: None,
            endpoints: Vec::new(),
        }],
        routes: routes
            .into_iter()
            .enumerate()
            .map(|(i, (hosts, rules, precedence))| RouteConfig {
                precedence,
                name: format!("r{i}"),
                hostnames: hosts.into_iter().map(Into::into).collect(),
                rules,
            })
            .collect(),
        ..Default::default()
    })
}

fn request_strategy() -> impl Strategy<Value = RequestInfo> {
    (
        prop::sample::select(REQ_HOSTS),
        prop::sample::select(REQ_PATHS),
        prop::sample::select(&["GET", "POST"][..]),
        prop::collection::vec(
            (prop::sample::select(HEADERS), prop::sample::select(VALUES)),
            0..4,
        ),
        prop::collection::vec(
            (
                prop::sample::select(&["q", "r"][..]),
                prop::sample::select(VALUES),
            ),
            0..3,
        ),
    )
        .prop_map(|(host, path, method, headers, query)| {
            let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let uri = if q.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", q.join("&"))
            };
            let mut r = RequestInfo::new(method.parse().unwrap(), &uri);
            if let Some(h) = host {
                r = r.header("host", h);
            }
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r
        })
}

// ---- the reference ----

/// Host rank: 3 = exact, 2 = wildcard (with suffix length), 1 = route without hostnames.
fn ref_host(hostnames: &[String], authority: Option<&str>) -> Option<(u8, usize)> {
    if hostnames.is_empty() {
        return Some((1, 0));
    }
    let a = authority?.to_ascii_lowercase();
    let host = a.split(':').next().unwrap_or("");
    hostnames
        .iter()
        .filter_map(|h| match h.strip_prefix('*') {
            Some(suffix) => {
                (host.len() > suffix.len() && host.ends_with(suffix)).then_some((2, suffix.len()))
            }
            None => (h == host).then_some((3, 0)),
        })
        .max()
}

/// Path rank: (kind: 3 exact, 2 regex, 1 prefix; length).
fn ref_path(p: &Option<PathMatchConfig>, path: &str) -> Option<(u8, usize)> {
    let Some(p) = p else { return Some((1, 1)) };
    if let Some(e) = &p.exact {
        return (e == path).then_some((3, 0));
    }
    if let Some(r) = &p.regex {
        let re = regex::Regex::new(&format!("^(?:{r})$")).unwrap();
        return re.is_match(path).then_some((2, r.len()));
    }
    if let Some(sw) = &p.starts_with {
        // Ranked as a regular expression of its length.
        return path.starts_with(sw.as_str()).then_some((2, sw.len()));
    }
    let pre = p.prefix.as_deref().unwrap().trim_end_matches('/');
    let segment_ok = pre.is_empty()
        || (path.starts_with(pre)
            && (path.len() == pre.len() || path.as_bytes()[pre.len()] == b'/'));
    segment_ok.then_some((1, pre.len().max(1)))
}

fn ref_conditions(m: &MatchConfig, req: &RequestInfo) -> bool {
    if m.method
        .as_deref()
        .is_some_and(|me| me != req.method().as_str())
    {
        return false;
    }
    let headers_ok = m.headers.iter().all(|h| {
        let vals: Vec<&str> = req
            .headers()
            .get_all(h.name.as_str())
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        let hit = if h.present {
            !vals.is_empty()
        } else if h.absent {
            vals.is_empty()
        } else {
            vals.contains(&h.exact.as_deref().unwrap())
        };
        hit != h.invert
    });
    let query: Vec<(&str, &str)> = req
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let query_ok = m.query.iter().all(|q| {
        // The first occurrence of a repeated parameter counts.
        query
            .iter()
            .find(|(k, _)| *k == q.name)
            .is_some_and(|(_, v)| Some(*v) == q.exact.as_deref())
    });
    headers_ok && query_ok
}

/// The best (rule index, match index) by linear scan, or None.
fn reference(cfg: &Config, req: &RequestInfo) -> Option<(usize, usize)> {
    /// Host tier; then `first_match` routes (ranked by declaration order alone)
    /// before the rest (ranked by specificity).
    type Rank = (
        (u8, usize),
        bool,
        (u8, usize),
        bool,
        usize,
        usize,
        std::cmp::Reverse<(usize, usize, usize)>,
    );
    let mut best: Option<(Rank, usize, usize)> = None;
    let mut flat = 0;
    for (ri, route) in cfg.routes.iter().enumerate() {
        let host = ref_host(&route.hostnames, req.host());
        for (ui, rule) in route.rules.iter().enumerate() {
            let default = [MatchConfig::default()];
            let matches: &[MatchConfig] = if rule.matches.is_empty() {
                &default
            } else {
                &rule.matches
            };
            for (mi, m) in matches.iter().enumerate() {
                let (Some(h), Some(p)) = (host, ref_path(&m.path, req.path())) else {
                    continue;
                };
                if !ref_conditions(m, req) {
                    continue;
                }
                let order = std::cmp::Reverse((ri, ui, mi));
                let rank = if route.precedence == Some(RulePrecedence::FirstMatch) {
                    (h, true, (0, 0), false, 0, 0, order)
                } else {
                    (
                        h,
                        false,
                        p,
                        m.method.is_some(),
                        m.headers.len(),
                        m.query.len(),
                        order,
                    )
                };
                if best.as_ref().is_none_or(|(b, _, _)| rank > *b) {
                    best = Some((rank, flat, mi));
                }
            }
            flat += 1;
        }
    }
    best.map(|(_, r, m)| (r, m))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn index_agrees_with_linear_reference(cfg in config_strategy(), reqs in prop::collection::vec(request_strategy(), 1..20)) {
        let table = cfg.clone().validate().unwrap();
        for req in &reqs {
            let got = table.find(req).map(|c| (c.rule, c.r#match));
            let want = reference(&cfg, req);
            prop_assert_eq!(got, want, "request {:?}", req);
            let first = table.candidates(req).first().map(|c| (c.rule, c.r#match));
            prop_assert_eq!(first, want, "candidates() must list the winner first");
            if let Some(c) = table.find(req) {
                prop_assert!(table.rules()[c.rule].matches()[c.r#match].matches(req), "the winner must match");
                let route = &table.routes()[table.rules()[c.rule].route_index()];
                prop_assert_eq!(Some(c.summary.host), route.host_specificity(req.host()));
            }
        }
    }
}

// ---- dense tables: the first_match trie and the header-keyed buckets ----

/// Literals that share prefixes byte by byte and segment by segment, so the trie of
/// `first_match` routes branches, and prefix buckets fill up.
const LITERALS: &[&str] = &[
    "/", "/a", "/a/", "/ab", "/a/b", "/a/b/", "/abc", "/b", "/ba/a", "/a/bb",
];
const DENSE_REGEX: &[&str] = &["/a.*", "/a/[ab]+", ".*b"];

fn dense_path_strategy() -> impl Strategy<Value = Option<PathMatchConfig>> {
    let lit = || prop::sample::select(LITERALS).prop_map(String::from);
    prop_oneof![
        1 => Just(None),
        3 => lit().prop_map(|p| Some(PathMatchConfig { exact: Some(p), ..Default::default() })),
        3 => lit().prop_map(|p| Some(PathMatchConfig { prefix: Some(p), ..Default::default() })),
        4 => lit().prop_map(|p| Some(PathMatchConfig { starts_with: Some(p), ..Default::default() })),
        1 => prop::sample::select(DENSE_REGEX)
            .prop_map(|p| Some(PathMatchConfig { regex: Some(p.into()), ..Default::default() })),
    ]
}

/// Mostly `x-a` exact conditions with several values, so buckets get keyed by value.
fn dense_header_strategy() -> impl Strategy<Value = HeaderMatchConfig> {
    prop_oneof![
        4 => (prop::sample::select(&["1", "2", "3", "4"][..]), prop::bool::weighted(0.1)).prop_map(
            |(v, invert)| HeaderMatchConfig {
                name: "x-a".into(),
                exact: Some(v.into()),
                invert,
                ..Default::default()
            }
        ),
        1 => header_strategy(),
    ]
}

fn dense_config_strategy() -> impl Strategy<Value = Config> {
    let m = (
        dense_path_strategy(),
        prop::option::of(prop::sample::select(&["GET", "POST"][..])),
        prop::collection::vec(dense_header_strategy(), 0..3),
    )
        .prop_map(|(path, method, headers)| MatchConfig {
            path,
            method: method.map(Into::into),
            headers,
            ..Default::default()
        });
    let rule = prop::collection::vec(m, 1..3).prop_map(|matches| RuleConfig {
        matches,
        backends: vec![WeightedBackendConfig::new("b", 1)],
        ..Default::default()
    });
    let route = (
        prop::sample::subsequence(HOSTS, 0..2),
        prop::collection::vec(rule, 1..40),
        prop::bool::weighted(0.7),
    );
    prop::collection::vec(route, 1..4).prop_map(|routes| Config {
        backends: vec![BackendConfig {
            name: "b".into(),
            address: None,
            connection_pool: None,
            protocol: None,
            endpoints: Vec::new(),
        }],
        routes: routes
            .into_iter()
            .enumerate()
            .map(|(i, (hosts, rules, first))| RouteConfig {
                precedence: first.then_some(RulePrecedence::FirstMatch),
                name: format!("r{i}"),
                hostnames: hosts.into_iter().map(Into::into).collect(),
                rules,
            })
            .collect(),
        ..Default::default()
    })
}

fn dense_request_strategy() -> impl Strategy<Value = RequestInfo> {
    (
        prop::sample::select(REQ_HOSTS),
        prop_oneof![
            prop::sample::select(LITERALS).prop_map(String::from),
            "/[ab/]{0,6}",
        ],
        prop::sample::select(&["GET", "POST"][..]),
        // Repeated `x-a` values too: a keyed bucket must fall back to a scan.
        prop::collection::vec(
            (
                prop::sample::select(&["x-a", "x-a", "x-b"][..]),
                prop::sample::select(&["1", "2", "3", "4"][..]),
            ),
            0..3,
        ),
    )
        .prop_map(|(host, path, method, headers)| {
            let mut r = RequestInfo::new(method.parse().unwrap(), &path);
            if let Some(h) = host {
                r = r.header("host", h);
            }
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r
        })
}

/// The first match in declaration order among `first_match` routes of the best host
/// tier, using the crate's own predicates: what the index replaced.
fn linear_first_match(t: &RouteTable, req: &RequestInfo) -> Option<(usize, usize)> {
    let mut best: Option<(HostSpecificity, (usize, usize))> = None;
    for route in t.routes() {
        let Some(host) = route.host_specificity(req.host()) else {
            continue;
        };
        if best.is_some_and(|(h, _)| h >= host) {
            continue;
        }
        let hit = route.rule_indices().find_map(|ri| {
            t.rules()[ri]
                .matches()
                .iter()
                .position(|m| m.matches(req))
                .map(|mi| (ri, mi))
        });
        if let Some(hit) = hit {
            best = Some((host, hit));
        }
    }
    best.map(|(_, hit)| hit)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    /// Large `first_match` tables (the trie) and specificity tables with many
    /// candidates per bucket (keyed by a header value) against the reference.
    #[test]
    fn dense_tables_agree_with_linear_reference(cfg in dense_config_strategy(), reqs in prop::collection::vec(dense_request_strategy(), 1..30)) {
        let table = cfg.clone().validate().unwrap();
        let all_first = table.routes().iter().all(|r| r.precedence() == RulePrecedence::FirstMatch);
        for req in &reqs {
            let got = table.find(req).map(|c| (c.rule, c.r#match));
            prop_assert_eq!(got, reference(&cfg, req), "request {:?}", req);
            if all_first {
                prop_assert_eq!(got, linear_first_match(&table, req), "indexed vs linear first_match, request {:?}", req);
            }
        }
    }
}

fn table(yaml: &str) -> RouteTable {
    RouteTable::from_yaml(yaml).unwrap()
}

fn winner(t: &RouteTable, req: &RequestInfo) -> Option<String> {
    t.find(req)
        .map(|c| t.rules()[c.rule].name().unwrap_or("?").to_owned())
}

#[test]
fn gateway_api_precedence_examples() {
    let t = table(
        r#"
backends: [{name: b}]
routes:
  - name: any
    rules:
      - {name: root, backends: [{name: b}]}
      - {name: prefix-api, matches: [{path: {prefix: /api}}], backends: [{name: b}]}
      - {name: prefix-api-v1, matches: [{path: {prefix: /api/v1}}], backends: [{name: b}]}
      - {name: exact-api, matches: [{path: {exact: /api}}], backends: [{name: b}]}
      - {name: method, matches: [{path: {prefix: /api/v1}, method: POST}], backends: [{name: b}]}
      - {name: one-header, matches: [{path: {prefix: /api/v1}, method: POST, headers: [{name: x-a, present: true}]}], backends: [{name: b}]}
      - {name: two-headers, matches: [{path: {prefix: /api/v1}, method: POST, headers: [{name: x-a, present: true}, {name: x-b, present: true}]}], backends: [{name: b}]}
      - {name: query, matches: [{path: {prefix: /api/v1}, method: POST, headers: [{name: x-a, present: true}, {name: x-b, present: true}], query: [{name: q, present: true}]}], backends: [{name: b}]}
      - {name: regex, matches: [{path: {regex: "/api/v[0-9]+/items"}}], backends: [{name: b}]}
  - name: wild
    hostnames: ["*.example.com"]
    rules: [{name: wildcard-host, backends: [{name: b}]}]
  - name: exact-host
    hostnames: [shop.example.com]
    rules: [{name: exact-host, matches: [{path: {prefix: /only}}], backends: [{name: b}]}]
"#,
    );
    let cases: &[(RequestInfo, &str)] = &[
        (RequestInfo::get("/"), "root"),
        (RequestInfo::get("/apix"), "root"),
        (RequestInfo::get("/api"), "exact-api"),
        (RequestInfo::get("/api/"), "prefix-api"),
        (RequestInfo::get("/api/v1/x"), "prefix-api-v1"),
        (RequestInfo::get("/api/v2/items"), "regex"),
        (RequestInfo::new(http::Method::POST, "/api/v1"), "method"),
        (
            RequestInfo::new(http::Method::POST, "/api/v1").header("x-a", "1"),
            "one-header",
        ),
        (
            RequestInfo::new(http::Method::POST, "/api/v1")
                .header("x-a", "1")
                .header("x-b", "1"),
            "two-headers",
        ),
        (
            RequestInfo::new(http::Method::POST, "/api/v1?q=1")
                .header("x-a", "1")
                .header("x-b", "1"),
            "query",
        ),
        (
            RequestInfo::get("http://www.example.com/api"),
            "wildcard-host",
        ),
        (
            RequestInfo::get("http://shop.example.com/only/x"),
            "exact-host",
        ),
        // The exact host has no rule for /api: fall through to the wildcard host.
        (
            RequestInfo::get("http://shop.example.com/api"),
            "wildcard-host",
        ),
        // `*.example.com` does not match the apex.
        (RequestInfo::get("http://example.com/api"), "exact-api"),
    ];
    for (req, want) in cases {
        assert_eq!(
            winner(&t, req).as_deref(),
            Some(*want),
            "{} {} must go to {want}",
            req.method(),
            req.path()
        );
    }
}

#[test]
fn declaration_order_breaks_ties_across_routes_and_rules() {
    let t = table(
        r#"
backends: [{name: b}]
routes:
  - {name: first, rules: [{name: first-a, matches: [{path: {prefix: /x}}], backends: [{name: b}]}, {name: first-b, matches: [{path: {prefix: /x}}], backends: [{name: b}]}]}
  - {name: second, rules: [{name: second-a, matches: [{path: {prefix: /x}}], backends: [{name: b}]}]}
"#,
    );
    assert_eq!(
        winner(&t, &RequestInfo::get("/x/1")).as_deref(),
        Some("first-a")
    );
}

#[test]
fn a_lookup_does_not_scan_unrelated_hosts() {
    // 10 000 hosts with a regex rule each: a request for one host must not evaluate
    // the others' regexes. The regexes here would all match, so a linear scan would
    // return the first declared host's rule instead.
    let mut yaml = String::from("backends: [{name: b}]\nroutes:\n");
    for i in 0..10_000 {
        yaml.push_str(&format!(
            "  - {{name: r{i}, hostnames: [h{i}.test], rules: [{{name: rule{i}, matches: [{{path: {{regex: '.*'}}}}], backends: [{{name: b}}]}}]}}\n"
        ));
    }
    let t = table(&yaml);
    assert_eq!(
        winner(&t, &RequestInfo::get("http://h9876.test/any")).as_deref(),
        Some("rule9876")
    );
    assert_eq!(winner(&t, &RequestInfo::get("http://nope.test/any")), None);
}

#[test]
fn very_deep_paths_still_find_deep_prefixes() {
    let deep: String = (0..80).map(|i| format!("/s{i}")).collect();
    let t = table(&format!(
        "backends: [{{name: b}}]\nroutes: [{{name: r, rules: [{{name: shallow, matches: [{{path: {{prefix: /s0}}}}], backends: [{{name: b}}]}}, {{name: deep, matches: [{{path: {{prefix: '{deep}'}}}}], backends: [{{name: b}}]}}]}}]"
    ));
    assert_eq!(
        winner(&t, &RequestInfo::get(&format!("{deep}/x"))).as_deref(),
        Some("deep")
    );
    assert_eq!(
        winner(&t, &RequestInfo::get("/s0/s1")).as_deref(),
        Some("shallow")
    );
}

#[test]
fn a_leading_dot_is_not_a_wildcard_label() {
    // Found by the `route_request` fuzz target: `.example.com` has an empty first label
    // and must not match `*.example.com` (the reference and `host_specificity` agree).
    let t = table(
        "backends: [{name: b}]\nroutes: [{name: w, hostnames: ['*.example.com'], rules: [{name: wild, backends: [{name: b}]}]}, {name: c, hostnames: ['*.com'], rules: [{name: com, backends: [{name: b}]}]}]",
    );
    for host in [".example.com", ".example.com.:80", "[.example.com]"] {
        let req = RequestInfo::get("/").header("host", host);
        assert_ne!(winner(&t, &req).as_deref(), Some("wild"), "{host}");
    }
    assert_eq!(
        winner(&t, &RequestInfo::get("http://a.example.com/")).as_deref(),
        Some("wild")
    );
}
