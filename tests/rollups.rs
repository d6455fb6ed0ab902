//! 5-minute rollups on real SQLite files, read through the real PromQL
//! engine: queries over rolled-up history agree with the same queries over
//! raw samples; rollups survive a restart, outlive raw retention, go with
//! rollup retention, and show in `infermon_storage_*`.

use std::sync::Arc;

use infermon::model::{Labels, MatchOp, Matcher, Sample};
use infermon::promql::{Engine, EngineOptions, Value};
use infermon::storage::{
    AppendSample, Appender, Querier, SqliteStorage, StorageCollector, StorageOptions,
};

const DAY: i64 = 24 * 3600 * 1000;
const STEP: i64 = 15_000;
/// A UTC midnight.
const D0: i64 = 19_675 * DAY;
const DAYS: i64 = 10;

fn counter() -> Labels {
    Labels::new([("__name__", "requests_total"), ("job", "app")])
}

fn gauge() -> Labels {
    Labels::new([("__name__", "queue_depth"), ("job", "app")])
}

/// Deterministic jitter in [-1, 1).
fn jitter(i: i64) -> f64 {
    let x = (i as u64).wrapping_mul(6364136223846793005).rotate_left(17) ^ 0x9e3779b97f4a7c15;
    (x % 20_000) as f64 / 10_000.0 - 1.0
}

/// 10 days at 15 s: a counter whose rate drifts slowly and which restarts
/// from zero every 37h (mid-bucket, 2m40s past a 5-minute boundary), and a
/// gauge following a 3h wave with a little noise.
fn generate() -> Vec<Vec<AppendSample>> {
    let n = DAYS * DAY / STEP;
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut c = 0.0f64;
    for i in 0..n {
        let t = D0 + i * STEP;
        let secs = (t - D0) as f64 / 1000.0;
        let per_sec = 10.0 + 4.0 * (secs * std::f64::consts::TAU / 21_600.0).sin();
        c += per_sec * 15.0 * (1.0 + 0.02 * jitter(i));
        if (t - D0) % (37 * 3600 * 1000) == 160_000 {
            c = per_sec * 7.0;
        }
        let g =
            100.0 + 20.0 * (secs * std::f64::consts::TAU / 10_800.0).sin() + 0.2 * jitter(i + 7);
        for (labels, v) in [(counter(), c.round()), (gauge(), g)] {
            batch.push(AppendSample {
                labels,
                sample: Sample {
                    timestamp_ms: t,
                    value: v,
                },
            });
        }
        if batch.len() >= 960 {
            batches.push(std::mem::take(&mut batch));
        }
    }
    batches.push(batch);
    batches
}

fn open(dir: &std::path::Path, retention_days: i64, rollup_after_days: i64) -> SqliteStorage {
    SqliteStorage::open(
        dir,
        StorageOptions {
            min_free_disk: 0,
            retention_ms: retention_days * DAY,
            rollup_after_ms: rollup_after_days * DAY,
            rollup_retention_ms: 30 * DAY,
            ..StorageOptions::default()
        },
    )
    .unwrap()
}

