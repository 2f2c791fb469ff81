//! The layer's one source of randomness, seedable through
//! [`RoutingLayerBuilder::rng_seed`](crate::RoutingLayerBuilder::rng_seed).
//!
//! Every random choice of the layer (backend selection, retry backoff jitter, fault
//! injection, mirror percentage) draws a small generator from one [`LayerRng`]: the
//! `n`-th draw is seeded from the layer's seed and `n`, so a sequence of requests
//! makes the same choices under the same seed, and drawing never takes a lock (one
//! relaxed `fetch_add`).

use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::SmallRng;
use rand::SeedableRng as _;

/// A seeded stream of generators; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct LayerRng {
    seed: u64,
    draws: AtomicU64,
}

impl LayerRng {
    /// A stream seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            draws: AtomicU64::new(0),
        }
    }

    /// The seed.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// The next generator of the stream.
    pub(crate) fn draw(&self) -> SmallRng {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        // Golden-ratio spacing; `seed_from_u64` mixes the result with SplitMix64.
        SmallRng::seed_from_u64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let take = |rng: &LayerRng| -> Vec<u64> { (0..8).map(|_| rng.draw().random()).collect() };
        let (a, b, c) = (LayerRng::new(1), LayerRng::new(1), LayerRng::new(2));
        let sa = take(&a);
        assert_eq!(sa, take(&b), "equal seeds must give equal streams");
        assert_ne!(sa, take(&c), "different seeds must give different streams");
        let mut unique = sa.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), sa.len(), "successive draws must differ");
    }
}
