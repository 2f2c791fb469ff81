//! The weighted Maglev lookup table: sticky keys → backends, with minimal disruption.
//!
//! # How the table is filled
//!
//! Classic Maglev lets backends take turns claiming their next preferred empty slot.
//! With weights and hundreds of backends that is far from minimally disruptive: we
//! measured 7–9× the theoretical minimum of moved slots when one of 1 000 weighted
//! backends is removed or re-weighted (see `BENCHMARKS.md`). This table keeps Maglev's
//! shape — a prime-sized array of `u32` backend indices, looked up with one hash — but
//! fills it by *weighted rendezvous* evaluated along Maglev permutations:
//!
//! * backend `i` has a permutation of the slots, `slot(k) = (offset_i + k·skip_i) mod M`,
//!   with `offset_i`, `skip_i` derived from [`stable_hash`] of its name (as in Maglev);
//! * it "visits" its `k`-th slot at time `t_i(k) = −ln(1 − (k + ½)/M) / w_i`, an
//!   exponential clock running `w_i` times faster for a heavier backend;
//! * each slot belongs to the backend whose visit comes first.
//!
//! Because a slot's owner is the minimum of independent per-backend values, changing
//! or removing backend `i` can only move slots *to or from `i`*: no third backend is
//! reshuffled, which is exactly the minimum. The exponential clock makes the expected
//! share of backend `i` exactly `w_i / Σw`. Visits are processed only up to the time
//! every slot is covered (about `M·ln M` visits in all), so building costs
//! O(M log M) time and O(M + n) memory: no permutation matrix.
//!
//! The arithmetic (a series logarithm using only IEEE-754 add, multiply and divide) is
//! bit-for-bit reproducible on every platform, and equal visit times go to the backend
//! whose name sorts first (not to the first in the list), so every process that builds
//! a table from the same backends, listed in any order, gets the same table (slot by
//! slot the same backend name; the indices follow each caller's list) — what several
//! load balancers behind ECMP need.

use crate::hash::{reduce, stable_hash};

/// Default table size: a prime comfortably above 100× a few hundred backends.
pub const DEFAULT_MAGLEV_SIZE: u32 = 65_537;

/// Largest table size accepted: the largest prime ≤ 2^22, 64× the default (the Maglev
/// paper's largest example is 655 373). Bounds build time and memory.
pub const MAX_MAGLEV_SIZE: u32 = 4_194_301;

const EMPTY: u64 = u64::MAX;
const SEED_OFFSET: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
const SEED_SKIP: u64 = 0x6d61_676c_6576_736b; // "maglevsk"

/// Why a Maglev table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MaglevError {
    /// The size is not a prime in `3 ..= MAX_MAGLEV_SIZE`.
    #[error("maglev table size {0} is not a prime between 3 and {MAX_MAGLEV_SIZE}")]
    BadSize(u64),
    /// More backends than slots, or more than `u32::MAX - 1` backends.
    #[error("{backends} backends do not fit in a table of {size} slots")]
    TooManyBackends {
        /// Number of backends.
        backends: usize,
        /// Table size.
        size: u32,
    },
}

/// A weighted Maglev lookup table: `size` slots, each holding the index of a backend
/// in the list the table was built from.
///
/// ```
/// use routing_core::{MaglevTable, stable_hash};
/// let table = MaglevTable::build(&[("v1", 90), ("v2", 10)], 65_537).unwrap();
/// let counts = table.slot_counts(2);
/// assert!((counts[1] as f64 / 65_537.0 - 0.10).abs() < 0.005);
/// // A sticky key always lands on the same backend.
/// let key = stable_hash(b"user-42", 0);
/// assert_eq!(table.lookup(key), table.lookup(key));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Box<[u32]>,
}

/// Is `n` prime? (Deterministic trial division; `n` ≤ 2^32.)
///
/// ```
/// assert!(routing_core::is_prime(65_537));
/// assert!(!routing_core::is_prime(65_536));
/// ```
#[must_use]
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

impl MaglevTable {
    /// A table with no slot (every lookup answers `None`).
    pub(crate) fn empty() -> Self {
        Self {
            slots: Box::new([]),
        }
    }

    /// Builds the table for `(name, weight)` pairs. Names identify backends (they must be
    /// unique); zero-weight backends get no slot. With no positive weight the table is
    /// empty and every lookup answers `None`.
    ///
    /// ```
    /// let t = routing_core::MaglevTable::build(&[("a", 0), ("b", 0)], 251).unwrap();
    /// assert!(t.is_empty());
    /// assert_eq!(t.lookup(1), None);
    /// ```
    pub fn build<N: AsRef<[u8]>>(backends: &[(N, u32)], size: u32) -> Result<Self, MaglevError> {
        Self::build_seeded(backends, size, 0)
    }

