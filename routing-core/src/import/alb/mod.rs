//! AWS ELBv2 listener rules (`aws elbv2 describe-rules --listener-arn …` JSON) → one
//! native route per document.
//!
//! A document is recognised by its top-level `Rules` key (`NextMarker` is the only
//! other key allowed). Its rules become one route with `precedence: first_match` and
//! no hostnames, named `LOAD-BALANCER/LISTENER-ID` after the rule ARNs (`alb-rules`
//! when no ARN names the listener). Rules are ordered by numeric `Priority`, the
//! default rule last; native rules are named `priority-N` and `default`.
//!
//! | ALB | native |
//! |---|---|
//! | `path-pattern` (`PathPatternConfig.Values` or `Values`; case-sensitive, `*` = 0+ characters, `?` = one) | `path.exact` without wildcards, `path.starts_with` for a single trailing `*`, else an anchored `path.regex` |
//! | `host-header` (`HostHeaderConfig.Values` or `Values`; case-insensitive, wildcards) | `authority` `exact`, `prefix` (single trailing `*`) or `regex`, lowercased |
//! | `http-header` (`HttpHeaderConfig`; value case-insensitive, wildcards) | a `headers` entry: `exact` when the value has no letters and no wildcard, else one `regex` ORing the values, letters as `[aA]` |
//! | `query-string` (`QueryStringConfig.Values[{Key, Value}]`, `\*`/`\?` escapes) | a `query` entry per pair (`exact` or case-insensitive `regex`) |
//! | `http-request-method` | `method` |
//! | values of one condition (ORed), conditions (ANDed) | the cross product as `matches` (at most 100) |
//! | `forward` (`TargetGroupArn` or `ForwardConfig.TargetGroups` with `Weight` 0..=999) | `backends` with the same weights; target groups resolve through the backend map by ARN, then by name (default name: the ARN's `targetgroup/NAME/…`) |
//! | `ForwardConfig.TargetGroupStickinessConfig` enabled | `session_persistence.cookie` `AWSALBTG` with `ttl` = `DurationSeconds`; ALB keeps a sticky session on a target group set to weight 0 (cookies beat weights): with [`ImportOptions::alb_cookie_beats_weight`](super::ImportOptions::alb_cookie_beats_weight) the cookie gets `keep_at_zero_weight` (the same), else the library's semantics apply (weight 0 drains at once) with a warning on each sticky forward to several groups |
//! | `fixed-response` | `fixed_response` (`status`, `body`, `content-type` header) |
//! | `redirect` (`#{protocol}`, `#{host}`, `#{port}`, `/#{path}`, `#{query}` keep the request's) | `redirect` `scheme` (lowercased), `hostname`, `port`, `path.full`, `status` 301/302 |
//! | `Transforms`: `host-header-rewrite` of the whole host (`^.*$`) to a literal | `filters.url_rewrite.hostname` |
//!
//! Fail closed: `authenticate-oidc`, `authenticate-cognito` and `jwt-validation`
//! actions cannot be applied in-process (requests would reach the backend
//! unauthenticated), so they are errors
//! ([`ImportErrorKind::Lossy`]) unless
//! [`ImportOptions::allow_lossy`](super::ImportOptions::allow_lossy) is set, which
//! imports them with a warning.
//!
//! Warnings: `NextMarker` (the listing is one page: rules may be missing);
//! `query-string` conditions (parameter names compared case-sensitively and only a
//! parameter's first occurrence tested, where ALB ignores case and tests every
//! occurrence); every listener after the first in one import (their rules are only
//! reached when no earlier listener's rule matches).
//!
//! Errors: `source-ip` conditions, `RegexValues`, a query pair without `Key`, a key
//! with wildcards, `%` or `+` in a query key or value, redirect `Host`/`Path` mixing
//! text and placeholders, a redirect `Query` other than `#{query}`, a literal
//! `Protocol` with `Port` `#{port}`, other transforms, unknown condition fields and
//! action types (all `Unsupported`); duplicate or non-numeric priorities, malformed
//! target group ARNs, out-of-range weights, all-zero weights, a default rule with
//! conditions, a routing action that is not last, and more than 100 native matches for
//! one rule (`Invalid`); unknown fields anywhere (`Parse`).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{to_config_duration, Doc, ImportErrorKind, Location, Out, RouteOrigin};
use crate::config::{
    CookieConfig, FiltersConfig, FixedResponseConfig, HeaderMatchConfig, MatchConfig,
    PathMatchConfig, PathModifierConfig, QueryMatchConfig, RedirectConfig, RouteConfig, RuleConfig,
    RulePrecedence, SessionPersistenceConfig, StringMatchConfig, UrlRewriteConfig,
    WeightedBackendConfig,
};

