//! A map that keeps the newest entries within a count and a size, the oldest let go
//! first. Pure.
//!
//! Both sides of a clustered room wait for the room's log with one: a screen for the
//! numbered copies of the held lines it showed, a host for the entries of the private
//! messages whose words it holds. Either could be sent entries that never come, so
//! what waits is bounded.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Entries by key, at most `most` of them and `most_bytes` in all (each weighed by
/// the function given), the oldest let go first.
#[derive(Debug)]
pub struct Recent<K, V> {
    /// Each entry, with the number it was kept under (see `order`).
    by_key: HashMap<K, (u64, V)>,
    /// Keys oldest first, with the number each was kept under: a key taken and kept
    /// again is let go under its new number only, not by its old place.
    order: VecDeque<(u64, K)>,
    kept: u64,
    bytes: usize,
    most: usize,
    most_bytes: usize,
    weigh: fn(&V) -> usize,
}

impl<K: Hash + Eq + Clone, V> Recent<K, V> {
    /// At most `most` entries, and `most_bytes` of them as `weigh` counts.
    pub fn new(most: usize, most_bytes: usize, weigh: fn(&V) -> usize) -> Self {
        Recent {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            kept: 0,
            bytes: 0,
            most,
            most_bytes,
            weigh,
        }
    }

    /// At most `most` entries, however large.
    pub fn counted(most: usize) -> Self {
        Recent::new(most, usize::MAX, |_| 0)
    }

    /// Keep `v` under `key` (in place of what was kept under it).
    pub fn keep(&mut self, key: K, v: V) {
        self.kept += 1;
        self.bytes += (self.weigh)(&v);
        if let Some((_, old)) = self.by_key.insert(key.clone(), (self.kept, v)) {
            self.bytes -= (self.weigh)(&old);
        }
        self.order.push_back((self.kept, key));
        while self.by_key.len() > self.most || self.bytes > self.most_bytes {
            let Some((kept, old)) = self.order.pop_front() else {
                break;
            };
            if self.by_key.get(&old).is_some_and(|(k, _)| *k == kept) {
                self.take(&old);
            }
        }
        // Keys taken or kept again stay in `order` until they come to its front: never
        // more of them than of entries (once in a while, at the cost of one pass).
        if self.order.len() > 2 * self.most.max(1) {
            let by_key = &self.by_key;
            self.order
                .retain(|(kept, k)| by_key.get(k).is_some_and(|(n, _)| n == kept));
        }
    }

    /// What was kept under `key`, no longer kept.
    pub fn take<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let (_, v) = self.by_key.remove(key)?;
        self.bytes -= (self.weigh)(&v);
        Some(v)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn contains_key<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.by_key.contains_key(key)
    }

    /// The size of what is kept, as weighed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_first_within_the_count_and_the_size() {
        let mut r: Recent<u32, String> = Recent::new(3, 10, String::len);
        for k in 0..5 {
            r.keep(k, "ab".into());
        }
        assert_eq!(r.len(), 3);
        assert!(!r.contains_key(&1) && r.contains_key(&2) && r.contains_key(&4));
        r.keep(9, "x".repeat(8));
        assert!(r.bytes() <= 10, "{}", r.bytes());
        assert!(r.contains_key(&9), "the newest is kept");
        assert_eq!(r.take(&9).map(|s| s.len()), Some(8));
        assert_eq!(r.take(&9), None);
    }

    #[test]
    fn a_key_taken_and_kept_again_is_not_let_go_by_its_old_place() {
        let mut r: Recent<u32, ()> = Recent::counted(3);
        r.keep(1, ());
        r.keep(2, ());
        r.take(&1);
        r.keep(3, ());
        // 1 again, newest now; its old place is at the front.
        r.keep(1, ());
        r.keep(4, ());
        // Over the count: the oldest of those kept (2) goes, not 1.
        assert!(r.contains_key(&1), "kept again, it is among the newest");
        assert!(!r.contains_key(&2));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn keys_taken_do_not_pile_up() {
        let mut r: Recent<u64, ()> = Recent::counted(4);
        for k in 0..10_000 {
            r.keep(k, ());
            r.take(&k);
        }
        assert!(r.order.len() <= 8 + 1, "{}", r.order.len());
        assert!(r.is_empty());
    }
}
