"""Offline embedding throughput of sentence-transformers on PyTorch CPU, the
peer infermon is compared with (bench/run.sh). Same model directory, same
texts, same thread count; prints one JSON line per batch size."""
import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main():
    model_dir, texts_file, seconds, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    texts = [line.rstrip("\n") for line in open(texts_file, encoding="utf-8") if line.strip()]
    model = SentenceTransformer(model_dir, device="cpu")
    cursor = 0
    for batch_size in (1, 8, 32):
        def run():
            nonlocal cursor
            batch = [texts[(cursor + i) % len(texts)] for i in range(batch_size)]
            cursor += batch_size
            t = time.perf_counter()
            model.encode(batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
            return time.perf_counter() - t

        for _ in range(3):
            run()
        latencies = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            latencies.append(run())
        elapsed = time.perf_counter() - start
        latencies.sort()
        pick = lambda p: latencies[round((len(latencies) - 1) * p)] * 1000
        print(json.dumps({
            "engine": f"sentence-transformers {__import__('sentence_transformers').__version__} / torch {torch.__version__}",
            "batch_size": batch_size,
            "texts_per_s": round(batch_size * len(latencies) / elapsed, 1),
            "p50_ms": round(pick(0.5), 2),
            "p99_ms": round(pick(0.99), 2),
            "batches": len(latencies),
        }), flush=True)


if __name__ == "__main__":
    main()
