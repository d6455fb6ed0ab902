//! A runner for Prometheus' `promqltest` scripts (`load`, `clear`,
//! `eval instant|range`, `eval_fail|eval_ordered|eval_warn|eval_info`, `expect …`).
//!
//! Each `eval` is one case, named `file:line`. Cases that need native
//! histograms or syntax the parser lacks are skipped with a reason. The
//! `load` step also serves other parts' tests that need seeded data.

use std::sync::Arc;
use std::time::Duration;

use super::value::Value;
use super::{Engine, EngineOptions};
use crate::model::{Labels, Sample, stale_nan};
use crate::storage::{AppendSample, Appender, MemoryStorage};

/// What happened to one case.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The engine gave the expected answer.
    Pass,
    /// It did not; the text says how.
    Fail(String),
    /// Not run, for this reason.
    Skip(&'static str),
}

/// One `eval` command's result.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// 1-based line of the `eval` command.
    pub line: usize,
    /// The expression.
    pub expr: String,
    /// Result.
    pub outcome: Outcome,
    /// The case expects warnings/infos, which the engine does not produce;
    /// only its result was compared.
    pub annotations_unchecked: bool,
}

/// A script that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScriptError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Loads a `load` block's series lines into `storage`, `interval` apart
/// starting at 0. Native histogram values (`{{...}}`) are refused.
pub fn load_series(storage: &dyn Appender, interval_ms: i64, lines: &[&str]) -> Result<(), String> {
    let mut batch = Vec::new();
    for line in lines {
        let (labels, values) = parse_series_line(line)?;
        for (i, v) in values.into_iter().enumerate() {
            if let Some(value) = v {
                batch.push(AppendSample {
                    labels: labels.clone(),
                    sample: Sample {
                        timestamp_ms: i as i64 * interval_ms,
                        value,
                    },
                });
            }
        }
    }
    storage.append(&batch).map_err(|e| e.to_string())
}

/// Parses `metric{a="b"} 1+1x3 _ stale` into labels and per-step values.
fn parse_series_line(line: &str) -> Result<(Labels, Vec<Option<f64>>), String> {
    let line = line.trim();
    let split = match line.rfind('}') {
        Some(i) => i + 1,
        None => line.find(char::is_whitespace).unwrap_or(line.len()),
    };
    let (desc, rest) = line.split_at(split);
    let labels = parse_labels(desc)?;
    let mut values = Vec::new();
    for tok in rest.split_whitespace() {
        expand_value(tok, &mut values)?;
    }
    Ok((labels, values))
}

fn parse_labels(desc: &str) -> Result<Labels, String> {
    let desc = desc.trim();
    if desc == "{}" {
        return Ok(Labels::default());
    }
    let expr =
        promql_parser::parser::parse(desc).map_err(|e| format!("bad series {desc:?}: {e}"))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("bad series {desc:?}"));
    };
    let mut pairs: Vec<(String, String)> = vs
        .matchers
        .matchers
        .iter()
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    Ok(Labels::new(pairs))
}

fn parse_number(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => {
            if let Some(h) = s.strip_prefix("0x") {
                return i64::from_str_radix(h, 16)
                    .map(|v| v as f64)
                    .map_err(|e| format!("bad number {s:?}: {e}"));
            }
            s.parse::<f64>()
                .map_err(|e| format!("bad number {s:?}: {e}"))
        }
    }
}

/// Expands one value token (`1`, `_`, `_x3`, `stale`, `1+2x3`, `1-1x2`, `5x2`).
fn expand_value(tok: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    if tok.starts_with("{{") {
        return Err("native histogram values are not supported".into());
    }
    if tok == "_" {
        out.push(None);
        return Ok(());
    }
    if tok == "stale" {
        out.push(Some(stale_nan()));
        return Ok(());
    }
    if let Some(xi) = tok.rfind('x')
        && let Ok(n) = tok[xi + 1..].parse::<usize>()
    {
        let head = &tok[..xi];
        if head == "_" {
            out.extend(std::iter::repeat_n(None, n));
            return Ok(());
        }
        // Split `base(+|-)increment` at the last sign that is not leading or an exponent's.
        let bytes = head.as_bytes();
        let mut split = None;
        for i in (1..bytes.len()).rev() {
            if (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        let (base, inc) = match split {
            Some(i) => {
                let inc = parse_number(&head[i + 1..])?;
                (
                    parse_number(&head[..i])?,
                    if bytes[i] == b'-' { -inc } else { inc },
                )
            }
            None => (parse_number(head)?, 0.0),
        };
        let mut v = base;
        for _ in 0..=n {
            out.push(Some(v));
            v += inc;
        }
        return Ok(());
    }
    out.push(Some(parse_number(tok)?));
    Ok(())
}

fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0).round() as i64);
    }
    if s.chars().all(|c| c == '0' || c.is_ascii_alphabetic()) {
        return Ok(0);
    }
    promql_parser::util::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| format!("bad time {s:?}: {e}"))
}

