//! The XDP datapath of `routing-ebpf`: TCP connections to a VIP are steered to the
//! target the VIP's weighted Maglev table names, by DNAT (destination rewrite on the
//! way in, stateless source rewrite of the replies on the way back), sent with
//! XDP_TX (or XDP_REDIRECT when the next hop is on another interface).
//!
//! See the `routing-ebpf` crate documentation for the verdict table and the
//! flow-state semantics; this file implements exactly that.
//!
//! Speed rules followed here: addresses and ports are loaded from the packet as
//! whole words (the object is built with LLVM's `allows-misaligned-mem-access`),
//! keys are 16 (IPv4) or 40 (IPv6) bytes of words, checksums are updated word by
//! word, and an established packet costs one hash-map lookup (the VIP is found in
//! a small array by hash and compared here).
#![no_std]
#![no_main]
#![allow(clippy::missing_safety_doc)]
// Map keys are passed by reference on purpose: by value would copy them.
#![allow(clippy::needless_borrows_for_generic_args)]

use core::mem::size_of;

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action},
    helpers::generated::{
        bpf_fib_lookup as fib_lookup, bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_redirect,
        bpf_xdp_adjust_head, bpf_xdp_adjust_tail,
    },
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use routing_ebpf_common::{
    addr_slot, csum_add_word, csum_fold, flow_set, flow_way, global, way_target, FlowSet, NextHop,
    PortBits, RateState, ReplyEntry, Target, TargetCounters, VipCounters, VipEntry, VipState,
    FAMILY_V4, FAMILY_V6, PORT_WORDS, PROBES, PROTO_TCP, REPLY_SLOTS, VIP_DSR_IPIP,
    VIP_HASH_SOURCE_IP, VIP_SLOTS, WAYS,
};
// The flow hash and the Maglev reduction: the same functions routing-core runs.
use routing_hash::{flow_hash_words, reduce, source_hash_words};

mod health;
mod icmp;
use icmp::{icmp4, icmp6};

// Map sizes are placeholders: the loader sets the real ones before loading.
/// VIPs by `addr_slot(addr, port)`, linear probing.
#[map]
static VIP_TABLE: Array<VipEntry> = Array::with_max_entries(VIP_SLOTS, 0);
/// Target (address, port) → the VIP its replies are rewritten to.
#[map]
static REPLY_TABLE: Array<ReplyEntry> = Array::with_max_entries(REPLY_SLOTS, 0);
#[map]
static VIP_STATE: Array<VipState> = Array::with_max_entries(16, 0);
/// Outer source address of each DSR VIP, by VIP index (address words).
#[map]
static DSR_SOURCE: Array<[u32; 4]> = Array::with_max_entries(16, 0);
#[map]
static MAGLEV: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static TARGETS: Array<Target> = Array::with_max_entries(1024, 0);
#[map]
static NEXT_HOPS: Array<NextHop> = Array::with_max_entries(1024, 0);
/// Client → VIP flows → target id: a set-associative cache (`WAYS` 8-byte ways
/// per 64-byte set, a new flow overwrites the oldest way) in a plain ARRAY shared
/// by all CPUs (one cache line per lookup; a flow's packets may arrive on any CPU —
/// veth, generic XDP, no RSS — and still find their entry). A way is one word,
/// the flow hash's tag and `target id + 1` (`flow_way`): written whole, never
/// torn. `BPF_F_MMAPABLE` only for its layout: the kernel then page-aligns the
/// values, so each set is exactly one cache line. The Maglev table is the source
/// of truth: a flow missing here (evicted) is picked from it again.
/// `BPF_F_MMAPABLE` of `linux/bpf.h`.
const BPF_F_MMAPABLE: u32 = 1 << 10;
#[map]
static FLOW_CACHE4: Array<FlowSet> = Array::with_max_entries(1, BPF_F_MMAPABLE);
#[map]
static FLOW_CACHE6: Array<FlowSet> = Array::with_max_entries(1, BPF_F_MMAPABLE);
/// Sets of each flow cache − 1 (a power of two − 1), set by the loader.
#[no_mangle]
static FLOW_SET_MASK: u32 = 0;
/// One bit per TCP port, in global data (`.bss`: read without a map lookup):
/// `target` has every port a target listens on, `vip` every VIP port. A packet
/// is looked up in `VIP_TABLE` only if its destination port is in `vip`, in
/// `REPLY_TABLE` only if its source port is in `target`. The loader writes it.
#[no_mangle]
static mut PORT_BITS: PortBits = PortBits {
    vip: [0; PORT_WORDS],
    target: [0; PORT_WORDS],
};
#[map]
static NEW_FLOW_RATE: PerCpuArray<RateState> = PerCpuArray::with_max_entries(1, 0);

