//! Decoded chunks and rollup rows kept for the next query
//! (`storage.decoded_cache_size`).
//!
//! A dashboard asks for the same ranges at every refresh, and decoding the
//! compressed chunks is most of what reading them costs. Entries are keyed
//! by their content (a 128-bit hash of the stored bytes and their
//! encoding), not by row: a row that is replaced (a block merged into its
//! day, a backfill) may come back under the same id with other bytes, and
//! a content key can never serve those stale. Nothing needs invalidating;
//! entries of rows that are gone age out under the size limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::StorageError;
use super::chunk::ChunkError;
use super::pco_chunk::{self, Encoding};
use super::rollup::{self, RollupPoint};
use crate::model::Sample;

/// The default `storage.decoded_cache_size`: 64 MiB, about four million
/// samples (16 bytes each decoded).
pub const DEFAULT_BYTES: u64 = 64 << 20;

/// Bytes counted for an entry beyond its points: key, slot, `Arc` header.
const ENTRY_OVERHEAD: u64 = 64;

/// Key kind of a rollup row (chunk encodings use their own codes).
const ROLLUP_KIND: u8 = u8::MAX;

/// Content hash of the stored bytes and the kind of decoding they get.
type Key = (u128, u8);

#[derive(Clone)]
enum Entry {
    Samples(Arc<[Sample]>),
    Rollup(Arc<[RollupPoint]>),
}

#[derive(Clone)]
struct DecodedBytes;

impl Weighter<Key, Entry> for DecodedBytes {
    fn weight(&self, _: &Key, e: &Entry) -> u64 {
        let points = match e {
            Entry::Samples(s) => std::mem::size_of_val::<[Sample]>(s),
            Entry::Rollup(r) => std::mem::size_of_val::<[RollupPoint]>(r),
        };
        points as u64 + ENTRY_OVERHEAD
    }
}

/// The cache shared by every reader of one store.
pub struct DecodedCache {
    /// `None` when turned off (size 0).
    cache: Option<Cache<Key, Entry, DecodedBytes>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Hits and misses since the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that decoded the bytes.
    pub misses: u64,
}

