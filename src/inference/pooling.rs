//! Turning per-token hidden states into one vector per input, and the L2
//! normalization and Matryoshka cut applied per request.

use std::path::Path;

/// How per-token states become one vector (sentence-transformers' Pooling modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Average over the real (unpadded) tokens.
    Mean,
    /// The first token ([CLS]).
    Cls,
    /// The last real token (decoder models such as Qwen3-Embedding).
    LastToken,
    /// Component-wise maximum over the real tokens.
    Max,
    /// Sum over the real tokens divided by the square root of their number.
    MeanSqrtLen,
    /// Mean weighted by position (1, 2, 3, …), as SGPT's weighted mean.
    WeightedMean,
}

/// sentence-transformers' Pooling config keys, each with the mode it turns on,
/// in the order sentence-transformers concatenates them.
const ST_MODES: [(&str, Pooling); 6] = [
    ("pooling_mode_cls_token", Pooling::Cls),
    ("pooling_mode_max_tokens", Pooling::Max),
    ("pooling_mode_mean_tokens", Pooling::Mean),
    ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
    ("pooling_mode_weightedmean_tokens", Pooling::WeightedMean),
    ("pooling_mode_lasttoken", Pooling::LastToken),
];

impl Pooling {
    /// Parses a config value (`mean`, `cls`, `last_token`, `max`,
    /// `mean_sqrt_len_tokens`, `weightedmean`).
    pub fn parse(s: &str) -> Option<Pooling> {
        match s {
            "mean" => Some(Pooling::Mean),
            "cls" => Some(Pooling::Cls),
            "last_token" | "lasttoken" | "last" => Some(Pooling::LastToken),
            "max" => Some(Pooling::Max),
            "mean_sqrt_len_tokens" | "mean_sqrt_len" => Some(Pooling::MeanSqrtLen),
            "weightedmean" | "weighted_mean" => Some(Pooling::WeightedMean),
            _ => None,
        }
    }

    /// The name used in `/info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::LastToken => "last_token",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len_tokens",
            Pooling::WeightedMean => "weightedmean",
        }
    }

    /// Reads a sentence-transformers Pooling module's `config.json`. Exactly
    /// one mode must be on; several at once (a concatenation) are refused with
    /// the file and keys named, never approximated by one of them.
    pub fn from_sentence_transformers(config: &Path) -> Result<Pooling, String> {
        let text = std::fs::read_to_string(config).map_err(|e| e.to_string())?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
        // sentence-transformers 6 writes `"pooling_mode": "max"` (or a list).
        if let Some(mode) = value.get("pooling_mode") {
            let names: Vec<&str> = match mode {
                serde_json::Value::String(s) => vec![s.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|m| m.as_str()).collect(),
                _ => Vec::new(),
            };
            return match names.as_slice() {
                [name] => Pooling::parse(name).ok_or_else(|| {
                    format!("pooling_mode {name:?} is not cls, max, mean, mean_sqrt_len_tokens, weightedmean or lasttoken")
                }),
                [] => Err(format!("pooling_mode {mode} names no mode")),
                several => Err(format!(
                    "pooling_mode {} has several modes; concatenated pooling modes are not supported",
                    several.join(" and ")
                )),
            };
        }
        let on: Vec<(&str, Pooling)> = ST_MODES
            .iter()
            .copied()
            .filter(|(key, _)| value.get(key).and_then(serde_json::Value::as_bool) == Some(true))
            .collect();
        match on.as_slice() {
            [(_, mode)] => Ok(*mode),
            [] => Err(format!(
                "no pooling mode is on (one of {} must be true)",
                ST_MODES.map(|(k, _)| k).join(", ")
            )),
            several => Err(format!(
                "{} are all on; concatenated pooling modes are not supported",
                several
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }

    /// Pools the `len` token vectors `token(0..len)`; `position(t)` is the
    /// 1-based position of token `t` in its sequence (weighted mean).
    fn reduce<'a>(
        self,
        len: usize,
        dim: usize,
        token: impl Fn(usize) -> &'a [f32],
        position: impl Fn(usize) -> f32,
    ) -> Vec<f32> {
        let weighted_sum = |weight: &dyn Fn(usize) -> f32| {
            let mut sum = vec![0f32; dim];
            for t in 0..len {
                let w = weight(t);
                for (s, v) in sum.iter_mut().zip(token(t)) {
                    *s += w * v;
                }
            }
            sum
        };
        match self {
            Pooling::Cls => token(0).to_vec(),
            Pooling::LastToken => token(len - 1).to_vec(),
            Pooling::Mean => scaled(weighted_sum(&|_| 1.0), 1.0 / len as f32),
            Pooling::MeanSqrtLen => scaled(weighted_sum(&|_| 1.0), 1.0 / (len as f32).sqrt()),
            Pooling::WeightedMean => {
                let total: f32 = (0..len).map(&position).sum();
                scaled(weighted_sum(&position), 1.0 / total)
            }
            Pooling::Max => {
                let mut max = token(0).to_vec();
                for t in 1..len {
                    for (m, v) in max.iter_mut().zip(token(t)) {
                        *m = m.max(*v);
                    }
                }
                max
            }
        }
    }
}

fn scaled(mut v: Vec<f32>, by: f32) -> Vec<f32> {
    v.iter_mut().for_each(|x| *x *= by);
    v
}

/// Where the real tokens sit in a padded row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingSide {
    /// Tokens first, padding after (BERT).
    Right,
    /// Padding first, tokens last.
    Left,
}

