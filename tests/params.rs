//! Request parameters read alike everywhere (the Prometheus API, the snapshot
//! routes, the pages), as Go's `Request.FormValue` reads them for Prometheus:
//! a form body before the query string, the first value wins, and an empty
//! first value counts as absent. Before, the three disagreed (first
//! non-empty, first, last).

use crate::support;

use serde_json::Value;
use support::{TestServer, client};

const CONFIG: &str = "server:\n  listen: 127.0.0.1:0\nmodels: []\n";

#[test]
fn duplicated_parameters_read_alike_on_api_snapshot_routes_and_pages() {
    let s = TestServer::start(CONFIG);

    // API: the form body's value comes before the query string's.
    let r: Value = client()
        .post(s.url("/api/v1/query?query=1&time=20"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("query=2&time=10")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["data"]["result"], serde_json::json!([10.0, "2"]), "{r}");

    // API: an empty first value is absent, not skipped for a later one.
    let r = client()
        .get(s.url("/api/v1/query?query=&query=1&time=5"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().unwrap();
    assert_eq!(body["errorType"], "bad_data", "{body}");

    // Snapshot export: the first value wins; an empty one is the default.
    let r = client()
        .get(s.url("/api/v1/export?format=csv&format=json&start=0&end=1"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/csv"), "{ct}");
    let r = client()
        .get(s.url("/api/v1/export?format=&format=json&start=0&end=1"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "empty format is the default, not an error");
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");

    // Pages: the first `range` wins (it was the last).
    let html = client()
        .get(s.url("/explore?q=up&range=6h&range=15m"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        html.contains(r#"<option value="6h" selected>"#),
        "6h should be picked: {html}"
    );
    assert!(!html.contains(r#"<option value="15m" selected>"#));
}
