//! The HTTPRoute document as serde reads it (unknown fields refused).

use super::*;

/// A whole `HTTPRoute` object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct HttpRoute {
    #[allow(dead_code)]
    pub(super) api_version: String,
    #[allow(dead_code)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) metadata: Metadata,
    pub(super) spec: Spec,
    /// Ignored.
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) status: Option<IgnoredAny>,
}

/// `metadata`, read leniently.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Metadata {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) creation_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Spec {
    #[serde(default)]
    pub(super) parent_refs: Vec<ParentRef>,
    /// Experimental (GEP-3793): `All` or `None`.
    #[serde(default)]
    pub(super) use_default_gateways: Option<String>,
    #[serde(default)]
    pub(super) hostnames: Vec<String>,
    #[serde(default)]
    pub(super) rules: Option<Vec<Rule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct ParentRef {
    #[serde(default)]
    pub(super) group: Option<String>,
    #[serde(default)]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    pub(super) name: String,
    #[serde(default)]
    pub(super) section_name: Option<String>,
    #[serde(default)]
    pub(super) port: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Rule {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) matches: Option<Vec<Match>>,
    #[serde(default)]
    pub(super) filters: Vec<Filter>,
    #[serde(default)]
    pub(super) backend_refs: Vec<HttpBackendRef>,
    #[serde(default)]
    pub(super) timeouts: Option<Timeouts>,
    #[serde(default)]
    pub(super) retry: Option<Retry>,
    #[serde(default)]
    pub(super) session_persistence: Option<SessionPersistence>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Match {
    #[serde(default)]
    pub(super) path: Option<PathMatch>,
    #[serde(default)]
    pub(super) headers: Vec<ValueMatch>,
    #[serde(default)]
    pub(super) query_params: Vec<ValueMatch>,
    #[serde(default)]
    pub(super) method: Option<Method>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PathMatch {
    #[serde(default, rename = "type")]
    pub(super) kind: Option<PathType>,
    #[serde(default)]
    pub(super) value: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathType {
    Exact,
    PathPrefix,
    RegularExpression,
}

/// A header or query parameter match.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ValueMatch {
    #[serde(default, rename = "type")]
    pub(super) kind: Option<ValueType>,
    pub(super) name: String,
    pub(super) value: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValueType {
    Exact,
    RegularExpression,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
pub(super) enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Filter {
    #[serde(rename = "type")]
    pub(super) kind: FilterType,
    #[serde(default)]
    pub(super) request_header_modifier: Option<HeaderFilter>,
    #[serde(default)]
    pub(super) response_header_modifier: Option<HeaderFilter>,
    #[serde(default)]
    pub(super) request_mirror: Option<MirrorFilter>,
    #[serde(default)]
    pub(super) request_redirect: Option<RedirectFilter>,
    #[serde(default)]
    pub(super) url_rewrite: Option<RewriteFilter>,
    #[serde(default)]
    pub(super) cors: Option<CorsFilter>,
    /// Refused: only its presence matters.
    #[serde(default)]
    pub(super) external_auth: Option<Value>,
    #[serde(default)]
    pub(super) extension_ref: Option<LocalObjectRef>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) enum FilterType {
    RequestHeaderModifier,
    ResponseHeaderModifier,
    RequestMirror,
    RequestRedirect,
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    ExtensionRef,
    #[serde(rename = "CORS")]
    Cors,
    ExternalAuth,
}

impl FilterType {
    pub(super) fn name(self) -> &'static str {
        match self {
            FilterType::RequestHeaderModifier => "RequestHeaderModifier",
            FilterType::ResponseHeaderModifier => "ResponseHeaderModifier",
            FilterType::RequestMirror => "RequestMirror",
            FilterType::RequestRedirect => "RequestRedirect",
            FilterType::UrlRewrite => "URLRewrite",
            FilterType::ExtensionRef => "ExtensionRef",
            FilterType::Cors => "CORS",
            FilterType::ExternalAuth => "ExternalAuth",
        }
    }

    /// The field that must hold this filter's configuration.
    pub(super) fn field(self) -> &'static str {
        match self {
            FilterType::RequestHeaderModifier => "requestHeaderModifier",
            FilterType::ResponseHeaderModifier => "responseHeaderModifier",
            FilterType::RequestMirror => "requestMirror",
            FilterType::RequestRedirect => "requestRedirect",
            FilterType::UrlRewrite => "urlRewrite",
            FilterType::ExtensionRef => "extensionRef",
            FilterType::Cors => "cors",
            FilterType::ExternalAuth => "externalAuth",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderFilter {
    #[serde(default)]
    pub(super) set: Vec<HeaderValue>,
    #[serde(default)]
    pub(super) add: Vec<HeaderValue>,
    #[serde(default)]
    pub(super) remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderValue {
    pub(super) name: String,
    pub(super) value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MirrorFilter {
    pub(super) backend_ref: ObjectRef,
    #[serde(default)]
    pub(super) percent: Option<i64>,
    #[serde(default)]
    pub(super) fraction: Option<Fraction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Fraction {
    pub(super) numerator: i64,
    #[serde(default)]
    pub(super) denominator: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RedirectFilter {
    #[serde(default)]
    pub(super) scheme: Option<String>,
    #[serde(default)]
    pub(super) hostname: Option<String>,
    #[serde(default)]
    pub(super) path: Option<PathModifier>,
    #[serde(default)]
    pub(super) port: Option<i64>,
    #[serde(default)]
    pub(super) status_code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RewriteFilter {
    #[serde(default)]
    pub(super) hostname: Option<String>,
    #[serde(default)]
    pub(super) path: Option<PathModifier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PathModifier {
    #[serde(rename = "type")]
    pub(super) kind: PathModifierType,
    #[serde(default)]
    pub(super) replace_full_path: Option<String>,
    #[serde(default)]
    pub(super) replace_prefix_match: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathModifierType {
    ReplaceFullPath,
    ReplacePrefixMatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct LocalObjectRef {
    pub(super) group: String,
    pub(super) kind: String,
    pub(super) name: String,
}

/// `BackendObjectReference`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ObjectRef {
    #[serde(default)]
    pub(super) group: Option<String>,
    #[serde(default)]
    pub(super) kind: Option<String>,
    pub(super) name: String,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    #[serde(default)]
    pub(super) port: Option<i64>,
}

/// `HTTPBackendRef`: an object reference, a weight and (refused) filters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpBackendRef {
    #[serde(default)]
    pub(super) group: Option<String>,
    #[serde(default)]
    pub(super) kind: Option<String>,
    pub(super) name: String,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    #[serde(default)]
    pub(super) port: Option<i64>,
    #[serde(default)]
    pub(super) weight: Option<i64>,
    #[serde(default)]
    pub(super) filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Timeouts {
    #[serde(default)]
    pub(super) request: Option<String>,
    #[serde(default)]
    pub(super) backend_request: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Retry {
    #[serde(default)]
    pub(super) codes: Vec<i64>,
    #[serde(default)]
    pub(super) attempts: Option<i64>,
    #[serde(default)]
    pub(super) backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct SessionPersistence {
    #[serde(default)]
    pub(super) session_name: Option<String>,
    #[serde(default)]
    pub(super) absolute_timeout: Option<String>,
    #[serde(default)]
    pub(super) idle_timeout: Option<String>,
    #[serde(default, rename = "type")]
    pub(super) kind: Option<SessionType>,
    #[serde(default)]
    pub(super) cookie_config: Option<CookieCfg>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) enum SessionType {
    Cookie,
    Header,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CookieCfg {
    #[serde(default)]
    pub(super) lifetime_type: Option<Lifetime>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifetime {
    Permanent,
    Session,
}

/// `HTTPCORSFilter` (experimental channel).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CorsFilter {
    #[serde(default)]
    pub(super) allow_origins: Vec<String>,
    #[serde(default)]
    pub(super) allow_credentials: Option<bool>,
    #[serde(default)]
    pub(super) allow_methods: Vec<String>,
    #[serde(default)]
    pub(super) allow_headers: Vec<String>,
    #[serde(default)]
    pub(super) expose_headers: Vec<String>,
    #[serde(default)]
    pub(super) max_age: Option<i64>,
}
