//! The host collector: node_exporter's core metrics (same names, labels and
//! units) read from /proc and /sys at scrape time, each part switchable in
//! `collectors.host`.

mod cpu;
mod disk;
mod filesystem;
mod memory;
mod network;
mod pressure;
mod system;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use regex::Regex;

use super::family::Families;
use crate::config::HostCollectorsConfig;

/// Errors building the host collector.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// One of the exclude patterns is not a valid regex.
    #[error("collectors.host.{field}: invalid regex: {source}")]
    Pattern {
        /// The config field.
        field: &'static str,
        /// The regex error.
        source: regex::Error,
    },
}

/// Reads the host on every `/metrics` scrape.
pub struct HostCollector {
    config: HostCollectorsConfig,
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    netdev_exclude: Regex,
    disk_exclude: Regex,
    // The registry identifies collectors by their descriptors; the families
    // are built at scrape time, so one stands for all of them.
    descs: Vec<Desc>,
}

impl HostCollector {
    /// A collector following `config`.
    pub fn new(config: &HostCollectorsConfig) -> Result<Self, HostError> {
        let re = |field, pattern: &str| {
            Regex::new(pattern).map_err(|source| HostError::Pattern { field, source })
        };
        Ok(HostCollector {
            mount_points_exclude: re("mount_points_exclude", &config.mount_points_exclude)?,
            fs_types_exclude: re("fs_types_exclude", &config.fs_types_exclude)?,
            netdev_exclude: re("netdev_exclude", &config.netdev_exclude)?,
            disk_exclude: re("disk_exclude", &config.disk_exclude)?,
            config: config.clone(),
            descs: vec![
                Desc::new(
                    "node_cpu_seconds_total".into(),
                    "Host metrics (node_exporter names).".into(),
                    vec![],
                    Default::default(),
                )
                .expect("static descriptor is valid"),
            ],
        })
    }

    /// Every enabled part, read now. A part whose source is missing (no PSI
    /// on this kernel, say) contributes nothing; it never fails the scrape.
    pub fn gather(&self) -> Vec<MetricFamily> {
        let c = &self.config;
        let mut out = Families::default();
        if !c.enabled {
            return out.0;
        }
        if c.cpu {
            cpu::collect(&mut out);
        }
        if c.loadavg {
            system::collect_load(&mut out);
        }
        if c.meminfo {
            memory::collect(&mut out);
        }
        if c.filesystem {
            filesystem::collect(&mut out, &self.mount_points_exclude, &self.fs_types_exclude);
        }
        if c.diskstats {
            disk::collect(&mut out, &self.disk_exclude);
        }
        if c.netdev {
            network::collect(&mut out, &self.netdev_exclude);
        }
        if c.time {
            system::collect_time(&mut out);
        }
        if c.uname {
            system::collect_uname(&mut out);
        }
        if c.pressure {
            pressure::collect(&mut out);
        }
        out.0
    }
}

impl Collector for HostCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gather()
    }
}
