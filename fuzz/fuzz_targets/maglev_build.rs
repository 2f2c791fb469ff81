//! `MaglevTable::build` on an arbitrary small list of `(name, weight)` and a table
//! size from a fixed set of primes and non-primes. When it builds: every slot holds
//! the index of a positive-weight backend, the table has `size` slots (none when no
//! weight is positive), building is deterministic, and draining one backend (weight
//! 0) moves only that backend's slots — the minimal-disruption promise of the
//! weighted-rendezvous fill (see `select/maglev.rs`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use routing_core::{MaglevError, MaglevTable, MAX_WEIGHT};

/// Primes (3 is the smallest accepted), non-primes, out-of-range values, the default.
const SIZES: &[u32] = &[
    0, 1, 2, 3, 4, 5, 7, 9, 11, 13, 15, 17, 31, 97, 100, 101, 251, 256, 257, 1_009, 1_024, 4_093,
    65_537,
];

#[derive(Arbitrary, Debug)]
struct Input {
    size: u8,
    backends: Vec<(Vec<u8>, u32)>,
    /// Which backend to drain for the disruption check.
    drain: u8,
}

fuzz_target!(|input: Input| {
    let size = SIZES[input.size as usize % SIZES.len()];
    let backends: Vec<(Vec<u8>, u32)> = input
        .backends
        .into_iter()
        .take(64)
        .map(|(name, w)| (name, w % (MAX_WEIGHT + 1)))
        .collect();
    let table = match MaglevTable::build(&backends, size) {
        Ok(t) => t,
        Err(MaglevError::BadSize(s)) => {
            assert_eq!(s, u64::from(size));
            assert!(
                size < 3 || !routing_core::is_prime(u64::from(size)),
                "rejected prime size {size}"
            );
            return;
        }
        Err(MaglevError::TooManyBackends {
            backends: n,
            size: s,
        }) => {
            assert_eq!((n, s), (backends.len(), size));
            assert!(n > size as usize, "{n} backends rejected for {size} slots");
            return;
        }
        Err(e) => panic!("unexpected error {e:?}"),
    };
    assert!(
        routing_core::is_prime(u64::from(size)) && size >= 3,
        "built with bad size {size}"
    );

    let any_weight = backends.iter().any(|b| b.1 > 0);
    if !any_weight {
        assert!(
            table.is_empty(),
            "no positive weight but {} slots",
            table.len()
        );
        assert_eq!(table.lookup(0x1234_5678_9abc_def0), None);
        return;
    }
    assert_eq!(table.len(), size as usize);
    for (s, &b) in table.slots().iter().enumerate() {
        assert!(
            (b as usize) < backends.len(),
            "slot {s} holds backend {b} of {}",
            backends.len()
        );
        assert!(
            backends[b as usize].1 > 0,
            "slot {s} holds zero-weight backend {b}"
        );
    }
    assert_eq!(
        table
            .slot_counts(backends.len())
            .iter()
            .map(|&c| c as usize)
            .sum::<usize>(),
        size as usize
    );
    for key in [0u64, 1, u64::MAX, 0x9e37_79b9_7f4a_7c15] {
        let b = table
            .lookup(key)
            .expect("non-empty table answers every key");
        assert!(backends[b as usize].1 > 0);
    }

    // Deterministic, and minimally disruptive when one backend is drained.
    if size <= 4_093 {
        assert_eq!(MaglevTable::build(&backends, size).as_ref(), Ok(&table));
        let d = input.drain as usize % backends.len();
        let mut drained = backends.clone();
        drained[d].1 = 0;
        let after = MaglevTable::build(&drained, size).expect("draining cannot make it fail");
        if drained.iter().all(|b| b.1 == 0) {
            assert!(after.is_empty());
            return;
        }
        for (s, (&old, &new)) in table.slots().iter().zip(after.slots()).enumerate() {
            assert_ne!(new as usize, d, "slot {s} still holds the drained backend");
            if old as usize != d {
                assert_eq!(
                    old, new,
                    "draining backend {d} moved slot {s} from {old} to {new} (backends {backends:?}, size {size})"
                );
            }
        }
    }
});
