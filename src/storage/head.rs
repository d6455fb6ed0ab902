//! The head: each series' open chunk in memory. Samples land here first (and
//! in the WAL); a chunk is closed and written to the `chunks` table when it is
//! full or its time window ends.

use rustc_hash::FxHashMap;

use super::chunk::ChunkEncoder;
use super::index::SeriesId;

/// When an open chunk is closed.
#[derive(Clone, Copy, Debug)]
pub struct ChunkPolicy {
    /// Most samples per chunk.
    pub max_samples: usize,
    /// Chunks never cross a multiple of this many milliseconds (aligned
    /// windows keep retention and range lookups simple).
    pub window_ms: i64,
}

impl Default for ChunkPolicy {
    fn default() -> Self {
        // 2h at a 15s interval: large enough that the per-row overhead of
        // SQLite is small next to the encoded samples.
        ChunkPolicy {
            max_samples: 480,
            window_ms: 2 * 3600 * 1000,
        }
    }
}

/// A closed chunk on its way to the `chunks` table.
#[derive(Clone, Debug)]
pub struct ClosedChunk {
    /// Series.
    pub series: SeriesId,
    /// First timestamp.
    pub min_t: i64,
    /// Last timestamp.
    pub max_t: i64,
    /// Sample count.
    pub samples: usize,
    /// Encoded bytes.
    pub data: Vec<u8>,
}

/// One series in the head.
#[derive(Clone, Debug, Default)]
pub struct HeadSeries {
    /// The open chunk.
    pub chunk: ChunkEncoder,
    /// Newest timestamp stored for the series anywhere (head or chunks).
    pub last_t: Option<i64>,
    /// Bits of the newest value.
    pub last_v: u64,
}

/// What appending one sample would do.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Newer than anything stored: append.
    Append,
    /// Same timestamp and bit-identical value: nothing to do.
    Duplicate,
    /// Older than (or conflicting with) the newest sample.
    OutOfOrder {
        /// The newest stored timestamp.
        newest: i64,
    },
}

impl HeadSeries {
    /// Whether a sample at `t` with value bits `v` can be appended.
    pub fn admit(&self, t: i64, v: u64) -> Admission {
        match self.last_t {
            None => Admission::Append,
            Some(last) if t > last => Admission::Append,
            Some(last) if t == last && v == self.last_v => Admission::Duplicate,
            Some(last) => Admission::OutOfOrder { newest: last },
        }
    }

    /// Whether appending a sample at `t` closes the open chunk first.
    pub fn closes_before(&self, t: i64, policy: ChunkPolicy) -> bool {
        if self.chunk.is_empty() {
            return false;
        }
        let window_end =
            (self.chunk.min_t().div_euclid(policy.window_ms) + 1).saturating_mul(policy.window_ms);
        self.chunk.len() >= policy.max_samples || t >= window_end
    }

    /// Appends an admitted sample, closing the open chunk first when the
    /// policy says so.
    pub fn append(
        &mut self,
        id: SeriesId,
        t: i64,
        v: u64,
        policy: ChunkPolicy,
        closed: &mut Vec<ClosedChunk>,
    ) {
        if self.closes_before(t, policy) {
            closed.push(self.close(id));
        }
        self.chunk.append(t, f64::from_bits(v));
        self.last_t = Some(t);
        self.last_v = v;
    }

    /// Closes the open chunk (the caller knows it is not empty).
    pub fn close(&mut self, id: SeriesId) -> ClosedChunk {
        let chunk = std::mem::take(&mut self.chunk);
        ClosedChunk {
            series: id,
            min_t: chunk.min_t(),
            max_t: chunk.max_t(),
            samples: chunk.len(),
            data: chunk.bytes().to_vec(),
        }
    }
}

/// Every series' head state.
#[derive(Default)]
pub struct Head {
    /// By series id (ids are SQLite row ids, not chosen by senders: a fast
    /// hash is safe, and each appended sample looks its series up twice).
    pub series: FxHashMap<SeriesId, HeadSeries>,
}

impl Head {
    /// Samples held in open chunks.
    pub fn samples(&self) -> usize {
        self.series.values().map(|s| s.chunk.len()).sum()
    }

    /// Bytes of the open chunks (RAM the head's data takes, less overheads).
    pub fn bytes(&self) -> usize {
        self.series.values().map(|s| s.chunk.bytes().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_on_count_and_window() {
        let policy = ChunkPolicy {
            max_samples: 3,
            window_ms: 100,
        };
        let mut s = HeadSeries::default();
        let mut closed = Vec::new();
        for t in [10, 20, 30, 40, 99, 100, 101] {
            assert_eq!(s.admit(t, 0), Admission::Append);
            s.append(7, t, 0, policy, &mut closed);
        }
        let ranges: Vec<(i64, i64, usize)> = closed
            .iter()
            .map(|c| (c.min_t, c.max_t, c.samples))
            .collect();
        assert_eq!(ranges, vec![(10, 30, 3), (40, 99, 2)]);
        assert_eq!(s.chunk.len(), 2);
        assert_eq!(s.admit(101, 0), Admission::Duplicate);
        assert_eq!(s.admit(101, 1), Admission::OutOfOrder { newest: 101 });
        assert_eq!(s.admit(50, 0), Admission::OutOfOrder { newest: 101 });
    }
}
