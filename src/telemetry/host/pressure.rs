//! `node_pressure_*` from /proc/pressure (PSI), where the kernel has it.

use procfs::{CpuPressure, Current, IoPressure, MemoryPressure};

use crate::telemetry::family::{Families, Family};

/// PSI totals are microseconds.
fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

pub(super) fn collect(out: &mut Families) {
    let mut add = |name: &str, help: &str, value: f64| {
        let mut f = Family::counter(name, help);
        f.add(&[], value);
        out.push(f);
    };
    if let Ok(cpu) = CpuPressure::current() {
        add(
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
            secs(cpu.some.total),
        );
    }
    if let Ok(io) = IoPressure::current() {
        add(
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
            secs(io.some.total),
        );
        add(
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
            secs(io.full.total),
        );
    }
    if let Ok(mem) = MemoryPressure::current() {
        add(
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
            secs(mem.some.total),
        );
        add(
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
            secs(mem.full.total),
        );
    }
}
