//! Map keys and values shared by the `routing-ebpf` XDP program and its loader, and
//! RFC 1624 incremental checksum arithmetic. (The flow hash and the Maglev slot
//! reduction, which the program and `routing-core` must agree on, are in the
//! `no_std` crate `routing-hash`, which both call.)
//!
//! Everything here is `#![no_std]`, `repr(C)` and free of padding the compiler could
//! insert on its own: every struct spells its padding out as `_pad` fields (and the
//! `align` attributes, there so the program copies keys in 8-byte words, add no
//! tail padding: sizes are multiples of the alignment), so the bytes the kernel
//! hashes for a key are the bytes both sides wrote. Ports and
//! addresses are kept in network byte order as byte arrays.
//!
//! With the `user` feature every type also implements `aya::Pod`, so the loader can
//! put it into maps.
//!
//! ```
//! use routing_ebpf_common::{VipKey, FAMILY_V4, PROTO_TCP};
//! let mut addr = [0u8; 16];
//! addr[..4].copy_from_slice(&[192, 0, 2, 1]);
//! let key = VipKey { addr, port: 80u16.to_be_bytes(), family: FAMILY_V4, proto: PROTO_TCP };
//! assert_eq!(core::mem::size_of_val(&key), 20);
//! ```
#![no_std]

/// Address family tag for IPv4 (in [`VipKey::family`], [`FlowKey::family`], …).
pub const FAMILY_V4: u8 = 4;
/// Address family tag for IPv6.
pub const FAMILY_V6: u8 = 6;

/// IANA protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// [`VipInfo::flags`]: hash the source address only (client affinity) instead of the
/// 5-tuple.
pub const VIP_HASH_SOURCE_IP: u32 = 1;

/// [`NatEntry::flags`]: the next hop was resolved, `dmac`/`smac`/`ifindex` are valid.
pub const NAT_RESOLVED: u8 = 1;

/// A virtual service: destination address, port and protocol. Key of the `VIPS` map.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VipKey {
    /// Address, network order; IPv4 uses the first 4 bytes, the rest are zero.
    pub addr: [u8; 16],
    /// Port, network order.
    pub port: [u8; 2],
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// IP protocol ([`PROTO_TCP`]).
    pub proto: u8,
}

/// What the datapath knows about a VIP. Value of the `VIPS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VipInfo {
    /// Index of the VIP in `VIP_STATE` and `VIP_STATS`.
    pub index: u32,
    /// `VIP_*` flags.
    pub flags: u32,
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

/// A target (backend) address. Value of the `TARGETS` array, indexed by target id.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Target {
    /// Address, network order (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    /// Port, network order.
    pub port: [u8; 2],
    /// [`FAMILY_V4`] or [`FAMILY_V6`]; 0 = unused slot.
    pub family: u8,
    /// Explicit padding.
    pub _pad: u8,
}

/// A TCP flow as seen on the wire (source → destination). Key of the `CONNTRACK`
/// (client → VIP) and `REVERSE` (target → client) LRU maps.
///
/// The first 20 bytes (`dst`, `dport`, `family`, `proto`) are laid out exactly as a
/// [`VipKey`], so the datapath looks the VIP up with a pointer into the flow key.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Destination address (IPv4 in the first 4 bytes).
    pub dst: [u8; 16],
    /// Destination port, network order.
    pub dport: [u8; 2],
    /// Address family.
    pub family: u8,
    /// IP protocol.
    pub proto: u8,
    /// Source address.
    pub src: [u8; 16],
    /// Source port, network order.
    pub sport: [u8; 2],
    /// Explicit padding (always zero).
    pub _pad: [u8; 2],
}

/// The rewrite a tracked flow gets. Value of `CONNTRACK` (the target: new destination)
/// and `REVERSE` (the VIP: new source of the reply).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NatEntry {
    /// Address written into the packet (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    /// Port written into the packet, network order.
    pub port: [u8; 2],
    /// Address family.
    pub family: u8,
    /// `NAT_*` flags.
    pub flags: u8,
    /// Target id (in `CONNTRACK`) or VIP index (in `REVERSE`), for statistics.
    pub id: u32,
    /// Interface to send on when resolved (XDP_TX when it is the ingress interface).
    pub ifindex: u32,
    /// Destination MAC when resolved.
    pub dmac: [u8; 6],
    /// Source MAC when resolved.
    pub smac: [u8; 6],
}

/// Per-CPU counters of one target. Value of the `TARGET_STATS` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TargetCounters {
    /// Packets forwarded to the target.
    pub packets: u64,
    /// Bytes (whole frames) forwarded to the target.
    pub bytes: u64,
    /// Connections assigned to the target (conntrack entries created).
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
    /// TCP not addressed to a VIP and not a reply of a tracked flow: passed.
    pub const NOT_VIP: u32 = 2;
    /// IPv4 or IPv6 fragments: passed.
    pub const FRAGMENT: u32 = 3;
    /// Truncated or malformed below the TCP ports (Ethernet, VLAN, IP header, IP
    /// lengths, extension headers): passed untouched.
    pub const PARSE_FAILURE: u32 = 4;
    /// More than two VLAN tags or four IPv6 extension headers: passed untouched.
    pub const TOO_DEEP: u32 = 5;
    /// Number of counters.
    pub const COUNT: u32 = 6;
}

/// Folds a 32-bit one's-complement sum to 16 bits.
#[inline(always)]
#[must_use]
pub const fn csum_fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
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
    // SAFETY: every type below is `repr(C)`, `Copy`, made only of integers and byte
    // arrays with all padding spelled out as fields, so every bit pattern is valid and
    // no byte is uninitialised — what `aya::Pod` requires.
    #![allow(unsafe_code)]
    use super::*;
    unsafe impl aya::Pod for VipKey {}
    unsafe impl aya::Pod for VipInfo {}
    unsafe impl aya::Pod for VipState {}
    unsafe impl aya::Pod for Target {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for NatEntry {}
    unsafe impl aya::Pod for TargetCounters {}
    unsafe impl aya::Pod for VipCounters {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<VipKey>(), 20);
        assert_eq!(core::mem::size_of::<VipInfo>(), 8);
        assert_eq!(core::mem::size_of::<VipState>(), 24);
        assert_eq!(core::mem::size_of::<Target>(), 20);
        assert_eq!(core::mem::size_of::<FlowKey>(), 40);
        assert_eq!(core::mem::size_of::<NatEntry>(), 40);
        assert_eq!(core::mem::size_of::<TargetCounters>(), 24);
        assert_eq!(core::mem::size_of::<VipCounters>(), 40);
    }

    #[test]
    fn flow_key_starts_with_a_vip_key() {
        assert_eq!(
            core::mem::offset_of!(FlowKey, dst),
            core::mem::offset_of!(VipKey, addr)
        );
        assert_eq!(
            core::mem::offset_of!(FlowKey, dport),
            core::mem::offset_of!(VipKey, port)
        );
        assert_eq!(
            core::mem::offset_of!(FlowKey, family),
            core::mem::offset_of!(VipKey, family)
        );
        assert_eq!(
            core::mem::offset_of!(FlowKey, proto),
            core::mem::offset_of!(VipKey, proto)
        );
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
}
