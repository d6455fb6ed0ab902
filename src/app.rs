//! The composition root: builds every part from the config, serves HTTP,
//! and stops the parts in order.
//!
//! Stop order: web stops accepting and drains (up to `server.shutdown_timeout`)
//! → background parts are told to stop → the process exits.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::shutdown::Shutdown;
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
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// Rule files could not be loaded.
    #[error(transparent)]
    Rules(#[from] crate::rules::RulesError),
    /// Alerting could not start (state store, receivers).
    #[error(transparent)]
    Alerting(#[from] crate::alerting::AlertingError),
}

/// Runs infermon until `shutdown` fires. Logs `listening on <addr>` once the
/// port is open (tests and scripts wait for that line).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let addr: SocketAddr = config
        .server
        .listen
        .parse()
        .map_err(|_| Error::BadListen(config.server.listen.clone()))?;
    if !addr.ip().is_loopback() && config.server.auth.is_none() && !config.server.allow_unauthenticated {
        return Err(Error::Unprotected(addr));
    }

    let gpu: Option<Box<dyn GpuSource>> = NvmlSource::open().map(|s| Box::new(s) as Box<dyn GpuSource>);
    let telemetry = Telemetry::new(gpu)?;
    let readiness = Readiness::default();

    let mut routes = Vec::new();

    // ---- Rules and alerting (issue 6) ----
    // Rules evaluate through a query function and hand alerts to the alert
    // manager through a closure, so neither names the other. Alert state,
    // silences, the notification log and the outbox live in
    // <storage.path>/state.db. Stop order: rules stop first, then the alert
    // manager lets in-flight sends finish (everything queued is already durable).
    let state_store = Arc::new(
        crate::storage::StateStore::open(
            &std::path::Path::new(&config.storage.path).join("state.db"),
        )
        .map_err(crate::alerting::AlertingError::from)?,
    );
    let clock = crate::rules::Clock::system();
    let now: crate::alerting::NowFn = {
        let clock = clock.clone();
        Arc::new(move || clock.now_ms())
    };
    let alert_manager = Arc::new(crate::alerting::AlertManager::new(
        &config,
        state_store.clone(),
        &telemetry.registry,
        now,
    )?);
    let to_alerting = alert_manager.clone();
    let sink = move |alerts: Vec<crate::rules::OutgoingAlert>| {
        to_alerting.put_alerts(
            alerts
                .into_iter()
                .map(|a| crate::alerting::Alert {
                    labels: a.labels,
                    annotations: a.annotations,
                    starts_at_ms: a.starts_at_ms,
                    ends_at_ms: a.ends_at_ms,
                    generator_url: a.generator_url,
                })
                .collect(),
        )
    };
    // PLACEHOLDER until the PromQL engine and the SQLite store are merged: the
    // lead swaps in the engine's query function and the real Appender here.
    let query: crate::rules::QueryFn =
        Arc::new(|_expr, _ts| Box::pin(async { Err("PromQL engine not wired".to_string()) }));
    let appender: Arc<dyn crate::storage::Appender> =
        Arc::new(crate::storage::MemoryStorage::new());
    let rule_manager = Arc::new(
        crate::rules::RuleManager::new(
            crate::rules::load_rule_files(&config)?,
            crate::rules::ManagerOptions::from_config(&config),
            query,
            appender,
            Arc::new(sink),
            Some(state_store),
            clock,
        )
        .await,
    );
    routes.push(crate::rules::routes(rule_manager.clone()));
    routes.push(crate::alerting::routes(alert_manager.clone()));
    let rules_task = tokio::spawn({
        let (m, s) = (rule_manager.clone(), shutdown.clone());
        async move { m.run(s).await }
    });
    let alerting_task = tokio::spawn(alert_manager.clone().run(shutdown.clone()));
    // ---- end rules and alerting ----

    let app = web::router(WebParts {
        telemetry,
        readiness,
        auth: config.server.auth.as_ref().map(|a| Arc::new(Authenticator::new(a))),
        max_body_bytes: config.server.limits.max_body_bytes,
        routes,
    });

    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
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
    // Rules, then alerting (issue 6): both already saw the shutdown signal.
    let stop = async {
        let _ = rules_task.await;
        let _ = alerting_task.await;
    };
    if tokio::time::timeout(std::time::Duration::from_secs(15), stop)
        .await
        .is_err()
    {
        tracing::warn!("rules/alerting did not stop within 15s");
    }
    Ok(())
}
