//! Per-backend concurrency limit with a bounded queue of waiting requests.
//!
//! [`ConcurrencyLimit`] lets `max_concurrent` requests run at once; up to
//! `max_pending` more wait in FIFO order; anything beyond is refused at once with
//! [`Overloaded`], which the layer turns into a 503 (Envoy's circuit breaker
//! `max_requests` / `max_pending_requests`, Istio's `http2MaxRequests` /
//! `http1MaxPendingRequests`, routing-core's `connection_pool`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use routing_tower::limit::ConcurrencyLimit;
//!
//! let limit = ConcurrencyLimit::new(1, 0);
//! let permit = limit.acquire().await.expect("free slot");
//! assert!(limit.acquire().await.is_err(), "busy and no queue: refused at once");
//! drop(permit);
//! assert!(limit.acquire().await.is_ok());
//! # }
//! ```
//!
//! # Fairness and precision
//!
//! Waiters are served in arrival order: the limit is a [`tokio::sync::Semaphore`],
//! which is fair, and a released permit goes to the oldest waiter before any newcomer
//! can take it (a newcomer's `try_acquire` fails while someone waits). The queue bound
//! is an atomic counter of waiters: a waiter leaves it when it gets its permit or when
//! its future is dropped (cancelled requests free their slot at once). Between a
//! permit's release and the woken waiter running, that waiter still counts as queued,
//! so an arrival in that instant may be refused although a slot is about to free up:
//! the bound errs on the side of refusing, never of admitting more.
//!
//! # The uncontended path
//!
//! Free slots are an atomic counter: while nobody waits, taking a slot is one
//! compare-and-swap and giving it back one atomic add (and a load of the waiter
//! count), with no lock. The semaphore only carries slots handed to waiters: a
//! release that sees a waiter gives its slot to the semaphore, whose FIFO queue
//! passes it to the oldest one; a waiter that enters the queue moves a slot that
//! freed meanwhile into the semaphore, so no release is missed.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// The request was refused: the backend has `max_concurrent` requests running and
/// `max_pending` waiting. Small and downcastable from a `BoxError`.
///
/// ```
/// let e: routing_tower::BoxError = Box::new(routing_tower::limit::Overloaded::new());
/// assert!(e.is::<routing_tower::limit::Overloaded>());
/// assert_eq!(e.to_string(), "backend overloaded: concurrency limit and pending queue full");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overloaded {
    _priv: (),
}

impl Overloaded {
    /// The error.
    #[must_use]
    pub const fn new() -> Self {
        Self { _priv: () }
    }
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("backend overloaded: concurrency limit and pending queue full")
    }
}

impl std::error::Error for Overloaded {}

/// A concurrency limit with a bounded FIFO queue; cheap to clone (clones share it).
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Slots handed to waiters (starts empty; see the module's last section).
    semaphore: Arc<Semaphore>,
    /// Slots free for the taking without waiting.
    free: AtomicUsize,
    max_concurrent: usize,
    max_pending: usize,
    waiting: AtomicUsize,
}

impl Inner {
    /// Takes a free slot, if any (one CAS loop, bounded by contention).
    fn take_free(&self) -> bool {
        self.free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok()
    }

    /// A free slot goes to the waiters' semaphore, if there is one.
    fn pull_free(&self) {
        if self.take_free() {
            self.semaphore.add_permits(1);
        }
    }

    /// A slot comes back: to the oldest waiter if someone waits, else to the free
    /// counter (checking once more for a waiter that arrived meanwhile).
    fn release(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.semaphore.add_permits(1);
            return;
        }
        self.free.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.pull_free();
        }
    }
}

/// Permission to run one request; the slot is released when it drops.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.release();
    }
}

impl Permit {
    /// A slot the semaphore handed over becomes an ordinary permit.
    fn from_semaphore(p: OwnedSemaphorePermit, inner: Arc<Inner>) -> Self {
        p.forget();
        Permit { inner }
    }
}

