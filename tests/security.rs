//! What the binary lets out and lets in: secrets in URLs and headers never
//! reach answers, pages, logs or metric labels; credentials cannot be
//! guessed without limit; browsers on other sites cannot act for the
//! operator; HTTP input cannot grow metric label sets. Every test runs the
//! real binary over HTTP.

use crate::support;

use std::time::{Duration, Instant};

use support::{TestServer, client, free_port};

/// Waits until `ok`, up to `timeout`; fails with `what` and the log.
fn wait_on(server: &TestServer, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get_text(server: &TestServer, path: &str) -> String {
    let resp = client().get(server.url(path)).send().unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.text().unwrap()
}

/// Fails when `text` (named `where_`) holds any of `secrets`, or a DingTalk
/// `sign=` with a real value.
fn assert_no_secret(where_: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{where_} leaks {s}:\n{text}");
    }
    for (i, _) in text.match_indices("sign=") {
        let rest = &text[i + 5..];
        assert!(
            rest.starts_with("<secret>")
                || rest.starts_with("&lt;secret&gt;")
                || rest.starts_with("\\u003csecret"),
            "{where_} leaks a signature: {}",
            &text[i..(i + 60).min(text.len())]
        );
    }
}

#[test]
fn robot_tokens_and_remote_write_credentials_never_leave_the_process() {
    // Nothing listens on `dead`: every send fails with a transport error,
    // whose message names the URL.
    let dead = free_port();
    let server = TestServer::start(&format!(
        r#"global: {{scrape_interval: 1s}}
server: {{listen: '127.0.0.1:0'}}
models: []
storage: {{path: '{{dir}}/data'}}
remote_write:
  - url: http://127.0.0.1:{dead}/api/v1/write?api_key=RWQUERYSECRET
    headers: {{X-Scope-OrgID: RWHEADERSECRET}}
    bearer_token: RWBEARERSECRET
    queue_config: {{batch_send_deadline: 100ms, min_backoff: 10ms, max_backoff: 50ms}}
alerting:
  route:
    receiver: robots
    group_wait: 50ms
  receivers:
    - name: robots
      dingtalk_configs:
        - url: http://127.0.0.1:{dead}/robot/send?access_token=DINGTOKENSECRET
          secret: SECDINGSECRET
      wecom_configs:
        - url: http://127.0.0.1:{dead}/cgi-bin/webhook/send?key=WECOMKEYSECRET
      feishu_configs:
        - url: http://127.0.0.1:{dead}/open-apis/bot/v2/hook/FEISHUHOOKSECRET
"#
    ));
    let c = client();
    let resp = c
        .post(server.url("/api/v2/alerts"))
        .json(&serde_json::json!([{"labels": {"alertname": "DiskNearlyFull"}}]))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_on(
        &server,
        "a failed attempt on every robot",
        Duration::from_secs(30),
        || {
            let v: serde_json::Value = c
                .get(server.url("/api/v1/notifications"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            let queued = v["data"]["queued"].as_array().cloned().unwrap_or_default();
            queued.len() == 3
                && queued
                    .iter()
                    .all(|q| q["lastError"].as_str().is_some_and(|e| !e.is_empty()))
        },
    );
    wait_on(
        &server,
        "a failed remote_write request in the log",
        Duration::from_secs(90),
        || server.log().contains("remote_write request failed"),
    );
    let secrets = [
        "DINGTOKENSECRET",
        "SECDINGSECRET",
        "WECOMKEYSECRET",
        "FEISHUHOOKSECRET",
        "RWQUERYSECRET",
        "RWHEADERSECRET",
        "RWBEARERSECRET",
    ];
    let notifications = get_text(&server, "/api/v1/notifications");
    // The errors still say what happened and where.
    assert!(
        notifications.contains("/robot/send?access_token=<secret>")
            || notifications.contains("/robot/send?access_token=\\u003csecret"),
        "{notifications}"
    );
    for (name, text) in [
        ("/api/v1/notifications", notifications),
        ("/alerts", get_text(&server, "/alerts")),
        (
            "/api/v1/status/config",
            get_text(&server, "/api/v1/status/config"),
        ),
        ("/status", get_text(&server, "/status")),
        ("/metrics", get_text(&server, "/metrics")),
        ("the log", server.log()),
    ] {
        assert_no_secret(name, &text, &secrets);
    }
    let metrics = get_text(&server, "/metrics");
    assert!(
        metrics.contains(&format!(
            "url=\"http://127.0.0.1:{dead}/api/v1/write?api_key=<secret>\""
        )),
        "{metrics}"
    );
}

/// A client that does not follow redirects.
fn plain_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn auth_config(extra: &str, users: &[(&str, &str, &str)]) -> String {
    let mut yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n{extra}  auth:\n    api_keys: [the-right-key]\n    basic_auth_users:\n"
    );
    for (name, hash, role) in users {
        yaml.push_str(&format!(
            "      {name}: {{password_hash: '{hash}', role: {role}}}\n"
        ));
    }
    yaml.push_str("storage:\n  path: {dir}/data\nmodels: []\n");
    yaml
}

/// The login form's token.
fn login_csrf(c: &reqwest::blocking::Client, server: &TestServer) -> String {
    let page = c.get(server.url("/login")).send().unwrap().text().unwrap();
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field on the login page")
        .to_string()
}

fn login(
    c: &reqwest::blocking::Client,
    server: &TestServer,
    user: &str,
    password: &str,
    next: &str,
) -> reqwest::blocking::Response {
    let csrf = login_csrf(c, server);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("username", user)
        .append_pair("password", password)
        .append_pair("next", next)
        .finish();
    c.post(server.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn basic_auth_and_api_keys_count_in_the_login_limiter() {
    let hash = bcrypt::hash("right", 4).unwrap();
    let server = TestServer::start(&auth_config("", &[("admin", &hash, "admin")]));
    let c = plain_client();
    let query = |user: &str, pw: &str| {
        c.get(server.url("/api/v1/status/buildinfo"))
            .basic_auth(user, Some(pw))
            .send()
            .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(query("admin", "guess").status(), 401);
    }
    // Locked like the login form: even the right password waits.
    let r = query("admin", "right");
    assert_eq!(r.status(), 429, "basic auth guesses are limited");
    let retry: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "retry-after {retry}");
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error_type"], "too_many_failures", "{body}");
    // The login form shares the count.
    assert_eq!(login(&c, &server, "admin", "right", "/").status(), 429);

    // Wrong API keys count against the address: it locks within the
    // per-address bound (20, five of which the guesses above used).
    let bearer = |key: &str| {
        c.get(server.url("/api/v1/status/buildinfo"))
            .bearer_auth(key)
            .send()
            .unwrap()
            .status()
    };
    let mut locked_after = None;
    for i in 0..25 {
        if bearer("wrong-key") == 429 {
            locked_after = Some(i);
            break;
        }
    }
    assert_eq!(
        locked_after,
        Some(15),
        "wrong API keys are limited per address"
    );
    assert_eq!(bearer("the-right-key"), 429);
}

#[test]
fn password_checks_do_not_stall_the_async_threads() {
    // bcrypt at cost 12 takes ~250 ms. 32 clients guess at once; on the old
    // code every guess ran bcrypt on an async worker and /health waited.
    let hash = bcrypt::hash("right", 12).unwrap();
    let server = TestServer::start(&auth_config("", &[("admin", &hash, "admin")]));
    let health_url = server.url("/health");
    let url = server.url("/api/v1/status/buildinfo");
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(33));
    let guessers: Vec<_> = (0..32)
        .map(|i| {
            let (url, statuses, barrier) = (url.clone(), statuses.clone(), barrier.clone());
            std::thread::spawn(move || {
                let c = plain_client();
                barrier.wait();
                let s = c
                    .get(&url)
                    .basic_auth("admin", Some(format!("guess-{i}")))
                    .send()
                    .unwrap()
                    .status()
                    .as_u16();
                statuses.lock().unwrap().push(s);
            })
        })
        .collect();
    let c = plain_client();
    assert_eq!(c.get(&health_url).send().unwrap().status(), 200);
    barrier.wait();
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while guessers.iter().any(|g| !g.is_finished()) {
        assert!(Instant::now() < deadline, "guessers did not finish");
        let t = Instant::now();
        assert_eq!(c.get(&health_url).send().unwrap().status(), 200);
        latencies.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    for g in guessers {
        g.join().unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    let wrong = statuses.iter().filter(|&&s| s == 401).count();
    latencies.sort();
    let polls = latencies.len();
    let worst = latencies[polls - 1];
    eprintln!(
        "/health median {:?}, worst {worst:?} over {polls} polls; statuses {statuses:?}",
        latencies[polls / 2]
    );
    assert!(polls >= 3, "only {polls} polls while guessing");
    // On the old code one poll waited 10.8 s; a busy shared test machine
    // adds stalls of ~0.2 s at most.
    assert!(
        worst < Duration::from_secs(1),
        "/health took {worst:?} while passwords were checked"
    );
    // Five failures lock the name; at most the two checks in flight then finish.
    assert!(wrong <= 7, "{wrong} guesses were checked: {statuses:?}");
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
}

#[test]
fn other_sites_cannot_change_or_read_an_unauthenticated_server() {
    let c = plain_client();
    // The default config: no auth, nothing allowed beyond this server.
    {
        let server = TestServer::start(
            "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\n",
        );
        let port = server.addr.rsplit(':').next().unwrap().to_string();
        for path in [
            "/api/v2/silences",
            "/api/v1/admin/snapshot",
            "/api/v1/admin/backup",
            "/api/v1/write",
        ] {
            let r = c
                .post(server.url(path))
                .header("origin", "http://evil.example")
                .send()
                .unwrap();
            assert_eq!(r.status(), 403, "{path} from another site");
        }
        let r = c
            .get(server.url("/api/v1/status/config"))
            .header("host", format!("rebind.evil.example:{port}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "a DNS-rebinding page reads");
    }
    let server = TestServer::start(
        "server:\n  listen: 127.0.0.1:0\n  allowed_hosts: [infermon.lan]\n  allowed_origins: ['https://grafana.example']\nstorage:\n  path: {dir}/data\nmodels: []\n",
    );
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let silence = |headers: &[(&str, String)]| {
        let mut r = c
            .post(server.url("/api/v2/silences"))
            .header("content-type", "application/json")
            .body("{}");
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r.send().unwrap()
    };
    // No Origin (curl, vmagent): the handler answers (no matchers: 4xx).
    let answered = silence(&[]).status();
    assert!(answered.is_client_error() && answered != 403, "{answered}");
    assert_eq!(
        silence(&[("origin", format!("http://127.0.0.1:{port}"))]).status(),
        answered,
        "same origin"
    );
    assert_eq!(
        silence(&[("origin", "https://grafana.example".into())]).status(),
        answered,
        "an allowed origin"
    );
    for headers in [
        vec![("origin", "http://evil.example".to_string())],
        vec![("origin", "null".to_string())],
        vec![("referer", "http://evil.example/page".to_string())],
    ] {
        let r = silence(&headers);
        assert_eq!(r.status(), 403, "{headers:?}");
        let body: serde_json::Value = r.json().unwrap();
        assert_eq!(body["error_type"], "cross_origin", "{body}");
    }
    for path in [
        "/api/v1/admin/snapshot",
        "/api/v1/admin/backup",
        "/api/v1/write",
    ] {
        let r = c
            .post(server.url(path))
            .header("origin", "http://evil.example")
            .send()
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    // DNS rebinding: a page on another name that resolves here cannot read.
    let read = |host: &str| {
        c.get(server.url("/api/v1/status/config"))
            .header("host", host)
            .send()
            .unwrap()
    };
    let r = read(&format!("rebind.evil.example:{port}"));
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error_type"], "forbidden_host", "{body}");
    assert_eq!(read(&format!("localhost:{port}")).status(), 200);
    assert_eq!(read(&format!("infermon.lan:{port}")).status(), 200);
    assert_eq!(read(&format!("127.0.0.1:{port}")).status(), 200);
}

/// `<meta name="csrf-token">` of a page.
fn page_token(page: &str) -> String {
    page.split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf meta on the page")
        .to_string()
}

#[test]
fn read_only_users_never_see_an_admins_form_token() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let server = TestServer::start(&auth_config(
        "",
        &[("admin", &hash, "admin"), ("viewer", &hash, "read_only")],
    ));
    let c = plain_client();
    let page = |user: &str| {
        let r = c
            .get(server.url("/alerts"))
            .basic_auth(user, Some("pw"))
            .header("accept", "text/html")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        page_token(&r.text().unwrap())
    };
    let (admin, viewer) = (page("admin"), page("viewer"));
    assert!(!admin.is_empty() && !viewer.is_empty());
    assert_ne!(admin, viewer, "the viewer's page shows the admin's token");
    assert_eq!(page("admin"), admin, "tokens are stable per user");
    // A silence form carrying the viewer's token is refused for the admin.
    let r = c
        .post(server.url("/alerts/silences"))
        .basic_auth("admin", Some("pw"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={viewer}&matchers=alertname%3D%22X%22&hours=1&comment=x"
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[test]
fn login_redirects_stay_on_this_server_and_cookies_can_be_secure() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let c = plain_client();
    {
        let server = TestServer::start(&auth_config("", &[("admin", &hash, "admin")]));
        // Browsers drop tabs and newlines in URLs and read `\` as `/`.
        for next in [
            "/\t/evil.example",
            "/\\/evil.example",
            "/\n/evil.example",
            "//evil.example",
        ] {
            let r = login(&c, &server, "admin", "pw", next);
            assert_eq!(r.status(), 303, "{next:?}");
            assert_eq!(r.headers()["location"], "/", "{next:?}");
            let cookie = r.headers()["set-cookie"].to_str().unwrap();
            assert!(!cookie.contains("Secure"), "{cookie}");
        }
        let r = login(&c, &server, "admin", "pw", "/alerts?x=1");
        assert_eq!(r.headers()["location"], "/alerts?x=1");
    }
    let server = TestServer::start(&auth_config(
        "  cookie_secure: true\n",
        &[("admin", &hash, "admin")],
    ));
    let r = login(&c, &server, "admin", "pw", "/");
    assert!(r.headers().contains_key("set-cookie"));
    for cookie in r.headers().get_all("set-cookie") {
        assert!(cookie.to_str().unwrap().ends_with("; Secure"), "{cookie:?}");
    }
}

#[test]
fn invented_http_methods_do_not_grow_the_metric_label_set() {
    let server = TestServer::start(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\n",
    );
    let c = client();
    for i in 0..40 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        for path in ["/health", "/no/such/path"] {
            let _ = c.request(method.clone(), server.url(path)).send().unwrap();
        }
    }
    let metrics = get_text(&server, "/metrics");
    let mut methods = std::collections::BTreeSet::new();
    let mut routes = std::collections::BTreeSet::new();
    for s in support::parse_exposition(&metrics) {
        if s.name == "infermon_http_requests_total" {
            let get = |k: &str| {
                s.labels
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            methods.insert(get("method"));
            routes.insert(get("route"));
        }
    }
    assert!(methods.contains("other"), "{methods:?}");
    assert!(
        methods.len() <= 9,
        "{} method labels: {methods:?}",
        methods.len()
    );
    assert!(!routes.contains("/no/such/path"), "{routes:?}");
}
