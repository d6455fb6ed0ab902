//! One typed configuration tree, loaded from one YAML file.
//!
//! Prometheus' sections keep Prometheus' keys and duration syntax so a plain
//! `prometheus.yml` loads; Prometheus keys infermon does not act on are kept as
//! warnings, never dropped silently; anything else unknown is an error with
//! its `file:line:col`. `${VAR}` is replaced from the environment before parsing.

mod alerting;
mod collectors;
pub mod diff;
mod duration;
mod expand;
mod global;
mod http_client;
mod models;
mod query;
mod receiver;
mod remote_write;
mod scrape;
mod server;
mod snapshots;
mod storage;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::diag::Diagnostic;
pub use crate::model::relabel::{RelabelAction, RelabelConfig};
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
pub use receiver::ReceiverConfig;
pub use remote_write::{QueueConfig, RemoteWriteConfig};
pub use scrape::{FileSdConfig, ScrapeConfig, StaticConfig};
pub use server::{AuthConfig, LimitsConfig, Role, ServerConfig, UserConfig, UserWithRole};
pub use snapshots::SnapshotsConfig;
pub use storage::{Fsync, StorageConfig};

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
    /// Limits of `POST /api/v1/write`.
    #[serde(default)]
    pub remote_write_receiver: ReceiverConfig,
    /// Alert routing and receivers.
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// Daily snapshots.
    #[serde(default)]
    pub snapshots: SnapshotsConfig,
    /// Built-in host and GPU collectors.
    #[serde(default)]
    pub collectors: CollectorsConfig,
    /// Grafana dashboard JSON shown beside the built-in ones: files, globs or
    /// directories, relative to this file (default none).
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

    /// Users' Grafana dashboard files from `dashboards:` (files, globs or
    /// directories — a directory means every `*.json` in it, as Grafana's
    /// file provisioning reads one — relative to the config), sorted.
    pub fn dashboard_files(&self) -> Vec<PathBuf> {
        let base = self.source.base_dir();
        let mut out = Vec::new();
        for pattern in &self.dashboards {
            let mut full = base.join(pattern);
            if full.is_dir() {
                full = full.join("*.json");
            }
            if let Ok(paths) = glob::glob(&full.to_string_lossy()) {
                out.extend(paths.filter_map(Result::ok));
            }
        }
        out.sort();
        out
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
        ConfigError::Invalid(vec![crate::diag::yaml_diagnostic(
            err,
            &source.text,
            &source.name(),
        )])
    })
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
