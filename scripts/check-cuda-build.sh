#!/usr/bin/env bash
# Checks that `cargo build --release --features cuda` compiles on a machine
# without a GPU: nvcc and the CUDA headers come from PyPI
# (nvidia-cuda-nvcc-cu12, nvidia-cuda-runtime-cu12, nvidia-cublas-cu12,
# nvidia-curand-cu12) in a private venv; only the build is checked, nothing
# runs on a GPU. Slow: candle's CUDA kernels take many minutes to compile.
# Usage: scripts/check-cuda-build.sh   (CARGO_TARGET_DIR defaults to target/cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CUDA_VENV:-target/cuda-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "nvidia-cuda-nvcc-cu12>=12.4,<13" "nvidia-cuda-runtime-cu12>=12.4,<13" \
  "nvidia-cublas-cu12>=12.4,<13" "nvidia-curand-cu12>=10,<11"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cuda="$PWD/target/cuda-root"
# One CUDA_ROOT laid out as the toolkit is (bin/, include/, lib64/), made of
# links into the wheels, because build scripts look for that layout.
rm -rf "$cuda"
mkdir -p "$cuda/bin" "$cuda/include" "$cuda/lib64"
for pkg in cuda_nvcc cuda_runtime cublas curand; do
  d="$site/nvidia/$pkg"
  [ -d "$d" ] || continue
  [ -d "$d/bin" ] && ln -sf "$d"/bin/* "$cuda/bin/"
  [ -d "$d/include" ] && ln -sf "$d"/include/* "$cuda/include/"
  [ -d "$d/lib" ] && ln -sf "$d"/lib/* "$cuda/lib64/"
  [ -d "$d/nvvm" ] && ln -sfn "$d/nvvm" "$cuda/nvvm"
done
# Unversioned names for the linker.
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
