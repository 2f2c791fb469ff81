//! Outlier detection: passive ejection of backends that fail in a row, with the
//! semantics of Envoy's outlier detection as Istio's `DestinationRule` configures it.
//!
//! The layer reports how every try ended ([`OutlierDetector::record`]). A backend
//! that returns [`consecutive_5xx`](routing_core::OutlierDetection::consecutive_5xx) 5xx responses (or
//! local failures) in a row, or
//! [`consecutive_gateway_errors`](routing_core::OutlierDetection::consecutive_gateway_errors)
//! 502/503/504 responses (or local failures) in a row, is ejected: its
//! [`BackendHealth`](routing_core::BackendHealth) flag in routing-core's [`HealthRegistry`] is cleared, so selection
//! skips it (subject to routing-core's panic threshold), until its ejection time is
//! over. Nothing runs in the background: every call checks one atomic deadline and
//! returns expired ejections when it is due, so a backend comes back on the first
//! call after its time (call [`OutlierDetector::sweep`] before routing, or
//! periodically, if traffic can stop altogether).
//!
//! ```
//! use routing_core::Router;
//! use routing_tower::clock::ManualClock;
//! use routing_core::OutlierDetection;
//! use routing_tower::outcome::Outcome;
//! use routing_tower::outlier::OutlierDetector;
//! use http::StatusCode;
//! use std::{sync::Arc, time::Duration};
//!
//! let router = Router::from_yaml(r#"
//! backends: [{name: a}, {name: b}]
//! routes: [{name: r, rules: [{backends: [{name: a}, {name: b}]}]}]
//! "#)?;
//! let clock = Arc::new(ManualClock::new());
//! let detector = OutlierDetector::new(OutlierDetection::default(), clock.clone());
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
//!   gateway errors included — and every [`Failure`](crate::outcome::Failure) (connect failure,
//!   reset, timeout, other; Envoy maps them to 503/504 when `split_external_local_origin_errors` is
//!   off, its default) adds one to the 5xx counter; 502, 503, 504 and local failures
//!   add one to the gateway counter, and any other 5xx clears it; a response below 500
//!   clears both. Reaching a threshold detects an outlier (a gateway detection wins if
//!   both are reached by the same try); both counters are then cleared, whether or not
//!   the ejection is allowed, so the next run of failures is detected afresh. Tries
//!   finishing while the backend is ejected are not counted.
//! * Limit (Envoy `max_ejection_percent`): an ejection is allowed while fewer than
//!   `⌊max_ejection_percent × backends / 100⌋` backends are ejected, counted over the
//!   current set ([`sync`](OutlierDetector::sync)). With
//!   [`always_eject_one`](OutlierDetector::always_eject_one) (the default) one ejection
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
//!   drops by one per full [`interval`](routing_core::OutlierDetection::interval) since it returned.
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use arc_swap::ArcSwap;
use routing_core::{HealthRegistry, OutlierDetection};

use crate::clock::{SharedClock, Timestamp};
use crate::outcome::Outcome;

mod monitor;

use monitor::{
    ejection_time, next_multiplier, threshold, Backends, Monitor, IN_SERVICE, NO_DEADLINE,
};

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

/// The [`OutlierDetector::with_listener`] callback.
struct Listener(Box<ListenerFn>);

type ListenerFn = dyn Fn(&str, bool) + Send + Sync;

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Listener")
    }
}

