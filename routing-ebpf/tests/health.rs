//! Target health in the datapath and the loader's active health checks.
//!
//! Root tests (`#[ignore = "needs root"]` otherwise) run the fleet of
//! `fleet/mod.rs` with one balancer (DSR): a target whose link goes down is
//! found down by TCP checks within the fall time, gets no new connections, and
//! its established flows are re-picked (the client's next segment reaches a live
//! target, which resets it, instead of hanging); a draining target keeps its open
//! connections and gets no new ones. The checks themselves (TCP connect, HTTP
//! status, rise and fall) run against real servers on 127.0.0.1 without root.
//!
//! Bounded: every wait has a deadline, every socket a timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use routing_core::RouteTable;
use routing_ebpf::{health, HealthChecker, TargetState};

#[path = "fleet/mod.rs"]
mod fleet;
use fleet::{echo_all, open_connections, per_target, Fleet};

/// Checks every 200 ms, 100 ms each, down after 2 failures.
const CHECKS: &str = "    health_check: {interval: 200ms, timeout: 100ms, fall: 2, rise: 2}\n";

#[test]
#[ignore = "needs root"]
fn health_killed_target_gets_no_new_connections_within_fall_time_and_its_flows_are_repicked() {
    let test =
        "health_killed_target_gets_no_new_connections_within_fall_time_and_its_flows_are_repicked";
    let mut f =
        Fleet::new(1, 3, CHECKS).unwrap_or_else(|e| panic!("{test}: fleet (needs root): {e}"));
    let hc = f.table.tcp_services()[0]
        .health_check()
        .expect("health_check")
        .clone();
    // The checker's threads live in the balancer's namespace (they inherit it).
    let table = &f.table;
    let mut checker = f.topo.lbs()[0]
        .run(|| HealthChecker::start(table))
        .expect("lb netns");
    assert_eq!(checker.targets(), 3);
    let mut conns = open_connections(&f, 90);
    let spread = per_target(&conns);
    eprintln!("{test}: {spread:?}");
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert_eq!(echo_all(&mut conns, "before"), 0);

    // Kill target 2: its link goes down (a dead host: no FIN, no RST).
    f.topo.targets()[2]
        .ip(&["link", "set", "eth0", "down"])
        .expect("link down");
    let killed = Instant::now();
    let (mut on_dead, mut alive): (Vec<_>, Vec<_>) =
        conns.into_iter().partition(|(_, n)| n == "target-2");
    // Before the balancer knows, a segment of a flow on the dead target is lost.
    let (s, _) = &mut on_dead[0];
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    s.write_all(b"into the void\n").expect("write is buffered");
    let mut buf = [0u8; 64];
    let err = s.read(&mut buf).expect_err("no answer from a dead target");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "stranded, not reset: {err:?}"
    );

    // The checker reports it down within the fall time; the balancer learns it.
    let lb = f.balancers[0].as_mut().expect("lb");
    let mut down_after = None;
    while killed.elapsed() < Duration::from_secs(5) {
        for (name, state) in checker.apply(lb).expect("apply health") {
            eprintln!("{test}: {name} {state} after {:?}", killed.elapsed());
            if name == "target-2" && state == TargetState::Down {
                down_after = Some(killed.elapsed());
            }
        }
        if down_after.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let down_after = down_after.expect("target-2 reported down within 5 s");
    // fall × interval, plus the interval the first failing check may wait for,
    // plus its timeout, plus polling slack.
    let bound = hc.interval * (hc.fall + 1) + hc.timeout + Duration::from_millis(200);
    assert!(
        down_after <= bound,
        "down after {down_after:?} (bound {bound:?})"
    );
    assert_eq!(lb.target_state("target-2"), TargetState::Down);
    let stats = lb.stats().expect("stats");
    let t2 = stats.vips[0]
        .targets
        .iter()
        .find(|t| t.name == "target-2")
        .expect("target-2 stats");
    assert_eq!(t2.state, TargetState::Down);
    let picked_before: u64 = stats.vips[0].targets.iter().map(|t| t.new_flows).sum();

    // No new connection reaches it.
    let mut fresh = open_connections(&f, 90);
    let fresh_spread = per_target(&fresh);
    eprintln!("{test}: new connections while down: {fresh_spread:?}");
    assert!(!fresh_spread.contains_key("target-2"), "{fresh_spread:?}");
    assert_eq!(echo_all(&mut fresh, "fresh"), 0);
    assert_eq!(
        echo_all(&mut alive, "alive"),
        0,
        "other targets' flows stay"
    );

    // Its established flows are re-picked: the next segment goes to a live
    // target, which has no such connection and resets it (at once, not after
    // the client's retransmission timeouts run out).
    let lb = f.balancers[0].as_ref().expect("lb");
    let started = Instant::now();
    let mut reset = 0;
    for (i, (s, _)) in on_dead.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let r = s
            .write_all(format!("after {i}\n").as_bytes())
            .and_then(|()| s.read(&mut buf));
        match r {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => reset += 1,
            other => eprintln!("{test}: flow {i} on the dead target: {other:?}"),
        }
    }
    eprintln!(
        "{test}: {reset} of {} flows of the dead target reset in {:?}",
        on_dead.len(),
        started.elapsed()
    );
    assert_eq!(
        reset,
        on_dead.len(),
        "every flow of the dead target was re-picked"
    );
    let stats = lb.stats().expect("stats");
    let picked_after: u64 = stats.vips[0].targets.iter().map(|t| t.new_flows).sum();
    assert!(
        picked_after - picked_before >= 90 + on_dead.len() as u64,
        "the new connections and the re-picked flows: {picked_before} → {picked_after}"
    );
}

