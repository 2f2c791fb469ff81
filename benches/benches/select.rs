//! Backend selection benchmarks.
//!
//! * `maglev_lookup` — goal < 15 ns: `MaglevTable::lookup` on a 65 537-slot table of
//!   1 000 weighted backends, with a precomputed hash and with hashing a 16-byte key
//!   through `routing_core::stable_hash`. Keys cycle through 4 096 random values so
//!   the slot reads are not all one cache line.
//! * `weighted_pick` — goal < 15 ns: `AliasTable::pick` against the baseline
//!   `rand::distr::weighted::WeightedIndex` (rand 0.9's path of the old
//!   `rand::distributions::WeightedIndex`), same weights (random 1..=1000), same
//!   `SmallRng` seed, for 2, 10, 100 and 1 000 backends.
//! * `smooth_round_robin` — `SmoothRoundRobin::next` with the same weights, and a
//!   90/10 canary.
//!
//! Run: `cargo bench -p routing-benches --bench select`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use routing_core::{stable_hash, AliasTable, MaglevTable, SmoothRoundRobin, DEFAULT_MAGLEV_SIZE};

mod configs;
use configs::*;

const KEYS: usize = 4_096;

fn maglev_lookup(c: &mut Criterion) {
    let table = MaglevTable::build(&maglev_backends(1_000), DEFAULT_MAGLEV_SIZE)
        .expect("valid maglev table");
    let mut rng = SmallRng::seed_from_u64(SEED);
    let hashes: Vec<u64> = (0..KEYS).map(|_| rng.random()).collect();
    let keys: Vec<[u8; 16]> = (0..KEYS).map(|_| rng.random()).collect();

    let mut g = c.benchmark_group("maglev_lookup");
    g.bench_function("precomputed_hash", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            black_box(table.lookup(black_box(hashes[i])))
        })
    });
    g.bench_function("stable_hash_16B_key", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            let key: &[u8; 16] = black_box(&keys[i]);
            black_box(table.lookup(stable_hash(key, 0)))
        })
    });
    // What the 16-byte hash alone costs (to split the line above).
    g.bench_function("stable_hash_16B_only", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & (KEYS - 1);
            black_box(stable_hash(black_box(&keys[i]), 0))
        })
    });
    g.finish();
}

fn weighted_pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("weighted_pick");
    for n in [2usize, 10, 100, 1_000] {
        let weights = random_weights(n);
        let alias = AliasTable::new(&weights).expect("positive weights");
        let wi = WeightedIndex::new(&weights).expect("positive weights");

        g.bench_with_input(BenchmarkId::new("alias", n), &alias, |b, t| {
            let mut rng = SmallRng::seed_from_u64(SEED);
            b.iter(|| black_box(t.pick(&mut rng)))
        });
        g.bench_with_input(BenchmarkId::new("weighted_index", n), &wi, |b, d| {
            let mut rng = SmallRng::seed_from_u64(SEED);
            b.iter(|| black_box(d.sample(&mut rng)))
        });
    }
    g.finish();
}

fn smooth_round_robin(c: &mut Criterion) {
    let mut g = c.benchmark_group("smooth_round_robin");
    for n in [2usize, 10, 100, 1_000] {
        let rr = SmoothRoundRobin::new(&random_weights(n)).expect("positive weights");
        // The cycle length decides the implementation: a precomputed sequence up to
        // 16 384 picks, a mutex-guarded O(n) step beyond (printed for BENCHMARKS.md).
        eprintln!(
            "smooth_round_robin/next/{n}: cycle length {}",
            rr.cycle_len()
        );
        g.bench_with_input(BenchmarkId::new("next", n), &rr, |b, rr| {
            b.iter(|| black_box(rr.next()))
        });
    }
    let canary = SmoothRoundRobin::new(&[90, 10]).expect("positive weights");
    g.bench_function("next_canary_90_10", |b| b.iter(|| black_box(canary.next())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = fast_criterion();
    targets = maglev_lookup, weighted_pick, smooth_round_robin
}
criterion_main!(benches);
