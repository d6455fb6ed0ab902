//! Built-in functions: one Rust function per PromQL function and one table
//! ([`FUNCTIONS`]) from name to implementation.

use chrono::{Datelike, TimeZone, Timelike, Utc};
use promql_parser::parser::{Call, Expr};

use super::PromqlError;
use super::budget::Budget;
use rustc_hash::{FxHashMap, FxHashSet};

use super::engine::{Evaluator, Matrix, Val, check_unique, drop_name_labels, node_id, to_matchers};
use super::literal::GoString;
use super::memo::{LabelMemo, MemoKind, Memos};
use super::value::{Point, Sample};
use crate::model::{Labels, METRIC_NAME, MatchOp};
use crate::storage::RollupPoint;

/// Evaluated arguments of one call at one step.
pub(crate) struct Args<'a> {
    /// Evaluation time (ms).
    t: i64,
    vals: Vec<Option<Val>>,
    exprs: &'a [Box<Expr>],
    /// The query's label-set memos (see `memo`).
    memos: &'a mut Memos,
    /// Identifies the call node in `memos`.
    node: usize,
    /// The query's budget (label strings built here count against it).
    budget: &'a Budget,
    /// Longest label value a function may build.
    max_label_value: usize,
}

impl Args<'_> {
    fn take(&mut self, i: usize) -> Result<Val, PromqlError> {
        self.vals
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| PromqlError::Execution(format!("missing argument {}", i + 1)))
    }
    fn vector(&mut self, i: usize) -> Result<Vec<Sample>, PromqlError> {
        self.take(i)?.into_vector()
    }
    fn scalar(&mut self, i: usize) -> Result<f64, PromqlError> {
        self.take(i)?.into_scalar()
    }
    fn matrix(&mut self, i: usize) -> Result<Matrix, PromqlError> {
        self.take(i)?.into_matrix()
    }
    fn string(&mut self, i: usize) -> Result<String, PromqlError> {
        Ok(self.go_string(i)?.text)
    }
    /// A string argument with its Go validity (for arguments Prometheus checks).
    fn go_string(&mut self, i: usize) -> Result<GoString, PromqlError> {
        self.take(i)?.into_string()
    }
    fn len(&self) -> usize {
        self.vals.len()
    }
}

type FuncImpl = fn(&mut Args) -> Result<Val, PromqlError>;

/// Every supported function by name.
pub(crate) static FUNCTIONS: &[(&str, FuncImpl)] = &[
    ("abs", |a| math(a, f64::abs)),
    ("absent", absent),
    ("absent_over_time", absent_over_time),
    ("acos", |a| math(a, f64::acos)),
    ("acosh", |a| math(a, f64::acosh)),
    ("asin", |a| math(a, f64::asin)),
    ("asinh", |a| math(a, f64::asinh)),
    ("atan", |a| math(a, f64::atan)),
    ("atanh", |a| math(a, f64::atanh)),
    ("avg_over_time", |a| {
        over_time_rolled(
            a,
            |p| super::aggregate::avg(p.iter().map(|x| x.f)),
            rolled_avg,
        )
    }),
    ("ceil", |a| math(a, f64::ceil)),
    ("changes", |a| over_time(a, changes)),
    ("clamp", clamp),
    ("clamp_max", clamp_max),
    ("clamp_min", clamp_min),
    ("cos", |a| math(a, f64::cos)),
    ("cosh", |a| math(a, f64::cosh)),
    ("count_over_time", |a| {
        over_time_rolled(a, |p| p.len() as f64, rolled_count)
    }),
    ("day_of_month", |a| date(a, |d| d.day() as f64)),
    ("day_of_week", |a| {
        date(a, |d| d.weekday().num_days_from_sunday() as f64)
    }),
    ("day_of_year", |a| date(a, |d| d.ordinal() as f64)),
    ("days_in_month", |a| date(a, days_in_month)),
    ("deg", |a| math(a, f64::to_degrees)),
    ("delta", |a| extrapolated(a, false, false)),
    ("deriv", deriv),
    ("double_exponential_smoothing", double_exponential_smoothing),
    ("exp", |a| math(a, f64::exp)),
    ("first_over_time", first_over_time),
    ("floor", |a| math(a, f64::floor)),
    ("histogram_fraction", histogram_fraction),
    ("histogram_quantile", histogram_quantile),
    ("hour", |a| date(a, |d| d.hour() as f64)),
    ("idelta", |a| instant_value(a, false)),
    ("increase", |a| extrapolated(a, true, false)),
    ("irate", |a| instant_value(a, true)),
    ("label_join", label_join),
    ("label_replace", label_replace),
    ("last_over_time", last_over_time),
    ("ln", |a| math(a, f64::ln)),
    ("log10", |a| math(a, f64::log10)),
    ("log2", |a| math(a, f64::log2)),
    ("mad_over_time", |a| over_time(a, mad)),
    ("max_over_time", |a| {
        over_time_rolled(a, |p| fold_nan_aware(p, |m, f| f > m), rolled_max)
    }),
    ("min_over_time", |a| {
        over_time_rolled(a, |p| fold_nan_aware(p, |m, f| f < m), rolled_min)
    }),
    ("minute", |a| date(a, |d| d.minute() as f64)),
    ("month", |a| date(a, |d| d.month() as f64)),
    ("pi", |_| Ok(Val::Scalar(std::f64::consts::PI))),
    ("predict_linear", predict_linear),
    ("present_over_time", |a| over_time(a, |_| 1.0)),
    ("quantile_over_time", quantile_over_time),
    ("rad", |a| math(a, f64::to_radians)),
    ("rate", |a| extrapolated(a, true, true)),
    ("resets", |a| over_time(a, resets)),
    ("round", round),
    ("scalar", scalar),
    ("sgn", |a| math(a, sgn)),
    ("sin", |a| math(a, f64::sin)),
    ("sinh", |a| math(a, f64::sinh)),
    ("sort", |a| sort(a, false)),
    ("sort_by_label", |a| sort_by_label(a, false)),
    ("sort_by_label_desc", |a| sort_by_label(a, true)),
    ("sort_desc", |a| sort(a, true)),
    ("sqrt", |a| math(a, f64::sqrt)),
    ("stddev_over_time", |a| over_time(a, |p| stdvar(p).sqrt())),
    ("stdvar_over_time", |a| over_time(a, stdvar)),
    ("sum_over_time", |a| over_time_rolled(a, sum, rolled_sum)),
    ("tan", |a| math(a, f64::tan)),
    ("tanh", |a| math(a, f64::tanh)),
    ("time", |a| Ok(Val::Scalar(a.t as f64 / 1000.0))),
    ("timestamp", timestamp),
    ("ts_of_first_over_time", |a| {
        over_time(a, |p| p[0].t as f64 / 1000.0)
    }),
    ("ts_of_last_over_time", |a| {
        over_time(a, |p| p[p.len() - 1].t as f64 / 1000.0)
    }),
    ("ts_of_max_over_time", |a| {
        over_time(a, |p| ts_of(p, |m, f| f >= m))
    }),
    ("ts_of_min_over_time", |a| {
        over_time(a, |p| ts_of(p, |m, f| f <= m))
    }),
    ("vector", vector),
    ("year", |a| date(a, |d| d.year() as f64)),
];

