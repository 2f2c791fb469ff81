//! The Lease election and the HTTPRoute writes against routing-testkit's loopback
//! API server, through the real kube-rs client.

use std::time::{Duration, Instant};

use routing_fleet::{HttpRouteWeights, PersistedStep, WeightsError};
use routing_kube::{LeaseLock, LeaseState};
use routing_rollout::RolloutTarget;
use routing_testkit::kubeapi::KubeApi;
use serde_json::json;

const ROUTES: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/web/httproutes";

fn client(api: &KubeApi) -> kube::Client {
    let uri: http::Uri = api.url().parse().expect("url");
    let mut cfg = kube::Config::new(uri);
    cfg.default_namespace = "web".into();
    kube::Client::try_from(cfg).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_one_leader_renewal_expiry_and_release() {
    let api = KubeApi::start().await;
    let d = Duration::from_secs(2);
    let mut a = LeaseLock::new(client(&api), "web", "writer", "a", d);
    let mut b = LeaseLock::new(client(&api), "web", "writer", "b", d);
    assert_eq!(
        a.try_acquire_or_renew().await.expect("a"),
        LeaseState::Leader
    );
    assert!(a.is_leader());
    assert_eq!(
        b.try_acquire_or_renew().await.expect("b"),
        LeaseState::Follower {
            holder: Some("a".into())
        }
    );
    // a renews for longer than the lease: b never takes over meanwhile.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            a.try_acquire_or_renew().await.expect("a"),
            LeaseState::Leader
        );
        assert!(matches!(
            b.try_acquire_or_renew().await.expect("b"),
            LeaseState::Follower { .. }
        ));
    }
    let lease = api
        .object(
            "/apis/coordination.k8s.io/v1/namespaces/web/leases",
            "writer",
        )
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);
    assert!(lease["spec"]["renewTime"].is_string());
    // a stops: b takes over once the record has not changed for the duration.
    let stopped = Instant::now();
    let took = loop {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "b never took over"
        );
        if b.try_acquire_or_renew().await.expect("b") == LeaseState::Leader {
            break stopped.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        took >= Duration::from_millis(1_500),
        "b took over after {took:?}: before the lease expired"
    );
    let lease = api
        .object(
            "/apis/coordination.k8s.io/v1/namespaces/web/leases",
            "writer",
        )
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    // a comes back with its old view: it sees b's fresh record and stays a follower.
    assert_eq!(
        a.try_acquire_or_renew().await.expect("a"),
        LeaseState::Follower {
            holder: Some("b".into())
        }
    );
    assert!(!a.is_leader());
    // b releases: the next candidate need not wait.
    b.release().await.expect("release");
    assert_eq!(
        a.try_acquire_or_renew().await.expect("a"),
        LeaseState::Leader
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_weights_by_server_side_apply() {
    let api = KubeApi::start().await;
    api.put(
        ROUTES,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "shop", "namespace": "web"},
               "spec": {"hostnames": ["shop.example.com"], "rules": [
                   {"name": "main", "backendRefs": [
                       {"name": "shop-v1", "port": 8080, "weight": 1},
                       {"name": "shop-v2", "port": 8080, "weight": 0}]}]}}),
    );
    // The real API server's answers to apply patches: fieldManager required.
    let c = routing_testkit::http::client();
    let req = http::Request::patch(format!("{}{ROUTES}/shop", api.url()))
        .header("content-type", "application/apply-patch+yaml")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"metadata":{"labels":{"a":"b"}}}"#,
        )))
        .expect("request");
    let answer = routing_testkit::http::send(&c, req).await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(answer.body.contains("fieldManager"), "{}", answer.body);

    let w = HttpRouteWeights::new(client(&api), "web", "shop", "routing-fleet");
    let t = RolloutTarget::http_rule("web/shop", "main", "shop-v1:8080", "shop-v2:8080");
    w.write(&t, 25.0).await.expect("apply");
    let r = api.object(ROUTES, "shop").expect("route");
    assert_eq!(r["spec"]["rules"][0]["backendRefs"][0]["weight"], 7_500);
    assert_eq!(r["spec"]["rules"][0]["backendRefs"][1]["weight"], 2_500);
    assert_eq!(
        r["spec"]["hostnames"][0], "shop.example.com",
        "fields not applied stay"
    );
    assert_eq!(
        r["metadata"]["managedFields"][0]["manager"],
        "routing-fleet"
    );

    // Another applier without force conflicts (409); ours forces.
    let req = http::Request::patch(format!(
        "{}{ROUTES}/shop?fieldManager=someone-else",
        api.url()
    ))
    .header("content-type", "application/apply-patch+yaml")
    .body(http_body_util::Full::new(bytes::Bytes::from(
        r#"{"metadata":{"labels":{"a":"b"}}}"#,
    )))
    .expect("request");
    assert_eq!(routing_testkit::http::send(&c, req).await.status, 409);
    w.write(&t, 50.0).await.expect("forced apply");

    // The persisted step round-trips, under its own field manager.
    let step = PersistedStep {
        epoch_ms: 1,
        step: 1,
        percent: 50.0,
        window_start_ms: 2,
        state: "running".into(),
        holder: "a".into(),
    };
    w.write_step(&step).await.expect("write step");
    assert_eq!(w.read_step().await.expect("read"), Some(step));

    // A missing rule is a typed error naming the field.
    let bad = RolloutTarget::http_rule("web/shop", "canary", "shop-v1:8080", "shop-v2:8080");
    let e = w.write(&bad, 10.0).await.expect_err("no such rule");
    assert!(matches!(e, WeightsError::Shape { .. }), "{e}");
    assert!(e.to_string().contains("spec.rules"), "{e}");
    let r = api.object(ROUTES, "shop").expect("route");
    assert_eq!(
        r["spec"]["rules"][0]["backendRefs"][1]["weight"], 5_000,
        "a refused write changes nothing"
    );
}

