//! Hot swap under concurrent load: readers never fail, never go back in time, and an
//! invalid update never replaces the live table.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use routing_core::*;

fn config(v1: u32, v2: u32, extra_backend: bool) -> Config {
    let extra = if extra_backend { ", {name: v3}" } else { "" };
    Config::from_yaml(&format!(
        r#"
maglev_table_size: 1009
backends: [{{name: v1}}, {{name: v2}}{extra}]
routes:
  - name: shop
    hostnames: [shop.test]
    rules:
      - matches: [{{headers: [{{name: x-canary, exact: "true"}}]}}]
        backends: [{{name: v2}}]
      - backends: [{{name: v1, weight: {v1}}}, {{name: v2, weight: {v2}}}]
        load_balancer: {{consistent_hash: {{cookie: session}}}}
"#
    ))
    .unwrap()
}

#[test]
fn a_thousand_swaps_under_load_fail_no_request() {
    let router = Router::new(config(90, 10, false)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (router, stop) = (router.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                let (mut served, mut last_gen) = (0u64, 0u64);
                // Bounded: stops when the writer is done, or after 50 M requests.
                while !stop.load(Ordering::Relaxed) && served < 50_000_000 {
                    let table = router.load();
                    assert!(table.generation() >= last_gen, "generations never go back");
                    last_gen = table.generation();
                    let req = RequestInfo::get("http://shop.test/cart")
                        .header("cookie", &format!("session=s{}", served % 1000));
                    let d = table
                        .decide(&req, &mut rng)
                        .expect("every request is routed");
                    assert!(matches!(d.backend().unwrap().name(), "v1" | "v2"));
                    served += 1;
                }
                served
            })
        })
        .collect();

    let bad = Config::from_yaml("routes: [{name: shop, rules: [{backends: [{name: nowhere}]}]}]")
        .unwrap();
    for i in 0..1_000u32 {
        let gen_before = router.generation();
        if i % 10 == 0 {
            assert!(router.update(bad.clone()).is_err());
            assert_eq!(
                router.generation(),
                gen_before,
                "a refused update changes nothing"
            );
        }
        let w = 1 + i % 99;
        let generation = router.update(config(100 - w, w, i % 2 == 0)).unwrap();
        assert_eq!(generation, gen_before + 1);
    }
    stop.store(true, Ordering::Relaxed);
    let served: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(router.generation(), 1_001);
    assert!(served > 0);
    println!("{served} requests served during 1 000 swaps");
}

#[test]
fn health_survives_swaps_and_is_pruned_with_the_backend() {
    let router = Router::new(config(50, 50, true)).unwrap();
    router.health().set_available("v1", false);
    router.update(config(60, 40, true)).unwrap();
    assert_eq!(
        router.health().is_available("v1"),
        Some(false),
        "ejection survives the swap"
    );
    let t = router.load();
    let mut rng = SmallRng::seed_from_u64(1);
    for k in 0..500 {
        let req = RequestInfo::get("http://shop.test/").header("cookie", &format!("session={k}"));
        assert_eq!(
            t.decide(&req, &mut rng).unwrap().backend().unwrap().name(),
            "v2"
        );
    }
    drop(t);
    router.update(config(60, 40, false)).unwrap();
    assert_eq!(
        router.health().is_available("v3"),
        None,
        "a removed backend is forgotten"
    );
}

#[test]
fn a_reader_holding_an_old_table_keeps_a_consistent_view() {
    let router = Router::new(config(100, 0, false)).unwrap();
    let old = router.snapshot();
    router.update(config(0, 100, false)).unwrap();
    let mut rng = SmallRng::seed_from_u64(2);
    let req = RequestInfo::get("http://shop.test/");
    assert_eq!(
        old.decide(&req, &mut rng)
            .unwrap()
            .backend()
            .unwrap()
            .name(),
        "v1"
    );
    assert_eq!(
        router
            .load()
            .decide(&req, &mut rng)
            .unwrap()
            .backend()
            .unwrap()
            .name(),
        "v2"
    );
}
