//! JinaBERT (`JinaBertModel` / `JinaBertForMaskedLM` from the hub's
//! jinaai/jina-bert-implementation: jina-embeddings-v2-small/base-en/zh/de/es).
//! A post-norm BERT without position embeddings: symmetric ALiBi
//! (`-slope_h · |i - j|` added to the attention scores) and a gated MLP
//! `wo(act(first half) · second half)` with its own residual LayerNorm.
//!
//! candle-transformers has a JinaBERT, but it takes no attention mask (a
//! padded batch differs from each input alone), builds an ALiBi table for
//! all `max_position_embeddings` up front (12 × 8192² floats, 3 GiB, for the
//! base models) and always uses GELU, so this is written on candle ops; the
//! tests check it against candle-transformers' model on unpadded inputs.
//! The qk-post-norm variant (jinaai/jina-bert-v2-qk-post-norm,
//! jina-embeddings-v2-base-code) has another layer layout and is refused.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::bert::{Dense, Norm};
use super::{padded, pool_right};
use crate::inference::pooling::Pooling;
use crate::inference::{Backend, Encoded, InferenceError};

#[derive(Deserialize)]
struct JinaConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    /// The authors' config class defaults to `absolute`, which their code
    /// runs with learned position embeddings: absent means not ALiBi.
    #[serde(default)]
    position_embedding_type: Option<String>,
    /// Defaults to `original` (a plain BERT MLP) in the authors' code.
    #[serde(default)]
    feed_forward_type: Option<String>,
    #[serde(default)]
    auto_map: Option<serde_json::Map<String, serde_json::Value>>,
}

fn default_type_vocab() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

/// The gated MLP's activation (`feed_forward_type`).
#[derive(Clone, Copy)]
enum Glu {
    /// `geglu`: the authors' `nn.GELU()`, the exact (erf) form.
    Gelu,
    /// `reglu`.
    Relu,
}

struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    /// `[hidden, 2·intermediate]`, no bias: the activated half first.
    gated: Dense,
    wo: Dense,
    mlp_norm: Norm,
}

/// A loaded JinaBERT embedder.
pub struct JinaBert {
    word: Tensor,
    /// The first segment embedding (the only one a text uses).
    segment: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    /// One ALiBi slope per head, already negated.
    slopes: Vec<f32>,
    head_dim: usize,
    intermediate: usize,
    glu: Glu,
    pooling: Pooling,
    max_positions: usize,
}

/// ALiBi's head slopes (Press et al.): a geometric series from
/// `2^(-8/n)` for `n` a power of two; otherwise the series of the largest
/// power of two below `n`, then every other slope of the next power's
/// series for the remaining heads.
pub(crate) fn alibi_slopes(heads: usize) -> Vec<f64> {
    fn power_of_two(n: usize) -> Vec<f64> {
        let start = 2f64.powf(-(2f64.powf(-((n as f64).log2() - 3.0))));
        (0..n).map(|i| start * start.powf(i as f64)).collect()
    }
    if heads.is_power_of_two() {
        return power_of_two(heads);
    }
    let closest = 1usize << heads.ilog2();
    let mut slopes = power_of_two(closest);
    slopes.extend(
        alibi_slopes(2 * closest)
            .into_iter()
            .step_by(2)
            .take(heads - closest),
    );
    slopes
}

/// Where the encoder's tensors are: at the root (`JinaBertModel`, as the
/// hub's jina-embeddings-v2 files have them) or under `bert.`.
fn encoder_root<'a>(vb: &VarBuilder<'a>) -> VarBuilder<'a> {
    if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
        vb.pp("bert")
    } else {
        vb.clone()
    }
}

