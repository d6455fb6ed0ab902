//! Tests against a real Prometheus (Debian package).
//!
//! Differential test: the same generated data in infermon's engine and in a
//! real Prometheus (Debian package; data imported with
//! `promtool tsdb create-blocks-from openmetrics`), then a few hundred
//! generated queries over every function/aggregation/operator family, several
//! ranges and steps, compared with relative tolerance 1e-6.
//!
//! Debian ships Prometheus 2.42, whose range selectors and lookback are
//! closed on the left where Prometheus 3 (what infermon follows) is open.
//! Samples therefore sit at `…15s + 7ms`, never on a window edge, and
//! evaluation times sit at `:30` so subquery steps never fall on an edge either.

use crate::support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use infermon::model::{Labels, Sample};
use infermon::promql::{Engine, EngineOptions};
use infermon::storage::{AppendSample, Appender, MemoryStorage};
use serde_json::Value;

const BASE_MS: i64 = 1_700_000_000_000;
const SCRAPE_MS: i64 = 15_000;
const SAMPLES: i64 = 4 * 60 * 2; // two hours

/// A small deterministic generator (no dependency, same data every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn generate() -> Vec<(Labels, Vec<Sample>)> {
    let mut rng = Lcg(42);
    let mut out = Vec::new();
    let ts = |i: i64| BASE_MS + i * SCRAPE_MS + 7;
    for job in ["api", "web"] {
        for instance in ["a-1", "b-2", "c-3"] {
            for code in ["200", "500"] {
                let labels = Labels::new([
                    ("__name__", "diff_requests_total"),
                    ("job", job),
                    ("instance", instance),
                    ("code", code),
                ]);
                let mut v = 0.0;
                let mut samples = Vec::new();
                for i in 0..SAMPLES {
                    // One counter reset in one series.
                    if job == "api" && instance == "b-2" && code == "200" && i == 200 {
                        v = 0.0;
                    }
                    v += (rng.next() * 10.0).floor() * if code == "500" { 0.1 } else { 1.0 };
                    samples.push(Sample {
                        timestamp_ms: ts(i),
                        value: v,
                    });
                }
                out.push((labels, samples));
            }
            let labels = Labels::new([
                ("__name__", "diff_temp"),
                ("job", job),
                ("instance", instance),
            ]);
            let mut v = 50.0;
            let samples = (0..SAMPLES)
                .map(|i| {
                    v = (v + rng.next() * 10.0 - 5.0_f64).clamp(0.0, 100.0);
                    Sample {
                        timestamp_ms: ts(i),
                        value: (v * 1000.0).round() / 1000.0,
                    }
                })
                .collect();
            out.push((labels, samples));
        }
        let bounds = ["0.1", "0.5", "1", "5", "+Inf"];
        let mut counts = [0.0; 5];
        let mut series: Vec<Vec<Sample>> = vec![Vec::new(); 5];
        for i in 0..SAMPLES {
            let n = (rng.next() * 20.0).floor();
            for _ in 0..n as usize {
                let obs = rng.next() * rng.next() * 6.0;
                for (b, le) in bounds.iter().enumerate() {
                    let bound: f64 = if *le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    if obs <= bound {
                        counts[b] += 1.0;
                    }
                }
            }
            for b in 0..5 {
                series[b].push(Sample {
                    timestamp_ms: ts(i),
                    value: counts[b],
                });
            }
        }
        for (b, le) in bounds.iter().enumerate() {
            let labels = Labels::new([
                ("__name__", "diff_latency_seconds_bucket"),
                ("job", job),
                ("le", le),
            ]);
            out.push((labels, series[b].clone()));
        }
    }
    out
}

fn openmetrics(data: &[(Labels, Vec<Sample>)]) -> String {
    let mut text = String::new();
    for (labels, samples) in data {
        let name = labels.metric_name().unwrap();
        let pairs: Vec<String> = labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        for s in samples {
            text.push_str(&format!(
                "{name}{{{}}} {} {}.{:03}\n",
                pairs.join(","),
                s.value,
                s.timestamp_ms / 1000,
                s.timestamp_ms % 1000
            ));
        }
    }
    text.push_str("# EOF\n");
    text
}

