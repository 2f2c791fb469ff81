//! Build-cost benchmarks.
//!
//! * `maglev_build` — goal < 5 ms at 1 000 backends: `MaglevTable::build` at 65 537
//!   slots for 10, 100 and 1 000 backends with random weights in 1..=1000.
//! * `config_load` — informational: `RouteTable::from_yaml` of the 100-header-rule
//!   configuration used by the `decide` bench (parse + validate + index).
//!
//! Run: `cargo bench -p routing-benches --bench build_cost`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use routing_core::{MaglevTable, RouteTable, DEFAULT_MAGLEV_SIZE};

mod configs;
use configs::*;

fn maglev_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [10usize, 100, 1_000] {
        let backends = maglev_backends(n);
        g.bench_with_input(BenchmarkId::new("slots_65537", n), &backends, |b, bk| {
            b.iter(|| MaglevTable::build(black_box(bk), black_box(DEFAULT_MAGLEV_SIZE)))
        });
    }
    g.finish();
}

fn config_load(c: &mut Criterion) {
    let yaml = header_rules_yaml();
    let mut g = c.benchmark_group("config_load");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("from_yaml_100_header_rules", |b| {
        b.iter(|| RouteTable::from_yaml(black_box(&yaml)).expect("valid config"))
    });
    g.finish();
}

criterion_group!(benches, maglev_build, config_load);
criterion_main!(benches);
