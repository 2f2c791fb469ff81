//! A fleet topology for load balancers behind ECMP: a client, a router with a
//! multipath route to the VIP over several balancer namespaces, and target
//! namespaces the router reaches directly (so targets answer the client without
//! passing a balancer, as with direct server return).
//!
//! ```text
//! client 198.51.100.2 ── router ══ ECMP (L4 hash) ══ lb i 10.10.i.2 (one interface)
//!                          │
//!                          └── target j 10.20.j.2, VIP 192.0.2.1 on its loopback
//! ```
//!
//! * the router forwards, hashes multipath routes on addresses and ports
//!   (`fib_multipath_hash_policy = 1`) and has `rp_filter` off (the targets'
//!   replies come from the VIP, which it routes towards the balancers);
//! * each balancer namespace forwards, its default route and a permanent
//!   neighbour entry point at the router (so a program's FIB lookups resolve at
//!   once); a balancer sends what it forwards back out of its one interface;
//! * each target has the VIP on its loopback and a default route to the router.
//!
//! Nothing is attached: the caller loads its balancers and the targets'
//! decapsulation. Every namespace is deleted on drop.

use std::io;
use std::net::Ipv4Addr;

use crate::netns::Netns;

/// The VIP the router sends over its multipath route.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The client's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// Each namespace's interface towards the router.
pub const IFACE: &str = "eth0";

/// The namespaces; see the module docs.
#[derive(Debug)]
pub struct EcmpTopology {
    client: Netns,
    router: Netns,
    lbs: Vec<Netns>,
    targets: Vec<Netns>,
}

/// Links `a`'s `a_if` and `b`'s `b_if` with a veth pair, both up.
fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> io::Result<()> {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.ip(&["link", "set", a_if, "up"])?;
    b.ip(&["link", "set", b_if, "up"])?;
    Ok(())
}

impl EcmpTopology {
    /// Builds it with `lbs` balancer and `targets` target namespaces, the
    /// multipath route over every balancer.
    ///
    /// # Errors
    /// When a namespace, link, address, route or sysctl cannot be made (not root).
    ///
    /// ```no_run
    /// let t = routing_testkit::ecmp::EcmpTopology::new(2, 3).unwrap();
    /// assert_eq!((t.lbs().len(), t.targets().len()), (2, 3));
    /// ```
    pub fn new(lbs: usize, targets: usize) -> io::Result<Self> {
        let client = Netns::new("ec")?;
        let router = Netns::new("er")?;
        router.sysctl("net/ipv4/ip_forward", "1")?;
        router.sysctl("net/ipv4/fib_multipath_hash_policy", "1")?;
        for k in ["all", "default"] {
            router.sysctl(&format!("net/ipv4/conf/{k}/rp_filter"), "0")?;
        }
        link(&router, "rc", &client, IFACE)?;
        router.ip(&["addr", "add", "198.51.100.1/24", "dev", "rc"])?;
        client.ip(&["addr", "add", &format!("{CLIENT}/24"), "dev", IFACE])?;
        client.ip(&["route", "add", "default", "via", "198.51.100.1"])?;
        let mut t = Self {
            client,
            router,
            lbs: Vec::new(),
            targets: Vec::new(),
        };
        for i in 0..lbs {
            let ns = Netns::new(&format!("el{i}"))?;
            ns.sysctl("net/ipv4/ip_forward", "1")?;
            let rl = format!("rl{i}");
            link(&t.router, &rl, &ns, IFACE)?;
            t.router
                .ip(&["addr", "add", &format!("10.10.{i}.1/24"), "dev", &rl])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/24", Self::lb_addr(i)),
                "dev",
                IFACE,
            ])?;
            ns.ip(&["route", "add", "default", "via", &format!("10.10.{i}.1")])?;
            let mac = t.router.mac(&rl)?;
            ns.ip(&[
                "neigh",
                "replace",
                &format!("10.10.{i}.1"),
                "lladdr",
                &mac,
                "dev",
                IFACE,
                "nud",
                "permanent",
            ])?;
            t.lbs.push(ns);
        }
        for j in 0..targets {
            let ns = Netns::new(&format!("et{j}"))?;
            let rt = format!("rt{j}");
            link(&t.router, &rt, &ns, IFACE)?;
            t.router
                .ip(&["addr", "add", &format!("10.20.{j}.1/24"), "dev", &rt])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/24", Self::target_addr(j)),
                "dev",
                IFACE,
            ])?;
            ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
            ns.ip(&["route", "add", "default", "via", &format!("10.20.{j}.1")])?;
            t.targets.push(ns);
        }
        t.set_nexthops(&(0..lbs).collect::<Vec<_>>())?;
        Ok(t)
    }

    /// Balancer `i`'s address (`10.10.i.2`).
    ///
    /// ```
    /// assert_eq!(routing_testkit::ecmp::EcmpTopology::lb_addr(1).to_string(), "10.10.1.2");
    /// ```
    #[must_use]
    pub fn lb_addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 10, i as u8, 2)
    }

    /// Target `j`'s address (`10.20.j.2`).
    ///
    /// ```
    /// assert_eq!(routing_testkit::ecmp::EcmpTopology::target_addr(2).to_string(), "10.20.2.2");
    /// ```
    #[must_use]
    pub fn target_addr(j: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 20, j as u8, 2)
    }

    /// Sets the router's route to the VIP to a multipath route over the
    /// balancers `lbs` (indices), replacing the previous one: removing a nexthop
    /// live is `set_nexthops` without it.
    ///
    /// # Errors
    /// When `ip route replace` fails (an empty list, an unknown index).
    ///
    /// ```no_run
    /// # let t = routing_testkit::ecmp::EcmpTopology::new(3, 1).unwrap();
    /// t.set_nexthops(&[0, 1]).unwrap(); // lb 2 leaves
    /// ```
    pub fn set_nexthops(&self, lbs: &[usize]) -> io::Result<()> {
        let hops: Vec<String> = lbs.iter().map(|&i| Self::lb_addr(i).to_string()).collect();
        let vip = format!("{VIP}/32");
        let mut args = vec!["route", "replace", vip.as_str()];
        for h in &hops {
            args.extend(["nexthop", "via", h.as_str()]);
        }
        self.router.ip(&args).map(drop)
    }

    /// The client namespace.
    #[must_use]
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The router namespace.
    #[must_use]
    pub fn router(&self) -> &Netns {
        &self.router
    }

    /// The balancer namespaces.
    #[must_use]
    pub fn lbs(&self) -> &[Netns] {
        &self.lbs
    }

    /// The target namespaces.
    #[must_use]
    pub fn targets(&self) -> &[Netns] {
        &self.targets
    }
}
