//! The encoder's matrix products at all-MiniLM-L6-v2's shapes (hidden 384,
//! intermediate 1536) on 256 tokens: f32 `gemm` against AMX bf16x3 tiles
//! (where the CPU has them). `cargo bench --bench matmul`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use infermon::inference::kernels::{Activation, Linear, amx};

fn matrix(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect()
}

fn products(c: &mut Criterion) {
    let rows = 256;
    let mut g = c.benchmark_group("matmul");
    for (name, k, n) in [
        ("qkv", 384, 1152),
        ("out", 384, 384),
        ("up", 384, 1536),
        ("down", 1536, 384),
    ] {
        let w = matrix(k * n, 1);
        let x = matrix(rows * k, 2);
        g.throughput(Throughput::Elements((2 * rows * k * n) as u64));
        let f32_only = Linear {
            w: w.clone(),
            tiles: None,
            b: vec![0.0; n],
            k,
            n,
        };
        g.bench_function(format!("{name}/f32"), |b| {
            b.iter(|| f32_only.forward(&x, rows, Activation::None))
        });
        if amx::available() {
            let tiles = Linear::new(w, vec![0.0; n], k, n);
            g.bench_function(format!("{name}/amx-bf16x3"), |b| {
                b.iter(|| tiles.forward(&x, rows, Activation::None))
            });
            if let Some(packed) = &tiles.tiles {
                let mut out = vec![0f32; rows * n];
                g.bench_function(format!("{name}/amx-bf16x3-product-only"), |b| {
                    b.iter(|| packed.matmul_acc(&x, rows, &mut out))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
