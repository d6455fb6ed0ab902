//! OpenMetrics text with timestamps, every series of a range, `# EOF` at the
//! end: what `promtool tsdb create-blocks-from openmetrics` backfills.

use std::collections::BTreeMap;
use std::io::Write;

use crate::model::{Labels, METRIC_NAME, is_stale_nan};
use crate::storage::Series;

/// Writes `series` grouped by metric name (each family once, as the format
/// requires). Types are not stored, so every family is `unknown`; staleness
/// markers are left out (they are a storage detail, not a value).
pub fn write(out: &mut impl Write, series: &[Series]) -> std::io::Result<u64> {
    let mut by_name: BTreeMap<&str, Vec<&Series>> = BTreeMap::new();
    for s in series {
        by_name
            .entry(s.labels.metric_name().unwrap_or(""))
            .or_default()
            .push(s);
    }
    let mut samples = 0;
    for (name, family) in by_name {
        samples += write_family(out, name, &family)?;
    }
    writeln!(out, "# EOF")?;
    Ok(samples)
}

/// Writes one family: its `# TYPE` line and the samples of its series
/// (all named `name`). The caller writes `# EOF` after the last family.
pub fn write_family(out: &mut impl Write, name: &str, family: &[&Series]) -> std::io::Result<u64> {
    if name.is_empty() {
        return Ok(0);
    }
    let mut samples = 0;
    writeln!(out, "# TYPE {name} unknown")?;
    for s in family {
        let labels = label_text(&s.labels);
        for sample in s.samples.iter().filter(|x| !is_stale_nan(x.value)) {
            writeln!(
                out,
                "{name}{labels} {} {}",
                format_value(sample.value),
                format_timestamp(sample.timestamp_ms)
            )?;
            samples += 1;
        }
    }
    Ok(samples)
}

/// `{a="b",c="d"}` without `__name__`, empty when there are no labels.
pub fn label_text(labels: &Labels) -> String {
    let parts: Vec<String> = labels
        .iter()
        .filter(|l| l.name != METRIC_NAME)
        .map(|l| {
            format!(
                "{}=\"{}\"",
                l.name,
                crate::model::escape_label_value(&l.value)
            )
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Values as OpenMetrics spells them.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// Seconds with millisecond precision.
fn format_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    if frac == 0 {
        format!("{secs}")
    } else {
        format!("{secs}.{frac:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Sample, stale_nan};

    #[test]
    fn groups_families_and_ends_with_eof() {
        let s = |name: &str, job: &str, t: i64, v: f64| Series {
            labels: Labels::new([("__name__", name), ("job", job)]),
            samples: vec![
                Sample {
                    timestamp_ms: t,
                    value: v,
                },
                Sample {
                    timestamp_ms: t + 1,
                    value: stale_nan(),
                },
            ],
        };
        let mut buf = Vec::new();
        let n = write(
            &mut buf,
            &[
                s("up", "a", 1000, 1.0),
                s("b_total", "a", 1500, 2.5),
                s("up", "b\"x", 2000, 0.0),
            ],
        )
        .unwrap();
        assert_eq!(n, 3);
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text,
            "# TYPE b_total unknown\nb_total{job=\"a\"} 2.5 1.500\n# TYPE up unknown\nup{job=\"a\"} 1 1\nup{job=\"b\\\"x\"} 0 2\n# EOF\n"
        );
    }
}
