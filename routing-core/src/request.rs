//! What routing reads from a request, behind a small trait.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue, Method};

/// The client's address, for `source_ip` hashing. Insert it into a request's
/// extensions (the tower layer does this from the connection) so that
/// [`RouteRequest::source_ip`] can find it.
///
/// ```
/// use routing_core::{ClientAddr, RouteRequest};
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ClientAddr("192.0.2.7:5000".parse().unwrap()));
/// assert_eq!(req.source_ip(), Some("192.0.2.7".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The parts of a request that routing reads. Implemented for
/// [`http::request::Parts`], [`http::Request<B>`] (the body is never touched) and
/// [`RequestInfo`]; callers that are not HTTP can implement it for their own type.
///
/// ```
/// use routing_core::RouteRequest;
/// let req = http::Request::get("https://shop.example.com:8443/api/cart?x=1").body(()).unwrap();
/// assert_eq!(req.host(), Some("shop.example.com:8443"));
/// assert_eq!(req.path(), "/api/cart");
/// assert_eq!(req.query(), Some("x=1"));
/// assert_eq!(req.scheme(), Some("https"));
/// ```
pub trait RouteRequest {
    /// The method.
    fn method(&self) -> &Method;
    /// The scheme, when known (`http`, `https`).
    fn scheme(&self) -> Option<&str>;
    /// The authority (`host[:port]`), from the URI or else the `Host` header.
    fn host(&self) -> Option<&str>;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The raw query string, without `?`.
    fn query(&self) -> Option<&str>;
    /// The headers.
    fn headers(&self) -> &HeaderMap;
    /// The client's IP address, when known.
    fn source_ip(&self) -> Option<IpAddr> {
        None
    }
}

fn host_of<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| {
            headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
}

impl RouteRequest for http::request::Parts {
    fn method(&self) -> &Method {
        &self.method
    }
    fn scheme(&self) -> Option<&str> {
        self.uri.scheme_str()
    }
    fn host(&self) -> Option<&str> {
        host_of(&self.uri, &self.headers)
    }
    fn path(&self) -> &str {
        self.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn source_ip(&self) -> Option<IpAddr> {
        self.extensions.get::<ClientAddr>().map(|a| a.0.ip())
    }
}

impl<B> RouteRequest for http::Request<B> {
    fn method(&self) -> &Method {
        http::Request::method(self)
    }
    fn scheme(&self) -> Option<&str> {
        self.uri().scheme_str()
    }
    fn host(&self) -> Option<&str> {
        host_of(self.uri(), http::Request::headers(self))
    }
    fn path(&self) -> &str {
        self.uri().path()
    }
    fn query(&self) -> Option<&str> {
        self.uri().query()
    }
    fn headers(&self) -> &HeaderMap {
        http::Request::headers(self)
    }
    fn source_ip(&self) -> Option<IpAddr> {
        self.extensions().get::<ClientAddr>().map(|a| a.0.ip())
    }
}

/// An owned request description, for callers without an `http::Request` (simulations,
/// the CLI, tests).
///
/// ```
/// use routing_core::{RequestInfo, RouteRequest};
/// let req = RequestInfo::get("https://shop.example.com/api?v=2").header("x-canary", "true");
/// assert_eq!(req.host(), Some("shop.example.com"));
/// assert_eq!(req.headers()["x-canary"], "true");
/// ```
#[derive(Debug, Clone)]
pub struct RequestInfo {
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
    source: Option<IpAddr>,
}

impl RequestInfo {
    /// A request with `method` and `uri` (absolute, or origin-form with a `Host` header
    /// added later). An unparsable URI becomes `/`.
    ///
    /// ```
    /// use routing_core::{RequestInfo, RouteRequest};
    /// assert_eq!(RequestInfo::new(http::Method::POST, "/x").method(), http::Method::POST);
    /// ```
    #[must_use]
    pub fn new(method: Method, uri: &str) -> Self {
        Self {
            method,
            uri: uri.parse().unwrap_or_else(|_| http::Uri::from_static("/")),
            headers: HeaderMap::new(),
            source: None,
        }
    }

