//! Exports of raw samples: one range, some selectors, one of three formats.
//! Shared by `GET /api/v1/export` and `infermon export --data-dir`.

use std::io::Write;

use super::{SnapshotError, Snapshotter, csv, openmetrics};
use crate::model::{METRIC_NAME, MatchOp, Matcher};
use crate::storage::{Querier, Series, StorageError};

/// Output format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// OpenMetrics text with timestamps.
    OpenMetrics,
    /// Long-format CSV.
    Csv,
    /// One JSON object per series per line: `{"metric":{...},"values":[[ms,v],...]}`.
    Json,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "openmetrics" | "om" => Ok(Self::OpenMetrics),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("format {other:?} is not openmetrics, csv or json")),
        }
    }
}

impl ExportFormat {
    /// The HTTP `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/x-ndjson",
        }
    }
}

/// Parses a time as the Prometheus API does (unix seconds or RFC 3339), or
/// a plain `YYYY-MM-DD` (UTC midnight) for exports by day.
pub fn parse_time(s: &str) -> Result<i64, String> {
    crate::model::parse_time_or_day(s).ok_or_else(|| {
        format!("cannot parse {s:?} as a time: use unix seconds, RFC 3339 or YYYY-MM-DD")
    })
}

/// The matcher sets of `match[]` selectors; every series when there are none.
pub fn matcher_groups(selectors: &[String]) -> Result<Vec<Vec<Matcher>>, String> {
    if selectors.is_empty() {
        return crate::promql::selector_matchers("{__name__=~\".+\"}").map_err(|e| e.to_string());
    }
    let mut groups = Vec::new();
    for sel in selectors {
        groups.extend(crate::promql::selector_matchers(sel).map_err(|e| e.to_string())?);
    }
    Ok(groups)
}

/// Every series any group matches, each once, sorted by labels.
pub fn select(
    querier: &dyn Querier,
    groups: &[Vec<Matcher>],
    start: i64,
    end: i64,
) -> Result<Vec<Series>, StorageError> {
    let mut series = Vec::new();
    for m in groups {
        series.extend(querier.select(m, start, end)?);
    }
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    series.dedup_by(|a, b| a.labels == b.labels);
    Ok(series)
}

/// Writes the export of `groups` over `[start, end]` in `format` one metric
/// family at a time, so memory holds one family's samples, never the whole
/// range (output as [`write`] of [`select`] gives, families in name order).
/// Returns the samples written.
pub fn stream(
    querier: &dyn Querier,
    groups: &[Vec<Matcher>],
    start: i64,
    end: i64,
    format: ExportFormat,
    out: &mut impl Write,
) -> Result<u64, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let written = match format {
        ExportFormat::Csv => {
            let mut w = ::csv::Writer::from_writer(&mut *out);
            w.write_record(csv::HEADER).map_err(|e| err(&e))?;
            let n = for_each_family(querier, groups, start, end, |_, family| {
                csv::write_rows(&mut w, family).map_err(|e| err(&e))
            })?;
            w.flush().map_err(|e| err(&e))?;
            n
        }
        ExportFormat::OpenMetrics => {
            let n = for_each_family(querier, groups, start, end, |name, family| {
                let refs: Vec<&Series> = family.iter().collect();
                openmetrics::write_family(&mut *out, name, &refs).map_err(|e| err(&e))
            })?;
            writeln!(out, "# EOF").map_err(|e| err(&e))?;
            n
        }
        ExportFormat::Json => for_each_family(querier, groups, start, end, |_, family| {
            write_json(&mut *out, family)
        })?,
    };
    out.flush().map_err(|e| err(&e))?;
    Ok(written)
}

/// Calls `each` with every metric name the groups select in `[start, end]`
/// (in name order) and that family's series; sums what it returns.
fn for_each_family(
    querier: &dyn Querier,
    groups: &[Vec<Matcher>],
    start: i64,
    end: i64,
    mut each: impl FnMut(&str, &[Series]) -> Result<u64, String>,
) -> Result<u64, String> {
    let mut names = std::collections::BTreeSet::new();
    for m in groups {
        names.extend(
            querier
                .label_values(METRIC_NAME, m, start, end)
                .map_err(|e| e.to_string())?,
        );
    }
    let mut total = 0;
    for name in &names {
        let by_name = Matcher::new(METRIC_NAME, MatchOp::Equal, name).map_err(|e| e.to_string())?;
        let family_groups: Vec<Vec<Matcher>> = groups
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.push(by_name.clone());
                m
            })
            .collect();
        let family = select(querier, &family_groups, start, end).map_err(|e| e.to_string())?;
        total += each(name, &family)?;
    }
    Ok(total)
}

