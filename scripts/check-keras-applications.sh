#!/usr/bin/env bash
# Builds Keras's application models (untrained, include_top=False with average pooling, small inputs),
# saves each as .keras with Keras, predicts a random batch with Keras and with `strata predict`, and prints
# the largest difference relative to Keras's largest feature. Needs Keras with a backend (KERAS_BACKEND)
# and a built build/cli/strata; the models are written to a temporary folder (ResNet50's is 90 MB).
#   check-keras-applications.sh [MODEL...]   (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."
strata="$PWD/build/cli/strata"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(MobileNetV2 MobileNetV3Small EfficientNetB0 EfficientNetV2B0 ResNet50 ResNet50V2 DenseNet121 Xception
                                   InceptionV3 VGG16 ConvNeXtTiny NASNetMobile)
status=0
for m in "${models[@]}"; do
  python3 - "$m" "$work" <<'PY'
import sys, numpy as np, keras
name, work = sys.argv[1], sys.argv[2]
# Each model at its smallest input; MobileNetV2 at alpha 0.35.
size = {"Xception": 71, "InceptionV3": 75, "VGG16": 32, "MobileNetV2": 96, "MobileNetV3Small": 96}.get(name, 64)
kwargs = {"alpha": 0.35} if name == "MobileNetV2" else {}
keras.utils.set_random_seed(1)
model = getattr(keras.applications, name)(input_shape=(size, size, 3), weights=None, include_top=False, pooling="avg", **kwargs)
x = np.random.default_rng(0).uniform(-1, 1, size=(2, size, size, 3)).astype("float32")
model.save(f"{work}/{name}.keras")
np.save(f"{work}/{name}_x.npy", x)
np.save(f"{work}/{name}_keras.npy", model.predict(x, verbose=0))
PY
  if ! "$strata" predict "$work/$m.keras" --input "$work/${m}_x.npy" --output "$work/${m}_strata.npy" > "$work/$m.log" 2>&1; then
    echo "$m: strata failed: $(tail -1 "$work/$m.log")"
    status=1
    continue
  fi
  python3 -c "
import numpy as np
k, s = np.load('$work/${m}_keras.npy'), np.load('$work/${m}_strata.npy')
print('$m: features', k.shape, 'largest difference / largest feature', float(abs(k - s).max() / abs(k).max()))"
done
exit $status
