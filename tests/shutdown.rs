//! The staged stop of the real binary: a hung stage is named and abandoned
//! within the deadline, and a backup racing SIGTERM never leaves a partial
//! file or a damaged store.

use crate::support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A webhook that reads every request and never answers: an alert send to
/// it stays in flight until the channel's 10 s timeout.
fn start_silent_webhook() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in listener.incoming().flatten().take(16) {
            let mut buf = [0u8; 4096];
            if conn.read(&mut buf).is_ok_and(|n| n > 0) {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            held.push(conn);
        }
    });
    (url, requests)
}

#[test]
fn a_hung_stage_is_named_and_the_process_still_exits_in_time() {
    let (url, requests) = start_silent_webhook();
    let mut server = support::TestServer::start(&format!(
        r#"server: {{listen: '127.0.0.1:0', shutdown_timeout: 1s}}
models: []
storage: {{path: '{{dir}}/data'}}
alerting:
  route:
    receiver: hook
    group_wait: 50ms
  receivers:
    - name: hook
      webhook_configs:
        - url: {url}
"#
    ));
    let resp = support::client()
        .post(server.url("/api/v2/alerts"))
        .json(&serde_json::json!([{"labels": {"alertname": "StuckWebhook"}}]))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    support::wait_for("the webhook request", Duration::from_secs(20), || {
        if requests.load(Ordering::SeqCst) > 0 {
            Ok(())
        } else {
            Err(server.log())
        }
    });
    let signalled = Instant::now();
    server.terminate();
    // The deadline is server.shutdown_timeout (1 s) + 5 s for the stages
    // after HTTP; the send would otherwise hold the alerting stage for 10 s.
    let status = server
        .wait_exit(Duration::from_secs(15))
        .expect("infermon exits after SIGTERM");
    let took = signalled.elapsed();
    let log = server.log();
    assert!(status.success(), "exit status {status:?}\n{log}");
    assert!(
        took < Duration::from_millis(8_500),
        "exit took {took:?}, beyond the shutdown deadline\n{log}"
    );
    assert!(
        log.contains("shutdown stage 'alerting' did not finish"),
        "the hung stage is named in the log\n{log}"
    );
    // The stages after it still ran: the store was closed cleanly.
    assert!(log.contains("storage closed"), "{log}");
}

/// `PRAGMA integrity_check` of one SQLite file.
fn integrity(path: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_backup_racing_sigterm_completes_or_leaves_nothing() {
    let data = tempfile::tempdir().unwrap();
    let config = format!(
        "server: {{listen: '127.0.0.1:0', shutdown_timeout: 1s}}\nmodels: []\nstorage: {{path: '{}'}}\n",
        data.path().display()
    );
    let mut server = support::TestServer::start(&config);
    // Some data, so a backup takes a moment.
    let mut body = String::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    body.push_str("# TYPE shutdown_test_value gauge\n");
    for series in 0..400 {
        for i in 0..30u64 {
            body.push_str(&format!(
                "shutdown_test_value{{series=\"s{series}\"}} {} {}\n",
                series as u64 * i,
                now - 3600 + i * 60
            ));
        }
    }
    body.push_str("# EOF\n");
    let resp = support::client()
        .post(server.url("/api/v1/admin/import"))
        .body(body)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().unwrap());

    // Several backups in flight while SIGTERM arrives.
    let backup_url = server.url("/api/v1/admin/backup");
    let racers: Vec<_> = (0..3)
        .map(|_| {
            let url = backup_url.clone();
            std::thread::spawn(move || {
                let _ = support::client().post(url).send();
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(30));
    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(15))
        .expect("infermon exits after SIGTERM");
    for r in racers {
        let _ = r.join();
    }
    let log = server.log();
    assert!(status.success(), "exit status {status:?}\n{log}");
    assert!(log.contains("storage closed"), "{log}");

    // Every backup file is whole; nothing partial is left.
    let backups = data.path().join("snapshots/backups");
    for entry in std::fs::read_dir(&backups).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !name.ends_with(".partial"),
            "partial backup left: {name}\n{log}"
        );
        if name.ends_with(".db") {
            assert_eq!(integrity(&path), "ok", "{name}");
        }
    }
    // The store itself opens clean and starts again.
    assert_eq!(integrity(&data.path().join("infermon.db")), "ok");
    drop(server);
    let again = support::TestServer::start(&config);
    let resp = support::client()
        .get(again.url("/api/v1/query?query=count(shutdown_test_value)"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", again.log());
}

/// The store's side of the race, without HTTP: backups running while the
/// store is told to finish them either complete whole or leave nothing, and
/// a backup asked for after that is refused without leaving a file.
#[test]
fn finishing_backups_waits_for_or_cancels_them_and_refuses_new_ones() {
    use infermon::model::{Labels, Sample};
    use infermon::storage::{AppendSample, Appender, SqliteStorage, StorageOptions};

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStorage::open(
        dir.path(),
        StorageOptions {
            min_free_disk: 0,
            ..StorageOptions::default()
        },
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let labels: Vec<Labels> = (0..500)
        .map(|i| Labels::new([("__name__", "backup_race"), ("i", &i.to_string())]))
        .collect();
    for step in 0..40i64 {
        let batch: Vec<AppendSample> = labels
            .iter()
            .map(|l| AppendSample {
                labels: l.clone(),
                sample: Sample {
                    timestamp_ms: now - 3_600_000 + step * 15_000,
                    value: step as f64,
                },
            })
            .collect();
        store.append(&batch).unwrap();
    }
    let out = dir.path().join("backups");
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let (store, dest) = (store.clone(), out.join(format!("b{i}.db")));
            std::thread::spawn(move || store.backup_to(&dest).is_ok())
        })
        .collect();
    store.finish_backups(Duration::ZERO);
    let finished: Vec<bool> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    for (i, ok) in finished.iter().enumerate() {
        let dest = out.join(format!("b{i}.db"));
        assert_eq!(
            dest.exists(),
            *ok,
            "backup {i}: a file exactly when it succeeded"
        );
        if *ok {
            assert_eq!(integrity(&dest), "ok");
        }
        assert!(
            !dest.with_extension("partial").exists(),
            "backup {i} left a partial file"
        );
    }
    let late = out.join("late.db");
    let err = store.backup_to(&late).unwrap_err().to_string();
    assert!(err.contains("closing"), "{err}");
    assert!(!late.exists() && !late.with_extension("partial").exists());
    store.close().unwrap();
}
