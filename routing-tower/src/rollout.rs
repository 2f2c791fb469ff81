//! Progressive delivery: a [`Rollout`] shifts traffic from a stable backend to a
//! candidate step by step, judges every step on live metrics and rolls back on its own.
//!
//! # Pieces
//!
//! * A [`WeightTarget`] is a place whose split can be set. [`RouterRuleTarget`] drives
//!   one rule of a [`routing_core::Router`] (HTTP); an L4 balancer (routing-ebpf's
//!   `XdpBalancer`) can implement the same trait by rewriting its route table and
//!   applying it.
//! * A [`MetricsSource`] gives cumulative per-backend [`StatsSnapshot`]s; it is
//!   implemented for [`StatsRegistry`] and [`RoutingLayer`], and tests inject their own.
//! * A [`RolloutPlan`] (validated from a plain [`RolloutPlanSpec`]) lists the steps,
//!   how long each holds, and the [`Checks`] that gate promotion.
//! * The [`Rollout`] controller is driven by [`Rollout::tick`] (or the
//!   [`Rollout::run`] loop) and reads time from an injectable [`Clock`](crate::clock::Clock), so whole
//!   rollouts run in virtual time.
//!
//! # Semantics
//!
//! * The first `tick` sets the first step's split. Each step has a *window*: the
//!   traffic since the step began (deltas through [`StatsSnapshot::since`]).
//! * While the candidate's window has fewer than `min_requests` completed requests
//!   there is no verdict and the step waits: **the hold extends** until enough traffic
//!   arrived (a [`RolloutEventKind::Waiting`] event is recorded once per step when the
//!   hold elapsed without enough traffic).
//! * Once the window has enough traffic it is judged on every tick: a failed check
//!   rolls back to 100 % stable at once ([`RolloutState::RolledBack`] with the reason
//!   and the figures). When the hold has elapsed and every check passes, the next step
//!   starts; after the last step (which must be 100 %) the rollout is
//!   [`RolloutState::Promoted`].
//! * Checks comparing with stable (`max_error_ratio_vs_stable`,
//!   `max_p99_ratio_vs_stable`) are skipped when stable itself has fewer than
//!   `min_requests` in the window (e.g. at 100 %): there is no baseline to compare to.
//!   Stable's error rate is floored at one error in its window, so a spotless stable
//!   does not turn a single candidate error into a rollback.
//! * Controls: [`pause`](Rollout::pause) freezes the split; [`resume`](Rollout::resume)
//!   restarts the current step with a fresh window; [`promote`](Rollout::promote) sets
//!   100 % candidate; [`abort`](Rollout::abort) sets 100 % stable.
//! * If the target refuses a split (e.g. the rule was removed from the config) the
//!   live table is untouched, the error is recorded and the rollout stops in
//!   [`RolloutState::Failed`]; later ticks do nothing.
//!
//! Every transition is a `tracing` event (target `routing_tower::rollout`) with its
//! figures, and is recorded as a typed [`RolloutEvent`] ([`Rollout::events`]; `tick`
//! and the controls return the events they caused).
//!
//! # Sticky sessions
//!
//! With session persistence on a rule, a step only moves the share of **new**
//! sessions: a client holding a valid cookie stays on its backend across weight
//! changes. On rollback (or abort) the candidate's weight becomes 0; the layer only
//! honours a cookie whose backend has a weight above 0, so a client pinned to the
//! candidate gets a fresh choice — stable — and a new cookie on its next request.
//! After a promotion, clients pinned to stable move to the candidate the same way.
//!
//! # Example
//!
//! ```
//! use routing_tower::clock::{ManualClock, SharedClock};
//! use routing_tower::rollout::{Checks, Rollout, RolloutPlan, RolloutPlanSpec, RolloutState, RouterRuleTarget};
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
//!     checks: Checks { max_error_rate: Some(0.01), min_requests: 1, ..Checks::default() },
//! }).unwrap();
//! let target = RouterRuleTarget::new(router.clone(), "shop", "main", "v1", "v2");
//! let stats = Arc::new(StatsRegistry::new());
//! let clock = Arc::new(ManualClock::new());
//! let rollout = Rollout::new(plan, target, stats.clone(), clock.clone() as SharedClock);
//!
//! rollout.tick(); // step 1: 10 % to v2
//! assert_eq!(rollout.state(), RolloutState::Running { step: 0, percent: 10.0 });
//! stats.get_or_insert("v2").record(Outcome::Status(http::StatusCode::OK), Duration::from_millis(3));
//! clock.advance(Duration::from_secs(30));
//! rollout.tick(); // passed: step 2 (100 %)
//! stats.get_or_insert("v2").record(Outcome::Status(http::StatusCode::OK), Duration::from_millis(3));
//! clock.advance(Duration::from_secs(30));
//! rollout.tick();
//! assert_eq!(rollout.state(), RolloutState::Promoted);
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use routing_core::{ConfigDuration, ConfigError, Router};

use crate::clock::{SharedClock, Timestamp};
use crate::stats::{StatsRegistry, StatsSnapshot};
use crate::RoutingLayer;

/// Weights written by [`RouterRuleTarget`] sum to this, so a split has a resolution of
/// 0.01 %.
const WEIGHT_SCALE: u64 = 10_000;

// ---------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------

