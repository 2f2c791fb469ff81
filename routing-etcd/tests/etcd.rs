//! routing-etcd against a real etcd (Debian's etcd-server) started on 127.0.0.1 by
//! each test and killed after it.

use std::time::Duration;

use etcd_client::Client;
use routing_core::{Config, Router};
use routing_etcd::{ElectionState, EtcdElection, EtcdSource, EtcdSplit};
use routing_rollout::{ApplySplit, RolloutTarget};
use routing_testkit::etcd::Etcd;

const KEY: &str = "/routing/shop/table";
const LEADER: &str = "/routing/shop/leader";
const WAIT: Duration = Duration::from_secs(10);

const TABLE: &str = "
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    rules:
      - name: main
        backends: [{name: v1, weight: 100}]
";

fn etcd() -> Etcd {
    Etcd::start().unwrap_or_else(|e| panic!("a real etcd is needed (cargo xtask setup): {e}"))
}

async fn client(etcd: &Etcd) -> Client {
    Client::connect([etcd.endpoint()], None)
        .await
        .expect("etcd client")
}

fn empty_router() -> Router {
    Router::new(Config::default()).expect("empty router")
}

fn target() -> RolloutTarget {
    RolloutTarget::http_rule("shop", "main", "v1", "v2")
}

fn split_of(router: &Router) -> (u64, u64) {
    target()
        .weights(router.snapshot().config())
        .expect("the rule is there")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_source_follows_the_key_and_keeps_the_old_table_on_bad_input() {
    let etcd = etcd();
    let mut c = client(&etcd).await;
    c.put(KEY, TABLE, None).await.expect("put");
    let (ra, rb) = (empty_router(), empty_router());
    let mut a = EtcdSource::spawn(c.clone(), KEY, ra.clone());
    let mut b = EtcdSource::spawn(c.clone(), KEY, rb.clone());
    for s in [&mut a, &mut b] {
        s.wait_for(WAIT, |s| s.applied >= 1).await.expect("applied");
    }
    assert_eq!(split_of(&ra), (100, 0));

    // Not a table: refused, the live table stays.
    let generation = ra.generation();
    c.put(
        KEY,
        "routes: [{name: shop, rules: [{backends: [{name: nobody}]}]}]",
        None,
    )
    .await
    .expect("put");
    a.wait_for(WAIT, |s| s.rejected >= 1)
        .await
        .expect("refused");
    assert_eq!(ra.generation(), generation);
    assert!(a.status().last_error.is_some_and(|e| e.contains("nobody")));
    c.put(KEY, "{ not yaml", None).await.expect("put");
    a.wait_for(WAIT, |s| s.rejected >= 2)
        .await
        .expect("refused");
    assert_eq!(split_of(&ra), (100, 0));

    // A valid edit reaches both replicas, which agree on the fingerprint.
    let edited = TABLE.replace(
        "[{name: v1, weight: 100}]",
        "[{name: v1, weight: 3}, {name: v2, weight: 1}]",
    );
    c.put(KEY, edited, None).await.expect("put");
    for s in [&mut a, &mut b] {
        s.wait_for(WAIT, |s| s.applied >= 2).await.expect("applied");
    }
    assert_eq!(split_of(&ra), (3, 1));
    assert_eq!(split_of(&rb), (3, 1));
    assert_eq!(a.status().fingerprint, b.status().fingerprint);
    assert_ne!(a.status().fingerprint, 0);

    // Deleting the key keeps the table (an empty fleet is never applied by accident).
    c.delete(KEY, None).await.expect("delete");
    a.wait_for(WAIT, |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("deleted"))
    })
    .await
    .expect("deletion seen");
    assert_eq!(split_of(&ra), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_etcd_election_has_one_leader_and_fails_over_when_it_stops() {
    let etcd = etcd();
    let c = client(&etcd).await;
    let ttl = Duration::from_secs(2);
    let mut candidates: Vec<EtcdElection> = ["a", "b", "c"]
        .iter()
        .map(|id| EtcdElection::new(c.clone(), LEADER, *id, ttl))
        .collect();
    let mut leaders = Vec::new();
    for cand in &mut candidates {
        if cand.try_acquire_or_renew().await.expect("round") == ElectionState::Leader {
            leaders.push(cand.identity().to_owned());
        }
    }
    assert_eq!(leaders, ["a"], "exactly one leader: the first to ask");
    // Renewal keeps it, and the others see who holds it.
    for _ in 0..3 {
        assert_eq!(
            candidates[0].try_acquire_or_renew().await.expect("round"),
            ElectionState::Leader
        );
        assert_eq!(
            candidates[1].try_acquire_or_renew().await.expect("round"),
            ElectionState::Follower {
                holder: Some("a".into())
            }
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(candidates[0].is_leader());

    // The leader stops (no more renewals, no release: a crash). It stops counting
    // itself leader before etcd frees the key, and then another takes it.
    let crashed = candidates.remove(0);
    let stopped = tokio::time::Instant::now();
    let mut new_leader = None;
    while new_leader.is_none() && stopped.elapsed() < Duration::from_secs(10) {
        for cand in &mut candidates {
            if cand.try_acquire_or_renew().await.expect("round") == ElectionState::Leader {
                new_leader = Some((cand.identity().to_owned(), stopped.elapsed()));
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (who, after) = new_leader.expect("a new leader within 10 s");
    assert!(
        !crashed.is_leader(),
        "the old leader's own deadline passed first"
    );
    assert!(
        after >= ttl * 2 / 3,
        "not before the lease could expire: {after:?}"
    );
    assert!(["b", "c"].contains(&who.as_str()));
    drop(crashed);

    // A release hands over at once.
    let holder = candidates
        .iter()
        .position(|c| c.identity() == who)
        .expect("holder");
    candidates[holder].release().await.expect("release");
    let other = 1 - holder;
    assert_eq!(
        candidates[other]
            .try_acquire_or_renew()
            .await
            .expect("round"),
        ElectionState::Leader
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_etcd_split_is_fenced_by_the_election_and_replicas_converge() {
    let etcd = etcd();
    let mut c = client(&etcd).await;
    c.put(KEY, TABLE, None).await.expect("put");
    let routers = [empty_router(), empty_router(), empty_router()];
    let mut sources: Vec<EtcdSource> = routers
        .iter()
        .map(|r| EtcdSource::spawn(c.clone(), KEY, r.clone()))
        .collect();
    for s in &mut sources {
        s.wait_for(WAIT, |s| s.applied >= 1).await.expect("applied");
    }
    let mut a = EtcdElection::new(c.clone(), LEADER, "a", Duration::from_secs(5));
    let mut b = EtcdElection::new(c.clone(), LEADER, "b", Duration::from_secs(5));
    assert_eq!(
        a.try_acquire_or_renew().await.expect("round"),
        ElectionState::Leader
    );
    assert!(matches!(
        b.try_acquire_or_renew().await.expect("round"),
        ElectionState::Follower { .. }
    ));

    // The leader's split (through the rollout's synchronous trait) reaches every replica.
    let by_a = EtcdSplit::new(c.clone(), KEY).fenced(LEADER, "a");
    by_a.apply_split(&target(), 10.0).expect("leader writes");
    for s in &mut sources {
        s.wait_for(WAIT, |s| s.applied >= 2).await.expect("applied");
    }
    for r in &routers {
        assert_eq!(split_of(r), (9_000, 1_000));
    }
    // Another writer's edit in between is kept (compare-and-swap re-reads).
    let mut cfg = Config::from_yaml(TABLE).expect("table");
    target().set_split(&mut cfg, 10.0).expect("split");
    cfg.routes[0].hostnames = vec!["shop.example.com".into()];
    c.put(KEY, cfg.to_yaml(), None)
        .await
        .expect("operator edit");
    by_a.write(&target(), 25.0).await.expect("leader writes");
    for s in &mut sources {
        s.wait_for(WAIT, |s| s.applied >= 4).await.expect("applied");
    }
    let live = routers[1].snapshot();
    assert_eq!(split_of(&routers[1]), (7_500, 2_500));
    assert_eq!(live.config().routes[0].hostnames, ["shop.example.com"]);

    // A follower's fenced write is refused and changes nothing.
    let by_b = EtcdSplit::new(c.clone(), KEY).fenced(LEADER, "b");
    assert!(by_b.write(&target(), 100.0).await.is_err());
    assert!(by_b
        .save_step(&serde_json::json!({"step": 9}))
        .await
        .is_err());
    // The leader's persisted step is what a new leader reads back.
    by_a.save_step(&serde_json::json!({"step": 2, "percent": 25.0}))
        .await
        .expect("leader saves");
    a.release().await.expect("release");
    assert_eq!(
        b.try_acquire_or_renew().await.expect("round"),
        ElectionState::Leader
    );
    let resumed: Option<serde_json::Value> = by_b.load_step().await.expect("load");
    assert_eq!(
        resumed,
        Some(serde_json::json!({"step": 2, "percent": 25.0}))
    );
    by_b.write(&target(), 50.0)
        .await
        .expect("the new leader writes");
    assert!(
        by_a.write(&target(), 0.0).await.is_err(),
        "the old leader is fenced out"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(split_of(&routers[2]), (5_000, 5_000));
}
