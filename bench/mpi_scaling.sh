#!/usr/bin/env bash
# Data-parallel scaling from 1 to 2 processes on one machine: `strata train` of the Fashion-MNIST MLP config
# (examples/configs/fashion_mlp.yaml, batch 128) in one process with every core, then under
# `mpirun -np 2` with the cores split between the processes, interleaved RUNS times. Prints each run's
# wall time (start-up and data loading included) and training samples per second.
#   bench/mpi_scaling.sh [EPOCHS (default 2)] [RUNS (default 3)]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-2}
runs=${2:-3}
bash scripts/setup.sh >/dev/null
cores=$(nproc)
per_process=$(( cores / 2 > 0 ? cores / 2 : 1 ))
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
samples=$(( 54000 * epochs ))  # 60000 rows less the 0.1 validation split
run() {  # run LABEL COMMAND...
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" > "$out/log" 2>&1
  end=$(date +%s.%N)
  python3 -c "import sys; t = $end - $start; print(f'{sys.argv[1]:<28} {t:7.2f} s {$samples / t:10.0f} samples/s  ' + sys.argv[2])" \
    "$label" "$(grep -o 'test_accuracy: [0-9.]*' "$out/log" || true)"
}
for r in $(seq "$runs"); do
  rm -rf "$out/one" "$out/two"
  run "1 process, $cores threads" env STRATA_NUM_THREADS="$cores" build/cli/strata train examples/configs/fashion_mlp.yaml \
    --epochs "$epochs" --output-dir "$out/one" --set training.verbose=0
  run "2 processes, $per_process thread(s) each" mpirun -np 2 --oversubscribe -x STRATA_NUM_THREADS="$per_process" \
    build/cli/strata train examples/configs/fashion_mlp.yaml --epochs "$epochs" --output-dir "$out/two" --set training.verbose=0
done
