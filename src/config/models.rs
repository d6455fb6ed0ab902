//! `models:` — the models this box serves.

use serde::{Deserialize, Serialize};

use super::PromDuration;

/// One model, loaded from a local Hugging Face directory.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Name clients use in the `model` field; defaults to the directory's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Directory holding config.json, tokenizer.json and the safetensors weights.
    pub path: String,
    /// Hugging Face model id, used only to name the model in messages and /info.
    #[serde(default)]
    pub model_id: Option<String>,
    /// `ORG/NAME[@revision]` on the Hugging Face hub (or the mirror in
    /// `HF_ENDPOINT`): downloaded into `path` at start when that folder is
    /// missing, as `infermon pull` does. Absent: `path` must exist.
    #[serde(default)]
    pub hf_repo: Option<String>,
    /// `embed` or `rerank`; detected from config.json when absent.
    #[serde(default)]
    pub task: Option<String>,
    /// `cpu` (default) or `cuda:N` (needs the `cuda` build feature).
    #[serde(default = "default_device")]
    pub device: String,
    /// `f32`, `f16` or `bf16`; default f32 on CPU, f16 on CUDA.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Pooling override: `mean`, `cls` or `last_token` (default from 1_Pooling).
    #[serde(default)]
    pub pooling: Option<String>,
    /// Longest input in tokens (default from the model's config).
    #[serde(default)]
    pub max_input_length: Option<usize>,
    /// Most tokens in one batch (default 16384).
    #[serde(default = "default_max_batch_tokens")]
    pub max_batch_tokens: usize,
    /// Most requests merged into one batch (default 32).
    #[serde(default = "default_max_batch_requests")]
    pub max_batch_requests: usize,
    /// How long a batch smaller than the previous one may wait for more
    /// inputs (default 2ms; 0 never waits). Under steady concurrent load
    /// this keeps batches even instead of alternating tiny and large ones;
    /// a lone client never waits (its batches do not shrink).
    #[serde(default = "default_max_batch_delay")]
    pub max_batch_delay: PromDuration,
    /// Requests admitted at once; beyond this a 429 comes back at once (default 512).
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Most inputs in one request (default 64); more get a 422.
    #[serde(default = "default_max_client_batch_size")]
    pub max_client_batch_size: usize,
    /// Instruction for Qwen3-Reranker when a request gives none.
    #[serde(default)]
    pub instruction: Option<String>,
    /// Run BERT-like models with candle's generic ops even on CPU/f32
    /// instead of infermon's faster CPU kernels (for comparison and as a
    /// fallback).
    #[serde(default)]
    pub candle_only: bool,
}

fn default_device() -> String {
    "cpu".to_string()
}
fn default_max_batch_tokens() -> usize {
    16384
}
fn default_max_batch_requests() -> usize {
    32
}
fn default_max_batch_delay() -> PromDuration {
    PromDuration::from_millis(2)
}
fn default_max_concurrent_requests() -> usize {
    512
}
fn default_max_client_batch_size() -> usize {
    64
}
