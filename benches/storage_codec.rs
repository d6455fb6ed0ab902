//! Micro-benchmarks of the hot paths the scraper and store own: the
//! exposition parser and the chunk codec. Peer comparisons live in `bench/`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use infermon::model::textparse::{Format, parse};
use infermon::storage::chunk::{ChunkEncoder, decode};

/// A body shaped like node exporter's: families with a few labels each.
fn exposition(lines: usize) -> String {
    let mut body = String::new();
    for i in 0..lines {
        if i % 20 == 0 {
            body.push_str(&format!(
                "# HELP node_metric_{i} Help text.\n# TYPE node_metric_{i} counter\n"
            ));
        }
        body.push_str(&format!(
            "node_metric_{}{{cpu=\"{}\",mode=\"user\",device=\"nvme0n1\"}} {}.{}\n",
            i / 20,
            i % 20,
            i * 37,
            i % 7
        ));
    }
    body
}

/// A counter scraped every 15s with a little jitter, for 480 samples.
fn counter_samples() -> Vec<(i64, f64)> {
    let mut v = 0.0;
    (0..480)
        .map(|i| {
            v += ((i * 7919) % 13) as f64;
            (1_700_000_000_000 + i * 15_000 + (i * 31) % 5, v)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let body = exposition(2000);
    let mut g = c.benchmark_group("parser");
    g.throughput(Throughput::Elements(2000));
    g.bench_function("text_2000_samples", |b| {
        b.iter(|| parse(black_box(&body), Format::Text).unwrap())
    });
    g.finish();

    let samples = counter_samples();
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("encode_480", |b| {
        b.iter(|| {
            let mut enc = ChunkEncoder::new();
            for &(t, v) in black_box(&samples) {
                enc.append(t, v);
            }
            enc.bytes().len()
        })
    });
    let mut enc = ChunkEncoder::new();
    for &(t, v) in &samples {
        enc.append(t, v);
    }
    let bytes = enc.bytes().to_vec();
    g.bench_function("decode_480", |b| {
        b.iter(|| decode(black_box(&bytes)).unwrap())
    });
    g.finish();
    eprintln!(
        "counter chunk: {} samples in {} bytes ({:.2} bytes/sample)",
        samples.len(),
        bytes.len(),
        bytes.len() as f64 / samples.len() as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
