//! End to end: the real binary scrapes a real `prometheus-node-exporter`
//! (Debian's package, started here on a free port) and itself; `up` and the
//! exporters' series land in the SQLite store; `/api/v1/targets` reports
//! them in Prometheus' shape; after SIGTERM the store reopens intact.

use crate::support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use infermon::model::{MatchOp, Matcher};
use infermon::storage::{Querier, SqliteStorage, StorageOptions};
use support::{TestServer, client};

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_node_exporter() -> (Exporter, u16) {
    let port = free_port();
    let child = Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-node-exporter is missing: run scripts/install-test-deps.sh");
    let exporter = Exporter(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .is_err()
    {
        assert!(Instant::now() < deadline, "node exporter did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (exporter, port)
}

fn m(name: &str, v: &str) -> Matcher {
    Matcher::new(name, MatchOp::Equal, v).unwrap()
}

#[test]
fn scrapes_node_exporter_and_itself_into_the_store() {
    let (_exporter, port) = start_node_exporter();
    let config = format!(
        "server: {{listen: 127.0.0.1:0}}\nstorage: {{path: '{{dir}}/data', min_free_disk: 1MB}}\n\
         global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
         scrape_configs:\n\
         - job_name: node\n  static_configs: [{{targets: ['127.0.0.1:{port}'], labels: {{box: gpu1}}}}]\n\
         - job_name: dropped\n  static_configs: [{{targets: ['127.0.0.1:1']}}]\n  relabel_configs: [{{action: drop, source_labels: [job], regex: dropped}}]\n\
         - job_name: down\n  static_configs: [{{targets: ['127.0.0.1:1']}}]\n"
    );
    let mut server = TestServer::start(&config);
    let http = client();
    // Wait until every active target was scraped at least twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    let targets = loop {
        let body: serde_json::Value = http
            .get(server.url("/api/v1/targets"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let active = body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if active.len() == 3 && active.iter().all(|t| t["health"] != "unknown") {
            // Each job scraped at least twice.
            for job in ["node", "down", "infermon"] {
                server.wait_metric(
                    "infermon_scrape_scrapes_total",
                    &[("job", job)],
                    2.0,
                    Duration::from_secs(30),
                );
            }
            break http
                .get(server.url("/api/v1/targets"))
                .send()
                .unwrap()
                .json::<serde_json::Value>()
                .unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "targets never scraped: {body}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(targets["status"], "success");
    let active = targets["data"]["activeTargets"].as_array().unwrap();
    let by_pool = |p: &str| {
        active
            .iter()
            .find(|t| t["scrapePool"] == p)
            .unwrap_or_else(|| panic!("{p} missing: {targets}"))
    };
    let node = by_pool("node");
    assert_eq!(node["health"], "up", "{node}");
    assert_eq!(node["labels"]["box"], "gpu1");
    assert_eq!(
        node["scrapeUrl"],
        format!("http://127.0.0.1:{port}/metrics")
    );
    assert_eq!(node["scrapeInterval"], "1s");
    assert_eq!(
        by_pool("infermon")["health"],
        "up",
        "self-scrape is on by default"
    );
    let down = by_pool("down");
    assert_eq!(down["health"], "down");
    assert!(!down["lastError"].as_str().unwrap().is_empty());
    assert_eq!(
        targets["data"]["droppedTargets"].as_array().unwrap().len(),
        1
    );
    assert_eq!(targets["data"]["droppedTargetCounts"]["dropped"], 1);
    let only_active: serde_json::Value = http
        .get(server.url("/api/v1/targets?state=active&scrapePool=node"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        only_active["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        only_active["data"]["droppedTargets"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("infermon_storage_series "), "{metrics}");
    assert!(
        metrics.contains("infermon_scrape_scrapes_total{job=\"node\"}"),
        "{metrics}"
    );

    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("infermon exits on SIGTERM");
    assert!(status.success(), "{}", server.log());
    assert!(server.log().contains("storage closed"), "{}", server.log());

    let store = SqliteStorage::open(
        server.dir.path().join("data"),
        StorageOptions {
            min_free_disk: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let up = store
        .select(&[m("__name__", "up"), m("job", "node")], 0, i64::MAX)
        .unwrap();
    assert_eq!(up.len(), 1);
    assert!(
        up[0].samples.len() >= 2 && up[0].samples.iter().all(|s| s.value == 1.0),
        "{:?}",
        up[0].samples
    );
    assert_eq!(
        up[0].labels.get("instance"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    let down_up = store
        .select(&[m("__name__", "up"), m("job", "down")], 0, i64::MAX)
        .unwrap();
    assert!(down_up[0].samples.iter().all(|s| s.value == 0.0));
    let cpu = store
        .select(
            &[m("__name__", "node_cpu_seconds_total"), m("box", "gpu1")],
            0,
            i64::MAX,
        )
        .unwrap();
    assert!(!cpu.is_empty(), "node exporter series are stored");
    assert!(cpu.iter().all(|s| s.labels.get("mode").is_some()));
    let own = store
        .select(
            &[m("__name__", "infermon_build_info"), m("job", "infermon")],
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(own.len(), 1, "own metrics are stored");
    let scraped = store
        .select(
            &[m("__name__", "scrape_samples_scraped"), m("job", "node")],
            0,
            i64::MAX,
        )
        .unwrap();
    assert!(
        scraped[0].samples[0].value > 100.0,
        "node exporter exposes hundreds of samples"
    );
    assert!(store.stats().series > 200);
}

fn prom_query(base: &str, expr: &str, t: f64) -> Vec<(String, String)> {
    let r: serde_json::Value = client()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", expr), ("time", &format!("{t:.3}"))])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{expr}: {r}");
    let mut out: Vec<(String, String)> = r["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["metric"].to_string(), s["value"][1].to_string()))
        .collect();
    out.sort();
    out
}

fn push(url: &str, series: &[(&str, i64, f64)]) -> reqwest::blocking::Response {
    use infermon::remote::proto::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;
    let request = WriteRequest {
        timeseries: series
            .iter()
            .map(|&(name, t, v)| TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: name.into(),
                    },
                    Label {
                        name: "job".into(),
                        value: "pushed".into(),
                    },
                ],
                samples: vec![Sample {
                    value: v,
                    timestamp: t,
                }],
            })
            .collect(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    client()
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap()
}

/// A real Prometheus (Debian package) scraping a real node exporter and
/// remote-writing to `POST /api/v1/write`: infermon answers the same values
/// and sample counts as Prometheus does; garbage gets a 400 and infermon
/// keeps running; late samples are taken within the out-of-order window.
#[test]
fn remote_write_receiver_takes_a_real_prometheus() {
    let (_exporter, node_port) = start_node_exporter();
    let server = TestServer::start(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\n",
    );
    let write_url = server.url("/api/v1/write");
    let prom_port = free_port();
    let prom_dir = tempfile::tempdir().unwrap();
    let prom_config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\nremote_write:\n  - url: {write_url}\n    queue_config:\n      batch_send_deadline: 500ms\n    metadata_config:\n      send: false\n"
        ),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", prom_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            prom_dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is missing: run scripts/install-test-deps.sh");
    let _prom = Exporter(prom);
    let prom_base = format!("http://127.0.0.1:{prom_port}");
    assert!(support::wait_http_ok(
        &format!("{prom_base}/-/ready"),
        Duration::from_secs(60)
    ));
    // Prometheus applies discovered targets after 5s, then scrapes. Wait
    // until it has scraped the whole 5s window before a moment both have
    // fully received (remote write lags by < 1s here).
    let t = support::wait_for(
        "Prometheus scraping node for 5s",
        Duration::from_secs(60),
        || {
            let t = (infermon::util::now_ms() - 3_000) as f64 / 1000.0;
            let count = prom_query(&prom_base, "count_over_time(up{job=\"node\"}[5s])", t);
            match count.first() {
                Some((_, v)) if v.trim_matches('"').parse::<f64>().unwrap_or(0.0) >= 4.0 => Ok(t),
                _ => Err(format!("{count:?}")),
            }
        },
    );
    let base = format!("http://{}", server.addr);
    for expr in [
        "count_over_time(up{job=\"node\"}[5s])",
        "node_cpu_seconds_total{job=\"node\",cpu=\"0\"}",
        "count_over_time(node_load1{job=\"node\"}[5s])",
        "node_memory_MemTotal_bytes{job=\"node\"}",
    ] {
        let theirs = prom_query(&prom_base, expr, t);
        assert!(
            !theirs.is_empty(),
            "{expr} at {t}: Prometheus has no data; up = {:?}",
            prom_query(&prom_base, "up", t + 3.0)
        );
        assert_eq!(prom_query(&base, expr, t), theirs, "{expr} at {t}");
    }

    // Garbage: not snappy, and snappy around something that is not protobuf.
    let c = client();
    let bad = c.post(&write_url).body("not a request").send().unwrap();
    assert_eq!(bad.status(), 400);
    let e: serde_json::Value = bad.json().unwrap();
    assert!(e["error"].as_str().unwrap().contains("snappy"), "{e}");
    let junk = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
    assert_eq!(c.post(&write_url).body(junk).send().unwrap().status(), 400);
    assert_eq!(c.get(server.url("/health")).send().unwrap().status(), 200);

    // Late samples: within the window they are stored, older ones refused.
    let now = infermon::util::now_ms();
    assert_eq!(
        push(&write_url, &[("pushed_total", now, 3.0)]).status(),
        204
    );
    assert_eq!(
        push(&write_url, &[("pushed_total", now - 60_000, 1.0)]).status(),
        204
    );
    let late = push(
        &write_url,
        &[
            ("pushed_total", now - 3_600_000, 0.5),
            ("other_total", now, 1.0),
        ],
    );
    assert_eq!(late.status(), 400);
    let e: serde_json::Value = late.json().unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("1 sample(s) are older"),
        "{e}"
    );
    let counted = prom_query(
        &base,
        "count_over_time(pushed_total[2h]) + on() group_left count_over_time(other_total[2h])",
        now as f64 / 1000.0,
    );
    assert_eq!(counted.len(), 1);
    assert_eq!(
        counted[0].1, "\"3\"",
        "2 pushed_total samples + 1 other_total"
    );
    let metrics = c
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("infermon_remote_write_rejected_samples_total{reason=\"too_old\"} 1"),
        "{metrics}"
    );
}
