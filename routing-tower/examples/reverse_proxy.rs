//! A reverse proxy on loopback: routing-tower's dispatching service in front of
//! upstream HTTP servers, with weights read from a YAML file that is reloaded
//! when it changes.
//!
//! # Run it (one command)
//!
//! ```text
//! cp routing-tower/examples/reverse_proxy.yaml /tmp/rollout.yaml
//! cargo run --release -p routing-tower --example reverse_proxy -- \
//!     --config /tmp/rollout.yaml --spawn-upstreams
//! ```
//!
//! The proxy answers `GET /metrics` itself: a Prometheus/OpenMetrics scrape of its
//! per-backend and per-route stats (`routing_tower::metrics`); every other path is
//! routed.
//!
//! `--spawn-upstreams` starts one tiny server per backend of the config on its
//! (loopback) `address`, answering with the backend's name; without it the proxy
//! forwards to whatever listens there. The proxy listens on `127.0.0.1:8080`
//! (`--listen ADDR` to change it).
//!
//! # A progressive rollout, from a second terminal
//!
//! Watch the split (200 requests per line, over one keep-alive connection):
//!
//! ```text
//! for i in $(seq 1 60); do
//!   curl -s $(printf 'http://127.0.0.1:8080/ %.0s' $(seq 1 200)) | sort | uniq -c | tr '\n' ' '; echo
//!   sleep 1
//! done
//! ```
//!
//! and walk v2 from 5 % to 100 %, one step at a time (the proxy prints each
//! reload, or the validation errors of a bad edit while the old table stays live):
//!
//! ```text
//! set_v2() { sed -i -e "s/name: v1, weight: [^ }]*/name: v1, weight: $((100 - $1))/" \
//!                   -e "s/name: v2, weight: [^ }]*/name: v2, weight: $1/" /tmp/rollout.yaml; }
//! set_v2 10
//! set_v2 25
//! set_v2 -5       # rejected (weights are unsigned): reported, 25 % stays live
//! set_v2 50
//! set_v2 100      # v1 gets weight 0: drained, no new traffic
//! ```
//!
//! Testers reach v2 at any step with `curl -H 'x-canary: true' http://127.0.0.1:8080/`.
//! Stop with Ctrl-C: the proxy prints the requests each backend served.
//!
//! # What is read when
//!
//! Routes, rules and weights are reloaded; the upstream *addresses* are read at
//! start: a backend added by a later edit has no upstream until a restart (the
//! proxy warns, and the layer answers 503 for it).
//!
//! # Protocols
//!
//! The listener speaks HTTP/1.1 and HTTP/2 (h2c with prior knowledge; with
//! `--tls-cert FILE --tls-key FILE`, TLS with ALPN `h2`/`http/1.1`), and passes
//! WebSocket upgrades through. Each backend speaks HTTP/1.1 to its upstream unless
//! its `protocol` in the config (`h2c` for gRPC servers, `h2` or `auto` for TLS) or
//! `--upstream NAME=PROTO` (which wins) says otherwise; TLS upstreams are verified by
//! `--upstream-ca FILE` or the public web roots.
//!
//! HTTP/1.1 upstreams over plain TCP are reached with the in-task client
//! ([`routing_tower::h1::H1Backend`]); `--client hyper` uses hyper-util's pooled
//! client ([`HttpBackend`]) for them instead, as for every other protocol.
//!
//! Flags: `--config FILE` (default: the `reverse_proxy.yaml` beside this file),
//! `--listen ADDR`, `--spawn-upstreams`, `--threads N` (Tokio worker threads,
//! default: one per core; `1` runs a single-threaded event loop), and the rollout
//! flags below.
//!
//! # An automatic rollout: `--rollout plan.yaml`
//!
//! Instead of walking the weights by hand, let the rollout controller
//! (`routing_rollout`, driven by `routing_tower::rollout::Driver` on the proxy's
//! stats) do it: it sets each step's split, holds it, judges the
//! step on the proxy's own per-backend stats and promotes, or rolls back to 100 %
//! stable on its own when a check fails.
//!
//! ```text
//! cargo run --release -p routing-tower --example reverse_proxy -- \
//!     --config /tmp/rollout.yaml --spawn-upstreams \
//!     --rollout routing-tower/examples/rollout.yaml
//! ```
//!
//! Send traffic (the curl loop above); steps wait while the candidate has fewer than
//! `min_requests` requests in the step. The proxy prints every event as it happens
//! (step started, passed, waiting for traffic, rolled back with the figures that
//! caused it, promoted) and keeps serving after the rollout ends, with the final
//! split (100 % candidate when promoted, 100 % stable when rolled back).
//! The plan format is `routing-tower/examples/rollout.yaml`.
//!
//! * `--rollout-rule ROUTE/RULE` (default `app/rollout`): the rule to drive;
//! * `--stable NAME`, `--candidate NAME` (defaults `v1`, `v2`): its two backends;
//! * `--spawn-failing NAME` (with `--spawn-upstreams`): that upstream answers 503
//!   to everything, to watch a rollback (`--spawn-failing v2`).
//!
//! **The controller owns the rule's two weights** from start to exit, including
//! after the rollout ended: a file reload still applies every other edit (routes,
//! rules, matches, other backends' weights), but the stable and candidate weights of
//! that rule keep their live values whatever the file says. Both the reload and the
//! controller's steps are edits through `Router::modify` (one writer lock, one owner
//! of the config), so neither overwrites the other. To change
//! the split by hand, restart without `--rollout`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use routing_core::{Config, ConfigError, ModifyError, Router, WeightedBackendConfig};
use routing_rollout::{
    BackendFigures, Rollout, RolloutEventKind, RolloutPlan, RolloutPlanSpec, RolloutState,
    RolloutTarget,
};
use routing_tower::client::HttpBackend;
use routing_tower::clock::SystemClock;
use routing_tower::rollout::Driver;
use routing_tower::server::ServerLimits;
use routing_tower::RoutingLayer;
use routing_tower::{Backends, Routing};
use tokio::net::TcpListener;

