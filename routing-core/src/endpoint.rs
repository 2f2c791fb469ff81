//! Endpoint pools: the second level of selection. A rule's weighted or sticky choice
//! picks a backend (a *version*); when that backend owns a pool of endpoints (pods),
//! one endpoint of the pool is then chosen — by least request (power of two choices)
//! or, when the rule hashes a key, by a Maglev table over the pool keyed by the same
//! key. Stickiness therefore names the version, not the pod: a pod that goes away
//! changes which endpoint serves the version, not which version serves the session.
//!
//! Pure: the load of each endpoint and whether it is ejected come in as closures.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::hash::{mix64, stable_hash};
use crate::select::MaglevTable;

/// The state of an endpoint, as Kubernetes EndpointSlice conditions describe it.
///
/// ```
/// let s: routing_core::EndpointState = serde_json::from_str("\"terminating\"").unwrap();
/// assert_eq!(s, routing_core::EndpointState::Draining);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Takes new requests (`ready: true`).
    #[default]
    Ready,
    /// Serving but not ready (a terminating pod still answering): takes new requests
    /// only while no endpoint of the pool is ready (Kubernetes' terminating fallback).
    Serving,
    /// Draining (`terminating` without `serving`): no new requests; requests in
    /// flight finish.
    #[serde(alias = "terminating")]
    Draining,
}

/// One endpoint of a backend's pool, as configured (`backends[].endpoints[]`).
///
/// ```
/// let c = routing_core::Config::from_yaml(r#"
/// backends:
///   - name: v1
///     endpoints:
///       - { address: "10.0.0.1:8080" }
///       - { address: "10.0.0.2:8080", state: draining, zone: eu-1a, weight: 2 }
/// "#).unwrap();
/// assert_eq!(c.backends[0].endpoints[1].state, routing_core::EndpointState::Draining);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Where the endpoint listens.
    pub address: SocketAddr,
    /// Its state (absent: `ready`).
    #[serde(default, skip_serializing_if = "is_ready")]
    pub state: EndpointState,
    /// Relative weight among the pool's endpoints (absent: 1; 0 takes no new requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Topology zone, informational (shown by explain, kept for zone-aware policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

fn is_ready(s: &EndpointState) -> bool {
    *s == EndpointState::Ready
}

impl EndpointConfig {
    /// A ready endpoint at `address` with weight 1.
    ///
    /// ```
    /// let e = routing_core::EndpointConfig::new("127.0.0.1:80".parse().unwrap());
    /// assert_eq!(e.state, routing_core::EndpointState::Ready);
    /// ```
    #[must_use]
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            state: EndpointState::Ready,
            weight: None,
            zone: None,
        }
    }
}

/// One endpoint of a built pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    address: SocketAddr,
    state: EndpointState,
    weight: u32,
    zone: Option<Arc<str>>,
}

impl Endpoint {
    /// Its address.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.1:80'}]}]").unwrap();
    /// let pool = t.backends()[0].endpoints().unwrap();
    /// assert_eq!(pool.endpoints()[0].address().port(), 80);
    /// ```
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its state.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.1:80', state: serving}]}]").unwrap();
    /// let e = &t.backends()[0].endpoints().unwrap().endpoints()[0];
    /// assert_eq!(e.state(), routing_core::EndpointState::Serving);
    /// ```
    #[must_use]
    pub fn state(&self) -> EndpointState {
        self.state
    }

    /// Its weight in the pool.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.1:80'}]}]").unwrap();
    /// assert_eq!(t.backends()[0].endpoints().unwrap().endpoints()[0].weight(), 1);
    /// ```
    #[must_use]
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Its zone, if known.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.1:80', zone: z1}]}]").unwrap();
    /// assert_eq!(t.backends()[0].endpoints().unwrap().endpoints()[0].zone(), Some("z1"));
    /// ```
    #[must_use]
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }
}

/// How many times a hashed pick probes further when the key's endpoint is unusable
/// (ejected or busy elsewhere) before falling back to least request.
const HASH_PROBES: u64 = 8;

