//! sentence-transformers' text options served exactly: prompts by name or
//! text on `/embed` and `/v1/embeddings` (the model's `default_prompt_name`
//! when a request names none), `include_prompt: false` (prompt tokens left
//! out of pooling) and a legacy `do_lower_case`, against
//! sentence-transformers' outputs (tests/fixtures/tiny-st-prompts); `/info`
//! reporting them; tokenizers built from a BERT `vocab.txt`; and the options
//! infermon does not implement refusing to load.

use crate::support;

use std::path::Path;

use serde_json::{Value, json};
use support::{
    TestServer, client, copy_dir, cosine, fixture, fixture_json, floats, max_abs, rewrite,
    start_fails,
};

const PROMPTS: &str = "tiny-st-prompts";

fn post(s: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let r = client().post(s.url(path)).json(body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap())
}

fn embed(s: &TestServer, body: Value) -> Vec<Vec<f32>> {
    let (status, v) = post(s, "/embed", &body);
    assert_eq!(status, 200, "{body}: {v}");
    v.as_array().unwrap().iter().map(floats).collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert!(
        cosine(got, want) >= 0.9999 && max_abs(got, want) <= 1e-4,
        "{what}: cosine {}, max abs {}",
        cosine(got, want),
        max_abs(got, want)
    );
}

/// The fixture twice: on infermon's CPU kernels and on candle's ops (the
/// path CUDA takes), which pool through different code; and a reranker.
fn prompts_server() -> TestServer {
    TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n  - name: {PROMPTS}\n    path: {{repo}}/tests/fixtures/{PROMPTS}\n  - name: candle\n    path: {{repo}}/tests/fixtures/{PROMPTS}\n    candle_only: true\n  - name: reranker\n    path: {{repo}}/tests/fixtures/tiny-cross-encoder\n"
    ))
}

#[test]
fn prompts_exclusion_from_pooling_and_lowercasing_match_sentence_transformers() {
    let s = prompts_server();
    let refs = fixture_json(&format!("{PROMPTS}/reference.json"));
    let texts = &refs["texts"];
    // Each request shape with the reference sentence-transformers gave for it.
    let cases = [
        ("default", json!({})),
        ("passage", json!({"prompt_name": "passage"})),
        ("custom", json!({"prompt": "Represent this: "})),
        ("no_prompt", json!({"prompt": ""})),
    ];
    for (key, extra) in cases {
        let mut body = json!({"inputs": texts, "normalize": false, "truncate": true});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let got = embed(&s, body.clone());
        for (i, want) in refs[key].as_array().unwrap().iter().enumerate() {
            assert_close(&got[i], &floats(want), &format!("{key} {}", texts[i]));
        }
        // One input alone gives what it gives in the batch.
        body["inputs"] = texts[2].clone();
        assert!(max_abs(&embed(&s, body)[0], &got[2]) <= 1e-5, "{key}");
    }
    // candle's path leaves the prompt out of pooling too.
    let got = embed(
        &s,
        json!({"model": "candle", "inputs": texts, "normalize": false, "truncate": true}),
    );
    for (i, want) in refs["default"].as_array().unwrap().iter().enumerate() {
        assert_close(&got[i], &floats(want), &format!("candle {}", texts[i]));
    }
    // The OpenAI route takes the same fields (and always normalizes).
    let (status, v) = post(
        &s,
        "/v1/embeddings",
        &json!({"input": texts[0], "prompt_name": "passage"}),
    );
    assert_eq!(status, 200, "{v}");
    let got = floats(&v["data"][0]["embedding"]);
    let mut want = floats(&refs["passage"][0]);
    let norm = want.iter().map(|x| x * x).sum::<f32>().sqrt();
    want.iter_mut().for_each(|x| *x /= norm);
    assert_close(&got, &want, "/v1/embeddings passage");
}

#[test]
fn bad_prompt_requests_get_a_json_422_and_info_reports_the_text_options() {
    let s = prompts_server();
    for path in ["/embed", "/v1/embeddings"] {
        let field = if path == "/embed" { "inputs" } else { "input" };
        let (status, v) = post(&s, path, &json!({field: "hi", "prompt_name": "nope"}));
        assert_eq!(status, 422, "{path}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains("\"nope\"") && msg.contains("document, passage, query"),
            "{path}: {v}"
        );
        let (status, v) = post(
            &s,
            path,
            &json!({field: "hi", "prompt_name": "query", "prompt": "x: "}),
        );
        assert_eq!(status, 422, "{path}: {v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains("not both"),
            "{v}"
        );
    }
    // /tokenize shows the tokens the model sees: the prompt, lowercased.
    let (status, v) = post(&s, "/tokenize", &json!({"inputs": "The"}));
    assert_eq!(status, 200, "{v}");
    let tokens: Vec<&str> = v[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    // "query" is not in the fixture's 3000-word vocabulary: it is spelled out.
    assert_eq!(tokens[1..tokens.len() - 2].concat(), "query:", "{v}");
    assert_eq!(tokens[tokens.len() - 2], "The", "{v}");
    let ids: Vec<u64> = v[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids[ids.len() - 2],
        1996,
        "The is lowercased to the, not [UNK]"
    );

    // A reranker has no prompts; asking for one is an error, not ignored.
    let (status, v) = post(
        &s,
        "/tokenize",
        &json!({"inputs": "The", "model": "reranker", "prompt": "query: "}),
    );
    assert_eq!(status, 422, "{v}");

    let info: Value = client().get(s.url("/info")).send().unwrap().json().unwrap();
    let m = &info["models"][0];
    assert_eq!(m["pooling"], "mean", "{m}");
    assert_eq!(m["dimensions"], 32, "{m}");
    assert_eq!(m["max_input_length"], 32, "{m}");
    assert_eq!(m["default_prompt_name"], "query", "{m}");
    assert_eq!(m["prompts"]["passage"], "Passage: ", "{m}");
    assert_eq!(m["prompt_in_pooling"], false, "{m}");
}

