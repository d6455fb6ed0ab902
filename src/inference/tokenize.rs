//! Tokenizing requests the way sentence-transformers and transformers do:
//! no padding (the model pads each batch to its own longest input), and
//! truncation at the model's `max_input_length` only when the request allows
//! it — otherwise a too-long input is an error naming its length. Prompts
//! (`config_sentence_transformers.json`) are put before the text here, and
//! a tokenizer is built from a BERT `vocab.txt` when a folder has no
//! `tokenizer.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::{BertNormalizer, Lowercase, NormalizerWrapper, Sequence};
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use super::{Encoded, InferenceError};

/// Why a tokenizer could not be built: the file and the reason.
pub type TokenizerError = (PathBuf, String);

/// What sentence-transformers' config adds to tokenizing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// `prompts` of `config_sentence_transformers.json`, by name.
    pub prompts: BTreeMap<String, String>,
    /// `default_prompt_name`: the prompt of requests that name none.
    pub default_prompt_name: Option<String>,
    /// The Pooling module's `include_prompt` (true when absent).
    pub exclude_prompt_from_pooling: bool,
    /// `do_lower_case` of `sentence_bert_config.json`: lowercase before the
    /// tokenizer's own normalizer, as sentence-transformers does.
    pub lowercase: bool,
}

/// A prompt resolved for one request: its text and how many leading tokens
/// of each input it accounts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// Put before every text.
    pub text: String,
    /// Its token count as sentence-transformers measures it (the prompt
    /// tokenized alone, less a trailing special token); pooled inputs skip
    /// these when the model excludes prompts from pooling, else 0.
    skip: usize,
}

/// Which end of a too-long input is cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Side {
    /// Keep the start (the default).
    #[default]
    Right,
    /// Keep the end.
    Left,
}

/// One tokenized input and whether it was cut.
#[derive(Debug)]
pub struct Tokenized {
    /// What the model sees.
    pub encoded: Encoded,
    /// Whether truncation removed tokens.
    pub truncated: bool,
}

/// A model's tokenizer with padding and truncation under infermon's control.
pub struct TextTokenizer {
    plain: Tokenizer,
    /// Cut single texts / the second text of pairs, by side.
    single: [Tokenizer; 2],
    pair: [Tokenizer; 2],
    max_input_length: usize,
    options: TextOptions,
}

impl TextTokenizer {
    /// Loads the tokenizer of the model folder `dir`, overriding the padding
    /// and truncation stored in it (all-MiniLM-L6-v2's file pads every input
    /// to 128 tokens): `tokenizer.json`, else a BERT WordPiece tokenizer
    /// built from `vocab.txt` and `tokenizer_config.json`.
    pub fn load(
        dir: &Path,
        max_input_length: usize,
        options: TextOptions,
    ) -> Result<TextTokenizer, TokenizerError> {
        let (mut plain, path) = read_tokenizer(dir)?;
        let err = |e: tokenizers::Error| (path.clone(), e.to_string());
        plain.with_padding(None);
        plain.with_truncation(None).map_err(err)?;
        if options.lowercase && !lowercases(plain.get_normalizer()) {
            let mut steps = vec![NormalizerWrapper::Lowercase(Lowercase)];
            steps.extend(plain.get_normalizer().cloned());
            plain
                .with_normalizer(Some(NormalizerWrapper::Sequence(Sequence::new(steps))))
                .map_err(err)?;
        }
        let with = |strategy, direction| -> Result<Tokenizer, TokenizerError> {
            let mut t = plain.clone();
            t.with_truncation(Some(TruncationParams {
                max_length: max_input_length,
                strategy,
                direction,
                stride: 0,
            }))
            .map_err(err)?;
            Ok(t)
        };
        Ok(TextTokenizer {
            single: [
                with(TruncationStrategy::LongestFirst, TruncationDirection::Right)?,
                with(TruncationStrategy::LongestFirst, TruncationDirection::Left)?,
            ],
            pair: [
                with(TruncationStrategy::OnlySecond, TruncationDirection::Right)?,
                with(TruncationStrategy::OnlySecond, TruncationDirection::Left)?,
            ],
            plain,
            max_input_length,
            options,
        })
    }

