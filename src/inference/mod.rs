//! The model server: loads text models from local Hugging Face directories
//! with candle, batches concurrent requests per model, and answers the TEI,
//! OpenAI and Cohere/Jina routes.
//!
//! Shape (after text-embeddings-inference): [`models`] holds one file per
//! architecture behind the [`Backend`] trait; [`queue`] is the per-model actor
//! that admits requests (429 when full) and runs batches planned by
//! [`batcher`] on the model's own OS thread; [`handlers`] are the thin HTTP
//! layer over [`Inference`]. [`swap`] changes the served models without
//! downtime ([`Inference::apply`]). [`test_delay`] is a test-only knob that
//! slows every batch on purpose (off unless its environment variable is set).

pub mod batcher;
pub mod handlers;
pub mod kernels;
pub mod loader;
pub mod metrics;
pub mod models;
pub mod pooling;
pub mod queue;
pub mod sentence_modules;
pub mod service;
pub mod swap;
pub mod test_delay;
pub mod tokenize;
pub mod types;

use std::path::PathBuf;

pub use metrics::Metrics;
pub use service::{Inference, LoadedModel, ModelSet};
pub use swap::ModelChanges;

/// What a model does for its callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Text → vector.
    Embed,
    /// (query, document) → relevance score.
    Rerank,
}

impl Task {
    /// The name used in config, metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Embed => "embed",
            Task::Rerank => "rerank",
        }
    }
}

/// One tokenized input, ready for a forward pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Segment ids (0 for the first text of a pair, 1 for the second).
    pub type_ids: Vec<u32>,
    /// Leading tokens pooling leaves out: the prompt's, for a model whose
    /// Pooling module says `include_prompt: false`; otherwise 0.
    pub pool_skip: usize,
}

impl Encoded {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens at all.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A loaded model that turns a batch of tokenized inputs into one vector per
/// input: the pooled (not yet normalized) embedding for embedders, a single
/// raw relevance logit for rerankers. Implementations run on the model's own
/// thread, so `&mut self` is free to keep caches.
pub trait Backend: Send {
    /// Runs one forward pass over `batch` (each input padded as the
    /// architecture needs) and returns one vector per input, in order.
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError>;
}

/// Everything that can go wrong loading models or answering a request; the
/// HTTP layer maps each to a status code in [`handlers`].
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The configured directory is absent.
    #[error(
        "model {name:?}: directory {path} does not exist; run `make model` to fetch the default model \
         (all-MiniLM-L6-v2), download one with `infermon pull ORG/NAME` (or set models[].hf_repo), \
         or point models[].path at a Hugging Face model directory"
    )]
    ModelDirMissing {
        /// Model name.
        name: String,
        /// The expected directory.
        path: PathBuf,
    },
    /// A file of the model directory is missing or unreadable.
    #[error("model {name:?}: cannot read {path}: {reason}")]
    ModelFile {
        /// Model name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// config.json names an architecture infermon cannot run.
    #[error(
        "model {name:?}: architecture {architecture:?} (from {path}) is not supported; supported: {supported}"
    )]
    UnsupportedArchitecture {
        /// Model name.
        name: String,
        /// The architecture named by config.json.
        architecture: String,
        /// The config.json.
        path: PathBuf,
        /// The architectures infermon runs, comma-separated.
        supported: String,
    },
    /// The config asks for something this model or build cannot do.
    #[error("model {name:?}: {message}")]
    BadModelConfig {
        /// Model name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The background thread that loads changed models is not available.
    #[error("cannot load models in the background: {0}")]
    Loader(String),
    /// The device cannot be opened.
    #[error("model {name:?}: device {device:?} is not available: {reason}")]
    Device {
        /// Model name.
        name: String,
        /// The configured device.
        device: String,
        /// Why.
        reason: String,
    },
    /// candle failed while building or running the model.
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A metric could not be registered.
    #[error("cannot register inference metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// `max_concurrent_requests` requests are already admitted.
    #[error(
        "model {model:?} is busy: {limit} requests are in progress (max_concurrent_requests); retry shortly"
    )]
    Overloaded {
        /// Model name.
        model: String,
        /// The configured limit.
        limit: usize,
    },
    /// The model's queue has stopped (shutdown).
    #[error("model {0:?} is shutting down")]
    ShuttingDown(String),
    /// The `model` field names no loaded model.
    #[error("model {requested:?} is not served here; available: {available}")]
    UnknownModel {
        /// What the request asked for.
        requested: String,
        /// The names that exist.
        available: String,
    },
    /// No model can do the task the route needs.
    #[error("no model served here can {0}")]
    NoModelForTask(&'static str),
    /// The chosen model cannot do what the route needs.
    #[error("model {model:?} is a {task} model and cannot {wanted}; use a {wanted} model")]
    WrongTask {
        /// Model name.
        model: String,
        /// What it does.
        task: &'static str,
        /// What the route needs.
        wanted: &'static str,
    },
    /// A request input was rejected (422).
    #[error("{0}")]
    Validation(String),
    /// An input is longer than the model accepts and truncation is off (413).
    #[error(
        "input {index} has {tokens} tokens, more than model {model:?} accepts ({max}); send shorter text or set \"truncate\": true"
    )]
    InputTooLong {
        /// Model name.
        model: String,
        /// Which input.
        index: usize,
        /// Its length in tokens.
        tokens: usize,
        /// The model's limit.
        max: usize,
    },
    /// The tokenizer failed on an input.
    #[error("cannot tokenize input: {0}")]
    Tokenize(String),
}
