//! The fleet part of `cargo xtask demo` (issue 16): one rollout judged on three
//! replicas at once.
//!
//! * a loopback Kubernetes API server (routing-testkit's `KubeApi`) holds the
//!   HTTPRoute `web/shop` (`shop-v1` stable, `shop-v2` candidate) and their
//!   EndpointSlices;
//! * three `fleet-replica` processes (routing-fleet's binary: routing-kube's watcher
//!   and routing-tower's layer) on 127.77.200.10-12 follow it;
//! * a real Prometheus (`prometheus` from `cargo xtask setup`; the demo fails
//!   loudly without it) scrapes them every second, from a temp data dir;
//! * a `FleetRollout` leads through a Lease, judges the step on the fleet's sums
//!   and writes the HTTPRoute weights by server-side apply.
//!
//! The candidate fails only for the traffic of replica 0; no replica alone reaches
//! the plan's `min_requests`, yet the fleet's window does, and the rollout is
//! rolled back for every replica. Checked (PASS/FAIL); bounded by [`DEADLINE`].

use std::convert::Infallible;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use routing_fleet::{FleetMetrics, FleetRollout, HttpRouteWeights, Prometheus};
use routing_kube::LeaseLock;
use routing_rollout::{Checks, RolloutPlan, RolloutPlanSpec, RolloutState, RolloutTarget};
use routing_testkit::kubeapi::KubeApi;
use routing_testkit::prometheus::Prometheus as TestProm;
use serde_json::json;

/// The whole fleet part must end within this.
const DEADLINE: Duration = Duration::from_secs(60);
/// Candidate requests the fleet's window needs before a verdict.
const MIN_REQUESTS: u64 = 40;
const ROUTES: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/web/httproutes";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/web/endpointslices";

/// A child process killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds routing-fleet's `fleet-replica` and returns its path.
fn replica_binary() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = crate::workspace_root();
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "routing-fleet",
            "--bin",
            "fleet-replica",
        ])
        .current_dir(&root)
        .status()
        .context("cargo build -p routing-fleet --bin fleet-replica")?;
    ensure!(status.success(), "building fleet-replica failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let exe = target.join("debug").join("fleet-replica");
    ensure!(exe.is_file(), "no {} after the build", exe.display());
    Ok(exe)
}

