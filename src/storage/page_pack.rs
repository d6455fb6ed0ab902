//! The order a batch of compacted chunk rows (or rollup rows, appended to
//! `rollups` the same way) is inserted in, so the rows fill the pages they
//! land on.
//!
//! Compacted chunks take ever-growing ids (`chunk_ids.rs`), so SQLite
//! appends them at the right edge of the `chunks` table. When a row does
//! not fit in the room left on the rightmost leaf page, SQLite starts a new
//! page holding that row alone and never comes back to the old page's free
//! room. With rows of a few hundred bytes to 16 KiB in 16 KiB pages, that
//! left 8 % of every chunk page empty (`dbstat` on the storage bench's
//! float data). Ids carry no meaning beyond lifetime (reads go through the
//! `(series_id, min_t)` index), so a batch can be inserted in any order:
//! largest first, each time the largest row that still fits the room the
//! page has left, else a new page. The room is computed from SQLite's
//! record and cell layout (<https://www.sqlite.org/fileformat2.html>), which
//! no crate exposes. An estimate that drifts from the real page (after a
//! restart, or a rolled-back batch) only costs packing, never correctness.

use super::StorageError;
use super::sqlite::backend;

/// Encoded bytes a batch holds before its rows are written: packing needs a
/// choice of rows, not every row of a batch, and a batch of day chunks at a
/// 1 s scrape interval could otherwise hold ~100 MiB.
pub(super) const HELD_BYTES: usize = 4 << 20;

/// Bytes of a table leaf page's header (no right-child pointer).
const LEAF_HEADER: usize = 8;
/// Bytes of a cell's entry in the page's cell pointer array.
const CELL_POINTER: usize = 2;
/// Bytes of the first overflow page's number, after a spilled cell's local part.
const OVERFLOW_POINTER: usize = 4;

