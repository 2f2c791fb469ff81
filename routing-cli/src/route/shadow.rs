//! `check`'s reachability pass: rules no request can reach because an earlier rule
//! takes every request they match.
//!
//! * In a `first_match` route (Istio, ALB by priority), a rule is unreachable when
//!   each of its matches implies a match of an earlier rule: an ALB `/*` at a higher
//!   priority takes everything after it.
//! * In a route ranked by specificity (native, Gateway API), ties go to the rule
//!   declared first, so a rule is unreachable when each of its matches is also,
//!   condition for condition, a match of an earlier rule.
//!
//! The implication test is conservative: conditions it cannot compare (regular
//! expressions other than identical ones) never count as covered, so a warning is
//! always real and some shadowing may go unreported.

use routing_core::{
    Config, HeaderMatchConfig, MatchConfig, PathMatchConfig, QueryMatchConfig, RouteConfig,
    RulePrecedence,
};

/// A rule no request reaches: its route and rule indices, and the earlier rules
/// (route index, rule index) that take its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shadowed {
    pub(super) route: usize,
    pub(super) rule: usize,
    pub(super) by: Vec<(usize, usize)>,
}

/// The matches of a rule; no matches is one match-everything entry.
fn matches_of(m: &[MatchConfig]) -> Vec<MatchConfig> {
    if m.is_empty() {
        vec![MatchConfig::default()]
    } else {
        m.to_vec()
    }
}

/// Whether every path `b` matches is a path `a` matches.
fn path_covers(a: Option<&PathMatchConfig>, b: Option<&PathMatchConfig>) -> bool {
    let everything = PathMatchConfig {
        prefix: Some("/".into()),
        ..PathMatchConfig::default()
    };
    let (a, b) = (a.unwrap_or(&everything), b.unwrap_or(&everything));
    let root = |x: &Option<String>| x.as_deref().is_some_and(|p| p.is_empty() || p == "/");
    if a == b || root(&a.prefix) || root(&a.starts_with) {
        // Every normalised path starts with `/`.
        return true;
    }
    // What every path `b` matches starts with, and whether `b` is one exact path.
    let (b_lead, b_exact): (String, bool) = if let Some(e) = &b.exact {
        (e.clone(), true)
    } else if let Some(p) = &b.prefix {
        (p.trim_end_matches('/').to_owned(), false)
    } else if let Some(s) = &b.starts_with {
        (s.clone(), false)
    } else {
        return false;
    };
    if let Some(p) = &a.prefix {
        let p = p.trim_end_matches('/');
        let on_segment = |x: &str| p.is_empty() || x == p || x.starts_with(&format!("{p}/"));
        return match (&b.exact, &b.prefix) {
            (Some(e), _) => on_segment(e),
            (_, Some(_)) => on_segment(&b_lead),
            // A plain string prefix `b` covers `/apix` too: only `/` covers it.
            _ => p.is_empty(),
        };
    }
    if let Some(s) = &a.starts_with {
        return b_lead.starts_with(s.as_str());
    }
    if let Some(e) = &a.exact {
        return b_exact && *e == b_lead;
    }
    false
}

fn header_eq(a: &HeaderMatchConfig, b: &HeaderMatchConfig) -> bool {
    a.name.eq_ignore_ascii_case(&b.name) && {
        let (mut a, mut b) = (a.clone(), b.clone());
        a.name.clear();
        b.name.clear();
        a == b
    }
}

/// Whether every request `b` matches is a request `a` matches (conservative).
fn covers(a: &MatchConfig, b: &MatchConfig) -> bool {
    let same_or_any = |x: &Option<String>, y: &Option<String>| x.is_none() || x == y;
    same_or_any(&a.method, &b.method)
        && same_or_any(&a.scheme, &b.scheme)
        && (a.authority.is_none() || a.authority == b.authority)
        && a.headers
            .iter()
            .all(|h| b.headers.iter().any(|g| header_eq(h, g)))
        && a.query
            .iter()
            .all(|q: &QueryMatchConfig| b.query.contains(q))
        && path_covers(a.path.as_ref(), b.path.as_ref())
}

/// Whether every host `later` serves is served as specifically by `earlier`: the
/// same names (or both every host).
fn hosts_cover(earlier: &[String], later: &[String]) -> bool {
    if earlier.is_empty() || later.is_empty() {
        return earlier.is_empty() && later.is_empty();
    }
    later
        .iter()
        .all(|h| earlier.iter().any(|e| e.eq_ignore_ascii_case(h)))
}

