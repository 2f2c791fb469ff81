//! Cross-origin resource sharing, compiled from [`CorsConfig`](crate::CorsConfig):
//! which origins are allowed, and the headers of a preflight answer and of an
//! ordinary answer.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use http::{HeaderMap, HeaderValue};

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// `*`: every origin.
    Any,
    /// `scheme://host[:port]`, lowercase.
    Exact(String),
    /// `scheme://*.suffix[:port]`: `prefix` is `scheme://`, `suffix` is `.suffix[:port]`.
    Wildcard { prefix: String, suffix: String },
}

/// A rule's CORS policy (see [`CorsConfig`](crate::CorsConfig)).
///
/// ```
/// let t = routing_core::RouteTable::from_yaml(r#"
/// backends: [{name: a}]
/// routes:
///   - name: api
///     rules:
///       - backends: [{name: a}]
///         filters:
///           cors: {allow_origins: ["https://app.example.com"], allow_methods: [GET, PUT], allow_credentials: true}
/// "#).unwrap();
/// let cors = t.rules()[0].policy().cors.as_ref().unwrap();
/// let origin = http::HeaderValue::from_static("https://app.example.com");
/// let pre = cors.preflight(&origin, None, None);
/// assert_eq!(pre["access-control-allow-methods"], "GET, PUT");
/// assert_eq!(pre["access-control-max-age"], "5");
/// let res = cors.response_headers(&origin);
/// assert_eq!(res["access-control-allow-origin"], "https://app.example.com");
/// assert_eq!(res["access-control-allow-credentials"], "true");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<Origin>,
    /// `None`: every method (`*`).
    methods: Option<HeaderValue>,
    /// `None`: every header (`*`), echoed from the preflight's request.
    headers: Option<HeaderValue>,
    any_header: bool,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

impl Cors {
    /// Compiles the lists (already checked by the builder); `Err` names the first
    /// value that is not valid.
    pub(crate) fn new(c: &crate::CorsConfig) -> Result<Self, (&'static str, usize, String)> {
        let mut origins = Vec::new();
        for (i, o) in c.allow_origins.iter().enumerate() {
            origins.push(parse_origin(o).ok_or(("allow_origins", i, o.clone()))?);
        }
        let list = |field: &'static str, items: &[String], check: fn(&str) -> bool| {
            for (i, v) in items.iter().enumerate() {
                if v != "*" && !check(v) {
                    return Err((field, i, v.clone()));
                }
            }
            if items.is_empty() {
                return Ok(Some(None));
            }
            if items.iter().any(|v| v == "*") {
                return Ok(None);
            }
            Ok(Some(HeaderValue::from_str(&items.join(", ")).ok()))
        };
        let is_method = |m: &str| http::Method::from_bytes(m.as_bytes()).is_ok();
        let is_header = |h: &str| http::HeaderName::from_bytes(h.as_bytes()).is_ok();
        let methods = list("allow_methods", &c.allow_methods, is_method)?;
        let headers = list("allow_headers", &c.allow_headers, is_header)?;
        for (i, h) in c.expose_headers.iter().enumerate() {
            if !is_header(h) {
                return Err(("expose_headers", i, h.clone()));
            }
        }
        let expose = (!c.expose_headers.is_empty())
            .then(|| HeaderValue::from_str(&c.expose_headers.join(", ")).ok())
            .flatten();
        Ok(Self {
            origins,
            methods: methods.map(|m| m.unwrap_or(HeaderValue::from_static(""))),
            any_header: headers.is_none(),
            headers: headers.flatten(),
            expose,
            credentials: c.allow_credentials,
            max_age: HeaderValue::from(c.max_age.unwrap_or(5)),
        })
    }

    /// Whether `origin` (an `Origin` header value) is allowed.
    ///
    /// ```
    /// let t = routing_core::RouteTable::from_yaml(
    ///     "backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], filters: {cors: {allow_origins: ['https://*.b.com']}}}]}]",
    /// ).unwrap();
    /// let cors = t.rules()[0].policy().cors.as_ref().unwrap();
    /// assert!(cors.allows_origin("https://x.y.b.com"));
    /// assert!(!cors.allows_origin("https://b.com"));
    /// ```
    #[must_use]
    pub fn allows_origin(&self, origin: &str) -> bool {
        let o = origin.to_ascii_lowercase();
        self.origins.iter().any(|p| match p {
            Origin::Any => true,
            Origin::Exact(e) => *e == o,
            Origin::Wildcard { prefix, suffix } => o
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.len() > suffix.len() && rest.ends_with(suffix.as_str())),
        })
    }

    /// The headers of the layer's answer to a preflight from `origin` asking for
    /// `request_method` and `request_headers` (`Access-Control-Request-Method`,
    /// `-Headers`); empty when the origin is not allowed. A `*` list answers with
    /// what was asked (a literal `*` is not honoured with credentials).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], filters: {cors: {allow_origins: ['*'], allow_methods: ['*'], allow_headers: ['*']}}}]}]").unwrap();
    /// let cors = t.rules()[0].policy().cors.as_ref().unwrap();
    /// let asked = http::HeaderValue::from_static("x-a, x-b");
    /// let put = http::HeaderValue::from_static("PUT");
    /// let h = cors.preflight(&http::HeaderValue::from_static("https://o.example"), Some(&put), Some(&asked));
    /// assert_eq!(h["access-control-allow-headers"], "x-a, x-b");
    /// assert_eq!(h["access-control-allow-methods"], "PUT");
    /// ```
    #[must_use]
    pub fn preflight(
        &self,
        origin: &HeaderValue,
        request_method: Option<&HeaderValue>,
        request_headers: Option<&HeaderValue>,
    ) -> HeaderMap {
        let mut h = self.response_headers(origin);
        if h.is_empty() {
            return h;
        }
        match &self.methods {
            Some(m) if !m.is_empty() => {
                h.insert(ACCESS_CONTROL_ALLOW_METHODS, m.clone());
            }
            Some(_) => {}
            None => {
                if let Some(m) = request_method {
                    h.insert(ACCESS_CONTROL_ALLOW_METHODS, m.clone());
                }
            }
        }
        if self.any_header {
            if let Some(asked) = request_headers {
                h.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
        } else if let Some(a) = &self.headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, a.clone());
        }
        h.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        h
    }

    /// The headers added to an ordinary answer to a request from `origin`; empty
    /// when the origin is not allowed.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], filters: {cors: {allow_origins: ['https://a.example'], expose_headers: [x-id]}}}]}]").unwrap();
    /// let cors = t.rules()[0].policy().cors.as_ref().unwrap();
    /// let h = cors.response_headers(&http::HeaderValue::from_static("https://a.example"));
    /// assert_eq!(h["access-control-expose-headers"], "x-id");
    /// assert!(cors.response_headers(&http::HeaderValue::from_static("https://b.example")).is_empty());
    /// ```
    #[must_use]
    pub fn response_headers(&self, origin: &HeaderValue) -> HeaderMap {
        let mut h = HeaderMap::new();
        let allowed = origin.to_str().is_ok_and(|o| self.allows_origin(o));
        if !allowed {
            return h;
        }
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(e) = &self.expose {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
        h.insert(VARY, HeaderValue::from_static("Origin"));
        h
    }
}

