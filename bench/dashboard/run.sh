#!/usr/bin/env bash
# Overview page speed: fill a store with 24h of an inference box's metrics
# (bench/dashboard/series.rs: two models, four routes, latency histograms,
# GPU, process — ~130 series at 15s), start infermon on it with the
# self-scrape off, and time `GET /?range=24h` (the server renders every panel:
# ~30 PromQL range/instant queries and the SVG) N times; report the median,
# the spread and the response size. Both builds: the optimised one
# (profile bench-storage) and the dev one.
#
# Usage: bench/dashboard/run.sh   (env: N=21 HOURS=24 STEP=15 PROFILES="bench-storage dev")
# Output: JSON lines in bench/results/dashboard-<time>.jsonl, a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-21}
HOURS=${HOURS:-24}
STEP=${STEP:-15}
PROFILES=${PROFILES:-"bench-storage dev"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p bench/results
OUT=bench/results/dashboard-$(date -u +%Y%m%dT%H%M%SZ).jsonl
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

for profile in $PROFILES; do
  dir=$profile; [ "$profile" = dev ] && dir=debug
  cargo build -q --profile "$profile" --example dashboard_fill --bin infermon
  FILL=$CARGO_TARGET_DIR/$dir/examples/dashboard_fill
  INFERMON=$CARGO_TARGET_DIR/$dir/infermon
  data=$WORK/$profile
  fill=$("$FILL" "$data" "$HOURS" "$STEP")
  port=$(free_port)
  # A job named infermon without targets replaces the self-scrape: the
  # store holds only the generated data, the same for every run.
  cat >"$WORK/$profile.yml" <<YML
server:
  listen: 127.0.0.1:$port
storage:
  path: $data
models: []
scrape_configs:
  - job_name: infermon
snapshots:
  enabled: false
YML
  "$INFERMON" serve --config "$WORK/$profile.yml" 2>"$WORK/$profile.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.2; done
  url="http://127.0.0.1:$port/?range=24h"
  curl -fs -o /dev/null "$url"   # warm-up (first queries load chunks)
  times=()
  for _ in $(seq 1 "$N"); do
    times+=("$(curl -fs -o "$WORK/page.html" -w '%{time_total}' "$url")")
  done
  bytes=$(stat -c %s "$WORK/page.html")
  gz=$(gzip -c "$WORK/page.html" | wc -c)
  panels=$(grep -o '<article class="panel' "$WORK/page.html" | wc -l)
  paths=$(grep -o 'class="series"' "$WORK/page.html" | wc -l)
  python3 - "$profile" "$bytes" "$gz" "$panels" "$paths" "$fill" "${times[@]}" <<'PY' | tee -a "$OUT"
import json, statistics, sys
profile, size, gz, panels, paths, fill = sys.argv[1:7]
ms = sorted(float(t) * 1000 for t in sys.argv[7:])
print(json.dumps({"profile": profile, "n": len(ms), "median_ms": round(statistics.median(ms), 1),
                  "min_ms": round(ms[0], 1), "max_ms": round(ms[-1], 1), "bytes": int(size),
                  "gzip_bytes": int(gz), "panels": int(panels), "series_paths": int(paths),
                  "fill": json.loads(fill)}))
PY
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
done
echo
echo "| build | requests | median ms | min–max ms | bytes | gzip bytes | panels | series drawn |"
echo "|---|---|---|---|---|---|---|---|"
python3 - "$OUT" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"| {r['profile']} | {r['n']} | {r['median_ms']} | {r['min_ms']}–{r['max_ms']} | {r['bytes']} | {r['gzip_bytes']} | {r['panels']} | {r['series_paths']} |")
PY
echo "raw: $OUT"