impl ConcurrencyLimit {
    /// `max_concurrent` requests at once (clamped to tokio's
    /// [`Semaphore::MAX_PERMITS`]; `0` refuses everything), `max_pending` more waiting.
    ///
    /// ```
    /// let l = routing_tower::limit::ConcurrencyLimit::new(8, 16);
    /// assert_eq!((l.max_concurrent(), l.max_pending(), l.available()), (8, 16, 8));
    /// ```
    #[must_use]
    pub fn new(max_concurrent: usize, max_pending: usize) -> Self {
        let max_concurrent = max_concurrent.min(Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(0)),
                free: AtomicUsize::new(max_concurrent),
                max_concurrent,
                max_pending,
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// From routing-core's per-backend `connection_pool`.
    ///
    /// ```
    /// let cp = routing_core::ConnectionPool { max_concurrent_requests: 4, max_pending_requests: 2 };
    /// let l = routing_tower::limit::ConcurrencyLimit::from_pool(&cp);
    /// assert_eq!((l.max_concurrent(), l.max_pending()), (4, 2));
    /// ```
    #[must_use]
    pub fn from_pool(pool: &routing_core::ConnectionPool) -> Self {
        let c = usize::try_from(pool.max_concurrent_requests).unwrap_or(usize::MAX);
        let p = usize::try_from(pool.max_pending_requests).unwrap_or(usize::MAX);
        Self::new(c, p)
    }

    /// A permit now if a slot is free, else a place in the queue if fewer than
    /// `max_pending` wait (resolving when a slot frees up), else [`Overloaded`] at once.
    ///
    /// The decision between "permit now", "queue" and "refuse" is made when
    /// `acquire` is called, not when the future is first polled; the queue position
    /// (FIFO) is taken at the first poll. The future owns what it needs (`'static`),
    /// so a `poll_ready` or a response future can box it and poll it; dropping it
    /// before it resolves leaves the queue (or returns the permit it already holds).
    /// It resolves without waiting when it refuses.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let limit = routing_tower::limit::ConcurrencyLimit::new(1, 1);
    /// let first = limit.acquire().await.expect("free slot");
    /// let mut queued = Box::pin(limit.acquire()); // waits behind `first`
    /// assert!(futures_poll_once(&mut queued).await.is_none());
    /// assert_eq!(limit.waiting(), 1);
    /// assert!(limit.acquire().await.is_err(), "queue full");
    /// drop(first);
    /// assert!(queued.await.is_ok());
    /// # }
    /// # async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    /// #     tokio::select! { biased; v = f => Some(v), _ = std::future::ready(()) => None }
    /// # }
    /// ```
    pub fn acquire(&self) -> impl Future<Output = Result<Permit, Overloaded>> + Send + 'static {
        // Decide synchronously, so a refusal costs no queue slot even when the future
        // is polled later.
        let immediate = self.try_acquire();
        let queued = match &immediate {
            Err(Overloaded { .. }) => self.enter_queue(),
            Ok(_) => None,
        };
        async move {
            match (immediate, queued) {
                (Ok(permit), _) => Ok(permit),
                (Err(e), None) => Err(e),
                (Err(e), Some(slot)) => {
                    let r = slot.inner.semaphore.clone().acquire_owned().await;
                    let inner = Arc::clone(&slot.inner);
                    drop(slot); // leaves the queue (also if this future is dropped above)
                    r.map(|p| Permit::from_semaphore(p, inner))
                        .map_err(|_closed| e)
                }
            }
        }
    }

