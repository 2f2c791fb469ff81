//! A map from byte strings (hosts, paths, header values) to index nodes, built once
//! and probed on every request.
//!
//! Keys are short, so what a general hash map spends around the hash — a `memcmp`
//! call per comparison, the `Hash` framing of a `str` — is a large part of a probe.
//! Here the stored hash is compared first and the bytes with a few word loads.

use std::hash::Hasher as _;

/// Open addressing with linear probing, at most a quarter full: a miss (an unknown
/// host) usually ends on its first slot.
#[derive(Debug)]
pub(crate) struct StrMap<V> {
    /// `0` is empty; `n` is `entries[n - 1]`. The length is a power of two.
    slots: Box<[u32]>,
    entries: Vec<(u64, Box<[u8]>, V)>,
}

impl<V> Default for StrMap<V> {
    fn default() -> Self {
        Self {
            slots: Box::new([]),
            entries: Vec::new(),
        }
    }
}

/// The hash every key is stored and probed with.
#[inline]
pub(crate) fn hash(key: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(key);
    h.finish()
}

/// Equality of short byte strings with overlapping word loads (no `memcmp` call).
#[inline]
fn eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let half = |s: &[u8], at: usize| -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&s[at..at + 4]);
        u32::from_le_bytes(w)
    };
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

impl<V> StrMap<V> {
    /// Whether the map has no keys.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value for `key`.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_hashed(hash(key), key)
    }

    /// The value for `key`, whose [`hash`] is `h`.
    #[inline]
    pub(crate) fn get_hashed(&self, h: u64, key: &[u8]) -> Option<&V> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        // At most a quarter of the slots are taken, so an empty slot ends every probe: the
        // loop runs at most `slots.len()` times.
        for _ in 0..self.slots.len() {
            let s = self.slots[i] as usize;
            if s == 0 {
                return None;
            }
            let e = &self.entries[s - 1];
            if e.0 == h && eq(&e.1, key) {
                return Some(&e.2);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The value for `key`, inserted with `V::default()` when missing (build time).
    pub(crate) fn entry_or_default(&mut self, key: &[u8]) -> &mut V
    where
        V: Default,
    {
        let h = hash(key);
        let found = self.entries.iter().position(|e| e.0 == h && *e.1 == *key);
        let at = match found {
            Some(at) => at,
            None => {
                self.entries.push((h, key.into(), V::default()));
                if self.slots.len() < 4 * self.entries.len() {
                    self.rehash((4 * self.entries.len()).next_power_of_two().max(8));
                } else {
                    self.place(self.entries.len() - 1);
                }
                self.entries.len() - 1
            }
        };
        &mut self.entries[at].2
    }

    fn rehash(&mut self, slots: usize) {
        self.slots = vec![0; slots].into_boxed_slice();
        for at in 0..self.entries.len() {
            self.place(at);
        }
    }

    fn place(&mut self, at: usize) {
        let mask = self.slots.len() - 1;
        let mut i = self.entries[at].0 as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = at as u32 + 1;
    }

    /// Every value, in insertion order.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|e| &mut e.2)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let mut m: StrMap<usize> = StrMap::default();
        assert!(m.is_empty());
        assert_eq!(m.get(b"a"), None, "an empty map has no slots to probe");
        let keys: Vec<String> = (0..200)
            .map(|i| format!("/k{i}/{}", "x".repeat(i % 20)))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            *m.entry_or_default(k.as_bytes()) = i;
        }
        *m.entry_or_default(b"") += 1000;
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(k.as_bytes()), Some(&i), "{k}");
            // Same length, one byte off at the start, middle or end.
            for at in [0, k.len() / 2, k.len() - 1] {
                let mut other = k.clone().into_bytes();
                other[at] ^= 0x20;
                assert_ne!(m.get(&other), Some(&i), "{k} changed at {at}");
            }
        }
        assert_eq!(m.get(b""), Some(&1000));
        assert_eq!(m.get(b"/k1"), None);
        assert_eq!(m.values_mut().count(), 201);
    }

    #[test]
    fn short_keys_compare_every_byte() {
        for n in 0..40usize {
            let a: Vec<u8> = (0..n as u8).collect();
            assert!(eq(&a, &a.clone()));
            for at in 0..n {
                let mut b = a.clone();
                b[at] = 0xff;
                assert!(!eq(&a, &b), "length {n}, byte {at}");
            }
        }
    }
}
