//! Backend selection: weighted random, smooth weighted round robin, weighted Maglev —
//! all health-aware.

mod alias;
mod maglev;
mod swrr;

use std::sync::Arc;

use rand::RngCore;

pub use alias::AliasTable;
pub use maglev::{is_prime, MaglevError, MaglevTable, DEFAULT_MAGLEV_SIZE, MAX_MAGLEV_SIZE};
pub use swrr::SmoothRoundRobin;

use crate::backend::BackendId;
use crate::hash::mix64;
use crate::health::BackendHealth;

/// How many times a pick that landed on an unavailable backend is redrawn before the
/// exact (linear) fallback. Redrawing keeps the shares of the available backends in
/// proportion to their weights, and for sticky keys leaves every key whose backend is
/// available where it was.
const REDRAWS: u64 = 16;

/// One backend of a rule, with its weight and live availability.
#[derive(Debug, Clone)]
pub struct WeightedBackend {
    pub(crate) id: BackendId,
    pub(crate) weight: u32,
    pub(crate) health: Arc<BackendHealth>,
    pub(crate) filters: Option<Arc<crate::policy::BackendFilters>>,
}

impl WeightedBackend {
    /// The backend (an index into [`RouteTable::backends`](crate::RouteTable::backends)).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a, weight: 3}]}]}]").unwrap();
    /// let fwd = t.rules()[0].forward().unwrap();
    /// assert_eq!(t.backend(fwd.backends()[0].id()).name(), "a");
    /// ```
    #[must_use]
    pub fn id(&self) -> BackendId {
        self.id
    }

    /// Its relative weight.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a, weight: 3}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].forward().unwrap().backends()[0].weight(), 3);
    /// ```
    #[must_use]
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether it currently takes new traffic.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert!(t.rules()[0].forward().unwrap().backends()[0].is_available());
    /// ```
    #[inline]
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.health.is_available()
    }

    /// Its filters ([`BackendFilters`](crate::BackendFilters)), if it has any.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a, filters: {request_headers: {remove: [x-debug]}}}]}]}]").unwrap();
    /// let f = t.rules()[0].forward().unwrap().backends()[0].filters().unwrap();
    /// assert_eq!(f.request_headers.remove[0], "x-debug");
    /// ```
    #[must_use]
    pub fn filters(&self) -> Option<&crate::policy::BackendFilters> {
        self.filters.as_deref()
    }
}

/// The pick strategy of a [`Forward`] action.
#[derive(Debug)]
#[non_exhaustive]
pub enum Strategy {
    /// Weighted random.
    Random,
    /// Smooth weighted round robin.
    RoundRobin(SmoothRoundRobin),
    /// Weighted Maglev table indexed by a request key; requests without the key fall
    /// back to weighted random.
    ConsistentHash(Arc<MaglevTable>),
}

/// Forwarding to weighted backends: the selection state of one rule.
#[derive(Debug)]
pub struct Forward {
    backends: Box<[WeightedBackend]>,
    alias: Option<AliasTable>,
    strategy: Strategy,
    /// Panic threshold as a fraction in `0.0 ..= 1.0` (0 disables).
    panic_threshold: f64,
    /// Whether any backend has filters (the per-request lookup is skipped if not).
    any_filters: bool,
}

impl Forward {
    pub(crate) fn new(
        backends: Vec<WeightedBackend>,
        strategy: Strategy,
        panic_threshold: f64,
    ) -> Self {
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        Self {
            any_filters: backends.iter().any(|b| b.filters.is_some()),
            alias: AliasTable::new(&weights),
            backends: backends.into(),
            strategy,
            panic_threshold,
        }
    }

