#!/usr/bin/env bash
# Feeds the strata command one bad input of each kind and prints a Markdown table of the input, the
# exit status and the message (README.md's "Bad input" table is this script's output).
#   scripts/bad-inputs.sh [PATH-TO-STRATA (default build/cli/strata)]
set -uo pipefail
cd "$(dirname "$0")/.."
strata="$(realpath "${1:-build/cli/strata}")"
repo="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

python3 - <<'PY'
import random, struct, zipfile
random.seed(1)
with open("data.csv", "w") as f:
    f.write("a,b,y\n")
    for _ in range(64):
        a, b = random.random(), random.random()
        f.write(f"{a:.4f},{b:.4f},{2 * a - b:.4f}\n")
with open("text.csv", "w") as f:
    f.write("a,b,y\n1,2,3\n4,five,6\n")
base = ("data:\n  train: {csv: data.csv, features: [a, b], labels: y}\n"
        "model:\n  - Input: {shape: [2]}\n  - Dense: {units: 4, activation: tanh}\n  - Dense: {units: 1}\n"
        "optimizer: adam\nloss: mse\ntraining: {epochs: 1, batch_size: 16, verbose: 0}\n")
open("good.yaml", "w").write(base)
open("malformed.yaml", "w").write(base.replace("Dense: {units: 1}", "Dense: {units: 1"))
open("typo.yaml", "w").write(base.replace("Dense: {units: 1}", "Dens: {units: 1}"))
open("type.yaml", "w").write(base.replace("units: 4", "units: four"))
open("missing.yaml", "w").write(base.replace("data.csv", "absent.csv"))
open("shape.yaml", "w").write(base.replace("shape: [2]", "shape: [3]"))
open("text.yaml", "w").write(base.replace("data.csv", "text.csv"))
open("huge_batch.yaml", "w").write(base.replace("units: 4", "units: 1000000").replace("batch_size: 16", "batch_size: 64"))
open("huge_layer.yaml", "w").write(base.replace("shape: [2]", "shape: [1000000]").replace("units: 4", "units: 1000000"))
open("nan.yaml", "w").write(base.replace("optimizer: adam", "optimizer: {SGD: {learning_rate: 1.0e+30}}")
                            + "callbacks:\n  - TerminateOnNaN: {}\n")
open("not_hdf5.h5", "w").write("this is not an HDF5 file\n")
with zipfile.ZipFile("traversal.keras", "w") as z:
    z.writestr("../../outside.txt", "x")
with zipfile.ZipFile("bomb.keras", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("config.json", b"\0" * (200 << 20))
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }"
header += " " * (63 - (10 + len(header)) % 64) + "\n"
open("images.idx", "wb").write(struct.pack(">BBBBIII", 0, 0, 8, 3, 60000, 28, 28) + bytes(100))
open("idx.yaml", "w").write(base.replace("{csv: data.csv, features: [a, b], labels: y}", "{x: images.idx, y: images.idx}"))
open("short.npy", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64)
PY
"$strata" train good.yaml --output-dir good >/dev/null 2>&1
head -c 3000 good/model.h5 > truncated.h5
cp "$repo/tests/fuzz/regressions/fuzz_hdf5_model/timeout-global-heap-loop.h5" hang.h5

strata() { "$strata" "$@"; }
row() {  # description, command line
  local out status
  out="$( { eval "$2" >/dev/null; } 2>&1 )"
  status=$?
  out="$(printf '%s' "$out" | grep -v '^$' | tail -n 1)"
  out="${out//$work\//}"
  printf '| %s | `%s` | %s | %s |\n' "$1" "$2" "$status" "${out//|/\\|}"
}
echo "| input | command | exit | message |"
echo "|---|---|---|---|"
row "malformed YAML" "strata train malformed.yaml"
row "unknown layer" "strata train typo.yaml"
row "wrong value type" "strata train type.yaml"
row "missing data file" "strata train missing.yaml"
row "data of the wrong shape" "strata train shape.yaml"
row "text in a CSV number column" "strata train text.yaml"
row "not an HDF5 file" "strata summary not_hdf5.h5"
row "truncated .h5 model" "strata summary truncated.h5"
row "an .h5 file that makes libhdf5 loop (found by fuzzing)" "strata summary hang.h5"
row ".keras member escaping the directory" "strata summary traversal.keras"
row ".keras zip bomb" "strata summary bomb.keras"
row "IDX file shorter than its header says" "strata train idx.yaml"
row ".npy shorter than its header says" "strata predict good/model.h5 --input short.npy --output p.npy"
row "a layer too large for the memory" "strata train huge_layer.yaml"
row "a batch too large for the memory" "STRATA_MEMORY_LIMIT_MB=256 strata train huge_batch.yaml"
row "a diverging run (TerminateOnNaN)" "strata train nan.yaml --output-dir nan"
row "the same with --check-numerics" "strata train nan.yaml --output-dir nan2 --check-numerics"
