//! CPU kernels for encoder models in f32, on packed (unpadded) batches.
//!
//! candle's CPU backend runs element-wise ops on one thread and needs a
//! transpose copy per attention head; on a 2-core box those dominate a
//! small encoder like MiniLM. These kernels instead work on one row-major
//! `[tokens, width]` buffer holding every real token of the batch back to
//! back (no padding at all): matrix products go to the `gemm` crate with
//! the bias pre-loaded into the output, GELU and residual+LayerNorm are
//! fused passes split across rayon's threads, and attention reads query,
//! key and value straight from the fused QKV buffer one (sequence, head)
//! pair per task, looking only at that sequence's own tokens — so padding
//! never needs a mask.
//!
//! Where the CPU has AMX tiles, matrix products run on them instead
//! ([`amx`]), in a split-bf16 precision close to f32.

#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(not(target_arch = "x86_64"))]
#[path = "amx_elsewhere.rs"]
pub mod amx;
mod simd;

use rayon::prelude::*;

/// `x·W + b` for `x: [rows, k]`, `W` stored as `[k, n]` row-major.
pub struct Linear {
    /// Weights, `[k, n]` row-major (the transpose of PyTorch's layout);
    /// empty when they live in `tiles` instead.
    pub w: Vec<f32>,
    /// The weights packed for AMX tiles, where the CPU has them and the
    /// shape fits.
    pub tiles: Option<Box<amx::PackedWeights>>,
    /// Bias, `n`.
    pub b: Vec<f32>,
    /// Input width.
    pub k: usize,
    /// Output width.
    pub n: usize,
}

/// What to apply to a linear layer's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Nothing.
    None,
    /// Exact (erf) GELU, as BERT's `gelu`.
    Gelu,
    /// tanh-approximated GELU (`gelu_new`).
    GeluTanh,
    /// max(0, x).
    Relu,
}

impl Linear {
    /// From PyTorch's `[n, k]` weight and `n` bias.
    pub fn from_torch(weight: &[f32], bias: Vec<f32>, k: usize, n: usize) -> Linear {
        let mut w = vec![0f32; k * n];
        for o in 0..n {
            for i in 0..k {
                w[i * n + o] = weight[o * k + i];
            }
        }
        Linear::new(w, bias, k, n)
    }

    /// From `[k, n]` row-major weights and `n` bias; packs them for AMX
    /// tiles where possible (and then drops the f32 copy).
    pub fn new(w: Vec<f32>, b: Vec<f32>, k: usize, n: usize) -> Linear {
        let tiles = if amx::available() {
            amx::PackedWeights::pack(&w, k, n).map(Box::new)
        } else {
            None
        };
        let w = if tiles.is_some() { Vec::new() } else { w };
        Linear { w, tiles, b, k, n }
    }

    /// `act(x·W + b)` for `rows` rows of `x`.
    pub fn forward(&self, x: &[f32], rows: usize, act: Activation) -> Vec<f32> {
        let n = self.n;
        let mut out = Vec::with_capacity(rows * n);
        for _ in 0..rows {
            out.extend_from_slice(&self.b);
        }
        if rows == 0 {
            return out;
        }
        match &self.tiles {
            Some(tiles) => tiles.matmul_acc(x, rows, &mut out),
            None => self.product_f32(x, rows, &mut out),
        }
        self.activate(&mut out, act);
        out
    }

