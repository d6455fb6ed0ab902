//! Decoding a remote_write `WriteRequest` without copying its strings:
//! label names and values are borrowed from the decompressed body.
//!
//! prost's derived decoder allocates a `String` per label of every series of
//! every request, and the receiver then mostly hashes the pairs to find a
//! series the store already has. prost cannot decode into borrowed strings,
//! and the three messages take a page, so this is written here; a unit
//! test holds it to prost's results (and errors) on valid, cut and damaged
//! bodies.
//!
//! Labels stay bytes, and every series' pairs and samples go into one
//! vector each: the receiver checks UTF-8 only for series the store does
//! not have yet (a set equal to a stored one is valid by that fact), and
//! decoding allocates per request, not per series.

use thiserror::Error;

/// Why a body is not a `WriteRequest`.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The body ends inside a field.
    #[error("the body ends inside a field")]
    Truncated,
    /// A varint longer than 64 bits.
    #[error("a varint is longer than 64 bits")]
    VarintOverflow,
    /// Field number 0, or a wire type protobuf does not have.
    #[error("invalid field key {0}")]
    InvalidKey(u64),
    /// A known field sent with another wire type.
    #[error("field {field} has wire type {wire}, expected {expected}")]
    WireType {
        /// The field number.
        field: u32,
        /// The wire type sent.
        wire: u8,
        /// The wire type of the field.
        expected: u8,
    },
    /// A label name or value that is not UTF-8 (found by the receiver,
    /// which checks the labels of series new to the store).
    #[error("a label is not valid UTF-8")]
    Utf8,
    /// An end-group tag without its start, or groups nested too deep.
    #[error("unbalanced or too deeply nested groups")]
    Groups,
}

/// A decoded request: every series' label pairs and samples, one series
/// after another.
#[derive(Debug, Default, PartialEq)]
pub struct WriteRequestRef<'a> {
    /// Label pairs (name, value) as sent, not checked for UTF-8.
    pub labels: Vec<(&'a [u8], &'a [u8])>,
    /// Samples as `(timestamp ms, value)`, in the order sent.
    pub samples: Vec<(i64, f64)>,
    /// Per series, where its labels and its samples end in `labels` and
    /// `samples` (each starts where the previous series' end).
    pub ends: Vec<(usize, usize)>,
}

impl WriteRequestRef<'_> {
    /// Number of series.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Per series, the ranges of its labels and samples.
    #[cfg(test)]
    pub fn spans(
        &self,
    ) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> + '_ {
        let mut start = (0, 0);
        self.ends.iter().map(move |&end| {
            let span = (start.0..end.0, start.1..end.1);
            start = end;
            span
        })
    }
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;
/// Nesting of groups skipped, as prost's recursion limit.
const MAX_DEPTH: u32 = 100;

/// Decodes `prompb.WriteRequest`; fields other than the series, their
/// labels and samples (metadata, exemplars, histograms) are skipped.
#[cfg(test)]
pub fn decode_write_request(buf: &[u8]) -> Result<WriteRequestRef<'_>, WireError> {
    decode_write_request_known(buf, |_| None::<()>).map(|(request, _)| request)
}

/// [`decode_write_request`] for a receiver that knows series by their
/// label fields as sent: a series whose label fields come first, as one run
/// of bytes with no label field after it, is looked up by those bytes with
/// `known`. On a hit its labels are not decoded (its span in
/// [`WriteRequestRef::labels`] is empty) and the hit is returned in its
/// slot; bytes equal to ones decoded before decode to the same pairs. Each
/// slot also holds the run's bytes (`None` when the labels are not one
/// leading run), for the caller to remember.
pub fn decode_write_request_known<'a, T>(
    buf: &'a [u8],
    mut known: impl FnMut(&'a [u8]) -> Option<T>,
) -> Result<KnownRequest<'a, T>, WireError> {
    let mut r = Reader { buf };
    let mut out = WriteRequestRef::default();
    let mut slots = Vec::new();
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                let slot = time_series_known(r.message(field, wire)?, &mut out, &mut known)?;
                out.ends.push((out.labels.len(), out.samples.len()));
                slots.push(slot);
            }
            _ => r.skip(field, wire, 0)?,
        }
    }
    Ok((out, slots))
}

