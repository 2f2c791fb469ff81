//! Traffic routing as a library: the pure logic.
//!
//! `routing-core` decides, for an HTTP request or a TCP connection, which rule applies
//! and which backend gets it — the features people reach for Istio `VirtualService`,
//! Gateway API `HTTPRoute` or weighted ALB target groups for: canary and blue/green
//! splits, header/cookie A/B routing, sticky sessions. It does no I/O and spawns
//! nothing; `routing-tower` applies its decisions to HTTP services and `routing-ebpf`
//! to packets.
//!
//! # Overview
//!
//! * [`Config`] — the serde model (YAML, JSON, TOML), unknown fields rejected.
//! * [`RouteTable`] — a validated, indexed configuration. Validation reports every
//!   problem with its field path (`routes[2].rules[0].backends[1].weight`).
//! * [`Router`] — the hot-swap handle: lock-free reads, validated updates, generations.
//! * Matching on host (exact, `*.` wildcards), path (exact, segment prefix, regex),
//!   method, scheme, authority, headers and query parameters; precedence as the
//!   [`MatchSummary`] type (Gateway API order).
//! * Selection: exact weighted random ([`AliasTable`]), [`SmoothRoundRobin`], and
//!   sticky keys through a minimally disruptive weighted [`MaglevTable`]; unavailable
//!   backends ([`HealthRegistry`]) are skipped with a panic threshold.
//! * L4: [`RouteTable::route_flow`] routes a [`FiveTuple`] to a `tcp_services` target.
//!
//! # Example
//!
//! ```
//! use routing_core::{Router, RequestInfo};
//!
//! let router = Router::from_yaml(r#"
//! backends:
//!   - name: checkout-v1
//!   - name: checkout-v2
//! routes:
//!   - name: checkout
//!     hostnames: [shop.example.com]
//!     rules:
//!       - name: testers
//!         matches: [{ headers: [{ name: x-canary, exact: "true" }] }]
//!         backends: [{ name: checkout-v2 }]
//!       - name: canary
//!         backends:
//!           - { name: checkout-v1, weight: 90 }
//!           - { name: checkout-v2, weight: 10 }
//! "#)?;
//!
//! let table = router.load();
//! let mut rng = rand::rng();
//! let req = RequestInfo::get("https://shop.example.com/cart").header("x-canary", "true");
//! let decision = table.decide(&req, &mut rng)?;
//! assert_eq!(decision.rule().name(), Some("testers"));
//! assert_eq!(decision.backend().unwrap().name(), "checkout-v2");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The configuration format is described in [`config_reference`].

#[doc = include_str!("../docs/config.md")]
pub mod config_reference {}

/// The README's example, compiled as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

mod backend;
mod build;
mod config;
mod cors;
pub mod defaults;
mod duration;
mod endpoint;
mod error;
mod fingerprint;
mod hash;
mod health;
#[cfg(feature = "import")]
pub mod import;
mod index;
mod l4;
mod matching;
mod path;
mod policy;
mod precedence;
mod request;
mod router;
mod rule;
mod select;
mod table;

pub use backend::{Backend, BackendId, ConnectionPool, MAX_WEIGHT};
pub use config::{
    BackendConfig, BackendFiltersConfig, BackendProtocol, Config, ConnectionPoolConfig,
    CookieConfig, CorsConfig, FaultAbortConfig, FaultConfig, FaultDelayConfig, FiltersConfig,
    FixedResponseConfig, HashOnConfig, HeaderMatchConfig, HeaderModifierConfig, HeaderValueConfig,
    LoadBalancerConfig, MatchConfig, MirrorConfig, OutlierDetectionConfig, PathMatchConfig,
    PathModifierConfig, QueryMatchConfig, RedirectConfig, RetryConfig, RouteConfig, RuleConfig,
    RulePrecedence, SessionPersistenceConfig, SimpleLoadBalancer, StringMatchConfig,
    TcpHealthCheckConfig, TcpServiceConfig, TimeoutsConfig, UrlRewriteConfig,
    WeightedBackendConfig,
};
pub use cors::Cors;
pub use duration::{ConfigDuration, DurationParseError};
pub use endpoint::{
    Endpoint, EndpointConfig, EndpointPool, EndpointState, ENDPOINT_MAGLEV_SIZE, MAX_ENDPOINTS,
};
pub use error::{
    ConfigError, Format, RouteError, ValidationError, ValidationErrorKind, ValidationErrors,
};
pub use fingerprint::{MaglevFingerprint, MaglevScope};
pub use hash::{mix64, reduce, stable_hash};
pub use health::{BackendHealth, HealthRegistry};
pub use l4::{
    FiveTuple, FlowDecision, TcpForwarding, TcpHashOn, TcpHealthCheck, TcpService, IPPROTO_TCP,
};
pub use matching::{HeaderMatch, PathMatch, QueryMatch, RequestMatch, StringMatch, ValueMatch};
pub use path::{EscapedSlashes, PathError, PathNormalization};
pub use policy::{
    BackendFilters, CookiePolicy, FaultPolicy, FixedResponse, HeaderModifier, Mirror,
    OutlierDetection, PathModifier, Policy, Redirect, RetryOn, RetryPolicy, SameSite,
    SessionPersistence, Timeouts, UrlRewrite,
};
pub use precedence::{DeclarationOrder, HostSpecificity, MatchSummary, PathSpecificity};
pub use request::{cookie, ClientAddr, RequestInfo, RouteRequest};
pub use router::{ModifyError, Router};
pub use rule::{Action, HashOn, Route, Rule};
pub use select::{
    is_prime, AliasTable, Forward, MaglevError, MaglevTable, SmoothRoundRobin, Strategy,
    WeightedBackend, DEFAULT_MAGLEV_SIZE, MAX_MAGLEV_SIZE,
};
pub use table::{Decision, RouteTable, RuleMatch, Selection};

impl Config {
    /// Validates and builds the [`RouteTable`] (shorthand for [`RouteTable::new`]).
    ///
    /// ```
    /// let cfg = routing_core::Config::from_yaml("backends: [{name: a}, {name: a}]").unwrap();
    /// let err = cfg.validate().unwrap_err();
    /// assert_eq!(err.validation().unwrap().errors()[0].path, "backends[1].name");
    /// ```
    pub fn validate(self) -> Result<RouteTable, ConfigError> {
        RouteTable::new(self)
    }
}
