//! The write-ahead record: one appended batch as `(series id, timestamp,
//! value bits)` triples, stored as one row of the `wal` table in the same
//! transaction as the batch's new series. Layout in `FORMAT.md`.

use super::index::SeriesId;

/// One sample as logged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WalSample {
    /// Series.
    pub series: SeriesId,
    /// Milliseconds.
    pub t: i64,
    /// Value bits (kept exact, StaleNaN included).
    pub v: u64,
}

/// A record that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("corrupt WAL record: {0}")]
pub struct WalError(&'static str);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Result<u64, WalError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos).ok_or(WalError("truncated varint"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WalError("varint too long"))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes a batch; timestamps are stored as deltas from the previous sample
/// (a scrape's samples share one timestamp, so most take one byte).
pub fn encode(samples: &[WalSample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 12 + 4);
    put_varint(&mut out, samples.len() as u64);
    let mut prev_t = 0i64;
    for s in samples {
        put_varint(&mut out, s.series as u64);
        put_varint(&mut out, zigzag(s.t.wrapping_sub(prev_t)));
        out.extend_from_slice(&s.v.to_le_bytes());
        prev_t = s.t;
    }
    out
}

/// Decodes a record written by [`encode`].
pub fn decode(data: &[u8]) -> Result<Vec<WalSample>, WalError> {
    let mut pos = 0;
    let n = get_varint(data, &mut pos)?;
    // Each sample takes at least 10 bytes: bound the allocation by the data.
    if n > (data.len() / 10) as u64 {
        return Err(WalError("sample count larger than the record"));
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut t = 0i64;
    for _ in 0..n {
        let series = get_varint(data, &mut pos)? as i64;
        t = t.wrapping_add(unzigzag(get_varint(data, &mut pos)?));
        let bytes: [u8; 8] = data
            .get(pos..pos + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or(WalError("truncated value"))?;
        pos += 8;
        out.push(WalSample {
            series,
            t,
            v: u64::from_le_bytes(bytes),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let batch = vec![
            WalSample {
                series: 1,
                t: 1_700_000_000_000,
                v: 1.5f64.to_bits(),
            },
            WalSample {
                series: 300,
                t: 1_700_000_000_000,
                v: crate::model::STALE_NAN_BITS,
            },
            WalSample {
                series: 2,
                t: -4,
                v: 0,
            },
        ];
        let data = encode(&batch);
        assert_eq!(decode(&data).unwrap(), batch);
        for cut in 0..data.len() {
            assert!(decode(&data[..cut]).is_err());
        }
    }
}
