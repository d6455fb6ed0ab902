//! The dashboard in a real headless Chromium (Debian packages chromium and
//! chromium-driver), driven over WebDriver: every page loads without console
//! errors or failed requests, charts carry their series, drag-to-zoom moves
//! the URL's range, auto-refresh swaps values in without a reload, Chinese
//! renders, a silence is created and expired through the UI, dashboards are
//! uploaded through the form, login, roles and CSRF are enforced.
//! Screenshots go to `target/screenshots/` for a person to look at.
//! Without a browser: uploads survive a restart, and the Overview for 24h
//! of data stays under its size budget.

use crate::support;

#[path = "../bench/dashboard/series.rs"]
mod series;

/// Explore and the accessibility checks, in this binary to share its build.
#[path = "browser/explore.rs"]
mod explore;

/// Grafana dashboards and the no-GPU Overview, likewise.
#[path = "browser/dashboards.rs"]
mod dashboards;

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

    /// Runs `body` (which may `await`) and returns what it returns.
    fn js_async(&self, body: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            json!({"script": format!("const done = arguments[arguments.length - 1]; (async () => {{ {body} }})().then(done, e => done(String(e)));"), "args": []}),
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

    /// Requests of this page (the document and what it loaded) answered
    /// with an HTTP error; requests that got no answer at all show up as
    /// console errors (`net::ERR_…`).
    fn failed_requests(&self) -> Vec<String> {
        let v = self.js(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
               .filter(e => e.responseStatus >= 400)
               .map(e => e.name + ' ' + e.responseStatus)",
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .filter(|m| !m.contains("favicon.ico"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The first element matching `css`.
    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        );
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Waits until `condition` (a JS expression) is true.
    fn wait_for(&self, condition: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.js(&format!("return !!({condition})")).as_bool() == Some(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Loads `url`, checks it for console errors and failed requests, and
    /// keeps a screenshot named `name`.
    fn visit_clean(&self, url: &str, name: &str) {
        self.go(url);
        self.screenshot(name);
        let errors = self.errors();
        assert!(errors.is_empty(), "{url}: console errors: {errors:?}");
        let failed = self.failed_requests();
        assert!(failed.is_empty(), "{url}: failed requests: {failed:?}");
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
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\nsnapshots:\n  enabled: true\ndashboards:\n  - {repo}/tests/testdata/dashboards/all-panels.json\n",
    );
    // A few self-scrapes so charts have data.
    support::wait_for(
        "four self-scrapes in the store",
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
            if n >= 4.0 { Ok(()) } else { Err(r.to_string()) }
        },
    );
    let b = Browser::start();
    for (page, name) in [
        ("/?range=15m", "overview"),
        (
            "/explore?q=rate(infermon_http_requests_total%5B1m%5D)&range=15m",
            "explore",
        ),
        ("/dashboards", "dashboards"),
        ("/dashboards/host?range=15m", "host"),
        ("/dashboards/all-panels?range=15m", "all-panels"),
        ("/targets", "targets"),
        ("/alerts", "alerts"),
        ("/snapshots", "snapshots"),
        ("/status", "status"),
    ] {
        b.visit_clean(&server.url(page), name);
        let title = b.js("return document.title");
        assert!(
            title.as_str().unwrap_or("").contains("infermon"),
            "{page}: title {title}"
        );
    }
    // The Grafana fixture: every panel drawn, the unsupported one as a placeholder.
    b.go(&server.url("/dashboards/all-panels?range=15m"));
    assert_eq!(
        b.js("return document.querySelectorAll('article.panel').length")
            .as_u64(),
        Some(12)
    );
    assert_eq!(
        b.js("return document.querySelectorAll('article.panel .placeholder').length")
            .as_u64(),
        Some(2),
        "piechart and the Loki panel"
    );
    assert!(
        b.js("return document.querySelector('article[data-kind=heatmap] svg rect') !== null")
            .as_bool()
            .unwrap_or(false),
        "the heatmap has cells"
    );
    zoom_and_refresh(&b, &server);
    upload_through_the_form(&b, &server);
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
    b.wait_for(
        "document.readyState == 'complete' && document.querySelectorAll('#silences tr.silence.active').length == 1",
        Duration::from_secs(20),
    );
    let rows = b.js("return document.querySelectorAll('#silences tr.silence.active').length");
    assert_eq!(
        rows.as_u64(),
        Some(1),
        "silence created: {}",
        b.js("return document.body.innerText")
    );
    b.js("document.querySelector('#silences tr.silence.active form').submit(); return 1");
    b.wait_for(
        "document.readyState == 'complete' && document.querySelectorAll('#silences tr.silence.expired').length == 1",
        Duration::from_secs(20),
    );
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

/// Drag-to-zoom writes the dragged range into the URL; auto-refresh swaps a
/// changed value in without reloading the page.
fn zoom_and_refresh(b: &Browser, server: &TestServer) {
    b.go(&server.url("/explore?q=up&range=15m"));
    let (start, end) = (
        b.js("return Number(document.querySelector('svg.chart').dataset.start)")
            .as_i64()
            .unwrap_or(0),
        b.js("return Number(document.querySelector('svg.chart').dataset.end)")
            .as_i64()
            .unwrap_or(0),
    );
    // A drag from 40 % to 70 % of the plot, as pointer events the script listens to.
    b.js("const svg = document.querySelector('svg.chart'); const r = svg.getBoundingClientRect();
          const at = f => r.left + (64 + f * (600 - 72)) / 600 * r.width, y = r.top + r.height / 2;
          const fire = (type, f) => svg.dispatchEvent(new MouseEvent(type, {clientX: at(f), clientY: y, bubbles: true}));
          fire('mousedown', 0.4); fire('mousemove', 0.55); fire('mousemove', 0.7); fire('mouseup', 0.7); return 1");
    assert!(
        b.wait_for("location.search.includes('from=')", Duration::from_secs(10)),
        "zoom did not navigate: {}",
        b.url()
    );
    let url = reqwest::Url::parse(&b.url()).unwrap();
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse::<i64>().ok())
    };
    let (from, to) = (get("from").unwrap(), get("to").unwrap());
    let span = (end - start) as f64;
    assert!(
        ((from - start) as f64 / span - 0.4).abs() < 0.03
            && ((to - start) as f64 / span - 0.7).abs() < 0.03,
        "zoomed to {from}..{to} of {start}..{end}"
    );
    assert!(url.query_pairs().all(|(k, _)| k != "range"));
    assert_eq!(
        b.js("return Number(document.querySelector('svg.chart').dataset.start)")
            .as_i64(),
        Some(from),
        "the page was drawn for the zoomed range"
    );
    b.screenshot("explore-zoomed");

    // Auto-refresh: a counter of this server's own requests, refreshed every 5 s.
    b.go(
        &server.url("/explore?q=sum(infermon_http_requests_total)&view=table&range=15m&refresh=5s")
    );
    let cell = "document.querySelector('#panels td.num').textContent";
    let before = b.js(&format!("window.__noReload = 'kept'; return {cell}"));
    for _ in 0..60 {
        client().get(server.url("/health")).send().unwrap();
    }
    assert!(
        b.wait_for(&format!("{cell} !== {before}"), Duration::from_secs(20)),
        "value stayed {before}"
    );
    assert_eq!(
        b.js("return window.__noReload").as_str(),
        Some("kept"),
        "refreshed without reloading the page"
    );
    assert!(b.errors().is_empty() && b.failed_requests().is_empty());
}

/// A bad file shows the parser's error on the page; a good one is listed and drawn.
fn upload_through_the_form(b: &Browser, server: &TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, "{\"title\": \"half\", \"panels\": [").unwrap();
    b.go(&server.url("/dashboards"));
    b.type_into("input[type=file]", &bad.display().to_string());
    b.click(".upload-form button");
    assert!(b.wait_for(
        "document.querySelector('#upload-error')",
        Duration::from_secs(10)
    ));
    let error = b.js("return document.querySelector('#upload-error').textContent");
    assert!(
        error
            .as_str()
            .unwrap_or("")
            .contains("not a Grafana dashboard"),
        "{error}"
    );
    b.screenshot("dashboards-upload-error");
    b.errors(); // the 422 answer itself is logged by the browser
    let good = dir.path().join("gpu.json");
    std::fs::write(
        &good,
        r#"{"title": "Uploaded GPU board", "uid": "uploaded-gpu", "panels": [
             {"type": "stat", "title": "Up", "gridPos": {"h": 4, "w": 6, "x": 0, "y": 0}, "targets": [{"expr": "sum(up)"}]},
             {"type": "timeseries", "title": "Scrape time", "gridPos": {"h": 8, "w": 12, "x": 6, "y": 0},
              "targets": [{"expr": "scrape_duration_seconds", "legendFormat": "{{job}}"}], "fieldConfig": {"defaults": {"unit": "s"}}}]}"#,
    )
    .unwrap();
    b.type_into("input[type=file]", &good.display().to_string());
    b.click(".upload-form button");
    assert!(b.wait_for(
        "document.querySelector('#upload-message') && document.querySelector('li[data-uid=\"uploaded-gpu\"]')",
        Duration::from_secs(10)
    ));
    b.screenshot("dashboards-uploaded");
    b.click("li[data-uid=\"uploaded-gpu\"] a");
    assert!(b.wait_for(
        "document.querySelectorAll('article.panel').length === 2",
        Duration::from_secs(10)
    ));
    assert!(b.errors().is_empty() && b.failed_requests().is_empty());
}

#[test]
fn login_roles_and_csrf_in_a_real_browser() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let server = TestServer::start(&format!(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\n  auth:\n    api_keys: [k-1]\n    basic_auth_users:\n      admin: '{hash}'\n      viewer:\n        password_hash: '{hash}'\n        role: read_only\nstorage:\n  path: {{dir}}/data\nmodels: []\n"
    ));
    // API callers keep getting JSON 401s, never the login page.
    let r = client()
        .get(server.url("/api/v1/query?query=up"))
        .header("accept", "text/html")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // Read-only users cannot change silences through the API either.
    let r = client()
        .post(server.url("/api/v2/silences"))
        .basic_auth("viewer", Some("s3cret"))
        .json(
            &json!({"matchers": [{"name": "a", "value": "b", "isRegex": false}],
                      "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2036-01-01T00:00:00Z",
                      "createdBy": "t", "comment": "c"}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().unwrap()["error_type"], "forbidden");

    let b = Browser::start();
    b.go(&server.url("/alerts"));
    assert!(
        b.url().contains("/login?next=%2Falerts"),
        "pages redirect to the login: {}",
        b.url()
    );
    b.visit_clean(&server.url("/login?next=%2Falerts&lang=zh"), "login-zh");
    assert!(
        b.js("return document.body.innerText")
            .as_str()
            .unwrap_or("")
            .contains("登录")
    );
    let axe = explore::axe_source();
    assert!(
        b.axe_violations(&axe).is_empty(),
        "login (zh): {:?}",
        b.axe_violations(&axe)
    );
    b.visit_clean(&server.url("/login?next=%2Falerts&lang=en"), "login");
    let violations = b.axe_violations(&axe);
    assert!(violations.is_empty(), "login: {violations:#?}");
    // A wrong password: the form again, with the reason.
    b.type_into("input[name=username]", "viewer");
    b.type_into("input[name=password]", "wrong");
    b.click(".login-form button");
    assert!(b.wait_for(
        "document.querySelector('#login-error')",
        Duration::from_secs(10)
    ));
    b.errors();
    // The read-only user.
    login(&b, &server, "viewer");
    assert!(
        b.url().ends_with("/alerts"),
        "back where they wanted: {}",
        b.url()
    );
    assert!(
        b.js("return document.querySelector('#user').textContent")
            .as_str()
            == Some("viewer")
    );
    assert!(
        !b.js("return document.cookie")
            .as_str()
            .unwrap_or("")
            .contains("infermon_session"),
        "the session cookie is HttpOnly"
    );
    assert!(
        b.js("return document.querySelector('.silence-form') === null")
            .as_bool()
            == Some(true),
        "no silence form for read-only users"
    );
    // Posting one anyway, with the session's own token: a readable 403 page.
    b.js("const f = document.createElement('form'); f.method = 'post'; f.action = '/alerts/silences';
          for (const [k, v] of [['csrf', document.querySelector('meta[name=csrf-token]').content], ['matchers', 'alertname=\"X\"']]) {
            const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i); }
          document.body.appendChild(f); f.submit(); return 1");
    assert!(b.wait_for(
        "document.querySelector('#forbidden')",
        Duration::from_secs(10)
    ));
    assert!(
        b.js("return document.body.innerText")
            .as_str()
            .unwrap_or("")
            .contains("read-only")
    );
    b.screenshot("forbidden-read-only");
    let violations = b.axe_violations(&axe);
    assert!(violations.is_empty(), "forbidden: {violations:#?}");
    b.errors();
    // Log out: back at the login, and the old session is gone.
    b.go(&server.url("/alerts"));
    b.click("#logout");
    assert!(b.wait_for("location.pathname === '/login'", Duration::from_secs(10)));
    b.go(&server.url("/status"));
    assert!(b.url().contains("/login"), "logged out: {}", b.url());

    // The admin: forms work with the session's token and fail without it.
    login(&b, &server, "admin");
    b.go(&server.url("/alerts"));
    let post = |body: &str| {
        b.js_async(&format!(
            "const r = await fetch('/alerts/silences', {{method: 'POST', headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}, body: {body}}}); return r.status"
        ))
    };
    assert_eq!(
        post("'matchers=a%3D%22b%22'").as_u64(),
        Some(403),
        "no token"
    );
    assert_eq!(
        post("'matchers=a%3D%22b%22&csrf=not-the-token'").as_u64(),
        Some(403),
        "wrong token"
    );
    b.errors();
    b.js("document.querySelector('input[name=matchers]').value = 'alertname=\"AdminTest\"'; document.querySelector('.silence-form').submit(); return 1");
    assert!(b.wait_for(
        "document.querySelectorAll('#silences tr.silence.active').length === 1",
        Duration::from_secs(10)
    ));
    assert_eq!(
        b.js("return document.querySelector('#silences tr.silence.active').textContent.includes('admin')")
            .as_bool(),
        Some(true),
        "created by the logged-in user"
    );
    b.visit_clean(&server.url("/alerts"), "alerts-admin");
    let violations = b.axe_violations(&axe);
    assert!(violations.is_empty(), "alerts as admin: {violations:#?}");
    b.visit_clean(&server.url("/?range=15m"), "overview-logged-in");
}

fn login(b: &Browser, server: &TestServer, user: &str) {
    b.go(&server.url("/login?next=%2Falerts"));
    b.type_into("input[name=username]", user);
    b.type_into("input[name=password]", "s3cret");
    b.click(".login-form button");
    assert!(
        b.wait_for("location.pathname !== '/login'", Duration::from_secs(10)),
        "{user} could not log in"
    );
}

#[test]
fn uploaded_dashboards_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let config = format!(
        "server:\n  listen: 127.0.0.1:0\n  auth:\n    api_keys: [k-1]\n    basic_auth_users:\n      viewer:\n        password_hash: '{hash}'\n        role: read_only\nstorage:\n  path: {}\nmodels: []\n",
        data.path().display()
    );
    let board = r#"{"dashboard": {"title": "Kept", "uid": "kept",
        "panels": [{"type": "stat", "title": "Up", "targets": [{"expr": "sum(up)"}]}]}, "overwrite": true}"#;
    {
        let server = TestServer::start(&config);
        let upload = |body: &str| {
            client()
                .post(server.url("/dashboards/upload"))
                .bearer_auth("k-1")
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .unwrap()
        };
        let bad = upload("{\"panels\": [");
        assert_eq!(bad.status(), 422);
        assert!(
            bad.json::<Value>().unwrap()["error"]
                .as_str()
                .unwrap_or("")
                .contains("EOF")
        );
        let taken = upload(r#"{"uid": "inference", "panels": []}"#);
        assert_eq!(taken.status(), 422, "built-in uids are not replaced");
        let ok = upload(board);
        assert_eq!(ok.status(), 201);
        assert_eq!(ok.json::<Value>().unwrap()["url"], "/dashboards/kept");
        let denied = client()
            .post(server.url("/dashboards/upload"))
            .basic_auth("viewer", Some("pw"))
            .header("content-type", "application/json")
            .body(board)
            .send()
            .unwrap();
        assert_eq!(denied.status(), 403, "read-only users cannot upload");
        assert!(data.path().join("dashboards/kept.json").is_file());
    }
    let server = TestServer::start(&config);
    let page = client()
        .get(server.url("/dashboards/kept"))
        .basic_auth("viewer", Some("pw"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().unwrap();
    assert!(
        html.contains("<h1>Kept</h1>") && html.contains("data-kind=\"stat\""),
        "{html}"
    );
    let list = client()
        .get(server.url("/dashboards"))
        .basic_auth("viewer", Some("pw"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        list.contains("/dashboards/kept") && !list.contains("upload-form"),
        "read-only: no form"
    );
}

/// The Overview for a day of a busy box's data weighs under 300 KB (the
/// time it takes is measured by bench/dashboard/run.sh, not asserted here).
#[test]
fn overview_for_24h_of_data_stays_under_300_kb() {
    let data = tempfile::tempdir().unwrap();
    let store = infermon::storage::SqliteStorage::open(
        data.path(),
        infermon::storage::StorageOptions {
            min_free_disk: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let step = 60_000;
    let end = infermon::util::now_ms() / step * step;
    let samples = series::fill(&store, end - 86_400_000, end, step).unwrap();
    assert!(samples > 150_000, "{samples}");
    store.close().unwrap();
    drop(store);
    let server = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {}\nmodels: []\nscrape_configs:\n  - job_name: infermon\nsnapshots:\n  enabled: false\n",
        data.path().display()
    ));
    let page = client()
        .get(server.url("/?range=24h"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!page.contains("Query error"), "every panel's query ran");
    assert_eq!(page.matches("<article class=\"panel").count(), 20);
    assert!(
        page.matches("class=\"series\"").count() >= 25,
        "the day's series are drawn"
    );
    assert!(page.contains("class=\"chart heatmap\"") && page.contains("<rect"));
    assert!(
        page.len() < 300 * 1024,
        "the Overview for 24h weighs {} bytes",
        page.len()
    );
}
