//! The loader: load, program from a `RouteTable`, attach, read stats, test-run.

use std::collections::{HashMap as StdHashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use routing_core::{RouteTable, TcpForwarding, TcpHashOn};
use routing_ebpf_common::{
    addr_slot, global, FlowSet, NextHop, PortBits, ReplyEntry, Target, TargetCounters, VipCounters,
    VipEntry, VipState, MAX_FLOW_TARGETS, PORT_WORDS, REPLY_SLOTS, VIP_DSR_IPIP,
    VIP_HASH_SOURCE_IP, VIP_SLOTS, WAYS,
};

use crate::error::Error;
use crate::health::TargetState;
use crate::stats::{GlobalStats, Stats, TargetStats, VipStats};
use crate::tables::{family_of, free_slot, port_word, vip_key, words, SlotUse, VipInfo};

/// The XDP object, built by `build.rs` and embedded: no path is needed at run time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/routing-ebpf-xdp"));

/// Name of the load-balancing program in the object.
const PROG_LB: &str = "routing_xdp";
/// Name of the trivial program (bump a counter, XDP_PASS) in the object.
const PROG_PASS: &str = "xdp_pass";
/// The DSR target side: strips IP-in-IP outer headers.
const PROG_DECAP: &str = "xdp_decap";

/// How long a retired table buffer is left alone before it is rewritten. A packet
/// reads the active index once and then only its buffer; XDP runs last microseconds,
/// so this is a wide margin (see the crate docs, "Table updates").
pub const RETIRE_DELAY: Duration = Duration::from_millis(50);

/// How the program is attached to an interface.
///
/// ```
/// use routing_ebpf::AttachMode;
/// assert_eq!("skb".parse::<AttachMode>().unwrap(), AttachMode::Skb);
/// assert_eq!("drv".parse::<AttachMode>().unwrap(), AttachMode::Driver);
/// assert!("fast".parse::<AttachMode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Let the kernel choose (native when the driver supports it).
    #[default]
    Default,
    /// Generic XDP (`skb`): works on every interface, slower.
    Skb,
    /// Native XDP in the driver (`drv`); fails if the driver has no XDP support.
    Driver,
}

impl std::str::FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" | "auto" => Ok(Self::Default),
            "skb" | "generic" => Ok(Self::Skb),
            "drv" | "driver" | "native" => Ok(Self::Driver),
            other => Err(format!(
                "unknown XDP mode `{other}` (expected `skb`, `drv` or `default`)"
            )),
        }
    }
}

impl From<AttachMode> for XdpMode {
    fn from(m: AttachMode) -> Self {
        match m {
            AttachMode::Default => XdpMode::Default,
            AttachMode::Skb => XdpMode::Skb,
            AttachMode::Driver => XdpMode::Driver,
        }
    }
}

/// Benchmark switch compiled into the program at load time (read-only data).
///
/// Only for `BPF_PROG_TEST_RUN` measurements: [`XdpBalancer::attach`] refuses a
/// balancer loaded with anything but [`BenchMode::Off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BenchMode {
    /// Normal operation.
    #[default]
    Off,
    /// Every packet to a VIP is a new flow: the flow key's source address is
    /// varied per run (per-CPU sequence number and CPU id), so a repeated test run
    /// misses the connection table every time (and hashes to its own slot).
    NewFlow,
    /// The source address of every packet to a VIP is varied over this many
    /// distinct values, cycled per run (per-CPU sequence number modulo the count):
    /// after a warm-up of that many runs every run is an established flow out of
    /// that many. `Flows(0)` is [`BenchMode::NewFlow`].
    Flows(u32),
    /// Not the balancer: `routing_xdp` only reads the IPv4 flow-cache set of one
    /// of this many flows (cycled per run, as [`BenchMode::Flows`]) and passes —
    /// the trivial program plus the one memory access an established packet
    /// cannot avoid, to measure what that access costs at a given flow count.
    Probe(u32),
}

/// Sizes of the maps, fixed at load time.
///
/// ```
/// let o = routing_ebpf::Options::default();
/// assert_eq!(o.max_table_size, 65_537);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Most L4 services (VIPs) at once.
    pub max_vips: u32,
    /// Largest Maglev table (slots) of any service; the `MAGLEV` array holds two
    /// buffers of this size per VIP (4 bytes a slot).
    pub max_table_size: u32,
    /// Most targets at once, summed over services (ids are reused after removal);
    /// at most 2²⁴ − 1 (a flow-cache way holds the id in 24 bits), more is
    /// refused by [`XdpBalancer::load`] with [`Error::TooManyTargets`].
    pub max_targets: u32,
    /// Flows the flow cache holds (IPv4 and IPv6 each, shared by all CPUs;
    /// rounded up to a power of two sets of 8 ways, 8 bytes a flow). A new flow
    /// overwrites the oldest way of its set; replies need no entry, and an
    /// evicted flow is routed by the Maglev table again. Give it head-room: with
    /// twice as many ways as live flows about 0.8 % of them find their set full,
    /// with four times about 0.015 % (what `benches/xdp.rs` uses).
    pub conntrack_capacity: u32,
    /// New connections tracked per CPU per second (0 = no limit). Above it a new
    /// connection is still forwarded by the Maglev table but gets no flow entry,
    /// so a SYN flood cannot evict established flows faster than this.
    pub new_flow_limit: u64,
    /// Benchmark switches (see [`BenchMode`]).
    pub bench: BenchMode,
    /// Compile the program's aya-log debug events in (new flow → target, VIP
    /// without weighted targets). Off by default: then the verifier removes them and
    /// nothing is logged per packet. When on, records are read by
    /// [`XdpBalancer::flush_log`] and handed to the `log` crate (target
    /// `routing_ebpf_xdp`); install a logger to see them.
    pub debug_log: bool,
    /// Largest IP packet (outer header included) the path from the balancer to a
    /// `dsr_ipip` target carries (default 1500; values below 576 count as 576).
    /// An IPv4 packet that would exceed it once encapsulated is answered with
    /// ICMP "fragmentation needed" (next-hop MTU = this − 20), so the client's
    /// path MTU discovery lowers its segment size; an IPv6 one is dropped and
    /// counted as `dropped` (no "packet too big" generated yet).
    pub dsr_mtu: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_vips: 16,
            max_table_size: routing_core::DEFAULT_MAGLEV_SIZE,
            max_targets: 1024,
            conntrack_capacity: 262_144,
            new_flow_limit: 250_000,
            bench: BenchMode::Off,
            debug_log: false,
            dsr_mtu: 1500,
        }
    }
}

