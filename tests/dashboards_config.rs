//! `dashboards:` in the config: Grafana's HTTP API form and directories load
//! like the plain form, and a file that is not a dashboard stops the start
//! with its name and the reason — never an empty, untitled page.

mod support;

use support::{TestServer, client};

const PANELS: &str =
    r#""panels": [{"type": "stat", "title": "Targets up", "targets": [{"expr": "sum(up)"}]}]"#;

fn config(entries: &[String]) -> String {
    let list: String = entries.iter().map(|e| format!("  - '{e}'\n")).collect();
    format!(
        "server:\n  listen: 127.0.0.1:0\nmodels: []\nstorage:\n  path: '{{dir}}/data'\ndashboards:\n{list}"
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

/// On a box without NVIDIA's NVML the Overview's GPU panels say why they are
/// empty instead of showing bare axes.
#[test]
fn empty_gpu_panels_say_why_on_a_box_without_a_gpu() {
    let s = TestServer::start(&config(&[]));
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    if metrics.contains("infermon_gpu_") {
        eprintln!("this box reports GPU metrics; the empty-panel note does not apply");
        return;
    }
    let page = client()
        .get(s.url("/?range=1h"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("No GPU metrics were collected"),
        "the Overview's GPU panels give no reason for being empty"
    );
}
