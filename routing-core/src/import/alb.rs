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
//! | `ForwardConfig.TargetGroupStickinessConfig` enabled | `session_persistence.cookie` `AWSALBTG` with `ttl` = `DurationSeconds` |
//! | `fixed-response` | `fixed_response` (`status`, `body`, `content-type` header) |
//! | `redirect` (`#{protocol}`, `#{host}`, `#{port}`, `/#{path}`, `#{query}` keep the request's) | `redirect` `scheme` (lowercased), `hostname`, `port`, `path.full`, `status` 301/302 |
//! | `Transforms`: `host-header-rewrite` of the whole host (`^.*$`) to a literal | `filters.url_rewrite.hostname` |
//!
//! Warnings: `authenticate-oidc`, `authenticate-cognito` and `jwt-validation` actions
//! (authentication is not applied in-process: requests reach the backend
//! unauthenticated); `NextMarker` (the listing is one page: rules may be missing);
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

/// Most native matches one ALB rule may expand to (ALB allows 5 condition values per
/// rule, so real rules stay far below).
const MAX_MATCHES: usize = 100;

/// The cookie ALB's target group stickiness sets.
const STICKY_COOKIE: &str = "AWSALBTG";

/// Longest target group stickiness ALB allows, in seconds (7 days).
const MAX_STICKY_SECONDS: i64 = 604_800;

/// `describe-rules` output.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Listing {
    rules: Vec<Rule>,
    #[serde(default)]
    next_marker: Option<String>,
}

/// One listener rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Rule {
    #[serde(default)]
    rule_arn: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    is_default: Option<bool>,
    #[serde(default)]
    transforms: Vec<Transform>,
}

/// `RuleCondition`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Condition {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    regex_values: Option<Vec<String>>,
    #[serde(default)]
    host_header_config: Option<PatternConfig>,
    #[serde(default)]
    path_pattern_config: Option<PatternConfig>,
    #[serde(default)]
    http_header_config: Option<HttpHeaderConfig>,
    #[serde(default)]
    query_string_config: Option<QueryStringConfig>,
    #[serde(default)]
    http_request_method_config: Option<ValuesConfig>,
    #[serde(default)]
    source_ip_config: Option<ValuesConfig>,
}

/// `HostHeaderConditionConfig` / `PathPatternConditionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PatternConfig {
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    regex_values: Option<Vec<String>>,
}

/// `HttpHeaderConditionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct HttpHeaderConfig {
    #[serde(default)]
    http_header_name: Option<String>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    regex_values: Option<Vec<String>>,
}

/// `QueryStringConditionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct QueryStringConfig {
    #[serde(default)]
    values: Vec<QueryPair>,
}

/// `QueryStringKeyValuePair`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct QueryPair {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// `HttpRequestMethodConditionConfig` / `SourceIpConditionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ValuesConfig {
    #[serde(default)]
    values: Vec<String>,
}

/// `Action`. Authentication configurations are not interpreted (they are warned
/// about), so any content is accepted there.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Action {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    target_group_arn: Option<String>,
    #[serde(default)]
    authenticate_oidc_config: Option<Value>,
    #[serde(default)]
    authenticate_cognito_config: Option<Value>,
    #[serde(default)]
    jwt_validation_config: Option<Value>,
    #[serde(default)]
    order: Option<i64>,
    #[serde(default)]
    redirect_config: Option<Redirect>,
    #[serde(default)]
    fixed_response_config: Option<FixedResponse>,
    #[serde(default)]
    forward_config: Option<Forward>,
}

/// `RedirectActionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Redirect {
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    port: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    query: Option<String>,
    status_code: String,
}

/// `FixedResponseActionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct FixedResponse {
    #[serde(default)]
    message_body: Option<String>,
    status_code: String,
    #[serde(default)]
    content_type: Option<String>,
}

/// `ForwardActionConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Forward {
    #[serde(default)]
    target_groups: Vec<TargetGroupTuple>,
    #[serde(default)]
    target_group_stickiness_config: Option<Stickiness>,
}

/// `TargetGroupTuple`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct TargetGroupTuple {
    target_group_arn: String,
    #[serde(default)]
    weight: Option<i64>,
}

/// `TargetGroupStickinessConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Stickiness {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    duration_seconds: Option<i64>,
}

