//! Prometheus / OpenMetrics text exposition of the layer's per-backend statistics
//! ([`RoutingLayer::stats`]) and of a rollout's state (through its
//! [`rollout::Driver`](crate::rollout::Driver)), with the official Rust client,
//! [`prometheus_client`].
//!
//! The quickest way is [`encode_layer`], which renders a whole scrape (ending in
//! `# EOF`) to serve under `/metrics` with [`CONTENT_TYPE`]:
//!
//! ```
//! use routing_tower::{metrics, outcome::Outcome, Backends, RoutingLayer};
//! use std::time::Duration;
//!
//! let router = routing_core::Router::from_yaml("backends: [{name: v1}]").unwrap();
//! let layer = RoutingLayer::new(router, Backends::new());
//! let v1 = layer.stats_registry().get_or_insert("v1");
//! drop(v1.begin());
//! v1.record(Outcome::Status(http::StatusCode::OK), Duration::from_millis(20));
//!
//! let text = metrics::encode_layer(&layer);
//! assert!(text.contains("routing_backend_requests_total{backend=\"v1\"} 1\n"));
//! assert!(text.contains("routing_backend_responses_total{backend=\"v1\",class=\"2xx\"} 1\n"));
//! assert!(text.contains("routing_backend_request_duration_seconds_count{backend=\"v1\"} 1\n"));
//! assert!(text.ends_with("# EOF\n"));
//! ```
//!
//! To add the metrics to an application's own [`Registry`], register a
//! [`LayerCollector`] (and a [`RolloutCollector`] per rollout); every scrape then
//! reads the live values:
//!
//! ```
//! use prometheus_client::registry::Registry;
//! use routing_tower::{metrics::LayerCollector, Backends, RoutingLayer};
//!
//! let layer = RoutingLayer::new(routing_core::Router::from_yaml("{}").unwrap(), Backends::new());
//! let mut registry = Registry::default();
//! registry.register_collector(Box::new(LayerCollector::new(layer.clone())));
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
//! assert!(text.contains("# TYPE routing_backend_requests counter\n"));
//! ```
//!
//! # Metrics
//!
//! Every per-backend metric has a `backend` label.
//!
//! | Metric | Type | Labels | Meaning |
//! |---|---|---|---|
//! | `routing_backend_requests_total` | counter | | requests sent (first tries and retries) |
//! | `routing_backend_responses_total` | counter | `class` = `1xx` … `5xx`, `other` | responses by status class |
//! | `routing_backend_failures_total` | counter | `kind` = `connect`, `reset`, `timeout`, `other` ([`Failure`](crate::outcome::Failure)) | tries that ended without a response |
//! | `routing_backend_retries_total` | counter | | retries sent to the backend |
//! | `routing_backend_in_flight` | gauge | | requests in flight now |
//! | `routing_backend_ejected` | gauge | | 1 while ejected by outlier detection, else 0 |
//! | `routing_backend_ejections_total` | counter | | ejections so far |
//! | `routing_backend_request_duration_seconds` | histogram | `le` | response latency |
//! | `routing_rule_backend_requests_total`, `_responses_total`, `_in_flight`, `_request_duration_seconds` | as above | `route`, `rule`, `backend` (instead of `backend` alone) | a backend's share of one named rule that splits traffic: what a rollout of that rule is judged on |
//! | `routing_upgrades_open`, `routing_upgrades_total` | gauge, counter | | upgraded (WebSocket) connections spliced now / since start, process-wide; their handshakes are counted in the response classes but never in the duration histograms |
//! | `routing_rollout_candidate_percent` | gauge | `rollout` | candidate share set by a rollout |
//! | `routing_rollout_state` | gauge | `rollout`, `state` | 1 for the current state, 0 for the others |
//!
//! # Histogram buckets
//!
//! The layer's histogram ([`crate::stats`]) has 8 buckets per power of two of
//! nanoseconds; the exposition keeps one edge per power of two, from 2¹⁵ ns
//! (32.768 µs) to 2³⁶ ns (68.7 s), plus `+Inf`: 23 `le` buckets per backend. Each
//! exported bucket count is the exact sum of the layer's buckets below that edge.
//! (The layer's buckets are half-open, `[low, high)`: a sample of exactly an edge's
//! nanosecond value is counted in the next `le` bucket.)
//!
//! # Format
//!
//! The output is OpenMetrics 1.0 text (counter samples end in `_total`, the scrape
//! ends with `# EOF`); serve it with [`CONTENT_TYPE`]. Prometheus asks for this
//! format by default.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use routing_rollout::{ApplySplit, MetricsSource, RolloutState};

