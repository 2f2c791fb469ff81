//! Real HTTP servers and a client on 127.0.0.1 for the layer's tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use routing_tower::Body;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A server task; aborted on drop, so nothing outlives its test.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves a tower service over HTTP/1.1 on 127.0.0.1 (ephemeral port).
pub async fn serve<S>(svc: S) -> Server
where
    S: tower::Service<Request<Incoming>, Response = Response<Body>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<routing_tower::BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server { addr, task }
}

/// How an upstream answers its n-th request (n from 0).
pub type Behaviour = Arc<dyn Fn(u64, &Request<Incoming>) -> StatusCode + Send + Sync>;

/// An upstream that answers with its name and counts its requests.
pub struct Upstream {
    pub server: Server,
    pub name: &'static str,
    pub hits: Arc<AtomicU64>,
}

impl Upstream {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// An upstream answering 200 with its name.
pub async fn upstream(name: &'static str) -> Upstream {
    upstream_with(name, Arc::new(|_, _| StatusCode::OK)).await
}

/// An upstream answering `behaviour(n, req)` with its name as body.
pub async fn upstream_with(name: &'static str, behaviour: Behaviour) -> Upstream {
    let hits = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&hits);
    let svc = tower::service_fn(move |req: Request<Incoming>| {
        let n = h.fetch_add(1, Ordering::Relaxed);
        let status = behaviour(n, &req);
        async move {
            let mut res = Response::new(routing_tower::body::full(name));
            *res.status_mut() = status;
            res.headers_mut()
                .insert("x-upstream", http::HeaderValue::from_static(name));
            Ok::<_, Infallible>(res)
        }
    });
    Upstream {
        server: serve(svc).await,
        name,
        hits,
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(c)
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// `GET http://{addr}{path}` with `headers`; 10 s at most.
pub async fn get(c: &HttpClient, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(c, b.body(Full::new(Bytes::new())).expect("request")).await
}

/// Sends `req`; 10 s at most.
pub async fn send(c: &HttpClient, req: Request<Full<Bytes>>) -> Answer {
    let res = tokio::time::timeout(Duration::from_secs(10), c.request(req))
        .await
        .expect("answer within 10 s")
        .expect("HTTP exchange");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The `name=value` part of a `Set-Cookie` header for `name`, if any.
pub fn set_cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}