/// A request decoded by [`decode_write_request_known`]: per series, its
/// leading run of label fields and the hit found by it.
pub type KnownRequest<'a, T> = (WriteRequestRef<'a>, Vec<(Option<&'a [u8]>, Option<T>)>);

fn time_series_known<'a, T>(
    buf: &'a [u8],
    out: &mut WriteRequestRef<'a>,
    known: &mut impl FnMut(&'a [u8]) -> Option<T>,
) -> Result<(Option<&'a [u8]>, Option<T>), WireError> {
    // The leading run of label fields, framed but not decoded yet.
    let mut r = Reader { buf };
    loop {
        let before = r.buf;
        match r.key()? {
            Some((1, wire)) => {
                r.message(1, wire)?;
            }
            Some(_) => {
                r.buf = before;
                break;
            }
            None => break,
        }
    }
    let run = &buf[..buf.len() - r.buf.len()];
    let decode_run = |out: &mut WriteRequestRef<'a>| -> Result<(), WireError> {
        let mut r = Reader { buf: run };
        while let Some((field, wire)) = r.key()? {
            out.labels.push(label(r.message(field, wire)?)?);
        }
        Ok(())
    };
    // The rest as `time_series` decodes it; a label field here means the
    // run is not the whole set.
    let mut mixed = false;
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                if !mixed {
                    mixed = true;
                    decode_run(out)?;
                }
                out.labels.push(label(r.message(field, wire)?)?);
            }
            2 => out.samples.push(sample(r.message(field, wire)?)?),
            _ => r.skip(field, wire, 0)?,
        }
    }
    if mixed || run.is_empty() {
        return Ok((None, None));
    }
    if let Some(hit) = known(run) {
        return Ok((Some(run), Some(hit)));
    }
    decode_run(out)?;
    Ok((Some(run), None))
}

fn label(buf: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    let mut r = Reader { buf };
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => name = r.bytes(field, wire)?,
            2 => value = r.bytes(field, wire)?,
            _ => r.skip(field, wire, 0)?,
        }
    }
    Ok((name, value))
}

fn sample(buf: &[u8]) -> Result<(i64, f64), WireError> {
    let mut r = Reader { buf };
    let (mut t, mut v) = (0i64, 0.0f64);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                expect(field, wire, FIXED64)?;
                v = f64::from_bits(r.fixed64()?);
            }
            2 => {
                expect(field, wire, VARINT)?;
                // int64: two's complement in ten bytes.
                t = r.varint()? as i64;
            }
            _ => r.skip(field, wire, 0)?,
        }
    }
    Ok((t, v))
}

fn expect(field: u32, wire: u8, expected: u8) -> Result<(), WireError> {
    if wire == expected {
        Ok(())
    } else {
        Err(WireError::WireType {
            field,
            wire,
            expected,
        })
    }
}

