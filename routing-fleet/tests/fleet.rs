//! Fleet rollouts against real pieces: three `fleet-replica` processes on their
//! own 127.77.x.y addresses following a loopback Kubernetes API server
//! (routing-testkit's `KubeApi`, driven by kube-rs), scraped every second by a real
//! Prometheus started here (temp data dir, stopped after), and the controller
//! electing itself through a Lease on that API server.

use std::convert::Infallible;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use routing_fleet::{
    FleetMetrics, FleetRollout, HttpRouteWeights, Prometheus, Round, STEP_ANNOTATION,
};
use routing_kube::LeaseLock;
use routing_rollout::{
    Checks, RolloutEventKind, RolloutPlan, RolloutPlanSpec, RolloutState, RolloutTarget,
};
use routing_testkit::kubeapi::KubeApi;
use routing_testkit::prometheus::Prometheus as Prom;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const ROUTES: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/web/httproutes";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/web/endpointslices";
const STABLE: &str = "shop-v1:8080";
const CANDIDATE: &str = "shop-v2:8080";

/// Fails (never passes without testing) when Prometheus is missing: `cargo xtask
/// setup` installs it.
macro_rules! need_prometheus {
    () => {
        assert!(
            routing_testkit::prometheus::Prometheus::binary().is_some(),
            "no prometheus binary: run `cargo xtask setup` (it installs the Debian package `prometheus`)"
        );
    };
}

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Prometheus on 127.0.0.1 (routing-testkit's), scraping `targets` every second,
/// once every target has been scraped successfully at least twice.
async fn start_prometheus(targets: &[SocketAddr]) -> Prom {
    let prom = Prom::start("fleet", targets).expect("start prometheus");
    let client = Prometheus::new(prom.url()).expect("url");
    // Ready when every target has been scraped successfully at least twice.
    let want = targets.len() as f64;
    for _ in 0..150 {
        let scraped = client
            .sum(
                "sum(count_over_time(up{job=\"fleet\"}[1m]) >= 2 and up{job=\"fleet\"} == 1)",
                None,
            )
            .await;
        let up = client.sum("count(up{job=\"fleet\"} == 1)", None).await;
        if matches!((scraped, up), (Ok(a), Ok(b)) if a >= 2.0 * want && b == want) {
            return prom;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("prometheus did not scrape the {want} replicas within 15 s");
}

/// An upstream on `addr`: `name` and 200, or 500 when the request carries
/// `x-fail: 1` and `fails_on_header`.
async fn upstream(
    addr: SocketAddr,
    name: &'static str,
    fails_on_header: bool,
) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.expect("bind upstream");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper::service::service_fn(
                move |req: http::Request<hyper::body::Incoming>| async move {
                    let fail = fails_on_header && req.headers().get("x-fail").is_some();
                    let mut res = http::Response::new(Full::new(Bytes::from(name)));
                    if fail {
                        *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    Ok::<_, Infallible>(res)
                },
            );
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

fn route(stable: u64, candidate: u64) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "shop", "namespace": "web"},
           "spec": {"rules": [{"name": "main", "backendRefs": [
               {"name": "shop-v1", "port": 8080, "weight": stable},
               {"name": "shop-v2", "port": 8080, "weight": candidate}]}]}})
}

