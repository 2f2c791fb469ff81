//! Network-namespace topologies for tests, benchmarks and demos.
//!
//! **Shared module**: the end-to-end tests of routing-ebpf and routing-cli,
//! `cargo xtask demo` and the nftables baseline all build their test networks with
//! it, so its API is kept stable. Everything needs root (`CAP_SYS_ADMIN` + `CAP_NET_ADMIN`) and `ip` from
//! iproute2.
//!
//! * [`Netns`]: a named network namespace (`ip netns add`), deleted on drop, with
//!   [`Netns::run`] to run code inside it (a thread that `setns`es into it: sockets
//!   created there belong to the namespace, wherever they are used later).
//! * [`Topology`]: a client, a load-balancer and `n` target namespaces, all on one
//!   bridge (in a fifth, "switch" namespace), addressed from the documentation
//!   ranges only — see the constants. Dropping it deletes every namespace, which
//!   also removes the veth pairs, the bridge and any XDP program attached there;
//!   this happens on panic too (drop runs during unwinding).
//! * [`NameServer`]: a TCP server in a target namespace that answers every
//!   connection with its name and a newline, then echoes what it receives.
//!
//! Names are unique per process (`rt<pid>x<seq><role>`), so parallel tests and
//! parallel processes do not collide.
//!
//! ```no_run
//! use routing_testkit::netns::{Topology, NameServer};
//! # fn main() -> std::io::Result<()> {
//! let topo = Topology::new(2)?; // needs root
//! let servers: Vec<NameServer> = topo.start_servers(8080)?;
//! let name = topo.client().run(|| {
//!     use std::io::BufRead;
//!     let s = std::net::TcpStream::connect((topo.target_v4(0), 8080))?;
//!     let mut line = String::new();
//!     std::io::BufReader::new(s).read_line(&mut line)?;
//!     Ok::<_, std::io::Error>(line)
//! })??;
//! assert_eq!(name.trim(), "target-0");
//! # drop(servers); Ok(()) }
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The client's IPv4 address (198.51.100.0/24, TEST-NET-2).
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The load balancer's address on the client side.
pub const LB_CLIENT_SIDE_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The load balancer's address on the target side (203.0.113.0/24, TEST-NET-3);
/// the targets' default gateway.
pub const LB_TARGET_SIDE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The IPv4 VIP the client routes through the load balancer (192.0.2.0/24, TEST-NET-1).
pub const VIP_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The client's IPv6 address (2001:db8::/32).
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2);
/// The load balancer's IPv6 address on the client side.
pub const LB_CLIENT_SIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
/// The load balancer's IPv6 address on the target side.
pub const LB_TARGET_SIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xd, 0, 0, 0, 0, 1);
/// The IPv6 VIP.
pub const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 1);
/// Name of the interface inside the client, load-balancer and target namespaces.
pub const IFACE: &str = "eth0";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Whether the process runs as root (effective uid 0): what every function here
/// needs. Tests that need root are `#[ignore = "needs root"]` instead of checking it.
///
/// ```
/// let _root: bool = routing_testkit::netns::is_root();
/// ```
#[must_use]
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// The MAC address of target `i` in [`Netns::test_run_bed`] (`02:aa:00:00:00:i`).
///
/// ```
/// assert_eq!(routing_testkit::netns::test_run_target_mac(10), [2, 0xaa, 0, 0, 0, 10]);
/// ```
#[must_use]
pub fn test_run_target_mac(i: u8) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, 0, i]
}

