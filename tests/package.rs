//! The Debian package: `packaging/test-install.sh` builds it from this test
//! build of the binary, installs it with `dpkg -i`, verifies the unit with
//! `systemd-analyze verify`, runs the installed binary with the installed
//! config as user `infermon` (checking /health, an embedding and the
//! READY=1/STOPPING=1 notifications), then removes and purges it and checks
//! that `/var/lib/infermon` is kept. Installing needs root: as another user
//! the test says so and passes without running.

use std::process::Command;

#[test]
fn deb_installs_runs_as_a_service_user_and_removes_keeping_data() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED: the package install test needs root (dpkg -i); run it as root or in CI"
        );
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/test-install.sh");
    let out = Command::new(script)
        .arg(env!("CARGO_BIN_EXE_infermon"))
        .output()
        .expect("run packaging/test-install.sh");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("PASS:"), "{log}");
    eprintln!("{log}");
}