/// Prometheus' test tolerance.
fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let eps = 1e-6;
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < eps * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < eps
}

enum Query {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

struct Eval {
    expr: String,
    query: Query,
    fail: bool,
    fail_message: Option<String>,
    fail_regex: Option<String>,
    ordered: bool,
    annotations: bool,
    expect_lines: Vec<String>,
}

/// Runs a whole script; returns one result per `eval`.
pub fn run_script(text: &str) -> Result<Vec<CaseResult>, ScriptError> {
    let storage = Arc::new(MemoryStorage::new());
    let opts = EngineOptions {
        timeout: Duration::from_secs(30),
        ..EngineOptions::default()
    };
    let engine = Engine::new(storage.clone(), opts);
    // As Prometheus reads scripts: trimmed, comments blank, blocks end at a blank line.
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.trim().starts_with('#') {
                ""
            } else {
                l.trim()
            }
        })
        .collect();
    let mut results = Vec::new();
    // Native histogram series loaded since the last `clear`: cases that read them are skipped.
    let mut native: Vec<Labels> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let line_no = i + 1;
        i += 1;
        if line.is_empty() {
            continue;
        }
        let err = |message: String| ScriptError {
            line: line_no,
            message,
        };
        if line == "clear" {
            storage.clear();
            native.clear();
            continue;
        }
        let mut body = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            body.push(lines[i]);
            i += 1;
        }
        if let Some(rest) = line.strip_prefix("load") {
            let with_nhcb = rest.starts_with("_with_nhcb");
            let interval = parse_time(rest.trim_start_matches("_with_nhcb").trim()).map_err(err)?;
            let mut floats = Vec::new();
            for l in body {
                if l.contains("{{") {
                    native.push(
                        parse_series_line(l.split("{{").next().unwrap_or(""))
                            .map_err(err)?
                            .0,
                    );
                    continue;
                }
                if with_nhcb {
                    let (mut labels, _) = parse_series_line(l).map_err(err)?;
                    if let Some(name) = labels.metric_name().map(str::to_string) {
                        for suffix in ["_bucket", "_count", "_sum"] {
                            if let Some(base) = name.strip_suffix(suffix) {
                                labels.set(crate::model::METRIC_NAME, base);
                                labels.remove("le");
                                native.push(labels.clone());
                            }
                        }
                    }
                }
                floats.push(l);
            }
            load_series(storage.as_ref(), interval, &floats).map_err(err)?;
            continue;
        }
        if line.starts_with("eval") {
            let eval =
                parse_eval(line, body.into_iter().map(str::to_string).collect()).map_err(err)?;
            let annotations_unchecked = eval.annotations;
            let expr = eval.expr.clone();
            let outcome = if eval.expect_lines.iter().any(|l| l.contains("{{"))
                || reads_native(&eval.expr, &native)
            {
                Outcome::Skip("native histograms")
            } else {
                run_eval(&engine, &eval)
            };
            results.push(CaseResult {
                line: line_no,
                expr,
                outcome,
                annotations_unchecked,
            });
            continue;
        }
        return Err(err(format!("unknown command {line:?}")));
    }
    Ok(results)
}

/// Whether any selector of `expr` matches a native histogram series.
fn reads_native(expr: &str, native: &[Labels]) -> bool {
    fn walk<'e>(
        e: &'e promql_parser::parser::Expr,
        out: &mut Vec<&'e promql_parser::parser::VectorSelector>,
    ) {
        use promql_parser::parser::Expr;
        match e {
            Expr::VectorSelector(vs) => out.push(vs),
            Expr::MatrixSelector(ms) => out.push(&ms.vs),
            Expr::Subquery(s) => walk(&s.expr, out),
            Expr::Aggregate(a) => {
                walk(&a.expr, out);
                if let Some(p) = &a.param {
                    walk(p, out);
                }
            }
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Binary(b) => {
                walk(&b.lhs, out);
                walk(&b.rhs, out);
            }
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
            _ => {}
        }
    }
    if native.is_empty() {
        return false;
    }
    let Ok(parsed) = promql_parser::parser::parse(expr) else {
        return false;
    };
    let mut selectors = Vec::new();
    walk(&parsed, &mut selectors);
    selectors.iter().any(|vs| {
        super::engine::to_matchers(vs)
            .map(|sets| {
                sets.iter().any(|ms| {
                    native
                        .iter()
                        .any(|l| ms.iter().all(|m| m.matches_labels(l)))
                })
            })
            .unwrap_or(false)
    })
}

