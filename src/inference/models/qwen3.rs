//! Qwen3: embeddings with last-token pooling (Qwen3-Embedding) and
//! Qwen3-Reranker's yes/no scoring, over candle-transformers' Qwen3.
//!
//! Each input runs as its own sequence (no padding, KV cache cleared first),
//! so a batched answer is bit-for-bit the single answer; the batcher still
//! merges requests, which saves the queueing and thread hand-offs.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen3::{Config, Model, ModelForCausalLM};

use crate::inference::{Backend, Encoded, InferenceError};

/// The system prompt Qwen3-Reranker was trained with.
pub const RERANK_PREFIX: &str = "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n";
/// The assistant turn that makes the next token "yes" or "no".
pub const RERANK_SUFFIX: &str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
/// The instruction used when neither the request nor the config gives one.
pub const DEFAULT_INSTRUCTION: &str =
    "Given a web search query, retrieve relevant passages that answer the query";

/// The text between prefix and suffix for one (query, document) pair.
pub fn rerank_body(instruction: &str, query: &str, doc: &str) -> String {
    format!("<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}")
}

enum Kind {
    Embed(Model),
    Rerank {
        lm: ModelForCausalLM,
        yes: u32,
        no: u32,
    },
}

/// A loaded Qwen3 model.
pub struct Qwen3 {
    kind: Kind,
    device: Device,
}

impl Qwen3 {
    /// Loads an embedder (`Qwen3Model` weights, with or without the
    /// `model.` prefix) or a reranker scoring the tokens `yes`/`no`.
    pub fn load(vb: VarBuilder, cfg: &Config, rerank: Option<(u32, u32)>) -> Result<Qwen3, String> {
        let device = vb.device().clone();
        let vb = if vb.contains_tensor("model.embed_tokens.weight") {
            vb
        } else {
            vb.rename_f(|name: &str| name.strip_prefix("model.").unwrap_or(name).to_string())
        };
        let kind = match rerank {
            Some((yes, no)) => Kind::Rerank {
                lm: ModelForCausalLM::new(cfg, vb).map_err(|e| e.to_string())?,
                yes,
                no,
            },
            None => Kind::Embed(Model::new(cfg, vb).map_err(|e| e.to_string())?),
        };
        Ok(Qwen3 { kind, device })
    }
}

impl Backend for Qwen3 {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let mut out = Vec::with_capacity(batch.len());
        for e in batch {
            if e.ids.is_empty() {
                return Err(InferenceError::Validation("empty input".to_string()));
            }
            let ids = Tensor::new(e.ids.as_slice(), &self.device)?.unsqueeze(0)?;
            match &mut self.kind {
                Kind::Embed(pristine) => {
                    // `Model` keeps its KV cache private; a clone of the
                    // never-run model starts empty (weights are shared).
                    let mut model = pristine.clone();
                    let hidden = model.forward(&ids, 0)?;
                    let last = hidden.narrow(1, e.ids.len() - 1, 1)?.flatten_all()?;
                    out.push(last.to_dtype(DType::F32)?.to_vec1::<f32>()?);
                }
                Kind::Rerank { lm, yes, no } => {
                    lm.clear_kv_cache();
                    let logits = lm.forward(&ids, 0)?.flatten_all()?.to_dtype(DType::F32)?;
                    let yes = logits.get(*yes as usize)?.to_scalar::<f32>()?;
                    let no = logits.get(*no as usize)?.to_scalar::<f32>()?;
                    // softmax([no, yes])[1] == sigmoid(yes - no): the raw score is the log-odds.
                    out.push(vec![yes - no]);
                }
            }
        }
        Ok(out)
    }
}
