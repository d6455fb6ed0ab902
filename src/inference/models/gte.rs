//! Alibaba's GTE encoder (`NewModel`, from the hub's Alibaba-NLP/new-impl:
//! gte-multilingual-base, gte-base/large-en-v1.5, snowflake-arctic-embed-m-v2.0)
//! and its reranker head (`NewForSequenceClassification`,
//! gte-multilingual-reranker-base). A post-norm BERT with RoPE (optionally
//! with fixed or mixed NTK scaling), a packed q/k/v projection and a gated
//! MLP (`act(gate) · up`). candle-transformers has no such model, so it is
//! written on candle ops (any device and dtype).

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::bert::{Dense, Norm};
use super::{padded, pool_hidden};
use crate::inference::pooling::{PaddingSide, Pooling};
use crate::inference::{Backend, Encoded, InferenceError};

#[derive(Deserialize)]
struct GteConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_norm_type")]
    layer_norm_type: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_position_type")]
    position_embedding_type: String,
    #[serde(default = "default_theta")]
    rope_theta: f64,
    #[serde(default)]
    rope_scaling: Option<RopeScaling>,
    /// What transformers 5 writes instead of `rope_scaling` when it saves
    /// this model again.
    #[serde(default)]
    rope_parameters: Option<serde_json::Value>,
    #[serde(default = "default_true")]
    pack_qkv: bool,
    #[serde(default)]
    logn_attention_scale: bool,
    #[serde(default)]
    num_labels: Option<usize>,
    #[serde(default)]
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RopeScaling {
    #[serde(rename = "type", alias = "rope_type")]
    kind: String,
    factor: f64,
    #[serde(default)]
    mixed_b: Option<f64>,
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_positions() -> usize {
    2048
}
fn default_type_vocab() -> usize {
    1
}
fn default_norm_type() -> String {
    "layer_norm".to_string()
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_type() -> String {
    "rope".to_string()
}
fn default_theta() -> f64 {
    10000.0
}
fn default_true() -> bool {
    true
}

/// The gated MLP's activation (`hidden_act`).
#[derive(Clone, Copy)]
enum Act {
    Gelu,
    GeluTanh,
    Silu,
    Relu,
}

impl Act {
    fn parse(name: &str) -> Result<Act, String> {
        Ok(match name {
            "gelu" => Act::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "silu" | "swish" => Act::Silu,
            "relu" => Act::Relu,
            other => return Err(format!("config.json hidden_act {other:?} is not supported")),
        })
    }

    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Act::Gelu => x.gelu_erf(),
            Act::GeluTanh => x.gelu(),
            Act::Silu => x.silu(),
            Act::Relu => x.relu(),
        }
    }
}

/// LayerNorm or RMSNorm (`layer_norm_type`), as the encoder layers use.
enum LayerNorm {
    Layer(Norm),
    Rms { weight: Tensor, eps: f32 },
}

impl LayerNorm {
    fn load(vb: &VarBuilder, kind: &str, size: usize, eps: f64) -> candle_core::Result<Self> {
        if kind == "rms_norm" {
            Ok(LayerNorm::Rms {
                weight: vb.get(size, "weight")?,
                eps: eps as f32,
            })
        } else {
            Ok(LayerNorm::Layer(Norm::load(vb, size, eps)?))
        }
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            LayerNorm::Layer(n) => n.forward(x),
            LayerNorm::Rms { weight, eps } => candle_nn::ops::rms_norm(x, weight, *eps),
        }
    }
}

enum Qkv {
    Packed(Dense),
    Split(Dense, Dense, Dense),
}

struct Layer {
    qkv: Qkv,
    o: Dense,
    attn_norm: LayerNorm,
    /// `[hidden, 2·intermediate]`, no bias: up then gate halves.
    up_gate: Dense,
    down: Dense,
    mlp_norm: LayerNorm,
}

/// The reranker head: `tanh(dense(first token))`, then the classifier.
struct Head {
    pooler: Dense,
    classifier: Dense,
}

