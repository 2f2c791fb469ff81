//! ALB condition values: path, host, header and query patterns (`*`, `?`) as native matches.

use super::*;

/// A `'static` key for the fields that may appear once per rule.
pub(super) fn field_key(field: &str) -> &'static str {
    match field {
        "host-header" => "host-header",
        "path-pattern" => "path-pattern",
        "http-request-method" => "http-request-method",
        _ => "source-ip",
    }
}

/// The values of a `path-pattern` / `host-header` condition, from its configuration or
/// the legacy `Values` (both may be present, as `describe-rules` prints them, if equal).
pub(super) fn pattern_values<'c>(
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
pub(super) fn non_empty<'v>(
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
pub(super) enum Tok {
    Lit(char),
    Star,
    One,
}

/// Splits a pattern; with `escapes`, `\*` and `\?` are literal (query strings).
pub(super) fn tokens(pat: &str, escapes: bool) -> Vec<Tok> {
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
pub(super) fn literal(toks: &[Tok]) -> String {
    toks.iter()
        .filter_map(|t| match t {
            Tok::Lit(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// The whole-value regular expression of tokens (the native side anchors it); with
/// `fold`, ASCII letters match either case.
pub(super) fn regex_of(toks: &[Tok], fold: bool) -> String {
    let mut re = String::new();
    if wild(toks) {
        re.push_str("(?s)");
    }
    re.push_str(&regex_body(toks, fold));
    re
}

/// Whether tokens have a wildcard.
pub(super) fn wild(toks: &[Tok]) -> bool {
    toks.iter().any(|t| !matches!(t, Tok::Lit(_)))
}

/// [`regex_of`] without the flags.
pub(super) fn regex_body(toks: &[Tok], fold: bool) -> String {
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
pub(super) fn plain_path(p: &str) -> bool {
    p.starts_with('/')
        && !p
            .bytes()
            .any(|b| b == b'#' || b == b'?' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// Tokens made only of literals and, with `allow_star`, one trailing `*`: the literal.
pub(super) fn plain(toks: &[Tok], allow_star: bool) -> Option<String> {
    let body = match toks.split_last() {
        Some((Tok::Star, body)) if allow_star => body,
        _ => toks,
    };
    body.iter()
        .all(|t| matches!(t, Tok::Lit(_)))
        .then(|| literal(body))
}

/// A path pattern (case-sensitive).
pub(super) fn path_glob(pat: &str) -> PathMatchConfig {
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
pub(super) fn host_glob(pat: &str) -> StringMatchConfig {
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
pub(super) fn header_match(name: &str, values: &[String]) -> HeaderMatchConfig {
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
pub(super) fn query_match(
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
