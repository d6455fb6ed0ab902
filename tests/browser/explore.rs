//! Explore in a real browser: completion of metric names, label names and
//! values, the metrics browser, recent queries across reloads, the
//! stacked/lines toggle, the table's label columns and its CSV download,
//! the zoom/shift links used from the keyboard, a dashboard panel's
//! Explore link; and axe-core over every page in English and Chinese with
//! no serious or critical violation.

use std::time::Duration;

use serde_json::Value;

use super::Browser;
use crate::support::{self, TestServer, client};

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const ARROW_DOWN: &str = "\u{E015}";

/// axe-core as scripts/install-test-deps.sh installs it.
pub(crate) fn axe_source() -> String {
    let path = support::repo_root().join("tests/browser/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/install-test-deps.sh (npm installs axe-core there)",
            path.display()
        )
    })
}

impl Browser {
    /// Runs axe-core over the page as it is now; the serious and critical
    /// violations, one line each (rule, impact, the first elements).
    pub(crate) fn axe_violations(&self, axe: &str) -> Vec<String> {
        self.js(&format!("{axe}\n;return 1"));
        let found = self.js_async(
            "const r = await axe.run(document, {resultTypes: ['violations']});
             return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
               .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' — ' +
                    v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + (n.failureSummary || '')).join(' | '));",
        );
        match found {
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect(),
            other => vec![format!("axe did not run: {other}")],
        }
    }

    /// Loads `url` and asserts axe finds nothing serious or critical.
    pub(crate) fn assert_accessible(&self, axe: &str, url: &str) {
        self.go(url);
        let violations = self.axe_violations(axe);
        assert!(violations.is_empty(), "{url}: {violations:#?}");
    }

    /// Presses `key` on the keyboard, wherever the focus is.
    fn press(&self, key: &str) {
        self.cmd(
            "POST",
            "/actions",
            serde_json::json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]}),
        );
    }

    fn send_keys(&self, css: &str, keys: &str) {
        self.type_into(css, keys);
    }

    fn text(&self, expr: &str) -> String {
        self.js(&format!("return String({expr})"))
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

#[test]
fn explore_and_accessibility_in_a_real_browser() {
    let axe = axe_source();
    let server = TestServer::start(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\nsnapshots:\n  enabled: true\ndashboards:\n  - {repo}/tests/testdata/dashboards/all-panels.json\n",
    );
    support::wait_for(
        "three self-scrapes in the store",
        Duration::from_secs(60),
        || {
            let r: Value = client()
                .get(server.url("/api/v1/query"))
                .query(&[("query", "count_over_time(up{job=\"infermon\"}[1m])")])
                .send()
                .and_then(|r| r.json())
                .map_err(|e| e.to_string())?;
            let n = r["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            if n >= 3.0 { Ok(()) } else { Err(r.to_string()) }
        },
    );
    let b = Browser::start();
    completion(&b, &server);
    metrics_browser(&b, &server);
    recent_queries(&b, &server);
    panel_link(&b, &server);
    graph_table_and_csv(&b, &server);
    range_links_from_the_keyboard(&b, &server);
    keyboard_focus(&b, &server);

    // Every page, in English and in Chinese (Explore's other states in English).
    let every = [
        "/?range=15m",
        "/explore?q=rate(infermon_http_requests_total%5B1m%5D)&range=15m",
        "/dashboards",
        "/dashboards/all-panels?range=15m",
        "/targets",
        "/alerts",
        "/snapshots",
        "/status",
    ];
    let more = [
        "/explore",
        "/explore?q=up&view=table&range=15m",
        "/explore?q=bad(",
        "/dashboards/host?range=15m",
    ];
    for (lang, pages) in [
        ("en", [&every[..], &more[..]].concat()),
        ("zh", every.to_vec()),
    ] {
        for page in pages {
            let sep = if page.contains('?') { '&' } else { '?' };
            b.assert_accessible(&axe, &server.url(&format!("{page}{sep}lang={lang}")));
            let want = if lang == "zh" { "zh-CN" } else { "en" };
            assert_eq!(b.text("document.documentElement.lang"), want, "{page}");
        }
    }
    // Explore with its script's parts open: suggestions, the browser, recent queries.
    b.go(&server.url("/explore?q=up&range=15m&lang=en"));
    b.js("document.getElementById('explore-q').value = ''; return 1");
    b.send_keys("#explore-q", "infermon_http");
    assert!(b.wait_for(
        "!document.getElementById('explore-suggestions').hidden",
        Duration::from_secs(10)
    ));
    b.click("#metrics-browser summary");
    assert!(b.wait_for(
        "document.querySelectorAll('#metrics-list li').length > 0",
        Duration::from_secs(10)
    ));
    let violations = b.axe_violations(&axe);
    assert!(violations.is_empty(), "explore, opened: {violations:#?}");
    assert!(b.errors().is_empty() && b.failed_requests().is_empty());
}

/// Typing a prefix shows the metric names that start with it; choosing one
/// fills the box; `{` then offers its labels and `="` the label's values.
fn completion(b: &Browser, server: &TestServer) {
    b.visit_clean(&server.url("/explore?range=15m"), "explore-empty");
    b.send_keys("#explore-q", "infermon_http_req");
    let option = "#explore-suggestions li[data-value=\"infermon_http_requests_total\"]";
    assert!(
        b.wait_for(
            &format!("document.querySelector('{option}')"),
            Duration::from_secs(10)
        ),
        "no suggestion: {}",
        b.text("document.getElementById('explore-suggestions').innerText")
    );
    assert_eq!(
        b.text(&format!(
            "document.querySelector('{option} .type').textContent"
        )),
        "counter",
        "the suggestion shows the metric's type"
    );
    b.screenshot("explore-completion");
    b.click(option);
    assert_eq!(
        b.text("document.getElementById('explore-q').value"),
        "infermon_http_requests_total"
    );
    assert!(b.wait_for(
        "document.getElementById('explore-suggestions').hidden",
        Duration::from_secs(5)
    ));
    // Labels of that metric, taken with Tab; then the label's values.
    b.send_keys("#explore-q", "{rou");
    assert!(b.wait_for(
        "document.querySelector('#explore-suggestions li[data-value=\"route\"]')",
        Duration::from_secs(10)
    ));
    b.send_keys("#explore-q", TAB);
    assert_eq!(
        b.text("document.getElementById('explore-q').value"),
        "infermon_http_requests_total{route=\""
    );
    assert!(
        b.wait_for(
            "document.querySelector('#explore-suggestions li[data-value=\"/metrics\"]')",
            Duration::from_secs(10)
        ),
        "the self-scrape's route is offered: {}",
        b.text("document.getElementById('explore-suggestions').innerText")
    );
    b.click("#explore-suggestions li[data-value=\"/metrics\"]");
    assert_eq!(
        b.text("document.getElementById('explore-q').value"),
        "infermon_http_requests_total{route=\"/metrics\""
    );
    // Functions come after the metric names and open their parenthesis.
    b.js("const q = document.getElementById('explore-q'); q.value = 'sum by (job) (infermon_http_requests_total) / '; return 1");
    b.send_keys("#explore-q", "histogram_qu");
    assert!(b.wait_for(
        "document.querySelector('#explore-suggestions li[data-function][data-value=\"histogram_quantile\"]')",
        Duration::from_secs(10)
    ));
    b.send_keys("#explore-q", TAB);
    assert_eq!(
        b.text("document.getElementById('explore-q').value"),
        "sum by (job) (infermon_http_requests_total) / histogram_quantile("
    );
    // Label names inside `by (...)`, picked with the arrow keys and Enter.
    b.js("const q = document.getElementById('explore-q'); q.value = 'sum by (j'; return 1");
    b.send_keys("#explore-q", "o");
    assert!(b.wait_for(
        "document.querySelector('#explore-suggestions li[data-value=\"job\"]')",
        Duration::from_secs(10)
    ));
    b.send_keys("#explore-q", &format!("{ARROW_DOWN}{ENTER}"));
    assert_eq!(
        b.text("document.getElementById('explore-q').value"),
        "sum by (job"
    );
    assert_eq!(
        b.text("location.search"),
        "?range=15m",
        "Enter took the suggestion, it did not run the query"
    );
    b.js(r#"document.getElementById('explore-q').value = 'infermon_http_requests_total{route="/metrics"'; return 1"#);
    // Enter runs the query (the form's own submit, as without the script).
    b.send_keys("#explore-q", &format!("}}{ENTER}"));
    assert!(
        b.wait_for(
            "location.search.includes('q=') && document.querySelector('svg.chart path.series')",
            Duration::from_secs(10)
        ),
        "{}",
        b.url()
    );
    assert!(b.errors().is_empty());
}

/// The metrics browser lists names with TYPE and HELP, filters, and a click
/// puts the name into the box.
fn metrics_browser(b: &Browser, server: &TestServer) {
    b.go(&server.url("/explore?range=15m"));
    b.click("#metrics-browser summary");
    assert!(b.wait_for(
        "document.querySelectorAll('#metrics-list li').length > 20",
        Duration::from_secs(10)
    ));
    let row = "[...document.querySelectorAll('#metrics-list li')].find(li => li.querySelector('button').textContent === 'infermon_build_info')";
    assert_eq!(
        b.text(&format!("{row}.querySelector('.type').textContent")),
        "gauge"
    );
    assert!(
        b.text(&format!("{row}.querySelector('.help').textContent"))
            .contains("Build information")
    );
    b.send_keys("#metrics-filter", "build_info");
    let shown = b.js("return [...document.querySelectorAll('#metrics-list li')].filter(li => !li.hidden).map(li => li.querySelector('button').textContent)");
    assert_eq!(shown, serde_json::json!(["infermon_build_info"]));
    b.screenshot("explore-metrics-browser");
    b.click("#metrics-list li:not([hidden]) button.metric");
    assert_eq!(
        b.text("document.getElementById('explore-q').value"),
        "infermon_build_info"
    );
    assert_eq!(
        b.text("document.activeElement.id"),
        "explore-q",
        "focus is back in the box"
    );
}

/// Queries run are listed newest first after a reload, and run again on click.
fn recent_queries(b: &Browser, server: &TestServer) {
    b.go(&server.url("/explore?range=15m"));
    b.js("localStorage.clear(); return 1");
    b.go(&server.url("/explore?q=up&range=15m"));
    b.go(&server.url("/explore?q=sum(up)&range=15m"));
    b.go(&server.url("/explore?q=bad(&range=15m")); // an error is not kept
    b.go(&server.url("/explore?range=15m"));
    let list = b
        .js("return [...document.querySelectorAll('#recent-list button')].map(x => x.textContent)");
    assert_eq!(list, serde_json::json!(["sum(up)", "up"]));
    assert_eq!(
        b.js("return document.getElementById('recent-queries').hidden"),
        Value::Bool(false)
    );
    b.click("#recent-list li:nth-child(2) button");
    assert!(b.wait_for(
        "new URLSearchParams(location.search).get('q') === 'up' && document.querySelector('svg.chart')",
        Duration::from_secs(10)
    ));
    b.click("#recent-clear");
    assert_eq!(
        b.js("return document.getElementById('recent-queries').hidden"),
        Value::Bool(true)
    );
    b.errors();
}

/// A panel's Explore link opens its query over the dashboard's range, drawn.
fn panel_link(b: &Browser, server: &TestServer) {
    b.go(&server.url("/?range=15m"));
    let links = b.js("return document.querySelectorAll('article.panel a.explore-link').length");
    assert!(links.as_u64().unwrap_or(0) >= 10, "{links}");
    let article = "[...document.querySelectorAll('article.panel')].find(a => a.querySelector('h3').textContent === 'Process memory (RSS)')";
    b.js(&format!(
        "{article}.querySelector('a.explore-link').id = 'rss-explore'; return 1"
    ));
    b.click("#rss-explore");
    assert!(b.wait_for("location.pathname === '/explore'", Duration::from_secs(10)));
    assert_eq!(
        b.text("document.getElementById('explore-q').value"),
        "process_resident_memory_bytes{job=\"infermon\"}"
    );
    assert_eq!(
        b.text("document.querySelector('select[name=range]').value"),
        "15m"
    );
    assert!(
        b.js("return document.querySelectorAll('svg.chart path.series').length")
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "the graph is drawn"
    );
    b.screenshot("explore-from-panel");
    // A Grafana dashboard's panels, zoomed: the link keeps the window.
    b.go(&server.url("/dashboards/all-panels?from=1000&to=2000"));
    let href =
        b.text("document.querySelector('article.panel a.explore-link').getAttribute('href')");
    assert!(
        href.starts_with("/explore?q=") && href.ends_with("&from=1000&to=2000"),
        "{href}"
    );
    assert!(b.errors().is_empty() && b.failed_requests().is_empty());
}

/// Lines or stacked; the table has a column per label; its CSV matches.
fn graph_table_and_csv(b: &Browser, server: &TestServer) {
    b.go(&server.url("/explore?q=sum+by+(route)+(infermon_http_requests_total)&range=15m"));
    assert_eq!(
        b.text("document.querySelector('article.panel').dataset.stacked"),
        "false"
    );
    b.click("input[name=stack][value='1']");
    assert!(b.wait_for(
        "new URLSearchParams(location.search).get('stack') === '1' && document.querySelector('article.panel[data-stacked=true] svg.chart')",
        Duration::from_secs(10)
    ));
    assert_eq!(
        b.text("new URLSearchParams(location.search).get('view')"),
        "graph",
        "the toggle keeps the view"
    );
    b.screenshot("explore-stacked");
    b.go(&server.url("/explore?q=up&view=table&range=15m"));
    let headers = b.js(
        "return [...document.querySelectorAll('#panels table.data th')].map(x => x.textContent)",
    );
    assert_eq!(
        headers,
        serde_json::json!(["__name__", "instance", "job", "Value"])
    );
    let csv = b.js_async(
        "const r = await fetch(document.getElementById('explore-csv').href); return [r.status, r.headers.get('content-type'), r.headers.get('content-disposition'), await r.text()]",
    );
    assert_eq!(csv[0], 200, "{csv}");
    assert!(
        csv[1].as_str().unwrap_or("").starts_with("text/csv"),
        "{csv}"
    );
    assert!(
        csv[2].as_str().unwrap_or("").starts_with("attachment"),
        "{csv}"
    );
    let text = csv[3].as_str().unwrap_or("");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "__name__,instance,job,timestamp,value", "{text}");
    let row: Vec<&str> = lines[1].split(',').collect();
    assert_eq!((row[0], row[2], row[4]), ("up", "infermon", "1"), "{text}");
    assert!(row[3].ends_with('Z'), "RFC 3339 time: {text}");
    b.screenshot("explore-table");
}

/// The zoom and shift links do what a drag does, from the keyboard.
fn range_links_from_the_keyboard(b: &Browser, server: &TestServer) {
    b.go(&server.url("/explore?q=up&range=1h"));
    let end = b
        .js("return Number(document.querySelector('svg.chart').dataset.end)")
        .as_i64()
        .unwrap_or(0);
    b.send_keys(".range-links a.zoom-in", ENTER);
    assert!(
        b.wait_for("location.search.includes('from=')", Duration::from_secs(10)),
        "{}",
        b.url()
    );
    let (from, to) = (
        b.js("return Number(new URLSearchParams(location.search).get('from'))")
            .as_i64()
            .unwrap_or(0),
        b.js("return Number(new URLSearchParams(location.search).get('to'))")
            .as_i64()
            .unwrap_or(0),
    );
    assert!(
        (to - from - 1_800_000).abs() < 2,
        "half an hour: {from}..{to}"
    );
    assert!(
        (end - 900_000 - to).abs() < 5_000,
        "around the middle: {to} vs {end}"
    );
    assert_eq!(b.text("document.getElementById('explore-q').value"), "up");
    // A window in the past can move later; picking a named range leaves the zoom.
    assert!(
        b.js("return document.querySelector('.range-links a.later') !== null")
            .as_bool()
            == Some(true)
    );
    b.js("const s = document.querySelector('select[name=range]'); s.value = '15m'; s.dispatchEvent(new Event('change')); return 1");
    assert!(b.wait_for(
        "new URLSearchParams(location.search).get('range') === '15m' && document.querySelector('select[name=range]').value === '15m'",
        Duration::from_secs(10)
    ));
    assert!(b.errors().is_empty());
}

/// Without a browser (as without JavaScript): the page is a form, the CSV
/// is a plain download with label columns and no formula a spreadsheet
/// would run, and panels link to Explore with their range.
#[test]
fn explore_works_as_plain_html() {
    let server = TestServer::start(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\n",
    );
    support::wait_for("a self-scrape", Duration::from_secs(30), || {
        let r: Value = client()
            .get(server.url("/api/v1/query?query=up"))
            .send()
            .and_then(|r| r.json())
            .map_err(|e| e.to_string())?;
        if r["data"]["result"][0].is_object() {
            Ok(())
        } else {
            Err(r.to_string())
        }
    });
    let page = client()
        .get(server.url("/explore?q=up&view=table&range=15m"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(r#"<form class="explore" id="explore-form" method="get" action="/explore">"#)
            && page.contains(r#"<input type="hidden" name="range" value="15m">"#)
            && page.contains(r#"<label for="explore-q">"#)
            && page.contains(r#"href="/explore/csv?q=up&#38;range=15m""#),
        "{page}"
    );
    let csv = client()
        .get(server.url("/explore/csv"))
        .query(&[
            (
                "q",
                "label_replace(up, \"note\", \"=HYPERLINK(1)\", \"\", \"\")",
            ),
            ("range", "15m"),
        ])
        .send()
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("__name__,instance,job,note,timestamp,value")
    );
    let row = lines.next().unwrap_or("");
    assert!(
        row.starts_with("up,") && row.contains(",'=HYPERLINK(1),") && row.ends_with(",1"),
        "{text}"
    );
    let missing = client().get(server.url("/explore/csv?q=")).send().unwrap();
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("missing parameter q"),
        "{body}"
    );
    let bad = client()
        .get(server.url("/explore/csv?q=sum("))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    // The Overview's panels link to Explore with their query and the range.
    let overview = client()
        .get(server.url("/?range=6h"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        overview.contains(r#"<a class="explore-link" href="/explore?q=process_resident_memory_bytes%7Bjob%3D%22infermon%22%7D&amp;range=6h""#),
        "{overview}"
    );
}

/// The first Tab stop skips to the content; focus is always drawn; the
/// zoom links are reached by Tab and followed with Enter.
fn keyboard_focus(b: &Browser, server: &TestServer) {
    b.go(&server.url("/explore?q=up&range=1h"));
    b.press(TAB);
    assert_eq!(b.text("document.activeElement.className"), "skip-link");
    assert_ne!(
        b.text("getComputedStyle(document.activeElement).outlineStyle"),
        "none",
        "focus is visible"
    );
    let mut reached = false;
    for _ in 0..40 {
        b.press(TAB);
        if b.text("document.activeElement.className") == "zoom-out" {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab reaches the zoom-out link");
    assert_ne!(
        b.text("getComputedStyle(document.activeElement).outlineStyle"),
        "none"
    );
    b.press(ENTER);
    assert!(b.wait_for(
        "new URLSearchParams(location.search).get('from') !== null",
        Duration::from_secs(10)
    ));
    let span = b.js("const p = new URLSearchParams(location.search); return Number(p.get('to')) - Number(p.get('from'))");
    assert_eq!(span.as_i64(), Some(7_200_000), "zoomed out to two hours");
}
