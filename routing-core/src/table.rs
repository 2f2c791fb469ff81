//! The validated, indexed route table and the routing decision.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderName;
use rand::RngCore;

use crate::config::{Config, RulePrecedence};
use crate::error::{ConfigError, RouteError};
use crate::hash::stable_hash;
use crate::health::{BackendHealth, HealthRegistry};
use crate::index::Index;
use crate::l4::TcpTable;
use crate::matching::RequestMatch;
use crate::policy::{ConnectionPool, FixedResponse, OutlierDetection, Policy, Redirect};
use crate::precedence::{HostSpecificity, MatchSummary};
use crate::request::{cookie, RouteRequest};
use crate::select::Forward;

/// Largest relative weight (Gateway API).
pub const MAX_WEIGHT: u32 = 1_000_000;

/// A backend's index in [`RouteTable::backends`] (valid for that table only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId(pub(crate) u32);

impl BackendId {
    /// The index.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}, {name: b}]").unwrap();
    /// assert_eq!(t.backend_id("b").unwrap().index(), 1);
    /// ```
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A declared backend.
#[derive(Debug)]
pub struct Backend {
    pub(crate) name: Arc<str>,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) health: Arc<BackendHealth>,
    pub(crate) connection_pool: Option<ConnectionPool>,
}

impl Backend {
    /// Its unique name.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// assert_eq!(t.backends()[0].name(), "a");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a shared string (cheap to clone into stats or spans).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// let n: std::sync::Arc<str> = t.backends()[0].name_arc();
    /// assert_eq!(&*n, "a");
    /// ```
    #[must_use]
    pub fn name_arc(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// Its address, if configured.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a, address: '127.0.0.1:8080'}]").unwrap();
    /// assert_eq!(t.backends()[0].address().unwrap().port(), 8080);
    /// ```
    #[must_use]
    pub fn address(&self) -> Option<SocketAddr> {
        self.address
    }

    /// Its concurrency limit in the HTTP layer, if configured.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml(
    /// #     "backends: [{name: a, connection_pool: {max_concurrent_requests: 8}}]").unwrap();
    /// let cp = t.backends()[0].connection_pool().unwrap();
    /// assert_eq!((cp.max_concurrent_requests, cp.max_pending_requests), (8, 0));
    /// ```
    #[must_use]
    pub fn connection_pool(&self) -> Option<ConnectionPool> {
        self.connection_pool
    }

    /// Whether it takes new traffic (see [`HealthRegistry`]).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// assert!(t.backends()[0].is_available());
    /// ```
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.health.is_available()
    }
}

/// An HTTP route: name, hostnames and the range of its rules.
#[derive(Debug)]
pub struct Route {
    pub(crate) name: Box<str>,
    pub(crate) hostnames: Box<[Box<str>]>,
    pub(crate) rules: std::ops::Range<usize>,
    pub(crate) precedence: RulePrecedence,
}

impl Route {
    /// How the route's rules compete ([`RulePrecedence`]).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, precedence: first_match, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.routes()[0].precedence(), routing_core::RulePrecedence::FirstMatch);
    /// ```
    #[must_use]
    pub fn precedence(&self) -> RulePrecedence {
        self.precedence
    }

    /// Its name.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.routes()[0].name(), "shop");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its hostnames, lowercased (empty: every host).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, hostnames: [Shop.Test], rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(&*t.routes()[0].hostnames()[0], "shop.test");
    /// ```
    #[must_use]
    pub fn hostnames(&self) -> &[Box<str>] {
        &self.hostnames
    }

    /// Indices of its rules in [`RouteTable::rules`].
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.routes()[0].rule_indices(), 0..1);
    /// ```
    #[must_use]
    pub fn rule_indices(&self) -> std::ops::Range<usize> {
        self.rules.clone()
    }

    /// How specifically this route's hostnames match `authority` (`None`: not at all).
    ///
    /// ```
    /// use routing_core::HostSpecificity;
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, hostnames: ['*.test', a.test], rules: [{backends: [{name: a}]}]}]").unwrap();
    /// let r = &t.routes()[0];
    /// assert_eq!(r.host_specificity(Some("a.test:80")), Some(HostSpecificity::Exact));
    /// assert_eq!(r.host_specificity(Some("b.test")), Some(HostSpecificity::Wildcard { suffix_len: 5 }));
    /// assert_eq!(r.host_specificity(Some("test")), None);
    /// ```
    #[must_use]
    pub fn host_specificity(&self, authority: Option<&str>) -> Option<HostSpecificity> {
        if self.hostnames.is_empty() {
            return Some(HostSpecificity::Any);
        }
        let host = crate::request::normalize_host(authority?);
        self.hostnames
            .iter()
            .filter_map(|h| match h.strip_prefix('*') {
                None => (**h == *host).then_some(HostSpecificity::Exact),
                Some(suffix) => (host.len() > suffix.len() && host.ends_with(suffix)).then_some(
                    HostSpecificity::Wildcard {
                        suffix_len: suffix.len().min(u16::MAX as usize) as u16,
                    },
                ),
            })
            .max()
    }
}