/// A loaded GTE embedder or reranker.
pub struct Gte {
    word: Tensor,
    /// The first segment embedding (the only one a text uses), if any.
    segment: Option<Tensor>,
    emb_norm: Norm,
    layers: Vec<Layer>,
    /// `[max_positions, head_dim / 2]` RoPE tables.
    cos: Tensor,
    sin: Tensor,
    heads: usize,
    head_dim: usize,
    intermediate: usize,
    act: Act,
    output: Output,
    max_positions: usize,
}

enum Output {
    Pool(Pooling),
    Classify(Head),
}

/// The RoPE inverse frequencies of the authors' `RotaryEmbedding` and
/// `NTKScalingRotaryEmbedding` (which always applies its scaling: its
/// table is built for `factor` times the trained length).
fn inv_freq(dim: usize, theta: f64, scaling: Option<&RopeScaling>) -> Vec<f64> {
    let half = dim / 2;
    let plain = |base: f64| -> Vec<f64> {
        (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f64 / dim as f64))
            .collect()
    };
    match scaling {
        None => plain(theta),
        Some(s) => match s.mixed_b {
            None => {
                let shrink = s.factor.powf(2.0 / dim as f64);
                plain(theta * s.factor).iter().map(|f| f / shrink).collect()
            }
            Some(b) => {
                let a = s.factor.ln() / (half as f64).powf(b);
                plain(theta)
                    .iter()
                    .enumerate()
                    .map(|(i, f)| f / (a * ((i + 1) as f64).powf(b)).exp())
                    .collect()
            }
        },
    }
}

