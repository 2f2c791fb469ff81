//! The configuration model as written by users: plain serde structs, no logic.
//!
//! Every struct rejects unknown fields. [`Config::validate`] (or [`RouteTable::new`](crate::RouteTable::new))
//! turns a `Config` into the validated, indexed [`RouteTable`](crate::RouteTable); nothing here is
//! trusted until then.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, Format};
use crate::ConfigDuration;

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_weight() -> u64 {
    1
}

/// A whole configuration: backends, HTTP routes and L4 (TCP) services.
///
/// ```
/// use routing_core::Config;
/// let cfg = Config::from_yaml(r#"
/// backends:
///   - name: checkout-v1
///   - name: checkout-v2
/// routes:
///   - name: checkout
///     hostnames: [shop.example.com]
///     rules:
///       - matches: [{ headers: [{ name: x-canary, exact: "true" }] }]
///         backends: [{ name: checkout-v2 }]
///       - backends:
///           - { name: checkout-v1, weight: 90 }
///           - { name: checkout-v2, weight: 10 }
/// "#).unwrap();
/// assert_eq!(cfg.routes[0].rules.len(), 2);
/// let table = cfg.validate().unwrap();
/// assert_eq!(table.backends().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Every backend that rules may refer to, by unique name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendConfig>,
    /// HTTP routes: hostnames and the rules that apply to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteConfig>,
    /// L4 services: a virtual IP and port whose TCP connections are spread over backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_services: Vec<TcpServiceConfig>,
    /// Size of every weighted Maglev table (a prime; default [`DEFAULT_MAGLEV_SIZE`](crate::DEFAULT_MAGLEV_SIZE)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev_table_size: Option<u64>,
    /// Panic threshold in percent (default 50, `0` disables): when fewer than this share
    /// of a rule's weighted backends are available, health is ignored and traffic goes to all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_threshold: Option<f64>,
    /// Passive health checking of every backend by the HTTP layer (Istio
    /// `outlierDetection`); absent means no ejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetectionConfig>,
    /// How request paths are normalised before matching (absent: the safe default,
    /// see [`PathNormalization`](crate::PathNormalization)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_normalization: Option<crate::PathNormalization>,
}

/// Outlier detection: eject a backend that keeps failing, for a time that grows with
/// each ejection (DestinationRule / Envoy semantics).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetectionConfig {
    /// Eject after this many 5xx responses (or local failures) in a row (default 5;
    /// `0` disables this check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// Eject after this many 502/503/504 responses (or local failures) in a row
    /// (default: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// How often the ejection multiplier decays (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<ConfigDuration>,
    /// Ejection time of a first ejection; the n-th lasts n times as long (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<ConfigDuration>,
    /// Longest ejection (default 300s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_time: Option<ConfigDuration>,
    /// At most this percent of the backends ejected at once (default 10; one backend
    /// may always be ejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
}

/// Per-backend limits of the HTTP layer (Istio `connectionPool.http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPoolConfig {
    /// Requests in flight to the backend at once (at least 1).
    pub max_concurrent_requests: u32,
    /// Requests waiting for a slot; more are refused with 503 (default 0: refuse at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
}