/// What the program did with a test packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `XDP_ABORTED`.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`: handed to the kernel.
    Pass,
    /// `XDP_TX`: sent back out of the ingress interface.
    Tx,
    /// `XDP_REDIRECT`: sent out of another interface.
    Redirect,
    /// Anything else.
    Other(u32),
}

impl From<u32> for Verdict {
    fn from(v: u32) -> Self {
        match v {
            0 => Self::Aborted,
            1 => Self::Drop,
            2 => Self::Pass,
            3 => Self::Tx,
            4 => Self::Redirect,
            o => Self::Other(o),
        }
    }
}

/// The result of [`XdpBalancer::test_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's verdict.
    pub verdict: Verdict,
    /// The frame as the program left it.
    pub packet: Vec<u8>,
}

/// Which program of the object a benchmark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// The load balancer.
    Balancer,
    /// The trivial program (bump a per-CPU counter, return XDP_PASS): the floor.
    Pass,
}

#[derive(Debug, Clone)]
struct TargetSlot {
    name: String,
    address: SocketAddr,
    weight: u32,
    id: u32,
}

#[derive(Debug)]
struct VipSlot {
    service: String,
    vip: SocketAddr,
    key: VipEntry,
    info: VipInfo,
    /// Its slot in `VIP_TABLE` once installed.
    table_slot: Option<u32>,
    active: u32,
    /// What each buffer of `MAGLEV` holds (target ids), mirrored.
    buffers: [Vec<u32>; 2],
    last_flip: Option<Instant>,
    /// Whether it is in `VIP_TABLE` yet (a VIP whose first table is empty too).
    installed: bool,
    targets: Vec<TargetSlot>,
    /// The table as configured (target ids by slot), before the slots of targets
    /// that are not active are handed on ([`healthy_slots`]).
    configured: Vec<u32>,
}

/// `ids` (a VIP's table) with every slot whose target is not active (per
/// `state`) given the target of the next slot, wrapping around, that is active;
/// all `u32::MAX` (no target) when none is. The flows of active targets keep
/// their slots, and every balancer with the same table and states computes the
/// same result.
fn healthy_slots(ids: &[u32], state: impl Fn(u32) -> TargetState) -> Vec<u32> {
    let active: Vec<bool> = ids
        .iter()
        .map(|&id| id != u32::MAX && state(id) == TargetState::Active)
        .collect();
    if active.iter().all(|a| *a) {
        return ids.to_vec();
    }
    let mut out = vec![u32::MAX; ids.len()];
    let mut next = u32::MAX;
    // Two passes from the end: the second sees the wrapped-around successors.
    for k in (0..ids.len()).rev().chain((0..ids.len()).rev()) {
        if active[k] {
            next = ids[k];
        }
        out[k] = next;
    }
    out
}

/// The XDP load balancer: the loaded object, its maps, and the attachment.
///
/// Load it ([`XdpBalancer::load`]), program it from a routing-core table
/// ([`XdpBalancer::apply`], again for every change — weights move atomically, open
/// connections keep their target), attach it ([`XdpBalancer::attach`]) and read
/// [`XdpBalancer::stats`]. Dropping it detaches the program.
///
/// ```no_run
/// use routing_ebpf::{AttachMode, Options, XdpBalancer};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let table = routing_core::RouteTable::from_yaml(r#"
/// backends:
///   - {name: a, address: '203.0.113.10:8080'}
///   - {name: b, address: '203.0.113.11:8080'}
/// tcp_services:
///   - {name: web, vip: '192.0.2.1:80', backends: [{name: a, weight: 3}, {name: b, weight: 1}]}
/// "#)?;
/// let mut lb = XdpBalancer::load(&Options::default())?; // needs root / CAP_BPF
/// lb.apply(&table)?;
/// lb.attach("eth0", AttachMode::Skb)?;
/// for vip in lb.stats()?.vips {
///     for t in vip.targets {
///         println!("{} {}: {} new flows", vip.name, t.name, t.new_flows);
///     }
/// }
/// # Ok(()) }
/// ```
pub struct XdpBalancer {
    ebpf: Ebpf,
    opts: Options,
    link: Option<(XdpLinkId, String)>,
    vips: Vec<Option<VipSlot>>,
    free_targets: VecDeque<u32>,
    /// `RouteTable::tcp_fingerprint` of the last table applied.
    fingerprint: Option<u64>,
    /// Mirror of `VIP_TABLE`.
    vip_table: Vec<SlotUse>,
    /// Mirror of `REPLY_TABLE`.
    reply_table: Vec<SlotUse>,
    /// Target address → (its `REPLY_TABLE` slot, the VIP its replies become).
    /// Entries of removed targets stay (their flows drain) until the slot is needed.
    replies: StdHashMap<SocketAddr, (u32, SocketAddr)>,
    /// Union of every VIP / target port ever programmed (mirrors the program's
    /// `PORT_BITS`, its `.bss`).
    port_bits: Box<PortBits>,
    /// Target states set by [`XdpBalancer::set_target_state`], by backend name
    /// (absent = active); written to `TARGET_HEALTH` for every id of that name.
    states: StdHashMap<String, TargetState>,
    nr_cpus: usize,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

impl std::fmt::Debug for XdpBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpBalancer")
            .field("options", &self.opts)
            .field("attached_to", &self.attached_to())
            .field(
                "vips",
                &self
                    .vips
                    .iter()
                    .flatten()
                    .map(|v| v.vip)
                    .collect::<Vec<_>>(),
            )
            .field("debug_log", &self.logger.is_some())
            .finish_non_exhaustive()
    }
}