/// A copy of `fixture` whose tokenizer.json is replaced by the `vocab.txt`
/// transformers' BertTokenizer reads (one token per line, in id order).
fn vocab_only_copy(name: &str, to: &Path) {
    copy_dir(&fixture(name), to);
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(to.join("tokenizer.json")).unwrap()).unwrap();
    let vocab = spec["model"]["vocab"].as_object().unwrap();
    let mut tokens: Vec<(&String, u64)> = vocab
        .iter()
        .map(|(t, id)| (t, id.as_u64().unwrap()))
        .collect();
    tokens.sort_by_key(|(_, id)| *id);
    assert!(
        tokens
            .iter()
            .enumerate()
            .all(|(i, (_, id))| i as u64 == *id)
    );
    let lines: String = tokens.iter().map(|(t, _)| format!("{t}\n")).collect();
    std::fs::write(to.join("vocab.txt"), lines).unwrap();
    std::fs::remove_file(to.join("tokenizer.json")).unwrap();
    // Such folders were written by transformers' slow BertTokenizer.
    let config = to.join("tokenizer_config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(config, text.replace("TokenizersBackend", "BertTokenizer")).unwrap();
}

#[test]
fn a_vocab_txt_folder_tokenizes_and_embeds_as_its_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("vocab-only");
    vocab_only_copy("tiny-st-max-dense", &copy);
    let s = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n  - name: json\n    path: {{repo}}/tests/fixtures/tiny-st-max-dense\n  - name: vocab\n    path: {}\n",
        copy.display()
    ));
    assert!(s.log().contains("vocab.txt"), "{}", s.log());
    let texts = json!([
        "Hello World",
        "Crème brûlée, naïve café!",
        "向量检索 and reranking for RAG",
        "unaffable [SEP] [MASK] tokens",
        "  spaces\tand\nnewlines  ",
        "",
    ]);
    let tokenize = |model: &str| post(&s, "/tokenize", &json!({"inputs": texts, "model": model}));
    let ((a_status, a), (b_status, b)) = (tokenize("json"), tokenize("vocab"));
    assert_eq!((a_status, b_status), (200, 200), "{a} {b}");
    let ids = |v: &Value| -> Vec<Vec<u64>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_u64().unwrap())
                    .collect()
            })
            .collect()
    };
    assert_eq!(ids(&a), ids(&b));
    let body = |model: &str| json!({"inputs": texts, "model": model, "normalize": false, "truncate": true});
    let (x, y) = (embed(&s, body("json")), embed(&s, body("vocab")));
    for (a, b) in x.iter().zip(&y) {
        assert!(max_abs(a, b) <= 1e-6);
    }
}

#[test]
fn text_options_infermon_does_not_implement_refuse_to_load() {
    // A Matryoshka cut sentence-transformers would apply to every output.
    let log = start_fails(PROMPTS, |m| {
        rewrite(
            &m.join("config_sentence_transformers.json"),
            "\"similarity_fn_name\"",
            "\"truncate_dim\": 16,\n  \"similarity_fn_name\"",
        )
    });
    assert!(
        log.contains("config_sentence_transformers.json") && log.contains("truncate_dim"),
        "{log}"
    );
    // A default prompt that is not among the prompts.
    let log = start_fails(PROMPTS, |m| {
        rewrite(
            &m.join("config_sentence_transformers.json"),
            "\"default_prompt_name\": \"query\"",
            "\"default_prompt_name\": \"search\"",
        )
    });
    assert!(
        log.contains("default_prompt_name") && log.contains("search"),
        "{log}"
    );
    // A Transformer option infermon does not implement.
    let log = start_fails(PROMPTS, |m| {
        rewrite(
            &m.join("sentence_bert_config.json"),
            "\"do_lower_case\": true",
            "\"do_lower_case\": true, \"query_expansion\": true",
        )
    });
    assert!(
        log.contains("sentence_bert_config.json") && log.contains("query_expansion"),
        "{log}"
    );
    // A Pooling key infermon does not know.
    let log = start_fails(PROMPTS, |m| {
        rewrite(
            &m.join("1_Pooling/config.json"),
            "\"include_prompt\": false",
            "\"include_prompt\": false, \"pooling_temperature\": 2",
        )
    });
    assert!(
        log.contains("1_Pooling/config.json") && log.contains("pooling_temperature"),
        "{log}"
    );
    // Only a SentencePiece model: the message says to add tokenizer.json.
    let log = start_fails(PROMPTS, |m| {
        std::fs::remove_file(m.join("tokenizer.json")).unwrap();
        std::fs::write(m.join("sentencepiece.bpe.model"), b"\x0a\x00").unwrap();
    });
    assert!(
        log.contains("sentencepiece.bpe.model") && log.contains("tokenizer.json"),
        "{log}"
    );
}
