//! Target health: the per-target state the datapath acts on
//! ([`TargetState`], set with [`XdpBalancer::set_target_state`]) and active
//! health checks run by the loader ([`HealthChecker`]).
//!
//! The checker runs one thread per checked target (TCP connect, or an HTTP
//! `GET` whose status must match), counts passed and failed checks in a row,
//! and reports a target down after `fall` failures and up again after `rise`
//! passes (`tcp_services[].health_check`). [`HealthChecker::apply`] hands the
//! changes to a balancer; any other source of health (EndpointSlice conditions,
//! an operator draining a node) calls [`XdpBalancer::set_target_state`] itself.
//!
//! ```no_run
//! use routing_ebpf::{HealthChecker, Options, XdpBalancer};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let table = routing_core::RouteTable::from_yaml(r#"
//! backends: [{name: a, address: '10.0.0.1:80'}, {name: b, address: '10.0.0.2:80'}]
//! tcp_services:
//!   - name: web
//!     vip: '192.0.2.1:80'
//!     backends: [{name: a}, {name: b}]
//!     health_check: {http_path: /healthz, interval: 1s, timeout: 300ms, fall: 2, rise: 2}
//! "#)?;
//! let mut lb = XdpBalancer::load(&Options::default())?;
//! lb.apply(&table)?;
//! let mut checker = HealthChecker::start(&table);
//! loop {
//!     for (name, state) in checker.apply(&mut lb)? {
//!         println!("{name} is now {state}");
//!     }
//!     std::thread::sleep(std::time::Duration::from_secs(1));
//! #   break;
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use routing_core::{RouteTable, TcpHealthCheck};
use routing_ebpf_common::{TARGET_ACTIVE, TARGET_DOWN, TARGET_DRAINING};

use crate::{Error, XdpBalancer};

/// A target's state in the datapath.
///
/// ```
/// use routing_ebpf::TargetState;
/// assert_eq!(TargetState::default(), TargetState::Active);
/// assert_eq!("draining".parse::<TargetState>(), Ok(TargetState::Draining));
/// assert_eq!(TargetState::Down.to_string(), "down");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TargetState {
    /// Gets new flows from the Maglev table.
    #[default]
    Active,
    /// Keeps its established flows, gets no new ones.
    Draining,
    /// Gets no new flows; its established flows are re-picked.
    Down,
}

impl TargetState {
    /// The value the datapath's `TARGET_HEALTH` array holds for it.
    pub(crate) fn code(self) -> u32 {
        match self {
            Self::Active => TARGET_ACTIVE,
            Self::Draining => TARGET_DRAINING,
            Self::Down => TARGET_DOWN,
        }
    }
}

impl std::fmt::Display for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Draining => "draining",
            Self::Down => "down",
        })
    }
}

impl std::str::FromStr for TargetState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(Self::Active),
            "draining" => Ok(Self::Draining),
            "down" => Ok(Self::Down),
            other => Err(format!(
                "unknown target state `{other}` (active, draining, down)"
            )),
        }
    }
}

