//! `cargo xtask demo`: shop traffic through `examples/demo.yaml`, over real HTTP.
//!
//! The demo builds a [`Router`] from the example configuration and starts, on
//! 127.0.0.1 (ephemeral ports), one HTTP server per backend answering with its name
//! and a proxy made of `routing-tower`'s layer with one `HttpBackend` per upstream
//! ([`crate::http_harness`]). It generates [`REQUESTS`] requests with a seeded RNG
//! (the same traffic on every run), sends each through the proxy, reads which
//! upstream answered, prints where they went next to where the configuration says
//! they should go, and checks three promises:
//!
//! * (a) requests with `x-canary: true` always reach `checkout-v2`;
//! * (b) the 90/10 canary split is within a 4-sigma binomial bound;
//! * (c) every cart session stays on one backend, and after a live
//!   [`Router::update`] of the cart weights 50/50 → 90/10 sessions stay sticky; the
//!   share of sessions that moved is printed next to the theoretical minimum.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::http_harness::{self, Answer, Harness};
use routing_core::{Config, Forward, RequestInfo, RouteTable, Router, Strategy};

/// The seed used when `--seed` is not given.
pub(crate) const DEFAULT_SEED: u64 = 2024;
/// The configuration, relative to the workspace root.
const CONFIG_PATH: &str = "examples/demo.yaml";
/// How many requests are simulated.
const REQUESTS: usize = 10_000;
/// How many distinct `session` cookies the shoppers use.
const SESSIONS: usize = 1_000;
/// The host every simulated request is for.
const HOST: &str = "shop.example.com";
/// The rule that serves testers who send the canary header.
const TESTERS_RULE: &str = "canary-testers";
/// The rule with the 90/10 canary split.
const CANARY_RULE: &str = "checkout-canary";
/// The sticky rule for carts.
const STICKY_RULE: &str = "cart-sticky";
/// The catch-all rule.
const CATCH_ALL_RULE: &str = "catalog";
/// The backend being canaried.
const CANARY_BACKEND: &str = "checkout-v2";
/// Width of the binomial bound of check (b), in standard deviations.
const SIGMAS: f64 = 4.0;
/// The cart weights the live update switches to (from 50/50).
const UPDATED_CART_WEIGHTS: &[(&str, u64)] = &[("checkout-v1", 90), ("checkout-v2", 10)];

/// Checkout API endpoints the simulated clients call.
const CHECKOUT_PATHS: &[&str] = &[
    "/api/checkout/cart",
    "/api/checkout/shipping",
    "/api/checkout/payment",
    "/api/checkout/confirm",
];
/// Search terms of browsing clients.
const SEARCH_TERMS: &[&str] = &["shoes", "red+dress", "socks", "rain+jacket"];

/// A kind of simulated client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An internal tester sending `x-canary: true` to checkout or cart pages.
    Tester,
    /// A customer calling the checkout API.
    Checkout,
    /// A customer on their cart, with a `session` cookie.
    Cart,
    /// Anyone browsing the catalog.
    Browse,
}

/// One part of the traffic mix.
#[derive(Debug)]
struct Class {
    /// Who sends it.
    kind: Kind,
    /// Its share of all requests, in percent (the shares add up to 100).
    percent: u32,
    /// The rule the configuration should send it to.
    rule: &'static str,
    /// A label for the tables.
    label: &'static str,
    /// What its requests look like.
    looks_like: &'static str,
}

/// The traffic mix.
const MIX: &[Class] = &[
    Class {
        kind: Kind::Tester,
        percent: 10,
        rule: TESTERS_RULE,
        label: "canary testers",
        looks_like: "/api/checkout/* (80 %) or /cart (20 %), x-canary: true",
    },
    Class {
        kind: Kind::Checkout,
        percent: 60,
        rule: CANARY_RULE,
        label: "checkout API",
        looks_like: "/api/checkout/{cart,shipping,payment,confirm}",
    },
    Class {
        kind: Kind::Cart,
        percent: 20,
        rule: STICKY_RULE,
        label: "shopping carts",
        looks_like: "/cart, /cart/items/<sku>; cookie session=<1 of 1000>",
    },
    Class {
        kind: Kind::Browse,
        percent: 10,
        rule: CATCH_ALL_RULE,
        label: "browsing",
        looks_like: "/, /products/<id>, /search?q=<term>",
    },
];

