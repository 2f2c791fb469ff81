//! Map keys and values shared by the `routing-ebpf` XDP program and its loader, and
//! RFC 1624 incremental checksum arithmetic. (The flow hash and the Maglev slot
//! reduction, which the program and `routing-core` must agree on, are in the
//! `no_std` crate `routing-hash`, which both call.)
//!
//! Everything here is `#![no_std]`, `repr(C)` and free of padding the compiler could
//! insert on its own: every struct spells its padding out as `_pad` fields, so the
//! bytes the kernel hashes for a key are the bytes both sides wrote.
//!
//! **Word representation.** Addresses and ports are kept as the packet holds them
//! (network byte order), read into native `u32`/`u16` words: an IPv4 address is
//! `u32::from_ne_bytes(octets)`, a port `u16::from_ne_bytes(port.to_be_bytes())`.
//! The program then loads them from the packet with one word load each and
//! compares, copies and checksums whole words (the one's-complement sum is
//! independent of byte order, RFC 1071 §2(B)).
//!
//! With the `user` feature every type also implements `aya::Pod`, so the loader can
//! put it into maps.
//!
//! ```
//! use routing_ebpf_common::Flow4Key;
//! let key = Flow4Key {
//!     src: u32::from_ne_bytes([198, 51, 100, 2]),
//!     dst: u32::from_ne_bytes([192, 0, 2, 1]),
//!     sport: u16::from_ne_bytes(40000u16.to_be_bytes()),
//!     dport: u16::from_ne_bytes(80u16.to_be_bytes()),
//!     tid: 1,
//! };
//! assert_eq!(core::mem::size_of_val(&key), 16);
//! ```
#![no_std]

/// Address family tag for IPv4 (in [`VipEntry::family`], [`Target::family`], …).
pub const FAMILY_V4: u8 = 4;
/// Address family tag for IPv6.
pub const FAMILY_V6: u8 = 6;

/// IANA protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// [`VipEntry::flags`]: hash the source address only (client affinity) instead of
/// the 5-tuple.
pub const VIP_HASH_SOURCE_IP: u32 = 1;
/// `VipEntry::flags`: direct server return, the packet is encapsulated IP-in-IP
/// (IPv4-in-IPv4 or IPv6-in-IPv6) to the target with the outer source from
/// `DSR_SOURCE[index]`.
pub const VIP_DSR_IPIP: u32 = 2;

/// Slots of the `VIP_TABLE` array (a power of two).
pub const VIP_SLOTS: u32 = 256;
/// Slots of the `REPLY_TABLE` array (a power of two).
pub const REPLY_SLOTS: u32 = 4096;
/// Most slots probed (linear probing) in `VIP_TABLE` and `REPLY_TABLE`; the loader
/// refuses a configuration it cannot place within this many.
pub const PROBES: u32 = 4;

/// The slot an (address, port) starts probing at, in a table of `mask + 1` slots.
/// The program and the loader both call it.
///
/// ```
/// use routing_ebpf_common::{addr_slot, VIP_SLOTS};
/// let a = [u32::from_ne_bytes([192, 0, 2, 1]), 0, 0, 0];
/// assert!(addr_slot(&a, 80u16.to_be(), VIP_SLOTS - 1) < VIP_SLOTS);
/// ```
#[inline(always)]
#[must_use]
pub const fn addr_slot(addr: &[u32; 4], port: u16, mask: u32) -> u32 {
    let mut h =
        addr[0] ^ addr[1].rotate_left(7) ^ addr[2].rotate_left(14) ^ addr[3].rotate_left(21);
    h ^= port as u32;
    h = h.wrapping_mul(0x9e37_79b1);
    (h ^ (h >> 15)) & mask
}

/// A virtual service. Value of the `VIP_TABLE` array, placed by [`addr_slot`] of its
/// address and port with linear probing; an entry with `proto == 0` is empty.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipEntry {
    /// Address words (IPv4 in `addr[0]`, the rest zero).
    pub addr: [u32; 4],
    /// Port, network order as a native word.
    pub port: u16,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// IP protocol ([`PROTO_TCP`]); 0 = empty slot.
    pub proto: u8,
    /// Index of the VIP in `VIP_STATE` and `VIP_STATS`.
    pub index: u32,
    /// `VIP_*` flags.
    pub flags: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// What a reply from a target is translated to: the target's (address, port) →
