//! The XDP datapath of `routing-ebpf`: TCP connections to a VIP are steered to the
//! target the VIP's weighted Maglev table names, by DNAT (destination rewrite on the
//! way in, source rewrite of the replies on the way back), sent with XDP_TX (or
//! XDP_REDIRECT when the next hop is on another interface).
//!
//! See the `routing-ebpf` crate documentation for the verdict table and the
//! connection-tracking semantics; this file implements exactly that.
#![no_std]
#![no_main]
#![allow(clippy::missing_safety_doc)]
// Map keys are passed by reference on purpose: by value would copy them.
#![allow(clippy::needless_borrows_for_generic_args)]

use core::mem::size_of;

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action},
    helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_get_smp_processor_id, bpf_redirect},
    macros::{map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use routing_ebpf_common::{
    csum_replace, global, FlowKey, NatEntry, Target,
    TargetCounters, VipCounters, VipInfo, VipKey, VipState, FAMILY_V4, FAMILY_V6, NAT_RESOLVED,
    PROTO_TCP, VIP_HASH_SOURCE_IP,
};
// The flow hash and the Maglev reduction: the same functions routing-core runs.
use routing_hash::{flow_hash, reduce, source_hash};

// Map sizes are placeholders: the loader sets the real ones before loading.
#[map]
static VIPS: HashMap<VipKey, VipInfo> = HashMap::with_max_entries(16, 0);
#[map]
static VIP_STATE: Array<VipState> = Array::with_max_entries(16, 0);
#[map]
static MAGLEV: Array<u32> = Array::with_max_entries(1, 0);
#[map]
static TARGETS: Array<Target> = Array::with_max_entries(1024, 0);
#[map]
static CONNTRACK: LruHashMap<FlowKey, NatEntry> =
    LruHashMap::with_max_entries(1024, BPF_F_NO_COMMON_LRU);
#[map]
static REVERSE: LruHashMap<FlowKey, NatEntry> =
    LruHashMap::with_max_entries(1024, BPF_F_NO_COMMON_LRU);
/// One bit per TCP port: set for every port a target listens on. A packet that is
/// not for a VIP is looked up in `REVERSE` only if its source port is set.
#[map]
static TARGET_PORTS: Array<u64> = Array::with_max_entries(1024, 0);
/// One bit per TCP port: set for every VIP port. `VIPS` is looked up only if the
/// destination port is set.
#[map]
static VIP_PORTS: Array<u64> = Array::with_max_entries(1024, 0);

#[inline(always)]
fn port_set(map: &Array<u64>, port: [u8; 2]) -> bool {
    let p = u16::from_be_bytes(port) as u32;
    match map.get(p >> 6) {
        Some(bits) => bits & (1u64 << (p & 63)) != 0,
        None => false,
    }
}
#[map]
static TARGET_STATS: PerCpuArray<TargetCounters> = PerCpuArray::with_max_entries(1024, 0);
#[map]
static VIP_STATS: PerCpuArray<VipCounters> = PerCpuArray::with_max_entries(16, 0);
#[map]
static GLOBAL_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(global::COUNT, 0);
#[map]
static PASS_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
/// Per-CPU scratch space for what does not fit the 512-byte BPF stack.
#[map]
static SCRATCH_FIB: PerCpuArray<bpf_fib_lookup> = PerCpuArray::with_max_entries(1, 0);
#[map]
static BENCH_SEQ: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Benchmark switch, set by the loader at load time (read-only data: with 0 the
/// verifier removes the branch). Bit 1: make every packet to a VIP a new flow (the
/// conntrack key's source address is XORed with a per-CPU sequence number and the
/// CPU id), for `BPF_PROG_TEST_RUN` with `repeat`.
#[no_mangle]
static BENCH: u32 = 0;
const BENCH_NEW_FLOW: u32 = 2;
/// Number of distinct flows the benchmark cycles through (0 = a new one every run).
#[no_mangle]
static BENCH_FLOWS: u32 = 0;

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

/// Per-CPU LRU lists: no lock shared between CPUs on insert (see the crate docs).
const BPF_F_NO_COMMON_LRU: u32 = 2;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const TCP_RST: u8 = 0x04;

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

/// The load balancer.
#[xdp]
pub fn routing_xdp(ctx: XdpContext) -> u32 {
    route(&ctx)
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
    if ip[9] != PROTO_TCP {
        return pass(global::NOT_TCP);
    }
    if be16([ip[6], ip[7]]) & 0x3fff != 0 {
        return pass(global::FRAGMENT);
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
            0 | 43 | 60 | 51 => {
                let Some(ext) = ptr_at::<[u8; 2]>(ctx, off) else {
                    return pass(global::PARSE_FAILURE);
                };
                // SAFETY: bounds checked by ptr_at.
                let ext = unsafe { *ext };
                let len = if nh == 51 {
                    (ext[1] as usize + 2) * 4
                } else {
                    (ext[1] as usize + 1) * 8
                };
                nh = ext[0];
                off += len;
            }
            44 => return pass(global::FRAGMENT),
            _ => break,
        }
        i += 1;
    }
    match nh {
        PROTO_TCP => {}
        0 | 43 | 60 | 51 => return pass(global::TOO_DEEP),
        44 => return pass(global::FRAGMENT),
        _ => return pass(global::NOT_TCP),
    }
    let end = ip_off + 40 + payload;
    if off > end {
        return pass(global::PARSE_FAILURE);
    }
    tcp::<16>(ctx, ip_off, off, end - off)
}

#[inline(always)]
fn widen<const N: usize>(a: &[u8; N]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < N {
        out[i] = a[i];
        i += 1;
    }
    out
}

#[inline(always)]
fn narrow<const N: usize>(a: &[u8; 16]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = a[i];
        i += 1;
    }
    out
}

