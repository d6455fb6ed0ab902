//! The dashboard in a real headless Chromium (Debian packages chromium and
//! chromium-driver), driven over WebDriver: every page loads without console
//! errors, charts carry their series, Chinese renders, and a silence is
//! created and expired through the UI. Screenshots go to
//! `target/screenshots/` for a person to look at.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{TestServer, client, free_port, wait_http_ok};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Browser {
    base: String,
    session: String,
    _driver: Peer,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Peer(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (Debian package chromium-driver) must be installed: run scripts/install-test-deps.sh"),
        );
        let base = format!("http://127.0.0.1:{port}");
        assert!(
            wait_http_ok(&format!("{base}/status"), Duration::from_secs(20)),
            "chromedriver did not start"
        );
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--window-size=1400,1800"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let r: Value = client()
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        Browser {
            base,
            session,
            _driver: driver,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let req = match method {
            "GET" => client().get(url),
            _ => client().post(url).json(&body),
        };
        let v: Value = req.send().unwrap().json().unwrap();
        v["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url}));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Console messages at SEVERE level since the last call.
    fn errors(&self) -> Vec<String> {
        let logs = self.cmd("POST", "/se/log", json!({"type": "browser"}));
        logs.as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["level"] == "SEVERE")
                    .map(|e| e["message"].as_str().unwrap_or("").to_string())
                    // The favicon is not served; browsers always ask.
                    .filter(|m| !m.contains("favicon.ico"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn screenshot(&self, name: &str) {
        let png = self.cmd("GET", "/screenshot", Value::Null);
        if let Some(b64) = png.as_str() {
            use base64::Engine;
            let dir = support::repo_root().join("target/screenshots");
            let _ = std::fs::create_dir_all(&dir);
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
                let _ = std::fs::write(dir.join(format!("{name}.png")), bytes);
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = client()
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
    }
}

#[test]
fn dashboard_pages_in_a_real_browser() {
    let server = TestServer::start(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\nsnapshots:\n  enabled: true\n",
    );
    // A few self-scrapes so charts have data.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r: Value = client()
            .get(server.url("/api/v1/query?query=count(up)"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if r["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            || Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(3));
    let b = Browser::start();
    for (page, name) in [
        ("/?range=15m", "overview"),
        (
            "/explore?q=rate(infermon_http_requests_total%5B1m%5D)&range=15m",
            "explore",
        ),
        ("/dashboards/host?range=15m", "host"),
        ("/targets", "targets"),
        ("/alerts", "alerts"),
        ("/snapshots", "snapshots"),
        ("/status", "status"),
    ] {
        b.go(&server.url(page));
        let title = b.js("return document.title");
        assert!(
            title.as_str().unwrap_or("").contains("infermon"),
            "{page}: title {title}"
        );
        b.screenshot(name);
        let errors = b.errors();
        assert!(errors.is_empty(), "{page}: console errors: {errors:?}");
    }
    // Explore draws one line per series the query returns.
    b.go(&server.url("/explore?q=up&range=15m"));
    let paths = b.js("return document.querySelectorAll('svg.chart path.series').length");
    let series = b.js("return Number(document.querySelector('article.panel').dataset.series)");
    assert!(
        paths.as_u64().unwrap_or(0) >= 1 && paths == series,
        "paths {paths} series {series}"
    );
    // The script localised the axis labels and added the tooltip on hover.
    let labelled = b.js("return document.querySelectorAll('text[data-ts]').length");
    assert!(labelled.as_u64().unwrap_or(0) > 0);
    // Targets: the self-scrape is up.
    b.go(&server.url("/targets"));
    assert!(
        b.js("return document.querySelector('#targets .health-up') !== null")
            .as_bool()
            .unwrap_or(false)
    );
    // Chinese.
    b.go(&server.url("/status?lang=zh"));
    let text = b
        .js("return document.body.innerText")
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(text.contains("运行时间") && text.contains("告警"), "{text}");
    b.screenshot("status-zh");
    // The choice is remembered by cookie.
    b.go(&server.url("/alerts"));
    assert!(b.js("return document.documentElement.lang").as_str() == Some("zh-CN"));
    b.go(&server.url("/alerts?lang=en"));
    // Create a silence through the form, then expire it.
    b.js("document.querySelector('input[name=matchers]').value = 'alertname=\"BrowserTest\"'; document.querySelector('.silence-form').submit(); return 1");
    std::thread::sleep(Duration::from_millis(800));
    let rows = b.js("return document.querySelectorAll('#silences tr.silence.active').length");
    assert_eq!(
        rows.as_u64(),
        Some(1),
        "silence created: {}",
        b.js("return document.body.innerText")
    );
    b.js("document.querySelector('#silences tr.silence.active form').submit(); return 1");
    std::thread::sleep(Duration::from_millis(800));
    let active = b.js("return document.querySelectorAll('#silences tr.silence.active').length");
    assert_eq!(active.as_u64(), Some(0), "silence expired");
    b.screenshot("alerts-after-silence");
    assert!(b.errors().is_empty());
    // A form without the page's token is refused.
    let r = client()
        .post(server.url("/alerts/silences"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("matchers=a%3D%22b%22&csrf=wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
}
