//! The controller's input: cumulative per-backend counts, and where they come from.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::RolloutTarget;

/// A latency histogram: sample counts per bucket, each bucket named by the value a
/// quantile falling in it reports (its estimate, e.g. the bucket's midpoint).
///
/// Counts are cumulative like the rest of [`BackendCounts`]; [`since`](Self::since)
/// takes the samples of a window. A caller with raw samples can
/// [`record`](Self::record) exact values (one bucket per distinct value).
///
/// ```
/// use routing_rollout::LatencyHistogram;
/// use std::time::Duration;
/// let mut h = LatencyHistogram::default();
/// h.record(Duration::from_millis(10), 99);
/// h.record(Duration::from_millis(100), 1);
/// assert_eq!(h.count(), 100);
/// assert_eq!(h.quantile(0.99), Some(Duration::from_millis(10)));
/// assert_eq!(h.quantile(1.0), Some(Duration::from_millis(100)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// `(estimate, count)`, sorted by estimate, estimates unique.
    buckets: Vec<(Duration, u64)>,
}

impl LatencyHistogram {
    /// A histogram of `(estimate, count)` buckets, in any order (counts of equal
    /// estimates add up).
    ///
    /// ```
    /// use routing_rollout::LatencyHistogram;
    /// use std::time::Duration;
    /// let h = LatencyHistogram::from_buckets([(Duration::from_millis(5), 2), (Duration::from_millis(1), 3)]);
    /// assert_eq!(h.quantile(0.5), Some(Duration::from_millis(1)));
    /// ```
    #[must_use]
    pub fn from_buckets(buckets: impl IntoIterator<Item = (Duration, u64)>) -> Self {
        let mut h = Self::default();
        for (estimate, count) in buckets {
            h.record(estimate, count);
        }
        h
    }

    /// Adds `count` samples to the bucket of `estimate`.
    ///
    /// ```
    /// let mut h = routing_rollout::LatencyHistogram::default();
    /// h.record(std::time::Duration::from_millis(3), 2);
    /// assert_eq!(h.count(), 2);
    /// ```
    pub fn record(&mut self, estimate: Duration, count: u64) {
        if count == 0 {
            return;
        }
        match self.buckets.binary_search_by_key(&estimate, |b| b.0) {
            Ok(i) => self.buckets[i].1 = self.buckets[i].1.saturating_add(count),
            Err(i) => self.buckets.insert(i, (estimate, count)),
        }
    }

    /// Number of samples.
    ///
    /// ```
    /// assert_eq!(routing_rollout::LatencyHistogram::default().count(), 0);
    /// ```
    #[must_use]
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, b| a.saturating_add(b.1))
    }

    /// Estimated `q`-quantile (`q` clamped to `0.0 ..= 1.0`, NaN read as 0): the
    /// estimate of the bucket holding the sample of rank `max(1, ⌈q·n⌉)`. `None`
    /// without samples.
    ///
    /// ```
    /// assert_eq!(routing_rollout::LatencyHistogram::default().quantile(0.99), None);
    /// ```
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<std::time::Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // `as` saturates; the product is within 0 ..= n.
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0u64;
        for &(estimate, c) in &self.buckets {
            seen = seen.saturating_add(c);
            if seen >= rank {
                return Some(estimate);
            }
        }
        self.buckets.last().map(|b| b.0)
    }

    /// The samples recorded after `earlier` (counts subtracted per bucket, saturating).
    ///
    /// ```
    /// use routing_rollout::LatencyHistogram;
    /// use std::time::Duration;
    /// let t0 = LatencyHistogram::from_buckets([(Duration::from_millis(1), 5)]);
    /// let t1 = LatencyHistogram::from_buckets([(Duration::from_millis(1), 5), (Duration::from_millis(9), 1)]);
    /// assert_eq!(t1.since(&t0).quantile(0.5), Some(Duration::from_millis(9)));
    /// ```
    #[must_use]
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let buckets = self
            .buckets
            .iter()
            .filter_map(|&(estimate, c)| {
                let before = earlier
                    .buckets
                    .binary_search_by_key(&estimate, |b| b.0)
                    .map_or(0, |i| earlier.buckets[i].1);
                let d = c.saturating_sub(before);
                (d > 0).then_some((estimate, d))
            })
            .collect();
        LatencyHistogram { buckets }
    }
}