/// What a rule does with a matching request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Forward to weighted backends.
    Forward(Forward),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with a fixed response.
    FixedResponse(FixedResponse),
}

/// The key consistent hashing reads from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashOn {
    /// A header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(Box<str>),
    /// A query parameter's value.
    Query(Box<str>),
    /// The client IP.
    SourceIp,
}

impl HashOn {
    /// The key's hash for `req`, or `None` when the request lacks it.
    ///
    /// ```
    /// use routing_core::{HashOn, RequestInfo};
    /// let on = HashOn::Cookie("session".into());
    /// let req = RequestInfo::get("/").header("cookie", "a=1; session=abc");
    /// assert_eq!(on.key(&req), Some(routing_core::stable_hash(b"abc", 0)));
    /// assert_eq!(on.key(&RequestInfo::get("/")), None);
    /// ```
    pub fn key<R: RouteRequest + ?Sized>(&self, req: &R) -> Option<u64> {
        match self {
            HashOn::Header(name) => req
                .headers()
                .get(name)
                .map(|v| stable_hash(v.as_bytes(), 0)),
            HashOn::Cookie(name) => {
                cookie(req.headers(), name).map(|v| stable_hash(v.as_bytes(), 0))
            }
            HashOn::Query(name) => req.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == &**name)
                    .map(|(_, v)| stable_hash(v.as_bytes(), 0))
            }),
            HashOn::SourceIp => req.source_ip().map(|ip| match ip {
                std::net::IpAddr::V4(a) => stable_hash(&a.octets(), 0),
                std::net::IpAddr::V6(a) => stable_hash(&a.octets(), 0),
            }),
        }
    }
}

/// A rule: its matches, its action and its policy.
#[derive(Debug)]
pub struct Rule {
    pub(crate) route: usize,
    pub(crate) index_in_route: usize,
    pub(crate) name: Option<Box<str>>,
    pub(crate) matches: Box<[RequestMatch]>,
    pub(crate) action: Action,
    pub(crate) policy: Policy,
    pub(crate) hash_on: Option<HashOn>,
}

impl Rule {
    /// Index of its route in [`RouteTable::routes`].
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].route_index(), 0);
    /// ```
    #[must_use]
    pub fn route_index(&self) -> usize {
        self.route
    }

    /// Its position within its route.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].index_in_route(), 0);
    /// ```
    #[must_use]
    pub fn index_in_route(&self) -> usize {
        self.index_in_route
    }

    /// Its name, if given.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{name: canary, backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].name(), Some("canary"));
    /// ```
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Its matches (ORed). A rule written without matches has one match-everything entry.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].matches().len(), 1);
    /// ```
    #[must_use]
    pub fn matches(&self) -> &[RequestMatch] {
        &self.matches
    }

    /// Its action.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("routes: [{name: r, rules: [{fixed_response: {status: 418}}]}]").unwrap();
    /// assert!(matches!(t.rules()[0].action(), routing_core::Action::FixedResponse(f) if f.status == 418));
    /// ```
    #[must_use]
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// The forwarding state, when the action is [`Action::Forward`].
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert!(t.rules()[0].forward().is_some());
    /// ```
    #[must_use]
    pub fn forward(&self) -> Option<&Forward> {
        match &self.action {
            Action::Forward(f) => Some(f),
            _ => None,
        }
    }

    /// The policy for the HTTP layer.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], timeouts: {request: 3s}}]}]").unwrap();
    /// assert_eq!(t.rules()[0].policy().timeouts.request, Some(std::time::Duration::from_secs(3)));
    /// ```
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The key consistent hashing uses, if the rule is sticky by key.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], load_balancer: {consistent_hash: {header: x-user}}}]}]").unwrap();
    /// assert!(matches!(t.rules()[0].hash_on(), Some(routing_core::HashOn::Header(_))));
    /// ```
    #[must_use]
    pub fn hash_on(&self) -> Option<&HashOn> {
        self.hash_on.as_ref()
    }
}

