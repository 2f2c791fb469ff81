//! Stable, platform-independent hashing.
//!
//! Everything that picks a backend from a key (sticky cookies, headers, source IPs,
//! 5-tuples) and everything that places a backend in a Maglev table hashes through
//! these functions. They live in the `no_std` crate `routing-hash`, which the XDP
//! program of `routing-ebpf` uses too, so that two processes — two proxies, or the
//! HTTP layer and the XDP datapath — agree on where a key goes.

pub use routing_hash::{mix64, reduce, stable_hash};
