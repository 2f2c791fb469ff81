//! `explain`: the rule a request matches, why, and everything the rule does to it.

use super::*;

pub(super) fn rule_label(table: &RouteTable, ri: usize) -> String {
    let rule = &table.rules()[ri];
    let route = &table.routes()[rule.route_index()];
    match rule.name() {
        Some(n) => format!("{} rule {} ({n})", route.name(), rule.index_in_route()),
        None => format!("{} rule {}", route.name(), rule.index_in_route()),
    }
}

fn describe_summary(s: &MatchSummary, first_match: bool) -> String {
    let host = match s.host {
        HostSpecificity::Exact => "exact host".to_owned(),
        HostSpecificity::Wildcard { suffix_len } => format!("wildcard host (suffix {suffix_len})"),
        HostSpecificity::Any => "any host".to_owned(),
    };
    let path = match s.path {
        PathSpecificity::Exact => "exact path".to_owned(),
        PathSpecificity::Regex { len } => format!("regex/plain-prefix path ({len} chars)"),
        PathSpecificity::Prefix { len } => format!("path prefix ({len} chars)"),
    };
    let mut parts = vec![host, path];
    if s.method {
        parts.push("method".into());
    }
    if s.headers > 0 {
        parts.push(format!(
            "{} header condition{}",
            s.headers,
            plural(s.headers.into())
        ));
    }
    if s.query > 0 {
        parts.push(format!(
            "{} query condition{}",
            s.query,
            plural(s.query.into())
        ));
    }
    if first_match {
        parts.push("first_match route".into());
    }
    parts.join(", ")
}

/// Whether the match's rule is in a `first_match` route.
fn first_match(table: &RouteTable, m: &RuleMatch) -> bool {
    table.routes()[table.rules()[m.rule].route_index()].precedence() == RulePrecedence::FirstMatch
}

/// Why `loser` ranks below `winner`.
fn lost_on(table: &RouteTable, winner: &RuleMatch, loser: &RuleMatch) -> &'static str {
    let (w, l) = (&winner.summary, &loser.summary);
    let (wf, lf) = (first_match(table, winner), first_match(table, loser));
    if w.host != l.host {
        "a more specific hostname won"
    } else if wf && lf {
        "declared later in a first_match route"
    } else if wf {
        "first_match routes of the host go first"
    } else if w.path != l.path {
        "a more specific path won"
    } else if w.method != l.method {
        "the winner has a method condition"
    } else if w.headers != l.headers {
        "the winner has more header conditions"
    } else if w.query != l.query {
        "the winner has more query conditions"
    } else {
        "declared later"
    }
}

fn path_text(p: &PathMatch) -> String {
    match p {
        PathMatch::Exact(e) => format!("path exact {e}"),
        PathMatch::Prefix(p) if p.is_empty() => "path prefix /".to_owned(),
        PathMatch::Prefix(p) => format!("path prefix {p}"),
        PathMatch::Regex(r) => format!("path regex {}", r.as_str()),
        PathMatch::StartsWith(s) => format!("path starts_with {s}"),
        _ => "path".to_owned(),
    }
}

/// The weighted split of a forwarding rule: (backend, weight, share).
pub(super) fn split_of(table: &RouteTable, rule: &Rule) -> Vec<(String, u32, f64)> {
    let Some(f) = rule.forward() else {
        return Vec::new();
    };
    let total: u64 = f.backends().iter().map(|b| u64::from(b.weight())).sum();
    f.backends()
        .iter()
        .map(|b| {
            let share = if total == 0 {
                0.0
            } else {
                f64::from(b.weight()) / total as f64
            };
            (table.backend(b.id()).name().to_owned(), b.weight(), share)
        })
        .collect()
}

/// The endpoint pools of a forwarding rule's backends (second level of selection):
/// per backend with `endpoints`, each endpoint and, when the request carries the
/// rule's hash key, the endpoint that key picks (no load, nothing ejected).
fn pools_of(table: &RouteTable, rule: &Rule, key: Option<u64>) -> Vec<serde_json::Value> {
    let Some(f) = rule.forward() else {
        return Vec::new();
    };
    let mut rng = StdRng::seed_from_u64(0);
    f.backends()
        .iter()
        .filter_map(|wb| {
            let b = table.backend(wb.id());
            let pool = b.endpoints()?;
            let eps: Vec<_> = pool
                .endpoints()
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    json!({
                        "address": e.address().to_string(),
                        "state": format!("{:?}", e.state()).to_lowercase(),
                        "weight": e.weight(),
                        "zone": e.zone(),
                        "takes_new": pool.takes_new(i),
                    })
                })
                .collect();
            let picked = key
                .and_then(|k| pool.pick(&mut rng, Some(k), |_| 0, |_| true))
                .map(|i| pool.endpoints()[i].address().to_string());
            let how = if rule.hash_on().is_some() {
                "maglev on the rule's hash key"
            } else {
                "least request (power of two choices)"
            };
            Some(json!({"backend": b.name(), "by": how, "endpoints": eps, "key_picks": picked}))
        })
        .collect()
}