use tower::ServiceExt as _;

/// How often the config file's metadata is checked.
const POLL: Duration = Duration::from_millis(500);

struct Args {
    config: PathBuf,
    listen: SocketAddr,
    spawn_upstreams: bool,
    threads: Option<usize>,
    /// `--rollout FILE`: the plan.
    rollout: Option<PathBuf>,
    /// `--rollout-rule ROUTE/RULE`.
    rollout_route: String,
    rollout_rule: String,
    stable: String,
    candidate: String,
    /// `--spawn-failing NAME`: spawned upstreams answering 503.
    failing: HashSet<String>,
    /// `--tls-cert FILE` and `--tls-key FILE`: serve TLS (ALPN h2, http/1.1).
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    /// `--upstream NAME=PROTOCOL` (http1, h2c, h2, auto).
    protocols: std::collections::HashMap<String, routing_tower::client::UpstreamProtocol>,
    /// `--upstream-ca FILE`: the CA verifying TLS upstreams (h2, auto).
    upstream_ca: Option<PathBuf>,
    /// `--client h1|hyper`: the client for plain HTTP/1.1 upstreams (`h1` default).
    hyper_client: bool,
    /// `--cookie-keys FILE`: the stickiness cookie key ring shared by every replica
    /// (one key a line, current first), reloaded when it changes.
    cookie_keys: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        config: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/reverse_proxy.yaml"
        )),
        listen: "127.0.0.1:8080".parse()?,
        spawn_upstreams: false,
        threads: None,
        rollout: None,
        rollout_route: "app".into(),
        rollout_rule: "rollout".into(),
        stable: "v1".into(),
        candidate: "v2".into(),
        failing: HashSet::new(),
        tls_cert: None,
        tls_key: None,
        protocols: Default::default(),
        upstream_ca: None,
        hyper_client: false,
        cookie_keys: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => args.config = value()?.into(),
            "--listen" => args.listen = value()?.parse().context("--listen")?,
            "--spawn-upstreams" => args.spawn_upstreams = true,
            "--threads" => args.threads = Some(value()?.parse().context("--threads")?),
            "--rollout" => args.rollout = Some(value()?.into()),
            "--rollout-rule" => {
                let v = value()?;
                let (route, rule) = v
                    .split_once('/')
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .with_context(|| format!("--rollout-rule wants ROUTE/RULE, not `{v}`"))?;
                (args.rollout_route, args.rollout_rule) = (route.into(), rule.into());
            }
            "--stable" => args.stable = value()?,
            "--candidate" => args.candidate = value()?,
            "--spawn-failing" => {
                args.failing.insert(value()?);
            }
            "--tls-cert" => args.tls_cert = Some(value()?.into()),
            "--tls-key" => args.tls_key = Some(value()?.into()),
            "--upstream-ca" => args.upstream_ca = Some(value()?.into()),
            "--client" => {
                args.hyper_client = match value()?.as_str() {
                    "h1" => false,
                    "hyper" => true,
                    other => bail!("--client wants h1 or hyper, not `{other}`"),
                }
            }
            "--cookie-keys" => args.cookie_keys = Some(value()?.into()),
            "--upstream" => {
                let v = value()?;
                let (name, proto) = v
                    .split_once('=')
                    .with_context(|| format!("--upstream wants NAME=PROTOCOL, not `{v}`"))?;
                let proto = proto
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("--upstream: {e}"))?;
                args.protocols.insert(name.to_owned(), proto);
            }
            "-h" | "--help" => {
                println!(
                    "reverse_proxy [--config FILE] [--listen ADDR] [--spawn-upstreams] [--threads N]\n              \
                     [--rollout PLAN.yaml] [--rollout-rule ROUTE/RULE] [--stable NAME] [--candidate NAME]\n              \
                     [--spawn-failing NAME] [--tls-cert FILE --tls-key FILE]\n              \
                     [--upstream NAME=http1|h2c|h2|auto]... [--upstream-ca FILE] [--client h1|hyper]\n              \
                     [--cookie-keys FILE]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        bail!("--tls-cert and --tls-key go together");
    }
    if !args.failing.is_empty() && !args.spawn_upstreams {
        bail!("--spawn-failing needs --spawn-upstreams");
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // One thread: a current-thread runtime, an event loop like HAProxy's or an
    // nginx worker's, without the work-stealing scheduler's cross-thread wakeups.
    let mut runtime = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime.enable_all().build()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config =
        Config::from_yaml(&text).with_context(|| format!("parsing {}", args.config.display()))?;
    let router = Router::new(config.clone())
        .with_context(|| format!("validating {}", args.config.display()))?;

    // Per-backend protocols (`protocol: h2c` in the config, or `--upstream v2=h2c`), one shared pool per protocol and
    // TLS identity; TLS upstreams verified by `--upstream-ca` (or the web roots).
    let base = HttpBackend::builder();
    let upstream_tls = match &args.upstream_ca {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(routing_tower::tls::UpstreamTls::new().with_ca_pem(&pem)?)
        }
        None => None,
    };
    let mut upstreams = Vec::new();
    for b in &config.backends {
        let Some(addr) = b.address else { continue };
        // `--upstream NAME=PROTO` wins over the config's `protocol`.
        let proto = args
            .protocols
            .get(&b.name)
            .copied()
            .or(b.protocol.map(Into::into))
            .unwrap_or_default();
        let mut builder = base.clone().protocol(proto);
        if matches!(
            proto,
            routing_tower::client::UpstreamProtocol::H2
                | routing_tower::client::UpstreamProtocol::Auto
        ) {
            builder = builder.tls(upstream_tls.clone())?;
        }
        upstreams.push((b.name.clone(), builder.build(addr)));
    }
    // A backend with `endpoints` (a version with a pool of pods): one balancer
    // picking the pod per request, connecting new pods on first use.
    let pools: Vec<(String, routing_tower::endpoints::EndpointBalancer)> = config
        .backends
        .iter()
        .filter(|b| !b.endpoints.is_empty())
        .map(|b| {
            let proto = args
                .protocols
                .get(&b.name)
                .copied()
                .or(b.protocol.map(Into::into))
                .unwrap_or_default();
            let balancer =
                routing_tower::endpoints::EndpointBalancer::new(base.clone().protocol(proto));
            (b.name.clone(), balancer)
        })
        .collect();
    if upstreams.is_empty() && pools.is_empty() {
        bail!(
            "{}: no backend has an `address` or `endpoints` to forward to",
            args.config.display()
        );
    }
    let mut backends = Backends::new();
    let h1 = routing_tower::h1::H1Backend::builder();
    for (name, backend) in &upstreams {
        if args.spawn_upstreams {
            let failing = args.failing.contains(name);
            spawn_upstream(name.clone(), backend.addr(), failing).await?;
        }
        // `http1` backends are plain TCP here (TLS is set for h2 and auto only).
        let in_task = backend.protocol() == routing_tower::client::UpstreamProtocol::Http1
            && !args.hyper_client;
        eprintln!(
            "backend {name} -> {} ({:?}, {} client)",
            backend.addr(),
            backend.protocol(),
            if in_task { "in-task h1" } else { "hyper-util" }
        );
        if in_task {
            backends.insert(name.as_str(), h1.build(backend.addr()));
        } else {
            backends.insert(name.as_str(), backend.clone());
        }
    }

    for (name, balancer) in &pools {
        eprintln!("backend {name} -> endpoint pool");
        backends.insert(name.as_str(), balancer.clone());
    }
    let proxy = Routing::dispatch(router.clone(), backends);
    // Replicas given the same key ring file honour each other's stickiness cookies.
    if let Some(path) = &args.cookie_keys {
        let ring = routing_tower::CookieKey::from_ring_file(path)?;
        proxy.layer().set_cookie_key(ring);
        routing_tower::cookie::watch_ring_file(proxy.layer(), path.clone(), POLL);
        eprintln!(
            "cookie key ring from {} (reloaded on change)",
            path.display()
        );
    }
    let known: HashSet<String> = upstreams
        .iter()
        .map(|(name, _)| name.clone())
        .chain(pools.iter().map(|(name, _)| name.clone()))
        .collect();
    let rollout = match &args.rollout {
        Some(plan) => Some(start_rollout(&args, plan, &router, &known, &proxy.layer())?),
        None => None,
    };
    let owned = rollout.as_ref().map(|(_, rule)| rule.clone());
    tokio::spawn(watch_config(
        args.config.clone(),
        router,
        text,
        known,
        owned,
    ));

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!(
        "proxy listening on http://{} (config {}, reloaded on change)",
        args.listen,
        args.config.display()
    );

    // The proxy's own /metrics scrape beside the proxied traffic.
    let served = proxy.clone();
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let proxy = served.clone();
        type Answer = std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = Result<http::Response<routing_tower::Body>, Infallible>,
                    > + Send,
            >,
        >;
        if req.uri().path() == "/metrics" {
            // The replica's own Prometheus/OpenMetrics scrape (not forwarded).
            let res = routing_tower::metrics::scrape_response(&proxy.layer());
            return Box::pin(std::future::ready(Ok(res))) as Answer;
        }
        Box::pin(proxy.clone().oneshot(req)) as Answer
    });
    // A client must send its request head within 10 s (hyper's timer) and at most
    // 10 000 connections are held at once: routing_tower::server's defaults.
    let shutdown = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            eprintln!("waiting for Ctrl-C: {err}");
        }
    };
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let cert =
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
            let acceptor = routing_tower::tls::ServerTls::new(&cert, &key)?.acceptor()?;
            eprintln!("TLS on, ALPN h2 and http/1.1");
            routing_tower::server::serve_tls(
                listener,
                acceptor,
                service,
                ServerLimits::default(),
                shutdown,
            )
            .await;
        }
        _ => {
            // HTTP/1.1 and h2c (prior knowledge), told apart per connection.
            routing_tower::server::serve(listener, service, ServerLimits::default(), shutdown)
                .await;
        }
    }
    eprintln!("shutting down; requests per backend:");
    for (name, s) in proxy.layer().stats() {
        eprintln!(
            "  {name}: {} requests, 2xx {}, 5xx {}, connect failures {}, resets {}",
            s.requests, s.responses[1], s.responses[4], s.failures_connect, s.failures_reset
        );
    }
    if let Some((rollout, _)) = rollout {
        eprintln!("rollout: {}", state_line(&rollout.state()));
    }
    Ok(())
}

