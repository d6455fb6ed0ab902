//! One typed configuration tree, loaded from one YAML file.
//!
//! Prometheus' sections keep Prometheus' keys and duration syntax so a plain
//! `prometheus.yml` loads; Prometheus keys infermon does not act on are kept as
//! warnings, never dropped silently; anything else unknown is an error with
//! its `file:line:col`. `${VAR}` is replaced from the environment before parsing.

mod alerting;
mod collectors;
mod duration;
mod expand;
mod global;
mod http_client;
mod models;
mod query;
mod relabel;
mod remote_write;
mod scrape;
mod server;
mod snapshots;
mod storage;
mod validate;

pub(crate) use validate::locate;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

pub use alerting::{
    AlertingConfig, AlertmanagerConfig, AlertmanagerReceiverConfig, EmailConfig, InhibitRule,
    Receiver, RobotConfig, Route, WebhookConfig,
};
pub use collectors::{CollectorsConfig, GpuCollectorConfig, HostCollectorsConfig};
pub use duration::{PromDuration, parse_duration};
pub use global::GlobalConfig;
pub use http_client::{Authorization, BasicAuth, Secret, SecretUrl, TlsConfig};
pub use models::ModelConfig;
pub use query::QueryConfig;
pub use relabel::{RelabelAction, RelabelConfig};
pub use remote_write::{QueueConfig, RemoteWriteConfig};
pub use scrape::{FileSdConfig, ScrapeConfig, StaticConfig};
pub use server::{AuthConfig, LimitsConfig, Role, ServerConfig, UserConfig, UserWithRole};
pub use snapshots::SnapshotsConfig;
pub use storage::StorageConfig;

/// The embedded default configuration, used when `--config` is absent.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/infermon.yml");

/// Name shown in messages for the embedded default.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded config/infermon.yml>";

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Prometheus' global defaults.
    #[serde(default)]
    pub global: GlobalConfig,
    /// Scrape jobs, Prometheus' shape.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Prometheus rule files (globs, relative to this file).
    #[serde(default, deserialize_with = "null_as_default")]
    pub rule_files: Vec<String>,
    /// Remote endpoints every sample is forwarded to.
    #[serde(default, deserialize_with = "null_as_default")]
    pub remote_write: Vec<RemoteWriteConfig>,
    /// HTTP listener, authentication and limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Models to serve.
    #[serde(default, deserialize_with = "null_as_default")]
    pub models: Vec<ModelConfig>,
    /// Time-series store.
    #[serde(default)]
    pub storage: StorageConfig,
    /// PromQL engine limits.
    #[serde(default)]
    pub query: QueryConfig,
    /// Alert routing and receivers.
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// Daily snapshots.
    #[serde(default)]
    pub snapshots: SnapshotsConfig,
    /// Built-in host and GPU collectors.
    #[serde(default)]
    pub collectors: CollectorsConfig,
    /// Grafana dashboard JSON files (globs, relative to this file) shown beside the built-in ones.
    #[serde(default, deserialize_with = "null_as_default")]
    pub dashboards: Vec<String>,
    /// Prometheus' remote_read: accepted and warned about.
    #[serde(default, skip_serializing)]
    pub remote_read: Option<serde_yaml_ng::Value>,
    /// Prometheus' tracing: accepted and warned about.
    #[serde(default, skip_serializing)]
    pub tracing: Option<serde_yaml_ng::Value>,
    /// Prometheus' scrape_config_files: accepted and warned about.
    #[serde(default, skip_serializing)]
    pub scrape_config_files: Option<serde_yaml_ng::Value>,
    /// Prometheus' otlp: accepted and warned about.
    #[serde(default, skip_serializing)]
    pub otlp: Option<serde_yaml_ng::Value>,
    /// Prometheus' runtime: accepted and warned about.
    #[serde(default, skip_serializing)]
    pub runtime: Option<serde_yaml_ng::Value>,
    /// Where this config came from (file path, or the embedded default).
    #[serde(skip)]
    pub source: ConfigSource,
}

