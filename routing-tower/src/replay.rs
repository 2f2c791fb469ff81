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

/// A request body after buffering.
pub(crate) enum Buffered {
    /// Complete within the limit: replayable.
    Complete {
        data: Bytes,
        trailers: Option<HeaderMap>,
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
            Buffered::Complete { data, trailers } => Some(match trailers {
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

/// Reads `body` into memory if it ends within `limit` bytes.
pub(crate) async fn buffer(mut body: Body, limit: u64) -> Buffered {
    if body.is_end_stream() {
        return Buffered::Complete {
            data: Bytes::new(),
            trailers: None,
        };
    }
    if body.size_hint().lower() > limit {
        return Buffered::Streaming(body);
    }
    let mut data = BytesMut::new();
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    loop {
        match body.frame().await {
            None => {
                return Buffered::Complete {
                    data: data.freeze(),
                    trailers: None,
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
                    if data.len() as u64 + chunk.len() as u64 > limit {
                        frames.push_back(Frame::data(chunk));
                        return Buffered::Streaming(
                            Prefixed {
                                frames: frames_of(data, frames),
                                rest: Some(body),
                            }
                            .boxed_unsync(),
                        );
                    }
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        return Buffered::Complete {
                            data: data.freeze(),
                            trailers: Some(trailers),
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

    async fn collect(b: Body) -> Vec<u8> {
        b.collect().await.expect("collects").to_bytes().to_vec()
    }

    #[tokio::test]
    async fn short_bodies_replay_any_number_of_times() {
        let b = buffer(body::full("hello world"), 64).await;
        for _ in 0..3 {
            assert_eq!(
                collect(b.replay().expect("replayable")).await,
                b"hello world"
            );
        }
    }

    #[tokio::test]
    async fn long_bodies_are_sent_once_and_whole() {
        let b = buffer(body::full("0123456789"), 4).await;
        assert!(b.replay().is_none());
        let Buffered::Streaming(s) = b else {
            panic!("must stream")
        };
        assert_eq!(collect(s).await, b"0123456789");
    }

    #[tokio::test]
    async fn chunked_bodies_cut_at_the_limit_keep_every_byte() {
        let b = buffer(chunks(&["ab", "cd", "ef", "gh"]), 5).await;
        assert!(b.replay().is_none());
        let Buffered::Streaming(s) = b else {
            panic!("must stream")
        };
        assert_eq!(collect(s).await, b"abcdefgh");
        let b = buffer(chunks(&["ab", "cd"]), 4).await;
        assert_eq!(collect(b.replay().expect("fits exactly")).await, b"abcd");
    }
}
