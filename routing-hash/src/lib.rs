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
//! The flow hash works on 32-bit words, the way the XDP program loads a packet: each
//! address is cut into 4-byte words read little-endian (`u32::from_le_bytes`, what
//! a native load does on the little-endian BPF target), the two ports make one word
//! the same way, and each (source word, destination word) pair is one 64-bit
//! multiply step, finalised with [`mix64`] — two multiply steps for IPv4 instead of
//! thirteen byte-wise FNV-1a rounds. [`flow_hash`] (octets, what `routing-core`
//! calls) and [`flow_hash_words`] (words, what the program calls) are the same
//! function:
//!
//! ```
//! use routing_hash::{flow_hash, flow_hash_words, ports_word, reduce};
//! // 192.0.2.1:1000 -> 198.51.100.10:80, TCP
//! let (sport, dport) = (1000u16.to_be_bytes(), 80u16.to_be_bytes());
//! let h = flow_hash(&[192, 0, 2, 1], &[198, 51, 100, 10], sport, dport, 6);
//! let src = [u32::from_le_bytes([192, 0, 2, 1])];
//! let dst = [u32::from_le_bytes([198, 51, 100, 10])];
//! assert_eq!(h, flow_hash_words(&src, &dst, ports_word(sport, dport), 6));
//! assert!(reduce(h, 65_537) < 65_537);
//! ```
#![no_std]

/// The FNV-1a prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// The FNV-1a offset basis.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

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

/// The multiplier of a word step (an odd 64-bit constant, the golden ratio).
const WORD_K: u64 = 0x9e37_79b9_7f4a_7c15;
/// The starting state of the word-wise hashes.
const WORD_BASIS: u64 = 0x243f_6a88_85a3_08d3;

/// One word step: a bijection of `x` for a fixed state (xor, then multiply by an
/// odd constant), the state rotated so the next step's low input bits meet high
/// state bits.
#[inline(always)]
const fn word_step(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(WORD_K).rotate_left(29)
}

/// The words of an address: 4-byte groups read little-endian.
///
/// ```
/// assert_eq!(routing_hash::addr_words(&[192, 0, 2, 1]), [u32::from_le_bytes([192, 0, 2, 1])]);
/// ```
#[inline(always)]
#[must_use]
pub const fn addr_words<const N: usize, const W: usize>(octets: &[u8; N]) -> [u32; W] {
    let mut w = [0u32; W];
    let mut i = 0;
    while i < W && 4 * i + 3 < N {
        w[i] = u32::from_le_bytes([
            octets[4 * i],
            octets[4 * i + 1],
            octets[4 * i + 2],
            octets[4 * i + 3],
        ]);
        i += 1;
    }
    w
}

/// The ports word: the source then the destination port (network order), read
/// little-endian — the TCP/UDP header's first four bytes as one native load.
///
/// ```
/// use routing_hash::ports_word;
/// assert_eq!(ports_word([0x03, 0xe8], [0, 80]), u32::from_le_bytes([0x03, 0xe8, 0, 80]));
/// ```
#[inline(always)]
#[must_use]
pub const fn ports_word(sport: [u8; 2], dport: [u8; 2]) -> u32 {
    u32::from_le_bytes([sport[0], sport[1], dport[0], dport[1]])
}

/// The flow hash of a 5-tuple given as words ([`addr_words`], [`ports_word`]): one
/// step per (source word, destination word) pair, one for the ports and the
/// protocol, then [`mix64`]. `W` is 1 (IPv4) or 4 (IPv6). The XDP program calls it.
///
/// ```
/// use routing_hash::{flow_hash_words, ports_word};
/// let p = ports_word(1000u16.to_be_bytes(), 80u16.to_be_bytes());
/// assert_ne!(flow_hash_words(&[1], &[2], p, 6), flow_hash_words(&[2], &[1], p, 6));
/// ```
#[inline(always)]
#[must_use]
pub const fn flow_hash_words<const W: usize>(
    src: &[u32; W],
    dst: &[u32; W],
    ports: u32,
    proto: u8,
) -> u64 {
    let mut h = WORD_BASIS;
    let mut i = 0;
    while i < W {
        h = word_step(h, src[i] as u64 | (dst[i] as u64) << 32);
        i += 1;
    }
    h = word_step(h, ports as u64 | (proto as u64) << 32);
    mix64(h)
}

/// The flow hash of a 5-tuple: [`flow_hash_words`] of its addresses' and ports'
/// words. `N` is 4 (IPv4) or 16 (IPv6); addresses and ports in network byte
/// order. `routing_core::FiveTuple::hash` calls it, the XDP program calls
/// [`flow_hash_words`] on the words it loads: the same value.
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
    if N == 4 {
        flow_hash_words::<1>(
            &addr_words(src),
            &addr_words(dst),
            ports_word(sport, dport),
            proto,
        )
    } else {
        flow_hash_words::<4>(
            &addr_words(src),
            &addr_words(dst),
            ports_word(sport, dport),
            proto,
        )
    }
}

