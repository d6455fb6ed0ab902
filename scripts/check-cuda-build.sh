#!/usr/bin/env bash
# Checks that `cargo build --release --features cuda` compiles on a machine
# without a GPU: nvcc and the CUDA headers/libraries come from PyPI in a
# private venv; only the build is checked, nothing runs on a GPU. Slow:
# everything is rebuilt in release plus candle's CUDA kernels.
#
# Why CUDA 13 packages: nvidia-cuda-nvcc-cu12 (12.4 to 12.9) ships only
# `ptxas`, no `nvcc`; nvidia-cuda-nvcc (CUDA 13) ships the whole compiler
# under nvidia/cu13/. cudarc 0.19 (candle's CUDA layer) knows CUDA up to 13.4,
# and nvvm must not be newer than ptxas (PTX version), so every piece stays < 13.5.
# Usage: scripts/check-cuda-build.sh   (CARGO_TARGET_DIR defaults to target/cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CUDA_VENV:-target/cuda-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "nvidia-cuda-nvcc>=13.0,<13.5" "nvidia-cuda-runtime>=13.0,<13.5" "nvidia-cuda-crt>=13.0,<13.5" \
  "nvidia-cublas>=13.0,<13.5" "nvidia-curand>=10" "nvidia-cuda-nvrtc>=13.0,<13.5" \
  "nvidia-cuda-cccl>=13.0,<13.5" "nvidia-nvvm>=13.0,<13.5"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The CUDA 13 wheels share one toolkit-shaped tree, nvidia/cu13 (bin/, include/
# with cccl/, lib/, nvvm/); nvcc.profile finds everything relative to it.
cuda="$site/nvidia/cu13"
[ -x "$cuda/bin/nvcc" ] || { echo "no nvcc in $cuda" >&2; exit 1; }
# Build scripts look in lib64/; the linker wants unversioned names.
[ -e "$cuda/lib64" ] || ln -s lib "$cuda/lib64"
for lib in "$cuda"/lib/*.so.*; do
  base="${lib%%.so.*}.so"
  [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
done
# libcuda.so belongs to the driver, not to the toolkit wheels, and candle links
# cudarc with `dynamic-linking`. Link against a stub of the driver API, as the
# toolkit's own lib64/stubs/libcuda.so is meant for: one empty function per
# entry point cudarc declares. At run time the driver's libcuda.so.1 is used
# (so a `cuda` build needs the NVIDIA driver installed to start).
stubs="$PWD/target/cuda-stubs"
mkdir -p "$stubs"
cudarc=$(cargo metadata --format-version 1 --features cuda 2>/dev/null | "$venv/bin/python" -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "cudarc":
        print(os.path.dirname(p["manifest_path"]))
        break')
[ -n "$cudarc" ] || { echo "cudarc not found in cargo metadata" >&2; exit 1; }
grep -ho '^pub unsafe fn cu[A-Za-z0-9_]*' "$cudarc/src/driver/sys/mod.rs" | awk '{print "void " $4 "(void) {}"}' | sort -u > "$stubs/libcuda.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda.c"
export CUDA_ROOT="$cuda" CUDA_PATH="$cuda" CUDA_HOME="$cuda"
export PATH="$cuda/bin:$PATH"
export LIBRARY_PATH="$cuda/lib:$stubs:${LIBRARY_PATH:-}"
# No GPU to ask for its compute capability: build for Ampere+ (sm_80).
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
nvcc --version | tail -2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_CUDA:-$PWD/target/cuda}
cargo build --release --features cuda
# The binary must need only the driver's libcuda.so.1 from outside the toolkit.
readelf -d "$CARGO_TARGET_DIR/release/infermon" | grep NEEDED
echo "cuda build OK: $CARGO_TARGET_DIR/release/infermon"
