//! Every integration test in one binary: one link of the library and its
//! dependencies instead of one per file, which is most of a clean test
//! build. nextest still runs each test in its own process. A file is one
//! module; `cargo nextest run -E 'test(/^storage::/)'` runs one file's tests.

mod support;

mod alerting;
mod api;
mod architectures;
mod browser;
mod compaction_crash;
mod config_mutations;
mod dashboards_config;
mod docs_reference;
mod host_collectors;
mod inference;
mod ingest_limits;
mod layers;
mod migration_guide;
mod model_swap;
mod package;
mod params;
mod prompts;
mod promql_diff;
mod promqltest;
mod pull;
mod query_limits;
mod reload;
mod remote_write;
mod repository;
mod rollups;
mod scrape;
mod security;
mod sentence_modules;
mod server;
mod shutdown;
mod snapshots;
mod storage;
mod upgrade;
