//! Wire types of the TEI, OpenAI and Cohere/Jina routes, shaped as those
//! projects document them so their clients work unchanged.

use serde::{Deserialize, Serialize};

/// A string or a list of strings.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Input {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
}

impl Input {
    /// The texts, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Input::One(s) => vec![s],
            Input::Many(v) => v,
        }
    }
}

/// TEI's `truncation_direction`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Direction {
    /// Cut the end (default).
    #[default]
    #[serde(alias = "right", alias = "RIGHT")]
    Right,
    /// Cut the start.
    #[serde(alias = "left", alias = "LEFT")]
    Left,
}

/// `POST /embed` (TEI).
#[derive(Debug, Deserialize)]
pub struct EmbedRequest {
    /// Texts to embed.
    pub inputs: Input,
    /// L2-normalize (default true).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Cut too-long inputs instead of failing (default false).
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Which end to cut.
    #[serde(default)]
    pub truncation_direction: Direction,
    /// Keep only the first N dimensions (Matryoshka).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Which model (infermon extension; default: the first embedder).
    #[serde(default)]
    pub model: Option<String>,
    /// A prompt of the model's sentence-transformers config, by name.
    #[serde(default)]
    pub prompt_name: Option<String>,
    /// A prompt text put before every input (instead of `prompt_name`).
    #[serde(default)]
    pub prompt: Option<String>,
}

/// `POST /rerank` (TEI).
#[derive(Debug, Deserialize)]
pub struct RerankRequest {
    /// The query.
    pub query: String,
    /// Candidate documents.
    pub texts: Vec<String>,
    /// Return logits instead of sigmoid scores.
    #[serde(default)]
    pub raw_scores: bool,
    /// Echo each text in its result.
    #[serde(default)]
    pub return_text: bool,
    /// Cut too-long pairs instead of failing.
    #[serde(default)]
    pub truncate: Option<bool>,
    /// Which end to cut.
    #[serde(default)]
    pub truncation_direction: Direction,
    /// Qwen3-Reranker instruction for this request.
    #[serde(default)]
    pub instruction: Option<String>,
    /// Which model (default: the first reranker).
    #[serde(default)]
    pub model: Option<String>,
}

/// One `/rerank` result.
#[derive(Debug, Serialize)]
pub struct Rank {
    /// Position in `texts`.
    pub index: usize,
    /// Score (sigmoid, or the logit with `raw_scores`).
    pub score: f32,
    /// The text, with `return_text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `POST /tokenize` (TEI).
#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    /// Texts.
    pub inputs: Input,
    /// Add [CLS]/[SEP] and the like (default true).
    #[serde(default = "yes")]
    pub add_special_tokens: bool,
    /// A prompt of the model's sentence-transformers config, by name.
    #[serde(default)]
    pub prompt_name: Option<String>,
    /// A prompt text put before every input (instead of `prompt_name`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Which model (default: the first).
    #[serde(default)]
    pub model: Option<String>,
}

/// One token of `/tokenize`.
#[derive(Debug, Serialize)]
pub struct Token {
    /// Vocabulary id.
    pub id: u32,
    /// The token's text.
    pub text: String,
    /// Added by the tokenizer ([CLS], [SEP], …).
    pub special: bool,
    /// Byte offset where it starts in the input (null for special tokens).
    pub start: Option<usize>,
    /// Byte offset where it ends.
    pub stop: Option<usize>,
}

/// `POST /v1/embeddings` (OpenAI).
#[derive(Debug, Deserialize)]
pub struct OpenAiEmbeddingsRequest {
    /// Text or texts.
    pub input: Input,
    /// Model name (default: the first embedder).
    #[serde(default)]
    pub model: Option<String>,
    /// `float` (default) or `base64` (little-endian f32).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Keep only the first N dimensions, re-normalized.
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Caller id (accepted, unused).
    #[serde(default)]
    pub user: Option<String>,
    /// A prompt of the model's sentence-transformers config, by name (as TEI).
    #[serde(default)]
    pub prompt_name: Option<String>,
    /// A prompt text put before every input (instead of `prompt_name`).
    #[serde(default)]
    pub prompt: Option<String>,
}

/// One vector of the OpenAI answer.
#[derive(Debug, Serialize)]
pub struct OpenAiEmbedding {
    /// Always `embedding`.
    pub object: &'static str,
    /// Floats, or a base64 string.
    pub embedding: serde_json::Value,
    /// Position in `input`.
    pub index: usize,
}

/// Token counts of an answer.
#[derive(Debug, Serialize)]
pub struct Usage {
    /// Tokens read.
    pub prompt_tokens: usize,
    /// Same as prompt_tokens (nothing is generated).
    pub total_tokens: usize,
}

/// The `/v1/embeddings` answer.
#[derive(Debug, Serialize)]
pub struct OpenAiEmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    /// One per input.
    pub data: Vec<OpenAiEmbedding>,
    /// The model that answered.
    pub model: String,
    /// Tokens read.
    pub usage: Usage,
}

/// A Cohere/Jina document: a string or `{"text": ...}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Document {
    /// Plain text.
    Text(String),
    /// An object with a text field.
    Object {
        /// The text.
        text: String,
    },
}

impl Document {
    /// The text.
    pub fn text(&self) -> &str {
        match self {
            Document::Text(t) | Document::Object { text: t } => t,
        }
    }
}

/// `POST /v1/rerank` (Cohere/Jina).
#[derive(Debug, Deserialize)]
pub struct CohereRerankRequest {
    /// Model name (default: the first reranker).
    #[serde(default)]
    pub model: Option<String>,
    /// The query.
    pub query: String,
    /// Candidate documents.
    pub documents: Vec<Document>,
    /// Return only the best N.
    #[serde(default)]
    pub top_n: Option<usize>,
    /// Echo documents in the results (default false).
    #[serde(default)]
    pub return_documents: bool,
    /// Qwen3-Reranker instruction for this request.
    #[serde(default)]
    pub instruction: Option<String>,
    /// Cut too-long pairs instead of failing (default true, as Cohere).
    #[serde(default)]
    pub truncate: Option<bool>,
}

/// One Cohere/Jina result.
#[derive(Debug, Serialize)]
pub struct CohereResult {
    /// Position in `documents`.
    pub index: usize,
    /// Sigmoid score.
    pub relevance_score: f32,
    /// The document, with `return_documents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<CohereDocument>,
}

/// An echoed document.
#[derive(Debug, Serialize)]
pub struct CohereDocument {
    /// Its text.
    pub text: String,
}

/// Token count of a rerank answer (Jina's shape).
#[derive(Debug, Serialize)]
pub struct RerankUsage {
    /// Tokens read.
    pub total_tokens: usize,
}

/// The `/v1/rerank` answer.
#[derive(Debug, Serialize)]
pub struct CohereRerankResponse {
    /// The model that answered.
    pub model: String,
    /// Best first.
    pub results: Vec<CohereResult>,
    /// Tokens read.
    pub usage: RerankUsage,
}

fn yes() -> bool {
    true
}
