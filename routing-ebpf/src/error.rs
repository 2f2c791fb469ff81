//! The loader's errors.

use std::net::SocketAddr;

/// Why loading, programming or attaching the XDP program failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused the object (verifier, map creation, missing privileges).
    #[error("loading the XDP object failed: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program operation (load, attach, detach, test run) failed.
    #[error("XDP program operation failed: {0}")]
    Program(#[from] aya::programs::ProgramError),
    /// A map operation failed.
    #[error("eBPF map operation failed: {0}")]
    Map(#[from] aya::maps::MapError),
    /// A map or program the object must contain is missing (a build mismatch).
    #[error("the XDP object has no `{0}`")]
    Missing(&'static str),
    /// More L4 services than the loader was sized for.
    #[error("{count} tcp_services do not fit `max_vips` = {max}")]
    TooManyVips {
        /// Services in the configuration.
        count: usize,
        /// [`Options::max_vips`](crate::Options::max_vips).
        max: u32,
    },
    /// More targets (summed over services) than the loader was sized for.
    #[error("{count} targets do not fit `max_targets` = {max}")]
    TooManyTargets {
        /// Targets needed.
        count: usize,
        /// [`Options::max_targets`](crate::Options::max_targets).
        max: u32,
    },
    /// A service's Maglev table is larger than the loader was sized for.
    #[error("service `{service}`: maglev table of {size} slots exceeds `max_table_size` = {max}")]
    TableTooLarge {
        /// Service name.
        service: String,
        /// Table size of the configuration.
        size: usize,
        /// [`Options::max_table_size`](crate::Options::max_table_size).
        max: u32,
    },
    /// A target of an L4 service has no `address`.
    #[error("service `{service}`: target `{target}` has no address")]
    NoAddress {
        /// Service name.
        service: String,
        /// Target (backend) name.
        target: String,
    },
    /// DNAT cannot translate between address families.
    #[error(
        "service `{service}`: target `{target}` ({address}) is not of the family of VIP {vip}"
    )]
    FamilyMismatch {
        /// Service name.
        service: String,
        /// VIP.
        vip: SocketAddr,
        /// Target name.
        target: String,
        /// Target address.
        address: SocketAddr,
    },
    /// One target address:port serves two VIPs: replies are translated statelessly
    /// (target address:port → VIP), so each target must serve one VIP only.
    #[error("target {address} serves both VIP {first} and VIP {second}; a target address:port may serve one VIP only")]
    SharedTarget {
        /// The target address.
        address: SocketAddr,
        /// One VIP it serves.
        first: SocketAddr,
        /// Another VIP it serves.
        second: SocketAddr,
    },
    /// A lookup table of the program has no free slot within its probe distance.
    #[error("the `{0}` table is full (too many entries hash close together)")]
    TableFull(&'static str),
    /// [`XdpBalancer::attach`](crate::XdpBalancer::attach) on an attached balancer, or
    /// attaching a benchmark build.
    #[error("cannot attach: {0}")]
    Attach(&'static str),
    /// The netlink socket of a [`NextHopWatch`](crate::next_hops::NextHopWatch) failed.
    #[error("netlink (next-hop watch): {0}")]
    Netlink(#[source] std::io::Error),
    /// The aya-log reader could not be set up ([`Options::debug_log`](crate::Options::debug_log)).
    #[error("aya-log: {0}")]
    Log(String),
    /// A configuration file could not be read or parsed.
    #[error("configuration: {0}")]
    Config(#[from] routing_core::ConfigError),
}