/// The endpoints of one backend and the Maglev table over those that take new
/// requests. Endpoints are kept sorted by address, so two replicas given the same
/// set in any order build the same pool and the same table.
#[derive(Debug)]
pub struct EndpointPool {
    endpoints: Box<[Endpoint]>,
    /// Indices of endpoints eligible for new requests (ready with weight > 0, else
    /// the serving fallback).
    eligible: Box<[u32]>,
    /// Weighted Maglev over `eligible` (slot values index `eligible`).
    maglev: MaglevTable,
}

impl EndpointPool {
    /// Builds a pool (endpoints sorted by address; addresses must be unique and
    /// weights at most [`MAX_WEIGHT`](crate::MAX_WEIGHT), which the config validation checks).
    pub(crate) fn new(configs: &[EndpointConfig]) -> Self {
        let mut endpoints: Vec<Endpoint> = configs
            .iter()
            .map(|c| Endpoint {
                address: c.address,
                state: c.state,
                weight: c.weight.unwrap_or(1),
                zone: c.zone.as_deref().map(Arc::from),
            })
            .collect();
        endpoints.sort_by_key(|e| e.address);
        let takes = |s: EndpointState| {
            endpoints
                .iter()
                .enumerate()
                .filter(|(_, e)| e.state == s && e.weight > 0)
                .map(|(i, _)| i as u32)
                .collect::<Vec<u32>>()
        };
        let mut eligible = takes(EndpointState::Ready);
        if eligible.is_empty() {
            eligible = takes(EndpointState::Serving);
        }
        let named: Vec<(String, u32)> = eligible
            .iter()
            .map(|&i| {
                let e = &endpoints[i as usize];
                (e.address.to_string(), e.weight)
            })
            .collect();
        // Validation caps the pool at MAX_ENDPOINTS, which fits the largest size.
        let maglev = MaglevTable::build(&named, ENDPOINT_MAGLEV_SIZE)
            .unwrap_or_else(|_| MaglevTable::empty());
        Self {
            endpoints: endpoints.into(),
            eligible: eligible.into(),
            maglev,
        }
    }

