//! Range-vector functions over a range query's whole step grid in one pass.
//!
//! Evaluated step by step, `rate(x[5m])` would cut every series' window out
//! of the prefetched samples at each step, copying its points into a fresh
//! matrix. As Prometheus' engine does, a range query instead walks each
//! series once: the window's two edges only move forward from step to step,
//! and the function reads the points in place. The values of every step are
//! kept for the call node; each step then only hands out its column.
//!
//! Instant selectors get the same treatment: one forward walk per series
//! finds the sample each step sees.
//!
//! Only a call whose range argument is a plain matrix selector takes this
//! path, and only at the query's own steps: subqueries (other timestamps)
//! and instant queries use the step-by-step functions, which these kernels
//! share. A window that reaches into rolled-up history is computed from its
//! 5-minute summaries, as the step-by-step functions do.

use promql_parser::parser::{Call, Expr, VectorSelector};

use super::PromqlError;
use super::budget::{SAMPLE_BYTES, SERIES_BYTES};
use super::engine::{Evaluator, Val, node_id, offset_ms, window_summaries};
use super::functions::{ROLLED_KERNELS, RolledKernel, WINDOW_FUNCTIONS, WindowKernel};
use super::value::{Point, Sample};
use crate::model::{Labels, Sample as StoredSample, is_stale_nan};
use crate::storage::RollupPoint;

/// A call's values at every step of the range query.
pub(crate) struct StepValues {
    /// Per series with a value at some step: its labels and, per step, the
    /// value (`None`: no value at that step).
    pub series: Vec<(Labels, Vec<Option<f64>>)>,
    /// Whether the call marks its results for `__name__` removal.
    pub drop_name: bool,
}

impl StepValues {
    /// The instant vector at step `i` (time `t`).
    fn at(&self, i: usize, t: i64) -> Vec<Sample> {
        self.series
            .iter()
            .filter_map(|(metric, values)| {
                values[i].map(|f| Sample {
                    metric: metric.clone(),
                    t,
                    f,
                    drop_name: self.drop_name,
                })
            })
            .collect()
    }
}

/// An instant selector's samples at every step of the range query.
pub(crate) struct StepSamples {
    /// Per series: its labels and, per step, the sample the step sees.
    pub series: Vec<(Labels, Vec<Option<StoredSample>>)>,
}

impl StepSamples {
    /// The instant vector at step `i`; samples keep their own timestamps.
    fn at(&self, i: usize) -> Vec<Sample> {
        self.series
            .iter()
            .filter_map(|(metric, samples)| {
                samples[i].map(|x| Sample {
                    metric: metric.clone(),
                    t: x.timestamp_ms,
                    f: x.value,
                    drop_name: false,
                })
            })
            .collect()
    }
}

impl Evaluator {
    /// The instant selector `vs` at `t` from one pass over each series for
    /// all steps (the latest sample at or before each step within the
    /// lookback, unless it is a stale marker); `None` off the step grid.
    pub(crate) fn selector_steps(
        &mut self,
        vs: &VectorSelector,
        t: i64,
    ) -> Result<Option<Vec<Sample>>, PromqlError> {
        let Some(i) = self.grid_index(t) else {
            return Ok(None);
        };
        self.selector_ready(vs)?;
        Ok(Some(self.selectors[&node_id(vs)].at(i)))
    }

    /// The index of `t` on the range query's step grid; `None` off it or
    /// outside a range query.
    pub(super) fn grid_index(&self, t: i64) -> Option<usize> {
        let (start, end, step) = self.steps?;
        (t >= start && t <= end && (t - start) % step == 0).then(|| ((t - start) / step) as usize)
    }

    /// Number of steps of the range query (0 outside one).
    pub(super) fn step_count(&self) -> usize {
        self.steps.map_or(0, |(start, end, step)| {
            (end.saturating_sub(start) / step) as usize + 1
        })
    }

    /// Walks the instant selector `vs` over all steps, once per query, into
    /// `selectors`; whether this is a range query (so it was walked).
    pub(crate) fn selector_ready(&mut self, vs: &VectorSelector) -> Result<bool, PromqlError> {
        let Some((start, _, step)) = self.steps else {
            return Ok(false);
        };
        let id = node_id(vs);
        if !self.selectors.contains_key(&id) {
            let at = self.at_ms(&vs.at);
            let offset = offset_ms(&vs.offset);
            let steps = self.step_count();
            let per_series = steps * std::mem::size_of::<Option<StoredSample>>() + SERIES_BYTES;
            self.budget.fits(0, per_series)?;
            let mut series = Vec::new();
            for s in self.data.get(&id).map_or(&[][..], Vec::as_slice) {
                self.check_deadline()?;
                let mut idx = 0;
                let mut fresh_steps = 0usize;
                let seen: Vec<Option<StoredSample>> = (0..steps)
                    .map(|i| {
                        let ref_t = at.unwrap_or(start + i as i64 * step) - offset;
                        idx += gallop(&s.samples[idx..], ref_t);
                        let x = *s.samples[..idx].last()?;
                        let fresh =
                            x.timestamp_ms > ref_t - self.lookback && !is_stale_nan(x.value);
                        fresh_steps += usize::from(fresh);
                        fresh.then_some(x)
                    })
                    .collect();
                if fresh_steps > 0 {
                    self.budget.hold(fresh_steps, per_series)?;
                    series.push((s.labels.clone(), seen));
                }
            }
            self.selectors.insert(id, StepSamples { series });
        }
        Ok(true)
    }

