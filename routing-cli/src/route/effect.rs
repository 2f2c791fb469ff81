//! What the chosen rule does to a request, computed with the functions the HTTP
//! layer calls (`Redirect::location`, `Rule::apply_request_filters`,
//! `RouteTable::select`): the redirect `Location`, the forwarded request line and
//! host, header changes, mirror, fault, timeouts, retries, stickiness and the
//! backend.

use std::fmt::Write as _;

use http::header::HOST;
use rand::{rngs::StdRng, SeedableRng};
use routing_core::{
    Action, HeaderModifier, RequestInfo, RouteRequest, RouteTable, RuleMatch, Selection,
    SessionPersistence,
};
use serde_json::{json, Value};

/// The effect as JSON and as text lines (`label`, text).
pub(super) struct Effect {
    pub(super) json: Value,
    pub(super) lines: Vec<(&'static str, String)>,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn pct(fraction: f64) -> f64 {
    (fraction * 100.0 * 1e6).round() / 1e6
}

/// The request as the layer sees it after its own checks: an absolute-form target's
/// authority is its `Host` header.
fn parts_of(req: &RequestInfo) -> http::request::Parts {
    let target = match (req.scheme(), req.host()) {
        (Some(s), Some(h)) => format!("{s}://{h}{}", req.path()),
        _ => req.path().to_owned(),
    };
    let target = match req.query() {
        Some(q) => format!("{target}?{q}"),
        None => target,
    };
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = req.method().clone();
    parts.uri = target.parse().unwrap_or_default();
    parts.headers = req.headers().clone();
    if let Some(a) = parts.uri.authority() {
        if let Ok(v) = http::HeaderValue::from_str(a.as_str()) {
            parts.headers.insert(HOST, v);
        }
    }
    parts
}

fn modifier_json(m: &HeaderModifier) -> Value {
    let pairs = |v: &[(http::HeaderName, http::HeaderValue)]| {
        v.iter()
            .map(|(n, v)| json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())]))
            .collect::<Vec<_>>()
    };
    json!({
        "set": pairs(&m.set),
        "add": pairs(&m.add),
        "remove": m.remove.iter().map(http::HeaderName::as_str).collect::<Vec<_>>(),
    })
}

