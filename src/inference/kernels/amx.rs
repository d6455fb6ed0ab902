//! Matrix products on Intel AMX tiles, in "bf16x3" precision.
//!
//! A 2-core Sapphire Rapids box does about 0.2 TFLOP/s of f32 FMA with
//! AVX-512 but 3 TFLOP/s of bf16 tile products per core, and no maintained
//! crate drives the tiles (Rust's AMX intrinsics are nightly-only), hence the
//! inline assembly here. Plain bf16 keeps 8 bits of mantissa, too few for
//! embeddings that must match PyTorch's f32 ones to 2e-4; so every f32 is
//! split into `hi + lo` bf16 halves and each product is summed as
//! `hi·hi + hi·lo + lo·hi` (the `lo·lo` term is below f32 rounding of the
//! result), in f32 accumulators. That is about 16 bits of mantissa per
//! operand for three tile products — still several times faster than f32.
//!
//! Weights are packed once, at load, into the tile layout the `TDPBF16PS`
//! instruction wants (pairs of rows interleaved); activations are split
//! into `hi`/`lo` on every call (one cheap pass).

use std::arch::asm;
use std::sync::OnceLock;

use rayon::prelude::*;

/// Rows of one tile (and of one output strip).
const TILE_ROWS: usize = 16;
/// bf16 values in one tile row (64 bytes).
const TILE_K: usize = 32;
/// Output columns per block: two tiles of 16 f32.
const BLOCK_COLS: usize = 32;
/// u16 per packed tile (16 rows × 32 bf16).
const TILE_LEN: usize = TILE_ROWS * TILE_K;
/// Tiles per (column block, k step): hi and lo for two column tiles.
const TILES_PER_STEP: usize = 4;

/// Whether this process can use AMX bf16 tiles: the CPU has them, the
/// kernel enables their state, it granted this process the permission,
/// and `INFERMON_CPU_MATMUL` does not say `f32`.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var("INFERMON_CPU_MATMUL").is_ok_and(|v| v.eq_ignore_ascii_case("f32")) {
            return false;
        }
        detect()
    })
}

#[cfg(target_os = "linux")]
fn detect() -> bool {
    use std::arch::x86_64::__cpuid_count;
    // CPUID.(7,0):EDX bit 22 = AMX-BF16, bit 24 = AMX-TILE, EBX bits 16
    // and 30 = AVX-512F and BW (used by the activation split);
    // OSXSAVE = CPUID.1:ECX bit 27.
    let leaf7 = __cpuid_count(7, 0);
    let leaf1 = __cpuid_count(1, 0);
    let has = |reg: u32, bit: u32| reg & (1 << bit) != 0;
    if !(has(leaf7.edx, 22)
        && has(leaf7.edx, 24)
        && has(leaf7.ebx, 16)
        && has(leaf7.ebx, 30)
        && has(leaf1.ecx, 27))
    {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is available.
    let xcr0 = unsafe { xgetbv0() };
    // XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA): the kernel manages tile state.
    if xcr0 & (0b11 << 17) != 0b11 << 17 {
        return false;
    }
    const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these codes only reads/updates this process's
    // permission mask; the GET form writes one u64 we own.
    unsafe {
        if libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) != 0
        {
            return false;
        }
        let mut mask: u64 = 0;
        if libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_GET_XCOMP_PERM,
            &mut mask as *mut u64,
        ) != 0
        {
            return false;
        }
        mask & (1 << XFEATURE_XTILEDATA) != 0
    }
}

#[cfg(not(target_os = "linux"))]
fn detect() -> bool {
    false
}

/// XCR0, read with the raw instruction (the intrinsic is gated on the
/// `xsave` target feature, which a portable build does not enable).
///
/// # Safety
/// The CPU must support XGETBV (CPUID.1:ECX.OSXSAVE).
#[cfg(target_os = "linux")]
unsafe fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller checked OSXSAVE; XGETBV with ECX=0 only reads XCR0.
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// f32 → bf16, rounding to nearest even.
fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