/// A range-vector function that reads one series' window at a time: its
/// value from the window's points (never empty) and bounds `(start, end]`.
pub(crate) type WindowKernel = fn(&[Point], i64, i64) -> Option<f64>;

/// The functions a range query computes for all its steps in one pass per
/// series (see `window`), with whether they drop the metric name. Each
/// kernel is the per-series core of the function of the same name in
/// [`FUNCTIONS`], which still serves instant queries, subqueries and
/// rolled-up history.
pub(crate) static WINDOW_FUNCTIONS: &[(&str, WindowKernel, bool)] = &[
    (
        "avg_over_time",
        |p, _, _| Some(super::aggregate::avg(p.iter().map(|x| x.f))),
        true,
    ),
    ("changes", |p, _, _| Some(changes(p)), true),
    ("count_over_time", |p, _, _| Some(p.len() as f64), true),
    (
        "delta",
        |p, s, e| extrapolated_window(p, s, e, false, false),
        true,
    ),
    ("idelta", |p, _, _| instant_value_window(p, false), true),
    (
        "increase",
        |p, s, e| extrapolated_window(p, s, e, true, false),
        true,
    ),
    ("irate", |p, _, _| instant_value_window(p, true), true),
    ("last_over_time", |p, _, _| p.last().map(|x| x.f), false),
    (
        "max_over_time",
        |p, _, _| Some(fold_nan_aware(p, |m, f| f > m)),
        true,
    ),
    (
        "min_over_time",
        |p, _, _| Some(fold_nan_aware(p, |m, f| f < m)),
        true,
    ),
    ("present_over_time", |_, _, _| Some(1.0), true),
    (
        "rate",
        |p, s, e| extrapolated_window(p, s, e, true, true),
        true,
    ),
    ("resets", |p, _, _| Some(resets(p)), true),
    ("stddev_over_time", |p, _, _| Some(stdvar(p).sqrt()), true),
    ("stdvar_over_time", |p, _, _| Some(stdvar(p)), true),
    ("sum_over_time", |p, _, _| Some(sum(p)), true),
];

/// A window function over a window that reaches into rolled-up history:
/// its 5-minute summaries (raw samples as one-sample summaries, never
/// empty), its points and its edges.
pub(crate) type RolledKernel = fn(&[RollupPoint], &[Point], i64, i64) -> Option<f64>;

/// The [`WINDOW_FUNCTIONS`] that read rolled-up history (the
/// `ROLLUP_FUNCTIONS` of the engine), for the one-pass walk; the
/// step-by-step functions of the same name use the same cores.
pub(crate) static ROLLED_KERNELS: &[(&str, RolledKernel)] = &[
    ("avg_over_time", |r, _, _, _| Some(rolled_avg(r))),
    ("count_over_time", |r, _, _, _| Some(rolled_count(r))),
    ("increase", |r, p, s, e| {
        extrapolated_rolled(Some(r), p, s, e, true, false)
    }),
    ("max_over_time", |r, _, _, _| Some(rolled_max(r))),
    ("min_over_time", |r, _, _, _| Some(rolled_min(r))),
    ("rate", |r, p, s, e| {
        extrapolated_rolled(Some(r), p, s, e, true, true)
    }),
    ("sum_over_time", |r, _, _, _| Some(rolled_sum(r))),
];

