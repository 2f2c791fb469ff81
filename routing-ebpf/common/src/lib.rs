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
//! use routing_ebpf_common::{flow_way, way_target, FlowSet, WAYS};
//! // A flow-cache way: the flow hash's tag and target id 7 in one word.
//! let hash = 0x0123_4567_89ab_cdef_u64;
//! let way = flow_way(hash, 7);
//! assert_eq!(way_target(way, hash), Some(7));
//! assert_eq!(way_target(way, hash ^ (1 << 40)), None, "another flow's tag");
//! assert_eq!(core::mem::size_of::<FlowSet>(), 8 * WAYS);
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

/// Ways per set of the flow caches (`FLOW_CACHE4`, `FLOW_CACHE6`): eight 8-byte
/// ways, one 64-byte cache line per set.
pub const WAYS: usize = 8;

/// Bits of a flow-cache way holding `target id + 1` (the low bits); the other
/// 40 bits are the flow hash's tag.
pub const WAY_ID_BITS: u32 = 24;
/// Mask of the target-id bits of a way.
pub const WAY_ID_MASK: u64 = (1 << WAY_ID_BITS) - 1;
/// Most target ids a flow-cache way can name (ids `0 .. MAX_FLOW_TARGETS`).
pub const MAX_FLOW_TARGETS: u32 = (1 << WAY_ID_BITS) - 1;

/// A flow-cache way for a flow of 64-bit hash `hash` steered to target `id`
/// (`id < MAX_FLOW_TARGETS`): the hash's bits above [`WAY_ID_BITS`] as a tag, and
/// `id + 1` below (so 0 is an empty way). One aligned word: a CPU writing it
/// never leaves a half-written way for another to read.
///
/// ```
/// use routing_ebpf_common::{flow_way, WAY_ID_MASK};
/// assert_eq!(flow_way(u64::MAX, 0), !WAY_ID_MASK | 1);
/// ```
#[inline(always)]
#[must_use]
pub const fn flow_way(hash: u64, id: u32) -> u64 {
    (hash & !WAY_ID_MASK) | (id as u64 + 1)
}

/// The target id a way names if its tag is the one of `hash`; `None` for an empty
/// way or another flow's.
///
/// ```
/// use routing_ebpf_common::{flow_way, way_target};
/// assert_eq!(way_target(0, 0), None, "an empty way");
/// assert_eq!(way_target(flow_way(5 << 30, 3), 5 << 30), Some(3));
/// ```
#[inline(always)]
#[must_use]
pub const fn way_target(way: u64, hash: u64) -> Option<u32> {
    // The id bits of `hash` cleared: a way of this tag leaves exactly `id + 1`.
    let x = way ^ (hash & !WAY_ID_MASK);
    if x.wrapping_sub(1) < WAY_ID_MASK {
        Some((x - 1) as u32)
    } else {
        None
    }
}

/// The set a flow of 64-bit hash `hash` belongs to in a flow cache of `mask + 1`
/// sets (a power of two): the hash's low bits, below the tag's. The program and
/// the loader's tests call it.
///
/// ```
/// use routing_ebpf_common::flow_set;
/// assert_eq!(flow_set(0x1234_5678, 1023), 0x278);
/// ```
#[inline(always)]
#[must_use]
pub const fn flow_set(hash: u64, mask: u32) -> u32 {
    hash as u32 & mask
}

/// One set of a flow cache (`FLOW_CACHE4` for IPv4, `FLOW_CACHE6` for IPv6): up
/// to [`WAYS`] flows as [`flow_way`] words, the newest first (a new flow shifts
/// the others down and the oldest falls out). The key itself is not stored: a way
/// matches the flow whose 64-bit flow hash has the way's 40-bit tag (sets are
/// picked by the hash's low 24 bits or fewer, so the tag is independent of the
/// set; another flow of the set matches by chance with probability 2⁻⁴⁰ a way).
/// Value of a plain ARRAY shared by all CPUs; 64 bytes, one cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowSet {
    /// The ways (0 = empty).
    pub ways: [u64; WAYS],
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
    unsafe impl aya::Pod for RateState {}
    unsafe impl aya::Pod for FlowSet {}
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
        assert_eq!(core::mem::size_of::<RateState>(), 16);
        assert_eq!(core::mem::size_of::<FlowSet>(), 64);
        assert_eq!(core::mem::size_of::<TargetCounters>(), 24);
        assert_eq!(core::mem::size_of::<VipCounters>(), 40);
    }

    #[test]
    fn a_way_names_its_target_for_its_own_tag_only() {
        let h = 0xdead_beef_0123_4567_u64;
        for id in [0, 1, 1023, MAX_FLOW_TARGETS - 1] {
            let w = flow_way(h, id);
            assert_ne!(w, 0, "a stored way is never empty");
            assert_eq!(way_target(w, h), Some(id));
            // The set bits (below the tag) do not matter, every tag bit does.
            assert_eq!(way_target(w, h ^ 0xff_ffff), Some(id));
            for bit in WAY_ID_BITS..64 {
                assert_eq!(way_target(w, h ^ (1 << bit)), None, "tag bit {bit}");
            }
        }
        assert_eq!(way_target(0, h), None);
        assert_eq!(way_target(0, h & WAY_ID_MASK), None, "empty way, zero tag");
        assert_eq!(flow_set(h, 0xfff), 0x567);
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
