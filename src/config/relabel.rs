//! `relabel_configs` entries, with Prometheus' keys and defaults. The engine
//! that applies them lives in `model::relabel`.

use serde::{Deserialize, Serialize};

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