/// A generated request and who sent it.
#[derive(Debug)]
struct Simulated {
    /// The kind of client.
    kind: Kind,
    /// The session (an index into the session ids), for cart requests.
    session: Option<usize>,
    /// The request.
    request: RequestInfo,
}

/// Where one simulated request went.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// Index of the winning rule in [`RouteTable::rules`].
    rule: usize,
    /// Index of the chosen backend in [`RouteTable::backends`].
    backend: usize,
}

/// The result of one check.
#[derive(Debug)]
struct Check {
    /// What is checked.
    title: &'static str,
    /// Whether it held.
    passed: bool,
    /// The numbers behind the verdict, one line each.
    details: Vec<String>,
}

/// Runs the demo; fails if the configuration cannot be loaded or a check fails.
pub(crate) fn run(seed: u64) -> Result<()> {
    let started = Instant::now();
    let path = crate::workspace_root().join(CONFIG_PATH);
    let yaml = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let router = Router::from_yaml(&yaml).with_context(|| format!("{CONFIG_PATH} is not valid"))?;
    let table = router.snapshot();
    for class in MIX {
        rule_index(&table, class.rule)?;
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let sessions: Vec<String> = (0..SESSIONS)
        .map(|_| format!("{:016x}", rng.random::<u64>()))
        .collect();
    let traffic: Vec<Simulated> = (0..REQUESTS)
        .map(|_| simulate(&mut rng, &sessions))
        .collect();
    let http = Harness::start(&router)?;
    let answers = http.send_all(traffic.iter().map(|sim| &sim.request))?;
    http_harness::all_ok(&answers)?;
    let outcomes = traffic
        .iter()
        .zip(&answers)
        .map(|(sim, a)| outcome(&table, &sim.request, a))
        .collect::<Result<Vec<_>>>()?;

    println!("routing demo: real HTTP through routing-tower on 127.0.0.1");
    println!(
        "  config   {CONFIG_PATH} (generation {}: {}, {}, {})",
        table.generation(),
        count(table.backends().len(), "backend"),
        count(table.routes().len(), "route"),
        count(table.rules().len(), "rule")
    );
    println!(
        "  traffic  {REQUESTS} requests for https://{HOST}, {SESSIONS} cart sessions, seed {seed}"
    );
    println!(
        "  path     client -> proxy (routing-tower, {}) -> {} upstream HTTP servers (127.0.0.1)",
        http.proxy(),
        http.upstreams().count()
    );
    print_mix();
    print_by_rule(&table, &outcomes);
    print_split(&table, &outcomes);
    print_by_backend(&table, &outcomes);
    print_upstreams(&http);

    let checks = [
        check_canary_header(&table, &traffic, &outcomes),
        check_canary_split(&table, &outcomes)?,
        check_sticky(&router, &http, &traffic, &outcomes, &sessions)?,
    ];
    section("Checks");
    for c in &checks {
        let verdict = if c.passed { "PASS" } else { "FAIL" };
        println!("  {verdict}  {}", c.title);
        for d in &c.details {
            println!("        {d}");
        }
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    println!();
    println!(
        "{} of {} checks passed",
        checks.len() - failed,
        checks.len()
    );
    // Timing goes to stderr so that stdout is the same on every run.
    eprintln!(
        "xtask: demo ran in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} demo check(s) failed");
    }
    crate::demo_rollout::run()
}

/// Generates one request of a class drawn from [`MIX`].
fn simulate(rng: &mut StdRng, sessions: &[String]) -> Simulated {
    let mut draw = rng.random_range(0..100u32);
    let kind = MIX
        .iter()
        .find(|c| {
            let hit = draw < c.percent;
            draw = draw.saturating_sub(c.percent);
            hit
        })
        .map_or(Kind::Browse, |c| c.kind);
    let url = |path: &str| format!("https://{HOST}{path}");
    let checkout = |rng: &mut StdRng| CHECKOUT_PATHS[rng.random_range(0..CHECKOUT_PATHS.len())];
    let mut session = None;
    let request = match kind {
        Kind::Tester => {
            let path = if rng.random_bool(0.8) {
                checkout(rng)
            } else {
                "/cart"
            };
            RequestInfo::get(&url(path)).header("x-canary", "true")
        }
        Kind::Checkout => RequestInfo::get(&url(checkout(rng))),
        Kind::Cart => {
            let s = rng.random_range(0..sessions.len());
            session = Some(s);
            let path = if rng.random_bool(0.5) {
                "/cart".to_owned()
            } else {
                format!("/cart/items/sku-{}", rng.random_range(1000..10_000))
            };
            RequestInfo::get(&url(&path)).header(
                "cookie",
                &format!("consent=yes; session={}; theme=dark", sessions[s]),
            )
        }
        Kind::Browse => {
            let path = match rng.random_range(0..3) {
                0 => "/".to_owned(),
                1 => format!("/products/{}", rng.random_range(1..5000)),
                _ => format!(
                    "/search?q={}",
                    SEARCH_TERMS[rng.random_range(0..SEARCH_TERMS.len())]
                ),
            };
            RequestInfo::get(&url(&path))
        }
    };
    Simulated {
        kind,
        session,
        request,
    }
}

/// Where one request went: the rule is the one `table` matches (matching is
/// deterministic); the backend is the upstream that answered over HTTP.
fn outcome(table: &RouteTable, request: &RequestInfo, answer: &Answer) -> Result<Outcome> {
    let rule = table
        .find(request)
        .with_context(|| format!("no rule matches {request:?}"))?
        .rule;
    let name = answer
        .backend
        .as_deref()
        .with_context(|| format!("the proxy answered {} to {request:?}", answer.status))?;
    let backend = table
        .backend_id(name)
        .with_context(|| format!("an upstream answered with an unknown name `{name}`"))?;
    Ok(Outcome {
        rule,
        backend: backend.index(),
    })
}

/// Prints what each upstream server counted and the layer's own stats.
fn print_upstreams(http: &Harness) {
    section("Upstream servers (each counts the requests it served)");
    let stats: HashMap<String, routing_tower::stats::StatsSnapshot> = http
        .layer()
        .stats()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    let rows = http
        .upstreams()
        .map(|(name, addr, hits)| {
            let s = stats.get(name);
            let q = |q: f64| {
                s.and_then(|s| s.quantile(q)).map_or_else(
                    || "-".to_owned(),
                    |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
                )
            };
            vec![
                name.to_owned(),
                addr.to_string(),
                hits.to_string(),
                s.map_or(0, |s| s.responses[1]).to_string(),
                q(0.5),
                q(0.99),
            ]
        })
        .collect();
    print_table(
        &[
            "upstream",
            "listens on",
            "served",
            "2xx (layer)",
            "p50",
            "p99",
        ],
        &[L, L, R, R, R, R],
        rows,
    );
}

/// The index of the rule called `name`.
fn rule_index(table: &RouteTable, name: &str) -> Result<usize> {
    table
        .rules()
        .iter()
        .position(|r| r.name() == Some(name))
        .with_context(|| format!("{CONFIG_PATH} has no rule named `{name}`"))
}

/// The forwarding state of the rule called `name`.
fn forward<'t>(table: &'t RouteTable, name: &str) -> Result<&'t Forward> {
    table.rules()[rule_index(table, name)?]
        .forward()
        .with_context(|| format!("rule `{name}` does not forward to backends"))
}

