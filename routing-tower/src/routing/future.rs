//! [`ResponseFuture`]: the response future of [`Routing`](super::Routing).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;

use super::forward::error_response;
use crate::body::{self, Body, BoxError};
use crate::error::{self, RoutingError};

/// The boxed future of a routed request.
pub(super) type Routed =
    tracing::instrument::Instrumented<Pin<Box<dyn Future<Output = Response<Body>> + Send>>>;

pin_project_lite::pin_project! {
    /// The response future of [`Routing`](super::Routing).
    pub struct ResponseFuture<F, E> {
        #[pin]
        pub(super) kind: Kind<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    pub(super) enum Kind<F, E> {
        /// Answered by the layer itself (404, 503, redirect, fixed response).
        Ready { response: Option<Response<Body>>, _e: std::marker::PhantomData<fn() -> E> },
        /// Fall-through to the wrapped service.
        Inner { #[pin] future: F },
        /// Routed to a backend.
        Routed { #[pin] future: Routed },
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E> ResponseFuture<F, E> {
    pub(super) fn ready(response: Response<Body>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
                _e: std::marker::PhantomData,
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { response, .. } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled after completion: answer again rather than panic.
                None => Poll::Ready(Ok(error_response(RoutingError::NoRoute(error::NoRoute)))),
            },
            KindProj::Inner { future } => future.poll(cx).map_ok(|r| r.map(body::boxed)),
            KindProj::Routed { future } => future.poll(cx).map(Ok),
        }
    }
}
