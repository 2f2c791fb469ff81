//! Request path normalisation (RFC 3986 §6.2.2 and §5.2.4), applied before matching so
//! that a rule sees the path the backend will resolve: `/x/../admin`, `/%61dmin` and
//! `//admin` are all `/admin`.
//!
//! The steps, in order, over the path only (never the query):
//!
//! 1. percent-encodings are checked (`%` must be followed by two hex digits); those of
//!    unreserved characters (`A–Z a–z 0–9 - . _ ~`) are decoded, the others have their
//!    hex digits uppercased;
//! 2. encoded slashes and backslashes (`%2F`, `%5C`) and raw backslashes are handled by
//!    [`EscapedSlashes`]: rejected by default (Envoy's advice for proxies whose
//!    backends may decode them);
//! 3. runs of `/` are merged into one (when [`PathNormalization::merge_slashes`]);
//! 4. dot segments (`.` and `..`) are removed; `..` never climbs above the root.
//!
//! Normalising a normalised path changes nothing.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// What to do with `%2F`, `%5C` and raw `\` in a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Answer 400: a backend that decodes them would see other segments than the
    /// rules matched (the default).
    #[default]
    Reject,
    /// Keep them encoded (`%2F` stays one segment, as RFC 3986 says); a raw `\` is
    /// still rejected.
    Keep,
    /// Decode them to `/` before merging slashes and removing dot segments, so the
    /// rules see the segments a decoding backend sees.
    Decode,
}

