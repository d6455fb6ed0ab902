//! Offline embedding throughput of infermon's model path (tokenize →
//! forward → normalize), without HTTP, for the comparison with
//! sentence-transformers in `bench/run.sh`.
//!
//! Usage: `cargo run --release --example embed_offline -- MODEL_DIR TEXTS_FILE SECONDS_PER_BATCH_SIZE`
//! Prints one JSON line per batch size: texts/s and per-batch p50/p99 in ms.
//! With `VECTOR_OUT=FILE`, first writes the normalized vector of the first
//! text, embedded alone, to FILE as a JSON list (bench/families/run.sh
//! compares it with sentence-transformers before timing a model).

use std::path::Path;
use std::time::{Duration, Instant};

use infermon::config::ModelConfig;
use infermon::inference::Encoded;
use infermon::inference::loader;
use infermon::inference::pooling::normalize;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model_dir, texts_file, seconds] = args.as_slice() else {
        anyhow::bail!("usage: embed_offline MODEL_DIR TEXTS_FILE SECONDS_PER_BATCH_SIZE");
    };
    let seconds: f64 = seconds.parse()?;
    let texts: Vec<String> = std::fs::read_to_string(texts_file)?
        .lines()
        .map(str::to_string)
        .collect();
    let cfg: ModelConfig = serde_yaml_ng::from_str(&format!("path: {model_dir}"))?;
    let mut parts = loader::load(&cfg, Path::new("."))?;
    // BATCH_SIZES=32 (comma-separated) narrows the run, for A/B comparisons.
    let sizes: Vec<usize> = std::env::var("BATCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 32]);
    if let Ok(path) = std::env::var("VECTOR_OUT") {
        let first = texts.first().map(String::as_str).unwrap_or_default();
        let encoded = parts
            .tokenizer
            .single("bench", 0, first, None, None)?
            .encoded;
        let mut vectors = parts.backend.forward(&[&encoded])?;
        let mut vector = vectors.pop().unwrap_or_default();
        normalize(&mut vector);
        std::fs::write(&path, serde_json::to_string(&vector)?)?;
    }
    for batch_size in sizes {
        let mut latencies = Vec::new();
        let mut done = 0usize;
        let mut cursor = 0usize;
        let mut run =
            |record: bool, latencies: &mut Vec<Duration>, done: &mut usize| -> anyhow::Result<()> {
                let batch: Vec<&String> = (0..batch_size)
                    .map(|i| &texts[(cursor + i) % texts.len()])
                    .collect();
                cursor += batch_size;
                let t = Instant::now();
                let encoded: Vec<Encoded> = batch
                    .iter()
                    .enumerate()
                    .map(|(i, text)| {
                        parts
                            .tokenizer
                            .single("bench", i, text, None, None)
                            .map(|t| t.encoded)
                    })
                    .collect::<Result<_, _>>()?;
                let refs: Vec<&Encoded> = encoded.iter().collect();
                let mut vectors = parts.backend.forward(&refs)?;
                vectors.iter_mut().for_each(|v| normalize(v));
                if record {
                    latencies.push(t.elapsed());
                    *done += batch_size;
                }
                Ok(())
            };
        // Warm-up: a few batches, not recorded.
        for _ in 0..3 {
            run(false, &mut latencies, &mut done)?;
        }
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < seconds {
            run(true, &mut latencies, &mut done)?;
        }
        let elapsed = start.elapsed().as_secs_f64();
        latencies.sort();
        println!(
            "{{\"engine\":\"infermon\",\"batch_size\":{batch_size},\"texts_per_s\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"batches\":{}}}",
            done as f64 / elapsed,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.len()
        );
    }
    metrics_cost();
    Ok(())
}

/// What the per-request metric updates of a successful `/embed` cost (the
/// handler's request counter and three timing histograms, plus the model's
/// token and batch histograms), to compare with the time of a request.
fn metrics_cost() {
    let registry = prometheus::Registry::new();
    let Ok(metrics) = infermon::inference::Metrics::new(&registry) else {
        return;
    };
    let model = metrics.model("minilm", "BertModel", "embed", "cpu", "f32");
    let timings = infermon::inference::queue::Timings::default();
    let n = 200_000;
    let t = Instant::now();
    for _ in 0..n {
        metrics.request("minilm", "/embed", 200);
        metrics.timings("minilm", "/embed", &timings);
        model.input_tokens.observe(29.0);
        model.batch_size.observe(1.0);
        model.batch_tokens.observe(29.0);
        model.compute.observe(0.01);
        model.queue_depth.add(1);
        model.queue_depth.sub(1);
    }
    println!(
        "{{\"metrics_ns_per_request\":{:.0}}}",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