    /// A `GET` for `uri`.
    ///
    /// ```
    /// use routing_core::{RequestInfo, RouteRequest};
    /// assert_eq!(RequestInfo::get("http://a/b").path(), "/b");
    /// ```
    #[must_use]
    pub fn get(uri: &str) -> Self {
        Self::new(Method::GET, uri)
    }

    /// Adds a header (invalid names or values are ignored).
    ///
    /// ```
    /// use routing_core::{RequestInfo, RouteRequest};
    /// let r = RequestInfo::get("/").header("cookie", "a=1").header("cookie", "b=2");
    /// assert_eq!(r.headers().get_all("cookie").iter().count(), 2);
    /// ```
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.append(n, v);
        }
        self
    }

    /// The same request with its path normalised as the HTTP layer does before
    /// matching (see [`PathNormalization`](crate::PathNormalization)); the query is
    /// kept.
    ///
    /// ```
    /// use routing_core::{PathNormalization, RequestInfo, RouteRequest};
    /// let r = RequestInfo::get("http://a/x/../%61dmin?q=1").normalize_path(&PathNormalization::default()).unwrap();
    /// assert_eq!(r.path(), "/admin");
    /// assert_eq!(r.query(), Some("q=1"));
    /// assert!(RequestInfo::get("/a%2fb").normalize_path(&PathNormalization::default()).is_err());
    /// ```
    pub fn normalize_path(
        mut self,
        n: &crate::PathNormalization,
    ) -> Result<Self, crate::PathError> {
        if let Some(uri) = n.normalize_uri(&self.uri)? {
            self.uri = uri;
        }
        Ok(self)
    }

    /// Sets the client address.
    ///
    /// ```
    /// use routing_core::{RequestInfo, RouteRequest};
    /// let r = RequestInfo::get("/").source("10.1.2.3".parse().unwrap());
    /// assert_eq!(r.source_ip(), Some("10.1.2.3".parse().unwrap()));
    /// ```
    #[must_use]
    pub fn source(mut self, ip: IpAddr) -> Self {
        self.source = Some(ip);
        self
    }
}

