//! What the binary lets out and lets in: secrets in URLs and headers never
//! reach answers, pages, logs or metric labels; credentials cannot be
//! guessed without limit; browsers on other sites cannot act for the
//! operator; HTTP input cannot grow metric label sets. Every test runs the
//! real binary over HTTP.

mod support;

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
        r#"server: {{listen: '127.0.0.1:0'}}
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
        Duration::from_secs(30),
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
