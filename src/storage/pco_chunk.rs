//! The compacted chunk encoding: a day of one series' samples as two pco
//! streams (timestamps as `i64`, values as `f64`). pco finds the structure
//! Gorilla cannot (regular steps, integer-valued counters, common
//! multiples), at the cost of needing all samples up front — so it is used
//! for closed data only. Layout in `FORMAT.md`; values round-trip bit-exact.

use pco::ChunkConfig;
use pco::standalone::{DecompressorItem, FileDecompressor, simple_compress};

use super::chunk::ChunkError;
use crate::model::Sample;

/// How a chunk's bytes are encoded (the `encoding` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Delta-of-delta timestamps and XOR values, appendable (`chunk.rs`).
    Gorilla = 0,
    /// Two pco streams, written by compaction.
    Pco = 1,
    /// Like [`Encoding::Pco`], with integer-valued values stored as an `i64`
    /// stream (plus the few values that are not, by position). Counters and
    /// byte gauges are integers held in `f64`; pco compresses them about
    /// twice as well as integers (measured in `FORMAT.md`).
    PcoInt = 2,
}

impl Encoding {
    /// The encoding stored as `code`.
    pub fn from_code(code: i64) -> Result<Self, ChunkError> {
        match code {
            0 => Ok(Encoding::Gorilla),
            1 => Ok(Encoding::Pco),
            2 => Ok(Encoding::PcoInt),
            _ => Err(ChunkError("unknown chunk encoding")),
        }
    }

    /// The code stored for this encoding.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Most values one pco stream may declare. A stream's header says how many
/// values follow and pco allocates for them, so damaged bytes could ask for
/// gigabytes (found by the `pco_chunk_decode` fuzz target); a day of one
/// series at 100 ms is under a million.
pub const MAX_STREAM_VALUES: usize = 1 << 22;

/// Decompresses one pco stream, refusing streams that declare more than
/// [`MAX_STREAM_VALUES`] values before anything is allocated for them.
pub fn decompress<T: pco::data_types::Number + Default>(src: &[u8]) -> Result<Vec<T>, ChunkError> {
    let bad = |_| ChunkError("bad pco stream");
    let (file, mut src) = FileDecompressor::new(src).map_err(bad)?;
    let mut out: Vec<T> = Vec::new();
    loop {
        match file.chunk_decompressor::<T, _>(src).map_err(bad)? {
            DecompressorItem::Chunk(mut chunk) => {
                let (start, n) = (out.len(), chunk.n());
                if start.saturating_add(n) > MAX_STREAM_VALUES {
                    return Err(ChunkError("pco stream declares too many values"));
                }
                out.resize(start + n, T::default());
                let mut done = 0;
                while done < n {
                    let progress = chunk.read(&mut out[start + done..]).map_err(bad)?;
                    if progress.n_processed == 0 {
                        return Err(ChunkError("truncated pco stream"));
                    }
                    done += progress.n_processed;
                }
                src = chunk.into_src();
            }
            DecompressorItem::EndOfData(_) => return Ok(out),
        }
    }
}

/// Values that are not integers, at most one in this many, still let a
/// chunk use [`Encoding::PcoInt`] (staleness markers, a stray fraction).
const MAX_EXCEPTION_RATIO: usize = 64;

/// The value as an `i64` when that converts back to the same bits.
fn exact_int(v: f64) -> Option<i64> {
    let i = v as i64;
    ((i as f64).to_bits() == v.to_bits()).then_some(i)
}

fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_uvarint(bytes: &[u8], pos: &mut usize) -> Result<u64, ChunkError> {
    let (mut v, mut shift) = (0u64, 0u32);
    loop {
        let b = *bytes.get(*pos).ok_or(ChunkError("truncated pco chunk"))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(ChunkError("pco chunk varint too long"));
        }
    }
}

/// Compresses one stream with pco's defaults (automatic mode detection).
fn compress<T: pco::data_types::Number>(
    nums: &[T],
    cfg: &ChunkConfig,
) -> Result<Vec<u8>, ChunkError> {
    simple_compress(nums, cfg).map_err(|_| ChunkError("pco cannot encode the chunk"))
}