/// The unreachable rules of `cfg` (routes and rules in configuration order). Rules
/// of a `first_match` route also compete with the rules of earlier `first_match`
/// routes for the same hosts (tried in declaration order).
pub(super) fn shadowed(cfg: &Config) -> Vec<Shadowed> {
    let first = |r: &RouteConfig| r.precedence == Some(RulePrecedence::FirstMatch);
    let mut out = Vec::new();
    for (ri, route) in cfg.routes.iter().enumerate() {
        let first_match = first(route);
        // The rules tried before rule j: earlier same-host first_match routes' rules,
        // then this route's earlier rules.
        let earlier_routes: Vec<usize> = if first_match {
            (0..ri)
                .filter(|&q| {
                    first(&cfg.routes[q]) && hosts_cover(&cfg.routes[q].hostnames, &route.hostnames)
                })
                .collect()
        } else {
            Vec::new()
        };
        for (j, rule) in route.rules.iter().enumerate() {
            let before: Vec<(usize, usize)> = earlier_routes
                .iter()
                .flat_map(|&q| (0..cfg.routes[q].rules.len()).map(move |k| (q, k)))
                .chain((0..j).map(|k| (ri, k)))
                .collect();
            let mut by = Vec::new();
            let all = matches_of(&rule.matches).iter().all(|m| {
                let taker = before.iter().copied().find(|&(q, k)| {
                    matches_of(&cfg.routes[q].rules[k].matches).iter().any(|e| {
                        if first_match {
                            covers(e, m)
                        } else {
                            e == m
                        }
                    })
                });
                if let Some(t) = taker {
                    if !by.contains(&t) {
                        by.push(t);
                    }
                }
                taker.is_some()
            });
            if all {
                by.sort_unstable();
                out.push(Shadowed {
                    route: ri,
                    rule: j,
                    by,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// (route, rule, taken by).
    type Found = (usize, usize, Vec<(usize, usize)>);

    fn p(kind: &str, v: &str) -> Option<PathMatchConfig> {
        let mut c = PathMatchConfig::default();
        match kind {
            "exact" => c.exact = Some(v.into()),
            "prefix" => c.prefix = Some(v.into()),
            "starts_with" => c.starts_with = Some(v.into()),
            _ => c.regex = Some(v.into()),
        }
        Some(c)
    }

    #[test]
    fn path_implication() {
        let cases = [
            (("prefix", "/"), ("regex", "/x.*"), true),
            (("starts_with", "/"), ("exact", "/a"), true),
            (("prefix", "/api"), ("prefix", "/api/v1"), true),
            (("prefix", "/api"), ("exact", "/api"), true),
            (("prefix", "/api/"), ("exact", "/api/x"), true),
            (("prefix", "/api"), ("prefix", "/apix"), false),
            (("prefix", "/api"), ("starts_with", "/api"), false),
            (("starts_with", "/api"), ("prefix", "/apix"), true),
            (("starts_with", "/api"), ("starts_with", "/ap"), false),
            (("exact", "/a"), ("exact", "/a"), true),
            (("exact", "/a"), ("prefix", "/a"), false),
            (("regex", "/a.*"), ("exact", "/ab"), false),
            (("regex", "/a.*"), ("regex", "/a.*"), true),
        ];
        for ((ak, av), (bk, bv), want) in cases {
            assert_eq!(
                path_covers(p(ak, av).as_ref(), p(bk, bv).as_ref()),
                want,
                "{ak} {av} covers {bk} {bv}"
            );
        }
        assert!(
            path_covers(None, p("exact", "/x").as_ref()),
            "no path is `/`"
        );
        assert!(!path_covers(p("prefix", "/a").as_ref(), None));
    }

    #[test]
    fn first_match_and_specificity_routes() {
        let cfg = Config::from_yaml(
            r#"
backends: [{name: a}]
routes:
  - name: alb
    precedence: first_match
    rules:
      - {name: api, matches: [{path: {prefix: /api}, method: GET}], backends: [{name: a}]}
      - {name: all, matches: [{path: {starts_with: /}}], backends: [{name: a}]}
      - {name: api-get, matches: [{path: {exact: /api/x}, method: GET, headers: [{name: X-A, exact: "1"}]}], backends: [{name: a}]}
      - {name: late, matches: [{path: {prefix: /b}}], backends: [{name: a}]}
  - name: spec
    rules:
      - {matches: [{path: {prefix: /x}}], backends: [{name: a}]}
      - {matches: [{path: {prefix: /x/y}}], backends: [{name: a}]}
      - {matches: [{path: {prefix: /x}}, {path: {prefix: /z}}], backends: [{name: a}]}
      - {matches: [{path: {prefix: /x}}], backends: [{name: a}]}
"#,
        )
        .unwrap();
        let got: Vec<Found> = shadowed(&cfg)
            .into_iter()
            .map(|s| (s.route, s.rule, s.by))
            .collect();
        assert_eq!(
            got,
            [
                (0, 2, vec![(0, 0)]),
                (0, 3, vec![(0, 1)]),
                (1, 3, vec![(1, 0)])
            ],
            "api-get is under api, late under all; in a ranked route only the duplicate"
        );
    }

    #[test]
    fn earlier_first_match_routes_of_the_same_hosts_compete() {
        let cfg = Config::from_yaml(
            r#"
backends: [{name: a}]
routes:
  - {name: vs-a, precedence: first_match, hostnames: [shop], rules: [{backends: [{name: a}]}]}
  - {name: vs-b, precedence: first_match, hostnames: [shop], rules: [{matches: [{path: {prefix: /b}}], backends: [{name: a}]}]}
  - {name: other, precedence: first_match, hostnames: [shop, cart], rules: [{backends: [{name: a}]}]}
  - {name: ranked, hostnames: [shop], rules: [{backends: [{name: a}]}]}
"#,
        )
        .unwrap();
        let got: Vec<Found> = shadowed(&cfg)
            .into_iter()
            .map(|s| (s.route, s.rule, s.by))
            .collect();
        assert_eq!(
            got,
            [(1, 0, vec![(0, 0)])],
            "vs-a's catch-all takes vs-b; `other` also serves cart; a ranked route is not first_match"
        );
    }
}
