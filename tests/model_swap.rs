//! Changing the served models while clients keep sending requests: the
//! model API (`Inference::routes`) served over real HTTP, a model folder
//! replaced by a different model, `Inference::apply` called under load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use infermon::config::ModelConfig;
use infermon::inference::Inference;
use serde_json::{Value, json};

const TEXT: &str = "the quick brown fox jumps over the lazy dog";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Replaces `dir` by a copy of a fixture as a deploy does: written beside
/// it, then renamed into place.
fn replace_dir(dir: &Path, fixture_name: &str) {
    let fresh = dir.with_extension("new");
    copy_dir(&fixture(fixture_name), &fresh);
    let old = dir.with_extension("old");
    std::fs::rename(dir, &old).expect("rename old away");
    std::fs::rename(&fresh, dir).expect("rename new in");
    std::fs::remove_dir_all(old).expect("remove old");
}

fn model(name: &str, path: &Path) -> ModelConfig {
    serde_yaml_ng::from_str(&format!("name: {name}\npath: {}", path.display())).expect("config")
}

/// Serves the model API of `inf` on 127.0.0.1; returns its base URL.
async fn serve(inf: &Inference) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = inf.routes();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = client.post(url).json(body).send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, value)
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    let r = client.get(url).send().await.expect("request");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

fn vector(v: &Value) -> Vec<f32> {
    v[0].as_array()
        .expect("one vector")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

/// One answered request: when it was sent and answered, its status and
/// its vector.
struct Answer {
    sent: Instant,
    received: Instant,
    status: u16,
    body: Value,
}

/// The old model's batches are slowed while `apply` runs (the test-delay
/// knob) and hold one request each, so requests are queued on it at the
/// switch: a swap that cut them off would fail them.
#[test]
fn swapping_the_model_folder_under_load_fails_no_request() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let delay = tmp.path().join("delay-ms");
    // SAFETY: set before this test starts any thread (nextest runs each
    // test in its own process); model queues read it when they start.
    unsafe { std::env::set_var(infermon::inference::test_delay::TEST_DELAY_ENV, &delay) };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(swap_under_load(tmp.path(), &delay));
}

