//! BERT (and the family sharing its weights layout: MiniLM, BGE, GTE) for
//! embeddings and as a cross-encoder (`BertForSequenceClassification`).
//!
//! A forward pass written for CPU speed with candle ops: query, key and value
//! are one fused matmul over all tokens of the batch as a 2-D matrix (one big
//! GEMM instead of one per sequence), the 1/√d attention scale is folded into
//! the query weights at load, weights are stored pre-transposed and
//! contiguous, and the attention mask is added only when the batch is padded.

use std::ops::Range;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;

use crate::inference::kernels::Activation;
use crate::inference::pooling::{PaddingSide, Pooling};
use crate::inference::{Backend, Encoded, InferenceError};

use super::bert_cpu::{CpuEncoder, CpuHead};
use super::{padded, pool_hidden};

/// The config.json fields BERT-like models need.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// `gelu`, `gelu_new`, `gelu_pytorch_tanh` or `relu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Length of the position table.
    pub max_position_embeddings: usize,
    /// Segment types.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: u32,
    /// Classification labels (cross-encoders).
    #[serde(default)]
    pub id2label: Option<std::collections::BTreeMap<String, String>>,
    /// `absolute` (the only kind this encoder implements); `relative_key`
    /// and `relative_key_query` models are refused rather than run wrong.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

impl BertConfig {
    /// The activation `hidden_act` names.
    pub(crate) fn activation(&self) -> Result<Activation, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(format!(
                "hidden_act {other:?} is not supported (gelu, gelu_new, relu)"
            )),
        }
    }

    /// Refuses position embeddings other than absolute ones: run with the
    /// absolute table, a relative-position model gives wrong vectors.
    pub(crate) fn check_position_embeddings(&self) -> Result<(), String> {
        match self.position_embedding_type.as_deref() {
            None | Some("absolute") => Ok(()),
            Some(other) => Err(format!(
                "config.json position_embedding_type {other:?} is not supported (only \"absolute\")"
            )),
        }
    }

    /// Width of one attention head (`hidden_size` must split evenly).
    pub(crate) fn head_dim(&self) -> Result<usize, String> {
        let (h, heads) = (self.hidden_size, self.num_attention_heads);
        if heads == 0 || !h.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {h} is not a multiple of num_attention_heads {heads}"
            ));
        }
        Ok(h / heads)
    }
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

/// `y = x·Wᵀ + b` with `Wᵀ` stored contiguous, over a 2-D `x`.
pub(crate) struct Dense {
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    pub(crate) fn load(vb: &VarBuilder, input: usize, output: usize) -> candle_core::Result<Dense> {
        let weight = vb.get((output, input), "weight")?;
        let bias = vb.get(output, "bias")?;
        Dense::from_parts(weight, Some(bias))
    }

