#!/usr/bin/env bash
# Inference first: /embed throughput and p99 with 16 wrk clients, alone and
# while two clients loop heavy 6-hour dashboard queries, in one run.
#
# Store: bench/dashboard's 6 hours of an inference box's self-scrape (~130
# series at 15s), exported and imported 16 times under instance="host-N":
# ~2,100 series x 6 h, as in the measurement that motivated the query pool.
# Dashboard clients (one each, looping back to back, curl):
#   histogram_quantile(0.99, sum by (le) (rate(<latency histogram>_bucket[5m])))
#   sum by (instance) (rate({__name__=~"infermon_.+_total"}[5m]))
# both as 6-hour range queries at a 15s step (1,441 steps).
# remote_write client (INGEST=1, the default): bench/storage's loadgen pushes
# INGEST_SERIES fresh series x 1 hour at 15s (an agent catching up, one
# snappy request per step) to /api/v1/write, round after round under a new
# job label, back to back while the dashboard clients run.
#
# Each configuration starts its own server and measures: alone, under the
# dashboard load, alone again (the shared box drifts; "alone" is the mean of
# both). Configurations (env CONFIGS, names below):
#   default   the shipped query settings (2 query threads at nice 19, SCHED_BATCH)
#   nice10    the same at nice 10
#   nice0     query threads at normal priority, 20 at once (Prometheus' default
#             concurrency; close to the old spawn_blocking behaviour)
#
# Usage: bench/isolation/run.sh   (env: SECS=20 THREADS=2 CONFIGS="default nice10 nice0"
#        INGEST=1 INGEST_SERIES=2000 INGEST_CLIENT_NICE=19)
# Needs: wrk, curl, python3, models/all-MiniLM-L6-v2 (scripts/fetch-model.sh).
# Output: JSON lines in bench/results/isolation-<time>.jsonl and a markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECS:-20}
THREADS=${THREADS:-2}
CONFIGS=${CONFIGS:-"default nice10 nice0"}
INGEST=${INGEST:-1}
INGEST_SERIES=${INGEST_SERIES:-2000}
# The sender is another machine in real life; here it shares the 2 cores, so
# its own CPU (protobuf + snappy) runs at nice 19 unless told otherwise.
INGEST_CLIENT_NICE=${INGEST_CLIENT_NICE:-19}
PROFILE=${PROFILE:-bench-storage}
MODEL=${MODEL:-$PWD/models/all-MiniLM-L6-v2}
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
[ -d "$MODEL" ] || { echo "no model at $MODEL (scripts/fetch-model.sh)" >&2; exit 1; }
cargo build -q --profile "$PROFILE" --example dashboard_fill --example storage_loadgen --bin infermon
BIN=$CARGO_TARGET_DIR/$PROFILE
[ "$PROFILE" = dev ] && BIN=$CARGO_TARGET_DIR/debug
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p bench/results
OUT=bench/results/isolation-$(date -u +%Y%m%dT%H%M%SZ).jsonl
note() { echo "$1" | tee -a "$OUT"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
note "{\"machine\":\"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\",\"threads\":$THREADS,\"secs\":$SECS,\"load_before\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"

# 1. The store: 6 h of one box, then 16 boxes' worth under other instance names.
"$BIN/examples/dashboard_fill" "$WORK/seed" 6 15 >"$WORK/fill.json"
now=$(date -u +%s)
"$BIN/infermon" export --from $((now - 8 * 3600)) --to $((now + 3600)) --data-dir "$WORK/seed" -o "$WORK/seed.om"
mkdir -p "$WORK/data"
for i in $(seq 0 15); do
  sed "s/instance=\"127.0.0.1:8080\"/instance=\"host-$i\"/" "$WORK/seed.om" >"$WORK/host.om"
  "$BIN/infermon" import "$WORK/host.om" --data-dir "$WORK/data" >/dev/null
done
rm -f "$WORK/seed.om" "$WORK/host.om"
note "{\"store\":$(cat "$WORK/fill.json"),\"instances\":16}"

H='histogram_quantile(0.99, sum by (le) (rate(infermon_inference_total_duration_seconds_bucket[5m])))'
S='sum by (instance) (rate({__name__=~"infermon_.+_total"}[5m]))'

# Loops one range query until $WORK/stop exists; one line per answer: status seconds.
dash() { # port query file
  local end start
  while [ ! -e "$WORK/stop" ]; do
    end=$(date -u +%s); start=$((end - 6 * 3600))
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 300 \
      --data-urlencode "query=$2" --data-urlencode "start=$start" --data-urlencode "end=$end" \
      --data-urlencode "step=15" "http://127.0.0.1:$1/api/v1/query_range" >>"$3" || echo "000 0" >>"$3"
  done
}
# Pushes rounds of remote_write until $WORK/stop exists; one JSON line per round.
ingest() { # port file
  local k=0
  while [ ! -e "$WORK/stop" ]; do
    LOADGEN_JOB="ingest-$k" nice -n "$INGEST_CLIENT_NICE" "$BIN/examples/storage_loadgen" remote-write \
      "http://127.0.0.1:$1/api/v1/write" "$INGEST_SERIES" 1 >>"$2" 2>>"$WORK/ingest.err" \
      || echo '{"failed":true}' >>"$2"
    k=$((k + 1))
  done
}
embed() { # label port
  local r
  r=$(wrk -t1 -c16 -d"${SECS}s" --timeout 10s -s bench/embed.lua "http://127.0.0.1:$2" | grep '^{')
  echo "{\"phase\":\"$1\",${r#\{}"
}

for cfg in $CONFIGS; do
  case $cfg in
    default) query="{}" ;;
    nice10) query="{nice: 10}" ;;
    nice0) query="{nice: 0, max_concurrency: 20}" ;;
    *) echo "unknown config $cfg" >&2; exit 2 ;;
  esac
  port=$(free_port)
  cat >"$WORK/$cfg.yml" <<YML
