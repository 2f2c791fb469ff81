//! ICMP errors about VIP flows, sent on to the flow's target so that path MTU
//! discovery works through the load balancer.
//!
//! A router that cannot forward a segment a target sent as the VIP (VIP:port →
//! client) answers the VIP: ICMPv4 "fragmentation needed" (type 3, code 4) or
//! ICMPv6 "packet too big" (type 2, code 0), quoting the segment's IP header and
//! the first 8 bytes of TCP. The program finds the flow's target (flow cache,
//! else the Maglev table, as for a TCP packet of that flow), rewrites the outer
//! destination and the quoted source address and port from the VIP to the target
//! with incremental checksum updates, and sends the packet to the target's next
//! hop. Every other ICMP message (and one whose quote is not a TCP segment from a
//! VIP, or whose quoted IP header carries options or extension headers) passes
//! to the kernel untouched.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use routing_ebpf_common::{csum_add_word, csum_fold, global, FAMILY_V4, FAMILY_V6, PROTO_TCP};

use crate::{
    find_vip, flow_hash, lookup_flow, maglev_pick, pass, ptr_at, rd16, rd32, resolve, send,
    vip_stats, wr16, wr32, Pkt, NEXT_HOPS, TARGETS,
};

/// The target id of the flow `p` (client → VIP) of VIP `index`: its flow-cache
/// entry when that still names a target of the VIP, else the Maglev pick.
#[inline(always)]
fn flow_target<const N: usize>(p: &Pkt, vip: &routing_ebpf_common::VipEntry) -> Option<u32> {
    let family = if N == 4 { FAMILY_V4 } else { FAMILY_V6 };
    let h = flow_hash::<N>(&p.src, p);
    if let Some(t) = lookup_flow::<N>(h) {
        if matches!(TARGETS.get(t), Some(tt) if tt.vip == vip.index && tt.family == family) {
            return Some(t);
        }
    }
    maglev_pick::<N>(h, &p.src, vip)
}

/// ICMPv4 "fragmentation needed" (type 3, code 4) about a segment VIP:port →
/// client: sent on to that flow's target, the outer destination and the quoted
/// source (address, port, quoted header checksum) rewritten to the target.
#[inline(always)]
pub(crate) fn icmp4(ctx: &XdpContext, ip_off: usize, l4: usize, l4_len: usize) -> u32 {
    // ICMP header, the quoted IPv4 header (no options) and 8 bytes of TCP.
    if l4_len < 36 {
        return pass(global::NOT_TCP);
    }
    let (Some(ip), Some(b)) = (ptr_at::<[u8; 20]>(ctx, ip_off), ptr_at::<[u8; 36]>(ctx, l4)) else {
        return pass(global::NOT_TCP);
    };
    let (ip, b) = (ip as *mut u8, b as *mut u8);
    // SAFETY: bounds checked by ptr_at; all offsets below are inside them.
    unsafe {
        if *b != 3 || *b.add(1) != 4 || *b.add(8) != 0x45 || *b.add(17) != PROTO_TCP {
            return pass(global::NOT_TCP);
        }
        let vaddr = rd32(b, 20);
        let vport = rd16(b, 28);
        if rd32(ip, 16) != vaddr {
            return pass(global::NOT_VIP);
        }
        let Some(vip) = find_vip(&[vaddr, 0, 0, 0], vport, FAMILY_V4) else {
            return pass(global::NOT_VIP);
        };
        // The flow as the client sends it: client → VIP.
        let p = Pkt {
            ip_off,
            l4,
            l4_len,
            src: [rd32(b, 24), 0, 0, 0],
            dst: [vaddr, 0, 0, 0],
            sport: rd16(b, 30),
            dport: vport,
        };
        let Some(tid) = flow_target::<4>(&p, &vip) else {
            return pass(global::NOT_VIP);
        };
        let Some(t) = TARGETS.get(tid) else {
            return pass(global::NOT_VIP);
        };
        if t.family != FAMILY_V4 {
            return pass(global::NOT_VIP);
        }
        let taddr = t.addr[0];
        let tport = t.port;
        let Some(nh) = NEXT_HOPS.get_ptr_mut(tid) else {
            return xdp_action::XDP_DROP;
        };
        let nh = &mut *nh;
        if nh.resolved == 0 {
            let from = [rd32(ip, 12), 0, 0, 0];
            resolve::<4>(ctx, nh, &from, &t.addr);
        }
        // Quoted header: source VIP:port → target, with its own checksum.
        let old_qc = rd16(b, 18);
        let new_qc = !csum_fold(csum_add_word(u32::from(!old_qc), vaddr, taddr));
        // ICMP checksum over the changed quoted bytes.
        let mut sum = csum_add_word(u32::from(!rd16(b, 2)), vaddr, taddr);
        sum += u32::from(!vport) + u32::from(tport);
        sum += u32::from(!old_qc) + u32::from(new_qc);
        wr32(b, 20, taddr);
        wr16(b, 28, tport);
        wr16(b, 18, new_qc);
        wr16(b, 2, !csum_fold(sum));
        // Outer destination VIP → target.
        wr32(ip, 16, taddr);
        let sum = csum_add_word(u32::from(!rd16(ip, 10)), vaddr, taddr);
        wr16(ip, 10, !csum_fold(sum));
        if let Some(s) = vip_stats(vip.index) {
            s.forwarded += 1;
        }
        send(ctx, nh)
    }
}