/// Whether `port_ne` (network order) is set in a `PortBits` bitmap.
#[inline(always)]
fn port_set(bits: *const [u64; PORT_WORDS], port_ne: u16) -> bool {
    let p = u16::from_be(port_ne) as usize;
    // SAFETY: a word inside the array (the mask keeps the verifier's bound).
    let w =
        unsafe { core::ptr::read_volatile((bits as *const u64).add((p >> 6) & (PORT_WORDS - 1))) };
    w & (1u64 << (p & 63)) != 0
}
#[map]
static TARGET_STATS: PerCpuArray<TargetCounters> = PerCpuArray::with_max_entries(1024, 0);
#[map]
static VIP_STATS: PerCpuArray<VipCounters> = PerCpuArray::with_max_entries(16, 0);
#[map]
static GLOBAL_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(global::COUNT, 0);
#[map]
static PASS_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
#[map]
static BENCH_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Benchmark switch, set by the loader at load time (read-only data: with 0 the
/// verifier removes the branch). Bit 1: vary the flow key's source address per run
/// (see `BENCH_FLOWS`), for `BPF_PROG_TEST_RUN` with `repeat`.
#[no_mangle]
static BENCH: u32 = 0;
const BENCH_NEW_FLOW: u32 = 2;
/// Bit 4: `routing_xdp` does only the memory access an established packet cannot
/// avoid — the flow-cache set of one of `BENCH_FLOWS` cycled flows — and passes.
const BENCH_PROBE: u32 = 4;
/// Number of distinct flows the benchmark cycles through (0 = a new one every run).
#[no_mangle]
static BENCH_FLOWS: u32 = 0;
/// New connections tracked per CPU per second; above it new connections are
/// forwarded by the Maglev table but get no flow entry (0 = no limit). Set by the
/// loader at load time.
#[no_mangle]
static NEW_FLOW_LIMIT: u64 = 0;

/// Largest frame (IP packet, outer header included) the path from the balancer
/// to a DSR target carries; set by the loader at load time. An IPv4 packet that
/// would exceed it once encapsulated is answered with ICMP "fragmentation needed"
/// (next-hop MTU = this − 20) instead; an IPv6 one is dropped (counted).
#[no_mangle]
static DSR_MTU: u32 = 1500;

/// Debug events through aya-log, set by the loader at load time
/// ([`Options::debug_log`] on the userspace side). Read-only data: with 0 (the
/// default) the verifier removes every logging branch, so nothing is logged on the
/// per-packet path unless asked for.
#[no_mangle]
static DEBUG: u32 = 0;

#[inline(always)]
fn debug_on() -> bool {
    // SAFETY: a plain read of a static the loader may patch before loading.
    unsafe { core::ptr::read_volatile(&DEBUG) != 0 }
}

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

#[inline(always)]
fn bench() -> u32 {
    // SAFETY: a plain read of a static the loader may patch before loading.
    unsafe { core::ptr::read_volatile(&BENCH) }
}

#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *mut T)
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// One word load from the packet (a single `ldxw`: misaligned access is allowed).
#[inline(always)]
unsafe fn rd32(p: *const u8, off: usize) -> u32 {
    core::ptr::read_unaligned(p.add(off) as *const u32)
}
#[inline(always)]
unsafe fn rd16(p: *const u8, off: usize) -> u16 {
    core::ptr::read_unaligned(p.add(off) as *const u16)
}
#[inline(always)]
unsafe fn wr32(p: *mut u8, off: usize, v: u32) {
    core::ptr::write_unaligned(p.add(off) as *mut u32, v)
}
#[inline(always)]
unsafe fn wr16(p: *mut u8, off: usize, v: u16) {
    core::ptr::write_unaligned(p.add(off) as *mut u16, v)
}

#[inline(always)]
fn count_global(idx: u32) {
    if let Some(p) = GLOBAL_STATS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot of this CPU.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn pass(idx: u32) -> u32 {
    count_global(idx);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn vip_stats(index: u32) -> Option<&'static mut VipCounters> {
    // SAFETY: per-CPU slot of this CPU; no one else writes it concurrently.
    VIP_STATS.get_ptr_mut(index).map(|p| unsafe { &mut *p })
}

/// The trivial program: bump a per-CPU counter, pass. The benchmark floor, and a
/// way to give a veth peer the NAPI context XDP_TX into it needs.
#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    if let Some(p) = PASS_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot of this CPU.
        unsafe { *p += 1 };
    }
    xdp_action::XDP_PASS
}

/// Target side of DSR: strips the outer header of IPv4-in-IPv4 (protocol 4) and
/// IPv6-in-IPv6 (next header 41) packets addressed to this host and passes the
/// inner packet (VIP destination) to the kernel; everything else passes unchanged.
/// For targets whose kernel has no `ipip` / `ip6tnl` device (Katran's decap).
#[xdp]
pub fn xdp_decap(ctx: XdpContext) -> u32 {
    decap(&ctx);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn decap(ctx: &XdpContext) -> Option<()> {
    let eth = ptr_at::<[u8; ETH_HLEN]>(ctx, 0)? as *const u8;
    // SAFETY: bounds checked by ptr_at.
    let (m0, m1, m2, proto) = unsafe { (rd32(eth, 0), rd32(eth, 4), rd32(eth, 8), rd16(eth, 12)) };
    let (strip, inner) = if proto == ETH_P_IP.to_be() {
        let ip = ptr_at::<[u8; 20]>(ctx, ETH_HLEN)? as *const u8;
        // SAFETY: bounds checked by ptr_at.
        let (vihl, next, frag) = unsafe { (*ip, *ip.add(9), rd16(ip, 6)) };
        // Options or a fragment: left to the kernel.
        if vihl != 0x45 || next != IPPROTO_IPIP || frag & 0xff3fu16.to_be() != 0 {
            return None;
        }
        (IPIP4_OVERHEAD, ETH_P_IP)
    } else if proto == ETH_P_IPV6.to_be() {
        let ip = ptr_at::<[u8; 40]>(ctx, ETH_HLEN)? as *const u8;
        // SAFETY: bounds checked by ptr_at.
        if unsafe { *ip.add(6) } != IPPROTO_IPV6 {
            return None;
        }
        (IPIP6_OVERHEAD, ETH_P_IPV6)
    } else {
        return None;
    };
    // SAFETY: plain helper call on this program's context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, strip as i32) } != 0 {
        return None;
    }
    let eth = ptr_at::<[u8; ETH_HLEN]>(ctx, 0)? as *mut u8;
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        wr32(eth, 0, m0);
        wr32(eth, 4, m1);
        wr32(eth, 8, m2);
        wr16(eth, 12, inner.to_be());
    }
    Some(())
}