/// Offsets of the fields a rewrite touches.
struct Layout {
    ip_off: usize,
    l4: usize,
}

impl Layout {
    #[inline(always)]
    fn src_addr(&self, n: usize) -> usize {
        if n == 4 {
            self.ip_off + 12
        } else {
            self.ip_off + 8
        }
    }
    #[inline(always)]
    fn dst_addr(&self, n: usize) -> usize {
        if n == 4 {
            self.ip_off + 16
        } else {
            self.ip_off + 24
        }
    }
}

/// Per-CPU working set of one packet: keeps the keys and entries off the 512-byte
/// BPF stack.
#[repr(C)]
struct Scratch {
    key: FlowKey,
    rkey: FlowKey,
    entry: NatEntry,
    back: NatEntry,
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

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
    let ports4 = unsafe { *ports };
    // Prefilter: a packet whose destination port no VIP uses and whose source port
    // no target uses cannot be ours; no hash lookup, no key built.
    let maybe_vip = port_set(&VIP_PORTS, [ports4[2], ports4[3]]);
    let maybe_reply = port_set(&TARGET_PORTS, [ports4[0], ports4[1]]);
    if !maybe_vip && !maybe_reply {
        return pass(global::NOT_VIP);
    }
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return xdp_action::XDP_ABORTED;
    };
    // SAFETY: this CPU's scratch slot, used by this program run only.
    let sc = unsafe { &mut *sc };
    let layout = Layout { ip_off, l4 };
    let Some(src) = ptr_at::<[u8; N]>(ctx, layout.src_addr(N)) else {
        return pass(global::PARSE_FAILURE);
    };
    let Some(dst) = ptr_at::<[u8; N]>(ctx, layout.dst_addr(N)) else {
        return pass(global::PARSE_FAILURE);
    };
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        let ports = *ports;
        sc.key = FlowKey {
            src: widen(&*src),
            dst: widen(&*dst),
            sport: [ports[0], ports[1]],
            dport: [ports[2], ports[3]],
            proto: PROTO_TCP,
            family,
            _pad: [0; 2],
        };
    }
    // SAFETY: FlowKey begins with the exact layout of a VipKey (asserted in the
    // common crate's tests); the map value is copied out at once.
    let vkey = unsafe { &*(&sc.key as *const FlowKey as *const VipKey) };
    if let Some(vip) = if maybe_vip {
        unsafe { VIPS.get(vkey) }.copied()
    } else {
        None
    } {
        let Some(flags) = tcp_flags(ctx, l4, l4_len) else {
            if let Some(s) = vip_stats(vip.index) {
                s.parse_failures += 1;
                s.dropped += 1;
            }
            return xdp_action::XDP_DROP;
        };
        return to_vip::<N>(ctx, sc, &layout, vip, flags);
    }

    if !maybe_reply {
        return pass(global::NOT_VIP);
    }
    // SAFETY: the map value is copied out at once.
    let Some(back) = (unsafe { REVERSE.get(&sc.key) }).copied() else {
        return pass(global::NOT_VIP);
    };
    sc.back = back;
    if tcp_flags(ctx, l4, l4_len).is_none() {
        if let Some(s) = vip_stats(sc.back.id) {
            s.parse_failures += 1;
            s.dropped += 1;
        }
        return xdp_action::XDP_DROP;
    }
    // Reply: the source becomes the VIP again.
    let old: [u8; N] = narrow(&sc.key.src);
    let new: [u8; N] = narrow(&sc.back.addr);
    if rewrite::<N>(ctx, &layout, false, &old, &new, sc.key.sport, sc.back.port).is_none() {
        return xdp_action::XDP_DROP;
    }
    if let Some(s) = vip_stats(sc.back.id) {
        s.replies += 1;
    }
    send(ctx, &sc.back)
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