impl Config {
    /// Parses YAML. Errors carry the field path and the line.
    ///
    /// ```
    /// let err = routing_core::Config::from_yaml("routes: [{name: r, rules: [], colour: red}]").unwrap_err();
    /// assert!(err.to_string().contains("routes[0]"), "{err}");
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        from_yaml_str(text)
    }

    /// Parses JSON. Errors carry the field path, line and column.
    ///
    /// ```
    /// let cfg = routing_core::Config::from_json(r#"{"backends": [{"name": "a"}]}"#).unwrap();
    /// assert_eq!(cfg.backends[0].name, "a");
    /// ```
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let cfg: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| json_err(&e))?;
        de.end().map_err(|e| ConfigError::Parse {
            format: Format::Json,
            path: ".".into(),
            line: Some(e.line()),
            column: Some(e.column()),
            message: e.to_string(),
        })?;
        Ok(cfg)
    }

    /// Parses TOML. Errors carry the field path and the line.
    ///
    /// ```
    /// let cfg = routing_core::Config::from_toml("[[backends]]\nname = \"a\"\n").unwrap();
    /// assert_eq!(cfg.backends[0].name, "a");
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_err(text, ".".into(), &e))?;
        serde_path_to_error::deserialize(de)
            .map_err(|e| toml_err(text, e.path().to_string(), e.inner()))
    }

    /// Parses `text` in the format its file name's extension says (`.yaml`/`.yml`,
    /// `.json`, `.toml`); anything else is read as YAML.
    ///
    /// ```
    /// let cfg = routing_core::Config::from_path_and_text("r.json", "{}").unwrap();
    /// assert!(cfg.routes.is_empty());
    /// ```
    pub fn from_path_and_text(
        path: impl AsRef<std::path::Path>,
        text: &str,
    ) -> Result<Self, ConfigError> {
        match path.as_ref().extension().and_then(|e| e.to_str()) {
            Some("json") => Self::from_json(text),
            Some("toml") => Self::from_toml(text),
            _ => Self::from_yaml(text),
        }
    }

    /// Writes the configuration as YAML (what [`Config::from_yaml`] reads back).
    ///
    /// ```
    /// let cfg = routing_core::Config::from_json(r#"{"backends": [{"name": "a"}]}"#).unwrap();
    /// assert_eq!(routing_core::Config::from_yaml(&cfg.to_yaml()).unwrap(), cfg);
    /// ```
    #[must_use]
    pub fn to_yaml(&self) -> String {
        // Serialising plain structs of strings, numbers and lists cannot fail.
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

/// Deserializes YAML into `T` with this crate's guards and errors: the flow-nesting
/// limit, then field paths, lines and columns in [`ConfigError::Parse`].
pub(crate) fn from_yaml_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    check_flow_nesting(text)?;
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let loc = e.inner().location();
        ConfigError::Parse {
            format: Format::Yaml,
            path: e.path().to_string(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.inner().to_string(),
        }
    })
}

/// Deepest `[`/`{` nesting accepted in YAML. libyaml's scanner is quadratic in flow
/// nesting (20 000 levels take seconds) before any recursion limit applies; no
/// routing configuration nests more than a few levels.
const MAX_YAML_FLOW_DEPTH: usize = 256;

/// Rejects YAML whose brackets nest deeper than [`MAX_YAML_FLOW_DEPTH`]. Counts every
/// bracket, quoted or not: a string would need hundreds of unbalanced `[` to trip it.
pub(crate) fn check_flow_nesting(text: &str) -> Result<(), ConfigError> {
    let mut depth = 0usize;
    for (line_no, line) in text.lines().enumerate() {
        for b in line.bytes() {
            match b {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth > MAX_YAML_FLOW_DEPTH {
                return Err(ConfigError::Parse {
                    format: Format::Yaml,
                    path: ".".into(),
                    line: Some(line_no + 1),
                    column: None,
                    message: format!("brackets nest deeper than {MAX_YAML_FLOW_DEPTH} levels"),
                });
            }
        }
    }
    Ok(())
}

fn json_err(e: &serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    ConfigError::Parse {
        format: Format::Json,
        path: e.path().to_string(),
        line: Some(e.inner().line()),
        column: Some(e.inner().column()),
        message: e.inner().to_string(),
    }
}

fn toml_err(text: &str, path: String, e: &toml::de::Error) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    ConfigError::Parse {
        format: Format::Toml,
        path,
        line,
        column,
        message: e.message().to_owned(),
    }
}

/// A backend: something requests or connections can be sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Unique name; rules refer to the backend by it.
    pub name: String,
    /// Where it listens, when the routing layer itself connects (proxying, L4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
    /// Concurrency limit of the HTTP layer for this backend; absent means the
    /// layer's default ([`defaults::BACKEND_CONNECTION_POOL`](crate::defaults::BACKEND_CONNECTION_POOL)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolConfig>,
    /// The protocol an HTTP client speaks to it (absent: HTTP/1.1). Importers set
    /// it from a Kubernetes Service port's `appProtocol` (`kubernetes.io/h2c` → `h2c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<BackendProtocol>,
    /// Its pool of endpoints (pods of one version): a rule's weighted or sticky
    /// choice picks this backend, then one endpoint of the pool serves the request
    /// (least request, or the rule's hash key over a Maglev table of the pool).
    /// Exclusive with `address`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<crate::EndpointConfig>,
}