/// The origin of a loaded config, for messages and relative paths.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// Path of the file; `None` for the embedded default.
    pub path: Option<PathBuf>,
    /// The text after `${VAR}` expansion.
    pub text: String,
}

impl ConfigSource {
    /// The name used in `file:line:col` messages.
    pub fn name(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => DEFAULT_CONFIG_NAME.to_string(),
        }
    }

    /// Directory relative paths in the config are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match &self.path {
            Some(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            None => PathBuf::from("."),
        }
    }
}

/// One problem found in a file, printed as `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// File the problem is in.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config file: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but has problems (each with its position).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// A config that loaded, with the warnings it produced.
#[derive(Debug)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Things accepted but not acted on (Prometheus keys infermon lacks).
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// Loads and validates the file at `path`.
    pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::load_str(&text, Some(path.to_path_buf()))
    }

    /// Loads and validates the embedded default config.
    pub fn load_default() -> Result<Loaded, ConfigError> {
        Self::load_str(DEFAULT_CONFIG, None)
    }

    /// Loads and validates config text; `path` names it in messages.
    pub fn load_str(raw: &str, path: Option<PathBuf>) -> Result<Loaded, ConfigError> {
        let mut source = ConfigSource {
            path,
            text: String::new(),
        };
        let name = source.name();
        let text = expand::expand_env(raw, &name, |v| std::env::var(v).ok())
            .map_err(ConfigError::Invalid)?;
        source.text = text;
        let mut config = parse(&source)?;
        config.source = source;
        let (warnings, errors) = validate::validate(&config);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid(errors));
        }
        Ok(Loaded { config, warnings })
    }

    /// The config as YAML with every secret replaced by `<secret>`.
    pub fn redacted_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

fn parse(source: &ConfigSource) -> Result<Config, ConfigError> {
    let de = serde_yaml_ng::Deserializer::from_str(&source.text);
    serde_path_to_error::deserialize::<_, Config>(de).map_err(|err| {
        ConfigError::Invalid(vec![yaml_diagnostic(err, &source.text, &source.name())])
    })
}

/// Turns a YAML/serde error into a diagnostic at the right `line:col`,
/// prefixed with the path of the offending key (`global.scrape_interval`).
pub(crate) fn yaml_diagnostic(
    err: serde_path_to_error::Error<serde_yaml_ng::Error>,
    text: &str,
    file: &str,
) -> Diagnostic {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let (line, column) = inner
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let (line, column) = refine_position(text, &path, line, column);
    let mut message = inner.to_string();
    // serde_yaml appends " at line X column Y"; the prefix already says it.
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    // serde_yaml prefixes its own (shorter) path; ours is the full one.
    if let Some((prefix, rest)) = message.split_once(": ")
        && path.starts_with(prefix)
    {
        message = rest.to_string();
    }
    let message = match path.as_str() {
        "" | "." => message,
        "?" => format!("invalid YAML: {message}"),
        p => format!("{p}: {message}"),
    };
    Diagnostic {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// serde_yaml reports errors raised inside a value (a bad duration, say) at
/// the start of the enclosing mapping; move to the offending key when the
/// path's last segment names one that appears at or after that position.
pub(crate) fn refine_position(
    text: &str,
    path: &str,
    line: usize,
    column: usize,
) -> (usize, usize) {
    let Some(key) = path
        .rsplit('.')
        .next()
        .filter(|k| !k.is_empty() && !k.contains('['))
    else {
        return (line, column);
    };
    let needle = format!("{key}:");
    for (i, l) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let trimmed = l.trim_start();
        if trimmed.starts_with(&needle) || trimmed.starts_with(&format!("- {needle}")) {
            let col = l.len() - trimmed.len() + 1 + if trimmed.starts_with('-') { 2 } else { 0 };
            return (i + 1, col);
        }
    }
    (line, column)
}

/// `key:` with nothing after it (YAML null) reads as the empty default,
/// as Prometheus treats `rule_files:` with every entry commented out.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
