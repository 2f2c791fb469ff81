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

mod effect;
mod explain;
mod shadow;
mod simulate;
#[cfg(test)]
mod tests;

use explain::explain;
use simulate::simulate;

/// The usage text of `route`.
pub(crate) const USAGE: &str = "\
Usage: routing <check|explain|simulate|convert> FILE... [OPTIONS]

  check FILE...                 Parse (native, Gateway API HTTPRoute, Istio
                                VirtualService/DestinationRule, ALB describe-rules
                                JSON; detected per document), import and validate.
                                Exit 1 on any error.
  explain FILE... --request R   Which rule R matches and why, the rules that lost,
                                the backend split, and everything the rule does
                                to R (see below).
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
--gateway NAME (the gateway this router stands for; repeatable; default `mesh`),
--alb-stickiness alb|library (ALB target-group stickiness: `alb` keeps a session on
a weight-0 group as ALB does; default `library`, warned).
explain: --cookie-backend B (the request carries a valid stickiness cookie for B:
shows whether it pins). Requests are matched on their normalised path, as the layer
does; explain shows the rule's whole effect (redirect Location, forwarded request
line and host, header changes, mirrors, fault, timeouts, retries, stickiness).
check also warns about unreachable rules.";

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
    pub(crate) cookie_backend: Option<String>,
    pub(crate) alb_stickiness: bool,
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
        cookie_backend: None,
        alb_stickiness: false,
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
            "--cookie-backend" => o.cookie_backend = Some(value()?),
            "--alb-stickiness" => {
                o.alb_stickiness = match value()?.as_str() {
                    "alb" => true,
                    "library" => false,
                    v => {
                        return Err(format!(
                            "`--alb-stickiness` is `alb` or `library`, not `{v}`"
                        ))
                    }
                }
            }
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
                    Ok(req) => explain(&loaded, table, &req, o.json, o.cookie_backend.as_deref()),
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
    deny_warnings: bool,
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
        .with_gateways(o.gateways.iter().cloned())
        .with_alb_cookie_beats_weight(o.alb_stickiness);
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
            Ok(Loaded {
                deny_warnings: o.deny_warnings,
                imported,
                table,
            })
        }
        Err(errors) => Ok(Loaded {
            deny_warnings: o.deny_warnings,
            imported: Imported::default(),
            table: Err(errors),
        }),
    }
}

/// A warning per rule no request reaches ([`shadow`]), at the rule's source.
fn unreachable(imported: &Imported) -> Vec<import::ImportWarning> {
    let cfg = &imported.config;
    let label = |route: usize, rule: usize| {
        let r = &cfg.routes[route];
        match r.rules.get(rule).and_then(|x| x.name.as_deref()) {
            Some(n) => format!("rule {rule} (`{n}`)"),
            None => format!("rule {rule}"),
        }
    };
    shadow::shadowed(cfg)
        .into_iter()
        .map(|s| {
            let path = format!("routes[{}].rules[{}]", s.route, s.rule);
            let at = imported
                .origin_of(&path)
                .cloned()
                .unwrap_or(import::Location {
                    source: "(config)".into(),
                    document: 0,
                    resource: None,
                    path: path.clone(),
                    line: None,
                });
            let by: Vec<String> =
                s.by.iter()
                    .map(|&(q, k)| {
                        if q == s.route {
                            label(q, k)
                        } else {
                            format!("{} of route `{}`", label(q, k), cfg.routes[q].name)
                        }
                    })
                    .collect();
            let how = if cfg.routes[s.route].precedence
                == Some(routing_core::RulePrecedence::FirstMatch)
            {
                "every request it matches is taken first by"
            } else {
                "its matches repeat, and ties go to the rule declared first:"
            };
            import::ImportWarning {
                at,
                message: format!(
                    "{} of route `{}` is unreachable: {how} {}",
                    label(s.route, s.rule),
                    cfg.routes[s.route].name,
                    by.join(", ")
                ),
                reason: None,
            }
        })
        .collect()
}

/// `check`: counts, warnings, errors.
fn check(l: &Loaded, as_json: bool) -> (String, bool) {
    let (mut warnings, mut errors) = match &l.table {
        Ok(_) => (l.imported.warnings.clone(), Vec::new()),
        Err(e) => (e.warnings().to_vec(), e.errors().to_vec()),
    };
    if l.table.is_ok() {
        for w in unreachable(&l.imported) {
            if l.deny_warnings {
                errors.push(import::ImportError {
                    at: w.at,
                    kind: import::ImportErrorKind::Warning(w.message),
                });
            } else {
                warnings.push(w);
            }
        }
    }
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
    for w in &warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    for e in &errors {
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
