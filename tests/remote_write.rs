//! remote_write end to end: the real binary scraping itself and writing to a
//! real VictoriaMetrics and a real Prometheus (`--web.enable-remote-write-receiver`),
//! an outage of the destination, `kill -9` of infermon during an outage, and
//! a destination that refuses a batch with 400.

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infermon::model::STALE_NAN_BITS;
use prost::Message;
use support::{TestServer, client, free_port, wait_http_ok};

/// How long VictoriaMetrics is down in the outage test (the issue asks for 2 minutes).
const OUTAGE: Duration = Duration::from_secs(120);
/// How long it is down around the `kill -9` restart.
const KILL_OUTAGE: Duration = Duration::from_secs(20);

/// Series → (timestamp ms → value).
type Samples = BTreeMap<String, BTreeMap<i64, f64>>;

/// A peer process, stopped on drop.
struct Peer {
    child: Option<Child>,
    args: Vec<String>,
    program: &'static str,
    port: u16,
}

impl Peer {
    fn spawn(program: &'static str, args: Vec<String>, port: u16, ready: &str) -> Peer {
        let mut p = Peer {
            child: None,
            args,
            program,
            port,
        };
        p.start(ready);
        p
    }

    fn start(&mut self, ready: &str) {
        let child = Command::new(self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} is missing ({e}): run scripts/install-test-deps.sh",
                    self.program
                )
            });
        self.child = Some(child);
        assert!(
            wait_http_ok(&self.url(ready), Duration::from_secs(60)),
            "{} did not become ready",
            self.program
        );
    }

    /// Graceful stop (SIGTERM, VictoriaMetrics flushes what it buffered).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn victoria_metrics(dir: &Path) -> Peer {
    let port = free_port();
    Peer::spawn(
        "victoria-metrics",
        vec![
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-storageDataPath={}", dir.display()),
            "-retentionPeriod=10y".into(),
            // Recent samples are queryable at once, and nothing is cached.
            "-search.latencyOffset=0s".into(),
            "-search.disableCache".into(),
            "-loggerLevel=ERROR".into(),
        ],
        port,
        "/health",
    )
}

fn prometheus(dir: &Path) -> Peer {
    let port = free_port();
    std::fs::create_dir_all(dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    Peer::spawn(
        "prometheus",
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".into(),
            "--log.level=error".into(),
        ],
        port,
        "/-/ready",
    )
}

