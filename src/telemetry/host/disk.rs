//! `node_disk_*{device}` from /proc/diskstats (sectors are 512 bytes, times ms).

use regex::Regex;

use crate::telemetry::family::{Families, Family};

pub(super) fn collect(out: &mut Families, exclude: &Regex) {
    let Ok(stats) = procfs::diskstats() else {
        return;
    };
    let mut read_bytes = Family::counter(
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
    );
    let mut written_bytes = Family::counter(
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
    );
    let mut io_time = Family::counter(
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
    );
    let mut reads = Family::counter(
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
    );
    let mut writes = Family::counter(
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
    );
    let mut read_time = Family::counter(
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
    );
    let mut write_time = Family::counter(
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
    );
    for d in stats.iter().filter(|d| !exclude.is_match(&d.name)) {
        let l = [("device", d.name.as_str())];
        read_bytes.add(&l, d.sectors_read as f64 * 512.0);
        written_bytes.add(&l, d.sectors_written as f64 * 512.0);
        io_time.add(&l, d.time_in_progress as f64 / 1000.0);
        reads.add(&l, d.reads as f64);
        writes.add(&l, d.writes as f64);
        read_time.add(&l, d.time_reading as f64 / 1000.0);
        write_time.add(&l, d.time_writing as f64 / 1000.0);
    }
    for f in [
        read_bytes,
        written_bytes,
        io_time,
        reads,
        writes,
        read_time,
        write_time,
    ] {
        out.push(f);
    }
}
