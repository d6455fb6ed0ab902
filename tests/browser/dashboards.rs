//! Grafana dashboards and the no-GPU Overview in a real browser: an
//! API-wrapped dashboard listed under `dashboards:` draws every panel with
//! its variables; on a box without a GPU the Overview says so in English
//! and Chinese with the GPU row folded; with the test-only GPU-shaped source
//! the GPU charts draw. Screenshots of each go to `target/screenshots/`.

use std::time::Duration;

use serde_json::{Value, json};

use super::Browser;
use crate::support::{TestServer, client, wait_for};

impl Browser {
    /// A window tall enough that a screenshot holds the whole Overview.
    fn tall(&self) {
        self.cmd(
            "POST",
            "/window/rect",
            json!({"width": 1400, "height": 2400}),
        );
    }

    /// The page's visible text.
    fn body_text(&self) -> String {
        self.js("return document.body.innerText")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// (kind, series) of every panel on the page.
    fn panels(&self) -> Vec<(String, u64)> {
        let v = self.js(
            "return Array.from(document.querySelectorAll('article.panel')).map(a => [a.dataset.kind, Number(a.dataset.series)])",
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap_or("").to_string(),
                    p[1].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }
}

fn query(s: &TestServer, q: &str) -> Value {
    client()
        .get(s.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn wait_for_series(s: &TestServer, q: &str, n: usize) {
    wait_for(q, Duration::from_secs(60), || {
        let r = query(s, q);
        match r["data"]["result"].as_array() {
            Some(a) if a.len() >= n => Ok(()),
            _ => Err(r.to_string()),
        }
    });
}

#[test]
fn a_wrapped_dashboard_and_the_no_gpu_overview_in_a_real_browser() {
    let s = TestServer::start(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nmodels: []\nstorage:\n  path: '{dir}/data'\nscrape_configs:\n  - job_name: down\n    static_configs: [{targets: ['127.0.0.1:1']}]\ndashboards:\n  - '{repo}/tests/testdata/dashboards/wrapped-features.json'\n",
    );
    wait_for_series(&s, "count_over_time(up[1m]) >= 3", 2);
    wait_for_series(&s, "infermon_gpu_available", 1);
    assert_eq!(
        query(&s, "infermon_gpu_available")["data"]["result"][0]["value"][1],
        "0",
        "this test needs a box without an NVIDIA GPU"
    );
    let b = Browser::start();
    b.tall();

    // The wrapped dashboard: every panel drawn, variables as selectors.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    b.visit_clean(
        &s.url(&format!(
            "/dashboards/wrapped-features?from={}&to={}",
            now - 60_000,
            now + 1_000
        )),
        "wrapped-dashboard",
    );
    let panels = b.panels();
    assert_eq!(panels.len(), 9, "{panels:?}");
    for (kind, series) in &panels {
        if kind != "text" && kind != "piechart" {
            assert!(*series > 0, "{kind} drew nothing: {panels:?}");
        }
    }
    assert_eq!(
        b.js("return document.querySelectorAll('svg.chart path.series').length >= 3 && document.querySelector('svg.gauge') !== null && document.querySelector('svg.sparkline') !== null")
            .as_bool(),
        Some(true),
        "charts, a gauge and a sparkline"
    );
    assert_eq!(
        b.js("return document.querySelector('select[name=\"var-job\"]').multiple")
            .as_bool(),
        Some(true)
    );
    let text = b.body_text();
    assert!(
        text.contains("Panel type 'piechart' is not supported by infermon"),
        "{text}"
    );
    assert!(
        text.contains("Scrape duration of down") && text.contains("Scrape duration of infermon")
    );

    // The Overview on this CPU box, in English and in Chinese.
    for (lang, message, shot) in [
        ("en", "No NVIDIA GPU detected on this host", "overview-cpu"),
        ("zh", "此主机未检测到 NVIDIA GPU", "overview-cpu-zh"),
    ] {
        b.visit_clean(&s.url(&format!("/?range=15m&lang={lang}")), shot);
        let text = b.body_text();
        // The GPU memory stat and the folded row's note are visible.
        assert!(text.matches(message).count() >= 2, "{lang}: {text}");
        assert_eq!(
            b.js("const d = document.querySelector('details.row-section'); return d.querySelector('h2').textContent == 'GPU' && !d.open")
                .as_bool(),
            Some(true),
            "{lang}: the GPU row is folded"
        );
    }
}

#[test]
fn the_overview_with_a_gpu_shaped_source_in_a_real_browser() {
    let s = TestServer::start_with_env(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nmodels: []\nstorage:\n  path: '{dir}/data'\n",
        &[("INFERMON_TEST_FAKE_GPU", std::path::Path::new("1"))],
    );
    wait_for_series(
        &s,
        "count_over_time(infermon_gpu_utilization_ratio[1m]) >= 10",
        1,
    );
    let b = Browser::start();
    b.tall();
    // The last minute, so the few seconds of GPU data fill the charts.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    b.visit_clean(
        &s.url(&format!("/?from={}&to={}", now - 60_000, now + 1_000)),
        "overview-gpu",
    );
    assert!(!b.body_text().contains("No NVIDIA GPU detected"));
    assert_eq!(
        b.js("const d = document.querySelector('details.row-section'); return d.open && d.querySelectorAll('svg.chart path.series').length >= 4")
            .as_bool(),
        Some(true),
        "the GPU row is open with its charts drawn"
    );
}