/// One check of `addr`: a TCP connect, or an HTTP/1.1 `GET path` answered with
/// `expect` — all within `hc.timeout`.
///
/// ```no_run
/// # let hc = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '127.0.0.1:80'}]\ntcp_services: [{name: w, vip: '192.0.2.1:80', backends: [{name: a}], health_check: {}}]").unwrap();
/// let hc = hc.tcp_services()[0].health_check().unwrap();
/// println!("{}", routing_ebpf::health::check("127.0.0.1:80".parse().unwrap(), hc));
/// ```
#[must_use]
pub fn check(addr: SocketAddr, hc: &TcpHealthCheck) -> bool {
    let deadline = Instant::now() + hc.timeout;
    let Ok(mut s) = TcpStream::connect_timeout(&addr, hc.timeout) else {
        return false;
    };
    let Some(path) = hc.http_path.as_deref() else {
        return true;
    };
    let left = |d: Instant| {
        d.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: routing-health\r\nConnection: close\r\n\r\n"
    );
    if s.set_write_timeout(Some(left(deadline))).is_err() || s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    // The status line: "HTTP/1.x NNN ..." (at most 64 bytes are looked at).
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < buf.len() && !buf[..n].contains(&b'\n') {
        if Instant::now() >= deadline || s.set_read_timeout(Some(left(deadline))).is_err() {
            return false;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let line = String::from_utf8_lossy(&buf[..n]);
    let mut words = line.split_ascii_whitespace();
    matches!(
        (words.next(), words.next().and_then(|c| c.parse::<u16>().ok())),
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") && code == hc.expect_status
    )
}

/// Active health checks of every target of the `tcp_services` that have a
/// `health_check`, one thread per target (a target in several services is
/// checked once, with the first service's settings). Threads stop when it is
/// dropped. Threads are created in the caller's network namespace.
#[derive(Debug)]
pub struct HealthChecker {
    rx: mpsc::Receiver<(String, bool)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Whether each checked target is up, as last reported.
    up: HashMap<String, bool>,
}

impl HealthChecker {
    /// Starts checking the targets of `table`. Every target starts up; it is
    /// reported down after `fall` failed checks in a row.
    ///
    /// ```no_run
    /// # let table = routing_core::RouteTable::from_yaml("").unwrap();
    /// let checker = routing_ebpf::HealthChecker::start(&table);
    /// assert_eq!(checker.targets(), 0);
    /// ```
    #[must_use]
    pub fn start(table: &RouteTable) -> Self {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut up = HashMap::new();
        let mut threads = Vec::new();
        for svc in table.tcp_services() {
            let Some(hc) = svc.health_check() else {
                continue;
            };
            for wb in svc.forward().backends() {
                let b = table.backend(wb.id());
                let Some(addr) = b.address() else { continue };
                if up.contains_key(b.name()) {
                    continue;
                }
                up.insert(b.name().to_owned(), true);
                let (name, hc, tx, stop) = (
                    b.name().to_owned(),
                    hc.clone(),
                    tx.clone(),
                    Arc::clone(&stop),
                );
                threads.push(std::thread::spawn(move || {
                    run_checks(&name, addr, &hc, &tx, &stop);
                }));
            }
        }
        Self {
            rx,
            stop,
            threads,
            up,
        }
    }

    /// How many targets it checks.
    #[must_use]
    pub fn targets(&self) -> usize {
        self.up.len()
    }

    /// Whether `name` is up as far as the checks know (`None`: not checked).
    #[must_use]
    pub fn is_up(&self, name: &str) -> Option<bool> {
        self.up.get(name).copied()
    }

    /// The changes reported since the last call, in order: (target, now up).
    pub fn changes(&mut self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        while let Ok((name, is_up)) = self.rx.try_recv() {
            self.up.insert(name.clone(), is_up);
            out.push((name, is_up));
        }
        out
    }

    /// Applies the changes reported since the last call to `lb`: a target that
    /// went down becomes [`TargetState::Down`]; one that came up again becomes
    /// [`TargetState::Active`] — unless it is [`TargetState::Draining`], which
    /// only the operator ends. Returns the targets whose state changed.
    ///
    /// # Errors
    /// [`Error::Map`] when a map write fails.
    pub fn apply(&mut self, lb: &mut XdpBalancer) -> Result<Vec<(String, TargetState)>, Error> {
        let mut out = Vec::new();
        for (name, is_up) in self.changes() {
            let now = lb.target_state(&name);
            let next = match (now, is_up) {
                (_, false) => TargetState::Down,
                (TargetState::Down, true) => TargetState::Active,
                (s, true) => s,
            };
            if next != now {
                lb.set_target_state(&name, next)?;
                out.push((name, next));
            }
        }
        Ok(out)
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The check loop of one target: until `stop`, one check per interval; sends
/// `(name, up)` when `fall` failures or `rise` passes in a row change its state.
fn run_checks(
    name: &str,
    addr: SocketAddr,
    hc: &TcpHealthCheck,
    tx: &mpsc::Sender<(String, bool)>,
    stop: &AtomicBool,
) {
    let (mut up, mut streak) = (true, 0u32);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let ok = check(addr, hc);
        if ok == up {
            streak = 0;
        } else {
            streak += 1;
            if streak >= if up { hc.fall } else { hc.rise } {
                up = ok;
                streak = 0;
                if tx.send((name.to_owned(), up)).is_err() {
                    return;
                }
            }
        }
        // Sleep out the interval in short steps, so a drop is quick.
        let next = started + hc.interval;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(Duration::from_millis(20)));
        }
    }
}
