//! Stable, platform-independent hashing.
//!
//! Everything that picks a backend from a key (sticky cookies, headers, source IPs,
//! 5-tuples) and everything that places a backend in a Maglev table hashes through
//! these functions. They are fixed by this crate, not by `std` (whose `DefaultHasher`
//! may change between Rust releases), so that two processes — two proxies, or the
//! HTTP layer and the XDP loader — agree on where a key goes.

/// FNV-1a over `bytes`, seeded, then finalised with the SplitMix64 mixer.
///
/// The output is stable across platforms, Rust versions and releases of this crate
/// within a major version.
///
/// ```
/// use routing_core::stable_hash;
/// assert_eq!(stable_hash(b"user-42", 0), stable_hash(b"user-42", 0));
/// assert_ne!(stable_hash(b"user-42", 0), stable_hash(b"user-42", 1));
/// ```
#[must_use]
pub fn stable_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ mix64(seed);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// The SplitMix64 finaliser: a bijective 64-bit mixer with full avalanche.
///
/// ```
/// use routing_core::mix64;
/// assert_ne!(mix64(1), mix64(2));
/// ```
#[must_use]
pub const fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Maps a 64-bit hash onto `0..n` without a division (Lemire's multiply-shift).
///
/// Uses the high 32 bits of `hash`; `n` must fit in 32 bits. The eBPF datapath uses
/// the same formula, so a key lands on the same slot in both places.
///
/// ```
/// use routing_core::reduce;
/// assert!(reduce(u64::MAX, 65_537) < 65_537);
/// assert_eq!(reduce(0, 65_537), 0);
/// ```
#[must_use]
pub const fn reduce(hash: u64, n: u32) -> u32 {
    (((hash >> 32) * n as u64) >> 32) as u32
}
