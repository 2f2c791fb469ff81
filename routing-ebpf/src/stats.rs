//! Counters read from the per-CPU maps, summed over CPUs.

use std::net::SocketAddr;

/// Everything [`XdpBalancer::stats`](crate::XdpBalancer::stats) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// One entry per programmed VIP.
    pub vips: Vec<VipStats>,
    /// Traffic not attributed to a VIP.
    pub global: GlobalStats,
}

/// Counters of one VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipStats {
    /// Service name.
    pub name: String,
    /// The VIP.
    pub vip: SocketAddr,
    /// Packets to the VIP rewritten and sent to a target (XDP_TX / XDP_REDIRECT).
    pub forwarded: u64,
    /// Replies rewritten back to the VIP.
    pub replies: u64,
    /// Packets to the VIP rewritten and handed to the kernel (next hop unresolved).
    pub passed: u64,
    /// Packets to the VIP dropped (malformed TCP header; no target with weight).
    pub dropped: u64,
    /// Of those, packets with a malformed TCP header.
    pub parse_failures: u64,
    /// The VIP's current targets.
    pub targets: Vec<TargetStats>,
}

/// Counters of one target of a VIP (since the target was added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStats {
    /// Target (backend) name.
    pub name: String,
    /// Its address.
    pub address: SocketAddr,
    /// Its configured weight.
    pub weight: u32,
    /// Packets forwarded to it.
    pub packets: u64,
    /// Bytes (whole frames) forwarded to it.
    pub bytes: u64,
    /// Connections assigned to it.
    pub new_flows: u64,
    /// Its state in the datapath (active, draining, down).
    pub state: crate::TargetState,
}

/// Traffic passed without being attributed to a VIP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GlobalStats {
    /// Neither IPv4 nor IPv6.
    pub not_ip: u64,
    /// IP but not TCP.
    pub not_tcp: u64,
    /// TCP, neither to a VIP nor a reply from a target.
    pub not_vip: u64,
    /// IP fragments.
    pub fragments: u64,
    /// Truncated or malformed before the TCP ports (passed untouched).
    pub parse_failures: u64,
    /// More than two VLAN tags or four IPv6 extension headers.
    pub too_deep: u64,
    /// New connections forwarded by the Maglev table but not tracked, because this
    /// CPU was over [`Options::new_flow_limit`](crate::Options::new_flow_limit).
    pub untracked: u64,
    /// IPv6 packets with an Authentication Header (passed untouched).
    pub ah: u64,
}