/// One backend's totals so far, as a metrics source reports them; the controller
/// takes differences itself (a window is `now.since(&at_step_start)`).
///
/// ```
/// use routing_rollout::BackendCounts;
/// let t0 = BackendCounts { completed: 100, errors: 1, ..Default::default() };
/// let t1 = BackendCounts { completed: 150, errors: 6, ..Default::default() };
/// let w = t1.since(&t0);
/// assert_eq!((w.completed, w.errors, w.error_rate()), (50, 5, Some(0.1)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendCounts {
    /// Completed requests (responses and local failures).
    pub completed: u64,
    /// Failed requests: 5xx responses and local failures (connect, reset, timeout).
    pub errors: u64,
    /// Response latencies.
    pub latency: LatencyHistogram,
}

impl BackendCounts {
    /// The traffic between `earlier` and `self` (saturating at zero).
    #[must_use]
    pub fn since(&self, earlier: &BackendCounts) -> BackendCounts {
        BackendCounts {
            completed: self.completed.saturating_sub(earlier.completed),
            errors: self.errors.saturating_sub(earlier.errors),
            latency: self.latency.since(&earlier.latency),
        }
    }

    /// `errors / completed`; `None` when nothing completed.
    ///
    /// ```
    /// assert_eq!(routing_rollout::BackendCounts::default().error_rate(), None);
    /// ```
    #[must_use]
    pub fn error_rate(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.errors as f64 / self.completed as f64)
    }
}

/// Cumulative counts per backend name. routing-tower implements it for its stats
/// registry and layer; tests pass a map.
///
/// A rollout reads [`target_counts`](Self::target_counts): the counts of the traffic
/// the target's split decides. For an HTTP rule that is the rule's own requests —
/// requests another rule sends to the candidate (a header match such as
/// `x-canary: true` forcing it) must not dilute its error rate. The provided method
/// falls back to the backend's totals, for sources that cannot tell rules apart
/// (a map in a test, an L4 service); routing-tower's registry and layer answer per
/// rule.
///
/// ```
/// use routing_rollout::{BackendCounts, MetricsSource};
/// use std::collections::HashMap;
/// let mut m = HashMap::new();
/// m.insert("v2".to_owned(), BackendCounts { completed: 3, ..Default::default() });
/// assert_eq!(m.backend_counts("v2").completed, 3);
/// assert_eq!(m.backend_counts("nobody").completed, 0);
/// ```
pub trait MetricsSource: fmt::Debug {
    /// The totals of `backend` so far; zeroes for a backend never seen.
    fn backend_counts(&self, backend: &str) -> BackendCounts;

    /// The counts of `backend` within the traffic `target` splits (default: the
    /// backend's totals, [`backend_counts`](Self::backend_counts)).
    ///
    /// ```
    /// use routing_rollout::{BackendCounts, MetricsSource, RolloutTarget};
    /// use std::collections::HashMap;
    /// let mut m = HashMap::new();
    /// m.insert("v2".to_owned(), BackendCounts { completed: 3, ..Default::default() });
    /// let t = RolloutTarget::http_rule("shop", "main", "v1", "v2");
    /// assert_eq!(m.target_counts(&t, "v2").completed, 3);
    /// ```
    fn target_counts(&self, target: &RolloutTarget, backend: &str) -> BackendCounts {
        let _ = target;
        self.backend_counts(backend)
    }
}

impl<S: std::hash::BuildHasher> MetricsSource for HashMap<String, BackendCounts, S> {
    fn backend_counts(&self, backend: &str) -> BackendCounts {
        self.get(backend).cloned().unwrap_or_default()
    }
}

impl MetricsSource for BTreeMap<String, BackendCounts> {
    fn backend_counts(&self, backend: &str) -> BackendCounts {
        self.get(backend).cloned().unwrap_or_default()
    }
}

impl<T: MetricsSource + ?Sized> MetricsSource for &T {
    fn backend_counts(&self, backend: &str) -> BackendCounts {
        (**self).backend_counts(backend)
    }
    fn target_counts(&self, target: &RolloutTarget, backend: &str) -> BackendCounts {
        (**self).target_counts(target, backend)
    }
}

impl<T: MetricsSource + ?Sized> MetricsSource for Arc<T> {
    fn backend_counts(&self, backend: &str) -> BackendCounts {
        (**self).backend_counts(backend)
    }
    fn target_counts(&self, target: &RolloutTarget, backend: &str) -> BackendCounts {
        (**self).target_counts(target, backend)
    }
}