impl JinaBert {
    /// Loads JinaBERT weights; options the authors' v2 code has and this
    /// does not are errors naming the config.json key.
    pub fn load(vb: VarBuilder, config_text: &str, pooling: Pooling) -> Result<JinaBert, String> {
        let cfg: JinaConfig = serde_json::from_str(config_text).map_err(|e| e.to_string())?;
        let refuse = |what: String| Err(format!("config.json {what} is not supported"));
        match cfg.position_embedding_type.as_deref() {
            Some("alibi") => {}
            other => {
                return refuse(format!(
                    "position_embedding_type {} (only \"alibi\")",
                    other.map_or("absent (\"absolute\")".to_string(), |o| format!("{o:?}"))
                ));
            }
        }
        let glu = match cfg.feed_forward_type.as_deref() {
            Some("geglu") => Glu::Gelu,
            Some("reglu") => Glu::Relu,
            other => {
                return refuse(format!(
                    "feed_forward_type {} (only \"geglu\" or \"reglu\")",
                    other.map_or("absent (\"original\")".to_string(), |o| format!("{o:?}"))
                ));
            }
        };
        let qk_code = cfg
            .auto_map
            .iter()
            .flat_map(|m| m.values())
            .find(|v| v.as_str().is_some_and(|s| s.contains("qk-post-norm")));
        if let Some(code) = qk_code {
            return refuse(format!(
                "auto_map {code} (jinaai/jina-bert-v2-qk-post-norm, jina-embeddings-v2-base-code's code, has another layer layout; only jinaai/jina-bert-implementation's is)"
            ));
        }
        let root = encoder_root(&vb);
        if root.contains_tensor("encoder.layer.0.attention.self.layer_norm_q.weight")
            || root.contains_tensor("encoder.layer.0.layer_norm_1.weight")
        {
            return Err(
                "the weights have qk-post-norm layers (layer_norm_q/layer_norm_k, jinaai/jina-bert-v2-qk-post-norm), which are not supported"
                    .to_string(),
            );
        }
        let heads = cfg.num_attention_heads;
        let h = cfg.hidden_size;
        if heads == 0 || !h.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {h} is not a multiple of num_attention_heads {heads}"
            ));
        }
        if cfg.type_vocab_size == 0 {
            return Err("config.json type_vocab_size 0: the model has no segment embedding".into());
        }
        let (eps, inter) = (cfg.layer_norm_eps, cfg.intermediate_size);
        let load = || -> candle_core::Result<JinaBert> {
            let e = root.pp("embeddings");
            let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
            for i in 0..cfg.num_hidden_layers {
                let l = root.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                let m = l.pp("mlp");
                let gated = m.pp("gated_layers").get((2 * inter, h), "weight")?;
                layers.push(Layer {
                    query: Dense::load(&a.pp("self.query"), h, h)?,
                    key: Dense::load(&a.pp("self.key"), h, h)?,
                    value: Dense::load(&a.pp("self.value"), h, h)?,
                    attn_out: Dense::load(&a.pp("output.dense"), h, h)?,
                    attn_norm: Norm::load(&a.pp("output.LayerNorm"), h, eps)?,
                    gated: Dense::from_parts(gated, None)?,
                    wo: Dense::load(&m.pp("wo"), inter, h)?,
                    mlp_norm: Norm::load(&m.pp("layernorm"), h, eps)?,
                });
            }
            Ok(JinaBert {
                word: e.get((cfg.vocab_size, h), "word_embeddings.weight")?,
                segment: e
                    .get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?
                    .narrow(0, 0, 1)?,
                emb_norm: Norm::load(&e.pp("LayerNorm"), h, eps)?,
                layers,
                // The authors' slopes are f32 values of the f64 series.
                slopes: alibi_slopes(heads).iter().map(|s| -(*s as f32)).collect(),
                head_dim: h / heads,
                intermediate: inter,
                glu,
                pooling,
                max_positions: cfg.max_position_embeddings,
            })
        };
        load().map_err(|e| e.to_string())
    }

    /// The longest input: `max_position_embeddings` (ALiBi itself has no
    /// table to run out of, but the models are trained up to it).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The `[1, heads, seq, seq]` ALiBi biases and the `[batch, 1, 1, seq]`
    /// padding mask (0 on an input's tokens, -inf after them), kept apart
    /// so that no `[batch, heads, seq, seq]` bias is held beside the scores.
    fn biases(
        &self,
        rows: &[&[u32]],
        seq: usize,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let heads = self.slopes.len();
        let mut alibi = Vec::with_capacity(heads * seq * seq);
        for slope in &self.slopes {
            for i in 0..seq {
                alibi.extend((0..seq).map(|j| slope * i.abs_diff(j) as f32));
            }
        }
        let alibi = Tensor::from_vec(alibi, (1, heads, seq, seq), device)?;
        let mut mask = Vec::with_capacity(rows.len() * seq);
        for row in rows {
            mask.extend(std::iter::repeat_n(0f32, row.len()));
            mask.extend(std::iter::repeat_n(f32::NEG_INFINITY, seq - row.len()));
        }
        let mask = Tensor::from_vec(mask, (rows.len(), 1, 1, seq), device)?;
        Ok((alibi, mask))
    }

    fn hidden(&self, batch: &[&Encoded]) -> candle_core::Result<Tensor> {
        let device = self.word.device().clone();
        let dtype = self.word.dtype();
        let (nh, hd) = (self.slopes.len(), self.head_dim);
        let h = nh * hd;
        let b = batch.len();
        let (seq, rows) = super::id_rows(batch, self.max_positions);
        let ids = padded(&rows, seq, 0, &device)?;
        let x = self
            .word
            .embedding(&ids.flatten_all()?)?
            .broadcast_add(&self.segment)?;
        let mut x = self.emb_norm.forward(&x)?;
        let (alibi, mask) = self.biases(&rows, seq, &device)?;
        let (alibi, mask) = (alibi.to_dtype(dtype)?, mask.to_dtype(dtype)?);
        let scale = 1.0 / (hd as f64).sqrt();
        for l in &self.layers {
            let heads = |t: Tensor| -> candle_core::Result<Tensor> {
                t.reshape((b, seq, nh, hd))?.transpose(1, 2)?.contiguous()
            };
            let q = heads(l.query.forward(&x)?)?;
            let k = heads(l.key.forward(&x)?)?;
            let v = heads(l.value.forward(&x)?)?;
            // The authors' order: scaled scores, plus the mask, plus ALiBi.
            let scores = (q.matmul(&k.t()?)? * scale)?
                .broadcast_add(&mask)?
                .broadcast_add(&alibi)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b * seq, h))?;
            let attn = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            let gated = l.gated.forward(&attn)?;
            let first = gated.narrow(1, 0, self.intermediate)?;
            let act = match self.glu {
                Glu::Gelu => first.gelu_erf()?,
                Glu::Relu => first.relu()?,
            };
            let up = act.mul(&gated.narrow(1, self.intermediate, self.intermediate)?)?;
            x = l.mlp_norm.forward(&(l.wo.forward(&up)? + attn)?)?;
        }
        x.reshape((b, seq, h))
    }
}

