//! Every architecture family infermon runs, each as a tiny random model
//! saved as a sentence-transformers folder (tests/fixtures/tiny-arch-*, made
//! by scripts/make-fixtures.py), served by the binary and compared with
//! sentence-transformers' own outputs: cosine ≥ 0.9999 and max abs diff ≤
//! 1e-4 on unnormalised (and normalised) vectors, and each input alone gives
//! what it gives inside the batch. The texts include Chinese, one-character
//! and longer-than-window inputs (the long ones run past ModernBERT's and
//! Gemma3's local windows, Mistral's sliding window and MPNet's exact
//! relative-position buckets).

use crate::support;

use serde_json::{Value, json};
use support::{
    TestServer, client, cosine, fixture, fixture_json, floats, max_abs, rewrite, start_fails,
};

const FIXTURES: [&str; 11] = [
    "tiny-arch-roberta",
    "tiny-arch-camembert",
    "tiny-arch-distilbert",
    "tiny-arch-mpnet",
    "tiny-arch-qwen2",
    "tiny-arch-mistral",
    "tiny-arch-modernbert",
    "tiny-arch-gemma3",
    "tiny-arch-nomic-bert",
    "tiny-arch-gte",
    "tiny-arch-jina-bert",
];

fn post(s: &TestServer, path: &str, body: &Value) -> Value {
    let r = client().post(s.url(path)).json(body).send().unwrap();
    let status = r.status();
    let v: Value = r.json().unwrap();
    assert_eq!(status, 200, "{path} {body}: {v}");
    v
}

fn embed(s: &TestServer, body: Value) -> Vec<Vec<f32>> {
    post(s, "/embed", &body)
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect()
}

