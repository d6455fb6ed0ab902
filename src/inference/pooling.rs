//! Turning per-token hidden states into one vector per input, and the L2
//! normalization and Matryoshka cut applied per request.

use std::path::Path;

/// How per-token states become one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Average over the real (unpadded) tokens.
    Mean,
    /// The first token ([CLS]).
    Cls,
    /// The last real token (decoder models such as Qwen3-Embedding).
    LastToken,
}

impl Pooling {
    /// Parses a config value (`mean`, `cls`, `last_token`).
    pub fn parse(s: &str) -> Option<Pooling> {
        match s {
            "mean" => Some(Pooling::Mean),
            "cls" => Some(Pooling::Cls),
            "last_token" | "lasttoken" | "last" => Some(Pooling::LastToken),
            _ => None,
        }
    }

    /// The name used in `/info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::LastToken => "last_token",
        }
    }

    /// Reads sentence-transformers' `1_Pooling/config.json` under `dir`;
    /// `None` when absent or when it names no mode infermon supports.
    pub fn from_sentence_transformers(dir: &Path) -> Option<Pooling> {
        let text = std::fs::read_to_string(dir.join("1_Pooling/config.json")).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        let on = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        };
        if on("pooling_mode_cls_token") {
            Some(Pooling::Cls)
        } else if on("pooling_mode_lasttoken") {
            Some(Pooling::LastToken)
        } else if on("pooling_mode_mean_tokens") {
            Some(Pooling::Mean)
        } else {
            None
        }
    }
}

/// Where the real tokens sit in a padded row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingSide {
    /// Tokens first, padding after (BERT).
    Right,
    /// Padding first, tokens last.
    Left,
}

/// Pools `hidden`, a row-major `[lens.len(), seq_len, dim]` buffer of padded
/// hidden states, into one `dim`-vector per row, looking only at the
/// `lens[i]` real tokens of row `i`.
pub fn pool(
    hidden: &[f32],
    seq_len: usize,
    dim: usize,
    lens: &[usize],
    side: PaddingSide,
    mode: Pooling,
) -> Vec<Vec<f32>> {
    lens.iter()
        .enumerate()
        .map(|(row, &len)| {
            let len = len.clamp(1, seq_len);
            let first = match side {
                PaddingSide::Right => 0,
                PaddingSide::Left => seq_len - len,
            };
            let token = |t: usize| {
                let start = (row * seq_len + first + t) * dim;
                &hidden[start..start + dim]
            };
            match mode {
                Pooling::Cls => token(0).to_vec(),
                Pooling::LastToken => token(len - 1).to_vec(),
                Pooling::Mean => {
                    let mut sum = vec![0f32; dim];
                    for t in 0..len {
                        for (s, v) in sum.iter_mut().zip(token(t)) {
                            *s += v;
                        }
                    }
                    let n = len as f32;
                    sum.iter_mut().for_each(|s| *s /= n);
                    sum
                }
            }
        })
        .collect()
}

/// Pools packed hidden states: `hidden` is `[tokens, dim]` holding every
/// sequence's tokens back to back, sequence `i` at rows
/// `offsets[i]..offsets[i + 1]`.
pub fn pool_packed(hidden: &[f32], dim: usize, offsets: &[usize], mode: Pooling) -> Vec<Vec<f32>> {
    offsets
        .windows(2)
        .map(|w| {
            let (start, end) = (w[0], w[1].max(w[0] + 1));
            let row = |t: usize| &hidden[t * dim..(t + 1) * dim];
            match mode {
                Pooling::Cls => row(start).to_vec(),
                Pooling::LastToken => row(end - 1).to_vec(),
                Pooling::Mean => {
                    let mut sum = vec![0f32; dim];
                    for t in start..end {
                        for (s, v) in sum.iter_mut().zip(row(t)) {
                            *s += v;
                        }
                    }
                    let n = (end - start) as f32;
                    sum.iter_mut().for_each(|s| *s /= n);
                    sum
                }
            }
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
        let out = pool(&HIDDEN, 3, 2, &[3, 2], PaddingSide::Right, Pooling::Mean);
        assert_eq!(out, vec![vec![3.0, 4.0], vec![20.0, 30.0]]);
    }

    #[test]
    fn cls_and_last_token_right_padded() {
        assert_eq!(
            pool(&HIDDEN, 3, 2, &[3, 2], PaddingSide::Right, Pooling::Cls)[1],
            vec![10.0, 20.0]
        );
        assert_eq!(
            pool(
                &HIDDEN,
                3,
                2,
                &[3, 2],
                PaddingSide::Right,
                Pooling::LastToken
            )[1],
            vec![30.0, 40.0]
        );
    }

    #[test]
    fn left_padding_reads_the_tail() {
        // Row 1 left-padded: pad, then tokens (30,40), (99,99).
        let out = pool(&HIDDEN, 3, 2, &[3, 2], PaddingSide::Left, Pooling::Cls);
        assert_eq!(out[1], vec![30.0, 40.0]);
        let out = pool(
            &HIDDEN,
            3,
            2,
            &[3, 2],
            PaddingSide::Left,
            Pooling::LastToken,
        );
        assert_eq!(out[1], vec![99.0, 99.0]);
    }

    #[test]
    fn packed_pooling_uses_each_sequences_rows() {
        // Rows: seq 0 = (1,2),(3,4),(5,6); seq 1 = (10,20),(30,40).
        let hidden = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0];
        let offsets = [0, 3, 5];
        assert_eq!(
            pool_packed(&hidden, 2, &offsets, Pooling::Mean),
            vec![vec![3.0, 4.0], vec![20.0, 30.0]]
        );
        assert_eq!(
            pool_packed(&hidden, 2, &offsets, Pooling::Cls)[1],
            vec![10.0, 20.0]
        );
        assert_eq!(
            pool_packed(&hidden, 2, &offsets, Pooling::LastToken)[0],
            vec![5.0, 6.0]
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
        assert_eq!(Pooling::parse("max"), None);
    }
}
