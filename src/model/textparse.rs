//! The exposition parser: Prometheus text format 0.0.4 and OpenMetrics 1.0.
//! Pure (bytes in, samples out); every error quotes the offending line.
//!
//! Kept: metric name, labels (with `\\`, `\"`, `\n` escapes), value (`+Inf`,
//! `-Inf`, `NaN`, floats), optional timestamp (milliseconds in the text
//! format, seconds in OpenMetrics). Ignored: HELP/UNIT metadata, exemplars,
//! and OpenMetrics `_created` series of counters, summaries and histograms.

use std::collections::HashMap;

use crate::model::{Labels, METRIC_NAME};

/// Which exposition format a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The format a response's `Content-Type` announces (text when unknown).
    pub fn from_content_type(content_type: &str) -> Format {
        if content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/openmetrics-text")
        {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// One parsed sample.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSample {
    /// Labels including `__name__`.
    pub labels: Labels,
    /// The value.
    pub value: f64,
    /// The exposed timestamp in milliseconds, if any.
    pub timestamp_ms: Option<i64>,
}

/// A body that is not valid exposition text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line_no}: {reason}: {line:?}")]
pub struct ParseError {
    /// 1-based line number.
    pub line_no: usize,
    /// The line (cut to 200 characters).
    pub line: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses a whole body.
pub fn parse(body: &str, format: Format) -> Result<Vec<ParsedSample>, ParseError> {
    let mut out = Vec::new();
    let mut parser = LineParser::new(format);
    let last = body.split('\n').count();
    for (i, raw) in body.split('\n').enumerate() {
        // The newline that ends the last line leaves an empty piece behind.
        if i + 1 == last && raw.is_empty() {
            break;
        }
        if let Some(sample) = parser.line(i + 1, raw)? {
            out.push(sample);
        }
    }
    parser.finish(last)?;
    Ok(out)
}

/// Parses a body line by line, so a large file (an import) never has to be
/// held whole. Keeps what lines depend on: the families' types (for
/// OpenMetrics `_created` series) and whether `# EOF` was seen.
pub struct LineParser {
    format: Format,
    types: HashMap<String, String>,
    saw_eof: bool,
}

impl LineParser {
    /// A parser for a body in `format`.
    pub fn new(format: Format) -> Self {
        LineParser {
            format,
            types: HashMap::new(),
            saw_eof: false,
        }
    }

    /// Parses line `line_no` (1-based, without its newline); `None` for
    /// comments, metadata, blank lines and skipped series.
    pub fn line(&mut self, line_no: usize, raw: &str) -> Result<Option<ParsedSample>, ParseError> {
        let format = self.format;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let err = |reason: &str| ParseError {
            line_no,
            line: line.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        if self.saw_eof {
            return Err(err("content after # EOF"));
        }
        if line.trim().is_empty() {
            if format == Format::OpenMetrics && !line.is_empty() {
                return Err(err(
                    "blank line with whitespace is not allowed in OpenMetrics",
                ));
            }
            return Ok(None);
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match (words.next(), format) {
                (Some("EOF"), Format::OpenMetrics) => {
                    if words.next().is_some() {
                        return Err(err("unexpected text after # EOF"));
                    }
                    self.saw_eof = true;
                }
                (Some("TYPE"), _) => {
                    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                        return Err(err("# TYPE needs a metric name and a type"));
                    };
                    if !is_metric_name(name) {
                        return Err(err("invalid metric name in # TYPE"));
                    }
                    const KINDS: &[&str] = &[
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "untyped",
                        "unknown",
                        "gaugehistogram",
                        "stateset",
                        "info",
                    ];
                    if !KINDS.contains(&kind) {
                        return Err(err("unknown metric type in # TYPE"));
                    }
                    self.types.insert(name.to_string(), kind.to_string());
                }
                _ => {}
            }
            return Ok(None);
        }
        let sample = parse_sample(line, format).map_err(|r| err(&r))?;
        if format == Format::OpenMetrics && is_created_series(&sample, &self.types) {
            return Ok(None);
        }
        Ok(Some(sample))
    }

    /// The series part of sample line `raw` (its metric name and `{…}`,
    /// as written), or `None` for other lines and lines that do not scan
    /// (for those [`LineParser::line`] says what is wrong). Equal series
    /// texts parse to equal label sets, so a scrape loop can remember what
    /// it made of one and read the next scrape's line with
    /// [`LineParser::value_line`].
    pub fn series_text<'a>(&self, raw: &'a str) -> Option<&'a str> {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        series_end(line, self.format).map(|end| &line[..end])
    }

    /// Parses line `line_no`, whose series part is `series` (from
    /// [`LineParser::series_text`]) and parsed without error before: only
    /// the value, timestamp and exemplar are read, with the same checks and
    /// errors as [`LineParser::line`]. `None` where `line` skips the sample.
    pub fn value_line(
        &mut self,
        line_no: usize,
        raw: &str,
        series: &str,
    ) -> Result<Option<(f64, Option<i64>)>, ParseError> {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let err = |reason: &str| ParseError {
            line_no,
            line: line.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        if self.saw_eof {
            return Err(err("content after # EOF"));
        }
        if self.format == Format::OpenMetrics {
            let name = series
                .trim_start_matches([' ', '\t'])
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default();
            if is_created_name(name, &self.types) {
                return Ok(None);
            }
        }
        let rest = line.get(series.len()..).unwrap_or_default();
        parse_value_part(rest, self.format)
            .map(Some)
            .map_err(|r| err(&r))
    }

    /// Checks the end of the body (OpenMetrics must end with `# EOF`);
    /// `lines` is the number of lines read.
    pub fn finish(&self, lines: usize) -> Result<(), ParseError> {
        if self.format == Format::OpenMetrics && !self.saw_eof {
            return Err(ParseError {
                line_no: lines,
                line: String::new(),
                reason: "OpenMetrics body does not end with # EOF".into(),
            });
        }
        Ok(())
    }
}

fn is_created_series(s: &ParsedSample, types: &HashMap<String, String>) -> bool {
    s.labels
        .metric_name()
        .is_some_and(|n| is_created_name(n, types))
}

/// Whether metric `name` is the `_created` series of a family that has one.
fn is_created_name(name: &str, types: &HashMap<String, String>) -> bool {
    let Some(family) = name.strip_suffix("_created") else {
        return false;
    };
    matches!(
        types.get(family).map(String::as_str),
        Some("counter" | "summary" | "histogram" | "gaugehistogram")
    )
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_blanks(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += self.peek().map_or(0, char::len_utf8);
        }
        &self.s[start..self.pos]
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
}

fn parse_sample(line: &str, format: Format) -> Result<ParsedSample, String> {
    let mut c = Cursor { s: line, pos: 0 };
    if format == Format::Text {
        c.skip_blanks();
    }
    let name = c.take_while(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':');
    if !is_metric_name(name) {
        return Err("expected a metric name".into());
    }
    let mut pairs: Vec<(String, String)> = vec![(METRIC_NAME.to_string(), name.to_string())];
    let before_blanks = c.pos;
    let blanks = c.skip_blanks();
    if c.peek() == Some('{') {
        if blanks > 0 && format == Format::OpenMetrics {
            return Err("no space allowed between metric name and labels in OpenMetrics".into());
        }
        c.bump();
        parse_labels(&mut c, &mut pairs)?;
    } else {
        c.pos = before_blanks;
    }
    let (value, timestamp_ms) = parse_value_part(c.rest(), format)?;
    // Sorted, so a body's choice of label count costs n log n, not n².
    let mut names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("duplicate label name {:?}", w[0]));
    }
    Ok(ParsedSample {
        labels: Labels::new(pairs),
        value,
        timestamp_ms,
    })
}

