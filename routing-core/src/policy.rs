//! The policy a rule asks the HTTP layer to apply, as validated plain data.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::backend::BackendId;
pub use crate::config::RetryOn;
use crate::matching::HeaderMatch;

/// Everything a rule asks of the HTTP layer besides choosing a backend.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Policy {
    /// Request header changes.
    pub request_headers: HeaderModifier,
    /// Response header changes.
    pub response_headers: HeaderModifier,
    /// URL rewrite before forwarding.
    pub url_rewrite: Option<UrlRewrite>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Retries.
    pub retry: Option<RetryPolicy>,
    /// Fault injection.
    pub fault: Option<FaultPolicy>,
    /// Mirroring.
    pub mirror: Option<Mirror>,
    /// Further mirrors, each sampled on its own.
    pub mirrors: Vec<Mirror>,
    /// Sticky sessions.
    pub session_persistence: Option<SessionPersistence>,
    /// Cross-origin resource sharing.
    pub cors: Option<crate::Cors>,
}

/// Header changes, applied in the order remove, set, add.
#[derive(Debug, Clone, Default)]
pub struct HeaderModifier {
    /// Replace (or create) these headers.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Append these values.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Remove these headers.
    pub remove: Vec<HeaderName>,
}

impl HeaderModifier {
    /// Whether there is nothing to do.
    ///
    /// ```
    /// assert!(routing_core::HeaderModifier::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Applies the changes to `headers`.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderName, HeaderValue};
    /// let m = routing_core::HeaderModifier {
    ///     set: vec![(HeaderName::from_static("x-env"), HeaderValue::from_static("canary"))],
    ///     add: vec![], remove: vec![HeaderName::from_static("x-debug")],
    /// };
    /// let mut h = HeaderMap::new();
    /// h.insert("x-debug", HeaderValue::from_static("1"));
    /// m.apply(&mut h);
    /// assert_eq!(h["x-env"], "canary");
    /// assert!(!h.contains_key("x-debug"));
    /// ```
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// A path change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathModifier {
    /// Replace the whole path.
    Full(String),
    /// Replace the prefix that matched (the rule's matches are all prefixes).
    Prefix(String),
}

impl PathModifier {
    /// The new path for `path`, given the match that matched it: a segment prefix is
    /// replaced with Gateway API `ReplacePrefixMatch` semantics, a plain
    /// `starts_with` prefix as a plain string (Istio `rewrite.uri`).
    ///
    /// ```
    /// use routing_core::{PathModifier, RouteTable};
    /// let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {prefix: /api}}, {path: {starts_with: /old-}}], backends: [{name: a}]}]}]").unwrap();
    /// let (seg, plain) = (t.rules()[0].matches()[0].path(), t.rules()[0].matches()[1].path());
    /// assert_eq!(PathModifier::Prefix("/".into()).rewrite_for("/api/users", seg), "/users");
    /// assert_eq!(PathModifier::Prefix("/new-".into()).rewrite_for("/old-x", plain), "/new-x");
    /// assert_eq!(PathModifier::Full("/x".into()).rewrite_for("/old-x", plain), "/x");
    /// ```
    #[must_use]
    pub fn rewrite_for(&self, path: &str, matched: &crate::PathMatch) -> String {
        match (self, matched) {
            (PathModifier::Prefix(new), crate::PathMatch::StartsWith(p)) => {
                let out = format!("{new}{}", path.strip_prefix(&**p).unwrap_or(path));
                if out.is_empty() {
                    "/".to_owned()
                } else {
                    out
                }
            }
            (_, crate::PathMatch::Prefix(p)) => self.rewrite(path, p),
            _ => self.rewrite(path, ""),
        }
    }

    /// The new path for `path`, given the segment prefix that matched (ignored for `Full`).
    ///
    /// ```
    /// use routing_core::PathModifier;
    /// assert_eq!(PathModifier::Prefix("/v2".into()).rewrite("/api/users", "/api"), "/v2/users");
    /// assert_eq!(PathModifier::Prefix("/".into()).rewrite("/api/users", "/api"), "/users");
    /// assert_eq!(PathModifier::Prefix("/v2".into()).rewrite("/api", "/api"), "/v2");
    /// assert_eq!(PathModifier::Full("/x".into()).rewrite("/api/users", "/api"), "/x");
    /// ```
    #[must_use]
    pub fn rewrite(&self, path: &str, matched_prefix: &str) -> String {
        match self {
            PathModifier::Full(p) => p.clone(),
            PathModifier::Prefix(new) => {
                let rest = path.strip_prefix(matched_prefix).unwrap_or(path);
                let new = new.trim_end_matches('/');
                match (new.is_empty(), rest.is_empty()) {
                    (true, true) => "/".to_owned(),
                    (true, false) => rest.to_owned(),
                    (false, _) => format!("{new}{rest}"),
                }
            }
        }
    }
}