/// Compresses timestamps. At an exact step, pco's automatic mode detection
/// pays for mode metadata that cannot help: classic mode halves such a
/// stream in a 2 h block (55 → 36 bytes for 480 samples, 0.12 → 0.07
/// bytes/sample). Checking the steps costs far less than compressing twice
/// and keeping the smaller.
///
/// Scraped timestamps jitter by a few milliseconds around the scrape step,
/// which pco's automatic choice takes as first-order deltas: their spread is
/// twice the jitter's. Split into multiples of the step and the remainder
/// (pco's `IntMult` mode), the remainder carries the jitter once: ±5 ms of
/// jitter at 15 s take 0.45 instead of 0.54 bytes/sample in a day, 0.59
/// instead of 0.66 in a 2 h block. Whether the step found is really the
/// data's is not known up front, so both are compressed and the smaller
/// kept; the mode is in the stream, so reading needs nothing new.
fn compress_timestamps(ts: &[i64]) -> Result<Vec<u8>, ChunkError> {
    let gap = |a: i64, b: i64| b.checked_sub(a);
    if ts
        .windows(3)
        .all(|w| gap(w[1], w[2]).is_some_and(|d| gap(w[0], w[1]) == Some(d)))
    {
        return compress(
            ts,
            &ChunkConfig::default().with_mode_spec(pco::ModeSpec::Classic),
        );
    }
    let auto = compress(ts, &ChunkConfig::default())?;
    let Some(step) = typical_step(ts) else {
        return Ok(auto);
    };
    let stepped = compress(
        ts,
        &ChunkConfig::default().with_mode_spec(pco::ModeSpec::TryIntMult(step)),
    )?;
    Ok(if stepped.len() < auto.len() {
        stepped
    } else {
        auto
    })
}

/// The step timestamps keep on average, in whole milliseconds: the mean of
/// the gaps within a tenth of the median gap (so missed scrapes and pauses
/// do not count), where at least half the gaps are. `None` for fewer than
/// three timestamps, a median under 2 ms, or gaps with no typical size.
fn typical_step(ts: &[i64]) -> Option<u64> {
    let mut gaps: Vec<i64> = ts.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    if gaps.len() < 2 {
        return None;
    }
    let mid = gaps.len() / 2;
    let median = *gaps.select_nth_unstable(mid).1;
    if median < 2 {
        return None;
    }
    let tolerance = median / 10;
    let (mut sum, mut n) = (0i128, 0i128);
    for &g in &gaps {
        if g.abs_diff(median) <= tolerance.unsigned_abs() {
            sum += i128::from(g);
            n += 1;
        }
    }
    if n * 2 < gaps.len() as i128 {
        return None;
    }
    u64::try_from((sum + n / 2) / n).ok().filter(|s| *s >= 2)
}

/// Encodes samples (timestamps increasing) in the smaller of the two pco
/// encodings (both are tried when the values allow integers: compaction
/// runs once a day, and a few values beat either rule of thumb); returns
/// which one with the bytes.
pub fn encode(samples: &[Sample]) -> Result<(Encoding, Vec<u8>), ChunkError> {
    let ts: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
    let ts = compress_timestamps(&ts)?;
    let mut out = Vec::with_capacity(ts.len() + samples.len() + 16);
    put_uvarint(&mut out, ts.len() as u64);
    out.extend_from_slice(&ts);
    // Integers, with each exception replaced by the previous integer so the
    // deltas pco takes stay small.
    let mut ints = Vec::with_capacity(samples.len());
    let mut exceptions = Vec::new();
    let mut last = 0i64;
    for (i, s) in samples.iter().enumerate() {
        match exact_int(s.value) {
            Some(v) => {
                last = v;
                ints.push(v);
            }
            None => {
                exceptions.push((i, s.value.to_bits()));
                ints.push(last);
            }
        }
    }
    if exceptions.len() * MAX_EXCEPTION_RATIO <= samples.len() {
        put_uvarint(&mut out, exceptions.len() as u64);
        let mut prev = 0usize;
        for (i, bits) in exceptions {
            put_uvarint(&mut out, (i - prev) as u64);
            out.extend_from_slice(&bits.to_le_bytes());
            prev = i;
        }
        let vs = compress(&ints, &ChunkConfig::default())?;
        out.extend_from_slice(&vs);
        return Ok((Encoding::PcoInt, out));
    }
    let vs: Vec<f64> = samples.iter().map(|s| s.value).collect();
    let vs = compress(&vs, &ChunkConfig::default())?;
    out.extend_from_slice(&vs);
    Ok((Encoding::Pco, out))
}

