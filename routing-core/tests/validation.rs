//! Validation is total and precise: every `ValidationErrorKind` is reachable, each error
//! carries the exact field path of the offending value, every problem of a config is
//! reported (in document order), parse errors carry path and line, and an invalid config
//! never replaces the live one.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use routing_core::{
    Config, ConfigError, Format, RequestInfo, RouteTable, Router, ValidationError,
    ValidationErrorKind as K,
};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Backends shared by most cases: two IPv4 targets, one IPv6 target, one without address.
const BACKENDS: &str = "backends: [{name: a, address: '10.0.0.1:80'}, {name: b, address: '10.0.0.2:80'}, {name: v6, address: '[::1]:80'}, {name: nowhere}]";

/// A config whose only route `r` has the given rules (a YAML flow list body).
fn rules(rules: &str) -> String {
    format!("{BACKENDS}\nroutes: [{{name: r, rules: [{rules}]}}]")
}

/// A config whose only rule forwards to `a` and has the extra fields `extra`.
fn forward(extra: &str) -> String {
    rules(&format!("{{backends: [{{name: a}}], {extra}}}"))
}

/// A config whose only rule has the single match `m` and forwards to `a`.
fn matching(m: &str) -> String {
    rules(&format!("{{matches: [{m}], backends: [{{name: a}}]}}"))
}

/// A config whose only route has the single hostname `h`.
fn hostname(h: &str) -> String {
    format!(
        "{BACKENDS}\nroutes: [{{name: r, hostnames: ['{h}'], rules: [{{backends: [{{name: a}}]}}]}}]"
    )
}

/// A config with the given TCP services (a YAML flow list body).
fn tcp(services: &str) -> String {
    format!("{BACKENDS}\ntcp_services: [{services}]")
}

fn parse(yaml: &str) -> Config {
    Config::from_yaml(yaml).unwrap_or_else(|e| panic!("test config must parse: {e}\n{yaml}"))
}

/// Validates `yaml`, which must parse but not validate, and returns the error.
fn invalid(yaml: &str) -> ConfigError {
    match parse(yaml).validate() {
        Ok(_) => panic!("config must be rejected by validation:\n{yaml}"),
        Err(e) => e,
    }
}

fn errors(yaml: &str) -> Vec<ValidationError> {
    let err = invalid(yaml);
    assert!(
        matches!(err, ConfigError::Invalid(_)),
        "a validation problem must be ConfigError::Invalid, got {err:?}"
    );
    err.errors().to_vec()
}

fn paths(errs: &[ValidationError]) -> Vec<&str> {
    errs.iter().map(|e| e.path.as_str()).collect()
}

fn valid(yaml: &str) -> RouteTable {
    parse(yaml)
        .validate()
        .unwrap_or_else(|e| panic!("config must be valid, got: {e}\n{yaml}"))
}

/// The variant's name, to prove every variant is reachable.
fn kind_name(k: &K) -> &'static str {
    match k {
        K::Empty => "Empty",
        K::DuplicateName { .. } => "DuplicateName",
        K::UnknownBackend { .. } => "UnknownBackend",
        K::WeightOutOfRange { .. } => "WeightOutOfRange",
        K::InvalidRegex { .. } => "InvalidRegex",
        K::InvalidHostname { .. } => "InvalidHostname",
        K::InvalidPath { .. } => "InvalidPath",
        K::InvalidHttp { .. } => "InvalidHttp",
        K::ExactlyOne { .. } => "ExactlyOne",
        K::OutOfRange { .. } => "OutOfRange",
        K::MaglevSizeNotPrime { .. } => "MaglevSizeNotPrime",
        K::AtLeastOne { .. } => "AtLeastOne",
        K::Conflict { .. } => "Conflict",
        _ => "a variant this test does not know yet: add cases for it",
    }
}

const ALL_KINDS: [&str; 13] = [
    "Empty",
    "DuplicateName",
    "UnknownBackend",
    "WeightOutOfRange",
    "InvalidRegex",
    "InvalidHostname",
    "InvalidPath",
    "InvalidHttp",
    "ExactlyOne",
    "OutOfRange",
    "MaglevSizeNotPrime",
    "AtLeastOne",
    "Conflict",
];

/// One table row: a config with exactly one problem, where it is and what it is.
struct Case {
    name: &'static str,
    yaml: String,
    path: &'static str,
    check: fn(&K) -> bool,
    expected: &'static str,
}

macro_rules! case {
    ($name:expr, $yaml:expr, $path:expr, $($pat:tt)+) => {
        Case {
            name: $name,
            yaml: $yaml,
            path: $path,
            check: |k: &K| matches!(k, $($pat)+),
            expected: stringify!($($pat)+),
        }
    };
}

// Paths used over and over.
const R: &str = "routes[0].rules[0]";

