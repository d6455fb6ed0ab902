#!/usr/bin/env bash
# Checks that `cargo build --release --features cuda` compiles on a machine
# without a GPU: nvcc and the CUDA headers/libraries come from PyPI in a
# private venv; only the build is checked, nothing runs on a GPU. Slow:
# everything is rebuilt in release plus candle's CUDA kernels.
#
# Why CUDA 13 packages: nvidia-cuda-nvcc-cu12 (12.4 to 12.9) ships only
# `ptxas`, no `nvcc`; nvidia-cuda-nvcc (CUDA 13) ships the whole compiler
# under nvidia/cu13/. cudarc 0.19 (candle's CUDA layer) knows CUDA up to 13.4.
# Usage: scripts/check-cuda-build.sh   (CARGO_TARGET_DIR defaults to target/cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CUDA_VENV:-target/cuda-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "nvidia-cuda-nvcc>=13.0,<13.5" "nvidia-cuda-runtime>=13.0,<13.5" "nvidia-cuda-crt>=13.0,<13.5" \
  "nvidia-cublas>=13.0,<13.5" "nvidia-curand>=10" "nvidia-cuda-nvrtc>=13.0,<13.5"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cuda="$PWD/target/cuda-root"
# One CUDA_ROOT laid out as the toolkit is (bin/, include/, lib64/), made of
# links into the wheels, because build scripts look for that layout.
rm -rf "$cuda"
mkdir -p "$cuda/bin" "$cuda/include" "$cuda/lib64"
for d in "$site"/nvidia/cu13 "$site"/nvidia/cuda_nvcc "$site"/nvidia/cuda_runtime "$site"/nvidia/cublas "$site"/nvidia/curand; do
  [ -d "$d" ] || continue
  [ -d "$d/bin" ] && ln -sf "$d"/bin/* "$cuda/bin/"
  [ -d "$d/include" ] && ln -sf "$d"/include/* "$cuda/include/"
  [ -d "$d/lib" ] && ln -sf "$d"/lib/* "$cuda/lib64/"
  [ -d "$d/lib64" ] && ln -sf "$d"/lib64/* "$cuda/lib64/"
  [ -d "$d/nvvm" ] && ln -sfn "$d/nvvm" "$cuda/nvvm"
done
# Unversioned names for the linker.
# The driver library is not in any wheel: link against the toolkit's stub
# when one is there (the real one comes with the NVIDIA driver at run time).
[ -d "$cuda/lib64/stubs" ] && export LIBRARY_PATH="$cuda/lib64/stubs:${LIBRARY_PATH:-}"
for lib in "$cuda"/lib64/*.so.*; do
  base="${lib%%.so.*}.so"
  [ -e "$base" ] || ln -s "$(readlink -f "$lib")" "$base"
done
export CUDA_ROOT="$cuda" CUDA_PATH="$cuda" CUDA_HOME="$cuda"
export PATH="$cuda/bin:$PATH"
export LIBRARY_PATH="$cuda/lib64:${LIBRARY_PATH:-}"
# No GPU to ask for its compute capability: build for Ampere+ (sm_80).
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
nvcc --version | tail -2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_CUDA:-$PWD/target/cuda}
cargo build --release --features cuda
echo "cuda build OK"
