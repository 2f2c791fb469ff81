//! Progressive rollouts driven by this layer's statistics: the [`routing_rollout`]
//! state machine, fed by [`StatsRegistry`] / [`RoutingLayer`] counts, ticked on a
//! [`Clock`](crate::clock::Clock) by a [`Driver`] (an `async` [`run`](Driver::run)
//! loop on tokio, or [`tick`](Driver::tick) by hand).
//!
//! The plan, the checks, the semantics and the events are `routing_rollout`'s (see
//! its crate docs); this module only supplies what is I/O: the metrics
//! ([`MetricsSource`] for the stats registry and the layer) and the time.
//!
//! ```
//! use routing_rollout::{Checks, Rollout, RolloutPlan, RolloutPlanSpec, RolloutState, RolloutTarget};
//! use routing_tower::clock::{ManualClock, SharedClock};
//! use routing_tower::rollout::Driver;
//! use routing_tower::{outcome::Outcome, stats::StatsRegistry};
//! use std::{sync::Arc, time::Duration};
//!
//! let router = routing_core::Router::from_yaml(r#"
//! backends: [{name: v1}, {name: v2}]
//! routes:
//!   - name: shop
//!     rules:
//!       - name: main
//!         backends: [{name: v1}]
//! "#).unwrap();
//! let plan = RolloutPlan::try_from(RolloutPlanSpec {
//!     steps: vec![10.0, 100.0],
//!     hold: "30s".parse().unwrap(),
//!     max_step: None,
//!     checks: Checks { max_error_rate: Some(0.01), min_requests: 1, ..Checks::default() },
//! }).unwrap();
//! let target = RolloutTarget::http_rule("shop", "main", "v1", "v2");
//! let stats = Arc::new(StatsRegistry::new());
//! let clock = Arc::new(ManualClock::new());
//! let driver = Driver::new(Rollout::new(plan, target, router), stats.clone(), clock.clone() as SharedClock);
//!
//! driver.tick(); // step 1: 10 % to v2
//! assert_eq!(driver.state(), RolloutState::Running { step: 0, percent: 10.0 });
//! // What the layer records for rule `main`'s requests to v2.
//! let v2 = stats.rule_backend("shop", "main", "v2");
//! v2.record(Outcome::Status(http::StatusCode::OK), Duration::from_millis(3));
//! clock.advance(Duration::from_secs(30));
//! driver.tick(); // passed: step 2 (100 %)
//! v2.record(Outcome::Status(http::StatusCode::OK), Duration::from_millis(3));
//! clock.advance(Duration::from_secs(30));
//! driver.tick();
//! assert_eq!(driver.state(), RolloutState::Promoted);
//! ```

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use routing_core::Router;
use routing_rollout::{
    ApplySplit, BackendCounts, ControlError, LatencyHistogram, MetricsSource, Rollout,
    RolloutEvent, RolloutState, RolloutTarget, WindowFigures,
};

use crate::clock::SharedClock;
use crate::stats::{bucket_estimate, StatsRegistry, StatsSnapshot};
use crate::RoutingLayer;

/// A backend's statistics as the rollout controller reads them: completed tries,
/// errors (5xx and local failures; 4xx are the client's) and the latency histogram
/// with each bucket's estimate.
///
/// ```
/// use routing_tower::{outcome::Outcome, rollout::backend_counts, stats::BackendStats};
/// use std::time::Duration;
/// let s = BackendStats::new();
/// s.record(Outcome::Status(http::StatusCode::OK), Duration::from_millis(10));
/// s.record(Outcome::Status(http::StatusCode::BAD_GATEWAY), Duration::from_millis(10));
/// let c = backend_counts(&s.snapshot());
/// assert_eq!((c.completed, c.errors), (2, 1));
/// assert_eq!(c.latency.quantile(0.99), s.snapshot().quantile(0.99));
/// ```
#[must_use]
pub fn backend_counts(s: &StatsSnapshot) -> BackendCounts {
    BackendCounts {
        completed: s.completed(),
        errors: s.responses[4].saturating_add(s.local_failures()),
        latency: LatencyHistogram::from_buckets(
            s.latency
                .buckets
                .iter()
                .enumerate()
                .map(|(i, &c)| (bucket_estimate(i), c)),
        ),
    }
}

/// Per backend, and for an HTTP rule target per (route, rule, backend): a rollout
/// is judged on the driven rule's own requests, so traffic another rule forces
/// onto the candidate (say a `x-canary: true` header rule) does not count.
impl MetricsSource for StatsRegistry {
    fn backend_counts(&self, backend: &str) -> BackendCounts {
        self.get(backend)
            .map(|s| backend_counts(&s.snapshot()))
            .unwrap_or_default()
    }

    fn target_counts(&self, target: &RolloutTarget, backend: &str) -> BackendCounts {
        match target {
            RolloutTarget::HttpRule { route, rule, .. } => self
                .get_rule_backend(route, rule, backend)
                .map(|s| backend_counts(&s.snapshot()))
                .unwrap_or_default(),
            RolloutTarget::TcpService { .. } => self.backend_counts(backend),
        }
    }
}