/// The rule a rollout drives. Its splits and the file reloads are both
/// [`Router::modify`] edits, so a reload keeps the split the controller set and a
/// step never lands between a reload's read and its swap.
#[derive(Debug, Clone)]
struct OwnedRule {
    target: RolloutTarget,
    route: String,
    rule: String,
    stable: String,
    candidate: String,
}

impl OwnedRule {
    /// Swaps in a reloaded `config` with this rule's two weights as they are live.
    fn reload(&self, router: &Router, config: Config) -> Result<u64, ConfigError> {
        let edit = |live: &mut Config| {
            // Like `Router::reload`: an empty or half-written file is a mistake.
            if config.routes.is_empty()
                && config.tcp_services.is_empty()
                && !(live.routes.is_empty() && live.tcp_services.is_empty())
            {
                return Err(ConfigError::DropsEverything {
                    routes: live.routes.len(),
                    tcp_services: live.tcp_services.len(),
                });
            }
            let kept = self.target.weights(live).ok();
            let mut next = config;
            let rule = next
                .routes
                .iter_mut()
                .find(|r| r.name == self.route)
                .and_then(|r| {
                    r.rules
                        .iter_mut()
                        .find(|r| r.name.as_deref() == Some(self.rule.as_str()))
                });
            if let (Some((stable_w, candidate_w)), Some(rule)) = (kept, rule) {
                for (name, weight) in [(&self.stable, stable_w), (&self.candidate, candidate_w)] {
                    match rule.backends.iter_mut().find(|b| &b.name == name) {
                        Some(b) => b.weight = weight,
                        None if weight > 0 => rule
                            .backends
                            .push(WeightedBackendConfig::new(name.clone(), weight)),
                        None => {}
                    }
                }
            }
            *live = next;
            Ok(())
        };
        match router.modify(edit) {
            Ok((generation, ())) => Ok(generation),
            Err(ModifyError::Invalid(e) | ModifyError::Edit(e)) => Err(e),
        }
    }
}

