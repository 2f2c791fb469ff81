//! Crafting and checking Ethernet/IP/TCP frames, for `BPF_PROG_TEST_RUN` tests and
//! benchmarks (and anyone who wants to feed `routing_ebpf::XdpBalancer::test_run`).
//!
//! ```
//! use routing_testkit::packet::{parse, TcpPacket};
//! let frame = TcpPacket::syn("198.51.100.2:40000".parse().unwrap(), "192.0.2.1:80".parse().unwrap()).build();
//! let p = parse(&frame).unwrap();
//! assert_eq!(p.dst, "192.0.2.1:80".parse().unwrap());
//! assert!(p.checksums_ok);
//! ```

use std::net::{IpAddr, SocketAddr};

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A TCP segment in an Ethernet frame, to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// VLAN tags, outermost first: (TPID, TCI), e.g. `(0x88a8, 100)`, `(0x8100, 5)`.
    pub vlans: Vec<(u16, u16)>,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// TCP flags ([`flags`]).
    pub flags: u8,
    /// IPv4 options (padded to a multiple of 4 bytes); ignored for IPv6.
    pub ipv4_options: Vec<u8>,
    /// IPv6 extension headers before TCP: (next-header number of this header,
    /// body). The body is padded so the header is a multiple of 8 bytes (AH: 4).
    pub ipv6_ext: Vec<(u8, Vec<u8>)>,
    /// IPv4 flags+fragment offset field (e.g. `0x2000` = more fragments).
    pub ipv4_frag: u16,
    /// Payload after the TCP header.
    pub payload: Vec<u8>,
}

impl TcpPacket {
    /// A SYN from `src` to `dst` with fixed documentation MACs.
    ///
    /// ```
    /// let p = routing_testkit::packet::TcpPacket::syn("[2001:db8::1]:1".parse().unwrap(), "[2001:db8::2]:2".parse().unwrap());
    /// assert_eq!(p.build().len(), 14 + 40 + 20);
    /// ```
    #[must_use]
    pub fn syn(src: SocketAddr, dst: SocketAddr) -> Self {
        Self {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            vlans: Vec::new(),
            src,
            dst,
            flags: flags::SYN,
            ipv4_options: Vec::new(),
            ipv6_ext: Vec::new(),
            ipv4_frag: 0x4000, // DF
            payload: Vec::new(),
        }
    }

    /// The same packet with other TCP flags.
    ///
    /// ```
    /// use routing_testkit::packet::{flags, TcpPacket};
    /// let p = TcpPacket::syn("192.0.2.9:1".parse().unwrap(), "192.0.2.1:2".parse().unwrap()).with_flags(flags::ACK);
    /// assert_eq!(p.flags, flags::ACK);
    /// ```
    #[must_use]
    pub fn with_flags(mut self, f: u8) -> Self {
        self.flags = f;
        self
    }

    /// The frame's bytes, with valid IPv4 and TCP checksums.
    ///
    /// ```
    /// let f = routing_testkit::packet::TcpPacket::syn("192.0.2.9:1".parse().unwrap(), "192.0.2.1:2".parse().unwrap()).build();
    /// assert_eq!(f.len(), 54);
    /// ```
    #[must_use]
    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for &(tpid, tci) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        let mut tcp = Vec::with_capacity(20 + self.payload.len());
        tcp.extend_from_slice(&self.src.port().to_be_bytes());
        tcp.extend_from_slice(&self.dst.port().to_be_bytes());
        tcp.extend_from_slice(&1u32.to_be_bytes()); // seq
        tcp.extend_from_slice(&0u32.to_be_bytes()); // ack
        tcp.push(5 << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&65_535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
        tcp.extend_from_slice(&self.payload);
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut opts = self.ipv4_options.clone();
                while opts.len() % 4 != 0 {
                    opts.push(0);
                }
                let hlen = 20 + opts.len();
                let total = hlen + tcp.len();
                let ip_at = f.len();
                f.push(0x40 | (hlen / 4) as u8);
                f.push(0);
                f.extend_from_slice(&(total as u16).to_be_bytes());
                f.extend_from_slice(&[0x12, 0x34]);
                f.extend_from_slice(&self.ipv4_frag.to_be_bytes());
                f.push(64);
                f.push(6);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                f.extend_from_slice(&opts);
                let c = checksum(&[&f[ip_at..ip_at + hlen]]);
                f[ip_at + 10..ip_at + 12].copy_from_slice(&c.to_be_bytes());
                let c = tcp_checksum(&s.octets(), &d.octets(), &tcp);
                tcp[16..18].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&tcp);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                let mut ext = Vec::new();
                let mut kinds: Vec<u8> = self.ipv6_ext.iter().map(|e| e.0).collect();
                kinds.push(6);
                for (i, (kind, body)) in self.ipv6_ext.iter().enumerate() {
                    let next = kinds[i + 1];
                    let mut h = vec![next, 0];
                    h.extend_from_slice(body);
                    let unit = if *kind == 51 { 4 } else { 8 };
                    while h.len() % unit != 0 || h.len() < 8 {
                        h.push(0);
                    }
                    h[1] = if *kind == 51 {
                        (h.len() / 4 - 2) as u8
                    } else {
                        (h.len() / 8 - 1) as u8
                    };
                    ext.extend_from_slice(&h);
                }
                let first = kinds[0];
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((ext.len() + tcp.len()) as u16).to_be_bytes());
                f.push(first);
                f.push(64);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                f.extend_from_slice(&ext);
                let c = tcp_checksum(&s.octets(), &d.octets(), &tcp);
                tcp[16..18].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&tcp);
            }
            _ => {}
        }
        f
    }
}

