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

fn full() -> GpuReading {
    GpuReading {
        index: 0,
        uuid: "GPU-1".into(),
        name: "H100".into(),
        utilization_ratio: Some(0.5),
        memory_utilization_ratio: Some(0.25),
        memory_used_bytes: Some(2048.0 * MIB),
        memory_free_bytes: Some(1024.0 * MIB),
        memory_total_bytes: Some(3072.0 * MIB),
        temperature_celsius: Some(61.0),
        power_watts: Some(300.5),
        power_limit_watts: Some(700.0),
        sm_clock_hertz: Some(1.98e9),
        memory_clock_hertz: Some(2.6e9),
        fan_speed_ratio: Some(0.4),
        pcie_tx_bytes_per_second: Some(2048.0),
        pcie_rx_bytes_per_second: Some(4096.0),
        throttle_reasons: Some(0x4 | 0x40),
        ecc_errors: Some(EccErrors {
            corrected_volatile: 1.0,
            uncorrected_volatile: 0.0,
            corrected_aggregate: 7.0,
            uncorrected_aggregate: 2.0,
        }),
        processes: vec![GpuProcess {
            pid: 42,
            name: "infermon".into(),
            memory_used_bytes: 1e9,
        }],
    }
}

const L: &str = r#"gpu="0",name="H100",uuid="GPU-1""#;
/// The labels before and after an extra one, in sorted order.
const G: &str = r#"gpu="0",name="H100""#;
const U: &str = r#"uuid="GPU-1""#;

#[test]
fn every_field_under_infermon_names() {
    let text = render(GpuCollector::new(Some(Box::new(Fake(vec![full()]))), false));
    for line in [
        "infermon_gpu_available 1".to_string(),
        format!("infermon_gpu_utilization_ratio{{{L}}} 0.5"),
        format!("infermon_gpu_memory_utilization_ratio{{{L}}} 0.25"),
        format!("infermon_gpu_memory_used_bytes{{{L}}} 2147483648"),
        format!("infermon_gpu_memory_free_bytes{{{L}}} 1073741824"),
        format!("infermon_gpu_memory_total_bytes{{{L}}} 3221225472"),
        format!("infermon_gpu_temperature_celsius{{{L}}} 61"),
        format!("infermon_gpu_power_watts{{{L}}} 300.5"),
        format!("infermon_gpu_power_limit_watts{{{L}}} 700"),
        format!("infermon_gpu_sm_clock_hertz{{{L}}} 1980000000"),
        format!("infermon_gpu_memory_clock_hertz{{{L}}} 2600000000"),
        format!("infermon_gpu_fan_speed_ratio{{{L}}} 0.4"),
        format!("infermon_gpu_pcie_tx_bytes_per_second{{{L}}} 2048"),
        format!("infermon_gpu_pcie_rx_bytes_per_second{{{L}}} 4096"),
        format!("infermon_gpu_throttle_reasons{{{L}}} 68"),
        format!("infermon_gpu_throttled{{{G},reason=\"sw_power_cap\",{U}}} 1"),
        format!("infermon_gpu_throttled{{{G},reason=\"hw_thermal_slowdown\",{U}}} 1"),
        format!("infermon_gpu_throttled{{{G},reason=\"gpu_idle\",{U}}} 0"),
        format!(
            "infermon_gpu_ecc_errors_total{{error_type=\"uncorrected\",{G},scope=\"aggregate\",{U}}} 2"
        ),
        format!(
            "infermon_gpu_ecc_errors_total{{error_type=\"corrected\",{G},scope=\"volatile\",{U}}} 1"
        ),
        format!(
            "infermon_gpu_process_memory_used_bytes{{{G},pid=\"42\",process=\"infermon\",{U}}} 1000000000"
        ),
    ] {
        assert!(text.contains(&line), "missing `{line}` in:\n{text}");
    }
    assert!(!text.contains("DCGM_FI_"), "dcgm names are off by default");
}

#[test]
fn dcgm_names_in_dcgm_units() {
    let text = render(GpuCollector::new(Some(Box::new(Fake(vec![full()]))), true));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let l = format!(r#"Hostname="{host}",UUID="GPU-1",device="nvidia0",gpu="0",modelName="H100""#);
    for line in [
        format!("DCGM_FI_DEV_GPU_UTIL{{{l}}} 50"),
        format!("DCGM_FI_DEV_MEM_COPY_UTIL{{{l}}} 25"),
        format!("DCGM_FI_DEV_FB_USED{{{l}}} 2048"),
        format!("DCGM_FI_DEV_FB_FREE{{{l}}} 1024"),
        format!("DCGM_FI_DEV_GPU_TEMP{{{l}}} 61"),
        format!("DCGM_FI_DEV_POWER_USAGE{{{l}}} 300.5"),
        format!("DCGM_FI_DEV_POWER_MGMT_LIMIT{{{l}}} 700"),
        format!("DCGM_FI_DEV_SM_CLOCK{{{l}}} 1980"),
        format!("DCGM_FI_DEV_MEM_CLOCK{{{l}}} 2600"),
        format!("DCGM_FI_DEV_FAN_SPEED{{{l}}} 40"),
        format!("DCGM_FI_DEV_PCIE_TX_THROUGHPUT{{{l}}} 2"),
        format!("DCGM_FI_DEV_PCIE_RX_THROUGHPUT{{{l}}} 4"),
        format!("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{{{l}}} 68"),
        format!("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{{{l}}} 1"),
        format!("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{l}}} 0"),
    ] {
        assert!(text.contains(&line), "missing `{line}` in:\n{text}");
    }
    // Both schemes at once.
    assert!(text.contains("infermon_gpu_utilization_ratio{"), "{text}");
}

#[test]
fn a_field_that_failed_leaves_the_others() {
    let mut r = full();
    r.power_watts = None;
    r.ecc_errors = None;
    r.throttle_reasons = None;
    let text = render(GpuCollector::new(Some(Box::new(Fake(vec![r]))), true));
    assert!(!text.contains("infermon_gpu_power_watts{"), "{text}");
    assert!(!text.contains("DCGM_FI_DEV_POWER_USAGE{"), "{text}");
    assert!(!text.contains("infermon_gpu_ecc_errors_total{"), "{text}");
    assert!(!text.contains("infermon_gpu_throttled{"), "{text}");
    assert!(
        text.contains(&format!("infermon_gpu_temperature_celsius{{{L}}} 61")),
        "{text}"
    );
    assert!(text.contains("DCGM_FI_DEV_GPU_TEMP{"), "{text}");
}

#[test]
fn no_gpu_is_available_zero_and_nothing_else() {
    let text = render(GpuCollector::new(None, true));
    assert!(text.contains("infermon_gpu_available 0"), "{text}");
    assert_eq!(
        text.lines().filter(|l| !l.starts_with('#')).count(),
        1,
        "{text}"
    );
}

struct Broken;
impl GpuSource for Broken {
    fn read(&self) -> Result<Vec<GpuReading>, GpuError> {
        Err(GpuError("GPU fell off the bus".into()))
    }
}

#[test]
fn a_failing_source_reads_as_unavailable() {
    let text = render(GpuCollector::new(Some(Box::new(Broken)), false));
    assert!(text.contains("infermon_gpu_available 0"), "{text}");
}
