//! Long-format CSV (one row per sample): opens in a spreadsheet or pandas.

use std::io::Write;

use chrono::{TimeZone, Utc};

use super::openmetrics::{format_value, label_text};
use crate::model::is_stale_nan;
use crate::storage::Series;

/// The header row.
pub const HEADER: [&str; 5] = ["timestamp_ms", "time", "metric", "labels", "value"];

/// Writes one row per sample: milliseconds, RFC 3339 UTC time, metric name,
/// the other labels as `{a="b"}`, value. Staleness markers are left out.
pub fn write(out: impl Write, series: &[Series]) -> Result<u64, csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER)?;
    let rows = write_rows(&mut w, series)?;
    w.flush()?;
    Ok(rows)
}

/// The rows of `series` (no header), for exports written part by part.
pub fn write_rows<W: Write>(w: &mut csv::Writer<W>, series: &[Series]) -> Result<u64, csv::Error> {
    let mut rows = 0;
    for s in series {
        let metric = s.labels.metric_name().unwrap_or("");
        let labels = label_text(&s.labels);
        for sample in s.samples.iter().filter(|x| !is_stale_nan(x.value)) {
            let time = Utc
                .timestamp_millis_opt(sample.timestamp_ms)
                .single()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            w.write_record([
                sample.timestamp_ms.to_string(),
                time,
                metric.to_string(),
                labels.clone(),
                format_value(sample.value),
            ])?;
            rows += 1;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, Sample};

    #[test]
    fn round_trips_through_a_csv_reader() {
        let series = vec![Series {
            labels: Labels::new([("__name__", "x"), ("a", "1,2"), ("b", "q\"")]),
            samples: vec![Sample {
                timestamp_ms: 1_700_000_000_123,
                value: 0.5,
            }],
        }];
        let mut buf = Vec::new();
        assert_eq!(write(&mut buf, &series).unwrap(), 1);
        let mut r = csv::Reader::from_reader(buf.as_slice());
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "1700000000123");
        assert_eq!(&row[1], "2023-11-14T22:13:20.123Z");
        assert_eq!(&row[2], "x");
        assert_eq!(&row[3], "{a=\"1,2\",b=\"q\\\"\"}");
        assert_eq!(row[4].parse::<f64>().unwrap(), 0.5);
    }
}