impl Gte {
    /// Loads `NewModel` weights (at the root or under `new.`); with
    /// `pooling` None, the `NewForSequenceClassification` head too.
    pub fn load(
        vb: VarBuilder,
        config_text: &str,
        pooling: Option<Pooling>,
    ) -> Result<Gte, String> {
        let mut cfg: GteConfig = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        if cfg.rope_scaling.is_none()
            && let Some(p) = cfg.rope_parameters.as_ref().filter(|p| !p.is_null())
        {
            let text = |k: &str| p.get(k).and_then(serde_json::Value::as_str);
            let number = |k: &str| p.get(k).and_then(serde_json::Value::as_f64);
            if let Some(theta) = number("rope_theta") {
                cfg.rope_theta = theta;
            }
            match text("rope_type").or_else(|| text("type")) {
                None | Some("default") => {}
                Some(kind) => {
                    cfg.rope_scaling = Some(RopeScaling {
                        kind: kind.to_string(),
                        factor: number("factor").ok_or(
                            "config.json rope_parameters has a scaling type but no factor",
                        )?,
                        mixed_b: number("mixed_b"),
                    });
                }
            }
        }
        if cfg.position_embedding_type != "rope" {
            return Err(format!(
                "config.json position_embedding_type {:?} is not supported (only \"rope\")",
                cfg.position_embedding_type
            ));
        }
        if cfg.logn_attention_scale {
            return Err("config.json logn_attention_scale true is not supported".to_string());
        }
        if let Some(s) = &cfg.rope_scaling
            && s.kind != "ntk"
        {
            return Err(format!(
                "config.json rope_scaling type {:?} is not supported (only \"ntk\", as the authors' code)",
                s.kind
            ));
        }
        if !matches!(cfg.layer_norm_type.as_str(), "layer_norm" | "rms_norm") {
            return Err(format!(
                "config.json layer_norm_type {:?} is not layer_norm or rms_norm",
                cfg.layer_norm_type
            ));
        }
        let act = Act::parse(&cfg.hidden_act)?;
        let heads = cfg.num_attention_heads;
        if heads == 0 || !cfg.hidden_size.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {heads}",
                cfg.hidden_size
            ));
        }
        let head_dim = cfg.hidden_size / heads;
        if pooling.is_none() {
            let labels = cfg
                .num_labels
                .or(cfg.id2label.as_ref().map(|m| m.len()))
                .unwrap_or(2);
            if labels != 1 {
                return Err(format!(
                    "a reranker needs one label (a relevance score); config.json has {labels}"
                ));
            }
        }
        let root = if vb.contains_tensor("new.embeddings.word_embeddings.weight") {
            vb.pp("new")
        } else {
            vb.clone()
        };
        let (h, eps, inter) = (cfg.hidden_size, cfg.layer_norm_eps, cfg.intermediate_size);
        let norm_type = cfg.layer_norm_type.as_str();
        let device = vb.device().clone();
        let load = || -> candle_core::Result<Gte> {
            let e = root.pp("embeddings");
            let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
            for i in 0..cfg.num_hidden_layers {
                let l = root.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                let qkv = if cfg.pack_qkv {
                    Qkv::Packed(Dense::load(&a.pp("qkv_proj"), h, 3 * h)?)
                } else {
                    Qkv::Split(
                        Dense::load(&a.pp("q_proj"), h, h)?,
                        Dense::load(&a.pp("k_proj"), h, h)?,
                        Dense::load(&a.pp("v_proj"), h, h)?,
                    )
                };
                let up_gate = l.pp("mlp.up_gate_proj").get((2 * inter, h), "weight")?;
                layers.push(Layer {
                    qkv,
                    o: Dense::load(&a.pp("o_proj"), h, h)?,
                    attn_norm: LayerNorm::load(&l.pp("attn_ln"), norm_type, h, eps)?,
                    up_gate: Dense::from_parts(up_gate, None)?,
                    down: Dense::load(&l.pp("mlp.down_proj"), inter, h)?,
                    mlp_norm: LayerNorm::load(&l.pp("mlp_ln"), norm_type, h, eps)?,
                });
            }
            let segment = if cfg.type_vocab_size > 0 {
                Some(
                    e.get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?
                        .narrow(0, 0, 1)?,
                )
            } else {
                None
            };
            let output = match pooling {
                Some(p) => Output::Pool(p),
                None => Output::Classify(Head {
                    pooler: Dense::load(&root.pp("pooler.dense"), h, h)?,
                    classifier: Dense::load(&vb.pp("classifier"), h, 1)?,
                }),
            };
            let freqs = inv_freq(head_dim, cfg.rope_theta, cfg.rope_scaling.as_ref());
            let n = cfg.max_position_embeddings;
            let mut angles = Vec::with_capacity(n * freqs.len());
            for p in 0..n {
                // The authors' tables are f32 products of f32 frequencies.
                angles.extend(freqs.iter().map(|f| p as f32 * *f as f32));
            }
            let angles = Tensor::from_vec(angles, (n, freqs.len()), &device)?;
            let dtype = root.dtype();
            Ok(Gte {
                word: e.get((cfg.vocab_size, h), "word_embeddings.weight")?,
                segment,
                emb_norm: Norm::load(&e.pp("LayerNorm"), h, eps)?,
                layers,
                cos: angles.cos()?.to_dtype(dtype)?,
                sin: angles.sin()?.to_dtype(dtype)?,
                heads,
                head_dim,
                intermediate: inter,
                act,
                output,
                max_positions: n,
            })
        };
        load().map_err(|e| e.to_string())
    }

    /// The longest input: the RoPE table the config sizes.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    fn hidden(&self, batch: &[&Encoded]) -> candle_core::Result<Tensor> {
        let device = self.word.device().clone();
        let dtype = self.word.dtype();
        let (nh, hd) = (self.heads, self.head_dim);
        let h = nh * hd;
        let b = batch.len();
        let (seq, rows) = super::id_rows(batch, self.max_positions);
        let ids = padded(&rows, seq, 0, &device)?;
        let mut x = self.word.embedding(&ids.flatten_all()?)?;
        if let Some(s) = &self.segment {
            x = x.broadcast_add(s)?;
        }
        let mut x = self.emb_norm.forward(&x)?;

        let mut mask = Vec::with_capacity(b * seq);
        for row in &rows {
            mask.extend(std::iter::repeat_n(0f32, row.len()));
            mask.extend(std::iter::repeat_n(f32::NEG_INFINITY, seq - row.len()));
        }
        let mask = Tensor::from_vec(mask, (b, 1, 1, seq), &device)?.to_dtype(dtype)?;
        let cos = self.cos.narrow(0, 0, seq)?.contiguous()?;
        let sin = self.sin.narrow(0, 0, seq)?.contiguous()?;
        let scale = 1.0 / (hd as f64).sqrt();
        for l in &self.layers {
            let (q, k, v) = match &l.qkv {
                Qkv::Packed(d) => {
                    let qkv = d.forward(&x)?;
                    (
                        qkv.narrow(1, 0, h)?,
                        qkv.narrow(1, h, h)?,
                        qkv.narrow(1, 2 * h, h)?,
                    )
                }
                Qkv::Split(q, k, v) => (q.forward(&x)?, k.forward(&x)?, v.forward(&x)?),
            };
            let heads = |t: Tensor| -> candle_core::Result<Tensor> {
                t.reshape((b, seq, nh, hd))?.transpose(1, 2)?.contiguous()
            };
            let q = candle_nn::rotary_emb::rope(&heads(q)?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&heads(k)?, &cos, &sin)?;
            let v = heads(v)?;
            let scores = ((q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask))?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b * seq, h))?;
            let attn = l.attn_norm.forward(&(l.o.forward(&ctx)? + &x)?)?;
            let up_gate = l.up_gate.forward(&attn)?;
            let up = up_gate.narrow(1, 0, self.intermediate)?;
            let gate =
                self.act
                    .apply(&up_gate.narrow(1, self.intermediate, self.intermediate)?)?;
            x = l
                .mlp_norm
                .forward(&(l.down.forward(&(gate * up)?)? + attn)?)?;
        }
        x.reshape((b, seq, h))
    }
}