/// Reads the plan, checks the rule and its backends, and starts the controller on a
/// task, with a second task printing its events as they happen.
fn start_rollout(
    args: &Args,
    plan_path: &PathBuf,
    router: &Router,
    known: &HashSet<String>,
    layer: &RoutingLayer,
) -> anyhow::Result<(Arc<Driver<RoutingLayer>>, OwnedRule)> {
    let text = std::fs::read_to_string(plan_path)
        .with_context(|| format!("reading {}", plan_path.display()))?;
    let spec: RolloutPlanSpec = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("parsing {}", plan_path.display()))?;
    let plan = RolloutPlan::try_from(spec).with_context(|| plan_path.display().to_string())?;
    for name in [&args.stable, &args.candidate] {
        if !known.contains(name) {
            bail!("--rollout: backend `{name}` has no upstream (`address`) in the config");
        }
    }
    let target = RolloutTarget::http_rule(
        args.rollout_route.as_str(),
        args.rollout_rule.as_str(),
        args.stable.as_str(),
        args.candidate.as_str(),
    );
    target
        .weights(router.snapshot().config())
        .context("--rollout-rule")?;
    let rule = OwnedRule {
        target: target.clone(),
        route: args.rollout_route.clone(),
        rule: args.rollout_rule.clone(),
        stable: args.stable.clone(),
        candidate: args.candidate.clone(),
    };
    let steps: Vec<String> = plan.steps().iter().map(ToString::to_string).collect();
    eprintln!(
        "rollout of {}: steps {} %, hold {:?} each, checks {:?}",
        rule.target,
        steps.join(" -> "),
        plan.hold(),
        plan.checks()
    );
    // Ticks often enough to judge each step soon after its hold.
    let interval = (plan.hold() / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let rollout = Arc::new(Driver::new(
        Rollout::new(plan, target, router.clone()),
        layer.clone(),
        SystemClock::shared(),
    ));
    let runner = Arc::clone(&rollout);
    tokio::spawn(async move { runner.run(interval).await });
    tokio::spawn(print_events(
        Arc::clone(&rollout),
        args.stable.clone(),
        args.candidate.clone(),
        interval,
    ));
    Ok((rollout, rule))
}