/// the VIP it serves. Value of the `REPLY_TABLE` array (placed like [`VipEntry`]);
/// `family == 0` is empty. A target address:port serves one VIP only (the loader
/// refuses a configuration where two VIPs share one).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReplyEntry {
    /// Target address words.
    pub taddr: [u32; 4],
    /// Target port (network order as a native word).
    pub tport: u16,
    /// Address family; 0 = empty slot.
    pub family: u8,
    /// Explicit padding.
    pub _pad0: u8,
    /// VIP address words.
    pub vaddr: [u32; 4],
    /// VIP port.
    pub vport: u16,
    /// Explicit padding.
    pub _pad1: u16,
    /// VIP index (statistics).
    pub vip: u32,
    /// Explicit padding.
    pub _pad2: u32,
}

/// The double-buffered Maglev table of one VIP. Value of the `VIP_STATE` array.
///
/// Buffer `b` occupies `MAGLEV[base[b] .. base[b] + size[b]]`. The loader fills the
/// inactive buffer completely, then flips `active` with one map update: a packet reads
/// `active` once and then only the buffer it names, so it never sees a half-written
/// table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipState {
    /// Which buffer (0 or 1) new flows use.
    pub active: u32,
    /// Number of slots in each buffer (0 = no target has weight: new flows are dropped).
    pub size: [u32; 2],
    /// Offset of each buffer in the `MAGLEV` array.
    pub base: [u32; 2],
    /// Explicit padding.
    pub _pad: u32,
}

/// Target state in the `TARGET_HEALTH` array (by target id): picked for new flows.
pub const TARGET_ACTIVE: u32 = 0;
/// Target state: keeps its established flows, gets no new ones.
pub const TARGET_DRAINING: u32 = 1;
/// Target state: gets no new flows, and its established flows are re-picked.
pub const TARGET_DOWN: u32 = 2;

/// A target (backend). Value of the `TARGETS` array, indexed by target id.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Target {
    /// Address words (IPv4 in `addr[0]`).
    pub addr: [u32; 4],
    /// Port (network order as a native word).
    pub port: u16,
    /// [`FAMILY_V4`] or [`FAMILY_V6`]; 0 = unused slot.
    pub family: u8,
    /// Explicit padding.
    pub _pad: u8,
    /// Index of the VIP it serves: a flow whose entry names a target of another
    /// VIP (an id reused after removal) is treated as a miss.
    pub vip: u32,
}

/// The next hop towards a target. Value of the `NEXT_HOPS` array, indexed by target
/// id. The program resolves it with `bpf_fib_lookup` when `resolved == 0` and
/// stores it; the loader clears it when the target is (re)written and on
/// `XdpBalancer::refresh_next_hops`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NextHop {
    /// Destination and source MAC, as the first 12 bytes of the Ethernet header.
    pub macs: [u32; 3],
    /// Interface to send on (XDP_TX when it is the ingress interface).
    pub ifindex: u32,
    /// 1 when `macs`/`ifindex` are valid.
    pub resolved: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// An IPv4 TCP flow as seen on the wire (client → VIP). Key of `FLOWS4`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flow4Key {
    /// Source address word.
    pub src: u32,
    /// Destination address word.
    pub dst: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// `(target id + 1) ^ flow hash` (0 = an empty way of a flow-cache set).
    pub tid: u32,
}

/// An IPv6 TCP flow (client → VIP). A way of a `FLOW_CACHE6` set.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flow6Key {
    /// Source address words.
    pub src: [u32; 4],
    /// Destination address words.
    pub dst: [u32; 4],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// `(target id + 1) ^ flow hash` (0 = an empty way of a flow-cache set).
    pub tid: u32,
}

/// Ways per set of the flow caches (`FLOW_CACHE4`, `FLOW_CACHE6`).
pub const WAYS: usize = 4;