#[inline(always)]
fn to_vip<const N: usize>(
    ctx: &XdpContext,
    sc: &mut Scratch,
    layout: &Layout,
    vip: VipInfo,
    flags: u8,
) -> u32 {
    let family = if N == 4 { FAMILY_V4 } else { FAMILY_V6 };
    if bench() & BENCH_NEW_FLOW != 0 {
        if let Some(seq) = BENCH_SEQ.get_ptr_mut(0) {
            // SAFETY: per-CPU slot of this CPU.
            let s = unsafe {
                *seq = (*seq).wrapping_add(1);
                *seq
            };
            // `BENCH_FLOWS` = 0: a new flow on every run (per-CPU sequence, CPU id
            // in the top byte); n > 0: n distinct flows, cycled. Applied to the
            // source address itself (the last 4 bytes of it), before the flow hash,
            // so every flow hashes to its own slot.
            // SAFETY: plain reads of a static / helper call.
            let flows = unsafe { core::ptr::read_volatile(&BENCH_FLOWS) };
            let v = if flows == 0 {
                s ^ (unsafe { bpf_get_smp_processor_id() } << 24)
            } else {
                s % flows
            };
            let o = N - 4;
            sc.key.src[o] ^= (v >> 24) as u8;
            sc.key.src[o + 1] ^= (v >> 16) as u8;
            sc.key.src[o + 2] ^= (v >> 8) as u8;
            sc.key.src[o + 3] ^= v as u8;
        }
    }
    let src: [u8; N] = narrow(&sc.key.src);
    let dst: [u8; N] = narrow(&sc.key.dst);
    let sport = sc.key.sport;
    let dport = sc.key.dport;
    let pkt_len = (ctx.data_end() - ctx.data()) as u64;

    // Points at the conntrack value (established) or at the scratch copy (new).
    let entry: *const NatEntry = match CONNTRACK.get_ptr_mut(&sc.key) {
        Some(p) => {
            // SAFETY: the LRU value stays valid for this program run.
            let e = unsafe { &mut *p };
            if e.flags & NAT_RESOLVED == 0 {
                resolve(ctx, e, &src);
            }
            p
        }
        None => {
            let Some(state) = VIP_STATE.get(vip.index) else {
                return xdp_action::XDP_DROP;
            };
            let a = (state.active & 1) as usize;
            let size = state.size[a];
            let base = state.base[a];
            if size == 0 {
                if let Some(s) = vip_stats(vip.index) {
                    s.dropped += 1;
                }
                if debug_on() {
                    aya_log_ebpf::warn!(ctx, "vip {}: no target has weight, dropped", vip.index);
                }
                return xdp_action::XDP_DROP;
            }
            let h = if vip.flags & VIP_HASH_SOURCE_IP != 0 {
                source_hash(&src)
            } else {
                flow_hash(&src, &dst, sport, dport, PROTO_TCP)
            };
            let Some(&tid) = MAGLEV.get(base.wrapping_add(reduce(h, size))) else {
                return xdp_action::XDP_DROP;
            };
            let Some(t) = TARGETS.get(tid) else {
                return xdp_action::XDP_DROP;
            };
            if t.family != family {
                if let Some(s) = vip_stats(vip.index) {
                    s.dropped += 1;
                }
                return xdp_action::XDP_DROP;
            }
            sc.entry = NatEntry {
                addr: t.addr,
                port: t.port,
                family,
                flags: 0,
                id: tid,
                ifindex: 0,
                dmac: [0; 6],
                smac: [0; 6],
            };
            resolve(ctx, &mut sc.entry, &src);
            // A RST never creates state: it is sent where the table says, untracked.
            if debug_on() {
                aya_log_ebpf::debug!(
                    ctx,
                    "vip {}: new flow -> target {} (flags {:x}, resolved {})",
                    vip.index,
                    tid,
                    flags,
                    sc.entry.flags & NAT_RESOLVED
                );
            }
            if flags & TCP_RST == 0 {
                let _ = CONNTRACK.insert(&sc.key, &sc.entry, 0);
                if let Some(eth) = ptr_at::<[u8; 12]>(ctx, 0) {
                    // SAFETY: bounds checked by ptr_at.
                    let eth = unsafe { &*eth };
                    sc.back = NatEntry {
                        addr: sc.key.dst,
                        port: dport,
                        family,
                        flags: NAT_RESOLVED,
                        id: vip.index,
                        ifindex: ingress_ifindex(ctx),
                        dmac: [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]],
                        smac: [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]],
                    };
                    sc.rkey = FlowKey {
                        src: sc.entry.addr,
                        dst: sc.key.src,
                        sport: sc.entry.port,
                        dport: sc.key.sport,
                        proto: PROTO_TCP,
                        family,
                        _pad: [0; 2],
                    };
                    let _ = REVERSE.insert(&sc.rkey, &sc.back, 0);
                }
                if let Some(ts) = TARGET_STATS.get_ptr_mut(tid) {
                    // SAFETY: per-CPU slot of this CPU.
                    unsafe { (*ts).new_flows += 1 };
                }
            }
            &sc.entry
        }
    };
    // SAFETY: either pointer is valid for the rest of this run.
    let entry = unsafe { &*entry };

    let new: [u8; N] = narrow(&entry.addr);
    if rewrite::<N>(ctx, layout, true, &dst, &new, dport, entry.port).is_none() {
        return xdp_action::XDP_DROP;
    }
    if let Some(ts) = TARGET_STATS.get_ptr_mut(entry.id) {
        // SAFETY: per-CPU slot of this CPU.
        unsafe {
            (*ts).packets += 1;
            (*ts).bytes += pkt_len;
        }
    }
    if let Some(s) = vip_stats(vip.index) {
        if entry.flags & NAT_RESOLVED != 0 {
            s.forwarded += 1;
        } else {
            s.passed += 1;
        }
    }
    send(ctx, entry)
}

