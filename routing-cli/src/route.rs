//! `routing check|explain|simulate|convert …`: check, explain, simulate and convert route tables, native
//! or imported (Gateway API `HTTPRoute`, Istio `VirtualService` + `DestinationRule`,
//! AWS ALB `describe-rules` JSON; the kind of each document is detected).
//!
//! * `check FILE…` — parse, import, validate; every error and warning with
//!   `file:line`, resource and field path; exit status 1 on error.
//! * `explain FILE… --request 'GET https://host/path -H name:value …'` — the rule
//!   that wins and why, the rules that lost and on what, the backend split, and
//!   where the request's sticky key (if any) sends it.
//! * `simulate FILE… [--requests N] [--sticky-keys K] [--weights-change FILE…]
//!   [--request R]…` — the per-backend split of N picks per forwarding rule (or per
//!   given request), and with a second configuration the share of K sticky keys
//!   that move, against the minimum any scheme must move.
//! * `convert FILE… --to native` — the native YAML.
//!
//! Every command takes `--backend-map FILE` (source reference → native backend),
//! `--namespace NS` (for Kubernetes resources without one) and `--json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use rand::{rngs::StdRng, SeedableRng};
use routing_core::import::{self, BackendMap, ImportErrors, ImportOptions, Imported, Source};
use routing_core::{
    Action, HostSpecificity, MaglevTable, MatchSummary, PathMatch, PathSpecificity, RequestInfo,
    RouteTable, Rule, RuleMatch, RulePrecedence, SessionPersistence, Strategy,
};
use serde_json::{json, Value};

/// The usage text of `route`.
pub(crate) const USAGE: &str = "\
Usage: routing <check|explain|simulate|convert> FILE... [OPTIONS]

  check FILE...                 Parse (native, Gateway API HTTPRoute, Istio
                                VirtualService/DestinationRule, ALB describe-rules
                                JSON; detected per document), import and validate.
                                Exit 1 on any error.
  explain FILE... --request R   Which rule R matches and why, the rules that lost,
                                the backend split and where a sticky key sends R.
                                R: 'GET https://shop.example.com/cart -H x-a:1 -H cookie:k=v'
                                (method optional; --source-ip IP sets the client).
  simulate FILE... [--requests N] [--sticky-keys K] [--weights-change FILE]...
               [--request R]... [--seed S]
                                Per-backend split of N picks (default 100000) per
                                forwarding rule, or per request R; with
                                --weights-change, the share of K sticky keys
                                (default 10000) that change backend, against the
                                minimum any scheme must move.
  convert FILE... --to native   Print the native YAML.

Options for all: --backend-map FILE (YAML map: source reference -> backend name or
{name, address}), --namespace NS (default `default`), --json,
--allow-lossy (import conditions that gate access but cannot be applied, as
warnings; refused by default), --deny-warnings (every warning is an error),
--gateway NAME (the gateway this router stands for; repeatable; default `mesh`).
Requests are matched on their normalised path, as the layer does.";

/// Which command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Check,
    Explain,
    Simulate,
    Convert,
}

/// `route`'s parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) command: Command,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) backend_map: Option<PathBuf>,
    pub(crate) namespace: Option<String>,
    pub(crate) json: bool,
    pub(crate) requests: Vec<String>,
    pub(crate) source_ip: Option<IpAddr>,
    pub(crate) count: u64,
    pub(crate) sticky_keys: u64,
    pub(crate) weights_change: Vec<PathBuf>,
    pub(crate) seed: u64,
    pub(crate) allow_lossy: bool,
    pub(crate) deny_warnings: bool,
    pub(crate) gateways: Vec<String>,
}

/// Most picks or keys a simulation makes (bounded work).
const MAX_PICKS: u64 = 100_000_000;