/// One rule match that holds for a request ([`RouteTable::candidates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Candidate {
    /// Index of the rule in [`RouteTable::rules`].
    pub rule: usize,
    /// Index of the match in the rule.
    pub r#match: usize,
    /// Whether the rule's route uses [`RulePrecedence::FirstMatch`].
    pub first_match: bool,
    /// Its precedence.
    pub summary: MatchSummary,
}

/// The rule that matched a request and, for forwarding rules, the backend chosen.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'t> {
    table: &'t RouteTable,
    rule_index: usize,
    match_index: usize,
    summary: MatchSummary,
    backend: Option<usize>,
    key: Option<u64>,
}

impl<'t> Decision<'t> {
    /// The rule.
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{name: all, backends: [{name: a}]}]}]").unwrap();
    /// let d = t.decide(&RequestInfo::get("http://x/"), &mut rand::rng()).unwrap();
    /// assert_eq!(d.rule().name(), Some("all"));
    /// ```
    #[must_use]
    pub fn rule(&self) -> &'t Rule {
        &self.table.rules[self.rule_index]
    }

    /// Index of the rule in [`RouteTable::rules`].
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.decide(&RequestInfo::get("/"), &mut rand::rng()).unwrap().rule_index(), 0);
    /// ```
    #[must_use]
    pub fn rule_index(&self) -> usize {
        self.rule_index
    }

    /// Index, within the rule, of the match that won.
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {exact: /a}}, {path: {exact: /b}}], backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.decide(&RequestInfo::get("/b"), &mut rand::rng()).unwrap().match_index(), 1);
    /// ```
    #[must_use]
    pub fn match_index(&self) -> usize {
        self.match_index
    }

    /// The match that won (its path condition decides how a `prefix` rewrite or
    /// redirect replaces the path).
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {exact: /a}}, {path: {starts_with: /b}}], backends: [{name: a}]}]}]").unwrap();
    /// let d = t.decide(&RequestInfo::get("/bx"), &mut rand::rng()).unwrap();
    /// assert!(matches!(d.request_match().path(), PathMatch::StartsWith(p) if &**p == "/b"));
    /// ```
    #[must_use]
    pub fn request_match(&self) -> &'t RequestMatch {
        // A decision's rule and match indices come from the table's own index.
        &self.table.rules[self.rule_index].matches[self.match_index]
    }

    /// The route.
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.decide(&RequestInfo::get("/"), &mut rand::rng()).unwrap().route().name(), "shop");
    /// ```
    #[must_use]
    pub fn route(&self) -> &'t Route {
        &self.table.routes[self.rule().route]
    }

    /// Why this rule won: its precedence summary.
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {exact: /a}}], backends: [{name: a}]}]}]").unwrap();
    /// let d = t.decide(&RequestInfo::get("/a"), &mut rand::rng()).unwrap();
    /// assert_eq!(d.summary().path, PathSpecificity::Exact);
    /// ```
    #[must_use]
    pub fn summary(&self) -> MatchSummary {
        self.summary
    }

    /// The backend chosen (forwarding rules only).
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.decide(&RequestInfo::get("/"), &mut rand::rng()).unwrap().backend().unwrap().name(), "a");
    /// ```
    #[must_use]
    pub fn backend(&self) -> Option<&'t Backend> {
        self.backend_id().map(|id| self.table.backend(id))
    }

    /// The chosen backend's id (forwarding rules only).
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.decide(&RequestInfo::get("/"), &mut rand::rng()).unwrap().backend_id(), t.backend_id("a"));
    /// ```
    #[must_use]
    pub fn backend_id(&self) -> Option<BackendId> {
        let fwd = self.rule().forward()?;
        Some(fwd.backends()[self.backend?].id)
    }

    /// The sticky key's hash, when the rule hashes and the request carried the key.
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], load_balancer: {consistent_hash: {header: x-user}}}]}]").unwrap();
    /// let d = t.decide(&RequestInfo::get("/").header("x-user", "u1"), &mut rand::rng()).unwrap();
    /// assert_eq!(d.sticky_key(), Some(stable_hash(b"u1", 0)));
    /// ```
    #[must_use]
    pub fn sticky_key(&self) -> Option<u64> {
        self.key
    }
}

