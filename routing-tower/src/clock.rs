//! Injectable monotonic time.
//!
//! Everything in this crate that measures time ([`OutlierDetector`], [`RetryBudget`])
//! reads it through a [`Clock`], so tests — and a rollout controller running in
//! virtual time — are deterministic: they pass a [`ManualClock`] and advance it by
//! hand. Production code passes a [`SystemClock`] (or a [`TokioClock`], which follows
//! `tokio::time::pause` in tests).
//!
//! A point in time is a [`Timestamp`]: nanoseconds since the clock's own epoch, as a
//! plain `u64`, so it fits in one atomic and deadlines can be compared without locks.
//! Timestamps of different clocks are not comparable.
//!
//! [`OutlierDetector`]: crate::outlier::OutlierDetector
//! [`RetryBudget`]: crate::budget::RetryBudget
//!
//! ```
//! use routing_tower::clock::{Clock, ManualClock, SharedClock};
//! use std::{sync::Arc, time::Duration};
//!
//! let manual = Arc::new(ManualClock::new());
//! let clock: SharedClock = manual.clone();
//! let t0 = clock.now();
//! manual.advance(Duration::from_secs(3));
//! assert_eq!(clock.now() - t0, Duration::from_secs(3));
//! ```

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A point on a [`Clock`]'s monotonic timeline: nanoseconds since that clock's epoch.
///
/// Arithmetic saturates: adding a huge [`Duration`] yields [`Timestamp::MAX`], and
/// subtracting a later timestamp yields [`Duration::ZERO`]; nothing panics.
///
/// ```
/// use routing_tower::clock::Timestamp;
/// use std::time::Duration;
/// let t = Timestamp::from_nanos(1_000);
/// assert_eq!((t + Duration::from_nanos(500)).as_nanos(), 1_500);
/// assert_eq!(Timestamp::ZERO - t, Duration::ZERO);
/// assert_eq!(t + Duration::MAX, Timestamp::MAX);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The clock's epoch.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The latest representable point (about 584 years after the epoch).
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// The timestamp `nanos` nanoseconds after the epoch.
    ///
    /// ```
    /// assert_eq!(routing_tower::clock::Timestamp::from_nanos(7).as_nanos(), 7);
    /// ```
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the epoch.
    ///
    /// ```
    /// assert_eq!(routing_tower::clock::Timestamp::ZERO.as_nanos(), 0);
    /// ```
    #[must_use]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    ///
    /// ```
    /// use routing_tower::clock::Timestamp;
    /// use std::time::Duration;
    /// let (a, b) = (Timestamp::from_nanos(10), Timestamp::from_nanos(25));
    /// assert_eq!(b.saturating_duration_since(a), Duration::from_nanos(15));
    /// assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    /// ```
    #[must_use]
    pub const fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    ///
    /// ```
    /// use routing_tower::clock::Timestamp;
    /// use std::time::Duration;
    /// assert_eq!(Timestamp::ZERO.saturating_add(Duration::from_micros(2)).as_nanos(), 2_000);
    /// ```
    #[must_use]
    pub const fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_nanos(d)))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;

    fn sub(self, earlier: Timestamp) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) const fn duration_nanos(d: Duration) -> u64 {
    let n = d.as_nanos();
    if n > u64::MAX as u128 {
        u64::MAX
    } else {
        n as u64
    }
}

/// A monotonic time source.
///
/// Implementations must never go backwards; consumers nevertheless tolerate it (a
/// timestamp earlier than one already seen is treated as "no time has passed").
///
/// ```
/// use routing_tower::clock::{Clock, SystemClock};
/// let c = SystemClock::new();
/// assert!(c.now() <= c.now());
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// A clock shared between components, as the constructors in this crate take it.
pub type SharedClock = Arc<dyn Clock>;

/// Wall-independent real time: [`std::time::Instant`] measured from the clock's creation.
///
/// ```
/// use routing_tower::clock::{Clock, SystemClock};
/// let c = SystemClock::new();
/// let t0 = c.now();
/// std::thread::sleep(std::time::Duration::from_millis(2));
/// assert!(c.now() - t0 >= std::time::Duration::from_millis(2));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: std::time::Instant,
}

impl SystemClock {
    /// A clock whose epoch is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }

    /// A [`SharedClock`] of a new `SystemClock`.
    ///
    /// ```
    /// let c = routing_tower::clock::SystemClock::shared();
    /// let _ = c.now();
    /// ```
    #[must_use]
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(duration_nanos(self.origin.elapsed()))
    }
}

/// Real time as tokio sees it: [`tokio::time::Instant`] measured from the clock's
/// creation, so it stands still and jumps with `tokio::time::pause`/`advance` in tests.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use routing_tower::clock::{Clock, TokioClock};
/// use std::time::Duration;
/// let c = TokioClock::new();
/// let t0 = c.now();
/// tokio::time::sleep(Duration::from_secs(60)).await; // instant when paused
/// assert_eq!(c.now() - t0, Duration::from_secs(60));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose epoch is now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        Timestamp(duration_nanos(self.origin.elapsed()))
    }
}

/// A clock that only moves when told to; for tests and simulations.
///
/// Starts at [`Timestamp::ZERO`]. Share it as `Arc<ManualClock>` and hand clones to the
/// components (they coerce to [`SharedClock`]).
///
/// ```
/// use routing_tower::clock::{Clock, ManualClock, Timestamp};
/// use std::time::Duration;
/// let c = ManualClock::new();
/// assert_eq!(c.now(), Timestamp::ZERO);
/// c.advance(Duration::from_millis(5));
/// assert_eq!(c.now(), Timestamp::from_nanos(5_000_000));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at [`Timestamp::ZERO`].
    #[must_use]
    pub const fn new() -> Self {
        Self {
            nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let add = duration_nanos(d);
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(add))
            });
    }

    /// Sets the clock to `t`; moving it backwards is allowed (to test tolerance of it).
    ///
    /// ```
    /// use routing_tower::clock::{Clock, ManualClock, Timestamp};
    /// let c = ManualClock::new();
    /// c.set(Timestamp::from_nanos(42));
    /// assert_eq!(c.now().as_nanos(), 42);
    /// ```
    pub fn set(&self, t: Timestamp) {
        self.nanos.store(t.0, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.nanos.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances_and_saturates() {
        let c = ManualClock::new();
        c.advance(Duration::from_secs(1));
        c.advance(Duration::from_nanos(1));
        assert_eq!(c.now().as_nanos(), 1_000_000_001);
        c.advance(Duration::MAX);
        assert_eq!(c.now(), Timestamp::MAX, "advance must saturate, not wrap");
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp::from_nanos(5);
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(t - Timestamp::MAX, Duration::ZERO);
        assert_eq!(duration_nanos(Duration::MAX), u64::MAX);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::new();
        let mut prev = c.now();
        for _ in 0..1000 {
            let t = c.now();
            assert!(t >= prev, "SystemClock must not go backwards");
            prev = t;
        }
    }

    #[test]
    fn shared_clock_coerces_from_arc_manual() {
        let manual = Arc::new(ManualClock::new());
        let shared: SharedClock = manual.clone();
        manual.advance(Duration::from_secs(2));
        assert_eq!(shared.now() - Timestamp::ZERO, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = TokioClock::new();
        let t0 = c.now();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(c.now() - t0, Duration::from_secs(30));
    }
}
