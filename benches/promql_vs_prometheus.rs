//! Query latency side by side: infermon's engine (over its SQLite store, as
//! users run it, filled like a scraper fills it and maintained once, served
//! by its real HTTP API handlers), Prometheus (Debian package, data imported with
//! `promtool tsdb create-blocks-from openmetrics`) and VictoriaMetrics
//! (Debian package, data imported through `/api/v1/import/prometheus`) when
//! installed. Same data, same queries, both over HTTP; prints a markdown
//! table of medians. Run with `cargo bench --bench promql_vs_prometheus`.

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use infermon::model::Labels;
use infermon::promql::{Engine, EngineOptions};
use infermon::storage::{SqliteStorage, StorageOptions};

const DAY_MS: i64 = 86_400_000;
const RUNS: usize = 21;

struct Peer {
    name: &'static str,
    child: Option<Child>,
    url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_ready(client: &reqwest::blocking::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if client
            .get(url)
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} did not become ready");
}

fn exposition(data: &[(Labels, Vec<infermon::model::Sample>)], seconds: bool) -> String {
    let mut text = String::new();
    for (labels, samples) in data {
        let name = labels.metric_name().unwrap_or("");
        let pairs: Vec<String> = labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        let head = format!("{name}{{{}}}", pairs.join(","));
        for s in samples {
            if seconds {
                text.push_str(&format!(
                    "{head} {} {}.{:03}\n",
                    s.value,
                    s.timestamp_ms / 1000,
                    s.timestamp_ms % 1000
                ));
            } else {
                text.push_str(&format!("{head} {} {}\n", s.value, s.timestamp_ms));
            }
        }
    }
    text
}