/// Prints the rollout's events as they happen, until it is over.
async fn print_events(
    rollout: Arc<Driver<RoutingLayer>>,
    stable: String,
    candidate: String,
    poll: Duration,
) {
    let start = std::time::Instant::now();
    let mut printed = 0;
    loop {
        let over = rollout.state().is_terminal();
        let events = rollout.events();
        for e in events.iter().skip(printed) {
            eprintln!(
                "rollout [{:>7.1} s] {}",
                start.elapsed().as_secs_f64(),
                describe(&e.kind, &stable, &candidate)
            );
        }
        printed = events.len();
        if over {
            eprintln!(
                "rollout over ({}); the proxy keeps serving with this split",
                state_line(&rollout.state())
            );
            return;
        }
        tokio::time::sleep(poll).await;
    }
}

/// One line for a rollout event.
fn describe(kind: &RolloutEventKind, stable: &str, candidate: &str) -> String {
    let fig = |f: &BackendFigures| {
        format!(
            "{} requests, {} errors ({:.2} %), p99 {}",
            f.completed,
            f.errors,
            f.error_rate.unwrap_or(0.0) * 100.0,
            f.p99.map_or_else(|| "-".to_owned(), |d| format!("{d:.1?}"))
        )
    };
    match kind {
        RolloutEventKind::StepStarted { step, percent } => {
            format!("step {} started: {percent} % to {candidate}", step + 1)
        }
        RolloutEventKind::StepPassed { figures } => format!(
            "step {} passed after {:.1?}: {candidate} {}; {stable} {}",
            figures.step + 1,
            figures.elapsed,
            fig(&figures.candidate),
            fig(&figures.stable)
        ),
        RolloutEventKind::Waiting {
            figures,
            min_requests,
        } => format!(
            "step {} holds, waiting for traffic: {candidate} has {} of {min_requests} requests",
            figures.step + 1,
            figures.candidate.completed
        ),
        RolloutEventKind::RolledBack { reason, figures } => format!(
            "ROLLED BACK at step {} ({} %): {reason}; {candidate} {}; {stable} {}; {stable} at 100 %",
            figures.step + 1,
            figures.percent,
            fig(&figures.candidate),
            fig(&figures.stable)
        ),
        RolloutEventKind::Promoted { .. } => format!("promoted: {candidate} at 100 %"),
        RolloutEventKind::Aborted => format!("aborted: {stable} at 100 %"),
        RolloutEventKind::TargetFailed { percent, error } => {
            format!("stopped: setting {percent} % failed: {error}")
        }
        other => format!("{other:?}"),
    }
}