#[test]
#[ignore = "needs root"]
fn health_draining_target_keeps_open_connections_and_gets_no_new_ones() {
    let test = "health_draining_target_keeps_open_connections_and_gets_no_new_ones";
    let mut f = Fleet::new(1, 3, "").unwrap_or_else(|e| panic!("{test}: fleet (needs root): {e}"));
    let mut conns = open_connections(&f, 90);
    let spread = per_target(&conns);
    assert_eq!(spread.len(), 3, "{spread:?}");
    let lb = f.balancers[0].as_mut().expect("lb");
    assert_eq!(
        lb.set_target_state("target-1", TargetState::Draining)
            .expect("drain"),
        1
    );
    let packets = |lb: &routing_ebpf::XdpBalancer| {
        lb.stats().expect("stats").vips[0]
            .targets
            .iter()
            .find(|t| t.name == "target-1")
            .map(|t| (t.packets, t.state))
            .expect("target-1")
    };
    let (before, state) = packets(lb);
    assert_eq!(state, TargetState::Draining);

    // Open connections, the draining target's included, keep working.
    assert_eq!(echo_all(&mut conns, "draining"), 0, "open connections stay");
    assert_eq!(per_target(&conns), spread);
    let lb = f.balancers[0].as_ref().expect("lb");
    let (after, _) = packets(lb);
    assert!(
        after >= before + 2 * spread["target-1"] as u64,
        "the draining target still gets its flows' packets: {before} → {after}"
    );
    // New ones go elsewhere.
    let mut fresh = open_connections(&f, 90);
    let fresh_spread = per_target(&fresh);
    eprintln!("{test}: open {spread:?}, new while draining {fresh_spread:?}");
    assert!(!fresh_spread.contains_key("target-1"), "{fresh_spread:?}");
    assert_eq!(echo_all(&mut fresh, "fresh"), 0);

    // Back to active: it gets new connections again (its old slots back).
    let lb = f.balancers[0].as_mut().expect("lb");
    lb.set_target_state("target-1", TargetState::Active)
        .expect("activate");
    let again = per_target(&open_connections(&f, 90));
    assert!(again.contains_key("target-1"), "{again:?}");
}

