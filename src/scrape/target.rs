//! Targets: discovered label sets turned into scrape targets by the job's
//! settings and `relabel_configs`, as Prometheus' `PopulateLabels` does.

use std::collections::BTreeMap;
use std::time::Duration;

use super::ScrapeError;
use crate::config::{GlobalConfig, PromDuration, ScrapeConfig};
use crate::model::Labels;
use crate::model::relabel::{self, Relabel};

/// A group of discovered addresses sharing labels (a `static_configs` entry
/// or one entry of a `file_sd_configs` file).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct TargetGroup {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels for all of them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where the group came from (`__meta_filepath` for files).
    #[serde(skip)]
    pub source: Option<String>,
}

/// Default `label_limit` when neither the job nor `global` sets one: 30
/// labels per series, as VictoriaMetrics' `-maxLabelsPerTimeseries` and
/// infermon's remote-write receiver. Prometheus has no default; `0` lifts it.
pub const DEFAULT_LABEL_LIMIT: u64 = 30;
/// Default `label_name_length_limit`: 256 (VictoriaMetrics' `-maxLabelNameLen`).
pub const DEFAULT_LABEL_NAME_LENGTH_LIMIT: u64 = 256;
/// Default `label_value_length_limit`: 16384 (VictoriaMetrics' `-maxLabelValueLen`).
pub const DEFAULT_LABEL_VALUE_LENGTH_LIMIT: u64 = 16384;
/// Default `body_size_limit`: 64 MiB of uncompressed exposition text.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 64 << 20;

/// Limits a scrape must stay within (0 or `None` = unlimited).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Samples after metric relabelling.
    pub sample_limit: u64,
    /// Labels per series.
    pub label_limit: u64,
    /// Characters per label name.
    pub label_name_length_limit: u64,
    /// Characters per label value.
    pub label_value_length_limit: u64,
    /// Uncompressed body bytes.
    pub body_size_limit: Option<u64>,
}

/// A job's settings, resolved against `global`.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// `job_name`.
    pub job_name: String,
    /// Scrape interval.
    pub interval: Duration,
    /// Scrape timeout (≤ interval).
    pub timeout: Duration,
    /// Default `__metrics_path__`.
    pub metrics_path: String,
    /// Default `__scheme__`.
    pub scheme: String,
    /// URL parameters.
    pub params: BTreeMap<String, Vec<String>>,
    /// Target labels yield to exposed ones instead of the reverse.
    pub honor_labels: bool,
    /// Exposed timestamps are kept.
    pub honor_timestamps: bool,
    /// Limits.
    pub limits: Limits,
    /// `relabel_configs`.
    pub relabel: Vec<Relabel>,
    /// `metric_relabel_configs`.
    pub metric_relabel: Vec<Relabel>,
}

impl JobSettings {
    /// Resolves a job against the global defaults.
    pub fn new(job: &ScrapeConfig, global: &GlobalConfig) -> Result<Self, ScrapeError> {
        let interval = job
            .scrape_interval
            .unwrap_or(global.scrape_interval)
            .as_duration();
        let timeout = job
            .scrape_timeout
            .unwrap_or(global.scrape_timeout)
            .as_duration()
            .min(interval);
        let body = job
            .body_size_limit
            .as_ref()
            .or(global.body_size_limit.as_ref());
        let body_size_limit = match body {
            Some(t) => crate::util::parse_bytes(t).ok_or_else(|| {
                ScrapeError::Config(format!(
                    "job {}: body_size_limit {t:?} is not a size",
                    job.job_name
                ))
            })?,
            None => DEFAULT_BODY_SIZE_LIMIT,
        };
        // Unset (in the job and in `global`) takes infermon's default; an
        // explicit 0 means no limit, as in Prometheus.
        let pick = |own: Option<u64>, g: Option<u64>, default: u64| own.or(g).unwrap_or(default);
        Ok(JobSettings {
            job_name: job.job_name.clone(),
            interval,
            timeout,
            metrics_path: job.metrics_path.clone(),
            scheme: job.scheme.clone(),
            params: job.params.clone(),
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            limits: Limits {
                sample_limit: pick(job.sample_limit, global.sample_limit, 0),
                label_limit: pick(job.label_limit, global.label_limit, DEFAULT_LABEL_LIMIT),
                label_name_length_limit: pick(
                    job.label_name_length_limit,
                    global.label_name_length_limit,
                    DEFAULT_LABEL_NAME_LENGTH_LIMIT,
                ),
                label_value_length_limit: pick(
                    job.label_value_length_limit,
                    global.label_value_length_limit,
                    DEFAULT_LABEL_VALUE_LENGTH_LIMIT,
                ),
                body_size_limit: Some(body_size_limit).filter(|b| *b > 0),
            },
            relabel: Relabel::compile(&job.relabel_configs)?,
            metric_relabel: Relabel::compile(&job.metric_relabel_configs)?,
        })
    }
}