fn series_key(metric: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut pairs: Vec<String> = metric
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Raw samples of `selector` up to `end_ms` from a Prometheus-API server
/// (infermon or Prometheus): an instant query of a range selector.
fn query_raw(base: &str, selector: &str, end_ms: i64) -> Samples {
    let resp: serde_json::Value = client()
        .get(format!("{base}/api/v1/query"))
        .query(&[
            ("query", format!("{selector}[2h]")),
            ("time", format!("{:.3}", end_ms as f64 / 1000.0)),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(resp["status"], "success", "{resp}");
    let mut out = Samples::new();
    for s in resp["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let key = series_key(s["metric"].as_object().unwrap());
        let e = out.entry(key).or_default();
        for v in s["values"].as_array().unwrap() {
            let t = (v[0].as_f64().unwrap() * 1000.0).round() as i64;
            let x: f64 = v[1].as_str().unwrap().parse().unwrap();
            assert!(e.insert(t, x).is_none(), "duplicate timestamp {t}");
        }
    }
    out
}

/// Raw samples from VictoriaMetrics' export API (every stored sample, so a
/// duplicate would show up as a repeated timestamp). Stale markers are left out.
fn vm_export(vm: &Peer, selector: &str, end_ms: i64) -> Samples {
    let _ = client().get(vm.url("/internal/force_flush")).send();
    let text = client()
        .get(vm.url("/api/v1/export"))
        .query(&[
            ("match[]", selector.to_string()),
            ("start", "0".to_string()),
            ("end", format!("{:.3}", end_ms as f64 / 1000.0)),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut out = Samples::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = series_key(v["metric"].as_object().unwrap());
        let e = out.entry(key.clone()).or_default();
        let ts = v["timestamps"].as_array().unwrap();
        let vals = v["values"].as_array().unwrap();
        for (t, x) in ts.iter().zip(vals) {
            let t = t.as_i64().unwrap();
            let x = match x {
                serde_json::Value::Number(n) => n.as_f64().unwrap(),
                _ => continue, // NaN (stale marker)
            };
            if x.is_nan() {
                continue;
            }
            assert!(
                e.insert(t, x).is_none(),
                "duplicate sample at {t} for {key}"
            );
        }
    }
    out.retain(|_, v| !v.is_empty());
    out
}

/// Keeps samples at or before `end_ms` and adds labels to every series key.
fn cut(samples: &Samples, end_ms: i64, add: &[(&str, &str)]) -> Samples {
    samples
        .iter()
        .map(|(k, v)| {
            let mut parts: Vec<String> = k.split(',').map(str::to_string).collect();
            parts.extend(add.iter().map(|(n, v)| format!("{n}={v}")));
            parts.sort();
            (
                parts.join(","),
                v.range(..=end_ms)
                    .map(|(t, x)| (*t, *x))
                    .collect::<BTreeMap<_, _>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// A short description of how two sample sets differ.
fn diff(a: &Samples, b: &Samples) -> String {
    let mut out = String::new();
    for (k, va) in a {
        match b.get(k) {
            None => out.push_str(&format!("only left: {k} ({} samples)\n", va.len())),
            Some(vb) if va != vb => out.push_str(&format!(
                "differs: {k}: {} vs {} samples\n",
                va.len(),
                vb.len()
            )),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push_str(&format!("only right: {k}\n"));
    }
    out.chars().take(3000).collect()
}

fn count(s: &Samples) -> usize {
    s.values().map(BTreeMap::len).sum()
}

/// Retries `check` until it returns `None` or `timeout` passes; panics with its last message.
fn eventually(timeout: Duration, mut check: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            None => return,
            Some(msg) if Instant::now() > deadline => panic!("{msg}"),
            Some(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A metric value from infermon's /metrics.
fn metric(server: &TestServer, name: &str, remote: &str) -> f64 {
    let text = client()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    support::parse_exposition(&text)
        .into_iter()
        .find(|s| {
            s.name == name
                && s.labels
                    .iter()
                    .any(|(k, v)| k == "remote_name" && v == remote)
        })
        .map(|s| s.value)
        .unwrap_or(f64::NAN)
}

fn config(storage: &str, remotes: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0}}\nstorage: {{path: '{storage}', min_free_disk: 1MB}}\n\
         global: {{scrape_interval: 1s, scrape_timeout: 1s, external_labels: {{box: gpu-07}}}}\n\
         remote_write:\n{remotes}"
    )
}

fn remote(name: &str, url: &str, extra: &str) -> String {
    format!(
        "- name: {name}\n  url: {url}\n  queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}\n{extra}"
    )
}

const SELF: &str = r#"{job="infermon"}"#;

#[test]
fn victoria_metrics_and_prometheus_receive_identical_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let vm = victoria_metrics(&tmp.path().join("vm"));
    let prom = prometheus(&tmp.path().join("prom"));
    let remotes = remote("vm", &vm.url("/api/v1/write"), "")
        + &remote(
            "prom",
            &prom.url("/api/v1/write"),
            "  write_relabel_configs: [{source_labels: [__name__], regex: 'process_.*', action: drop}]\n",
        );
    let server = TestServer::start(&config("{dir}/data", &remotes));
    // Several self-scrapes stored, and both destinations sent to.
    server.wait_metric(
        "infermon_scrape_scrapes_total",
        &[("job", "infermon")],
        6.0,
        Duration::from_secs(60),
    );
    for remote in ["vm", "prom"] {
        server.wait_metric(
            "infermon_remote_write_samples_sent_total",
            &[("remote_name", remote)],
            1.0,
            Duration::from_secs(60),
        );
    }
    let end = now_ms() - 1000;
    let local = cut(
        &query_raw(&server.url(""), SELF, end),
        end,
        &[("box", "gpu-07")],
    );
    assert!(count(&local) > 100, "too little scraped: {}", count(&local));
    assert!(local.keys().any(|k| k.contains("__name__=process_")));

    // VictoriaMetrics: every local sample, external label added, values equal
    // to 12 significant digits (VictoriaMetrics keeps floats as decimal
    // mantissa and exponent: node_time_seconds and load averages come back
    // rounded in the last bits; Prometheus below must match bit for bit).
    eventually(Duration::from_secs(30), || {
        let got = cut(&vm_export(&vm, SELF, end), end, &[]);
        let same_keys = got.keys().eq(local.keys());
        let close = same_keys
            && got.iter().zip(&local).all(|((_, a), (_, b))| {
                a.len() == b.len()
                    && a.iter().zip(b).all(|((ta, xa), (tb, xb))| {
                        ta == tb && (xa == xb || ((xa - xb) / xb).abs() < 1e-12)
                    })
            });
        (!close).then(|| {
            format!(
                "VictoriaMetrics differs from infermon:\n{}",
                diff(&got, &local)
            )
        })
    });

    // Prometheus: the same minus the relabel-dropped process_* series.
    let mut want = local.clone();
    want.retain(|k, _| !k.contains("__name__=process_"));
    eventually(Duration::from_secs(30), || {
        let got = cut(&query_raw(&prom.url(""), SELF, end), end, &[]);
        (got != want).then(|| format!("Prometheus differs from infermon:\n{}", diff(&got, &want)))
    });
    // And the two engines agree with each other on what both have.
    let from_vm = cut(&vm_export(&vm, SELF, end), end, &[]);
    let from_prom = cut(&query_raw(&prom.url(""), SELF, end), end, &[]);
    for (k, v) in &from_prom {
        let other = &from_vm[k];
        assert_eq!(
            v.keys().collect::<Vec<_>>(),
            other.keys().collect::<Vec<_>>(),
            "{k}"
        );
        for (t, x) in v {
            let y = other[t];
            assert!(
                x == &y || ((x - y) / y).abs() < 1e-12,
                "{k} at {t}: {x} vs {y}"
            );
        }
    }
    assert!(metric(&server, "infermon_remote_write_samples_sent_total", "vm") > 100.0);
    assert_eq!(
        metric(&server, "infermon_remote_write_samples_failed_total", "vm"),
        0.0
    );
    assert!(
        metric(
            &server,
            "infermon_remote_write_samples_dropped_total",
            "prom"
        ) > 0.0
    );
}

/// Waits until VictoriaMetrics holds exactly infermon's samples up to `end`.
fn assert_caught_up(server: &TestServer, vm: &Peer, end: i64, timeout: Duration) -> usize {
    let local = cut(
        &query_raw(&server.url(""), SELF, end),
        end,
        &[("box", "gpu-07")],
    );
    eventually(timeout, || {
        let got = cut(&vm_export(vm, SELF, end), end, &[]);
        let same = got.len() == local.len()
            && got
                .iter()
                .zip(&local)
                .all(|((ka, a), (kb, b))| ka == kb && a.keys().eq(b.keys()));
        (!same).then(|| {
            format!(
                "VictoriaMetrics has {} samples, infermon {}:\n{}",
                count(&got),
                count(&local),
                diff(&got, &local)
            )
        })
    });
    count(&local)
}

#[test]
fn an_outage_of_the_destination_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vm = victoria_metrics(&tmp.path().join("vm"));
    let server = TestServer::start(&config(
        "{dir}/data",
        &remote("vm", &vm.url("/api/v1/write"), ""),
    ));
    // Delivering before the outage.
    server.wait_metric(
        "infermon_remote_write_samples_sent_total",
        &[("remote_name", "vm")],
        1.0,
        Duration::from_secs(60),
    );
    vm.stop();
    let down_at = now_ms();
    // While it is down the backlog grows and the lag shows it.
    let lag = server.wait_metric(
        "infermon_remote_write_lag_seconds",
        &[("remote_name", "vm")],
        OUTAGE.as_secs_f64() * 0.5,
        OUTAGE * 2,
    );
    assert!(lag > OUTAGE.as_secs_f64() * 0.5, "lag {lag}");
    assert!(metric(&server, "infermon_remote_write_samples_pending", "vm") > 0.0);
    vm.start("/health");
    let end = now_ms();
    let n = assert_caught_up(&server, &vm, end, Duration::from_secs(60));
    let during: usize = cut(&query_raw(&server.url(""), SELF, end), end, &[])
        .values()
        .map(|v| v.range(down_at..).count())
        .sum();
    assert!(
        during > 100,
        "only {during} samples scraped during the outage"
    );
    assert!(n > during);
    assert_eq!(
        metric(&server, "infermon_remote_write_samples_failed_total", "vm"),
        0.0
    );
}

#[test]
fn kill_9_during_an_outage_catches_up_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("infermon");
    let mut vm = victoria_metrics(&tmp.path().join("vm"));
    let cfg = config(
        &data.display().to_string(),
        &remote("vm", &vm.url("/api/v1/write"), ""),
    );
    let mut first = TestServer::start(&cfg);
    let sent = |s: &TestServer| {
        s.wait_metric(
            "infermon_remote_write_samples_sent_total",
            &[("remote_name", "vm")],
            1.0,
            Duration::from_secs(60),
        )
    };
    sent(&first);
    vm.stop();
    // Scrapes pile up undelivered before the kill.
    let scrapes = |s: &TestServer, min: f64| {
        s.wait_metric(
            "infermon_scrape_scrapes_total",
            &[("job", "infermon")],
            min,
            KILL_OUTAGE * 3,
        )
    };
    let before = scrapes(&first, 1.0);
    scrapes(&first, before + KILL_OUTAGE.as_secs_f64() / 2.0);
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let killed_at = now_ms();
    let server = TestServer::start(&cfg);
    // And after the restart, still with the destination down.
    scrapes(&server, KILL_OUTAGE.as_secs_f64() / 2.0);
    vm.start("/health");
    let end = now_ms();
    let local = query_raw(&server.url(""), SELF, end);
    let before_kill: usize = local.values().map(|v| v.range(..killed_at).count()).sum();
    assert!(
        before_kill > 100,
        "only {before_kill} samples before the kill"
    );
    assert_caught_up(&server, &vm, end, Duration::from_secs(60));
}

/// One request as the fake destination saw it.
struct Received {
    headers: Vec<(String, String)>,
    request: infermon::remote::proto::WriteRequest,
}

/// A destination that answers 400 to its first request, 503 to its second,
/// and 204 after that. It also serves `/metrics` for infermon to scrape:
/// `flaky 1` for the first three scrapes, then without it (a stale marker).
fn refusing_destination() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen2 = seen.clone();
    let scrapes: Arc<Mutex<u32>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (seen, scrapes) = (seen2.clone(), scrapes.clone());
            std::thread::spawn(move || serve_connection(stream, &seen, &scrapes));
        }
    });
    (port, seen)
}

fn serve_connection(stream: TcpStream, seen: &Mutex<Vec<Received>>, scrapes: &Mutex<u32>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut headers = Vec::new();
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if request_line.starts_with("GET /metrics") {
            let n = {
                let mut n = scrapes.lock().unwrap();
                *n += 1;
                *n
            };
            let text = if n <= 3 {
                "flaky 1\nsteady 1\n"
            } else {
                "steady 1\n"
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            );
            if out.write_all(answer.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let request = infermon::remote::proto::WriteRequest::decode(raw.as_slice()).unwrap();
        let n = {
            let mut s = seen.lock().unwrap();
            s.push(Received { headers, request });
            s.len()
        };
        let answer = match n {
            1 => "HTTP/1.1 400 Bad Request\r\nContent-Length: 21\r\n\r\nout of bounds samples",
            2 => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
            _ => "HTTP/1.1 204 No Content\r\n\r\n",
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_refused_batch_is_counted_and_does_not_block_the_queue() {
    let (port, seen) = refusing_destination();
    let cfg = config(
        "{dir}/data",
        &remote("fake", &format!("http://127.0.0.1:{port}/api/v1/write"), ""),
    ) + &format!(
        "scrape_configs:\n- job_name: fake\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    );
    let server = TestServer::start(&cfg);
    let stale_sent = |seen: &[Received]| {
        seen.iter().flat_map(|r| &r.request.timeseries).any(|t| {
            t.labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == "flaky")
                && t.samples
                    .iter()
                    .any(|s| s.value.to_bits() == STALE_NAN_BITS)
        })
    };
    eventually(Duration::from_secs(30), || {
        let seen = seen.lock().unwrap();
        (seen.len() < 6 || !stale_sent(&seen)).then(|| {
            format!(
                "{} requests arrived, stale marker sent: {}",
                seen.len(),
                stale_sent(&seen)
            )
        })
    });
    let seen = seen.lock().unwrap();
    // The first batch was refused and dropped; the 503 one was sent again.
    let refused = seen[0]
        .request
        .timeseries
        .iter()
        .map(|t| t.samples.len())
        .sum::<usize>();
    assert_eq!(
        seen[1].request, seen[2].request,
        "the 503 batch was not retried as it was"
    );
    let newest = |r: &Received| {
        r.request
            .timeseries
            .iter()
            .flat_map(|t| t.samples.iter().map(|s| s.timestamp))
            .max()
            .unwrap_or(0)
    };
    assert!(
        newest(&seen[3]) > newest(&seen[0]),
        "later batches were not delivered"
    );
    for r in seen.iter() {
        let h = |k: &str| {
            r.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        assert_eq!(h("content-encoding"), "snappy");
        assert_eq!(h("content-type"), "application/x-protobuf");
        assert_eq!(h("x-prometheus-remote-write-version"), "0.1.0");
        assert!(h("user-agent").starts_with("infermon/"));
        for ts in &r.request.timeseries {
            let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "labels not sorted");
            assert!(
                ts.labels
                    .iter()
                    .any(|l| l.name == "box" && l.value == "gpu-07")
            );
            assert!(
                ts.samples
                    .windows(2)
                    .all(|w| w[0].timestamp < w[1].timestamp)
            );
        }
    }
    drop(seen);
    eventually(Duration::from_secs(5), || {
        let failed = metric(
            &server,
            "infermon_remote_write_samples_failed_total",
            "fake",
        );
        (failed != refused as f64).then(|| format!("failed counter {failed}, refused {refused}"))
    });
    assert!(server.log().contains("refused a batch"), "{}", server.log());
    assert!(metric(&server, "infermon_remote_write_retries_total", "fake") >= 1.0);
}