/// A place whose stable/candidate split can be set: a routing-core rule, an XDP VIP.
///
/// Implementations apply the split atomically or not at all: on error the previous
/// split must still be live.
///
/// ```
/// use routing_tower::rollout::{TargetError, WeightTarget};
/// use std::sync::Mutex;
///
/// #[derive(Debug, Default)]
/// struct Recorder(Mutex<Vec<f64>>);
/// impl WeightTarget for Recorder {
///     fn set_split(&self, candidate_percent: f64) -> Result<(), TargetError> {
///         self.0.lock().unwrap().push(candidate_percent);
///         Ok(())
///     }
///     fn describe(&self) -> String {
///         "recorder".into()
///     }
/// }
/// let r = Recorder::default();
/// r.set_split(5.0).unwrap();
/// assert_eq!(*r.0.lock().unwrap(), vec![5.0]);
/// ```
pub trait WeightTarget: Send + Sync + fmt::Debug {
    /// Sends `candidate_percent` (`0.0 ..= 100.0`) of new traffic to the candidate and
    /// the rest to stable.
    fn set_split(&self, candidate_percent: f64) -> Result<(), TargetError>;

    /// A short description for events and logs, e.g. `route shop rule main`.
    fn describe(&self) -> String;
}

impl<T: WeightTarget + ?Sized> WeightTarget for Arc<T> {
    fn set_split(&self, candidate_percent: f64) -> Result<(), TargetError> {
        (**self).set_split(candidate_percent)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Why a [`WeightTarget`] refused a split; the previous split is still live.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The percentage is not a finite number in `0 ..= 100`.
    #[error("candidate percent {0} is not in 0..=100")]
    InvalidPercent(f64),
    /// The live config has no route of this name.
    #[error("route `{route}` not found")]
    RouteNotFound {
        /// The route's name.
        route: String,
    },
    /// The route has no rule of this name.
    #[error("rule `{rule}` not found in route `{route}`")]
    RuleNotFound {
        /// The route's name.
        route: String,
        /// The rule's name.
        rule: String,
    },
    /// The router rejected the new config (e.g. a backend is not declared).
    #[error("config rejected: {0}")]
    Rejected(#[from] ConfigError),
    /// Any other failure of a target (for implementations outside this crate).
    #[error("{0}")]
    Other(#[source] crate::BoxError),
}

/// The rule `rule` of route `route` in a [`Router`]: the split rewrites the weights of
/// `stable` and `candidate` in a copy of the live config and swaps it in with
/// [`Router::update`] (validated: an invalid config keeps the old table).
///
/// Other backends of the rule keep their weights; `stable` and `candidate` are added
/// to the rule if missing (both must be declared backends). Weights are written as
/// parts of 10 000 (stable + candidate = 10 000).
///
/// The update is a read-modify-write of the whole config: an edit made by someone else
/// between this target's read and its swap is overwritten. Apply config changes
/// between ticks, or pause the rollout while editing.
///
/// ```
/// use routing_tower::rollout::{RouterRuleTarget, WeightTarget};
/// let router = routing_core::Router::from_yaml(r#"
/// backends: [{name: v1}, {name: v2}]
/// routes: [{name: shop, rules: [{name: main, backends: [{name: v1}]}]}]
/// "#).unwrap();
/// let t = RouterRuleTarget::new(router.clone(), "shop", "main", "v1", "v2");
/// t.set_split(25.0).unwrap();
/// assert_eq!(t.weights().unwrap(), (7_500, 2_500));
/// ```
#[derive(Debug, Clone)]
pub struct RouterRuleTarget {
    router: Router,
    route: String,
    rule: String,
    stable: String,
    candidate: String,
}

impl RouterRuleTarget {
    /// The rule named `rule` of route `route`, splitting between `stable` and
    /// `candidate` (backend names).
    pub fn new(
        router: Router,
        route: impl Into<String>,
        rule: impl Into<String>,
        stable: impl Into<String>,
        candidate: impl Into<String>,
    ) -> Self {
        Self {
            router,
            route: route.into(),
            rule: rule.into(),
            stable: stable.into(),
            candidate: candidate.into(),
        }
    }

    /// The live weights `(stable, candidate)` of the rule (0 for a backend not in it).
    ///
    /// ```
    /// use routing_tower::rollout::RouterRuleTarget;
    /// let router = routing_core::Router::from_yaml(r#"
    /// backends: [{name: v1}, {name: v2}]
    /// routes: [{name: shop, rules: [{name: main, backends: [{name: v1, weight: 3}]}]}]
    /// "#).unwrap();
    /// let t = RouterRuleTarget::new(router, "shop", "main", "v1", "v2");
    /// assert_eq!(t.weights().unwrap(), (3, 0));
    /// ```
    pub fn weights(&self) -> Result<(u64, u64), TargetError> {
        let table = self.router.snapshot();
        let route = table
            .config()
            .routes
            .iter()
            .find(|r| r.name == self.route)
            .ok_or_else(|| self.route_not_found())?;
        let rule = route
            .rules
            .iter()
            .find(|r| r.name.as_deref() == Some(self.rule.as_str()))
            .ok_or_else(|| self.rule_not_found())?;
        let weight = |name: &str| {
            rule.backends
                .iter()
                .filter(|b| b.name == name)
                .map(|b| b.weight)
                .sum::<u64>()
        };
        Ok((weight(&self.stable), weight(&self.candidate)))
    }

    fn route_not_found(&self) -> TargetError {
        TargetError::RouteNotFound {
            route: self.route.clone(),
        }
    }

    fn rule_not_found(&self) -> TargetError {
        TargetError::RuleNotFound {
            route: self.route.clone(),
            rule: self.rule.clone(),
        }
    }
}

/// The `(stable, candidate)` weights for a candidate percentage, summing to 10 000
/// (0.01 % resolution): what every [`WeightTarget`] of this crate and of routing-ebpf
/// writes.
///
/// ```
/// use routing_tower::rollout::split_weights;
/// assert_eq!(split_weights(25.0).unwrap(), (7_500, 2_500));
/// assert!(split_weights(101.0).is_err());
/// ```
pub fn split_weights(candidate_percent: f64) -> Result<(u64, u64), TargetError> {
    if !candidate_percent.is_finite() || !(0.0..=100.0).contains(&candidate_percent) {
        return Err(TargetError::InvalidPercent(candidate_percent));
    }
    // In 0 ..= 10_000 by the check above, so the cast is exact.
    let candidate = (candidate_percent * (WEIGHT_SCALE as f64) / 100.0).round() as u64;
    Ok((WEIGHT_SCALE - candidate.min(WEIGHT_SCALE), candidate))
}

impl WeightTarget for RouterRuleTarget {
    fn set_split(&self, candidate_percent: f64) -> Result<(), TargetError> {
        let (stable_w, candidate_w) = split_weights(candidate_percent)?;
        let mut config = self.router.snapshot().config().clone();
        let route = config
            .routes
            .iter_mut()
            .find(|r| r.name == self.route)
            .ok_or_else(|| self.route_not_found())?;
        let rule = route
            .rules
            .iter_mut()
            .find(|r| r.name.as_deref() == Some(self.rule.as_str()))
            .ok_or_else(|| self.rule_not_found())?;
        for (name, weight) in [(&self.stable, stable_w), (&self.candidate, candidate_w)] {
            match rule.backends.iter_mut().find(|b| &b.name == name) {
                Some(b) => b.weight = weight,
                None => rule.backends.push(routing_core::WeightedBackendConfig {
                    name: name.clone(),
                    weight,
                }),
            }
        }
        self.router.update(config)?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "route `{}` rule `{}` ({} -> {})",
            self.route, self.rule, self.stable, self.candidate
        )
    }
}

// ---------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------

/// Cumulative statistics per backend name; the controller takes differences itself.
///
/// ```
/// use routing_tower::rollout::MetricsSource;
/// use routing_tower::stats::StatsRegistry;
/// let r = StatsRegistry::new();
/// assert_eq!(MetricsSource::backend_stats(&r, "nobody").requests, 0);
/// ```
pub trait MetricsSource: Send + Sync + fmt::Debug {
    /// The totals of `backend` so far; zeroes for a backend never seen.
    fn backend_stats(&self, backend: &str) -> StatsSnapshot;
}

impl MetricsSource for StatsRegistry {
    fn backend_stats(&self, backend: &str) -> StatsSnapshot {
        self.get(backend).map(|s| s.snapshot()).unwrap_or_default()
    }
}

impl MetricsSource for RoutingLayer {
    fn backend_stats(&self, backend: &str) -> StatsSnapshot {
        self.stats_registry().backend_stats(backend)
    }
}

impl<T: MetricsSource + ?Sized> MetricsSource for Arc<T> {
    fn backend_stats(&self, backend: &str) -> StatsSnapshot {
        (**self).backend_stats(backend)
    }
}

// ---------------------------------------------------------------------------------
// Plan
// ---------------------------------------------------------------------------------

/// The checks that gate promotion of each step. `None` disables a check.
///
/// ```
/// let c = routing_tower::rollout::Checks::default();
/// assert_eq!((c.max_error_rate, c.min_requests), (None, 1));
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    /// The candidate's error rate (5xx and local failures over completed requests) in
    /// the window must be at most this (`0 ..= 1`).
    pub max_error_rate: Option<f64>,
    /// The candidate's error rate must be at most this many times stable's (`> 0`).
    pub max_error_ratio_vs_stable: Option<f64>,
    /// The candidate's p99 latency must be at most this many times stable's (`> 0`).
    pub max_p99_ratio_vs_stable: Option<f64>,
    /// Completed requests the candidate's window needs before any verdict (`>= 1`).
    pub min_requests: u64,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            max_error_rate: None,
            max_error_ratio_vs_stable: None,
            max_p99_ratio_vs_stable: None,
            min_requests: 1,
        }
    }
}

