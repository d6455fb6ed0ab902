//! GPU readings, taken when `/metrics` is scraped, exposed under infermon's
//! names and (with `collectors.gpu.dcgm_names`) dcgm-exporter's too.
//!
//! The source sits behind [`GpuSource`] so the mapping from readings to
//! series is tested without a GPU. Every figure is optional: a card that
//! cannot report one (or errors on it) still reports the others.

mod fake;
mod nvml;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

pub use fake::{FAKE_GPU_ENV, FakeGpuSource};
pub use nvml::NvmlSource;

use super::family::{Families, Family};

/// One GPU's state at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuReading {
    /// Index as NVML numbers it (`gpu` label).
    pub index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Busy fraction of the SMs over the last sample period, 0…1.
    pub utilization_ratio: Option<f64>,
    /// Busy fraction of the memory interface, 0…1.
    pub memory_utilization_ratio: Option<f64>,
    /// Framebuffer memory in use, bytes.
    pub memory_used_bytes: Option<f64>,
    /// Framebuffer memory free, bytes.
    pub memory_free_bytes: Option<f64>,
    /// Framebuffer memory in total, bytes.
    pub memory_total_bytes: Option<f64>,
    /// Core temperature, °C.
    pub temperature_celsius: Option<f64>,
    /// Power draw, watts.
    pub power_watts: Option<f64>,
    /// Enforced power limit, watts.
    pub power_limit_watts: Option<f64>,
    /// SM clock, Hz.
    pub sm_clock_hertz: Option<f64>,
    /// Memory clock, Hz.
    pub memory_clock_hertz: Option<f64>,
    /// Fan speed, 0…1 of its maximum.
    pub fan_speed_ratio: Option<f64>,
    /// PCIe transmit throughput, bytes/s.
    pub pcie_tx_bytes_per_second: Option<f64>,
    /// PCIe receive throughput, bytes/s.
    pub pcie_rx_bytes_per_second: Option<f64>,
    /// Active clock throttle reasons (NVML bitmask).
    pub throttle_reasons: Option<u64>,
    /// ECC errors: (corrected volatile, uncorrected volatile, corrected aggregate, uncorrected aggregate).
    pub ecc_errors: Option<EccErrors>,
    /// Processes holding GPU memory.
    pub processes: Vec<GpuProcess>,
}

/// ECC error counts.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EccErrors {
    /// Corrected (single-bit) errors since the driver loaded.
    pub corrected_volatile: f64,
    /// Uncorrected (double-bit) errors since the driver loaded.
    pub uncorrected_volatile: f64,
    /// Corrected errors over the card's life.
    pub corrected_aggregate: f64,
    /// Uncorrected errors over the card's life.
    pub uncorrected_aggregate: f64,
}

/// A process using a GPU.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GpuProcess {
    /// Process id.
    pub pid: u32,
    /// Process name (`comm`).
    pub name: String,
    /// GPU memory it holds, bytes.
    pub memory_used_bytes: f64,
}

