//! Exports of raw samples: one range, some selectors, one of three formats.
//! Shared by `GET /api/v1/export` and `infermon export --data-dir`.

use std::io::Write;

use super::{SnapshotError, Snapshotter, csv, openmetrics};
use crate::model::Matcher;
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
            for s in series {
                let values: Vec<(i64, f64)> = s
                    .samples
                    .iter()
                    .filter(|x| !crate::model::is_stale_nan(x.value))
                    .map(|x| (x.timestamp_ms, x.value))
                    .collect();
                serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({"metric": s.labels, "values": values}),
                )?;
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

impl Snapshotter {
    /// The samples of every series `groups` match in `[start, end]`, written
    /// in `format` (what `GET /api/v1/export` answers). Blocks: call it off
    /// the async threads.
    pub fn export(
        &self,
        groups: &[Vec<Matcher>],
        start: i64,
        end: i64,
        format: ExportFormat,
    ) -> Result<Vec<u8>, SnapshotError> {
        let series = select(self.querier.as_ref(), groups, start, end)?;
        let mut out = Vec::new();
        write(&mut out, &series, format)?;
        Ok(out)
    }
}