/// Parses the arguments after `route`.
pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
    let (cmd, rest) = args.split_first().ok_or("`routing` needs a command")?;
    let command = match cmd.as_str() {
        "check" => Command::Check,
        "explain" => Command::Explain,
        "simulate" => Command::Simulate,
        "convert" => Command::Convert,
        c => return Err(format!("unknown command `{c}`")),
    };
    let mut o = Options {
        command,
        files: Vec::new(),
        backend_map: None,
        namespace: None,
        json: false,
        requests: Vec::new(),
        source_ip: None,
        count: 100_000,
        sticky_keys: 10_000,
        weights_change: Vec::new(),
        seed: 1,
        allow_lossy: false,
        deny_warnings: false,
        gateways: Vec::new(),
    };
    let mut to = None;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("`{flag}` needs a value"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=MAX_PICKS).contains(n))
                .ok_or_else(|| format!("`{flag}` needs an integer from 1 to {MAX_PICKS}"))
        };
        match flag {
            "--json" => o.json = true,
            "--allow-lossy" => o.allow_lossy = true,
            "--deny-warnings" => o.deny_warnings = true,
            "--gateway" => o.gateways.push(value()?),
            "--backend-map" => o.backend_map = Some(value()?.into()),
            "--namespace" => o.namespace = Some(value()?),
            "--request" => o.requests.push(value()?),
            "--source-ip" => {
                let v = value()?;
                o.source_ip = Some(v.parse().map_err(|_| format!("bad IP address `{v}`"))?);
            }
            "--requests" => o.count = number(value()?)?,
            "--sticky-keys" => o.sticky_keys = number(value()?)?,
            "--weights-change" => o.weights_change.push(value()?.into()),
            "--seed" => {
                let v = value()?;
                o.seed = v.parse().map_err(|_| format!("bad seed `{v}`"))?;
            }
            "--to" => to = Some(value()?),
            f if f.starts_with('-') => return Err(format!("unexpected option `{f}`")),
            file => o.files.push(file.into()),
        }
    }
    if o.files.is_empty() {
        return Err(format!("`routing {cmd}` needs at least one FILE"));
    }
    match (&o.command, to.as_deref()) {
        (Command::Convert, Some("native")) => {}
        (Command::Convert, Some(t)) => return Err(format!("`--to` supports `native`, not `{t}`")),
        (Command::Convert, None) => return Err("`convert` needs `--to native`".into()),
        (_, Some(_)) => return Err("`--to` is for `convert`".into()),
        _ => {}
    }
    if o.command == Command::Explain && o.requests.len() != 1 {
        return Err("`explain` needs exactly one `--request`".into());
    }
    Ok(o)
}

/// Runs the command; the text (or JSON) to print and whether it succeeded.
pub(crate) fn run(o: &Options) -> Result<(String, bool)> {
    let loaded = load(&o.files, o)?;
    match o.command {
        Command::Check => Ok(check(&loaded, o.json)),
        Command::Convert => match &loaded.table {
            Ok(_) => Ok((loaded.imported.config.to_yaml(), true)),
            Err(_) => Ok(check(&loaded, o.json)),
        },
        Command::Explain | Command::Simulate => {
            let Ok(table) = &loaded.table else {
                return Ok(check(&loaded, o.json));
            };
            let text = if o.command == Command::Explain {
                let req = parse_request(&o.requests[0], o.source_ip)?;
                match req.normalize_path(table.path_normalization()) {
                    Ok(req) => explain(&loaded, table, &req, o.json),
                    Err(e) if o.json => {
                        pretty(&json!({"matched": false, "status": 400, "reason": e.to_string()}))
                    }
                    Err(e) => format!("the layer answers 400: {e}\n"),
                }
            } else {
                simulate(table, o)?
            };
            Ok((text, true))
        }
    }
}

/// Files read, imported and validated.
pub(crate) struct Loaded {
    imported: Imported,
    table: Result<RouteTable, ImportErrors>,
}

