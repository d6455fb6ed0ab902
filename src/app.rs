//! The composition root: builds every part from the config, serves HTTP,
//! and stops the parts in order.
//!
//! Stop order: web stops accepting and drains (up to `server.shutdown_timeout`)
//! → background parts are told to stop → scrape loops stop → storage
//! checkpoints and closes → the process exits.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::scrape::{self, ScrapeError, ScrapeMetrics};
use crate::shutdown::Shutdown;
use crate::storage::{
    SharedStorage, SqliteStorage, StorageCollector, StorageError, StorageOptions,
};
use crate::telemetry::{GpuSource, NvmlSource, Telemetry, TelemetryError};
use crate::web::{self, Authenticator, Readiness, WebParts};

/// Why infermon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `server.listen` is not loopback and nothing guards it.
    #[error(
        "refusing to listen on {0}: it is reachable from other machines and server.auth is not configured. \
         Configure server.auth (api_keys or basic_auth_users), or set server.allow_unauthenticated: true \
         if something in front of infermon already authenticates, or listen on 127.0.0.1"
    )]
    Unprotected(SocketAddr),
    /// `server.listen` is not an address.
    #[error("server.listen {0:?} is not an address like 127.0.0.1:8080")]
    BadListen(String),
    /// The port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Metrics setup failed.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The store could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The scraper could not be set up.
    #[error(transparent)]
    Scrape(#[from] ScrapeError),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs infermon until `shutdown` fires. Logs `listening on <addr>` once the
/// port is open (tests and scripts wait for that line).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let addr: SocketAddr = config
        .server
        .listen
        .parse()
        .map_err(|_| Error::BadListen(config.server.listen.clone()))?;
    if !addr.ip().is_loopback()
        && config.server.auth.is_none()
        && !config.server.allow_unauthenticated
    {
        return Err(Error::Unprotected(addr));
    }

    let gpu: Option<Box<dyn GpuSource>> = if config.collectors.gpu.enabled {
        NvmlSource::open().map(|s| Box::new(s) as Box<dyn GpuSource>)
    } else {
        None
    };
    let telemetry = Telemetry::new(gpu, &config.collectors)?;
    let readiness = Readiness::default();

    let mut routes = Vec::new();

    // Storage and scrape (issue 4). The store opens before the port does;
    // `store` is the shared handle PromQL and rules read and write through.
    // The scrape manager needs the bound address for the self-scrape job, so
    // it is built after binding; it stops before the store closes.
    readiness.register("storage");
    let sqlite = SqliteStorage::open(
        &config.storage.path,
        StorageOptions::from_config(&config.storage)?,
    )?;
    readiness.set("storage", true);
    let collector = StorageCollector::new(sqlite.clone()).map_err(TelemetryError::from)?;
    telemetry
        .registry
        .register(Box::new(collector))
        .map_err(TelemetryError::from)?;
    let store: SharedStorage = Arc::new(sqlite.clone());
    let maintenance =
        sqlite.spawn_maintenance(std::time::Duration::from_secs(60), shutdown.clone());
    let scrape_metrics = ScrapeMetrics::new(&telemetry.registry).map_err(TelemetryError::from)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let scraper = scrape::Manager::new(&config, local, store.clone(), scrape_metrics)?;
    routes.push(scrape::routes(scraper.targets()));
    let scraping = tokio::spawn(scraper.run(shutdown.clone()));

    // PromQL engine and the Prometheus HTTP API (/api/v1/query, series, labels, status…).
    let query_store: Arc<dyn crate::storage::Querier> = store.clone();
    let engine = crate::promql::Engine::new(
        query_store,
        crate::promql::EngineOptions::from_config(&config.query, &config.global),
    );
    routes.push(web::api::routes(web::api::ApiState {
        engine: engine.clone(),
        config_yaml: Arc::new(config.redacted_yaml()),
        flags: Arc::new(web::api::flags_from_config(&config)),
        start_time_ms: crate::util::now_ms(),
        storage_retention: config.storage.retention.to_string(),
        external_labels: Arc::new(crate::model::Labels::new(
            config.global.external_labels.clone(),
        )),
    }));

    let app = web::router(WebParts {
        telemetry,
        readiness,
        auth: config
            .server
            .auth
            .as_ref()
            .map(|a| Arc::new(Authenticator::new(a))),
        max_body_bytes: config.server.limits.max_body_bytes,
        routes,
    });

    tracing::info!(addr = %local, "listening on {local}");

    let drain = config.server.shutdown_timeout.as_duration();
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.wait_owned());
    let deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        result = server => result.map_err(Error::Serve)?,
        _ = deadline => tracing::warn!("in-flight requests did not finish within server.shutdown_timeout ({}); closing them", config.server.shutdown_timeout),
    }
    tracing::info!("HTTP server stopped");
    // Stop order: scrape loops finish their last append → the store
    // checkpoints its head and closes.
    shutdown.trigger();
    let _ = scraping.await;
    let _ = maintenance.await;
    let closing = sqlite.clone();
    tokio::task::spawn_blocking(move || closing.close())
        .await
        .map_err(|e| StorageError::Backend(e.to_string()))??;
    tracing::info!("storage closed");
    Ok(())
}
