//! How one try to a backend ended: the one classification that stats, outlier
//! detection, retries and rollout metrics all read.
//!
//! A try ends with a response ([`Outcome::Status`]) or without one
//! ([`Outcome::Failure`]). A backend error becomes a [`Failure`] through
//! [`classify`], the only place that looks inside errors: the
//! [`HttpBackend`](crate::HttpBackend) client calls it to build its
//! [`UpstreamError`], and the routing layer calls it
//! for the errors of any backend service.
//!
//! ```
//! use routing_tower::outcome::{classify, Failure, Outcome};
//! use http::StatusCode;
//!
//! let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
//! assert_eq!(classify(&refused), Failure::Connect);
//! let bad = std::io::Error::from(std::io::ErrorKind::InvalidData);
//! assert_eq!(classify(&bad), Failure::Other);
//!
//! assert!(Outcome::Failure(Failure::Reset).is_gateway_error());
//! assert!(Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR).is_5xx());
//! assert!(!Outcome::Status(StatusCode::NOT_FOUND).is_5xx());
//! ```
//!
//! # Which failure is which
//!
//! | [`Failure`] | when | retry-on condition |
//! |---|---|---|
//! | [`Connect`](Failure::Connect) | no connection could be made (refused, unreachable, connect timeout); the upstream saw nothing | `connect-failure` |
//! | [`Reset`](Failure::Reset) | the connection closed or was reset before a complete response (reset, aborted, broken pipe, unexpected EOF, an incomplete or cancelled HTTP message) | `reset` |
//! | [`Timeout`](Failure::Timeout) | no response within the per-try timeout (set by the layer, never by `classify`) | `reset` |
//! | [`Other`](Failure::Other) | anything else: a malformed answer, a failing request body, an error of an in-process service | none: never retried |
//!
//! Every failure counts toward outlier detection's `consecutive_5xx` and
//! `consecutive_gateway_errors` (Envoy maps local-origin failures to 503/504), and
//! toward a backend's error rate.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use http::StatusCode;

/// A try that ended without a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No connection could be made: refused, unreachable, or the connect timed out.
    /// The upstream saw nothing.
    Connect,
    /// The connection was closed or reset before a complete response arrived; the
    /// upstream may have acted on the request.
    Reset,
    /// No response within the per-try timeout.
    Timeout,
    /// Any other failure: a malformed response, an unsupported request, a failing
    /// request body, an error of an in-process service.
    Other,
}

impl Failure {
    /// The retry-on condition this failure answers to (`connect-failure`, `reset`),
    /// if any; a timeout is retried on `reset` (as Envoy's `reset` covers it).
    ///
    /// ```
    /// use routing_tower::outcome::Failure;
    /// assert_eq!(Failure::Connect.retry_on(), Some("connect-failure"));
    /// assert_eq!(Failure::Timeout.retry_on(), Some("reset"));
    /// assert_eq!(Failure::Other.retry_on(), None);
    /// ```
    #[must_use]
    pub fn retry_on(self) -> Option<&'static str> {
        match self {
            Failure::Connect => Some("connect-failure"),
            Failure::Reset | Failure::Timeout => Some("reset"),
            Failure::Other => None,
        }
    }

    /// The failure's name in metrics labels: `connect`, `reset`, `timeout`, `other`.
    ///
    /// ```
    /// assert_eq!(routing_tower::outcome::Failure::Connect.label(), "connect");
    /// ```
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Other => "other",
        }
    }

    /// Every failure, in label order.
    pub const ALL: [Failure; 4] = [
        Failure::Connect,
        Failure::Reset,
        Failure::Timeout,
        Failure::Other,
    ];

    /// Position in [`Failure::ALL`] (a counter array index).
    pub(crate) fn index(self) -> usize {
        match self {
            Failure::Connect => 0,
            Failure::Reset => 1,
            Failure::Timeout => 2,
            Failure::Other => 3,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failure::Connect => "connect failure",
            Failure::Reset => "connection reset",
            Failure::Timeout => "timeout",
            Failure::Other => "upstream error",
        })
    }
}

/// How one try to a backend ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The backend answered with this status.
    Status(StatusCode),
    /// The try failed without a response.
    Failure(Failure),
}

impl Outcome {
    /// Whether it counts toward `consecutive_5xx`: a 5xx status or a failure.
    ///
    /// ```
    /// use routing_tower::outcome::{Failure, Outcome};
    /// assert!(Outcome::Status(http::StatusCode::NOT_IMPLEMENTED).is_5xx());
    /// assert!(Outcome::Failure(Failure::Reset).is_5xx());
    /// assert!(!Outcome::Status(http::StatusCode::NOT_FOUND).is_5xx());
    /// ```
    #[must_use]
    pub fn is_5xx(&self) -> bool {
        match self {
            Outcome::Status(s) => s.is_server_error(),
            Outcome::Failure(_) => true,
        }
    }

