//! A map for ids that are mostly inserted in increasing order and mostly removed oldest first
//! (operation cookies, transmission ids, receive ids): entries sorted by key in one `VecDeque`.
//! Inserting a key above the last one is a `push_back`, removing the first is a `pop_front`, and
//! anything else is a binary search and a shift of the shorter side. Its buffer is kept, so in
//! the steady state nothing is allocated — a `BTreeMap` with tens of entries allocates a node
//! whenever a leaf splits and frees one when leaves merge.
//!
//! Its lints (no `unsafe`, no unwrap, indexing or unchecked arithmetic) are `lnet`'s, inherited.

use alloc::collections::VecDeque;

/// Entries sorted by key, no key twice.
pub struct IdMap<K, V> {
    v: VecDeque<(K, V)>,
}

impl<K: Ord + Copy, V> Default for IdMap<K, V> {
    fn default() -> Self {
        IdMap { v: VecDeque::new() }
    }
}

impl<K: Ord + Copy, V> IdMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.v.len()
    }

    fn find(&self, k: &K) -> Result<usize, usize> {
        // The oldest entry is the one most often looked for.
        match self.v.front() {
            Some((f, _)) if f == k => Ok(0),
            _ => self.v.binary_search_by(|(x, _)| x.cmp(k)),
        }
    }

    /// Inserts `v` at `k`; returns the value `k` had.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let above = match self.v.back() {
            Some((last, _)) => *last < k,
            None => true,
        };
        if above {
            self.v.push_back((k, v));
            return None;
        }
        match self.find(&k) {
            Ok(i) => self.v.get_mut(i).map(|e| core::mem::replace(&mut e.1, v)),
            Err(i) => {
                // `i <= len`: binary search answers a place inside or just past the end.
                self.v.insert(i, (k, v));
                None
            }
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.find(k).ok().and_then(|i| self.v.get(i)).map(|e| &e.1)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.find(k).ok()?;
        self.v.remove(i).map(|e| e.1)
    }

    /// Keys and values in increasing key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.v.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.v.iter().map(|(k, _)| k)
    }

    pub fn clear(&mut self) {
        self.v.clear();
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::IdMap;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    /// Against a `BTreeMap` under a mixed sequence: in-order and out-of-order inserts,
    /// replacements, removals at the front, the back and inside, misses.
    #[test]
    fn behaves_as_a_btreemap() {
        let mut m: IdMap<u64, u64> = IdMap::new();
        let mut r: BTreeMap<u64, u64> = BTreeMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = match x % 4 {
                0 => step,     // increasing (the usual case)
                1 => x % 64,   // anywhere, often present
                _ => step / 2, // near the back
            };
            match (x >> 8) % 3 {
                0 | 1 => assert_eq!(m.insert(k, step), r.insert(k, step)),
                _ => {
                    let k = r
                        .keys()
                        .next()
                        .copied()
                        .filter(|_| x & 512 != 0)
                        .unwrap_or(k);
                    assert_eq!(m.remove(&k), r.remove(&k));
                }
            }
            assert_eq!(m.get(&k), r.get(&k));
            assert_eq!(m.len(), r.len());
        }
        let a: Vec<(u64, u64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        let b: Vec<(u64, u64)> = r.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(a, b);
        m.clear();
        assert_eq!(m.len(), 0);
    }

    /// FIFO use keeps its buffer: after the first window, no growth.
    #[test]
    fn fifo_reuses_its_buffer() {
        let mut m: IdMap<u64, ()> = IdMap::new();
        for k in 0..64 {
            m.insert(k, ());
        }
        let cap = m.v.capacity();
        for k in 64..10_000u64 {
            assert_eq!(m.remove(&(k - 64)), Some(()));
            assert_eq!(m.insert(k, ()), None);
        }
        assert_eq!(m.v.capacity(), cap);
        assert_eq!(m.len(), 64);
    }
}