/// A plan as written by a user, before validation; field names are the plan format's
/// (`steps`, `hold`, `checks.max_error_rate`, …). Turn it into a [`RolloutPlan`] with
/// `TryFrom`.
///
/// ```
/// use routing_tower::rollout::{Checks, RolloutPlan, RolloutPlanSpec};
/// let spec = RolloutPlanSpec { steps: vec![5.0, 50.0, 100.0], hold: "1m".parse().unwrap(), checks: Checks::default() };
/// assert_eq!(RolloutPlan::try_from(spec).unwrap().steps(), &[5.0, 50.0, 100.0]);
/// ```
///
/// It deserializes with serde (unknown fields are refused), so a plan can live in a
/// YAML, JSON or TOML file:
///
/// ```yaml
/// steps: [5, 10, 25, 50, 100]
/// hold: 5m
/// checks: {max_error_rate: 0.01, max_error_ratio_vs_stable: 2, max_p99_ratio_vs_stable: 1.5, min_requests: 200}
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlanSpec {
    /// Candidate percentages, strictly increasing, each in `(0, 100]`, the last 100.
    pub steps: Vec<f64>,
    /// How long each step holds at least (GEP-2257 duration, `> 0`).
    pub hold: ConfigDuration,
    /// The checks.
    #[serde(default)]
    pub checks: Checks,
}