/// URL rewrite.
#[derive(Debug, Clone, Default)]
pub struct UrlRewrite {
    /// New `Host`.
    pub hostname: Option<String>,
    /// New path.
    pub path: Option<PathModifier>,
}

impl UrlRewrite {
    /// Rewrites the request in `parts` as the HTTP layer forwards it: the `Host`
    /// header (and an absolute URI's authority) becomes `hostname`, the path is
    /// rewritten for the match that matched (`matched`, see
    /// [`PathModifier::rewrite_for`]), the query is kept. A value that would not
    /// make a valid header or URI leaves that part as it was.
    ///
    /// ```
    /// use routing_core::{PathModifier, RouteTable, UrlRewrite};
    /// let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {prefix: /api}}], backends: [{name: a}]}]}]").unwrap();
    /// let rw = UrlRewrite { hostname: Some("internal".into()), path: Some(PathModifier::Prefix("/v2".into())) };
    /// let (mut parts, ()) = http::Request::get("http://shop/api/cart?x=1").body(()).unwrap().into_parts();
    /// rw.apply(&mut parts, t.rules()[0].matches()[0].path());
    /// assert_eq!(parts.uri, "http://internal/v2/cart?x=1");
    /// assert_eq!(parts.headers["host"], "internal");
    /// ```
    pub fn apply(&self, parts: &mut http::request::Parts, matched: &crate::PathMatch) {
        if let Some(host) = &self.hostname {
            if let Ok(v) = HeaderValue::from_str(host) {
                parts.headers.insert(http::header::HOST, v);
            }
        }
        if self.hostname.is_none() && self.path.is_none() {
            return;
        }
        let mut uri = parts.uri.clone().into_parts();
        if let Some(m) = &self.path {
            let path = m.rewrite_for(parts.uri.path(), matched);
            let pq = match parts.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            if let Ok(pq) = pq.parse() {
                uri.path_and_query = Some(pq);
            }
        }
        if let (Some(host), Some(_)) = (&self.hostname, &uri.authority) {
            if let Ok(a) = host.parse() {
                uri.authority = Some(a);
            }
        }
        if let Ok(u) = http::Uri::from_parts(uri) {
            parts.uri = u;
        }
    }
}

/// Timeouts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Whole request, retries included.
    pub request: Option<Duration>,
    /// Each try.
    pub per_try: Option<Duration>,
}

/// Retry policy, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    /// Conditions.
    pub on: Vec<RetryOn>,
    /// Statuses for [`RetryOn::RetriableStatusCodes`].
    pub status_codes: Vec<StatusCode>,
    /// Backoff base.
    pub backoff: Duration,
    /// Largest body buffered for replay.
    pub max_body_bytes: u64,
    /// Budget: retries may add this fraction (0.0 ..= 1.0) of the request rate…
    pub budget_ratio: f64,
    /// …plus this many per second.
    pub budget_min_per_second: u32,
    /// Whether requests with a method that is not idempotent are retried after they
    /// may have reached the backend (else only after a connect failure).
    pub non_idempotent: bool,
}

impl RetryPolicy {
    /// Whether a request with `method` may be retried after `sent_nothing` tells if
    /// the failed try reached the backend: idempotent methods (RFC 9110 §9.2.2: GET,
    /// HEAD, OPTIONS, TRACE, PUT, DELETE) always, others only when nothing was sent
    /// or the rule opts in with `non_idempotent`.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], retry: {attempts: 2}}]}]").unwrap();
    /// let r = t.rules()[0].policy().retry.as_ref().unwrap();
    /// assert!(r.allows(&http::Method::GET, false));
    /// assert!(!r.allows(&http::Method::POST, false));
    /// assert!(r.allows(&http::Method::POST, true), "a connect failure sent nothing");
    /// ```
    #[must_use]
    pub fn allows(&self, method: &http::Method, sent_nothing: bool) -> bool {
        use http::Method;
        sent_nothing
            || self.non_idempotent
            || [
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::TRACE,
                Method::PUT,
                Method::DELETE,
            ]
            .contains(method)
    }
}