#[test]
fn every_architecture_matches_sentence_transformers() {
    let models: String = FIXTURES
        .iter()
        .map(|f| format!("  - name: {f}\n    path: {{repo}}/tests/fixtures/{f}\n"))
        .collect();
    let s = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n{models}"
    ));
    for name in FIXTURES {
        let refs = fixture_json(&format!("{name}/reference.json"));
        let texts: Vec<&str> = refs["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        // The tokenizer and truncation agree with sentence-transformers'.
        let counts: Vec<u64> = refs["token_counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        let max = refs["max_seq_length"].as_u64().unwrap();
        assert!(
            counts.contains(&max),
            "{name}: no input reaches the {max}-token limit"
        );
        let raw = embed(
            &s,
            json!({"model": name, "inputs": texts, "normalize": false, "truncate": true}),
        );
        let normed = embed(
            &s,
            json!({"model": name, "inputs": texts, "truncate": true}),
        );
        for (i, text) in texts.iter().enumerate() {
            for (got, key) in [(&raw[i], "unnormalized"), (&normed[i], "normalized")] {
                let want = floats(&refs[key][i]);
                support::assert_matches_reference(&format!("{name} {key} {text:?}"), got, &want);
            }
            let single = embed(
                &s,
                json!({"model": name, "inputs": text, "normalize": false, "truncate": true}),
            );
            support::assert_batched_equals_single(&format!("{name} {text:?}"), &single[0], &raw[i]);
        }
    }
}

#[test]
fn models_infermon_cannot_run_exactly_refuse_to_start() {
    // An architecture that needs its authors' modeling code: the error
    // names it and lists what is supported, new families included.
    let log = start_fails("tiny-arch-mpnet", |m| {
        rewrite(
            &m.join("config.json"),
            "\"MPNetModel\"",
            "\"DebertaV2Model\"",
        )
    });
    for needle in [
        "DebertaV2Model",
        "NomicBertModel",
        "NewForSequenceClassification",
        "not supported",
        "MPNetModel",
        "DistilBertModel",
        "ModernBertModel",
        "Gemma3TextModel",
        "MistralModel",
        "CamembertModel",
        "JinaBertModel",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    // Causal Gemma3 is a different model from EmbeddingGemma's encoder.
    let log = start_fails("tiny-arch-gemma3", |m| {
        rewrite(
            &m.join("config.json"),
            "\"use_bidirectional_attention\": true",
            "\"use_bidirectional_attention\": false",
        )
    });
    assert!(log.contains("use_bidirectional_attention"), "{log}");
    // A scaled RoPE run as plain RoPE would give wrong vectors.
    let log = start_fails("tiny-arch-qwen2", |m| {
        rewrite(
            &m.join("config.json"),
            "\"rope_type\": \"default\"",
            "\"rope_type\": \"yarn\"",
        )
    });
    assert!(log.contains("rope_type") && log.contains("yarn"), "{log}");
    // An encoder without a Pooling module has no default to fall back on.
    let log = start_fails("tiny-arch-mpnet", |m| {
        std::fs::remove_file(m.join("modules.json")).unwrap();
        std::fs::remove_dir_all(m.join("1_Pooling")).unwrap();
    });
    assert!(log.contains("MPNetModel needs a pooling mode"), "{log}");
    // Decoder embedders pool the last token only.
    let log = start_fails("tiny-arch-mistral", |m| {
        rewrite(
            &m.join("1_Pooling/config.json"),
            "\"pooling_mode\": \"lasttoken\"",
            "\"pooling_mode\": \"mean\"",
        )
    });
    assert!(log.contains("last_token"), "{log}");
    // Authors' options the NomicBERT and GTE code does not implement.
    let log = start_fails("tiny-arch-nomic-bert", |m| {
        rewrite(
            &m.join("config.json"),
            "\"prenorm\": false",
            "\"prenorm\": true",
        )
    });
    assert!(log.contains("prenorm"), "{log}");
    let log = start_fails("tiny-arch-gte", |m| {
        rewrite(
            &m.join("config.json"),
            "\"type\": \"ntk\"",
            "\"type\": \"dynamic\"",
        )
    });
    assert!(
        log.contains("rope_scaling") && log.contains("dynamic"),
        "{log}"
    );
    // JinaBERT: only the authors' v2 code (ALiBi, GLU MLP, no qk-norm).
    for (from, to, needle) in [
        (
            "\"alibi\"",
            "\"absolute\"",
            "position_embedding_type \"absolute\"",
        ),
        ("\"geglu\"", "\"swiglu\"", "feed_forward_type \"swiglu\""),
        (
            "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel",
            "jinaai/jina-bert-v2-qk-post-norm--modeling_bert.JinaBertModel",
            "auto_map",
        ),
    ] {
        let log = start_fails("tiny-arch-jina-bert", |m| {
            rewrite(&m.join("config.json"), from, to)
        });
        assert!(
            log.contains(needle) && log.contains("config.json") && log.contains("not supported"),
            "{needle}: {log}"
        );
    }
}

#[test]
fn gte_rope_scaling_is_read_in_the_form_transformers_5_saves() {
    // transformers 5, saving a NewModel again, moves `rope_scaling` into
    // `rope_parameters`; both forms give the authors' vectors, and without
    // the scaling they differ (the fixture exercises it).
    let dir = tempfile::tempdir().unwrap();
    let refs = fixture_json("tiny-arch-gte/reference.json");
    let texts = refs["texts"].clone();
    let mut models = String::new();
    for variant in ["rope_parameters", "unscaled"] {
        let model = dir.path().join(variant);
        support::copy_dir(&fixture("tiny-arch-gte"), &model);
        let path = model.join("config.json");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let scaling = config
            .as_object_mut()
            .unwrap()
            .remove("rope_scaling")
            .unwrap();
        if variant == "rope_parameters" {
            config["rope_parameters"] = json!({
                "rope_type": "ntk", "type": "ntk", "factor": scaling["factor"], "rope_theta": 20000,
            });
        }
        std::fs::write(&path, config.to_string()).unwrap();
        models.push_str(&format!(
            "  - name: {variant}\n    path: {}\n",
            model.display()
        ));
    }
    let s = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n{models}"
    ));
    let worst = |name: &str| {
        let got = embed(
            &s,
            json!({"model": name, "inputs": texts, "normalize": false, "truncate": true}),
        );
        got.iter()
            .enumerate()
            .map(|(i, g)| max_abs(g, &floats(&refs["unnormalized"][i])))
            .fold(0f32, f32::max)
    };
    let (read, unscaled) = (worst("rope_parameters"), worst("unscaled"));
    assert!(read <= 1e-4, "rope_parameters form: max abs {read}");
    assert!(
        unscaled > 1e-2,
        "unscaled RoPE is indistinguishable: {unscaled}"
    );
}

