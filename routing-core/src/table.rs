//! The validated, indexed route table and the routing decision.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rand::{RngCore, SeedableRng};

use crate::backend::{Backend, BackendId};
use crate::config::{Config, RulePrecedence};
use crate::error::{ConfigError, RouteError};
use crate::index::Index;
use crate::l4::{FiveTuple, FlowDecision, TcpHashOn, TcpService, TcpTable, IPPROTO_TCP};
use crate::matching::RequestMatch;
use crate::path::PathNormalization;
use crate::policy::OutlierDetection;
use crate::precedence::MatchSummary;
use crate::request::RouteRequest;
use crate::rule::{Action, Route, Rule};

/// A rule match that holds for a request: which rule, which of its matches, and
/// its precedence. What matching returns ([`RouteTable::find`],
/// [`RouteTable::candidates`]); [`RouteTable::select`] turns it into a [`Decision`].
///
/// ```
/// use routing_core::{RouteTable, RequestInfo};
/// let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {exact: /a}}, {path: {exact: /b}}], backends: [{name: a}]}]}]").unwrap();
/// let m = t.find(&RequestInfo::get("/b")).unwrap();
/// assert_eq!((m.rule, m.r#match), (0, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleMatch {
    /// Index of the rule in [`RouteTable::rules`].
    pub rule: usize,
    /// Index of the match in the rule.
    pub r#match: usize,
    /// Its precedence.
    pub summary: MatchSummary,
}

/// What the caller knows when a backend is selected ([`RouteTable::select`]).
///
/// * `prefer`: the backend the request is pinned to (a sticky cookie). It is taken
///   without drawing — the strategy's random draw or round-robin turn is not spent —
///   when the rule has it with a weight above zero (or zero, when the rule's cookie
///   has `keep_at_zero_weight`), it is available and not excluded.
/// * `exclude`: backends already tried (retries); they are never chosen, and the
///   choice among the others is weighted, ignoring the sticky key.
///
/// ```
/// use routing_core::{RouteTable, RequestInfo, Selection};
/// let t = RouteTable::from_yaml("backends: [{name: a}, {name: b}]\nroutes: [{name: r, rules: [{backends: [{name: a}, {name: b}]}]}]").unwrap();
/// let (a, b) = (t.backend_id("a").unwrap(), t.backend_id("b").unwrap());
/// let req = RequestInfo::get("/");
/// let m = t.find(&req).unwrap();
/// let d = t.select(m, &req, &mut rand::rng(), Selection::new().prefer(b)).unwrap();
/// assert!(d.preferred());
/// assert_eq!(d.backend_id(), Some(b));
/// let retry = t.select(m, &req, &mut rand::rng(), Selection::new().exclude(&[b])).unwrap();
/// assert_eq!(retry.backend_id(), Some(a));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection<'a> {
    prefer: Option<BackendId>,
    exclude: &'a [BackendId],
}

impl<'a> Selection<'a> {
    /// No preference, nothing excluded: the rule's strategy chooses.
    ///
    /// ```
    /// assert_eq!(routing_core::Selection::new(), routing_core::Selection::default());
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self {
            prefer: None,
            exclude: &[],
        }
    }

    /// Prefers `id` (see the type's docs for when it is taken).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// let s = routing_core::Selection::new().prefer(t.backend_id("a").unwrap());
    /// assert_eq!(s.preferred(), t.backend_id("a"));
    /// ```
    #[must_use]
    pub const fn prefer(mut self, id: BackendId) -> Self {
        self.prefer = Some(id);
        self
    }

    /// Never chooses any of `tried`.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]").unwrap();
    /// let tried = [t.backend_id("a").unwrap()];
    /// assert_eq!(routing_core::Selection::new().exclude(&tried).excluded(), &tried);
    /// ```
    #[must_use]
    pub const fn exclude(mut self, tried: &'a [BackendId]) -> Self {
        self.exclude = tried;
        self
    }

    /// The preferred backend, if any.
    ///
    /// ```
    /// assert_eq!(routing_core::Selection::new().preferred(), None);
    /// ```
    #[must_use]
    pub const fn preferred(&self) -> Option<BackendId> {
        self.prefer
    }

    /// The excluded backends.
    ///
    /// ```
    /// assert!(routing_core::Selection::new().excluded().is_empty());
    /// ```
    #[must_use]
    pub const fn excluded(&self) -> &'a [BackendId] {
        self.exclude
    }
}

