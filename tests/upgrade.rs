//! Upgrades keep the data: stores written by an older build
//! (`tests/fixtures/old-stores/`, made by that build itself) are opened by
//! this one, and every sample, rule state, silence, notification-log entry,
//! outbox row and remote_write position is still there. A store written by a
//! newer build is refused with a clear message and left byte for byte as it
//! was. The Status page's Operations section is checked on such a store too,
//! since it shows what an operator watches after an upgrade.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use infermon::storage::schema::{STATE, STORE};
use infermon::storage::{SqliteStorage, StateStore, StorageOptions};
use serde_json::Value;

const OLD: &str = "old-stores/v2";

/// The fixture's files copied into a fresh data directory.
fn old_store() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for f in ["infermon.db", "state.db"] {
        std::fs::copy(support::fixture(OLD).join(f), data.join(f)).unwrap();
    }
    (tmp, data)
}

fn expected_state() -> Value {
    let text = std::fs::read_to_string(support::fixture(OLD).join("expected-state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `infermon export --format json` output (or the fixture's) as metric → samples.
fn samples_by_series(text: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let values = v["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            (v["metric"].to_string(), values)
        })
        .collect()
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(support::binary())
        .args(args)
        .output()
        .expect("run infermon")
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// Storage options that keep everything: the fixture's data must not age
/// out however long after its making the test runs.
fn keep_all() -> StorageOptions {
    StorageOptions {
        retention_ms: 100 * 365 * 86_400_000,
        ..StorageOptions::default()
    }
}

#[test]
fn old_store_upgrades_keeping_every_item() {
    let (_tmp, data) = old_store();
    let expected = expected_state();
    assert_eq!(expected["store_user_version"], 2);
    let dir = data.to_str().unwrap();

    // `infermon version` names both versions and what the next start does.
    let v = stdout(&run(&["version", "--data-dir", dir]));
    assert!(
        v.contains(&format!("schema infermon.db: version {}", STORE.version())),
        "{v}"
    );
    assert!(
        v.contains(&format!(
            "infermon.db: version 2 (migrated to {} at the next start)",
            STORE.version()
        )),
        "{v}"
    );
    assert!(v.contains("state.db: version 0 (migrated to"), "{v}");

    // Rule state, silences, notification log, outbox, delivery history.
    {
        let state = StateStore::open(&data.join("state.db")).unwrap();
        let rules: Vec<(String, String, i64)> = expected["rule_state"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["rule_key"].as_str().unwrap().to_string(),
                    r["state_json"].as_str().unwrap().to_string(),
                    r["saved_ms"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rules.len(),
            2,
            "the fixture has a firing and a pending rule"
        );
        let mut got = state.load_rule_states().unwrap();
        got.sort();
        assert_eq!(got, rules);

        let silences: Vec<String> = expected["silences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["silence_json"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(silences.len(), 1);
        assert_eq!(state.load_silences().unwrap(), silences);

        let log = expected["notification_log"].as_array().unwrap();
        assert!(!log.is_empty());
        for entry in log {
            assert_eq!(
                state
                    .log_entry(entry["log_key"].as_str().unwrap())
                    .unwrap()
                    .as_deref(),
                entry["entry_json"].as_str(),
            );
        }

        let outbox = expected["outbox"].as_array().unwrap();
        assert!(!outbox.is_empty());
        let queued = state.queued().unwrap();
        assert_eq!(queued.len(), outbox.len());
        for (row, want) in queued.iter().zip(outbox) {
            assert_eq!(row.id, want["id"].as_i64().unwrap());
            assert_eq!(row.integration, want["integration"].as_str().unwrap());
            assert_eq!(row.payload_json, want["payload_json"].as_str().unwrap());
            assert_eq!(row.created_ms, want["created_ms"].as_i64().unwrap());
            assert_eq!(i64::from(row.attempts), want["attempts"].as_i64().unwrap());
            assert_eq!(
                row.next_attempt_ms,
                want["next_attempt_ms"].as_i64().unwrap()
            );
            assert_eq!(row.last_error.as_deref(), want["last_error"].as_str());
        }
        assert_eq!(
            state.history(1000).unwrap().len(),
            expected["delivery_history"].as_array().unwrap().len()
        );
    }
    assert_eq!(
        user_version(&data.join("state.db")),
        i64::from(STATE.version())
    );

    // remote_write positions and the WAL rows the lagging one still needs.
    {
        let store = SqliteStorage::open(&data, keep_all()).unwrap();
        let lags = store.follower_lags().unwrap();
        let want = expected["wal_followers"].as_array().unwrap();
        assert_eq!(lags.len(), want.len());
        for (got, want) in lags.iter().zip(want) {
            assert_eq!(got.name, want["name"].as_str().unwrap());
            assert_eq!(got.seq, want["seq"].as_i64().unwrap(), "{}", got.name);
            assert_eq!(got.dropped_samples, 0);
            assert_eq!(got.updated_ms, want["updated_ms"].as_i64().unwrap());
        }
        let down = lags.iter().find(|f| f.name == "down").unwrap();
        let live = lags.iter().find(|f| f.name == "live").unwrap();
        assert!(live.seq > down.seq, "the fixture's positions differ");
        assert_eq!(
            down.backlog.rows,
            expected["wal_rows"].as_u64().unwrap(),
            "every WAL row the lagging destination has not sent is still there"
        );
        store.close().unwrap();
    }
    assert_eq!(
        user_version(&data.join("infermon.db")),
        i64::from(STORE.version())
    );

    // Every sample, as this binary exports it, equals what the old binary
    // exported from the same store.
    let want = samples_by_series(
        &std::fs::read_to_string(support::fixture(OLD).join("expected-samples.jsonl")).unwrap(),
    );
    let (from, to) = want
        .values()
        .flatten()
        .fold((i64::MAX, i64::MIN), |(lo, hi), (t, _)| {
            (lo.min(*t), hi.max(*t))
        });
    let out = data.parent().unwrap().join("now.jsonl");
    stdout(&run(&[
        "export",
        "--data-dir",
        dir,
        "--format",
        "json",
        "--from",
        &(from / 1000 - 1).to_string(),
        "--to",
        &(to / 1000 + 1).to_string(),
        "-o",
        out.to_str().unwrap(),
    ]));
    let got = samples_by_series(&std::fs::read_to_string(&out).unwrap());
    let want_samples: usize = want.values().map(Vec::len).sum();
    assert!(
        want_samples > 720,
        "imported and scraped samples: {want_samples}"
    );
    assert_eq!(got.len(), want.len(), "series");
    for (series, samples) in &want {
        assert_eq!(got.get(series), Some(samples), "{series}");
    }

    let v = stdout(&run(&["version", "--data-dir", dir]));
    assert!(
        v.contains(&format!("infermon.db: version {}\n", STORE.version())),
        "{v}"
    );
}

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// `infermon serve` on `data` with no model; returns its exit status and log.
fn serve_once(tmp: &Path, data: &Path) -> (std::process::ExitStatus, String) {
    let config = tmp.join("infermon.yml");
    std::fs::write(
        &config,
        format!(
            "server: {{listen: '127.0.0.1:0'}}\nmodels: []\nstorage: {{path: '{}'}}\nsnapshots: {{enabled: false}}\ncollectors: {{gpu: {{enabled: false}}}}\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(support::binary())
        .args(["serve", "-c"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("infermon kept running on a store from a newer build");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    (status, log)
}

fn set_version(path: &Path, v: u32) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "user_version", v).unwrap();
}

#[test]
fn store_from_a_newer_build_is_refused_untouched() {
    // infermon.db from the future.
    let (tmp, data) = old_store();
    let db = data.join("infermon.db");
    set_version(&db, STORE.version() + 1);
    let (before_db, before_state) = (sha(&db), sha(&data.join("state.db")));
    let (status, log) = serve_once(tmp.path(), &data);
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "has schema version {}, but this infermon",
            STORE.version() + 1
        )) && log.contains("written by a newer infermon"),
        "{log}"
    );
    assert_eq!(sha(&db), before_db, "infermon.db changed");
    assert_eq!(
        sha(&data.join("state.db")),
        before_state,
        "state.db changed"
    );
    let v = stdout(&run(&["version", "--data-dir", data.to_str().unwrap()]));
    assert!(v.contains("newer than this binary"), "{v}");
    assert_no_journal_files(&data);

    // A backup from the future is refused by restore, too.
    let target = tmp.path().join("restore-into");
    let out = run(&[
        "restore",
        db.to_str().unwrap(),
        "--data-dir",
        target.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("written by a newer infermon"), "{err}");
    assert!(!target.join("infermon.db").exists());

    // state.db from the future: neither file changes (infermon.db is not
    // migrated either, though it is older).
    let (tmp, data) = old_store();
    let state = data.join("state.db");
    set_version(&state, STATE.version() + 1);
    let (before_db, before_state) = (sha(&data.join("infermon.db")), sha(&state));
    let (status, log) = serve_once(tmp.path(), &data);
    assert!(!status.success(), "{log}");
    assert!(log.contains("state.db has schema version"), "{log}");
    assert_eq!(sha(&data.join("infermon.db")), before_db);
    assert_eq!(sha(&state), before_state);
    assert_no_journal_files(&data);
}

/// Nothing was left beside the databases either (no -wal/-shm files).
fn assert_no_journal_files(data: &Path) {
    let left: Vec<String> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-wal") || n.ends_with("-shm"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The rows of `<table ... id="{id}">` on the Status page, unescaped.
fn ops_rows(html: &str, id: &str) -> BTreeMap<String, String> {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in\n{html}"));
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    let unescape = |s: &str| {
        s.replace("&#x27;", "'")
            .replace("&#39;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#x2F;", "/")
            .replace("&amp;", "&")
    };
    table
        .split("<tr><th>")
        .skip(1)
        .map(|row| {
            let (k, rest) = row.split_once("</th><td>").unwrap();
            let v = rest.split("</td>").next().unwrap();
            (unescape(k), unescape(v))
        })
        .collect()
}

#[test]
fn status_page_shows_operations_of_an_upgraded_store() {
    let (_tmp, data) = old_store();
    let expected = expected_state();
    let server = support::TestServer::start(&format!(
        "server: {{listen: '127.0.0.1:0'}}
models:
  - {{name: minilm, path: '{}'}}
storage: {{path: '{}', retention: 10y, retention_size: 1GB}}
remote_write:
  - {{name: live, url: 'http://127.0.0.1:9/write'}}
  - {{name: down, url: 'http://127.0.0.1:9/write'}}
snapshots: {{enabled: true}}
collectors: {{gpu: {{enabled: false}}}}
",
        support::minilm_dir().display(),
        data.display()
    ));
    let client = support::client();
    // A whole-store backup, so the section has one to show.
    let backup: Value = client
        .post(server.url("/api/v1/admin/backup"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let backups: Value = client
        .get(server.url("/api/v1/backups"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let newest = backups["data"]
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("no backup listed: {backup} {backups}"));
    let html = client
        .get(server.url("/status"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let metric = |name: &str| {
        support::parse_exposition(&metrics)
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
    };

    // Config: the reload gauges once something sets them, else the load time.
    let config = ops_rows(&html, "ops-config");
    match metric("infermon_config_last_reload_successful") {
        Some(v) => assert_eq!(
            config["Last reload"],
            if v == 1.0 { "successful" } else { "failed" }
        ),
        None => {
            assert_eq!(config["Last reload"], "none since start");
            assert!(config["Config loaded"].ends_with(" UTC"), "{config:?}");
        }
    }

    // Model load time, as the gauge has it.
    let models = ops_rows(&html, "ops-models");
    let load = metric("infermon_model_load_seconds").expect("load gauge");
    assert!(load > 0.0);
    let shown = &models["minilm"];
    assert!(
        shown.ends_with(" s") || shown.ends_with(" ms"),
        "{models:?}"
    );

    // Size against retention_size, oldest sample against retention.
    let storage = ops_rows(&html, "ops-storage");
    assert!(
        storage["Size on disk"].contains("/ 1 GiB (storage.retention_size)"),
        "{storage:?}"
    );
    let oldest = &storage["Oldest raw sample"];
    assert!(oldest.contains("/ 10y (storage.retention)"), "{oldest}");
    let hours: i64 = oldest.split('h').next().unwrap().parse().unwrap();
    assert!(
        hours >= 47,
        "the fixture's imported day is two days old: {oldest}"
    );

    // remote_write: each destination's position against the WAL's head.
    let remote = ops_rows(&html, "ops-remote");
    for f in expected["wal_followers"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let shown = remote
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing: {remote:?}"));
        assert!(
            shown.starts_with(&format!("position {} / ", f["seq"])),
            "{name}: {shown}"
        );
    }
    let down = &remote["down"];
    let behind: u64 = down
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{down}"));
    assert!(
        behind >= expected["wal_rows"].as_u64().unwrap(),
        "the fixture's held rows and what was appended since: {down}"
    );

    // The newest backup with its size.
    let shelf = ops_rows(&html, "ops-snapshots");
    let file = newest["file"].as_str().unwrap();
    assert!(
        shelf["Last backup"].starts_with(&format!("{file} · ")),
        "{shelf:?} vs {newest}"
    );
}