impl Backend for Gte {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let hidden = self.hidden(batch)?;
        match &self.output {
            Output::Pool(p) => Ok(pool_hidden(
                &hidden.to_dtype(DType::F32)?,
                batch,
                PaddingSide::Right,
                *p,
            )?),
            Output::Classify(head) => {
                let first = hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
                let pooled = head.pooler.forward(&first)?.tanh()?;
                Ok(head
                    .classifier
                    .forward(&pooled)?
                    .to_dtype(DType::F32)?
                    .to_vec2::<f32>()?)
            }
        }
    }
}

/// Used by the loader to tell a `GteModel` folder in the authors' layout
/// (snowflake-arctic-embed-m-v2.0) from transformers' own GTE port, whose
/// tensors have other names.
pub fn has_authors_layout(vb: &VarBuilder) -> bool {
    ["", "new."].iter().any(|p| {
        vb.contains_tensor(&format!("{p}encoder.layer.0.attention.qkv_proj.weight"))
            || vb.contains_tensor(&format!("{p}encoder.layer.0.attention.q_proj.weight"))
    })
}

#[cfg(test)]
mod tests {
    use super::{RopeScaling, inv_freq};

    #[test]
    fn ntk_scaling_matches_the_authors_formula() {
        // gte-multilingual-base: theta 20000, NTK factor 8, head_dim 64.
        let ntk = RopeScaling {
            kind: "ntk".to_string(),
            factor: 8.0,
            mixed_b: None,
        };
        let f = inv_freq(64, 20000.0, Some(&ntk));
        // 1 / (160000^(2i/64)) / 8^(2/64)
        assert!((f[0] - 1.0 / 8f64.powf(2.0 / 64.0)).abs() < 1e-12);
        assert!((f[31] - 1.0 / 160000f64.powf(62.0 / 64.0) / 8f64.powf(2.0 / 64.0)).abs() < 1e-15);
        let plain = inv_freq(64, 20000.0, None);
        assert_eq!(plain[0], 1.0);
        let mixed = RopeScaling {
            kind: "ntk".to_string(),
            factor: 8.0,
            mixed_b: Some(2.0),
        };
        let m = inv_freq(64, 20000.0, Some(&mixed));
        // λ_32 = exp(ln 8 / 32² · 32²) = 8.
        assert!((m[31] - plain[31] / 8.0).abs() < 1e-15);
    }
}