/// A rule's name for display.
fn rule_name(table: &RouteTable, rule: usize) -> String {
    let r = &table.rules()[rule];
    r.name()
        .map_or_else(|| format!("#{}", r.index_in_route()), str::to_owned)
}

/// The backends of a forwarding rule with their share of its traffic (weight / sum
/// of weights), as `(index in RouteTable::backends, weight, share)`.
fn weight_shares(fwd: &Forward) -> Vec<(usize, u32, f64)> {
    let total: f64 = fwd.backends().iter().map(|b| f64::from(b.weight())).sum();
    fwd.backends()
        .iter()
        .map(|b| {
            let share = if total > 0.0 {
                f64::from(b.weight()) / total
            } else {
                0.0
            };
            (b.id().index(), b.weight(), share)
        })
        .collect()
}

/// The share of the traffic mix that [`MIX`] aims at `rule`.
fn mix_share(rule: &str) -> f64 {
    MIX.iter()
        .filter(|c| c.rule == rule)
        .map(|c| f64::from(c.percent) / 100.0)
        .sum()
}

/// Prints the traffic mix.
fn print_mix() {
    section("Simulated traffic");
    let rows = MIX
        .iter()
        .map(|c| {
            vec![
                c.label.to_owned(),
                format!("{} %", c.percent),
                c.looks_like.to_owned(),
            ]
        })
        .collect();
    print_table(
        &["clients", "share", "requests look like"],
        &[L, R, L],
        rows,
    );
}

