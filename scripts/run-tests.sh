#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite.
#   run-tests.sh              the optimised build in build/
#   run-tests.sh --sanitize   the same suite built with AddressSanitizer + UBSan in build-sanitize/
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  bash scripts/setup.sh --no-build
  cmake --preset sanitize
  cmake --build --preset sanitize --parallel "$(nproc)"
  ctest --preset sanitize --parallel "$(nproc)"
  exit
fi
bash scripts/setup.sh
# Debian's h5py lets test_saving check that another HDF5 reader sees Strata's files as Keras's.
if ! dpkg-query -W -f='${Status}' python3-h5py 2>/dev/null | grep -q "install ok installed" && [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-h5py >/dev/null
fi
ctest --test-dir build --output-on-failure --parallel "$(nproc)"