/// `RuleTransform`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Transform {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    host_header_rewrite_config: Option<Rewrites>,
    #[serde(default)]
    url_rewrite_config: Option<Rewrites>,
}

/// `HostHeaderRewriteConfig` / `UrlRewriteConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Rewrites {
    #[serde(default)]
    rewrites: Vec<RewriteConfig>,
}

/// `RewriteConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RewriteConfig {
    regex: String,
    replace: String,
}

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

/// A `'static` key for the fields that may appear once per rule.
fn field_key(field: &str) -> &'static str {
    match field {
        "host-header" => "host-header",
        "path-pattern" => "path-pattern",
        "http-request-method" => "http-request-method",
        _ => "source-ip",
    }
}

/// The values of a `path-pattern` / `host-header` condition, from its configuration or
/// the legacy `Values` (both may be present, as `describe-rules` prints them, if equal).
fn pattern_values<'c>(
    cx: &Ctx<'_, '_>,
    cp: &str,
    key: &str,
    legacy: Option<&'c Vec<String>>,
    config: Option<&'c Vec<String>>,
    out: &mut Out<'_>,
) -> Option<&'c [String]> {
    match (legacy, config) {
        (Some(l), Some(c)) if l != c => {
            cx.invalid(
                out,
                &format!("{cp}.Values"),
                format!("`Values` and `{key}.Values` differ"),
            );
            None
        }
        (_, Some(c)) => non_empty(cx, Some(c), &format!("{cp}.{key}.Values"), out),
        (Some(l), None) => non_empty(cx, Some(l), &format!("{cp}.Values"), out),
        (None, None) => {
            cx.invalid(out, cp, format!("missing `{key}`"));
            None
        }
    }
}

/// The values, or an error when there are none ("the value for a condition can't be
/// empty").
fn non_empty<'v>(
    cx: &Ctx<'_, '_>,
    values: Option<&'v [String]>,
    path: &str,
    out: &mut Out<'_>,
) -> Option<&'v [String]> {
    match values {
        Some(v) if !v.is_empty() => Some(v),
        _ => {
            cx.invalid(out, path, "a condition needs at least one value");
            None
        }
    }
}

// Wildcards `*` (zero or more characters) and `?` (exactly one).

/// A piece of a wildcard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Star,
    One,
}

/// Splits a pattern; with `escapes`, `\*` and `\?` are literal (query strings).
fn tokens(pat: &str, escapes: bool) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = pat.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if escapes && matches!(chars.peek(), Some('*' | '?')) => {
                if let Some(n) = chars.next() {
                    out.push(Tok::Lit(n));
                }
            }
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::One),
            c => out.push(Tok::Lit(c)),
        }
    }
    out
}

