//! Prometheus remote_write 1.0 wire messages (`prompb.WriteRequest` and the
//! types it holds), declared with prost's derive so no protoc runs at build
//! time; field numbers are those of Prometheus' `types.proto`/`remote.proto`.
//!
//! The sender does not build these structs for every request: a series'
//! labels are encoded once ([`encode_labels`]) and reused, and
//! [`RequestBuilder`] writes the same bytes prost would (a unit test checks
//! that by decoding with the structs).

use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, message};

/// The request body before snappy compression.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    /// The series and their samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series: sorted labels and samples in time order.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    /// Labels sorted by name, `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Samples, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// One label pair.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One sample.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// Value (stale markers are the special NaN bit pattern, kept exactly).
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// A series' labels as the `labels` fields of a `TimeSeries`, ready to copy
/// into any request.
pub fn encode_labels(labels: &crate::model::Labels) -> Vec<u8> {
    let mut out = Vec::new();
    for l in labels.iter() {
        let label = Label {
            name: l.name.clone(),
            value: l.value.clone(),
        };
        message::encode(1, &label, &mut out);
    }
    out
}

/// Writes a `WriteRequest` series by series.
#[derive(Default)]
pub struct RequestBuilder {
    buf: Vec<u8>,
    samples: usize,
    series: usize,
}

impl RequestBuilder {
    /// Appends one `TimeSeries` from its encoded labels and its samples
    /// (`(timestamp, value)`, oldest first).
    pub fn push(&mut self, labels: &[u8], samples: &[(i64, f64)]) {
        let body_len = labels.len()
            + samples
                .iter()
                .map(|&(t, v)| {
                    message::encoded_len(
                        2,
                        &Sample {
                            value: v,
                            timestamp: t,
                        },
                    )
                })
                .sum::<usize>();
        encode_key(1, WireType::LengthDelimited, &mut self.buf);
        encode_varint(body_len as u64, &mut self.buf);
        self.buf.reserve(body_len);
        self.buf.extend_from_slice(labels);
        for &(t, v) in samples {
            message::encode(
                2,
                &Sample {
                    value: v,
                    timestamp: t,
                },
                &mut self.buf,
            );
        }
        self.samples += samples.len();
        self.series += 1;
    }

    /// Samples pushed so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Series pushed so far.
    pub fn series(&self) -> usize {
        self.series
    }

    /// The protobuf bytes of the request.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Snappy block format (not the framed stream), as remote_write requires.
pub fn compress(body: &[u8]) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, STALE_NAN_BITS};

    #[test]
    fn builder_matches_prost_and_keeps_stale_markers() {
        let a = Labels::new([("__name__", "up"), ("job", "node"), ("box", "gpu-07")]);
        let b = Labels::new([("__name__", "x"), ("instance", "h:1")]);
        let stale = f64::from_bits(STALE_NAN_BITS);
        let mut builder = RequestBuilder::default();
        builder.push(
            &encode_labels(&a),
            &[(1000, 1.0), (2000, 0.0), (3000, stale)],
        );
        builder.push(&encode_labels(&b), &[(1000, -2.5)]);
        assert_eq!((builder.samples(), builder.series()), (4, 2));
        let bytes = builder.finish();
        let decoded = WriteRequest::decode(bytes.as_slice()).unwrap();
        let names: Vec<_> = decoded.timeseries[0]
            .labels
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(names, ["__name__", "box", "job"]);
        let s = &decoded.timeseries[0].samples;
        assert_eq!(s.len(), 3);
        assert_eq!((s[1].timestamp, s[1].value), (2000, 0.0));
        assert_eq!(s[2].value.to_bits(), STALE_NAN_BITS);
        // The same message built with prost's structs encodes identically.
        assert_eq!(decoded.encode_to_vec(), bytes);
        let packed = compress(&bytes).unwrap();
        let back = snap::raw::Decoder::new().decompress_vec(&packed).unwrap();
        assert_eq!(back, bytes);
    }
}
