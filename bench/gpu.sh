#!/usr/bin/env bash
# The GPU benchmarks: each workload (mlp, cnn, lstm) at batch 128 and 1024 on Strata's CUDA backend and in
# PyTorch eager mode (bench/torch_gpu.py, needs python3 with torch), the best of RUNS runs each, with the
# ratio of training throughputs (aim: at least 1.2).
#   bench/gpu.sh [RUNS] [WORKLOAD...]      (default 3 runs; all three workloads)
# Data: /usr/share/datasets/fashion-mnist, or $STRATA_FASHION_MNIST. STRATA_BENCH names a bench_strata
# built elsewhere (scripts/gpu-check.sh), instead of building one here.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(mlp cnn lstm)

bench=${STRATA_BENCH:-}
if [ -z "$bench" ]; then
  cmake -S . -B build -DSTRATA_BUILD_BENCH=ON -DSTRATA_CUDA=ON >/dev/null
  cmake --build build --target bench_strata >/dev/null
  bench=./build/bench/bench_strata
fi
have_torch=0
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then have_torch=1; fi
[ $have_torch = 1 ] || echo "PyTorch with CUDA not found for python3: Strata's figures only" >&2

field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
best() { sort -g | tail -1; }
least() { sort -g | head -1; }

for workload in "${workloads[@]}"; do
  for batch in 128 1024; do
    s_lines=()
    t_lines=()
    for _ in $(seq "$runs"); do
      line=$("$bench" "$workload" 1 cuda "$batch")
      echo "$line"
      s_lines+=("$line")
      if [ $have_torch = 1 ]; then
        line=$(python3 bench/torch_gpu.py "$workload" 1 "$batch")
        echo "$line"
        t_lines+=("$line")
      fi
    done
    s_rate=$(printf '%s\n' "${s_lines[@]}" | field samples_per_second | best)
    s_lat=$(printf '%s\n' "${s_lines[@]}" | field predict_one_us | least)
    if [ $have_torch = 1 ]; then
      t_rate=$(printf '%s\n' "${t_lines[@]}" | field samples_per_second | best)
      t_lat=$(printf '%s\n' "${t_lines[@]}" | field predict_one_us | least)
      awk -v w="$workload" -v b="$batch" -v sr="$s_rate" -v tr="$t_rate" -v sl="$s_lat" -v tl="$t_lat" 'BEGIN {
        printf "%s, batch %d: strata %d samples/s, pytorch %d samples/s: ratio %.2f (aim >= 1.2); predict one: %.1f us vs %.1f us\n",
               w, b, sr, tr, sr / tr, sl, tl }'
    else
      echo "$workload, batch $batch: strata $s_rate samples/s; predict one: $s_lat us"
    fi
  done
done
