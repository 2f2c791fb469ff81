//! The index of `first_match` routes: the lowest declared match whose conditions hold.
//!
//! Every Istio and ALB import is a `first_match` route, so a linear scan of its
//! matches would make a lookup grow with the table. Instead, the literal paths
//! (exact paths, segment prefixes and plain `starts_with` prefixes) sit in a byte
//! trie: walking the request path down the trie visits every literal that is a
//! prefix of the path, each node holding its candidates in declaration order.
//! Regular expressions are kept in a list, also in declaration order.
//!
//! The answer is the candidate with the lowest [`DeclarationOrder`] whose path
//! matches and whose other conditions hold — the one a scan in declaration order
//! would find first. Each list is sorted, so a list is only read while its
//! candidates come before the best one found so far: no list is read twice and
//! nothing is allocated.
//!
//! [`DeclarationOrder`]: crate::DeclarationOrder

use super::Candidate;
use crate::matching::PathMatch;

/// How a literal in the trie matches the path it is a prefix of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The whole path: only where the path ends.
    Exact,
    /// Whole segments: where the path ends or the next byte is `/` (the root
    /// prefix `""` matches everywhere).
    Segment,
    /// Plain bytes: wherever the literal is a prefix.
    StartsWith,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: Kind,
    c: Candidate,
}

#[derive(Debug, Default)]
struct Node {
    /// Child nodes by their byte, sorted by byte.
    children: Vec<(u8, u32)>,
    /// Literals ending here, in declaration order.
    here: Vec<Entry>,
}

/// The `first_match` candidates of one host tier.
#[derive(Debug)]
pub(crate) struct Ordered {
    /// `nodes[0]` is the root (the empty literal).
    nodes: Vec<Node>,
    /// Candidates that are not literals (regexes), in declaration order.
    scan: Vec<Candidate>,
}

impl Default for Ordered {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
            scan: Vec::new(),
        }
    }
}

impl Ordered {
    /// Adds a candidate whose path condition is `path`.
    pub(crate) fn insert(&mut self, path: &PathMatch, c: Candidate) {
        let (literal, kind) = match path {
            PathMatch::Exact(p) => (&**p, Kind::Exact),
            PathMatch::Prefix(p) => (&**p, Kind::Segment),
            PathMatch::StartsWith(p) => (&**p, Kind::StartsWith),
            PathMatch::Regex(_) => {
                self.scan.push(c);
                return;
            }
        };
        let mut node = 0usize;
        for &b in literal.as_bytes() {
            node = match self.nodes[node].children.binary_search_by_key(&b, |e| e.0) {
                Ok(k) => self.nodes[node].children[k].1 as usize,
                Err(k) => {
                    let next = self.nodes.len();
                    self.nodes.push(Node::default());
                    // Node counts are bounded by the table's total literal bytes.
                    self.nodes[node].children.insert(k, (b, next as u32));
                    next
                }
            };
        }
        self.nodes[node].here.push(Entry { kind, c });
    }

    /// Sorts every list in declaration order.
    pub(crate) fn finish(&mut self) {
        for n in &mut self.nodes {
            n.here.sort_by_key(|e| e.c.summary.order);
            n.children.shrink_to_fit();
            n.here.shrink_to_fit();
        }
        self.scan.sort_by_key(|c| c.summary.order);
    }

    /// The candidate declared first whose path condition matches `path` (checked by
    /// the trie, or by `path_matches` for the scanned ones) and for which `holds`
    /// (the other conditions) is true.
    #[inline]
    pub(crate) fn find(
        &self,
        path: &str,
        path_matches: impl Fn(&Candidate) -> bool,
        holds: impl Fn(&Candidate) -> bool,
    ) -> Option<Candidate> {
        let bytes = path.as_bytes();
        let mut best: Option<Candidate> = None;
        let before_best = |best: &Option<Candidate>, c: &Candidate| {
            best.is_none_or(|b| c.summary.order < b.summary.order)
        };
        let mut node = &self.nodes[0];
        let mut i = 0usize;
        // One step per byte of the path, at most: bounded by its length.
        loop {
            if !node.here.is_empty() {
                let at_end = i == bytes.len();
                let segment = i == 0 || at_end || bytes[i] == b'/';
                for e in &node.here {
                    if !before_best(&best, &e.c) {
                        break;
                    }
                    let path_ok = match e.kind {
                        Kind::StartsWith => true,
                        Kind::Segment => segment,
                        Kind::Exact => at_end,
                    };
                    if path_ok && holds(&e.c) {
                        best = Some(e.c);
                        break;
                    }
                }
            }
            let Some(&b) = bytes.get(i) else { break };
            match node.children.binary_search_by_key(&b, |e| e.0) {
                Ok(k) => node = &self.nodes[node.children[k].1 as usize],
                Err(_) => break,
            }
            i += 1;
        }
        for c in &self.scan {
            if !before_best(&best, c) {
                break;
            }
            if path_matches(c) && holds(c) {
                best = Some(*c);
                break;
            }
        }
        best
    }
}