    /// The value of call `c` at `t` from its one-pass evaluation, when it
    /// qualifies (see the module doc); `None` sends it down the step-by-step
    /// path.
    pub(crate) fn window_call(&mut self, c: &Call, t: i64) -> Result<Option<Val>, PromqlError> {
        #[cfg(test)]
        if tests::STEP_BY_STEP.get() {
            return Ok(None);
        }
        let Some(i) = self.grid_index(t) else {
            return Ok(None);
        };
        if !self.window_ready(c)? {
            return Ok(None);
        }
        Ok(self.windows[&node_id(c)]
            .as_ref()
            .map(|w| Val::Vector(w.at(i, t))))
    }

    /// Computes call `c` over all steps when it takes the one-pass path
    /// (see `columns`); whether it does.
    pub(crate) fn window_ready(&mut self, c: &Call) -> Result<bool, PromqlError> {
        let Some((start, _, step)) = self.steps else {
            return Ok(false);
        };
        let id = node_id(c);
        if !self.windows.contains_key(&id) {
            let values = self.step_values(c, start, step)?;
            self.windows.insert(id, values);
        }
        Ok(self.windows[&id].is_some())
    }

    /// Walks every series of the call's selector across all steps.
    fn step_values(
        &self,
        c: &Call,
        start: i64,
        step: i64,
    ) -> Result<Option<StepValues>, PromqlError> {
        let Some(&(_, kernel, drop_name)) =
            WINDOW_FUNCTIONS.iter().find(|(n, _, _)| *n == c.func.name)
        else {
            return Ok(None);
        };
        let [arg] = c.args.args.as_slice() else {
            return Ok(None);
        };
        let Expr::MatrixSelector(ms) = arg.as_ref() else {
            return Ok(None);
        };
        let sel = node_id(&ms.vs);
        let rolled = self.rolled.get(&sel);
        let rolled_kernel = ROLLED_KERNELS
            .iter()
            .find(|(n, _)| *n == c.func.name)
            .map(|&(_, k)| k);
        if rolled.is_some() && rolled_kernel.is_none() {
            return Ok(None);
        }
        let range = ms.range.as_millis() as i64;
        let at = self.at_ms(&ms.vs.at);
        let offset = offset_ms(&ms.vs.offset);
        let steps = self.step_count();
        let window_end = |i: usize| at.unwrap_or(start + i as i64 * step) - offset;
        let per_series = steps * std::mem::size_of::<Option<f64>>() + SERIES_BYTES;
        self.budget
            .fits(0, per_series + steps * std::mem::size_of::<usize>())?;
        let mut per_step = vec![0usize; steps];
        let mut series = Vec::new();
        let mut buf: Vec<Point> = Vec::new();
        let mut aggs: Vec<RollupPoint> = Vec::new();
        for (i, s) in self
            .data
            .get(&sel)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .enumerate()
        {
            self.check_deadline()?;
            let prefix = rolled.and_then(|r| r.get(i)).map_or(&[][..], Vec::as_slice);
            let values = walk(
                Rolled {
                    samples: &s.samples,
                    prefix,
                },
                (kernel, rolled_kernel),
                range,
                window_end,
                &mut per_step,
                (&mut buf, &mut aggs),
            );
            let n = values.iter().filter(|v| v.is_some()).count();
            if n > 0 {
                // Held values count against the limit, as Prometheus counts
                // the points of a range function's result.
                self.budget.hold(n, per_series)?;
                series.push((s.labels.clone(), values));
            }
        }
        // One step's window is what Prometheus would hold at once.
        for &n in &per_step {
            self.budget.fits(n, n * SAMPLE_BYTES)?;
        }
        Ok(Some(StepValues { series, drop_name }))
    }
}

/// One series' samples, the first `prefix.len()` of which stand for the
/// 5-minute rollup summaries in `prefix`.
#[derive(Clone, Copy)]
struct Rolled<'a> {
    samples: &'a [StoredSample],
    prefix: &'a [RollupPoint],
}

