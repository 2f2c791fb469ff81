//! Target health in the datapath: the state of every target (active, draining,
//! down) in one array indexed by target id, read once per packet of an
//! established flow (a cache hit) to notice `down`.
//!
//! * active: picked from the Maglev table as usual;
//! * draining: keeps the flows it has in the flow cache, gets no new one;
//! * down: gets no new flow, and its established flows are re-picked.
//!
//! New flows need no check here: the loader writes the VIP's Maglev table with
//! the slots of targets that are not active handed to the next active slot's
//! target (the same table on every balancer with the same config and states),
//! so a pick or a re-pick never names a draining or down target.

use aya_ebpf::{macros::map, maps::Array};
use routing_ebpf_common::TARGET_DOWN;

/// State of each target, by target id (`TARGET_ACTIVE` = 0 in a fresh map).
#[map]
static TARGET_HEALTH: Array<u32> = Array::with_max_entries(1024, 0);

/// Whether the target's established flows must be re-picked.
#[inline(always)]
pub(crate) fn is_down(tid: u32) -> bool {
    matches!(TARGET_HEALTH.get(tid), Some(&TARGET_DOWN))
}
