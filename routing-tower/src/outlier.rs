//! Outlier detection: passive ejection of backends that fail in a row, with the
//! semantics of Envoy's outlier detection as Istio's `DestinationRule` configures it.
//!
//! The layer reports how every try ended ([`OutlierDetector::record`]). A backend
//! that returns [`consecutive_5xx`](OutlierConfig::consecutive_5xx) 5xx responses (or
//! local failures) in a row, or
//! [`consecutive_gateway_errors`](OutlierConfig::consecutive_gateway_errors)
//! 502/503/504 responses (or local failures) in a row, is ejected: its
//! [`BackendHealth`] flag in routing-core's [`HealthRegistry`] is cleared, so selection
//! skips it (subject to routing-core's panic threshold), until its ejection time is
//! over. Nothing runs in the background: every call checks one atomic deadline and
//! returns expired ejections when it is due, so a backend comes back on the first
//! call after its time (call [`OutlierDetector::sweep`] before routing, or
//! periodically, if traffic can stop altogether).
//!
//! ```
//! use routing_core::Router;
//! use routing_tower::clock::ManualClock;
//! use routing_tower::outlier::{OutlierConfig, OutlierDetector, Outcome};
//! use http::StatusCode;
//! use std::{sync::Arc, time::Duration};
//!
//! let router = Router::from_yaml(r#"
//! backends: [{name: a}, {name: b}]
//! routes: [{name: r, rules: [{backends: [{name: a}, {name: b}]}]}]
//! "#)?;
//! let clock = Arc::new(ManualClock::new());
//! let detector = OutlierDetector::new(OutlierConfig::default(), clock.clone());
//! detector.sync(["a", "b"], router.health());
//!
//! for _ in 0..5 {
//!     detector.record("a", Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR));
//! }
//! assert!(detector.is_ejected("a"));
//! assert_eq!(router.health().is_available("a"), Some(false));
//!
//! clock.advance(Duration::from_secs(30)); // base_ejection_time
//! detector.sweep();
//! assert_eq!(router.health().is_available("a"), Some(true));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Semantics, and where they come from
//!
//! * Counting (Envoy `consecutive_5xx` / `consecutive_gateway_failure`): every 5xx —
//!   gateway errors included — and every [`LocalFailure`] (connect failure, reset,
//!   timeout; Envoy maps them to 503/504 when `split_external_local_origin_errors` is
//!   off, its default) adds one to the 5xx counter; 502, 503, 504 and local failures
//!   add one to the gateway counter, and any other 5xx clears it; a response below 500
//!   clears both. Reaching a threshold detects an outlier (a gateway detection wins if
//!   both are reached by the same try); both counters are then cleared, whether or not
//!   the ejection is allowed, so the next run of failures is detected afresh. Tries
//!   finishing while the backend is ejected are not counted.
//! * Limit (Envoy `max_ejection_percent`): an ejection is allowed while fewer than
//!   `⌊max_ejection_percent × backends / 100⌋` backends are ejected, counted over the
//!   current set ([`sync`](OutlierDetector::sync)). With
//!   [`always_eject_one`](OutlierConfig::always_eject_one) (the default) one ejection
//!   is always allowed when none is active, as Envoy documented it ("Defaults to 10%
//!   but will eject at least one host regardless of the value",
//!   <https://www.envoyproxy.io/docs/envoy/v1.7.1/api-v1/cluster_manager/cluster_outlier_detection>)
//!   and as gRPC copied it (grpc/grpc-java#9489, "matches Envoy proxy behavior").
//!   Envoy later enforced the percentage strictly (envoyproxy/envoy#27909) and
//!   brought the old behaviour back as the opt-in `always_eject_one_host`
//!   (envoyproxy/envoy#34796); we keep it on by default because with the Istio
//!   default of 10 % no backend of a set smaller than ten could ever be ejected, and
//!   routing-core's `OutlierDetection` documents "one is always allowed".
//! * Duration (Envoy `base_ejection_time`, `max_ejection_time`): `base × m`, where the
//!   multiplier `m` grows by one with each ejection, capped at
//!   `max(base, max_ejection_time)` (default 300 s as in Envoy). The multiplier stops
//!   growing once `base × m` reaches the cap.
//! * Decay (Envoy: "if the host is healthy during [an interval] check, the ejection
//!   time multiplier is decremented"): while a backend is in service, its multiplier
//!   drops by one per full [`interval`](OutlierConfig::interval) since it returned.
//!   It is computed lazily from the return time, so no sweep is needed for it; with a
//!   zero interval the multiplier is back to zero as soon as the backend returns.
//! * Return: exactly at the deadline, lazily (Envoy returns hosts at the first
//!   interval timer after it, so its ejections last up to one interval longer).
//! * Not implemented: success-rate and failure-percentage ejection, enforcement
//!   percentages (`enforcing_*` are 100 %), `max_ejection_time_jitter`, Istio's
//!   `minHealthPercent` (routing-core's panic threshold plays that role).
//!
//! # Concurrency
//!
//! `record` of a success is an `ArcSwap` load, a hash look-up and two relaxed loads
//! (a store only when a counter was non-zero); a failure adds a relaxed `fetch_add`.
//! Ejections and returns, which are rare, take one mutex; `record` only `try_lock`s it
//! to return expired ejections, so it never waits for another thread.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::StatusCode;
use routing_core::{BackendHealth, HealthRegistry};

use crate::clock::{duration_nanos, SharedClock, Timestamp};
use crate::stats::{BackendStats, StatsRegistry};

/// A failure of a try that produced no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocalFailure {
    /// The connection to the backend could not be established.
    Connect,
    /// The connection or stream was reset before a response.
    Reset,
    /// No response within the (per-try) timeout.
    Timeout,
}