    /// The prompts of the model's sentence-transformers config, by name.
    pub fn prompts(&self) -> &BTreeMap<String, String> {
        &self.options.prompts
    }

    /// The prompt used when a request names none.
    pub fn default_prompt_name(&self) -> Option<&str> {
        self.options.default_prompt_name.as_deref()
    }

    /// Whether prompt tokens are left out of pooling (`include_prompt: false`).
    pub fn excludes_prompt_from_pooling(&self) -> bool {
        self.options.exclude_prompt_from_pooling
    }

    /// The prompt a request asks for: `prompt` (a text), `prompt_name` (a
    /// key of the model's `prompts`), or neither (the model's
    /// `default_prompt_name`, if any). Both at once is an error, as is a
    /// name the model does not have (the message lists those it has).
    pub fn prompt(
        &self,
        model: &str,
        prompt_name: Option<&str>,
        prompt: Option<&str>,
    ) -> Result<Option<Prompt>, InferenceError> {
        let text = match (prompt_name, prompt) {
            (Some(_), Some(_)) => {
                return Err(InferenceError::Validation(
                    "send either prompt_name or prompt, not both".to_string(),
                ));
            }
            (None, Some(text)) => text.to_string(),
            (Some(name), None) => self.named_prompt(model, name)?,
            (None, None) => match &self.options.default_prompt_name {
                Some(name) => self.named_prompt(model, name)?,
                None => return Ok(None),
            },
        };
        if text.is_empty() {
            return Ok(None);
        }
        let skip = if self.options.exclude_prompt_from_pooling {
            let enc = self
                .plain
                .encode_fast(text.as_str(), true)
                .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
            let trailing_special = enc.get_special_tokens_mask().last() == Some(&1);
            enc.len() - usize::from(trailing_special)
        } else {
            0
        };
        Ok(Some(Prompt { text, skip }))
    }

    fn named_prompt(&self, model: &str, name: &str) -> Result<String, InferenceError> {
        self.options.prompts.get(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = self.options.prompts.keys().map(String::as_str).collect();
            InferenceError::Validation(if names.is_empty() {
                format!(
                    "prompt_name {name:?}: model {model:?} has no prompts (config_sentence_transformers.json); send the text itself as prompt"
                )
            } else {
                format!(
                    "prompt_name {name:?} is not a prompt of model {model:?}; available: {}",
                    names.join(", ")
                )
            })
        })
    }

    /// The longest input the model takes, in tokens.
    pub fn max_input_length(&self) -> usize {
        self.max_input_length
    }

    /// The underlying tokenizer without truncation (for `/tokenize`).
    pub fn plain(&self) -> &Tokenizer {
        &self.plain
    }

    /// Tokenizes one text with special tokens, after `prompt` when given.
    /// `truncate: None` means a too-long text is an error.
    pub fn single(
        &self,
        model: &str,
        index: usize,
        text: &str,
        truncate: Option<Side>,
        prompt: Option<&Prompt>,
    ) -> Result<Tokenized, InferenceError> {
        let full;
        let (text, skip) = match prompt {
            Some(p) => {
                full = format!("{}{text}", p.text);
                (full.as_str(), p.skip)
            }
            None => (text, 0),
        };
        let enc = self
            .plain
            .encode_fast(text, true)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
        if enc.len() <= self.max_input_length {
            return Ok(Tokenized {
                encoded: to_encoded(&enc, skip),
                truncated: false,
            });
        }
        let side = truncate.ok_or_else(|| self.too_long(model, index, enc.len()))?;
        let cut = self.single[side as usize]
            .encode_fast(text, true)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
        // Cutting the start removes prompt tokens first.
        let skip = match side {
            Side::Right => skip,
            Side::Left => skip.saturating_sub(enc.len() - cut.len()),
        };
        Ok(Tokenized {
            encoded: to_encoded(&cut, skip),
            truncated: true,
        })
    }

    /// Tokenizes a (query, document) pair for a cross-encoder; truncation
    /// cuts only the document, as transformers' `only_second`.
    pub fn pair(
        &self,
        model: &str,
        index: usize,
        query: &str,
        doc: &str,
        truncate: Option<Side>,
    ) -> Result<Tokenized, InferenceError> {
        let enc = self
            .plain
            .encode_fast((query, doc), true)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
        if enc.len() <= self.max_input_length {
            return Ok(Tokenized {
                encoded: to_encoded(&enc, 0),
                truncated: false,
            });
        }
        let side = truncate.ok_or_else(|| self.too_long(model, index, enc.len()))?;
        // A query too long to leave room for any document cannot be cut here.
        let enc = self.pair[side as usize]
            .encode_fast((query, doc), true)
            .map_err(|_| self.too_long(model, index, enc.len()))?;
        Ok(Tokenized {
            encoded: to_encoded(&enc, 0),
            truncated: true,
        })
    }

    /// Token ids of `text` without special tokens (prompt pieces).
    pub fn ids(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        let enc = self
            .plain
            .encode_fast(text, false)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The error for an input of `tokens` tokens when truncation is off.
    pub fn too_long(&self, model: &str, index: usize, tokens: usize) -> InferenceError {
        InferenceError::InputTooLong {
            model: model.to_string(),
            index,
            tokens,
            max: self.max_input_length,
        }
    }
}