/// Fault injection.
#[derive(Debug, Clone)]
pub struct FaultPolicy {
    /// Delay and the fraction (0.0 ..= 1.0) of requests delayed.
    pub delay: Option<(Duration, f64)>,
    /// Status and the fraction (0.0 ..= 1.0) of requests aborted.
    pub abort: Option<(StatusCode, f64)>,
    /// Only requests matching all of these are faulted.
    pub headers: Vec<HeaderMatch>,
}

impl FaultPolicy {
    /// Whether this request is eligible for the fault (header conditions).
    ///
    /// ```
    /// let t = routing_core::RouteTable::from_yaml(r#"
    /// backends: [{name: a}]
    /// routes: [{name: r, rules: [{backends: [{name: a}],
    ///   fault: {delay: {fixed: 5s}, headers: [{name: fault-injection, exact: delay}]}}]}]"#).unwrap();
    /// let f = t.rules()[0].policy().fault.as_ref().unwrap();
    /// let mut h = http::HeaderMap::new();
    /// assert!(!f.applies(&h));
    /// h.insert("fault-injection", "delay".parse().unwrap());
    /// assert!(f.applies(&h));
    /// ```
    #[must_use]
    pub fn applies(&self, headers: &HeaderMap) -> bool {
        self.headers.iter().all(|m| m.matches(headers))
    }
}

/// Mirroring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mirror {
    /// Where copies go.
    pub backend: BackendId,
    /// Fraction (0.0 ..= 1.0) of requests copied.
    pub fraction: f64,
}

/// Sticky sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionPersistence {
    /// A cookie the routing layer issues.
    Cookie(CookiePolicy),
    /// A header the client sends (its value is hashed into the Maglev table).
    Header(HeaderName),
}

/// The stickiness cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookiePolicy {
    /// Name.
    pub name: String,
    /// `Max-Age`, if any.
    pub ttl: Option<Duration>,
    /// `Path`.
    pub path: String,
    /// `Domain`.
    pub domain: Option<String>,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite`.
    pub same_site: Option<SameSite>,
    /// A valid cookie keeps its session on a backend of weight 0 (ALB semantics);
    /// else it is re-pinned.
    pub keep_at_zero_weight: bool,
}

/// The `SameSite` cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `Strict`.
    Strict,
    /// `Lax`.
    Lax,
    /// `None`.
    None,
}

/// A redirect answer.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// New scheme.
    pub scheme: Option<String>,
    /// New hostname.
    pub hostname: Option<String>,
    /// New port.
    pub port: Option<u16>,
    /// New path.
    pub path: Option<PathModifier>,
    /// Status (301, 302, 303, 307, 308).
    pub status: StatusCode,
}

impl Redirect {
    /// The `Location` this redirect answers `req` with (Gateway API
    /// `RequestRedirect` semantics): the configured scheme, host, port and path
    /// (rewritten for the match that matched, `matched`) replace the request's; the
    /// port is the configured one, else the request's when the scheme is kept, else
    /// none; a scheme's well-known port (http 80, https 443) is omitted; the query is
    /// kept. The request's authority comes from its URI, else its `Host` header.
    ///
    /// ```
    /// use routing_core::{PathModifier, Redirect, RequestInfo, RouteTable};
    /// let t = RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {prefix: /old}}], backends: [{name: a}]}]}]").unwrap();
    /// let matched = t.rules()[0].matches()[0].path();
    /// let r = Redirect { scheme: Some("https".into()), hostname: None, port: None,
    ///     path: Some(PathModifier::Prefix("/new".into())), status: http::StatusCode::MOVED_PERMANENTLY };
    /// let req = RequestInfo::get("http://shop.test:8080/old/x?q=1");
    /// assert_eq!(r.location(&req, matched), "https://shop.test/new/x?q=1");
    /// ```
    #[must_use]
    pub fn location<R: crate::RouteRequest + ?Sized>(
        &self,
        req: &R,
        matched: &crate::PathMatch,
    ) -> String {
        let req_scheme = req.scheme().unwrap_or("http");
        let (req_host, req_port) = split_host_port(req.host().unwrap_or(""));
        let scheme = self.scheme.as_deref().unwrap_or(req_scheme);
        let host = self.hostname.as_deref().unwrap_or(req_host);
        let port = match (self.port, &self.scheme) {
            (Some(p), _) => Some(p),
            (None, None) => req_port,
            (None, Some(_)) => None,
        };
        let port = port.filter(|&p| !matches!((scheme, p), ("http", 80) | ("https", 443)));
        let path = match &self.path {
            Some(m) => m.rewrite_for(req.path(), matched),
            None => req.path().to_owned(),
        };
        let mut location = format!("{scheme}://{host}");
        if let Some(p) = port {
            location.push(':');
            location.push_str(&p.to_string());
        }
        location.push_str(&path);
        if let Some(q) = req.query() {
            location.push('?');
            location.push_str(q);
        }
        location
    }
}