impl fmt::Display for LocalFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocalFailure::Connect => "connect failure",
            LocalFailure::Reset => "reset",
            LocalFailure::Timeout => "timeout",
        })
    }
}

/// How one try to a backend ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The backend answered with this status.
    Status(StatusCode),
    /// The try failed without a response.
    LocalFailure(LocalFailure),
}

impl Outcome {
    /// Whether it counts toward `consecutive_5xx`: a 5xx status or a local failure.
    ///
    /// ```
    /// use routing_tower::outlier::{LocalFailure, Outcome};
    /// assert!(Outcome::Status(http::StatusCode::NOT_IMPLEMENTED).is_5xx());
    /// assert!(Outcome::LocalFailure(LocalFailure::Reset).is_5xx());
    /// assert!(!Outcome::Status(http::StatusCode::NOT_FOUND).is_5xx());
    /// ```
    #[must_use]
    pub fn is_5xx(&self) -> bool {
        match self {
            Outcome::Status(s) => s.is_server_error(),
            Outcome::LocalFailure(_) => true,
        }
    }

    /// Whether it counts toward `consecutive_gateway_errors`: 502, 503, 504 or a
    /// local failure.
    ///
    /// ```
    /// use routing_tower::outlier::{LocalFailure, Outcome};
    /// assert!(Outcome::Status(http::StatusCode::GATEWAY_TIMEOUT).is_gateway_error());
    /// assert!(Outcome::LocalFailure(LocalFailure::Connect).is_gateway_error());
    /// assert!(!Outcome::Status(http::StatusCode::INTERNAL_SERVER_ERROR).is_gateway_error());
    /// ```
    #[must_use]
    pub fn is_gateway_error(&self) -> bool {
        match self {
            Outcome::Status(s) => matches!(s.as_u16(), 502..=504),
            Outcome::LocalFailure(_) => true,
        }
    }
}

impl From<StatusCode> for Outcome {
    fn from(s: StatusCode) -> Self {
        Outcome::Status(s)
    }
}

impl From<LocalFailure> for Outcome {
    fn from(f: LocalFailure) -> Self {
        Outcome::LocalFailure(f)
    }
}

/// Outlier detection settings.
///
/// Defaults are Istio's `DestinationRule` ones (consecutive 5xx 5, gateway errors off,
/// interval 10 s, base ejection 30 s, max ejection percent 10) plus Envoy's
/// `max_ejection_time` of 300 s. Out-of-range values are read leniently, never
/// rejected: a threshold of `Some(0)` disables that detection (as Istio's 0 does), a
/// percent above 100 means 100.
///
/// ```
/// let c = routing_tower::outlier::OutlierConfig::default();
/// assert_eq!(c.consecutive_5xx, Some(5));
/// assert_eq!(c.base_ejection_time, std::time::Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierConfig {
    /// 5xx responses or local failures in a row that eject; `None` disables.
    pub consecutive_5xx: Option<u32>,
    /// 502/503/504 responses or local failures in a row that eject; `None` disables.
    pub consecutive_gateway_errors: Option<u32>,
    /// Period of the ejection multiplier's decay.
    pub interval: Duration,
    /// Length of a first ejection.
    pub base_ejection_time: Duration,
    /// Longest ejection (at least `base_ejection_time` is used).
    pub max_ejection_time: Duration,
    /// Largest share of the backends ejected at once, in percent.
    pub max_ejection_percent: u8,
    /// Allow one ejection when none is active even if the percentage allows none
    /// (Envoy's historical behaviour, `always_eject_one_host`); default `true`.
    pub always_eject_one: bool,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self::from(routing_core::OutlierDetection::default())
    }
}

impl From<routing_core::OutlierDetection> for OutlierConfig {
    /// The routing-core policy, with `always_eject_one` on (routing-core documents
    /// "one is always allowed").
    ///
    /// ```
    /// let od = routing_core::OutlierDetection { consecutive_5xx: Some(3), ..Default::default() };
    /// let c = routing_tower::outlier::OutlierConfig::from(od);
    /// assert_eq!((c.consecutive_5xx, c.always_eject_one), (Some(3), true));
    /// ```
    fn from(od: routing_core::OutlierDetection) -> Self {
        Self {
            consecutive_5xx: od.consecutive_5xx,
            consecutive_gateway_errors: od.consecutive_gateway_errors,
            interval: od.interval,
            base_ejection_time: od.base_ejection_time,
            max_ejection_time: od.max_ejection_time,
            max_ejection_percent: od.max_ejection_percent,
            always_eject_one: true,
        }
    }
}

impl OutlierConfig {
    /// Length of an ejection with multiplier `m`, and the multiplier's cap.
    fn ejection_time(&self, m: u32) -> Duration {
        let base = duration_nanos(self.base_ejection_time) as u128;
        let cap = base.max(duration_nanos(self.max_ejection_time) as u128);
        let t = (base * u128::from(m)).min(cap);
        // `t ≤ cap ≤ u64::MAX`.
        Duration::from_nanos(u64::try_from(t).unwrap_or(u64::MAX))
    }

    /// The next multiplier after `m`: one more, unless `base × m` already reached the cap.
    fn next_multiplier(&self, m: u32) -> u32 {
        let base = duration_nanos(self.base_ejection_time) as u128;
        let cap = base.max(duration_nanos(self.max_ejection_time) as u128);
        if m == 0 || base * u128::from(m) < cap {
            m.saturating_add(1)
        } else {
            m
        }
    }

    fn threshold(t: Option<u32>) -> Option<u32> {
        t.filter(|&t| t > 0)
    }
}

