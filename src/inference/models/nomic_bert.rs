//! NomicBERT (`NomicBertModel`, nomic-embed-text v1/v1.5): a post-norm BERT
//! with rotary position embeddings on the whole head, a fused q/k/v
//! projection and a SwiGLU MLP, with GPT-2-style config names (`n_embd`,
//! `n_head`, …). Runs on candle-transformers' NomicBERT, which matches the
//! authors' modeling code (nomic-ai/nomic-bert-2048) for the configurations
//! checked here; the others are refused at load.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::nomic_bert::{Config, NomicBertModel};
use serde::Deserialize;

use super::{padded, pool_right};
use crate::inference::pooling::Pooling;
use crate::inference::{Backend, Encoded, InferenceError};

/// The keys of config.json that change the computation beyond what
/// candle-transformers' `Config` reads.
#[derive(Deserialize)]
struct NomicExtra {
    n_inner: Option<usize>,
    n_embd: usize,
    n_positions: usize,
    #[serde(default = "default_fraction")]
    rotary_emb_fraction: f64,
    #[serde(default)]
    rotary_emb_scale_base: Option<f64>,
    #[serde(default)]
    rotary_scaling_factor: Option<f64>,
    #[serde(default = "default_trained")]
    max_trained_positions: usize,
    #[serde(default)]
    prenorm: bool,
    #[serde(default)]
    use_rms_norm: bool,
    #[serde(default)]
    causal: bool,
    #[serde(default)]
    num_heads_kv: Option<usize>,
    n_head: usize,
    #[serde(default = "default_multiple")]
    pad_vocab_size_multiple: usize,
    vocab_size: usize,
    activation_function: String,
}

fn default_fraction() -> f64 {
    0.0
}

fn default_trained() -> usize {
    2048
}

fn default_multiple() -> usize {
    1
}

/// The gated MLP's width: the authors' code rounds `n_inner` (default
/// 8/3 of the width) up to a multiple of 256.
fn gated_width(n_inner: Option<usize>, n_embd: usize) -> usize {
    let w = n_inner.unwrap_or(8 * n_embd / 3);
    w.div_ceil(256) * 256
}

/// A loaded NomicBERT embedder.
pub struct NomicBert {
    model: NomicBertModel,
    device: Device,
    pooling: Pooling,
    max_positions: usize,
}

impl NomicBert {
    /// Loads `NomicBertModel` weights (at the root or under `nomic_bert.`).
    pub fn load(vb: VarBuilder, config_text: &str, pooling: Pooling) -> Result<NomicBert, String> {
        let extra: NomicExtra = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        let refuse = |what: String| Err(format!("config.json {what} is not supported"));
        if extra.activation_function != "swiglu" {
            return refuse(format!(
                "activation_function {:?} (only \"swiglu\")",
                extra.activation_function
            ));
        }
        if extra.rotary_emb_fraction != 1.0 {
            return refuse(format!(
                "rotary_emb_fraction {} (only 1.0)",
                extra.rotary_emb_fraction
            ));
        }
        if let Some(s) = extra.rotary_emb_scale_base {
            return refuse(format!("rotary_emb_scale_base {s} (only null)"));
        }
        if extra.prenorm {
            return refuse("prenorm true".to_string());
        }
        if extra.use_rms_norm {
            return refuse("use_rms_norm true".to_string());
        }
        if extra.causal {
            return refuse("causal true".to_string());
        }
        if extra.num_heads_kv.is_some_and(|k| k != extra.n_head) {
            return refuse("num_heads_kv other than n_head".to_string());
        }
        if extra.n_head == 0 || !extra.n_embd.is_multiple_of(extra.n_head) {
            return Err(format!(
                "n_embd {} is not a multiple of n_head {}",
                extra.n_embd, extra.n_head
            ));
        }
        let mut cfg: Config = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        cfg.n_inner = gated_width(extra.n_inner, extra.n_embd);
        cfg.vocab_size = extra
            .vocab_size
            .div_ceil(extra.pad_vocab_size_multiple.max(1))
            * extra.pad_vocab_size_multiple.max(1);
        // Past max_trained_positions the authors' dynamic NTK scaling
        // changes the RoPE base; up to it the plain table is exact.
        let max_positions = match extra.rotary_scaling_factor {
            Some(_) => extra.n_positions.min(extra.max_trained_positions),
            None => extra.n_positions,
        };
        cfg.n_positions = max_positions;
        let device = vb.device().clone();
        let model = NomicBertModel::load(vb, &cfg).map_err(|e| e.to_string())?;
        Ok(NomicBert {
            model,
            device,
            pooling,
            max_positions,
        })
    }

    /// The longest input the rotary table covers exactly.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    fn hidden(&self, batch: &[&Encoded]) -> candle_core::Result<Tensor> {
        let (seq, rows) = super::id_rows(batch, self.max_positions);
        let ids = padded(&rows, seq, 0, &self.device)?;
        let mut mask = Vec::with_capacity(rows.len() * seq);
        for row in &rows {
            mask.extend(std::iter::repeat_n(1u32, row.len()));
            mask.extend(std::iter::repeat_n(0u32, seq - row.len()));
        }
        let mask = Tensor::from_vec(mask, (rows.len(), seq), &self.device)?;
        self.model.forward(&ids, None, Some(&mask))
    }
}

impl Backend for NomicBert {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        // pool_right reads any dtype as f32.
        Ok(pool_right(&self.hidden(batch)?, batch, self.pooling)?)
    }
}

#[cfg(test)]
mod tests {
    use super::gated_width;

    #[test]
    fn gated_width_rounds_up_like_the_authors_code() {
        assert_eq!(gated_width(Some(3072), 768), 3072);
        assert_eq!(gated_width(Some(96), 32), 256);
        assert_eq!(gated_width(Some(257), 32), 512);
        assert_eq!(gated_width(None, 768), 2048);
    }
}
