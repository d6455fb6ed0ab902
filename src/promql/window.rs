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
//! Only a call whose range argument is a plain matrix selector over raw
//! samples takes this path, and only at the query's own steps: subqueries
//! (other timestamps), instant queries and windows that reach into rolled-up
//! history use the step-by-step functions, which these kernels share.

use promql_parser::parser::{Call, Expr, VectorSelector};

use super::PromqlError;
use super::budget::{SAMPLE_BYTES, SERIES_BYTES};
use super::engine::{Evaluator, Val, node_id, offset_ms};
use super::functions::{WINDOW_FUNCTIONS, WindowKernel};
use super::value::{Point, Sample};
use crate::model::{Labels, Sample as StoredSample, is_stale_nan};

/// A call's values at every step of the range query.
pub(crate) struct StepValues {
    /// Per series with a value at some step: its labels and, per step, the
    /// value (`None`: no value at that step).
    series: Vec<(Labels, Vec<Option<f64>>)>,
    drop_name: bool,
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
    series: Vec<(Labels, Vec<Option<StoredSample>>)>,
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
        let Some((start, end, step)) = self.steps else {
            return Ok(None);
        };
        if t < start || t > end || (t - start) % step != 0 {
            return Ok(None);
        }
        let id = node_id(vs);
        if !self.selectors.contains_key(&id) {
            let at = self.at_ms(&vs.at);
            let offset = offset_ms(&vs.offset);
            let steps = (end.saturating_sub(start) / step) as usize + 1;
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
        Ok(Some(self.selectors[&id].at(((t - start) / step) as usize)))
    }

    /// The value of call `c` at `t` from its one-pass evaluation, when it
    /// qualifies (see the module doc); `None` sends it down the step-by-step
    /// path.
    pub(crate) fn window_call(&mut self, c: &Call, t: i64) -> Result<Option<Val>, PromqlError> {
        let Some((start, end, step)) = self.steps else {
            return Ok(None);
        };
        if t < start || t > end || (t - start) % step != 0 {
            return Ok(None);
        }
        let id = node_id(c);
        if !self.windows.contains_key(&id) {
            let values = self.step_values(c, start, end, step)?;
            self.windows.insert(id, values);
        }
        Ok(self.windows[&id]
            .as_ref()
            .map(|w| Val::Vector(w.at(((t - start) / step) as usize, t))))
    }

    /// Walks every series of the call's selector across all steps.
    fn step_values(
        &self,
        c: &Call,
        start: i64,
        end: i64,
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
        if self.rolled.contains_key(&sel) {
            return Ok(None);
        }
        let range = ms.range.as_millis() as i64;
        let at = self.at_ms(&ms.vs.at);
        let offset = offset_ms(&ms.vs.offset);
        let steps = (end.saturating_sub(start) / step) as usize + 1;
        let window_end = |i: usize| at.unwrap_or(start + i as i64 * step) - offset;
        let per_series = steps * std::mem::size_of::<Option<f64>>() + SERIES_BYTES;
        self.budget
            .fits(0, per_series + steps * std::mem::size_of::<usize>())?;
        let mut per_step = vec![0usize; steps];
        let mut series = Vec::new();
        let mut buf: Vec<Point> = Vec::new();
        for s in self.data.get(&sel).map_or(&[][..], Vec::as_slice) {
            self.check_deadline()?;
            let values = walk(
                &s.samples,
                kernel,
                range,
                window_end,
                &mut per_step,
                &mut buf,
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

/// The kernel's value over `(e - range, e]` for `e = window_end(i)` at each
/// step `i` (as many as `per_step` has), stale markers left out; counts the
/// points each step's window holds into `per_step`. Both edges move forward
/// by galloping search from where they were, so a step only costs its
/// window and the cache lines between it and the last one.
fn walk(
    samples: &[StoredSample],
    kernel: WindowKernel,
    range: i64,
    window_end: impl Fn(usize) -> i64,
    per_step: &mut [usize],
    buf: &mut Vec<Point>,
) -> Vec<Option<f64>> {
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
        buf.clear();
        buf.extend(
            samples[lo..hi]
                .iter()
                .filter(|x| !is_stale_nan(x.value))
                .map(|x| Point {
                    t: x.timestamp_ms,
                    f: x.value,
                }),
        );
        *count += buf.len();
        out.push(if buf.is_empty() {
            None
        } else {
            kernel(buf, s, e)
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
mod tests {
    use super::*;

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
        let got = walk(
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
        let got = walk(
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
        let got = walk(&samples, count, 30, |_| 40, &mut per_step, &mut buf);
        assert_eq!(got, vec![Some(3.0); 3]);
        let got = walk(
            &samples,
            count,
            5,
            |i| 200 + i as i64,
            &mut per_step,
            &mut buf,
        );
        assert_eq!(got, vec![None; 3]);
    }
}
