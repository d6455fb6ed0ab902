//! GPU readings through NVML, taken when `/metrics` is scraped.
//!
//! The source sits behind [`GpuSource`] so the mapping from readings to
//! series is tested without a GPU.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGauge, Opts};

/// One GPU's state at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuReading {
    /// Index as NVML numbers it (`gpu` label).
    pub index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// Product name.
    pub name: String,
    /// Memory in use, bytes.
    pub memory_used_bytes: f64,
    /// Total memory, bytes.
    pub memory_total_bytes: f64,
    /// GPU utilization, 0…1.
    pub utilization_ratio: f64,
    /// Core temperature, °C.
    pub temperature_celsius: f64,
    /// Power draw, watts.
    pub power_watts: f64,
}

/// A failure reading the GPUs.
#[derive(Debug, thiserror::Error)]
#[error("GPU read failed: {0}")]
pub struct GpuError(pub String);

/// Something that can list the GPUs' current state.
pub trait GpuSource: Send + Sync {
    /// Reads every GPU now.
    fn read(&self) -> Result<Vec<GpuReading>, GpuError>;
}

/// The NVIDIA driver through NVML.
pub struct NvmlSource(nvml_wrapper::Nvml);

impl NvmlSource {
    /// Opens NVML; `None` (with one info line) where there is no driver.
    pub fn open() -> Option<Self> {
        match nvml_wrapper::Nvml::init() {
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
        use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
        let err = |e: nvml_wrapper::error::NvmlError| GpuError(e.to_string());
        let count = self.0.device_count().map_err(err)?;
        let mut out = Vec::with_capacity(count as usize);
        for index in 0..count {
            let d = self.0.device_by_index(index).map_err(err)?;
            let mem = d.memory_info().map_err(err)?;
            out.push(GpuReading {
                index,
                uuid: d.uuid().unwrap_or_default(),
                name: d.name().unwrap_or_default(),
                memory_used_bytes: mem.used as f64,
                memory_total_bytes: mem.total as f64,
                utilization_ratio: d.utilization_rates().map(|u| u.gpu as f64 / 100.0).unwrap_or(f64::NAN),
                temperature_celsius: d.temperature(TemperatureSensor::Gpu).map(f64::from).unwrap_or(f64::NAN),
                power_watts: d.power_usage().map(|mw| mw as f64 / 1000.0).unwrap_or(f64::NAN),
            });
        }
        Ok(out)
    }
}

/// Prometheus collector turning readings into `infermon_gpu_*` series.
pub struct GpuCollector {
    source: Option<Box<dyn GpuSource>>,
    available: IntGauge,
    gauges: Vec<(GaugeVec, fn(&GpuReading) -> f64)>,
    descs: Vec<Desc>,
    // collect() takes &self; readings must not interleave between scrapes.
    lock: Mutex<()>,
}

impl GpuCollector {
    /// A collector over `source` (`None`: no GPU, only `infermon_gpu_available 0`).
    pub fn new(source: Option<Box<dyn GpuSource>>) -> Result<Self, prometheus::Error> {
        let available = IntGauge::new("infermon_gpu_available", "1 when NVIDIA GPUs can be read through NVML, else 0.")?;
        let labels = ["gpu", "uuid", "name"];
        let specs: [(&str, &str, fn(&GpuReading) -> f64); 5] = [
            ("infermon_gpu_memory_used_bytes", "GPU memory in use.", |r| r.memory_used_bytes),
            ("infermon_gpu_memory_total_bytes", "GPU memory in total.", |r| r.memory_total_bytes),
            ("infermon_gpu_utilization_ratio", "GPU busy fraction over the last sample period (0-1).", |r| r.utilization_ratio),
            ("infermon_gpu_temperature_celsius", "GPU core temperature.", |r| r.temperature_celsius),
            ("infermon_gpu_power_watts", "GPU power draw.", |r| r.power_watts),
        ];
        let mut gauges = Vec::new();
        for (name, help, get) in specs {
            gauges.push((GaugeVec::new(Opts::new(name, help), &labels)?, get));
        }
        let mut descs: Vec<Desc> = available.desc().into_iter().cloned().collect();
        for (g, _) in &gauges {
            descs.extend(g.desc().into_iter().cloned());
        }
        Ok(GpuCollector { source, available, gauges, descs, lock: Mutex::new(()) })
    }
}

impl Collector for GpuCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        for (g, _) in &self.gauges {
            g.reset();
        }
        let readings = match &self.source {
            Some(source) => match source.read() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::debug!(error = %e, "GPU read failed");
                    None
                }
            },
            None => None,
        };
        self.available.set(i64::from(readings.is_some()));
        let mut out = self.available.collect();
        for r in readings.iter().flatten() {
            let index = r.index.to_string();
            for (g, get) in &self.gauges {
                let v = get(r);
                // A reading the card does not support is left out, not zero.
                if !v.is_nan() {
                    g.with_label_values(&[&index, &r.uuid, &r.name]).set(v);
                }
            }
        }
        for (g, _) in &self.gauges {
            out.extend(g.collect().into_iter().filter(|mf| !mf.get_metric().is_empty()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<GpuReading>);
    impl GpuSource for Fake {
        fn read(&self) -> Result<Vec<GpuReading>, GpuError> {
            Ok(self.0.clone())
        }
    }

    fn render(c: GpuCollector) -> String {
        let r = prometheus::Registry::new();
        r.register(Box::new(c)).unwrap();
        let mut buf = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn readings_become_labelled_series() {
        let reading = GpuReading {
            index: 0,
            uuid: "GPU-1".into(),
            name: "H100".into(),
            memory_used_bytes: 1024.0,
            memory_total_bytes: 4096.0,
            utilization_ratio: 0.5,
            temperature_celsius: 61.0,
            power_watts: f64::NAN,
        };
        let text = render(GpuCollector::new(Some(Box::new(Fake(vec![reading])))).unwrap());
        assert!(text.contains("infermon_gpu_available 1"), "{text}");
        assert!(text.contains(r#"infermon_gpu_memory_used_bytes{gpu="0",name="H100",uuid="GPU-1"} 1024"#), "{text}");
        assert!(text.contains(r#"infermon_gpu_utilization_ratio{gpu="0",name="H100",uuid="GPU-1"} 0.5"#), "{text}");
        assert!(!text.contains("infermon_gpu_power_watts{"), "unsupported reading must be absent: {text}");
    }

    #[test]
    fn no_gpu_is_available_zero() {
        let text = render(GpuCollector::new(None).unwrap());
        assert!(text.contains("infermon_gpu_available 0"), "{text}");
        assert!(!text.contains("infermon_gpu_memory_used_bytes{"), "{text}");
    }
}
