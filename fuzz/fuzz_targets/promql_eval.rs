//! The PromQL engine on arbitrary query text over a small fixed store: no
//! panic, no abort (run with `-rss_limit_mb`/`-malloc_limit_mb`), and every
//! query answers within its timeout. The first byte picks an instant query
//! or a range query and its step; the rest is the query.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use infermon::model::{Labels, Sample};
use infermon::promql::{Engine, EngineOptions};
use infermon::storage::{AppendSample, Appender, MemoryStorage};
use libfuzzer_sys::fuzz_target;

/// Query timeout; an answer must come well within twice of it.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Ten minutes at 15s of: a counter and a gauge on two jobs, a classic
/// histogram, a stale marker, and a series with odd label values.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let store = Arc::new(MemoryStorage::new());
        let mut batch = Vec::new();
        let mut add = |labels: &Labels, t: i64, v: f64| {
            batch.push(AppendSample {
                labels: labels.clone(),
                sample: Sample {
                    timestamp_ms: t,
                    value: v,
                },
            })
        };
        let series: Vec<(Labels, fn(i64) -> f64)> = vec![
            (
                Labels::new([("__name__", "http_requests_total"), ("job", "a"), ("code", "200")]),
                |i| (i * 10) as f64,
            ),
            (
                Labels::new([("__name__", "http_requests_total"), ("job", "b"), ("code", "500")]),
                |i| if i == 20 { 3.0 } else { (i * 3) as f64 },
            ),
            (
                Labels::new([("__name__", "temperature"), ("job", "a"), ("room", "x.y")]),
                |i| 20.0 + (i % 7) as f64 * 0.5,
            ),
            (
                Labels::new([("__name__", "odd"), ("v", "a\"b\\c\n"), ("empty", "")]),
                |i| if i == 30 { f64::NAN } else { -(i as f64) },
            ),
        ];
        for i in 0..40i64 {
            let t = i * 15_000;
            for (l, f) in &series {
                add(l, t, f(i));
            }
            for (le, share) in [("0.1", 0.2), ("0.5", 0.7), ("1", 0.9), ("+Inf", 1.0)] {
                let l = Labels::new([("__name__", "latency_bucket"), ("job", "a"), ("le", le)]);
                add(&l, t, (i as f64 * 10.0 * share).floor());
            }
        }
        add(
            &Labels::new([("__name__", "temperature"), ("job", "b")]),
            300_000,
            infermon::model::stale_nan(),
        );
        store.append(&batch).expect("append");
        Engine::new(
            store,
            EngineOptions {
                timeout: TIMEOUT,
                max_samples: 1_000_000,
                max_series: 1_000,
                max_memory_bytes: 64 << 20,
                ..EngineOptions::default()
            },
        )
    })
}

fuzz_target!(
    // libfuzzer-sys aborts on every panic, even one caught: `parse_literals`
    // turns promql-parser's panics into parse errors on purpose, so the
    // default hook comes back. A panic that escapes still aborts (the
    // harness's own catch_unwind).
    init: drop(std::panic::take_hook()),
    |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(query) = std::str::from_utf8(rest) else {
        return;
    };
    if query.len() > 4096 {
        return;
    }
    let e = engine();
    let began = Instant::now();
    let _ = if mode & 1 == 0 {
        e.instant(query, 600_000 * i64::from(mode >> 1) / 64)
    } else {
        // Up to 2,000 steps, as a dashboard asks.
        let step = 1_000 * (1 + i64::from(mode >> 1));
        e.range(query, 0, 600_000, step.max(300))
    };
    let took = began.elapsed();
    assert!(took < TIMEOUT * 4, "{query:?} took {took:?}");
});
