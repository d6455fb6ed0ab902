//! The model server end to end: the real binary with all-MiniLM-L6-v2 and
//! the two tiny reranker fixtures, checked against the reference outputs of
//! sentence-transformers / transformers in `tests/fixtures`.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{TestServer, client, cosine, fixture_json, floats, max_abs, repo_root};

/// MiniLM, the tiny cross-encoder and the tiny Qwen3 reranker, with a small
/// client batch limit so the 422 is cheap to reach.
const THREE_MODELS: &str = r#"
server:
  listen: 127.0.0.1:0
models:
  - name: minilm
    path: {repo}/models/all-MiniLM-L6-v2
    max_client_batch_size: 16
  - name: cross
    path: {repo}/tests/fixtures/tiny-cross-encoder
  - name: qwen
    path: {repo}/tests/fixtures/tiny-qwen3-reranker
"#;

fn post(s: &TestServer, path: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = client()
        .post(s.url(path))
        .json(body)
        .send()
        .expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().expect("body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: not JSON ({status}): {text}"));
    (status, value, headers)
}

fn ok(s: &TestServer, path: &str, body: &Value) -> Value {
    let (status, value, _) = post(s, path, body);
    assert_eq!(status, 200, "{path} {body}: {value}");
    value
}

#[test]
fn minilm_matches_sentence_transformers_batched_and_single() {
    let s = TestServer::start(THREE_MODELS);
    let refs = fixture_json("minilm-reference-embeddings.json");
    let items = refs["items"].as_array().expect("items");
    let texts: Vec<&str> = items
        .iter()
        .map(|i| i["text"].as_str().expect("text"))
        .collect();

    let (status, batched, headers) =
        post(&s, "/embed", &json!({"inputs": texts, "truncate": true}));
    assert_eq!(status, 200, "{batched}");
    for h in [
        "x-queue-time",
        "x-tokenization-time",
        "x-inference-time",
        "x-total-time",
    ] {
        let v: f64 = headers[h]
            .to_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{h} not a number"));
        assert!(v >= 0.0, "{h}");
    }
    let batched = batched.as_array().expect("list");
    assert_eq!(batched.len(), texts.len());
    let (mut worst_cos, mut worst_abs) = (1f32, 0f32);
    for (item, got) in items.iter().zip(batched) {
        let want = floats(&item["embedding"]);
        let got = floats(got);
        let text = item["text"].as_str().unwrap();
        worst_cos = worst_cos.min(cosine(&want, &got));
        worst_abs = worst_abs.max(max_abs(&want, &got));
        assert!(cosine(&want, &got) >= 0.9999, "cosine for {text:?}");
        assert!(
            max_abs(&want, &got) <= 2e-4,
            "max abs diff {} for {text:?}",
            max_abs(&want, &got)
        );
        // One text alone must give the same vector as inside the batch.
        let single = ok(&s, "/embed", &json!({"inputs": text, "truncate": true}));
        let single = floats(&single[0]);
        assert!(
            max_abs(&single, &got) <= 1e-5,
            "batched vs single {} for {text:?}",
            max_abs(&single, &got)
        );
    }
    eprintln!(
        "MiniLM vs sentence-transformers: worst cosine {worst_cos}, worst max abs diff {worst_abs}"
    );

    // OpenAI shape, float and base64, and Matryoshka dimensions.
    let r = ok(
        &s,
        "/v1/embeddings",
        &json!({"input": [texts[0], texts[1]], "model": "minilm"}),
    );
    assert_eq!(r["object"], "list");
    assert_eq!(r["model"], "minilm");
    assert!(r["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(r["data"][1]["index"], 1);
    assert!(
        max_abs(
            &floats(&r["data"][1]["embedding"]),
            &floats(&items[1]["embedding"])
        ) <= 2e-4
    );
    let r = ok(
        &s,
        "/v1/embeddings",
        &json!({"input": texts[0], "encoding_format": "base64"}),
    );
    let b64 = r["data"][0]["embedding"].as_str().expect("base64 string");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(max_abs(&decoded, &floats(&items[0]["embedding"])) <= 2e-4);
    let r = ok(
        &s,
        "/v1/embeddings",
        &json!({"input": texts[0], "dimensions": 64}),
    );
    let cut = floats(&r["data"][0]["embedding"]);
    assert_eq!(cut.len(), 64);
    assert!(
        (cut.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4,
        "re-normalized"
    );

    // Unnormalized TEI output is the raw mean pooling: same direction.
    let raw = ok(
        &s,
        "/embed",
        &json!({"inputs": texts[0], "normalize": false}),
    );
    assert!(cosine(&floats(&raw[0]), &floats(&items[0]["embedding"])) >= 0.9999);

    // /tokenize and /info.
    let toks = ok(&s, "/tokenize", &json!({"inputs": "Hello, world!"}));
    let toks = toks[0].as_array().expect("tokens");
    assert_eq!(toks.first().unwrap()["text"], "[CLS]");
    assert_eq!(toks.first().unwrap()["special"], true);
    assert_eq!(toks[1]["text"], "Hello", "the slice of the input, as TEI");
    assert_eq!(toks[1]["start"], 0);
    assert_eq!(toks[1]["stop"], 5);
    let info: Value = client().get(s.url("/info")).send().unwrap().json().unwrap();
    assert_eq!(
        info["max_input_length"], 256,
        "sentence_bert_config.json, not the tokenizer's 128"
    );
    assert_eq!(info["model_type"]["embedding"]["pooling"], "mean");
    assert_eq!(info["models"].as_array().unwrap().len(), 3);
}

/// Checks /rerank (raw and sigmoid, sorted) and /v1/rerank against a
/// reference file whose cases list (text, score[, raw_score]).
fn check_reranker(s: &TestServer, model: &str, refs: &Value) {
    for case in refs["cases"].as_array().expect("cases") {
        let query = case["query"].as_str().unwrap();
        let results = case["results"].as_array().unwrap();
        let texts: Vec<&str> = results
            .iter()
            .map(|r| r["text"].as_str().unwrap())
            .collect();
        let scored = ok(
            s,
            "/rerank",
            &json!({"model": model, "query": query, "texts": texts, "return_text": true, "truncate": true}),
        );
        let scored = scored.as_array().unwrap();
        assert_eq!(scored.len(), texts.len());
        let scores: Vec<f64> = scored
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "sorted best first: {scores:?}"
        );
        for r in scored {
            let i = r["index"].as_u64().unwrap() as usize;
            assert_eq!(r["text"], texts[i]);
            let want = results[i]["score"].as_f64().unwrap();
            let got = r["score"].as_f64().unwrap();
            assert!(
                (want - got).abs() <= 1e-4,
                "{model} score of {:?}: {got} vs {want}",
                texts[i]
            );
        }
        let raw = ok(
            s,
            "/rerank",
            &json!({"model": model, "query": query, "texts": texts, "raw_scores": true, "truncate": true}),
        );
        for r in raw.as_array().unwrap() {
            let i = r["index"].as_u64().unwrap() as usize;
            let got = r["score"].as_f64().unwrap();
            let (want, tolerance) = match results[i].get("raw_score") {
                Some(raw) => (raw.as_f64().unwrap(), 1e-4),
                // Qwen3: softmax([no, yes])[1] = sigmoid(raw), so raw is its
                // log-odds; the 6-digit rounding of the reference grows by
                // 1/(p(1-p)) through the logit.
                None => {
                    let p = results[i]["score"].as_f64().unwrap();
                    ((p / (1.0 - p)).ln(), 1e-3)
                }
            };
            assert!(
                (want - got).abs() <= tolerance,
                "{model} raw score of {:?}: {got} vs {want}",
                texts[i]
            );
            // Each pair alone equals the pair inside the batch.
            let single = ok(
                s,
                "/rerank",
                &json!({"model": model, "query": query, "texts": [texts[i]], "raw_scores": true, "truncate": true}),
            );
            let single = single[0]["score"].as_f64().unwrap();
            assert!(
                (single - got).abs() <= 1e-5,
                "{model} batched vs single: {got} vs {single}"
            );
        }
        let cohere = ok(
            s,
            "/v1/rerank",
            &json!({"model": model, "query": query, "documents": texts, "top_n": 2, "return_documents": true}),
        );
        let top = cohere["results"].as_array().unwrap();
        assert_eq!(top.len(), 2.min(texts.len()));
        let i = top[0]["index"].as_u64().unwrap() as usize;
        assert_eq!(top[0]["document"]["text"], texts[i]);
        let best = results
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!((top[0]["relevance_score"].as_f64().unwrap() - best).abs() <= 1e-4);
        assert!(cohere["usage"]["total_tokens"].as_u64().unwrap() > 0);
    }
}

#[test]
fn rerankers_match_transformers_raw_and_sigmoid() {
    let s = TestServer::start(THREE_MODELS);
    check_reranker(
        &s,
        "cross",
        &fixture_json("tiny-cross-encoder/reference-scores.json"),
    );
    let qwen = fixture_json("tiny-qwen3-reranker/reference-scores.json");
    check_reranker(&s, "qwen", &qwen);

    // The prompt is built exactly as the reference: token counts agree.
    let case = &qwen["cases"][0];
    let r = &case["results"][0];
    let usage = ok(
        &s,
        "/v1/rerank",
        &json!({"model": "qwen", "query": case["query"], "documents": [r["text"]]}),
    );
    assert_eq!(usage["usage"]["total_tokens"], r["n_tokens"]);
    // A per-request instruction changes the prompt; the default one does not.
    let body = |instruction: Option<&str>| {
        let mut b = json!({"model": "qwen", "query": case["query"], "texts": [r["text"]]});
        if let Some(i) = instruction {
            b["instruction"] = json!(i);
        }
        ok(&s, "/rerank", &b)[0]["score"].as_f64().unwrap()
    };
    let default = body(None);
    assert!((body(Some(qwen["default_instruction"].as_str().unwrap())) - default).abs() < 1e-7);
    assert!((body(Some("Find passages about fruit")) - default).abs() > 1e-6);
}

#[test]
fn bad_inputs_get_json_4xx_and_nothing_else_breaks() {
    let s = TestServer::start(THREE_MODELS);
    let long = "latency ".repeat(400);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/embed", json!({"inputs": []}), 422, "empty"),
        ("/embed", json!({"inputs": 42}), 422, "invalid request"),
        ("/embed", json!({"input": "wrong field"}), 422, "inputs"),
        (
            "/embed",
            json!({"inputs": vec!["a"; 17]}),
            422,
            "max_client_batch_size",
        ),
        ("/embed", json!({"inputs": long}), 413, "tokens"),
        (
            "/embed",
            json!({"inputs": "x", "model": "cross"}),
            400,
            "cannot embed",
        ),
        (
            "/embed",
            json!({"inputs": "x", "model": "nope"}),
            404,
            "minilm, cross, qwen",
        ),
        (
            "/embed",
            json!({"inputs": "x", "dimensions": 1000}),
            422,
            "dimensions",
        ),
        ("/rerank", json!({"query": "q", "texts": []}), 422, "empty"),
        (
            "/rerank",
            json!({"query": "q", "texts": ["a"], "model": "minilm"}),
            400,
            "cannot rerank",
        ),
        ("/rerank", json!({"query": "q"}), 422, "texts"),
        (
            "/rerank",
            json!({"query": "q", "texts": [long], "model": "cross"}),
            413,
            "tokens",
        ),
        (
            "/v1/embeddings",
            json!({"input": "x", "encoding_format": "int8"}),
            422,
            "encoding_format",
        ),
        (
            "/v1/embeddings",
            json!({"input": [[1, 2, 3]]}),
            422,
            "invalid request",
        ),
        (
            "/v1/embeddings",
            json!({"input": "x", "model": "qwen"}),
            400,
            "cannot embed",
        ),
        (
            "/v1/rerank",
            json!({"query": "q", "documents": [], "model": "cross"}),
            422,
            "empty",
        ),
        ("/tokenize", json!({"inputs": []}), 422, "empty"),
    ];
    for (path, body, want, needle) in cases {
        let (status, value, _) = post(&s, path, &body);
        assert_eq!(status, want, "{path} {body}: {value}");
        let message = value["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} {body}: no error field: {value}"));
        assert!(value["error_type"].is_string(), "{value}");
        assert!(
            message.contains(needle),
            "{path} {body}: {message:?} should mention {needle:?}"
        );
    }
    // The 413 names both lengths.
    let (_, value, _) = post(&s, "/embed", &json!({"inputs": long}));
    let message = value["error"].as_str().unwrap();
    assert!(
        message.contains("802") && message.contains("256"),
        "{message}"
    );

    // Bodies that are not JSON at all.
    let raw = |body: Vec<u8>| {
        let r = client()
            .post(s.url("/embed"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().expect("JSON error body");
        (status, v)
    };
    let (status, v) = raw(b"{\"inputs\": ".to_vec());
    assert_eq!(status, 400, "{v}");
    let (status, v) = raw(b"{\"inputs\": \"\xff\xfe\"}".to_vec());
    assert_eq!(status, 400, "non-UTF-8: {v}");
    let r = client()
        .post(s.url("/embed"))
        .body("{\"inputs\": \"x\"}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);

    // Truncation on request works, and the server is still healthy.
    let v = ok(
        &s,
        "/embed",
        &json!({"inputs": long, "truncate": true, "truncation_direction": "Left"}),
    );
    assert_eq!(v[0].as_array().unwrap().len(), 384);
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!metrics.contains("status=\"500\""), "no 5xx");
    assert!(
        metrics.contains("infermon_embedding_input_truncated_total{model=\"minilm\"} 1"),
        "{metrics}"
    );
}

/// Reads one sample value from the exposition text.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no sample {series} in\n{metrics}"))
        .trim()
        .parse()
        .expect("number")
}

#[test]
fn metrics_count_exactly_after_a_known_sequence() {
    let s = TestServer::start(THREE_MODELS);
    ok(&s, "/embed", &json!({"inputs": ["one", "two", "three"]}));
    ok(&s, "/embed", &json!({"inputs": "four"}));
    ok(&s, "/v1/embeddings", &json!({"input": ["five", "six"]}));
    ok(
        &s,
        "/rerank",
        &json!({"model": "cross", "query": "q", "texts": ["a", "b", "c"]}),
    );
    ok(
        &s,
        "/v1/rerank",
        &json!({"model": "qwen", "query": "q", "documents": ["a", "b"]}),
    );
    assert_eq!(post(&s, "/embed", &json!({"inputs": []})).0, 422);
    assert_eq!(
        post(&s, "/embed", &json!({"inputs": "x", "model": "nope"})).0,
        404
    );

    let m = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let r = "infermon_inference_requests_total";
    assert_eq!(
        sample(
            &m,
            &format!("{r}{{model=\"minilm\",route=\"/embed\",status=\"200\"}}")
        ),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("{r}{{model=\"minilm\",route=\"/embed\",status=\"422\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("{r}{{model=\"none\",route=\"/embed\",status=\"404\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("{r}{{model=\"minilm\",route=\"/v1/embeddings\",status=\"200\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("{r}{{model=\"cross\",route=\"/rerank\",status=\"200\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("{r}{{model=\"qwen\",route=\"/v1/rerank\",status=\"200\"}}")
        ),
        1.0
    );
    let e = "infermon_inference_errors_total";
    assert_eq!(
        sample(
            &m,
            &format!("{e}{{error_type=\"validation\",model=\"minilm\",route=\"/embed\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            &format!("{e}{{error_type=\"model_not_found\",model=\"none\",route=\"/embed\"}}")
        ),
        1.0
    );
    // Six MiniLM inputs went through the model, in batches summing to six.
    assert_eq!(
        sample(
            &m,
            "infermon_inference_input_tokens_count{model=\"minilm\"}"
        ),
        6.0
    );
    assert_eq!(
        sample(&m, "infermon_inference_batch_size_sum{model=\"minilm\"}"),
        6.0
    );
    assert_eq!(
        sample(&m, "infermon_inference_input_tokens_sum{model=\"minilm\"}"),
        18.0,
        "each word is [CLS] w [SEP]"
    );
    assert_eq!(
        sample(
            &m,
            "infermon_inference_total_duration_seconds_count{model=\"minilm\",route=\"/embed\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &m,
            "infermon_inference_queue_duration_seconds_count{model=\"minilm\",route=\"/v1/embeddings\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "infermon_inference_tokenization_duration_seconds_count{model=\"cross\",route=\"/rerank\"}"
        ),
        1.0
    );
    assert!(
        sample(
            &m,
            "infermon_inference_compute_duration_seconds_count{model=\"minilm\"}"
        ) >= 1.0
    );
    assert_eq!(
        sample(&m, "infermon_rerank_score_count{model=\"cross\"}"),
        3.0
    );
    assert_eq!(
        sample(&m, "infermon_rerank_score_count{model=\"qwen\"}"),
        2.0
    );
    // All three cross-encoder scores are about 0.06: in the 0.1 bucket.
    assert_eq!(
        sample(
            &m,
            "infermon_rerank_score_bucket{model=\"cross\",le=\"0.1\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            "infermon_embedding_input_truncated_total{model=\"minilm\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(&m, "infermon_inference_queue_depth{model=\"minilm\"}"),
        0.0
    );
    assert_eq!(
        sample(&m, "infermon_inference_in_flight{model=\"minilm\"}"),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            "infermon_model_info{architecture=\"BertModel\",device=\"cpu\",dtype=\"f32\",model=\"minilm\",task=\"embed\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "infermon_model_info{architecture=\"Qwen3ForCausalLM\",device=\"cpu\",dtype=\"f32\",model=\"qwen\",task=\"rerank\"}"
        ),
        1.0
    );
    assert!(sample(&m, "infermon_model_load_seconds{model=\"minilm\"}") > 0.0);
}

#[test]
fn overload_answers_429_at_once_and_the_queue_stays_bounded() {
    let s = TestServer::start(
        r#"
server:
  listen: 127.0.0.1:0
models:
  - name: minilm
    path: {repo}/models/all-MiniLM-L6-v2
    max_concurrent_requests: 2
    max_batch_requests: 4
"#,
    );
    // Enough work per request that the two admitted ones are still running
    // while the other ten arrive (debug builds are slow, so keep it modest).
    let text = "The GPU memory usage crossed 90 percent during the nightly batch job.";
    let inputs: Vec<String> = (0..16).map(|i| format!("{i} {text}")).collect();
    let body = json!({"inputs": inputs});
    let max_depth = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let started = Instant::now();
    let statuses: Vec<(u16, Value, Duration)> = std::thread::scope(|scope| {
        let watcher = {
            let max_depth = max_depth.clone();
            let url = s.url("/metrics");
            scope.spawn(move || {
                let c = client();
                while started.elapsed() < Duration::from_secs(3) {
                    if let Ok(m) = c.get(&url).send().and_then(|r| r.text()) {
                        let d = sample(&m, "infermon_inference_in_flight{model=\"minilm\"}") as i64;
                        max_depth.fetch_max(d, std::sync::atomic::Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let handles: Vec<_> = (0..12)
            .map(|_| {
                let body = body.clone();
                let s = &s;
                scope.spawn(move || {
                    let t = Instant::now();
                    let (status, value, _) = post(s, "/embed", &body);
                    (status, value, t.elapsed())
                })
            })
            .collect();
        let out = handles.into_iter().map(|h| h.join().unwrap()).collect();
        watcher.join().unwrap();
        out
    });
    let refused: Vec<_> = statuses.iter().filter(|(s, _, _)| *s == 429).collect();
    let served = statuses.iter().filter(|(s, _, _)| *s == 200).count();
    assert!(
        !refused.is_empty(),
        "12 concurrent requests against 2 places: some must be refused"
    );
    assert!(served >= 2, "the admitted ones are served");
    assert_eq!(
        refused.len() + served,
        12,
        "only 200 or 429: {:?}",
        statuses.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    for (_, v, took) in &refused {
        assert_eq!(v["error_type"], "overloaded");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("max_concurrent_requests")
        );
        assert!(
            *took < Duration::from_secs(2),
            "refused at once, took {took:?}"
        );
    }
    assert!(
        max_depth.load(std::sync::atomic::Ordering::Relaxed) <= 2,
        "never more than 2 admitted"
    );
    let m = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        sample(&m, "infermon_inference_in_flight{model=\"minilm\"}"),
        0.0
    );
    assert_eq!(
        sample(&m, "infermon_inference_queue_depth{model=\"minilm\"}"),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            "infermon_inference_errors_total{error_type=\"overloaded\",model=\"minilm\",route=\"/embed\"}"
        ),
        refused.len() as f64
    );
    // After the burst the model answers normally.
    ok(&s, "/embed", &json!({"inputs": "still here"}));
}

#[test]
fn python_openai_client_gets_the_reference_vectors() {
    let python = std::env::var("INFERMON_TEST_PYTHON")
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python").display().to_string());
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} missing: run ./scripts/install-test-deps.sh (creates .venv with the openai package)"
    );
    let s = TestServer::start(THREE_MODELS);
    let script = r#"
import json, sys, openai
refs = json.load(open(sys.argv[2]))["items"]
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused")
texts = [r["text"] for r in refs]
resp = client.embeddings.create(model="minilm", input=texts)
out = [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]
print(json.dumps({"vectors": out, "model": resp.model, "tokens": resp.usage.prompt_tokens}))
"#;
    // The truncated reference text needs truncation, which OpenAI's API does not offer:
    // give the client only the texts that fit.
    let refs = fixture_json("minilm-reference-embeddings.json");
    let fitting: Vec<Value> = refs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["text"].as_str().unwrap().len() < 1000)
        .cloned()
        .collect();
    let refs_path = s.dir.path().join("refs.json");
    std::fs::write(&refs_path, json!({"items": fitting}).to_string()).unwrap();
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(s.url(""))
        .arg(&refs_path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("python output");
    assert_eq!(v["model"], "minilm");
    assert!(v["tokens"].as_u64().unwrap() > 0);
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), fitting.len());
    for (item, got) in fitting.iter().zip(vectors) {
        let (want, got) = (floats(&item["embedding"]), floats(got));
        assert!(
            cosine(&want, &got) >= 0.9999 && max_abs(&want, &got) <= 2e-4,
            "{}",
            item["text"]
        );
    }
}

#[test]
fn startup_fails_clearly_for_bad_models_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let gpt = dir.path().join("gpt2");
    std::fs::create_dir(&gpt).unwrap();
    std::fs::write(
        gpt.join("config.json"),
        r#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}"#,
    )
    .unwrap();
    let start = |models: String| {
        TestServer::try_start(&format!(
            "server:\n  listen: 127.0.0.1:0\nmodels:\n{models}"
        ))
        .err()
        .expect("must not start")
    };
    let log = start(format!("  - path: {}\n", gpt.display()));
    assert!(
        log.contains("GPT2LMHeadModel") && log.contains("not supported"),
        "{log}"
    );
    let log = start("  - path: {dir}/no-such-model\n".to_string());
    assert!(
        log.contains("no-such-model") && log.contains("make model"),
        "{log}"
    );
    let log = start("  - path: {repo}/models/all-MiniLM-L6-v2\n    device: cuda:0\n".to_string());
    assert!(
        log.contains("cuda:0") && (log.contains("`cuda` feature") || log.contains("GPU")),
        "{log}"
    );

    // SIGTERM: the queues stop and the process exits cleanly.
    let mut s = TestServer::start(THREE_MODELS);
    ok(&s, "/embed", &json!({"inputs": "bye"}));
    s.terminate();
    let status = s
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{}", s.log());
    assert!(s.log().contains("model queues stopped"), "{}", s.log());
}
