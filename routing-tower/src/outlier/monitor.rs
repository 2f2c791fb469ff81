//! One backend's counters and ejection state, and the ejection-time arithmetic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use routing_core::{BackendHealth, OutlierDetection};

use crate::clock::{duration_nanos, Timestamp};

/// Length of an ejection with multiplier `m` under `config`.
pub(super) fn ejection_time(config: &OutlierDetection, m: u32) -> Duration {
    let base = duration_nanos(config.base_ejection_time) as u128;
    let cap = base.max(duration_nanos(config.max_ejection_time) as u128);
    let t = (base * u128::from(m)).min(cap);
    // `t ≤ cap ≤ u64::MAX`.
    Duration::from_nanos(u64::try_from(t).unwrap_or(u64::MAX))
}

/// The next multiplier after `m`: one more, unless `base × m` already reached the cap.
pub(super) fn next_multiplier(config: &OutlierDetection, m: u32) -> u32 {
    let base = duration_nanos(config.base_ejection_time) as u128;
    let cap = base.max(duration_nanos(config.max_ejection_time) as u128);
    if m == 0 || base * u128::from(m) < cap {
        m.saturating_add(1)
    } else {
        m
    }
}

/// A threshold in force: `Some(0)` disables, as Istio's 0 does.
pub(super) fn threshold(t: Option<u32>) -> Option<u32> {
    t.filter(|&t| t > 0)
}

/// `ejected_until` of a backend in service.
pub(super) const IN_SERVICE: u64 = 0;
/// `next_deadline` when nothing is ejected.
pub(super) const NO_DEADLINE: u64 = u64::MAX;

#[derive(Debug)]
pub(super) struct Monitor {
    pub(super) name: Arc<str>,
    pub(super) health: Arc<BackendHealth>,
    pub(super) consecutive_5xx: AtomicU32,
    pub(super) consecutive_gateway: AtomicU32,
    /// End of the current ejection in clock nanoseconds (≥ 1), or `IN_SERVICE`.
    pub(super) ejected_until: AtomicU64,
    pub(super) ejections_total: AtomicU64,
    /// Written under the detector's mutex only.
    pub(super) multiplier: AtomicU32,
    /// When the last ejection ended (the decay's origin); written under the mutex.
    pub(super) returned_at: AtomicU64,
}

impl Monitor {
    pub(super) fn new(name: Arc<str>, health: Arc<BackendHealth>) -> Self {
        Self {
            name,
            health,
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway: AtomicU32::new(0),
            ejected_until: AtomicU64::new(IN_SERVICE),
            ejections_total: AtomicU64::new(0),
            multiplier: AtomicU32::new(0),
            returned_at: AtomicU64::new(0),
        }
    }

    pub(super) fn reset_counters(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
    }

    pub(super) fn is_ejected_at(&self, now: Timestamp) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        until != IN_SERVICE && now.as_nanos() < until
    }

    /// The multiplier after decay: one less per full `interval` in service.
    pub(super) fn decayed_multiplier(&self, now: Timestamp, interval: Duration) -> u32 {
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
pub(super) struct Backends {
    pub(super) by_name: HashMap<Arc<str>, Arc<Monitor>>,
}
