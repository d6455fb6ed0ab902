//! Starts the real `infermon` binary for integration tests.
#![allow(dead_code)]

pub mod receivers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository root (tests read `tests/fixtures` relative to it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// The default model unpacked by `scripts/fetch-model.sh`.
pub fn minilm_dir() -> PathBuf {
    repo_root().join("models/all-MiniLM-L6-v2")
}

/// The test binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_infermon")
}

/// A running infermon, killed on drop.
pub struct TestServer {
    /// The child process.
    pub child: Child,
    /// `127.0.0.1:<port>` it listens on.
    pub addr: String,
    /// Its data/config directory (deleted on drop).
    pub dir: tempfile::TempDir,
    /// Everything it logged to stderr so far.
    pub log: Arc<Mutex<String>>,
}

impl TestServer {
    /// Writes `config_yaml` to a temp dir and starts `infermon serve` on it.
    /// The config should use `listen: 127.0.0.1:0`; `{dir}` in it is replaced
    /// by the temp dir, `{repo}` by the repository root.
    pub fn start(config_yaml: &str) -> TestServer {
        Self::try_start(config_yaml).unwrap_or_else(|log| panic!("infermon did not start:\n{log}"))
    }

    /// Like [`start`], returning the log on failure.
    pub fn try_start(config_yaml: &str) -> Result<TestServer, String> {
        Self::try_start_with_env(config_yaml, &[])
    }

    /// Like [`start`], with extra environment variables for the binary
    /// (test-only knobs such as `INFERMON_TEST_INFERENCE_DELAY_FILE`).
    pub fn start_with_env(config_yaml: &str, env: &[(&str, &Path)]) -> TestServer {
        Self::try_start_with_env(config_yaml, env)
            .unwrap_or_else(|log| panic!("infermon did not start:\n{log}"))
    }

    fn try_start_with_env(config_yaml: &str, env: &[(&str, &Path)]) -> Result<TestServer, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config_yaml
            .replace("{dir}", &dir.path().display().to_string())
            .replace("{repo}", &repo_root().display().to_string());
        let path = dir.path().join("infermon.yml");
        std::fs::write(&path, text).expect("write config");
        Self::spawn(&path, dir, env)
    }

    /// Starts `infermon serve --config <file>` on a file as it is (relative
    /// paths in it resolve beside it; the working directory, where a relative
    /// `storage.path` goes, is a temp dir), with extra environment variables.
    pub fn start_config_file_with_env(config: &Path, env: &[(&str, &Path)]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::spawn(config, dir, env).unwrap_or_else(|log| panic!("infermon did not start:\n{log}"))
    }

    fn spawn(
        config: &Path,
        dir: tempfile::TempDir,
        env: &[(&str, &Path)],
    ) -> Result<TestServer, String> {
        let mut child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(config)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .env("INFERMON_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn infermon");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on ") {
                    let addr = line[i + 13..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(addr);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(100)) {
                return Ok(TestServer {
                    child,
                    addr,
                    dir,
                    log,
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(log.lock().unwrap().clone());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!(
                    "timed out waiting for 'listening on'\n{}",
                    log.lock().unwrap()
                ));
            }
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// Waits for exit up to `timeout`; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client for tests.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// One sample line of the text exposition format: name, sorted labels, value.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpositionSample {
    /// Metric name.
    pub name: String,
    /// Labels sorted by name.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

/// A small parser for test assertions (label values without escaped quotes
/// or commas are enough for what tests compare).
pub fn parse_exposition(text: &str) -> Vec<ExpositionSample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rfind('}') {
            Some(i) => (&line[..=i], line[i + 1..].trim()),
            None => line.split_once(' ').unwrap_or((line, "")),
        };
        let value = value.split_whitespace().next().unwrap_or("");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.trim_end_matches('}');
                let mut labels = Vec::new();
                let mut rest = inner;
                while let Some(eq) = rest.find("=\"") {
                    let key = rest[..eq].trim().trim_start_matches(',').trim().to_string();
                    let after = &rest[eq + 2..];
                    let mut end = 0;
                    let bytes = after.as_bytes();
                    while end < bytes.len()
                        && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\'))
                    {
                        end += 1;
                    }
                    labels.push((key, after[..end].to_string()));
                    rest = after.get(end + 1..).unwrap_or("");
                }
                labels.sort();
                (n.to_string(), labels)
            }
            None => (series.trim().to_string(), Vec::new()),
        };
        out.push(ExpositionSample {
            name,
            labels,
            value,
        });
    }
    out
}

