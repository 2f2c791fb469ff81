//! Two-level selection: a rule picks a backend (a version), the backend's endpoint
//! pool picks an endpoint (a pod). Stickiness names the version, not the pod.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng as _;
use routing_core::{
    Config, EndpointConfig, EndpointState, RequestInfo, RouteTable, Router, Selection,
};

/// `v1` (weight 90) and `v2` (weight 10), with `n1` and `n2` ready endpoints.
fn split_config(n1: usize, n2: usize, hashed: bool) -> Config {
    let mut c = Config::from_yaml(&format!(
        "backends: [{{name: v1}}, {{name: v2}}]\n\
         routes: [{{name: r, rules: [{{backends: [{{name: v1, weight: 90}}, {{name: v2, weight: 10}}]{}}}]}}]",
        if hashed {
            ", load_balancer: {consistent_hash: {header: x-user}}"
        } else {
            ""
        }
    ))
    .expect("parses");
    c.backends[0].endpoints = pods(1, n1);
    c.backends[1].endpoints = pods(2, n2);
    c
}

fn pods(subnet: u8, n: usize) -> Vec<EndpointConfig> {
    (0..n)
        .map(|i| {
            EndpointConfig::new(
                format!("10.{subnet}.{}.{}:8080", i / 200, i % 200 + 1)
                    .parse()
                    .expect("address"),
            )
        })
        .collect()
}

/// The backends chosen for `n` requests with a fixed seed.
fn versions(t: &RouteTable, seed: u64, n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let req = RequestInfo::get("/");
    (0..n)
        .map(|_| {
            let d = t.decide(&req, &mut rng).expect("decides");
            d.backend().expect("forwards").name().to_owned()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The version split depends on the rule's weights only: any endpoint counts give
    /// the very same sequence of versions as one endpoint each, and v1 gets ~90 %.
    #[test]
    fn version_shares_are_unaffected_by_endpoint_count(n1 in 1usize..40, n2 in 1usize..40, seed: u64) {
        let one = RouteTable::new(split_config(1, 1, false)).expect("valid");
        let many = RouteTable::new(split_config(n1, n2, false)).expect("valid");
        let a = versions(&one, seed, 2_000);
        let b = versions(&many, seed, 2_000);
        prop_assert_eq!(&a, &b);
        let v1 = b.iter().filter(|v| *v == "v1").count() as f64 / b.len() as f64;
        prop_assert!((v1 - 0.9).abs() < 0.04, "v1 share {v1}");
    }

    /// A sticky cookie names the version: after a Router::update that removes any
    /// one of v2's pods, the pinned request still goes to v2, on a pod that exists.
    #[test]
    fn sticky_cookie_keeps_the_version_when_its_pod_is_removed(n2 in 2usize..12, gone in 0usize..12, seed: u64) {
        let gone = gone % n2;
        let router = Router::new(split_config(3, n2, false)).expect("valid");
        let mut rng = StdRng::seed_from_u64(seed);
        let req = RequestInfo::get("/");
        let pick = |t: &RouteTable, rng: &mut StdRng| {
            let v2 = t.backend_id("v2").expect("v2");
            let m = t.find(&req).expect("matches");
            let d = t.select(m, &req, rng, Selection::new().prefer(v2)).expect("selects");
            let b = d.backend().expect("forwards");
            let pool = b.endpoints().expect("pool");
            let i = pool.pick(rng, d.sticky_key(), |_| 0, |_| true).expect("an endpoint");
            (b.name().to_owned(), pool.endpoints()[i].address())
        };
        let before = pick(&router.load(), &mut rng);
        prop_assert_eq!(before.0.as_str(), "v2");
        let mut c = router.load().config().clone();
        let removed = c.backends[1].endpoints.remove(gone).address;
        router.update(c).expect("update");
        for _ in 0..50 {
            let (version, addr) = pick(&router.load(), &mut rng);
            prop_assert_eq!(version.as_str(), "v2");
            prop_assert_ne!(addr, removed);
        }
    }

    /// Draining endpoints never get a new request, serving ones only when no endpoint
    /// is ready; hashed and least-request picks alike.
    #[test]
    fn drain_endpoints_get_no_new_requests(states in prop::collection::vec(0u8..3, 1..20), seed: u64) {
        let mut c = split_config(1, 1, true);
        c.backends[0].endpoints = pods(1, states.len());
        for (e, s) in c.backends[0].endpoints.iter_mut().zip(&states) {
            e.state = match s { 0 => EndpointState::Ready, 1 => EndpointState::Serving, _ => EndpointState::Draining };
        }
        let t = RouteTable::new(c).expect("valid");
        let pool = t.backends()[0].endpoints().expect("pool");
        let any_ready = states.contains(&0);
        let mut rng = StdRng::seed_from_u64(seed);
        for k in 0..300u64 {
            let key = (k % 2 == 0).then_some(k.wrapping_mul(0x9e37_79b9));
            match pool.pick(&mut rng, key, |i| (i as u64 * 7) % 5, |_| true) {
                Some(i) => {
                    let s = pool.endpoints()[i].state();
                    prop_assert_ne!(s, EndpointState::Draining);
                    if any_ready { prop_assert_eq!(s, EndpointState::Ready); }
                }
                None => prop_assert!(states.iter().all(|s| *s == 2), "only an all-draining pool picks nothing"),
            }
        }
    }

    /// Consistent hash over the pool: removing one endpoint moves only the keys that
    /// were on it (Maglev's minimal disruption, allowing its small churn).
    #[test]
    fn hashed_endpoint_choice_moves_few_keys_when_a_pod_goes(n in 3usize..20, gone in 0usize..20) {
        let gone = gone % n;
        let a = RouteTable::new(split_config(n, 1, true)).expect("valid");
        let mut c = split_config(n, 1, true);
        let removed = c.backends[0].endpoints.remove(gone).address;
        let b = RouteTable::new(c).expect("valid");
        let pick = |t: &RouteTable, k: u64| {
            let pool = t.backends()[0].endpoints().expect("pool");
            let i = pool.pick(&mut rand::rng(), Some(k), |_| 0, |_| true).expect("endpoint");
            pool.endpoints()[i].address()
        };
        let (mut stayed_off, mut moved) = (0u32, 0u32);
        for k in 0..2_000u64 {
            let key = routing_core::stable_hash(&k.to_le_bytes(), 1);
            let (x, y) = (pick(&a, key), pick(&b, key));
            if x != removed {
                stayed_off += 1;
                if x != y { moved += 1; }
            }
        }
        prop_assert!(f64::from(moved) / f64::from(stayed_off) < 0.1, "{moved} of {stayed_off} keys moved");
    }
}

#[test]
fn endpoints_parse_in_yaml_json_and_toml() {
    let yaml = r#"
backends:
  - name: v1
    endpoints:
      - { address: "10.0.0.1:80" }
      - { address: "10.0.0.2:80", state: terminating, weight: 3, zone: z1 }
"#;
    let json = r#"{"backends": [{"name": "v1", "endpoints": [
        {"address": "10.0.0.1:80"},
        {"address": "10.0.0.2:80", "state": "draining", "weight": 3, "zone": "z1"}]}]}"#;
    let toml = r#"