fn load(files: &[PathBuf], o: &Options) -> Result<Loaded> {
    let mut texts = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        texts.push((f.display().to_string(), text));
    }
    let mut opts = ImportOptions::default()
        .with_allow_lossy(o.allow_lossy)
        .with_deny_warnings(o.deny_warnings)
        .with_gateways(o.gateways.iter().cloned());
    if let Some(ns) = &o.namespace {
        opts = opts.with_default_namespace(ns.clone());
    }
    if let Some(m) = &o.backend_map {
        let text =
            std::fs::read_to_string(m).with_context(|| format!("reading {}", m.display()))?;
        let map =
            BackendMap::from_yaml(&text).with_context(|| format!("backend map {}", m.display()))?;
        opts = opts.with_backend_map(map);
    }
    let sources: Vec<Source<'_>> = texts.iter().map(|(n, t)| Source::new(n, t)).collect();
    match import::import(&sources, &opts) {
        Ok(imported) => {
            let table = imported.validate();
            Ok(Loaded { imported, table })
        }
        Err(errors) => Ok(Loaded {
            imported: Imported::default(),
            table: Err(errors),
        }),
    }
}

/// `check`: counts, warnings, errors.
fn check(l: &Loaded, as_json: bool) -> (String, bool) {
    let (warnings, errors) = match &l.table {
        Ok(_) => (l.imported.warnings.as_slice(), &[][..]),
        Err(e) => (e.warnings(), e.errors()),
    };
    let ok = errors.is_empty();
    let cfg = &l.imported.config;
    let rules: usize = cfg.routes.iter().map(|r| r.rules.len()).sum();
    if as_json {
        let v = json!({
            "ok": ok,
            "kinds": l.imported.kinds.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "routes": cfg.routes.len(),
            "rules": rules,
            "backends": cfg.backends.len(),
            "warnings": warnings,
            "errors": errors,
        });
        return (pretty(&v), ok);
    }
    let mut s = String::new();
    for w in warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    for e in errors {
        let _ = writeln!(s, "error: {e}");
    }
    if ok {
        let kinds: Vec<String> = l.imported.kinds.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            s,
            "ok: {} route{}, {rules} rule{}, {} backend{} (read: {}){}",
            cfg.routes.len(),
            plural(cfg.routes.len()),
            plural(rules),
            cfg.backends.len(),
            plural(cfg.backends.len()),
            kinds.join(", "),
            if warnings.is_empty() {
                String::new()
            } else {
                format!(", {} warning{}", warnings.len(), plural(warnings.len()))
            }
        );
    } else {
        let _ = writeln!(s, "{} error{}", errors.len(), plural(errors.len()));
    }
    (s, ok)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Parses `[METHOD] URL [-H name:value]…`.
pub(crate) fn parse_request(spec: &str, source: Option<IpAddr>) -> Result<RequestInfo> {
    let mut words = spec.split_whitespace().peekable();
    let first = words.next().context("empty request")?;
    let (method, url) = if first.contains('/') {
        ("GET", first)
    } else {
        (
            first,
            words
                .next()
                .context("request needs a URL after the method")?,
        )
    };
    let method: http::Method = method
        .parse()
        .map_err(|_| anyhow::anyhow!("bad method `{method}`"))?;
    if url.parse::<http::Uri>().is_err() {
        bail!("bad URL `{url}`");
    }
    let mut req = RequestInfo::new(method, url);
    while let Some(w) = words.next() {
        if w != "-H" {
            bail!("unexpected `{w}` in the request (headers are `-H name:value`)");
        }
        let mut h = words.next().context("`-H` needs `name:value`")?.to_owned();
        while words.peek().is_some_and(|n| *n != "-H") {
            h.push(' ');
            h.push_str(words.next().unwrap_or_default());
        }
        let (name, value) = h.split_once(':').context("a header is `name:value`")?;
        if http::HeaderName::try_from(name.trim()).is_err()
            || http::HeaderValue::try_from(value.trim()).is_err()
        {
            bail!("bad header `{h}`");
        }
        req = req.header(name.trim(), value.trim());
    }
    if let Some(ip) = source {
        req = req.source(ip);
    }
    Ok(req)
}

