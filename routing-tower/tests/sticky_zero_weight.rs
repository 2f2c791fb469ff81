//! Cookie stickiness at weight 0, on the wire (real servers on 127.0.0.1): by
//! default a backend set to weight 0 drains at once and its sessions are re-pinned
//! with a new cookie; with `keep_at_zero_weight` (AWS ALB target-group stickiness,
//! where cookies beat weights) a valid cookie keeps its session there, while new
//! sessions follow the weights.

use http::StatusCode;
use routing_core::Router;
use routing_testkit::http::{client, get, serve, set_cookie, upstream};
use routing_tower::{Backends, HttpBackend, Routing};

fn yaml(v2: u32, keep: bool, a1: std::net::SocketAddr, a2: std::net::SocketAddr) -> String {
    format!(
        r#"
backends:
  - {{name: v1, address: "{a1}"}}
  - {{name: v2, address: "{a2}"}}
routes:
  - name: pay
    rules:
      - backends: [{{name: v1, weight: 50}}, {{name: v2, weight: {v2}}}]
        session_persistence: {{cookie: {{name: pay-sticky, keep_at_zero_weight: {keep}}}}}
"#
    )
}

/// Opens sessions until 20 are on v2, drains v2 (weight 0), and returns how many of
/// those sessions' next requests reached v2 and how many got a new cookie, and how
/// many of 200 new sessions reached v2.
async fn drain(keep: bool) -> (usize, usize, usize) {
    let (u1, u2) = (upstream("v1").await, upstream("v2").await);
    let router = Router::from_yaml(&yaml(50, keep, u1.addr(), u2.addr())).expect("config");
    let backends = Backends::new()
        .with("v1", HttpBackend::new(u1.addr()))
        .with("v2", HttpBackend::new(u2.addr()));
    let proxy = serve(Routing::dispatch(router.clone(), backends)).await;
    let c = client();
    let mut on_v2 = Vec::new();
    for _ in 0..1_000 {
        let a = get(&c, proxy.addr, "/", &[]).await;
        if a.body == "v2" {
            on_v2.push(set_cookie(&a.headers, "pay-sticky").expect("a cookie"));
            if on_v2.len() == 20 {
                break;
            }
        }
    }
    assert_eq!(on_v2.len(), 20, "a 50/50 split opens v2 sessions");
    router
        .update_yaml(&yaml(0, keep, u1.addr(), u2.addr()))
        .expect("v2 drained");
    let (mut stayed, mut reissued) = (0, 0);
    for cookie in &on_v2 {
        let a = get(&c, proxy.addr, "/", &[("cookie", cookie)]).await;
        assert_eq!(a.status, StatusCode::OK);
        stayed += usize::from(a.body == "v2");
        reissued += usize::from(set_cookie(&a.headers, "pay-sticky").is_some());
    }
    let mut fresh_v2 = 0;
    for _ in 0..200 {
        fresh_v2 += usize::from(get(&c, proxy.addr, "/", &[]).await.body == "v2");
    }
    (stayed, reissued, fresh_v2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_zero_drains_sessions_by_default() {
    assert_eq!(
        drain(false).await,
        (0, 20, 0),
        "every v2 session moves to v1 with a new cookie; no new session reaches v2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_at_zero_weight_keeps_sessions_as_alb_does() {
    assert_eq!(
        drain(true).await,
        (20, 0, 0),
        "every v2 session stays, its cookie still valid; no new session reaches v2"
    );
}