/// The literal text of tokens (wildcards dropped).
fn literal(toks: &[Tok]) -> String {
    toks.iter()
        .filter_map(|t| match t {
            Tok::Lit(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// The whole-value regular expression of tokens (the native side anchors it); with
/// `fold`, ASCII letters match either case.
fn regex_of(toks: &[Tok], fold: bool) -> String {
    let mut re = String::new();
    if wild(toks) {
        re.push_str("(?s)");
    }
    re.push_str(&regex_body(toks, fold));
    re
}

/// Whether tokens have a wildcard.
fn wild(toks: &[Tok]) -> bool {
    toks.iter().any(|t| !matches!(t, Tok::Lit(_)))
}

/// [`regex_of`] without the flags.
fn regex_body(toks: &[Tok], fold: bool) -> String {
    let mut re = String::new();
    let mut buf = [0u8; 4];
    for t in toks {
        match t {
            Tok::Star => re.push_str(".*"),
            Tok::One => re.push('.'),
            Tok::Lit(c) if fold && c.is_ascii_alphabetic() => {
                re.push('[');
                re.push(c.to_ascii_lowercase());
                re.push(c.to_ascii_uppercase());
                re.push(']');
            }
            Tok::Lit(c) => re.push_str(&regex::escape(c.encode_utf8(&mut buf))),
        }
    }
    re
}

/// Whether the native side accepts `p` as an exact or plain-prefix path.
fn plain_path(p: &str) -> bool {
    p.starts_with('/')
        && !p
            .bytes()
            .any(|b| b == b'#' || b == b'?' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// Tokens made only of literals and, with `allow_star`, one trailing `*`: the literal.
fn plain(toks: &[Tok], allow_star: bool) -> Option<String> {
    let body = match toks.split_last() {
        Some((Tok::Star, body)) if allow_star => body,
        _ => toks,
    };
    body.iter()
        .all(|t| matches!(t, Tok::Lit(_)))
        .then(|| literal(body))
}

/// A path pattern (case-sensitive).
fn path_glob(pat: &str) -> PathMatchConfig {
    let toks = tokens(pat, false);
    if let Some(e) = plain(&toks, false).filter(|e| plain_path(e)) {
        return PathMatchConfig {
            exact: Some(e),
            ..PathMatchConfig::default()
        };
    }
    if toks.last() == Some(&Tok::Star) {
        if let Some(s) = plain(&toks, true).filter(|s| plain_path(s)) {
            return PathMatchConfig {
                starts_with: Some(s),
                ..PathMatchConfig::default()
            };
        }
    }
    PathMatchConfig {
        regex: Some(regex_of(&toks, false)),
        ..PathMatchConfig::default()
    }
}

/// A host pattern (case-insensitive: the native side lowercases the request host).
fn host_glob(pat: &str) -> StringMatchConfig {
    let toks = tokens(&pat.to_ascii_lowercase(), false);
    if let Some(e) = plain(&toks, false) {
        return StringMatchConfig {
            exact: Some(e),
            ..StringMatchConfig::default()
        };
    }
    if toks.last() == Some(&Tok::Star) {
        if let Some(s) = plain(&toks, true) {
            return StringMatchConfig {
                prefix: Some(s),
                ..StringMatchConfig::default()
            };
        }
    }
    StringMatchConfig {
        regex: Some(regex_of(&toks, false)),
        ..StringMatchConfig::default()
    }
}

/// An `http-header` condition: values case-insensitive, ORed.
fn header_match(name: &str, values: &[String]) -> HeaderMatchConfig {
    let toks: Vec<Vec<Tok>> = values.iter().map(|v| tokens(v, false)).collect();
    let mut h = HeaderMatchConfig {
        name: name.to_owned(),
        ..HeaderMatchConfig::default()
    };
    if let [one] = toks.as_slice() {
        if let Some(e) = plain(one, false).filter(|e| !e.bytes().any(|b| b.is_ascii_alphabetic())) {
            h.exact = Some(e);
            return h;
        }
        h.regex = Some(regex_of(one, true));
        return h;
    }
    let alts: Vec<String> = toks.iter().map(|t| regex_body(t, true)).collect();
    let flags = if toks.iter().any(|t| wild(t)) {
        "(?s)"
    } else {
        ""
    };
    h.regex = Some(format!("{flags}(?:{})", alts.join("|")));
    h
}

/// One `query-string` key/value pair (case-insensitive value, `\*` `\?` escapes).
fn query_match(
    cx: &Ctx<'_, '_>,
    vp: &str,
    pair: &QueryPair,
    out: &mut Out<'_>,
) -> Option<QueryMatchConfig> {
    let Some(key) = pair.key.as_deref().filter(|k| !k.is_empty()) else {
        cx.unsupported(
            out,
            vp,
            "a query-string value without `Key` matches any parameter's value; native query conditions \
             name the parameter",
        );
        return None;
    };
    let Some(value) = pair.value.as_deref() else {
        cx.invalid(out, &format!("{vp}.Value"), "missing `Value`");
        return None;
    };
    let key_toks = tokens(key, true);
    let Some(name) = plain(&key_toks, false) else {
        cx.unsupported(
            out,
            &format!("{vp}.Key"),
            format!("wildcards in a query parameter name (`{key}`): native query conditions name one parameter"),
        );
        return None;
    };
    for (field, text) in [("Key", key), ("Value", value)] {
        if text.contains(['%', '+']) {
            cx.unsupported(
                out,
                &format!("{vp}.{field}"),
                format!(
                    "`%` or `+` in `{text}`: native query values are compared after percent-decoding, and ALB's \
                     handling of encoded condition values is not documented"
                ),
            );
            return None;
        }
    }
    let toks = tokens(value, true);
    let mut q = QueryMatchConfig {
        name,
        ..QueryMatchConfig::default()
    };
    match plain(&toks, false).filter(|e| !e.bytes().any(|b| b.is_ascii_alphabetic())) {
        Some(e) => q.exact = Some(e),
        None => q.regex = Some(regex_of(&toks, true)),
    }
    Some(q)
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

/// The actions, by `Order`: authentication steps (warned) then one routing action,
/// which sets `rc`'s action. Returns whether it forwards.
fn actions(
    cx: &Ctx<'_, '_>,
    p: &str,
    list: &[Action],
    rc: &mut RuleConfig,
    out: &mut Out<'_>,
) -> bool {
    let mut order: Vec<(i64, usize)> = list
        .iter()
        .enumerate()
        .map(|(j, a)| (a.order.unwrap_or(i64::MAX), j))
        .collect();
    order.sort_unstable();
    let Some(((_, last), before)) = order.split_last() else {
        cx.invalid(out, &format!("{p}.Actions"), "a rule needs an action");
        return false;
    };
    let final_kind = list.get(*last).map_or("", |a| a.kind.as_str());
    for &(_, j) in before {
        let Some(a) = list.get(j) else { continue };
        let ap = format!("{p}.Actions[{j}]");
        if !stray_configs(cx, &ap, a, out) {
            continue;
        }
        match a.kind.as_str() {
            "authenticate-oidc" | "authenticate-cognito" | "jwt-validation" => out.warn(
                cx.at(&ap),
                format!(
                    "`{}` is NOT applied in-process: requests matching this rule reach its `{final_kind}` action \
                     WITHOUT being authenticated; authenticate in front of this router or in the backend",
                    a.kind
                ),
            ),
            "forward" | "redirect" | "fixed-response" => cx.invalid(
                out,
                &format!("{ap}.Type"),
                format!("a `{}` action must be the last action of its rule (by `Order`)", a.kind),
            ),
            other => cx.unsupported(out, &format!("{ap}.Type"), format!("action type `{other}`")),
        }
    }
    let Some(a) = list.get(*last) else {
        return false;
    };
    let ap = format!("{p}.Actions[{last}]");
    if !stray_configs(cx, &ap, a, out) {
        return false;
    }
    match a.kind.as_str() {
        "forward" => {
            if let Some((backends, sticky)) = forward(cx, &ap, a, out) {
                rc.backends = backends;
                rc.session_persistence = sticky;
                return true;
            }
        }
        "redirect" => match &a.redirect_config {
            Some(r) => rc.redirect = redirect(cx, &format!("{ap}.RedirectConfig"), r, out),
            None => cx.invalid(out, &ap, "a `redirect` action needs `RedirectConfig`"),
        },
        "fixed-response" => match &a.fixed_response_config {
            Some(f) => {
                rc.fixed_response =
                    fixed_response(cx, &format!("{ap}.FixedResponseConfig"), f, out);
            }
            None => cx.invalid(
                out,
                &ap,
                "a `fixed-response` action needs `FixedResponseConfig`",
            ),
        },
        "authenticate-oidc" | "authenticate-cognito" | "jwt-validation" => cx.invalid(
            out,
            &format!("{ap}.Type"),
            "the last action of a rule must be `forward`, `redirect` or `fixed-response`",
        ),
        other => cx.unsupported(out, &format!("{ap}.Type"), format!("action type `{other}`")),
    }
    false
}

/// Errors for configurations that belong to another action type; whether there were
/// none.
fn stray_configs(cx: &Ctx<'_, '_>, ap: &str, a: &Action, out: &mut Out<'_>) -> bool {
    let fields = [
        ("TargetGroupArn", a.target_group_arn.is_some(), "forward"),
        ("ForwardConfig", a.forward_config.is_some(), "forward"),
        ("RedirectConfig", a.redirect_config.is_some(), "redirect"),
        (
            "FixedResponseConfig",
            a.fixed_response_config.is_some(),
            "fixed-response",
        ),
        (
            "AuthenticateOidcConfig",
            a.authenticate_oidc_config.is_some(),
            "authenticate-oidc",
        ),
        (
            "AuthenticateCognitoConfig",
            a.authenticate_cognito_config.is_some(),
            "authenticate-cognito",
        ),
        (
            "JwtValidationConfig",
            a.jwt_validation_config.is_some(),
            "jwt-validation",
        ),
    ];
    let mut ok = true;
    for (key, here, kind) in fields {
        if here && a.kind != kind {
            cx.invalid(
                out,
                &format!("{ap}.{key}"),
                format!(
                    "`{key}` belongs to `{kind}` actions, this one is `{}`",
                    a.kind
                ),
            );
            ok = false;
        }
    }
    ok
}

/// A `forward` action → weighted native backends and, with target group stickiness,
/// cookie session persistence.
fn forward(
    cx: &Ctx<'_, '_>,
    ap: &str,
    a: &Action,
    out: &mut Out<'_>,
) -> Option<(Vec<WeightedBackendConfig>, Option<SessionPersistenceConfig>)> {
    let before = out.error_count();
    // (ARN, weight, path of the ARN)
    let mut groups: Vec<(&str, u64, String)> = Vec::new();
    match (&a.forward_config, a.target_group_arn.as_deref()) {
        (Some(fc), single) => {
            let fp = format!("{ap}.ForwardConfig");
            if fc.target_groups.is_empty() {
                cx.invalid(out, &format!("{fp}.TargetGroups"), "no target groups");
                return None;
            }
            if let Some(arn) = single {
                let same =
                    matches!(fc.target_groups.as_slice(), [one] if one.target_group_arn == arn);
                if !same {
                    cx.invalid(
                        out,
                        &format!("{ap}.TargetGroupArn"),
                        "with both `TargetGroupArn` and `ForwardConfig`, `ForwardConfig` must name just that target group",
                    );
                    return None;
                }
            }
            for (k, tg) in fc.target_groups.iter().enumerate() {
                let tp = format!("{fp}.TargetGroups[{k}]");
                let w = tg.weight.unwrap_or(1);
                let Some(w) = u64::try_from(w).ok().filter(|w| *w <= 999) else {
                    cx.invalid(
                        out,
                        &format!("{tp}.Weight"),
                        format!("weight {w} is outside 0..=999"),
                    );
                    continue;
                };
                if let Some((_, _, first)) = groups.iter().find(|g| g.0 == tg.target_group_arn) {
                    cx.invalid(
                        out,
                        &format!("{tp}.TargetGroupArn"),
                        format!("this target group is already listed at `{first}`"),
                    );
                    continue;
                }
                groups.push((&tg.target_group_arn, w, format!("{tp}.TargetGroupArn")));
            }
            if out.error_count() == before && groups.iter().all(|g| g.1 == 0) {
                cx.invalid(
                    out,
                    &format!("{fp}.TargetGroups"),
                    "every target group has weight 0: no target group can receive requests",
                );
            }
        }
        (None, Some(arn)) => groups.push((arn, 1, format!("{ap}.TargetGroupArn"))),
        (None, None) => {
            cx.invalid(
                out,
                ap,
                "a `forward` action needs `TargetGroupArn` or `ForwardConfig`",
            );
            return None;
        }
    }
    // Resolve; target groups that map to one native backend add up.
    let mut backends: Vec<WeightedBackendConfig> = Vec::new();
    for (arn, weight, path) in &groups {
        let Some(tg) = target_group_name(arn) else {
            cx.invalid(
                out,
                path,
                format!("`{arn}` is not a target group ARN (`arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`)"),
            );
            continue;
        };
        let Some(name) = out.backend(&[(*arn).to_owned(), tg.to_owned()], tg, &cx.at(path)) else {
            continue;
        };
        match backends.iter_mut().find(|b| b.name == name) {
            Some(b) => b.weight = b.weight.saturating_add(*weight),
            None => backends.push(WeightedBackendConfig {
                name,
                weight: *weight,
            }),
        }
    }
    let sticky = a
        .forward_config
        .as_ref()
        .and_then(|fc| fc.target_group_stickiness_config.as_ref())
        .filter(|s| s.enabled == Some(true))
        .and_then(|s| {
            let sp = format!("{ap}.ForwardConfig.TargetGroupStickinessConfig.DurationSeconds");
            match s.duration_seconds {
                Some(d) if (1..=MAX_STICKY_SECONDS).contains(&d) => {
                    Some(SessionPersistenceConfig {
                        cookie: Some(CookieConfig {
                            name: STICKY_COOKIE.to_owned(),
                            ttl: Some(to_config_duration(Duration::from_secs(d.unsigned_abs()))),
                            ..CookieConfig::default()
                        }),
                        header: None,
                    })
                }
                Some(d) => {
                    cx.invalid(out, &sp, format!("{d} seconds is outside 1..=604800"));
                    None
                }
                None => {
                    cx.invalid(out, &sp, "enabled stickiness needs `DurationSeconds`");
                    None
                }
            }
        });
    (out.error_count() == before).then_some((backends, sticky))
}

/// Whether a redirect component keeps the request's value.
fn keeps(v: Option<&str>, placeholder: &str) -> bool {
    v.is_none_or(|v| v == placeholder)
}

/// A `redirect` action.
fn redirect(cx: &Ctx<'_, '_>, rp: &str, r: &Redirect, out: &mut Out<'_>) -> Option<RedirectConfig> {
    let before = out.error_count();
    let mut cfg = RedirectConfig::default();
    let mixed = |out: &mut Out<'_>, field: &str, v: &str| {
        cx.unsupported(
            out,
            &format!("{rp}.{field}"),
            format!("`{v}` splices request values (`#{{…}}`) into text; native redirects replace a component whole"),
        );
    };
    if !keeps(r.protocol.as_deref(), "#{protocol}") {
        let v = r.protocol.as_deref().unwrap_or_default();
        match v.to_ascii_lowercase().as_str() {
            s @ ("http" | "https") => cfg.scheme = Some(s.to_owned()),
            _ => cx.invalid(
                out,
                &format!("{rp}.Protocol"),
                format!("protocol `{v}` (expected HTTP, HTTPS or #{{protocol}})"),
            ),
        }
    }
    if keeps(r.port.as_deref(), "#{port}") {
        if cfg.scheme.is_some() {
            cx.unsupported(
                out,
                &format!("{rp}.Port"),
                "a literal `Protocol` with `Port` `#{port}` keeps the listener's port under the new protocol; \
                 native redirects then use the new scheme's default port: set `Port` explicitly",
            );
        }
    } else {
        let v = r.port.as_deref().unwrap_or_default();
        match v.parse::<u16>().ok().filter(|p| *p > 0) {
            Some(port) => cfg.port = Some(port),
            None => cx.invalid(
                out,
                &format!("{rp}.Port"),
                format!("port `{v}` (expected 1..=65535 or #{{port}})"),
            ),
        }
    }
    if !keeps(r.host.as_deref(), "#{host}") {
        let v = r.host.as_deref().unwrap_or_default();
        if v.contains("#{") {
            mixed(out, "Host", v);
        } else {
            cfg.hostname = Some(v.to_ascii_lowercase());
        }
    }
    if !keeps(r.path.as_deref(), "/#{path}") {
        let v = r.path.as_deref().unwrap_or_default();
        if v.contains("#{") {
            mixed(out, "Path", v);
        } else {
            cfg.path = Some(PathModifierConfig {
                full: Some(v.to_owned()),
                prefix: None,
            });
        }
    }
    if !keeps(r.query.as_deref(), "#{query}") {
        cx.unsupported(
            out,
            &format!("{rp}.Query"),
            format!(
                "query `{}`: native redirects keep the request's query unchanged (only `#{{query}}` is expressible)",
                r.query.as_deref().unwrap_or_default()
            ),
        );
    }
    cfg.status = match r.status_code.as_str() {
        "HTTP_301" => Some(301),
        "HTTP_302" => Some(302),
        other => {
            cx.invalid(
                out,
                &format!("{rp}.StatusCode"),
                format!("status `{other}` (expected HTTP_301 or HTTP_302)"),
            );
            None
        }
    };
    (out.error_count() == before).then_some(cfg)
}

/// A `fixed-response` action.
fn fixed_response(
    cx: &Ctx<'_, '_>,
    fp: &str,
    f: &FixedResponse,
    out: &mut Out<'_>,
) -> Option<FixedResponseConfig> {
    let status = f
        .status_code
        .parse::<u16>()
        .ok()
        .filter(|s| matches!(s / 100, 2 | 4 | 5));
    let Some(status) = status else {
        cx.invalid(
            out,
            &format!("{fp}.StatusCode"),
            format!(
                "status `{}` (expected a 2XX, 4XX or 5XX code)",
                f.status_code
            ),
        );
        return None;
    };
    Some(FixedResponseConfig {
        status,
        body: f.message_body.clone(),
        headers: f
            .content_type
            .iter()
            .map(|ct| ("content-type".to_owned(), ct.clone()))
            .collect(),
    })
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
