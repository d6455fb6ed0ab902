//! One query's limits, checked while it loads and while it evaluates.
//!
//! A query must fail with an error a person can act on before it can slow
//! the model service or take the process down, so the evaluator charges what
//! it holds as it goes, not after a loop has built it:
//! - samples held (Prometheus' `--query.max-samples`), counted as they are
//!   decoded from the store and as steps are cached;
//! - series selected (VictoriaMetrics' `-search.maxUniqueTimeseries`);
//! - an estimate of the bytes held (points, cached steps, label strings built
//!   by `label_replace`/`label_join`), so shapes where one "sample" costs far
//!   more than 16 bytes (a subquery's cached steps) are bounded too;
//! - the deadline, and cancellation when the client went away.
//!
//! What stays for the rest of the query (fetched samples, step caches, the
//! range result) is *held*; what lives for one step (a window, a subquery's
//! matrix) is only checked to *fit* next to what is held.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::PromqlError;
use crate::storage::ReadLimit;

/// Bytes a stored sample costs in memory (timestamp and value).
pub(crate) const SAMPLE_BYTES: usize = 16;
/// Bytes a series costs beyond its points (vector headers, label set handle).
pub(crate) const SERIES_BYTES: usize = 64;
/// Bytes one cached subquery step costs beyond its samples (map entry, vector).
pub(crate) const STEP_BYTES: usize = 64;

/// The limits one query runs under (from `query:` in the config).
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub max_samples: usize,
    pub max_series: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// One query's account of what it holds, its deadline and its cancel flag.
pub(crate) struct Budget {
    limits: Limits,
    deadline: Instant,
    cancel: Option<Arc<AtomicBool>>,
    samples: Cell<usize>,
    series: Cell<usize>,
    bytes: Cell<usize>,
    /// Why a store read was stopped (the store only says that it was).
    stopped: RefCell<Option<PromqlError>>,
}

impl Budget {
    /// A fresh budget; `cancel` set to true stops the query.
    pub fn new(limits: Limits, cancel: Option<Arc<AtomicBool>>) -> Self {
        Budget {
            deadline: Instant::now() + limits.timeout,
            limits,
            cancel,
            samples: Cell::new(0),
            series: Cell::new(0),
            bytes: Cell::new(0),
            stopped: RefCell::new(None),
        }
    }

    /// Fails once the query ran past its timeout or its client left.
    pub fn check(&self) -> Result<(), PromqlError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(PromqlError::Cancelled);
        }
        if Instant::now() > self.deadline {
            return Err(PromqlError::Timeout("query execution"));
        }
        Ok(())
    }

    /// Takes `samples` samples and `bytes` bytes for the rest of the query.
    pub fn hold(&self, samples: usize, bytes: usize) -> Result<(), PromqlError> {
        self.fits(samples, bytes)?;
        self.samples.set(self.samples.get() + samples);
        self.bytes.set(self.bytes.get() + bytes);
        Ok(())
    }

    /// Fails unless `samples` and `bytes` more fit next to what is held.
    pub fn fits(&self, samples: usize, bytes: usize) -> Result<(), PromqlError> {
        if self.samples.get().saturating_add(samples) > self.limits.max_samples {
            return Err(PromqlError::TooManySamples("query execution"));
        }
        if self.bytes.get().saturating_add(bytes) > self.limits.max_bytes {
            return Err(PromqlError::TooMuchMemory(self.limits.max_bytes));
        }
        Ok(())
    }

    /// Counts `n` more selected series.
    pub fn select_series(&self, n: usize) -> Result<(), PromqlError> {
        let total = self.series.get().saturating_add(n);
        if total > self.limits.max_series {
            return Err(PromqlError::TooManySeries(self.limits.max_series));
        }
        self.series.set(total);
        Ok(())
    }

    /// The error that stopped the last store read (see [`ReadLimit`]).
    pub fn stop_reason(&self) -> PromqlError {
        self.stopped
            .borrow_mut()
            .take()
            .unwrap_or(PromqlError::TooManySamples("query execution"))
    }

    /// Samples held so far.
    #[cfg(test)]
    pub fn held_samples(&self) -> usize {
        self.samples.get()
    }
}

impl ReadLimit for Budget {
    fn take(&self, series: usize, samples: usize) -> bool {
        let r = self
            .check()
            .and_then(|()| self.select_series(series))
            .and_then(|()| self.hold(samples, samples * SAMPLE_BYTES + series * SERIES_BYTES));
        match r {
            Ok(()) => true,
            Err(e) => {
                *self.stopped.borrow_mut() = Some(e);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_samples: 100,
            max_series: 3,
            max_bytes: 10_000,
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn holds_add_up_and_fits_does_not() {
        let b = Budget::new(limits(), None);
        b.hold(60, 960).unwrap();
        b.fits(40, 0).unwrap();
        assert_eq!(b.held_samples(), 60, "fits holds nothing");
        assert!(matches!(b.fits(41, 0), Err(PromqlError::TooManySamples(_))));
        assert!(matches!(
            b.hold(1, 9_100),
            Err(PromqlError::TooMuchMemory(10_000))
        ));
        assert_eq!(b.held_samples(), 60, "a refused hold holds nothing");
    }

    #[test]
    fn a_store_read_stops_with_the_reason() {
        let b = Budget::new(limits(), None);
        assert!(b.take(3, 10));
        assert!(!b.take(1, 0));
        assert!(matches!(b.stop_reason(), PromqlError::TooManySeries(3)));
        let cancel = Arc::new(AtomicBool::new(false));
        let b = Budget::new(limits(), Some(cancel.clone()));
        assert!(b.take(0, 1));
        cancel.store(true, Ordering::Relaxed);
        assert!(!b.take(0, 1));
        assert!(matches!(b.stop_reason(), PromqlError::Cancelled));
    }
}