fn sticky_text(rule: &Rule) -> Option<String> {
    if let Some(SessionPersistence::Cookie(c)) = &rule.policy().session_persistence {
        return Some(format!(
            "cookie `{}`: the first response sets it; later requests that carry a valid one stay on its backend",
            c.name
        ));
    }
    rule.hash_on().map(|h| format!("consistent hash on {h:?}"))
}

/// `explain`.
pub(super) fn explain(
    l: &Loaded,
    table: &RouteTable,
    req: &RequestInfo,
    as_json: bool,
    pinned: Option<&str>,
) -> String {
    let cands = table.candidates(req);
    let mut rng = StdRng::seed_from_u64(0);
    let decision = table.decide(req, &mut rng);
    let Some(win) = cands.first() else {
        return if as_json {
            pretty(&json!({"matched": false}))
        } else {
            "no rule matches: the layer answers 404 (or falls through to the wrapped app)\n"
                .to_owned()
        };
    };
    let rule = &table.rules()[win.rule];
    let origin = l
        .imported
        .origin_of(&format!(
            "routes[{}].rules[{}]",
            rule.route_index(),
            rule.index_in_route()
        ))
        .map(ToString::to_string);
    let why = describe_summary(&win.summary, first_match(table, win));
    let m = &rule.matches()[win.r#match];
    let action = match rule.action() {
        Action::Forward(_) => "forward".to_owned(),
        Action::Redirect(r) => format!("redirect {}", r.status.as_u16()),
        Action::FixedResponse(f) => format!("fixed response {}", f.status.as_u16()),
        _ => "other".to_owned(),
    };
    let split = split_of(table, rule);
    let key = decision
        .as_ref()
        .ok()
        .and_then(routing_core::Decision::sticky_key);
    let keyed_backend = match (&decision, key) {
        (Ok(d), Some(_)) => d.backend().map(|b| b.name().to_owned()),
        _ => None,
    };
    let sticky = sticky_text(rule);
    let pools = pools_of(table, rule, key);
    let lost: Vec<(String, String, &'static str)> = cands[1..]
        .iter()
        .map(|c| {
            (
                rule_label(table, c.rule),
                describe_summary(&c.summary, first_match(table, c)),
                lost_on(table, win, c),
            )
        })
        .collect();
    let effect = super::effect::effect(table, *win, req, pinned);
    if as_json {
        return pretty(&json!({
            "matched": true,
            "effect": effect.json,
            "route": table.routes()[rule.route_index()].name(),
            "rule": rule.index_in_route(),
            "rule_name": rule.name(),
            "match": win.r#match,
            "from": origin,
            "why": why,
            "path_condition": path_text(m.path()),
            "action": action,
            "split": split.iter().map(|(b, w, s)| json!({"backend": b, "weight": w, "share": s})).collect::<Vec<_>>(),
            "sticky": sticky,
            "sticky_key_hash": key.map(|k| format!("{k:016x}")),
            "sticky_backend": keyed_backend,
            "endpoints": pools,
            "lost": lost.iter().map(|(r, w, why)| json!({"rule": r, "summary": w, "lost_on": why})).collect::<Vec<_>>(),
        }));
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "matched  {} (match {})",
        rule_label(table, win.rule),
        win.r#match
    );
    if let Some(o) = &origin {
        let _ = writeln!(s, "from     {o}");
    }
    let _ = writeln!(s, "why      {why}; {}", path_text(m.path()));
    let _ = writeln!(s, "action   {action}");
    if !split.is_empty() {
        let width = split
            .iter()
            .map(|(b, ..)| b.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let _ = writeln!(
            s,
            "split    {:<width$}  {:>7}  {:>7}",
            "backend", "weight", "share"
        );
        for (b, w, sh) in &split {
            let _ = writeln!(s, "         {b:<width$}  {w:>7}  {:>6.2}%", sh * 100.0);
        }
    }
    for p in &pools {
        let eps = p["endpoints"].as_array().map_or(&[][..], Vec::as_slice);
        let _ = writeln!(
            s,
            "pool     {}: {} endpoint{}, by {}{}",
            p["backend"].as_str().unwrap_or(""),
            eps.len(),
            plural(eps.len()),
            p["by"].as_str().unwrap_or(""),
            p["key_picks"]
                .as_str()
                .map(|a| format!("; this request's key picks {a}"))
                .unwrap_or_default()
        );
        for e in eps {
            let _ = writeln!(
                s,
                "         {} {} weight {}{}",
                e["address"].as_str().unwrap_or(""),
                e["state"].as_str().unwrap_or(""),
                e["weight"],
                e["zone"]
                    .as_str()
                    .map(|z| format!(" zone {z}"))
                    .unwrap_or_default()
            );
        }
    }
    for (label, text) in &effect.lines {
        let _ = writeln!(s, "{label:<8} {text}");
    }
    if lost.is_empty() {
        let _ = writeln!(s, "lost     no other rule matches");
    } else {
        let width = lost.iter().map(|(r, ..)| r.len()).max().unwrap_or(0);
        for (i, (r, w, why)) in lost.iter().enumerate() {
            let head = if i == 0 { "lost" } else { "" };
            let _ = writeln!(s, "{head:<8} {r:<width$}  {why} ({w})");
        }
    }
    s
}