impl RouteRequest for RequestInfo {
    fn method(&self) -> &Method {
        &self.method
    }
    fn scheme(&self) -> Option<&str> {
        self.uri.scheme_str()
    }
    fn host(&self) -> Option<&str> {
        host_of(&self.uri, &self.headers)
    }
    fn path(&self) -> &str {
        self.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.uri.query()
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn source_ip(&self) -> Option<IpAddr> {
        self.source
    }
}

/// Normalises an authority for host matching: drops the port and a trailing dot and
/// lowercases (allocating only when there are uppercase letters).
pub(crate) fn normalize_host(authority: &str) -> std::borrow::Cow<'_, str> {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal: keep the brackets' content.
        rest.split(']').next().unwrap_or(rest)
    } else {
        // A port is the digits after the last `:`: walking back over digits reaches
        // that `:` exactly when every byte after it is a digit (usually the walk stops
        // at once, on the host's last letter).
        let b = authority.as_bytes();
        let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
        match b.len().checked_sub(digits + 1) {
            Some(colon) if b[colon] == b':' => &authority[..colon],
            _ => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if has_uppercase(host.as_bytes()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// Whether `s` has an ASCII uppercase letter, eight bytes at a time.
#[inline]
fn has_uppercase(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_ne_bytes(w);
        // Bytes under 0x80 only: the high bit of `x + (0x80 - 'A')` is set from `A`
        // up, that of `x + (0x80 - 'Z' - 1)` from `[` up.
        let ge_a = (x & !HIGH).wrapping_add(ONES * u64::from(0x80 - b'A'));
        let gt_z = (x & !HIGH).wrapping_add(ONES * u64::from(0x80 - b'Z' - 1));
        if ge_a & !gt_z & !x & HIGH != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(u8::is_ascii_uppercase)
}

/// The value of cookie `name` in the request's `Cookie` headers (first occurrence).
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.append("cookie", "a=1; session=abc".parse().unwrap());
/// assert_eq!(routing_core::cookie(&h, "session"), Some("abc"));
/// assert_eq!(routing_core::cookie(&h, "sess"), None);
/// ```
#[must_use]
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    // Pair by pair, finding each `;` with memchr (vectorised) and comparing the
    // pair's start with the name: no per-byte work outside the pairs' heads.
    let name = name.as_bytes();
    for v in headers.get_all(http::header::COOKIE) {
        let mut rest = v.as_bytes();
        loop {
            let (pair, next) = match memchr::memchr(b';', rest) {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            let pair = trim_ascii_ws(pair);
            if let Some(after) = pair.strip_prefix(name) {
                if let [b'=', value @ ..] = trim_ascii_ws(after) {
                    let mut value = trim_ascii_ws(value);
                    if let [b'"', inner @ .., b'"'] = value {
                        value = inner;
                    }
                    // Cookie values are ASCII (RFC 6265); anything else is not returned.
                    return if value.is_ascii() {
                        std::str::from_utf8(value).ok()
                    } else {
                        None
                    };
                }
            }
            match next {
                Some(n) => rest = n,
                None => break,
            }
        }
    }
    None
}

fn trim_ascii_ws(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing_edge_cases() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1;b = 2 ;  c=\"q\"; d=; =e; f".parse().expect("value"),
        );
        h.append(
            http::header::COOKIE,
            "g=7; a=second".parse().expect("value"),
        );
        assert_eq!(cookie(&h, "a"), Some("1"), "first occurrence wins");
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), Some("q"), "quotes stripped");
        assert_eq!(cookie(&h, "d"), Some(""));
        assert_eq!(cookie(&h, ""), Some("e"));
        assert_eq!(cookie(&h, "f"), None, "no `=`: not a pair");
        assert_eq!(cookie(&h, "g"), Some("7"), "later headers are read");
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            http::HeaderValue::from_bytes(b"x=caf\xc3\xa9").expect("obs-text is allowed"),
        );
        assert_eq!(cookie(&h, "x"), None, "non-ASCII values are not returned");
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=xs=1; s =2; ss=3; s".parse().expect("value"),
        );
        assert_eq!(
            cookie(&h, "s"),
            Some("2"),
            "only whole names match, `=` may follow spaces"
        );
        assert_eq!(cookie(&h, "ss"), Some("3"));
    }

    #[test]
    fn uppercase_is_found_at_every_position() {
        for n in 0..40usize {
            for at in 0..n {
                for (c, want) in [
                    (b'A', true),
                    (b'Z', true),
                    (b'@', false),
                    (b'[', false),
                    (0xc1, false),
                    (b'a', false),
                ] {
                    let mut s = vec![b'z'; n];
                    s[at] = c;
                    assert_eq!(has_uppercase(&s), want, "{c:#x} at {at} of {n}");
                }
            }
        }
    }

    #[test]
    fn host_normalisation() {
        for (input, want) in [
            ("Shop.Example.COM", "shop.example.com"),
            ("shop.example.com:8443", "shop.example.com"),
            ("shop.example.com.", "shop.example.com"),
            ("[::1]:80", "::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("127.0.0.1:9", "127.0.0.1"),
            ("a.test:", "a.test"),
            ("A.test:x1", "a.test:x1"),
            ("a:1:2", "a:1"),
            ("a.test:12x", "a.test:12x"),
            ("8080", "8080"),
            (":80", ""),
            (
                "SHOP.EXAMPLE.COM.longer.Name:1",
                "shop.example.com.longer.name",
            ),
        ] {
            assert_eq!(normalize_host(input), want, "{input}");
        }
    }

    #[test]
    fn host_header_is_used_for_origin_form() {
        let r = RequestInfo::get("/x").header("host", "a.test:1");
        assert_eq!(r.host(), Some("a.test:1"));
    }
}