/// How request paths are normalised before matching (`path_normalization` in the
/// configuration). Every field has the safe default.
///
/// ```
/// use routing_core::{PathNormalization, EscapedSlashes};
/// let n = PathNormalization::default();
/// assert!(n.enabled && n.merge_slashes);
/// assert_eq!(n.escaped_slashes, EscapedSlashes::Reject);
/// assert_eq!(n.normalize("/x/../%61dmin//users").unwrap(), "/admin/users");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathNormalization {
    /// Normalise at all (default `true`). Turning it off makes rules match the raw
    /// path, which a path-based deny rule cannot rely on.
    pub enabled: bool,
    /// Merge runs of `/` (default `true`).
    pub merge_slashes: bool,
    /// Encoded slashes and backslashes (default [`EscapedSlashes::Reject`]).
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathNormalization {
    fn default() -> Self {
        Self {
            enabled: true,
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

/// Why a path was refused (the HTTP layer answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding in the path")]
    BadPercentEncoding,
    /// `%2F`, `%5C` or `\` with [`EscapedSlashes::Reject`] (or a raw `\` with `Keep`).
    #[error("encoded slash or backslash in the path")]
    EscapedSlash,
    /// The path does not start with `/` (and is not `*`).
    #[error("the path is not absolute")]
    NotAbsolute,
    /// The normalised path does not make a valid request target.
    #[error("the normalised path is not a valid request target")]
    Unrepresentable,
}

impl PathNormalization {
    /// The normalised form of `path` (borrowed when nothing changes).
    ///
    /// ```
    /// use routing_core::{EscapedSlashes, PathError, PathNormalization};
    /// let n = PathNormalization::default();
    /// assert_eq!(n.normalize("/api/../admin").unwrap(), "/admin");
    /// assert_eq!(n.normalize("/a/./b/%7euser").unwrap(), "/a/b/~user");
    /// assert_eq!(n.normalize("/a%2fb"), Err(PathError::EscapedSlash));
    /// let keep = PathNormalization { escaped_slashes: EscapedSlashes::Keep, ..n };
    /// assert_eq!(keep.normalize("/a%2fb").unwrap(), "/a%2Fb");
    /// let decode = PathNormalization { escaped_slashes: EscapedSlashes::Decode, ..n };
    /// assert_eq!(decode.normalize("/a%2f..%2fadmin").unwrap(), "/admin");
    /// ```
    pub fn normalize<'p>(&self, path: &'p str) -> Result<Cow<'p, str>, PathError> {
        if !self.enabled || path == "*" {
            return Ok(Cow::Borrowed(path));
        }
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }
        if self.is_normal(path) {
            return Ok(Cow::Borrowed(path));
        }
        let decoded = self.decode(path)?;
        let merged = if self.merge_slashes {
            merge_slashes(&decoded)
        } else {
            decoded
        };
        Ok(Cow::Owned(remove_dot_segments(&merged)))
    }

    /// `uri` with its path normalised and its query kept: `None` when nothing changes
    /// (the common case, no allocation). The one place both the HTTP layer and
    /// [`RequestInfo::normalize_path`](crate::RequestInfo::normalize_path) rebuild a
    /// request target.
    ///
    /// ```
    /// use routing_core::PathNormalization;
    /// let n = PathNormalization::default();
    /// let uri: http::Uri = "http://a/x/../b?q=%2e".parse().unwrap();
    /// assert_eq!(n.normalize_uri(&uri).unwrap().unwrap(), "http://a/b?q=%2e");
    /// assert_eq!(n.normalize_uri(&"/b".parse().unwrap()).unwrap(), None);
    /// ```
    pub fn normalize_uri(&self, uri: &http::Uri) -> Result<Option<http::Uri>, PathError> {
        let Cow::Owned(path) = self.normalize(uri.path())? else {
            return Ok(None);
        };
        let pq = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(pq.parse().map_err(|_| PathError::Unrepresentable)?);
        http::Uri::from_parts(parts)
            .map(Some)
            .map_err(|_| PathError::Unrepresentable)
    }

    /// A quick check for the common case: nothing to decode, merge or remove. One
    /// table lookup per byte; only `/` is looked at further.
    #[inline]
    fn is_normal(&self, path: &str) -> bool {
        let b = path.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            match SPECIAL[usize::from(c)] {
                0 => {}
                1 => return false, // `%` or `\`
                _ => {
                    // `/`: followed by `/` (merge), or by a `.` or `..` segment.
                    match b.get(i + 1) {
                        Some(b'/') if self.merge_slashes => return false,
                        Some(b'.') => match b.get(i + 2) {
                            None | Some(b'/') => return false,
                            Some(b'.') if matches!(b.get(i + 3), None | Some(b'/')) => {
                                return false
                            }
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
        }
        true
    }

    /// Step 1 and 2: percent-encodings and escaped slashes.
    fn decode(&self, path: &str) -> Result<String, PathError> {
        let b = path.as_bytes();
        let mut out = String::with_capacity(path.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'%' => {
                    let (Some(h), Some(l)) = (
                        b.get(i + 1).copied().and_then(hex),
                        b.get(i + 2).copied().and_then(hex),
                    ) else {
                        return Err(PathError::BadPercentEncoding);
                    };
                    let c = (h << 4) | l;
                    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                        out.push(char::from(c));
                    } else if c == b'/' || c == b'\\' {
                        match self.escaped_slashes {
                            EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                            EscapedSlashes::Keep => {
                                out.push('%');
                                out.push_str(if c == b'/' { "2F" } else { "5C" });
                            }
                            EscapedSlashes::Decode => out.push('/'),
                        }
                    } else {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(h)]));
                        out.push(char::from(HEX[usize::from(l)]));
                    }
                    i += 3;
                }
                b'\\' => match self.escaped_slashes {
                    EscapedSlashes::Decode => {
                        out.push('/');
                        i += 1;
                    }
                    _ => return Err(PathError::EscapedSlash),
                },
                _ => {
                    // Copy the run of plain bytes up to the next `%` or `\` (UTF-8 is
                    // kept whole: both are ASCII).
                    let end = b[i..]
                        .iter()
                        .position(|&c| c == b'%' || c == b'\\')
                        .map_or(b.len(), |p| i + p);
                    out.push_str(&path[i..end]);
                    i = end;
                }
            }
        }
        Ok(out)
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Byte classes for [`PathNormalization::is_normal`]: 1 for `%` and `\\`, 2 for `/`.
const SPECIAL: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'%' as usize] = 1;
    t[b'\\' as usize] = 1;
    t[b'/' as usize] = 2;
    t
};

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    out
}

