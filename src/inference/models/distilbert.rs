//! DistilBERT (`DistilBertModel`, e.g. msmarco-distilbert and multi-qa
//! DistilBERT embedders): BERT's post-norm encoder without segment
//! embeddings and with its own tensor names, so it runs on BERT's encoder
//! (infermon's CPU kernels, or candle ops on other devices) by reading the
//! DistilBERT names for the BERT ones.
//!
//! candle-transformers' DistilBERT is not used: it computes `gelu` with the
//! tanh approximation, while transformers' DistilBERT uses the exact (erf)
//! GELU, which moves tiny-model outputs by more than 1e-4.

use candle_nn::VarBuilder;
use serde::Deserialize;

use super::bert::{BertConfig, EncoderModel, HeadPaths};
use super::{Source, remapped};
use crate::inference::pooling::Pooling;

/// The config.json fields of a DistilBERT model.
#[derive(Clone, Debug, Deserialize)]
pub struct DistilBertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub dim: usize,
    /// Layers.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Feed-forward size.
    pub hidden_dim: usize,
    /// `gelu` or `relu`.
    #[serde(default = "default_activation")]
    pub activation: String,
    /// Length of the position table.
    pub max_position_embeddings: usize,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn default_activation() -> String {
    "gelu".to_string()
}

impl DistilBertConfig {
    /// The same encoder in BERT's terms (one segment, LayerNorm ε 1e-12 as
    /// transformers hard-codes for DistilBERT).
    fn as_bert(&self) -> BertConfig {
        BertConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.dim,
            num_hidden_layers: self.n_layers,
            num_attention_heads: self.n_heads,
            intermediate_size: self.hidden_dim,
            hidden_act: self.activation.clone(),
            max_position_embeddings: self.max_position_embeddings,
            type_vocab_size: 1,
            layer_norm_eps: 1e-12,
            pad_token_id: self.pad_token_id.unwrap_or(0),
            id2label: None,
            position_embedding_type: None,
        }
    }
}

/// BERT's name for a tensor → DistilBERT's (under `prefix`).
fn distil_name(prefix: &str, bert: &str) -> Source {
    if bert.ends_with("embeddings.token_type_embeddings.weight") {
        return Source::Zeros;
    }
    let renamed = match bert.strip_prefix("encoder.layer.") {
        Some(rest) => {
            let (index, tail) = rest.split_once('.').unwrap_or((rest, ""));
            let tail = [
                ("attention.self.query.", "attention.q_lin."),
                ("attention.self.key.", "attention.k_lin."),
                ("attention.self.value.", "attention.v_lin."),
                ("attention.output.dense.", "attention.out_lin."),
                ("attention.output.LayerNorm.", "sa_layer_norm."),
                ("intermediate.dense.", "ffn.lin1."),
                ("output.dense.", "ffn.lin2."),
                ("output.LayerNorm.", "output_layer_norm."),
            ]
            .iter()
            .find_map(|(from, to)| tail.strip_prefix(from).map(|t| format!("{to}{t}")))
            .unwrap_or_else(|| tail.to_string());
            format!("transformer.layer.{index}.{tail}")
        }
        None => bert.to_string(),
    };
    Source::Name(format!("{prefix}{renamed}"))
}

/// Loads `DistilBertModel` weights (at the root or under `distilbert.`)
/// as an embedder pooling with `pooling`.
pub fn load(
    vb: VarBuilder<'static>,
    cfg: &DistilBertConfig,
    pooling: Pooling,
    candle_only: bool,
) -> Result<EncoderModel, String> {
    let prefix = if vb.contains_tensor("distilbert.embeddings.word_embeddings.weight") {
        "distilbert."
    } else {
        ""
    };
    let vb = remapped(vb, move |name| distil_name(prefix, name));
    let head = HeadPaths {
        dense: vb.pp("no_classifier"),
        out: vb.pp("no_classifier"),
    };
    EncoderModel::load(&vb, head, &cfg.as_bert(), 0, Some(pooling), candle_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_names_become_distilbert_names() {
        let name = |n: &str| match distil_name("distilbert.", n) {
            Source::Name(s) => s,
            Source::Zeros => "zeros".to_string(),
        };
        assert_eq!(
            name("encoder.layer.1.attention.self.query.weight"),
            "distilbert.transformer.layer.1.attention.q_lin.weight"
        );
        assert_eq!(
            name("encoder.layer.0.output.LayerNorm.bias"),
            "distilbert.transformer.layer.0.output_layer_norm.bias"
        );
        assert_eq!(
            name("encoder.layer.0.attention.output.LayerNorm.weight"),
            "distilbert.transformer.layer.0.sa_layer_norm.weight"
        );
        assert_eq!(
            name("embeddings.LayerNorm.weight"),
            "distilbert.embeddings.LayerNorm.weight"
        );
        assert_eq!(name("embeddings.token_type_embeddings.weight"), "zeros");
    }
}
