//! The lookup index: host tiers, then exact paths, regexes and a segment-prefix map.
//!
//! A lookup walks the request's host from most to least specific (exact, each
//! `*.`-suffix from longest to shortest, catch-all) and, inside a host tier, the path
//! from most to least specific (exact, regex, each segment prefix from longest to
//! shortest). Each bucket is sorted by [`MatchSummary`], so the first candidate whose
//! remaining conditions hold is the winner. Cost grows with the number of labels in
//! the host and segments in the path, and with the candidates sharing one bucket — not
//! with the size of the table. Regex candidates of a host tier are tried in order.

use http::HeaderName;
use rustc_hash::FxHashMap as HashMap;

use crate::matching::{HeaderMemo, PathMatch, StringMatch, ValueMatch};
use crate::precedence::{HostSpecificity, MatchSummary};
use crate::request::{normalize_host, RouteRequest};
use crate::rule::Rule;

mod ordered;
mod strmap;
use ordered::Ordered;
use strmap::StrMap;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) summary: MatchSummary,
    pub(crate) rule: u32,
    pub(crate) r#match: u32,
}

/// The candidates of one exact path or one prefix, best first.
#[derive(Debug, Default)]
struct Bucket {
    all: Vec<Candidate>,
    /// When enough candidates test one header for an exact value (`x-tenant: t1`,
    /// `x-tenant: t2`, …), those candidates by that value: one probe finds the only
    /// ones that can hold.
    keyed: Option<Box<Keyed>>,
}

#[derive(Debug)]
struct Keyed {
    /// The header's id in the table ([`HeaderMemo`]) and its name.
    id: u16,
    name: HeaderName,
    /// Candidates with `name` exactly equal to the key, best first.
    by_value: StrMap<Vec<Candidate>>,
    /// The others, best first.
    rest: Vec<Candidate>,
}

/// Buckets with fewer candidates are scanned: a probe would not pay for itself.
const KEYED_MIN: usize = 4;

