//! Rollups vs raw samples: bytes per 5-minute point, and the latency of a
//! 30-day `rate(x[1h])` range query (1h step, 20 counters scraped every 15 s)
//! answered from raw pco chunks vs from 5-minute rollups. Results in
//! `bench/README.md`.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use infermon::model::{Labels, Sample};
use infermon::promql::{Engine, EngineOptions, Value};
use infermon::storage::{AppendSample, Appender, SqliteStorage, StorageOptions};

const DAY: i64 = 86_400_000;
/// A UTC midnight.
const D0: i64 = 19_675 * DAY;
const DAYS: i64 = 31;
const SERIES: usize = 20;
const STEP: i64 = 15_000;

fn fill(store: &SqliteStorage) {
    let labels: Vec<Labels> = (0..SERIES)
        .map(|i| {
            Labels::new([
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("instance", &format!("host{i}:8080")),
            ])
        })
        .collect();
    let mut values = [0.0f64; SERIES];
    let mut batch = Vec::with_capacity(SERIES * 240);
    for k in 0..DAYS * DAY / STEP {
        let t = D0 + k * STEP;
        for (i, l) in labels.iter().enumerate() {
            // Request counts: integer increments around 10/s, irregular
            // (a hash of step and series), as real traffic is.
            let h = (k as u64 * SERIES as u64 + i as u64)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29)
                .wrapping_mul(0xbf58_476d_1ce4_e5b9);
            values[i] += (h % 61 + 120) as f64;
            batch.push(AppendSample {
                labels: l.clone(),
                sample: Sample {
                    timestamp_ms: t,
                    value: values[i],
                },
            });
        }
        if batch.len() >= SERIES * 240 {
            store.append(&batch).expect("append");
            batch.clear();
        }
    }
    store.append(&batch).expect("append");
}

fn open(dir: &std::path::Path, retention_days: i64, rollup_retention_days: i64) -> SqliteStorage {
    SqliteStorage::open(
        dir,
        StorageOptions {
            min_free_disk: 0,
            retention_ms: retention_days * DAY,
            rollup_after_ms: retention_days * DAY,
            rollup_retention_ms: rollup_retention_days * DAY,
            ..StorageOptions::default()
        },
    )
    .expect("open")
}

fn bench(c: &mut Criterion) {
    let raw_dir = tempfile::tempdir().expect("tempdir");
    let rolled_dir = tempfile::tempdir().expect("tempdir");
    // Raw: everything kept raw, rollups off. Rolled: raw kept 1 day, so the
    // 30 days asked for come from rollups.
    let raw = open(raw_dir.path(), 1000, 0);
    let rolled = open(rolled_dir.path(), 1, 400);
    fill(&raw);
    fill(&rolled);
    let now = D0 + DAYS * DAY;
    raw.maintain(now).expect("maintain");
    rolled.maintain(now).expect("maintain");
    let (rs, ws) = (raw.stats(), rolled.stats());
    // Checkpointed and vacuumed, so the files hold what is kept.
    raw.close().expect("close");
    rolled.close().expect("close");
    let raw_bytes = raw.used_bytes().expect("size");
    let rolled_bytes = rolled.used_bytes().expect("size");
    eprintln!(
        "raw: {} samples, {} bytes on disk ({:.3} B/sample)",
        rs.samples,
        raw_bytes,
        raw_bytes as f64 / rs.samples as f64
    );
    eprintln!(
        "rollups: {} series, {} points, {} encoded bytes ({:.2} B/point encoded); store with 1 raw day: {} bytes on disk",
        ws.rollup_series,
        ws.rollup_points,
        ws.rollup_bytes,
        ws.rollup_bytes as f64 / ws.rollup_points as f64,
        rolled_bytes
    );

    let q = "rate(http_requests_total[1h])";
    let (start, end, step) = (D0 + 3_600_000, D0 + 30 * DAY, 3_600_000);
    let e_raw = Engine::new(Arc::new(raw.clone()), EngineOptions::default());
    let e_rolled = Engine::new(Arc::new(rolled.clone()), EngineOptions::default());
    // Same answer from both (sanity; tests/rollups.rs checks it within 1 %).
    let total = |v: Value| match v {
        Value::Matrix(m) => m.iter().flat_map(|s| &s.points).map(|p| p.f).sum::<f64>(),
        _ => f64::NAN,
    };
    let a = total(e_raw.range(q, start, end, step).expect("query"));
    let b = total(e_rolled.range(q, start, end, step).expect("query"));
    eprintln!("sum of all rate points: raw {a:.1}, rollups {b:.1}");

    let mut g = c.benchmark_group("rate_1h_over_30d");
    g.sample_size(10);
    g.bench_function("raw", |bch| {
        bch.iter(|| e_raw.range(q, start, end, step).expect("query"))
    });
    g.bench_function("rollups", |bch| {
        bch.iter(|| e_rolled.range(q, start, end, step).expect("query"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