/// A tiny HTTP/1.1 server on 127.0.0.1: `GET /ok` → 204, anything else → 503.
/// Stops (and closes its port) when the flag is set.
/// With DNAT the program translates every packet from a target's address and port
/// as a reply to a client; the target's answers to the balancer's own health checks
/// come from the same address and port. Those are addressed to the balancer itself
/// and must reach its kernel untranslated, or every check fails and the loader marks
/// every target down. Clients through the VIP keep working beside the checks.
#[test]
#[ignore = "needs root"]
fn health_checks_from_the_balancer_host_see_dnat_targets() {
    use routing_ebpf::{AttachMode, Options, XdpBalancer};
    use routing_testkit::netns::{read_name, Topology, IFACE, VIP_V4};
    let test = "health_checks_from_the_balancer_host_see_dnat_targets";
    let topo = Topology::new(2).unwrap_or_else(|e| panic!("{test}: topology (needs root): {e}"));
    let _servers = topo.start_servers(8080).expect("servers");
    let table = RouteTable::from_yaml(&format!(
        "backends:\n  - {{name: target-0, address: '{}:8080'}}\n  - {{name: target-1, address: '{}:8080'}}\n\
         tcp_services:\n  - name: web\n    vip: '{VIP_V4}:80'\n    backends: [{{name: target-0}}, {{name: target-1}}]\n{CHECKS}",
        topo.target_v4(0),
        topo.target_v4(1),
    ))
    .expect("config");
    let mut lb = topo
        .lb()
        .run(|| -> Result<XdpBalancer, routing_ebpf::Error> {
            let mut lb = XdpBalancer::load(&Options::default())?;
            lb.apply(&table)?;
            lb.attach(IFACE, AttachMode::Skb)?;
            Ok(lb)
        })
        .expect("lb netns")
        .unwrap_or_else(|e| panic!("{test}: load: {e}"));
    let mut checker = topo
        .lb()
        .run(|| HealthChecker::start(&table))
        .expect("lb netns");
    // Ten check intervals: with the answers translated, fall (2) is reached well
    // within them and both targets would be down.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        for (name, state) in checker.apply(&mut lb).expect("apply") {
            eprintln!("{test}: {name} {state} after {:?}", started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for t in ["target-0", "target-1"] {
        assert_eq!(
            checker.is_up(t),
            Some(true),
            "{t}: checks from the balancer fail"
        );
        assert_eq!(lb.target_state(t), TargetState::Active, "{t}");
    }
    // Clients through the VIP are still translated.
    let vip = SocketAddr::from((VIP_V4, 80));
    let names = topo
        .client()
        .run(move || {
            (0..40)
                .map(|i| {
                    let s = std::net::TcpStream::connect_timeout(&vip, Duration::from_secs(2))
                        .unwrap_or_else(|e| panic!("connection {i}: {e}"));
                    read_name(&s).unwrap_or_else(|e| panic!("greeting {i}: {e}"))
                })
                .collect::<Vec<_>>()
        })
        .expect("client netns");
    assert!(
        names.iter().any(|n| n == "target-0") && names.iter().any(|n| n == "target-1"),
        "{names:?}"
    );
    // And a target that dies is found down by those same checks.
    topo.targets()[1]
        .ip(&["link", "set", "eth0", "down"])
        .expect("link down");
    let killed = Instant::now();
    while lb.target_state("target-1") != TargetState::Down
        && killed.elapsed() < Duration::from_secs(5)
    {
        checker.apply(&mut lb).expect("apply");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lb.target_state("target-1"), TargetState::Down, "within 5 s");
    assert_eq!(lb.target_state("target-0"), TargetState::Active);
    drop(checker);
    drop(lb);
}

fn http_server(listener: TcpListener, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let status = if req.starts_with("GET /ok ") {
                        "204 No Content"
                    } else {
                        "503 Service Unavailable"
                    };
                    let _ = s.write_all(
                        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

fn table_for(addr: SocketAddr, check: &str) -> RouteTable {
    RouteTable::from_yaml(&format!(
        "backends: [{{name: local, address: '{addr}'}}]\ntcp_services: [{{name: web, vip: '192.0.2.1:80', backends: [{{name: local}}], health_check: {check}}}]"
    ))
    .expect("config")
}

#[test]
fn health_checks_tcp_connect_and_http_status_against_real_servers() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let server = http_server(listener, Arc::clone(&stop));
    let hc = |check: &str| {
        table_for(addr, check).tcp_services()[0]
            .health_check()
            .expect("hc")
            .clone()
    };
    assert!(health::check(addr, &hc("{}")), "TCP connect");
    assert!(health::check(
        addr,
        &hc("{http_path: /ok, expect_status: 204}")
    ));
    assert!(
        !health::check(addr, &hc("{http_path: /ok}")),
        "204 is not the expected 200"
    );
    assert!(
        !health::check(addr, &hc("{http_path: /bad, expect_status: 204}")),
        "503"
    );
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    assert!(!health::check(closed, &hc("{}")), "refused");
    // A server that accepts but never answers: the HTTP check times out.
    let mute = TcpListener::bind("127.0.0.1:0").expect("bind mute");
    let started = Instant::now();
    assert!(!health::check(
        mute.local_addr().expect("addr"),
        &hc("{http_path: /ok, timeout: 200ms}")
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    server.join().expect("server");
}

#[test]
fn health_checker_reports_down_after_fall_and_up_after_rise() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let server = http_server(listener, Arc::clone(&stop));
    let table = table_for(
        addr,
        "{http_path: /ok, expect_status: 204, interval: 50ms, timeout: 40ms, fall: 3, rise: 2}",
    );
    let mut checker = HealthChecker::start(&table);
    assert_eq!(checker.targets(), 1);
    assert_eq!(checker.is_up("local"), Some(true));
    std::thread::sleep(Duration::from_millis(300));
    assert!(checker.changes().is_empty(), "a healthy target stays up");

    // The server goes away: down after 3 failures (≈ 150 ms), reported once.
    stop.store(true, Ordering::Relaxed);
    server.join().expect("server");
    let gone = Instant::now();
    let wait = |checker: &mut HealthChecker, want: bool| {
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            let c = checker.changes();
            if !c.is_empty() {
                return c;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no change to up={want} within 3 s");
    };
    assert_eq!(wait(&mut checker, false), vec![("local".to_owned(), false)]);
    let t = gone.elapsed();
    assert!(
        t >= Duration::from_millis(100) && t < Duration::from_millis(800),
        "down after {t:?} (3 failures at 50 ms)"
    );
    assert_eq!(checker.is_up("local"), Some(false));

    // Back on the same port: up after 2 passes.
    let listener = TcpListener::bind(addr).expect("rebind");
    let stop = Arc::new(AtomicBool::new(false));
    let server = http_server(listener, Arc::clone(&stop));
    assert_eq!(wait(&mut checker, true), vec![("local".to_owned(), true)]);
    assert_eq!(checker.is_up("local"), Some(true));
    drop(checker);
    stop.store(true, Ordering::Relaxed);
    server.join().expect("server");
}