/// The generated queries: every family, crossed with selectors and ranges.
fn queries() -> Vec<String> {
    let counters = [
        "diff_requests_total",
        "diff_requests_total{code=\"200\"}",
        "diff_requests_total{job=~\"a.*\"}",
    ];
    let gauges = ["diff_temp", "diff_temp{instance!=\"a-1\"}"];
    let mut q = Vec::new();
    for c in counters {
        for r in ["1m", "5m", "17m"] {
            for f in ["rate", "increase", "irate", "resets", "changes"] {
                q.push(format!("{f}({c}[{r}])"));
            }
        }
        q.push(format!("rate({c}[5m] offset 10m)"));
        q.push(format!("sum by (job) (rate({c}[5m]))"));
        q.push(format!("sum without (instance, code) (increase({c}[10m]))"));
    }
    for g in gauges {
        for r in ["1m", "5m", "17m"] {
            for f in [
                "delta",
                "idelta",
                "deriv",
                "avg_over_time",
                "min_over_time",
                "max_over_time",
                "sum_over_time",
                "count_over_time",
                "stddev_over_time",
                "stdvar_over_time",
                "last_over_time",
                "present_over_time",
            ] {
                q.push(format!("{f}({g}[{r}])"));
            }
            q.push(format!("quantile_over_time(0.3, {g}[{r}])"));
            q.push(format!("predict_linear({g}[{r}], 600)"));
        }
        for f in [
            "abs",
            "ceil",
            "floor",
            "sqrt",
            "ln",
            "log2",
            "log10",
            "exp",
            "sgn",
            "timestamp",
            "sin",
            "cos",
            "deg",
        ] {
            let arg = if f == "exp" || f == "sgn" {
                format!("({g} / 10 - 5)")
            } else {
                g.to_string()
            };
            q.push(format!("{f}({arg})"));
        }
        q.push(format!("round({g}, 5)"));
        q.push(format!("clamp({g}, 20, 60)"));
        q.push(format!("clamp_min({g}, 40)"));
        q.push(format!("clamp_max({g}, 40)"));
        q.push(format!("-{g}"));
        q.push(format!("{g} offset 7m"));
        q.push(format!("{g} @ 1700003600"));
        q.push(format!("hour(timestamp({g}))"));
        q.push(format!("minute(timestamp({g}))"));
        q.push(format!("day_of_week(timestamp({g}))"));
        q.push(format!("time() - timestamp({g})"));
        q.push(format!(
            "label_replace({g}, \"host\", \"$1\", \"instance\", \"(.*)-.*\")"
        ));
        q.push(format!(
            "label_join({g}, \"both\", \"/\", \"job\", \"instance\")"
        ));
        for agg in [
            "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group",
        ] {
            q.push(format!("{agg}({g})"));
            q.push(format!("{agg} by (job) ({g})"));
            q.push(format!("{agg} without (instance) ({g})"));
        }
        q.push(format!("topk(2, {g})"));
        q.push(format!("bottomk(1, {g}) by (job)"));
        q.push(format!("quantile(0.9, {g})"));
        q.push(format!("quantile by (job) (0.25, {g})"));
        q.push(format!("count_values(\"value\", round({g} / 10))"));
        // `atan2` is left out: Prometheus 2.42 kept the metric name on it, 3.x drops it.
        for op in ["+", "-", "*", "/", "%", "^"] {
            q.push(format!("{g} {op} 3"));
            q.push(format!("2 {op} {g}"));
        }
        for op in ["==", "!=", ">", "<", ">=", "<="] {
            q.push(format!("{g} {op} 50"));
            q.push(format!("{g} {op} bool 50"));
            q.push(format!("50 {op} {g}"));
        }
        q.push(format!("max_over_time(deriv({g}[5m])[20m:1m])"));
        q.push(format!("avg_over_time({g}[10m:2m] offset 5m)"));
    }
    q.extend(
        [
            "diff_temp - on(job, instance) group_left sum by (job, instance) (rate(diff_requests_total[5m]))",
            "sum by (job, instance) (rate(diff_requests_total[5m])) / on(job, instance) diff_temp",
            "rate(diff_requests_total{code=\"500\"}[5m]) / ignoring(code) rate(diff_requests_total{code=\"200\"}[5m])",
            "rate(diff_requests_total[5m]) / ignoring(code) group_left sum without (code) (rate(diff_requests_total[5m]))",
            "sum by (job) (diff_temp) * on(job) group_right diff_temp",
            "diff_temp * on(job) group_right sum by (job) (diff_temp)",
            "diff_temp > bool on(job, instance) (diff_temp offset 5m)",
            "diff_temp and diff_temp > 50",
            "diff_temp or diff_requests_total",
            "diff_temp unless diff_temp < 30",
            "diff_temp and on(instance) diff_temp{job=\"api\"}",
            "diff_requests_total unless ignoring(code) diff_requests_total{code=\"500\"}",
            "histogram_quantile(0.9, sum by (le, job) (rate(diff_latency_seconds_bucket[5m])))",
            "histogram_quantile(0.5, rate(diff_latency_seconds_bucket[10m]))",
            "histogram_quantile(0.99, sum by (le) (increase(diff_latency_seconds_bucket[17m])))",
            "sum(rate(diff_requests_total{code=\"500\"}[5m])) / sum(rate(diff_requests_total[5m])) > 0.01",
            "absent(diff_nonexistent{job=\"x\"})",
            "absent(diff_temp)",
            "absent_over_time(diff_nonexistent[5m])",
            "vector(1) + scalar(sum(diff_temp))",
            "scalar(diff_temp)",
            "time()",
            "sum(diff_temp) / count(diff_temp)",
            "max_over_time(rate(diff_requests_total[1m])[10m:1m])",
            "rate(diff_requests_total[5m] @ 1700003600)",
            "sort_desc(sum by (instance) (diff_temp))",
            "count(count by (instance) (diff_requests_total))",
        ]
        .map(String::from),
    );
    q
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_prometheus(config: &std::path::Path, tsdb: &std::path::Path) -> Prometheus {
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "prometheus is missing: run scripts/install-test-deps.sh (Debian package prometheus)",
        );
    let p = Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = support::client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if client
            .get(format!("{}/-/ready", p.url))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return p;
        }
        assert!(Instant::now() < deadline, "prometheus did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_prometheus(dir: &std::path::Path, om: &str) -> Prometheus {
    let om_path = dir.join("data.om");
    std::fs::write(&om_path, om).unwrap();
    let tsdb = dir.join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&om_path)
        .arg(&tsdb)
        .output()
        .expect(
            "promtool is missing: run scripts/install-test-deps.sh (Debian package prometheus)",
        );
    assert!(
        out.status.success(),
        "promtool import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("prometheus.yml");
    std::fs::File::create(&config)
        .unwrap()
        .write_all(b"global: {}\n")
        .unwrap();
    run_prometheus(&config, &tsdb)
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-9 || diff / a.abs().max(b.abs()) <= 1e-6
}