impl DecodedCache {
    /// A cache holding at most `bytes` of decoded points; 0 turns it off.
    pub fn new(bytes: u64) -> Self {
        // A 2-hour block of a 15 s series decodes to ~7.7 KB.
        let items = usize::try_from(bytes / 8192).unwrap_or(usize::MAX).max(16);
        DecodedCache {
            cache: (bytes > 0).then(|| Cache::with_weighter(items, bytes, DecodedBytes)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Hits and misses so far.
    pub fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Bytes the entries take now.
    pub fn bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, Cache::weight)
    }

    fn lookup(&self, key: &Key) -> Option<Entry> {
        let found = self.cache.as_ref()?.get(key);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Appends the samples in `[mint, maxt]` of a stored chunk to `out`, as
    /// [`pco_chunk::decode_any`] does.
    pub fn samples(
        &self,
        encoding: Encoding,
        bytes: &[u8],
        mint: i64,
        maxt: i64,
        out: &mut Vec<Sample>,
    ) -> Result<(), ChunkError> {
        if self.cache.is_none() {
            return pco_chunk::decode_any(encoding, bytes, mint, maxt, out);
        }
        self.through((hash(bytes), encoding.code()), (mint, maxt), out, |all| {
            pco_chunk::decode_any(encoding, bytes, i64::MIN, i64::MAX, all)
        })
    }

    /// Appends the points in `[mint, maxt]` of a stored rollup row to `out`,
    /// as [`rollup::decode_into`] does.
    pub fn rollups(
        &self,
        bytes: &[u8],
        mint: i64,
        maxt: i64,
        out: &mut Vec<RollupPoint>,
    ) -> Result<(), StorageError> {
        if self.cache.is_none() {
            return rollup::decode_into(bytes, mint, maxt, out);
        }
        self.through((hash(bytes), ROLLUP_KIND), (mint, maxt), out, |all| {
            rollup::decode_into(bytes, i64::MIN, i64::MAX, all)
        })
    }

    /// Appends the points of `key`'s entry in `[mint, maxt]` to `out`,
    /// decoding them with `decode` (which fills a vector with every point)
    /// and keeping them when the cache does not have them.
    fn through<P: Points, E>(
        &self,
        key: Key,
        (mint, maxt): (i64, i64),
        out: &mut Vec<P>,
        decode: impl FnOnce(&mut Vec<P>) -> Result<(), E>,
    ) -> Result<(), E> {
        let all = match self.lookup(&key).and_then(P::of) {
            Some(all) => all,
            None => {
                let mut all = Vec::new();
                decode(&mut all)?;
                let all: Arc<[P]> = all.into();
                if let Some(cache) = &self.cache {
                    cache.insert(key, P::entry(all.clone()));
                }
                all
            }
        };
        // Most chunks lie wholly inside the asked range: their ends say so
        // without two binary searches over the entry (scattered reads, the
        // hottest instructions of cached reads in a profile of a 24 h query).
        let (lo, hi) = match (all.first(), all.last()) {
            (Some(first), Some(last)) if first.t() >= mint && last.t() <= maxt => (0, all.len()),
            _ => (
                all.partition_point(|p| p.t() < mint),
                all.partition_point(|p| p.t() <= maxt),
            ),
        };
        out.extend_from_slice(&all[lo.min(hi)..hi]);
        Ok(())
    }
}

/// What an entry holds: points in time order.
trait Points: Copy + Sized {
    fn t(&self) -> i64;
    fn entry(all: Arc<[Self]>) -> Entry;
    fn of(e: Entry) -> Option<Arc<[Self]>>;
}

impl Points for Sample {
    fn t(&self) -> i64 {
        self.timestamp_ms
    }
    fn entry(all: Arc<[Self]>) -> Entry {
        Entry::Samples(all)
    }
    fn of(e: Entry) -> Option<Arc<[Self]>> {
        match e {
            Entry::Samples(all) => Some(all),
            Entry::Rollup(_) => None,
        }
    }
}

impl Points for RollupPoint {
    fn t(&self) -> i64 {
        self.t
    }
    fn entry(all: Arc<[Self]>) -> Entry {
        Entry::Rollup(all)
    }
    fn of(e: Entry) -> Option<Arc<[Self]>> {
        match e {
            Entry::Rollup(all) => Some(all),
            Entry::Samples(_) => None,
        }
    }
}

fn hash(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::chunk::ChunkEncoder;

    fn gorilla(from: i64, n: i64) -> Vec<u8> {
        let mut enc = ChunkEncoder::new();
        for i in 0..n {
            enc.append(from + i * 15_000, (i * 7) as f64 + 0.5);
        }
        enc.bytes().to_vec()
    }

    fn decoded(cache: &DecodedCache, bytes: &[u8], mint: i64, maxt: i64) -> Vec<Sample> {
        let mut out = vec![Sample {
            timestamp_ms: -1,
            value: 0.0,
        }];
        cache
            .samples(Encoding::Gorilla, bytes, mint, maxt, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_hit_gives_what_decoding_gives_for_any_range() {
        let cache = DecodedCache::new(1 << 20);
        let off = DecodedCache::new(0);
        let bytes = gorilla(60_000, 480);
        for (mint, maxt) in [
            (i64::MIN, i64::MAX),
            (60_000, 60_000),
            (100_000, 2_000_000),
            (0, 59_999),
            (7_000_000, 9_000_000),
            (2_000_000, 100_000),
        ] {
            let want = decoded(&off, &bytes, mint, maxt);
            assert_eq!(
                decoded(&cache, &bytes, mint, maxt),
                want,
                "[{mint}, {maxt}]"
            );
        }
        assert_eq!(cache.counts(), CacheCounts { hits: 5, misses: 1 });
        assert_eq!(off.counts(), CacheCounts::default());
        // Ranges at and just inside the chunk's own ends (whole chunks are
        // served without searching).
        let all = decoded(&off, &bytes, i64::MIN, i64::MAX);
        let (first, last) = (all[0].timestamp_ms, all[all.len() - 1].timestamp_ms);
        for (mint, maxt) in [
            (first, last),
            (first + 1, last),
            (first, last - 1),
            (first - 1, last + 1),
        ] {
            let want = decoded(&off, &bytes, mint, maxt);
            assert_eq!(
                decoded(&cache, &bytes, mint, maxt),
                want,
                "[{mint}, {maxt}]"
            );
        }
        assert_eq!(decoded(&cache, &bytes, first, last), all);
    }

    #[test]
    fn other_bytes_are_never_served_a_stale_entry() {
        // The same range of a replaced row: new content, new key.
        let cache = DecodedCache::new(1 << 20);
        let before = gorilla(0, 100);
        let after = gorilla(0, 120);
        assert_eq!(decoded(&cache, &before, 0, i64::MAX).len(), 101);
        assert_eq!(decoded(&cache, &after, 0, i64::MAX).len(), 121);
        assert_eq!(cache.counts().misses, 2);
    }

    #[test]
    fn damaged_bytes_are_an_error_and_not_kept() {
        let cache = DecodedCache::new(1 << 20);
        let mut bytes = gorilla(0, 100);
        bytes.truncate(9);
        for _ in 0..2 {
            assert!(
                cache
                    .samples(Encoding::Gorilla, &bytes, 0, i64::MAX, &mut Vec::new())
                    .is_err()
            );
        }
        assert_eq!(cache.counts().misses, 2);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn the_size_limit_holds() {
        let cache = DecodedCache::new(64 << 10);
        for i in 0..100 {
            decoded(&cache, &gorilla(i, 480), 0, i64::MAX);
        }
        assert!(cache.bytes() <= 64 << 10, "{}", cache.bytes());
        assert!(cache.bytes() > 0);
    }

    #[test]
    fn rollup_rows_decode_through_the_cache_alike() {
        let points: Vec<RollupPoint> = (0..288)
            .map(|i| RollupPoint {
                count: 20,
                ..RollupPoint::from_sample(i * 300_000 + 299_000, i as f64)
            })
            .collect();
        let bytes = rollup::encode(&points).unwrap();
        let cache = DecodedCache::new(1 << 20);
        for (mint, maxt) in [(i64::MIN, i64::MAX), (3_000_000, 9_000_000)] {
            let mut want = Vec::new();
            rollup::decode_into(&bytes, mint, maxt, &mut want).unwrap();
            for _ in 0..2 {
                let mut got = Vec::new();
                cache.rollups(&bytes, mint, maxt, &mut got).unwrap();
                assert_eq!(got, want);
            }
        }
        assert_eq!(cache.counts(), CacheCounts { hits: 3, misses: 1 });
    }
}
