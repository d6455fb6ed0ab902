//! ModernBERT (`ModernBertModel`, e.g. gte-modernbert, modernbert-embed)
//! over candle-transformers' ModernBERT: pre-norm layers without biases,
//! GeGLU feed-forward, RoPE with one base for global layers and another for
//! local ones, and local layers that see only ±`local_attention / 2` tokens.
//!
//! `ModernBertForSequenceClassification` cross-encoders (gte-reranker-
//! modernbert) get their head here: candle's classifier ends in a softmax
//! over the labels, which makes a one-label reranker score 1.0 for every
//! document.
//!
//! Inputs are right-padded and masked rather than unpadded (same vectors,
//! more work on uneven batches). candle's ModernBERT builds its masks in
//! f32, so the model runs in f32 (`dtype: f32`).

use candle_core::{DType, Device};
use candle_nn::{LayerNorm, Linear, Module, VarBuilder};
use candle_transformers::models::modernbert::{Config, ModernBert};
use serde::Deserialize;

use super::{Source, padded, pool_hidden, remapped, rope_theta};
use crate::inference::pooling::{PaddingSide, Pooling};
use crate::inference::{Backend, Encoded, InferenceError};

#[derive(Deserialize)]
struct ModernBertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(alias = "layer_norm_eps", default = "default_eps")]
    norm_eps: f64,
    #[serde(default)]
    pad_token_id: Option<u32>,
    global_attn_every_n_layers: Option<usize>,
    layer_types: Option<Vec<String>>,
    local_attention: usize,
    #[serde(default = "default_act")]
    hidden_activation: String,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    norm_bias: bool,
    #[serde(default = "default_classifier_pooling")]
    classifier_pooling: String,
    #[serde(default)]
    classifier_bias: bool,
    #[serde(default = "default_act")]
    classifier_activation: String,
    #[serde(default)]
    id2label: Option<std::collections::BTreeMap<String, String>>,
}

fn default_classifier_pooling() -> String {
    "cls".to_string()
}

fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu".to_string()
}

/// Every how many layers attention is global, checked against
/// `layer_types` when config.json has both (candle's ModernBERT makes layer
/// `i` global exactly when `i % n == 0`).
fn global_every(cfg: &ModernBertConfig) -> Result<usize, String> {
    let layers = cfg.num_hidden_layers;
    let n = match (&cfg.layer_types, cfg.global_attn_every_n_layers) {
        (_, Some(n)) => n,
        (Some(types), None) => types
            .iter()
            .skip(1)
            .position(|t| t == "full_attention")
            .map_or(layers.max(1), |i| i + 1),
        (None, None) => 3,
    };
    if n == 0 {
        return Err("global_attn_every_n_layers is 0".to_string());
    }
    if let Some(types) = &cfg.layer_types {
        let expected = (0..layers).map(|i| {
            if i % n == 0 {
                "full_attention"
            } else {
                "sliding_attention"
            }
        });
        if types.len() != layers || !types.iter().map(String::as_str).eq(expected) {
            return Err(format!(
                "config.json layer_types {types:?} is not a global layer every {n} layers, the only pattern supported"
            ));
        }
    }
    Ok(n)
}

/// What turns token states into the answer.
enum Output {
    /// An embedding.
    Pool(Pooling),
    /// A cross-encoder's one logit: first-token or mean states → dense →
    /// GELU → LayerNorm → classifier.
    Classify {
        mean: bool,
        dense: Linear,
        norm: LayerNorm,
        out: Linear,
    },
}

/// A loaded ModernBERT embedder or cross-encoder.
pub struct ModernBertEmbedder {
    model: ModernBert,
    device: Device,
    pad_id: u32,
    output: Output,
    max_positions: usize,
}

