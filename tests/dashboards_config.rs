//! `dashboards:` in the config: Grafana's HTTP API form and directories load
//! like the plain form, and a file that is not a dashboard stops the start
//! with its name and the reason — never an empty, untitled page.

use crate::support;

use support::{TestServer, client};

const PANELS: &str =
    r#""panels": [{"type": "stat", "title": "Targets up", "targets": [{"expr": "sum(up)"}]}]"#;

fn config(entries: &[String]) -> String {
    let list: String = if entries.is_empty() {
        " []\n".to_string()
    } else {
        let items: String = entries.iter().map(|e| format!("  - '{e}'\n")).collect();
        format!("\n{items}")
    };
    format!(
        "server:\n  listen: 127.0.0.1:0\nmodels: []\nstorage:\n  path: '{{dir}}/data'\ndashboards:{list}"
    )
}

#[test]
fn wrapped_dashboards_and_directories_load_with_their_titles() {
    let boards = tempfile::tempdir().unwrap();
    let wrapped = boards.path().join("wrapped.json");
    std::fs::write(
        &wrapped,
        format!(r#"{{"dashboard": {{"title": "Wrapped board", "uid": "wrapped", {PANELS}}}, "overwrite": true}}"#),
    )
    .unwrap();
    let dir = boards.path().join("provisioned");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("one.json"),
        format!(r#"{{"title": "Directory board", "uid": "from-dir", {PANELS}}}"#),
    )
    .unwrap();
    let s = TestServer::start(&config(&[
        wrapped.display().to_string(),
        dir.display().to_string(),
    ]));
    let list = client()
        .get(s.url("/dashboards"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(list.contains("Wrapped board"), "{list}");
    assert!(list.contains("Directory board"), "{list}");
    for (uid, title) in [
        ("wrapped", "Wrapped board"),
        ("from-dir", "Directory board"),
    ] {
        let r = client()
            .get(s.url(&format!("/dashboards/{uid}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{uid}");
        let page = r.text().unwrap();
        assert!(
            page.contains(title) && page.contains("Targets up"),
            "{uid}: {page}"
        );
    }
}

#[test]
fn a_file_that_is_not_a_dashboard_stops_the_start_naming_it() {
    let boards = tempfile::tempdir().unwrap();
    let bad = boards.path().join("not-a-dashboard.json");
    std::fs::write(&bad, r#"{"apiVersion": 1, "providers": []}"#).unwrap();
    let log = match TestServer::try_start(&config(&[bad.display().to_string()])) {
        Ok(_) => panic!("a file without panels loaded as a dashboard"),
        Err(log) => log,
    };
    assert!(
        log.contains("not-a-dashboard.json") && log.contains("panels"),
        "{log}"
    );
}

#[test]
fn infermon_check_reports_a_broken_dashboard_file() {
    let boards = tempfile::tempdir().unwrap();
    let bad = boards.path().join("not-a-dashboard.json");
    std::fs::write(&bad, r#"{"apiVersion": 1, "providers": []}"#).unwrap();
    let cfg = boards.path().join("infermon.yml");
    std::fs::write(
        &cfg,
        config(&[bad.display().to_string()]).replace("{dir}", &boards.path().display().to_string()),
    )
    .unwrap();
    let out = std::process::Command::new(support::binary())
        .arg("check")
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("not-a-dashboard.json") && text.contains("panels"),
        "{text}"
    );
}

/// The built-in dashboard's error-ratio panels count what the
/// `InferenceHighErrorRate` alert counts (server errors, 5xx), so a panel is
/// never red without the alert; 4xx, 413 and 429 are the client's answers.
#[test]
fn built_in_error_ratio_panels_count_what_the_alert_counts() {
    let root = support::repo_root();
    let rules = std::fs::read_to_string(root.join("config/rules/inference.yml")).unwrap();
    assert!(rules.contains(r#"infermon_inference_requests_total{status=~"5.."}"#));
    let board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("config/dashboards/inference.json")).unwrap(),
    )
    .unwrap();
    let panels = board["panels"].as_array().unwrap();
    let error_panels: Vec<&serde_json::Value> = panels
        .iter()
        .filter(|p| {
            p["title"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .contains("error ratio")
        })
        .collect();
    assert!(!error_panels.is_empty());
    for p in error_panels {
        let expr = p["targets"][0]["expr"].as_str().unwrap();
        assert!(
            expr.contains(r#"status=~"5..""#) && !expr.contains("status!~"),
            "{}: {expr}",
            p["title"]
        );
    }
}

/// Two jobs (infermon's self-scrape and one that is down), scraped every
/// second, the wrapped fixture listed under `dashboards:`.
const FEATURES: &str = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nmodels: []\nstorage:\n  path: '{dir}/data'\nscrape_configs:\n  - job_name: down\n    static_configs: [{targets: ['127.0.0.1:1']}]\ndashboards:\n  - '{repo}/tests/testdata/dashboards/wrapped-features.json'\n";

/// Waits until both jobs have `up` and a few self-scrapes are stored.
fn wait_for_two_jobs(s: &TestServer) {
    support::wait_for(
        "both jobs scraped a few times",
        std::time::Duration::from_secs(60),
        || {
            let r: serde_json::Value = client()
                .get(s.url("/api/v1/query"))
                .query(&[("query", "count_over_time(up[1m])")])
                .send()
                .and_then(|r| r.json())
                .map_err(|e| e.to_string())?;
            let counts: Vec<f64> = r["data"]["result"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x["value"][1].as_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if counts.len() == 2 && counts.iter().all(|c| *c >= 3.0) {
                Ok(())
            } else {
                Err(r.to_string())
            }
        },
    );
}

fn panels_of(page: &str) -> Vec<(String, usize)> {
    page.split("<article class=\"panel ")
        .skip(1)
        .map(|a| {
            let attr = |name: &str| {
                let i = a.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                a[i..i + a[i..].find('"').unwrap()].to_string()
            };
            (attr("data-kind"), attr("data-series").parse().unwrap())
        })
        .collect()
}

/// What Grafana users put in a dashboard renders from the API-wrapped file:
/// variables (query with All and multi, custom `text : value`, interval,
/// constant), a panel repeated per job, links (a `javascript:` one
/// dropped), stat with sparkline and fixed decimals, gauge, bar gauge,
/// table with label columns, escaped markdown; what is not supported (the
/// pie chart, the ad hoc filter) is named on the page.
#[test]
fn a_wrapped_dashboard_renders_every_feature_or_names_what_it_lacks() {
    let s = TestServer::start(FEATURES);
    wait_for_two_jobs(&s);
    // The last minute: 1 s steps, so the stat's sparkline has points.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let window = format!("from={}&to={}", now - 60_000, now + 1_000);
    let page = client()
        .get(s.url(&format!("/dashboards/wrapped-features?{window}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let panels = panels_of(&page);
    let kinds: Vec<&str> = panels.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "stat",
            "gauge",
            "bargauge",
            "text",
            "timeseries",
            "timeseries",
            "timeseries",
            "table",
            "piechart"
        ],
        "the repeated panel once per job"
    );
    for (kind, series) in &panels {
        if kind != "text" && kind != "piechart" {
            assert!(*series > 0, "a {kind} panel drew nothing: {page}");
        }
    }
    // Titles and the repeat take the variables' values.
    assert!(page.contains("Wrapped: All features"), "title variable");
    assert!(
        page.contains("Scrape duration of down") && page.contains("Scrape duration of infermon"),
        "one copy per job"
    );
    assert!(page.contains("Request rate (1m)"));
    // Selectors: multi-select with All picked, custom values, interval auto.
    assert!(page.contains(r#"<select name="var-job" class="autosubmit" multiple>"#));
    assert!(page.contains(r#"<option value="All" selected>"#));
    assert!(page.contains(r#"<option value="0.9" selected>"#));
    assert!(page.contains(r#"<option value="auto">"#));
    assert!(!page.contains("var-selfjob"), "a constant has no selector");
    // Links: the URL one with its variable, no javascript:, the explore link per copy.
    assert!(
        page.contains(r#"href="https://runbooks.example.com/infermon?job=down,infermon""#),
        "All in a URL: every value"
    );
    assert!(!page.contains("javascript:"), "unsafe link kept");
    assert!(page.contains(r#"href="/explore?q=up%7Bjob%3D%22down%22%7D""#));
    // Stat: fixed decimals and a sparkline; gauge and bar gauge as SVG.
    // sum(up): infermon's 1 + the down job's 0.
    let stat = page.split("data-kind=\"stat\"").nth(1).unwrap();
    assert!(
        stat.contains(r#"<span class="value">1.00</span>"#),
        "decimals: 2: {}",
        &stat[..600.min(stat.len())]
    );
    assert!(page.contains(r#"class="sparkline""#));
    assert!(page.contains(r#"<svg class="gauge""#) && page.contains(r#"<svg class="bargauge""#));
    // Table: one column per label.
    assert!(page.contains("<th>job</th>") && page.contains("<th>instance</th>"));
    // Text: markdown rendered, HTML escaped.
    assert!(page.contains("<strong>All</strong>") || page.contains("<strong>"));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !page.contains("<script>alert")
    );
    // Named, never silently dropped.
    assert!(page.contains("Panel type &#39;piechart&#39; is not supported by infermon"));
    assert!(page.contains(
        "Variable &#39;filter&#39; of type &#39;adhoc&#39; is not supported by infermon"
    ));

    // Picking one job: the repeat draws one copy, the query narrows.
    let one = client()
        .get(s.url(&format!(
            "/dashboards/wrapped-features?{window}&var-job=down&var-window=auto"
        )))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        one.contains("Scrape duration of down") && !one.contains("Scrape duration of infermon")
    );
    assert!(one.contains("Wrapped: down features"));
    assert!(one.contains("Request rate (auto)") || one.contains("Request rate ("));
}

/// The Overview on a box without an NVIDIA GPU: GPU panels and the GPU
/// memory stat say so in words (English and Chinese), and the GPU row is
/// folded with the reason beside its title.
#[test]
fn the_overview_says_no_gpu_in_english_and_chinese() {
    let s = TestServer::start(
        &config(&[]).replace("server:", "global:\n  scrape_interval: 1s\nserver:"),
    );
    support::wait_for(
        "infermon_gpu_available stored",
        std::time::Duration::from_secs(60),
        || {
            let r: serde_json::Value = client()
                .get(s.url("/api/v1/query"))
                .query(&[("query", "infermon_gpu_available")])
                .send()
                .and_then(|r| r.json())
                .map_err(|e| e.to_string())?;
            match r["data"]["result"][0]["value"][1].as_str() {
                Some(v) => Ok(v.to_string()),
                None => Err(r.to_string()),
            }
        },
    );
    let available = client()
        .get(s.url("/api/v1/query?query=infermon_gpu_available"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        available.contains(r#""0"]"#),
        "this test needs a box without an NVIDIA GPU: {available}"
    );
    for (lang, message, rerank) in [
        (
            "en",
            "No NVIDIA GPU detected on this host",
            "No rerank model is served",
        ),
        (
            "zh",
            "此主机未检测到 NVIDIA GPU",
            "未加载重排序（rerank）模型",
        ),
    ] {
        let page = client()
            .get(s.url(&format!("/?range=15m&lang={lang}")))
            .send()
            .unwrap()
            .text()
            .unwrap();
        // The GPU memory stat and the four GPU charts, plus the folded row's note.
        assert!(
            page.matches(message).count() >= 6,
            "{lang}: {} times",
            page.matches(message).count()
        );
        let row = page
            .split("<details class=\"row-section\"")
            .nth(1)
            .expect("the GPU row");
        assert!(
            row.starts_with('>'),
            "the GPU row is folded: {}",
            &row[..80]
        );
        assert!(row.contains(message));
        // No model at all, so no rerank model: the score panel says so.
        assert!(page.contains(rerank), "{lang}: rerank panel");
        // The next row (process) stays open.
        let next = page.split("<details class=\"row-section\"").nth(2).unwrap();
        assert!(next.starts_with(" open>"));
    }
}

/// With a GPU-shaped source (the test-only fake), the GPU panels draw and
/// nothing says there is no GPU.
#[test]
fn gpu_panels_draw_with_a_gpu_shaped_source() {
    let s = TestServer::start_with_env(
        &config(&[]).replace("server:", "global:\n  scrape_interval: 1s\nserver:"),
        &[("INFERMON_TEST_FAKE_GPU", std::path::Path::new("1"))],
    );
    support::wait_for(
        "GPU series stored",
        std::time::Duration::from_secs(60),
        || {
            let r: serde_json::Value = client()
                .get(s.url("/api/v1/query"))
                .query(&[(
                    "query",
                    "count_over_time(infermon_gpu_utilization_ratio[1m]) >= 2",
                )])
                .send()
                .and_then(|r| r.json())
                .map_err(|e| e.to_string())?;
            if r["data"]["result"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                Ok(())
            } else {
                Err(r.to_string())
            }
        },
    );
    let page = client()
        .get(s.url("/?range=15m"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!page.contains("No NVIDIA GPU detected"), "a GPU is there");
    let gpu_row = page.split("<details class=\"row-section\"").nth(1).unwrap();
    assert!(gpu_row.starts_with(" open>"));
    let gpu_panels: Vec<(String, usize)> = panels_of(gpu_row.split("</details>").next().unwrap());
    assert_eq!(gpu_panels.len(), 4);
    assert!(gpu_panels.iter().all(|p| p.1 >= 1), "{gpu_panels:?}");
}

/// With the host collector off, the Host dashboard's panels say so instead
/// of showing empty axes.
#[test]
fn host_panels_say_the_host_collector_is_off() {
    let s = TestServer::start(&format!(
        "{}collectors:\n  host:\n    enabled: false\n",
        config(&[])
    ));
    let page = client()
        .get(s.url("/dashboards/host?range=15m"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let note = "The host collector is off (collectors.host.enabled: false)";
    assert_eq!(
        page.matches(note).count(),
        9,
        "every host panel names the switch"
    );
}