/// The Internet checksum (RFC 1071) of the concatenated `parts`.
///
/// ```
/// assert_eq!(routing_testkit::packet::checksum(&[&[0x45, 0x00]]), !0x4500u16);
/// ```
#[must_use]
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u64::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn tcp_checksum(src: &[u8], dst: &[u8], segment: &[u8]) -> u16 {
    let len = (segment.len() as u32).to_be_bytes();
    let pseudo_v4;
    let pseudo_v6;
    let pseudo: &[u8] = if src.len() == 4 {
        pseudo_v4 = [len[2], len[3]];
        &pseudo_v4
    } else {
        pseudo_v6 = len;
        &pseudo_v6
    };
    checksum(&[src, dst, &[0, 6], pseudo, segment])
}

/// What [`parse`] found in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// TCP flags.
    pub flags: u8,
    /// The IPv4 header checksum (if IPv4) and the TCP checksum verify.
    pub checksums_ok: bool,
}

/// Parses a frame built like [`TcpPacket::build`] does (VLAN tags, IPv4 options and
/// IPv6 extension headers included) and verifies its checksums by summing: a
/// header with a correct checksum sums to `0xffff`, whichever of the two zeros the
/// checksum field holds.
///
/// ```
/// use routing_testkit::packet::{parse, TcpPacket};
/// let mut f = TcpPacket::syn("192.0.2.9:1".parse().unwrap(), "192.0.2.1:2".parse().unwrap()).build();
/// f[30] ^= 1; // corrupt the destination address
/// assert!(!parse(&f).unwrap().checksums_ok);
/// ```
#[must_use]
pub fn parse(f: &[u8]) -> Option<Parsed> {
    let mut off = 12;
    let mut proto = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
    while proto == 0x8100 || proto == 0x88a8 {
        off += 4;
        proto = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    }
    off += 2;
    let mut dst_mac = [0; 6];
    let mut src_mac = [0; 6];
    dst_mac.copy_from_slice(f.get(0..6)?);
    src_mac.copy_from_slice(f.get(6..12)?);
    match proto {
        0x0800 => {
            let hlen = usize::from(f.get(off)? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*f.get(off + 2)?, *f.get(off + 3)?]));
            let ip = f.get(off..off + hlen)?;
            let src = IpAddr::from(<[u8; 4]>::try_from(&ip[12..16]).ok()?);
            let dst = IpAddr::from(<[u8; 4]>::try_from(&ip[16..20]).ok()?);
            let tcp = f.get(off + hlen..off + total)?;
            let ip_ok = checksum(&[ip]) == 0;
            let l4_ok = tcp_checksum(&ip[12..16], &ip[16..20], tcp) == 0;
            Some(Parsed {
                dst_mac,
                src_mac,
                src: SocketAddr::new(src, u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?])),
                dst: SocketAddr::new(dst, u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?])),
                flags: *tcp.get(13)?,
                checksums_ok: ip_ok && l4_ok,
            })
        }
        0x86dd => {
            let ip = f.get(off..off + 40)?;
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let mut nh = ip[6];
            let mut l4 = off + 40;
            while matches!(nh, 0 | 43 | 60 | 51) {
                let len = if nh == 51 {
                    (usize::from(*f.get(l4 + 1)?) + 2) * 4
                } else {
                    (usize::from(*f.get(l4 + 1)?) + 1) * 8
                };
                nh = *f.get(l4)?;
                l4 += len;
            }
            let tcp = f.get(l4..off + 40 + payload)?;
            let src = IpAddr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
            let dst = IpAddr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?);
            let l4_ok = tcp_checksum(&ip[8..24], &ip[24..40], tcp) == 0;
            Some(Parsed {
                dst_mac,
                src_mac,
                src: SocketAddr::new(src, u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?])),
                dst: SocketAddr::new(dst, u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?])),
                flags: *tcp.get(13)?,
                checksums_ok: l4_ok,
            })
        }
        _ => None,
    }
}
