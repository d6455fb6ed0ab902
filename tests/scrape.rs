//! End to end: the real binary scrapes a real `prometheus-node-exporter`
//! (Debian's package, started here on a free port) and itself; `up` and the
//! exporters' series land in the SQLite store; `/api/v1/targets` reports
//! them in Prometheus' shape; after SIGTERM the store reopens intact.

mod support;

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
            std::thread::sleep(Duration::from_secs(2));
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