/// Runs the fleet part; fails when a check fails or a piece is missing.
pub(crate) fn run() -> Result<()> {
    ensure!(
        TestProm::binary().is_some(),
        "the fleet demo needs a `prometheus` binary and found none: run `cargo xtask setup` \
         (it installs the Debian package `prometheus`)"
    );
    let replica = replica_binary()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    let started = Instant::now();
    let result = rt.block_on(async {
        tokio::time::timeout(DEADLINE, scenario(&replica))
            .await
            .context("the fleet demo did not finish within 60 s")?
    });
    eprintln!(
        "xtask: fleet demo ran in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    result
}

async fn upstream(addr: SocketAddr, name: &'static str) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper::service::service_fn(
                move |req: http::Request<hyper::body::Incoming>| async move {
                    // The candidate fails the traffic of one replica only.
                    let fail = name == "v2" && req.headers().contains_key("x-fail");
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
    }))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn scenario(replica: &std::path::Path) -> Result<()> {
    println!();
    println!("== Fleet rollout (3 replicas, a real Prometheus, one Lease-elected writer)");
    let api = KubeApi::start().await;
    let _v1 = upstream("127.77.200.1:8080".parse()?, "v1").await?;
    let _v2 = upstream("127.77.200.2:8080".parse()?, "v2").await?;
    api.put(
        ROUTES,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "shop", "namespace": "web"},
               "spec": {"rules": [{"name": "main", "backendRefs": [
                   {"name": "shop-v1", "port": 8080, "weight": 1},
                   {"name": "shop-v2", "port": 8080, "weight": 0}]}]}}),
    );
    for (svc, ip) in [("shop-v1", "127.77.200.1"), ("shop-v2", "127.77.200.2")] {
        api.put(
            SLICES,
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": format!("{svc}-a"), "namespace": "web",
                                "labels": {"kubernetes.io/service-name": svc}},
                   "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
                   "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]}),
        );
    }
    let mut replicas = Vec::new();
    for i in 0..3u8 {
        let addr: SocketAddr = format!("127.77.200.{}:{}", 10 + i, free_port()?).parse()?;
        let mut child = Command::new(replica)
            .args([
                "--listen",
                &addr.to_string(),
                "--kube",
                &api.url(),
                "--namespace",
                "web",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting fleet-replica")?;
        let out = child.stdout.take().context("replica stdout")?;
        let proc_ = Proc(child);
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        ensure!(
            line.starts_with("ready"),
            "replica {addr} did not start: {line:?}"
        );
        println!("  replica  {addr} follows web/shop through routing-kube");
        replicas.push((addr, proc_));
    }
    let targets: Vec<SocketAddr> = replicas.iter().map(|(a, _)| *a).collect();
    let server = TestProm::start("fleet", &targets).context("starting prometheus")?;
    let prom = Prometheus::new(server.url())?;
    // Ready once every replica has been scraped successfully at least twice.
    let mut ready = false;
    for _ in 0..150 {
        let scraped = prom
            .sum(
                "sum(count_over_time(up{job=\"fleet\"}[1m]) >= 2 and up{job=\"fleet\"} == 1)",
                None,
            )
            .await;
        if matches!(scraped, Ok(n) if n >= 6.0) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        ready,
        "prometheus did not scrape the 3 replicas within 15 s"
    );
    println!(
        "  metrics  Prometheus on {}, scraping the 3 replicas every 1 s",
        server.url()
    );
    println!(
        "  plan     50 % then 100 % of web/shop/main to shop-v2, hold 30 s; candidate error rate <= 0.2 over >= {MIN_REQUESTS} fleet-wide requests"
    );

    let uri: http::Uri = api.url().parse()?;
    let mut cfg = kube::Config::new(uri);
    cfg.default_namespace = "web".into();
    let client = kube::Client::try_from(cfg)?;
    let plan = RolloutPlan::try_from(RolloutPlanSpec {
        steps: vec![50.0, 100.0],
        hold: "30s".parse()?,
        max_step: Some("120s".parse()?),
        checks: Checks {
            max_error_rate: Some(0.2),
            min_requests: MIN_REQUESTS,
            ..Checks::default()
        },
    })?;
    let mut ctl = FleetRollout::new(
        LeaseLock::new(
            client.clone(),
            "web",
            "shop-rollout",
            "demo",
            Duration::from_secs(5),
        ),
        FleetMetrics::new(prom, "fleet", 3),
        HttpRouteWeights::new(client, "web", "shop", "routing-fleet"),
        plan,
        RolloutTarget::http_rule("web/shop", "main", "shop-v1:8080", "shop-v2:8080"),
        Duration::from_secs(3),
    );
    let http = routing_testkit::http::client();
    let mut rolled_back = None;
    for _ in 0..80 {
        for (i, (addr, _)) in replicas.iter().enumerate() {
            for _ in 0..4 {
                let mut b = http::Request::get(format!("http://{addr}/"));
                if i == 0 {
                    b = b.header("x-fail", "1");
                }
                if let Ok(res) = http.request(b.body(Full::new(Bytes::new()))?).await {
                    let _ = res.into_body().collect().await;
                }
            }
        }
        let round = ctl.round().await?;
        for e in &round.events {
            println!("  event    {:?}", e.kind);
        }
        if let Some(RolloutState::RolledBack { figures, .. }) = round.state {
            rolled_back = Some(figures);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let route = api.object(ROUTES, "shop").context("route")?;
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    let weights = (refs[0]["weight"].as_u64(), refs[1]["weight"].as_u64());
    println!("  route    backendRefs weights now {weights:?} (server-side applied)");
    let mut per_replica = Vec::new();
    for (addr, _) in &replicas {
        let text = routing_testkit::http::get(&http, *addr, "/metrics", &[])
            .await
            .body;
        let n: u64 = text
            .lines()
            .filter(|l| l.starts_with("routing_rule_backend_responses_total{"))
            .filter(|l| {
                l.contains("backend=\"shop-v2:8080\"") || l.contains("backend=\"shop-v2:8080@")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        println!("  replica  {addr}: {n} candidate requests of its own");
        per_replica.push(n);
    }
    println!();
    println!("== Fleet checks");
    let checks = [
        (
            "the candidate, failing on one replica only, is rolled back fleet-wide",
            rolled_back
                .is_some_and(|f| f.candidate.completed >= MIN_REQUESTS && f.candidate.errors > 0),
        ),
        (
            "no single replica reached min_requests",
            per_replica.iter().all(|&n| n < MIN_REQUESTS),
        ),
        (
            "the HTTPRoute says 100 % stable",
            weights == (Some(10_000), Some(0)),
        ),
    ];
    if let Some(f) = rolled_back {
        println!(
            "        fleet window: candidate {} requests, {} errors; stable {} requests",
            f.candidate.completed, f.candidate.errors, f.stable.completed
        );
    }
    let mut failed = 0;
    for (title, ok) in checks {
        println!("  {}  {title}", if ok { "PASS" } else { "FAIL" });
        failed += usize::from(!ok);
    }
    if failed > 0 {
        bail!("{failed} fleet check(s) failed");
    }
    Ok(())
}