/// The set a flow key belongs to in a flow cache of `mask + 1` sets (a 32-bit
/// finaliser over the key's words). The program and the loader's tests call it.
///
/// ```
/// use routing_ebpf_common::flow_set;
/// assert!(flow_set(1, 2, 3, 1023) < 1024);
/// ```
#[inline(always)]
#[must_use]
pub const fn flow_set(src: u32, dst: u32, ports: u32, mask: u32) -> u32 {
    let mut h = src ^ dst.rotate_left(11) ^ ports.rotate_left(22);
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h & mask
}

/// One set of the IPv4 flow cache: up to [`WAYS`] flows with their targets, the
/// newest first (a new flow shifts the others down and the oldest falls out).
/// Value of the `FLOW_CACHE4` array (shared by all CPUs). 64 bytes: one cache
/// line.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowSet4 {
    /// The ways.
    pub ways: [Flow4Key; WAYS],
}

/// One set of the IPv6 flow cache (`FLOW_CACHE6`), as [`FlowSet4`].
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowSet6 {
    /// The ways.
    pub ways: [Flow6Key; WAYS],
}

/// Per-CPU new-connection rate state. Value of the `NEW_FLOW_RATE` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RateState {
    /// Start of the current one-second window (`bpf_ktime_get_ns`).
    pub window_start: u64,
    /// New connections tracked in that window on this CPU.
    pub count: u64,
}

/// Per-CPU counters of one target. Value of the `TARGET_STATS` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TargetCounters {
    /// Packets forwarded to the target.
    pub packets: u64,
    /// Bytes (whole frames) forwarded to the target.
    pub bytes: u64,
    /// Connections assigned to the target (flow entries created).
    pub new_flows: u64,
}

/// Per-CPU counters of one VIP. Value of the `VIP_STATS` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipCounters {
    /// Packets to the VIP rewritten and sent to a target.
    pub forwarded: u64,
    /// Replies from targets rewritten back to the VIP.
    pub replies: u64,
    /// Packets to the VIP handed to the kernel (rewritten, next hop not resolved yet).
    pub passed: u64,
    /// Packets to the VIP dropped (malformed TCP header, or no target has weight).
    pub dropped: u64,
    /// Packets to the VIP whose TCP header was malformed (also counted in `dropped`).
    pub parse_failures: u64,
}

/// Indices of the `GLOBAL_STATS` per-CPU array of `u64` counters (traffic that is not
/// attributed to a VIP).
pub mod global {
    /// Not IPv4/IPv6 (ARP, LLDP, …): passed.
    pub const NOT_IP: u32 = 0;
    /// IP but not TCP: passed.
    pub const NOT_TCP: u32 = 1;
    /// TCP not addressed to a VIP and not a reply of a target: passed.
    pub const NOT_VIP: u32 = 2;
    /// IPv4 or IPv6 fragments: passed.
    pub const FRAGMENT: u32 = 3;
    /// Truncated or malformed below the TCP ports (Ethernet, VLAN, IP header, IP
    /// lengths, extension headers): passed untouched.
    pub const PARSE_FAILURE: u32 = 4;
    /// More than two VLAN tags or four IPv6 extension headers: passed untouched.
    pub const TOO_DEEP: u32 = 5;
    /// New connections forwarded but not tracked: over the new-connection rate
    /// limit (their next packets are routed by the Maglev table again).
    pub const UNTRACKED: u32 = 6;
    /// IPv6 packets with an Authentication Header: passed untouched (AH covers
    /// the addresses; a rewrite would break it).
    pub const AH: u32 = 7;
    /// Number of counters.
    pub const COUNT: u32 = 8;
}

/// Folds a 32-bit one's-complement sum to 16 bits.
#[inline(always)]
#[must_use]
pub const fn csum_fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds `!old + new` of one 32-bit word (two 16-bit halves) to a running
/// one's-complement sum: the word-wise step of RFC 1624 eqn. 3.
#[inline(always)]
#[must_use]
pub const fn csum_add_word(sum: u32, old: u32, new: u32) -> u32 {
    let o = !old;
    sum + (o & 0xffff) + (o >> 16) + (new & 0xffff) + (new >> 16)
}

