//! Where a rollout is ([`RolloutState`]), what happened ([`RolloutEvent`]) and the
//! figures every verdict is based on.

use std::fmt;
use std::time::Duration;

use crate::metrics::BackendCounts;
use crate::target::TargetError;

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
    pub(crate) fn from_window(w: &BackendCounts) -> Self {
        Self {
            completed: w.completed,
            errors: w.errors,
            error_rate: w.error_rate(),
            p99: w.latency.quantile(0.99),
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
    /// Not started: the first [`tick`](crate::Rollout::tick) sets the first step.
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
    /// Candidate at 100 % (by the plan or by [`promote`](crate::Rollout::promote)).
    Promoted,
    /// A check failed; stable is at 100 %.
    RolledBack {
        /// The failed check.
        reason: RollbackReason,
        /// The window it failed on.
        figures: WindowFigures,
    },
    /// Stopped by [`abort`](crate::Rollout::abort); stable is at 100 %.
    Aborted,
    /// A step waited [`max_step`](crate::RolloutPlan::max_step) without enough
    /// candidate traffic to judge it: no verdict is possible, stable is at 100 %.
    Inconclusive {
        /// The window that never got enough traffic.
        figures: WindowFigures,
    },
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
    /// use routing_rollout::RolloutState;
    /// assert!(RolloutState::Promoted.is_terminal());
    /// assert!(!RolloutState::Pending.is_terminal());
    /// ```
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Promoted
                | Self::RolledBack { .. }
                | Self::Aborted
                | Self::Failed { .. }
                | Self::Inconclusive { .. }
        )
    }
}

/// A transition, with when it happened on the rollout's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutEvent {
    /// When: the `now` of the call that caused it (time since the caller's epoch).
    pub at: Duration,
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
    /// The candidate is at 100 %; `manual` when by [`promote`](crate::Rollout::promote).
    Promoted {
        /// Whether [`promote`](crate::Rollout::promote) skipped the remaining steps.
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
    /// A step waited `max_step` without enough candidate traffic; stable is at 100 %.
    Inconclusive {
        /// The window.
        figures: WindowFigures,
    },
    /// The target refused a split; the rollout stopped.
    TargetFailed {
        /// The split that was refused.
        percent: f64,
        /// The target's error, as text.
        error: String,
    },
}

/// Why a control ([`pause`](crate::Rollout::pause), …) was refused.
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
