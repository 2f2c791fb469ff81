//! Rollout plans: what a user writes ([`RolloutPlanSpec`]) and the validated
//! [`RolloutPlan`] with its [`Checks`].

use std::time::Duration;

use routing_core::ConfigDuration;

/// The checks that gate promotion of each step. `None` disables a check.
///
/// ```
/// let c = routing_rollout::Checks::default();
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
/// use routing_rollout::{Checks, RolloutPlan, RolloutPlanSpec};
/// let spec = RolloutPlanSpec { steps: vec![5.0, 50.0, 100.0], hold: "1m".parse().unwrap(), max_step: None, checks: Checks::default() };
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
    /// The longest a step may wait for `checks.min_requests` candidate requests; past
    /// it the rollout ends [`Inconclusive`](crate::RolloutState::Inconclusive) with
    /// stable at 100 % (default: ten holds, at least one hour; never below `hold`).
    #[serde(default)]
    pub max_step: Option<ConfigDuration>,
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
/// use routing_rollout::{Checks, RolloutPlan, RolloutPlanSpec};
/// let spec = RolloutPlanSpec { steps: vec![], hold: "0s".parse().unwrap(), max_step: None, checks: Checks::default() };
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
/// use routing_rollout::{Checks, RolloutPlan, RolloutPlanSpec};
/// let plan = RolloutPlan::try_from(RolloutPlanSpec {
///     steps: vec![100.0], hold: "10s".parse().unwrap(), max_step: None, checks: Checks::default(),
/// }).unwrap();
/// assert_eq!(plan.hold(), std::time::Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    steps: Vec<f64>,
    hold: Duration,
    max_step: Duration,
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

    /// The longest a step waits for enough candidate traffic before the rollout ends
    /// inconclusive.
    ///
    /// ```
    /// use routing_rollout::{Checks, RolloutPlan, RolloutPlanSpec};
    /// let plan = RolloutPlan::try_from(RolloutPlanSpec {
    ///     steps: vec![100.0], hold: "10s".parse().unwrap(), max_step: None, checks: Checks::default(),
    /// }).unwrap();
    /// assert_eq!(plan.max_step(), std::time::Duration::from_secs(3600));
    /// ```
    #[must_use]
    pub fn max_step(&self) -> Duration {
        self.max_step
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
        let hold = spec.hold.as_duration();
        let max_step = spec.max_step.map_or_else(
            || (hold * 10).max(Duration::from_secs(3600)),
            |m| m.as_duration(),
        );
        if max_step < hold {
            bad("max_step".into(), "must be at least `hold`");
        }
        if problems.is_empty() {
            Ok(Self {
                steps: spec.steps,
                hold,
                max_step,
                checks: spec.checks,
            })
        } else {
            Err(PlanError { problems })
        }
    }
}
