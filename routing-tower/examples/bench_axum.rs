//! A minimal axum app for the side-by-side HTTP benchmarks in `benches/http/`.
//!
//! ```text
//! cargo run --release -p routing-tower --example bench_axum -- \
//!     --listen 127.0.0.1:8080 [--layered annotate|dispatch] [--threads 1] [--body hello]
//! ```
//!
//! Every request gets `200` with the `--body` text (`/16k`: 16 KiB of `x`). With `--layered MODE` the same
//! app sits behind `RoutingLayer`, whose route table has a header rule in front of a
//! 90/10 split (so every request is matched on a header and a path prefix and draws
//! a weighted choice):
//!
//! * `annotate`: the layer records the decision and calls the app
//!   (`app.layer(RoutingLayer::annotate(router))`);
//! * `dispatch`: the layer dispatches to two in-process clones of the app named
//!   `v1` and `v2` (`app.layer(RoutingLayer::new(router, backends))`), as in a canary.
//!
//! `--proxy-to ADDR` runs no app and no layer: a hyper server that forwards every
//! request to `ADDR` through one `HttpBackend` — the client's share of a proxy's
//! cost, without routing; with `--client h1` through one in-task `H1Backend`.
//!
//! The benchmark compares the modes under the same load (`benches/http/run.sh`);
//! the bare app also serves as the upstream for the proxy comparison.
//!
//! The server runs until it is killed (the runner sends SIGTERM) or for
//! `--seconds N` (default 600), whichever comes first.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use axum::serve::ListenerExt as _;
use axum::Router;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use routing_tower::{Backends, HttpBackend, RoutingLayer};

/// The layered app's route table: a header rule (never matched by the load) in
/// front of a 90/10 split.
const ROUTES: &str = r#"
backends: [{ name: v1 }, { name: v2 }]
routes:
  - name: app
    rules:
      - matches: [{ headers: [{ name: x-canary, exact: "true" }] }]
        backends: [{ name: v2 }]
      - matches: [{ path: { prefix: / } }]
        backends: [{ name: v1, weight: 90 }, { name: v2, weight: 10 }]
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bare,
    Annotate,
    Dispatch,
    /// No app, no layer: a hyper server forwarding everything through one
    /// `HttpBackend`, to split a proxy's cost between the layer and the client.
    ProxyTo(SocketAddr),
}

struct Args {
    listen: SocketAddr,
    mode: Mode,
    threads: usize,
    body: String,
    seconds: u64,
    /// `--client h1`: `--proxy-to` forwards with `H1Backend` instead of `HttpBackend`.
    h1_client: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        listen: "127.0.0.1:8080".parse()?,
        mode: Mode::Bare,
        threads: 1,
        body: "hello".to_owned(),
        seconds: 600,
        h1_client: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value()?.parse().context("--listen")?,
            "--layered" => {
                args.mode = match value()?.as_str() {
                    "annotate" => Mode::Annotate,
                    "dispatch" => Mode::Dispatch,
                    other => bail!("--layered takes `annotate` or `dispatch`, not `{other}`"),
                }
            }
            "--threads" => args.threads = value()?.parse().context("--threads")?,
            "--body" => args.body = value()?,
            "--proxy-to" => args.mode = Mode::ProxyTo(value()?.parse().context("--proxy-to")?),
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--client" => {
                args.h1_client = match value()?.as_str() {
                    "h1" => true,
                    "hyper" => false,
                    other => bail!("--client takes `h1` or `hyper`, not `{other}`"),
                }
            }
            "-h" | "--help" => {
                println!(
                    "bench_axum [--listen ADDR] [--layered annotate|dispatch | --proxy-to ADDR] [--client h1|hyper] [--threads N] [--body TEXT] [--seconds N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    Ok(args)
}

/// The 16 KiB response of `/16k`.
static BIG: [u8; 16 * 1024] = [b'x'; 16 * 1024];

fn app(body: String) -> Router {
    Router::new()
        .route(
            "/16k",
            axum::routing::get(|| async { bytes::Bytes::from_static(&BIG) }),
        )
        .fallback(move || {
            let body = body.clone();
            async move { body }
        })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // One thread: a current-thread runtime (no work-stealing scheduler).
    let mut runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(serve(args))
}

/// Serves `listen` with hyper's HTTP/1 server, forwarding every request through
/// `backend` (set up as the `reverse_proxy` example's server is: nodelay, one task
/// per connection, `ClientAddr` inserted). A macro rather than a generic function:
/// the two clients' concrete types keep rustc's higher-ranked `Send` check happy.
macro_rules! proxy_to {
    ($listen:expr, $backend:expr, $what:expr) => {{
        let listen: SocketAddr = $listen;
        let backend = $backend;
        let what: &str = $what;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        eprintln!("bench_axum listening on {listen} ({what}, no layer)");
        let mut failures = 0u32;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => {
                    failures = 0;
                    accepted
                }
                // Transient (e.g. out of descriptors): retry; persistent: give up.
                Err(_) if failures < 100 => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => break Err(anyhow::Error::from(e).context("accepting")),
            };
            let _ = stream.set_nodelay(true);
            let backend = backend.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut req: Request<routing_tower::Body> = req.map(routing_tower::body::boxed);
                req.extensions_mut().insert(routing_core::ClientAddr(peer));
                // Both clients are always ready (`poll_ready` returns `Ready` at once).
                tower::Service::call(&mut backend.clone(), req)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }};
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if let Mode::ProxyTo(upstream) = args.mode {
        let forward = async {
            if args.h1_client {
                let backend = routing_tower::h1::H1Backend::new(upstream);
                proxy_to!(args.listen, backend, "H1Backend")
            } else {
                proxy_to!(args.listen, HttpBackend::new(upstream), "HttpBackend")
            }
        };
        tokio::select! {
            res = forward => res?,
            _ = tokio::time::sleep(Duration::from_secs(args.seconds)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    let app = app(args.body);
    let router = routing_core::Router::from_yaml(ROUTES).context("route table")?;
    let (app, mode) = match args.mode {
        Mode::Bare | Mode::ProxyTo(_) => (app, "bare"),
        Mode::Annotate => (app.layer(RoutingLayer::annotate(router)), "annotate"),
        Mode::Dispatch => {
            let backends = Backends::new()
                .with("v1", app.clone())
                .with("v2", app.clone());
            (app.layer(RoutingLayer::new(router, backends)), "dispatch")
        }
    };
    eprintln!("bench_axum listening on {} ({mode})", args.listen);
    let server = axum::serve(listener, app);
    tokio::select! {
        res = server => res.context("serving")?,
        _ = tokio::time::sleep(Duration::from_secs(args.seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
