//! The chunk codec: Gorilla-style delta-of-delta timestamps and XOR'd float
//! bits, one series' consecutive samples per chunk. The byte layout is written
//! down in `FORMAT.md`; values round-trip bit-exact (StaleNaN included).

use crate::model::Sample;

/// Most samples one chunk holds (the count is a `u16` in the header).
pub const MAX_CHUNK_SAMPLES: usize = u16::MAX as usize;

/// A chunk that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("corrupt chunk: {0}")]
pub struct ChunkError(pub &'static str);

/// Appends bits to a byte vector, most significant bit first.
#[derive(Clone, Debug, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Free bits in the last byte (0 = byte-aligned).
    free: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << self.free;
        }
    }

    /// Writes the low `n` (at most 64) bits of `value`, most significant
    /// first, up to a byte at a time: bit by bit, a float value's 50-odd
    /// significant bits were most of the encoder's time at ingest.
    fn write_bits(&mut self, value: u64, n: u8) {
        debug_assert!(n <= 64);
        let mut n = n;
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            // The next `take` bits of the `n` left; take <= 8, n - take < 64.
            let part = (value >> (n - take)) & ((1u64 << take) - 1);
            let last = self.bytes.len() - 1;
            self.bytes[last] |= (part as u8) << (self.free - take);
            self.free -= take;
            n -= take;
        }
    }

    fn write_byte_aligned(&mut self, data: &[u8]) {
        debug_assert_eq!(self.free, 0);
        self.bytes.extend_from_slice(data);
    }
}

/// Reads bits written by [`BitWriter`].
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn read_bit(&mut self) -> Result<bool, ChunkError> {
        let byte = self
            .bytes
            .get(self.pos / 8)
            .ok_or(ChunkError("truncated bit stream"))?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1 == 1;
        self.pos += 1;
        Ok(bit)
    }

    /// Reads `n` (at most 64) bits at once from a 128-bit big-endian window:
    /// bit by bit, decoding spent most of its time here.
    fn read_bits(&mut self, n: u8) -> Result<u64, ChunkError> {
        debug_assert!(n <= 64);
        if n == 0 {
            return Ok(0);
        }
        let end = self.pos + usize::from(n);
        if end > self.bytes.len() * 8 {
            return Err(ChunkError("truncated bit stream"));
        }
        let byte = self.pos / 8;
        let window = match self.bytes.get(byte..byte + 16) {
            Some(w) => u128::from_be_bytes(w.try_into().unwrap_or([0; 16])),
            None => {
                let mut buf = [0u8; 16];
                let tail = &self.bytes[byte..];
                buf[..tail.len()].copy_from_slice(tail);
                u128::from_be_bytes(buf)
            }
        };
        // At most 7 + 64 bits of the 128 are used, so neither shift overflows.
        let v = (window << (self.pos % 8)) >> (128 - u32::from(n));
        self.pos = end;
        Ok(v as u64)
    }

    fn read_uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.read_bits(8)?;
            v |= (b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ChunkError("varint too long"))
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Builds one chunk sample by sample; the bytes are valid after every append.
#[derive(Clone, Debug)]
pub struct ChunkEncoder {
    w: BitWriter,
    count: u16,
    min_t: i64,
    t: i64,
    t_delta: i64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An empty chunk.
    pub fn new() -> Self {
        let mut w = BitWriter::default();
        w.write_byte_aligned(&[0, 0]);
        ChunkEncoder {
            w,
            count: 0,
            min_t: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: u8::MAX,
            trailing: 0,
        }
    }

