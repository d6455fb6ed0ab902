//! Qwen2 and Mistral decoders as embedders with last-token pooling
//! (gte-Qwen2, SFR-Embedding-Mistral, e5-mistral), over candle-transformers'
//! Qwen2 model, which returns the final hidden states. Mistral is Qwen2
//! without the query/key/value biases, so it runs on the same model with
//! those biases read as zeros.
//!
//! Each input runs as its own sequence (causal mask, no padding), so a
//! batched answer is the single answer; candle's Qwen2 would drop the
//! causal mask if given a padding mask.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen2::{Config, Model};
use serde::Deserialize;

use super::{Source, remapped, rope_theta};
use crate::inference::{Backend, Encoded, InferenceError};

/// Which decoder family config.json names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Qwen2: biased q/k/v projections, full attention.
    Qwen2,
    /// Mistral: no q/k/v biases, optional sliding window on every layer.
    Mistral,
}

#[derive(Deserialize)]
struct DecoderConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    max_position_embeddings: usize,
    #[serde(default)]
    sliding_window: Option<usize>,
    #[serde(default)]
    use_sliding_window: bool,
    #[serde(default)]
    tie_word_embeddings: bool,
    rms_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: candle_nn::Activation,
}

fn default_act() -> candle_nn::Activation {
    candle_nn::Activation::Silu
}

/// A loaded decoder embedder.
pub struct Decoder {
    pristine: Model,
    device: Device,
    max_positions: usize,
}

impl Decoder {
    /// Loads `Qwen2Model`/`MistralModel` weights (or their `*ForCausalLM`
    /// checkpoints, under `model.`).
    pub fn load(
        vb: VarBuilder<'static>,
        config_text: &str,
        flavour: Flavour,
    ) -> Result<Decoder, String> {
        let raw: serde_json::Value =
            serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        let cfg: DecoderConfig = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        let heads = cfg.num_attention_heads;
        if heads == 0 || !cfg.hidden_size.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {heads}",
                cfg.hidden_size
            ));
        }
        if let Some(d) = cfg.head_dim.filter(|&d| d != cfg.hidden_size / heads) {
            return Err(format!(
                "head_dim {d} differs from hidden_size / num_attention_heads ({}); not supported",
                cfg.hidden_size / heads
            ));
        }
        // candle's Qwen2 keeps key i−j ≤ window for query i; transformers
        // keeps i−j < sliding_window, hence the − 1.
        let window = match flavour {
            Flavour::Qwen2 if cfg.use_sliding_window => {
                return Err(
                    "use_sliding_window: true is not supported for Qwen2 embedders".to_string(),
                );
            }
            Flavour::Qwen2 => None,
            Flavour::Mistral => cfg.sliding_window.map(|w| w.max(1) - 1),
        };
        let layer_types = raw.get("layer_types").and_then(|t| t.as_array());
        if flavour == Flavour::Qwen2
            && layer_types.is_some_and(|t| t.iter().any(|t| t != "full_attention"))
        {
            return Err(
                "config.json layer_types other than full_attention are not supported for Qwen2"
                    .to_string(),
            );
        }
        let candle_cfg = Config {
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            intermediate_size: cfg.intermediate_size,
            num_hidden_layers: cfg.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: cfg.num_key_value_heads.unwrap_or(heads),
            max_position_embeddings: cfg.max_position_embeddings,
            sliding_window: window.unwrap_or(cfg.max_position_embeddings + 1),
            max_window_layers: cfg.num_hidden_layers,
            tie_word_embeddings: cfg.tie_word_embeddings,
            rope_theta: rope_theta(&raw, "full_attention", &["rope_theta"])?,
            rms_norm_eps: cfg.rms_norm_eps,
            use_sliding_window: window.is_some(),
            hidden_act: cfg.hidden_act,
        };
        // candle reads `model.*`; bare-model checkpoints have no prefix.
        let bare = !vb.contains_tensor("model.embed_tokens.weight");
        let vb = remapped(vb, move |name: &str| {
            let stored = if bare {
                name.strip_prefix("model.").unwrap_or(name)
            } else {
                name
            };
            let qkv_bias = [".q_proj.bias", ".k_proj.bias", ".v_proj.bias"]
                .iter()
                .any(|s| name.ends_with(s));
            if flavour == Flavour::Mistral && qkv_bias {
                Source::Zeros
            } else {
                Source::Name(stored.to_string())
            }
        });
        let device = vb.device().clone();
        let pristine = Model::new(&candle_cfg, vb).map_err(|e| e.to_string())?;
        Ok(Decoder {
            pristine,
            device,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// The longest input the rotary table covers.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }
}

impl Backend for Decoder {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let mut out = Vec::with_capacity(batch.len());
        for e in batch {
            if e.ids.is_empty() {
                return Err(InferenceError::Validation("empty input".to_string()));
            }
            let ids = Tensor::new(e.ids.as_slice(), &self.device)?.unsqueeze(0)?;
            // The model keeps a KV cache; a clone of the never-run model
            // starts empty (weights are shared).
            let mut model = self.pristine.clone();
            let hidden = model.forward(&ids, 0, None)?;
            let last = hidden.narrow(1, e.ids.len() - 1, 1)?.flatten_all()?;
            out.push(last.to_dtype(DType::F32)?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}