/// Bytes SQLite's variable-length integer takes for `v` (as unsigned).
fn varint_len(v: u64) -> usize {
    if v > (1 << 56) - 1 {
        return 9;
    }
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// The record serial type's body bytes and the type's own varint bytes for
/// an integer column (schema format 4: 0 and 1 take no body bytes).
fn int_bytes(v: i64) -> (usize, usize) {
    let body = match v {
        0 | 1 => 0,
        -0x80..=0x7f => 1,
        -0x8000..=0x7fff => 2,
        -0x80_0000..=0x7f_ffff => 3,
        -0x8000_0000..=0x7fff_ffff => 4,
        -0x8000_0000_0000..=0x7fff_ffff_ffff => 6,
        _ => 8,
    };
    (body, 1)
}

/// Payload bytes of a record of the given columns: integers (`None` for a
/// NULL, which is how an `INTEGER PRIMARY KEY` column is stored), then one
/// blob of `blob_len` bytes.
pub(super) fn record_bytes(ints: &[Option<i64>], blob_len: usize) -> usize {
    let (mut header, mut body) = (0usize, blob_len);
    for v in ints {
        let (b, h) = v.map_or((0, 1), int_bytes);
        header += h;
        body += b;
    }
    header += varint_len(blob_len as u64 * 2 + 12);
    // The header's size varint counts itself.
    let mut size = header + 1;
    if varint_len(size as u64) > 1 {
        size = header + varint_len((header + 2) as u64);
    }
    size + body
}

/// Bytes a row with `payload` record bytes and key `rowid` takes on a table
/// leaf page of `page_size` bytes: its cell (with only the local part of a
/// payload that spills to overflow pages) and its cell pointer.
pub(super) fn leaf_cell_bytes(page_size: usize, rowid: i64, payload: usize) -> usize {
    let usable = page_size;
    let max_local = usable - 35;
    let local = if payload <= max_local {
        payload
    } else {
        let min_local = (usable - 12) * 32 / 255 - 23;
        let k = min_local + (payload - min_local) % (usable - 4);
        (if k <= max_local { k } else { min_local }) + OVERFLOW_POINTER
    };
    varint_len(payload as u64) + varint_len(rowid as u64) + local + CELL_POINTER
}

/// Bytes a row of a rowid table whose first column is its `INTEGER
/// PRIMARY KEY`, followed by the integer columns `ints` and a trailing blob
/// of `blob_len` bytes (the shape of `chunks` and `rollups` rows), takes on
/// a leaf page: [`leaf_cell_bytes`] of its record.
pub(super) fn rowid_row_bytes(
    page_size: usize,
    rowid: i64,
    ints: &[i64],
    blob_len: usize,
) -> usize {
    // The key column is stored as NULL: its value is the rowid.
    let cols: Vec<Option<i64>> = std::iter::once(None)
        .chain(ints.iter().copied().map(Some))
        .collect();
    leaf_cell_bytes(page_size, rowid, record_bytes(&cols, blob_len))
}

/// The room left on the rightmost leaf page of a table that rows are
/// appended to, as far as this connection has seen it.
#[derive(Debug)]
pub(super) struct RightEdge {
    page_size: usize,
    room: usize,
}

impl RightEdge {
    /// An edge on pages of `page_size` bytes whose room is not known yet,
    /// taken to be a fresh page.
    pub(super) fn new(page_size: usize) -> Self {
        Self {
            page_size,
            room: page_size - LEAF_HEADER,
        }
    }

    /// An edge on the pages of the database `conn` is open on.
    pub(super) fn of(conn: &rusqlite::Connection) -> Result<Self, StorageError> {
        let size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(backend)?;
        Ok(Self::new(size.clamp(512, 65_536) as usize))
    }

    /// Inserts `rows` in the order that fills the table's last pages, on
    /// the edge kept in `slot` (made from `conn`'s page size the first
    /// time): `leaf_bytes(row, page_size)` is what a row takes on a leaf
    /// page, `insert` writes one row.
    pub(super) fn insert_packed<R>(
        slot: &mut Option<RightEdge>,
        conn: &rusqlite::Connection,
        rows: &[R],
        leaf_bytes: impl Fn(&R, usize) -> usize,
        mut insert: impl FnMut(&R) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let edge = match slot {
            Some(edge) => edge,
            None => slot.insert(RightEdge::of(conn)?),
        };
        let cells: Vec<usize> = rows.iter().map(|r| leaf_bytes(r, edge.page_size)).collect();
        for i in edge.order(&cells) {
            insert(&rows[i])?;
        }
        Ok(())
    }

    /// The order to append rows taking `cells` bytes each (from
    /// [`leaf_cell_bytes`]) in: indexes into `cells`, largest first, each
    /// the largest that fits the current page's room, else the largest
    /// left on a new page.
    pub(super) fn order(&mut self, cells: &[usize]) -> Vec<usize> {
        let fresh = self.page_size - LEAF_HEADER;
        let mut left: Vec<usize> = (0..cells.len()).collect();
        left.sort_by(|a, b| cells[*b].cmp(&cells[*a]));
        let mut out = Vec::with_capacity(cells.len());
        while !left.is_empty() {
            let at = match left.iter().position(|&i| cells[i] <= self.room) {
                Some(at) => at,
                None => {
                    self.room = fresh;
                    0
                }
            };
            let i = left.remove(at);
            self.room = self.room.saturating_sub(cells[i]);
            out.push(i);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::xorshift;
    use rusqlite::{Connection, params};

    #[test]
    fn varint_lengths() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len((1 << 56) - 1), 8);
        assert_eq!(varint_len(1 << 62), 9);
        assert_eq!(varint_len(u64::MAX), 9);
    }

    /// Rows appended in the packed order leave less than 2 % of the leaf
    /// pages empty where the arrival order left 8 %, and the leaf cell
    /// bytes computed here are what SQLite stored, byte for byte.
    #[test]
    fn packed_rows_fill_their_pages_and_cells_match_dbstat() {
        let dir = tempfile::tempdir().unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        // Chunk-like rows: many small, some of a few KiB, a few that spill.
        let rows: Vec<(i64, i64, usize)> = (0..3_000)
            .map(|i| {
                let len = match xorshift(&mut x) % 10 {
                    0..=4 => 200 + xorshift(&mut x) % 800,
                    5..=8 => 1_000 + xorshift(&mut x) % 7_000,
                    _ => 8_000 + xorshift(&mut x) % 40_000,
                } as usize;
                (i % 2_000, 1_790_000_000_000 + i * 7_200_000, len)
            })
            .collect();
        let empty_share = |name: &str, order: &[usize]| -> (f64, usize, usize) {
            let conn = Connection::open(dir.path().join(name)).unwrap();
            conn.execute_batch(
                "PRAGMA page_size = 16384; PRAGMA auto_vacuum = INCREMENTAL;
                 CREATE TABLE chunks (id INTEGER PRIMARY KEY, series_id INTEGER NOT NULL,
                   min_t INTEGER NOT NULL, max_t INTEGER NOT NULL, samples INTEGER NOT NULL,
                   encoding INTEGER NOT NULL DEFAULT 0, data BLOB NOT NULL);",
            )
            .unwrap();
            let mut cells = 0usize;
            for (n, &i) in order.iter().enumerate() {
                let (series, t, len) = rows[i];
                let id = (1i64 << 62) + n as i64 + 1;
                cells += rowid_row_bytes(16_384, id, &[series, t, t + 7_000_000, 480, 2], len);
                conn.execute(
                    "INSERT INTO chunks VALUES (?1, ?2, ?3, ?4, 480, 2, zeroblob(?5))",
                    params![id, series, t, t + 7_000_000, len as i64],
                )
                .unwrap();
            }
            let (unused, size, pages, used): (i64, i64, i64, i64) = conn
                .query_row(
                    "SELECT SUM(unused), SUM(pgsize), COUNT(*), SUM(pgsize - unused) FROM dbstat
                     WHERE name = 'chunks' AND pagetype = 'leaf'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap();
            // Page headers aside, what is used on the leaves is our cells.
            let ours = cells + pages as usize * LEAF_HEADER;
            (unused as f64 / size as f64, ours, used as usize)
        };
        let arrival: Vec<usize> = (0..rows.len()).collect();
        let (before, ..) = empty_share("arrival.db", &arrival);
        // Batches of 200, as compaction inserts them.
        let mut edge = RightEdge::new(16_384);
        let mut packed = Vec::new();
        for batch in arrival.chunks(200) {
            let cells: Vec<usize> = batch
                .iter()
                .map(|&i| {
                    let (series, t, len) = rows[i];
                    let id = (1i64 << 62) + packed.len() as i64 + 1;
                    rowid_row_bytes(16_384, id, &[series, t, t + 7_000_000, 480, 2], len)
                })
                .collect();
            packed.extend(edge.order(&cells).into_iter().map(|k| batch[k]));
        }
        let (after, ours, used) = empty_share("packed.db", &packed);
        assert_eq!(ours, used, "leaf bytes computed vs stored");
        assert!(
            before > 0.05 && after < 0.02,
            "empty share of the leaf pages: {:.1} % in arrival order, {:.1} % packed",
            before * 100.0,
            after * 100.0
        );
    }
}