fn slice(svc: &str, ip: &str) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{svc}-a"), "namespace": "web",
                        "labels": {"kubernetes.io/service-name": svc}},
           "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
           "endpoints": [{"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}}]})
}

fn kube_client(api: &KubeApi) -> kube::Client {
    let uri: http::Uri = api.url().parse().expect("url");
    let mut cfg = kube::Config::new(uri);
    cfg.default_namespace = "web".into();
    kube::Client::try_from(cfg).expect("client")
}

fn spawn_replica(api: &KubeApi, addr: SocketAddr) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-replica"))
        .args([
            "--listen",
            &addr.to_string(),
            "--kube",
            &api.url(),
            "--namespace",
            "web",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn replica");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    assert!(
        line.starts_with("ready"),
        "replica {addr} did not start: {line:?}"
    );
    Proc(child)
}

/// One fleet: API server, two upstreams, three replicas, Prometheus.
struct Fleet {
    api: KubeApi,
    replicas: Vec<(SocketAddr, Option<Proc>)>,
    prom: Prom,
    _upstreams: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// `net` picks the 127.77.`net`.0/24 addresses of this test.
    async fn start(net: u8) -> Fleet {
        let api = KubeApi::start().await;
        let ip = |host: u8| format!("127.77.{net}.{host}");
        let upstreams = vec![
            upstream(
                format!("{}:8080", ip(1)).parse().expect("addr"),
                "v1",
                false,
            )
            .await,
            upstream(format!("{}:8080", ip(2)).parse().expect("addr"), "v2", true).await,
        ];
        api.put(ROUTES, route(10_000, 0));
        api.put(SLICES, slice("shop-v1", &ip(1)));
        api.put(SLICES, slice("shop-v2", &ip(2)));
        let mut replicas = Vec::new();
        for i in 0..3u8 {
            let addr: SocketAddr = format!("{}:{}", ip(10 + i), free_port())
                .parse()
                .expect("addr");
            replicas.push((addr, Some(spawn_replica(&api, addr))));
        }
        let targets: Vec<SocketAddr> = replicas.iter().map(|r| r.0).collect();
        let prom = start_prometheus(&targets).await;
        Fleet {
            api,
            replicas,
            prom,
            _upstreams: upstreams,
        }
    }

    fn controller(&self, identity: &str, plan: RolloutPlan, lease: Duration) -> FleetRollout {
        let client = kube_client(&self.api);
        FleetRollout::new(
            LeaseLock::new(client.clone(), "web", "shop-rollout", identity, lease),
            FleetMetrics::new(Prometheus::new(self.prom.url()).expect("url"), "fleet", 3),
            HttpRouteWeights::new(client, "web", "shop", "routing-fleet"),
            plan,
            RolloutTarget::http_rule("web/shop", "main", STABLE, CANDIDATE),
            Duration::from_secs(3),
        )
    }

    fn weights(&self) -> (u64, u64) {
        let r = self.api.object(ROUTES, "shop").expect("route");
        let refs = &r["spec"]["rules"][0]["backendRefs"];
        (
            refs[0]["weight"].as_u64().unwrap_or(0),
            refs[1]["weight"].as_u64().unwrap_or(0),
        )
    }
}

/// Sends `n` requests to each running replica (replica 0's with `x-fail: 1` when
/// `fail_on_first`); errors (a replica down) are ignored. Returns the bodies seen.
async fn traffic(fleet: &Fleet, n: usize, fail_on_first: bool) -> Vec<String> {
    let c = routing_testkit::http::client();
    let mut bodies = Vec::new();
    for (i, (addr, proc_)) in fleet.replicas.iter().enumerate() {
        if proc_.is_none() {
            continue;
        }
        for _ in 0..n {
            let mut b = http::Request::get(format!("http://{addr}/"));
            if fail_on_first && i == 0 {
                b = b.header("x-fail", "1");
            }
            let req = b.body(Full::new(Bytes::new())).expect("request");
            if let Ok(Ok(res)) = tokio::time::timeout(Duration::from_secs(2), c.request(req)).await
            {
                if let Ok(body) = res.into_body().collect().await {
                    bodies.push(String::from_utf8_lossy(&body.to_bytes()).into_owned());
                }
            }
        }
    }
    bodies
}

/// A replica's own count of `backend`'s requests of the rule, from its /metrics.
async fn replica_count(addr: SocketAddr, backend: &str) -> u64 {
    let c = routing_testkit::http::client();
    let text = routing_testkit::http::get(&c, addr, "/metrics", &[])
        .await
        .body;
    text.lines()
        .filter(|l| l.starts_with("routing_rule_backend_responses_total{"))
        // `backend` itself (a version over its endpoints) or one endpoint `backend@ip:port`.
        .filter(|l| {
            l.contains(&format!("backend=\"{backend}\""))
                || l.contains(&format!("backend=\"{backend}@"))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn plan(
    steps: Vec<f64>,
    hold: &str,
    min_requests: u64,
    max_error_rate: Option<f64>,
) -> RolloutPlan {
    RolloutPlan::try_from(RolloutPlanSpec {
        steps,
        hold: hold.parse().expect("hold"),
        max_step: Some("120s".parse().expect("max")),
        checks: Checks {
            max_error_rate,
            min_requests,
            ..Checks::default()
        },
    })
    .expect("plan")
}

fn kinds(rounds: &[Round]) -> Vec<RolloutEventKind> {
    rounds
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.kind.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_candidate_failing_on_one_replica_rolls_back_the_whole_fleet() {
    need_prometheus!();
    let fleet = Fleet::start(1).await;
    let min_requests = 40;
    let mut ctl = fleet.controller(
        "a",
        plan(vec![50.0, 100.0], "30s", min_requests, Some(0.2)),
        Duration::from_secs(5),
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut rounds = Vec::new();
    while Instant::now() < deadline {
        traffic(&fleet, 4, true).await;
        let r = ctl.round().await.expect("round");
        let done = matches!(r.state, Some(RolloutState::RolledBack { .. }));
        rounds.push(r);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let last = rounds.last().and_then(|r| r.state.clone());
    let Some(RolloutState::RolledBack { figures, .. }) = last else {
        let prom = Prometheus::new(fleet.prom.url()).expect("url");
        let raw = prom
            .query("routing_rule_backend_requests_total", None)
            .await;
        let raw2 = prom.query("{__name__=~\"routing_rule.*\"}", None).await;
        panic!(
            "not rolled back: {:?}\nlast: {:?}\nraw: {raw:?}\n{raw2:?}",
            kinds(&rounds),
            rounds.last().and_then(|r| r.snapshot.clone())
        );
    };
    assert!(figures.candidate.completed >= min_requests, "{figures:?}");
    assert!(figures.candidate.errors > 0, "{figures:?}");
    // Rolled back on the HTTPRoute: every replica converges to stable.
    assert_eq!(fleet.weights(), (10_000, 0));
    let persisted = fleet.api.object(ROUTES, "shop").expect("route")["metadata"]["annotations"]
        [STEP_ANNOTATION]
        .clone();
    assert!(
        persisted
            .as_str()
            .is_some_and(|s| s.contains("rolled_back")),
        "{persisted}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let bodies = traffic(&fleet, 20, false).await;
    assert_eq!(bodies.len(), 60);
    assert!(bodies.iter().all(|b| b == "v1"), "{bodies:?}");
    // No single replica saw min_requests candidate requests; the fleet's figures
    // never exceed what the replicas counted (no extrapolated requests).
    let mut served = 0;
    for (addr, _) in &fleet.replicas {
        let n = replica_count(*addr, CANDIDATE).await;
        assert!(
            n < min_requests,
            "replica {addr} alone saw {n} candidate requests"
        );
        served += n;
    }
    assert!(
        figures.candidate.completed <= served,
        "{figures:?} > {served} served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_low_traffic_waits() {
    need_prometheus!();
    let fleet = Fleet::start(2).await;
    let mut ctl = fleet.controller(
        "a",
        plan(vec![20.0, 100.0], "2s", 1_000, Some(0.1)),
        Duration::from_secs(5),
    );
    let mut rounds = Vec::new();
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        traffic(&fleet, 1, false).await;
        rounds.push(ctl.round().await.expect("round"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let k = kinds(&rounds);
    assert!(
        k.iter()
            .any(|e| matches!(e, RolloutEventKind::Waiting { .. })),
        "{k:?}"
    );
    assert!(
        !k.iter().any(|e| matches!(
            e,
            RolloutEventKind::StepPassed { .. } | RolloutEventKind::RolledBack { .. }
        )),
        "{k:?}"
    );
    assert_eq!(
        rounds.last().and_then(|r| r.state.clone()),
        Some(RolloutState::Running {
            step: 0,
            percent: 20.0
        })
    );
    assert_eq!(fleet.weights(), (8_000, 2_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_replica_restarted_mid_step_does_not_fake_a_verdict() {
    need_prometheus!();
    let mut fleet = Fleet::start(3).await;
    let hold = Duration::from_secs(6);
    let mut ctl = fleet.controller(
        "a",
        plan(vec![50.0, 100.0], "6s", 10, Some(0.2)),
        Duration::from_secs(5),
    );
    let start = Instant::now();
    let mut log: Vec<(Instant, Round)> = Vec::new();
    let mut killed_at = None;
    let mut restarted = false;
    while start.elapsed() < Duration::from_secs(50) {
        let t = start.elapsed();
        if t > Duration::from_secs(3) && killed_at.is_none() {
            fleet.replicas[2].1 = None; // SIGKILL
            killed_at = Some(Instant::now());
        }
        if killed_at.is_some_and(|k| k.elapsed() > Duration::from_secs(3)) && !restarted {
            let addr = fleet.replicas[2].0;
            fleet.replicas[2].1 = Some(spawn_replica(&fleet.api, addr));
            restarted = true;
        }
        traffic(&fleet, 2, false).await;
        let r = ctl.round().await.expect("round");
        let promoted = r.state == Some(RolloutState::Promoted);
        log.push((Instant::now(), r));
        if promoted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let killed_at = killed_at.expect("killed");
    let untrusted: Vec<&Instant> = log
        .iter()
        .filter(|(_, r)| r.untrusted.is_some())
        .map(|(t, _)| t)
        .collect();
    assert!(!untrusted.is_empty(), "the restart was never noticed");
    // Both signs were seen: failed scrapes while it was down, a counter reset after.
    let health: Vec<_> = log
        .iter()
        .filter_map(|(_, r)| r.snapshot.as_ref().map(|s| s.health))
        .collect();
    assert!(health.iter().any(|h| h.failed_scrapes > 0), "{health:?}");
    assert!(health.iter().any(|h| h.counter_resets > 0), "{health:?}");
    let resumed_at = log
        .iter()
        .find(|(t, r)| {
            *t > killed_at
                && r.events
                    .iter()
                    .any(|e| matches!(e.kind, RolloutEventKind::Resumed { .. }))
        })
        .map(|(t, _)| *t)
        .expect("the step's window was restarted after the replica came back");
    // No verdict between the kill and the restarted window.
    for (t, r) in &log {
        if *t >= killed_at && *t < resumed_at {
            assert!(
                !r.events.iter().any(|e| matches!(
                    e.kind,
                    RolloutEventKind::StepPassed { .. } | RolloutEventKind::RolledBack { .. }
                )),
                "a verdict during the broken window: {:?}",
                r.events
            );
        }
    }
    // The first step passes only a full hold after the window restarted.
    let passed_at = log
        .iter()
        .find(|(_, r)| {
            r.events
                .iter()
                .any(|e| matches!(e.kind, RolloutEventKind::StepPassed { .. }))
        })
        .map(|(t, _)| *t)
        .expect("step passed after the restart");
    assert!(
        passed_at >= resumed_at + hold,
        "passed {:?} after the restart",
        passed_at - resumed_at
    );
    assert!(!kinds(&log.into_iter().map(|x| x.1).collect::<Vec<_>>())
        .iter()
        .any(|e| matches!(e, RolloutEventKind::RolledBack { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_leader_failover_resumes_the_same_step() {
    need_prometheus!();
    let fleet = Fleet::start(4).await;
    let p = || plan(vec![30.0, 100.0], "12s", 5, Some(0.2));
    let lease = Duration::from_secs(2);
    let mut a = fleet.controller("a", p(), lease);
    let mut b = fleet.controller("b", p(), lease);
    let first = a.round().await.expect("a");
    assert!(first.leader);
    assert!(first
        .events
        .iter()
        .any(|e| matches!(e.kind, RolloutEventKind::StepStarted { step: 0, .. })));
    let b0 = b.round().await.expect("b");
    assert!(!b0.leader, "b must not lead while a holds the lease");
    let read = || -> Value {
        let r = fleet.api.object(ROUTES, "shop").expect("route");
        serde_json::from_str(
            r["metadata"]["annotations"][STEP_ANNOTATION]
                .as_str()
                .expect("annotation"),
        )
        .expect("json")
    };
    let before = read();
    assert_eq!(before["step"], 0);
    assert_eq!(before["holder"], "a");
    let step_started = Instant::now();
    for _ in 0..4 {
        traffic(&fleet, 2, false).await;
        assert!(a.round().await.expect("a").leader);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(a); // a crashes: no release
    let mut took_over = None;
    let mut rounds = Vec::new();
    let end = Instant::now() + Duration::from_secs(40);
    while Instant::now() < end {
        traffic(&fleet, 2, false).await;
        let r = b.round().await.expect("b");
        if r.leader && took_over.is_none() {
            took_over = Some((Instant::now(), r.resumed.clone()));
        }
        let next = r
            .events
            .iter()
            .any(|e| matches!(e.kind, RolloutEventKind::StepStarted { step: 1, .. }));
        rounds.push(r);
        if next {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (took_at, resumed) = took_over.expect("b took over");
    let resumed = resumed.expect("b resumed the persisted step");
    assert_eq!(resumed.step, 0);
    assert_eq!(resumed.holder, "a");
    assert_eq!(json!(resumed.window_start_ms), before["window_start_ms"]);
    let k = kinds(&rounds);
    assert!(
        !k.iter()
            .any(|e| matches!(e, RolloutEventKind::StepStarted { step: 0, .. })),
        "b restarted the plan: {k:?}"
    );
    assert!(
        k.iter()
            .any(|e| matches!(e, RolloutEventKind::StepStarted { step: 1, .. })),
        "b did not go on: {k:?}"
    );
    // The hold counted from a's step start, not from the takeover.
    let next_at = Instant::now();
    assert!(
        next_at < took_at + Duration::from_secs(12),
        "hold restarted at the takeover"
    );
    assert!(next_at >= step_started + Duration::from_secs(11));
    let after = read();
    assert_eq!(after["step"], 1);
    assert_eq!(after["holder"], "b");
    assert_eq!(fleet.weights(), (0, 10_000));
}

/// The queries of `examples/fleet/*.yaml` with their template variables filled in.
fn example_queries() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/fleet");
    let fill = |q: &str| {
        q.replace("{{ variables.route }}", "web/shop")
            .replace("{{ variables.rule }}", "main")
            .replace("{{ variables.candidate }}", CANDIDATE)
            .replace("{{ interval }}", "1m")
            .replace("{{args.route}}", "web/shop")
            .replace("{{args.rule}}", "main")
            .replace("{{args.candidate}}", CANDIDATE)
            .replace("{{args.window}}", "1m")
    };
    let mut out = Vec::new();
    for file in [
        "flagger-metric-templates.yaml",
        "argo-analysis-template.yaml",
    ] {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("example");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("yaml");
            let name = v["metadata"]["name"].as_str().unwrap_or("?").to_owned();
            match v["kind"].as_str() {
                Some("MetricTemplate") => out.push((
                    format!("{file}: {name}"),
                    fill(v["spec"]["query"].as_str().expect("query")),
                )),
                Some("AnalysisTemplate") => {
                    for m in v["spec"]["metrics"].as_array().expect("metrics") {
                        out.push((
                            format!("{file}: {name}/{}", m["name"].as_str().unwrap_or("?")),
                            fill(
                                m["provider"]["prometheus"]["query"]
                                    .as_str()
                                    .expect("query"),
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_flagger_and_argo_example_queries_run_on_the_fleets_prometheus() {
    need_prometheus!();
    let queries = example_queries();
    assert_eq!(queries.len(), 4, "{queries:?}");
    for (name, q) in &queries {
        assert!(
            !q.contains("{{"),
            "{name}: a template variable is left: {q}"
        );
    }
    let fleet = Fleet::start(5).await;
    // Half the rule's traffic to the candidate, which fails replica 0's share.
    fleet.api.put(ROUTES, route(1, 1));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let end = Instant::now() + Duration::from_secs(6);
    while Instant::now() < end {
        traffic(&fleet, 4, true).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let prom = Prometheus::new(fleet.prom.url()).expect("url");
    for (name, q) in &queries {
        let v = prom
            .query(q, None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.len(), 1, "{name}: one sample wanted from {q}: {v:?}");
        let x = v[0].value;
        assert!(x.is_finite() && x > 0.0, "{name}: {x}");
        // Replica 0's third of the candidate's traffic fails.
        if name.contains("error-rate") {
            let fraction = if name.starts_with("flagger") {
                x / 100.0
            } else {
                x
            };
            assert!(
                (0.2..0.5).contains(&fraction),
                "{name}: error rate {fraction}"
            );
        } else {
            let seconds = if name.starts_with("flagger") {
                x / 1000.0
            } else {
                x
            };
            assert!(seconds < 0.5, "{name}: p99 {seconds} s");
        }
    }
}
