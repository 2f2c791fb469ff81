//! Convergence across replicas on the wire: two proxy replicas, each serving its own
//! `/metrics` (as the reverse_proxy example does, through `metrics::encode_layer`)
//! on its own 127.0.0.x listener, scraped over HTTP and compared: the table and
//! Maglev fingerprints are equal when the replicas route alike (whatever their
//! update history, so whatever their generation) and differ while they do not.

use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use routing_core::Router;
use routing_testkit::http::{client, get};
use routing_testkit::openmetrics::{parse, Sample};
use routing_tower::{body, HttpBackend, Routing};

fn yaml(pods: &[&str]) -> String {
    let eps: Vec<String> = pods
        .iter()
        .map(|p| format!("{{address: \"{p}\"}}"))
        .collect();
    format!(
        r#"
backends:
  - {{name: v1, endpoints: [{}]}}
  - {{name: v2, address: "127.0.0.1:9"}}
routes:
  - name: shop
    rules:
      - backends: [{{name: v1, weight: 9}}, {{name: v2, weight: 1}}]
        load_balancer: {{consistent_hash: {{header: x-user}}}}
"#,
        eps.join(", ")
    )
}

/// A replica as the reverse_proxy example runs it: `/metrics` answered by the
/// replica itself, everything else through the layer, served by
/// `routing_tower::server::serve` on `ip` until the returned sender is dropped.
struct Replica {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn replica(router: &Router, ip: &str) -> Replica {
    let backends = HttpBackend::builder().backends_for_config(&router.load().config().clone());
    let proxy = Routing::dispatch(router.clone(), backends);
    let svc = tower::service_fn(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
        async move {
            if req.uri().path() == "/metrics" {
                let text = routing_tower::metrics::encode_layer(&proxy.layer());
                return Ok::<_, std::convert::Infallible>(Response::new(body::full(text)));
            }
            tower::ServiceExt::oneshot(proxy, req).await
        }
    });
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("bind 127.0.0.x");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(routing_tower::server::serve(
        listener,
        svc,
        routing_tower::server::ServerLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    Replica {
        addr,
        _stop: stop,
        task,
    }
}

/// The table fingerprint, the all-Maglev fingerprint, the generation and the
/// per-table Maglev fingerprints a replica exports.
async fn scrape(addr: SocketAddr) -> (String, String, f64, Vec<(String, String)>) {
    let a = get(&client(), addr, "/metrics", &[]).await;
    assert_eq!(a.status, 200);
    let (_, samples) = parse(&a.body).expect("OpenMetrics");
    let label = |s: &Sample, k: &str| {
        s.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let info = samples
        .iter()
        .find(|s| s.name == "routing_table_info")
        .expect("routing_table_info");
    let generation = samples
        .iter()
        .find(|s| s.name == "routing_config_generation")
        .expect("routing_config_generation")
        .value;
    let tables = samples
        .iter()
        .filter(|s| s.name == "routing_maglev_table_info")
        .map(|s| {
            (
                format!("{}:{}", label(s, "kind"), label(s, "table")),
                label(s, "fingerprint"),
            )
        })
        .collect();
    (
        label(info, "fingerprint"),
        label(info, "maglev"),
        generation,
        tables,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_export_equal_fingerprints_when_they_route_alike() {
    let pods = ["10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.3:8080"];
    let a = Router::from_yaml(&yaml(&pods)).expect("config");
    // Replica b got there through another history: a different generation.
    let b = Router::from_yaml(&yaml(&pods[..1])).expect("config");
    b.update_yaml(&yaml(&[pods[2], pods[0], pods[1]]))
        .expect("update");
    let (ra, rb) = (
        replica(&a, "127.0.0.2").await,
        replica(&b, "127.0.0.3").await,
    );

    let (fa, ma, ga, ta) = scrape(ra.addr).await;
    let (fb, mb, gb, tb) = scrape(rb.addr).await;
    assert_ne!(ga, gb, "the generations differ");
    assert_eq!(fa.len(), 16, "a hex fingerprint: {fa}");
    assert_eq!((&fa, &ma), (&fb, &mb), "same table, same fingerprints");
    assert_eq!(ta, tb);
    let kinds: Vec<&str> = ta.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["rule:shop/0", "endpoints:v1"]);

    // A pod leaves on replica a only: its pool table differs, the rule's does not.
    a.update_yaml(&yaml(&pods[..2])).expect("update");
    let (fa2, ma2, _, ta2) = scrape(ra.addr).await;
    assert_ne!(fa2, fb);
    assert_ne!(ma2, mb);
    assert_eq!(ta2[0], tb[0], "the rule's Maglev table is unchanged");
    assert_ne!(ta2[1], tb[1], "the pool's Maglev table changed");

    // b catches up: converged again.
    b.update_yaml(&yaml(&[pods[1], pods[0]])).expect("update");
    let (fb2, mb2, _, tb2) = scrape(rb.addr).await;
    assert_eq!((fa2, ma2, ta2), (fb2, mb2, tb2));
}