/// The load balancer.
#[xdp]
pub fn routing_xdp(ctx: XdpContext) -> u32 {
    if bench() & BENCH_PROBE != 0 {
        return probe();
    }
    route(&ctx)
}

/// The benchmark's probe (`BENCH_PROBE`): the trivial program plus one read of
/// the IPv4 flow-cache set of flow `seq % BENCH_FLOWS` (its hash: `mix64`). The
/// next run's sequence number depends on the word read (whose low bit is 0: the
/// probe's cache is never written), so runs do not overlap their reads — as the
/// balancer's runs, hundreds of instructions long, cannot.
#[inline(always)]
fn probe() -> u32 {
    let Some(seq) = BENCH_SEQ.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: per-CPU slot of this CPU; a plain read of a patched static.
    let (s, flows) = unsafe { (*seq, core::ptr::read_volatile(&BENCH_FLOWS).max(1)) };
    let h = routing_hash::mix64(u64::from(s % flows));
    let mut way = 0;
    if let Some(set) = flow_cache::<4>(h) {
        // SAFETY: a word of the set; volatile so the read is not optimised out.
        way = unsafe { core::ptr::read_volatile(&set.ways[0]) };
    }
    // SAFETY: per-CPU slot of this CPU.
    unsafe { *seq = s.wrapping_add(1 + (way as u32 & 1)) };
    if let Some(p) = PASS_COUNT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot of this CPU.
        unsafe { *p += 1 };
    }
    xdp_action::XDP_PASS
}

#[inline(always)]
fn route(ctx: &XdpContext) -> u32 {
    let Some(eth) = ptr_at::<[u8; ETH_HLEN]>(ctx, 0) else {
        return pass(global::PARSE_FAILURE);
    };
    // SAFETY: bounds checked by ptr_at.
    let mut proto = be16(unsafe { [(*eth)[12], (*eth)[13]] });
    let mut off = ETH_HLEN;
    // Up to two 802.1Q / 802.1ad tags.
    let mut tags = 0;
    while tags < 2 && (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
        let Some(tag) = ptr_at::<[u8; 4]>(ctx, off) else {
            return pass(global::PARSE_FAILURE);
        };
        // SAFETY: bounds checked by ptr_at.
        proto = be16(unsafe { [(*tag)[2], (*tag)[3]] });
        off += 4;
        tags += 1;
    }
    match proto {
        ETH_P_IP => ipv4(ctx, off),
        ETH_P_IPV6 => ipv6(ctx, off),
        ETH_P_8021Q | ETH_P_8021AD => pass(global::TOO_DEEP),
        _ => pass(global::NOT_IP),
    }
}

#[inline(never)]
fn ipv4(ctx: &XdpContext, ip_off: usize) -> u32 {
    let Some(ip) = ptr_at::<[u8; 20]>(ctx, ip_off) else {
        return pass(global::PARSE_FAILURE);
    };
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { &*ip };
    if ip[0] >> 4 != 4 {
        return pass(global::PARSE_FAILURE);
    }
    let hlen = ((ip[0] & 0x0f) as usize) * 4;
    if hlen < 20 {
        return pass(global::PARSE_FAILURE);
    }
    let tot_len = be16([ip[2], ip[3]]) as usize;
    let pkt_len = ctx.data_end() - ctx.data();
    if tot_len < hlen || ip_off + tot_len > pkt_len {
        return pass(global::PARSE_FAILURE);
    }
    let proto = ip[9];
    if proto != PROTO_TCP && proto != PROTO_ICMP {
        return pass(global::NOT_TCP);
    }
    if be16([ip[6], ip[7]]) & 0x3fff != 0 {
        return pass(global::FRAGMENT);
    }
    if proto == PROTO_ICMP {
        return icmp4(ctx, ip_off, ip_off + hlen, tot_len - hlen);
    }
    tcp::<4>(ctx, ip_off, ip_off + hlen, tot_len - hlen)
}

#[inline(never)]
fn ipv6(ctx: &XdpContext, ip_off: usize) -> u32 {
    let Some(ip) = ptr_at::<[u8; 40]>(ctx, ip_off) else {
        return pass(global::PARSE_FAILURE);
    };
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { &*ip };
    if ip[0] >> 4 != 6 {
        return pass(global::PARSE_FAILURE);
    }
    let payload = be16([ip[4], ip[5]]) as usize;
    let pkt_len = ctx.data_end() - ctx.data();
    if payload == 0 || ip_off + 40 + payload > pkt_len {
        return pass(global::PARSE_FAILURE);
    }
    let mut nh = ip[6];
    let mut off = ip_off + 40;
    // Skip up to four extension headers.
    let mut i = 0;
    while i < 4 {
        match nh {
            // AH authenticates the addresses: never rewritten (policy: pass).
            51 => return pass(global::AH),
            0 | 43 | 60 => {
                let Some(ext) = ptr_at::<[u8; 2]>(ctx, off) else {
                    return pass(global::PARSE_FAILURE);
                };
                // SAFETY: bounds checked by ptr_at.
                let ext = unsafe { *ext };
                let len = (ext[1] as usize + 1) * 8;
                nh = ext[0];
                off += len;
            }
            44 => return pass(global::FRAGMENT),
            _ => break,
        }
        i += 1;
    }
    let end = ip_off + 40 + payload;
    match nh {
        PROTO_TCP | PROTO_ICMPV6 if off > end => pass(global::PARSE_FAILURE),
        PROTO_TCP => tcp::<16>(ctx, ip_off, off, end - off),
        PROTO_ICMPV6 => icmp6(ctx, ip_off, off, end - off),
        51 => pass(global::AH),
        0 | 43 | 60 => pass(global::TOO_DEEP),
        44 => pass(global::FRAGMENT),
        _ => pass(global::NOT_TCP),
    }
}