use crate::rollout::{Driver, Status};
use crate::stats::{StatsSnapshot, BUCKETS};
use crate::RoutingLayer;

/// The `Content-Type` of the text [`encode_layer`] and [`encode`] produce (OpenMetrics
/// 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One whole scrape of `layer`'s per-backend and per-route statistics, ending in
/// `# EOF`.
///
/// ```
/// let layer = routing_tower::RoutingLayer::annotate(routing_core::Router::from_yaml("{}").unwrap());
/// assert!(routing_tower::metrics::encode_layer(&layer).ends_with("# EOF\n"));
/// ```
#[must_use]
pub fn encode_layer(layer: &RoutingLayer) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(LayerCollector::new(layer.clone())));
    encode(&registry)
}

/// [`encode_layer`] as the answer to a scrape request: `200` with the OpenMetrics
/// [`CONTENT_TYPE`], for a server that serves `GET /metrics` beside the traffic.
///
/// ```
/// let layer = routing_tower::RoutingLayer::annotate(routing_core::Router::from_yaml("{}").unwrap());
/// let res = routing_tower::metrics::scrape_response(&layer);
/// assert_eq!(res.headers()["content-type"], routing_tower::metrics::CONTENT_TYPE);
/// ```
#[must_use]
pub fn scrape_response(layer: &RoutingLayer) -> http::Response<crate::Body> {
    let mut res = http::Response::new(crate::body::full(encode_layer(layer)));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    res
}

/// One whole scrape of per-backend snapshots (as [`RoutingLayer::stats`] returns
/// them), ending in `# EOF`.
///
/// ```
/// use routing_tower::stats::StatsSnapshot;
/// let snap = StatsSnapshot { requests: 3, ..Default::default() };
/// let text = routing_tower::metrics::encode_snapshots(&[("v1".into(), snap)]);
/// assert!(text.contains("routing_backend_requests_total{backend=\"v1\"} 3\n"));
/// ```
#[must_use]
pub fn encode_snapshots(stats: &[(Arc<str>, StatsSnapshot)]) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(stats.to_vec())));
    encode(&registry)
}

/// Encodes `registry` (e.g. with a [`LayerCollector`] registered) as one scrape,
/// ending in `# EOF`.
///
/// ```
/// let registry = prometheus_client::registry::Registry::default();
/// assert_eq!(routing_tower::metrics::encode(&registry), "# EOF\n");
/// ```
#[must_use]
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a `String` cannot fail, and every metric here encodes.
    let result = prometheus_client::encoding::text::encode(&mut text, registry);
    debug_assert!(result.is_ok(), "encoding to a String failed");
    text
}

/// A [`Collector`] that reads a layer's statistics on every scrape.
///
/// ```
/// use routing_tower::metrics::LayerCollector;
/// let layer = routing_tower::RoutingLayer::annotate(routing_core::Router::from_yaml("{}").unwrap());
/// let mut registry = prometheus_client::registry::Registry::default();
/// registry.register_collector(Box::new(LayerCollector::new(layer)));
/// ```
#[derive(Debug, Clone)]
pub struct LayerCollector {
    layer: RoutingLayer,
}

impl LayerCollector {
    /// A collector of `layer`'s per-backend statistics.
    ///
    /// ```
    /// let layer = routing_tower::RoutingLayer::annotate(routing_core::Router::from_yaml("{}").unwrap());
    /// let _ = routing_tower::metrics::LayerCollector::new(layer);
    /// ```
    #[must_use]
    pub fn new(layer: RoutingLayer) -> Self {
        Self { layer }
    }
}

