//! Validation and construction: `Config` → `RouteTable`, collecting every error with
//! its field path. Nothing here panics on any input.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use regex::bytes::{Regex, RegexBuilder};

use crate::backend::{Backend, BackendId, ConnectionPool, MAX_WEIGHT};
use crate::config::*;
use crate::error::{ConfigError, Errors, ValidationErrorKind as K};
use crate::health::HealthRegistry;
use crate::index::Index;
use crate::l4::{TcpService, TcpTable};
use crate::matching::{HeaderMatch, PathMatch, QueryMatch, RequestMatch, StringMatch, ValueMatch};
use crate::policy::*;
use crate::precedence::{DeclarationOrder, HostSpecificity, MatchSummary};
use crate::rule::{Action, HashOn, Route, Rule};
use crate::select::{
    is_prime, Forward, MaglevTable, Strategy, WeightedBackend, DEFAULT_MAGLEV_SIZE, MAX_MAGLEV_SIZE,
};
use crate::table::RouteTable;
use crate::ConfigDuration;

/// Largest compiled size of one regular expression.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Most Maglev slots one configuration may build in all (distinct tables only: rules
/// with the same weighted backends share one). Bounds validation time and memory at
/// about half a second (release) and 32 MiB of tables whatever the input.
const MAX_TOTAL_MAGLEV_SLOTS: u64 = 1 << 23;
/// Most regular expressions one configuration may compile, and their total length in
/// bytes: each may compile to up to [`REGEX_SIZE_LIMIT`], so the budget bounds the
/// memory and the validation time of the whole configuration, not only of one pattern.
const MAX_TOTAL_REGEXES: usize = 1 << 16;
const MAX_TOTAL_REGEX_BYTES: usize = 2 << 20;
/// Default panic threshold, percent (Envoy's default).
const DEFAULT_PANIC_THRESHOLD: f64 = 50.0;

/// What a Maglev table is a function of: its (backend, weight) entries and the seed.
type MaglevKey = (Vec<(Arc<str>, u32)>, u64);

struct Builder<'h> {
    errs: Errors,
    health: &'h HealthRegistry,
    backend_ids: HashMap<Arc<str>, BackendId>,
    backends: Vec<Backend>,
    maglev_size: u32,
    panic_threshold: f64,
    maglev_cache: HashMap<MaglevKey, Arc<MaglevTable>>,
    /// Header names numbered per table (see `HeaderMemo`).
    header_ids: HashMap<HeaderName, u16>,
    /// Slots of the distinct Maglev tables built so far.
    maglev_slots: u64,
    /// Regexes compiled so far, their total pattern length, and whether the budget
    /// was exceeded (reported once).
    regexes: (usize, usize, bool),
    /// The validated `outlier_detection`.
    outlier: Option<OutlierDetection>,
}

mod l4;
mod matches;
mod policy;

impl TryFrom<Config> for RouteTable {
    type Error = ConfigError;

    /// Validates `config` and builds the table, with a health registry of its own and
    /// generation 0 ([`Router`](crate::Router) builds with its shared registry). Every
    /// problem is reported with its field path.
    ///
    /// ```
    /// use routing_core::{Config, RouteTable};
    /// let cfg = Config::from_yaml("backends: [{name: a}, {name: a}]").unwrap();
    /// let err = RouteTable::try_from(cfg).unwrap_err();
    /// assert_eq!(err.validation().unwrap().errors()[0].path, "backends[1].name");
    /// ```
    fn try_from(config: Config) -> Result<Self, Self::Error> {
        build(config, &HealthRegistry::default(), 0)
    }
}