/// The kernel's value over `(e - range, e]` for `e = window_end(i)` at each
/// step `i` (as many as `per_step` has), stale markers left out; counts the
/// points each step's window holds into `per_step`. A window that holds
/// rolled-up points is computed by the rolled kernel from their summaries
/// (and one-sample summaries of its raw samples). Both edges move forward
/// by galloping search from where they were, so a step only costs its
/// window and the cache lines between it and the last one.
fn walk(
    series: Rolled,
    (kernel, rolled): (WindowKernel, Option<RolledKernel>),
    range: i64,
    window_end: impl Fn(usize) -> i64,
    per_step: &mut [usize],
    (buf, aggs): (&mut Vec<Point>, &mut Vec<RollupPoint>),
) -> Vec<Option<f64>> {
    let Rolled { samples, prefix } = series;
    let point = |x: &StoredSample| Point {
        t: x.timestamp_ms,
        f: x.value,
    };
    // A series without stale markers (the usual case) is converted once and
    // each window read in place; otherwise every window is copied without
    // its markers. The conversion looks for markers on its way (one pass).
    buf.clear();
    let mut clean = true;
    buf.extend(samples.iter().map(|x| {
        clean &= !is_stale_nan(x.value);
        point(x)
    }));
    let (mut lo, mut hi) = (0, 0);
    let mut out = Vec::with_capacity(per_step.len());
    for (i, count) in per_step.iter_mut().enumerate() {
        let e = window_end(i);
        let s = e - range;
        if lo > 0 && samples[lo - 1].timestamp_ms > s || hi > 0 && samples[hi - 1].timestamp_ms > e
        {
            // The window moved back (an `@` modifier keeps it in place;
            // steps never move it back): search from the start.
            lo = 0;
            hi = 0;
        }
        lo += gallop(&samples[lo..], s);
        hi = hi.max(lo);
        hi += gallop(&samples[hi..], e);
        let window: &[Point] = if clean {
            &buf[lo..hi]
        } else {
            buf.clear();
            buf.extend(
                samples[lo..hi]
                    .iter()
                    .filter(|x| !is_stale_nan(x.value))
                    .map(point),
            );
            buf
        };
        *count += window.len();
        out.push(match rolled {
            _ if window.is_empty() => None,
            Some(rolled) if lo < prefix.len() => {
                aggs.clear();
                aggs.extend(window_summaries(samples, prefix, lo..hi));
                rolled(aggs, window, s, e)
            }
            _ => kernel(window, s, e),
        });
    }
    out
}