fn parse_eval(line: &str, body: Vec<String>) -> Result<Eval, String> {
    let (cmd, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("eval without arguments")?;
    let rest = rest.trim();
    let mut ev = Eval {
        expr: String::new(),
        query: Query::Instant(0),
        fail: cmd == "eval_fail",
        fail_message: None,
        fail_regex: None,
        ordered: cmd == "eval_ordered",
        annotations: cmd == "eval_warn" || cmd == "eval_info",
        expect_lines: Vec::new(),
    };
    let words: Vec<&str> = rest.splitn(3, char::is_whitespace).collect();
    if words.first() == Some(&"instant") {
        let rest = rest["instant".len()..].trim_start();
        let rest = rest.strip_prefix("at").ok_or("expected `at`")?.trim_start();
        let (t, expr) = rest
            .split_once(char::is_whitespace)
            .ok_or("missing expression")?;
        ev.query = Query::Instant(parse_time(t)?);
        ev.expr = expr.trim().to_string();
    } else if words.first() == Some(&"range") {
        // range from <t> to <t> step <d> <expr>
        let parts: Vec<&str> = rest.splitn(8, char::is_whitespace).collect();
        if parts.len() < 8 || parts[1] != "from" || parts[3] != "to" || parts[5] != "step" {
            return Err(format!("bad range eval {rest:?}"));
        }
        ev.query = Query::Range {
            start: parse_time(parts[2])?,
            end: parse_time(parts[4])?,
            step: parse_time(parts[6])?,
        };
        ev.expr = parts[7].trim().to_string();
    } else {
        return Err(format!("bad eval {rest:?}"));
    }
    for l in body {
        if let Some(m) = l.strip_prefix("expected_fail_message") {
            ev.fail_message = Some(m.trim().to_string());
        } else if let Some(m) = l.strip_prefix("expected_fail_regexp") {
            ev.fail_regex = Some(m.trim().to_string());
        } else if let Some(e) = l.strip_prefix("expect ") {
            let e = e.trim();
            if e == "ordered" {
                ev.ordered = true;
            } else if let Some(f) = e.strip_prefix("fail") {
                ev.fail = true;
                let f = f.trim();
                if let Some(m) = f.strip_prefix("msg:") {
                    ev.fail_message = Some(m.trim().to_string());
                } else if let Some(m) = f.strip_prefix("regex:") {
                    ev.fail_regex = Some(m.trim().to_string());
                }
            } else if e.starts_with("warn") || e.starts_with("info") {
                ev.annotations = true;
            } else if e.starts_with("no_warn") || e.starts_with("no_info") {
                // Nothing to check: the engine never annotates.
            } else {
                return Err(format!("unknown expectation {e:?}"));
            }
        } else {
            ev.expect_lines.push(l);
        }
    }
    Ok(ev)
}

fn run_eval(engine: &Engine, ev: &Eval) -> Outcome {
    let (expr, invalid_utf8) = match super::parse_literals(&ev.expr) {
        Ok(parsed) => parsed,
        Err(e) if ev.fail => return check_failure(ev, &e.to_string()),
        Err(_) => return Outcome::Skip("syntax the parser lacks"),
    };
    let result = match ev.query {
        Query::Instant(t) => engine.instant_eval(&expr, invalid_utf8, t),
        Query::Range { start, end, step } => {
            engine.range_eval(&expr, invalid_utf8, start, end, step)
        }
    };
    match result {
        Err(e) if ev.fail => check_failure(ev, &e.to_string()),
        Err(e) => Outcome::Fail(format!("unexpected error: {e}")),
        Ok(_) if ev.fail => Outcome::Fail("expected an error, got a result".into()),
        Ok(v) => match compare(ev, v) {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(e),
        },
    }
}

fn check_failure(ev: &Eval, msg: &str) -> Outcome {
    if let Some(want) = &ev.fail_message
        && want != msg
    {
        return Outcome::Fail(format!("error {msg:?}, expected {want:?}"));
    }
    if let Some(re) = &ev.fail_regex {
        match regex::Regex::new(re) {
            Ok(r) if r.is_match(msg) => {}
            _ => return Outcome::Fail(format!("error {msg:?} does not match {re:?}")),
        }
    }
    Outcome::Pass
}

fn compare(ev: &Eval, got: Value) -> Result<(), String> {
    match got {
        Value::Scalar { f, .. } => {
            let [line] = ev.expect_lines.as_slice() else {
                return Err(format!(
                    "got scalar {f}, expected {} lines",
                    ev.expect_lines.len()
                ));
            };
            let want = parse_number(line.trim())?;
            if !almost_equal(want, f) {
                return Err(format!("got scalar {f}, expected {want}"));
            }
            Ok(())
        }
        Value::String { s, .. } => {
            let want = ev
                .expect_lines
                .first()
                .map(|l| l.trim_matches('"').to_string())
                .unwrap_or_default();
            if want != s {
                return Err(format!("got string {s:?}, expected {want:?}"));
            }
            Ok(())
        }
        Value::Vector(v) => {
            let mut want = Vec::new();
            for l in &ev.expect_lines {
                if let Ok(f) = parse_number(l.trim()) {
                    return Err(format!("got a vector, expected scalar {f}"));
                }
                let (labels, values) = parse_series_line(l)?;
                let [Some(f)] = values.as_slice() else {
                    return Err(format!("expected one value in {l:?}"));
                };
                want.push((labels, *f));
            }
            if want.len() != v.len() {
                let got: Vec<String> = v.iter().map(|s| format!("{} {}", s.metric, s.f)).collect();
                return Err(format!(
                    "got {} series, expected {}: {}",
                    v.len(),
                    want.len(),
                    got.join("; ")
                ));
            }
            for (i, s) in v.iter().enumerate() {
                let Some(pos) = want.iter().position(|(l, _)| *l == s.metric) else {
                    return Err(format!("unexpected series {} {}", s.metric, s.f));
                };
                if ev.ordered && pos != i {
                    return Err(format!(
                        "series {} at position {i}, expected {pos}",
                        s.metric
                    ));
                }
                if !almost_equal(want[pos].1, s.f) {
                    return Err(format!(
                        "series {}: got {}, expected {}",
                        s.metric, s.f, want[pos].1
                    ));
                }
            }
            Ok(())
        }
        Value::Matrix(m) => {
            let Query::Range { start, step, .. } = ev.query else {
                return Err("got a range vector from an instant query".into());
            };
            let mut want = Vec::new();
            for l in &ev.expect_lines {
                let (labels, values) = parse_series_line(l)?;
                let points: Vec<(i64, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|f| (start + i as i64 * step, f)))
                    .collect();
                want.push((labels, points));
            }
            if want.len() != m.len() {
                let got: Vec<String> = m.iter().map(|s| s.metric.to_string()).collect();
                return Err(format!(
                    "got {} series, expected {}: {}",
                    m.len(),
                    want.len(),
                    got.join("; ")
                ));
            }
            for s in &m {
                let Some((_, points)) = want.iter().find(|(l, _)| *l == s.metric) else {
                    return Err(format!("unexpected series {}", s.metric));
                };
                let got: Vec<(i64, f64)> = s.points.iter().map(|p| (p.t, p.f)).collect();
                let same = got.len() == points.len()
                    && got
                        .iter()
                        .zip(points)
                        .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
                if !same {
                    return Err(format!(
                        "series {}: got {got:?}, expected {points:?}",
                        s.metric
                    ));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_values() {
        let mut v = Vec::new();
        for t in ["1+2x2", "_x2", "-1-1x1", "5x1", "stale", "1e3"] {
            expand_value(t, &mut v).unwrap();
        }
        assert_eq!(&v[..5], &[Some(1.0), Some(3.0), Some(5.0), None, None]);
        assert_eq!(&v[5..9], &[Some(-1.0), Some(-2.0), Some(5.0), Some(5.0)]);
        assert!(crate::model::is_stale_nan(v[9].unwrap()));
        assert_eq!(v[10], Some(1000.0));
    }

    #[test]
    fn runs_a_small_script() {
        let script = "load 1m\n  up{job=\"a\"} 0+1x10\n\neval instant at 5m up\n  up{job=\"a\"} 5\n\neval instant at 5m up\n  up{job=\"a\"} 6\n";
        let r = run_script(script).unwrap();
        assert_eq!(r[0].outcome, Outcome::Pass);
        assert!(matches!(r[1].outcome, Outcome::Fail(_)));
    }
}
