//! An XDP fast path for plain TCP load balancing, and its userspace loader.
//!
//! TCP connections to a virtual service (VIP address + port, IPv4 or IPv6) are
//! spread over weighted targets by the *same* weighted Maglev table that
//! `routing-core` routes with ([`routing_core::TcpService::maglev`]), hashed with
//! the same flow hash ([`routing_core::FiveTuple::hash`], bit for bit), and then
//! pinned to their target by a flow cache. The program (crate
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
//! # Forwarding mode: DNAT (the default)
//!
//! A packet to a VIP gets its destination address and port rewritten to the
//! target's, and its MACs set for the next hop towards the target; replies from the
//! target get their source rewritten back to the VIP *without per-connection
//! state*: the target's address:port names its VIP (`REPLY_TABLE`), so a target
//! address:port may serve one VIP only ([`Error::SharedTarget`] otherwise). IPv4
//! header and TCP checksums are updated incrementally, word by word (RFC 1624,
//! eqn. 3). The next hop towards a target (interface, MACs) is resolved with the
//! kernel's FIB and neighbour tables (`bpf_fib_lookup`) at the first packet to
//! that target and kept per target (`NEXT_HOPS`), not per flow;
//! [`XdpBalancer::refresh_next_hops`] forgets them all, and a
//! [`next_hops::NextHopWatch`] calls it after netlink neighbour, route and link
//! events (and at least every [`next_hops::REFRESH_INTERVAL`]), so a target whose
//! MAC changes keeps its flows; [`XdpBalancer::apply`] forgets the next hops of
//! targets it (re)writes. The next
//! hop of a reply (towards the client) is looked up in the FIB per reply packet.
//! The frame leaves with `XDP_TX` when the next hop is on the ingress interface,
//! `XDP_REDIRECT` to the interface otherwise.
//!
//! What DNAT asks of the network:
//! * **Targets** need nothing special (no VIP, no tunnel), except that their
//!   replies must pass back through the load balancer — typically the load
//!   balancer is their default gateway, or the route to the clients.
//! * **The load-balancer host** needs a route and neighbour entry towards the
//!   clients (for replies) and a neighbour entry for a target before
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
//! # Forwarding mode: direct server return with IP-in-IP (`forwarding: dsr_ipip`)
//!
//! Chosen per VIP (`tcp_services[].forwarding: dsr_ipip` with `dsr_source`, the
//! outer source address, validated by routing-core; DNAT and DSR VIPs mix on one
//! balancer). The target is picked exactly as for DNAT (flow cache, Maglev); the
//! packet is then left unchanged (VIP destination address *and port*: the target's
//! configured port is not used) and put behind a new outer header with
//! `bpf_xdp_adjust_head`: IPv4-in-IPv4 (20 bytes, protocol 4, TTL 64, no DF, header
//! checksum computed) or IPv6-in-IPv6 (40 bytes, next header 41, hop limit 64), from
//! `dsr_source` to the target's address, sent to the target's next hop like a DNAT
//! packet (`XDP_TX` / `XDP_REDIRECT`; `XDP_PASS` until the next hop is resolved, the
//! kernel then routes the encapsulated packet). Replies do not pass the balancer,
//! so no `REPLY_TABLE` entry is written for a DSR VIP's targets. Only untagged
//! frames are encapsulated (a VLAN-tagged packet to a DSR VIP is dropped, counted
//! as the VIP's `dropped`).
//!
//! What DSR asks of the network:
//! * **Targets** decapsulate and own the VIP: an `ipip` / `ip6tnl` device (or
//!   the fallback `tunl0` / `ip6tnl0`), the VIP on the loopback (with
//!   `arp_ignore=1` / `arp_announce=2` on shared segments), reverse-path filtering
//!   loose or off on the tunnel device, and a route to the clients that does not
//!   go through the balancer. Kernels without tunnel devices (this project's CI
//!   kernel has neither `CONFIG_NET_IPIP` nor `CONFIG_IPV6_TUNNEL`) can run the
//!   object's `xdp_decap` program instead ([`XdpBalancer::attach_decap`]): it strips
//!   the outer header of IPv4-in-IPv4 / IPv6-in-IPv6 packets and passes the inner
//!   packet to the kernel. The targets' servers listen on the VIP's port.
//! * **MTU**: encapsulation adds 20 (IPv4) or 40 (IPv6) bytes, and XDP does not
//!   fragment. The path to the targets should carry `client MTU + overhead`
//!   (jumbo frames inside the data centre, as Katran and GLB recommend), or
//!   [`Options::dsr_mtu`] is set to what it carries (default 1500). An IPv4 packet
//!   that would exceed it once encapsulated is **answered with ICMP
//!   "fragmentation needed"** (type 3 code 4, next-hop MTU `dsr_mtu − 20`, from the
//!   VIP to the client, quoting the packet's IP header and first 8 bytes, `XDP_TX`
//!   back to the MAC it came from) and counted as the VIP's `dropped`; the
//!   client's path MTU discovery then lowers its segment size (`tests/ipip.rs`
//!   shows the exchange completing and the client's route cache at `mtu 1480`). An
//!   oversize IPv6 packet is dropped and counted (no "packet too big" is generated
//!   yet); clamp the MSS for IPv6 DSR VIPs or raise the path MTU.
//! * GUE encapsulation is not implemented.
//!
//! # Several balancers behind ECMP
//!
//! With `dsr_ipip` replies bypass the balancer, so a fleet of balancers can share
//! a VIP behind a router's equal-cost multipath route (Katran, Maglev, Unimog,
//! GLB). What keeps a flow on its target when the router moves it to another
//! balancer (a nexthop added or removed) is that every balancer builds the same
//! Maglev table and the program re-creates a flow it has no state for from the
//! table (only a SYN always re-picks; any other packet without a flow entry is
//! routed by the table and gets an entry). The tables depend on the *set* of
//! services and backends, not on their order in the configuration: Maglev
//! permutations are seeded by backend names and equal visit times go to the name
//! that sorts first. [`routing_core::RouteTable::tcp_fingerprint`] (and
//! [`XdpBalancer::fingerprint`] for the table a balancer last applied) summarises
//! the installed tables in terms of VIPs and target names and addresses: equal
//! values across the fleet mean equal steering (`tests/ecmp.rs`: two loaders, the
//! configuration in different orders, the same fingerprint, and mid-flow packets
//! sent to the balancer that never saw the SYN reach the same target; and a real
//! router namespace with a multipath route over two or three balancer namespaces
//! — `routing_testkit::ecmp::EcmpTopology` — where 1 000 open connections survive
//! removing a nexthop and restarting a balancer). `tcp_services[].maglev_seed`
//! (default 0, part of the fingerprint) seeds the permutations: the same seed
//! fleet-wide, a different one for a fleet meant to spread differently. While the
//! backend set changes, nodes that have applied different generations disagree for
//! flows of the moved slots (no GLB-style second chance yet). Backend names are
//! part of the identity: give a target the same name on every node.
//!
//! Announcing the VIP stays with the host's BGP speaker: each balancer announces
//! the VIP (a /32 or /128) with the same attributes, the router installs the
//! equal-cost paths (`maximum-paths` / `merge paths`), and a balancer withdraws the
//! route before it stops (e.g. an `ExecStop` that removes the route the speaker
//! redistributes). FRR on a balancer (the VIP on `lo` or as a static blackhole so
//! the route exists):
//!
//! ```text
//! ip route 192.0.2.1/32 Null0
//! router bgp 65010
//!  neighbor 10.0.0.1 remote-as 65000
//!  address-family ipv4 unicast
//!   network 192.0.2.1/32
//!  exit-address-family
//! ```
//!
//! and on the router `router bgp 65000` / `address-family ipv4 unicast` /
//! `maximum-paths 8` (plus `bgp bestpath as-path multipath-relax` when the
//! balancers use different AS numbers). BIRD 2 on a balancer:
//!
//! ```text
//! protocol static vips { ipv4; route 192.0.2.1/32 blackhole; }
//! protocol bgp upstream {
//!   local as 65010; neighbor 10.0.0.1 as 65000;
//!   ipv4 { import none; export where proto = "vips"; };
//! }
//! ```
//!
//! and `merge paths on` in the router's kernel protocol for ECMP. Hash policy on a
//! Linux router: `net.ipv4.fib_multipath_hash_policy = 1` (L4) so the flows of one
//! client spread. Complete BIRD 2 configurations for a balancer and for the router
//! are in `examples/bgp/`; `tests/bgp.rs` runs them in network namespaces (router
//! and two balancers): the router installs one route with both balancers as
//! equal-cost next hops, a balancer stopped cleanly is withdrawn at once, and one
//! whose link vanishes is withdrawn when its 6 s hold time runs out. The FRR lines
//! above are not run here.
//!
//! # Target health
//!
//! Each target has a state in the datapath (`TARGET_HEALTH`, by target id):
//! [`TargetState::Active`], [`TargetState::Draining`] (its established flows
//! stay, it gets no new ones) or [`TargetState::Down`] (no new flows, and its
//! established flows are re-picked at their next packet). Set it with
//! [`XdpBalancer::set_target_state`] — the hook for external health such as
//! EndpointSlice conditions — or let a [`HealthChecker`] (TCP connect or HTTP GET
//! with an expected status, `tcp_services[].health_check`: interval, timeout, rise,
//! fall) find targets down and up; `routing run` does both and shows the states.
//! The loader hands the Maglev slots of draining and down targets to the target of
//! the next active slot (wrapping), so a pick reads no health state and flows of
//! active targets keep their slots; the program reads the state once per packet of
//! an established flow (a flow-cache hit) to notice `down`. Balancers with the same
//! configuration and the same states build the same tables. Weight 0 keeps its
//! meaning (no slot at all). A draining target's flows live as long as their
//! flow-cache entries: a flow evicted from the cache, or moved by ECMP to a
//! balancer without its entry, is routed by the table, i.e. away from the
//! draining target (no GLB-style second chance). Health checks run from the
//! balancer host, for DSR and DNAT VIPs alike: a packet from a target's address
//! and port that is addressed to the balancer itself (the FIB says it is not
//! forwarded) is the target answering the balancer, and goes to the kernel
//! untranslated (`tests/health.rs`:
//! `health_checks_from_the_balancer_host_see_dnat_targets`).
//!
//! # Verdicts
//!
//! | packet | verdict | bytes |
//! |---|---|---|
//! | TCP to a VIP (address + port), valid | `XDP_TX` / `XDP_REDIRECT` (`XDP_PASS` while the next hop is unresolved) | rewritten to the target |
//! | TCP to a `dsr_ipip` VIP, valid, fits `dsr_mtu` once encapsulated | `XDP_TX` / `XDP_REDIRECT` (`XDP_PASS` while the next hop is unresolved) | unchanged, behind an outer IPv4 / IPv6 header to the target |
//! | TCP/IPv4 to a `dsr_ipip` VIP, too big once encapsulated | `XDP_TX` (VIP `dropped`) | replaced by ICMP fragmentation-needed to the client |
//! | TCP/IPv6 to a `dsr_ipip` VIP, too big once encapsulated; VLAN-tagged TCP to a `dsr_ipip` VIP | `XDP_DROP` (VIP `dropped`) | untouched |
//! | TCP from a target's address:port (a reply, target → client) | `XDP_TX` / `XDP_REDIRECT` (`XDP_PASS` when the client's next hop is unresolved) | source rewritten to the VIP |
//! | TCP from a target's address:port to an address of the balancer itself (its health checks, an operator's connection) | `XDP_PASS` (`not_vip`) | untouched |
//! | TCP to a VIP with a malformed TCP header (data offset < 5, header beyond the IP payload, payload shorter than 20 bytes) | `XDP_DROP` (counted as the VIP's `parse_failures` and `dropped`) | untouched |
//! | TCP to a VIP whose every target has weight 0 | `XDP_DROP` (VIP `dropped`) | untouched |
//! | anything else: not IP, not TCP, not to a VIP | `XDP_PASS` | untouched |
//! | IPv4 fragment (MF or offset), IPv6 Fragment header | `XDP_PASS` (`fragments`) | untouched |
//! | more than two VLAN tags, more than four IPv6 extension headers | `XDP_PASS` (`too_deep`) | untouched |
//! | IPv6 with an Authentication Header (AH covers the addresses) | `XDP_PASS` (`ah`) | untouched |
//! | ICMPv4 fragmentation-needed or ICMPv6 packet-too-big about a VIP flow | `XDP_TX` / `XDP_REDIRECT` | outer destination and quoted source → the flow's target |
//! | truncated or malformed before the TCP ports can be read: short Ethernet/VLAN/IP header, IPv4 IHL < 5, version mismatch, IPv4 total length < IHL or beyond the frame, IPv6 payload length 0 (jumbogram) or beyond the frame, extension header beyond the frame | `XDP_PASS` (`parse_failures`) | untouched |
//!
//! The rule: a packet the program cannot prove is for a VIP belongs to the kernel,
//! which validates it and counts it in its own statistics; a packet for a VIP is
//! never sent to a target unless it parsed completely. Up to two 802.1Q/802.1ad
//! tags and IPv4 options are handled (not dropped, unlike Katran); the IPv6
//! extension headers skipped are Hop-by-Hop, Routing and Destination Options.
//! An ICMPv4 "fragmentation needed" (type 3 code 4) or ICMPv6 "packet too big"
//! (type 2 code 0) addressed to a VIP and quoting a segment VIP:port → client is
//! sent on to that flow's target (its cached target, else the Maglev pick), with
//! the outer destination, the quoted source address and port and the checksums
//! rewritten (IPv4: outer header, quoted header and ICMP; ICMPv6: its checksum,
//! whose pseudo-header covers the outer destination), so path MTU discovery works
//! through the balancer (`tests/pmtu.rs` shows it end to end over veth). A quote
//! with IPv4 options or IPv6 extension headers, and all other ICMP, pass
//! untouched.
//!
//! # Flow state (Katran's policy)
//!
//! One set-associative flow cache per family (`FLOW_CACHE4`, `FLOW_CACHE6`: 8
//! ways of 8 bytes per 64-byte set, one cache line) in a plain ARRAY shared by
//! all CPUs, holding client → VIP 5-tuple → target id. The 5-tuple is not stored:
//! its 64-bit flow hash (routing-core's, the one Maglev uses) picks the set with
//! its low bits, and a way holds the hash's top 40 bits as a tag next to the
//! target id. Two flows of one set share a tag with probability 2⁻⁴⁰; such a
//! pair shares one way, and both follow the target of the latest SYN among them. The Maglev table
//! is the source of truth; the cache only keeps established connections where they
//! are when the table changes.
//!
//! * **A SYN** (without ACK) always picks from the current Maglev table and
//!   overwrites its flow's way: a reused 5-tuple never reaches a stale or removed
//!   target.
//! * **Any other segment** follows its way; on a miss (evicted, or after a
//!   restart) it is routed by the Maglev table and cached again — where it was,
//!   unless the weights changed meanwhile.
//! * **RST** never creates state: it is forwarded where the table says.
//! * **New-connection rate limit** ([`Options::new_flow_limit`], per CPU per
//!   second): above it new connections are still forwarded by the table but not
//!   cached (counted as `untracked`), so a SYN flood cannot overwrite the ways of
//!   established flows faster than that.
//! * **Eviction**: a new flow overwrites the oldest way of its set. Replies never
//!   need the cache (stateless), so eviction can move a connection only if the
//!   table changed since it started — never leak an un-NATed reply.
//! * **Weight changes and target removal** do not move a cached connection: a
//!   removed target keeps its cached connections (draining; its id is not reused
//!   before every other free id, and a way naming a target of another VIP is a
//!   miss) and its reply entry stays until its slot is needed.
//! * **Concurrency**: a way is one aligned word, written whole; two CPUs shifting
//!   one set at once may duplicate or drop a way (a later miss), never tear one.
//! * **A removed VIP** stops matching at once: its packets pass to the kernel.
//! * **Sizing** ([`Options::conntrack_capacity`]): flows per family, rounded up to
//!   a power of two sets of 8 ways; give it head-room (a set holding more than 8
//!   live flows thrashes). 8 bytes per flow, either family; at most 2²⁴ − 1
//!   target ids.

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
//! dropped, parse failures. Global: the pass reasons of the verdict table, and
//! `untracked` (new connections over the rate limit).
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
pub mod health;
pub mod metrics;
pub mod next_hops;
mod stats;
mod tables;

pub use balancer::{
    AttachMode, BenchMode, Options, Program, TestRunOutput, Verdict, XdpBalancer, RETIRE_DELAY,
};
pub use error::Error;
pub use health::{HealthChecker, TargetState};
pub use routing_core;
pub use stats::{GlobalStats, Stats, TargetStats, VipStats};
