//! Gateway API `GRPCRoute`, imported as the `HTTPRoute` it amounts to: a gRPC call
//! is an HTTP/2 `POST` to `/package.Service/Method`, so a method match becomes a
//! path match and the rest (parents, hostnames, header matches, filters, weighted
//! `backendRefs` with their filters, session persistence) is the `HTTPRoute`
//! conversion itself.
//!
//! | `GRPCRoute` | native |
//! |---|---|
//! | `method` `Exact` (default) with `service` and `method` | `path.exact: /service/method` |
//! | `method` `Exact` with `service` only | `path.prefix: /service` (every method of it) |
//! | `method` `Exact` with `method` only | `path.regex: /[^/]+/method` |
//! | `method` `RegularExpression` | `path.regex: /(?:service)/(?:method)`, a missing side `[^/]+` |
//! | `headers` | `headers` (as in `HTTPRoute`) |
//! | filters `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestMirror`, `ExtensionRef` | as in `HTTPRoute` (`ExtensionRef` refused) |
//!
//! The CRD's own validation is applied: an `Exact` service is a dotted name of
//! identifiers and a method an identifier; at least one of them is set; filters
//! outside the four above are `Invalid`.

use super::*;

/// A whole `GRPCRoute` object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct GrpcRoute {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: GrpcSpec,
    /// Ignored.
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GrpcSpec {
    #[serde(default)]
    parent_refs: Vec<ParentRef>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    rules: Option<Vec<GrpcRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GrpcRule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    matches: Option<Vec<GrpcMatch>>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    backend_refs: Vec<HttpBackendRef>,
    #[serde(default)]
    session_persistence: Option<SessionPersistence>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrpcMatch {
    #[serde(default)]
    method: Option<GrpcMethod>,
    #[serde(default)]
    headers: Vec<ValueMatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrpcMethod {
    #[serde(default, rename = "type")]
    kind: Option<ValueType>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    method: Option<String>,
}

/// A dotted name of identifiers (the CRD's pattern for an `Exact` service).
fn is_service(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_identifier)
}

/// `[A-Za-z_][A-Za-z_0-9]*` (the CRD's pattern for an `Exact` method).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The path match a method match amounts to, or the field under `method` that is
/// invalid (`""` for the match as a whole) and why.
fn path_of(m: &GrpcMethod) -> Result<PathMatch, (&'static str, String)> {
    let service = m.service.as_deref().filter(|s| !s.is_empty());
    let method = m.method.as_deref().filter(|s| !s.is_empty());
    let (kind, value) = match m.kind.unwrap_or(ValueType::Exact) {
        ValueType::Exact => {
            if let Some(s) = service.filter(|s| !is_service(s)) {
                return Err((
                    ".service",
                    format!("service `{s}` is not a dotted name of identifiers"),
                ));
            }
            if let Some(x) = method.filter(|x| !is_identifier(x)) {
                return Err((".method", format!("method `{x}` is not an identifier")));
            }
            match (service, method) {
                (Some(s), Some(x)) => (PathType::Exact, format!("/{s}/{x}")),
                (Some(s), None) => (PathType::PathPrefix, format!("/{s}")),
                (None, Some(x)) => (PathType::RegularExpression, format!("/[^/]+/{x}")),
                (None, None) => return Err(("", NEITHER.to_owned())),
            }
        }
        ValueType::RegularExpression if service.is_none() && method.is_none() => {
            return Err(("", NEITHER.to_owned()))
        }
        ValueType::RegularExpression => {
            // Each side is checked on its own, so the error names the field that is
            // wrong rather than the path regex the two are joined into.
            for (field, side) in [(".service", service), (".method", method)] {
                if let Some(Err(e)) = side.map(regex::Regex::new) {
                    return Err((field, format!("not a valid regular expression: {e}")));
                }
            }
            (
                PathType::RegularExpression,
                format!(
                    "/(?:{})/(?:{})",
                    service.unwrap_or("[^/]+"),
                    method.unwrap_or("[^/]+")
                ),
            )
        }
    };
    Ok(PathMatch {
        kind: Some(kind),
        value: Some(value),
    })
}

const NEITHER: &str = "a method match needs `service`, `method` or both";

/// The `HTTPRoute` a `GRPCRoute` amounts to, or `None` (errors recorded) when a
/// method match or a filter is invalid.
pub(super) fn convert(
    g: GrpcRoute,
    doc: &Doc<'_>,
    resource: &str,
    out: &mut Out<'_>,
) -> Option<HttpRoute> {
    let before = out.error_count();
    let mut invalid = |path: String, msg: String| {
        out.error(
            doc.loc(Some(resource), &path),
            ImportErrorKind::Invalid(msg),
        );
    };
    let mut rules = Vec::new();
    for (i, r) in g.spec.rules.into_iter().flatten().enumerate() {
        let rp = format!("spec.rules[{i}]");
        let matches = r.matches.map(|list| {
            list.into_iter()
                .enumerate()
                .map(|(j, m)| {
                    let path = m.method.as_ref().and_then(|method| match path_of(method) {
                        Ok(p) => Some(p),
                        Err((field, why)) => {
                            invalid(format!("{rp}.matches[{j}].method{field}"), why);
                            None
                        }
                    });
                    Match {
                        path,
                        headers: m.headers,
                        ..Match::default()
                    }
                })
                .collect::<Vec<_>>()
        });
        for (k, f) in r.filters.iter().enumerate() {
            if !matches!(
                f.kind,
                FilterType::RequestHeaderModifier
                    | FilterType::ResponseHeaderModifier
                    | FilterType::RequestMirror
                    | FilterType::ExtensionRef
            ) {
                invalid(
                    format!("{rp}.filters[{k}].type"),
                    format!("{} is not a GRPCRoute filter", f.kind.name()),
                );
            }
        }
        rules.push(Rule {
            name: r.name,
            matches,
            filters: r.filters,
            backend_refs: r.backend_refs,
            timeouts: None,
            retry: None,
            session_persistence: r.session_persistence,
        });
    }
    if out.error_count() != before {
        return None;
    }
    Some(HttpRoute {
        api_version: g.api_version,
        kind: g.kind,
        metadata: g.metadata,
        spec: Spec {
            parent_refs: g.spec.parent_refs,
            use_default_gateways: None,
            hostnames: g.spec.hostnames,
            rules: Some(rules),
        },
        status: None,
    })
}
