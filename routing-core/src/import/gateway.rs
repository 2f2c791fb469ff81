//! Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1` and `v1beta1`) → native
//! routes.
//!
//! Each `HTTPRoute` becomes one native route named `namespace/name` (the namespace
//! from `metadata.namespace`, else [`ImportOptions::default_namespace`](super::ImportOptions::default_namespace)), with the
//! default `specificity` precedence: the native order *is* the Gateway API's
//! (hostname, then exact path, longest prefix, method, most headers, most query
//! parameters). Its last tie-breaker, declaration order, is made the spec's: routes
//! are emitted oldest `metadata.creationTimestamp` first (missing timestamps last),
//! then by `namespace/name`, whatever the files and documents they came from; rules
//! keep their order.
//!
//! | `HTTPRoute` | native |
//! |---|---|
//! | `spec.hostnames` | `hostnames` (checked: DNS names, `*.` only as the whole first label, no IPs) |
//! | `rules[].name` | rule `name` (must be unique in the route) |
//! | `matches[].path` `Exact` / `PathPrefix` (default, value `/`) / `RegularExpression` | `path.exact` / `path.prefix` / `path.regex` |
//! | `matches[].headers` `Exact` (default) / `RegularExpression` | `headers[].exact` / `regex` (names case-insensitive; a repeated name is ignored, as the spec says) |
//! | `matches[].queryParams` `Exact` (default) / `RegularExpression` | `query[].exact` / `regex` |
//! | `matches[].method` | `method` |
//! | no `matches` | every request (prefix `/`) |
//! | `backendRefs[]` | `backends[]`: weight (default 1, 0 drains), name `name` (same namespace) or `namespace/name`, plus `:port` |
//! | no `backendRefs` and no redirect | `fixed_response: {status: 500}` (spec, see below) |
//! | `RequestHeaderModifier` / `ResponseHeaderModifier` | `filters.request_headers` / `filters.response_headers` |
//! | `RequestRedirect` | `redirect` (scheme, hostname, port, `ReplaceFullPath` → `path.full`, `ReplacePrefixMatch` → `path.prefix`, status default 302) |
//! | `URLRewrite` | `filters.url_rewrite` |
//! | `RequestMirror` (`percent`, or `fraction` → percent; neither = 100) | `mirror` |
//! | `timeouts.request` / `timeouts.backendRequest` (`0s` = none) | `timeouts.request` / `timeouts.per_try` |
//! | `retry` {`codes`, `attempts` (default 1, 0 = none), `backoff`} | `retry` {`attempts`, `on: [connect-failure, retriable-status-codes]`, `status_codes`, `backoff`} |
//! | `sessionPersistence` `Cookie` (default) / `Header` | `session_persistence.cookie` (name `sessionName` or `gw-session`; `ttl` = `absoluteTimeout` when `Permanent`) / `.header` |
//!
//! With a [`BackendMap`](super::BackendMap), a `backendRef` is looked up as
//! `namespace/name:port`, `namespace/name`, then (for a reference in the route's own
//! namespace only) `name:port` and `name`.
//!
//! **Warnings** (understood, not applied in-process): `parentRefs` (once per route)
//! and `useDefaultGateways` — attachment to Gateways; `CORS` filters; backend kinds
//! other than core `Service` (mapped by name); cross-namespace `backendRefs` (the
//! `ReferenceGrant` is not checked); `backendRefs` next to a `RequestRedirect` (the
//! redirect answers); `sessionPersistence.idleTimeout`, `absoluteTimeout` of a
//! session cookie, `Header` persistence (pinned by the value clients send); repeated
//! header / query match names; retry, mirror and session persistence on a rule that
//! does not forward; a rule whose every backend weighs 0 (answered 503 here).
//!
//! **Errors**: unknown fields and values (`Parse`); `ExtensionRef` and
//! `ExternalAuth` filters, filters on a `backendRef`, a second `RequestMirror`,
//! more than 10 retry attempts (`Unsupported`); what the CRD's own validation
//! refuses — bad hostnames and paths, out-of-range ports, weights, percents, codes
//! and durations, repeated filters, `RequestRedirect` with `URLRewrite`,
//! `ReplacePrefixMatch` without exactly one `PathPrefix` match, `backendRequest`
//! longer than `request`, duplicate rule names or routes (`Invalid`).

use std::collections::{BTreeMap, HashSet};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{Doc, ImportErrorKind, Location, Out, RouteOrigin};
use crate::config::{
    CookieConfig, FiltersConfig, FixedResponseConfig, HeaderMatchConfig, HeaderModifierConfig,
    HeaderValueConfig, MatchConfig, MirrorConfig, PathMatchConfig, PathModifierConfig,
    QueryMatchConfig, RedirectConfig, RetryConfig, RetryOn, RouteConfig, RuleConfig,
    SessionPersistenceConfig, TimeoutsConfig, UrlRewriteConfig, WeightedBackendConfig,
};
use crate::ConfigDuration;

/// Session cookie (or header) name when `sessionName` is not given.
const DEFAULT_SESSION_NAME: &str = "gw-session";

// ---------------------------------------------------------------------------------
// The source model (Gateway API v1.3 standard + experimental channel).
// ---------------------------------------------------------------------------------

/// A whole `HTTPRoute` object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpRoute {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: Spec,
    /// Ignored.
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<IgnoredAny>,
}

