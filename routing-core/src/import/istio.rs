//! Istio `VirtualService` + `DestinationRule` (`networking.istio.io/v1alpha3`,
//! `v1beta1`, `v1`: one schema) → native routes.
//!
//! Each `VirtualService` becomes one native route named `namespace/name` with
//! `precedence: first_match` (Istio tries `http` rules, and the matches inside each,
//! in order; the first that holds wins, even when a later one is more specific).
//!
//! | Istio | Native |
//! |---|---|
//! | `spec.hosts` | `hostnames`, written as they are (`reviews` stays `reviews`); `*` alone → every host |
//! | `http[].name` | rule `name` (made unique inside the route) |
//! | `match[]` (ORed; fields ANDed) | `matches[]` |
//! | `uri.exact` / `uri.prefix` / `uri.regex` | `path.exact` / `path.starts_with` (a plain string prefix: `/api` matches `/apix`; `/` → `prefix: /`) / `path.regex` |
//! | `ignoreUriCase` | `exact`/`prefix` become a `(?i)` regex of the escaped literal; a regex stays case-sensitive (Envoy ignores the flag for regexes) |
//! | `method.exact`, `method.regex` of plain tokens (`GET`, `GET\|POST`) | `method` (one native match per method) |
//! | `scheme.exact` (`http`, `https`) | `scheme` |
//! | `authority` | `authority` (matched on the host without its port: a pattern with a `:port` is refused) |
//! | `headers` (`{}` or `regex: "*"` = present) | `headers` |
//! | `withoutHeaders` | `headers` with `invert: true` (`{}` → `absent: true`; a matcher that accepts the empty string also requires the header to be present, as Envoy treats a missing header as empty) |
//! | `queryParams` `exact` / `regex` / `{}` | `query` `exact` / `regex` / `present` |
//! | `route[]` `destination {host, subset}`, `weight` | `backends[]`: name from the backend map (keys `host/subset`, `host`) or `host` / `host/subset`; weights relative, a missing weight is 0 when there are several destinations, a single destination gets 100 |
//! | `redirect {uri, authority, port, derivePort, scheme, redirectCode}` | `redirect` (`path.full`, `hostname`, `port`, `scheme`, `status`, default 301) |
//! | `directResponse {status, body.string \| body.bytes}` | `fixed_response` |
//! | `rewrite {uri, authority}` | `filters.url_rewrite`: after prefix matches `path.prefix` (the matched prefix is replaced, as Envoy's `prefix_rewrite`), after exact / regex matches `path.full`; `hostname` |
//! | `headers.request` / `headers.response` `{set, add, remove}` | `filters.request_headers` / `response_headers`; `host`/`:authority` in `request.set`/`add` → `url_rewrite.hostname` |
//! | `timeout` (`0s` = none) | `timeouts.request` |
//! | `retries {attempts, perTryTimeout, retryOn, backoff}` | `retry`, `timeouts.per_try`; `attempts: 0` → no retry |
//! | `fault.delay {fixedDelay, percentage, percent}`, `fault.abort {httpStatus, percentage}` | `fault` |
//! | `mirror` + `mirrorPercentage` / `mirrorPercent` (absent = 100), `mirrors[0]` | `mirror` |
//! | DR `loadBalancer.simple` `ROUND_ROBIN` / `RANDOM` | `load_balancer.simple` |
//! | DR `consistentHash` `httpHeaderName` / `httpCookie` without `ttl` / `httpQueryParameterName` / `useSourceIp` | `load_balancer.consistent_hash` `header` / `cookie` / `query` / `source_ip` |
//! | DR `consistentHash.httpCookie` with `ttl` (Envoy issues the cookie) | `session_persistence.cookie {name, ttl, path}` (`ttl: 0s` → session cookie) |
//! | DR `consistentHash.maglev.tableSize` | `maglev_table_size` (global) |
//! | DR `connectionPool.http.http2MaxRequests` / `http1MaxPendingRequests` | backend `connection_pool.max_concurrent_requests` / `max_pending_requests` (unset pending = unlimited, as Istio) |
//! | DR `connectionPool.tcp.maxConnections` (without `http2MaxRequests`) | `max_concurrent_requests` (warned: connections approximated by requests) |
//! | DR `outlierDetection` `consecutive5xxErrors`, `consecutiveGatewayErrors` (and deprecated `consecutiveErrors`), `interval`, `baseEjectionTime`, `maxEjectionPercent` | top-level `outlier_detection` (one for all backends) |
//!
//! A subset's `trafficPolicy` overrides the host's, field by field (`loadBalancer`,
//! `connectionPool`, `outlierDetection`). A rule gets the load balancer its
//! destinations share (if they differ: a warning, the first destination's is used).
//! Hosts are compared as Istio does: a short name (`reviews`) is qualified with the
//! namespace of the resource that writes it (`reviews.<ns>.svc.cluster.local`); a
//! `DestinationRule` for `*.<suffix>` applies when no exact one does.
//!
//! **Warnings** (understood, not applied in-process): `gateways` (resource and match
//! level), `exportTo`, `tcp`/`tls` routes, `sourceLabels`, `sourceNamespace`, `port`
//! (the route table does not see the listener port: the rule applies on every port),
//! `statPrefix`, `corsPolicy`, `retryRemoteLocalities`, `retryIgnorePreviousHosts`,
//! retry conditions without a native equivalent (`refused-stream`, `retriable-4xx`,
//! `envoy-ratelimited`, gRPC ones…), `mirrors` beyond the first, a subset used without
//! any `DestinationRule` for its host (cannot be checked); DR `tls`,
//! `portLevelSettings`, `tunnel`, `proxyProtocol`, `retryBudget`, `workloadSelector`,
//! `localityLbSetting`, `warmupDurationSecs`/`warmup`, `LEAST_REQUEST`/`LEAST_CONN`/
//! `UNSPECIFIED` (→ `random`), `ringHash`/`minimumRingSize` (approximated by the
//! weighted Maglev table), `httpCookie.attributes`, connection pool and outlier
//! fields without a native equivalent, internal headers (`:path`…) Istio drops.
//!
//! **Errors**: `delegate` (and `VirtualService`s without `hosts`), `uriRegexRewrite`,
//! a prefix `rewrite.uri` after an `ignoreUriCase` prefix or after mixed match kinds,
//! method `prefix`/non-token regexes, scheme other than exact `http`/`https`,
//! `queryParams.prefix`, JWT-claim (`@request.auth.claims…`) and pseudo-header
//! matches, per-destination `headers` when a rule has several destinations, redirect
//! codes other than 301/302/303/307/308, `fault.abort.grpcStatus`/`http2Error`,
//! `fault.delay.exponentialDelay`, `PASSTHROUGH` load balancing, more than 10 retry
//! attempts, a non-UTF-8 `directResponse.body.bytes` (all Unsupported); a subset no
//! `DestinationRule` of its host defines, several of `route`/`redirect`/
//! `directResponse`, none of them, a StringMatch with two kinds, weights out of
//! range or all zero, a non-prime Maglev table size, unknown `retryOn` values,
//! invalid durations (all Invalid); unknown fields (Parse).
//!
//! Not emulated: Istio's mesh-wide default retry policy (applied by Istio when a rule
//! has no `retries`); header matches see each value of a repeated header separately
//! (Envoy joins them with `,`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{go_duration, to_config_duration, Doc, ImportErrorKind, Location, Out, RouteOrigin};
use crate::config::{
    ConnectionPoolConfig, CookieConfig, FaultAbortConfig, FaultConfig, FaultDelayConfig,
    FiltersConfig, FixedResponseConfig, HashOnConfig, HeaderMatchConfig, HeaderModifierConfig,
    HeaderValueConfig, LoadBalancerConfig, MatchConfig, MirrorConfig, OutlierDetectionConfig,
    PathMatchConfig, PathModifierConfig, QueryMatchConfig, RedirectConfig, RetryConfig, RetryOn,
    RouteConfig, RuleConfig, RulePrecedence, SessionPersistenceConfig, SimpleLoadBalancer,
    StringMatchConfig, TimeoutsConfig, UrlRewriteConfig, WeightedBackendConfig,
};

/// Most native matches one Istio rule may expand to (method alternatives).
const MAX_MATCHES_PER_RULE: usize = 256;
/// Cluster DNS suffix used to qualify short host names.
const CLUSTER_DOMAIN: &str = "svc.cluster.local";
/// Largest native weight.
const MAX_WEIGHT: i64 = 1_000_000;

// ---------------------------------------------------------------- source model