impl XdpBalancer {
    /// Loads the embedded object into the kernel (verifier included) with the given
    /// map sizes. Nothing is attached yet; [`XdpBalancer::test_run`] works already.
    ///
    /// # Errors
    /// [`Error::Load`] / [`Error::Program`] when the kernel refuses (no root or
    /// `CAP_BPF`+`CAP_NET_ADMIN`, verifier rejection, memory).
    ///
    /// ```no_run
    /// let lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// assert!(lb.attached_to().is_none());
    /// ```
    pub fn load(opts: &Options) -> Result<Self, Error> {
        let (bench, flows): (u32, u32) = match opts.bench {
            BenchMode::Off => (0, 0),
            BenchMode::NewFlow => (2, 0),
            BenchMode::Flows(n) => (2, n),
            BenchMode::Probe(n) => (4, n),
        };
        let maglev = u64::from(opts.max_vips) * 2 * u64::from(opts.max_table_size);
        let maglev = u32::try_from(maglev).map_err(|_| Error::TooManyVips {
            count: opts.max_vips as usize,
            max: u32::MAX / 2 / opts.max_table_size.max(1),
        })?;
        let debug = u32::from(opts.debug_log);
        // A flow-cache way holds a target id in `WAY_ID_BITS` bits.
        if opts.max_targets > MAX_FLOW_TARGETS {
            return Err(Error::TooManyTargets {
                count: opts.max_targets as usize,
                max: MAX_FLOW_TARGETS,
            });
        }
        let sets = (opts.conntrack_capacity / WAYS as u32)
            .max(1)
            .next_power_of_two();
        let set_mask = sets - 1;
        let cache_entries = sets;
        let dsr_mtu = opts.dsr_mtu.max(576);
        let mut loader = EbpfLoader::new();
        loader
            .override_global("BENCH", &bench, true)
            .override_global("BENCH_FLOWS", &flows, true)
            .override_global("NEW_FLOW_LIMIT", &opts.new_flow_limit, true)
            .override_global("DEBUG", &debug, true)
            .override_global("DSR_MTU", &dsr_mtu, true)
            .map_max_entries("VIP_STATE", opts.max_vips.max(1))
            .map_max_entries("VIP_STATS", opts.max_vips.max(1))
            .map_max_entries("DSR_SOURCE", opts.max_vips.max(1))
            .map_max_entries("MAGLEV", maglev.max(1))
            .map_max_entries("TARGETS", opts.max_targets.max(1))
            .map_max_entries("NEXT_HOPS", opts.max_targets.max(1))
            .map_max_entries("TARGET_STATS", opts.max_targets.max(1))
            .map_max_entries("TARGET_HEALTH", opts.max_targets.max(1))
            .map_max_entries("FLOW_CACHE4", cache_entries)
            .map_max_entries("FLOW_CACHE6", cache_entries)
            .override_global("FLOW_SET_MASK", &set_mask, true);
        let mut ebpf = loader.load(OBJECT)?;
        for name in [PROG_LB, PROG_PASS, PROG_DECAP] {
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(Error::Missing("program"))?
                .try_into()?;
            prog.load()?;
        }
        let logger = if opts.debug_log {
            Some(aya_log::EbpfLogger::init(&mut ebpf).map_err(|e| Error::Log(e.to_string()))?)
        } else {
            None
        };
        let nr_cpus = aya::util::nr_cpus().map_err(|(_, e)| Error::Map(e.into()))?;
        Ok(Self {
            ebpf,
            opts: opts.clone(),
            link: None,
            vips: (0..opts.max_vips).map(|_| None).collect(),
            free_targets: (0..opts.max_targets).collect(),
            fingerprint: None,
            vip_table: vec![SlotUse::Empty; VIP_SLOTS as usize],
            reply_table: vec![SlotUse::Empty; REPLY_SLOTS as usize],
            replies: StdHashMap::new(),
            port_bits: Box::new(PortBits {
                vip: [0; PORT_WORDS],
                target: [0; PORT_WORDS],
            }),
            states: StdHashMap::new(),
            nr_cpus,
            logger,
        })
    }

    /// The options it was loaded with.
    ///
    /// ```no_run
    /// # let lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// assert_eq!(lb.options().max_vips, 16);
    /// ```
    #[must_use]
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Attaches the balancer to `iface` (in the calling thread's network namespace).
    ///
    /// # Errors
    /// [`Error::Attach`] if already attached or loaded in a [`BenchMode`];
    /// [`Error::Program`] if the interface does not exist or refuses the mode.
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// lb.attach("eth0", routing_ebpf::AttachMode::Driver).unwrap();
    /// assert_eq!(lb.attached_to(), Some("eth0"));
    /// ```
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<(), Error> {
        if self.link.is_some() {
            return Err(Error::Attach("already attached; detach first"));
        }
        if self.opts.bench != BenchMode::Off {
            return Err(Error::Attach("loaded in a benchmark mode"));
        }
        let prog = self.xdp(PROG_LB)?;
        let id = prog.attach(iface, mode.into())?;
        self.link = Some((id, iface.to_owned()));
        Ok(())
    }

    /// Attaches the trivial `xdp_pass` program of the object to `iface`. Used to give
    /// a veth peer the NAPI context that XDP_TX into it needs; the attachment lives
    /// as long as the balancer (or until the interface goes away).
    ///
    /// # Errors
    /// [`Error::Program`] if the interface does not exist or refuses the mode.
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// lb.attach_pass("veth1", routing_ebpf::AttachMode::Default).unwrap();
    /// ```
    pub fn attach_pass(&mut self, iface: &str, mode: AttachMode) -> Result<(), Error> {
        let prog = self.xdp(PROG_PASS)?;
        prog.attach(iface, mode.into())?;
        Ok(())
    }

    /// Attaches the object's `xdp_decap` program to `iface`: the target side of
    /// `forwarding: dsr_ipip` for hosts without an `ipip` / `ip6tnl` device. It
    /// strips the outer IPv4 (protocol 4) or IPv6 (next header 41) header and passes
    /// the inner packet, addressed to the VIP (which the host has on its loopback),
    /// to the kernel; other packets pass unchanged. The attachment lives as long as
    /// the balancer value.
    ///
    /// # Errors
    /// [`Error::Program`] if the interface does not exist or refuses the mode.
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// lb.attach_decap("eth0", routing_ebpf::AttachMode::Skb).unwrap();
    /// ```
    pub fn attach_decap(&mut self, iface: &str, mode: AttachMode) -> Result<(), Error> {
        let prog = self.xdp(PROG_DECAP)?;
        prog.attach(iface, mode.into())?;
        Ok(())
    }

    /// Reads the program's pending aya-log records (only with
    /// [`Options::debug_log`]) and hands them to the `log` crate. Call it
    /// periodically (e.g. with every stats print), or poll [`XdpBalancer::log_fd`].
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options { debug_log: true, ..Default::default() }).unwrap();
    /// lb.flush_log();
    /// ```
    pub fn flush_log(&mut self) {
        if let Some(l) = self.logger.as_mut() {
            l.flush();
        }
    }