#[inline(always)]
fn words_eq(a: &[u32; 4], b: &[u32; 4]) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3]
}

/// The VIP entry for (address, port), probing `VIP_TABLE` from its slot.
#[inline(always)]
fn find_vip(addr: &[u32; 4], port: u16, family: u8) -> Option<VipEntry> {
    let mut slot = addr_slot(addr, port, VIP_SLOTS - 1);
    let mut i = 0;
    while i < PROBES {
        let e = VIP_TABLE.get(slot)?;
        if e.proto == 0 {
            return None;
        }
        if e.port == port && e.family == family && words_eq(&e.addr, addr) {
            return Some(*e);
        }
        slot = (slot + 1) & (VIP_SLOTS - 1);
        i += 1;
    }
    None
}

/// The VIP a reply from target (address, port) is rewritten to.
#[inline(always)]
fn find_reply(addr: &[u32; 4], port: u16, family: u8) -> Option<&'static ReplyEntry> {
    let mut slot = addr_slot(addr, port, REPLY_SLOTS - 1);
    let mut i = 0;
    while i < PROBES {
        let e = REPLY_TABLE.get(slot)?;
        if e.family == 0 {
            return None;
        }
        if e.tport == port && e.family == family && words_eq(&e.taddr, addr) {
            return Some(e);
        }
        slot = (slot + 1) & (REPLY_SLOTS - 1);
        i += 1;
    }
    None
}

/// The packet fields one TCP packet's handling needs, read once as words.
struct Pkt {
    ip_off: usize,
    l4: usize,
    l4_len: usize,
    src: [u32; 4],
    dst: [u32; 4],
    sport: u16,
    dport: u16,
}

#[inline(always)]
fn tcp<const N: usize>(ctx: &XdpContext, ip_off: usize, l4: usize, l4_len: usize) -> u32 {
    let family = if N == 4 { FAMILY_V4 } else { FAMILY_V6 };
    if l4_len < 4 {
        return pass(global::PARSE_FAILURE);
    }
    let Some(ports) = ptr_at::<[u8; 4]>(ctx, l4) else {
        return pass(global::PARSE_FAILURE);
    };
    // SAFETY: bounds checked by ptr_at.
    let (sport, dport) = unsafe { (rd16(ports as *const u8, 0), rd16(ports as *const u8, 2)) };
    // Prefilter: a packet whose destination port no VIP uses and whose source port
    // no target uses cannot be ours.
    // SAFETY: only addresses are taken; the loader writes the bitmaps whole.
    let (vips, targets) = unsafe {
        (
            core::ptr::addr_of!(PORT_BITS.vip),
            core::ptr::addr_of!(PORT_BITS.target),
        )
    };
    let maybe_vip = port_set(vips, dport);
    let maybe_reply = port_set(targets, sport);
    if !maybe_vip && !maybe_reply {
        return pass(global::NOT_VIP);
    }
    let mut p = Pkt {
        ip_off,
        l4,
        l4_len,
        src: [0; 4],
        dst: [0; 4],
        sport,
        dport,
    };
    if N == 4 {
        let Some(ip) = ptr_at::<[u8; 20]>(ctx, ip_off) else {
            return pass(global::PARSE_FAILURE);
        };
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            p.src[0] = rd32(ip as *const u8, 12);
            p.dst[0] = rd32(ip as *const u8, 16);
        }
    } else {
        let Some(ip) = ptr_at::<[u8; 40]>(ctx, ip_off) else {
            return pass(global::PARSE_FAILURE);
        };
        let mut i = 0;
        while i < 4 {
            // SAFETY: bounds checked by ptr_at.
            unsafe {
                p.src[i] = rd32(ip as *const u8, 8 + 4 * i);
                p.dst[i] = rd32(ip as *const u8, 24 + 4 * i);
            }
            i += 1;
        }
    }
    if maybe_vip {
        if let Some(vip) = find_vip(&p.dst, dport, family) {
            let Some(flags) = tcp_flags(ctx, l4, l4_len) else {
                if let Some(s) = vip_stats(vip.index) {
                    s.parse_failures += 1;
                    s.dropped += 1;
                }
                return xdp_action::XDP_DROP;
            };
            return to_vip::<N>(ctx, &p, &vip, flags);
        }
    }
    if maybe_reply {
        if let Some(r) = find_reply(&p.src, sport, family) {
            return reply::<N>(ctx, &p, r);
        }
    }
    pass(global::NOT_VIP)
}

/// Validates the TCP header (data offset ≥ 5 and inside the IP payload) and returns
/// its flags byte.
#[inline(always)]
fn tcp_flags(ctx: &XdpContext, l4: usize, l4_len: usize) -> Option<u8> {
    if l4_len < 20 {
        return None;
    }
    let hdr = ptr_at::<[u8; 20]>(ctx, l4)?;
    // SAFETY: bounds checked by ptr_at.
    let hdr = unsafe { &*hdr };
    let doff = ((hdr[12] >> 4) as usize) * 4;
    if doff < 20 || doff > l4_len {
        return None;
    }
    Some(hdr[13])
}

/// Whether this CPU may track one more new connection in the current second.
#[inline(always)]
fn rate_ok() -> bool {
    // SAFETY: a plain read of a static the loader may patch before loading.
    let limit = unsafe { core::ptr::read_volatile(&NEW_FLOW_LIMIT) };
    if limit == 0 {
        return true;
    }
    let Some(r) = NEW_FLOW_RATE.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: this CPU's slot; plain helper call.
    unsafe {
        let now = bpf_ktime_get_ns();
        if now.wrapping_sub((*r).window_start) >= 1_000_000_000 {
            (*r).window_start = now;
            (*r).count = 0;
        }
        if (*r).count >= limit {
            return false;
        }
        (*r).count += 1;
    }
    true
}

