//! Rules and alerting end to end: the rule state machine on tokio's paused
//! clock, state restored from a reopened SQLite file, routing, grouping,
//! silences and inhibition, and delivery through the durable outbox to real
//! local receivers (HTTP robots that check signatures, SMTP, Alertmanager).

use crate::support;
use crate::support::receivers;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infermon::alerting::{Alert, AlertManager, NowFn};
use infermon::config::Config;
use infermon::model::Labels;
use infermon::rules::{
    AlertState, Clock, InstantSample, ManagerOptions, OutgoingAlert, QueryFn, RuleManager,
    load_rule_files, parse_rule_text,
};
use infermon::shutdown::Shutdown;
use infermon::storage::{MemoryStorage, Querier, StateStore};
use receivers::{Mail, Peer, Receiver, Smtp, assert_dingtalk_signed, start_receiver, wait_port};
use support::free_port;

// ---------------------------------------------------------------- helpers

/// A query function answering from a shared, test-controlled value:
/// `Some(v)` → one sample `{model="m"}` with value v; `None` → empty vector.
fn fake_query(value: Arc<Mutex<Option<f64>>>) -> QueryFn {
    Arc::new(move |_expr: String, _ts: i64| {
        let v = *value.lock().unwrap();
        Box::pin(async move {
            Ok(v.map(|v| {
                vec![InstantSample {
                    labels: Labels::new([("model", "m"), ("__name__", "x")]),
                    value: v,
                }]
            })
            .unwrap_or_default())
        })
    })
}

const RULES: &str = r#"
groups:
  - name: latency
    interval: 15s
    rules:
      - alert: HighLatency
        expr: p95 > 2
        for: 5m
        keep_firing_for: 1m
        labels: {severity: warning}
        annotations:
          summary: "P95 of {{ $labels.model }} is {{ $value | humanizeDuration }}"
      - record: model:p95
        expr: p95
"#;

type Sent = Arc<Mutex<Vec<OutgoingAlert>>>;

async fn manager(
    value: Arc<Mutex<Option<f64>>>,
    store: Option<Arc<StateStore>>,
    clock: Clock,
) -> (Arc<RuleManager>, Arc<MemoryStorage>, Sent) {
    let storage = Arc::new(MemoryStorage::new());
    let sent: Sent = Arc::default();
    let s2 = sent.clone();
    let sink = move |alerts: Vec<OutgoingAlert>| s2.lock().unwrap().extend(alerts);
    let files = vec![(
        "rules.yml".to_string(),
        parse_rule_text(RULES, "rules.yml").unwrap(),
    )];
    let options = ManagerOptions {
        default_interval: Duration::from_secs(60),
        default_query_offset: Duration::ZERO,
        external_labels: [("box".to_string(), "gpu-07".to_string())].into(),
        external_url: "http://infermon:8080".into(),
        resend_delay: Duration::from_secs(60),
    };
    let m = RuleManager::new(
        files,
        options,
        fake_query(value),
        storage.clone(),
        Arc::new(sink),
        store,
        clock,
    )
    .await;
    (Arc::new(m), storage, sent)
}

async fn rule_state(m: &RuleManager, name: &str) -> Option<AlertState> {
    for g in m.groups().iter() {
        let st = g.state.lock().await;
        for rule in &st.rules {
            if let infermon::rules::Rule::Alerting(a) = rule
                && a.name == name
            {
                return a.alerts().first().map(|x| x.state);
            }
        }
    }
    None
}

async fn alert_state(m: &RuleManager) -> Option<(AlertState, i64)> {
    let groups = m.groups();
    let st = groups[0].state.lock().await;
    match &st.rules[0] {
        infermon::rules::Rule::Alerting(r) => r.alerts().first().map(|a| (a.state, a.active_at_ms)),
        _ => None,
    }
}

// ---------------------------------------------------------------- rules

