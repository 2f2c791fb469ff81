//! routing-kube against the loopback API server of routing-testkit, driven by the
//! real kube-rs client over HTTP; and against a real cluster when KUBECONFIG is set.

use std::time::Duration;

use routing_core::{Config, EndpointState, RequestInfo, Router};
use routing_kube::{Kind, KubeSource, Options};
use routing_testkit::kubeapi::KubeApi;
use serde_json::{json, Value};

const ROUTES: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/web/httproutes";
const VS: &str = "/apis/networking.istio.io/v1/namespaces/web/virtualservices";
const DR: &str = "/apis/networking.istio.io/v1/namespaces/web/destinationrules";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/web/endpointslices";
const EVENTS: &str = "/api/v1/namespaces/web/events";
const WAIT: Duration = Duration::from_secs(10);

fn client(api: &KubeApi) -> kube::Client {
    let uri: http::Uri = api.url().parse().expect("url");
    let mut cfg = kube::Config::new(uri);
    cfg.default_namespace = "web".into();
    kube::Client::try_from(cfg).expect("client")
}

fn route(name: &str, backends: &[(&str, u64)]) -> Value {
    let refs: Vec<Value> = backends
        .iter()
        .map(|(n, w)| json!({"name": n, "port": 8080, "weight": w}))
        .collect();
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "labels": {"app": "shop"}},
           "spec": {"hostnames": [format!("{name}.example.com")], "rules": [{"backendRefs": refs}]}})
}

