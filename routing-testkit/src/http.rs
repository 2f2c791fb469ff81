//! Real HTTP/1.1 on 127.0.0.1 for tests and the demo: serve any tower service on an
//! ephemeral port, upstreams that answer with their name and count their requests,
//! and a client that reads answers whole. Feature `http`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use routing_testkit::http::{client, get, upstream};
//! let v1 = upstream("v1").await;
//! let answer = get(&client(), v1.addr(), "/", &[]).await;
//! assert_eq!((answer.status.as_u16(), answer.body.as_str()), (200, "v1"));
//! assert_eq!(answer.headers["x-upstream"], "v1");
//! assert_eq!(v1.hits(), 1);
//! # }
//! ```

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
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The error type services and bodies may fail with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server task; aborted on drop, so nothing outlives its test.
#[derive(Debug)]
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Its address and task, which then runs until aborted (no longer on drop).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = routing_testkit::http::upstream("v1").await;
    /// let (addr, task) = s.server.into_parts();
    /// assert!(addr.ip().is_loopback());
    /// task.abort();
    /// # }
    /// ```
    #[must_use]
    pub fn into_parts(mut self) -> (SocketAddr, JoinHandle<()>) {
        let task = self.task.take().unwrap_or_else(|| tokio::spawn(async {}));
        (self.addr, task)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Serves a tower service over HTTP/1.1 on 127.0.0.1 (ephemeral port, `TCP_NODELAY`),
/// one task per connection.
///
/// # Panics
/// When 127.0.0.1 cannot be bound ([`try_serve`] returns the error instead).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from("hi"))))
/// });
/// let s = routing_testkit::http::serve(svc).await;
/// let a = routing_testkit::http::get(&routing_testkit::http::client(), s.addr, "/", &[]).await;
/// assert_eq!(a.body, "hi");
/// # }
/// ```
pub async fn serve<S, B>(svc: S) -> Server
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    try_serve(svc).await.expect("bind 127.0.0.1:0")
}

/// [`serve`], returning the error when 127.0.0.1 cannot be bound.
///
/// # Errors
/// When 127.0.0.1 cannot be bound.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let svc = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from("hi"))))
/// });
/// assert!(routing_testkit::http::try_serve(svc).await.is_ok());
/// # }
/// ```
pub async fn try_serve<S, B>(svc: S) -> std::io::Result<Server>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(Server {
        addr,
        task: Some(task),
    })
}

/// How an upstream answers its n-th request (n from 0).
pub type Behaviour = Arc<dyn Fn(u64, &Request<Incoming>) -> StatusCode + Send + Sync>;

/// An upstream that answers with its name and counts its requests.
#[derive(Debug)]
pub struct Upstream {
    /// The server (stopped on drop).
    pub server: Server,
    /// The name it answers with (body and `x-upstream` header).
    pub name: &'static str,
    /// Requests received.
    pub hits: Arc<AtomicU64>,
}

impl Upstream {
    /// Where it listens.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert!(routing_testkit::http::upstream("v1").await.addr().ip().is_loopback());
    /// # }
    /// ```
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Requests received so far.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert_eq!(routing_testkit::http::upstream("v1").await.hits(), 0);
    /// # }
    /// ```
    #[must_use]
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// An upstream answering 200 with its name (body and `x-upstream` header).
///
/// # Panics
/// When 127.0.0.1 cannot be bound.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let u = routing_testkit::http::upstream("v1").await;
/// assert_eq!(u.name, "v1");
/// # }
/// ```
pub async fn upstream(name: &'static str) -> Upstream {
    upstream_with(name, Arc::new(|_, _| StatusCode::OK)).await
}

/// An upstream answering `behaviour(n, req)` with its name as body and `x-upstream`
/// header.
///
/// # Panics
/// When 127.0.0.1 cannot be bound.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use routing_testkit::http::{client, get, upstream_with};
/// let flaky = upstream_with("v2", Arc::new(|n, _| if n % 2 == 0 { http::StatusCode::BAD_GATEWAY } else { http::StatusCode::OK })).await;
/// assert_eq!(get(&client(), flaky.addr(), "/", &[]).await.status, 502);
/// assert_eq!(get(&client(), flaky.addr(), "/", &[]).await.status, 200);
/// # }
/// ```
pub async fn upstream_with(name: &'static str, behaviour: Behaviour) -> Upstream {
    let hits = Arc::new(AtomicU64::new(0));
    let h = Arc::clone(&hits);
    let svc = tower::service_fn(move |req: Request<Incoming>| {
        let n = h.fetch_add(1, Ordering::Relaxed);
        let status = behaviour(n, &req);
        async move {
            let mut res = Response::new(Full::new(Bytes::from_static(name.as_bytes())));
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

/// The test client: hyper's pooled HTTP/1.1 client, `TCP_NODELAY`.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new [`HttpClient`] (up to 64 idle connections per host).
///
/// ```
/// let _c = routing_testkit::http::client();
/// ```
#[must_use]
pub fn client() -> HttpClient {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build(c)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body, as text (lossy UTF-8).
    pub body: String,
}

/// `GET http://{addr}{path}` with `headers`; 10 s at most.
///
/// # Panics
/// When there is no answer within 10 s or the exchange fails.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use routing_testkit::http::{client, get, upstream};
/// let u = upstream("v1").await;
/// assert_eq!(get(&client(), u.addr(), "/x", &[("x-a", "1")]).await.body, "v1");
/// # }
/// ```
pub async fn get(c: &HttpClient, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::get(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(c, b.body(Full::new(Bytes::new())).expect("request")).await
}

/// Sends `req`; 10 s at most.
///
/// # Panics
/// When there is no answer within 10 s or the exchange fails.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use routing_testkit::http::{client, send, upstream};
/// let u = upstream("v1").await;
/// let req = http::Request::post(format!("http://{}/", u.addr())).body(Default::default()).unwrap();
/// assert_eq!(send(&client(), req).await.status, 200);
/// # }
/// ```
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
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.append(http::header::SET_COOKIE, "s=abc; Path=/; HttpOnly".parse().unwrap());
/// assert_eq!(routing_testkit::http::set_cookie(&h, "s").as_deref(), Some("s=abc"));
/// assert_eq!(routing_testkit::http::set_cookie(&h, "t"), None);
/// ```
#[must_use]
pub fn set_cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}
