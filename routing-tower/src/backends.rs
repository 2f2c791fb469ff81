//! The named services a dispatching layer sends requests to.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{Request, Response};
use tower::{Service, ServiceExt as _};

use crate::body::{self, Body, BoxError};

/// The future of one backend call.
pub(crate) type BackendFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

/// A backend as the layer holds it: type-erased and shared (cloning it is one
/// reference count).
///
/// Each call clones the concrete service, waits for it to be ready and calls it,
/// all inside one boxed future: one allocation per call, where a boxed cloneable
/// tower service needs three.
#[derive(Clone)]
pub struct BackendService(Arc<dyn DynBackend>);

impl fmt::Debug for BackendService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackendService(..)")
    }
}

impl BackendService {
    /// Calls the backend (readiness is awaited inside the future).
    pub(crate) fn call(&self, req: Request<Body>) -> BackendFuture {
        self.0.call(req)
    }
}

trait DynBackend: Send + Sync + 'static {
    fn call(&self, req: Request<Body>) -> BackendFuture;
}

struct Erased<S>(S);

impl<S, B> DynBackend for Erased<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn call(&self, req: Request<Body>) -> BackendFuture {
        Box::pin(self.0.clone().oneshot(req).map(|r| match r {
            Ok(res) => Ok(res.map(body::boxed)),
            Err(e) => Err(e.into()),
        }))
    }
}

/// Named backends, each any `tower::Service` taking `http::Request<Body>`.
///
/// The names are the backend names of the routing configuration. A backend the
/// configuration names but this set lacks is answered with 503
/// ([`NoHealthyBackend`](crate::error::NoHealthyBackend)); a service here that no
/// rule names is simply never called.
///
/// ```
/// use routing_tower::{Backends, Body};
/// use std::convert::Infallible;
/// let hello = tower::service_fn(|_req: http::Request<Body>| async {
///     Ok::<_, Infallible>(http::Response::new(routing_tower::body::full("v1")))
/// });
/// let backends = Backends::new().with("v1", hello);
/// assert!(backends.contains("v1"));
/// assert_eq!(backends.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Backends {
    by_name: HashMap<Arc<str>, BackendService>,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.by_name.keys().map(|k| &**k).collect();
        names.sort_unstable();
        f.debug_struct("Backends").field("names", &names).finish()
    }
}

impl Backends {
    /// An empty set.
    ///
    /// ```
    /// assert!(routing_tower::Backends::new().is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the backend `name`.
    ///
    /// Any service works: an in-process axum `Router`, a `tower::service_fn`, or an
    /// [`HttpBackend`](crate::client::HttpBackend) forwarding to an upstream.
    ///
    /// ```
    /// # use routing_tower::{Backends, Body};
    /// let echo = tower::service_fn(|req: http::Request<Body>| async move {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(req.into_body()))
    /// });
    /// let b = Backends::new().with("echo", echo);
    /// assert!(b.contains("echo"));
    /// ```
    #[must_use]
    pub fn with<S, B>(mut self, name: impl Into<Arc<str>>, service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.insert(name, service);
        self
    }

    /// Adds (or replaces) the backend `name`; see [`with`](Self::with).
    ///
    /// ```
    /// # use routing_tower::{Backends, Body};
    /// let mut b = Backends::new();
    /// b.insert("a", tower::service_fn(|_r: http::Request<Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(routing_tower::body::empty()))
    /// }));
    /// assert!(b.contains("a"));
    /// ```
    pub fn insert<S, B>(&mut self, name: impl Into<Arc<str>>, service: S)
    where
        S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.by_name.insert(name.into(), boxed(service));
    }

    /// Whether `name` has a service.
    ///
    /// ```
    /// assert!(!routing_tower::Backends::new().contains("a"));
    /// ```
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Number of backends.
    ///
    /// ```
    /// assert_eq!(routing_tower::Backends::new().len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there is none.
    ///
    /// ```
    /// assert!(routing_tower::Backends::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The names, in no particular order.
    ///
    /// ```
    /// # use routing_tower::{Backends, Body};
    /// # let s = tower::service_fn(|_r: http::Request<Body>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(routing_tower::body::empty())) });
    /// let b = Backends::new().with("a", s);
    /// assert_eq!(b.names().collect::<Vec<_>>(), ["a"]);
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(|k| &**k)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&BackendService> {
        self.by_name.get(name)
    }
}

/// Boxes a service into a [`BackendService`].
pub(crate) fn boxed<S, B>(service: S) -> BackendService
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BackendService(Arc::new(Erased(service)))
}

/// A fresh request for one try (or a mirror's copy).
pub(crate) fn request_for_try(parts: &http::request::Parts, body: Body) -> Request<Body> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    *req.extensions_mut() = parts.extensions.clone();
    req
}

/// The backend call as a boxed future. Boxing in this non-async function hides the
/// `Oneshot` type, whose boxed-error trait objects otherwise trip rustc's
/// higher-ranked `Send` check in the async functions that await it.
pub(crate) fn call_backend(svc: &BackendService, req: Request<Body>) -> BackendFuture {
    svc.call(req)
}
