//! Load average, time, boot time and uname.

use procfs::{Current, LoadAverage};

use crate::telemetry::family::{Families, Family};

pub(super) fn collect_load(out: &mut Families) {
    let Ok(load) = LoadAverage::current() else {
        return;
    };
    for (name, value) in [
        ("node_load1", load.one),
        ("node_load5", load.five),
        ("node_load15", load.fifteen),
    ] {
        let mut f = Family::gauge(name, &format!("{}m load average.", &name[9..]));
        f.add(&[], f64::from(value));
        out.push(f);
    }
}

pub(super) fn collect_time(out: &mut Families) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut f = Family::gauge(
        "node_time_seconds",
        "System time in seconds since epoch (1970).",
    );
    f.add(&[], now);
    out.push(f);
    if let Ok(boot) = procfs::boot_time_secs() {
        let mut f = Family::gauge("node_boot_time_seconds", "Node boot time, in unixtime.");
        f.add(&[], boot as f64);
        out.push(f);
    }
}

pub(super) fn collect_uname(out: &mut Families) {
    // SAFETY: uname fills the zeroed struct with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return;
    }
    let field = |raw: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = raw
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (sysname, nodename, release, version, machine, domainname) = (
        field(&u.sysname),
        field(&u.nodename),
        field(&u.release),
        field(&u.version),
        field(&u.machine),
        field(&u.domainname),
    );
    let mut f = Family::gauge(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
    );
    f.add(
        &[
            ("domainname", &domainname),
            ("machine", &machine),
            ("nodename", &nodename),
            ("release", &release),
            ("sysname", &sysname),
            ("version", &version),
        ],
        1.0,
    );
    out.push(f);
}