    /// The file descriptor that becomes readable when log records are pending
    /// (with [`Options::debug_log`]).
    ///
    /// ```no_run
    /// # let lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// assert!(lb.log_fd().is_none());
    /// ```
    #[must_use]
    pub fn log_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.logger.as_ref().map(|l| l.as_fd())
    }

    /// The interface the balancer is attached to.
    ///
    /// ```no_run
    /// # let lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// assert_eq!(lb.attached_to(), None);
    /// ```
    #[must_use]
    pub fn attached_to(&self) -> Option<&str> {
        self.link.as_ref().map(|(_, i)| i.as_str())
    }

    /// Detaches the balancer (also done on drop). A no-op when not attached.
    ///
    /// # Errors
    /// [`Error::Program`] when the kernel refuses.
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// lb.detach().unwrap();
    /// ```
    pub fn detach(&mut self) -> Result<(), Error> {
        if let Some((id, _)) = self.link.take() {
            self.xdp(PROG_LB)?.detach(id)?;
        }
        Ok(())
    }

    fn xdp(&mut self, name: &'static str) -> Result<&mut Xdp, Error> {
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or(Error::Missing(name))?
            .try_into()?)
    }

    fn array<V: aya::Pod>(&mut self, name: &'static str) -> Result<Array<&mut MapData, V>, Error> {
        Ok(Array::try_from(
            self.ebpf.map_mut(name).ok_or(Error::Missing(name))?,
        )?)
    }

    fn per_cpu<V: aya::Pod>(&self, name: &'static str) -> Result<PerCpuArray<&MapData, V>, Error> {
        Ok(PerCpuArray::try_from(
            self.ebpf.map(name).ok_or(Error::Missing(name))?,
        )?)
    }

    /// Programs every L4 service of `table`: VIPs, targets, Maglev tables
    /// (`TcpService::maglev`, the same table routing-core routes with). Call it
    /// again with a new table to change weights or membership live: each VIP's
    /// table flips atomically, established connections keep their target (also a
    /// removed one, until their flow-cache way is overwritten), removed VIPs stop
    /// matching (their packets pass to the kernel).
    ///
    /// Validation happens before any map is touched: on error nothing changed.
    ///
    /// # Errors
    /// [`Error::TooManyVips`], [`Error::TooManyTargets`], [`Error::TableTooLarge`],
    /// [`Error::NoAddress`], [`Error::FamilyMismatch`]; [`Error::Map`] if a map
    /// update fails half way (then call `apply` again).
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// let t = routing_core::RouteTable::from_yaml(
    ///     "backends: [{name: a, address: '203.0.113.10:80'}]\n\
    ///      tcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a}]}]").unwrap();
    /// lb.apply(&t).unwrap();
    /// ```
    pub fn apply(&mut self, table: &RouteTable) -> Result<(), Error> {
        // --- validate, and compute the desired state -----------------------------
        let services = table.tcp_services();
        if services.len() > self.opts.max_vips as usize {
            return Err(Error::TooManyVips {
                count: services.len(),
                max: self.opts.max_vips,
            });
        }
        struct Want {
            service: String,
            vip: SocketAddr,
            flags: u32,
            dsr_source: Option<std::net::IpAddr>,
            targets: Vec<(String, SocketAddr, u32)>,
            slots: Vec<u32>,
        }
        let mut wants = Vec::with_capacity(services.len());
        for svc in services {
            let slots = svc.maglev().slots();
            if slots.len() > self.opts.max_table_size as usize {
                return Err(Error::TableTooLarge {
                    service: svc.name().into(),
                    size: slots.len(),
                    max: self.opts.max_table_size,
                });
            }
            let mut targets = Vec::new();
            for wb in svc.forward().backends() {
                let b = table.backend(wb.id());
                let address = b.address().ok_or_else(|| Error::NoAddress {
                    service: svc.name().into(),
                    target: b.name().into(),
                })?;
                if family_of(address.ip()) != family_of(svc.vip().ip()) {
                    return Err(Error::FamilyMismatch {
                        service: svc.name().into(),
                        vip: svc.vip(),
                        target: b.name().into(),
                        address,
                    });
                }
                targets.push((b.name().to_owned(), address, wb.weight()));
            }
            wants.push(Want {
                service: svc.name().into(),
                vip: svc.vip(),
                flags: match svc.hash_on() {
                    TcpHashOn::SourceIp => VIP_HASH_SOURCE_IP,
                    TcpHashOn::FiveTuple => 0,
                } | match svc.forwarding() {
                    TcpForwarding::DsrIpip => VIP_DSR_IPIP,
                    TcpForwarding::Dnat => 0,
                },
                dsr_source: svc.dsr_source(),
                targets,
                slots: slots.to_vec(),
            });
        }
        // Replies are translated statelessly: a target address serves one VIP.
        let mut serves: StdHashMap<SocketAddr, SocketAddr> = StdHashMap::new();
        for w in &wants {
            for t in &w.targets {
                if let Some(&other) = serves.get(&t.1) {
                    if other != w.vip {
                        return Err(Error::SharedTarget {
                            address: t.1,
                            first: other,
                            second: w.vip,
                        });
                    }
                }
                serves.insert(t.1, w.vip);
            }
        }
        // Target ids: kept for an unchanged (vip, name, address), new ones otherwise.
        let mut keep: StdHashMap<(SocketAddr, String, SocketAddr), u32> = StdHashMap::new();
        for slot in self.vips.iter().flatten() {
            for t in &slot.targets {
                keep.insert((slot.vip, t.name.clone(), t.address), t.id);
            }
        }
        let needed_new = wants
            .iter()
            .flat_map(|w| w.targets.iter().map(move |t| (w.vip, t.0.clone(), t.1)))
            .filter(|k| !keep.contains_key(k))
            .count();
        if needed_new > self.free_targets.len() {
            let total = wants.iter().map(|w| w.targets.len()).sum();
            return Err(Error::TooManyTargets {
                count: total,
                max: self.opts.max_targets,
            });
        }

        // --- targets --------------------------------------------------------------
        let mut used = std::collections::HashSet::new();
        let mut fresh = std::collections::HashSet::new();
        let mut plans = Vec::with_capacity(wants.len());
        for w in wants {
            let mut targets = Vec::with_capacity(w.targets.len());
            for (name, address, weight) in w.targets {
                let k = (w.vip, name.clone(), address);
                let id = match keep.get(&k) {
                    Some(&id) => id,
                    None => {
                        let id = self.free_targets.pop_front().ok_or(Error::TooManyTargets {
                            count: 0,
                            max: self.opts.max_targets,
                        })?;
                        fresh.insert(id);
                        keep.insert(k, id);
                        id
                    }
                };
                used.insert(id);
                targets.push(TargetSlot {
                    name,
                    address,
                    weight,
                    id,
                });
            }
            let ids: Vec<u32> = w
                .slots
                .iter()
                .map(|&i| targets.get(i as usize).map_or(u32::MAX, |t| t.id))
                .collect();
            plans.push((w.service, w.vip, w.flags, targets, ids, w.dsr_source));
        }

        // --- port prefilters. Target ports are only ever added: flows of removed
        // targets drain, and their replies must still be translated. ---------------
        let ports: Vec<(u16, Vec<u16>)> = plans
            .iter()
            .map(|p| (p.1.port(), p.3.iter().map(|t| t.address.port()).collect()))
            .collect();
        for (vip_port, target_ports) in ports {
            for port in target_ports {
                self.add_port(false, port)?;
            }
            // VIP ports: only ever added too (a stale bit costs one lookup).
            self.add_port(true, vip_port)?;
        }

        // --- VIPs: removed ones first ---------------------------------------------
        let wanted: std::collections::HashSet<SocketAddr> = plans.iter().map(|p| p.1).collect();
        for i in 0..self.vips.len() {
            let gone = matches!(&self.vips[i], Some(s) if !wanted.contains(&s.vip));
            if gone {
                if let Some(slot) = self.vips[i].take() {
                    if let Some(ts) = slot.table_slot {
                        let tomb = VipEntry {
                            proto: 0xff,
                            ..VipEntry::default()
                        };
                        self.array::<VipEntry>("VIP_TABLE")?.set(ts, tomb, 0)?;
                        self.vip_table[ts as usize] = SlotUse::Tombstone;
                    }
                }
            }
        }
        for (service, vip, flags, targets, ids, dsr_source) in plans {
            let idx =
                match self
                    .vips
                    .iter()
                    .position(|s| matches!(s, Some(s) if s.vip == vip))
                {
                    Some(i) => i,
                    None => {
                        let i = self.vips.iter().position(Option::is_none).ok_or(
                            Error::TooManyVips {
                                count: self.vips.len() + 1,
                                max: self.opts.max_vips,
                            },
                        )?;
                        self.zero_vip_stats(i as u32)?;
                        self.vips[i] = Some(VipSlot {
                            service: service.clone(),
                            vip,
                            key: vip_key(vip),
                            table_slot: None,
                            info: VipInfo {
                                index: i as u32,
                                flags,
                            },
                            // Starts "on" buffer 1 so the first table goes into buffer 0.
                            active: 1,
                            buffers: [Vec::new(), Vec::new()],
                            last_flip: None,
                            installed: false,
                            targets: Vec::new(),
                            configured: Vec::new(),
                        });
                        i
                    }
                };
            for t in &targets {
                if fresh.contains(&t.id) {
                    let state = self.target_state(&t.name);
                    self.array::<u32>("TARGET_HEALTH")?
                        .set(t.id, state.code(), 0)?;
                    self.write_target(t.id, t.address, idx as u32)?;
                }
            }
            // DSR: replies never pass the balancer, so none are translated; the
            // outer source is written before the VIP entry that enables it.
            if let Some(src) = dsr_source {
                self.array::<[u32; 4]>("DSR_SOURCE")?
                    .set(idx as u32, words(src), 0)?;
            } else {
                for t in &targets {
                    self.write_reply(t.address, vip, idx as u32, &serves)?;
                }
            }
            let healthy = healthy_slots(&ids, |id| self.state_of(&targets, id));
            if let Some(slot) = self.vips[idx].as_mut() {
                slot.configured = ids;
            }
            self.program_vip(idx, service, flags, targets, healthy)?;
        }

        // --- release ids no VIP uses any more (draining flows keep their address) --
        for id in keep.into_values() {
            if !used.contains(&id) && !self.free_targets.contains(&id) {
                self.free_targets.push_back(id);
            }
        }
        self.fingerprint = Some(table.tcp_fingerprint());
        Ok(())
    }

    /// The [`RouteTable::tcp_fingerprint`] of the table last applied in full
    /// (`None` before the first [`XdpBalancer::apply`]). Load balancers of one
    /// fleet behind ECMP that show the same value steer every flow — including a
    /// mid-flow packet that reaches a node without state for it — to the same
    /// target: the Maglev tables depend on the set of services and backends, not on
    /// their order in the configuration.
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// # let table = routing_core::RouteTable::from_yaml("").unwrap();
    /// lb.apply(&table).unwrap();
    /// assert_eq!(lb.fingerprint(), Some(table.tcp_fingerprint()));
    /// ```
    #[must_use]
    pub fn fingerprint(&self) -> Option<u64> {
        self.fingerprint
    }

    /// Sets the datapath state of the target (backend) `name`, in every VIP it
    /// serves, at once: [`TargetState::Draining`] keeps its established flows and
    /// gives it no new one; [`TargetState::Down`] gives it no new flow and
    /// re-picks its established ones at their next packet. Either way the VIP's
    /// Maglev table is rewritten with each of its slots handed to the target of
    /// the next slot that is active (flows of active targets stay; balancers with
    /// the same config and states agree; the flip waits for [`RETIRE_DELAY`] like
    /// any table change). With no active target left the VIP drops new flows
    /// (counted in [`VipStats::dropped`]). The state outlives
    /// [`XdpBalancer::apply`] (a name that is not programmed yet gets it when it
    /// is) and shows in [`XdpBalancer::stats`]. Weight 0 is unrelated: a target of
    /// weight 0 has no slot, so it gets no new flows whatever its state. This is
    /// the hook for external health (a health checker, EndpointSlice conditions).
    /// Returns how many programmed targets changed.
    ///
    /// # Errors
    /// [`Error::Map`] when the map write fails.
    ///
    /// ```no_run
    /// use routing_ebpf::{TargetState, XdpBalancer};
    /// # let mut lb = XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// lb.set_target_state("target-1", TargetState::Draining).unwrap();
    /// assert_eq!(lb.target_state("target-1"), TargetState::Draining);
    /// ```
    pub fn set_target_state(&mut self, name: &str, state: TargetState) -> Result<usize, Error> {
        if state == TargetState::Active {
            self.states.remove(name);
        } else {
            self.states.insert(name.to_owned(), state);
        }
        let mut ids = Vec::new();
        for idx in 0..self.vips.len() {
            let Some(v) = self.vips[idx].as_ref() else {
                continue;
            };
            let mine: Vec<u32> = v
                .targets
                .iter()
                .filter(|t| t.name == name)
                .map(|t| t.id)
                .collect();
            if mine.is_empty() {
                continue;
            }
            ids.extend(mine);
            // The table first (no new flow for it), then the state (its
            // established flows re-picked, from that table, when it is down).
            let healthy = healthy_slots(&v.configured, |id| self.state_of(&v.targets, id));
            let (service, flags, targets) = (v.service.clone(), v.info.flags, v.targets.clone());
            self.program_vip(idx, service, flags, targets, healthy)?;
        }
        let mut map = self.array::<u32>("TARGET_HEALTH")?;
        for &id in &ids {
            map.set(id, state.code(), 0)?;
        }
        Ok(ids.len())
    }

    /// The state of target id `id` among `targets`.
    fn state_of(&self, targets: &[TargetSlot], id: u32) -> TargetState {
        targets
            .iter()
            .find(|t| t.id == id)
            .map_or(TargetState::Active, |t| self.target_state(&t.name))
    }

    /// The state last set for the target `name` ([`TargetState::Active`] unless
    /// [`XdpBalancer::set_target_state`] said otherwise).
    ///
    /// ```no_run
    /// # let lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// assert_eq!(lb.target_state("any"), routing_ebpf::TargetState::Active);
    /// ```
    #[must_use]
    pub fn target_state(&self, name: &str) -> TargetState {
        self.states.get(name).copied().unwrap_or_default()
    }

    /// Adds `port` to the VIP (`vip`) or target port bitmap of `PORT_BITS`: the
    /// program's `.bss`, written whole when a bit is new (bits are never cleared,
    /// so a packet reading it meanwhile sees each word old or new).
    fn add_port(&mut self, vip: bool, port: u16) -> Result<(), Error> {
        let bits = if vip {
            &mut self.port_bits.vip
        } else {
            &mut self.port_bits.target
        };
        let p = usize::from(port);
        let (word, bit) = (p >> 6, 1u64 << (p & 63));
        if bits[word] & bit == 0 {
            bits[word] |= bit;
            let value = *self.port_bits;
            self.array::<PortBits>(".bss")?.set(0, value, 0)?;
        }
        Ok(())
    }

    /// Points replies from `target` at `vip` in `REPLY_TABLE` (a no-op when it
    /// already does). When no slot is free within the probe distance, entries of
    /// targets no longer configured (`serves` names the configured ones) are
    /// deleted first.
    fn write_reply(
        &mut self,
        target: SocketAddr,
        vip: SocketAddr,
        index: u32,
        serves: &StdHashMap<SocketAddr, SocketAddr>,
    ) -> Result<(), Error> {
        let entry = ReplyEntry {
            taddr: words(target.ip()),
            tport: port_word(target.port()),
            family: family_of(target.ip()),
            _pad0: 0,
            vaddr: words(vip.ip()),
            vport: port_word(vip.port()),
            _pad1: 0,
            vip: index,
            _pad2: 0,
        };
        let slot = match self.replies.get(&target) {
            Some(&(_, v)) if v == vip => {
                // Same VIP; the index may differ only if the VIP was re-added.
                let (slot, _) = self.replies[&target];
                self.array::<ReplyEntry>("REPLY_TABLE")?
                    .set(slot, entry, 0)?;
                return Ok(());
            }
            Some(&(slot, _)) => slot,
            None => {
                let start = addr_slot(&entry.taddr, entry.tport, REPLY_SLOTS - 1);
                match free_slot(&self.reply_table, start) {
                    Some(s) => s,
                    None => {
                        let stale: Vec<(SocketAddr, u32)> = self
                            .replies
                            .iter()
                            .filter(|(t, _)| !serves.contains_key(t))
                            .map(|(t, &(s, _))| (*t, s))
                            .collect();
                        for (t, s) in stale {
                            let tomb = ReplyEntry {
                                family: 0xff,
                                ..ReplyEntry::default()
                            };
                            self.array::<ReplyEntry>("REPLY_TABLE")?.set(s, tomb, 0)?;
                            self.reply_table[s as usize] = SlotUse::Tombstone;
                            self.replies.remove(&t);
                        }
                        free_slot(&self.reply_table, start)
                            .ok_or(Error::TableFull("REPLY_TABLE"))?
                    }
                }
            }
        };
        self.array::<ReplyEntry>("REPLY_TABLE")?
            .set(slot, entry, 0)?;
        self.reply_table[slot as usize] = SlotUse::Used;
        self.replies.insert(target, (slot, vip));
        Ok(())
    }

    fn write_target(&mut self, id: u32, address: SocketAddr, vip: u32) -> Result<(), Error> {
        let t = Target {
            addr: words(address.ip()),
            port: port_word(address.port()),
            family: family_of(address.ip()),
            _pad: 0,
            vip,
        };
        self.array::<Target>("TARGETS")?.set(id, t, 0)?;
        // Resolved again by the program at the next packet.
        self.array::<NextHop>("NEXT_HOPS")?
            .set(id, NextHop::default(), 0)?;
        let n = self.nr_cpus;
        let mut stats: PerCpuArray<&mut MapData, TargetCounters> = PerCpuArray::try_from(
            self.ebpf
                .map_mut("TARGET_STATS")
                .ok_or(Error::Missing("TARGET_STATS"))?,
        )?;
        stats.set(
            id,
            aya::maps::PerCpuValues::try_from(vec![TargetCounters::default(); n])
                .map_err(aya::maps::MapError::IoError)?,
            0,
        )?;
        Ok(())
    }

    fn zero_vip_stats(&mut self, index: u32) -> Result<(), Error> {
        let n = self.nr_cpus;
        let mut stats: PerCpuArray<&mut MapData, VipCounters> = PerCpuArray::try_from(
            self.ebpf
                .map_mut("VIP_STATS")
                .ok_or(Error::Missing("VIP_STATS"))?,
        )?;
        stats.set(
            index,
            aya::maps::PerCpuValues::try_from(vec![VipCounters::default(); n])
                .map_err(aya::maps::MapError::IoError)?,
            0,
        )?;
        Ok(())
    }

    fn program_vip(
        &mut self,
        idx: usize,
        service: String,
        flags: u32,
        targets: Vec<TargetSlot>,
        ids: Vec<u32>,
    ) -> Result<(), Error> {
        let size = self.opts.max_table_size;
        let Some(slot) = self.vips[idx].as_mut() else {
            return Err(Error::Missing("VIP slot"));
        };
        slot.service = service;
        slot.targets = targets;
        // A VIP not yet in `VIPS` gets its state written even if its table is empty:
        // its index may have belonged to a removed VIP.
        let first = !slot.installed;
        let flags_changed = slot.info.flags != flags || first;
        slot.info.flags = flags;
        let active = slot.active as usize;
        let table_changed = slot.buffers[active] != ids || first;
        let key = slot.key;
        let info = slot.info;
        if table_changed {
            let next = 1 - active;
            if let Some(t) = slot.last_flip {
                let since = t.elapsed();
                if since < RETIRE_DELAY {
                    std::thread::sleep(RETIRE_DELAY - since);
                }
            }
            let base = |b: usize| (idx as u32 * 2 + b as u32) * size;
            let old = std::mem::take(&mut slot.buffers[next]);
            let mut maglev = Array::<&mut MapData, u32>::try_from(
                self.ebpf
                    .map_mut("MAGLEV")
                    .ok_or(Error::Missing("MAGLEV"))?,
            )?;
            for (k, &id) in ids.iter().enumerate() {
                if old.get(k) != Some(&id) {
                    maglev.set(base(next) + k as u32, id, 0)?;
                }
            }
            let Some(slot) = self.vips[idx].as_mut() else {
                return Err(Error::Missing("VIP slot"));
            };
            let mut sizes = [0u32; 2];
            sizes[active] = slot.buffers[active].len() as u32;
            sizes[next] = ids.len() as u32;
            let state = VipState {
                active: next as u32,
                size: sizes,
                base: [base(0), base(1)],
                _pad: 0,
            };
            slot.buffers[next] = ids;
            slot.active = next as u32;
            slot.last_flip = Some(Instant::now());
            self.array::<VipState>("VIP_STATE")?
                .set(idx as u32, state, 0)?;
        }
        if table_changed || flags_changed {
            let entry = VipEntry {
                index: info.index,
                flags: info.flags,
                ..key
            };
            let ts = match self.vips[idx].as_ref().and_then(|s| s.table_slot) {
                Some(ts) => ts,
                None => free_slot(
                    &self.vip_table,
                    addr_slot(&key.addr, key.port, VIP_SLOTS - 1),
                )
                .ok_or(Error::TableFull("VIP_TABLE"))?,
            };
            self.array::<VipEntry>("VIP_TABLE")?.set(ts, entry, 0)?;
            self.vip_table[ts as usize] = SlotUse::Used;
            if let Some(slot) = self.vips[idx].as_mut() {
                slot.installed = true;
                slot.table_slot = Some(ts);
            }
        }
        Ok(())
    }

    /// Reads the per-CPU counters, summed, with the names of the current
    /// configuration.
    ///
    /// # Errors
    /// [`Error::Map`] when a map cannot be read.
    ///
    /// ```no_run
    /// # let lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// let s = lb.stats().unwrap();
    /// println!("{} packets were not for a VIP", s.global.not_vip);
    /// ```
    pub fn stats(&self) -> Result<Stats, Error> {
        let tstats = self.per_cpu::<TargetCounters>("TARGET_STATS")?;
        let vstats = self.per_cpu::<VipCounters>("VIP_STATS")?;
        let gstats = self.per_cpu::<u64>("GLOBAL_STATS")?;
        let mut vips = Vec::new();
        for slot in self.vips.iter().flatten() {
            let mut v = VipStats {
                name: slot.service.clone(),
                vip: slot.vip,
                forwarded: 0,
                replies: 0,
                passed: 0,
                dropped: 0,
                parse_failures: 0,
                targets: Vec::new(),
            };
            for c in vstats.get(&slot.info.index, 0)?.iter() {
                v.forwarded += c.forwarded;
                v.replies += c.replies;
                v.passed += c.passed;
                v.dropped += c.dropped;
                v.parse_failures += c.parse_failures;
            }
            for t in &slot.targets {
                let mut ts = TargetStats {
                    name: t.name.clone(),
                    address: t.address,
                    weight: t.weight,
                    packets: 0,
                    bytes: 0,
                    new_flows: 0,
                    state: self.target_state(&t.name),
                };
                for c in tstats.get(&t.id, 0)?.iter() {
                    ts.packets += c.packets;
                    ts.bytes += c.bytes;
                    ts.new_flows += c.new_flows;
                }
                v.targets.push(ts);
            }
            vips.push(v);
        }
        let g = |i: u32| -> Result<u64, Error> { Ok(gstats.get(&i, 0)?.iter().sum()) };
        Ok(Stats {
            vips,
            global: GlobalStats {
                not_ip: g(global::NOT_IP)?,
                not_tcp: g(global::NOT_TCP)?,
                not_vip: g(global::NOT_VIP)?,
                fragments: g(global::FRAGMENT)?,
                parse_failures: g(global::PARSE_FAILURE)?,
                too_deep: g(global::TOO_DEEP)?,
                untracked: g(global::UNTRACKED)?,
                ah: g(global::AH)?,
            },
        })
    }

    /// Runs the balancer once on `packet` with `BPF_PROG_TEST_RUN` (maps are real:
    /// a SYN creates a flow-cache entry). The ingress interface is the calling
    /// thread's network namespace's loopback unless `ingress_ifindex` is given; the
    /// next-hop lookup (`bpf_fib_lookup`) happens in that namespace too.
    ///
    /// # Errors
    /// [`Error::Program`] when the kernel refuses the run.
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// let frame = routing_testkit::packet::TcpPacket::syn(
    ///     "198.51.100.2:40000".parse().unwrap(), "192.0.2.1:80".parse().unwrap()).build();
    /// let out = lb.test_run(&frame, None).unwrap();
    /// println!("{:?}", out.verdict);
    /// ```
    pub fn test_run(
        &mut self,
        packet: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<TestRunOutput, Error> {
        let mut out = vec![0u8; packet.len() + 256];
        let ctx = xdp_md(packet.len(), ingress_ifindex);
        let prog = self.xdp(PROG_LB)?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(packet);
        opts.data_out = Some(&mut out);
        if ingress_ifindex.is_some() {
            opts.ctx_in = Some(&ctx);
        }
        let r = prog.test_run(opts)?;
        out.truncate(r.data_size_out as usize);
        Ok(TestRunOutput {
            verdict: Verdict::from(r.return_value),
            packet: out,
        })
    }

    /// Runs `program` `repeat` times on `packet` in the kernel and returns the
    /// verdict of the runs and the kernel-measured mean time per run.
    ///
    /// The kernel reuses one buffer for all runs and the balancer rewrites packets
    /// in place: a packet to a VIP takes the same path on every run only if the
    /// rewrite leaves it unchanged (a target whose address is the VIP itself), and
    /// a new flow on every run only with [`BenchMode::NewFlow`]. The benchmark in
    /// `benches/xdp.rs` does both and checks the counters afterwards.
    ///
    /// # Errors
    /// [`Error::Program`] when the kernel refuses the run.
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// let frame = routing_testkit::packet::TcpPacket::syn(
    ///     "198.51.100.2:40000".parse().unwrap(), "203.0.113.1:22".parse().unwrap()).build();
    /// let (_verdict, per_run) = lb.bench_run(routing_ebpf::Program::Pass, &frame, 1_000_000, None).unwrap();
    /// println!("{per_run:?}");
    /// ```
    pub fn bench_run(
        &mut self,
        program: Program,
        packet: &[u8],
        repeat: u32,
        ingress_ifindex: Option<u32>,
    ) -> Result<(Verdict, Duration), Error> {
        let name = match program {
            Program::Balancer => PROG_LB,
            Program::Pass => PROG_PASS,
        };
        let ctx = xdp_md(packet.len(), ingress_ifindex);
        let mut out = vec![0u8; packet.len() + 256];
        let prog = self.xdp(name)?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(packet);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat;
        if ingress_ifindex.is_some() {
            opts.ctx_in = Some(&ctx);
        }
        let r = prog.test_run(opts)?;
        Ok((Verdict::from(r.return_value), r.duration))
    }

    /// Number of flows cached (reads every set: for tests and diagnostics, not
    /// for a hot loop).
    ///
    /// # Errors
    /// [`Error::Map`] when the map cannot be read.
    ///
    /// ```no_run
    /// # let lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// assert_eq!(lb.conntrack_len().unwrap(), 0);
    /// ```
    pub fn conntrack_len(&self) -> Result<usize, Error> {
        let m4: Array<&MapData, FlowSet> = Array::try_from(
            self.ebpf
                .map("FLOW_CACHE4")
                .ok_or(Error::Missing("FLOW_CACHE4"))?,
        )?;
        let m6: Array<&MapData, FlowSet> = Array::try_from(
            self.ebpf
                .map("FLOW_CACHE6")
                .ok_or(Error::Missing("FLOW_CACHE6"))?,
        )?;
        let mut n = 0;
        for set in m4.iter() {
            n += set?.ways.iter().filter(|&&w| w != 0).count();
        }
        for set in m6.iter() {
            n += set?.ways.iter().filter(|&&w| w != 0).count();
        }
        Ok(n)
    }

    /// Forgets every target's cached next hop (interface and MACs): the program
    /// resolves it again (`bpf_fib_lookup`) at the next packet to that target. Call
    /// it when neighbours or routes change — e.g. periodically, or from a netlink
    /// neighbour-event listener; targets written by [`XdpBalancer::apply`] start
    /// unresolved anyway.
    ///
    /// # Errors
    /// [`Error::Map`] when the map cannot be written.
    ///
    /// ```no_run
    /// # let mut lb = routing_ebpf::XdpBalancer::load(&routing_ebpf::Options::default()).unwrap();
    /// lb.refresh_next_hops().unwrap();
    /// ```
    pub fn refresh_next_hops(&mut self) -> Result<(), Error> {
        let ids: Vec<u32> = self
            .vips
            .iter()
            .flatten()
            .flat_map(|v| v.targets.iter().map(|t| t.id))
            .collect();
        let mut m = self.array::<NextHop>("NEXT_HOPS")?;
        for id in ids {
            m.set(id, NextHop::default(), 0)?;
        }
        Ok(())
    }
}