/// Decodes the samples in `[mint, maxt]` of a chunk in one of the pco
/// encodings and appends them to `out`.
pub fn decode_into(
    encoding: Encoding,
    bytes: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    let mut pos = 0usize;
    let len = get_uvarint(bytes, &mut pos)?;
    let end = pos
        .checked_add(usize::try_from(len).map_err(|_| ChunkError("pco chunk length too long"))?)
        .filter(|e| *e <= bytes.len())
        .ok_or(ChunkError("truncated pco chunk"))?;
    let ts: Vec<i64> = decompress(&bytes[pos..end])?;
    let vs: Vec<f64> = if encoding == Encoding::PcoInt {
        pos = end;
        let count = get_uvarint(bytes, &mut pos)?;
        if count > ts.len() as u64 {
            return Err(ChunkError("more exceptions than samples"));
        }
        let mut exceptions = Vec::with_capacity(count as usize);
        let mut at = 0u64;
        for _ in 0..count {
            at = at.saturating_add(get_uvarint(bytes, &mut pos)?);
            let raw: [u8; 8] = bytes
                .get(pos..pos + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or(ChunkError("truncated pco chunk"))?;
            pos += 8;
            exceptions.push((at, f64::from_bits(u64::from_le_bytes(raw))));
        }
        let ints: Vec<i64> = decompress(&bytes[pos..])?;
        let mut vs: Vec<f64> = ints.into_iter().map(|i| i as f64).collect();
        for (i, v) in exceptions {
            *vs.get_mut(i as usize)
                .ok_or(ChunkError("pco exception out of range"))? = v;
        }
        vs
    } else {
        decompress(&bytes[end..])?
    };
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
        Encoding::Pco | Encoding::PcoInt => decode_into(encoding, bytes, mint, maxt, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{STALE_NAN_BITS, stale_nan};
    use crate::util::xorshift;

    #[test]
    fn a_stream_declaring_billions_of_values_is_refused_without_allocating() {
        // Found by the pco_chunk_decode fuzz target: pco allocated 4 GiB for
        // what this 70-byte header declared.
        let bytes = [
            0xb3, 0x00, 0x70, 0x63, 0x6f, 0x21, 0x00, 0x00, 0x00, 0xa5, 0x3e, 0x3e, 0x00, 0xad,
            0xad, 0xad, 0xad, 0x3e, 0x3e, 0x86, 0x86, 0xa4, 0xad, 0xad, 0xad, 0xad, 0xad, 0xad,
            0xad, 0xad, 0xad, 0xad, 0xad, 0xad, 0xad, 0xad, 0x56, 0xad, 0xad, 0xad, 0xad, 0xad,
            0xad, 0xad, 0xad, 0xad, 0x52, 0x86, 0x86, 0x86, 0x00, 0x8a, 0x00, 0x70, 0x63, 0x6f,
            0x21, 0x02, 0x2d, 0x40, 0x00, 0xfd, 0x00, 0xdd, 0x00, 0x00, 0x28, 0x3e, 0x00, 0x86,
        ];
        for enc in [Encoding::Pco, Encoding::PcoInt] {
            assert!(decode_any(enc, &bytes, i64::MIN, i64::MAX, &mut Vec::new()).is_err());
        }
    }

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
        let (enc, bytes) = encode(&samples).unwrap();
        // One stale marker among integers: still the integer encoding.
        assert_eq!(enc, Encoding::PcoInt);
        let mut got = Vec::new();
        decode_into(enc, &bytes, i64::MIN, i64::MAX, &mut got).unwrap();
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
            enc,
            &bytes,
            samples[10].timestamp_ms,
            samples[19].timestamp_ms,
            &mut part,
        )
        .unwrap();
        assert_eq!(part.len(), 10);
        for cut in [0, 1, 5, bytes.len() / 2, bytes.len() - 1] {
            let _ = decode_into(enc, &bytes[..cut], i64::MIN, i64::MAX, &mut Vec::new());
        }
    }

    #[test]
    fn exact_step_timestamps_use_classic_mode() {
        // A 2 h block at 15 s: automatic mode detection wrote 55 bytes of
        // timestamps, classic mode writes 36.
        let samples: Vec<Sample> = (0..480)
            .map(|i| Sample {
                timestamp_ms: 1_790_000_000_123 + i * 15_000,
                value: i as f64,
            })
            .collect();
        let (enc, bytes) = encode(&samples).unwrap();
        let mut pos = 0;
        let ts_len = get_uvarint(&bytes, &mut pos).unwrap();
        assert!(ts_len <= 40, "{ts_len} bytes of timestamps");
        let mut got = Vec::new();
        decode_any(enc, &bytes, i64::MIN, i64::MAX, &mut got).unwrap();
        assert_eq!(got, samples);
        // Jittered timestamps still round-trip (automatic mode).
        let jittered: Vec<Sample> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| Sample {
                timestamp_ms: s.timestamp_ms + (i as i64 * 7919) % 11 - 5,
                value: s.value,
            })
            .collect();
        let (enc, bytes) = encode(&jittered).unwrap();
        let mut got = Vec::new();
        decode_any(enc, &bytes, i64::MIN, i64::MAX, &mut got).unwrap();
        assert_eq!(got, jittered);
    }

    #[test]
    fn jittered_scrape_timestamps_are_split_at_their_step() {
        // A day at 15 s with ±5 ms of jitter, a few missed scrapes, and an
        // offset that puts some timestamps on either side of a multiple of
        // the step: pco's automatic choice took 0.54 bytes/sample.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let ts: Vec<i64> = (0..5760i64)
            .filter(|i| i % 997 != 0)
            .map(|i| 1_790_000_010_000 + i * 15_000 + (xorshift(&mut x) % 11) as i64 - 5)
            .collect();
        assert_eq!(typical_step(&ts), Some(15_000));
        let bytes = compress_timestamps(&ts).unwrap();
        let auto = compress(&ts, &ChunkConfig::default()).unwrap();
        let per_sample = bytes.len() as f64 / ts.len() as f64;
        assert!(
            per_sample < 0.47 && bytes.len() * 100 < auto.len() * 90,
            "{per_sample:.3} bytes/sample, pco's default {} bytes, ours {}",
            auto.len(),
            bytes.len()
        );
        assert_eq!(decompress::<i64>(&bytes).unwrap(), ts);
        // Timestamps with no step (events) keep pco's own choice, never
        // larger than it.
        let mut t = 1_790_000_000_000i64;
        let events: Vec<i64> = (0..3000)
            .map(|_| {
                t += 1 + (xorshift(&mut x) % 40_000) as i64;
                t
            })
            .collect();
        let bytes = compress_timestamps(&events).unwrap();
        assert!(bytes.len() <= compress(&events, &ChunkConfig::default()).unwrap().len());
        assert_eq!(decompress::<i64>(&bytes).unwrap(), events);
    }

    #[test]
    fn the_typical_step_ignores_gaps_and_needs_a_majority() {
        assert_eq!(typical_step(&[0, 10]), None);
        assert_eq!(typical_step(&[0, 1, 2, 4]), None);
        // Pauses and a late scrape do not move the step.
        assert_eq!(
            typical_step(&[0, 1_000, 2_001, 2_999, 60_000, 61_000, 62_000]),
            Some(1_000)
        );
        // Gaps of no common size.
        assert_eq!(typical_step(&[0, 100, 300, 700, 1_500, 3_100]), None);
        // Extreme timestamps neither overflow nor panic.
        let extreme = [i64::MIN, 0, i64::MAX];
        assert_eq!(typical_step(&extreme), Some(i64::MAX as u64));
        assert_eq!(
            decompress::<i64>(&compress_timestamps(&extreme).unwrap()).unwrap(),
            extreme
        );
    }

    #[test]
    fn integers_shrink_and_fractions_fall_back_bit_exact() {
        let at = |i: i64| 1_700_000_000_000 + i * 15_000;
        // Byte gauges: multiples of 4096 on a random walk, stored as f64.
        let (mut v, mut x) = (1e9_f64, 0x9e37_79b9_7f4a_7c15_u64);
        let gauge: Vec<Sample> = (0..5760)
            .map(|i| {
                v += ((xorshift(&mut x) % 2048) as f64 - 1024.0) * 4096.0;
                Sample {
                    timestamp_ms: at(i),
                    value: v,
                }
            })
            .collect();
        let (enc, int_bytes) = encode(&gauge).unwrap();
        assert_eq!(enc, Encoding::PcoInt);
        let floats = {
            let vs: Vec<f64> = gauge.iter().map(|s| s.value).collect();
            simple_compress(&vs, &ChunkConfig::default()).unwrap()
        };
        assert!(
            int_bytes.len() * 5 / 4 < floats.len(),
            "{} vs {}",
            int_bytes.len(),
            floats.len()
        );
        // Fractions, -0.0, infinities and NaN payloads come back bit for bit.
        let odd = [
            0.5,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e300,
            -7.0,
            3.25,
        ];
        let mixed: Vec<Sample> = (0..4000)
            .map(|i| Sample {
                timestamp_ms: at(i),
                value: if i % 500 == 0 {
                    odd[(i / 500) as usize]
                } else {
                    i as f64
                },
            })
            .collect();
        let fractional: Vec<Sample> = (0..100)
            .map(|i| Sample {
                timestamp_ms: at(i),
                value: i as f64 / 3.0,
            })
            .collect();
        for (samples, want) in [(&mixed, Encoding::PcoInt), (&fractional, Encoding::Pco)] {
            let (enc, bytes) = encode(samples).unwrap();
            assert_eq!(enc, want);
            let mut got = Vec::new();
            decode_any(enc, &bytes, i64::MIN, i64::MAX, &mut got).unwrap();
            assert_eq!(got.len(), samples.len());
            for (a, b) in got.iter().zip(samples.iter()) {
                assert_eq!(
                    (a.timestamp_ms, a.value.to_bits()),
                    (b.timestamp_ms, b.value.to_bits())
                );
            }
        }
    }
}