/// A free TCP port on 127.0.0.1 (for peers started by tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers 200, up to `timeout`.
pub fn wait_http_ok(url: &str, timeout: Duration) -> bool {
    let c = client();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if c.get(url)
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Polls `probe` every 50 ms until it gives a value, up to `timeout`; panics
/// naming `what` (and the probe's last note) when the deadline passes. Tests
/// wait on observable state with this instead of sleeping.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(note) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {note}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

impl TestServer {
    /// Waits until the log holds `needle`; the log so far.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for(&format!("log line {needle:?}"), timeout, || {
            let log = self.log();
            if log.contains(needle) {
                Ok(log)
            } else {
                Err(log)
            }
        })
    }

    /// The value of the first `/metrics` series named `name` that has every
    /// label pair of `labels`; `None` when absent.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = client()
            .get(self.url("/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        parse_exposition(&text)
            .into_iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
    }

    /// Waits until metric `name{labels}` is at least `min`; its value.
    pub fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        min: f64,
        timeout: Duration,
    ) -> f64 {
        wait_for(
            &format!("{name}{labels:?} >= {min}"),
            timeout,
            || match self.metric(name, labels) {
                Some(v) if v >= min => Ok(v),
                other => Err(format!("now {other:?}")),
            },
        )
    }
}

/// A JSON array of numbers as f32s.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The largest component-wise difference of two vectors of one length.
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dimensions");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts that an output matches its sentence-transformers reference:
/// cosine ≥ 0.9999 and max abs diff ≤ 1e-4, or ≤ 2e-5 of the largest
/// component for vectors above 5 (Dense layers scale them up; the AMX
/// bf16x3 kernels agree with f32 to ~1e-5 relative: 1.26e-4 seen on
/// components of 15).
pub fn assert_matches_reference(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: width");
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let (cos, diff) = (cosine(got, want), max_abs(got, want));
    assert!(
        cos >= 0.9999 && diff <= 1e-4f32.max(2e-5 * scale),
        "{what}: cosine {cos}, max abs {diff} (largest component {scale})"
    );
}

/// Asserts that a text embedded alone equals its row of a batch to float
/// rounding. Batches pad and block the matrix products differently, so
/// sums are taken in another order; how far that moves a component depends
/// on the CPU's kernels (1.07e-5 seen), so the bound is relative to the
/// vector's largest component. A wrong mask or position is off by tenths.
pub fn assert_batched_equals_single(what: &str, single: &[f32], batched: &[f32]) {
    let scale = batched.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let diff = max_abs(single, batched);
    assert!(
        diff <= 5e-5 * scale,
        "{what}: batched vs single differ by {diff} (largest component {scale})"
    );
}

/// Copies a folder (a model fixture) recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Starts the binary on a copy of fixture `name` changed by `edit`, which
/// must refuse to start; returns its log.
pub fn start_fails(name: &str, edit: impl Fn(&Path)) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("model");
    copy_dir(&fixture(name), &model);
    edit(&model);
    let config = format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n  - name: broken\n    path: {}\n",
        model.display()
    );
    match TestServer::try_start(&config) {
        Ok(_) => panic!("{name}: a folder infermon cannot serve exactly started"),
        Err(log) => log,
    }
}

/// Replaces `from` by `to` in the file at `path`, which must contain it.
pub fn rewrite(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{}: no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).expect("write");
}

/// A JSON file under `tests/fixtures` (`name/reference.json`, …).
pub fn fixture_json(path: &str) -> serde_json::Value {
    let path = fixture(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
