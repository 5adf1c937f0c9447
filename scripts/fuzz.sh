#!/usr/bin/env bash
# Fuzzes every reader of outside data with libFuzzer (clang, ASan + UBSan), each target for a bounded
# time, starting from the committed seed corpus (tests/fuzz/corpus/<target>) plus what earlier runs found
# (build-fuzz/corpus/<target>). Prints executions, corpus growth and findings per target; exits 1 when
# anything was found. A finding is a file in build-fuzz/findings/<target>/: once fixed, copy it to
# tests/fuzz/regressions/<target>/ so that the test suite replays it from then on.
#   scripts/fuzz.sh [SECONDS-PER-TARGET (default 60)] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
all=(fuzz_yaml_config fuzz_hdf5_model fuzz_keras_archive fuzz_model_json fuzz_npy fuzz_idx fuzz_csv)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

bash scripts/setup.sh --no-build clang libclang-rt-14-dev libomp-dev
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --parallel "$(nproc)"

status=0
printf '%-20s %12s %8s %8s %9s\n' target executions exec/s corpus findings
for t in "${targets[@]}"; do
  work="build-fuzz/corpus/$t" findings="build-fuzz/findings/$t"
  mkdir -p "$work" "$findings"
  log="build-fuzz/$t.log"
  # -fork=1 with -ignore_*: a finding is saved and fuzzing goes on in a fresh process, so one run
  # reports them all. -rss_limit_mb: a reader must refuse what would not fit rather than allocate it (the
  # targets set STRATA_MEMORY_LIMIT_MB=1024, so Strata's own budget check fires first). ASan options: an
  # allocation over 2 GiB fails, reported as a finding when Strata's code asks for it with new, and
  # returned as NULL to libhdf5's malloc, which handles that as in a release build. STRATA_HDF5_PROBE=0:
  # libhdf5 runs in the fuzzed process itself (a fork per input would run a few inputs a second), so its
  # crashes and hangs are findings too; the regression replays check that the probe contains them.
  set +e
  STRATA_HDF5_PROBE="${STRATA_HDF5_PROBE:-0}" LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp:${LSAN_OPTIONS:-}" \
  ASAN_OPTIONS="max_allocation_size_mb=2048:allocator_may_return_null=1:${ASAN_OPTIONS:-}" \
    "build-fuzz/tests/fuzz/$t" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$seconds" \
    -timeout=5 -rss_limit_mb=2560 -artifact_prefix="$findings/" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
  set -e
  # The fork-mode status lines: "#RUNS: cov: ... exec/s RATE oom/timeout/crash: ..."
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -n 1 || true)
  runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  rate=$(grep -oE 'exec/s:? [0-9]+' <<<"$last" | grep -oE '[0-9]+$' || true)
  found=$(find "$findings" -type f | wc -l)
  printf '%-20s %12s %8s %8s %9s\n' "$t" "${runs:-0}" "${rate:-0}" "$(find "$work" -type f | wc -l)" "$found"
  if [ "$found" -gt 0 ]; then
    status=1
    echo "  see $log and $findings/" >&2
  fi
done
exit $status