/// The rule that matched a request and, for forwarding rules, the backend chosen.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'t> {
    table: &'t RouteTable,
    matched: RuleMatch,
    backend: Option<usize>,
    key: Option<u64>,
    preferred: bool,
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
        &self.table.rules[self.matched.rule]
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
        self.matched.rule
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
        self.matched.r#match
    }

    /// The rule match this decision was selected from (to select again, e.g. for a
    /// retry that excludes the backends already tried).
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// let req = RequestInfo::get("/");
    /// let d = t.decide(&req, &mut rand::rng()).unwrap();
    /// assert_eq!(Some(d.rule_match()), t.find(&req));
    /// ```
    #[must_use]
    pub fn rule_match(&self) -> RuleMatch {
        self.matched
    }

    /// Whether the backend is the [`Selection::prefer`]red one, taken without a draw
    /// (`false` when there was no preference or it could not be honoured).
    ///
    /// ```
    /// # use routing_core::*;
    /// # let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert!(!t.decide(&RequestInfo::get("/"), &mut rand::rng()).unwrap().preferred());
    /// ```
    #[must_use]
    pub fn preferred(&self) -> bool {
        self.preferred
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
        &self.table.rules[self.matched.rule].matches[self.matched.r#match]
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
        self.matched.summary
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
    pub(crate) path_normalization: PathNormalization,
    pub(crate) config: Config,
}

impl RouteTable {
    /// Validates `config` and builds the table (with its own health registry);
    /// the same as `RouteTable::try_from(config)`.
    ///
    /// ```
    /// let cfg = routing_core::Config::from_yaml("backends: [{name: a}]").unwrap();
    /// assert!(routing_core::RouteTable::new(cfg).is_ok());
    /// ```
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Self::try_from(config)
    }

    /// Parses YAML, validates and builds.
    ///
    /// ```
    /// assert!(routing_core::RouteTable::from_yaml("backends: [{name: a}]").is_ok());
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::new(Config::from_yaml(text)?)
    }

    /// How request paths are normalised before matching (the configuration's
    /// `path_normalization`, or the safe default). The HTTP layer and the CLI apply it
    /// to the request before [`find`](Self::find); matching itself takes the path as
    /// given.
    ///
    /// ```
    /// let t = routing_core::RouteTable::from_yaml("path_normalization: {merge_slashes: false}").unwrap();
    /// assert!(!t.path_normalization().merge_slashes);
    /// assert_eq!(t.path_normalization().normalize("/a/../b").unwrap(), "/b");
    /// ```
    #[must_use]
    pub fn path_normalization(&self) -> &PathNormalization {
        &self.path_normalization
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

    /// The winning rule match for `req`, without choosing a backend
    /// ([`select`](Self::select) does that).
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
    /// assert_eq!(t.find(&RequestInfo::get("/api")).unwrap().rule, 1, "exact beats prefix");
    /// assert_eq!(t.find(&RequestInfo::get("/api/x")).unwrap().rule, 0);
    /// assert!(t.find(&RequestInfo::get("/apix")).is_none());
    /// ```
    pub fn find<R: RouteRequest + ?Sized>(&self, req: &R) -> Option<RuleMatch> {
        self.index.find(&self.rules, req).map(|c| RuleMatch {
            rule: c.rule as usize,
            r#match: c.r#match as usize,
            summary: c.summary,
        })
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
    /// assert_eq!(t.find(&RequestInfo::get("/api/cart")), Some(all[0]));
    /// ```
    #[must_use]
    pub fn candidates<R: RouteRequest + ?Sized>(&self, req: &R) -> Vec<RuleMatch> {
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
                    out.push((
                        first_match,
                        RuleMatch {
                            rule: ri,
                            r#match: mi,
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
                        },
                    ));
                }
            }
        }
        // Host tier first; inside it `first_match` routes in declaration order, then
        // the rest by precedence.
        out.sort_by(|(a_first, a), (b_first, b)| {
            b.summary
                .host
                .cmp(&a.summary.host)
                .then(b_first.cmp(a_first))
                .then_with(|| {
                    if *a_first {
                        a.summary.order.cmp(&b.summary.order)
                    } else {
                        b.summary.cmp(&a.summary)
                    }
                })
        });
        out.into_iter().map(|(_, m)| m).collect()
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
        let m = self.find(req).ok_or(RouteError::NoRoute)?;
        self.select(m, req, rng, Selection::new())
    }

    /// Selects the backend for a rule match (forwarding rules; other actions need
    /// none), knowing what the caller knows: the backend a sticky cookie pins the
    /// request to and the backends a retry already tried ([`Selection`]). A sticky key
    /// is read from `req` when the rule hashes. `m` must come from this table.
    ///
    /// ```
    /// use routing_core::{RouteError, RouteTable, RequestInfo, Selection};
    /// let t = RouteTable::from_yaml(r#"
    /// backends: [{name: a}, {name: b}]
    /// routes:
    ///   - name: r
    ///     rules:
    ///       - {name: split, backends: [{name: a}, {name: b}]}
    /// "#).unwrap();
    /// let req = RequestInfo::get("/");
    /// let m = t.find(&req).unwrap();
    /// let tried = [t.backend_id("a").unwrap(), t.backend_id("b").unwrap()];
    /// let err = t.select(m, &req, &mut rand::rng(), Selection::new().exclude(&tried)).unwrap_err();
    /// assert_eq!(err, RouteError::NoBackend { rule: 0 });
    /// ```
    pub fn select<R: RouteRequest + ?Sized, G: RngCore + ?Sized>(
        &self,
        m: RuleMatch,
        req: &R,
        rng: &mut G,
        with: Selection<'_>,
    ) -> Result<Decision<'_>, RouteError> {
        let rule = &self.rules[m.rule];
        let key = rule.hash_on.as_ref().and_then(|h| h.key(req));
        let (backend, preferred) = match &rule.action {
            Action::Forward(f) => {
                let (pos, preferred) = match kept_at_zero_weight(rule, f, &with) {
                    Some(pos) => (pos, true),
                    None => f
                        .pick_with(rng, key, with.prefer, with.exclude)
                        .ok_or(RouteError::NoBackend { rule: m.rule })?,
                };
                (Some(pos), preferred)
            }
            _ => (None, false),
        };
        Ok(Decision {
            table: self,
            matched: m,
            backend,
            key,
            preferred,
        })
    }
}

