//! The VirtualService and DestinationRule documents as serde reads them (unknown fields refused).

use super::*;

/// A Kubernetes object; only `spec` is read strictly.
#[derive(Deserialize)]
pub(super) struct Resource<S> {
    #[serde(default = "Option::default")]
    pub(super) spec: Option<S>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct VsSpec {
    #[serde(default)]
    pub(super) hosts: Vec<String>,
    #[serde(default)]
    pub(super) gateways: Vec<String>,
    #[serde(default)]
    pub(super) http: Vec<HttpRoute>,
    #[serde(default)]
    pub(super) tls: Vec<Value>,
    #[serde(default)]
    pub(super) tcp: Vec<Value>,
    #[serde(default)]
    pub(super) export_to: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HttpRoute {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default, rename = "match")]
    pub(super) matches: Vec<MatchRequest>,
    #[serde(default)]
    pub(super) route: Vec<RouteDestination>,
    #[serde(default)]
    pub(super) redirect: Option<Redirect>,
    #[serde(default)]
    pub(super) direct_response: Option<DirectResponse>,
    #[serde(default)]
    pub(super) delegate: Option<Delegate>,
    #[serde(default)]
    pub(super) rewrite: Option<Rewrite>,
    #[serde(default)]
    pub(super) timeout: Option<String>,
    #[serde(default)]
    pub(super) retries: Option<Retry>,
    #[serde(default)]
    pub(super) fault: Option<Fault>,
    #[serde(default)]
    pub(super) mirror: Option<Destination>,
    #[serde(default)]
    pub(super) mirrors: Vec<MirrorPolicy>,
    #[serde(default)]
    pub(super) mirror_percent: Option<u32>,
    #[serde(default)]
    pub(super) mirror_percentage: Option<Percent>,
    #[serde(default)]
    pub(super) cors_policy: Option<Value>,
    #[serde(default)]
    pub(super) headers: Option<Headers>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Delegate {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MatchRequest {
    /// Only shown in Envoy's access logs.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) uri: Option<StringMatch>,
    #[serde(default)]
    pub(super) scheme: Option<StringMatch>,
    #[serde(default)]
    pub(super) method: Option<StringMatch>,
    #[serde(default)]
    pub(super) authority: Option<StringMatch>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, StringMatch>,
    #[serde(default)]
    pub(super) port: Option<u32>,
    #[serde(default)]
    pub(super) source_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) gateways: Vec<String>,
    #[serde(default)]
    pub(super) query_params: BTreeMap<String, StringMatch>,
    #[serde(default)]
    pub(super) ignore_uri_case: bool,
    #[serde(default)]
    pub(super) without_headers: BTreeMap<String, StringMatch>,
    #[serde(default)]
    pub(super) source_namespace: Option<String>,
    #[serde(default)]
    pub(super) stat_prefix: Option<String>,
}

/// Istio `StringMatch`: a oneof of `exact`, `prefix`, `regex` (none = any value).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct StringMatch {
    #[serde(default)]
    pub(super) exact: Option<String>,
    #[serde(default)]
    pub(super) prefix: Option<String>,
    #[serde(default)]
    pub(super) regex: Option<String>,
}

