//! Selection through the public API: statistical splits, exact round robin, health.
#![allow(clippy::unwrap_used)]

use rand::rngs::SmallRng;
use rand::SeedableRng;
use routing_core::*;

/// Pearson's chi-square statistic of `counts` against `weights`.
fn chi_square(counts: &[u64], weights: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    let w: u64 = weights.iter().sum();
    counts
        .iter()
        .zip(weights)
        .filter(|(_, &wi)| wi > 0)
        .map(|(&c, &wi)| {
            let e = n as f64 * wi as f64 / w as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum()
}

/// Critical values of chi-square at p = 0.001 by degrees of freedom.
const CHI2_P001: [f64; 6] = [0.0, 10.83, 13.82, 16.27, 18.47, 20.52];

fn counts_by_backend(t: &RouteTable, req: &RequestInfo, n: usize, seed: u64) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut counts = vec![0u64; t.backends().len()];
    for _ in 0..n {
        let d = t.decide(req, &mut rng).unwrap();
        counts[d.backend_id().unwrap().index()] += 1;
    }
    counts
}

fn five_backends(lb: &str, weights: [u32; 5]) -> RouteTable {
    let backends: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{{name: b{i}, weight: {w}}}"))
        .collect();
    RouteTable::from_yaml(&format!(
        "backends: [{{name: b0}}, {{name: b1}}, {{name: b2}}, {{name: b3}}, {{name: b4}}]\n\
         routes: [{{name: r, rules: [{{backends: [{}], {lb}}}]}}]",
        backends.join(", ")
    ))
    .unwrap()
}

#[test]
fn weighted_random_split_passes_chi_square() {
    let weights = [50, 30, 15, 5, 0];
    let t = five_backends("load_balancer: {simple: random}", weights);
    let counts = counts_by_backend(&t, &RequestInfo::get("/"), 100_000, 1);
    assert_eq!(counts[4], 0, "weight 0 is never picked");
    let chi2 = chi_square(&counts, &weights.map(u64::from));
    assert!(
        chi2 < CHI2_P001[3],
        "chi2 {chi2} for {counts:?} vs {weights:?}"
    );
}

#[test]
fn split_of_10_000_requests_is_within_binomial_bounds() {
    let t = five_backends("", [90, 10, 0, 0, 0]);
    let counts = counts_by_backend(&t, &RequestInfo::get("/"), 10_000, 2);
    let sigma = (10_000.0f64 * 0.1 * 0.9).sqrt();
    assert!(
        (counts[1] as f64 - 1_000.0).abs() < 4.5 * sigma,
        "canary got {} of 10 000",
        counts[1]
    );
}

#[test]
fn one_in_a_million_canary_is_honoured() {
    // 0.0001 %: expect 10 picks in 10 million; Poisson(10) lies in 1..=30 with p > 0.9999.
    let t = AliasTable::new(&[999_999, 1]).unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    let canary = (0..10_000_000).filter(|_| t.pick(&mut rng) == 1).count();
    assert!(
        (1..=30).contains(&canary),
        "canary picked {canary} times in 10M"
    );
}

#[test]
fn round_robin_is_exact_over_each_cycle() {
    let t = five_backends("load_balancer: {simple: round_robin}", [90, 10, 0, 0, 0]);
    for cycle in 0..5 {
        let counts = counts_by_backend(&t, &RequestInfo::get("/"), 100, cycle);
        assert_eq!(&counts[..2], &[90, 10], "cycle {cycle}");
    }
}

#[test]
fn all_zero_weights_is_no_backend_for_every_strategy() {
    for lb in [
        "load_balancer: {simple: random}",
        "load_balancer: {simple: round_robin}",
        "load_balancer: {consistent_hash: {header: x-user}}",
    ] {
        let t = five_backends(lb, [0; 5]);
        let mut rng = SmallRng::seed_from_u64(0);
        let err = t
            .decide(&RequestInfo::get("/").header("x-user", "u"), &mut rng)
            .unwrap_err();
        assert_eq!(err, RouteError::NoBackend { rule: 0 }, "{lb}");
    }
}

#[test]
fn unavailable_backend_share_is_redistributed_in_proportion() {
    for lb in [
        "load_balancer: {simple: random}",
        "load_balancer: {simple: round_robin}",
    ] {
        let router = Router::new(five_backends(lb, [50, 30, 20, 0, 0]).config().clone()).unwrap();
        router.health().set_available("b1", false);
        let counts = counts_by_backend(&router.load(), &RequestInfo::get("/"), 50_000, 4);
        assert_eq!(counts[1], 0, "{lb}: ejected backend gets nothing");
        let chi2 = chi_square(&[counts[0], counts[2]], &[50, 20]);
        assert!(
            chi2 < CHI2_P001[1],
            "{lb}: {counts:?} not 50:20 (chi2 {chi2})"
        );
    }
}

#[test]
fn panic_threshold_routes_to_all_when_too_few_are_left() {
    // Two of three out: 33 % < 50 % → panic mode, traffic by weight to all.
    let router = Router::new(five_backends("", [1, 1, 1, 0, 0]).config().clone()).unwrap();
    router.health().set_available("b0", false);
    router.health().set_available("b1", false);
    let counts = counts_by_backend(&router.load(), &RequestInfo::get("/"), 30_000, 5);
    let chi2 = chi_square(&counts[..3], &[1, 1, 1]);
    assert!(
        chi2 < CHI2_P001[2],
        "panic mode must use all three: {counts:?}"
    );

    // With the threshold disabled, the survivor takes everything…
    let mut cfg = router.load().config().clone();
    cfg.panic_threshold = Some(0.0);
    router.update(cfg.clone()).unwrap();
    let counts = counts_by_backend(&router.load(), &RequestInfo::get("/"), 1_000, 6);
    assert_eq!(counts[2], 1_000);
    // …and when none is left the answer is "no backend", not a panic.
    router.health().set_available("b2", false);
    let err = router
        .load()
        .decide(&RequestInfo::get("/"), &mut SmallRng::seed_from_u64(0))
        .unwrap_err();
    assert_eq!(err, RouteError::NoBackend { rule: 0 });
}

fn sticky_router() -> Router {
    Router::from_yaml(
        r#"
backends: [{name: a}, {name: b}, {name: c}, {name: d}]
routes:
  - name: r
    rules:
      - backends: [{name: a, weight: 40}, {name: b, weight: 30}, {name: c, weight: 20}, {name: d, weight: 10}]
        load_balancer: {consistent_hash: {cookie: session}}
"#,
    )
    .unwrap()
}

fn sticky_assignments(router: &Router, keys: usize) -> Vec<String> {
    let t = router.load();
    let mut rng = SmallRng::seed_from_u64(9);
    (0..keys)
        .map(|k| {
            let req = RequestInfo::get("/").header("cookie", &format!("session=s{k}"));
            t.decide(&req, &mut rng)
                .unwrap()
                .backend()
                .unwrap()
                .name()
                .to_owned()
        })
        .collect()
}

#[test]
fn sticky_keys_stay_put_and_only_an_ejected_backends_keys_move() {
    let router = sticky_router();
    let before = sticky_assignments(&router, 20_000);
    assert_eq!(
        before,
        sticky_assignments(&router, 20_000),
        "same key, same backend"
    );
    router.health().set_available("b", false);
    let after = sticky_assignments(&router, 20_000);
    let mut moved_to = std::collections::HashMap::<&str, u64>::new();
    for (x, y) in before.iter().zip(&after) {
        if x == "b" {
            assert_ne!(y, "b");
            *moved_to.entry(y.as_str()).or_default() += 1;
        } else {
            assert_eq!(x, y, "a key on an available backend must not move");
        }
    }
    // b's keys spread over a, c, d in proportion 40:20:10.
    let counts = [moved_to["a"], moved_to["c"], moved_to["d"]];
    let chi2 = chi_square(&counts, &[40, 20, 10]);
    assert!(chi2 < CHI2_P001[2], "ejected keys spread {counts:?}");
    // Back in service: everything returns.
    router.health().set_available("b", true);
    assert_eq!(before, sticky_assignments(&router, 20_000));
}

#[test]
fn requests_without_the_sticky_key_fall_back_to_weights() {
    let router = sticky_router();
    let counts = counts_by_backend(&router.load(), &RequestInfo::get("/"), 20_000, 11);
    let chi2 = chi_square(&counts, &[40, 30, 20, 10]);
    assert!(chi2 < CHI2_P001[3], "{counts:?}");
}

#[test]
fn hash_keys_by_header_query_and_source_ip() {
    for (on, a, b) in [
        (
            "{header: x-user}",
            RequestInfo::get("/").header("x-user", "u1"),
            RequestInfo::get("/").header("x-user", "u1"),
        ),
        (
            "{query: user}",
            RequestInfo::get("/?user=u1&z=1"),
            RequestInfo::get("/?z=2&user=u1"),
        ),
        (
            "{source_ip: true}",
            RequestInfo::get("/").source("192.0.2.1".parse().unwrap()),
            RequestInfo::get("/x").source("192.0.2.1".parse().unwrap()),
        ),
    ] {
        let t = RouteTable::from_yaml(&format!(
            "backends: [{{name: a}}, {{name: b}}]\nroutes: [{{name: r, rules: [{{backends: [{{name: a}}, {{name: b}}], load_balancer: {{consistent_hash: {on}}}}}]}}]"
        ))
        .unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let da = t.decide(&a, &mut rng).unwrap();
        assert!(da.sticky_key().is_some(), "{on}: key found");
        for _ in 0..50 {
            assert_eq!(
                t.decide(&b, &mut rng).unwrap().backend_id(),
                da.backend_id(),
                "{on}: same key, same backend"
            );
        }
    }
}

#[test]
fn l4_flows_are_sticky_and_split_by_weight() {
    let t = RouteTable::from_yaml(
        r#"
backends: [{name: t1, address: "10.0.0.1:80"}, {name: t2, address: "10.0.0.2:80"}]
tcp_services: [{name: web, vip: "192.0.2.10:80", backends: [{name: t1, weight: 3}, {name: t2, weight: 1}]}]
"#,
    )
    .unwrap();
    let mut counts = [0u64; 2];
    for i in 0..40_000u32 {
        let src = std::net::SocketAddr::new(
            std::net::Ipv4Addr::from(0xc633_6400 + (i >> 8)).into(),
            1024 + (i & 0xff) as u16,
        );
        let flow = FiveTuple::tcp(src, "192.0.2.10:80".parse().unwrap());
        let d = t.route_flow(&flow).unwrap();
        assert_eq!(
            t.route_flow(&flow).unwrap().backend_id,
            d.backend_id,
            "flows are sticky"
        );
        counts[d.backend_id.index()] += 1;
    }
    let chi2 = chi_square(&counts, &[3, 1]);
    // The table's own shares differ from the weights by a little; allow for that on
    // top of sampling noise (p = 0.001 bound on a 1-df statistic, doubled).
    assert!(chi2 < 2.0 * CHI2_P001[1], "{counts:?}");
    let udp = FiveTuple {
        protocol: 17,
        ..FiveTuple::tcp(
            "1.2.3.4:5".parse().unwrap(),
            "192.0.2.10:80".parse().unwrap(),
        )
    };
    assert_eq!(t.route_flow(&udp).unwrap_err(), RouteError::NoRoute);
}

/// A table with a header rule (rule 0) and a three-backend rule (rule 1) of
/// strategy `lb`.
fn hinted(lb: &str) -> RouteTable {
    RouteTable::from_yaml(&format!(
        r#"
backends: [{{name: a}}, {{name: b}}, {{name: c}}, {{name: z}}]
routes:
  - name: r
    rules:
      - matches: [{{headers: [{{name: x-z, exact: "1"}}]}}]
        backends: [{{name: z, weight: 0}}]
      - backends: [{{name: a}}, {{name: b}}, {{name: c, weight: 0}}]
        {lb}
"#
    ))
    .unwrap()
}

#[test]
fn a_preferred_backend_does_not_advance_round_robin() {
    let t = hinted("load_balancer: {simple: round_robin}");
    let b = t.backend_id("b").unwrap();
    let req = RequestInfo::get("/");
    let m = t.find(&req).unwrap();
    let mut rng = SmallRng::seed_from_u64(1);
    let mut fresh = Vec::new();
    for i in 0..12 {
        // Every other request carries a pin to `b` (a sticky cookie): it is taken
        // without a draw, so the round robin of the others is not disturbed.
        if i % 2 == 0 {
            let d = t
                .select(m, &req, &mut rng, Selection::new().prefer(b))
                .unwrap();
            assert!(d.preferred());
            assert_eq!(d.backend_id(), Some(b));
        } else {
            let d = t.select(m, &req, &mut rng, Selection::new()).unwrap();
            assert!(!d.preferred());
            fresh.push(d.backend().unwrap().name().to_owned());
        }
    }
    assert_eq!(fresh, ["a", "b", "a", "b", "a", "b"]);
}

#[test]
fn a_preference_is_honoured_only_for_a_live_positive_weight_backend_of_the_rule() {
    for lb in ["", "load_balancer: {consistent_hash: {header: x-user}}"] {
        let router = Router::new(hinted(lb).config().clone()).unwrap();
        let t = router.load();
        let id = |n| t.backend_id(n).unwrap();
        let req = RequestInfo::get("/").header("x-user", "u1");
        let m = t.find(&req).unwrap();
        let mut rng = SmallRng::seed_from_u64(2);
        // Weight 0 (drained) and a backend of another rule: a fresh choice.
        for pin in ["c", "z"] {
            let d = t
                .select(m, &req, &mut rng, Selection::new().prefer(id(pin)))
                .unwrap();
            assert!(!d.preferred(), "{lb}: {pin}");
            assert_ne!(d.backend().unwrap().name(), pin, "{lb}");
        }
        // Excluded (already tried): not taken either.
        let tried = [id("a")];
        let d = t
            .select(
                m,
                &req,
                &mut rng,
                Selection::new().prefer(id("a")).exclude(&tried),
            )
            .unwrap();
        assert_eq!(d.backend().unwrap().name(), "b", "{lb}");
        // Unavailable: not taken.
        router.health().set_available("b", false);
        let t = router.load();
        let d = t
            .select(m, &req, &mut rng, Selection::new().prefer(id("b")))
            .unwrap();
        assert!(!d.preferred());
        assert_eq!(d.backend().unwrap().name(), "a", "{lb}");
    }
}

#[test]
fn retries_exclude_what_was_tried_and_run_out_naming_the_rule() {
    for lb in [
        "",
        "load_balancer: {simple: round_robin}",
        "load_balancer: {consistent_hash: {header: x-user}}",
    ] {
        let t = hinted(lb);
        let (a, b) = (t.backend_id("a").unwrap(), t.backend_id("b").unwrap());
        let req = RequestInfo::get("/").header("x-user", "u1");
        let m = t.find(&req).unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..200 {
            let d = t
                .select(m, &req, &mut rng, Selection::new().exclude(&[a]))
                .unwrap();
            assert_eq!(d.backend_id(), Some(b), "{lb}");
        }
        let err = t
            .select(m, &req, &mut rng, Selection::new().exclude(&[a, b]))
            .unwrap_err();
        assert_eq!(err, RouteError::NoBackend { rule: 1 }, "{lb}");
    }
    // The header rule's only backend has weight 0: the error names rule 0.
    let t = hinted("");
    let err = t
        .decide(&RequestInfo::get("/").header("x-z", "1"), &mut rand::rng())
        .unwrap_err();
    assert_eq!(err, RouteError::NoBackend { rule: 0 });
}