/// NVML's throttle reason bits with the names used as label values.
pub const THROTTLE_REASONS: [(u64, &str); 9] = [
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// A failure reading the GPUs.
#[derive(Debug, thiserror::Error)]
#[error("GPU read failed: {0}")]
pub struct GpuError(pub String);

/// Something that can list the GPUs' current state.
pub trait GpuSource: Send + Sync {
    /// Reads every GPU now.
    fn read(&self) -> Result<Vec<GpuReading>, GpuError>;
}

/// Picks one figure out of a reading.
type Field = fn(&GpuReading) -> Option<f64>;

/// infermon's names: (name, help, field).
const INFERMON_GAUGES: [(&str, &str, Field); 14] = [
    (
        "infermon_gpu_utilization_ratio",
        "GPU (SM) busy fraction over the last sample period (0-1).",
        |r| r.utilization_ratio,
    ),
    (
        "infermon_gpu_memory_utilization_ratio",
        "GPU memory interface busy fraction (0-1).",
        |r| r.memory_utilization_ratio,
    ),
    (
        "infermon_gpu_memory_used_bytes",
        "GPU memory in use.",
        |r| r.memory_used_bytes,
    ),
    ("infermon_gpu_memory_free_bytes", "GPU memory free.", |r| {
        r.memory_free_bytes
    }),
    (
        "infermon_gpu_memory_total_bytes",
        "GPU memory in total.",
        |r| r.memory_total_bytes,
    ),
    (
        "infermon_gpu_temperature_celsius",
        "GPU core temperature.",
        |r| r.temperature_celsius,
    ),
    ("infermon_gpu_power_watts", "GPU power draw.", |r| {
        r.power_watts
    }),
    (
        "infermon_gpu_power_limit_watts",
        "GPU enforced power limit.",
        |r| r.power_limit_watts,
    ),
    ("infermon_gpu_sm_clock_hertz", "GPU SM clock.", |r| {
        r.sm_clock_hertz
    }),
    (
        "infermon_gpu_memory_clock_hertz",
        "GPU memory clock.",
        |r| r.memory_clock_hertz,
    ),
    (
        "infermon_gpu_fan_speed_ratio",
        "GPU fan speed as a fraction of its maximum.",
        |r| r.fan_speed_ratio,
    ),
    (
        "infermon_gpu_pcie_tx_bytes_per_second",
        "GPU PCIe transmit throughput.",
        |r| r.pcie_tx_bytes_per_second,
    ),
    (
        "infermon_gpu_pcie_rx_bytes_per_second",
        "GPU PCIe receive throughput.",
        |r| r.pcie_rx_bytes_per_second,
    ),
    (
        "infermon_gpu_throttle_reasons",
        "Active clock throttle reasons as NVML's bitmask (0 = none).",
        |r| r.throttle_reasons.map(|b| b as f64),
    ),
];

const MIB: f64 = 1024.0 * 1024.0;

/// dcgm-exporter's names and units: (name, help, field).
const DCGM_GAUGES: [(&str, &str, Field); 15] = [
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", |r| {
        r.utilization_ratio.map(|v| v * 100.0)
    }),
    (
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "Memory utilization (in %).",
        |r| r.memory_utilization_ratio.map(|v| v * 100.0),
    ),
    (
        "DCGM_FI_DEV_FB_USED",
        "Framebuffer memory used (in MiB).",
        |r| r.memory_used_bytes.map(|v| (v / MIB).floor()),
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        "Framebuffer memory free (in MiB).",
        |r| r.memory_free_bytes.map(|v| (v / MIB).floor()),
    ),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", |r| {
        r.temperature_celsius
    }),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", |r| {
        r.power_watts
    }),
    (
        "DCGM_FI_DEV_POWER_MGMT_LIMIT",
        "Power management limit (in W).",
        |r| r.power_limit_watts,
    ),
    (
        "DCGM_FI_DEV_SM_CLOCK",
        "SM clock frequency (in MHz).",
        |r| r.sm_clock_hertz.map(|v| v / 1e6),
    ),
    (
        "DCGM_FI_DEV_MEM_CLOCK",
        "Memory clock frequency (in MHz).",
        |r| r.memory_clock_hertz.map(|v| v / 1e6),
    ),
    ("DCGM_FI_DEV_FAN_SPEED", "Fan speed (in %).", |r| {
        r.fan_speed_ratio.map(|v| v * 100.0)
    }),
    (
        "DCGM_FI_DEV_PCIE_TX_THROUGHPUT",
        "PCIe transmit throughput (in KB/s).",
        |r| r.pcie_tx_bytes_per_second.map(|v| v / 1024.0),
    ),
    (
        "DCGM_FI_DEV_PCIE_RX_THROUGHPUT",
        "PCIe receive throughput (in KB/s).",
        |r| r.pcie_rx_bytes_per_second.map(|v| v / 1024.0),
    ),
    (
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "Current clock throttle reasons (bitmask).",
        |r| r.throttle_reasons.map(|b| b as f64),
    ),
    (
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "Total number of single-bit volatile ECC errors.",
        |r| r.ecc_errors.map(|e| e.corrected_volatile),
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "Total number of double-bit volatile ECC errors.",
        |r| r.ecc_errors.map(|e| e.uncorrected_volatile),
    ),
];