/// ICMPv6 "packet too big" (type 2, code 0) about a segment VIP:port → client:
/// sent on to that flow's target, the outer destination and the quoted source
/// address and port rewritten to the target. The ICMPv6 checksum covers both
/// addresses (the outer one through the pseudo-header), so each changed word
/// counts there once per place it appears.
#[inline(always)]
pub(crate) fn icmp6(ctx: &XdpContext, ip_off: usize, l4: usize, l4_len: usize) -> u32 {
    // ICMPv6 header (8), the quoted IPv6 header (40, no extension headers) and
    // 8 bytes of TCP.
    if l4_len < 56 {
        return pass(global::NOT_TCP);
    }
    let (Some(ip), Some(b)) = (ptr_at::<[u8; 40]>(ctx, ip_off), ptr_at::<[u8; 56]>(ctx, l4)) else {
        return pass(global::NOT_TCP);
    };
    let (ip, b) = (ip as *mut u8, b as *mut u8);
    // SAFETY: bounds checked by ptr_at; all offsets below are inside them.
    unsafe {
        if *b != 2 || *b.add(1) != 0 || *b.add(8) >> 4 != 6 || *b.add(14) != PROTO_TCP {
            return pass(global::NOT_TCP);
        }
        let mut vaddr = [0u32; 4];
        let mut client = [0u32; 4];
        let mut i = 0;
        while i < 4 {
            vaddr[i] = rd32(b, 16 + 4 * i);
            client[i] = rd32(b, 32 + 4 * i);
            if rd32(ip, 24 + 4 * i) != vaddr[i] {
                return pass(global::NOT_VIP);
            }
            i += 1;
        }
        let vport = rd16(b, 48);
        let Some(vip) = find_vip(&vaddr, vport, FAMILY_V6) else {
            return pass(global::NOT_VIP);
        };
        let p = Pkt {
            ip_off,
            l4,
            l4_len,
            src: client,
            dst: vaddr,
            sport: rd16(b, 50),
            dport: vport,
        };
        let Some(tid) = flow_target::<16>(&p, &vip) else {
            return pass(global::NOT_VIP);
        };
        let Some(t) = TARGETS.get(tid) else {
            return pass(global::NOT_VIP);
        };
        if t.family != FAMILY_V6 {
            return pass(global::NOT_VIP);
        }
        let taddr = t.addr;
        let tport = t.port;
        let Some(nh) = NEXT_HOPS.get_ptr_mut(tid) else {
            return xdp_action::XDP_DROP;
        };
        let nh = &mut *nh;
        if nh.resolved == 0 {
            let mut from = [0u32; 4];
            let mut i = 0;
            while i < 4 {
                from[i] = rd32(ip, 8 + 4 * i);
                i += 1;
            }
            resolve::<16>(ctx, nh, &from, &taddr);
        }
        let mut sum = u32::from(!rd16(b, 2));
        let mut i = 0;
        while i < 4 {
            // Twice: the outer destination (pseudo-header) and the quoted source.
            sum = csum_add_word(sum, vaddr[i], taddr[i]);
            sum = csum_add_word(sum, vaddr[i], taddr[i]);
            wr32(ip, 24 + 4 * i, taddr[i]);
            wr32(b, 16 + 4 * i, taddr[i]);
            i += 1;
        }
        sum += u32::from(!vport) + u32::from(tport);
        wr16(b, 48, tport);
        wr16(b, 2, !csum_fold(sum));
        if let Some(s) = vip_stats(vip.index) {
            s.forwarded += 1;
        }
        send(ctx, nh)
    }
}