[[backends]]
name = "v1"
[[backends.endpoints]]
address = "10.0.0.1:80"
[[backends.endpoints]]
address = "10.0.0.2:80"
state = "draining"
weight = 3
zone = "z1"
"#;
    let a = Config::from_yaml(yaml).expect("yaml");
    let b = Config::from_json(json).expect("json");
    let c = Config::from_toml(toml).expect("toml");
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.backends[0].endpoints[1].state, EndpointState::Draining);
    // Round trip through the writer.
    assert_eq!(Config::from_yaml(&a.to_yaml()).expect("round trip"), a);
    let t = RouteTable::new(a).expect("valid");
    let pool = t.backends()[0].endpoints().expect("pool");
    assert!(pool.takes_new(0) && !pool.takes_new(1));
}

#[test]
fn bad_endpoints_are_refused_with_field_paths() {
    let err = Config::from_yaml(
        "backends: [{name: v1, endpoints: [{address: '10.0.0.1:80', colour: red}]}]",
    )
    .expect_err("unknown field");
    assert!(
        err.to_string().contains("backends[0].endpoints[0]"),
        "{err}"
    );
    let err = Config::from_yaml("backends: [{name: v1, endpoints: [{address: 'nope'}]}]")
        .expect_err("bad address");
    assert!(
        err.to_string().contains("backends[0].endpoints[0].address"),
        "{err}"
    );
    let err = Config::from_yaml(
        "backends: [{name: v0}, {name: v1, address: '10.0.0.9:80', endpoints: [{address: '10.0.0.1:80'}, {address: '10.0.0.1:80', weight: 2000000}]}]",
    )
    .expect("parses")
    .validate()
    .expect_err("invalid");
    let paths: Vec<&str> = err.errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "backends[1].endpoints",
            "backends[1].endpoints[1].address",
            "backends[1].endpoints[1].weight"
        ],
        "{err}"
    );
}

#[test]
fn an_invalid_endpoint_update_keeps_the_old_table() {
    let router = Router::new(split_config(2, 2, false)).expect("valid");
    let fp = router.load().backends()[0]
        .endpoints()
        .expect("pool")
        .fingerprint();
    let mut bad = router.load().config().clone();
    let dup = bad.backends[0].endpoints[0].clone();
    bad.backends[0].endpoints.push(dup);
    assert!(router.update(bad).is_err());
    let live = router.load();
    assert_eq!(
        live.backends()[0].endpoints().expect("pool").fingerprint(),
        fp
    );
    let mut good = live.config().clone();
    good.backends[0].endpoints.truncate(1);
    router.update(good).expect("valid update");
    let pool = router.load().backends()[0]
        .endpoints()
        .expect("pool")
        .clone();
    assert_eq!(pool.endpoints().len(), 1);
    assert_ne!(pool.fingerprint(), fp);
}
