//! Request bodies that can be sent more than once.
//!
//! A retry or a mirror needs the request body again.
//!
//! * **Retries** record the body as it streams ([`record`], like linkerd2-proxy's
//!   `ReplayBody` and Envoy's retry buffer limit): the first try gets every frame as
//!   soon as the client sends it, and each frame is also kept, up to the rule's
//!   `max_body_bytes` and the layer's [`BufferBudget`]. A retry replays what was kept
//!   and then goes on reading the client's body where the earlier try left it, so a
//!   streaming RPC (client-streaming or bidi gRPC, a long upload) is never held back
//!   until the client closes. Past the bound the recording is dropped and the
//!   request is no longer retryable; the try under way keeps streaming.
//! * **Mirrors** need a whole body to copy: bodies are read into memory up to a
//!   limit first ([`buffer`]); a body that ends within it can be replayed any number
//!   of times. A longer one is not replayable: what was read is put back in front of
//!   the rest, so the single try still sends it whole. A rule with both mirrors and
//!   retries buffers this way too.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{self, Body, BoxError};

/// The bytes of request bodies a layer holds for replay at once, across all its
/// requests: a buffer that would go over it is not made (the request is sent once,
/// streaming), so many large uploads cannot grow the process without bound.
#[derive(Debug)]
pub(crate) struct BufferBudget {
    used: std::sync::atomic::AtomicU64,
    max: u64,
}

impl BufferBudget {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: u64) -> Self {
        Self {
            used: std::sync::atomic::AtomicU64::new(0),
            max,
        }
    }

    fn reserve(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.max)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, std::sync::atomic::Ordering::AcqRel);
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Bytes of a [`BufferBudget`] held by a buffered body, given back on drop.
pub(crate) struct Held {
    budget: std::sync::Arc<BufferBudget>,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// A request body after buffering.
pub(crate) enum Buffered {
    /// Complete within the limit: replayable.
    Complete {
        data: Bytes,
        trailers: Option<HeaderMap>,
        /// Its share of the budget, for as long as it is kept.
        _held: Option<Held>,
    },
    /// Longer than the limit (or failed while reading): sent once, as it was.
    Streaming(Body),
    /// Recorded as it streams to the tries ([`record`]).
    Recording(Recorder),
}

impl Buffered {
    /// Whether [`replay`](Self::replay) gives a body.
    pub(crate) fn is_replayable(&self) -> bool {
        match self {
            Buffered::Complete { .. } => true,
            Buffered::Recording(r) => r.is_replayable(),
            Buffered::Streaming(_) => false,
        }
    }

    /// A fresh body for one try, if replayable.
    pub(crate) fn replay(&self) -> Option<Body> {
        match self {
            Buffered::Recording(r) => r.replay(),
            Buffered::Complete { data, trailers, .. } => Some(match trailers {
                None if data.is_empty() => body::empty(),
                None => body::full(data.clone()),
                Some(t) => Prefixed {
                    frames: [Frame::data(data.clone()), Frame::trailers(t.clone())]
                        .into_iter()
                        .filter(|f| f.data_ref().is_none_or(|d| !d.is_empty()))
                        .collect(),
                    rest: None,
                }
                .boxed_unsync(),
            }),
            Buffered::Streaming(_) => None,
        }
    }
}

/// Records `body` for retries as it streams, up to `limit` bytes and what
/// `budget` allows. An empty body is simply complete.
pub(crate) fn record(body: Body, limit: u64, budget: &std::sync::Arc<BufferBudget>) -> Buffered {
    if body.is_end_stream() {
        return Buffered::Complete {
            data: Bytes::new(),
            trailers: None,
            _held: None,
        };
    }
    if body.size_hint().lower() > limit {
        return Buffered::Streaming(body);
    }
    Buffered::Recording(Recorder {
        state: std::sync::Arc::new(std::sync::Mutex::new(Recording {
            inner: Some(body),
            frames: Vec::new(),
            trailers: None,
            ended: false,
            replayable: true,
            generation: 0,
            limit,
            held: Held {
                budget: std::sync::Arc::clone(budget),
                bytes: 0,
            },
        })),
    })
}

/// What the tries of one request share: the client's body and what was recorded.
struct Recording {
    /// The client's body, until it ends.
    inner: Option<Body>,
    /// Data frames read so far (while still replayable).
    frames: Vec<Bytes>,
    trailers: Option<HeaderMap>,
    /// The client's body ended (its end or its trailers were read).
    ended: bool,
    /// Everything read so far is recorded: a retry can be sent.
    replayable: bool,
    /// The try allowed to read: earlier tries' bodies are cut off.
    generation: u64,
    limit: u64,
    held: Held,
}

impl Recording {
    /// Stops recording: the request is sent once from here on.
    fn give_up(&mut self) {
        self.replayable = false;
        self.frames = Vec::new();
        self.held.budget.release(self.held.bytes);
        self.held.bytes = 0;
    }
}

/// A request body recorded as it streams ([`record`]).
pub(crate) struct Recorder {
    state: std::sync::Arc<std::sync::Mutex<Recording>>,
}

impl Drop for Recorder {
    /// No try can follow: the try under way streams on without recording more
    /// (what it has not yet replayed is kept for it).
    fn drop(&mut self) {
        lock(&self.state).replayable = false;
    }
}

fn lock(m: &std::sync::Mutex<Recording>) -> std::sync::MutexGuard<'_, Recording> {
    // A panic while holding it leaves plain data behind: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Recorder {
    pub(crate) fn is_replayable(&self) -> bool {
        lock(&self.state).replayable
    }

