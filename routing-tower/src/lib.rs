//! A tower `Layer` that applies [`routing_core`] decisions to any HTTP service.
//!
//! Not built yet: this crate is a placeholder in the workspace so that the layout is
//! fixed. The work is tracked in the "routing-tower" issue; until it lands, use
//! [`routing_core::RouteTable::decide`] directly from your own middleware.

pub use routing_core;
