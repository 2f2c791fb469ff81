//! Upstream protocols against real servers on 127.0.0.1: h2c with prior knowledge,
//! trailers, streaming both ways; HTTP/2 over TLS with a test CA, SNI and mTLS.
#![allow(clippy::unwrap_used, missing_docs)]

mod proto_support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use proto_support::{h1_client, h2_client, proxy, router, upstream};
use routing_tower::client::{HttpBackend, UpstreamProtocol};
use routing_tower::tls::{ServerTls, UpstreamTls};
use routing_tower::Backends;

const ONE: &str =
    "backends: [{name: up}]\nroutes: [{name: all, rules: [{backends: [{name: up}]}]}]\n";

fn h2c_backend(addr: std::net::SocketAddr) -> Backends {
    let b = HttpBackend::builder()
        .protocol(UpstreamProtocol::H2c)
        .build(addr);
    Backends::new().with("up", b)
}

/// An HTTP/2-only upstream answering with the version it saw and the `te` header.
async fn h2_only_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let te = req
                            .headers()
                            .get("te")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let body = format!("{:?} te={te:?}", req.version());
                        Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(
                            body,
                        ))))
                    });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn h2c_upstream_is_spoken_with_prior_knowledge_for_an_http1_client() {
    let up = h2_only_upstream().await;
    let px = proxy(router(ONE), h2c_backend(up)).await;
    let mut c = h1_client(px).await;
    let req = Request::get("/x")
        .header("host", "shop")
        .header("te", "trailers, deflate")
        .body(routing_tower::body::empty())
        .unwrap();
    let res = c.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "HTTP/2.0 te=Some(\"trailers\")");
}

#[tokio::test]
async fn h2c_trailers_pass_through_to_an_h2_client() {
    let up = upstream(|_req| async {
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"payload"))),
            Ok(Frame::trailers({
                let mut t = http::HeaderMap::new();
                t.insert("grpc-status", "0".parse().unwrap());
                t.insert("x-checksum", "abc".parse().unwrap());
                t
            })),
        ];
        Response::new(StreamBody::new(futures_util::stream::iter(frames)))
    })
    .await;
    let px = proxy(router(ONE), h2c_backend(up)).await;
    let mut c = h2_client(px).await;
    let req = Request::get("http://shop/x")
        .header("te", "trailers")
        .body(routing_tower::body::empty())
        .unwrap();
    let res = c.send_request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .cloned()
        .expect("trailers reached the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["x-checksum"], "abc");
    assert_eq!(collected.to_bytes(), "payload");
}

#[tokio::test]
async fn h2c_bodies_stream_both_ways_without_buffering() {
    // The upstream echoes each request frame as it arrives.
    let up = upstream(|req: Request<hyper::body::Incoming>| async move {
        let stream = futures_util::stream::unfold(req.into_body(), |mut b| async move {
            loop {
                match b.frame().await? {
                    Ok(f) => match f.into_data() {
                        Ok(d) => return Some((Ok::<_, hyper::Error>(Frame::data(d)), b)),
                        Err(_) => continue,
                    },
                    Err(e) => return Some((Err(e), b)),
                }
            }
        });
        Response::new(StreamBody::new(stream))
    })
    .await;
    let px = proxy(router(ONE), h2c_backend(up)).await;
    let mut c = h2_client(px).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let req = Request::post("http://shop/echo")
        .body(routing_tower::body::boxed(body))
        .unwrap();
    tx.send(Ok(Frame::data(Bytes::from_static(b"one"))))
        .await
        .unwrap();
    let res = c.send_request(req).await.unwrap();
    let mut body = res.into_body();
    // Each chunk comes back before the next is sent: nothing waits for the end.
    for next in [&b"two"[..], b"three"] {
        let got = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("echo arrived while the request was still open")
            .unwrap()
            .unwrap();
        assert!(got.is_data());
        tx.send(Ok(Frame::data(Bytes::from_static(next))))
            .await
            .unwrap();
    }
    let got = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(got, "three");
    drop(tx);
    assert!(body.frame().await.is_none_or(|f| f.is_ok()));
}

/// A test CA and a leaf for `names`, signed by it: (ca pem, cert pem, key pem).
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }
    fn ca_pem(&self) -> String {
        self.ca.pem()
    }
    fn leaf(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A TLS upstream (our own `serve_tls`) answering with the version and whether it
/// saw the request over TLS.
async fn tls_upstream(tls: ServerTls) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = tower::service_fn(|req: Request<hyper::body::Incoming>| async move {
        let tls = req
            .extensions()
            .get::<routing_tower::client::Transport>()
            .copied();
        let body = format!("{:?} {tls:?}", req.version());
        Ok::<_, Infallible>(Response::new(routing_tower::body::full(body)))
    });
    tokio::spawn(routing_tower::server::serve_tls(
        listener,
        tls.acceptor().unwrap(),
        svc,
        Default::default(),
        std::future::pending(),
    ));
    addr
}

