//! The fleet's rollout controller: one leader, judged on the fleet's metrics,
//! writing the HTTPRoute, persisting its step.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use routing_kube::{LeaseError, LeaseLock, LeaseState};
use routing_rollout::{
    Rollout, RolloutEvent, RolloutEventKind, RolloutPlan, RolloutState, RolloutTarget,
};

use crate::metrics::{FleetMetrics, FleetSnapshot, Untrusted};
use crate::prom::PromError;
use crate::weights::{from_ms, to_ms, HttpRouteWeights, PersistedStep, WeightsError};

/// Why a round of the controller failed. Nothing is written on a failed round; the
/// next round starts over from what is persisted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The Lease could not be read or written.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// Prometheus failed.
    #[error(transparent)]
    Metrics(#[from] PromError),
    /// The HTTPRoute could not be read or written.
    #[error(transparent)]
    Route(#[from] WeightsError),
    /// The persisted step is not a step of this controller's plan (the plan
    /// changed under a running rollout): nothing is written; fix the plan or the
    /// annotation.
    #[error("annotation `{annotation}`: step {step} is not in the plan ({steps} steps)", annotation = crate::STEP_ANNOTATION)]
    StepNotInPlan {
        /// The persisted step.
        step: usize,
        /// The plan's number of steps.
        steps: usize,
    },
}

/// What one [`FleetRollout::round`] did.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// Whether this replica is the leader (only the leader reads metrics and writes).
    pub leader: bool,
    /// The step this leader took over from the persisted state, when it just did.
    pub resumed: Option<PersistedStep>,
    /// Why the window was not judged this round, if it was not.
    pub untrusted: Option<Untrusted>,
    /// The figures the round was judged on.
    pub snapshot: Option<FleetSnapshot>,
    /// The rollout's events of this round.
    pub events: Vec<RolloutEvent>,
    /// The rollout's state after the round (`None` when not leader).
    pub state: Option<RolloutState>,
}

/// A rollout of one HTTPRoute rule judged on the whole fleet.
///
/// Every replica may run one; each [`round`](Self::round) first renews or tries
/// to take the Lease, and only the leader goes on:
///
/// 1. Taking over, it reads the step persisted on the HTTPRoute
///    ([`PersistedStep`]): a running step is **resumed** — same step, same window
///    start, its baseline read from Prometheus *at* the window start — so a
///    failover neither restarts the plan nor loses the step's traffic; a finished
///    rollout stays finished; with nothing persisted, the plan starts.
/// 2. It reads the fleet's figures ([`FleetMetrics::snapshot`]). If the window
///    cannot be trusted (a replica down, a failed scrape, a restart:
///    [`Untrusted`]) it does not tick: no verdict on a partial view. Once the last
///    `settle` span is clean again, the step restarts with a fresh window (the
///    rollout's pause and resume), since the old window lost traffic for good.
/// 3. Otherwise it ticks the [`Rollout`]: splits go to the HTTPRoute
///    ([`HttpRouteWeights`], server-side apply) and every replica converges
///    through its watcher; a started step or a verdict is persisted.
#[derive(Debug)]
pub struct FleetRollout {
    lock: LeaseLock,
    metrics: FleetMetrics,
    weights: HttpRouteWeights,
    plan: RolloutPlan,
    target: RolloutTarget,
    settle: Duration,
    rollout: Option<Rollout<HttpRouteWeights>>,
    epoch: SystemTime,
    window_start: SystemTime,
    finished: Option<String>,
    /// Whether the last round held the Lease, for what else only the leader does
    /// (route status: [`routing_kube::Options::write_status`]).
    leader: tokio::sync::watch::Sender<bool>,
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn state_name(s: &RolloutState) -> &'static str {
    match s {
        RolloutState::Pending => "pending",
        RolloutState::Running { .. } => "running",
        RolloutState::Paused { .. } => "paused",
        RolloutState::Promoted => "promoted",
        RolloutState::RolledBack { .. } => "rolled_back",
        RolloutState::Inconclusive { .. } => "inconclusive",
        RolloutState::Aborted => "aborted",
        _ => "failed",
    }
}

impl FleetRollout {
    /// A controller of `target` per `plan`, elected by `lock`, judged on `metrics`,
    /// writing `weights`. After an untrusted window it waits for `settle` of clean
    /// scrapes (a few scrape intervals) before restarting the step.
    pub fn new(
        lock: LeaseLock,
        metrics: FleetMetrics,
        weights: HttpRouteWeights,
        plan: RolloutPlan,
        target: RolloutTarget,
        settle: Duration,
    ) -> Self {
        Self {
            lock,
            metrics,
            weights,
            plan,
            target,
            settle,
            rollout: None,
            epoch: UNIX_EPOCH,
            window_start: UNIX_EPOCH,
            finished: None,
            leader: tokio::sync::watch::Sender::new(false),
        }
    }

    /// `true` while this controller holds the Lease (as of its last round): give it
    /// to the replica's route source so that the fleet's one leader is also the one
    /// that writes route status.
    ///
    /// ```no_run
    /// # fn wire(ctl: &routing_fleet::FleetRollout, client: kube::Client, router: routing_core::Router) {
    /// let options = routing_kube::Options::default()
    ///     .namespace("web")
    ///     .write_status("example.com/routing", ctl.leadership());
    /// let source = routing_kube::KubeSource::spawn(client, router, options);
    /// # drop(source); }
    /// ```
    #[must_use]
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<bool> {
        self.leader.subscribe()
    }

    /// The Lease candidate.
    pub fn lock_mut(&mut self) -> &mut LeaseLock {
        &mut self.lock
    }