impl Netns {
    /// Creates `rt<pid>x<seq><role>` with its loopback up.
    ///
    /// # Errors
    /// When `ip netns add` fails (not root, no iproute2).
    ///
    /// ```no_run
    /// let ns = routing_testkit::netns::Netns::new("lb").unwrap();
    /// assert!(ns.name().ends_with("lb"));
    /// ```
    pub fn new(role: &str) -> io::Result<Self> {
        let name = format!(
            "rt{}x{}{role}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The bed `BPF_PROG_TEST_RUN` tests of the load balancer run in: a namespace
    /// `role` with forwarding on and a veth `d0` (peer `d1` up) carrying the targets'
    /// subnets (`203.0.113.1/24`, `2001:db8:d::1/64`) and routes to the clients'
    /// (`198.51.100.0/24`, `2001:db8:c::/64`), with permanent neighbours so the
    /// program's FIB lookups resolve: targets `203.0.113.{10,11,12}` and
    /// `2001:db8:d::{a,b,c}` at [`test_run_target_mac`]`(10 + i)`, clients
    /// `198.51.100.2` and `2001:db8:c::2` at `02:cc:00:00:00:01`. Returns it and the
    /// ifindex of `d0`.
    ///
    /// # Errors
    /// When a namespace, link, address, route or neighbour cannot be made (not root).
    ///
    /// ```no_run
    /// let (ns, d0) = routing_testkit::netns::Netns::test_run_bed("tr").unwrap();
    /// assert!(d0 > 0 && ns.name().ends_with("tr"));
    /// ```
    pub fn test_run_bed(role: &str) -> io::Result<(Self, u32)> {
        let ns = Self::new(role)?;
        ns.sysctl("net/ipv4/ip_forward", "1")?;
        ns.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        // No `dummy` driver on every kernel: a veth pair does as well.
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])?;
        ns.ip(&["link", "set", "d1", "up"])?;
        ns.ip(&["addr", "add", "203.0.113.1/24", "dev", "d0"])?;
        ns.ip(&[
            "-6",
            "addr",
            "add",
            "2001:db8:d::1/64",
            "dev",
            "d0",
            "nodad",
        ])?;
        ns.ip(&["link", "set", "d0", "up"])?;
        ns.ip(&["route", "add", "198.51.100.0/24", "dev", "d0"])?;
        ns.ip(&["-6", "route", "add", "2001:db8:c::/64", "dev", "d0"])?;
        let targets = [
            ("203.0.113.10", "2001:db8:d::a"),
            ("203.0.113.11", "2001:db8:d::b"),
            ("203.0.113.12", "2001:db8:d::c"),
        ];
        let mut neighbours = Vec::new();
        for (i, (v4, v6)) in (10u8..).zip(targets) {
            let m = test_run_target_mac(i);
            let mac = format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            );
            neighbours.push((v4, mac.clone()));
            neighbours.push((v6, mac));
        }
        for client in ["198.51.100.2", "2001:db8:c::2"] {
            neighbours.push((client, "02:cc:00:00:00:01".to_owned()));
        }
        for (addr, mac) in &neighbours {
            ns.ip(&[
                "neigh",
                "replace",
                addr,
                "lladdr",
                mac,
                "dev",
                "d0",
                "nud",
                "permanent",
            ])?;
        }
        let ifindex = ns.ifindex("d0")?;
        Ok((ns, ifindex))
    }

    /// Its name (as `ip netns` knows it).
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("x").unwrap();
    /// println!("{}", ns.name());
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <name> <args>` and returns its standard output.
    ///
    /// # Errors
    /// When `ip` fails; the error carries its stderr.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("x").unwrap();
    /// ns.ip(&["addr", "add", "192.0.2.7/24", "dev", "lo"]).unwrap();
    /// ```
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Writes a sysctl inside the namespace, e.g. `("net/ipv4/ip_forward", "1")`.
    ///
    /// # Errors
    /// When the file cannot be written.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("x").unwrap();
    /// ns.sysctl("net/ipv4/ip_forward", "1").unwrap();
    /// ```
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let path = format!("/proc/sys/{key}");
        let value = value.to_owned();
        self.run(move || std::fs::write(&path, value))?
    }

    /// Runs `f` on a thread that has entered the namespace and returns its result.
    /// Sockets `f` creates stay in the namespace.
    ///
    /// # Errors
    /// When the namespace cannot be entered. A panic in `f` is resumed.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("x").unwrap();
    /// let l = ns.run(|| std::net::TcpListener::bind("127.0.0.1:0")).unwrap().unwrap();
    /// ```
    pub fn run<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> io::Result<T> {
        let file = File::open(format!("/run/netns/{}", self.name))?;
        std::thread::scope(|s| {
            let h = s.spawn(move || -> io::Result<T> {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(io::Error::from)?;
                Ok(f())
            });
            match h.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }

    /// Spawns a detached thread inside the namespace.
    ///
    /// # Errors
    /// When the namespace file cannot be opened.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("x").unwrap();
    /// let h = ns.spawn(|| { /* serve */ }).unwrap();
    /// h.join().unwrap();
    /// ```
    pub fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) -> io::Result<JoinHandle<()>> {
        let file = File::open(format!("/run/netns/{}", self.name))?;
        Ok(std::thread::spawn(move || {
            if nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).is_ok() {
                f();
            }
        }))
    }

    /// The MAC address of `iface` in this namespace.
    ///
    /// # Errors
    /// When `ip` fails or prints no address.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("x").unwrap();
    /// println!("{}", ns.mac("lo").unwrap());
    /// ```
    pub fn mac(&self, iface: &str) -> io::Result<String> {
        let out = self.ip(&["-o", "link", "show", "dev", iface])?;
        out.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_owned)
            .ok_or_else(|| io::Error::other(format!("no MAC for {iface} in {}", self.name)))
    }

    /// The interface index of `iface` in this namespace.
    ///
    /// # Errors
    /// When `ip` fails.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("x").unwrap();
    /// assert_eq!(ns.ifindex("lo").unwrap(), 1);
    /// ```
    pub fn ifindex(&self, iface: &str) -> io::Result<u32> {
        let out = self.ip(&["-o", "link", "show", "dev", iface])?;
        out.split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("no ifindex for {iface}")))
    }

    /// Turns an ethtool feature of `iface` on or off (`ETHTOOL_S*` ioctl; no
    /// `ethtool` binary needed). See [`Offload`].
    ///
    /// # Errors
    /// When the ioctl fails.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("x").unwrap();
    /// ns.set_offload("lo", routing_testkit::netns::Offload::Gro, true).unwrap();
    /// ```
    pub fn set_offload(&self, iface: &str, what: Offload, on: bool) -> io::Result<()> {
        let iface = iface.to_owned();
        self.run(move || ethtool_set(&iface, what as u32, u32::from(on)))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Interface features [`Netns::set_offload`] switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Offload {
    /// Transmit checksum offload (`ETHTOOL_STXCSUM`). Off on veth senders whose
    /// packets an XDP program rewrites: a partial (offloaded) checksum cannot be
    /// updated incrementally, and XDP_TX drops the offload state.
    TxChecksum = 0x17,
    /// Generic receive offload (`ETHTOOL_SGRO`). On for a veth whose peer XDP_TXes
    /// or redirects into it: it gives the veth the NAPI context `ndo_xdp_xmit` needs.
    Gro = 0x2c,
}

#[allow(unsafe_code)]
fn ethtool_set(iface: &str, cmd: u32, data: u32) -> io::Result<()> {
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    if iface.len() >= 16 {
        return Err(io::Error::other("interface name too long"));
    }
    let mut value = EthtoolValue { cmd, data };
    let mut req = IfReq {
        name: [0; 16],
        data: &mut value,
        _pad: [0; 16],
    };
    req.name[..iface.len()].copy_from_slice(iface.as_bytes());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")
        .or_else(|_| std::net::UdpSocket::bind("[::1]:0"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: `req` is a valid `struct ifreq` (name + pointer to a live
    // `struct ethtool_value`) for the duration of the call; the socket is open.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Five namespaces on one bridge: a client, a load balancer, `n` targets, and the
/// switch that holds the bridge. See the module docs for addresses and routes.
///
/// * client `eth0`: 198.51.100.2/24, 2001:db8:c::2/64; routes 192.0.2.0/24 and
///   2001:db8:f::/64 (the VIPs) via the load balancer;
/// * load balancer `eth0`: 198.51.100.1/24, 203.0.113.1/24, 2001:db8:c::1/64,
///   2001:db8:d::1/64; forwarding on, ICMP redirects off; permanent neighbour
///   entries for every target, so the XDP program's FIB lookup resolves at once
///   (its veth peer in the switch is `plb`);
/// * target `i` `eth0`: 203.0.113.(10+i)/24, 2001:db8:d::(10+i)/64 (hex), default
///   routes via the load balancer, so replies pass through it;
/// * client and targets have transmit checksum offload off (see [`Offload`]).
///
/// For native (driver) mode call `Topology::prepare_native` (feature `ebpf`): a frame sent with
/// XDP_TX from a veth in native mode reaches the peer only if the peer has an XDP
/// program (on this project's 6.18 kernel, switching GRO on was not enough).
#[derive(Debug)]
pub struct Topology {
    // Field order = drop order: the ends first, the switch (bridge) last.
    client: Netns,
    lb: Netns,
    targets: Vec<Netns>,
    switch: Netns,
}

impl Topology {
    /// Builds the topology with `targets` target namespaces (at most 200).
    ///
    /// # Errors
    /// When any `ip` command fails (everything created so far is deleted).
    ///
    /// ```no_run
    /// let topo = routing_testkit::netns::Topology::new(2).unwrap();
    /// assert_eq!(topo.targets().len(), 2);
    /// ```
    pub fn new(targets: usize) -> io::Result<Self> {
        if targets > 200 {
            return Err(io::Error::other("at most 200 targets"));
        }
        let switch = Netns::new("sw")?;
        let client = Netns::new("cl")?;
        let lb = Netns::new("lb")?;
        let mut ts = Vec::with_capacity(targets);
        for i in 0..targets {
            ts.push(Netns::new(&format!("t{i}"))?);
        }
        let topo = Self {
            client,
            lb,
            targets: ts,
            switch,
        };
        topo.wire()?;
        Ok(topo)
    }

    fn wire(&self) -> io::Result<()> {
        let sw = &self.switch;
        sw.ip(&["link", "add", "br0", "type", "bridge"])?;
        sw.ip(&["link", "set", "br0", "up"])?;
        let mut ends: Vec<(&Netns, String)> =
            vec![(&self.client, "pc".into()), (&self.lb, "plb".into())];
        for (i, t) in self.targets.iter().enumerate() {
            ends.push((t, format!("pt{i}")));
        }
        for (ns, peer) in &ends {
            run(Command::new("ip").args([
                "link",
                "add",
                IFACE,
                "netns",
                ns.name(),
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                sw.name(),
            ]))?;
            sw.ip(&["link", "set", peer, "master", "br0"])?;
            sw.ip(&["link", "set", peer, "up"])?;
        }

        let c = &self.client;
        c.ip(&["addr", "add", "198.51.100.2/24", "dev", IFACE])?;
        c.ip(&[
            "-6",
            "addr",
            "add",
            "2001:db8:c::2/64",
            "dev",
            IFACE,
            "nodad",
        ])?;
        c.ip(&["link", "set", IFACE, "up"])?;
        c.ip(&["route", "add", "192.0.2.0/24", "via", "198.51.100.1"])?;
        c.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:f::/64",
            "via",
            "2001:db8:c::1",
        ])?;
        c.set_offload(IFACE, Offload::TxChecksum, false)?;

        let lb = &self.lb;
        for a in ["198.51.100.1/24", "203.0.113.1/24"] {
            lb.ip(&["addr", "add", a, "dev", IFACE])?;
        }
        for a in ["2001:db8:c::1/64", "2001:db8:d::1/64"] {
            lb.ip(&["-6", "addr", "add", a, "dev", IFACE, "nodad"])?;
        }
        lb.ip(&["link", "set", IFACE, "up"])?;
        lb.sysctl("net/ipv4/ip_forward", "1")?;
        lb.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        lb.sysctl("net/ipv4/conf/all/send_redirects", "0")?;
        lb.sysctl(&format!("net/ipv4/conf/{IFACE}/send_redirects"), "0")?;

        for (i, t) in self.targets.iter().enumerate() {
            let v4 = format!("{}/24", self.target_v4(i));
            let v6 = format!("{}/64", self.target_v6(i));
            t.ip(&["addr", "add", &v4, "dev", IFACE])?;
            t.ip(&["-6", "addr", "add", &v6, "dev", IFACE, "nodad"])?;
            t.ip(&["link", "set", IFACE, "up"])?;
            t.ip(&["route", "add", "default", "via", "203.0.113.1"])?;
            t.ip(&["-6", "route", "add", "default", "via", "2001:db8:d::1"])?;
            t.set_offload(IFACE, Offload::TxChecksum, false)?;
            let mac = t.mac(IFACE)?;
            for addr in [self.target_v4(i).to_string(), self.target_v6(i).to_string()] {
                lb.ip(&[
                    "neigh",
                    "replace",
                    &addr,
                    "lladdr",
                    &mac,
                    "dev",
                    IFACE,
                    "nud",
                    "permanent",
                ])?;
            }
        }
        Ok(())
    }

    /// Attaches the balancer's trivial `xdp_pass` program to the load balancer's
    /// veth peer `plb` in the switch namespace, which native-mode XDP_TX on veth
    /// needs. Not needed for `routing_ebpf::AttachMode::Skb`. Feature `ebpf`.
    ///
    /// # Errors
    /// When the namespace cannot be entered or the attach fails.
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(1).unwrap();
    /// let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// topo.prepare_native(&mut lb).unwrap();
    /// ```
    #[cfg(feature = "ebpf")]
    pub fn prepare_native(
        &self,
        lb: &mut routing_ebpf::XdpBalancer,
    ) -> Result<(), routing_ebpf::Error> {
        self.switch
            .run(|| lb.attach_pass("plb", routing_ebpf::AttachMode::Driver))
            .map_err(|_| routing_ebpf::Error::Attach("cannot enter the switch namespace"))?
    }

    /// The client namespace.
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(1).unwrap();
    /// topo.client().run(|| ()).unwrap();
    /// ```
    #[must_use]
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The load-balancer namespace (attach the program to [`IFACE`] there, from
    /// [`Netns::run`]).
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(1).unwrap();
    /// assert!(topo.lb().ifindex(routing_testkit::netns::IFACE).unwrap() > 1);
    /// ```
    #[must_use]
    pub fn lb(&self) -> &Netns {
        &self.lb
    }

    /// The target namespaces.
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(3).unwrap();
    /// assert_eq!(topo.targets().len(), 3);
    /// ```
    #[must_use]
    pub fn targets(&self) -> &[Netns] {
        &self.targets
    }

    /// The switch namespace holding `br0` and the peers (`pc`, `plb`, `pt<i>`).
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(1).unwrap();
    /// topo.switch().ip(&["link", "show", "br0"]).unwrap();
    /// ```
    #[must_use]
    pub fn switch(&self) -> &Netns {
        &self.switch
    }

    /// IPv4 address of target `i`: 203.0.113.(10+i).
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(1).unwrap();
    /// assert_eq!(topo.target_v4(0).to_string(), "203.0.113.10");
    /// ```
    #[must_use]
    pub fn target_v4(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(203, 0, 113, 10 + i as u8)
    }

    /// IPv6 address of target `i`: 2001:db8:d::(10+i), the last group in hex.
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(1).unwrap();
    /// assert_eq!(topo.target_v6(0).to_string(), "2001:db8:d::a");
    /// ```
    #[must_use]
    pub fn target_v6(&self, i: usize) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0xd, 0, 0, 0, 0, 10 + i as u16)
    }

    /// Starts a [`NameServer`] on `port` (IPv4 and IPv6) in every target
    /// namespace; target `i` answers `target-<i>`.
    ///
    /// # Errors
    /// When a namespace cannot be entered or the port cannot be bound.
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(2).unwrap();
    /// let servers = topo.start_servers(8080).unwrap();
    /// assert_eq!(servers[1].name(), "target-1");
    /// ```
    pub fn start_servers(&self, port: u16) -> io::Result<Vec<NameServer>> {
        self.targets
            .iter()
            .enumerate()
            .map(|(i, t)| NameServer::start(t, &format!("target-{i}"), port))
            .collect()
    }

    /// Connects from the client namespace to `addr` (2 s timeout) and returns the
    /// stream; it can be used from any thread.
    ///
    /// # Errors
    /// When the connection fails or times out.
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(1).unwrap();
    /// let s = topo.connect((routing_testkit::netns::VIP_V4, 80).into()).unwrap();
    /// ```
    pub fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        self.client
            .run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))?
    }

    /// Connects from the client namespace and reads the server's first line
    /// (its name), then closes.
    ///
    /// # Errors
    /// When the connection or the read fails (2 s timeouts).
    ///
    /// ```no_run
    /// # let topo = routing_testkit::netns::Topology::new(1).unwrap();
    /// let name = topo.ask_name((routing_testkit::netns::VIP_V4, 80).into()).unwrap();
    /// ```
    pub fn ask_name(&self, addr: SocketAddr) -> io::Result<String> {
        let s = self.connect(addr)?;
        read_name(&s)
    }
}

