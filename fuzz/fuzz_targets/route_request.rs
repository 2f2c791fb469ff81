//! Arbitrary requests against one fixed, moderately rich configuration (exact and
//! wildcard hosts; exact, prefix and regex paths; method, scheme, authority, header and
//! query conditions; random, round robin and four kinds of consistent hashing;
//! redirects, fixed responses, drained backends) with arbitrary backends marked
//! unavailable. `find` and `decide` must not panic, must agree with each other and with
//! a brute-force scan of the rules (see `routing_fuzz::check_request`), and must see the
//! same thing whether the request is a `RequestInfo` or an `http::Request`.
#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use routing_core::{RequestInfo, Router};

const CONFIG: &str = r#"
backends:
  - {name: web-v1}
  - {name: web-v2}
  - {name: api-v1}
  - {name: api-v2}
  - {name: api-v3}
  - {name: static}
  - {name: drained}
  - {name: legacy}
panic_threshold: 50
maglev_table_size: 1009
routes:
  - name: shop
    hostnames: [shop.example.com, "*.shop.example.com"]
    rules:
      - name: canary
        matches:
          - {path: {prefix: /api}, headers: [{name: x-canary, exact: "true"}]}
          - {path: {prefix: /api}, query: [{name: canary, present: true}]}
        backends: [{name: api-v2}]
      - name: api-sticky
        matches: [{path: {prefix: /api/}, method: GET}]
        load_balancer: {consistent_hash: {cookie: session}}
        backends:
          - {name: api-v1, weight: 60}
          - {name: api-v2, weight: 30}
          - {name: api-v3, weight: 10}
          - {name: drained, weight: 0}
      - name: api-user
        matches: [{path: {prefix: /api}}]
        load_balancer: {consistent_hash: {header: x-user}}
        backends: [{name: api-v1, weight: 1}, {name: api-v3, weight: 3}]
      - name: checkout
        matches: [{path: {exact: /checkout}, scheme: https}]
        load_balancer: {simple: round_robin}
        backends: [{name: web-v1, weight: 2}, {name: web-v2, weight: 1}, {name: drained, weight: 0}]
      - name: insecure-checkout
        matches: [{path: {exact: /checkout}, scheme: http}]
        redirect: {scheme: https, status: 301}
      - name: product
        matches: [{path: {regex: "/products/[0-9]+(/reviews)?"}}]
        load_balancer: {consistent_hash: {query: user}}
        backends: [{name: web-v1}, {name: web-v2}]
      - name: assets
        matches:
          - {path: {prefix: /static}, headers: [{name: accept-encoding, regex: ".*gzip.*"}]}
          - {path: {prefix: /static}, authority: {prefix: cdn.}}
        filters: {url_rewrite: {path: {prefix: /}}}
        backends: [{name: static}]
      - name: default
        backends: [{name: web-v1, weight: 90}, {name: web-v2, weight: 10}, {name: drained, weight: 0}]
  - name: any-example
    hostnames: ["*.example.com", example.com]
    rules:
      - matches: [{path: {exact: /health}}]
        fixed_response: {status: 200, body: ok}
      - matches: [{headers: [{name: x-debug, present: true}], query: [{name: debug, exact: "1"}]}]
        backends: [{name: legacy}]
      - matches: [{headers: [{name: x-legacy, absent: true}], path: {prefix: /v1}}]
        load_balancer: {consistent_hash: {source_ip: true}}
        backends: [{name: legacy, weight: 5}, {name: web-v1, weight: 5}]
      - matches: [{authority: {regex: "[a-z]+\\.example\\.com"}, path: {prefix: /v2}}]
        backends: [{name: web-v2}]
      - backends: [{name: web-v1}]
  - name: eu
    hostnames: ["*.eu.example.com"]
    rules:
      - matches: [{path: {prefix: /api}, method: POST}, {path: {exact: /api/v1/users/}}]
        backends: [{name: api-v3}]
  - name: catch-all
    rules:
      - matches: [{path: {regex: "/(?i)admin.*"}}]
        fixed_response: {status: 403}
      - matches: [{path: {exact: /}}]
        redirect: {hostname: shop.example.com}
      - matches: [{path: {prefix: /drained}}]
        backends: [{name: drained, weight: 0}]
      - matches: [{path: {prefix: /only-legacy}}]
        backends: [{name: legacy}]
      - backends: [{name: web-v2}]
"#;

static ROUTER: LazyLock<Router> =
    LazyLock::new(|| Router::from_yaml(CONFIG).expect("the fixed fuzz config is valid"));

