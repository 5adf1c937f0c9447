#!/usr/bin/env bash
# Prepares .gpu/ for a machine that has an NVIDIA GPU, its driver and the CUDA toolkit but none of
# Strata's Debian dependencies: the CUDA test and benchmark programs built here (generic x86-64, no
# -march=native), the shared libraries they load other than the C library's and CUDA's, and
# Fashion-MNIST. scripts/gpu-check.sh runs them there.
#   bash scripts/gpu-bundle.sh        (needs nvcc here; about 40 MB, within what a device call carries)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-build
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_CUDA=ON -DSTRATA_NATIVE=OFF -DSTRATA_MPI=OFF \
  -DSTRATA_BUILD_BENCH=ON -DSTRATA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-gpu --target test_cuda test_backend_ops bench_strata
rm -rf .gpu build-gpu/bundle
mkdir -p .gpu/data build-gpu/bundle/bin build-gpu/bundle/lib
for program in build-gpu/tests/test_cuda build-gpu/tests/test_backend_ops build-gpu/bench/bench_strata; do
  strip -o "build-gpu/bundle/bin/$(basename "$program")" "$program"
done
# Everything the loader resolves, except glibc (the machine's own must serve its loader) and CUDA's
# libraries (the machine's match its driver).
ldd build-gpu/bundle/bin/* | awk '$3 ~ /^\// { print $3 }' | sort -u |
  grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64|libcuda|libcublas|libcublasLt|libcudart)\.so' |
  while read -r lib; do cp -L "$lib" build-gpu/bundle/lib/; done
# Compressed: programs and libraries are 35 MB as they are, 9 MB packed.
tar -C build-gpu/bundle -cJf .gpu/programs.tar.xz bin lib
cp /usr/share/datasets/fashion-mnist/*.gz .gpu/data/
du -sh .gpu
