//! Validated match predicates: path, method, scheme, authority, headers, query.

use http::{HeaderName, Method};
use regex::bytes::Regex;

use crate::precedence::PathSpecificity;
use crate::request::RouteRequest;

/// A path condition.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PathMatch {
    /// The whole path.
    Exact(Box<str>),
    /// Whole leading segments. Stored without a trailing `/`; the root prefix is `""`.
    Prefix(Box<str>),
    /// A regular expression anchored at both ends.
    Regex(Regex),
    /// A plain string prefix, not bound to segments (`/api` matches `/apix`).
    StartsWith(Box<str>),
}

/// What every configured regex is compiled inside: anchored at both ends.
const ANCHOR_OPEN: &str = "^(?:";
const ANCHOR_CLOSE: &str = ")$";

/// `pattern` anchored at both ends, as it is compiled.
pub(crate) fn anchored(pattern: &str) -> String {
    format!("{ANCHOR_OPEN}{pattern}{ANCHOR_CLOSE}")
}

impl PathMatch {
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == &**p,
            // The root prefix matches every path, even `*` and the empty one.
            PathMatch::Prefix(p) if p.is_empty() => true,
            PathMatch::Prefix(p) => {
                path.starts_with(&**p)
                    && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
            }
            PathMatch::Regex(r) => r.is_match(path.as_bytes()),
            PathMatch::StartsWith(p) => path.starts_with(&**p),
        }
    }

    pub(crate) fn specificity(&self) -> PathSpecificity {
        match self {
            PathMatch::Exact(_) => PathSpecificity::Exact,
            // The pattern as written: the compiled one is wrapped in `^(?:…)$`.
            PathMatch::Regex(r) => PathSpecificity::Regex {
                len: (r.as_str().len())
                    .saturating_sub(ANCHOR_OPEN.len() + ANCHOR_CLOSE.len())
                    .min(u16::MAX as usize) as u16,
            },
            // `/api` and `/api/` are the same prefix; the root prefix counts as `/`.
            PathMatch::Prefix(p) => PathSpecificity::Prefix {
                len: p.len().max(1).min(u16::MAX as usize) as u16,
            },
            // Ranked as the regular expression it stands for (`escaped-prefix.*`),
            // by its length: it is tried in the same list as regexes.
            PathMatch::StartsWith(p) => PathSpecificity::Regex {
                len: p.len().min(u16::MAX as usize) as u16,
            },
        }
    }
}

/// A string condition (authority).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StringMatch {
    /// Equal.
    Exact(Box<str>),
    /// Starts with.
    Prefix(Box<str>),
    /// Whole value matches.
    Regex(Regex),
}

impl StringMatch {
    fn matches(&self, value: &[u8]) -> bool {
        match self {
            StringMatch::Exact(e) => value == e.as_bytes(),
            StringMatch::Prefix(p) => value.starts_with(p.as_bytes()),
            StringMatch::Regex(r) => r.is_match(value),
        }
    }
}

/// A header condition.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub(crate) name: HeaderName,
    /// The name's number in its table (equal names, equal ids), for [`HeaderMemo`].
    pub(crate) id: u16,
    pub(crate) value: ValueMatch,
    /// The condition holds when the value does *not* match.
    pub(crate) invert: bool,
}

/// Header lookups already made while matching one request: candidates that test the
/// same header (`x-tenant: a`, `x-tenant: b`, …) share one `HeaderMap` lookup. Header
/// ids are dense per table, so the first [`MEMO_SLOTS`] names have a slot each.
#[derive(Default)]
pub(crate) struct HeaderMemo<'r> {
    slots: [std::cell::Cell<Option<Lookup<'r>>>; MEMO_SLOTS],
}

/// Header names with a slot in [`HeaderMemo`]; the others are looked up each time.
const MEMO_SLOTS: usize = 8;

/// The first value of a header, and whether it has more.
#[derive(Clone, Copy)]
pub(crate) struct Lookup<'r> {
    pub(crate) first: Option<&'r http::HeaderValue>,
    pub(crate) more: bool,
}

impl<'r> HeaderMemo<'r> {
    #[inline]
    pub(crate) fn lookup(
        &self,
        id: u16,
        name: &HeaderName,
        headers: &'r http::HeaderMap,
    ) -> Lookup<'r> {
        let slot = self.slots.get(usize::from(id));
        if let Some(l) = slot.and_then(std::cell::Cell::get) {
            return l;
        }
        let mut values = headers.get_all(name).iter();
        let l = Lookup {
            first: values.next(),
            more: values.next().is_some(),
        };
        if let Some(s) = slot {
            s.set(Some(l));
        }
        l
    }
}