    pub(crate) fn from_parts(weight: Tensor, bias: Option<Tensor>) -> candle_core::Result<Dense> {
        Ok(Dense {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.matmul(&self.weight_t)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

pub(crate) struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    pub(crate) fn load(vb: &VarBuilder, size: usize, eps: f64) -> candle_core::Result<Norm> {
        Ok(Norm {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    up: Dense,
    down: Dense,
    out_norm: Norm,
}

/// Word + position + segment embeddings and LayerNorm.
pub(crate) struct Embeddings {
    word: Tensor,
    position: Tensor,
    segment: Tensor,
    norm: Norm,
    /// Position ids start here (0 for BERT, padding_idx + 1 for RoBERTa).
    position_offset: usize,
}

impl Embeddings {
    pub(crate) fn load(
        vb: &VarBuilder,
        cfg: &BertConfig,
        position_offset: usize,
    ) -> candle_core::Result<Embeddings> {
        let h = cfg.hidden_size;
        Ok(Embeddings {
            word: vb.get((cfg.vocab_size, h), "word_embeddings.weight")?,
            position: vb.get(
                (cfg.max_position_embeddings, h),
                "position_embeddings.weight",
            )?,
            segment: vb.get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?,
            norm: Norm::load(&vb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            position_offset,
        })
    }

    /// `[batch·seq, hidden]` embeddings of right-padded `ids`/`types`.
    fn forward(
        &self,
        ids: &Tensor,
        types: &Tensor,
        batch: usize,
        seq: usize,
    ) -> candle_core::Result<Tensor> {
        let words = self.word.embedding(&ids.flatten_all()?)?;
        let segments = self.segment.embedding(&types.flatten_all()?)?;
        let h = words.dim(1)?;
        let positions = self.position.narrow(0, self.position_offset, seq)?;
        let x = (words + segments)?
            .reshape((batch, seq, h))?
            .broadcast_add(&positions)?;
        self.norm.forward(&x.reshape((batch * seq, h))?)
    }
}

/// The transformer layers of a BERT-like encoder.
pub(crate) struct Encoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    act: Activation,
    pad_id: u32,
    max_positions: usize,
}

impl Encoder {
    /// Loads embeddings and layers from `vb` (already at the model prefix).
    pub(crate) fn load(
        vb: &VarBuilder,
        cfg: &BertConfig,
        position_offset: usize,
    ) -> Result<Encoder, String> {
        let act = cfg.activation()?;
        let (h, heads, head_dim) = (cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim()?);
        let load = || -> candle_core::Result<Encoder> {
            let embeddings = Embeddings::load(&vb.pp("embeddings"), cfg, position_offset)?;
            let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
            for i in 0..cfg.num_hidden_layers {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention.self");
                // Fold 1/sqrt(d) into the query projection: one multiply less per score.
                let scale = 1.0 / (head_dim as f64).sqrt();
                let qw = (a.get((h, h), "query.weight")? * scale)?;
                let qb = (a.get(h, "query.bias")? * scale)?;
                let w = Tensor::cat(
                    &[
                        qw,
                        a.get((h, h), "key.weight")?,
                        a.get((h, h), "value.weight")?,
                    ],
                    0,
                )?;
                let b = Tensor::cat(&[qb, a.get(h, "key.bias")?, a.get(h, "value.bias")?], 0)?;
                layers.push(Layer {
                    qkv: Dense::from_parts(w, Some(b))?,
                    attn_out: Dense::load(&l.pp("attention.output.dense"), h, h)?,
                    attn_norm: Norm::load(
                        &l.pp("attention.output.LayerNorm"),
                        h,
                        cfg.layer_norm_eps,
                    )?,
                    up: Dense::load(&l.pp("intermediate.dense"), h, cfg.intermediate_size)?,
                    down: Dense::load(&l.pp("output.dense"), cfg.intermediate_size, h)?,
                    out_norm: Norm::load(&l.pp("output.LayerNorm"), h, cfg.layer_norm_eps)?,
                });
            }
            Ok(Encoder {
                embeddings,
                layers,
                heads,
                head_dim,
                act,
                pad_id: cfg.pad_token_id,
                max_positions: cfg.max_position_embeddings.saturating_sub(position_offset),
            })
        };
        load().map_err(|e| e.to_string())
    }

    /// The longest input the position table allows.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Hidden states `[batch, seq, hidden]` of the right-padded batch.
    pub(crate) fn forward(&self, batch: &[&Encoded]) -> candle_core::Result<Tensor> {
        let device = self.embeddings.word.device().clone();
        let dtype = self.embeddings.word.dtype();
        let b = batch.len();
        let (seq, id_rows) = super::id_rows(batch, self.max_positions);
        let type_rows: Vec<&[u32]> = batch
            .iter()
            .map(|e| &e.type_ids[..e.type_ids.len().min(seq)])
            .collect();
        let ids = padded(&id_rows, seq, self.pad_id, &device)?;
        let types = padded(&type_rows, seq, 0, &device)?;
        let mask = attention_mask(batch, seq, dtype, &device)?;
        let mut x = self.embeddings.forward(&ids, &types, b, seq)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, b, seq, mask.as_ref())?;
        }
        x.reshape((b, seq, self.heads * self.head_dim))
    }

    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        b: usize,
        seq: usize,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (nh, hd) = (self.heads, self.head_dim);
        let h = nh * hd;
        let qkv = l.qkv.forward(x)?.reshape((b, seq, 3, nh, hd))?;
        let part = |i: usize| {
            qkv.narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = q.matmul(&k.t()?)?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b * seq, h))?;
        let attn = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + x)?)?;
        let up = l.up.forward(&attn)?;
        let up = match self.act {
            Activation::Gelu => up.gelu_erf()?,
            Activation::GeluTanh => up.gelu()?,
            Activation::Relu => up.relu()?,
            Activation::None => up,
        };
        l.out_norm.forward(&(l.down.forward(&up)? + attn)?)
    }
}