fn modifier_text(m: &HeaderModifier) -> Option<String> {
    if m.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    for (n, v) in &m.set {
        parts.push(format!(
            "set {n}: {}",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    for (n, v) in &m.add {
        parts.push(format!(
            "add {n}: {}",
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    for n in &m.remove {
        parts.push(format!("remove {n}"));
    }
    Some(parts.join("; "))
}

/// The effect of the match `win` on `req`. `pinned`: the backend a valid
/// stickiness cookie of the request names (`--cookie-backend`), if any.
pub(super) fn effect(
    table: &RouteTable,
    win: RuleMatch,
    req: &RequestInfo,
    pinned: Option<&str>,
) -> Effect {
    let rule = &table.rules()[win.rule];
    let policy = rule.policy();
    let matched = rule.matches()[win.r#match].path();
    let mut lines = Vec::new();
    let mut j = serde_json::Map::new();
    // A CORS preflight is answered by the layer before the rule's action: nothing
    // is redirected, answered otherwise or forwarded.
    let preflight = policy.cors.is_some()
        && req.method() == http::Method::OPTIONS
        && req.headers().contains_key(http::header::ORIGIN)
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let action = if preflight {
        lines.push((
            "answer",
            "204: a CORS preflight, answered by the layer".to_owned(),
        ));
        j.insert("preflight_answer".into(), json!({"status": 204}));
        None
    } else {
        Some(rule.action())
    };
    match action {
        Some(Action::Redirect(r)) => {
            let location = r.location(req, matched);
            lines.push((
                "redirect",
                format!("{} Location: {location}", r.status.as_u16()),
            ));
            j.insert(
                "redirect".into(),
                json!({"status": r.status.as_u16(), "location": location}),
            );
        }
        Some(Action::FixedResponse(f)) => {
            lines.push((
                "answer",
                format!("{} with a {}-byte body", f.status.as_u16(), f.body.len()),
            ));
            j.insert(
                "fixed_response".into(),
                json!({"status": f.status.as_u16(), "body": f.body}),
            );
        }
        _ => {}
    }
    if let Some(Action::Forward(fwd)) = action {
        // Stickiness and the backend: the selection the layer makes, with the
        // cookie's backend as its preference.
        let cookie = match &policy.session_persistence {
            Some(SessionPersistence::Cookie(c)) => Some(c),
            _ => None,
        };
        let pin_id = pinned.and_then(|b| table.backend_id(b));
        let selection = match (cookie, pin_id) {
            (Some(_), Some(id)) => Selection::new().prefer(id),
            _ => Selection::new(),
        };
        let decision = table.select(win, req, &mut StdRng::seed_from_u64(0), selection);
        let (backend, how) = match &decision {
            Ok(d) if d.preferred() => (
                d.backend().map(|b| b.name().to_owned()),
                "the stickiness cookie",
            ),
            Ok(d) if d.sticky_key().is_some() => (
                d.backend().map(|b| b.name().to_owned()),
                "the sticky key (every request with this key)",
            ),
            Ok(d) if fwd.backends().iter().filter(|b| b.weight() > 0).count() == 1 => (
                d.backend().map(|b| b.name().to_owned()),
                "the rule's only backend with a weight above 0",
            ),
            Ok(d) => (
                d.backend().map(|b| b.name().to_owned()),
                "a weighted pick (seed 0; another request may differ)",
            ),
            Err(_) => (None, "no backend can take it (all weights 0): 503"),
        };
        lines.push((
            "backend",
            match &backend {
                Some(b) => format!("{b} by {how}"),
                None => how.to_owned(),
            },
        ));
        j.insert("backend".into(), json!({"name": backend, "by": how}));
        // The picked backend's own filters, after the rule's (as the layer does for
        // each try).
        let backend_filters = decision
            .as_ref()
            .ok()
            .and_then(routing_core::Decision::backend_id)
            .and_then(|id| fwd.filters_for(id));
        let sticky = match (&policy.session_persistence, rule.hash_on()) {
            (Some(SessionPersistence::Cookie(c)), _) => {
                let present = routing_core::cookie(req.headers(), &c.name).is_some();
                let pins = pin_id.map(|id| {
                    decision
                        .as_ref()
                        .is_ok_and(|d| d.preferred() && d.backend_id() == Some(id))
                });
                let keeps_zero = c.keep_at_zero_weight;
                let text = match (pinned, pins) {
                    (Some(b), Some(true)) => format!("cookie `{}`: a valid cookie for {b} pins the request there", c.name),
                    (Some(b), Some(false)) => format!("cookie `{}`: a cookie for {b} would not pin (not a backend of this rule, weight 0 or unavailable): a fresh pick and a new cookie", c.name),
                    (Some(b), None) => format!("cookie `{}`: {b} is not a backend of the table", c.name),
                    (None, _) if present => format!("cookie `{}`: the request has one; it pins when the layer's key signed it, it has not expired and it names an available backend of this rule{} (--cookie-backend B shows where)", c.name, if keeps_zero { "" } else { " with a weight above 0" }),
                    (None, _) => format!("cookie `{}`: the request has none: a fresh pick, and the response sets it", c.name),
                };
                lines.push(("sticky", text));
                json!({
                    "kind": "cookie",
                    "name": c.name,
                    "ttl_s": c.ttl.map(|d| d.as_secs()),
                    "request_has_cookie": present,
                    "cookie_backend": pinned,
                    "pins": pins,
                    "keeps_sessions_at_zero_weight": keeps_zero,
                })
            }
            (sp, Some(on)) => {
                let key = decision
                    .as_ref()
                    .ok()
                    .and_then(routing_core::Decision::sticky_key);
                let what = match (sp, on) {
                    (Some(SessionPersistence::Header(h)), _)
                    | (_, routing_core::HashOn::Header(h)) => {
                        format!("header `{h}`")
                    }
                    (_, routing_core::HashOn::Cookie(c)) => format!("cookie `{c}` (hashed)"),
                    (_, routing_core::HashOn::Query(q)) => format!("query parameter `{q}`"),
                    _ => "the client IP".to_owned(),
                };
                let text = match (key, &backend) {
                    (Some(k), Some(b)) => {
                        format!("{what}: key hash {k:016x} → {b} (every request with this key)")
                    }
                    _ => format!("{what}: the request has no key: a weighted pick"),
                };
                lines.push(("sticky", text));
                json!({
                    "kind": "hash",
                    "on": what,
                    "key_present": key.is_some(),
                    "key_hash": key.map(|k| format!("{k:016x}")),
                })
            }
            _ => Value::Null,
        };
        j.insert("stickiness".into(), sticky);
        match backend_filters {
            Some(f) if f.answers() => {
                // The backend's filter answers for it: nothing is forwarded.
                let b = backend.as_deref().unwrap_or("");
                if let Some(r) = &f.redirect {
                    let location = r.location(req, matched);
                    lines.push((
                        "redirect",
                        format!(
                            "{} Location: {location} (backend {b}'s filter)",
                            r.status.as_u16()
                        ),
                    ));
                    j.insert(
                        "redirect".into(),
                        json!({"status": r.status.as_u16(), "location": location, "by_backend": b}),
                    );
                }
                if let Some(fr) = &f.fixed_response {
                    lines.push((
                        "answer",
                        format!(
                            "{} with a {}-byte body (backend {b}'s filter)",
                            fr.status.as_u16(),
                            fr.body.len()
                        ),
                    ));
                    j.insert(
                        "fixed_response".into(),
                        json!({"status": fr.status.as_u16(), "body": fr.body, "by_backend": b}),
                    );
                }
            }
            _ => {
                let mut parts = parts_of(req);
                rule.apply_request_filters(win.r#match, &mut parts);
                if let Some(f) = backend_filters {
                    f.apply_request(&mut parts, matched);
                }
                let target = parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_owned(), ToString::to_string);
                let host = parts
                    .headers
                    .get(HOST)
                    .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
                let line = format!("{} {target} HTTP/1.1", parts.method);
                lines.push(("forward", line.clone()));
                if let Some(h) = &host {
                    lines.push(("host", h.clone()));
                }
                j.insert(
                    "forwarded".into(),
                    json!({
                        "request_line": line,
                        "path": parts.uri.path(),
                        "host": host,
                        "headers": parts.headers.iter()
                            .map(|(n, v)| json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())]))
                            .collect::<Vec<_>>(),
                    }),
                );
            }
        }
        if let Some(f) = backend_filters {
            if let Some(t) = modifier_text(&f.request_headers) {
                lines.push(("backend req hdrs", t));
            }
            if let Some(t) = modifier_text(&f.response_headers) {
                lines.push(("backend res hdrs", t));
            }
            j.insert(
                "backend_filters".into(),
                json!({
                    "request_headers": modifier_json(&f.request_headers),
                    "response_headers": modifier_json(&f.response_headers),
                    "url_rewrite": f.url_rewrite.is_some(),
                }),
            );
        }
    }
    if let Some(t) = modifier_text(&policy.request_headers) {
        lines.push(("req hdrs", t));
    }
    if let Some(t) = modifier_text(&policy.response_headers) {
        lines.push(("res hdrs", t));
    }
    j.insert(
        "request_headers".into(),
        modifier_json(&policy.request_headers),
    );
    j.insert(
        "response_headers".into(),
        modifier_json(&policy.response_headers),
    );
    let mirrors: Vec<Value> = policy
        .mirror
        .iter()
        .chain(&policy.mirrors)
        .map(|m| {
            let name = table.backend(m.backend).name();
            lines.push((
                "mirror",
                format!("{}% of requests copied to {name}", pct(m.fraction)),
            ));
            json!({"backend": name, "percent": pct(m.fraction)})
        })
        .collect();
    j.insert("mirrors".into(), Value::Array(mirrors));
    let fault = policy.fault.as_ref().map(|f| {
        let applies = f.applies(req.headers());
        let mut t = Vec::new();
        if let Some((d, p)) = f.delay {
            t.push(format!("delay {} ms for {}%", ms(d), pct(p)));
        }
        if let Some((s, p)) = f.abort {
            t.push(format!("abort {} for {}%", s.as_u16(), pct(p)));
        }
        let mut text = t.join(", ");
        if !applies {
            text.push_str(" (not this request: its header conditions fail)");
        }
        lines.push(("fault", text));
        json!({
            "delay": f.delay.map(|(d, p)| json!({"ms": ms(d), "percent": pct(p)})),
            "abort": f.abort.map(|(s, p)| json!({"status": s.as_u16(), "percent": pct(p)})),
            "applies": applies,
        })
    });
    j.insert("fault".into(), fault.unwrap_or(Value::Null));
    // Timeouts as the layer applies them: the rule's, else the layer's default
    // (`0s` turns the request timeout off).
    let t = policy.timeouts;
    let defaults = routing_core::defaults::REQUEST_TIMEOUT;
    let request = match t.request {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => Some(defaults),
    };
    let mut s = match (request, t.request) {
        (Some(d), Some(_)) => format!("request {} ms", ms(d)),
        (Some(d), None) => format!("request {} ms (layer default)", ms(d)),
        (None, _) => "request: none (`timeouts.request: 0s`)".to_owned(),
    };
    if let Some(d) = t.per_try {
        let _ = write!(s, ", per try {} ms", ms(d));
    }
    let idle = routing_core::defaults::RESPONSE_IDLE_TIMEOUT;
    let _ = write!(s, ", response idle {} ms (layer default)", ms(idle));
    lines.push(("timeouts", s));
    j.insert(
        "timeouts".into(),
        json!({
            "request_ms": request.map(ms),
            "request_is_default": t.request.is_none(),
            "per_try_ms": t.per_try.map(ms),
            "response_idle_ms": ms(idle),
        }),
    );
    if let Some(c) = &policy.cors {
        let (text, value) = cors(c, req);
        lines.push(("cors", text));
        j.insert("cors".into(), value);
    } else {
        j.insert("cors".into(), Value::Null);
    }
    let retry = policy.retry.as_ref().map(|r| {
        let method_ok = r.allows(req.method(), false);
        let codes: Vec<u16> = r
            .status_codes
            .iter()
            .map(http::StatusCode::as_u16)
            .collect();
        let on = serde_json::to_value(&r.on).unwrap_or(Value::Null);
        let on_text: Vec<String> =
            r.on.iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
        lines.push((
            "retry",
            format!(
                "{} attempt{} on {}{}, backoff {} ms{}",
                r.attempts,
                if r.attempts == 1 { "" } else { "s" },
                on_text.join(", "),
                if codes.is_empty() {
                    String::new()
                } else {
                    format!(" (statuses {codes:?})")
                },
                ms(r.backoff),
                if method_ok {
                    ""
                } else {
                    "; this method only after a connect failure"
                }
            ),
        ));
        json!({
            "attempts": r.attempts,
            "on": on,
            "status_codes": codes,
            "backoff_ms": ms(r.backoff),
            "method_retried_after_send": method_ok,
        })
    });
    j.insert("retry".into(), retry.unwrap_or(Value::Null));
    Effect {
        json: Value::Object(j),
        lines,
    }
}

/// What the rule's CORS policy does with `req`, as the layer applies it: a
/// preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
/// answered 204 here; another request from an allowed origin gets the headers.
fn cors(c: &routing_core::Cors, req: &RequestInfo) -> (String, Value) {
    let h = req.headers();
    let Some(origin) = h.get(http::header::ORIGIN) else {
        return (
            "a CORS policy; this request has no Origin: nothing added".to_owned(),
            json!({"origin": null, "preflight": false, "allowed": null, "headers": []}),
        );
    };
    let origin_text = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let allowed = c.allows_origin(&origin_text);
    let method = h.get(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let preflight = req.method() == http::Method::OPTIONS && method.is_some();
    let headers = if preflight {
        c.preflight(
            origin,
            method,
            h.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS),
        )
    } else {
        c.response_headers(origin)
    };
    let list: Vec<Value> = headers
        .iter()
        .map(|(n, v)| json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    let shown: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let text = match (preflight, allowed) {
        (true, true) => format!("preflight from {origin_text}: answered 204 by the layer with {}", shown.join("; ")),
        (true, false) => format!("preflight from {origin_text}: answered 204 by the layer without CORS headers (origin not allowed)"),
        (false, true) => format!("origin {origin_text} allowed: the answer gets {}", shown.join("; ")),
        (false, false) => format!("origin {origin_text} not allowed: no CORS headers"),
    };
    (
        text,
        json!({"origin": origin_text, "preflight": preflight, "allowed": allowed, "headers": list}),
    )
}
