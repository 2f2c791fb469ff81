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
//! | `RequestMirror` (`percent`, or `fraction` → percent; neither = 100) | `mirror`, and `mirrors` for the second and later ones |
//! | `CORS` {`allowOrigins`, `allowMethods`, `allowHeaders`, `exposeHeaders`, `allowCredentials`, `maxAge` (default 5)} | `filters.cors` (preflights answered by the layer) |
//! | `timeouts.request` / `timeouts.backendRequest` (`0s` = none) | `timeouts.request` / `timeouts.per_try` |
//! | `retry` {`codes`, `attempts` (default 1, 0 = none), `backoff`} | `retry` {`attempts`, `on: [connect-failure, reset, retriable-status-codes]` (disconnects, resets and per-try timeouts, as the API says retries SHOULD; a non-idempotent request only after a connect failure), `status_codes`, `backoff`} |
//! | `sessionPersistence` `Cookie` (default) / `Header` | `session_persistence.cookie` (name `sessionName` or `gw-session`; `ttl` = `absoluteTimeout` when `Permanent`) / `.header` |
//! | `backendRefs[].filters`: `RequestHeaderModifier`, `ResponseHeaderModifier`, `URLRewrite`, `RequestRedirect` | `backends[].filters` (applied only to the requests that backend is picked for) |
//!
//! `GRPCRoute` (`v1`, `v1alpha2`) is imported as the `HTTPRoute` it amounts to:
//! method matches become path matches on `/service/method` (see the `grpc` module's
//! table: `Exact` service and method → `path.exact`, service only → `path.prefix`,
//! method only or `RegularExpression` → `path.regex`), and its parents, hostnames,
//! header matches, filters (`RequestHeaderModifier`, `ResponseHeaderModifier`,
//! `RequestMirror`; others `Invalid`), weighted `backendRefs` and session
//! persistence go through the `HTTPRoute` conversion.
//!
//! With a [`BackendMap`](super::BackendMap), a `backendRef` is looked up as
//! `namespace/name:port`, `namespace/name`, then (for a reference in the route's own
//! namespace only) `name:port` and `name`.
//!
//! **Attachment** (`parentRefs`). When the input carries `Gateway` documents, a route
//! is served only through the listeners its `parentRefs` select (`sectionName`,
//! `port`) on the Gateways this router stands for
//! ([`ImportOptions::gateways`](super::ImportOptions::gateways), `namespace/name` or
//! `namespace/name/section`, the CLI's `--gateway`; none = every Gateway in the
//! input), if the listener's protocol is `HTTP`/`HTTPS`, its `allowedRoutes.kinds`
//! admit `HTTPRoute` and its `allowedRoutes.namespaces` (`Same` by default, `All`,
//! `Selector` with `matchLabels` over the `Namespace` documents) admit the route's
//! namespace. The route's hostnames become the intersection of each listener
//! hostname with its own (the spec's rules: exact names must be equal, `*.` matches
//! any name with that suffix, of two wildcards the narrower wins; no hostname on
//! either side takes the other's; none on both: every host). A route that no
//! listener accepts is left out with a warning. Routes attached to more than one
//! Gateway, or to listeners on more than one port, are a
//! [`Lossy`](super::ImportErrorKind::Lossy) error: the layer cannot tell which
//! address or port a request came to. A `parentRef` of kind `Service` (GAMMA)
//! binds the route to that Service's hosts: `name`, `name.ns`, `name.ns.svc`,
//! `name.ns.svc.cluster.local`. Without `Gateway` documents, a route serves every
//! request of its hostnames (a warning), or, when `gateways` names Gateways, only if
//! a `parentRef` names one of them.
//!
//! **Invalid `backendRefs`** answer 500, as the spec requires, while the rest of
//! the route stays live: a reference to another namespace that no `ReferenceGrant`
//! there allows (from `HTTPRoute`s of the route's namespace, to that `Service` or
//! every one), a kind other than core `Service` (a `multicluster.x-k8s.io`
//! `ServiceImport` is mapped by name, with a warning), and, when the input carries
//! Gateways and Services (it describes the cluster), a `Service` not among them. A
//! rule whose every reference is invalid becomes `fixed_response: {status: 500}`
//! (with a warning per reference); invalid references next to valid ones become one
//! backend slot of their summed weight, named
//! [`UNRESOLVED_BACKEND`](super::UNRESOLVED_BACKEND) and answered by its
//! `fixed_response: {status: 500}` filter, so exactly their share of the requests
//! fails. An invalid mirror `backendRef` drops the mirror, with a warning.
//!
//! **Warnings** (understood, not applied in-process): `parentRefs` without Gateways
//! in the input, `useDefaultGateways`; routes left out by their `parentRefs`;
//! invalid `backendRefs` (answered 500); `ServiceImport` backends;
//! `backendRefs` next to a `RequestRedirect` (the redirect answers);
//! `sessionPersistence.idleTimeout`, `absoluteTimeout` of a session cookie, `Header`
//! persistence (pinned by the value clients send); repeated header / query match
//! names; retry, mirror and session persistence on a rule that does not forward; a
//! rule whose every backend weighs 0 (answered 503 here).
//!
//! **Errors**: unknown fields and values (`Parse`); `ExtensionRef` and
//! `ExternalAuth` filters, `RequestMirror` and `CORS` on a `backendRef`, one backend
//! referenced twice in a rule with different filters,
//! more than 10 retry attempts, namespace selectors with `matchExpressions`
//! (`Unsupported`); routes on several
//! Gateways or listener ports (`Lossy`); what the CRD's own validation
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
    BackendFiltersConfig, CookieConfig, FiltersConfig, FixedResponseConfig, HeaderMatchConfig,
    HeaderModifierConfig, HeaderValueConfig, MatchConfig, MirrorConfig, PathMatchConfig,
    PathModifierConfig, QueryMatchConfig, RedirectConfig, RetryConfig, RetryOn, RouteConfig,
    RuleConfig, SessionPersistenceConfig, TimeoutsConfig, UrlRewriteConfig, WeightedBackendConfig,
};
use crate::ConfigDuration;