/// `[v6]:port`, `host:port` or `host`: the host and the port, if any.
fn split_host_port(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..]
                .strip_prefix(':')
                .and_then(|p| p.parse().ok());
            return (&authority[..end + 2], port);
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

/// The filters of one backend of a rule
/// ([`BackendFiltersConfig`](crate::BackendFiltersConfig)), validated: applied
/// only to the tries sent to that backend, after the rule's filters.
#[derive(Debug, Clone, Default)]
pub struct BackendFilters {
    /// Request header changes.
    pub request_headers: HeaderModifier,
    /// Response header changes.
    pub response_headers: HeaderModifier,
    /// URL rewrite before forwarding.
    pub url_rewrite: Option<UrlRewrite>,
    /// Answer with this redirect instead of forwarding.
    pub redirect: Option<Redirect>,
    /// Answer with this response instead of forwarding.
    pub fixed_response: Option<FixedResponse>,
}

impl BackendFilters {
    /// Applies the request filters to `parts` as the HTTP layer does before a try
    /// to this backend: header changes, then the URL rewrite for the rule's match
    /// whose path condition is `matched`.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a, filters: {request_headers: {set: [{name: x-b, value: a}]}, url_rewrite: {path: {full: /new}}}}]}]}]").unwrap();
    /// let rule = &t.rules()[0];
    /// let f = rule.forward().unwrap().filters_for(t.backend_id("a").unwrap()).unwrap();
    /// let (mut parts, ()) = http::Request::get("http://shop/old?q=1").body(()).unwrap().into_parts();
    /// f.apply_request(&mut parts, rule.matches()[0].path());
    /// assert_eq!(parts.headers["x-b"], "a");
    /// assert_eq!(parts.uri, "http://shop/new?q=1");
    /// ```
    pub fn apply_request(&self, parts: &mut http::request::Parts, matched: &crate::PathMatch) {
        self.request_headers.apply(&mut parts.headers);
        if let Some(rw) = &self.url_rewrite {
            rw.apply(parts, matched);
        }
    }

    /// Whether the backend's requests are answered here, never forwarded.
    ///
    /// ```
    /// assert!(!routing_core::BackendFilters::default().answers());
    /// ```
    #[must_use]
    pub fn answers(&self) -> bool {
        self.redirect.is_some() || self.fixed_response.is_some()
    }
}

/// A fixed answer.
#[derive(Debug, Clone)]
pub struct FixedResponse {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: String,
    /// Headers.
    pub headers: HeaderMap,
}

/// Outlier detection, validated, with defaults filled in (see
/// [`OutlierDetectionConfig`](crate::OutlierDetectionConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    /// 5xx responses (or local failures) in a row that eject; `None` disables.
    pub consecutive_5xx: Option<u32>,
    /// 502/503/504 responses (or local failures) in a row that eject; `None` disables.
    pub consecutive_gateway_errors: Option<u32>,
    /// Period of the ejection multiplier's decay.
    pub interval: Duration,
    /// Length of a first ejection.
    pub base_ejection_time: Duration,
    /// Longest ejection.
    pub max_ejection_time: Duration,
    /// Largest share of backends ejected at once, in percent (one is always allowed).
    pub max_ejection_percent: u8,
}

impl Default for OutlierDetection {
    /// Istio's defaults: 5 consecutive 5xx, 10 s interval, 30 s base ejection, 10 %.
    ///
    /// ```
    /// let d = routing_core::OutlierDetection::default();
    /// assert_eq!(d.consecutive_5xx, Some(5));
    /// assert_eq!(d.max_ejection_percent, 10);
    /// ```
    fn default() -> Self {
        Self {
            consecutive_5xx: Some(5),
            consecutive_gateway_errors: None,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
        }
    }
}
