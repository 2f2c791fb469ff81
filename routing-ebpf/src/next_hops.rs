//! Keeping the program's next hops current: a netlink listener that makes the
//! program resolve them again when neighbours, routes or links change.
//!
//! The XDP program resolves the next hop towards a target (interface, MACs) with
//! `bpf_fib_lookup` at the first packet to that target and keeps it per target in
//! `NEXT_HOPS`; it does not look again on its own. When a target's MAC address
//! changes (a replaced machine, a moved address, a failed-over gateway) its flows
//! would keep going to the old MAC. A [`NextHopWatch`] listens to the kernel's
//! `RTMGRP_NEIGH`, `RTMGRP_IPV4_ROUTE`, `RTMGRP_IPV6_ROUTE` and `RTMGRP_LINK`
//! notifications of the network namespace it is created in, and
//! [`NextHopWatch::poll`] calls [`XdpBalancer::refresh_next_hops`] when any arrived
//! since the last poll — every target then resolves again at its next packet (one
//! FIB lookup per target), so all events between two polls cost one refresh.
//!
//! Every [`REFRESH_INTERVAL`] it refreshes anyway, also without events: the
//! fallback for notifications the kernel dropped (`ENOBUFS` on a full socket
//! buffer is treated as an event too) and for neighbour changes that raise no
//! notification.
//!
//! `routing run` polls it once a tick (every second).
//!
//! ```no_run
//! use routing_ebpf::{next_hops::NextHopWatch, Options, XdpBalancer};
//! # fn main() -> Result<(), routing_ebpf::Error> {
//! let mut lb = XdpBalancer::load(&Options::default())?; // root
//! let mut watch = NextHopWatch::new()?;                  // in the balancer's namespace
//! loop {
//!     if watch.poll(&mut lb)? {
//!         println!("next hops refreshed");
//!     }
//!     std::thread::sleep(std::time::Duration::from_secs(1));
//! #   break;
//! }
//! # Ok(()) }
//! ```

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use crate::{Error, XdpBalancer};

/// The periodic refresh: at most this long between two refreshes, events or not.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Multicast groups of `NETLINK_ROUTE` (`linux/rtnetlink.h`).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_NEIGH: u32 = 0x4;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// A netlink listener for neighbour, route and link changes; see the module docs.
#[derive(Debug)]
pub struct NextHopWatch {
    fd: OwnedFd,
    interval: Duration,
    last_refresh: Instant,
    events: u64,
    refreshes: u64,
}

impl NextHopWatch {
    /// Opens a non-blocking `NETLINK_ROUTE` socket subscribed to neighbour, route
    /// and link notifications of the calling thread's network namespace, with the
    /// periodic refresh every [`REFRESH_INTERVAL`].
    ///
    /// # Errors
    /// [`Error::Netlink`] when the socket cannot be opened or bound.
    ///
    /// ```no_run
    /// let watch = routing_ebpf::next_hops::NextHopWatch::new().unwrap();
    /// assert_eq!(watch.refreshes(), 0);
    /// ```
    pub fn new() -> Result<Self, Error> {
        Self::with_interval(REFRESH_INTERVAL)
    }

    /// [`NextHopWatch::new`] with another periodic refresh interval.
    ///
    /// # Errors
    /// [`Error::Netlink`] when the socket cannot be opened or bound.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let watch = routing_ebpf::next_hops::NextHopWatch::with_interval(Duration::from_secs(5)).unwrap();
    /// assert_eq!(watch.interval(), Duration::from_secs(5));
    /// ```
    pub fn with_interval(interval: Duration) -> Result<Self, Error> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| Error::Netlink(e.into()))?;
        let groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(|e| Error::Netlink(e.into()))?;
        Ok(Self {
            fd,
            interval,
            last_refresh: Instant::now(),
            events: 0,
            refreshes: 0,
        })
    }

    /// The periodic refresh interval.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Netlink messages received so far.
    #[must_use]
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Refreshes done so far (by events and by the interval).
    #[must_use]
    pub fn refreshes(&self) -> u64 {
        self.refreshes
    }

    /// Reads every pending notification without blocking; when there was any, or
    /// the interval has passed since the last refresh, calls
    /// [`XdpBalancer::refresh_next_hops`]. Returns whether it refreshed.
    ///
    /// # Errors
    /// [`Error::Netlink`] when reading the socket fails (other than "nothing
    /// pending" and "notifications were dropped", the latter counting as an
    /// event); [`Error::Map`] when the refresh cannot write the map.
    pub fn poll(&mut self, lb: &mut XdpBalancer) -> Result<bool, Error> {
        let mut changed = false;
        // Each read returns one datagram (one or more netlink messages); bounded
        // so a storm of notifications cannot keep the caller here.
        let mut buf = vec![0u8; 16 * 1024];
        for _ in 0..1024 {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => break,
                Ok(_) => {
                    self.events += 1;
                    changed = true;
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::ENOBUFS) => changed = true,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::Netlink(e.into())),
            }
        }
        if changed || self.last_refresh.elapsed() >= self.interval {
            lb.refresh_next_hops()?;
            self.last_refresh = Instant::now();
            self.refreshes += 1;
            return Ok(true);
        }
        Ok(false)
    }
}

impl AsFd for NextHopWatch {
    /// The netlink socket: readable when notifications are pending (to wait for
    /// it with `poll(2)`, epoll or tokio's `AsyncFd` instead of polling on a timer).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
