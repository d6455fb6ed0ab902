//! The receiver's series cache: a series' label fields, as bytes as sent,
//! to the store's ref and label set for it.
//!
//! A sender sends the same series with the same bytes request after
//! request, so a known series is found by one hash of its raw label fields
//! and one compare, without decoding its labels, checking them or looking
//! them up in the store's index (that lookup chases every label's strings
//! and was the receiver's largest cost).
//!
//! Safe by construction: an entry is found only when its bytes are equal to
//! the request's (a hash collision is a miss), and equal bytes decode to the
//! same label set, which was checked when it was cached. The ref is a hint
//! the store checks against the label set ([`SeriesRef`]): a series deleted
//! by retention since it was cached is created again, never written under
//! another series' id, and the new ref replaces the cached one.
//!
//! Bounded: entries live in two generations of at most half of
//! [`CACHE_BYTES`] each; when the newer is full the older is dropped, and a
//! hit in the older moves the entry to the newer, so series still being sent
//! stay cached.

use std::hash::BuildHasher;
use std::sync::{RwLock, RwLockReadGuard};

use rustc_hash::FxHashMap;

use crate::model::Labels;
use crate::storage::SeriesRef;

/// Most bytes the cache holds (keys plus a per-entry overhead).
pub const CACHE_BYTES: usize = 64 << 20;

/// Bytes counted per entry besides its key (map slot, key allocation).
const ENTRY_OVERHEAD: usize = 64;

/// One cached series.
struct Entry {
    key: Box<[u8]>,
    series: SeriesRef,
    labels: Labels,
}

/// One generation: entries by the seeded hash of their key (one entry per
/// hash; a colliding key replaces it).
#[derive(Default)]
struct Generation {
    entries: FxHashMap<u64, Entry>,
    bytes: usize,
}

impl Generation {
    fn get(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.entries.get(&hash).filter(|e| *e.key == *key)
    }
}

#[derive(Default)]
struct Generations {
    current: Generation,
    previous: Generation,
}

/// What a lookup found.
#[derive(Clone, Debug)]
pub struct Hit {
    /// The store's ref when cached (checked by the store).
    pub series: SeriesRef,
    /// The series' label set.
    pub labels: Labels,
    /// Found in the newer generation (else it is to be cached again).
    pub current: bool,
}

/// Series by their raw label fields; see the module docs.
pub struct SentLabelsCache {
    /// Seed of the key hash, random per process so that senders cannot
    /// choose label sets that collide.
    seed: u64,
    /// Half of the byte bound, per generation.
    generation_bytes: usize,
    inner: RwLock<Generations>,
}

impl Default for SentLabelsCache {
    fn default() -> Self {
        Self::with_capacity(CACHE_BYTES)
    }
}

impl SentLabelsCache {
    /// A cache holding at most about `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        SentLabelsCache {
            seed: std::collections::hash_map::RandomState::new().hash_one(0u64),
            generation_bytes: bytes / 2,
            inner: RwLock::new(Generations::default()),
        }
    }

    /// The hash `key` is found by.
    pub fn hash(&self, key: &[u8]) -> u64 {
        xxhash_rust::xxh64::xxh64(key, self.seed)
    }

    /// Looks keys up (a whole request's, under one lock).
    pub fn reader(&self) -> CacheReader<'_> {
        CacheReader {
            cache: self,
            inner: self.inner.read().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Caches (or re-caches) each `(key, ref, labels)`.
    pub fn insert<'k>(&self, items: impl IntoIterator<Item = (&'k [u8], SeriesRef, &'k Labels)>) {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            return;
        }
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for (key, series, labels) in items {
            let size = key.len() + ENTRY_OVERHEAD;
            if size > self.generation_bytes {
                continue;
            }
            if g.current.bytes + size > self.generation_bytes {
                g.previous = std::mem::take(&mut g.current);
            }
            let hash = self.hash(key);
            let entry = Entry {
                key: key.into(),
                series,
                labels: labels.clone(),
            };
            if let Some(old) = g.current.entries.insert(hash, entry) {
                g.current.bytes -= old.key.len() + ENTRY_OVERHEAD;
            }
            g.current.bytes += size;
        }
    }

    /// Number of entries (both generations; an entry moved to the newer
    /// one may be counted twice).
    pub fn len(&self) -> usize {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.current.entries.len() + g.previous.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lookups under a read lock.
pub struct CacheReader<'a> {
    cache: &'a SentLabelsCache,
    inner: RwLockReadGuard<'a, Generations>,
}

impl CacheReader<'_> {
    /// The series cached for `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Hit> {
        let hash = self.cache.hash(key);
        let (e, current) = match self.inner.current.get(hash, key) {
            Some(e) => (e, true),
            None => (self.inner.previous.get(hash, key)?, false),
        };
        Some(Hit {
            series: e.series,
            labels: e.labels.clone(),
            current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Labels {
        Labels::new([("__name__", name)])
    }

    #[test]
    fn colliding_hashes_never_return_another_series() {
        let cache = SentLabelsCache::default();
        let (a, b) = (labels("a"), labels("b"));
        cache.insert([(&b"key-a"[..], SeriesRef(1), &a)]);
        // Force b's key into a's slot, as a colliding hash would put it.
        {
            let mut g = cache.inner.write().unwrap();
            let hash = cache.hash(b"key-a");
            let e = g.current.entries.remove(&hash).unwrap();
            g.current.entries.insert(cache.hash(b"key-b"), e);
        }
        let r = cache.reader();
        assert!(r.get(b"key-b").is_none(), "a different key is a miss");
        assert!(r.get(b"key-a").is_none());
        drop(r);
        cache.insert([(&b"key-b"[..], SeriesRef(2), &b)]);
        let hit = cache.reader().get(b"key-b").unwrap();
        assert_eq!((hit.series, hit.labels), (SeriesRef(2), b));
    }

    #[test]
    fn bounded_by_two_generations_and_hits_survive_in_the_older() {
        let cache = SentLabelsCache::with_capacity(2 * 10 * (8 + ENTRY_OVERHEAD));
        let l = labels("x");
        let key = |i: usize| format!("key-{i:04}").into_bytes();
        for i in 0..10 {
            cache.insert([(&key(i)[..], SeriesRef(i as u64), &l)]);
        }
        assert_eq!(cache.len(), 10);
        // The eleventh starts a new generation; the first ten are older.
        cache.insert([(&key(10)[..], SeriesRef(10), &l)]);
        let hit = cache.reader().get(&key(3)).unwrap();
        assert!(!hit.current);
        assert_eq!(hit.series, SeriesRef(3));
        for i in 11..40 {
            cache.insert([(&key(i)[..], SeriesRef(i as u64), &l)]);
        }
        assert!(cache.len() <= 20, "{}", cache.len());
        assert!(cache.reader().get(&key(3)).is_none());
        assert!(cache.reader().get(&key(39)).unwrap().current);
        // A re-inserted key replaces its entry (a new ref after the series
        // was created again).
        cache.insert([(&key(39)[..], SeriesRef(99), &l)]);
        assert_eq!(cache.reader().get(&key(39)).unwrap().series, SeriesRef(99));
    }
}
