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

/// What a client's request body did, shared between the body the backend reads and
/// the layer that classifies a failed try: a failure or slowness on the client's side
/// is the client's, not the backend's.
#[derive(Debug, Default)]
pub(crate) struct BodyWatch(std::sync::atomic::AtomicU8);

impl BodyWatch {
    const DONE: u8 = 1;
    const FAILED: u8 = 2;

    /// Whether the body ended with an error.
    pub(crate) fn failed(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire) == Self::FAILED
    }

    /// Whether the body is still arriving (neither ended nor failed).
    pub(crate) fn streaming(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire) == 0
    }

    fn set(&self, v: u8) {
        self.0.store(v, std::sync::atomic::Ordering::Release);
    }
}

pin_project_lite::pin_project! {
    /// A request body that reports its end or failure to a [`BodyWatch`].
    pub(crate) struct Watched {
        #[pin]
        inner: Body,
        watch: std::sync::Arc<BodyWatch>,
    }
}

impl Watched {
    /// `inner`, reporting to `watch`.
    pub(crate) fn new(inner: Body, watch: std::sync::Arc<BodyWatch>) -> Self {
        Self { inner, watch }
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(None) => this.watch.set(BodyWatch::DONE),
            std::task::Poll::Ready(Some(Err(_))) => this.watch.set(BodyWatch::FAILED),
            // An HTTP/2 sender stops polling once the body says it has ended (the
            // last frame carries END_STREAM), so the end is seen here too.
            std::task::Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                this.watch.set(BodyWatch::DONE)
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.is_end_stream();
        if end {
            self.watch.set(BodyWatch::DONE);
        }
        end
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
