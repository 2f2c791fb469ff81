//! Istio `VirtualService` + `DestinationRule` (`networking.istio.io/v1alpha3`,
//! `v1beta1`, `v1`: one schema) → native routes.
//!
//! Each `VirtualService` becomes one native route named `namespace/name` with
//! `precedence: first_match` (Istio tries `http` rules, and the matches inside each,
//! in order; the first that holds wins, even when a later one is more specific).
//!
//! | Istio | Native |
//! |---|---|
//! | `spec.hosts` | `hostnames`; a Kubernetes service host (`reviews`, or `reviews.ns.svc.cluster.local`) also gets the names it is reached by: `reviews`, `reviews.ns`, `reviews.ns.svc`, `reviews.ns.svc.cluster.local` (`ns`: the resource's namespace for a short name; any port); `*` alone → every host |
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
//! | DR `outlierDetection` `consecutive5xxErrors`, `consecutiveGatewayErrors`, `interval`, `baseEjectionTime`, `maxEjectionPercent` | top-level `outlier_detection` (one for all backends) |
//!
//! A subset's `trafficPolicy` overrides the host's, field by field (`loadBalancer`,
//! `connectionPool`, `outlierDetection`). A rule gets the load balancer its
//! destinations share (if they differ: a warning, the first destination's is used).
//! Hosts are compared as Istio does: a short name (`reviews`) is qualified with the
//! namespace of the resource that writes it (`reviews.<ns>.svc.cluster.local`); a
//! `DestinationRule` for `*.<suffix>` applies when no exact one does.
//!
//! **Apply semantics**: of several `VirtualService`s (or `DestinationRule`s) with the
//! same namespace and name, the last in input order replaces the others, as
//! `kubectl apply` of the files in order leaves them; each replaced one is warned
//! about. Several `VirtualService`s writing the same host are tried in input order
//! (Istio merges them in creation order, which files do not carry): a warning.
//!
//! **Gateways are a selection**: `gateways` (resource level, overridden per match)
//! binds routes to gateways; absent means `mesh`. An import stands for
//! [`ImportOptions::gateways`](super::ImportOptions::gateways) (default `mesh`, the
//! in-process traffic of the service that embeds the router): a VirtualService or a
//! match bound only to other gateways is left out with a warning, and a rule whose
//! every match is left out is dropped (never turned into a catch-all).
//!
//! **Fail closed**: match conditions on the caller or the listener that the route
//! table cannot see — `sourceLabels`, `sourceNamespace`, `port` — would make the
//! match hold for every caller or port, so they are errors
//! ([`ImportErrorKind::Lossy`]) unless
//! [`ImportOptions::allow_lossy`](super::ImportOptions::allow_lossy) is set.
//!
//! **Warnings** (understood, not applied in-process): `exportTo`, `tcp`/`tls` routes,
//! `statPrefix`, `corsPolicy`, `retryRemoteLocalities`, `retryIgnorePreviousHosts`,
//! retry conditions without a native equivalent (`refused-stream`, `retriable-4xx`,
//! `envoy-ratelimited`, gRPC ones…), `mirrors` beyond the first, a subset used without
//! any `DestinationRule` for its host (cannot be checked); DR `tls`,
//! `portLevelSettings`, `tunnel`, `proxyProtocol`, `retryBudget`, `workloadSelector`,
//! `localityLbSetting`, `warmupDurationSecs`/`warmup`, `LEAST_REQUEST`/`LEAST_CONN`/
//! `UNSPECIFIED` (→ `random`), `ringHash`/`minimumRingSize` (approximated by the
//! weighted Maglev table), `httpCookie.attributes`, connection pool and outlier
//! fields without a native equivalent, internal headers (`:path`…) Istio drops;
//! DR `outlierDetection.consecutiveErrors` (deprecated in istio/api and ignored by
//! Istio's outlier detection, which reads only `consecutive5xxErrors` and
//! `consecutiveGatewayErrors`: not applied here either).
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

mod actions;
mod apply;
mod destination;
mod spec;
use actions::*;
use apply::*;
use destination::*;
use spec::*;

