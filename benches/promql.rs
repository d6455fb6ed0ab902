//! Criterion benchmark of the PromQL engine alone: the dashboard's and alert
//! rules' query shapes over 1h, 6h, 24h and 7d ranges at about 250 points per
//! series, as a dashboard panel asks, over the in-memory store (the engine's
//! own cost) and over the SQLite store (what users run: chunk reads and
//! decoding included).

mod support;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use infermon::promql::{Engine, EngineOptions};
use infermon::storage::{Appender, MemoryStorage, Querier, SqliteStorage, StorageOptions};

const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_700_000_000_000;

/// Appends the generated week one scrape round at a time.
fn fill(store: &dyn Appender) {
    support::append_by_rounds(store, &support::generate(START_MS, 7 * DAY_MS));
}

fn bench_store(c: &mut Criterion, group: &str, store: Arc<dyn Querier>, opts: EngineOptions) {
    let engine = Engine::new(store, opts);
    let end = START_MS + 7 * DAY_MS;
    let mut group = c.benchmark_group(group);
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

fn bench(c: &mut Criterion) {
    let memory = Arc::new(MemoryStorage::new());
    fill(memory.as_ref());
    bench_store(c, "range_query", memory, EngineOptions::default());

    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStorage::open(
        dir.path(),
        StorageOptions {
            min_free_disk: 0,
            ..StorageOptions::default()
        },
    )
    .expect("open");
    fill(&sqlite);
    sqlite
        .maintain(START_MS + 7 * DAY_MS + 60_000)
        .expect("maintain");
    sqlite.checkpoint().expect("checkpoint");
    // Ended days are rolled up (the default `storage.rollup_after`): steps
    // of 5 minutes or more read them from the rollups...
    let sqlite: Arc<dyn Querier> = Arc::new(sqlite);
    bench_store(
        c,
        "range_query_sqlite",
        sqlite.clone(),
        EngineOptions::default(),
    );
    // ...and with `query.rollup_min_step: 0s`, from the raw chunks.
    bench_store(
        c,
        "range_query_sqlite_raw",
        sqlite,
        EngineOptions {
            rollup_min_step: std::time::Duration::ZERO,
            ..EngineOptions::default()
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
