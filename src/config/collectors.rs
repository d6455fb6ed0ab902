//! `collectors:` — host and GPU metrics infermon collects itself, named like
//! node_exporter and dcgm-exporter so existing dashboards and alerts work.

use serde::{Deserialize, Serialize};

/// Which built-in collectors run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CollectorsConfig {
    /// Host metrics (`node_*`), read from /proc and /sys.
    #[serde(default)]
    pub host: HostCollectorsConfig,
    /// GPU metrics through NVML.
    #[serde(default)]
    pub gpu: GpuCollectorConfig,
}

/// node_exporter's core collectors, each switchable.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostCollectorsConfig {
    /// Master switch: false turns every host collector off (e.g. node_exporter already runs).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `node_cpu_seconds_total`.
    #[serde(default = "yes")]
    pub cpu: bool,
    /// `node_load1/5/15`.
    #[serde(default = "yes")]
    pub loadavg: bool,
    /// `node_memory_*`.
    #[serde(default = "yes")]
    pub meminfo: bool,
    /// `node_filesystem_*`.
    #[serde(default = "yes")]
    pub filesystem: bool,
    /// `node_disk_*`.
    #[serde(default = "yes")]
    pub diskstats: bool,
    /// `node_network_*`.
    #[serde(default = "yes")]
    pub netdev: bool,
    /// `node_time_seconds`, `node_boot_time_seconds`.
    #[serde(default = "yes")]
    pub time: bool,
    /// `node_uname_info`.
    #[serde(default = "yes")]
    pub uname: bool,
    /// `node_pressure_*` (where the kernel has PSI).
    #[serde(default = "yes")]
    pub pressure: bool,
    /// Mount points left out (regex; node_exporter's Debian default).
    #[serde(default = "default_mount_points_exclude")]
    pub mount_points_exclude: String,
    /// Filesystem types left out (regex; node_exporter's default).
    #[serde(default = "default_fs_types_exclude")]
    pub fs_types_exclude: String,
    /// Network devices left out (regex).
    #[serde(default = "default_netdev_exclude")]
    pub netdev_exclude: String,
    /// Block devices left out (regex; partitions and virtual devices).
    #[serde(default = "default_disk_exclude")]
    pub disk_exclude: String,
}

impl Default for HostCollectorsConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("empty host collectors config deserializes")
    }
}

/// GPU collector settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpuCollectorConfig {
    /// Read GPUs through NVML (default true; absent driver: no GPU series).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Also expose dcgm-exporter's names (`DCGM_FI_DEV_*`).
    #[serde(default)]
    pub dcgm_names: bool,
}

impl Default for GpuCollectorConfig {
    fn default() -> Self {
        GpuCollectorConfig {
            enabled: true,
            dcgm_names: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// Mount points node_exporter (as Debian ships it) leaves out.
pub fn default_mount_points_exclude() -> String {
    "^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
        .to_string()
}

/// Pseudo filesystems node_exporter leaves out.
pub fn default_fs_types_exclude() -> String {
    "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$".to_string()
}

/// Network devices node_exporter (as Debian ships it) leaves out.
pub fn default_netdev_exclude() -> String {
    "^lo$".to_string()
}

/// Block devices node_exporter leaves out: partitions, ram and loop devices.
pub fn default_disk_exclude() -> String {
    r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$".to_string()
}