/// `*`, `scheme://host[:port]` or `scheme://*.host[:port]`.
fn parse_origin(o: &str) -> Option<Origin> {
    if o == "*" {
        return Some(Origin::Any);
    }
    let lower = o.to_ascii_lowercase();
    let (scheme, hostport) = lower.split_once("://")?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok || hostport.is_empty() || hostport.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let host = hostport.rsplit_once(':').map_or(hostport, |(h, port)| {
        if port.parse::<u16>().is_ok() {
            h
        } else {
            hostport
        }
    });
    match host.strip_prefix("*.") {
        Some(rest) if !rest.is_empty() && !rest.contains('*') => Some(Origin::Wildcard {
            prefix: format!("{scheme}://"),
            suffix: hostport[1..].to_owned(),
        }),
        Some(_) => None,
        None if host.contains('*') || host.is_empty() => None,
        None => Some(Origin::Exact(lower.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let c = crate::CorsConfig {
            allow_origins: vec![
                "https://www.foo.com".into(),
                "https://*.bar.com".into(),
                "http://*.local:8080".into(),
            ],
            ..Default::default()
        };
        let cors = Cors::new(&c).expect("valid origins");
        for ok in [
            "https://www.foo.com",
            "HTTPS://WWW.FOO.COM",
            "https://a.bar.com",
            "https://a.b.bar.com",
            "http://x.local:8080",
        ] {
            assert!(cors.allows_origin(ok), "{ok}");
        }
        for no in [
            "https://foo.com",
            "http://www.foo.com",
            "https://bar.com",
            "https://a.bar.com.evil",
            "http://x.local",
            "https://foobar.com",
        ] {
            assert!(!cors.allows_origin(no), "{no}");
        }
        for bad in [
            "www.foo.com",
            "https://",
            "https://a/b",
            "https://*",
            "https://a.*.com",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }
}
