//! Evaluation: a query is evaluated step by step (an instant query is one
//! step). Before the first step every selector's samples are fetched once for
//! the whole time span it can see, so steps only search in memory.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};
use rustc_hash::{FxHashMap, FxHashSet};

use super::budget::{Budget, Limits, SAMPLE_BYTES, SERIES_BYTES, STEP_BYTES};
use super::columns::Cols;
use super::literal::GoString;
use super::memo::{LabelMemo, MemoKind, Memos};
use super::value::{Point, RangeSeries, Sample, Value};
use super::window::{StepSamples, StepValues};
use super::{PromqlError, aggregate, binary, functions};
use crate::model::{Labels, METRIC_NAME, MatchOp, Matcher, is_stale_nan};
use crate::storage::{Querier, RollupPoint, Series, StorageError};

/// Limits and defaults of the engine.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample (5m).
    pub lookback_delta: Duration,
    /// Most samples a query may hold in memory at once.
    pub max_samples: usize,
    /// Most series a query may select, all its selectors together.
    pub max_series: usize,
    /// Most bytes (estimated) a query may hold: points, cached steps, label strings.
    pub max_memory_bytes: usize,
    /// Longest label value `label_replace`/`label_join` may build.
    pub max_label_value_bytes: usize,
    /// Longest a query may run.
    pub timeout: Duration,
    /// Step of a subquery written without one (`[1h:]`): the rule evaluation interval.
    pub default_subquery_step: Duration,
    /// Queries evaluated at once by the async entry points; more wait.
    pub max_concurrency: usize,
    /// Longest a query waits for a free slot before it is refused.
    pub max_queue_wait: Duration,
    /// OS scheduling priority of the query threads (see [`crate::background`]).
    pub priority: crate::background::Priority,
    /// Range queries with at least this step read whole UTC days from their
    /// 5-minute rollups where complete ones exist (`rate`, `increase`, the
    /// `count`/`sum`/`avg`/`min`/`max_over_time` windows of 5 minutes or
    /// more and instant selectors); zero reads raw samples wherever they exist.
    pub rollup_min_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self::from_config(
            &crate::config::QueryConfig::default(),
            &crate::config::GlobalConfig::default(),
        )
    }
}

impl EngineOptions {
    /// Options from the `query:` section; subqueries without a step use the
    /// global rule evaluation interval, as in Prometheus.
    pub fn from_config(
        query: &crate::config::QueryConfig,
        global: &crate::config::GlobalConfig,
    ) -> Self {
        EngineOptions {
            lookback_delta: query.lookback_delta.as_duration(),
            max_samples: query.max_samples,
            max_series: query.max_series,
            max_memory_bytes: query.max_memory_bytes,
            max_label_value_bytes: query.max_label_value_bytes,
            timeout: query.timeout.as_duration(),
            default_subquery_step: global.evaluation_interval.as_duration(),
            max_concurrency: query.max_concurrency.max(1),
            max_queue_wait: query.max_queue_wait.as_duration(),
            priority: crate::background::Priority {
                nice: query.nice,
                batch: true,
            },
            rollup_min_step: query.rollup_min_step.as_duration(),
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_samples: self.max_samples,
            max_series: self.max_series,
            max_bytes: self.max_memory_bytes,
            timeout: self.timeout,
        }
    }
}

/// Evaluates PromQL over a store. Cheap to clone.
///
/// The async entry points ([`Engine::instant_query`], [`Engine::range_query`])
/// are the ones servers use: at most `max_concurrency` queries run at once on
/// the engine's own low-priority threads (never on the async runtime's), the
/// rest wait up to `max_queue_wait` and are then refused, and dropping the
/// returned future (the HTTP client went away) stops the evaluation.
#[derive(Clone)]
pub struct Engine {
    storage: Arc<dyn Querier>,
    opts: Arc<EngineOptions>,
    pool: crate::background::WorkerPool,
}

impl Engine {
    /// An engine reading `storage`. Its threads start with the first async query.
    pub fn new(storage: Arc<dyn Querier>, opts: EngineOptions) -> Self {
        let pool = crate::background::WorkerPool::new("query", opts.max_concurrency, opts.priority);
        Engine {
            storage,
            opts: Arc::new(opts),
            pool,
        }
    }

    /// The engine's limits and defaults.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// The store this engine reads (the API's series/labels endpoints use it).
    pub fn querier(&self) -> &Arc<dyn Querier> {
        &self.storage
    }

    /// Evaluates `query` at `t` (ms).
    pub fn instant(&self, query: &str, t: i64) -> Result<Value, PromqlError> {
        let (expr, invalid_utf8) = super::parse_literals(query)?;
        self.instant_eval(&expr, invalid_utf8, t)
    }

    /// Evaluates a parsed expression at `t` (ms).
    pub fn instant_expr(&self, expr: &Expr, t: i64) -> Result<Value, PromqlError> {
        self.instant_eval(expr, HashSet::new(), t)
    }

    /// Evaluates an expression from [`super::parse_literals`] at `t` (ms).
    pub(crate) fn instant_eval(
        &self,
        expr: &Expr,
        invalid_utf8: HashSet<String>,
        t: i64,
    ) -> Result<Value, PromqlError> {
        self.instant_run(expr, invalid_utf8, t, None)
    }