fn parse_value(v: &Value) -> f64 {
    match v.as_str().unwrap() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        s => s.parse().unwrap(),
    }
}

/// `{labels → [(t, v)]}` of a query_range or query `data`.
fn normalise(data: &Value) -> (String, BTreeMap<String, Vec<(i64, f64)>>) {
    let kind = data["resultType"].as_str().unwrap_or("").to_string();
    let mut out = BTreeMap::new();
    let point = |p: &Value| {
        (
            (p[0].as_f64().unwrap() * 1000.0).round() as i64,
            parse_value(&p[1]),
        )
    };
    match kind.as_str() {
        "matrix" => {
            for s in data["result"].as_array().unwrap() {
                let pts = s["values"].as_array().unwrap().iter().map(point).collect();
                out.insert(s["metric"].to_string(), pts);
            }
        }
        "vector" => {
            for s in data["result"].as_array().unwrap() {
                out.insert(s["metric"].to_string(), vec![point(&s["value"])]);
            }
        }
        "scalar" => {
            out.insert("{}".into(), vec![point(&data["result"])]);
        }
        _ => {}
    }
    (kind, out)
}

fn compare(what: &str, ours: &Value, theirs: &Value) -> Result<(), String> {
    let (k1, a) = normalise(ours);
    let (k2, b) = normalise(theirs);
    if k1 != k2 {
        return Err(format!("{what}: resultType {k1} vs Prometheus {k2}"));
    }
    if a.keys().ne(b.keys()) {
        return Err(format!(
            "{what}: series {:?} vs Prometheus {:?}",
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>()
        ));
    }
    for (k, pa) in &a {
        let pb = &b[k];
        let same = pa.len() == pb.len()
            && pa
                .iter()
                .zip(pb)
                .all(|(x, y)| x.0 == y.0 && close(x.1, y.1));
        if !same {
            return Err(format!("{what}: {k}: {pa:?} vs Prometheus {pb:?}"));
        }
    }
    Ok(())
}

/// How two answers agreed.
enum Agreement {
    /// Same non-empty result.
    Data,
    /// Both empty.
    Empty,
    /// Both refused the query.
    BothErrors,
}