fn matrix(
    engine: &Engine,
    q: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Vec<(Labels, Vec<(i64, f64)>)> {
    match engine.range(q, start, end, step).unwrap() {
        Value::Matrix(m) => m
            .into_iter()
            .map(|s| (s.metric, s.points.into_iter().map(|p| (p.t, p.f)).collect()))
            .collect(),
        other => panic!("{q}: expected a matrix, got {other:?}"),
    }
}

/// Engines over `store` that read raw samples at every step, and that read
/// rollups at steps of 5 minutes or more (the default).
fn raw_and_coarse(store: &SqliteStorage) -> (Engine, Engine) {
    let raw = Engine::new(
        Arc::new(store.clone()),
        EngineOptions {
            rollup_min_step: std::time::Duration::ZERO,
            ..EngineOptions::default()
        },
    );
    let coarse = Engine::new(Arc::new(store.clone()), EngineOptions::default());
    (raw, coarse)
}

/// Backfills one gauge sample of 1e6 at `t` (a late sample in data that
/// may be rolled up already).
fn backfill_spike(store: &SqliteStorage, t: i64) {
    let backfilled = infermon::storage::Series {
        labels: gauge(),
        samples: vec![Sample {
            timestamp_ms: t,
            value: 1e6,
        }],
    };
    let r = infermon::storage::Backfill::backfill(store, &[backfilled]).unwrap();
    assert_eq!(r.samples_added, 1, "{r:?}");
}

/// Largest relative difference between the two results; they must have
/// the same series and the same steps.
fn max_rel_diff(
    q: &str,
    raw: &[(Labels, Vec<(i64, f64)>)],
    rolled: &[(Labels, Vec<(i64, f64)>)],
) -> f64 {
    assert_eq!(raw.len(), rolled.len(), "{q}: series differ");
    let mut worst = 0.0f64;
    for ((la, pa), (lb, pb)) in raw.iter().zip(rolled) {
        assert_eq!(la, lb, "{q}");
        assert_eq!(
            pa.len(),
            pb.len(),
            "{q}: {la} has {} raw steps, {} rolled",
            pa.len(),
            pb.len()
        );
        for ((ta, a), (tb, b)) in pa.iter().zip(pb) {
            assert_eq!(ta, tb, "{q}");
            let d = (a - b).abs() / a.abs().max(b.abs()).max(1e-9);
            worst = worst.max(d);
        }
    }
    worst
}

#[test]
fn rollups_answer_like_raw_data_survive_restart_and_expire() {
    let raw_dir = tempfile::tempdir().unwrap();
    let rolled_dir = tempfile::tempdir().unwrap();
    let raw = open(raw_dir.path(), 1000, 1000);
    let rolled = open(rolled_dir.path(), 7, 7);
    for batch in generate() {
        raw.append(&batch).unwrap();
        rolled.append(&batch).unwrap();
    }
    let now = D0 + DAYS * DAY;
    raw.maintain(now).unwrap();
    let report = rolled.maintain(now).unwrap();
    // Days 0-2 ended 7 days before `now`: rolled up, then their raw chunks
    // expired (raw retention 7d); days 3-9 stay raw.
    assert_eq!(report.days_rolled_up, 3 * 2, "{report:?}");
    assert!(report.expired_chunks > 0, "{report:?}");
    let all = [Matcher::new("job", MatchOp::Equal, "app").unwrap()];
    assert!(
        rolled
            .select(&all, D0, D0 + 3 * DAY - 1)
            .unwrap()
            .is_empty()
    );
    let points = rolled.select_rollups(&all, D0, D0 + 3 * DAY - 1).unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].points.len(), 3 * 288);
    assert_eq!(raw.select(&all, D0, D0 + 3 * DAY - 1).unwrap().len(), 2);
    // Label lookups (dashboard variables, /api/v1/labels) still find them.
    assert_eq!(
        rolled
            .label_values("__name__", &all, D0, D0 + 3 * DAY - 1)
            .unwrap(),
        ["queue_depth", "requests_total"]
    );

    // Over rolled-up history, and across the rollup/raw boundary (day 3).
    let queries = [
        "rate(requests_total[10m])",
        "rate(requests_total[1h])",
        "increase(requests_total[1h])",
        "avg_over_time(queue_depth[30m])",
        "min_over_time(queue_depth[30m])",
        "max_over_time(queue_depth[30m])",
        "sum_over_time(queue_depth[30m])",
        "count_over_time(queue_depth[30m])",
        "queue_depth",
    ];
    let e_raw = Engine::new(Arc::new(raw.clone()), EngineOptions::default());
    let e_rolled = Engine::new(Arc::new(rolled.clone()), EngineOptions::default());
    let (start, end, step) = (D0 + 3_600_000, D0 + 4 * DAY, 30 * 60 * 1000);
    for q in queries {
        let a = matrix(&e_raw, q, start, end, step);
        let b = matrix(&e_rolled, q, start, end, step);
        let worst = max_rel_diff(q, &a, &b);
        println!("{q}: max relative difference {:.4}%", worst * 100.0);
        assert!(
            worst <= 0.01,
            "{q}: rolled up differs from raw by {:.3}%",
            worst * 100.0
        );
    }
    // Evaluation times off the 5-minute grid: rate and increase still
    // agree; *_over_time windows snap to whole buckets, so a window can
    // shift by up to 5 minutes (and, where it straddles the rollup/raw
    // boundary, hold up to one bucket more).
    let off = 137_000;
    for (q, bound) in [
        ("rate(requests_total[10m])", 0.01),
        ("rate(requests_total[1h])", 0.01),
        ("increase(requests_total[1h])", 0.01),
        ("avg_over_time(queue_depth[30m])", 0.05),
        ("count_over_time(queue_depth[30m])", 1.0 / 6.0),
    ] {
        let a = matrix(&e_raw, q, start + off, end, step);
        let b = matrix(&e_rolled, q, start + off, end, step);
        let worst = max_rel_diff(q, &a, &b);
        println!(
            "{q} off the grid: max relative difference {:.4}%",
            worst * 100.0
        );
        assert!(worst <= bound, "{q} off the grid: {:.3}%", worst * 100.0);
    }
    // A reset mid-bucket (day 1, 13:00:02:40) loses no increase: the hour
    // around it matches raw data closely, not just within extrapolation.
    let reset = D0 + 37 * 3600 * 1000 + 160_000;
    let q = "increase(requests_total[1h])";
    let around = |e: &Engine| match e.instant(q, reset + 30 * 60 * 1000 - 160_000).unwrap() {
        Value::Vector(v) => v[0].f,
        other => panic!("{other:?}"),
    };
    let (a, b) = (around(&e_raw), around(&e_rolled));
    assert!(
        (a - b).abs() / a < 0.01,
        "increase over a reset: raw {a}, rolled {b}"
    );

    // Figures for the Status page and /metrics.
    let stats = rolled.stats();
    assert_eq!(stats.rollup_series, 2);
    assert_eq!(stats.rollup_points, 2 * 3 * 288);
    assert!(stats.rollup_bytes > 0);
    let registry = prometheus::Registry::new();
    registry
        .register(Box::new(StorageCollector::new(rolled.clone()).unwrap()))
        .unwrap();
    let families = registry.gather();
    let gauge_value = |name: &str| {
        families
            .iter()
            .find(|f| f.name() == name)
            .map(|f| f.get_metric()[0].get_gauge().value())
    };
    assert_eq!(gauge_value("infermon_storage_rollup_points"), Some(1728.0));
    assert_eq!(gauge_value("infermon_storage_rollup_series"), Some(2.0));
    println!(
        "rollup bytes per 5-minute point: {:.2}",
        stats.rollup_bytes as f64 / stats.rollup_points as f64
    );

    // Restart: the rollups are read back from the file.
    drop((e_rolled, rolled, registry, families));
    let rolled = open(rolled_dir.path(), 7, 7);
    assert_eq!(rolled.stats().rollup_points, 2 * 3 * 288);
    assert_eq!(rolled.stats().rollup_series, 2);
    let after = rolled.select_rollups(&all, D0, D0 + 3 * DAY - 1).unwrap();
    assert_eq!(after, points);
    let e_rolled = Engine::new(Arc::new(rolled.clone()), EngineOptions::default());
    let q = "rate(requests_total[1h])";
    let worst = max_rel_diff(
        q,
        &matrix(&e_raw, q, start, end, step),
        &matrix(&e_rolled, q, start, end, step),
    );
    assert!(worst <= 0.01);

    // Rollup retention (30d here): 30 days after day 2 ended, its rollups
    // go, while days 3-9 are rolled up as their raw samples expire.
    let report = rolled.maintain(D0 + 33 * DAY + 1).unwrap();
    assert_eq!(report.expired_rollups, 2 * 3, "{report:?}");
    assert_eq!(report.days_rolled_up, 2 * 7, "{report:?}");
    assert!(rolled.select(&all, 0, i64::MAX).unwrap().is_empty());
    assert!(
        rolled
            .select_rollups(&all, D0, D0 + 3 * DAY - 1)
            .unwrap()
            .is_empty()
    );
    assert_eq!(rolled.stats().rollup_points, 2 * 7 * 288);
    // Once every rollup expired, the series are forgotten.
    let report = rolled.maintain(D0 + 45 * DAY).unwrap();
    assert_eq!(report.expired_rollups, 2 * 7, "{report:?}");
    assert_eq!(report.series_removed, 2, "{report:?}");
    assert_eq!(rolled.stats().series, 0);
    assert_eq!(rolled.stats().rollup_points, 0);
    assert_eq!(rolled.stats().rollup_bytes, 0);
    assert_eq!(rolled.stats().rollup_series, 0);
}