/// A target to scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Labels before relabelling (`__address__`, `__meta_*`, …).
    pub discovered: Labels,
    /// Labels after relabelling, without `__`-prefixed ones: added to every series.
    pub labels: Labels,
    /// The URL scraped.
    pub url: String,
}

/// The targets of some groups: kept ones and the discovered labels of dropped ones.
pub fn build_targets(groups: &[TargetGroup], s: &JobSettings) -> (Vec<Target>, Vec<Labels>) {
    let (mut active, mut dropped) = (Vec::new(), Vec::new());
    for g in groups {
        for addr in &g.targets {
            let mut pairs: Vec<(String, String)> = g
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            pairs.push(("__address__".into(), addr.clone()));
            if let Some(src) = &g.source {
                pairs.push(("__meta_filepath".into(), src.clone()));
            }
            pairs.push(("job".into(), s.job_name.clone()));
            pairs.push(("__metrics_path__".into(), s.metrics_path.clone()));
            pairs.push(("__scheme__".into(), s.scheme.clone()));
            pairs.push((
                "__scrape_interval__".into(),
                PromDuration(s.interval).to_string(),
            ));
            pairs.push((
                "__scrape_timeout__".into(),
                PromDuration(s.timeout).to_string(),
            ));
            for (k, v) in &s.params {
                if let Some(first) = v.first() {
                    pairs.push((format!("__param_{k}"), first.clone()));
                }
            }
            let discovered = Labels::new(pairs);
            match relabel::process(discovered.clone(), &s.relabel)
                .and_then(|l| target_from(discovered.clone(), l, s))
            {
                Some(t) => active.push(t),
                None => dropped.push(discovered),
            }
        }
    }
    active.sort_by(|a, b| a.url.cmp(&b.url).then_with(|| a.labels.cmp(&b.labels)));
    active.dedup();
    (active, dropped)
}

fn target_from(discovered: Labels, mut l: Labels, s: &JobSettings) -> Option<Target> {
    let address = l.get("__address__")?.to_string();
    if l.get("instance").is_none() {
        l.set("instance", &address);
    }
    let scheme = l.get("__scheme__").unwrap_or("http").to_string();
    let path = l.get("__metrics_path__").unwrap_or("/metrics").to_string();
    let mut url = reqwest::Url::parse(&format!("{scheme}://{address}")).ok()?;
    url.set_path(&path);
    let mut params: BTreeMap<String, Vec<String>> = s.params.clone();
    for label in l.iter() {
        if let Some(name) = label.name.strip_prefix("__param_") {
            let values = params.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => *first = label.value.clone(),
                None => values.push(label.value.clone()),
            }
        }
    }
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, vs) in &params {
            for v in vs {
                q.append_pair(k, v);
            }
        }
    }
    l.retain(|x| !x.name.starts_with("__"));
    Some(Target {
        discovered,
        labels: l,
        url: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> JobSettings {
        let job: ScrapeConfig = serde_yaml_ng::from_str(yaml).unwrap();
        JobSettings::new(&job, &GlobalConfig::default()).unwrap()
    }

    #[test]
    fn populate_and_relabel() {
        let s = settings(
            "job_name: node\nparams: {module: [cpu]}\nrelabel_configs:\n\
             - {source_labels: [__address__], regex: 'drop.*', action: drop}\n\
             - {source_labels: [__address__], regex: '(.*):.*', target_label: host}\n\
             - {source_labels: [env], target_label: __param_module}",
        );
        let groups = vec![TargetGroup {
            targets: vec!["a:9100".into(), "drop:1".into()],
            labels: [("env".to_string(), "gpu".to_string())].into(),
            source: None,
        }];
        let (active, dropped) = build_targets(&groups, &s);
        assert_eq!(dropped.len(), 1);
        assert_eq!(active.len(), 1);
        let t = &active[0];
        assert_eq!(t.url, "http://a:9100/metrics?module=gpu");
        assert_eq!(
            t.labels,
            Labels::new([
                ("job", "node"),
                ("instance", "a:9100"),
                ("host", "a"),
                ("env", "gpu")
            ])
        );
        assert_eq!(t.discovered.get("__scrape_interval__"), Some("1m"));
    }
}