impl ModernBertEmbedder {
    /// Loads `ModernBertModel` weights (at the root or under `model.`) as an
    /// embedder, or with `pooling: None` a `ModernBertForSequenceClassification`
    /// cross-encoder.
    pub fn load(
        vb: VarBuilder<'static>,
        config_text: &str,
        pooling: Option<Pooling>,
    ) -> Result<ModernBertEmbedder, String> {
        let raw: serde_json::Value =
            serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        let cfg: ModernBertConfig = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        if vb.dtype() != DType::F32 {
            return Err(format!(
                "ModernBERT runs in f32 only (candle's ModernBERT masks in f32); set dtype: f32, not {:?}",
                vb.dtype()
            ));
        }
        for (key, on) in [
            ("attention_bias", cfg.attention_bias),
            ("mlp_bias", cfg.mlp_bias),
            ("norm_bias", cfg.norm_bias),
        ] {
            if on {
                return Err(format!("config.json {key}: true is not supported"));
            }
        }
        if cfg.hidden_activation != "gelu" {
            return Err(format!(
                "config.json hidden_activation {:?} is not supported (gelu)",
                cfg.hidden_activation
            ));
        }
        let heads = cfg.num_attention_heads;
        if heads == 0 || !cfg.hidden_size.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {heads}",
                cfg.hidden_size
            ));
        }
        let candle_cfg = Config {
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            num_hidden_layers: cfg.num_hidden_layers,
            num_attention_heads: heads,
            intermediate_size: cfg.intermediate_size,
            max_position_embeddings: cfg.max_position_embeddings,
            layer_norm_eps: cfg.norm_eps,
            pad_token_id: cfg.pad_token_id.unwrap_or(0),
            global_attn_every_n_layers: global_every(&cfg)?,
            global_rope_theta: rope_theta(&raw, "full_attention", &["global_rope_theta"])?,
            local_attention: cfg.local_attention,
            local_rope_theta: rope_theta(&raw, "sliding_attention", &["local_rope_theta"])?,
            classifier_config: None,
        };
        let bare = !vb.contains_tensor("model.embeddings.tok_embeddings.weight");
        let vb = remapped(vb, move |name: &str| {
            Source::Name(if bare {
                name.strip_prefix("model.").unwrap_or(name).to_string()
            } else {
                name.to_string()
            })
        });
        let device = vb.device().clone();
        let output = match pooling {
            Some(p) => Output::Pool(p),
            None => classifier(&vb, &cfg)?,
        };
        let model = ModernBert::load(vb, &candle_cfg).map_err(|e| e.to_string())?;
        Ok(ModernBertEmbedder {
            model,
            device,
            pad_id: candle_cfg.pad_token_id,
            output,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// The longest input the rotary table covers.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }
}

impl Backend for ModernBertEmbedder {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let (seq, rows) = super::id_rows(batch, self.max_positions);
        let ids = padded(&rows, seq, self.pad_id, &self.device)?;
        let ones: Vec<Vec<u32>> = rows.iter().map(|r| vec![1; r.len()]).collect();
        let ones: Vec<&[u32]> = ones.iter().map(Vec::as_slice).collect();
        let mask = padded(&ones, seq, 0, &self.device)?;
        let hidden = self.model.forward(&ids, &mask)?;
        match &self.output {
            Output::Pool(p) => Ok(pool_hidden(&hidden, batch, PaddingSide::Right, *p)?),
            Output::Classify {
                mean,
                dense,
                norm,
                out,
            } => {
                let pooled = if *mean {
                    let mask = mask.to_dtype(hidden.dtype())?;
                    hidden
                        .broadcast_mul(&mask.unsqueeze(2)?)?
                        .sum(1)?
                        .broadcast_div(&mask.sum_keepdim(1)?)?
                } else {
                    hidden.narrow(1, 0, 1)?.squeeze(1)?
                };
                let x = norm.forward(&dense.forward(&pooled.contiguous()?)?.gelu_erf()?)?;
                Ok(out.forward(&x)?.to_dtype(DType::F32)?.to_vec2::<f32>()?)
            }
        }
    }
}

/// The `head` and `classifier` of a one-label sequence classifier.
fn classifier(vb: &VarBuilder, cfg: &ModernBertConfig) -> Result<Output, String> {
    let labels = cfg.id2label.as_ref().map_or(1, |l| l.len());
    if labels != 1 {
        return Err(format!(
            "a reranker needs exactly one output label; config.json has {labels} (id2label)"
        ));
    }
    let mean = match cfg.classifier_pooling.as_str() {
        "cls" => false,
        "mean" => true,
        other => {
            return Err(format!(
                "config.json classifier_pooling {other:?} is not supported (cls, mean)"
            ));
        }
    };
    if cfg.classifier_activation != "gelu" {
        return Err(format!(
            "config.json classifier_activation {:?} is not supported (gelu)",
            cfg.classifier_activation
        ));
    }
    let h = cfg.hidden_size;
    let load = || -> candle_core::Result<Output> {
        let head = vb.pp("head");
        let dense = if cfg.classifier_bias {
            candle_nn::linear(h, h, head.pp("dense"))?
        } else {
            candle_nn::linear_no_bias(h, h, head.pp("dense"))?
        };
        Ok(Output::Classify {
            mean,
            dense,
            norm: candle_nn::layer_norm_no_bias(h, cfg.norm_eps, head.pp("norm"))?,
            out: candle_nn::linear(h, 1, vb.pp("classifier"))?,
        })
    };
    load().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(layers: usize, every: Option<usize>, types: Option<&[&str]>) -> ModernBertConfig {
        ModernBertConfig {
            vocab_size: 10,
            hidden_size: 8,
            num_hidden_layers: layers,
            num_attention_heads: 2,
            intermediate_size: 8,
            max_position_embeddings: 16,
            norm_eps: 1e-5,
            pad_token_id: None,
            global_attn_every_n_layers: every,
            layer_types: types.map(|t| t.iter().map(|s| s.to_string()).collect()),
            local_attention: 4,
            hidden_activation: "gelu".to_string(),
            attention_bias: false,
            mlp_bias: false,
            norm_bias: false,
            classifier_pooling: "cls".to_string(),
            classifier_bias: false,
            classifier_activation: "gelu".to_string(),
            id2label: None,
        }
    }

    #[test]
    fn the_global_layer_pattern_comes_from_either_key_and_must_agree() {
        let (f, s) = ("full_attention", "sliding_attention");
        assert_eq!(global_every(&cfg(4, Some(3), None)), Ok(3));
        assert_eq!(global_every(&cfg(4, None, Some(&[f, s, s, f]))), Ok(3));
        assert_eq!(global_every(&cfg(3, None, Some(&[f, s, s]))), Ok(3));
        assert_eq!(global_every(&cfg(4, Some(3), Some(&[f, s, s, f]))), Ok(3));
        assert!(global_every(&cfg(4, Some(2), Some(&[f, s, s, f]))).is_err());
        assert!(global_every(&cfg(4, None, Some(&[f, s, f, s, s]))).is_err());
    }
}
