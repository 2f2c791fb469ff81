//! Routing decision benchmarks: `RouteTable::decide` (match + backend select) and
//! `RouteTable::find` (match only).
//!
//! * `decide_100_header_rules` — goal < 100 ns: 100 rules on one host, path prefix +
//!   1–2 header matches each; the request hits rule 52 (see `configs.rs`).
//! * `decide_10k_rules` — goal < 300 ns: 1 000 hosts × 10 prefix rules, plus the same
//!   shape at 100 and 1 000 rules and requests that match nothing (404), to show the
//!   cost does not grow with the table.
//!
//! * `first_match_100_rules` — goal < 150 ns and within 1.5× of `specificity_prefix`:
//!   an imported ALB/Istio-shaped route (`first_match`, `starts_with` paths) whose
//!   last rule matches (the worst case of a scan in declaration order; the trie of
//!   `first_match` routes finds it in one walk of the path), against the same rules
//!   as segment prefixes in the default specificity order.
//!
//! Run: `cargo bench -p routing-benches --bench decide`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use routing_core::{RouteError, RouteTable};

mod configs;
use configs::*;

fn table(yaml: &str) -> RouteTable {
    RouteTable::from_yaml(yaml).expect("bench config is valid")
}

fn decide_100_header_rules(c: &mut Criterion) {
    let t = table(&header_rules_yaml());
    assert_eq!(t.rules().len(), 100);
    let http_req = header_http_request(2);
    let info_req = header_request_info(2);
    let mut rng = SmallRng::seed_from_u64(SEED);
    // Sanity: both inputs hit the intended rule in the middle of the table.
    for d in [
        t.decide(&http_req, &mut rng).expect("routes"),
        t.decide(&info_req, &mut rng).expect("routes"),
    ] {
        assert_eq!(d.rule_index(), HEADER_HIT_RULE);
        assert!(d.backend().is_some());
    }

    let worst = table(&one_prefix_header_rules_yaml());
    let worst_req = header_http_request(50);
    assert_eq!(
        worst
            .decide(&worst_req, &mut rng)
            .expect("routes")
            .rule_index(),
        50
    );

    let mut g = c.benchmark_group("decide_100_header_rules");
    g.bench_function("http_request", |b| {
        b.iter(|| {
            black_box(t.decide(black_box(&http_req), &mut rng))
                .map(|d| d.backend_id())
                .ok()
        })
    });
    g.bench_function("request_info", |b| {
        b.iter(|| {
            black_box(t.decide(black_box(&info_req), &mut rng))
                .map(|d| d.backend_id())
                .ok()
        })
    });
    g.bench_function("find_only_http_request", |b| {
        b.iter(|| black_box(t.find(black_box(&http_req))))
    });
    // Informational: all 100 rules in one prefix bucket, the request hits the 51st.
    g.bench_function("one_prefix_worst_case_http_request", |b| {
        b.iter(|| {
            black_box(worst.decide(black_box(&worst_req), &mut rng))
                .map(|d| d.backend_id())
                .ok()
        })
    });
    g.finish();
}

fn decide_10k_rules(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut g = c.benchmark_group("decide_10k_rules");
    for hosts in [10usize, 100, 1_000] {
        let rules = hosts * PREFIXES_PER_HOST;
        let t = table(&many_hosts_yaml(hosts));
        assert_eq!(t.rules().len(), rules);
        // A host and prefix in the middle of the table.
        let h = hosts / 2;
        let host = format!("h{h:04}.example.com");
        let hit = host_request(&host, "/p5/items/123?color=red");
        let miss_path = host_request(&host, "/nope/items/123");
        let miss_host = host_request("unknown.example.org", "/p5/items/123");
        assert_eq!(
            t.decide(&hit, &mut rng).expect("routes").rule_index(),
            h * PREFIXES_PER_HOST + 5
        );
        for m in [&miss_path, &miss_host] {
            assert!(matches!(t.decide(m, &mut rng), Err(RouteError::NoRoute)));
        }

        g.bench_with_input(BenchmarkId::new("hit", rules), &hit, |b, req| {
            b.iter(|| {
                black_box(t.decide(black_box(req), &mut rng))
                    .map(|d| d.backend_id())
                    .ok()
            })
        });
        g.bench_with_input(
            BenchmarkId::new("miss_path_404", rules),
            &miss_path,
            |b, req| b.iter(|| black_box(t.decide(black_box(req), &mut rng)).is_err()),
        );
        if hosts == 1_000 {
            g.bench_with_input(
                BenchmarkId::new("miss_host_404", rules),
                &miss_host,
                |b, req| b.iter(|| black_box(t.decide(black_box(req), &mut rng)).is_err()),
            );
            g.bench_with_input(BenchmarkId::new("find_only_hit", rules), &hit, |b, req| {
                b.iter(|| black_box(t.find(black_box(req))))
            });
        }
    }
    g.finish();
}

/// 100 rules `/svc{i}/…` with a header condition each, as an ALB listener or an
/// Istio `VirtualService` imports them (`precedence: first_match`, plain
/// `starts_with` paths), against the same rules as segment prefixes in the default
/// specificity order. The request hits the last rule: the first-match scan's worst
/// case.
fn first_match_yaml(first_match: bool) -> String {
    let mut y = String::from("backends: [{name: a}, {name: b}]\nroutes:\n  - name: listener\n");
    if first_match {
        y.push_str("    precedence: first_match\n");
    }
    y.push_str("    rules:\n");
    for i in 0..100 {
        let path = if first_match {
            format!("{{starts_with: /svc{i}/}}")
        } else {
            format!("{{prefix: /svc{i}}}")
        };
        y.push_str(&format!(
            "      - matches: [{{path: {path}, headers: [{{name: x-tenant, exact: t{i}}}]}}]\n        backends: [{{name: a, weight: 80}}, {{name: b, weight: 20}}]\n"
        ));
    }
    y
}

fn first_match_100_rules(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut req = host_request("shop.example.com", "/svc99/cart");
    req.headers_mut()
        .insert("x-tenant", http::HeaderValue::from_static("t99"));
    let mut g = c.benchmark_group("first_match_100_rules");
    for (name, first) in [
        ("specificity_prefix", false),
        ("first_match_starts_with", true),
    ] {
        let t = table(&first_match_yaml(first));
        assert_eq!(t.decide(&req, &mut rng).expect("routes").rule_index(), 99);
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(t.decide(black_box(&req), &mut rng))
                    .map(|d| d.backend_id())
                    .ok()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = fast_criterion();
    targets = decide_100_header_rules, decide_10k_rules, first_match_100_rules
}
criterion_main!(benches);
