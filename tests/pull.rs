//! `infermon pull` and `models[].hf_repo` against a small hub on 127.0.0.1
//! that speaks the Hugging Face API (`/api/models/{repo}/revision/{rev}`
//! with `?blobs=true` siblings, `/{repo}/resolve/{rev}/{file}` with Range
//! requests, ETag / X-Linked-Etag) and serves a fixture folder plus the
//! copies a model does not need. No network.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{TestServer, binary, client, cosine, fixture, fixture_json, floats};

const TOKEN: &str = "hf_test_token_123";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// How the fake hub misbehaves.
#[derive(Clone, Default)]
struct Mode {
    /// Files whose first download breaks off halfway, each with the `.part`
    /// file the client writes: the connection breaks once that holds the
    /// first half (bytes still in the server's buffers would be lost).
    drop_first: Vec<(String, PathBuf)>,
    /// Files served with one byte changed (same length).
    tampered: Vec<String>,
    /// Files served with bytes after their end.
    longer: Vec<String>,
    /// Files whose body never finishes.
    stall: Vec<String>,
    /// Answer the listing without sizes and LFS oids (mirrors that ignore
    /// `?blobs=true`), so the checksum comes from X-Linked-Etag.
    no_blobs: bool,
}

/// One request the hub saw: path, Range header, Authorization header.
type Seen = (String, Option<String>, Option<String>);

struct Hub {
    files: BTreeMap<String, Vec<u8>>,
    mode: Mode,
    dropped: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
}

