//! The Prometheus HTTP API against the real binary: envelope, result shapes,
//! Prometheus' error shape, and the real `promtool` as a client.

use crate::support;

use std::process::Command;

use serde_json::Value;
use support::{TestServer, client};

const CONFIG: &str = "server:\n  listen: 127.0.0.1:0\nmodels: []\n";

fn get(s: &TestServer, path: &str) -> (u16, Value) {
    let r = client().get(s.url(path)).send().expect("request");
    let status = r.status().as_u16();
    (status, r.json().expect("JSON body"))
}

fn assert_error(status: u16, body: &Value, want_status: u16, error_type: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], error_type, "{body}");
    assert_eq!(body["error_type"], error_type, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
}

#[test]
fn prometheus_api_envelope_shapes_and_errors() {
    let s = TestServer::start(CONFIG);

    // Instant queries: vector, scalar, string; time as unix float and RFC 3339.
    let (st, b) = get(&s, "/api/v1/query?query=vector(1)&time=100.5");
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["status"], "success");
    assert_eq!(b["data"]["resultType"], "vector");
    assert_eq!(b["data"]["result"][0]["metric"], serde_json::json!({}));
    assert_eq!(
        b["data"]["result"][0]["value"],
        serde_json::json!([100.5, "1"])
    );
    let (_, b) = get(&s, "/api/v1/query?query=time()&time=1970-01-01T00:01:40Z");
    assert_eq!(b["data"]["resultType"], "scalar");
    assert_eq!(b["data"]["result"], serde_json::json!([100.0, "100"]));
    let (_, b) = get(&s, "/api/v1/query?query=%22hi%22&time=5");
    assert_eq!(
        b["data"],
        serde_json::json!({"resultType": "string", "result": [5.0, "hi"]})
    );
    let (_, b) = get(&s, "/api/v1/query?query=1/0&time=5");
    assert_eq!(b["data"]["result"][1], "+Inf");

    // Form POST, as Grafana sends it.
    let r = client()
        .post(s.url("/api/v1/query"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("query=1%2B1&time=10")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().unwrap();
    assert_eq!(b["data"]["result"], serde_json::json!([10.0, "2"]));

    // Range query: step as duration and as float seconds.
    for step in ["15s", "15"] {
        let (st, b) = get(
            &s,
            &format!("/api/v1/query_range?query=time()&start=0&end=60&step={step}"),
        );
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["data"]["resultType"], "matrix");
        let values = b["data"]["result"][0]["values"].as_array().unwrap();
        assert_eq!(values.len(), 5);
        assert_eq!(values[4], serde_json::json!([60.0, "60"]));
    }

    // Errors in Prometheus' shape.
    let (st, b) = get(&s, "/api/v1/query?query=sum(");
    assert_error(st, &b, 400, "bad_data");
    let (st, b) = get(&s, "/api/v1/query?query=1&time=yesterday");
    assert_error(st, &b, 400, "bad_data");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("invalid parameter \"time\"")
    );
    let (st, b) = get(&s, "/api/v1/query_range?query=1&start=0&end=60&step=0");
    assert_error(st, &b, 400, "bad_data");
    let (st, b) = get(&s, "/api/v1/query_range?query=1&start=0&end=100000&step=1");
    assert_error(st, &b, 400, "bad_data");
    let (st, b) = get(
        &s,
        "/api/v1/query_range?query=%22s%22&start=0&end=60&step=15",
    );
    assert_error(st, &b, 400, "bad_data");
    let (st, b) = get(
        &s,
        "/api/v1/query?query=label_replace(vector(1),%22a%22,%22b%22,%22c%22,%22(%22)",
    );
    assert_error(st, &b, 422, "execution");
    let (st, b) = get(&s, "/api/v1/series");
    assert_error(st, &b, 400, "bad_data");
    assert_eq!(b["error"], "no match[] parameter provided");

    // Metadata endpoints.
    let (st, b) = get(&s, "/api/v1/series?match[]=up&match[]={job=%22x%22}");
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"], serde_json::json!([]));
    let (_, b) = get(&s, "/api/v1/labels");
    assert!(b["data"].is_array(), "{b}");
    let (_, b) = get(&s, "/api/v1/label/job/values?start=0&end=100");
    assert!(b["data"].is_array(), "{b}");
    // Metadata of infermon's own metrics, as Prometheus shapes it.
    let (_, b) = get(&s, "/api/v1/metadata");
    assert_eq!(
        b["data"]["infermon_build_info"],
        serde_json::json!([{"type": "gauge", "help": "Build information; the value is always 1.", "unit": ""}]),
        "{b}"
    );
    assert_eq!(b["data"]["process_cpu_seconds_total"][0]["type"], "counter");
    let (_, b) = get(&s, "/api/v1/metadata?metric=infermon_build_info");
    assert_eq!(b["data"].as_object().map(|m| m.len()), Some(1), "{b}");
    let (_, b) = get(&s, "/api/v1/metadata?limit=2");
    assert_eq!(b["data"].as_object().map(|m| m.len()), Some(2), "{b}");
    let (_, b) = get(&s, "/api/v1/status/buildinfo");
    assert_eq!(b["data"]["version"], env!("CARGO_PKG_VERSION"));
    let (_, b) = get(&s, "/api/v1/status/config");
    assert!(
        b["data"]["yaml"]
            .as_str()
            .unwrap()
            .contains("lookback_delta"),
        "{b}"
    );
    let (_, b) = get(&s, "/api/v1/status/flags");
    assert_eq!(b["data"]["query.lookback-delta"], "5m", "{b}");
    let (_, b) = get(&s, "/api/v1/status/runtimeinfo");
    assert!(
        b["data"]["startTime"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{b}"
    );
    let (_, b) = get(&s, "/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(job)");
    assert_eq!(b["data"], "sum by (job) (rate(x[5m]))");
}

#[test]
fn promtool_queries_infermon() {
    if Command::new("promtool").arg("--version").output().is_err() {
        panic!("promtool is missing: run scripts/install-test-deps.sh (Debian package prometheus)");
    }
    let s = TestServer::start(CONFIG);
    let base = format!("http://{}", s.addr);
    let out = Command::new("promtool")
        .args(["query", "instant", &base, "vector(42)"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("{} => 42 @["), "{text}");

    let out = Command::new("promtool")
        .args([
            "query",
            "range",
            "--start=1000",
            "--end=1060",
            "--step=30s",
            &base,
            "time()",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1000 @[1000]") && text.contains("1060 @[1060]"),
        "{text}"
    );

    let out = Command::new("promtool")
        .args(["query", "instant", &base, "sum("])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad_data"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for args in [vec!["series", "--match=up"], vec!["labels", "job"]] {
        let mut cmd = Command::new("promtool");
        cmd.arg("query").arg(args[0]).arg(&base).args(&args[1..]);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