/// Additive mask `[batch, 1, 1, seq]` hiding padding, or `None` when every
/// input has the same length (no padding to hide).
fn attention_mask(
    batch: &[&Encoded],
    seq: usize,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Option<Tensor>> {
    if batch.iter().all(|e| e.len() >= seq) {
        return Ok(None);
    }
    let mut m = Vec::with_capacity(batch.len() * seq);
    for e in batch {
        let n = e.len().min(seq);
        m.extend(std::iter::repeat_n(0f32, n));
        m.extend(std::iter::repeat_n(f32::NEG_INFINITY, seq - n));
    }
    Tensor::from_vec(m, (batch.len(), 1, 1, seq), device)?
        .to_dtype(dtype)
        .map(Some)
}

/// What sits on top of the encoder.
pub(crate) enum Head {
    /// Pool token states into an embedding.
    Pool(Pooling),
    /// Cross-encoder: tanh(dense(CLS)) → one logit.
    Classify {
        /// BERT's pooler / RoBERTa's classifier.dense.
        dense: Dense,
        /// BERT's classifier / RoBERTa's classifier.out_proj.
        out: Dense,
    },
}

impl Head {
    pub(crate) fn classify(
        dense: &VarBuilder,
        out: &VarBuilder,
        hidden: usize,
    ) -> candle_core::Result<Head> {
        Ok(Head::Classify {
            dense: Dense::load(dense, hidden, hidden)?,
            out: Dense::load(out, hidden, 1)?,
        })
    }

    pub(crate) fn apply(
        &self,
        hidden: &Tensor,
        batch: &[&Encoded],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        match self {
            Head::Pool(mode) => pool_hidden(hidden, batch, PaddingSide::Right, *mode),
            Head::Classify { dense, out } => {
                let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
                let logits = out.forward(&dense.forward(&cls)?.tanh()?)?;
                let logits = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                Ok(logits
                    .into_iter()
                    .map(|row| row.into_iter().take(1).collect())
                    .collect())
            }
        }
    }
}

/// Which implementation runs the encoder.
enum Engine {
    /// candle ops: any device and dtype.
    Candle(Encoder, Head),
    /// infermon's CPU kernels: CPU and f32 only, and faster there.
    Cpu(Box<CpuEncoder>, CpuHead),
}

/// A BERT-like encoder with its head, shared by BERT and XLM-RoBERTa.
pub struct EncoderModel {
    engine: Engine,
}

/// Where the head's weights are, for a cross-encoder.
pub(crate) struct HeadPaths<'a> {
    /// tanh dense layer over [CLS].
    pub dense: VarBuilder<'a>,
    /// The one-logit output layer.
    pub out: VarBuilder<'a>,
}

impl EncoderModel {
    /// Loads the encoder at `root` and either pooling (`pooling: Some`) or
    /// the classifier at `head` (`pooling: None`). The CPU kernels serve
    /// f32 on the CPU unless `candle_only`.
    pub(crate) fn load(
        root: &VarBuilder,
        head: HeadPaths,
        cfg: &BertConfig,
        position_offset: usize,
        pooling: Option<Pooling>,
        candle_only: bool,
    ) -> Result<EncoderModel, String> {
        cfg.check_position_embeddings()?;
        if pooling.is_none() {
            let labels = cfg.id2label.as_ref().map_or(1, |l| l.len());
            if labels != 1 {
                return Err(format!(
                    "a reranker needs exactly one output label; config.json has {labels} (id2label)"
                ));
            }
        }
        let cpu = root.device().is_cpu() && root.dtype() == DType::F32 && !candle_only;
        let engine = if cpu {
            let encoder = CpuEncoder::load(root, cfg, position_offset)?;
            let head = match pooling {
                Some(p) => CpuHead::Pool(p),
                None => CpuHead::classify(&head.dense, &head.out, cfg.hidden_size)
                    .map_err(|e| e.to_string())?,
            };
            Engine::Cpu(Box::new(encoder), head)
        } else {
            let encoder = Encoder::load(root, cfg, position_offset)?;
            let head = match pooling {
                Some(p) => Head::Pool(p),
                None => Head::classify(&head.dense, &head.out, cfg.hidden_size)
                    .map_err(|e| e.to_string())?,
            };
            Engine::Candle(encoder, head)
        };
        Ok(EncoderModel { engine })
    }

    /// The longest input the position table allows.
    pub fn max_positions(&self) -> usize {
        match &self.engine {
            Engine::Candle(e, _) => e.max_positions(),
            Engine::Cpu(e, _) => e.max_positions(),
        }
    }
}

