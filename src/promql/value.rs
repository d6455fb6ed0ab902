//! Values a PromQL expression evaluates to: scalars, strings, instant vectors
//! and range vectors (matrices), in the shapes the HTTP API returns.

use serde::Serialize;
use serde::ser::SerializeSeq;

use crate::model::Labels;

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Series labels (still holding `__name__` when `drop_name` is set).
    pub metric: Labels,
    /// The sample's own timestamp for raw selector output (what `timestamp()`
    /// reports), the evaluation time otherwise.
    pub t: i64,
    /// Value.
    pub f: f64,
    /// Prometheus 3 drops `__name__` late: operations that change a value's
    /// meaning mark the series, and the name goes when the result is returned.
    pub drop_name: bool,
}

/// A float at a time (milliseconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Milliseconds since the epoch.
    pub t: i64,
    /// Value.
    pub f: f64,
}

/// One series of a range vector.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    /// Labels.
    pub metric: Labels,
    /// Points in time order.
    pub points: Vec<Point>,
    /// See [`Sample::drop_name`].
    pub drop_name: bool,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number at the evaluation time.
    Scalar {
        /// Evaluation time (ms).
        t: i64,
        /// Value.
        f: f64,
    },
    /// A string at the evaluation time.
    String {
        /// Evaluation time (ms).
        t: i64,
        /// Value.
        s: String,
    },
    /// An instant vector; sample times are the evaluation time.
    Vector(Vec<Sample>),
    /// A range vector (range queries, or a range selector in an instant query).
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Formats a float as Prometheus does in JSON (`+Inf`, `-Inf`, `NaN`,
/// shortest round-trip decimal otherwise).
pub fn format_float(f: f64) -> String {
    PromFloat(f).to_string()
}

/// A float as Prometheus writes it, for writing without an allocation.
struct PromFloat(f64);

impl std::fmt::Display for PromFloat {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let f = self.0;
        if f.is_nan() {
            out.write_str("NaN")
        } else if f == f64::INFINITY {
            out.write_str("+Inf")
        } else if f == f64::NEG_INFINITY {
            out.write_str("-Inf")
        } else {
            // Prometheus writes strconv.FormatFloat(f, 'f', -1, 64): shortest
            // round-trip digits, never an exponent — what Rust's Display does.
            write!(out, "{f}")
        }
    }
}

impl Serialize for PromFloat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // serde_json writes a Display straight into its output.
        s.collect_str(self)
    }
}

/// `[<seconds float>, "<value>"]`, the API's sample pair.
struct Pair(i64, f64);

impl Serialize for Pair {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&(self.0 as f64 / 1000.0))?;
        seq.serialize_element(&PromFloat(self.1))?;
        seq.end()
    }
}

impl Serialize for Value {
    /// The API's `data` object: `{"resultType": ..., "result": ...}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct VecElem<'a> {
            metric: &'a Labels,
            value: Pair,
        }
        #[derive(Serialize)]
        struct MatElem<'a> {
            metric: &'a Labels,
            values: Vec<Pair>,
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("resultType", self.type_name())?;
        match self {
            Value::Scalar { t, f } => m.serialize_entry("result", &Pair(*t, *f))?,
            Value::String { t, s } => m.serialize_entry("result", &(*t as f64 / 1000.0, s))?,
            Value::Vector(v) => {
                let elems: Vec<VecElem> = v
                    .iter()
                    .map(|x| VecElem {
                        metric: &x.metric,
                        value: Pair(x.t, x.f),
                    })
                    .collect();
                m.serialize_entry("result", &elems)?
            }
            Value::Matrix(mat) => {
                let elems: Vec<MatElem> = mat
                    .iter()
                    .map(|x| MatElem {
                        metric: &x.metric,
                        values: x.points.iter().map(|p| Pair(p.t, p.f)).collect(),
                    })
                    .collect();
                m.serialize_entry("result", &elems)?
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_like_prometheus() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(1.5e-7), "0.00000015");
    }

    #[test]
    fn sample_pairs_write_values_as_prometheus_strings() {
        for (v, text) in [
            (1.0, r#"[1.5,"1"]"#),
            (-0.25, r#"[1.5,"-0.25"]"#),
            (f64::NEG_INFINITY, r#"[1.5,"-Inf"]"#),
            (f64::NAN, r#"[1.5,"NaN"]"#),
            (1e21, r#"[1.5,"1000000000000000000000"]"#),
        ] {
            assert_eq!(serde_json::to_string(&Pair(1500, v)).unwrap(), text);
        }
    }

    #[test]
    fn serializes_api_shape() {
        let v = Value::Vector(vec![Sample {
            metric: Labels::new([("a", "b")]),
            t: 1500,
            f: 2.0,
            drop_name: false,
        }]);
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(
            j,
            r#"{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1.5,"2"]}]}"#
        );
    }
}