/// Both answered the same, or both refused the query.
fn agree(
    what: &str,
    ours: Result<infermon::promql::Value, infermon::promql::PromqlError>,
    theirs: Result<Value, String>,
) -> Result<Agreement, String> {
    match (ours, theirs) {
        (Ok(v), Ok(t)) => {
            compare(what, &serde_json::to_value(&v).unwrap(), &t)?;
            Ok(if normalise(&t).1.is_empty() {
                Agreement::Empty
            } else {
                Agreement::Data
            })
        }
        (Err(_), Err(_)) => Ok(Agreement::BothErrors),
        (Err(e), Ok(_)) => Err(format!("{what}: infermon error {e}, Prometheus answered")),
        (Ok(_), Err(t)) => Err(format!("{what}: Prometheus error {t}, infermon answered")),
    }
}

/// Serves infermon's Prometheus API over `engine` on a free port.
fn serve_api(engine: Engine) -> (String, tokio::runtime::Runtime) {
    serve_api_with(engine, Labels::default())
}

fn serve_api_with(engine: Engine, external_labels: Labels) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = infermon::web::api::routes(infermon::web::api::ApiState {
        engine,
        config_yaml: Arc::new(arc_swap::ArcSwap::from_pointee(String::new())),
        flags: Arc::new(Vec::new()),
        start_time_ms: BASE_MS,
        storage_retention: "15d".into(),
        external_labels: Arc::new(external_labels),
        reload_status: Arc::new(
            infermon::web::ReloadStatus::new(&prometheus::Registry::new()).expect("gauges"),
        ),
    });
    rt.spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rt)
}

