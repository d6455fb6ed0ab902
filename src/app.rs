//! The composition root: builds every part from the config, serves HTTP,
//! and stops the parts in order.
//!
//! Stop order: web stops accepting and drains (up to `server.shutdown_timeout`)
//! → model queues answer what is left and their threads exit
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
    /// A model could not be loaded.
    #[error(transparent)]
    Inference(#[from] crate::inference::InferenceError),
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

    let gpu: Option<Box<dyn GpuSource>> =
        NvmlSource::open().map(|s| Box::new(s) as Box<dyn GpuSource>);
    let telemetry = Telemetry::new(gpu)?;
    let readiness = Readiness::default();

    let mut routes = Vec::new();

    // Model server: load every model before serving (a bad model stops the
    // start with its reason), serve its routes, stop its queues last.
    readiness.register("models");
    let inference = {
        let models = config.models.clone();
        let base = config.source.base_dir();
        let registry = telemetry.registry.clone();
        tokio::task::spawn_blocking(move || {
            crate::inference::Inference::load(&models, &base, &registry)
        })
        .await
        .map_err(|e| Error::Serve(std::io::Error::other(e)))??
    };
    routes.push(inference.routes());
    readiness.set("models", true);

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

    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
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
    inference.stop().await;
    tracing::info!("model queues stopped");
    Ok(())
}
