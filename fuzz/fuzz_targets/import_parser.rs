//! The import parser on arbitrary files, plain and gzip: it must not panic
//! or allocate without bound, and what it hands to the store is series with
//! a metric name and samples within the store's time window.
#![no_main]

use std::io::Write;

use infermon::storage::{Backfill, BackfillReport, SampleBounds, Series, StorageError};
use libfuzzer_sys::fuzz_target;

/// A store that checks what it is given and keeps nothing.
struct Check;

impl Backfill for Check {
    fn backfill(&self, series: &[Series]) -> Result<BackfillReport, StorageError> {
        let bounds = SampleBounds::default();
        let now = infermon::util::now_ms();
        let mut report = BackfillReport::default();
        for s in series {
            assert!(s.labels.metric_name().is_some());
            for x in &s.samples {
                if bounds.contains(x.timestamp_ms, now) {
                    report.samples_added += 1;
                } else {
                    report.samples_out_of_bounds += 1;
                }
            }
        }
        Ok(report)
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = infermon::snapshot::import(data, &Check);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if gz.write_all(data).is_ok()
        && let Ok(packed) = gz.finish()
    {
        let _ = infermon::snapshot::import(&packed[..], &Check);
    }
});
