//! One replica of a fleet: follows the routing kept in Kubernetes (routing-kube's
//! watcher) and serves it with the routing-tower layer, plus `GET /metrics` (the
//! layer's OpenMetrics scrape) for Prometheus.
//!
//! ```text
//! fleet-replica --listen 127.0.0.2:8080 --kube http://127.0.0.1:6443 --namespace web
//! ```
//!
//! Upstreams are the backends of the first applied table: a backend whose Service
//! has EndpointSlices is a pool of its pods, and pods that come and go later are
//! connected on first use (routing-tower's `EndpointBalancer`); weight changes apply
//! live; a backend added later needs a restart (as in routing-tower's
//! `reverse_proxy`). Prints `ready <listen>` once the first table is applied and the
//! listener is bound.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use http::Request;
use hyper::body::Incoming;
use routing_core::{Config, Router};
use routing_kube::{KubeSource, Options};
use routing_tower::client::HttpBackend;
use routing_tower::server::ServerLimits;
use routing_tower::Routing;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

fn main() -> anyhow::Result<()> {
    let mut listen: Option<SocketAddr> = None;
    let mut kube: Option<String> = None;
    let mut namespace = "default".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?.parse().context("--listen")?),
            "--kube" => kube = Some(value()?),
            "--namespace" => namespace = value()?,
            other => anyhow::bail!("unknown flag `{other}`"),
        }
    }
    let listen = listen.context("--listen ADDR is required")?;
    let kube = kube.context("--kube URL is required")?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(listen, &kube, &namespace))
}

async fn run(listen: SocketAddr, kube_url: &str, namespace: &str) -> anyhow::Result<()> {
    let uri: http::Uri = kube_url.parse().context("--kube")?;
    let mut cfg = kube::Config::new(uri);
    cfg.default_namespace = namespace.to_owned();
    let client = kube::Client::try_from(cfg).context("kube client")?;
    let router = Router::new(Config::default())?;
    let mut source = KubeSource::spawn(
        client,
        router.clone(),
        Options::default()
            .namespace(namespace)
            .debounce(Duration::from_millis(50)),
    );
    source
        .wait_for(Duration::from_secs(20), |s| s.applied >= 1)
        .await
        .with_context(|| format!("no table applied from {kube_url} within 20 s"))?;
    let backends = HttpBackend::builder().backends_for_config(router.snapshot().config());
    let proxy = Routing::dispatch(router, backends);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
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
        Box::pin(proxy.oneshot(req)) as Answer
    });
    println!("ready {listen}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    routing_tower::server::serve(listener, service, ServerLimits::default(), shutdown).await;
    drop(source);
    Ok(())
}