fn cases() -> Vec<Case> {
    let long_label = "a".repeat(64);
    let three_routes = "backends: [{name: a}, {name: b}]
routes:
  - {name: r0, rules: [{backends: [{name: a}]}]}
  - {name: r1, rules: [{backends: [{name: a}]}]}
  - {name: r2, rules: [{backends: [{name: a}, {name: b, weight: 1000001}]}]}
"
    .to_owned();
    vec![
        // ---- Empty ------------------------------------------------------------------
        case!(
            "empty backend name",
            "backends: [{name: ''}]".into(),
            "backends[0].name",
            K::Empty
        ),
        case!(
            "empty route name",
            format!("{BACKENDS}\nroutes: [{{name: '', rules: [{{backends: [{{name: a}}]}}]}}]"),
            "routes[0].name",
            K::Empty
        ),
        case!(
            "empty rule set",
            format!("{BACKENDS}\nroutes: [{{name: r, rules: []}}]"),
            "routes[0].rules",
            K::Empty
        ),
        case!(
            "empty rule name",
            rules("{name: '', backends: [{name: a}]}"),
            "routes[0].rules[0].name",
            K::Empty
        ),
        case!(
            "empty query parameter name",
            matching("{query: [{name: '', exact: x}]}"),
            "routes[0].rules[0].matches[0].query[0].name",
            K::Empty
        ),
        case!(
            "empty hash cookie name",
            forward("load_balancer: {consistent_hash: {cookie: ''}}"),
            "routes[0].rules[0].load_balancer.consistent_hash.cookie",
            K::Empty
        ),
        case!(
            "empty hash query name",
            forward("load_balancer: {consistent_hash: {query: ''}}"),
            "routes[0].rules[0].load_balancer.consistent_hash.query",
            K::Empty
        ),
        case!(
            "tcp service without backends",
            tcp("{name: t, vip: '10.0.0.9:80', backends: []}"),
            "tcp_services[0].backends",
            K::Empty
        ),
        case!(
            "empty tcp service name",
            tcp("{name: '', vip: '10.0.0.9:80', backends: [{name: a}]}"),
            "tcp_services[0].name",
            K::Empty
        ),
        // ---- DuplicateName ----------------------------------------------------------
        case!(
            "duplicate backend name",
            "backends: [{name: a}, {name: a}]".into(),
            "backends[1].name",
            K::DuplicateName { name, first } if name == "a" && first == "backends[0].name"
        ),
        case!(
            "duplicate route name",
            format!("{BACKENDS}\nroutes: [{{name: r, rules: [{{backends: [{{name: a}}]}}]}}, {{name: r, rules: [{{backends: [{{name: a}}]}}]}}]"),
            "routes[1].name",
            K::DuplicateName { name, first } if name == "r" && first == "routes[0].name"
        ),
        case!(
            "duplicate rule name within a route",
            rules("{name: x, backends: [{name: a}]}, {name: x, backends: [{name: b}]}"),
            "routes[0].rules[1].name",
            K::DuplicateName { name, first } if name == "x" && first == "routes[0].rules[0].name"
        ),
        case!(
            "backend referenced twice by one rule",
            rules("{backends: [{name: a}, {name: a, weight: 3}]}"),
            "routes[0].rules[0].backends[1].name",
            K::DuplicateName { name, first }
                if name == "a" && first == "routes[0].rules[0].backends[0].name"
        ),
        case!(
            "duplicate hostname (case-insensitive)",
            format!("{BACKENDS}\nroutes: [{{name: r, hostnames: [shop.example.com, Shop.Example.COM], rules: [{{backends: [{{name: a}}]}}]}}]"),
            "routes[0].hostnames[1]",
            K::DuplicateName { name, first }
                if name == "Shop.Example.COM" && first == "routes[0].hostnames[0]"
        ),
        case!(
            "duplicate tcp service name",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}]}, {name: t, vip: '10.0.0.9:81', backends: [{name: a}]}"),
            "tcp_services[1].name",
            K::DuplicateName { name, first } if name == "t" && first == "tcp_services[0].name"
        ),
        case!(
            "duplicate tcp VIP",
            tcp("{name: t1, vip: '10.0.0.9:80', backends: [{name: a}]}, {name: t2, vip: '10.0.0.9:80', backends: [{name: b}]}"),
            "tcp_services[1].vip",
            K::DuplicateName { name, first }
                if name == "10.0.0.9:80" && first == "tcp_services[0].vip"
        ),
        // ---- UnknownBackend ---------------------------------------------------------
        case!(
            "unknown backend in the second rule",
            rules("{matches: [{path: {prefix: /x}}], backends: [{name: a}]}, {backends: [{name: ghost}]}"),
            "routes[0].rules[1].backends[0].name",
            K::UnknownBackend { name } if name == "ghost"
        ),
        case!(
            "unknown mirror backend",
            forward("mirror: {backend: ghost}"),
            "routes[0].rules[0].mirror.backend",
            K::UnknownBackend { name } if name == "ghost"
        ),
        case!(
            "unknown tcp service target",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: ghost}]}"),
            "tcp_services[0].backends[0].name",
            K::UnknownBackend { name } if name == "ghost"
        ),
        // ---- WeightOutOfRange -------------------------------------------------------
        case!(
            "weight one above the maximum, third route",
            three_routes,
            "routes[2].rules[0].backends[1].weight",
            K::WeightOutOfRange {
                weight: 1_000_001,
                max: 1_000_000
            }
        ),
        case!(
            "weight u64::MAX",
            rules("{backends: [{name: a, weight: 18446744073709551615}]}"),
            "routes[0].rules[0].backends[0].weight",
            K::WeightOutOfRange {
                weight: u64::MAX,
                max: 1_000_000
            }
        ),
        case!(
            "tcp target weight above the maximum",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a, weight: 4000000000}]}"),
            "tcp_services[0].backends[0].weight",
            K::WeightOutOfRange {
                weight: 4_000_000_000,
                max: 1_000_000
            }
        ),
        // ---- InvalidRegex -----------------------------------------------------------
        case!(
            "invalid path regex",
            matching("{path: {regex: '/api/('}}"),
            "routes[0].rules[0].matches[0].path.regex",
            K::InvalidRegex { pattern, message } if pattern == "/api/(" && !message.is_empty()
        ),
        case!(
            "unbalanced path regex that wrapping would hide",
            matching("{path: {regex: 'a)|(b'}}"),
            "routes[0].rules[0].matches[0].path.regex",
            K::InvalidRegex { pattern, .. } if pattern == "a)|(b"
        ),
        case!(
            "invalid header regex",
            matching("{headers: [{name: x-v, regex: '[z-a]'}]}"),
            "routes[0].rules[0].matches[0].headers[0].regex",
            K::InvalidRegex { pattern, .. } if pattern == "[z-a]"
        ),
        case!(
            "invalid query regex",
            matching("{query: [{name: q, regex: '*x'}]}"),
            "routes[0].rules[0].matches[0].query[0].regex",
            K::InvalidRegex { pattern, .. } if pattern == "*x"
        ),
        case!(
            "invalid authority regex",
            matching("{authority: {regex: '(?P<'}}"),
            "routes[0].rules[0].matches[0].authority.regex",
            K::InvalidRegex { pattern, .. } if pattern == "(?P<"
        ),
        case!(
            "regex above the size limit",
            matching("{path: {regex: '(?:a{1000}){1000}'}}"),
            "routes[0].rules[0].matches[0].path.regex",
            K::InvalidRegex { .. }
        ),
        case!(
            "invalid regex in a fault header match",
            forward("fault: {abort: {status: 503}, headers: [{name: x-f, regex: '('}]}"),
            "routes[0].rules[0].fault.headers[0].regex",
            K::InvalidRegex { pattern, .. } if pattern == "("
        ),
        // ---- InvalidHostname --------------------------------------------------------
        case!(
            "bare star hostname",
            hostname("*"),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, .. } if host == "*"
        ),
        case!(
            "empty label",
            hostname("a..b"),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, reason } if host == "a..b" && reason.contains("empty label")
        ),
        case!(
            "label starting with a hyphen",
            hostname("-a.com"),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, reason } if host == "-a.com" && reason.contains('-')
        ),
        case!(
            "star inside the name",
            hostname("foo.*.com"),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, .. } if host == "foo.*.com"
        ),
        case!(
            "64-character label",
            hostname(&format!("{long_label}.com")),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, reason } if host.len() == 68 && reason.contains("63")
        ),
        case!(
            "underscore",
            hostname("my_host.example.com"),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, .. } if host == "my_host.example.com"
        ),
        case!(
            "wildcard without a name",
            hostname("*."),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, .. } if host == "*."
        ),
        case!(
            "empty hostname",
            hostname(""),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, .. } if host.is_empty()
        ),
        case!(
            "hostname with a port",
            hostname("a.com:8080"),
            "routes[0].hostnames[0]",
            K::InvalidHostname { host, .. } if host == "a.com:8080"
        ),
        case!(
            "hostname longer than 253 characters",
            hostname(&["abcdefghij"; 24].join(".")), // 24*10 + 23 = 263
            "routes[0].hostnames[0]",
            K::InvalidHostname { reason, .. } if reason.contains("253")
        ),
        case!(
            "wildcard in a URL rewrite hostname",
            forward("filters: {url_rewrite: {hostname: '*.a.com'}}"),
            "routes[0].rules[0].filters.url_rewrite.hostname",
            K::InvalidHostname { host, reason } if host == "*.a.com" && reason.contains("wildcard")
        ),
        case!(
            "invalid redirect hostname",
            rules("{redirect: {hostname: 'a..b'}}"),
            "routes[0].rules[0].redirect.hostname",
            K::InvalidHostname { host, .. } if host == "a..b"
        ),
        case!(
            "invalid cookie domain",
            forward("session_persistence: {cookie: {name: s, domain: 'bad_domain.com'}}"),
            "routes[0].rules[0].session_persistence.cookie.domain",
            K::InvalidHostname { host, .. } if host == "bad_domain.com"
        ),
        // ---- InvalidPath ------------------------------------------------------------
        case!(
            "exact path without leading slash",
            matching("{path: {exact: api}}"),
            "routes[0].rules[0].matches[0].path.exact",
            K::InvalidPath { path, .. } if path == "api"
        ),
        case!(
            "prefix with a query string",
            matching("{path: {prefix: '/a?b=1'}}"),
            "routes[0].rules[0].matches[0].path.prefix",
            K::InvalidPath { path, reason } if path == "/a?b=1" && reason.contains('?')
        ),
        case!(
            "rewrite path with whitespace",
            forward("filters: {url_rewrite: {path: {full: '/a b'}}}"),
            "routes[0].rules[0].filters.url_rewrite.path.full",
            K::InvalidPath { path, .. } if path == "/a b"
        ),
        case!(
            "redirect path without leading slash",
            rules("{redirect: {path: {full: 'x'}}}"),
            "routes[0].rules[0].redirect.path.full",
            K::InvalidPath { path, .. } if path == "x"
        ),
        case!(
            "cookie path without leading slash",
            forward("session_persistence: {cookie: {name: s, path: nope}}"),
            "routes[0].rules[0].session_persistence.cookie.path",
            K::InvalidPath { path, .. } if path == "nope"
        ),
        // ---- InvalidHttp ------------------------------------------------------------
        case!(
            "invalid header name in a header match",
            matching("{headers: [{name: 'x bad', exact: v}]}"),
            "routes[0].rules[0].matches[0].headers[0].name",
            K::InvalidHttp { what: "header name", value } if value == "x bad"
        ),
        case!(
            "invalid header name in a request header filter",
            forward("filters: {request_headers: {set: [{name: 'a:b', value: v}]}}"),
            "routes[0].rules[0].filters.request_headers.set[0].name",
            K::InvalidHttp { what: "header name", value } if value == "a:b"
        ),
        case!(
            "invalid header value in a response header filter",
            forward("filters: {response_headers: {add: [{name: x-a, value: \"a\\nb\"}]}}"),
            "routes[0].rules[0].filters.response_headers.add[0].value",
            K::InvalidHttp { what: "header value", value } if value == "a\nb"
        ),
        case!(
            "invalid header name to remove",
            forward("filters: {request_headers: {remove: ['']}}"),
            "routes[0].rules[0].filters.request_headers.remove[0]",
            K::InvalidHttp { what: "header name", value } if value.is_empty()
        ),
        case!(
            "invalid fixed response header name",
            rules("{fixed_response: {status: 200, headers: {'bad name': v}}}"),
            "routes[0].rules[0].fixed_response.headers.bad name",
            K::InvalidHttp { what: "header name", value } if value == "bad name"
        ),
        case!(
            "lowercase method",
            matching("{method: get}"),
            "routes[0].rules[0].matches[0].method",
            K::InvalidHttp { what, value } if what.contains("method") && value == "get"
        ),
        case!(
            "method with a space",
            matching("{method: 'G ET'}"),
            "routes[0].rules[0].matches[0].method",
            K::InvalidHttp { what, value } if what.contains("method") && value == "G ET"
        ),
        case!(
            "scheme ftp",
            matching("{scheme: ftp}"),
            "routes[0].rules[0].matches[0].scheme",
            K::InvalidHttp { what, value } if what.contains("scheme") && value == "ftp"
        ),
        case!(
            "redirect scheme ftp",
            rules("{redirect: {scheme: ftp}}"),
            "routes[0].rules[0].redirect.scheme",
            K::InvalidHttp { what, value } if what.contains("scheme") && value == "ftp"
        ),
        case!(
            "cookie name with a semicolon",
            forward("session_persistence: {cookie: {name: 'a;b'}}"),
            "routes[0].rules[0].session_persistence.cookie.name",
            K::InvalidHttp { what: "cookie name", value } if value == "a;b"
        ),
        case!(
            "same_site in lowercase",
            forward("session_persistence: {cookie: {name: s, same_site: lax}}"),
            "routes[0].rules[0].session_persistence.cookie.same_site",
            K::InvalidHttp { what, value } if what.contains("SameSite") && value == "lax"
        ),
        case!(
            "invalid session header",
            forward("session_persistence: {header: 'x session'}"),
            "routes[0].rules[0].session_persistence.header",
            K::InvalidHttp { what: "header name", value } if value == "x session"
        ),
        case!(
            "invalid hash header",
            forward("load_balancer: {consistent_hash: {header: 'x(user)'}}"),
            "routes[0].rules[0].load_balancer.consistent_hash.header",
            K::InvalidHttp { what: "header name", value } if value == "x(user)"
        ),
        // ---- ExactlyOne -------------------------------------------------------------
        case!(
            "path match with exact and prefix",
            matching("{path: {exact: /a, prefix: /a}}"),
            "routes[0].rules[0].matches[0].path",
            K::ExactlyOne {
                fields: ["exact", "prefix", "regex", "starts_with"]
            }
        ),
        case!(
            "path match with prefix and regex",
            matching("{path: {prefix: /a, regex: '/a.*'}}"),
            "routes[0].rules[0].matches[0].path",
            K::ExactlyOne {
                fields: ["exact", "prefix", "regex", "starts_with"]
            }
        ),
        case!(
            "path match with nothing",
            matching("{path: {}}"),
            "routes[0].rules[0].matches[0].path",
            K::ExactlyOne {
                fields: ["exact", "prefix", "regex", "starts_with"]
            }
        ),
        case!(
            "header match with no condition",
            matching("{headers: [{name: x-a}]}"),
            "routes[0].rules[0].matches[0].headers[0]",
            K::ExactlyOne {
                fields: ["exact", "prefix", "regex", "present", "absent"]
            }
        ),
        case!(
            "header match present and absent",
            matching("{headers: [{name: x-a, present: true, absent: true}]}"),
            "routes[0].rules[0].matches[0].headers[0]",
            K::ExactlyOne {
                fields: ["exact", "prefix", "regex", "present", "absent"]
            }
        ),
        case!(
            "query match with exact and present",
            matching("{query: [{name: q, exact: '1', present: true}]}"),
            "routes[0].rules[0].matches[0].query[0]",
            K::ExactlyOne {
                fields: ["exact", "regex", "present"]
            }
        ),
        case!(
            "authority match with nothing",
            matching("{authority: {}}"),
            "routes[0].rules[0].matches[0].authority",
            K::ExactlyOne {
                fields: ["exact", "prefix", "regex"]
            }
        ),
        case!(
            "rule with backends and redirect",
            rules("{backends: [{name: a}], redirect: {status: 301}}"),
            R,
            K::ExactlyOne {
                fields: ["backends", "redirect", "fixed_response"]
            }
        ),
        case!(
            "rule with redirect and fixed response",
            rules("{redirect: {}, fixed_response: {status: 404}}"),
            R,
            K::ExactlyOne {
                fields: ["backends", "redirect", "fixed_response"]
            }
        ),
        case!(
            "rule with no action",
            rules("{name: idle}"),
            R,
            K::ExactlyOne {
                fields: ["backends", "redirect", "fixed_response"]
            }
        ),
        case!(
            "load balancer simple and consistent_hash",
            forward("load_balancer: {simple: random, consistent_hash: {header: x-u}}"),
            "routes[0].rules[0].load_balancer",
            K::ExactlyOne {
                fields: ["simple", "consistent_hash"]
            }
        ),
        case!(
            "consistent hash on two keys",
            forward("load_balancer: {consistent_hash: {header: x-u, cookie: u}}"),
            "routes[0].rules[0].load_balancer.consistent_hash",
            K::ExactlyOne {
                fields: ["header", "cookie", "query", "source_ip"]
            }
        ),
        case!(
            "consistent hash on nothing",
            forward("load_balancer: {consistent_hash: {}}"),
            "routes[0].rules[0].load_balancer.consistent_hash",
            K::ExactlyOne {
                fields: ["header", "cookie", "query", "source_ip"]
            }
        ),
        case!(
            "session persistence with cookie and header",
            forward("session_persistence: {cookie: {name: s}, header: x-s}"),
            "routes[0].rules[0].session_persistence",
            K::ExactlyOne {
                fields: ["cookie", "header"]
            }
        ),
        case!(
            "session persistence with nothing",
            forward("session_persistence: {}"),
            "routes[0].rules[0].session_persistence",
            K::ExactlyOne {
                fields: ["cookie", "header"]
            }
        ),
        case!(
            "path modifier with full and prefix",
            forward("filters: {url_rewrite: {path: {full: /a, prefix: /b}}}"),
            "routes[0].rules[0].filters.url_rewrite.path",
            K::ExactlyOne {
                fields: ["full", "prefix"]
            }
        ),
        // ---- OutOfRange -------------------------------------------------------------
        case!(
            "maglev table size 2",
            "maglev_table_size: 2".into(),
            "maglev_table_size",
            K::OutOfRange { value, .. } if value == "2"
        ),
        case!(
            "health check timeout above interval",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}], health_check: {interval: 1s, timeout: 2s}}"),
            "tcp_services[0].health_check.timeout",
            K::OutOfRange { .. }
        ),
        case!(
            "health check fall 0",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}], health_check: {fall: 0}}"),
            "tcp_services[0].health_check.fall",
            K::OutOfRange { value, .. } if value == "0"
        ),
        case!(
            "health check status 42",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}], health_check: {http_path: /h, expect_status: 42}}"),
            "tcp_services[0].health_check.expect_status",
            K::OutOfRange { value, .. } if value == "42"
        ),
        case!(
            "maglev table size 20 000 000",
            "maglev_table_size: 20000000".into(),
            "maglev_table_size",
            K::OutOfRange { value, .. } if value == "20000000"
        ),
        case!(
            "panic threshold 150",
            "panic_threshold: 150".into(),
            "panic_threshold",
            K::OutOfRange { value, allowed } if value == "150" && allowed.contains("100")
        ),
        case!(
            "negative panic threshold",
            "panic_threshold: -1".into(),
            "panic_threshold",
            K::OutOfRange { value, .. } if value == "-1"
        ),
        case!(
            "NaN panic threshold",
            "panic_threshold: .nan".into(),
            "panic_threshold",
            K::OutOfRange { value, .. } if value == "NaN"
        ),
        case!(
            "infinite panic threshold",
            "panic_threshold: .inf".into(),
            "panic_threshold",
            K::OutOfRange { value, .. } if value == "inf"
        ),
        case!(
            "zero outlier interval",
            "outlier_detection: {interval: 0s}".into(),
            "outlier_detection.interval",
            K::OutOfRange { value, .. } if value == "0s"
        ),
        case!(
            "max ejection time below base",
            "outlier_detection: {base_ejection_time: 60s, max_ejection_time: 10s}".into(),
            "outlier_detection.max_ejection_time",
            K::OutOfRange { allowed, .. } if allowed.contains("base_ejection_time")
        ),
        case!(
            "max ejection percent 101",
            "outlier_detection: {max_ejection_percent: 101}".into(),
            "outlier_detection.max_ejection_percent",
            K::OutOfRange { value, .. } if value == "101"
        ),
        case!(
            "zero concurrent requests",
            "backends: [{name: a}, {name: b, connection_pool: {max_concurrent_requests: 0}}]".into(),
            "backends[1].connection_pool.max_concurrent_requests",
            K::OutOfRange { value, .. } if value == "0"
        ),
        case!(
            "redirect status 200",
            rules("{redirect: {status: 200}}"),
            "routes[0].rules[0].redirect.status",
            K::OutOfRange { value, .. } if value == "200"
        ),
        case!(
            "fixed response status 99",
            rules("{fixed_response: {status: 99}}"),
            "routes[0].rules[0].fixed_response.status",
            K::OutOfRange { value, .. } if value == "99"
        ),
        case!(
            "fixed response status 600",
            rules("{fixed_response: {status: 600}}"),
            "routes[0].rules[0].fixed_response.status",
            K::OutOfRange { value, .. } if value == "600"
        ),
        case!(
            "retry attempts 0",
            forward("retry: {attempts: 0}"),
            "routes[0].rules[0].retry.attempts",
            K::OutOfRange { value, .. } if value == "0"
        ),
        case!(
            "retry attempts 11",
            forward("retry: {attempts: 11}"),
            "routes[0].rules[0].retry.attempts",
            K::OutOfRange { value, .. } if value == "11"
        ),
        case!(
            "retry status code 600",
            forward("retry: {attempts: 2, on: [retriable-status-codes], status_codes: [503, 600]}"),
            "routes[0].rules[0].retry.status_codes[1]",
            K::OutOfRange { value, .. } if value == "600"
        ),
        case!(
            "retry budget above 100 percent",
            forward("retry: {attempts: 2, budget_percent: 100.5}"),
            "routes[0].rules[0].retry.budget_percent",
            K::OutOfRange { value, .. } if value == "100.5"
        ),
        case!(
            "fault delay percent 101",
            forward("fault: {delay: {fixed: 1s, percent: 101}}"),
            "routes[0].rules[0].fault.delay.percent",
            K::OutOfRange { value, .. } if value == "101"
        ),
        case!(
            "fault abort percent negative",
            forward("fault: {abort: {status: 503, percent: -0.5}}"),
            "routes[0].rules[0].fault.abort.percent",
            K::OutOfRange { value, .. } if value == "-0.5"
        ),
        case!(
            "fault abort status 100",
            forward("fault: {abort: {status: 100}}"),
            "routes[0].rules[0].fault.abort.status",
            K::OutOfRange { value, .. } if value == "100"
        ),
        case!(
            "mirror percent 101",
            forward("mirror: {backend: b, percent: 101}"),
            "routes[0].rules[0].mirror.percent",
            K::OutOfRange { value, .. } if value == "101"
        ),
        case!(
            "more hashed backends than Maglev slots",
            format!("maglev_table_size: 3\n{}", forward_many_hashed()),
            "routes[0].rules[0].backends",
            K::OutOfRange { value, .. } if value == "4"
        ),
        // ---- MaglevSizeNotPrime -----------------------------------------------------
        case!(
            "maglev table size 65536",
            "maglev_table_size: 65536".into(),
            "maglev_table_size",
            K::MaglevSizeNotPrime { size: 65_536 }
        ),
        case!(
            "maglev table size 4194300 (in range, not prime)",
            "maglev_table_size: 4194300".into(),
            "maglev_table_size",
            K::MaglevSizeNotPrime { size: 4_194_300 }
        ),
        // ---- AtLeastOne -------------------------------------------------------------
        case!(
            "fault with neither delay nor abort",
            forward("fault: {headers: [{name: x-f, present: true}]}"),
            "routes[0].rules[0].fault",
            K::AtLeastOne {
                fields: ["delay", "abort"]
            }
        ),
        case!(
            "url rewrite with nothing",
            forward("filters: {url_rewrite: {}}"),
            "routes[0].rules[0].filters.url_rewrite",
            K::AtLeastOne {
                fields: ["hostname", "path"]
            }
        ),
        // ---- Conflict ---------------------------------------------------------------
        case!(
            "dsr_ipip without an outer source address",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}], forwarding: dsr_ipip}"),
            "tcp_services[0].dsr_source",
            K::Conflict { reason } if reason.contains("needs `dsr_source`")
        ),
        case!(
            "dsr_source of the other family",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}], forwarding: dsr_ipip, dsr_source: '::1'}"),
            "tcp_services[0].dsr_source",
            K::Conflict { reason } if reason.contains("same IP family")
        ),
        case!(
            "health check expect_status without http_path",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}], health_check: {expect_status: 200}}"),
            "tcp_services[0].health_check.expect_status",
            K::Conflict { reason } if reason.contains("only used with `http_path`")
        ),
        case!(
            "dsr_source with dnat",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}], dsr_source: 10.0.0.7}"),
            "tcp_services[0].dsr_source",
            K::Conflict { reason } if reason.contains("only used with")
        ),
        case!(
            "per-try timeout longer than the request timeout",
            forward("timeouts: {request: 1s, per_try: 1s1ms}"),
            "routes[0].rules[0].timeouts.per_try",
            K::Conflict { reason } if reason.contains("per_try")
        ),
        case!(
            "retriable-status-codes without codes",
            forward("retry: {attempts: 3, on: [retriable-status-codes]}"),
            "routes[0].rules[0].retry.status_codes",
            K::Conflict { reason } if reason.contains("retriable-status-codes")
        ),
        case!(
            "prefix rewrite on a rule with an exact match",
            rules("{matches: [{path: {prefix: /a}}, {path: {exact: /b}}], backends: [{name: a}], filters: {url_rewrite: {path: {prefix: /c}}}}"),
            "routes[0].rules[0].filters.url_rewrite.path.prefix",
            K::Conflict { reason } if reason.contains("prefix")
        ),
        case!(
            "prefix redirect on a rule with a regex match",
            rules("{matches: [{path: {regex: '/a.*'}}], redirect: {path: {prefix: /b}}}"),
            "routes[0].rules[0].redirect.path.prefix",
            K::Conflict { reason } if reason.contains("prefix")
        ),
        case!(
            "load balancer on a redirect rule",
            rules("{redirect: {status: 301}, load_balancer: {simple: round_robin}}"),
            "routes[0].rules[0].load_balancer",
            K::Conflict { reason } if reason.contains("forward")
        ),
        case!(
            "retry on a redirect rule",
            rules("{redirect: {status: 301}, retry: {attempts: 2}}"),
            "routes[0].rules[0].retry",
            K::Conflict { reason } if reason.contains("forward")
        ),
        case!(
            "mirror on a redirect rule",
            rules("{redirect: {status: 301}, mirror: {backend: a}}"),
            "routes[0].rules[0].mirror",
            K::Conflict { reason } if reason.contains("forward")
        ),
        case!(
            "session persistence on a redirect rule",
            rules("{redirect: {status: 301}, session_persistence: {header: x-s}}"),
            "routes[0].rules[0].session_persistence",
            K::Conflict { reason } if reason.contains("forward")
        ),
        case!(
            "retry on a fixed-response rule",
            rules("{fixed_response: {status: 503}, retry: {attempts: 2}}"),
            "routes[0].rules[0].retry",
            K::Conflict { reason } if reason.contains("forward")
        ),
        case!(
            "tcp target without an address",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a}, {name: nowhere}]}"),
            "tcp_services[0].backends[1].name",
            K::Conflict { reason } if reason.contains("address")
        ),
        case!(
            "IPv6 target for an IPv4 VIP",
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: v6}]}"),
            "tcp_services[0].backends[0].name",
            K::Conflict { reason } if reason.contains("IP family")
        ),
        case!(
            "IPv4 target for an IPv6 VIP",
            tcp("{name: t, vip: '[2001:db8::1]:443', backends: [{name: a}]}"),
            "tcp_services[0].backends[0].name",
            K::Conflict { reason } if reason.contains("IP family")
        ),
    ]
}

