//! A test-only knob that makes every forward pass slow on purpose, so
//! end-to-end tests can drive the latency alerts of the real binary.
//!
//! It is off unless the environment variable [`TEST_DELAY_ENV`] names a file
//! when the model starts; then, before each batch, the model thread reads the
//! file and sleeps for the milliseconds it holds (missing, empty or
//! unparsable: no delay), so a test turns the delay on and off by rewriting
//! the file. The sleep is part of the batch, so it counts in every latency
//! metric a slow model would show in. Unset, it costs one `Option` check per
//! batch. Never set it in production: the start-up log warns when it is set.

use std::path::PathBuf;
use std::time::Duration;

/// The environment variable naming the delay file.
pub const TEST_DELAY_ENV: &str = "INFERMON_TEST_INFERENCE_DELAY_FILE";

/// Longest delay one batch takes, so a stray value cannot hang a model thread.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// The knob as read at start: the file to consult, if any.
#[derive(Clone, Debug, Default)]
pub struct TestDelay {
    file: Option<PathBuf>,
}

impl TestDelay {
    /// Reads [`TEST_DELAY_ENV`] once, warning when it is set.
    pub fn from_env(model: &str) -> TestDelay {
        let file = std::env::var_os(TEST_DELAY_ENV).map(PathBuf::from);
        if let Some(path) = &file {
            tracing::warn!(
                model,
                file = %path.display(),
                "{TEST_DELAY_ENV} is set: forward passes are slowed on purpose (test-only)"
            );
        }
        TestDelay { file }
    }

    /// The delay the file asks for now (zero when off).
    pub fn current(&self) -> Duration {
        let Some(path) = &self.file else {
            return Duration::ZERO;
        };
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(|ms| Duration::from_millis(ms).min(MAX_DELAY))
            .unwrap_or(Duration::ZERO)
    }

    /// Sleeps for [`current`](Self::current) on the calling (model) thread.
    pub fn apply(&self) {
        let delay = self.current();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_a_file_and_follows_the_file_content() {
        assert_eq!(TestDelay::default().current(), Duration::ZERO);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("delay");
        let knob = TestDelay {
            file: Some(path.clone()),
        };
        assert_eq!(knob.current(), Duration::ZERO, "missing file");
        std::fs::write(&path, "250\n").unwrap();
        assert_eq!(knob.current(), Duration::from_millis(250));
        std::fs::write(&path, "not a number").unwrap();
        assert_eq!(knob.current(), Duration::ZERO);
        std::fs::write(&path, "999999999").unwrap();
        assert_eq!(knob.current(), MAX_DELAY);
        std::fs::write(&path, "30").unwrap();
        let started = std::time::Instant::now();
        knob.apply();
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