mod actions;
mod patterns;
mod spec;
use actions::*;
use patterns::*;
use spec::*;

/// Most native matches one ALB rule may expand to (ALB allows 5 condition values per
/// rule, so real rules stay far below).
const MAX_MATCHES: usize = 100;

/// The cookie ALB's target group stickiness sets.
const STICKY_COOKIE: &str = "AWSALBTG";

/// Longest target group stickiness ALB allows, in seconds (7 days).
const MAX_STICKY_SECONDS: i64 = 604_800;

/// Imports every `describe-rules` document: one `first_match` route per document.
pub(crate) fn import(docs: &[&Doc<'_>], out: &mut Out<'_>) {
    let mut first: Option<String> = None;
    for doc in docs {
        let name = listener_name(doc);
        let resource = format!("ALB listener {name}");
        match &first {
            None => first = Some(name.clone()),
            Some(f) => out.warn(
                doc.loc(Some(&resource), "Rules"),
                format!(
                    "several ALB listeners are imported into one table: this listener's rules are tried only \
                     when no rule of `{f}` (or of any other earlier listener) matches, and an earlier default \
                     rule matches every request; import each listener into its own table to keep them apart"
                ),
            ),
        }
        listener(doc, name, &resource, out);
    }
}

/// Where messages about one document point.
struct Ctx<'d, 'a> {
    doc: &'d Doc<'a>,
    resource: &'d str,
}

impl Ctx<'_, '_> {
    fn at(&self, path: &str) -> Location {
        self.doc.loc(Some(self.resource), path)
    }

    fn invalid(&self, out: &mut Out<'_>, path: &str, msg: impl Into<String>) {
        out.error(self.at(path), ImportErrorKind::Invalid(msg.into()));
    }

    fn unsupported(&self, out: &mut Out<'_>, path: &str, msg: impl Into<String>) {
        out.error(self.at(path), ImportErrorKind::Unsupported(msg.into()));
    }
}

/// `LOAD-BALANCER/LISTENER-ID` from the first rule ARN that has one, else `alb-rules`.
fn listener_name(doc: &Doc<'_>) -> String {
    doc.value
        .get("Rules")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("RuleArn").and_then(Value::as_str))
        .find_map(listener_of)
        .map_or_else(
            || "alb-rules".to_owned(),
            |(lb, listener, _)| format!("{lb}/{listener}"),
        )
}

/// The load balancer name, the listener id and the whole listener key
/// (`app/LB/LB-ID/LISTENER-ID`) of a rule ARN
/// (`arn:PARTITION:elasticloadbalancing:REGION:ACCOUNT:listener-rule/app/LB/LB-ID/LISTENER-ID/RULE-ID`).
fn listener_of(arn: &str) -> Option<(&str, &str, String)> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [prefix, _, service, _, _, resource] = parts.as_slice() else {
        return None;
    };
    if *prefix != "arn" || *service != "elasticloadbalancing" {
        return None;
    }
    let segs: Vec<&str> = resource.split('/').collect();
    let [kind, lb_type, lb, lb_id, listener, rule] = segs.as_slice() else {
        return None;
    };
    let ok = *kind == "listener-rule"
        && [lb_type, lb, lb_id, listener, rule]
            .iter()
            .all(|s| !s.is_empty());
    ok.then(|| (*lb, *listener, format!("{lb_type}/{lb}/{lb_id}/{listener}")))
}

/// The target group name of a target group ARN
/// (`arn:PARTITION:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`).
fn target_group_name(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return None;
    };
    if *prefix != "arn"
        || *service != "elasticloadbalancing"
        || partition.is_empty()
        || region.is_empty()
        || account.is_empty()
    {
        return None;
    }
    let segs: Vec<&str> = resource.split('/').collect();
    match segs.as_slice() {
        ["targetgroup", name, id] if !name.is_empty() && !id.is_empty() => Some(name),
        _ => None,
    }
}