/// Validates `config` and builds a table whose backends share `health`.
pub(crate) fn build(
    config: Config,
    health: &HealthRegistry,
    generation: u64,
) -> Result<RouteTable, ConfigError> {
    let mut b = Builder {
        errs: Errors::default(),
        health,
        backend_ids: HashMap::new(),
        backends: Vec::new(),
        maglev_size: DEFAULT_MAGLEV_SIZE,
        panic_threshold: DEFAULT_PANIC_THRESHOLD / 100.0,
        maglev_cache: HashMap::new(),
        header_ids: HashMap::new(),
        maglev_slots: 0,
        regexes: (0, 0, false),
        outlier: None,
    };
    // Global settings are needed first (the Maglev size), but come last in the model:
    // hold their errors back so the report follows document order.
    b.globals(&config);
    let global_errors = std::mem::take(&mut b.errs);
    b.declare_backends(&config.backends);

    let mut routes = Vec::new();
    let mut rules = Vec::new();
    let mut route_names: HashMap<&str, String> = HashMap::new();
    for (i, rc) in config.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        b.unique(&mut route_names, &rc.name, format!("{p}.name"));
        let hostnames = b.hostnames(&rc.hostnames, &p);
        if rc.rules.is_empty() {
            b.errs.push(format!("{p}.rules"), K::Empty);
        }
        let start = rules.len();
        let mut rule_names: HashMap<&str, String> = HashMap::new();
        for (j, rule) in rc.rules.iter().enumerate() {
            let rp = format!("{p}.rules[{j}]");
            if let Some(n) = &rule.name {
                b.unique(&mut rule_names, n, format!("{rp}.name"));
            }
            if let Some(r) = b.rule(rule, &rp, i, j) {
                rules.push(r);
            }
        }
        routes.push(Route {
            name: rc.name.as_str().into(),
            hostnames,
            rules: start..rules.len(),
            precedence: rc.precedence.unwrap_or_default(),
        });
    }
    let tcp = b.tcp_services(&config.tcp_services);
    b.errs.append(global_errors);
    b.errs.finish()?;

    let mut index = Index::default();
    for (ri, rule) in rules.iter().enumerate() {
        let route = &routes[rule.route];
        for (mi, m) in rule.matches.iter().enumerate() {
            let (method, headers, query) = m.counts();
            let summary = MatchSummary {
                host: HostSpecificity::Any, // set per hostname by the index
                path: m.path.specificity(),
                method,
                headers,
                query,
                order: DeclarationOrder {
                    route: rule.route as u32,
                    rule: rule.index_in_route as u32,
                    r#match: mi as u32,
                },
            };
            let ordered = route.precedence == RulePrecedence::FirstMatch;
            if route.hostnames.is_empty() {
                index.insert(None, rule, ri as u32, mi as u32, summary, ordered);
            }
            for h in route.hostnames.iter() {
                index.insert(Some(h), rule, ri as u32, mi as u32, summary, ordered);
            }
        }
    }
    index.finish(&rules);
    Ok(RouteTable {
        generation,
        backends: b.backends.into(),
        backend_ids: b.backend_ids,
        routes: routes.into(),
        rules: rules.into(),
        index,
        tcp,
        outlier_detection: b.outlier,
        path_normalization: config.path_normalization.unwrap_or_default(),
        config,
    })
}

fn exactly_one(set: &[bool]) -> bool {
    set.iter().filter(|&&x| x).count() == 1
}