/// A Kubernetes object; only `spec` is read strictly.
#[derive(Deserialize)]
struct Resource<S> {
    #[serde(default = "Option::default")]
    spec: Option<S>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VsSpec {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    gateways: Vec<String>,
    #[serde(default)]
    http: Vec<HttpRoute>,
    #[serde(default)]
    tls: Vec<Value>,
    #[serde(default)]
    tcp: Vec<Value>,
    #[serde(default)]
    export_to: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpRoute {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "match")]
    matches: Vec<MatchRequest>,
    #[serde(default)]
    route: Vec<RouteDestination>,
    #[serde(default)]
    redirect: Option<Redirect>,
    #[serde(default)]
    direct_response: Option<DirectResponse>,
    #[serde(default)]
    delegate: Option<Delegate>,
    #[serde(default)]
    rewrite: Option<Rewrite>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    retries: Option<Retry>,
    #[serde(default)]
    fault: Option<Fault>,
    #[serde(default)]
    mirror: Option<Destination>,
    #[serde(default)]
    mirrors: Vec<MirrorPolicy>,
    #[serde(default)]
    mirror_percent: Option<u32>,
    #[serde(default)]
    mirror_percentage: Option<Percent>,
    #[serde(default)]
    cors_policy: Option<Value>,
    #[serde(default)]
    headers: Option<Headers>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Delegate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MatchRequest {
    /// Only shown in Envoy's access logs.
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<StringMatch>,
    #[serde(default)]
    scheme: Option<StringMatch>,
    #[serde(default)]
    method: Option<StringMatch>,
    #[serde(default)]
    authority: Option<StringMatch>,
    #[serde(default)]
    headers: BTreeMap<String, StringMatch>,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    source_labels: BTreeMap<String, String>,
    #[serde(default)]
    gateways: Vec<String>,
    #[serde(default)]
    query_params: BTreeMap<String, StringMatch>,
    #[serde(default)]
    ignore_uri_case: bool,
    #[serde(default)]
    without_headers: BTreeMap<String, StringMatch>,
    #[serde(default)]
    source_namespace: Option<String>,
    #[serde(default)]
    stat_prefix: Option<String>,
}

/// Istio `StringMatch`: a oneof of `exact`, `prefix`, `regex` (none = any value).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct StringMatch {
    #[serde(default)]
    exact: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    regex: Option<String>,
}