#[inline(always)]
fn ingress_ifindex(ctx: &XdpContext) -> u32 {
    // SAFETY: ctx.ctx points at the kernel's xdp_md for this run.
    unsafe { (*ctx.ctx).ingress_ifindex }
}

/// Looks up the next hop towards `e.addr` in the kernel's FIB and neighbour table.
#[inline(always)]
fn resolve<const N: usize>(ctx: &XdpContext, e: &mut NatEntry, src: &[u8; N]) {
    let Some(p) = SCRATCH_FIB.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's scratch slot; bpf_fib_lookup is plain old data.
    let p = unsafe {
        core::ptr::write_bytes(p, 0, 1);
        &mut *p
    };
    p.l4_protocol = PROTO_TCP;
    p.ifindex = ingress_ifindex(ctx);
    if N == 4 {
        p.family = AF_INET;
        p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes([src[0], src[1], src[2], src[3]]);
        p.__bindgen_anon_4.ipv4_dst =
            u32::from_ne_bytes([e.addr[0], e.addr[1], e.addr[2], e.addr[3]]);
    } else {
        p.family = AF_INET6;
        let s = widen(src);
        let mut i = 0;
        while i < 4 {
            // SAFETY: writing a union field of plain integers.
            unsafe {
                p.__bindgen_anon_3.ipv6_src[i] =
                    u32::from_ne_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
                p.__bindgen_anon_4.ipv6_dst[i] = u32::from_ne_bytes([
                    e.addr[4 * i],
                    e.addr[4 * i + 1],
                    e.addr[4 * i + 2],
                    e.addr[4 * i + 3],
                ]);
            }
            i += 1;
        }
    }
    // SAFETY: the helper reads and writes `p`, whose size we pass.
    let rc = unsafe { fib_lookup(ctx.ctx as *mut _, p, size_of::<bpf_fib_lookup>() as i32, 0) };
    if rc == 0 {
        e.dmac = p.dmac;
        e.smac = p.smac;
        e.ifindex = p.ifindex;
        e.flags |= NAT_RESOLVED;
    }
}

