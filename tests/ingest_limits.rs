//! Bounded ingest and safe snapshot files through the real binary:
//! timestamps far from now are refused and counted at every ingest path, a
//! chunk before 1970 already on disk neither stalls maintenance nor SIGTERM,
//! and `/api/v1/write` has its own body, decompressed-size and label limits
//! with JSON errors that name the config key; a snapshot of a day that has
//! not ended is refused, and exports and backups are streamed.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use infermon::remote::proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use support::{TestServer, client};

/// The value of the first `/metrics` line starting with `prefix`.
fn metric(server: &TestServer, prefix: &str) -> Option<f64> {
    let text = client()
        .get(server.url("/metrics"))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls `check` until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn query(server: &TestServer, expr: &str) -> Vec<serde_json::Value> {
    let r: serde_json::Value = client()
        .get(server.url("/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{expr}: {r}");
    r["data"]["result"].as_array().unwrap().clone()
}

fn now_ms() -> i64 {
    infermon::util::now_ms()
}

#[test]
fn a_chunk_before_1970_on_disk_neither_stalls_maintenance_nor_sigterm() {
    use infermon::storage::chunk::ChunkEncoder;
    use infermon::storage::{DB_FILE, SqliteStorage, StorageOptions};
    let data = tempfile::tempdir().unwrap();
    SqliteStorage::open(data.path(), StorageOptions::default())
        .unwrap()
        .close()
        .unwrap();
    // Written past every ingest check, as an older infermon could have.
    let conn = rusqlite::Connection::open(data.path().join(DB_FILE)).unwrap();
    conn.execute(
        "INSERT INTO series (labels) VALUES (?1)",
        [r#"{"__name__":"before_epoch"}"#],
    )
    .unwrap();
    let id = conn.last_insert_rowid();
    let mut enc = ChunkEncoder::new();
    enc.append(-1, 1.0);
    conn.execute(
        "INSERT INTO chunks (series_id, min_t, max_t, samples, data) VALUES (?1, -1, -1, 1, ?2)",
        rusqlite::params![id, enc.bytes()],
    )
    .unwrap();
    drop(conn);
    let mut server = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {}\n  rollup_retention: 73000d\nmodels: []\n",
        data.path().display()
    ));
    // Maintenance runs at start; it rolls the chunk up into day -1 (it
    // used to look in day 0 and spin forever).
    assert!(
        eventually(Duration::from_secs(60), || metric(
            &server,
            "infermon_storage_rollup_series "
        ) == Some(1.0)),
        "maintenance did not finish:\n{}",
        server.log()
    );
    server.terminate();
    assert!(
        server.wait_exit(Duration::from_secs(30)).is_some(),
        "SIGTERM did not stop infermon within 30 s:\n{}",
        server.log()
    );
}

/// Serves `body` as a text-format exposition to every request.
fn serve_exposition(body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn scraped_samples_outside_the_time_window_are_dropped_and_counted() {
    let far_future = now_ms() + 400 * 24 * 3600 * 1000;
    let port = serve_exposition(format!(
        "before_epoch 1 -1\nfar_future 1 {far_future}\nin_window 1\n"
    ));
    let server = TestServer::start(&format!(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {{dir}}/data\nmodels: []\nscrape_configs:\n  - job_name: edge\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    ));
    assert!(
        eventually(Duration::from_secs(30), || metric(
            &server,
            "infermon_scrape_rejected_samples_total{job=\"edge\",reason=\"out_of_bounds\"}"
        )
        .is_some_and(|v| v >= 2.0)),
        "out-of-bounds samples were not counted:\n{}",
        server.log()
    );
    // The scrape itself stays up and keeps the sample inside the window.
    assert!(eventually(Duration::from_secs(30), || !query(
        &server,
        "in_window"
    )
    .is_empty()));
    let up = query(&server, "up{job=\"edge\"}");
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    assert!(query(&server, "before_epoch").is_empty());
    assert!(
        query(&server, "last_over_time(far_future[500d] @ end())").is_empty(),
        "a sample a year ahead was stored"
    );
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

fn series(labels: Vec<Label>, t: i64) -> TimeSeries {
    TimeSeries {
        labels,
        samples: vec![Sample {
            value: 1.0,
            timestamp: t,
        }],
    }
}

fn push(server: &TestServer, timeseries: Vec<TimeSeries>) -> (u16, String, Duration) {
    let body = snap::raw::Encoder::new()
        .compress_vec(&WriteRequest { timeseries }.encode_to_vec())
        .unwrap();
    push_raw(server, body)
}

fn push_raw(server: &TestServer, body: Vec<u8>) -> (u16, String, Duration) {
    let started = Instant::now();
    let r = client()
        .post(server.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().unwrap(), started.elapsed())
}

/// Sends a write request's headers announcing `length` body bytes and
/// returns what the server answers without the body.
fn post_headers_only(server: &TestServer, length: usize) -> String {
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/v1/write HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: {length}\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"}") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn receiver() -> TestServer {
    TestServer::start("server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\n")
}

#[test]
fn remote_write_refuses_out_of_bounds_samples_and_stores_the_rest() {
    let server = receiver();
    let now = now_ms();
    let (status, body, _) = push(
        &server,
        vec![
            series(vec![label("__name__", "pushed_before_epoch")], -1),
            series(
                vec![label("__name__", "pushed_future")],
                now + 3 * 365 * 24 * 3600 * 1000,
            ),
            series(vec![label("__name__", "pushed_now")], now),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("storage.max_future_skew"), "{body}");
    assert_eq!(
        metric(
            &server,
            "infermon_remote_write_rejected_samples_total{reason=\"out_of_bounds\"}"
        ),
        Some(2.0)
    );
    assert_eq!(query(&server, "pushed_now").len(), 1);
    assert!(query(&server, "pushed_before_epoch").is_empty());
}

#[test]
fn remote_write_label_limits_answer_400_naming_the_key_and_keep_other_series() {
    let server = receiver();
    let now = now_ms();
    // 100k labels in one series: refused before a label set is built (it
    // took 14 s of CPU when the set was built label by label).
    let mut many = vec![label("__name__", "wide")];
    many.extend((0..100_000).map(|i| label(&format!("l{i}"), "v")));
    let (status, body, took) = push(
        &server,
        vec![
            series(many, now),
            series(vec![label("__name__", "narrow")], now),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("remote_write_receiver.max_labels_per_series"),
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        query(&server, "narrow").len(),
        1,
        "the other series is stored"
    );
    // A value over 16384 bytes.
    let (status, body, _) = push(
        &server,
        vec![series(
            vec![
                label("__name__", "long_value"),
                label("a", &"x".repeat(16385)),
            ],
            now,
        )],
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("remote_write_receiver.max_label_value_length"),
        "{body}"
    );
    assert_eq!(
        metric(
            &server,
            "infermon_remote_write_rejected_samples_total{reason=\"label_value_too_long\"}"
        ),
        Some(1.0)
    );
    assert!(
        metric(
            &server,
            "infermon_remote_write_rejected_samples_total{reason=\"too_many_labels\"}"
        )
        .is_some_and(|v| v >= 1.0)
    );
}

/// Bytes snappy cannot shrink, as label values (xorshift, printable).
fn noise(n: usize, seed: &mut u64) -> String {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (b'!' + (*seed % 90) as u8) as char
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect()
}

#[test]
fn remote_write_has_its_own_body_and_decompressed_limits() {
    let server = receiver();
    let now = now_ms();
    // vmagent's 8 MB blocks: over server.limits.max_body_bytes (2 MiB),
    // under remote_write_receiver.max_request_bytes (32 MiB).
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<TimeSeries> = (0..600)
        .map(|i| {
            series(
                vec![
                    label("__name__", "vmagent_block"),
                    label("i", &i.to_string()),
                    label("noise", &noise(14_000, &mut seed)),
                ],
                now,
            )
        })
        .collect();
    let body = snap::raw::Encoder::new()
        .compress_vec(&WriteRequest { timeseries: big }.encode_to_vec())
        .unwrap();
    assert!(body.len() > 7 << 20, "{}", body.len());
    let (status, text, _) = push_raw(&server, body);
    assert_eq!(status, 204, "{text}");
    assert_eq!(query(&server, "count(vmagent_block)")[0]["value"][1], "600");
    // Over 32 MiB as sent: answered from the Content-Length, before the
    // body is read (so the request goes out by hand, headers only).
    let text = post_headers_only(&server, (32 << 20) + 1);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("remote_write_receiver.max_request_bytes"),
        "{text}"
    );
    // Small as sent, over 64 MiB once decompressed.
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 65 << 20])
        .unwrap();
    let (status, text, _) = push_raw(&server, bomb);
    assert_eq!(status, 413, "{text}");
    assert!(
        text.contains("remote_write_receiver.max_decompressed_bytes"),
        "{text}"
    );
}

#[test]
fn imported_samples_before_1970_are_skipped_and_counted() {
    let server = receiver();
    let r: serde_json::Value = client()
        .post(server.url("/api/v1/admin/import"))
        .body("# TYPE imported gauge\nimported 1 -0.001\nimported 2 1.5\n# EOF\n")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["data"]["samples_added"], 1, "{r}");
    assert_eq!(r["data"]["samples_out_of_bounds"], 1, "{r}");
    assert_eq!(
        metric(
            &server,
            "infermon_backfill_rejected_samples_total{reason=\"out_of_bounds\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn snapshots_of_days_not_ended_are_refused_and_files_are_streamed() {
    let server = TestServer::start(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\nsnapshots:\n  dir: {dir}/snapshots\n",
    );
    let c = client();
    let r = c
        .post(server.url("/api/v1/admin/snapshot?day=2999-01-01"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().unwrap();
    assert!(text.contains("has not ended"), "{text}");
    // Exports and backups go out as they are read (chunked, no length).
    let now = now_ms();
    let (status, body, _) = push(
        &server,
        vec![series(vec![label("__name__", "exported")], now)],
    );
    assert_eq!(status, 204, "{body}");
    let r = c
        .get(server.url("/api/v1/export"))
        .query(&[("match[]", "exported"), ("start", "0")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-length").is_none(),
        "{:?}",
        r.headers()
    );
    let text = r.text().unwrap();
    assert!(
        text.starts_with("# TYPE exported unknown\nexported 1 "),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let r: serde_json::Value = c
        .post(server.url("/api/v1/admin/backup"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let file = r["data"]["file"].as_str().unwrap().to_string();
    let r = c
        .get(server.url(&format!("/backups/{file}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-length").is_none(),
        "{:?}",
        r.headers()
    );
    let bytes = r.bytes().unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
}

#[test]
fn decoding_huge_label_sets_does_not_stall_other_requests() {
    // Label limits lifted: two requests of one series with 100k labels
    // each are decoded and stored while /health keeps answering (label
    // sets were built in O(n^2) on the async threads: 14 s of CPU each).
    let server = TestServer::start(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\nremote_write_receiver:\n  max_labels_per_series: 0\n",
    );
    let now = now_ms();
    let body = |name: &str| {
        let mut labels = vec![label("__name__", name)];
        labels.extend((0..100_000).map(|i| label(&format!("l{i}"), "v")));
        snap::raw::Encoder::new()
            .compress_vec(
                &WriteRequest {
                    timeseries: vec![series(labels, now)],
                }
                .encode_to_vec(),
            )
            .unwrap()
    };
    let bodies = [body("wide_a"), body("wide_b")];
    let started = Instant::now();
    let writers: Vec<_> = bodies
        .into_iter()
        .map(|b| {
            let url = server.url("/api/v1/write");
            std::thread::spawn(move || {
                client()
                    .post(url)
                    .header("Content-Encoding", "snappy")
                    .body(b)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while !writers.iter().all(|w| w.is_finished()) && started.elapsed() < Duration::from_secs(120) {
        let t = Instant::now();
        let r = client().get(server.url("/health")).send().unwrap();
        assert_eq!(r.status(), 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    for w in writers {
        assert_eq!(w.join().unwrap(), 204);
    }
    eprintln!(
        "two 100k-label writes took {:?}; slowest /health meanwhile {slowest:?}",
        started.elapsed()
    );
    assert!(slowest < Duration::from_secs(1), "/health took {slowest:?}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// The threads named `prefix*` of process `pid`, with their nice values
/// (field 19 of /proc/<pid>/task/<tid>/stat).
#[cfg(target_os = "linux")]
fn threads_named(pid: u32, prefix: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let comm = comm.trim().to_string();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The fields after the parenthesised name, which may hold spaces.
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let nice = rest
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        out.push((comm, nice));
    }
    out
}

/// remote_write is decoded and stored on the ingest pool's threads at the
/// lowest priority, never on the model's level: a sender pushing as fast
/// as it can must not take the CPU from inference.
#[cfg(target_os = "linux")]
#[test]
fn remote_write_ingest_runs_below_the_models_priority() {
    let server = receiver();
    let (status, body, _) = push(
        &server,
        vec![series(vec![label("__name__", "pushed_now")], now_ms())],
    );
    assert!(status < 300, "{status} {body}");
    assert_eq!(query(&server, "pushed_now").len(), 1);
    let threads = threads_named(server.child.id(), "rw-ingest");
    assert!(!threads.is_empty(), "no ingest thread stored the request");
    assert!(threads.iter().all(|(_, nice)| *nice == 19), "{threads:?}");
}

/// Scraped bodies are parsed and stored on the scrape threads at the lowest
/// priority, like remote_write and queries.
#[cfg(target_os = "linux")]
#[test]
fn scraped_bodies_are_parsed_and_stored_below_the_models_priority() {
    let port = serve_exposition("scraped_here 1\n".to_string());
    let server = TestServer::start(&format!(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {{dir}}/data\nmodels: []\nscrape_configs:\n  - job_name: edge\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    ));
    assert!(
        eventually(Duration::from_secs(30), || !query(&server, "scraped_here")
            .is_empty()),
        "nothing scraped:\n{}",
        server.log()
    );
    // Parsing and storing ran on the scrape threads (they start with the
    // first scrape), all at nice 19, not on the async runtime's threads.
    let threads = threads_named(server.child.id(), "scrape-work");
    assert!(!threads.is_empty(), "no scrape thread parsed the body");
    assert!(threads.iter().all(|(_, nice)| *nice == 19), "{threads:?}");
}