/// The one kind a `StringMatch` holds.
enum Sm<'a> {
    Any,
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RouteDestination {
    destination: Destination,
    #[serde(default)]
    weight: Option<i64>,
    #[serde(default)]
    headers: Option<Headers>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Destination {
    host: String,
    #[serde(default)]
    subset: Option<String>,
    /// The service port: the backend map (or the host name) decides the address.
    #[serde(default)]
    #[allow(dead_code)]
    port: Option<PortSelector>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct PortSelector {
    #[serde(default)]
    #[allow(dead_code)]
    number: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Headers {
    #[serde(default)]
    request: Option<HeaderOps>,
    #[serde(default)]
    response: Option<HeaderOps>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HeaderOps {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    add: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Redirect {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    port: Option<u32>,
    #[serde(default)]
    derive_port: Option<String>,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    redirect_code: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DirectResponse {
    status: u32,
    #[serde(default)]
    body: Option<Body>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default)]
    string: Option<String>,
    #[serde(default)]
    bytes: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Rewrite {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    uri_regex_rewrite: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Retry {
    #[serde(default)]
    attempts: Option<i64>,
    #[serde(default)]
    per_try_timeout: Option<String>,
    #[serde(default)]
    retry_on: Option<String>,
    #[serde(default)]
    retry_remote_localities: Option<bool>,
    #[serde(default)]
    retry_ignore_previous_hosts: Option<bool>,
    #[serde(default)]
    backoff: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Fault {
    #[serde(default)]
    delay: Option<Delay>,
    #[serde(default)]
    abort: Option<Abort>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Delay {
    #[serde(default)]
    fixed_delay: Option<String>,
    #[serde(default)]
    exponential_delay: Option<String>,
    #[serde(default)]
    percentage: Option<Percent>,
    #[serde(default)]
    percent: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Abort {
    #[serde(default)]
    http_status: Option<i64>,
    #[serde(default)]
    grpc_status: Option<String>,
    #[serde(default)]
    http2_error: Option<String>,
    #[serde(default)]
    percentage: Option<Percent>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct Percent {
    #[serde(default)]
    value: f64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MirrorPolicy {
    destination: Destination,
    #[serde(default)]
    percentage: Option<Percent>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DrSpec {
    host: String,
    #[serde(default)]
    traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    subsets: Vec<Subset>,
    #[serde(default)]
    export_to: Vec<String>,
    #[serde(default)]
    workload_selector: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Subset {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    traffic_policy: Option<TrafficPolicy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TrafficPolicy {
    #[serde(default)]
    load_balancer: Option<LoadBalancer>,
    #[serde(default)]
    connection_pool: Option<ConnectionPool>,
    #[serde(default)]
    outlier_detection: Option<Outlier>,
    #[serde(default)]
    tls: Option<Value>,
    #[serde(default)]
    port_level_settings: Vec<Value>,
    #[serde(default)]
    tunnel: Option<Value>,
    #[serde(default)]
    proxy_protocol: Option<Value>,
    #[serde(default)]
    retry_budget: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoadBalancer {
    #[serde(default)]
    simple: Option<String>,
    #[serde(default)]
    consistent_hash: Option<ConsistentHash>,
    #[serde(default)]
    locality_lb_setting: Option<Value>,
    #[serde(default)]
    warmup_duration_secs: Option<Value>,
    #[serde(default)]
    warmup: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConsistentHash {
    #[serde(default)]
    http_header_name: Option<String>,
    #[serde(default)]
    http_cookie: Option<HttpCookie>,
    #[serde(default)]
    use_source_ip: Option<bool>,
    #[serde(default)]
    http_query_parameter_name: Option<String>,
    #[serde(default)]
    ring_hash: Option<RingHash>,
    #[serde(default)]
    maglev: Option<Maglev>,
    #[serde(default)]
    minimum_ring_size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpCookie {
    name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    ttl: Option<String>,
    #[serde(default)]
    attributes: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RingHash {
    #[serde(default)]
    #[allow(dead_code)]
    minimum_ring_size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Maglev {
    #[serde(default)]
    table_size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConnectionPool {
    #[serde(default)]
    tcp: Option<TcpPool>,
    #[serde(default)]
    http: Option<HttpPool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TcpPool {
    #[serde(default)]
    max_connections: Option<i64>,
    #[serde(default)]
    connect_timeout: Option<String>,
    #[serde(default)]
    tcp_keepalive: Option<Value>,
    #[serde(default)]
    max_connection_duration: Option<String>,
    #[serde(default)]
    idle_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpPool {
    #[serde(default, rename = "http1MaxPendingRequests")]
    http1_max_pending_requests: Option<i64>,
    #[serde(default, rename = "http2MaxRequests")]
    http2_max_requests: Option<i64>,
    #[serde(default)]
    max_requests_per_connection: Option<i64>,
    #[serde(default)]
    max_retries: Option<i64>,
    #[serde(default)]
    idle_timeout: Option<String>,
    #[serde(default, rename = "h2UpgradePolicy")]
    h2_upgrade_policy: Option<String>,
    #[serde(default)]
    use_client_protocol: Option<bool>,
    #[serde(default)]
    max_concurrent_streams: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Outlier {
    #[serde(default)]
    consecutive_errors: Option<i64>,
    #[serde(default, rename = "consecutive5xxErrors")]
    consecutive_5xx_errors: Option<i64>,
    #[serde(default)]
    consecutive_gateway_errors: Option<i64>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    base_ejection_time: Option<String>,
    #[serde(default)]
    max_ejection_percent: Option<i64>,
    #[serde(default)]
    min_health_percent: Option<i64>,
    #[serde(default)]
    split_external_local_origin_errors: Option<bool>,
    #[serde(default)]
    consecutive_local_origin_failures: Option<i64>,
}

// ---------------------------------------------------------------- helpers

/// One document being imported: its location helper.
struct Ctx<'d, 'a> {
    doc: &'d Doc<'a>,
    resource: String,
}

impl Ctx<'_, '_> {
    fn at(&self, path: &str) -> Location {
        self.doc.loc(Some(&self.resource), path)
    }
}

/// `host` as Istio resolves it for a resource in `ns`.
fn fqdn(host: &str, ns: &str) -> String {
    if host.contains('.') || host.contains('*') {
        host.to_ascii_lowercase()
    } else {
        format!("{}.{ns}.{CLUSTER_DOMAIN}", host.to_ascii_lowercase())
    }
}

fn string_match<'s>(sm: &'s StringMatch, at: Location, out: &mut Out<'_>) -> Option<Sm<'s>> {
    let set = [&sm.exact, &sm.prefix, &sm.regex]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if set > 1 {
        out.error(
            at,
            ImportErrorKind::Invalid(
                "a StringMatch holds one of `exact`, `prefix` and `regex`".into(),
            ),
        );
        return None;
    }
    Some(match (&sm.exact, &sm.prefix, &sm.regex) {
        (Some(e), _, _) => Sm::Exact(e),
        (_, Some(p), _) => Sm::Prefix(p),
        (_, _, Some(r)) => Sm::Regex(r),
        _ => Sm::Any,
    })
}

/// Method tokens of a regex written as plain alternatives (`GET`, `^(GET|POST)$`).
fn method_tokens(re: &str) -> Option<Vec<String>> {
    let mut s = re.trim();
    s = s.strip_prefix('^').unwrap_or(s);
    s = s.strip_suffix('$').unwrap_or(s);
    if let Some(inner) = s.strip_prefix("(?:").or_else(|| s.strip_prefix('(')) {
        s = inner.strip_suffix(')')?;
    }
    let tokens: Vec<String> = s.split('|').map(str::to_owned).collect();
    let ok = tokens
        .iter()
        .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_uppercase()));
    (ok && tokens.len() <= 16).then_some(tokens)
}

/// Whether the regex (anchored, as Envoy's) accepts the empty string; `None` when it
/// does not compile (native validation reports that).
fn regex_accepts_empty(re: &str) -> Option<bool> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
        .ok()
        .map(|r| r.is_match(""))
}

fn percent_value(p: Option<Percent>, legacy: Option<i64>) -> Option<f64> {
    match (p, legacy) {
        (Some(p), _) => Some(p.value),
        (None, Some(l)) => Some(l as f64),
        (None, None) => None,
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut buf = 0u32;
    let mut bits = 0u32;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A duration field: `Ok(None)` for zero, an Invalid error on a bad value.
fn duration(s: &str, at: Location, out: &mut Out<'_>) -> Result<Option<crate::ConfigDuration>, ()> {
    match go_duration(s) {
        Ok(d) if d.is_zero() => Ok(None),
        Ok(d) => Ok(Some(to_config_duration(d))),
        Err(e) => {
            out.error(at, ImportErrorKind::Invalid(e));
            Err(())
        }
    }
}

// ---------------------------------------------------------------- DestinationRules

/// The native forms of one `trafficPolicy`'s parts.
#[derive(Default, Clone)]
struct Policy {
    lb: Option<Lb>,
    pool: Option<ConnectionPoolConfig>,
}

/// A load balancer as a rule applies it.
#[derive(Clone, PartialEq)]
struct Lb {
    lb: Option<LoadBalancerConfig>,
    session: Option<SessionPersistenceConfig>,
    at: Location,
}

struct DrEntry {
    /// The resource's name, for messages.
    resource: String,
    policy: Policy,
    subsets: BTreeMap<String, Policy>,
}

#[derive(Default)]
struct Rules {
    by_host: BTreeMap<String, DrEntry>,
}

impl Rules {
    /// The entry for a fully qualified host: exact, else the longest wildcard.
    fn find(&self, host: &str) -> Option<&DrEntry> {
        if let Some(e) = self.by_host.get(host) {
            return Some(e);
        }
        self.by_host
            .iter()
            .filter(|(h, _)| match h.strip_prefix('*') {
                Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
                None => false,
            })
            .max_by_key(|(h, _)| h.len())
            .map(|(_, e)| e)
    }
}

fn destination_rules(drs: &[&Doc<'_>], out: &mut Out<'_>) -> Rules {
    let mut rules = Rules::default();
    for doc in drs {
        let ns = doc.namespace(out).to_owned();
        let cx = Ctx {
            doc,
            resource: format!("DestinationRule {ns}/{}", doc.name()),
        };
        let res: Resource<DrSpec> = match doc.parse(Some(&cx.resource)) {
            Ok(r) => r,
            Err(e) => {
                out.push_error(e);
                continue;
            }
        };
        let Some(spec) = res.spec else {
            out.error(
                cx.at("spec"),
                ImportErrorKind::Invalid("a DestinationRule needs a `spec`".into()),
            );
            continue;
        };
        if spec.host.is_empty() {
            out.error(
                cx.at("spec.host"),
                ImportErrorKind::Invalid("`host` is required".into()),
            );
            continue;
        }
        if !spec.export_to.is_empty() {
            out.warn(
                cx.at("spec.exportTo"),
                "`exportTo` (namespace visibility) is not applied in-process",
            );
        }
        if spec.workload_selector.is_some() {
            out.warn(
                cx.at("spec.workloadSelector"),
                "`workloadSelector` is not applied in-process: the rule applies to every caller",
            );
        }
        let policy = traffic_policy(spec.traffic_policy.as_ref(), &cx, "spec.trafficPolicy", out);
        let mut subsets = BTreeMap::new();
        for (i, s) in spec.subsets.iter().enumerate() {
            let p = format!("spec.subsets[{i}]");
            let sp = traffic_policy(
                s.traffic_policy.as_ref(),
                &cx,
                &format!("{p}.trafficPolicy"),
                out,
            );
            if subsets.contains_key(&s.name) {
                out.error(
                    cx.at(&format!("{p}.name")),
                    ImportErrorKind::Invalid(format!("subset `{}` is defined twice", s.name)),
                );
                continue;
            }
            subsets.insert(s.name.clone(), sp);
        }
        let host = fqdn(&spec.host, &ns);
        match rules.by_host.get_mut(&host) {
            Some(existing) => {
                // Istio merges the subsets of rules for one host; the first policy wins.
                if spec.traffic_policy.is_some() {
                    out.warn(
                        cx.at("spec.trafficPolicy"),
                        format!(
                            "{} already sets the traffic policy of `{host}`; this one is ignored (Istio keeps the first)",
                            existing.resource
                        ),
                    );
                }
                for (k, v) in subsets {
                    existing.subsets.entry(k).or_insert(v);
                }
            }
            None => {
                rules.by_host.insert(
                    host,
                    DrEntry {
                        resource: cx.resource.clone(),
                        policy,
                        subsets,
                    },
                );
            }
        }
    }
    rules
}

/// Converts a `trafficPolicy`, reporting what is not applied; outlier detection and
/// the Maglev table size go straight to the global settings.
fn traffic_policy(
    tp: Option<&TrafficPolicy>,
    cx: &Ctx<'_, '_>,
    p: &str,
    out: &mut Out<'_>,
) -> Policy {
    let Some(tp) = tp else {
        return Policy::default();
    };
    let warn_not_applied = |out: &mut Out<'_>, field: &str, what: &str| {
        out.warn(
            cx.at(&format!("{p}.{field}")),
            format!("`{field}` ({what}) is not applied in-process"),
        );
    };
    if tp.tls.is_some() {
        warn_not_applied(out, "tls", "upstream TLS");
    }
    if !tp.port_level_settings.is_empty() {
        warn_not_applied(out, "portLevelSettings", "per-port policies");
    }
    if tp.tunnel.is_some() {
        warn_not_applied(out, "tunnel", "TCP tunnelling");
    }
    if tp.proxy_protocol.is_some() {
        warn_not_applied(out, "proxyProtocol", "upstream PROXY protocol");
    }
    if tp.retry_budget.is_some() {
        warn_not_applied(out, "retryBudget", "a per-host retry budget");
    }
    let lb = tp
        .load_balancer
        .as_ref()
        .and_then(|lb| load_balancer(lb, cx, &format!("{p}.loadBalancer"), out));
    let pool = tp
        .connection_pool
        .as_ref()
        .and_then(|cp| connection_pool(cp, cx, &format!("{p}.connectionPool"), out));
    if let Some(od) = &tp.outlier_detection {
        outlier(od, cx, &format!("{p}.outlierDetection"), out);
    }
    Policy { lb, pool }
}

fn load_balancer(lb: &LoadBalancer, cx: &Ctx<'_, '_>, p: &str, out: &mut Out<'_>) -> Option<Lb> {
    if lb.locality_lb_setting.is_some() {
        out.warn(
            cx.at(&format!("{p}.localityLbSetting")),
            "`localityLbSetting` is not applied in-process (there are no localities)",
        );
    }
    if lb.warmup_duration_secs.is_some() {
        out.warn(
            cx.at(&format!("{p}.warmupDurationSecs")),
            "`warmupDurationSecs` (slow start) is not applied in-process",
        );
    }
    if lb.warmup.is_some() {
        out.warn(
            cx.at(&format!("{p}.warmup")),
            "`warmup` (slow start) is not applied in-process",
        );
    }
    let at = cx.at(p);
    match (&lb.simple, &lb.consistent_hash) {
        (Some(_), Some(_)) => {
            out.error(
                at,
                ImportErrorKind::Invalid("`simple` and `consistentHash` are exclusive".into()),
            );
            None
        }
        (Some(s), None) => {
            let sp = cx.at(&format!("{p}.simple"));
            let simple = match s.as_str() {
                "ROUND_ROBIN" => SimpleLoadBalancer::RoundRobin,
                "RANDOM" => SimpleLoadBalancer::Random,
                "LEAST_REQUEST" | "LEAST_CONN" | "UNSPECIFIED" => {
                    out.warn(
                        sp,
                        format!("`{s}` is not available in-process; weighted `random` is used (same shares, no load feedback)"),
                    );
                    SimpleLoadBalancer::Random
                }
                "PASSTHROUGH" => {
                    out.error(
                        sp,
                        ImportErrorKind::Unsupported(
                            "`PASSTHROUGH` (forward to the caller's original destination address)"
                                .into(),
                        ),
                    );
                    return None;
                }
                other => {
                    out.error(
                        sp,
                        ImportErrorKind::Invalid(format!("unknown load balancer `{other}`")),
                    );
                    return None;
                }
            };
            Some(Lb {
                lb: Some(LoadBalancerConfig {
                    simple: Some(simple),
                    consistent_hash: None,
                }),
                session: None,
                at,
            })
        }
        (None, Some(ch)) => consistent_hash(ch, cx, &format!("{p}.consistentHash"), out),
        (None, None) => None,
    }
}

fn consistent_hash(
    ch: &ConsistentHash,
    cx: &Ctx<'_, '_>,
    p: &str,
    out: &mut Out<'_>,
) -> Option<Lb> {
    let at = cx.at(p);
    if ch.ring_hash.is_some() || ch.minimum_ring_size.is_some() {
        let f = if ch.ring_hash.is_some() {
            "ringHash"
        } else {
            "minimumRingSize"
        };
        out.warn(
            cx.at(&format!("{p}.{f}")),
            "ring hash is approximated by the weighted Maglev table (the same key still reaches the same backend)",
        );
    }
    if let Some(size) = ch.maglev.as_ref().and_then(|m| m.table_size) {
        let tp = cx.at(&format!("{p}.maglev.tableSize"));
        if crate::is_prime(size) {
            out.maglev_table_size(size, tp);
        } else {
            out.error(
                tp,
                ImportErrorKind::Invalid(format!("Maglev table size {size} is not a prime")),
            );
        }
    }
    let keys = [
        ch.http_header_name.is_some(),
        ch.http_cookie.is_some(),
        ch.use_source_ip.is_some(),
        ch.http_query_parameter_name.is_some(),
    ];
    if keys.iter().filter(|k| **k).count() != 1 {
        out.error(
            at,
            ImportErrorKind::Invalid(
                "`consistentHash` needs exactly one of `httpHeaderName`, `httpCookie`, `useSourceIp`, `httpQueryParameterName`".into(),
            ),
        );
        return None;
    }
    let hash = |h: HashOnConfig| LoadBalancerConfig {
        simple: None,
        consistent_hash: Some(h),
    };
    if let Some(c) = &ch.http_cookie {
        let cp = format!("{p}.httpCookie");
        if !c.attributes.is_empty() {
            out.warn(
                cx.at(&format!("{cp}.attributes")),
                "cookie `attributes` are not applied (the cookie gets the native defaults)",
            );
        }
        if let Some(ttl) = &c.ttl {
            let Ok(ttl) = duration(ttl, cx.at(&format!("{cp}.ttl")), out) else {
                return None;
            };
            return Some(Lb {
                lb: None,
                session: Some(SessionPersistenceConfig {
                    cookie: Some(CookieConfig {
                        name: c.name.clone(),
                        ttl,
                        path: c.path.clone(),
                        ..CookieConfig::default()
                    }),
                    header: None,
                }),
                at,
            });
        }
        if c.path.is_some() {
            out.warn(
                cx.at(&format!("{cp}.path")),
                "`path` only matters for a cookie the proxy issues (with `ttl`); ignored",
            );
        }
        return Some(Lb {
            lb: Some(hash(HashOnConfig {
                cookie: Some(c.name.clone()),
                ..HashOnConfig::default()
            })),
            session: None,
            at,
        });
    }
    let h = if let Some(h) = &ch.http_header_name {
        HashOnConfig {
            header: Some(h.clone()),
            ..HashOnConfig::default()
        }
    } else if let Some(q) = &ch.http_query_parameter_name {
        HashOnConfig {
            query: Some(q.clone()),
            ..HashOnConfig::default()
        }
    } else if ch.use_source_ip == Some(true) {
        HashOnConfig {
            source_ip: true,
            ..HashOnConfig::default()
        }
    } else {
        // `useSourceIp: false` and nothing else: no key.
        return None;
    };
    Some(Lb {
        lb: Some(hash(h)),
        session: None,
        at,
    })
}

fn positive(v: Option<i64>) -> Option<u32> {
    v.filter(|n| *n > 0)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn connection_pool(
    cp: &ConnectionPool,
    cx: &Ctx<'_, '_>,
    p: &str,
    out: &mut Out<'_>,
) -> Option<ConnectionPoolConfig> {
    let mut not_applied = Vec::new();
    if let Some(t) = &cp.tcp {
        for (set, f) in [
            (t.connect_timeout.is_some(), "connectTimeout"),
            (t.tcp_keepalive.is_some(), "tcpKeepalive"),
            (t.max_connection_duration.is_some(), "maxConnectionDuration"),
            (t.idle_timeout.is_some(), "idleTimeout"),
        ] {
            if set {
                not_applied.push(format!("tcp.{f}"));
            }
        }
    }
    if let Some(h) = &cp.http {
        for (set, f) in [
            (
                h.max_requests_per_connection.is_some(),
                "maxRequestsPerConnection",
            ),
            (h.max_retries.is_some(), "maxRetries"),
            (h.idle_timeout.is_some(), "idleTimeout"),
            (h.h2_upgrade_policy.is_some(), "h2UpgradePolicy"),
            (h.use_client_protocol.is_some(), "useClientProtocol"),
            (h.max_concurrent_streams.is_some(), "maxConcurrentStreams"),
        ] {
            if set {
                not_applied.push(format!("http.{f}"));
            }
        }
    }
    for f in not_applied {
        out.warn(
            cx.at(&format!("{p}.{f}")),
            format!("`{f}` is not applied in-process"),
        );
    }
    let http2 = positive(cp.http.as_ref().and_then(|h| h.http2_max_requests));
    let pending = positive(cp.http.as_ref().and_then(|h| h.http1_max_pending_requests));
    let tcp = positive(cp.tcp.as_ref().and_then(|t| t.max_connections));
    let max = match (http2, tcp) {
        (Some(h), _) => Some(h),
        (None, Some(t)) => {
            out.warn(
                cx.at(&format!("{p}.tcp.maxConnections")),
                format!("`maxConnections` bounds connections; here it bounds requests in flight ({t}) to each backend"),
            );
            Some(t)
        }
        (None, None) => None,
    };
    match max {
        Some(m) => Some(ConnectionPoolConfig {
            max_concurrent_requests: m,
            // Istio's default is unbounded (2^32-1).
            max_pending_requests: Some(pending.unwrap_or(u32::MAX)),
        }),
        None => {
            if pending.is_some() {
                out.warn(
                    cx.at(&format!("{p}.http.http1MaxPendingRequests")),
                    "a pending-request bound without a concurrency bound is not applied",
                );
            }
            None
        }
    }
}

fn outlier(od: &Outlier, cx: &Ctx<'_, '_>, p: &str, out: &mut Out<'_>) {
    for (set, f, why) in [
        (
            od.min_health_percent.is_some(),
            "minHealthPercent",
            "the native panic threshold is global",
        ),
        (
            od.split_external_local_origin_errors.is_some(),
            "splitExternalLocalOriginErrors",
            "local failures always count",
        ),
        (
            od.consecutive_local_origin_failures.is_some(),
            "consecutiveLocalOriginFailures",
            "local failures always count",
        ),
    ] {
        if set {
            out.warn(
                cx.at(&format!("{p}.{f}")),
                format!("`{f}` is not applied ({why})"),
            );
        }
    }
    let count = |v: Option<i64>, f: &str, out: &mut Out<'_>| -> Option<u32> {
        let v = v?;
        match u32::try_from(v) {
            Ok(n) => Some(n),
            Err(_) => {
                out.error(
                    cx.at(&format!("{p}.{f}")),
                    ImportErrorKind::Invalid(format!(
                        "`{f}` must be a non-negative count, not {v}"
                    )),
                );
                None
            }
        }
    };
    let c5 = count(od.consecutive_5xx_errors, "consecutive5xxErrors", out);
    let mut gw = count(
        od.consecutive_gateway_errors,
        "consecutiveGatewayErrors",
        out,
    );
    if let Some(legacy) = count(od.consecutive_errors, "consecutiveErrors", out) {
        // Deprecated: it counted 502/503/504 responses.
        if gw.is_none() && legacy > 0 {
            gw = Some(legacy);
        }
    }
    let mut cfg = OutlierDetectionConfig {
        consecutive_5xx: c5,
        consecutive_gateway_errors: gw.filter(|n| *n > 0),
        ..OutlierDetectionConfig::default()
    };
    if let Some(i) = &od.interval {
        if let Ok(d) = duration(i, cx.at(&format!("{p}.interval")), out) {
            cfg.interval = d;
        }
    }
    if let Some(b) = &od.base_ejection_time {
        if let Ok(d) = duration(b, cx.at(&format!("{p}.baseEjectionTime")), out) {
            cfg.base_ejection_time = d;
        }
    }
    if let Some(m) = od.max_ejection_percent {
        if (0..=100).contains(&m) {
            cfg.max_ejection_percent = Some(m as u32);
        } else {
            out.error(
                cx.at(&format!("{p}.maxEjectionPercent")),
                ImportErrorKind::Invalid(format!(
                    "`maxEjectionPercent` must be 0 ..= 100, not {m}"
                )),
            );
        }
    }
    out.outlier_detection(cfg, cx.at(p));
}

// ---------------------------------------------------------------- VirtualServices

/// Imports every `VirtualService`, with the `DestinationRule`s of their hosts.
pub(crate) fn import(vs: &[&Doc<'_>], dr: &[&Doc<'_>], out: &mut Out<'_>) {
    let rules = destination_rules(dr, out);
    let mut used: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    let mut unchecked_hosts: BTreeSet<String> = BTreeSet::new();
    for doc in vs {
        virtual_service(doc, &rules, &mut used, &mut unchecked_hosts, out);
    }
    // Connection pools go to every backend of a host/subset that routes use.
    for (backend, (host, subset)) in used {
        let Some(entry) = rules.find(&host) else {
            continue;
        };
        let sub = subset.as_ref().and_then(|s| entry.subsets.get(s));
        let pool = sub.and_then(|s| s.pool).or(entry.policy.pool);
        if let (Some(pool), Some(b)) = (pool, out.backend_config(&backend)) {
            if b.connection_pool.is_none() {
                b.connection_pool = Some(pool);
            }
        }
    }
}

/// What a rule's destinations resolved to.
struct Dest {
    name: String,
    weight: u64,
    lb: Option<Lb>,
}

struct VsCtx<'r, 'd, 'a> {
    cx: Ctx<'d, 'a>,
    ns: String,
    rules: &'r Rules,
    used: RefCell<&'r mut BTreeMap<String, (String, Option<String>)>>,
    unchecked: RefCell<&'r mut BTreeSet<String>>,
}

fn virtual_service(
    doc: &Doc<'_>,
    rules: &Rules,
    used: &mut BTreeMap<String, (String, Option<String>)>,
    unchecked: &mut BTreeSet<String>,
    out: &mut Out<'_>,
) {
    let ns = doc.namespace(out).to_owned();
    let name = doc.name().to_owned();
    let cx = Ctx {
        doc,
        resource: format!("VirtualService {ns}/{name}"),
    };
    let errors_before = out.error_count();
    let res: Resource<VsSpec> = match doc.parse(Some(&cx.resource)) {
        Ok(r) => r,
        Err(e) => {
            out.push_error(e);
            return;
        }
    };
    let Some(spec) = res.spec else {
        out.error(
            cx.at("spec"),
            ImportErrorKind::Invalid("a VirtualService needs a `spec`".into()),
        );
        return;
    };
    if spec.hosts.is_empty() {
        out.error(
            cx.at("spec.hosts"),
            ImportErrorKind::Unsupported(
                "a VirtualService without `hosts` is only reachable through `delegate`, which is not supported".into(),
            ),
        );
        return;
    }
    if !spec.gateways.is_empty() {
        out.warn(
            cx.at("spec.gateways"),
            "`gateways` is not applied in-process: the routes apply to every request this router sees",
        );
    }
    if !spec.export_to.is_empty() {
        out.warn(
            cx.at("spec.exportTo"),
            "`exportTo` (namespace visibility) is not applied in-process",
        );
    }
    if !spec.tcp.is_empty() {
        out.warn(
            cx.at("spec.tcp"),
            "`tcp` routes are not imported (they are not HTTP routes)",
        );
    }
    if !spec.tls.is_empty() {
        out.warn(
            cx.at("spec.tls"),
            "`tls` routes are not imported (they are not HTTP routes)",
        );
    }
    let hostnames = if spec.hosts.iter().any(|h| h == "*") {
        Vec::new()
    } else {
        spec.hosts.clone()
    };
    let v = VsCtx {
        cx,
        ns,
        rules,
        used: RefCell::new(used),
        unchecked: RefCell::new(unchecked),
    };
    let mut native_rules = Vec::new();
    let mut origins = Vec::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (i, http) in spec.http.iter().enumerate() {
        let p = format!("spec.http[{i}]");
        if let Some(mut rule) = http_rule(http, &p, &v, out) {
            if let Some(n) = &rule.name {
                let mut candidate = n.clone();
                let mut k = 1;
                while names.contains(&candidate) {
                    k += 1;
                    candidate = format!("{n}~{k}");
                }
                names.insert(candidate.clone());
                rule.name = Some(candidate);
            }
            native_rules.push(rule);
            origins.push(v.cx.at(&p));
        }
    }
    if out.error_count() != errors_before || native_rules.is_empty() {
        return;
    }
    out.route(
        RouteConfig {
            name: format!("{}/{name}", v.ns),
            hostnames,
            rules: native_rules,
            precedence: Some(RulePrecedence::FirstMatch),
        },
        RouteOrigin {
            at: v.cx.at(""),
            rules: origins,
        },
    );
}

/// How a match constrains the path, for choosing the rewrite.
#[derive(Clone, Copy, PartialEq)]
enum PathKind {
    None,
    Prefix,
    CaseInsensitivePrefix,
    Whole,
}

fn http_rule(
    h: &HttpRoute,
    p: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<RuleConfig> {
    let before = out.error_count();
    let at = |path: &str| v.cx.at(&format!("{p}.{path}"));
    if h.delegate.is_some() {
        let d = h.delegate.as_ref();
        let target = format!(
            "{}/{}",
            d.and_then(|d| d.namespace.as_deref()).unwrap_or(&v.ns),
            d.and_then(|d| d.name.as_deref()).unwrap_or("")
        );
        out.error(
            at("delegate"),
            ImportErrorKind::Unsupported(format!(
                "`delegate` (to VirtualService {target}): import the delegate's routes into this one instead"
            )),
        );
        return None;
    }
    let actions = [
        !h.route.is_empty(),
        h.redirect.is_some(),
        h.direct_response.is_some(),
    ];
    match actions.iter().filter(|a| **a).count() {
        0 => {
            out.error(
                v.cx.at(p),
                ImportErrorKind::Invalid(
                    "a rule needs one of `route`, `redirect` and `directResponse`".into(),
                ),
            );
            return None;
        }
        1 => {}
        _ => {
            out.error(
                v.cx.at(p),
                ImportErrorKind::Invalid(
                    "`route`, `redirect` and `directResponse` are exclusive".into(),
                ),
            );
            return None;
        }
    }
    if h.cors_policy.is_some() {
        out.warn(at("corsPolicy"), "`corsPolicy` is not applied in-process");
    }

    // Rewrite first: it decides how prefix matches are written.
    let mut rewrite_uri = None;
    let mut rewrite_host = None;
    if let Some(rw) = &h.rewrite {
        if rw.uri_regex_rewrite.is_some() {
            out.error(
                at("rewrite.uriRegexRewrite"),
                ImportErrorKind::Unsupported(
                    "`uriRegexRewrite` (regex substitution of the path)".into(),
                ),
            );
        }
        rewrite_uri = rw.uri.clone().filter(|u| !u.is_empty());
        rewrite_host = rw.authority.clone().filter(|a| !a.is_empty());
        if h.route.is_empty() {
            out.error(
                at("rewrite"),
                ImportErrorKind::Invalid("`rewrite` needs `route`".into()),
            );
        }
    }

    // Matches.
    let mut matches = Vec::new();
    let mut kinds = Vec::new();
    for (j, m) in h.matches.iter().enumerate() {
        let mp = format!("{p}.match[{j}]");
        if let Some((ms, kind)) = match_request(m, &mp, rewrite_uri.is_some(), v, out) {
            for m in ms {
                matches.push(m);
                kinds.push(kind);
            }
        }
        if matches.len() > MAX_MATCHES_PER_RULE {
            out.error(
                v.cx.at(&mp),
                ImportErrorKind::Unsupported(format!(
                    "more than {MAX_MATCHES_PER_RULE} native matches in one rule"
                )),
            );
            return None;
        }
    }
    if h.matches.is_empty() && rewrite_uri.is_some() {
        // Envoy's default match is the plain prefix `/`, which the rewrite replaces.
        matches.push(MatchConfig {
            path: Some(PathMatchConfig {
                starts_with: Some("/".into()),
                ..PathMatchConfig::default()
            }),
            ..MatchConfig::default()
        });
        kinds.push(PathKind::Prefix);
    }

    let mut rule = RuleConfig {
        name: h
            .name
            .as_ref()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
        matches,
        ..RuleConfig::default()
    };
    let mut filters = FiltersConfig::default();

    if let Some(uri) = &rewrite_uri {
        let all = |f: &dyn Fn(PathKind) -> bool| kinds.iter().all(|k| f(*k));
        let path = if kinds.contains(&PathKind::CaseInsensitivePrefix) {
            out.error(
                at("rewrite.uri"),
                ImportErrorKind::Unsupported(
                    "a prefix `rewrite.uri` after an `ignoreUriCase` prefix match (the replaced prefix's case is not known)".into(),
                ),
            );
            None
        } else if all(&|k| matches!(k, PathKind::Prefix | PathKind::None)) {
            Some(PathModifierConfig {
                prefix: Some(uri.clone()),
                full: None,
            })
        } else if all(&|k| k == PathKind::Whole) {
            Some(PathModifierConfig {
                full: Some(uri.clone()),
                prefix: None,
            })
        } else {
            out.error(
                at("rewrite.uri"),
                ImportErrorKind::Unsupported(
                    "`rewrite.uri` on a rule mixing prefix and exact/regex uri matches (split the rule)".into(),
                ),
            );
            None
        };
        filters.url_rewrite = Some(UrlRewriteConfig {
            hostname: None,
            path,
        });
    }

    // Action.
    if let Some(r) = &h.redirect {
        rule.redirect = redirect(r, &format!("{p}.redirect"), v, out);
    } else if let Some(d) = &h.direct_response {
        rule.fixed_response = direct_response(d, &format!("{p}.directResponse"), v, out);
    } else {
        let dests = destinations(h, p, v, out, &mut filters);
        let lbs: Vec<&Option<Lb>> = dests.iter().map(|d| &d.lb).collect();
        if let Some(first) = lbs.first() {
            if lbs.iter().any(|l| *l != *first) {
                out.warn(
                    at("route"),
                    "the destinations have different DestinationRule load balancers; the first destination's applies to the whole rule",
                );
            }
            if let Some(lb) = first {
                rule.load_balancer = lb.lb.clone();
                rule.session_persistence = lb.session.clone();
            }
        }
        rule.backends = dests
            .into_iter()
            .map(|d| WeightedBackendConfig {
                name: d.name,
                weight: d.weight,
            })
            .collect();
    }

    // Authority rewrite.
    if let Some(host) = rewrite_host {
        filters
            .url_rewrite
            .get_or_insert_with(Default::default)
            .hostname = Some(host);
    }

    // Headers.
    if let Some(hs) = &h.headers {
        header_ops(hs, &format!("{p}.headers"), v, out, &mut filters);
    }

    // Timeouts and retries.
    let mut timeouts = TimeoutsConfig::default();
    if let Some(t) = &h.timeout {
        if let Ok(d) = duration(t, at("timeout"), out) {
            timeouts.request = d;
        }
    }
    if let Some(r) = &h.retries {
        rule.retry = retries(r, &format!("{p}.retries"), v, out, &mut timeouts);
    }
    if let (Some(req), Some(per)) = (&timeouts.request, &timeouts.per_try) {
        if per.as_duration() > req.as_duration() {
            // The request timeout bounds every try anyway.
            timeouts.per_try = Some(*req);
        }
    }
    if timeouts != TimeoutsConfig::default() {
        rule.timeouts = Some(timeouts);
    }

    if let Some(f) = &h.fault {
        rule.fault = fault(f, &format!("{p}.fault"), v, out);
    }
    rule.mirror = mirror(h, p, v, out);

    if filters != FiltersConfig::default() {
        rule.filters = Some(filters);
    }
    (out.error_count() == before).then_some(rule)
}

fn match_request(
    m: &MatchRequest,
    mp: &str,
    rewrite: bool,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<(Vec<MatchConfig>, PathKind)> {
    let before = out.error_count();
    let at = |path: &str| v.cx.at(&format!("{mp}.{path}"));
    for (set, f, msg) in [
        (!m.source_labels.is_empty(), "sourceLabels", "`sourceLabels` (caller workload selection) is not applied in-process: the match holds for every caller"),
        (!m.gateways.is_empty(), "gateways", "`gateways` is not applied in-process: the match holds wherever this router runs"),
        (m.source_namespace.is_some(), "sourceNamespace", "`sourceNamespace` (caller namespace) is not applied in-process: the match holds for every caller"),
        (m.port.is_some(), "port", "`port` is not applied: the route table does not see the listener port, so the match holds on every port"),
        (m.stat_prefix.is_some(), "statPrefix", "`statPrefix` (Envoy stats) is not applied in-process"),
    ] {
        if set {
            out.warn(at(f), msg);
        }
    }
    let mut base = MatchConfig::default();
    let mut kind = PathKind::None;

    // uri
    if let Some(u) = &m.uri {
        match string_match(u, at("uri"), out) {
            Some(Sm::Exact(e)) => {
                kind = PathKind::Whole;
                base.path = Some(if m.ignore_uri_case {
                    PathMatchConfig {
                        regex: Some(format!("(?i){}", regex::escape(e))),
                        ..PathMatchConfig::default()
                    }
                } else {
                    PathMatchConfig {
                        exact: Some(e.to_owned()),
                        ..PathMatchConfig::default()
                    }
                });
            }
            Some(Sm::Prefix(pre)) => {
                if m.ignore_uri_case {
                    kind = PathKind::CaseInsensitivePrefix;
                    base.path = Some(PathMatchConfig {
                        regex: Some(format!("(?i){}(?s:.*)", regex::escape(pre))),
                        ..PathMatchConfig::default()
                    });
                } else {
                    kind = PathKind::Prefix;
                    base.path = Some(if pre == "/" && !rewrite {
                        PathMatchConfig {
                            prefix: Some("/".into()),
                            ..PathMatchConfig::default()
                        }
                    } else {
                        PathMatchConfig {
                            starts_with: Some(pre.to_owned()),
                            ..PathMatchConfig::default()
                        }
                    });
                }
            }
            Some(Sm::Regex(r)) => {
                // Envoy's case_sensitive flag does not apply to regexes.
                kind = PathKind::Whole;
                base.path = Some(PathMatchConfig {
                    regex: Some(r.to_owned()),
                    ..PathMatchConfig::default()
                });
            }
            Some(Sm::Any) | None => {}
        }
    }
    if kind == PathKind::None && rewrite {
        base.path = Some(PathMatchConfig {
            starts_with: Some("/".into()),
            ..PathMatchConfig::default()
        });
    }

    // scheme
    if let Some(s) = &m.scheme {
        match string_match(s, at("scheme"), out) {
            Some(Sm::Exact(e)) if e == "http" || e == "https" => base.scheme = Some(e.to_owned()),
            Some(Sm::Any) | None => {}
            Some(_) => out.error(
                at("scheme"),
                ImportErrorKind::Unsupported(
                    "a scheme match other than `exact: http` or `exact: https`".into(),
                ),
            ),
        }
    }

    // authority
    if let Some(a) = &m.authority {
        let sm = match string_match(a, at("authority"), out) {
            Some(Sm::Exact(e)) => Some(StringMatchConfig {
                exact: Some(e.to_owned()),
                ..StringMatchConfig::default()
            }),
            Some(Sm::Prefix(pre)) => Some(StringMatchConfig {
                prefix: Some(pre.to_owned()),
                ..StringMatchConfig::default()
            }),
            Some(Sm::Regex(r)) => Some(StringMatchConfig {
                regex: Some(r.to_owned()),
                ..StringMatchConfig::default()
            }),
            Some(Sm::Any) | None => None,
        };
        if let Some(sm) = sm {
            let text = [&sm.exact, &sm.prefix, &sm.regex]
                .into_iter()
                .flatten()
                .next()
                .cloned()
                .unwrap_or_default();
            if text.contains(':') {
                out.error(
                    at("authority"),
                    ImportErrorKind::Unsupported(
                        "an authority match on a port: native authority matches see the host without its port".into(),
                    ),
                );
            } else {
                base.authority = Some(sm);
            }
        }
    }

    // headers
    for (name, sm) in &m.headers {
        let hp = format!("headers.{name}");
        if !header_name_ok(name, &at(&hp), out) {
            continue;
        }
        let mut h = HeaderMatchConfig {
            name: name.clone(),
            ..HeaderMatchConfig::default()
        };
        match string_match(sm, at(&hp), out) {
            Some(Sm::Any) => h.present = true,
            Some(Sm::Regex("*")) => h.present = true,
            Some(Sm::Exact(e)) => h.exact = Some(e.to_owned()),
            Some(Sm::Prefix(pre)) => h.prefix = Some(pre.to_owned()),
            Some(Sm::Regex(r)) => h.regex = Some(r.to_owned()),
            None => continue,
        }
        base.headers.push(h);
    }
    for (name, sm) in &m.without_headers {
        let hp = format!("withoutHeaders.{name}");
        if !header_name_ok(name, &at(&hp), out) {
            continue;
        }
        let mut h = HeaderMatchConfig {
            name: name.clone(),
            invert: true,
            ..HeaderMatchConfig::default()
        };
        let accepts_empty = match string_match(sm, at(&hp), out) {
            Some(Sm::Any | Sm::Regex("*")) => {
                base.headers.push(HeaderMatchConfig {
                    name: name.clone(),
                    absent: true,
                    ..HeaderMatchConfig::default()
                });
                continue;
            }
            Some(Sm::Exact(e)) => {
                h.exact = Some(e.to_owned());
                e.is_empty()
            }
            Some(Sm::Prefix(pre)) => {
                h.prefix = Some(pre.to_owned());
                pre.is_empty()
            }
            Some(Sm::Regex(r)) => {
                h.regex = Some(r.to_owned());
                regex_accepts_empty(r).unwrap_or(false)
            }
            None => continue,
        };
        if accepts_empty {
            // Envoy matches a missing header as the empty string, so a matcher that
            // accepts "" makes the inverted condition require the header.
            base.headers.push(HeaderMatchConfig {
                name: name.clone(),
                present: true,
                ..HeaderMatchConfig::default()
            });
        }
        base.headers.push(h);
    }

    // query parameters
    for (name, sm) in &m.query_params {
        let qp = at(&format!("queryParams.{name}"));
        let mut q = QueryMatchConfig {
            name: name.clone(),
            ..QueryMatchConfig::default()
        };
        match string_match(sm, qp.clone(), out) {
            Some(Sm::Any | Sm::Regex("*")) => q.present = true,
            Some(Sm::Exact(e)) => q.exact = Some(e.to_owned()),
            Some(Sm::Regex(r)) => q.regex = Some(r.to_owned()),
            Some(Sm::Prefix(_)) => {
                out.error(
                    qp,
                    ImportErrorKind::Unsupported(
                        "`prefix` on a query parameter (Istio documents it as not supported)"
                            .into(),
                    ),
                );
                continue;
            }
            None => continue,
        }
        base.query.push(q);
    }

    // method (last: it may expand the match)
    let mut methods: Vec<Option<String>> = vec![None];
    if let Some(me) = &m.method {
        match string_match(me, at("method"), out) {
            Some(Sm::Exact(e)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_uppercase()) => {
                methods = vec![Some(e.to_owned())];
            }
            Some(Sm::Regex(r)) if method_tokens(r).is_some() => {
                methods = method_tokens(r)
                    .unwrap_or_default()
                    .into_iter()
                    .map(Some)
                    .collect();
            }
            Some(Sm::Any) | None => {}
            Some(_) => out.error(
                at("method"),
                ImportErrorKind::Unsupported(
                    "a method match other than an uppercase token (`exact: GET`) or a regex of alternative tokens (`GET|POST`)".into(),
                ),
            ),
        }
    }
    if out.error_count() != before {
        return None;
    }
    let ms = methods
        .into_iter()
        .map(|method| MatchConfig {
            method,
            ..base.clone()
        })
        .collect();
    Some((ms, kind))
}

fn header_name_ok(name: &str, at: &Location, out: &mut Out<'_>) -> bool {
    if name.starts_with("@request.auth.claims") {
        out.error(
            at.clone(),
            ImportErrorKind::Unsupported("matching JWT claims (`@request.auth.claims…`)".into()),
        );
        return false;
    }
    if name.starts_with(':') {
        out.error(
            at.clone(),
            ImportErrorKind::Unsupported(format!(
                "matching the pseudo-header `{name}` (use `uri`, `method`, `scheme` or `authority`)"
            )),
        );
        return false;
    }
    true
}

/// Resolves a destination to a native backend, checking its subset.
fn backend(
    d: &Destination,
    dp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<(String, Option<Lb>)> {
    let at = v.cx.at(dp);
    if d.host.is_empty() {
        out.error(
            v.cx.at(&format!("{dp}.host")),
            ImportErrorKind::Invalid("`host` is required".into()),
        );
        return None;
    }
    let host = fqdn(&d.host, &v.ns);
    let entry = v.rules.find(&host);
    let subset = d.subset.as_deref().filter(|s| !s.is_empty());
    let mut policy = entry.map(|e| e.policy.clone()).unwrap_or_default();
    if let Some(s) = subset {
        match entry {
            Some(e) => match e.subsets.get(s) {
                Some(sp) => {
                    if sp.lb.is_some() {
                        policy.lb = sp.lb.clone();
                    }
                    if sp.pool.is_some() {
                        policy.pool = sp.pool;
                    }
                }
                None => {
                    out.error(
                        v.cx.at(&format!("{dp}.subset")),
                        ImportErrorKind::Invalid(format!(
                            "subset `{s}` is not defined by {} (host `{host}`); Istio would answer 503",
                            e.resource
                        )),
                    );
                    return None;
                }
            },
            None => {
                if v.unchecked.borrow_mut().insert(host.clone()) {
                    out.warn(
                        v.cx.at(&format!("{dp}.subset")),
                        format!("no DestinationRule for `{host}` was imported: its subsets cannot be checked"),
                    );
                }
            }
        }
    }
    let (keys, default) = match subset {
        Some(s) => (
            vec![format!("{}/{s}", d.host), d.host.clone()],
            format!("{}/{s}", d.host),
        ),
        None => (vec![d.host.clone()], d.host.clone()),
    };
    let name = out.backend(&keys, &default, &at)?;
    v.used
        .borrow_mut()
        .entry(name.clone())
        .or_insert((host, subset.map(str::to_owned)));
    Some((name, policy.lb))
}

fn destinations(
    h: &HttpRoute,
    p: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
    filters: &mut FiltersConfig,
) -> Vec<Dest> {
    let single = h.route.len() == 1;
    let mut dests = Vec::new();
    let mut total: i64 = 0;
    for (k, rd) in h.route.iter().enumerate() {
        let dp = format!("{p}.route[{k}]");
        let weight = match rd.weight {
            Some(w) if !(0..=MAX_WEIGHT).contains(&w) => {
                out.error(
                    v.cx.at(&format!("{dp}.weight")),
                    ImportErrorKind::Invalid(format!("weight {w} is outside 0 ..= {MAX_WEIGHT}")),
                );
                continue;
            }
            // A single destination gets all traffic, whatever its weight.
            Some(w) if single => {
                if w == 0 {
                    100
                } else {
                    w
                }
            }
            None if single => 100,
            Some(w) => w,
            // Several destinations: an unset weight is 0 (Istio drops it).
            None => 0,
        };
        total += weight;
        if let Some(hs) = &rd.headers {
            let hp = format!("{dp}.headers");
            if single {
                // Istio folds a single destination's headers into the route's.
                header_ops(hs, &hp, v, out, filters);
            } else if hs.request.is_some() || hs.response.is_some() {
                out.error(
                    v.cx.at(&hp),
                    ImportErrorKind::Unsupported(
                        "header changes for one of several weighted destinations (native header changes apply to the whole rule)".into(),
                    ),
                );
            }
        }
        if let Some((name, lb)) = backend(&rd.destination, &format!("{dp}.destination"), v, out) {
            dests.push(Dest {
                name,
                weight: weight as u64,
                lb,
            });
        }
    }
    if !single && total == 0 && !h.route.is_empty() {
        out.error(
            v.cx.at(&format!("{p}.route")),
            ImportErrorKind::Invalid(
                "every destination has weight 0 (an unset weight is 0 when there are several)"
                    .into(),
            ),
        );
    }
    dests
}

fn redirect(
    r: &Redirect,
    rp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<RedirectConfig> {
    let at = |f: &str| v.cx.at(&format!("{rp}.{f}"));
    let status = r.redirect_code.unwrap_or(301);
    let status = match status {
        0 => 301,
        301 | 302 | 303 | 307 | 308 => status,
        other => {
            out.error(
                at("redirectCode"),
                ImportErrorKind::Unsupported(format!(
                    "redirect code {other} (301, 302, 303, 307 and 308 are supported)"
                )),
            );
            return None;
        }
    };
    let scheme = r.scheme.clone().filter(|s| !s.is_empty());
    if let Some(s) = &scheme {
        if s != "http" && s != "https" {
            out.error(
                at("scheme"),
                ImportErrorKind::Unsupported(format!("redirect scheme `{s}`")),
            );
            return None;
        }
    }
    if r.port.is_some() && r.derive_port.is_some() {
        out.error(
            v.cx.at(rp),
            ImportErrorKind::Invalid("`port` and `derivePort` are exclusive".into()),
        );
        return None;
    }
    let mut port = match r.port {
        Some(p) => match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                out.error(
                    at("port"),
                    ImportErrorKind::Invalid(format!("port {p} is outside 1 ..= 65535")),
                );
                return None;
            }
        },
        None => None,
    };
    match r.derive_port.as_deref() {
        None | Some("FROM_PROTOCOL_DEFAULT" | "FROM_REQUEST_PORT") => {}
        Some(other) => {
            out.error(
                at("derivePort"),
                ImportErrorKind::Invalid(format!("unknown `derivePort` `{other}`")),
            );
            return None;
        }
    }
    // Istio leaves out the default port of the scheme.
    if matches!(
        (port, scheme.as_deref()),
        (Some(80), Some("http")) | (Some(443), Some("https"))
    ) {
        port = None;
    }
    Some(RedirectConfig {
        scheme,
        hostname: r.authority.clone().filter(|a| !a.is_empty()),
        port,
        path: r
            .uri
            .clone()
            .filter(|u| !u.is_empty())
            .map(|u| PathModifierConfig {
                full: Some(u),
                prefix: None,
            }),
        status: Some(status as u16),
    })
}

fn direct_response(
    d: &DirectResponse,
    dp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<FixedResponseConfig> {
    let status = match u16::try_from(d.status) {
        Ok(s) if (200..=599).contains(&s) => s,
        _ => {
            out.error(
                v.cx.at(&format!("{dp}.status")),
                ImportErrorKind::Invalid(format!("status {} is outside 200 ..= 599", d.status)),
            );
            return None;
        }
    };
    let body = match &d.body {
        None => None,
        Some(Body {
            string: Some(_),
            bytes: Some(_),
        }) => {
            out.error(
                v.cx.at(&format!("{dp}.body")),
                ImportErrorKind::Invalid("`string` and `bytes` are exclusive".into()),
            );
            return None;
        }
        Some(Body {
            string: Some(s), ..
        }) => Some(s.clone()),
        Some(Body { bytes: Some(b), .. }) => {
            let at = v.cx.at(&format!("{dp}.body.bytes"));
            match base64_decode(b).map(String::from_utf8) {
                Some(Ok(s)) => Some(s),
                Some(Err(_)) => {
                    out.error(
                        at,
                        ImportErrorKind::Unsupported("a body that is not UTF-8 text".into()),
                    );
                    return None;
                }
                None => {
                    out.error(at, ImportErrorKind::Invalid("`bytes` is not base64".into()));
                    return None;
                }
            }
        }
        Some(_) => None,
    };
    Some(FixedResponseConfig {
        status,
        body,
        headers: BTreeMap::new(),
    })
}

fn header_ops(
    hs: &Headers,
    hp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
    filters: &mut FiltersConfig,
) {
    let convert = |ops: &HeaderOps, side: &str, request: bool, out: &mut Out<'_>| {
        let sp = format!("{hp}.{side}");
        let mut m = HeaderModifierConfig::default();
        let mut authority = None;
        for (field, map) in [("add", &ops.add), ("set", &ops.set)] {
            for (name, value) in map {
                let is_authority =
                    name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case(":authority");
                if is_authority && request {
                    // `set` is read last and wins, as in Istio.
                    authority = Some(value.clone());
                    continue;
                }
                if is_authority || name.starts_with(':') {
                    out.warn(
                        v.cx.at(&format!("{sp}.{field}.{name}")),
                        format!("`{name}` cannot be changed here; ignored (as Istio does)"),
                    );
                    continue;
                }
                let hv = HeaderValueConfig {
                    name: name.clone(),
                    value: value.clone(),
                };
                if field == "set" {
                    m.set.push(hv);
                } else {
                    m.add.push(hv);
                }
            }
        }
        for (k, name) in ops.remove.iter().enumerate() {
            if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                out.warn(
                    v.cx.at(&format!("{sp}.remove[{k}]")),
                    format!("`{name}` cannot be removed; ignored (as Istio does)"),
                );
                continue;
            }
            m.remove.push(name.clone());
        }
        (m, authority)
    };
    let merge = |slot: &mut Option<HeaderModifierConfig>, m: HeaderModifierConfig| {
        if m == HeaderModifierConfig::default() {
            return;
        }
        let s = slot.get_or_insert_with(Default::default);
        s.set.extend(m.set);
        s.add.extend(m.add);
        s.remove.extend(m.remove);
    };
    if let Some(req) = &hs.request {
        let (m, authority) = convert(req, "request", true, out);
        merge(&mut filters.request_headers, m);
        if let Some(a) = authority {
            let rw = filters.url_rewrite.get_or_insert_with(Default::default);
            if rw.hostname.is_none() {
                rw.hostname = Some(a);
            }
        }
    }
    if let Some(resp) = &hs.response {
        let (m, _) = convert(resp, "response", false, out);
        merge(&mut filters.response_headers, m);
    }
}

fn retries(
    r: &Retry,
    rp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
    timeouts: &mut TimeoutsConfig,
) -> Option<RetryConfig> {
    let at = |f: &str| v.cx.at(&format!("{rp}.{f}"));
    if r.retry_remote_localities.is_some() {
        out.warn(
            at("retryRemoteLocalities"),
            "`retryRemoteLocalities` is not applied in-process (there are no localities)",
        );
    }
    if r.retry_ignore_previous_hosts.is_some() {
        out.warn(
            at("retryIgnorePreviousHosts"),
            "`retryIgnorePreviousHosts` is not applied: a retry picks its backend as a first try does",
        );
    }
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        out.error(
            at("attempts"),
            ImportErrorKind::Invalid(format!("attempts {attempts} is negative")),
        );
        return None;
    }
    if attempts == 0 {
        return None;
    }
    if attempts > 10 {
        out.error(
            at("attempts"),
            ImportErrorKind::Unsupported(format!("{attempts} retry attempts (at most 10)")),
        );
        return None;
    }
    if let Some(t) = &r.per_try_timeout {
        if let Ok(d) = duration(t, at("perTryTimeout"), out) {
            timeouts.per_try = d;
        }
    }
    let mut backoff = None;
    if let Some(b) = &r.backoff {
        if let Ok(d) = duration(b, at("backoff"), out) {
            backoff = d;
        }
    }
    let mut on: Vec<RetryOn> = Vec::new();
    let mut codes: Vec<u16> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    let push = |on: &mut Vec<RetryOn>, c: RetryOn| {
        if !on.contains(&c) {
            on.push(c);
        }
    };
    let spec = r
        .retry_on
        .clone()
        .filter(|s| !s.trim().is_empty())
        // Istio's default conditions when `retryOn` is unset.
        .unwrap_or_else(|| "connect-failure,refused-stream,unavailable,cancelled,503".into());
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match part {
            "5xx" => push(&mut on, RetryOn::ServerError),
            "gateway-error" => push(&mut on, RetryOn::GatewayError),
            "reset" => push(&mut on, RetryOn::Reset),
            "connect-failure" => push(&mut on, RetryOn::ConnectFailure),
            "retriable-status-codes" => push(&mut on, RetryOn::RetriableStatusCodes),
            "refused-stream"
            | "retriable-4xx"
            | "envoy-ratelimited"
            | "retriable-headers"
            | "reset-before-request"
            | "http3-post-connect-failure"
            | "cancelled"
            | "deadline-exceeded"
            | "internal"
            | "resource-exhausted"
            | "unavailable" => {
                ignored.push(part.to_owned());
            }
            n => match n.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => {
                    push(&mut on, RetryOn::RetriableStatusCodes);
                    if !codes.contains(&c) {
                        codes.push(c);
                    }
                }
                _ => {
                    out.error(
                        at("retryOn"),
                        ImportErrorKind::Invalid(format!("unknown retry condition `{n}`")),
                    );
                    return None;
                }
            },
        }
    }
    if !ignored.is_empty() {
        out.warn(
            at("retryOn"),
            format!(
                "retry conditions without a native equivalent are not applied: {}",
                ignored.join(", ")
            ),
        );
    }
    if on.is_empty() {
        // Nothing applicable left: retrying on nothing is no retry.
        return None;
    }
    Some(RetryConfig {
        attempts: attempts as u32,
        on,
        status_codes: codes,
        backoff,
        ..RetryConfig::default()
    })
}

fn fault(f: &Fault, fp: &str, v: &VsCtx<'_, '_, '_>, out: &mut Out<'_>) -> Option<FaultConfig> {
    let at = |x: &str| v.cx.at(&format!("{fp}.{x}"));
    let mut cfg = FaultConfig::default();
    if let Some(d) = &f.delay {
        if d.exponential_delay.is_some() {
            out.error(
                at("delay.exponentialDelay"),
                ImportErrorKind::Unsupported("`exponentialDelay`".into()),
            );
            return None;
        }
        let Some(fixed) = &d.fixed_delay else {
            out.error(
                at("delay"),
                ImportErrorKind::Invalid("`delay` needs `fixedDelay`".into()),
            );
            return None;
        };
        let Ok(dur) = duration(fixed, at("delay.fixedDelay"), out) else {
            return None;
        };
        let percent = percent_value(d.percentage, d.percent);
        if let Some(fixed) = dur {
            cfg.delay = Some(FaultDelayConfig { fixed, percent });
        }
    }
    if let Some(a) = &f.abort {
        if a.grpc_status.is_some() || a.http2_error.is_some() {
            let field = if a.grpc_status.is_some() {
                "grpcStatus"
            } else {
                "http2Error"
            };
            out.error(
                at(&format!("abort.{field}")),
                ImportErrorKind::Unsupported(format!("`abort.{field}` (only HTTP status aborts)")),
            );
            return None;
        }
        let Some(status) = a.http_status else {
            out.error(
                at("abort"),
                ImportErrorKind::Invalid("`abort` needs `httpStatus`".into()),
            );
            return None;
        };
        let status = match u16::try_from(status) {
            Ok(s) if (200..=599).contains(&s) => s,
            _ => {
                out.error(
                    at("abort.httpStatus"),
                    ImportErrorKind::Invalid(format!("status {status} is outside 200 ..= 599")),
                );
                return None;
            }
        };
        cfg.abort = Some(FaultAbortConfig {
            status,
            percent: a.percentage.map(|p| p.value),
        });
    }
    (cfg != FaultConfig::default()).then_some(cfg)
}

fn mirror(
    h: &HttpRoute,
    p: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<MirrorConfig> {
    let mut all: Vec<(Destination, String, Option<f64>)> = Vec::new();
    if let Some(m) = &h.mirror {
        let pct = match (h.mirror_percentage, h.mirror_percent) {
            (Some(pc), _) => Some(pc.value),
            (None, Some(n)) => Some(f64::from(n)),
            (None, None) => None,
        };
        all.push((m.clone(), format!("{p}.mirror"), pct));
    }
    for (k, m) in h.mirrors.iter().enumerate() {
        all.push((
            m.destination.clone(),
            format!("{p}.mirrors[{k}].destination"),
            m.percentage.map(|pc| pc.value),
        ));
    }
    let mut iter = all.into_iter();
    let (dest, dp, pct) = iter.next()?;
    for (_, extra, _) in iter {
        out.warn(
            v.cx.at(&extra),
            "only one mirror is applied natively; this one is ignored",
        );
    }
    if pct == Some(0.0) {
        // An explicit 0 turns mirroring off.
        return None;
    }
    let (backend, _) = backend(&dest, &dp, v, out)?;
    Some(MirrorConfig {
        backend,
        percent: pct,
    })
}