/// What follows a sample line's series part: blanks, the value, an
/// optional timestamp, and (OpenMetrics) an optional exemplar.
fn parse_value_part(rest: &str, format: Format) -> Result<(f64, Option<i64>), String> {
    let mut c = Cursor { s: rest, pos: 0 };
    if c.skip_blanks() == 0 {
        return Err("expected a space before the value".into());
    }
    let value_text = c.take_while(|ch| ch != ' ' && ch != '\t');
    let value = parse_float(value_text).ok_or_else(|| format!("invalid value {value_text:?}"))?;
    c.skip_blanks();
    let mut timestamp_ms = None;
    let rest = c.rest();
    let (ts_text, tail) = match rest.find([' ', '\t']) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    };
    let tail = if ts_text == "#" {
        rest
    } else {
        if !ts_text.is_empty() {
            timestamp_ms = Some(parse_timestamp(ts_text, format)?);
        }
        tail
    };
    if !tail.is_empty() {
        // OpenMetrics exemplar: ` # {labels} value [timestamp]`, ignored.
        if format == Format::OpenMetrics && tail.starts_with("# {") {
            // Checked for shape so garbage after a sample is still refused.
            let mut ex = Cursor { s: tail, pos: 3 };
            let mut ignored = Vec::new();
            parse_labels(&mut ex, &mut ignored)?;
        } else {
            return Err(format!(
                "unexpected text after the sample: {:?}",
                tail.chars().take(40).collect::<String>()
            ));
        }
    }
    Ok((value, timestamp_ms))
}