/// The hash of a source address alone (client affinity), as words: one step per
/// word, then [`mix64`].
///
/// ```
/// use routing_hash::{source_hash, source_hash_words};
/// assert_eq!(source_hash(&[10, 0, 0, 1]), source_hash_words(&[u32::from_le_bytes([10, 0, 0, 1])]));
/// ```
#[inline(always)]
#[must_use]
pub const fn source_hash_words<const W: usize>(src: &[u32; W]) -> u64 {
    let mut h = WORD_BASIS;
    let mut i = 0;
    while i < W {
        h = word_step(h, src[i] as u64);
        i += 1;
    }
    mix64(h)
}

/// The hash of a source address alone (client affinity): [`source_hash_words`] of
/// its words. `N` is 4 or 16.
///
/// ```
/// use routing_hash::source_hash;
/// assert_ne!(source_hash(&[10, 0, 0, 1]), source_hash(&[10, 0, 0, 2]));
/// ```
#[inline(always)]
#[must_use]
pub const fn source_hash<const N: usize>(src: &[u8; N]) -> u64 {
    if N == 4 {
        source_hash_words::<1>(&addr_words(src))
    } else {
        source_hash_words::<4>(&addr_words(src))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // mix64 and stable_hash: computed by routing-core's own copy before it moved
    // here. The flow and source hashes: the word-wise definition (issue 14; the
    // byte-wise FNV-1a ones were 0xd65d_4481_ba6d_dbb2, 0xd95a_5382_62d2_74ab,
    // 0xb53a_7a39_7aa3_5a03, slot 54 878).
    const PINNED_MIX64_0: u64 = 0xe220_a839_7b1d_cdaf;
    const PINNED_EMPTY: u64 = 0x5b21_f68f_fa77_f14c;
    const PINNED_USER42_SEED7: u64 = 0x0116_6f10_9ba5_7330;
    const PINNED_FLOW_V4: u64 = 0x5ada_c410_20f6_bd91;
    const PINNED_FLOW_V6: u64 = 0xbb62_cc6b_abd1_78fb;
    const PINNED_SOURCE_V4: u64 = 0x1214_717c_f4ec_2631;
    const PINNED_SLOT_V4: u32 = 23_259;

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

    /// The octet forms are the word forms of the same tuple, for both families;
    /// every input word reaches the hash.
    #[test]
    fn octet_forms_equal_word_forms() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..1_000 {
            x = mix64(x);
            let b = x.to_be_bytes();
            let (src4, dst4) = ([b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]]);
            let (sp, dp) = ([b[3], b[5]], [b[1], b[7]]);
            let w = |o: [u8; 4]| u32::from_le_bytes(o);
            let h = flow_hash(&src4, &dst4, sp, dp, 6);
            assert_eq!(
                h,
                flow_hash_words(&[w(src4)], &[w(dst4)], ports_word(sp, dp), 6)
            );
            assert_ne!(h, flow_hash(&src4, &dst4, dp, sp, 6), "ports are ordered");
            assert_ne!(
                h,
                flow_hash(&dst4, &src4, sp, dp, 6),
                "addresses are ordered"
            );
            assert_ne!(h, flow_hash(&src4, &dst4, sp, dp, 17), "protocol counts");
            assert_eq!(source_hash(&src4), source_hash_words(&[w(src4)]));
            let mut src6 = [0u8; 16];
            let mut dst6 = [0u8; 16];
            src6[8..].copy_from_slice(&b);
            dst6[..8].copy_from_slice(&b);
            let (s6, d6): ([u32; 4], [u32; 4]) = (addr_words(&src6), addr_words(&dst6));
            assert_eq!(s6[2], w(src4));
            let h6 = flow_hash(&src6, &dst6, sp, dp, 6);
            assert_eq!(h6, flow_hash_words(&s6, &d6, ports_word(sp, dp), 6));
            assert_eq!(source_hash(&src6), source_hash_words(&s6));
        }
    }

    /// Flow hashes spread evenly over a Maglev-sized table: 200 000 flows from
    /// one client (only the source port and the last address byte vary, the
    /// hardest case for a word-wise mix) over 1 009 slots pass a chi-square test
    /// (1 008 degrees of freedom: mean 1 008, standard deviation 45; the bound is
    /// six deviations above the mean).
    #[test]
    fn flow_hashes_spread_evenly() {
        let n = 1_009u32;
        let mut counts = [0u32; 1_009];
        let mut total = 0u32;
        for last in 0..4u8 {
            for port in 0..50_000u16 {
                let h = flow_hash(
                    &[10, 0, 0, last],
                    &[192, 0, 2, 1],
                    port.to_be_bytes(),
                    [0, 80],
                    6,
                );
                counts[reduce(h, n) as usize] += 1;
                total += 1;
            }
        }
        let mean = f64::from(total) / f64::from(n);
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - mean).powi(2) / mean)
            .sum();
        assert!(chi2 < 1_008.0 + 6.0 * 45.0, "chi-square {chi2:.0}");
    }
}
