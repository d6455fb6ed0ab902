//! Relabeling: the `relabel_configs` entries (Prometheus' keys and
//! defaults) and the engine that applies them (every Prometheus action) to a
//! label set, with Prometheus' semantics: anchored regexes, `$1`/`${name}`
//! expansion, md5-based `hashmod`. Scrape, alerting and remote_write share it.

use md5::{Digest, Md5};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::Labels;
use super::textparse::is_label_name;

/// Why a relabel step cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RelabelError {
    /// The regex does not compile.
    #[error("relabel regex {regex:?}: {reason}")]
    Regex {
        /// The regex as written.
        regex: String,
        /// The compiler's message.
        reason: String,
    },
}

/// One relabelling step.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Separator between source label values (default `;`).
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Label written by replace/hashmod/lowercase/uppercase.
    #[serde(default)]
    pub target_label: Option<String>,
    /// Regular expression, fully anchored as in Prometheus (default `(.*)`).
    #[serde(default = "default_regex")]
    pub regex: String,
    /// Modulus for `hashmod`.
    #[serde(default)]
    pub modulus: Option<u64>,
    /// Replacement with `$1`/`${name}` references (default `$1`).
    #[serde(default = "default_replacement")]
    pub replacement: String,
    /// replace, keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop,
    /// labelkeep, lowercase, uppercase.
    #[serde(default)]
    pub action: RelabelAction,
}

fn default_separator() -> String {
    ";".to_string()
}
fn default_regex() -> String {
    "(.*)".to_string()
}
fn default_replacement() -> String {
    "$1".to_string()
}

/// The relabel action.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Write `replacement` (expanded) to `target_label` when the regex matches.
    #[default]
    Replace,
    /// Keep the target/series only when the regex matches.
    Keep,
    /// Drop the target/series when the regex matches.
    Drop,
    /// Keep when the joined source equals `target_label`'s value.
    KeepEqual,
    /// Drop when the joined source equals `target_label`'s value.
    DropEqual,
    /// Write `hash(source) % modulus` to `target_label`.
    HashMod,
    /// Copy labels whose names match to names given by `replacement`.
    LabelMap,
    /// Remove labels whose names match.
    LabelDrop,
    /// Remove labels whose names do not match.
    LabelKeep,
    /// Lower-case the joined source into `target_label`.
    Lowercase,
    /// Upper-case the joined source into `target_label`.
    Uppercase,
}

impl RelabelConfig {
    /// Checks what Prometheus checks at load time.
    pub fn validate(&self) -> Result<(), String> {
        regex::Regex::new(&format!("^(?:{})$", self.regex))
            .map_err(|e| format!("invalid regex {:?}: {e}", self.regex))?;
        use RelabelAction::*;
        let needs_target = matches!(
            self.action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if needs_target && self.target_label.is_none() {
            return Err(
                format!("relabel action {:?} requires target_label", self.action).to_lowercase(),
            );
        }
        if self.action == HashMod && self.modulus.unwrap_or(0) == 0 {
            return Err("relabel action hashmod requires a non-zero modulus".to_string());
        }
        Ok(())
    }
}

/// One relabel step with its regex compiled.
#[derive(Clone, Debug)]
pub struct Relabel {
    cfg: RelabelConfig,
    regex: Regex,
}

impl Relabel {
    /// Compiles a step (the config was validated, but regexes are checked again).
    pub fn new(cfg: &RelabelConfig) -> Result<Self, RelabelError> {
        let regex =
            Regex::new(&format!("^(?:{})$", cfg.regex)).map_err(|e| RelabelError::Regex {
                regex: cfg.regex.clone(),
                reason: e.to_string(),
            })?;
        Ok(Relabel {
            cfg: cfg.clone(),
            regex,
        })
    }

    /// Compiles a list of steps.
    pub fn compile(cfgs: &[RelabelConfig]) -> Result<Vec<Relabel>, RelabelError> {
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
