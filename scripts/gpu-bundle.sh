#!/usr/bin/env bash
# Prepares .gpu/ for a machine that has an NVIDIA GPU, its driver and the CUDA toolkit but none of
# Strata's Debian dependencies: the CUDA test and benchmark programs built here (generic x86-64, no
# -march=native), the shared libraries they load other than the C library's and CUDA's, and
# Fashion-MNIST. scripts/gpu-check.sh runs them there.
#   bash scripts/gpu-bundle.sh        (needs nvcc here; the result is about 50 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-build
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_CUDA=ON -DSTRATA_NATIVE=OFF -DSTRATA_MPI=OFF \
  -DSTRATA_BUILD_BENCH=ON -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-gpu --target test_cuda test_backend_ops bench_strata
rm -rf .gpu
mkdir -p .gpu/bin .gpu/lib .gpu/data
for program in build-gpu/tests/test_cuda build-gpu/tests/test_backend_ops build-gpu/bench/bench_strata; do
  strip -o ".gpu/bin/$(basename "$program")" "$program"
done
# Everything the loader resolves, except glibc (the machine's own must serve its loader) and CUDA's
# libraries (the machine's match its driver).
ldd .gpu/bin/* | awk '$3 ~ /^\// { print $3 }' | sort -u |
  grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64|libcuda|libcublas|libcublasLt|libcudart)\.so' |
  while read -r lib; do cp -L "$lib" .gpu/lib/; done
cp /usr/share/datasets/fashion-mnist/*.gz .gpu/data/
du -sh .gpu