/// One problem of a [`RolloutPlanSpec`], with the path of the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct PlanProblem {
    /// Path of the offending field, e.g. `steps[2]` or `checks.min_requests`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem of an invalid [`RolloutPlanSpec`].
///
/// ```
/// use routing_tower::rollout::{Checks, RolloutPlan, RolloutPlanSpec};
/// let spec = RolloutPlanSpec { steps: vec![], hold: "0s".parse().unwrap(), checks: Checks::default() };
/// let err = RolloutPlan::try_from(spec).unwrap_err();
/// assert_eq!(err.problems[0].field, "steps");
/// assert_eq!(err.problems[1].field, "hold");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rollout plan: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PlanError {
    /// The problems, in field order.
    pub problems: Vec<PlanProblem>,
}

/// A validated plan; see [`RolloutPlanSpec`] for the fields.
///
/// ```
/// use routing_tower::rollout::{Checks, RolloutPlan, RolloutPlanSpec};
/// let plan = RolloutPlan::try_from(RolloutPlanSpec {
///     steps: vec![100.0], hold: "10s".parse().unwrap(), checks: Checks::default(),
/// }).unwrap();
/// assert_eq!(plan.hold(), std::time::Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    steps: Vec<f64>,
    hold: Duration,
    checks: Checks,
}

impl RolloutPlan {
    /// The candidate percentage of each step.
    #[must_use]
    pub fn steps(&self) -> &[f64] {
        &self.steps
    }

    /// The minimum time each step holds.
    #[must_use]
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// The checks.
    #[must_use]
    pub fn checks(&self) -> &Checks {
        &self.checks
    }
}

impl TryFrom<RolloutPlanSpec> for RolloutPlan {
    type Error = PlanError;

    fn try_from(spec: RolloutPlanSpec) -> Result<Self, PlanError> {
        let mut problems = Vec::new();
        let mut bad = |field: String, message: &str| {
            problems.push(PlanProblem {
                field,
                message: message.to_owned(),
            });
        };
        if spec.steps.is_empty() {
            bad("steps".into(), "at least one step is needed");
        }
        let mut prev = 0.0;
        for (i, &p) in spec.steps.iter().enumerate() {
            if !p.is_finite() || p <= 0.0 || p > 100.0 {
                bad(format!("steps[{i}]"), "must be a percentage in (0, 100]");
            } else if p <= prev {
                bad(format!("steps[{i}]"), "steps must be strictly increasing");
            } else {
                prev = p;
            }
        }
        if spec.steps.last().is_some_and(|&p| p != 100.0) {
            bad(
                format!("steps[{}]", spec.steps.len() - 1),
                "the last step must be 100",
            );
        }
        if spec.hold.as_duration().is_zero() {
            bad("hold".into(), "must be longer than 0s");
        }
        let c = &spec.checks;
        if let Some(r) = c.max_error_rate {
            if !(0.0..=1.0).contains(&r) {
                bad("checks.max_error_rate".into(), "must be in 0..=1");
            }
        }
        for (name, v) in [
            ("max_error_ratio_vs_stable", c.max_error_ratio_vs_stable),
            ("max_p99_ratio_vs_stable", c.max_p99_ratio_vs_stable),
        ] {
            if v.is_some_and(|r| !r.is_finite() || r <= 0.0) {
                bad(format!("checks.{name}"), "must be a finite number above 0");
            }
        }
        if c.min_requests == 0 {
            bad("checks.min_requests".into(), "must be at least 1");
        }
        if problems.is_empty() {
            Ok(Self {
                steps: spec.steps,
                hold: spec.hold.as_duration(),
                checks: spec.checks,
            })
        } else {
            Err(PlanError { problems })
        }
    }
}

// ---------------------------------------------------------------------------------
// State and events
// ---------------------------------------------------------------------------------

/// One backend's traffic in a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BackendFigures {
    /// Completed requests (responses and local failures).
    pub completed: u64,
    /// 5xx responses and local failures.
    pub errors: u64,
    /// `errors / completed`; `None` without traffic.
    pub error_rate: Option<f64>,
    /// Estimated p99 latency; `None` without samples.
    pub p99: Option<Duration>,
}

impl BackendFigures {
    fn from_window(w: &StatsSnapshot) -> Self {
        Self {
            completed: w.completed(),
            errors: w.responses[4].saturating_add(w.local_failures()),
            error_rate: w.error_rate(),
            p99: w.quantile(0.99),
        }
    }
}

/// The figures of one step's window: what a verdict was based on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowFigures {
    /// Index of the step in the plan.
    pub step: usize,
    /// The candidate's percentage during the step.
    pub percent: f64,
    /// Time since the step began.
    pub elapsed: Duration,
    /// The candidate's traffic.
    pub candidate: BackendFigures,
    /// Stable's traffic.
    pub stable: BackendFigures,
}

/// The check that failed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RollbackReason {
    /// The candidate's error rate exceeded `max_error_rate`.
    ErrorRate {
        /// Candidate's error rate.
        candidate: f64,
        /// The limit.
        max: f64,
    },
    /// The candidate's error rate exceeded `max_error_ratio_vs_stable` × stable's.
    ErrorRatio {
        /// Candidate's error rate.
        candidate: f64,
        /// Stable's error rate (floored at one error in its window).
        stable: f64,
        /// The allowed ratio.
        max_ratio: f64,
    },
    /// The candidate's p99 exceeded `max_p99_ratio_vs_stable` × stable's.
    P99Ratio {
        /// Candidate's p99.
        candidate: Duration,
        /// Stable's p99.
        stable: Duration,
        /// The allowed ratio.
        max_ratio: f64,
    },
}

