//! The Debian package: `packaging/test-install.sh` builds it from this test
//! build of the binary, installs it with `dpkg -i`, verifies the unit with
//! `systemd-analyze verify`, runs the installed binary with the installed
//! config as user `infermon` (checking /health, an embedding and the
//! READY=1/STOPPING=1 notifications), then removes and purges it and checks
//! that `/var/lib/infermon` is kept. Installing needs root: as another user
//! the test says so and passes without running.
//! The systemd notifications are also checked without root, on the binary.

use crate::support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

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

/// The datagrams systemd would get, until `until` arrives (or 30 s pass).
fn notifications_until(sock: &UnixDatagram, until: &str) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = msg.lines().any(|l| l == until);
        got.push(msg);
        if done {
            break;
        }
    }
    got
}

#[test]
fn the_binary_tells_systemd_ready_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut server = support::TestServer::start_with_env(
        "server: {listen: '127.0.0.1:0'}\nmodels: []\nstorage: {path: '{dir}/data'}\n\
         snapshots: {enabled: false}\ncollectors: {gpu: {enabled: false}}\n",
        &[("NOTIFY_SOCKET", &path)],
    );
    // READY=1 comes once serving: the port answers by then.
    let ready = notifications_until(&sock, "READY=1");
    assert!(ready.last().is_some_and(|m| m == "READY=1\n"), "{ready:?}");
    assert!(support::wait_http_ok(
        &server.url("/health"),
        Duration::from_secs(5)
    ));
    server.terminate();
    let stopping = notifications_until(&sock, "STOPPING=1");
    assert!(
        stopping.last().is_some_and(|m| m == "STOPPING=1\n"),
        "{stopping:?}\n{}",
        server.log()
    );
    assert!(
        server
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
}