async fn swap_under_load(tmp: &Path, delay: &Path) {
    let dir = tmp.join("m");
    copy_dir(&fixture("tiny-st-max-dense"), &dir);
    let mut cfg = model("m", &dir);
    // One request per batch: while one runs, the other clients' requests
    // wait in the queue, so the switch finds some accepted and not yet run.
    cfg.max_batch_requests = 1;
    let inf = Inference::load(
        std::slice::from_ref(&cfg),
        tmp,
        &prometheus::Registry::new(),
    )
    .expect("load");
    let base = serve(&inf).await;

    // What each model answers when loaded straight from its fixture folder.
    let reference = Inference::load(
        &[
            model("old", &fixture("tiny-st-max-dense")),
            model("new", &fixture("tiny-st-weightedmean-dense")),
        ],
        tmp,
        &prometheus::Registry::new(),
    )
    .expect("load references");
    let reference_base = serve(&reference).await;
    let client = reqwest::Client::new();
    let mut expected = Vec::new();
    for name in ["old", "new"] {
        let (status, body) = post(
            &client,
            &format!("{reference_base}/embed"),
            &json!({"inputs": TEXT, "model": name}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        expected.push(vector(&body));
    }
    let (old_ref, new_ref) = (expected[0].clone(), expected[1].clone());
    assert!(
        !close(&old_ref, &new_ref),
        "the two models answer differently"
    );

    // Steady load: CLIENTS clients back to back, each bounded in requests
    // and time. Half name the model, half rely on the default.
    const CLIENTS: usize = 6;
    const MAX_PER_CLIENT: usize = 5_000;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (stop, sent, client) = (stop.clone(), sent.clone(), client.clone());
        let url = format!("{base}/embed");
        let body = if c % 2 == 0 {
            json!({"inputs": TEXT, "model": "m"})
        } else {
            json!({"inputs": TEXT})
        };
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed)
                && answers.len() < MAX_PER_CLIENT
                && Instant::now() < deadline
            {
                let at = Instant::now();
                let (status, body) = post(&client, &url, &body).await;
                sent.fetch_add(1, Ordering::Relaxed);
                answers.push(Answer {
                    sent: at,
                    received: Instant::now(),
                    status,
                    body,
                });
            }
            answers
        }));
    }
    let wait_for = |n: usize| {
        let sent = sent.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(30);
            while sent.load(Ordering::Relaxed) < n {
                assert!(Instant::now() < until, "clients stalled at {n}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };

    wait_for(200).await;
    std::fs::write(delay, "40").expect("slow batches down");
    replace_dir(&dir, "tiny-st-weightedmean-dense");
    let began = Instant::now();
    let changes = inf
        .apply(std::slice::from_ref(&cfg), tmp)
        .await
        .expect("apply");
    let applied = Instant::now();
    std::fs::write(delay, "0").expect("full speed again");
    let during = sent.load(Ordering::Relaxed);
    assert_eq!(changes.replaced, ["m"], "{changes:?}");
    wait_for(during + 200).await;
    stop.store(true, Ordering::Relaxed);

    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.expect("client"));
    }
    let failed: Vec<String> = answers
        .iter()
        .filter(|a| a.status != 200)
        .map(|a| format!("{} {}", a.status, a.body))
        .collect();
    let (mut old, mut new, mut after, mut old_during) = (0, 0, 0, 0);
    for a in answers.iter().filter(|a| a.status == 200) {
        let v = vector(&a.body);
        let is_new = close(&v, &new_ref);
        assert!(
            is_new || close(&v, &old_ref),
            "an answer from neither model: {v:?}"
        );
        if a.sent >= applied {
            after += 1;
            assert!(
                is_new,
                "a request sent after apply returned got the old model"
            );
        }
        if is_new {
            new += 1;
        } else {
            old += 1;
            if a.received > began {
                old_during += 1;
            }
        }
    }
    println!(
        "{} requests by {CLIENTS} clients, {} failed; {old} answered by the old model \
         ({old_during} of them while apply ran), {new} by the new, {after} sent after apply \
         returned; apply took {:?}",
        answers.len(),
        failed.len(),
        applied - began,
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        old_during > 0 && after > 0,
        "requests were in flight on the old model during apply, and sent after it"
    );
    reference.stop().await;
    inf.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_info_and_model_list_follow_the_applied_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = model("a", &fixture("tiny-st-max-dense"));
    let b = model("b", &fixture("tiny-st-mean-sqrt-len"));
    let inf = Inference::load(
        std::slice::from_ref(&a),
        tmp.path(),
        &prometheus::Registry::new(),
    )
    .expect("load");
    let base = serve(&inf).await;
    let client = reqwest::Client::new();
    let names = |v: &Value, list: &str, key: &str| -> Vec<String> {
        v[list]
            .as_array()
            .expect("list")
            .iter()
            .map(|m| m[key].as_str().expect("name").to_string())
            .collect()
    };

    let (status, body) = post(
        &client,
        &format!("{base}/embed"),
        &json!({"inputs": "x", "model": "b"}),
    )
    .await;
    assert_eq!(
        (status, body["error_type"].as_str()),
        (404, Some("model_not_found"))
    );

    let changes = inf
        .apply(&[a.clone(), b.clone()], tmp.path())
        .await
        .expect("apply");
    assert_eq!(
        (changes.added, changes.unchanged),
        (vec!["b".to_string()], vec!["a".to_string()])
    );
    for (route, body) in [
        ("/embed", json!({"inputs": "x", "model": "b"})),
        ("/v1/embeddings", json!({"input": "x", "model": "b"})),
    ] {
        let (status, answer) = post(&client, &format!("{base}{route}"), &body).await;
        assert_eq!(status, 200, "{route}: {answer}");
    }
    let info = get(&client, &format!("{base}/info")).await;
    assert_eq!(names(&info, "models", "name"), ["a", "b"]);
    let list = get(&client, &format!("{base}/v1/models")).await;
    assert_eq!(list["object"], "list");
    assert_eq!(names(&list, "data", "id"), ["a", "b"]);

    // b first: it becomes the default; then a removed.
    let changes = inf
        .apply(std::slice::from_ref(&b), tmp.path())
        .await
        .expect("apply");
    assert_eq!(changes.removed, ["a"]);
    let (status, body) = post(
        &client,
        &format!("{base}/v1/embeddings"),
        &json!({"input": "x"}),
    )
    .await;
    assert_eq!((status, body["model"].as_str()), (200, Some("b")), "{body}");
    for (route, body) in [
        ("/embed", json!({"inputs": "x", "model": "a"})),
        ("/v1/embeddings", json!({"input": "x", "model": "a"})),
    ] {
        let (status, answer) = post(&client, &format!("{base}{route}"), &body).await;
        assert_eq!(status, 404, "{route}: {answer}");
        assert_eq!(answer["error_type"], "model_not_found");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| e.contains("available: b")),
            "{answer}"
        );
    }
    let info = get(&client, &format!("{base}/info")).await;
    assert_eq!(names(&info, "models", "name"), ["b"]);
    assert_eq!(info["name"], "b");
    let list = get(&client, &format!("{base}/v1/models")).await;
    assert_eq!(names(&list, "data", "id"), ["b"]);
    inf.stop().await;
}
