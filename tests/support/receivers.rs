//! Local stand-ins for the places alerts go, for `tests/alerting.rs`: an HTTP
//! server that records what chat robots and webhooks are sent (and can fail
//! on purpose), a real SMTP server (`python3 -m aiosmtpd`) writing to a
//! maildir, and checks written from the channels' documentation rather than
//! from infermon's code (DingTalk's signature, email decoded by Python).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

/// What a DingTalk/WeCom/Feishu robot answers when all is well.
pub const ROBOT_OK: &str = r#"{"errcode":0,"errmsg":"ok","code":0}"#;

/// An HTTP receiver that records every JSON request it answers 200.
#[derive(Clone, Default)]
pub struct Receiver {
    /// (path + query, JSON body) of every request answered 200, in order.
    pub got: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    /// Requests still to fail with 503.
    pub fail: Arc<Mutex<u32>>,
    /// Every request, failed or not.
    pub attempts: Arc<Mutex<u32>>,
    /// Reply body for successful requests.
    pub reply: Arc<Mutex<String>>,
}

impl Receiver {
    /// A receiver answering like a chat robot that accepted the message.
    pub fn robot() -> Receiver {
        Receiver {
            reply: Arc::new(Mutex::new(ROBOT_OK.into())),
            ..Default::default()
        }
    }

    /// A receiver whose first `n` requests fail with 503.
    pub fn failing(n: u32) -> Receiver {
        Receiver {
            fail: Arc::new(Mutex::new(n)),
            ..Default::default()
        }
    }

    /// Everything received so far.
    pub fn all(&self) -> Vec<(String, serde_json::Value)> {
        self.got.lock().unwrap().clone()
    }

    /// How many requests were answered 200.
    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// The (path + query, body) of requests whose path starts with `prefix`.
    pub fn at(&self, prefix: &str) -> Vec<(String, serde_json::Value)> {
        self.all()
            .into_iter()
            .filter(|(uri, _)| uri.starts_with(prefix))
            .collect()
    }
}

async fn receive(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> (StatusCode, String) {
    *r.attempts.lock().unwrap() += 1;
    {
        let mut fail = r.fail.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, "down".into());
        }
    }
    r.got.lock().unwrap().push((uri.to_string(), body));
    (StatusCode::OK, r.reply.lock().unwrap().clone())
}

/// Serves `r` on a free port of 127.0.0.1 (on the current tokio runtime);
/// returns its base URL.
pub async fn start_receiver(r: Receiver) -> String {
    start_receiver_at(r, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Serves `r` on `addr` (a port a config already names); returns its base URL.
pub async fn start_receiver_at(r: Receiver, addr: SocketAddr) -> String {
    let app = Router::new().route("/{*path}", post(receive)).with_state(r);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Checks a DingTalk robot request's `timestamp` and `sign` query
/// parameters as DingTalk documents them: HMAC-SHA256 of
/// `timestamp + "\n" + secret` keyed by the secret, base64, URL-encoded;
/// the timestamp (ms) within a minute of `now_ms`.
pub fn assert_dingtalk_signed(uri: &str, secret: &str, now_ms: i64) {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or("");
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            })
        })
    };
    let ts = param("timestamp").unwrap_or_else(|| panic!("no timestamp in {uri}"));
    let sign = param("sign").unwrap_or_else(|| panic!("no sign in {uri}"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}\n{secret}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(sign, expected, "DingTalk signature of {uri}");
    let ts: i64 = ts.parse().unwrap();
    assert!(
        (ts - now_ms).abs() < 60_000,
        "timestamp {ts} vs now {now_ms}"
    );
}

/// A child process killed on drop.
pub struct Peer(pub std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on 127.0.0.1:`port` (20 s at most).
pub fn wait_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Debian's python3-aiosmtpd lives in the system Python.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// A real SMTP server (aiosmtpd's Mailbox handler) on a free port, storing
/// every message in a maildir; stopped on drop.
pub struct Smtp {
    _peer: Peer,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The maildir it writes to.
    pub maildir: PathBuf,
}

impl Smtp {
    /// Starts aiosmtpd with its maildir under `dir`.
    pub fn start(dir: &Path) -> Smtp {
        let ok = std::process::Command::new(SYSTEM_PYTHON)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "python3-aiosmtpd is required (scripts/install-test-deps.sh)"
        );
        let maildir = dir.join("mail");
        let port = crate::support::free_port();
        let peer = Peer(
            std::process::Command::new(SYSTEM_PYTHON)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_port(port, "aiosmtpd");
        Smtp {
            _peer: peer,
            port,
            maildir,
        }
    }

    /// The messages delivered so far, oldest first (by modification time).
    pub fn mails(&self) -> Vec<Mail> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = dir
            .filter_map(Result::ok)
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| Mail::read(&path))
            .collect()
    }

    /// How many messages were delivered so far.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// One email, decoded by Python's `email` package (a parser independent of
/// the one infermon sends with).
#[derive(Debug, serde::Deserialize)]
pub struct Mail {
    /// Decoded `Subject`.
    pub subject: String,
    /// Decoded `To`.
    pub to: String,
    /// The top-level content type.
    pub content_type: String,
    /// (content type, decoded text) of each part.
    pub parts: Vec<(String, String)>,
}

impl Mail {
    /// Decodes the message file at `path`.
    pub fn read(path: &Path) -> Mail {
        let script = "import sys,json,email,email.policy\n\
            m=email.message_from_binary_file(open(sys.argv[1],'rb'),policy=email.policy.default)\n\
            parts=[[p.get_content_type(),p.get_content()] for p in m.iter_parts()]\n\
            print(json.dumps({'subject':str(m['Subject']),'to':str(m['To']),\
            'content_type':m.get_content_type(),'parts':parts}))";
        let out = std::process::Command::new(SYSTEM_PYTHON)
            .args(["-c", script])
            .arg(path)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The text of the part with `content_type` (empty when none).
    pub fn part(&self, content_type: &str) -> &str {
        self.parts
            .iter()
            .find(|(t, _)| t == content_type)
            .map(|(_, text)| text.as_str())
            .unwrap_or("")
    }
}
