#!/usr/bin/env bash
# Cost of infermon's built-in collectors on /metrics: median scrape time and
# CPU per scrape, with the host collector on and off (same binary, same box).
# Usage: bench/collectors/run.sh [N]   (INFERMON_BIN=path to pick a binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-200}
BIN=${INFERMON_BIN:-target/release/infermon}
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set INFERMON_BIN)"; exit 1; }
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
hz=$(getconf CLK_TCK)
measure() {
  local name=$1 host=$2 port=$3
  cat > "$tmp/$name.yml" <<YML
server: {listen: "127.0.0.1:$port"}
storage: {path: "$tmp/$name-data"}
models: []
snapshots: {enabled: false}
collectors: {host: {enabled: $host}}
YML
  "$BIN" serve --config "$tmp/$name.yml" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
  curl -s "127.0.0.1:$port/metrics" >/dev/null
  local before; before=$(awk '{print $14+$15}' /proc/$pid/stat)
  for _ in $(seq "$N"); do curl -s -o /dev/null -w '%{time_total}\n' "127.0.0.1:$port/metrics"; done > "$tmp/$name.times"
  local after; after=$(awk '{print $14+$15}' /proc/$pid/stat)
  local series; series=$(curl -s "127.0.0.1:$port/metrics" | grep -vc '^#')
  kill $pid; wait $pid 2>/dev/null || true
  local median; median=$(sort -n "$tmp/$name.times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]*1000}')
  # CPU of the whole process over N scrapes (includes the self-scrape running meanwhile).
  local cpu; cpu=$(echo "($after - $before) * 1000 / $hz / $N" | bc -l)
  printf "| %s | %s | %.2f | %.2f |\n" "$name" "$series" "$median" "$cpu"
}
echo "| collectors | series on /metrics | median scrape ms | CPU ms per scrape |"
echo "|---|---|---|---|"
measure host-on true 19611
measure host-off false 19612