/// Where the series part (metric name and `{…}`) of sample line `line`
/// ends, scanning quoted values as [`parse_labels`] reads them; `None` when
/// there is no metric name or the braces do not close.
fn series_end(line: &str, format: Format) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    if format == Format::Text {
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
    }
    let name_start = i;
    while b
        .get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
    {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let name_end = i;
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if b.get(i) != Some(&b'{') {
        return Some(name_end);
    }
    let mut quoted = false;
    i += 1;
    while let Some(&c) = b.get(i) {
        match (quoted, c) {
            (true, b'\\') => i += 1,
            (true, b'"') => quoted = false,
            (false, b'"') => quoted = true,
            (false, b'}') => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_labels(c: &mut Cursor, pairs: &mut Vec<(String, String)>) -> Result<(), String> {
    loop {
        c.skip_blanks();
        if c.peek() == Some('}') {
            c.bump();
            return Ok(());
        }
        let name = c.take_while(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !is_label_name(name) {
            return Err("expected a label name".into());
        }
        c.skip_blanks();
        if c.bump() != Some('=') {
            return Err(format!("expected '=' after label name {name:?}"));
        }
        c.skip_blanks();
        if c.bump() != Some('"') {
            return Err(format!(
                "expected '\"' to start the value of label {name:?}"
            ));
        }
        let mut value = String::new();
        loop {
            match c.bump() {
                None => return Err(format!("unterminated value of label {name:?}")),
                Some('"') => break,
                Some('\\') => match c.bump() {
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some(other) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err(format!("unterminated value of label {name:?}")),
                },
                Some(ch) => value.push(ch),
            }
        }
        pairs.push((name.to_string(), value));
        c.skip_blanks();
        match c.bump() {
            Some(',') => continue,
            Some('}') => return Ok(()),
            _ => return Err("expected ',' or '}' after a label".into()),
        }
    }
}

/// Go's `strconv.ParseFloat` forms Prometheus accepts: decimals, exponents,
/// `Inf`/`+Inf`/`-Inf` and `NaN` in any case.
fn parse_float(text: &str) -> Option<f64> {
    let t = text.strip_prefix('+').unwrap_or(text);
    let unsigned = t.strip_prefix('-').unwrap_or(t);
    match unsigned.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => {
            return Some(if t.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if !unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    t.parse().ok()
}

fn parse_timestamp(text: &str, format: Format) -> Result<i64, String> {
    match format {
        Format::Text => text
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp {text:?}")),
        Format::OpenMetrics => {
            let secs = parse_float(text)
                .filter(|s| s.is_finite())
                .ok_or_else(|| format!("invalid timestamp {text:?}"))?;
            let ms = (secs * 1000.0).round();
            if ms.abs() > 9.0e15 {
                return Err(format!("timestamp {text:?} out of range"));
            }
            Ok(ms as i64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn one(line: &str) -> ParsedSample {
        let mut v = parse(line, Format::Text).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn text_format() {
        let body = "# HELP http_requests_total The total.\n# TYPE http_requests_total counter\n\
                    http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                    http_requests_total{method=\"post\",code=\"400\",} 3\n\
                    \n# a comment\nmetric_without_labels 12.47\n\
                    msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
                    go_gc_duration_seconds{quantile=\"1\"} +Inf\nx -Inf\ny NaN\nz{} 0\n  spaced { a = \"b\" }  7\t\n";
        let got = parse(body, Format::Text).unwrap();
        assert_eq!(got.len(), 9);
        assert_eq!(
            got[0].labels,
            Labels::new([
                ("__name__", "http_requests_total"),
                ("method", "post"),
                ("code", "200")
            ])
        );
        assert_eq!(got[0].timestamp_ms, Some(1395066363000));
        assert_eq!(got[1].value, 3.0);
        assert_eq!(got[3].labels.get("path"), Some("C:\\DIR\\FILE.TXT"));
        assert_eq!(
            got[3].labels.get("error"),
            Some("Cannot find file:\n\"FILE.TXT\"")
        );
        assert_eq!(got[4].value, f64::INFINITY);
        assert_eq!(got[5].value, f64::NEG_INFINITY);
        assert!(got[6].value.is_nan());
        assert_eq!(got[8].labels.get("a"), Some("b"));
        assert_eq!(
            one("a{b=\"\"} 1").labels.len(),
            1,
            "empty label values are absent labels"
        );
    }

    #[test]
    fn openmetrics_format() {
        let body = "# TYPE foo counter\n# HELP foo Help.\n# UNIT foo seconds\nfoo_total 17.0 1520879607.789 # {id=\"ab\"} 1.0 1520879607.0\n\
                    foo_created 1520872607.123\n# TYPE g gauge\ng_created 5\nh_bucket{le=\"+Inf\"} 3\n# EOF\n";
        let got = parse(body, Format::OpenMetrics).unwrap();
        let names: Vec<&str> = got
            .iter()
            .map(|s| s.labels.metric_name().unwrap())
            .collect();
        assert_eq!(names, ["foo_total", "g_created", "h_bucket"]);
        assert_eq!(got[0].timestamp_ms, Some(1520879607789));
        assert!(
            parse("a 1\n", Format::OpenMetrics)
                .unwrap_err()
                .reason
                .contains("# EOF")
        );
        assert!(parse("# EOF\na 1\n", Format::OpenMetrics).is_err());
        assert_eq!(
            Format::from_content_type("application/openmetrics-text; version=1.0.0"),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type("text/plain; version=0.0.4"),
            Format::Text
        );
    }

    #[test]
    fn malformed_input_is_refused_with_the_line() {
        let cases = [
            ("ok 1\n{a=\"b\"} 1", 2, "metric name"),
            ("a{b=\"c} 1", 1, "unterminated"),
            ("a{b=c} 1", 1, "'\"'"),
            ("a{1b=\"c\"} 1", 1, "label name"),
            ("a{b=\"c\" d=\"e\"} 1", 1, "',' or '}'"),
            ("a 1x", 1, "invalid value"),
            ("a", 1, "space before the value"),
            ("a 1 12.5", 1, "invalid timestamp"),
            ("a 1 2 3", 1, "unexpected text"),
            ("a{b=\"1\",b=\"2\"} 1", 1, "duplicate label"),
            ("# TYPE a blob", 1, "unknown metric type"),
            ("a 0x10", 1, "invalid value"),
        ];
        for (body, line_no, reason) in cases {
            let e = parse(body, Format::Text).unwrap_err();
            assert_eq!(e.line_no, line_no, "{body:?}: {e}");
            assert!(e.reason.contains(reason), "{body:?}: {e}");
            assert_eq!(e.line, body.split('\n').nth(line_no - 1).unwrap(), "{e}");
            assert!(e.to_string().contains(&format!("{:?}", e.line)), "{e}");
        }
        // Arbitrary bytes never panic.
        for body in [
            "\u{0}",
            "a{",
            "a{b",
            "a{b=",
            "a{b=\"\\",
            "é 1",
            "a{é=\"1\"} 1",
            "# TYPE",
            "a 1 # {",
        ] {
            let _ = parse(body, Format::Text);
            let _ = parse(body, Format::OpenMetrics);
        }
    }
}
