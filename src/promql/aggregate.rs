//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`…)
//! with `by`/`without` grouping.

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, LabelModifier};
use rustc_hash::FxHashMap;

use super::PromqlError;
use super::engine::{Evaluator, Val, is_name_label, node_id};
use super::functions::{kahan_inc, quantile};
use super::memo::MemoKind;
use super::value::{Sample, format_float};
use crate::model::{Labels, METRIC_NAME};

/// Evaluates an aggregation at `t`.
pub(crate) fn eval(ev: &mut Evaluator, a: &AggregateExpr, t: i64) -> Result<Val, PromqlError> {
    if let Some(v) = ev.aggregate_column(a, t)? {
        return Ok(v);
    }
    let op = a.op.id();
    let param = match &a.param {
        Some(p) => Some(ev.eval(p, t)?),
        None => None,
    };
    let input = ev.eval(&a.expr, t)?.into_vector()?;
    let grouping = &a.modifier;

    // Groups in order of first appearance. Keys come interned from the memo,
    // so a group is the id of its key.
    let memo = ev.memos.of(node_id(a), MemoKind::Group);
    let mut index: FxHashMap<usize, usize> =
        FxHashMap::with_capacity_and_hasher(input.len(), Default::default());
    let mut groups: Vec<(Labels, Vec<Sample>)> = Vec::new();
    for s in input {
        let key = memo.get(&s.metric, |m| group_labels(m, grouping));
        let i = *index.entry(key.ptr_id()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(s);
    }

    let mut out = Vec::with_capacity(groups.len());
    match op {
        token::T_TOPK | token::T_BOTTOMK | token::T_LIMITK => {
            let k = param_scalar(param, "k")?;
            if k.is_nan() {
                return Err(PromqlError::Execution("Parameter value is NaN".into()));
            }
            if k < 1.0 {
                return Ok(Val::Vector(Vec::new()));
            }
            let k = if k > i64::MAX as f64 {
                usize::MAX
            } else {
                k as usize
            };
            for (_, mut members) in groups {
                if op == token::T_LIMITK {
                    members.truncate(k);
                } else {
                    let top = op == token::T_TOPK;
                    // NaN sorts last in both directions.
                    members.sort_by(|x, y| {
                        let o = match (x.f.is_nan(), y.f.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => return std::cmp::Ordering::Greater,
                            (false, true) => return std::cmp::Ordering::Less,
                            _ => x.f.partial_cmp(&y.f).unwrap_or(std::cmp::Ordering::Equal),
                        };
                        if top { o.reverse() } else { o }
                    });
                    members.truncate(k);
                }
                for mut s in members {
                    s.t = t;
                    out.push(s);
                }
            }
            return Ok(Val::Vector(out));
        }
        token::T_LIMIT_RATIO => {
            let r = param_scalar(param, "ratio")?;
            if r.is_nan() {
                return Err(PromqlError::Execution("Ratio value is NaN".into()));
            }
            let r = r.clamp(-1.0, 1.0);
            for (_, members) in groups {
                for mut s in members {
                    // The same series always falls on the same side of the cut,
                    // at every step and in Prometheus: its label hash decides.
                    let offset = label_hash(&s.metric) as f64 / u64::MAX as f64;
                    if (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r) {
                        s.t = t;
                        out.push(s);
                    }
                }
            }
            return Ok(Val::Vector(out));
        }
        token::T_COUNT_VALUES => {
            let label = match param {
                Some(Val::Str(s)) if s.is_valid_label_name() => s.text,
                Some(Val::Str(s)) => {
                    return Err(PromqlError::Execution(format!(
                        "invalid label name {:?}",
                        s.text
                    )));
                }
                _ => {
                    return Err(PromqlError::Execution(
                        "count_values needs a string parameter".into(),
                    ));
                }
            };
            for (key, members) in groups {
                // In order of first appearance; the index keeps many
                // distinct values from costing quadratic time.
                let mut counts: Vec<(String, f64)> = Vec::new();
                let mut index: FxHashMap<String, usize> = FxHashMap::default();
                for s in members {
                    let v = format_float(s.f);
                    match index.get(&v) {
                        Some(&i) => counts[i].1 += 1.0,
                        None => {
                            index.insert(v.clone(), counts.len());
                            counts.push((v, 1.0));
                        }
                    }
                }
                for (v, n) in counts {
                    let mut metric = key.clone();
                    metric.set(&label, &v);
                    out.push(Sample {
                        metric,
                        t,
                        f: n,
                        drop_name: false,
                    });
                }
            }
            return Ok(Val::Vector(out));
        }
        _ => {}
    }

    let q = if op == token::T_QUANTILE {
        param_scalar(param, "quantile")?
    } else {
        0.0
    };
    // One buffer for every group's values.
    let mut values: Vec<f64> = Vec::new();
    for (key, members) in groups {
        let drop_name =
            key.get(METRIC_NAME).is_some() && members.first().is_some_and(|s| s.drop_name);
        values.clear();
        values.extend(members.iter().map(|s| s.f));
        let f = aggregate_floats(op, &mut values, q)?;
        out.push(Sample {
            metric: key,
            t,
            f,
            drop_name,
        });
    }
    Ok(Val::Vector(out))
}

fn param_scalar(param: Option<Val>, what: &str) -> Result<f64, PromqlError> {
    match param {
        Some(Val::Scalar(f)) => Ok(f),
        _ => Err(PromqlError::Execution(format!(
            "aggregation needs a scalar {what} parameter"
        ))),
    }
}

/// Prometheus' `labels.Hash`: xxHash64 of `name 0xff value 0xff` for each label.
fn label_hash(l: &Labels) -> u64 {
    let mut buf = Vec::with_capacity(256);
    for x in l.iter() {
        buf.extend_from_slice(x.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(x.value.as_bytes());
        buf.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&buf, 0)
}

/// The grouping key of `metric` (without `by` or `without`: the empty set).
pub(crate) fn group_labels(metric: &Labels, grouping: &Option<LabelModifier>) -> Labels {
    let mut out = metric.clone();
    match grouping {
        Some(LabelModifier::Include(names)) => {
            out.retain(|l| names.labels.iter().any(|n| n == &l.name))
        }
        Some(LabelModifier::Exclude(names)) => {
            out.retain(|l| !is_name_label(&l.name) && !names.labels.iter().any(|n| n == &l.name))
        }
        None => return Labels::default(),
    }
    out
}

/// The aggregation `op` of one group's values, in member order (`quantile`
/// sorts them in place); `q` is `quantile`'s parameter.
pub(crate) fn aggregate_floats(
    op: TokenId,
    values: &mut [f64],
    q: f64,
) -> Result<f64, PromqlError> {
    let n = values.len() as f64;
    Ok(match op {
        token::T_SUM => {
            let (mut sum, mut c) = (0.0, 0.0);
            for &f in values.iter() {
                (sum, c) = kahan_inc(f, sum, c);
            }
            sum + c
        }
        token::T_AVG => avg(values.iter().copied()),
        token::T_COUNT => n,
        token::T_GROUP => 1.0,
        token::T_MAX => {
            let mut m = values[0];
            for &f in &values[1..] {
                if f > m || m.is_nan() {
                    m = f;
                }
            }
            m
        }
        token::T_MIN => {
            let mut m = values[0];
            for &f in &values[1..] {
                if f < m || m.is_nan() {
                    m = f;
                }
            }
            m
        }
        token::T_STDDEV | token::T_STDVAR => {
            let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &f in values.iter() {
                count += 1.0;
                let delta = f - (mean + c_mean);
                (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
                (aux, c_aux) = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux);
            }
            let var = (aux + c_aux) / count;
            if op == token::T_STDDEV {
                var.sqrt()
            } else {
                var
            }
        }
        token::T_QUANTILE => quantile(q, values),
        other => {
            return Err(PromqlError::Execution(format!(
                "aggregation operator {other} is not supported"
            )));
        }
    })
}

/// The mean Prometheus computes: a Kahan sum, switching to an incremental
/// mean when the sum overflows.
pub(crate) fn avg(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c, mut count) = (0.0f64, 0.0f64, 0.0f64);
    let mut incremental = false;
    let mut mean = 0.0f64;
    for f in values {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(f, sum, c);
            if !ns.is_infinite() || count == 1.0 {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(f / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        (sum + c) / count
    }
}