/// One `describe-rules` document → one route.
fn listener(doc: &Doc<'_>, name: String, resource: &str, out: &mut Out<'_>) {
    let cx = Ctx { doc, resource };
    let listing: Listing = match doc.parse(Some(resource)) {
        Ok(l) => l,
        Err(e) => {
            out.push_error(e);
            return;
        }
    };
    if listing.next_marker.is_some() {
        out.warn(
            cx.at("NextMarker"),
            "the listing is one page of several (`NextMarker` is set): rules on other pages are missing \
             from the import; list them all (the AWS CLI does unless `--max-items` or `--no-paginate` is given)",
        );
    }

    // Order: numeric priority, the default rule last.
    let mut order: Vec<(u32, usize)> = Vec::new();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut default: Option<usize> = None;
    let mut listener_key: Option<(String, usize)> = None;
    for (i, r) in listing.rules.iter().enumerate() {
        let p = format!("Rules[{i}]");
        if let Some(key) = r.rule_arn.as_deref().and_then(listener_of).map(|l| l.2) {
            match &listener_key {
                Some((k, first)) if *k != key => cx.invalid(
                    out,
                    &format!("{p}.RuleArn"),
                    format!(
                        "this rule belongs to listener `{key}`, `Rules[{first}]` to `{k}`: one `describe-rules` \
                         output lists one listener's rules"
                    ),
                ),
                Some(_) => {}
                None => listener_key = Some((key, i)),
            }
        }
        let prio = r.priority.as_deref();
        let is_default = r.is_default == Some(true) || prio == Some("default");
        if is_default {
            if r.is_default == Some(false) || prio.is_some_and(|p| p != "default") {
                cx.invalid(
                    out,
                    &format!("{p}.Priority"),
                    "`IsDefault` and `Priority` disagree: the default rule has priority `default`",
                );
                continue;
            }
            if let Some(d) = default {
                cx.invalid(
                    out,
                    &format!("{p}.IsDefault"),
                    format!("a second default rule (the first is `Rules[{d}]`)"),
                );
                continue;
            }
            default = Some(i);
            continue;
        }
        let Some(text) = prio else {
            cx.invalid(
                out,
                &p,
                "a rule other than the default rule needs a `Priority`",
            );
            continue;
        };
        let n = text
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse::<u32>().ok())
            .flatten()
            .filter(|n| (1..=50_000).contains(n));
        let Some(n) = n else {
            cx.invalid(
                out,
                &format!("{p}.Priority"),
                format!("priority `{text}` is not a number from 1 to 50000 (or `default`)"),
            );
            continue;
        };
        if let Some(first) = seen.get(&n) {
            cx.invalid(
                out,
                &format!("{p}.Priority"),
                format!(
                    "priority {n} is also the priority of `Rules[{first}]`: priorities are unique"
                ),
            );
            continue;
        }
        seen.insert(n, i);
        order.push((n, i));
    }
    order.sort_unstable();
    let order = order
        .into_iter()
        .map(|(n, i)| (format!("priority-{n}"), i))
        .chain(default.map(|i| ("default".to_owned(), i)));

    let mut rules = Vec::new();
    let mut origins = Vec::new();
    for (rule_name, i) in order {
        let Some(r) = listing.rules.get(i) else {
            continue;
        };
        if let Some(rc) = rule(&cx, i, r, rule_name, Some(i) == default, out) {
            rules.push(rc);
            origins.push(cx.at(&format!("Rules[{i}]")));
        }
    }
    out.route(
        RouteConfig {
            name,
            hostnames: Vec::new(),
            rules,
            precedence: Some(RulePrecedence::FirstMatch),
        },
        RouteOrigin {
            at: cx.at("Rules"),
            rules: origins,
        },
    );
}