/// With raw retention shorter than a day, a day's chunks expire one by one
/// before the day ends; each is summarised first, and the day's rollup row
/// grows with them without losing a sample.
#[test]
fn a_day_expiring_chunk_by_chunk_is_summarised_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStorage::open(
        dir.path(),
        StorageOptions {
            min_free_disk: 0,
            retention_ms: 6 * 3600 * 1000,
            ..StorageOptions::default()
        },
    )
    .unwrap();
    let n = DAY / STEP;
    for chunk in (0..n).collect::<Vec<_>>().chunks(240) {
        let batch: Vec<AppendSample> = chunk
            .iter()
            .map(|&i| AppendSample {
                labels: counter(),
                sample: Sample {
                    timestamp_ms: D0 + i * STEP,
                    value: (i * 3) as f64,
                },
            })
            .collect();
        store.append(&batch).unwrap();
    }
    let all = [Matcher::new("job", MatchOp::Equal, "app").unwrap()];
    let mut rolled_passes = 0;
    for hour in 7..=31 {
        let report = store.maintain(D0 + hour * 3_600_000).unwrap();
        rolled_passes += usize::from(report.days_rolled_up > 0);
    }
    assert!(rolled_passes > 1, "the day was summarised as it expired");
    assert!(store.select(&all, 0, i64::MAX).unwrap().is_empty());
    let rolled = store.select_rollups(&all, 0, i64::MAX).unwrap();
    let points = &rolled[0].points;
    assert_eq!(points.len(), 288);
    assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), n as u64);
    let increase: f64 = points
        .windows(2)
        .map(|w| w[1].first - w[0].last + w[1].inc)
        .sum();
    assert_eq!(increase, ((n - 1) * 3 - (points[0].last as i64)) as f64);
}