fn main() {
    // The heap as the binary sets it (`util::heap`), since infermon's
    // handlers run in this process.
    infermon::util::heap::tune();
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let end = infermon::util::now_ms() / 60_000 * 60_000 - 60_000;
    let start = end - 7 * DAY_MS;
    let data = support::generate(start, 7 * DAY_MS);
    let samples: usize = data.iter().map(|(_, s)| s.len()).sum();
    eprintln!("{} series, {samples} samples over 7d", data.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");

    // infermon: its real API handlers over its SQLite store, appended one
    // scrape round at a time (all series at one timestamp), then maintained
    // once as the running server does (chunks compacted, ended days rolled
    // up). Raw samples are kept for the whole week, as in Prometheus; steps
    // of 5 minutes or more (the 24h and 7d ranges) read ended days from the
    // 5-minute rollups (`query.rollup_min_step`).
    let t0 = Instant::now();
    let store = SqliteStorage::open(
        dir.path().join("infermon"),
        StorageOptions {
            min_free_disk: 0,
            // `DECODED_CACHE=0` measures every query decoding its chunks,
            // as the first query over a range does.
            decoded_cache_bytes: match std::env::var("DECODED_CACHE").as_deref() {
                Ok("0") => 0,
                _ => StorageOptions::default().decoded_cache_bytes,
            },
            ..StorageOptions::default()
        },
    )
    .expect("open SQLite store");
    support::append_by_rounds(&store, &data);
    store.maintain(infermon::util::now_ms()).expect("maintain");
    store.checkpoint().expect("checkpoint");
    eprintln!("infermon SQLite fill + maintenance: {:?}", t0.elapsed());
    let store = Arc::new(store);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = infermon::web::api::routes(infermon::web::api::ApiState {
        engine: Engine::new(store, EngineOptions::default()),
        config_yaml: Arc::new(arc_swap::ArcSwap::from_pointee(String::new())),
        flags: Arc::new(Vec::new()),
        start_time_ms: 0,
        storage_retention: "15d".into(),
        external_labels: Arc::new(Labels::default()),
        reload_status: Arc::new(
            infermon::web::ReloadStatus::new(&prometheus::Registry::new()).expect("gauges"),
        ),
    });
    rt.spawn(async move { axum::serve(listener, app).await });
    let mut peers = vec![Peer {
        name: "infermon",
        child: None,
        url: format!("http://{addr}"),
    }];

    // Prometheus.
    let om = dir.path().join("data.om");
    std::fs::write(&om, exposition(&data, true) + "# EOF\n").expect("write");
    let tsdb = dir.path().join("tsdb");
    let t0 = Instant::now();
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .expect("promtool (Debian package prometheus)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("promtool import: {:?}", t0.elapsed());
    let config = dir.path().join("prometheus.yml");
    std::fs::File::create(&config)
        .and_then(|mut f| f.write_all(b"global: {}\n"))
        .expect("config");
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package prometheus)");
    let prom = Peer {
        name: "Prometheus",
        child: Some(child),
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_ready(&client, &format!("{}/-/ready", prom.url));
    peers.push(prom);

    // VictoriaMetrics, when installed.
    if Command::new("victoria-metrics")
        .arg("-version")
        .output()
        .is_ok()
    {
        let port = free_port();
        let child = Command::new("victoria-metrics")
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics");
        let vm = Peer {
            name: "VictoriaMetrics",
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_ready(&client, &format!("{}/health", vm.url));
        let text = exposition(&data, false);
        let r = client
            .post(format!("{}/api/v1/import/prometheus", vm.url))
            .body(text)
            .send()
            .expect("VM import");
        assert!(r.status().is_success(), "VM import: {}", r.status());
        let _ = client
            .get(format!("{}/internal/force_flush", vm.url))
            .send();
        std::thread::sleep(Duration::from_secs(2));
        peers.push(vm);
    } else {
        eprintln!("victoria-metrics not installed; comparing with Prometheus only");
    }

    let mut rows = Vec::new();
    for (range_name, range_ms) in [
        ("1h", 3_600_000),
        ("6h", 6 * 3_600_000),
        ("24h", DAY_MS),
        ("7d", 7 * DAY_MS),
    ] {
        let step = (range_ms / 250).max(15_000);
        for (name, q) in support::QUERIES {
            let mut qs = form_urlencoded::Serializer::new(String::new());
            qs.append_pair("query", q)
                .append_pair("start", &format!("{}", (end - range_ms) as f64 / 1000.0))
                .append_pair("end", &format!("{}", end as f64 / 1000.0))
                .append_pair("step", &format!("{}", step as f64 / 1000.0));
            let qs = qs.finish();
            // The peers take turns, one request each, so a swing in the
            // host's speed falls on all of them alike.
            let urls: Vec<String> = peers
                .iter()
                .map(|p| format!("{}/api/v1/query_range?{qs}", p.url))
                .collect();
            let mut times = vec![Vec::with_capacity(RUNS); peers.len()];
            let mut series_counts = vec![0; peers.len()];
            for _ in 0..RUNS {
                for (i, p) in peers.iter().enumerate() {
                    let t = Instant::now();
                    let body: serde_json::Value = client
                        .get(&urls[i])
                        .send()
                        .expect("query")
                        .json()
                        .expect("json");
                    times[i].push(t.elapsed().as_secs_f64() * 1000.0);
                    assert_eq!(body["status"], "success", "{}: {q}: {body}", p.name);
                    series_counts[i] = body["data"]["result"].as_array().map(Vec::len).unwrap_or(0);
                }
            }
            let medians: Vec<f64> = times
                .iter_mut()
                .map(|t| {
                    t.sort_by(|a, b| a.total_cmp(b));
                    t[RUNS / 2]
                })
                .collect();
            rows.push((
                format!("{name} ({range_name}, step {}s)", step / 1000),
                medians,
                series_counts,
            ));
        }
    }
    let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
    println!(
        "| query | {} | infermon / Prometheus |",
        names
            .iter()
            .map(|n| format!("{n} ms"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(names.len()));
    let mut ratios = Vec::new();
    for (label, medians, counts) in &rows {
        let ratio = medians[0] / medians[1];
        ratios.push(ratio);
        let cells: Vec<String> = medians
            .iter()
            .zip(counts)
            .map(|(m, c)| format!("{m:.2} ({c} series)"))
            .collect();
        println!("| {label} | {} | {ratio:.2} |", cells.join(" | "));
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!(
        "\nmedian ratio infermon/Prometheus: {:.2}; worst: {:.2}; {RUNS} runs per cell, medians",
        ratios[ratios.len() / 2],
        ratios[ratios.len() - 1]
    );
}