fn to_encoded(enc: &tokenizers::Encoding, pool_skip: usize) -> Encoded {
    Encoded {
        ids: enc.get_ids().to_vec(),
        type_ids: enc.get_type_ids().to_vec(),
        pool_skip,
    }
}

/// Whether a normalizer already lowercases (sentence-transformers then adds
/// no `Lowercase` of its own).
fn lowercases(normalizer: Option<&NormalizerWrapper>) -> bool {
    match normalizer {
        Some(NormalizerWrapper::Lowercase(_)) => true,
        Some(NormalizerWrapper::BertNormalizer(b)) => b.lowercase,
        Some(NormalizerWrapper::Sequence(s)) => s.as_ref().iter().any(|n| lowercases(Some(n))),
        _ => false,
    }
}

/// SentencePiece model files the `tokenizers` crate cannot read itself.
const SENTENCEPIECE_FILES: [&str; 3] =
    ["sentencepiece.bpe.model", "spiece.model", "tokenizer.model"];

/// The folder's tokenizer and the file it came from.
fn read_tokenizer(dir: &Path) -> Result<(Tokenizer, PathBuf), TokenizerError> {
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        let t = Tokenizer::from_file(&json).map_err(|e| (json.clone(), e.to_string()))?;
        return Ok((t, json));
    }
    let vocab = dir.join("vocab.txt");
    if vocab.is_file() {
        let t = wordpiece_from_vocab(dir, &vocab)?;
        tracing::info!(
            vocab = %vocab.display(),
            "no tokenizer.json: built a BERT WordPiece tokenizer from vocab.txt and tokenizer_config.json"
        );
        return Ok((t, vocab));
    }
    if let Some(sp) = SENTENCEPIECE_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    {
        return Err((
            json,
            format!(
                "missing; the folder has only the SentencePiece model {}, which infermon cannot read \
                 (the tokenizers crate does not parse .model files). Write tokenizer.json once with \
                 transformers: python -c \"from transformers import AutoTokenizer as T; \
                 T.from_pretrained('{d}').save_pretrained('{d}')\"",
                sp.display(),
                d = dir.display()
            ),
        ));
    }
    Err((
        json,
        "missing: infermon reads tokenizer.json (or a BERT vocab.txt)".to_string(),
    ))
}