/// Prints requests per rule, against the share the traffic mix aims at each rule.
fn print_by_rule(table: &RouteTable, outcomes: &[Outcome]) {
    section("Requests by rule (expected: the traffic mix above)");
    let mut counts = vec![0usize; table.rules().len()];
    for o in outcomes {
        counts[o.rule] += 1;
    }
    let rows = (0..table.rules().len())
        .map(|i| {
            let name = rule_name(table, i);
            vec![
                name.clone(),
                counts[i].to_string(),
                percent(ratio(counts[i], outcomes.len())),
                percent(mix_share(&name)),
            ]
        })
        .collect();
    print_table(
        &["rule", "requests", "share", "expected"],
        &[L, R, R, R],
        rows,
    );
}

/// Prints, for each rule, how its requests were split over its backends, against
/// the configured weights.
fn print_split(table: &RouteTable, outcomes: &[Outcome]) {
    section("Backend split within each rule (expected: weight / sum of weights)");
    let mut rows = Vec::new();
    for (i, rule) in table.rules().iter().enumerate() {
        let Some(fwd) = rule.forward() else { continue };
        let in_rule: Vec<&Outcome> = outcomes.iter().filter(|o| o.rule == i).collect();
        for (n, (backend, weight, share)) in weight_shares(fwd).into_iter().enumerate() {
            let got = in_rule.iter().filter(|o| o.backend == backend).count();
            rows.push(vec![
                if n == 0 {
                    rule_name(table, i)
                } else {
                    String::new()
                },
                table.backends()[backend].name().to_owned(),
                weight.to_string(),
                got.to_string(),
                percent(ratio(got, in_rule.len())),
                percent(share),
            ]);
        }
    }
    print_table(
        &["rule", "backend", "weight", "requests", "share", "expected"],
        &[L, L, R, R, R, R],
        rows,
    );
}

/// Prints requests per backend, against the traffic mix times the rules' weights.
fn print_by_backend(table: &RouteTable, outcomes: &[Outcome]) {
    section("Requests by backend (expected: traffic mix x weights)");
    let mut expected = vec![0.0; table.backends().len()];
    for (i, rule) in table.rules().iter().enumerate() {
        let Some(fwd) = rule.forward() else { continue };
        let aimed = mix_share(&rule_name(table, i));
        for (backend, _, share) in weight_shares(fwd) {
            expected[backend] += aimed * share;
        }
    }
    let mut counts = vec![0usize; table.backends().len()];
    for o in outcomes {
        counts[o.backend] += 1;
    }
    let rows = table
        .backends()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            vec![
                b.name().to_owned(),
                counts[i].to_string(),
                percent(ratio(counts[i], outcomes.len())),
                percent(expected[i]),
            ]
        })
        .collect();
    print_table(
        &["backend", "requests", "share", "expected"],
        &[L, R, R, R],
        rows,
    );
}

/// (a) Every request with `x-canary: true` reached the canary backend.
fn check_canary_header(table: &RouteTable, traffic: &[Simulated], outcomes: &[Outcome]) -> Check {
    let testers: Vec<&Outcome> = traffic
        .iter()
        .zip(outcomes)
        .filter(|(sim, _)| sim.kind == Kind::Tester)
        .map(|(_, o)| o)
        .collect();
    let to_canary = testers
        .iter()
        .filter(|o| table.backends()[o.backend].name() == CANARY_BACKEND)
        .count();
    Check {
        title: "(a) header A/B: every request with `x-canary: true` went to checkout-v2",
        passed: !testers.is_empty() && to_canary == testers.len(),
        details: vec![format!(
            "{to_canary} of {} tester requests reached {CANARY_BACKEND}",
            testers.len()
        )],
    }
}

