//! Weighted random choice in O(1): Vose's alias method in exact integer arithmetic.

use rand::RngCore;

/// Picks index `i` with probability exactly `weights[i] / sum(weights)`.
///
/// Built in O(n); each pick costs one random `u64`, one multiply and one compare.
/// Integer thresholds (not floats) make the probabilities exact, so a weight of 1
/// against 999 999 really is a 0.0001 % canary. Zero weights are never picked.
///
/// ```
/// use routing_core::AliasTable;
/// use rand::SeedableRng;
/// let table = AliasTable::new(&[90, 10, 0]).unwrap();
/// let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
/// let mut counts = [0u32; 3];
/// for _ in 0..10_000 { counts[table.pick(&mut rng)] += 1; }
/// assert_eq!(counts[2], 0);
/// assert!((8_800..9_200).contains(&counts[0]));
/// ```
#[derive(Debug, Clone)]
pub struct AliasTable {
    /// Per bucket: keep the bucket's own entry when the coin is below this.
    threshold: Box<[u64]>,
    /// Per bucket: the entry taken otherwise (an index into `entry`).
    alias: Box<[u32]>,
    /// Bucket → index in the caller's weight list (zero weights are left out).
    entry: Box<[u32]>,
    /// Sum of weights: the coin's range.
    total: u64,
}

impl AliasTable {
    /// Builds the table; `None` when no weight is positive.
    ///
    /// ```
    /// assert!(routing_core::AliasTable::new(&[0, 0]).is_none());
    /// ```
    #[must_use]
    pub fn new(weights: &[u32]) -> Option<Self> {
        let entry: Vec<u32> = (0..weights.len() as u32)
            .filter(|&i| weights[i as usize] > 0)
            .collect();
        let n = entry.len() as u64;
        if n == 0 {
            return None;
        }
        let total: u64 = entry.iter().map(|&i| u64::from(weights[i as usize])).sum();
        // Scaled so that a bucket holds exactly `total`.
        let mut scaled: Vec<u64> = entry
            .iter()
            .map(|&i| u64::from(weights[i as usize]) * n)
            .collect();
        let mut threshold = vec![total; entry.len()];
        let mut alias: Vec<u32> = (0..entry.len() as u32).collect();
        let (mut small, mut large): (Vec<u32>, Vec<u32>) =
            (0..entry.len() as u32).partition(|&b| scaled[b as usize] < total);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            threshold[s as usize] = scaled[s as usize];
            alias[s as usize] = l;
            scaled[l as usize] -= total - scaled[s as usize];
            if scaled[l as usize] < total {
                large.pop();
                small.push(l);
            }
        }
        Some(Self {
            threshold: threshold.into(),
            alias: alias.into(),
            entry: entry.into(),
            total,
        })
    }

    /// Picks an index into the weight list the table was built from.
    ///
    /// ```
    /// let t = routing_core::AliasTable::new(&[0, 5]).unwrap();
    /// assert_eq!(t.pick(&mut rand::rng()), 1);
    /// ```
    #[inline]
    pub fn pick<R: RngCore + ?Sized>(&self, rng: &mut R) -> usize {
        self.pick_with(rng.next_u64())
    }

    /// Picks with a caller-supplied uniform 64-bit value (deterministic).
    ///
    /// ```
    /// let t = routing_core::AliasTable::new(&[1, 1]).unwrap();
    /// assert_eq!(t.pick_with(42), t.pick_with(42));
    /// ```
    #[inline]
    #[must_use]
    pub fn pick_with(&self, r: u64) -> usize {
        let n = self.entry.len() as u128;
        let wide = u128::from(r) * n;
        let bucket = (wide >> 64) as usize;
        // The fraction left over is uniform over [0, 2^64) given the bucket.
        let coin = ((u128::from(wide as u64) * u128::from(self.total)) >> 64) as u64;
        let b = if coin < self.threshold[bucket] {
            bucket
        } else {
            self.alias[bucket] as usize
        };
        self.entry[b] as usize
    }

    /// Sum of the weights.
    ///
    /// ```
    /// assert_eq!(routing_core::AliasTable::new(&[3, 4]).unwrap().total_weight(), 7);
    /// ```
    #[must_use]
    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// Exact probability numerator of each bucket entry, for tests: the table's
    /// implied weight of `index` (equals the input weight).
    #[cfg(test)]
    pub(crate) fn implied_weight(&self, index: usize) -> u64 {
        // Each bucket contributes `threshold` to itself and `total - threshold` to its alias;
        // summing over buckets and dividing by n gives the input weight.
        let n = self.entry.len() as u64;
        let mut acc = 0u64;
        for b in 0..self.entry.len() {
            if self.entry[b] as usize == index {
                acc += self.threshold[b];
            }
            if self.entry[self.alias[b] as usize] as usize == index {
                acc += self.total - self.threshold[b];
            }
        }
        acc / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn implied_weights_are_exact(weights in proptest::collection::vec(0u32..=1_000_000, 1..200)) {
            if let Some(t) = AliasTable::new(&weights) {
                for (i, &w) in weights.iter().enumerate() {
                    prop_assert_eq!(t.implied_weight(i), u64::from(w), "weight of entry {} must be exact", i);
                }
            } else {
                prop_assert!(weights.iter().all(|&w| w == 0));
            }
        }
    }

    #[test]
    fn tiny_canary_share_is_exact() {
        let t = AliasTable::new(&[999_999, 1]).expect("positive");
        assert_eq!(t.implied_weight(1), 1);
        assert_eq!(t.total_weight(), 1_000_000);
    }
}
