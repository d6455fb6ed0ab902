//! Criterion benchmark of the PromQL engine alone (in-memory store): the
//! dashboard's and alert rules' query shapes over 1h, 6h, 24h and 7d ranges
//! at about 250 points per series, as a dashboard panel asks.

mod support;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use infermon::promql::{Engine, EngineOptions};
use infermon::storage::{AppendSample, Appender, MemoryStorage};

const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_700_000_000_000;

fn bench(c: &mut Criterion) {
    let store = Arc::new(MemoryStorage::new());
    for (labels, samples) in support::generate(START_MS, 7 * DAY_MS) {
        let batch: Vec<AppendSample> = samples
            .into_iter()
            .map(|sample| AppendSample {
                labels: labels.clone(),
                sample,
            })
            .collect();
        store.append(&batch).expect("append");
    }
    let engine = Engine::new(store, EngineOptions::default());
    let end = START_MS + 7 * DAY_MS;
    let mut group = c.benchmark_group("range_query");
    group.sample_size(10);
    for (range_name, range_ms) in [
        ("1h", 3_600_000),
        ("6h", 6 * 3_600_000),
        ("24h", DAY_MS),
        ("7d", 7 * DAY_MS),
    ] {
        let step = (range_ms / 250).max(15_000);
        for (name, q) in support::QUERIES {
            group.bench_function(format!("{name} {range_name}"), |b| {
                b.iter(|| engine.range(q, end - range_ms, end, step).expect("query"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
