//! Weighted Maglev quality: shares, disruption, determinism.
//!
//! Run with `--nocapture` to see the figures recorded in BENCHMARKS.md.
#![allow(clippy::unwrap_used)]

use routing_core::{mix64, MaglevTable, DEFAULT_MAGLEV_SIZE};

const M: u32 = DEFAULT_MAGLEV_SIZE;

fn backends(n: usize, seed: u64) -> Vec<(String, u32)> {
    (0..n)
        .map(|i| {
            (
                format!("backend-{seed}-{i}"),
                1 + (mix64(seed ^ i as u64) % 1000) as u32,
            )
        })
        .collect()
}

fn build(b: &[(String, u32)]) -> MaglevTable {
    MaglevTable::build(b, M).unwrap()
}

/// Owner name of every slot.
fn owners<'a>(t: &MaglevTable, b: &'a [(String, u32)]) -> Vec<&'a str> {
    t.slots()
        .iter()
        .map(|&i| b[i as usize].0.as_str())
        .collect()
}

/// Theoretical minimum fraction of slots that must move: half the sum of absolute
/// changes of the weight shares.
fn min_move(old: &[(String, u32)], new: &[(String, u32)]) -> f64 {
    let share = |b: &[(String, u32)], name: &str| {
        let total: f64 = b.iter().map(|x| f64::from(x.1)).sum();
        b.iter()
            .find(|x| x.0 == name)
            .map_or(0.0, |x| f64::from(x.1) / total)
    };
    let mut names: Vec<&str> = old.iter().chain(new).map(|x| x.0.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .iter()
        .map(|n| (share(old, n) - share(new, n)).abs())
        .sum::<f64>()
        / 2.0
}

#[test]
fn shares_follow_weights() {
    for n in [2usize, 3, 10, 100, 1000] {
        let b = backends(n, n as u64);
        let t = build(&b);
        let counts = t.slot_counts(n);
        let total: f64 = b.iter().map(|x| f64::from(x.1)).sum();
        let (mut worst_abs, mut worst_rel, mut worst_sigma) = (0.0f64, 0.0f64, 0.0f64);
        for (i, (_, w)) in b.iter().enumerate() {
            let want = f64::from(*w) / total;
            let got = f64::from(counts[i]) / f64::from(M);
            let sigma = (f64::from(M) * want * (1.0 - want)).sqrt();
            worst_abs = worst_abs.max((got - want).abs());
            worst_rel = worst_rel.max((got - want).abs() / want);
            worst_sigma =
                worst_sigma.max((f64::from(counts[i]) - f64::from(M) * want).abs() / sigma);
            assert!(
                (got - want).abs() <= 0.005,
                "n={n}: backend {i} holds {got:.5} of the table, weight share {want:.5}"
            );
        }
        // Slot ownership behaves like independent draws: nothing beyond 5 sigma.
        assert!(
            worst_sigma < 5.0,
            "n={n}: a share is {worst_sigma:.1} sigma off"
        );
        println!("shares n={n:4}: worst |table - weight| = {:.4} pp, worst relative = {:.2} %, worst = {worst_sigma:.2} sigma", worst_abs * 100.0, worst_rel * 100.0);
    }
}

/// Applies `change` to `b` and checks that only the changed backend's slots moved.
fn check_disruption(
    n: usize,
    trial: u64,
    old: &[(String, u32)],
    new: &[(String, u32)],
    changed: &str,
) -> (f64, f64) {
    let (t_old, t_new) = (build(old), build(new));
    let (o, w) = (owners(&t_old, old), owners(&t_new, new));
    let mut moved = 0usize;
    for (slot, (a, b)) in o.iter().zip(&w).enumerate() {
        if a != b {
            moved += 1;
            assert!(
                *a == changed || *b == changed,
                "n={n} trial {trial}: slot {slot} moved {a} -> {b}, neither is the changed backend {changed}"
            );
        }
    }
    let moved = moved as f64 / f64::from(M);
    (moved, min_move(old, new))
}

/// The bound a single change must meet. A table holds whole slots, so the number of
/// slots that change owner carries binomial noise of about `sqrt(M * min)` slots. For a
/// change of at least 256 slots (4 sigma <= 25 %) we require the bound,
/// `moved <= 1.25 * min`; for smaller changes, `moved <= min + 4 sigma`.
fn allowed(min: f64) -> f64 {
    let m = f64::from(M);
    let min_slots = min * m;
    if min_slots >= 256.0 {
        1.25 * min
    } else {
        min + 4.0 * min_slots.sqrt() / m
    }
}

#[test]
fn only_the_changed_backends_slots_move() {
    for n in [2usize, 10, 100, 1000] {
        let trials = if n == 1000 { 10 } else { 20 };
        let mut ratios_rm = Vec::new();
        let mut ratios_w = Vec::new();
        for trial in 0..trials {
            let b = backends(n, 1000 + n as u64 + trial);
            let k = (mix64(trial) % n as u64) as usize;
            let name = b[k].0.clone();

            // Re-weight one backend: up by half, or down by half, alternately.
            let mut reweighted = b.clone();
            reweighted[k].1 = if trial % 2 == 0 {
                b[k].1 * 3 / 2 + 1
            } else {
                (b[k].1 / 2).max(1)
            };
            let (moved, min) = check_disruption(n, trial, &b, &reweighted, &name);
            assert!(
                moved <= allowed(min),
                "n={n} trial {trial}: re-weight moved {moved:.5}, minimum {min:.5}"
            );
            ratios_w.push(moved / min);

            // Remove it (weight 0 and removal are the same table).
            if n > 1 {
                let mut removed = b.clone();
                removed.remove(k);
                let (moved, min) = check_disruption(n, trial, &b, &removed, &name);
                assert!(
                    moved <= allowed(min),
                    "n={n} trial {trial}: removal moved {moved:.5}, minimum {min:.5}"
                );
                ratios_rm.push(moved / min);
                let mut drained = b.clone();
                drained[k].1 = 0;
                assert_eq!(
                    owners(&build(&drained), &drained),
                    owners(&build(&removed), &removed),
                    "drain == removal"
                );
            }
        }
        let stats = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (
                v.get(v.len() / 2).copied().unwrap_or(1.0),
                v.last().copied().unwrap_or(1.0),
            )
        };
        let ((med_rm, max_rm), (med_w, max_w)) = (stats(&mut ratios_rm), stats(&mut ratios_w));
        println!("disruption n={n:4}: moved/minimum removal median {med_rm:.3} max {max_rm:.3}; re-weight median {med_w:.3} max {max_w:.3}");
        assert!(
            med_rm <= 1.25 && med_w <= 1.25,
            "n={n}: median ratios {med_rm:.3} / {med_w:.3}"
        );
    }
}