mod filters;
mod grpc;
mod parents;
mod spec;
use parents::{Attach, Parents};
use spec::*;

/// Session cookie (or header) name when `sessionName` is not given.
const DEFAULT_SESSION_NAME: &str = "gw-session";

// ---------------------------------------------------------------------------------
// The source model (Gateway API v1.3 standard + experimental channel).
// ---------------------------------------------------------------------------------

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

/// Imports every `HTTPRoute` document, merged by the spec's precedence rules;
/// `around` are the `Gateway`, `ReferenceGrant`, `Service` and `Namespace` documents.
pub(crate) fn import(docs: &[&Doc<'_>], around: &[&Doc<'_>], out: &mut Out<'_>) {
    let mut parents = Parents::read(around, out);
    let mut converted: Vec<Converted> = Vec::new();
    let mut seen: BTreeMap<String, Location> = BTreeMap::new();
    for doc in docs {
        let ns = doc.namespace(out).to_owned();
        let grpc = doc.kind == super::SourceKind::GrpcRoute;
        let kind = if grpc { "GRPCRoute" } else { "HTTPRoute" };
        let resource = format!("{kind} {ns}/{}", doc.name());
        let parsed = if grpc {
            doc.parse::<grpc::GrpcRoute>(Some(&resource))
                .map(|g| grpc::convert(g, doc, &resource, out))
        } else {
            doc.parse::<HttpRoute>(Some(&resource)).map(Some)
        };
        let route: HttpRoute = match parsed {
            Ok(Some(r)) => r,
            Ok(None) => continue,
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
            parents: &mut parents,
        };
        let name = route.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            cx.invalid("metadata.name", format!("an {kind} needs a name"));
            continue;
        }
        let full = format!("{ns}/{name}");
        if let Some(first) = seen.get(&format!("{kind} {full}")) {
            let msg = format!("{kind} `{full}` is defined twice (first at {first})");
            cx.invalid("metadata.name", msg);
            continue;
        }
        seen.insert(format!("{kind} {full}"), cx.at("metadata.name"));
        let before = cx.out.error_count();
        if let Some(c) = cx.route(&route, full) {
            if cx.out.error_count() == before {
                converted.push(c);
            }
        }
    }
    if let Some(at) = parents.first_attached.clone() {
        if parents.attached_gateways.len() > 1 {
            let list = parents
                .attached_gateways
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("`, `");
            out.lossy(at.clone(), format!("routes attach to several Gateways (`{list}`): one layer would serve each Gateway's routes to requests sent to the others; choose one with `gateways` (`--gateway NS/NAME[/section]`)"));
        }
        if parents.ports.len() > 1 {
            let list = parents
                .ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            out.lossy(at, format!("routes attach to listeners on ports {list}: the layer does not see the port a request came to; choose listeners of one port with `gateways` (`--gateway NS/NAME/section`)"));
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
    /// Gateways, grants and Services around the routes.
    parents: &'a mut Parents,
}

impl Cx<'_, '_, '_> {
    fn at(&self, path: &str) -> Location {
        self.doc.loc(Some(self.resource), path)
    }

    fn warn(&mut self, path: &str, msg: impl Into<String>) {
        let at = self.at(path);
        self.out.warn(at, msg);
    }

    fn warn_reason(&mut self, path: &str, reason: &'static str, msg: impl Into<String>) {
        let at = self.at(path);
        self.out.warn_reason(at, reason, msg);
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
        if let Some(u) = &spec.use_default_gateways {
            self.warn(
                "spec.useDefaultGateways",
                format!("`useDefaultGateways: {u}` (attachment to default Gateways) is not applied in-process: only `parentRefs` attach the route"),
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
        // Attachment: to the listeners of the Gateways in the input, to Services
        // (GAMMA), or (no Gateway in the input) by name only.
        let hostnames = self.attachment(spec, hostnames)?;
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

    /// The hostnames the route serves through its `parentRefs`; `None` (with a
    /// warning) when it is left out.
    fn attachment(&mut self, spec: &Spec, hostnames: Vec<String>) -> Option<Vec<String>> {
        let service_parent = spec
            .parent_refs
            .iter()
            .any(|p| p.kind.as_deref() == Some("Service"));
        if self.parents.has_gateways() || service_parent {
            let kind = self.resource.split(' ').next().unwrap_or("HTTPRoute");
            return match self
                .parents
                .attach(kind, self.ns, &spec.parent_refs, &hostnames)
            {
                Attach::Hosts(h) => {
                    if self.parents.first_attached.is_none() {
                        self.parents.first_attached = Some(self.at("spec.parentRefs"));
                    }
                    Some(h)
                }
                Attach::LeftOut(why) => {
                    self.warn("spec.parentRefs", format!("left out: {why}"));
                    None
                }
            };
        }
        let named: Vec<String> = spec
            .parent_refs
            .iter()
            .map(|p| format!("{}/{}", p.namespace.as_deref().unwrap_or(self.ns), p.name))
            .collect();
        let chosen = self.out.options.gateways.iter().any(|g| g != "mesh");
        if chosen && !named.iter().any(|n| self.parents.selects_name(n)) {
            self.warn(
                "spec.parentRefs",
                format!(
                    "left out: its parents (`{}`) are not among the chosen gateways",
                    named.join("`, `")
                ),
            );
            return None;
        }
        if !spec.parent_refs.is_empty() {
            self.warn(
                "spec.parentRefs",
                "no Gateway in the input: attachment to Gateways (listener hostnames, ports, allowedRoutes) is not applied; the route serves every request the layer sees for its hostnames",
            );
        }
        Some(hostnames)
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
        let mut mirrors: Vec<MirrorConfig> = Vec::new();
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
                        filters.url_rewrite =
                            self.url_rewrite(u, &format!("{fk}.urlRewrite"), single_prefix);
                    }
                }
                FilterType::RequestMirror => {
                    // Several mirrors are allowed (each gets its own copy).
                    if let Some(m) = &f.request_mirror {
                        mirrors.extend(self.mirror(m, &format!("{fk}.requestMirror")));
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
                    if let Some(c) = &f.cors {
                        filters.cors = self.cors(c, &format!("{fk}.cors"));
                    }
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
            let mut invalid: Vec<(String, (&'static str, String), i64)> = Vec::new();
            for (k, b) in r.backend_refs.iter().enumerate() {
                let bk = format!("{bp}[{k}]");
                let filters =
                    self.backend_ref_filters(&b.filters, &format!("{bk}.filters"), single_prefix);
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
                match self.backend(&target, &bk) {
                    Some(Ok(name)) => {
                        let weight = u64::try_from(weight).unwrap_or(0);
                        // The same backend twice: its shares add up (if both
                        // references filter alike).
                        match rc.backends.iter_mut().find(|wb| wb.name == name) {
                            Some(wb) if wb.filters == filters => {
                                wb.weight = wb.weight.saturating_add(weight);
                            }
                            Some(_) => self.unsupported(
                                &format!("{bk}.filters"),
                                format!("backend `{name}` is referenced twice with different filters: a rule names each backend once"),
                            ),
                            None => rc.backends.push(WeightedBackendConfig {
                                filters,
                                ..WeightedBackendConfig::new(name, weight)
                            }),
                        }
                    }
                    Some(Err(why)) => invalid.push((bk, why, weight)),
                    None => {}
                }
            }
            // Invalid references: "requests that would have been sent to [them]
            // MUST receive a 500 status code" (HTTPRoute reference, `backendRefs`).
            if !invalid.is_empty() {
                let live: i64 = r
                    .backend_refs
                    .iter()
                    .map(|b| b.weight.unwrap_or(1))
                    .sum::<i64>()
                    - invalid.iter().map(|(_, _, w)| *w).sum::<i64>();
                if rc.backends.is_empty() || live <= 0 {
                    for (bk, (reason, why), _) in &invalid {
                        self.warn_reason(
                            bk,
                            reason,
                            format!("invalid backendRef, its requests are answered 500: {why}"),
                        );
                    }
                    rc.backends.clear();
                    rc.fixed_response = Some(FixedResponseConfig {
                        status: 500,
                        body: None,
                        headers: BTreeMap::new(),
                    });
                } else {
                    // Their share answers 500: one backend slot, the invalid
                    // references' weights summed, whose filter answers 500.
                    for (bk, (reason, why), _) in &invalid {
                        self.warn_reason(
                            bk,
                            reason,
                            format!("invalid backendRef, its share of the requests is answered 500: {why}"),
                        );
                    }
                    let weight: i64 = invalid.iter().map(|(_, _, w)| *w).sum();
                    let name = self.out.unresolved_backend().to_owned();
                    rc.backends.push(WeightedBackendConfig {
                        filters: Some(BackendFiltersConfig {
                            fixed_response: Some(FixedResponseConfig {
                                status: 500,
                                body: None,
                                headers: BTreeMap::new(),
                            }),
                            ..BackendFiltersConfig::default()
                        }),
                        ..WeightedBackendConfig::new(name, u64::try_from(weight).unwrap_or(0))
                    });
                }
            }
            if rc.fixed_response.is_none()
                && !rc.backends.is_empty()
                && rc.backends.iter().all(|b| b.weight == 0)
            {
                self.warn(
                    &bp,
                    "every backendRef has weight 0: matching requests are answered 503 here",
                );
            }
        }
        let forwards = rc.redirect.is_none() && rc.fixed_response.is_none();

        // Policy that needs a forwarding rule.
        if !mirrors.is_empty() {
            if forwards {
                let mut all = mirrors.into_iter();
                rc.mirror = all.next();
                rc.mirrors = all.collect();
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
