//! The executor's cache of aggregates, bounded in bytes (`CHAT_CACHE_MB`): least recently used
//! first out, never one in use (a command, a load or an observation holding its slot). Owns
//! the accounting and the cache gauges; must not load, decide or know the log: an evicted
//! aggregate is simply absent, and the executor reloads it (snapshot + tail) on next use.

use crate::metrics::Metrics;
use lru::LruCache;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// What an entry costs beyond its state: key, slot, lock, version and hashes.
pub(crate) const ENTRY_OVERHEAD: usize = 256;

/// A cached value that knows whether anyone is using it.
pub(crate) trait Evictable: Clone {
    fn in_use(&self) -> bool;
}

impl<T> Evictable for Arc<T> {
    /// Someone besides the cache holds a clone.
    fn in_use(&self) -> bool {
        Arc::strong_count(self) > 1
    }
}

struct Entry<V> {
    value: V,
    bytes: usize,
}

struct Inner<K: Hash + Eq, V> {
    lru: LruCache<K, Entry<V>>,
    bytes: usize,
}

pub(crate) struct Cache<K: Hash + Eq, V> {
    inner: Mutex<Inner<K, V>>,
    limit: usize,
    metrics: Arc<Metrics>,
}

impl<K: Hash + Eq + Clone, V: Evictable> Cache<K, V> {
    pub fn new(limit_bytes: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            limit: limit_bytes,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value under `key`, made the most recently used; `make` creates it when absent.
    pub fn get_or_insert(&self, key: &K, make: impl FnOnce() -> V) -> V {
        let mut inner = self.lock();
        if let Some(e) = inner.lru.get(key) {
            return e.value.clone();
        }
        let value = make();
        inner.lru.put(
            key.clone(),
            Entry {
                value: value.clone(),
                bytes: ENTRY_OVERHEAD,
            },
        );
        inner.bytes += ENTRY_OVERHEAD;
        self.publish(&inner);
        value
    }

    /// The value under `key` if cached, without making it recently used.
    pub fn peek(&self, key: &K) -> Option<V> {
        self.lock().lru.peek(key).map(|e| e.value.clone())
    }

    /// Records what the value under `key` now costs, then evicts the least recently used
    /// values not in use until the cache fits its limit again.
    pub fn account(&self, key: &K, state_bytes: usize) {
        let mut inner = self.lock();
        let bytes = state_bytes + ENTRY_OVERHEAD;
        if let Some(e) = inner.lru.peek_mut(key) {
            let before = std::mem::replace(&mut e.bytes, bytes);
            inner.bytes = inner.bytes + bytes - before;
        }
        let mut skipped = 0;
        while inner.bytes > self.limit && skipped < inner.lru.len() {
            let Some((k, e)) = inner.lru.pop_lru() else {
                break;
            };
            if e.value.in_use() {
                inner.lru.put(k, e);
                skipped += 1;
                continue;
            }
            inner.bytes -= e.bytes;
        }
        self.publish(&inner);
    }

    fn publish(&self, inner: &Inner<K, V>) {
        self.metrics
            .cache_bytes
            .set(i64::try_from(inner.bytes).unwrap_or(i64::MAX));
        self.metrics
            .cache_entries
            .set(i64::try_from(inner.lru.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(limit: usize) -> Cache<u32, Arc<u32>> {
        Cache::new(limit, Arc::default())
    }

    #[test]
    fn the_least_recently_used_goes_first_and_one_in_use_stays() {
        let c = cache(3 * (ENTRY_OVERHEAD + 100));
        for k in 0..3 {
            drop(c.get_or_insert(&k, || Arc::new(k)));
            c.account(&k, 100);
        }
        drop(c.get_or_insert(&0, || Arc::new(0)));
        let held = c.get_or_insert(&1, || Arc::new(1));
        drop(c.get_or_insert(&3, || Arc::new(3)));
        c.account(&3, 100);
        assert!(c.peek(&2).is_none(), "the least recently used");
        drop(c.get_or_insert(&4, || Arc::new(4)));
        c.account(&4, 100);
        assert!(c.peek(&0).is_none());
        assert!(c.peek(&1).is_some(), "in use: never evicted");
        drop(held);
        let four = c.get_or_insert(&4, || Arc::new(4));
        c.account(&4, 1000);
        drop(four);
        assert!(c.peek(&1).is_none() && c.peek(&3).is_none());
        assert!(c.peek(&4).is_some(), "alone it may exceed the limit");
        let m = c.metrics.render();
        assert!(m.contains("chat_aggregate_cache_entries 1"), "{m}");
        assert!(
            m.contains(&format!(
                "chat_aggregate_cache_bytes {}",
                1000 + ENTRY_OVERHEAD
            )),
            "{m}"
        );
    }
}
