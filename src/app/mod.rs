//! The composition root: builds every part from the config, serves HTTP,
//! and stops the parts in order.
//!
//! Stop order (the same after SIGTERM, after an HTTP server error and when a
//! part fails to start): web stops accepting and drains in-flight requests
//! (up to `server.shutdown_timeout`) → model queues answer what is left →
//! scrape loops finish their last append → rules evaluate a last time →
//! alerting flushes what is due and lets in-flight sends finish →
//! remote_write finishes an in-flight request (the rest stays in the WAL) →
//! snapshot and backup jobs finish or are cancelled → storage maintenance
//! stops → storage checkpoints and closes. Every stage after HTTP shares one
//! deadline ([`lifecycle::STAGES_BUDGET`] past the drain); a stage that
//! misses it is named in the log and abandoned.

mod adapters;
mod lifecycle;
pub mod reload;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::time::Instant;

use lifecycle::{Lifecycle, STAGES_BUDGET, Stage};

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
    /// A model could not be loaded.
    #[error(transparent)]
    Inference(#[from] crate::inference::InferenceError),
    /// A model's hf_repo could not be downloaded.
    #[error("cannot download a model (models[].hf_repo): {0}")]
    Hub(#[from] crate::hub::HubError),
    /// Snapshots or dashboards could not be set up.
    #[error("{0}")]
    Snapshot(String),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// Rule files could not be loaded.
    #[error(transparent)]
    Rules(#[from] crate::rules::RulesError),
    /// Alerting could not start (state store, receivers).
    #[error(transparent)]
    Alerting(#[from] crate::alerting::AlertingError),
    /// remote_write could not start.
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
}

/// What `start` leaves running: the HTTP server still to serve, the models.
struct Started {
    listener: TcpListener,
    app: axum::Router,
    inference: crate::inference::Inference,
}

/// Runs infermon until `shutdown` fires. Logs `listening on <addr>` once the
/// port is open (tests and scripts wait for that line).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let mut life = Lifecycle::new();
    let mut storage = None;
    let started = start(&config, &mut life, &mut storage).await;
    let drain = config.server.shutdown_timeout.as_duration();
    let result = match started {
        Ok(started) => {
            crate::util::systemd::notify_ready();
            serve(started, &shutdown, drain).await
        }
        Err(e) => Err(e),
    };
    // The stages after HTTP share one deadline, counted from the end of the
    // drain (or from the failure).
    let deadline = Instant::now() + STAGES_BUDGET;
    let abandoned = life.stop(deadline).await;
    if let Some(sqlite) = storage {
        close_storage(sqlite, deadline, !abandoned.is_empty()).await;
    }
    result
}

/// Serves HTTP until `shutdown`, drains for up to `drain`, then stops the
/// model queues.
async fn serve(
    started: Started,
    shutdown: &Shutdown,
    drain: std::time::Duration,
) -> Result<(), Error> {
    let Started {
        listener,
        app,
        inference,
    } = started;
    // Connect info gives the auth limiter each client's address.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.wait_owned();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        crate::util::systemd::notify_stopping();
    });
    let drained = async {
        shutdown.wait().await;
        tokio::time::sleep(drain).await;
    };
    let result = tokio::select! {
        result = server => result.map_err(Error::Serve),
        _ = drained => {
            tracing::warn!("in-flight requests did not finish within server.shutdown_timeout ({drain:?}); closing them");
            Ok(())
        }
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, "HTTP server failed; stopping");
    }
    tracing::info!("HTTP server stopped");
    inference.stop().await;
    tracing::info!("model queues stopped");
    result
}

