//! Request and response filters: header modifiers, URL rewrites (host, full
//! path, prefix) and redirects, with Gateway API semantics.

use http::header::{HOST, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use routing_core::PathMatch;

use crate::body::{self, Body};

pub(crate) mod cors;

/// The redirect answer for `req` (Gateway API `RequestRedirect` semantics; the
/// `Location` is [`Redirect::location`](routing_core::Redirect::location)).
pub(crate) fn redirect<B>(
    req: &Request<B>,
    r: &routing_core::Redirect,
    matched: &PathMatch,
) -> Response<Body> {
    let location = r.location(req, matched);
    let mut res = Response::new(body::empty());
    *res.status_mut() = r.status;
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            res.headers_mut().insert(LOCATION, v);
        }
        Err(_) => *res.status_mut() = StatusCode::BAD_REQUEST,
    }
    res
}

/// The answer of a fixed response (a rule's action or a backend's filter).
pub(crate) fn fixed_response(f: &routing_core::FixedResponse) -> Response<Body> {
    let mut res = Response::new(body::full(f.body.clone()));
    *res.status_mut() = f.status;
    *res.headers_mut() = f.headers.clone();
    res
}

/// Applies the rule's request header filters and URL rewrite to `parts`
/// ([`Rule::apply_request_filters`](routing_core::Rule::apply_request_filters)).
pub(crate) fn request_filters(
    rule: &routing_core::Rule,
    match_index: usize,
    parts: &mut http::request::Parts,
) {
    rule.apply_request_filters(match_index, parts);
}

/// Replaces the request's path by its normalised form (the table's
/// [`PathNormalization`](routing_core::PathNormalization)), so that the path rules match
/// is the one rewritten and forwarded. `Err` is why a path is refused (bad escapes,
/// encoded slashes by default): the caller answers [`bad_request`].
pub(crate) fn normalize_path<B>(
    req: &mut Request<B>,
    norm: &routing_core::PathNormalization,
) -> Result<(), String> {
    match norm.normalize_uri(req.uri()) {
        Ok(Some(uri)) => *req.uri_mut() = uri,
        Ok(None) => {}
        Err(e) => return Err(format!("invalid request path: {e}")),
    }
    Ok(())
}

/// A `400 Bad Request` with a plain-text reason.
pub(crate) fn bad_request(reason: &str) -> Response<Body> {
    let mut res = Response::new(body::full(format!("{reason}\n")));
    *res.status_mut() = StatusCode::BAD_REQUEST;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Bytes of an RFC 3986 reg-name or IPv4 address: unreserved, sub-delims and `%`.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        c += 1;
    }
    t
};

/// Whether `h` is a `Host` value: `host[:port]` where host is a reg-name or IPv4
/// (RFC 3986 unreserved, sub-delims and percent-escapes) or a bracketed IPv6 literal;
/// no user information. A byte scan: this runs on every request.
fn valid_host(h: &[u8]) -> bool {
    let (host, port) = match h.first() {
        Some(b'[') => match h.iter().position(|&c| c == b']') {
            Some(end) => {
                let inside = &h[1..end];
                if inside.is_empty()
                    || !inside
                        .iter()
                        .all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
                {
                    return false;
                }
                (&h[..=end], &h[end + 1..])
            }
            None => return false,
        },
        _ => match h.iter().position(|&c| c == b':') {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, &h[h.len()..]),
        },
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    let host_ok = host.first() == Some(&b'[')
        || (!host.is_empty() && host.iter().all(|&c| REG_NAME[usize::from(c)]));
    port_ok && host_ok
}

/// One authority per request: several `Host` headers, or one that is not a valid
/// authority, are refused (`Err` is the reason, answered 400); an absolute-form
/// request (`GET http://a/x`) has its `Host` set to the URI's authority, so the host
/// the rules route on is the host forwarded.
pub(crate) fn one_authority<B>(req: &mut Request<B>) -> Result<(), &'static str> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err("several Host headers");
    }
    if let Some(h) = first {
        if !valid_host(h.as_bytes()) {
            return Err("invalid Host header");
        }
    }
    if let Some(a) = req.uri().authority() {
        if a.as_str().contains('@') {
            return Err("user information in the request target");
        }
        let value = HeaderValue::from_str(a.as_str()).map_err(|_| "invalid request target")?;
        req.headers_mut().insert(HOST, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn host_values() {
        for ok in [
            "shop.example.com",
            "shop.example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "a_b-c~d",
            "xn--caf-dma.example",
            "host:",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "user@admin.internal",
            "a b",
            "a/b",
            "host:80:80",
            "host:123456",
            "[::1",
            "[zz]",
            "[::1]x",
            ":80",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }
}