/// RFC 1624 (eqn. 3) incremental update of a checksum for `old` bytes replaced by
/// `new` bytes at an even offset: `HC' = ~(~HC + ~m + m')`, summed over 16-bit words.
/// `csum` is the field's value read big-endian; the result is written back big-endian.
///
/// ```
/// use routing_ebpf_common::csum_replace;
/// // A header of two words [0x0102, 0x0304] has checksum !(0x0102 + 0x0304).
/// let c = !(0x0102u16 + 0x0304);
/// let c2 = csum_replace(c, &[0x03, 0x04], &[0x05, 0x06]);
/// assert_eq!(c2, !(0x0102u16 + 0x0506));
/// ```
#[inline(always)]
#[must_use]
pub const fn csum_replace<const N: usize>(csum: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    let mut sum = (!csum) as u32;
    let mut i = 0;
    while i + 1 < N {
        let o = ((old[i] as u32) << 8) | old[i + 1] as u32;
        let n = ((new[i] as u32) << 8) | new[i + 1] as u32;
        sum += (!o) & 0xffff;
        sum += n;
        i += 2;
    }
    !csum_fold(sum)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is `repr(C)`, `Copy`, made only of integers and
    // arrays of integers with all padding spelled out as fields, so every bit
    // pattern is valid and no byte is uninitialised — what `aya::Pod` requires.
    #![allow(unsafe_code)]
    use super::*;
    unsafe impl aya::Pod for VipEntry {}
    unsafe impl aya::Pod for ReplyEntry {}
    unsafe impl aya::Pod for VipState {}
    unsafe impl aya::Pod for Target {}
    unsafe impl aya::Pod for NextHop {}
    unsafe impl aya::Pod for Flow4Key {}
    unsafe impl aya::Pod for Flow6Key {}
    unsafe impl aya::Pod for RateState {}
    unsafe impl aya::Pod for FlowSet4 {}
    unsafe impl aya::Pod for FlowSet6 {}
    unsafe impl aya::Pod for TargetCounters {}
    unsafe impl aya::Pod for VipCounters {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<VipEntry>(), 32);
        assert_eq!(core::mem::size_of::<ReplyEntry>(), 48);
        assert_eq!(core::mem::size_of::<VipState>(), 24);
        assert_eq!(core::mem::size_of::<Target>(), 24);
        assert_eq!(core::mem::size_of::<NextHop>(), 24);
        assert_eq!(core::mem::size_of::<Flow4Key>(), 16);
        assert_eq!(core::mem::size_of::<Flow6Key>(), 40);
        assert_eq!(core::mem::size_of::<RateState>(), 16);
        assert_eq!(core::mem::size_of::<FlowSet4>(), 64);
        assert_eq!(core::mem::size_of::<FlowSet6>(), 160);
        assert_eq!(core::mem::size_of::<TargetCounters>(), 24);
        assert_eq!(core::mem::size_of::<VipCounters>(), 40);
    }

    #[test]
    fn csum_replace_matches_recompute() {
        // words: 0x4500 0x0054 0xc0a8 0x0001
        let words = [0x4500u16, 0x0054, 0xc0a8, 0x0001];
        let full = |w: &[u16]| !csum_fold(w.iter().map(|&x| x as u32).sum());
        let c = full(&words);
        let c2 = csum_replace(c, &[0xc0, 0xa8, 0x00, 0x01], &[0xcb, 0x00, 0x71, 0x0a]);
        assert_eq!(c2, full(&[0x4500, 0x0054, 0xcb00, 0x710a]));
    }

    #[test]
    fn word_wise_update_equals_byte_wise_in_either_byte_order() {
        let old = [0xc0u8, 0xa8, 0x00, 0x01];
        let new = [0xcbu8, 0x00, 0x71, 0x0a];
        let c = 0x1234u16;
        let want = csum_replace(c, &old, &new);
        // As the program does it: native (little-endian) word loads of the packet.
        let c_ne = u16::from_ne_bytes(c.to_be_bytes());
        let sum = csum_add_word(
            u32::from(!c_ne),
            u32::from_ne_bytes(old),
            u32::from_ne_bytes(new),
        );
        let got = !csum_fold(sum);
        assert_eq!(got.to_ne_bytes(), want.to_be_bytes());
    }
}
