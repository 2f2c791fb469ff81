//! Shared checks for the `routing-core` fuzz targets.
//!
//! The targets in `fuzz_targets/` are thin: they turn fuzzer bytes into a
//! [`Config`], a request or a Maglev input and call into this module, which drives
//! the public API of `routing-core` and asserts the properties that must hold for
//! every input. Any panic — in `routing-core` or in an assertion here — is a finding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use routing_core::{
    Action, Config, ConfigError, FiveTuple, HostSpecificity, PathMatch, PathSpecificity,
    RequestInfo, RouteError, RouteRequest, RouteTable, Strategy,
};

/// At most this many requests are routed per configuration (keeps executions fast).
const MAX_REQUESTS: usize = 48;

/// What every configuration target does with the parser's answer: errors must format
/// (their `Display` walks paths and positions); a parsed config goes to [`check_config`].
pub fn check_parsed(parsed: Result<Config, ConfigError>) {
    match parsed {
        Ok(cfg) => check_config(cfg),
        Err(e) => drop(e.to_string()),
    }
}

/// What every configuration target does once its format parsed: validate, and for a
/// valid configuration route requests through the table and check that `to_yaml`
/// round-trips.
pub fn check_config(cfg: Config) {
    let table = match cfg.clone().validate() {
        Ok(table) => table,
        Err(e) => {
            // Every validation error carries a field path and formats.
            if let Some(v) = e.validation() {
                assert!(!v.errors().is_empty(), "a validation error without errors");
            }
            drop(e.to_string());
            return;
        }
    };
    assert!(
        table.config() == &cfg,
        "RouteTable::config() differs from the validated Config"
    );
    // Validation succeeded, so nothing was dropped on the way.
    assert_eq!(table.backends().len(), cfg.backends.len());
    assert_eq!(table.routes().len(), cfg.routes.len());
    assert_eq!(
        table.rules().len(),
        cfg.routes.iter().map(|r| r.rules.len()).sum::<usize>()
    );
    assert_eq!(table.tcp_services().len(), cfg.tcp_services.len());

    for req in requests_for(&cfg) {
        check_request(&table, &req, None);
    }
    check_flows(&table);

    // Round trip: the YAML we write must read back as the same configuration.
    let yaml = cfg.to_yaml();
    let back = match Config::from_yaml(&yaml) {
        Ok(back) => back,
        Err(e) => panic!(
            "to_yaml() output does not re-parse: {e}\n--- config ---\n{cfg:#?}\n--- to_yaml ---\n{yaml}"
        ),
    };
    assert!(
        back == cfg,
        "to_yaml() round trip changed the config\n--- before ---\n{cfg:#?}\n--- after ---\n{back:#?}\n--- to_yaml ---\n{yaml}"
    );
}

/// What every import target does: `import` must not panic, its errors and warnings
/// must format and name a source; an import that validates goes through
/// [`check_config`] (routing and the `to_yaml` round trip), and a native validation
/// error must be mapped back to a source location.
pub fn check_import(text: &str) {
    use routing_core::import::{import, ImportOptions, Source};
    let sources = [Source::new("fuzz.yaml", text)];
    match import(&sources, &ImportOptions::default()) {
        Err(e) => {
            assert!(!e.errors().is_empty(), "an import error without errors");
            for err in e.errors() {
                assert_eq!(err.at.source, "fuzz.yaml");
                drop(err.to_string());
            }
        }
        Ok(imported) => {
            for w in &imported.warnings {
                drop(w.to_string());
            }
            assert_eq!(imported.origins.len(), imported.config.routes.len());
            for (o, r) in imported.origins.iter().zip(&imported.config.routes) {
                assert_eq!(o.rules.len(), r.rules.len(), "one origin per native rule");
            }
            match imported.validate() {
                Ok(_) => check_config(imported.config),
                Err(e) => {
                    assert!(!e.errors().is_empty());
                    for err in e.errors() {
                        drop(err.to_string());
                    }
                }
            }
        }
    }
}

