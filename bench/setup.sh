#!/usr/bin/env bash
# Creates bench/.venv with sentence-transformers on PyTorch (CPU use) from
# PyPI, the peer of bench/run.sh. The default torch wheel from PyPI carries
# CUDA libraries: about 6 GB on disk, a few minutes on a fast link.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import sentence_transformers' 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet --disable-pip-version-check "torch==2.15.0" "sentence-transformers==6.2.0"
fi
