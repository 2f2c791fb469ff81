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
//! Flags: `--config FILE` (default: the `reverse_proxy.yaml` beside this file),
//! `--listen ADDR`, `--spawn-upstreams`, `--threads N` (Tokio worker threads,
//! default: one per core; `1` runs a single-threaded event loop).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use routing_core::{ClientAddr, Config, Router};
use routing_tower::client::HttpBackend;
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
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => args.config = value()?.into(),
            "--listen" => args.listen = value()?.parse().context("--listen")?,
            "--spawn-upstreams" => args.spawn_upstreams = true,
            "--threads" => args.threads = Some(value()?.parse().context("--threads")?),
            "-h" | "--help" => {
                println!(
                    "reverse_proxy [--config FILE] [--listen ADDR] [--spawn-upstreams] [--threads N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
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

    let upstreams = HttpBackend::builder().build_for_config(&config);
    if upstreams.is_empty() {
        bail!(
            "{}: no backend has an `address` to forward to",
            args.config.display()
        );
    }
    let mut backends = Backends::new();
    for (name, backend) in &upstreams {
        if args.spawn_upstreams {
            spawn_upstream(name.clone(), backend.addr()).await?;
        }
        eprintln!("backend {name} -> http://{}", backend.addr());
        backends.insert(name.as_str(), backend.clone());
    }

    let proxy = Routing::dispatch(router.clone(), backends);
    let known = upstreams.iter().map(|(name, _)| name.clone()).collect();
    tokio::spawn(watch_config(args.config.clone(), router, text, known));

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!(
        "proxy listening on http://{} (config {}, reloaded on change)",
        args.listen,
        args.config.display()
    );

    let accept = async {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    eprintln!("accept: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                // The source address, for x-forwarded-for and source-IP stickiness.
                req.extensions_mut().insert(ClientAddr(peer));
                proxy.clone().oneshot(req)
            });
            tokio::spawn(async move {
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    if !err.is_incomplete_message() {
                        eprintln!("connection from {peer}: {err}");
                    }
                }
            });
        }
    };
    tokio::select! {
        () = accept => {}
        res = tokio::signal::ctrl_c() => res.context("waiting for Ctrl-C")?,
    }
    eprintln!("shutting down; requests per backend:");
    for (name, s) in proxy.layer().stats() {
        eprintln!(
            "  {name}: {} requests, 2xx {}, 5xx {}, connect failures {}, resets {}",
            s.requests, s.responses[1], s.responses[4], s.failures_connect, s.failures_reset
        );
    }
    Ok(())
}

/// Polls the file's metadata every [`POLL`]; on a change, re-reads it and hands
/// the text to the router. A file that does not validate is reported and the
/// live table stays. `known` are the backends that have an upstream.
async fn watch_config(
    path: PathBuf,
    router: Router,
    mut last_text: String,
    known: HashSet<String>,
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
        match router.update_yaml(&last_text) {
            Ok(generation) => {
                eprintln!(
                    "reloaded {} (generation {generation}): {}",
                    path.display(),
                    summary(&last_text)
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

/// `app/rollout: v1 90, v2 10; …` — the weights of every split rule.
fn summary(text: &str) -> String {
    let Ok(config) = Config::from_yaml(text) else {
        return String::new();
    };
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
/// `name` and a newline.
async fn spawn_upstream(name: String, addr: SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("--spawn-upstreams starts servers on loopback addresses only, not {addr}");
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("--spawn-upstreams: binding {addr} for {name}"))?;
    let body = Bytes::from(format!("{name}\n"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}