/// Evaluates a function call at `t`.
pub(crate) fn call(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Val, PromqlError> {
    let name = c.func.name;
    let Some((_, f)) = FUNCTIONS.iter().find(|(n, _)| *n == name) else {
        return Err(PromqlError::Execution(format!(
            "function {name:?} is not supported by infermon"
        )));
    };
    if let Some(v) = ev.window_call(c, t)? {
        return Ok(v);
    }
    if let Some(v) = ev.call_column(c, t)? {
        return Ok(v);
    }
    let mut vals = Vec::with_capacity(c.args.args.len());
    for a in &c.args.args {
        vals.push(Some(ev.eval(a, t)?));
    }
    f(&mut Args {
        t,
        vals,
        exprs: &c.args.args,
        memos: &mut ev.memos,
        node: node_id(c),
        budget: &ev.budget,
        max_label_value: ev.max_label_value_bytes,
    })
}

/// Neumaier's compensated addition, as Prometheus sums.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// The φ-quantile of `values` (sorted in place), Prometheus' interpolation.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| {
        a.partial_cmp(b)
            .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()).reverse())
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn math(a: &mut Args, f: fn(f64) -> f64) -> Result<Val, PromqlError> {
    let t = a.t;
    let mut v = a.vector(0)?;
    for s in &mut v {
        s.f = f(s.f);
        s.t = t;
        s.drop_name = true;
    }
    Ok(Val::Vector(v))
}

fn sgn(f: f64) -> f64 {
    if f > 0.0 {
        1.0
    } else if f < 0.0 {
        -1.0
    } else {
        f
    }
}

fn clamp_with(a: &mut Args, lo: f64, hi: f64) -> Result<Val, PromqlError> {
    let t = a.t;
    let mut v = a.vector(0)?;
    if hi < lo {
        return Ok(Val::Vector(Vec::new()));
    }
    for s in &mut v {
        s.f = s.f.max(lo).min(hi);
        if lo.is_nan() || hi.is_nan() {
            s.f = f64::NAN;
        }
        s.t = t;
        s.drop_name = true;
    }
    Ok(Val::Vector(v))
}

fn clamp(a: &mut Args) -> Result<Val, PromqlError> {
    let (lo, hi) = (a.scalar(1)?, a.scalar(2)?);
    clamp_with(a, lo, hi)
}

fn clamp_max(a: &mut Args) -> Result<Val, PromqlError> {
    let hi = a.scalar(1)?;
    let t = a.t;
    let mut v = a.vector(0)?;
    for s in &mut v {
        s.f = if hi.is_nan() || s.f.is_nan() {
            f64::NAN
        } else {
            s.f.min(hi)
        };
        s.t = t;
        s.drop_name = true;
    }
    Ok(Val::Vector(v))
}

fn clamp_min(a: &mut Args) -> Result<Val, PromqlError> {
    let lo = a.scalar(1)?;
    let t = a.t;
    let mut v = a.vector(0)?;
    for s in &mut v {
        s.f = if lo.is_nan() || s.f.is_nan() {
            f64::NAN
        } else {
            s.f.max(lo)
        };
        s.t = t;
        s.drop_name = true;
    }
    Ok(Val::Vector(v))
}

fn round(a: &mut Args) -> Result<Val, PromqlError> {
    let to_nearest = if a.len() > 1 { a.scalar(1)? } else { 1.0 };
    let inv = 1.0 / to_nearest;
    let t = a.t;
    let mut v = a.vector(0)?;
    for s in &mut v {
        s.f = (s.f * inv + 0.5).floor() / inv;
        s.t = t;
        s.drop_name = true;
    }
    Ok(Val::Vector(v))
}

fn scalar(a: &mut Args) -> Result<Val, PromqlError> {
    let v = a.vector(0)?;
    Ok(Val::Scalar(if v.len() == 1 { v[0].f } else { f64::NAN }))
}

fn vector(a: &mut Args) -> Result<Val, PromqlError> {
    let f = a.scalar(0)?;
    Ok(Val::Vector(vec![Sample {
        metric: Labels::default(),
        t: a.t,
        f,
        drop_name: false,
    }]))
}

fn timestamp(a: &mut Args) -> Result<Val, PromqlError> {
    let t = a.t;
    let mut v = a.vector(0)?;
    for s in &mut v {
        s.f = s.t as f64 / 1000.0;
        s.t = t;
        s.drop_name = true;
    }
    Ok(Val::Vector(v))
}

fn date(a: &mut Args, f: fn(&chrono::DateTime<Utc>) -> f64) -> Result<Val, PromqlError> {
    let t = a.t;
    let mut v = if a.len() == 0 {
        vec![Sample {
            metric: Labels::default(),
            t,
            f: t as f64 / 1000.0,
            drop_name: false,
        }]
    } else {
        a.vector(0)?
    };
    for s in &mut v {
        let secs = s.f;
        s.f = if secs.is_finite() {
            match Utc.timestamp_opt(secs as i64, 0).single() {
                Some(d) => f(&d),
                None => f64::NAN,
            }
        } else {
            f64::NAN
        };
        s.t = t;
        s.drop_name = true;
    }
    // NaN or infinite timestamps give no date.
    v.retain(|s| !s.f.is_nan());
    Ok(Val::Vector(v))
}