/// The leading tokens of a sequence of `len` that pooling leaves out
/// (`Encoded::pool_skip`): sentence-transformers' `include_prompt: false`.
/// At least one token is always pooled (a prompt longer than a truncated
/// input leaves its last token).
fn skipped(skip: usize, len: usize) -> usize {
    skip.min(len.saturating_sub(1))
}

/// Pools `hidden`, a row-major `[lens.len(), seq_len, dim]` buffer of padded
/// hidden states, into one `dim`-vector per row, looking only at the
/// `lens[i]` real tokens of row `i` less the first `skips[i]` of them.
pub fn pool(
    hidden: &[f32],
    seq_len: usize,
    dim: usize,
    lens: &[usize],
    skips: &[usize],
    side: PaddingSide,
    mode: Pooling,
) -> Vec<Vec<f32>> {
    lens.iter()
        .zip(skips)
        .enumerate()
        .map(|(row, (&len, &skip))| {
            let len = len.clamp(1, seq_len);
            let skip = skipped(skip, len);
            let first = match side {
                PaddingSide::Right => 0,
                PaddingSide::Left => seq_len - len,
            };
            let token = |t: usize| {
                let start = (row * seq_len + first + skip + t) * dim;
                &hidden[start..start + dim]
            };
            // Weighted mean weighs a token by its position in its own
            // sequence: left padding must not shift it, or an input's vector
            // would depend on what it was batched with.
            mode.reduce(len - skip, dim, token, |t| (skip + t + 1) as f32)
        })
        .collect()
}

/// Pools packed hidden states: `hidden` is `[tokens, dim]` holding every
/// sequence's tokens back to back, sequence `i` at rows
/// `offsets[i]..offsets[i + 1]`, of which the first `skips[i]` are left out.
pub fn pool_packed(
    hidden: &[f32],
    dim: usize,
    offsets: &[usize],
    skips: &[usize],
    mode: Pooling,
) -> Vec<Vec<f32>> {
    offsets
        .windows(2)
        .zip(skips)
        .map(|(w, &skip)| {
            let (start, end) = (w[0], w[1].max(w[0] + 1));
            let skip = skipped(skip, end - start);
            let token = |t: usize| &hidden[(start + skip + t) * dim..(start + skip + t + 1) * dim];
            mode.reduce(end - start - skip, dim, token, |t| (skip + t + 1) as f32)
        })
        .collect()
}

