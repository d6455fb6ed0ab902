//! A day's snapshot backfilled into a real Prometheus (Debian package) with
//! `promtool tsdb create-blocks-from openmetrics` answers the same sample
//! counts and values as infermon's store held.

use crate::support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use infermon::config::SnapshotsConfig;
use infermon::model::{Labels, MatchOp, Matcher, Sample};
use infermon::snapshot::{Snapshotter, day_range, yesterday};
use infermon::storage::{AppendSample, Appender, MemoryStorage, Querier};
use support::{client, free_port, wait_http_ok};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(port: u16, expr: &str, time_s: f64) -> Vec<(String, f64)> {
    let r: serde_json::Value = client()
        .post(format!("http://127.0.0.1:{port}/api/v1/query"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("query", expr)
                .append_pair("time", &format!("{time_s:.3}"))
                .finish(),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{r}");
    r["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"].to_string(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn snapshot_backfills_into_real_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStorage::new());
    let day = yesterday(infermon::util::now_ms(), Tz::UTC);
    let (from, to) = day_range(day, Tz::UTC);
    let mut batch = Vec::new();
    let mut t = from;
    let mut counter = 0.0;
    while t < to {
        counter += (t / 30_000 % 5) as f64;
        for (labels, v) in [
            (
                Labels::new([
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("code", "200"),
                ]),
                counter,
            ),
            (
                Labels::new([("__name__", "temperature_celsius"), ("sensor", "a")]),
                20.0 + (t / 60_000 % 13) as f64 * 0.5,
            ),
        ] {
            batch.push(AppendSample {
                labels,
                sample: Sample {
                    timestamp_ms: t,
                    value: v,
                },
            });
        }
        t += 30_000;
    }
    store.append(&batch).unwrap();
    let config = SnapshotsConfig {
        dir: Some(tmp.path().join("snaps").display().to_string()),
        timezone: Some("UTC".into()),
        ..Default::default()
    };
    let snap = Snapshotter::new(&config, tmp.path(), store.clone()).unwrap();
    let manifest = snap.take(day).unwrap();
    assert_eq!(manifest.samples, batch.len() as u64);

    let folder = tmp.path().join("snaps").join(&manifest.day);
    let mut om = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(folder.join("metrics.om.gz")).unwrap())
        .read_to_string(&mut om)
        .unwrap();
    let om_path = tmp.path().join("metrics.om");
    std::fs::write(&om_path, om).unwrap();
    let tsdb = tmp.path().join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om_path)
        .arg(&tsdb)
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    assert!(
        out.status.success(),
        "promtool failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let port = free_port();
    let prom_config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
    )
    .unwrap();
    let _prometheus = Peer(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=90d")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    assert!(
        wait_http_ok(
            &format!("http://127.0.0.1:{port}/-/ready"),
            Duration::from_secs(60)
        ),
        "prometheus did not become ready"
    );

    // The whole day: (from, to] shifted by 1 ms so the first sample is in.
    let at = (to - 1) as f64 / 1000.0;
    let all = |name: &str| [Matcher::new("__name__", MatchOp::Equal, name).unwrap()];
    for name in ["http_requests_total", "temperature_celsius"] {
        let ours = store.select(&all(name), from, to - 1).unwrap();
        let theirs = query(port, &format!("count_over_time({name}[1d])"), at);
        assert_eq!(theirs.len(), 1, "{name}: {theirs:?}");
        assert_eq!(
            theirs[0].1,
            ours[0].samples.len() as f64,
            "{name} sample count"
        );
        let sum: f64 = ours[0].samples.iter().map(|s| s.value).sum();
        let their_sum = query(port, &format!("sum_over_time({name}[1d])"), at)[0].1;
        assert!(
            (their_sum - sum).abs() <= sum.abs() * 1e-12,
            "{name}: sum {their_sum} vs {sum}"
        );
        // A handful of instants: the value at each is the sample at that time.
        for s in ours[0].samples.iter().step_by(577) {
            let v = query(port, name, s.timestamp_ms as f64 / 1000.0)[0].1;
            assert_eq!(v, s.value, "{name} at {}", s.timestamp_ms);
        }
    }
}