#[inline(always)]
fn flow_mask() -> u32 {
    // SAFETY: a plain read of a static the loader patches before loading.
    unsafe { core::ptr::read_volatile(&FLOW_SET_MASK) }
}

/// The flow's 64-bit hash (client → VIP, routing-core's 5-tuple flow hash): the
/// Maglev hash of a 5-tuple VIP, and the flow's cache set (low bits) and tag.
#[inline(always)]
fn flow_hash<const N: usize>(src: &[u32; 4], p: &Pkt) -> u64 {
    // The words as loaded from the packet (native = little-endian loads): the
    // word-wise hash routing-core computes from the octets.
    let ports = p.sport as u32 | (p.dport as u32) << 16;
    if N == 4 {
        flow_hash_words(&[src[0]], &[p.dst[0]], ports, PROTO_TCP)
    } else {
        flow_hash_words(src, &p.dst, ports, PROTO_TCP)
    }
}

/// The flow-cache set of a flow of hash `h`.
#[inline(always)]
fn flow_cache<const N: usize>(h: u64) -> Option<&'static mut FlowSet> {
    let map = if N == 4 { &FLOW_CACHE4 } else { &FLOW_CACHE6 };
    // SAFETY: ways are single words, written whole; two CPUs shifting one set at
    // once may duplicate or drop a way (a later miss), never tear one.
    map.get_ptr_mut(flow_set(h, flow_mask()))
        .map(|s| unsafe { &mut *s })
}

/// The cached target id of the flow of hash `h` (the newest way with its tag).
#[inline(always)]
fn lookup_flow<const N: usize>(h: u64) -> Option<u32> {
    let set = flow_cache::<N>(h)?;
    let mut w = 0;
    while w < WAYS {
        if let Some(t) = way_target(set.ways[w], h) {
            return Some(t);
        }
        w += 1;
    }
    None
}

/// Stores the flow's target: in its own way if it is cached (a SYN re-picking),
/// otherwise as the newest way of its set (the oldest falls out).
#[inline(always)]
fn insert_flow<const N: usize>(h: u64, tid: u32) {
    let Some(set) = flow_cache::<N>(h) else {
        return;
    };
    let way = flow_way(h, tid);
    let mut w = 0;
    while w < WAYS {
        if way_target(set.ways[w], h).is_some() {
            set.ways[w] = way;
            return;
        }
        w += 1;
    }
    let mut w = WAYS - 1;
    while w > 0 {
        set.ways[w] = set.ways[w - 1];
        w -= 1;
    }
    set.ways[0] = way;
}

/// The Maglev pick for a flow of hash `h`, or `None` when the VIP has no weighted
/// target.
#[inline(always)]
fn maglev_pick<const N: usize>(h: u64, src: &[u32; 4], vip: &VipEntry) -> Option<u32> {
    let state = VIP_STATE.get(vip.index)?;
    let a = (state.active & 1) as usize;
    let size = state.size[a];
    let base = state.base[a];
    if size == 0 {
        return None;
    }
    let h = if vip.flags & VIP_HASH_SOURCE_IP == 0 {
        h
    } else if N == 4 {
        source_hash_words(&[src[0]])
    } else {
        source_hash_words(src)
    };
    MAGLEV.get(base.wrapping_add(reduce(h, size))).copied()
}

