//! gRPC through the layer, with tonic clients and tonic servers on 127.0.0.1 (h2c):
//! a 90/10 split, retries on `unavailable`, streaming both ways, `grpc-timeout`,
//! and the layer's own answers as gRPC statuses.
#![allow(clippy::unwrap_used, clippy::result_large_err, missing_docs)]

mod proto_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use http::uri::PathAndQuery;
use proto_support::{proxy, proxy_layer, router, upstream};
use routing_tower::client::{HttpBackend, UpstreamProtocol};
use routing_tower::Backends;
use tonic::codec::ProstCodec;
use tonic::{Code, Status};

/// The one message of the test service (hand-written prost, no protoc).
#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(string, tag = "1")]
    text: String,
}

#[derive(Clone, Copy)]
enum Mode {
    Ok,
    Unavailable,
    Slow,
}

/// A tonic server named `name`: `Unary` answers `name:text` (or fails / stalls per
/// `mode`), `Bidi` echoes every message as it arrives.
async fn grpc_server(name: &'static str, mode: Mode) -> SocketAddr {
    upstream(
        move |req: http::Request<hyper::body::Incoming>| async move {
            let mut g = tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
            match req.uri().path() {
                "/test.Echo/Unary" => {
                    let svc = tower::service_fn(move |r: tonic::Request<Msg>| async move {
                        match mode {
                            Mode::Unavailable => return Err(Status::unavailable("down")),
                            Mode::Slow => tokio::time::sleep(Duration::from_secs(3)).await,
                            Mode::Ok => {}
                        }
                        Ok::<_, Status>(tonic::Response::new(Msg {
                            text: format!("{name}:{}", r.into_inner().text),
                        }))
                    });
                    g.unary(svc, req).await
                }
                "/test.Echo/Stall" => {
                    // One message, then nothing (no status either).
                    let svc = tower::service_fn(move |_: tonic::Request<Msg>| async move {
                        let out = futures_util::stream::iter([Ok(Msg {
                            text: format!("{name}:1"),
                        })])
                        .chain(futures_util::stream::pending());
                        Ok::<_, Status>(tonic::Response::new(out))
                    });
                    g.server_streaming(svc, req).await
                }
                "/test.Echo/Fail" => {
                    // Two messages, then UNAVAILABLE in the trailers.
                    let svc = tower::service_fn(move |_: tonic::Request<Msg>| async move {
                        let out = futures_util::stream::iter([
                            Ok(Msg {
                                text: format!("{name}:1"),
                            }),
                            Ok(Msg {
                                text: format!("{name}:2"),
                            }),
                            Err(Status::unavailable("failed mid-stream")),
                        ]);
                        Ok::<_, Status>(tonic::Response::new(out))
                    });
                    g.server_streaming(svc, req).await
                }
                _ => {
                    let svc = tower::service_fn(
                        move |r: tonic::Request<tonic::Streaming<Msg>>| async move {
                            if let Mode::Unavailable = mode {
                                return Err(Status::unavailable("down"));
                            }
                            let out = r.into_inner().map(move |m| {
                                m.map(|m| Msg {
                                    text: format!("{name}:{}", m.text),
                                })
                            });
                            Ok::<_, Status>(tonic::Response::new(out))
                        },
                    );
                    g.streaming(svc, req).await
                }
            }
        },
    )
    .await
}

fn backends(list: &[(&str, SocketAddr)]) -> Backends {
    let b = HttpBackend::builder().protocol(UpstreamProtocol::H2c);
    list.iter().fold(Backends::new(), |acc, (n, a)| {
        acc.with(n.to_string(), b.build(*a))
    })
}

fn split_yaml(extra: &str) -> String {
    format!(
        "backends: [{{name: v1}}, {{name: v2}}]
routes:
  - name: echo
    rules:
      - matches: [{{path: {{prefix: /test.Echo/}}}}]
        backends: [{{name: v1, weight: 90}}, {{name: v2, weight: 10}}]
{extra}"
    )
}

type Client = tonic::client::Grpc<tonic::transport::Channel>;

async fn client(px: SocketAddr) -> Client {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{px}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(ch)
}

