//! The second level of selection in the HTTP layer: a backend (a version) that owns
//! a pool of endpoints (`backends[].endpoints`, or EndpointSlices through
//! routing-kube) is served by an [`EndpointBalancer`], which picks the endpoint of
//! each request ([`EndpointPool::pick`]: least request, or the rule's hash key over
//! the pool's Maglev table), connects to it, counts its requests in flight and ejects
//! it on consecutive failures (the table's `outlier_detection`, per endpoint).
//!
//! The rule's choice (weights, sticky cookie, retries) stays on backends: a cookie
//! names the version, so a pod that goes away moves the session to another pod of
//! the same version.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::BodyExt as _;
use routing_core::{EndpointPool, OutlierDetection};
use tokio::time::Instant;

use crate::body::{self, Body};
use crate::client::{HttpBackend, HttpBackendBuilder};
use crate::outcome::{Failure, UpstreamError};

/// What the layer tells an [`EndpointBalancer`] about a request (a request
/// extension set by the layer for backends with a pool).
#[derive(Debug, Clone)]
pub(crate) struct EndpointChoice {
    pub(crate) pool: Arc<EndpointPool>,
    pub(crate) key: Option<u64>,
    pub(crate) outlier: Option<OutlierDetection>,
}

/// Per-endpoint state, kept while the endpoint stays in the pool.
struct EndpointSlot {
    client: HttpBackend,
    in_flight: Arc<AtomicU64>,
    requests: u64,
    failures_5xx: u32,
    failures_gateway: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

#[derive(Default)]
struct Slots {
    /// The pool the slots were last pruned for (its address).
    pool: usize,
    by_addr: HashMap<SocketAddr, EndpointSlot>,
}

struct Inner {
    builder: HttpBackendBuilder,
    slots: Mutex<Slots>,
}

/// A backend service over an endpoint pool: register it under the backend's name
/// ([`Backends::with`](crate::Backends::with)); the layer hands it the backend's
/// current pool with each request, so pool changes through
/// [`Router::update`](routing_core::Router::update) apply to the next request and
/// new endpoints are connected on first use (one pooled [`HttpBackend`] each,
/// sharing the builder's connection pool settings).
///
/// ```
/// use routing_tower::{endpoints::EndpointBalancer, client::HttpBackend, Backends, Routing};
/// let config = routing_core::Config::from_yaml(r#"
/// backends:
///   - name: v1
///     endpoints: [{address: "127.0.0.1:9001"}, {address: "127.0.0.1:9002"}]
/// routes: [{name: r, rules: [{backends: [{name: v1}]}]}]
/// "#).unwrap();
/// let backends = Backends::new().with("v1", EndpointBalancer::new(HttpBackend::builder()));
/// let proxy = Routing::dispatch(routing_core::Router::new(config).unwrap(), backends);
/// # let _ = proxy;
/// ```
#[derive(Clone)]
pub struct EndpointBalancer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EndpointBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointBalancer").finish_non_exhaustive()
    }
}

/// One endpoint as an [`EndpointBalancer`] sees it ([`EndpointBalancer::endpoints`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStatus {
    /// Its address.
    pub address: SocketAddr,
    /// Requests sent to it so far.
    pub requests: u64,
    /// Requests in flight (until the response body ends).
    pub in_flight: u64,
    /// Whether outlier detection ejects it now.
    pub ejected: bool,
}

impl EndpointBalancer {
    /// A balancer connecting through clients of `builder` (protocol, TLS, pool).
    ///
    /// ```
    /// let b = routing_tower::endpoints::EndpointBalancer::new(routing_tower::HttpBackend::builder());
    /// assert!(b.endpoints().is_empty());
    /// ```
    #[must_use]
    pub fn new(builder: HttpBackendBuilder) -> Self {
        Self {
            inner: Arc::new(Inner {
                builder,
                slots: Mutex::new(Slots::default()),
            }),
        }
    }

