//! gRPC semantics in the layer.
//!
//! * **Status of a try.** A gRPC response is HTTP 200 whatever happened; the outcome
//!   is its `grpc-status`. A *trailers-only* response (the status in the response
//!   head, as servers send for an error before any message) is classified when its
//!   head arrives: for stats, outlier detection and rollouts it counts as the HTTP
//!   status Envoy maps the code to ([`http_status`]: `UNAVAILABLE` is a 503,
//!   `INTERNAL` a 500, …), and the retry conditions `cancelled`,
//!   `deadline-exceeded`, `internal`, `resource-exhausted` and `unavailable` retry
//!   it.
//! * **Status in trailers.** A response that streams messages carries its
//!   `grpc-status` in the trailers. Its body is watched: when
//!   the trailers arrive, the outcome is recorded then, with the same mapping, into
//!   the backend's stats, its per-rule stats (which rollouts read) and the outlier
//!   detector; the latency recorded is the one of the response head. A body that
//!   ends without `grpc-status`, or in an error, counts as `UNKNOWN` (500) or as the
//!   failure the error is (a stream cut by the request's deadline or the idle
//!   timeout is a timeout); a body the client drops before its end is not recorded.
//!   Such a status is *never retried*: the response head, and maybe messages, have
//!   already been sent to the client, so there is nothing left to replace (Envoy's
//!   router behaves the same once it has forwarded a response).
//! * **`grpc-timeout`.** The request timeout is the smaller of the rule's and the
//!   client's `grpc-timeout` ([`timeout`]).
//! * **The layer's own answers** to a gRPC request (no route, no healthy backend,
//!   timeout, upstream failure, overload) are gRPC answers: HTTP 200,
//!   `content-type: application/grpc`, and `grpc-status`/`grpc-message` in the head
//!   (trailers-only), so a gRPC client sees `UNIMPLEMENTED`, `UNAVAILABLE` or
//!   `DEADLINE_EXCEEDED` instead of a protocol error ([`answer`]).
//!
//! ```
//! use routing_tower::grpc::{self, Code};
//! let mut h = http::HeaderMap::new();
//! h.insert("grpc-status", "14".parse().unwrap());
//! assert_eq!(grpc::status(&h), Some(Code::Unavailable));
//! assert_eq!(grpc::http_status(Code::Unavailable), http::StatusCode::SERVICE_UNAVAILABLE);
//! h.insert("grpc-timeout", "250m".parse().unwrap());
//! assert_eq!(grpc::timeout(&h), Some(std::time::Duration::from_millis(250)));
//! ```

use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use routing_core::RetryOn;

use crate::body::{self, Body};
use crate::error::RoutingError;
use crate::outcome::Outcome;

/// gRPC status codes (the subset the layer reads or writes by name; any other
/// value is [`Other`](Code::Other)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// 0
    Ok,
    /// 1
    Cancelled,
    /// 2
    Unknown,
    /// 4
    DeadlineExceeded,
    /// 8
    ResourceExhausted,
    /// 12
    Unimplemented,
    /// 13
    Internal,
    /// 14
    Unavailable,
    /// Any other code.
    Other(u16),
}

impl Code {
    /// The numeric code.
    ///
    /// ```
    /// assert_eq!(routing_tower::grpc::Code::Unavailable.value(), 14);
    /// ```
    #[must_use]
    pub fn value(self) -> u16 {
        match self {
            Code::Ok => 0,
            Code::Cancelled => 1,
            Code::Unknown => 2,
            Code::DeadlineExceeded => 4,
            Code::ResourceExhausted => 8,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::Other(v) => v,
        }
    }

    /// The code for a number.
    ///
    /// ```
    /// use routing_tower::grpc::Code;
    /// assert_eq!(Code::from_value(4), Code::DeadlineExceeded);
    /// assert_eq!(Code::from_value(7), Code::Other(7));
    /// ```
    #[must_use]
    pub fn from_value(v: u16) -> Self {
        match v {
            0 => Code::Ok,
            1 => Code::Cancelled,
            2 => Code::Unknown,
            4 => Code::DeadlineExceeded,
            8 => Code::ResourceExhausted,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            other => Code::Other(other),
        }
    }
}

/// Whether a request is gRPC: `content-type: application/grpc` (or `+proto`, …).
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("content-type", "application/grpc+proto".parse().unwrap());
/// assert!(routing_tower::grpc::is_grpc(&h));
/// ```
#[must_use]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.strip_prefix("application/grpc")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
        })
}

/// The `grpc-status` of a header map (a trailers-only head, or trailers).
#[must_use]
pub fn status(headers: &HeaderMap) -> Option<Code> {
    let v = headers.get("grpc-status")?.to_str().ok()?;
    v.trim().parse::<u16>().ok().map(Code::from_value)
}

/// The HTTP status a gRPC code counts as for stats and outlier detection (Envoy's
/// mapping): `OK` 200, `CANCELLED` 499, `DEADLINE_EXCEEDED` 504,
/// `RESOURCE_EXHAUSTED` 429, `UNIMPLEMENTED` 501, `UNAVAILABLE` 503, others 500.
#[must_use]
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Other(3 | 5 | 6 | 7 | 9 | 10 | 11 | 16) => StatusCode::BAD_REQUEST,
        Code::Unknown | Code::Internal | Code::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status a response counts as: for a trailers-only gRPC answer, the HTTP
/// status of its `grpc-status` ([`http_status`]); otherwise its own.
pub(crate) fn effective_status(res: &Response<Body>) -> StatusCode {
    if res.status() == StatusCode::OK && is_grpc(res.headers()) {
        if let Some(code) = status(res.headers()) {
            return http_status(code);
        }
    }
    res.status()
}