/// promtool's output lines, sorted (result order is not part of the API).
fn promtool(args: &[String]) -> Vec<String> {
    let out = Command::new("promtool")
        .arg("query")
        .args(args)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn engine_matches_prometheus_on_generated_queries() {
    let data = generate();
    let store = Arc::new(MemoryStorage::new());
    let batch: Vec<AppendSample> = data
        .iter()
        .flat_map(|(l, s)| {
            s.iter().map(|x| AppendSample {
                labels: l.clone(),
                sample: *x,
            })
        })
        .collect();
    store.append(&batch).unwrap();
    let engine = Engine::new(store, EngineOptions::default());

    let dir = tempfile::tempdir().unwrap();
    let prom = start_prometheus(dir.path(), &openmetrics(&data));
    let client = support::client();
    // `Err(errorType)` when Prometheus refuses the query.
    let ask = |path: &str, params: &[(&str, String)]| -> Result<Value, String> {
        let mut qs = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            qs.append_pair(k, v);
        }
        let r = client
            .get(format!("{}{path}?{}", prom.url, qs.finish()))
            .send()
            .expect("prometheus answers");
        let body: Value = r.json().expect("prometheus JSON");
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(body["errorType"].to_string())
        }
    };

    let secs = |ms: i64| format!("{}", ms as f64 / 1000.0);
    // Evaluation times at :30 (see the module comment).
    let start = BASE_MS + 20 * 60_000 + 30_000;
    let end = BASE_MS + 110 * 60_000 + 30_000;
    let queries = queries();
    let mut failures = Vec::new();
    let mut compared = 0;
    let (mut with_data, mut empty, mut both_errors) = (0, 0, 0);
    for q in &queries {
        for step in [60_000, 300_000, 1_380_000] {
            let ours = engine.range(q, start, end, step);
            let theirs = ask(
                "/api/v1/query_range",
                &[
                    ("query", q.clone()),
                    ("start", secs(start)),
                    ("end", secs(end)),
                    ("step", secs(step)),
                ],
            );
            compared += 1;
            match agree(&format!("{q} (range, step {}s)", step / 1000), ours, theirs) {
                Ok(Agreement::Data) => with_data += 1,
                Ok(Agreement::Empty) => empty += 1,
                Ok(Agreement::BothErrors) => both_errors += 1,
                Err(e) => failures.push(e),
            }
        }
        for t in [start, BASE_MS + 61 * 60_000 + 30_000] {
            let ours = engine.instant(q, t);
            let theirs = ask("/api/v1/query", &[("query", q.clone()), ("time", secs(t))]);
            compared += 1;
            match agree(&format!("{q} (instant at {})", secs(t)), ours, theirs) {
                Ok(Agreement::Data) => with_data += 1,
                Ok(Agreement::Empty) => empty += 1,
                Ok(Agreement::BothErrors) => both_errors += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    println!(
        "{} queries, {compared} comparisons: {with_data} equal with data, {empty} both empty, {both_errors} both errors, {} differences",
        queries.len(),
        failures.len()
    );
    assert!(
        with_data * 10 >= compared * 9,
        "most comparisons must carry data"
    );
    assert!(
        queries.len() >= 300,
        "the generator should produce a few hundred queries"
    );
    assert!(
        failures.is_empty(),
        "{} differences from Prometheus:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The real promtool prints the same against both servers.
    let (ours, _rt) = serve_api(engine.clone());
    let t = secs(BASE_MS + 61 * 60_000 + 30_000);
    let (s0, s1) = (secs(start), secs(start + 10 * 60_000));
    let cases: Vec<Vec<&str>> = vec![
        vec!["instant", "--time", &t, "URL", "diff_temp"],
        vec![
            "instant",
            "--time",
            &t,
            "URL",
            "count by (job) (diff_requests_total)",
        ],
        vec![
            "instant",
            "--time",
            &t,
            "URL",
            "max(diff_requests_total) by (code)",
        ],
        vec!["instant", "--time", &t, "URL", "sum(diff_temp) > bool 1e9"],
        vec![
            "range",
            "--start",
            &s0,
            "--end",
            &s1,
            "--step",
            "1m",
            "URL",
            "diff_temp{instance=\"a-1\"}",
        ],
        vec![
            "range",
            "--start",
            &s0,
            "--end",
            &s1,
            "--step",
            "150s",
            "URL",
            "diff_latency_seconds_bucket{le=\"+Inf\"}",
        ],
        vec![
            "series",
            "--start",
            &s0,
            "--end",
            &s1,
            "URL",
            "--match",
            "diff_temp",
            "--match",
            "diff_requests_total{code=\"500\"}",
        ],
        vec!["labels", "--start", &s0, "--end", &s1, "URL", "job"],
        vec!["labels", "--start", &s0, "--end", &s1, "URL", "le"],
    ];
    for case in cases {
        let with = |url: &str| -> Vec<String> {
            case.iter()
                .map(|a| {
                    if *a == "URL" {
                        url.to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let got = promtool(&with(&ours));
        let want = promtool(&with(&prom.url));
        assert!(!want.is_empty(), "{case:?}: Prometheus printed nothing");
        assert_eq!(got, want, "promtool query {case:?}");
    }
}

#[test]
fn prometheus_scrapes_federate() {
    let now = infermon::util::now_ms();
    let store = Arc::new(MemoryStorage::new());
    let put = |name: &str, t: i64, v: f64| AppendSample {
        labels: Labels::new([
            ("__name__", name),
            ("job", "node"),
            ("instance", "gpu:9100"),
        ]),
        sample: Sample {
            timestamp_ms: t,
            value: v,
        },
    };
    store
        .append(&[
            put("fed_up", now - 5000, 1.0),
            put("fed_temp", now - 5000, 21.5),
            put("fed_gone", now - 20_000, 3.0),
            put("fed_gone", now - 5000, infermon::model::stale_nan()),
            put("fed_old", now - 3_600_000, 7.0),
            put("other_metric", now - 5000, 9.0),
        ])
        .unwrap();
    let engine = Engine::new(store, EngineOptions::default());
    let (url, _rt) = serve_api_with(engine, Labels::new([("box", "gpu-07")]));

    let client = support::client();
    let text = client
        .get(format!("{url}/federate?match[]={{__name__=~%22fed_.*%22}}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("# TYPE fed_up untyped\n"), "{text}");
    assert!(
        text.contains(&format!(
            "fed_up{{box=\"gpu-07\",instance=\"gpu:9100\",job=\"node\"}} 1 {}",
            now - 5000
        )),
        "{text}"
    );
    assert!(
        !text.contains("fed_gone") && !text.contains("fed_old") && !text.contains("other_metric"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let target = url.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    \
             metrics_path: /federate\n    params:\n      'match[]': ['{{__name__=~\"fed_.*\"}}']\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let prom = run_prometheus(&config, &dir.path().join("tsdb"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let series = loop {
        let body: Value = client
            .get(format!(
                "{}/api/v1/query?query=%7B__name__%3D~%22fed_.*%22%7D",
                prom.url
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let result = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if result.len() >= 2 || Instant::now() > deadline {
            break result;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut got: Vec<(String, String)> = series
        .iter()
        .map(|s| {
            (
                s["metric"]["__name__"].as_str().unwrap_or("").to_string(),
                s["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("fed_temp".to_string(), "21.5".to_string()),
            ("fed_up".to_string(), "1".to_string())
        ]
    );
    for s in &series {
        assert_eq!(s["metric"]["box"], "gpu-07", "{s}");
        assert_eq!(
            s["metric"]["job"], "node",
            "honor_labels keeps infermon's job label: {s}"
        );
    }
}
