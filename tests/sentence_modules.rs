//! sentence-transformers folders served exactly: Pooling modes (max,
//! weightedmean, mean_sqrt_len_tokens), Dense layers with their activations
//! and the Normalize module, from safetensors or PyTorch `.bin` weights, against sentence-transformers' own outputs
//! (tests/fixtures/tiny-st-*, made by scripts/make-fixtures.py); and folders
//! infermon cannot serve exactly refuse to load, naming the file and key.

use crate::support;

use serde_json::{Value, json};
use support::{TestServer, client, fixture_json, floats, rewrite, start_fails};

const FIXTURES: [&str; 4] = [
    "tiny-st-max-dense",
    "tiny-st-weightedmean-dense",
    "tiny-st-mean-sqrt-len",
    // The first one again with PyTorch `.bin` weights only.
    "tiny-st-bin-weights",
];

fn embed(s: &TestServer, body: Value) -> Vec<Vec<f32>> {
    let r = client().post(s.url("/embed")).json(&body).send().unwrap();
    let status = r.status();
    let v: Value = r.json().unwrap();
    assert_eq!(status, 200, "{body}: {v}");
    v.as_array().unwrap().iter().map(floats).collect()
}

#[test]
fn pooling_modes_and_dense_layers_match_sentence_transformers() {
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
fn folders_that_cannot_be_served_exactly_refuse_to_load() {
    // A module type infermon does not implement.
    let log = start_fails("tiny-st-max-dense", |m| {
        rewrite(
            &m.join("modules.json"),
            "normalize.Normalize",
            "layer_norm.LayerNorm",
        )
    });
    assert!(
        log.contains("modules.json") && log.contains("LayerNorm"),
        "{log}"
    );
    // Two pooling modes at once (a concatenation).
    let log = start_fails("tiny-st-max-dense", |m| {
        rewrite(
            &m.join("1_Pooling/config.json"),
            "\"pooling_mode\": \"max\"",
            "\"pooling_mode\": [\"max\", \"mean\"]",
        )
    });
    assert!(
        log.contains("1_Pooling/config.json") && log.contains("concatenated"),
        "{log}"
    );
    // A Dense activation infermon does not implement.
    let log = start_fails("tiny-st-max-dense", |m| {
        rewrite(
            &m.join("2_Dense/config.json"),
            "activation.Tanh",
            "activation.Softsign",
        )
    });
    assert!(
        log.contains("2_Dense/config.json") && log.contains("Softsign"),
        "{log}"
    );
    // Relative position embeddings would run with the wrong positions.
    let log = start_fails("tiny-st-max-dense", |m| {
        rewrite(
            &m.join("config.json"),
            "\"pad_token_id\": 0,",
            "\"pad_token_id\": 0,\n  \"position_embedding_type\": \"relative_key\",",
        )
    });
    assert!(
        log.contains("position_embedding_type") && log.contains("relative_key"),
        "{log}"
    );
}
