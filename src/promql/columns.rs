//! Aggregations and classic-histogram functions over a range query's whole
//! step grid at once.
//!
//! Step by step, `histogram_quantile(0.95, sum by (le) (rate(x[5m])))` would
//! build, at every step, a fresh vector of cloned label sets, a group map
//! for `sum`, and a bucket map for `histogram_quantile` that parses every
//! series' `le` again. Over a range query the input series are the same at
//! every step, so here each input series' group (and `le`) is found once,
//! and each step only adds its values into per-group scratch buffers that
//! are reused from step to step. The result of every step is kept for the
//! node as columns; each step then only hands out its own.
//!
//! Results are those of the step-by-step operators, in the same order:
//! groups in order of first appearance at each step, members in input order
//! (float sums depend on it), `__name__` dropped as there. Inputs qualify
//! when they are themselves column-evaluated: a one-pass window call (see
//! `window`), an instant selector, or another node evaluated here. Anything
//! else (a parameter that is not a number literal, `topk` and the other
//! per-sample operators, a duplicate bucket that must fail) takes the
//! step-by-step path, which reports the errors.

use std::sync::Arc;

use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::{AggregateExpr, Call, Expr};
use rustc_hash::FxHashMap;

use super::PromqlError;
use super::aggregate::{aggregate_floats, group_labels};
use super::budget::{SAMPLE_BYTES, SERIES_BYTES};
use super::engine::{Evaluator, Val, drop_name_labels, node_id};
use super::functions::{bucket_fraction, bucket_quantile, parse_le};
use super::memo::MemoKind;
use super::value::Sample;
use super::window::{StepSamples, StepValues};
use crate::model::{Labels, METRIC_NAME};

/// A sequence of instant vectors, one per step of the range query, over one
/// table of label sets.
pub(crate) struct Cols {
    /// Label sets the entries refer to, each with its `drop_name` mark.
    pub series: Vec<(Labels, bool)>,
    /// Step `i`'s entries are `entries[starts[i]..starts[i + 1]]`.
    pub starts: Vec<usize>,
    /// (index into `series`, value), in each step's vector order.
    pub entries: Vec<(u32, f64)>,
}

impl Cols {
    /// Empty columns for `steps` steps over `series`.
    pub fn new(series: Vec<(Labels, bool)>, steps: usize) -> Self {
        let mut starts = Vec::with_capacity(steps + 1);
        starts.push(0);
        Cols {
            series,
            starts,
            entries: Vec::new(),
        }
    }

    /// Ends the step being filled.
    pub fn end_step(&mut self) {
        self.starts.push(self.entries.len());
    }

    /// Step `i`'s entries.
    pub fn step(&self, i: usize) -> &[(u32, f64)] {
        &self.entries[self.starts[i]..self.starts[i + 1]]
    }

    /// The instant vector at step `i` (time `t`).
    fn at(&self, i: usize, t: i64) -> Vec<Sample> {
        self.step(i)
            .iter()
            .map(|&(s, f)| {
                let (metric, drop_name) = &self.series[s as usize];
                Sample {
                    metric: metric.clone(),
                    t,
                    f,
                    drop_name: *drop_name,
                }
            })
            .collect()
    }
}

/// The operators [`aggregate_floats`] computes from values alone.
const FLOAT_AGGREGATIONS: [TokenId; 9] = [
    token::T_SUM,
    token::T_AVG,
    token::T_COUNT,
    token::T_GROUP,
    token::T_MAX,
    token::T_MIN,
    token::T_STDDEV,
    token::T_STDVAR,
    token::T_QUANTILE,
];

/// Bytes one kept entry stands for (value, series index, step bookkeeping).
const ENTRY_BYTES: usize = SAMPLE_BYTES;

/// A number literal, possibly in parentheses.
fn literal(e: &Expr) -> Option<f64> {
    match e {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Paren(p) => literal(&p.expr),
        _ => None,
    }
}

/// Whether `c` is one of the classic-histogram functions evaluated here.
fn is_bucket_function(c: &Call) -> bool {
    matches!(c.func.name, "histogram_quantile" | "histogram_fraction")
}

/// Where an input's values over all steps are kept.
enum Source {
    /// A node evaluated here.
    Cols(Arc<Cols>),
    /// A one-pass window call (`Evaluator::windows`), by node id.
    Window(usize),
    /// An instant selector (`Evaluator::selectors`), by node id.
    Selector(usize),
}