#[inline(always)]
fn to_vip<const N: usize>(ctx: &XdpContext, p: &Pkt, vip: &VipEntry, flags: u8) -> u32 {
    let family = if N == 4 { FAMILY_V4 } else { FAMILY_V6 };
    // The flow's source as tracked and hashed (the packet's, except in a benchmark).
    let mut src = p.src;
    if bench() & BENCH_NEW_FLOW != 0 {
        if let Some(seq) = BENCH_SEQ.get_ptr_mut(0) {
            // SAFETY: per-CPU slot of this CPU.
            let s = unsafe {
                *seq = (*seq).wrapping_add(1);
                *seq
            };
            // `BENCH_FLOWS` = 0: a new flow on every run (per-CPU sequence, CPU id
            // in the top byte); n > 0: n distinct flows, cycled. Applied to the
            // source address itself (its last word), before the flow hash.
            // SAFETY: plain read of a static / helper call.
            let flows = unsafe { core::ptr::read_volatile(&BENCH_FLOWS) };
            let v = if flows == 0 {
                s ^ (unsafe { bpf_get_smp_processor_id() } << 24)
            } else {
                s % flows
            };
            src[N / 4 - 1] ^= v.to_be();
        }
    }
    let pkt_len = (ctx.data_end() - ctx.data()) as u64;

    // Katran's policy: a SYN always picks from the table (a reused 5-tuple never
    // reaches a stale target); other packets follow their flow entry, and a miss
    // is re-created from the table.
    let syn = flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let h = flow_hash::<N>(&src, p);
    let mut tid = u32::MAX;
    let mut target: Option<&Target> = None;
    if !syn {
        if let Some(t) = lookup_flow::<N>(h) {
            if let Some(tt) = TARGETS.get(t) {
                // A flow on a target that is down is re-picked (health.rs).
                if tt.vip == vip.index && tt.family == family && !health::is_down(t) {
                    tid = t;
                    target = Some(tt);
                }
            }
        }
    }
    let target = match target {
        Some(t) => t,
        None => {
            let Some(t) = maglev_pick::<N>(h, &src, vip) else {
                if let Some(s) = vip_stats(vip.index) {
                    s.dropped += 1;
                }
                if debug_on() {
                    aya_log_ebpf::warn!(ctx, "vip {}: no target has weight, dropped", vip.index);
                }
                return xdp_action::XDP_DROP;
            };
            let Some(tt) = TARGETS.get(t) else {
                return xdp_action::XDP_DROP;
            };
            if tt.family != family {
                if let Some(s) = vip_stats(vip.index) {
                    s.dropped += 1;
                }
                return xdp_action::XDP_DROP;
            }
            tid = t;
            if debug_on() {
                aya_log_ebpf::debug!(
                    ctx,
                    "vip {}: new flow -> target {} (flags {:x})",
                    vip.index,
                    tid,
                    flags
                );
            }
            // A RST never creates state: it is sent where the table says, untracked.
            if flags & TCP_RST == 0 {
                if rate_ok() {
                    insert_flow::<N>(h, tid);
                    if let Some(ts) = TARGET_STATS.get_ptr_mut(tid) {
                        // SAFETY: per-CPU slot of this CPU.
                        unsafe { (*ts).new_flows += 1 };
                    }
                } else {
                    count_global(global::UNTRACKED);
                }
            }
            tt
        }
    };
    let Some(nh) = NEXT_HOPS.get_ptr_mut(tid) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: the array value stays valid for this run; concurrent writers (other
    // CPUs resolving the same target) write the same values.
    let nh = unsafe { &mut *nh };
    if nh.resolved == 0 {
        resolve::<N>(ctx, nh, &p.src, &target.addr);
    }
    if vip.flags & VIP_DSR_IPIP != 0 {
        // SAFETY: a plain read of a static the loader may patch before loading.
        let mtu = unsafe { core::ptr::read_volatile(&DSR_MTU) } as usize;
        let ip_len = (ctx.data_end() - ctx.data()).saturating_sub(p.ip_off);
        if ip_len + if N == 4 { IPIP4_OVERHEAD } else { IPIP6_OVERHEAD } > mtu {
            if let Some(s) = vip_stats(vip.index) {
                s.dropped += 1;
            }
            if N == 4 && frag_needed(ctx, p, mtu.saturating_sub(IPIP4_OVERHEAD) as u16).is_some() {
                return xdp_action::XDP_TX;
            }
            return xdp_action::XDP_DROP;
        }
        if encap::<N>(ctx, p, vip.index, &target.addr).is_none() {
            if let Some(s) = vip_stats(vip.index) {
                s.dropped += 1;
            }
            return xdp_action::XDP_DROP;
        }
    } else if rewrite::<N>(ctx, p, true, &p.dst, &target.addr, p.dport, target.port).is_none() {
        return xdp_action::XDP_DROP;
    }
    if let Some(ts) = TARGET_STATS.get_ptr_mut(tid) {
        // SAFETY: per-CPU slot of this CPU.
        unsafe {
            (*ts).packets += 1;
            (*ts).bytes += pkt_len;
        }
    }
    if let Some(s) = vip_stats(vip.index) {
        if nh.resolved != 0 {
            s.forwarded += 1;
        } else {
            s.passed += 1;
        }
    }
    send(ctx, nh)
}

/// IP-in-IP overhead of each family (the outer header).
const IPIP4_OVERHEAD: usize = 20;
const IPIP6_OVERHEAD: usize = 40;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const OUTER_TTL: u8 = 64;

/// One's complement sum of both 16-bit halves of a word.
#[inline(always)]
fn add_halves(sum: u32, w: u32) -> u32 {
    sum + (w & 0xffff) + (w >> 16)
}

/// Turns an IPv4 packet too big for the DSR path into an ICMP "fragmentation
/// needed" (type 3, code 4, next-hop MTU `mtu`) from its destination back to its
/// source, quoting its IP header and first 8 payload bytes, sent back out of the
/// ingress interface to the MAC it came from. Only untagged frames, IP header
/// without options.
#[inline(always)]
fn frag_needed(ctx: &XdpContext, p: &Pkt, mtu: u16) -> Option<()> {
    const QUOTE: usize = 28;
    const NEW: usize = 20 + 8;
    if p.ip_off != ETH_HLEN {
        return None;
    }
    let h = ptr_at::<[u8; ETH_HLEN + QUOTE]>(ctx, 0)? as *const u8;
    // SAFETY: bounds checked by ptr_at.
    let (m0, m1, m2, vihl) = unsafe { (rd32(h, 0), rd32(h, 4), rd32(h, 8), *h.add(ETH_HLEN)) };
    if vihl != 0x45 {
        return None;
    }
    // Checksum of the quoted bytes, summed before the packet moves.
    let mut sum = 0u32;
    let mut i = 0;
    while i < QUOTE / 4 {
        // SAFETY: inside the checked range.
        sum = add_halves(sum, unsafe { rd32(h, ETH_HLEN + 4 * i) });
        i += 1;
    }
    // SAFETY: plain helper calls on this program's context.
    unsafe {
        if bpf_xdp_adjust_head(ctx.ctx, -(NEW as i32)) != 0 {
            return None;
        }
        let len = (ctx.data_end() - ctx.data()) as i32;
        if bpf_xdp_adjust_tail(ctx.ctx, (ETH_HLEN + NEW + QUOTE) as i32 - len) != 0 {
            return None;
        }
    }
    let h = ptr_at::<[u8; ETH_HLEN + NEW + QUOTE]>(ctx, 0)? as *mut u8;
    let tot = ((NEW + QUOTE) as u16).to_be_bytes();
    let w0 = u32::from_ne_bytes([0x45, 0, tot[0], tot[1]]);
    let w2 = u32::from_ne_bytes([OUTER_TTL, PROTO_ICMP, 0, 0]);
    let mut isum = add_halves(0, w2);
    isum = add_halves(isum, w0);
    isum = add_halves(isum, p.dst[0]);
    isum = add_halves(isum, p.src[0]);
    let m = mtu.to_be_bytes();
    let icmp0 = u32::from_ne_bytes([3, 4, 0, 0]);
    let icmp1 = u32::from_ne_bytes([0, 0, m[0], m[1]]);
    sum = add_halves(sum, icmp0);
    sum = add_halves(sum, icmp1);
    // SAFETY: bounds checked by ptr_at (Ethernet + IPv4 + ICMP + quote).
    unsafe {
        // Back to where it came from: the MACs swapped.
        wr16(h, 0, (m1 >> 16) as u16);
        wr32(h, 2, m2);
        wr32(h, 6, m0);
        wr16(h, 10, m1 as u16);
        wr16(h, 12, ETH_P_IP.to_be());
        wr32(h, 14, w0);
        wr32(h, 18, 0);
        wr32(h, 22, w2);
        wr16(h, 24, !csum_fold(isum));
        wr32(h, 26, p.dst[0]);
        wr32(h, 30, p.src[0]);
        wr32(h, 34, icmp0);
        wr32(h, 38, icmp1);
        wr16(h, 36, !csum_fold(sum));
    }
    Some(())
}

/// Direct server return: the packet, unchanged, behind a new outer IPv4 (protocol
/// 4) or IPv6 (next header 41) header from `DSR_SOURCE[vip]` to `target`. The
/// Ethernet header is rewritten in front of it (its MACs by `send`). Only untagged
/// frames (IP right after the Ethernet header); `None` drops the packet.
#[inline(always)]
fn encap<const N: usize>(ctx: &XdpContext, p: &Pkt, vip: u32, target: &[u32; 4]) -> Option<()> {
    if p.ip_off != ETH_HLEN {
        return None;
    }
    let src = *DSR_SOURCE.get(vip)?;
    if N == 4 {
        let ip = ptr_at::<[u8; 20]>(ctx, ETH_HLEN)? as *const u8;
        // SAFETY: bounds checked by ptr_at.
        let (tos, inner_len) = unsafe { (*ip.add(1), u16::from_be(rd16(ip, 2))) };
        let tot = inner_len.checked_add(IPIP4_OVERHEAD as u16)?;
        // SAFETY: plain helper call on this program's context.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(IPIP4_OVERHEAD as i32)) } != 0 {
            return None;
        }
        let h = ptr_at::<[u8; ETH_HLEN + 20]>(ctx, 0)? as *mut u8;
        let t = tot.to_be_bytes();
        let w0 = u32::from_ne_bytes([0x45, tos, t[0], t[1]]);
        let w2 = u32::from_ne_bytes([OUTER_TTL, IPPROTO_IPIP, 0, 0]);
        let mut sum = add_halves(0, w0);
        sum = add_halves(sum, w2);
        sum = add_halves(sum, src[0]);
        sum = add_halves(sum, target[0]);
        // SAFETY: bounds checked by ptr_at (Ethernet + outer IPv4 header).
        unsafe {
            wr16(h, 12, ETH_P_IP.to_be());
            wr32(h, 14, w0);
            wr32(h, 18, 0); // id 0, no flags, fragment offset 0
            wr32(h, 22, w2);
            wr16(h, 24, !csum_fold(sum));
            wr32(h, 26, src[0]);
            wr32(h, 30, target[0]);
        }
    } else {
        let ip = ptr_at::<[u8; 40]>(ctx, ETH_HLEN)? as *const u8;
        // SAFETY: bounds checked by ptr_at.
        let plen = unsafe { u16::from_be(rd16(ip, 4)) };
        let outer_plen = plen.checked_add(IPIP6_OVERHEAD as u16)?;
        // SAFETY: plain helper call on this program's context.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(IPIP6_OVERHEAD as i32)) } != 0 {
            return None;
        }
        let h = ptr_at::<[u8; ETH_HLEN + 40]>(ctx, 0)? as *mut u8;
        let l = outer_plen.to_be_bytes();
        // SAFETY: bounds checked by ptr_at (Ethernet + outer IPv6 header).
        unsafe {
            wr16(h, 12, ETH_P_IPV6.to_be());
            wr32(h, 14, u32::from_ne_bytes([0x60, 0, 0, 0]));
            wr32(h, 18, u32::from_ne_bytes([l[0], l[1], IPPROTO_IPV6, OUTER_TTL]));
            let mut i = 0;
            while i < 4 {
                wr32(h, 22 + 4 * i, src[i]);
                wr32(h, 38 + 4 * i, target[i]);
                i += 1;
            }
        }
    }
    Some(())
}

