//! The veth topology of the L4 demo and `bench-l4`: `routing-ebpf`'s shared
//! [`routing_testkit::netns::Topology`] (the one its end-to-end tests use), plus what
//! these tasks add to it.
//!
//! ```text
//!                      switch ns: bridge br0
//!        ┌──────────────────┬──────┴───────────┬──────────────────────┐
//!  client ns eth0      load balancer ns eth0       target ns i eth0
//!  198.51.100.2/24     198.51.100.1/24             203.0.113.(10+i)/24
//!  VIP 192.0.2.0/24    203.0.113.1/24              default via 203.0.113.1
//!  via 198.51.100.1    forwarding on, no redirects
//! ```
//!
//! The load balancer has one interface: the client reaches the VIP through it and
//! the targets' replies to the client pass through it, so the XDP program attached
//! there sees both directions (and nftables DNAT routes back out of it). Addresses
//! are documentation ranges that exist only inside these namespaces.
//!
//! Added here: the namespaces are registered for deletion on Ctrl-C
//! ([`crate::l4::on_interrupt_delete`]), and the client may reuse ports in TIME_WAIT
//! over the whole port range (the connection-rate runs open tens of thousands).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use routing_testkit::netns;

/// The TCP port of the VIP and of every target server.
pub(crate) const PORT: u16 = 8080;

/// The topology; every namespace is deleted on drop.
#[derive(Debug)]
pub(crate) struct Topology {
    /// The shared helper's topology (dropped first: fields drop in order).
    inner: netns::Topology,
    /// The namespace names registered for deletion on interruption, forgotten once
    /// `inner` has deleted them.
    _names: Registered,
}

/// Namespace names registered with [`crate::l4::on_interrupt_delete`]; forgotten on
/// drop.
#[derive(Debug)]
struct Registered(Vec<String>);

impl Drop for Registered {
    fn drop(&mut self) {
        for n in &self.0 {
            crate::l4::forget_on_interrupt(n);
        }
    }
}

impl Topology {
    /// Builds it with `targets` target namespaces.
    pub(crate) fn new(targets: usize) -> Result<Self> {
        let inner = netns::Topology::new(targets)
            .context("could not build the veth topology (routing_testkit::netns::Topology)")?;
        let mut names = vec![
            inner.client().name().to_owned(),
            inner.lb().name().to_owned(),
            inner.switch().name().to_owned(),
        ];
        names.extend(inner.targets().iter().map(|t| t.name().to_owned()));
        for n in &names {
            crate::l4::on_interrupt_delete(n);
        }
        let t = Self {
            inner,
            _names: Registered(names),
        };
        let c = t.inner.client();
        c.sysctl("net/ipv4/tcp_tw_reuse", "1")?;
        c.sysctl("net/ipv4/ip_local_port_range", "1024 65000")?;
        Ok(t)
    }

    /// The client namespace's name.
    pub(crate) fn client_ns(&self) -> String {
        self.inner.client().name().to_owned()
    }

    /// The load-balancer namespace.
    pub(crate) fn lb(&self) -> &netns::Netns {
        self.inner.lb()
    }

    /// Attaches `lb`'s `xdp_pass` to the load balancer's veth peer (native XDP_TX
    /// out of a veth needs a program on the peer).
    pub(crate) fn prepare_native(&self, lb: &mut routing_ebpf::XdpBalancer) -> Result<()> {
        Ok(self.inner.prepare_native(lb)?)
    }

    /// The load balancer's one interface (where XDP attaches).
    pub(crate) fn lb_iface(&self) -> &'static str {
        netns::IFACE
    }

    /// Target `i`'s namespace's name.
    pub(crate) fn target_ns(&self, i: usize) -> String {
        self.inner
            .targets()
            .get(i)
            .map_or_else(String::new, |t| t.name().to_owned())
    }

    /// How many targets.
    pub(crate) fn targets(&self) -> usize {
        self.inner.targets().len()
    }

    /// Target `i`'s address (where its server listens).
    pub(crate) fn target_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.inner.target_v4(i)), PORT)
    }

    /// Every target's address.
    pub(crate) fn target_addrs(&self) -> Vec<SocketAddr> {
        (0..self.targets()).map(|i| self.target_addr(i)).collect()
    }

    /// The client's address.
    pub(crate) fn client_addr() -> IpAddr {
        IpAddr::V4(netns::CLIENT_V4)
    }

    /// The VIP with its port.
    pub(crate) fn vip() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(netns::VIP_V4), PORT)
    }
}
