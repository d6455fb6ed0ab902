//! infermon: one binary for one GPU box that serves a text model and watches it.
//!
//! The parts, following Prometheus' split plus the model server:
//!
//! - [`config`]: the one YAML file, typed, validated with `file:line:col` messages.
//! - [`diag`]: the `file:line:col` problem type config, rule and template checks share.
//! - [`hub`]: downloads models from the Hugging Face hub or a mirror (`infermon pull`, `hf_repo`).
//! - [`inference`]: the model server: candle models, batching queues, TEI/OpenAI/Cohere routes.
//! - [`model`]: labels, matchers and samples every part shares; relabeling and the
//!   exposition parser.
//! - [`template`]: the Go `text/template` subset rule annotations and alert messages use.
//! - [`util`]: small helpers, and the one retry policy of every HTTP sender.
//! - [`telemetry`]: infermon's own `/metrics` (HTTP, process, GPU).
//! - [`scrape`]: pulls Prometheus endpoints (itself included) into storage.
//! - [`storage`]: the store boundary (Appender, Querier) and its implementations.
//! - [`promql`]: the PromQL engine over the store, and the promqltest runner.
//! - [`rules`]: Prometheus rule files; decides which alerts fire.
//! - [`alerting`]: routes, groups, silences and durably delivers alert notifications.
//! - [`remote`]: remote_write to VictoriaMetrics/Mimir/Thanos, following the store's WAL durably.
//! - [`snapshot`]: daily exports of yesterday's metrics, downloads and raw exports.
//! - [`web`]: the HTTP server and its layers (auth, limits, JSON errors).
//! - [`shutdown`]: the stop signal every long-running task listens to.
//! - [`background`]: low-priority worker pools, so monitoring work yields the CPU to the model.
//!
//! [`run`] is the composition root: it builds every part from a [`config::Config`]
//! and stops them in order when the shutdown signal fires.
//!
//! # Layers
//!
//! Dependencies point down this list: a part uses only parts on lower lines, and
//! parts on one line do not use each other. Files of one part (one folder) may use
//! each other. Parts talk upward through small traits the upper part implements
//! (`QueryFn`, `AlertSink`, `Appender`, `Querier`). `tests/layers.rs` reads this
//! list and fails when a `crate::` path points up it.
//!
//! ```text
//! app, main: composition root, command line
//! web: the HTTP edge: router, auth, params, error mapping, pages, API
//! alerting, remote, snapshot: notification delivery, remote_write, exports
//! rules: rule files, alert state, recording rules
//! inference, scrape, promql: model server, scraper, query engine
//! telemetry, storage, template, hub: own metrics, the store, Go templates, model downloads
//! config: the typed configuration and its validation
//! model, util, shutdown, diag, background: labels, matchers, relabel, exposition parser, helpers, low-priority worker pools
//! ```

pub mod alerting;
pub mod background;
pub mod config;
pub mod diag;
pub mod hub;
pub mod inference;
pub mod model;
pub mod promql;
pub mod remote;
pub mod rules;
pub mod scrape;
pub mod shutdown;
pub mod snapshot;
pub mod storage;
pub mod telemetry;
pub mod template;
pub mod util;
pub mod web;

mod app;

pub use app::reload::{ConfigSet, ReloadDiff};
pub use app::{Error, run};

/// Git revision infermon was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("INFERMON_REVISION");
