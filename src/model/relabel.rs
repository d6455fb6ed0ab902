//! The relabel engine: applies `relabel_configs` / `metric_relabel_configs`
//! (every Prometheus action) to a label set, with Prometheus' semantics —
//! anchored regexes, `$1`/`${name}` expansion, md5-based `hashmod`.

use md5::{Digest, Md5};
use regex::Regex;

use super::textparse::is_label_name;
use crate::config::{RelabelAction, RelabelConfig};
use crate::model::Labels;
use crate::scrape::ScrapeError;

/// One relabel step with its regex compiled.
#[derive(Clone, Debug)]
pub struct Relabel {
    cfg: RelabelConfig,
    regex: Regex,
}

impl Relabel {
    /// Compiles a step (the config was validated, but regexes are checked again).
    pub fn new(cfg: &RelabelConfig) -> Result<Self, ScrapeError> {
        let regex = Regex::new(&format!("^(?:{})$", cfg.regex))
            .map_err(|e| ScrapeError::Config(format!("relabel regex {:?}: {e}", cfg.regex)))?;
        Ok(Relabel {
            cfg: cfg.clone(),
            regex,
        })
    }

    /// Compiles a list of steps.
    pub fn compile(cfgs: &[RelabelConfig]) -> Result<Vec<Relabel>, ScrapeError> {
        cfgs.iter().map(Relabel::new).collect()
    }
}

/// Applies `steps` in order; `None` when a step drops the label set.
pub fn process(mut labels: Labels, steps: &[Relabel]) -> Option<Labels> {
    for step in steps {
        if !apply(&mut labels, step) {
            return None;
        }
    }
    Some(labels)
}

