//! `simulate`: per-backend splits and the sticky keys a weight change moves.

use super::explain::{rule_label, split_of};
use super::*;
use std::collections::BTreeMap;

/// A rule's identity across two configurations: its route's name, and its own name
/// or (unnamed) its match conditions as written; the occurrence number among the
/// route's rules with the same identity keeps duplicates apart. Adding, removing or
/// reordering other rules leaves it unchanged.
fn rule_key(table: &RouteTable, rule: &Rule) -> (String, String, usize) {
    let route = &table.routes()[rule.route_index()];
    let id = |r: &Rule| match r.name() {
        Some(n) => format!("named `{n}`"),
        None => {
            let matches = table
                .config()
                .routes
                .get(r.route_index())
                .and_then(|rc| rc.rules.get(r.index_in_route()))
                .map(|rc| serde_json::to_string(&rc.matches).unwrap_or_default())
                .unwrap_or_default();
            format!("matching {matches}")
        }
    };
    let me = id(rule);
    let nth = route
        .rule_indices()
        .map(|i| &table.rules()[i])
        .take_while(|r| r.index_in_route() < rule.index_in_route())
        .filter(|r| id(r) == me)
        .count();
    (route.name().to_owned(), me, nth)
}

/// The share of the old rule's sessions a stickiness cookie cannot keep under the
/// new rule: those on a backend the new rule drops, or sets to weight 0 (unless its
/// cookie keeps sessions at weight 0, ALB semantics). A cookie keeps every other
/// session where it is; only new sessions follow the new split.
fn cookie_moved(old_t: &RouteTable, old: &Rule, new_t: &RouteTable, new: &Rule) -> f64 {
    let keep_zero = matches!(
        &new.policy().session_persistence,
        Some(SessionPersistence::Cookie(c)) if c.keep_at_zero_weight
    );
    let new_weights: BTreeMap<String, u32> = split_of(new_t, new)
        .into_iter()
        .map(|(b, w, _)| (b, w))
        .collect();
    split_of(old_t, old)
        .into_iter()
        .filter(|(b, ..)| match new_weights.get(b) {
            None => true,
            Some(0) => !keep_zero,
            Some(_) => false,
        })
        .map(|(.., share)| share)
        .sum()
}

/// The Maglev table sticky keys of `rule` go through: its own when it hashes, else
/// the one the same backends and weights would build.
fn sticky_table(table: &RouteTable, rule: &Rule) -> Option<MaglevTable> {
    let f = rule.forward()?;
    if let Strategy::ConsistentHash(t) = f.strategy() {
        return Some((**t).clone());
    }
    let backends: Vec<(String, u32)> = f
        .backends()
        .iter()
        .map(|b| (table.backend(b.id()).name().to_owned(), b.weight()))
        .collect();
    let size = table
        .config()
        .maglev_table_size
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(routing_core::DEFAULT_MAGLEV_SIZE);
    MaglevTable::build(&backends, size).ok()
}