/// The one kind a `StringMatch` holds.
pub(super) enum Sm<'a> {
    Any,
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteDestination {
    pub(super) destination: Destination,
    #[serde(default)]
    pub(super) weight: Option<i64>,
    #[serde(default)]
    pub(super) headers: Option<Headers>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct Destination {
    pub(super) host: String,
    #[serde(default)]
    pub(super) subset: Option<String>,
    /// The service port: the backend map (or the host name) decides the address.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) port: Option<PortSelector>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct PortSelector {
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) number: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Headers {
    #[serde(default)]
    pub(super) request: Option<HeaderOps>,
    #[serde(default)]
    pub(super) response: Option<HeaderOps>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderOps {
    #[serde(default)]
    pub(super) set: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) add: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) remove: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Redirect {
    #[serde(default)]
    pub(super) uri: Option<String>,
    #[serde(default)]
    pub(super) authority: Option<String>,
    #[serde(default)]
    pub(super) port: Option<u32>,
    #[serde(default)]
    pub(super) derive_port: Option<String>,
    #[serde(default)]
    pub(super) scheme: Option<String>,
    #[serde(default)]
    pub(super) redirect_code: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DirectResponse {
    pub(super) status: u32,
    #[serde(default)]
    pub(super) body: Option<Body>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Body {
    #[serde(default)]
    pub(super) string: Option<String>,
    #[serde(default)]
    pub(super) bytes: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Rewrite {
    #[serde(default)]
    pub(super) uri: Option<String>,
    #[serde(default)]
    pub(super) authority: Option<String>,
    #[serde(default)]
    pub(super) uri_regex_rewrite: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Retry {
    #[serde(default)]
    pub(super) attempts: Option<i64>,
    #[serde(default)]
    pub(super) per_try_timeout: Option<String>,
    #[serde(default)]
    pub(super) retry_on: Option<String>,
    #[serde(default)]
    pub(super) retry_remote_localities: Option<bool>,
    #[serde(default)]
    pub(super) retry_ignore_previous_hosts: Option<bool>,
    #[serde(default)]
    pub(super) backoff: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Fault {
    #[serde(default)]
    pub(super) delay: Option<Delay>,
    #[serde(default)]
    pub(super) abort: Option<Abort>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Delay {
    #[serde(default)]
    pub(super) fixed_delay: Option<String>,
    #[serde(default)]
    pub(super) exponential_delay: Option<String>,
    #[serde(default)]
    pub(super) percentage: Option<Percent>,
    #[serde(default)]
    pub(super) percent: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Abort {
    #[serde(default)]
    pub(super) http_status: Option<i64>,
    #[serde(default)]
    pub(super) grpc_status: Option<String>,
    #[serde(default)]
    pub(super) http2_error: Option<String>,
    #[serde(default)]
    pub(super) percentage: Option<Percent>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(super) struct Percent {
    #[serde(default)]
    pub(super) value: f64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct MirrorPolicy {
    pub(super) destination: Destination,
    #[serde(default)]
    pub(super) percentage: Option<Percent>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DrSpec {
    pub(super) host: String,
    #[serde(default)]
    pub(super) traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    pub(super) subsets: Vec<Subset>,
    #[serde(default)]
    pub(super) export_to: Vec<String>,
    #[serde(default)]
    pub(super) workload_selector: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Subset {
    pub(super) name: String,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) traffic_policy: Option<TrafficPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct TrafficPolicy {
    #[serde(default)]
    pub(super) load_balancer: Option<LoadBalancer>,
    #[serde(default)]
    pub(super) connection_pool: Option<ConnectionPool>,
    #[serde(default)]
    pub(super) outlier_detection: Option<Outlier>,
    #[serde(default)]
    pub(super) tls: Option<Value>,
    #[serde(default)]
    pub(super) port_level_settings: Vec<Value>,
    #[serde(default)]
    pub(super) tunnel: Option<Value>,
    #[serde(default)]
    pub(super) proxy_protocol: Option<Value>,
    #[serde(default)]
    pub(super) retry_budget: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct LoadBalancer {
    #[serde(default)]
    pub(super) simple: Option<String>,
    #[serde(default)]
    pub(super) consistent_hash: Option<ConsistentHash>,
    #[serde(default)]
    pub(super) locality_lb_setting: Option<Value>,
    #[serde(default)]
    pub(super) warmup_duration_secs: Option<Value>,
    #[serde(default)]
    pub(super) warmup: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ConsistentHash {
    #[serde(default)]
    pub(super) http_header_name: Option<String>,
    #[serde(default)]
    pub(super) http_cookie: Option<HttpCookie>,
    #[serde(default)]
    pub(super) use_source_ip: Option<bool>,
    #[serde(default)]
    pub(super) http_query_parameter_name: Option<String>,
    #[serde(default)]
    pub(super) ring_hash: Option<RingHash>,
    #[serde(default)]
    pub(super) maglev: Option<Maglev>,
    #[serde(default)]
    pub(super) minimum_ring_size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpCookie {
    pub(super) name: String,
    #[serde(default)]
    pub(super) path: Option<String>,
    #[serde(default)]
    pub(super) ttl: Option<String>,
    #[serde(default)]
    pub(super) attributes: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RingHash {
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) minimum_ring_size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Maglev {
    #[serde(default)]
    pub(super) table_size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectionPool {
    #[serde(default)]
    pub(super) tcp: Option<TcpPool>,
    #[serde(default)]
    pub(super) http: Option<HttpPool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct TcpPool {
    #[serde(default)]
    pub(super) max_connections: Option<i64>,
    #[serde(default)]
    pub(super) connect_timeout: Option<String>,
    #[serde(default)]
    pub(super) tcp_keepalive: Option<Value>,
    #[serde(default)]
    pub(super) max_connection_duration: Option<String>,
    #[serde(default)]
    pub(super) idle_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HttpPool {
    #[serde(default, rename = "http1MaxPendingRequests")]
    pub(super) http1_max_pending_requests: Option<i64>,
    #[serde(default, rename = "http2MaxRequests")]
    pub(super) http2_max_requests: Option<i64>,
    #[serde(default)]
    pub(super) max_requests_per_connection: Option<i64>,
    #[serde(default)]
    pub(super) max_retries: Option<i64>,
    #[serde(default)]
    pub(super) idle_timeout: Option<String>,
    #[serde(default, rename = "h2UpgradePolicy")]
    pub(super) h2_upgrade_policy: Option<String>,
    #[serde(default)]
    pub(super) use_client_protocol: Option<bool>,
    #[serde(default)]
    pub(super) max_concurrent_streams: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Outlier {
    #[serde(default)]
    pub(super) consecutive_errors: Option<i64>,
    #[serde(default, rename = "consecutive5xxErrors")]
    pub(super) consecutive_5xx_errors: Option<i64>,
    #[serde(default)]
    pub(super) consecutive_gateway_errors: Option<i64>,
    #[serde(default)]
    pub(super) interval: Option<String>,
    #[serde(default)]
    pub(super) base_ejection_time: Option<String>,
    #[serde(default)]
    pub(super) max_ejection_percent: Option<i64>,
    #[serde(default)]
    pub(super) min_health_percent: Option<i64>,
    #[serde(default)]
    pub(super) split_external_local_origin_errors: Option<bool>,
    #[serde(default)]
    pub(super) consecutive_local_origin_failures: Option<i64>,
}

// ---------------------------------------------------------------- helpers