/// A reply from a target: the source becomes the VIP again (no per-connection
/// state), the next hop towards the client comes from the FIB.
#[inline(always)]
fn reply<const N: usize>(ctx: &XdpContext, p: &Pkt, r: &ReplyEntry) -> u32 {
    let vip = r.vip;
    if tcp_flags(ctx, p.l4, p.l4_len).is_none() {
        if let Some(s) = vip_stats(vip) {
            s.parse_failures += 1;
            s.dropped += 1;
        }
        return xdp_action::XDP_DROP;
    }
    let vaddr = r.vaddr;
    let vport = r.vport;
    // The next hop first: a "reply" addressed to this host itself is not a reply
    // to a client but the target answering the balancer (the loader's health
    // checks, an operator's connection): the kernel's, untranslated.
    let mut nh = NextHop::default();
    if resolve::<N>(ctx, &mut nh, &vaddr, &p.dst) == FIB_NOT_FORWARDED {
        return pass(global::NOT_VIP);
    }
    if rewrite::<N>(ctx, p, false, &p.src, &vaddr, p.sport, vport).is_none() {
        return xdp_action::XDP_DROP;
    }
    if let Some(s) = vip_stats(vip) {
        s.replies += 1;
    }
    send(ctx, &nh)
}

#[inline(always)]
fn ingress_ifindex(ctx: &XdpContext) -> u32 {
    // SAFETY: ctx.ctx points at the kernel's xdp_md for this run.
    unsafe { (*ctx.ctx).ingress_ifindex }
}