#[test]
fn canary_steps_move_only_the_minimum() {
    // A progressive rollout on a sticky rule: 5 → 10 → 25 → 50 → 100 %.
    let steps = [5u32, 10, 25, 50, 100];
    let mut prev: Option<Vec<(String, u32)>> = None;
    for s in steps {
        let b = vec![("stable".to_owned(), 100 - s), ("canary".to_owned(), s)];
        if let Some(p) = &prev {
            let (moved, min) = check_disruption(2, u64::from(s), p, &b, "canary");
            assert!(
                (moved - min).abs() < 0.01,
                "step to {s} %: moved {moved:.4}, minimum {min:.4}"
            );
            // Sessions only ever move stable → canary on the way up.
            let (o, w) = (owners(&build(p), p), owners(&build(&b), &b));
            assert!(o
                .iter()
                .zip(&w)
                .all(|(a, b)| a == b || (*a == "stable" && *b == "canary")));
        }
        prev = Some(b);
    }
}

#[test]
fn tables_are_deterministic_and_order_independent() {
    let b = backends(50, 7);
    let t = build(&b);
    assert_eq!(t, build(&b));
    let mut reversed = b.clone();
    reversed.reverse();
    assert_eq!(
        owners(&t, &b),
        owners(&build(&reversed), &reversed),
        "ownership depends on names, not list order"
    );
}