/// transformers' `BertTokenizer` from `vocab.txt`, with the options of
/// `tokenizer_config.json` (`do_lower_case` true, `tokenize_chinese_chars`
/// true and `strip_accents` following lowercasing when absent, as there).
fn wordpiece_from_vocab(dir: &Path, vocab: &Path) -> Result<Tokenizer, TokenizerError> {
    let config_path = dir.join("tokenizer_config.json");
    let config: serde_json::Value = match std::fs::read_to_string(&config_path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| (config_path.clone(), format!("not JSON: {e}")))?,
        Err(_) => serde_json::Value::Null,
    };
    if let Some(class) = config.get("tokenizer_class").and_then(|c| c.as_str())
        && !(class.contains("Bert") || class.contains("Electra"))
    {
        return Err((
            config_path,
            format!(
                "tokenizer_class {class:?} with only vocab.txt: infermon builds WordPiece tokenizers for BERT \
                 vocabularies only; add the model's tokenizer.json"
            ),
        ));
    }
    let flag = |key: &str| config.get(key).and_then(serde_json::Value::as_bool);
    let token = |key: &str, default: &str| {
        config
            .get(key)
            .and_then(|v| {
                v.as_str()
                    .or_else(|| v.get("content").and_then(|c| c.as_str()))
            })
            .unwrap_or(default)
            .to_string()
    };
    let lowercase = flag("do_lower_case").unwrap_or(true);
    let chinese = flag("tokenize_chinese_chars").unwrap_or(true);
    let strip_accents = flag("strip_accents");
    let (unk, sep, cls) = (
        token("unk_token", "[UNK]"),
        token("sep_token", "[SEP]"),
        token("cls_token", "[CLS]"),
    );
    let specials = [
        unk.clone(),
        sep.clone(),
        token("pad_token", "[PAD]"),
        cls.clone(),
        token("mask_token", "[MASK]"),
    ];
    let bad = |m: String| (vocab.to_path_buf(), m);
    let model = WordPiece::from_file(&vocab.to_string_lossy())
        .unk_token(unk.clone())
        .continuing_subword_prefix("##".to_string())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let id = |t: &str| {
        tokenizers::Model::token_to_id(&model, t).ok_or_else(|| bad(format!("has no {t:?} token")))
    };
    let (sep_id, cls_id) = (id(&sep)?, id(&cls)?);
    id(&unk)?;
    let mut t = Tokenizer::new(model);
    t.with_normalizer(Some(BertNormalizer::new(
        true,
        chinese,
        strip_accents,
        lowercase,
    )))
    .map_err(|e| bad(e.to_string()))?;
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t.with_post_processor(Some(BertProcessing::new((sep, sep_id), (cls, cls_id))));
    t.with_decoder(Some(tokenizers::decoders::wordpiece::WordPiece::default()));
    let added: Vec<AddedToken> = specials
        .iter()
        .filter(|s| tokenizers::Model::token_to_id(t.get_model(), s).is_some())
        .map(|s| AddedToken::from(s.clone(), true))
        .collect();
    t.add_special_tokens(added)
        .map_err(|e| bad(e.to_string()))?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiny cross-encoder fixture ships all-MiniLM-L6-v2's tokenizer,
    /// including its `padding: Fixed(128)`.
    fn minilm() -> TextTokenizer {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-cross-encoder");
        TextTokenizer::load(&dir, 16, TextOptions::default()).unwrap()
    }

    #[test]
    fn ignores_the_files_fixed_padding_and_truncates_only_when_asked() {
        let t = minilm();
        let short = t.single("m", 0, "hello world", None, None).unwrap();
        assert_eq!(short.encoded.ids.len(), 4, "no padding to 128");
        let long = "word ".repeat(40);
        match t.single("m", 3, &long, None, None) {
            Err(InferenceError::InputTooLong {
                tokens: 42,
                max: 16,
                index: 3,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let cut = t.single("m", 0, &long, Some(Side::Right), None).unwrap();
        assert!(cut.truncated);
        assert_eq!(cut.encoded.ids.len(), 16);
        assert_eq!(cut.encoded.ids.last(), Some(&102), "[SEP] kept");
    }

    #[test]
    fn pairs_cut_only_the_document() {
        let t = minilm();
        let p = t
            .pair("m", 0, "short query", &"doc ".repeat(40), Some(Side::Right))
            .unwrap();
        assert_eq!(p.encoded.ids.len(), 16);
        assert_eq!(p.encoded.type_ids.iter().filter(|&&x| x == 0).count(), 4);
        assert!(
            t.pair("m", 0, &"query ".repeat(40), "doc", Some(Side::Right))
                .is_err()
        );
    }
}