server:
  listen: 127.0.0.1:$port
storage:
  path: $WORK/data
models:
  - name: minilm
    path: $MODEL
scrape_configs:
  - job_name: infermon
snapshots:
  enabled: false
query: $query
YML
  "$BIN/infermon" serve --config "$WORK/$cfg.yml" 2>"$WORK/$cfg.log" &
  PIDS+=($!)
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done
  wrk -t1 -c16 -d3s -s bench/embed.lua "http://127.0.0.1:$port" >/dev/null   # warm-up
  a1=$(embed alone "$port")
  rm -f "$WORK/stop" "$WORK/h.txt" "$WORK/s.txt" "$WORK/i.txt"
  touch "$WORK/i.txt"
  dash "$port" "$H" "$WORK/h.txt" & d1=$!
  dash "$port" "$S" "$WORK/s.txt" & d2=$!
  d3=
  [ "$INGEST" = 1 ] && { ingest "$port" "$WORK/i.txt" & d3=$!; }
  loaded=$(embed loaded "$port")
  touch "$WORK/stop"; wait "$d1" "$d2" $d3
  a2=$(embed alone-again "$port")
  python3 - "$cfg" "$a1" "$loaded" "$a2" "$WORK/h.txt" "$WORK/s.txt" "$WORK/i.txt" "$SECS" <<'PY' | tee -a "$OUT"
import json, statistics, sys
cfg, a1, loaded, a2 = sys.argv[1], *map(json.loads, sys.argv[2:5])
def dash(path):
    rows = [l.split() for l in open(path) if l.strip()]
    ok = [float(t) for c, t in rows if c == "200"]
    return {"answers": len(ok), "errors": len(rows) - len(ok),
            "median_s": round(statistics.median(ok), 2) if ok else None}
def ingest(path, secs):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    done = [r for r in rows if not r.get("failed")]
    # Rounds overlap the measured window; samples/s is over whole rounds.
    wall = sum(r.get("wall_s", 0) for r in done)
    sent = sum(r.get("samples", 0) for r in done)
    return {"rounds": len(done), "failed_rounds": len(rows) - len(done),
            "samples_per_s": round(sent / wall) if wall else 0}
alone_tps = (a1["texts_per_s"] + a2["texts_per_s"]) / 2
alone_p99 = (a1["p99_ms"] + a2["p99_ms"]) / 2
print(json.dumps({"config": cfg, "alone": a1, "loaded": loaded, "alone_again": a2,
                  "histogram_query": dash(sys.argv[5]), "regex_query": dash(sys.argv[6]),
                  "ingest": ingest(sys.argv[7], float(sys.argv[8])),
                  "throughput_ratio": round(loaded["texts_per_s"] / alone_tps, 3),
                  "p99_ratio": round(loaded["p99_ms"] / alone_p99, 3)}))
PY
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
done
note "{\"load_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"

echo
echo "| query settings | /embed alone req/s (p99 ms) | with dashboard + ingest req/s (p99 ms) | throughput ratio | p99 ratio | dashboard answers in ${SECS}s (median s): histogram / regex | remote_write samples/s (rounds, failed) |"
echo "|---|---|---|---|---|---|---|"
python3 - "$OUT" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "config" not in r:
        continue
    a = [r["alone"], r["alone_again"]]
    tps = sum(x["texts_per_s"] for x in a) / 2
    p99 = sum(x["p99_ms"] for x in a) / 2
    l, h, s = r["loaded"], r["histogram_query"], r["regex_query"]
    i = r.get("ingest", {"samples_per_s": 0, "rounds": 0, "failed_rounds": 0})
    print(f"| {r['config']} | {tps:.0f} ({p99:.0f}) | {l['texts_per_s']:.0f} ({l['p99_ms']:.0f}) "
          f"| {r['throughput_ratio']:.2f} | {r['p99_ratio']:.2f} "
          f"| {h['answers']} ({h['median_s']}) / {s['answers']} ({s['median_s']}) "
          f"| {i['samples_per_s']} ({i['rounds']}, {i['failed_rounds']}) |")
PY
echo "results in $OUT"