    /// One round at the current time; see the type's docs.
    ///
    /// # Errors
    /// [`FleetError`]: the Lease, Prometheus or the HTTPRoute failed.
    pub async fn round(&mut self) -> Result<Round, FleetError> {
        let mut round = Round::default();
        let state = self.lock.try_acquire_or_renew().await;
        let leads = matches!(state, Ok(LeaseState::Leader));
        self.leader
            .send_if_modified(|was| std::mem::replace(was, leads) != leads);
        if state? != LeaseState::Leader {
            // Not (or no longer) the leader: forget everything; a later takeover
            // reads the persisted step again.
            self.rollout = None;
            self.finished = None;
            return Ok(round);
        }
        round.leader = true;
        if self.finished.is_some() {
            return Ok(round);
        }
        let now = SystemTime::now();
        if self.rollout.is_none() {
            match self.weights.read_step().await? {
                Some(p) if p.state == "running" => {
                    self.epoch = from_ms(p.epoch_ms);
                    self.window_start = from_ms(p.window_start_ms);
                    let stable = self
                        .metrics
                        .counts(
                            &self.target,
                            self.target.stable(),
                            self.epoch,
                            self.window_start,
                        )
                        .await?;
                    let candidate = self
                        .metrics
                        .counts(
                            &self.target,
                            self.target.candidate(),
                            self.epoch,
                            self.window_start,
                        )
                        .await?;
                    self.rollout = Some(
                        Rollout::restore(
                            self.plan.clone(),
                            self.target.clone(),
                            self.weights.clone(),
                            p.step,
                            since_epoch(self.window_start),
                            (stable, candidate),
                        )
                        .ok_or(FleetError::StepNotInPlan {
                            step: p.step,
                            steps: self.plan.steps().len(),
                        })?,
                    );
                    tracing::info!(target: "routing_fleet", step = p.step, percent = p.percent,
                        from = %p.holder, "resuming the persisted rollout step");
                    round.resumed = Some(p);
                }
                Some(p) => {
                    self.finished = Some(p.state);
                    return Ok(round);
                }
                None => {
                    self.epoch = now;
                    self.window_start = now;
                    self.rollout = Some(Rollout::new(
                        self.plan.clone(),
                        self.target.clone(),
                        self.weights.clone(),
                    ));
                }
            }
        }
        let snapshot = self
            .metrics
            .snapshot(&self.target, self.epoch, self.window_start, now)
            .await?;
        let Some(rollout) = self.rollout.as_mut() else {
            return Ok(round);
        };
        let at = since_epoch(now);
        let pending = *rollout.state() == RolloutState::Pending;
        if !pending {
            if let Err(why) = snapshot.health.trusted() {
                round.untrusted = Some(why);
                let recent = self
                    .metrics
                    .health(now.checked_sub(self.settle).unwrap_or(now), now)
                    .await?;
                if recent.trusted().is_ok() {
                    // The old window lost traffic for good: the step restarts.
                    tracing::warn!(target: "routing_fleet", %why, "the step's window cannot be judged; restarting it");
                    let mut events = rollout.pause(at).unwrap_or_default();
                    events.extend(rollout.resume(at, &snapshot).unwrap_or_default());
                    round.events = events;
                    self.window_start = now;
                    self.persist(now).await?;
                } else {
                    tracing::info!(target: "routing_fleet", %why, "no verdict: waiting for the fleet's scrapes to be whole");
                }
                round.state = self.rollout.as_ref().map(|r| r.state().clone());
                round.snapshot = Some(snapshot);
                return Ok(round);
            }
        }
        round.events = rollout.tick(at, &snapshot);
        let moved = round.events.iter().any(|e| {
            matches!(
                e.kind,
                RolloutEventKind::StepStarted { .. }
                    | RolloutEventKind::Promoted { .. }
                    | RolloutEventKind::RolledBack { .. }
                    | RolloutEventKind::Inconclusive { .. }
                    | RolloutEventKind::TargetFailed { .. }
            )
        });
        if round
            .events
            .iter()
            .any(|e| matches!(e.kind, RolloutEventKind::StepStarted { .. }))
        {
            self.window_start = now;
        }
        if moved {
            self.persist(now).await?;
        }
        round.state = self.rollout.as_ref().map(|r| r.state().clone());
        round.snapshot = Some(snapshot);
        Ok(round)
    }

    async fn persist(&mut self, _now: SystemTime) -> Result<(), FleetError> {
        let Some(rollout) = self.rollout.as_ref() else {
            return Ok(());
        };
        let (step, percent) = match rollout.state() {
            RolloutState::Running { step, percent } | RolloutState::Paused { step, percent } => {
                (*step, *percent)
            }
            _ => (0, rollout.candidate_percent()),
        };
        let state = state_name(rollout.state());
        let p = PersistedStep {
            epoch_ms: to_ms(self.epoch),
            step,
            percent,
            window_start_ms: to_ms(self.window_start),
            state: if state == "paused" { "running" } else { state }.to_owned(),
            holder: self.lock.identity().to_owned(),
        };
        if !self.lock.is_leader() {
            return Ok(());
        }
        self.weights.write_step(&p).await?;
        if p.state != "running" {
            self.finished = Some(p.state);
        }
        Ok(())
    }

    /// Gives the Lease up (e.g. on shutdown), so another replica takes over now.
    ///
    /// # Errors
    /// [`FleetError::Lease`] when the API server fails.
    pub async fn release(&mut self) -> Result<(), FleetError> {
        self.rollout = None;
        self.leader.send_replace(false);
        Ok(self.lock.release().await?)
    }
}