impl Bucket {
    /// Sorts best-first and keys the bucket by a header value when that pays.
    fn finish(&mut self, rules: &[Rule]) {
        self.all.sort_by_key(|c| std::cmp::Reverse(c.summary));
        if self.all.len() < KEYED_MIN {
            return;
        }
        // The exact, non-inverted header condition of a candidate on header `id`.
        let exact_on = |c: &Candidate, id: u16| -> Option<&[u8]> {
            rules[c.rule as usize].matches[c.r#match as usize]
                .headers
                .iter()
                .find_map(|h| match &h.value {
                    ValueMatch::Is(StringMatch::Exact(v)) if h.id == id && !h.invert => {
                        Some(v.as_bytes())
                    }
                    _ => None,
                })
        };
        // The header most candidates test for an exact value.
        let mut counts: HashMap<u16, usize> = HashMap::default();
        for c in &self.all {
            let m = &rules[c.rule as usize].matches[c.r#match as usize];
            let mut seen: Vec<u16> = Vec::new();
            for h in m.headers.iter() {
                if matches!(&h.value, ValueMatch::Is(StringMatch::Exact(_)))
                    && !h.invert
                    && !seen.contains(&h.id)
                {
                    seen.push(h.id);
                    *counts.entry(h.id).or_default() += 1;
                }
            }
        }
        let Some((id, n)) = counts
            .into_iter()
            .max_by_key(|&(id, n)| (n, std::cmp::Reverse(id)))
        else {
            return;
        };
        if n < KEYED_MIN {
            return;
        }
        let Some(name) = self.all.iter().find_map(|c| {
            rules[c.rule as usize].matches[c.r#match as usize]
                .headers
                .iter()
                .find(|h| h.id == id)
                .map(|h| h.name.clone())
        }) else {
            return;
        };
        let mut by_value: StrMap<Vec<Candidate>> = StrMap::default();
        let mut rest = Vec::new();
        // `all` is sorted, so every list is too.
        for c in &self.all {
            match exact_on(c, id) {
                Some(v) => by_value.entry_or_default(v).push(*c),
                None => rest.push(*c),
            }
        }
        self.keyed = Some(Box::new(Keyed {
            id,
            name,
            by_value,
            rest,
        }));
    }

    /// The best candidate for which `holds`.
    #[inline]
    fn find<'r>(
        &self,
        headers: &'r http::HeaderMap,
        memo: &HeaderMemo<'r>,
        holds: impl Fn(&Candidate) -> bool,
    ) -> Option<Candidate> {
        let Some(k) = &self.keyed else {
            return self.all.iter().find(|c| holds(c)).copied();
        };
        let l = memo.lookup(k.id, &k.name, headers);
        if l.more {
            // Any of several values may be the one a condition wants.
            return self.all.iter().find(|c| holds(c)).copied();
        }
        let mut best = l
            .first
            .and_then(|v| k.by_value.get(v.as_bytes()))
            .and_then(|list| list.iter().find(|c| holds(c)).copied());
        for c in &k.rest {
            if best.is_some_and(|b| c.summary <= b.summary) {
                break;
            }
            if holds(c) {
                best = Some(*c);
                break;
            }
        }
        best
    }
}

#[derive(Debug, Default)]
pub(crate) struct PathIndex {
    exact: StrMap<Bucket>,
    prefix: StrMap<Bucket>,
    /// Bit `d` is set when some prefix has `d` slashes (`/a/b` has 2; the root 0;
    /// 63 stands for 63 or more), so the walk only probes depths that exist.
    prefix_depths: u64,
    regex: Vec<Candidate>,
    /// Matches of `first_match` routes, tried before the rest.
    ordered: Option<Box<Ordered>>,
}

fn depth_bit(slashes: usize) -> u64 {
    1 << slashes.min(63)
}

/// The depth of a prefix or path: its number of `/`.
fn slashes(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'/').count()
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    exact_hosts: StrMap<PathIndex>,
    /// Keyed by the suffix including its leading dot: `*.example.com` → `.example.com`.
    wildcard_hosts: StrMap<PathIndex>,
    any_host: PathIndex,
}

impl Index {
    /// Adds a match under one hostname (`None` = every host).
    pub(crate) fn insert(
        &mut self,
        host: Option<&str>,
        rule: &Rule,
        rule_idx: u32,
        match_idx: u32,
        mut summary: MatchSummary,
        ordered: bool,
    ) {
        let tier = match host {
            None => {
                summary.host = HostSpecificity::Any;
                &mut self.any_host
            }
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => {
                    summary.host = HostSpecificity::Wildcard {
                        suffix_len: suffix.len().min(u16::MAX as usize) as u16,
                    };
                    self.wildcard_hosts.entry_or_default(suffix.as_bytes())
                }
                None => {
                    summary.host = HostSpecificity::Exact;
                    self.exact_hosts.entry_or_default(h.as_bytes())
                }
            },
        };
        let c = Candidate {
            summary,
            rule: rule_idx,
            r#match: match_idx,
        };
        let path = &rule.matches[match_idx as usize].path;
        if ordered {
            tier.ordered.get_or_insert_default().insert(path, c);
            return;
        }
        match path {
            PathMatch::Exact(p) => tier.exact.entry_or_default(p.as_bytes()).all.push(c),
            PathMatch::Prefix(p) => {
                tier.prefix_depths |= depth_bit(slashes(p));
                tier.prefix.entry_or_default(p.as_bytes()).all.push(c);
            }
            // Plain prefixes are not segment-aligned: tried one by one, like regexes.
            PathMatch::Regex(_) | PathMatch::StartsWith(_) => tier.regex.push(c),
        }
    }

    /// Sorts every bucket best-first and keys the large ones.
    pub(crate) fn finish(&mut self, rules: &[Rule]) {
        let by_best = |a: &Candidate, b: &Candidate| b.summary.cmp(&a.summary);
        let tiers = self
            .exact_hosts
            .values_mut()
            .chain(self.wildcard_hosts.values_mut())
            .chain(std::iter::once(&mut self.any_host));
        for t in tiers {
            for v in t.exact.values_mut().chain(t.prefix.values_mut()) {
                v.finish(rules);
            }
            t.regex.sort_by(by_best);
            if let Some(o) = &mut t.ordered {
                o.finish();
            }
        }
    }

    pub(crate) fn find<R: RouteRequest + ?Sized>(
        &self,
        rules: &[Rule],
        req: &R,
    ) -> Option<Candidate> {
        let host = req.host().map(normalize_host);
        // One header lookup per name for the whole request, across host tiers.
        let memo = HeaderMemo::default();
        let path = req.path();
        if let Some(host) = host.as_deref() {
            if let Some(t) = self.exact_hosts.get(host.as_bytes()) {
                if let Some(c) = t.find(rules, req, path, &memo) {
                    return Some(c);
                }
            }
            if !self.wildcard_hosts.is_empty() {
                // `a.b.example.com` → `.b.example.com`, `.example.com`, `.com`
                // `*.S` matches a host that ends in `.S` after at least one character:
                // every dot but one at position 0 starts a candidate suffix, longest
                // first. (`.example.com` is not under `*.example.com`;
                // `..example.com` is, as `Route::host_specificity` says.)
                for (dot, _) in host.match_indices('.').filter(|&(d, _)| d > 0) {
                    if let Some(t) = self.wildcard_hosts.get(&host.as_bytes()[dot..]) {
                        if let Some(c) = t.find(rules, req, path, &memo) {
                            return Some(c);
                        }
                    }
                }
            }
        }
        self.any_host.find(rules, req, path, &memo)
    }
}

