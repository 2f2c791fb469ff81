//! The controller: a sans-IO state machine driven by [`Rollout::tick`].

use std::time::Duration;

use routing_core::Router;

use crate::metrics::{BackendCounts, MetricsSource};
use crate::plan::{Checks, RolloutPlan};
use crate::state::{
    BackendFigures, ControlError, RollbackReason, RolloutEvent, RolloutEventKind, RolloutState,
    WindowFigures,
};
use crate::target::{ApplySplit, RolloutTarget, TargetError};

/// Where the current step's window began.
#[derive(Debug, Clone)]
struct Window {
    start: Duration,
    candidate: BackendCounts,
    stable: BackendCounts,
    waiting_reported: bool,
}

/// The rollout controller; see the [crate docs](crate) for the semantics.
///
/// A state machine with no clock, no thread and no I/O: every call takes the time
/// (`now`, a [`Duration`] since any epoch the caller keeps fixed) and, where a
/// verdict needs them, the cumulative [`MetricsSource`] counts. Splits are applied
/// through `T` ([`ApplySplit`]; a [`Router`] by default, via [`Router::modify`]).
/// Methods take `&mut self`; a driver that shares one rollout between a loop and an
/// admin handler wraps it in a mutex (routing-tower's `rollout::Driver` does).
///
/// ```
/// use routing_rollout::{Checks, Rollout, RolloutPlan, RolloutPlanSpec, RolloutState, RolloutTarget};
/// use std::{collections::HashMap, time::Duration};
/// let router = routing_core::Router::from_yaml(r#"
/// backends: [{name: v1}, {name: v2}]
/// routes: [{name: shop, rules: [{name: main, backends: [{name: v1}]}]}]
/// "#).unwrap();
/// let plan = RolloutPlan::try_from(RolloutPlanSpec {
///     steps: vec![100.0], hold: "1s".parse().unwrap(), max_step: None, checks: Checks::default(),
/// }).unwrap();
/// let mut r = Rollout::new(plan, RolloutTarget::http_rule("shop", "main", "v1", "v2"), router);
/// let metrics: HashMap<String, routing_rollout::BackendCounts> = HashMap::new();
/// r.tick(Duration::ZERO, &metrics);
/// assert_eq!(r.state(), &RolloutState::Running { step: 0, percent: 100.0 });
/// ```
#[derive(Debug)]
pub struct Rollout<T = Router> {
    plan: RolloutPlan,
    target: RolloutTarget,
    applier: T,
    state: RolloutState,
    window: Option<Window>,
    events: Vec<RolloutEvent>,
}

