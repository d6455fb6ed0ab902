//! The exposition parser on arbitrary bodies, in both formats: it must not
//! panic, and whatever it accepts must have valid names.
#![no_main]

use infermon::model::textparse::{Format, is_label_name, is_metric_name, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    for format in [Format::Text, Format::OpenMetrics] {
        if let Ok(samples) = parse(&body, format) {
            for s in samples {
                assert!(s.labels.metric_name().is_some_and(is_metric_name));
                assert!(s.labels.iter().all(|l| l.name == "__name__" || is_label_name(&l.name)));
            }
        }
    }
});