impl fmt::Display for RollbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ErrorRate { candidate, max } => {
                write!(f, "candidate error rate {candidate:.4} > max {max}")
            }
            Self::ErrorRatio {
                candidate,
                stable,
                max_ratio,
            } => write!(
                f,
                "candidate error rate {candidate:.4} > {max_ratio} x stable {stable:.4}"
            ),
            Self::P99Ratio {
                candidate,
                stable,
                max_ratio,
            } => write!(
                f,
                "candidate p99 {candidate:?} > {max_ratio} x stable {stable:?}"
            ),
        }
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, PartialEq)]
pub enum RolloutState {
    /// Not started: the first [`tick`](Rollout::tick) sets the first step.
    Pending,
    /// Step `step` (index in the plan) is live with `percent` to the candidate.
    Running {
        /// Index of the step.
        step: usize,
        /// Candidate percentage.
        percent: f64,
    },
    /// Paused at `step`; the split stays as it is.
    Paused {
        /// Index of the step.
        step: usize,
        /// Candidate percentage.
        percent: f64,
    },
    /// Candidate at 100 % (by the plan or by [`promote`](Rollout::promote)).
    Promoted,
    /// A check failed; stable is at 100 %.
    RolledBack {
        /// The failed check.
        reason: RollbackReason,
        /// The window it failed on.
        figures: WindowFigures,
    },
    /// Stopped by [`abort`](Rollout::abort); stable is at 100 %.
    Aborted,
    /// The target refused a split; the previous split is live and the rollout stopped.
    Failed {
        /// The split that was refused.
        percent: f64,
        /// The target's error, as text.
        error: String,
    },
}

impl RolloutState {
    /// Whether the rollout is over (promoted, rolled back, aborted or failed).
    ///
    /// ```
    /// use routing_tower::rollout::RolloutState;
    /// assert!(RolloutState::Promoted.is_terminal());
    /// assert!(!RolloutState::Pending.is_terminal());
    /// ```
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Promoted | Self::RolledBack { .. } | Self::Aborted | Self::Failed { .. }
        )
    }
}

/// A transition, with when it happened on the rollout's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutEvent {
    /// When, on the rollout's clock.
    pub at: Timestamp,
    /// What.
    pub kind: RolloutEventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RolloutEventKind {
    /// Step `step` began with `percent` to the candidate.
    StepStarted {
        /// Index of the step.
        step: usize,
        /// Candidate percentage.
        percent: f64,
    },
    /// Step `step` held long enough and passed every check.
    StepPassed {
        /// The window.
        figures: WindowFigures,
    },
    /// The hold elapsed but the candidate's window has fewer than `min_requests`; the
    /// step waits (recorded once per step).
    Waiting {
        /// The window.
        figures: WindowFigures,
        /// The requests needed.
        min_requests: u64,
    },
    /// A check failed; stable is at 100 %.
    RolledBack {
        /// The failed check.
        reason: RollbackReason,
        /// The window.
        figures: WindowFigures,
    },
    /// The candidate is at 100 %; `manual` when by [`promote`](Rollout::promote).
    Promoted {
        /// Whether [`promote`](Rollout::promote) skipped the remaining steps.
        manual: bool,
    },
    /// Paused at a step.
    Paused {
        /// Index of the step.
        step: usize,
    },
    /// Resumed; the step restarts with a fresh window.
    Resumed {
        /// Index of the step.
        step: usize,
    },
    /// Aborted; stable is at 100 %.
    Aborted,
    /// The target refused a split; the rollout stopped.
    TargetFailed {
        /// The split that was refused.
        percent: f64,
        /// The target's error, as text.
        error: String,
    },
}

/// Why a control ([`pause`](Rollout::pause), …) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The control does not apply in this state (e.g. `resume` while running).
    #[error("cannot {action} a rollout in state {state:?}")]
    InvalidState {
        /// The control.
        action: &'static str,
        /// The state it was refused in (boxed: the state is large).
        state: Box<RolloutState>,
    },
    /// The target refused the split; the rollout is now [`RolloutState::Failed`].
    #[error("target refused the split: {0}")]
    Target(#[source] TargetError),
}

// ---------------------------------------------------------------------------------
// Controller
// ---------------------------------------------------------------------------------

/// Where the current step's window began.
#[derive(Debug, Clone)]
struct Window {
    start: Timestamp,
    candidate: StatsSnapshot,
    stable: StatsSnapshot,
    waiting_reported: bool,
}

#[derive(Debug)]
struct Inner {
    state: RolloutState,
    window: Option<Window>,
    events: Vec<RolloutEvent>,
}

/// The rollout controller; see the [module docs](self) for the semantics.
///
/// All methods take `&self` (state behind a mutex), so one `Arc<Rollout>` can be
/// ticked by a loop and controlled from an admin handler.
pub struct Rollout {
    plan: RolloutPlan,
    target: Box<dyn WeightTarget>,
    metrics: Box<dyn MetricsSource>,
    clock: SharedClock,
    stable: String,
    candidate: String,
    inner: Mutex<Inner>,
}

