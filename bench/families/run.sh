#!/usr/bin/env bash
# infermon vs sentence-transformers (PyTorch CPU) per architecture family:
# all-MiniLM-L6-v2 (the "no regression" row) and one small random model per
# family from bench/families/make_models.py, on the same texts
# (bench/texts.txt, 29 tokens each with every model: they share MiniLM's
# tokenizer), the same thread count and the batch sizes of bench/run.sh
# (1, 8, 32), one run. Before a model is timed, infermon's vector for the
# first text is checked against sentence-transformers' (bench/families/check.py);
# a model that fails gets no speed numbers and the script exits 1 at the end.
#
# Usage: make model; bench/setup.sh (or PY=python with torch and
# sentence-transformers); bench/families/run.sh [seconds per measurement]
# Env: THREADS (2), PY (bench/.venv/bin/python), PROFILE (bench-storage),
#      FAMILIES (all: minilm bert xlm-roberta distilbert mpnet modernbert gemma3 qwen2 mistral).
# Results: bench/results/families-<time>.jsonl; prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-${SECS:-10}}
THREADS=${THREADS:-2}
PROFILE=${PROFILE:-bench-storage}
PY=${PY:-bench/.venv/bin/python}
FAMILIES=${FAMILIES:-minilm bert xlm-roberta distilbert mpnet modernbert gemma3 qwen2 mistral}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
MINILM=models/all-MiniLM-L6-v2
MODELS=bench/.families
TEXTS=bench/texts.txt
[ -x "$PY" ] || { echo "no Python at $PY: run bench/setup.sh or set PY" >&2; exit 1; }
[ -f "$MINILM/model.safetensors" ] || { echo "$MINILM is missing: run make model" >&2; exit 1; }

# The random models are written once (seeded: the same files every time).
missing=()
for f in $FAMILIES; do
  [ "$f" = minilm ] || [ -f "$MODELS/$f/modules.json" ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
  "$PY" bench/families/make_models.py --minilm "$MINILM" --out "$MODELS" "${missing[@]}"
fi

cargo build --profile "$PROFILE" --quiet --example embed_offline
BIN=target/$PROFILE/examples/embed_offline
mkdir -p bench/results
out=bench/results/families-$(date -u +%Y%m%d-%H%M%S).jsonl
note() { echo "$1" | tee -a "$out"; }
note "{\"machine\":\"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\",\"threads\":$THREADS,\"profile\":\"$PROFILE\",\"secs\":$SECS,\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"

vec=$(mktemp); trap 'rm -f "$vec" "$vec.err"' EXIT
failed=0
for f in $FAMILIES; do
  dir=$MODELS/$f
  [ "$f" = minilm ] && dir=$MINILM
  tag="{\"family\":\"$f\","
  # Check first: infermon's vector for the first text (no timing), then
  # sentence-transformers' on the same folder.
  if ! VECTOR_OUT=$vec BATCH_SIZES= "$BIN" "$dir" "$TEXTS" 0 >/dev/null; then
    note "${tag}\"phase\":\"check\",\"ok\":false,\"error\":\"infermon could not load or run $dir\"}"
    failed=1
    continue
  fi
  if ! check=$("$PY" bench/families/check.py "$dir" "$TEXTS" "$vec" "$THREADS" 2>"$vec.err"); then
    [ -n "$check" ] || { tail -5 "$vec.err" >&2; check='{"phase":"check","ok":false,"error":"check.py failed"}'; }
    note "${tag}${check#\{}"
    failed=1
    continue
  fi
  note "${tag}${check#\{}"
  "$BIN" "$dir" "$TEXTS" "$SECS" | grep '"engine"' | sed "s/^{/${tag}\"phase\":\"offline\",/" | tee -a "$out"
  "$PY" bench/st_offline.py "$dir" "$TEXTS" "$SECS" "$THREADS" 2>/dev/null | sed "s/^{/${tag}\"phase\":\"offline\",/" | tee -a "$out"
done
note "{\"load_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
echo
"$PY" bench/families/table.py "$out"
echo
echo "results in $out"
exit $failed
