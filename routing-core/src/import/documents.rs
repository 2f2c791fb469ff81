//! Splitting a source into documents (YAML streams, JSON, `List` objects) and
//! detecting each document's kind, with the limits applied before any parsing.

use super::*;

/// Largest source accepted, in bytes: far above any real routing manifest, and it keeps
/// hostile inputs from costing seconds.
const MAX_SOURCE_BYTES: usize = 16 << 20;

/// Splits a source into documents and detects each one's kind.
pub(super) fn split<'a>(
    src: &Source<'a>,
    docs: &mut Vec<Doc<'a>>,
    context: &mut Vec<Doc<'a>>,
    out: &mut Out<'_>,
) {
    let whole = Location {
        source: src.name.to_owned(),
        document: 0,
        resource: None,
        path: String::new(),
        line: None,
    };
    if src.text.len() > MAX_SOURCE_BYTES {
        out.error(
            whole,
            ImportErrorKind::Parse(format!("larger than {MAX_SOURCE_BYTES} bytes")),
        );
        return;
    }
    if let Err(e) = crate::config::check_flow_nesting(src.text) {
        out.error(whole, ImportErrorKind::Parse(e.to_string()));
        return;
    }
    for (index, de) in serde_yaml_ng::Deserializer::from_str(src.text).enumerate() {
        let value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                let line = e.location().map(|l| l.line());
                out.error(
                    Location {
                        line,
                        document: index,
                        ..whole.clone()
                    },
                    ImportErrorKind::Parse(e.to_string()),
                );
                // The stream cannot be resumed after a syntax error.
                return;
            }
        };
        let doc = |value: Value, base: String, kind: SourceKind| Doc {
            source: src.name,
            text: src.text,
            index,
            base,
            value,
            kind,
            lines: std::sync::OnceLock::new(),
        };
        if value.is_null() {
            continue;
        }
        let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
            && value.get("items").is_some_and(Value::is_sequence);
        if is_list {
            let items = value
                .get("items")
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default();
            for (i, item) in items.into_iter().enumerate() {
                let d = doc(item, format!("items[{i}]"), SourceKind::Native);
                match detect(&d, out) {
                    Some(kind) => docs.push(Doc { kind, ..d }),
                    None if is_context(&d) => context.push(d),
                    None => {}
                }
            }
        } else {
            let d = doc(value, String::new(), SourceKind::Native);
            match detect(&d, out) {
                Some(kind) => docs.push(Doc { kind, ..d }),
                None if is_context(&d) => context.push(d),
                None => {}
            }
        }
    }
}

/// Whether a skipped document is a core `v1` `Service` or `Namespace`, which Gateway
/// API references resolve against.
fn is_context(d: &Doc<'_>) -> bool {
    d.value.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && matches!(
            d.value.get("kind").and_then(Value::as_str),
            Some("Service" | "Namespace")
        )
}

/// The kind of a document, or `None` (with a warning) for Kubernetes resources that
/// are not routing configuration.
fn detect(d: &Doc<'_>, out: &mut Out<'_>) -> Option<SourceKind> {
    let v = &d.value;
    let api = v.get("apiVersion").and_then(Value::as_str);
    let kind = v.get("kind").and_then(Value::as_str);
    match (api, kind) {
        (Some(api), Some(kind)) => {
            let group = api.split_once('/').map_or("", |(g, _)| g);
            let version = api.rsplit('/').next().unwrap_or("");
            let found = match (group, kind) {
                ("gateway.networking.k8s.io", "HTTPRoute")
                    if matches!(version, "v1" | "v1beta1") =>
                {
                    Some(SourceKind::HttpRoute)
                }
                ("gateway.networking.k8s.io", "GRPCRoute")
                    if matches!(version, "v1" | "v1alpha2") =>
                {
                    Some(SourceKind::GrpcRoute)
                }
                ("networking.istio.io", "VirtualService" | "DestinationRule")
                    if matches!(version, "v1alpha3" | "v1beta1" | "v1") =>
                {
                    Some(if kind == "VirtualService" {
                        SourceKind::VirtualService
                    } else {
                        SourceKind::DestinationRule
                    })
                }
                ("gateway.networking.k8s.io", "Gateway") if matches!(version, "v1" | "v1beta1") => {
                    Some(SourceKind::Gateway)
                }
                ("gateway.networking.k8s.io", "ReferenceGrant")
                    if matches!(version, "v1" | "v1beta1" | "v1alpha2") =>
                {
                    Some(SourceKind::ReferenceGrant)
                }
                ("gateway.networking.k8s.io", "HTTPRoute")
                | ("networking.istio.io", "VirtualService" | "DestinationRule") => {
                    out.error(
                        d.loc(Some(&format!("{kind} {}", d.name())), "apiVersion"),
                        ImportErrorKind::Unsupported(format!(
                            "API version `{api}` of {kind} (supported: {})",
                            if kind == "HTTPRoute" {
                                "v1, v1beta1"
                            } else {
                                "v1alpha3, v1beta1, v1"
                            }
                        )),
                    );
                    return None;
                }
                _ => None,
            };
            if found.is_none() {
                out.warn(
                    d.loc(Some(&format!("{kind} {}", d.name())), ""),
                    format!("skipped: `{api}` `{kind}` is not routing configuration this importer reads"),
                );
            }
            found
        }
        _ if v.get("Rules").is_some() => Some(SourceKind::AlbRules),
        _ => Some(SourceKind::Native),
    }
}
