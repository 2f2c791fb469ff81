//! Configurations and requests shared by the bench targets (included with `mod`).
//!
//! Everything is generated deterministically so every run measures the same tables.

#![allow(dead_code)] // each bench target uses a subset

use std::fmt::Write as _;

use routing_core::RequestInfo;

/// Fixed seed for every RNG in the benches.
pub(crate) const SEED: u64 = 0x5eed_2024_0000_0001;

/// Host of the 100-header-rule configuration.
pub(crate) const HEADER_HOST: &str = "api.example.com";
/// Distinct path prefixes in the 100-header-rule configuration.
pub(crate) const HEADER_PREFIXES: usize = 20;
/// Rules per prefix (they differ by their header matches).
pub(crate) const RULES_PER_PREFIX: usize = 5;

/// 100 rules on one host: 20 path prefixes `/api/svc-NN` × 5 rules each. Rule `k` of a
/// prefix matches `x-tenant: tenant-k` (exact) and, for odd `k`, also
/// `x-client-version` starting with `2.` — so every rule has 1–2 header matches and a
/// prefix bucket holds 5 candidates that only the headers tell apart. Each rule is a
/// 90/10 canary split over its service's two backends.
pub(crate) fn header_rules_yaml() -> String {
    let mut y = String::from("backends:\n");
    for p in 0..HEADER_PREFIXES {
        let _ = writeln!(y, "  - name: svc-{p:02}-stable");
        let _ = writeln!(y, "  - name: svc-{p:02}-canary");
    }
    let _ = write!(
        y,
        "routes:\n  - name: api\n    hostnames: [{HEADER_HOST}]\n    rules:\n"
    );
    for p in 0..HEADER_PREFIXES {
        for k in 0..RULES_PER_PREFIX {
            let _ = writeln!(y, "      - name: svc-{p:02}-t{k}");
            let _ = writeln!(y, "        matches:");
            let _ = writeln!(y, "          - path: {{prefix: /api/svc-{p:02}}}");
            let _ = writeln!(y, "            headers:");
            let _ = writeln!(y, "              - {{name: x-tenant, exact: tenant-{k}}}");
            if k % 2 == 1 {
                let _ = writeln!(
                    y,
                    "              - {{name: x-client-version, prefix: \"2.\"}}"
                );
            }
            let _ = writeln!(y, "        backends:");
            let _ = writeln!(y, "          - {{name: svc-{p:02}-stable, weight: 90}}");
            let _ = writeln!(y, "          - {{name: svc-{p:02}-canary, weight: 10}}");
        }
    }
    y
}

/// The rule the header request hits: prefix 10, tenant 2 (rule 52 of 100). In its
/// bucket the two-header rules (tenants 1, 3) are tried first, then tenant 0, then it.
pub(crate) const HEADER_HIT_RULE: usize = 10 * RULES_PER_PREFIX + 2;

/// 100 rules on one host and one prefix `/api`, told apart only by `x-tenant:
/// tenant-N`: the worst case for a bucket (every rule is a candidate, tried in
/// declaration order).
pub(crate) fn one_prefix_header_rules_yaml() -> String {
    let mut y = String::from("backends: [{name: stable}, {name: canary}]\nroutes:\n");
    let _ = write!(
        y,
        "  - name: api\n    hostnames: [{HEADER_HOST}]\n    rules:\n"
    );
    for k in 0..100 {
        let _ = writeln!(
            y,
            "      - {{matches: [{{path: {{prefix: /api}}, headers: [{{name: x-tenant, exact: tenant-{k}}}]}}], \
             backends: [{{name: stable, weight: 90}}, {{name: canary, weight: 10}}]}}"
        );
    }
    y
}

/// Typical browser/API-client headers around the routing headers.
const COMMON_HEADERS: &[(&str, &str)] = &[
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"),
    ("accept", "application/json"),
    ("accept-encoding", "gzip, br"),
    ("x-request-id", "7f3c2a9e-4b1d-4e8a-9c2f-0d6b5a1e3f47"),
    ("cookie", "session=abc123; theme=dark"),
];

/// The header request as the tower layer sees it: HTTP/1.1 origin-form URI, host in
/// the `Host` header.
pub(crate) fn header_http_request(tenant: usize) -> http::Request<()> {
    let mut b = http::Request::get("/api/svc-10/users/42?expand=orders")
        .header("host", HEADER_HOST)
        .header("x-tenant", format!("tenant-{tenant}"))
        .header("x-client-version", "1.9.3");
    for (k, v) in COMMON_HEADERS {
        b = b.header(*k, *v);
    }
    b.body(()).expect("valid request")
}

/// The same request as a [`RequestInfo`] (absolute URI).
pub(crate) fn header_request_info(tenant: usize) -> RequestInfo {
    let mut r = RequestInfo::get(&format!(
        "http://{HEADER_HOST}/api/svc-10/users/42?expand=orders"
    ))
    .header("x-tenant", &format!("tenant-{tenant}"))
    .header("x-client-version", "1.9.3");
    for (k, v) in COMMON_HEADERS {
        r = r.header(k, v);
    }
    r
}

/// Prefix rules per host in the many-host configuration.
pub(crate) const PREFIXES_PER_HOST: usize = 10;

/// `hosts` routes `hNNNN.example.com`, each with 10 rules `/p0` … `/p9` (path prefix
/// only), each a 90/10 split over a pool of 100 backends: `hosts × 10` rules.
pub(crate) fn many_hosts_yaml(hosts: usize) -> String {
    let mut y = String::from("backends:\n");
    for b in 0..100 {
        let _ = writeln!(y, "  - name: b{b:02}");
    }
    y.push_str("routes:\n");
    for h in 0..hosts {
        let _ = writeln!(
            y,
            "  - name: h{h:04}\n    hostnames: [h{h:04}.example.com]\n    rules:"
        );
        for p in 0..PREFIXES_PER_HOST {
            let r = h * PREFIXES_PER_HOST + p;
            let _ = writeln!(
                y,
                "      - {{matches: [{{path: {{prefix: /p{p}}}}}], backends: [{{name: b{:02}, weight: 90}}, {{name: b{:02}, weight: 10}}]}}",
                r % 100,
                (r + 1) % 100
            );
        }
    }
    y
}

/// A request to `host`, HTTP/1.1 origin-form with a `Host` header, plus the common headers.
pub(crate) fn host_request(host: &str, path: &str) -> http::Request<()> {
    let mut b = http::Request::get(path).header("host", host);
    for (k, v) in COMMON_HEADERS {
        b = b.header(*k, *v);
    }
    b.body(()).expect("valid request")
}

/// Random weights in `1..=1000` for `n` backends (fixed seed per `n`).
pub(crate) fn random_weights(n: usize) -> Vec<u32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(SEED ^ n as u64);
    (0..n).map(|_| rng.random_range(1..=1000)).collect()
}

/// `(name, weight)` pairs for a Maglev table of `n` backends with random weights.
pub(crate) fn maglev_backends(n: usize) -> Vec<(String, u32)> {
    random_weights(n)
        .into_iter()
        .enumerate()
        .map(|(i, w)| (format!("backend-{i:04}"), w))
        .collect()
}

/// The criterion settings shared by the nanosecond-scale bench targets: short warm-up
/// and measurement so the whole suite stays around two minutes on two cores.
#[allow(dead_code)] // not every bench target uses it
pub(crate) fn fast_criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(800))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(100)
}