impl fmt::Debug for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rollout")
            .field("target", &self.target.describe())
            .field("stable", &self.stable)
            .field("candidate", &self.candidate)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl Rollout {
    /// A pending rollout of `target` per `plan`, judged on `metrics` (backend names
    /// taken from the target), on `clock`.
    ///
    /// ```
    /// # use routing_tower::{clock::SystemClock, rollout::*, stats::StatsRegistry};
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let plan = RolloutPlan::try_from(RolloutPlanSpec {
    ///     steps: vec![100.0], hold: "1s".parse().unwrap(), checks: Checks::default(),
    /// }).unwrap();
    /// let r = Rollout::new(plan, RouterRuleTarget::new(router, "r", "main", "v1", "v2"),
    ///     StatsRegistry::new(), SystemClock::shared());
    /// assert_eq!(r.state(), RolloutState::Pending);
    /// ```
    pub fn new(
        plan: RolloutPlan,
        target: RouterRuleTarget,
        metrics: impl MetricsSource + 'static,
        clock: SharedClock,
    ) -> Self {
        let (stable, candidate) = (target.stable.clone(), target.candidate.clone());
        Self::with_target(plan, target, &stable, &candidate, metrics, clock)
    }

    /// Like [`new`](Self::new) for any [`WeightTarget`]; `stable` and `candidate` name
    /// the backends in `metrics`.
    ///
    /// ```
    /// # use routing_tower::{clock::SystemClock, rollout::*, stats::StatsRegistry};
    /// # let router = routing_core::Router::from_yaml("{}").unwrap();
    /// # let target = RouterRuleTarget::new(router, "r", "main", "v1", "v2");
    /// let plan = RolloutPlan::try_from(RolloutPlanSpec {
    ///     steps: vec![100.0], hold: "1s".parse().unwrap(), checks: Checks::default(),
    /// }).unwrap();
    /// let r = Rollout::with_target(plan, target, "v1", "v2", StatsRegistry::new(), SystemClock::shared());
    /// assert!(r.events().is_empty());
    /// ```
    pub fn with_target(
        plan: RolloutPlan,
        target: impl WeightTarget + 'static,
        stable: &str,
        candidate: &str,
        metrics: impl MetricsSource + 'static,
        clock: SharedClock,
    ) -> Self {
        Self {
            plan,
            target: Box::new(target),
            metrics: Box::new(metrics),
            clock,
            stable: stable.to_owned(),
            candidate: candidate.to_owned(),
            inner: Mutex::new(Inner {
                state: RolloutState::Pending,
                window: None,
                events: Vec::new(),
            }),
        }
    }

    /// The plan.
    #[must_use]
    pub fn plan(&self) -> &RolloutPlan {
        &self.plan
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> RolloutState {
        self.lock().state.clone()
    }

    /// Every event so far, oldest first.
    #[must_use]
    pub fn events(&self) -> Vec<RolloutEvent> {
        self.lock().events.clone()
    }

    /// The current step's window so far (`None` unless running).
    #[must_use]
    pub fn current_figures(&self) -> Option<WindowFigures> {
        let inner = self.lock();
        match inner.state {
            RolloutState::Running { step, percent } => {
                let w = inner.window.as_ref()?;
                Some(self.figures(w, step, percent, self.clock.now()))
            }
            _ => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Advances the rollout by what the clock and the metrics say; returns the events
    /// it caused. Starts a pending rollout; does nothing when paused or over.
    pub fn tick(&self) -> Vec<RolloutEvent> {
        let mut inner = self.lock();
        let first = inner.events.len();
        let now = self.clock.now();
        match inner.state.clone() {
            RolloutState::Pending => self.start_step(&mut inner, 0, now),
            RolloutState::Running { step, percent } => {
                self.judge(&mut inner, step, percent, now);
            }
            _ => {}
        }
        inner.events[first..].to_vec()
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

    /// Freezes the split at the current step.
    ///
    /// # Errors
    /// [`ControlError::InvalidState`] unless running.
    pub fn pause(&self) -> Result<Vec<RolloutEvent>, ControlError> {
        let mut inner = self.lock();
        match inner.state.clone() {
            RolloutState::Running { step, percent } => {
                inner.state = RolloutState::Paused { step, percent };
                tracing::info!(target: "routing_tower::rollout", target_desc = %self.target.describe(), step, percent, "rollout paused");
                Ok(vec![
                    self.push(&mut inner, RolloutEventKind::Paused { step })
                ])
            }
            state => Err(ControlError::InvalidState {
                action: "pause",
                state: Box::new(state),
            }),
        }
    }

    /// Resumes a paused rollout: the current step restarts with a fresh window and a
    /// full hold.
    ///
    /// # Errors
    /// [`ControlError::InvalidState`] unless paused.
    pub fn resume(&self) -> Result<Vec<RolloutEvent>, ControlError> {
        let mut inner = self.lock();
        match inner.state.clone() {
            RolloutState::Paused { step, percent } => {
                let now = self.clock.now();
                inner.window = Some(self.open_window(now));
                inner.state = RolloutState::Running { step, percent };
                tracing::info!(target: "routing_tower::rollout", target_desc = %self.target.describe(), step, percent, "rollout resumed");
                Ok(vec![
                    self.push(&mut inner, RolloutEventKind::Resumed { step })
                ])
            }
            state => Err(ControlError::InvalidState {
                action: "resume",
                state: Box::new(state),
            }),
        }
    }

    /// Skips the remaining steps: 100 % to the candidate.
    ///
    /// # Errors
    /// [`ControlError::InvalidState`] when the rollout is over;
    /// [`ControlError::Target`] when the target refused (the rollout is then failed).
    pub fn promote(&self) -> Result<Vec<RolloutEvent>, ControlError> {
        self.finish("promote", 100.0, RolloutState::Promoted)
    }

    /// Stops the rollout: 100 % to stable.
    ///
    /// # Errors
    /// [`ControlError::InvalidState`] when the rollout is over;
    /// [`ControlError::Target`] when the target refused (the rollout is then failed).
    pub fn abort(&self) -> Result<Vec<RolloutEvent>, ControlError> {
        self.finish("abort", 0.0, RolloutState::Aborted)
    }

    fn finish(
        &self,
        action: &'static str,
        percent: f64,
        end: RolloutState,
    ) -> Result<Vec<RolloutEvent>, ControlError> {
        let mut inner = self.lock();
        if inner.state.is_terminal() {
            return Err(ControlError::InvalidState {
                action,
                state: Box::new(inner.state.clone()),
            });
        }
        let first = inner.events.len();
        if let Err(e) = self.target.set_split(percent) {
            self.fail(&mut inner, percent, &e);
            return Err(ControlError::Target(e));
        }
        inner.window = None;
        let kind = if end == RolloutState::Promoted {
            tracing::info!(target: "routing_tower::rollout", target_desc = %self.target.describe(), "rollout promoted by hand");
            RolloutEventKind::Promoted { manual: true }
        } else {
            tracing::warn!(target: "routing_tower::rollout", target_desc = %self.target.describe(), "rollout aborted; stable at 100%");
            RolloutEventKind::Aborted
        };
        inner.state = end;
        self.push(&mut inner, kind);
        Ok(inner.events[first..].to_vec())
    }

    fn push(&self, inner: &mut Inner, kind: RolloutEventKind) -> RolloutEvent {
        let event = RolloutEvent {
            at: self.clock.now(),
            kind,
        };
        inner.events.push(event.clone());
        event
    }

    fn fail(&self, inner: &mut Inner, percent: f64, e: &TargetError) {
        tracing::error!(target: "routing_tower::rollout", target_desc = %self.target.describe(), percent, error = %e, "rollout stopped: target refused the split");
        inner.state = RolloutState::Failed {
            percent,
            error: e.to_string(),
        };
        inner.window = None;
        self.push(
            inner,
            RolloutEventKind::TargetFailed {
                percent,
                error: e.to_string(),
            },
        );
    }

    fn open_window(&self, now: Timestamp) -> Window {
        Window {
            start: now,
            candidate: self.metrics.backend_stats(&self.candidate),
            stable: self.metrics.backend_stats(&self.stable),
            waiting_reported: false,
        }
    }

    fn start_step(&self, inner: &mut Inner, step: usize, now: Timestamp) {
        let Some(&percent) = self.plan.steps.get(step) else {
            return;
        };
        if let Err(e) = self.target.set_split(percent) {
            self.fail(inner, percent, &e);
            return;
        }
        inner.window = Some(self.open_window(now));
        inner.state = RolloutState::Running { step, percent };
        tracing::info!(target: "routing_tower::rollout", target_desc = %self.target.describe(), step, percent, "rollout step started");
        self.push(inner, RolloutEventKind::StepStarted { step, percent });
    }

    fn figures(&self, w: &Window, step: usize, percent: f64, now: Timestamp) -> WindowFigures {
        let cand = self
            .metrics
            .backend_stats(&self.candidate)
            .since(&w.candidate);
        let stable = self.metrics.backend_stats(&self.stable).since(&w.stable);
        WindowFigures {
            step,
            percent,
            elapsed: now.saturating_duration_since(w.start),
            candidate: BackendFigures::from_window(&cand),
            stable: BackendFigures::from_window(&stable),
        }
    }

    fn judge(&self, inner: &mut Inner, step: usize, percent: f64, now: Timestamp) {
        let Some(window) = inner.window.clone() else {
            return;
        };
        let figures = self.figures(&window, step, percent, now);
        let checks = &self.plan.checks;
        let held = figures.elapsed >= self.plan.hold;
        if figures.candidate.completed < checks.min_requests {
            if held && !window.waiting_reported {
                if let Some(w) = inner.window.as_mut() {
                    w.waiting_reported = true;
                }
                tracing::info!(target: "routing_tower::rollout", target_desc = %self.target.describe(), step, percent,
                    completed = figures.candidate.completed, min_requests = checks.min_requests,
                    "rollout step waiting for traffic");
                self.push(
                    inner,
                    RolloutEventKind::Waiting {
                        figures,
                        min_requests: checks.min_requests,
                    },
                );
            }
            return;
        }
        if let Some(reason) = verdict(checks, &figures) {
            self.roll_back(inner, reason, figures);
            return;
        }
        if !held {
            return;
        }
        tracing::info!(target: "routing_tower::rollout", target_desc = %self.target.describe(), step, percent,
            completed = figures.candidate.completed, error_rate = ?figures.candidate.error_rate,
            p99 = ?figures.candidate.p99, stable_error_rate = ?figures.stable.error_rate,
            stable_p99 = ?figures.stable.p99, "rollout step passed");
        self.push(inner, RolloutEventKind::StepPassed { figures });
        if step + 1 < self.plan.steps.len() {
            self.start_step(inner, step + 1, now);
        } else {
            inner.state = RolloutState::Promoted;
            inner.window = None;
            tracing::info!(target: "routing_tower::rollout", target_desc = %self.target.describe(), "rollout promoted");
            self.push(inner, RolloutEventKind::Promoted { manual: false });
        }
    }

    fn roll_back(&self, inner: &mut Inner, reason: RollbackReason, figures: WindowFigures) {
        tracing::warn!(target: "routing_tower::rollout", target_desc = %self.target.describe(),
            step = figures.step, percent = figures.percent, %reason,
            completed = figures.candidate.completed, errors = figures.candidate.errors,
            stable_completed = figures.stable.completed, stable_errors = figures.stable.errors,
            "rollout check failed; rolling back to stable");
        if let Err(e) = self.target.set_split(0.0) {
            self.fail(inner, 0.0, &e);
            return;
        }
        inner.window = None;
        inner.state = RolloutState::RolledBack { reason, figures };
        self.push(inner, RolloutEventKind::RolledBack { reason, figures });
    }
}

/// The first failed check of a window with enough candidate traffic, if any.
fn verdict(checks: &Checks, f: &WindowFigures) -> Option<RollbackReason> {
    let cand_rate = f.candidate.error_rate.unwrap_or(0.0);
    if let Some(max) = checks.max_error_rate {
        if cand_rate > max {
            return Some(RollbackReason::ErrorRate {
                candidate: cand_rate,
                max,
            });
        }
    }
    let stable_ok = f.stable.completed >= checks.min_requests;
    if let (Some(max_ratio), true) = (checks.max_error_ratio_vs_stable, stable_ok) {
        // Floor stable's rate at one error in its window.
        let floor = 1.0 / f.stable.completed as f64;
        let stable = f.stable.error_rate.unwrap_or(0.0).max(floor);
        if cand_rate > max_ratio * stable {
            return Some(RollbackReason::ErrorRatio {
                candidate: cand_rate,
                stable: f.stable.error_rate.unwrap_or(0.0),
                max_ratio,
            });
        }
    }
    if let (Some(max_ratio), true) = (checks.max_p99_ratio_vs_stable, stable_ok) {
        if let (Some(c), Some(s)) = (f.candidate.p99, f.stable.p99) {
            if c.as_secs_f64() > max_ratio * s.as_secs_f64() {
                return Some(RollbackReason::P99Ratio {
                    candidate: c,
                    stable: s,
                    max_ratio,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(cand: (u64, u64), stable: (u64, u64)) -> WindowFigures {
        let bf = |(completed, errors): (u64, u64)| BackendFigures {
            completed,
            errors,
            error_rate: (completed > 0).then(|| errors as f64 / completed as f64),
            p99: Some(Duration::from_millis(10)),
        };
        WindowFigures {
            step: 0,
            percent: 5.0,
            elapsed: Duration::ZERO,
            candidate: bf(cand),
            stable: bf(stable),
        }
    }

    #[test]
    fn split_weights_sum_to_scale_and_reject_bad_percent() {
        assert_eq!(split_weights(0.0).ok(), Some((10_000, 0)));
        assert_eq!(split_weights(12.34).ok(), Some((8_766, 1_234)));
        assert_eq!(split_weights(100.0).ok(), Some((0, 10_000)));
        assert!(
            split_weights(-1.0).is_err(),
            "negative percent must be refused"
        );
        assert!(split_weights(f64::NAN).is_err(), "NaN must be refused");
        assert!(split_weights(100.5).is_err(), "above 100 must be refused");
    }

    #[test]
    fn ratio_check_floors_a_spotless_stable() {
        let checks = Checks {
            max_error_ratio_vs_stable: Some(2.0),
            min_requests: 10,
            ..Checks::default()
        };
        // Stable 0/1000 → floor 0.001; candidate 1/1000 = 0.001 ≤ 0.002: pass.
        assert_eq!(verdict(&checks, &figures((1000, 1), (1000, 0))), None);
        // Candidate 5/1000 = 0.005 > 0.002: fail.
        assert!(matches!(
            verdict(&checks, &figures((1000, 5), (1000, 0))),
            Some(RollbackReason::ErrorRatio { .. })
        ));
        // Too little stable traffic: comparison skipped.
        assert_eq!(verdict(&checks, &figures((1000, 500), (5, 0))), None);
    }

    #[test]
    fn absolute_check_comes_first() {
        let checks = Checks {
            max_error_rate: Some(0.01),
            max_error_ratio_vs_stable: Some(2.0),
            ..Checks::default()
        };
        assert!(matches!(
            verdict(&checks, &figures((100, 50), (100, 0))),
            Some(RollbackReason::ErrorRate { max, .. }) if max == 0.01
        ));
    }

    #[test]
    fn plan_problems_name_every_field() {
        let spec = RolloutPlanSpec {
            steps: vec![10.0, 5.0, 150.0],
            hold: ConfigDuration::new(Duration::from_secs(1)),
            checks: Checks {
                max_error_rate: Some(2.0),
                max_error_ratio_vs_stable: Some(0.0),
                max_p99_ratio_vs_stable: Some(f64::INFINITY),
                min_requests: 0,
            },
        };
        let err = RolloutPlan::try_from(spec).expect_err("plan is invalid");
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "steps[1]",
                "steps[2]",
                "steps[2]",
                "checks.max_error_rate",
                "checks.max_error_ratio_vs_stable",
                "checks.max_p99_ratio_vs_stable",
                "checks.min_requests"
            ]
        );
        assert!(err
            .to_string()
            .contains("`steps[1]`: steps must be strictly increasing"));
    }
}
