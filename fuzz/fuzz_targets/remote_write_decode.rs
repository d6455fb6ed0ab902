//! The remote-write receiver's decoder on arbitrary bodies, raw and (to
//! reach the protobuf decoder past snappy) snappy-compressed: it must not
//! panic or allocate without bound, and every series it accepts is within
//! the limits with valid, sorted, unique labels.
#![no_main]

use infermon::remote::receive::{ReceiveLimits, decode};
use infermon::model::textparse::{is_label_name, is_metric_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ReceiveLimits {
        max_request_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        max_labels_per_series: 8,
        max_label_name_length: 64,
        max_label_value_length: 256,
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode % 2 == 0 {
        match snap::raw::Encoder::new().compress_vec(rest) {
            Ok(b) => b,
            Err(_) => return,
        }
    } else {
        rest.to_vec()
    };
    let Ok(decoded) = decode(&body, &limits) else {
        return;
    };
    for s in &decoded.series {
        assert!(s.labels.len() <= limits.max_labels_per_series);
        assert!(s.labels.metric_name().is_some_and(is_metric_name));
        let names: Vec<&str> = s.labels.iter().map(|l| l.name.as_str()).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        for l in s.labels.iter() {
            assert!(l.name == "__name__" || is_label_name(&l.name));
            assert!(l.name.len() <= limits.max_label_name_length);
            assert!(l.value.len() <= limits.max_label_value_length);
        }
        assert!(
            s.samples
                .windows(2)
                .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        );
    }
});
