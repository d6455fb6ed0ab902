//! Tells systemd how the service is doing (`Type=notify` in
//! `packaging/infermon.service`): ready once models, storage and the port
//! are up, reloading while a reload runs, stopping once shutdown begins.
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (not run by systemd),
//! and a failed send is logged, never fatal: serving matters more than the
//! service manager's view of it.

use sd_notify::NotifyState;

fn send(what: &str, states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot tell systemd {what}");
    }
}

/// `READY=1`: start-up finished (systemd then reports the unit active).
pub fn notify_ready() {
    send("READY=1", &[NotifyState::Ready]);
}

/// `RELOADING=1` with `MONOTONIC_USEC`, as systemd ≥ 253 wants for
/// `Type=notify-reload`; call [`notify_ready`] again when the reload is done.
pub fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING=1", &[NotifyState::Reloading, now]),
        Err(e) => tracing::warn!(error = %e, "cannot read the monotonic clock for RELOADING=1"),
    }
}

/// `STOPPING=1`: shutdown began (systemd shows the unit deactivating).
pub fn notify_stopping() {
    send("STOPPING=1", &[NotifyState::Stopping]);
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// `NOTIFY_SOCKET` is process-wide: tests that set it take turns.
    static ENV: Mutex<()> = Mutex::new(());

    fn received(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification within 5 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn monotonic_usec() -> i128 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes only into `ts`.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
            0
        );
        i128::from(ts.tv_sec) * 1_000_000 + i128::from(ts.tv_nsec) / 1000
    }

    #[test]
    fn sends_each_state_as_systemd_reads_it() {
        let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // SAFETY: ENV serialises every test that touches NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };

        notify_ready();
        assert_eq!(received(&sock), "READY=1\n");

        let before = monotonic_usec();
        notify_reloading();
        let after = monotonic_usec();
        let msg = received(&sock);
        let mut lines = msg.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"), "{msg:?}");
        let usec: i128 = lines
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {msg:?}"));
        assert!(
            before <= usec && usec <= after,
            "{before} <= {usec} <= {after}"
        );

        notify_stopping();
        assert_eq!(received(&sock), "STOPPING=1\n");
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
    }
}