/// Rewrites the destination (`to_target`) or the source address and port, with
/// RFC 1624 updates of the IPv4 header checksum and the TCP checksum.
#[inline(always)]
fn rewrite<const N: usize>(
    ctx: &XdpContext,
    layout: &Layout,
    to_target: bool,
    old_addr: &[u8; N],
    new_addr: &[u8; N],
    old_port: [u8; 2],
    new_port: [u8; 2],
) -> Option<()> {
    // One bounds check per header and constant offsets from there: the verifier
    // follows that whatever the compiler does with the arithmetic.
    let tcp = ptr_at::<[u8; 20]>(ctx, layout.l4)?;
    // SAFETY: bounds checked by ptr_at.
    let tcp = unsafe { &mut *tcp };
    let mut c = be16([tcp[16], tcp[17]]);
    c = csum_replace(c, old_addr, new_addr);
    c = csum_replace(c, &old_port, &new_port);
    let c = c.to_be_bytes();
    tcp[16] = c[0];
    tcp[17] = c[1];
    if to_target {
        tcp[2] = new_port[0];
        tcp[3] = new_port[1];
    } else {
        tcp[0] = new_port[0];
        tcp[1] = new_port[1];
    }
    if N == 4 {
        let ip = ptr_at::<[u8; 20]>(ctx, layout.ip_off)?;
        // SAFETY: bounds checked by ptr_at.
        let ip = unsafe { &mut *ip };
        if to_target {
            ip[16..20].copy_from_slice(&new_addr[..4]);
        } else {
            ip[12..16].copy_from_slice(&new_addr[..4]);
        }
        let c = csum_replace(be16([ip[10], ip[11]]), old_addr, new_addr).to_be_bytes();
        ip[10] = c[0];
        ip[11] = c[1];
    } else {
        let ip = ptr_at::<[u8; 40]>(ctx, layout.ip_off)?;
        // SAFETY: bounds checked by ptr_at.
        let ip = unsafe { &mut *ip };
        if to_target {
            ip[24..40].copy_from_slice(&new_addr[..16]);
        } else {
            ip[8..24].copy_from_slice(&new_addr[..16]);
        }
    }
    Some(())
}

/// Sets the MACs of a resolved entry and sends the frame: XDP_TX when the next hop is
/// on the ingress interface, XDP_REDIRECT otherwise. Unresolved: XDP_PASS (the kernel
/// routes the rewritten packet and resolves the neighbour for the next one).
#[inline(always)]
fn send(ctx: &XdpContext, e: &NatEntry) -> u32 {
    if e.flags & NAT_RESOLVED != 0 {
        if let Some(eth) = ptr_at::<[u8; 12]>(ctx, 0) {
            // SAFETY: bounds checked by ptr_at.
            let eth = unsafe { &mut *eth };
            eth[0..6].copy_from_slice(&e.dmac);
            eth[6..12].copy_from_slice(&e.smac);
        }
        if e.ifindex == ingress_ifindex(ctx) {
            xdp_action::XDP_TX
        } else {
            // SAFETY: plain helper call.
            unsafe { bpf_redirect(e.ifindex, 0) as u32 }
        }
    } else {
        xdp_action::XDP_PASS
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