/// What a header or query value must be.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ValueMatch {
    /// Equal, or starts with, or matches (see [`StringMatch`]).
    Is(StringMatch),
    /// Present, any value.
    Present,
    /// Absent.
    Absent,
}

impl HeaderMatch {
    fn matches_memo<'r>(&self, headers: &'r http::HeaderMap, memo: &HeaderMemo<'r>) -> bool {
        let l = memo.lookup(self.id, &self.name, headers);
        let hit = match &self.value {
            ValueMatch::Present => l.first.is_some(),
            ValueMatch::Absent => l.first.is_none(),
            ValueMatch::Is(m) if !l.more => l.first.is_some_and(|v| m.matches(v.as_bytes())),
            ValueMatch::Is(_) => self.value_matches(headers),
        };
        hit != self.invert
    }

    pub(crate) fn matches(&self, headers: &http::HeaderMap) -> bool {
        self.value_matches(headers) != self.invert
    }

    fn value_matches(&self, headers: &http::HeaderMap) -> bool {
        match &self.value {
            ValueMatch::Present => headers.contains_key(&self.name),
            ValueMatch::Absent => !headers.contains_key(&self.name),
            ValueMatch::Is(m) => headers
                .get_all(&self.name)
                .iter()
                .any(|v| m.matches(v.as_bytes())),
        }
    }
}

/// A query parameter condition.
#[derive(Debug, Clone)]
pub struct QueryMatch {
    pub(crate) name: Box<str>,
    pub(crate) value: ValueMatch,
}

impl QueryMatch {
    fn matches(&self, query: Option<&str>) -> bool {
        // Gateway API: with a repeated parameter, only the first occurrence counts.
        let found = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == &*self.name)
                .map(|(_, v)| v)
        });
        match (&self.value, found) {
            (ValueMatch::Present, f) => f.is_some(),
            (ValueMatch::Absent, f) => f.is_none(),
            (ValueMatch::Is(m), Some(v)) => m.matches(v.as_bytes()),
            (ValueMatch::Is(_), None) => false,
        }
    }
}

/// One set of ANDed conditions of a rule.
#[derive(Debug, Clone)]
pub struct RequestMatch {
    pub(crate) path: PathMatch,
    pub(crate) method: Option<Method>,
    pub(crate) scheme: Option<Box<str>>,
    pub(crate) authority: Option<StringMatch>,
    pub(crate) headers: Box<[HeaderMatch]>,
    pub(crate) query: Box<[QueryMatch]>,
}

impl RequestMatch {
    /// The path condition.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {prefix: /api/}}], backends: [{name: a}]}]}]").unwrap();
    /// assert!(matches!(t.rules()[0].matches()[0].path(), routing_core::PathMatch::Prefix(p) if &**p == "/api"));
    /// ```
    #[must_use]
    pub fn path(&self) -> &PathMatch {
        &self.path
    }

    /// Whether the request meets every condition (path included).
    ///
    /// ```
    /// # use routing_core::RequestInfo;
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{matches: [{path: {prefix: /api}, method: GET}], backends: [{name: a}]}]}]").unwrap();
    /// let m = &t.rules()[0].matches()[0];
    /// assert!(m.matches(&RequestInfo::get("http://x/api/1")));
    /// assert!(!m.matches(&RequestInfo::get("http://x/apix")));
    /// ```
    pub fn matches<R: RouteRequest + ?Sized>(&self, req: &R) -> bool {
        self.path.matches(req.path()) && self.matches_besides_path(req, &HeaderMemo::default())
    }

    /// Every condition but the path (which the index has already checked).
    #[inline]
    pub(crate) fn matches_besides_path<'r, R: RouteRequest + ?Sized>(
        &self,
        req: &'r R,
        memo: &HeaderMemo<'r>,
    ) -> bool {
        if let Some(m) = &self.method {
            if req.method() != m {
                return false;
            }
        }
        if let Some(s) = &self.scheme {
            if !req.scheme().is_some_and(|rs| rs.eq_ignore_ascii_case(s)) {
                return false;
            }
        }
        if let Some(a) = &self.authority {
            let host = req.host().map(crate::request::normalize_host);
            if !host.is_some_and(|h| a.matches(h.as_bytes())) {
                return false;
            }
        }
        let headers = req.headers();
        if !self.headers.iter().all(|h| h.matches_memo(headers, memo)) {
            return false;
        }
        if !self.query.is_empty() {
            let q = req.query();
            if !self.query.iter().all(|m| m.matches(q)) {
                return false;
            }
        }
        true
    }

    /// The parts of the precedence summary that depend on this match alone.
    pub(crate) fn counts(&self) -> (bool, u16, u16) {
        (
            self.method.is_some(),
            self.headers.len().min(u16::MAX as usize) as u16,
            self.query.len().min(u16::MAX as usize) as u16,
        )
    }
}