/// Most native matches one Istio rule may expand to (method alternatives).
const MAX_MATCHES_PER_RULE: usize = 256;
/// Cluster DNS suffix used to qualify short host names.
const CLUSTER_DOMAIN: &str = "svc.cluster.local";
/// Largest native weight.
const MAX_WEIGHT: i64 = 1_000_000;

// ---------------------------------------------------------------- source model

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

/// The gateways an import stands for, for messages.
fn selected(o: &super::ImportOptions) -> String {
    if o.gateways.is_empty() {
        "mesh".to_owned()
    } else {
        o.gateways.join(", ")
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

/// Imports every `VirtualService`, with the `DestinationRule`s of their hosts.
pub(crate) fn import(vs: &[&Doc<'_>], dr: &[&Doc<'_>], out: &mut Out<'_>) {
    let vs = applied(vs, "VirtualService", out);
    let dr = applied(dr, "DestinationRule", out);
    let rules = destination_rules(&dr, out);
    let mut used: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    let mut unchecked_hosts: BTreeSet<String> = BTreeSet::new();
    let mut imported = Vec::new();
    for doc in &vs {
        let before = out.config.routes.len();
        virtual_service(doc, &rules, &mut used, &mut unchecked_hosts, out);
        if out.config.routes.len() > before {
            imported.push(*doc);
        }
    }
    merged_hosts(&imported, out);
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
    /// The resource's `gateways` (empty = `mesh`).
    gateways: Vec<String>,
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
    // `gateways` binds the routes to gateways (absent = `mesh`, in-process traffic): a
    // selection. A VirtualService bound only to gateways this router does not stand
    // for is left out.
    if !out.options.selects_gateway(&spec.gateways, &ns)
        && !spec.http.iter().any(|h| {
            h.matches
                .iter()
                .any(|m| !m.gateways.is_empty() && out.options.selects_gateway(&m.gateways, &ns))
        })
    {
        out.warn(
            cx.at("spec.gateways"),
            format!(
                "bound to gateways {:?}, none of which this import stands for ({}): the VirtualService is left out",
                spec.gateways,
                selected(out.options)
            ),
        );
        return;
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
        let mut all: Vec<String> = Vec::new();
        for h in &spec.hosts {
            for alt in host_alternates(h, &ns) {
                if !all.contains(&alt) {
                    all.push(alt);
                }
            }
        }
        all
    };
    let v = VsCtx {
        cx,
        ns,
        gateways: spec.gateways.clone(),
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
    let mut left_out = 0;
    for (j, m) in h.matches.iter().enumerate() {
        let mp = format!("{p}.match[{j}]");
        // Match-level `gateways` override the resource's: a match bound to gateways
        // this router does not stand for never holds here.
        let bound = if m.gateways.is_empty() {
            &v.gateways
        } else {
            &m.gateways
        };
        if !out.options.selects_gateway(bound, &v.ns) {
            out.warn(
                v.cx.at(&format!("{mp}.gateways")),
                format!(
                    "bound to gateways {bound:?}, none of which this import stands for ({}): the match is left out",
                    selected(out.options)
                ),
            );
            left_out += 1;
            continue;
        }
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
    if left_out > 0 && left_out == h.matches.len() {
        // Every match is bound elsewhere: the rule must not become a catch-all.
        return None;
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
            .map(|d| WeightedBackendConfig::new(d.name, d.weight))
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
    // Conditions on the caller or the listener narrow who reaches the rule; the
    // route table cannot see them, so importing them drops the narrowing.
    for (set, f, msg) in [
        (!m.source_labels.is_empty(), "sourceLabels", "`sourceLabels` (caller workload selection): the match would hold for every caller"),
        (m.source_namespace.is_some(), "sourceNamespace", "`sourceNamespace` (caller namespace): the match would hold for every caller"),
        (m.port.is_some(), "port", "`port`: the route table does not see the listener port, so the match would hold on every port"),
    ] {
        if set {
            out.lossy(at(f), msg);
        }
    }
    if m.stat_prefix.is_some() {
        out.warn(
            at("statPrefix"),
            "`statPrefix` (Envoy stats) is not applied in-process",
        );
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