/// `bpf_fib_lookup`'s answer for a destination it would not forward: a local
/// address of this host (or another non-unicast route).
const FIB_NOT_FORWARDED: i64 = 4;

/// Looks up the next hop towards `dst` in the kernel's FIB and neighbour table;
/// returns the helper's code (0: resolved; [`FIB_NOT_FORWARDED`]: `dst` is this
/// host's).
#[inline(always)]
fn resolve<const N: usize>(
    ctx: &XdpContext,
    nh: &mut NextHop,
    src: &[u32; 4],
    dst: &[u32; 4],
) -> i64 {
    // Zeroed with eight word stores (`mem::zeroed` would call a byte-wise memset).
    let mut f = core::mem::MaybeUninit::<bpf_fib_lookup>::uninit();
    let w = f.as_mut_ptr() as *mut u64;
    let mut i = 0;
    while i < size_of::<bpf_fib_lookup>() / 8 {
        // SAFETY: inside `f`, which is 8-aligned and a multiple of 8 bytes.
        unsafe { core::ptr::write_volatile(w.add(i), 0) };
        i += 1;
    }
    // SAFETY: plain old data, all zero now: a valid value.
    let f = unsafe { f.assume_init_mut() };
    f.l4_protocol = PROTO_TCP;
    f.ifindex = ingress_ifindex(ctx);
    if N == 4 {
        f.family = AF_INET;
        f.__bindgen_anon_3.ipv4_src = src[0];
        f.__bindgen_anon_4.ipv4_dst = dst[0];
    } else {
        f.family = AF_INET6;
        f.__bindgen_anon_3.ipv6_src = *src;
        f.__bindgen_anon_4.ipv6_dst = *dst;
    }
    // SAFETY: the helper reads and writes `f`, whose size we pass.
    let rc = unsafe { fib_lookup(ctx.ctx as *mut _, f, size_of::<bpf_fib_lookup>() as i32, 0) };
    if rc == 0 {
        // Byte by byte, volatile: the MAC fields sit at offsets the verifier
        // refuses wider (combined, misaligned) stack loads from.
        let mut m = [0u8; 12];
        let mut i = 0;
        while i < 6 {
            // SAFETY: reads of initialised fields of `f`.
            unsafe {
                m[i] = core::ptr::read_volatile(&f.dmac[i]);
                m[6 + i] = core::ptr::read_volatile(&f.smac[i]);
            }
            i += 1;
        }
        nh.macs = [
            u32::from_ne_bytes([m[0], m[1], m[2], m[3]]),
            u32::from_ne_bytes([m[4], m[5], m[6], m[7]]),
            u32::from_ne_bytes([m[8], m[9], m[10], m[11]]),
        ];
        nh.ifindex = f.ifindex;
        nh.resolved = 1;
    }
    rc
}

/// Rewrites the destination (`to_target`) or the source address and port, with
/// word-wise RFC 1624 updates of the IPv4 header checksum and the TCP checksum.
#[inline(always)]
fn rewrite<const N: usize>(
    ctx: &XdpContext,
    p: &Pkt,
    to_target: bool,
    old: &[u32; 4],
    new: &[u32; 4],
    old_port: u16,
    new_port: u16,
) -> Option<()> {
    // One bounds check per header and constant offsets from there.
    let tcp = ptr_at::<[u8; 20]>(ctx, p.l4)? as *mut u8;
    // SAFETY: bounds checked by ptr_at; all offsets are inside the checked range.
    unsafe {
        let mut sum = u32::from(!rd16(tcp, 16));
        let mut i = 0;
        while i < N / 4 {
            sum = csum_add_word(sum, old[i], new[i]);
            i += 1;
        }
        sum += u32::from(!old_port) + u32::from(new_port);
        wr16(tcp, 16, !csum_fold(sum));
        wr16(tcp, if to_target { 2 } else { 0 }, new_port);
    }
    if N == 4 {
        let ip = ptr_at::<[u8; 20]>(ctx, p.ip_off)? as *mut u8;
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            wr32(ip, if to_target { 16 } else { 12 }, new[0]);
            let sum = csum_add_word(u32::from(!rd16(ip, 10)), old[0], new[0]);
            wr16(ip, 10, !csum_fold(sum));
        }
    } else {
        let ip = ptr_at::<[u8; 40]>(ctx, p.ip_off)? as *mut u8;
        let off = if to_target { 24 } else { 8 };
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            wr32(ip, off, new[0]);
            wr32(ip, off + 4, new[1]);
            wr32(ip, off + 8, new[2]);
            wr32(ip, off + 12, new[3]);
        }
    }
    Some(())
}

/// Sets the MACs of a resolved next hop and sends the frame: XDP_TX when it is on
/// the ingress interface, XDP_REDIRECT otherwise. Unresolved: XDP_PASS (the kernel
/// routes the rewritten packet and resolves the neighbour for the next one).
#[inline(always)]
fn send(ctx: &XdpContext, nh: &NextHop) -> u32 {
    if nh.resolved == 0 {
        return xdp_action::XDP_PASS;
    }
    if let Some(eth) = ptr_at::<[u8; 12]>(ctx, 0) {
        let eth = eth as *mut u8;
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            wr32(eth, 0, nh.macs[0]);
            wr32(eth, 4, nh.macs[1]);
            wr32(eth, 8, nh.macs[2]);
        }
    }
    if nh.ifindex == ingress_ifindex(ctx) {
        xdp_action::XDP_TX
    } else {
        // SAFETY: plain helper call.
        unsafe { bpf_redirect(nh.ifindex, 0) as u32 }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