/// Prometheus collector turning readings into series.
pub struct GpuCollector {
    source: Option<Box<dyn GpuSource>>,
    dcgm_names: bool,
    hostname: String,
    // The registry identifies collectors by their descriptors; the families
    // are built at scrape time, so one stands for all of them.
    descs: Vec<Desc>,
}

impl GpuCollector {
    /// A collector over `source` (`None`: no GPU, only `infermon_gpu_available 0`).
    pub fn new(source: Option<Box<dyn GpuSource>>, dcgm_names: bool) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        GpuCollector {
            source,
            dcgm_names,
            hostname,
            descs: Vec::new(),
        }
    }

    /// The families for one set of readings (`None`: GPUs unreadable).
    pub fn families(&self, readings: Option<&[GpuReading]>) -> Vec<MetricFamily> {
        let mut out = Families::default();
        let mut available = Family::gauge(
            "infermon_gpu_available",
            "1 when NVIDIA GPUs can be read through NVML, else 0.",
        );
        available.add(&[], if readings.is_some() { 1.0 } else { 0.0 });
        out.push(available);
        let readings = readings.unwrap_or_default();
        for (name, help, get) in INFERMON_GAUGES {
            let mut f = Family::gauge(name, help);
            for r in readings {
                if let Some(v) = get(r) {
                    f.add(
                        &[
                            ("gpu", &r.index.to_string()),
                            ("uuid", &r.uuid),
                            ("name", &r.name),
                        ],
                        v,
                    );
                }
            }
            out.push(f);
        }
        let mut throttled = Family::gauge(
            "infermon_gpu_throttled",
            "1 while the GPU's clocks are held down for this reason.",
        );
        let mut ecc = Family::counter(
            "infermon_gpu_ecc_errors_total",
            "ECC memory errors by type and counter scope.",
        );
        let mut procs = Family::gauge(
            "infermon_gpu_process_memory_used_bytes",
            "GPU memory held by each process.",
        );
        for r in readings {
            let gpu = r.index.to_string();
            let base = [
                ("gpu", gpu.as_str()),
                ("uuid", r.uuid.as_str()),
                ("name", r.name.as_str()),
            ];
            if let Some(bits) = r.throttle_reasons {
                for (bit, reason) in THROTTLE_REASONS {
                    let mut l = base.to_vec();
                    l.push(("reason", reason));
                    throttled.add(&l, if bits & bit != 0 { 1.0 } else { 0.0 });
                }
            }
            if let Some(e) = r.ecc_errors {
                for (kind, scope, v) in [
                    ("corrected", "volatile", e.corrected_volatile),
                    ("uncorrected", "volatile", e.uncorrected_volatile),
                    ("corrected", "aggregate", e.corrected_aggregate),
                    ("uncorrected", "aggregate", e.uncorrected_aggregate),
                ] {
                    let mut l = base.to_vec();
                    l.extend([("error_type", kind), ("scope", scope)]);
                    ecc.add(&l, v);
                }
            }
            for p in &r.processes {
                let pid = p.pid.to_string();
                let mut l = base.to_vec();
                l.extend([("pid", pid.as_str()), ("process", p.name.as_str())]);
                procs.add(&l, p.memory_used_bytes);
            }
        }
        out.push(throttled);
        out.push(ecc);
        out.push(procs);
        if self.dcgm_names {
            for (name, help, get) in DCGM_GAUGES {
                let mut f = Family::gauge(name, help);
                for r in readings {
                    if let Some(v) = get(r) {
                        let device = format!("nvidia{}", r.index);
                        f.add(
                            &[
                                ("gpu", &r.index.to_string()),
                                ("UUID", &r.uuid),
                                ("device", &device),
                                ("modelName", &r.name),
                                ("Hostname", &self.hostname),
                            ],
                            v,
                        );
                    }
                }
                out.push(f);
            }
        }
        out.0
    }
}

impl Collector for GpuCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let readings = match &self.source {
            Some(source) => match source.read() {
                Ok(r) => Some(r),
                Err(e) => {
                    // At debug: a GPU that fell off the bus must not flood the log on every scrape.
                    tracing::debug!(error = %e, "GPU read failed");
                    None
                }
            },
            None => None,
        };
        self.families(readings.as_deref())
    }
}

#[cfg(test)]
mod tests;
