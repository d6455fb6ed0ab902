//! `kill -9` while maintenance compacts finished blocks (and merges finished
//! days) beside a stream of appends: after every restart each acknowledged
//! sample is there exactly once, and the file is intact.
//!
//! The child appends past data (10-minute steps from 2021-01-01), so a 2 h
//! block ends every 12 batches and a day every 144, and runs maintenance at
//! the data's time after each block ends: compaction is reached in
//! milliseconds, not hours.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use infermon::model::{Labels, MatchOp, Matcher, Sample};
use infermon::storage::{
    AppendSample, Appender, BLOCK_GRACE_MS, Querier, SqliteStorage, StorageOptions,
};

const BASE_MS: i64 = 1_609_459_200_000; // 2021-01-01T00:00:00Z
const STEP_MS: i64 = 600_000;
const SERIES: usize = 100;
const BLOCK_MS: i64 = 2 * 3600 * 1000;

fn opts() -> StorageOptions {
    StorageOptions {
        min_free_disk: 0,
        ..StorageOptions::default()
    }
}

fn labels(i: usize) -> Labels {
    Labels::new([
        ("__name__", "compaction_crash_seconds"),
        ("job", "crash"),
        ("instance", &format!("host{i}")),
    ])
}

/// The value of series `i` in batch `b`: not an integer, so the float
/// encoding is exercised, and exact to compare.
fn value(b: i64, i: usize) -> f64 {
    b as f64 * 0.37 + i as f64 / 8.0
}

/// The child side, not a test itself: the parent runs this binary with
/// `--ignored --exact compaction_crash_child`. It appends a batch per step
/// and prints `ack <b>` once the batch is acknowledged; another thread runs
/// a maintenance pass at the data's time whenever a block has ended, between
/// `compact start` and `compact done`.
#[test]
#[ignore = "helper process of kill_9_during_compaction_loses_no_acknowledged_sample"]
fn compaction_crash_child() {
    let Ok(dir) = std::env::var("INFERMON_COMPACT_CHILD_DIR") else {
        return; // run by hand with --ignored: nothing to do without the parent
    };
    let start: i64 = std::env::var("INFERMON_COMPACT_START")
        .unwrap()
        .parse()
        .unwrap();
    let store = SqliteStorage::open(&dir, opts()).unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let say = {
        let out = out.clone();
        move |line: String| {
            let mut o = out.lock().unwrap();
            writeln!(o, "{line}").unwrap();
            o.flush().unwrap();
        }
    };
    let (tx, rx) = mpsc::channel::<i64>();
    let maint = store.clone();
    let say2 = say.clone();
    std::thread::spawn(move || {
        let mut done_block = i64::MIN;
        while let Ok(mut t) = rx.recv() {
            while let Ok(newer) = rx.try_recv() {
                t = newer;
            }
            // The newest block that has ended a grace ago by the data's clock.
            let block = (t - BLOCK_GRACE_MS).div_euclid(BLOCK_MS) - 1;
            if block > done_block {
                // The server checkpoints every 5 minutes, so a finished
                // block's samples are no longer in the store's own WAL:
                // what compaction loses, a restart cannot replay.
                maint.checkpoint().unwrap();
                say2(format!("compact start {block}"));
                let r = maint.maintain(t).unwrap();
                say2(format!("compact done {}", r.chunks_compacted));
                done_block = block;
            }
        }
    });
    let labels: Vec<Labels> = (0..SERIES).map(labels).collect();
    for b in start.. {
        let t = BASE_MS + b * STEP_MS;
        let batch: Vec<AppendSample> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| AppendSample {
                labels: l.clone(),
                sample: Sample {
                    timestamp_ms: t,
                    value: value(b, i),
                },
            })
            .collect();
        store.append(&batch).unwrap();
        say(format!("ack {b}"));
        tx.send(t).unwrap();
    }
}

