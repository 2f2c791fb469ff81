//! The lookup index: host tiers, then exact paths, regexes and a segment-prefix map.
//!
//! A lookup walks the request's host from most to least specific (exact, each
//! `*.`-suffix from longest to shortest, catch-all) and, inside a host tier, the path
//! from most to least specific (exact, regex, each segment prefix from longest to
//! shortest). Each bucket is sorted by [`MatchSummary`], so the first candidate whose
//! remaining conditions hold is the winner. Cost grows with the number of labels in
//! the host and segments in the path, and with the candidates sharing one bucket — not
//! with the size of the table. Regex candidates of a host tier are tried in order.

use rustc_hash::FxHashMap as HashMap;

use crate::matching::{HeaderMemo, PathMatch};
use crate::precedence::{HostSpecificity, MatchSummary};
use crate::request::{normalize_host, RouteRequest};
use crate::rule::Rule;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) summary: MatchSummary,
    pub(crate) rule: u32,
    pub(crate) r#match: u32,
}

#[derive(Debug, Default)]
pub(crate) struct PathIndex {
    exact: HashMap<Box<str>, Vec<Candidate>>,
    prefix: HashMap<Box<str>, Vec<Candidate>>,
    /// Bit `d` is set when some prefix has `d` slashes (`/a/b` has 2; the root 0;
    /// 63 stands for 63 or more), so the walk only probes depths that exist.
    prefix_depths: u64,
    regex: Vec<Candidate>,
    /// Matches of `first_match` routes, in declaration order, tried before the rest.
    ordered: Vec<Candidate>,
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
    exact_hosts: HashMap<Box<str>, PathIndex>,
    /// Keyed by the suffix including its leading dot: `*.example.com` → `.example.com`.
    wildcard_hosts: HashMap<Box<str>, PathIndex>,
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
                    self.wildcard_hosts.entry(suffix.into()).or_default()
                }
                None => {
                    summary.host = HostSpecificity::Exact;
                    self.exact_hosts.entry(h.into()).or_default()
                }
            },
        };
        let c = Candidate {
            summary,
            rule: rule_idx,
            r#match: match_idx,
        };
        if ordered {
            tier.ordered.push(c);
            return;
        }
        match &rule.matches[match_idx as usize].path {
            PathMatch::Exact(p) => tier.exact.entry(p.clone()).or_default().push(c),
            PathMatch::Prefix(p) => {
                tier.prefix_depths |= depth_bit(slashes(p));
                tier.prefix.entry(p.clone()).or_default().push(c);
            }
            // Plain prefixes are not segment-aligned: tried one by one, like regexes.
            PathMatch::Regex(_) | PathMatch::StartsWith(_) => tier.regex.push(c),
        }
    }

    /// Sorts every bucket best-first.
    pub(crate) fn finish(&mut self) {
        let by_best = |a: &Candidate, b: &Candidate| b.summary.cmp(&a.summary);
        let tiers = self
            .exact_hosts
            .values_mut()
            .chain(self.wildcard_hosts.values_mut())
            .chain(std::iter::once(&mut self.any_host));
        for t in tiers {
            for v in t.exact.values_mut().chain(t.prefix.values_mut()) {
                v.sort_by(by_best);
            }
            t.regex.sort_by(by_best);
            t.ordered.sort_by_key(|c| c.summary.order);
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
            if let Some(t) = self.exact_hosts.get(host) {
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
                    if let Some(t) = self.wildcard_hosts.get(&host[dot..]) {
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
        let holds = |c: &&Candidate| {
            rules[c.rule as usize].matches[c.r#match as usize].matches_besides_path(req, memo)
        };
        if let Some(c) = self.ordered.iter().find(|c| {
            rules[c.rule as usize].matches[c.r#match as usize]
                .path
                .matches(path)
                && holds(c)
        }) {
            return Some(*c);
        }
        if let Some(v) = self.exact.get(path) {
            if let Some(c) = v.iter().find(holds) {
                return Some(*c);
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
        // `/api/v1/users/` → `/api/v1/users`, `/api/v1`, `/api`, `` (the root prefix).
        // Each cut removes one `/`, so `depth` stays the exact slash count and only
        // depths some prefix has are looked up.
        let mut key = path.trim_end_matches('/');
        let mut depth = slashes(key);
        loop {
            if self.prefix_depths & depth_bit(depth) != 0 {
                if let Some(c) = self.prefix.get(key).and_then(|v| v.iter().find(holds)) {
                    return Some(*c);
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
}