const BACKENDS: &[&str] = &[
    "web-v1", "web-v2", "api-v1", "api-v2", "api-v3", "static", "drained", "legacy",
];
const HOST_LABELS: &[&str] = &[
    "shop", "example", "com", "eu", "cdn", "www", "a", "SHOP", "Example", "", "*", "xn--d1a",
];
const PATH_SEGMENTS: &[&str] = &[
    "api",
    "v1",
    "v2",
    "users",
    "checkout",
    "products",
    "123",
    "reviews",
    "static",
    "health",
    "admin",
    "ADMIN",
    "drained",
    "only-legacy",
    "",
    ".",
    "..",
    "%2F",
    "apix",
];
const HEADER_NAMES: &[&str] = &[
    "x-canary",
    "x-user",
    "cookie",
    "x-debug",
    "x-legacy",
    "accept-encoding",
    "host",
    "X-Canary",
];
const HEADER_VALUES: &[&str] = &[
    "true",
    "u1",
    "session=abc",
    "a=1; session=xyz",
    "gzip, br",
    "1",
    "",
    "shop.example.com",
];
const QUERY_NAMES: &[&str] = &["canary", "user", "debug", "x"];
const QUERY_VALUES: &[&str] = &["1", "", "u%201", "a+b", "%ZZ"];

/// A piece of a request: a word the configuration cares about, or anything.
#[derive(Arbitrary, Debug)]
enum Piece {
    Known(u8),
    Raw(String),
}

impl Piece {
    fn get<'a>(&'a self, known: &'a [&'a str]) -> &'a str {
        match self {
            Piece::Known(i) => known[*i as usize % known.len()],
            Piece::Raw(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum MethodIn {
    Get,
    Post,
    Put,
    Delete,
    Head,
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum SchemeIn {
    OriginForm,
    Http,
    Https,
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: MethodIn,
    scheme: SchemeIn,
    host: Vec<Piece>,
    trailing_dot: bool,
    port: Option<u16>,
    path: Vec<Piece>,
    trailing_slash: bool,
    query: Vec<(Piece, Piece)>,
    headers: Vec<(Piece, Piece)>,
    source: Option<IpAddr>,
    /// Backends marked unavailable, one bit each.
    down: u8,
    /// When set, used verbatim as the URI instead of the pieces above.
    raw_uri: Option<String>,
}

impl Input {
    fn method(&self) -> http::Method {
        match &self.method {
            MethodIn::Get => http::Method::GET,
            MethodIn::Post => http::Method::POST,
            MethodIn::Put => http::Method::PUT,
            MethodIn::Delete => http::Method::DELETE,
            MethodIn::Head => http::Method::HEAD,
            MethodIn::Other(b) => http::Method::from_bytes(b).unwrap_or(http::Method::GET),
        }
    }

    fn uri(&self) -> String {
        if let Some(raw) = &self.raw_uri {
            return raw.clone();
        }
        let mut path = String::new();
        for seg in &self.path {
            path.push('/');
            path.push_str(seg.get(PATH_SEGMENTS));
        }
        if path.is_empty() || self.trailing_slash {
            path.push('/');
        }
        if !self.query.is_empty() {
            path.push('?');
            let pairs: Vec<String> = self
                .query
                .iter()
                .map(|(k, v)| format!("{}={}", k.get(QUERY_NAMES), v.get(QUERY_VALUES)))
                .collect();
            path.push_str(&pairs.join("&"));
        }
        let scheme = match &self.scheme {
            SchemeIn::OriginForm => return path,
            SchemeIn::Http => "http",
            SchemeIn::Https => "https",
            SchemeIn::Other(s) => s,
        };
        let mut host: Vec<&str> = self.host.iter().map(|p| p.get(HOST_LABELS)).collect();
        if host.is_empty() {
            host.push("shop");
        }
        let mut host = host.join(".");
        if self.trailing_dot {
            host.push('.');
        }
        if let Some(port) = self.port {
            host = format!("{host}:{port}");
        }
        format!("{scheme}://{host}{path}")
    }
}

fuzz_target!(|input: Input| {
    let router = &*ROUTER;
    for (i, name) in BACKENDS.iter().enumerate() {
        router
            .health()
            .set_available(name, input.down & (1 << i) == 0);
    }
    let table = router.load();

    let method = input.method();
    let uri = input.uri();
    let mut info = RequestInfo::new(method.clone(), &uri);
    let mut builder = http::Request::builder().method(method);
    let uri_ok = uri.parse::<http::Uri>().is_ok();
    builder = builder.uri(if uri_ok { uri.as_str() } else { "/" });
    for (n, v) in &input.headers {
        let (n, v) = (n.get(HEADER_NAMES), v.get(HEADER_VALUES));
        info = info.header(n, v);
        // `RequestInfo::header` skips invalid names and values; do the same here.
        if http::HeaderName::from_bytes(n.as_bytes()).is_ok()
            && http::HeaderValue::from_str(v).is_ok()
        {
            builder = builder.header(n, v);
        }
    }
    if let Some(ip) = input.source {
        info = info.source(ip);
    }

    routing_fuzz::check_request(&table, &info, Some(0.5));

    // The same request as an `http::Request` finds the same rule.
    if let Ok(req) = builder.body(()) {
        assert_eq!(
            table.find(&req),
            table.find(&info),
            "http::Request and RequestInfo route differently: {req:?} vs {info:?}"
        );
    }
});