impl<T: ApplySplit> Rollout<T> {
    /// A pending rollout of `target` per `plan`, whose splits `applier` applies.
    ///
    /// ```
    /// # use routing_rollout::*;
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let plan = RolloutPlan::try_from(RolloutPlanSpec {
    ///     steps: vec![100.0], hold: "1s".parse().unwrap(), max_step: None, checks: Checks::default(),
    /// }).unwrap();
    /// let r = Rollout::new(plan, RolloutTarget::http_rule("r", "main", "v1", "v2"), router);
    /// assert_eq!(r.state(), &RolloutState::Pending);
    /// assert!(r.events().is_empty());
    /// ```
    pub fn new(plan: RolloutPlan, target: RolloutTarget, applier: T) -> Self {
        Self {
            plan,
            target,
            applier,
            state: RolloutState::Pending,
            window: None,
            events: Vec::new(),
        }
    }

    /// A rollout taken over mid-step: running at `step` (its split already live,
    /// nothing is applied), its window opened at `started` with `baseline`'s counts
    /// (the cumulative counts at `started`, as `(stable, candidate)`). A new leader of
    /// a fleet uses it to resume the step its predecessor persisted instead of
    /// starting over. `None` when the plan has no such step.
    ///
    /// ```
    /// # use routing_rollout::*;
    /// # use std::time::Duration;
    /// let plan = RolloutPlan::try_from(RolloutPlanSpec {
    ///     steps: vec![10.0, 100.0], hold: "10s".parse().unwrap(), max_step: None, checks: Checks::default(),
    /// }).unwrap();
    /// let router = routing_core::Router::from_yaml("{}").unwrap();
    /// let t = RolloutTarget::http_rule("r", "main", "v1", "v2");
    /// let r = Rollout::restore(plan, t, router, 1, Duration::from_secs(5), Default::default()).unwrap();
    /// assert_eq!(r.state(), &RolloutState::Running { step: 1, percent: 100.0 });
    /// ```
    pub fn restore(
        plan: RolloutPlan,
        target: RolloutTarget,
        applier: T,
        step: usize,
        started: Duration,
        baseline: (BackendCounts, BackendCounts),
    ) -> Option<Self> {
        let percent = *plan.steps().get(step)?;
        Some(Self {
            plan,
            target,
            applier,
            state: RolloutState::Running { step, percent },
            window: Some(Window {
                start: started,
                stable: baseline.0,
                candidate: baseline.1,
                waiting_reported: false,
            }),
            events: Vec::new(),
        })
    }

    /// When the current step's window began (`None` unless running or paused).
    #[must_use]
    pub fn window_start(&self) -> Option<Duration> {
        self.window.as_ref().map(|w| w.start)
    }

    /// The plan.
    #[must_use]
    pub fn plan(&self) -> &RolloutPlan {
        &self.plan
    }

    /// What the rollout moves.
    #[must_use]
    pub fn target(&self) -> &RolloutTarget {
        &self.target
    }

    /// Where the splits are applied (e.g. the [`Router`]).
    #[must_use]
    pub fn applier(&self) -> &T {
        &self.applier
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> &RolloutState {
        &self.state
    }

    /// Every event so far, oldest first.
    #[must_use]
    pub fn events(&self) -> &[RolloutEvent] {
        &self.events
    }

    /// The candidate share the rollout set last: 0 before the first step and after a
    /// rollback or abort (a refused split changes nothing).
    ///
    /// ```
    /// # use routing_rollout::*;
    /// # let plan = RolloutPlan::try_from(RolloutPlanSpec { steps: vec![100.0], hold: "1s".parse().unwrap(), max_step: None, checks: Checks::default() }).unwrap();
    /// let r = Rollout::new(plan, RolloutTarget::http_rule("r", "main", "v1", "v2"), routing_core::Router::from_yaml("{}").unwrap());
    /// assert_eq!(r.candidate_percent(), 0.0);
    /// ```
    #[must_use]
    pub fn candidate_percent(&self) -> f64 {
        let mut percent = 0.0;
        for event in &self.events {
            match event.kind {
                RolloutEventKind::StepStarted { percent: p, .. } => percent = p,
                RolloutEventKind::Promoted { .. } => percent = 100.0,
                RolloutEventKind::RolledBack { .. } | RolloutEventKind::Aborted => percent = 0.0,
                _ => {}
            }
        }
        percent
    }

    /// The current step's window up to `now` (`None` unless running).
    pub fn current_figures(
        &self,
        now: Duration,
        metrics: &(impl MetricsSource + ?Sized),
    ) -> Option<WindowFigures> {
        match self.state {
            RolloutState::Running { step, percent } => {
                let w = self.window.as_ref()?;
                Some(self.figures(w, step, percent, now, metrics))
            }
            _ => None,
        }
    }

    /// Advances the rollout to `now` on what `metrics` say; returns the events it
    /// caused. Starts a pending rollout; does nothing when paused or over.
    pub fn tick(
        &mut self,
        now: Duration,
        metrics: &(impl MetricsSource + ?Sized),
    ) -> Vec<RolloutEvent> {
        let first = self.events.len();
        match self.state.clone() {
            RolloutState::Pending => self.start_step(0, now, metrics),
            RolloutState::Running { step, percent } => self.judge(step, percent, now, metrics),
            _ => {}
        }
        self.events[first..].to_vec()
    }

    /// Freezes the split at the current step.
    ///
    /// # Errors
    /// [`ControlError::InvalidState`] unless running.
    pub fn pause(&mut self, now: Duration) -> Result<Vec<RolloutEvent>, ControlError> {
        match self.state.clone() {
            RolloutState::Running { step, percent } => {
                self.state = RolloutState::Paused { step, percent };
                tracing::info!(target: "routing_rollout", target_desc = %self.target, step, percent, "rollout paused");
                Ok(vec![self.push(now, RolloutEventKind::Paused { step })])
            }
            state => Err(ControlError::InvalidState {
                action: "pause",
                state: Box::new(state),
            }),
        }
    }

    /// Resumes a paused rollout: the current step restarts with a fresh window (from
    /// `metrics` at `now`) and a full hold.
    ///
    /// # Errors
    /// [`ControlError::InvalidState`] unless paused.
    pub fn resume(
        &mut self,
        now: Duration,
        metrics: &(impl MetricsSource + ?Sized),
    ) -> Result<Vec<RolloutEvent>, ControlError> {
        match self.state.clone() {
            RolloutState::Paused { step, percent } => {
                self.window = Some(self.open_window(now, metrics));
                self.state = RolloutState::Running { step, percent };
                tracing::info!(target: "routing_rollout", target_desc = %self.target, step, percent, "rollout resumed");
                Ok(vec![self.push(now, RolloutEventKind::Resumed { step })])
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
    /// [`ControlError::Target`] when the split was refused (the rollout is then failed).
    pub fn promote(&mut self, now: Duration) -> Result<Vec<RolloutEvent>, ControlError> {
        self.finish("promote", 100.0, RolloutState::Promoted, now)
    }

    /// Stops the rollout: 100 % to stable.
    ///
    /// # Errors
    /// [`ControlError::InvalidState`] when the rollout is over;
    /// [`ControlError::Target`] when the split was refused (the rollout is then failed).
    pub fn abort(&mut self, now: Duration) -> Result<Vec<RolloutEvent>, ControlError> {
        self.finish("abort", 0.0, RolloutState::Aborted, now)
    }

    fn finish(
        &mut self,
        action: &'static str,
        percent: f64,
        end: RolloutState,
        now: Duration,
    ) -> Result<Vec<RolloutEvent>, ControlError> {
        if self.state.is_terminal() {
            return Err(ControlError::InvalidState {
                action,
                state: Box::new(self.state.clone()),
            });
        }
        let first = self.events.len();
        if let Err(e) = self.applier.apply_split(&self.target, percent) {
            self.fail(percent, &e, now);
            return Err(ControlError::Target(e));
        }
        self.window = None;
        let kind = if end == RolloutState::Promoted {
            tracing::info!(target: "routing_rollout", target_desc = %self.target, "rollout promoted by hand");
            RolloutEventKind::Promoted { manual: true }
        } else {
            tracing::warn!(target: "routing_rollout", target_desc = %self.target, "rollout aborted; stable at 100%");
            RolloutEventKind::Aborted
        };
        self.state = end;
        self.push(now, kind);
        Ok(self.events[first..].to_vec())
    }

    fn push(&mut self, now: Duration, kind: RolloutEventKind) -> RolloutEvent {
        let event = RolloutEvent { at: now, kind };
        self.events.push(event.clone());
        event
    }

    fn fail(&mut self, percent: f64, e: &TargetError, now: Duration) {
        tracing::error!(target: "routing_rollout", target_desc = %self.target, percent, error = %e, "rollout stopped: the split was refused");
        self.state = RolloutState::Failed {
            percent,
            error: e.to_string(),
        };
        self.window = None;
        self.push(
            now,
            RolloutEventKind::TargetFailed {
                percent,
                error: e.to_string(),
            },
        );
    }

    fn open_window(&self, now: Duration, metrics: &(impl MetricsSource + ?Sized)) -> Window {
        Window {
            start: now,
            candidate: metrics.target_counts(&self.target, self.target.candidate()),
            stable: metrics.target_counts(&self.target, self.target.stable()),
            waiting_reported: false,
        }
    }

    fn start_step(&mut self, step: usize, now: Duration, metrics: &(impl MetricsSource + ?Sized)) {
        let Some(&percent) = self.plan.steps().get(step) else {
            return;
        };
        if let Err(e) = self.applier.apply_split(&self.target, percent) {
            self.fail(percent, &e, now);
            return;
        }
        self.window = Some(self.open_window(now, metrics));
        self.state = RolloutState::Running { step, percent };
        tracing::info!(target: "routing_rollout", target_desc = %self.target, step, percent, "rollout step started");
        self.push(now, RolloutEventKind::StepStarted { step, percent });
    }

    fn figures(
        &self,
        w: &Window,
        step: usize,
        percent: f64,
        now: Duration,
        metrics: &(impl MetricsSource + ?Sized),
    ) -> WindowFigures {
        let cand = metrics
            .target_counts(&self.target, self.target.candidate())
            .since(&w.candidate);
        let stable = metrics
            .target_counts(&self.target, self.target.stable())
            .since(&w.stable);
        WindowFigures {
            step,
            percent,
            elapsed: now.saturating_sub(w.start),
            candidate: BackendFigures::from_window(&cand),
            stable: BackendFigures::from_window(&stable),
        }
    }

    fn judge(
        &mut self,
        step: usize,
        percent: f64,
        now: Duration,
        metrics: &(impl MetricsSource + ?Sized),
    ) {
        let Some(window) = self.window.clone() else {
            return;
        };
        let figures = self.figures(&window, step, percent, now, metrics);
        let checks = self.plan.checks();
        let min_requests = checks.min_requests;
        let held = figures.elapsed >= self.plan.hold();
        if figures.candidate.completed < min_requests {
            if figures.elapsed >= self.plan.max_step() {
                self.inconclusive(figures, now);
                return;
            }
            if held && !window.waiting_reported {
                if let Some(w) = self.window.as_mut() {
                    w.waiting_reported = true;
                }
                tracing::info!(target: "routing_rollout", target_desc = %self.target, step, percent,
                    completed = figures.candidate.completed, min_requests,
                    "rollout step waiting for traffic");
                self.push(
                    now,
                    RolloutEventKind::Waiting {
                        figures,
                        min_requests,
                    },
                );
            }
            return;
        }
        if let Some(reason) = verdict(checks, &figures) {
            self.roll_back(reason, figures, now);
            return;
        }
        if !held {
            return;
        }
        tracing::info!(target: "routing_rollout", target_desc = %self.target, step, percent,
            completed = figures.candidate.completed, error_rate = ?figures.candidate.error_rate,
            p99 = ?figures.candidate.p99, stable_error_rate = ?figures.stable.error_rate,
            stable_p99 = ?figures.stable.p99, "rollout step passed");
        self.push(now, RolloutEventKind::StepPassed { figures });
        if step + 1 < self.plan.steps().len() {
            self.start_step(step + 1, now, metrics);
        } else {
            self.state = RolloutState::Promoted;
            self.window = None;
            tracing::info!(target: "routing_rollout", target_desc = %self.target, "rollout promoted");
            self.push(now, RolloutEventKind::Promoted { manual: false });
        }
    }

    /// A step that could not be judged: stable back to 100 %, no verdict.
    fn inconclusive(&mut self, figures: WindowFigures, now: Duration) {
        tracing::warn!(target: "routing_rollout", target_desc = %self.target,
            step = figures.step, percent = figures.percent,
            completed = figures.candidate.completed, elapsed = ?figures.elapsed,
            "rollout step got too little candidate traffic to judge; back to stable");
        if let Err(e) = self.applier.apply_split(&self.target, 0.0) {
            self.fail(0.0, &e, now);
            return;
        }
        self.window = None;
        self.state = RolloutState::Inconclusive { figures };
        self.push(now, RolloutEventKind::Inconclusive { figures });
    }

    fn roll_back(&mut self, reason: RollbackReason, figures: WindowFigures, now: Duration) {
        tracing::warn!(target: "routing_rollout", target_desc = %self.target,
            step = figures.step, percent = figures.percent, %reason,
            completed = figures.candidate.completed, errors = figures.candidate.errors,
            stable_completed = figures.stable.completed, stable_errors = figures.stable.errors,
            "rollout check failed; rolling back to stable");
        if let Err(e) = self.applier.apply_split(&self.target, 0.0) {
            self.fail(0.0, &e, now);
            return;
        }
        self.window = None;
        self.state = RolloutState::RolledBack { reason, figures };
        self.push(now, RolloutEventKind::RolledBack { reason, figures });
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
    use crate::{split_weights, RolloutPlanSpec};
    use routing_core::ConfigDuration;

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
            max_step: None,
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
