//! `node_memory_*` from /proc/meminfo: every field, named as node_exporter
//! names them (`Active(anon)` → `node_memory_Active_anon_bytes`).

use crate::telemetry::family::{Families, Family};

pub(super) fn collect(out: &mut Families) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return;
    };
    for (name, value) in parse(&text) {
        let help = format!(
            "Memory information field {}.",
            name.trim_start_matches("node_memory_")
        );
        let mut f = Family::gauge(&name, &help);
        f.add(&[], value);
        out.push(f);
    }
}

/// (metric name, value) per line; `kB` values become bytes with `_bytes`.
fn parse(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(value) = parts.next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        let key = key.replace('(', "_").replace(')', "");
        match parts.next() {
            Some("kB") => out.push((format!("node_memory_{key}_bytes"), value * 1024.0)),
            _ => out.push((format!("node_memory_{key}"), value)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_node_exporter() {
        let got =
            parse("MemTotal:       16384 kB\nActive(anon):   4 kB\nHugePages_Total:       0\n");
        assert_eq!(
            got,
            vec![
                ("node_memory_MemTotal_bytes".to_string(), 16384.0 * 1024.0),
                ("node_memory_Active_anon_bytes".to_string(), 4096.0),
                ("node_memory_HugePages_Total".to_string(), 0.0),
            ]
        );
    }
}