fn apply(labels: &mut Labels, step: &Relabel) -> bool {
    let cfg = &step.cfg;
    let value = cfg
        .source_labels
        .iter()
        .map(|n| labels.get(n).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(&cfg.separator);
    let target = cfg.target_label.as_deref().unwrap_or("");
    match cfg.action {
        RelabelAction::Drop => return !step.regex.is_match(&value),
        RelabelAction::Keep => return step.regex.is_match(&value),
        RelabelAction::DropEqual => return labels.get(target).unwrap_or("") != value,
        RelabelAction::KeepEqual => return labels.get(target).unwrap_or("") == value,
        RelabelAction::Replace => {
            let Some(caps) = step.regex.captures(&value) else {
                return true;
            };
            let mut name = String::new();
            caps.expand(target, &mut name);
            if !is_label_name(&name) {
                return true;
            }
            let mut res = String::new();
            caps.expand(&cfg.replacement, &mut res);
            labels.set(&name, &res);
        }
        RelabelAction::Lowercase => labels.set(target, &value.to_lowercase()),
        RelabelAction::Uppercase => labels.set(target, &value.to_uppercase()),
        RelabelAction::HashMod => {
            let modulus = cfg.modulus.unwrap_or(1).max(1);
            labels.set(target, &(hash64(&value) % modulus).to_string());
        }
        RelabelAction::LabelMap => {
            let current: Vec<(String, String)> = labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for (name, value) in current {
                if step.regex.is_match(&name) {
                    let new_name = step.regex.replace(&name, cfg.replacement.as_str());
                    labels.set(&new_name, &value);
                }
            }
        }
        RelabelAction::LabelDrop => labels.retain(|l| !step.regex.is_match(&l.name)),
        RelabelAction::LabelKeep => labels.retain(|l| step.regex.is_match(&l.name)),
    }
    true
}

/// Prometheus' hashmod hash: the last 8 bytes of the md5 sum, big-endian.
fn hash64(value: &str) -> u64 {
    let sum = Md5::digest(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&sum[8..16]);
    u64::from_be_bytes(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> RelabelConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(pairs.iter().copied())
    }

    #[test]
    fn every_action() {
        let base = l(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("instance", "10.0.0.1:9100"),
            ("Env", "Prod"),
        ]);
        // (step, expected result; None = dropped)
        let cases: Vec<(&str, Option<Labels>)> = vec![
            (
                "{source_labels: [instance], regex: '(.*):(\\d+)', target_label: host, replacement: '$1'}",
                Some(l(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "10.0.0.1:9100"),
                    ("Env", "Prod"),
                    ("host", "10.0.0.1"),
                ])),
            ),
            (
                "{source_labels: [job], regex: 'nomatch', target_label: job, replacement: x}",
                Some(base.clone()),
            ),
            (
                "{source_labels: [job, Env], separator: '-', target_label: combo}",
                Some(l(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "10.0.0.1:9100"),
                    ("Env", "Prod"),
                    ("combo", "api-Prod"),
                ])),
            ),
            (
                "{source_labels: [nothere], target_label: job}",
                Some(l(&[
                    ("__name__", "http_requests_total"),
                    ("instance", "10.0.0.1:9100"),
                    ("Env", "Prod"),
                ])),
            ),
            (
                "{source_labels: [__name__], regex: 'http_.*', action: keep}",
                Some(base.clone()),
            ),
            (
                "{source_labels: [__name__], regex: 'go_.*', action: keep}",
                None,
            ),
            (
                "{source_labels: [__name__], regex: 'http_.*', action: drop}",
                None,
            ),
            (
                "{source_labels: [job], regex: 'API', action: drop}",
                Some(base.clone()),
            ),
            (
                "{source_labels: [job], target_label: job, action: keepequal}",
                Some(base.clone()),
            ),
            (
                "{source_labels: [Env], target_label: job, action: keepequal}",
                None,
            ),
            (
                "{source_labels: [job], target_label: job, action: dropequal}",
                None,
            ),
            (
                "{source_labels: [Env], target_label: job, action: dropequal}",
                Some(base.clone()),
            ),
            (
                "{source_labels: [instance], target_label: shard, modulus: 8, action: hashmod}",
                Some(l(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "10.0.0.1:9100"),
                    ("Env", "Prod"),
                    ("shard", "5"),
                ])),
            ),
            (
                "{regex: '(E)nv', replacement: 'x_$1', action: labelmap}",
                Some(l(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "10.0.0.1:9100"),
                    ("Env", "Prod"),
                    ("x_E", "Prod"),
                ])),
            ),
            (
                "{regex: 'Env|instance', action: labeldrop}",
                Some(l(&[("__name__", "http_requests_total"), ("job", "api")])),
            ),
            (
                "{regex: '__name__|job', action: labelkeep}",
                Some(l(&[("__name__", "http_requests_total"), ("job", "api")])),
            ),
            (
                "{source_labels: [Env], target_label: env, action: lowercase}",
                Some(l(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "10.0.0.1:9100"),
                    ("Env", "Prod"),
                    ("env", "prod"),
                ])),
            ),
            (
                "{source_labels: [job], target_label: JOB, action: uppercase}",
                Some(l(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "10.0.0.1:9100"),
                    ("Env", "Prod"),
                    ("JOB", "API"),
                ])),
            ),
            (
                "{source_labels: [job], regex: '(?P<j>a)(.*)', target_label: '${j}_label', replacement: '${2}-$j'}",
                Some(l(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "10.0.0.1:9100"),
                    ("Env", "Prod"),
                    ("a_label", "pi-a"),
                ])),
            ),
            (
                "{source_labels: [job], regex: '(.*)', target_label: '1bad', replacement: x}",
                Some(base.clone()),
            ),
        ];
        for (yaml, want) in cases {
            let step = Relabel::new(&cfg(yaml)).unwrap();
            assert_eq!(process(base.clone(), &[step]), want, "{yaml}");
        }
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // From Prometheus' relabel tests: "baz" with modulus 1000 is 976.
        assert_eq!(hash64("baz") % 1000, 976);
    }

    #[test]
    fn steps_run_in_order_and_stop_at_a_drop() {
        let steps = Relabel::compile(&[
            cfg("{source_labels: [a], target_label: b}"),
            cfg("{source_labels: [b], regex: x, action: keep}"),
            cfg("{target_label: never, replacement: set}"),
        ])
        .unwrap();
        assert_eq!(process(l(&[("a", "y")]), &steps), None);
        assert_eq!(
            process(l(&[("a", "x")]), &steps),
            Some(l(&[("a", "x"), ("b", "x"), ("never", "set")]))
        );
    }
}
