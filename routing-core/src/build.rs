//! Validation and construction: `Config` → `RouteTable`, collecting every error with
//! its field path. Nothing here panics on any input.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use regex::bytes::{Regex, RegexBuilder};

use crate::config::*;
use crate::error::{ConfigError, Errors, ValidationErrorKind as K};
use crate::health::HealthRegistry;
use crate::index::Index;
use crate::l4::{TcpService, TcpTable};
use crate::matching::{HeaderMatch, PathMatch, QueryMatch, RequestMatch, StringMatch, ValueMatch};
use crate::policy::*;
use crate::precedence::{DeclarationOrder, HostSpecificity, MatchSummary};
use crate::select::{
    is_prime, Forward, MaglevTable, Strategy, WeightedBackend, DEFAULT_MAGLEV_SIZE, MAX_MAGLEV_SIZE,
};
use crate::table::{Action, Backend, BackendId, HashOn, Route, RouteTable, Rule, MAX_WEIGHT};
use crate::ConfigDuration;

/// Largest compiled size of one regular expression.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Most Maglev slots one configuration may build in all (distinct tables only: rules
/// with the same weighted backends share one). Bounds validation time and memory at
/// about half a second (release) and 32 MiB of tables whatever the input.
const MAX_TOTAL_MAGLEV_SLOTS: u64 = 1 << 23;
/// Default panic threshold, percent (Envoy's default).
const DEFAULT_PANIC_THRESHOLD: f64 = 50.0;