/// A short form of a rollout state.
fn state_line(state: &RolloutState) -> String {
    match state {
        RolloutState::Promoted => "promoted".to_owned(),
        RolloutState::RolledBack { reason, figures } => {
            format!("rolled back at step {}: {reason}", figures.step + 1)
        }
        RolloutState::Aborted => "aborted".to_owned(),
        RolloutState::Failed { error, .. } => format!("failed: {error}"),
        RolloutState::Running { step, percent } => {
            format!("running, step {} at {percent} %", step + 1)
        }
        other => format!("{other:?}"),
    }
}

/// Polls the file's metadata every [`POLL`]; on a change, re-reads it and hands
/// the text to the router. A file that does not validate is reported and the
/// live table stays. `known` are the backends that have an upstream; `owned` is
/// the rule a rollout drives, whose two weights a reload keeps.
async fn watch_config(
    path: PathBuf,
    router: Router,
    mut last_text: String,
    known: HashSet<String>,
    owned: Option<OwnedRule>,
) {
    let stamp = |path: &PathBuf| -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    let mut last_stamp = stamp(&path);
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let now = stamp(&path);
        if now.is_none() || now == last_stamp {
            // Missing (an editor mid-save) or unchanged.
            continue;
        }
        last_stamp = now;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if text == last_text {
            continue;
        }
        last_text = text;
        let applied = match &owned {
            Some(rule) => Config::from_yaml(&last_text).and_then(|c| rule.reload(&router, c)),
            None => Config::from_yaml(&last_text).and_then(|c| router.reload(c)),
        };
        match applied {
            Ok(generation) => {
                let kept = match &owned {
                    Some(r) => format!(
                        " ({}/{}: {} and {} kept by the rollout)",
                        r.route, r.rule, r.stable, r.candidate
                    ),
                    None => String::new(),
                };
                eprintln!(
                    "reloaded {} (generation {generation}): {}{kept}",
                    path.display(),
                    summary(router.snapshot().config())
                );
                for name in new_backends(&last_text, &known) {
                    eprintln!("  warning: backend {name} has no upstream until a restart (503)");
                }
            }
            Err(err) => eprintln!(
                "{} rejected, the previous table stays live:\n{err}",
                path.display()
            ),
        }
    }
}