/// A validated configuration, indexed for lookups. Immutable; swap whole tables with
/// [`Router`](crate::Router).
#[derive(Debug)]
pub struct RouteTable {
    pub(crate) generation: u64,
    pub(crate) backends: Box<[Backend]>,
    pub(crate) backend_ids: HashMap<Arc<str>, BackendId>,
    pub(crate) routes: Box<[Route]>,
    pub(crate) rules: Box<[Rule]>,
    pub(crate) index: Index,
    pub(crate) tcp: TcpTable,
    pub(crate) outlier_detection: Option<OutlierDetection>,
    pub(crate) config: Config,
}

impl RouteTable {
    /// Validates `config` and builds the table (with its own health registry).
    ///
    /// ```
    /// let cfg = routing_core::Config::from_yaml("backends: [{name: a}]").unwrap();
    /// assert!(routing_core::RouteTable::new(cfg).is_ok());
    /// ```
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Self::build(config, &HealthRegistry::default(), 0)
    }

    /// Parses YAML, validates and builds.
    ///
    /// ```
    /// assert!(routing_core::RouteTable::from_yaml("backends: [{name: a}]").is_ok());
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::new(Config::from_yaml(text)?)
    }

    pub(crate) fn build(
        config: Config,
        health: &HealthRegistry,
        generation: u64,
    ) -> Result<Self, ConfigError> {
        crate::build::build(config, health, generation)
    }

    /// The generation number ([`Router::update`](crate::Router::update) bumps it; 0 for
    /// a table built directly).
    ///
    /// ```
    /// assert_eq!(routing_core::RouteTable::from_yaml("{}").unwrap().generation(), 0);
    /// ```
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Outlier detection settings, if the configuration asks for it.
    ///
    /// ```
    /// let t = routing_core::RouteTable::from_yaml("outlier_detection: {consecutive_5xx: 3}").unwrap();
    /// let od = t.outlier_detection().unwrap();
    /// assert_eq!(od.consecutive_5xx, Some(3));
    /// assert_eq!(od.base_ejection_time, std::time::Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn outlier_detection(&self) -> Option<&OutlierDetection> {
        self.outlier_detection.as_ref()
    }

    /// The configuration this table was built from.
    ///
    /// ```
    /// let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// assert_eq!(t.config().backends[0].name, "a");
    /// ```
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every declared backend.
    ///
    /// ```
    /// assert_eq!(routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap().backends().len(), 1);
    /// ```
    #[must_use]
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The backend with this id.
    ///
    /// ```
    /// let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// assert_eq!(t.backend(t.backend_id("a").unwrap()).name(), "a");
    /// ```
    #[must_use]
    pub fn backend(&self, id: BackendId) -> &Backend {
        &self.backends[id.index()]
    }

    /// The id of the backend called `name`.
    ///
    /// ```
    /// let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// assert!(t.backend_id("nope").is_none());
    /// ```
    #[must_use]
    pub fn backend_id(&self, name: &str) -> Option<BackendId> {
        self.backend_ids.get(name).copied()
    }

    /// The HTTP routes, in declaration order.
    ///
    /// ```
    /// assert!(routing_core::RouteTable::from_yaml("{}").unwrap().routes().is_empty());
    /// ```
    #[must_use]
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Every rule of every route, flattened in declaration order.
    ///
    /// ```
    /// assert!(routing_core::RouteTable::from_yaml("{}").unwrap().rules().is_empty());
    /// ```
    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The winning rule for `req` — `(rule index, match index, summary)` — without
    /// choosing a backend.
    ///
    /// ```
    /// use routing_core::{RouteTable, RequestInfo};
    /// let t = RouteTable::from_yaml(r#"
    /// backends: [{name: a}, {name: b}]
    /// routes:
    ///   - name: r
    ///     rules:
    ///       - {matches: [{path: {prefix: /api}}], backends: [{name: a}]}
    ///       - {matches: [{path: {exact: /api}}], backends: [{name: b}]}
    /// "#).unwrap();
    /// assert_eq!(t.find(&RequestInfo::get("/api")).unwrap().0, 1, "exact beats prefix");
    /// assert_eq!(t.find(&RequestInfo::get("/api/x")).unwrap().0, 0);
    /// assert!(t.find(&RequestInfo::get("/apix")).is_none());
    /// ```
    pub fn find<R: RouteRequest + ?Sized>(&self, req: &R) -> Option<(usize, usize, MatchSummary)> {
        self.index
            .find(&self.rules, req)
            .map(|c| (c.rule as usize, c.r#match as usize, c.summary))
    }

    /// Every rule match that holds for `req`, best first: the order the lookup
    /// considers them in, so the first is what [`RouteTable::find`] returns. For
    /// explaining a decision (which rules lost, and to what); it scans the whole table.
    ///
    /// ```
    /// use routing_core::{RouteTable, RequestInfo};
    /// let t = RouteTable::from_yaml(r#"
    /// backends: [{name: a}, {name: b}]
    /// routes:
    ///   - name: r
    ///     rules:
    ///       - {matches: [{path: {prefix: /api}}], backends: [{name: a}]}
    ///       - {matches: [{path: {exact: /api/cart}}], backends: [{name: b}]}
    /// "#).unwrap();
    /// let all = t.candidates(&RequestInfo::get("/api/cart"));
    /// assert_eq!(all.iter().map(|c| c.rule).collect::<Vec<_>>(), [1, 0]);
    /// assert_eq!(t.find(&RequestInfo::get("/api/cart")).unwrap().0, all[0].rule);
    /// ```
    #[must_use]
    pub fn candidates<R: RouteRequest + ?Sized>(&self, req: &R) -> Vec<Candidate> {
        let mut out = Vec::new();
        for route in self.routes.iter() {
            let Some(host) = route.host_specificity(req.host()) else {
                continue;
            };
            let first_match = route.precedence == RulePrecedence::FirstMatch;
            for ri in route.rules.clone() {
                let rule = &self.rules[ri];
                for (mi, m) in rule.matches.iter().enumerate() {
                    if !m.matches(req) {
                        continue;
                    }
                    let (method, headers, query) = m.counts();
                    out.push(Candidate {
                        rule: ri,
                        r#match: mi,
                        first_match,
                        summary: MatchSummary {
                            host,
                            path: m.path.specificity(),
                            method,
                            headers,
                            query,
                            order: crate::precedence::DeclarationOrder {
                                route: rule.route as u32,
                                rule: rule.index_in_route as u32,
                                r#match: mi as u32,
                            },
                        },
                    });
                }
            }
        }
        // Host tier first; inside it `first_match` routes in declaration order, then
        // the rest by precedence.
        out.sort_by(|a, b| {
            b.summary
                .host
                .cmp(&a.summary.host)
                .then(b.first_match.cmp(&a.first_match))
                .then_with(|| {
                    if a.first_match {
                        a.summary.order.cmp(&b.summary.order)
                    } else {
                        b.summary.cmp(&a.summary)
                    }
                })
        });
        out
    }

    /// Routes `req`: finds the winning rule and, if it forwards, picks a backend
    /// (weighted, round robin or sticky by key; health-aware).
    ///
    /// ```
    /// use routing_core::{RouteTable, RequestInfo};
    /// let t = RouteTable::from_yaml(r#"
    /// backends: [{name: v1}, {name: v2}]
    /// routes:
    ///   - name: shop
    ///     rules:
    ///       - matches: [{headers: [{name: x-canary, exact: "true"}]}]
    ///         backends: [{name: v2}]
    ///       - backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
    /// "#).unwrap();
    /// let req = RequestInfo::get("http://shop/").header("x-canary", "true");
    /// let d = t.decide(&req, &mut rand::rng()).unwrap();
    /// assert_eq!(d.backend().unwrap().name(), "v2");
    /// ```
    pub fn decide<R: RouteRequest + ?Sized, G: RngCore + ?Sized>(
        &self,
        req: &R,
        rng: &mut G,
    ) -> Result<Decision<'_>, RouteError> {
        let c = self
            .index
            .find(&self.rules, req)
            .ok_or(RouteError::NoRoute)?;
        let rule = &self.rules[c.rule as usize];
        let key = rule.hash_on.as_ref().and_then(|h| h.key(req));
        let backend = match &rule.action {
            Action::Forward(f) => Some(f.pick(rng, key)?),
            _ => None,
        };
        Ok(Decision {
            table: self,
            rule_index: c.rule as usize,
            match_index: c.r#match as usize,
            summary: c.summary,
            backend,
            key,
        })
    }
}