impl Backend for EncoderModel {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        match &self.engine {
            Engine::Candle(encoder, head) => {
                let hidden = encoder.forward(batch)?;
                Ok(head.apply(&hidden, batch)?)
            }
            Engine::Cpu(encoder, head) => {
                let slices = slices(batch, cpu_slice_tokens(), rayon::current_num_threads());
                // Slices run side by side on the pool (each op inside one
                // still splits when a thread is idle), so the threads meet
                // once per slice rather than at every op.
                let run = |r: &Range<usize>| {
                    let slice = &batch[r.clone()];
                    let (hidden, offsets) = encoder.forward(slice)?;
                    let width = hidden.len() / offsets.last().copied().unwrap_or(1).max(1);
                    Ok::<_, InferenceError>(head.apply(&hidden, &offsets, width, slice))
                };
                let parts: Vec<_> = slices.par_iter().map(run).collect::<Result<_, _>>()?;
                Ok(parts.into_iter().flatten().collect())
            }
        }
    }
}

/// Cuts a batch into runs of consecutive sequences for the CPU kernels.
/// Sequences are independent, so each slice is a forward pass of its own:
/// at most `max_tokens` (the activations of one slice stay in the core's L2
/// cache; one 32×29-token pass was measured slower per text than 8×29), and
/// at least one slice per thread where there are enough sequences (slices
/// side by side scale better than one slice's ops split across threads:
/// batch 8 went from 402 to 605 texts/s). A sequence longer than the limit
/// is a slice alone.
fn slices(batch: &[&Encoded], max_tokens: usize, threads: usize) -> Vec<Range<usize>> {
    let total: usize = batch.iter().map(|e| e.len()).sum();
    let per_slice = max_tokens.min(total.div_ceil(threads.max(1))).max(1);
    let mut slices = Vec::new();
    let mut start = 0;
    while start < batch.len() {
        let mut end = start + 1;
        let mut tokens = batch[start].len();
        while end < batch.len() && tokens + batch[end].len() <= per_slice {
            tokens += batch[end].len();
            end += 1;
        }
        slices.push(start..end);
        start = end;
    }
    slices
}

/// Tokens per forward slice on the CPU; `INFERMON_CPU_SLICE_TOKENS`
/// overrides it for tuning on other CPUs.
fn cpu_slice_tokens() -> usize {
    static SLICE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SLICE.get_or_init(|| {
        std::env::var("INFERMON_CPU_SLICE_TOKENS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(256)
    })
}

/// Where the encoder's weights are: under `prefix.` (the task models'
/// layout) or at the root (the bare model's).
pub(crate) fn encoder_root<'a>(vb: &VarBuilder<'a>, prefix: &str) -> VarBuilder<'a> {
    if vb.contains_tensor(&format!("{prefix}.embeddings.word_embeddings.weight")) {
        vb.pp(prefix)
    } else {
        vb.clone()
    }
}

/// `BertModel` / `BertForSequenceClassification` (weights under `bert.` or
/// at the root; the head at `bert.pooler.dense` and `classifier`).
pub fn load(
    vb: VarBuilder,
    cfg: &BertConfig,
    pooling: Option<Pooling>,
    candle_only: bool,
) -> Result<EncoderModel, String> {
    let root = encoder_root(&vb, "bert");
    let head = HeadPaths {
        dense: root.pp("pooler.dense"),
        out: vb.pp("classifier"),
    };
    EncoderModel::load(&root, head, cfg, 0, pooling, candle_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(batch: &[usize], max_tokens: usize, threads: usize) -> Vec<Range<usize>> {
        let enc: Vec<Encoded> = batch
            .iter()
            .map(|&n| Encoded {
                ids: vec![1; n],
                type_ids: vec![0; n],
                pool_skip: 0,
            })
            .collect();
        let refs: Vec<&Encoded> = enc.iter().collect();
        slices(&refs, max_tokens, threads)
    }

    #[test]
    fn slices_cover_the_batch_in_order_within_the_limits() {
        // 8 × 29 tokens on 2 threads: two slices of 4, not one of 8.
        assert_eq!(lens(&[29; 8], 256, 2), vec![0..4, 4..8]);
        // 32 × 29 on 2 threads: the 256-token cap gives 4 slices of 8.
        assert_eq!(lens(&[29; 32], 256, 2), vec![0..8, 8..16, 16..24, 24..32]);
        // One sequence stays whole; an oversized one is a slice alone.
        assert_eq!(lens(&[29], 256, 2), vec![0..1]);
        assert_eq!(lens(&[10, 400, 10], 256, 1), vec![0..1, 1..2, 2..3]);
        assert!(lens(&[], 256, 2).is_empty());
    }
}
