//! A tower [`Layer`](tower::Layer) that brings canary and blue/green splits, header
//! A/B routing, sticky sessions, retries, timeouts, fault injection and outlier
//! ejection to any HTTP service (axum, hyper, or anything tower), driven by a
//! [`routing_core::Router`] that can be hot-swapped at any time.
//!
//! # Two modes
//!
//! **Dispatch**: the layer owns named [`Backends`] (in-process services such as
//! axum `Router`s, or [`HttpBackend`]s forwarding to upstreams) and sends each
//! request to the one the route table picks:
//!
//! ```
//! use axum::routing::get;
//! use routing_tower::{Backends, RoutingLayer};
//!
//! let router = routing_core::Router::from_yaml(r#"
//! backends: [{name: v1}, {name: v2}]
//! routes:
//!   - name: shop
//!     rules:
//!       - matches: [{headers: [{name: x-canary, exact: "true"}]}]
//!         backends: [{name: v2}]
//!       - backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
//!         session_persistence: {cookie: {name: shop-sticky, ttl: 1h}}
//! "#).unwrap();
//! let v1 = axum::Router::new().route("/", get(|| async { "v1" }));
//! let v2 = axum::Router::new().route("/", get(|| async { "v2" }));
//! let backends = Backends::new().with("v1", v1).with("v2", v2);
//! let app: axum::Router = axum::Router::new().layer(RoutingLayer::new(router.clone(), backends));
//! // serve `app` with `axum::serve`; `router.update_yaml(..)` changes weights live.
//! # let _ = app;
//! ```
//!
//! **Annotate**: the layer records its decision as a [`RouteDecision`] in the
//! request's extensions and calls the wrapped service, for applications that
//! forward by themselves ([`RoutingLayer::annotate`]).
//!
//! # What the layer applies
//!
//! Everything a rule's policy asks for (see `routing_core::config_reference`):
//!
//! | Feature | Behaviour |
//! |---|---|
//! | Weighted choice | exact weights (alias table), round robin, or consistent hashing on a header, cookie, query parameter or [`ClientAddr`](routing_core::ClientAddr) |
//! | Cookie stickiness | the first response sets an opaque, MAC'd cookie ([`cookie`]); later requests stay on its backend, also across weight changes; a forged, expired or stale cookie gets a fresh choice and a new cookie, never an error |
//! | Filters | request/response header set/add/remove, redirects, URL rewrites (host, full path, prefix) |
//! | Mirroring | a percentage of requests copied to another backend in the background; the copy's response is dropped and never delays the client |
//! | Timeouts | per request and per try, answered with 504 |
//! | Retries | on 5xx, gateway errors, resets, connect failures or listed statuses; only replayable bodies (recorded as they stream, up to a limit); a retry prefers another backend; a per-rule [retry budget](budget) bounds the extra load |
//! | Faults | delay and abort percentages, optionally only for requests matching headers |
//! | Outlier detection | consecutive 5xx / gateway errors eject a backend for a time growing with repeat ejections, bounded by a max percent ([`outlier`]); ejections feed routing-core's health and end on their own |
//! | Concurrency limits | per backend, with a bounded queue; overflow is answered 503 ([`limit`]) |
//! | Stats | per backend: requests, status classes, failures, retries, latency histogram, ejections ([`RoutingLayer::stats`]) |
//! | gRPC | trailers-only `grpc-status` counted for stats and outlier detection and retried on `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`; a `grpc-status` in the trailers after messages counted when it arrives (not retried); streaming RPCs on rules with retries stream while recorded; `grpc-timeout` honoured; the layer's own answers as gRPC statuses ([`grpc`]) |
//! | Protocols | upstreams in HTTP/1.1, h2c or TLS (h2/http1.1 by ALPN, SNI, custom CA, mTLS: [`client`], [`tls`]); WebSocket upgrades over HTTP/1.1 and HTTP/2 extended CONNECT spliced, kept out of latency histograms and timeouts ([`upgrade`]); listeners with HTTP/1.1 + h2c or TLS ([`server`]) |
//!
//! Requests carry `tracing` spans with route, rule and backend names.
//!
//! # Layout
//!
//! One module per concern, tower-style: `routing` (the [`Routing`] service,
//! [`RoutingLayer`], [`RoutingLayerBuilder`], [`ResponseFuture`], and the one
//! function every try to a backend goes through), `sticky` (over [`cookie`]), `retry`
//! ([`budget`]), `mirror`, `fault` and `filters` (header filters, URL rewrites,
//! redirects). At the bottom, [`outcome`] classifies how a try ended, once; the
//! layer records that outcome once, into [`stats`] and into the [`outlier`]
//! detector (which takes routing-core's `OutlierDetection` and knows nothing of
//! stats). Every random choice draws from one generator seeded by
//! [`RoutingLayerBuilder::rng_seed`], and latencies, budgets and ejections read one
//! [`clock`].
//!
//! # Errors
//!
//! The layer never fails a request with an error of its own: it answers 404 (no
//! route), 502 (backend failed without a response), 503 (no healthy backend, or
//! queue full) or 504 (timeout), and puts a [`RoutingError`] in the response's
//! extensions for callers that want the reason.
//!
//! # Hot swap
//!
//! The layer reads the `Router` on every request: a swap through
//! [`Router::update`](routing_core::Router::update) is seen by the next request,
//! never blocks one, never fails one. Stats, ejections, retry budgets and
//! concurrency limits of backends that stay are kept across swaps.

pub mod backends;
pub mod body;
pub mod client;
pub mod clock;
mod connect;
pub mod cookie;
pub mod deadline;
mod decision;
pub mod endpoints;
pub mod error;
mod fault;
mod filters;
pub mod grpc;
pub mod h1;
pub mod limit;
pub mod metrics;
mod mirror;
pub mod outcome;
pub mod outlier;
mod replay;
mod retry;
mod rng;
pub mod rollout;
mod routing;
pub mod server;
mod state;
pub mod stats;
mod sticky;
pub mod tls;
pub mod upgrade;

pub use backends::{BackendService, Backends};
pub use body::{Body, BoxError};
pub use client::HttpBackend;
pub use cookie::CookieKey;
pub use decision::RouteDecision;
pub use error::RoutingError;
pub use retry::budget;
pub use routing::{NotFound, ResponseFuture, Routing, RoutingLayer, RoutingLayerBuilder};
pub use routing_core;