#[test]
fn table_contents_are_pinned() {
    // Every process that builds a table from the same backends must get the same
    // table (the XDP loader and the HTTP layer, or two proxies). This checksum pins
    // the algorithm: changing it reshuffles every sticky session of every deployment
    // on upgrade, so it must only change with a major version.
    let b = vec![
        ("v1".to_owned(), 90),
        ("v2".to_owned(), 10),
        ("v3".to_owned(), 1),
    ];
    let t = build(&b);
    let bytes: Vec<u8> = t.slots().iter().flat_map(|s| s.to_le_bytes()).collect();
    let sum = routing_core::stable_hash(&bytes, 0);
    println!("pinned checksum {sum:#018x}");
    assert_eq!(sum, PINNED, "the weighted Maglev table changed");
}

const PINNED: u64 = 0x3d4f_4d3c_959e_78a0;

/// The table depends on the set of (name, weight) pairs, not on their order: slot by
/// slot the same backend name, for a list and the list reversed and rotated — also
/// with equal weights, where equal visit times (ties) are most likely.
#[test]
fn same_backends_in_any_order_build_the_same_table() {
    // Number of slots whose owner differs (keeps failure messages short).
    fn differ(a: &[(String, u32)], b: &[(String, u32)]) -> usize {
        let (ta, tb) = (build(a), build(b));
        owners(&ta, a)
            .iter()
            .zip(owners(&tb, b))
            .filter(|(x, y)| **x != *y)
            .count()
    }
    for (n, seed) in [(7, 1), (100, 2), (1_000, 3)] {
        let b = backends(n, seed);
        let mut reversed = b.clone();
        reversed.reverse();
        assert_eq!(differ(&b, &reversed), 0, "{n} reversed");
        let mut rotated = b.clone();
        rotated.rotate_left(n / 3);
        assert_eq!(differ(&b, &rotated), 0, "{n} rotated");
        let equal: Vec<(String, u32)> = b.iter().map(|(name, _)| (name.clone(), 1)).collect();
        let mut rev = equal.clone();
        rev.reverse();
        assert_eq!(differ(&equal, &rev), 0, "{n} equal weights, reversed");
    }
}

/// `tcp_services[].maglev_seed`: the same seed builds the same table (and
/// fingerprint) on every loader, a different seed another spread of the same
/// targets, and seed 0 is the unseeded table.
#[test]
fn maglev_seed_changes_the_table_and_the_fingerprint_deterministically() {
    let cfg = |seed: &str| {
        routing_core::RouteTable::from_yaml(&format!(
            "backends: [{{name: a, address: '10.0.0.1:80'}}, {{name: b, address: '10.0.0.2:80'}}, {{name: c, address: '10.0.0.3:80'}}]\ntcp_services: [{{name: web, vip: '192.0.2.1:80', backends: [{{name: a}}, {{name: b}}, {{name: c}}]{seed}}}]"
        ))
        .expect("config")
    };
    let (none, zero, s1, s1b, s2) = (
        cfg(""),
        cfg(", maglev_seed: 0"),
        cfg(", maglev_seed: 1"),
        cfg(", maglev_seed: 1"),
        cfg(", maglev_seed: 2"),
    );
    let slots = |t: &routing_core::RouteTable| t.tcp_services()[0].maglev().slots().to_vec();
    assert_eq!(slots(&none), slots(&zero));
    assert_eq!(none.tcp_fingerprint(), zero.tcp_fingerprint());
    assert_eq!(slots(&s1), slots(&s1b));
    assert_eq!(s1.tcp_fingerprint(), s1b.tcp_fingerprint());
    for other in [&none, &s2] {
        assert_ne!(s1.tcp_fingerprint(), other.tcp_fingerprint());
        let moved = slots(&s1)
            .iter()
            .zip(slots(other))
            .filter(|(a, b)| **a != *b)
            .count();
        // Uncorrelated spreads of 3 equal targets differ in about 2/3 of the slots.
        assert!(moved > slots(&s1).len() / 2, "{moved} slots differ");
    }
}
