//! A test-only GPU source: one GPU-shaped card whose figures move with the
//! clock, so the dashboard's GPU panels can be seen (and screenshotted) on a
//! box without an NVIDIA GPU.
//!
//! It exists only in debug builds (what `cargo test` runs) and only when the
//! environment variable [`FAKE_GPU_ENV`] is `1`; the start-up log warns when
//! it is used. Release builds never read the variable.

use super::{GpuError, GpuProcess, GpuReading, GpuSource};

/// The environment variable that turns the fake GPU on (debug builds only).
pub const FAKE_GPU_ENV: &str = "INFERMON_TEST_FAKE_GPU";

/// One made-up 24 GiB card.
pub struct FakeGpuSource;

impl FakeGpuSource {
    /// The fake source when [`FAKE_GPU_ENV`] is `1` in a debug build.
    pub fn from_env() -> Option<FakeGpuSource> {
        if !cfg!(debug_assertions) || std::env::var(FAKE_GPU_ENV).as_deref() != Ok("1") {
            return None;
        }
        tracing::warn!("{FAKE_GPU_ENV}=1: GPU metrics come from a made-up card (test-only)");
        Some(FakeGpuSource)
    }
}

impl GpuSource for FakeGpuSource {
    fn read(&self) -> Result<Vec<GpuReading>, GpuError> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        // A slow wave (one period a minute) so charts show movement.
        let wave = 0.5 + 0.4 * (secs / 60.0 * std::f64::consts::TAU).sin();
        let total = 24.0 * 1024.0 * 1024.0 * 1024.0;
        let used = total * (0.3 + 0.3 * wave);
        Ok(vec![GpuReading {
            index: 0,
            uuid: "GPU-00000000-fake-0000-0000-000000000000".into(),
            name: "Fake GPU (test)".into(),
            utilization_ratio: Some(wave),
            memory_utilization_ratio: Some(wave * 0.6),
            memory_used_bytes: Some(used),
            memory_free_bytes: Some(total - used),
            memory_total_bytes: Some(total),
            temperature_celsius: Some(45.0 + 30.0 * wave),
            power_watts: Some(80.0 + 200.0 * wave),
            power_limit_watts: Some(300.0),
            sm_clock_hertz: Some(1.4e9),
            memory_clock_hertz: Some(9.5e9),
            fan_speed_ratio: Some(0.3 + 0.4 * wave),
            pcie_tx_bytes_per_second: Some(1e8 * wave),
            pcie_rx_bytes_per_second: Some(2e8 * wave),
            throttle_reasons: Some(0),
            ecc_errors: None,
            processes: vec![GpuProcess {
                pid: std::process::id(),
                name: "infermon".into(),
                memory_used_bytes: used * 0.9,
            }],
        }])
    }
}
