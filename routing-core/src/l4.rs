//! L4 routing: TCP connections to a virtual address, spread by 5-tuple.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::backend::{Backend, BackendId};
use crate::hash::stable_hash;
use crate::select::{Forward, MaglevTable};

/// IANA protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// A connection's 5-tuple.
///
/// ```
/// use routing_core::FiveTuple;
/// let t = FiveTuple::tcp("192.0.2.1:40000".parse().unwrap(), "198.51.100.10:80".parse().unwrap());
/// assert_eq!(t.hash(), t.hash());
/// assert_ne!(t.hash(), FiveTuple { src_port: 40001, ..t }.hash());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    /// Source address.
    pub src_ip: IpAddr,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// IP protocol number.
    pub protocol: u8,
}

fn ip_bytes(ip: &IpAddr, out: &mut [u8; 37], at: usize) -> usize {
    match ip {
        IpAddr::V4(a) => {
            out[at..at + 4].copy_from_slice(&a.octets());
            at + 4
        }
        IpAddr::V6(a) => {
            out[at..at + 16].copy_from_slice(&a.octets());
            at + 16
        }
    }
}

impl FiveTuple {
    /// A TCP 5-tuple from source and destination socket addresses.
    ///
    /// ```
    /// let t = routing_core::FiveTuple::tcp("[2001:db8::1]:1".parse().unwrap(), "[2001:db8::2]:2".parse().unwrap());
    /// assert_eq!(t.protocol, 6);
    /// ```
    #[must_use]
    pub fn tcp(src: SocketAddr, dst: SocketAddr) -> Self {
        Self {
            src_ip: src.ip(),
            dst_ip: dst.ip(),
            src_port: src.port(),
            dst_port: dst.port(),
            protocol: IPPROTO_TCP,
        }
    }

    /// The flow hash: `routing_hash::flow_hash`, the word-wise hash of source and
    /// destination address (network order, cut into 4-byte words), the ports and the
    /// protocol — the XDP program computes the same value with
    /// `routing_hash::flow_hash_words` from the words it loads (a tuple mixing IPv4
    /// and IPv6, which no packet carries, hashes its bytes through [`stable_hash`]).
    ///
    /// ```
    /// use routing_core::FiveTuple;
    /// let t = FiveTuple::tcp("10.0.0.1:1000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    /// let h = routing_hash::flow_hash(&[10, 0, 0, 1], &[10, 0, 0, 2], [0x03, 0xe8], [0, 80], 6);
    /// assert_eq!(t.hash(), h);
    /// ```
    #[must_use]
    pub fn hash(&self) -> u64 {
        let (sport, dport) = (self.src_port.to_be_bytes(), self.dst_port.to_be_bytes());
        match (self.src_ip, self.dst_ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                routing_hash::flow_hash(&s.octets(), &d.octets(), sport, dport, self.protocol)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                routing_hash::flow_hash(&s.octets(), &d.octets(), sport, dport, self.protocol)
            }
            _ => {
                let mut buf = [0u8; 37];
                let mut n = ip_bytes(&self.src_ip, &mut buf, 0);
                n = ip_bytes(&self.dst_ip, &mut buf, n);
                buf[n..n + 2].copy_from_slice(&sport);
                buf[n + 2..n + 4].copy_from_slice(&dport);
                buf[n + 4] = self.protocol;
                stable_hash(&buf[..n + 5], 0)
            }
        }
    }

    /// The hash of the source address alone (client affinity).
    ///
    /// ```
    /// use routing_core::FiveTuple;
    /// let a = FiveTuple::tcp("10.0.0.1:1000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
    /// let b = FiveTuple { src_port: 2000, ..a };
    /// assert_eq!(a.source_hash(), b.source_hash());
    /// ```
    #[must_use]
    pub fn source_hash(&self) -> u64 {
        match self.src_ip {
            IpAddr::V4(a) => routing_hash::source_hash(&a.octets()),
            IpAddr::V6(a) => routing_hash::source_hash(&a.octets()),
        }
    }
}

pub use crate::config::{TcpForwarding, TcpHashOn};

/// A validated L4 service.
#[derive(Debug)]
pub struct TcpService {
    pub(crate) name: Box<str>,
    pub(crate) vip: SocketAddr,
    pub(crate) hash_on: TcpHashOn,
    pub(crate) forwarding: TcpForwarding,
    pub(crate) dsr_source: Option<IpAddr>,
    pub(crate) forward: Forward,
    pub(crate) maglev: std::sync::Arc<MaglevTable>,
    pub(crate) maglev_seed: u64,
    pub(crate) health_check: Option<TcpHealthCheck>,
}

/// Validated active health checks of an L4 service's targets
/// (`tcp_services[].health_check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpHealthCheck {
    /// `Some(path)`: an HTTP `GET path` that must answer [`Self::expect_status`];
    /// `None`: a TCP connect.
    pub http_path: Option<Box<str>>,
    /// The status an HTTP check expects.
    pub expect_status: u16,
    /// Time between checks of one target.
    pub interval: std::time::Duration,
    /// Time one check may take.
    pub timeout: std::time::Duration,
    /// Passed checks in a row that bring a down target back.
    pub rise: u32,
    /// Failed checks in a row that mark a target down.
    pub fall: u32,
}

impl TcpService {
    /// Its name.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}]}]").unwrap();
    /// assert_eq!(t.tcp_services()[0].name(), "web");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The virtual address.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}]}]").unwrap();
    /// assert_eq!(t.tcp_services()[0].vip().port(), 80);
    /// ```
    #[must_use]
    pub fn vip(&self) -> SocketAddr {
        self.vip
    }

