//! Two-level selection on the wire: real upstream "pods" on 127.0.0.1, a backend
//! (version) owning a pool of them, the layer choosing the version by the rule's
//! weights or sticky cookie and then a pod of that version (least request, or the
//! rule's hash key), per-pod ejection, draining pods, pool changes by Router::update.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use routing_core::Router;
use routing_testkit::http::{client, get, serve, set_cookie, upstream, upstream_with, Upstream};
use routing_tower::{HttpBackend, Routing};

/// A config: `v1` with `pods1`, `v2` with `pods2` (address, state), split `w1/w2`.
fn yaml(
    pods1: &[(&Upstream, &str)],
    pods2: &[(&Upstream, &str)],
    w: (u32, u32),
    extra: &str,
) -> String {
    let list = |pods: &[(&Upstream, &str)]| {
        pods.iter()
            .map(|(u, s)| format!("{{address: \"{}\", state: {s}}}", u.addr()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
backends:
  - {{name: v1, endpoints: [{}]}}
  - {{name: v2, endpoints: [{}]}}
routes:
  - name: shop
    rules:
      - backends: [{{name: v1, weight: {}}}, {{name: v2, weight: {}}}]
{extra}
"#,
        list(pods1),
        list(pods2),
        w.0,
        w.1
    )
}

async fn pods(names: [&'static str; 3]) -> [Upstream; 3] {
    [
        upstream(names[0]).await,
        upstream(names[1]).await,
        upstream(names[2]).await,
    ]
}

fn proxy_for(router: &Router) -> Routing<routing_tower::NotFound> {
    let backends = HttpBackend::builder().backends_for_config(&router.load().config().clone());
    Routing::dispatch(router.clone(), backends)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_split_by_weight_and_pods_share_their_versions_load() {
    let v1 = pods(["v1-a", "v1-b", "v1-c"]).await;
    let v2 = upstream("v2-a").await;
    let router = Router::from_yaml(&yaml(
        &[(&v1[0], "ready"), (&v1[1], "ready"), (&v1[2], "ready")],
        &[(&v2, "ready")],
        (80, 20),
        "",
    ))
    .expect("config");
    let proxy = serve(proxy_for(&router)).await;
    let c = client();
    let mut by: HashMap<String, u32> = HashMap::new();
    for _ in 0..1_500 {
        let a = get(&c, proxy.addr, "/", &[]).await;
        assert_eq!(a.status, StatusCode::OK);
        *by.entry(a.body.clone()).or_default() += 1;
    }
    let v1_total: u32 = ["v1-a", "v1-b", "v1-c"]
        .iter()
        .map(|n| by.get(*n).copied().unwrap_or(0))
        .sum();
    let share = f64::from(v1_total) / 1_500.0;
    assert!((share - 0.8).abs() < 0.05, "v1 share {share}: {by:?}");
    for n in ["v1-a", "v1-b", "v1-c"] {
        let pod = f64::from(by.get(n).copied().unwrap_or(0)) / f64::from(v1_total);
        assert!((pod - 1.0 / 3.0).abs() < 0.1, "{n} got {pod} of v1: {by:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_keeps_the_version_when_its_pod_goes_away() {
    let v1 = pods(["v1-a", "v1-b", "v1-c"]).await;
    let v2 = pods(["v2-a", "v2-b", "v2-c"]).await;
    let sticky = "        session_persistence: {cookie: {name: shop-sticky}}";
    let all2 = [(&v2[0], "ready"), (&v2[1], "ready"), (&v2[2], "ready")];
    let all1 = [(&v1[0], "ready"), (&v1[1], "ready"), (&v1[2], "ready")];
    let router = Router::from_yaml(&yaml(&all1, &all2, (50, 50), sticky)).expect("config");
    let proxy = serve(proxy_for(&router)).await;
    let c = client();
    // A session on v2.
    let mut cookie = None;
    for _ in 0..200 {
        let a = get(&c, proxy.addr, "/", &[]).await;
        if a.body.starts_with("v2") {
            cookie = set_cookie(&a.headers, "shop-sticky");
            break;
        }
    }
    let cookie = cookie.expect("a v2 session within 200 requests");
    // Every pod of v2 serves the session at some point (the cookie names v2, not a pod).
    let mut seen = HashMap::<String, u32>::new();
    for _ in 0..60 {
        let a = get(&c, proxy.addr, "/", &[("cookie", &cookie)]).await;
        assert!(a.body.starts_with("v2"), "pinned to v2, got {}", a.body);
        *seen.entry(a.body).or_default() += 1;
    }
    assert_eq!(
        seen.len(),
        3,
        "least request spreads the session over v2's pods: {seen:?}"
    );
    // v2-a goes away: the session stays on v2, on the other pods, with no error.
    router
        .update_yaml(&yaml(&all1, &all2[1..], (50, 50), sticky))
        .expect("pod removed");
    let before = v2[0].hits();
    for _ in 0..60 {
        let a = get(&c, proxy.addr, "/", &[("cookie", &cookie)]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body == "v2-b" || a.body == "v2-c", "got {}", a.body);
        assert!(
            set_cookie(&a.headers, "shop-sticky").is_none(),
            "the cookie stays valid"
        );
    }
    assert_eq!(v2[0].hits(), before, "the removed pod gets nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_pods_get_no_new_requests_and_serving_ones_only_as_fallback() {
    let v1 = pods(["v1-a", "v1-b", "v1-c"]).await;
    let v2 = upstream("v2-a").await;
    let router = Router::from_yaml(&yaml(
        &[(&v1[0], "ready"), (&v1[1], "draining"), (&v1[2], "serving")],
        &[(&v2, "ready")],
        (1, 0),
        "",
    ))
    .expect("config");
    let proxy = serve(proxy_for(&router)).await;
    let c = client();
    for _ in 0..200 {
        assert_eq!(get(&c, proxy.addr, "/", &[]).await.body, "v1-a");
    }
    assert_eq!((v1[1].hits(), v1[2].hits()), (0, 0));
    // The ready pod terminates too: the serving one takes over, the draining one never.
    router
        .update_yaml(&yaml(
            &[
                (&v1[0], "terminating"),
                (&v1[1], "draining"),
                (&v1[2], "serving"),
            ],
            &[(&v2, "ready")],
            (1, 0),
            "",
        ))
        .expect("update");
    for _ in 0..100 {
        assert_eq!(get(&c, proxy.addr, "/", &[]).await.body, "v1-c");
    }
    assert_eq!(v1[1].hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pod_is_ejected_alone() {
    let bad = upstream_with("v1-bad", Arc::new(|_, _| StatusCode::INTERNAL_SERVER_ERROR)).await;
    let good = [upstream("v1-a").await, upstream("v1-b").await];
    let v2 = upstream("v2-a").await;
    let od = "outlier_detection: {consecutive_5xx: 3, base_ejection_time: 60s, max_ejection_percent: 50}\n";
    let text = format!(
        "{od}{}",
        yaml(
            &[(&bad, "ready"), (&good[0], "ready"), (&good[1], "ready")],
            &[(&v2, "ready")],
            (1, 0),
            "",
        )
    );
    let router = Router::from_yaml(&text).expect("config");
    let proxy = serve(proxy_for(&router)).await;
    let c = client();
    let mut errors = 0;
    for _ in 0..300 {
        errors += u32::from(get(&c, proxy.addr, "/", &[]).await.status != StatusCode::OK);
    }
    assert_eq!(bad.hits(), 3, "ejected after 3 consecutive 5xx");
    assert_eq!(errors, 3);
    assert_eq!(good[0].hits() + good[1].hits(), 297);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_key_sticks_to_a_pod_and_new_pods_are_connected_on_update() {
    let v1 = pods(["v1-a", "v1-b", "v1-c"]).await;
    let v2 = upstream("v2-a").await;
    let hash = "        load_balancer: {consistent_hash: {header: x-user}}";
    let router = Router::from_yaml(&yaml(
        &[(&v1[0], "ready"), (&v1[1], "ready")],
        &[(&v2, "ready")],
        (1, 0),
        hash,
    ))
    .expect("config");
    let proxy = serve(proxy_for(&router)).await;
    let c = client();
    let mut first = HashMap::new();
    for u in 0..40 {
        let user = format!("user-{u}");
        let a = get(&c, proxy.addr, "/", &[("x-user", &user)]).await;
        for _ in 0..3 {
            assert_eq!(
                get(&c, proxy.addr, "/", &[("x-user", &user)]).await.body,
                a.body
            );
        }
        first.insert(user, a.body);
    }
    assert!(first.values().any(|b| b == "v1-a") && first.values().any(|b| b == "v1-b"));
    // A third pod joins: it is connected on first use, and only keys that move to it move.
    router
        .update_yaml(&yaml(
            &[(&v1[0], "ready"), (&v1[1], "ready"), (&v1[2], "ready")],
            &[(&v2, "ready")],
            (1, 0),
            hash,
        ))
        .expect("update");
    let mut moved_elsewhere = 0;
    for (user, was) in &first {
        let now = get(&c, proxy.addr, "/", &[("x-user", user)]).await.body;
        if now != *was && now != "v1-c" {
            moved_elsewhere += 1;
        }
    }
    assert!(v1[2].hits() > 0, "the new pod serves its keys");
    assert!(
        moved_elsewhere <= 2,
        "{moved_elsewhere} keys moved between old pods"
    );
}
