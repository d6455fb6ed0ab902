//! One file per architecture. BERT's encoder is shared with XLM-RoBERTa,
//! which differs only in its position ids and head names.

pub mod bert;
pub mod bert_cpu;
pub mod distilbert;
pub mod gemma3;
pub mod gte;
pub mod jina_bert;
pub mod modernbert;
pub mod mpnet;
pub mod nomic_bert;
pub mod qwen2;
pub mod qwen3;
pub mod xlm_roberta;

use candle_core::{DType, Device, Tensor};

use super::Encoded;
use super::pooling::{PaddingSide, Pooling, pool};

/// Pads `rows` on the right with `pad` into a `[rows, longest]` u32 tensor.
pub(crate) fn padded(
    rows: &[&[u32]],
    longest: usize,
    pad: u32,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut flat = Vec::with_capacity(rows.len() * longest);
    for row in rows {
        flat.extend_from_slice(row);
        flat.extend(std::iter::repeat_n(pad, longest - row.len()));
    }
    Tensor::from_vec(flat, (rows.len(), longest), device)
}

/// The padded length of `batch` (its longest input, at most
/// `max_positions`) and each input's token ids cut to it.
pub(crate) fn id_rows<'a>(batch: &[&'a Encoded], max_positions: usize) -> (usize, Vec<&'a [u32]>) {
    let seq = batch
        .iter()
        .map(|e| e.len())
        .max()
        .unwrap_or(1)
        .clamp(1, max_positions);
    let rows = batch.iter().map(|e| &e.ids[..e.len().min(seq)]).collect();
    (seq, rows)
}

/// Pools `[batch, seq, dim]` hidden states of `batch` on the host, leaving
/// out each input's `pool_skip` prompt tokens.
pub(crate) fn pool_hidden(
    hidden: &Tensor,
    batch: &[&Encoded],
    side: PaddingSide,
    mode: Pooling,
) -> candle_core::Result<Vec<Vec<f32>>> {
    let (_, seq, dim) = hidden.dims3()?;
    let flat = hidden
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let lens: Vec<usize> = batch.iter().map(|e| e.len().min(seq)).collect();
    let skips: Vec<usize> = batch.iter().map(|e| e.pool_skip).collect();
    Ok(pool(&flat, seq, dim, &lens, &skips, side, mode))
}

/// [`pool_hidden`] for encoders that pad on the right.
pub(crate) fn pool_right(
    hidden: &Tensor,
    batch: &[&Encoded],
    mode: Pooling,
) -> candle_core::Result<Vec<Vec<f32>>> {
    pool_hidden(hidden, batch, PaddingSide::Right, mode)
}

/// Where a tensor that a shared implementation asks for comes from in a
/// checkpoint laid out differently.
pub(crate) enum Source {
    /// The checkpoint's own name for it.
    Name(String),
    /// Absent from the checkpoint and all zeros (a bias the architecture
    /// does not have, a single segment embedding).
    Zeros,
}

/// Serves `inner`'s tensors under the names `map` translates from.
struct Remapped<F> {
    inner: candle_nn::VarBuilder<'static>,
    map: F,
}

impl<F: Fn(&str) -> Source + Send + Sync> candle_nn::var_builder::SimpleBackend for Remapped<F> {
    fn get(
        &self,
        shape: candle_core::Shape,
        name: &str,
        hints: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        match (self.map)(name) {
            Source::Zeros => Tensor::zeros(shape, dtype, device),
            Source::Name(n) => self
                .inner
                .get_with_hints_dtype(shape, &n, hints, dtype)?
                .to_device(device),
        }
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        match (self.map)(name) {
            Source::Zeros => candle_core::bail!("{name} has no shape of its own (all zeros)"),
            Source::Name(n) => self.inner.get_unchecked_dtype(&n, dtype)?.to_device(device),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        match (self.map)(name) {
            Source::Zeros => true,
            Source::Name(n) => self.inner.contains_tensor(&n),
        }
    }
}

/// `vb` seen through `map`: lets one implementation read a checkpoint
/// whose tensors have other names, or lack all-zero ones.
pub(crate) fn remapped(
    vb: candle_nn::VarBuilder<'static>,
    map: impl Fn(&str) -> Source + Send + Sync + 'static,
) -> candle_nn::VarBuilder<'static> {
    let (dtype, device) = (vb.dtype(), vb.device().clone());
    candle_nn::VarBuilder::from_backend(Box::new(Remapped { inner: vb, map }), dtype, device)
}

/// The RoPE base of `layer_type` (`full_attention` / `sliding_attention`)
/// from config.json, in transformers 5's `rope_parameters` (flat or per
/// layer type) or the older top-level keys (`old_keys`, first found wins).
/// Scaled RoPE variants (linear, dynamic, yarn, …) are refused: run as
/// plain RoPE they would give wrong vectors.
pub(crate) fn rope_theta(
    config: &serde_json::Value,
    layer_type: &str,
    old_keys: &[&str],
) -> Result<f64, String> {
    let params = config.get("rope_parameters").filter(|p| !p.is_null());
    let params = params.map(|p| p.get(layer_type).unwrap_or(p));
    if let Some(p) = params {
        match p.get("rope_type").and_then(|t| t.as_str()) {
            None | Some("default") => {}
            Some(other) => {
                return Err(format!(
                    "config.json rope_parameters rope_type {other:?} is not supported (only \"default\")"
                ));
            }
        }
        if let Some(theta) = p.get("rope_theta").and_then(serde_json::Value::as_f64) {
            return Ok(theta);
        }
    }
    if config.get("rope_scaling").is_some_and(|s| !s.is_null()) {
        return Err("config.json rope_scaling is not supported".to_string());
    }
    old_keys
        .iter()
        .find_map(|k| config.get(k).and_then(serde_json::Value::as_f64))
        .ok_or_else(|| format!("config.json has no rope_theta for {layer_type} layers"))
}
