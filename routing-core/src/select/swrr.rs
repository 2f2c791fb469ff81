//! Smooth weighted round robin (nginx's algorithm): deterministic and exact per cycle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Longest cycle (after dividing weights by their gcd) kept as a precomputed,
/// lock-free sequence; longer cycles step a mutex-guarded state instead.
const MAX_PRECOMPUTED_CYCLE: u64 = 1 << 14;

/// Smooth weighted round robin: over every cycle of `sum(weights) / gcd` picks, entry
/// `i` is picked exactly `weights[i] / gcd` times, spread evenly (not in bursts).
/// This is the answer to "a 1 % canary gets nothing in the first 50 requests": with
/// weights 99:1, the canary gets exactly one of every 100 requests.
///
/// ```
/// use routing_core::SmoothRoundRobin;
/// let rr = SmoothRoundRobin::new(&[5, 1, 1]).unwrap();
/// let picks: Vec<usize> = (0..7).map(|_| rr.next()).collect();
/// assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0]);
/// ```
#[derive(Debug)]
pub struct SmoothRoundRobin {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Cycle { seq: Box<[u32]>, next: AtomicUsize },
    Live(Mutex<State>),
}

#[derive(Debug, Clone)]
struct State {
    weight: Vec<i64>,
    current: Vec<i64>,
    total: i64,
}

impl State {
    fn step(&mut self) -> usize {
        let mut best = 0;
        for i in 0..self.weight.len() {
            self.current[i] += self.weight[i];
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl SmoothRoundRobin {
    /// Builds the schedule; `None` when no weight is positive.
    ///
    /// ```
    /// assert!(routing_core::SmoothRoundRobin::new(&[0]).is_none());
    /// ```
    #[must_use]
    pub fn new(weights: &[u32]) -> Option<Self> {
        let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
        if g == 0 {
            return None;
        }
        let weight: Vec<i64> = weights.iter().map(|&w| (u64::from(w) / g) as i64).collect();
        let total: i64 = weight.iter().sum();
        let mut state = State {
            current: vec![0; weight.len()],
            weight,
            total,
        };
        let inner = if (total as u64) <= MAX_PRECOMPUTED_CYCLE {
            let seq: Vec<u32> = (0..total).map(|_| state.step() as u32).collect();
            Inner::Cycle {
                seq: seq.into(),
                next: AtomicUsize::new(0),
            }
        } else {
            Inner::Live(Mutex::new(state))
        };
        Some(Self { inner })
    }

    /// The next index in the schedule. Safe to call from many threads.
    ///
    /// ```
    /// let rr = routing_core::SmoothRoundRobin::new(&[1, 1]).unwrap();
    /// assert_ne!(rr.next(), rr.next());
    /// ```
    #[inline]
    pub fn next(&self) -> usize {
        match &self.inner {
            Inner::Cycle { seq, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % seq.len();
                seq[i] as usize
            }
            // A poisoned lock only means another thread panicked mid-step; the state
            // is still a valid schedule position.
            Inner::Live(m) => m.lock().unwrap_or_else(|p| p.into_inner()).step(),
        }
    }

    /// Length of one exact cycle.
    ///
    /// ```
    /// assert_eq!(routing_core::SmoothRoundRobin::new(&[20, 10]).unwrap().cycle_len(), 3);
    /// ```
    #[must_use]
    pub fn cycle_len(&self) -> u64 {
        match &self.inner {
            Inner::Cycle { seq, .. } => seq.len() as u64,
            Inner::Live(m) => m.lock().unwrap_or_else(|p| p.into_inner()).total as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_exact_cycles(weights: &[u32], cycles: u64) {
        let rr = SmoothRoundRobin::new(weights).expect("positive weight");
        let len = rr.cycle_len();
        let g = weights.iter().fold(0u64, |g, &w| gcd(g, u64::from(w)));
        for c in 0..cycles {
            let mut counts = vec![0u64; weights.len()];
            for _ in 0..len {
                counts[rr.next()] += 1;
            }
            for (i, &w) in weights.iter().enumerate() {
                assert_eq!(
                    counts[i],
                    u64::from(w) / g,
                    "cycle {c}: entry {i} of {weights:?}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn every_cycle_is_exact(weights in proptest::collection::vec(0u32..50, 1..12)) {
            prop_assume!(weights.iter().any(|&w| w > 0));
            check_exact_cycles(&weights, 3);
        }
    }

    #[test]
    fn long_cycles_use_the_live_state_and_stay_exact() {
        let weights = [9_999, 10_000, 3];
        assert!(matches!(
            SmoothRoundRobin::new(&weights).map(|r| r.inner),
            Some(Inner::Live(_))
        ));
        check_exact_cycles(&weights, 2);
    }

    #[test]
    fn spreads_instead_of_bursting() {
        let rr = SmoothRoundRobin::new(&[99, 1]).expect("positive");
        let picks: Vec<usize> = (0..200).map(|_| rr.next()).collect();
        let canary: Vec<usize> = picks
            .iter()
            .enumerate()
            .filter(|(_, &p)| p == 1)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(canary.len(), 2, "exactly one canary pick per 100");
        assert_eq!(canary[1] - canary[0], 100, "evenly spaced");
    }
}
