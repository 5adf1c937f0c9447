#!/usr/bin/env bash
# Sets up, builds and trains the default example, the MLP of examples/configs/fashion_mlp.yaml, on
# Fashion-MNIST with the strata command; the model and its history go to runs/fashion_mlp/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./build/cli/strata train examples/configs/fashion_mlp.yaml --epochs "${EPOCHS:-10}" --output-dir runs/fashion_mlp