/// One listener rule → one native rule (`None` after an error).
fn rule(
    cx: &Ctx<'_, '_>,
    i: usize,
    r: &Rule,
    name: String,
    is_default: bool,
    out: &mut Out<'_>,
) -> Option<RuleConfig> {
    let p = format!("Rules[{i}]");
    let before = out.error_count();
    if is_default && !r.conditions.is_empty() {
        cx.invalid(
            out,
            &format!("{p}.Conditions"),
            "the default rule cannot have conditions",
        );
    }
    if is_default && !r.transforms.is_empty() {
        cx.invalid(
            out,
            &format!("{p}.Transforms"),
            "the default rule cannot have transforms",
        );
    }
    if !is_default && r.conditions.is_empty() {
        cx.invalid(
            out,
            &format!("{p}.Conditions"),
            "a rule other than the default rule needs at least one condition",
        );
    }
    let matches = conditions(cx, &p, &r.conditions, out);
    let rewrite = transforms(cx, &p, &r.transforms, out);
    let mut rc = RuleConfig {
        name: Some(name),
        matches,
        ..RuleConfig::default()
    };
    let forwards = actions(cx, &p, &r.actions, &mut rc, out);
    if forwards {
        if let Some(rw) = rewrite {
            rc.filters = Some(FiltersConfig {
                url_rewrite: Some(rw),
                ..FiltersConfig::default()
            });
        }
    }
    (out.error_count() == before).then_some(rc)
}

/// One alternative of one condition.
enum Alt {
    Path(PathMatchConfig),
    Authority(StringMatchConfig),
    Method(String),
    Header(HeaderMatchConfig),
    Query(QueryMatchConfig),
}

/// The rule's conditions → native matches: each condition's values are alternatives
/// (ORed), conditions are ANDed, so the matches are their cross product.
fn conditions(
    cx: &Ctx<'_, '_>,
    p: &str,
    conds: &[Condition],
    out: &mut Out<'_>,
) -> Vec<MatchConfig> {
    let mut groups: Vec<Vec<Alt>> = Vec::new();
    let mut singles: HashMap<&str, usize> = HashMap::new();
    for (k, c) in conds.iter().enumerate() {
        let cp = format!("{p}.Conditions[{k}]");
        if let Some(alts) = condition(cx, &cp, c, &mut singles, k, out) {
            groups.push(alts);
        }
    }
    if groups.is_empty() {
        return Vec::new();
    }
    let total = groups
        .iter()
        .fold(1usize, |acc, g| acc.saturating_mul(g.len()));
    if total > MAX_MATCHES {
        cx.invalid(
            out,
            &format!("{p}.Conditions"),
            format!(
                "the conditions' values combine into {total} alternatives, more than {MAX_MATCHES} \
                 (ALB allows 5 condition values per rule)"
            ),
        );
        return Vec::new();
    }
    let mut matches = vec![MatchConfig::default()];
    for g in &groups {
        // A single alternative is added in place: no clones, linear in the conditions.
        if let [alt] = g.as_slice() {
            for m in &mut matches {
                apply(m, alt);
            }
            continue;
        }
        let mut next = Vec::with_capacity(matches.len().saturating_mul(g.len()));
        for m in &matches {
            for alt in g {
                let mut m = m.clone();
                apply(&mut m, alt);
                next.push(m);
            }
        }
        matches = next;
    }
    matches
}

/// Adds one alternative's condition to a match.
fn apply(m: &mut MatchConfig, alt: &Alt) {
    match alt {
        Alt::Path(pm) => m.path = Some(pm.clone()),
        Alt::Authority(a) => m.authority = Some(a.clone()),
        Alt::Method(x) => m.method = Some(x.clone()),
        Alt::Header(h) => m.headers.push(h.clone()),
        Alt::Query(q) => m.query.push(q.clone()),
    }
}

/// The fields a condition may carry, by `Field`.
const CONFIG_FIELDS: [(&str, &str); 6] = [
    ("host-header", "HostHeaderConfig"),
    ("path-pattern", "PathPatternConfig"),
    ("http-header", "HttpHeaderConfig"),
    ("query-string", "QueryStringConfig"),
    ("http-request-method", "HttpRequestMethodConfig"),
    ("source-ip", "SourceIpConfig"),
];

