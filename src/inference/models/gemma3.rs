//! Gemma3 text encoder with `use_bidirectional_attention` (EmbeddingGemma):
//! every token sees every other (no causal mask), "sliding" layers only
//! those within ±`sliding_window / 2` positions, as transformers 5 reads
//! that config. candle-transformers' Gemma3 is a causal decoder with a KV
//! cache, so this is written on candle ops (any device and dtype).
//!
//! Each layer: RMSNorm (scaled by 1 + weight) → attention with RMS-normed
//! queries and keys, RoPE (one base for global layers, another for sliding
//! ones) and grouped key/value heads → RMSNorm → residual; then RMSNorm →
//! GeGLU (tanh GELU) → RMSNorm → residual. Embeddings are scaled by
//! √hidden_size.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use serde::Deserialize;

use super::{padded, pool_hidden, rope_theta};
use crate::inference::pooling::{PaddingSide, Pooling};
use crate::inference::{Backend, Encoded, InferenceError};

#[derive(Deserialize)]
struct Gemma3Config {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    head_dim: usize,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    query_pre_attn_scalar: f64,
    sliding_window: usize,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
    #[serde(default)]
    sliding_window_pattern: Option<usize>,
    #[serde(default)]
    use_bidirectional_attention: bool,
    #[serde(default)]
    attn_logit_softcapping: Option<f64>,
    #[serde(default = "default_act")]
    hidden_activation: String,
    #[serde(default)]
    attention_bias: bool,
    max_position_embeddings: usize,
    #[serde(default)]
    pad_token_id: Option<u32>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "gelu_pytorch_tanh".to_string()
}