/// Checkpoints and closes the store on a blocking thread, within `deadline`
/// (at least a second). A store left open is safe: its WAL is replayed at
/// the next start.
async fn close_storage(sqlite: SqliteStorage, deadline: Instant, stages_abandoned: bool) {
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(std::time::Duration::from_secs(1));
    let closing = tokio::task::spawn_blocking(move || sqlite.close_within(wait / 2));
    match tokio::time::timeout(wait, closing).await {
        Ok(Ok(Ok(()))) => tracing::info!("storage closed"),
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "storage did not close cleanly"),
        Ok(Err(e)) => tracing::error!(error = %e, "storage close task failed"),
        Err(_) => tracing::warn!(
            stage = "storage",
            abandoned_before = stages_abandoned,
            "shutdown stage 'storage' did not finish within the shutdown deadline; the WAL is replayed at the next start"
        ),
    }
}

/// Builds and starts every part; what it started is stopped by [`run`]
/// through `life` and `storage`, also when a later part fails to start.
async fn start(
    config: &Config,
    life: &mut Lifecycle,
    storage: &mut Option<SqliteStorage>,
) -> Result<Started, Error> {
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
        // A made-up card for tests on boxes without a GPU (debug builds only).
        match crate::telemetry::FakeGpuSource::from_env() {
            Some(fake) => Some(Box::new(fake) as Box<dyn GpuSource>),
            None => NvmlSource::open().map(|s| Box::new(s) as Box<dyn GpuSource>),
        }
    } else {
        None
    };
    let telemetry = Telemetry::new(gpu, &config.collectors)?;
    let readiness = Readiness::default();

    let mut routes = Vec::new();

    // Model server: load every model before serving (a bad model stops the
    // start with its reason), serve its routes, stop its queues last.
    readiness.register("models");
    let inference = {
        let models = config.models.clone();
        let base = config.source.base_dir();
        // Models with hf_repo whose folder is missing are downloaded first.
        for m in &models {
            if let Some(spec) = &m.hf_repo {
                let dir = base.join(&m.path);
                if !dir.is_dir() {
                    // A stop signal ends a long download; the next start resumes it.
                    tokio::select! {
                        pulled = crate::hub::pull_into(spec, &dir) => { pulled?; }
                        () = crate::shutdown::os_signal() => {
                            return Err(crate::hub::HubError::Interrupted.into());
                        }
                    }
                }
            }
        }
        let registry = telemetry.registry.clone();
        tokio::task::spawn_blocking(move || {
            crate::inference::Inference::load(&models, &base, &registry)
        })
        .await
        .map_err(|e| Error::Serve(std::io::Error::other(e)))??
    };
    routes.push(inference.routes());
    readiness.set("models", true);

    // Storage and scrape. The store opens before the port does;
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
    // Remote-write receiver: pushes land in the same store; it bounds its
    // own bodies (remote_write_receiver.max_request_bytes).
    let receiver_routes = crate::remote::receive::Receiver::new(
        Arc::new(sqlite.clone()),
        Arc::new(sqlite.clone()),
        config.storage.out_of_order_time_window.as_millis(),
        &config.remote_write_receiver,
        &telemetry.registry,
    )
    .map_err(TelemetryError::from)?
    .routes();
    *storage = Some(sqlite.clone());
    let maintenance = sqlite.spawn_maintenance(
        std::time::Duration::from_secs(60),
        life.signal(Stage::Maintenance),
    );
    life.spawn(Stage::Maintenance, async move {
        let _ = maintenance.await;
    });
    // Heap memory a burst of queries left free goes back to the kernel
    // (only where `main` set glibc's heap; its defaults need no help).
    if crate::util::heap::tuned() {
        let heap_stop = life.signal(Stage::Maintenance);
        life.spawn(Stage::Maintenance, async move {
            let mut tick = tokio::time::interval(crate::util::heap::RELEASE_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = heap_stop.wait() => break,
                    _ = tick.tick() => {}
                }
                let _ = tokio::task::spawn_blocking(crate::util::heap::release_free).await;
            }
        });
    }
    let remote_reloader;
    // remote_write follows the store's WAL from a durable
    // position per destination; starts after the store opens, stops before
    // it closes (what is unsent stays in the WAL for the next start).
    {
        let metrics =
            crate::remote::RemoteMetrics::new(&telemetry.registry).map_err(TelemetryError::from)?;
        let remote = crate::remote::RemoteWrite::new(config, sqlite.clone(), &metrics)?;
        remote_reloader = Some(remote.reloader());
        life.spawn(Stage::Remote, remote.run(life.signal(Stage::Remote)));
    }

    let scrape_metrics = ScrapeMetrics::new(&telemetry.registry).map_err(TelemetryError::from)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let scraper = scrape::Manager::new(config, local, store.clone(), scrape_metrics)?;
    routes.push(web::api::targets::routes(scraper.targets()));
    let targets_view = scraper.targets();
    let scrape_reloader = scraper.reloader();
    life.spawn(Stage::Scrape, scraper.run(life.signal(Stage::Scrape)));

    // PromQL engine and the Prometheus HTTP API (/api/v1/query, series, labels, status…).
    let query_store: Arc<dyn crate::storage::Querier> = store.clone();
    let engine = crate::promql::Engine::new(
        query_store,
        crate::promql::EngineOptions::from_config(&config.query, &config.global),
    );
    let config_yaml = Arc::new(arc_swap::ArcSwap::from_pointee(config.redacted_yaml()));
    let reload_status =
        Arc::new(web::ReloadStatus::new(&telemetry.registry).map_err(TelemetryError::from)?);
    routes.push(web::api::routes(web::api::ApiState {
        engine: engine.clone(),
        config_yaml: config_yaml.clone(),
        flags: Arc::new(web::api::flags_from_config(config)),
        start_time_ms: crate::util::now_ms(),
        storage_retention: config.storage.retention.to_string(),
        external_labels: Arc::new(crate::model::Labels::new(
            config.global.external_labels.clone(),
        )),
        reload_status: reload_status.clone(),
    }));

    // Rules and alerting.
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
        config,
        state_store.clone(),
        &telemetry.registry,
        now.clone(),
    )?);
    let to_alerting = alert_manager.clone();
    let sink = move |alerts: Vec<crate::rules::OutgoingAlert>| {
        to_alerting.put_rule_alerts(
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
    let query = adapters::rules_query_fn(engine.clone());
    let appender: Arc<dyn crate::storage::Appender> = store.clone();
    let rule_files = crate::rules::load_rule_files(config)?;
    let rule_manager = Arc::new(
        crate::rules::RuleManager::new(
            rule_files.clone(),
            crate::rules::ManagerOptions::from_config(config),
            query,
            appender,
            Arc::new(sink),
            Some(state_store),
            clock,
        )
        .await,
    );
    routes.push(web::api::rules::routes(rule_manager.clone()));
    routes.push(web::api::alertmanager::routes(alert_manager.clone()));
    life.spawn(Stage::Rules, {
        let (m, s) = (rule_manager.clone(), life.signal(Stage::Rules));
        async move { m.run(s).await }
    });
    life.spawn(
        Stage::Alerting,
        alert_manager.clone().run(life.signal(Stage::Alerting)),
    );

    let body_limit = web::BodyLimit::new(config.server.limits.max_body_bytes);
    let auth = config
        .server
        .auth
        .as_ref()
        .map(|a| Arc::new(Authenticator::new(a)));
    // Daily snapshots: a missed day is taken at start, then one on
    // every `snapshots.schedule`; downloads and the export API.
    let snapshots = if config.snapshots.enabled {
        let snapshotter = Arc::new(
            crate::snapshot::Snapshotter::new(
                &config.snapshots,
                std::path::Path::new(&config.storage.path),
                store.clone() as Arc<dyn crate::storage::Querier>,
            )
            .map_err(|e| Error::Snapshot(e.to_string()))?
            .with_backup({
                let sqlite = sqlite.clone();
                Arc::new(move |dest: &std::path::Path| {
                    sqlite.backup_to(dest).map_err(|e| e.to_string())
                })
            })
            .with_backfill(Arc::new(sqlite.clone())),
        );
        routes.push(web::api::snapshots::routes(snapshotter.clone()));
        let (s, schedule, backups, stop) = (
            snapshotter.clone(),
            config.snapshots.schedule.clone(),
            config.snapshots.backup_schedule.clone(),
            life.signal(Stage::Snapshots),
        );
        life.spawn(Stage::Snapshots, async move {
            if let Err(e) = s.run(schedule, backups, stop).await {
                tracing::error!(error = %e, "snapshot schedule stopped");
            }
        });
        Some(snapshotter)
    } else {
        None
    };

    // Dashboard pages: queries through the engine, targets and
    // alerts through the adapters, so the pages name neither.
    let pages = crate::web::pages::Pages {
        query: Arc::new(adapters::EngineQueries(engine.clone())),
        config: arc_swap::ArcSwap::from_pointee(config.clone()),
        started_ms: crate::util::now_ms(),
        dashboards: arc_swap::ArcSwap::from_pointee(
            crate::web::pages::Pages::load_dashboards(&config.dashboard_files())
                .map_err(|e| Error::Snapshot(e.to_string()))?,
        ),
        snapshots: snapshots.map(|s| s as Arc<dyn crate::web::pages::SnapshotShelf>),
        facts: {
            let (sqlite, models) = (sqlite.clone(), adapters::model_facts(&inference));
            let st = &config.storage;
            let retention = format!(
                "raw {}; 5-minute rollups of days ended {} ago kept {}",
                st.retention, st.rollup_after, st.rollup_retention
            );
            Arc::new(move || {
                let mut facts = models.clone();
                facts.extend(adapters::storage_facts(&sqlite.stats(), &retention));
                facts
            })
        },
        ops: Arc::new(adapters::PageOperations {
            targets: targets_view,
            rules: rule_manager.clone(),
            alerts: alert_manager.clone(),
        }),
        csrf: crate::web::pages::new_csrf_token(),
        uploads: Arc::new(crate::web::pages::UploadedDashboards::load(
            std::path::Path::new(&config.storage.path).join("dashboards"),
        )),
        status: crate::web::pages::StatusSources {
            registry: telemetry.registry.clone(),
            storage: Some(sqlite.clone()),
            reload: Some(reload_status.clone()),
        },
    };
    let pages = Arc::new(pages);
    routes.push(crate::web::pages::routes(pages.clone()));

    // Reloads (SIGHUP, POST /-/reload) start from what is running now.
    let reloader = Arc::new(reload::Reloader::new(reload::ReloadParts {
        current: reload::ConfigSet {
            config: config.clone(),
            rule_files,
            dashboards: reload::dashboard_texts(config),
            boards: pages.dashboards.load_full(),
        },
        scrape: scrape_reloader,
        rules: rule_manager.clone(),
        alerting: alert_manager.clone(),
        alerting_now: now,
        remote: remote_reloader.expect("remote_write was set up above"),
        auth: auth.clone(),
        pages,
        config_yaml,
        body_limit: body_limit.clone(),
        models: inference.clone(),
        status: reload_status,
    }));
    reload::on_sighup(reloader.clone(), life.signal(Stage::Scrape)).map_err(Error::Serve)?;

    let app = web::router(WebParts {
        telemetry,
        readiness,
        auth,
        browser: web::BrowserGuard::new(&config.server),
        body_limit: body_limit.clone(),
        routes,
        own_body_limit_routes: vec![receiver_routes],
        reload: Some(Arc::new(move || {
            let reloader = reloader.clone();
            Box::pin(async move { reloader.reload().await })
        })),
    });

    tracing::info!(addr = %local, "listening on {local}");
    Ok(Started {
        listener,
        app,
        inference,
    })
}
