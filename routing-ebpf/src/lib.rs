//! An XDP fast path for plain TCP load balancing, and its userspace loader.
//!
//! TCP connections to a virtual service (VIP address + port, IPv4 or IPv6) are
//! spread over weighted targets by the *same* weighted Maglev table that
//! `routing-core` routes with ([`routing_core::TcpService::maglev`]), hashed with
//! the same flow hash ([`routing_core::FiveTuple::hash`], bit for bit), and then
//! pinned to their target by a connection table. The program (crate
//! `routing-ebpf-xdp` in `ebpf/`, built by `build.rs`) is embedded in this crate:
//! no path is needed at run time.
//!
//! ```no_run
//! use routing_ebpf::{AttachMode, Options, XdpBalancer};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let table = routing_core::RouteTable::from_yaml(r#"
//! backends:
//!   - {name: a, address: '203.0.113.10:8080'}
//!   - {name: b, address: '203.0.113.11:8080'}
//! tcp_services:
//!   - {name: web, vip: '192.0.2.1:80', backends: [{name: a, weight: 3}, {name: b, weight: 1}]}
//! "#)?;
//! let mut lb = XdpBalancer::load(&Options::default())?; // root, or CAP_BPF + CAP_NET_ADMIN
//! lb.apply(&table)?;                                    // again on every config change
//!                                                       // (or follow a Router: `follow`)
//! lb.attach("eth0", AttachMode::Driver)?;               // detached again on drop
//! let stats = lb.stats()?;
//! # Ok(()) }
//! ```
//!
//! # Forwarding mode: DNAT (the only mode implemented)
//!
//! A packet to a VIP gets its destination address and port rewritten to the
//! target's, and its MACs set for the next hop towards the target; replies from the
//! target get their source rewritten back to the VIP and are sent to the MAC the
//! client's packets came from. IPv4 header and TCP checksums are updated
//! incrementally (RFC 1624, eqn. 3). The next hop is found with the kernel's FIB
//! and neighbour tables (`bpf_fib_lookup`) once per connection and cached in its
//! connection-table entry; the frame leaves with `XDP_TX` when that next hop is on
//! the ingress interface, `XDP_REDIRECT` to the interface otherwise.
//!
//! What DNAT asks of the network:
//! * **Targets** need nothing special (no VIP, no tunnel), except that their
//!   replies must pass back through the load balancer — typically the load
//!   balancer is their default gateway, or the route to the clients.
//! * **The load-balancer host** needs a neighbour entry for a target before
//!   packets can be sent to it directly. Until then (first packet of the first
//!   connection to a target) the rewritten packet is handed to the kernel
//!   (`XDP_PASS`), which forwards it if `net.ipv4.ip_forward` /
//!   `net.ipv6.conf.all.forwarding` is on and resolves the neighbour; later packets
//!   take the XDP path. Turn ICMP redirects off on that interface.
//! * **veth test setups**: senders whose packets are rewritten must have transmit
//!   checksum offload off (a partial checksum cannot be updated incrementally, and
//!   XDP_TX loses the offload state) — `routing_testkit::netns::Offload::TxChecksum`; with native
//!   (driver) mode on a veth, the peer must run an XDP program for XDP_TX frames to
//!   arrive (`routing_testkit::netns::Topology::prepare_native`).
//!
//! L2 direct server return and IP-in-IP encapsulation are not implemented.
//!
//! # Verdicts
//!
//! | packet | verdict | bytes |
//! |---|---|---|
//! | TCP to a VIP (address + port), valid | `XDP_TX` / `XDP_REDIRECT` (`XDP_PASS` while the next hop is unresolved) | rewritten to the target |
//! | TCP reply of a tracked connection (target → client) | `XDP_TX` / `XDP_REDIRECT` | source rewritten to the VIP |
//! | TCP to a VIP with a malformed TCP header (data offset < 5, header beyond the IP payload, payload shorter than 20 bytes) | `XDP_DROP` (counted as the VIP's `parse_failures` and `dropped`) | untouched |
//! | TCP to a VIP whose every target has weight 0 | `XDP_DROP` (VIP `dropped`) | untouched |
//! | anything else: not IP, not TCP, not to a VIP | `XDP_PASS` | untouched |
//! | IPv4 fragment (MF or offset), IPv6 Fragment header | `XDP_PASS` (`fragments`) | untouched |
//! | more than two VLAN tags, more than four IPv6 extension headers | `XDP_PASS` (`too_deep`) | untouched |
//! | truncated or malformed before the TCP ports can be read: short Ethernet/VLAN/IP header, IPv4 IHL < 5, version mismatch, IPv4 total length < IHL or beyond the frame, IPv6 payload length 0 (jumbogram) or beyond the frame, extension header beyond the frame | `XDP_PASS` (`parse_failures`) | untouched |
//!
//! The rule: a packet the program cannot prove is for a VIP belongs to the kernel,
//! which validates it and counts it in its own statistics; a packet for a VIP is
//! never sent to a target unless it parsed completely. Up to two 802.1Q/802.1ad
//! tags and IPv4 options are handled (not dropped, unlike Katran); the IPv6
//! extension headers skipped are Hop-by-Hop, Routing, Destination Options and AH.
//!
//! # Connection tracking
//!
//! Two LRU hash maps: `CONNTRACK` (client → VIP 5-tuple → target, with the cached
//! next hop) and `REVERSE` (target → client 5-tuple → VIP, with the client's MAC).
//! Both are created when the first packet of a connection that is not a RST
//! arrives — a SYN, or any segment of a connection the table does not know (after
//! a restart or an eviction: it lands where the Maglev table says, which is where
//! it was unless the weights changed meanwhile).
//!
//! * **RST** never creates an entry: it is forwarded where the table says,
//!   untracked.
//! * **FIN/RST of a tracked connection** change nothing: entries are not deleted
//!   (a retransmitted FIN or the last ACK still needs them; TIME_WAIT reuse of the
//!   5-tuple goes to the same target, which is what its TIME_WAIT state expects).
//!   Entries age out by LRU eviction only.
//! * **Weight changes and target removal** never move an established connection:
//!   its entry holds the target's address, so a removed target keeps its open
//!   connections (draining) until they are evicted; it gets no new ones. Replies
//!   of draining connections are still translated (the reply filter keeps every
//!   target port ever configured).
//! * **A removed VIP** stops matching at once: its packets pass to the kernel.
//! * **Sizing** ([`Options::conntrack_capacity`], per map): at least the number of
//!   connections open at once, with head-room for churn — an evicted entry of a
//!   live connection is re-created by its next segment from the *current* Maglev
//!   table, which moves it if the weights changed since (Katran issues #80, #14).
//!   The maps use per-CPU LRU lists (`BPF_F_NO_COMMON_LRU`): no lock shared across
//!   CPUs on insert, but each CPU evicts from its own share (capacity / CPUs), so
//!   size for the busiest CPU. Memory is about 150 bytes per entry per map.
//!
//! # Table updates
//!
//! Each VIP has two table buffers in the `MAGLEV` array and an active index in
//! `VIP_STATE`. [`XdpBalancer::apply`] writes the new table into the inactive
//! buffer (only the slots that differ), then flips the index with one map update.
//! A packet reads the index once and then only that buffer: it never sees a
//! half-written table. A retired buffer is rewritten no sooner than
//! [`RETIRE_DELAY`] after the flip (a program run lasts microseconds). New flows
//! hash with `hash_on` of the service: the 5-tuple, or the source address only.
//!
//! To keep one owner of the configuration, let a [`follow::RouterFollower`] apply
//! a `routing_core::Router`'s table whenever its generation changes: file reloads
//! (`Router::update`) and progressive rollouts on a `tcp_services` entry
//! (`routing_rollout`, through `Router::modify`) then reach the tables the same way.
//!
//! Health is not part of the datapath: routing-core's `route_flow` redraws around
//! unavailable backends, the XDP program uses the table as built. Set a failed
//! target's weight to 0 (a new [`XdpBalancer::apply`]) to take it out.
//!
//! # Statistics
//!
//! Per target (per-CPU, summed by [`XdpBalancer::stats`]): packets, bytes, new
//! flows. Per VIP: forwarded, replies, passed (rewritten, next hop unresolved),
//! dropped, parse failures. Global: the pass reasons of the verdict table.
//!
//! # Building
//!
//! `build.rs` compiles `ebpf/` with the nightly toolchain for `bpfel-unknown-none`
//! (`-Z build-std=core`) through `aya-build`, linking with `bpf-linker`. Both must
//! be installed (`cargo xtask setup`); when they are not, the build stops with a
//! message that says so.

mod balancer;
mod error;
pub mod follow;
pub mod metrics;
mod stats;
mod tables;

pub use balancer::{
    AttachMode, BenchMode, Options, Program, TestRunOutput, Verdict, XdpBalancer, RETIRE_DELAY,
};
pub use error::Error;
pub use routing_core;
pub use stats::{GlobalStats, Stats, TargetStats, VipStats};