    /// Whether it counts toward `consecutive_gateway_errors`: 502, 503, 504 or a
    /// failure.
    ///
    /// ```
    /// use routing_tower::outcome::{Failure, Outcome};
    /// assert!(Outcome::Status(http::StatusCode::GATEWAY_TIMEOUT).is_gateway_error());
    /// assert!(Outcome::Failure(Failure::Connect).is_gateway_error());
    /// assert!(!Outcome::Status(http::StatusCode::INTERNAL_SERVER_ERROR).is_gateway_error());
    /// ```
    #[must_use]
    pub fn is_gateway_error(&self) -> bool {
        match self {
            Outcome::Status(s) => matches!(s.as_u16(), 502..=504),
            Outcome::Failure(_) => true,
        }
    }
}

impl From<StatusCode> for Outcome {
    fn from(s: StatusCode) -> Self {
        Outcome::Status(s)
    }
}

impl From<Failure> for Outcome {
    fn from(f: Failure) -> Self {
        Outcome::Failure(f)
    }
}

/// Classifies a backend error by walking its source chain (at most 16 links):
///
/// * an [`UpstreamError`] gives its own
///   [`kind`](UpstreamError::kind) (classified when it was made);
/// * a hyper-util client error that is a connect error is [`Failure::Connect`]; a
///   [`hyper::Error`] for a message that ended early (incomplete, cancelled, closed)
///   is [`Failure::Reset`];
/// * an [`io::Error`] of kind `ConnectionRefused` is [`Failure::Connect`]; of kind
///   `ConnectionReset`, `ConnectionAborted`, `BrokenPipe` or `UnexpectedEof` it is
///   [`Failure::Reset`];
/// * anything else is [`Failure::Other`].
///
/// ```
/// use routing_tower::outcome::{classify, Failure};
/// let reset: routing_tower::BoxError =
///     Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
/// assert_eq!(classify(&*reset), Failure::Reset);
/// ```
#[must_use]
pub fn classify(err: &(dyn StdError + 'static)) -> Failure {
    let mut cur = Some(err);
    let mut depth = 0;
    while let Some(e) = cur {
        if let Some(u) = e.downcast_ref::<UpstreamError>() {
            return u.kind();
        }
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
        {
            return Failure::Connect;
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return Failure::Reset;
            }
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Failure::Connect,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => return Failure::Reset,
                _ => {}
            }
        }
        if depth == 16 {
            break;
        }
        cur = e.source();
        depth += 1;
    }
    Failure::Other
}

/// An [`HttpBackend`](crate::HttpBackend) failure, downcastable from a `BoxError`.
///
/// ```
/// use routing_tower::client::UpstreamError;
/// use routing_tower::outcome::Failure;
///
/// fn is_retriable_connect(err: &routing_tower::BoxError) -> bool {
///     err.downcast_ref::<UpstreamError>()
///         .is_some_and(|e| e.kind() == Failure::Connect)
/// }
/// # let _ = is_retriable_connect;
/// ```
#[derive(Debug)]
pub struct UpstreamError {
    pub(crate) kind: Failure,
    pub(crate) addr: Option<std::net::SocketAddr>,
    pub(crate) source: Box<dyn StdError + Send + Sync>,
}

impl UpstreamError {
    /// What went wrong, in the crate's one [`Failure`] classification (never
    /// [`Failure::Timeout`]: the client sets no timeout of its own but the connect's,
    /// which is a [`Failure::Connect`]).
    pub fn kind(&self) -> Failure {
        self.kind
    }

    /// The upstream's address, when known (errors converted from a body error
    /// do not know it).
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.addr
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cause is `source()`, not repeated here (error reporters walk the chain).
        match self.addr {
            Some(addr) => write!(f, "upstream `{addr}`: {}", self.kind),
            None => write!(f, "upstream: {}", self.kind),
        }
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// Classifies an error of an [`Incoming`](hyper::body::Incoming) response body (or any
/// hyper error).
impl From<hyper::Error> for UpstreamError {
    fn from(err: hyper::Error) -> Self {
        UpstreamError {
            kind: classify(&err),
            addr: None,
            source: Box::new(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose source is the wrapped one.
    #[derive(Debug)]
    struct Wrap(io::Error);

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn io_kinds_classify_as_documented() {
        for (kind, want) in [
            (io::ErrorKind::ConnectionRefused, Failure::Connect),
            (io::ErrorKind::ConnectionReset, Failure::Reset),
            (io::ErrorKind::ConnectionAborted, Failure::Reset),
            (io::ErrorKind::BrokenPipe, Failure::Reset),
            (io::ErrorKind::UnexpectedEof, Failure::Reset),
            (io::ErrorKind::InvalidData, Failure::Other),
            (io::ErrorKind::TimedOut, Failure::Other),
        ] {
            let e = io::Error::from(kind);
            assert_eq!(classify(&e), want, "{kind:?} must classify as {want:?}");
            let boxed: crate::BoxError = Box::new(Wrap(e));
            assert_eq!(classify(&*boxed), want, "{kind:?} under a wrapper too");
        }
    }

    #[test]
    fn labels_and_indices_follow_all() {
        for (i, f) in Failure::ALL.into_iter().enumerate() {
            assert_eq!(f.index(), i);
        }
        let labels: Vec<_> = Failure::ALL.iter().map(|f| f.label()).collect();
        assert_eq!(labels, ["connect", "reset", "timeout", "other"]);
    }
}
