//! Real HTTP for the demo: upstream servers and the routing proxy on 127.0.0.1.
//!
//! Each backend of the configuration gets a tiny HTTP/1.1 server on an ephemeral
//! loopback port that answers with its name. The proxy is `routing_tower::Routing`
//! (dispatch mode, one `HttpBackend` per upstream) served by hyper, also on an
//! ephemeral loopback port. Requests go client → proxy → upstream over TCP, so
//! the backend a request reached is read from the upstream's answer, not computed.
//! Everything runs on one Tokio runtime owned by [`Harness`]; dropping it stops
//! every server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use routing_core::{RequestInfo, RouteRequest, Router};
use routing_tower::{Backends, HttpBackend, RoutingLayer};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tower::Layer as _;

/// Requests in flight at once when sending a batch.
const CONCURRENCY: usize = 16;
/// Longest wait for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The servers and a client; dropping it stops them all.
pub(crate) struct Harness {
    rt: Runtime,
    proxy: SocketAddr,
    layer: RoutingLayer,
    upstreams: Vec<(String, SocketAddr, Arc<AtomicU64>)>,
    tasks: Vec<JoinHandle<()>>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What one request got.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The status.
    pub(crate) status: u16,
    /// The upstream that answered (its name), when the status is 200.
    pub(crate) backend: Option<String>,
}

impl Harness {
    /// Starts one upstream per backend of `router`'s configuration and the proxy.
    pub(crate) fn start(router: &Router) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the Tokio runtime")?;
        let names: Vec<String> = router
            .snapshot()
            .backends()
            .iter()
            .map(|b| b.name().to_owned())
            .collect();
        let (upstreams, mut tasks, proxy, layer) = rt.block_on(async {
            let mut upstreams = Vec::new();
            let mut tasks = Vec::new();
            let mut backends = Backends::new();
            for name in &names {
                let hits = Arc::new(AtomicU64::new(0));
                let (addr, task) = upstream(name.clone(), Arc::clone(&hits)).await?;
                backends.insert(name.as_str(), HttpBackend::new(addr));
                upstreams.push((name.clone(), addr, hits));
                tasks.push(task);
            }
            let layer = RoutingLayer::new(router.clone(), backends);
            let (proxy, task) = serve(layer.layer(routing_tower::NotFound)).await?;
            tasks.push(task);
            anyhow::Ok((upstreams, tasks, proxy, layer))
        })?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(CONCURRENCY)
            .build(connector);
        tasks.shrink_to_fit();
        Ok(Self {
            rt,
            proxy,
            layer,
            upstreams,
            tasks,
            client,
        })
    }

    /// The proxy's address.
    pub(crate) fn proxy(&self) -> SocketAddr {
        self.proxy
    }

    /// The upstreams: name, address, requests served.
    pub(crate) fn upstreams(&self) -> impl Iterator<Item = (&str, SocketAddr, u64)> {
        self.upstreams
            .iter()
            .map(|(n, a, h)| (n.as_str(), *a, h.load(Ordering::Relaxed)))
    }

    /// The layer (for its per-backend stats).
    pub(crate) fn layer(&self) -> &RoutingLayer {
        &self.layer
    }

    /// Sends every request through the proxy, [`CONCURRENCY`] at a time, and
    /// returns the answers in the same order.
    pub(crate) fn send_all<'r>(
        &self,
        requests: impl IntoIterator<Item = &'r RequestInfo>,
    ) -> Result<Vec<Answer>> {
        let built = requests
            .into_iter()
            .map(|r| to_http(r, self.proxy))
            .collect::<Result<Vec<_>>>()?;
        self.rt.block_on(async {
            let mut out: Vec<Option<Answer>> = vec![None; built.len()];
            let mut pending = built.into_iter().enumerate();
            let mut running = tokio::task::JoinSet::new();
            loop {
                while running.len() < CONCURRENCY {
                    let Some((i, req)) = pending.next() else {
                        break;
                    };
                    let c = self.client.clone();
                    running.spawn(async move { (i, send(&c, req).await) });
                }
                let Some(done) = running.join_next().await else {
                    break;
                };
                let (i, answer) = done.context("a request task panicked")?;
                out[i] = Some(answer?);
            }
            out.into_iter()
                .map(|a| a.context("a request got no answer"))
                .collect()
        })
    }
}

/// The HTTP request for a `RequestInfo`, addressed to the proxy with the original
/// `Host`.
fn to_http(r: &RequestInfo, proxy: SocketAddr) -> Result<http::Request<Empty<Bytes>>> {
    let pq = match r.query() {
        Some(q) => format!("{}?{q}", r.path()),
        None => r.path().to_owned(),
    };
    let mut b = http::Request::builder()
        .method(r.method().clone())
        .uri(format!("http://{proxy}{pq}"));
    if let Some(h) = r.host() {
        b = b.header(http::header::HOST, h);
    }
    for (k, v) in r.headers() {
        b = b.header(k, v);
    }
    b.body(Empty::new()).context("building a demo request")
}

async fn send(
    c: &Client<HttpConnector, Empty<Bytes>>,
    req: http::Request<Empty<Bytes>>,
) -> Result<Answer> {
    let res = tokio::time::timeout(ANSWER_TIMEOUT, c.request(req))
        .await
        .context("no answer within 10 s")?
        .context("HTTP exchange with the proxy failed")?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .context("reading an answer")?
        .to_bytes();
    let backend = (status == 200).then(|| String::from_utf8_lossy(&body).into_owned());
    Ok(Answer { status, backend })
}

/// An upstream answering 200 with `name`, counting requests.
async fn upstream(name: String, hits: Arc<AtomicU64>) -> Result<(SocketAddr, JoinHandle<()>)> {
    let body = Bytes::from(name);
    let svc = tower::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
        hits.fetch_add(1, Ordering::Relaxed);
        let body = body.clone();
        async move { Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(body))) }
    });
    serve(svc).await
}

/// Serves `svc` over HTTP/1.1 on 127.0.0.1 (ephemeral port): the test kit's
/// server, its task handed to the caller (who aborts it when done).
pub(crate) async fn serve<S, B>(svc: S) -> Result<(SocketAddr, JoinHandle<()>)>
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let server = routing_testkit::http::try_serve(svc)
        .await
        .context("cannot listen on 127.0.0.1")?;
    Ok(server.into_parts())
}

/// Fails unless every answer is a 200 from an upstream.
pub(crate) fn all_ok(answers: &[Answer]) -> Result<()> {
    if let Some(a) = answers.iter().find(|a| a.backend.is_none()) {
        bail!("the proxy answered {} to a demo request", a.status);
    }
    Ok(())
}
