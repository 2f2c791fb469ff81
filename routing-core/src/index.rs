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
use crate::table::Rule;

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
    /// Bit `d` is set when some prefix has `d` segments (`/a/b` has 2; the root 0;
    /// 63 stands for 63 or more), so the walk only probes depths that exist.
    prefix_depths: u64,
    regex: Vec<Candidate>,
}

fn depth_bit(segments: usize) -> u64 {
    1 << segments.min(63)
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
        match &rule.matches[match_idx as usize].path {
            PathMatch::Exact(p) => tier.exact.entry(p.clone()).or_default().push(c),
            PathMatch::Prefix(p) => {
                tier.prefix_depths |= depth_bit(p.matches('/').count());
                tier.prefix.entry(p.clone()).or_default().push(c);
            }
            PathMatch::Regex(_) => tier.regex.push(c),
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
        }
    }

    pub(crate) fn find<R: RouteRequest + ?Sized>(
        &self,
        rules: &[Rule],
        req: &R,
    ) -> Option<Candidate> {
        let host = req.host().map(normalize_host);
        let path = req.path();
        if let Some(host) = host.as_deref() {
            if let Some(t) = self.exact_hosts.get(host) {
                if let Some(c) = t.find(rules, req, path) {
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
                        if let Some(c) = t.find(rules, req, path) {
                            return Some(c);
                        }
                    }
                }
            }
        }
        self.any_host.find(rules, req, path)
    }
}

impl PathIndex {
    fn find<R: RouteRequest + ?Sized>(
        &self,
        rules: &[Rule],
        req: &R,
        path: &str,
    ) -> Option<Candidate> {
        let memo = HeaderMemo::default();
        let holds = |c: &&Candidate| {
            rules[c.rule as usize].matches[c.r#match as usize].matches_besides_path(req, &memo)
        };
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
        // Candidate keys of `/api/v1/users/`: `/api/v1/users`, `/api/v1`, `/api`, `` (the
        // root). One scan records where each segment ends; only configured depths are
        // looked up, deepest first.
        let key = path.trim_end_matches('/');
        let mut ends = [0u32; 64];
        let mut segments = 0usize;
        for (i, &b) in key.as_bytes().iter().enumerate().skip(1) {
            if b == b'/' && segments < 63 {
                segments += 1;
                ends[segments] = i as u32;
            }
        }
        if segments >= 63 {
            // Deeper than the position array: walk every segment boundary instead.
            let mut k = key;
            loop {
                if let Some(c) = self.prefix.get(k).and_then(|v| v.iter().find(holds)) {
                    return Some(*c);
                }
                if k.is_empty() {
                    return None;
                }
                k = k.rfind('/').map_or("", |i| &k[..i]);
            }
        }
        // Depth `segments + 1` is the whole key (unless it is the root).
        let whole = if key.is_empty() { 0 } else { segments + 1 };
        for depth in (0..=whole.min(63)).rev() {
            if self.prefix_depths & depth_bit(depth) == 0 {
                continue;
            }
            let k = match depth {
                0 => "",
                d if d == whole => key,
                d => &key[..ends[d] as usize],
            };
            if let Some(v) = self.prefix.get(k) {
                if let Some(c) = v.iter().find(holds) {
                    return Some(*c);
                }
            }
        }
        None
    }
}