/// (b) The canary rule's share for the canary backend is within [`SIGMAS`] standard
/// deviations of its binomial expectation.
fn check_canary_split(table: &RouteTable, outcomes: &[Outcome]) -> Result<Check> {
    let rule = rule_index(table, CANARY_RULE)?;
    let canary = table
        .backend_id(CANARY_BACKEND)
        .with_context(|| format!("{CONFIG_PATH} has no backend `{CANARY_BACKEND}`"))?
        .index();
    let p = weight_shares(forward(table, CANARY_RULE)?)
        .iter()
        .find(|(b, _, _)| *b == canary)
        .map(|&(_, _, share)| share)
        .with_context(|| format!("rule `{CANARY_RULE}` does not use `{CANARY_BACKEND}`"))?;
    let n = outcomes.iter().filter(|o| o.rule == rule).count();
    let k = outcomes
        .iter()
        .filter(|o| o.rule == rule && o.backend == canary)
        .count();
    let mean = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    let off = k as f64 - mean;
    let in_sigmas = if sigma > 0.0 { off / sigma } else { 0.0 };
    Ok(Check {
        title: "(b) canary split: checkout-v2's share of `checkout-canary` is within 4 sigma",
        passed: n > 0 && off.abs() <= SIGMAS * sigma,
        details: vec![
            format!(
                "{CANARY_BACKEND} got {k} of {n} = {} (configured {})",
                percent(ratio(k, n)),
                percent(p)
            ),
            format!(
                "binomial: expected {mean:.1}, sigma {sigma:.1}, bound +/-{:.1}; off by {off:+.1} ({in_sigmas:+.2} sigma)",
                SIGMAS * sigma
            ),
        ],
    })
}

