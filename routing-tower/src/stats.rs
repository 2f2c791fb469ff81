//! Per-backend statistics: counters, an in-flight gauge and a latency histogram.
//!
//! [`BackendStats`] is a block of atomics updated on the request path without locks;
//! [`StatsRegistry`] hands out one per backend name and keeps it across config swaps.
//! [`StatsSnapshot`] is plain data; [`StatsSnapshot::since`] turns two snapshots into
//! the traffic of the window between them, which is what a rollout controller needs
//! to judge a canary (error rate, p99).
//!
//! ```
//! use routing_tower::outcome::{Failure, Outcome};
//! use routing_tower::stats::StatsRegistry;
//! use http::StatusCode;
//! use std::time::Duration;
//!
//! let registry = StatsRegistry::new();
//! let stats = registry.get_or_insert("checkout-v2");
//! let before = stats.snapshot();
//! for _ in 0..9 {
//!     let _in_flight = stats.begin();
//!     stats.record(Outcome::Status(StatusCode::OK), Duration::from_millis(20));
//! }
//! stats.record(Outcome::Failure(Failure::Timeout), Duration::from_secs(1));
//! let window = stats.snapshot().since(&before);
//! assert_eq!(window.requests, 9);
//! assert_eq!(window.error_rate(), Some(0.1));
//! let p50 = window.quantile(0.5).expect("samples");
//! assert!(p50 > Duration::from_millis(18) && p50 < Duration::from_millis(22));
//! ```
//!
//! # Histogram
//!
//! Latencies are counted in [`BUCKETS`] fixed buckets, HDR-style: every power of two
//! of nanoseconds from 2¹⁵ ns (32.8 µs) to 2³⁶ ns (68.7 s) is split into 8 equal
//! sub-buckets, plus one bucket below (`< 32.8 µs`) and one above (`≥ 68.7 s`).
//! Recording is one `leading_zeros`, one shift and two relaxed atomic adds (bucket and
//! latency sum). A quantile is reported as the midpoint of the bucket holding the
//! sample of that rank, so for samples between 32.8 µs and 68.7 s its relative error
//! is at most 1/16 = **6.25 %**; below the range the absolute error is at most
//! 16.4 µs, above it the estimate is the range's top (68.7 s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::clock::duration_nanos;
use crate::outcome::{Failure, Outcome};

/// Sub-buckets per power of two, as a power of two (8).
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// log2 of the lowest tracked latency in nanoseconds (32.768 µs).
const LOW_EXP: u32 = 15;
/// log2 of the first latency past the tracked range (≈ 68.7 s).
const HIGH_EXP: u32 = 36;
/// Number of histogram buckets: underflow, 8 per octave, overflow.
pub const BUCKETS: usize = 2 + (HIGH_EXP - LOW_EXP) as usize * SUB;