/// `metadata`, read leniently.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    parent_refs: Vec<ParentRef>,
    /// Experimental (GEP-3793): `All` or `None`.
    #[serde(default)]
    use_default_gateways: Option<String>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    rules: Option<Vec<Rule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct ParentRef {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    name: String,
    #[serde(default)]
    section_name: Option<String>,
    #[serde(default)]
    port: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    matches: Option<Vec<Match>>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    backend_refs: Vec<HttpBackendRef>,
    #[serde(default)]
    timeouts: Option<Timeouts>,
    #[serde(default)]
    retry: Option<Retry>,
    #[serde(default)]
    session_persistence: Option<SessionPersistence>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Match {
    #[serde(default)]
    path: Option<PathMatch>,
    #[serde(default)]
    headers: Vec<ValueMatch>,
    #[serde(default)]
    query_params: Vec<ValueMatch>,
    #[serde(default)]
    method: Option<Method>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathMatch {
    #[serde(default, rename = "type")]
    kind: Option<PathType>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum PathType {
    Exact,
    PathPrefix,
    RegularExpression,
}

/// A header or query parameter match.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueMatch {
    #[serde(default, rename = "type")]
    kind: Option<ValueType>,
    name: String,
    value: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Exact,
    RegularExpression,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Filter {
    #[serde(rename = "type")]
    kind: FilterType,
    #[serde(default)]
    request_header_modifier: Option<HeaderFilter>,
    #[serde(default)]
    response_header_modifier: Option<HeaderFilter>,
    #[serde(default)]
    request_mirror: Option<MirrorFilter>,
    #[serde(default)]
    request_redirect: Option<RedirectFilter>,
    #[serde(default)]
    url_rewrite: Option<RewriteFilter>,
    /// Not applied: only its presence matters.
    #[serde(default)]
    cors: Option<Value>,
    /// Refused: only its presence matters.
    #[serde(default)]
    external_auth: Option<Value>,
    #[serde(default)]
    extension_ref: Option<LocalObjectRef>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum FilterType {
    RequestHeaderModifier,
    ResponseHeaderModifier,
    RequestMirror,
    RequestRedirect,
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    ExtensionRef,
    #[serde(rename = "CORS")]
    Cors,
    ExternalAuth,
}

impl FilterType {
    fn name(self) -> &'static str {
        match self {
            FilterType::RequestHeaderModifier => "RequestHeaderModifier",
            FilterType::ResponseHeaderModifier => "ResponseHeaderModifier",
            FilterType::RequestMirror => "RequestMirror",
            FilterType::RequestRedirect => "RequestRedirect",
            FilterType::UrlRewrite => "URLRewrite",
            FilterType::ExtensionRef => "ExtensionRef",
            FilterType::Cors => "CORS",
            FilterType::ExternalAuth => "ExternalAuth",
        }
    }

    /// The field that must hold this filter's configuration.
    fn field(self) -> &'static str {
        match self {
            FilterType::RequestHeaderModifier => "requestHeaderModifier",
            FilterType::ResponseHeaderModifier => "responseHeaderModifier",
            FilterType::RequestMirror => "requestMirror",
            FilterType::RequestRedirect => "requestRedirect",
            FilterType::UrlRewrite => "urlRewrite",
            FilterType::ExtensionRef => "extensionRef",
            FilterType::Cors => "cors",
            FilterType::ExternalAuth => "externalAuth",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderFilter {
    #[serde(default)]
    set: Vec<HeaderValue>,
    #[serde(default)]
    add: Vec<HeaderValue>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderValue {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MirrorFilter {
    backend_ref: ObjectRef,
    #[serde(default)]
    percent: Option<i64>,
    #[serde(default)]
    fraction: Option<Fraction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fraction {
    numerator: i64,
    #[serde(default)]
    denominator: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RedirectFilter {
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    path: Option<PathModifier>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    status_code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewriteFilter {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    path: Option<PathModifier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PathModifier {
    #[serde(rename = "type")]
    kind: PathModifierType,
    #[serde(default)]
    replace_full_path: Option<String>,
    #[serde(default)]
    replace_prefix_match: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum PathModifierType {
    ReplaceFullPath,
    ReplacePrefixMatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct LocalObjectRef {
    group: String,
    kind: String,
    name: String,
}

/// `BackendObjectReference`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectRef {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    port: Option<i64>,
}

/// `HTTPBackendRef`: an object reference, a weight and (refused) filters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpBackendRef {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    weight: Option<i64>,
    #[serde(default)]
    filters: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Timeouts {
    #[serde(default)]
    request: Option<String>,
    #[serde(default)]
    backend_request: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Retry {
    #[serde(default)]
    codes: Vec<i64>,
    #[serde(default)]
    attempts: Option<i64>,
    #[serde(default)]
    backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SessionPersistence {
    #[serde(default)]
    session_name: Option<String>,
    #[serde(default)]
    absolute_timeout: Option<String>,
    #[serde(default)]
    idle_timeout: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<SessionType>,
    #[serde(default)]
    cookie_config: Option<CookieCfg>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum SessionType {
    Cookie,
    Header,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CookieCfg {
    #[serde(default)]
    lifetime_type: Option<Lifetime>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum Lifetime {
    Permanent,
    Session,
}

// ---------------------------------------------------------------------------------
// Limits of the CRD (they also bound the work done on hostile input).
// ---------------------------------------------------------------------------------

const MAX_HOSTNAMES: usize = 16;
const MAX_RULES: usize = 16;
const MAX_MATCHES: usize = 64;
const MAX_MATCHES_PER_ROUTE: usize = 128;
const MAX_CONDITIONS: usize = 16;
const MAX_FILTERS: usize = 16;
const MAX_BACKEND_REFS: usize = 16;
const MAX_WEIGHT: i64 = 1_000_000;
const MAX_RETRY_ATTEMPTS: i64 = 10;

// ---------------------------------------------------------------------------------
// Import.
// ---------------------------------------------------------------------------------

/// One converted `HTTPRoute`, waiting to be ordered.
struct Converted {
    /// Creation time as (seconds, nanoseconds) since the Unix epoch; `None` sorts last.
    created: Option<(i64, u32)>,
    route: RouteConfig,
    origin: RouteOrigin,
}

/// Imports every `HTTPRoute` document, merged by the spec's precedence rules.
pub(crate) fn import(docs: &[&Doc<'_>], out: &mut Out<'_>) {
    let mut converted: Vec<Converted> = Vec::new();
    let mut seen: BTreeMap<String, Location> = BTreeMap::new();
    for doc in docs {
        let ns = doc.namespace(out).to_owned();
        let resource = format!("HTTPRoute {ns}/{}", doc.name());
        let route: HttpRoute = match doc.parse(Some(&resource)) {
            Ok(r) => r,
            Err(e) => {
                out.push_error(e);
                continue;
            }
        };
        let mut cx = Cx {
            doc,
            resource: &resource,
            ns: &ns,
            out,
        };
        let name = route.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            cx.invalid("metadata.name", "an HTTPRoute needs a name");
            continue;
        }
        let full = format!("{ns}/{name}");
        if let Some(first) = seen.get(&full) {
            let msg = format!("HTTPRoute `{full}` is defined twice (first at {first})");
            cx.invalid("metadata.name", msg);
            continue;
        }
        seen.insert(full.clone(), cx.at("metadata.name"));
        let before = cx.out.error_count();
        if let Some(c) = cx.route(&route, full) {
            if cx.out.error_count() == before {
                converted.push(c);
            }
        }
    }
    // The spec's tie-breakers across routes: oldest first, then `namespace/name`.
    converted.sort_by(|a, b| {
        (a.created.is_none(), a.created, &a.route.name).cmp(&(
            b.created.is_none(),
            b.created,
            &b.route.name,
        ))
    });
    for c in converted {
        out.route(c.route, c.origin);
    }
}

/// The conversion context of one document.
struct Cx<'a, 'd, 'o> {
    doc: &'a Doc<'d>,
    resource: &'a str,
    /// The route's namespace.
    ns: &'a str,
    out: &'a mut Out<'o>,
}

impl Cx<'_, '_, '_> {
    fn at(&self, path: &str) -> Location {
        self.doc.loc(Some(self.resource), path)
    }

    fn warn(&mut self, path: &str, msg: impl Into<String>) {
        let at = self.at(path);
        self.out.warn(at, msg);
    }

    fn invalid(&mut self, path: &str, msg: impl Into<String>) {
        let at = self.at(path);
        self.out.error(at, ImportErrorKind::Invalid(msg.into()));
    }

    fn unsupported(&mut self, path: &str, msg: impl Into<String>) {
        let at = self.at(path);
        self.out.error(at, ImportErrorKind::Unsupported(msg.into()));
    }

    /// Checks a CRD list limit; false (with an error) when `n` is above it.
    fn limit(&mut self, path: &str, n: usize, max: usize, what: &str) -> bool {
        if n > max {
            self.invalid(path, format!("{n} {what}: at most {max} are allowed"));
            return false;
        }
        true
    }

    fn route(&mut self, r: &HttpRoute, full: String) -> Option<Converted> {
        let created = match r.metadata.creation_timestamp.as_deref() {
            None => None,
            Some(ts) => match rfc3339(ts) {
                Some(t) => Some(t),
                None => {
                    self.invalid(
                        "metadata.creationTimestamp",
                        format!("`{ts}` is not an RFC 3339 timestamp (it orders routes that tie)"),
                    );
                    return None;
                }
            },
        };
        let spec = &r.spec;
        if !spec.parent_refs.is_empty() {
            self.warn(
                "spec.parentRefs",
                "attachment to Gateways is not applied in-process: the routes serve every request the layer sees",
            );
        }
        if let Some(u) = &spec.use_default_gateways {
            self.warn(
                "spec.useDefaultGateways",
                format!("`useDefaultGateways: {u}` (attachment to default Gateways) is not applied in-process: the routes serve every request the layer sees"),
            );
        }
        let mut hostnames = Vec::new();
        if self.limit(
            "spec.hostnames",
            spec.hostnames.len(),
            MAX_HOSTNAMES,
            "hostnames",
        ) {
            for (i, h) in spec.hostnames.iter().enumerate() {
                let p = format!("spec.hostnames[{i}]");
                if h.parse::<std::net::IpAddr>().is_ok() {
                    self.invalid(&p, format!("`{h}`: IP addresses are not hostnames"));
                    continue;
                }
                match crate::build::check_hostname(h, true) {
                    Ok(()) => hostnames.push(h.clone()),
                    Err(reason) => self.invalid(&p, format!("hostname `{h}` {reason}")),
                }
            }
        }
        let mut rules = Vec::new();
        let mut origins = Vec::new();
        match &spec.rules {
            // The CRD's default: one rule matching every request (and no backends).
            None => {
                let rule = Rule {
                    name: None,
                    matches: None,
                    filters: Vec::new(),
                    backend_refs: Vec::new(),
                    timeouts: None,
                    retry: None,
                    session_persistence: None,
                };
                if let Some(rc) = self.rule(&rule, "spec") {
                    rules.push(rc);
                    origins.push(self.at("spec"));
                }
            }
            Some(list) if list.is_empty() => {
                self.invalid("spec.rules", "an HTTPRoute needs at least one rule");
            }
            Some(list) => {
                if !self.limit("spec.rules", list.len(), MAX_RULES, "rules") {
                    return None;
                }
                let total: usize = list
                    .iter()
                    .map(|r| r.matches.as_ref().map_or(0, Vec::len))
                    .sum();
                if !self.limit("spec.rules", total, MAX_MATCHES_PER_ROUTE, "matches in all") {
                    return None;
                }
                let mut names: HashSet<&str> = HashSet::new();
                for (i, rule) in list.iter().enumerate() {
                    let p = format!("spec.rules[{i}]");
                    if let Some(n) = &rule.name {
                        if n.is_empty() {
                            self.invalid(&format!("{p}.name"), "a rule name must not be empty");
                        } else if !names.insert(n) {
                            self.invalid(
                                &format!("{p}.name"),
                                format!("rule name `{n}` is used twice in the route"),
                            );
                        }
                    }
                    if let Some(rc) = self.rule(rule, &p) {
                        rules.push(rc);
                        origins.push(self.at(&p));
                    }
                }
            }
        }
        Some(Converted {
            created,
            route: RouteConfig {
                name: full,
                hostnames,
                rules,
                precedence: None,
            },
            origin: RouteOrigin {
                at: self.at("spec"),
                rules: origins,
            },
        })
    }

    /// One rule; `p` is its path (`spec.rules[2]`).
    fn rule(&mut self, r: &Rule, p: &str) -> Option<RuleConfig> {
        let mut rc = RuleConfig {
            name: r.name.clone().filter(|n| !n.is_empty()),
            ..RuleConfig::default()
        };
        // Matches. A missing path is the CRD default `PathPrefix /`, made explicit so
        // that a prefix replacement sees it.
        let mut prefix_matches = 0usize;
        match &r.matches {
            None => {
                rc.matches.push(MatchConfig {
                    path: Some(prefix("/")),
                    ..MatchConfig::default()
                });
                prefix_matches = 1;
            }
            Some(list) => {
                if !self.limit(&format!("{p}.matches"), list.len(), MAX_MATCHES, "matches") {
                    return None;
                }
                if list.is_empty() {
                    rc.matches.push(MatchConfig {
                        path: Some(prefix("/")),
                        ..MatchConfig::default()
                    });
                    prefix_matches = 1;
                }
                for (j, m) in list.iter().enumerate() {
                    let mp = format!("{p}.matches[{j}]");
                    let (mc, is_prefix) = self.match_(m, &mp)?;
                    prefix_matches += usize::from(is_prefix);
                    rc.matches.push(mc);
                }
            }
        }
        let single_prefix = rc.matches.len() == 1 && prefix_matches == 1;

        // Filters.
        let fp = format!("{p}.filters");
        if !self.limit(&fp, r.filters.len(), MAX_FILTERS, "filters") {
            return None;
        }
        let mut filters = FiltersConfig::default();
        let mut redirect: Option<(RedirectConfig, String)> = None;
        let mut mirror: Option<MirrorConfig> = None;
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (k, f) in r.filters.iter().enumerate() {
            let fk = format!("{fp}[{k}]");
            if !self.filter_shape(f, &fk) {
                continue;
            }
            let n = counts.entry(f.kind.name()).or_insert(0);
            *n += 1;
            let repeated = *n > 1;
            let once = |cx: &mut Self| {
                cx.invalid(
                    &format!("{fk}.type"),
                    format!("the {} filter cannot be repeated", f.kind.name()),
                );
            };
            match f.kind {
                FilterType::RequestHeaderModifier | FilterType::ResponseHeaderModifier => {
                    if repeated {
                        once(self);
                        continue;
                    }
                    let (h, target) = if f.kind == FilterType::RequestHeaderModifier {
                        (&f.request_header_modifier, &mut filters.request_headers)
                    } else {
                        (&f.response_header_modifier, &mut filters.response_headers)
                    };
                    if let Some(h) = h {
                        *target = self.header_filter(h, &format!("{fk}.{}", f.kind.field()));
                    }
                }
                FilterType::RequestRedirect => {
                    if repeated {
                        once(self);
                        continue;
                    }
                    if let Some(rr) = &f.request_redirect {
                        let rp = format!("{fk}.requestRedirect");
                        if let Some(rd) = self.redirect(rr, &rp, single_prefix) {
                            redirect = Some((rd, rp));
                        }
                    }
                }
                FilterType::UrlRewrite => {
                    if repeated {
                        once(self);
                        continue;
                    }
                    if let Some(u) = &f.url_rewrite {
                        let up = format!("{fk}.urlRewrite");
                        let path = match &u.path {
                            Some(pm) => self.path_modifier(pm, &format!("{up}.path"), single_prefix),
                            None => None,
                        };
                        if u.hostname.is_some() || path.is_some() {
                            filters.url_rewrite = Some(UrlRewriteConfig {
                                hostname: u.hostname.clone(),
                                path,
                            });
                        }
                    }
                }
                FilterType::RequestMirror => {
                    if mirror.is_some() {
                        self.unsupported(
                            &fk,
                            "a second RequestMirror filter: requests are mirrored to one backend here",
                        );
                        continue;
                    }
                    if let Some(m) = &f.request_mirror {
                        mirror = self.mirror(m, &format!("{fk}.requestMirror"));
                    }
                }
                FilterType::ExtensionRef => {
                    let what = f.extension_ref.as_ref().map_or(String::new(), |e| {
                        format!(" `{}/{}` `{}`", e.group, e.kind, e.name)
                    });
                    self.unsupported(
                        &format!("{fk}.extensionRef"),
                        format!("ExtensionRef filter{what}: an implementation-specific filter changes requests in ways that cannot be known here"),
                    );
                }
                FilterType::ExternalAuth => self.unsupported(
                    &format!("{fk}.externalAuth"),
                    "ExternalAuth filter: an external authorization server would decide which requests pass",
                ),
                FilterType::Cors => {
                    if repeated {
                        once(self);
                        continue;
                    }
                    self.warn(
                        &format!("{fk}.cors"),
                        "the CORS filter is not applied in-process: preflight requests are routed like any other and no CORS headers are added",
                    );
                }
            }
        }
        if counts.contains_key("RequestRedirect") && counts.contains_key("URLRewrite") {
            self.invalid(
                &fp,
                "RequestRedirect and URLRewrite filters cannot be used in the same rule",
            );
        }
        if filters != FiltersConfig::default() {
            rc.filters = Some(filters);
        }

        // Timeouts.
        if let Some(t) = &r.timeouts {
            rc.timeouts = self.timeouts(t, &format!("{p}.timeouts"));
        }

        // The action.
        let bp = format!("{p}.backendRefs");
        if let Some((rd, _)) = redirect {
            if !r.backend_refs.is_empty() {
                self.warn(
                    &bp,
                    "backendRefs are unused: the RequestRedirect filter answers every request of this rule",
                );
            }
            rc.redirect = Some(rd);
        } else if counts.contains_key("RequestRedirect") {
            // The redirect was refused (an error is recorded): nothing more to add.
            return None;
        } else if r.backend_refs.is_empty() {
            // "If unspecified and no filters are specified that would result in a
            // response being sent, a 500 error code is returned." — HTTPRoute
            // reference, `backendRefs` (since Gateway API v1.6, conformance test
            // `HTTPRouteNoBackendRefs`; earlier text said 404).
            rc.fixed_response = Some(FixedResponseConfig {
                status: 500,
                body: None,
                headers: BTreeMap::new(),
            });
        } else {
            if !self.limit(&bp, r.backend_refs.len(), MAX_BACKEND_REFS, "backendRefs") {
                return None;
            }
            for (k, b) in r.backend_refs.iter().enumerate() {
                let bk = format!("{bp}[{k}]");
                if !b.filters.is_empty() {
                    self.unsupported(
                        &format!("{bk}.filters"),
                        "filters on a backendRef: natively, filters apply to the whole rule, not to the requests one backend gets",
                    );
                }
                let weight = match b.weight {
                    None => 1,
                    Some(w) if (0..=MAX_WEIGHT).contains(&w) => w,
                    Some(w) => {
                        self.invalid(
                            &format!("{bk}.weight"),
                            format!("weight {w} is out of range 0 ..= {MAX_WEIGHT}"),
                        );
                        continue;
                    }
                };
                let target = Target {
                    group: b.group.as_deref(),
                    kind: b.kind.as_deref(),
                    name: &b.name,
                    namespace: b.namespace.as_deref(),
                    port: b.port,
                };
                if let Some(name) = self.backend(&target, &bk) {
                    let weight = u64::try_from(weight).unwrap_or(0);
                    // The same backend twice: its shares add up.
                    match rc.backends.iter_mut().find(|wb| wb.name == name) {
                        Some(wb) => wb.weight = wb.weight.saturating_add(weight),
                        None => rc.backends.push(WeightedBackendConfig { name, weight }),
                    }
                }
            }
            if !rc.backends.is_empty() && rc.backends.iter().all(|b| b.weight == 0) {
                self.warn(
                    &bp,
                    "every backendRef has weight 0: matching requests are answered 503 here",
                );
            }
        }
        let forwards = rc.redirect.is_none() && rc.fixed_response.is_none();

        // Policy that needs a forwarding rule.
        if let Some(m) = mirror {
            if forwards {
                rc.mirror = Some(m);
            } else {
                self.warn(
                    &fp,
                    "RequestMirror has no effect: this rule does not forward",
                );
            }
        }
        if let Some(rt) = &r.retry {
            let rp = format!("{p}.retry");
            let retry = self.retry(rt, &rp);
            if retry.is_some() && !forwards {
                self.warn(&rp, "retry has no effect: this rule does not forward");
            } else {
                rc.retry = retry;
            }
        }
        if let Some(sp) = &r.session_persistence {
            let sp_path = format!("{p}.sessionPersistence");
            let s = self.session_persistence(sp, &sp_path);
            if s.is_some() && !forwards {
                self.warn(
                    &sp_path,
                    "sessionPersistence has no effect: this rule does not forward",
                );
            } else {
                rc.session_persistence = s;
            }
        }
        Some(rc)
    }

    /// `(name, exact, regex)` of each header (`fold_case`) or query parameter match at
    /// `p`, keeping the first entry of each name as the spec requires (later ones are
    /// warned and ignored); `None` after an error.
    fn value_matches(
        &mut self,
        p: &str,
        items: &[ValueMatch],
        what: &str,
        fold_case: bool,
    ) -> Option<Vec<NameExactRegex>> {
        if !self.limit(p, items.len(), MAX_CONDITIONS, &format!("{what} matches")) {
            return None;
        }
        let mut names: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for (k, v) in items.iter().enumerate() {
            let ip = format!("{p}[{k}]");
            let key = if fold_case {
                v.name.to_ascii_lowercase()
            } else {
                v.name.clone()
            };
            if !names.insert(key) {
                self.warn(
                    &format!("{ip}.name"),
                    format!("{what} `{}` is matched by an earlier entry: this one is ignored, as the spec requires", v.name),
                );
                continue;
            }
            if v.value.is_empty() {
                self.invalid(
                    &format!("{ip}.value"),
                    format!("a {what} match value must not be empty"),
                );
                return None;
            }
            let (exact, regex) = split(v.kind, &v.value);
            out.push((v.name.clone(), exact, regex));
        }
        Some(out)
    }

    /// One match, and whether its path is a prefix; `None` after an error.
    fn match_(&mut self, m: &Match, mp: &str) -> Option<(MatchConfig, bool)> {
        let mut mc = MatchConfig::default();
        let (kind, value) = match &m.path {
            None => (PathType::PathPrefix, "/".to_owned()),
            Some(pm) => (
                pm.kind.unwrap_or(PathType::PathPrefix),
                pm.value.clone().unwrap_or_else(|| "/".to_owned()),
            ),
        };
        let vp = format!("{mp}.path.value");
        if value.len() > 1024 {
            self.invalid(&vp, "longer than 1024 characters");
            return None;
        }
        mc.path = Some(match kind {
            PathType::Exact | PathType::PathPrefix => {
                if let Err(reason) = check_path(&value) {
                    self.invalid(&vp, format!("path `{value}` {reason}"));
                    return None;
                }
                if kind == PathType::Exact {
                    PathMatchConfig {
                        exact: Some(value),
                        ..PathMatchConfig::default()
                    }
                } else {
                    prefix(&value)
                }
            }
            PathType::RegularExpression => PathMatchConfig {
                regex: Some(value),
                ..PathMatchConfig::default()
            },
        });
        mc.method = m.method.map(|x| x.as_str().to_owned());
        for (name, exact, regex) in
            self.value_matches(&format!("{mp}.headers"), &m.headers, "header", true)?
        {
            mc.headers.push(HeaderMatchConfig {
                name,
                exact,
                regex,
                ..HeaderMatchConfig::default()
            });
        }
        let query = self.value_matches(
            &format!("{mp}.queryParams"),
            &m.query_params,
            "query parameter",
            false,
        )?;
        for (name, exact, regex) in query {
            mc.query.push(QueryMatchConfig {
                name,
                exact,
                regex,
                present: false,
            });
        }
        Some((mc, kind == PathType::PathPrefix))
    }

    /// Checks that a filter holds exactly the configuration its `type` names.
    fn filter_shape(&mut self, f: &Filter, fk: &str) -> bool {
        let present = [
            ("requestHeaderModifier", f.request_header_modifier.is_some()),
            (
                "responseHeaderModifier",
                f.response_header_modifier.is_some(),
            ),
            ("requestMirror", f.request_mirror.is_some()),
            ("requestRedirect", f.request_redirect.is_some()),
            ("urlRewrite", f.url_rewrite.is_some()),
            ("cors", f.cors.is_some()),
            ("externalAuth", f.external_auth.is_some()),
            ("extensionRef", f.extension_ref.is_some()),
        ];
        let want = f.kind.field();
        let mut ok = true;
        for (field, set) in present {
            if field == want && !set {
                self.invalid(
                    &format!("{fk}.{field}"),
                    format!("`{field}` must be set for a {} filter", f.kind.name()),
                );
                ok = false;
            } else if field != want && set {
                self.invalid(
                    &format!("{fk}.{field}"),
                    format!("`{field}` must not be set for a {} filter", f.kind.name()),
                );
                ok = false;
            }
        }
        ok
    }

    fn header_filter(&mut self, h: &HeaderFilter, p: &str) -> Option<HeaderModifierConfig> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut ok = true;
        let names = h
            .set
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("{p}.set[{i}].name"), &x.name))
            .chain(
                h.add
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (format!("{p}.add[{i}].name"), &x.name)),
            )
            .chain(
                h.remove
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (format!("{p}.remove[{i}]"), x)),
            )
            .collect::<Vec<_>>();
        if names.len() > 3 * MAX_CONDITIONS {
            self.invalid(p, "more than 16 entries in set, add or remove");
            return None;
        }
        for (path, name) in names {
            if !seen.insert(name.to_ascii_lowercase()) {
                self.invalid(
                    &path,
                    format!("header `{name}` has a second action: one action per header name is allowed"),
                );
                ok = false;
            }
        }
        let pairs = |list: &[HeaderValue]| {
            list.iter()
                .map(|x| HeaderValueConfig {
                    name: x.name.clone(),
                    value: x.value.clone(),
                })
                .collect()
        };
        ok.then(|| HeaderModifierConfig {
            set: pairs(&h.set),
            add: pairs(&h.add),
            remove: h.remove.clone(),
        })
    }

    fn path_modifier(
        &mut self,
        pm: &PathModifier,
        p: &str,
        single_prefix: bool,
    ) -> Option<PathModifierConfig> {
        let mut ok = true;
        let (want, other, value, other_value) = match pm.kind {
            PathModifierType::ReplaceFullPath => (
                "replaceFullPath",
                "replacePrefixMatch",
                &pm.replace_full_path,
                &pm.replace_prefix_match,
            ),
            PathModifierType::ReplacePrefixMatch => (
                "replacePrefixMatch",
                "replaceFullPath",
                &pm.replace_prefix_match,
                &pm.replace_full_path,
            ),
        };
        if other_value.is_some() {
            self.invalid(
                &format!("{p}.{other}"),
                format!(
                    "`{other}` must not be set when `type` is not `{}`",
                    upper(other)
                ),
            );
            ok = false;
        }
        let Some(value) = value else {
            self.invalid(
                &format!("{p}.{want}"),
                format!("`{want}` must be set when `type` is `{}`", upper(want)),
            );
            return None;
        };
        if value.len() > 1024 {
            self.invalid(&format!("{p}.{want}"), "longer than 1024 characters");
            return None;
        }
        if pm.kind == PathModifierType::ReplacePrefixMatch && !single_prefix {
            self.invalid(
                &format!("{p}.{want}"),
                "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(match pm.kind {
            PathModifierType::ReplaceFullPath => PathModifierConfig {
                full: Some(value.clone()),
                prefix: None,
            },
            // An empty replacement behaves as `/` (the spec's table).
            PathModifierType::ReplacePrefixMatch => PathModifierConfig {
                full: None,
                prefix: Some(if value.is_empty() {
                    "/".to_owned()
                } else {
                    value.clone()
                }),
            },
        })
    }

    fn redirect(
        &mut self,
        r: &RedirectFilter,
        p: &str,
        single_prefix: bool,
    ) -> Option<RedirectConfig> {
        let before = self.out.error_count();
        if let Some(s) = &r.scheme {
            if s != "http" && s != "https" {
                self.invalid(
                    &format!("{p}.scheme"),
                    format!("scheme `{s}` is not `http` or `https`"),
                );
            }
        }
        let port = match r.port {
            None => None,
            Some(n) => match u16::try_from(n) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.invalid(
                        &format!("{p}.port"),
                        format!("port {n} is out of range 1 ..= 65535"),
                    );
                    None
                }
            },
        };
        let status = match r.status_code {
            None => None,
            Some(c @ (301 | 302 | 303 | 307 | 308)) => u16::try_from(c).ok(),
            Some(c) => {
                self.invalid(
                    &format!("{p}.statusCode"),
                    format!("status code {c} is not one of 301, 302, 303, 307, 308"),
                );
                None
            }
        };
        let path = match &r.path {
            Some(pm) => self.path_modifier(pm, &format!("{p}.path"), single_prefix),
            None => None,
        };
        if self.out.error_count() != before {
            return None;
        }
        Some(RedirectConfig {
            scheme: r.scheme.clone(),
            hostname: r.hostname.clone(),
            port,
            path,
            status,
        })
    }

    fn mirror(&mut self, m: &MirrorFilter, p: &str) -> Option<MirrorConfig> {
        let percent = match (m.percent, &m.fraction) {
            (Some(_), Some(_)) => {
                self.invalid(p, "only one of `percent` and `fraction` may be set");
                return None;
            }
            (Some(n), None) if (0..=100).contains(&n) => Some(n as f64),
            (Some(n), None) => {
                self.invalid(
                    &format!("{p}.percent"),
                    format!("{n} is out of range 0 ..= 100"),
                );
                return None;
            }
            (None, Some(f)) => {
                let den = f.denominator.unwrap_or(100);
                if den < 1 || f.numerator < 0 || f.numerator > den {
                    self.invalid(
                        &format!("{p}.fraction"),
                        format!(
                            "fraction {}/{den}: need 0 <= numerator <= denominator and denominator >= 1",
                            f.numerator
                        ),
                    );
                    return None;
                }
                Some(f.numerator as f64 * 100.0 / den as f64)
            }
            (None, None) => None,
        };
        let b = &m.backend_ref;
        let target = Target {
            group: b.group.as_deref(),
            kind: b.kind.as_deref(),
            name: &b.name,
            namespace: b.namespace.as_deref(),
            port: b.port,
        };
        let backend = self.backend(&target, &format!("{p}.backendRef"))?;
        Some(MirrorConfig { backend, percent })
    }

    /// Resolves a backend reference to a declared native backend.
    fn backend(&mut self, t: &Target<'_>, p: &str) -> Option<String> {
        if t.name.is_empty() {
            self.invalid(&format!("{p}.name"), "a backend reference needs a name");
            return None;
        }
        let port = match t.port {
            None => None,
            Some(n) => match u16::try_from(n) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.invalid(
                        &format!("{p}.port"),
                        format!("port {n} is out of range 1 ..= 65535"),
                    );
                    return None;
                }
            },
        };
        let group = t.group.unwrap_or("");
        let kind = t.kind.unwrap_or("Service");
        if !(matches!(group, "" | "core") && kind == "Service") {
            let g = if group.is_empty() { "core" } else { group };
            self.warn(
                p,
                format!("backend kind `{kind}` (group `{g}`) is mapped by name like a Service"),
            );
        }
        let ns = t.namespace.unwrap_or(self.ns);
        let same = ns == self.ns;
        if !same {
            self.warn(
                &format!("{p}.namespace"),
                format!("cross-namespace reference to `{ns}/{}`: the ReferenceGrant that must allow it is not checked", t.name),
            );
        }
        let name = t.name;
        let mut keys = Vec::with_capacity(4);
        if let Some(port) = port {
            keys.push(format!("{ns}/{name}:{port}"));
        }
        keys.push(format!("{ns}/{name}"));
        if same {
            if let Some(port) = port {
                keys.push(format!("{name}:{port}"));
            }
            keys.push(name.to_owned());
        }
        let base = if same {
            name.to_owned()
        } else {
            format!("{ns}/{name}")
        };
        let default = match port {
            Some(port) => format!("{base}:{port}"),
            None => base,
        };
        let at = self.at(p);
        self.out.backend(&keys, &default, &at)
    }

    fn duration(&mut self, s: &str, p: &str) -> Option<ConfigDuration> {
        match s.parse::<ConfigDuration>() {
            Ok(d) => Some(d),
            Err(e) => {
                self.invalid(p, e.to_string());
                None
            }
        }
    }

    fn timeouts(&mut self, t: &Timeouts, p: &str) -> Option<TimeoutsConfig> {
        let request = t
            .request
            .as_deref()
            .and_then(|s| self.duration(s, &format!("{p}.request")));
        let per_try = t
            .backend_request
            .as_deref()
            .and_then(|s| self.duration(s, &format!("{p}.backendRequest")));
        // "0s" disables a timeout.
        let nonzero = |d: Option<ConfigDuration>| d.filter(|d| !d.as_duration().is_zero());
        let (request, per_try) = (nonzero(request), nonzero(per_try));
        if let (Some(r), Some(b)) = (request, per_try) {
            if b > r {
                self.invalid(
                    &format!("{p}.backendRequest"),
                    format!("backendRequest timeout {b} is longer than the request timeout {r}"),
                );
                return None;
            }
        }
        (request.is_some() || per_try.is_some()).then_some(TimeoutsConfig { request, per_try })
    }

    fn retry(&mut self, r: &Retry, p: &str) -> Option<RetryConfig> {
        let attempts = r.attempts.unwrap_or(1);
        if attempts < 0 {
            self.invalid(&format!("{p}.attempts"), format!("{attempts} is negative"));
            return None;
        }
        if attempts > MAX_RETRY_ATTEMPTS {
            self.unsupported(
                &format!("{p}.attempts"),
                format!("{attempts} retries: at most {MAX_RETRY_ATTEMPTS} are supported"),
            );
            return None;
        }
        let mut codes = Vec::new();
        let mut ok = true;
        if !self.limit(&format!("{p}.codes"), r.codes.len(), 200, "codes") {
            return None;
        }
        for (k, &c) in r.codes.iter().enumerate() {
            match u16::try_from(c) {
                Ok(c) if (400..=599).contains(&c) => {
                    if !codes.contains(&c) {
                        codes.push(c);
                    }
                }
                _ => {
                    self.invalid(
                        &format!("{p}.codes[{k}]"),
                        format!("status code {c} is out of range 400 ..= 599"),
                    );
                    ok = false;
                }
            }
        }
        let backoff = match &r.backoff {
            Some(s) => Some(self.duration(s, &format!("{p}.backoff"))?),
            None => None,
        };
        // An explicit zero disables retries.
        if !ok || attempts == 0 {
            return None;
        }
        // GEP-1731: retry the listed codes and connections that could not be made;
        // not resets after the request was sent (it may have been processed).
        let mut on = vec![RetryOn::ConnectFailure];
        if !codes.is_empty() {
            on.push(RetryOn::RetriableStatusCodes);
        }
        Some(RetryConfig {
            attempts: u32::try_from(attempts).unwrap_or(1),
            on,
            status_codes: codes,
            backoff,
            ..RetryConfig::default()
        })
    }

    fn session_persistence(
        &mut self,
        s: &SessionPersistence,
        p: &str,
    ) -> Option<SessionPersistenceConfig> {
        let name = s
            .session_name
            .clone()
            .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned());
        if name.len() > 128 {
            self.invalid(&format!("{p}.sessionName"), "longer than 128 characters");
            return None;
        }
        let absolute = match &s.absolute_timeout {
            Some(d) => Some(self.duration(d, &format!("{p}.absoluteTimeout"))?),
            None => None,
        };
        if let Some(d) = &s.idle_timeout {
            self.duration(d, &format!("{p}.idleTimeout"))?;
            self.warn(
                &format!("{p}.idleTimeout"),
                "idleTimeout is not applied: sessions end only when the cookie does",
            );
        }
        match s.kind.unwrap_or(SessionType::Cookie) {
            SessionType::Header => {
                if s.cookie_config.is_some() {
                    self.invalid(
                        &format!("{p}.cookieConfig"),
                        "cookieConfig is for `type: Cookie`",
                    );
                    return None;
                }
                self.warn(
                    p,
                    format!("header session persistence: requests are pinned by the value of `{name}` that clients send; the layer does not issue it"),
                );
                if absolute.is_some() {
                    self.warn(
                        &format!("{p}.absoluteTimeout"),
                        "absoluteTimeout is not applied to header sessions",
                    );
                }
                Some(SessionPersistenceConfig {
                    cookie: None,
                    header: Some(name),
                })
            }
            SessionType::Cookie => {
                let lifetime = s
                    .cookie_config
                    .as_ref()
                    .and_then(|c| c.lifetime_type)
                    .unwrap_or(Lifetime::Session);
                let ttl = match lifetime {
                    Lifetime::Permanent => {
                        if absolute.is_none() {
                            self.invalid(
                                &format!("{p}.absoluteTimeout"),
                                "absoluteTimeout must be set when the cookie lifetimeType is Permanent",
                            );
                            return None;
                        }
                        absolute
                    }
                    Lifetime::Session => {
                        if absolute.is_some() {
                            self.warn(
                                &format!("{p}.absoluteTimeout"),
                                "absoluteTimeout of a session cookie is not applied: the session lasts as long as the browser keeps the cookie",
                            );
                        }
                        None
                    }
                };
                Some(SessionPersistenceConfig {
                    cookie: Some(CookieConfig {
                        name,
                        ttl,
                        ..CookieConfig::default()
                    }),
                    header: None,
                })
            }
        }
    }
}

/// A backend reference (from `backendRefs` or a mirror).
struct Target<'a> {
    group: Option<&'a str>,
    kind: Option<&'a str>,
    name: &'a str,
    namespace: Option<&'a str>,
    port: Option<i64>,
}

fn prefix(p: &str) -> PathMatchConfig {
    PathMatchConfig {
        prefix: Some(p.to_owned()),
        ..PathMatchConfig::default()
    }
}

/// `(exact, regex)` for a header or query match.
fn split(kind: Option<ValueType>, value: &str) -> (Option<String>, Option<String>) {
    match kind.unwrap_or(ValueType::Exact) {
        ValueType::Exact => (Some(value.to_owned()), None),
        ValueType::RegularExpression => (None, Some(value.to_owned())),
    }
}

/// A header or query condition: name, exact value, regex.
type NameExactRegex = (String, Option<String>, Option<String>);

/// `replaceFullPath` → `ReplaceFullPath`.
fn upper(field: &str) -> String {
    let mut c = field.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// The CRD's checks of an `Exact` or `PathPrefix` value.
fn check_path(v: &str) -> Result<(), &'static str> {
    if !v.starts_with('/') {
        return Err("must start with `/`");
    }
    if v.contains("//") {
        return Err("must not contain `//`");
    }
    if v.contains("/./") || v.ends_with("/.") {
        return Err("must not contain a `.` segment");
    }
    if v.contains("/../") || v.ends_with("/..") {
        return Err("must not contain a `..` segment");
    }
    if v.contains("%2f") || v.contains("%2F") {
        return Err("must not contain an encoded `/` (`%2F`)");
    }
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |k: usize| bytes.get(k).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err("has a `%` not followed by two hex digits");
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&b)) {
            return Err("may hold only letters, digits, `-/._~!$&'()*+,;=:@` and %-escapes");
        }
        i += 1;
    }
    Ok(())
}

/// Parses an RFC 3339 timestamp into (seconds, nanoseconds) since the Unix epoch, so
/// that timestamps written with different offsets or precisions compare correctly.
fn rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |at: usize, chars: &[u8]| b.get(at).is_some_and(|c| chars.contains(c));
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = b.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        let mut scale = 100_000_000u32;
        for &d in digits.iter().take(9) {
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
        }
    }
    let offset = match b.get(i..)? {
        b"Z" | b"z" => 0,
        rest if rest.len() == 6 && (rest[0] == b'+' || rest[0] == b'-') && rest[3] == b':' => {
            let h = num(i + 1, 2)?;
            let m = num(i + 4, 2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if rest[0] == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(rfc3339("1970-01-01T01:00:00+01:00"), Some((0, 0)));
        assert_eq!(
            rfc3339("2024-03-01T00:00:00.5Z"),
            Some((1_709_251_200, 500_000_000))
        );
        assert!(rfc3339("2024-03-01T00:00:00.5Z") > rfc3339("2024-03-01T00:00:00Z"));
        for bad in [
            "",
            "2024-13-01T00:00:00Z",
            "2024-03-01",
            "2024-03-01T00:00:00",
            "x",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths() {
        assert!(check_path("/a/b%20c").is_ok());
        for bad in [
            "a", "//", "/a/../b", "/a/.", "/%2f", "/a#b", "/a%zz", "/a b",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