/// (c) Sessions are sticky, before and after a live weight change; reports how
/// many sessions the change moved against the theoretical minimum.
fn check_sticky(
    router: &Router,
    http: &Harness,
    traffic: &[Simulated],
    outcomes: &[Outcome],
    sessions: &[String],
) -> Result<Check> {
    let old = router.snapshot();
    let sticky = rule_index(&old, STICKY_RULE)?;

    // During the simulation: each session's requests all on one backend?
    let mut seen: HashMap<usize, (usize, usize, bool)> = HashMap::new(); // backend, requests, consistent
    for (sim, o) in traffic.iter().zip(outcomes) {
        let Some(s) = sim.session.filter(|_| o.rule == sticky) else {
            continue;
        };
        let e = seen.entry(s).or_insert((o.backend, 0, true));
        e.1 += 1;
        e.2 &= e.0 == o.backend;
    }
    let cart_requests: usize = seen.values().map(|e| e.1).sum();
    let repeat_sessions = seen.values().filter(|e| e.1 > 1).count();
    let split_sessions = seen.values().filter(|e| !e.2).count();

    // Each session's cart, over HTTP, before the update.
    let cart = |path: &str| -> Vec<RequestInfo> {
        sessions
            .iter()
            .map(|id| {
                RequestInfo::get(&format!("https://{HOST}{path}"))
                    .header("cookie", &format!("session={id}"))
            })
            .collect()
    };
    let (carts, items) = (cart("/cart"), cart("/cart/items/sku-1234"));
    let before = http.send_all(&carts)?;

    // The live update: same configuration, new cart weights, through the handle.
    let mut config: Config = old.config().clone();
    let rule = config
        .routes
        .iter_mut()
        .flat_map(|r| r.rules.iter_mut())
        .find(|r| r.name.as_deref() == Some(STICKY_RULE))
        .with_context(|| format!("no rule `{STICKY_RULE}` in the configuration"))?;
    for b in &mut rule.backends {
        b.weight = UPDATED_CART_WEIGHTS
            .iter()
            .find(|(name, _)| *name == b.name)
            .map(|&(_, w)| w)
            .with_context(|| format!("no updated weight for backend `{}`", b.name))?;
    }
    let generation = router
        .update(config)
        .context("the router refused the updated weights")?;
    let new = router.snapshot();
    ensure!(
        new.generation() == generation,
        "the router did not serve the new table"
    );

    // Where each session goes before and after (and again after, for stickiness).
    let mut moved = 0;
    let mut unstable_after = 0;
    let mut moves: HashMap<(String, String), usize> = HashMap::new();
    let after_all = http.send_all(&carts)?;
    let again_all = http.send_all(&items)?;
    for i in 0..sessions.len() {
        let before = outcome(&old, &carts[i], &before[i])?;
        let after = outcome(&new, &carts[i], &after_all[i])?;
        let again = outcome(&new, &items[i], &again_all[i])?;
        ensure!(
            before.rule == sticky && after.rule == sticky,
            "cart requests left rule `{STICKY_RULE}`"
        );
        unstable_after += usize::from(after.backend != again.backend);
        if before.backend != after.backend {
            moved += 1;
            *moves
                .entry((
                    old.backends()[before.backend].name().to_owned(),
                    new.backends()[after.backend].name().to_owned(),
                ))
                .or_default() += 1;
        }
    }

    // The same comparison over every slot of the rule's Maglev table.
    let (old_slots, new_slots) = (maglev_owners(&old)?, maglev_owners(&new)?);
    ensure!(
        old_slots.len() == new_slots.len(),
        "the Maglev table size changed"
    );
    let moved_slots = old_slots
        .iter()
        .zip(&new_slots)
        .filter(|(a, b)| a != b)
        .count();

    // The least any assignment can move: the total variation distance between the old
    // and the new shares (the share some backends must give up).
    let shares = |t: &RouteTable| -> Result<HashMap<String, f64>> {
        Ok(weight_shares(forward(t, STICKY_RULE)?)
            .into_iter()
            .map(|(b, _, s)| (t.backends()[b].name().to_owned(), s))
            .collect())
    };
    let (before_shares, after_shares) = (shares(&old)?, shares(&new)?);
    let minimum: f64 = before_shares
        .iter()
        .map(|(name, s)| (s - after_shares.get(name).copied().unwrap_or(0.0)).max(0.0))
        .sum();

    let mut moves: Vec<_> = moves.into_iter().collect();
    moves.sort();
    let directions = if moves.is_empty() {
        "none".to_owned()
    } else {
        moves
            .iter()
            .map(|((from, to), n)| format!("{from} -> {to}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let weights = |t: &RouteTable| -> Result<String> {
        Ok(weight_shares(forward(t, STICKY_RULE)?)
            .iter()
            .map(|(_, w, _)| w.to_string())
            .collect::<Vec<_>>()
            .join("/"))
    };
    let rows = vec![
        vec![
            "sessions moved".to_owned(),
            percent(ratio(moved, sessions.len())),
            format!(
                "{moved} of {} sessions (a sample: +/-{:.1} points)",
                sessions.len(),
                100.0 * (minimum * (1.0 - minimum) / sessions.len() as f64).sqrt()
            ),
        ],
        vec![
            "Maglev slots moved".to_owned(),
            percent(ratio(moved_slots, old_slots.len())),
            format!("{moved_slots} of {} slots", old_slots.len()),
        ],
        vec![
            "theoretical minimum".to_owned(),
            percent(minimum),
            "share the weight change must move".to_owned(),
        ],
    ];
    let mut details = vec![
        format!(
            "{} sessions sent {cart_requests} cart requests ({repeat_sessions} sent several): {split_sessions} split over backends",
            seen.len()
        ),
        format!(
            "live update via Router::update: `{STICKY_RULE}` {} -> {}, generation {} -> {generation}",
            weights(&old)?,
            weights(&new)?,
            old.generation()
        ),
        format!(
            "after the update: {unstable_after} of {} sessions split over backends",
            sessions.len()
        ),
    ];
    details.extend(table_lines(&[L, R, L], &[], rows));
    details.push(format!("sessions that moved: {directions}"));
    Ok(Check {
        title:
            "(c) sticky carts: each session stays on one backend, before and after a live update",
        passed: split_sessions == 0 && repeat_sessions > 0 && unstable_after == 0,
        details,
    })
}

/// The backend name owning each slot of the sticky rule's Maglev table.
fn maglev_owners(table: &RouteTable) -> Result<Vec<&str>> {
    let fwd = forward(table, STICKY_RULE)?;
    let Strategy::ConsistentHash(maglev) = fwd.strategy() else {
        bail!("rule `{STICKY_RULE}` does not use consistent hashing");
    };
    maglev
        .slots()
        .iter()
        .map(|&pos| {
            let b = fwd
                .backends()
                .get(pos as usize)
                .context("a Maglev slot points past the rule's backends")?;
            Ok(table.backend(b.id()).name())
        })
        .collect()
}

/// `part / whole`, or 0 for an empty whole.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `n` and a noun, in the plural unless `n` is 1.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A fraction as a percentage with one decimal.
fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// Prints a section header.
fn section(title: &str) {
    println!();
    println!("== {title}");
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    /// Left-aligned (text).
    Left,
    /// Right-aligned (numbers).
    Right,
}
use Align::{Left as L, Right as R};

/// Prints an aligned table, indented by two spaces.
fn print_table(header: &[&str], align: &[Align], rows: Vec<Vec<String>>) {
    for line in table_lines(align, header, rows) {
        println!("  {line}");
    }
}

/// Lays out a table: an optional header (with a rule under it) and aligned rows.
fn table_lines(align: &[Align], header: &[&str], rows: Vec<Vec<String>>) -> Vec<String> {
    let columns = align.len();
    let mut widths = vec![0; columns];
    let cells = || header.iter().map(|h| h.chars().count());
    for (w, h) in widths.iter_mut().zip(cells()) {
        *w = h;
    }
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let parts: Vec<String> = cells
            .zip(align.iter().zip(&widths))
            .map(|(c, (a, &w))| match a {
                Align::Left => format!("{c:<w$}"),
                Align::Right => format!("{c:>w$}"),
            })
            .collect();
        parts.join("   ").trim_end().to_owned()
    };
    let mut out = Vec::new();
    if !header.is_empty() {
        out.push(line(&mut header.iter().map(|h| (*h).to_owned())));
        out.push(line(&mut widths.iter().map(|&w| "-".repeat(w))));
    }
    for row in rows {
        out.push(line(&mut row.into_iter()));
    }
    out
}

#[cfg(test)]
mod tests {
    /// The demo's checks pass (real HTTP on 127.0.0.1, as `cargo xtask demo`) with
    /// the default seed and another.
    #[test]
    fn demo_checks_pass() {
        for seed in [super::DEFAULT_SEED, 7] {
            super::run(seed).expect("the demo's checks pass");
        }
    }

    /// Why `examples/demo.yaml` repeats the path prefixes in the header rule: path
    /// specificity ranks before header conditions, so a header-only rule loses to a
    /// longer prefix.
    #[test]
    fn a_header_only_rule_loses_to_a_longer_prefix() {
        use routing_core::{RequestInfo, RouteTable};
        let table = RouteTable::from_yaml(
            r#"
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    rules:
      - name: testers
        matches: [{headers: [{name: x-canary, exact: "true"}]}]
        backends: [{name: v2}]
      - name: checkout
        matches: [{path: {prefix: /api/checkout}}]
        backends: [{name: v1}]
"#,
        )
        .expect("the configuration is valid");
        let route = |path: &str| {
            let req = RequestInfo::get(&format!("https://shop.example.com{path}"))
                .header("x-canary", "true");
            let decision = table
                .decide(&req, &mut rand::rng())
                .expect("every request is routed");
            decision.rule().name().map(str::to_owned)
        };
        assert_eq!(route("/api/checkout/pay").as_deref(), Some("checkout"));
        assert_eq!(route("/elsewhere").as_deref(), Some("testers"));
    }

    #[test]
    fn tables_align() {
        use super::{L, R};
        let lines = super::table_lines(
            &[L, R],
            &["name", "n"],
            vec![
                vec!["a".into(), "100".into()],
                vec!["bcdef".into(), "2".into()],
            ],
        );
        assert_eq!(
            lines,
            ["name      n", "-----   ---", "a       100", "bcdef     2"]
        );
    }
}
