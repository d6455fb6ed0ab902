//! The host collector against the real node_exporter (Debian package
//! prometheus-node-exporter): every node_* series infermon exposes must exist
//! there with the same labels and a value that agrees.

use crate::support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{ExpositionSample, TestServer, client, free_port, parse_exposition, wait_http_ok};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

fn index(samples: Vec<ExpositionSample>) -> Series {
    samples
        .into_iter()
        .map(|s| ((s.name, s.labels), s.value))
        .collect()
}

fn node_exporter_binary() -> &'static str {
    for candidate in [
        "/usr/bin/prometheus-node-exporter",
        "/usr/bin/node_exporter",
    ] {
        if std::path::Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("prometheus-node-exporter is not installed: run scripts/install-test-deps.sh");
}

#[test]
fn host_collector_matches_node_exporter() {
    let defaults = infermon::config::HostCollectorsConfig::default();
    let port = free_port();
    // The same exclusions on both sides, spelled out so the comparison does
    // not depend on how a distribution patched node_exporter's defaults.
    let _peer = Peer(
        Command::new(node_exporter_binary())
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--collector.filesystem.mount-points-exclude={}",
                defaults.mount_points_exclude
            ))
            .arg(format!(
                "--collector.filesystem.fs-types-exclude={}",
                defaults.fs_types_exclude
            ))
            .arg(format!(
                "--collector.netdev.device-exclude={}",
                defaults.netdev_exclude
            ))
            .arg(format!(
                "--collector.diskstats.device-exclude={}",
                defaults.disk_exclude
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter"),
    );
    let ne_url = format!("http://127.0.0.1:{port}/metrics");
    assert!(
        wait_http_ok(&ne_url, Duration::from_secs(20)),
        "node_exporter did not come up"
    );
    let server = TestServer::start(
        "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {dir}/data\nmodels: []\n",
    );

    let c = client();
    let get = |url: &str| c.get(url).send().unwrap().text().unwrap();
    let before = index(parse_exposition(&get(&server.url("/metrics"))));
    let theirs = index(parse_exposition(&get(&ne_url)));
    let after = index(parse_exposition(&get(&server.url("/metrics"))));

    let mut families: BTreeMap<&str, Vec<&Vec<(String, String)>>> = BTreeMap::new();
    for (name, labels) in before.keys().filter(|(n, _)| n.starts_with("node_")) {
        families.entry(name.as_str()).or_default().push(labels);
    }
    for required in [
        "node_cpu_seconds_total",
        "node_load1",
        "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_disk_read_bytes_total",
        "node_network_receive_bytes_total",
        "node_boot_time_seconds",
        "node_time_seconds",
        "node_uname_info",
    ] {
        assert!(families.contains_key(required), "infermon lacks {required}");
    }

    let mut problems = Vec::new();
    for (family, label_sets) in &families {
        let ours: Vec<_> = label_sets.iter().map(|l| (*l).clone()).collect();
        let mut theirs_sets: Vec<_> = theirs
            .keys()
            .filter(|(n, _)| n == family)
            .map(|(_, l)| l.clone())
            .collect();
        theirs_sets.sort();
        let mut ours_sorted = ours.clone();
        ours_sorted.sort();
        if ours_sorted != theirs_sets {
            problems.push(format!("{family}: label sets differ\n  infermon:      {ours_sorted:?}\n  node_exporter: {theirs_sets:?}"));
            continue;
        }
        for labels in ours {
            let key = (family.to_string(), labels.clone());
            let (a, b, n) = (
                before[&key],
                after.get(&key).copied().unwrap_or(before[&key]),
                theirs[&key],
            );
            if let Some(why) = disagreement(family, a, b, n) {
                problems.push(format!(
                    "{family}{labels:?}: infermon {a}..{b}, node_exporter {n}: {why}"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Why node_exporter's reading `n` does not agree with infermon's readings
/// `a` (just before) and `b` (just after), if it does not.
fn disagreement(family: &str, a: f64, b: f64, n: f64) -> Option<String> {
    let (lo, hi) = (a.min(b), a.max(b));
    if family.starts_with("node_filesystem_size") || family == "node_filesystem_files" {
        return (n != a).then(|| "filesystem sizes must be exact".to_string());
    }
    if family.ends_with("_total") {
        // A counter read between two of ours lies between them (allowing
        // for rounding of ticks and microseconds).
        let slack = 0.011 + hi.abs() * 1e-9;
        return (n < lo - slack || n > hi + slack)
            .then(|| "counter outside the time skew".to_string());
    }
    if family == "node_time_seconds" {
        return (n < lo - 1.0 || n > hi + 1.0).then(|| "clock differs".to_string());
    }
    // Gauges: within 5 % (or the movement seen between our two readings);
    // kernel memory figures (Dirty, Writeback, Cached…) swing by tens of
    // megabytes on a busy box between two reads.
    let tol = (hi.abs() * 0.05)
        .max(hi - lo)
        .max(if family.starts_with("node_memory_") {
            8.0 * 1048576.0
        } else {
            0.05
        });
    (n < lo - tol || n > hi + tol).then(|| format!("gauge differs by more than {tol}"))
}