impl PathIndex {
    fn find<'r, R: RouteRequest + ?Sized>(
        &self,
        rules: &[Rule],
        req: &'r R,
        path: &str,
        memo: &HeaderMemo<'r>,
    ) -> Option<Candidate> {
        let holds = |c: &Candidate| {
            rules[c.rule as usize].matches[c.r#match as usize].matches_besides_path(req, memo)
        };
        let headers = req.headers();
        if let Some(o) = &self.ordered {
            let path_matches = |c: &Candidate| {
                rules[c.rule as usize].matches[c.r#match as usize]
                    .path
                    .matches(path)
            };
            if let Some(c) = o.find(path, path_matches, holds) {
                return Some(c);
            }
        }
        if let Some(v) = self.exact.get(path.as_bytes()) {
            if let Some(c) = v.find(headers, memo, holds) {
                return Some(c);
            }
        }
        if let Some(c) = self.regex.iter().find(|c| {
            rules[c.rule as usize].matches[c.r#match as usize]
                .path
                .matches(path)
                && holds(c)
        }) {
            return Some(*c);
        }
        if self.prefix.is_empty() {
            return None;
        }
        let key = path.trim_end_matches('/');
        let bits = self.prefix_depths;
        if bits & depth_bit(63) == 0 && bits.count_ones() as usize <= SHALLOW_DEPTHS {
            return self.find_prefix_shallow(key, headers, memo, holds);
        }
        // `/api/v1/users/` → `/api/v1/users`, `/api/v1`, `/api`, `` (the root prefix).
        // Each cut removes one `/`, so `depth` stays the exact slash count and only
        // depths some prefix has are looked up.
        let mut key = key;
        let mut depth = slashes(key);
        loop {
            if self.prefix_depths & depth_bit(depth) != 0 {
                if let Some(c) = self
                    .prefix
                    .get(key.as_bytes())
                    .and_then(|v| v.find(headers, memo, holds))
                {
                    return Some(c);
                }
            }
            if key.is_empty() {
                return None;
            }
            // An inlined byte scan: segments are short, `rfind`'s memrchr call costs more.
            let cut = key.as_bytes().iter().rposition(|&b| b == b'/').unwrap_or(0);
            key = &key[..cut];
            depth = depth.saturating_sub(1);
        }
    }

    /// The prefix walk when prefixes have few distinct depths, all under 63: one scan
    /// from the left notes where the key of each such depth ends and stops past the
    /// deepest, then the keys are probed deepest first. The same keys as the walk
    /// from the right, without counting every `/` of a long path first.
    #[inline]
    fn find_prefix_shallow<'r>(
        &self,
        key: &str,
        headers: &'r http::HeaderMap,
        memo: &HeaderMemo<'r>,
        holds: impl Fn(&Candidate) -> bool + Copy,
    ) -> Option<Candidate> {
        let bits = self.prefix_depths;
        let deepest = 63 - bits.leading_zeros() as usize;
        let b = key.as_bytes();
        let mut ends = [0usize; SHALLOW_DEPTHS];
        let mut n = 0;
        let mut depth = 0;
        let mut whole = true;
        for (i, &c) in b.iter().enumerate() {
            if c == b'/' {
                // `key[..i]` has `depth` slashes.
                if bits & depth_bit(depth) != 0 {
                    ends[n] = i;
                    n += 1;
                }
                depth += 1;
                if depth > deepest {
                    whole = false;
                    break;
                }
            }
        }
        if whole && bits & depth_bit(depth) != 0 {
            ends[n] = b.len();
            n += 1;
        }
        for &end in ends[..n].iter().rev() {
            if let Some(c) = self
                .prefix
                .get(&b[..end])
                .and_then(|v| v.find(headers, memo, holds))
            {
                return Some(c);
            }
        }
        // A path that does not start with `/` (`*`) still gets the root prefix.
        if bits & 1 != 0 && b.first().is_some_and(|&c| c != b'/') {
            return self
                .prefix
                .get(b"")
                .and_then(|v| v.find(headers, memo, holds));
        }
        None
    }
}

/// Distinct prefix depths [`PathIndex::find_prefix_shallow`] handles.
const SHALLOW_DEPTHS: usize = 8;