impl BackendConfig {
    /// A backend called `name` with nothing else set.
    ///
    /// ```
    /// let b = routing_core::BackendConfig::new("v1");
    /// assert_eq!((b.name.as_str(), b.address, b.protocol), ("v1", None, None));
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: None,
            connection_pool: None,
            protocol: None,
            endpoints: Vec::new(),
        }
    }
}

/// The protocol an HTTP client speaks to a backend.
///
/// ```
/// let t = routing_core::RouteTable::from_yaml("backends: [{name: grpc, address: '127.0.0.1:50051', protocol: h2c}]").unwrap();
/// assert_eq!(t.backends()[0].protocol(), Some(routing_core::BackendProtocol::H2c));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendProtocol {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 over plain TCP with prior knowledge (gRPC's usual in-cluster hop).
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`).
    H2,
    /// Over TLS, what ALPN picks; over plain TCP, HTTP/1.1.
    Auto,
}

/// An HTTP route: the hostnames it serves and its ordered rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name.
    pub name: String,
    /// Exact hostnames or `*.`-wildcards; empty means every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// The rules, in declaration order (the last tie-breaker of precedence).
    pub rules: Vec<RuleConfig>,
    /// How the route's rules compete: `specificity` (default, Gateway API order) or
    /// `first_match` (declaration order, as Istio `VirtualService` and ALB priorities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precedence: Option<RulePrecedence>,
}

/// How a request picks among the matching rules of one route.
///
/// ```
/// use routing_core::{RouteTable, RequestInfo};
/// let t = RouteTable::from_yaml(r#"
/// backends: [{name: a}, {name: b}]
/// routes:
///   - name: ordered
///     precedence: first_match
///     rules:
///       - {matches: [{path: {prefix: /}}], backends: [{name: a}]}
///       - {matches: [{path: {exact: /x}}], backends: [{name: b}]}
/// "#).unwrap();
/// // With `specificity` the exact path would win; here the first rule does.
/// assert_eq!(t.find(&RequestInfo::get("/x")).unwrap().rule, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RulePrecedence {
    /// The most specific match wins (Gateway API order, see [`MatchSummary`](crate::MatchSummary)).
    #[default]
    Specificity,
    /// The first rule (and match) in declaration order whose conditions hold wins.
    /// Within a host tier, `first_match` routes are tried before `specificity` ones.
    FirstMatch,
}

/// One rule: when it applies (`matches`), what it does (exactly one of `backends`,
/// `redirect`, `fixed_response`) and the policy applied on the way.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Optional name, unique within the route; shown in decisions and stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Alternatives (ORed); the conditions inside one match are ANDed. Empty means
    /// every request (a path prefix of `/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchConfig>,
    /// Forward to these backends, split by relative weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<WeightedBackendConfig>,
    /// How to pick among `backends` (default `random`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerConfig>,
    /// Answer with a redirect instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectConfig>,
    /// Answer with a fixed response instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_response: Option<FixedResponseConfig>,
    /// Header and URL changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<FiltersConfig>,
    /// Request and per-try timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsConfig>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultConfig>,
    /// Request mirroring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorConfig>,
    /// Further mirrors (Gateway API allows several `RequestMirror` filters): each
    /// gets its own copy, sampled on its own percentage, as `mirror` does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorConfig>,
    /// Session persistence (sticky sessions by cookie or header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_persistence: Option<SessionPersistenceConfig>,
}

/// A backend reference with a relative weight (Gateway API semantics: share =
/// weight / sum of weights; 0 = drain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedBackendConfig {
    /// Name of a backend declared under `backends`.
    pub name: String,
    /// Relative weight, `0 ..= 1_000_000` (default 1).
    #[serde(default = "default_weight")]
    pub weight: u64,
    /// Filters applied only to the requests this backend is picked for (Gateway
    /// API `backendRefs[].filters`), after the rule's own filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<BackendFiltersConfig>,
}

impl WeightedBackendConfig {
    /// A reference to backend `name` with `weight` and no filters.
    ///
    /// ```
    /// let b = routing_core::WeightedBackendConfig::new("v2", 10);
    /// assert_eq!((b.name.as_str(), b.weight, b.filters), ("v2", 10, None));
    /// ```
    #[must_use]
    pub fn new(name: impl Into<String>, weight: u64) -> Self {
        Self {
            name: name.into(),
            weight,
            filters: None,
        }
    }
}

