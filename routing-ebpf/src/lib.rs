//! The XDP fast path for plain TCP and its userspace loader.
//!
//! Not built yet: this crate is a placeholder in the workspace so that the layout is
//! fixed. The work is tracked in the "routing-ebpf" issue. What it will load is
//! already here: [`routing_core::TcpService::maglev`] is the weighted Maglev table
//! (plain `u32` backend indices) and [`routing_core::FiveTuple::hash`] the flow hash
//! the datapath must reproduce.

pub use routing_core;