/// Why a backend was ejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EjectionReason {
    /// `consecutive_5xx` reached.
    Consecutive5xx,
    /// `consecutive_gateway_errors` reached.
    ConsecutiveGatewayErrors,
}

impl fmt::Display for EjectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EjectionReason::Consecutive5xx => "consecutive 5xx",
            EjectionReason::ConsecutiveGatewayErrors => "consecutive gateway errors",
        })
    }
}

/// An ejection that [`OutlierDetector::record`] just made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// The backend.
    pub backend: Arc<str>,
    /// What triggered it.
    pub reason: EjectionReason,
    /// How long it lasts.
    pub duration: Duration,
    /// When it ends, on the detector's clock.
    pub until: Timestamp,
    /// The backend's ejections so far, this one included.
    pub ejections_total: u64,
}

/// One backend's outlier-detection state, as [`OutlierDetector::snapshot`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendOutlierState {
    /// The backend.
    pub name: Arc<str>,
    /// Remaining ejection time; `None` when in service.
    pub ejected_for: Option<Duration>,
    /// Ejections so far.
    pub ejections_total: u64,
    /// Current ejection multiplier (after decay); the next ejection uses one more.
    pub multiplier: u32,
    /// Current run of 5xx responses or local failures.
    pub consecutive_5xx: u32,
    /// Current run of gateway errors.
    pub consecutive_gateway_errors: u32,
}

/// `ejected_until` of a backend in service.
const IN_SERVICE: u64 = 0;
/// `next_deadline` when nothing is ejected.
const NO_DEADLINE: u64 = u64::MAX;

#[derive(Debug)]
struct Monitor {
    name: Arc<str>,
    health: Arc<BackendHealth>,
    stats: Option<Arc<BackendStats>>,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// End of the current ejection in clock nanoseconds (≥ 1), or `IN_SERVICE`.
    ejected_until: AtomicU64,
    ejections_total: AtomicU64,
    /// Written under the detector's mutex only.
    multiplier: AtomicU32,
    /// When the last ejection ended (the decay's origin); written under the mutex.
    returned_at: AtomicU64,
}

impl Monitor {
    fn new(name: Arc<str>, health: Arc<BackendHealth>, stats: Option<Arc<BackendStats>>) -> Self {
        Self {
            name,
            health,
            stats,
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway: AtomicU32::new(0),
            ejected_until: AtomicU64::new(IN_SERVICE),
            ejections_total: AtomicU64::new(0),
            multiplier: AtomicU32::new(0),
            returned_at: AtomicU64::new(0),
        }
    }

    fn reset_counters(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
    }

    fn is_ejected_at(&self, now: Timestamp) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        until != IN_SERVICE && now.as_nanos() < until
    }

    /// The multiplier after decay: one less per full `interval` in service.
    fn decayed_multiplier(&self, now: Timestamp, interval: Duration) -> u32 {
        let m = self.multiplier.load(Ordering::Relaxed);
        if m == 0 || self.ejected_until.load(Ordering::Acquire) != IN_SERVICE {
            return m;
        }
        let since = now.saturating_duration_since(Timestamp::from_nanos(
            self.returned_at.load(Ordering::Relaxed),
        ));
        let interval = duration_nanos(interval);
        if interval == 0 {
            return 0;
        }
        let steps = duration_nanos(since) / interval;
        let steps = u32::try_from(steps).unwrap_or(u32::MAX);
        m.saturating_sub(steps)
    }
}

#[derive(Debug, Default)]
struct Backends {
    by_name: HashMap<Arc<str>, Arc<Monitor>>,
}

/// Ejects backends that fail in a row; see the [module docs](self).
///
/// One detector serves one set of backends (the layer's), shared by every request
/// (`Arc<OutlierDetector>`). Dropping it returns its ejected backends to service.
#[derive(Debug)]
pub struct OutlierDetector {
    config: ArcSwap<OutlierConfig>,
    clock: SharedClock,
    backends: ArcSwap<Backends>,
    stats: Option<Arc<StatsRegistry>>,
    /// Earliest `ejected_until` of an ejected backend, or `NO_DEADLINE`; written under
    /// `slow` only.
    next_deadline: AtomicU64,
    /// Backends with `ejected_until != IN_SERVICE`; written under `slow` only.
    ejected: AtomicUsize,
    /// Serializes ejections, returns and set changes.
    slow: Mutex<()>,
}