    /// What identifies a client.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}]}]").unwrap();
    /// assert_eq!(t.tcp_services()[0].hash_on(), routing_core::TcpHashOn::FiveTuple);
    /// ```
    #[must_use]
    pub fn hash_on(&self) -> TcpHashOn {
        self.hash_on
    }

    /// How packets reach a target (DNAT or DSR with IP-in-IP).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}], forwarding: dsr_ipip, dsr_source: 10.0.0.9}]").unwrap();
    /// assert_eq!(t.tcp_services()[0].forwarding(), routing_core::TcpForwarding::DsrIpip);
    /// assert_eq!(t.tcp_services()[0].dsr_source(), Some("10.0.0.9".parse().unwrap()));
    /// ```
    #[must_use]
    pub fn forwarding(&self) -> TcpForwarding {
        self.forwarding
    }

    /// The outer source address for `dsr_ipip` (`None` with DNAT).
    #[must_use]
    pub fn dsr_source(&self) -> Option<IpAddr> {
        self.dsr_source
    }

    /// The weighted targets and their selection state.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}]}]").unwrap();
    /// assert_eq!(t.tcp_services()[0].forward().backends().len(), 1);
    /// ```
    #[must_use]
    pub fn forward(&self) -> &Forward {
        &self.forward
    }

    /// The weighted Maglev table whose slots index [`Forward::backends`] — what the
    /// XDP program loads.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}]}]").unwrap();
    /// assert_eq!(t.tcp_services()[0].maglev().len(), 65_537);
    /// ```
    #[must_use]
    pub fn maglev(&self) -> &MaglevTable {
        &self.maglev
    }

    /// Its active health checks, if configured.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}], health_check: {http_path: /healthz, fall: 3}}]").unwrap();
    /// let hc = t.tcp_services()[0].health_check().unwrap();
    /// assert_eq!((hc.fall, hc.rise, hc.expect_status), (3, 2, 200));
    /// ```
    #[must_use]
    pub fn health_check(&self) -> Option<&TcpHealthCheck> {
        self.health_check.as_ref()
    }

    /// The seed of its Maglev permutations (`maglev_seed`, default 0).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}], maglev_seed: 42}]").unwrap();
    /// assert_eq!(t.tcp_services()[0].maglev_seed(), 42);
    /// ```
    #[must_use]
    pub fn maglev_seed(&self) -> u64 {
        self.maglev_seed
    }
}

/// The L4 services of a table, keyed by virtual address.
#[derive(Debug, Default)]
pub(crate) struct TcpTable {
    pub(crate) services: Vec<TcpService>,
    pub(crate) by_vip: HashMap<SocketAddr, usize>,
}

/// The service and target chosen for a connection.
#[derive(Debug, Clone, Copy)]
pub struct FlowDecision<'t> {
    /// The service whose VIP the flow is addressed to.
    pub service: &'t TcpService,
    /// The chosen target.
    pub backend: &'t Backend,
    /// Its id.
    pub backend_id: BackendId,
}

/// Seed of [`RouteTable::tcp_fingerprint`] ("tcpfprnt").
const FINGERPRINT_SEED: u64 = 0x7463_7066_7072_6e74;

impl crate::RouteTable {
    /// A fingerprint of the L4 tables this configuration makes every load balancer
    /// install: for each service (in VIP order) its VIP, hash mode, forwarding mode
    /// DSR source and Maglev seed, and slot by slot the target (name and address) its Maglev
    /// table names. Backend names seed the Maglev permutations and ties go to the
    /// name that sorts first, so two nodes given the same services and backends,
    /// listed in any order, compute the same value — compare it across a fleet of
    /// load balancers behind ECMP to check that a flow moved between them by the
    /// router still finds its target. A changed target, weight or table size
    /// changes it (with overwhelming probability).
    ///
    /// ```
    /// let a = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '10.0.0.1:80'}, {name: b, address: '10.0.0.2:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}, {name: b}]}]").unwrap();
    /// let b = routing_core::RouteTable::from_yaml("backends: [{name: b, address: '10.0.0.2:80'}, {name: a, address: '10.0.0.1:80'}]\ntcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: b}, {name: a}]}]").unwrap();
    /// assert_eq!(a.tcp_fingerprint(), b.tcp_fingerprint());
    /// ```
    #[must_use]
    pub fn tcp_fingerprint(&self) -> u64 {
        let mut services: Vec<&TcpService> = self.tcp_services().iter().collect();
        services.sort_by_key(|s| s.vip);
        let mut buf: Vec<u8> = Vec::new();
        for s in services {
            buf.extend_from_slice(
                format!(
                    "{}\0{:?}\0{:?}\0{:?}\0{}\0{}\0",
                    s.vip,
                    s.hash_on,
                    s.forwarding,
                    s.dsr_source,
                    s.maglev.len(),
                    s.maglev_seed
                )
                .as_bytes(),
            );
            let per: Vec<u64> = s
                .forward
                .backends()
                .iter()
                .map(|wb| {
                    let b = self.backend(wb.id());
                    let id = format!("{}\0{:?}", b.name(), b.address());
                    stable_hash(id.as_bytes(), FINGERPRINT_SEED)
                })
                .collect();
            for &slot in s.maglev.slots() {
                let h = per.get(slot as usize).copied().unwrap_or(u64::MAX);
                buf.extend_from_slice(&h.to_le_bytes());
            }
        }
        stable_hash(&buf, FINGERPRINT_SEED)
    }
}