/// The bucket of a latency of `nanos`.
fn bucket_of(nanos: u64) -> usize {
    if nanos < 1 << LOW_EXP {
        return 0;
    }
    if nanos >= 1 << HIGH_EXP {
        return BUCKETS - 1;
    }
    let exp = 63 - nanos.leading_zeros(); // LOW_EXP ..= HIGH_EXP - 1
    let sub = ((nanos >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    1 + (exp - LOW_EXP) as usize * SUB + sub
}

/// The half-open range `[low, high)` of nanoseconds that bucket `i` counts.
fn bucket_bounds(i: usize) -> (u64, u64) {
    if i == 0 {
        return (0, 1 << LOW_EXP);
    }
    if i >= BUCKETS - 1 {
        return (1 << HIGH_EXP, u64::MAX);
    }
    let k = i - 1;
    let exp = LOW_EXP + (k / SUB) as u32;
    let sub = (k % SUB) as u64;
    let unit = 1u64 << (exp - SUB_BITS);
    ((SUB as u64 + sub) * unit, (SUB as u64 + sub + 1) * unit)
}

/// The value reported for a quantile falling in bucket `i`.
pub(crate) fn bucket_estimate(i: usize) -> Duration {
    let (low, high) = bucket_bounds(i);
    if i >= BUCKETS - 1 {
        return Duration::from_nanos(low);
    }
    Duration::from_nanos(low + (high - low) / 2)
}

/// Live statistics of one backend; every method is a few relaxed atomic operations.
///
/// Counters only grow (until the process ends); [`in_flight`](StatsSnapshot::in_flight)
/// and [`ejected`](StatsSnapshot::ejected) are gauges.
#[derive(Debug)]
pub struct BackendStats {
    requests: AtomicU64,
    in_flight: AtomicU64,
    responses: [AtomicU64; 5],
    responses_other: AtomicU64,
    failures: [AtomicU64; 4],
    retries: AtomicU64,
    ejected: AtomicBool,
    ejections: AtomicU64,
    latency_sum_nanos: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

impl Default for BackendStats {
    fn default() -> Self {
        Self::new()
    }
}

impl BackendStats {
    /// Zeroed statistics.
    #[must_use]
    pub fn new() -> Self {
        Self {
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
            responses_other: AtomicU64::new(0),
            failures: std::array::from_fn(|_| AtomicU64::new(0)),
            retries: AtomicU64::new(0),
            ejected: AtomicBool::new(false),
            ejections: AtomicU64::new(0),
            latency_sum_nanos: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts a request sent to the backend and holds it in the in-flight gauge until
    /// the returned guard drops (also when the request future is cancelled).
    ///
    /// ```
    /// let stats = std::sync::Arc::new(routing_tower::stats::BackendStats::new());
    /// let guard = stats.begin();
    /// assert_eq!(stats.snapshot().in_flight, 1);
    /// drop(guard);
    /// let s = stats.snapshot();
    /// assert_eq!((s.requests, s.in_flight), (1, 0));
    /// ```
    #[must_use = "the request leaves the in-flight gauge when the guard drops"]
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: Arc::clone(self),
        }
    }

    /// Records how one try ended: a response counts in its status class and its
    /// `latency` in the histogram; a local failure counts by kind (its latency, often a
    /// timeout, is not a response time and is left out of the histogram).
    ///
    /// ```
    /// use routing_tower::{outcome::Outcome, stats::BackendStats};
    /// let stats = BackendStats::new();
    /// stats.record(Outcome::Status(http::StatusCode::BAD_GATEWAY), std::time::Duration::from_millis(3));
    /// assert_eq!(stats.snapshot().responses[4], 1);
    /// ```
    pub fn record(&self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Status(status) => {
                match status.as_u16() / 100 {
                    c @ 1..=5 => self.responses[usize::from(c) - 1].fetch_add(1, Ordering::Relaxed),
                    _ => self.responses_other.fetch_add(1, Ordering::Relaxed),
                };
                self.record_latency(latency);
            }
            Outcome::Failure(kind) => {
                self.failures[kind.index()].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records how one try ended without a latency sample: for an upgraded
    /// (WebSocket) connection, whose 101 handshake is not a response time.
    ///
    /// ```
    /// use routing_tower::{outcome::Outcome, stats::BackendStats};
    /// let stats = BackendStats::new();
    /// stats.record_outcome(Outcome::Status(http::StatusCode::SWITCHING_PROTOCOLS));
    /// let s = stats.snapshot();
    /// assert_eq!((s.responses[0], s.latency_count()), (1, 0));
    /// ```
    pub fn record_outcome(&self, outcome: Outcome) {
        match outcome {
            Outcome::Status(status) => {
                match status.as_u16() / 100 {
                    c @ 1..=5 => self.responses[usize::from(c) - 1].fetch_add(1, Ordering::Relaxed),
                    _ => self.responses_other.fetch_add(1, Ordering::Relaxed),
                };
            }
            Outcome::Failure(kind) => {
                self.failures[kind.index()].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Adds one latency sample to the histogram without counting a response.
    ///
    /// ```
    /// let stats = routing_tower::stats::BackendStats::new();
    /// stats.record_latency(std::time::Duration::from_millis(7));
    /// assert_eq!(stats.snapshot().latency_count(), 1);
    /// ```
    pub fn record_latency(&self, latency: Duration) {
        let nanos = duration_nanos(latency);
        self.latency[bucket_of(nanos)].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts a retry sent to this backend.
    ///
    /// ```
    /// let stats = routing_tower::stats::BackendStats::new();
    /// stats.record_retry();
    /// assert_eq!(stats.snapshot().retries, 1);
    /// ```
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks the backend ejected (counting one more ejection) or returned.
    /// The routing layer calls this when its outlier detector ejects or returns
    /// the backend.
    ///
    /// ```
    /// let stats = routing_tower::stats::BackendStats::new();
    /// stats.set_ejected(true);
    /// stats.set_ejected(false);
    /// let s = stats.snapshot();
    /// assert_eq!((s.ejected, s.ejections), (false, 1));
    /// ```
    pub fn set_ejected(&self, ejected: bool) {
        if ejected {
            self.ejections.fetch_add(1, Ordering::Relaxed);
        }
        self.ejected.store(ejected, Ordering::Relaxed);
    }

    /// A copy of the current values. Each field is read atomically, the whole is not a
    /// consistent cut: a request completing during the copy may be half in it.
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: load(&self.requests),
            in_flight: load(&self.in_flight),
            responses: std::array::from_fn(|i| load(&self.responses[i])),
            responses_other: load(&self.responses_other),
            failures_connect: load(&self.failures[Failure::Connect.index()]),
            failures_reset: load(&self.failures[Failure::Reset.index()]),
            failures_timeout: load(&self.failures[Failure::Timeout.index()]),
            failures_other: load(&self.failures[Failure::Other.index()]),
            retries: load(&self.retries),
            ejected: self.ejected.load(Ordering::Relaxed),
            ejections: load(&self.ejections),
            latency: LatencySnapshot {
                sum_nanos: load(&self.latency_sum_nanos),
                buckets: self.latency.iter().map(load).collect(),
            },
        }
    }
}

/// Holds one request in a backend's in-flight gauge; see [`BackendStats::begin`].
#[derive(Debug)]
pub struct InFlight {
    stats: Arc<BackendStats>,
}

impl InFlight {
    /// The statistics this request counts in.
    ///
    /// ```
    /// let stats = std::sync::Arc::new(routing_tower::stats::BackendStats::new());
    /// let g = stats.begin();
    /// assert!(std::sync::Arc::ptr_eq(g.stats(), &stats));
    /// ```
    #[must_use]
    pub fn stats(&self) -> &Arc<BackendStats> {
        &self.stats
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A latency histogram copied out of [`BackendStats`]; see the [module docs](self)
/// for the bucket layout and error bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Sum of all recorded latencies, in nanoseconds (wrapping after ~584 years).
    pub sum_nanos: u64,
    /// Count per bucket; empty (all zero) when taken from `Default`.
    pub buckets: Vec<u64>,
}

impl LatencySnapshot {
    /// Number of samples.
    ///
    /// ```
    /// assert_eq!(routing_tower::stats::LatencySnapshot::default().count(), 0);
    /// ```
    #[must_use]
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, &b| a.saturating_add(b))
    }

    /// Mean latency, `None` without samples.
    ///
    /// ```
    /// let s = routing_tower::stats::BackendStats::new();
    /// s.record_latency(std::time::Duration::from_millis(10));
    /// s.record_latency(std::time::Duration::from_millis(30));
    /// assert_eq!(s.snapshot().latency.mean(), Some(std::time::Duration::from_millis(20)));
    /// ```
    #[must_use]
    pub fn mean(&self) -> Option<Duration> {
        let n = self.count();
        (n > 0).then(|| Duration::from_nanos(self.sum_nanos / n))
    }

    /// Estimated `q`-quantile (`q` clamped to `0.0 ..= 1.0`, NaN read as 0): the
    /// midpoint of the bucket holding the sample of rank `max(1, ⌈q·n⌉)`. `None`
    /// without samples.
    ///
    /// ```
    /// let s = routing_tower::stats::BackendStats::new();
    /// for ms in 1..=100 { s.record_latency(std::time::Duration::from_millis(ms)); }
    /// let p99 = s.snapshot().latency.quantile(0.99).expect("samples").as_secs_f64();
    /// assert!((p99 - 0.099).abs() <= 0.099 * 0.0625);
    /// ```
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // `as` saturates; the product is within 0 ..= n.
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Some(bucket_estimate(i));
            }
        }
        self.buckets.len().checked_sub(1).map(bucket_estimate)
    }

    /// The samples recorded after `earlier` was taken (counts subtracted, saturating).
    #[must_use]
    pub fn since(&self, earlier: &LatencySnapshot) -> LatencySnapshot {
        LatencySnapshot {
            sum_nanos: self.sum_nanos.wrapping_sub(earlier.sum_nanos),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, &c)| c.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }
}

/// A copy of one backend's statistics; plain data.
///
/// Taken from a live [`BackendStats`] the counters are totals since it was created;
/// after [`since`](Self::since) they are the counts of a window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Requests sent (first tries and retries).
    pub requests: u64,
    /// Requests in flight now (a gauge; kept as is by `since`).
    pub in_flight: u64,
    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub responses: [u64; 5],
    /// Responses with a status of 600 or more.
    pub responses_other: u64,
    /// Tries that failed to connect.
    pub failures_connect: u64,
    /// Tries whose connection or stream was reset.
    pub failures_reset: u64,
    /// Tries that timed out.
    pub failures_timeout: u64,
    /// Tries that failed otherwise ([`Failure::Other`]: a malformed answer, an error
    /// of an in-process service).
    pub failures_other: u64,
    /// Retries sent to this backend.
    pub retries: u64,
    /// Whether the backend is ejected now (a gauge; kept as is by `since`).
    pub ejected: bool,
    /// Ejections so far.
    pub ejections: u64,
    /// Response latencies.
    pub latency: LatencySnapshot,
}

impl StatsSnapshot {
    /// Tries that ended with a local failure of any kind.
    ///
    /// ```
    /// let s = routing_tower::stats::StatsSnapshot { failures_reset: 2, failures_timeout: 1, ..Default::default() };
    /// assert_eq!(s.local_failures(), 3);
    /// ```
    #[must_use]
    pub fn local_failures(&self) -> u64 {
        self.failures_connect
            .saturating_add(self.failures_reset)
            .saturating_add(self.failures_timeout)
            .saturating_add(self.failures_other)
    }

    /// Tries that completed: every response plus every local failure.
    ///
    /// ```
    /// let s = routing_tower::stats::StatsSnapshot { responses: [0, 7, 0, 1, 2], failures_connect: 1, ..Default::default() };
    /// assert_eq!(s.completed(), 11);
    /// ```
    #[must_use]
    pub fn completed(&self) -> u64 {
        self.responses
            .iter()
            .fold(self.responses_other, |a, &b| a.saturating_add(b))
            .saturating_add(self.local_failures())
    }

    /// Errors (5xx responses and local failures) over completed tries; `None` when
    /// nothing completed. 4xx are the client's errors and do not count.
    ///
    /// ```
    /// let s = routing_tower::stats::StatsSnapshot { responses: [0, 8, 0, 1, 1], failures_timeout: 0, ..Default::default() };
    /// assert_eq!(s.error_rate(), Some(0.1));
    /// assert_eq!(routing_tower::stats::StatsSnapshot::default().error_rate(), None);
    /// ```
    #[must_use]
    pub fn error_rate(&self) -> Option<f64> {
        let completed = self.completed();
        let errors = self.responses[4].saturating_add(self.local_failures());
        (completed > 0).then(|| errors as f64 / completed as f64)
    }

    /// Number of latency samples (responses, unless latencies were added by hand).
    #[must_use]
    pub fn latency_count(&self) -> u64 {
        self.latency.count()
    }

    /// Estimated latency `q`-quantile; see [`LatencySnapshot::quantile`].
    ///
    /// ```
    /// let s = routing_tower::stats::StatsSnapshot::default();
    /// assert_eq!(s.quantile(0.99), None);
    /// ```
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        self.latency.quantile(q)
    }

    /// The traffic between `earlier` and `self`: counters subtracted (saturating at
    /// zero), gauges (`in_flight`, `ejected`) taken from `self`.
    ///
    /// ```
    /// use routing_tower::{outcome::Outcome, stats::BackendStats};
    /// use std::{sync::Arc, time::Duration};
    /// let stats = Arc::new(BackendStats::new());
    /// drop(stats.begin());
    /// let t0 = stats.snapshot();
    /// drop(stats.begin());
    /// stats.record(Outcome::Status(http::StatusCode::SERVICE_UNAVAILABLE), Duration::from_millis(1));
    /// let w = stats.snapshot().since(&t0);
    /// assert_eq!((w.requests, w.responses[4], w.error_rate()), (1, 1, Some(1.0)));
    /// ```
    #[must_use]
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.saturating_sub(earlier.requests),
            in_flight: self.in_flight,
            responses: std::array::from_fn(|i| {
                self.responses[i].saturating_sub(earlier.responses[i])
            }),
            responses_other: self.responses_other.saturating_sub(earlier.responses_other),
            failures_connect: self
                .failures_connect
                .saturating_sub(earlier.failures_connect),
            failures_reset: self.failures_reset.saturating_sub(earlier.failures_reset),
            failures_timeout: self
                .failures_timeout
                .saturating_sub(earlier.failures_timeout),
            failures_other: self.failures_other.saturating_sub(earlier.failures_other),
            retries: self.retries.saturating_sub(earlier.retries),
            ejected: self.ejected,
            ejections: self.ejections.saturating_sub(earlier.ejections),
            latency: self.latency.since(&earlier.latency),
        }
    }
}