fn days_in_month(d: &chrono::DateTime<Utc>) -> f64 {
    let (y, m) = (d.year(), d.month());
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    match (
        chrono::NaiveDate::from_ymd_opt(y, m, 1),
        chrono::NaiveDate::from_ymd_opt(ny, nm, 1),
    ) {
        (Some(a), Some(b)) => (b - a).num_days() as f64,
        _ => f64::NAN,
    }
}

fn sort(a: &mut Args, desc: bool) -> Result<Val, PromqlError> {
    let mut v = a.vector(0)?;
    // NaN goes last in both orders.
    v.sort_by(|x, y| match (x.f.is_nan(), y.f.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => {
            let o = x.f.partial_cmp(&y.f).unwrap_or(std::cmp::Ordering::Equal);
            if desc { o.reverse() } else { o }
        }
    });
    Ok(Val::Vector(v))
}

fn sort_by_label(a: &mut Args, desc: bool) -> Result<Val, PromqlError> {
    let mut names = Vec::new();
    for i in 1..a.len() {
        names.push(a.string(i)?);
    }
    let mut v = a.vector(0)?;
    v.sort_by(|x, y| {
        for n in &names {
            let o = natural_cmp(x.metric.get(n).unwrap_or(""), y.metric.get(n).unwrap_or(""));
            if o != std::cmp::Ordering::Equal {
                return if desc { o.reverse() } else { o };
            }
        }
        let o = x.metric.cmp(&y.metric);
        if desc { o.reverse() } else { o }
    });
    Ok(Val::Vector(v))
}

/// Compares strings with digit runs compared as numbers (`a2 < a10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx.iter().skip_while(|c| **c == b'0').count();
                let ty = dy.iter().skip_while(|c| **c == b'0').count();
                let o = tx.cmp(&ty).then_with(|| dx[nx - tx..].cmp(&dy[ny - ty..]));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// Labels of `absent()`'s output: the selector's equality matchers.
fn absent_labels(expr: Option<&Expr>) -> Labels {
    let vs = match expr {
        Some(Expr::VectorSelector(vs)) => vs,
        Some(Expr::MatrixSelector(ms)) => &ms.vs,
        _ => return Labels::default(),
    };
    let Ok(sets) = to_matchers(vs) else {
        return Labels::default();
    };
    let Some(ms) = sets.first() else {
        return Labels::default();
    };
    // A label constrained by more than one matcher has no single value to report.
    let mut out = Labels::default();
    for m in ms {
        if m.name != METRIC_NAME
            && m.op == MatchOp::Equal
            && ms.iter().filter(|x| x.name == m.name).count() == 1
        {
            out.set(&m.name, &m.value);
        }
    }
    out
}

fn absent(a: &mut Args) -> Result<Val, PromqlError> {
    let v = a.vector(0)?;
    if !v.is_empty() {
        return Ok(Val::Vector(Vec::new()));
    }
    Ok(Val::Vector(vec![Sample {
        metric: absent_labels(a.exprs.first().map(|b| &**b)),
        t: a.t,
        f: 1.0,
        drop_name: false,
    }]))
}

fn absent_over_time(a: &mut Args) -> Result<Val, PromqlError> {
    let m = a.matrix(0)?;
    if !m.series.is_empty() {
        return Ok(Val::Vector(Vec::new()));
    }
    Ok(Val::Vector(vec![Sample {
        metric: absent_labels(a.exprs.first().map(|b| &**b)),
        t: a.t,
        f: 1.0,
        drop_name: false,
    }]))
}

/// As [`over_time`], but a series whose window reaches into rolled-up
/// history is computed by `rolled` from its 5-minute summaries (raw samples
/// in the same window count as one-sample summaries).
fn over_time_rolled(
    a: &mut Args,
    raw: impl Fn(&[Point]) -> f64,
    rolled: impl Fn(&[RollupPoint]) -> f64,
) -> Result<Val, PromqlError> {
    let t = a.t;
    let m = a.matrix(0)?;
    let aggs = m.aggs;
    Ok(Val::Vector(
        m.series
            .into_iter()
            .enumerate()
            .filter(|(_, s)| !s.points.is_empty())
            .map(|(i, s)| Sample {
                f: match aggs.get(i).and_then(Option::as_deref) {
                    Some(r) if !r.is_empty() => rolled(r),
                    _ => raw(&s.points),
                },
                metric: s.metric,
                t,
                drop_name: true,
            })
            .collect(),
    ))
}

fn rolled_avg(r: &[RollupPoint]) -> f64 {
    rolled_sum(r) / rolled_count(r)
}

fn rolled_max(r: &[RollupPoint]) -> f64 {
    fold_rolled(r, |p| p.max, |m, f| f > m)
}

fn rolled_min(r: &[RollupPoint]) -> f64 {
    fold_rolled(r, |p| p.min, |m, f| f < m)
}

fn rolled_count(r: &[RollupPoint]) -> f64 {
    r.iter().map(|p| p.count as f64).sum()
}

fn rolled_sum(r: &[RollupPoint]) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for p in r {
        (s, c) = kahan_inc(p.sum, s, c);
    }
    s + c
}

fn fold_rolled(
    r: &[RollupPoint],
    field: fn(&RollupPoint) -> f64,
    better: fn(f64, f64) -> bool,
) -> f64 {
    let mut m = field(&r[0]);
    for p in &r[1..] {
        let f = field(p);
        if better(m, f) || m.is_nan() {
            m = f;
        }
    }
    m
}