    /// A permit if a slot is free now, without queueing.
    ///
    /// ```
    /// let l = routing_tower::limit::ConcurrencyLimit::new(1, 5);
    /// let p = l.try_acquire().expect("free");
    /// assert!(l.try_acquire().is_err());
    /// drop(p);
    /// assert!(l.try_acquire().is_ok());
    /// ```
    pub fn try_acquire(&self) -> Result<Permit, Overloaded> {
        let inner = &self.inner;
        // Nobody waits (FIFO: a newcomer never overtakes a waiter) and a slot is free.
        if inner.waiting.load(Ordering::SeqCst) == 0 && inner.take_free() {
            return Ok(Permit {
                inner: Arc::clone(inner),
            });
        }
        // A slot handed to a waiter that has gone (cancelled, or granted in the
        // instant it still counted as waiting) sits in the semaphore: take it.
        if inner.waiting.load(Ordering::SeqCst) == 0 {
            match inner.semaphore.clone().try_acquire_owned() {
                Ok(p) => return Ok(Permit::from_semaphore(p, Arc::clone(inner))),
                Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {}
            }
        }
        Err(Overloaded::new())
    }

    /// Reserves a place in the queue, or `None` if it is full (or nothing could ever
    /// be served: `max_concurrent == 0`).
    fn enter_queue(&self) -> Option<QueueSlot> {
        if self.inner.max_concurrent == 0 {
            return None;
        }
        let max = self.inner.max_pending;
        self.inner
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < max).then_some(w + 1)
            })
            .ok()
            .map(|_| {
                // A slot freed since the failed try (its release saw no waiter yet)
                // goes to the queue now.
                self.inner.pull_free();
                QueueSlot {
                    inner: Arc::clone(&self.inner),
                }
            })
    }

    /// Requests running now (permits held).
    ///
    /// ```
    /// let l = routing_tower::limit::ConcurrencyLimit::new(3, 0);
    /// let _p = l.try_acquire().expect("free slot");
    /// assert_eq!((l.in_flight(), l.available()), (1, 2));
    /// ```
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.inner.max_concurrent.saturating_sub(self.available())
    }

    /// Free slots now.
    #[must_use]
    pub fn available(&self) -> usize {
        self.inner.free.load(Ordering::SeqCst) + self.inner.semaphore.available_permits()
    }

    /// Requests waiting in the queue now.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }

    /// The concurrency bound.
    #[must_use]
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
    }

    /// The queue bound.
    #[must_use]
    pub fn max_pending(&self) -> usize {
        self.inner.max_pending
    }
}