/// [`BackendStats`] by backend name. Entries are never dropped by config swaps (a
/// backend that leaves and comes back keeps its counters); [`retain`](Self::retain)
/// forgets backends explicitly.
///
/// Look-ups take a read lock; callers on a hot path keep the returned `Arc`.
///
/// ```
/// let r = routing_tower::stats::StatsRegistry::new();
/// let a = r.get_or_insert("a");
/// assert!(std::sync::Arc::ptr_eq(&a, &r.get_or_insert("a")));
/// assert_eq!(r.snapshot()[0].0.as_ref(), "a");
/// ```
///
/// Beside the per-backend totals it keeps, for each named rule that splits traffic
/// over several backends, each backend's share of that rule's traffic
/// ([`rule_backend`](Self::rule_backend)): what a rollout of that rule is judged on.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    by_name: RwLock<HashMap<Arc<str>, Arc<BackendStats>>>,
    by_rule: RwLock<HashMap<RuleBackend, Arc<BackendStats>>>,
}

/// (route, rule, backend) names.
type RuleBackend = (Box<str>, Box<str>, Box<str>);

/// A route's, rule's and backend's names, and the backend's stats within the rule
/// ([`StatsRegistry::rule_snapshot`]).
pub type RuleBackendSnapshot = (Box<str>, Box<str>, Box<str>, StatsSnapshot);

