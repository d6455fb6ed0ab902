//! Tokenizing requests the way sentence-transformers and transformers do:
//! no padding (the model pads each batch to its own longest input), and
//! truncation at the model's `max_input_length` only when the request allows
//! it — otherwise a too-long input is an error naming its length.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::{Encoded, InferenceError};

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
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, overriding the padding and truncation stored
    /// in it (all-MiniLM-L6-v2's file pads every input to 128 tokens).
    pub fn load(path: &Path, max_input_length: usize) -> Result<TextTokenizer, String> {
        let mut plain = Tokenizer::from_file(path).map_err(|e| e.to_string())?;
        plain.with_padding(None);
        plain.with_truncation(None).map_err(|e| e.to_string())?;
        let with = |strategy, direction| -> Result<Tokenizer, String> {
            let mut t = plain.clone();
            t.with_truncation(Some(TruncationParams {
                max_length: max_input_length,
                strategy,
                direction,
                stride: 0,
            }))
            .map_err(|e| e.to_string())?;
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

    /// Tokenizes one text with special tokens. `truncate: None` means a
    /// too-long text is an error.
    pub fn single(
        &self,
        model: &str,
        index: usize,
        text: &str,
        truncate: Option<Side>,
    ) -> Result<Tokenized, InferenceError> {
        let enc = self
            .plain
            .encode_fast(text, true)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
        if enc.len() <= self.max_input_length {
            return Ok(Tokenized {
                encoded: to_encoded(&enc),
                truncated: false,
            });
        }
        let side = truncate.ok_or_else(|| self.too_long(model, index, enc.len()))?;
        let enc = self.single[side as usize]
            .encode_fast(text, true)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
        Ok(Tokenized {
            encoded: to_encoded(&enc),
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
                encoded: to_encoded(&enc),
                truncated: false,
            });
        }
        let side = truncate.ok_or_else(|| self.too_long(model, index, enc.len()))?;
        // A query too long to leave room for any document cannot be cut here.
        let enc = self.pair[side as usize]
            .encode_fast((query, doc), true)
            .map_err(|_| self.too_long(model, index, enc.len()))?;
        Ok(Tokenized {
            encoded: to_encoded(&enc),
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

fn to_encoded(enc: &tokenizers::Encoding) -> Encoded {
    Encoded {
        ids: enc.get_ids().to_vec(),
        type_ids: enc.get_type_ids().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiny cross-encoder fixture ships all-MiniLM-L6-v2's tokenizer,
    /// including its `padding: Fixed(128)`.
    fn minilm() -> TextTokenizer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny-cross-encoder/tokenizer.json");
        TextTokenizer::load(&path, 16).unwrap()
    }

    #[test]
    fn ignores_the_files_fixed_padding_and_truncates_only_when_asked() {
        let t = minilm();
        let short = t.single("m", 0, "hello world", None).unwrap();
        assert_eq!(short.encoded.ids.len(), 4, "no padding to 128");
        let long = "word ".repeat(40);
        match t.single("m", 3, &long, None) {
            Err(InferenceError::InputTooLong {
                tokens: 42,
                max: 16,
                index: 3,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let cut = t.single("m", 0, &long, Some(Side::Right)).unwrap();
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