/// One condition → its alternatives (`None` after an error).
fn condition<'c>(
    cx: &Ctx<'_, '_>,
    cp: &str,
    c: &'c Condition,
    singles: &mut HashMap<&'c str, usize>,
    k: usize,
    out: &mut Out<'_>,
) -> Option<Vec<Alt>> {
    let Some(field) = c.field.as_deref() else {
        cx.invalid(out, cp, "a condition needs a `Field`");
        return None;
    };
    // Configurations meant for another field.
    let present = [
        c.host_header_config.is_some(),
        c.path_pattern_config.is_some(),
        c.http_header_config.is_some(),
        c.query_string_config.is_some(),
        c.http_request_method_config.is_some(),
        c.source_ip_config.is_some(),
    ];
    let mut stray = false;
    for ((f, key), here) in CONFIG_FIELDS.iter().zip(present) {
        if here && *f != field {
            cx.invalid(
                out,
                &format!("{cp}.{key}"),
                format!("`{key}` belongs to `{f}` conditions, this one is `{field}`"),
            );
            stray = true;
        }
    }
    if c.values.is_some() && !matches!(field, "host-header" | "path-pattern") {
        cx.invalid(
            out,
            &format!("{cp}.Values"),
            "`Values` is only for `host-header` and `path-pattern` conditions",
        );
        stray = true;
    }
    if stray {
        return None;
    }
    if matches!(
        field,
        "host-header" | "path-pattern" | "http-request-method" | "source-ip"
    ) {
        if let Some(first) = singles.get(field) {
            cx.invalid(
                out,
                cp,
                format!(
                    "a second `{field}` condition in one rule (the first is `Conditions[{first}]`)"
                ),
            );
            return None;
        }
        singles.insert(field_key(field), k);
    }
    let regex_values = |cfg: Option<&Vec<String>>, path: String, out: &mut Out<'_>| {
        if cfg.is_some_and(|v| !v.is_empty()) {
            cx.unsupported(
                out,
                &path,
                "ALB regular-expression conditions (`RegexValues`): their dialect, anchoring and case \
                 rules cannot be reproduced exactly; use wildcard `Values`",
            );
            true
        } else {
            false
        }
    };
    if regex_values(c.regex_values.as_ref(), format!("{cp}.RegexValues"), out) {
        return None;
    }
    match field {
        "path-pattern" | "host-header" => {
            let (cfg, key) = if field == "path-pattern" {
                (c.path_pattern_config.as_ref(), "PathPatternConfig")
            } else {
                (c.host_header_config.as_ref(), "HostHeaderConfig")
            };
            if regex_values(
                cfg.and_then(|x| x.regex_values.as_ref()),
                format!("{cp}.{key}.RegexValues"),
                out,
            ) {
                return None;
            }
            let values = pattern_values(
                cx,
                cp,
                key,
                c.values.as_ref(),
                cfg.and_then(|x| x.values.as_ref()),
                out,
            )?;
            Some(
                values
                    .iter()
                    .map(|v| {
                        if field == "path-pattern" {
                            Alt::Path(path_glob(v))
                        } else {
                            Alt::Authority(host_glob(v))
                        }
                    })
                    .collect(),
            )
        }
        "http-header" => {
            let hp = format!("{cp}.HttpHeaderConfig");
            let Some(h) = &c.http_header_config else {
                cx.invalid(
                    out,
                    &hp,
                    "an `http-header` condition needs `HttpHeaderConfig`",
                );
                return None;
            };
            if regex_values(h.regex_values.as_ref(), format!("{hp}.RegexValues"), out) {
                return None;
            }
            let Some(name) = h.http_header_name.as_deref().filter(|n| !n.is_empty()) else {
                cx.invalid(out, &format!("{hp}.HttpHeaderName"), "missing header name");
                return None;
            };
            let values = non_empty(cx, h.values.as_deref(), &format!("{hp}.Values"), out)?;
            Some(vec![Alt::Header(header_match(name, values))])
        }
        "query-string" => {
            let qp = format!("{cp}.QueryStringConfig");
            let Some(q) = &c.query_string_config else {
                cx.invalid(
                    out,
                    &qp,
                    "a `query-string` condition needs `QueryStringConfig`",
                );
                return None;
            };
            if q.values.is_empty() {
                cx.invalid(
                    out,
                    &format!("{qp}.Values"),
                    "a condition needs at least one value",
                );
                return None;
            }
            let before = out.error_count();
            let alts: Vec<Alt> = q
                .values
                .iter()
                .enumerate()
                .filter_map(|(j, pair)| query_match(cx, &format!("{qp}.Values[{j}]"), pair, out))
                .map(Alt::Query)
                .collect();
            if out.error_count() != before {
                return None;
            }
            out.warn(
                cx.at(&qp),
                "query parameter names are compared case-sensitively here and only a parameter's first \
                 occurrence is tested, where ALB ignores case and tests every occurrence: requests like \
                 `?VERSION=beta` or `?v=a&v=beta` may route differently",
            );
            Some(alts)
        }
        "http-request-method" => {
            let mp = format!("{cp}.HttpRequestMethodConfig");
            let Some(m) = &c.http_request_method_config else {
                cx.invalid(
                    out,
                    &mp,
                    "an `http-request-method` condition needs `HttpRequestMethodConfig`",
                );
                return None;
            };
            let values = non_empty(cx, Some(&m.values), &format!("{mp}.Values"), out)?;
            Some(values.iter().map(|v| Alt::Method(v.clone())).collect())
        }
        "source-ip" => {
            cx.unsupported(
                out,
                cp,
                "`source-ip` conditions: the client address is not matched in-process, and dropping the \
                 condition would send every client to this rule",
            );
            None
        }
        other => {
            cx.unsupported(
                out,
                &format!("{cp}.Field"),
                format!("condition field `{other}` (known: host-header, path-pattern, http-header, query-string, http-request-method, source-ip)"),
            );
            None
        }
    }
}