    /// The body for the next try: what was recorded, then the rest of the client's
    /// body. Earlier tries' bodies stop (with an error) once it exists.
    pub(crate) fn replay(&self) -> Option<Body> {
        let mut st = lock(&self.state);
        if !st.replayable {
            return None;
        }
        st.generation += 1;
        Some(
            TryBody {
                state: std::sync::Arc::clone(&self.state),
                generation: st.generation,
                next: 0,
                trailers_sent: false,
            }
            .boxed_unsync(),
        )
    }
}

/// One try's view of a [`Recorder`].
struct TryBody {
    state: std::sync::Arc<std::sync::Mutex<Recording>>,
    generation: u64,
    /// The next recorded frame to send.
    next: usize,
    trailers_sent: bool,
}

/// The error a superseded try's body ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body taken over by a retry")]
struct Superseded;

impl HttpBody for TryBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let mut st = lock(&this.state);
        if st.generation != this.generation {
            return Poll::Ready(Some(Err(Box::new(Superseded))));
        }
        if let Some(f) = st.frames.get(this.next) {
            this.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(f.clone()))));
        }
        if st.ended {
            return Poll::Ready(match (&st.trailers, this.trailers_sent) {
                (Some(t), false) => {
                    this.trailers_sent = true;
                    Some(Ok(Frame::trailers(t.clone())))
                }
                _ => None,
            });
        }
        let Some(inner) = st.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                st.ended = true;
                st.inner = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // A failing client body is not sent again.
                st.give_up();
                st.inner = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(chunk) => {
                    if st.replayable {
                        let n = chunk.len() as u64;
                        if st.held.bytes + n > st.limit || !st.held.budget.reserve(n) {
                            st.give_up();
                        } else {
                            st.held.bytes += n;
                            st.frames.push(chunk.clone());
                            this.next = st.frames.len();
                        }
                    }
                    if st.inner.as_ref().is_some_and(HttpBody::is_end_stream) {
                        st.ended = true;
                        st.inner = None;
                    }
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Err(frame) => {
                    st.ended = true;
                    st.inner = None;
                    if let Ok(t) = frame.into_trailers() {
                        st.trailers = Some(t.clone());
                        this.trailers_sent = true;
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                    Poll::Ready(None)
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        let st = lock(&self.state);
        st.generation == self.generation
            && st.ended
            && self.next >= st.frames.len()
            && (st.trailers.is_none() || self.trailers_sent)
    }

    fn size_hint(&self) -> SizeHint {
        let st = lock(&self.state);
        let recorded: u64 = st.frames[self.next.min(st.frames.len())..]
            .iter()
            .map(|f| f.len() as u64)
            .sum();
        let hint = st
            .inner
            .as_ref()
            .map_or(SizeHint::with_exact(0), HttpBody::size_hint);
        shifted(hint, recorded)
    }
}

/// Reads `body` into memory if it ends within `limit` bytes and the layer's
/// `budget` has room for it; otherwise the body is sent once, as it is.
pub(crate) async fn buffer(
    mut body: Body,
    limit: u64,
    budget: &std::sync::Arc<BufferBudget>,
) -> Buffered {
    if body.is_end_stream() {
        return Buffered::Complete {
            data: Bytes::new(),
            trailers: None,
            _held: None,
        };
    }
    if body.size_hint().lower() > limit {
        return Buffered::Streaming(body);
    }
    let mut data = BytesMut::new();
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut held = Held {
        budget: std::sync::Arc::clone(budget),
        bytes: 0,
    };
    loop {
        match body.frame().await {
            None => {
                return Buffered::Complete {
                    data: data.freeze(),
                    trailers: None,
                    _held: Some(held),
                }
            }
            Some(Err(e)) => {
                // Hand the error on to the single try, after what was read.
                return Buffered::Streaming(
                    Prefixed {
                        frames: frames_of(data, frames),
                        rest: Some(ErrorOnce(Some(e)).boxed_unsync()),
                    }
                    .boxed_unsync(),
                );
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => {
                    let n = chunk.len() as u64;
                    if data.len() as u64 + n > limit || !budget.reserve(n) {
                        // Over the rule's limit or the layer's budget: streamed once.
                        frames.push_back(Frame::data(chunk));
                        return Buffered::Streaming(
                            Prefixed {
                                frames: frames_of(data, frames),
                                rest: Some(body),
                            }
                            .boxed_unsync(),
                        );
                    }
                    held.bytes += n;
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return Buffered::Complete {
                            data: data.freeze(),
                            trailers: Some(trailers),
                            _held: Some(held),
                        };
                    }
                }
            },
        }
    }
}