/// Gemma's RMSNorm: `x / rms(x) · (1 + weight)`.
struct RmsNorm {
    scale: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn load(vb: &VarBuilder, size: usize, eps: f64) -> candle_core::Result<RmsNorm> {
        Ok(RmsNorm {
            scale: (vb.get(size, "weight")? + 1.0)?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.scale, self.eps)
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    input_norm: RmsNorm,
    post_attn_norm: RmsNorm,
    pre_ff_norm: RmsNorm,
    post_ff_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    sliding: bool,
}

/// A loaded bidirectional Gemma3 encoder.
pub struct Gemma3 {
    embed: Tensor,
    embed_scale: f64,
    layers: Vec<Layer>,
    norm: RmsNorm,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f64,
    softcap: Option<f64>,
    /// Farthest key a sliding layer's query sees, either side.
    reach: usize,
    /// RoPE inverse frequencies of global and sliding layers.
    inv_freq_global: Vec<f64>,
    inv_freq_local: Vec<f64>,
    pad_id: u32,
    pooling: Pooling,
    max_positions: usize,
}

fn linear(vb: &VarBuilder, input: usize, output: usize) -> candle_core::Result<Linear> {
    candle_nn::linear_no_bias(input, output, vb.clone())
}

fn inv_freq(theta: f64, head_dim: usize) -> Vec<f64> {
    (0..head_dim)
        .step_by(2)
        .map(|i| 1.0 / theta.powf(i as f64 / head_dim as f64))
        .collect()
}

impl Gemma3 {
    /// Loads `Gemma3TextModel` weights (at the root or under `model.`).
    pub fn load(vb: VarBuilder, config_text: &str, pooling: Pooling) -> Result<Gemma3, String> {
        let raw: serde_json::Value =
            serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        let cfg: Gemma3Config = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        if !cfg.use_bidirectional_attention {
            return Err("Gemma3 embeddings need use_bidirectional_attention: true (EmbeddingGemma); causal Gemma3 is not supported as an embedder".to_string());
        }
        if cfg.attention_bias {
            return Err("config.json attention_bias: true is not supported".to_string());
        }
        if cfg.hidden_activation != "gelu_pytorch_tanh" {
            return Err(format!(
                "config.json hidden_activation {:?} is not supported (gelu_pytorch_tanh)",
                cfg.hidden_activation
            ));
        }
        if cfg.num_key_value_heads == 0
            || !cfg
                .num_attention_heads
                .is_multiple_of(cfg.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                cfg.num_attention_heads, cfg.num_key_value_heads
            ));
        }
        let n = cfg.num_hidden_layers;
        let sliding: Vec<bool> = match (&cfg.layer_types, cfg.sliding_window_pattern) {
            (Some(types), _) => {
                if types.len() != n {
                    return Err(format!(
                        "config.json layer_types has {} entries for {n} layers",
                        types.len()
                    ));
                }
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        "sliding_attention" => Ok(true),
                        "full_attention" => Ok(false),
                        other => Err(format!("config.json layer type {other:?} is not supported")),
                    })
                    .collect::<Result<_, _>>()?
            }
            (None, pattern) => {
                let p = pattern.unwrap_or(6).max(1);
                (0..n).map(|i| (i + 1) % p != 0).collect()
            }
        };
        let global = rope_theta(&raw, "full_attention", &["rope_theta"])?;
        let local = rope_theta(&raw, "sliding_attention", &["rope_local_base_freq"])?;
        let vb = if vb.contains_tensor("model.embed_tokens.weight") {
            vb.pp("model")
        } else {
            vb
        };
        let (h, hd, eps) = (cfg.hidden_size, cfg.head_dim, cfg.rms_norm_eps);
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let load = || -> candle_core::Result<Gemma3> {
            let mut layers = Vec::with_capacity(n);
            for (i, &sliding) in sliding.iter().enumerate() {
                let l = vb.pp(format!("layers.{i}"));
                let a = l.pp("self_attn");
                let m = l.pp("mlp");
                layers.push(Layer {
                    q: linear(&a.pp("q_proj"), h, nh * hd)?,
                    k: linear(&a.pp("k_proj"), h, nkv * hd)?,
                    v: linear(&a.pp("v_proj"), h, nkv * hd)?,
                    o: linear(&a.pp("o_proj"), nh * hd, h)?,
                    q_norm: RmsNorm::load(&a.pp("q_norm"), hd, eps)?,
                    k_norm: RmsNorm::load(&a.pp("k_norm"), hd, eps)?,
                    input_norm: RmsNorm::load(&l.pp("input_layernorm"), h, eps)?,
                    post_attn_norm: RmsNorm::load(&l.pp("post_attention_layernorm"), h, eps)?,
                    pre_ff_norm: RmsNorm::load(&l.pp("pre_feedforward_layernorm"), h, eps)?,
                    post_ff_norm: RmsNorm::load(&l.pp("post_feedforward_layernorm"), h, eps)?,
                    gate: linear(&m.pp("gate_proj"), h, cfg.intermediate_size)?,
                    up: linear(&m.pp("up_proj"), h, cfg.intermediate_size)?,
                    down: linear(&m.pp("down_proj"), cfg.intermediate_size, h)?,
                    sliding,
                });
            }
            Ok(Gemma3 {
                embed: vb.get((cfg.vocab_size, h), "embed_tokens.weight")?,
                embed_scale: (h as f64).sqrt(),
                layers,
                norm: RmsNorm::load(&vb.pp("norm"), h, eps)?,
                heads: nh,
                kv_heads: nkv,
                head_dim: hd,
                scale: cfg.query_pre_attn_scalar.powf(-0.5),
                softcap: cfg.attn_logit_softcapping,
                // transformers 5 turns sliding_window W into an exclusive
                // bound W/2 + 1 on |query − key| for bidirectional Gemma3.
                reach: cfg.sliding_window / 2,
                inv_freq_global: inv_freq(global, hd),
                inv_freq_local: inv_freq(local, hd),
                pad_id: cfg.pad_token_id.unwrap_or(0),
                pooling,
                max_positions: cfg.max_position_embeddings,
            })
        };
        load().map_err(|e| e.to_string())
    }

    /// The longest input the model takes.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// `(cos, sin)`, each `[seq, head_dim / 2]`.
    fn rope(
        &self,
        inv_freq: &[f64],
        seq: usize,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let half = inv_freq.len();
        let angles: Vec<f64> = (0..seq)
            .flat_map(|p| inv_freq.iter().map(move |f| p as f64 * f))
            .collect();
        let table = |f: fn(f64) -> f64| -> candle_core::Result<Tensor> {
            let v: Vec<f32> = angles.iter().map(|&a| f(a) as f32).collect();
            Tensor::from_vec(v, (seq, half), device)?.to_dtype(dtype)
        };
        Ok((table(f64::cos)?, table(f64::sin)?))
    }

    /// Additive masks `[batch, 1, seq, seq]` for global and sliding layers.
    fn masks(
        &self,
        lens: &[usize],
        seq: usize,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let build = |window: bool| -> candle_core::Result<Tensor> {
            let mut m = Vec::with_capacity(lens.len() * seq * seq);
            for &len in lens {
                for i in 0..seq {
                    for j in 0..seq {
                        // A padding query sees only itself: a row with no
                        // key at all would be NaN and spread through 0 · NaN.
                        let seen = if i < len {
                            j < len && (!window || i.abs_diff(j) <= self.reach)
                        } else {
                            j == i
                        };
                        m.push(if seen { 0f32 } else { f32::NEG_INFINITY });
                    }
                }
            }
            Tensor::from_vec(m, (lens.len(), 1, seq, seq), device)?.to_dtype(dtype)
        };
        Ok((build(false)?, build(true)?))
    }

    fn hidden(&self, batch: &[&Encoded]) -> candle_core::Result<(Tensor, Vec<usize>)> {
        let device = self.embed.device().clone();
        let dtype = self.embed.dtype();
        let b = batch.len();
        let (seq, rows) = super::id_rows(batch, self.max_positions);
        let lens: Vec<usize> = rows.iter().map(|r| r.len()).collect();
        let ids = padded(&rows, seq, self.pad_id, &device)?;
        let mut x =
            (self
                .embed
                .embedding(&ids.flatten_all()?)?
                .reshape((b, seq, self.embed.dim(1)?))?
                * self.embed_scale)?;
        let (full_mask, sliding_mask) = self.masks(&lens, seq, dtype, &device)?;
        let global = self.rope(&self.inv_freq_global, seq, dtype, &device)?;
        let local = self.rope(&self.inv_freq_local, seq, dtype, &device)?;
        let (nh, nkv, hd) = (self.heads, self.kv_heads, self.head_dim);
        for l in &self.layers {
            let (mask, (cos, sin)) = if l.sliding {
                (&sliding_mask, &local)
            } else {
                (&full_mask, &global)
            };
            let h = l.input_norm.forward(&x)?;
            let split = |t: Tensor, heads: usize| -> candle_core::Result<Tensor> {
                t.reshape((b, seq, heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = l.q_norm.forward(&split(l.q.forward(&h)?, nh)?)?;
            let k = l.k_norm.forward(&split(l.k.forward(&h)?, nkv)?)?;
            let v = split(l.v.forward(&h)?, nkv)?;
            let q = candle_nn::rotary_emb::rope(&q.contiguous()?, cos, sin)?;
            let k = candle_nn::rotary_emb::rope(&k.contiguous()?, cos, sin)?;
            let k = candle_transformers::utils::repeat_kv(k, nh / nkv)?.contiguous()?;
            let v = candle_transformers::utils::repeat_kv(v, nh / nkv)?.contiguous()?;
            let mut scores = (q.matmul(&k.t()?)? * self.scale)?;
            if let Some(cap) = self.softcap {
                scores = ((scores / cap)?.tanh()? * cap)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(mask)?)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, seq, nh * hd))?;
            let attn = l.post_attn_norm.forward(&l.o.forward(&ctx)?)?;
            x = (x + attn)?;
            let h = l.pre_ff_norm.forward(&x)?;
            let ff = l
                .down
                .forward(&(l.gate.forward(&h)?.gelu()? * l.up.forward(&h)?)?)?;
            x = (x + l.post_ff_norm.forward(&ff)?)?;
        }
        Ok((self.norm.forward(&x)?, lens))
    }
}

impl Backend for Gemma3 {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let (hidden, _) = self.hidden(batch)?;
        Ok(pool_hidden(
            &hidden,
            batch,
            PaddingSide::Right,
            self.pooling,
        )?)
    }
}