impl MetricsSource for RoutingLayer {
    fn backend_counts(&self, backend: &str) -> BackendCounts {
        self.stats_registry().backend_counts(backend)
    }

    fn target_counts(&self, target: &RolloutTarget, backend: &str) -> BackendCounts {
        self.stats_registry().target_counts(target, backend)
    }
}

/// A [`Rollout`] with its metrics and its clock: ticks it, runs it, controls it.
///
/// All methods take `&self` (the rollout sits behind a mutex), so one
/// `Arc<Driver>` can be run by a loop and controlled from an admin handler. Splits go
/// through the rollout's [`ApplySplit`] — a [`Router`], whose
/// [`modify`](Router::modify) serialises them with file reloads.
pub struct Driver<M, T = Router> {
    rollout: Mutex<Rollout<T>>,
    metrics: M,
    clock: SharedClock,
}

impl<M: fmt::Debug, T: fmt::Debug> fmt::Debug for Driver<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("rollout", &self.rollout)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<M: MetricsSource, T: ApplySplit> Driver<M, T> {
    /// Drives `rollout` on `metrics` (cumulative counts, e.g. an
    /// `Arc<StatsRegistry>` or the [`RoutingLayer`]) and `clock`.
    pub fn new(rollout: Rollout<T>, metrics: M, clock: SharedClock) -> Self {
        Self {
            rollout: Mutex::new(rollout),
            metrics,
            clock,
        }
    }

    /// The clock's now, as the rollout's time.
    fn now(&self) -> Duration {
        Duration::from_nanos(self.clock.now().as_nanos())
    }

    fn lock(&self) -> MutexGuard<'_, Rollout<T>> {
        self.rollout.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the rollout (e.g. to read its plan or target).
    pub fn with<R>(&self, f: impl FnOnce(&Rollout<T>) -> R) -> R {
        f(&self.lock())
    }

    /// The metrics source.
    pub fn metrics(&self) -> &M {
        &self.metrics
    }

    /// [`Rollout::tick`] at the clock's now on the current metrics.
    pub fn tick(&self) -> Vec<RolloutEvent> {
        let now = self.now();
        self.lock().tick(now, &self.metrics)
    }

    /// Runs [`tick`](Self::tick) every `interval` (tokio time) until the rollout is
    /// over; returns the final state. Pausing does not end the loop.
    pub async fn run(&self, interval: Duration) -> RolloutState {
        loop {
            self.tick();
            let state = self.state();
            if state.is_terminal() {
                return state;
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// The current state.
    pub fn state(&self) -> RolloutState {
        self.lock().state().clone()
    }

    /// Every event so far, oldest first.
    pub fn events(&self) -> Vec<RolloutEvent> {
        self.lock().events().to_vec()
    }

    /// [`Rollout::candidate_percent`].
    pub fn candidate_percent(&self) -> f64 {
        self.lock().candidate_percent()
    }

    /// The current step's window so far (`None` unless running).
    pub fn current_figures(&self) -> Option<WindowFigures> {
        let now = self.now();
        self.lock().current_figures(now, &self.metrics)
    }

    /// [`Rollout::pause`] now.
    ///
    /// # Errors
    /// See [`Rollout::pause`].
    pub fn pause(&self) -> Result<Vec<RolloutEvent>, ControlError> {
        let now = self.now();
        self.lock().pause(now)
    }

    /// [`Rollout::resume`] now, with a fresh window from the current metrics.
    ///
    /// # Errors
    /// See [`Rollout::resume`].
    pub fn resume(&self) -> Result<Vec<RolloutEvent>, ControlError> {
        let now = self.now();
        self.lock().resume(now, &self.metrics)
    }

    /// [`Rollout::promote`] now.
    ///
    /// # Errors
    /// See [`Rollout::promote`].
    pub fn promote(&self) -> Result<Vec<RolloutEvent>, ControlError> {
        let now = self.now();
        self.lock().promote(now)
    }

    /// [`Rollout::abort`] now.
    ///
    /// # Errors
    /// See [`Rollout::abort`].
    pub fn abort(&self) -> Result<Vec<RolloutEvent>, ControlError> {
        let now = self.now();
        self.lock().abort(now)
    }
}

/// What [`RolloutCollector`](crate::metrics::RolloutCollector) reads of a driver,
/// whatever its metrics and applier types.
pub(crate) trait Status: fmt::Debug + Send + Sync {
    fn state(&self) -> RolloutState;
    fn candidate_percent(&self) -> f64;
}

impl<M, T> Status for Driver<M, T>
where
    M: MetricsSource + Send + Sync,
    T: ApplySplit + Send,
{
    fn state(&self) -> RolloutState {
        Driver::state(self)
    }
    fn candidate_percent(&self) -> f64 {
        Driver::candidate_percent(self)
    }
}
