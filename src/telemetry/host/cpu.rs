//! `node_cpu_seconds_total{cpu,mode}` from /proc/stat.

use procfs::{CurrentSI, KernelStats};

use crate::telemetry::family::{Families, Family};

pub(super) fn collect(out: &mut Families) {
    let Ok(stats) = KernelStats::current() else {
        return;
    };
    let hz = procfs::ticks_per_second() as f64;
    let mut f = Family::counter(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
    );
    for (i, t) in stats.cpu_time.iter().enumerate() {
        let cpu = i.to_string();
        let modes = [
            ("user", Some(t.user)),
            ("nice", Some(t.nice)),
            ("system", Some(t.system)),
            ("idle", Some(t.idle)),
            ("iowait", t.iowait),
            ("irq", t.irq),
            ("softirq", t.softirq),
            ("steal", t.steal),
        ];
        for (mode, ticks) in modes {
            if let Some(ticks) = ticks {
                f.add(&[("cpu", &cpu), ("mode", mode)], ticks as f64 / hz);
            }
        }
    }
    out.push(f);
}