/// Filters of one backend of a rule: applied only when that backend is picked
/// (for each try, to the backend of that try), after the rule's filters. A
/// `redirect` or `fixed_response` answers the requests that pick the backend
/// without forwarding them (at most one of the two, and neither with a
/// `url_rewrite`); an importer uses `fixed_response: {status: 500}` for a
/// reference it cannot resolve, so only that backend's share fails.
///
/// ```
/// let t = routing_core::RouteTable::from_yaml(r#"
/// backends: [{name: v1}, {name: v2}]
/// routes:
///   - name: api
///     rules:
///       - backends:
///           - {name: v1, filters: {request_headers: {set: [{name: x-backend, value: v1}]}}}
///           - {name: v2, filters: {fixed_response: {status: 500}}}
/// "#).unwrap();
/// let fwd = t.rules()[0].forward().unwrap();
/// let v2 = fwd.filters_for(t.backend_id("v2").unwrap()).unwrap();
/// assert_eq!(v2.fixed_response.as_ref().unwrap().status, 500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFiltersConfig {
    /// Changes to request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderModifierConfig>,
    /// Changes to response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderModifierConfig>,
    /// URL rewrite before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewriteConfig>,
    /// Answer with a redirect instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectConfig>,
    /// Answer with a fixed response instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_response: Option<FixedResponseConfig>,
}

/// One set of ANDed conditions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Path condition (default: prefix `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchConfig>,
    /// HTTP method, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Condition on the request authority (host without port), Istio's `authority`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatchConfig>,
    /// Header conditions (names are case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatchConfig>,
    /// Query parameter conditions (names are case-sensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<QueryMatchConfig>,
}

/// Path condition: exactly one of the fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMatchConfig {
    /// The whole path, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// A prefix made of whole segments: `/api` matches `/api` and `/api/x`, not `/apix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A regular expression (RE2 syntax) that must match the whole path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// A plain string prefix, not bound to segments: `/api` matches `/apix` too
    /// (Istio `uri.prefix`, ALB `/api*`). Ranked like a regular expression of its
    /// length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
}

/// String condition: exactly one of the fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatchConfig {
    /// Equal, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Regular expression that must match the whole value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Header condition: a name and exactly one of `exact`, `prefix`, `regex`,
/// `present: true`, `absent: true`. A request header with several values matches when
/// any of them does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchConfig {
    /// Header name (case-insensitive).
    pub name: String,
    /// Equal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Value starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Whole value matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The header is present, whatever its value.
    #[serde(default, skip_serializing_if = "is_false")]
    pub present: bool,
    /// The header is absent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub absent: bool,
    /// Negate the condition: it holds when the header does not match (a missing header
    /// counts as not matching), as Istio `withoutHeaders`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub invert: bool,
}

/// Query parameter condition: a name and exactly one of `exact`, `regex`, `present: true`.
/// Values are compared after percent-decoding; with a repeated parameter, the first
/// occurrence counts (Gateway API).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryMatchConfig {
    /// Parameter name (case-sensitive).
    pub name: String,
    /// Equal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Whole value matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// The parameter is present.
    #[serde(default, skip_serializing_if = "is_false")]
    pub present: bool,
}

/// How a rule picks among its backends: exactly one of `simple` and `consistent_hash`
/// (the shape of Istio's `loadBalancer`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// `random` (the default) or `round_robin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLoadBalancer>,
    /// Sticky: hash a key of the request into the rule's weighted Maglev table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<HashOnConfig>,
}

/// A non-sticky pick strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimpleLoadBalancer {
    /// Weighted random (alias table, O(1)).
    Random,
    /// Smooth weighted round robin: exact shares over every cycle.
    RoundRobin,
}

/// The request key consistent hashing uses: exactly one field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashOnConfig {
    /// The value of this header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The value of this cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// The value of this query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The client's IP address.
    #[serde(default, skip_serializing_if = "is_false")]
    pub source_ip: bool,
}

