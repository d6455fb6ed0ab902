//! XLM-RoBERTa (`XLMRobertaModel` embeddings such as bge-m3 dense, and
//! `XLMRobertaForSequenceClassification` rerankers such as bge-reranker):
//! BERT's encoder with position ids starting after the padding index and
//! the classifier head named `classifier.dense` / `classifier.out_proj`.

use candle_nn::VarBuilder;

use super::bert::{BertConfig, EncoderModel, HeadPaths, encoder_root};
use crate::inference::pooling::Pooling;

/// Loads `XLMRobertaModel` / `XLMRobertaForSequenceClassification` (weights
/// under `roberta.` or at the root). `pooling: None` loads the classifier.
pub fn load(
    vb: VarBuilder,
    cfg: &BertConfig,
    pooling: Option<Pooling>,
    candle_only: bool,
) -> Result<EncoderModel, String> {
    let root = encoder_root(&vb, "roberta");
    let c = vb.pp("classifier");
    let head = HeadPaths {
        dense: c.pp("dense"),
        out: c.pp("out_proj"),
    };
    // RoBERTa numbers real tokens from padding_idx + 1.
    EncoderModel::load(
        &root,
        head,
        cfg,
        cfg.pad_token_id as usize + 1,
        pooling,
        candle_only,
    )
}