/// Scales `v` to unit L2 length (a zero vector stays zero), as
/// sentence-transformers' Normalize module does.
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Keeps the first `dims` components (Matryoshka embeddings, OpenAI's
/// `dimensions`), re-normalizing when asked.
pub fn truncate_dims(v: &mut Vec<f32>, dims: usize, renormalize: bool) {
    if dims < v.len() {
        v.truncate(dims);
        if renormalize {
            normalize(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two rows, seq_len 3, dim 2; row 0 has 3 real tokens, row 1 has 2.
    const HIDDEN: [f32; 12] = [
        1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 99.0, 99.0,
    ];

    #[test]
    fn mean_ignores_padding() {
        let out = pool(
            &HIDDEN,
            3,
            2,
            &[3, 2],
            &[0, 0],
            PaddingSide::Right,
            Pooling::Mean,
        );
        assert_eq!(out, vec![vec![3.0, 4.0], vec![20.0, 30.0]]);
    }

    #[test]
    fn cls_and_last_token_right_padded() {
        assert_eq!(
            pool(
                &HIDDEN,
                3,
                2,
                &[3, 2],
                &[0, 0],
                PaddingSide::Right,
                Pooling::Cls
            )[1],
            vec![10.0, 20.0]
        );
        assert_eq!(
            pool(
                &HIDDEN,
                3,
                2,
                &[3, 2],
                &[0, 0],
                PaddingSide::Right,
                Pooling::LastToken
            )[1],
            vec![30.0, 40.0]
        );
    }

    #[test]
    fn left_padding_reads_the_tail() {
        // Row 1 left-padded: pad, then tokens (30,40), (99,99).
        let out = pool(
            &HIDDEN,
            3,
            2,
            &[3, 2],
            &[0, 0],
            PaddingSide::Left,
            Pooling::Cls,
        );
        assert_eq!(out[1], vec![30.0, 40.0]);
        let out = pool(
            &HIDDEN,
            3,
            2,
            &[3, 2],
            &[0, 0],
            PaddingSide::Left,
            Pooling::LastToken,
        );
        assert_eq!(out[1], vec![99.0, 99.0]);
    }

    #[test]
    fn left_padded_weighted_mean_equals_the_unpadded_sequence() {
        // Row 1 left-padded: pad, then tokens (30,40), (99,99); alone, the
        // same two tokens weigh 1 and 2 (sentence-transformers on one input).
        let padded = pool(
            &HIDDEN,
            3,
            2,
            &[3, 2],
            &[0, 0],
            PaddingSide::Left,
            Pooling::WeightedMean,
        );
        let alone = pool(
            &[30.0, 40.0, 99.0, 99.0],
            2,
            2,
            &[2],
            &[0],
            PaddingSide::Right,
            Pooling::WeightedMean,
        );
        assert_eq!(padded[1], alone[0]);
        assert_eq!(
            alone[0],
            vec![(30.0 + 2.0 * 99.0) / 3.0, (40.0 + 2.0 * 99.0) / 3.0]
        );
        // With a skipped prompt token, the kept one keeps its position 2.
        let skipped = pool(
            &HIDDEN,
            3,
            2,
            &[3, 2],
            &[0, 1],
            PaddingSide::Left,
            Pooling::WeightedMean,
        );
        assert_eq!(skipped[1], vec![99.0, 99.0]);
    }

    #[test]
    fn packed_pooling_uses_each_sequences_rows() {
        // Rows: seq 0 = (1,2),(3,4),(5,6); seq 1 = (10,20),(30,40).
        let hidden = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0];
        let offsets = [0, 3, 5];
        assert_eq!(
            pool_packed(&hidden, 2, &offsets, &[0, 0], Pooling::Mean),
            vec![vec![3.0, 4.0], vec![20.0, 30.0]]
        );
        assert_eq!(
            pool_packed(&hidden, 2, &offsets, &[0, 0], Pooling::Cls)[1],
            vec![10.0, 20.0]
        );
        assert_eq!(
            pool_packed(&hidden, 2, &offsets, &[0, 0], Pooling::LastToken)[0],
            vec![5.0, 6.0]
        );
    }

    #[test]
    fn max_sqrt_len_and_weighted_mean_ignore_padding() {
        let pooled = |mode| pool(&HIDDEN, 3, 2, &[3, 2], &[0, 0], PaddingSide::Right, mode);
        assert_eq!(pooled(Pooling::Max)[1], vec![30.0, 40.0]);
        let s = pooled(Pooling::MeanSqrtLen)[1].clone();
        assert!((s[0] - 40.0 / 2f32.sqrt()).abs() < 1e-5, "{s:?}");
        // Weights 1 and 2 for row 1's two tokens: (10 + 2·30) / 3.
        let w = pooled(Pooling::WeightedMean)[1].clone();
        assert!((w[0] - 70.0 / 3.0).abs() < 1e-5, "{w:?}");
        // Packed gives the same as right-padded.
        let hidden = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0];
        for mode in [Pooling::Max, Pooling::MeanSqrtLen, Pooling::WeightedMean] {
            assert_eq!(
                pool_packed(&hidden, 2, &[0, 3, 5], &[0, 0], mode),
                pooled(mode)
            );
        }
    }

    #[test]
    fn skipped_prompt_tokens_are_left_out_as_sentence_transformers_masks_them() {
        // Row 0 skips its first token: mean of (3,4),(5,6); CLS becomes the
        // first token after the prompt; weights keep their positions (2, 3).
        let pooled = |mode| pool(&HIDDEN, 3, 2, &[3, 2], &[1, 0], PaddingSide::Right, mode);
        assert_eq!(pooled(Pooling::Mean)[0], vec![4.0, 5.0]);
        assert_eq!(pooled(Pooling::Mean)[1], vec![20.0, 30.0]);
        assert_eq!(pooled(Pooling::Cls)[0], vec![3.0, 4.0]);
        assert_eq!(pooled(Pooling::Max)[0], vec![5.0, 6.0]);
        let w = pooled(Pooling::WeightedMean)[0].clone();
        assert!((w[0] - (2.0 * 3.0 + 3.0 * 5.0) / 5.0).abs() < 1e-5, "{w:?}");
        // Packed rows agree; a skip as long as the row keeps its last token.
        let hidden = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0];
        for mode in [Pooling::Mean, Pooling::Cls, Pooling::WeightedMean] {
            assert_eq!(
                pool_packed(&hidden, 2, &[0, 3, 5], &[1, 0], mode),
                pooled(mode)
            );
        }
        assert_eq!(
            pool_packed(&hidden, 2, &[0, 3, 5], &[0, 9], Pooling::Mean)[1],
            vec![30.0, 40.0]
        );
    }

    #[test]
    fn sentence_transformers_config_needs_exactly_one_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let read = |json: &str| {
            std::fs::write(&file, json).unwrap();
            Pooling::from_sentence_transformers(&file)
        };
        assert_eq!(
            read(r#"{"pooling_mode_max_tokens": true, "pooling_mode_mean_tokens": false}"#),
            Ok(Pooling::Max)
        );
        assert_eq!(
            read(r#"{"pooling_mode_weightedmean_tokens": true}"#),
            Ok(Pooling::WeightedMean)
        );
        let both = read(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#)
            .unwrap_err();
        assert!(
            both.contains("pooling_mode_cls_token and pooling_mode_mean_tokens"),
            "{both}"
        );
        assert!(read("{}").unwrap_err().contains("no pooling mode"));
        // sentence-transformers 6's form.
        assert_eq!(
            read(r#"{"pooling_mode": "weightedmean"}"#),
            Ok(Pooling::WeightedMean)
        );
        assert!(
            read(r#"{"pooling_mode": ["cls", "max"]}"#)
                .unwrap_err()
                .contains("concatenated")
        );
        assert!(
            read(r#"{"pooling_mode": "median"}"#)
                .unwrap_err()
                .contains("median")
        );
    }

    #[test]
    fn normalize_and_truncate() {
        let mut v = vec![3.0, 4.0, 12.0];
        truncate_dims(&mut v, 2, true);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    #[test]
    fn parses_names() {
        assert_eq!(Pooling::parse("mean"), Some(Pooling::Mean));
        assert_eq!(Pooling::parse("last_token"), Some(Pooling::LastToken));
        assert_eq!(Pooling::parse("max"), Some(Pooling::Max));
        assert_eq!(Pooling::parse("maximum"), None);
    }
}