impl StatsRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The statistics of `name`, created zeroed on first use.
    pub fn get_or_insert(&self, name: &str) -> Arc<BackendStats> {
        if let Some(s) = self.get(name) {
            return s;
        }
        let mut map = self.by_name.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(Arc::from(name))
                .or_insert_with(|| Arc::new(BackendStats::new())),
        )
    }

    /// The statistics of `name`, if it has any.
    ///
    /// ```
    /// assert!(routing_tower::stats::StatsRegistry::new().get("x").is_none());
    /// ```
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Arc<BackendStats>> {
        let map = self.by_name.read().unwrap_or_else(|p| p.into_inner());
        map.get(name).cloned()
    }

    /// Forgets every backend for which `keep` returns false.
    ///
    /// ```
    /// let r = routing_tower::stats::StatsRegistry::new();
    /// r.get_or_insert("a");
    /// r.get_or_insert("b");
    /// r.retain(|name| name == "b");
    /// assert!(r.get("a").is_none() && r.get("b").is_some());
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut map = self.by_name.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|name, _| keep(name));
    }

    /// The statistics of `backend` within the requests of rule `rule` of route
    /// `route` (by name), created zeroed on first use. The layer records every try
    /// of a named rule with several backends both here and in the backend's totals.
    ///
    /// ```
    /// let r = routing_tower::stats::StatsRegistry::new();
    /// let s = r.rule_backend("shop", "main", "v2");
    /// assert!(std::sync::Arc::ptr_eq(&s, &r.rule_backend("shop", "main", "v2")));
    /// assert!(r.get("v2").is_none(), "separate from the backend's totals");
    /// ```
    pub fn rule_backend(&self, route: &str, rule: &str, backend: &str) -> Arc<BackendStats> {
        if let Some(s) = self.get_rule_backend(route, rule, backend) {
            return s;
        }
        let mut map = self.by_rule.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry((route.into(), rule.into(), backend.into()))
                .or_insert_with(|| Arc::new(BackendStats::new())),
        )
    }

    /// The statistics of `backend` within rule `rule` of route `route`, if any.
    ///
    /// ```
    /// let r = routing_tower::stats::StatsRegistry::new();
    /// assert!(r.get_rule_backend("shop", "main", "v2").is_none());
    /// ```
    #[must_use]
    pub fn get_rule_backend(
        &self,
        route: &str,
        rule: &str,
        backend: &str,
    ) -> Option<Arc<BackendStats>> {
        let map = self.by_rule.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(route.into(), rule.into(), backend.into()))
            .cloned()
    }

    /// A snapshot of every (route, rule, backend), sorted.
    ///
    /// ```
    /// let r = routing_tower::stats::StatsRegistry::new();
    /// r.rule_backend("shop", "main", "v2");
    /// let all = r.rule_snapshot();
    /// assert_eq!((&*all[0].0, &*all[0].1, &*all[0].2), ("shop", "main", "v2"));
    /// ```
    #[must_use]
    pub fn rule_snapshot(&self) -> Vec<RuleBackendSnapshot> {
        let map = self.by_rule.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .map(|((route, rule, backend), s)| {
                (route.clone(), rule.clone(), backend.clone(), s.snapshot())
            })
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        out
    }

    /// A snapshot of every backend, sorted by name.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(Arc<str>, StatsSnapshot)> {
        let entries: Vec<(Arc<str>, Arc<BackendStats>)> = {
            let map = self.by_name.read().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
                .collect()
        };
        let mut out: Vec<_> = entries
            .into_iter()
            .map(|(name, s)| (name, s.snapshot()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn bucket_layout_is_contiguous_and_monotonic() {
        assert_eq!(BUCKETS, 170);
        let mut prev_high = 0;
        for i in 0..BUCKETS - 1 {
            let (low, high) = bucket_bounds(i);
            assert_eq!(
                low,
                prev_high,
                "bucket {i} must start where {} ended",
                i.wrapping_sub(1)
            );
            assert!(high > low);
            assert_eq!(bucket_of(low), i, "low bound of bucket {i} must map to it");
            assert_eq!(
                bucket_of(high - 1),
                i,
                "high-1 of bucket {i} must map to it"
            );
            // Relative width ≤ 1/8 inside the tracked range.
            if i > 0 {
                assert!((high - low) * 8 <= low, "bucket {i} too wide");
            }
            prev_high = high;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(0), 0);
        // The brief's range: ~50 µs .. ~60 s inside the tracked buckets.
        assert!(bucket_of(50_000) > 0);
        assert!(bucket_of(60_000_000_000) < BUCKETS - 1);
    }

    #[test]
    fn quantiles_within_error_bound_of_exact() {
        // A deterministic, skewed sample: 20 000 latencies from 40 µs to ~30 s.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut samples = Vec::new();
        let stats = BackendStats::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Log-uniform between 2^15.3 and 2^34.8 ns.
            let e = 15.3 + (x % 10_000) as f64 / 10_000.0 * 19.5;
            let nanos = 2f64.powf(e) as u64;
            samples.push(nanos);
            stats.record(Outcome::Status(StatusCode::OK), Duration::from_nanos(nanos));
        }
        samples.sort_unstable();
        let snap = stats.snapshot();
        for q in [0.0, 0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let n = samples.len() as u64;
            let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
            let exact = samples[(rank - 1) as usize] as f64;
            let est = snap.quantile(q).map(|d| d.as_nanos() as f64).unwrap_or(0.0);
            let err = (est - exact).abs() / exact;
            assert!(
                err <= 0.0625,
                "q={q}: estimate {est} vs exact {exact}, error {err} > 6.25 %"
            );
        }
    }

    #[test]
    fn quantile_edge_cases() {
        let s = BackendStats::new();
        assert_eq!(s.snapshot().quantile(0.5), None);
        s.record_latency(Duration::from_nanos(10));
        let q = s.snapshot().quantile(f64::NAN).expect("one sample");
        assert!(
            q < Duration::from_micros(33),
            "underflow bucket stays below 32.8 µs"
        );
        s.record_latency(Duration::MAX);
        let top = s.snapshot().quantile(1.0).expect("samples");
        assert_eq!(top, Duration::from_nanos(1 << HIGH_EXP));
        assert!(s.snapshot().quantile(f64::INFINITY).is_some());
        assert!(s.snapshot().quantile(-3.0).is_some());
    }

    #[test]
    fn counts_exact_under_concurrent_recording() {
        let stats = Arc::new(BackendStats::new());
        let threads = 4;
        let per_thread = 25_000u64;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let stats = Arc::clone(&stats);
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let _g = stats.begin();
                        let outcome = match (i + t) % 10 {
                            0 => Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR),
                            1 => Outcome::Status(StatusCode::NOT_FOUND),
                            2 => Outcome::Failure(Failure::Reset),
                            _ => Outcome::Status(StatusCode::OK),
                        };
                        stats.record(outcome, Duration::from_micros(100 + i % 1000));
                        if i % 5 == 0 {
                            stats.record_retry();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("recording thread panicked");
        }
        let s = stats.snapshot();
        let total = threads * per_thread;
        assert_eq!(s.requests, total);
        assert_eq!(s.in_flight, 0, "every guard dropped");
        assert_eq!(s.responses[4], total / 10);
        assert_eq!(s.responses[3], total / 10);
        assert_eq!(s.failures_reset, total / 10);
        assert_eq!(s.responses[1], total * 7 / 10);
        assert_eq!(s.completed(), total);
        assert_eq!(
            s.latency_count(),
            total * 9 / 10,
            "failures are not latency samples"
        );
        assert_eq!(s.retries, threads * per_thread / 5);
        assert_eq!(s.error_rate(), Some(0.2));
    }

    #[test]
    fn since_gives_window_deltas() {
        let stats = Arc::new(BackendStats::new());
        for _ in 0..10 {
            drop(stats.begin());
            stats.record(Outcome::Status(StatusCode::OK), Duration::from_millis(1));
        }
        stats.set_ejected(true);
        let t0 = stats.snapshot();
        let g = stats.begin();
        stats.record(
            Outcome::Status(StatusCode::BAD_GATEWAY),
            Duration::from_secs(2),
        );
        stats.record(Outcome::Failure(Failure::Connect), Duration::ZERO);
        stats.record_retry();
        stats.set_ejected(false);
        let w = stats.snapshot().since(&t0);
        assert_eq!(w.requests, 1);
        assert_eq!(w.in_flight, 1, "gauge taken from the later snapshot");
        assert_eq!(w.responses, [0, 0, 0, 0, 1]);
        assert_eq!(w.failures_connect, 1);
        assert_eq!(w.retries, 1);
        assert!(!w.ejected);
        assert_eq!(w.ejections, 0, "the ejection happened before the window");
        assert_eq!(w.latency_count(), 1);
        assert_eq!(w.latency.sum_nanos, 2_000_000_000);
        let p = w.quantile(0.5).unwrap_or_default();
        assert!(p > Duration::from_millis(1875) && p < Duration::from_millis(2125));
        assert_eq!(w.error_rate(), Some(1.0));
        drop(g);
        // A snapshot "since" a later one saturates at zero instead of wrapping.
        let back = t0.since(&stats.snapshot());
        assert_eq!(back.requests, 0);
        assert_eq!(back.latency_count(), 0);
    }

    #[test]
    fn odd_statuses_and_registry() {
        let r = StatsRegistry::new();
        let s = r.get_or_insert("b");
        let code = StatusCode::from_u16(799).unwrap_or(StatusCode::OK);
        s.record(Outcome::Status(code), Duration::ZERO);
        r.get_or_insert("a");
        let snap = r.snapshot();
        let names: Vec<&str> = snap.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(snap[1].1.responses_other, 1);
        assert_eq!(snap[1].1.completed(), 1);
        // A second swap keeps the counters.
        assert_eq!(r.get_or_insert("b").snapshot().responses_other, 1);
    }
}