/// Whether `res` is a gRPC response whose status is still to come, in its trailers:
/// a `grpc-status` in the head (trailers-only) is classified at once instead.
pub(crate) fn awaits_trailers(res: &Response<Body>) -> bool {
    is_grpc(res.headers())
        && status(res.headers()).is_none()
        && !http_body::Body::is_end_stream(res.body())
}

/// What a gRPC response body ended with, as an outcome for stats and outlier
/// detection: trailers with a `grpc-status` count as [`http_status`] of it; no
/// status (trailers without one, or an end without trailers) as `UNKNOWN`.
fn outcome_of(trailers: Option<&HeaderMap>) -> Outcome {
    let code = trailers.and_then(status).unwrap_or(Code::Unknown);
    Outcome::Status(http_status(code))
}

/// Called once with the outcome a watched body ended with.
pub(crate) type OnEnd = Box<dyn FnOnce(Outcome) + Send>;

/// `body`, calling `on_end` once with its outcome when its trailers (or its end, or
/// an error) arrive. Dropped before then, it calls nothing.
pub(crate) fn watch_trailers(body: Body, on_end: OnEnd) -> Body {
    body::boxed(Trailers {
        inner: body,
        on_end: Some(on_end),
    })
}

pin_project_lite::pin_project! {
    /// A gRPC response body whose status is read from its trailers.
    struct Trailers {
        #[pin]
        inner: Body,
        on_end: Option<OnEnd>,
    }
}

impl http_body::Body for Trailers {
    type Data = bytes::Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, body::BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let outcome = match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                frame.trailers_ref().map(|t| outcome_of(Some(t)))
            }
            std::task::Poll::Ready(Some(Err(e))) => Some(Outcome::Failure(
                if e.downcast_ref::<crate::deadline::BodyTimeout>().is_some() {
                    // The request's deadline or the idle timeout cut the stream.
                    crate::outcome::Failure::Timeout
                } else {
                    crate::outcome::classify(&**e)
                },
            )),
            std::task::Poll::Ready(None) => Some(outcome_of(None)),
            std::task::Poll::Pending => None,
        };
        if let Some(outcome) = outcome {
            if let Some(f) = this.on_end.take() {
                f(outcome);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether the retry condition `on` retries a trailers-only answer with `code`.
pub(crate) fn retries(on: RetryOn, code: Code) -> bool {
    matches!(
        (on, code),
        (RetryOn::Cancelled, Code::Cancelled)
            | (RetryOn::DeadlineExceeded, Code::DeadlineExceeded)
            | (RetryOn::Internal, Code::Internal)
            | (RetryOn::ResourceExhausted, Code::ResourceExhausted)
            | (RetryOn::Unavailable, Code::Unavailable)
    )
}

/// The client's `grpc-timeout` (`1..=8` digits and a unit `H`, `M`, `S`, `m`, `u`
/// or `n`), if valid.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("grpc-timeout", "2S".parse().unwrap());
/// assert_eq!(routing_tower::grpc::timeout(&h), Some(std::time::Duration::from_secs(2)));
/// h.insert("grpc-timeout", "123456789S".parse().unwrap());
/// assert_eq!(routing_tower::grpc::timeout(&h), None);
/// ```
#[must_use]
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.as_bytes();
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC code for the layer's own answer.
#[must_use]
pub fn code_for(err: &RoutingError) -> Code {
    match err {
        RoutingError::NoRoute(_) => Code::Unimplemented,
        RoutingError::Timeout(_) => Code::DeadlineExceeded,
        RoutingError::NoHealthyBackend(_) | RoutingError::Upstream(_) => Code::Unavailable,
        RoutingError::Overloaded(_) => Code::ResourceExhausted,
        RoutingError::ClientBody(_) => Code::Internal,
    }
}

/// `res` as a gRPC answer when it is the layer's own (it carries a
/// [`RoutingError`]): HTTP 200, `application/grpc`, the code of [`code_for`] and the
/// error's text as `grpc-message`, trailers-only. Any other response is returned
/// unchanged.
///
/// ```
/// use routing_tower::{error::NoRoute, RoutingError};
/// let mut res = http::Response::new(routing_tower::body::full("no route"));
/// *res.status_mut() = http::StatusCode::NOT_FOUND;
/// res.extensions_mut().insert(RoutingError::NoRoute(NoRoute));
/// let res = routing_tower::grpc::answer(res);
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.headers()["grpc-status"], "12");
/// ```
#[must_use]
pub fn answer(res: Response<Body>) -> Response<Body> {
    let Some(err) = res.extensions().get::<RoutingError>() else {
        return res;
    };
    let code = code_for(err);
    let message = percent_encode(&err.to_string());
    let (mut parts, _) = res.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.clear();
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    parts
        .headers
        .insert("grpc-status", HeaderValue::from(code.value()));
    if let Ok(v) = HeaderValue::from_str(&message) {
        parts.headers.insert("grpc-message", v);
    }
    Response::from_parts(parts, body::empty())
}

/// `grpc-message` encoding: percent-encode everything but printable ASCII other than `%`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_every_unit_and_reject_garbage() {
        let t = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            timeout(&h)
        };
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("3M"), Some(Duration::from_secs(180)));
        assert_eq!(t("7u"), Some(Duration::from_micros(7)));
        assert_eq!(t("9n"), Some(Duration::from_nanos(9)));
        for bad in ["", "S", "10", "1x", "-1S", "1.5S", "99999999999S"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn content_types() {
        let ct = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(v));
            is_grpc(&h)
        };
        assert!(ct("application/grpc"));
        assert!(ct("application/grpc;charset=utf-8"));
        assert!(!ct("application/grpc-web"));
        assert!(!ct("application/json"));
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("a 100% é"), "a 100%25 %C3%A9");
    }
}