#[test]
fn backup_and_snapshot_over_http_with_no_path_traversal() {
    let server = support::TestServer::start(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\nsnapshots:\n  timezone: UTC\n",
    );
    // The self-scrape has written twice before the backup starts.
    server.wait_metric(
        "infermon_scrape_scrapes_total",
        &[("job", "infermon")],
        2.0,
        Duration::from_secs(60),
    );
    let c = client();
    // A whole-store backup taken while the self-scrape keeps writing.
    let r: serde_json::Value = c
        .post(server.url("/api/v1/admin/backup"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{r}");
    let file = r["data"]["file"].as_str().unwrap().to_string();
    let bytes = c
        .get(server.url(&format!("/backups/{file}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    // The Snapshots page lists it with a download link.
    let page = c
        .get(server.url("/snapshots"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(&format!("href=\"/backups/{file}\"")),
        "{page}"
    );
    let copy = server.dir.path().join("copy.db");
    std::fs::write(&copy, &bytes).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
    // Today has not ended: no snapshot of it. Yesterday, once the store
    // holds samples of it (imported), on demand; then downloads.
    let now = chrono::Utc::now();
    let today = now.format("%Y-%m-%d").to_string();
    let r = c
        .post(server.url(&format!("/api/v1/admin/snapshot?day={today}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let day = (now - chrono::Duration::days(1)).date_naive();
    let noon = day.and_hms_opt(12, 0, 0).unwrap().and_utc().timestamp();
    let r = c
        .post(server.url("/api/v1/admin/import"))
        .body(format!(
            "# TYPE yesterday gauge\nyesterday 1 {noon}\n# EOF\n"
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let taken = day.format("%Y-%m-%d").to_string();
    let r: serde_json::Value = c
        .post(server.url(&format!("/api/v1/admin/snapshot?day={taken}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{r}");
    assert!(r["data"]["samples"].as_u64().unwrap() > 0, "{r}");
    let manifest = c
        .get(server.url(&format!("/snapshots/{taken}/manifest.json")))
        .send()
        .unwrap();
    assert_eq!(manifest.status(), 200);
    for path in [
        format!("/snapshots/{taken}/..%2F..%2Finfermon.yml"),
        "/snapshots/..%2F..%2Fetc/passwd".to_string(),
        format!("/snapshots/{taken}/..%2Fmanifest.json"),
        "/backups/..%2Fdata%2Finfermon.db".to_string(),
        "/backups/infermon-..%2F..%2Finfermon.yml".to_string(),
    ] {
        let r = c.get(server.url(&path)).send().unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

/// Runs `infermon <args>`; (success, stderr).
fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(support::binary())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `infermon export --from 0 --to <to> <source…> -o <dir>/<name>`, which
/// must succeed; the exported text.
fn export(dir: &std::path::Path, to: &str, source: &[&str], name: &str) -> String {
    let out = dir.join(name);
    let out_arg = out.display().to_string();
    let mut args = vec!["export", "--from", "0", "--to", to];
    args.extend_from_slice(source);
    args.extend(["-o", out_arg.as_str()]);
    let (ok, log) = cli(&args);
    assert!(ok, "{log}");
    std::fs::read_to_string(&out).unwrap()
}

/// Export from a running box and from its stopped data dir agree; `import`
/// of the export into an empty store (by data dir, twice, and over HTTP,
/// twice) gives back the same series and samples; `restore` checks the
/// backup, refuses while the store is open and keeps what it replaces.
#[test]
fn export_import_and_restore_round_trip() {
    let mut a = support::TestServer::start(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\n",
    );
    let scrapes = a.wait_metric(
        "infermon_scrape_scrapes_total",
        &[("job", "infermon")],
        3.0,
        Duration::from_secs(60),
    );
    let c = client();
    let r: serde_json::Value = c
        .post(a.url("/api/v1/admin/backup"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{r}");
    let backup_end = (infermon::util::now_ms() / 1000 - 2).to_string();
    let backup_file = r["data"]["file"].as_str().unwrap().to_string();
    let backup = a.dir.path().join("backup.db");
    let backup_arg = backup.display().to_string();
    std::fs::write(
        &backup,
        c.get(a.url(&format!("/backups/{backup_file}")))
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
    )
    .unwrap();
    // The store moves on past the backup: four more scrapes.
    a.wait_metric(
        "infermon_scrape_scrapes_total",
        &[("job", "infermon")],
        scrapes + 4.0,
        Duration::from_secs(60),
    );
    let end = (infermon::util::now_ms() / 1000 - 2).to_string();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let p = |name: &str| w.join(name).display().to_string();
    let url_a = format!("http://{}", a.addr);
    let running = export(w, &end, &["--url", &url_a], "running.om");
    let samples = running.lines().filter(|l| !l.starts_with('#')).count();
    assert!(samples > 100, "{samples} samples exported");

    // The store is open: the data dir refuses a second user.
    let data_a = a.dir.path().join("data").display().to_string();
    let (ok, log) = cli(&[
        "export",
        "--from",
        "0",
        "--to",
        &end,
        "--data-dir",
        &data_a,
        "-o",
        &p("x.om"),
    ]);
    assert!(!ok && log.contains("in use by another infermon"), "{log}");
    let (ok, log) = cli(&["restore", &backup_arg, "--data-dir", &data_a]);
    assert!(!ok && log.contains("in use by another infermon"), "{log}");

    a.terminate();
    assert!(
        a.wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    assert_eq!(
        export(w, &end, &["--data-dir", &data_a], "stopped.om"),
        running
    );

    // Import into an empty data dir, twice: the second adds nothing.
    let data_b = p("b");
    for expected in [
        format!("{samples} samples added, 0 already"),
        format!("0 samples added, {samples} already"),
    ] {
        let (ok, log) = cli(&["import", &p("running.om"), "--data-dir", &data_b]);
        assert!(ok && log.contains(&expected), "{expected}: {log}");
    }
    assert_eq!(export(w, &end, &["--data-dir", &data_b], "b.om"), running);

    // Import into a running box over HTTP, twice; its own series differ by
    // instance, so the comparison selects the imported instance.
    let server = support::TestServer::start(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\n",
    );
    let url_c = format!("http://{}", server.addr);
    for expected in [
        format!("{samples} samples added, 0 already"),
        format!("0 samples added, {samples} already"),
    ] {
        let (ok, log) = cli(&["import", &p("running.om"), "--url", &url_c]);
        assert!(ok && log.contains(&expected), "{expected}: {log}");
    }
    let selector = format!("{{instance=\"{}\"}}", a.addr);
    assert_eq!(
        export(w, &end, &["--url", &url_c, "--match", &selector], "c.om"),
        export(
            w,
            &end,
            &["--data-dir", &data_a, "--match", &selector],
            "a-instance.om"
        )
    );
    // A body that is not OpenMetrics is a 400 a person can act on.
    let bad = c
        .post(server.url("/api/v1/admin/import"))
        .body("up 1\n")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: serde_json::Value = bad.json().unwrap();
    assert!(
        bad["error"].as_str().unwrap().contains("timestamp"),
        "{bad}"
    );

    // Restore: a file that is not a store is refused and changes nothing.
    std::fs::write(w.join("junk.db"), "not a database").unwrap();
    let (ok, log) = cli(&["restore", &p("junk.db"), "--data-dir", &data_a]);
    assert!(!ok && log.contains("junk.db"), "{log}");
    let (ok, log) = cli(&["restore", &backup_arg, "--data-dir", &data_a]);
    assert!(ok && log.contains("kept as"), "{log}");
    let kept = std::fs::read_dir(&data_a)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("infermon.db.replaced-")
        });
    assert!(kept, "the replaced database is kept");
    // The restored store holds what the backup held: the data up to the
    // backup, and nothing written after it.
    assert_eq!(
        export(w, &backup_end, &["--data-dir", &data_a], "restored.om"),
        export(
            w,
            &backup_end,
            &["--data-dir", &data_b],
            "b-before-backup.om"
        )
    );
    let after = export(w, &end, &["--data-dir", &data_a], "after.om");
    assert!(
        after.lines().count() < running.lines().count(),
        "samples written after the backup are gone"
    );
}