    /// The endpoints it has sent requests to (and that are still in the pool),
    /// sorted by address.
    ///
    /// ```
    /// let b = routing_tower::endpoints::EndpointBalancer::new(routing_tower::HttpBackend::builder());
    /// assert_eq!(b.endpoints(), vec![]);
    /// ```
    #[must_use]
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        let now = Instant::now();
        let slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<EndpointStatus> = slots
            .by_addr
            .iter()
            .map(|(a, s)| EndpointStatus {
                address: *a,
                requests: s.requests,
                in_flight: s.in_flight.load(Ordering::Relaxed),
                ejected: s.ejected_until.is_some_and(|t| t > now),
            })
            .collect();
        out.sort_by_key(|s| s.address);
        out
    }

    /// Picks and checks out an endpoint: its address, client and in-flight guard.
    fn checkout(&self, choice: &EndpointChoice) -> Option<(SocketAddr, HttpBackend, InFlight)> {
        let now = Instant::now();
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pool = &*choice.pool;
        let eps = pool.endpoints();
        let id = Arc::as_ptr(&choice.pool) as usize;
        if slots.pool != id {
            slots.pool = id;
            slots
                .by_addr
                .retain(|a, _| eps.iter().any(|e| e.address() == *a));
        }
        let by_addr = &slots.by_addr;
        let load = |i: usize| {
            by_addr
                .get(&eps[i].address())
                .map_or(0, |s| s.in_flight.load(Ordering::Relaxed))
        };
        let live = |i: usize| {
            by_addr
                .get(&eps[i].address())
                .is_none_or(|s| s.ejected_until.is_none_or(|t| t <= now))
        };
        let mut rng = rand::rng();
        // All ejected: ejection never empties a pool (panic mode, as Envoy's).
        let i = pool
            .pick(&mut rng, choice.key, load, live)
            .or_else(|| pool.pick(&mut rng, choice.key, load, |_| true))?;
        let addr = eps[i].address();
        let builder = &self.inner.builder;
        let slot = slots.by_addr.entry(addr).or_insert_with(|| EndpointSlot {
            client: builder.build(addr),
            in_flight: Arc::new(AtomicU64::new(0)),
            requests: 0,
            failures_5xx: 0,
            failures_gateway: 0,
            ejections: 0,
            ejected_until: None,
        });
        slot.requests += 1;
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Some((
            addr,
            slot.client.clone(),
            InFlight(Arc::clone(&slot.in_flight)),
        ))
    }

    /// Records how a request to `addr` ended: `status` of the response, or `None`
    /// for a local failure (connect, reset).
    fn record(&self, addr: SocketAddr, status: Option<u16>, od: Option<&OutlierDetection>) {
        let Some(od) = od else { return };
        let now = Instant::now();
        let mut slots = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = slots.by_addr.len().max(1);
        let ejected = slots
            .by_addr
            .values()
            .filter(|s| s.ejected_until.is_some_and(|t| t > now))
            .count();
        let Some(slot) = slots.by_addr.get_mut(&addr) else {
            return;
        };
        let (is_5xx, is_gateway) = match status {
            None => (true, true),
            Some(s) => (s >= 500, matches!(s, 502..=504)),
        };
        if !is_5xx {
            slot.failures_5xx = 0;
            slot.failures_gateway = 0;
            if slot.ejected_until.is_some_and(|t| t <= now) {
                slot.ejected_until = None;
            }
            return;
        }
        slot.failures_5xx += 1;
        slot.failures_gateway += u32::from(is_gateway);
        let trips = od.consecutive_5xx.is_some_and(|n| slot.failures_5xx >= n)
            || od
                .consecutive_gateway_errors
                .is_some_and(|n| slot.failures_gateway >= n);
        let already = slot.ejected_until.is_some_and(|t| t > now);
        // One ejection is always allowed; more only under max_ejection_percent.
        let room =
            ejected == 0 || (ejected + 1) * 100 <= usize::from(od.max_ejection_percent) * total;
        if trips && !already && room {
            slot.ejections = slot.ejections.saturating_add(1);
            let time = od
                .base_ejection_time
                .saturating_mul(slot.ejections)
                .min(od.max_ejection_time.max(od.base_ejection_time));
            slot.ejected_until = Some(now + time);
            slot.failures_5xx = 0;
            slot.failures_gateway = 0;
            tracing::info!(endpoint = %addr, ejection = ?time, "endpoint ejected");
        }
    }
}

/// Holds one request in flight at an endpoint until dropped (the response body's end).
struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl tower::Service<Request<Body>> for EndpointBalancer {
    type Response = Response<Body>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let Some(choice) = req.extensions_mut().remove::<EndpointChoice>() else {
            return Box::pin(std::future::ready(Err(no_endpoint(
                "the backend has no endpoint pool in the routing table",
            ))));
        };
        let Some((addr, client, guard)) = self.checkout(&choice) else {
            return Box::pin(std::future::ready(Err(no_endpoint(
                "no endpoint of the pool takes new requests",
            ))));
        };
        let this = self.clone();
        let od = choice.outlier;
        Box::pin(async move {
            let mut client = client;
            let res = tower::Service::call(&mut client, req).await;
            match res {
                Ok(res) => {
                    this.record(addr, Some(res.status().as_u16()), od.as_ref());
                    // The guard lives until the body is dropped.
                    Ok(res.map(|b| {
                        body::boxed(b.map_frame(move |f| {
                            let _held = &guard;
                            f
                        }))
                    }))
                }
                Err(e) => {
                    this.record(addr, None, od.as_ref());
                    drop(guard);
                    Err(e)
                }
            }
        })
    }
}

fn no_endpoint(why: &'static str) -> UpstreamError {
    UpstreamError {
        kind: Failure::Connect,
        addr: None,
        source: why.into(),
    }
}
