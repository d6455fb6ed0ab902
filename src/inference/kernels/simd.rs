//! Running the element-wise kernels with the CPU's widest vectors.
//!
//! A portable x86-64 build may only assume SSE2, so loops compile to
//! 4-wide code. [`run`] calls its closure from a function compiled for
//! AVX-512 (or AVX2+FMA) when the CPU has it; the closure and the
//! `#[inline(always)]` helpers it calls are inlined there and vectorized
//! for those registers. The arithmetic stays the same (no FMA contraction
//! is introduced), so results do not depend on the path.

/// Partial sums kept per reduction: one AVX-512 register of f32.
pub const LANES: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Avx512,
    Avx2,
    Baseline,
}

fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Level::Avx2;
            }
        }
        Level::Baseline
    })
}

/// Runs `f`, compiled for the widest vector extension this CPU has.
#[inline(always)]
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has these features (checked in `level`).
        Level::Avx512 => unsafe { avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Level::Avx2 => unsafe { avx2(f) },
        _ => f(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Sum of `x` in [`LANES`] partial sums (vectorizes, unlike a plain fold).
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for c in x.chunks(LANES) {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum()
}