/// An input's values over all steps, read in place.
enum View<'a> {
    Cols(&'a Cols),
    Window(&'a StepValues),
    Selector(&'a StepSamples),
}

impl<'a> View<'a> {
    fn of(
        src: &'a Source,
        windows: &'a FxHashMap<usize, Option<StepValues>>,
        selectors: &'a FxHashMap<usize, StepSamples>,
    ) -> Option<Self> {
        Some(match src {
            Source::Cols(c) => View::Cols(c),
            Source::Window(id) => View::Window(windows.get(id)?.as_ref()?),
            Source::Selector(id) => View::Selector(selectors.get(id)?),
        })
    }

    /// The label sets of the input's series.
    fn labels(&self) -> Vec<&'a Labels> {
        match self {
            View::Cols(c) => c.series.iter().map(|(l, _)| l).collect(),
            View::Window(w) => w.series.iter().map(|(l, _)| l).collect(),
            View::Selector(s) => s.series.iter().map(|(l, _)| l).collect(),
        }
    }

    /// Whether series `j` is marked for `__name__` removal.
    fn drop_name(&self, j: usize) -> bool {
        match self {
            View::Cols(c) => c.series[j].1,
            View::Window(w) => w.drop_name,
            View::Selector(_) => false,
        }
    }

    /// Calls `f(series, value)` for step `i`'s vector, in its order.
    fn for_each(&self, i: usize, mut f: impl FnMut(usize, f64)) {
        match self {
            View::Cols(c) => c.step(i).iter().for_each(|&(j, v)| f(j as usize, v)),
            View::Window(w) => {
                for (j, (_, values)) in w.series.iter().enumerate() {
                    if let Some(v) = values[i] {
                        f(j, v);
                    }
                }
            }
            View::Selector(s) => {
                for (j, (_, samples)) in s.series.iter().enumerate() {
                    if let Some(x) = samples[i] {
                        f(j, x.value);
                    }
                }
            }
        }
    }
}

/// Per group, for one step: whether it was seen at this step (the step's
/// index), the members' values, and the first member's `drop_name`.
struct Scratch<T> {
    seen_at: Vec<usize>,
    values: Vec<Vec<T>>,
    first_drop: Vec<bool>,
    /// Groups in order of first appearance at this step.
    order: Vec<u32>,
}

impl<T> Scratch<T> {
    fn new(groups: usize) -> Self {
        Scratch {
            seen_at: vec![usize::MAX; groups],
            values: (0..groups).map(|_| Vec::new()).collect(),
            first_drop: vec![false; groups],
            order: Vec::new(),
        }
    }

    /// Adds `v` to group `g` at step `i`.
    fn add(&mut self, i: usize, g: u32, v: T, drop_name: bool) {
        let gi = g as usize;
        if self.seen_at[gi] != i {
            self.seen_at[gi] = i;
            self.values[gi].clear();
            self.first_drop[gi] = drop_name;
            self.order.push(g);
        }
        self.values[gi].push(v);
    }
}

/// Interns `key` as a dense group index.
fn group_index(index: &mut FxHashMap<usize, u32>, keys: &mut Vec<Labels>, key: Labels) -> u32 {
    *index.entry(key.ptr_id()).or_insert_with(|| {
        keys.push(key);
        (keys.len() - 1) as u32
    })
}

impl Evaluator {
    /// The aggregation `a` at `t` from its evaluation over all steps, when
    /// it qualifies (see the module doc); `None` sends it down the
    /// step-by-step path.
    pub(crate) fn aggregate_column(
        &mut self,
        a: &AggregateExpr,
        t: i64,
    ) -> Result<Option<Val>, PromqlError> {
        let Some(i) = self.grid_step(t) else {
            return Ok(None);
        };
        let cols = self.cached(node_id(a), |ev| ev.aggregate_columns(a))?;
        Ok(cols.map(|c| Val::Vector(c.at(i, t))))
    }

    /// The call `c` at `t` from its evaluation over all steps, when it is a
    /// classic-histogram function that qualifies; `None` otherwise.
    pub(crate) fn call_column(&mut self, c: &Call, t: i64) -> Result<Option<Val>, PromqlError> {
        if !is_bucket_function(c) {
            return Ok(None);
        }
        let Some(i) = self.grid_step(t) else {
            return Ok(None);
        };
        let cols = self.cached(node_id(c), |ev| ev.bucket_columns(c))?;
        Ok(cols.map(|c| Val::Vector(c.at(i, t))))
    }

    /// The columns of node `id`, computed by `compute` on first use.
    fn cached(
        &mut self,
        id: usize,
        compute: impl FnOnce(&mut Self) -> Result<Option<Cols>, PromqlError>,
    ) -> Result<Option<Arc<Cols>>, PromqlError> {
        if !self.columns.contains_key(&id) {
            let cols = compute(self)?.map(Arc::new);
            self.columns.insert(id, cols);
        }
        Ok(self.columns[&id].clone())
    }

    /// The index of `t` on the range query's step grid (`None` in tests
    /// that send every node down the step-by-step path).
    fn grid_step(&self, t: i64) -> Option<usize> {
        #[cfg(test)]
        if super::window::tests::STEP_BY_STEP.get() {
            return None;
        }
        self.grid_index(t)
    }

    /// Evaluates `e` over all steps when it is evaluated by columns; where
    /// its values are.
    fn input_source(&mut self, e: &Expr) -> Result<Option<Source>, PromqlError> {
        let cols = match e {
            Expr::Paren(p) => return self.input_source(&p.expr),
            Expr::Aggregate(a) => self.cached(node_id(a), |ev| ev.aggregate_columns(a))?,
            Expr::Call(c) if is_bucket_function(c) => {
                self.cached(node_id(c), |ev| ev.bucket_columns(c))?
            }
            Expr::Call(c) => {
                return Ok(self.window_ready(c)?.then(|| Source::Window(node_id(c))));
            }
            Expr::VectorSelector(vs) => {
                return Ok(self
                    .selector_ready(vs)?
                    .then(|| Source::Selector(node_id(vs))));
            }
            _ => None,
        };
        Ok(cols.map(Source::Cols))
    }

    /// Takes what `cols` holds; `None` when it does not fit (the
    /// step-by-step path, which holds no such columns, then runs instead).
    fn kept(&self, cols: Cols) -> Option<Cols> {
        let bytes = cols.entries.len() * ENTRY_BYTES + cols.series.len() * SERIES_BYTES;
        self.budget.hold(0, bytes).is_ok().then_some(cols)
    }

    fn aggregate_columns(&mut self, a: &AggregateExpr) -> Result<Option<Cols>, PromqlError> {
        let op = a.op.id();
        if !FLOAT_AGGREGATIONS.contains(&op) {
            return Ok(None);
        }
        let q = match (&a.param, op) {
            (None, _) => 0.0,
            (Some(p), token::T_QUANTILE) => match literal(p) {
                Some(q) => q,
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let Some(src) = self.input_source(&a.expr)? else {
            return Ok(None);
        };
        let steps = self.step_count();
        let Some(input) = View::of(&src, &self.windows, &self.selectors) else {
            return Ok(None);
        };
        let memo = self.memos.of(node_id(a), MemoKind::Group);
        let mut index = FxHashMap::default();
        let mut keys: Vec<Labels> = Vec::new();
        let group_of: Vec<u32> = input
            .labels()
            .into_iter()
            .map(|m| {
                let key = memo.get(m, |m| group_labels(m, &a.modifier));
                group_index(&mut index, &mut keys, key)
            })
            .collect();
        let has_name: Vec<bool> = keys.iter().map(|k| k.get(METRIC_NAME).is_some()).collect();
        // Output label sets: per group, without and with `drop_name`.
        let mut out_of = vec![[u32::MAX; 2]; keys.len()];
        let mut out = Cols::new(Vec::new(), steps);
        let mut scratch: Scratch<f64> = Scratch::new(keys.len());
        for i in 0..steps {
            if i % 256 == 0 {
                self.budget.check()?;
            }
            scratch.order.clear();
            input.for_each(i, |j, f| scratch.add(i, group_of[j], f, input.drop_name(j)));
            for &g in &scratch.order {
                let gi = g as usize;
                let drop = has_name[gi] && scratch.first_drop[gi];
                let f = aggregate_floats(op, &mut scratch.values[gi], q)?;
                let o = &mut out_of[gi][usize::from(drop)];
                if *o == u32::MAX {
                    *o = out.series.len() as u32;
                    out.series.push((keys[gi].clone(), drop));
                }
                out.entries.push((*o, f));
            }
            out.end_step();
        }
        Ok(self.kept(out))
    }

    /// `histogram_quantile(φ, v)` or `histogram_fraction(lo, hi, v)` with
    /// number-literal parameters over column-evaluated buckets.
    fn bucket_columns(&mut self, c: &Call) -> Result<Option<Cols>, PromqlError> {
        let args = &c.args.args;
        let quantile = c.func.name == "histogram_quantile";
        let (params, v) = match (quantile, args.as_slice()) {
            (true, [q, v]) => (literal(q).map(|q| (q, 0.0)), v),
            (false, [lo, hi, v]) => (literal(lo).zip(literal(hi)), v),
            _ => return Ok(None),
        };
        let Some((p0, p1)) = params else {
            return Ok(None);
        };
        let Some(src) = self.input_source(v)? else {
            return Ok(None);
        };
        let steps = self.step_count();
        let Some(input) = View::of(&src, &self.windows, &self.selectors) else {
            return Ok(None);
        };
        // Per input series, as the step-by-step path finds them: its upper
        // bound (`None`: not a bucket, skipped), the id of its set without
        // the name (two in one step are a collision) and its group.
        let memo = self.memos.of(node_id(c), MemoKind::Bucket);
        let mut full_index = FxHashMap::default();
        let mut fulls: Vec<Labels> = Vec::new();
        let mut index = FxHashMap::default();
        let mut keys: Vec<Labels> = Vec::new();
        let buckets: Vec<Option<(f64, u32, u32)>> = input
            .labels()
            .into_iter()
            .map(|m| {
                let le = m.get("le").and_then(parse_le)?;
                let full = memo.get_variant(m, 0, |m| {
                    let mut full = m.clone();
                    drop_name_labels(&mut full);
                    full
                });
                let key = memo.get_variant(m, 1, |m| {
                    let mut key = m.clone();
                    key.remove("le");
                    drop_name_labels(&mut key);
                    key
                });
                let full = group_index(&mut full_index, &mut fulls, full);
                Some((le, full, group_index(&mut index, &mut keys, key)))
            })
            .collect();
        let mut out_of = vec![u32::MAX; keys.len()];
        let mut out = Cols::new(Vec::new(), steps);
        let mut scratch: Scratch<(f64, f64)> = Scratch::new(keys.len());
        let mut full_seen_at = vec![usize::MAX; fulls.len()];
        let mut collision = false;
        for i in 0..steps {
            if i % 256 == 0 {
                self.budget.check()?;
            }
            scratch.order.clear();
            input.for_each(i, |j, f| {
                let Some((le, full, g)) = buckets[j] else {
                    return;
                };
                collision |= full_seen_at[full as usize] == i;
                full_seen_at[full as usize] = i;
                scratch.add(i, g, (le, f), false);
            });
            if collision {
                // A label set collision: the step-by-step path fails with
                // Prometheus' error.
                return Ok(None);
            }
            for &g in &scratch.order {
                let gi = g as usize;
                let b = &mut scratch.values[gi];
                let f = if quantile {
                    bucket_quantile(p0, b)
                } else {
                    bucket_fraction(p0, p1, b)
                };
                if out_of[gi] == u32::MAX {
                    out_of[gi] = out.series.len() as u32;
                    out.series.push((keys[gi].clone(), false));
                }
                out.entries.push((out_of[gi], f));
            }
            out.end_step();
        }
        Ok(self.kept(out))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::model::{Labels, stale_nan};
    use crate::promql::window::tests::STEP_BY_STEP;
    use crate::promql::{Engine, EngineOptions, Value};
    use crate::storage::MemoryStorage;

    /// Classic buckets of two models (one with a bucket that is not a
    /// number, one with two spellings of one bound, one whose buckets start
    /// mid-range), a second metric with the same buckets, and gauges with
    /// a gap, a stale marker and NaN.
    fn store() -> Arc<MemoryStorage> {
        let mut series: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
        let bounds = ["0.1", "0.5", "1", "1.0", "+Inf", "x"];
        for (m, model) in ["a", "b", "late"].iter().enumerate() {
            for (b, le) in bounds.iter().enumerate() {
                let first = if *model == "late" { 200 } else { 0 };
                let points: Vec<(i64, f64)> = (first..400i64)
                    .map(|i| {
                        let v = (i * (b as i64 + 1) * (m as i64 + 2)) as f64 / 3.0;
                        (i * 15_000 + (i * 7919 % 5_000), v)
                    })
                    .collect();
                for name in ["h_bucket", "other_bucket"] {
                    let labels = Labels::new([("__name__", name), ("model", model), ("le", le)]);
                    series.push((labels, points.clone()));
                }
            }
        }
        for (k, gpu) in ["0", "1", "2", "3"].iter().enumerate() {
            // Gaps in gpu 0 (model a, the first group) and 1 change the
            // groups' order of first appearance from step to step.
            let points = (0..400i64)
                .filter(|i| match k {
                    0 => !(100..130).contains(i),
                    1 => !(150..190).contains(i),
                    _ => true,
                })
                .map(|i| {
                    let v = match (k, i) {
                        (2, 300) => stale_nan(),
                        (2, 310) => f64::NAN,
                        _ => ((i * 37 + k as i64 * 11) % 23) as f64 * 0.1,
                    };
                    (i * 15_000 + k as i64 * 1_000, v)
                })
                .collect();
            let model = if k % 3 == 0 { "a" } else { "b" };
            let labels = Labels::new([("__name__", "g"), ("gpu", gpu), ("model", model)]);
            series.push((labels, points));
        }
        Arc::new(MemoryStorage::from_points(&series))
    }

    /// A result series: its labels and (time, value bits) points.
    type Bits = (String, Vec<(i64, u64)>);

    /// Label sets and bit patterns of a range query's result, or its error.
    fn run(e: &Engine, q: &str, step_by_step: bool) -> Result<Vec<Bits>, String> {
        STEP_BY_STEP.set(step_by_step);
        let v = e.range(q, 600_000, 5_900_000, 37_000);
        STEP_BY_STEP.set(false);
        match v.map_err(|e| e.to_string())? {
            Value::Matrix(m) => Ok(m
                .iter()
                .map(|s| {
                    let points = s.points.iter().map(|p| (p.t, p.f.to_bits())).collect();
                    (s.metric.to_string(), points)
                })
                .collect()),
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn evaluation_over_all_steps_equals_step_by_step_evaluation() {
        let e = Engine::new(store(), EngineOptions::default());
        for q in [
            "sum by (le, model) (rate(h_bucket[5m]))",
            "histogram_quantile(0.9, sum by (le, model) (rate(h_bucket[5m])))",
            "histogram_quantile(0.5, rate(h_bucket[5m]))",
            "histogram_quantile((0.99), h_bucket)",
            "histogram_quantile(-1, h_bucket)",
            "histogram_quantile(0.5, sum without (model) (h_bucket))",
            "histogram_fraction(0, 0.5, sum by (le) (rate(h_bucket[5m])))",
            "histogram_quantile(0.9, {__name__=~\".*_bucket\"})",
            "histogram_quantile(0.9, sum by (le, model, __name__) (rate({__name__=~\".*_bucket\"}[5m])))",
            "sum(sum by (model) (rate(h_bucket[5m])))",
            "sum without (le) (rate(h_bucket[5m]))",
            "sum by (__name__) (rate({__name__=~\".*_bucket\"}[5m]))",
            "sum by (__name__, model) (g)",
            "sum(g)",
            "avg by (model) (avg_over_time(g[5m]))",
            "count without (gpu) (g)",
            "group by (model) (g)",
            "max(g) - min(g offset 1m)",
            "max by (model) (g)",
            "min by (model) (g)",
            "stddev(g)",
            "stdvar by (model) (g)",
            "quantile(0.3, g)",
            "quantile by (model) ((0.8), rate(g[2m]))",
            "quantile(scalar(max(g)) / 3, g)",
            "topk(1, sum by (model) (g))",
            // Ties keep the input order: the groups' order at each step.
            "topk(1, group by (model) (g))",
            "bottomk(1, count by (model) (g))",
            "count_values(\"v\", sum by (model) (g))",
            "sum(rate(h_bucket[5m])) / sum(rate(h_bucket[5m] offset 10m)) > 0",
            "max_over_time(sum by (model) (rate(h_bucket[5m]))[10m:1m])",
            "sum by (model) (g @ 3000)",
            "-sum by (model) (g)",
            "sum(abs(g))",
        ] {
            let (got, want) = (run(&e, q, false), run(&e, q, true));
            if let Ok(w) = &want {
                let points: usize = w.iter().map(|s| s.1.len()).sum();
                assert!(points > 20, "{q}: only {points} points");
            }
            assert_eq!(got, want, "{q}");
        }
        // A bucket collision fails as step by step.
        let q = "histogram_quantile(0.9, rate({__name__=~\".*_bucket\"}[5m]))";
        let err = run(&e, q, false).unwrap_err();
        assert!(err.contains("same labelset"), "{err}");
    }
}
