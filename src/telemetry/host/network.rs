//! `node_network_{receive,transmit}_{bytes,packets,errs,drop}_total{device}`
//! from /proc/net/dev.

use regex::Regex;

use crate::telemetry::family::{Families, Family};

/// Picks one counter out of a device's statistics.
type Field = fn(&procfs::net::DeviceStatus) -> u64;

pub(super) fn collect(out: &mut Families, exclude: &Regex) {
    let Ok(devices) = procfs::net::dev_status() else {
        return;
    };
    let mut names: Vec<&String> = devices.keys().filter(|n| !exclude.is_match(n)).collect();
    names.sort();
    let specs: [(&str, &str, Field); 8] = [
        (
            "node_network_receive_bytes_total",
            "Network device statistic receive_bytes.",
            |d| d.recv_bytes,
        ),
        (
            "node_network_receive_packets_total",
            "Network device statistic receive_packets.",
            |d| d.recv_packets,
        ),
        (
            "node_network_receive_errs_total",
            "Network device statistic receive_errs.",
            |d| d.recv_errs,
        ),
        (
            "node_network_receive_drop_total",
            "Network device statistic receive_drop.",
            |d| d.recv_drop,
        ),
        (
            "node_network_transmit_bytes_total",
            "Network device statistic transmit_bytes.",
            |d| d.sent_bytes,
        ),
        (
            "node_network_transmit_packets_total",
            "Network device statistic transmit_packets.",
            |d| d.sent_packets,
        ),
        (
            "node_network_transmit_errs_total",
            "Network device statistic transmit_errs.",
            |d| d.sent_errs,
        ),
        (
            "node_network_transmit_drop_total",
            "Network device statistic transmit_drop.",
            |d| d.sent_drop,
        ),
    ];
    for (name, help, get) in specs {
        let mut f = Family::counter(name, help);
        for dev in &names {
            f.add(&[("device", dev.as_str())], get(&devices[*dev]) as f64);
        }
        out.push(f);
    }
}