    /// `out += x·W` with the f32 `gemm` crate.
    fn product_f32(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        let n = self.n;
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 && rows * n * self.k > 1 << 16 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the three buffers hold rows×n, rows×k and k×n floats, and
        // the strides below describe exactly those row-major layouts.
        unsafe {
            gemm::gemm(
                rows,
                n,
                self.k,
                out.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                self.k as isize,
                self.w.as_ptr(),
                1,
                n as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }

    fn activate(&self, out: &mut [f32], act: Activation) {
        match act {
            Activation::None => {}
            Activation::Gelu => par_map(out, gelu_erf),
            Activation::GeluTanh => par_map(out, gelu_tanh),
            Activation::Relu => par_map(out, |v| v.max(0.0)),
        }
    }
}

/// LayerNorm parameters.
pub struct LayerNorm {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
    /// Epsilon.
    pub eps: f32,
}

impl LayerNorm {
    /// `x = LayerNorm(x + residual)`, row by row, in place.
    pub fn add_forward(&self, x: &mut [f32], residual: &[f32]) {
        let width = self.gamma.len().max(1);
        x.par_chunks_mut(width * 16)
            .zip(residual.par_chunks(width * 16))
            .for_each(|(xs, rs)| simd::run(|| self.rows(xs, Some(rs))));
    }

    /// LayerNorm of every row, in place.
    pub fn forward(&self, x: &mut [f32]) {
        let width = self.gamma.len().max(1);
        x.par_chunks_mut(width * 16)
            .for_each(|xs| simd::run(|| self.rows(xs, None)));
    }

    #[inline(always)]
    fn rows(&self, xs: &mut [f32], residual: Option<&[f32]>) {
        let width = self.gamma.len();
        for (i, row) in xs.chunks_mut(width).enumerate() {
            if let Some(rs) = residual {
                for (v, r) in row.iter_mut().zip(&rs[i * width..]) {
                    *v += r;
                }
            }
            let n = row.len() as f32;
            let mean = simd::sum(row) / n;
            let mut sq = [0f32; simd::LANES];
            for c in row.chunks(simd::LANES) {
                for (a, v) in sq.iter_mut().zip(c) {
                    *a += (v - mean) * (v - mean);
                }
            }
            let var = sq.iter().sum::<f32>() / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    }
}

/// Multi-head self-attention over packed sequences.
///
/// `qkv` is `[tokens, 3·heads·head_dim]` (query columns first, then key,
/// then value; the query already scaled by 1/√head_dim); `offsets` holds
/// each sequence's first row, plus the total at the end. Returns the
/// context `[tokens, heads·head_dim]`.
pub fn attention(qkv: &[f32], offsets: &[usize], heads: usize, head_dim: usize) -> Vec<f32> {
    let h = heads * head_dim;
    let tokens = offsets.last().copied().unwrap_or(0);
    let mut out = vec![0f32; tokens * h];
    let out_addr = out.as_mut_ptr() as usize;
    // One task per (sequence, head); each writes a disjoint column block of
    // its sequence's rows.
    let tasks: Vec<(usize, usize)> = (0..offsets.len().saturating_sub(1))
        .flat_map(|s| (0..heads).map(move |hd| (s, hd)))
        .collect();
    tasks.par_iter().for_each(|&(s, head)| {
        simd::run(|| {
            let (start, end) = (offsets[s], offsets[s + 1]);
            let len = end - start;
            let at = |t: usize, part: usize| (start + t) * 3 * h + part * h + head * head_dim;
            // Keys transposed ([head_dim, len]) so that a query's scores are
            // one vectorized pass per dimension, with no horizontal sums.
            let mut keys = vec![0f32; head_dim * len];
            for j in 0..len {
                for (d, k) in qkv[at(j, 1)..at(j, 1) + head_dim].iter().enumerate() {
                    keys[d * len + j] = *k;
                }
            }
            let mut scores = vec![0f32; len];
            let mut ctx = vec![0f32; head_dim];
            for i in 0..len {
                scores.fill(0.0);
                for (d, q) in qkv[at(i, 0)..at(i, 0) + head_dim].iter().enumerate() {
                    for (s, k) in scores.iter_mut().zip(&keys[d * len..(d + 1) * len]) {
                        *s += q * k;
                    }
                }
                let max = simd::max(&scores);
                for s in scores.iter_mut() {
                    *s = simd::exp(*s - max);
                }
                let inv = 1.0 / simd::sum(&scores);
                ctx.fill(0.0);
                for (j, s) in scores.iter().enumerate() {
                    let p = s * inv;
                    for (c, v) in ctx.iter_mut().zip(&qkv[at(j, 2)..at(j, 2) + head_dim]) {
                        *c += p * v;
                    }
                }
                // SAFETY: row start+i, columns head·head_dim.. of `out`
                // (tokens × h) belong to this task alone; `out` outlives
                // the parallel loop.
                unsafe {
                    let dst = (out_addr as *mut f32).add((start + i) * h + head * head_dim);
                    std::ptr::copy_nonoverlapping(ctx.as_ptr(), dst, head_dim);
                }
            }
        })
    });
    out
}

fn par_map(x: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    x.par_chunks_mut(4096)
        .for_each(|c| simd::run(|| c.iter_mut().for_each(|v| *v = f(*v))));
}

#[inline(always)]
/// erf for f32 as a rational polynomial on [-4, 4] (outside, erf is ±1 to
/// f32 precision): branch-free, so the loop vectorizes; error below 1e-6.
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_1e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_5e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_4e-3;
    q = x2 * q + -1.426_473_9e-2;
    p / q
}

#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    let c = (2.0 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044_715 * x * x * x)).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_accurate() {
        // Reference values of erf.
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
            (3.5, 0.999_999_3),
            (9.0, 1.0),
        ] {
            assert!(
                (erf(x) - want).abs() < 1e-6,
                "erf({x}) = {} not {want}",
                erf(x)
            );
        }
    }

    #[test]
    fn linear_matches_naive_product() {
        // W (torch layout [n=2, k=3]).
        let l = Linear::from_torch(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.5, -1.0], 3, 2);
        let y = l.forward(&[1.0, 0.0, -1.0, 2.0, 1.0, 0.0], 2, Activation::None);
        assert_eq!(
            y,
            vec![
                1.0 - 3.0 + 0.5,
                4.0 - 6.0 - 1.0,
                2.0 + 2.0 + 0.5,
                8.0 + 5.0 - 1.0
            ]
        );
        let r = l.forward(&[1.0, 0.0, -1.0], 1, Activation::Relu);
        assert_eq!(r, vec![0.0, 0.0]);
    }

    #[test]
    fn layer_norm_normalizes_rows() {
        let ln = LayerNorm {
            gamma: vec![1.0; 4],
            beta: vec![0.0; 4],
            eps: 0.0,
        };
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        ln.add_forward(&mut x, &[1.0, 1.0, 1.0, 1.0]);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{x:?}");
    }

    #[test]
    fn attention_sees_only_its_own_sequence() {
        // Two sequences (1 token, 2 tokens), one head of width 1:
        // columns are q, k, v.
        let qkv = [0.0, 0.0, 7.0, /* seq 2 */ 0.0, 0.0, 1.0, 0.0, 0.0, 3.0];
        let out = attention(&qkv, &[0, 1, 3], 1, 1);
        // Equal scores: sequence 2 averages its values; sequence 1 sees only itself.
        assert_eq!(out, vec![7.0, 2.0, 2.0]);
    }
}