    fn instant_run(
        &self,
        expr: &Expr,
        invalid_utf8: HashSet<String>,
        t: i64,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<Value, PromqlError> {
        let mut ev = Evaluator::prepare(self, expr, invalid_utf8, t, t, cancel)?;
        let val = ev.eval(expr, t)?;
        Ok(match val {
            Val::Scalar(f) => Value::Scalar { t, f },
            Val::Str(s) => Value::String { t, s: s.text },
            Val::Vector(v) => {
                let mut v = finish_vector(v, ev.memos.of(0, MemoKind::Output))?;
                for s in &mut v {
                    s.t = t;
                }
                Value::Vector(v)
            }
            Val::Matrix(m) => Value::Matrix(finish_matrix(m.series)?),
        })
    }

    /// Evaluates `query` at every `step` from `start` to `end` (ms, inclusive).
    pub fn range(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value, PromqlError> {
        let (expr, invalid_utf8) = super::parse_literals(query)?;
        self.range_eval(&expr, invalid_utf8, start, end, step)
    }

    /// Range evaluation of a parsed expression.
    pub fn range_expr(
        &self,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value, PromqlError> {
        self.range_eval(expr, HashSet::new(), start, end, step)
    }

    /// Range evaluation of an expression from [`super::parse_literals`].
    pub(crate) fn range_eval(
        &self,
        expr: &Expr,
        invalid_utf8: HashSet<String>,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value, PromqlError> {
        self.range_run(expr, invalid_utf8, (start, end, step), None)
    }

    fn range_run(
        &self,
        expr: &Expr,
        invalid_utf8: HashSet<String>,
        (start, end, step): (i64, i64, i64),
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<Value, PromqlError> {
        use promql_parser::parser::value::ValueType;
        match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            other => {
                let name = if other == ValueType::Matrix {
                    "range vector"
                } else {
                    "string"
                };
                return Err(PromqlError::Parse(format!(
                    "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        if step <= 0 {
            return Err(PromqlError::Parse(
                "zero or negative query resolution step widths are not accepted".into(),
            ));
        }
        if end < start {
            return Err(PromqlError::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        // The step grid itself is held: per-step counters, and at least a
        // scalar's point per step.
        let steps = usize::try_from(end.saturating_sub(start) / step)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let budget = Budget::new(self.opts.limits(), cancel);
        budget.fits(0, steps.saturating_mul(SAMPLE_BYTES))?;
        let min_step = self.opts.rollup_min_step.as_millis() as i64;
        let coarse = min_step > 0 && step >= min_step;
        let mut ev = Evaluator::prepare_with(self, expr, invalid_utf8, start, end, budget, coarse)?;
        ev.steps = Some((start, end, step));
        // Result series by the id of their interned label set (equal sets
        // are one shared set, see `memo`), sorted by labels at the end.
        let mut index: FxHashMap<usize, usize> = FxHashMap::default();
        let mut out: Vec<(Labels, Vec<Point>)> = Vec::new();
        let mut push = |metric: Labels, p: Point| match index.entry(metric.ptr_id()) {
            Entry::Occupied(e) => out[*e.get()].1.push(p),
            Entry::Vacant(e) => {
                e.insert(out.len());
                out.push((metric, vec![p]));
            }
        };
        let mut t = start;
        while t <= end {
            ev.check_deadline()?;
            match ev.eval(expr, t)? {
                Val::Scalar(f) => {
                    ev.budget.hold(1, SAMPLE_BYTES)?;
                    let metric = ev.memos.of(0, MemoKind::Output).intern(Labels::default());
                    push(metric, Point { t, f });
                }
                Val::Vector(v) => {
                    ev.budget.hold(v.len(), v.len() * SAMPLE_BYTES)?;
                    for s in finish_vector(v, ev.memos.of(0, MemoKind::Output))? {
                        push(s.metric, Point { t, f: s.f });
                    }
                }
                _ => {
                    return Err(PromqlError::Execution(
                        "range query returned a non-vector value".into(),
                    ));
                }
            }
            match t.checked_add(step) {
                Some(next) => t = next,
                None => break,
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Value::Matrix(
            out.into_iter()
                .map(|(metric, points)| RangeSeries {
                    metric,
                    points,
                    drop_name: false,
                })
                .collect(),
        ))
    }

    /// Instant query on the query threads (for the HTTP API and the rules engine).
    pub async fn instant_query(&self, query: String, t: i64) -> Result<Value, PromqlError> {
        self.instant_query_map(query, t, |v| v).await
    }

    /// Range query on the query threads.
    pub async fn range_query(
        &self,
        query: String,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Value, PromqlError> {
        self.range_query_map(query, start, end, step, |v| v).await
    }

    /// [`Engine::instant_query`], with `map` applied to the result on the
    /// query thread (the HTTP API encodes its JSON there, off the runtime).
    pub async fn instant_query_map<T: Send + 'static>(
        &self,
        query: String,
        t: i64,
        map: impl FnOnce(Value) -> T + Send + 'static,
    ) -> Result<T, PromqlError> {
        self.on_pool(move |engine, cancel| {
            let (expr, invalid_utf8) = super::parse_literals(&query)?;
            engine
                .instant_run(&expr, invalid_utf8, t, Some(cancel))
                .map(map)
        })
        .await
    }

    /// [`Engine::range_query`], with `map` applied to the result on the query thread.
    pub async fn range_query_map<T: Send + 'static>(
        &self,
        query: String,
        start: i64,
        end: i64,
        step: i64,
        map: impl FnOnce(Value) -> T + Send + 'static,
    ) -> Result<T, PromqlError> {
        self.on_pool(move |engine, cancel| {
            let (expr, invalid_utf8) = super::parse_literals(&query)?;
            engine
                .range_run(&expr, invalid_utf8, (start, end, step), Some(cancel))
                .map(map)
        })
        .await
    }

    /// Label sets of the series matching any of `sets` with samples in
    /// `[start, end]` (`/api/v1/series`), sorted, on the query threads under
    /// the query limits: a selector over every series of the store fails
    /// with an error instead of loading all of it.
    pub async fn series(
        &self,
        sets: Vec<Vec<Matcher>>,
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>, PromqlError> {
        self.on_pool(move |engine, cancel| {
            let budget = Budget::new(engine.opts.limits(), Some(cancel));
            let mut all = std::collections::BTreeSet::new();
            for m in &sets {
                let found = engine
                    .storage
                    .select_bounded(m, start, end, &budget)
                    .map_err(|e| match e {
                        StorageError::ReadStopped => budget.stop_reason(),
                        other => other.into(),
                    })?;
                all.extend(found.into_iter().map(|s| s.labels));
            }
            Ok(all.into_iter().collect())
        })
        .await
    }

    /// Runs `job` on the query pool under its admission limit.
    async fn on_pool<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Engine, Arc<AtomicBool>) -> Result<T, PromqlError> + Send + 'static,
    ) -> Result<T, PromqlError> {
        use crate::background::PoolError;
        let engine = self.clone();
        self.pool
            .run(self.opts.max_queue_wait, move |cancel| {
                job(&engine, cancel.flag())
            })
            .await
            .map_err(|e| match e {
                PoolError::Busy { waited } => PromqlError::Busy {
                    limit: self.opts.max_concurrency,
                    waited,
                },
                other => PromqlError::Execution(format!("query task failed: {other}")),
            })?
    }
}

/// Removes `__name__` from series marked for it and rejects the duplicates
/// that removal can create.
/// Result label sets come out interned by `memo` (equal sets are one shared
/// set), which makes the duplicate check and range grouping id lookups.
fn finish_vector(mut v: Vec<Sample>, memo: &mut LabelMemo) -> Result<Vec<Sample>, PromqlError> {
    let mut any = false;
    for s in &mut v {
        if s.drop_name {
            s.metric = memo.get_variant(&s.metric, 1, |l| {
                let mut l = l.clone();
                drop_name_labels(&mut l);
                l
            });
            s.drop_name = false;
            any = true;
        } else {
            s.metric = memo.get_variant(&s.metric, 0, Labels::clone);
        }
    }
    if any {
        let mut seen = FxHashSet::default();
        seen.reserve(v.len());
        for s in &v {
            if !seen.insert(s.metric.ptr_id()) {
                return Err(dup_labelset());
            }
        }
    }
    Ok(v)
}

fn finish_matrix(mut m: Vec<RangeSeries>) -> Result<Vec<RangeSeries>, PromqlError> {
    for s in &mut m {
        if s.drop_name {
            drop_name_labels(&mut s.metric);
            s.drop_name = false;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for s in &m {
        if !seen.insert(&s.metric) {
            return Err(dup_labelset());
        }
    }
    Ok(m)
}

/// Labels that describe the metric name (`__type__`/`__unit__` come with
/// Prometheus' type-and-unit labels); they go when the name goes.
pub(crate) const NAME_LABELS: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

/// Whether `name` is one of [`NAME_LABELS`].
pub(crate) fn is_name_label(name: &str) -> bool {
    NAME_LABELS.contains(&name)
}

/// Removes the metric name and the labels that describe it.
pub(crate) fn drop_name_labels(l: &mut Labels) {
    l.retain(|x| !is_name_label(&x.name));
}

/// The error for two series with one label set in a result.
pub(crate) fn dup_labelset() -> PromqlError {
    PromqlError::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Fails when two samples share a label set.
pub(crate) fn check_unique(v: &[Sample]) -> Result<(), PromqlError> {
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.metric) {
            return Err(dup_labelset());
        }
    }
    Ok(())
}

/// A range vector as one step sees it, with the window it was cut from
/// (`rate` extrapolates to the window's edges).
#[derive(Clone, Debug)]
pub(crate) struct Matrix {
    /// Series with at least one point.
    pub series: Vec<RangeSeries>,
    /// Window start (exclusive), ms.
    pub range_start: i64,
    /// Window end (inclusive), ms.
    pub range_end: i64,
    /// Per series (same order as `series`, may be shorter): the 5-minute
    /// rollup summaries behind its points when the window reaches into
    /// rolled-up history, one per point; `None` for raw-only series.
    pub aggs: Vec<Option<Vec<RollupPoint>>>,
}

impl Matrix {
    /// The rollup summaries of series `i`, if its window holds rolled-up points.
    pub fn aggs_of(&self, i: usize) -> Option<&[RollupPoint]> {
        self.aggs.get(i).and_then(|a| a.as_deref())
    }
}

/// A value during evaluation of one step.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// A number.
    Scalar(f64),
    /// A string literal.
    Str(GoString),
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector.
    Matrix(Matrix),
}

impl Val {
    fn kind(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Matrix(_) => "range vector",
        }
    }

    /// The value as an instant vector (callers rely on the parser's type checks).
    pub fn into_vector(self) -> Result<Vec<Sample>, PromqlError> {
        match self {
            Val::Vector(v) => Ok(v),
            other => Err(PromqlError::Execution(format!(
                "expected instant vector, got {}",
                other.kind()
            ))),
        }
    }

    /// The value as a scalar.
    pub fn into_scalar(self) -> Result<f64, PromqlError> {
        match self {
            Val::Scalar(f) => Ok(f),
            other => Err(PromqlError::Execution(format!(
                "expected scalar, got {}",
                other.kind()
            ))),
        }
    }

    /// The value as a range vector.
    pub fn into_matrix(self) -> Result<Matrix, PromqlError> {
        match self {
            Val::Matrix(m) => Ok(m),
            other => Err(PromqlError::Execution(format!(
                "expected range vector, got {}",
                other.kind()
            ))),
        }
    }

    /// The value as a string.
    pub fn into_string(self) -> Result<GoString, PromqlError> {
        match self {
            Val::Str(s) => Ok(s),
            other => Err(PromqlError::Execution(format!(
                "expected string, got {}",
                other.kind()
            ))),
        }
    }
}

/// Milliseconds of a `SystemTime` (negative before 1970).
fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

pub(crate) fn node_id<T>(node: &T) -> usize {
    node as *const T as usize
}

/// A selector, its node id, the span `[mint, maxt]` it reads and whether
/// rollups may stand for its raw samples.
type Span<'e> = (&'e VectorSelector, usize, i64, i64, bool);

/// Functions whose window results stay close to raw data when computed from
/// 5-minute rollups (`FORMAT.md`): the counter increase and the
/// `count`/`sum`/`min`/`max` of the buckets are exact, only the window edges
/// snap to buckets.
const ROLLUP_FUNCTIONS: [&str; 7] = [
    "rate",
    "increase",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "min_over_time",
    "max_over_time",
];

/// Where a selector is evaluated, for [`Evaluator::collect_spans`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// At the query's steps.
    Step,
    /// At the query's steps, as the range argument of a [`ROLLUP_FUNCTIONS`] call.
    RollupCall,
    /// Inside a subquery, at its own (finer) steps: raw samples only.
    Subquery,
}

impl Reach {
    /// The reach of an operand one level down (not a call's argument).
    fn inner(self) -> Reach {
        match self {
            Reach::RollupCall => Reach::Step,
            other => other,
        }
    }
}

/// The 5-minute summaries of the window `samples[window]` of a series whose
/// first `prefix.len()` samples stand for the rollup points in `prefix`:
/// those points, then one-sample summaries of the raw samples after them
/// (stale markers left out).
pub(crate) fn window_summaries<'a>(
    samples: &'a [crate::model::Sample],
    prefix: &'a [RollupPoint],
    window: std::ops::Range<usize>,
) -> impl Iterator<Item = RollupPoint> + 'a {
    window.filter_map(move |j| match prefix.get(j) {
        Some(p) => Some(*p),
        None => {
            let x = samples[j];
            (!is_stale_nan(x.value)).then(|| RollupPoint::from_sample(x.timestamp_ms, x.value))
        }
    })
}

/// The state of one query: fetched samples, query bounds, deadline.
pub(crate) struct Evaluator {
    pub(super) lookback: i64,
    default_step: i64,
    /// What the query holds, its deadline and its cancel flag.
    pub(super) budget: Budget,
    /// Longest label value `label_replace`/`label_join` may build.
    pub(super) max_label_value_bytes: usize,
    start: i64,
    end: i64,
    pub(super) data: HashMap<usize, Vec<Series>>,
    /// Per selector with rolled-up history, per series of `data`: the
    /// rollup points its first samples stand for (a prefix of `samples`).
    pub(super) rolled: HashMap<usize, Vec<Vec<RollupPoint>>>,
    /// A range query's steps (start, end, step), `None` for an instant query.
    pub(super) steps: Option<(i64, i64, i64)>,
    /// Per call node evaluated in one pass over all steps (see `window`):
    /// its values, or `None` when it does not qualify.
    pub(super) windows: FxHashMap<usize, Option<StepValues>>,
    /// Per instant selector node of a range query: its samples at every step.
    pub(super) selectors: FxHashMap<usize, StepSamples>,
    /// Per aggregation or classic-histogram call node of a range query
    /// evaluated over all steps at once (see `columns`): its values, or
    /// `None` when it does not qualify.
    pub(super) columns: FxHashMap<usize, Option<Arc<Cols>>>,
    subqueries: HashMap<(usize, i64), Val>,
    /// String literals that are not valid UTF-8 in Go (see `literal`).
    invalid_utf8: HashSet<String>,
    /// Label-set work remembered across steps (see `memo`).
    pub memos: Memos,
}

impl Evaluator {
    /// Fetches every selector's samples for the span `[start, end]` needs.
    fn prepare(
        engine: &Engine,
        expr: &Expr,
        invalid_utf8: HashSet<String>,
        start: i64,
        end: i64,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<Self, PromqlError> {
        let budget = Budget::new(engine.opts.limits(), cancel);
        Self::prepare_with(engine, expr, invalid_utf8, start, end, budget, false)
    }

    /// [`Evaluator::prepare`] under a budget already started; `coarse`: a
    /// range query whose step lets selectors read rollups (see
    /// [`EngineOptions::rollup_min_step`]).
    fn prepare_with(
        engine: &Engine,
        expr: &Expr,
        invalid_utf8: HashSet<String>,
        start: i64,
        end: i64,
        budget: Budget,
        coarse: bool,
    ) -> Result<Self, PromqlError> {
        let opts = &engine.opts;
        let mut ev = Evaluator {
            lookback: opts.lookback_delta.as_millis() as i64,
            default_step: (opts.default_subquery_step.as_millis() as i64).max(1),
            budget,
            max_label_value_bytes: opts.max_label_value_bytes,
            start,
            end,
            data: HashMap::new(),
            rolled: HashMap::new(),
            subqueries: HashMap::new(),
            invalid_utf8,
            memos: Memos::default(),
            steps: None,
            windows: FxHashMap::default(),
            selectors: FxHashMap::default(),
            columns: FxHashMap::default(),
        };
        let mut spans: Vec<Span<'_>> = Vec::new();
        ev.collect_spans(expr, start, end, Reach::Step, &mut spans);
        for (vs, id, mint, maxt, rollable) in spans {
            ev.check_deadline()?;
            let q = engine.storage.as_ref();
            let (series, rolled) = if coarse && rollable {
                select_summarized(q, vs, mint, maxt, &ev.budget)?
            } else {
                select(q, vs, mint, maxt, &ev.budget)?
            };
            ev.data.insert(id, series);
            if let Some(rolled) = rolled {
                ev.rolled.insert(id, rolled);
            }
        }
        Ok(ev)
    }

    pub(super) fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.start,
            AtModifier::End => self.end,
            AtModifier::At(t) => system_time_ms(t),
        })
    }

    /// Records, per selector, the sample span evaluation between `lo` and
    /// `hi` can touch, and whether rollups may stand for its raw samples
    /// (`reach`: where the selector is evaluated).
    fn collect_spans<'e>(
        &self,
        expr: &'e Expr,
        lo: i64,
        hi: i64,
        reach: Reach,
        out: &mut Vec<Span<'e>>,
    ) {
        let bucket = crate::storage::BUCKET_MS;
        match expr {
            Expr::VectorSelector(vs) => {
                let (lo, hi) = self.shift(&vs.at, &vs.offset, lo, hi);
                let rollable = reach != Reach::Subquery && self.lookback >= bucket;
                out.push((vs, node_id(vs), lo - self.lookback + 1, hi, rollable));
            }
            Expr::MatrixSelector(ms) => {
                let (lo, hi) = self.shift(&ms.vs.at, &ms.vs.offset, lo, hi);
                let range = ms.range.as_millis() as i64;
                let rollable = reach == Reach::RollupCall && range >= bucket;
                out.push((&ms.vs, node_id(&ms.vs), lo - range + 1, hi, rollable));
            }
            Expr::Subquery(sq) => {
                let (lo, hi) = self.shift(&sq.at, &sq.offset, lo, hi);
                let lo = lo - sq.range.as_millis() as i64;
                self.collect_spans(&sq.expr, lo, hi, Reach::Subquery, out);
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.collect_spans(p, lo, hi, reach.inner(), out);
                }
                self.collect_spans(&a.expr, lo, hi, reach.inner(), out);
            }
            Expr::Unary(u) => self.collect_spans(&u.expr, lo, hi, reach.inner(), out),
            Expr::Binary(b) => {
                self.collect_spans(&b.lhs, lo, hi, reach.inner(), out);
                self.collect_spans(&b.rhs, lo, hi, reach.inner(), out);
            }
            Expr::Paren(p) => self.collect_spans(&p.expr, lo, hi, reach.inner(), out),
            Expr::Call(c) => {
                let inner = if reach == Reach::Subquery {
                    Reach::Subquery
                } else if ROLLUP_FUNCTIONS.contains(&c.func.name) {
                    Reach::RollupCall
                } else {
                    Reach::Step
                };
                for a in &c.args.args {
                    self.collect_spans(a, lo, hi, inner, out);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }

    fn shift(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        lo: i64,
        hi: i64,
    ) -> (i64, i64) {
        let off = offset_ms(offset);
        match self.at_ms(at) {
            Some(t) => (t - off, t - off),
            None => (lo - off, hi - off),
        }
    }

    /// Fails once the query has run past its timeout or its client left.
    pub fn check_deadline(&self) -> Result<(), PromqlError> {
        self.budget.check()
    }

    /// Evaluates `expr` at `t` (ms).
    pub fn eval(&mut self, expr: &Expr, t: i64) -> Result<Val, PromqlError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(GoString {
                valid_utf8: !self.invalid_utf8.contains(&s.val),
                text: s.val.clone(),
            })),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Val::Scalar(f) => Ok(Val::Scalar(-f)),
                Val::Vector(mut v) => {
                    for s in &mut v {
                        s.f = -s.f;
                        s.drop_name = true;
                        s.t = t;
                    }
                    Ok(Val::Vector(v))
                }
                other => Err(PromqlError::Execution(format!(
                    "unary minus on {}",
                    other.kind()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(match self.selector_steps(vs, t)? {
                Some(v) => v,
                None => self.vector_selector(vs, t),
            })),
            Expr::MatrixSelector(ms) => {
                let range = ms.range.as_millis() as i64;
                let end = self.at_ms(&ms.vs.at).unwrap_or(t) - offset_ms(&ms.vs.offset);
                let m = self.matrix_selector(&ms.vs, end - range, end);
                self.count_points(&m)?;
                Ok(Val::Matrix(m))
            }
            Expr::Subquery(sq) => {
                let end = self.at_ms(&sq.at).unwrap_or(t) - offset_ms(&sq.offset);
                let range = sq.range.as_millis() as i64;
                let step = sq
                    .step
                    .map(|s| s.as_millis() as i64)
                    .unwrap_or(self.default_step)
                    .max(1);
                let start = end.saturating_sub(range);
                let mut ts = (start / step).saturating_mul(step);
                if ts <= start {
                    ts = ts.saturating_add(step);
                }
                // Every step may hold a sample and is cached: a subquery
                // with more steps than the budget allows fails before the
                // first one, not after minutes of evaluation.
                let steps = usize::try_from(end.saturating_sub(ts) / step)
                    .map_or(0, |n| n.saturating_add(1));
                self.budget.fits(steps, steps.saturating_mul(STEP_BYTES))?;
                let mut by_series: BTreeMap<Labels, RangeSeries> = BTreeMap::new();
                let id = node_id(sq);
                while ts <= end {
                    self.check_deadline()?;
                    let val = match self.subqueries.get(&(id, ts)) {
                        Some(v) => v.clone(),
                        None => {
                            let v = self.eval(&sq.expr, ts)?;
                            let n = match &v {
                                Val::Vector(v) => v.len(),
                                _ => 1,
                            };
                            self.budget
                                .hold(n, STEP_BYTES + n * std::mem::size_of::<Sample>())?;
                            self.subqueries.insert((id, ts), v.clone());
                            v
                        }
                    };
                    match val {
                        Val::Scalar(f) => by_series
                            .entry(Labels::default())
                            .or_insert_with(|| RangeSeries {
                                metric: Labels::default(),
                                points: vec![],
                                drop_name: false,
                            })
                            .points
                            .push(Point { t: ts, f }),
                        Val::Vector(v) => {
                            for s in v {
                                let e = by_series.entry(s.metric.clone()).or_insert_with(|| {
                                    RangeSeries {
                                        metric: s.metric,
                                        points: vec![],
                                        drop_name: s.drop_name,
                                    }
                                });
                                e.points.push(Point { t: ts, f: s.f });
                            }
                        }
                        other => {
                            return Err(PromqlError::Execution(format!(
                                "subquery of {} is not allowed",
                                other.kind()
                            )));
                        }
                    }
                    match ts.checked_add(step) {
                        Some(next) => ts = next,
                        None => break,
                    }
                }
                let m = Matrix {
                    series: by_series.into_values().collect(),
                    range_start: start,
                    range_end: end,
                    aggs: Vec::new(),
                };
                self.count_points(&m)?;
                Ok(Val::Matrix(m))
            }
            Expr::Aggregate(a) => aggregate::eval(self, a, t),
            Expr::Binary(b) => binary::eval(self, b, t),
            Expr::Call(c) => functions::call(self, c, t),
            Expr::Extension(_) => Err(PromqlError::Execution(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Fails unless a step's matrix fits next to what the query holds.
    fn count_points(&self, m: &Matrix) -> Result<(), PromqlError> {
        let n: usize = m.series.iter().map(|s| s.points.len()).sum();
        self.budget
            .fits(n, n * SAMPLE_BYTES + m.series.len() * SERIES_BYTES)
    }

    fn vector_selector(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let ref_t = self.at_ms(&vs.at).unwrap_or(t) - offset_ms(&vs.offset);
        let Some(series) = self.data.get(&node_id(vs)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in series {
            let idx = s.samples.partition_point(|x| x.timestamp_ms <= ref_t);
            if idx == 0 {
                continue;
            }
            let x = s.samples[idx - 1];
            if x.timestamp_ms <= ref_t - self.lookback || is_stale_nan(x.value) {
                continue;
            }
            out.push(Sample {
                metric: s.labels.clone(),
                t: x.timestamp_ms,
                f: x.value,
                drop_name: false,
            });
        }
        out
    }

    /// Samples in `(start, end]` of every series of `vs`, stale markers left
    /// out; where the window reaches into rolled-up history, the rollup
    /// summaries come along (a rollup point counts when its last sample is
    /// in the window).
    fn matrix_selector(&self, vs: &VectorSelector, start: i64, end: i64) -> Matrix {
        let mut out = Vec::new();
        let mut aggs = Vec::new();
        let rolled = self.rolled.get(&node_id(vs));
        if let Some(series) = self.data.get(&node_id(vs)) {
            for (i, s) in series.iter().enumerate() {
                let lo = s.samples.partition_point(|x| x.timestamp_ms <= start);
                let hi = s.samples.partition_point(|x| x.timestamp_ms <= end);
                let prefix = rolled.and_then(|r| r.get(i)).map_or(&[][..], Vec::as_slice);
                let window = &s.samples[lo..hi];
                let points: Vec<Point> = window
                    .iter()
                    .filter(|x| !is_stale_nan(x.value))
                    .map(|x| Point {
                        t: x.timestamp_ms,
                        f: x.value,
                    })
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let agg = (lo < prefix.len())
                    .then(|| window_summaries(&s.samples, prefix, lo..hi).collect::<Vec<_>>());
                aggs.push(agg);
                out.push(RangeSeries {
                    metric: s.labels.clone(),
                    points,
                    drop_name: false,
                });
            }
        }
        Matrix {
            series: out,
            range_start: start,
            range_end: end,
            aggs,
        }
    }
}

/// Converts the parser's matchers to the store's, adding the metric name.
pub(crate) fn to_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, PromqlError> {
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, PromqlError> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(name) = &vs.name
            && !ms.iter().any(|m| m.name == METRIC_NAME)
        {
            out.push(
                Matcher::new(METRIC_NAME, MatchOp::Equal, name)
                    .map_err(|e| PromqlError::Parse(e.to_string()))?,
            );
        }
        for m in ms {
            let op = match m.op {
                ParserOp::Equal => MatchOp::Equal,
                ParserOp::NotEqual => MatchOp::NotEqual,
                ParserOp::Re(_) => MatchOp::Regex,
                ParserOp::NotRe(_) => MatchOp::NotRegex,
            };
            out.push(
                Matcher::new(&m.name, op, &m.value)
                    .map_err(|e| PromqlError::Parse(e.to_string()))?,
            );
        }
        Ok(out)
    };
    let mut sets = vec![convert(&vs.matchers.matchers)?];
    for alt in &vs.matchers.or_matchers {
        sets.push(convert(alt)?);
    }
    if !vs.matchers.or_matchers.is_empty() && vs.matchers.matchers.is_empty() {
        sets.remove(0);
    }
    Ok(sets)
}

/// A selector's series in `[mint, maxt]`, sorted by labels. Where raw
/// samples are gone but 5-minute rollups remain, the rollup points' last
/// samples lead each series, and the second value holds, per series, the
/// rollup points behind them (`None` when no series has any).
#[allow(clippy::type_complexity)]
fn select(
    q: &dyn Querier,
    vs: &VectorSelector,
    mint: i64,
    maxt: i64,
    budget: &Budget,
) -> Result<(Vec<Series>, Option<Vec<Vec<RollupPoint>>>), PromqlError> {
    let sets = to_matchers(vs)?;
    let stopped = |e: StorageError| match e {
        StorageError::ReadStopped => budget.stop_reason(),
        other => other.into(),
    };
    // Raw samples first, rollups second: maintenance writes a day's rollups
    // before it deletes the day's raw chunks, so whatever raw data this
    // read misses, the rollup read finds.
    let mut raw: Vec<Vec<Series>> = Vec::with_capacity(sets.len());
    for m in &sets {
        raw.push(q.select_bounded(m, mint, maxt, budget).map_err(stopped)?);
    }
    let mut rollups: BTreeMap<Labels, Vec<RollupPoint>> = BTreeMap::new();
    for m in &sets {
        for r in q.select_rollups(m, mint, maxt)? {
            budget.check()?;
            let n = r.points.len();
            budget.hold(n, n * std::mem::size_of::<RollupPoint>() + SERIES_BYTES)?;
            rollups.entry(r.labels).or_insert(r.points);
        }
    }
    if raw.len() == 1 && rollups.is_empty() {
        return Ok((raw.pop().unwrap_or_default(), None));
    }
    let mut all: BTreeMap<Labels, Series> = BTreeMap::new();
    for s in raw.into_iter().flatten() {
        all.entry(s.labels.clone()).or_insert(s);
    }
    if rollups.is_empty() {
        return Ok((all.into_values().collect(), None));
    }
    for labels in rollups.keys() {
        all.entry(labels.clone()).or_insert_with(|| Series {
            labels: labels.clone(),
            samples: Vec::new(),
        });
    }
    let mut series = Vec::with_capacity(all.len());
    let mut rolled = Vec::with_capacity(all.len());
    for (labels, raw) in all {
        let points = rollups.remove(&labels).unwrap_or_default();
        let (merged, used) = crate::storage::merge_rollups(raw, &points);
        let mut points = points;
        points.truncate(used);
        series.push(merged);
        rolled.push(points);
    }
    Ok((series, Some(rolled)))
}

/// [`select`] for a range query whose step is coarse enough for rollups:
/// complete rollup days lead each series (see
/// [`Querier::select_summarized`]).
#[allow(clippy::type_complexity)]
fn select_summarized(
    q: &dyn Querier,
    vs: &VectorSelector,
    mint: i64,
    maxt: i64,
    budget: &Budget,
) -> Result<(Vec<Series>, Option<Vec<Vec<RollupPoint>>>), PromqlError> {
    let stopped = |e: StorageError| match e {
        StorageError::ReadStopped => budget.stop_reason(),
        other => other.into(),
    };
    let mut all: BTreeMap<Labels, (Series, Vec<RollupPoint>)> = BTreeMap::new();
    for m in &to_matchers(vs)? {
        for (s, points) in q
            .select_summarized(m, mint, maxt, budget)
            .map_err(stopped)?
        {
            all.entry(s.labels.clone()).or_insert((s, points));
        }
    }
    let any_rolled = all.values().any(|(_, p)| !p.is_empty());
    let (series, rolled): (Vec<Series>, Vec<Vec<RollupPoint>>) = all.into_values().unzip();
    Ok((series, any_rolled.then_some(rolled)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Sample as StoredSample, stale_nan};
    use crate::storage::{AppendSample, Appender, MemoryStorage};

    fn store(points: &[(i64, f64)]) -> Arc<MemoryStorage> {
        let labels = Labels::new([("__name__", "x"), ("job", "a")]);
        Arc::new(MemoryStorage::from_points(&[(labels, points.to_vec())]))
    }

    fn vector_len(v: Value) -> usize {
        match v {
            Value::Vector(v) => v.len(),
            other => panic!("not a vector: {other:?}"),
        }
    }

    #[test]
    fn lookback_is_left_open_and_stale_markers_end_series() {
        let e = Engine::new(
            store(&[(0, 1.0), (60_000, stale_nan())]),
            EngineOptions::default(),
        );
        assert_eq!(vector_len(e.instant("x", 59_999).unwrap()), 1);
        assert_eq!(
            vector_len(e.instant("x", 60_000).unwrap()),
            0,
            "stale marker hides the series"
        );
        let e = Engine::new(store(&[(0, 1.0)]), EngineOptions::default());
        assert_eq!(vector_len(e.instant("x", 299_999).unwrap()), 1);
        assert_eq!(
            vector_len(e.instant("x", 300_000).unwrap()),
            0,
            "(t-5m, t] excludes t-5m"
        );
    }

    #[test]
    fn string_literals_are_go_byte_strings() {
        let e = Engine::new(store(&[(0, 1.0)]), EngineOptions::default());
        // Escaped bytes that form UTF-8 name one label, as in Go.
        match e
            .instant(r#"label_replace(x, "\xc3\xbf", "v", "job", ".*")"#, 0)
            .unwrap()
        {
            Value::Vector(v) => assert_eq!(v[0].metric.get("ÿ"), Some("v")),
            other => panic!("not a vector: {other:?}"),
        }
        // A lone byte 0xFF is not UTF-8: no label name, no regular expression.
        for q in [
            r#"label_replace(x, "\xff", "", "job", "(.*)")"#,
            r#"label_join(x, "\377", ",", "job")"#,
            r#"count_values("\xff", x)"#,
            r#"label_replace(x, "dst", "", "job", "\xff")"#,
        ] {
            assert!(e.instant(q, 0).is_err(), "{q}");
        }
        // The character U+00FF written as such is a fine name.
        assert!(e.instant(r#"count_values("ÿ", x)"#, 0).is_ok());
    }

    #[test]
    fn range_query_is_one_series_per_label_set() {
        let points: Vec<(i64, f64)> = (0..=20).map(|i| (i * 15_000, i as f64 * 15.0)).collect();
        let e = Engine::new(store(&points), EngineOptions::default());
        let Value::Matrix(m) = e.range("rate(x[1m])", 60_000, 300_000, 60_000).unwrap() else {
            panic!()
        };
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].metric, Labels::new([("job", "a")]));
        assert_eq!(m[0].points.len(), 5);
        assert!(
            m[0].points.iter().all(|p| (p.f - 1.0).abs() < 1e-9),
            "{m:?}"
        );
        let err = e.range("x[1m]", 0, 60_000, 15_000).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid expression type \"range vector\""),
            "{err}"
        );
    }

    #[test]
    fn limits_stop_queries_with_errors() {
        let points: Vec<(i64, f64)> = (0..1000).map(|i| (i * 1000, 1.0)).collect();
        let opts = EngineOptions {
            max_samples: 100,
            ..EngineOptions::default()
        };
        let e = Engine::new(store(&points), opts);
        let err = e.instant("sum_over_time(x[20m])", 1_000_000).unwrap_err();
        assert!(matches!(err, PromqlError::TooManySamples(_)), "{err}");
        assert_eq!(err.error_type(), "execution");
        assert_eq!(
            vector_len(e.instant("sum_over_time(x[50s])", 1_000_000).unwrap()),
            1,
            "under the limit"
        );
        // Few stored samples, many steps: what a range query holds counts.
        let e = Engine::new(
            store(&points[..50]),
            EngineOptions {
                max_samples: 100,
                ..EngineOptions::default()
            },
        );
        for q in ["x", "sum_over_time(x[1m])"] {
            let err = e.range(q, 0, 200_000, 100).unwrap_err();
            assert!(matches!(err, PromqlError::TooManySamples(_)), "{q}: {err}");
        }

        let opts = EngineOptions {
            timeout: Duration::ZERO,
            ..EngineOptions::default()
        };
        let e = Engine::new(store(&points), opts);
        let err = e.range("x", 0, 1_000_000, 1000).unwrap_err();
        assert!(matches!(err, PromqlError::Timeout(_)), "{err}");
        assert_eq!(err.to_string(), "query timed out in query execution");
    }

    #[test]
    fn offset_at_and_subqueries() {
        let points: Vec<(i64, f64)> = (0..=60).map(|i| (i * 60_000, i as f64)).collect();
        let e = Engine::new(store(&points), EngineOptions::default());
        let one = |q: &str, t: i64| match e.instant(q, t).unwrap() {
            Value::Vector(v) if v.len() == 1 => v[0].f,
            Value::Scalar { f, .. } => f,
            other => panic!("{q}: {other:?}"),
        };
        assert_eq!(one("x offset 10m", 3_600_000), 50.0);
        assert_eq!(one("x @ 600", 3_600_000), 10.0);
        assert_eq!(one("x @ end()", 1_200_000), 20.0);
        assert_eq!(one("max_over_time(x[10m:1m])", 3_600_000), 60.0);
        assert_eq!(one("count_over_time(x[10m:1m])", 3_600_000), 10.0);
        assert_eq!(one("timestamp(x offset 90s)", 3_600_000), 3_480.0);
    }

    #[test]
    fn one_pass_range_evaluation_equals_step_by_step_evaluation() {
        // An irregular counter with a reset, a gap and a stale marker.
        let mut points: Vec<(i64, f64)> = Vec::new();
        let mut v = 0.0;
        for i in 0..400i64 {
            let t = i * 15_000 + (i * 7919 % 5_000);
            if (150..170).contains(&i) {
                continue;
            }
            v = if i == 250 { 3.0 } else { v + (i % 7) as f64 };
            points.push((t, if i == 300 { stale_nan() } else { v }));
        }
        let e = Engine::new(store(&points), EngineOptions::default());
        let (start, end, step) = (200_000, 6_000_000, 37_000);
        for q in [
            "rate(x[2m])",
            "increase(x[5m] offset 3m)",
            "delta(x[1m])",
            "irate(x[3m])",
            "idelta(x[3m])",
            "avg_over_time(x[4m])",
            "sum_over_time(x[4m] @ 3000)",
            "count_over_time(x[30s])",
            "max_over_time(x[2m])",
            "min_over_time(x[2m])",
            "stddev_over_time(x[5m])",
            "stdvar_over_time(x[5m])",
            "changes(x[10m])",
            "resets(x[10m])",
            "present_over_time(x[1m])",
            "last_over_time(x[1m])",
            "sum(rate(x[2m])) by (job)",
            "x",
            "x offset 2m",
            "x @ 3000",
            "timestamp(x)",
            "max(x) - min(x offset 1m)",
        ] {
            let Value::Matrix(m) = e.range(q, start, end, step).unwrap() else {
                panic!("{q}: not a matrix");
            };
            let mut want: Vec<(i64, f64)> = Vec::new();
            let mut t = start;
            while t <= end {
                if let Value::Vector(v) = e.instant(q, t).unwrap() {
                    want.extend(v.iter().map(|s| (t, s.f)));
                }
                t += step;
            }
            let got: Vec<(i64, f64)> = m
                .iter()
                .flat_map(|s| s.points.iter().map(|p| (p.t, p.f)))
                .collect();
            assert!(want.len() > 10, "{q}: only {} points", want.len());
            assert_eq!(got.len(), want.len(), "{q}");
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    g.0 == w.0 && (g.1 == w.1 || g.1.is_nan() && w.1.is_nan()),
                    "{q}: {g:?} != {w:?}"
                );
            }
        }
    }

    #[test]
    fn a_subquery_with_more_steps_than_the_budget_fails_before_evaluating() {
        let e = Engine::new(store(&[(0, 1.0)]), EngineOptions::default());
        let began = std::time::Instant::now();
        let err = e
            .instant("count_over_time(vector(1)[1000d:1ms])", 86_400_000_000)
            .unwrap_err();
        assert!(matches!(err, PromqlError::TooManySamples(_)), "{err}");
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
        // Memory counts too: few samples per step, but many cached steps.
        let e = Engine::new(
            store(&[(0, 1.0)]),
            EngineOptions {
                max_memory_bytes: 1 << 20,
                ..EngineOptions::default()
            },
        );
        let err = e
            .instant("count_over_time(vector(1)[1d:1s])", 86_400_000)
            .unwrap_err();
        assert!(matches!(err, PromqlError::TooMuchMemory(_)), "{err}");
        assert_eq!(err.error_type(), "execution");
        let one = |q: &str| match e.instant(q, 86_400_000).unwrap() {
            Value::Vector(v) => v[0].f,
            other => panic!("{q}: {other:?}"),
        };
        assert_eq!(one("count_over_time(vector(1)[1h:1s])"), 3600.0);
    }

    #[test]
    fn label_values_built_by_functions_are_capped() {
        let e = Engine::new(store(&[(0, 1.0)]), EngineOptions::default());
        // Each level quadruples the value: 3 bytes become 3 * 4^8 = 196608.
        let mut q = "x".to_string();
        for _ in 0..8 {
            q = format!(r#"label_replace({q}, "job", "$1$1$1$1", "job", "(.*)")"#);
        }
        let q = q.replace("x", r#"label_replace(x, "job", "abc", "", "")"#);
        let err = e.instant(&q, 0).unwrap_err();
        assert!(
            err.to_string().contains("query.max_label_value_bytes"),
            "{err}"
        );
        let long = format!(
            r#"label_join(label_replace(x, "a", "{}", "", ""), "b", "", "a", "a", "a", "a")"#,
            "z".repeat(5000)
        );
        let err = e.instant(&long, 0).unwrap_err();
        assert!(err.to_string().contains("label_join()"), "{err}");
        // Within the cap, expansion is the regex crate's, as before.
        match e
            .instant(
                r#"label_replace(x, "dst", "$1-${1}x-$$-$name", "job", "(?P<name>.*)")"#,
                0,
            )
            .unwrap()
        {
            Value::Vector(v) => assert_eq!(v[0].metric.get("dst"), Some("a-ax-$-a")),
            other => panic!("{other:?}"),
        }
    }

    /// A store with three series `x{i="0".."2"}`, one sample each at 0.
    fn three_x_series() -> Arc<MemoryStorage> {
        let st = Arc::new(MemoryStorage::new());
        let batch: Vec<AppendSample> = (0..3)
            .map(|i| AppendSample {
                labels: Labels::new([("__name__", "x"), ("i", &i.to_string())]),
                sample: StoredSample {
                    timestamp_ms: 0,
                    value: 1.0,
                },
            })
            .collect();
        st.append(&batch).unwrap();
        st
    }

    #[test]
    fn series_limit_counts_every_selector() {
        let st = three_x_series();
        let e = Engine::new(
            st,
            EngineOptions {
                max_series: 4,
                ..EngineOptions::default()
            },
        );
        assert_eq!(vector_len(e.instant("x", 0).unwrap()), 3);
        let err = e.instant("x + x", 0).unwrap_err();
        assert!(matches!(err, PromqlError::TooManySeries(4)), "{err}");
        assert!(err.to_string().contains("query.max_series"), "{err}");
    }

    #[tokio::test]
    async fn the_series_endpoint_is_bounded_too() {
        let st = three_x_series();
        let all = || {
            vec![vec![
                Matcher::new(METRIC_NAME, MatchOp::Regex, ".+").unwrap(),
            ]]
        };
        let e = Engine::new(st.clone(), EngineOptions::default());
        assert_eq!(e.series(all(), 0, 1).await.unwrap().len(), 3);
        let e = Engine::new(
            st,
            EngineOptions {
                max_series: 2,
                ..EngineOptions::default()
            },
        );
        let err = e.series(all(), 0, 1).await.unwrap_err();
        assert!(matches!(err, PromqlError::TooManySeries(2)), "{err}");
    }

    /// A store that loads one sample per `take` until its limit refuses,
    /// reporting how far it got, and that blocks in a read when asked to.
    struct EndlessStore {
        taken: std::sync::atomic::AtomicUsize,
        entered: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
    }

    impl Querier for EndlessStore {
        fn select(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<Series>, StorageError> {
            Err(StorageError::Backend("unbounded read".into()))
        }
        fn select_bounded(
            &self,
            _: &[Matcher],
            _: i64,
            _: i64,
            limit: &dyn crate::storage::ReadLimit,
        ) -> Result<Vec<Series>, StorageError> {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                let _ = tx.send(());
            }
            // Bounded: a limit that never refuses fails the test, not the machine.
            for _ in 0..100_000_000u64 {
                if !limit.take(0, 1) {
                    return Err(StorageError::ReadStopped);
                }
                self.taken
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(StorageError::Backend(
                "the limit never stopped the read".into(),
            ))
        }
        fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
            Ok(Vec::new())
        }
        fn label_values(
            &self,
            _: &str,
            _: &[Matcher],
            _: i64,
            _: i64,
        ) -> Result<Vec<String>, StorageError> {
            Ok(Vec::new())
        }
    }

    fn endless() -> Arc<EndlessStore> {
        Arc::new(EndlessStore {
            taken: Default::default(),
            entered: Default::default(),
        })
    }

    #[test]
    fn selectors_stop_while_loading() {
        let st = endless();
        let e = Engine::new(
            st.clone(),
            EngineOptions {
                max_samples: 1000,
                ..EngineOptions::default()
            },
        );
        let err = e.instant("x", 0).unwrap_err();
        assert!(matches!(err, PromqlError::TooManySamples(_)), "{err}");
        assert_eq!(st.taken.load(std::sync::atomic::Ordering::Relaxed), 1000);
    }

    #[tokio::test]
    async fn dropping_the_caller_stops_the_query_and_frees_its_slot() {
        let st = endless();
        let (tx, rx) = std::sync::mpsc::channel();
        *st.entered.lock().unwrap() = Some(tx);
        let e = Engine::new(
            st.clone(),
            EngineOptions {
                max_samples: usize::MAX,
                max_memory_bytes: usize::MAX,
                max_concurrency: 1,
                max_queue_wait: Duration::from_millis(100),
                ..EngineOptions::default()
            },
        );
        let running = tokio::spawn({
            let e = e.clone();
            async move { e.instant_query("x".into(), 0).await }
        });
        tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
            .await
            .unwrap()
            .unwrap();
        // The one slot is taken: the next query waits 100ms and is refused.
        let err = e.instant_query("1".into(), 0).await.unwrap_err();
        assert!(matches!(err, PromqlError::Busy { limit: 1, .. }), "{err}");
        assert_eq!(err.error_type(), "unavailable");
        running.abort();
        // The read stops and the slot frees up long before the 2m timeout.
        let began = std::time::Instant::now();
        let mut answered = None;
        for _ in 0..200 {
            match e.instant_query("1".into(), 0).await {
                Ok(v) => {
                    answered = Some(v);
                    break;
                }
                Err(PromqlError::Busy { .. }) => {}
                Err(other) => panic!("{other}"),
            }
        }
        assert!(
            answered.is_some(),
            "slot still taken after {:?}",
            began.elapsed()
        );
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "{:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn async_queries_run_off_the_runtime() {
        let e = Engine::new(store(&[(0, 4.0)]), EngineOptions::default());
        let v = e.instant_query("x * 2".into(), 1000).await.unwrap();
        let Value::Vector(v) = v else { panic!() };
        assert_eq!((v[0].f, v[0].t), (8.0, 1000));
        assert_eq!(v[0].metric, Labels::new([("job", "a")]));
        assert!(e.range_query("sum(".into(), 0, 1, 1).await.is_err());
    }
}