/// The fleet's leader is also the one that writes route status: the controller's
/// leadership, given to a route source, turns its status writes on when the round
/// takes the Lease (Prometheus is unreachable here, so the round itself fails after
/// the election; the leadership still counts) and off when it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_leader_writes_route_status_and_only_while_it_leads() {
    use routing_fleet::{FleetMetrics, FleetRollout, Prometheus};
    use routing_kube::{KubeSource, Options};
    use routing_rollout::{Checks, RolloutPlan, RolloutPlanSpec};
    let api = KubeApi::start().await;
    api.put(
        ROUTES,
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"name": "main", "backendRefs": [
                {"name": "v1", "port": 80, "weight": 100}, {"name": "v2", "port": 80, "weight": 0}]}]}}),
    );
    let plan = RolloutPlan::try_from(RolloutPlanSpec {
        steps: vec![10.0, 100.0],
        hold: routing_core::ConfigDuration::new(Duration::from_secs(10)),
        max_step: None,
        checks: Checks::default(),
    })
    .expect("plan");
    let mut ctl = FleetRollout::new(
        LeaseLock::new(client(&api), "web", "writer", "a", Duration::from_secs(10)),
        FleetMetrics::new(
            Prometheus::new("http://127.0.0.1:9").expect("url"),
            "fleet",
            1,
        ),
        HttpRouteWeights::new(client(&api), "web", "shop", "routing-fleet"),
        plan,
        RolloutTarget::http_rule("web/shop", "main", "v1:80", "v2:80"),
        Duration::from_secs(3),
    );
    let router = routing_core::Router::new(routing_core::Config::default()).expect("router");
    let mut source = KubeSource::spawn(
        client(&api),
        router,
        Options::default()
            .namespace("web")
            .debounce(Duration::from_millis(50))
            .write_status("example.com/routing", ctl.leadership()),
    );
    source
        .wait_for(Duration::from_secs(10), |s| s.applied >= 1)
        .await
        .expect("applied");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(source.status().status_writes, 0, "no leader, no status");
    assert!(!*ctl.leadership().borrow());

    let _ = ctl.round().await;
    assert!(*ctl.leadership().borrow(), "the round took the Lease");
    source
        .wait_for(Duration::from_secs(10), |s| s.status_writes >= 1)
        .await
        .expect("the leader's source writes status");
    let route = api.object(ROUTES, "shop").expect("route");
    let ours = &route["status"]["parents"][0];
    assert_eq!(ours["controllerName"], "example.com/routing");
    assert_eq!(ours["conditions"][0]["type"], "Accepted");
    assert_eq!(ours["conditions"][0]["status"], "True");

    ctl.release().await.expect("release");
    assert!(!*ctl.leadership().borrow());
}
