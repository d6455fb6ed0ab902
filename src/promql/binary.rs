//! Binary operators: arithmetic, comparisons (with and without `bool`), set
//! operators, and vector matching (`on`/`ignoring`, `group_left`/`group_right`).

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::PromqlError;
use super::engine::{Evaluator, Val, drop_name_labels};
use super::value::Sample;
use crate::model::{Labels, METRIC_NAME};

/// Evaluates `lhs op rhs` at `t`.
pub(crate) fn eval(ev: &mut Evaluator, b: &BinaryExpr, t: i64) -> Result<Val, PromqlError> {
    let op = b.op.id();
    let return_bool = b.return_bool();
    let lhs = ev.eval(&b.lhs, t)?;
    // `and`/`unless` with an empty left side need not look at the right.
    let rhs = ev.eval(&b.rhs, t)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let (v, keep) = apply(op, l, r)?;
            let v = if is_comparison(op) {
                if keep { 1.0 } else { 0.0 }
            } else {
                v
            };
            Ok(Val::Scalar(v))
        }
        (Val::Vector(l), Val::Scalar(r)) => {
            Ok(Val::Vector(vector_scalar(op, l, r, false, return_bool, t)?))
        }
        (Val::Scalar(l), Val::Vector(r)) => {
            Ok(Val::Vector(vector_scalar(op, r, l, true, return_bool, t)?))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let card = b
                .modifier
                .as_ref()
                .map(|m| m.card.clone())
                .unwrap_or(VectorMatchCardinality::OneToOne);
            let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
            match op {
                token::T_LAND => Ok(Val::Vector(and_unless(l, r, &matching, true))),
                token::T_LUNLESS => Ok(Val::Vector(and_unless(l, r, &matching, false))),
                token::T_LOR => Ok(Val::Vector(or(l, r, &matching))),
                _ => Ok(Val::Vector(vector_vector(
                    op,
                    l,
                    r,
                    &card,
                    &matching,
                    return_bool,
                    t,
                )?)),
            }
        }
        (l, r) => Err(PromqlError::Execution(format!(
            "binary operator on unsupported operand types {} and {}",
            kind(&l),
            kind(&r)
        ))),
    }
}

fn kind(v: &Val) -> &'static str {
    match v {
        Val::Scalar(_) => "scalar",
        Val::Str(_) => "string",
        Val::Vector(_) => "vector",
        Val::Matrix(_) => "matrix",
    }
}

fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

/// The value of `l op r` and, for comparisons, whether the pair is kept
/// (the value is then `l`).
fn apply(op: TokenId, l: f64, r: f64) -> Result<(f64, bool), PromqlError> {
    Ok(match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        token::T_MOD => (l % r, true),
        token::T_POW => (l.powf(r), true),
        token::T_ATAN2 => (l.atan2(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        _ => {
            return Err(PromqlError::Execution(format!(
                "operator {op} not allowed here"
            )));
        }
    })
}

fn vector_scalar(
    op: TokenId,
    v: Vec<Sample>,
    scalar: f64,
    scalar_left: bool,
    return_bool: bool,
    t: i64,
) -> Result<Vec<Sample>, PromqlError> {
    let cmp = is_comparison(op);
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let (l, r) = if scalar_left {
            (scalar, s.f)
        } else {
            (s.f, scalar)
        };
        let (mut value, keep) = apply(op, l, r)?;
        if cmp && scalar_left {
            // A comparison keeps the vector's value, even on the right.
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        if !cmp || return_bool {
            s.drop_name = true;
        }
        s.f = value;
        s.t = t;
        out.push(s);
    }
    Ok(out)
}

/// The labels two sides are matched on.
fn signature(metric: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(names)) => {
            let mut out = metric.clone();
            out.retain(|l| names.labels.iter().any(|n| n == &l.name));
            out
        }
        Some(LabelModifier::Exclude(names)) => {
            let mut out = metric.clone();
            out.retain(|l| l.name != METRIC_NAME && !names.labels.iter().any(|n| n == &l.name));
            out
        }
        None => {
            // Only the name: `__type__`/`__unit__` still tell series apart here.
            let mut out = metric.clone();
            out.remove(METRIC_NAME);
            out
        }
    }
}

fn and_unless(
    l: Vec<Sample>,
    r: Vec<Sample>,
    matching: &Option<LabelModifier>,
    and: bool,
) -> Vec<Sample> {
    let right: HashSet<Labels> = r.iter().map(|s| signature(&s.metric, matching)).collect();
    l.into_iter()
        .filter(|s| right.contains(&signature(&s.metric, matching)) == and)
        .collect()
}

fn or(l: Vec<Sample>, r: Vec<Sample>, matching: &Option<LabelModifier>) -> Vec<Sample> {
    let left: HashSet<Labels> = l.iter().map(|s| signature(&s.metric, matching)).collect();
    let mut out = l;
    out.extend(
        r.into_iter()
            .filter(|s| !left.contains(&signature(&s.metric, matching))),
    );
    out
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    card: &VectorMatchCardinality,
    matching: &Option<LabelModifier>,
    return_bool: bool,
    t: i64,
) -> Result<Vec<Sample>, PromqlError> {
    let cmp = is_comparison(op);
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    // The "many" side is iterated; the "one" side is looked up.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<Labels, Sample> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = signature(&s.metric, matching);
        if let Some(prev) = one_by_sig.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(PromqlError::Execution(format!(
                "found duplicate series for the match group {sig} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                s.metric, prev.metric
            )));
        }
        one_by_sig.insert(sig, s);
    }
    let include: &[String] = match card {
        VectorMatchCardinality::ManyToOne(ls) | VectorMatchCardinality::OneToMany(ls) => &ls.labels,
        _ => &[],
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut matched_sigs: HashSet<Labels> = HashSet::new();
    let mut result_metrics: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for ms in many {
        let sig = signature(&ms.metric, matching);
        let Some(os) = one_by_sig.get(&sig) else {
            continue;
        };
        let (l, r) = if one_to_many {
            (os.f, ms.f)
        } else {
            (ms.f, os.f)
        };
        let (mut value, keep) = apply(op, l, r)?;
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let drop_name = (!cmp || return_bool) || ms.drop_name;
        let mut metric = ms.metric.clone();
        if one_to_one {
            match matching {
                Some(LabelModifier::Include(names)) => {
                    metric.retain(|l| names.labels.iter().any(|n| n == &l.name))
                }
                Some(LabelModifier::Exclude(names)) => {
                    metric.retain(|l| !names.labels.iter().any(|n| n == &l.name))
                }
                None => {}
            }
        }
        for name in include {
            metric.set(name, os.metric.get(name).unwrap_or(""));
        }
        if one_to_one {
            if !matched_sigs.insert(sig) {
                return Err(PromqlError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
        } else {
            let mut key = metric.clone();
            if drop_name {
                drop_name_labels(&mut key);
            }
            if !result_metrics.insert(key) {
                return Err(PromqlError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
        }
        out.push(Sample {
            metric,
            t,
            f: value,
            drop_name,
        });
    }
    Ok(out)
}