/// A redirect answer (Gateway API `RequestRedirect`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// New scheme (`http` or `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// New hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// New port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// New path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifierConfig>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// Path change: exactly one of `full` and `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathModifierConfig {
    /// Replace the whole path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<String>,
    /// Replace the matched prefix (only for rules whose matches are all prefixes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// A fixed answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedResponseConfig {
    /// Status code, 100 ..= 599.
    pub status: u16,
    /// Body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Response headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Header and URL changes applied on the way through.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersConfig {
    /// Changes to request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderModifierConfig>,
    /// Changes to response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderModifierConfig>,
    /// URL rewrite before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewriteConfig>,
    /// Cross-origin resource sharing: preflights answered by the layer, CORS
    /// headers added to the answers of allowed origins (Gateway API `CORS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
}

/// CORS (Gateway API `HTTPCORSFilter`). A preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) is answered `204` by the layer, never
/// forwarded: with the `Access-Control-Allow-*` headers when the origin is allowed,
/// without them otherwise. Other requests from an allowed origin get
/// `Access-Control-Allow-Origin` (the origin itself), `-Allow-Credentials` and
/// `-Expose-Headers` on their answer.
///
/// ```
/// let t = routing_core::RouteTable::from_yaml(r#"
/// backends: [{name: a}]
/// routes:
///   - name: api
///     rules:
///       - backends: [{name: a}]
///         filters:
///           cors: {allow_origins: ["https://*.example.com"], allow_methods: [GET], max_age: 600}
/// "#).unwrap();
/// let cors = t.rules()[0].policy().cors.as_ref().unwrap();
/// assert!(cors.allows_origin("https://shop.example.com"));
/// assert!(!cors.allows_origin("http://shop.example.com"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins: `scheme://host[:port]`, a `*` as the whole first host label
    /// matching any non-empty run of labels (`https://*.example.com`), or `*` alone
    /// for every origin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for; `*` allows any (the answer names the one
    /// asked for); empty: none beyond the CORS-safelisted `GET`, `HEAD`, `POST`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for; `*` allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may expose to the page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
}

/// Header changes: `set` replaces, `add` appends, `remove` deletes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderModifierConfig {
    /// Set these headers (replacing any value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValueConfig>,
    /// Add these headers (keeping existing values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValueConfig>,
    /// Remove these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValueConfig {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// URL rewrite (Gateway API `URLRewrite`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlRewriteConfig {
    /// New `Host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// New path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifierConfig>,
}

/// Timeouts (Gateway API `timeouts`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// The whole request, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ConfigDuration>,
    /// Each try against a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try: Option<ConfigDuration>,
}

/// Retry policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first try, 1 ..= 10.
    pub attempts: u32,
    /// Conditions that trigger a retry (default: `5xx`, `reset`, `connect-failure`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<RetryOn>,
    /// Statuses retried with `retriable-status-codes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status_codes: Vec<u16>,
    /// Base of the jittered exponential backoff between tries (default 25ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<ConfigDuration>,
    /// Largest request body kept for replay, in bytes (default 64 KiB). The body
    /// streams to the first try as it arrives and is recorded up to this size; a
    /// longer body keeps streaming but is no longer retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Retry budget: retries may add at most this percent of the request rate
    /// (default 20), plus `budget_min_per_second` (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_percent: Option<f64>,
    /// Retries per second always allowed by the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_min_per_second: Option<u32>,
    /// Also retry requests whose method is not idempotent (`POST`, `PATCH`,
    /// `CONNECT`, …) once they may have reached the backend. Default `false`: such a
    /// request is retried only after a connect failure, when nothing was sent, so a
    /// POST is never delivered twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_idempotent: Option<bool>,
}

/// A condition that triggers a retry (Envoy/Istio `retryOn` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// Any 5xx response.
    #[serde(rename = "5xx")]
    ServerError,
    /// 502, 503 or 504.
    GatewayError,
    /// The connection was reset or closed before a response.
    Reset,
    /// The connection could not be made.
    ConnectFailure,
    /// A status listed in `status_codes`.
    RetriableStatusCodes,
    /// A gRPC answer with `grpc-status` `CANCELLED` (1) in its head (trailers-only).
    Cancelled,
    /// A gRPC answer with `grpc-status` `DEADLINE_EXCEEDED` (4) in its head.
    DeadlineExceeded,
    /// A gRPC answer with `grpc-status` `INTERNAL` (13) in its head.
    Internal,
    /// A gRPC answer with `grpc-status` `RESOURCE_EXHAUSTED` (8) in its head.
    ResourceExhausted,
    /// A gRPC answer with `grpc-status` `UNAVAILABLE` (14) in its head.
    Unavailable,
}

