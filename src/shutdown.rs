//! The stop signal threaded through every long-running task, and the OS
//! signals that trigger it.

use tokio_util::sync::CancellationToken;

/// A cloneable stop signal: the root cancels it, every loop `select!`s on it.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// A new, not yet triggered signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal that fires when this one does, or on its own when triggered
    /// (one per shutdown stage, so stages can be stopped one after another).
    pub fn child(&self) -> Self {
        Self(self.0.child_token())
    }

    /// Asks every holder to stop.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Whether stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes when stop is asked for.
    pub async fn wait(&self) {
        self.0.cancelled().await
    }

    /// An owned future that completes on stop (for `with_graceful_shutdown`).
    pub fn wait_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.0.clone().cancelled_owned()
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C), whichever comes first.
pub async fn os_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
