#!/usr/bin/env bash
# On a GPU machine, with .gpu/ from scripts/gpu-bundle.sh beside the checkout: the CUDA backend's tests
# (every primitive and whole trainings against the CPU backend, the backend op suite), then the GPU
# benchmarks against PyTorch (bench/gpu.sh with the bundled bench_strata). Logs go to $OUT (or .gpu/out).
#   bash scripts/gpu-check.sh [RUNS]       (RUNS per benchmark, default 3; 0 skips the benchmarks)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.gpu/out}
mkdir -p "$out"
programs=/tmp/strata-gpu
rm -rf "$programs" && mkdir -p "$programs" && tar -C "$programs" -xJf .gpu/programs.tar.xz || exit 1
export LD_LIBRARY_PATH="$programs/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
export STRATA_FASHION_MNIST="$PWD/.gpu/data"
status=0
nvidia-smi >"$out/nvidia-smi.txt" 2>&1
for t in test_cuda test_backend_ops; do
  "$programs/bin/$t" --gtest_color=no >"$out/$t.txt" 2>&1 || status=1
  grep -E '^\[  (PASSED|FAILED) |CUDA device|test accuracy after' "$out/$t.txt"
done
runs=${1:-3}
if [ "$runs" -gt 0 ]; then
  STRATA_BENCH="$programs/bin/bench_strata" bash bench/gpu.sh "$runs" 2>&1 | tee "$out/bench_gpu.txt"
fi
exit $status