/// `simulate`.
pub(super) fn simulate(table: &RouteTable, o: &Options) -> Result<String> {
    let mut rng = StdRng::seed_from_u64(o.seed);
    // (label, rule index) of what is simulated, and the counts per backend.
    let mut runs: Vec<(String, usize, BTreeMap<String, u64>, u64)> = Vec::new();
    if o.requests.is_empty() {
        for (ri, rule) in table.rules().iter().enumerate() {
            let Some(f) = rule.forward() else { continue };
            let mut counts = BTreeMap::new();
            let mut failed = 0;
            for _ in 0..o.count {
                match f.pick(&mut rng, None) {
                    Some(pos) => {
                        let id = f.backends()[pos].id();
                        *counts
                            .entry(table.backend(id).name().to_owned())
                            .or_insert(0) += 1;
                    }
                    None => failed += 1,
                }
            }
            runs.push((rule_label(table, ri), ri, counts, failed));
        }
    } else {
        for spec in &o.requests {
            let req = parse_request(spec, o.source_ip)?
                .normalize_path(table.path_normalization())
                .map_err(|e| anyhow::anyhow!("request `{spec}`: the layer answers 400: {e}"))?;
            let mut counts = BTreeMap::new();
            let mut failed = 0;
            let mut rule_index = None;
            for _ in 0..o.count {
                match table.decide(&req, &mut rng) {
                    Ok(d) => {
                        rule_index = Some(d.rule_index());
                        let name = d.backend().map_or_else(
                            || "(answered by the rule)".to_owned(),
                            |b| b.name().to_owned(),
                        );
                        *counts.entry(name).or_insert(0) += 1;
                    }
                    Err(_) => failed += 1,
                }
            }
            let label = match rule_index {
                Some(ri) => format!("{spec} → {}", rule_label(table, ri)),
                None => format!("{spec} → no route"),
            };
            runs.push((label, rule_index.unwrap_or(usize::MAX), counts, failed));
        }
    }
    let new_table = if o.weights_change.is_empty() {
        None
    } else {
        match load(&o.weights_change, o)?.table {
            Ok(t) => Some(t),
            Err(e) => bail!("the --weights-change configuration is invalid:\n{e}"),
        }
    };
    let mut json_runs = Vec::new();
    let mut s = String::new();
    for (label, ri, counts, failed) in &runs {
        let rule = table.rules().get(*ri);
        let expected: BTreeMap<String, f64> = rule
            .map(|r| split_of(table, r))
            .unwrap_or_default()
            .into_iter()
            .map(|(b, _, sh)| (b, sh))
            .collect();
        let n = o.count as f64;
        let width = counts
            .keys()
            .chain(expected.keys())
            .map(String::len)
            .max()
            .unwrap_or(7)
            .max(7);
        let _ = writeln!(s, "{label}");
        let _ = writeln!(
            s,
            "  {:<width$}  {:>9}  {:>8}  {:>8}  {:>6}",
            "backend", "requests", "share", "expected", "σ"
        );
        let mut rows = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            counts.keys().chain(expected.keys()).collect();
        for b in names {
            let c = counts.get(b).copied().unwrap_or(0);
            let share = c as f64 / n;
            let exp = expected.get(b).copied();
            let sigma = exp.map(|p| {
                let sd = (n * p * (1.0 - p)).sqrt();
                if sd > 0.0 {
                    (c as f64 - n * p) / sd
                } else {
                    0.0
                }
            });
            let _ = writeln!(
                s,
                "  {b:<width$}  {c:>9}  {:>7.2}%  {:>8}  {:>6}",
                share * 100.0,
                exp.map_or("-".into(), |p| format!("{:.2}%", p * 100.0)),
                sigma.map_or("-".into(), |z| format!("{z:+.2}"))
            );
            rows.push(json!({"backend": b, "requests": c, "share": share, "expected": exp, "sigma": sigma}));
        }
        if *failed > 0 {
            let _ = writeln!(
                s,
                "  {failed} requests found no backend (no route or all weights 0)"
            );
        }
        let mut churn = Value::Null;
        if let (Some(new), Some(rule)) = (&new_table, rule) {
            let key = rule_key(table, rule);
            let new_rule = new.rules().iter().find(|r| rule_key(new, r) == key);
            let cookie = matches!(
                &rule.policy().session_persistence,
                Some(SessionPersistence::Cookie(_))
            );
            match new_rule {
                None => {
                    let _ = writeln!(
                        s,
                        "  (no rule {} in route {} of the new configuration)",
                        key.1, key.0
                    );
                }
                Some(nr) if cookie => {
                    let moved = cookie_moved(table, rule, new, nr);
                    let (_, minimum) = churn_of(table, rule, new, nr, 1);
                    let _ = writeln!(
                        s,
                        "  sticky cookie: {:.2}% of sessions kept, {:.2}% re-pinned (their backend left the rule or went to weight 0); new sessions follow the new split",
                        (1.0 - moved) * 100.0,
                        moved * 100.0
                    );
                    churn = json!({"kind": "cookie", "moved": moved, "kept": 1.0 - moved, "minimum": minimum});
                }
                Some(nr) => {
                    let (moved, minimum) = churn_of(table, rule, new, nr, o.sticky_keys);
                    let _ = writeln!(
                        s,
                        "  sticky keys: {:.2}% of {} moved; the minimum for this weight change is {:.2}%",
                        moved * 100.0,
                        o.sticky_keys,
                        minimum * 100.0
                    );
                    churn = json!({"kind": "hash", "keys": o.sticky_keys, "moved": moved, "minimum": minimum});
                }
            }
        }
        json_runs.push(json!({"rule": label, "requests": o.count, "failed": failed, "backends": rows, "sticky_churn": churn}));
        s.push('\n');
    }
    if runs.is_empty() {
        let _ = writeln!(s, "no forwarding rule to simulate");
    }
    Ok(if o.json {
        pretty(&json!({ "runs": json_runs }))
    } else {
        s
    })
}

/// Share of `keys` sticky keys whose backend changes between the two rules, and the
/// minimum share any scheme must move (half the L1 distance between the splits).
fn churn_of(
    old_t: &RouteTable,
    old: &Rule,
    new_t: &RouteTable,
    new: &Rule,
    keys: u64,
) -> (f64, f64) {
    let (Some(a), Some(b)) = (sticky_table(old_t, old), sticky_table(new_t, new)) else {
        return (0.0, 0.0);
    };
    let name = |t: &RouteTable, r: &Rule, slot: Option<u32>| {
        slot.and_then(|i| {
            r.forward()?
                .backends()
                .get(i as usize)
                .map(|b| t.backend(b.id()).name().to_owned())
        })
    };
    let mut moved = 0u64;
    for k in 0..keys {
        let h = routing_core::stable_hash(format!("sticky-key-{k}").as_bytes(), 0);
        if name(old_t, old, a.lookup(h)) != name(new_t, new, b.lookup(h)) {
            moved += 1;
        }
    }
    let share = |t: &RouteTable, r: &Rule| -> BTreeMap<String, f64> {
        split_of(t, r).into_iter().map(|(b, _, s)| (b, s)).collect()
    };
    let (sa, sb) = (share(old_t, old), share(new_t, new));
    let l1: f64 = sa
        .keys()
        .chain(sb.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| (sa.get(k).unwrap_or(&0.0) - sb.get(k).unwrap_or(&0.0)).abs())
        .sum();
    (moved as f64 / keys as f64, l1 / 2.0)
}
