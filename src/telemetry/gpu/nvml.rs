//! The NVIDIA driver through NVML (nvml-wrapper loads libnvidia-ml at run
//! time, so a build without a GPU or driver still runs).

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;

use super::{EccErrors, GpuError, GpuProcess, GpuReading, GpuSource};

/// Reads GPUs through NVML.
pub struct NvmlSource(Nvml);

impl NvmlSource {
    /// Opens NVML; `None` (with one info line) where there is no driver.
    pub fn open() -> Option<Self> {
        match Nvml::init() {
            Ok(nvml) => Some(NvmlSource(nvml)),
            Err(e) => {
                tracing::info!("no NVIDIA GPU metrics: NVML not available ({e})");
                None
            }
        }
    }
}

impl GpuSource for NvmlSource {
    fn read(&self) -> Result<Vec<GpuReading>, GpuError> {
        let count = self.0.device_count().map_err(|e| GpuError(e.to_string()))?;
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            let d = self
                .0
                .device_by_index(index)
                .map_err(|e| GpuError(e.to_string()))?;
            // Each figure on its own: an unsupported one leaves the others.
            let util = d.utilization_rates().ok();
            let mem = d.memory_info().ok();
            let ecc = |kind, counter| d.total_ecc_errors(kind, counter).ok().map(|v| v as f64);
            let ecc_errors = match (
                ecc(MemoryError::Corrected, EccCounter::Volatile),
                ecc(MemoryError::Uncorrected, EccCounter::Volatile),
                ecc(MemoryError::Corrected, EccCounter::Aggregate),
                ecc(MemoryError::Uncorrected, EccCounter::Aggregate),
            ) {
                (Some(cv), Some(uv), Some(ca), Some(ua)) => Some(EccErrors {
                    corrected_volatile: cv,
                    uncorrected_volatile: uv,
                    corrected_aggregate: ca,
                    uncorrected_aggregate: ua,
                }),
                _ => None,
            };
            let mut processes = Vec::new();
            for p in d
                .running_compute_processes()
                .unwrap_or_default()
                .into_iter()
                .chain(d.running_graphics_processes().unwrap_or_default())
            {
                if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory
                    && !processes.iter().any(|q: &GpuProcess| q.pid == p.pid)
                {
                    let name = std::fs::read_to_string(format!("/proc/{}/comm", p.pid))
                        .map(|s| s.trim().to_string())
                        .or_else(|_| self.0.sys_process_name(p.pid, 64))
                        .unwrap_or_default();
                    processes.push(GpuProcess {
                        pid: p.pid,
                        name,
                        memory_used_bytes: bytes as f64,
                    });
                }
            }
            out.push(GpuReading {
                index,
                uuid: d.uuid().unwrap_or_default(),
                name: d.name().unwrap_or_default(),
                utilization_ratio: util.as_ref().map(|u| f64::from(u.gpu) / 100.0),
                memory_utilization_ratio: util.as_ref().map(|u| f64::from(u.memory) / 100.0),
                memory_used_bytes: mem.as_ref().map(|m| m.used as f64),
                memory_free_bytes: mem.as_ref().map(|m| m.free as f64),
                memory_total_bytes: mem.as_ref().map(|m| m.total as f64),
                temperature_celsius: d.temperature(TemperatureSensor::Gpu).ok().map(f64::from),
                power_watts: d.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
                power_limit_watts: d
                    .enforced_power_limit()
                    .ok()
                    .map(|mw| f64::from(mw) / 1000.0),
                sm_clock_hertz: d.clock_info(Clock::SM).ok().map(|mhz| f64::from(mhz) * 1e6),
                memory_clock_hertz: d
                    .clock_info(Clock::Memory)
                    .ok()
                    .map(|mhz| f64::from(mhz) * 1e6),
                fan_speed_ratio: d.fan_speed(0).ok().map(|p| f64::from(p) / 100.0),
                pcie_tx_bytes_per_second: d
                    .pcie_throughput(PcieUtilCounter::Send)
                    .ok()
                    .map(|kb| f64::from(kb) * 1024.0),
                pcie_rx_bytes_per_second: d
                    .pcie_throughput(PcieUtilCounter::Receive)
                    .ok()
                    .map(|kb| f64::from(kb) * 1024.0),
                throttle_reasons: d.current_throttle_reasons().ok().map(|r| r.bits()),
                ecc_errors,
                processes,
            });
        }
        Ok(out)
    }
}