/// Fault injection: delay and/or abort a share of requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Delay a share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelayConfig>,
    /// Abort a share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbortConfig>,
    /// Only requests matching all of these headers are faulted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatchConfig>,
}

/// Delay fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDelayConfig {
    /// How long.
    pub fixed: ConfigDuration,
    /// Share of requests, 0 ..= 100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// Abort fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAbortConfig {
    /// Status to answer with, 200 ..= 599.
    pub status: u16,
    /// Share of requests, 0 ..= 100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// Mirror a share of requests to another backend (fire and forget).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Name of a declared backend.
    pub backend: String,
    /// Share of requests, 0 ..= 100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// Session persistence: exactly one of `cookie` and `header`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPersistenceConfig {
    /// Pin sessions with a cookie the routing layer issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<CookieConfig>,
    /// Pin sessions by a header the client sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// The stickiness cookie's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    /// Cookie name.
    pub name: String,
    /// Lifetime (`Max-Age`); absent means a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<ConfigDuration>,
    /// `Path` attribute (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Domain` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `Secure` attribute.
    #[serde(default, skip_serializing_if = "is_false")]
    pub secure: bool,
    /// `HttpOnly` attribute.
    #[serde(default, skip_serializing_if = "is_false")]
    pub http_only: bool,
    /// `SameSite` attribute: `Strict`, `Lax` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// A valid cookie keeps its session on a backend whose weight is 0 (AWS ALB
    /// target-group stickiness: cookies beat weights). Default `false`: a weight of 0
    /// drains at once, the session is re-pinned on its next request.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_at_zero_weight: bool,
}

/// An L4 service: TCP connections to `vip` are spread over `backends` through a
/// weighted Maglev table keyed by the connection's 5-tuple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpServiceConfig {
    /// Unique name.
    pub name: String,
    /// The virtual address (IPv4 or IPv6) and port clients connect to.
    pub vip: SocketAddr,
    /// The targets (each must have an `address`).
    pub backends: Vec<WeightedBackendConfig>,
    /// What identifies a client: `five_tuple` (default) or `source_ip` (client affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<TcpHashOn>,
    /// How packets reach a target: `dnat` (default; replies return through the
    /// balancer) or `dsr_ipip` (direct server return: the packet is sent unchanged
    /// inside an IP-in-IP header, the target answers the client directly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<TcpForwarding>,
    /// Source address of the outer header with `forwarding: dsr_ipip` (required
    /// there, same family as the VIP; refused with `dnat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsr_source: Option<std::net::IpAddr>,
    /// Seed of the Maglev permutations (default 0). Give every load balancer of a
    /// fleet the same seed — tables are then bit-identical — and two fleets
    /// different seeds to spread the same targets differently on purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev_seed: Option<u64>,
    /// Active health checks the L4 loader runs against every target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<TcpHealthCheckConfig>,
}

/// Active health checks of an L4 service's targets, run by the loader: a target
/// is marked down after `fall` failed checks in a row and up again after `rise`
/// passed ones; the datapath stops giving it new flows and re-picks its
/// established ones while it is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpHealthCheckConfig {
    /// `http`: `GET path` must answer `expect_status`; without it, a check is a
    /// TCP connect to the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_path: Option<String>,
    /// The status an HTTP check expects (default 200; only with `http_path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// Time between checks of one target (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<ConfigDuration>,
    /// Time a check may take (default 500ms; at most `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ConfigDuration>,
    /// Passed checks in a row that bring a down target back (default 2, 1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Failed checks in a row that mark a target down (default 2, 1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
}

/// How an L4 service forwards packets to its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpForwarding {
    /// Destination rewritten to the target; replies come back through the balancer
    /// and get the VIP as their source again.
    #[default]
    Dnat,
    /// Direct server return, Katran-style: the packet, unchanged (VIP destination
    /// and port), inside an outer IPv4-in-IPv4 or IPv6-in-IPv6 header to the
    /// target, which decapsulates it (ipip / ip6tnl device, VIP on loopback) and
    /// answers the client directly. The target's port is not used.
    DsrIpip,
}

/// What an L4 service hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpHashOn {
    /// Source and destination address and port, and protocol.
    FiveTuple,
    /// Source address only: every connection of a client goes to one target.
    SourceIp,
}