struct Builder<'h> {
    errs: Errors,
    health: &'h HealthRegistry,
    backend_ids: HashMap<Arc<str>, BackendId>,
    backends: Vec<Backend>,
    maglev_size: u32,
    panic_threshold: f64,
    maglev_cache: HashMap<Vec<(Arc<str>, u32)>, Arc<MaglevTable>>,
    /// Header names numbered per table (see `HeaderMemo`).
    header_ids: HashMap<HeaderName, u16>,
    /// Slots of the distinct Maglev tables built so far.
    maglev_slots: u64,
    /// The validated `outlier_detection`.
    outlier: Option<OutlierDetection>,
}

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
    index.finish();
    Ok(RouteTable {
        generation,
        backends: b.backends.into(),
        backend_ids: b.backend_ids,
        routes: routes.into(),
        rules: rules.into(),
        index,
        tcp,
        outlier_detection: b.outlier,
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
            let name: Arc<str> = bc.name.as_str().into();
            self.backend_ids
                .insert(Arc::clone(&name), BackendId(self.backends.len() as u32));
            self.backends.push(Backend {
                health: self.health.handle(&name),
                name,
                address: bc.address,
                connection_pool,
            });
        }
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

    fn regex(&mut self, pattern: &str, path: String) -> Option<Regex> {
        // Compile the pattern alone first: wrapping an unbalanced pattern such as
        // `a)|(b` in `^(?:…)$` would silently change its meaning.
        let compile = |p: &str| RegexBuilder::new(p).size_limit(REGEX_SIZE_LIMIT).build();
        match compile(pattern).and_then(|_| compile(&crate::matching::anchored(pattern))) {
            Ok(r) => Some(r),
            Err(e) => {
                self.errs.push(
                    path,
                    K::InvalidRegex {
                        pattern: pattern.to_owned(),
                        message: e.to_string(),
                    },
                );
                None
            }
        }
    }

    fn request_path(&mut self, value: &str, path: String) -> bool {
        let reason = if !value.starts_with('/') {
            Some("must start with `/`")
        } else if value.bytes().any(|c| c == b'?' || c == b'#') {
            Some("must not contain `?` or `#`")
        } else if value
            .bytes()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            Some("must not contain whitespace or control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.errs.push(
                    path,
                    K::InvalidPath {
                        path: value.to_owned(),
                        reason,
                    },
                );
                false
            }
            None => true,
        }
    }

    fn path_match(&mut self, pm: &PathMatchConfig, p: &str) -> Option<PathMatch> {
        if !exactly_one(&[
            pm.exact.is_some(),
            pm.prefix.is_some(),
            pm.regex.is_some(),
            pm.starts_with.is_some(),
        ]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["exact", "prefix", "regex", "starts_with"],
                },
            );
            return None;
        }
        if let Some(sw) = &pm.starts_with {
            return self
                .request_path(sw, format!("{p}.starts_with"))
                .then(|| PathMatch::StartsWith(sw.as_str().into()));
        }
        if let Some(e) = &pm.exact {
            return self
                .request_path(e, format!("{p}.exact"))
                .then(|| PathMatch::Exact(e.as_str().into()));
        }
        if let Some(pre) = &pm.prefix {
            return self
                .request_path(pre, format!("{p}.prefix"))
                .then(|| PathMatch::Prefix(pre.trim_end_matches('/').into()));
        }
        let r = pm.regex.as_deref().unwrap_or_default();
        self.regex(r, format!("{p}.regex")).map(PathMatch::Regex)
    }

    fn string_match(
        &mut self,
        exact: &Option<String>,
        prefix: &Option<String>,
        regex: &Option<String>,
        p: &str,
    ) -> Option<StringMatch> {
        if !exactly_one(&[exact.is_some(), prefix.is_some(), regex.is_some()]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["exact", "prefix", "regex"],
                },
            );
            return None;
        }
        if let Some(e) = exact {
            return Some(StringMatch::Exact(e.as_str().into()));
        }
        if let Some(pre) = prefix {
            return Some(StringMatch::Prefix(pre.as_str().into()));
        }
        self.regex(regex.as_deref().unwrap_or_default(), format!("{p}.regex"))
            .map(StringMatch::Regex)
    }

    fn header_name(&mut self, name: &str, path: String) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.errs.push(
                    path,
                    K::InvalidHttp {
                        what: "header name",
                        value: name.to_owned(),
                    },
                );
                None
            }
        }
    }

    fn header_value(&mut self, value: &str, path: String) -> Option<HeaderValue> {
        match HeaderValue::from_str(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.errs.push(
                    path,
                    K::InvalidHttp {
                        what: "header value",
                        value: value.to_owned(),
                    },
                );
                None
            }
        }
    }

    fn header_matches(&mut self, hs: &[HeaderMatchConfig], p: &str) -> Vec<HeaderMatch> {
        let mut out = Vec::new();
        for (l, h) in hs.iter().enumerate() {
            let hp = format!("{p}.headers[{l}]");
            let name = self.header_name(&h.name, format!("{hp}.name"));
            let value = if !exactly_one(&[
                h.exact.is_some(),
                h.prefix.is_some(),
                h.regex.is_some(),
                h.present,
                h.absent,
            ]) {
                self.errs.push(
                    &*hp,
                    K::ExactlyOne {
                        fields: &["exact", "prefix", "regex", "present", "absent"],
                    },
                );
                None
            } else if h.present {
                Some(ValueMatch::Present)
            } else if h.absent {
                Some(ValueMatch::Absent)
            } else {
                self.string_match(&h.exact, &h.prefix, &h.regex, &hp)
                    .map(ValueMatch::Is)
            };
            if let (Some(name), Some(value)) = (name, value) {
                let next = self.header_ids.len().min(u16::MAX as usize) as u16;
                let id = *self.header_ids.entry(name.clone()).or_insert(next);
                out.push(HeaderMatch {
                    name,
                    id,
                    value,
                    invert: h.invert,
                });
            }
        }
        out
    }

    fn request_match(&mut self, m: &MatchConfig, p: &str) -> Option<RequestMatch> {
        let before = self.errs.len();
        let path = match &m.path {
            Some(pm) => self.path_match(pm, &format!("{p}.path")),
            None => Some(PathMatch::Prefix("".into())),
        };
        let method = m
            .method
            .as_ref()
            .and_then(|s| match Method::from_bytes(s.as_bytes()) {
                Ok(me) if !s.bytes().any(|c| c.is_ascii_lowercase()) => Some(me),
                _ => {
                    self.errs.push(
                        format!("{p}.method"),
                        K::InvalidHttp {
                            what: "method (uppercase token, e.g. `GET`)",
                            value: s.clone(),
                        },
                    );
                    None
                }
            });
        let scheme = m.scheme.as_ref().and_then(|s| {
            let lower = s.to_ascii_lowercase();
            if lower == "http" || lower == "https" {
                Some(lower.into_boxed_str())
            } else {
                self.errs.push(
                    format!("{p}.scheme"),
                    K::InvalidHttp {
                        what: "scheme (`http` or `https`)",
                        value: s.clone(),
                    },
                );
                None
            }
        });
        let authority = m.authority.as_ref().and_then(|a| {
            self.string_match(&a.exact, &a.prefix, &a.regex, &format!("{p}.authority"))
        });
        let headers = self.header_matches(&m.headers, p);
        let mut query = Vec::new();
        for (l, q) in m.query.iter().enumerate() {
            let qp = format!("{p}.query[{l}]");
            if q.name.is_empty() {
                self.errs.push(format!("{qp}.name"), K::Empty);
            }
            if !exactly_one(&[q.exact.is_some(), q.regex.is_some(), q.present]) {
                self.errs.push(
                    &*qp,
                    K::ExactlyOne {
                        fields: &["exact", "regex", "present"],
                    },
                );
                continue;
            }
            let value = if q.present {
                Some(ValueMatch::Present)
            } else {
                self.string_match(&q.exact, &None, &q.regex, &qp)
                    .map(ValueMatch::Is)
            };
            if let Some(value) = value {
                query.push(QueryMatch {
                    name: q.name.as_str().into(),
                    value,
                });
            }
        }
        if self.errs.len() != before {
            return None;
        }
        Some(RequestMatch {
            path: path?,
            method,
            scheme,
            authority,
            headers: headers.into(),
            query: query.into(),
        })
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

    fn weighted_backends(
        &mut self,
        list: &[WeightedBackendConfig],
        p: &str,
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
            if let Some(id) = id {
                out.push(WeightedBackend {
                    id,
                    weight: wb.weight as u32,
                    health: Arc::clone(&self.backends[id.index()].health),
                });
            }
        }
        out
    }

    fn maglev(&mut self, backends: &[WeightedBackend], path: &str) -> Option<Arc<MaglevTable>> {
        let key: Vec<(Arc<str>, u32)> = backends
            .iter()
            .map(|b| (Arc::clone(&self.backends[b.id.index()].name), b.weight))
            .collect();
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
        let named: Vec<(&[u8], u32)> = key.iter().map(|(n, w)| (n.as_bytes(), *w)).collect();
        match MaglevTable::build(&named, self.maglev_size) {
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

    fn path_modifier(
        &mut self,
        pm: &PathModifierConfig,
        p: &str,
        all_prefix: bool,
    ) -> Option<PathModifier> {
        if !exactly_one(&[pm.full.is_some(), pm.prefix.is_some()]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["full", "prefix"],
                },
            );
            return None;
        }
        if let Some(f) = &pm.full {
            return self
                .request_path(f, format!("{p}.full"))
                .then(|| PathModifier::Full(f.clone()));
        }
        let pre = pm.prefix.as_deref().unwrap_or_default();
        if !self.request_path(pre, format!("{p}.prefix")) {
            return None;
        }
        if !all_prefix {
            self.errs.push(
                format!("{p}.prefix"),
                K::Conflict {
                    reason:
                        "a prefix replacement needs every match of the rule to be a path prefix",
                },
            );
            return None;
        }
        Some(PathModifier::Prefix(pre.to_owned()))
    }

    fn header_modifier(&mut self, hm: &HeaderModifierConfig, p: &str) -> HeaderModifier {
        let pairs = |this: &mut Self, list: &[HeaderValueConfig], field: &str| {
            let mut out = Vec::new();
            for (k, hv) in list.iter().enumerate() {
                let hp = format!("{p}.{field}[{k}]");
                let n = this.header_name(&hv.name, format!("{hp}.name"));
                let v = this.header_value(&hv.value, format!("{hp}.value"));
                if let (Some(n), Some(v)) = (n, v) {
                    out.push((n, v));
                }
            }
            out
        };
        let set = pairs(self, &hm.set, "set");
        let add = pairs(self, &hm.add, "add");
        let remove = hm
            .remove
            .iter()
            .enumerate()
            .filter_map(|(k, n)| self.header_name(n, format!("{p}.remove[{k}]")))
            .collect();
        HeaderModifier { set, add, remove }
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
            let backends = self.weighted_backends(&rc.backends, p);
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

    fn redirect(&mut self, r: &RedirectConfig, p: &str, all_prefix: bool) -> Option<Redirect> {
        let before = self.errs.len();
        if let Some(s) = &r.scheme {
            if s != "http" && s != "https" {
                self.errs.push(
                    format!("{p}.scheme"),
                    K::InvalidHttp {
                        what: "scheme (`http` or `https`)",
                        value: s.clone(),
                    },
                );
            }
        }
        if let Some(h) = &r.hostname {
            if let Err(reason) = check_hostname(h, false) {
                self.errs.push(
                    format!("{p}.hostname"),
                    K::InvalidHostname {
                        host: h.clone(),
                        reason,
                    },
                );
            }
        }
        let path = r
            .path
            .as_ref()
            .and_then(|pm| self.path_modifier(pm, &format!("{p}.path"), all_prefix));
        let status = r.status.unwrap_or(302);
        if ![301, 302, 303, 307, 308].contains(&status) {
            self.errs.push(
                format!("{p}.status"),
                K::OutOfRange {
                    value: status.to_string(),
                    allowed: "301, 302, 303, 307 or 308",
                },
            );
        }
        if self.errs.len() != before {
            return None;
        }
        Some(Redirect {
            scheme: r.scheme.clone(),
            hostname: r.hostname.clone(),
            port: r.port,
            path,
            status: StatusCode::from_u16(status).ok()?,
        })
    }

    fn fixed_response(&mut self, f: &FixedResponseConfig, p: &str) -> Option<FixedResponse> {
        let status = match StatusCode::from_u16(f.status) {
            Ok(s) if (100..=599).contains(&f.status) => Some(s),
            _ => {
                self.errs.push(
                    format!("{p}.status"),
                    K::OutOfRange {
                        value: f.status.to_string(),
                        allowed: "100 to 599",
                    },
                );
                None
            }
        };
        let mut headers = HeaderMap::new();
        for (n, v) in &f.headers {
            let name = self.header_name(n, format!("{p}.headers.{n}"));
            let value = self.header_value(v, format!("{p}.headers.{n}"));
            if let (Some(n), Some(v)) = (name, value) {
                headers.append(n, v);
            }
        }
        Some(FixedResponse {
            status: status?,
            body: f.body.clone().unwrap_or_default(),
            headers,
        })
    }

    /// Reports `field` when it is set on a rule that does not forward.
    fn only_forwarding(&mut self, forwards: bool, set: bool, p: &str, field: &str) {
        if set && !forwards {
            self.errs.push(
                format!("{p}.{field}"),
                K::Conflict {
                    reason: "only rules that forward to `backends` can have this",
                },
            );
        }
    }

    /// The rule's policy; errors come in the order of the fields in `RuleConfig`.
    fn policy(&mut self, rc: &RuleConfig, p: &str, all_prefix: bool, forwards: bool) -> Policy {
        let mut policy = Policy::default();
        if let Some(f) = &rc.filters {
            let fp = format!("{p}.filters");
            if let Some(h) = &f.request_headers {
                policy.request_headers = self.header_modifier(h, &format!("{fp}.request_headers"));
            }
            if let Some(h) = &f.response_headers {
                policy.response_headers =
                    self.header_modifier(h, &format!("{fp}.response_headers"));
            }
            if let Some(u) = &f.url_rewrite {
                let up = format!("{fp}.url_rewrite");
                if u.hostname.is_none() && u.path.is_none() {
                    self.errs.push(
                        &*up,
                        K::AtLeastOne {
                            fields: &["hostname", "path"],
                        },
                    );
                }
                if let Some(h) = &u.hostname {
                    if let Err(reason) = check_hostname(h, false) {
                        self.errs.push(
                            format!("{up}.hostname"),
                            K::InvalidHostname {
                                host: h.clone(),
                                reason,
                            },
                        );
                    }
                }
                let path = u
                    .path
                    .as_ref()
                    .and_then(|pm| self.path_modifier(pm, &format!("{up}.path"), all_prefix));
                policy.url_rewrite = Some(UrlRewrite {
                    hostname: u.hostname.clone(),
                    path,
                });
            }
        }
        if let Some(t) = &rc.timeouts {
            policy.timeouts = Timeouts {
                request: t.request.map(ConfigDuration::as_duration),
                per_try: t.per_try.map(ConfigDuration::as_duration),
            };
            if let (Some(r), Some(pt)) = (policy.timeouts.request, policy.timeouts.per_try) {
                if !r.is_zero() && pt > r {
                    self.errs.push(
                        format!("{p}.timeouts.per_try"),
                        K::Conflict {
                            reason: "`per_try` must not be longer than `request`",
                        },
                    );
                }
            }
        }
        self.only_forwarding(forwards, rc.retry.is_some(), p, "retry");
        if let Some(r) = &rc.retry {
            let rp = format!("{p}.retry");
            if !(1..=10).contains(&r.attempts) {
                self.errs.push(
                    format!("{rp}.attempts"),
                    K::OutOfRange {
                        value: r.attempts.to_string(),
                        allowed: "1 to 10",
                    },
                );
            }
            let mut status_codes = Vec::new();
            for (k, &s) in r.status_codes.iter().enumerate() {
                match StatusCode::from_u16(s) {
                    Ok(code) if (100..=599).contains(&s) => status_codes.push(code),
                    _ => self.errs.push(
                        format!("{rp}.status_codes[{k}]"),
                        K::OutOfRange {
                            value: s.to_string(),
                            allowed: "100 to 599",
                        },
                    ),
                }
            }
            let on = if r.on.is_empty() {
                vec![
                    RetryOn::ServerError,
                    RetryOn::Reset,
                    RetryOn::ConnectFailure,
                ]
            } else {
                r.on.clone()
            };
            if on.contains(&RetryOn::RetriableStatusCodes) && status_codes.is_empty() {
                self.errs.push(
                    format!("{rp}.status_codes"),
                    K::Conflict {
                        reason: "`retriable-status-codes` needs at least one status code",
                    },
                );
            }
            let budget_ratio = self
                .percent(
                    r.budget_percent.unwrap_or(20.0),
                    format!("{rp}.budget_percent"),
                )
                .unwrap_or(0.2);
            policy.retry = Some(RetryPolicy {
                attempts: r.attempts,
                on,
                status_codes,
                backoff: r.backoff.map_or(
                    std::time::Duration::from_millis(25),
                    ConfigDuration::as_duration,
                ),
                max_body_bytes: r.max_body_bytes.unwrap_or(64 * 1024),
                budget_ratio,
                budget_min_per_second: r.budget_min_per_second.unwrap_or(10),
            });
        }
        if let Some(f) = &rc.fault {
            let fp = format!("{p}.fault");
            if f.delay.is_none() && f.abort.is_none() {
                self.errs.push(
                    &*fp,
                    K::AtLeastOne {
                        fields: &["delay", "abort"],
                    },
                );
            }
            let delay = f.delay.as_ref().and_then(|d| {
                let frac =
                    self.percent(d.percent.unwrap_or(100.0), format!("{fp}.delay.percent"))?;
                Some((d.fixed.as_duration(), frac))
            });
            let abort = f.abort.as_ref().and_then(|a| {
                let frac = self.percent(a.percent.unwrap_or(100.0), format!("{fp}.abort.percent"));
                let status = match StatusCode::from_u16(a.status) {
                    Ok(s) if (200..=599).contains(&a.status) => Some(s),
                    _ => {
                        self.errs.push(
                            format!("{fp}.abort.status"),
                            K::OutOfRange {
                                value: a.status.to_string(),
                                allowed: "200 to 599",
                            },
                        );
                        None
                    }
                };
                Some((status?, frac?))
            });
            let headers = self.header_matches(&f.headers, &fp);
            policy.fault = Some(FaultPolicy {
                delay,
                abort,
                headers,
            });
        }
        self.only_forwarding(forwards, rc.mirror.is_some(), p, "mirror");
        if let Some(m) = &rc.mirror {
            let mp = format!("{p}.mirror");
            let id = self.backend_ref(&m.backend, format!("{mp}.backend"));
            let frac = self.percent(m.percent.unwrap_or(100.0), format!("{mp}.percent"));
            if let (Some(backend), Some(fraction)) = (id, frac) {
                policy.mirror = Some(Mirror { backend, fraction });
            }
        }
        self.only_forwarding(
            forwards,
            rc.session_persistence.is_some(),
            p,
            "session_persistence",
        );
        if let Some(sp) = &rc.session_persistence {
            policy.session_persistence =
                self.session_persistence(sp, &format!("{p}.session_persistence"));
        }
        policy
    }

    fn session_persistence(
        &mut self,
        sp: &SessionPersistenceConfig,
        p: &str,
    ) -> Option<SessionPersistence> {
        if !exactly_one(&[sp.cookie.is_some(), sp.header.is_some()]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["cookie", "header"],
                },
            );
            return None;
        }
        if let Some(h) = &sp.header {
            return self
                .header_name(h, format!("{p}.header"))
                .map(SessionPersistence::Header);
        }
        let c = sp.cookie.as_ref()?;
        let cp = format!("{p}.cookie");
        let token_ok = !c.name.is_empty()
            && c.name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !token_ok {
            self.errs.push(
                format!("{cp}.name"),
                K::InvalidHttp {
                    what: "cookie name",
                    value: c.name.clone(),
                },
            );
        }
        let path = c.path.clone().unwrap_or_else(|| "/".to_owned());
        let mut path_ok = self.request_path(&path, format!("{cp}.path"));
        if path_ok && path.contains(';') {
            // RFC 6265 `path-value` excludes `;`: it would inject cookie attributes.
            self.errs.push(
                format!("{cp}.path"),
                K::InvalidPath {
                    path: path.clone(),
                    reason: "a cookie path must not contain `;`",
                },
            );
            path_ok = false;
        }
        let same_site = match c.same_site.as_deref() {
            None => None,
            Some("Strict") => Some(SameSite::Strict),
            Some("Lax") => Some(SameSite::Lax),
            Some("None") => Some(SameSite::None),
            Some(other) => {
                self.errs.push(
                    format!("{cp}.same_site"),
                    K::InvalidHttp {
                        what: "SameSite (`Strict`, `Lax` or `None`)",
                        value: other.to_owned(),
                    },
                );
                None
            }
        };
        if let Some(d) = &c.domain {
            if let Err(reason) = check_hostname(d.trim_start_matches('.'), false) {
                self.errs.push(
                    format!("{cp}.domain"),
                    K::InvalidHostname {
                        host: d.clone(),
                        reason,
                    },
                );
            }
        }
        (token_ok && path_ok).then(|| {
            SessionPersistence::Cookie(CookiePolicy {
                name: c.name.clone(),
                ttl: c.ttl.map(ConfigDuration::as_duration),
                path,
                domain: c.domain.clone(),
                secure: c.secure,
                http_only: c.http_only,
                same_site,
            })
        })
    }

    fn tcp_services(&mut self, services: &[TcpServiceConfig]) -> TcpTable {
        let mut table = TcpTable::default();
        let mut names: HashMap<&str, String> = HashMap::new();
        let mut vips: HashMap<std::net::SocketAddr, String> = HashMap::new();
        for (i, s) in services.iter().enumerate() {
            let p = format!("tcp_services[{i}]");
            self.unique(&mut names, &s.name, format!("{p}.name"));
            if let Some(first) = vips.get(&s.vip) {
                self.errs.push(
                    format!("{p}.vip"),
                    K::DuplicateName {
                        name: s.vip.to_string(),
                        first: first.clone(),
                    },
                );
            } else {
                vips.insert(s.vip, format!("{p}.vip"));
            }
            if s.backends.is_empty() {
                self.errs.push(format!("{p}.backends"), K::Empty);
                continue;
            }
            let backends = self.weighted_backends(&s.backends, &p);
            for (k, wb) in s.backends.iter().enumerate() {
                let id = self.backend_ids.get(wb.name.as_str()).copied();
                if let Some(id) = id {
                    let addr = self.backends[id.index()].address;
                    match addr {
                        None => self.errs.push(
                            format!("{p}.backends[{k}].name"),
                            K::Conflict {
                                reason: "an L4 target needs an `address` in `backends`",
                            },
                        ),
                        Some(a) if a.is_ipv4() != s.vip.is_ipv4() => self.errs.push(
                            format!("{p}.backends[{k}].name"),
                            K::Conflict {
                                reason: "an L4 target must have the same IP family as the VIP",
                            },
                        ),
                        Some(_) => {}
                    }
                }
            }
            if let Some(maglev) = self.maglev(&backends, &format!("{p}.backends")) {
                table.by_vip.insert(s.vip, table.services.len());
                table.services.push(TcpService {
                    name: s.name.as_str().into(),
                    vip: s.vip,
                    hash_on: s.hash_on.unwrap_or(TcpHashOn::FiveTuple),
                    forward: Forward::new(
                        backends,
                        Strategy::ConsistentHash(Arc::clone(&maglev)),
                        self.panic_threshold,
                    ),
                    maglev,
                });
            }
        }
        table
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
