//! Reloading the configuration of the running binary: SIGHUP, `POST
//! /-/reload` and `infermon reload` apply what changed and keep what did
//! not (scrape targets, firing alerts); a bad config changes nothing and is
//! reported with its `file:line:col`; `infermon check --diff` shows what a
//! reload would change.

use crate::support;
use crate::support::receivers;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use infermon::model::{MatchOp, Matcher, is_stale_nan};
use infermon::storage::{Querier, SqliteStorage, StorageOptions};
use receivers::{Receiver, start_receiver};
use support::{TestServer, binary, client, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// A runtime serving test peers (exporters, the webhook receiver) while
/// the test itself blocks.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An exporter answering `GET /metrics` with `body`; its `host:port`.
fn exporter(rt: &tokio::runtime::Runtime, body: &'static str) -> String {
    rt.block_on(async move {
        let app =
            axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr.to_string()
    })
}

fn config_path(server: &TestServer) -> std::path::PathBuf {
    server.dir.path().join("infermon.yml")
}

fn sighup(server: &TestServer) {
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGHUP);
    }
}

fn targets(server: &TestServer) -> Vec<serde_json::Value> {
    let body: serde_json::Value = client()
        .get(server.url("/api/v1/targets"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn health_of(server: &TestServer, job: &str) -> Option<String> {
    targets(server)
        .iter()
        .find(|t| t["labels"]["job"] == job)
        .and_then(|t| t["health"].as_str().map(String::from))
}

#[test]
fn sighup_adds_a_scrape_job_and_the_old_target_keeps_scraping_without_staleness() {
    let rt = runtime();
    let old = exporter(&rt, "old_metric 1\n");
    let new = exporter(&rt, "new_metric 2\n");
    let base = "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\nscrape_configs:\n";
    let old_job = format!("- job_name: old\n  static_configs: [{{targets: ['{old}']}}]\n");
    let mut server = TestServer::start(&format!("{base}{old_job}"));
    server.wait_metric(
        "infermon_scrape_scrapes_total",
        &[("job", "old")],
        2.0,
        WAIT,
    );
    let first_success = server
        .metric("infermon_config_last_reload_success_timestamp_seconds", &[])
        .expect("the reload timestamp is exported from the start");
    assert_eq!(
        server.metric("infermon_config_last_reload_successful", &[]),
        Some(1.0)
    );

    let text = std::fs::read_to_string(config_path(&server)).unwrap();
    std::fs::write(
        config_path(&server),
        format!("{text}- job_name: new\n  static_configs: [{{targets: ['{new}']}}]\n"),
    )
    .unwrap();
    sighup(&server);
    let log = server.wait_log("configuration reloaded", WAIT);
    assert!(log.contains("scrape jobs: +new"), "{log}");
    wait_for("the new job's target to be up", WAIT, || {
        match health_of(&server, "new") {
            Some(h) if h == "up" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(health_of(&server, "old").as_deref(), Some("up"));
    let shown: serde_json::Value = client()
        .get(server.url("/api/v1/status/config"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        shown["data"]["yaml"]
            .as_str()
            .unwrap()
            .contains("job_name: new"),
        "{shown}"
    );
    // The old job was not restarted: it keeps scraping.
    let before = server
        .metric("infermon_scrape_scrapes_total", &[("job", "old")])
        .unwrap();
    server.wait_metric(
        "infermon_scrape_scrapes_total",
        &[("job", "old")],
        before + 2.0,
        WAIT,
    );
    assert!(
        server
            .metric("infermon_config_last_reload_success_timestamp_seconds", &[])
            .unwrap()
            >= first_success
    );
    assert_eq!(
        server.metric("infermon_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // No staleness marker was written for the old target's series (a stop
    // at shutdown writes none either, as in Prometheus).
    server.terminate();
    assert!(server.wait_exit(WAIT).is_some());
    let store =
        SqliteStorage::open(server.dir.path().join("data"), StorageOptions::default()).unwrap();
    let series = store
        .select(
            &[Matcher::new("job", MatchOp::Equal, "old").unwrap()],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
    assert!(
        series
            .iter()
            .any(|s| s.labels.get("__name__") == Some("old_metric"))
    );
    for s in &series {
        assert!(
            !s.samples.iter().any(|x| is_stale_nan(x.value)),
            "{} got a staleness marker across the reload",
            s.labels
        );
    }
    let new_series = store
        .select(
            &[Matcher::new("__name__", MatchOp::Equal, "new_metric").unwrap()],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(new_series.len(), 1);
}

fn alerts(server: &TestServer) -> Vec<serde_json::Value> {
    let body: serde_json::Value = client()
        .get(server.url("/api/v1/alerts"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn alert_named(server: &TestServer, name: &str) -> Option<serde_json::Value> {
    alerts(server)
        .into_iter()
        .find(|a| a["labels"]["alertname"] == name)
}

const RULES_BEFORE: &str = "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: Kept\n    expr: vector(1)\n    for: 2s\n  - alert: Edited\n    expr: vector(1) > 5\n";
const RULES_AFTER: &str = "groups:\n- name: g\n  interval: 1s\n  rules:\n  - alert: Kept\n    expr: vector(1)\n    for: 2s\n  - alert: Edited\n    expr: vector(1) > 0\n";

#[test]
fn a_rule_edit_keeps_the_unchanged_rules_firing_alert_and_reevaluates_the_changed_one() {
    let rt = runtime();
    let r = Receiver::default();
    let url = rt.block_on(start_receiver(r.clone()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES_BEFORE).unwrap();
    let server = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {{dir}}/data\nmodels: []\n\
         rule_files: ['{rules}']\n\
         alerting:\n  builtin_rules: false\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 100ms\n    group_interval: 300ms\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {url}/hook\n          send_resolved: true\n",
        rules = dir.path().join("rules.yml").display()
    ));
    let kept = wait_for("Kept to fire", WAIT, || {
        match alert_named(&server, "Kept") {
            Some(a) if a["state"] == "firing" => Ok(a),
            other => Err(format!("{other:?}")),
        }
    });
    wait_for("the receiver to hear of Kept", WAIT, || {
        if r.all()
            .iter()
            .any(|(_, b)| b["groupLabels"]["alertname"] == "Kept")
        {
            Ok(())
        } else {
            Err(format!("{:?}", r.all()))
        }
    });

    std::fs::write(dir.path().join("rules.yml"), RULES_AFTER).unwrap();
    let answer = client().post(server.url("/-/reload")).send().unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().unwrap();
    let changes = body["data"]["changes"].to_string();
    assert!(changes.contains("rules: ~"), "{body}");
    assert!(changes.contains("g/Edited"), "{body}");

    // The changed rule is evaluated by the new group at once and fires.
    wait_for("Edited to fire", WAIT, || {
        match alert_named(&server, "Edited") {
            Some(a) if a["state"] == "firing" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    // The unchanged rule kept its alert: still firing, same activeAt (a
    // fresh start would be pending for `for: 2s` with a new activeAt).
    let after = alert_named(&server, "Kept").unwrap();
    assert_eq!(after["state"], "firing", "{after}");
    assert_eq!(after["activeAt"], kept["activeAt"]);
    wait_for("the receiver to hear of Edited", WAIT, || {
        if r.all()
            .iter()
            .any(|(_, b)| b["groupLabels"]["alertname"] == "Edited")
        {
            Ok(())
        } else {
            Err(format!("{:?}", r.all()))
        }
    });
    for (_, body) in r.all() {
        if body["groupLabels"]["alertname"] == "Kept" {
            assert_eq!(body["status"], "firing", "no resolved flap: {body}");
        }
    }
    let kept_notices = r
        .all()
        .iter()
        .filter(|(_, b)| b["groupLabels"]["alertname"] == "Kept")
        .count();
    assert_eq!(
        kept_notices,
        1,
        "Kept was not notified again: {:?}",
        r.all()
    );
}

#[test]
fn an_invalid_config_changes_nothing_and_is_reported_with_its_position() {
    let rt = runtime();
    let old = exporter(&rt, "old_metric 1\n");
    let config = format!(
        "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {{dir}}/data\nmodels: []\nscrape_configs:\n- job_name: old\n  static_configs: [{{targets: ['{old}']}}]\n"
    );
    let server = TestServer::start(&config);
    wait_for("the old target to be up", WAIT, || {
        match health_of(&server, "old") {
            Some(h) if h == "up" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let path = config_path(&server);
    let good = std::fs::read_to_string(&path).unwrap();
    // Line 12 gives a job a broken interval.
    std::fs::write(
        &path,
        format!("{good}- job_name: broken\n  scrape_interval: banana\n  static_configs: [{{targets: ['127.0.0.1:1']}}]\n"),
    )
    .unwrap();
    let answer = client().post(server.url("/-/reload")).send().unwrap();
    assert_eq!(answer.status(), 500);
    let body: serde_json::Value = answer.json().unwrap();
    assert_eq!(body["error_type"], "reload_failed", "{body}");
    let d = &body["diagnostics"][0];
    assert_eq!(d["file"], path.display().to_string(), "{body}");
    assert_eq!(d["line"], 12, "{body}");
    assert!(d["column"].as_u64().unwrap() > 0);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{}:12:", path.display())),
        "{error}"
    );
    assert_eq!(
        server.metric("infermon_config_last_reload_successful", &[]),
        Some(0.0)
    );
    // Prometheus' runtimeinfo says the same (Grafana and promtool read it).
    let info: serde_json::Value = client()
        .get(server.url("/api/v1/status/runtimeinfo"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["data"]["reloadConfigSuccess"], false, "{info}");
    let log = server.wait_log("configuration not reloaded", WAIT);
    assert!(log.contains(&format!("{}:12:", path.display())), "{log}");
    // Everything as before: the old job only, still scraping.
    let jobs: Vec<String> = targets(&server)
        .iter()
        .filter_map(|t| t["labels"]["job"].as_str().map(String::from))
        .collect();
    assert!(!jobs.contains(&"broken".to_string()), "{jobs:?}");
    let before = server
        .metric("infermon_scrape_scrapes_total", &[("job", "old")])
        .unwrap();
    server.wait_metric(
        "infermon_scrape_scrapes_total",
        &[("job", "old")],
        before + 1.0,
        WAIT,
    );

    // `infermon reload` says the same and fails; after a fix it succeeds.
    let out = Command::new(binary())
        .args(["reload", "--url", &server.url("")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:12:", path.display())),
        "{stderr}"
    );
    std::fs::write(&path, &good).unwrap();
    let out = Command::new(binary())
        .args(["reload", "--url", &server.url("")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reloaded: nothing to apply\n"
    );
    assert_eq!(
        server.metric("infermon_config_last_reload_successful", &[]),
        Some(1.0)
    );
}

#[test]
fn reload_is_for_admins_and_health_endpoints_are_public() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let server = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  auth:\n    api_keys: [admin-key]\n    basic_auth_users:\n      viewer:\n        password_hash: '{hash}'\n        role: read_only\nstorage:\n  path: {{dir}}/data\nmodels: []\n"
    ));
    let http = client();
    for path in ["/-/healthy", "/-/ready", "/health", "/ready"] {
        let r = http.get(server.url(path)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let anonymous = http.post(server.url("/-/reload")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let viewer = http
        .post(server.url("/-/reload"))
        .basic_auth("viewer", Some("pw"))
        .send()
        .unwrap();
    assert_eq!(viewer.status(), 403);
    assert!(!server.log().contains("configuration reloaded"));
    let admin = http
        .post(server.url("/-/reload"))
        .bearer_auth("admin-key")
        .send()
        .unwrap();
    assert_eq!(admin.status(), 200);
    let out = Command::new(binary())
        .args(["reload", "--url", &server.url("")])
        .env("INFERMON_API_KEY", "admin-key")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(binary())
        .args(["reload", "--url", &server.url("")])
        .env_remove("INFERMON_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());

    // A reload rotates the API key at once; the login stays as it was.
    let path = config_path(&server);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("[admin-key]", "[rotated-key]")).unwrap();
    let answer = http
        .post(server.url("/-/reload"))
        .bearer_auth("admin-key")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().unwrap();
    assert!(
        body["data"]["changes"].to_string().contains("server.auth"),
        "{body}"
    );
    assert_eq!(body["data"]["restart_required"], serde_json::json!([]));
    let with = |key: &str| {
        http.get(server.url("/api/v1/targets"))
            .bearer_auth(key)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(with("admin-key"), 401);
    assert_eq!(with("rotated-key"), 200);
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_diff_prints_what_a_reload_would_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "rules-old.yml", RULES_BEFORE);
    write(d, "rules-new.yml", RULES_AFTER);
    let old = write(
        d,
        "old.yml",
        "alerting:\n  builtin_rules: false\n  route: {receiver: hook}\n  receivers:\n  - name: hook\n    webhook_configs: [{url: 'http://127.0.0.1:9/a'}]\n\
         rule_files: [rules-old.yml]\n\
         scrape_configs:\n- job_name: node\n  static_configs: [{targets: ['h:1']}]\n- job_name: gone\n  static_configs: [{targets: ['h:2']}]\n\
         remote_write:\n- url: http://127.0.0.1:9/write\n  name: vm\n",
    );
    let new = write(
        d,
        "new.yml",
        "server: {listen: '127.0.0.1:9999'}\n\
         alerting:\n  builtin_rules: false\n  route: {receiver: hook}\n  receivers:\n  - name: hook\n    webhook_configs: [{url: 'http://127.0.0.1:9/b'}]\n\
         rule_files: [rules-new.yml]\n\
         scrape_configs:\n- job_name: node\n  scrape_interval: 5s\n  static_configs: [{targets: ['h:1']}]\n- job_name: gpu\n  static_configs: [{targets: ['h:3']}]\n\
         remote_write:\n- url: http://127.0.0.1:9/write\n  name: vm\n",
    );
    let out = Command::new(binary())
        .arg("check")
        .arg("--diff")
        .arg(&old)
        .arg(&new)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let groups_old = format!("{}:g", d.join("rules-old.yml").display());
    let groups_new = format!("{}:g", d.join("rules-new.yml").display());
    let expected = format!(
        "changes from {} to {}:\n\
         scrape jobs:\n  + gpu\n  ~ node\n  - gone\n\
         rule groups:\n  + {groups_new}\n  - {groups_old}\n\
         rules:\n  + {groups_new}/Kept\n  + {groups_new}/Edited\n  - {groups_old}/Kept\n  - {groups_old}/Edited\n\
         receivers:\n  ~ hook\n\
         requires a restart:\n  server.listen\n",
        old.display(),
        new.display()
    );
    assert_eq!(stdout, expected);

    // The same file twice: nothing.
    let out = Command::new(binary())
        .args(["check", "--diff"])
        .arg(&new)
        .arg(&new)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("no changes\n"));

    // A bad NEW is reported like `infermon check` does, with its position.
    let bad = write(
        d,
        "bad.yml",
        "scrape_configs:\n- job_name: x\n  scrape_interval: banana\n",
    );
    let out = Command::new(binary())
        .args(["check", "--diff"])
        .arg(&old)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{}:3:", bad.display())),
        "{stdout}"
    );
}

/// A remote_write destination that takes every request.
fn sink(rt: &tokio::runtime::Runtime) -> String {
    rt.block_on(async move {
        let app = axum::Router::new().route(
            "/write",
            axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/write")
    })
}

/// How many times the queue of `name` started (its start log line).
fn queue_starts(server: &TestServer, name: &str) -> usize {
    server
        .log()
        .lines()
        .filter(|l| {
            l.contains("remote_write starting from its saved WAL position")
                && l.contains(&format!("remote={name} "))
        })
        .count()
}

#[test]
fn remote_write_queues_restart_only_for_changed_destinations() {
    let rt = runtime();
    let url = sink(&rt);
    let base = "global:\n  scrape_interval: 1s\nserver:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\nremote_write:\n";
    let vm = format!("- url: {url}\n  name: vm\n");
    let server = TestServer::start(&format!("{base}{vm}"));
    wait_for("vm's queue to start", WAIT, || {
        match queue_starts(&server, "vm") {
            1 => Ok(()),
            n => Err(format!("{n} starts")),
        }
    });
    let path = config_path(&server);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}- url: {url}\n  name: vm2\n")).unwrap();
    let body: serde_json::Value = client()
        .post(server.url("/-/reload"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        body["data"]["changes"]
            .to_string()
            .contains("remote_write: +vm2"),
        "{body}"
    );
    wait_for("vm2's queue to start", WAIT, || {
        match queue_starts(&server, "vm2") {
            1 => Ok(()),
            n => Err(format!("{n} starts")),
        }
    });
    assert_eq!(
        queue_starts(&server, "vm"),
        1,
        "the unchanged queue kept running"
    );

    // A changed destination restarts; the other keeps running.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(
            "  name: vm\n",
            "  name: vm\n  queue_config: {max_samples_per_send: 100}\n",
        ),
    )
    .unwrap();
    let body: serde_json::Value = client()
        .post(server.url("/-/reload"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        body["data"]["changes"]
            .to_string()
            .contains("remote_write: ~vm"),
        "{body}"
    );
    wait_for("vm's queue to restart", WAIT, || {
        match queue_starts(&server, "vm") {
            2 => Ok(()),
            n => Err(format!("{n} starts")),
        }
    });
    assert_eq!(queue_starts(&server, "vm2"), 1);
}

const PANELS: &str =
    r#""panels": [{"type": "stat", "title": "Targets up", "targets": [{"expr": "sum(up)"}]}]"#;

#[test]
fn a_reload_swaps_the_dashboards_and_a_broken_one_changes_nothing() {
    let boards = tempfile::tempdir().unwrap();
    let board = |uid: &str| format!(r#"{{"title": "Board {uid}", "uid": "{uid}", {PANELS}}}"#);
    std::fs::write(boards.path().join("one.json"), board("one")).unwrap();
    let server = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nmodels: []\nstorage:\n  path: '{{dir}}/data'\ndashboards: ['{}']\n",
        boards.path().display()
    ));
    let status = |uid: &str| {
        client()
            .get(server.url(&format!("/dashboards/{uid}")))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(status("one"), 200);
    assert_eq!(status("two"), 404);
    std::fs::write(boards.path().join("two.json"), board("two")).unwrap();
    let answer = client().post(server.url("/-/reload")).send().unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().unwrap();
    assert!(
        body["data"]["changes"]
            .to_string()
            .contains("dashboards: +"),
        "{body}"
    );
    assert_eq!(status("two"), 200);
    // A file that is not a dashboard: nothing changes, the reload says why.
    std::fs::write(boards.path().join("three.json"), "{not json").unwrap();
    let answer = client().post(server.url("/-/reload")).send().unwrap();
    assert_eq!(answer.status(), 500);
    let body: serde_json::Value = answer.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("three.json"),
        "{body}"
    );
    assert_eq!(status("one"), 200);
    assert_eq!(status("two"), 200);
}

#[test]
fn a_reload_changes_the_request_body_limit_at_once() {
    let server = TestServer::start(
        "server:\n  listen: 127.0.0.1:0\n  limits:\n    max_body_bytes: 1000\nstorage:\n  path: '{dir}/data'\nmodels: []\n",
    );
    let query = || {
        let body = format!("query=vector({})", "1".repeat(2000));
        client()
            .post(server.url("/api/v1/query"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap()
    };
    let refused = query();
    assert_eq!(refused.status(), 413);
    let body: serde_json::Value = refused.json().unwrap();
    assert_eq!(body["error_type"], "payload_too_large", "{body}");
    let path = config_path(&server);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("max_body_bytes: 1000", "max_body_bytes: 100000"),
    )
    .unwrap();
    let answer = client().post(server.url("/-/reload")).send().unwrap();
    let body: serde_json::Value = answer.json().unwrap();
    assert!(
        body["data"]["changes"]
            .to_string()
            .contains("server.limits"),
        "{body}"
    );
    assert_ne!(query().status(), 413);
}

/// The normalized reference vector of "hello world" (the fixture's first
/// text) as sentence-transformers computed it.
fn reference_vector(fixture: &str) -> Vec<f32> {
    let r = support::fixture_json(&format!("{fixture}/reference.json"));
    assert_eq!(r["texts"][0], "hello world");
    support::floats(&r["normalized"][0])
}

/// A model folder replaced on disk while clients keep sending requests,
/// then SIGHUP: the new model loads beside the old one, requests switch at
/// once, the old one answers what it had accepted, and no request fails.
/// Batches are slowed during the reload and hold one request each, so
/// requests are queued on the old model at the switch.
#[test]
fn a_model_folder_swapped_under_load_and_reloaded_fails_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    let models = tempfile::tempdir().unwrap();
    let dir = models.path().join("m");
    support::copy_dir(&support::fixture("tiny-st-max-dense"), &dir);
    let (old_ref, new_ref) = (
        reference_vector("tiny-st-max-dense"),
        reference_vector("tiny-st-weightedmean-dense"),
    );
    let delay = models.path().join("delay-ms");
    let server = TestServer::start_with_env(
        &format!(
            "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: '{{dir}}/data'\nmodels:\n- name: m\n  path: '{}'\n  max_batch_requests: 1\n",
            dir.display()
        ),
        &[("INFERMON_TEST_INFERENCE_DELAY_FILE", delay.as_path())],
    );
    let matches = |v: &[f32], r: &[f32]| v.len() == r.len() && support::max_abs(v, r) < 1e-4;

    const CLIENTS: usize = 4;
    const MAX_PER_CLIENT: usize = 3_000;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(90);
    let url = server.url("/embed");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, sent, url) = (stop.clone(), sent.clone(), url.clone());
            std::thread::spawn(move || {
                let http = client();
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed)
                    && answers.len() < MAX_PER_CLIENT
                    && Instant::now() < deadline
                {
                    let at = Instant::now();
                    let answer = http
                        .post(&url)
                        .json(&serde_json::json!({"inputs": "hello world"}))
                        .send()
                        .map_err(|e| e.to_string())
                        .and_then(|r| {
                            let status = r.status().as_u16();
                            r.text().map(|t| (status, t)).map_err(|e| e.to_string())
                        });
                    sent.fetch_add(1, Ordering::Relaxed);
                    answers.push((at, answer));
                }
                answers
            })
        })
        .collect();
    let wait_sent = |n: usize| {
        wait_for("the clients' requests", WAIT, || {
            let now = sent.load(Ordering::Relaxed);
            if now >= n {
                Ok(())
            } else {
                Err(format!("{now} sent"))
            }
        })
    };

    wait_sent(100);
    std::fs::write(&delay, "30").unwrap();
    // Replaced as a deploy does: written beside, then renamed into place.
    let fresh = models.path().join("m.new");
    support::copy_dir(&support::fixture("tiny-st-weightedmean-dense"), &fresh);
    std::fs::rename(&dir, models.path().join("m.old")).unwrap();
    std::fs::rename(&fresh, &dir).unwrap();
    sighup(&server);
    let log = server.wait_log("configuration reloaded", WAIT);
    let reloaded = Instant::now();
    std::fs::write(&delay, "0").unwrap();
    assert!(log.contains("models: ~m"), "{log}");
    let at_reload = sent.load(Ordering::Relaxed);
    wait_sent(at_reload + 100);
    stop.store(true, Ordering::Relaxed);

    let answers: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let mut failed = Vec::new();
    let (mut old, mut new, mut after) = (0, 0, 0);
    for (at, answer) in &answers {
        match answer {
            Ok((200, text)) => {
                let v: serde_json::Value = serde_json::from_str(text).unwrap();
                let v = support::floats(&v[0]);
                if matches(&v, &old_ref) {
                    old += 1;
                    assert!(
                        *at < reloaded,
                        "an old-model answer to a request sent after the reload"
                    );
                } else if matches(&v, &new_ref) {
                    new += 1;
                } else {
                    failed.push(format!("neither model's vector: {v:?}"));
                }
                if *at > reloaded {
                    after += 1;
                }
            }
            Ok((status, text)) => failed.push(format!("{status} {text}")),
            Err(e) => failed.push(e.clone()),
        }
    }
    eprintln!(
        "{} answers: old model {old}, new model {new}, sent after the reload {after}",
        answers.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        old > 0 && new > 0 && after >= 50,
        "old {old}, new {new}, after the reload {after}"
    );
    assert_eq!(
        server.metric("infermon_config_last_reload_successful", &[]),
        Some(1.0)
    );
}