impl Builder<'_> {
    fn globals(&mut self, config: &Config) {
        if let Some(size) = config.maglev_table_size {
            if !(3..=u64::from(MAX_MAGLEV_SIZE)).contains(&size) {
                self.errs.push(
                    "maglev_table_size",
                    K::OutOfRange {
                        value: size.to_string(),
                        allowed: "a prime from 3 to 4194301",
                    },
                );
            } else if !is_prime(size) {
                self.errs
                    .push("maglev_table_size", K::MaglevSizeNotPrime { size });
            } else {
                self.maglev_size = size as u32;
            }
        }
        if let Some(t) = config.panic_threshold {
            if let Some(f) = self.percent(t, "panic_threshold") {
                self.panic_threshold = f;
            }
        }
        if let Some(od) = &config.outlier_detection {
            self.outlier = self.outlier_detection(od, "outlier_detection");
        }
    }

    fn outlier_detection(
        &mut self,
        od: &OutlierDetectionConfig,
        p: &str,
    ) -> Option<OutlierDetection> {
        let d = OutlierDetection::default();
        let mut ok = true;
        let mut positive = |b: &mut Self, v: Option<ConfigDuration>, field: &str, dflt| {
            let v = v.map_or(dflt, ConfigDuration::as_duration);
            if v.is_zero() {
                b.errs.push(
                    format!("{p}.{field}"),
                    K::OutOfRange {
                        value: "0s".into(),
                        allowed: "a duration above zero",
                    },
                );
                ok = false;
            }
            v
        };
        let interval = positive(self, od.interval, "interval", d.interval);
        let base = positive(
            self,
            od.base_ejection_time,
            "base_ejection_time",
            d.base_ejection_time,
        );
        let max = positive(
            self,
            od.max_ejection_time,
            "max_ejection_time",
            d.max_ejection_time.max(base),
        );
        if max < base {
            self.errs.push(
                format!("{p}.max_ejection_time"),
                K::OutOfRange {
                    value: format!("{max:?}"),
                    allowed: "at least base_ejection_time",
                },
            );
            ok = false;
        }
        let pct = od
            .max_ejection_percent
            .unwrap_or(u32::from(d.max_ejection_percent));
        if pct > 100 {
            self.errs.push(
                format!("{p}.max_ejection_percent"),
                K::OutOfRange {
                    value: pct.to_string(),
                    allowed: "0 to 100 (percent)",
                },
            );
            ok = false;
        }
        let nonzero = |v: Option<u32>| v.filter(|&n| n > 0);
        ok.then(|| OutlierDetection {
            consecutive_5xx: match od.consecutive_5xx {
                None => d.consecutive_5xx,
                v => nonzero(v),
            },
            consecutive_gateway_errors: nonzero(od.consecutive_gateway_errors),
            interval,
            base_ejection_time: base,
            max_ejection_time: max,
            max_ejection_percent: pct.min(100) as u8,
        })
    }

    fn declare_backends(&mut self, backends: &[BackendConfig]) {
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (i, bc) in backends.iter().enumerate() {
            let p = format!("backends[{i}].name");
            if !self.unique(&mut seen, &bc.name, p) {
                continue;
            }
            let connection_pool = bc.connection_pool.and_then(|cp| {
                if cp.max_concurrent_requests == 0 {
                    self.errs.push(
                        format!("backends[{i}].connection_pool.max_concurrent_requests"),
                        K::OutOfRange {
                            value: "0".into(),
                            allowed: "at least 1",
                        },
                    );
                    return None;
                }
                Some(ConnectionPool {
                    max_concurrent_requests: cp.max_concurrent_requests,
                    max_pending_requests: cp.max_pending_requests.unwrap_or(0),
                })
            });
            let endpoints = self.endpoint_pool(i, bc);
            let name: Arc<str> = bc.name.as_str().into();
            self.backend_ids
                .insert(Arc::clone(&name), BackendId(self.backends.len() as u32));
            self.backends.push(Backend {
                health: self.health.handle(&name),
                name,
                address: bc.address,
                connection_pool,
                protocol: bc.protocol,
                endpoints,
            });
        }
    }

    /// Validates `backends[i].endpoints` and builds the pool (none when empty).
    fn endpoint_pool(&mut self, i: usize, bc: &BackendConfig) -> Option<Arc<crate::EndpointPool>> {
        if bc.endpoints.is_empty() {
            return None;
        }
        let before = self.errs.len();
        if bc.address.is_some() {
            self.errs.push(
                format!("backends[{i}].endpoints"),
                K::Conflict {
                    reason: "a backend has either an `address` or `endpoints`, not both",
                },
            );
        }
        if bc.endpoints.len() > crate::MAX_ENDPOINTS {
            self.errs.push(
                format!("backends[{i}].endpoints"),
                K::OutOfRange {
                    value: bc.endpoints.len().to_string(),
                    allowed: "at most 600 endpoints per backend",
                },
            );
        }
        let mut seen: HashMap<std::net::SocketAddr, usize> = HashMap::new();
        for (j, e) in bc.endpoints.iter().enumerate() {
            if let Some(first) = seen.insert(e.address, j) {
                self.errs.push(
                    format!("backends[{i}].endpoints[{j}].address"),
                    K::DuplicateName {
                        name: e.address.to_string(),
                        first: format!("backends[{i}].endpoints[{first}].address"),
                    },
                );
            }
            if let Some(w) = e.weight.filter(|w| *w > crate::MAX_WEIGHT) {
                self.errs.push(
                    format!("backends[{i}].endpoints[{j}].weight"),
                    K::WeightOutOfRange {
                        weight: u64::from(w),
                        max: crate::MAX_WEIGHT,
                    },
                );
            }
        }
        (self.errs.len() == before).then(|| Arc::new(crate::EndpointPool::new(&bc.endpoints)))
    }

    /// Records `name` at `path`; reports empty and repeated names. True when new.
    fn unique<'c>(
        &mut self,
        seen: &mut HashMap<&'c str, String>,
        name: &'c str,
        path: String,
    ) -> bool {
        if name.is_empty() {
            self.errs.push(path, K::Empty);
            return false;
        }
        if let Some(first) = seen.get(name) {
            self.errs.push(
                path,
                K::DuplicateName {
                    name: name.to_owned(),
                    first: first.clone(),
                },
            );
            return false;
        }
        seen.insert(name, path);
        true
    }

    fn percent(&mut self, value: f64, path: impl Into<String>) -> Option<f64> {
        if value.is_finite() && (0.0..=100.0).contains(&value) {
            Some(value / 100.0)
        } else {
            self.errs.push(
                path,
                K::OutOfRange {
                    value: value.to_string(),
                    allowed: "0 to 100 (percent)",
                },
            );
            None
        }
    }

    fn hostnames(&mut self, hosts: &[String], p: &str) -> Box<[Box<str>]> {
        let mut out: Vec<Box<str>> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (j, h) in hosts.iter().enumerate() {
            let path = format!("{p}.hostnames[{j}]");
            let lower = h.to_ascii_lowercase();
            if let Err(reason) = check_hostname(&lower, true) {
                self.errs.push(
                    path,
                    K::InvalidHostname {
                        host: h.clone(),
                        reason,
                    },
                );
                continue;
            }
            if let Some(first) = seen.get(&lower) {
                self.errs.push(
                    path,
                    K::DuplicateName {
                        name: h.clone(),
                        first: first.clone(),
                    },
                );
                continue;
            }
            seen.insert(lower.clone(), path);
            out.push(lower.into());
        }
        out.into()
    }

    fn backend_ref(&mut self, name: &str, path: String) -> Option<BackendId> {
        let id = self.backend_ids.get(name).copied();
        if id.is_none() {
            self.errs.push(
                path,
                K::UnknownBackend {
                    name: name.to_owned(),
                },
            );
        }
        id
    }

    /// The backends of an HTTP rule (`http: Some(all_prefix)`, see
    /// [`Self::backend_filters`]) or an L4 service (`None`: no filters).
    fn weighted_backends(
        &mut self,
        list: &[WeightedBackendConfig],
        p: &str,
        http: Option<bool>,
    ) -> Vec<WeightedBackend> {
        let mut out = Vec::new();
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (k, wb) in list.iter().enumerate() {
            let bp = format!("{p}.backends[{k}]");
            if !self.unique(&mut seen, &wb.name, format!("{bp}.name")) {
                continue;
            }
            let id = self.backend_ref(&wb.name, format!("{bp}.name"));
            if wb.weight > u64::from(MAX_WEIGHT) {
                self.errs.push(
                    format!("{bp}.weight"),
                    K::WeightOutOfRange {
                        weight: wb.weight,
                        max: MAX_WEIGHT,
                    },
                );
                continue;
            }
            let filters = match (&wb.filters, http) {
                (None, _) => None,
                (Some(f), Some(all_prefix)) => Some(Arc::new(self.backend_filters(
                    f,
                    &format!("{bp}.filters"),
                    all_prefix,
                ))),
                (Some(_), None) => {
                    self.errs.push(
                        format!("{bp}.filters"),
                        K::Conflict {
                            reason: "backend filters apply to HTTP rules, not to TCP services",
                        },
                    );
                    None
                }
            };
            if let Some(id) = id {
                out.push(WeightedBackend {
                    id,
                    weight: wb.weight as u32,
                    health: Arc::clone(&self.backends[id.index()].health),
                    filters,
                });
            }
        }
        out
    }

    fn maglev(&mut self, backends: &[WeightedBackend], path: &str) -> Option<Arc<MaglevTable>> {
        self.maglev_seeded(backends, path, 0)
    }

    /// A Maglev table with permutations seeded by `seed` (0 = [`Self::maglev`]).
    fn maglev_seeded(
        &mut self,
        backends: &[WeightedBackend],
        path: &str,
        seed: u64,
    ) -> Option<Arc<MaglevTable>> {
        let names: Vec<(Arc<str>, u32)> = backends
            .iter()
            .map(|b| (Arc::clone(&self.backends[b.id.index()].name), b.weight))
            .collect();
        let key = (names, seed);
        if let Some(t) = self.maglev_cache.get(&key) {
            return Some(Arc::clone(t));
        }
        let slots = self.maglev_slots + u64::from(self.maglev_size);
        if slots > MAX_TOTAL_MAGLEV_SLOTS {
            self.errs.push(
                path,
                K::OutOfRange {
                    value: format!("{slots} Maglev slots in all"),
                    allowed: "at most 8388608 slots across distinct consistent-hash tables (lower `maglev_table_size` or share backend sets)",
                },
            );
            return None;
        }
        self.maglev_slots = slots;
        let named: Vec<(&[u8], u32)> = key.0.iter().map(|(n, w)| (n.as_bytes(), *w)).collect();
        match MaglevTable::build_seeded(&named, self.maglev_size, seed) {
            Ok(t) => {
                let t = Arc::new(t);
                self.maglev_cache.insert(key, Arc::clone(&t));
                Some(t)
            }
            Err(_) => {
                self.errs.push(
                    path,
                    K::OutOfRange {
                        value: backends.len().to_string(),
                        allowed: "at most `maglev_table_size` backends per table",
                    },
                );
                None
            }
        }
    }

    fn rule(
        &mut self,
        rc: &RuleConfig,
        p: &str,
        route: usize,
        index_in_route: usize,
    ) -> Option<Rule> {
        let before = self.errs.len();
        let mut matches: Vec<RequestMatch> = Vec::new();
        for (k, m) in rc.matches.iter().enumerate() {
            if let Some(m) = self.request_match(m, &format!("{p}.matches[{k}]")) {
                matches.push(m);
            }
        }
        if rc.matches.is_empty() {
            matches.push(RequestMatch {
                path: PathMatch::Prefix("".into()),
                method: None,
                scheme: None,
                authority: None,
                headers: Box::new([]),
                query: Box::new([]),
            });
        }
        let all_prefix = rc.matches.iter().all(|m| {
            m.path
                .as_ref()
                .is_none_or(|pm| pm.exact.is_none() && pm.regex.is_none())
        });

        let forwards = !rc.backends.is_empty();
        if !exactly_one(&[forwards, rc.redirect.is_some(), rc.fixed_response.is_some()]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["backends", "redirect", "fixed_response"],
                },
            );
        }
        self.only_forwarding(forwards, rc.load_balancer.is_some(), p, "load_balancer");

        let mut hash_on = None;
        let mut action = None;
        if forwards {
            let backends = self.weighted_backends(&rc.backends, p, Some(all_prefix));
            let lb = rc.load_balancer.clone().unwrap_or_default();
            let lp = format!("{p}.load_balancer");
            if rc.load_balancer.is_some()
                && !exactly_one(&[lb.simple.is_some(), lb.consistent_hash.is_some()])
            {
                self.errs.push(
                    &*lp,
                    K::ExactlyOne {
                        fields: &["simple", "consistent_hash"],
                    },
                );
            }
            // Header session persistence is consistent hashing on that header.
            let sp_header = rc
                .session_persistence
                .as_ref()
                .filter(|sp| sp.cookie.is_none())
                .and_then(|sp| sp.header.as_deref());
            let strategy = match (&lb.consistent_hash, lb.simple) {
                // (An explicit `consistent_hash` keeps its own key.)
                (None, _) if sp_header.is_some() => {
                    // An invalid name is reported once, by the policy check below.
                    hash_on = sp_header
                        .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                        .map(HashOn::Header);
                    self.maglev(&backends, &format!("{p}.backends"))
                        .map(Strategy::ConsistentHash)
                }
                (Some(on), _) => {
                    let hp = format!("{lp}.consistent_hash");
                    hash_on = self.hash_on(on, &hp);
                    self.maglev(&backends, &format!("{p}.backends"))
                        .map(Strategy::ConsistentHash)
                }
                (None, Some(SimpleLoadBalancer::RoundRobin)) => {
                    let w: Vec<u32> = backends.iter().map(|b| b.weight).collect();
                    // All-zero weights: no schedule; picks report "no backend".
                    Some(
                        crate::select::SmoothRoundRobin::new(&w)
                            .map_or(Strategy::Random, Strategy::RoundRobin),
                    )
                }
                (None, _) => Some(Strategy::Random),
            };
            if let Some(strategy) = strategy {
                action = Some(Action::Forward(Forward::new(
                    backends,
                    strategy,
                    self.panic_threshold,
                )));
            }
        }
        if let Some(r) = &rc.redirect {
            action = self
                .redirect(r, &format!("{p}.redirect"), all_prefix)
                .map(Action::Redirect);
        }
        if let Some(f) = &rc.fixed_response {
            action = self
                .fixed_response(f, &format!("{p}.fixed_response"))
                .map(Action::FixedResponse);
        }
        let policy = self.policy(rc, p, all_prefix, forwards);
        if self.errs.len() != before {
            return None;
        }
        Some(Rule {
            route,
            index_in_route,
            name: rc.name.as_deref().map(Into::into),
            matches: matches.into(),
            action: action?,
            policy,
            hash_on,
        })
    }

    fn hash_on(&mut self, on: &HashOnConfig, p: &str) -> Option<HashOn> {
        if !exactly_one(&[
            on.header.is_some(),
            on.cookie.is_some(),
            on.query.is_some(),
            on.source_ip,
        ]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["header", "cookie", "query", "source_ip"],
                },
            );
            return None;
        }
        let non_empty = |this: &mut Self, v: &str, field: &str| {
            if v.is_empty() {
                this.errs.push(format!("{p}.{field}"), K::Empty);
                None
            } else {
                Some(Box::<str>::from(v))
            }
        };
        if let Some(h) = &on.header {
            return self
                .header_name(h, format!("{p}.header"))
                .map(HashOn::Header);
        }
        if let Some(c) = &on.cookie {
            return non_empty(self, c, "cookie").map(HashOn::Cookie);
        }
        if let Some(q) = &on.query {
            return non_empty(self, q, "query").map(HashOn::Query);
        }
        Some(HashOn::SourceIp)
    }
}

/// Checks a lowercase hostname: DNS labels of `[a-z0-9-]` (1–63 characters, no `-` at
/// either end), at most 253 characters, optionally behind one leading `*.` when
/// `wildcard` is allowed.
pub(crate) fn check_hostname(host: &str, wildcard: bool) -> Result<(), &'static str> {
    let name = match host.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        Some(_) => return Err("a wildcard is not allowed here"),
        None => host,
    };
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("has an empty label");
        }
        if label.len() > 63 {
            return Err("has a label longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(
                "labels may hold only a-z, 0-9 and `-` (a `*` only as the whole first label)",
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("labels must not start or end with `-`");
        }
    }
    Ok(())
}
