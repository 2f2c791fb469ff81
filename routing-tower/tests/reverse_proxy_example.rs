//! The `reverse_proxy` example as a user runs it: the built example binary, spawned
//! with a config on a temp file, in front of an h2c-only upstream on 127.0.0.1. The
//! config's `backends[].protocol: h2c` must be what the proxy speaks upstream (and
//! `--upstream NAME=http1` overrides it, which this upstream refuses).
//!
//! The binary is the one `cargo build -p routing-tower --examples` leaves in
//! `target/<profile>/examples/` (`cargo xtask test` runs that before the tests;
//! `cargo test --all-targets` builds examples only as test harnesses). Running this
//! file alone, build it first with `cargo build -p routing-tower --example
//! reverse_proxy`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;

/// The example binary beside this test's (`target/<profile>/examples/`).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("examples").join("reverse_proxy");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p routing-tower --example reverse_proxy` \
         (cargo xtask test does; cargo test --all-targets builds examples as test harnesses only)",
        bin.display()
    );
    bin
}

/// The spawned proxy, killed and reaped on drop.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temp directory, removed on drop (also when an assertion fails).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free port on 127.0.0.1 (bound, then released for the example to take).
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn start(config: &std::path::Path, extra: &[&str]) -> (Proxy, SocketAddr) {
    let listen = free_addr();
    let child = Command::new(example_binary())
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--threads")
        .arg("1")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proxy = Proxy(child);
    // Up to 10 s for the example to listen.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            return (proxy, listen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the example did not listen on {listen} within 10 s");
}

/// An upstream that speaks HTTP/2 with prior knowledge only.
async fn h2c_only() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        // Ends with the test (aborted).
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let v = format!("{:?}", req.version());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(v))))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc),
            );
        }
    });
    (addr, task)
}

async fn get(px: SocketAddr) -> (StatusCode, String) {
    let tcp = tokio::net::TcpStream::connect(px).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = send
        .send_request(
            Request::get("/")
                .header("host", "shop")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn reverse_proxy_example_speaks_h2c_to_a_backend_with_protocol_h2c() {
    let (up, task) = h2c_only().await;
    let dir = TempDir(std::env::temp_dir().join(format!("rp-example-h2c-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let config = dir.0.join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "backends: [{{name: g, address: \"{up}\", protocol: h2c}}]\n\
             routes: [{{name: all, rules: [{{backends: [{{name: g}}]}}]}}]\n"
        ),
    )
    .unwrap();
    {
        let (_proxy, px) = start(&config, &[]).await;
        // An HTTP/1.1 client; the upstream saw HTTP/2.
        assert_eq!(get(px).await, (StatusCode::OK, "HTTP/2.0".to_owned()));
    }
    {
        // `--upstream g=http1` wins over the config: this upstream refuses it.
        let (_proxy, px) = start(&config, &["--upstream", "g=http1"]).await;
        assert_eq!(get(px).await.0, StatusCode::BAD_GATEWAY);
    }
    task.abort();
}