impl Collector for LayerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        encode_backends(&self.layer.stats(), &mut encoder)?;
        encode_routes(&self.layer.route_stats(), &mut encoder)?;
        encode_rule_backends(&self.layer.stats_registry().rule_snapshot(), &mut encoder)?;
        encode_upgrades(&mut encoder)?;
        encode_table(&self.layer.router().load(), &mut encoder)
    }
}

/// The process-wide upgraded (WebSocket) connections ([`crate::upgrade`]): counted
/// as connections, apart from the request families.
fn encode_upgrades(encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let family = encoder.encode_descriptor(
        "routing_upgrades_open",
        "Upgraded (WebSocket) connections being spliced now, process-wide.",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(crate::upgrade::open_upgrades()).encode(family)?;
    let family = encoder.encode_descriptor(
        "routing_upgrades",
        "Upgraded (WebSocket) connections spliced since start, process-wide.",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(crate::upgrade::total_upgrades()).encode(family)
}

/// Convergence across replicas: the live table's generation, its fingerprint and
/// those of its Maglev tables (`routing_config_generation`, `routing_table_info`,
/// `routing_maglev_table_info`; fingerprints are hex labels, as 64-bit values do not
/// fit a float sample). Replicas routing alike show one fingerprint:
/// `count(count by (fingerprint) (routing_table_info)) == 1`.
fn encode_table(
    table: &routing_core::RouteTable,
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    let family = encoder.encode_descriptor(
        "routing_config_generation",
        "Generation of the live routing table (counts this replica's updates).",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(table.generation()).encode(family)?;
    let fp = format!("{:016x}", table.fingerprint());
    let maglev = format!("{:016x}", table.maglev_fingerprint());
    let mut family = encoder.encode_descriptor(
        "routing_table_info",
        "Fingerprints of the live table (`fingerprint`: its configuration; `maglev`: all its Maglev tables); equal on replicas routing alike.",
        None,
        MetricType::Gauge,
    )?;
    let labels = [("fingerprint", fp.as_str()), ("maglev", maglev.as_str())];
    ConstGauge::new(1u64).encode(family.encode_family(&labels)?)?;
    let mut family = encoder.encode_descriptor(
        "routing_maglev_table_info",
        "Fingerprint of each Maglev table: a consistent-hash rule's (`kind=\"rule\"`, `table=\"route/index\"`) or a backend's endpoint pool (`kind=\"endpoints\"`, `table=\"backend\"`).",
        None,
        MetricType::Gauge,
    )?;
    for m in table.maglev_fingerprints() {
        let (kind, name) = match &m.scope {
            routing_core::MaglevScope::Rule { route, rule } => ("rule", format!("{route}/{rule}")),
            routing_core::MaglevScope::Endpoints { backend } => ("endpoints", backend.clone()),
            _ => ("other", String::new()),
        };
        let fp = format!("{:016x}", m.fingerprint);
        let labels = [
            ("kind", kind),
            ("table", name.as_str()),
            ("fingerprint", fp.as_str()),
        ];
        ConstGauge::new(1u64).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Fixed snapshots, for [`encode_snapshots`].
#[derive(Debug)]
struct SnapshotCollector(Vec<(Arc<str>, StatsSnapshot)>);

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        encode_backends(&self.0, &mut encoder)
    }
}

/// Name suffixes, help texts and values of the counters with one series each.
type SimpleCounter = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

const SIMPLE_COUNTERS: [SimpleCounter; 3] = [
    (
        "requests",
        "Requests (for a backend: first tries and retries).",
        |s| s.requests,
    ),
    ("retries", "Retries sent to the backend.", |s| s.retries),
    (
        "ejections",
        "Times the backend was ejected by outlier detection.",
        |s| s.ejections,
    ),
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The per-backend families (`routing_backend_*`, label `backend`).
fn encode_backends(
    stats: &[(Arc<str>, StatsSnapshot)],
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    encode_stats(
        "routing_backend",
        true,
        &one_label("backend", stats),
        encoder,
    )
}

/// The per-route families (`routing_route_*`, label `route`): requests, responses
/// by class, in-flight and the duration histogram (retries, failures and
/// ejections are per backend).
fn encode_routes(
    stats: &[(Arc<str>, StatsSnapshot)],
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    encode_stats("routing_route", false, &one_label("route", stats), encoder)
}

/// One labelled set of statistics: its labels (e.g. `backend="v1"`) and snapshot.
type Series<'a> = (Vec<(&'static str, &'a str)>, &'a StatsSnapshot);

/// `stats` keyed by one label, as [`Series`].
fn one_label<'a>(label: &'static str, stats: &'a [(Arc<str>, StatsSnapshot)]) -> Vec<Series<'a>> {
    stats
        .iter()
        .map(|(k, s)| (vec![(label, &**k)], s))
        .collect()
}

/// The labels of `key` plus one more.
fn with<'a>(
    key: &[(&'static str, &'a str)],
    extra: (&'static str, &'a str),
) -> Vec<(&'static str, &'a str)> {
    let mut l = key.to_vec();
    l.push(extra);
    l
}

/// The per-(route, rule, backend) families of split rules (`routing_rule_backend_*`,
/// labels `route`, `rule`, `backend`): what a rollout of the rule is judged on.
fn encode_rule_backends(
    stats: &[crate::stats::RuleBackendSnapshot],
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    let series: Vec<Series<'_>> = stats
        .iter()
        .map(|(route, rule, backend, s)| {
            (
                vec![
                    ("route", &**route),
                    ("rule", &**rule),
                    ("backend", &**backend),
                ],
                s,
            )
        })
        .collect();
    encode_stats("routing_rule_backend", false, &series, encoder)
}

fn encode_stats(
    prefix: &str,
    backend_only: bool,
    stats: &[Series<'_>],
    encoder: &mut DescriptorEncoder<'_>,
) -> fmt::Result {
    let n_responses = format!("{prefix}_responses");
    let n_failures = format!("{prefix}_failures");
    let n_in_flight = format!("{prefix}_in_flight");
    let n_ejected = format!("{prefix}_ejected");
    let n_request_duration = format!("{prefix}_request_duration");
    for (suffix, help, value) in SIMPLE_COUNTERS {
        if !backend_only && suffix != "requests" {
            continue;
        }
        let name = format!("{prefix}_{suffix}");
        let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Counter)?;
        for (key, s) in stats {
            ConstCounter::new(value(s)).encode(family.encode_family(key)?)?;
        }
    }

    let mut family = encoder.encode_descriptor(
        &n_responses,
        "Responses by status class.",
        None,
        MetricType::Counter,
    )?;
    for (key, s) in stats {
        let classes = CLASSES.iter().zip(s.responses);
        for (class, n) in classes.chain([(&"other", s.responses_other)]) {
            let labels = with(key, ("class", class));
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }

    if backend_only {
        let mut family = encoder.encode_descriptor(
            &n_failures,
            "Tries to the backend that ended without a response, by kind.",
            None,
            MetricType::Counter,
        )?;
        for (key, s) in stats {
            for (kind, n) in [
                ("connect", s.failures_connect),
                ("reset", s.failures_reset),
                ("timeout", s.failures_timeout),
                ("other", s.failures_other),
            ] {
                let labels = with(key, ("kind", kind));
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
    }

    let mut family = encoder.encode_descriptor(
        &n_in_flight,
        "Requests in flight now.",
        None,
        MetricType::Gauge,
    )?;
    for (key, s) in stats {
        ConstGauge::new(s.in_flight).encode(family.encode_family(key)?)?;
    }

    if backend_only {
        let mut family = encoder.encode_descriptor(
            &n_ejected,
            "1 while the backend is ejected by outlier detection, else 0.",
            None,
            MetricType::Gauge,
        )?;
        for (key, s) in stats {
            ConstGauge::new(u64::from(s.ejected)).encode(family.encode_family(key)?)?;
        }
    }

    let mut family = encoder.encode_descriptor(
        &n_request_duration,
        "Response latency.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (key, s) in stats {
        let buckets = exported_buckets(&s.latency.buckets);
        let sum = s.latency.sum_nanos as f64 / 1e9;
        family.encode_family(key)?.encode_histogram::<NoLabelSet>(
            sum,
            s.latency.count(),
            &buckets,
            None,
        )?;
    }
    Ok(())
}

/// Sub-buckets per power of two in [`crate::stats`]' histogram.
const SUB: usize = 8;
/// log2 of the upper edge, in nanoseconds, of its first (underflow) bucket.
const LOW_EXP: i32 = 15;

/// The layer's buckets merged into one per power of two: `(upper edge in seconds,
/// count)` pairs, not cumulative (the encoder accumulates them), the last with edge
/// `+Inf`.
///
/// Bucket 0 ends at 2¹⁵ ns; bucket `8k` (for `k` in `1 ..= 21`) ends at 2¹⁵⁺ᵏ ns; the
/// last bucket (`BUCKETS - 1`) is unbounded.
fn exported_buckets(buckets: &[u64]) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(BUCKETS / SUB + 2);
    let mut group = 0u64;
    for i in 0..BUCKETS {
        group = group.saturating_add(buckets.get(i).copied().unwrap_or(0));
        if i % SUB == 0 && i < BUCKETS - 1 {
            out.push((bucket_edge_seconds(i), group));
            group = 0;
        }
    }
    out.push((f64::INFINITY, group));
    out
}

/// The upper edge of bucket `i` (a multiple of [`SUB`], below `BUCKETS - 1`), in
/// seconds: 2^(15 + i/8) ns.
fn bucket_edge_seconds(i: usize) -> f64 {
    let exp = LOW_EXP + (i / SUB) as i32;
    2f64.powi(exp) / 1e9
}

/// A [`Collector`] of one rollout's state (through its [`Driver`]), labelled
/// `rollout="<name>"`: `routing_rollout_candidate_percent` (the share the rollout last
/// set; 0 before the first step and after a rollback or abort) and
/// `routing_rollout_state` (1 for the current state among `pending`, `running`,
/// `paused`, `promoted`, `rolled_back`, `aborted`, `failed`; 0 for the others).
///
/// ```
/// use routing_rollout::{Checks, Rollout, RolloutPlan, RolloutPlanSpec, RolloutTarget};
/// use routing_tower::{clock::SystemClock, metrics, rollout::Driver, stats::StatsRegistry};
/// use std::sync::Arc;
///
/// let router = routing_core::Router::from_yaml(r#"
/// backends: [{name: v1}, {name: v2}]
/// routes: [{name: shop, rules: [{name: main, backends: [{name: v1}]}]}]
/// "#).unwrap();
/// let plan = RolloutPlan::try_from(RolloutPlanSpec {
///     steps: vec![10.0, 100.0], hold: "1m".parse().unwrap(), max_step: None, checks: Checks::default(),
/// }).unwrap();
/// let target = RolloutTarget::http_rule("shop", "main", "v1", "v2");
/// let rollout = Arc::new(Driver::new(Rollout::new(plan, target, router), StatsRegistry::new(), SystemClock::shared()));
/// rollout.tick(); // first step: 10 %
///
/// let mut registry = prometheus_client::registry::Registry::default();
/// registry.register_collector(Box::new(metrics::RolloutCollector::new("shop", rollout)));
/// let text = metrics::encode(&registry);
/// assert!(text.contains("routing_rollout_candidate_percent{rollout=\"shop\"} 10.0\n"));
/// assert!(text.contains("routing_rollout_state{rollout=\"shop\",state=\"running\"} 1\n"));
/// ```
#[derive(Debug, Clone)]
pub struct RolloutCollector {
    name: String,
    rollout: Arc<dyn Status>,
}

impl RolloutCollector {
    /// A collector of `rollout`, whose series carry the label `rollout="<name>"`.
    ///
    /// ```
    /// # use routing_rollout::*;
    /// # use routing_tower::{clock::SystemClock, rollout::Driver, stats::StatsRegistry};
    /// # let router = routing_core::Router::from_yaml("{}").unwrap();
    /// # let plan = RolloutPlan::try_from(RolloutPlanSpec {
    /// #     steps: vec![100.0], hold: "1s".parse().unwrap(), max_step: None, checks: Checks::default(),
    /// # }).unwrap();
    /// # let rollout = Driver::new(Rollout::new(plan, RolloutTarget::http_rule("r", "main", "v1", "v2"), router),
    /// #     StatsRegistry::new(), SystemClock::shared());
    /// let c = routing_tower::metrics::RolloutCollector::new("checkout", std::sync::Arc::new(rollout));
    /// # let _ = c;
    /// ```
    #[must_use]
    pub fn new<M, T>(name: impl Into<String>, rollout: Arc<Driver<M, T>>) -> Self
    where
        M: MetricsSource + Send + Sync + 'static,
        T: ApplySplit + Send + 'static,
    {
        Self {
            name: name.into(),
            rollout,
        }
    }
}

const STATES: [&str; 8] = [
    "pending",
    "running",
    "paused",
    "promoted",
    "rolled_back",
    "aborted",
    "failed",
    "inconclusive",
];

fn state_name(state: &RolloutState) -> &'static str {
    match state {
        RolloutState::Pending => "pending",
        RolloutState::Running { .. } => "running",
        RolloutState::Paused { .. } => "paused",
        RolloutState::Promoted => "promoted",
        RolloutState::RolledBack { .. } => "rolled_back",
        RolloutState::Aborted => "aborted",
        RolloutState::Failed { .. } => "failed",
        RolloutState::Inconclusive { .. } => "inconclusive",
    }
}

impl Collector for RolloutCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let state = state_name(&self.rollout.state());
        let mut family = encoder.encode_descriptor(
            "routing_rollout_candidate_percent",
            "Share of new traffic (percent) the rollout sends to the candidate.",
            None,
            MetricType::Gauge,
        )?;
        let labels = [("rollout", self.name.as_str())];
        ConstGauge::new(self.rollout.candidate_percent()).encode(family.encode_family(&labels)?)?;

        let mut family = encoder.encode_descriptor(
            "routing_rollout_state",
            "1 for the rollout's current state, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for s in STATES {
            let labels = [("rollout", self.name.as_str()), ("state", s)];
            ConstGauge::new(u64::from(s == state)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Failure, Outcome};
    use crate::stats::BackendStats;
    use http::StatusCode;
    use std::time::Duration;

    // The workspace's strict OpenMetrics parser (HELP/TYPE/UNIT order, family
    // suffixes, one `# EOF`).
    use routing_testkit::openmetrics::{parse, value};

    #[test]
    fn counters_and_gauges_are_exact() {
        let registry = crate::stats::StatsRegistry::new();
        let v1 = registry.get_or_insert("v1");
        let v2 = registry.get_or_insert("v2");
        let _held = v1.begin();
        for _ in 0..6 {
            drop(v1.begin());
        }
        for _ in 0..4 {
            v1.record(Outcome::Status(StatusCode::OK), Duration::from_millis(5));
        }
        v1.record(
            Outcome::Status(StatusCode::NOT_FOUND),
            Duration::from_millis(1),
        );
        v1.record(
            Outcome::Status(StatusCode::SERVICE_UNAVAILABLE),
            Duration::from_millis(2),
        );
        v1.record(
            Outcome::Status(StatusCode::from_u16(600).expect("valid")),
            Duration::from_millis(2),
        );
        v1.record(Outcome::Failure(Failure::Connect), Duration::from_secs(1));
        v1.record(Outcome::Failure(Failure::Timeout), Duration::from_secs(1));
        v1.record(Outcome::Failure(Failure::Timeout), Duration::from_secs(1));
        v1.record_retry();
        v1.set_ejected(true);
        v2.set_ejected(true);
        v2.set_ejected(false);

        let mut stats = registry.snapshot();
        stats.sort_by(|a, b| a.0.cmp(&b.0));
        let text = encode_snapshots(&stats);
        let (types, samples) = parse(&text).expect(&text);
        assert_eq!(types["routing_backend_requests"], "counter");
        assert_eq!(types["routing_backend_in_flight"], "gauge");
        assert_eq!(
            types["routing_backend_request_duration_seconds"],
            "histogram"
        );

        let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
        let b1 = ("backend", "v1");
        let b2 = ("backend", "v2");
        assert_eq!(v("routing_backend_requests_total", &[b1]), Some(7.0));
        assert_eq!(v("routing_backend_requests_total", &[b2]), Some(0.0));
        assert_eq!(v("routing_backend_in_flight", &[b1]), Some(1.0));
        for (class, n) in [
            ("1xx", 0.0),
            ("2xx", 4.0),
            ("3xx", 0.0),
            ("4xx", 1.0),
            ("5xx", 1.0),
            ("other", 1.0),
        ] {
            assert_eq!(
                v("routing_backend_responses_total", &[b1, ("class", class)]),
                Some(n),
                "{class}"
            );
        }
        for (kind, n) in [
            ("connect", 1.0),
            ("reset", 0.0),
            ("timeout", 2.0),
            ("other", 0.0),
        ] {
            assert_eq!(
                v("routing_backend_failures_total", &[b1, ("kind", kind)]),
                Some(n),
                "{kind}"
            );
        }
        assert_eq!(v("routing_backend_retries_total", &[b1]), Some(1.0));
        assert_eq!(v("routing_backend_ejected", &[b1]), Some(1.0));
        assert_eq!(v("routing_backend_ejected", &[b2]), Some(0.0));
        assert_eq!(v("routing_backend_ejections_total", &[b1]), Some(1.0));
        assert_eq!(v("routing_backend_ejections_total", &[b2]), Some(1.0));
        // Only responses have latencies: 7 samples, 4×5 ms + 1 + 2 + 2 ms.
        let h = "routing_backend_request_duration_seconds";
        assert_eq!(v(&format!("{h}_count"), &[b1]), Some(7.0));
        let sum = v(&format!("{h}_sum"), &[b1]).expect("sum");
        assert!((sum - 0.025).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn histogram_is_cumulative_and_exact() {
        let stats = BackendStats::new();
        let mut samples_ns = vec![1_000, 40_000, 999_999, 5_000_000, 5_000_001, 3_000_000_000];
        samples_ns.push(1 << 40); // beyond the last edge: only +Inf
        for &ns in &samples_ns {
            stats.record_latency(Duration::from_nanos(ns));
        }
        let text = encode_snapshots(&[("b".into(), stats.snapshot())]);
        let (_, samples) = parse(&text).expect(&text);
        let buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.name == "routing_backend_request_duration_seconds_bucket")
            .map(|s| {
                let le = s
                    .labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .map(|(_, v)| {
                        if v == "+Inf" {
                            f64::INFINITY
                        } else {
                            v.parse().expect("le")
                        }
                    })
                    .expect("le label");
                (le, s.value)
            })
            .collect();
        assert_eq!(buckets.len(), 23);
        assert!(buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY));
        let count = value(
            &samples,
            "routing_backend_request_duration_seconds_count",
            &[("backend", "b")],
        );
        assert_eq!(count, Some(samples_ns.len() as f64));
        assert_eq!(buckets.last().map(|b| b.1), count);
        // Each `le` count is exactly the number of samples below the edge.
        for &(le, n) in &buckets {
            let expected = samples_ns
                .iter()
                .filter(|&&ns| (ns as f64) / 1e9 < le)
                .count();
            assert_eq!(n, expected as f64, "le={le}");
        }
    }

    #[test]
    fn exported_edges_are_edges_of_the_layer_histogram() {
        // A sample one nanosecond below an exported edge lands in the last bucket of
        // its group, a sample at the edge in the next group.
        for i in (0..BUCKETS - 1).step_by(SUB) {
            let edge_ns = 1u64 << (LOW_EXP as u64 + (i / SUB) as u64);
            assert_eq!(bucket_edge_seconds(i), edge_ns as f64 / 1e9);
            for (ns, bucket) in [(edge_ns - 1, i), (edge_ns, i + 1)] {
                let s = BackendStats::new();
                s.record_latency(Duration::from_nanos(ns));
                let b = s.snapshot().latency.buckets;
                assert_eq!(b.iter().position(|&c| c == 1), Some(bucket), "{ns} ns");
            }
        }
    }

    #[test]
    fn rule_backend_series_carry_route_rule_and_backend() {
        let router = routing_core::Router::from_yaml(
            "backends: [{name: v1}, {name: v2}]\nroutes: [{name: shop, rules: [{name: main, backends: [{name: v1}, {name: v2}]}]}]",
        )
        .expect("valid config");
        let layer = crate::RoutingLayer::new(router, crate::Backends::new());
        let s = layer.stats_registry().rule_backend("shop", "main", "v2");
        drop(s.begin());
        s.record(
            crate::outcome::Outcome::Status(http::StatusCode::BAD_GATEWAY),
            std::time::Duration::from_millis(3),
        );
        let text = encode_layer(&layer);
        assert!(
            text.contains("routing_rule_backend_requests_total{route=\"shop\",rule=\"main\",backend=\"v2\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("routing_rule_backend_responses_total{route=\"shop\",rule=\"main\",backend=\"v2\",class=\"5xx\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn empty_and_escaped() {
        let text = encode_snapshots(&[]);
        let (types, samples) = parse(&text).expect(&text);
        assert_eq!(types.len(), 8);
        assert!(samples.is_empty());

        // Label values are escaped.
        let text = encode_snapshots(&[("a\"b".into(), StatsSnapshot::default())]);
        assert!(
            text.contains("routing_backend_requests_total{backend=\"a\\\"b\"} 0\n"),
            "{text}"
        );
        // An empty (default) histogram still has every bucket, all zero.
        assert!(text.contains("routing_backend_request_duration_seconds_bucket{le=\"+Inf\",backend=\"a\\\"b\"} 0\n")
            || text.contains("routing_backend_request_duration_seconds_bucket{backend=\"a\\\"b\",le=\"+Inf\"} 0\n"), "{text}");
    }

    #[test]
    fn rollout_state_and_percent() {
        use crate::clock::{ManualClock, SharedClock};
        use routing_rollout::{Checks, Rollout, RolloutPlan, RolloutPlanSpec, RolloutTarget};

        let router = routing_core::Router::from_yaml(
            "backends: [{name: v1}, {name: v2}]\nroutes: [{name: shop, rules: [{name: main, backends: [{name: v1}]}]}]",
        )
        .expect("config");
        let plan = RolloutPlan::try_from(RolloutPlanSpec {
            steps: vec![25.0, 100.0],
            hold: "1m".parse().expect("duration"),
            max_step: None,
            checks: Checks::default(),
        })
        .expect("plan");
        let target = RolloutTarget::http_rule("shop", "main", "v1", "v2");
        let clock = Arc::new(ManualClock::new());
        let rollout = Arc::new(Driver::new(
            Rollout::new(plan, target, router),
            crate::stats::StatsRegistry::new(),
            clock as SharedClock,
        ));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(RolloutCollector::new(
            "shop",
            Arc::clone(&rollout),
        )));

        let check = |state: &str, percent: f64| {
            let text = encode(&registry);
            let (_, samples) = parse(&text).expect(&text);
            let r = ("rollout", "shop");
            assert_eq!(
                value(&samples, "routing_rollout_candidate_percent", &[r]),
                Some(percent)
            );
            for s in STATES {
                let expected = if s == state { 1.0 } else { 0.0 };
                assert_eq!(
                    value(&samples, "routing_rollout_state", &[r, ("state", s)]),
                    Some(expected),
                    "{s}"
                );
            }
        };
        check("pending", 0.0);
        rollout.tick();
        check("running", 25.0);
        rollout.pause().expect("pause");
        check("paused", 25.0);
        rollout.abort().expect("abort");
        check("aborted", 0.0);
    }
}