/// How many leading samples are at or before `t` (sorted samples), found by
/// doubling steps from the front and then a binary search in the last one.
fn gallop(samples: &[StoredSample], t: i64) -> usize {
    let mut bound = 1;
    while bound <= samples.len() && samples[bound - 1].timestamp_ms <= t {
        bound *= 2;
    }
    let from = bound / 2;
    let to = bound.min(samples.len());
    from + samples[from..to].partition_point(|x| x.timestamp_ms <= t)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;
    use std::sync::Arc;

    use super::*;
    use crate::promql::{Engine, EngineOptions, Value};
    use crate::storage::{AppendSample, Appender, SqliteStorage, StorageOptions};

    thread_local! {
        /// Sends every call of this thread's queries down the step-by-step path.
        pub(crate) static STEP_BY_STEP: Cell<bool> = const { Cell::new(false) };
    }

    fn walk_raw(
        samples: &[StoredSample],
        kernel: WindowKernel,
        range: i64,
        window_end: impl Fn(usize) -> i64,
        per_step: &mut [usize],
        buf: &mut Vec<Point>,
    ) -> Vec<Option<f64>> {
        let series = Rolled {
            samples,
            prefix: &[],
        };
        walk(
            series,
            (kernel, None),
            range,
            window_end,
            per_step,
            (buf, &mut Vec::new()),
        )
    }

    #[test]
    fn gallop_finds_the_partition_point() {
        for n in 0..40usize {
            let samples: Vec<StoredSample> = (0..n)
                .map(|i| StoredSample {
                    timestamp_ms: 2 * i as i64,
                    value: 0.0,
                })
                .collect();
            for t in -1..=2 * n as i64 + 1 {
                let want = samples.partition_point(|x| x.timestamp_ms <= t);
                assert_eq!(gallop(&samples, t), want, "n={n} t={t}");
            }
        }
    }

    #[test]
    fn windows_are_left_open_and_right_closed_and_skip_stale_markers() {
        let mut samples: Vec<StoredSample> = (0..10)
            .map(|i| StoredSample {
                timestamp_ms: i * 10,
                value: i as f64,
            })
            .collect();
        samples[6].value = crate::model::stale_nan();
        let count: WindowKernel = |p, _, _| Some(p.len() as f64);
        let first: WindowKernel = |p, _, _| Some(p[0].f);
        let mut buf = Vec::new();
        let mut per_step = vec![0; 5];
        // Windows (e-30, e] for e = 0, 25, 50, 75, 100; 60 is stale.
        let got = walk_raw(
            &samples,
            count,
            30,
            |i| i as i64 * 25,
            &mut per_step,
            &mut buf,
        );
        assert_eq!(
            got,
            vec![Some(1.0), Some(3.0), Some(3.0), Some(2.0), Some(2.0)]
        );
        assert_eq!(per_step, vec![1, 3, 3, 2, 2]);
        let got = walk_raw(
            &samples,
            first,
            30,
            |i| i as i64 * 25,
            &mut per_step,
            &mut buf,
        );
        assert_eq!(
            got,
            vec![Some(0.0), Some(0.0), Some(3.0), Some(5.0), Some(8.0)]
        );
        // A fixed window (`@`) at every step; past the data, no value.
        let mut per_step = vec![0; 3];
        let got = walk_raw(&samples, count, 30, |_| 40, &mut per_step, &mut buf);
        assert_eq!(got, vec![Some(3.0); 3]);
        let got = walk_raw(
            &samples,
            count,
            5,
            |i| 200 + i as i64,
            &mut per_step,
            &mut buf,
        );
        assert_eq!(got, vec![None; 3]);
    }

    #[test]
    fn one_pass_over_rolled_up_history_equals_step_by_step() {
        const DAY: i64 = 86_400_000;
        let d0 = 19_675 * DAY;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(
            dir.path(),
            StorageOptions {
                min_free_disk: 0,
                retention_ms: 30 * DAY,
                rollup_after_ms: 0,
                rollup_retention_ms: 30 * DAY,
                ..StorageOptions::default()
            },
        )
        .unwrap();
        // Three days at 15 s (jittered): a counter with a reset mid-bucket
        // and a gap, and a gauge with a stale marker.
        let labels = |name: &str| crate::model::Labels::new([("__name__", name), ("job", "a")]);
        let mut c = 0.0;
        let mut batch = Vec::new();
        for i in 0..(3 * DAY / 15_000) {
            if (9_000..9_100).contains(&i) {
                continue;
            }
            let t = d0 + i * 15_000 + (i * 7919 % 4_000);
            c = if i == 7_013 { 2.0 } else { c + (i % 11) as f64 };
            let g = if i == 12_345 {
                crate::model::stale_nan()
            } else {
                ((i * 31) % 97) as f64 / 7.0
            };
            for (name, v) in [("x_total", c), ("g", g)] {
                batch.push(AppendSample {
                    labels: labels(name),
                    sample: StoredSample {
                        timestamp_ms: t,
                        value: v,
                    },
                });
            }
        }
        for b in batch.chunks(2_000) {
            store.append(b).unwrap();
        }
        store.compact(d0 + 3 * DAY, true).unwrap();
        store.rollup(d0 + 3 * DAY).unwrap();
        let store = Arc::new(store);
        let e = Engine::new(store.clone(), EngineOptions::default());
        let raw = Engine::new(
            store,
            EngineOptions {
                rollup_min_step: std::time::Duration::ZERO,
                ..EngineOptions::default()
            },
        );
        let mut differs_from_raw = 0;
        // Steps of 20 and 7 minutes (at least rollup_min_step), from the
        // first day (rolled up) into the last one (read raw).
        for (step, q) in [
            (1_200_000, "rate(x_total[10m])"),
            (420_000, "increase(x_total[1h] offset 3m)"),
            (1_200_000, "sum(rate(x_total[30m]))"),
            (420_000, "avg_over_time(g[30m])"),
            (1_200_000, "min_over_time(g[15m])"),
            (1_200_000, "max_over_time(g[1h])"),
            (420_000, "sum_over_time(g[20m])"),
            (1_200_000, "count_over_time(g[10m])"),
            (1_200_000, "changes(g[1h])"),
        ] {
            let run = |step_by_step: bool, e: &Engine| {
                STEP_BY_STEP.set(step_by_step);
                let v = e.range(q, d0 + 3_600_000, d0 + 3 * DAY, step).unwrap();
                STEP_BY_STEP.set(false);
                let Value::Matrix(m) = v else {
                    panic!("{q}: not a matrix");
                };
                m.iter()
                    .flat_map(|s| s.points.iter().map(|p| (p.t, p.f)))
                    .collect::<Vec<_>>()
            };
            let (got, want) = (run(false, &e), run(true, &e));
            differs_from_raw += usize::from(run(false, &raw) != got);
            assert!(want.len() > 100, "{q}: only {} points", want.len());
            assert_eq!(got.len(), want.len(), "{q}");
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    g.0 == w.0 && (g.1 == w.1 || g.1.is_nan() && w.1.is_nan()),
                    "{q}: {g:?} != {w:?}"
                );
            }
        }
        assert!(
            differs_from_raw >= 3,
            "rollups were not read: {differs_from_raw}"
        );
    }
}