async fn get_via(px: std::net::SocketAddr) -> (StatusCode, Bytes) {
    let mut c = h1_client(px).await;
    let res = c
        .send_request(
            Request::get("/")
                .header("host", "shop")
                .body(routing_tower::body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn tls_h2_upstream_with_a_test_ca_and_sni() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf("upstream.test");
    let up = tls_upstream(ServerTls::new(cert.as_bytes(), key.as_bytes()).unwrap()).await;
    let tls = UpstreamTls::new()
        .with_ca_pem(pki.ca_pem().as_bytes())
        .unwrap()
        .with_server_name("upstream.test")
        .unwrap();
    let b = HttpBackend::builder()
        .protocol(UpstreamProtocol::H2)
        .tls(Some(tls.clone()))
        .unwrap()
        .build(up);
    let px = proxy(router(ONE), Backends::new().with("up", b)).await;
    assert_eq!(
        get_via(px).await,
        (StatusCode::OK, Bytes::from("HTTP/2.0 Some(Tls)"))
    );
    // `auto` takes h2 from ALPN too; `http1` over TLS stays HTTP/1.1.
    for (p, want) in [
        (UpstreamProtocol::Auto, "HTTP/2.0"),
        (UpstreamProtocol::Http1, "HTTP/1.1"),
    ] {
        let b = HttpBackend::builder()
            .protocol(p)
            .tls(Some(tls.clone()))
            .unwrap()
            .build(up);
        let px = proxy(router(ONE), Backends::new().with("up", b)).await;
        let (s, body) = get_via(px).await;
        assert_eq!((s, &body[..8]), (StatusCode::OK, want.as_bytes()), "{p:?}");
    }
    // The wrong SNI name fails verification: no connection, 502.
    let wrong = UpstreamTls::new()
        .with_ca_pem(pki.ca_pem().as_bytes())
        .unwrap()
        .with_server_name("other.test")
        .unwrap();
    let b = HttpBackend::builder()
        .protocol(UpstreamProtocol::H2)
        .tls(Some(wrong))
        .unwrap()
        .build(up);
    let px = proxy(router(ONE), Backends::new().with("up", b)).await;
    assert_eq!(get_via(px).await.0, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn tls_mtls_client_certificate_is_presented_and_required() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf("upstream.test");
    let clients = Pki::new();
    let (ccert, ckey) = clients.leaf("proxy.test");
    let server = ServerTls::new(cert.as_bytes(), key.as_bytes())
        .unwrap()
        .with_client_ca_pem(clients.ca_pem().as_bytes())
        .unwrap();
    let up = tls_upstream(server).await;
    let base = UpstreamTls::new()
        .with_ca_pem(pki.ca_pem().as_bytes())
        .unwrap()
        .with_server_name("upstream.test")
        .unwrap();
    let with_cert = base
        .clone()
        .with_client_identity_pem(ccert.as_bytes(), ckey.as_bytes())
        .unwrap();
    assert_ne!(
        base.identity(),
        with_cert.identity(),
        "the pool tells them apart"
    );
    let builder = HttpBackend::builder().protocol(UpstreamProtocol::H2);
    let good = builder.clone().tls(Some(with_cert)).unwrap().build(up);
    let bare = builder.tls(Some(base)).unwrap().build(up);
    let px = proxy(router(ONE), Backends::new().with("up", good)).await;
    assert_eq!(
        get_via(px).await,
        (StatusCode::OK, Bytes::from("HTTP/2.0 Some(Tls)"))
    );
    // Same address, same builder, no client certificate: refused by the upstream.
    let px = proxy(router(ONE), Backends::new().with("up", bare)).await;
    assert_eq!(get_via(px).await.0, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn tls_unknown_ca_and_bad_pem_fail_cleanly() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf("upstream.test");
    let up = tls_upstream(ServerTls::new(cert.as_bytes(), key.as_bytes()).unwrap()).await;
    let stranger = Pki::new();
    let tls = UpstreamTls::new()
        .with_ca_pem(stranger.ca_pem().as_bytes())
        .unwrap()
        .with_server_name("upstream.test")
        .unwrap();
    let b = HttpBackend::builder()
        .protocol(UpstreamProtocol::H2)
        .tls(Some(tls))
        .unwrap()
        .build(up);
    let px = proxy(router(ONE), Backends::new().with("up", b)).await;
    assert_eq!(get_via(px).await.0, StatusCode::BAD_GATEWAY);
    // Bad input is a typed error naming the field, never a panic.
    let e = UpstreamTls::new()
        .with_ca_pem(b"-----BEGIN CERTIFICATE-----\nnope\n")
        .unwrap_err();
    assert_eq!(e.field, "ca");
    let e = UpstreamTls::new()
        .with_client_identity_pem(cert.as_bytes(), b"junk")
        .unwrap_err();
    assert_eq!(e.field, "client_key");
    assert_eq!(
        ServerTls::new(b"", key.as_bytes()).unwrap_err().field,
        "cert"
    );
}