#[tokio::test(start_paused = true)]
async fn alert_goes_pending_fires_keeps_firing_and_resolves() {
    let value = Arc::new(Mutex::new(Some(3.0)));
    let t0 = 1_700_000_000_000;
    let (m, storage, sent) = manager(value.clone(), None, Clock::starting_at(t0)).await;
    let shutdown = Shutdown::new();
    let task = tokio::spawn({
        let (m, s) = (m.clone(), shutdown.clone());
        async move { m.run(s).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(alert_state(&m).await, Some((AlertState::Pending, t0)));
    tokio::time::sleep(Duration::from_secs(4 * 60 + 30)).await;
    assert_eq!(
        alert_state(&m).await.map(|s| s.0),
        Some(AlertState::Pending),
        "4m30s < for: 5m"
    );
    assert!(
        sent.lock().unwrap().is_empty(),
        "pending alerts are not sent"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(alert_state(&m).await.map(|s| s.0), Some(AlertState::Firing));
    {
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].labels.get("box"),
            Some("gpu-07"),
            "external labels added"
        );
        assert_eq!(sent[0].labels.get("alertname"), Some("HighLatency"));
        assert_eq!(sent[0].annotations["summary"], "P95 of m is 3s");
        assert_eq!(sent[0].starts_at_ms, t0 + 300_000);
    }
    // ALERTS series written, and the recording rule.
    let alerts = storage
        .select(
            &[infermon::model::Matcher::parse("__name__=ALERTS").unwrap()],
            0,
            i64::MAX,
        )
        .unwrap();
    let states: Vec<&str> = alerts
        .iter()
        .filter_map(|s| s.labels.get("alertstate"))
        .collect();
    assert!(
        states.contains(&"pending") && states.contains(&"firing"),
        "{states:?}"
    );
    let for_state = storage
        .select(
            &[infermon::model::Matcher::parse("__name__=ALERTS_FOR_STATE").unwrap()],
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(for_state[0].samples[0].value, (t0 / 1000) as f64);
    assert!(
        !storage
            .select(
                &[infermon::model::Matcher::parse("__name__=model:p95").unwrap()],
                0,
                i64::MAX
            )
            .unwrap()
            .is_empty()
    );

    // Re-sent every minute while firing (at the first evaluation more than 1m later).
    tokio::time::sleep(Duration::from_secs(75)).await;
    assert_eq!(sent.lock().unwrap().len(), 2);

    // Condition clears: keep_firing_for 1m holds it, then it resolves.
    *value.lock().unwrap() = None;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        alert_state(&m).await.map(|s| s.0),
        Some(AlertState::Firing),
        "kept firing"
    );
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(
        alert_state(&m).await.map(|s| s.0),
        Some(AlertState::Inactive)
    );
    let last = sent.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.ends_at_ms <= t0 + 600_000,
        "resolution sent with its end time"
    );
    // The ALERTS series got a stale marker.
    let alerts = storage
        .select(
            &[infermon::model::Matcher::parse("alertstate=firing").unwrap()],
            0,
            i64::MAX,
        )
        .unwrap();
    assert!(infermon::model::is_stale_nan(
        alerts[0].samples.last().unwrap().value
    ));
    shutdown.trigger();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pending_state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let value = Arc::new(Mutex::new(Some(3.0)));
    let t0 = 1_700_000_000_000;
    {
        let store = Arc::new(StateStore::open(&path).unwrap());
        let (m, _, _) = manager(value.clone(), Some(store), Clock::starting_at(t0)).await;
        m.eval_all().await;
        tokio::time::advance(Duration::from_secs(180)).await;
        m.eval_all().await;
        assert_eq!(alert_state(&m).await, Some((AlertState::Pending, t0)));
    }
    // "Restart" 30 s later: a new manager over the reopened file.
    let store = Arc::new(StateStore::open(&path).unwrap());
    let (m, _, sent) = manager(value.clone(), Some(store), Clock::starting_at(t0 + 210_000)).await;
    assert_eq!(
        alert_state(&m).await,
        Some((AlertState::Pending, t0)),
        "restored before the first evaluation"
    );
    m.eval_all().await;
    assert_eq!(
        alert_state(&m).await,
        Some((AlertState::Pending, t0)),
        "for did not start over"
    );
    tokio::time::advance(Duration::from_secs(90)).await;
    m.eval_all().await;
    assert_eq!(
        alert_state(&m).await.map(|s| s.0),
        Some(AlertState::Firing),
        "fired 5m after the original start"
    );
    assert_eq!(sent.lock().unwrap().len(), 1);
}

#[test]
fn builtin_rules_load_and_pass_promtool() {
    let config = Config::load_str("server: {listen: '127.0.0.1:0'}\n", None)
        .unwrap()
        .config;
    let files = load_rule_files(&config).unwrap();
    let names: Vec<String> = files
        .iter()
        .flat_map(|(_, f)| {
            f.groups
                .iter()
                .flat_map(|g| g.rules.iter().filter_map(|r| r.alert.clone()))
        })
        .collect();
    for want in [
        "InferenceHighLatencyP95",
        "InferenceHighErrorRate",
        "InferenceQueueSaturated",
        "GpuMemoryHigh",
        "GpuTemperatureHigh",
        "TargetDown",
        "DiskNearlyFull",
        "AlertNotificationsFailing",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let dir = support::repo_root().join("config/rules");
    let promtool = std::process::Command::new("promtool")
        .arg("--version")
        .output();
    assert!(
        promtool.is_ok(),
        "promtool is required (Debian package prometheus; scripts/install-test-deps.sh)"
    );
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            let out = std::process::Command::new("promtool")
                .arg("check")
                .arg("rules")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    let tests: Vec<_> = std::fs::read_dir(dir.join("tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    assert!(tests.len() >= 4);
    let out = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .args(&tests)
        .current_dir(dir.join("tests"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Our template engine renders the built-in annotations exactly as promtool
/// expects them in `config/rules/tests/*.test.yml` (values from those tests).
#[test]
fn builtin_annotations_render_like_prometheus() {
    let values: BTreeMap<&str, f64> = [
        ("InferenceHighLatencyP95", 4.875),
        ("InferenceHighErrorRate", 0.1),
        ("InferenceQueueSaturated", 300.0),
        ("GpuMemoryHigh", 0.95),
        ("GpuTemperatureHigh", 90.0),
        ("TargetDown", 0.0),
        ("DiskNearlyFull", 0.05),
        ("AlertNotificationsFailing", 10.0),
        ("MemoryAvailableLow", 0.05),
        ("LoadAboveCores", 3.0),
        ("RemoteWriteBehind", 960.0),
    ]
    .into();
    let dir = support::repo_root().join("config/rules");
    let mut checked = 0;
    for (_, text) in infermon::rules::BUILTIN_RULE_FILES {
        let file = parse_rule_text(text, "builtin").unwrap();
        for rule in file.groups.iter().flat_map(|g| &g.rules) {
            let Some(name) = &rule.alert else { continue };
            for entry in std::fs::read_dir(dir.join("tests")).unwrap() {
                let test: serde_yaml_ng::Value = serde_yaml_ng::from_str(
                    &std::fs::read_to_string(entry.unwrap().path()).unwrap(),
                )
                .unwrap();
                for t in test["tests"].as_sequence().unwrap() {
                    for case in t["alert_rule_test"].as_sequence().unwrap() {
                        if case["alertname"].as_str() != Some(name) {
                            continue;
                        }
                        for exp in case["exp_alerts"].as_sequence().unwrap() {
                            let labels =
                                Labels::new(exp["exp_labels"].as_mapping().unwrap().iter().map(
                                    |(k, v)| {
                                        (
                                            k.as_str().unwrap().to_string(),
                                            v.as_str().unwrap().to_string(),
                                        )
                                    },
                                ));
                            for (k, want) in exp["exp_annotations"].as_mapping().unwrap() {
                                let tmpl = &rule.annotations[k.as_str().unwrap()];
                                let got = infermon::template::expand_alert_text(
                                    tmpl,
                                    &labels,
                                    &BTreeMap::new(),
                                    "",
                                    values[name.as_str()],
                                )
                                .unwrap();
                                assert_eq!(got, want.as_str().unwrap(), "{name} {k:?}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked >= 14, "only {checked} annotations checked");
}

// ---------------------------------------------------------------- receivers

/// An [`AlertManager`] over the state file `state`, running on the current
/// tokio runtime until [`stop`](Running::stop).
struct Running {
    am: Arc<AlertManager>,
    registry: prometheus::Registry,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(yaml: &str, state: &Path) -> Running {
        Self::with_registry(yaml, state, &prometheus::Registry::new())
    }

    fn with_registry(yaml: &str, state: &Path, registry: &prometheus::Registry) -> Running {
        let store = Arc::new(StateStore::open(state).unwrap());
        let am = Arc::new(
            AlertManager::new(&alerting_config(yaml), store, registry, system_now()).unwrap(),
        );
        let shutdown = Shutdown::new();
        let task = tokio::spawn(am.clone().run(shutdown.clone()));
        Running {
            am,
            registry: registry.clone(),
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap();
    }
}

fn system_now() -> NowFn {
    Arc::new(infermon::util::now_ms)
}

fn alert(name: &str, pairs: &[(&str, &str)], starts: i64, ends: i64) -> Alert {
    let mut labels: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.push(("alertname".into(), name.into()));
    Alert {
        labels: Labels::new(labels),
        annotations: [(
            "summary".to_string(),
            format!("{name} on {}", pairs.first().map(|p| p.1).unwrap_or("")),
        )]
        .into(),
        starts_at_ms: starts,
        ends_at_ms: ends,
        generator_url: "http://infermon/alerts".into(),
    }
}

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sum of every series of metric `name` in `registry`.
fn gathered(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
        // A series is either a counter or a gauge; the other reads 0.
        .map(|m| m.get_counter().value() + m.get_gauge().value())
        .sum()
}

/// Waits until the alert manager has nothing left to say: the outbox is
/// empty and the groups were flushed `flushes` more times (or no group is
/// left). After that a notification can only come from new alerts or the
/// next group_interval.
async fn settled(registry: &prometheus::Registry, flushes: f64) {
    let start = gathered(registry, "infermon_alerting_group_flushes_total");
    wait_for(
        "the alert manager to settle",
        Duration::from_secs(20),
        || {
            gathered(registry, "infermon_alerting_notifications_queued") == 0.0
                && (gathered(registry, "infermon_alerting_aggregation_groups") == 0.0
                    || gathered(registry, "infermon_alerting_group_flushes_total")
                        >= start + flushes)
        },
    )
    .await;
}

fn alerting_config(yaml: &str) -> Config {
    Config::load_str(yaml, None)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

#[tokio::test]
async fn receiver_outage_then_delivered_exactly_once_in_order() {
    let r = Receiver::failing(2);
    let url = start_receiver(r.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let running = Running::with_registry(
        &format!(
            "server: {{listen: '127.0.0.1:0'}}\nalerting:\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 100ms\n    group_interval: 300ms\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {url}/hook\n"
        ),
        &dir.path().join("state.db"),
        &registry,
    );
    let am = &running.am;
    let now = infermon::util::now_ms();
    am.put_alerts(vec![alert(
        "HighLatency",
        &[("model", "a")],
        now,
        now + 600_000,
    )]);
    // While the first notification is being retried, the alert resolves.
    wait_for("a failed delivery", Duration::from_secs(20), || {
        gathered(&registry, "infermon_alerting_notifications_failed_total") >= 1.0
    })
    .await;
    am.put_alerts(vec![alert(
        "HighLatency",
        &[("model", "a")],
        now,
        infermon::util::now_ms(),
    )]);
    wait_for("both notifications", Duration::from_secs(20), || {
        r.got.lock().unwrap().len() >= 2
    })
    .await;
    settled(&registry, 2.0).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "each delivered once: {got:?}");
    assert_eq!(got[0].1["status"], "firing");
    assert_eq!(got[1].1["status"], "resolved");
    let payload = &got[0].1;
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["receiver"], "hook");
    assert_eq!(payload["groupLabels"]["alertname"], "HighLatency");
    assert_eq!(payload["alerts"][0]["labels"]["model"], "a");
    assert_eq!(
        payload["alerts"][0]["fingerprint"].as_str().unwrap().len(),
        16
    );
    assert_eq!(*r.attempts.lock().unwrap(), 4, "2 failures + 2 deliveries");
    let history = am.outbox().history(10).unwrap();
    assert_eq!(history.iter().filter(|h| h.status == "sent").count(), 2);
    assert!(am.outbox().queued().unwrap().is_empty());
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(
            r#"infermon_alerting_notifications_failed_total{integration="hook/webhook/0"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"infermon_alerting_notifications_sent_total{integration="hook/webhook/0"} 2"#
        ),
        "{text}"
    );
    running.stop().await;
}

#[tokio::test]
async fn grouping_silences_and_inhibition() {
    let r = Receiver::default();
    let url = start_receiver(r.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"server: {{listen: '127.0.0.1:0'}}
alerting:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 200ms
    group_interval: 400ms
    repeat_interval: 1h
  receivers:
    - name: hook
      webhook_configs:
        - url: {url}/hook
  inhibit_rules:
    - source_matchers: ['severity="critical"']
      target_matchers: ['severity="warning"']
      equal: [model]
"#
    );
    let running = Running::start(&yaml, &dir.path().join("state.db"));
    let am = &running.am;
    let now = infermon::util::now_ms();
    let far = now + 3_600_000;
    // A silence for model c.
    am.silences()
        .upsert(infermon::alerting::PostableSilence {
            id: None,
            matchers: vec![infermon::alerting::SilenceMatcher {
                name: "model".into(),
                value: "c".into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: "2020-01-01T00:00:00Z".into(),
            ends_at: "2099-01-01T00:00:00Z".into(),
            created_by: "test".into(),
            comment: "maintenance".into(),
        })
        .unwrap();
    am.put_alerts(vec![
        alert("Slow", &[("model", "a"), ("severity", "warning")], now, far),
        alert("Slow", &[("model", "b"), ("severity", "warning")], now, far),
        alert("Slow", &[("model", "c"), ("severity", "warning")], now, far),
        alert(
            "Errors",
            &[("model", "a"), ("severity", "critical")],
            now,
            far,
        ),
    ]);
    wait_for("two group notifications", Duration::from_secs(10), || {
        r.got.lock().unwrap().len() >= 2
    })
    .await;
    // Two groups, each flushed twice more without repeating itself.
    settled(&running.registry, 4.0).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        2,
        "one per group, no repeats before repeat_interval: {got:?}"
    );
    let slow = got
        .iter()
        .find(|(_, b)| b["groupLabels"]["alertname"] == "Slow")
        .unwrap();
    let models: Vec<&str> = slow.1["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        ["b"],
        "a is inhibited by the critical alert, c is silenced"
    );
    // The critical alert resolves: a is no longer inhibited and is notified at the next interval.
    am.put_alerts(vec![alert(
        "Errors",
        &[("model", "a"), ("severity", "critical")],
        now,
        infermon::util::now_ms(),
    )]);
    wait_for(
        "resolution and un-inhibited alert",
        Duration::from_secs(10),
        || r.got.lock().unwrap().len() >= 4,
    )
    .await;
    let got = r.got.lock().unwrap().clone();
    let errors = got
        .iter()
        .rfind(|(_, b)| b["groupLabels"]["alertname"] == "Errors")
        .unwrap();
    assert_eq!(errors.1["status"], "resolved");
    let slow = got
        .iter()
        .rfind(|(_, b)| b["groupLabels"]["alertname"] == "Slow")
        .unwrap();
    let models: Vec<&str> = slow.1["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["a", "b"]);
    running.stop().await;
}

#[tokio::test]
async fn queued_notifications_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // Receiver not there yet: a closed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let yaml = |url: &str| {
        format!(
            "server: {{listen: '127.0.0.1:0'}}\nalerting:\n  route:\n    receiver: hook\n    group_wait: 50ms\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {url}/hook\n"
        )
    };
    {
        let running = Running::start(&yaml(&format!("http://{closed}")), &path);
        let am = &running.am;
        let now = infermon::util::now_ms();
        am.put_alerts(vec![alert(
            "DiskFull",
            &[("mountpoint", "/data")],
            now,
            now + 600_000,
        )]);
        wait_for("a failed attempt", Duration::from_secs(10), || {
            am.outbox()
                .queued()
                .unwrap()
                .first()
                .is_some_and(|r| r.attempts >= 1)
        })
        .await;
        // Crash: the task is dropped mid-flight, nothing is flushed.
        running.task.abort();
    }
    let r = Receiver::default();
    let url = start_receiver(r.clone()).await;
    let running = Running::start(&yaml(&url), &path);
    let am = &running.am;
    wait_for("delivery after restart", Duration::from_secs(15), || {
        !r.got.lock().unwrap().is_empty()
    })
    .await;
    // The same alert arriving again after the restart is not notified twice.
    let now = infermon::util::now_ms();
    am.put_alerts(vec![alert(
        "DiskFull",
        &[("mountpoint", "/data")],
        now - 1000,
        now + 600_000,
    )]);
    settled(&running.registry, 2.0).await;
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["alerts"][0]["labels"]["mountpoint"], "/data");
    running.stop().await;
}

#[tokio::test]
async fn dingtalk_wecom_feishu_payloads_signatures_and_limits() {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let r = Receiver::robot();
    let url = start_receiver(r.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"server: {{listen: '127.0.0.1:0'}}
alerting:
  language: zh-CN
  route:
    receiver: chat
    group_by: [alertname]
    group_wait: 50ms
  receivers:
    - name: chat
      dingtalk_configs:
        - url: {url}/robot/send?access_token=tok
          secret: SECdingtalk
          at_mobiles: ['13800000000']
      wecom_configs:
        - url: {url}/cgi-bin/webhook/send?key=k
      feishu_configs:
        - url: {url}/open-apis/bot/v2/hook/h
          secret: feishusecret
"#
    );
    let running = Running::start(&yaml, &dir.path().join("state.db"));
    let am = &running.am;
    let now = infermon::util::now_ms();
    // 300 alerts with long Chinese annotations: far over WeCom's 4096 bytes.
    let alerts: Vec<Alert> = (0..300)
        .map(|i| {
            let mut a = alert(
                "推理延迟过高",
                &[("model", &format!("模型-{i}"))],
                now,
                now + 600_000,
            );
            a.annotations.insert(
                "description".into(),
                "P95 延迟超过 2 秒，请检查 GPU 负载和批处理队列。".repeat(3),
            );
            a
        })
        .collect();
    am.put_alerts(alerts);
    wait_for("three robot messages", Duration::from_secs(10), || {
        r.got.lock().unwrap().len() >= 3
    })
    .await;
    let got = r.got.lock().unwrap().clone();

    let (uri, ding) = got
        .iter()
        .find(|(u, _)| u.starts_with("/robot/send"))
        .unwrap();
    assert_dingtalk_signed(uri, "SECdingtalk", now);
    assert_eq!(ding["msgtype"], "markdown");
    let text = ding["markdown"]["text"].as_str().unwrap();
    assert!(
        ding["markdown"]["title"]
            .as_str()
            .unwrap()
            .starts_with("[告警:300] 推理延迟过高")
    );
    assert!(
        text.ends_with(" @13800000000"),
        "DingTalk pings only with @mobile in the text"
    );
    assert!(text.len() <= 20_000);
    assert!(text.contains("已截断"));
    assert_eq!(ding["at"]["atMobiles"][0], "13800000000");

    let (_, wecom) = got
        .iter()
        .find(|(u, _)| u.starts_with("/cgi-bin/webhook/send?key=k"))
        .unwrap();
    let content = wecom["markdown"]["content"].as_str().unwrap();
    assert!(content.len() <= 4096, "{}", content.len());
    assert!(content.ends_with("（内容过长，已截断）"));

    let (_, feishu) = got
        .iter()
        .find(|(u, _)| u.starts_with("/open-apis/bot"))
        .unwrap();
    let ts = feishu["timestamp"].as_str().unwrap();
    let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(format!("{ts}\nfeishusecret").as_bytes())
        .unwrap();
    assert_eq!(
        feishu["sign"].as_str().unwrap(),
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(feishu["msg_type"], "interactive");
    assert_eq!(feishu["card"]["header"]["template"], "red");
    running.stop().await;
}

/// Posts `alerts` to the binary's `/api/v2/alerts`, as a Prometheus server would.
fn post_alerts(server: &support::TestServer, alerts: serde_json::Value) {
    let resp = support::client()
        .post(server.url("/api/v2/alerts"))
        .json(&alerts)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Waits (blocking) until `ok`; after `timeout` fails with `what` and the
/// binary's log.
fn wait_on(
    server: &support::TestServer,
    what: &str,
    timeout: Duration,
    mut ok: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + timeout;
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sum of every series of `name` on the binary's `/metrics`.
fn scraped(server: &support::TestServer, name: &str) -> f64 {
    let text = support::client()
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    support::parse_exposition(&text)
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// Waits until every rule group of the binary has been evaluated `n` more
/// times (its `lastEvaluation` in `/api/v1/rules` changed `n` times).
fn wait_evaluations(server: &support::TestServer, n: usize) {
    let last = || -> Vec<String> {
        let v: serde_json::Value = support::client()
            .get(server.url("/api/v1/rules"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["lastEvaluation"].to_string())
            .collect()
    };
    let mut seen = vec![last()];
    wait_on(server, "rule evaluations", Duration::from_secs(60), || {
        let now = last();
        let mut changed = seen.iter().all(|old| old.len() == now.len());
        for old in &seen {
            changed &= old.iter().zip(&now).all(|(a, b)| a != b);
        }
        if changed {
            seen.push(now);
        }
        seen.len() > n
    });
}

/// [`settled`] for the binary, read from its `/metrics`.
fn settled_binary(server: &support::TestServer, flushes: f64) {
    let start = scraped(server, "infermon_alerting_group_flushes_total");
    wait_on(
        server,
        "the alert manager to settle",
        Duration::from_secs(20),
        || {
            scraped(server, "infermon_alerting_notifications_queued") == 0.0
                && (scraped(server, "infermon_alerting_aggregation_groups") == 0.0
                    || scraped(server, "infermon_alerting_group_flushes_total") >= start + flushes)
        },
    );
}

// Silences through the HTTP API of the real binary, and alerts posted to it
// the way a Prometheus server would, delivered to a local webhook.
#[test]
fn binary_serves_silences_alerts_rules_and_delivers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = Receiver::default();
    let url = rt.block_on(start_receiver(r.clone()));
    let server = support::TestServer::start(&format!(
        r#"server: {{listen: '127.0.0.1:0'}}
models: []
storage: {{path: '{{dir}}/data'}}
alerting:
  route:
    receiver: hook
    group_wait: 100ms
  receivers:
    - name: hook
      webhook_configs:
        - url: {url}/hook
"#
    ));
    let c = support::client();
    let rules: serde_json::Value = c
        .get(server.url("/api/v1/rules"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(rules["status"], "success");
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert!(
        groups.iter().any(|g| g["name"] == "infermon-inference"),
        "{rules}"
    );
    let alerts: serde_json::Value = c
        .get(server.url("/api/v1/alerts"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(alerts["data"]["alerts"], serde_json::json!([]));

    let silence = serde_json::json!({
        "matchers": [{"name": "model", "value": "quiet", "isRegex": false, "isEqual": true}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test", "comment": "maintenance"});
    let resp = c
        .post(server.url("/api/v2/silences"))
        .json(&silence)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.json::<serde_json::Value>().unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = serde_json::json!({"matchers": [], "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z"});
    let resp = c
        .post(server.url("/api/v2/silences"))
        .json(&bad)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.json::<serde_json::Value>().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("matcher")
    );

    post_alerts(
        &server,
        serde_json::json!([
        {"labels": {"alertname": "Loud", "model": "loud"}, "annotations": {"summary": "loud"}},
        {"labels": {"alertname": "Quiet", "model": "quiet"}}]),
    );
    wait_on(&server, "a notification", Duration::from_secs(15), || {
        r.count() > 0
    });
    // group_interval is the default 5m: the outbox is all that can still send.
    settled_binary(&server, 0.0);
    let got = r.got.lock().unwrap().clone();
    let names: Vec<String> = got
        .iter()
        .flat_map(|(_, b)| {
            b["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(names, ["Loud"], "the silenced alert is not sent");
    let am_alerts: serde_json::Value = c
        .get(server.url("/api/v2/alerts"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let quiet = am_alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["model"] == "quiet")
        .unwrap();
    assert_eq!(quiet["status"]["state"], "suppressed");
    assert_eq!(quiet["status"]["silencedBy"][0], id.as_str());

    let resp = c
        .delete(server.url(&format!("/api/v2/silence/{id}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let list: serde_json::Value = c
        .get(server.url("/api/v2/silences"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list[0]["status"]["state"], "expired");
    let history: serde_json::Value = c
        .get(server.url("/api/v1/notifications"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(history["data"]["history"][0]["status"], "sent", "{history}");
    let metrics = c
        .get(server.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(
            "infermon_alerting_notifications_sent_total{integration=\"hook/webhook/0\"} 1"
        ),
        "{metrics}"
    );
}

// ---------------------------------------------------------------- real peers

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_both_parts() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let yaml = format!(
        r#"server: {{listen: '127.0.0.1:0'}}
alerting:
  language: zh-CN
  route:
    receiver: mail
    group_by: [alertname, model]
    group_wait: 50ms
  receivers:
    - name: mail
      email_configs:
        - to: oncall@example.com, second@example.com
          from: infermon@example.com
          smarthost: 127.0.0.1:{}
          require_tls: false
"#,
        smtp.port
    );
    let running = Running::start(&yaml, &dir.path().join("state.db"));
    let now = infermon::util::now_ms();
    running.am.put_alerts(vec![alert(
        "HighLatency",
        &[("model", "bge-m3")],
        now,
        now + 600_000,
    )]);
    wait_for("an email in the maildir", Duration::from_secs(20), || {
        smtp.count() > 0
    })
    .await;
    let mail = &smtp.mails()[0];
    assert_eq!(
        mail.subject, "[告警:1] HighLatency model=bge-m3",
        "{mail:?}"
    );
    assert!(mail.to.contains("oncall@example.com") && mail.to.contains("second@example.com"));
    assert_eq!(mail.content_type, "multipart/alternative");
    let types: Vec<&str> = mail.parts.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"], "{mail:?}");
    for (kind, text) in &mail.parts {
        assert!(text.contains("HighLatency on bge-m3"), "{kind}: {text}");
    }
    running.stop().await;
}

#[tokio::test]
async fn alerts_are_forwarded_to_a_real_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let binary = ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("prometheus-alertmanager is required (scripts/install-test-deps.sh)");
    let _am = Peer(
        std::process::Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.path().join("am.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(port, "alertmanager");
    let yaml = format!(
        r#"server: {{listen: '127.0.0.1:0'}}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{port}']
"#
    );
    let running = Running::start(&yaml, &dir.path().join("state.db"));
    let now = infermon::util::now_ms();
    running.am.put_alerts(vec![alert(
        "GpuTemperatureHigh",
        &[("gpu", "0")],
        now,
        now + 240_000,
    )]);
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v2/alerts");
    let mut found = serde_json::Value::Null;
    for _ in 0..100 {
        if let Ok(resp) = client.get(&url).send().await
            && let Ok(v) = resp.json::<serde_json::Value>().await
            && let Some(a) = v.as_array().and_then(|a| a.first())
        {
            found = a.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        found["labels"]["alertname"], "GpuTemperatureHigh",
        "{found}"
    );
    assert_eq!(found["labels"]["gpu"], "0");
    assert_eq!(found["status"]["state"], "active");
    // Its endsAt is the validity infermon sent, not Alertmanager's resolve_timeout.
    let ends = chrono::DateTime::parse_from_rfc3339(found["endsAt"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!((ends - (now + 240_000)).abs() < 1000, "{found}");
    running.stop().await;
}

/// `kill -9` while a notification waits for a receiver that is down: the
/// restarted binary delivers it.
#[test]
fn binary_killed_with_queued_notification_delivers_after_restart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        r#"server: {{listen: '127.0.0.1:0'}}
models: []
storage: {{path: '{}'}}
alerting:
  route:
    receiver: hook
    group_wait: 50ms
  receivers:
    - name: hook
      webhook_configs:
        - url: http://127.0.0.1:{port}/hook
"#,
        data.path().display()
    );
    let c = support::client();
    {
        let mut server = support::TestServer::start(&config);
        post_alerts(
            &server,
            serde_json::json!([{"labels": {"alertname": "DiskNearlyFull", "mountpoint": "/data"}}]),
        );
        wait_on(&server, "a failed attempt", Duration::from_secs(15), || {
            let v: serde_json::Value = c
                .get(server.url("/api/v1/notifications"))
                .send()
                .unwrap()
                .json()
                .unwrap();
            v["data"]["queued"][0]["attempts"].as_u64().unwrap_or(0) >= 1
        });
        server.child.kill().unwrap(); // SIGKILL
        server.wait_exit(Duration::from_secs(5));
    }
    // The receiver comes up on the port the config names.
    let r = Receiver::default();
    rt.block_on(receivers::start_receiver_at(
        r.clone(),
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    ));
    let server = support::TestServer::start(&config);
    wait_on(
        &server,
        "delivery after the restart",
        Duration::from_secs(20),
        || r.count() > 0,
    );
    settled_binary(&server, 2.0);
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["alerts"][0]["labels"]["mountpoint"], "/data");
    drop(rt);
}

/// `infermon check` rejects a rule file whose annotation template does not
/// parse, with its position, like `promtool check rules`.
#[test]
fn check_reports_bad_rule_templates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          summary: '{{ $labels.job | nosuchfunc }}'\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("infermon.yml"),
        "rule_files: ['rules.yml']\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::binary())
        .arg("check")
        .arg(dir.path().join("infermon.yml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("rules.yml:7:") && text.contains("function \"nosuchfunc\" not defined"),
        "{text}"
    );
}

/// `alerting:` sending every alert, grouped by alertname and model, to a
/// signed DingTalk robot and a WeCom robot at `url` and to email through
/// `smtp_port`, resolved notices included, waiting `wait` before a group's
/// first notification and between its updates.
fn oncall_alerting(url: &str, smtp_port: u16, wait: &str) -> String {
    format!(
        r#"alerting:
  route:
    receiver: oncall
    group_by: [alertname, model]
    group_wait: {wait}
    group_interval: {wait}
  receivers:
    - name: oncall
      dingtalk_configs:
        - url: {url}/robot/send?access_token=t
          secret: {ONCALL_DINGTALK_SECRET}
      wecom_configs:
        - url: {url}/cgi-bin/webhook/send?key=k
      email_configs:
        - to: oncall@example.com
          from: infermon@example.com
          smarthost: 127.0.0.1:{smtp_port}
          require_tls: false
          send_resolved: true
"#
    )
}

/// The DingTalk signing secret of [`oncall_alerting`].
const ONCALL_DINGTALK_SECRET: &str = "SEConcall";

/// The built-in P95 latency rule exactly as shipped (its full `for: 5m`, on
/// a rules clock advanced by hand), driven by a query function standing in
/// for the PromQL engine (a "slow" knob decides whether the latency
/// expression returns 2.6 s): pending, firing after 5 minutes, delivered to
/// DingTalk, WeCom and email, resolved when the knob is turned off. The
/// binary test below does the same with real slow inference and a shortened `for`.
#[tokio::test]
async fn builtin_latency_rule_fires_after_its_full_five_minutes() {
    let r = Receiver::robot();
    let url = start_receiver(r.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(dir.path());
    let config = alerting_config(&format!(
        "server: {{listen: '127.0.0.1:0'}}\n\
         global: {{evaluation_interval: 15s, external_labels: {{box: gpu-07}}}}\n{}",
        oncall_alerting(&url, smtp.port, "200ms")
    ));
    let store = Arc::new(StateStore::open(&dir.path().join("state.db")).unwrap());
    let clock = Clock::system();
    let now: NowFn = {
        let clock = clock.clone();
        Arc::new(move || clock.now_ms())
    };
    let registry = prometheus::Registry::new();
    let am = Arc::new(AlertManager::new(&config, store.clone(), &registry, now).unwrap());
    let shutdown = Shutdown::new();
    let am_task = tokio::spawn(am.clone().run(shutdown.clone()));
    let to_alerting = am.clone();
    let sink = move |alerts: Vec<OutgoingAlert>| {
        to_alerting.put_rule_alerts(
            alerts
                .into_iter()
                .map(|a| Alert {
                    labels: a.labels,
                    annotations: a.annotations,
                    starts_at_ms: a.starts_at_ms,
                    ends_at_ms: a.ends_at_ms,
                    generator_url: a.generator_url,
                })
                .collect(),
        )
    };
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let knob = slow.clone();
    let query: QueryFn = Arc::new(move |expr: String, _ts: i64| {
        let slow = knob.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if slow && expr.contains("infermon_inference_total_duration_seconds_bucket") {
                Ok(vec![InstantSample {
                    labels: Labels::new([
                        ("model", "all-MiniLM-L6-v2"),
                        ("route", "/v1/embeddings"),
                    ]),
                    value: 2.6,
                }])
            } else {
                Ok(vec![])
            }
        })
    });
    let rules = RuleManager::new(
        load_rule_files(&config).unwrap(),
        ManagerOptions::from_config(&config),
        query,
        Arc::new(MemoryStorage::new()),
        Arc::new(sink),
        Some(store),
        clock.clone(),
    )
    .await;
    rules.eval_all().await;
    assert_eq!(
        rule_state(&rules, "InferenceHighLatencyP95").await,
        Some(AlertState::Pending)
    );
    for _ in 0..19 {
        clock.advance(Duration::from_secs(15));
        rules.eval_all().await;
    }
    assert_eq!(
        rule_state(&rules, "InferenceHighLatencyP95").await,
        Some(AlertState::Pending),
        "4m45s"
    );
    // A pending alert is never handed to the alert manager at all.
    assert!(am.alerts().is_empty(), "nothing sent while pending");
    assert!(
        r.got.lock().unwrap().is_empty(),
        "nothing sent while pending"
    );
    clock.advance(Duration::from_secs(15));
    rules.eval_all().await;
    assert_eq!(
        rule_state(&rules, "InferenceHighLatencyP95").await,
        Some(AlertState::Firing)
    );
    let mail_count = || smtp.count();
    wait_for(
        "firing on DingTalk, WeCom and email",
        Duration::from_secs(20),
        || r.got.lock().unwrap().len() >= 2 && mail_count() >= 1,
    )
    .await;
    {
        let got = r.got.lock().unwrap();
        let ding = &got
            .iter()
            .find(|(u, _)| u.starts_with("/robot/send"))
            .unwrap()
            .1;
        let title = ding["markdown"]["title"].as_str().unwrap();
        assert_eq!(
            title,
            "[FIRING:1] InferenceHighLatencyP95 model=all-MiniLM-L6-v2"
        );
        assert!(
            ding["markdown"]["text"]
                .as_str()
                .unwrap()
                .contains("P95 latency of all-MiniLM-L6-v2 /v1/embeddings is 2.6s")
        );
        assert!(
            ding["markdown"]["text"]
                .as_str()
                .unwrap()
                .contains("box=gpu-07")
        );
        let wecom = &got
            .iter()
            .find(|(u, _)| u.starts_with("/cgi-bin"))
            .unwrap()
            .1;
        assert!(
            wecom["markdown"]["content"]
                .as_str()
                .unwrap()
                .contains("[FIRING:1] InferenceHighLatencyP95")
        );
    }
    // The knob is turned off: the next evaluation resolves the alert.
    slow.store(false, std::sync::atomic::Ordering::SeqCst);
    clock.advance(Duration::from_secs(15));
    rules.eval_all().await;
    assert_eq!(
        rule_state(&rules, "InferenceHighLatencyP95").await,
        Some(AlertState::Inactive)
    );
    wait_for(
        "resolved on DingTalk, WeCom and email",
        Duration::from_secs(20),
        || r.got.lock().unwrap().len() >= 4 && mail_count() >= 2,
    )
    .await;
    let got = r.got.lock().unwrap().clone();
    let resolved: Vec<&str> = got[2..]
        .iter()
        .map(|(_, b)| {
            b["markdown"]["title"]
                .as_str()
                .or(b["markdown"]["content"].as_str())
                .unwrap()
        })
        .collect();
    assert!(
        resolved
            .iter()
            .all(|t| t.contains("[RESOLVED] InferenceHighLatencyP95")),
        "{resolved:?}"
    );
    settled(&registry, 2.0).await;
    assert_eq!(r.got.lock().unwrap().len(), 4, "no duplicates");
    shutdown.trigger();
    am_task.await.unwrap();
}

// ---------------------------------------------------------------- the binary, end to end

/// The shipped `config/rules/inference.yml` with one change: the P95 latency
/// rule's `for: 5m` becomes `for: {for_}`, because waiting a real five
/// minutes would make the test take over six. The expression, labels and
/// annotations are the file's own (the full 5m is checked by
/// `builtin_latency_rule_fires_after_its_full_five_minutes`).
fn inference_rules_with_p95_for(for_: &str) -> String {
    let text =
        std::fs::read_to_string(support::repo_root().join("config/rules/inference.yml")).unwrap();
    let start = text.find("- alert: InferenceHighLatencyP95").unwrap();
    let end = text[start + 1..]
        .find("- alert:")
        .map_or(text.len(), |i| start + 1 + i);
    let rule = &text[start..end];
    assert_eq!(rule.matches("for: 5m").count(), 1, "{rule}");
    format!(
        "{}{}{}",
        &text[..start],
        rule.replace("for: 5m", &format!("for: {for_}")),
        &text[end..]
    )
}

/// The state and value of `alertname` in the binary's `/api/v1/alerts`
/// (absent: inactive).
fn rule_alert(server: &support::TestServer, alertname: &str) -> Option<(String, f64)> {
    let v: serde_json::Value = support::client()
        .get(server.url("/api/v1/alerts"))
        .send()
        .ok()?
        .json()
        .ok()?;
    let alert = v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == alertname)?;
    let value = alert["value"].as_str()?.parse().ok()?;
    Some((alert["state"].as_str()?.to_string(), value))
}

/// The seconds in `…/embed is 4.875s` (humanizeDuration below a minute;
/// markdown may follow the unit).
fn p95_in(text: &str) -> f64 {
    let head = "P95 latency of all-MiniLM-L6-v2 /embed is ";
    let at = text
        .find(head)
        .unwrap_or_else(|| panic!("no {head:?} in {text}"));
    let rest = &text[at + head.len()..];
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = &rest[number.len()..];
    assert!(
        unit.starts_with('s') && !number.is_empty(),
        "not seconds: {rest:?}"
    );
    number.parse().unwrap()
}

/// A client thread posting one short text to `embed` back to back while
/// `on` holds, `most` times at most; it returns how many it sent, all answered 200.
fn embed_client(
    embed: &str,
    on: Arc<std::sync::atomic::AtomicBool>,
    most: u32,
) -> std::thread::JoinHandle<u32> {
    let embed = embed.to_string();
    std::thread::spawn(move || {
        let c = support::client();
        let body = serde_json::json!({"inputs": "how long does the p95 take"});
        let mut sent = 0;
        while on.load(std::sync::atomic::Ordering::SeqCst) && sent < most {
            let status = c.post(&embed).json(&body).send().map(|r| r.status());
            assert!(status.as_ref().is_ok_and(|s| s.is_success()), "{status:?}");
            sent += 1;
        }
        sent
    })
}

/// Inference made slow on purpose (the test-only delay file, read by the
/// model thread before every batch) drives the built-in P95 latency rule of
/// the real binary through its own scrape, store and PromQL: pending (and
/// nothing sent), firing (DingTalk signed, WeCom and a real SMTP server each
/// get the model and a P95 over 2 s), then, with the delay off and enough
/// fast requests to bring the 5m P95 under 2 s, resolved on all three.
#[test]
fn slow_inference_fires_the_builtin_p95_alert_then_resolves_end_to_end() {
    use infermon::inference::test_delay::TEST_DELAY_ENV;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let begun = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let robots = Receiver::robot();
    let url = rt.block_on(start_receiver(robots.clone()));
    let peers = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(peers.path());
    let rules = peers.path().join("inference.yml");
    std::fs::write(&rules, inference_rules_with_p95_for("20s")).unwrap();
    let delay = peers.path().join("delay-ms");
    // 2.6 s per batch: every request lands in the (2.5, 5] bucket.
    std::fs::write(&delay, "2600").unwrap();
    let server = support::TestServer::start_with_env(
        &format!(
            r#"global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}
server: {{listen: '127.0.0.1:0'}}
models:
  - name: all-MiniLM-L6-v2
    path: '{{repo}}/models/all-MiniLM-L6-v2'
storage: {{path: '{{dir}}/data'}}
rule_files: ['{}']
snapshots: {{enabled: false}}
collectors: {{host: {{enabled: false}}, gpu: {{enabled: false}}}}
{}  builtin_rules: false
"#,
            rules.display(),
            oncall_alerting(&url, smtp.port, "1s")
        ),
        &[(TEST_DELAY_ENV, &delay)],
    );
    let embed = server.url("/embed");
    // One client sends slow requests back to back (each ~2.6 s).
    let slow = Arc::new(AtomicBool::new(true));
    let slow_load = embed_client(&embed, slow.clone(), 60);

    // Pending, with nothing delivered, then firing and delivered everywhere.
    let mut states: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while robots.count() < 2 || smtp.count() < 1 {
        // Counted before the state is read: anything delivered by then was
        // sent while the rule was already firing.
        let delivered = robots.count() + smtp.count();
        if let Some((state, value)) = rule_alert(&server, "InferenceHighLatencyP95") {
            assert!(value > 2.0, "{state} at {value}");
            if states.last() != Some(&state) {
                states.push(state.clone());
            }
            if state == "pending" {
                assert_eq!(delivered, 0, "nothing is sent while pending");
            }
        }
        assert!(
            Instant::now() < deadline,
            "no firing notification on all channels (states {states:?}, {} robot messages, {} mails); log:\n{}",
            robots.count(),
            smtp.count(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Firing stays firing while requests are slow: one more look in case
    // the deliveries landed right after a poll that still saw pending.
    if let Some((state, _)) = rule_alert(&server, "InferenceHighLatencyP95")
        && states.last() != Some(&state)
    {
        states.push(state);
    }
    assert_eq!(
        states,
        ["pending", "firing"],
        "as /api/v1/alerts showed them"
    );
    let fired_after = begun.elapsed();
    let title = "[FIRING:1] InferenceHighLatencyP95 model=all-MiniLM-L6-v2";
    let ding = robots.at("/robot/send");
    assert_eq!(ding.len(), 1, "{ding:?}");
    assert_dingtalk_signed(&ding[0].0, ONCALL_DINGTALK_SECRET, infermon::util::now_ms());
    assert_eq!(ding[0].1["msgtype"], "markdown");
    assert_eq!(ding[0].1["markdown"]["title"], title);
    assert!(p95_in(ding[0].1["markdown"]["text"].as_str().unwrap()) > 2.0);
    let wecom = robots.at("/cgi-bin/webhook/send?key=k");
    assert_eq!(wecom.len(), 1, "{wecom:?}");
    let content = wecom[0].1["markdown"]["content"].as_str().unwrap();
    assert!(content.contains(title), "{content}");
    assert!(p95_in(content) > 2.0);
    let mails: Vec<Mail> = smtp.mails();
    assert_eq!(mails[0].subject, title);
    assert!(p95_in(mails[0].part("text/plain")) > 2.0);

    // The knob off: fast requests from four clients until the P95 over the
    // 5m window is under 2 s and the alert resolves (bounded in count and time).
    std::fs::write(&delay, "0").unwrap();
    slow.store(false, Ordering::SeqCst);
    let slow_sent = slow_load.join().unwrap();
    let fast = Arc::new(AtomicBool::new(true));
    let fast_load: Vec<_> = (0..4)
        .map(|_| embed_client(&embed, fast.clone(), 1500))
        .collect();
    wait_on(
        &server,
        "resolved notices on DingTalk, WeCom and email",
        Duration::from_secs(60),
        || robots.count() >= 4 && smtp.count() >= 2,
    );
    fast.store(false, Ordering::SeqCst);
    let fast_sent: u32 = fast_load.into_iter().map(|t| t.join().unwrap()).sum();
    let resolved_after = begun.elapsed();
    assert_eq!(rule_alert(&server, "InferenceHighLatencyP95"), None);
    let p95: serde_json::Value = support::client()
        .get(server.url("/api/v1/query"))
        .query(&[(
            "query",
            "histogram_quantile(0.95, sum by (model, route, le) \
             (rate(infermon_inference_total_duration_seconds_bucket[5m])))",
        )])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let now_p95: f64 = p95["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        now_p95 < 2.0,
        "{now_p95} after {slow_sent} slow and {fast_sent} fast requests"
    );

    // Resolved on each channel, after its firing message, once.
    settled_binary(&server, 2.0);
    let resolved = "[RESOLVED] InferenceHighLatencyP95 model=all-MiniLM-L6-v2";
    let ding = robots.at("/robot/send");
    assert_eq!(ding.len(), 2, "{ding:?}");
    assert_eq!(ding[1].1["markdown"]["title"], resolved);
    assert_dingtalk_signed(&ding[1].0, ONCALL_DINGTALK_SECRET, infermon::util::now_ms());
    let wecom = robots.at("/cgi-bin/webhook/send?key=k");
    assert_eq!(wecom.len(), 2, "{wecom:?}");
    let content = wecom[1].1["markdown"]["content"].as_str().unwrap();
    assert!(content.contains(resolved), "{content}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].subject, resolved);
    eprintln!(
        "fired on 3 channels after {fired_after:.1?}, resolved after {resolved_after:.1?} \
         ({slow_sent} slow, {fast_sent} fast requests; P95 now {now_p95:.3} s)"
    );
    assert!(
        begun.elapsed() < Duration::from_secs(180),
        "{:?}",
        begun.elapsed()
    );
    drop(rt);
}

/// `alerting.alert_relabel_configs` in the binary: a step that drops the
/// rules' alerts with `severity="info"` and one that adds `team`. Routed
/// notifications and the copies forwarded to an Alertmanager both show it;
/// the rules API still shows every alert (relabelling happens on the way
/// out, as in Prometheus), and an alert posted to `/api/v2/alerts` by another
/// Prometheus passes unchanged (it relabelled its own).
#[test]
fn alert_relabel_configs_drop_and_add_labels_before_delivery() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = Receiver::default();
    let url = rt.block_on(start_receiver(r.clone()));
    let peers = tempfile::tempdir().unwrap();
    let rules = peers.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: relabel\n    rules:\n      - alert: NoisyInfo\n        expr: vector(1)\n        labels: {severity: info}\n      - alert: RealProblem\n        expr: vector(1)\n        labels: {severity: critical}\n",
    )
    .unwrap();
    let server = support::TestServer::start(&format!(
        r#"global: {{evaluation_interval: 1s}}
server: {{listen: '127.0.0.1:0'}}
models: []
storage: {{path: '{{dir}}/data'}}
rule_files: ['{}']
snapshots: {{enabled: false}}
alerting:
  builtin_rules: false
  alert_relabel_configs:
    - source_labels: [severity]
      regex: info
      action: drop
    - target_label: team
      replacement: ml-platform
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 100ms
    group_interval: 200ms
  receivers:
    - name: hook
      webhook_configs:
        - url: {url}/hook
  alertmanagers:
    - static_configs:
        - targets: ['{}']
"#,
        rules.display(),
        url.trim_start_matches("http://")
    ));
    post_alerts(
        &server,
        serde_json::json!([{"labels": {"alertname": "External", "severity": "info"}}]),
    );
    let notified = |name: &str| -> Vec<serde_json::Value> {
        r.at("/hook")
            .iter()
            .flat_map(|(_, b)| b["alerts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["labels"]["alertname"] == name)
            .collect()
    };
    let forwarded = |name: &str| -> Vec<serde_json::Value> {
        r.at("/api/v2/alerts")
            .iter()
            .flat_map(|(_, b)| b.as_array().cloned().unwrap_or_default())
            .filter(|a| a["labels"]["alertname"] == name)
            .collect()
    };
    wait_on(
        &server,
        "RealProblem notified and forwarded, External notified",
        Duration::from_secs(20),
        || {
            !notified("RealProblem").is_empty()
                && !notified("External").is_empty()
                && !forwarded("RealProblem").is_empty()
        },
    );
    // Several evaluations later the dropped alert has still gone nowhere.
    wait_evaluations(&server, 3);
    settled_binary(&server, 2.0);
    assert!(notified("NoisyInfo").is_empty(), "{:?}", r.all());
    assert!(forwarded("NoisyInfo").is_empty(), "{:?}", r.all());
    for a in notified("RealProblem")
        .iter()
        .chain(&forwarded("RealProblem"))
    {
        assert_eq!(a["labels"]["team"], "ml-platform", "{a}");
        assert_eq!(a["labels"]["severity"], "critical", "{a}");
    }
    let external = &notified("External")[0];
    assert_eq!(
        external["labels"]["team"],
        serde_json::Value::Null,
        "{external}"
    );
    assert_eq!(
        rule_alert(&server, "NoisyInfo").map(|(state, _)| state),
        Some("firing".to_string())
    );
    drop(rt);
}
