#!/usr/bin/env bash
# Installs what Strata needs from Debian's packages (when run as root and something is missing) and builds it.
#   setup.sh [--no-build] [EXTRA-PACKAGE...]     (scripts/fuzz.sh adds clang's)
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = "--no-build" ]; then
  build=0
  shift
fi
packages=(build-essential cmake ninja-build ccache libeigen3-dev libfmt-dev zlib1g-dev nlohmann-json3-dev libhdf5-dev libgtest-dev libyaml-cpp-dev libcli11-dev libprotobuf-dev protobuf-compiler
          libopenmpi-dev openmpi-bin dataset-fashion-mnist "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]} (run as root, or install them first)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$build" = 1 ]; then
  cmake --preset release
  cmake --build build --parallel "$(nproc)"
fi
