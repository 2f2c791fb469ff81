//! Endpoint pool benchmarks (the second level of selection, issue 16):
//! `EndpointPool::pick` by least request (power of two choices over in-flight
//! counts) and by a hash key (the pool's Maglev table), for pools of 3, 30 and 300
//! pods; beside it, in the same run, the first level's `AliasTable::pick` over the
//! same number of entries as the baseline a request already pays.
//!
//! Run: `cargo bench -p routing-benches --bench endpoints`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use routing_core::{AliasTable, RouteTable};

mod configs;
use configs::*;

const KEYS: usize = 4_096;

fn pool_table(n: usize) -> RouteTable {
    let eps: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{address: \"10.{}.{}.{}:8080\"}}",
                i / 65_536,
                (i / 256) % 256,
                i % 256
            )
        })
        .collect();
    RouteTable::from_yaml(&format!(
        "backends: [{{name: v1, endpoints: [{}]}}]",
        eps.join(", ")
    ))
    .expect("valid pool")
}

fn endpoint_pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("endpoint_pick");
    for n in [3usize, 30, 300] {
        let table = pool_table(n);
        let pool = table.backends()[0].endpoints().expect("pool").clone();
        let mut rng = SmallRng::seed_from_u64(SEED);
        let load: Vec<u64> = (0..n).map(|_| rng.random_range(0..8)).collect();
        let keys: Vec<u64> = (0..KEYS).map(|_| rng.random()).collect();
        let alias = AliasTable::new(&vec![1u32; n]).expect("weights");

        g.bench_with_input(BenchmarkId::new("least_request", n), &pool, |b, p| {
            let mut rng = SmallRng::seed_from_u64(SEED);
            b.iter(|| black_box(p.pick(&mut rng, None, |i| load[i], |_| true)))
        });
        g.bench_with_input(BenchmarkId::new("hashed", n), &pool, |b, p| {
            let mut rng = SmallRng::seed_from_u64(SEED);
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & (KEYS - 1);
                black_box(p.pick(&mut rng, Some(keys[i]), |_| 0, |_| true))
            })
        });
        g.bench_with_input(BenchmarkId::new("baseline_alias", n), &alias, |b, t| {
            let mut rng = SmallRng::seed_from_u64(SEED);
            b.iter(|| black_box(t.pick(&mut rng)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = fast_criterion();
    targets = endpoint_pick
}
criterion_main!(benches);
