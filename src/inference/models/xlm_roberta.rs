//! XLM-RoBERTa (`XLMRobertaModel` embeddings such as bge-m3 dense, and
//! `XLMRobertaForSequenceClassification` rerankers such as bge-reranker):
//! BERT's encoder with position ids starting after the padding index and
//! the classifier head named `classifier.dense` / `classifier.out_proj`.

use candle_nn::VarBuilder;

use super::bert::{BertConfig, Encoder, Head};
use crate::inference::pooling::Pooling;
use crate::inference::{Backend, Encoded, InferenceError};

/// `XLMRobertaModel` / `XLMRobertaForSequenceClassification`.
pub struct XlmRoberta {
    encoder: Encoder,
    head: Head,
}

impl XlmRoberta {
    /// Loads from `vb` (weights under `roberta.` or at the root). `pooling:
    /// None` loads the classifier head.
    pub fn load(
        vb: VarBuilder,
        cfg: &BertConfig,
        pooling: Option<Pooling>,
    ) -> Result<XlmRoberta, String> {
        let root = if vb.contains_tensor("roberta.embeddings.word_embeddings.weight") {
            vb.pp("roberta")
        } else {
            vb.clone()
        };
        // RoBERTa numbers real tokens from padding_idx + 1.
        let encoder = Encoder::load(&root, cfg, cfg.pad_token_id as usize + 1)?;
        let head = match pooling {
            Some(p) => Head::Pool(p),
            None => {
                let labels = cfg.id2label.as_ref().map_or(1, |l| l.len());
                if labels != 1 {
                    return Err(format!(
                        "a reranker needs exactly one output label; config.json has {labels} (id2label)"
                    ));
                }
                let c = vb.pp("classifier");
                Head::classify(&c.pp("dense"), &c.pp("out_proj"), cfg.hidden_size)
                    .map_err(|e| e.to_string())?
            }
        };
        Ok(XlmRoberta { encoder, head })
    }

    /// The longest input the position table allows.
    pub fn max_positions(&self) -> usize {
        self.encoder.max_positions()
    }
}

impl Backend for XlmRoberta {
    fn forward(&mut self, batch: &[&Encoded]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let hidden = self.encoder.forward(batch)?;
        Ok(self.head.apply(&hidden, batch)?)
    }
}