/// A [`Write`] that hands 64 KiB pieces to an async reader (an HTTP
/// response body) through a bounded channel: the writer waits while the
/// reader is behind, and fails once the reader is gone (the client left),
/// which stops the export.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    /// Size of the pieces sent.
    pub const PIECE: usize = 64 << 10;

    /// A writer sending into `tx`; call from a blocking thread.
    pub fn new(tx: tokio::sync::mpsc::Sender<Vec<u8>>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(Self::PIECE),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::PIECE));
        self.tx.blocking_send(piece).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader went away")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

fn write_json(out: &mut impl Write, series: &[Series]) -> Result<u64, String> {
    let mut n = 0;
    for s in series {
        let values: Vec<(i64, f64)> = s
            .samples
            .iter()
            .filter(|x| !crate::model::is_stale_nan(x.value))
            .map(|x| (x.timestamp_ms, x.value))
            .collect();
        n += values.len() as u64;
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({"metric": s.labels, "values": values}),
        )
        .map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// Writes `series` in `format`.
pub fn write(
    out: &mut impl Write,
    series: &[Series],
    format: ExportFormat,
) -> Result<(), SnapshotError> {
    match format {
        ExportFormat::OpenMetrics => {
            openmetrics::write(out, series)?;
        }
        ExportFormat::Csv => {
            csv::write(&mut *out, series)?;
        }
        ExportFormat::Json => {
            write_json(out, series).map_err(|e| SnapshotError::Io(std::io::Error::other(e)))?;
        }
    }
    Ok(())
}

impl Snapshotter {
    /// Writes the samples of every series `groups` match in `[start, end]`
    /// to `out` in `format`, one metric family at a time (what
    /// `GET /api/v1/export` answers). Blocks: call it off the async threads.
    pub fn export(
        &self,
        groups: &[Vec<Matcher>],
        start: i64,
        end: i64,
        format: ExportFormat,
        out: &mut impl Write,
    ) -> Result<u64, String> {
        stream(self.querier.as_ref(), groups, start, end, format, out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::model::{Labels, Sample};
    use crate::storage::{AppendSample, Appender, MemoryStorage};

    /// Counts the most samples one `select` returned.
    struct Counting {
        inner: MemoryStorage,
        most: AtomicUsize,
    }

    impl Querier for Counting {
        fn select(
            &self,
            m: &[Matcher],
            a: i64,
            b: i64,
        ) -> Result<Vec<Series>, crate::storage::StorageError> {
            let out = self.inner.select(m, a, b)?;
            let n = out.iter().map(|s| s.samples.len()).sum();
            self.most.fetch_max(n, Ordering::Relaxed);
            Ok(out)
        }
        fn label_names(
            &self,
            m: &[Matcher],
            a: i64,
            b: i64,
        ) -> Result<Vec<String>, crate::storage::StorageError> {
            self.inner.label_names(m, a, b)
        }
        fn label_values(
            &self,
            n: &str,
            m: &[Matcher],
            a: i64,
            b: i64,
        ) -> Result<Vec<String>, crate::storage::StorageError> {
            self.inner.label_values(n, m, a, b)
        }
    }

    #[test]
    fn streaming_holds_one_family_and_writes_what_a_whole_export_writes() {
        let store = Counting {
            inner: MemoryStorage::new(),
            most: AtomicUsize::new(0),
        };
        let mut batch = Vec::new();
        for name in ["a_total", "b", "c_seconds"] {
            for job in ["x", "y"] {
                for t in 0..50 {
                    batch.push(AppendSample {
                        labels: Labels::new([("__name__", name), ("job", job)]),
                        sample: Sample {
                            timestamp_ms: 1_000 * t,
                            value: t as f64,
                        },
                    });
                }
            }
        }
        store.inner.append(&batch).unwrap();
        let groups = matcher_groups(&[]).unwrap();
        for format in [
            ExportFormat::OpenMetrics,
            ExportFormat::Csv,
            ExportFormat::Json,
        ] {
            let mut whole = Vec::new();
            write(
                &mut whole,
                &select(&store.inner, &groups, 0, 100_000).unwrap(),
                format,
            )
            .unwrap();
            store.most.store(0, Ordering::Relaxed);
            let mut streamed = Vec::new();
            let n = stream(&store, &groups, 0, 100_000, format, &mut streamed).unwrap();
            assert_eq!(n, 300);
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(whole).unwrap()
            );
            assert_eq!(
                store.most.load(Ordering::Relaxed),
                100,
                "one family at a time"
            );
        }
    }

    #[test]
    fn a_channel_writer_stops_once_the_reader_is_gone() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        let mut w = ChannelWriter::new(tx);
        let e = w.write_all(&vec![0u8; ChannelWriter::PIECE]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