/// Four backends, one hashed rule using all of them.
fn forward_many_hashed() -> String {
    "backends: [{name: w}, {name: x}, {name: y}, {name: z}]
routes: [{name: r, rules: [{backends: [{name: w}, {name: x}, {name: y}, {name: z}], load_balancer: {consistent_hash: {header: x-u}}}]}]"
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// 1. Every kind, exact path, exact kind
// ---------------------------------------------------------------------------------------

#[test]
fn each_invalid_config_reports_exactly_one_error_with_its_path_and_kind() {
    let mut failures = Vec::new();
    for c in cases() {
        let err = match Config::from_yaml(&c.yaml) {
            Err(e) => {
                failures.push(format!("[{}] must parse, got {e}\n{}", c.name, c.yaml));
                continue;
            }
            Ok(cfg) => match cfg.validate() {
                Ok(_) => {
                    failures.push(format!("[{}] must be rejected\n{}", c.name, c.yaml));
                    continue;
                }
                Err(e) => e,
            },
        };
        let errs = err.errors();
        if errs.len() != 1 {
            failures.push(format!(
                "[{}] must report exactly one error, got {errs:#?}",
                c.name
            ));
            continue;
        }
        let e = &errs[0];
        if e.path != c.path {
            failures.push(format!(
                "[{}] path must be `{}`, got `{}` ({:?})",
                c.name, c.path, e.path, e.kind
            ));
        }
        if !(c.check)(&e.kind) {
            failures.push(format!(
                "[{}] kind must match `{}`, got {:?}",
                c.name, c.expected, e.kind
            ));
        }
        // The message names the path and says, in words, what is wrong.
        let text = err.to_string();
        let line = format!("{}: {}", e.path, e.kind);
        if !text.contains(&line) || e.kind.to_string().is_empty() {
            failures.push(format!(
                "[{}] Display must contain `{line}`, got `{text}`",
                c.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases().len(),
        failures.join("\n")
    );
}

#[test]
fn every_validation_error_kind_is_reachable() {
    let mut seen = BTreeSet::new();
    for c in cases() {
        if let Ok(Err(e)) = Config::from_yaml(&c.yaml).map(Config::validate) {
            for err in e.errors() {
                seen.insert(kind_name(&err.kind));
            }
        }
    }
    let all: BTreeSet<&str> = ALL_KINDS.into_iter().collect();
    assert_eq!(
        seen, all,
        "the table must reach every ValidationErrorKind variant (and no unknown one)"
    );
}

#[test]
fn weight_path_names_route_rule_and_backend_positions() {
    let errs = errors(
        "backends: [{name: a}, {name: b}]
routes:
  - {name: r0, rules: [{backends: [{name: a}]}]}
  - {name: r1, rules: [{backends: [{name: a}]}]}
  - name: r2
    rules:
      - backends:
          - {name: a, weight: 7}
          - {name: b, weight: 1000001}
",
    );
    assert_eq!(paths(&errs), ["routes[2].rules[0].backends[1].weight"]);
    assert_eq!(
        errs[0].to_string(),
        "routes[2].rules[0].backends[1].weight: weight 1000001 is above the maximum 1000000",
        "the message must be the path and a human sentence"
    );
}

#[test]
fn weight_bounds_zero_and_maximum_are_accepted() {
    let t = valid("backends: [{name: a}, {name: b}]\nroutes: [{name: r, rules: [{backends: [{name: a, weight: 0}, {name: b, weight: 1000000}]}]}]");
    let fwd = t.rules()[0].forward().expect("a forwarding rule");
    let weights: Vec<u32> = fwd.backends().iter().map(|b| b.weight()).collect();
    assert_eq!(
        weights,
        [0, 1_000_000],
        "0 and MAX_WEIGHT are valid weights"
    );
}

#[test]
fn uppercase_hostnames_are_lowercased_and_accepted() {
    let t = valid(
        "backends: [{name: a}]\nroutes: [{name: r, hostnames: [Shop.Example.COM, '*.API.Example.com'], rules: [{backends: [{name: a}]}]}]",
    );
    let hosts: Vec<&str> = t.routes()[0].hostnames().iter().map(|h| &**h).collect();
    assert_eq!(hosts, ["shop.example.com", "*.api.example.com"]);
    let d = t
        .decide(
            &RequestInfo::get("http://shop.example.com/"),
            &mut rand::rng(),
        )
        .expect("the lowercased hostname must route");
    assert_eq!(d.route().name(), "r");
}

#[test]
fn edge_hostnames_that_are_valid_are_accepted() {
    let label63 = "b".repeat(63);
    let long253 = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "a".repeat(63),
        "a".repeat(63),
        "a".repeat(61)
    );
    assert_eq!(long253.len(), 253);
    for h in [
        format!("{label63}.example.com"),
        long253,
        "*.example.com".to_owned(),
        "xn--bcher-kva.example".to_owned(),
        "a-b.c-d".to_owned(),
        "localhost".to_owned(),
        "1.2.3.4".to_owned(),
    ] {
        valid(&hostname(&h));
    }
}

#[test]
fn valid_boundaries_of_numeric_rules_are_accepted() {
    valid("maglev_table_size: 3");
    valid("maglev_table_size: 65537");
    valid("maglev_table_size: 4194301");
    valid("panic_threshold: 0");
    valid("panic_threshold: 100");
    valid("outlier_detection: {}");
    valid("outlier_detection: {consecutive_5xx: 0, max_ejection_percent: 100}");
    valid("outlier_detection: {base_ejection_time: 300s}"); // max follows base when unset
    valid("backends: [{name: a, connection_pool: {max_concurrent_requests: 1}}]");
    valid(&forward("retry: {attempts: 1}"));
    valid(&forward(
        "retry: {attempts: 10, on: [retriable-status-codes], status_codes: [100, 599]}",
    ));
    valid(&forward("timeouts: {request: 1s, per_try: 1s}"));
    valid(&forward("timeouts: {request: 0s, per_try: 5s}")); // 0 = no request timeout
    valid(&forward(
        "fault: {delay: {fixed: 0s, percent: 0}, abort: {status: 200, percent: 100}}",
    ));
    valid(&forward("mirror: {backend: b, percent: 0}"));
    valid(&rules(
        "{fixed_response: {status: 100}}, {fixed_response: {status: 599}}",
    ));
    for s in [301, 302, 303, 307, 308] {
        valid(&rules(&format!("{{redirect: {{status: {s}}}}}")));
    }
    valid(&tcp(
        "{name: t6, vip: '[2001:db8::1]:443', backends: [{name: v6}], hash_on: source_ip}",
    ));
}

#[test]
fn an_empty_backend_reference_is_reported_at_its_name() {
    let errs = errors(&rules("{backends: [{name: ''}]}"));
    assert!(
        !errs.is_empty()
            && errs
                .iter()
                .all(|e| e.path == "routes[0].rules[0].backends[0].name"),
        "every error about an empty reference must point at the name: {errs:?}"
    );
    assert!(
        errs.iter().any(|e| matches!(e.kind, K::Empty)),
        "an empty reference must be reported as Empty: {errs:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Total validation: every problem, in document order, readable
// ---------------------------------------------------------------------------------------

const MANY_ERRORS: &str = "
backends:
  - name: a
  - name: a
  - name: ''
routes:
  - name: first
    hostnames: [ok.test, bad_host]
    rules:
      - backends: [{name: ghost}]
      - matches: [{path: {regex: '('}}]
        backends: [{name: a, weight: 2000000}]
      - redirect: {status: 200}
  - name: first
    rules: []
tcp_services:
  - name: t
    vip: 10.0.0.9:80
    backends: [{name: a}]
";

#[test]
fn every_error_of_a_config_is_reported_in_document_order() {
    let errs = errors(MANY_ERRORS);
    assert_eq!(
        paths(&errs),
        [
            "backends[1].name",
            "backends[2].name",
            "routes[0].hostnames[1]",
            "routes[0].rules[0].backends[0].name",
            "routes[0].rules[1].matches[0].path.regex",
            "routes[0].rules[1].backends[0].weight",
            "routes[0].rules[2].redirect.status",
            "routes[1].name",
            "routes[1].rules",
            "tcp_services[0].backends[0].name",
        ],
        "validation must not stop at the first problem, and must list them in document order"
    );
    let kinds: Vec<&str> = errs.iter().map(|e| kind_name(&e.kind)).collect();
    assert_eq!(
        kinds,
        [
            "DuplicateName",
            "Empty",
            "InvalidHostname",
            "UnknownBackend",
            "InvalidRegex",
            "WeightOutOfRange",
            "OutOfRange",
            "DuplicateName",
            "Empty",
            "Conflict",
        ]
    );
}

#[test]
fn display_lists_each_path_with_a_human_message() {
    let err = invalid(MANY_ERRORS);
    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration (10 errors)"),
        "the summary line counts the errors: {text}"
    );
    for needle in [
        "backends[1].name: duplicate name `a` (first used at `backends[0].name`)",
        "backends[2].name: must not be empty",
        "routes[0].hostnames[1]: invalid hostname `bad_host`: labels may hold only",
        "routes[0].rules[0].backends[0].name: unknown backend `ghost`",
        "routes[0].rules[1].matches[0].path.regex: invalid regular expression `(`",
        "routes[0].rules[1].backends[0].weight: weight 2000000 is above the maximum 1000000",
        "routes[0].rules[2].redirect.status: 200 is out of range (allowed: 301, 302, 303, 307 or 308)",
        "routes[1].name: duplicate name `first` (first used at `routes[0].name`)",
        "routes[1].rules: must not be empty",
        "tcp_services[0].backends[0].name: an L4 target needs an `address`",
    ] {
        assert!(text.contains(needle), "Display must contain `{needle}`:\n{text}");
    }
    // Errors are listed in order, each on its own line starting with its path (a regex
    // compiler's message may itself span several lines).
    let mut at = 0;
    for e in err.errors() {
        let needle = format!("\n  {}: ", e.path);
        let pos = text[at..].find(&needle).unwrap_or_else(|| {
            panic!(
                "`{}` must be listed after the previous error:\n{text}",
                e.path
            )
        });
        at += pos + needle.len();
    }
    // The single-error form is singular.
    let one = invalid("backends: [{name: ''}]").to_string();
    assert_eq!(
        one,
        "invalid configuration (1 error)\n  backends[0].name: must not be empty"
    );
}

#[test]
fn exactly_one_and_at_least_one_messages_name_the_fields() {
    let err = invalid(&forward("session_persistence: {}"));
    assert!(
        err.to_string().contains(
            "routes[0].rules[0].session_persistence: exactly one of `cookie`, `header` must be set"
        ),
        "{err}"
    );
    let err = invalid(&forward("fault: {}"));
    assert!(
        err.to_string()
            .contains("routes[0].rules[0].fault: at least one of `delay`, `abort` must be set"),
        "{err}"
    );
    let err = invalid("maglev_table_size: 65536");
    assert!(
        err.to_string()
            .contains("maglev_table_size: maglev table size 65536 is not prime"),
        "{err}"
    );
}

#[test]
fn errors_are_deterministic() {
    let a = errors(MANY_ERRORS);
    for _ in 0..5 {
        assert_eq!(
            errors(MANY_ERRORS),
            a,
            "validating twice must give the same errors"
        );
    }
}

/// Regression: the docs of `ValidationErrors::errors` promise document order, but global fields
/// (`maglev_table_size`, `panic_threshold`: the last fields of the model and of
/// `to_yaml`'s output) are always reported before `backends`.
#[test]
fn global_field_errors_follow_document_order() {
    let errs = errors("backends: [{name: ''}]\nmaglev_table_size: 4\npanic_threshold: 101\n");
    assert_eq!(
        paths(&errs),
        ["backends[0].name", "maglev_table_size", "panic_threshold"],
        "errors must come in document order (build.rs checks globals before backends)"
    );
}

/// Regression: within a rule the "only forwarding rules" conflicts (`load_balancer`, `retry`,
/// `mirror`, `session_persistence`) are pushed before the errors of `redirect`,
/// `fixed_response`, `filters`, … although those fields come first.
#[test]
fn rule_field_errors_follow_document_order() {
    let errs = errors(&rules(
        "{redirect: {status: 200}, filters: {url_rewrite: {}}, mirror: {backend: a}}",
    ));
    assert_eq!(
        paths(&errs),
        [
            "routes[0].rules[0].redirect.status",
            "routes[0].rules[0].filters.url_rewrite",
            "routes[0].rules[0].mirror",
        ],
        "errors must come in document order (build.rs `rule()` pushes the Conflict first)"
    );
}

// ---------------------------------------------------------------------------------------
// Validation gaps found while writing these tests
// ---------------------------------------------------------------------------------------

/// Regression: a cookie `Path` may not contain `;` (RFC 6265 `path-value`); accepting it lets
/// the config inject attributes into the `Set-Cookie` header (`/;Domain=evil.example`).
#[test]
fn cookie_path_with_semicolon_is_rejected() {
    let cfg = parse(&forward(
        "session_persistence: {cookie: {name: s, path: '/;Domain=evil.example'}}",
    ));
    let err = cfg.validate().err();
    let errs = err.as_ref().map(ConfigError::errors).unwrap_or_default();
    assert!(
        errs.len() == 1
            && errs[0].path == "routes[0].rules[0].session_persistence.cookie.path"
            && matches!(errs[0].kind, K::InvalidPath { .. } | K::InvalidHttp { .. }),
        "a cookie path with `;` must be rejected at `…session_persistence.cookie.path`, got {errs:?}"
    );
}

/// Regression: `method` must be an "uppercase token", but `M-SEARCH` (UPnP) and
/// `VERSION-CONTROL` (RFC 3253) — uppercase tokens — are rejected because the check
/// allows only `A-Z`.
#[test]
fn uppercase_method_tokens_with_hyphen_are_accepted() {
    for m in ["M-SEARCH", "VERSION-CONTROL"] {
        let res = parse(&matching(&format!("{{method: {m}}}"))).validate();
        assert!(
            res.is_ok(),
            "`{m}` is an uppercase HTTP token and must be accepted, got {:?}",
            res.err().map(|e| e.errors().to_vec())
        );
    }
}

/// Regression: `LoadBalancerConfig` is documented as "exactly one of `simple` and
/// `consistent_hash`" (like `session_persistence: {}` and `consistent_hash: {}`, which
/// are rejected), but `load_balancer: {}` is accepted.
#[test]
fn empty_load_balancer_is_an_exactly_one_violation() {
    let err = parse(&forward("load_balancer: {}")).validate().err();
    let errs = err.as_ref().map(ConfigError::errors).unwrap_or_default();
    assert!(
        errs.len() == 1
            && errs[0].path == "routes[0].rules[0].load_balancer"
            && matches!(
                errs[0].kind,
                K::ExactlyOne {
                    fields: ["simple", "consistent_hash"]
                }
            ),
        "`load_balancer: {{}}` must be rejected as ExactlyOne, got {errs:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Nothing in validation panics
// ---------------------------------------------------------------------------------------

#[test]
fn hostile_values_are_rejected_or_accepted_without_panicking() {
    let odd = [
        "",
        " ",
        "\u{0}",
        "é",
        "ß.example",
        "😀",
        "\u{202e}",
        "a\u{0}b",
        "*",
        "**",
        "*.*",
        ".",
        "..",
        "/",
        "//",
        "\\",
        "%",
        "%zz",
        "(",
        ")",
        "[",
        "\u{7f}",
        "a\r\nb",
    ];
    for s in odd {
        let s = s.replace('\'', "''");
        for yaml in [
            hostname(&s),
            matching(&format!("{{path: {{exact: '{s}'}}}}")),
            matching(&format!("{{path: {{prefix: '{s}'}}}}")),
            matching(&format!("{{path: {{regex: '{s}'}}}}")),
            matching(&format!("{{method: '{s}'}}")),
            matching(&format!("{{scheme: '{s}'}}")),
            matching(&format!("{{authority: {{regex: '{s}'}}}}")),
            matching(&format!("{{headers: [{{name: '{s}', regex: '{s}'}}]}}")),
            matching(&format!("{{query: [{{name: '{s}', regex: '{s}'}}]}}")),
            forward(&format!("filters: {{request_headers: {{set: [{{name: '{s}', value: '{s}'}}], remove: ['{s}']}}, url_rewrite: {{hostname: '{s}', path: {{prefix: '{s}'}}}}}}")),
            forward(&format!("session_persistence: {{cookie: {{name: '{s}', path: '{s}', domain: '{s}', same_site: '{s}'}}}}")),
            forward(&format!("load_balancer: {{consistent_hash: {{header: '{s}'}}}}")),
            forward(&format!("load_balancer: {{consistent_hash: {{cookie: '{s}'}}}}")),
            forward(&format!("mirror: {{backend: '{s}'}}")),
            rules(&format!("{{redirect: {{scheme: '{s}', hostname: '{s}', path: {{full: '{s}'}}}}}}")),
            rules(&format!("{{fixed_response: {{status: 200, body: '{s}', headers: {{'{s}x': '{s}'}}}}}}")),
            format!("backends: [{{name: '{s}'}}]\nroutes: [{{name: '{s}', rules: [{{name: '{s}', backends: [{{name: '{s}'}}]}}]}}]"),
        ] {
            if let Ok(cfg) = Config::from_yaml(&yaml) {
                // Either outcome is fine; a panic fails the test.
                if let Err(e) = cfg.validate() {
                    assert!(
                        !e.to_string().is_empty(),
                        "an error always has a message"
                    );
                }
            }
        }
    }
    // Pathological regexes are refused by the size and nesting limits, not by panicking.
    let deep = format!("{}a{}", "(".repeat(1000), ")".repeat(1000));
    let err = invalid(&matching(&format!("{{path: {{regex: '{deep}'}}}}")));
    assert!(matches!(err.errors()[0].kind, K::InvalidRegex { .. }));
}

#[test]
fn extreme_numbers_are_reported_not_wrapped() {
    // Values that would wrap if narrowed to u32/u16 before the range check.
    let errs = errors("maglev_table_size: 4294967311"); // above 2^32
    assert!(
        matches!(&errs[0].kind, K::OutOfRange { value, .. } if value == "4294967311"),
        "{errs:?}"
    );
    let errs = errors(&rules("{backends: [{name: a, weight: 4294967297}]}")); // 2^32 + 1
    assert!(
        matches!(
            errs[0].kind,
            K::WeightOutOfRange {
                weight: 4_294_967_297,
                ..
            }
        ),
        "{errs:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Parse errors: path and position, for YAML, JSON and TOML
// ---------------------------------------------------------------------------------------

/// The fields of a `ConfigError::Parse`, in declaration order.
struct ParseErr(Format, String, Option<usize>, Option<usize>, String);

/// Destructures a parse error, failing on success or a validation error.
fn parse_error(res: Result<Config, ConfigError>) -> ParseErr {
    match res {
        Err(ConfigError::Parse {
            format,
            path,
            line,
            column,
            message,
        }) => ParseErr(format, path, line, column, message),
        other => panic!("must be a ConfigError::Parse, got {other:?}"),
    }
}

#[test]
fn yaml_unknown_field_has_path_line_and_column() {
    let res = Config::from_yaml("routes:\n  - name: r\n    colour: red\n    rules: []\n");
    let err = res
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    let ParseErr(format, path, line, column, message) = parse_error(res);
    assert_eq!(format, Format::Yaml);
    assert!(
        path.contains("routes[0]"),
        "path must name the route: {path}"
    );
    assert_eq!(path, "routes[0].colour");
    assert_eq!(line, Some(3), "the unknown key is on line 3");
    assert_eq!(column, Some(5));
    assert!(message.contains("unknown field `colour`"), "{message}");
    assert!(
        err.starts_with("YAML error at `routes[0].colour` (line 3, column 5): "),
        "{err}"
    );
}

#[test]
fn yaml_unknown_fields_are_rejected_at_every_level() {
    for (yaml, path) in [
        ("colour: red", "colour"),
        ("backends: [{name: a, colour: red}]", "backends[0].colour"),
        (
            "routes: [{name: r, rules: [{colour: red}]}]",
            "routes[0].rules[0].colour",
        ),
        (
            "routes: [{name: r, rules: [{matches: [{path: {exact: /, colour: red}}]}]}]",
            "routes[0].rules[0].matches[0].path.colour",
        ),
        (
            "routes: [{name: r, rules: [{session_persistence: {cookie: {name: s, colour: red}}}]}]",
            "routes[0].rules[0].session_persistence.cookie.colour",
        ),
        (
            "routes: [{name: r, rules: [{fault: {delay: {fixed: 1s, colour: red}}}]}]",
            "routes[0].rules[0].fault.delay.colour",
        ),
        (
            "tcp_services: [{name: t, vip: '1.2.3.4:5', backends: [], colour: red}]",
            "tcp_services[0].colour",
        ),
    ] {
        let ParseErr(_, p, line, _, message) = parse_error(Config::from_yaml(yaml));
        assert_eq!(p, path, "unknown field in `{yaml}`");
        assert!(line.is_some(), "YAML errors carry a line");
        assert!(message.contains("unknown field `colour`"), "{message}");
    }
}

#[test]
fn yaml_type_errors_have_paths() {
    let weight = |w: &str| {
        format!("routes:\n  - name: r\n    rules:\n      - backends:\n          - name: a\n            weight: {w}\n")
    };
    for (yaml, path, line, needle) in [
        ("routes: 7".to_owned(), "routes", 1, "expected a sequence"),
        (weight("-1"), "routes[0].rules[0].backends[0].weight", 6, "-1"),
        (
            weight("18446744073709551616"),
            "routes[0].rules[0].backends[0].weight",
            6,
            "18446744073709551616",
        ),
        (weight("heavy"), "routes[0].rules[0].backends[0].weight", 6, "heavy"),
        (weight("1.5"), "routes[0].rules[0].backends[0].weight", 6, "1.5"),
        (
            "routes:\n  - name: r\n    rules:\n      - backends: [{name: a}]\n        timeouts:\n          request: 1.5s\n".to_owned(),
            "routes[0].rules[0].timeouts.request",
            6,
            "invalid duration `1.5s`",
        ),
        (
            "routes: [{name: r, rules: [{load_balancer: {simple: least_request}}]}]".to_owned(),
            "routes[0].rules[0].load_balancer.simple",
            1,
            "least_request",
        ),
        (
            "routes: [{name: r, rules: [{retry: {attempts: 1, on: [sometimes]}}]}]".to_owned(),
            "routes[0].rules[0].retry.on[0]",
            1,
            "sometimes",
        ),
        (
            "tcp_services: [{name: t, vip: 10.0.0.1, backends: []}]".to_owned(),
            "tcp_services[0].vip",
            1,
            "",
        ),
        (
            "backends: [{name: a, address: 'nowhere:80'}]".to_owned(),
            "backends[0].address",
            1,
            "",
        ),
        ("routes: [{name: r}]".to_owned(), "routes[0]", 1, "missing field `rules`"),
        (
            "routes: [{name: r, rules: [{redirect: {port: 70000}}]}]".to_owned(),
            "routes[0].rules[0].redirect.port",
            1,
            "70000",
        ),
    ] {
        let ParseErr(format, p, l, column, message) = parse_error(Config::from_yaml(&yaml));
        assert_eq!(format, Format::Yaml);
        assert_eq!(p, path, "path of the error in:\n{yaml}");
        assert_eq!(l, Some(line), "line of the error in:\n{yaml}");
        assert!(column.is_some(), "YAML errors carry a column");
        assert!(message.contains(needle), "`{message}` must mention `{needle}`");
    }
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let ParseErr(_, _, line, column, _) =
        parse_error(Config::from_yaml("backends:\n  - name: a\n  - [unclosed\n"));
    assert!(
        line.is_some() && column.is_some(),
        "a syntax error has a position"
    );
    let ParseErr(_, path, _, _, message) = parse_error(Config::from_yaml(
        "maglev_table_size: 5\nmaglev_table_size: 7\n",
    ));
    assert!(message.contains("duplicate field"), "{message} at {path}");
}

#[test]
fn json_errors_have_path_and_line() {
    let json = "{\n  \"routes\": [\n    {\n      \"name\": \"r\",\n      \"colour\": \"red\",\n      \"rules\": []\n    }\n  ]\n}";
    let ParseErr(format, path, line, column, message) = parse_error(Config::from_json(json));
    assert_eq!(format, Format::Json);
    assert_eq!(path, "routes[0].colour");
    assert_eq!(line, Some(5), "`colour` is on line 5");
    assert!(column.is_some());
    assert!(message.contains("unknown field `colour`"), "{message}");

    let weight = |w: &str| {
        format!("{{\"routes\": [{{\"name\": \"r\", \"rules\": [{{\"backends\": [\n{{\"name\": \"a\", \"weight\": {w}}}]}}]}}]}}")
    };
    for (json, path, needle) in [
        (weight("-1"), "routes[0].rules[0].backends[0].weight", "-1"),
        (
            weight("18446744073709551616"),
            "routes[0].rules[0].backends[0].weight",
            "expected u64",
        ),
        (weight("\"1\""), "routes[0].rules[0].backends[0].weight", "expected u64"),
        (
            "{\"routes\": [{\"name\": \"r\", \"rules\": [{\"timeouts\": {\"per_try\": \"1.5s\"}}]}]}".to_owned(),
            "routes[0].rules[0].timeouts.per_try",
            "invalid duration `1.5s`",
        ),
        ("{\"routes\": 7}".to_owned(), "routes", "expected a sequence"),
    ] {
        let ParseErr(format, p, line, column, message) = parse_error(Config::from_json(&json));
        assert_eq!(format, Format::Json);
        assert_eq!(p, path, "path of the error in {json}");
        assert!(line.is_some() && column.is_some(), "JSON errors carry line and column");
        assert!(message.contains(needle), "`{message}` must mention `{needle}`");
    }
    // Trailing garbage and syntax errors: root path, with a position.
    let ParseErr(_, path, line, _, _) = parse_error(Config::from_json("{}\n x"));
    assert_eq!((path.as_str(), line), (".", Some(2)));
    let ParseErr(_, _, line, _, _) = parse_error(Config::from_json("{\n\"backends\": [\n"));
    assert!(line.is_some());
}

#[test]
fn toml_errors_have_path_and_line() {
    let toml = "[[routes]]\nname = \"r\"\ncolour = \"red\"\nrules = []\n";
    let ParseErr(format, path, line, _, message) = parse_error(Config::from_toml(toml));
    assert_eq!(format, Format::Toml);
    assert_eq!(path, "routes[0].colour");
    assert_eq!(line, Some(3), "`colour` is on line 3");
    assert!(message.contains("unknown field `colour`"), "{message}");

    let weight = |w: &str| {
        format!("[[routes]]\nname = \"r\"\n[[routes.rules]]\n[[routes.rules.backends]]\nname = \"a\"\nweight = {w}\n")
    };
    for (toml, path, line, needle) in [
        (
            weight("-1"),
            "routes[0].rules[0].backends[0].weight",
            6,
            "-1",
        ),
        (
            weight("18446744073709551616"),
            "routes[0].rules[0].backends[0].weight",
            6,
            "expected u64",
        ),
        (
            weight("\"x\""),
            "routes[0].rules[0].backends[0].weight",
            6,
            "expected u64",
        ),
        (
            "[[routes]]\nname = \"r\"\n[[routes.rules]]\ntimeouts = { request = \"1.5s\" }\n"
                .to_owned(),
            "routes[0].rules[0].timeouts.request",
            4,
            "invalid duration `1.5s`",
        ),
        (
            "routes = 7\n".to_owned(),
            "routes",
            1,
            "expected a sequence",
        ),
    ] {
        let ParseErr(format, p, l, _, message) = parse_error(Config::from_toml(&toml));
        assert_eq!(format, Format::Toml);
        assert_eq!(p, path, "path of the error in:\n{toml}");
        assert_eq!(l, Some(line), "line of the error in:\n{toml}");
        assert!(
            message.contains(needle),
            "`{message}` must mention `{needle}`"
        );
    }
    let ParseErr(_, path, line, _, _) =
        parse_error(Config::from_toml("maglev_table_size = 5\nx = = 1\n"));
    assert_eq!(
        (path.as_str(), line),
        (".", Some(2)),
        "a syntax error has the root path and a line"
    );
}

#[test]
fn parse_errors_are_not_validation_errors() {
    let err = Config::from_yaml("routes: 7").expect_err("wrong type");
    assert!(err.validation().is_none());
    assert!(err.errors().is_empty());
    let err = invalid("backends: [{name: ''}]");
    assert!(err.validation().is_some());
}

#[test]
fn from_path_and_text_picks_the_format_by_extension() {
    let json = Config::from_path_and_text("x/routes.json", "{\"colour\": 1}").expect_err("unknown");
    assert!(
        matches!(
            json,
            ConfigError::Parse {
                format: Format::Json,
                ..
            }
        ),
        "{json:?}"
    );
    let toml = Config::from_path_and_text("routes.toml", "colour = 1").expect_err("unknown");
    assert!(
        matches!(
            toml,
            ConfigError::Parse {
                format: Format::Toml,
                ..
            }
        ),
        "{toml:?}"
    );
    for name in ["routes.yaml", "routes.yml", "routes", "routes.conf"] {
        let e = Config::from_path_and_text(name, "colour: 1").expect_err("unknown");
        assert!(
            matches!(
                e,
                ConfigError::Parse {
                    format: Format::Yaml,
                    ..
                }
            ),
            "{name}: {e:?}"
        );
    }
}

#[test]
fn deeply_nested_documents_are_errors_not_stack_overflows() {
    let n = 5_000;
    let open = "[".repeat(n);
    let close = "]".repeat(n);
    assert!(Config::from_yaml(&format!("routes: {open}{close}")).is_err());
    assert!(Config::from_json(&format!("{{\"routes\": {open}{close}}}")).is_err());
    assert!(Config::from_toml(&format!("routes = {open}{close}")).is_err());
    assert!(Config::from_toml(&format!("x = {}{}", "{a=".repeat(n), "}".repeat(n))).is_err());
}

// ---------------------------------------------------------------------------------------
// 3. An invalid update never replaces the live table
// ---------------------------------------------------------------------------------------

const LIVE: &str = "
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    hostnames: [shop.test]
    rules:
      - matches: [{path: {prefix: /cart}}]
        backends: [{name: v1}]
";

fn decide(router: &Router, uri: &str) -> Option<String> {
    let table = router.load();
    let d = table
        .decide(&RequestInfo::get(uri), &mut rand::rng())
        .ok()?;
    d.backend().map(|b| b.name().to_owned())
}

#[test]
fn invalid_update_keeps_the_live_table_and_generation() {
    let router = Router::from_yaml(LIVE).expect("valid");
    assert_eq!(router.generation(), 1);
    assert_eq!(
        decide(&router, "http://shop.test/cart").as_deref(),
        Some("v1")
    );
    let reader = router.clone();

    // Invalid: the cart rule now points at an unknown backend, plus a bad hostname.
    let bad = parse(
        "
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    hostnames: [shop.test, 'bad_host']
    rules:
      - matches: [{path: {prefix: /cart}}]
        backends: [{name: v3}]
",
    );
    let err = router
        .update(bad)
        .expect_err("an invalid config must be refused");
    assert_eq!(
        paths(err.errors()),
        [
            "routes[0].hostnames[1]",
            "routes[0].rules[0].backends[0].name"
        ],
        "the refusal lists every problem"
    );
    assert_eq!(
        router.generation(),
        1,
        "a refused update must not bump the generation"
    );
    assert_eq!(
        decide(&reader, "http://shop.test/cart").as_deref(),
        Some("v1"),
        "the old table must still answer"
    );
    assert_eq!(
        router.snapshot().config(),
        &parse(LIVE),
        "the live config is the old one"
    );

    // A parse error through update_yaml is refused the same way.
    let err = router
        .update_yaml("routes: [{name: shop, colour: red, rules: []}]")
        .expect_err("unknown field");
    assert!(matches!(err, ConfigError::Parse { .. }));
    assert_eq!(router.generation(), 1);

    // A valid update goes live with the next generation…
    let good = LIVE.replace("{name: v1}]\n", "{name: v2}]\n");
    assert_eq!(router.update(parse(&good)).expect("valid"), 2);
    assert_eq!(
        decide(&reader, "http://shop.test/cart").as_deref(),
        Some("v2")
    );

    // …and a later invalid update keeps that one.
    let err = router
        .update(parse("backends: [{name: x}, {name: x}]"))
        .expect_err("duplicate");
    assert_eq!(paths(err.errors()), ["backends[1].name"]);
    assert_eq!(router.generation(), 2);
    assert_eq!(
        decide(&router, "http://shop.test/cart").as_deref(),
        Some("v2")
    );
    assert_eq!(
        decide(&router, "http://other.test/cart"),
        None,
        "still no route elsewhere"
    );
}

#[test]
fn router_new_with_invalid_config_fails_with_every_error() {
    let err = Router::new(parse(MANY_ERRORS)).expect_err("invalid");
    assert_eq!(err.errors().len(), 10);
    let err = Router::from_yaml("routes: 7").expect_err("wrong type");
    assert!(matches!(err, ConfigError::Parse { .. }));
}

#[test]
fn validation_work_is_bounded() {
    // Found while fuzzing: eight distinct consistent-hash tables of 16.7 M slots took
    // 18 s and 790 MB to validate. Tables are now at most 4 194 301 slots and a config
    // at most 2^23 slots in all, so the third distinct table here is refused.
    let mut yaml = String::from("maglev_table_size: 4194301\nbackends: [{name: a}, {name: b}]\nroutes: [{name: r, rules: [\n");
    for w in 1..=8 {
        yaml.push_str(&format!(
            "  {{matches: [{{path: {{prefix: /p{w}}}}}], backends: [{{name: a, weight: {w}}}, {{name: b}}], load_balancer: {{consistent_hash: {{header: x}}}}}},\n"
        ));
    }
    yaml.push_str("]}]\n");
    let started = std::time::Instant::now();
    let err = Config::from_yaml(&yaml)
        .expect("parses")
        .validate()
        .expect_err("too many slots in all");
    assert!(
        err.errors()
            .iter()
            .any(|e| e.path == "routes[0].rules[2].backends"
                && matches!(e.kind, K::OutOfRange { .. })),
        "{err}"
    );
    // Not a timing assertion: the first two tables are still built; this only prints.
    println!("bounded validation took {:?}", started.elapsed());
}

#[test]
fn deep_yaml_flow_nesting_is_refused_before_parsing() {
    // libyaml's scanner is quadratic in flow nesting: 20 000 levels took ~13 s.
    let text = format!("routes: {}{}", "[".repeat(20_000), "]".repeat(20_000));
    let err = Config::from_yaml(&text).expect_err("refused");
    assert!(
        matches!(err, ConfigError::Parse { .. }) && err.to_string().contains("nest"),
        "{err}"
    );
    // Ordinary nesting is fine.
    assert!(Config::from_yaml("routes: [{name: r, rules: [{matches: [{headers: [{name: a, present: true}]}], fixed_response: {status: 200}}]}]").is_ok());
}

#[test]
fn replay_buffers_have_a_ceiling() {
    let yaml = |n: u64| {
        format!("backends: [{{name: a}}]\nroutes: [{{name: r, rules: [{{backends: [{{name: a}}], retry: {{attempts: 1, max_body_bytes: {n}}}}}]}}]")
    };
    // 10 GB was accepted before: one request could make the proxy buffer that much.
    let err = Config::from_yaml(&yaml(10_000_000_000))
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(err.errors().len(), 1);
    assert_eq!(
        err.errors()[0].path,
        "routes[0].rules[0].retry.max_body_bytes"
    );
    assert!(err.to_string().contains("16 MiB"), "{err}");
    assert!(Config::from_yaml(&yaml(16 << 20))
        .unwrap()
        .validate()
        .is_ok());
}

#[test]
fn regexes_have_a_budget_over_the_whole_config() {
    // 3 000 rules of an 800-byte regex each: every pattern is fine alone, together
    // they are over the 2 MiB budget, reported once at the first one over.
    let long = "x".repeat(790);
    let mut yaml = String::from("backends: [{name: a}]\nroutes:\n  - name: r\n    rules:\n");
    for i in 0..3_000 {
        yaml.push_str(&format!(
            "      - {{matches: [{{path: {{regex: '/{i:04}{long}'}}}}], backends: [{{name: a}}]}}\n"
        ));
    }
    let err = Config::from_yaml(&yaml).unwrap().validate().unwrap_err();
    assert_eq!(err.errors().len(), 1, "{err}");
    // 2 MiB / 795 bytes: the 2 638th pattern (index 2637) is the first over.
    assert_eq!(
        err.errors()[0].path,
        "routes[0].rules[2637].matches[0].path.regex"
    );
    assert!(err.to_string().contains("2 MiB"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Backend filters (`backends[].filters`)
// ---------------------------------------------------------------------------------------

#[test]
fn backend_filters_are_validated_at_their_path() {
    let rule = |filters: &str, matches: &str| {
        format!(
            "backends: [{{name: a}}, {{name: b}}]\nroutes: [{{name: r, rules: [{{{matches}backends: [{{name: a}}, {{name: b, filters: {filters}}}]}}]}}]"
        )
    };
    let p = "routes[0].rules[0].backends[1].filters";
    type Case = (String, String, fn(&K) -> bool);
    let cases: Vec<Case> = vec![
        (
            rule("{redirect: {status: 302}, fixed_response: {status: 500}}", ""),
            p.to_owned(),
            |k| matches!(k, K::Conflict { .. }),
        ),
        (
            rule("{redirect: {hostname: x.test}, url_rewrite: {hostname: y.test}}", ""),
            format!("{p}.url_rewrite"),
            |k| matches!(k, K::Conflict { .. }),
        ),
        (
            rule("{request_headers: {set: [{name: 'bad name', value: v}]}}", ""),
            format!("{p}.request_headers.set[0].name"),
            |k| matches!(k, K::InvalidHttp { .. }),
        ),
        (
            rule("{fixed_response: {status: 700}}", ""),
            format!("{p}.fixed_response.status"),
            |k| matches!(k, K::OutOfRange { .. }),
        ),
        (
            rule("{redirect: {status: 200}}", ""),
            format!("{p}.redirect.status"),
            |k| matches!(k, K::OutOfRange { .. }),
        ),
        // A prefix replacement needs prefix matches, as on the rule.
        (
            rule(
                "{url_rewrite: {path: {prefix: /v2}}}",
                "matches: [{path: {exact: /x}}], ",
            ),
            format!("{p}.url_rewrite.path.prefix"),
            |k| matches!(k, K::Conflict { .. }),
        ),
        (
            tcp("{name: t, vip: '10.0.0.9:80', backends: [{name: a, filters: {fixed_response: {status: 500}}}]}"),
            "tcp_services[0].backends[0].filters".to_owned(),
            |k| matches!(k, K::Conflict { .. }),
        ),
    ];
    for (yaml, path, kind) in cases {
        let errs = errors(&yaml);
        assert_eq!(errs.len(), 1, "{yaml}: {errs:#?}");
        assert_eq!(errs[0].path, path, "{yaml}");
        assert!(kind(&errs[0].kind), "{yaml}: {:?}", errs[0].kind);
    }
    // Unknown fields are parse errors, as everywhere.
    assert!(matches!(
        Config::from_yaml(&rule("{mirror: {backend: a}}", "")),
        Err(ConfigError::Parse { .. })
    ));
}
