//! Fills a store with 24 hours (or `HOURS`) of an inference box's metrics
//! for `bench/dashboard/run.sh` (not a test).
//!
//! Usage: dashboard_fill <storage dir> [hours] [step seconds]

#[path = "series.rs"]
mod series;

use std::time::Instant;

use infermon::storage::{SqliteStorage, StorageOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: dashboard_fill <storage dir> [hours] [step seconds]");
        std::process::exit(2);
    };
    let hours: i64 = args.get(2).and_then(|h| h.parse().ok()).unwrap_or(24);
    let step_s: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(15);
    let store = SqliteStorage::open(
        dir,
        StorageOptions {
            min_free_disk: 0,
            ..StorageOptions::default()
        },
    )
    .expect("open store");
    let step = step_s * 1000;
    let end = infermon::util::now_ms() / step * step;
    let begin = Instant::now();
    let samples = series::fill(&store, end - hours * 3_600_000, end, step).expect("append");
    store.close().expect("close");
    println!(
        "{{\"samples\": {samples}, \"hours\": {hours}, \"step_s\": {step_s}, \"fill_s\": {:.1}}}",
        begin.elapsed().as_secs_f64()
    );
}