/// Range queries with a step of 5 minutes or more read ended days from
/// their rollups (the default `query.rollup_min_step`) and stay close to
/// the same queries over raw samples; a day whose raw samples changed after
/// it was summarised (backfill) is read raw until it is summarised again.
#[test]
fn coarse_range_queries_read_ended_days_from_rollups() {
    let dir = tempfile::tempdir().unwrap();
    // Raw samples kept throughout; ended days rolled up after 1h (default).
    let store = SqliteStorage::open(
        dir.path(),
        StorageOptions {
            min_free_disk: 0,
            retention_ms: 1000 * DAY,
            ..StorageOptions::default()
        },
    )
    .unwrap();
    for batch in generate() {
        store.append(&batch).unwrap();
    }
    let now = D0 + DAYS * DAY;
    let report = store.maintain(now).unwrap();
    // Day 9 ended just now: its blocks that ended an hour ago (up to 22:00)
    // are summarised, its last block stays raw.
    assert_eq!(report.days_rolled_up, 2 * 10, "{report:?}");
    let summarised = 9 * 288 + 22 * 12;

    // The store hands out days 0-8 and day 9 to 22:00 as rollup points, the
    // rest raw.
    let c = [Matcher::new("__name__", MatchOp::Equal, "requests_total").unwrap()];
    let got = store.select_summarized(&c, D0, now, &Unlimited).unwrap();
    assert_eq!(got.len(), 1);
    let (series, points) = &got[0];
    assert_eq!(points.len(), summarised);
    assert_eq!(
        series.samples.len(),
        summarised + (2 * 3_600_000 / STEP) as usize
    );
    assert!(
        series.samples[summarised..]
            .iter()
            .all(|s| s.timestamp_ms >= now - 2 * 3_600_000)
    );
    // Where raw samples cover the range, reads that keep raw samples (steps
    // below 5 minutes) get no rollup rows to decode and throw away.
    assert!(store.select_rollups(&c, D0, now).unwrap().is_empty());
    assert!(
        store
            .select_rollups(&c, D0 + 3 * DAY, now)
            .unwrap()
            .is_empty()
    );

    let (raw, coarse) = raw_and_coarse(&store);
    // A week at ~250 points (step 2419s, as a dashboard panel asks) and
    // 30-minute steps off the 5-minute grid; bounds in FORMAT.md.
    for (start, step) in [
        (now - 7 * DAY, 2_419_000),
        (D0 + 3_600_000 + 137_000, 1_800_000),
    ] {
        for (q, bound) in [
            ("rate(requests_total[5m])", 0.05),
            ("rate(requests_total[10m])", 0.05),
            ("rate(requests_total[1h])", 0.02),
            ("increase(requests_total[1h])", 0.02),
            ("avg_over_time(queue_depth[5m])", 0.05),
            ("avg_over_time(queue_depth[30m])", 0.05),
            ("min_over_time(queue_depth[30m])", 0.05),
            ("max_over_time(queue_depth[30m])", 0.05),
            ("sum_over_time(queue_depth[30m])", 1.0 / 6.0),
            ("count_over_time(queue_depth[30m])", 1.0 / 6.0),
            ("queue_depth", 0.05),
        ] {
            let a = matrix(&raw, q, start, now, step);
            let b = matrix(&coarse, q, start, now, step);
            let worst = max_rel_diff(q, &a, &b);
            println!(
                "{q} step {step}: max relative difference {:.4}%",
                worst * 100.0
            );
            assert!(worst <= bound, "{q} step {step}: {:.3}%", worst * 100.0);
        }
    }
    // Below 5 minutes of step, results are the raw samples' exactly.
    let q = "rate(requests_total[5m])";
    let fine = (now - 6 * 3_600_000, 60_000);
    assert_eq!(
        matrix(&raw, q, fine.0, now, fine.1),
        matrix(&coarse, q, fine.0, now, fine.1)
    );

    // A backfilled sample in day 2 makes the day's rollup stale: the day
    // and the ones after it are read raw, so the sample shows at once.
    let spike = D0 + 2 * DAY + 12 * 3_600_000 + 7_500;
    backfill_spike(&store, spike);
    let q = "max_over_time(queue_depth[30m])";
    let peak = |e: &Engine| {
        matrix(e, q, D0 + DAY, now, 1_800_000)[0]
            .1
            .iter()
            .map(|p| p.1)
            .fold(0.0, f64::max)
    };
    assert_eq!(peak(&raw), 1e6);
    assert_eq!(peak(&coarse), 1e6, "a stale rollup day was used");
    let g = [Matcher::new("__name__", MatchOp::Equal, "queue_depth").unwrap()];
    let before = store.select_summarized(&g, D0, now, &Unlimited).unwrap();
    assert_eq!(before[0].1.len(), 2 * 288, "days 0-1 only");
    // The next pass summarises day 2 again, and the rollups take over.
    store.maintain(now + 60_000).unwrap();
    let after = store.select_summarized(&g, D0, now, &Unlimited).unwrap();
    assert_eq!(after[0].1.len(), summarised);
    assert_eq!(peak(&coarse), 1e6);
}