/// Requests worth routing through a table built from `cfg`: a few fixed ones, plus one
/// per (route, rule, match) that tries to satisfy that match (its host, path, method,
/// scheme, headers and query parameters), so routing is exercised on requests that
/// actually reach the rules.
pub fn requests_for(cfg: &Config) -> Vec<RequestInfo> {
    let mut out = vec![
        RequestInfo::get("/"),
        RequestInfo::get("http://example.com/"),
        RequestInfo::new(
            http::Method::POST,
            "https://a.b.example.com:8443/api/v1/users?x=1&y=%20",
        )
        .header("x-canary", "true")
        .header("cookie", "session=abc; a=1")
        .source(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        RequestInfo::get("/api/")
            .header("host", "Example.COM.")
            .header("x-user", "u1"),
    ];
    'routes: for route in cfg.routes.iter().take(8) {
        let host = route.hostnames.first().map(|h| {
            h.strip_prefix('*')
                .map_or_else(|| h.clone(), |s| format!("x{s}"))
        });
        for rule in route.rules.iter().take(8) {
            let mut matches: Vec<Option<&routing_core::MatchConfig>> =
                rule.matches.iter().take(4).map(Some).collect();
            if matches.is_empty() {
                matches.push(None);
            }
            for m in matches {
                if out.len() >= MAX_REQUESTS {
                    break 'routes;
                }
                out.push(request_for_match(host.as_deref(), m, rule));
            }
        }
    }
    out
}

fn request_for_match(
    host: Option<&str>,
    m: Option<&routing_core::MatchConfig>,
    rule: &routing_core::RuleConfig,
) -> RequestInfo {
    let path = m
        .and_then(|m| m.path.as_ref())
        .and_then(|p| p.exact.clone().or_else(|| p.prefix.clone()))
        .unwrap_or_else(|| "/".to_owned());
    let scheme = m
        .and_then(|m| m.scheme.as_deref())
        .unwrap_or("http")
        .to_ascii_lowercase();
    let mut query = String::new();
    for q in m.map(|m| &m.query[..]).unwrap_or_default() {
        if !query.is_empty() {
            query.push('&');
        }
        let value = q.exact.as_deref().unwrap_or("v");
        query.extend(form_pair(&q.name, value));
    }
    let mut uri = match host {
        Some(h) => format!("{scheme}://{h}{path}"),
        None => path,
    };
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query);
    }
    let method = m
        .and_then(|m| m.method.as_deref())
        .and_then(|s| http::Method::from_bytes(s.as_bytes()).ok())
        .unwrap_or(http::Method::GET);
    let mut req = RequestInfo::new(method, &uri).source(IpAddr::V6(Ipv6Addr::LOCALHOST));
    for h in m.map(|m| &m.headers[..]).unwrap_or_default() {
        if h.absent {
            continue;
        }
        let value = h.exact.as_deref().or(h.prefix.as_deref()).unwrap_or("1");
        req = req.header(&h.name, value);
    }
    // Give consistent hashing its key, when the rule hashes on a header or cookie.
    if let Some(on) = rule
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.consistent_hash.as_ref())
    {
        if let Some(h) = &on.header {
            req = req.header(h, "sticky-user");
        }
        if let Some(c) = &on.cookie {
            req = req.header("cookie", &format!("{c}=sticky-user"));
        }
    }
    req
}

fn form_pair(name: &str, value: &str) -> [String; 3] {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    [enc(name), "=".to_owned(), enc(value)]
}

/// The path precedence of a match, as the table ranks it (see `precedence.rs`).
fn path_specificity(p: &PathMatch) -> Option<PathSpecificity> {
    Some(match p {
        PathMatch::Exact(_) => PathSpecificity::Exact,
        PathMatch::Prefix(p) => PathSpecificity::Prefix {
            len: p.len().clamp(1, u16::MAX as usize) as u16,
        },
        // The pattern as written, without the `^(?:…)$` it is compiled in.
        PathMatch::Regex(r) => PathSpecificity::Regex {
            len: r.as_str().len().saturating_sub(6).min(u16::MAX as usize) as u16,
        },
        PathMatch::StartsWith(p) => PathSpecificity::Regex {
            len: p.len().min(u16::MAX as usize) as u16,
        },
        _ => return None,
    })
}

