#!/usr/bin/env bash
# Runs a workload (bench/workloads.cpp: mlp, cnn or lstm) in Strata and in libtorch (each thread setting) in one
# go and prints the ratios. libtorch is Debian's libtorch-dev; it uses whichever BLAS the libblas.so.3
# alternative names, so OpenBLAS is installed too (with the reference BLAS libtorch is about 20x slower).
#   bench/run.sh [WORKLOAD] [RUNS]      (default mlp; the best of RUNS interleaved runs of each, default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:-mlp}
runs=${2:-5}

if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in libtorch-dev libopenblas0-pthread; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
bash scripts/setup.sh >/dev/null
cmake -S . -B build -DSTRATA_BUILD_BENCH=ON >/dev/null
cmake --build build --target bench_strata >/dev/null
have_torch=0
if cmake --build build --target bench_torch >/dev/null 2>&1; then have_torch=1; fi

field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
best_of() {  # best_of FIELD min|max LINES...
  local name=$1 mode=$2; shift 2
  printf '%s\n' "$@" | field "$name" | sort -g | { if [ "$mode" = min ]; then head -1; else tail -1; fi; }
}

# Interleaved, so that both see the same machine conditions (shared machines drift).
strata_lines=()
torch_lines=()
for _ in $(seq "$runs"); do
  line=$(./build/bench/bench_strata "$workload")
  echo "$line"
  strata_lines+=("$line")
  [ $have_torch = 1 ] || continue
  for blas in 1 2; do
    for threads in 1 2; do
      line=$(OPENBLAS_NUM_THREADS=$blas TORCH_THREADS=$threads ./build/bench/bench_torch "$workload")
      echo "OPENBLAS_NUM_THREADS=$blas $line"
      torch_lines+=("$line")
    done
  done
done
if [ $have_torch = 0 ]; then
  echo "libtorch not found (apt-get install libtorch-dev): no ratios" >&2
  exit 0
fi
s_rate=$(best_of samples_per_second max "${strata_lines[@]}")
t_rate=$(best_of samples_per_second max "${torch_lines[@]}")
s_lat=$(best_of predict_one_us min "${strata_lines[@]}")
t_lat=$(best_of predict_one_us min "${torch_lines[@]}")
s_rss=$(best_of peak_rss_mb min "${strata_lines[@]}")
t_rss=$(best_of peak_rss_mb min "${torch_lines[@]}")
awk -v w="$workload" -v sr="$s_rate" -v tr="$t_rate" -v sl="$s_lat" -v tl="$t_lat" -v sm="$s_rss" -v tm="$t_rss" 'BEGIN {
  printf "%s workload\n", w
  printf "throughput: strata %d samples/s, libtorch best %d samples/s: ratio %.2f (goal >= 1, aim 1.25)\n", sr, tr, sr / tr
  printf "predict one sample: strata %.1f us, libtorch best %.1f us: ratio %.2f (goal <= 0.5)\n", sl, tl, sl / tl
  printf "peak RSS: strata %.1f MB, libtorch %.1f MB: ratio %.2f (goal <= 0.4)\n", sm, tm, sm / tm
}'
