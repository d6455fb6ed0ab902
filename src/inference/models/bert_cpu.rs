//! BERT's forward pass (also XLM-RoBERTa's) on infermon's CPU kernels, for
//! f32 on the CPU: packed batches (no padding), fused QKV, bias folded into
//! every matrix product, fused GELU and residual+LayerNorm passes. See
//! [`crate::inference::kernels`] for why.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::bert::BertConfig;
use crate::inference::kernels::{Activation, LayerNorm, Linear, attention};
use crate::inference::pooling::{Pooling, pool_packed};
use crate::inference::{Encoded, InferenceError};

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// The encoder's weights as plain f32 buffers.
pub(crate) struct CpuEncoder {
    word: Vec<f32>,
    position: Vec<f32>,
    segment: Vec<f32>,
    norm: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    head_dim: usize,
    act: Activation,
    vocab: usize,
    type_vocab: usize,
    position_offset: usize,
    max_positions: usize,
}

fn vec1(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

fn linear(vb: &VarBuilder, k: usize, n: usize) -> candle_core::Result<Linear> {
    let w = vec1(vb.get((n, k), "weight")?)?;
    Ok(Linear::from_torch(&w, vec1(vb.get(n, "bias")?)?, k, n))
}

fn layer_norm(vb: &VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    Ok(LayerNorm {
        gamma: vec1(vb.get(size, "weight")?)?,
        beta: vec1(vb.get(size, "bias")?)?,
        eps: eps as f32,
    })
}

impl CpuEncoder {
    /// Loads embeddings and layers from `vb` (at the model prefix).
    pub(crate) fn load(
        vb: &VarBuilder,
        cfg: &BertConfig,
        position_offset: usize,
    ) -> Result<CpuEncoder, String> {
        let act = cfg.activation()?;
        let (h, heads, head_dim) = (cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim()?);
        let load = || -> candle_core::Result<CpuEncoder> {
            let e = vb.pp("embeddings");
            let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
            for i in 0..cfg.num_hidden_layers {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention.self");
                // Query, key and value as one [3h, h] matrix; 1/sqrt(d) folded into the query.
                let scale = 1.0 / (head_dim as f64).sqrt();
                let w = Tensor::cat(
                    &[
                        (a.get((h, h), "query.weight")? * scale)?,
                        a.get((h, h), "key.weight")?,
                        a.get((h, h), "value.weight")?,
                    ],
                    0,
                )?;
                let b = Tensor::cat(
                    &[
                        (a.get(h, "query.bias")? * scale)?,
                        a.get(h, "key.bias")?,
                        a.get(h, "value.bias")?,
                    ],
                    0,
                )?;
                layers.push(Layer {
                    qkv: Linear::from_torch(&vec1(w)?, vec1(b)?, h, 3 * h),
                    attn_out: linear(&l.pp("attention.output.dense"), h, h)?,
                    attn_norm: layer_norm(
                        &l.pp("attention.output.LayerNorm"),
                        h,
                        cfg.layer_norm_eps,
                    )?,
                    up: linear(&l.pp("intermediate.dense"), h, cfg.intermediate_size)?,
                    down: linear(&l.pp("output.dense"), cfg.intermediate_size, h)?,
                    out_norm: layer_norm(&l.pp("output.LayerNorm"), h, cfg.layer_norm_eps)?,
                });
            }
            Ok(CpuEncoder {
                word: vec1(e.get((cfg.vocab_size, h), "word_embeddings.weight")?)?,
                position: vec1(e.get(
                    (cfg.max_position_embeddings, h),
                    "position_embeddings.weight",
                )?)?,
                segment: vec1(e.get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?)?,
                norm: layer_norm(&e.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
                layers,
                hidden: h,
                heads,
                head_dim,
                act,
                vocab: cfg.vocab_size,
                type_vocab: cfg.type_vocab_size,
                position_offset,
                max_positions: cfg.max_position_embeddings.saturating_sub(position_offset),
            })
        };
        load().map_err(|e| e.to_string())
    }

    /// The longest input the position table allows.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Hidden states `[tokens, hidden]` of the packed batch and each
    /// sequence's first row (plus the total at the end).
    pub(crate) fn forward(
        &self,
        batch: &[&Encoded],
    ) -> Result<(Vec<f32>, Vec<usize>), InferenceError> {
        let h = self.hidden;
        let mut offsets = Vec::with_capacity(batch.len() + 1);
        offsets.push(0);
        for e in batch {
            let len = e.len().clamp(1, self.max_positions);
            offsets.push(offsets.last().copied().unwrap_or(0) + len);
        }
        let tokens = offsets.last().copied().unwrap_or(0);
        // Embeddings: word + position + segment, then LayerNorm.
        let mut x = vec![0f32; tokens * h];
        for (s, e) in batch.iter().enumerate() {
            for t in 0..offsets[s + 1] - offsets[s] {
                let id = e.ids.get(t).copied().unwrap_or(0) as usize;
                let ty = e.type_ids.get(t).copied().unwrap_or(0) as usize;
                if id >= self.vocab || ty >= self.type_vocab {
                    return Err(InferenceError::Validation(format!(
                        "token id {id} is outside the model's vocabulary"
                    )));
                }
                let row = &mut x[(offsets[s] + t) * h..(offsets[s] + t + 1) * h];
                let (w, p, g) = (
                    &self.word[id * h..(id + 1) * h],
                    &self.position
                        [(self.position_offset + t) * h..(self.position_offset + t + 1) * h],
                    &self.segment[ty * h..(ty + 1) * h],
                );
                for i in 0..h {
                    row[i] = w[i] + p[i] + g[i];
                }
            }
        }
        self.norm.forward(&mut x);
        for l in &self.layers {
            let qkv = l.qkv.forward(&x, tokens, Activation::None);
            let ctx = attention(&qkv, &offsets, self.heads, self.head_dim);
            let mut attn = l.attn_out.forward(&ctx, tokens, Activation::None);
            l.attn_norm.add_forward(&mut attn, &x);
            let up = l.up.forward(&attn, tokens, self.act);
            let mut out = l.down.forward(&up, tokens, Activation::None);
            l.out_norm.add_forward(&mut out, &attn);
            x = out;
        }
        Ok((x, offsets))
    }
}

/// What sits on top of the CPU encoder.
pub(crate) enum CpuHead {
    /// Pool token states into an embedding.
    Pool(Pooling),
    /// Cross-encoder: tanh(dense(CLS)) → one logit.
    Classify {
        /// BERT's pooler / RoBERTa's classifier.dense.
        dense: Linear,
        /// BERT's classifier / RoBERTa's classifier.out_proj.
        out: Linear,
    },
}

impl CpuHead {
    pub(crate) fn classify(
        dense: &VarBuilder,
        out: &VarBuilder,
        hidden: usize,
    ) -> candle_core::Result<CpuHead> {
        Ok(CpuHead::Classify {
            dense: linear(dense, hidden, hidden)?,
            out: linear(out, hidden, 1)?,
        })
    }

    /// Pools or classifies the packed states of `batch` (`offsets` as
    /// the encoder returned them).
    pub(crate) fn apply(
        &self,
        hidden: &[f32],
        offsets: &[usize],
        width: usize,
        batch: &[&Encoded],
    ) -> Vec<Vec<f32>> {
        match self {
            CpuHead::Pool(mode) => {
                let skips: Vec<usize> = batch.iter().map(|e| e.pool_skip).collect();
                pool_packed(hidden, width, offsets, &skips, *mode)
            }
            CpuHead::Classify { dense, out } => {
                let n = offsets.len().saturating_sub(1);
                let mut cls = Vec::with_capacity(n * width);
                for &start in &offsets[..n] {
                    cls.extend_from_slice(&hidden[start * width..(start + 1) * width]);
                }
                let mut pooled = dense.forward(&cls, n, Activation::None);
                pooled.par_iter_mut().for_each(|v| *v = v.tanh());
                out.forward(&pooled, n, Activation::None)
                    .chunks(out.n)
                    .map(|r| r[..1].to_vec())
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::ModelConfig;
    use crate::inference::loader;
    use crate::inference::tokenize::Side;

    /// The CPU kernels and candle's generic ops (the GPU path) agree, on a
    /// batch mixing lengths (padding for candle, packing for the kernels).
    #[test]
    fn cpu_kernels_match_the_candle_path() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let model = "tiny-cross-encoder";
        let run = |candle_only: bool| {
            let yaml = format!(
                "path: {}\ncandle_only: {candle_only}",
                fixtures.join(model).display()
            );
            let cfg: ModelConfig = serde_yaml_ng::from_str(&yaml).unwrap();
            let mut parts = loader::load(&cfg, Path::new(".")).unwrap();
            let docs = [
                "short",
                "a somewhat longer document about gpu memory and latency alerts",
                "",
            ];
            let enc: Vec<_> = docs
                .iter()
                .map(|d| {
                    parts
                        .tokenizer
                        .pair("m", 0, "what is p95", d, Some(Side::Right))
                        .unwrap()
                        .encoded
                })
                .collect();
            let refs: Vec<_> = enc.iter().collect();
            parts.backend.forward(&refs).unwrap()
        };
        let (fast, generic) = (run(false), run(true));
        for (a, b) in fast.iter().zip(&generic) {
            assert!((a[0] - b[0]).abs() < 1e-5, "{model}: {a:?} vs {b:?}");
        }
    }
}