fn is_lfs(name: &str) -> bool {
    [".safetensors", ".bin", ".onnx", ".h5", ".msgpack"]
        .iter()
        .any(|e| name.ends_with(e))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The git blob id the hub lists as `blobId`: SHA-1 of `blob {len}\0` +
/// content (for an LFS file, of its pointer file).
fn blob_id(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

impl Hub {
    fn record(&self, path: &str, headers: &HeaderMap) {
        let h = |n: header::HeaderName| headers.get(n).map(|v| v.to_str().unwrap().to_string());
        self.seen.lock().unwrap().push((
            path.to_string(),
            h(header::RANGE),
            h(header::AUTHORIZATION),
        ));
    }
}

async fn listing(
    State(hub): State<Arc<Hub>>,
    UrlPath((org, name, rev)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    hub.record(
        &format!("/api/models/{org}/{name}/revision/{rev}"),
        &headers,
    );
    if org != "org" || name != "tiny" {
        return (
            StatusCode::NOT_FOUND,
            "{\"error\":\"Repository not found\"}",
        )
            .into_response();
    }
    let siblings: Vec<Value> = hub
        .files
        .iter()
        .map(|(f, bytes)| {
            if hub.mode.no_blobs {
                json!({"rfilename": f})
            } else if is_lfs(f) {
                let pointer = format!(
                    "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
                    sha256(bytes),
                    bytes.len()
                );
                json!({"rfilename": f, "size": bytes.len(), "blobId": blob_id(pointer.as_bytes()),
                       "lfs": {"sha256": sha256(bytes), "size": bytes.len(), "pointerSize": pointer.len()}})
            } else {
                json!({"rfilename": f, "size": bytes.len(), "blobId": blob_id(bytes)})
            }
        })
        .collect();
    axum::Json(json!({"id": "org/tiny", "sha": COMMIT, "siblings": siblings})).into_response()
}

async fn resolve(
    State(hub): State<Arc<Hub>>,
    UrlPath((org, name, rev, file)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    hub.record(&format!("/{org}/{name}/resolve/{rev}/{file}"), &headers);
    let Some(original) = hub.files.get(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut bytes = original.clone();
    if hub.mode.tampered.contains(&file) {
        bytes[0] ^= 0xff;
    }
    if hub.mode.longer.contains(&file) {
        bytes.extend_from_slice(b"and more");
    }
    let etag = if is_lfs(&file) {
        // The oid of the file the hub lists, not of what is served.
        format!("\"{}\"", sha256(original))
    } else {
        "\"5b2c1f0e9d4a3b2c1f0e9d4a3b2c1f0e9d4a3b2c\"".to_string()
    };
    let from: usize = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let total = bytes.len();
    let mut response = Response::builder()
        .header(header::ETAG, &etag)
        .header("x-repo-commit", COMMIT);
    if is_lfs(&file) {
        response = response.header("x-linked-etag", &etag);
    }
    let response = if from > 0 {
        response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {from}-{}/{total}", total - 1),
        )
    } else {
        response.status(StatusCode::OK)
    };
    let body = bytes[from.min(total)..].to_vec();
    let drop = {
        let mut dropped = hub.dropped.lock().unwrap();
        let part = hub
            .mode
            .drop_first
            .iter()
            .find(|(f, _)| *f == file && !dropped.contains(f))
            .map(|(_, part)| part.clone());
        if part.is_some() {
            dropped.push(file.clone());
        }
        part
    };
    if hub.mode.stall.contains(&file) {
        let half = Bytes::from(body[..body.len() / 2].to_vec());
        let stream = futures::StreamExt::chain(
            futures::stream::iter(vec![Ok::<_, std::io::Error>(half)]),
            futures::stream::pending(),
        );
        return response
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from_stream(stream))
            .unwrap();
    }
    if let Some(part) = drop {
        // Half the body; once the client has written it, the connection breaks.
        let half = body.len() / 2;
        let first = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(
            body[..half].to_vec(),
        ))]);
        let then_break = futures::stream::once(async move {
            for _ in 0..500 {
                if std::fs::metadata(&part).is_ok_and(|m| m.len() >= half as u64) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(std::io::Error::other("connection dropped by the test hub"))
        });
        return response
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from_stream(futures::StreamExt::chain(
                first, then_break,
            )))
            .unwrap();
    }
    response
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

/// The fake hub serving `tiny-st-max-dense` as `org/tiny` plus what a
/// model does not need; runs until the returned runtime is dropped.
fn start_hub(mode: Mode) -> (tokio::runtime::Runtime, String, Arc<Hub>) {
    let mut files = BTreeMap::new();
    fn add(dir: &Path, prefix: &str, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.path().is_dir() {
                add(&entry.path(), &format!("{name}/"), files);
            } else if name != "reference.json" {
                files.insert(name, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    add(&fixture("tiny-st-max-dense"), "", &mut files);
    for junk in [
        "onnx/model.onnx",
        "openvino/openvino_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "pytorch_model.bin",
        "README.md",
    ] {
        files.insert(junk.to_string(), b"not needed".to_vec());
    }
    let hub = Arc::new(Hub {
        files,
        mode,
        dropped: Mutex::default(),
        seen: Mutex::default(),
    });
    let app = Router::new()
        .route("/api/models/{org}/{name}/revision/{rev}", get(listing))
        .route("/{org}/{name}/resolve/{rev}/{*file}", get(resolve))
        .with_state(hub.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await });
    (runtime, url, hub)
}

fn pull(endpoint: &str, spec: &str, dir: &Path) -> Output {
    Command::new(binary())
        .args(["pull", spec, "--dir"])
        .arg(dir)
        .env("HF_ENDPOINT", format!("{endpoint}/"))
        .env("HF_TOKEN", TOKEN)
        .env("HOME", dir)
        .env_remove("HF_HOME")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The files a model needs, as `needed` lists them, compared byte for byte.
fn assert_same_files(dir: &Path, hub: &Hub, needed: &[&str]) {
    let mut on_disk = Vec::new();
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.path().is_dir() {
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }
    walk(dir, "", &mut on_disk);
    on_disk.sort();
    let mut want: Vec<String> = needed.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(on_disk, want);
    for f in needed {
        assert!(
            std::fs::read(dir.join(f)).unwrap() == hub.files[*f],
            "{f} differs"
        );
    }
}

const NEEDED: [&str; 11] = [
    "config.json",
    "config_sentence_transformers.json",
    "model.safetensors",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "1_Pooling/config.json",
    "2_Dense/config.json",
    "2_Dense/model.safetensors",
    "3_Normalize/config.json",
];

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn pull_fetches_only_what_the_model_needs_and_resumes_an_interrupted_download() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("tiny.download/model.safetensors.part");
    let (_rt, endpoint, hub) = start_hub(Mode {
        drop_first: vec![("model.safetensors".into(), part)],
        ..Mode::default()
    });
    let out = pull(&endpoint, "org/tiny", dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let model = dir.path().join("tiny");
    assert_same_files(&model, &hub, &NEEDED);
    assert!(!dir.path().join("tiny.download").exists());

    let seen = hub.seen.lock().unwrap().clone();
    // Every request carried the token; the listing asked for blob details.
    assert!(
        seen.iter()
            .all(|(_, _, auth)| auth.as_deref() == Some(&format!("Bearer {TOKEN}"))),
        "{seen:?}"
    );
    // Nothing the model does not need was fetched, and files came from the listed commit.
    let fetched: Vec<&str> = seen
        .iter()
        .filter_map(|(p, _, _)| p.strip_prefix(&format!("/org/tiny/resolve/{COMMIT}/")))
        .collect();
    for junk in [
        "onnx",
        "openvino",
        "tf_model",
        "flax",
        "pytorch_model.bin",
        "README",
    ] {
        assert!(!fetched.iter().any(|f| f.contains(junk)), "{fetched:?}");
    }
    // The broken download was continued from where it stopped.
    let weights: Vec<&Seen> = seen
        .iter()
        .filter(|(p, _, _)| p.ends_with(&format!("/resolve/{COMMIT}/model.safetensors")))
        .collect();
    let size = hub.files["model.safetensors"].len();
    assert_eq!(weights.len(), 2, "{weights:?}");
    assert_eq!(weights[0].1, None);
    assert_eq!(
        weights[1].1.as_deref(),
        Some(format!("bytes={}-", size / 2).as_str()),
        "{weights:?}"
    );

    // A second pull leaves the complete folder alone.
    let again = pull(&endpoint, "org/tiny", dir.path());
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already exists"));

    // Unknown repositories fail with a hint, and nothing is written.
    let missing = pull(&endpoint, "org/absent", dir.path());
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("404") && stderr(&missing).contains("no such model"),
        "{}",
        stderr(&missing)
    );
    assert!(!dir.path().join("absent").exists());
}

#[test]
fn a_file_whose_checksum_does_not_match_is_refused_and_deleted() {
    // The listing's LFS oid, and (for a mirror without it) X-Linked-Etag.
    for no_blobs in [false, true] {
        let (_rt, endpoint, _hub) = start_hub(Mode {
            tampered: vec!["2_Dense/model.safetensors".into()],
            no_blobs,
            ..Mode::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let out = pull(&endpoint, "org/tiny", dir.path());
        let log = stderr(&out);
        assert!(!out.status.success(), "no_blobs {no_blobs}: {log}");
        assert!(
            log.contains("2_Dense/model.safetensors") && log.contains("sha256"),
            "{log}"
        );
        assert_nothing_kept(dir.path());
    }
    // A file longer than listed is cut off as soon as it overflows.
    let (_rt, endpoint, _hub) = start_hub(Mode {
        longer: vec!["2_Dense/model.safetensors".into()],
        ..Mode::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = pull(&endpoint, "org/tiny", dir.path());
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("2_Dense/model.safetensors") && log.contains("more than the listed"),
        "{log}"
    );
    assert_nothing_kept(dir.path());
}

#[test]
fn a_small_file_whose_git_blob_id_does_not_match_is_refused_and_deleted() {
    // Non-LFS files (config, tokenizer, modules.json) have no sha256; the
    // listing's blobId is their git SHA-1. One changed byte, same length.
    let (_rt, endpoint, _hub) = start_hub(Mode {
        tampered: vec!["modules.json".into()],
        ..Mode::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = pull(&endpoint, "org/tiny", dir.path());
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("modules.json") && log.contains("git blob id"),
        "{log}"
    );
    assert!(!dir.path().join("tiny").exists(), "no model folder");
    let staged = dir.path().join("tiny.download");
    assert!(!staged.join("modules.json").exists());
    assert!(!staged.join("modules.json.part").exists());
    // Untampered, the same files pass the check (LFS files keep their
    // sha256: their blobId is the pointer's).
    let (_rt, endpoint, hub) = start_hub(Mode::default());
    let dir = tempfile::tempdir().unwrap();
    let out = pull(&endpoint, "org/tiny", dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let got = std::fs::read(dir.path().join("tiny/modules.json")).unwrap();
    assert_eq!(got, hub.files["modules.json"]);
}

/// Neither the model folder nor the refused file (final or .part) exists.
fn assert_nothing_kept(dir: &Path) {
    assert!(!dir.join("tiny").exists(), "no model folder");
    let staged = dir.join("tiny.download/2_Dense");
    assert!(!staged.join("model.safetensors").exists());
    assert!(!staged.join("model.safetensors.part").exists());
}

#[test]
fn hf_repo_is_downloaded_at_start_then_served() {
    let (_rt, endpoint, hub) = start_hub(Mode::default());
    let endpoint_var = PathBuf::from(&endpoint);
    let s = TestServer::start_with_env(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n  - name: tiny\n    path: {dir}/models/tiny\n    hf_repo: org/tiny@main\n",
        &[("HF_ENDPOINT", endpoint_var.as_path())],
    );
    assert_same_files(&s.dir.path().join("models/tiny"), &hub, &NEEDED);
    let refs = fixture_json("tiny-st-max-dense/reference.json");
    let r = client()
        .post(s.url("/embed"))
        .json(&json!({"inputs": refs["texts"][0]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = floats(&r.json::<Value>().unwrap()[0]);
    let want = floats(&refs["normalized"][0]);
    assert!(cosine(&got, &want) >= 0.9999, "{got:?}");
    // The revision asked for is the one listed.
    let seen = hub.seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|(p, _, _)| p == "/api/models/org/tiny/revision/main"),
        "{seen:?}"
    );
}

#[test]
fn without_hf_token_the_token_file_under_hf_home_is_sent() {
    let (_rt, endpoint, hub) = start_hub(Mode::default());
    let dir = tempfile::tempdir().unwrap();
    let hf_home = dir.path().join("hf-home");
    std::fs::create_dir_all(&hf_home).unwrap();
    std::fs::write(hf_home.join("token"), "hf_from_file\n").unwrap();
    let out = Command::new(binary())
        .args(["pull", "org/tiny@main", "--dir"])
        .arg(dir.path().join("models"))
        .env("HF_ENDPOINT", &endpoint)
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env("HF_HOME", &hf_home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("models/tiny/config.json").is_file());
    let seen = hub.seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|(_, _, auth)| auth.as_deref() == Some("Bearer hf_from_file")),
        "{seen:?}"
    );
}

#[test]
fn a_stop_signal_ends_a_download_at_start() {
    let (_rt, endpoint, hub) = start_hub(Mode {
        stall: vec!["model.safetensors".into()],
        ..Mode::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("infermon.yml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\nstorage:\n  path: {d}/data\nmodels:\n  - name: tiny\n    path: {d}/models/tiny\n    hf_repo: org/tiny\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    /// Kills the server if the test fails before it exits.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Child(
        Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env("HF_ENDPOINT", &endpoint)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stalled = format!("/org/tiny/resolve/{COMMIT}/model.safetensors");
    support::wait_for(
        "the download to reach the weights",
        std::time::Duration::from_secs(30),
        || {
            let seen = hub.seen.lock().unwrap();
            if seen.iter().any(|(p, _, _)| *p == stalled) {
                Ok(())
            } else {
                Err(format!("{} requests so far", seen.len()))
            }
        },
    );
    // SAFETY: kill(2) on the child this test started; no memory is involved.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let status = support::wait_for(
        "infermon to exit after SIGTERM",
        std::time::Duration::from_secs(10),
        || {
            child
                .0
                .try_wait()
                .unwrap()
                .ok_or_else(|| "still running".to_string())
        },
    );
    let mut log = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.contains("next start resumes"), "{log}");
    assert!(!dir.path().join("models/tiny").exists());
}
