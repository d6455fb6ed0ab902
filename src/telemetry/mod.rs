//! infermon's own `/metrics`: one registry, HTTP middleware, build info,
//! process metrics and GPU readings taken at scrape time.

mod family;
mod gpu;
mod host;
mod http;

use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::config::CollectorsConfig;

pub use gpu::{
    EccErrors, FAKE_GPU_ENV, FakeGpuSource, GpuCollector, GpuError, GpuProcess, GpuReading,
    GpuSource, NvmlSource,
};
pub use host::{HostCollector, HostError};
pub use http::{HttpMetrics, track_http};

/// Errors of the telemetry part.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A metric could not be registered (a duplicate name is a bug).
    #[error("cannot register metric: {0}")]
    Register(#[from] prometheus::Error),
    /// The host collector's settings are invalid.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The registry every part registers its metrics in, plus the HTTP metrics.
#[derive(Clone)]
pub struct Telemetry {
    /// The registry served at `/metrics`.
    pub registry: Registry,
    /// Per-route HTTP metrics.
    pub http: HttpMetrics,
}

impl Telemetry {
    /// Builds the registry with build info, process metrics, HTTP metrics and
    /// the GPU collector over `gpu` (absent GPU: `infermon_gpu_available 0`).
    pub fn new(
        gpu: Option<Box<dyn GpuSource>>,
        collectors: &CollectorsConfig,
    ) -> Result<Self, TelemetryError> {
        let registry = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new(
                "infermon_build_info",
                "Build information; the value is always 1.",
            ),
            &["version", "revision"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::REVISION])
            .set(1);
        registry.register(Box::new(build))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        registry.register(Box::new(GpuCollector::new(gpu, collectors.gpu.dcgm_names)))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(HostCollector::new(&collectors.host)?))?;
        let http = HttpMetrics::new(&registry)?;
        Ok(Telemetry { registry, http })
    }

    /// The text exposition of every metric (format 0.0.4).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        // Encoding into a Vec only fails on invalid metric families, which the
        // registry refuses at registration.
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
