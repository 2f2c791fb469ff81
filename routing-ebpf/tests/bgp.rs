//! The VIP announcement the crate docs recommend, run for real (root only;
//! `#[ignore = "needs root"]` otherwise): BIRD 2 (Debian's bird2, installed by
//! `cargo xtask setup`) in a router namespace and in two balancer namespaces the test
//! creates, with the example configurations of `examples/bgp/` as they are shipped
//! (only the second balancer's router id changed). The router must install one
//! route to the VIP with both balancers as equal-cost next hops; a balancer that
//! stops BIRD cleanly is withdrawn at once, and one whose link vanishes is
//! withdrawn when its hold time runs out. Every BIRD is killed and every namespace deleted after.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use routing_testkit::netns::Netns;

const VIP: &str = "192.0.2.1/32";

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/bgp")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A BIRD running in the foreground inside a namespace; killed on drop.
struct Bird {
    child: Child,
    dir: PathBuf,
}

impl Bird {
    fn start(ns: &Netns, name: &str, config: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("bird-{}-{name}", ns.name()));
        std::fs::create_dir_all(&dir).expect("bird dir");
        let conf = dir.join("bird.conf");
        std::fs::write(&conf, config).expect("bird.conf");
        let child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "bird", "-f", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(dir.join("bird.ctl"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bird starts (cargo xtask setup installs bird2)");
        Self { child, dir }
    }

    /// `birdc down`: a clean shutdown, which closes the BGP sessions (Cease).
    fn shut_down(&mut self) {
        let ok = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .arg("down")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "birdc down");
        let _ = self.child.wait();
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The next hops of the router's route to the VIP.
fn next_hops(router: &Netns) -> Vec<String> {
    let out = router.ip(&["-4", "route", "show", VIP]).unwrap_or_default();
    out.split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_owned())
        .collect()
}

/// Polls until the router's next hops are `want` (sorted), at most `limit`.
fn wait_for(router: &Netns, want: &[&str], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let mut got = next_hops(router);
        got.sort();
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "after {limit:?} the route to {VIP} goes via {got:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root"]
fn bgp_bird_announces_the_vip_and_the_router_installs_ecmp_paths() {
    let router = Netns::new("bgprt").expect("router namespace");
    let lbs = [
        Netns::new("bgplb1").expect("lb1"),
        Netns::new("bgplb2").expect("lb2"),
    ];
    // One segment: a bridge in the router namespace, a veth to each balancer.
    router
        .ip(&["link", "add", "br0", "type", "bridge"])
        .expect("bridge");
    router
        .ip(&["addr", "add", "10.0.0.1/24", "dev", "br0"])
        .expect("addr");
    router.ip(&["link", "set", "br0", "up"]).expect("up");
    for (i, lb) in lbs.iter().enumerate() {
        let port = format!("p{i}");
        router
            .ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "up0",
                "netns",
                lb.name(),
            ])
            .expect("veth");
        router
            .ip(&["link", "set", &port, "master", "br0", "up"])
            .expect("port");
        lb.ip(&[
            "addr",
            "add",
            &format!("10.0.0.{}/24", 11 + i),
            "dev",
            "up0",
        ])
        .expect("addr");
        lb.ip(&["link", "set", "up0", "up"]).expect("up");
    }
    let _rt = Bird::start(&router, "router", &example("bird-router.conf"));
    let lb_conf = example("bird-balancer.conf");
    let _lb1 = Bird::start(&lbs[0], "lb1", &lb_conf);
    let mut lb2 = Bird::start(
        &lbs[1],
        "lb2",
        &lb_conf.replace("router id 10.0.0.11;", "router id 10.0.0.12;"),
    );

    // Both announce: one route, two equal-cost next hops.
    let took = wait_for(
        &router,
        &["10.0.0.11", "10.0.0.12"],
        Duration::from_secs(30),
    );
    eprintln!("ECMP route installed after {took:?}");

    // A clean stop withdraws that balancer at once.
    lb2.shut_down();
    let took = wait_for(&router, &["10.0.0.11"], Duration::from_secs(5));
    eprintln!("stopped balancer withdrawn after {took:?}");

    // A balancer that vanishes (its link is gone: no Cease, no FIN reaches the
    // router) is withdrawn when its hold time (6 s) runs out.
    lbs[0]
        .ip(&["link", "set", "up0", "down"])
        .expect("link down");
    let took = wait_for(&router, &[], Duration::from_secs(12));
    eprintln!("dead balancer withdrawn after {took:?}");
    assert!(
        took >= Duration::from_secs(2),
        "withdrawn by the hold timer, not at once: {took:?}"
    );
}