    /// [`MaglevTable::build`] with a fleet-wide `seed` mixed into every backend's
    /// permutation: two fleets with different seeds spread the same backends
    /// differently (deliberately uncorrelated), while every loader given the same
    /// seed builds the same table. Seed 0 is the table [`MaglevTable::build`] makes.
    ///
    /// ```
    /// use routing_core::MaglevTable;
    /// let b = [("a", 1), ("b", 1), ("c", 1)];
    /// assert_eq!(MaglevTable::build_seeded(&b, 251, 0).unwrap(), MaglevTable::build(&b, 251).unwrap());
    /// assert_eq!(MaglevTable::build_seeded(&b, 251, 7).unwrap(), MaglevTable::build_seeded(&b, 251, 7).unwrap());
    /// assert_ne!(MaglevTable::build_seeded(&b, 251, 7).unwrap(), MaglevTable::build(&b, 251).unwrap());
    /// ```
    pub fn build_seeded<N: AsRef<[u8]>>(
        backends: &[(N, u32)],
        size: u32,
        seed: u64,
    ) -> Result<Self, MaglevError> {
        let (seed_offset, seed_skip) = if seed == 0 {
            (SEED_OFFSET, SEED_SKIP)
        } else {
            (
                stable_hash(&seed.to_le_bytes(), SEED_OFFSET),
                stable_hash(&seed.to_le_bytes(), SEED_SKIP),
            )
        };
        if !(3..=MAX_MAGLEV_SIZE).contains(&size) || !is_prime(u64::from(size)) {
            return Err(MaglevError::BadSize(u64::from(size)));
        }
        if backends.len() >= u32::MAX as usize || backends.len() > size as usize {
            return Err(MaglevError::TooManyBackends {
                backends: backends.len(),
                size,
            });
        }
        let live: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].1 > 0).collect();
        if live.is_empty() {
            return Ok(Self {
                slots: Box::new([]),
            });
        }
        let m = u64::from(size);
        let total: f64 = live.iter().map(|&i| f64::from(backends[i].1)).sum();

        // Ties (equal visit times) go to the backend whose name sorts first, so the
        // table depends on the set of (name, weight) pairs, not on their order:
        // every load balancer of a fleet given the same backends in any order
        // builds the same table (as backend indices of its own list).
        let mut by_name: Vec<usize> = live.clone();
        by_name.sort_by(|&a, &b| backends[a].0.as_ref().cmp(backends[b].0.as_ref()));
        let mut rank = vec![0u32; backends.len()];
        for (r, &i) in by_name.iter().enumerate() {
            rank[i] = r as u32;
        }
        struct Walker {
            rank: u32,
            inv_weight: f64,
            next_slot: u64,
            skip: u64,
            pos: usize,
        }
        let mut walkers: Vec<Walker> = live
            .iter()
            .map(|&i| {
                let name = backends[i].0.as_ref();
                Walker {
                    rank: rank[i],
                    inv_weight: 1.0 / f64::from(backends[i].1),
                    next_slot: stable_hash(name, seed_offset) % m,
                    skip: stable_hash(name, seed_skip) % (m - 1) + 1,
                    pos: 0,
                }
            })
            .collect();

        // best[s] = (visit time as f32 bits) << 32 | name rank: the minimum wins,
        // ties go to the lower rank.
        let mut best = vec![EMPTY; size as usize];
        let mut clock = VisitClock::new(m);
        let mut covered = 0usize;
        // Every slot is covered with high probability once t > ln(M)/Σw.
        let mut horizon = det_ln(m as f64) / total;
        while covered < best.len() {
            for w in &mut walkers {
                let limit = horizon / w.inv_weight; // compare clock values, not times
                while w.pos < size as usize {
                    let c = clock.at(w.pos);
                    if c > limit {
                        break;
                    }
                    let t = (c * w.inv_weight) as f32;
                    let key = (u64::from(t.to_bits()) << 32) | u64::from(w.rank);
                    let slot = &mut best[w.next_slot as usize];
                    if *slot == EMPTY {
                        covered += 1;
                    }
                    if key < *slot {
                        *slot = key;
                    }
                    w.next_slot += w.skip;
                    if w.next_slot >= m {
                        w.next_slot -= m;
                    }
                    w.pos += 1;
                }
            }
            horizon *= 1.25;
        }
        Ok(Self {
            slots: best
                .into_iter()
                .map(|k| by_name[(k as u32) as usize] as u32)
                .collect(),
        })
    }

    /// The backend index for a key hash, or `None` for an empty table.
    ///
    /// The slot is [`reduce`]`(hash, size)`: the high 32 bits of the hash scaled to the
    /// table, the same formula the eBPF datapath uses.
    ///
    /// ```
    /// let t = routing_core::MaglevTable::build(&[("only", 1)], 7).unwrap();
    /// assert_eq!(t.lookup(12345), Some(0));
    /// ```
    #[inline]
    #[must_use]
    pub fn lookup(&self, hash: u64) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        Some(self.slots[reduce(hash, self.slots.len() as u32) as usize])
    }

    /// The raw table, one backend index per slot (what the XDP program loads).
    ///
    /// ```
    /// assert_eq!(routing_core::MaglevTable::build(&[("a", 1)], 5).unwrap().slots(), &[0; 5]);
    /// ```
    #[must_use]
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// Number of slots (0 when no backend has weight).
    ///
    /// ```
    /// assert_eq!(routing_core::MaglevTable::build(&[("a", 1)], 5).unwrap().len(), 5);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no backend had a positive weight.
    ///
    /// ```
    /// assert!(!routing_core::MaglevTable::build(&[("a", 1)], 5).unwrap().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How many slots each of `n` backends holds.
    ///
    /// ```
    /// let t = routing_core::MaglevTable::build(&[("a", 1), ("b", 1)], 101).unwrap();
    /// assert_eq!(t.slot_counts(2).iter().sum::<u32>(), 101);
    /// ```
    #[must_use]
    pub fn slot_counts(&self, n: usize) -> Vec<u32> {
        let mut counts = vec![0u32; n];
        for &s in self.slots.iter() {
            if let Some(c) = counts.get_mut(s as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// `−ln(1 − (k + ½)/M)` for each visit position `k`, computed lazily (a table with
/// many backends only ever needs the first few percent of positions).
struct VisitClock {
    m: f64,
    ln_m: f64,
    values: Vec<f64>,
}

impl VisitClock {
    fn new(m: u64) -> Self {
        Self {
            m: m as f64,
            ln_m: det_ln(m as f64),
            values: Vec::new(),
        }
    }

    #[inline]
    fn at(&mut self, k: usize) -> f64 {
        while self.values.len() <= k {
            let j = self.values.len() as f64;
            // −ln((M − j − ½)/M) = ln M − ln(M − j − ½)
            self.values.push(self.ln_m - det_ln(self.m - j - 0.5));
        }
        self.values[k]
    }
}

/// Natural logarithm of a positive, finite `x`, using only IEEE-754 basic operations so
/// the result is identical on every platform (unlike `f64::ln`, whose last bit depends
/// on the C library).
fn det_ln(x: f64) -> f64 {
    const LN2: f64 = std::f64::consts::LN_2;
    const SQRT2: f64 = std::f64::consts::SQRT_2;
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut mant = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if mant > SQRT2 {
        mant *= 0.5;
        e += 1;
    }
    // ln(mant) = 2·atanh(s), s = (mant − 1)/(mant + 1), |s| ≤ 0.172.
    let s = (mant - 1.0) / (mant + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    for _ in 0..12 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    e as f64 * LN2 + 2.0 * sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_ln_matches_libm_closely() {
        for &x in &[0.5, 1.0, 1.5, 2.0, 10.0, 65_536.5, 65_537.0, 3.0e-3, 1.0e9] {
            let d = det_ln(x) - f64::ln(x);
            assert!(d.abs() < 1e-14, "ln({x}) off by {d}");
        }
    }

    #[test]
    fn rejects_non_prime_sizes() {
        for size in [0, 1, 4, 65_536, MAX_MAGLEV_SIZE + 2] {
            assert!(MaglevTable::build(&[("a", 1)], size).is_err(), "{size}");
        }
    }

    #[test]
    fn every_slot_is_filled_and_only_by_weighted_backends() {
        let t = MaglevTable::build(&[("a", 3), ("zero", 0), ("b", 1)], 1_009).expect("valid");
        let counts = t.slot_counts(3);
        assert_eq!(counts[1], 0, "zero weight gets no slot");
        assert_eq!(counts[0] + counts[2], 1_009);
    }

    #[test]
    fn more_backends_than_slots_is_an_error() {
        let names: Vec<(String, u32)> = (0..8).map(|i| (format!("b{i}"), 1)).collect();
        assert!(matches!(
            MaglevTable::build(&names, 7),
            Err(MaglevError::TooManyBackends { .. })
        ));
    }
}
