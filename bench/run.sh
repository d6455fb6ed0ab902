#!/usr/bin/env bash
# infermon vs sentence-transformers (PyTorch CPU), all-MiniLM-L6-v2, the same
# 29-token texts (bench/texts.txt) and the same thread count, in one run:
#   1. offline: texts/s and per-batch p50/p99 at batch 1, 8, 32;
#   2. HTTP: wrk with 1/4/16/64 connections, one text per request, against
#      infermon's /embed and against a minimal Python server (bench/http_st.py).
# Usage: bench/setup.sh once, then bench/run.sh [seconds per measurement].
# Results: bench/results/<time>.jsonl (one JSON object per line).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
THREADS=${THREADS:-2}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
MODEL=models/all-MiniLM-L6-v2
PY=bench/.venv/bin/python
[ -x "$PY" ] || { echo "run bench/setup.sh first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin infermon --example embed_offline
mkdir -p bench/results
out=bench/results/$(date -u +%Y%m%d-%H%M%S).jsonl
note() { echo "$1" | tee -a "$out"; }
note "{\"machine\":\"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\",\"threads\":$THREADS,\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"

# 1. Offline, infermon then PyTorch, then infermon again (load on a shared box drifts).
target/release/examples/embed_offline "$MODEL" bench/texts.txt "$SECS" | sed 's/^{/{"phase":"offline",/' | tee -a "$out"
"$PY" bench/st_offline.py "$MODEL" bench/texts.txt "$SECS" "$THREADS" | sed 's/^{/{"phase":"offline",/' | tee -a "$out"
target/release/examples/embed_offline "$MODEL" bench/texts.txt "$SECS" | sed 's/^{/{"phase":"offline-repeat",/' | tee -a "$out"

# 2. HTTP.
wait_port() { for _ in $(seq 1 300); do curl -s "http://127.0.0.1:$1/$2" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
load() { # engine port
  for c in 1 4 16 64; do
    r=$(wrk -t1 -c"$c" -d"${SECS}s" --timeout 10s -s bench/embed.lua "http://127.0.0.1:$2" | grep '^{')
    note "{\"phase\":\"http\",\"engine\":\"$1\",\"clients\":$c,${r#\{}"
  done
}
cfg=$(mktemp); trap 'rm -f "$cfg"' EXIT
cat > "$cfg" <<YML
server:
  listen: 127.0.0.1:18400
models:
  - name: minilm
    path: $PWD/$MODEL
YML
target/release/infermon serve --config "$cfg" 2>/dev/null & pid=$!
wait_port 18400 health
load infermon 18400
curl -s http://127.0.0.1:18400/metrics | grep -E '^infermon_inference_batch_size_(sum|count)' | tr '\n' ' ' | sed 's/^/{"phase":"http-batches","metrics":"/; s/ $/"}\n/' | tee -a "$out"
kill "$pid"; wait "$pid" 2>/dev/null || true

"$PY" bench/http_st.py "$MODEL" 18401 "$THREADS" 2>/dev/null & pid=$!
for _ in $(seq 1 300); do curl -s -X POST -H 'content-type: application/json' -d '{"inputs":"x"}' http://127.0.0.1:18401/embed >/dev/null 2>&1 && break; sleep 0.2; done
load "python-http.server+sentence-transformers" 18401
kill "$pid"; wait "$pid" 2>/dev/null || true
note "{\"load_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
echo "results in $out"
