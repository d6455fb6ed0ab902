//! One file per architecture. BERT's encoder is shared with XLM-RoBERTa,
//! which differs only in its position ids and head names.

pub mod bert;
pub mod bert_cpu;
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
