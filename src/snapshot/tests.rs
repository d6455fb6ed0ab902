use std::io::Read;

use super::*;
use crate::config::SnapshotsConfig;
use crate::model::{Labels, Sample};
use crate::storage::{AppendSample, Appender, MemoryStorage};

fn config(dir: &Path, tz: &str, keep: usize) -> SnapshotsConfig {
    SnapshotsConfig {
        dir: Some(dir.display().to_string()),
        timezone: Some(tz.to_string()),
        keep,
        ..SnapshotsConfig::default()
    }
}

/// Samples every 15 minutes from `from` to `to` (inclusive) for two series.
fn fill(store: &MemoryStorage, from: i64, to: i64) -> usize {
    let mut batch = Vec::new();
    let mut t = from;
    let mut n = 0;
    while t <= to {
        for (job, v) in [("a", 1.0), ("b", 2.0)] {
            batch.push(AppendSample {
                labels: Labels::new([("__name__", "up"), ("job", job), ("instance", "x:1")]),
                sample: Sample {
                    timestamp_ms: t,
                    value: v + (t % 7) as f64,
                },
            });
            n += 1;
        }
        t += 15 * 60_000;
    }
    store.append(&batch).unwrap();
    n
}

fn gunzip(path: &Path) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

#[test]
fn a_dst_day_is_exported_whole_and_only_that_day() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let day = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let (from, to) = day_range(day, tz);
    assert_eq!(to - from, 25 * 3_600_000);
    // Data from an hour before to an hour after the day.
    fill(&store, from - 3_600_000, to + 3_600_000);
    let snap =
        Snapshotter::new(&config(tmp.path(), "Europe/Berlin", 30), tmp.path(), store).unwrap();
    let m = snap.take(day).unwrap();
    // 25 hours of 15-minute samples, end exclusive: 100 per series.
    assert_eq!((m.series, m.samples), (2, 200));
    assert_eq!(m.timezone, "Europe/Berlin");
    let folder = tmp.path().join("2026-10-25");
    assert!(m.verify(&folder).is_empty());
    let om = gunzip(&folder.join("metrics.om.gz"));
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(om.lines().filter(|l| l.starts_with("up{")).count(), 200);
    let csv_text = gunzip(&folder.join("metrics.csv.gz"));
    let mut r = ::csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<_> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|row| {
        let t: i64 = row[0].parse().unwrap();
        t >= from && t < to
    }));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["jobs"]["a"]["targets"], 1);
    assert_eq!(snap.list().len(), 1);
}

#[test]
fn a_tampered_file_fails_verification() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let day = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let (from, to) = day_range(day, Tz::UTC);
    fill(&store, from, to);
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 30), tmp.path(), store).unwrap();
    let m = snap.take(day).unwrap();
    let folder = tmp.path().join("2026-06-01");
    std::fs::write(folder.join("summary.json"), b"{}").unwrap();
    assert_eq!(m.verify(&folder), vec!["summary.json".to_string()]);
}

#[test]
fn a_crashed_write_never_looks_complete_and_is_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 30), tmp.path(), store).unwrap();
    // What a crash mid-write leaves: a hidden temp folder with some files,
    // and a dated folder without a manifest.
    let half = tmp.path().join(".2026-06-02.tmp-999");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("metrics.om.gz"), b"partial").unwrap();
    std::fs::create_dir_all(tmp.path().join("2026-06-03")).unwrap();
    assert!(snap.list().is_empty());
    assert!(snap.file_path("2026-06-02", "metrics.om.gz").is_none());
    snap.prune().unwrap();
    assert!(!half.exists());
}

#[test]
fn pruning_keeps_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 2), tmp.path(), store).unwrap();
    for d in 1..=4 {
        snap.take(NaiveDate::from_ymd_opt(2026, 6, d).unwrap())
            .unwrap();
    }
    assert_eq!(snap.prune().unwrap(), 2);
    let days: Vec<String> = snap.list().into_iter().map(|s| s.day).collect();
    assert_eq!(days, vec!["2026-06-04", "2026-06-03"]);
}

#[test]
fn paths_outside_the_folder_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 30), tmp.path(), store).unwrap();
    snap.take(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap())
        .unwrap();
    assert!(snap.file_path("2026-06-01", "manifest.json").is_some());
    for (day, file) in [
        ("2026-06-01", "../../etc/passwd"),
        ("..", "manifest.json"),
        ("2026-06-01/..", "manifest.json"),
        ("2026-06-01", "other.txt"),
        ("%2e%2e", "manifest.json"),
    ] {
        assert!(snap.file_path(day, file).is_none(), "{day}/{file}");
    }
}

