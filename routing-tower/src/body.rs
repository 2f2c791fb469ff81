//! The body type requests and responses carry through the layer.

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

/// A boxed error, as tower middlewares use them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body every backend receives and every response carries: any
/// [`http_body::Body`] with [`Bytes`] chunks, boxed.
///
/// Requests are re-bodied so that a buffered body can be replayed on a retry or
/// copied to a mirror; responses are boxed so that backends of different types can
/// sit behind one layer.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any body into a [`Body`]; a [`Body`] is passed through as it is, not
/// boxed a second time.
///
/// ```
/// let b = routing_tower::body::boxed(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")));
/// let again = routing_tower::body::boxed(b);
/// # let _ = again;
/// ```
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut slot = Some(body);
    if let Some(already) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
        if let Some(b) = already.take() {
            return b;
        }
    }
    match slot {
        Some(b) => b.map_err(Into::into).boxed_unsync(),
        None => empty(),
    }
}

/// A body holding `bytes`.
///
/// ```
/// let b = routing_tower::body::full("hello");
/// # let _ = b;
/// ```
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// An empty body.
///
/// ```
/// use http_body::Body as _;
/// assert!(routing_tower::body::empty().is_end_stream());
/// ```
pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}
