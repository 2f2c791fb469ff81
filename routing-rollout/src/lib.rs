//! Progressive delivery: a [`Rollout`] shifts traffic from a stable backend to a
//! candidate step by step, judges every step on live metrics and rolls back on its own.
//!
//! The crate is *sans-IO*: no clock, no runtime, no sockets. The caller passes the
//! time and the metrics to every call, and the rollout applies its splits as edits of
//! a [`routing_core::Router`] ([`Router::modify`](routing_core::Router::modify)), so
//! the file reloader and the rollout share one owner of the configuration. A driver
//! loop (tokio, the stats of an HTTP layer) lives in `routing-tower`
//! (`routing_tower::rollout`); an XDP load balancer follows the router
//! (`routing_ebpf::XdpBalancer::follow`).
//!
//! # Pieces
//!
//! * A [`RolloutTarget`] names what moves: the split between two backends of an HTTP
//!   rule ([`RolloutTarget::HttpRule`]) or of a `tcp_services` entry
//!   ([`RolloutTarget::TcpService`]). [`RolloutTarget::set_split`] is the edit of a
//!   [`Config`](routing_core::Config); [`ApplySplit`] applies it (to a `Router`, or
//!   to a recorder in tests).
//! * A [`MetricsSource`] gives cumulative per-backend [`BackendCounts`] (completed
//!   requests, errors, a latency histogram); the controller takes differences itself.
//! * A [`RolloutPlan`] (validated from a plain [`RolloutPlanSpec`]) lists the steps,
//!   how long each holds, and the [`Checks`] that gate promotion.
//! * The [`Rollout`] state machine is driven by [`Rollout::tick`]`(now, &metrics)`,
//!   which returns the [`RolloutEvent`]s it caused.
//!
//! # Semantics
//!
//! * The first `tick` sets the first step's split. Each step has a *window*: the
//!   traffic since the step began (deltas through [`BackendCounts::since`]).
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
//! * If a split is refused (e.g. the rule was removed from the config, or the edited
//!   config does not validate) the live table is untouched, the error is recorded and
//!   the rollout stops in [`RolloutState::Failed`]; later ticks do nothing.
//!
//! Every transition is a `tracing` event (target `routing_rollout`) with its figures,
//! and is recorded as a typed [`RolloutEvent`] ([`Rollout::events`]).
//!
//! # Sticky sessions
//!
//! With session persistence on a rule, a step only moves the share of **new**
//! sessions: a client holding a valid cookie stays on its backend across weight
//! changes. On rollback (or abort) the candidate's weight becomes 0; the HTTP layer
//! only honours a cookie whose backend has a weight above 0, so a client pinned to the
//! candidate gets a fresh choice — stable — and a new cookie on its next request.
//! After a promotion, clients pinned to stable move to the candidate the same way.
//!
//! # Example
//!
//! ```
//! use routing_rollout::{BackendCounts, Checks, Rollout, RolloutPlan, RolloutPlanSpec, RolloutState, RolloutTarget};
//! use std::{collections::HashMap, time::Duration};
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
//! let mut rollout = Rollout::new(plan, target, router.clone());
//! let mut metrics: HashMap<String, BackendCounts> = HashMap::new();
//! let secs = Duration::from_secs;
//!
//! rollout.tick(secs(0), &metrics); // step 1: 10 % to v2, through Router::modify
//! assert_eq!(rollout.state(), &RolloutState::Running { step: 0, percent: 10.0 });
//! assert_eq!(router.generation(), 2);
//! metrics.insert("v2".into(), BackendCounts { completed: 1, ..Default::default() });
//! rollout.tick(secs(30), &metrics); // passed: step 2 (100 %)
//! metrics.insert("v2".into(), BackendCounts { completed: 2, ..Default::default() });
//! rollout.tick(secs(60), &metrics);
//! assert_eq!(rollout.state(), &RolloutState::Promoted);
//! ```

mod metrics;
mod plan;
mod rollout;
mod state;
mod target;

pub use metrics::{BackendCounts, LatencyHistogram, MetricsSource};
pub use plan::{Checks, PlanError, PlanProblem, RolloutPlan, RolloutPlanSpec};
pub use rollout::Rollout;
pub use state::{
    BackendFigures, ControlError, RollbackReason, RolloutEvent, RolloutEventKind, RolloutState,
    WindowFigures,
};
pub use target::{split_weights, ApplySplit, RolloutTarget, TargetError, WEIGHT_SCALE};