impl OutlierDetector {
    /// A detector with no backends yet; call [`sync`](Self::sync).
    ///
    /// ```
    /// use routing_tower::{clock::SystemClock, outlier::{OutlierConfig, OutlierDetector}};
    /// let d = OutlierDetector::new(OutlierConfig::default(), SystemClock::shared());
    /// assert_eq!(d.ejected_count(), 0);
    /// ```
    #[must_use]
    pub fn new(config: OutlierConfig, clock: SharedClock) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            clock,
            backends: ArcSwap::from_pointee(Backends::default()),
            stats: None,
            next_deadline: AtomicU64::new(NO_DEADLINE),
            ejected: AtomicUsize::new(0),
            slow: Mutex::new(()),
        }
    }

    /// Also marks ejections in `stats` ([`BackendStats::set_ejected`]) for backends
    /// added by later [`sync`](Self::sync) calls.
    ///
    /// ```
    /// use routing_tower::{clock::ManualClock, stats::StatsRegistry};
    /// use routing_tower::outlier::{LocalFailure, OutlierConfig, OutlierDetector};
    /// use std::sync::Arc;
    /// let stats = Arc::new(StatsRegistry::new());
    /// let config = OutlierConfig { consecutive_5xx: Some(1), ..Default::default() };
    /// let d = OutlierDetector::new(config, Arc::new(ManualClock::new())).with_stats(stats.clone());
    /// d.sync(["a"], &routing_core::HealthRegistry::default());
    /// d.record("a", LocalFailure::Timeout.into());
    /// let s = stats.get_or_insert("a").snapshot();
    /// assert_eq!((s.ejected, s.ejections), (true, 1));
    /// ```
    #[must_use]
    pub fn with_stats(mut self, stats: Arc<StatsRegistry>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The settings in force.
    #[must_use]
    pub fn config(&self) -> OutlierConfig {
        **self.config.load()
    }

    /// Replaces the settings (on a config swap). Running ejections keep their end;
    /// counters keep counting toward the new thresholds.
    ///
    /// ```
    /// use routing_tower::{clock::SystemClock, outlier::{OutlierConfig, OutlierDetector}};
    /// let d = OutlierDetector::new(OutlierConfig::default(), SystemClock::shared());
    /// d.set_config(OutlierConfig { max_ejection_percent: 50, ..Default::default() });
    /// assert_eq!(d.config().max_ejection_percent, 50);
    /// ```
    pub fn set_config(&self, config: OutlierConfig) {
        self.config.store(Arc::new(config));
    }

    /// Makes `names` the set of backends. Backends that stay keep their counters,
    /// ejections and multipliers; new ones start with clean counters, and their
    /// ejections will drive their flag in `health` (pass routing-core's
    /// [`Router::health`](routing_core::Router::health), the registry its selection
    /// reads). Backends that leave while ejected are marked available again.
    ///
    /// ```
    /// use routing_tower::{clock::SystemClock, outlier::{OutlierConfig, OutlierDetector}};
    /// let health = routing_core::HealthRegistry::default();
    /// let d = OutlierDetector::new(OutlierConfig::default(), SystemClock::shared());
    /// d.sync(["a", "b"], &health);
    /// d.sync(["b", "c"], &health);
    /// assert_eq!(d.snapshot().len(), 2);
    /// ```
    pub fn sync<I>(&self, names: I, health: &HealthRegistry)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let _g = self.lock();
        let now = self.clock.now();
        self.sweep_locked(now);
        let old = self.backends.load_full();
        let mut by_name = HashMap::new();
        for name in names {
            let name = name.as_ref();
            if by_name.contains_key(name) {
                continue;
            }
            let m = match old.by_name.get_key_value(name) {
                Some((k, m)) => (Arc::clone(k), Arc::clone(m)),
                None => {
                    let key: Arc<str> = Arc::from(name);
                    let stats = self.stats.as_ref().map(|s| s.get_or_insert(name));
                    let m = Monitor::new(Arc::clone(&key), health.handle(name), stats);
                    (key, Arc::new(m))
                }
            };
            by_name.insert(m.0, m.1);
        }
        for (name, m) in &old.by_name {
            if !by_name.contains_key(name) && self.return_locked(m, now) {
                tracing::info!(backend = %m.name, "backend removed while ejected; marked available");
            }
        }
        self.backends.store(Arc::new(Backends { by_name }));
        self.recompute_deadline_locked();
    }

    /// Records how a try to `backend` ended, and ejects it if this completes a run of
    /// failures the settings and the ejection limit allow to eject. Unknown backends
    /// are ignored.
    ///
    /// ```
    /// use routing_tower::{clock::SystemClock, outlier::{OutlierConfig, OutlierDetector, Outcome}};
    /// use http::StatusCode;
    /// let d = OutlierDetector::new(OutlierConfig { consecutive_5xx: Some(2), ..Default::default() },
    ///                              SystemClock::shared());
    /// d.sync(["a"], &routing_core::HealthRegistry::default());
    /// assert!(d.record("a", Outcome::Status(StatusCode::BAD_GATEWAY)).is_none());
    /// let e = d.record("a", Outcome::Status(StatusCode::BAD_GATEWAY)).expect("second 5xx ejects");
    /// assert_eq!(e.duration, std::time::Duration::from_secs(30));
    /// ```
    pub fn record(&self, backend: &str, outcome: Outcome) -> Option<Ejection> {
        let now = self.clock.now();
        self.maybe_sweep(now);
        let backends = self.backends.load();
        let m = backends.by_name.get(backend)?;
        if !outcome.is_5xx() {
            // Success: clear the runs, writing only when there is something to clear.
            if m.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                m.consecutive_5xx.store(0, Ordering::Relaxed);
            }
            if m.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                m.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            return None;
        }
        if m.ejected_until.load(Ordering::Acquire) != IN_SERVICE {
            return None;
        }
        let config = self.config.load();
        let mut reason = None;
        if outcome.is_gateway_error() {
            let run = m.consecutive_gateway.fetch_add(1, Ordering::Relaxed);
            if let Some(t) = OutlierConfig::threshold(config.consecutive_gateway_errors) {
                if run.saturating_add(1) >= t {
                    reason = Some(EjectionReason::ConsecutiveGatewayErrors);
                }
            }
        } else if m.consecutive_gateway.load(Ordering::Relaxed) != 0 {
            m.consecutive_gateway.store(0, Ordering::Relaxed);
        }
        let run = m.consecutive_5xx.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = OutlierConfig::threshold(config.consecutive_5xx) {
            if reason.is_none() && run.saturating_add(1) >= t {
                reason = Some(EjectionReason::Consecutive5xx);
            }
        }
        let reason = reason?;
        let m = Arc::clone(m);
        drop(backends);
        self.try_eject(&m, reason, now, &config)
    }

    /// Whether `backend` is ejected now (false for unknown backends).
    ///
    /// ```
    /// use routing_tower::{clock::SystemClock, outlier::{OutlierConfig, OutlierDetector}};
    /// let d = OutlierDetector::new(OutlierConfig::default(), SystemClock::shared());
    /// assert!(!d.is_ejected("ghost"));
    /// ```
    #[must_use]
    pub fn is_ejected(&self, backend: &str) -> bool {
        let now = self.clock.now();
        self.maybe_sweep(now);
        self.backends
            .load()
            .by_name
            .get(backend)
            .is_some_and(|m| m.is_ejected_at(now))
    }

    /// Number of backends ejected now.
    #[must_use]
    pub fn ejected_count(&self) -> usize {
        self.sweep();
        self.ejected.load(Ordering::Acquire)
    }

    /// Ejections of `backend` so far (`None` for unknown backends).
    ///
    /// ```
    /// use routing_tower::{clock::SystemClock, outlier::{OutlierConfig, OutlierDetector}};
    /// let d = OutlierDetector::new(OutlierConfig::default(), SystemClock::shared());
    /// d.sync(["a"], &routing_core::HealthRegistry::default());
    /// assert_eq!(d.ejections_total("a"), Some(0));
    /// ```
    #[must_use]
    pub fn ejections_total(&self, backend: &str) -> Option<u64> {
        self.backends
            .load()
            .by_name
            .get(backend)
            .map(|m| m.ejections_total.load(Ordering::Relaxed))
    }

    /// Returns the backends whose ejection is over to service, on the detector's
    /// clock; returns how many came back. One atomic load when nothing is due.
    pub fn sweep(&self) -> usize {
        self.sweep_at(self.clock.now())
    }

    /// [`sweep`](Self::sweep) as of `now` (a timestamp of the detector's clock).
    ///
    /// ```
    /// use routing_tower::{clock::{SystemClock, Timestamp}, outlier::{OutlierConfig, OutlierDetector}};
    /// let d = OutlierDetector::new(OutlierConfig::default(), SystemClock::shared());
    /// assert_eq!(d.sweep_at(Timestamp::MAX), 0);
    /// ```
    pub fn sweep_at(&self, now: Timestamp) -> usize {
        if now.as_nanos() < self.next_deadline.load(Ordering::Acquire) {
            return 0;
        }
        let _g = self.lock();
        self.sweep_locked(now)
    }

    /// The state of every backend, sorted by name (returns expired ejections first).
    #[must_use]
    pub fn snapshot(&self) -> Vec<BackendOutlierState> {
        let now = self.clock.now();
        self.sweep_at(now);
        let config = self.config.load();
        let backends = self.backends.load();
        let mut out: Vec<_> = backends
            .by_name
            .values()
            .map(|m| {
                let until = m.ejected_until.load(Ordering::Acquire);
                BackendOutlierState {
                    name: Arc::clone(&m.name),
                    ejected_for: (until != IN_SERVICE && now.as_nanos() < until)
                        .then(|| Timestamp::from_nanos(until) - now),
                    ejections_total: m.ejections_total.load(Ordering::Relaxed),
                    multiplier: m.decayed_multiplier(now, config.interval),
                    consecutive_5xx: m.consecutive_5xx.load(Ordering::Relaxed),
                    consecutive_gateway_errors: m.consecutive_gateway.load(Ordering::Relaxed),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.slow.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns expired ejections if one is due, unless another thread holds the lock
    /// (it will, or the next call will).
    fn maybe_sweep(&self, now: Timestamp) {
        if now.as_nanos() < self.next_deadline.load(Ordering::Acquire) {
            return;
        }
        let _g = match self.slow.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        self.sweep_locked(now);
    }

    fn sweep_locked(&self, now: Timestamp) -> usize {
        if now.as_nanos() < self.next_deadline.load(Ordering::Acquire) {
            return 0;
        }
        let backends = self.backends.load();
        let mut returned = 0;
        for m in backends.by_name.values() {
            let until = m.ejected_until.load(Ordering::Acquire);
            if until != IN_SERVICE && until <= now.as_nanos() && self.return_locked(m, now) {
                returned += 1;
                tracing::info!(
                    backend = %m.name,
                    ejections_total = m.ejections_total.load(Ordering::Relaxed),
                    "backend returned to service after ejection"
                );
            }
        }
        drop(backends);
        self.recompute_deadline_locked();
        returned
    }

    /// Ends `m`'s ejection, if any; returns whether it was ejected.
    fn return_locked(&self, m: &Monitor, now: Timestamp) -> bool {
        let until = m.ejected_until.load(Ordering::Acquire);
        if until == IN_SERVICE {
            return false;
        }
        // The decay counts from the scheduled end, not from when we noticed it.
        m.returned_at
            .store(until.min(now.as_nanos()), Ordering::Relaxed);
        m.reset_counters();
        m.ejected_until.store(IN_SERVICE, Ordering::Release);
        m.health.set_available(true);
        if let Some(s) = &m.stats {
            s.set_ejected(false);
        }
        let _ = self
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
        true
    }

    fn recompute_deadline_locked(&self) {
        let next = self
            .backends
            .load()
            .by_name
            .values()
            .map(|m| m.ejected_until.load(Ordering::Acquire))
            .filter(|&u| u != IN_SERVICE)
            .min()
            .unwrap_or(NO_DEADLINE);
        self.next_deadline.store(next, Ordering::Release);
    }

    fn try_eject(
        &self,
        m: &Arc<Monitor>,
        reason: EjectionReason,
        now: Timestamp,
        config: &OutlierConfig,
    ) -> Option<Ejection> {
        let _g = self.lock();
        self.sweep_locked(now);
        if m.ejected_until.load(Ordering::Acquire) != IN_SERVICE {
            return None; // another thread ejected it first
        }
        let backends = self.backends.load();
        if !backends
            .by_name
            .get(&m.name)
            .is_some_and(|cur| Arc::ptr_eq(cur, m))
        {
            return None; // removed by a concurrent `sync`
        }
        // Detection consumes the runs, whether or not the limit allows the ejection.
        m.reset_counters();
        let total = backends.by_name.len();
        let ejected = self.ejected.load(Ordering::Acquire);
        let percent = usize::from(config.max_ejection_percent.min(100));
        let allowed =
            (total.saturating_mul(percent) / 100).max(usize::from(config.always_eject_one));
        if ejected >= allowed {
            tracing::debug!(
                backend = %m.name,
                %reason,
                ejected,
                allowed,
                "outlier detected but not ejected: max_ejection_percent reached"
            );
            return None;
        }
        let multiplier = config.next_multiplier(m.decayed_multiplier(now, config.interval));
        let duration = config.ejection_time(multiplier);
        let until = (now + duration).as_nanos().max(1);
        m.multiplier.store(multiplier, Ordering::Relaxed);
        m.ejected_until.store(until, Ordering::Release);
        let ejections_total = m.ejections_total.fetch_add(1, Ordering::Relaxed) + 1;
        self.ejected.fetch_add(1, Ordering::AcqRel);
        if until < self.next_deadline.load(Ordering::Acquire) {
            self.next_deadline.store(until, Ordering::Release);
        }
        m.health.set_available(false);
        if let Some(s) = &m.stats {
            s.set_ejected(true);
        }
        tracing::warn!(
            backend = %m.name,
            %reason,
            duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            ejections_total,
            "backend ejected"
        );
        Some(Ejection {
            backend: Arc::clone(&m.name),
            reason,
            duration,
            until: Timestamp::from_nanos(until),
            ejections_total,
        })
    }
}

impl Drop for OutlierDetector {
    /// Hands ejected backends back to selection: nobody would return them otherwise.
    fn drop(&mut self) {
        let now = self.clock.now();
        let backends = self.backends.load_full();
        for m in backends.by_name.values() {
            self.return_locked(m, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use routing_core::{RequestInfo, Router};

    const E500: Outcome = Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR);
    const E503: Outcome = Outcome::Status(StatusCode::SERVICE_UNAVAILABLE);
    const OK: Outcome = Outcome::Status(StatusCode::OK);

    fn setup(
        config: OutlierConfig,
        names: &[&str],
    ) -> (Arc<ManualClock>, OutlierDetector, HealthRegistry) {
        let clock = Arc::new(ManualClock::new());
        let d = OutlierDetector::new(config, clock.clone());
        let health = HealthRegistry::default();
        d.sync(names.iter().copied(), &health);
        (clock, d, health)
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("b{i}")).collect()
    }

    #[test]
    fn consecutive_5xx_ejects_exactly_at_threshold() {
        let (_c, d, health) = setup(OutlierConfig::default(), &["a", "b"]);
        for i in 1..5 {
            assert!(
                d.record("a", E500).is_none(),
                "failure {i} of 5 must not eject"
            );
            assert!(!d.is_ejected("a"));
        }
        let e = d
            .record("a", E500)
            .expect("the 5th consecutive 5xx must eject");
        assert_eq!(e.reason, EjectionReason::Consecutive5xx);
        assert_eq!(e.duration, Duration::from_secs(30));
        assert_eq!(&*e.backend, "a");
        assert!(d.is_ejected("a"));
        assert_eq!(health.is_available("a"), Some(false));
        assert_eq!(health.is_available("b"), Some(true));
        assert_eq!(d.ejected_count(), 1);
        assert_eq!(d.ejections_total("a"), Some(1));
    }

    #[test]
    fn success_in_between_resets_the_run() {
        let (_c, d, _h) = setup(OutlierConfig::default(), &["a", "b"]);
        for round in 0..10 {
            for _ in 0..4 {
                d.record("a", E500);
            }
            d.record("a", OK);
            assert!(
                !d.is_ejected("a"),
                "round {round}: a success must reset the run"
            );
        }
        // 4xx is a success for outlier detection.
        for _ in 0..4 {
            d.record("a", E500);
        }
        d.record("a", Outcome::Status(StatusCode::NOT_FOUND));
        d.record("a", E500);
        assert!(!d.is_ejected("a"));
    }

    #[test]
    fn gateway_errors_counted_separately() {
        let config = OutlierConfig {
            consecutive_5xx: None,
            consecutive_gateway_errors: Some(3),
            ..Default::default()
        };
        let (_c, d, _h) = setup(config, &["a", "b"]);
        d.record("a", E503);
        d.record("a", Outcome::LocalFailure(LocalFailure::Connect));
        // A non-gateway 5xx breaks the gateway run.
        d.record("a", E500);
        d.record("a", Outcome::Status(StatusCode::BAD_GATEWAY));
        d.record("a", Outcome::LocalFailure(LocalFailure::Timeout));
        assert!(!d.is_ejected("a"));
        let e = d
            .record("a", Outcome::Status(StatusCode::GATEWAY_TIMEOUT))
            .expect("third gateway error in a row ejects");
        assert_eq!(e.reason, EjectionReason::ConsecutiveGatewayErrors);
    }

    #[test]
    fn local_failures_count_as_5xx_and_gateway_wins_ties() {
        let config = OutlierConfig {
            consecutive_5xx: Some(2),
            consecutive_gateway_errors: Some(2),
            ..Default::default()
        };
        let (_c, d, _h) = setup(config, &["a", "b"]);
        d.record("a", Outcome::LocalFailure(LocalFailure::Reset));
        let e = d
            .record("a", Outcome::LocalFailure(LocalFailure::Reset))
            .expect("ejects");
        assert_eq!(e.reason, EjectionReason::ConsecutiveGatewayErrors);
    }

    #[test]
    fn zero_threshold_disables() {
        let config = OutlierConfig {
            consecutive_5xx: Some(0),
            ..Default::default()
        };
        let (_c, d, _h) = setup(config, &["a"]);
        for _ in 0..100 {
            assert!(d.record("a", E500).is_none());
        }
    }

    #[test]
    fn max_ejection_percent_respected() {
        let n = names(10);
        let config = OutlierConfig {
            consecutive_5xx: Some(1),
            max_ejection_percent: 30,
            ..Default::default()
        };
        let (_c, d, health) = setup(config, &n.iter().map(String::as_str).collect::<Vec<_>>());
        let mut ejected = 0;
        for name in &n {
            if d.record(name, E500).is_some() {
                ejected += 1;
            }
        }
        assert_eq!(ejected, 3, "30 % of 10 backends");
        assert_eq!(d.ejected_count(), 3);
        let unavailable = n
            .iter()
            .filter(|b| health.is_available(b) == Some(false))
            .count();
        assert_eq!(unavailable, 3);
        // Refused detections consumed their runs: one more failure is a new run of 1,
        // still refused while 3 are out.
        assert!(d.record("b9", E500).is_none());
    }

    #[test]
    fn one_ejection_allowed_even_when_percent_allows_none() {
        let names = ["a", "b", "c"];
        let config = OutlierConfig {
            consecutive_5xx: Some(1),
            max_ejection_percent: 10, // ⌊0.3⌋ = 0 hosts
            ..Default::default()
        };
        let (_c, d, _h) = setup(config, &names);
        assert!(
            d.record("a", E500).is_some(),
            "Envoy ejects at least one host"
        );
        assert!(d.record("b", E500).is_none(), "but only one");
        assert_eq!(d.ejected_count(), 1);

        let strict = OutlierConfig {
            always_eject_one: false,
            ..config
        };
        let (_c, d, _h) = setup(strict, &names);
        assert!(
            d.record("a", E500).is_none(),
            "strict percent allows none of 3 at 10 %"
        );
        let zero = OutlierConfig {
            max_ejection_percent: 0,
            ..config
        };
        let (_c, d, _h) = setup(zero, &names);
        assert!(d.record("a", E500).is_some());
        let all = OutlierConfig {
            max_ejection_percent: 255,
            ..config
        };
        let (_c, d, _h) = setup(all, &names);
        for n in names {
            assert!(d.record(n, E500).is_some(), "percent > 100 reads as 100");
        }
    }

    #[test]
    fn returns_after_base_time_and_repeat_ejection_doubles() {
        let (clock, d, health) = setup(OutlierConfig::default(), &["a", "b"]);
        for _ in 0..5 {
            d.record("a", E500);
        }
        clock.advance(Duration::from_secs(30) - Duration::from_nanos(1));
        assert!(d.is_ejected("a"), "still ejected 1 ns before the end");
        assert_eq!(health.is_available("a"), Some(false));
        clock.advance(Duration::from_nanos(1));
        // Any call returns it: here a success recorded for another backend.
        d.record("b", OK);
        assert_eq!(health.is_available("a"), Some(true));
        assert!(!d.is_ejected("a"));
        assert_eq!(d.ejected_count(), 0);
        // Fails again at once: 2 × base.
        let mut e = None;
        for _ in 0..5 {
            e = d.record("a", E500);
        }
        let e = e.expect("ejected again");
        assert_eq!(e.duration, Duration::from_secs(60));
        assert_eq!(e.ejections_total, 2);
        clock.advance(Duration::from_secs(59));
        assert_eq!(d.sweep(), 0);
        assert!(d.is_ejected("a"));
        clock.advance(Duration::from_secs(1));
        assert_eq!(d.sweep(), 1);
        assert_eq!(health.is_available("a"), Some(true));
    }

    #[test]
    fn ejection_time_capped_by_max() {
        let config = OutlierConfig {
            consecutive_5xx: Some(1),
            max_ejection_time: Duration::from_secs(100),
            ..Default::default()
        };
        let (clock, d, _h) = setup(config, &["a"]);
        let mut durations = Vec::new();
        for _ in 0..6 {
            let e = d.record("a", E500).expect("ejects");
            durations.push(e.duration.as_secs());
            clock.advance(e.duration);
            d.sweep();
        }
        assert_eq!(durations, [30, 60, 90, 100, 100, 100]);
        assert_eq!(d.snapshot()[0].multiplier, 4, "multiplier stops at the cap");
    }

    #[test]
    fn multiplier_decays_one_per_interval_in_service() {
        let config = OutlierConfig {
            consecutive_5xx: Some(1),
            ..Default::default()
        };
        let (clock, d, _h) = setup(config, &["a"]);
        for _ in 0..3 {
            let e = d.record("a", E500).expect("ejects");
            clock.advance(e.duration);
        }
        d.sweep();
        assert_eq!(d.snapshot()[0].multiplier, 3);
        clock.advance(Duration::from_secs(19)); // 1 full interval
        assert_eq!(d.snapshot()[0].multiplier, 2);
        let e = d.record("a", E500).expect("ejects");
        assert_eq!(
            e.duration,
            Duration::from_secs(90),
            "decayed 3 → 2, then +1"
        );
        clock.advance(e.duration + Duration::from_secs(1000));
        d.sweep();
        assert_eq!(
            d.snapshot()[0].multiplier,
            0,
            "fully decayed after long health"
        );
        let e = d.record("a", E500).expect("ejects");
        assert_eq!(e.duration, Duration::from_secs(30));
    }

    #[test]
    fn sync_keeps_state_for_names_that_stay() {
        let (clock, d, health) = setup(OutlierConfig::default(), &["a", "b", "c"]);
        for _ in 0..5 {
            d.record("a", E500);
        }
        for _ in 0..3 {
            d.record("b", E500);
        }
        for _ in 0..5 {
            d.record("c", E500);
        }
        // 10 % of 3 backends is 0, but one is always allowed: only `a` is out.
        assert!(d.is_ejected("a") && !d.is_ejected("c"));
        d.sync(["a", "b", "d"], &health);
        assert!(d.is_ejected("a"), "ejection survives the swap");
        let snap = d.snapshot();
        let b = snap.iter().find(|s| &*s.name == "b").expect("b stays");
        assert_eq!(b.consecutive_5xx, 3, "counters survive the swap");
        assert!(snap.iter().all(|s| &*s.name != "c"));
        // Removing an ejected backend hands it back to selection.
        d.sync(["b", "d"], &health);
        assert_eq!(health.is_available("a"), Some(true));
        assert_eq!(d.ejected_count(), 0);
        // Duplicates are ignored.
        d.sync(["b", "b", "d"], &health);
        assert_eq!(d.snapshot().len(), 2);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(d.sweep(), 0);
    }

    #[test]
    fn failures_while_ejected_are_not_counted() {
        let config = OutlierConfig {
            consecutive_5xx: Some(2),
            ..Default::default()
        };
        let (clock, d, _h) = setup(config, &["a"]);
        d.record("a", E500);
        d.record("a", E500);
        for _ in 0..10 {
            assert!(d.record("a", E500).is_none());
        }
        clock.advance(Duration::from_secs(30));
        d.sweep();
        assert_eq!(
            d.snapshot()[0].consecutive_5xx,
            0,
            "returned with a clean run"
        );
        assert!(d.record("a", E500).is_none(), "needs a full new run");
    }

    #[test]
    fn unknown_backend_ignored_and_drop_restores_health() {
        let (_c, d, health) = setup(OutlierConfig::default(), &["a", "b"]);
        assert!(d.record("ghost", E500).is_none());
        for _ in 0..5 {
            d.record("a", E500);
        }
        assert_eq!(health.is_available("a"), Some(false));
        drop(d);
        assert_eq!(health.is_available("a"), Some(true));
    }

    #[test]
    fn concurrent_failures_eject_once() {
        let clock = Arc::new(ManualClock::new());
        let d = Arc::new(OutlierDetector::new(
            OutlierConfig {
                consecutive_5xx: Some(3),
                ..Default::default()
            },
            clock,
        ));
        let health = HealthRegistry::default();
        d.sync(names(4), &health);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let d = Arc::clone(&d);
                std::thread::spawn(move || {
                    (0..1000).filter(|_| d.record("b0", E500).is_some()).count()
                })
            })
            .collect();
        let ejections: usize = handles
            .into_iter()
            .map(|h| h.join().unwrap_or(usize::MAX))
            .sum();
        assert_eq!(ejections, 1, "one ejection for one run of failures");
        assert_eq!(d.ejections_total("b0"), Some(1));
    }

    #[test]
    fn router_skips_ejected_backend_and_takes_it_back() {
        let router = Router::from_yaml(
            r#"
backends: [{name: a}, {name: b}, {name: c}]
routes: [{name: r, rules: [{backends: [{name: a}, {name: b}, {name: c}]}]}]
"#,
        )
        .expect("valid config");
        let clock = Arc::new(ManualClock::new());
        let d = OutlierDetector::new(OutlierConfig::default(), clock.clone());
        let names: Vec<String> = router
            .load()
            .backends()
            .iter()
            .map(|b| b.name().to_owned())
            .collect();
        d.sync(&names, router.health());
        let picks = |n: usize| -> HashMap<String, usize> {
            let table = router.load();
            let mut rng = rand::rng();
            let mut counts = HashMap::new();
            for _ in 0..n {
                let dec = table
                    .decide(&RequestInfo::get("http://x/"), &mut rng)
                    .expect("a route matches");
                let name = dec
                    .backend()
                    .map(|b| b.name().to_owned())
                    .unwrap_or_default();
                *counts.entry(name).or_insert(0) += 1;
            }
            counts
        };
        for _ in 0..5 {
            d.record("a", Outcome::Status(StatusCode::BAD_GATEWAY));
        }
        let during = picks(600);
        assert_eq!(
            during.get("a"),
            None,
            "ejected backend must not be chosen: {during:?}"
        );
        assert!(during.get("b").is_some_and(|&n| n > 0) && during.get("c").is_some_and(|&n| n > 0));
        clock.advance(Duration::from_secs(30));
        d.sweep();
        let after = picks(600);
        assert!(
            after.get("a").is_some_and(|&n| n > 100),
            "a is back: {after:?}"
        );
    }

    #[test]
    fn zero_durations_do_not_panic() {
        let config = OutlierConfig {
            consecutive_5xx: Some(1),
            interval: Duration::ZERO,
            base_ejection_time: Duration::ZERO,
            max_ejection_time: Duration::ZERO,
            ..Default::default()
        };
        let (clock, d, _h) = setup(config, &["a"]);
        clock.advance(Duration::from_secs(1));
        let e = d.record("a", E500).expect("ejects");
        assert_eq!(e.duration, Duration::ZERO);
        d.sweep();
        assert!(!d.is_ejected("a"));
        let huge = OutlierConfig {
            consecutive_5xx: Some(1),
            base_ejection_time: Duration::MAX,
            max_ejection_time: Duration::MAX,
            ..Default::default()
        };
        let (clock, d, _h) = setup(huge, &["a"]);
        clock.advance(Duration::from_secs(1));
        let e = d.record("a", E500).expect("ejects");
        assert_eq!(e.until, Timestamp::MAX);
        assert!(d.is_ejected("a"));
    }
}