/// Routes `req` through `table` and checks `find` and `decide` against each other and
/// against a brute-force scan of every rule:
///
/// * the rule `find` returns really matches (`rules()[i].matches()[j].matches(req)`),
///   its route's hostnames accept the request's host with the specificity reported,
///   and the reported path specificity and declaration order are the match's own;
/// * no matching (route, rule, match) has a better (host, path) precedence;
/// * `find` answers `None` only when no rule matches at all;
/// * `decide` agrees with `find`, picks only positive-weight backends of a forwarding
///   rule (an unavailable one only in panic mode) and is sticky for hashed keys.
///
/// `panic_threshold` is the table's threshold as a fraction, when the caller knows it
/// (only needed when some backends are unavailable).
pub fn check_request(table: &RouteTable, req: &RequestInfo, panic_threshold: Option<f64>) {
    let found = table.find(req).map(|c| (c.rule, c.r#match, c.summary));

    // Brute force: the best (host, path) precedence among all matching candidates.
    let host = req.host();
    let mut best: Option<(HostSpecificity, PathSpecificity)> = None;
    for route in table.routes() {
        let Some(hs) = route.host_specificity(host) else {
            continue;
        };
        for ri in route.rule_indices() {
            for m in table.rules()[ri].matches() {
                if m.matches(req) {
                    let key = (
                        hs,
                        path_specificity(m.path()).unwrap_or(PathSpecificity::Exact),
                    );
                    best = best.max(Some(key));
                }
            }
        }
    }

    match found {
        None => assert!(
            best.is_none(),
            "find() found no rule, but a rule matches (best precedence {best:?}); request {req:?}"
        ),
        Some((ri, mi, summary)) => {
            let rule = &table.rules()[ri];
            let m = &rule.matches()[mi];
            assert!(
                m.matches(req),
                "find() returned rules()[{ri}].matches()[{mi}], which does not match {req:?}"
            );
            let route = &table.routes()[rule.route_index()];
            assert_eq!(
                route.host_specificity(host),
                Some(summary.host),
                "find() returned a rule of route {:?} whose hostnames {:?} do not give host {host:?} the specificity reported; request {req:?}",
                route.name(),
                route.hostnames()
            );
            if let Some(ps) = path_specificity(m.path()) {
                assert_eq!(summary.path, ps, "summary.path is not the match's own");
            }
            assert_eq!(summary.order.route as usize, rule.route_index());
            assert_eq!(summary.order.rule as usize, rule.index_in_route());
            assert_eq!(summary.order.r#match as usize, mi);
            let got = (summary.host, summary.path);
            let first_match_in_tier = table.routes().iter().any(|r| {
                r.precedence() == routing_core::RulePrecedence::FirstMatch
                    && r.host_specificity(host) == Some(summary.host)
            });
            // A `first_match` route may win with a less specific path than another
            // matching rule of its host tier; the host tier itself is never beaten.
            assert!(
                best.is_some_and(|b| got >= b || (first_match_in_tier && got.0 == b.0)),
                "find() returned precedence {got:?}, but a matching rule has {best:?}; request {req:?}"
            );
        }
    }
    // `candidates()` is a separate linear scan: its head must be the winner.
    let head = table.candidates(req).first().map(|c| (c.rule, c.r#match));
    assert_eq!(
        head,
        found.map(|(r, m, _)| (r, m)),
        "candidates() and find() disagree; request {req:?}"
    );

    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let decision = table.decide(req, &mut rng);
    match (&decision, found) {
        (Err(RouteError::NoRoute), None) => {}
        (Err(RouteError::NoRoute), Some(f)) => {
            panic!("decide() says NoRoute, find() says {f:?}; request {req:?}")
        }
        (Err(RouteError::NoBackend { rule }), Some((ri, _, _))) => {
            assert_eq!(*rule, ri, "NoBackend names another rule than find()");
            assert!(
                table.rules()[ri].forward().is_some(),
                "decide() says NoBackend for a rule that does not forward"
            );
        }
        (Err(e), f) => panic!("decide() error {e:?} with find() {f:?}; request {req:?}"),
        (Ok(d), f) => {
            assert_eq!(
                Some((d.rule_index(), d.match_index(), d.summary())),
                f,
                "decide() and find() disagree; request {req:?}"
            );
            check_decision(table, req, d, panic_threshold);
        }
    }
}

fn check_decision(
    table: &RouteTable,
    req: &RequestInfo,
    d: &routing_core::Decision<'_>,
    panic_threshold: Option<f64>,
) {
    let rule = d.rule();
    let Some(fwd) = rule.forward() else {
        assert!(
            d.backend_id().is_none(),
            "a redirect or fixed response chose a backend"
        );
        assert!(!matches!(rule.action(), Action::Forward(_)));
        return;
    };
    let id = d
        .backend_id()
        .expect("a forwarding decision without a backend");
    let pos = fwd
        .position(id)
        .expect("the chosen backend is not one of the rule's backends");
    let chosen = &fwd.backends()[pos];
    assert!(
        chosen.weight() > 0,
        "picked backend {:?} with weight 0 (drained); request {req:?}",
        table.backend(id).name()
    );
    if !chosen.is_available() {
        let eligible = fwd.backends().iter().filter(|b| b.weight() > 0).count();
        let available = fwd
            .backends()
            .iter()
            .filter(|b| b.weight() > 0 && b.is_available())
            .count();
        let threshold = panic_threshold.unwrap_or(0.5);
        assert!(
            (available as f64) < threshold * eligible as f64,
            "picked unavailable backend {:?} outside panic mode ({available}/{eligible} available, threshold {threshold}); request {req:?}",
            table.backend(id).name()
        );
    }
    // Sticky keys are sticky: a different random stream gives the same backend.
    if d.sticky_key().is_some() && matches!(fwd.strategy(), Strategy::ConsistentHash(_)) {
        let mut other = SmallRng::seed_from_u64(0xd1ff);
        let again = table
            .decide(req, &mut other)
            .expect("the same request routed twice gave an error the second time");
        assert_eq!(
            again.backend_id(),
            Some(id),
            "consistent hashing picked another backend for the same key; request {req:?}"
        );
    }
}

/// Routes a few flows to every L4 service and checks the choice is a positive-weight
/// target of that service and a pure function of the flow.
pub fn check_flows(table: &RouteTable) {
    for svc in table.tcp_services().iter().take(8) {
        let vip = svc.vip();
        let sources: [SocketAddr; 2] = if vip.is_ipv4() {
            [
                "203.0.113.9:40000".parse().expect("literal"),
                "198.51.100.1:1".parse().expect("literal"),
            ]
        } else {
            [
                "[2001:db8::9]:40000".parse().expect("literal"),
                "[::1]:65535".parse().expect("literal"),
            ]
        };
        let any_weight = svc.forward().backends().iter().any(|b| b.weight() > 0);
        for src in sources {
            let flow = FiveTuple::tcp(src, vip);
            match table.route_flow(&flow) {
                Ok(d) => {
                    assert_eq!(d.service.name(), svc.name());
                    let pos = svc
                        .forward()
                        .position(d.backend_id)
                        .expect("route_flow chose a backend outside the service");
                    assert!(svc.forward().backends()[pos].weight() > 0);
                    let again = table.route_flow(&flow).expect("second route_flow failed");
                    assert_eq!(
                        again.backend_id, d.backend_id,
                        "route_flow is not deterministic"
                    );
                }
                Err(RouteError::NoTarget { .. }) => assert!(
                    !any_weight,
                    "route_flow: NoBackend although service {:?} has weighted targets",
                    svc.name()
                ),
                Err(e) => panic!("route_flow to a service's own VIP failed: {e:?}"),
            }
            // Not TCP: never routed.
            let udp = FiveTuple {
                protocol: 17,
                ..flow
            };
            assert_eq!(
                table.route_flow(&udp).map(|d| d.backend_id).unwrap_err(),
                RouteError::NoRoute
            );
        }
    }
}
