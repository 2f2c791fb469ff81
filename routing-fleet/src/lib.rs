//! A rollout judged on a whole fleet (issue 16's fleet half).
//!
//! Every replica embeds the layer and follows the routing kept in Kubernetes
//! (routing-kube); one of them, elected by a `coordination.k8s.io/v1` Lease
//! ([`routing_kube::LeaseLock`]), runs the rollout:
//!
//! * [`FleetMetrics`] reads the layer's metrics of **every** replica from
//!   Prometheus' HTTP API ([`Prometheus`]): the increase per backend and rule over
//!   the rollout's epoch, from the raw samples with `increase()`'s reset rule but
//!   without its extrapolation (short windows over-counted by it), summed over
//!   replicas (counter resets of restarted pods absorbed), `histogram_quantile` for
//!   p99; a [`FleetSnapshot`] is the
//!   [`MetricsSource`](routing_rollout::MetricsSource) a tick is judged on, and its
//!   [`FleetHealth`] says whether the window can be judged at all ([`Untrusted`]).
//! * [`HttpRouteWeights`] writes the split as the HTTPRoute's `backendRefs`
//!   weights by server-side apply; every replica's watcher converges on it.
//! * [`FleetRollout`] ties them: only the leader ticks and writes; the step and
//!   its window start are persisted on the HTTPRoute ([`PersistedStep`]) so a new
//!   leader resumes the same step.
//!
//! The binary `fleet-replica` is one replica: routing-kube's source, the
//! routing-tower layer and its `/metrics`, optionally the controller.

mod controller;
mod metrics;
mod prom;
mod weights;

pub use controller::{FleetError, FleetRollout, Round};
pub use metrics::{FleetHealth, FleetMetrics, FleetSnapshot, Untrusted};
pub use prom::{PromError, Prometheus, Sample};
pub use weights::{HttpRouteWeights, PersistedStep, WeightsError, STEP_ANNOTATION};