/// RFC 3986 §5.2.4 over an absolute path, by segments: `.` is dropped, `..` drops the
/// previous segment (never the root). A trailing `.` or `..` leaves a trailing `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    // `path` starts with `/`: the first piece is empty.
    for seg in path.split('/').skip(1) {
        trailing_slash = false;
        match seg {
            "." => trailing_slash = true,
            ".." => {
                segs.pop();
                trailing_slash = true;
            }
            s => segs.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        PathNormalization::default()
            .normalize(p)
            .map(Cow::into_owned)
    }

    #[test]
    fn attacks_from_the_issue_are_normalised() {
        for raw in [
            "/x/../admin/users",
            "/%61dmin/users",
            "//admin/users",
            "/api/../admin/users",
            "/api/%2e%2e/admin/users",
            "/./admin/./users",
            "/../../admin/users",
            "/admin//users",
        ] {
            assert_eq!(n(raw).unwrap(), "/admin/users", "{raw}");
        }
    }

    #[test]
    fn rfc_examples_and_edges() {
        assert_eq!(n("/a/b/c/./../../g").unwrap(), "/a/g");
        assert_eq!(n("/mid/content=5/../6").unwrap(), "/mid/6");
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/..").unwrap(), "/");
        assert_eq!(n("/a/..").unwrap(), "/");
        assert_eq!(n("/a/.").unwrap(), "/a/");
        assert_eq!(n("/a/b/").unwrap(), "/a/b/");
        assert_eq!(n("/.well-known/x").unwrap(), "/.well-known/x");
        assert_eq!(n("/a..b/...").unwrap(), "/a..b/...");
        assert_eq!(n("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(n("/é/../x").unwrap(), "/x");
        assert_eq!(n("*").unwrap(), "*");
        assert_eq!(n("x"), Err(PathError::NotAbsolute));
        assert_eq!(n("/a%zz"), Err(PathError::BadPercentEncoding));
        assert_eq!(n("/a%4"), Err(PathError::BadPercentEncoding));
        assert_eq!(n("/a\\b"), Err(PathError::EscapedSlash));
        assert_eq!(n("/a%5cb"), Err(PathError::EscapedSlash));
    }

    #[test]
    fn options_change_what_they_say() {
        let keep_slashes = PathNormalization {
            merge_slashes: false,
            ..PathNormalization::default()
        };
        assert_eq!(keep_slashes.normalize("/a//b/../c").unwrap(), "/a//c");
        let off = PathNormalization {
            enabled: false,
            ..PathNormalization::default()
        };
        assert_eq!(off.normalize("/x/../admin").unwrap(), "/x/../admin");
        let decode = PathNormalization {
            escaped_slashes: EscapedSlashes::Decode,
            ..PathNormalization::default()
        };
        assert_eq!(decode.normalize("/a\\..\\admin").unwrap(), "/admin");
        let keep = PathNormalization {
            escaped_slashes: EscapedSlashes::Keep,
            ..PathNormalization::default()
        };
        assert_eq!(keep.normalize("/a%2f..%2fb").unwrap(), "/a%2F..%2Fb");
        assert_eq!(keep.normalize("/a\\b"), Err(PathError::EscapedSlash));
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        let all = [
            PathNormalization::default(),
            PathNormalization {
                escaped_slashes: EscapedSlashes::Decode,
                ..PathNormalization::default()
            },
            PathNormalization {
                escaped_slashes: EscapedSlashes::Keep,
                merge_slashes: false,
                ..PathNormalization::default()
            },
        ];
        let samples = [
            "/a/../b",
            "//x//./y/..",
            "/%2e%2E/%41",
            "/a%2f%2e%2e%2fb",
            "/a/%2e./b",
            "/.../..",
            "/a/b/.",
            "/%25%32%66",
            "/x/..%2f..",
            "/a\\b",
            "/~%7e",
        ];
        for opts in all {
            for s in samples {
                if let Ok(once) = opts.normalize(s) {
                    let twice = opts.normalize(&once).unwrap();
                    assert_eq!(twice, once, "{opts:?} {s}");
                }
            }
        }
    }
}