    /// The filters of backend `id` in this rule, if it has any (a backend appears
    /// at most once in a rule).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}, {name: b}]\nroutes: [{name: r, rules: [{backends: [{name: a}, {name: b, filters: {fixed_response: {status: 500}}}]}]}]").unwrap();
    /// let fwd = t.rules()[0].forward().unwrap();
    /// assert!(fwd.filters_for(t.backend_id("a").unwrap()).is_none());
    /// assert!(fwd.filters_for(t.backend_id("b").unwrap()).unwrap().answers());
    /// ```
    #[inline]
    #[must_use]
    pub fn filters_for(&self, id: BackendId) -> Option<&crate::policy::BackendFilters> {
        if !self.any_filters {
            return None;
        }
        self.backends
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.filters.as_deref())
    }

    /// The weighted backends, in configuration order.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}, {name: b}]\nroutes: [{name: r, rules: [{backends: [{name: a}, {name: b}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].forward().unwrap().backends().len(), 2);
    /// ```
    #[must_use]
    pub fn backends(&self) -> &[WeightedBackend] {
        &self.backends
    }

    /// The pick strategy.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], load_balancer: {simple: round_robin}}]}]").unwrap();
    /// assert!(matches!(t.rules()[0].forward().unwrap().strategy(), routing_core::Strategy::RoundRobin(_)));
    /// ```
    #[must_use]
    pub fn strategy(&self) -> &Strategy {
        &self.strategy
    }

    /// Position in [`backends`](Self::backends) of the backend `id`, if this rule has it.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}, {name: b}]\nroutes: [{name: r, rules: [{backends: [{name: b}]}]}]").unwrap();
    /// let fwd = t.rules()[0].forward().unwrap();
    /// assert_eq!(fwd.position(t.backend_id("b").unwrap()), Some(0));
    /// assert_eq!(fwd.position(t.backend_id("a").unwrap()), None);
    /// ```
    #[must_use]
    pub fn position(&self, id: BackendId) -> Option<usize> {
        self.backends.iter().position(|b| b.id == id)
    }

    /// Picks a backend position for a new request or connection, or `None` when no
    /// backend can take it (all weights zero, or every backend unavailable with the
    /// panic threshold not reached).
    ///
    /// `key` is the sticky key's hash for consistent hashing (ignored by the other
    /// strategies; without one, consistent hashing falls back to weighted random).
    /// Unavailable backends are skipped with their share redistributed in proportion,
    /// unless the available share is under the panic threshold.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a, weight: 0}]}]}]").unwrap();
    /// let fwd = t.rules()[0].forward().unwrap();
    /// assert_eq!(fwd.pick(&mut rand::rng(), None), None);
    /// ```
    #[inline]
    pub fn pick<R: RngCore + ?Sized>(&self, rng: &mut R, key: Option<u64>) -> Option<usize> {
        let first = self.draw(rng, key, 0)?;
        if self.backends[first].is_available() {
            return Some(first);
        }
        self.pick_around_unavailable(first, rng, key)
    }

    /// Picks a backend position knowing what the caller knows: `prefer` (a backend the
    /// request is pinned to, e.g. by a sticky cookie) is taken without drawing when it
    /// is in this rule with a weight above zero, available and not excluded; `exclude`
    /// (backends already tried by a retry) are never returned. Returns the position
    /// and whether it is the preferred backend.
    ///
    /// Without `exclude` and without a usable preference this is [`pick`](Self::pick):
    /// the strategy draws (and a round robin advances) only when it actually chooses.
    /// With `exclude`, the choice is weighted among the backends left (available,
    /// weight above zero), ignoring the sticky key: a retry goes elsewhere.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}, {name: b}]\nroutes: [{name: r, rules: [{backends: [{name: a}, {name: b}]}]}]").unwrap();
    /// let fwd = t.rules()[0].forward().unwrap();
    /// let (a, b) = (t.backend_id("a").unwrap(), t.backend_id("b").unwrap());
    /// let mut rng = rand::rng();
    /// assert_eq!(fwd.pick_with(&mut rng, None, Some(b), &[]), Some((1, true)));
    /// assert_eq!(fwd.pick_with(&mut rng, None, None, &[a]), Some((1, false)));
    /// assert_eq!(fwd.pick_with(&mut rng, None, Some(b), &[b]), Some((0, false)));
    /// assert_eq!(fwd.pick_with(&mut rng, None, None, &[a, b]), None);
    /// ```
    #[inline]
    pub fn pick_with<R: RngCore + ?Sized>(
        &self,
        rng: &mut R,
        key: Option<u64>,
        prefer: Option<BackendId>,
        exclude: &[BackendId],
    ) -> Option<(usize, bool)> {
        if let Some(id) = prefer {
            if let Some(i) = self.position(id) {
                let b = &self.backends[i];
                if b.weight > 0 && b.is_available() && !exclude.contains(&id) {
                    return Some((i, true));
                }
            }
        }
        if exclude.is_empty() {
            return self.pick(rng, key).map(|i| (i, false));
        }
        self.pick_excluding(rng, exclude).map(|i| (i, false))
    }

    /// Weighted choice among the available backends with a weight above zero that
    /// are not in `exclude` (one random draw).
    #[cold]
    fn pick_excluding<R: RngCore + ?Sized>(
        &self,
        rng: &mut R,
        exclude: &[BackendId],
    ) -> Option<usize> {
        let left = |b: &&WeightedBackend| b.weight > 0 && !exclude.contains(&b.id);
        let total: u64 = self
            .backends
            .iter()
            .filter(left)
            .filter(|b| b.is_available())
            .map(|b| u64::from(b.weight))
            .sum();
        if total == 0 {
            return None;
        }
        let mut target = ((u128::from(rng.next_u64()) * u128::from(total)) >> 64) as u64;
        for (i, b) in self.backends.iter().enumerate() {
            if b.weight > 0 && !exclude.contains(&b.id) && b.is_available() {
                if target < u64::from(b.weight) {
                    return Some(i);
                }
                target -= u64::from(b.weight);
            }
        }
        None
    }

    #[inline]
    fn draw<R: RngCore + ?Sized>(
        &self,
        rng: &mut R,
        key: Option<u64>,
        attempt: u64,
    ) -> Option<usize> {
        let alias = self.alias.as_ref()?;
        Some(match (&self.strategy, key) {
            (Strategy::ConsistentHash(table), Some(k)) => {
                let k = if attempt == 0 {
                    k
                } else {
                    mix64(k ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                };
                table.lookup(k)? as usize
            }
            (Strategy::RoundRobin(rr), _) => rr.next(),
            _ => alias.pick(rng),
        })
    }

    #[cold]
    fn pick_around_unavailable<R: RngCore + ?Sized>(
        &self,
        first: usize,
        rng: &mut R,
        key: Option<u64>,
    ) -> Option<usize> {
        let mut eligible = 0usize;
        let mut available = 0usize;
        let mut available_weight = 0u64;
        for b in self.backends.iter().filter(|b| b.weight > 0) {
            eligible += 1;
            if b.is_available() {
                available += 1;
                available_weight += u64::from(b.weight);
            }
        }
        if (available as f64) < self.panic_threshold * eligible as f64 {
            // Panic mode: too few left to carry the load; route to all by weight.
            return Some(first);
        }
        if available == 0 {
            return None;
        }
        for attempt in 1..=REDRAWS {
            if let Some(i) = self.draw(rng, key, attempt) {
                if self.backends[i].is_available() {
                    return Some(i);
                }
            }
        }
        // Exact fallback: weighted choice among the available ones.
        let r = key.map_or_else(|| rng.next_u64(), |k| mix64(k ^ 0x5eed));
        let mut target = ((u128::from(r) * u128::from(available_weight)) >> 64) as u64;
        for (i, b) in self.backends.iter().enumerate() {
            if b.weight > 0 && b.is_available() {
                if target < u64::from(b.weight) {
                    return Some(i);
                }
                target -= u64::from(b.weight);
            }
        }
        None
    }
}