/// Applies `f` to each series' points of the first argument; drops `__name__`.
fn over_time(a: &mut Args, f: impl Fn(&[Point]) -> f64) -> Result<Val, PromqlError> {
    let t = a.t;
    let m = a.matrix(0)?;
    Ok(Val::Vector(
        m.series
            .into_iter()
            .filter(|s| !s.points.is_empty())
            .map(|s| Sample {
                f: f(&s.points),
                metric: s.metric,
                t,
                drop_name: true,
            })
            .collect(),
    ))
}

fn last_over_time(a: &mut Args) -> Result<Val, PromqlError> {
    let t = a.t;
    let m = a.matrix(0)?;
    Ok(Val::Vector(
        m.series
            .into_iter()
            .filter_map(|s| {
                s.points.last().map(|p| Sample {
                    f: p.f,
                    metric: s.metric.clone(),
                    t,
                    drop_name: s.drop_name,
                })
            })
            .collect(),
    ))
}

fn first_over_time(a: &mut Args) -> Result<Val, PromqlError> {
    let t = a.t;
    let m = a.matrix(0)?;
    Ok(Val::Vector(
        m.series
            .into_iter()
            .filter_map(|s| {
                s.points.first().map(|p| Sample {
                    f: p.f,
                    metric: s.metric.clone(),
                    t,
                    drop_name: s.drop_name,
                })
            })
            .collect(),
    ))
}

fn sum(p: &[Point]) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for x in p {
        (s, c) = kahan_inc(x.f, s, c);
    }
    s + c
}

