//! Userspace mirrors and encodings of the program's lookup tables: addresses as
//! native words, and the open-addressed `VIP_TABLE` / `REPLY_TABLE` slots.

use std::net::{IpAddr, SocketAddr};

use routing_ebpf_common::{VipEntry, FAMILY_V4, FAMILY_V6, PROBES, PROTO_TCP};

pub(crate) fn family_of(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => FAMILY_V4,
        IpAddr::V6(_) => FAMILY_V6,
    }
}

pub(crate) fn addr16(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

/// Index and flags of an installed VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VipInfo {
    pub(crate) index: u32,
    pub(crate) flags: u32,
}

/// An address as the program's native words (network byte order in memory).
pub(crate) fn words(ip: IpAddr) -> [u32; 4] {
    let b = addr16(ip);
    let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

pub(crate) fn port_word(port: u16) -> u16 {
    u16::from_ne_bytes(port.to_be_bytes())
}

pub(crate) fn vip_key(vip: SocketAddr) -> VipEntry {
    VipEntry {
        addr: words(vip.ip()),
        port: port_word(vip.port()),
        family: family_of(vip.ip()),
        proto: PROTO_TCP,
        index: 0,
        flags: 0,
        _pad: 0,
    }
}

/// Slot states of the userspace mirror of an open-addressed table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotUse {
    Empty,
    Used,
    /// Deleted: the program keeps probing past it; the loader may reuse it.
    Tombstone,
}

/// The first free (empty or deleted) slot within [`PROBES`] of `start`.
pub(crate) fn free_slot(mirror: &[SlotUse], start: u32) -> Option<u32> {
    let mask = mirror.len() as u32 - 1;
    (0..PROBES)
        .map(|i| (start + i) & mask)
        .find(|&s| mirror[s as usize] != SlotUse::Used)
}
