//! The response side of a try's limits: a guarded body keeps the backend's
//! concurrency permit until the response body is done, and fails the body when the
//! request's deadline passes or the backend sends nothing for the idle timeout.
//!
//! Timers are armed lazily: only when the backend's body has nothing ready. A body
//! that is ready whenever it is polled (an in-memory answer, a fast upstream)
//! never touches the timer wheel; a client that reads slowly never trips the idle
//! timeout (the body is not polled, so the backend is not waiting on anyone).

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError};
use crate::limit::Permit;

/// The layer's defaults for what a rule does not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Defaults {
    /// The request timeout of rules without `timeouts.request`.
    pub(crate) request_timeout: Option<Duration>,
    /// The longest a response body may wait for its backend between two frames.
    pub(crate) response_idle: Option<Duration>,
}

/// Envoy's default route timeout: the whole response within 15 s.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = routing_core::defaults::REQUEST_TIMEOUT;
/// nginx's default `proxy_read_timeout`: 60 s between two reads from the backend.
pub(crate) const DEFAULT_RESPONSE_IDLE: Duration = routing_core::defaults::RESPONSE_IDLE_TIMEOUT;

impl Default for Defaults {
    fn default() -> Self {
        Self {
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            response_idle: Some(DEFAULT_RESPONSE_IDLE),
        }
    }
}

/// The timeout that ended a response body early; the client sees the body end in an
/// error (hyper closes the connection or resets the stream), never a clean end.
///
/// ```
/// let e = routing_tower::deadline::BodyTimeout { idle: true, after: std::time::Duration::from_secs(60) };
/// assert_eq!(e.to_string(), "response body idle for 60s");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyTimeout {
    /// Whether the idle timeout fired (else the request's deadline).
    pub idle: bool,
    /// The timeout.
    pub after: Duration,
}

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.idle {
            write!(f, "response body idle for {:?}", self.after)
        } else {
            write!(
                f,
                "request timeout after {:?} while sending the response body",
                self.after
            )
        }
    }
}

impl std::error::Error for BodyTimeout {}

/// What a response body is held to.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    /// When the whole request must be done, and the timeout it came from.
    pub(crate) deadline: Option<(Instant, Duration)>,
    /// The longest wait for the next frame.
    pub(crate) idle: Option<Duration>,
    /// The backend's concurrency slot, released when the body ends or is dropped.
    pub(crate) permit: Option<Permit>,
}

impl Limits {
    /// `body`, held to these limits; returned as it is when there is nothing to hold
    /// it to (or it is already over: its permit is released now).
    pub(crate) fn wrap(self, body: Body) -> Body {
        if body.is_end_stream()
            || (self.deadline.is_none() && self.idle.is_none() && self.permit.is_none())
        {
            return body;
        }
        crate::body::boxed(GuardedBody {
            inner: body,
            limits: self,
            timer: None,
            stale: true,
            done: false,
        })
    }
}

/// A response body under a deadline, an idle timeout and a concurrency permit.
struct GuardedBody {
    inner: Body,
    limits: Limits,
    /// Armed at the first `Pending`; re-armed after progress.
    timer: Option<Pin<Box<Sleep>>>,
    /// Frames came since the timer was armed: its target is out of date.
    stale: bool,
    done: bool,
}

impl GuardedBody {
    /// When the body must have made progress, and which timeout that is.
    fn target(&self) -> Option<(Instant, BodyTimeout)> {
        let idle = self.limits.idle.map(|d| {
            (
                Instant::now() + d,
                BodyTimeout {
                    idle: true,
                    after: d,
                },
            )
        });
        let deadline = self.limits.deadline.map(|(at, d)| {
            (
                at,
                BodyTimeout {
                    idle: false,
                    after: d,
                },
            )
        });
        match (idle, deadline) {
            (Some(i), Some(d)) => Some(if d.0 <= i.0 { d } else { i }),
            (i, d) => i.or(d),
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.timer = None;
        self.limits.permit = None;
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stale = true;
                if this.inner.is_end_stream() {
                    this.finish();
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(other) => {
                this.finish();
                return Poll::Ready(other);
            }
            Poll::Pending => {}
        }
        if this.stale {
            this.stale = false;
            this.timer = this.target().map(|(at, _)| match this.timer.take() {
                Some(mut t) => {
                    t.as_mut().reset(at);
                    t
                }
                None => Box::pin(tokio::time::sleep_until(at)),
            });
        }
        if let Some(t) = this.timer.as_mut() {
            if t.as_mut().poll(cx).is_ready() {
                // The deadline, if it has passed; else the idle timeout.
                let err = match (this.limits.deadline, this.limits.idle) {
                    (Some((at, after)), _) if Instant::now() >= at => {
                        BodyTimeout { idle: false, after }
                    }
                    (_, Some(after)) => BodyTimeout { idle: true, after },
                    (Some((_, after)), None) => BodyTimeout { idle: false, after },
                    (None, None) => BodyTimeout {
                        idle: true,
                        after: Duration::ZERO,
                    },
                };
                tracing::debug!(%err, "response body cut");
                this.finish();
                return Poll::Ready(Some(Err(Box::new(err))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// `inner` until `at`: a timeout whose timer is created only if `inner` is not
    /// ready at its first poll. A backend that answers at once (an in-process
    /// handler) costs no timer — and needs no tokio time driver.
    pub(crate) struct Deadline<F> {
        #[pin]
        inner: F,
        at: Instant,
        #[pin]
        sleep: Option<Sleep>,
    }
}

/// [`Deadline`] of `inner` at `at`.
pub(crate) fn deadline<F: std::future::Future>(at: Instant, inner: F) -> Deadline<F> {
    Deadline {
        inner,
        at,
        sleep: None,
    }
}

/// The deadline passed first.
#[derive(Debug)]
pub(crate) struct Elapsed;

impl<F: std::future::Future> std::future::Future for Deadline<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(v) = this.inner.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(tokio::time::sleep_until(*this.at)));
        }
        match this.sleep.as_pin_mut().map(|s| s.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(Elapsed)),
            _ => Poll::Pending,
        }
    }
}