async fn unary(
    c: &mut Client,
    path: &'static str,
    text: &str,
    timeout: Option<Duration>,
) -> Result<String, Status> {
    c.ready().await.unwrap();
    let mut req = tonic::Request::new(Msg { text: text.into() });
    if let Some(t) = timeout {
        req.set_timeout(t);
    }
    let res = c
        .unary(
            req,
            PathAndQuery::from_static(path),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await?;
    Ok(res.into_inner().text)
}

#[tokio::test]
async fn grpc_unary_split_90_10_through_the_layer() {
    let v1 = grpc_server("v1", Mode::Ok).await;
    let v2 = grpc_server("v2", Mode::Ok).await;
    let px = proxy(router(&split_yaml("")), backends(&[("v1", v1), ("v2", v2)])).await;
    let mut c = client(px).await;
    let (mut n1, mut n2) = (0, 0);
    for i in 0..200 {
        let got = unary(&mut c, "/test.Echo/Unary", &i.to_string(), None)
            .await
            .unwrap();
        match got.split_once(':') {
            Some(("v1", n)) if n == i.to_string() => n1 += 1,
            Some(("v2", n)) if n == i.to_string() => n2 += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(n1 + n2, 200);
    // Binomial(200, 0.1): mean 20, sd 4.2; 5..=40 is beyond 3.5 sd either way.
    assert!((5..=40).contains(&n2), "v2 got {n2} of 200");
}

#[tokio::test]
async fn grpc_retries_on_unavailable_and_only_on_it() {
    let flaky = grpc_server("v1", Mode::Unavailable).await;
    let good = grpc_server("v2", Mode::Ok).await;
    let yaml = split_yaml("        retry: {attempts: 2, on: [unavailable], backoff: 1ms}\n");
    let px = proxy(router(&yaml), backends(&[("v1", flaky), ("v2", good)])).await;
    let mut c = client(px).await;
    for i in 0..40 {
        // The trailers-only UNAVAILABLE of v1 is retried on v2, though gRPC is POST.
        let got = unary(&mut c, "/test.Echo/Unary", &i.to_string(), None)
            .await
            .unwrap();
        assert_eq!(got, format!("v2:{i}"));
    }
    // `5xx` is about HTTP statuses: a gRPC answer is HTTP 200 and is not retried.
    let yaml = split_yaml("        retry: {attempts: 2, on: [5xx], backoff: 1ms}\n");
    let px = proxy(router(&yaml), backends(&[("v1", flaky), ("v2", good)])).await;
    let mut c = client(px).await;
    let mut unavailable = 0;
    for i in 0..40 {
        match unary(&mut c, "/test.Echo/Unary", &i.to_string(), None).await {
            Ok(got) => assert_eq!(got, format!("v2:{i}")),
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable);
                assert_eq!(s.message(), "down", "the upstream's own status");
                unavailable += 1;
            }
        }
    }
    assert!(
        unavailable >= 20,
        "only {unavailable} of 40 reached the flaky backend"
    );
}

#[tokio::test]
async fn grpc_streaming_both_ways_interleaved() {
    let v1 = grpc_server("v1", Mode::Ok).await;
    let yaml =
        "backends: [{name: v1}]\nroutes: [{name: echo, rules: [{backends: [{name: v1}]}]}]\n";
    let px = proxy(router(yaml), backends(&[("v1", v1)])).await;
    let mut c = client(px).await;
    c.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(1);
    tx.send(Msg { text: "0".into() }).await.unwrap();
    let res = c
        .streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            PathAndQuery::from_static("/test.Echo/Bidi"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .unwrap();
    let mut replies = res.into_inner();
    // Each reply arrives before the next message is sent: no buffering either way.
    for i in 0..5 {
        let m = tokio::time::timeout(Duration::from_secs(5), replies.message())
            .await
            .expect("reply while the call is open")
            .unwrap()
            .unwrap();
        assert_eq!(m.text, format!("v1:{i}"));
        tx.send(Msg {
            text: (i + 1).to_string(),
        })
        .await
        .unwrap();
    }
    let last = replies.message().await.unwrap().unwrap();
    assert_eq!(last.text, "v1:5");
    drop(tx);
    assert!(
        replies.message().await.unwrap().is_none(),
        "clean end with grpc-status 0"
    );
}

#[tokio::test]
async fn grpc_layer_answers_are_grpc_statuses() {
    let slow = grpc_server("v1", Mode::Slow).await;
    let px = proxy(router(&split_yaml("")), backends(&[("v1", slow)])).await;
    let mut c = client(px).await;
    // grpc-timeout (200ms) is shorter than the rule's (none): DEADLINE_EXCEEDED from
    // the layer, long before the upstream's 3 s, when v1 is picked; v2 has no
    // service in this layer: UNAVAILABLE when it is. (A raw HTTP/2 client: tonic's
    // own client would enforce the timeout itself and race the layer.)
    let mut h2 = proto_support::h2_client(px).await;
    let (mut deadline, mut unavailable) = (false, false);
    for _ in 0..100 {
        let started = Instant::now();
        let mut framed = vec![0u8, 0, 0, 0, 3];
        framed.extend_from_slice(&prost::Message::encode_to_vec(&Msg { text: "x".into() })[..]);
        framed[4] = u8::try_from(framed.len() - 5).unwrap();
        let req = http::Request::post(format!("http://{px}/test.Echo/Unary"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", "200m")
            .body(routing_tower::body::full(framed))
            .unwrap();
        let res = h2.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200, "gRPC answers are HTTP 200");
        assert_eq!(res.headers()["content-type"], "application/grpc");
        match res.headers()["grpc-status"].to_str().unwrap() {
            "4" => {
                assert!(started.elapsed() < Duration::from_secs(2));
                deadline = true;
            }
            "14" => {
                let m = res.headers()["grpc-message"].to_str().unwrap();
                assert!(m.contains("no service"), "{m}");
                unavailable = true;
            }
            other => panic!("unexpected grpc-status {other}: {:?}", res.headers()),
        }
        if deadline && unavailable {
            break;
        }
    }
    assert!(deadline && unavailable);
    // No route: UNIMPLEMENTED, through tonic.
    let err = unary(&mut c, "/other.Svc/Call", "x", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
}

#[tokio::test]
async fn grpc_status_in_trailers_after_messages_feeds_stats_and_outlier_detection() {
    let v1 = grpc_server("v1", Mode::Ok).await;
    let yaml = "backends: [{name: v1}]
routes: [{name: echo, rules: [{backends: [{name: v1}]}]}]
outlier_detection: {consecutive_5xx: 3, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 100}
";
    let layer = routing_tower::RoutingLayer::new(router(yaml), backends(&[("v1", v1)]));
    let px = proxy_layer(&layer).await;
    let mut c = client(px).await;
    // A healthy unary call first: counted as a 2xx once its trailers say OK.
    assert_eq!(
        unary(&mut c, "/test.Echo/Unary", "a", None).await.unwrap(),
        "v1:a"
    );
    for round in 0..3 {
        c.ready().await.unwrap();
        let res = c
            .server_streaming(
                tonic::Request::new(Msg { text: "x".into() }),
                PathAndQuery::from_static("/test.Echo/Fail"),
                ProstCodec::<Msg, Msg>::default(),
            )
            .await
            .unwrap();
        let mut stream = res.into_inner();
        // The messages reach the client, then the status from the trailers.
        assert_eq!(stream.message().await.unwrap().unwrap().text, "v1:1");
        assert_eq!(stream.message().await.unwrap().unwrap().text, "v1:2");
        let status = stream.message().await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "round {round}");
        assert_eq!(status.message(), "failed mid-stream");
    }
    let s = &layer.stats()[0].1;
    // The head of each answer was HTTP 200; the trailers made them 503s.
    assert_eq!(s.responses[1], 1, "only the unary call is a success: {s:?}");
    assert_eq!(s.responses[4], 3, "three UNAVAILABLE in trailers: {s:?}");
    assert_eq!(s.latency_count(), 4, "each recorded once, with its latency");
    // Three consecutive 5xx-equivalents: the outlier detector ejected v1.
    assert!(
        layer.outlier_detector().is_ejected("v1"),
        "three trailer failures must eject v1"
    );
    assert_eq!(s.ejections, 1);
}

/// Opens `/test.Echo/Bidi` and checks that each reply comes back while the client's
/// stream is still open (the next message is sent only after it), `rounds` times.
async fn bidi_rounds(c: &mut Client, from: &str, rounds: usize) {
    c.ready().await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(1);
    tx.send(Msg { text: "0".into() }).await.unwrap();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        c.streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            PathAndQuery::from_static("/test.Echo/Bidi"),
            ProstCodec::<Msg, Msg>::default(),
        ),
    )
    .await
    .expect("response head while the client stream is open")
    .unwrap();
    let mut replies = res.into_inner();
    for i in 0..rounds {
        let m = tokio::time::timeout(Duration::from_secs(5), replies.message())
            .await
            .expect("a reply before the client closes its stream")
            .unwrap()
            .unwrap();
        assert_eq!(m.text, format!("{from}:{i}"));
        tx.send(Msg {
            text: (i + 1).to_string(),
        })
        .await
        .unwrap();
    }
    drop(tx);
    let last = replies.message().await.unwrap().unwrap();
    assert_eq!(last.text, format!("{from}:{rounds}"));
    assert!(replies.message().await.unwrap().is_none());
}

#[tokio::test]
async fn grpc_bidi_streaming_on_a_rule_with_retries_is_not_buffered() {
    let v1 = grpc_server("v1", Mode::Ok).await;
    let yaml = "backends: [{name: v1}]
routes:
  - name: echo
    rules:
      - backends: [{name: v1}]
        retry: {attempts: 2, on: [unavailable, 5xx], backoff: 1ms}
";
    let px = proxy(router(yaml), backends(&[("v1", v1)])).await;
    let mut c = client(px).await;
    // Before streaming replay bodies, the layer read the whole request body first
    // and this deadlocked: the first reply waited for the client's last message.
    bidi_rounds(&mut c, "v1", 5).await;
}

#[tokio::test]
async fn grpc_streaming_retry_replays_what_was_sent_and_keeps_streaming() {
    // v1 refuses the stream with a trailers-only UNAVAILABLE; the retry on v2 gets
    // the message already sent (replayed), then the rest live from the client.
    let flaky = grpc_server("v1", Mode::Unavailable).await;
    let good = grpc_server("v2", Mode::Ok).await;
    let yaml = "backends: [{name: v1}, {name: v2}]
routes:
  - name: echo
    rules:
      - backends: [{name: v1, weight: 50}, {name: v2, weight: 50}]
        retry: {attempts: 2, on: [unavailable], backoff: 1ms}
";
    let layer =
        routing_tower::RoutingLayer::new(router(yaml), backends(&[("v1", flaky), ("v2", good)]));
    let px = proxy_layer(&layer).await;
    let mut c = client(px).await;
    for _ in 0..12 {
        bidi_rounds(&mut c, "v2", 3).await;
    }
    let stats: std::collections::HashMap<_, _> = layer.stats().into_iter().collect();
    let refused = stats["v1"].responses[4];
    // 12 fair coin flips: all 12 on v2 has probability 1/4096.
    assert!(refused > 0, "v1 never picked: {stats:?}");
    assert_eq!(
        stats["v2"].retries, refused,
        "each refusal retried on v2 once"
    );
    assert_eq!(stats["v2"].requests, 12);
}

#[tokio::test]
async fn grpc_stream_cut_by_the_request_timeout_counts_as_a_timeout() {
    let v1 = grpc_server("v1", Mode::Ok).await;
    let yaml = "backends: [{name: v1}]
routes: [{name: echo, rules: [{backends: [{name: v1}], timeouts: {request: 300ms}}]}]
";
    let layer = routing_tower::RoutingLayer::new(router(yaml), backends(&[("v1", v1)]));
    let px = proxy_layer(&layer).await;
    let mut c = client(px).await;
    c.ready().await.unwrap();
    let res = c
        .server_streaming(
            tonic::Request::new(Msg { text: "x".into() }),
            PathAndQuery::from_static("/test.Echo/Stall"),
            ProstCodec::<Msg, Msg>::default(),
        )
        .await
        .unwrap();
    let mut stream = res.into_inner();
    assert_eq!(stream.message().await.unwrap().unwrap().text, "v1:1");
    let started = Instant::now();
    let cut = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the layer cuts the stream at its deadline");
    assert!(cut.is_err(), "a stream cut short is an error: {cut:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let s = &layer.stats()[0].1;
    assert_eq!(s.failures_timeout, 1, "recorded as a timeout: {s:?}");
    assert_eq!(
        s.responses.iter().sum::<u64>(),
        0,
        "and not as a response: {s:?}"
    );
}
