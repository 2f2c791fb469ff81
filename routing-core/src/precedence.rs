//! Precedence between matching rules, as a type.
//!
//! When several rules match a request, the one with the greatest [`MatchSummary`]
//! wins. The order is the Gateway API's for HTTPRoute, extended by host specificity
//! in front and made total by declaration order at the back:
//!
//! 1. the most specific hostname: exact, then the longest `*.` wildcard, then routes
//!    without hostnames;
//! 2. the path: an exact path beats everything, then a regular expression (longer
//!    pattern first — the Gateway API leaves regex precedence to implementations; we
//!    follow linkerd), then the longest prefix (counted in characters, trailing `/`
//!    ignored) — so an exact match beats a prefix of the same length;
//! 3. a method condition beats none;
//! 4. more header conditions;
//! 5. more query parameter conditions;
//! 6. declaration order: earlier route, then earlier rule, then earlier match.
//!
//! Scheme and authority conditions filter but do not rank.

use std::cmp::Ordering;

/// How specific the hostname that matched is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostSpecificity {
    /// The route has no hostnames (it serves every host).
    Any,
    /// A `*.suffix` wildcard; `suffix_len` counts the characters after `*`.
    Wildcard {
        /// Length of the suffix (longer is more specific).
        suffix_len: u16,
    },
    /// An exact hostname.
    Exact,
}

/// How specific the path condition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathSpecificity {
    /// A prefix of `len` characters (the root prefix counts as 1).
    Prefix {
        /// Characters in the prefix, trailing `/` ignored.
        len: u16,
    },
    /// A regular expression of `len` characters.
    Regex {
        /// Characters in the pattern.
        len: u16,
    },
    /// An exact path.
    Exact,
}

/// Where a match was declared: earlier wins ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeclarationOrder {
    /// Index of the route in the configuration.
    pub route: u32,
    /// Index of the rule in its route.
    pub rule: u32,
    /// Index of the match in its rule.
    pub r#match: u32,
}

/// The precedence of one match for one request; the greatest wins.
///
/// ```
/// use routing_core::{MatchSummary, HostSpecificity as H, PathSpecificity as P, DeclarationOrder as O};
/// let base = MatchSummary { host: H::Any, path: P::Prefix { len: 4 }, method: false, headers: 0, query: 0,
///                           order: O { route: 0, rule: 0, r#match: 0 } };
/// let exact = MatchSummary { path: P::Exact, order: O { route: 1, ..base.order }, ..base };
/// assert!(exact > base, "an exact path beats a prefix of the same length");
/// let later = MatchSummary { order: O { route: 1, ..base.order }, ..base };
/// assert!(base > later, "declaration order breaks ties");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatchSummary {
    /// Hostname specificity.
    pub host: HostSpecificity,
    /// Path specificity.
    pub path: PathSpecificity,
    /// Whether the match has a method condition.
    pub method: bool,
    /// Number of header conditions.
    pub headers: u16,
    /// Number of query parameter conditions.
    pub query: u16,
    /// Declaration order (compared reversed: earlier is greater).
    pub order: DeclarationOrder,
}

impl Ord for MatchSummary {
    fn cmp(&self, other: &Self) -> Ordering {
        self.host
            .cmp(&other.host)
            .then(self.path.cmp(&other.path))
            .then(self.method.cmp(&other.method))
            .then(self.headers.cmp(&other.headers))
            .then(self.query.cmp(&other.query))
            .then(other.order.cmp(&self.order))
    }
}

impl PartialOrd for MatchSummary {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