fn stdvar(p: &[Point]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for x in p {
        count += 1.0;
        let delta = x.f - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (x.f - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn fold_nan_aware(p: &[Point], better: fn(f64, f64) -> bool) -> f64 {
    let mut m = p[0].f;
    for x in &p[1..] {
        if better(m, x.f) || m.is_nan() {
            m = x.f;
        }
    }
    m
}

fn ts_of(p: &[Point], better: fn(f64, f64) -> bool) -> f64 {
    let (mut m, mut ts) = (p[0].f, p[0].t);
    for x in &p[1..] {
        if better(m, x.f) || m.is_nan() {
            m = x.f;
            ts = x.t;
        }
    }
    ts as f64 / 1000.0
}

fn changes(p: &[Point]) -> f64 {
    let mut n = 0.0;
    for w in p.windows(2) {
        if w[1].f != w[0].f && !(w[1].f.is_nan() && w[0].f.is_nan()) {
            n += 1.0;
        }
    }
    n
}

fn resets(p: &[Point]) -> f64 {
    p.windows(2).filter(|w| w[1].f < w[0].f).count() as f64
}

fn mad(p: &[Point]) -> f64 {
    let mut values: Vec<f64> = p.iter().map(|x| x.f).collect();
    let median = quantile(0.5, &mut values);
    let mut dev: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    quantile(0.5, &mut dev)
}

fn quantile_over_time(a: &mut Args) -> Result<Val, PromqlError> {
    let q = a.scalar(0)?;
    let t = a.t;
    let m = a.matrix(1)?;
    Ok(Val::Vector(
        m.series
            .into_iter()
            .map(|s| {
                let mut values: Vec<f64> = s.points.iter().map(|x| x.f).collect();
                Sample {
                    f: quantile(q, &mut values),
                    metric: s.metric,
                    t,
                    drop_name: true,
                }
            })
            .collect(),
    ))
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated
/// towards the window's edges as Prometheus does.
fn extrapolated(a: &mut Args, counter: bool, rate: bool) -> Result<Val, PromqlError> {
    let t = a.t;
    let m = a.matrix(0)?;
    let mut out = Vec::new();
    for (i, s) in m.series.iter().enumerate() {
        let (start, end) = (m.range_start, m.range_end);
        if let Some(f) = extrapolated_rolled(m.aggs_of(i), &s.points, start, end, counter, rate) {
            out.push(Sample {
                metric: s.metric.clone(),
                t,
                f,
                drop_name: true,
            });
        }
    }
    Ok(Val::Vector(out))
}

/// [`extrapolated`] for one series' window: from its rolled-up summaries
/// `r` where it has some (a counter whose every point has one), else from
/// its raw points.
fn extrapolated_rolled(
    r: Option<&[RollupPoint]>,
    p: &[Point],
    range_start: i64,
    range_end: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    match r.filter(|r| counter && !r.is_empty() && r.len() == p.len()) {
        Some(r) => {
            rolled_increase(r, range_start).extrapolate(range_start, range_end, counter, rate, true)
        }
        None => extrapolated_window(p, range_start, range_end, counter, rate),
    }
}

/// [`extrapolated`] for one series' raw points in `(range_start, range_end]`.
fn extrapolated_window(
    p: &[Point],
    range_start: i64,
    range_end: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let mut result = p[p.len() - 1].f - p[0].f;
    if counter {
        let mut prev = p[0].f;
        for x in &p[1..] {
            if x.f < prev {
                result += prev;
            }
            prev = x.f;
        }
    }
    let span = Span {
        first: p[0],
        last: p[p.len() - 1],
        samples: p.len() as f64,
        result,
    };
    span.extrapolate(range_start, range_end, counter, rate, false)
}

/// What `rate` needs of a window: its first and last sample, how many
/// samples lie between them (inclusive) and the (reset-adjusted) change.
struct Span {
    first: Point,
    last: Point,
    samples: f64,
    result: f64,
}

impl Span {
    /// The change extrapolated to the window's edges (per second for
    /// `rate`); `None` when the window cannot tell.
    fn extrapolate(
        &self,
        range_start: i64,
        range_end: i64,
        counter: bool,
        rate: bool,
        rolled: bool,
    ) -> Option<f64> {
        let Span {
            first,
            last,
            samples,
            result,
        } = *self;
        if samples < 2.0 || last.t <= first.t {
            return None;
        }
        let range_secs = (range_end - range_start) as f64 / 1000.0;
        let mut to_start = (first.t - range_start) as f64 / 1000.0;
        let mut to_end = (range_end - last.t) as f64 / 1000.0;
        let sampled = (last.t - first.t) as f64 / 1000.0;
        let avg_step = sampled / (samples - 1.0);
        // In rolled-up history a window edge falls up to a bucket away from
        // the nearest kept sample: that gap is the resolution, not the
        // series starting or ending, so it is extrapolated over.
        let threshold = if rolled {
            avg_step.max(crate::storage::BUCKET_MS as f64 / 1000.0) * 1.1
        } else {
            avg_step * 1.1
        };
        if to_start >= threshold {
            to_start = avg_step / 2.0;
        }
        if counter {
            let mut to_zero = to_start;
            if result > 0.0 && first.f >= 0.0 {
                to_zero = sampled * (first.f / result);
            }
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg_step / 2.0;
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if rate {
            factor /= range_secs;
        }
        Some(result * factor)
    }
}

/// A counter's first and last sample, the number of samples between them
/// (inclusive) and its reset-adjusted increase, from rolled-up history.
/// The increase between consecutive buckets' last samples is the step to
/// the next bucket's first sample plus what the counter gained inside that
/// bucket, resets included — exactly what the raw samples give. When the
/// window holds the first bucket whole, it starts at its first sample, so a
/// window of `n` buckets measures `n` buckets of increase, as raw data does.
///
/// A window holding a single bucket (a 5-minute window) takes that bucket
/// whole even where its first sample lies before the window: its increase
/// over its own span, which extrapolation scales to the window, is the
/// bucket's average rate — with only its last sample there would be none.
fn rolled_increase(r: &[RollupPoint], range_start: i64) -> Span {
    let head = r[0];
    let (first, mut samples, mut result) = if head.first_t >= range_start || r.len() == 1 {
        let p = Point {
            t: head.first_t,
            f: head.first,
        };
        (p, head.count as f64, head.inc)
    } else {
        let p = Point {
            t: head.t,
            f: head.last,
        };
        (p, 1.0, 0.0)
    };
    for w in r.windows(2) {
        result += crate::storage::counter_step(w[0].last, w[1].first) + w[1].inc;
        samples += w[1].count as f64;
    }
    let tail = r[r.len() - 1];
    Span {
        first,
        last: Point {
            t: tail.t,
            f: tail.last,
        },
        samples,
        result,
    }
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(a: &mut Args, rate: bool) -> Result<Val, PromqlError> {
    let t = a.t;
    let m = a.matrix(0)?;
    let mut out = Vec::new();
    for s in m.series {
        if let Some(f) = instant_value_window(&s.points, rate) {
            out.push(Sample {
                metric: s.metric,
                t,
                f,
                drop_name: true,
            });
        }
    }
    Ok(Val::Vector(out))
}

/// [`instant_value`] for one series' window.
fn instant_value_window(p: &[Point], rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut v = if rate && last.f < prev.f {
        last.f
    } else {
        last.f - prev.f
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    if rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares slope and intercept at `intercept_t` (ms).
fn linear_regression(p: &[Point], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].f;
    let mut const_y = true;
    for (i, s) in p.iter().enumerate() {
        if const_y && i > 0 && s.f != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (s.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(s.f, sy, cy);
        (sxy, cxy) = kahan_inc(x * s.f, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn deriv(a: &mut Args) -> Result<Val, PromqlError> {
    let t = a.t;
    let m = a.matrix(0)?;
    Ok(Val::Vector(
        m.series
            .into_iter()
            .filter(|s| s.points.len() >= 2)
            .map(|s| Sample {
                f: linear_regression(&s.points, s.points[0].t).0,
                metric: s.metric,
                t,
                drop_name: true,
            })
            .collect(),
    ))
}

fn predict_linear(a: &mut Args) -> Result<Val, PromqlError> {
    let secs = a.scalar(1)?;
    let t = a.t;
    let m = a.matrix(0)?;
    Ok(Val::Vector(
        m.series
            .into_iter()
            .filter(|s| s.points.len() >= 2)
            .map(|s| {
                let (slope, intercept) = linear_regression(&s.points, t);
                Sample {
                    f: slope * secs + intercept,
                    metric: s.metric,
                    t,
                    drop_name: true,
                }
            })
            .collect(),
    ))
}

fn double_exponential_smoothing(a: &mut Args) -> Result<Val, PromqlError> {
    let (sf, tf) = (a.scalar(1)?, a.scalar(2)?);
    if !(sf > 0.0 && sf < 1.0) {
        return Err(PromqlError::Execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf}"
        )));
    }
    if !(tf > 0.0 && tf < 1.0) {
        return Err(PromqlError::Execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf}"
        )));
    }
    let t = a.t;
    let m = a.matrix(0)?;
    let mut out = Vec::new();
    for s in m.series {
        let p = &s.points;
        if p.len() < 2 {
            continue;
        }
        let (mut s0, mut s1) = (0.0, p[0].f);
        let mut b = p[1].f - p[0].f;
        for (i, x) in p.iter().enumerate().skip(1) {
            if i > 1 {
                b = tf * (s1 - s0) + (1.0 - tf) * b;
            }
            let next = sf * x.f + (1.0 - sf) * (s1 + b);
            s0 = s1;
            s1 = next;
        }
        out.push(Sample {
            metric: s.metric,
            t,
            f: s1,
            drop_name: true,
        });
    }
    Ok(Val::Vector(out))
}

fn label_replace(a: &mut Args) -> Result<Val, PromqlError> {
    let dst_arg = a.go_string(1)?;
    let repl = a.string(2)?;
    let src = a.string(3)?;
    let re_arg = a.go_string(4)?;
    let re_src = &re_arg.text;
    let compiled = if re_arg.valid_utf8 {
        regex::Regex::new(&format!("^(?s:{re_src})$")).map_err(|e| e.to_string())
    } else {
        // Go's regexp refuses patterns that are not UTF-8.
        Err("invalid UTF-8".to_string())
    };
    let re = compiled.map_err(|e| {
        PromqlError::Execution(format!(
            "invalid regular expression in label_replace(): {re_src}: {e}"
        ))
    })?;
    let dst = dst_arg.text.clone();
    if !dst_arg.is_valid_label_name() {
        return Err(PromqlError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut v = a.vector(0)?;
    let limit = a.max_label_value;
    let mut built = 0usize;
    for s in &mut v {
        let Some(res) = expand_bounded(&re, s.metric.get(&src).unwrap_or(""), &repl, limit) else {
            continue;
        };
        let res = res.ok_or_else(|| too_long_label("label_replace", &dst, limit))?;
        built += res.len();
        a.budget.fits(0, built)?;
        s.metric.set(&dst, &res);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    check_unique_after_drop(&v)?;
    Ok(Val::Vector(v))
}

/// `repl` with `$1`, `${name}`… filled from `re`'s match of `value` (the
/// regex crate's syntax); `None` when `re` does not match, `Some(None)` when
/// the result would pass `limit` bytes. Nothing longer than `limit` plus the
/// template's literal text is ever built, so `$1$1$1$1` nested in
/// `label_replace` calls cannot grow a value without bound.
fn expand_bounded(
    re: &regex::Regex,
    value: &str,
    repl: &str,
    limit: usize,
) -> Option<Option<String>> {
    let caps = re.captures(value)?;
    let mut res = String::new();
    let mut over = false;
    regex_automata::util::interpolate::string(
        repl,
        |i, dst| match caps.get(i) {
            Some(m) if !over && dst.len() + m.len() <= limit => dst.push_str(m.as_str()),
            Some(_) => over = true,
            None => {}
        },
        |name| re.capture_names().position(|n| n == Some(name)),
        &mut res,
    );
    Some((!over && res.len() <= limit).then_some(res))
}

/// The error for a label value longer than `query.max_label_value_bytes`.
fn too_long_label(func: &str, dst: &str, limit: usize) -> PromqlError {
    PromqlError::Execution(format!(
        "{func}(): the value of label {dst:?} would be longer than {limit} bytes (query.max_label_value_bytes)"
    ))
}

fn label_join(a: &mut Args) -> Result<Val, PromqlError> {
    let dst_arg = a.go_string(1)?;
    let dst = dst_arg.text.clone();
    let sep = a.string(2)?;
    let mut srcs = Vec::new();
    for i in 3..a.len() {
        srcs.push(a.string(i)?);
    }
    if !dst_arg.is_valid_label_name() {
        return Err(PromqlError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut v = a.vector(0)?;
    let limit = a.max_label_value;
    let mut built = 0usize;
    for s in &mut v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.metric.get(n).unwrap_or("")).collect();
        let len = joined.iter().map(|x| x.len()).sum::<usize>()
            + sep.len().saturating_mul(joined.len().saturating_sub(1));
        if len > limit {
            return Err(too_long_label("label_join", &dst, limit));
        }
        built += len;
        a.budget.fits(0, built)?;
        let joined = joined.join(&sep);
        s.metric.set(&dst, &joined);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    check_unique_after_drop(&v)?;
    Ok(Val::Vector(v))
}

fn check_unique_after_drop(v: &[Sample]) -> Result<(), PromqlError> {
    let keyed: Vec<Sample> = v
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if s.drop_name {
                drop_name_labels(&mut s.metric);
            }
            s
        })
        .collect();
    check_unique(&keyed)
}

/// Classic buckets grouped by their labels without `le` and `__name__`.
/// Two buckets with the same `le` text in one group come from different
/// metrics whose names were dropped: Prometheus reports a label set collision.
/// Series labels (without `le`) with their (upper bound, count) buckets.
type BucketGroups = Vec<(Labels, Vec<(f64, f64)>)>;

/// Buckets grouped by their labels without `le` and the name, in order of
/// first appearance. Label sets go through the call's memo (variant 0: the
/// set without the name, for the duplicate check; 1: the group key), which
/// interns them, so both lookups are by id.
fn bucket_groups(v: Vec<Sample>, memo: &mut LabelMemo) -> Result<BucketGroups, PromqlError> {
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut index: FxHashMap<usize, usize> =
        FxHashMap::with_capacity_and_hasher(v.len(), Default::default());
    let mut seen: FxHashSet<usize> =
        FxHashSet::with_capacity_and_hasher(v.len(), Default::default());
    for s in v {
        let Some(le) = s.metric.get("le").and_then(parse_le) else {
            continue;
        };
        let full = memo.get_variant(&s.metric, 0, |m| {
            let mut full = m.clone();
            drop_name_labels(&mut full);
            full
        });
        if !seen.insert(full.ptr_id()) {
            return Err(super::engine::dup_labelset());
        }
        let key = memo.get_variant(&s.metric, 1, |m| {
            let mut key = m.clone();
            key.remove("le");
            drop_name_labels(&mut key);
            key
        });
        let i = *index.entry(key.ptr_id()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push((le, s.f));
    }
    Ok(groups)
}

/// A bucket's upper bound from its `le` label.
pub(crate) fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// Sorts buckets, merges equal bounds and forces counts monotonic.
fn prepare_buckets(b: &mut Vec<(f64, f64)>) -> bool {
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|x| x.0 != f64::INFINITY) {
        return false;
    }
    // Merged in place (the range path reuses `b` at every step).
    let mut kept = 0;
    for r in 0..b.len() {
        let (le, c) = b[r];
        if kept > 0 && b[kept - 1].0 == le {
            b[kept - 1].1 += c;
        } else {
            b[kept] = (le, c);
            kept += 1;
        }
    }
    b.truncate(kept);
    let mut prev = b[0].1;
    for x in b.iter_mut().skip(1) {
        let cur = x.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) || cur < prev {
            x.1 = prev;
            continue;
        }
        prev = cur;
    }
    true
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < eps * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// The φ-quantile of classic buckets (upper bound, cumulative count), in
/// any order; `b` is left sorted and merged.
pub(crate) fn bucket_quantile(q: f64, b: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if !prepare_buckets(b) || b.len() < 2 {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = b.len() - 1;
    let idx = b[..n].partition_point(|x| x.1 < rank);
    if idx == n {
        return b[n - 1].0;
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let (mut start, end, mut count) = (0.0, b[idx].0, b[idx].1);
    if idx > 0 {
        start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// The fraction of observations of classic buckets between `lower` and
/// `upper`; `b` is left sorted and merged.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, b: &mut Vec<(f64, f64)>) -> f64 {
    if !prepare_buckets(b) {
        return f64::NAN;
    }
    let count = b[b.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for i in 0..b.len() {
        let lo = if i == 0 {
            if b[0].0 > 0.0 { 0.0 } else { f64::NEG_INFINITY }
        } else {
            b[i - 1].0
        };
        let hi = b[i].0;
        let c = b[i].1;
        let interp = |v: f64| {
            if lo == f64::NEG_INFINITY || hi == f64::INFINITY {
                rank
            } else {
                rank + (c - rank) * (v - lo) / (hi - lo)
            }
        };
        if !lower_set && lo >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lo >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lo < lower && hi > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lo < upper && hi > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = c;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

fn histogram_quantile(a: &mut Args) -> Result<Val, PromqlError> {
    let q = a.scalar(0)?;
    let t = a.t;
    let v = a.vector(1)?;
    let mut out = Vec::new();
    for (metric, mut buckets) in bucket_groups(v, a.memos.of(a.node, MemoKind::Bucket))? {
        out.push(Sample {
            metric,
            t,
            f: bucket_quantile(q, &mut buckets),
            drop_name: false,
        });
    }
    Ok(Val::Vector(out))
}

fn histogram_fraction(a: &mut Args) -> Result<Val, PromqlError> {
    let (lower, upper) = (a.scalar(0)?, a.scalar(1)?);
    let t = a.t;
    let v = a.vector(2)?;
    let mut out = Vec::new();
    for (metric, mut buckets) in bucket_groups(v, a.memos.of(a.node, MemoKind::Bucket))? {
        out.push(Sample {
            metric,
            t,
            f: bucket_fraction(lower, upper, &mut buckets),
            drop_name: false,
        });
    }
    Ok(Val::Vector(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(0.5, &mut [1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn bucket_quantile_classic() {
        let b = vec![
            (0.1, 10.0),
            (0.5, 50.0),
            (1.0, 90.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((bucket_quantile(0.5, &mut b.clone()) - 0.5).abs() < 1e-9);
        assert_eq!(bucket_quantile(0.99, &mut b.clone()), 1.0);
        assert!(bucket_quantile(0.5, &mut vec![(1.0, 3.0)]).is_nan());
        assert!((bucket_fraction(0.0, 0.5, &mut b.clone()) - 0.5).abs() < 1e-9);
        // Equal bounds merge (their counts add up), in place.
        let mut m = vec![(1.0, 2.0), (f64::INFINITY, 5.0), (1.0, 1.0), (0.5, 1.0)];
        assert!(prepare_buckets(&mut m));
        assert_eq!(m, vec![(0.5, 1.0), (1.0, 3.0), (f64::INFINITY, 5.0)]);
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a2", "a10"), std::cmp::Ordering::Less);
        assert_eq!(natural_cmp("b", "a10"), std::cmp::Ordering::Greater);
    }
}
