#!/usr/bin/env bash
# Query latency: infermon's PromQL engine vs Prometheus vs VictoriaMetrics on the
# same generated 7-day data set (see benches/promql_vs_prometheus.rs), over HTTP.
# Needs the Debian packages prometheus (prometheus + promtool) and, optionally,
# victoria-metrics. Importing 7 days into Prometheus with promtool takes minutes
# (13 on a loaded 2-core machine). Prints a markdown table; copy it into bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
# PROFILE=bench-storage (release without LTO) builds much faster than the
# default bench profile (release, thin LTO) on a small machine.
# DECODED_CACHE=0 turns infermon's decoded-chunk cache off, so every query
# decodes its chunks, as the first query over a range does. The peers take
# turns, one request each, so a swing in the host's speed hits all alike.
cargo bench --profile "${PROFILE:-bench}" --bench promql_vs_prometheus 2>&1 | sed -n '/^| query/,$p'
