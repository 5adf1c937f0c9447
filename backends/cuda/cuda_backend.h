// What the CUDA backend says about itself; the backend registers as "cuda" (get_backend("cuda")).
#pragma once

#include <string>

namespace strata {

// Whether float32 GEMMs may use TF32 tensor cores (STRATA_CUDA_TF32=1): faster, with about 10 bits of
// mantissa in the products, so results no longer match the CPU backend to float32 precision.
bool cuda_tf32_enabled();

// Why cuBLAS (opened on first use, not linked) could not be loaded, or empty when it was: found on the
// loader's path or in the CUDA toolkit the build used, with every function the backend calls.
std::string cublas_load_error();

// The same for NCCL, which data-parallel training on GPUs uses to sum gradients (through the host without it).
std::string nccl_load_error();

// "NVIDIA H100 80GB HBM3 (compute capability 9.0, 79.1 GiB)", or empty without a usable device.
std::string cuda_device_description();

}  // namespace strata
