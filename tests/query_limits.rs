//! Bounded queries through the real binary over HTTP: a query that would
//! hold too much fails fast with a Prometheus-shaped error, queries beyond
//! `query.max_concurrency` wait and then get 503, and a query whose client
//! went away stops and frees its slot.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{TestServer, client};

/// An instant query that keeps a query thread busy for a long time with
/// little memory: 600 outer steps, each reading 600,000 cached inner steps.
const SLOW: &str = "max_over_time(count_over_time(vector(1)[10m:1ms])[10m:1s])";

fn config(extra: &str) -> String {
    format!("server:\n  listen: 127.0.0.1:0\nmodels: []\nquery:\n{extra}")
}

fn query(c: &reqwest::blocking::Client, s: &TestServer, q: &str) -> (u16, Value) {
    let r = c
        .get(s.url("/api/v1/query"))
        .query(&[("query", q), ("time", "86400")])
        .send()
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().expect("JSON body"))
}

fn assert_error(status: u16, body: &Value, want_status: u16, error_type: &str, text: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], error_type, "{body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(msg.contains(text), "{body}");
}

#[test]
fn a_subquery_with_billions_of_steps_fails_fast_and_label_values_are_capped() {
    let s = TestServer::start(&config("  timeout: 2m\n"));
    let c = client();
    let began = Instant::now();
    let (st, b) = query(&c, &s, "count_over_time(vector(1)[1000d:1ms])");
    assert_error(st, &b, 422, "execution", "too many samples");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "took {:?}",
        began.elapsed()
    );

    // Every level quadruples the value: without a cap, 9 levels over a
    // 3-byte value build 786 KB per series, 12 levels 50 MB, 16 levels 13 GB.
    let mut q = r#"label_replace(vector(1), "v", "abc", "", "")"#.to_string();
    for _ in 0..16 {
        q = format!(r#"label_replace({q}, "v", "$1$1$1$1", "v", "(.*)")"#);
    }
    let (st, b) = query(&c, &s, &q);
    assert_error(st, &b, 422, "execution", "query.max_label_value_bytes");

    // The server is still fine.
    let (st, b) = query(&c, &s, "vector(1)");
    assert_eq!(st, 200, "{b}");
}

#[test]
fn queries_beyond_the_concurrency_limit_wait_then_get_503() {
    let s = TestServer::start(&config(
        "  max_concurrency: 1\n  max_queue_wait: 300ms\n  timeout: 15s\n",
    ));
    let url_slow = s.url("/api/v1/query");
    let slow = std::thread::spawn(move || {
        let r = client()
            .get(url_slow)
            .query(&[("query", SLOW), ("time", "86400")])
            .send()
            .expect("slow request");
        let status = r.status().as_u16();
        (status, r.json::<Value>().expect("JSON body"))
    });
    let c = client();
    let mut refused = None;
    for _ in 0..100 {
        let (st, b) = query(&c, &s, "vector(1)");
        if st != 200 {
            refused = Some((st, b));
            break;
        }
        if slow.is_finished() {
            break;
        }
    }
    let (st, b) = refused.expect("no query was refused while the slow one ran");
    assert_error(st, &b, 503, "unavailable", "query.max_concurrency");
    let (st, b) = slow.join().expect("slow thread");
    assert_error(st, &b, 503, "timeout", "timed out");
    // The slot is free again.
    let (st, b) = query(&c, &s, "vector(1)");
    assert_eq!(st, 200, "{b}");
}

#[test]
fn a_query_whose_client_went_away_stops_and_frees_its_slot() {
    let s = TestServer::start(&config(
        "  max_concurrency: 1\n  max_queue_wait: 60s\n  timeout: 10m\n",
    ));
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let r = impatient
        .get(s.url("/api/v1/query"))
        .query(&[("query", SLOW), ("time", "86400")])
        .send();
    assert!(r.is_err(), "the slow query answered within 500ms");
    // Without cancellation the slow query would hold the only slot for
    // minutes and this one would wait out its 60s queue limit.
    let began = Instant::now();
    let (st, b) = query(&client(), &s, "vector(1)");
    assert_eq!(st, 200, "{b}");
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "waited {:?} for the slot",
        began.elapsed()
    );
}
