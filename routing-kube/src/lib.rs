//! Kubernetes as the routing source: watches the routing users already keep in a
//! cluster and applies it to a [`routing_core::Router`].
//!
//! [`KubeSource::spawn`] runs one kube-rs `watcher` + reflector per [`Kind`]
//! (`HTTPRoute`, `GRPCRoute`, `Gateway`, `ReferenceGrant`, `VirtualService`, `DestinationRule`, as
//! dynamic objects) and one for `EndpointSlice`s, selected by namespace and labels
//! ([`Options`]; parentRef selection is the importers' `gateways` option). After
//! every kind has been listed once, and then after each change has been quiet for
//! the debounce time, the whole set is rendered to one manifest per object, read by
//! [`routing_core::import`], each backend given its Service's endpoints as an
//! endpoint pool (`endpoints`: ready ones take new requests; terminating ones drain,
//! serving-while-terminating ones only when no pod of the version is ready), so the
//! rule picks a version and the pool a pod, and applied with [`Router::update`](routing_core::Router::update). An
//! invalid set keeps the old table live; the reason goes into [`Status`] and into
//! a core/v1 `Warning` Event about the object at fault. [`Status`] carries the
//! applied generation and a fingerprint that is equal on every replica that
//! applied the same objects. With [`Options::write_status`], the replica that holds
//! the election also writes each Gateway API route's `Accepted` and `ResolvedRefs`
//! conditions under `status.parents`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use routing_kube::{KubeSource, Options};
//! let router = routing_core::Router::new(routing_core::Config::default())?;
//! let client = kube::Client::try_default().await?;
//! let source = KubeSource::spawn(client, router.clone(), Options::default().namespace("web"));
//! // `router` now follows the cluster; `source.status()` says what was applied.
//! # drop(source); Ok(()) }
//! ```
//!
//! [`LeaseLock`] elects one writer per fleet through a `coordination.k8s.io/v1`
//! Lease (routing-fleet's rollout controller uses it).
//!
//! Backends are versions and their pods an endpoint pool, so stickiness pins a
//! version, not a pod. [`SecretKey`] follows the Secret holding the cookie key ring
//! the replicas share.

mod kinds;
mod lease;
mod render;
mod secret;
mod source;
mod status;

pub use kinds::Kind;
pub use lease::{LeaseError, LeaseLock, LeaseState};
pub use render::{render, RenderError, Rendered};
pub use secret::SecretKey;
pub use source::{KubeSource, Options, Status, StatusWriter};