/// Samples of [`generate`] before `to`, in append batches.
fn generate_until(to: i64) -> Vec<Vec<AppendSample>> {
    let all: Vec<AppendSample> = generate()
        .into_iter()
        .flatten()
        .filter(|s| s.sample.timestamp_ms < to)
        .collect();
    all.chunks(960).map(<[AppendSample]>::to_vec).collect()
}

struct Unlimited;
impl infermon::storage::ReadLimit for Unlimited {
    fn take(&self, _: usize, _: usize) -> bool {
        true
    }
}

/// Today is summarised block by block as each block ended `rollup_after`
/// ago, so coarse queries over today read raw samples only for the newest
/// hours; a row extended block by block equals one made in a single pass,
/// a late sample sends the day back to raw samples until the next pass,
/// and a day whose series went quiet before midnight is followed by the
/// next day's row.
#[test]
fn todays_blocks_are_summarised_as_they_end() {
    const HOUR: i64 = 3_600_000;
    let options = StorageOptions {
        min_free_disk: 0,
        retention_ms: 1000 * DAY,
        ..StorageOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStorage::open(dir.path(), options.clone()).unwrap();
    for batch in generate_until(D0 + 10 * HOUR) {
        store.append(&batch).unwrap();
    }
    // At 10:00 the blocks up to 08:00 ended an hour ago (rollup_after 1h).
    let report = store.maintain(D0 + 10 * HOUR).unwrap();
    assert_eq!(report.days_rolled_up, 2, "{report:?}");
    let c = [Matcher::new("__name__", MatchOp::Equal, "requests_total").unwrap()];
    let got = store
        .select_summarized(&c, D0, D0 + 10 * HOUR, &Unlimited)
        .unwrap();
    let (series, points) = &got[0];
    assert_eq!(points.len(), 8 * 12);
    assert_eq!(
        series.samples.len(),
        8 * 12 + (2 * HOUR / STEP) as usize,
        "raw samples from 08:00 on"
    );
    assert_eq!(series.samples[8 * 12].timestamp_ms, D0 + 8 * HOUR);

    // Coarse queries over today stay close to the raw samples'.
    let (raw, coarse) = raw_and_coarse(&store);
    for (q, bound) in [
        ("rate(requests_total[5m])", 0.05),
        ("rate(requests_total[1h])", 0.02),
        ("avg_over_time(queue_depth[30m])", 0.05),
        ("queue_depth", 0.05),
    ] {
        let (start, end) = (D0 + HOUR, D0 + 10 * HOUR);
        let worst = max_rel_diff(
            q,
            &matrix(&raw, q, start, end, 345_000),
            &matrix(&coarse, q, start, end, 345_000),
        );
        assert!(worst <= bound, "{q}: {:.3}%", worst * 100.0);
    }

    // Three hours later the rows grow by the blocks that ended (to 12:00);
    // they equal
    // rows made in one pass over the same data.
    for batch in generate_until(D0 + 13 * HOUR) {
        let newer: Vec<AppendSample> = batch
            .into_iter()
            .filter(|s| s.sample.timestamp_ms >= D0 + 10 * HOUR)
            .collect();
        if !newer.is_empty() {
            store.append(&newer).unwrap();
        }
    }
    let report = store.maintain(D0 + 13 * HOUR).unwrap();
    assert_eq!(report.days_rolled_up, 2, "{report:?}");
    let once_dir = tempfile::tempdir().unwrap();
    let once = SqliteStorage::open(once_dir.path(), options.clone()).unwrap();
    for batch in generate_until(D0 + 13 * HOUR) {
        once.append(&batch).unwrap();
    }
    once.maintain(D0 + 13 * HOUR).unwrap();
    let all = [Matcher::new("job", MatchOp::Equal, "app").unwrap()];
    let grown = store
        .select_summarized(&all, D0, D0 + 13 * HOUR, &Unlimited)
        .unwrap();
    assert_eq!(grown[0].1.len(), 12 * 12);
    assert_eq!(
        grown,
        once.select_summarized(&all, D0, D0 + 13 * HOUR, &Unlimited)
            .unwrap()
    );

    // A late sample at 03:00:07.5 makes the row incomplete: read raw at once.
    let late = D0 + 3 * HOUR + 7_500;
    backfill_spike(&store, late);
    let g = [Matcher::new("__name__", MatchOp::Equal, "queue_depth").unwrap()];
    let read = store
        .select_summarized(&g, D0, D0 + 13 * HOUR, &Unlimited)
        .unwrap();
    assert!(read[0].1.is_empty(), "an incomplete row was used");
    assert!(read[0].0.samples.iter().any(|s| s.timestamp_ms == late));
    // The next pass rebuilds the row with it.
    store.maintain(D0 + 13 * HOUR + 60_000).unwrap();
    let read = store
        .select_summarized(&g, D0, D0 + 13 * HOUR, &Unlimited)
        .unwrap();
    let points = &read[0].1;
    assert_eq!(points.len(), 12 * 12);
    assert_eq!(
        points.iter().map(|p| p.count).sum::<u64>(),
        (12 * HOUR / STEP) as u64 + 1
    );
    assert!(points.iter().any(|p| p.max == 1e6));

    // A series quiet from 20:00 to midnight: its day's row covers it to
    // 20:00, and the next day's row follows it (no raw sample between).
    let quiet = Labels::new([("__name__", "quiet"), ("job", "app")]);
    let samples: Vec<AppendSample> = (0..(DAY + 10 * HOUR) / STEP)
        .map(|i| D0 + i * STEP)
        .filter(|&t| !(D0 + 20 * HOUR..D0 + DAY).contains(&t))
        .map(|t| AppendSample {
            labels: quiet.clone(),
            sample: Sample {
                timestamp_ms: t,
                value: (t % 7_000) as f64,
            },
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStorage::open(dir.path(), options).unwrap();
    for batch in samples.chunks(960) {
        store.append(batch).unwrap();
    }
    store.maintain(D0 + DAY + 10 * HOUR).unwrap();
    let q = [Matcher::new("__name__", MatchOp::Equal, "quiet").unwrap()];
    let read = store
        .select_summarized(&q, D0, D0 + DAY + 10 * HOUR, &Unlimited)
        .unwrap();
    assert_eq!(read[0].1.len(), 20 * 12 + 8 * 12);
    assert_eq!(
        read[0].0.samples.len(),
        20 * 12 + 8 * 12 + (2 * HOUR / STEP) as usize
    );
}