fn f32_of(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` as `hi + lo`, both bf16 (branch-free, so loops of it vectorize).
#[inline(always)]
fn split(x: f32) -> (u16, u16) {
    let hi = bf16(x);
    let lo = bf16(x - f32_of(hi));
    (hi, if x.is_finite() { lo } else { 0 })
}

/// [`split`] over a slice, in AVX-512 (every CPU with AMX has it).
///
/// # Safety
/// The CPU must support AVX-512F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn split_all(x: &[f32], hi: &mut [u16], lo: &mut [u16]) {
    for ((h, l), x) in hi.iter_mut().zip(lo.iter_mut()).zip(x) {
        (*h, *l) = split(*x);
    }
}

/// One 64-byte tile row, 64-byte aligned: a tile row that straddles two
/// cache lines loads at about half speed (measured 1.6× slower overall).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u16; TILE_K]);

/// 64-byte aligned storage for `len` bf16 values (`len` a multiple of 32).
fn lines(len: usize) -> Vec<Line> {
    vec![Line([0; TILE_K]); len / TILE_K]
}

/// The bf16 values of `lines`.
fn values(lines: &mut [Line]) -> &mut [u16] {
    // SAFETY: `Line` is a `repr(C)` array of 32 u16 with no padding (its
    // size, 64, equals its alignment), so the slice is `len·32` u16.
    unsafe {
        std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u16>(), lines.len() * TILE_K)
    }
}

/// A `[k, n]` weight matrix in tile layout, `hi` and `lo` halves.
pub struct PackedWeights {
    data: Vec<Line>,
    k: usize,
    n: usize,
}

impl PackedWeights {
    /// Packs `w` (`[k, n]` row-major); `None` when `k` or `n` is not a
    /// multiple of 32 (the tiles' shape), so the caller keeps f32.
    pub fn pack(w: &[f32], k: usize, n: usize) -> Option<PackedWeights> {
        if k == 0
            || n == 0
            || !k.is_multiple_of(TILE_K)
            || !n.is_multiple_of(BLOCK_COLS)
            || w.len() != k * n
        {
            return None;
        }
        let steps = k / TILE_K;
        let mut data = lines((n / BLOCK_COLS) * steps * TILES_PER_STEP * TILE_LEN);
        for (block, out) in values(&mut data)
            .chunks_mut(steps * TILES_PER_STEP * TILE_LEN)
            .enumerate()
        {
            for (step, tiles) in out.chunks_mut(TILES_PER_STEP * TILE_LEN).enumerate() {
                // Tile row p holds, for each of 16 columns, the pair
                // (W[2p][col], W[2p+1][col]) of this k step.
                for half in 0..2 {
                    for p in 0..TILE_K / 2 {
                        for c in 0..16 {
                            let col = block * BLOCK_COLS + half * 16 + c;
                            for e in 0..2 {
                                let (hi, lo) = split(w[(step * TILE_K + 2 * p + e) * n + col]);
                                let at = p * TILE_K + c * 2 + e;
                                tiles[half * TILE_LEN + at] = hi;
                                tiles[(2 + half) * TILE_LEN + at] = lo;
                            }
                        }
                    }
                }
            }
        }
        Some(PackedWeights { data, k, n })
    }

    /// `out += x·W` for `rows` rows: `x` is `[rows, k]`, `out` `[rows, n]`,
    /// both row-major (`out` usually holds the bias already).
    pub fn matmul_acc(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        assert!(x.len() >= rows * k && out.len() >= rows * n && available());
        if rows == 0 {
            return;
        }
        let mut hi = lines(rows * k);
        let mut lo = lines(rows * k);
        values(&mut hi)
            .par_chunks_mut(k * 64)
            .zip(values(&mut lo).par_chunks_mut(k * 64))
            .zip(x[..rows * k].par_chunks(k * 64))
            // SAFETY: AMX is available, so AVX-512 is.
            .for_each(|((h, l), x)| unsafe { split_all(x, h, l) });
        let steps = k / TILE_K;
        let block_len = steps * TILES_PER_STEP * TILE_LEN / TILE_K;
        let out_addr = out.as_mut_ptr() as usize;
        let (hi, lo) = (&hi, &lo);
        // Tasks own disjoint column blocks of `out`; each runs every row strip
        // of its blocks, so a block's weights stay in cache across strips.
        self.data
            .par_chunks(block_len)
            .enumerate()
            .with_min_len(2)
            .for_each(|(block, weights)| {
                let col = block * BLOCK_COLS;
                let mut r = 0;
                // SAFETY: `available()` holds, so the tiles may be used; a
                // strip reads its configured rows of k bf16 at row stride k
                // from `hi`/`lo` starting at row `r`, 4·steps packed tiles
                // from `weights`, and reads/writes those rows' 32 f32 at
                // column `col` (row stride n) of `out`: all in bounds
                // (r + rows ≤ `rows`), and no other task touches these columns.
                unsafe {
                    let at = |r: usize| {
                        (
                            hi.as_ptr().cast::<u16>().add(r * k),
                            lo.as_ptr().cast::<u16>().add(r * k),
                            (out_addr as *mut f32).add(r * n + col),
                        )
                    };
                    // Rows of the second strip the loaded configuration has.
                    let mut configured = 0;
                    while rows - r > TILE_ROWS {
                        let rows2 = (rows - r - TILE_ROWS).min(TILE_ROWS);
                        if rows2 != configured {
                            TileConfig::two_strips(rows2).load();
                            configured = rows2;
                        }
                        let (h0, l0, c0) = at(r);
                        let (h1, l1, c1) = at(r + TILE_ROWS);
                        two_strip_product(
                            [h0, h1],
                            [l0, l1],
                            k * 2,
                            weights.as_ptr().cast::<u16>(),
                            [c0, c1],
                            n * 4,
                            steps,
                        );
                        r += TILE_ROWS + rows2;
                    }
                    if r < rows {
                        TileConfig::one_strip(rows - r).load();
                        let (h, l, c) = at(r);
                        strip_product(h, l, k * 2, weights.as_ptr().cast::<u16>(), c, n * 4, steps);
                    }
                    asm!("tilerelease", options(nostack, nomem));
                }
            });
    }
}

/// The 64-byte `LDTILECFG` operand (palette 1, every row 64 bytes).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

impl TileConfig {
    fn with_rows(rows: [usize; 8]) -> TileConfig {
        let mut cfg = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for (t, r) in rows.iter().enumerate() {
            cfg.colsb[t] = 64;
            cfg.rows[t] = *r as u8;
        }
        cfg
    }

    /// For [`strip_product`]: outputs (0, 1) and activations (2, 3) have
    /// `rows` rows, weights (4–7) 16.
    fn one_strip(rows: usize) -> TileConfig {
        let f = TILE_ROWS;
        TileConfig::with_rows([rows, rows, rows, rows, f, f, f, f])
    }

    /// For [`two_strip_product`]: the first strip's outputs (0, 1) and
    /// activations (4) have 16 rows, the second's (2, 3 and 5) `rows2`;
    /// weights (6, 7) 16.
    fn two_strips(rows2: usize) -> TileConfig {
        let f = TILE_ROWS;
        TileConfig::with_rows([f, f, rows2, rows2, f, rows2, f, f])
    }

    /// # Safety
    /// AMX must be [`available`].
    unsafe fn load(&self) {
        // SAFETY: the operand is a valid 64-byte palette-1 configuration.
        unsafe {
            asm!("ldtilecfg [{0}]", in(reg) self as *const TileConfig, options(nostack, readonly));
        }
    }
}

/// One output strip (the configured rows × 32 columns): loads it, adds
/// `hi·Whi + hi·Wlo + lo·Whi` over `steps` k steps of 32, stores it.
///
/// # Safety
/// Tiles configured by [`TileConfig::load`]; pointers and strides valid for
/// the configured rows and `steps` k steps.
unsafe fn strip_product(
    a_hi: *const u16,
    a_lo: *const u16,
    a_stride: usize,
    weights: *const u16,
    c: *mut f32,
    c_stride: usize,
    steps: usize,
) {
    // SAFETY: see the function's contract.
    unsafe {
        asm!(
            "tileloadd tmm0, [{c} + {cs}*1]",
            "tileloadd tmm1, [{c} + {cs}*1 + 64]",
            "2:",
            "tileloadd tmm2, [{ah} + {as}*1]",
            "tileloadd tmm3, [{al} + {as}*1]",
            "tileloadd tmm4, [{w} + {ws}*1]",
            "tileloadd tmm5, [{w} + {ws}*1 + 1024]",
            "tileloadd tmm6, [{w} + {ws}*1 + 2048]",
            "tileloadd tmm7, [{w} + {ws}*1 + 3072]",
            // Small terms first: lo·Whi, hi·Wlo, then hi·Whi.
            "tdpbf16ps tmm0, tmm3, tmm4",
            "tdpbf16ps tmm1, tmm3, tmm5",
            "tdpbf16ps tmm0, tmm2, tmm6",
            "tdpbf16ps tmm1, tmm2, tmm7",
            "tdpbf16ps tmm0, tmm2, tmm4",
            "tdpbf16ps tmm1, tmm2, tmm5",
            "add {ah}, 64",
            "add {al}, 64",
            "add {w}, 4096",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {cs}*1], tmm0",
            "tilestored [{c} + {cs}*1 + 64], tmm1",
            c = in(reg) c,
            cs = in(reg) c_stride,
            ah = inout(reg) a_hi => _,
            al = inout(reg) a_lo => _,
            as = in(reg) a_stride,
            w = inout(reg) weights => _,
            ws = in(reg) 64usize,
            n = inout(reg) steps => _,
            options(nostack),
        );
    }
}

/// Two output strips (16 + the configured rows, × 32 columns): four
/// accumulators, so the tile products' latency overlaps, and every weight
/// tile serves both strips. Per k step: `lo·Whi`, `hi·Whi`, `hi·Wlo`.
///
/// # Safety
/// Tiles configured by [`TileConfig::two_strips`]; pointers and strides
/// valid for the configured rows and `steps` k steps.
unsafe fn two_strip_product(
    a_hi: [*const u16; 2],
    a_lo: [*const u16; 2],
    a_stride: usize,
    weights: *const u16,
    c: [*mut f32; 2],
    c_stride: usize,
    steps: usize,
) {
    // SAFETY: see the function's contract.
    unsafe {
        asm!(
            "tileloadd tmm0, [{c0} + {cs}*1]",
            "tileloadd tmm1, [{c0} + {cs}*1 + 64]",
            "tileloadd tmm2, [{c1} + {cs}*1]",
            "tileloadd tmm3, [{c1} + {cs}*1 + 64]",
            "2:",
            "tileloadd tmm4, [{al0} + {as}*1]",
            "tileloadd tmm5, [{al1} + {as}*1]",
            "tileloadd tmm6, [{w} + {ws}*1]",
            "tileloadd tmm7, [{w} + {ws}*1 + 1024]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "tileloadd tmm4, [{ah0} + {as}*1]",
            "tileloadd tmm5, [{ah1} + {as}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "tileloadd tmm6, [{w} + {ws}*1 + 2048]",
            "tileloadd tmm7, [{w} + {ws}*1 + 3072]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {ah0}, 64",
            "add {ah1}, 64",
            "add {al0}, 64",
            "add {al1}, 64",
            "add {w}, 4096",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c0} + {cs}*1], tmm0",
            "tilestored [{c0} + {cs}*1 + 64], tmm1",
            "tilestored [{c1} + {cs}*1], tmm2",
            "tilestored [{c1} + {cs}*1 + 64], tmm3",
            c0 = in(reg) c[0],
            c1 = in(reg) c[1],
            cs = in(reg) c_stride,
            ah0 = inout(reg) a_hi[0] => _,
            ah1 = inout(reg) a_hi[1] => _,
            al0 = inout(reg) a_lo[0] => _,
            al1 = inout(reg) a_lo[1] => _,
            as = in(reg) a_stride,
            w = inout(reg) weights => _,
            ws = in(reg) 64usize,
            n = inout(reg) steps => _,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random matrix with values spread like
    /// activations (a few large, most small).
    fn matrix(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                u * u * u * 40.0 + u
            })
            .collect()
    }

    #[test]
    fn split_keeps_sixteen_bits() {
        for x in [1.0f32, -2.718_281_7e3, 1e-3, 12_345.678, 0.1] {
            let (hi, lo) = split(x);
            let back = f32_of(hi) + f32_of(lo);
            assert!(((back - x) / x).abs() < 1e-5, "{x} → {back}");
        }
        assert!(PackedWeights::pack(&[0.0; 31 * 32], 31, 32).is_none());
    }

    #[test]
    fn tiles_match_f64_product() {
        if !available() {
            eprintln!("no AMX on this CPU: the tile product is not exercised here");
            return;
        }
        // Row counts with and without a partial strip, a K of several steps.
        for (rows, k, n) in [
            (29, 384, 64),
            (48, 96, 32),
            (1, 32, 96),
            (100, 1536, 384),
            (32, 64, 32),
            (17, 64, 64),
        ] {
            let x = matrix(rows * k, 7);
            let w = matrix(k * n, 11);
            let bias = matrix(n, 13);
            let packed = PackedWeights::pack(&w, k, n).unwrap();
            let mut out: Vec<f32> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
            packed.matmul_acc(&x, rows, &mut out);
            let mut worst = 0f64;
            for r in 0..rows {
                for c in 0..n {
                    let mut want = f64::from(bias[c]);
                    let mut scale = f64::from(bias[c]).abs();
                    for i in 0..k {
                        let p = f64::from(x[r * k + i]) * f64::from(w[i * n + c]);
                        want += p;
                        scale += p.abs();
                    }
                    let got = f64::from(out[r * n + c]);
                    worst = worst.max((got - want).abs() / scale);
                }
            }
            // f32 accumulation alone is ~1e-7 relative to the sum of |terms|.
            assert!(worst < 2e-5, "{rows}×{k}×{n}: relative error {worst}");
        }
    }
}