/// `Transforms` → a native URL rewrite, when exactly expressible.
fn transforms(
    cx: &Ctx<'_, '_>,
    p: &str,
    list: &[Transform],
    out: &mut Out<'_>,
) -> Option<UrlRewriteConfig> {
    let mut rw: Option<UrlRewriteConfig> = None;
    for (k, t) in list.iter().enumerate() {
        let tp = format!("{p}.Transforms[{k}]");
        let whole_host = (t.kind == "host-header-rewrite" && t.url_rewrite_config.is_none())
            .then_some(t.host_header_rewrite_config.as_ref())
            .flatten()
            .and_then(|c| match c.rewrites.as_slice() {
                [one]
                    if matches!(one.regex.as_str(), "^.*$" | "^(.*)$")
                        && !one.replace.contains('$') =>
                {
                    Some(one.replace.clone())
                }
                _ => None,
            });
        match whole_host {
            Some(host) if rw.is_none() => {
                rw = Some(UrlRewriteConfig {
                    hostname: Some(host),
                    path: None,
                });
            }
            _ => cx.unsupported(
                out,
                &tp,
                format!(
                    "`{}` transform: ALB regex rewrites are not expressible natively (only a single \
                     `host-header-rewrite` of the whole host, `^.*$`, to a literal name is)",
                    t.kind
                ),
            ),
        }
    }
    rw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert_eq!(path_glob("/api/cart").exact.as_deref(), Some("/api/cart"));
        assert_eq!(path_glob("/api/*").starts_with.as_deref(), Some("/api/"));
        assert_eq!(path_glob("/*").starts_with.as_deref(), Some("/"));
        assert_eq!(path_glob("*").regex.as_deref(), Some("(?s).*"));
        assert_eq!(path_glob("/v?/a.b").regex.as_deref(), Some("(?s)/v./a\\.b"));
        assert_eq!(
            host_glob("*.Example.com").regex.as_deref(),
            Some("(?s).*\\.example\\.com")
        );
        assert_eq!(
            host_glob("API.example.com").exact.as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host_glob("api.*").prefix.as_deref(), Some("api."));
        let h = header_match("x", &["Mobile*".into(), "1?".into()]);
        assert_eq!(
            h.regex.as_deref(),
            Some("(?s)(?:[mM][oO][bB][iI][lL][eE].*|1.)")
        );
        assert_eq!(
            header_match("x", &["42".into()]).exact.as_deref(),
            Some("42")
        );
        assert_eq!(
            tokens("a\\*b\\c", true),
            [
                Tok::Lit('a'),
                Tok::Lit('*'),
                Tok::Lit('b'),
                Tok::Lit('\\'),
                Tok::Lit('c')
            ]
        );
    }

    #[test]
    fn arns() {
        let tg =
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/blue/73e2d6bc24d8a067";
        assert_eq!(target_group_name(tg), Some("blue"));
        for bad in [
            "blue",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/x/1",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/blue",
            "arn:aws:s3:eu-west-1:1:targetgroup/blue/1",
            "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup//1",
        ] {
            assert_eq!(target_group_name(bad), None, "{bad}");
        }
        let rule = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
        let (lb, l, key) = listener_of(rule).unwrap_or_default();
        assert_eq!((lb, l), ("shop", "f2f7dc8efc522ab2"));
        assert_eq!(key, "app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2");
    }
}