fn frames_of(data: BytesMut, mut more: VecDeque<Frame<Bytes>>) -> VecDeque<Frame<Bytes>> {
    if !data.is_empty() {
        more.push_front(Frame::data(data.freeze()));
    }
    more
}

/// Frames already read, then the rest of the body.
struct Prefixed {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<Body>,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        let hint = self
            .rest
            .as_ref()
            .map_or(SizeHint::with_exact(0), HttpBody::size_hint);
        shifted(hint, buffered)
    }
}

/// `hint` with `n` more bytes in front (upper bound first: `set_lower` asserts it
/// stays at most the upper bound).
fn shifted(hint: SizeHint, n: u64) -> SizeHint {
    let mut out = SizeHint::new();
    if let Some(upper) = hint.upper() {
        out.set_upper(upper.saturating_add(n));
    }
    out.set_lower(hint.lower().saturating_add(n));
    out
}

/// A body that yields one error.
struct ErrorOnce(Option<BoxError>);

impl HttpBody for ErrorOnce {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(parts: &[&'static str]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    fn roomy() -> std::sync::Arc<BufferBudget> {
        std::sync::Arc::new(BufferBudget::new(1 << 30))
    }

    async fn collect(b: Body) -> Vec<u8> {
        b.collect().await.expect("collects").to_bytes().to_vec()
    }

    /// A body fed by the test, frame by frame.
    fn channel() -> (
        tokio::sync::mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
        Body,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        (tx, StreamBody::new(stream).boxed_unsync())
    }

    fn data(s: &'static str) -> Result<Frame<Bytes>, BoxError> {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    async fn next(b: &mut Body) -> Option<Bytes> {
        b.frame()
            .await
            .map(|f| f.expect("frame").into_data().expect("data"))
    }

    #[tokio::test]
    async fn recorded_bodies_stream_first_and_replay_then_continue() {
        let (tx, client) = channel();
        let rec = record(client, 64, &roomy());
        let mut first = rec.replay().expect("first try");
        tx.send(data("ab")).await.expect("send");
        // Forwarded as soon as it arrives, before the client's body ends.
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"ab"[..]));
        assert!(rec.is_replayable());
        // A retry: what was sent is replayed, the rest read live; the first try's
        // body is cut off.
        let mut second = rec.replay().expect("retry");
        assert!(first.frame().await.expect("a frame").is_err(), "superseded");
        assert_eq!(next(&mut second).await.as_deref(), Some(&b"ab"[..]));
        tx.send(data("cd")).await.expect("send");
        assert_eq!(next(&mut second).await.as_deref(), Some(&b"cd"[..]));
        drop(tx);
        assert_eq!(next(&mut second).await, None);
        // A third try after the end replays everything.
        assert_eq!(collect(rec.replay().expect("third")).await, b"abcd");
    }

    #[tokio::test]
    async fn recording_past_the_limit_stops_retries_but_keeps_streaming() {
        let budget = roomy();
        let (tx, client) = channel();
        let rec = record(client, 4, &budget);
        let mut first = rec.replay().expect("first try");
        tx.send(data("abc")).await.expect("send");
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"abc"[..]));
        assert_eq!(budget.used(), 3);
        tx.send(data("def")).await.expect("send");
        assert_eq!(next(&mut first).await.as_deref(), Some(&b"def"[..]));
        assert!(!rec.is_replayable(), "7 bytes are over the 4-byte bound");
        assert!(rec.replay().is_none());
        assert_eq!(budget.used(), 0, "the recording is given back at once");
        tx.send(data("gh")).await.expect("send");
        drop(tx);
        assert_eq!(collect(first).await, b"gh", "the try goes on streaming");
    }

    #[tokio::test]
    async fn once_no_retry_can_follow_nothing_more_is_recorded() {
        let budget = roomy();
        let (tx, client) = channel();
        let rec = record(client, 64, &budget);
        let mut only = rec.replay().expect("first try");
        tx.send(data("ab")).await.expect("send");
        assert_eq!(next(&mut only).await.as_deref(), Some(&b"ab"[..]));
        assert_eq!(budget.used(), 2);
        // The tries are over (the response is on its way): the request body goes on.
        drop(rec);
        tx.send(data("cdef")).await.expect("send");
        assert_eq!(next(&mut only).await.as_deref(), Some(&b"cdef"[..]));
        assert_eq!(budget.used(), 2, "nothing recorded after the last try");
        drop(tx);
        assert_eq!(next(&mut only).await, None);
        drop(only);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn short_bodies_replay_any_number_of_times() {
        let b = buffer(body::full("hello world"), 64, &roomy()).await;
        for _ in 0..3 {
            assert_eq!(
                collect(b.replay().expect("replayable")).await,
                b"hello world"
            );
        }
    }

    #[tokio::test]
    async fn long_bodies_are_sent_once_and_whole() {
        let b = buffer(body::full("0123456789"), 4, &roomy()).await;
        assert!(b.replay().is_none());
        let Buffered::Streaming(s) = b else {
            panic!("must stream")
        };
        assert_eq!(collect(s).await, b"0123456789");
    }

    #[tokio::test]
    async fn chunked_bodies_cut_at_the_limit_keep_every_byte() {
        let b = buffer(chunks(&["ab", "cd", "ef", "gh"]), 5, &roomy()).await;
        assert!(b.replay().is_none());
        let Buffered::Streaming(s) = b else {
            panic!("must stream")
        };
        assert_eq!(collect(s).await, b"abcdefgh");
        let b = buffer(chunks(&["ab", "cd"]), 4, &roomy()).await;
        assert_eq!(collect(b.replay().expect("fits exactly")).await, b"abcd");
    }

    #[tokio::test]
    async fn the_budget_is_shared_held_while_kept_and_given_back() {
        let budget = std::sync::Arc::new(BufferBudget::new(10));
        let a = buffer(chunks(&["abcd", "efgh"]), 64, &budget).await;
        assert!(a.is_replayable());
        assert_eq!(budget.used(), 8);
        // 8 of 10 bytes held: the next body does not fit and is streamed, whole.
        let b = buffer(chunks(&["ijk", "lmn"]), 64, &budget).await;
        assert!(!b.is_replayable());
        assert_eq!(budget.used(), 8, "nothing held for a streamed body");
        let Buffered::Streaming(s) = b else {
            panic!("must stream")
        };
        assert_eq!(collect(s).await, b"ijklmn");
        drop(a);
        assert_eq!(budget.used(), 0, "given back when the buffer goes");
        let c = buffer(chunks(&["ijk", "lmn"]), 64, &budget).await;
        assert!(c.is_replayable());
    }
}
