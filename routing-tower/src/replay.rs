//! Request bodies that can be sent more than once.
//!
//! A retry or a mirror needs the request body again. Bodies are read into memory up
//! to a limit; a body that ends within it can be replayed any number of times. A
//! longer one is not replayable: what was read is put back in front of the rest, so
//! the single try still sends it whole.

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
}

impl Buffered {
    /// Whether [`replay`](Self::replay) gives a body.
    pub(crate) fn is_replayable(&self) -> bool {
        matches!(self, Buffered::Complete { .. })
    }

    /// A fresh body for one try, if replayable.
    pub(crate) fn replay(&self) -> Option<Body> {
        match self {
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
        let mut hint = self
            .rest
            .as_ref()
            .map_or(SizeHint::with_exact(0), HttpBody::size_hint);
        hint.set_lower(hint.lower().saturating_add(buffered));
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint
    }
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