#[test]
fn a_missed_run_is_taken_at_the_next_start_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let now = crate::util::now_ms();
    let day = yesterday(now, Tz::UTC);
    let (from, to) = day_range(day, Tz::UTC);
    fill(&store, from, to);
    let empty = Snapshotter::new(
        &config(tmp.path(), "UTC", 30),
        tmp.path(),
        Arc::new(MemoryStorage::new()),
    )
    .unwrap();
    assert!(
        empty.catch_up(now).unwrap().is_none(),
        "nothing stored yesterday: no empty snapshot"
    );
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 30), tmp.path(), store).unwrap();
    let taken = snap.catch_up(now).unwrap().expect("yesterday was missing");
    assert_eq!(taken.day, folder_name(day));
    assert!(snap.catch_up(now).unwrap().is_none(), "already there");
}

#[test]
fn bad_timezone_is_an_error() {
    let store = Arc::new(MemoryStorage::new());
    let err = Snapshotter::new(
        &config(Path::new("/tmp"), "Mars/Olympus", 30),
        Path::new("/tmp"),
        store,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("Mars/Olympus"));
}

#[test]
fn backups_are_written_listed_pruned_and_safe_to_download() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 30), tmp.path(), store.clone()).unwrap();
    assert!(
        snap.backup_now().is_err(),
        "no backup function: a clear error"
    );
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 30), tmp.path(), store)
        .unwrap()
        .with_backup(Arc::new(|dest: &Path| {
            std::fs::write(dest, b"SQLite format 3\0")
                .map(|_| 16)
                .map_err(|e| e.to_string())
        }));
    for _ in 0..(BACKUPS_KEPT + 2) {
        snap.backup_now().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let list = snap.backups();
    assert_eq!(list.len(), BACKUPS_KEPT);
    assert!(
        list.windows(2).all(|w| w[0].file > w[1].file),
        "newest first"
    );
    assert!(snap.backup_path(&list[0].file).is_some());
    for bad in [
        "../infermon.db",
        "infermon-../../x.db",
        "infermon-.db",
        "other.db",
    ] {
        assert!(snap.backup_path(bad).is_none(), "{bad}");
    }
}

#[test]
fn only_days_that_ended_and_that_the_store_covers_are_taken_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let covered = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let (from, to) = day_range(covered, Tz::UTC);
    fill(&store, from, to - 1);
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 30), tmp.path(), store).unwrap();
    let now = to + 3_600_000;
    for (day, why) in [
        (
            NaiveDate::from_ymd_opt(2999, 1, 1).unwrap(),
            "has not ended",
        ),
        (covered.succ_opt().unwrap(), "has not ended"),
        (
            NaiveDate::from_ymd_opt(2026, 5, 31).unwrap(),
            "holds no samples",
        ),
    ] {
        let e = snap.take_requested(day, now).unwrap_err();
        assert!(
            matches!(&e, SnapshotError::Day(m) if m.contains(why)),
            "{day}: {e}"
        );
    }
    assert!(snap.list().is_empty());
    let m = snap.take_requested(covered, now).unwrap();
    assert_eq!(m.series, 2);
}

#[test]
fn a_future_dated_snapshot_never_pushes_real_ones_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 2), tmp.path(), store).unwrap();
    for d in 1..=3 {
        snap.take(NaiveDate::from_ymd_opt(2026, 6, d).unwrap())
            .unwrap();
    }
    // What the unchecked route could write: a snapshot dated 2999.
    snap.take(NaiveDate::from_ymd_opt(2999, 1, 1).unwrap())
        .unwrap();
    let now = day_range(NaiveDate::from_ymd_opt(2026, 6, 10).unwrap(), Tz::UTC).0;
    assert_eq!(snap.prune_at(now).unwrap(), 1);
    let days: Vec<String> = snap.list().into_iter().map(|s| s.day).collect();
    assert_eq!(days, ["2999-01-01", "2026-06-03", "2026-06-02"]);
}

#[test]
fn a_crash_between_the_two_renames_loses_neither_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let day = NaiveDate::from_ymd_opt(2026, 6, 2).unwrap();
    let (from, to) = day_range(day, Tz::UTC);
    fill(&store, from, to - 1);
    let snap = Snapshotter::new(&config(tmp.path(), "UTC", 30), tmp.path(), store).unwrap();
    snap.take(day).unwrap();
    // The first rename happened (the old copy is aside), the second did
    // not; the new copy was still being written (no manifest yet).
    let dated = tmp.path().join("2026-06-02");
    let old = tmp.path().join(".2026-06-02.old-999");
    std::fs::rename(&dated, &old).unwrap();
    let half = tmp.path().join(".2026-06-02.tmp-999");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("metrics.om.gz"), b"partial").unwrap();
    snap.prune().unwrap();
    let list = snap.list();
    assert_eq!(list.len(), 1, "the old copy is the snapshot again");
    assert!(list[0].manifest.verify(&dated).is_empty());
    assert!(!old.exists() && !half.exists());
    // Crashed after the new copy was complete: it wins, the old one goes.
    std::fs::rename(&dated, &half).unwrap();
    snap.take(day).unwrap();
    std::fs::rename(&dated, &old).unwrap();
    snap.prune().unwrap();
    assert_eq!(snap.list().len(), 1);
    assert!(!old.exists() && !half.exists());
}