fn rule_label(table: &RouteTable, ri: usize) -> String {
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
fn split_of(table: &RouteTable, rule: &Rule) -> Vec<(String, u32, f64)> {
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
fn explain(l: &Loaded, table: &RouteTable, req: &RequestInfo, as_json: bool) -> String {
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
    if as_json {
        return pretty(&json!({
            "matched": true,
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
    match (&sticky, key, &keyed_backend) {
        (_, Some(k), Some(b)) => {
            let _ = writeln!(
                s,
                "sticky   key hash {k:016x} → {b} (every request with this key)"
            );
        }
        (Some(t), _, _) => {
            let _ = writeln!(s, "sticky   {t}; this request has no key: a weighted pick");
        }
        _ => {
            let _ = writeln!(s, "sticky   none: every request is a weighted pick");
        }
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

/// A rule key stable across two configurations: route name and rule position.
fn rule_key(table: &RouteTable, rule: &Rule) -> (String, usize) {
    (
        table.routes()[rule.route_index()].name().to_owned(),
        rule.index_in_route(),
    )
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
fn simulate(table: &RouteTable, o: &Options) -> Result<String> {
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
            match new_rule {
                None => {
                    let _ = writeln!(
                        s,
                        "  (no rule {} {} in the new configuration)",
                        key.0, key.1
                    );
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
                    churn = json!({"keys": o.sticky_keys, "moved": moved, "minimum": minimum});
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use routing_core::RouteRequest;

    const CANARY: &str = "\
backends: [{name: v1}, {name: v2}]
routes:
  - name: shop
    hostnames: [shop.example.com]
    rules:
      - name: testers
        matches: [{headers: [{name: x-canary, exact: \"true\"}]}]
        backends: [{name: v2}]
      - name: users
        matches: [{path: {prefix: /api}}]
        backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
        load_balancer: {consistent_hash: {header: x-user}}
      - backends: [{name: v1, weight: 50}, {name: v2, weight: 50}]
";

    /// Writes `files` into a fresh directory; returns their paths.
    fn write(tag: &str, files: &[(&str, &str)]) -> Vec<PathBuf> {
        let dir = std::env::temp_dir().join(format!("routing-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        files
            .iter()
            .map(|(n, t)| {
                let p = dir.join(n);
                std::fs::write(&p, t).unwrap();
                p
            })
            .collect()
    }

    fn opts(args: &[&str], files: &[PathBuf]) -> Options {
        let mut a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        a.extend(files.iter().map(|f| f.display().to_string()));
        parse(&a).unwrap()
    }

    #[test]
    fn parses_arguments() {
        let o = parse(&[
            "simulate".into(),
            "a.yaml".into(),
            "--requests=10".into(),
            "--sticky-keys".into(),
            "5".into(),
            "--weights-change".into(),
            "b.yaml".into(),
            "--json".into(),
        ])
        .unwrap();
        assert_eq!((o.count, o.sticky_keys, o.json), (10, 5, true));
        assert_eq!(o.weights_change, [PathBuf::from("b.yaml")]);
        assert!(parse(&["explain".into(), "a.yaml".into()])
            .unwrap_err()
            .contains("--request"));
        assert!(parse(&["convert".into(), "a.yaml".into()])
            .unwrap_err()
            .contains("--to native"));
        assert!(parse(&["convert".into(), "a".into(), "--to".into(), "istio".into()]).is_err());
        assert!(parse(&["check".into()]).unwrap_err().contains("FILE"));
        assert!(parse(&[
            "simulate".into(),
            "a".into(),
            "--requests".into(),
            "0".into()
        ])
        .is_err());
        assert!(parse(&["frobnicate".into(), "a".into()]).is_err());
    }

    #[test]
    fn parses_requests() {
        let r = parse_request(
            "POST https://a.test/x?y=1 -H x-a:1 -H user-agent: Mozilla 5.0",
            None,
        )
        .unwrap();
        assert_eq!(r.method(), &http::Method::POST);
        assert_eq!(r.headers()["user-agent"], "Mozilla 5.0");
        assert_eq!(r.headers()["x-a"], "1");
        let r = parse_request("http://a.test/", Some("192.0.2.1".parse().unwrap())).unwrap();
        assert_eq!(r.method(), &http::Method::GET);
        assert!(parse_request("GET http://a/ x-a:1", None).is_err());
        assert!(parse_request("GET http://a/ -H nocolon", None).is_err());
        assert!(parse_request("", None).is_err());
    }

    #[test]
    fn check_reports_errors_with_lines_and_fails() {
        let bad = "backends: [{name: a}]\nroutes:\n  - name: r\n    rules:\n      - backends: [{name: a, weight: 2000000}]\n";
        let files = write("check", &[("bad.yaml", bad), ("good.yaml", CANARY)]);
        let (out, ok) = run(&opts(&["check"], &files[..1])).unwrap();
        assert!(!ok);
        assert!(out.contains("bad.yaml:5"), "{out}");
        assert!(
            out.contains("routes[0].rules[0].backends[0].weight"),
            "{out}"
        );
        let (out, ok) = run(&opts(&["check", "--json"], &files[..1])).unwrap();
        assert!(!ok);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["errors"][0]["at"]["line"], 5);
        let (out, ok) = run(&opts(&["check"], &files[1..])).unwrap();
        assert!(ok, "{out}");
        assert!(
            out.starts_with("ok: 1 route, 3 rules, 2 backends (read: native)"),
            "{out}"
        );
    }

    #[test]
    fn explain_names_the_winner_the_losers_and_the_sticky_backend() {
        let files = write("explain", &[("c.yaml", CANARY)]);
        let mut o = opts(
            &[
                "explain",
                "--json",
                "--request",
                "GET https://shop.example.com/api/cart -H x-user:alice -H x-canary:true",
            ],
            &files,
        );
        let (out, ok) = run(&o).unwrap();
        assert!(ok);
        let v: Value = serde_json::from_str(&out).unwrap();
        // More header conditions do not beat a longer path prefix: /api wins.
        assert_eq!(v["rule_name"], "users", "{out}");
        assert_eq!(v["lost"].as_array().unwrap().len(), 2, "{out}");
        assert_eq!(v["lost"][0]["lost_on"], "a more specific path won");
        assert_eq!(v["split"][0]["weight"], 90);
        let sticky = v["sticky_backend"].as_str().unwrap().to_owned();
        // The same key always lands on the same backend.
        for _ in 0..5 {
            let (out, _) = run(&o).unwrap();
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["sticky_backend"], sticky.as_str());
        }
        o.json = false;
        let (text, _) = run(&o).unwrap();
        assert!(text.contains("matched  shop rule 1 (users)"), "{text}");
        assert!(text.contains(&format!("→ {sticky}")), "{text}");
        o.requests = vec!["GET https://other.example.com/".into()];
        let (text, ok) = run(&o).unwrap();
        assert!(ok && text.starts_with("no rule matches"), "{text}");
    }

    /// `simulate --json` of `before` (20 000 picks) with `--weights-change after`
    /// (20 000 sticky keys).
    fn simulate_change(tag: &str, before: (&str, &str), after: (&str, &str)) -> Value {
        let files = write(tag, &[before, after]);
        let mut o = opts(
            &[
                "simulate",
                "--json",
                "--requests",
                "20000",
                "--sticky-keys",
                "20000",
            ],
            &files[..1],
        );
        o.weights_change = vec![files[1].clone()];
        let (out, ok) = run(&o).unwrap();
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn simulate_splits_and_measures_sticky_churn_against_the_minimum() {
        let after = CANARY
            .replace("weight: 90", "weight: 50")
            .replace("weight: 10}", "weight: 50}");
        let v = simulate_change("simulate", ("a.yaml", CANARY), ("b.yaml", &after));
        let users = &v["runs"][1];
        assert!(users["rule"].as_str().unwrap().contains("users"));
        for b in users["backends"].as_array().unwrap() {
            assert!(b["sigma"].as_f64().unwrap().abs() < 5.0, "{b}");
        }
        let churn = &users["sticky_churn"];
        let (moved, min) = (
            churn["moved"].as_f64().unwrap(),
            churn["minimum"].as_f64().unwrap(),
        );
        assert!((min - 0.40).abs() < 1e-9, "{churn}");
        // Maglev moves close to the minimum: 90/10 → 50/50 must move 40 %.
        assert!(moved >= min - 0.02 && moved <= min + 0.03, "{churn}");
        // An unchanged rule moves nothing.
        assert_eq!(v["runs"][2]["sticky_churn"]["moved"], 0.0);
    }

    #[test]
    fn convert_prints_native_yaml_that_reads_back() {
        let files = write("convert", &[("c.yaml", CANARY)]);
        let (out, ok) = run(&opts(&["convert", "--to", "native"], &files)).unwrap();
        assert!(ok);
        let cfg = routing_core::Config::from_yaml(&out).unwrap();
        assert_eq!(cfg, routing_core::Config::from_yaml(CANARY).unwrap());
    }

    fn fixture(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../routing-core/tests/fixtures/import")
            .join(rel)
    }

    #[test]
    fn fail_closed_imports_and_normalised_explain() {
        // An ALB rule that authenticates: refused (exit 1) unless --allow-lossy;
        // --deny-warnings turns its warning into an error again.
        let files = [fixture("alb/authenticated.json")];
        let (out, ok) = run(&opts(&["check"], &files)).unwrap();
        assert!(!ok, "{out}");
        assert!(out.contains("authenticate-oidc"), "{out}");
        let (out, ok) = run(&opts(&["check", "--allow-lossy"], &files)).unwrap();
        assert!(ok, "{out}");
        let (out, ok) = run(&opts(
            &["check", "--allow-lossy", "--deny-warnings"],
            &files,
        ))
        .unwrap();
        assert!(!ok, "{out}");
        // Istio: `ratings` is bound to bookinfo-gateway; standing for it brings it in.
        let files = [fixture("istio/bookinfo.yaml")];
        let req = "GET http://ratings.bookinfo.svc.cluster.local/ratings/1";
        let (out, _) = run(&opts(&["explain", "--json", "--request", req], &files)).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["matched"], false, "{v}");
        let o = opts(
            &[
                "explain",
                "--json",
                "--gateway",
                "bookinfo/bookinfo-gateway",
                "--request",
                req,
            ],
            &files,
        );
        let v: Value = serde_json::from_str(&run(&o).unwrap().0).unwrap();
        assert_eq!(v["rule_name"], "legacy", "{v}");
        // explain matches the normalised path, as the layer does.
        let files = write("norm", &[("canary.yaml", CANARY)]);
        let o = opts(
            &[
                "explain",
                "--json",
                "--request",
                "GET http://shop.example.com/x/../%61pi/cart",
            ],
            &files,
        );
        let v: Value = serde_json::from_str(&run(&o).unwrap().0).unwrap();
        assert_eq!(v["rule_name"], "users", "{v}");
        let o = opts(
            &[
                "explain",
                "--request",
                "GET http://shop.example.com/api%2fcart",
            ],
            &files,
        );
        assert!(run(&o).unwrap().0.contains("400"));
    }

    #[test]
    fn istio_manifests_are_checked_and_explained_with_their_source_lines() {
        let files = [fixture("istio/bookinfo.yaml")];
        let (out, ok) = run(&opts(&["check", "--json"], &files)).unwrap();
        assert!(ok, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["kinds"], json!(["VirtualService", "DestinationRule"]));
        let gateways = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["at"]["path"] == "spec.gateways")
            .expect("a warning for `gateways`");
        assert!(gateways["at"]["line"].as_u64().is_some());
        // Istio: the first matching http route wins; `end-user: jason` goes to v2.
        let o = opts(
            &[
                "explain",
                "--json",
                "--request",
                "GET http://reviews/x -H end-user:jason",
            ],
            &files,
        );
        let v: Value = serde_json::from_str(&run(&o).unwrap().0).unwrap();
        assert_eq!(v["rule_name"], "jason");
        assert_eq!(v["split"][0]["backend"], "reviews/v2");
        assert!(
            v["from"].as_str().unwrap().contains("bookinfo.yaml:"),
            "{v}"
        );
        let o = opts(
            &["explain", "--json", "--request", "GET http://reviews/x"],
            &files,
        );
        let v: Value = serde_json::from_str(&run(&o).unwrap().0).unwrap();
        assert_eq!(v["split"][0]["backend"], "reviews/v1");
        // convert: the native YAML validates and routes the same way.
        let (yaml, ok) = run(&opts(&["convert", "--to", "native"], &files)).unwrap();
        assert!(ok);
        let t = RouteTable::new(routing_core::Config::from_yaml(&yaml).unwrap()).unwrap();
        let d = t
            .decide(
                &RequestInfo::get("http://reviews/x").header("end-user", "jason"),
                &mut StdRng::seed_from_u64(1),
            )
            .unwrap();
        assert_eq!(d.backend().unwrap().name(), "reviews/v2");
    }

    #[test]
    fn mixed_kinds_check_together_and_errors_fail_with_their_source_line() {
        let files = [
            fixture("gateway/store.yaml"),
            fixture("istio/canary.yaml"),
            fixture("alb/path-host.json"),
        ];
        let (out, ok) = run(&opts(&["check", "--json"], &files)).unwrap();
        assert!(ok, "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let kinds: Vec<&str> = v["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        for k in ["HTTPRoute", "VirtualService", "ALB rules"] {
            assert!(kinds.contains(&k), "{kinds:?}");
        }
        let files = [fixture("gateway/unknown-field.yaml")];
        let (out, ok) = run(&opts(&["check"], &files)).unwrap();
        assert!(!ok);
        assert!(out.contains("unknown-field.yaml:"), "{out}");
        assert!(out.contains("spec.rules[0].matchez"), "{out}");
    }

    #[test]
    fn alb_blue_green_shift_moves_the_minimum_of_sticky_keys() {
        let before = std::fs::read_to_string(fixture("alb/blue-green.json")).unwrap();
        assert!(before.contains("\"Weight\": 80") && before.contains("\"Weight\": 20"));
        let after = before
            .replace("\"Weight\": 80", "\"Weight\": 50")
            .replace("\"Weight\": 20", "\"Weight\": 50");
        let v = simulate_change("alb", ("before.json", &before), ("after.json", &after));
        let run0 = v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["backends"].as_array().unwrap().len() == 3)
            .expect("the weighted rule");
        let blue = run0["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["backend"] == "payments-blue")
            .unwrap();
        assert!((blue["expected"].as_f64().unwrap() - 0.8).abs() < 1e-9);
        assert!(blue["sigma"].as_f64().unwrap().abs() < 5.0, "{blue}");
        let churn = &run0["sticky_churn"];
        let (moved, min) = (
            churn["moved"].as_f64().unwrap(),
            churn["minimum"].as_f64().unwrap(),
        );
        assert!((min - 0.30).abs() < 1e-9, "{churn}");
        assert!(moved >= min - 0.02 && moved <= min + 0.03, "{churn}");
    }
}