impl Backend for JinaBert {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        // pool_right reads any dtype as f32.
        Ok(pool_right(&self.hidden(batch)?, batch, self.pooling)?)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use candle_core::{DType, Device, Module, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::jina_bert as candle_jina;

    use super::{JinaBert, alibi_slopes};
    use crate::inference::Encoded;
    use crate::inference::pooling::Pooling;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
            .unwrap()
    }

    #[test]
    fn agrees_with_candle_transformers_jina_bert() {
        // Two implementations written apart (this one and
        // candle-transformers', which has no attention mask: inputs alone)
        // give the same token states on the fixture's texts.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-arch-jina-bert");
        let config_text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&config_text).unwrap();
        let refs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let n = |k: &str| config[k].as_u64().unwrap() as usize;
        let theirs_cfg = candle_jina::Config::new(
            n("vocab_size"),
            n("hidden_size"),
            n("num_hidden_layers"),
            n("num_attention_heads"),
            n("intermediate_size"),
            candle_nn::Activation::Gelu,
            // Only the size of its precomputed ALiBi table.
            refs["max_seq_length"].as_u64().unwrap() as usize,
            n("type_vocab_size"),
            0.02,
            config["layer_norm_eps"].as_f64().unwrap(),
            0,
            candle_jina::PositionEmbeddingType::Alibi,
        );
        let files = [dir.join("model.safetensors")];
        // SAFETY: fixture files, read-only, not changed while the test runs.
        let vb = || unsafe {
            VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu).unwrap()
        };
        let theirs = candle_jina::BertModel::new(vb(), &theirs_cfg).unwrap();
        let ours = JinaBert::load(vb(), &config_text, Pooling::Mean).unwrap();
        let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: refs["max_seq_length"].as_u64().unwrap() as usize,
                ..Default::default()
            }))
            .unwrap();
        let mut worst = 0f32;
        for text in refs["texts"].as_array().unwrap() {
            let ids = tokenizer
                .encode(text.as_str().unwrap(), true)
                .unwrap()
                .get_ids()
                .to_vec();
            let input = Tensor::new(ids.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let want = theirs.forward(&input).unwrap();
            let enc = Encoded {
                type_ids: vec![0; ids.len()],
                ids,
                pool_skip: 0,
            };
            let got = ours.hidden(&[&enc]).unwrap();
            let gap = max_abs_diff(&got, &want);
            worst = worst.max(gap);
        }
        assert!(worst <= 1e-4, "max abs diff of token states {worst}");
    }

    #[test]
    fn weights_under_bert_load_and_qk_post_norm_weights_are_refused() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-arch-jina-bert");
        let config_text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let tensors =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let load = |t: std::collections::HashMap<String, Tensor>| {
            JinaBert::load(
                VarBuilder::from_tensors(t, DType::F32, &Device::Cpu),
                &config_text,
                Pooling::Mean,
            )
        };
        let enc = Encoded {
            ids: vec![2, 100, 200, 3],
            type_ids: vec![0; 4],
            pool_skip: 0,
        };
        let root = load(tensors.clone()).unwrap().hidden(&[&enc]).unwrap();
        // JinaBertForMaskedLM's own layout keeps the encoder under `bert.`.
        let prefixed = tensors
            .iter()
            .map(|(k, v)| (format!("bert.{k}"), v.clone()))
            .collect();
        let under_bert = load(prefixed).unwrap().hidden(&[&enc]).unwrap();
        let gap = max_abs_diff(&root, &under_bert);
        assert_eq!(gap, 0.0);
        // jina-bert-v2-qk-post-norm's q/k LayerNorms: another model.
        let mut qk = tensors.clone();
        qk.insert(
            "encoder.layer.0.attention.self.layer_norm_q.weight".to_string(),
            Tensor::ones(48, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = load(qk).err().unwrap();
        assert!(
            err.contains("layer_norm_q") && err.contains("not supported"),
            "{err}"
        );
    }

    #[test]
    fn alibi_slopes_follow_press_et_al() {
        // Powers of two: 2^(-8/n), 2^(-16/n), … 2^(-8).
        let eight = alibi_slopes(8);
        for (i, s) in eight.iter().enumerate() {
            assert_eq!(*s, 2f64.powi(-(i as i32 + 1)));
        }
        // 12 heads (the base models): the 8-head series, then the 16-head
        // series' 1st, 3rd, 5th and 7th slopes, 2^(-0.5), 2^(-1.5), ….
        let twelve = alibi_slopes(12);
        assert_eq!(twelve[..8], eight[..]);
        for (k, s) in twelve[8..].iter().enumerate() {
            assert!((s - 2f64.powf(-0.5 - k as f64)).abs() < 1e-15, "{k}: {s}");
        }
        assert_eq!(alibi_slopes(4), vec![0.25, 0.0625, 0.015625, 0.00390625]);
    }
}
