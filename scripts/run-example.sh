#!/usr/bin/env bash
# Sets up, builds and trains the default example (an MLP) on Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./build/examples/fashion_mlp "${EPOCHS:-10}"