#[test]
fn cross_encoder_scores_match_transformers() {
    // RoBERTa: bge-reranker-v2-m3's head (classifier.dense → tanh →
    // out_proj over the first token, RoBERTa position ids, one segment).
    // ModernBERT: gte-reranker-modernbert's (mean of the token states →
    // head → classifier), with pairs past the local window. GTE:
    // gte-multilingual-reranker-base's (pooler over the first token → tanh
    // → classifier, weights under `new.`), with NTK-scaled RoPE.
    let names = [
        "tiny-arch-roberta-reranker",
        "tiny-arch-modernbert-reranker",
        "tiny-arch-gte-reranker",
    ];
    let refs: Vec<Value> = names
        .iter()
        .map(|n| {
            let path = fixture(n).join("reference-scores.json");
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
        })
        .collect();
    let models: String = names
        .iter()
        .zip(&refs)
        .map(|(n, r)| {
            format!(
                "  - name: {n}\n    path: {{repo}}/tests/fixtures/{n}\n    max_input_length: {}\n",
                r["max_length"]
            )
        })
        .collect();
    let s = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n{models}"
    ));
    for (name, refs) in names.iter().zip(&refs) {
        for case in refs["cases"].as_array().unwrap() {
            let query = case["query"].as_str().unwrap();
            let results = case["results"].as_array().unwrap();
            let texts: Vec<&str> = results
                .iter()
                .map(|r| r["text"].as_str().unwrap())
                .collect();
            for (key, raw) in [("raw_score", true), ("score", false)] {
                let body = |texts: &[&str]| json!({"model": name, "query": query, "texts": texts, "raw_scores": raw, "truncate": true});
                let got = post(&s, "/rerank", &body(&texts));
                for r in got.as_array().unwrap() {
                    let i = r["index"].as_u64().unwrap() as usize;
                    let (got, want) = (
                        r["score"].as_f64().unwrap(),
                        results[i][key].as_f64().unwrap(),
                    );
                    assert!(
                        (got - want).abs() <= 1e-4,
                        "{name} {key} of {:?}: {got} vs {want}",
                        texts[i]
                    );
                    // Scored alone, each document gets its batched score,
                    // to float rounding (sums in another order; how far
                    // depends on the CPU's matrix kernels: 1.4e-5 seen).
                    let alone = post(&s, "/rerank", &body(&[texts[i]]))[0]["score"]
                        .as_f64()
                        .unwrap();
                    assert!(
                        (alone - got).abs() <= 5e-5,
                        "{name} {:?}: {alone} vs {got}",
                        texts[i]
                    );
                }
            }
        }
    }
}

#[test]
fn half_precision_runs_every_candle_path() {
    // f16 is the default on a GPU; on the CPU it runs the same candle code
    // (dtype handling of masks, rotary tables and norms), so a dtype slip
    // shows here without a GPU. Tolerance is f16's, not the f32 reference's.
    let families = [
        "tiny-arch-roberta",
        "tiny-arch-distilbert",
        "tiny-arch-mpnet",
        "tiny-arch-qwen2",
        "tiny-arch-mistral",
        "tiny-arch-gemma3",
        "tiny-arch-nomic-bert",
        "tiny-arch-gte",
        "tiny-arch-jina-bert",
    ];
    let models: String = families
        .iter()
        .map(|f| format!("  - name: {f}\n    path: {{repo}}/tests/fixtures/{f}\n    dtype: f16\n"))
        .collect();
    let s = TestServer::start(&format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n{models}"
    ));
    for name in families {
        let refs = fixture_json(&format!("{name}/reference.json"));
        let texts = &refs["texts"];
        let got = embed(
            &s,
            json!({"model": name, "inputs": texts, "normalize": false, "truncate": true}),
        );
        for (i, got) in got.iter().enumerate() {
            let want = floats(&refs["unnormalized"][i]);
            assert!(
                cosine(got, &want) >= 0.995,
                "{name} f16 {}: cosine {}",
                texts[i],
                cosine(got, &want)
            );
        }
    }
    // candle's ModernBERT masks in f32: f16 is refused, not run wrong.
    let config = "server:\n  listen: 127.0.0.1:0\nmodels:\n  - name: mb\n    path: {repo}/tests/fixtures/tiny-arch-modernbert\n    dtype: f16\n";
    match TestServer::try_start(config) {
        Ok(_) => panic!("ModernBERT started in f16"),
        Err(log) => assert!(log.contains("ModernBERT runs in f32 only"), "{log}"),
    }
}