/// The preferred backend's position when the rule's cookie keeps sessions at weight
/// 0 ([`CookiePolicy::keep_at_zero_weight`](crate::CookiePolicy), ALB semantics) and
/// the backend has weight 0, is available and not excluded; other cases are
/// [`Forward::pick_with`](crate::Forward::pick_with)'s.
fn kept_at_zero_weight(rule: &Rule, f: &crate::Forward, with: &Selection<'_>) -> Option<usize> {
    let Some(crate::SessionPersistence::Cookie(c)) = &rule.policy.session_persistence else {
        return None;
    };
    let id = with.prefer.filter(|_| c.keep_at_zero_weight)?;
    let pos = f.position(id)?;
    let b = &f.backends()[pos];
    (b.weight() == 0 && b.is_available() && !with.exclude.contains(&id)).then_some(pos)
}

/// L4: the TCP services and connection routing.
impl RouteTable {
    /// The L4 services.
    ///
    /// ```
    /// assert!(routing_core::RouteTable::from_yaml("{}").unwrap().tcp_services().is_empty());
    /// ```
    #[must_use]
    pub fn tcp_services(&self) -> &[TcpService] {
        &self.tcp.services
    }

    /// Routes a new connection: the service for its destination, then the target the
    /// service's Maglev table gives for the flow hash (health-aware).
    ///
    /// ```
    /// use routing_core::{RouteTable, FiveTuple, RouteError};
    /// let t = RouteTable::from_yaml(r#"
    /// backends: [{name: a, address: '10.0.0.1:8080'}, {name: b, address: '10.0.0.2:8080'}]
    /// tcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: a, weight: 3}, {name: b}]}]
    /// "#).unwrap();
    /// let flow = FiveTuple::tcp("203.0.113.9:40000".parse().unwrap(), "192.0.2.1:80".parse().unwrap());
    /// let d = t.route_flow(&flow).unwrap();
    /// assert_eq!(d.service.name(), "web");
    /// let other = FiveTuple { dst_port: 81, ..flow };
    /// assert_eq!(t.route_flow(&other).unwrap_err(), RouteError::NoRoute);
    /// ```
    pub fn route_flow(&self, flow: &FiveTuple) -> Result<FlowDecision<'_>, RouteError> {
        let i = *self
            .tcp
            .by_vip
            .get(&SocketAddr::new(flow.dst_ip, flow.dst_port))
            .ok_or(RouteError::NoRoute)?;
        let service = &self.tcp.services[i];
        if flow.protocol != IPPROTO_TCP {
            return Err(RouteError::NoRoute);
        }
        let key = match service.hash_on {
            TcpHashOn::FiveTuple => flow.hash(),
            TcpHashOn::SourceIp => flow.source_hash(),
        };
        // Only the exact fallback after many redraws draws randomness: seed it from the
        // key so the answer stays a pure function of the flow.
        let mut rng = rand::rngs::SmallRng::seed_from_u64(key);
        let pos = service
            .forward
            .pick(&mut rng, Some(key))
            .ok_or(RouteError::NoTarget { service: i })?;
        let backend_id = service.forward.backends()[pos].id();
        Ok(FlowDecision {
            service,
            backend: self.backend(backend_id),
            backend_id,
        })
    }
}