    /// Rebuilds the encoder of a stored chunk so more samples can follow.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChunkError> {
        let mut enc = ChunkEncoder::new();
        for s in decode(bytes)? {
            enc.append(s.timestamp_ms, s.value);
        }
        Ok(enc)
    }

    /// Appends a sample. The caller keeps timestamps increasing and stays
    /// under [`MAX_CHUNK_SAMPLES`].
    pub fn append(&mut self, t: i64, v: f64) {
        let bits = v.to_bits();
        match self.count {
            0 => {
                let mut head = Vec::with_capacity(18);
                put_uvarint(&mut head, zigzag(t));
                head.extend_from_slice(&bits.to_be_bytes());
                self.w.write_byte_aligned(&head);
                self.min_t = t;
            }
            1 => {
                let delta = t.wrapping_sub(self.t);
                let mut head = Vec::with_capacity(10);
                put_uvarint(&mut head, zigzag(delta));
                self.w.write_byte_aligned(&head);
                self.t_delta = delta;
                self.write_value(bits);
            }
            _ => {
                let delta = t.wrapping_sub(self.t);
                let dod = delta.wrapping_sub(self.t_delta);
                self.write_dod(dod);
                self.t_delta = delta;
                self.write_value(bits);
            }
        }
        self.t = t;
        self.v = bits;
        self.count += 1;
        let c = self.count.to_be_bytes();
        self.w.bytes[0] = c[0];
        self.w.bytes[1] = c[1];
    }

    fn write_dod(&mut self, dod: i64) {
        // Prometheus' buckets: most scrapes land in the first one or two.
        let w = &mut self.w;
        if dod == 0 {
            w.write_bit(false);
        } else if (-(1 << 13) + 1..=(1 << 13)).contains(&dod) {
            w.write_bits(0b10, 2);
            w.write_bits(dod as u64 & ((1 << 14) - 1), 14);
        } else if (-(1 << 16) + 1..=(1 << 16)).contains(&dod) {
            w.write_bits(0b110, 3);
            w.write_bits(dod as u64 & ((1 << 17) - 1), 17);
        } else if (-(1 << 19) + 1..=(1 << 19)).contains(&dod) {
            w.write_bits(0b1110, 4);
            w.write_bits(dod as u64 & ((1 << 20) - 1), 20);
        } else {
            w.write_bits(0b1111, 4);
            w.write_bits(dod as u64, 64);
        }
    }

    fn write_value(&mut self, bits: u64) {
        let xor = bits ^ self.v;
        if xor == 0 {
            self.w.write_bit(false);
            return;
        }
        self.w.write_bit(true);
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if self.leading != u8::MAX && leading >= self.leading && trailing >= self.trailing {
            self.w.write_bit(false);
            let sig = 64 - self.leading - self.trailing;
            self.w.write_bits(xor >> self.trailing, sig);
        } else {
            self.w.write_bit(true);
            let sig = 64 - leading - trailing;
            self.w.write_bits(u64::from(leading), 5);
            // 64 significant bits do not fit in 6 bits; 0 stands for 64.
            self.w.write_bits(u64::from(sig & 63), 6);
            self.w.write_bits(xor >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the chunk holds no sample.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// First timestamp (meaningless when empty).
    pub fn min_t(&self) -> i64 {
        self.min_t
    }

    /// Last timestamp (meaningless when empty).
    pub fn max_t(&self) -> i64 {
        self.t
    }

    /// Last value's bits (meaningless when empty).
    pub fn last_value_bits(&self) -> u64 {
        self.v
    }

    /// The encoded chunk.
    pub fn bytes(&self) -> &[u8] {
        &self.w.bytes
    }
}

/// Decodes every sample of a chunk. Never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let mut out = Vec::new();
    decode_into(bytes, i64::MIN, i64::MAX, &mut out)?;
    Ok(out)
}

/// Decodes the samples in `[mint, maxt]` and appends them to `out`.
pub fn decode_into(
    bytes: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    if bytes.len() < 2 {
        return Err(ChunkError("shorter than its header"));
    }
    let count = u16::from_be_bytes([bytes[0], bytes[1]]);
    // A sample takes at least one bit after the first, so the count is bounded
    // by the length: no allocation is sized from an untrusted header alone.
    if usize::from(count) > 2 + bytes.len() * 8 {
        return Err(ChunkError("sample count larger than the data"));
    }
    let mut r = BitReader { bytes, pos: 16 };
    let (mut t, mut delta, mut v) = (0i64, 0i64, 0u64);
    let (mut leading, mut trailing) = (0u8, 0u8);
    let mut previous = i64::MIN;
    for i in 0..count {
        match i {
            0 => {
                t = unzigzag(r.read_uvarint()?);
                v = r.read_bits(64)?;
            }
            1 => {
                delta = unzigzag(r.read_uvarint()?);
                t = t.wrapping_add(delta);
                v = read_value(&mut r, v, &mut leading, &mut trailing)?;
            }
            _ => {
                let dod = read_dod(&mut r)?;
                delta = delta.wrapping_add(dod);
                t = t.wrapping_add(delta);
                v = read_value(&mut r, v, &mut leading, &mut trailing)?;
            }
        }
        // The encoder only writes increasing timestamps; anything else is
        // damage (found by the `chunk_decode` fuzz target), and stopping at
        // `maxt` relies on the order.
        if i > 0 && t <= previous {
            return Err(ChunkError("timestamps do not increase"));
        }
        previous = t;
        if t > maxt {
            break;
        }
        if t >= mint {
            out.push(Sample {
                timestamp_ms: t,
                value: f64::from_bits(v),
            });
        }
    }
    Ok(())
}

fn read_dod(r: &mut BitReader) -> Result<i64, ChunkError> {
    let mut prefix = 0;
    while prefix < 4 && r.read_bit()? {
        prefix += 1;
    }
    let bits = match prefix {
        0 => return Ok(0),
        1 => 14,
        2 => 17,
        3 => 20,
        _ => return Ok(r.read_bits(64)? as i64),
    };
    // The buckets hold -(2^(n-1)) + 1 ..= 2^(n-1) (Prometheus' ranges, what
    // `write_dod` writes): a field above 2^(n-1) is negative, 2^(n-1) itself
    // is not. Plain sign extension read +2^(n-1) as -2^(n-1), so a scrape
    // arriving exactly 8.192 s late came back 16.384 s early (found by the
    // `chunk_decode` fuzz target).
    let raw = r.read_bits(bits)? as i64;
    let half = 1i64 << (bits - 1);
    Ok(if raw > half {
        raw - (1i64 << bits)
    } else {
        raw
    })
}

fn read_value(
    r: &mut BitReader,
    prev: u64,
    leading: &mut u8,
    trailing: &mut u8,
) -> Result<u64, ChunkError> {
    if !r.read_bit()? {
        return Ok(prev);
    }
    if r.read_bit()? {
        let l = r.read_bits(5)? as u8;
        let mut sig = r.read_bits(6)? as u8;
        if sig == 0 {
            sig = 64;
        }
        if u32::from(l) + u32::from(sig) > 64 {
            return Err(ChunkError("value window out of range"));
        }
        *leading = l;
        *trailing = 64 - l - sig;
    }
    let sig = 64 - *leading - *trailing;
    if sig == 0 {
        return Err(ChunkError("value window is empty"));
    }
    let bits = r.read_bits(sig)?;
    Ok(prev ^ (bits << *trailing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_delta_of_delta_bucket_edge_round_trips() {
        let mut t = 1_700_000_000_000i64;
        let mut delta = 15_000i64;
        let mut enc = ChunkEncoder::new();
        let mut want = Vec::new();
        let edges = [
            0,
            1,
            -1,
            8191,
            8192,
            -8191,
            -8192,
            8193,
            65_535,
            65_536,
            -65_535,
            -65_536,
            65_537,
            524_287,
            524_288,
            -524_287,
            -524_288,
            524_289,
            1 << 40,
        ];
        for (i, dod) in std::iter::once(0).chain(edges).enumerate() {
            if i > 1 {
                delta += dod;
            }
            t += delta.max(1);
            enc.append(t, i as f64);
            want.push(t);
        }
        let got: Vec<i64> = decode(enc.bytes())
            .unwrap()
            .iter()
            .map(|s| s.timestamp_ms)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn write_bits_matches_writing_bit_by_bit() {
        let mut rng = fastrand::Rng::with_seed(11);
        let (mut fast, mut slow) = (BitWriter::default(), BitWriter::default());
        for _ in 0..5_000 {
            let n = rng.u8(0..=64);
            let value = rng.u64(..);
            fast.write_bits(value, n);
            for i in (0..n).rev() {
                slow.write_bit((value >> i) & 1 == 1);
            }
            assert_eq!((&fast.bytes, fast.free), (&slow.bytes, slow.free));
        }
    }

    #[test]
    fn timestamps_that_do_not_increase_are_damage() {
        // Found by the chunk_decode fuzz target: decoded to timestamps that
        // went backwards, which no encoder writes.
        let bytes = [
            0x00, 0x0a, 0xff, 0xff, 0x7a, 0x51, 0x27, 0x85, 0x61, 0x00, 0x00, 0x00, 0x00, 0x15,
            0x00, 0x61, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00,
        ];
        assert!(decode(&bytes).is_err());
    }
    use crate::model::{STALE_NAN_BITS, stale_nan};

    fn roundtrip(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut enc = ChunkEncoder::new();
        for &(t, v) in samples {
            enc.append(t, v);
        }
        let got = decode(enc.bytes()).unwrap();
        assert_eq!(got.len(), samples.len());
        for (g, &(t, v)) in got.iter().zip(samples) {
            assert_eq!(g.timestamp_ms, t);
            assert_eq!(g.value.to_bits(), v.to_bits(), "value at {t}");
        }
        let again = ChunkEncoder::from_bytes(enc.bytes()).unwrap();
        assert_eq!(again.bytes(), enc.bytes());
        enc.bytes().to_vec()
    }

    #[test]
    fn regular_scrapes_compress_well() {
        let samples: Vec<(i64, f64)> = (0..240)
            .map(|i| (1_700_000_000_000 + i * 15_000 + (i % 3), (i * 7) as f64))
            .collect();
        let bytes = roundtrip(&samples);
        assert!(bytes.len() < 240 * 3, "{} bytes", bytes.len());
        let constant: Vec<(i64, f64)> = (0..240).map(|i| (i * 15_000, 1.0)).collect();
        assert!(roundtrip(&constant).len() < 80);
    }

    #[test]
    fn odd_values_and_timestamps_round_trip_bit_exact() {
        roundtrip(&[
            (-5, stale_nan()),
            (0, f64::NAN),
            (1, f64::INFINITY),
            (2, -0.0),
            (3, f64::MIN_POSITIVE),
        ]);
        roundtrip(&[
            (i64::MIN + 1, 1.5),
            (0, -1.5),
            (i64::MAX - 10, stale_nan()),
            (i64::MAX, 3.25e300),
        ]);
        roundtrip(&[(10, 1.0)]);
        roundtrip(&[]);
        let got = decode(&roundtrip(&[(1, stale_nan())])).unwrap();
        assert_eq!(got[0].value.to_bits(), STALE_NAN_BITS);
    }

    #[test]
    fn range_decoding_and_garbage() {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 10, i as f64)).collect();
        let bytes = roundtrip(&samples);
        let mut out = Vec::new();
        decode_into(&bytes, 100, 200, &mut out).unwrap();
        assert_eq!(out.len(), 11);
        assert!(decode(&[]).is_err());
        assert!(decode(&[0xff, 0xff, 1]).is_err());
        for cut in 2..bytes.len() - 1 {
            // Truncated chunks error out or decode a prefix; never panic.
            let _ = decode(&bytes[..cut]);
        }
    }
}
