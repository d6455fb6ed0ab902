//! MPNet (`MPNetModel`, e.g. all-mpnet-base-v2): a post-norm BERT-like
//! encoder whose attention scores get a learned bias per head and relative
//! position bucket (T5-style buckets: exact up to 8 tokens apart, then
//! log-spaced up to 128), with RoBERTa-style position ids. candle-transformers
//! has no MPNet, so this is written on candle ops (any device and dtype).

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::bert::{BertConfig, Dense, Norm};
use super::{padded, pool_right};
use crate::inference::kernels::Activation;
use crate::inference::pooling::Pooling;
use crate::inference::{Backend, Encoded, InferenceError};

/// transformers' MPNet fixes the padding index at 1 whatever config.json
/// says: position ids count from 2, and a token with id 1 takes position 1.
const PADDING_IDX: u32 = 1;
/// transformers buckets relative positions into 32 buckets regardless of
/// `relative_attention_num_buckets` (which only sizes the table).
const BUCKETS: usize = 32;
const MAX_DISTANCE: f64 = 128.0;

#[derive(Deserialize)]
struct MpNetExtra {
    #[serde(default = "default_buckets")]
    relative_attention_num_buckets: usize,
}

fn default_buckets() -> usize {
    BUCKETS
}

struct Layer {
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
    attn_norm: Norm,
    up: Dense,
    down: Dense,
    out_norm: Norm,
}

/// A loaded MPNet embedder.
pub struct MpNet {
    word: Tensor,
    position: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    /// `[buckets, heads]`.
    relative_bias: Tensor,
    heads: usize,
    head_dim: usize,
    act: Activation,
    pooling: Pooling,
    max_positions: usize,
}

/// The bucket of `relative = key position − query position`, as
/// transformers' `MPNetEncoder.relative_position_bucket`.
fn bucket(relative: i64) -> u32 {
    let half = (BUCKETS / 2) as i64;
    let n = -relative;
    let mut ret = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    ret += if n < max_exact {
        n
    } else {
        let scaled = ((n as f64 / max_exact as f64).ln() / (MAX_DISTANCE / max_exact as f64).ln()
            * (half - max_exact) as f64) as i64;
        (max_exact + scaled).min(half - 1)
    };
    ret as u32
}

impl MpNet {
    /// Loads `MPNetModel` weights (at the root or under `mpnet.`).
    pub fn load(vb: VarBuilder, config_text: &str, pooling: Pooling) -> Result<MpNet, String> {
        let cfg: BertConfig = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        let extra: MpNetExtra = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        if extra.relative_attention_num_buckets < BUCKETS {
            return Err(format!(
                "relative_attention_num_buckets {} is below the {BUCKETS} buckets MPNet uses",
                extra.relative_attention_num_buckets
            ));
        }
        let act = cfg.activation()?;
        let head_dim = cfg.head_dim()?;
        let vb = if vb.contains_tensor("mpnet.embeddings.word_embeddings.weight") {
            vb.pp("mpnet")
        } else {
            vb
        };
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let load = || -> candle_core::Result<MpNet> {
            let e = vb.pp("embeddings");
            let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
            for i in 0..cfg.num_hidden_layers {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention.attn");
                layers.push(Layer {
                    q: Dense::load(&a.pp("q"), h, h)?,
                    k: Dense::load(&a.pp("k"), h, h)?,
                    v: Dense::load(&a.pp("v"), h, h)?,
                    o: Dense::load(&a.pp("o"), h, h)?,
                    attn_norm: Norm::load(&l.pp("attention.LayerNorm"), h, eps)?,
                    up: Dense::load(&l.pp("intermediate.dense"), h, cfg.intermediate_size)?,
                    down: Dense::load(&l.pp("output.dense"), cfg.intermediate_size, h)?,
                    out_norm: Norm::load(&l.pp("output.LayerNorm"), h, eps)?,
                });
            }
            Ok(MpNet {
                word: e.get((cfg.vocab_size, h), "word_embeddings.weight")?,
                position: e.get(
                    (cfg.max_position_embeddings, h),
                    "position_embeddings.weight",
                )?,
                emb_norm: Norm::load(&e.pp("LayerNorm"), h, eps)?,
                layers,
                relative_bias: vb.get(
                    (
                        extra.relative_attention_num_buckets,
                        cfg.num_attention_heads,
                    ),
                    "encoder.relative_attention_bias.weight",
                )?,
                heads: cfg.num_attention_heads,
                head_dim,
                act,
                pooling,
                max_positions: cfg
                    .max_position_embeddings
                    .saturating_sub(PADDING_IDX as usize + 1),
            })
        };
        load().map_err(|e| e.to_string())
    }

