//! `node_filesystem_*{device,fstype,mountpoint}` from the mount table and
//! statfs(2), leaving out pseudo filesystems as node_exporter does.

use std::collections::HashSet;
use std::ffi::CString;

use regex::Regex;

use crate::telemetry::family::{Families, Family};

/// One mounted filesystem.
#[derive(Debug, PartialEq)]
struct Mount {
    device: String,
    mountpoint: String,
    fstype: String,
    read_only: bool,
}

pub(super) fn collect(out: &mut Families, exclude_mounts: &Regex, exclude_types: &Regex) {
    // PID 1's table is the host's view even when infermon runs in its own
    // mount namespace (node_exporter reads the same file).
    let text = std::fs::read_to_string("/proc/1/mounts")
        .or_else(|_| std::fs::read_to_string("/proc/mounts"));
    let Ok(text) = text else { return };
    let mut size = Family::gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
    let mut free = Family::gauge(
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
    );
    let mut avail = Family::gauge(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    );
    let mut files = Family::gauge("node_filesystem_files", "Filesystem total file nodes.");
    let mut files_free = Family::gauge(
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
    );
    let mut readonly = Family::gauge("node_filesystem_readonly", "Filesystem read-only status.");
    let mut device_error = Family::gauge(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    );
    let mut seen = HashSet::new();
    for m in parse_mounts(&text) {
        if exclude_mounts.is_match(&m.mountpoint) || exclude_types.is_match(&m.fstype) {
            continue;
        }
        if !seen.insert((m.device.clone(), m.mountpoint.clone(), m.fstype.clone())) {
            continue;
        }
        let labels = [
            ("device", m.device.as_str()),
            ("fstype", m.fstype.as_str()),
            ("mountpoint", m.mountpoint.as_str()),
        ];
        match statfs(&m.mountpoint) {
            Some(s) => {
                size.add(&labels, s.blocks * s.bsize);
                free.add(&labels, s.bfree * s.bsize);
                avail.add(&labels, s.bavail * s.bsize);
                files.add(&labels, s.files);
                files_free.add(&labels, s.ffree);
                readonly.add(&labels, f64::from(u8::from(m.read_only)));
                device_error.add(&labels, 0.0);
            }
            None => {
                device_error.add(&labels, 1.0);
            }
        }
    }
    for f in [size, free, avail, files, files_free, readonly, device_error] {
        out.push(f);
    }
}

fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut p = line.split_whitespace();
            let device = p.next()?.to_string();
            let mountpoint = p.next()?.replace("\\040", " ").replace("\\011", "\t");
            let fstype = p.next()?.to_string();
            let options = p.next()?;
            Some(Mount {
                device,
                mountpoint,
                fstype,
                read_only: options.split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

struct Stat {
    bsize: f64,
    blocks: f64,
    bfree: f64,
    bavail: f64,
    files: f64,
    ffree: f64,
}

fn statfs(path: &str) -> Option<Stat> {
    let c = CString::new(path).ok()?;
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `buf` a properly sized,
    // writable statfs struct; statfs only writes into it.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut buf) };
    (rc == 0).then_some(Stat {
        bsize: buf.f_bsize as f64,
        blocks: buf.f_blocks as f64,
        bfree: buf.f_bfree as f64,
        bavail: buf.f_bavail as f64,
        files: buf.f_files as f64,
        ffree: buf.f_ffree as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_unescapes_mount_lines() {
        let m = parse_mounts(
            "/dev/vda / ext4 rw,relatime 0 0\n/dev/sdb1 /mnt/my\\040disk vfat ro 0 0\n",
        );
        assert_eq!(m[1].mountpoint, "/mnt/my disk");
        assert!(m[1].read_only && !m[0].read_only);
        assert!(statfs("/").is_some_and(|s| s.blocks > 0.0));
    }
}
