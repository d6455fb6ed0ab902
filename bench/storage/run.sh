#!/usr/bin/env bash
# Storage side by side: the same generated data (SERIES series × HOURS hours at
# 15s — counters, gauges, histogram buckets — ending now) into infermon,
# Prometheus (Debian `prometheus`, --web.enable-remote-write-receiver) and
# VictoriaMetrics (Debian `victoria-metrics`), in one run on one machine.
# Then scrape cost: infermon and Prometheus each scrape one node exporter at 1s.
#
# All three receive the data over Prometheus remote_write 1.0 (one request per
# 15s step, in time order) and are measured the same way: CPU seconds of the
# server process during ingest, its peak RSS, and bytes on disk once settled.
# infermon settles by stopping (SIGTERM) and running one maintenance pass at
# the real now (loadgen `maintain`: what the server does every minute —
# blocks that ended 15 min ago compacted, days merged 2 h after they end);
# `bytes` is the store then, `old_bytes_per_sample` the chunk bytes of data
# older than 3 h (and `old_file_bytes_per_sample_est` with the file's page
# and row overhead), `forced_bytes` the store with every day compacted
# (loadgen `compact`).
#
# Usage: bench/storage/run.sh   (env: SERIES=2000 HOURS=24 SCRAPE_SECS=60;
#        SHAPE=int (integer values at exact 15 s steps) or SHAPE=float
#        (jittered timestamps, float gauges and _sum counters, like a Python
#        model service); ONLY_SCRAPE=1 skips the ingest comparison)
# Output: JSON lines in bench/results/storage-<shape>-<time>.jsonl, a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
SERIES=${SERIES:-2000}
HOURS=${HOURS:-24}
SCRAPE_SECS=${SCRAPE_SECS:-60}
export LOADGEN_SHAPE=${SHAPE:-int}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for bin in prometheus victoria-metrics prometheus-node-exporter curl; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install prometheus victoria-metrics prometheus-node-exporter curl)" >&2; exit 1; }
done
cargo build -q --profile bench-storage --example storage_loadgen --bin infermon
LOADGEN=$CARGO_TARGET_DIR/bench-storage/examples/storage_loadgen
INFERMON=$CARGO_TARGET_DIR/bench-storage/infermon
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p bench/results
OUT=bench/results/storage-$LOADGEN_SHAPE-$(date -u +%Y%m%dT%H%M%SZ).jsonl
TICK=$(getconf CLK_TCK)
SAMPLES=$((SERIES * HOURS * 240))

calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_s() { awk -v t="$TICK" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
hwm_bytes() { awk '/VmHWM/ {print $2 * 1024}' "/proc/$1/status"; }
du_bytes() { du -sb "$1" | cut -f1; }
wait_http() { for _ in $(seq 1 300); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

# query_ms BASE_URL QUERY: median wall ms of 5 query_range calls over the last
# HOURS at step 345 s (0 when the system answers with an error).
query_ms() {
  local end start
  end=$(date +%s); start=$((end - HOURS * 3600))
  for _ in 1 2 3 4 5; do
    curl -fs -o /dev/null -w '%{time_total}\n' --get --data-urlencode "query=$2" \
      --data-urlencode "start=$start" --data-urlencode "end=$end" --data-urlencode "step=345" \
      "$1/api/v1/query_range" || echo 0
  done | sort -n | sed -n 3p | awk '{ printf "%.1f", $1 * 1000 }'
}

if [ -z "${ONLY_SCRAPE:-}" ]; then
# ingest_peer NAME PID WRITE_URL SETTLE_FN DATA_DIR [BYTES_FN]
ingest_peer() {
  local name=$1 pid=$2 url=$3 settle=$4 dir=$5 bytes_fn=${6:-}
  local c0 start wall cpu hwm bytes
  c0=$(cpu_s "$pid"); start=$(date +%s.%N)
  $LOADGEN remote-write "$url" "$SERIES" "$HOURS" >/dev/null
  wall=$(calc "$(date +%s.%N) - $start"); cpu=$(calc "$(cpu_s "$pid") - $c0")
  $settle
  hwm=$(hwm_bytes "$pid")
  # Query latency once settled (after the RSS reading): medians of 5 runs of
  # two range queries over the whole ingested span, step 345 s.
  local base=${url%/api/v1/write} q1 q2
  q1=$(query_ms "$base" 'sum(rate(bench_requests_0_total[5m]))')
  q2=$(query_ms "$base" 'sum by (instance) ({__name__=~"bench_requests_.*_total"})')
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local extra=""
  if [ -n "$bytes_fn" ]; then
    $bytes_fn > "$WORK/bytes-$name.json"
    bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$WORK/bytes-$name.json")
    extra=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("bytes"); print("," + json.dumps(d)[1:-1])' "$WORK/bytes-$name.json")
  else
    bytes=$(du_bytes "$dir")
  fi
  echo "{\"system\":\"$name\",\"shape\":\"$LOADGEN_SHAPE\",\"samples\":$SAMPLES,\"wall_s\":$wall,\"cpu_s\":$cpu,\"peak_rss_bytes\":$hwm,\"bytes\":$bytes,\"query_one_family_ms\":$q1,\"query_all_counters_ms\":$q2$extra}" | tee -a "$OUT" >&2
}

echo "== infermon: $SERIES series × ${HOURS}h = $SAMPLES samples" >&2
I0=$(free_port)
cat > "$WORK/infermon-ingest.yml" <<YML
server: {listen: "127.0.0.1:$I0"}
storage: {path: "$WORK/infermon", retention: 30d}
models: []
scrape_configs:
  - job_name: infermon
    static_configs: []
YML
$INFERMON serve --config "$WORK/infermon-ingest.yml" >"$WORK/infermon-ingest.log" 2>&1 &
INF0=$!; PIDS+=("$INF0")
wait_http "http://127.0.0.1:$I0/ready"
no_settle() { :; }
# Bytes as the server holds them (one maintenance pass at the real now on the
# stopped store), then with every day compacted offline (forced_bytes).
infermon_bytes() {
  $LOADGEN maintain "$WORK/infermon" - - > "$WORK/maintain.json"
  $LOADGEN compact "$WORK/infermon" - - | python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); m["forced_bytes"]=json.load(sys.stdin)["bytes"]; print(json.dumps(m))' "$WORK/maintain.json"
}
ingest_peer infermon "$INF0" "http://127.0.0.1:$I0/api/v1/write" no_settle "$WORK/infermon" infermon_bytes

echo "== Prometheus" >&2
P=$(free_port)
echo 'global: {}' > "$WORK/prom.yml"
prometheus --config.file="$WORK/prom.yml" --storage.tsdb.path="$WORK/prom" --web.listen-address="127.0.0.1:$P" \
  --web.enable-remote-write-receiver --storage.tsdb.retention.time=30d >"$WORK/prom.log" 2>&1 &
PROM=$!; PIDS+=("$PROM")
wait_http "http://127.0.0.1:$P/-/ready"
# Prometheus compacts its head into blocks once a minute; give it two rounds.
prom_settle() { sleep "${PROM_SETTLE:-130}"; }
ingest_peer prometheus "$PROM" "http://127.0.0.1:$P/api/v1/write" prom_settle "$WORK/prom"

echo "== VictoriaMetrics" >&2
V=$(free_port)
victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr="127.0.0.1:$V" -retentionPeriod=1y -search.disableCache >"$WORK/vm.log" 2>&1 &
VM=$!; PIDS+=("$VM")
wait_http "http://127.0.0.1:$V/health"
vm_settle() {
  curl -fs "http://127.0.0.1:$V/internal/force_flush" >/dev/null
  for part in $(date -u +%Y_%m) $(date -u -d "-${HOURS} hours" +%Y_%m); do
    curl -fs "http://127.0.0.1:$V/internal/force_merge?partition_prefix=$part" >/dev/null || true
  done
  sleep 20
}
ingest_peer victoria-metrics "$VM" "http://127.0.0.1:$V/api/v1/write" vm_settle "$WORK/vm"
fi

echo "== scrape cost: one node exporter at 1s for ${SCRAPE_SECS}s" >&2
N=$(free_port)
prometheus-node-exporter --web.listen-address="127.0.0.1:$N" >/dev/null 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$N/metrics"
PER_SCRAPE=$(curl -fs "http://127.0.0.1:$N/metrics" | grep -vc '^#')
I=$(free_port)
cat > "$WORK/infermon.yml" <<YML
server: {listen: "127.0.0.1:$I"}
storage: {path: "$WORK/scrape-infermon"}
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["127.0.0.1:$N"]}]
  - job_name: infermon
    static_configs: []
YML
$INFERMON serve --config "$WORK/infermon.yml" >"$WORK/infermon.log" 2>&1 &
INF=$!; PIDS+=("$INF")
P2=$(free_port)
cat > "$WORK/prom-scrape.yml" <<YML
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["127.0.0.1:$N"]}]
YML
prometheus --config.file="$WORK/prom-scrape.yml" --storage.tsdb.path="$WORK/prom-scrape" \
  --web.listen-address="127.0.0.1:$P2" >"$WORK/prom-scrape.log" 2>&1 &
PS=$!; PIDS+=("$PS")
wait_http "http://127.0.0.1:$I/ready"; wait_http "http://127.0.0.1:$P2/-/ready"
sleep 5
a0=$(cpu_s "$INF"); b0=$(cpu_s "$PS")
sleep "$SCRAPE_SECS"
a1=$(cpu_s "$INF"); b1=$(cpu_s "$PS")
for sys in infermon:$a0:$a1:$INF prometheus:$b0:$b1:$PS; do
  IFS=: read -r name x0 x1 pid <<<"$sys"
  echo "{\"system\":\"$name\",\"scrape\":true,\"samples_per_scrape\":$PER_SCRAPE,\"secs\":$SCRAPE_SECS,\"cpu_s\":$(calc "$x1 - $x0"),\"rss_bytes\":$(awk '/VmRSS/ {print $2 * 1024}' /proc/$pid/status)}" | tee -a "$OUT" >&2
done

python3 bench/storage/table.py "$OUT"
