//! The stable hashes of the routing crates, in one `no_std` place.
//!
//! Everything that picks a backend from a key (sticky cookies, headers, source IPs,
//! 5-tuples) and everything that places a backend in a Maglev table hashes through
//! these functions: `routing-core` (HTTP and L4 routing, re-exported as
//! `routing_core::{stable_hash, mix64, reduce}`) and the `routing-ebpf` XDP program
//! (built for `bpfel-unknown-none`) both call them, so the kernel and userspace agree
//! on where a flow goes by construction, not by a test comparing two copies. They
//! are fixed by this crate, not by `std` (whose `DefaultHasher` may change between
//! Rust releases), so two processes agree too.
//!
//! The flow hash is [`stable_hash`] with seed 0 over `src ‖ dst ‖ sport ‖ dport ‖
//! proto` (addresses and ports in network byte order):
//!
//! ```
//! use routing_hash::{flow_hash, reduce, stable_hash};
//! // 192.0.2.1:1000 -> 198.51.100.10:80, TCP
//! let h = flow_hash(&[192, 0, 2, 1], &[198, 51, 100, 10], [0x03, 0xe8], [0, 80], 6);
//! assert_eq!(h, stable_hash(&[192, 0, 2, 1, 198, 51, 100, 10, 0x03, 0xe8, 0, 80, 6], 0));
//! assert!(reduce(h, 65_537) < 65_537);
//! ```
#![no_std]

/// The FNV-1a prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// The FNV-1a offset basis.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// The starting state of [`stable_hash`] with seed 0 (what the flow hashes use).
const BASIS_SEED0: u64 = FNV_BASIS ^ mix64(0);

