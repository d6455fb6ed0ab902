//! The reference is complete: every config key the typed config has is in
//! `config/infermon.yml` (which calls itself the reference for every key),
//! every section and its keys are in README's config table, and every metric
//! family a running binary exposes — or the built-in rules and dashboards
//! read — is in README's metrics table.

use crate::support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{TestServer, client, repo_root};

/// Key paths of a serialized config (`server.limits.max_body_bytes`); a
/// list is walked through its first element (`models.name`).
fn key_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                key_paths(child, &path, out);
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                key_paths(first, prefix, out);
            }
        }
        _ => {}
    }
}

/// A README section: from its `## title` line to the next `## `.
fn readme_section(readme: &str, title: &str) -> String {
    let start = readme
        .find(&format!("## {title}"))
        .unwrap_or_else(|| panic!("README has no section {title:?}"));
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i);
    rest[..end].to_string()
}

/// Words in backticks (`a`, `b.c`), split at `,`, `/`, spaces and braces.
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|s| {
            s.split([',', ' ', '/', '{', '}', '(', ')', '|', '=', ':', '\\'])
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Optional sections filled in, so their keys are walked too (a section
/// left out serializes as null and hides its keys).
const FILLED: &str = r#"
server:
  auth:
    api_keys: [k]
    basic_auth_users:
      viewer: {password_hash: "$2b$12$abcdefghijklmnopqrstuuGzW5pF3b8Ue0GQkqXfD0x1ZpQ7b5Rz6", role: read_only}
scrape_configs:
  - job_name: j
    static_configs: [{targets: ['127.0.0.1:1'], labels: {a: b}}]
    file_sd_configs: [{files: [targets.json]}]
    relabel_configs: [{source_labels: [a], target_label: b}]
    basic_auth: {username: u, password: p}
    tls_config: {insecure_skip_verify: true}
remote_write:
  - url: http://127.0.0.1:1/api/v1/write
    basic_auth: {username: u, password: p}
alerting:
  route:
    receiver: r
    routes: [{matchers: ['a="b"'], receiver: r}]
  receivers:
    - name: r
      dingtalk_configs: [{url: 'https://oapi.dingtalk.com/robot/send?access_token=x'}]
      wecom_configs: [{url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x'}]
      feishu_configs: [{url: 'https://open.feishu.cn/open-apis/bot/v2/hook/x'}]
      webhook_configs: [{url: 'http://127.0.0.1:1/'}]
      email_configs: [{to: a@example.com, from: b@example.com, smarthost: 'smtp.example.com:587'}]
      alertmanager_configs: [{url: 'http://127.0.0.1:9093'}]
  inhibit_rules: [{source_matchers: ['a="b"'], target_matchers: ['c="d"'], equal: [e]}]
"#;

/// Whether `config/infermon.yml` documents `key`: as a `key:` line
/// (commented or not), or named in a comment (`# Also: honor_labels, …`).
fn in_reference_yaml(yml: &str, key: &str) -> bool {
    yml.lines().any(|l| {
        let t = l.trim_start_matches([' ', '#', '-']);
        t.starts_with(&format!("{key}:"))
            || (l.trim_start().starts_with('#')
                && l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|w| w == key))
    })
}

#[test]
fn every_config_key_is_in_the_reference_yaml_and_readme() {
    let default = infermon::config::Config::load_default()
        .expect("the embedded default loads")
        .config;
    let serialized = serde_json::to_value(&default).unwrap();
    let filled = infermon::config::Config::load_str(FILLED, None)
        .expect("the filled config loads")
        .config;
    let mut paths = Vec::new();
    key_paths(&serialized, "", &mut paths);
    key_paths(&serde_json::to_value(&filled).unwrap(), "", &mut paths);
    paths.sort();
    paths.dedup();
    assert!(
        paths
            .iter()
            .any(|p| p == "alerting.receivers.dingtalk_configs.secret"),
        "the filled sections are walked: {paths:?}"
    );

    let yml = std::fs::read_to_string(repo_root().join("config/infermon.yml")).unwrap();
    let missing_yml: Vec<&String> = paths
        .iter()
        .filter(|p| !in_reference_yaml(&yml, p.rsplit('.').next().unwrap()))
        .collect();
    assert!(
        missing_yml.is_empty(),
        "keys missing from config/infermon.yml (a `key:` line, commented or not, or named in a comment): {missing_yml:?}"
    );

    // README: one table row per section, naming each of its own keys.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let table = readme_section(&readme, "Configuration");
    let mut missing_readme = Vec::new();
    for (section, value) in serialized.as_object().unwrap() {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| `{section}` |")));
        let Some(row) = row else {
            missing_readme.push(section.clone());
            continue;
        };
        let words = backticked(row);
        let child = match value {
            Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        if let Value::Object(keys) = child {
            for k in keys.keys() {
                if !words.iter().any(|w| {
                    w == k || w.ends_with(&format!(".{k}")) || w.starts_with(&format!("{k}."))
                }) {
                    missing_readme.push(format!("{section}.{k}"));
                }
            }
        }
    }
    assert!(
        missing_readme.is_empty(),
        "missing from README's config table (a `| \\`section\\` |` row naming each key in backticks): {missing_readme:?}"
    );
}

/// Metric names the built-in rules and dashboards read.
fn names_in_builtins() -> BTreeSet<String> {
    let root = repo_root().join("config");
    let mut text = String::new();
    for dir in ["rules", "dashboards"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                text.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let re = regex::Regex::new(r"\b((?:infermon|node|process|DCGM)_[A-Za-z0-9_]+)").unwrap();
    re.captures_iter(&text).map(|c| base_name(&c[1])).collect()
}

/// A histogram's series name without `_bucket`, `_sum`, `_count`.
fn base_name(name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(b) = name.strip_suffix(suffix) {
            return b.to_string();
        }
    }
    name.to_string()
}

#[test]
fn every_metric_family_is_in_readmes_metrics_table() {
    let model = support::minilm_dir();
    // The fake GPU (test builds only) and dcgm names, so GPU families show.
    let s = TestServer::start_with_env(
        &format!(
            "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: '{{dir}}/data'\nmodels:\n  - name: minilm\n    path: '{}'\ncollectors:\n  gpu:\n    enabled: true\n    dcgm_names: true\n",
            model.display()
        ),
        &[("INFERMON_TEST_FAKE_GPU", std::path::Path::new("1"))],
    );
    // One request, so labelled inference families have a series.
    let r = client()
        .post(s.url("/embed"))
        .json(&serde_json::json!({"inputs": "hello"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut names: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(base_name)
        .collect();
    assert!(
        names.contains("infermon_gpu_utilization_ratio"),
        "the fake GPU is on"
    );
    assert!(names.contains("infermon_inference_requests_total"));
    names.extend(names_in_builtins());

    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let table = readme_section(&readme, "Metrics infermon exposes about itself");
    let words = backticked(&table);
    // `node_memory_*` stands for every name with that prefix.
    let documented = |n: &str| {
        words.contains(n)
            || words
                .iter()
                .any(|w| w.ends_with('*') && n.starts_with(w.trim_end_matches('*')))
    };
    let missing: Vec<&String> = names.iter().filter(|n| !documented(n)).collect();
    assert!(
        missing.is_empty(),
        "metric families missing from README's metrics table: {missing:?}"
    );
}
