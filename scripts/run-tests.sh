#!/usr/bin/env bash
# Runs every test: unit, integration (real binary, real HTTP, real peers).
# Benchmarks (benches/, bench/) are run by hand, never here.
set -euo pipefail
cd "$(dirname "$0")/.."
export INFERMON_TEST_PYTHON="$PWD/.venv/bin/python"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