/// Backends of the config that were not there (with an address) at start.
fn new_backends(text: &str, known: &HashSet<String>) -> Vec<String> {
    Config::from_yaml(text)
        .map(|config| {
            config
                .backends
                .into_iter()
                .map(|b| b.name)
                .filter(|name| !known.contains(name))
                .collect()
        })
        .unwrap_or_default()
}

/// `app/rollout: v1 90, v2 10; …` — the live weights of every split rule.
fn summary(config: &Config) -> String {
    let mut rules = Vec::new();
    for route in &config.routes {
        for (i, rule) in route.rules.iter().enumerate() {
            if rule.backends.len() < 2 {
                continue;
            }
            let weights: Vec<String> = rule
                .backends
                .iter()
                .map(|b| format!("{} {}", b.name, b.weight))
                .collect();
            let name = rule.name.clone().unwrap_or_else(|| format!("rules[{i}]"));
            rules.push(format!("{}/{name}: {}", route.name, weights.join(", ")));
        }
    }
    rules.join("; ")
}

/// Starts a server on `addr` (loopback only) answering every request with
/// `name` and a newline, or, when `failing`, with 503 and `name down`.
async fn spawn_upstream(name: String, addr: SocketAddr, failing: bool) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("--spawn-upstreams starts servers on loopback addresses only, not {addr}");
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("--spawn-upstreams: binding {addr} for {name}"))?;
    let body = if failing {
        Bytes::from(format!("{name} down\n"))
    } else {
        Bytes::from(format!("{name}\n"))
    };
    let status = if failing {
        http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        http::StatusCode::OK
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let mut res = Response::new(Full::new(body.clone()));
                *res.status_mut() = status;
                async move { Ok::<_, Infallible>(res) }
            });
            tokio::spawn(async move {
                // HTTP/1.1 and h2c: backends set to `--upstream NAME=h2c` reach it too.
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(stream), service)
                .await;
            });
        }
    });
    Ok(())
}