/// The unread rest of a message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let &b = self.buf.get(i).ok_or(WireError::Truncated)?;
            // The tenth byte holds the 64th bit only.
            if i == 9 && b > 1 {
                return Err(WireError::VarintOverflow);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError::VarintOverflow)
    }

    fn fixed64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("eight bytes")))
    }

    /// The next field's number and wire type; `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let field = (key >> 3) as u32;
        if key > u64::from(u32::MAX) || field == 0 || wire > FIXED32 {
            return Err(WireError::InvalidKey(key));
        }
        Ok(Some((field, wire)))
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| WireError::Truncated)?)
    }

    /// An embedded message field's bytes.
    fn message(&mut self, field: u32, wire: u8) -> Result<&'a [u8], WireError> {
        expect(field, wire, LEN)?;
        self.len_delimited()
    }

    /// A `string` field's bytes (checked for UTF-8 by the caller).
    fn bytes(&mut self, field: u32, wire: u8) -> Result<&'a [u8], WireError> {
        expect(field, wire, LEN)?;
        self.len_delimited()
    }

    /// Skips an unknown field (a group with everything in it).
    fn skip(&mut self, field: u32, wire: u8, depth: u32) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => {
                if depth >= MAX_DEPTH {
                    return Err(WireError::Groups);
                }
                loop {
                    let (f, w) = self.key()?.ok_or(WireError::Truncated)?;
                    if w == END_GROUP {
                        return if f == field {
                            Ok(())
                        } else {
                            Err(WireError::Groups)
                        };
                    }
                    self.skip(f, w, depth + 1)?;
                }
            }
            _ => Err(WireError::Groups),
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::remote::proto::{Label, Sample, TimeSeries, WriteRequest};

    /// A decoded body: per series, its label pairs and (timestamp, value bits).
    type Plain = Vec<(Vec<(String, String)>, Vec<(i64, u64)>)>;

    /// prost's view of a body, in this decoder's terms.
    fn with_prost(buf: &[u8]) -> Option<Plain> {
        let req = WriteRequest::decode(buf).ok()?;
        Some(
            req.timeseries
                .into_iter()
                .map(|ts| {
                    (
                        ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                        ts.samples
                            .iter()
                            .map(|s| (s.timestamp, s.value.to_bits()))
                            .collect(),
                    )
                })
                .collect(),
        )
    }

    /// This decoder's view, labels checked for UTF-8 as the receiver does.
    fn with_borrowed(buf: &[u8]) -> Option<Plain> {
        let req = decode_write_request(buf).ok()?;
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
        req.spans()
            .map(|(labels, samples)| {
                Some((
                    req.labels[labels]
                        .iter()
                        .map(|(n, v)| Some((text(n)?, text(v)?)))
                        .collect::<Option<Vec<_>>>()?,
                    req.samples[samples]
                        .iter()
                        .map(|&(t, v)| (t, v.to_bits()))
                        .collect(),
                ))
            })
            .collect()
    }

    fn request(seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let timeseries = (0..rng.usize(0..6))
            .map(|i| TimeSeries {
                labels: (0..rng.usize(0..5))
                    .map(|j| Label {
                        name: format!("l{j}"),
                        value: ["", "x", "数据", "a\"b"][rng.usize(0..4)].repeat(rng.usize(0..40)),
                    })
                    .collect(),
                samples: (0..rng.usize(0..4))
                    .map(|k| Sample {
                        value: [f64::NAN, -0.0, 1.5, f64::from_bits(0x7ff0000000000002)]
                            [rng.usize(0..4)],
                        timestamp: [-1, 0, i64::MAX, i64::MIN, 1_700_000_000_000 + k as i64]
                            [(i + k) % 5],
                    })
                    .collect(),
            })
            .collect();
        WriteRequest { timeseries }.encode_to_vec()
    }

    #[test]
    fn agrees_with_prost_on_valid_cut_and_damaged_bodies() {
        for seed in 0..300 {
            let body = request(seed);
            assert!(with_borrowed(&body).is_some(), "seed {seed}");
            assert_eq!(with_borrowed(&body), with_prost(&body), "seed {seed}");
            // Every prefix: both decode it the same way or both refuse it.
            for cut in 0..body.len() {
                assert_eq!(
                    with_borrowed(&body[..cut]),
                    with_prost(&body[..cut]),
                    "seed {seed}, cut at {cut}"
                );
            }
            // Single damaged bytes, unknown fields and groups among them.
            let mut rng = fastrand::Rng::with_seed(seed);
            for _ in 0..50 {
                let mut damaged = body.clone();
                if damaged.is_empty() {
                    break;
                }
                let at = rng.usize(0..damaged.len());
                damaged[at] = rng.u8(..);
                assert_eq!(
                    with_borrowed(&damaged),
                    with_prost(&damaged),
                    "seed {seed}, byte {at} = {}",
                    damaged[at]
                );
            }
        }
    }

    #[test]
    fn known_label_runs_skip_decoding_and_mixed_ones_are_not_keys() {
        let ts = |labels: &[(&str, &str)], samples: usize| TimeSeries {
            labels: labels
                .iter()
                .map(|&(n, v)| Label {
                    name: n.into(),
                    value: v.into(),
                })
                .collect(),
            samples: (0..samples)
                .map(|i| Sample {
                    value: 1.0,
                    timestamp: i as i64,
                })
                .collect(),
        };
        let a = ts(&[("__name__", "a"), ("job", "x")], 2);
        let b = ts(&[("__name__", "b")], 1);
        let key_a = TimeSeries {
            samples: vec![],
            ..a.clone()
        }
        .encode_to_vec();
        // b's labels after its sample, then another label: not one run.
        let mut mixed = ts(&[("__name__", "m")], 0).encode_to_vec();
        mixed.extend(ts(&[], 1).encode_to_vec());
        mixed.extend(ts(&[("job", "y")], 0).encode_to_vec());
        let mut body = WriteRequest {
            timeseries: vec![a, b],
        }
        .encode_to_vec();
        body.push(0x0a);
        body.push(mixed.len() as u8);
        body.extend(&mixed);
        let mut asked = Vec::new();
        let (req, slots) = decode_write_request_known(&body, |key| {
            asked.push(key.to_vec());
            (key == key_a).then_some(7)
        })
        .unwrap();
        assert_eq!(asked.len(), 2, "the mixed series is not looked up");
        assert_eq!(asked[0], key_a);
        assert_eq!(slots[0], (Some(&key_a[..]), Some(7)));
        assert!(slots[1].0.is_some() && slots[1].1.is_none());
        assert_eq!(slots[2], (None, None));
        let spans: Vec<_> = req.spans().collect();
        assert!(spans[0].0.is_empty(), "a hit's labels are not decoded");
        assert_eq!(spans[0].1.len(), 2);
        assert_eq!(
            req.labels[spans[1].0.clone()],
            [(&b"__name__"[..], &b"b"[..])]
        );
        assert_eq!(
            req.labels[spans[2].0.clone()],
            [(&b"__name__"[..], &b"m"[..]), (&b"job"[..], &b"y"[..])]
        );
        assert_eq!(spans[2].1.len(), 1);
        // Without hits it decodes as `decode_write_request`.
        let (all, _) = decode_write_request_known(&body, |_| None::<()>).unwrap();
        assert_eq!(all, decode_write_request(&body).unwrap());
        assert_eq!(all.labels.len(), 5);
    }

    #[test]
    fn unknown_fields_and_groups_are_skipped() {
        let mut body = request(7);
        // Field 3 (metadata) as a message, field 9 as a group holding a
        // varint, then field 5 as fixed32.
        body.extend([0x1a, 0x02, 0x08, 0x01]);
        body.extend([0x4b, 0x08, 0x96, 0x01, 0x4c]);
        body.extend([0x2d, 1, 2, 3, 4]);
        assert_eq!(with_borrowed(&body), with_prost(&body));
        assert!(with_borrowed(&body).is_some());
        // An end-group tag without its start.
        assert_eq!(
            decode_write_request(&[0x4c]).unwrap_err(),
            WireError::Groups
        );
        assert_eq!(
            decode_write_request(&[0xff; 11]).unwrap_err(),
            WireError::VarintOverflow
        );
    }
}