#[test]
fn kill_9_during_compaction_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut next = 1i64;
    let mut killed_mid_compaction = 0;
    for round in 0..20u64 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "compaction_crash::compaction_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("INFERMON_COMPACT_CHILD_DIR", dir.path())
            .env("INFERMON_COMPACT_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill in the second or third maintenance pass this child starts
        // (the first runs at once, on what the last round left), 0 to 100 ms
        // in (varied per round: a pass takes tens of milliseconds, so the
        // kill lands before, between and inside the groups' rewrites and
        // sometimes after the pass); the deadline bounds a child
        // that never gets there. The harness prints before the first line,
        // so lines are matched anywhere.
        let kill_at = 2 + round % 2;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut starts, mut acked, mut finished) = (0, next - 1, false);
        let mut note = |line: &str, starts: &mut u64| {
            if let Some((_, n)) = line.split_once("ack ") {
                acked = acked.max(n.trim().parse().unwrap());
            } else if line.contains("compact done") {
                finished = true;
            } else if line.contains("compact start") {
                finished = false;
                *starts += 1;
            }
        };
        while starts < kill_at && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => note(&line, &mut starts),
                _ => break,
            }
        }
        let spin = Instant::now() + Duration::from_millis(round * 29 % 100);
        while Instant::now() < spin {
            std::hint::spin_loop();
        }
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        // What the child printed before it died: the newest acknowledged
        // batch, and whether the pass it was killed in had finished.
        let killed_in = starts;
        for line in lines.map_while(Result::ok) {
            note(&line, &mut starts);
        }
        if killed_in == kill_at && starts == kill_at && !finished {
            killed_mid_compaction += 1;
        }
        assert!(acked >= next, "round {round}: no batch acknowledged");

        let store = SqliteStorage::open(dir.path(), opts()).unwrap();
        let got = store
            .select(
                &[Matcher::new("job", MatchOp::Equal, "crash").unwrap()],
                0,
                i64::MAX,
            )
            .unwrap();
        assert_eq!(got.len(), SERIES, "round {round}");
        let last = (got[0].samples.last().unwrap().timestamp_ms - BASE_MS) / STEP_MS;
        assert!(
            last >= acked,
            "round {round}: acknowledged batch {acked} lost (store has up to {last})"
        );
        for s in &got {
            let i: usize = s.labels.get("instance").unwrap()[4..].parse().unwrap();
            let want: Vec<(i64, u64)> = (1..=last)
                .map(|b| (BASE_MS + b * STEP_MS, value(b, i).to_bits()))
                .collect();
            let have: Vec<(i64, u64)> = s
                .samples
                .iter()
                .map(|x| (x.timestamp_ms, x.value.to_bits()))
                .collect();
            assert!(have == want, "round {round}: series {i} differs");
        }
        // Exactly once in storage too, not only after the read path's
        // de-duplication: the stored counts add up and no two chunks of a
        // series overlap.
        assert_eq!(
            store.stats().samples,
            SERIES as u64 * last as u64,
            "round {round}"
        );
        let conn = rusqlite::Connection::open(store.db_path()).unwrap();
        let overlaps: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM (SELECT min_t, LAG(max_t) OVER (PARTITION BY series_id ORDER BY min_t) AS prev FROM chunks) WHERE min_t <= prev",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(overlaps, 0, "round {round}: overlapping chunks");
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "round {round}");
        next = last + 1;
    }
    // Compaction really ran and was interrupted.
    assert!(
        killed_mid_compaction > 0,
        "no round was killed during compaction"
    );
    let conn = rusqlite::Connection::open(dir.path().join(infermon::storage::DB_FILE)).unwrap();
    let (pco, gorilla): (i64, i64) = conn
        .query_row(
            "SELECT SUM(encoding != 0), SUM(encoding = 0) FROM chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(pco > 0, "no chunk was compacted ({gorilla} Gorilla chunks)");
    // The rounds reach past the first day's end plus its grace (batch 156):
    // the day (batches 1 to 143) was merged into one chunk per series.
    let days: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM chunks WHERE min_t = ?1 + ?2 AND max_t = ?1 + 86400000 - ?2",
            [BASE_MS, STEP_MS],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        days, SERIES as i64,
        "the first day is not one chunk per series"
    );
}