/// FNV-1a over `bytes`, seeded, then finalised with the SplitMix64 mixer.
///
/// The output is stable across platforms, Rust versions and releases of this crate
/// within a major version.
///
/// ```
/// use routing_hash::stable_hash;
/// assert_eq!(stable_hash(b"user-42", 7), stable_hash(b"user-42", 7));
/// assert_ne!(stable_hash(b"user-42", 7), stable_hash(b"user-42", 8));
/// ```
#[inline]
#[must_use]
pub fn stable_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = FNV_BASIS ^ mix64(seed);
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// The SplitMix64 finaliser: a bijective 64-bit mixer with full avalanche.
///
/// ```
/// use routing_hash::mix64;
/// assert_ne!(mix64(1), mix64(2));
/// ```
#[inline(always)]
#[must_use]
pub const fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Maps a 64-bit hash onto `0..n` without a division (Lemire's multiply-shift).
///
/// Uses the high 32 bits of `hash`; `n` must fit in 32 bits.
///
/// ```
/// use routing_hash::reduce;
/// assert!(reduce(u64::MAX, 65_537) < 65_537);
/// assert_eq!(reduce(0, 65_537), 0);
/// ```
#[inline(always)]
#[must_use]
pub const fn reduce(hash: u64, n: u32) -> u32 {
    (((hash >> 32) * n as u64) >> 32) as u32
}

/// FNV-1a steps over a fixed-size array (a bounded loop the BPF verifier accepts).
#[inline(always)]
const fn fnv_bytes<const N: usize>(mut h: u64, bytes: &[u8; N]) -> u64 {
    let mut i = 0;
    while i < N {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// The flow hash of a 5-tuple: [`stable_hash`]`(src ‖ dst ‖ sport ‖ dport ‖ proto, 0)`.
/// `N` is 4 (IPv4) or 16 (IPv6); addresses and ports are in network byte order.
/// `routing_core::FiveTuple::hash` and the XDP program both compute it here.
///
/// ```
/// use routing_hash::flow_hash;
/// let a = flow_hash(&[10, 0, 0, 1], &[10, 0, 0, 2], 1000u16.to_be_bytes(), 80u16.to_be_bytes(), 6);
/// let b = flow_hash(&[10, 0, 0, 1], &[10, 0, 0, 2], 1001u16.to_be_bytes(), 80u16.to_be_bytes(), 6);
/// assert_ne!(a, b, "the source port is part of the flow");
/// ```
#[inline(always)]
#[must_use]
pub const fn flow_hash<const N: usize>(
    src: &[u8; N],
    dst: &[u8; N],
    sport: [u8; 2],
    dport: [u8; 2],
    proto: u8,
) -> u64 {
    let mut h = fnv_bytes(BASIS_SEED0, src);
    h = fnv_bytes(h, dst);
    h = fnv_bytes(h, &sport);
    h = fnv_bytes(h, &dport);
    h = fnv_bytes(h, &[proto]);
    mix64(h)
}

/// The hash of a source address alone (client affinity): [`stable_hash`]`(src, 0)`.
///
/// ```
/// use routing_hash::{source_hash, stable_hash};
/// assert_eq!(source_hash(&[10, 0, 0, 1]), stable_hash(&[10, 0, 0, 1], 0));
/// ```
#[inline(always)]
#[must_use]
pub const fn source_hash<const N: usize>(src: &[u8; N]) -> u64 {
    mix64(fnv_bytes(BASIS_SEED0, src))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed by routing-core's own copy before it moved here (and by the XDP
    // program's, which a test kept equal to it).
    const PINNED_MIX64_0: u64 = 0xe220_a839_7b1d_cdaf;
    const PINNED_EMPTY: u64 = 0x5b21_f68f_fa77_f14c;
    const PINNED_USER42_SEED7: u64 = 0x0116_6f10_9ba5_7330;
    const PINNED_FLOW_V4: u64 = 0xd65d_4481_ba6d_dbb2;
    const PINNED_FLOW_V6: u64 = 0xd95a_5382_62d2_74ab;
    const PINNED_SOURCE_V4: u64 = 0xb53a_7a39_7aa3_5a03;
    const PINNED_SLOT_V4: u32 = 54_878;

    /// Pinned values: these hashes place sticky keys and flows, so a change here
    /// moves users and connections between backends (and between the XDP program
    /// and a proxy built from another release).
    #[test]
    fn values_are_pinned() {
        assert_eq!(mix64(0), PINNED_MIX64_0);
        assert_eq!(stable_hash(b"", 0), PINNED_EMPTY);
        assert_eq!(stable_hash(b"user-42", 7), PINNED_USER42_SEED7);
        let v4 = flow_hash(
            &[192, 0, 2, 1],
            &[198, 51, 100, 10],
            [0x03, 0xe8],
            [0, 80],
            6,
        );
        assert_eq!(v4, PINNED_FLOW_V4);
        let mut s6 = [0u8; 16];
        s6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        s6[15] = 1;
        let mut d6 = s6;
        d6[15] = 2;
        assert_eq!(flow_hash(&s6, &d6, [0, 1], [1, 187], 6), PINNED_FLOW_V6);
        assert_eq!(source_hash(&[192, 0, 2, 1]), PINNED_SOURCE_V4);
        assert_eq!(reduce(v4, 65_537), PINNED_SLOT_V4);
        assert_eq!(reduce(u64::MAX, 7), 6);
    }

    /// The fixed-size forms are the byte-wise definition, for every length used.
    #[test]
    fn array_forms_equal_stable_hash_of_the_concatenation() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..1_000 {
            x = mix64(x);
            let b = x.to_be_bytes();
            let (src4, dst4) = ([b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]]);
            let mut cat = [0u8; 13];
            cat[..8].copy_from_slice(&b);
            cat[8..12].copy_from_slice(&[b[3], b[5], b[1], b[7]]);
            cat[12] = b[2];
            let h = flow_hash(&src4, &dst4, [b[3], b[5]], [b[1], b[7]], b[2]);
            assert_eq!(h, stable_hash(&cat, 0));
            assert_eq!(source_hash(&src4), stable_hash(&src4, 0));
            let mut src6 = [0u8; 16];
            let mut dst6 = [0u8; 16];
            src6[8..].copy_from_slice(&b);
            dst6[..8].copy_from_slice(&b);
            let mut cat6 = [0u8; 37];
            cat6[..16].copy_from_slice(&src6);
            cat6[16..32].copy_from_slice(&dst6);
            cat6[32..37].copy_from_slice(&[b[0], b[1], b[2], b[3], 6]);
            let h6 = flow_hash(&src6, &dst6, [b[0], b[1]], [b[2], b[3]], 6);
            assert_eq!(h6, stable_hash(&cat6, 0));
        }
    }
}