/// `struct xdp_md` for a test run: data = 0, data_end = len, ingress ifindex.
fn xdp_md(len: usize, ingress_ifindex: Option<u32>) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ingress_ifindex.unwrap_or(0).to_ne_bytes());
    ctx
}

impl Drop for XdpBalancer {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::{healthy_slots, TargetState};

    #[test]
    fn slots_of_targets_not_active_go_to_the_next_active_slot() {
        let state = |id: u32| match id {
            1 => TargetState::Draining,
            2 => TargetState::Down,
            _ => TargetState::Active,
        };
        assert_eq!(healthy_slots(&[0, 3, 0], state), vec![0, 3, 0]);
        assert_eq!(healthy_slots(&[1, 0, 2, 3, 2], state), vec![0, 0, 3, 3, 0]);
        // Wraps around; empty slots (u32::MAX) are handed on too.
        assert_eq!(healthy_slots(&[3, u32::MAX, 1], state), vec![3, 3, 3]);
        assert_eq!(healthy_slots(&[1, 2], state), vec![u32::MAX, u32::MAX]);
    }

    /// On a real Maglev table, a draining target's slots are spread over the
    /// others in proportion to their weights (neighbouring slots are unrelated).
    #[test]
    fn handed_on_slots_follow_the_weights() {
        let t = routing_core::MaglevTable::build(&[("a", 1), ("b", 1), ("c", 1), ("d", 2)], 65_537)
            .expect("table");
        let ids: Vec<u32> = t.slots().to_vec();
        let out = healthy_slots(&ids, |id| {
            if id == 1 {
                TargetState::Draining
            } else {
                TargetState::Active
            }
        });
        let mut counts = [0usize; 4];
        for &id in &out {
            counts[id as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        let n = out.len() as f64;
        for (i, want) in [(0, 0.25), (2, 0.25), (3, 0.5)] {
            let share = counts[i] as f64 / n;
            assert!(
                (share - want).abs() < 0.02,
                "target {i}: {share} (want {want})"
            );
        }
    }
}