    /// All endpoints, sorted by address (draining ones included).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.2:80'}, {address: '10.0.0.1:80'}]}]").unwrap();
    /// let pool = t.backends()[0].endpoints().unwrap();
    /// assert_eq!(pool.endpoints()[0].address().to_string(), "10.0.0.1:80");
    /// ```
    #[must_use]
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Whether endpoint `index` may be given new requests (ready with a weight, or
    /// serving while none is ready).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.1:80'}, {address: '10.0.0.2:80', state: draining}]}]").unwrap();
    /// let pool = t.backends()[0].endpoints().unwrap();
    /// assert!(pool.takes_new(0) && !pool.takes_new(1));
    /// ```
    #[must_use]
    pub fn takes_new(&self, index: usize) -> bool {
        self.eligible.iter().any(|&i| i as usize == index)
    }

    /// The Maglev table over the endpoints taking new requests (slots index those
    /// endpoints in address order).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.1:80'}]}]").unwrap();
    /// assert!(!t.backends()[0].endpoints().unwrap().maglev().is_empty());
    /// ```
    #[must_use]
    pub fn maglev(&self) -> &MaglevTable {
        &self.maglev
    }

    /// Chooses an endpoint for a new request; `None` when no endpoint takes new
    /// requests or all are unusable.
    ///
    /// * `key`: the rule's hash key, when the rule hashes and the request has it —
    ///   the key's Maglev slot names the endpoint; if that one is unusable, up to
    ///   8 further probes of the key rehashed, then least request.
    /// * otherwise least request by power of two choices: two eligible endpoints
    ///   drawn at random (weighted draws are not used: weights steer hashed picks
    ///   only), the one with fewer requests in flight wins.
    /// * `load(i)`: requests in flight at endpoint `i`; `usable(i)`: false for an
    ///   endpoint ejected by outlier detection or already tried by this request.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.1:80'}, {address: '10.0.0.2:80'}]}]").unwrap();
    /// let pool = t.backends()[0].endpoints().unwrap();
    /// let busy = [100u64, 0];
    /// let i = pool.pick(&mut rand::rng(), None, |i| busy[i], |_| true).unwrap();
    /// // with two endpoints both are drawn: the idle one wins
    /// assert_eq!(i, 1);
    /// let h = pool.pick(&mut rand::rng(), Some(42), |_| 0, |_| true);
    /// assert_eq!(h, pool.pick(&mut rand::rng(), Some(42), |_| 0, |_| true));
    /// ```
    pub fn pick<R: RngCore + ?Sized>(
        &self,
        rng: &mut R,
        key: Option<u64>,
        load: impl Fn(usize) -> u64,
        usable: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if let Some(k) = key {
            let mut h = k;
            for probe in 0..=HASH_PROBES {
                if let Some(slot) = self.maglev.lookup(h) {
                    let i = self.eligible[slot as usize] as usize;
                    if usable(i) {
                        return Some(i);
                    }
                }
                h = mix64(k ^ (probe + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            }
        }
        let n = self.eligible.len();
        match n {
            0 => None,
            1 => {
                let i = self.eligible[0] as usize;
                usable(i).then_some(i)
            }
            _ => {
                let a = self.eligible[(rng.next_u64() % n as u64) as usize] as usize;
                let mut b = self.eligible[(rng.next_u64() % (n as u64 - 1)) as usize] as usize;
                if b == a {
                    b = self.eligible[n - 1] as usize;
                }
                match (usable(a), usable(b)) {
                    (true, true) => Some(if load(b) < load(a) { b } else { a }),
                    (true, false) => Some(a),
                    (false, true) => Some(b),
                    // Both unusable: the least loaded usable one, scanning the pool.
                    (false, false) => self
                        .eligible
                        .iter()
                        .map(|&i| i as usize)
                        .filter(|&i| usable(i))
                        .min_by_key(|&i| load(i)),
                }
            }
        }
    }

    /// A fingerprint of the pool's Maglev table (slot by slot, the endpoint's
    /// address): equal on every replica given the same endpoints in any order.
    ///
    /// ```
    /// let a = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.1:80'}, {address: '10.0.0.2:80'}]}]").unwrap();
    /// let b = routing_core::RouteTable::from_yaml("backends: [{name: v1, endpoints: [{address: '10.0.0.2:80'}, {address: '10.0.0.1:80'}]}]").unwrap();
    /// let fp = |t: &routing_core::RouteTable| t.backends()[0].endpoints().unwrap().fingerprint();
    /// assert_eq!(fp(&a), fp(&b));
    /// ```
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        let per: Vec<u64> = self
            .eligible
            .iter()
            .map(|&i| {
                let e = &self.endpoints[i as usize];
                stable_hash(e.address.to_string().as_bytes(), POOL_SEED)
            })
            .collect();
        let mut buf = Vec::with_capacity(self.maglev.len() * 8);
        for &slot in self.maglev.slots() {
            let h = per.get(slot as usize).copied().unwrap_or(u64::MAX);
            buf.extend_from_slice(&h.to_le_bytes());
        }
        stable_hash(&buf, POOL_SEED)
    }
}

/// Seed of [`EndpointPool::fingerprint`] ("endpool").
const POOL_SEED: u64 = 0x0065_6e64_706f_6f6c;

/// Most endpoints one backend's pool may hold.
pub const MAX_ENDPOINTS: usize = 600;

/// Size of every pool's Maglev table: one prime for all pools, so a pod added or
/// removed moves only the keys Maglev must move (a size that followed the pool's
/// length would reshuffle every key); ≥ 16 slots per endpoint at [`MAX_ENDPOINTS`].
pub const ENDPOINT_MAGLEV_SIZE: u32 = 10_007;