    /// The longest input the position table allows.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// `[1, heads, seq, seq]` relative position bias.
    fn position_bias(&self, seq: usize, device: &Device) -> candle_core::Result<Tensor> {
        let buckets: Vec<u32> = (0..seq)
            .flat_map(|i| (0..seq).map(move |j| bucket(j as i64 - i as i64)))
            .collect();
        let buckets = Tensor::from_vec(buckets, seq * seq, device)?;
        self.relative_bias
            .embedding(&buckets)?
            .reshape((seq, seq, self.heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()
    }

    fn hidden(&self, batch: &[&Encoded]) -> candle_core::Result<Tensor> {
        let device = self.word.device().clone();
        let dtype = self.word.dtype();
        let (nh, hd) = (self.heads, self.head_dim);
        let h = nh * hd;
        let b = batch.len();
        let (seq, rows) = super::id_rows(batch, self.max_positions);
        let ids = padded(&rows, seq, PADDING_IDX, &device)?;
        let mut positions = Vec::with_capacity(b * seq);
        for row in &rows {
            let mut count = 0;
            for &id in row.iter() {
                if id == PADDING_IDX {
                    positions.push(PADDING_IDX);
                } else {
                    count += 1;
                    positions.push(PADDING_IDX + count);
                }
            }
            positions.extend(std::iter::repeat_n(PADDING_IDX, seq - row.len()));
        }
        let positions = Tensor::from_vec(positions, b * seq, &device)?;
        let x =
            (self.word.embedding(&ids.flatten_all()?)? + self.position.embedding(&positions)?)?;
        let mut x = self.emb_norm.forward(&x)?;

        let bias = self.position_bias(seq, &device)?.to_dtype(dtype)?;
        let mut mask = Vec::with_capacity(b * seq);
        for row in &rows {
            mask.extend(std::iter::repeat_n(0f32, row.len()));
            mask.extend(std::iter::repeat_n(f32::NEG_INFINITY, seq - row.len()));
        }
        let mask = Tensor::from_vec(mask, (b, 1, 1, seq), &device)?.to_dtype(dtype)?;
        let bias = bias.broadcast_add(&mask)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for l in &self.layers {
            let heads = |d: &Dense| -> candle_core::Result<Tensor> {
                d.forward(&x)?
                    .reshape((b, seq, nh, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (heads(&l.q)?, heads(&l.k)?, heads(&l.v)?);
            let scores = ((q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias))?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b * seq, h))?;
            let attn = l.attn_norm.forward(&(l.o.forward(&ctx)? + &x)?)?;
            let up = l.up.forward(&attn)?;
            let up = match self.act {
                Activation::Gelu => up.gelu_erf()?,
                Activation::GeluTanh => up.gelu()?,
                Activation::Relu => up.relu()?,
                Activation::None => up,
            };
            x = l.out_norm.forward(&(l.down.forward(&up)? + attn)?)?;
        }
        x.reshape((b, seq, h))
    }
}

impl Backend for MpNet {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        // pool_right reads any dtype as f32.
        Ok(pool_right(&self.hidden(batch)?, batch, self.pooling)?)
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_match_transformers() {
        // (key − query, bucket) from transformers' relative_position_bucket.
        let table = [
            (-140, 15),
            (-91, 15),
            (-90, 14),
            (-64, 14),
            (-63, 13),
            (-32, 12),
            (-31, 11),
            (-16, 10),
            (-15, 9),
            (-11, 8),
            (-8, 8),
            (-7, 7),
            (-1, 1),
            (0, 0),
            (1, 17),
            (7, 23),
            (8, 24),
            (12, 25),
            (16, 26),
            (23, 27),
            (32, 28),
            (46, 29),
            (64, 30),
            (91, 31),
            (140, 31),
        ];
        for (relative, want) in table {
            assert_eq!(bucket(relative), want, "relative position {relative}");
        }
    }
}