/// Reads one line (a [`NameServer`]'s greeting) from `s`, 2 s timeout.
///
/// # Errors
/// On timeout, reset, or EOF before a line.
///
/// ```no_run
/// # let s: std::net::TcpStream = unimplemented!();
/// let name = routing_testkit::netns::read_name(&s).unwrap();
/// ```
pub fn read_name(s: &TcpStream) -> io::Result<String> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    if !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no greeting"));
    }
    line.pop();
    Ok(line)
}

/// A TCP server in a namespace: answers each connection with `<name>\n`, then
/// echoes everything it receives until the peer closes. Stops on drop.
#[derive(Debug)]
pub struct NameServer {
    name: String,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NameServer {
    /// Starts listening on `[::]:port` (dual stack) inside `ns`.
    ///
    /// # Errors
    /// When the namespace cannot be entered or the port is taken.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("t").unwrap();
    /// let s = routing_testkit::netns::NameServer::start(&ns, "alpha", 9000).unwrap();
    /// assert_eq!(s.name(), "alpha");
    /// ```
    pub fn start(ns: &Netns, name: &str, port: u16) -> io::Result<Self> {
        let listener = ns.run(move || -> io::Result<TcpListener> {
            let l = TcpListener::bind((IpAddr::from(Ipv6Addr::UNSPECIFIED), port))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })??;
        let stop = Arc::new(AtomicBool::new(false));
        let greeting = format!("{name}\n");
        let stop2 = Arc::clone(&stop);
        let accept = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let g = greeting.clone();
                        let stop3 = Arc::clone(&stop2);
                        std::thread::spawn(move || serve(s, &g, &stop3));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Ok(Self {
            name: name.to_owned(),
            stop,
            threads: vec![accept],
        })
    }

    /// The name it answers with.
    ///
    /// ```no_run
    /// # let ns = routing_testkit::netns::Netns::new("t").unwrap();
    /// # let s = routing_testkit::netns::NameServer::start(&ns, "alpha", 9000).unwrap();
    /// assert_eq!(s.name(), "alpha");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn serve(mut s: TcpStream, greeting: &str, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_nodelay(true);
    if s.write_all(greeting.as_bytes()).is_err() {
        return;
    }
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
