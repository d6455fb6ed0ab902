//! The compacted chunk encoding: a day of one series' samples as two pco
//! streams (timestamps as `i64`, values as `f64`). pco finds the structure
//! Gorilla cannot (regular steps, integer-valued counters, common
//! multiples), at the cost of needing all samples up front — so it is used
//! for closed data only. Layout in `FORMAT.md`; values round-trip bit-exact.

use pco::ChunkConfig;
use pco::standalone::{simple_compress, simple_decompress};

use super::chunk::ChunkError;
use crate::model::Sample;

/// How a chunk's bytes are encoded (the `encoding` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Delta-of-delta timestamps and XOR values, appendable (`chunk.rs`).
    Gorilla = 0,
    /// Two pco streams, written by compaction.
    Pco = 1,
}

impl Encoding {
    /// The encoding stored as `code`.
    pub fn from_code(code: i64) -> Result<Self, ChunkError> {
        match code {
            0 => Ok(Encoding::Gorilla),
            1 => Ok(Encoding::Pco),
            _ => Err(ChunkError("unknown chunk encoding")),
        }
    }
}

/// Encodes samples (timestamps increasing).
pub fn encode(samples: &[Sample]) -> Result<Vec<u8>, ChunkError> {
    let ts: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
    let vs: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let cfg = ChunkConfig::default();
    let ts = simple_compress(&ts, &cfg).map_err(|_| ChunkError("pco cannot encode timestamps"))?;
    let vs = simple_compress(&vs, &cfg).map_err(|_| ChunkError("pco cannot encode values"))?;
    let mut out = Vec::with_capacity(ts.len() + vs.len() + 5);
    let mut n = ts.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&ts);
    out.extend_from_slice(&vs);
    Ok(out)
}

/// Decodes the samples in `[mint, maxt]` and appends them to `out`.
pub fn decode_into(
    bytes: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    let (mut len, mut shift, mut pos) = (0u64, 0u32, 0usize);
    loop {
        let b = *bytes.get(pos).ok_or(ChunkError("truncated pco chunk"))?;
        pos += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(ChunkError("pco chunk length too long"));
        }
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|e| *e <= bytes.len())
        .ok_or(ChunkError("truncated pco chunk"))?;
    let ts: Vec<i64> =
        simple_decompress(&bytes[pos..end]).map_err(|_| ChunkError("bad pco timestamps"))?;
    let vs: Vec<f64> =
        simple_decompress(&bytes[end..]).map_err(|_| ChunkError("bad pco values"))?;
    if ts.len() != vs.len() {
        return Err(ChunkError("pco streams differ in length"));
    }
    let start = ts.partition_point(|t| *t < mint);
    let stop = ts.partition_point(|t| *t <= maxt);
    if start < stop {
        out.extend(
            ts[start..stop]
                .iter()
                .zip(&vs[start..stop])
                .map(|(&t, &v)| Sample {
                    timestamp_ms: t,
                    value: v,
                }),
        );
    }
    Ok(())
}

/// Decodes a chunk of either encoding.
pub fn decode_any(
    encoding: Encoding,
    bytes: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    match encoding {
        Encoding::Gorilla => super::chunk::decode_into(bytes, mint, maxt, out),
        Encoding::Pco => decode_into(bytes, mint, maxt, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{STALE_NAN_BITS, stale_nan};

    #[test]
    fn round_trip_bit_exact_and_smaller_than_gorilla() {
        let mut v = 0.0;
        let samples: Vec<Sample> = (0..5760)
            .map(|i| {
                v += ((i * 7919) % 50) as f64;
                Sample {
                    timestamp_ms: 1_700_000_000_000 + i * 15_000,
                    value: if i == 100 { stale_nan() } else { v },
                }
            })
            .collect();
        let bytes = encode(&samples).unwrap();
        let mut got = Vec::new();
        decode_into(&bytes, i64::MIN, i64::MAX, &mut got).unwrap();
        assert_eq!(got.len(), samples.len());
        assert!(got.iter().zip(&samples).all(
            |(a, b)| a.timestamp_ms == b.timestamp_ms && a.value.to_bits() == b.value.to_bits()
        ));
        assert_eq!(got[100].value.to_bits(), STALE_NAN_BITS);
        let mut gorilla = super::super::chunk::ChunkEncoder::new();
        for s in &samples {
            gorilla.append(s.timestamp_ms, s.value);
        }
        assert!(
            bytes.len() * 3 / 2 < gorilla.bytes().len(),
            "pco {} vs gorilla {}",
            bytes.len(),
            gorilla.bytes().len()
        );
        let mut part = Vec::new();
        decode_into(
            &bytes,
            samples[10].timestamp_ms,
            samples[19].timestamp_ms,
            &mut part,
        )
        .unwrap();
        assert_eq!(part.len(), 10);
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            let _ = decode_into(&bytes[..cut], i64::MIN, i64::MAX, &mut Vec::new());
        }
    }
}
