//! Chunk row ids by lifetime.
//!
//! `chunks` rows sit in table pages in id order. A Gorilla chunk lives
//! about two hours, until block compaction replaces it; compacted block and
//! day chunks live until their day is merged or retention. Drawn from one
//! sequence, the two kinds shared pages, and when the short-lived rows went
//! the compacted ones were left in pages that stay partly empty (SQLite
//! does not merge them). Each kind therefore takes ids from its own range:
//! compacted chunks, the bulk of a store, from the higher one, so SQLite
//! appends them at the table's right edge and fills their pages.

/// How long a chunk row is expected to live, which picks its id range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lifetime {
    /// A closed Gorilla chunk (or a backfilled one): until block compaction.
    Head,
    /// A pco block or day chunk: until the day merge or retention.
    Compacted,
}

const COMPACTED_BASE: i64 = 1 << 62;

impl Lifetime {
    /// The id range `[from, to)` of this lifetime's rows. Files written
    /// before the ranges existed have only small ids: their rows count as
    /// `Head` rows, which only changes where new rows go.
    pub(super) fn ids(self) -> (i64, i64) {
        match self {
            Lifetime::Head => (0, COMPACTED_BASE),
            Lifetime::Compacted => (COMPACTED_BASE, i64::MAX),
        }
    }
}

/// SQL for the next id of a lifetime whose range `[from, to)` is bound to
/// parameters `?{from}` and `?{to}`: one past the range's largest id (one
/// seek to the range's end).
pub(super) fn next_id_sql(from: usize, to: usize) -> String {
    format!(
        "COALESCE((SELECT id FROM chunks WHERE id >= ?{from} AND id < ?{to} ORDER BY id DESC LIMIT 1), ?{from}) + 1"
    )
}
