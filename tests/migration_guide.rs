//! docs/migrating.md end to end: a prometheus_client app (the tutorials'
//! model service, `docs/examples/model_service.py`, prometheus_client from
//! PyPI in the test venv) scraped by infermon started with exactly the
//! guide's files — `docs/examples/infermon.yml`, its rule file and its
//! Grafana dashboard in the HTTP API form. The series arrive, the rules load
//! and the error-ratio alert fires, the dashboard draws every panel with data.

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{TestServer, client, free_port, repo_root, wait_for, wait_http_ok};

struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> String {
    std::env::var("INFERMON_TEST_PYTHON")
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python").display().to_string())
}

fn query(s: &TestServer, q: &str) -> Value {
    client()
        .get(s.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

/// The example rule file is a Prometheus rule file as it is: promtool
/// (Debian's prometheus package, installed by the test script) accepts it.
#[test]
fn the_guides_rule_file_passes_promtool() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo_root().join("docs/examples/rules/model-service.yml"))
        .output()
        .expect("promtool (Debian package prometheus): run scripts/install-test-deps.sh");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_guides_example_scrapes_a_prometheus_client_app_with_its_rules_and_dashboard() {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "{python} cannot import prometheus_client: run ./scripts/install-test-deps.sh"
    );
    let examples = repo_root().join("docs/examples");
    let port = free_port();
    let _app = App(Command::new(&python)
        .arg(examples.join("model_service.py"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example app"));
    let app = format!("127.0.0.1:{port}");
    assert!(
        wait_http_ok(&format!("http://{app}/metrics"), Duration::from_secs(30)),
        "the example app did not answer"
    );
    // Traffic: mostly failures, so the error-ratio rule's condition holds.
    for i in 0..20 {
        let path = if i % 4 == 0 {
            "/predict?text=hi"
        } else {
            "/predict?fail=1"
        };
        let _ = client().get(format!("http://{app}{path}")).send().unwrap();
    }
    // The guide's config, unchanged: ${INFERMON_LISTEN} and ${MODEL_SERVICE}
    // come from the environment; relative paths resolve beside the file.
    let listen = std::path::PathBuf::from("127.0.0.1:0");
    let target = std::path::PathBuf::from(&app);
    let s = TestServer::start_config_file_with_env(
        &examples.join("infermon.yml"),
        &[
            ("INFERMON_LISTEN", listen.as_path()),
            ("MODEL_SERVICE", target.as_path()),
        ],
    );

    // The series arrive with the job's labels.
    wait_for("the app's series", Duration::from_secs(60), || {
        let r = query(
            &s,
            "model_requests_total{job=\"model-service\",service=\"sentiment\"}",
        );
        match r["data"]["result"].as_array() {
            Some(a) if a.len() == 2 => Ok(()),
            _ => Err(r.to_string()),
        }
    });
    // Keep the failures coming so the rate has two samples to work with.
    let feed = || {
        for _ in 0..5 {
            let _ = client().get(format!("http://{app}/predict?fail=1")).send();
        }
    };

    // The rule file loads unchanged and the error alert goes pending (its
    // `for: 1m` then makes it fire); the recording rule writes its series.
    let rules: Value = client()
        .get(s.url("/api/v1/rules"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["name"] == "model-service")
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "ModelServiceDown",
            "ModelServiceHighErrorRate",
            "ModelServiceSlow",
            "ModelServiceGpuBusy",
            "route:model_requests:rate1m"
        ]
    );
    let state = wait_for(
        "ModelServiceHighErrorRate pending",
        Duration::from_secs(60),
        || {
            feed();
            let r = query(&s, "ALERTS{alertname=\"ModelServiceHighErrorRate\"}");
            match r["data"]["result"][0]["metric"]["alertstate"].as_str() {
                Some(st) => Ok(st.to_string()),
                None => Err(r.to_string()),
            }
        },
    );
    assert!(state == "pending" || state == "firing", "{state}");
    wait_for(
        "the recording rule's series",
        Duration::from_secs(30),
        || {
            let r = query(&s, "route:model_requests:rate1m");
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
    // The app is up, so ModelServiceDown stays inactive.
    assert!(
        query(&s, "ALERTS{alertname=\"ModelServiceDown\"}")["data"]["result"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    );

    // The API-wrapped dashboard: listed, and every panel drawn with data.
    let list = client()
        .get(s.url("/dashboards"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(list.contains("Model service"), "{list}");
    let page = wait_for("every panel with data", Duration::from_secs(30), || {
        feed();
        let page = client()
            .get(s.url("/dashboards/model-service?range=15m"))
            .send()
            .map_err(|e| e.to_string())?
            .text()
            .map_err(|e| e.to_string())?;
        let panels: Vec<(String, u64)> = page
            .split("<article class=\"panel ")
            .skip(1)
            .map(|a| {
                let attr = |n: &str| {
                    let i = a.find(&format!("{n}=\"")).unwrap() + n.len() + 2;
                    a[i..i + a[i..].find('"').unwrap()].to_string()
                };
                (attr("data-kind"), attr("data-series").parse().unwrap())
            })
            .collect();
        if panels.len() == 7 && panels.iter().all(|(k, n)| k == "text" || *n > 0) {
            Ok(page)
        } else {
            Err(format!("{panels:?}"))
        }
    });
    assert!(
        page.contains("<option value=\"All\" selected>"),
        "instance variable"
    );
    assert!(
        page.contains(&format!("<option value=\"{app}\">")),
        "its values"
    );
    assert!(page.contains("42%"), "the gauge in percent");
}