/// Ejects backends that fail in a row; see the [module docs](self).
///
/// One detector serves one set of backends (the layer's), shared by every request
/// (`Arc<OutlierDetector>`). Dropping it returns its ejected backends to service.
#[derive(Debug)]
pub struct OutlierDetector {
    config: ArcSwap<OutlierDetection>,
    clock: SharedClock,
    backends: ArcSwap<Backends>,
    always_eject_one: bool,
    listener: Option<Listener>,
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
    /// use routing_tower::{clock::SystemClock, outlier::OutlierDetector};
    /// let d = OutlierDetector::new(routing_core::OutlierDetection::default(), SystemClock::shared());
    /// assert_eq!(d.ejected_count(), 0);
    /// ```
    #[must_use]
    pub fn new(config: OutlierDetection, clock: SharedClock) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            clock,
            backends: ArcSwap::from_pointee(Backends::default()),
            always_eject_one: true,
            listener: None,
            next_deadline: AtomicU64::new(NO_DEADLINE),
            ejected: AtomicUsize::new(0),
            slow: Mutex::new(()),
        }
    }

    /// Calls `listener` with a backend's name and `true` when the detector ejects
    /// it, `false` when it returns to service (the routing layer keeps its stats'
    /// ejection gauge with it). The listener runs under the detector's lock: keep it
    /// short and do not call the detector from it.
    ///
    /// ```
    /// use routing_tower::{clock::ManualClock, outcome::Failure, outlier::OutlierDetector};
    /// use std::sync::{Arc, Mutex};
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let config = routing_core::OutlierDetection { consecutive_5xx: Some(1), ..Default::default() };
    /// let d = OutlierDetector::new(config, Arc::new(ManualClock::new()))
    ///     .with_listener(move |name: &str, ejected: bool| log.lock().unwrap().push((name.to_owned(), ejected)));
    /// d.sync(["a"], &routing_core::HealthRegistry::default());
    /// d.record("a", Failure::Timeout.into());
    /// assert_eq!(*seen.lock().unwrap(), [("a".to_owned(), true)]);
    /// ```
    #[must_use]
    pub fn with_listener(mut self, listener: impl Fn(&str, bool) + Send + Sync + 'static) -> Self {
        self.listener = Some(Listener(Box::new(listener)));
        self
    }

    /// Whether one ejection is allowed when none is active even if
    /// `max_ejection_percent` allows none (Envoy's historical behaviour,
    /// `always_eject_one_host`; default `true`, as routing-core's
    /// [`OutlierDetection`] documents "one is always allowed").
    ///
    /// ```
    /// use routing_tower::{clock::SystemClock, outlier::OutlierDetector};
    /// let d = OutlierDetector::new(Default::default(), SystemClock::shared()).always_eject_one(false);
    /// assert!(!d.ejects_one_always());
    /// ```
    #[must_use]
    pub fn always_eject_one(mut self, yes: bool) -> Self {
        self.always_eject_one = yes;
        self
    }

    /// The [`always_eject_one`](Self::always_eject_one) setting.
    #[must_use]
    pub fn ejects_one_always(&self) -> bool {
        self.always_eject_one
    }

    /// The settings in force.
    #[must_use]
    pub fn config(&self) -> OutlierDetection {
        **self.config.load()
    }

    /// Replaces the settings (on a config swap). Running ejections keep their end;
    /// counters keep counting toward the new thresholds.
    ///
    /// ```
    /// use routing_core::OutlierDetection;
    /// use routing_tower::{clock::SystemClock, outlier::OutlierDetector};
    /// let d = OutlierDetector::new(OutlierDetection::default(), SystemClock::shared());
    /// d.set_config(OutlierDetection { max_ejection_percent: 50, ..Default::default() });
    /// assert_eq!(d.config().max_ejection_percent, 50);
    /// ```
    pub fn set_config(&self, config: OutlierDetection) {
        self.config.store(Arc::new(config));
    }

    /// Makes `names` the set of backends. Backends that stay keep their counters,
    /// ejections and multipliers; new ones start with clean counters, and their
    /// ejections will drive their flag in `health` (pass routing-core's
    /// [`Router::health`](routing_core::Router::health), the registry its selection
    /// reads). Backends that leave while ejected are marked available again.
    ///
    /// ```
    /// use routing_tower::{clock::SystemClock, outlier::OutlierDetector};
    /// let health = routing_core::HealthRegistry::default();
    /// let d = OutlierDetector::new(routing_core::OutlierDetection::default(), SystemClock::shared());
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
                    let m = Monitor::new(Arc::clone(&key), health.handle(name));
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
    /// use routing_tower::{clock::SystemClock, outcome::Outcome, outlier::OutlierDetector};
    /// use http::StatusCode;
    /// let d = OutlierDetector::new(routing_core::OutlierDetection { consecutive_5xx: Some(2), ..Default::default() },
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
            if let Some(t) = threshold(config.consecutive_gateway_errors) {
                if run.saturating_add(1) >= t {
                    reason = Some(EjectionReason::ConsecutiveGatewayErrors);
                }
            }
        } else if m.consecutive_gateway.load(Ordering::Relaxed) != 0 {
            m.consecutive_gateway.store(0, Ordering::Relaxed);
        }
        let run = m.consecutive_5xx.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = threshold(config.consecutive_5xx) {
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
    /// use routing_tower::{clock::SystemClock, outlier::OutlierDetector};
    /// let d = OutlierDetector::new(routing_core::OutlierDetection::default(), SystemClock::shared());
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
    /// use routing_tower::{clock::SystemClock, outlier::OutlierDetector};
    /// let d = OutlierDetector::new(routing_core::OutlierDetection::default(), SystemClock::shared());
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
    /// use routing_tower::{clock::{SystemClock, Timestamp}, outlier::OutlierDetector};
    /// let d = OutlierDetector::new(routing_core::OutlierDetection::default(), SystemClock::shared());
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

    fn notify(&self, backend: &str, ejected: bool) {
        if let Some(l) = &self.listener {
            (l.0)(backend, ejected);
        }
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
        self.notify(&m.name, false);
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
        config: &OutlierDetection,
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
        let allowed = (total.saturating_mul(percent) / 100).max(usize::from(self.always_eject_one));
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
        let multiplier = next_multiplier(config, m.decayed_multiplier(now, config.interval));
        let duration = ejection_time(config, multiplier);
        let until = (now + duration).as_nanos().max(1);
        m.multiplier.store(multiplier, Ordering::Relaxed);
        m.ejected_until.store(until, Ordering::Release);
        let ejections_total = m.ejections_total.fetch_add(1, Ordering::Relaxed) + 1;
        self.ejected.fetch_add(1, Ordering::AcqRel);
        if until < self.next_deadline.load(Ordering::Acquire) {
            self.next_deadline.store(until, Ordering::Release);
        }
        m.health.set_available(false);
        self.notify(&m.name, true);
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
mod tests;