fn slice(svc: &str, eps: &[(&str, bool, bool)]) -> Value {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, ready, terminating)| {
            json!({"addresses": [ip], "conditions": {"ready": ready, "serving": true, "terminating": terminating}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": format!("{svc}-abc"), "labels": {"kubernetes.io/service-name": svc}},
           "addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}], "endpoints": endpoints})
}

fn empty_router() -> Router {
    Router::new(Config::default()).expect("empty router")
}

/// The backend names of the route serving `host`, with their weights.
fn weights(router: &Router, host: &str) -> Vec<(String, u64)> {
    let t = router.snapshot();
    t.config()
        .routes
        .iter()
        .filter(|r| r.hostnames.iter().any(|h| h == host))
        .flat_map(|r| r.rules.iter().flat_map(|x| x.backends.iter()))
        .map(|b| (b.name.clone(), b.weight))
        .collect()
}

async fn start(api: &KubeApi, router: &Router, opts: Options) -> KubeSource {
    let mut s = KubeSource::spawn(
        client(api),
        router.clone(),
        opts.debounce(Duration::from_millis(50)),
    );
    s.wait_for(WAIT, |s| s.applied >= 1)
        .await
        .expect("first set applied");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_httproute_add_modify_delete_reach_the_table() {
    let api = KubeApi::start().await;
    let router = empty_router();
    api.put(ROUTES, route("shop", &[("shop-v1", 1)]));
    let mut src = start(&api, &router, Options::default().namespace("web")).await;
    assert_eq!(
        weights(&router, "shop.example.com"),
        [("shop-v1:8080".to_owned(), 1)]
    );

    api.put(ROUTES, route("shop", &[("shop-v1", 90), ("shop-v2", 10)]));
    src.wait_for(WAIT, |s| s.applied >= 2)
        .await
        .expect("modify applied");
    assert_eq!(
        weights(&router, "shop.example.com"),
        [
            ("shop-v1:8080".to_owned(), 90),
            ("shop-v2:8080".to_owned(), 10)
        ]
    );

    api.put(ROUTES, route("cart", &[("cart", 1)]));
    src.wait_for(WAIT, |s| s.applied >= 3)
        .await
        .expect("add applied");
    assert_eq!(router.snapshot().routes().len(), 2);

    assert!(api.delete(ROUTES, "shop"));
    src.wait_for(WAIT, |s| s.applied >= 4)
        .await
        .expect("delete applied");
    assert!(weights(&router, "shop.example.com").is_empty());
    assert_eq!(router.snapshot().routes()[0].name(), "web/cart");
    assert_eq!(src.status().generation, router.generation());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_istio_virtualservice_and_destinationrule_reach_the_table() {
    let api = KubeApi::start().await;
    let router = empty_router();
    let vs = |w1: u64, w2: u64| {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews"},
        "spec": {"hosts": ["reviews.example.com"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": w1},
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": w2}]}]}})
    };
    let dr = |lb: &str| {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews"},
        "spec": {"host": "reviews", "trafficPolicy": {"loadBalancer": {"simple": lb}},
                 "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}})
    };
    api.put(VS, vs(80, 20));
    api.put(DR, dr("ROUND_ROBIN"));
    let mut src = start(&api, &router, Options::default().namespace("web")).await;
    let w = weights(&router, "reviews.example.com");
    assert_eq!(w.iter().map(|x| x.1).collect::<Vec<_>>(), [80, 20], "{w:?}");

    api.put(VS, vs(50, 50));
    src.wait_for(WAIT, |s| s.applied >= 2)
        .await
        .expect("VirtualService change applied");
    assert_eq!(
        weights(&router, "reviews.example.com")
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        [50, 50]
    );

    let before = router.snapshot().config().clone();
    api.put(DR, dr("RANDOM"));
    src.wait_for(WAIT, |s| s.applied >= 3)
        .await
        .expect("DestinationRule change applied");
    assert_ne!(
        router.snapshot().config(),
        &before,
        "the load balancer changed"
    );

    assert!(api.delete(DR, "reviews"));
    assert!(api.delete(VS, "reviews"));
    src.wait_for(WAIT, |s| {
        s.applied >= 4 && weights(&router, "reviews.example.com").is_empty()
    })
    .await
    .expect("deletes applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_invalid_change_keeps_the_old_table_and_posts_an_event() {
    let api = KubeApi::start().await;
    let router = empty_router();
    api.put(ROUTES, route("shop", &[("shop-v1", 1)]));
    let mut src = start(&api, &router, Options::default().namespace("web")).await;
    let generation = router.generation();
    let mut bad = route("shop", &[("shop-v1", 1)]);
    bad["spec"]["rules"][0]["matches"] = json!([{"path": {"type": "Nonsense", "value": "/"}}]);
    api.put(ROUTES, bad);
    let s = src
        .wait_for(WAIT, |s| s.rejected >= 1)
        .await
        .expect("rejected");
    assert_eq!(router.generation(), generation, "the old table stays live");
    assert_eq!(
        weights(&router, "shop.example.com"),
        [("shop-v1:8080".to_owned(), 1)]
    );
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTPRoute web/shop")),
        "{s:?}"
    );
    assert_eq!(s.events_posted, 1);
    let events = api.objects(EVENTS);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["involvedObject"]["name"], "shop");
    assert_eq!(events[0]["involvedObject"]["kind"], "HTTPRoute");
    assert_eq!(events[0]["type"], "Warning");
    assert!(
        events[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.rules[0].matches[0].path")),
        "{events:?}"
    );

    // Fixing it applies again.
    api.put(ROUTES, route("shop", &[("shop-v2", 1)]));
    src.wait_for(WAIT, |s| s.applied >= 2)
        .await
        .expect("fix applied");
    assert_eq!(
        weights(&router, "shop.example.com"),
        [("shop-v2:8080".to_owned(), 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_relists_after_410_gone() {
    let api = KubeApi::start().await;
    let router = empty_router();
    api.put(ROUTES, route("shop", &[("shop-v1", 1)]));
    let mut src = start(
        &api,
        &router,
        Options::default()
            .namespace("web")
            .kinds(&[Kind::HttpRoute])
            .endpoint_slices(false),
    )
    .await;
    let lists = api.lists();
    api.bookmark();
    // The change happens while the watch is down, and the history is compacted: the
    // client's resourceVersion is too old, the server says 410, the client relists.
    api.expire(|api| {
        api.put(ROUTES, route("shop", &[("shop-v3", 1)]));
    });
    src.wait_for(WAIT, |s| s.applied >= 2)
        .await
        .expect("change seen through a relist");
    assert_eq!(
        weights(&router, "shop.example.com"),
        [("shop-v3:8080".to_owned(), 1)]
    );
    assert!(api.gone() >= 1, "a watch was refused with 410");
    assert!(api.lists() > lists, "the client listed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_endpointslice_terminating_endpoint_takes_no_new_requests() {
    let api = KubeApi::start().await;
    let router = empty_router();
    api.put(ROUTES, route("shop", &[("shop-v1", 1)]));
    api.put(
        SLICES,
        slice(
            "shop-v1",
            &[("10.0.0.1", true, false), ("10.0.0.2", true, false)],
        ),
    );
    let mut src = start(&api, &router, Options::default().namespace("web")).await;
    // The version keeps its rule weight; its pods are its endpoint pool.
    assert_eq!(
        weights(&router, "shop.example.com"),
        [("shop-v1:8080".to_owned(), 1)]
    );
    assert_eq!(
        pool(&router, "shop-v1:8080"),
        [
            ("10.0.0.1:8080".to_owned(), EndpointState::Ready),
            ("10.0.0.2:8080".to_owned(), EndpointState::Ready)
        ]
    );
    // 10.0.0.2 terminates (still serving): it drains while 10.0.0.1 is ready.
    api.put(
        SLICES,
        slice(
            "shop-v1",
            &[("10.0.0.1", true, false), ("10.0.0.2", false, true)],
        ),
    );
    src.wait_for(WAIT, |s| s.applied >= 2)
        .await
        .expect("drain applied");
    assert_eq!(
        pool(&router, "shop-v1:8080"),
        [
            ("10.0.0.1:8080".to_owned(), EndpointState::Ready),
            ("10.0.0.2:8080".to_owned(), EndpointState::Serving)
        ]
    );
    let mut rng = rand::rng();
    let t = router.snapshot();
    for _ in 0..200 {
        let d = t
            .decide(&RequestInfo::get("http://shop.example.com/"), &mut rng)
            .expect("decides");
        let b = d.backend().expect("a backend");
        assert_eq!(b.name(), "shop-v1:8080");
        let pool = b.endpoints().expect("a pool");
        let i = pool
            .pick(&mut rng, d.sticky_key(), |_| 0, |_| true)
            .expect("an endpoint");
        assert_eq!(
            pool.endpoints()[i].address(),
            "10.0.0.1:8080".parse().expect("addr")
        );
    }
    // Gone from the slice: gone from the table.
    assert!(api.delete(SLICES, "shop-v1-abc"));
    src.wait_for(WAIT, |s| s.applied >= 3)
        .await
        .expect("slice delete applied");
    assert_eq!(
        weights(&router, "shop.example.com"),
        [("shop-v1:8080".to_owned(), 1)]
    );
    assert!(pool(&router, "shop-v1:8080").is_empty());
}

/// The endpoints of backend `name` and their states.
fn pool(router: &Router, name: &str) -> Vec<(String, EndpointState)> {
    let t = router.snapshot();
    t.backend_id(name)
        .and_then(|id| t.backend(id).endpoints().cloned())
        .map(|p| {
            p.endpoints()
                .iter()
                .map(|e| (e.address().to_string(), e.state()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_two_replicas_converge_to_the_same_fingerprint() {
    let api = KubeApi::start().await;
    api.put(ROUTES, route("shop", &[("shop-v1", 9), ("shop-v2", 1)]));
    api.put(SLICES, slice("shop-v1", &[("10.0.0.1", true, false)]));
    let (r1, r2) = (empty_router(), empty_router());
    // Replica 2 already has a different generation history.
    r2.update(Config::default()).expect("update");
    let mut a = start(
        &api,
        &r1,
        Options::default().namespace("web").labels("app=shop"),
    )
    .await;
    let mut b = start(
        &api,
        &r2,
        Options::default().namespace("web").labels("app=shop"),
    )
    .await;
    for i in 0..5u64 {
        api.put(
            ROUTES,
            route("shop", &[("shop-v1", 9 - i), ("shop-v2", 1 + i)]),
        );
    }
    api.put(
        SLICES,
        slice(
            "shop-v1",
            &[("10.0.0.1", true, false), ("10.0.0.3", true, false)],
        ),
    );
    let want = routing_kube::render(&[], &[], &Default::default())
        .expect("render")
        .fingerprint;
    let sa = a
        .wait_for(WAIT, |s| {
            pool(&r1, "shop-v1:8080").len() == 2 && s.fingerprint != want
        })
        .await
        .expect("a converged");
    let sb = b
        .wait_for(WAIT, |s| s.fingerprint == sa.fingerprint)
        .await
        .expect("b converged to a's fingerprint");
    assert_eq!(r1.snapshot().config(), r2.snapshot().config());
    // The pods are shop-v1's pool; both replicas built the same Maglev tables.
    assert_eq!(weights(&r1, "shop.example.com").len(), 2);
    assert_eq!(
        r1.snapshot().maglev_fingerprint(),
        r2.snapshot().maglev_fingerprint()
    );
    assert_ne!(
        sa.generation, sb.generation,
        "generations are local; the fingerprint is not"
    );
    // An object outside the selector changes nothing.
    let mut other = route("other", &[("x", 1)]);
    other["metadata"]["labels"] = json!({"app": "other"});
    api.put(ROUTES, other);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.status().fingerprint, sa.fingerprint);
}

/// Against a real cluster: runs when KUBECONFIG is set, and then fails loudly if the
/// cluster cannot be reached; reported as ignored otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(kube_real_cluster), ignore = "KUBECONFIG is not set")]
async fn kube_real_cluster_endpointslices() {
    // Without KUBECONFIG the test is marked ignored at build time, and
    // `cargo xtask test` never runs routing-kube with `--include-ignored`; run by
    // hand anyway, it fails rather than passing without a cluster.
    let path = std::env::var("KUBECONFIG")
        .expect("kube_real_cluster_endpointslices needs KUBECONFIG naming a reachable cluster");
    let cfg = kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("KUBECONFIG={path}: {e}"));
    let client = kube::Client::try_from(cfg).expect("client");
    let version = client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("cluster unreachable: {e}"));
    assert!(!version.git_version.is_empty());
    let router = empty_router();
    let mut src = KubeSource::spawn(client, router, Options::default().kinds(&[]));
    src.wait_for(Duration::from_secs(30), |s| s.applied >= 1)
        .await
        .expect("EndpointSlices listed and applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_gateway_and_referencegrant_reach_the_table() {
    const GATEWAYS: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/web/gateways";
    const GRANTS: &str =
        "/apis/gateway.networking.k8s.io/v1beta1/namespaces/shared/referencegrants";
    let api = KubeApi::start().await;
    let router = empty_router();
    let mut r = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "shop"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["shop.example.com", "shop.other.org"],
                 "rules": [{"backendRefs": [{"name": "db", "namespace": "shared", "port": 8080}]}]}});
    api.put(ROUTES, r.clone());
    let mut src = start(&api, &router, Options::default()).await;
    let hostnames = |router: &Router| router.snapshot().config().routes[0].hostnames.clone();
    // No grant in `shared`: the cross-namespace reference is invalid (answered 500).
    let rule = router.snapshot().config().routes[0].rules[0].clone();
    assert!(
        rule.backends.is_empty() && rule.fixed_response.is_some(),
        "{rule:?}"
    );
    assert_eq!(hostnames(&router).len(), 2);

    api.put(GRANTS, json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"name": "from-web"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "web"}],
                 "to": [{"group": "", "kind": "Service"}]}}));
    src.wait_for(WAIT, |s| s.applied >= 2)
        .await
        .expect("grant applied");
    assert_eq!(
        weights(&router, "shop.example.com"),
        [("shared/db:8080".to_owned(), 1)]
    );

    // A Gateway whose listener takes only *.example.com narrows the hostnames.
    api.put(
        GATEWAYS,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw"},
        "spec": {"gatewayClassName": "x", "listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80, "hostname": "*.example.com"}]}}),
    );
    src.wait_for(WAIT, |s| s.applied >= 3)
        .await
        .expect("gateway applied");
    assert_eq!(hostnames(&router), ["shop.example.com"]);

    // Deleting the grant makes the reference invalid again.
    assert!(api.delete(GRANTS, "from-web"));
    src.wait_for(WAIT, |s| s.applied >= 4)
        .await
        .expect("grant delete applied");
    assert!(weights(&router, "shop.example.com").is_empty());
    // And the route's own change still reaches the table.
    r["spec"]["hostnames"] = json!(["cart.example.com", "cart.other.org"]);
    api.put(ROUTES, r);
    src.wait_for(WAIT, |s| s.applied >= 5)
        .await
        .expect("route change applied");
    assert_eq!(hostnames(&router), ["cart.example.com"]);
    assert!(api.delete(GATEWAYS, "gw"));
    src.wait_for(WAIT, |s| s.applied >= 6)
        .await
        .expect("gateway delete applied");
    assert_eq!(
        hostnames(&router),
        ["cart.example.com", "cart.other.org"],
        "no listener narrows them now"
    );
}

/// Our entry of `status.parents` (controller `me.io/routing`) of route `name`.
fn our_conditions(api: &KubeApi, name: &str) -> Vec<(String, String, String)> {
    let Some(route) = api.object(ROUTES, name) else {
        return Vec::new();
    };
    let parents = route["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    parents
        .iter()
        .filter(|p| p["controllerName"] == "me.io/routing")
        .flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
            (s("type"), s("status"), s("reason"))
        })
        .collect()
}

fn cond(t: &str, s: &str, r: &str) -> (String, String, String) {
    (t.to_owned(), s.to_owned(), r.to_owned())
}

/// Route status is written by the elected replica only, keeps other controllers'
/// entries, says why a backendRef is unresolved and why a route was refused, and
/// passes to the new leader on failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_route_status_is_written_by_the_leader_only() {
    let api = KubeApi::start().await;
    let other = json!({"parentRef": {"name": "gw"}, "controllerName": "other.io/gateway",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
    let mut r = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "shop"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["shop.example.com"],
                 "rules": [{"backendRefs": [{"name": "shop", "port": 8080, "weight": 9},
                                            {"name": "db", "namespace": "shared", "port": 8080, "weight": 1}]}]},
        "status": {"parents": [other.clone()]}});
    api.put(ROUTES, r.clone());
    let (a_tx, a_leader) = tokio::sync::watch::channel(true);
    let (b_tx, b_leader) = tokio::sync::watch::channel(false);
    let (ra, rb) = (empty_router(), empty_router());
    let opts = |leader| {
        Options::default()
            .namespace("web")
            .write_status("me.io/routing", leader)
    };
    let mut a = start(&api, &ra, opts(a_leader)).await;
    let b = start(&api, &rb, opts(b_leader)).await;
    a.wait_for(WAIT, |s| s.status_writes >= 1)
        .await
        .expect("the leader writes status");
    // The reference to `shared/db` has no grant: accepted, refs not resolved.
    assert_eq!(
        our_conditions(&api, "shop"),
        [
            cond("Accepted", "True", "Accepted"),
            cond("ResolvedRefs", "False", "RefNotPermitted")
        ]
    );
    let stored = api.object(ROUTES, "shop").expect("route");
    assert_eq!(
        stored["status"]["parents"][0], other,
        "another controller's entry is kept"
    );
    assert_eq!(
        stored["status"]["parents"].as_array().map(Vec::len),
        Some(2)
    );
    let gen = stored["metadata"]["generation"].as_i64();
    assert_eq!(
        stored["status"]["parents"][1]["conditions"][0]["observedGeneration"].as_i64(),
        gen
    );

    // An invalid change: the old table stays, and the route says why.
    r["spec"]["rules"][0]["matches"] =
        json!([{"path": {"type": "RegularExpression", "value": "/(unclosed"}}]);
    api.put(ROUTES, r.clone());
    a.wait_for(WAIT, |s| s.rejected >= 1)
        .await
        .expect("refused");
    a.wait_for(WAIT, |s| s.status_writes >= 2)
        .await
        .expect("refusal written");
    assert_eq!(
        our_conditions(&api, "shop")[0],
        cond("Accepted", "False", "UnsupportedValue")
    );
    assert_eq!(b.status().status_writes, 0, "a follower writes nothing");

    // Failover: the new leader takes over writing; the old one stops.
    a_tx.send(false).expect("a's election");
    b_tx.send(true).expect("b's election");
    r["spec"]["rules"][0]["matches"] = json!([{"path": {"type": "PathPrefix", "value": "/"}}]);
    r["spec"]["rules"][0]["backendRefs"] = json!([{"name": "shop", "port": 8080}]);
    api.put(ROUTES, r);
    // The new leader may first see the refused version (it wakes on gaining
    // leadership); what counts is that it ends on the fixed route's verdict.
    let fixed = [
        cond("Accepted", "True", "Accepted"),
        cond("ResolvedRefs", "True", "ResolvedRefs"),
    ];
    let deadline = std::time::Instant::now() + WAIT;
    while our_conditions(&api, "shop") != fixed && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(our_conditions(&api, "shop"), fixed);
    assert!(b.status().status_writes >= 1, "the new leader wrote it");
    let writes_by_a = a.status().status_writes;
    let writes_by_b = b.status().status_writes;
    // Nothing more to say: no write loop from the watch events writes cause.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.status().status_writes, writes_by_b);
    assert_eq!(a.status().status_writes, writes_by_a);
    assert_eq!(a.status().status_errors + b.status().status_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_grpcroute_reaches_the_table() {
    const GRPC: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/web/grpcroutes";
    let api = KubeApi::start().await;
    let router = empty_router();
    api.put(
        GRPC,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
        "metadata": {"name": "greeter"},
        "spec": {"hostnames": ["grpc.example.com"], "rules": [
            {"matches": [{"method": {"service": "helloworld.Greeter", "method": "SayHello"}}],
             "backendRefs": [{"name": "greeter-v2", "port": 50051}]},
            {"backendRefs": [{"name": "greeter-v1", "port": 50051}]}]}}),
    );
    let _src = start(&api, &router, Options::default().namespace("web")).await;
    let table = router.snapshot();
    let mut rng = rand::rng();
    let mut pick = |path: &str| {
        let req = RequestInfo::new(
            http::Method::POST,
            &format!("http://grpc.example.com{path}"),
        );
        table
            .decide(&req, &mut rng)
            .ok()
            .and_then(|d| d.backend().map(|b| b.name().to_owned()))
    };
    assert_eq!(
        pick("/helloworld.Greeter/SayHello").as_deref(),
        Some("greeter-v2:50051")
    );
    assert_eq!(
        pick("/helloworld.Greeter/Other").as_deref(),
        Some("greeter-v1:50051")
    );
}

/// The loopback server's Lease protocol, through kube-rs: get, replace, and 409 on a
/// replace from a stale resourceVersion (what a leader election builds on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_lease_update_conflicts_on_a_stale_resource_version() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, PostParams};
    let api = KubeApi::start().await;
    let leases: Api<Lease> = Api::namespaced(client(&api), "web");
    let mut lease = Lease::default();
    lease.metadata.name = Some("routing-writer".into());
    lease.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
        holder_identity: Some("a".into()),
        ..Default::default()
    });
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create");
    let again = leases.create(&PostParams::default(), &lease).await;
    assert!(
        matches!(again, Err(kube::Error::Api(ref s)) if s.code == 409),
        "{again:?}"
    );

    let mut by_b = leases.get("routing-writer").await.expect("get");
    by_b.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    let taken = leases
        .replace("routing-writer", &PostParams::default(), &by_b)
        .await
        .expect("b takes it");
    assert_ne!(
        taken.metadata.resource_version,
        created.metadata.resource_version
    );

    // `a` still holds the old resourceVersion: its update is refused with 409.
    let mut by_a = created.clone();
    by_a.spec.as_mut().expect("spec").holder_identity = Some("a".into());
    let stale = leases
        .replace("routing-writer", &PostParams::default(), &by_a)
        .await;
    assert!(
        matches!(stale, Err(kube::Error::Api(ref s)) if s.code == 409 && s.reason == "Conflict"),
        "{stale:?}"
    );
    assert_eq!(api.conflicts(), 2);
    let now = leases.get("routing-writer").await.expect("get");
    assert_eq!(
        now.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("b")
    );
}

/// Two-level selection from EndpointSlices: a session pinned to a version (a sticky
/// cookie's `prefer`) keeps the version while its pods come and go; the pool follows
/// the slices, and a terminating pod takes no new request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_endpointslice_churn_keeps_sessions_on_their_version() {
    let api = KubeApi::start().await;
    let router = empty_router();
    api.put(ROUTES, route("shop", &[("shop-v1", 90), ("shop-v2", 10)]));
    let v1 = [("10.0.1.1", true, false), ("10.0.1.2", true, false)];
    api.put(SLICES, slice("shop-v1", &v1));
    let mut v2 = slice(
        "shop-v2",
        &[
            ("10.0.2.1", true, false),
            ("10.0.2.2", true, false),
            ("10.0.2.3", true, false),
        ],
    );
    api.put(SLICES, v2.clone());
    let mut src = start(&api, &router, Options::default().namespace("web")).await;
    src.wait_for(WAIT, |_| pool(&router, "shop-v2:8080").len() == 3)
        .await
        .expect("both pools applied");
    // The split is the route's, whatever the pod counts (2 and 3).
    assert_eq!(
        weights(&router, "shop.example.com"),
        [
            ("shop-v1:8080".to_owned(), 90),
            ("shop-v2:8080".to_owned(), 10)
        ]
    );
    let session = |router: &Router| {
        let t = router.snapshot();
        let v2 = t.backend_id("shop-v2:8080").expect("v2");
        let req = RequestInfo::get("http://shop.example.com/");
        let m = t.find(&req).expect("matches");
        let mut rng = rand::rng();
        (0..100)
            .map(|_| {
                let d = t
                    .select(m, &req, &mut rng, routing_core::Selection::new().prefer(v2))
                    .expect("selects");
                let b = d.backend().expect("backend");
                let pool = b.endpoints().expect("pool");
                let i = pool
                    .pick(&mut rng, d.sticky_key(), |_| 0, |_| true)
                    .expect("an endpoint");
                (
                    b.name().to_owned(),
                    pool.endpoints()[i].address().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(session(&router).iter().all(|(v, _)| v == "shop-v2:8080"));
    // 10.0.2.1 is deleted and 10.0.2.2 terminates; a new pod 10.0.2.4 joins.
    v2["endpoints"] = json!([
        {"addresses": ["10.0.2.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
        {"addresses": ["10.0.2.3"], "conditions": {"ready": true, "serving": true, "terminating": false}},
        {"addresses": ["10.0.2.4"], "conditions": {"ready": true}},
    ]);
    api.put(SLICES, v2);
    src.wait_for(WAIT, |_| {
        pool(&router, "shop-v2:8080")
            .iter()
            .any(|(a, _)| a == "10.0.2.4:8080")
    })
    .await
    .expect("churn applied");
    assert_eq!(
        pool(&router, "shop-v2:8080"),
        [
            ("10.0.2.2:8080".to_owned(), EndpointState::Serving),
            ("10.0.2.3:8080".to_owned(), EndpointState::Ready),
            ("10.0.2.4:8080".to_owned(), EndpointState::Ready)
        ]
    );
    let picks = session(&router);
    assert!(picks.iter().all(|(v, _)| v == "shop-v2:8080"), "still v2");
    assert!(
        picks
            .iter()
            .all(|(_, a)| a == "10.0.2.3:8080" || a == "10.0.2.4:8080"),
        "only ready pods take new requests: {picks:?}"
    );
    // The whole version scaled to zero: its rule entry gets weight 0, v1 takes all.
    api.put(SLICES, slice("shop-v2", &[]));
    src.wait_for(WAIT, |_| pool(&router, "shop-v2:8080").is_empty())
        .await
        .expect("scale to zero applied");
    assert_eq!(
        weights(&router, "shop.example.com"),
        [
            ("shop-v1:8080".to_owned(), 90),
            ("shop-v2:8080".to_owned(), 0)
        ]
    );
}

/// The cookie key ring Secret: its key followed through creation, rotation (new key
/// first, old kept), a broken update (the last text stays, the problem reported) and
/// deletion (the last text stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_cookie_key_secret_is_followed_through_a_rotation() {
    const SECRETS: &str = "/api/v1/namespaces/web/secrets";
    // Secret data as the API server sends it (base64), by k8s-openapi's own encoder.
    let b64 = |s: &str| {
        serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec())).expect("base64")
    };
    let secret = |data: Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "shop-cookie-keys"}, "data": data})
    };
    let api = KubeApi::start().await;
    // Another Secret in the namespace is not followed.
    api.put(
        SECRETS,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"},
               "data": {"keys": b64("nope")}}),
    );
    let keys = routing_kube::SecretKey::watch(client(&api), "web", "shop-cookie-keys", "keys");
    let mut rx = keys.receiver();
    let next = |rx: &mut tokio::sync::watch::Receiver<Option<String>>| {
        let mut rx = rx.clone();
        async move {
            tokio::time::timeout(WAIT, rx.changed())
                .await
                .expect("a change within the wait")
                .expect("watch alive");
            rx.borrow_and_update().clone()
        }
    };
    api.put(SECRETS, secret(json!({"keys": b64("old-key\n")})));
    assert_eq!(next(&mut rx).await.as_deref(), Some("old-key\n"));
    rx.borrow_and_update();
    api.put(SECRETS, secret(json!({"keys": b64("new-key\nold-key\n")})));
    assert_eq!(next(&mut rx).await.as_deref(), Some("new-key\nold-key\n"));
    rx.borrow_and_update();
    api.put(SECRETS, secret(json!({"other": b64("x")})));
    for _ in 0..100 {
        if keys.problem().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        keys.problem().is_some_and(|p| p.contains("no key `keys`")),
        "{:?}",
        keys.problem()
    );
    assert_eq!(keys.current().as_deref(), Some("new-key\nold-key\n"));
    assert!(api.delete(SECRETS, "shop-cookie-keys"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(keys.current().as_deref(), Some("new-key\nold-key\n"));
}