/// A reserved place in the queue; gives it back on drop.
struct QueueSlot {
    inner: Arc<Inner>,
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_never_exceeds_max() {
        let limit = ConcurrencyLimit::new(3, 1000);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let (limit, running, peak) = (limit.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _p = limit.acquire().await.expect("queue is large enough");
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_micros(50)).await;
                }
                running.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.expect("task ran");
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= 3, "peak concurrency {peak} exceeds the limit of 3");
        assert_eq!(peak, 3, "the limit should have been reached");
        assert_eq!((limit.in_flight(), limit.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn exactly_k_of_max_plus_pending_plus_k_rejected() {
        let (max_c, max_p, k) = (4, 6, 5);
        let limit = ConcurrencyLimit::new(max_c, max_p);
        let mut futures = Vec::new();
        for _ in 0..max_c + max_p + k {
            futures.push(Box::pin(limit.acquire()));
        }
        // All decided at creation: max_c got permits, max_p queued, k refused.
        assert_eq!(limit.in_flight(), max_c);
        assert_eq!(limit.waiting(), max_p);
        let mut permits = Vec::new();
        let mut queued = Vec::new();
        let mut rejected = 0;
        for mut f in futures {
            tokio::select! {
                biased;
                r = &mut f => match r {
                    Ok(p) => permits.push(p),
                    Err(Overloaded { .. }) => rejected += 1,
                },
                _ = std::future::ready(()) => queued.push(f),
            }
        }
        assert_eq!((permits.len(), queued.len(), rejected), (max_c, max_p, k));
        // Releasing permits serves the queue in order.
        permits.clear();
        let mut served = 0;
        for f in queued {
            let _p = tokio::time::timeout(Duration::from_secs(5), f)
                .await
                .expect("queued request served after release")
                .expect("not refused");
            served += 1;
        }
        assert_eq!(served, max_p);
        assert_eq!(limit.waiting(), 0);
    }

    #[tokio::test]
    async fn cancelled_waiter_frees_queue_slot() {
        let limit = ConcurrencyLimit::new(1, 1);
        let held = limit.try_acquire().expect("free");
        let waiter = limit.acquire();
        assert_eq!(limit.waiting(), 1);
        assert!(limit.acquire().await.is_err(), "queue full");
        // Cancel while queued (poll it once so it is registered with the semaphore).
        let mut waiter = Box::pin(waiter);
        assert!(
            tokio::time::timeout(Duration::from_millis(5), &mut waiter)
                .await
                .is_err(),
            "still waiting"
        );
        drop(waiter);
        assert_eq!(limit.waiting(), 0, "a cancelled waiter leaves the queue");
        let next = limit.acquire();
        assert_eq!(limit.waiting(), 1, "its slot is usable again");
        drop(held);
        let _p = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("served")
            .expect("not refused");
        assert_eq!(limit.in_flight(), 1);
    }

    #[tokio::test]
    async fn permits_freed_on_drop_including_cancelled_requests() {
        let limit = ConcurrencyLimit::new(2, 0);
        let l = limit.clone();
        let task = tokio::spawn(async move {
            let _p = l.acquire().await.expect("free");
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        while limit.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(limit.in_flight(), 1);
        task.abort();
        let _ = task.await;
        assert_eq!(
            limit.in_flight(),
            0,
            "an aborted request releases its permit"
        );
        let a = limit.acquire().await.expect("free");
        let b = limit.acquire().await.expect("free");
        assert!(limit.acquire().await.is_err());
        drop((a, b));
        assert_eq!(limit.available(), 2);
    }

    #[tokio::test]
    async fn zero_concurrency_refuses_without_hanging() {
        let limit = ConcurrencyLimit::new(0, 10);
        for _ in 0..3 {
            assert_eq!(limit.acquire().await.err(), Some(Overloaded::new()));
        }
        assert_eq!(limit.waiting(), 0);
        let huge = ConcurrencyLimit::new(usize::MAX, usize::MAX);
        assert_eq!(huge.max_concurrent(), Semaphore::MAX_PERMITS);
        assert!(huge.acquire().await.is_ok());
    }

    #[tokio::test]
    async fn queue_is_fifo() {
        let limit = ConcurrencyLimit::new(1, 10);
        let held = limit.try_acquire().expect("free");
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let fut = limit.acquire();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _p = fut.await.expect("queued");
                order.lock().expect("not poisoned").push(i);
            }));
            // Let it register with the semaphore before the next one.
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.expect("task ran");
        }
        assert_eq!(*order.lock().expect("not poisoned"), [0, 1, 2, 3, 4]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fast_and_queued_paths_mixed_with_cancellations_keep_every_slot() {
        let limit = ConcurrencyLimit::new(4, 64);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..400u64 {
            let (limit, running, peak) = (limit.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let permit = if i % 2 == 0 {
                    limit.try_acquire().ok()
                } else {
                    // Some waiters give up (cancelled while queued).
                    let wait = Duration::from_micros(if i % 7 == 0 { 10 } else { 50_000 });
                    match tokio::time::timeout(wait, limit.acquire()).await {
                        Ok(Ok(p)) => Some(p),
                        _ => None,
                    }
                };
                if let Some(p) = permit {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    drop(p);
                }
            }));
        }
        for t in tasks {
            t.await.expect("task ran");
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=4).contains(&peak), "peak {peak}");
        assert_eq!(limit.waiting(), 0);
        assert_eq!(limit.in_flight(), 0);
        assert_eq!(limit.available(), 4, "no slot lost or created");
        // And all four are usable on the fast path again.
        let all: Vec<_> = (0..4).map(|_| limit.try_acquire().expect("free")).collect();
        assert!(limit.try_acquire().is_err());
        drop(all);
        assert_eq!(limit.available(), 4);
    }
}
